/* Merging by Toeplitz convolution and conjugate gradients (see merging.h). */
#include "spinifel/merging.h"

#include <complex.h> /* before fftw3.h: fftw_complex is then double complex */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "fftw_threads.h"
#include "fixed_point.h"
#include "spinifel/error.h"
#include "spinifel/nufft.h"

/* The sums in single precision from this tolerance up: float's own rounding, about 1e-6
 * of the sums here (coordinates to 6e-8 of 2 pi times up to 2M modes, a few hundred terms
 * per grid value), stays a tenth of the tolerance, and the spreading moves half the
 * bytes at a narrower kernel (BENCHMARKS.md, "The merge's sums in single precision"). */
#define SUMS_FLOAT_TOL 1e-5

struct spf_merger_s {
  int64_t m, m2, n_small, n_big, n_small_spec;
  int64_t lc, n_conv, n_conv_spec; /* the convolution grid: lc^3, lc >= 2M - 1 and 7-smooth */
  spf_merge_options o;
  spf_nufft_plan t1; /* type 1 on (2M + 1)^3 modes: the kernel's and the rhs' sums at once */
  spf_nufftf_plan t1f;  /* the same in single precision, used instead where the tolerance
                           allows it (SUMS_FLOAT_TOL) */
  float *xyz_f;         /* 3 * cbuf_cap coordinates for t1f */
  double *kernel;          /* Re T(d) at circular index d mod 2M */
  double *rhs;             /* Re sum_j w_j b_j exp(-i k . x_j) */
  double wb2;              /* sum_j w_j b_j^2 */
  fftw_complex *kernel_ft; /* r2c transform of kernel on the convolution grid, refreshed
                              when the sums change */
  double *circ;            /* eigenvalues of the circulant approximation (M^3 r2c layout) */
  uint8_t *outside;        /* M^3 r2c layout: 1 outside the ball |q| <= (M-1)/2 (penalised) */
  int kernel_dirty;
  double *pad;             /* lc^3 real: u zero-padded, or the kernel before its transform */
  fftw_complex *pad_ft;
  double *small;           /* M^3 real */
  fftw_complex *small_ft;
  fftw_plan big_r2c, big_c2r, small_r2c, small_c2r, kernel_r2c;
  /* Exact sums (spf_merger_exact_sums): the same three sums as integer multiples of 2^e,
   * one array kernel | rhs | wb2 so that one MPI sum reduces them. */
  int64_t *fixed;
  int exp_kernel, exp_rhs, exp_wb2;
  double complex *cbuf;    /* NUFFT strengths: s w + i w b */
  double complex *t1_out;  /* (2M + 1)^3 */
  int64_t cbuf_cap;
};

void spf_merge_default_options(spf_merge_options *o)
{
  if (!o) return;
  o->nufft_tol = 1e-6;
  o->cg_max_iter = 100;
  o->cg_tol = 1e-6;
  o->nthreads = 0;
  o->fftw_measure = 0;
  o->preconditioner = 1;
}

void spf_merger_free(spf_merger *mg)
{
  if (!mg) return;
  spf_nufft_destroy(mg->t1);
  spf_nufftf_destroy(mg->t1f);
  free(mg->xyz_f);
  fftw_plan plans[5] = {mg->big_r2c, mg->big_c2r, mg->small_r2c, mg->small_c2r, mg->kernel_r2c};
  for (int i = 0; i < 5; i++)
    if (plans[i]) fftw_destroy_plan(plans[i]);
  fftw_free(mg->kernel);
  fftw_free(mg->kernel_ft);
  free(mg->circ);
  free(mg->outside);
  fftw_free(mg->pad);
  fftw_free(mg->pad_ft);
  fftw_free(mg->small);
  fftw_free(mg->small_ft);
  free(mg->rhs);
  free(mg->fixed);
  free(mg->cbuf);
  free(mg->t1_out);
  free(mg);
}

void spf_merger_clear(spf_merger *mg)
{
  if (!mg) return;
  memset(mg->kernel, 0, sizeof(double) * (size_t)mg->n_big);
  memset(mg->rhs, 0, sizeof(double) * (size_t)mg->n_small);
  mg->wb2 = 0;
  if (mg->fixed) memset(mg->fixed, 0, sizeof(int64_t) * (size_t)(mg->n_big + mg->n_small + 1));
  mg->kernel_dirty = 1;
}

int spf_merger_exact_sums(spf_merger *mg, double weight_bound, double wb_bound, double wb2_bound)
{
  if (!mg) return SPF_ERR_NULL;
  if (weight_bound == 0 && wb_bound == 0 && wb2_bound == 0) {
    free(mg->fixed);
    mg->fixed = NULL;
    spf_merger_clear(mg);
    return SPF_OK;
  }
  if (!(weight_bound > 0 && wb_bound > 0 && wb2_bound > 0 && isfinite(weight_bound) && isfinite(wb_bound) &&
        isfinite(wb2_bound)))
    return SPF_ERR_ARG;
  if (!mg->fixed) {
    mg->fixed = malloc(sizeof(int64_t) * (size_t)(mg->n_big + mg->n_small + 1));
    if (!mg->fixed) return SPF_ERR_ALLOC;
  }
  /* |T(d)| <= sum w (1 + the NUFFT's error, <= tol sum w); |rhs_k| <= sum w |b| (1 + tol). */
  const double slack = 1 + 2 * mg->o.nufft_tol + (mg->t1f ? 1e-5 : 1e-12);
  mg->exp_kernel = spf_fixed_exponent(weight_bound * slack);
  mg->exp_rhs = spf_fixed_exponent(wb_bound * slack);
  mg->exp_wb2 = spf_fixed_exponent(wb2_bound * slack);
  spf_merger_clear(mg);
  return SPF_OK;
}

int spf_merger_fixed_sums(spf_merger *mg, int64_t **sums, int64_t *len)
{
  if (!mg || !sums || !len) return SPF_ERR_NULL;
  if (!mg->fixed) return SPF_ERR_ARG;
  mg->kernel_dirty = 1; /* the caller may add other ranks' sums */
  *sums = mg->fixed;
  *len = mg->n_big + mg->n_small + 1;
  return SPF_OK;
}

/* The convolution grid's side: the smallest even number >= 2M - 1 with no prime factor
 * above 7. 2M itself has M's factors, and FFTW is slow on large primes: at M = 31 a
 * 62^3 r2c + c2r pair takes 3.7x as long as 64^3, at M = 41 82^3 4.4x as long as 84^3. */
static int64_t conv_size(int64_t m)
{
  for (int64_t n = 2 * m;; n += 2) {
    int64_t r = n;
    for (int f = 2; f <= 7; f++)
      while (r % f == 0) r /= f;
    if (r == 1) return n;
  }
}

int spf_merger_make(int64_t M, const spf_merge_options *opts, spf_merger **out)
{
  if (!out) return SPF_ERR_NULL;
  *out = NULL;
  if (M < 3 || M % 2 == 0 || M > 1025) return SPF_ERR_SIZE;
  spf_merger *mg = calloc(1, sizeof *mg);
  if (!mg) return SPF_ERR_ALLOC;
  if (opts) mg->o = *opts;
  else spf_merge_default_options(&mg->o);
  if (mg->o.cg_max_iter < 1 || !(mg->o.cg_tol > 0) || mg->o.nthreads < 0 ||
      (mg->o.preconditioner != 0 && mg->o.preconditioner != 1)) {
    free(mg);
    return SPF_ERR_OPTION;
  }
  if (mg->o.nthreads == 0) mg->o.nthreads = omp_get_max_threads();
  const int64_t m = M, m2 = 2 * M;
  mg->m = m;
  mg->m2 = m2;
  mg->n_small = m * m * m;
  mg->n_big = m2 * m2 * m2;
  mg->n_small_spec = m * m * (m / 2 + 1);
  mg->lc = conv_size(m);
  mg->n_conv = mg->lc * mg->lc * mg->lc;
  mg->n_conv_spec = mg->lc * mg->lc * (mg->lc / 2 + 1);
  int rc = SPF_OK;
  spf_nufft_opts no;
  spf_nufft_default_opts(&no);
  no.upsampfac = 2.0; /* fixed: the bits must not depend on how many points a batch has */
  no.nthreads = mg->o.nthreads;
  no.fftw_measure = mg->o.fftw_measure;
  const int64_t m21 = m2 + 1, nt[3] = {m21, m21, m21};
  if (mg->o.nufft_tol >= SUMS_FLOAT_TOL) rc = spf_nufftf_make_plan(1, 3, nt, +1, 1, mg->o.nufft_tol, &no, &mg->t1f);
  else rc = spf_nufft_make_plan(1, 3, nt, +1, 1, mg->o.nufft_tol, &no, &mg->t1);
  if (rc) {
    spf_merger_free(mg);
    return rc;
  }
  mg->kernel = fftw_malloc(sizeof(double) * (size_t)mg->n_big);
  mg->kernel_ft = fftw_malloc(sizeof(fftw_complex) * (size_t)mg->n_conv_spec);
  mg->pad = fftw_malloc(sizeof(double) * (size_t)mg->n_conv);
  mg->pad_ft = fftw_malloc(sizeof(fftw_complex) * (size_t)mg->n_conv_spec);
  mg->small = fftw_malloc(sizeof(double) * (size_t)mg->n_small);
  mg->small_ft = fftw_malloc(sizeof(fftw_complex) * (size_t)mg->n_small_spec);
  mg->rhs = malloc(sizeof(double) * (size_t)mg->n_small);
  mg->circ = malloc(sizeof(double) * (size_t)mg->n_small_spec);
  mg->outside = malloc((size_t)mg->n_small_spec);
  mg->t1_out = malloc(sizeof(double complex) * (size_t)(m21 * m21 * m21));
  if (!mg->kernel || !mg->kernel_ft || !mg->pad || !mg->pad_ft || !mg->small || !mg->small_ft || !mg->rhs ||
      !mg->circ || !mg->outside || !mg->t1_out) {
    spf_merger_free(mg);
    return SPF_ERR_ALLOC;
  }
  spf_fftw_threads_init();
  fftw_plan_with_nthreads(spf_fft_threads(mg->n_conv, mg->o.nthreads));
  const int b = (int)mg->lc, s = (int)m;
  const unsigned flags = mg->o.fftw_measure ? FFTW_MEASURE : FFTW_ESTIMATE;
  mg->big_r2c = fftw_plan_dft_r2c_3d(b, b, b, mg->pad, mg->pad_ft, flags);
  mg->big_c2r = fftw_plan_dft_c2r_3d(b, b, b, mg->pad_ft, mg->pad, flags);
  mg->kernel_r2c = fftw_plan_dft_r2c_3d(b, b, b, mg->pad, mg->kernel_ft, flags);
  fftw_plan_with_nthreads(spf_fft_threads(mg->n_small, mg->o.nthreads));
  mg->small_r2c = fftw_plan_dft_r2c_3d(s, s, s, mg->small, mg->small_ft, flags);
  mg->small_c2r = fftw_plan_dft_c2r_3d(s, s, s, mg->small_ft, mg->small, flags);
  if (!mg->big_r2c || !mg->big_c2r || !mg->kernel_r2c || !mg->small_r2c || !mg->small_c2r) {
    spf_merger_free(mg);
    return SPF_ERR_FFTW;
  }
  const int64_t mh = m / 2 + 1, rad = (m - 1) / 2;
  for (int64_t j3 = 0; j3 < m; j3++) {
    const int64_t q3 = j3 <= rad ? j3 : j3 - m;
    for (int64_t j2 = 0; j2 < m; j2++) {
      const int64_t q2 = j2 <= rad ? j2 : j2 - m;
      for (int64_t j1 = 0; j1 < mh; j1++)
        mg->outside[(j3 * m + j2) * mh + j1] = q3 * q3 + q2 * q2 + j1 * j1 > rad * rad;
    }
  }
  spf_merger_clear(mg);
  *out = mg;
  return SPF_OK;
}

int spf_merger_add_points(spf_merger *mg, int64_t n, const double *x, const double *y, const double *z,
                          const double *b, const double *w)
{
  if (!mg) return SPF_ERR_NULL;
  if (n < 0) return SPF_ERR_SIZE;
  if (n == 0) return SPF_OK;
  if (!x || !y || !z || !b) return SPF_ERR_NULL;
  if (n > mg->cbuf_cap) {
    free(mg->cbuf);
    free(mg->xyz_f);
    mg->xyz_f = NULL;
    mg->cbuf = malloc(sizeof(double complex) * (size_t)n);
    if (mg->cbuf && mg->t1f) mg->xyz_f = malloc(sizeof(float) * 3 * (size_t)n);
    mg->cbuf_cap = mg->cbuf && (mg->xyz_f || !mg->t1f) ? n : 0;
    if (!mg->cbuf_cap) return SPF_ERR_ALLOC;
  }
  int bad = 0;
  double wb2 = 0;
  /* In order: an OpenMP reduction adds the threads' parts in the order they finish. */
  for (int64_t j = 0; j < n; j++) {
    double wj = w ? w[j] : 1.0;
    bad = bad || !isfinite(b[j]) || !(wj >= 0 && isfinite(wj));
    wb2 += wj * b[j] * b[j];
  }
  if (bad) return SPF_ERR_DATA;
  /* One type 1 gives both sums: strengths w + i w b, both parts real, so the transform
   * S(k) = A(k) + i B(k) with A and B Hermitian, and Re A(k) = Re (S(k) + S(-k)) / 2,
   * Re B(k) = Im (S(k) + S(-k)) / 2. The parts do not leak into each other: the kernel is
   * real and even, so the transform's error at -k is the conjugate of its error at k,
   * and the sum of the two cancels the other part's error exactly. The modes run over
   * [-M, M] (2M + 1), so that -k of every k in [-M, M - 1] is there. */
  double *cb = (double *)mg->cbuf; /* a double complex is two doubles, real first (C11) */
#pragma omp parallel for num_threads(mg->o.nthreads)
  for (int64_t j = 0; j < n; j++) {
    const double wj = w ? w[j] : 1.0;
    cb[2 * j] = wj;
    cb[2 * j + 1] = wj * b[j];
  }
  const int64_t m = mg->m, m2 = mg->m2, m21 = m2 + 1;
  int rc;
  if (mg->t1f) {
    /* Single precision: the strengths packed in place into the front of cbuf (each
     * float pair read before anything overwrites it: j's floats sit in j's double), the
     * result widened from the back of t1_out into all of it. */
    float *xf = mg->xyz_f, *yf = xf + n, *zf = yf + n;
    float *cf = (float *)mg->cbuf;
    for (int64_t j = 0; j < n; j++) {
      const float re = (float)cb[2 * j], im = (float)cb[2 * j + 1];
      cf[2 * j] = re;
      cf[2 * j + 1] = im;
    }
#pragma omp parallel for num_threads(mg->o.nthreads)
    for (int64_t j = 0; j < n; j++) {
      xf[j] = (float)x[j];
      yf[j] = (float)y[j];
      zf[j] = (float)z[j];
    }
    const int64_t nm = m21 * m21 * m21;
    float complex *of = (float complex *)mg->t1_out + nm; /* the back half of t1_out */
    rc = spf_nufftf_set_points(mg->t1f, n, xf, yf, zf);
    if (!rc) rc = spf_nufftf_execute(mg->t1f, (float complex *)cf, of);
    if (rc) return rc;
    for (int64_t k = 0; k < nm; k++) mg->t1_out[k] = (double complex)of[k];
  } else {
    rc = spf_nufft_set_points(mg->t1, n, x, y, z);
    if (!rc) rc = spf_nufft_execute(mg->t1, mg->cbuf, mg->t1_out);
    if (rc) return rc;
  }
  const double complex *S = mg->t1_out;
  /* Centred slot a of the 2M grid is d = a - M (slot a of S), -d slot 2M - a; stored at
   * d mod 2M. */
  const double sk = ldexp(1.0, -mg->exp_kernel);
#pragma omp parallel for num_threads(mg->o.nthreads) collapse(2)
  for (int64_t a3 = 0; a3 < m2; a3++)
    for (int64_t a2 = 0; a2 < m2; a2++) {
      int64_t c3 = a3 < m ? a3 + m : a3 - m, c2 = a2 < m ? a2 + m : a2 - m;
      const double complex *sp = S + (a3 * m21 + a2) * m21, *sn = S + ((m2 - a3) * m21 + m2 - a2) * m21 + m2;
      for (int64_t a1 = 0; a1 < m2; a1++) {
        int64_t c1 = a1 < m ? a1 + m : a1 - m;
        const double t = 0.5 * (creal(sp[a1]) + creal(sn[-a1]));
        if (mg->fixed) mg->fixed[(c3 * m2 + c2) * m2 + c1] += spf_to_fixed(t, sk);
        else mg->kernel[(c3 * m2 + c2) * m2 + c1] += t;
      }
    }
  /* Re of sum w b e^{+ikx} equals Re of sum w b e^{-ikx}: the Friedel-symmetric sum.
   * Slot j of the M grid is k = j - (M - 1) / 2, slot k + M of S; -k slot M - k. */
  const int64_t h = (m - 1) / 2;
  const double sr = mg->fixed ? ldexp(1.0, -mg->exp_rhs) : 0;
  int64_t *fr = mg->fixed ? mg->fixed + mg->n_big : NULL;
#pragma omp parallel for num_threads(mg->o.nthreads) collapse(2)
  for (int64_t j3 = 0; j3 < m; j3++)
    for (int64_t j2 = 0; j2 < m; j2++) {
      const int64_t k3 = j3 - h, k2 = j2 - h;
      const double complex *sp = S + ((k3 + m) * m21 + k2 + m) * m21 + m - h,
                           *sn = S + ((m - k3) * m21 + m - k2) * m21 + m + h;
      for (int64_t j1 = 0; j1 < m; j1++) {
        const double t = 0.5 * (cimag(sp[j1]) + cimag(sn[-j1]));
        const int64_t i = (j3 * m + j2) * m + j1;
        if (fr) fr[i] += spf_to_fixed(t, sr);
        else mg->rhs[i] += t;
      }
    }
  if (mg->fixed) mg->fixed[mg->n_big + mg->n_small] += spf_to_fixed(wb2, ldexp(1.0, -mg->exp_wb2));
  else mg->wb2 += wb2;
  mg->kernel_dirty = 1;
  return SPF_OK;
}

void spf_merger_sums(spf_merger *mg, double **kernel, int64_t *kernel_len, double **rhs, int64_t *rhs_len,
                     double **wb2)
{
  if (!mg) return;
  /* The caller may change the sums through these pointers. */
  mg->kernel_dirty = 1;
  if (kernel) *kernel = mg->kernel;
  if (kernel_len) *kernel_len = mg->n_big;
  if (rhs) *rhs = mg->rhs;
  if (rhs_len) *rhs_len = mg->n_small;
  if (wb2) *wb2 = &mg->wb2;
}

/* T. Chan's circulant for the M^3 section of the Toeplitz operator: along each axis, the
 * circulant's entry at offset j in [0, M) averages the diagonals j and j - M, weighted by
 * their lengths M - j and j; in 3D the weights multiply. Its eigenvalues (real, as the
 * kernel is even) are the r2c transform. */
static void refresh_circulant(spf_merger *mg)
{
  const int64_t m = mg->m, m2 = mg->m2, mh = m / 2 + 1;
  for (int64_t j3 = 0; j3 < m; j3++)
    for (int64_t j2 = 0; j2 < m; j2++)
      for (int64_t j1 = 0; j1 < m; j1++) {
        const int64_t j[3] = {j3, j2, j1};
        double c = 0;
        for (int s = 0; s < 8; s++) {
          double wt = 1;
          int64_t d[3];
          for (int a = 0; a < 3; a++) {
            const int up = (s >> a) & 1;
            wt *= (double)(up ? j[a] : m - j[a]) / (double)m;
            d[a] = up ? j[a] + m : j[a]; /* j - M mod 2M */
          }
          if (wt != 0) c += wt * mg->kernel[(d[0] * m2 + d[1]) * m2 + d[2]];
        }
        mg->small[(j3 * m + j2) * m + j1] = c;
      }
  fftw_execute(mg->small_r2c);
  for (int64_t i = 0; i < m * m * mh; i++) {
    const double lam = creal(mg->small_ft[i]);
    mg->circ[i] = lam > 0 ? lam : 0; /* A* W A is positive semi-definite */
  }
}

static void refresh_kernel(spf_merger *mg)
{
  if (!mg->kernel_dirty) return;
  if (mg->fixed) {
    const int64_t *fr = mg->fixed + mg->n_big;
    for (int64_t i = 0; i < mg->n_big; i++) mg->kernel[i] = ldexp((double)mg->fixed[i], mg->exp_kernel);
    for (int64_t i = 0; i < mg->n_small; i++) mg->rhs[i] = ldexp((double)fr[i], mg->exp_rhs);
    mg->wb2 = ldexp((double)fr[mg->n_small], mg->exp_wb2);
  }
  /* T(d) for |d| <= M - 1, the only offsets between two points of the M grid, at d mod lc:
   * the circular convolution on lc >= 2M - 1 then equals the linear one on the M grid. */
  const int64_t m = mg->m, m2 = mg->m2, lc = mg->lc;
  memset(mg->pad, 0, sizeof(double) * (size_t)mg->n_conv);
  for (int64_t d3 = -(m - 1); d3 <= m - 1; d3++)
    for (int64_t d2 = -(m - 1); d2 <= m - 1; d2++)
      for (int64_t d1 = -(m - 1); d1 <= m - 1; d1++) {
        const int64_t src = ((d3 + m2) % m2 * m2 + (d2 + m2) % m2) * m2 + (d1 + m2) % m2;
        mg->pad[((d3 + lc) % lc * lc + (d2 + lc) % lc) * lc + (d1 + lc) % lc] = mg->kernel[src];
      }
  fftw_execute(mg->kernel_r2c);
  if (mg->o.preconditioner) refresh_circulant(mg);
  mg->kernel_dirty = 0;
}

/* z = C^-1 r with C = circulant(T) + rho I + phi F* P F, all diagonal in the M^3 FFT. */
static void apply_preconditioner(spf_merger *mg, double rho, double phi, const double *r, double *z)
{
  memcpy(mg->small, r, sizeof(double) * (size_t)mg->n_small);
  fftw_execute(mg->small_r2c);
  const double norm = 1.0 / (double)mg->n_small;
  for (int64_t i = 0; i < mg->n_small_spec; i++) {
    const double den = mg->circ[i] + rho + (mg->outside[i] ? phi : 0.0);
    mg->small_ft[i] *= den > 0 ? norm / den : 0.0;
  }
  fftw_execute(mg->small_c2r);
  memcpy(z, mg->small, sizeof(double) * (size_t)mg->n_small);
}

/* out = A* W A u (Toeplitz part only). */
static void apply_toeplitz(spf_merger *mg, const double *u, double *out)
{
  const int64_t m = mg->m, lc = mg->lc;
  memset(mg->pad, 0, sizeof(double) * (size_t)mg->n_conv);
  for (int64_t i3 = 0; i3 < m; i3++)
    for (int64_t i2 = 0; i2 < m; i2++)
      memcpy(mg->pad + (i3 * lc + i2) * lc, u + (i3 * m + i2) * m, sizeof(double) * (size_t)m);
  fftw_execute(mg->big_r2c);
  const double norm = 1.0 / (double)mg->n_conv;
#pragma omp parallel for num_threads(mg->o.nthreads)
  for (int64_t i = 0; i < mg->n_conv_spec; i++) {
    mg->pad_ft[i] *= mg->kernel_ft[i] * norm;
  }
  fftw_execute(mg->big_c2r);
  for (int64_t i3 = 0; i3 < m; i3++)
    for (int64_t i2 = 0; i2 < m; i2++)
      memcpy(out + (i3 * m + i2) * m, mg->pad + (i3 * lc + i2) * lc, sizeof(double) * (size_t)m);
}

/* out += phi F* P F u: the part of u outside the resolution ball. */
static void add_ball_penalty(spf_merger *mg, double phi, const double *u, double *out)
{
  memcpy(mg->small, u, sizeof(double) * (size_t)mg->n_small);
  fftw_execute(mg->small_r2c);
  const double norm = 1.0 / (double)mg->n_small;
  for (int64_t i = 0; i < mg->n_small_spec; i++) mg->small_ft[i] = mg->outside[i] ? mg->small_ft[i] * norm : 0.0;
  fftw_execute(mg->small_c2r);
  for (int64_t i = 0; i < mg->n_small; i++) out[i] += phi * mg->small[i];
}

static void apply_operator(spf_merger *mg, double rho, double phi, const double *u, double *out)
{
  apply_toeplitz(mg, u, out);
  for (int64_t i = 0; i < mg->n_small; i++) out[i] += rho * u[i];
  if (phi != 0.0) add_ball_penalty(mg, phi, u, out);
}

int spf_merger_apply(spf_merger *mg, double rho, double phi, const double *u, double *out)
{
  if (!mg || !u || !out) return SPF_ERR_NULL;
  refresh_kernel(mg);
  apply_operator(mg, rho, phi, u, out);
  return SPF_OK;
}

static double dot(const double *a, const double *b, int64_t n)
{
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

int spf_merger_solve(spf_merger *mg, double rho, double phi, const double *u0, double *u,
                     spf_merge_stats *stats)
{
  if (!mg || !u) return SPF_ERR_NULL;
  if (!(rho >= 0 && isfinite(rho)) || !(phi >= 0 && isfinite(phi))) return SPF_ERR_ARG;
  const double t0 = omp_get_wtime();
  refresh_kernel(mg);
  const int64_t n = mg->n_small;
  double *rhs = malloc(sizeof(double) * (size_t)n), *r = malloc(sizeof(double) * (size_t)n);
  double *p = malloc(sizeof(double) * (size_t)n), *hp = malloc(sizeof(double) * (size_t)n);
  if (!rhs || !r || !p || !hp) {
    free(rhs); free(r); free(p); free(hp);
    return SPF_ERR_ALLOC;
  }
  for (int64_t i = 0; i < n; i++) {
    rhs[i] = mg->rhs[i] + (u0 ? rho * u0[i] : 0.0);
    u[i] = u0 ? u0[i] : 0.0;
  }
  apply_operator(mg, rho, phi, u, hp);
  for (int64_t i = 0; i < n; i++) r[i] = rhs[i] - hp[i];
  /* Preconditioned CG; z = C^-1 r (z = r without a preconditioner) lives in p's buffer
   * at first and in hp's after each step. */
  const int pc = mg->o.preconditioner;
  if (pc) apply_preconditioner(mg, rho, phi, r, p);
  else memcpy(p, r, sizeof(double) * (size_t)n);
  const double rhs_norm = sqrt(dot(rhs, rhs, n));
  double rr = dot(r, r, n), rz = dot(r, p, n);
  int it = 0;
  while (it < mg->o.cg_max_iter && sqrt(rr) > mg->o.cg_tol * rhs_norm) {
    apply_operator(mg, rho, phi, p, hp);
    const double php = dot(p, hp, n);
    if (!(php > 0) || !(rz > 0)) break; /* singular along p: nothing more to gain */
    const double alpha = rz / php;
    for (int64_t i = 0; i < n; i++) {
      u[i] += alpha * p[i];
      r[i] -= alpha * hp[i];
    }
    rr = dot(r, r, n);
    if (pc) apply_preconditioner(mg, rho, phi, r, hp);
    else memcpy(hp, r, sizeof(double) * (size_t)n);
    const double rz_new = dot(r, hp, n);
    const double beta = rz_new / rz;
    for (int64_t i = 0; i < n; i++) p[i] = hp[i] + beta * p[i];
    rz = rz_new;
    it++;
  }
  if (stats) {
    /* ||W^(1/2)(A u - b)||^2 = u.(A*WA u) - 2 u.(A*W b) + sum w b^2 */
    apply_toeplitz(mg, u, hp);
    double misfit2 = dot(u, hp, n) - 2.0 * dot(u, mg->rhs, n) + mg->wb2;
    stats->iterations = it;
    stats->rel_residual = rhs_norm > 0 ? sqrt(rr) / rhs_norm : 0.0;
    stats->data_misfit = sqrt(misfit2 > 0 ? misfit2 : 0.0);
    stats->solution_norm = sqrt(dot(u, u, n));
    stats->rho = rho;
    stats->phi = phi;
    stats->seconds = omp_get_wtime() - t0;
  }
  free(rhs); free(r); free(p); free(hp);
  return SPF_OK;
}

int spf_merger_solve_shifted(spf_merger *mg, int n_rho, const double *rhos, double phi, const double *u0,
                             double *u, spf_merge_stats *stats)
{
  if (!mg || !rhos || !u) return SPF_ERR_NULL;
  if (n_rho < 1) return SPF_ERR_SIZE;
  if (mg->o.preconditioner) return SPF_ERR_OPTION; /* the shifts would need their own preconditioners */
  if (!(phi >= 0 && isfinite(phi))) return SPF_ERR_ARG;
  int base = 0;
  for (int s = 0; s < n_rho; s++) {
    if (!(rhos[s] >= 0 && isfinite(rhos[s]))) return SPF_ERR_ARG;
    if (rhos[s] < rhos[base]) base = s;
  }
  const double t0 = omp_get_wtime();
  refresh_kernel(mg);
  const int64_t n = mg->n_small;
  const double rb = rhos[base];
  double *r = malloc(sizeof(double) * (size_t)n), *hp = malloc(sizeof(double) * (size_t)n);
  double *p = malloc(sizeof(double) * (size_t)n * (size_t)n_rho);
  double *sc = malloc(sizeof(double) * 6 * (size_t)n_rho);
  int *iters = malloc(sizeof(int) * (size_t)n_rho);
  if (!r || !hp || !p || !sc || !iters) {
    free(r); free(hp); free(p); free(sc); free(iters);
    return SPF_ERR_ALLOC;
  }
  /* Per shift: zeta (this and the last step's), the right-hand side's norm, the
   * residual norm at the stop, active. */
  double *zeta = sc, *zeta_old = sc + n_rho, *rhs_norm = sc + 2 * n_rho, *res = sc + 3 * n_rho,
         *active = sc + 4 * n_rho;
  for (int s = 0; s < n_rho; s++) {
    double *us = u + (int64_t)s * n;
    double nr = 0;
    for (int64_t i = 0; i < n; i++) {
      const double v = mg->rhs[i] + (u0 ? rhos[s] * u0[i] : 0.0);
      nr += v * v;
      us[i] = u0 ? u0[i] : 0.0;
    }
    rhs_norm[s] = sqrt(nr);
    zeta[s] = zeta_old[s] = 1;
    iters[s] = 0;
  }
  /* Every system starts from u0 with rhs + rho_s u0, so every residual is
   * rhs - (H_0) u0 with H_0 = A* W A + phi F* P F: one Krylov space for all shifts. */
  if (u0) {
    apply_operator(mg, 0.0, phi, u0, hp);
    for (int64_t i = 0; i < n; i++) r[i] = mg->rhs[i] - hp[i];
  } else {
    memcpy(r, mg->rhs, sizeof(double) * (size_t)n);
  }
  for (int s = 0; s < n_rho; s++) memcpy(p + (int64_t)s * n, r, sizeof(double) * (size_t)n);
  double rr = dot(r, r, n), alpha_prev = 1, beta_prev = 0;
  int n_active = 0;
  for (int s = 0; s < n_rho; s++) {
    res[s] = sqrt(rr);
    active[s] = res[s] > mg->o.cg_tol * rhs_norm[s];
    n_active += active[s] != 0;
  }
  double *pb = p + (int64_t)base * n; /* the base system's direction drives the recurrence */
  for (int it = 0; it < mg->o.cg_max_iter && n_active > 0; it++) {
    apply_operator(mg, rb, phi, pb, hp);
    const double php = dot(pb, hp, n);
    if (!(php > 0) || !(rr > 0)) break; /* singular along p: nothing more to gain */
    const double alpha = rr / php;
    for (int s = 0; s < n_rho; s++) {
      if (!active[s] && s != base) continue;
      /* The shifted system's residual is zeta_s times the base's (derived from CG's
       * three-term residual recurrence); its step is alpha zeta_new / zeta. */
      const double sig = rhos[s] - rb, z = zeta[s], zo = zeta_old[s];
      const double zn = z * zo * alpha_prev / (zo * alpha_prev * (1 + alpha * sig) + alpha * beta_prev * (zo - z));
      if (active[s]) {
        const double as = alpha * zn / z;
        double *us = u + (int64_t)s * n, *ps = p + (int64_t)s * n;
        for (int64_t i = 0; i < n; i++) us[i] += as * ps[i];
      }
      zeta_old[s] = z;
      zeta[s] = zn;
    }
    for (int64_t i = 0; i < n; i++) r[i] -= alpha * hp[i];
    const double rr_new = dot(r, r, n), beta = rr_new / rr;
    for (int s = 0; s < n_rho; s++) {
      if (!active[s] && s != base) continue;
      const double q = zeta[s] / zeta_old[s], bs = beta * q * q, zs = zeta[s];
      double *ps = p + (int64_t)s * n;
      for (int64_t i = 0; i < n; i++) ps[i] = zs * r[i] + bs * ps[i];
    }
    rr = rr_new;
    alpha_prev = alpha;
    beta_prev = beta;
    for (int s = 0; s < n_rho; s++) {
      if (!active[s]) continue;
      iters[s] = it + 1;
      res[s] = fabs(zeta[s]) * sqrt(rr);
      if (!(res[s] > mg->o.cg_tol * rhs_norm[s])) {
        active[s] = 0;
        n_active--;
      }
    }
  }
  const double seconds = omp_get_wtime() - t0;
  for (int s = 0; s < n_rho && stats; s++) {
    const double *us = u + (int64_t)s * n;
    apply_toeplitz(mg, us, hp);
    const double misfit2 = dot(us, hp, n) - 2.0 * dot(us, mg->rhs, n) + mg->wb2;
    stats[s] = (spf_merge_stats){iters[s], rhs_norm[s] > 0 ? res[s] / rhs_norm[s] : 0.0,
                                 sqrt(misfit2 > 0 ? misfit2 : 0.0), sqrt(dot(us, us, n)), rhos[s], phi,
                                 seconds / n_rho};
  }
  free(r); free(hp); free(p); free(sc); free(iters);
  return SPF_OK;
}

/* Curvature of the circle through three points (Menger), signed so that an L's corner
 * (misfit falling, then norm falling) is positive. */
static double menger(double x1, double y1, double x2, double y2, double x3, double y3)
{
  double a = hypot(x2 - x1, y2 - y1), b = hypot(x3 - x2, y3 - y2), c = hypot(x3 - x1, y3 - y1);
  double cross = (x2 - x1) * (y3 - y1) - (y2 - y1) * (x3 - x1);
  double den = a * b * c;
  return den > 0 ? 2.0 * cross / den : 0.0;
}

/* The L-curve's corner: the interior point of largest |curvature| of (log misfit, log
 * ||u||); with fewer than three values, the first. */
static int lcurve_corner(int n_rho, const spf_merge_stats *st)
{
  int best = 0;
  double best_k = -INFINITY;
  for (int i = 1; i + 1 < n_rho; i++) {
    double k = menger(log(st[i - 1].data_misfit + 1e-300), log(st[i - 1].solution_norm + 1e-300),
                      log(st[i].data_misfit + 1e-300), log(st[i].solution_norm + 1e-300),
                      log(st[i + 1].data_misfit + 1e-300), log(st[i + 1].solution_norm + 1e-300));
    k = fabs(k);
    if (k > best_k) {
      best_k = k;
      best = i;
    }
  }
  return best;
}

enum { STAT_FIELDS = 7 };

static void stats_pack(const spf_merge_stats *s, double *d)
{
  d[0] = s->iterations, d[1] = s->rel_residual, d[2] = s->data_misfit, d[3] = s->solution_norm;
  d[4] = s->rho, d[5] = s->phi, d[6] = s->seconds;
}

static void stats_unpack(const double *d, spf_merge_stats *s)
{
  *s = (spf_merge_stats){(int)d[0], d[1], d[2], d[3], d[4], d[5], d[6]};
}

int spf_merger_solve_lcurve_shared(spf_merger *mg, const spf_comm *comm, int n_rho, const double *rhos, double phi,
                                   const double *u0, double *u, int *chosen, spf_merge_stats *stats)
{
  if (!mg || !rhos || !u) return SPF_ERR_NULL;
  if (n_rho < 1) return SPF_ERR_SIZE;
  const int64_t n = mg->n_small;
  if (!mg->o.preconditioner) {
    /* Plain CG: one Krylov space serves every rho (spf_merger_solve_shifted), so every
     * rank solves them all, the same bits, in the time of one solve. */
    double *sol = malloc(sizeof(double) * (size_t)n * (size_t)n_rho);
    spf_merge_stats *st = malloc(sizeof(spf_merge_stats) * (size_t)n_rho);
    int rc = sol && st ? SPF_OK : SPF_ERR_ALLOC;
    if (!rc) rc = spf_merger_solve_shifted(mg, n_rho, rhos, phi, u0, sol, st);
    rc = spf_comm_agree(comm, rc);
    if (!rc) {
      const int best = lcurve_corner(n_rho, st);
      memcpy(u, sol + (int64_t)best * n, sizeof(double) * (size_t)n);
      if (chosen) *chosen = best;
      if (stats) memcpy(stats, st, sizeof(spf_merge_stats) * (size_t)n_rho);
    }
    free(sol);
    free(st);
    return rc;
  }
  const int rank = comm && comm->active ? comm->rank : 0, size = comm && comm->active ? comm->size : 1;
  const int mine = (n_rho - rank + size - 1) / size; /* values rank, rank + size, ... */
  double *sol = malloc(sizeof(double) * (size_t)(n * (mine > 0 ? mine : 1)));
  double *packed = calloc((size_t)n_rho * STAT_FIELDS, sizeof(double));
  spf_merge_stats *st = malloc(sizeof(spf_merge_stats) * (size_t)n_rho);
  int rc = sol && packed && st ? SPF_OK : SPF_ERR_ALLOC;
  for (int i = rank; i < n_rho && !rc; i += size) {
    rc = spf_merger_solve(mg, rhos[i], phi, u0, sol + (i / size) * n, &st[i]);
    if (!rc) stats_pack(&st[i], packed + i * STAT_FIELDS);
  }
  /* Each value was solved on one rank and is zero elsewhere: the sum is a copy. */
  rc = spf_comm_agree(comm, rc);
  if (!rc) rc = spf_comm_sum_double(comm, packed, (int64_t)n_rho * STAT_FIELDS);
  int best = 0;
  if (!rc) {
    for (int i = 0; i < n_rho; i++) stats_unpack(packed + i * STAT_FIELDS, &st[i]);
    best = lcurve_corner(n_rho, st);
    if (rank == best % size) memcpy(u, sol + (best / size) * n, sizeof(double) * (size_t)n);
    rc = spf_comm_bcast(comm, u, n * (int64_t)sizeof(double), best % size);
  }
  if (!rc) {
    if (chosen) *chosen = best;
    if (stats) memcpy(stats, st, sizeof(spf_merge_stats) * (size_t)n_rho);
  }
  free(sol);
  free(packed);
  free(st);
  return rc;
}

int spf_merger_solve_lcurve(spf_merger *mg, int n_rho, const double *rhos, double phi, const double *u0,
                            double *u, int *chosen, spf_merge_stats *stats)
{
  return spf_merger_solve_lcurve_shared(mg, NULL, n_rho, rhos, phi, u0, u, chosen, stats);
}

int spf_intensity_clip(int64_t m, double *u, double *negative_fraction)
{
  if (!u) return SPF_ERR_NULL;
  if (m < 1 || m % 2 == 0) return SPF_ERR_SIZE;
  const int64_t n = m * m * m, c = (m - 1) / 2;
  fftw_complex *f = fftw_malloc(sizeof(fftw_complex) * (size_t)n);
  int rc = f ? SPF_OK : SPF_ERR_ALLOC;
  fftw_plan fwd = NULL, bwd = NULL;
  if (!rc) {
    /* One thread, planned here: the result must not depend on another module's setting. */
    spf_fftw_threads_init();
    fftw_plan_with_nthreads(1);
    fwd = fftw_plan_dft_3d((int)m, (int)m, (int)m, f, f, FFTW_FORWARD, FFTW_ESTIMATE);
    bwd = fftw_plan_dft_3d((int)m, (int)m, (int)m, f, f, FFTW_BACKWARD, FFTW_ESTIMATE);
    if (!fwd || !bwd) rc = SPF_ERR_FFTW;
  }
  int64_t negative = 0;
  if (!rc) {
    /* Lag 0 at index 0; the spectrum of a centrosymmetric u is real: its intensity. */
    for (int64_t i3 = 0; i3 < m; i3++)
      for (int64_t i2 = 0; i2 < m; i2++)
        for (int64_t i1 = 0; i1 < m; i1++)
          f[(((i3 + m - c) % m) * m + (i2 + m - c) % m) * m + (i1 + m - c) % m] = u[(i3 * m + i2) * m + i1];
    fftw_execute(fwd);
    for (int64_t j = 0; j < n; j++) {
      const double re = creal(f[j]);
      negative += re < 0;
      f[j] = re > 0 ? re : 0.0;
    }
    fftw_execute(bwd);
    for (int64_t i3 = 0; i3 < m; i3++)
      for (int64_t i2 = 0; i2 < m; i2++)
        for (int64_t i1 = 0; i1 < m; i1++)
          u[(i3 * m + i2) * m + i1] = creal(f[(((i3 + m - c) % m) * m + (i2 + m - c) % m) * m + (i1 + m - c) % m]) / (double)n;
  }
  if (negative_fraction) *negative_fraction = rc ? NAN : (double)negative / (double)n;
  if (fwd) fftw_destroy_plan(fwd);
  if (bwd) fftw_destroy_plan(bwd);
  fftw_free(f);
  return rc;
}
