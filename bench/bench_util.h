/* Small helpers the benchmarks share (each bench source is its own program). */
#ifndef SPINIFEL_BENCH_UTIL_H
#define SPINIFEL_BENCH_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Peak resident memory of this process in MiB (NaN if unknown). */
static inline double peak_rss_mib(void)
{
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru)) return NAN;
  return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is KiB on Linux */
}

/* A whole decimal number in [lo, hi]: 0 on success, 1 otherwise. */
static inline int parse_int64(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
  char *end;
  long long x = strtoll(v, &end, 10);
  if (end == v || *end || x < lo || x > hi) return 1;
  *out = (int64_t)x;
  return 0;
}

/* A number in the open interval (lo, hi): 0 on success, 1 otherwise. */
static inline int parse_double(const char *v, double lo, double hi, double *out)
{
  char *end;
  const double x = strtod(v, &end);
  if (end == v || *end || !(x > lo && x < hi)) return 1;
  *out = x;
  return 0;
}

/* Simulated images and their orientations into whole arrays (an spf_image_sink). */
typedef struct {
  float *images;
  double *quats;
  int64_t np;
} bench_sink_ctx;

static inline int bench_sink(void *ctx, int64_t first, int64_t count, const float *images, const double *quats)
{
  bench_sink_ctx *s = ctx;
  memcpy(s->images + (size_t)(first * s->np), images, sizeof(float) * (size_t)(count * s->np));
  memcpy(s->quats + 4 * (size_t)first, quats, sizeof(double) * 4 * (size_t)count);
  return 0;
}

#endif
