/* Orientation matching benchmark: the matcher against sgemm alone on the same shapes.
 *
 *   matching_bench [--images N] [--pixels P] [--refs R] [--batch B] [--threads K]
 *
 * Prints GFLOP/s of the matcher (2 N R P flops) and of one bare cblas_sgemm of the same
 * shape, their ratio, and which OpenBLAS kernel ran. OPENBLAS_CORETYPE=Haswell (set on
 * these machines) halves sgemm on AVX-512: run with `env -u OPENBLAS_CORETYPE -u
 * OPENBLAS_L2_SIZE` to see the machine's full speed. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/spinifel.h"
#include "spinifel/matching.h"

int main(int argc, char **argv)
{
  int64_t n = 10000, np = 4096, nref = 10000, batch = 1000;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--images")) n = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--pixels")) np = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--refs")) nref = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch")) batch = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: matching_bench [--images N] [--pixels P] [--refs R] [--batch B] [--threads K]\n");
      return 2;
    }
  }
  float *data = malloc(sizeof(float) * n * np), *models = malloc(sizeof(float) * batch * np);
  float *cross = malloc(sizeof(float) * n * batch);
  if (!data || !models || !cross) {
    fprintf(stderr, "matching_bench: out of memory\n");
    return 1;
  }
  spf_rng r;
  spf_rng_seed(&r, 1, 0);
  for (int64_t i = 0; i < n * np; i++) data[i] = (float)spf_rng_uniform(&r);
  for (int64_t i = 0; i < batch * np; i++) models[i] = (float)spf_rng_uniform(&r);
  spf_match_options o;
  spf_match_default_options(&o);
  o.nthreads = threads;
  o.image_block = n; /* one product per batch, the same shape as the bare sgemm */
  spf_matcher *m;
  if (spf_matcher_make(n, np, data, &o, &m)) return 1;
  /* Warm up both. */
  spf_matcher_add_batch(m, 0, batch, models);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)batch, (int)np, 1.0f, data, (int)np, models,
              (int)np, 0.0f, cross, (int)batch);
  spf_matcher_reset(m);
  double t0 = omp_get_wtime();
  for (int64_t f = 0; f < nref; f += batch) spf_matcher_add_batch(m, f, batch, models);
  double t_match = omp_get_wtime() - t0;
  t0 = omp_get_wtime();
  for (int64_t f = 0; f < nref; f += batch)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)batch, (int)np, 1.0f, data, (int)np,
                models, (int)np, 0.0f, cross, (int)batch);
  double t_gemm = omp_get_wtime() - t0;
  double gemm_in_match, scan;
  spf_matcher_timing(m, &gemm_in_match, &scan);
  const double flops = 2.0 * (double)n * (double)nref * (double)np;
  const char *core = getenv("OPENBLAS_CORETYPE");
  printf("images %lld pixels %lld refs %lld batch %lld threads %d | matcher %.2fs = %.1f GFLOP/s "
         "(sgemm %.2fs, scan %.2fs, %.3f%% of pairs rechecked) | bare sgemm %.2fs = %.1f GFLOP/s | ratio %.2f | OpenBLAS %s%s%s\n",
         (long long)n, (long long)np, (long long)nref, (long long)batch, threads, t_match, flops / t_match * 1e-9,
         gemm_in_match, scan, 100.0 * (double)spf_matcher_rechecks(m) / ((double)n * (double)nref), t_gemm, flops / t_gemm * 1e-9, t_gemm / t_match, openblas_get_corename(),
         core ? ", OPENBLAS_CORETYPE=" : "", core ? core : "");
  spf_matcher_free(m);
  free(data);
  free(models);
  free(cross);
  return 0;
}
