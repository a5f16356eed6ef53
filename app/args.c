#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int arg_double(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out)
{
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (end == text || *end || errno || !isfinite(v)) {
    fprintf(stderr, "spinifel %s: %s: '%s' is not a number\n", cmd, opt, text);
    return 2;
  }
  if (v < lo || v > hi) {
    fprintf(stderr, "spinifel %s: %s: %g is outside [%g, %g]\n", cmd, opt, v, lo, hi);
    return 2;
  }
  *out = v;
  return 0;
}

int arg_int64(const char *cmd, const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out)
{
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (end == text || *end || errno) {
    fprintf(stderr, "spinifel %s: %s: '%s' is not an integer\n", cmd, opt, text);
    return 2;
  }
  if (v < lo || v > hi) {
    fprintf(stderr, "spinifel %s: %s: %lld is outside [%lld, %lld]\n", cmd, opt, v, (long long)lo, (long long)hi);
    return 2;
  }
  *out = (int64_t)v;
  return 0;
}

const char *arg_value(const char *cmd, int argc, char **argv, int *i)
{
  if (*i + 1 >= argc) {
    fprintf(stderr, "spinifel %s: %s needs a value\n", cmd, argv[*i]);
    return NULL;
  }
  return argv[++*i];
}
