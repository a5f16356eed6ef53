/* spinifel reconstruct: M-TIP from a dataset to a density. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: spinifel reconstruct DATA.h5 -o OUTDIR [options]\n"
          "  Recover orientations and the 3D density from diffraction images (M-TIP).\n"
          "  EXPERIMENTAL: the loop runs, but does not yet converge from random orientations.\n"
          "  --M N             grid size, odd (default 31)\n"
          "  --refs N          reference orientations (default 10000)\n"
          "  --generations N   generation cap (default 10)\n"
          "  --images N        use the first N images (default all)\n"
          "  --seed S          seed of generation 0's random orientations and of phasing (default 1)\n"
          "  --threads K       threads (default: all)\n"
          "  --res-start F     match on |s| <= F s_max first, reaching all pixels at generation 5 (default 1)\n"
          "  --prior 0|1       merge with the previous model as prior (default 1)\n"
          "  --continue-phasing 0|1  phase from the previous density and support (default 1)\n"
          "  --start-from-truth  diagnostics: generation 0 uses the file's true orientations\n"
          "Writes OUTDIR/density.mrc and OUTDIR/orientations.txt (w x y z, distance, gap per image).\n");
}

int cmd_reconstruct(int argc, char **argv)
{
  const char *C = "reconstruct", *data = NULL, *outdir = NULL;
  spf_reconstruct_options o;
  spf_reconstruct_default_options(&o);
  int64_t M = o.M, refs = o.n_references, gens = o.max_generations, seed = 1, threads = 0, use = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    int rc = 0;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (a[0] != '-') {
      if (data) {
        fprintf(stderr, "spinifel reconstruct: one dataset only ('%s' and '%s')\n", data, a);
        return 2;
      }
      data = a;
      continue;
    }
    if (!strcmp(a, "--start-from-truth")) {
      o.start_from_truth = 1;
      continue;
    }
    if (!(v = arg_value(C, argc, argv, &i))) return 2;
    if (!strcmp(a, "-o") || !strcmp(a, "--output")) outdir = v;
    else if (!strcmp(a, "--M")) rc = arg_int64(C, a, v, 3, 301, &M);
    else if (!strcmp(a, "--refs")) rc = arg_int64(C, a, v, 1, 100000000, &refs);
    else if (!strcmp(a, "--generations")) rc = arg_int64(C, a, v, 1, 1000, &gens);
    else if (!strcmp(a, "--images")) rc = arg_int64(C, a, v, 1, INT64_MAX, &use);
    else if (!strcmp(a, "--seed")) rc = arg_int64(C, a, v, 0, INT64_MAX, &seed);
    else if (!strcmp(a, "--threads")) rc = arg_int64(C, a, v, 0, 1024, &threads);
    else if (!strcmp(a, "--res-start")) rc = arg_double(C, a, v, 0.05, 1, &o.res_start);
    else if (!strcmp(a, "--continue-phasing")) {
      int64_t c;
      rc = arg_int64(C, a, v, 0, 1, &c);
      o.continue_phasing = (int)c;
    } else if (!strcmp(a, "--prior")) {
      int64_t pr;
      rc = arg_int64(C, a, v, 0, 1, &pr);
      o.use_prior = (int)pr;
    }
    else {
      fprintf(stderr, "spinifel reconstruct: unknown option '%s' (try --help)\n", a);
      return 2;
    }
    if (rc) return rc;
  }
  if (!data || !outdir) {
    fprintf(stderr, "spinifel reconstruct: a dataset and an output directory are required (DATA.h5 -o OUTDIR)\n");
    return 2;
  }
  if (M % 2 == 0) {
    fprintf(stderr, "spinifel reconstruct: --M must be odd, got %lld\n", (long long)M);
    return 2;
  }
  if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "spinifel reconstruct: cannot create %s: %s\n", outdir, strerror(errno));
    return 1;
  }
  char msg[1024] = "";
  spf_dataset *d;
  int rc = spf_dataset_open(data, &d, msg, sizeof msg);
  if (rc) {
    fprintf(stderr, "spinifel reconstruct: %s\n", msg);
    return 1;
  }
  const int64_t n = use > 0 && use < d->h.n_images ? use : d->h.n_images, np_all = d->n_pixels;
  int64_t np = 0;
  for (int64_t p = 0; p < np_all; p++) np += d->mask[p] != 0;
  float *all = malloc(sizeof(float) * (size_t)np_all * 64), *img = malloc(sizeof(float) * (size_t)(n * np));
  double *s = malloc(sizeof(double) * 3 * (size_t)np), *q_true = d->h.has_orientations ? malloc(sizeof(double) * 4 * (size_t)n) : NULL;
  double *q = malloc(sizeof(double) * 4 * (size_t)n);
  const int64_t n3 = M * M * M;
  double *rho = malloc(sizeof(double) * (size_t)n3), *u = malloc(sizeof(double) * (size_t)n3);
  float *bd = malloc(sizeof(float) * (size_t)n), *gap = malloc(sizeof(float) * (size_t)n);
  if (!all || !img || !s || !q || !rho || !u || !bd || !gap || (d->h.has_orientations && !q_true)) {
    fprintf(stderr, "spinifel reconstruct: out of memory for %lld images\n", (long long)n);
    return 1;
  }
  /* Only valid pixels take part; s in 1/m as stored. */
  for (int64_t p = 0, v = 0; p < np_all; p++)
    if (d->mask[p]) {
      for (int k = 0; k < 3; k++) s[3 * v + k] = d->s[3 * p + k];
      v++;
    }
  for (int64_t f = 0; !rc && f < n; f += 64) {
    const int64_t c = n - f < 64 ? n - f : 64;
    rc = spf_dataset_read_images(d, f, c, all, q_true ? q_true + 4 * f : NULL, msg, sizeof msg);
    for (int64_t i = 0; !rc && i < c; i++)
      for (int64_t p = 0, v = 0; p < np_all; p++)
        if (d->mask[p]) img[(f + i) * np + v++] = all[i * np_all + p];
  }
  if (rc) {
    fprintf(stderr, "spinifel reconstruct: %s\n", msg);
    return 1;
  }
  double s_max = 0;
  for (int64_t p = 0; p < np; p++) s_max = fmax(s_max, sqrt(s[3 * p] * s[3 * p] + s[3 * p + 1] * s[3 * p + 1] + s[3 * p + 2] * s[3 * p + 2]));
  o.M = M;
  o.n_references = refs;
  o.max_generations = (int)gens;
  o.seed = (uint64_t)seed;
  o.nthreads = (int)threads;
  o.verbose = 1;
  int gens_run = 0;
  double t0 = omp_get_wtime();
  rc = spf_reconstruct(n, np, img, s, q_true, &o, NULL, NULL, rho, u, q, bd, gap, &gens_run);
  if (rc) {
    fprintf(stderr, "spinifel reconstruct: %s\n", spf_strerror(rc));
    return 1;
  }
  /* Voxel of the autocorrelation grid: x = pi s / (s_max os) <=> spacing 1 / (2 s_max os). */
  const double voxel_a = 1e10 / (2.0 * s_max * o.oversampling);
  float *map = malloc(sizeof(float) * (size_t)n3);
  for (int64_t i = 0; i < n3; i++) map[i] = (float)rho[i];
  char path[4096];
  snprintf(path, sizeof path, "%s/density.mrc", outdir);
  const double origin[3] = {-0.5 * (M - 1) * voxel_a, -0.5 * (M - 1) * voxel_a, -0.5 * (M - 1) * voxel_a};
  rc = spf_mrc_write(path, map, M, M, M, voxel_a, origin, msg, sizeof msg);
  if (!rc) {
    snprintf(path, sizeof path, "%s/orientations.txt", outdir);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) rc = SPF_ERR_IO;
    for (int64_t i = 0; f && i < n; i++)
      fprintf(f, "%.9f %.9f %.9f %.9f %.6g %.6g\n", q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3], bd[i], gap[i]);
    if (f && (fclose(f) != 0 || rename(tmp, path) != 0)) rc = SPF_ERR_IO;
    if (rc) snprintf(msg, sizeof msg, "%.900s: cannot write", path);
  }
  if (rc) {
    fprintf(stderr, "spinifel reconstruct: %s\n", msg);
    return 1;
  }
  printf("reconstructed %lld images in %d generations, %.1f s; voxel %.2f A; wrote %s/density.mrc\n", (long long)n,
         gens_run, omp_get_wtime() - t0, voxel_a, outdir);
  if (q_true) {
    double p90, med = spf_orientation_error_median(n, q_true, q, &p90);
    printf("orientation error: median %.2f deg, 90th percentile %.2f deg\n", med, p90);
  }
  spf_dataset_close_reader(d);
  free(all); free(img); free(s); free(q_true); free(q); free(rho); free(u); free(map); free(bd); free(gap);
  return 0;
}
