/* Slicing by a float type-2 NUFFT with the volume loaded once (see slicing.h). */
#include "spinifel/slicing.h"

#include <complex.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "spinifel/error.h"
#include "spinifel/nufft.h"

struct spf_slicer_s {
  int64_t m, np, max_orient;
  int nthreads;
  double scale;       /* pi / (s_max * oversampling) */
  double *s;          /* 3 * np, pixel-major */
  spf_nufftf_plan plan;
  float *x;           /* 3 * max_orient * np coordinates */
  double t_sort, t_interp;
  int loaded;
};

void spf_slicer_free(spf_slicer *sl)
{
  if (!sl) return;
  spf_nufftf_destroy(sl->plan);
  free(sl->s);
  free(sl->x);
  free(sl);
}

int spf_slicer_make(int64_t M, int64_t n_pixels, const double *s, double s_max, double oversampling,
                    double tol, int64_t max_orient, int nthreads, spf_slicer **out)
{
  if (!out) return SPF_ERR_NULL;
  *out = NULL;
  if (!s) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0 || n_pixels < 1 || max_orient < 1) return SPF_ERR_SIZE;
  if (!(s_max > 0 && isfinite(s_max)) || !(oversampling >= 1 && isfinite(oversampling))) return SPF_ERR_ARG;
  const double lim = s_max * oversampling * (1 + 1e-9);
  for (int64_t p = 0; p < n_pixels; p++) {
    double n2 = s[3 * p] * s[3 * p] + s[3 * p + 1] * s[3 * p + 1] + s[3 * p + 2] * s[3 * p + 2];
    if (!(n2 <= lim * lim)) return SPF_ERR_ARG; /* also NaN */
  }
  spf_slicer *sl = calloc(1, sizeof *sl);
  if (!sl) return SPF_ERR_ALLOC;
  sl->m = M;
  sl->np = n_pixels;
  sl->max_orient = max_orient;
  sl->nthreads = nthreads > 0 ? nthreads : omp_get_max_threads();
  sl->scale = M_PI / (s_max * oversampling);
  sl->s = malloc(sizeof(double) * 3 * (size_t)n_pixels);
  sl->x = malloc(sizeof(float) * 3 * (size_t)(max_orient * n_pixels));
  if (!sl->s || !sl->x) {
    spf_slicer_free(sl);
    return SPF_ERR_ALLOC;
  }
  for (int64_t i = 0; i < 3 * n_pixels; i++) sl->s[i] = s[i];
  spf_nufft_opts o;
  spf_nufft_default_opts(&o);
  o.upsampfac = 2.0; /* fixed: the bits must not depend on how many points a batch has */
  o.nthreads = sl->nthreads;
  /* One FFT per volume: FFTW_MEASURE would not pay, and its timing-dependent plans
   * would make runs differ in the last bits from one process to the next. */
  o.fftw_measure = 0;
  int64_t n[3] = {M, M, M};
  int rc = spf_nufftf_make_plan(2, 3, n, +1, 1, tol, &o, &sl->plan);
  if (rc) {
    spf_slicer_free(sl);
    return rc;
  }
  *out = sl;
  return SPF_OK;
}

int spf_slicer_set_volume(spf_slicer *sl, const double *u)
{
  if (!sl || !u) return SPF_ERR_NULL;
  const int64_t n = sl->m * sl->m * sl->m;
  float complex *f = malloc(sizeof(float complex) * (size_t)n);
  if (!f) return SPF_ERR_ALLOC;
  for (int64_t i = 0; i < n; i++) f[i] = (float)u[i];
  int rc = spf_nufftf_load_modes(sl->plan, f);
  free(f);
  sl->loaded = rc == SPF_OK;
  return rc;
}

void spf_slicer_points(const spf_slicer *sl, const double *rot, double *x, double *y, double *z)
{
  /* h = R^T s, scaled to NUFFT radians. */
  for (int64_t p = 0; p < sl->np; p++) {
    const double *s = sl->s + 3 * p;
    x[p] = sl->scale * (rot[0] * s[0] + rot[3] * s[1] + rot[6] * s[2]);
    y[p] = sl->scale * (rot[1] * s[0] + rot[4] * s[1] + rot[7] * s[2]);
    z[p] = sl->scale * (rot[2] * s[0] + rot[5] * s[1] + rot[8] * s[2]);
  }
}

int spf_slicer_slice(spf_slicer *sl, int64_t n_orient, const double *rot, float *images)
{
  if (!sl || !rot || !images) return SPF_ERR_NULL;
  if (n_orient < 0 || n_orient > sl->max_orient) return SPF_ERR_SIZE;
  if (!sl->loaded) return SPF_ERR_NO_MODES;
  const int64_t np = sl->np, npts = n_orient * np;
  float *x = sl->x, *y = x + npts, *z = y + npts;
#pragma omp parallel for num_threads(sl->nthreads) schedule(static)
  for (int64_t m = 0; m < n_orient; m++) {
    const double *r = rot + 9 * m;
    for (int64_t p = 0; p < np; p++) {
      const double *s = sl->s + 3 * p;
      x[m * np + p] = (float)(sl->scale * (r[0] * s[0] + r[3] * s[1] + r[6] * s[2]));
      y[m * np + p] = (float)(sl->scale * (r[1] * s[0] + r[4] * s[1] + r[7] * s[2]));
      z[m * np + p] = (float)(sl->scale * (r[2] * s[0] + r[5] * s[1] + r[8] * s[2]));
    }
  }
  double t0 = omp_get_wtime();
  int rc = spf_nufftf_set_points(sl->plan, npts, x, y, z);
  double t1 = omp_get_wtime();
  /* u is real and even, so its slices are real: only Re of the sums is computed. */
  if (!rc) rc = spf_nufftf_interpolate_real(sl->plan, images);
  if (rc) return rc;
  sl->t_sort += t1 - t0;
  sl->t_interp += omp_get_wtime() - t1;
  return SPF_OK;
}

void spf_slicer_timing(const spf_slicer *sl, double *sort_seconds, double *interp_seconds)
{
  if (!sl) return;
  if (sort_seconds) *sort_seconds = sl->t_sort;
  if (interp_seconds) *interp_seconds = sl->t_interp;
}
