/* A small reconstruction problem shared by the driver's tests (test_reconstruct,
 * test_mpi): n images on a 12 x 12 detector at 3 cm, slices at random orientations
 * (seed 5) of the autocorrelation of a random compact density on the M = 9 grid. */
#ifndef SPINIFEL_SMALL_PROBLEM_H
#define SPINIFEL_SMALL_PROBLEM_H

#include <stdlib.h>

#include "spinifel/spinifel.h"

#define SMALL_PROBLEM_M 9

/* Sets *det, *img (n x det->n_pixels) and *q (n x 4, the true orientations), which the
 * caller frees; returns an spf error code. */
static int small_problem(int64_t n, spf_detector **det, float **img, double **q)
{
  const int64_t M = SMALL_PROBLEM_M, n3 = M * M * M;
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = g.ny = 12;
  g.distance_m = 0.03;
  *img = NULL;
  *q = NULL;
  int rc = spf_detector_make(&g, det);
  if (rc) return rc;
  const int64_t np = (*det)->n_pixels;
  double *rho0 = calloc(n3, sizeof(double)), *u0 = malloc(sizeof(double) * n3), *rot = malloc(sizeof(double) * 9 * n);
  *q = malloc(sizeof(double) * 4 * n);
  *img = malloc(sizeof(float) * n * np);
  rc = rho0 && u0 && rot && *q && *img ? SPF_OK : SPF_ERR_ALLOC;
  spf_rng r;
  spf_rng_seed(&r, 5, 0);
  for (int64_t z = 2; !rc && z < 7; z++)
    for (int64_t y = 3; y < 6; y++)
      for (int64_t x = 2; x < 6; x++) rho0[(z * M + y) * M + x] = spf_rng_uniform(&r);
  if (!rc) rc = spf_autocorrelation(M, rho0, u0, 1);
  for (int64_t i = 0; !rc && i < n; i++) {
    spf_random_rotation(&r, *q + 4 * i);
    spf_quat_to_matrix(*q + 4 * i, rot + 9 * i);
  }
  spf_slicer *sl = NULL;
  if (!rc) rc = spf_slicer_make(M, np, (*det)->s, (*det)->s_max, 1.0, 1e-6, n, 1, &sl);
  if (!rc) rc = spf_slicer_set_volume(sl, u0);
  if (!rc) rc = spf_slicer_slice(sl, n, rot, *img);
  spf_slicer_free(sl);
  free(rho0);
  free(u0);
  free(rot);
  return rc;
}

#endif
