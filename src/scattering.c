/* Structure factors by Gaussian gridding and one type-2 NUFFT (see scattering.h).
 *
 * With a window g(h) = exp(-tau |h|^2), F g is the transform of
 *   rho_tau(r) = sum_atoms sum_terms amp (pi / beta)^(3/2) exp(-pi^2 |r - r_a|^2 / beta),
 * beta = b_i / 4 + tau (and beta = tau for the constant term c). Sampling rho_tau at
 * spacing delta = 1 / (alpha s_max) aliases (F g)(h + m / delta) onto h; for |h| <= s_max
 * the nearest alias sits at distance (alpha - 1) s_max, where g has fallen to
 * exp(-tau (alpha - 1)^2 s_max^2). Dividing by g(h) >= exp(-tau s_max^2) afterwards
 * leaves an aliasing error exp(-tau s_max^2 ((alpha - 1)^2 - 1)), which fixes tau. */
#include "spinifel/scattering.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/nufft.h"

#define OVERSAMPLING 4.0 /* alpha: real-space sampling rate over the band limit */

struct spf_scattering_s {
  int use_double, nthreads;
  spf_nufft_plan pd;
  spf_nufftf_plan pf;
  double centre[3], delta, tau, s_max;
  int64_t n[3];
  double grid_seconds;
  void *x;       /* 3 * cap NUFFT coordinates, float or double */
  void *c;       /* cap NUFFT outputs, float or double complex */
  int64_t cap;
};

typedef struct {
  double amp, beta, rcut; /* one Gaussian term of one atom type */
} gauss_term;

void spf_scattering_free(spf_scattering *sc)
{
  if (!sc) return;
  spf_nufft_destroy(sc->pd);
  spf_nufftf_destroy(sc->pf);
  free(sc->x);
  free(sc->c);
  free(sc);
}

/* Add every atom's Gaussians, times scale, to a real grid of n[0] x n[1] x n[2] points
 * at spacing d from org (x fastest). Threads own z-planes, so there are no races. */
static void grid_gaussians(const int64_t n[3], double d, const double org[3], int nthreads, int64_t n_atoms,
                           const double *xyz, const int *type, const gauss_term *terms, int n_terms_per_type,
                           double scale_all, double *grid)
{
  const int64_t n0 = n[0], n1 = n[1], n2 = n[2];
#pragma omp parallel num_threads(nthreads)
  {
    double *ex = malloc(sizeof(double) * (size_t)n0), *ey = malloc(sizeof(double) * (size_t)n1);
#pragma omp for schedule(dynamic, 1)
    for (int64_t iz = 0; iz < n2; iz++) {
      if (!ex || !ey) continue;
      const double z = org[2] + (double)iz * d;
      double *plane = grid + iz * n0 * n1;
      for (int64_t a = 0; a < n_atoms; a++) {
        const double *r = xyz + 3 * a;
        const double dz = z - r[2];
        for (int t = 0; t < n_terms_per_type; t++) {
          const gauss_term *g = &terms[type[a] * n_terms_per_type + t];
          if (g->amp == 0.0 || fabs(dz) > g->rcut) continue;
          const double k = M_PI * M_PI / g->beta;
          const double scale = scale_all * g->amp * pow(M_PI / g->beta, 1.5) * exp(-k * dz * dz);
          int64_t x0 = (int64_t)ceil((r[0] - g->rcut - org[0]) / d), x1 = (int64_t)floor((r[0] + g->rcut - org[0]) / d);
          int64_t y0 = (int64_t)ceil((r[1] - g->rcut - org[1]) / d), y1 = (int64_t)floor((r[1] + g->rcut - org[1]) / d);
          if (x0 < 0) x0 = 0;
          if (y0 < 0) y0 = 0;
          if (x1 > n0 - 1) x1 = n0 - 1;
          if (y1 > n1 - 1) y1 = n1 - 1;
          for (int64_t ix = x0; ix <= x1; ix++) {
            double dx = org[0] + (double)ix * d - r[0];
            ex[ix] = exp(-k * dx * dx);
          }
          for (int64_t iy = y0; iy <= y1; iy++) {
            double dy = org[1] + (double)iy * d - r[1];
            ey[iy] = scale * exp(-k * dy * dy);
          }
          for (int64_t iy = y0; iy <= y1; iy++) {
            double *row = plane + iy * n0;
            for (int64_t ix = x0; ix <= x1; ix++) row[ix] += ey[iy] * ex[ix];
          }
        }
      }
    }
    free(ex);
    free(ey);
  }
}

/* The Gaussian terms of every type, each widened by tau (A^2 in beta = b/4 + tau), with
 * cut-off radii where they fall below cut of their peak. NULL if some beta <= 0. */
static gauss_term *make_terms(int n_types, const spf_gaussian_form_factor *ff, double tau, double cut, double *margin)
{
  gauss_term *terms = malloc(sizeof(gauss_term) * (size_t)(n_types * 6));
  if (!terms) return NULL;
  const double lcut = log(1.0 / cut);
  *margin = 0.0;
  for (int t = 0; t < n_types; t++)
    for (int i = 0; i < 6; i++) {
      gauss_term *g = &terms[t * 6 + i];
      g->amp = i < 5 ? ff[t].a[i] : ff[t].c;
      g->beta = (i < 5 ? ff[t].b[i] / 4.0 : 0.0) + tau;
      if (!(g->beta > 0.0)) { /* a form factor that grows faster than tau decays */
        free(terms);
        return NULL;
      }
      g->rcut = sqrt(g->beta * lcut) / M_PI;
      if (g->amp != 0.0 && g->rcut > *margin) *margin = g->rcut;
    }
  return terms;
}

int spf_scattering_density(int64_t n_atoms, const double *xyz, const int *type, int n_types,
                           const spf_gaussian_form_factor *ff, double b_extra, int64_t n, double voxel,
                           const double origin[3], int nthreads, float *out)
{
  if ((n_atoms > 0 && (!xyz || !type)) || !ff || !origin || !out) return SPF_ERR_NULL;
  if (n < 1 || n_types < 1 || n_atoms < 0) return SPF_ERR_SIZE;
  if (!(b_extra > 0 && isfinite(b_extra)) || !(voxel > 0 && isfinite(voxel))) return SPF_ERR_ARG;
  double margin;
  gauss_term *terms = make_terms(n_types, ff, b_extra / 4.0, 1e-7, &margin);
  if (!terms) return SPF_ERR_ARG;
  double *grid = calloc((size_t)(n * n * n), sizeof(double));
  if (!grid) {
    free(terms);
    return SPF_ERR_ALLOC;
  }
  const int64_t dims[3] = {n, n, n};
  grid_gaussians(dims, voxel, origin, nthreads > 0 ? nthreads : omp_get_max_threads(), n_atoms, xyz, type, terms, 6,
                 1.0, grid);
  for (int64_t i = 0; i < n * n * n; i++) out[i] = (float)grid[i];
  free(grid);
  free(terms);
  return SPF_OK;
}

int spf_scattering_make(int64_t n_atoms, const double *xyz, const int *type, int n_types,
                        const spf_gaussian_form_factor *ff, double s_max, double tol,
                        int nthreads, spf_scattering **out)
{
  if (!out) return SPF_ERR_NULL;
  *out = NULL;
  if (n_atoms < 0 || n_types < 1) return SPF_ERR_SIZE;
  if (n_atoms > 0 && (!xyz || !type)) return SPF_ERR_NULL;
  if (!ff) return SPF_ERR_NULL;
  if (!(s_max > 0.0 && isfinite(s_max))) return SPF_ERR_ARG;
  if (!(tol >= 1e-5 && tol <= 0.1)) return SPF_ERR_TOLERANCE;
  for (int64_t a = 0; a < n_atoms; a++) {
    if (type[a] < 0 || type[a] >= n_types) return SPF_ERR_ARG;
    for (int k = 0; k < 3; k++)
      if (!isfinite(xyz[3 * a + k])) return SPF_ERR_DATA;
  }
  spf_scattering *sc = calloc(1, sizeof *sc);
  if (!sc) return SPF_ERR_ALLOC;
  sc->nthreads = nthreads > 0 ? nthreads : omp_get_max_threads();
  sc->s_max = s_max;
  sc->delta = 1.0 / (OVERSAMPLING * s_max);
  const double alias = tol * 0.1;
  const double ts2 = log(1.0 / alias) / ((OVERSAMPLING - 1) * (OVERSAMPLING - 1) - 1);
  sc->tau = ts2 / (s_max * s_max);
  /* The NUFFT's error is amplified by 1/g <= exp(tau s_max^2) at the band edge. */
  const double nufft_tol = tol / (2.0 * exp(ts2));
  sc->use_double = nufft_tol < 1e-5;
  int rc = SPF_OK;

  /* Gaussian terms per type, cut off where they fall below tol/1000 of their peak. */
  double margin = 0.0;
  gauss_term *terms = make_terms(n_types, ff, sc->tau, tol * 1e-3, &margin);
  if (!terms) {
    free(sc);
    return SPF_ERR_ARG;
  }
  double lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0};
  for (int k = 0; k < 3; k++) {
    lo[k] = n_atoms ? INFINITY : 0;
    hi[k] = n_atoms ? -INFINITY : 0;
  }
  for (int64_t a = 0; a < n_atoms; a++)
    for (int k = 0; k < 3; k++) {
      lo[k] = fmin(lo[k], xyz[3 * a + k]);
      hi[k] = fmax(hi[k], xyz[3 * a + k]);
    }
  int64_t total = 1;
  for (int k = 0; k < 3; k++) {
    sc->centre[k] = 0.5 * (lo[k] + hi[k]);
    sc->n[k] = 2 * (int64_t)ceil((0.5 * (hi[k] - lo[k]) + margin) / sc->delta) + 1;
    total *= sc->n[k];
  }
  double *real = calloc((size_t)total, sizeof(double));
  double complex *grid = real ? malloc(sizeof(double complex) * (size_t)total) : NULL;
  if (!grid) {
    free(real);
    free(terms);
    free(sc);
    return SPF_ERR_ALLOC;
  }
  double org[3];
  for (int k = 0; k < 3; k++) org[k] = sc->centre[k] - 0.5 * (double)(sc->n[k] - 1) * sc->delta;
  double t0 = omp_get_wtime();
  grid_gaussians(sc->n, sc->delta, org, sc->nthreads, n_atoms, xyz, type, terms, 6,
                 sc->delta * sc->delta * sc->delta, real);
  for (int64_t i = 0; i < total; i++) grid[i] = real[i];
  free(real);
  sc->grid_seconds = omp_get_wtime() - t0;
  free(terms);

  spf_nufft_opts o;
  spf_nufft_default_opts(&o);
  o.upsampfac = 2.0; /* fixed: the bits must not depend on how many points a batch has */
  o.nthreads = sc->nthreads;
  /* One FFT per molecule: MEASURE would cost more than it saves, and it picks plans by
   * timing, which could change the last bits of F from run to run. */
  o.fftw_measure = 0;
  if (sc->use_double) {
    rc = spf_nufft_make_plan(2, 3, sc->n, +1, 1, nufft_tol, &o, &sc->pd);
    if (!rc) rc = spf_nufft_load_modes(sc->pd, grid);
  } else {
    float complex *gf = malloc(sizeof(float complex) * (size_t)total);
    if (!gf) rc = SPF_ERR_ALLOC;
    for (int64_t i = 0; !rc && i < total; i++) gf[i] = (float complex)grid[i];
    double t = nufft_tol > 1e-6 ? nufft_tol : 1e-6;
    if (!rc) rc = spf_nufftf_make_plan(2, 3, sc->n, +1, 1, t, &o, &sc->pf);
    if (!rc) rc = spf_nufftf_load_modes(sc->pf, gf);
    free(gf);
  }
  free(grid);
  if (rc) {
    spf_scattering_free(sc);
    return rc;
  }
  *out = sc;
  return SPF_OK;
}

int spf_scattering_eval(spf_scattering *sc, int64_t n, const float *hx, const float *hy,
                        const float *hz, float complex *F)
{
  if (!sc) return SPF_ERR_NULL;
  if (n < 0) return SPF_ERR_SIZE;
  if (n > 0 && (!hx || !hy || !hz || !F)) return SPF_ERR_NULL;
  const double lim2 = sc->s_max * sc->s_max * (1.0 + 1e-9);
  int bad = 0;
#pragma omp parallel for num_threads(sc->nthreads) reduction(|| : bad)
  for (int64_t j = 0; j < n; j++) {
    double h2 = (double)hx[j] * hx[j] + (double)hy[j] * hy[j] + (double)hz[j] * hz[j];
    bad = bad || !(h2 <= lim2);
  }
  if (bad) return SPF_ERR_ARG;
  if (n > sc->cap) {
    free(sc->x);
    free(sc->c);
    size_t rs = sc->use_double ? sizeof(double) : sizeof(float);
    sc->x = malloc(rs * 3 * (size_t)n);
    sc->c = malloc(2 * rs * (size_t)n);
    sc->cap = sc->x && sc->c ? n : 0;
    if (!sc->cap) return SPF_ERR_ALLOC;
  }
  const double scale = 2.0 * M_PI * sc->delta;
  const float *h[3] = {hx, hy, hz};
  int rc;
  if (sc->use_double) {
    double *x = sc->x;
#pragma omp parallel for num_threads(sc->nthreads) collapse(2)
    for (int k = 0; k < 3; k++)
      for (int64_t j = 0; j < n; j++) x[k * n + j] = scale * h[k][j];
    rc = spf_nufft_set_points(sc->pd, n, x, x + n, x + 2 * n);
    if (!rc) rc = spf_nufft_interpolate(sc->pd, sc->c);
  } else {
    float *x = sc->x;
#pragma omp parallel for num_threads(sc->nthreads) collapse(2)
    for (int k = 0; k < 3; k++)
      for (int64_t j = 0; j < n; j++) x[k * n + j] = (float)(scale * h[k][j]);
    rc = spf_nufftf_set_points(sc->pf, n, x, x + n, x + 2 * n);
    if (!rc) rc = spf_nufftf_interpolate(sc->pf, sc->c);
  }
  if (rc) return rc;
  /* Undo the window and put the molecule back at its centre. */
  const double tau = sc->tau, *r0 = sc->centre;
  const int dbl = sc->use_double;
  const double complex *cd = sc->c;
  const float complex *cf = sc->c;
#pragma omp parallel for num_threads(sc->nthreads) schedule(static)
  for (int64_t j = 0; j < n; j++) {
    double x = hx[j], y = hy[j], z = hz[j];
    double ph = 2.0 * M_PI * (x * r0[0] + y * r0[1] + z * r0[2]);
    double gain = exp(tau * (x * x + y * y + z * z));
    double complex v = dbl ? cd[j] : (double complex)cf[j];
    F[j] = (float complex)(v * gain * (cos(ph) + I * sin(ph)));
  }
  return SPF_OK;
}

static double form_factor(const spf_gaussian_form_factor *f, double s)
{
  double v = f->c;
  for (int i = 0; i < 5; i++) v += f->a[i] * exp(-f->b[i] * s * s / 4.0);
  return v;
}

void spf_scattering_direct(int64_t n_atoms, const double *xyz, const int *type,
                           const spf_gaussian_form_factor *ff, int64_t n, const float *hx,
                           const float *hy, const float *hz, double complex *F)
{
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; j++) {
    double h[3] = {hx[j], hy[j], hz[j]};
    double s = sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]);
    double complex sum = 0;
    for (int64_t a = 0; a < n_atoms; a++) {
      const double *r = xyz + 3 * a;
      double ph = 2.0 * M_PI * (h[0] * r[0] + h[1] * r[1] + h[2] * r[2]);
      sum += form_factor(&ff[type[a]], s) * (cos(ph) + I * sin(ph));
    }
    F[j] = sum;
  }
}

void spf_scattering_info(const spf_scattering *sc, int64_t *grid_n, double *grid_seconds)
{
  if (!sc) return;
  if (grid_n)
    for (int k = 0; k < 3; k++) grid_n[k] = sc->n[k];
  if (grid_seconds) *grid_seconds = sc->grid_seconds;
}
