/* Fixed-point sums: numbers rounded to multiples of a power of two 2^e and added as
 * integers. Integer addition is associative, so such a sum is the same bits in any order
 * (threads, MPI ranks); each addend is off by at most 2^(e-1). */
#ifndef SPINIFEL_FIXED_POINT_H
#define SPINIFEL_FIXED_POINT_H

#include <math.h>
#include <stdint.h>

/* The exponent e for sums bounded by bound (> 0): |sum| / 2^e < 2^61, leaving headroom
 * below 2^63 for the roundings. bound 0 gives an exponent that holds zeros. */
static inline int spf_fixed_exponent(double bound)
{
  int e;
  frexp(bound, &e); /* bound < 2^e */
  return e - 61;
}

/* x as an integer multiple of 2^e, given scale = 2^-e (an exact scaling). */
static inline int64_t spf_to_fixed(double x, double scale)
{
  return (int64_t)llrint(x * scale);
}

#endif
