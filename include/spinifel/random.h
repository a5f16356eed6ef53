/* A small, fast, seedable random generator (xoshiro256**, seeded by splitmix64).
 * Same seed, same stream on every machine. spf_rng_jump-free streams: derive an
 * independent stream per work item with spf_rng_seed(&r, seed, stream), so results do
 * not depend on how the work is split across threads or ranks. */
#ifndef SPINIFEL_RANDOM_H
#define SPINIFEL_RANDOM_H

#include <stdint.h>

typedef struct {
  uint64_t s[4];
} spf_rng;

/* Seed a generator for (seed, stream): distinct streams are statistically independent. */
void spf_rng_seed(spf_rng *r, uint64_t seed, uint64_t stream);
uint64_t spf_rng_next(spf_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double spf_rng_uniform(spf_rng *r);
/* Standard normal (Box-Muller, both values used alternately is not kept: one per call). */
double spf_rng_normal(spf_rng *r);
/* Poisson-distributed count with the given mean (>= 0). */
uint64_t spf_rng_poisson(spf_rng *r, double mean);

#endif
