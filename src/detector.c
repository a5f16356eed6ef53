/* Detector geometry (see detector.h). */
#include "spinifel/detector.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"

void spf_detector_default_geometry(spf_detector_geometry *g)
{
  if (!g) return;
  g->nx = g->ny = 128;
  g->pixel_size_m = 300e-6;
  g->distance_m = 0.1;
  g->photon_energy_ev = 6000;
  g->beam_center_x = g->beam_center_y = NAN;
  g->beamstop_inv_m = 0;
  g->polarization = SPF_POLARIZATION_HORIZONTAL;
}

void spf_detector_free(spf_detector *d)
{
  if (!d) return;
  free(d->s);
  free(d->s_norm);
  free(d->solid_angle);
  free(d->polarization);
  free(d->mask);
  free(d);
}

static spf_detector *alloc_detector(int64_t n)
{
  spf_detector *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->n_pixels = n;
  d->s = malloc(sizeof(double) * 3 * (size_t)n);
  d->s_norm = malloc(sizeof(double) * (size_t)n);
  d->solid_angle = malloc(sizeof(double) * (size_t)n);
  d->polarization = malloc(sizeof(double) * (size_t)n);
  d->mask = malloc((size_t)n);
  if (!d->s || !d->s_norm || !d->solid_angle || !d->polarization || !d->mask) {
    spf_detector_free(d);
    return NULL;
  }
  return d;
}

/* |s| at lab position (x, y) on the detector plane. */
static double s_at(double x, double y, double dist, double lambda)
{
  double r = sqrt(x * x + y * y + dist * dist);
  double sx = x / r / lambda, sy = y / r / lambda, sz = (dist / r - 1) / lambda;
  return sqrt(sx * sx + sy * sy + sz * sz);
}

static void finish(spf_detector *d)
{
  d->s_max = 0;
  for (int64_t p = 0; p < d->n_pixels; p++)
    if (d->mask[p] && d->s_norm[p] > d->s_max) d->s_max = d->s_norm[p];
}

int spf_detector_make(const spf_detector_geometry *g, spf_detector **out)
{
  if (!g || !out) return SPF_ERR_NULL;
  *out = NULL;
  if (g->nx < 1 || g->ny < 1 || g->nx > (1 << 16) || g->ny > (1 << 16)) return SPF_ERR_SIZE;
  if (!(g->pixel_size_m > 0 && isfinite(g->pixel_size_m)) || !(g->distance_m > 0 && isfinite(g->distance_m)) ||
      !(g->photon_energy_ev > 0 && isfinite(g->photon_energy_ev)) || !(g->beamstop_inv_m >= 0) ||
      (g->polarization != SPF_POLARIZATION_NONE && g->polarization != SPF_POLARIZATION_HORIZONTAL))
    return SPF_ERR_ARG;
  if ((!isnan(g->beam_center_x) && !isfinite(g->beam_center_x)) ||
      (!isnan(g->beam_center_y) && !isfinite(g->beam_center_y)))
    return SPF_ERR_ARG;
  spf_detector *d = alloc_detector(g->nx * g->ny);
  if (!d) return SPF_ERR_ALLOC;
  d->g = *g;
  const double cx = isnan(g->beam_center_x) ? 0.5 * (double)(g->nx - 1) : g->beam_center_x;
  const double cy = isnan(g->beam_center_y) ? 0.5 * (double)(g->ny - 1) : g->beam_center_y;
  d->g.beam_center_x = cx;
  d->g.beam_center_y = cy;
  const double lambda = SPF_HC_EV_M / g->photon_energy_ev, dist = g->distance_m, px = g->pixel_size_m;
  d->wavelength_m = lambda;
  for (int64_t iy = 0; iy < g->ny; iy++)
    for (int64_t ix = 0; ix < g->nx; ix++) {
      const int64_t p = iy * g->nx + ix;
      const double x = ((double)ix - cx) * px, y = ((double)iy - cy) * px;
      const double r = sqrt(x * x + y * y + dist * dist);
      double *s = d->s + 3 * p;
      s[0] = x / r / lambda;
      s[1] = y / r / lambda;
      s[2] = (dist / r - 1) / lambda;
      d->s_norm[p] = sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2]);
      d->solid_angle[p] = px * px * dist / (r * r * r);
      const double cos2t = dist / r;
      d->polarization[p] = g->polarization == SPF_POLARIZATION_HORIZONTAL ? 1 - (x / r) * (x / r)
                                                                          : 0.5 * (1 + cos2t * cos2t);
      d->mask[p] = d->s_norm[p] >= g->beamstop_inv_m;
    }
  finish(d);
  /* Resolution at the middle of the farthest edge and at the farthest corner. */
  const double ex[2] = {(-0.5 - cx) * px, ((double)g->nx - 0.5 - cx) * px};
  const double ey[2] = {(-0.5 - cy) * px, ((double)g->ny - 0.5 - cy) * px};
  double edge = 0, corner = 0;
  for (int i = 0; i < 2; i++) {
    edge = fmax(edge, s_at(ex[i], 0, dist, lambda));
    edge = fmax(edge, s_at(0, ey[i], dist, lambda));
    for (int j = 0; j < 2; j++) corner = fmax(corner, s_at(ex[i], ey[j], dist, lambda));
  }
  d->resolution_edge_m = 1 / edge;
  d->resolution_corner_m = 1 / corner;
  *out = d;
  return SPF_OK;
}

int spf_detector_bin2(const spf_detector *in, spf_detector **out)
{
  if (!in || !out) return SPF_ERR_NULL;
  *out = NULL;
  const int64_t nx = in->g.nx / 2, ny = in->g.ny / 2;
  if (nx < 1 || ny < 1) return SPF_ERR_SIZE;
  spf_detector *d = alloc_detector(nx * ny);
  if (!d) return SPF_ERR_ALLOC;
  d->g = in->g;
  d->g.nx = nx;
  d->g.ny = ny;
  d->g.pixel_size_m = 2 * in->g.pixel_size_m;
  d->g.beam_center_x = (in->g.beam_center_x - 0.5) / 2;
  d->g.beam_center_y = (in->g.beam_center_y - 0.5) / 2;
  d->wavelength_m = in->wavelength_m;
  for (int64_t iy = 0; iy < ny; iy++)
    for (int64_t ix = 0; ix < nx; ix++) {
      const int64_t p = iy * nx + ix;
      double s[3] = {0, 0, 0}, om = 0, pol = 0;
      int valid = 1;
      for (int64_t dy = 0; dy < 2; dy++)
        for (int64_t dx = 0; dx < 2; dx++) {
          const int64_t q = (2 * iy + dy) * in->g.nx + 2 * ix + dx;
          for (int k = 0; k < 3; k++) s[k] += 0.25 * in->s[3 * q + k];
          om += in->solid_angle[q];
          pol += 0.25 * in->polarization[q];
          valid &= in->mask[q];
        }
      for (int k = 0; k < 3; k++) d->s[3 * p + k] = s[k];
      d->s_norm[p] = sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2]);
      d->solid_angle[p] = om;
      d->polarization[p] = pol;
      d->mask[p] = (uint8_t)valid;
    }
  finish(d);
  d->resolution_edge_m = in->resolution_edge_m;
  d->resolution_corner_m = in->resolution_corner_m;
  *out = d;
  return SPF_OK;
}

void spf_detector_bin2_images(const spf_detector *in, int64_t n_images, const float *images, float *out_images)
{
  const int64_t nx = in->g.nx / 2, ny = in->g.ny / 2, np = in->n_pixels;
  for (int64_t i = 0; i < n_images; i++)
    for (int64_t iy = 0; iy < ny; iy++)
      for (int64_t ix = 0; ix < nx; ix++) {
        const float *a = images + i * np + (2 * iy) * in->g.nx + 2 * ix;
        out_images[(i * ny + iy) * nx + ix] = a[0] + a[1] + a[in->g.nx] + a[in->g.nx + 1];
      }
}

int spf_dead_pixels(int64_t nx, int64_t ny, const uint8_t *mask, const double *sums, double min_neighbour_mean,
                    uint8_t *dead, int64_t *n_dead)
{
  if (!mask || !sums || !dead) return SPF_ERR_NULL;
  if (nx < 1 || ny < 1) return SPF_ERR_SIZE;
  if (!(min_neighbour_mean >= 0)) return SPF_ERR_ARG;
  const int64_t n = nx * ny;
  int64_t *stack = malloc(sizeof(int64_t) * (size_t)n), top = 0, count = 0;
  if (!stack) return SPF_ERR_ALLOC;
  memset(dead, 0, (size_t)n);
  /* Seeds: no photon, while the valid neighbours saw many on average. */
  for (int64_t y = 0; y < ny; y++)
    for (int64_t x = 0; x < nx; x++) {
      const int64_t p = y * nx + x;
      if (!mask[p] || sums[p] != 0) continue;
      double s = 0;
      int k = 0;
      for (int64_t dy = -1; dy <= 1; dy++)
        for (int64_t dx = -1; dx <= 1; dx++) {
          const int64_t yy = y + dy, xx = x + dx;
          if ((!dx && !dy) || yy < 0 || yy >= ny || xx < 0 || xx >= nx || !mask[yy * nx + xx]) continue;
          s += sums[yy * nx + xx];
          k++;
        }
      if (k >= 3 && s / k >= min_neighbour_mean) {
        dead[p] = 1;
        stack[top++] = p;
        count++;
      }
    }
  /* Grow through the photon-less valid pixels they touch (the inside of an unmasked beam
   * stop, whose pixels have only dark neighbours). */
  while (top > 0) {
    const int64_t p = stack[--top], y = p / nx, x = p % nx;
    for (int64_t dy = -1; dy <= 1; dy++)
      for (int64_t dx = -1; dx <= 1; dx++) {
        const int64_t yy = y + dy, xx = x + dx;
        if (yy < 0 || yy >= ny || xx < 0 || xx >= nx) continue;
        const int64_t q = yy * nx + xx;
        if (!mask[q] || dead[q] || sums[q] != 0) continue;
        dead[q] = 1;
        stack[top++] = q;
        count++;
      }
  }
  free(stack);
  if (n_dead) *n_dead = count;
  return SPF_OK;
}

double spf_s_max(int64_t n, const double *s)
{
  double m = 0;
  for (int64_t p = 0; p < n; p++) m = fmax(m, sqrt(s[3 * p] * s[3 * p] + s[3 * p + 1] * s[3 * p + 1] + s[3 * p + 2] * s[3 * p + 2]));
  return m;
}
