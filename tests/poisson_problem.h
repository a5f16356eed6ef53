/* A Poisson orientation problem for the likelihood tests: random model images, each
 * image Poisson counts of one of them at a random fluence. awkward: some model values
 * <= 0 (the floor) and image 3 empty. */
#ifndef SPINIFEL_TEST_POISSON_PROBLEM_H
#define SPINIFEL_TEST_POISSON_PROBLEM_H

#include <stdlib.h>

#include "spinifel/random.h"

typedef struct {
  int64_t n_img, n_ref, np;
  float *counts, *models;
  double *phi;
} problem;

static problem make_problem_with(int64_t n_img, int64_t n_ref, int64_t np, uint64_t seed, int awkward)
{
  problem q = {n_img, n_ref, np, malloc(sizeof(float) * n_img * np), malloc(sizeof(float) * n_ref * np),
               malloc(sizeof(double) * n_img)};
  spf_rng r;
  spf_rng_seed(&r, seed, 0);
  for (int64_t k = 0; k < n_ref * np; k++) {
    const double u = spf_rng_uniform(&r);
    q.models[k] = !awkward ? (float)(0.05 + 0.4 * u * u) : u < 0.05 ? (float)(-0.1 * u) : (float)(0.3 * u * u);
  }
  for (int64_t i = 0; i < n_img; i++) {
    const int64_t j = (int64_t)(spf_rng_next(&r) % (uint64_t)n_ref);
    q.phi[i] = 0.5 + spf_rng_uniform(&r);
    for (int64_t p = 0; p < np; p++) {
      const double m = q.models[j * np + p] > 0 ? q.models[j * np + p] : 0;
      q.counts[i * np + p] = awkward && i == 3 ? 0.0f : (float)spf_rng_poisson(&r, q.phi[i] * m);
    }
  }
  return q;
}

static void free_problem(problem *q)
{
  free(q->counts);
  free(q->models);
  free(q->phi);
}

#endif
