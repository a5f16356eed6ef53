/* spinifel selfcheck: the NUFFT against direct sums on small random problems. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

/* Relative l2 error of one transform of each type and precision; returns 0 if all pass. */
static int check_one(int type, int prec_float, double tol, int64_t n, int64_t m, uint64_t seed)
{
  int64_t nm[3] = {n, n + 1, n - 1};
  int64_t ntot = nm[0] * nm[1] * nm[2];
  double *xyz = malloc(sizeof(double) * 3 * (size_t)m);
  float *xyzf = malloc(sizeof(float) * 3 * (size_t)m);
  double complex *c = malloc(sizeof(double complex) * (size_t)m);
  double complex *f = malloc(sizeof(double complex) * (size_t)ntot);
  double complex *ref = malloc(sizeof(double complex) * (size_t)(m > ntot ? m : ntot));
  float complex *cf = malloc(sizeof(float complex) * (size_t)m);
  float complex *ff = malloc(sizeof(float complex) * (size_t)ntot);
  if (!xyz || !xyzf || !c || !f || !ref || !cf || !ff) {
    fprintf(stderr, "spinifel selfcheck: out of memory\n");
    return 1;
  }
  spf_rng r;
  spf_rng_seed(&r, seed, 0);
  for (int64_t j = 0; j < 3 * m; j++) {
    xyzf[j] = (float)(M_PI * (2.0 * spf_rng_uniform(&r) - 1.0));
    xyz[j] = xyzf[j]; /* the same points in both precisions */
  }
  for (int64_t j = 0; j < m; j++) c[j] = spf_rng_normal(&r) + I * spf_rng_normal(&r);
  for (int64_t j = 0; j < ntot; j++) f[j] = spf_rng_normal(&r) + I * spf_rng_normal(&r);

  int rc;
  double complex *out = type == 1 ? f : c; /* compared against ref */
  int64_t nout = type == 1 ? ntot : m;
  if (type == 1)
    rc = spf_nufft_direct(1, 3, nm, 1, 0, m, xyz, xyz + m, xyz + 2 * m, c, ref);
  else
    rc = spf_nufft_direct(2, 3, nm, 1, 0, m, xyz, xyz + m, xyz + 2 * m, ref, f);
  if (!rc && !prec_float) {
    spf_nufft_plan p;
    rc = spf_nufft_make_plan(type, 3, nm, 1, 1, tol, NULL, &p);
    if (!rc) rc = spf_nufft_set_points(p, m, xyz, xyz + m, xyz + 2 * m);
    if (!rc) rc = spf_nufft_execute(p, c, f);
    spf_nufft_destroy(p);
  } else if (!rc) {
    for (int64_t j = 0; j < m; j++) cf[j] = (float complex)c[j];
    for (int64_t j = 0; j < ntot; j++) ff[j] = (float complex)f[j];
    spf_nufftf_plan p;
    rc = spf_nufftf_make_plan(type, 3, nm, 1, 1, tol, NULL, &p);
    if (!rc) rc = spf_nufftf_set_points(p, m, xyzf, xyzf + m, xyzf + 2 * m);
    if (!rc) rc = spf_nufftf_execute(p, cf, ff);
    spf_nufftf_destroy(p);
    for (int64_t j = 0; j < nout; j++) out[j] = type == 1 ? ff[j] : cf[j];
  }
  double err = 0, nrm = 0;
  for (int64_t j = 0; !rc && j < nout; j++) {
    err += pow(cabs(out[j] - ref[j]), 2);
    nrm += pow(cabs(ref[j]), 2);
  }
  double rel = rc ? NAN : sqrt(err / nrm);
  int ok = !rc && rel <= 10 * tol;
  printf("type %d %-6s tol %.0e  N %3lld  M %6lld  rel l2 error %.2e  %s\n", type,
         prec_float ? "float" : "double", tol, (long long)n, (long long)m, rel,
         rc ? spf_strerror(rc) : ok ? "ok" : "FAIL");
  free(xyz); free(xyzf); free(c); free(f); free(ref); free(cf); free(ff);
  return ok ? 0 : 1;
}

int cmd_selfcheck(int argc, char **argv)
{
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: spinifel selfcheck\n"
           "  Compare 3D NUFFTs of types 1 and 2, in float and double, with direct sums;\n"
           "  pass when the relative l2 error is within 10x the tolerance.\n");
    return 0;
  }
  if (argc > 1) {
    fprintf(stderr, "spinifel selfcheck: unexpected argument '%s'\n", argv[1]);
    return 2;
  }
  int fails = 0;
  for (int type = 1; type <= 2; type++) {
    fails += check_one(type, 0, 1e-12, 16, 2000, 11 + type);
    fails += check_one(type, 0, 1e-6, 24, 3000, 21 + type);
    fails += check_one(type, 1, 1e-5, 16, 2000, 31 + type);
  }
  printf("selfcheck: %s\n", fails ? "FAILED" : "all passed");
  return fails ? 1 : 0;
}
