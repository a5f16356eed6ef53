/* xoshiro256** (Blackman and Vigna, 2018), seeded through splitmix64. */
#include "spinifel/random.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void spf_rng_seed(spf_rng *r, uint64_t seed, uint64_t stream)
{
  uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
  (void)splitmix64(&x);
  x ^= stream;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t spf_rng_next(spf_rng *r)
{
  uint64_t *s = r->s;
  const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double spf_rng_uniform(spf_rng *r) { return (double)(spf_rng_next(r) >> 11) * 0x1.0p-53; }

double spf_rng_normal(spf_rng *r)
{
  double u1 = 1.0 - spf_rng_uniform(r), u2 = spf_rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t spf_rng_poisson(spf_rng *r, double mean)
{
  if (!(mean > 0.0)) return 0;
  if (mean < 30.0) {
    /* Knuth's product method: exact, fast for small means. */
    double limit = exp(-mean), prod = spf_rng_uniform(r);
    uint64_t k = 0;
    while (prod > limit) {
      k++;
      prod *= spf_rng_uniform(r);
    }
    return k;
  }
  /* PTRS transformed rejection (Hormann 1993): exact for large means. */
  const double slam = sqrt(mean), loglam = log(mean);
  const double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
  const double invalpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    double u = spf_rng_uniform(r) - 0.5, v = spf_rng_uniform(r);
    double us = 0.5 - fabs(u);
    double k = floor((2 * a / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return (uint64_t)k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (log(v) + log(invalpha) - log(a / (us * us) + b) <= -mean + k * loglam - lgamma(k + 1))
      return (uint64_t)k;
  }
}
