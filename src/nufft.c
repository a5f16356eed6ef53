/* NUFFT options shared by both precisions; the transforms are in nufft_template.h. */
#include "spinifel/nufft.h"

void spf_nufft_default_opts(spf_nufft_opts *o)
{
  if (!o) return;
  o->modeord = 0;
  o->upsampfac = 0.0;
  o->nthreads = 0;
  o->fftw_measure = 1;
  o->kernel_eval = 1;
  o->sort = 1;
  o->max_subproblem = 0;
  o->deterministic = 1;
  o->pow2_fine_grid = -1;
}

#include <math.h>
#include <stdlib.h>

#include "spinifel/error.h"

/* Mode k of output slot a, in centred or FFT-style order. */
static int64_t slot_mode(int64_t a, int64_t n, int modeord)
{
  return modeord == 0 ? a - n / 2 : (a < (n + 1) / 2 ? a : a - n);
}

/* exp(i sign k x) for the n modes of one dimension, each from cos and sin directly
 * (no recurrence, so no accumulated rounding). */
static void phase_table(double x, int64_t n, int sign, int modeord, double complex *out)
{
  for (int64_t a = 0; a < n; a++) {
    double ph = (double)slot_mode(a, n, modeord) * x;
    out[a] = cos(ph) + I * (sign * sin(ph));
  }
}

int spf_nufft_direct(int type, int dim, const int64_t *n_modes, int sign, int modeord,
                     int64_t n_points, const double *x, const double *y, const double *z,
                     double complex *c, double complex *f)
{
  if (!n_modes || !f || (n_points > 0 && !c)) return SPF_ERR_NULL;
  if (type != 1 && type != 2) return SPF_ERR_TYPE;
  if (dim < 1 || dim > 3 || n_points < 0) return SPF_ERR_SIZE;
  int64_t n[3] = {1, 1, 1};
  const double *xyz[3] = {x, y, z};
  for (int d = 0; d < dim; d++) {
    n[d] = n_modes[d];
    if (n[d] < 1) return SPF_ERR_SIZE;
    if (n[d] > 1 && n_points > 0 && !xyz[d]) return SPF_ERR_NULL;
  }
  const int64_t n1 = n[0], n2 = n[1], n3 = n[2], ntot = n1 * n2 * n3;
  int rc = SPF_OK;
  /* e^{i k.x} = e^{i k1 x} e^{i k2 y} e^{i k3 z}: per point, three exact tables. */
  if (type == 2) {
#pragma omp parallel
    {
      double complex *tab = malloc(sizeof(double complex) * (size_t)(n1 + n2 + n3));
      if (!tab) {
#pragma omp atomic write
        rc = SPF_ERR_ALLOC;
      }
#pragma omp for schedule(static)
      for (int64_t j = 0; j < n_points; j++) {
        if (!tab) continue;
        double complex *ex = tab, *ey = tab + n1, *ez = tab + n1 + n2;
        phase_table(n1 > 1 ? x[j] : 0.0, n1, sign, modeord, ex);
        phase_table(n2 > 1 ? y[j] : 0.0, n2, sign, modeord, ey);
        phase_table(n3 > 1 ? z[j] : 0.0, n3, sign, modeord, ez);
        double complex sum = 0;
        for (int64_t a3 = 0; a3 < n3; a3++)
          for (int64_t a2 = 0; a2 < n2; a2++) {
            double complex row = 0;
            const double complex *fr = f + (a3 * n2 + a2) * n1;
            for (int64_t a1 = 0; a1 < n1; a1++) row += fr[a1] * ex[a1];
            sum += row * ey[a2] * ez[a3];
          }
        c[j] = sum;
      }
      free(tab);
    }
  } else {
    /* Threads own slabs of k3, so the sums need no reduction across threads. */
    for (int64_t a = 0; a < ntot; a++) f[a] = 0;
#pragma omp parallel
    {
      double complex *tab = malloc(sizeof(double complex) * (size_t)(n1 + n2));
      if (!tab) {
#pragma omp atomic write
        rc = SPF_ERR_ALLOC;
      }
#pragma omp for schedule(dynamic, 1)
      for (int64_t a3 = 0; a3 < n3; a3++) {
        if (!tab) continue;
        double complex *ex = tab, *ey = tab + n1;
        for (int64_t j = 0; j < n_points; j++) {
          double ph3 = (double)slot_mode(a3, n3, modeord) * (n3 > 1 ? z[j] : 0.0);
          double complex cz = c[j] * (cos(ph3) + I * (sign * sin(ph3)));
          phase_table(n1 > 1 ? x[j] : 0.0, n1, sign, modeord, ex);
          phase_table(n2 > 1 ? y[j] : 0.0, n2, sign, modeord, ey);
          for (int64_t a2 = 0; a2 < n2; a2++) {
            double complex cyz = cz * ey[a2];
            double complex *fr = f + (a3 * n2 + a2) * n1;
            for (int64_t a1 = 0; a1 < n1; a1++) fr[a1] += cyz * ex[a1];
          }
        }
      }
      free(tab);
    }
  }
  return rc;
}
