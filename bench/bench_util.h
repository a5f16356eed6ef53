/* Small helpers the benchmarks share (each bench source is its own program). */
#ifndef SPINIFEL_BENCH_UTIL_H
#define SPINIFEL_BENCH_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
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

#endif
