/* Poisson likelihood benchmark: the sparse products over photons (likelihood.h) against
 * the dense alternative, one cblas_sgemm of counts x log-models of the same shape.
 *
 *   likelihood_bench [--images N] [--pixels P] [--refs R] [--photons F] [--batch B] [--threads K] [--reps K]
 *
 * Images of P pixels with about F photons each (Poisson, from random models); R
 * references in batches of B. Prints, per pass over the references, the time of the
 * sparse products (scan: pass 1), of a whole E-step (three passes, views included), and
 * of the bare sgemm (N x P x R), runs interleaved A B A B, with their ratio. sgemm's speed
 * depends on OPENBLAS_CORETYPE (Haswell on these machines halves it on AVX-512): the
 * command line and the kernel are printed. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "spinifel/spinifel.h"

int main(int argc, char **argv)
{
  int64_t n = 5000, np = 9896, nref = 3240, batch = 1000, reps = 3, threads = 2;
  double photons = 280;
  for (int i = 1; i < argc; i++) {
    int bad = i + 1 >= argc;
    if (!bad && !strcmp(argv[i], "--images")) bad = parse_int64(argv[i + 1], 1, 1000000, &n);
    else if (!bad && !strcmp(argv[i], "--pixels")) bad = parse_int64(argv[i + 1], 1, 10000000, &np);
    else if (!bad && !strcmp(argv[i], "--refs")) bad = parse_int64(argv[i + 1], 1, 100000000, &nref);
    else if (!bad && !strcmp(argv[i], "--batch")) bad = parse_int64(argv[i + 1], 1, 100000, &batch);
    else if (!bad && !strcmp(argv[i], "--threads")) bad = parse_int64(argv[i + 1], 1, 1024, &threads);
    else if (!bad && !strcmp(argv[i], "--reps")) bad = parse_int64(argv[i + 1], 1, 1000, &reps);
    else if (!bad && !strcmp(argv[i], "--photons")) bad = !((photons = atof(argv[i + 1])) > 0);
    else bad = 1;
    if (bad) {
      fprintf(stderr, "usage: likelihood_bench [--images N] [--pixels P] [--refs R] [--photons F] [--batch B] "
                      "[--threads K] [--reps K]\n");
      return 2;
    }
    i++;
  }
  const char *core = getenv("OPENBLAS_CORETYPE");
  printf("likelihood_bench --images %lld --pixels %lld --refs %lld --photons %g --batch %lld --threads %lld --reps %lld "
         "(OPENBLAS_CORETYPE=%s)\n",
         (long long)n, (long long)np, (long long)nref, photons, (long long)batch, (long long)threads, (long long)reps,
         core ? core : "unset");
  float *counts = malloc(sizeof(float) * (size_t)(n * np)), *models = malloc(sizeof(float) * (size_t)(batch * np));
  float *cross = malloc(sizeof(float) * (size_t)(n * batch));
  double *views = malloc(sizeof(double) * (size_t)(batch * np)), *wt = malloc(sizeof(double) * (size_t)batch);
  if (!counts || !models || !cross || !views || !wt) {
    fprintf(stderr, "likelihood_bench: out of memory\n");
    return 1;
  }
  spf_rng r;
  spf_rng_seed(&r, 1, 0);
  for (int64_t k = 0; k < batch * np; k++) models[k] = (float)(2.0 * photons / (double)np * spf_rng_uniform(&r));
  for (int64_t i = 0; i < n; i++)
    for (int64_t p = 0; p < np; p++) counts[i * np + p] = (float)spf_rng_poisson(&r, models[(i % batch) * np + p]);
  spf_likelihood_options o;
  spf_likelihood_default_options(&o);
  o.nthreads = (int)threads;
  spf_likelihood *lk;
  if (spf_likelihood_make(n, np, counts, &o, &lk)) return 1;
  double total = 0;
  for (int64_t i = 0; i < n; i++) total += spf_likelihood_photons(lk, i);
  printf("photons per image %.1f, non-zero pixels per image %.1f\n", total / (double)n,
         (double)spf_likelihood_entries(lk) / (double)n);
  openblas_set_num_threads((int)threads);
  double best_scan = INFINITY, best_estep = INFINITY, best_gemm = INFINITY;
  for (int64_t rep = 0; rep < reps; rep++) {
    /* A: the sparse E-step (the same batch of models stands for every batch). */
    double t0 = omp_get_wtime();
    int rc = spf_likelihood_begin(lk, nref, NULL);
    for (int64_t f = 0; !rc && f < nref; f += batch)
      rc = spf_likelihood_scan(lk, f, nref - f < batch ? nref - f : batch, models);
    const double t_scan = omp_get_wtime() - t0;
    for (int64_t f = 0; !rc && f < nref; f += batch)
      rc = spf_likelihood_normalise(lk, 1.0, f, nref - f < batch ? nref - f : batch, models);
    for (int64_t f = 0; !rc && f < nref; f += batch)
      rc = spf_likelihood_views(lk, f, nref - f < batch ? nref - f : batch, models, views, wt);
    const double t_estep = omp_get_wtime() - t0;
    if (rc) {
      fprintf(stderr, "likelihood_bench: %s\n", spf_strerror(rc));
      return 1;
    }
    /* B: the dense product of the same shape, once per pass. */
    t0 = omp_get_wtime();
    for (int64_t f = 0; f < nref; f += batch) {
      const int64_t c = nref - f < batch ? nref - f : batch;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)c, (int)np, 1.0f, counts, (int)np, models,
                  (int)np, 0.0f, cross, (int)c);
    }
    const double t_gemm = omp_get_wtime() - t0;
    printf("rep %lld: sparse scan %.3f s, sparse E-step (3 passes + views) %.3f s, dense sgemm (one pass) %.3f s "
           "(%.1f GFLOP/s)\n",
           (long long)rep, t_scan, t_estep, t_gemm, 2e-9 * (double)n * (double)np * (double)nref / t_gemm);
    best_scan = fmin(best_scan, t_scan);
    best_estep = fmin(best_estep, t_estep);
    best_gemm = fmin(best_gemm, t_gemm);
  }
  printf("best: sparse pass %.3f s (%.2f G photon-reference terms/s), dense sgemm pass %.3f s: sparse / dense time %.3f; "
         "whole sparse E-step %.3f s; peak memory %.0f MiB; OpenBLAS %s\n",
         best_scan, 1e-9 * (double)spf_likelihood_entries(lk) * (double)nref / best_scan, best_gemm,
         best_scan / best_gemm, best_estep, peak_rss_mib(), openblas_get_corename());
  spf_likelihood_free(lk);
  free(counts); free(models); free(cross); free(views); free(wt);
  return 0;
}
