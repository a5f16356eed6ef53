/* spinifel orientations: accuracy of a reconstruction's orientations against the truth,
 * and how well its per-image confidence flags the images that are far off. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: spinifel orientations RESULTS.h5 DATA.h5 [--images N] [--off DEG] [--csv FILE]\n"
          "  Angular errors of the orientations in RESULTS.h5 (written by reconstruct) against the\n"
          "  true orientations of DATA.h5, after fitting the global rotation between the frames;\n"
          "  an image may also take its Friedel mate (180 degrees about the beam). Prints the\n"
          "  median and the 90th percentile; then, from RESULTS.h5's per-image confidence, how\n"
          "  well the confidence flags the images that are far off: its rank correlation with\n"
          "  the error (Spearman, of low confidence with large error: 1 is perfect), and of the\n"
          "  n images more than DEG off, how many are among the n of lowest confidence and\n"
          "  among the lowest 15%%.\n"
          "  --images N   the first N images (as reconstruct --images; default: all)\n"
          "  --off DEG    an image is far off beyond DEG degrees (default 20)\n"
          "  --csv FILE   per image: image, error_deg, best_distance, confidence\n"
          "example:\n"
          "  spinifel orientations run1/results.h5 data.h5 --csv run1/errors.csv\n");
}

typedef struct {
  double v;
  int64_t i;
} keyed;

static int cmp_keyed(const void *a, const void *b)
{
  const keyed *x = a, *y = b;
  return x->v < y->v ? -1 : x->v > y->v ? 1 : (x->i > y->i) - (x->i < y->i);
}

/* Ranks (1-based, ties averaged) of v's n entries into rank. */
static void ranks(int64_t n, const double *v, keyed *tmp, double *rank)
{
  for (int64_t i = 0; i < n; i++) tmp[i] = (keyed){v[i], i};
  qsort(tmp, (size_t)n, sizeof *tmp, cmp_keyed);
  for (int64_t a = 0; a < n;) {
    int64_t b = a + 1;
    while (b < n && tmp[b].v == tmp[a].v) b++;
    for (int64_t k = a; k < b; k++) rank[tmp[k].i] = 0.5 * (double)(a + b + 1);
    a = b;
  }
}

/* How well low confidence flags large error, over the images with a finite confidence:
 * the Spearman correlation of -confidence with the error; and of the images more than
 * off degrees off (*n_off), how many are among as many of lowest confidence (caught[0])
 * and among the lowest 15% (caught[1]). */
static int confidence_figures(int64_t n, const double *err, const double *conf, double off, int64_t *n_used,
                              double *spearman, int64_t *n_off, int64_t caught[2])
{
  double *e = malloc(sizeof(double) * (size_t)n), *c = malloc(sizeof(double) * (size_t)n);
  double *re = malloc(sizeof(double) * (size_t)n), *rc_ = malloc(sizeof(double) * (size_t)n);
  keyed *tmp = malloc(sizeof(keyed) * (size_t)n);
  if (!e || !c || !re || !rc_ || !tmp) {
    free(e); free(c); free(re); free(rc_); free(tmp);
    return 1;
  }
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(conf[i]) && isfinite(err[i])) e[m] = err[i], c[m] = -conf[i], m++;
  *n_used = m;
  *spearman = NAN;
  *n_off = caught[0] = caught[1] = 0;
  if (m > 1) {
    ranks(m, e, tmp, re);
    ranks(m, c, tmp, rc_);
    double mean = 0.5 * (double)(m + 1), sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < m; i++) {
      sxy += (re[i] - mean) * (rc_[i] - mean);
      sxx += (re[i] - mean) * (re[i] - mean);
      syy += (rc_[i] - mean) * (rc_[i] - mean);
    }
    *spearman = sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
    /* The lowest confidences first (c is -confidence: largest first). */
    for (int64_t i = 0; i < m; i++) tmp[i] = (keyed){-c[i], i}, *n_off += e[i] > off;
    qsort(tmp, (size_t)m, sizeof *tmp, cmp_keyed);
    for (int64_t k = 0; k < *n_off; k++) caught[0] += e[tmp[k].i] > off;
    for (int64_t k = 0; k < (int64_t)(0.15 * (double)m); k++) caught[1] += e[tmp[k].i] > off;
  }
  free(e); free(c); free(re); free(rc_); free(tmp);
  return 0;
}

static int write_csv(const char *csv, int64_t n, const double *err, const double *bd, const double *conf)
{
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%.4000s.tmp", csv);
  FILE *f = fopen(tmp, "w");
  int ok = f != NULL;
  if (f) {
    ok = fprintf(f, "image,error_deg,best_distance,confidence\n") > 0;
    for (int64_t i = 0; ok && i < n; i++)
      ok = fprintf(f, "%lld,%.4f,%.6g,%.6g\n", (long long)i, err[i], bd ? bd[i] : NAN, conf ? conf[i] : NAN) > 0;
    ok = fclose(f) == 0 && ok;
  }
  if (!ok || rename(tmp, csv) != 0) {
    fprintf(stderr, "spinifel orientations: cannot write %s: %s\n", csv, strerror(errno));
    remove(tmp);
    return 1;
  }
  return 0;
}

int cmd_orientations(int argc, char **argv)
{
  const char *files[2] = {NULL, NULL};
  int nf = 0;
  int64_t use = 0;
  double off = 20;
  const char *csv = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (a[0] != '-') {
      if (nf == 2) {
        fprintf(stderr, "spinifel orientations: two files only ('%s')\n", a);
        return 2;
      }
      files[nf++] = a;
      continue;
    }
    if (!(v = arg_value("orientations", argc, argv, &i))) return 2;
    if (!strcmp(a, "--images")) {
      if (arg_int64("orientations", a, v, 1, INT64_MAX, &use)) return 2;
    } else if (!strcmp(a, "--off")) {
      if (arg_double("orientations", a, v, 0, 180, &off)) return 2;
    } else if (!strcmp(a, "--csv")) {
      csv = v;
    } else {
      fprintf(stderr, "spinifel orientations: unknown option '%s' (try --help)\n", a);
      return 2;
    }
  }
  if (nf != 2) {
    fprintf(stderr, "spinifel orientations: RESULTS.h5 and DATA.h5 are required\n");
    return 2;
  }
  char msg[1024];
  spf_dataset *d;
  if (spf_dataset_open(files[1], &d, msg, sizeof msg)) {
    fprintf(stderr, "spinifel orientations: %s\n", msg);
    return 1;
  }
  if (!d->h.has_orientations) {
    fprintf(stderr, "spinifel orientations: %s holds no true orientations\n", files[1]);
    spf_dataset_close_reader(d);
    return 1;
  }
  const int64_t n = use > 0 && use < d->h.n_images ? use : d->h.n_images;
  double *qt = malloc(sizeof(double) * 4 * (size_t)n), *qf = malloc(sizeof(double) * 4 * (size_t)n);
  float *img = malloc(sizeof(float) * (size_t)d->n_pixels * 64);
  int rc = qt && qf && img ? SPF_OK : SPF_ERR_ALLOC;
  for (int64_t f = 0; !rc && f < n; f += 64)
    rc = spf_dataset_read_images(d, f, n - f < 64 ? n - f : 64, img, qt + 4 * f, msg, sizeof msg);
  spf_dataset_close_reader(d);
  if (!rc) rc = spf_results_read_orientations(files[0], n, qf, msg, sizeof msg);
  if (rc) {
    fprintf(stderr, "spinifel orientations: %s\n", rc == SPF_ERR_ALLOC ? "out of memory" : msg);
    free(qt); free(qf); free(img);
    return 1;
  }
  double *err = malloc(sizeof(double) * (size_t)n), *bd = malloc(sizeof(double) * (size_t)n);
  double *conf = malloc(sizeof(double) * (size_t)n);
  if (!err || !bd || !conf) {
    fprintf(stderr, "spinifel orientations: out of memory\n");
    free(qt); free(qf); free(img); free(err); free(bd); free(conf);
    return 1;
  }
  double p90, med = spf_orientation_errors(n, qt, qf, err, &p90);
  int status = isfinite(med) ? 0 : 1;
  if (status) fprintf(stderr, "spinifel orientations: out of memory\n");
  else printf("%lld images: orientation error median %.2f deg, 90th percentile %.2f deg\n", (long long)n, med, p90);
  /* Older results files, and runs without matching, have no confidence: say so. */
  const int have_conf = !status && !spf_results_read_per_image(files[0], "confidence", n, conf, msg, sizeof msg);
  const int have_bd = !status && !spf_results_read_per_image(files[0], "best_distance", n, bd, msg, sizeof msg);
  if (!status && !have_conf) printf("no per-image confidence in %s\n", files[0]);
  if (!status && have_conf) {
    int64_t used, n_off, caught[2];
    double sp;
    if (confidence_figures(n, err, conf, off, &used, &sp, &n_off, caught)) {
      fprintf(stderr, "spinifel orientations: out of memory\n");
      status = 1;
    } else {
      printf("confidence: rank correlation of low confidence with the error %.2f (%lld images with a confidence); "
             "%lld images more than %g deg off, %lld of them among the %lld of lowest confidence, %lld among the "
             "lowest 15%%\n",
             sp, (long long)used, (long long)n_off, off, (long long)caught[0], (long long)n_off, (long long)caught[1]);
    }
  }
  if (!status && csv) status = write_csv(csv, n, err, have_bd ? bd : NULL, have_conf ? conf : NULL);
  free(qt); free(qf); free(img); free(err); free(bd); free(conf);
  return status;
}
