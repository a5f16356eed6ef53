/* Test data: images of the built-in phantom (2,000 atoms) simulated on a square detector,
 * shared by the end-to-end tests. */
#ifndef SPINIFEL_TEST_PHANTOM_DATA_H
#define SPINIFEL_TEST_PHANTOM_DATA_H

#include <stdlib.h>
#include <string.h>

#include "spinifel/spinifel.h"

typedef struct {
  spf_detector *det;
  spf_molecule *mol;  /* centred on its centre of mass */
  int *type, n_types;
  spf_gaussian_form_factor ff[128];
  int64_t n;
  float *images;      /* n x det->n_pixels photons (masked pixels 0) */
  double *quats;      /* n x 4 true orientations */
} phantom_data;

static int phantom_sink(void *ctx, int64_t first, int64_t count, const float *images, const double *quats)
{
  phantom_data *d = ctx;
  const int64_t np = d->det->n_pixels;
  memcpy(d->images + first * np, images, sizeof(float) * (size_t)(count * np));
  memcpy(d->quats + 4 * first, quats, sizeof(double) * 4 * (size_t)count);
  return 0;
}

/* n images of pixels x pixels at distance_m (default pixel size and energy), pixels with
 * |s| below beamstop_inv_m masked; fluence in photons/m^2 (0: the simulator's default);
 * poisson 0: expected counts. */
static int phantom_data_make(int64_t pixels, double distance_m, double beamstop_inv_m, int64_t n, double fluence,
                             int poisson, uint64_t seed, phantom_data *d)
{
  memset(d, 0, sizeof *d);
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = g.ny = pixels;
  g.distance_m = distance_m;
  g.beamstop_inv_m = beamstop_inv_m;
  int rc = spf_detector_make(&g, &d->det);
  if (!rc) rc = spf_molecule_phantom(1, 2000, &d->mol);
  if (rc) return rc;
  spf_molecule_centre(d->mol);
  d->type = malloc(sizeof(int) * (size_t)d->mol->n_atoms);
  if (!d->type) return SPF_ERR_ALLOC;
  rc = spf_molecule_scattering_types(d->mol, d->type, d->ff, &d->n_types);
  spf_scattering *sc = NULL;
  if (!rc)
    rc = spf_scattering_make(d->mol->n_atoms, d->mol->xyz, d->type, d->n_types, d->ff,
                             d->det->s_max * 1e-10 * (1 + 1e-6), 1e-4, 2, &sc);
  const int64_t np = d->det->n_pixels;
  d->n = n;
  d->images = malloc(sizeof(float) * (size_t)(n * np));
  d->quats = malloc(sizeof(double) * 4 * (size_t)n);
  double *w = malloc(sizeof(double) * (size_t)np);
  if (!rc && (!d->images || !d->quats || !w)) rc = SPF_ERR_ALLOC;
  for (int64_t p = 0; !rc && p < np; p++) w[p] = d->det->solid_angle[p] * d->det->polarization[p];
  spf_sim_pixels px = {np, d->det->s, w, d->det->mask};
  spf_simulate_options so;
  spf_simulate_default_options(&so);
  so.n_images = n;
  so.poisson = poisson;
  so.seed = seed;
  so.nthreads = 2;
  if (fluence > 0) so.fluence = fluence;
  if (!rc) rc = spf_simulate_images(sc, &px, &so, phantom_sink, d, NULL, NULL, NULL);
  spf_scattering_free(sc);
  free(w);
  return rc;
}

static void phantom_data_free(phantom_data *d)
{
  spf_detector_free(d->det);
  spf_molecule_free(d->mol);
  free(d->type);
  free(d->images);
  free(d->quats);
  memset(d, 0, sizeof *d);
}

#endif
