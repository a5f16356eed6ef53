/* Fourier shell correlation (see fsc.h). */
#include "spinifel/fsc.h"

#include <complex.h> /* before fftw3.h: fftw_complex is then double complex */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>

#include "fftw_threads.h"
#include "spinifel/error.h"
#include "spinifel/scattering.h"

int spf_fsc(int64_t M, const double *a, const double *b, double *fsc)
{
  if (!a || !b || !fsc) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0) return SPF_ERR_SIZE;
  const int64_t n = M * M * M, h = M / 2 + 1, ns = (M - 1) / 2 + 1;
  double *re = fftw_malloc(sizeof(double) * (size_t)n);
  fftw_complex *fa = fftw_malloc(sizeof(fftw_complex) * (size_t)(M * M * h));
  fftw_complex *fb = fftw_malloc(sizeof(fftw_complex) * (size_t)(M * M * h));
  double *num = calloc((size_t)ns, sizeof(double)), *da = calloc((size_t)ns, sizeof(double));
  double *db = calloc((size_t)ns, sizeof(double));
  int rc = re && fa && fb && num && da && db ? SPF_OK : SPF_ERR_ALLOC;
  fftw_plan p = NULL;
  if (!rc) {
    spf_fftw_threads_init();
    fftw_plan_with_nthreads(1);
    p = fftw_plan_dft_r2c_3d((int)M, (int)M, (int)M, re, fa, FFTW_ESTIMATE);
    if (!p) rc = SPF_ERR_ALLOC;
  }
  if (!rc) {
    /* Shifts of the origin change phases equally in both: the FSC does not see them. */
    for (int64_t i = 0; i < n; i++) re[i] = a[i];
    fftw_execute_dft_r2c(p, re, fa);
    for (int64_t i = 0; i < n; i++) re[i] = b[i];
    fftw_execute_dft_r2c(p, re, fb);
    for (int64_t z = 0; z < M; z++)
      for (int64_t y = 0; y < M; y++)
        for (int64_t x = 0; x < h; x++) {
          const int64_t kz = z <= M / 2 ? z : z - M, ky = y <= M / 2 ? y : y - M;
          const int64_t k = llround(sqrt((double)(x * x + ky * ky + kz * kz)));
          if (k >= ns) continue;
          /* The half spectrum holds each mode with x > 0 once for two (Friedel mates). */
          const double mult = x == 0 ? 1.0 : 2.0;
          const int64_t i = (z * M + y) * h + x;
          num[k] += mult * creal(fa[i] * conj(fb[i]));
          da[k] += mult * creal(fa[i] * conj(fa[i]));
          db[k] += mult * creal(fb[i] * conj(fb[i]));
        }
    for (int64_t k = 0; k < ns; k++) fsc[k] = da[k] > 0 && db[k] > 0 ? num[k] / sqrt(da[k] * db[k]) : 0.0;
  }
  if (p) fftw_destroy_plan(p);
  fftw_free(re);
  fftw_free(fa);
  fftw_free(fb);
  free(num);
  free(da);
  free(db);
  return rc;
}

/* The crossing between shell k (at or above threshold; shell 0 counts as above) and shell
 * k + 1 (below), linear, as a resolution. */
static double crossing(int64_t M, const double *fsc, double voxel, double threshold, int64_t k)
{
  const double f0 = k > 0 ? fsc[k] : 1.0, t = f0 > fsc[k + 1] ? (f0 - threshold) / (f0 - fsc[k + 1]) : 0.0;
  const double kc = (double)k + t;
  return kc > 0 ? (double)M * voxel / kc : INFINITY;
}

double spf_fsc_resolution(int64_t M, const double *fsc, double voxel, double threshold)
{
  const int64_t ns = (M - 1) / 2 + 1;
  for (int64_t k = 1; k < ns; k++)
    if (fsc[k] < threshold) return crossing(M, fsc, voxel, threshold, k - 1);
  return (double)M * voxel / (double)(ns - 1);
}

double spf_fsc_resolution_outer(int64_t M, const double *fsc, double voxel, double threshold)
{
  const int64_t ns = (M - 1) / 2 + 1;
  int64_t k = ns - 1;
  while (k > 0 && !(fsc[k] >= threshold)) k--;
  if (k == ns - 1) return (double)M * voxel / (double)(ns - 1);
  return crossing(M, fsc, voxel, threshold, k);
}

int spf_reference_density(const spf_molecule *m, int64_t M, double voxel, int nthreads, double *out)
{
  if (!m || !out) return SPF_ERR_NULL;
  if (M < 1 || !(voxel > 0)) return SPF_ERR_SIZE;
  const int64_t n3 = M * M * M;
  int *type = malloc(sizeof(int) * (size_t)(m->n_atoms > 0 ? m->n_atoms : 1));
  double *xyz = malloc(sizeof(double) * 3 * (size_t)(m->n_atoms > 0 ? m->n_atoms : 1));
  float *map = malloc(sizeof(float) * (size_t)n3);
  spf_gaussian_form_factor ff[128];
  int n_types = 0, rc = type && xyz && map ? SPF_OK : SPF_ERR_ALLOC;
  if (!rc) rc = spf_molecule_scattering_types(m, type, ff, &n_types);
  if (!rc) {
    /* Centred as spf_molecule_centre does (atomic number times occupancy). */
    double c[3] = {0, 0, 0}, wsum = 0;
    for (int64_t i = 0; i < m->n_atoms; i++) {
      const double za = m->z[i] * m->occupancy[i];
      for (int k = 0; k < 3; k++) c[k] += za * m->xyz[3 * i + k];
      wsum += za;
    }
    for (int64_t i = 0; i < m->n_atoms; i++)
      for (int k = 0; k < 3; k++) xyz[3 * i + k] = m->xyz[3 * i + k] - (wsum > 0 ? c[k] / wsum : 0);
    const double o = -0.5 * (double)(M - 1) * voxel, origin[3] = {o, o, o};
    rc = spf_scattering_density(m->n_atoms, xyz, type, n_types, ff, 2 * M_PI * M_PI * voxel * voxel, M, voxel, origin,
                                nthreads, map);
  }
  for (int64_t i = 0; !rc && i < n3; i++) out[i] = map[i];
  free(type);
  free(xyz);
  free(map);
  return rc;
}
