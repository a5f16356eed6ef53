/* spinifel info: what was built and what this machine offers. */
#include <fftw3.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

int cmd_info(int argc, char **argv)
{
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: spinifel info\n  Print the build configuration and machine figures.\n");
    return 0;
  }
  if (argc > 1) {
    fprintf(stderr, "spinifel info: unexpected argument '%s'\n", argv[1]);
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
