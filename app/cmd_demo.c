/* spinifel demo: simulate a small dataset of the built-in phantom and reconstruct it
 * from random orientations: the whole pipeline in a few minutes, no input needed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: spinifel demo [-o OUTDIR] [--images N] [--threads K]\n"
          "  Simulate N noise-free 32 x 32 images of the built-in phantom (default 2000) into\n"
          "  OUTDIR/phantom.h5 and reconstruct them from random orientations into OUTDIR\n"
          "  (default spinifel-demo), with the reconstruction's default settings.\n");
}

/* The resolution reached: the density against the phantom's own on the same grid,
 * after alignment (rotation, translation, hand), by Fourier shell correlation. */
static int compare_with_phantom(const char *outdir)
{
  char path[4096], msg[1024];
  snprintf(path, sizeof path, "%s/density.mrc", outdir);
  float *map = NULL;
  int64_t dims[3];
  double voxel, origin[3];
  int rc = spf_mrc_read(path, &map, dims, &voxel, origin, msg, sizeof msg);
  if (rc) {
    fprintf(stderr, "spinifel demo: %s\n", msg);
    return 1;
  }
  const int64_t M = dims[0], n3 = M * M * M;
  spf_molecule *mol = NULL;
  double *rho = malloc(sizeof(double) * (size_t)n3), *truth = malloc(sizeof(double) * (size_t)n3);
  double *aligned = malloc(sizeof(double) * (size_t)n3), *fsc = malloc(sizeof(double) * (size_t)M);
  rc = rho && truth && aligned && fsc ? SPF_OK : SPF_ERR_ALLOC;
  if (!rc) rc = spf_molecule_phantom(1, 2000, &mol); /* as simulate's default */
  if (!rc) rc = spf_reference_density(mol, M, voxel, 0, truth);
  spf_align_result ar;
  if (!rc) {
    for (int64_t i = 0; i < n3; i++) rho[i] = map[i];
    rc = spf_align(M, truth, rho, NULL, &ar, aligned);
  }
  if (!rc) rc = spf_fsc(M, truth, aligned, fsc);
  if (rc) {
    fprintf(stderr, "spinifel demo: comparison with the phantom: %s\n", spf_strerror(rc));
  } else {
    const double r05 = spf_fsc_resolution(M, fsc, voxel, 0.5), r0143 = spf_fsc_resolution(M, fsc, voxel, 0.143),
                 nyq = 2 * voxel * M / (M - 1);
    const char *hand = ar.inverted ? "other" : "same";
    printf("density vs the phantom, after alignment (%s hand): correlation %.3f; FSC 0.5 at %.1f A, 0.143 at %.1f A "
           "(Nyquist %.1f A)\n", hand, ar.correlation, r05, r0143, nyq);
    /* The same figures into the report: OUTDIR/vs_truth.txt, then report.html again. */
    char tmp[4200], text[512];
    snprintf(path, sizeof path, "%.4000s/vs_truth.txt", outdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(text, sizeof text,
             "# the density against the built-in phantom, after alignment (spinifel demo)\ncorrelation = %.3f\n"
             "hand = %s\nfsc_0.5_A = %.1f\nfsc_0.143_A = %.1f\nnyquist_A = %.1f\n",
             ar.correlation, hand, r05, r0143, nyq);
    FILE *f = fopen(tmp, "w");
    int bad = !f || fputs(text, f) < 0;
    if (f && fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
      remove(tmp);
      fprintf(stderr, "spinifel demo: cannot write %s\n", path);
      rc = SPF_ERR_IO;
    } else if (plot_outdir(outdir, msg, sizeof msg)) {
      fprintf(stderr, "spinifel demo: report: %s\n", msg);
      rc = SPF_ERR_IO;
    }
  }
  spf_molecule_free(mol);
  free(map); free(rho); free(truth); free(aligned); free(fsc);
  return rc ? 1 : 0;
}

int cmd_demo(int argc, char **argv)
{
  const char *outdir = "spinifel-demo", *images = "2000", *threads = "0";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!(v = arg_value("demo", argc, argv, &i))) return 2;
    int64_t n;
    if (!strcmp(a, "-o") || !strcmp(a, "--output")) outdir = v;
    else if (!strcmp(a, "--images")) {
      if (arg_int64("demo", a, v, 100, 1000000, &n)) return 2;
      images = v;
    } else if (!strcmp(a, "--threads")) {
      if (arg_int64("demo", a, v, 0, 1024, &n)) return 2;
      threads = v;
    } else {
      fprintf(stderr, "spinifel demo: unknown option '%s' (try --help)\n", a);
      return 2;
    }
  }
  if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "spinifel demo: cannot create %s: %s\n", outdir, strerror(errno));
    return 1;
  }
  char data[4096];
  snprintf(data, sizeof data, "%s/phantom.h5", outdir);
  /* A 32 x 32 detector at 3 cm reaches 9.6 A in the corners at 6 keV. */
  char *sim[] = {"simulate", "--images", (char *)images, "--pixels", "32", "--distance", "0.03", "--no-noise",
                 "--threads", (char *)threads, "-o", data};
  printf("== simulating %s images of the phantom into %s\n", images, data);
  fflush(stdout);
  int rc = cmd_simulate((int)(sizeof sim / sizeof *sim), sim);
  if (rc) return rc;
  char *rec[] = {"reconstruct", data, "-o", (char *)outdir, "--threads", (char *)threads};
  printf("== reconstructing from random orientations into %s\n", outdir);
  fflush(stdout);
  rc = cmd_reconstruct((int)(sizeof rec / sizeof *rec), rec);
  if (rc) return rc;
  return compare_with_phantom(outdir);
}
