/* The spreading kernel: the prolate spheroidal wave function psi_0 (choice of width and
 * bandwidth, Legendre series), its piecewise-polynomial fit and its Fourier transform.
 *
 * Why PSWF: among functions supported on [-1, 1], psi_0(c, .) concentrates the most
 * energy in the band |xi| <= c (Slepian), which is what bounds the NUFFT's aliasing
 * error. The exponential-of-semicircle kernel of Barnett, Magland and af Klinteberg
 * (SIAM J. Sci. Comput. 41 (2019) C479), which this code used before, approximates it; at
 * the same width it measured 1.4-2.8x the requested tolerance in type 1 (width 4,
 * 1e-3), where psi_0 measures 0.5-0.8x (BENCHMARKS.md). */
#include "nufft_kernel.h"

#include <math.h>
#include <string.h>

#include "spinifel/error.h"

/* Eigenvalues of the symmetric tridiagonal matrix (diagonal d, off-diagonal e) below x:
 * the negative pivots of its LDL^T factorisation of T - x (Sturm count). */
static int count_below(int n, const double *d, const double *e, double x)
{
  int count = 0;
  double q = d[0] - x;
  count += q < 0;
  for (int i = 1; i < n; i++) {
    q = d[i] - x - e[i - 1] * e[i - 1] / (q != 0 ? q : 1e-300);
    count += q < 0;
  }
  return count;
}

/* psi_0(c, x) = sum_i a_i P_2i(x): the prolate operator
 * -d/dx (1 - x^2) d/dx + c^2 x^2 is a symmetric tridiagonal matrix in the normalised
 * even Legendre polynomials sqrt(2i + 1/2) P_2i (x^2 P_k from Legendre's three-term
 * recurrence); psi_0 is the eigenvector of its smallest eigenvalue, found by bisection
 * on Sturm counts, then inverse iteration. Coefficients decay super-exponentially past
 * 2i ~ c, so c / 2 + 24 terms reach rounding. Scaled so that psi_0(0) = 1. */
static void pswf_coefficients(spf_nufft_kernel *k)
{
  const double c2 = k->c * k->c;
  int n = (int)(0.5 * k->c) + 24;
  if (n > SPF_PSWF_MAX_TERMS) n = SPF_PSWF_MAX_TERMS;
  double d[SPF_PSWF_MAX_TERMS] = {0}, e[SPF_PSWF_MAX_TERMS] = {0}, v[SPF_PSWF_MAX_TERMS], cp[SPF_PSWF_MAX_TERMS],
      dp[SPF_PSWF_MAX_TERMS];
  for (int i = 0; i < n; i++) {
    const double m = 2.0 * i;
    d[i] = m * (m + 1) + c2 * (2 * m * m + 2 * m - 1) / ((2 * m - 1) * (2 * m + 3));
    e[i] = c2 * (m + 1) * (m + 2) / ((2 * m + 3) * sqrt((2 * m + 1) * (2 * m + 5)));
  }
  double lo = 0, hi = d[0] + e[0];
  for (int i = 0; i < n; i++) lo = fmin(lo, d[i] - e[i] - (i ? e[i - 1] : 0)); /* Gershgorin */
  for (int it = 0; it < 100 && hi - lo > 1e-13 * fmax(1.0, fabs(hi)); it++) {
    const double mid = 0.5 * (lo + hi);
    if (count_below(n, d, e, mid) >= 1) hi = mid;
    else lo = mid;
  }
  /* Inverse iteration just below the eigenvalue (the Thomas algorithm: T - shift is
   * positive definite there, no pivoting needed); two steps reach rounding, a third
   * costs nothing. */
  const double shift = lo - 1e-10 * fmax(1.0, fabs(lo));
  for (int i = 0; i < n; i++) v[i] = 1.0;
  for (int it = 0; it < 3; it++) {
    double b = d[0] - shift;
    cp[0] = e[0] / b;
    dp[0] = v[0] / b;
    for (int i = 1; i < n; i++) {
      b = d[i] - shift - e[i - 1] * cp[i - 1];
      cp[i] = e[i] / b;
      dp[i] = (v[i] - e[i - 1] * dp[i - 1]) / b;
    }
    v[n - 1] = dp[n - 1];
    for (int i = n - 2; i >= 0; i--) v[i] = dp[i] - cp[i] * v[i + 1];
    double norm = 0;
    for (int i = 0; i < n; i++) norm += v[i] * v[i];
    norm = 1.0 / sqrt(norm);
    for (int i = 0; i < n; i++) v[i] *= norm;
  }
  /* Plain Legendre coefficients; P_2i(0) = (-1)^i (2i - 1)!! / (2i)!!. */
  double p_at0 = 1.0, at0 = 0.0;
  for (int i = 0; i < n; i++) {
    k->legendre[i] = v[i] * sqrt(2.0 * i + 0.5);
    at0 += k->legendre[i] * p_at0;
    p_at0 *= -(2.0 * i + 1) / (2.0 * i + 2);
  }
  for (int i = 0; i < n; i++) k->legendre[i] /= at0;
  k->n_terms = n;
}

int spf_nufft_kernel_choose(double tol, double upsampfac, spf_nufft_kernel *k)
{
  int w;
  /* Widths measured to meet tol (relative l2 error of types 1 and 2 against direct
   * sums): at sigma 2 the error is about 0.6 tol at w = log10(10 / tol); at sigma 1.25
   * it falls by e^1.31 per point of width from 2.9e-3 at w = 5 (the paper's estimate
   * e^(-pi w sqrt(1 - 1/sigma)) is 3x optimistic there). BENCHMARKS.md has both. */
  if (upsampfac == 2.0) w = (int)ceil(log10(10.0 / tol));
  else w = (int)ceil((0.71 - log(tol)) / (0.93 * M_PI * sqrt(1.0 - 1.0 / upsampfac)));
  if (w < 2) w = 2;
  if (w > SPF_NUFFT_MAX_WIDTH) return SPF_ERR_TOLERANCE;
  memset(k, 0, sizeof *k);
  k->width = w;
  /* The band the fine grid leaves free of aliases: |xi| <= pi (1 - 1 / (2 sigma)) per
   * fine-grid point, pi w (1 - 1 / (2 sigma)) over the kernel's half-width w / 2. */
  k->c = M_PI * w * (1.0 - 0.5 / upsampfac);
  k->upsampfac = upsampfac;
  pswf_coefficients(k);
  return SPF_OK;
}

double spf_nufft_kernel_eval(const spf_nufft_kernel *k, double z)
{
  if (fabs(z) > 1.0) return 0.0;
  /* sum_i a_i P_2i(z), P by its three-term recurrence (stable on [-1, 1]). */
  double p0 = 1.0, p1 = z, v = k->legendre[0];
  for (int m = 1; m < 2 * k->n_terms - 1; m += 2) {
    const double p2 = ((2.0 * m + 1.0) * z * p1 - m * p0) / (m + 1.0);
    const double p3 = ((2.0 * m + 3.0) * z * p2 - (m + 1.0) * p1) / (m + 2.0);
    v += k->legendre[(m + 1) / 2] * p2;
    p0 = p2;
    p1 = p3;
  }
  return v;
}

/* Horner evaluation of the fitted polynomial for one grid offset i. */
static double horner(const double *coef, int kpad, int degree, int i, double u)
{
  double v = coef[i];
  for (int d = 1; d <= degree; d++) v = v * u + coef[d * kpad + i];
  return v;
}

int spf_nufft_kernel_fit(const spf_nufft_kernel *k, double target_err, double *coef, double *fit_err)
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
          sum += spf_nufft_kernel_eval(k, z) * cos(n * th);
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
        double e = fabs(horner(coef, kpad, degree, i, u) - spf_nufft_kernel_eval(k, z));
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

void spf_nufft_kernel_fourier(const spf_nufft_kernel *k, int64_t n, int64_t nf, double *phihat)
{
  /* phihat(xi) = w/2 int_{-1}^{1} phi(z) cos(xi w z / 2) dz. phi is entire (a Legendre
   * series), so Gauss-Legendre converges exponentially: 3w + 40 nodes resolve a
   * bandwidth c + xi w / 2 <= 20 w to rounding (checked against Simpson's rule with
   * 200,000 intervals in the tests). */
  enum { NQ_MAX = 3 * SPF_NUFFT_MAX_WIDTH + 40 };
  double z[NQ_MAX], wq[NQ_MAX], f[NQ_MAX];
  const int nq = 3 * k->width + 40;
  spf_gauss_legendre(nq, z, wq);
  for (int q = 0; q < nq; q++) f[q] = wq[q] * spf_nufft_kernel_eval(k, z[q]);
  const double half_w = 0.5 * k->width;
  for (int64_t j = 0; j < n; j++) {
    double kk = (double)(j - n / 2);
    double xi = 2.0 * M_PI * kk / (double)nf, sum = 0.0;
    for (int q = 0; q < nq; q++) sum += f[q] * cos(xi * half_w * z[q]);
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
