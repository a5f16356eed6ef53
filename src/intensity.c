/* The intensity grid and a molecule's intensity on it (see intensity.h). */
#include "spinifel/intensity.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>

#include "spinifel/error.h"

/* M^3 doubles must fit in memory long before this (results.c has the same bound). */
#define MAX_M 65536

int spf_intensity_grid_make(int64_t M, double oversampling, int64_t n_pixels, const double *s_inv_m,
                            const uint8_t *mask, spf_intensity_grid *g)
{
  if (!s_inv_m || !mask || !g) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0 || M > MAX_M || n_pixels < 1) return SPF_ERR_SIZE;
  if (!(oversampling >= 1 && isfinite(oversampling))) return SPF_ERR_ARG;
  /* |s| as reconstruct computes s_max (cmd_reconstruct.c): fmax over valid pixels. */
  double s_max = 0, s_min = INFINITY;
  int64_t n_valid = 0;
  for (int64_t p = 0; p < n_pixels; p++) {
    const double *s = s_inv_m + 3 * p;
    const double r = sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2]);
    if (!isfinite(r)) return SPF_ERR_DATA;
    if (!mask[p]) continue;
    s_max = fmax(s_max, r);
    s_min = fmin(s_min, r);
    n_valid++;
  }
  if (!(s_max > 0)) return SPF_ERR_DATA;
  /* The edge: the largest |s| per azimuth wedge, its smallest over the wedges (an empty
   * wedge: no ring beyond the beam stop). About 4 pixels of a square detector's border
   * fall in each wedge. */
  const int nb = n_valid < 64 ? 8 : (int)sqrt((double)n_valid);
  double *wedge = calloc((size_t)nb, sizeof(double));
  if (!wedge) return SPF_ERR_ALLOC;
  for (int64_t p = 0; p < n_pixels; p++) {
    if (!mask[p]) continue;
    const double *s = s_inv_m + 3 * p;
    int b = (int)floor((atan2(s[1], s[0]) + M_PI) / (2 * M_PI) * nb);
    if (b >= nb) b = nb - 1;
    if (b < 0) b = 0;
    wedge[b] = fmax(wedge[b], sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2]));
  }
  double edge = INFINITY;
  for (int b = 0; b < nb; b++) edge = fmin(edge, wedge[b]);
  free(wedge);
  g->M = M;
  g->oversampling = oversampling;
  g->s_max_inv_angstrom = 1e-10 * s_max;
  g->voxel_inv_angstrom = 2.0 * g->s_max_inv_angstrom * oversampling / (double)M;
  g->corner_inv_angstrom = g->s_max_inv_angstrom;
  g->edge_inv_angstrom = 1e-10 * fmax(edge, s_min);
  g->beamstop_inv_angstrom = 1e-10 * s_min;
  return SPF_OK;
}

double spf_intensity_grid_inv_angstrom(const spf_intensity_grid *g, double r) { return r * g->voxel_inv_angstrom; }

double spf_intensity_grid_index_radius(const spf_intensity_grid *g, double s_inv_angstrom)
{
  return s_inv_angstrom / g->voxel_inv_angstrom;
}

int spf_intensity_of_molecule(int64_t n_atoms, const double *xyz, const int *type, int n_types,
                              const spf_gaussian_form_factor *ff, const spf_intensity_grid *g, double scale,
                              double tol, int nthreads, double *out)
{
  if (!xyz || !type || !ff || !g || !out) return SPF_ERR_NULL;
  if (g->M < 3 || g->M % 2 == 0 || g->M > MAX_M || n_atoms < 1) return SPF_ERR_SIZE;
  if (!(g->voxel_inv_angstrom > 0 && isfinite(g->voxel_inv_angstrom)) || !isfinite(scale)) return SPF_ERR_ARG;
  const int64_t M = g->M, c = (M - 1) / 2;
  const double dv = g->voxel_inv_angstrom;
  /* The cube's corner, with room for float rounding of the points. */
  const double reach = sqrt(3.0) * (double)c * dv * (1 + 1e-6);
  spf_scattering *sc = NULL;
  int rc = spf_scattering_make(n_atoms, xyz, type, n_types, ff, reach, tol, nthreads, &sc);
  if (rc) return rc;
  /* Whole planes, about 2^20 points per call: memory stays bounded whatever M. */
  const int64_t n2 = M * M, planes = n2 >= (1 << 20) ? 1 : ((1 << 20) / n2 < M ? (1 << 20) / n2 : M);
  const int64_t cap = planes * n2;
  float *h = malloc(sizeof(float) * 3 * (size_t)cap);
  float complex *F = malloc(sizeof(float complex) * (size_t)cap);
  if (!h || !F) rc = SPF_ERR_ALLOC;
  for (int64_t first = 0; !rc && first < M; first += planes) {
    const int64_t np = (M - first < planes ? M - first : planes) * n2;
    float *hx = h, *hy = h + np, *hz = h + 2 * np;
    for (int64_t j = 0; j < np; j++) {
      const int64_t a1 = j % M, a2 = (j / M) % M, a3 = first + j / n2;
      hx[j] = (float)(dv * (double)(a1 - c));
      hy[j] = (float)(dv * (double)(a2 - c));
      hz[j] = (float)(dv * (double)(a3 - c));
    }
    rc = spf_scattering_eval(sc, np, hx, hy, hz, F);
    for (int64_t j = 0; !rc && j < np; j++) {
      const double re = crealf(F[j]), im = cimagf(F[j]);
      out[first * n2 + j] = scale * (re * re + im * im);
    }
  }
  free(h);
  free(F);
  spf_scattering_free(sc);
  return rc;
}
