/* spinifel fsc: compare a density with another map or with a molecule, after alignment. */
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
          "usage: spinifel fsc A.mrc B.mrc [options]\n"
          "       spinifel fsc A.mrc --pdb FILE [--assembly] | --phantom [options]\n"
          "  Align B (or the molecule's density on A's grid) to A: rotation (grid search, both\n"
          "  hands, local refinement), translation (centre of mass, cross-correlation). Print\n"
          "  the correlation, the rotation, the hand and the resolution where the Fourier shell\n"
          "  correlation falls below 0.5 and 0.143.\n"
          "  --pdb FILE        reference from a PDB structure (the simulator's form factors)\n"
          "  --assembly        apply the PDB's BIOMT assembly\n"
          "  --phantom         reference: the built-in phantom (simulate's default, 2000 atoms)\n"
          "  -o, --csv FILE    write the curve: shell, resolution_A, fsc\n"
          "  --png FILE        draw the curve, with the 0.5 and 0.143 lines and the resolution\n"
          "  --rotations N     rotations of the coarse search (default 4000)\n"
          "  --threads K       threads (default: all)\n"
          "Maps: MRC mode 2, cubic, odd size, same size and voxel.\n");
}

static int load(const char *path, double **out, int64_t *M, double *voxel)
{
  float *map = NULL;
  int64_t dims[3];
  double origin[3];
  char msg[1024];
  if (spf_mrc_read(path, &map, dims, voxel, origin, msg, sizeof msg)) {
    fprintf(stderr, "spinifel fsc: %s\n", msg);
    return 1;
  }
  if (dims[0] != dims[1] || dims[0] != dims[2] || dims[0] % 2 == 0 || dims[0] < 3) {
    fprintf(stderr, "spinifel fsc: %s: the map is %lld x %lld x %lld; a cubic map of odd size is needed\n", path,
            (long long)dims[0], (long long)dims[1], (long long)dims[2]);
    free(map);
    return 2;
  }
  const int64_t n3 = dims[0] * dims[0] * dims[0];
  *out = malloc(sizeof(double) * (size_t)n3);
  if (!*out) {
    free(map);
    fprintf(stderr, "spinifel fsc: out of memory\n");
    return 1;
  }
  for (int64_t i = 0; i < n3; i++) (*out)[i] = map[i];
  free(map);
  *M = dims[0];
  return 0;
}

int cmd_fsc(int argc, char **argv)
{
  const char *maps[2] = {NULL, NULL}, *pdb = NULL, *csv = NULL, *png = NULL;
  int assembly = 0, phantom = 0, nmaps = 0;
  int64_t rotations = 4000, threads = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (a[0] != '-') {
      if (nmaps == 2) {
        fprintf(stderr, "spinifel fsc: two maps at most ('%s')\n", a);
        return 2;
      }
      maps[nmaps++] = a;
      continue;
    }
    if (!strcmp(a, "--assembly")) {
      assembly = 1;
      continue;
    }
    if (!strcmp(a, "--phantom")) {
      phantom = 1;
      continue;
    }
    if (!(v = arg_value("fsc", argc, argv, &i))) return 2;
    if (!strcmp(a, "--pdb")) pdb = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--csv")) csv = v;
    else if (!strcmp(a, "--png")) png = v;
    else if (!strcmp(a, "--rotations")) {
      if (arg_int64("fsc", a, v, 10, 10000000, &rotations)) return 2;
    } else if (!strcmp(a, "--threads")) {
      if (arg_int64("fsc", a, v, 0, 1024, &threads)) return 2;
    } else {
      fprintf(stderr, "spinifel fsc: unknown option '%s' (try --help)\n", a);
      return 2;
    }
  }
  const int refs = (nmaps == 2) + (pdb != NULL) + phantom;
  if (nmaps < 1 || refs != 1) {
    fprintf(stderr, "spinifel fsc: give a map and one reference: a second map, --pdb FILE or --phantom\n");
    return 2;
  }
  double *a = NULL, *b = NULL, voxel = 0;
  int64_t M = 0;
  double *aligned = NULL, *fsc = NULL;
  int rc = load(maps[0], &a, &M, &voxel), status = 0;
  if (rc) return rc;
  const int64_t n3 = M * M * M;
  if (nmaps == 2) {
    int64_t M2;
    double voxel2;
    if ((status = load(maps[1], &b, &M2, &voxel2))) goto out;
    if (M2 != M || fabs(voxel2 - voxel) > 1e-4 * voxel) {
      fprintf(stderr, "spinifel fsc: %s is %lld^3 of %.4g A, %s is %lld^3 of %.4g A: the grids must match\n", maps[0],
              (long long)M, voxel, maps[1], (long long)M2, voxel2);
      status = 2;
      goto out;
    }
  } else {
    spf_molecule *mol = NULL;
    char msg[1024] = "";
    if (pdb) {
      spf_pdb_options po;
      spf_pdb_default_options(&po);
      po.assembly = assembly;
      rc = spf_molecule_read_pdb(pdb, &po, &mol, msg, sizeof msg);
    } else {
      rc = spf_molecule_phantom(1, 2000, &mol);
    }
    b = malloc(sizeof(double) * (size_t)n3);
    if (!rc && !b) rc = SPF_ERR_ALLOC;
    if (!rc) rc = spf_reference_density(mol, M, voxel, (int)threads, b);
    spf_molecule_free(mol);
    if (rc) {
      fprintf(stderr, "spinifel fsc: %s\n", *msg ? msg : spf_strerror(rc));
      status = 1;
      goto out;
    }
  }
  spf_align_options ao;
  spf_align_default_options(&ao);
  ao.n_rotations = rotations;
  ao.nthreads = (int)threads;
  spf_align_result ar;
  aligned = malloc(sizeof(double) * (size_t)n3);
  fsc = malloc(sizeof(double) * (size_t)M);
  rc = aligned && fsc ? spf_align(M, a, b, &ao, &ar, aligned) : SPF_ERR_ALLOC;
  if (!rc) rc = spf_fsc(M, a, aligned, fsc);
  if (rc) {
    fprintf(stderr, "spinifel fsc: %s\n", spf_strerror(rc));
    status = 1;
    goto out;
  }
  const int64_t ns = (M - 1) / 2 + 1;
  if (csv) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%.4000s.tmp", csv);
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL;
    if (f) {
      fprintf(f, "shell,resolution_A,fsc\n");
      for (int64_t k = 0; k < ns; k++) fprintf(f, "%lld,%.4f,%.6f\n", (long long)k, k ? M * voxel / k : INFINITY, fsc[k]);
      ok = fclose(f) == 0 && ok;
    }
    if (!ok || rename(tmp, csv) != 0) {
      fprintf(stderr, "spinifel fsc: cannot write %s: %s\n", csv, strerror(errno));
      remove(tmp);
      status = 1;
      goto out;
    }
  }
  const double r05 = spf_fsc_resolution(M, fsc, voxel, 0.5), r0143 = spf_fsc_resolution(M, fsc, voxel, 0.143);
  if (png) {
    double *x = malloc(sizeof(double) * (size_t)ns);
    char msg[1024] = "", name[96];
    snprintf(name, sizeof name, "FSC 0.5 at %.1f A, 0.143 at %.1f A", r05, r0143);
    for (int64_t k = 0; x && k < ns; k++) x[k] = (double)k / (M * voxel);
    spf_plot p = {.title = "Fourier shell correlation", .xlabel = "1 / resolution (1/A)", .ylabel = "FSC",
                  .n_points = (int)ns, .n_series = 1, .x = x, .y = {fsc}, .names = {name},
                  .n_hlines = 2, .hlines = {0.5, 0.143}, .n_vlines = isfinite(r05) ? 1 : 0, .vlines = {1.0 / r05},
                  .ymin = -0.2, .ymax = 1.05};
    rc = x ? spf_picture_plot(png, &p, msg, sizeof msg) : SPF_ERR_ALLOC;
    free(x);
    if (rc) {
      fprintf(stderr, "spinifel fsc: %s\n", *msg ? msg : spf_strerror(rc));
      status = 1;
      goto out;
    }
  }
  const double angle = 2 * acos(fmin(1.0, fabs(ar.quat[0]))) * 180 / M_PI;
  printf("aligned %s to %s: correlation %.4f, rotation (w x y z) %.5f %.5f %.5f %.5f (%.1f deg), %s hand\n",
         nmaps == 2 ? maps[1] : pdb ? pdb : "the phantom", maps[0], ar.correlation, ar.quat[0], ar.quat[1],
         ar.quat[2], ar.quat[3], angle, ar.inverted ? "other" : "same");
  printf("FSC 0.5 at %.2f A, 0.143 at %.2f A (grid %lld^3 of %.3f A, Nyquist %.2f A)\n", r05, r0143, (long long)M,
         voxel, M * voxel / (double)(ns - 1));
out:
  free(a);
  free(b);
  free(aligned);
  free(fsc);
  return status;
}
