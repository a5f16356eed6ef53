/* spinifel orientations: accuracy of a reconstruction's orientations against the truth. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: spinifel orientations RESULTS.h5 DATA.h5 [--images N]\n"
          "  Angular errors of the orientations in RESULTS.h5 (written by reconstruct) against the\n"
          "  true orientations of DATA.h5, after fitting the global rotation between the frames;\n"
          "  an image may also take its Friedel mate (180 degrees about the beam). Prints the\n"
          "  median and the 90th percentile.\n"
          "  --images N   the first N images (as reconstruct --images; default: all)\n"
          "example:\n"
          "  spinifel orientations run1/results.h5 data.h5\n");
}

int cmd_orientations(int argc, char **argv)
{
  const char *files[2] = {NULL, NULL};
  int nf = 0;
  int64_t use = 0;
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
  double p90, med = spf_orientation_error_median(n, qt, qf, &p90);
  printf("%lld images: orientation error median %.2f deg, 90th percentile %.2f deg\n", (long long)n, med, p90);
  free(qt); free(qf); free(img);
  return 0;
}
