/* The ES kernel: choice of width and shape, piecewise-polynomial fit, Fourier transform.
 * Formulas for width and beta follow Barnett, Magland, af Klinteberg (2019), sec. 4. */
#include "nufft_kernel.h"

#include <math.h>
#include <string.h>

#include "spinifel/error.h"

int spf_es_kernel_choose(double tol, double upsampfac, spf_es_kernel *k)
{
  int w;
  double beta_over_w;
  if (upsampfac == 2.0) {
    w = (int)ceil(log10(10.0 / tol));
    beta_over_w = 2.30;
    /* Small widths are tuned by hand in the paper. */
    if (w <= 2) beta_over_w = 2.20;
    else if (w == 3) beta_over_w = 2.26;
    else if (w == 4) beta_over_w = 2.38;
  } else {
    w = (int)ceil(-log(tol) / (M_PI * sqrt(1.0 - 1.0 / upsampfac)));
    beta_over_w = 0.97 * M_PI * (1.0 - 0.5 / upsampfac);
  }
  if (w < 2) w = 2;
  if (w > SPF_NUFFT_MAX_WIDTH) return SPF_ERR_TOLERANCE;
  k->width = w;
  k->beta = beta_over_w * w;
  k->upsampfac = upsampfac;
  return SPF_OK;
}

double spf_es_kernel_eval(const spf_es_kernel *k, double z)
{
  if (fabs(z) > 1.0) return 0.0;
  return exp(k->beta * (sqrt(1.0 - z * z) - 1.0));
}

/* Horner evaluation of the fitted polynomial for one grid offset i. */
static double horner(const double *coef, int kpad, int degree, int i, double u)
{
  double v = coef[i];
  for (int d = 1; d <= degree; d++) v = v * u + coef[d * kpad + i];
  return v;
}

int spf_es_kernel_fit(const spf_es_kernel *k, double target_err, double *coef, double *fit_err)
{
  const int w = k->width, kpad = SPF_NUFFT_KPAD(w);
  double cheb[SPF_NUFFT_MAX_DEGREE + 1], mono[SPF_NUFFT_MAX_DEGREE + 1];
  double tk[SPF_NUFFT_MAX_DEGREE + 1][SPF_NUFFT_MAX_DEGREE + 1]; /* T_n in monomials */
  memset(tk, 0, sizeof tk);
  tk[0][0] = 1.0;
  tk[1][1] = 1.0;
  for (int n = 2; n <= SPF_NUFFT_MAX_DEGREE; n++)
    for (int p = 0; p <= n; p++)
      tk[n][p] = (p > 0 ? 2.0 * tk[n - 1][p - 1] : 0.0) - tk[n - 2][p];

  for (int degree = w - 1; degree <= SPF_NUFFT_MAX_DEGREE; degree++) {
    const int nn = degree + 1;
    memset(coef, 0, sizeof(double) * (size_t)(SPF_NUFFT_MAX_DEGREE + 1) * kpad);
    for (int i = 0; i < w; i++) {
      /* Chebyshev interpolation at the nn Chebyshev points of [-1, 1]. */
      for (int n = 0; n < nn; n++) {
        double sum = 0.0;
        for (int j = 0; j < nn; j++) {
          double th = M_PI * (j + 0.5) / nn, u = cos(th);
          double z = 2.0 * ((u + 1.0) * 0.5 - 0.5 * w + i) / w;
          sum += spf_es_kernel_eval(k, z) * cos(n * th);
        }
        cheb[n] = (n == 0 ? 1.0 : 2.0) * sum / nn;
      }
      for (int p = 0; p < nn; p++) {
        mono[p] = 0.0;
        for (int n = p; n < nn; n++) mono[p] += cheb[n] * tk[n][p];
      }
      for (int d = 0; d <= degree; d++) coef[d * kpad + i] = mono[degree - d];
    }
    /* Measure the error of what will actually run: Horner in double on a fine sample. */
    double err = 0.0;
    for (int i = 0; i < w; i++)
      for (int s = 0; s <= 400; s++) {
        double u = -1.0 + 2.0 * s / 400.0;
        double z = 2.0 * ((u + 1.0) * 0.5 - 0.5 * w + i) / w;
        double e = fabs(horner(coef, kpad, degree, i, u) - spf_es_kernel_eval(k, z));
        if (e > err) err = e;
      }
    if (err <= target_err) {
      if (fit_err) *fit_err = err;
      return degree;
    }
  }
  return -1;
}

void spf_gauss_legendre(int n, double *nodes, double *weights)
{
  for (int i = 0; i < (n + 1) / 2; i++) {
    double x = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1.0;
    for (int it = 0; it < 100; it++) {
      double p0 = 1.0, p1 = x;
      for (int m = 2; m <= n; m++) {
        double p2 = ((2.0 * m - 1.0) * x * p1 - (m - 1.0) * p0) / m;
        p0 = p1;
        p1 = p2;
      }
      if (n == 1) { p1 = x; p0 = 1.0; }
      dp = n * (x * p1 - p0) / (x * x - 1.0);
      double dx = p1 / dp;
      x -= dx;
      if (fabs(dx) < 1e-16) break;
    }
    /* Recompute the derivative at the converged node. */
    double p0 = 1.0, p1 = x;
    for (int m = 2; m <= n; m++) {
      double p2 = ((2.0 * m - 1.0) * x * p1 - (m - 1.0) * p0) / m;
      p0 = p1;
      p1 = p2;
    }
    dp = n * (x * p1 - p0) / (x * x - 1.0);
    nodes[i] = -x;
    nodes[n - 1 - i] = x;
    weights[i] = weights[n - 1 - i] = 2.0 / ((1.0 - x * x) * dp * dp);
  }
}

void spf_es_kernel_fourier(const spf_es_kernel *k, int64_t n, int64_t nf, double *phihat)
{
  /* phihat(xi) = w/2 int_{-1}^{1} phi(z) cos(xi w z / 2) dz. With z = sin(theta) the sqrt
   * edge of phi disappears and the integrand is analytic, so Gauss-Legendre converges
   * exponentially: 3w + 40 nodes resolve beta <= 40 and xi w / 2 <= 8 pi to rounding. */
  enum { NQ_MAX = 3 * SPF_NUFFT_MAX_WIDTH + 40 };
  double th[NQ_MAX], wq[NQ_MAX], f[NQ_MAX], sz[NQ_MAX];
  const int nq = 3 * k->width + 40;
  spf_gauss_legendre(nq, th, wq);
  for (int q = 0; q < nq; q++) {
    double theta = 0.5 * M_PI * th[q];
    sz[q] = sin(theta);
    f[q] = 0.5 * M_PI * wq[q] * exp(k->beta * (cos(theta) - 1.0)) * cos(theta);
  }
  const double half_w = 0.5 * k->width;
  for (int64_t j = 0; j < n; j++) {
    double kk = (double)(j - n / 2);
    double xi = 2.0 * M_PI * kk / (double)nf, sum = 0.0;
    for (int q = 0; q < nq; q++) sum += f[q] * cos(xi * half_w * sz[q]);
    phihat[j] = half_w * sum;
  }
}

static int is_smooth235(int64_t n)
{
  while (n % 2 == 0) n /= 2;
  while (n % 3 == 0) n /= 3;
  while (n % 5 == 0) n /= 5;
  return n == 1;
}

int64_t spf_nufft_fine_size(int64_t n, double upsampfac, int width, int allow_pow2)
{
  if (n <= 1) return 1;
  int64_t nf = (int64_t)ceil(upsampfac * (double)n);
  if (nf < 2 * width) nf = 2 * width;
  for (;; nf++) {
    if (nf % 2 || !is_smooth235(nf)) continue;
    if (!allow_pow2 && (nf & (nf - 1)) == 0) continue;
    return nf;
  }
}
