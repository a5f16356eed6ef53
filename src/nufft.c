/* NUFFT options shared by both precisions; the transforms are in nufft_template.h. */
#include "spinifel/nufft.h"

void spf_nufft_default_opts(spf_nufft_opts *o)
{
  if (!o) return;
  o->modeord = 0;
  o->upsampfac = 2.0;
  o->nthreads = 0;
  o->fftw_measure = 1;
  o->kernel_eval = 1;
  o->sort = 1;
  o->max_subproblem = 0;
  o->pow2_fine_grid = 0;
}

#include <math.h>
#include <stdlib.h>

#include "spinifel/error.h"

/* Mode k of output slot a, in centred or FFT-style order. */
static int64_t slot_mode(int64_t a, int64_t n, int modeord)
{
  return modeord == 0 ? a - n / 2 : (a < (n + 1) / 2 ? a : a - n);
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
  const int64_t ntot = n[0] * n[1] * n[2];
  if (type == 1) {
#pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < ntot; a++) {
      int64_t k1 = slot_mode(a % n[0], n[0], modeord);
      int64_t k2 = slot_mode((a / n[0]) % n[1], n[1], modeord);
      int64_t k3 = slot_mode(a / (n[0] * n[1]), n[2], modeord);
      double complex sum = 0;
      for (int64_t j = 0; j < n_points; j++) {
        double ph = (double)k1 * (n[0] > 1 ? x[j] : 0.0) + (double)k2 * (n[1] > 1 ? y[j] : 0.0) +
                    (double)k3 * (n[2] > 1 ? z[j] : 0.0);
        sum += c[j] * (cos(ph) + I * sign * sin(ph));
      }
      f[a] = sum;
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n_points; j++) {
      double complex sum = 0;
      for (int64_t a = 0; a < ntot; a++) {
        int64_t k1 = slot_mode(a % n[0], n[0], modeord);
        int64_t k2 = slot_mode((a / n[0]) % n[1], n[1], modeord);
        int64_t k3 = slot_mode(a / (n[0] * n[1]), n[2], modeord);
        double ph = (double)k1 * (n[0] > 1 ? x[j] : 0.0) + (double)k2 * (n[1] > 1 ? y[j] : 0.0) +
                    (double)k3 * (n[2] > 1 ? z[j] : 0.0);
        sum += f[a] * (cos(ph) + I * sign * sin(ph));
      }
      c[j] = sum;
    }
  }
  return SPF_OK;
}
