/* Strict parsing of option values: the whole string must be a finite number in range. */
#ifndef SPINIFEL_APP_ARGS_H
#define SPINIFEL_APP_ARGS_H

#include <stdint.h>

/* Each returns 0 on success; on failure prints "spinifel CMD: OPTION: why" and returns 2. */
int arg_double(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out);
int arg_int64(const char *cmd, const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out);
/* The value after option argv[*i], advancing *i; NULL (with a message) if missing. */
const char *arg_value(const char *cmd, int argc, char **argv, int *i);

#endif
