/* spinifel info: what was built and what this machine offers. */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "spinifel/rotation.h"

/* The reference grid's figures: what accuracy a number of references allows. */
static int grid_figures(const char *text)
{
  int64_t n;
  if (arg_int64("info", "--grid", text, 1, 100000000, &n)) return 2;
  /* 20,000 probes: the largest gap found is within a few percent of the true covering
   * radius (the probes' nearest-neighbour distances have a sharp upper tail). */
  const double cover = spf_orientation_grid_covering_radius(n, 20000, 1, 0);
  printf("grid of %lld orientations: ball radius %.3f deg (the least any %lld can cover), covering radius %.3f deg "
         "(measured: the farthest of 20,000 random rotations from its nearest)\n",
         (long long)n, spf_orientation_ball_radius(n) * 180 / M_PI, (long long)n, cover * 180 / M_PI);
  return isfinite(cover) ? 0 : 1;
}

int cmd_info(int argc, char **argv)
{
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: spinifel info [--grid N]\n  Print the build configuration and machine figures.\n"
           "  --grid N   instead: the ball and covering radii of the reference grid of N orientations\n");
    return 0;
  }
  if (argc == 3 && !strcmp(argv[1], "--grid")) return grid_figures(argv[2]);
  if (argc > 1) {
    fprintf(stderr, "spinifel info: unexpected argument '%s' (try --help)\n", argv[1]);
    return 2;
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  printf("spinifel %s\n", SPINIFEL_VERSION);
  printf("fftw: %s\n", fftw_version);
  printf("openmp threads: %d\n", omp_get_max_threads());
  const char *wait = getenv("OMP_WAIT_POLICY");
  printf("openmp wait policy: %s\n", wait ? wait : "unset (libgomp's default: spin)");
  printf("mpi: %s\n", spf_mpi_available() ? "built in (run under mpirun to scale out)" : "not built (one process)");
  printf("memory: %.1f GiB\n", (double)pages * (double)page / (1024.0 * 1024.0 * 1024.0));
#if defined(__AVX512F__)
  printf("simd: avx512f\n");
#elif defined(__AVX2__)
  printf("simd: avx2\n");
#else
  printf("simd: portable (compiler default)\n");
#endif
  return 0;
}
