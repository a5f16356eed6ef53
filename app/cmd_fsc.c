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
          "       spinifel fsc --intensity A B [options]      (3D intensities: see below)\n"
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
          "Maps: MRC mode 2, cubic, odd size, same size and voxel.\n"
          "\n"
          "spinifel fsc --intensity A B [-o curve.csv] [--png FILE] [--rotations N] [--threads K]\n"
          "  Compare two 3D diffraction intensities on the same grid, as EMC users do: turn B onto A\n"
          "  by a rotation about the centre (no hand, no shift: intensities are centrosymmetric;\n"
          "  orientation grid, local search, polish with the NUFFT's interpolation), then the Pearson\n"
          "  correlation per shell of |q|. Print the rotation, the correlation (mean over the shells\n"
          "  from the beam stop out), the radius where the shell correlation first falls below 0.5\n"
          "  (1/A, and as a fraction of the data's corner radius), and the mean shell correlation\n"
          "  from the beam stop to the detector's edge.\n"
          "  A, B: reconstruct's results.h5, simulate --intensity-out's file (truth), or an MRC\n"
          "  volume (the intensity, centred, odd size) with the figures below. Give the\n"
          "  reconstruction as B: its intensity is a Fourier sum on the grid, rotated exactly.\n"
          "  -o, --csv FILE              the curve: shell, s_inv_angstrom, fraction_of_corner,\n"
          "                              correlation, voxels\n"
          "  --png FILE                  draw the curve\n"
          "  --voxel-inv-angstrom V      the grid's voxel in 1/A (a file's own figures otherwise)\n"
          "  --corner-inv-angstrom C     the data's corner radius in 1/A\n"
          "  --edge-inv-angstrom E       the data's edge radius (default: the grid's last shell)\n"
          "  --beamstop-inv-angstrom B   shells inside are left out (default: none)\n"
          "  --rotations N               rotations of the coarse search (default 4000)\n"
          "  --interpolation fourier|trilinear  how B is turned: fourier (default) is exact for\n"
          "                              reconstruct's intensity; trilinear for other volumes\n"
          "                              (noisy or measured maps, whose noisy bright centre would\n"
          "                              ring through a Fourier sum), lower for fine speckles\n"
          "examples:\n"
          "  spinifel fsc run1/density.mrc --pdb 2cex.pdb --png fsc.png\n"
          "  spinifel fsc run1/half1/density.mrc run1/half2/density.mrc -o halves.csv\n"
          "  spinifel fsc --intensity truth.h5 run1/results.h5\n");
}

/* An MRC map as an odd cube of doubles (*out malloc'ed): 0; 1 unreadable (msg says why),
 * 2 not a cube of odd size (dims say what it is), 3 out of memory. */
static int read_cube(const char *path, double **out, int64_t dims[3], double *voxel, char *msg, size_t msg_len)
{
  float *map = NULL;
  double origin[3];
  if (spf_mrc_read(path, &map, dims, voxel, origin, msg, msg_len)) return 1;
  if (dims[0] != dims[1] || dims[0] != dims[2] || dims[0] % 2 == 0 || dims[0] < 3) {
    free(map);
    return 2;
  }
  const int64_t n3 = dims[0] * dims[0] * dims[0];
  *out = malloc(sizeof(double) * (size_t)n3);
  if (!*out) {
    free(map);
    return 3;
  }
  for (int64_t i = 0; i < n3; i++) (*out)[i] = map[i];
  free(map);
  return 0;
}

/* One intensity: an HDF5 file with "intensity" (results.h5, simulate --intensity-out) or an
 * MRC volume; the grid's figures from the file, NAN where it has none. 0, or the exit code
 * (the message printed). */
static int load_intensity(const char *path, double **out, spf_intensity_grid *g)
{
  char msg[1024] = "";
  int rc = spf_intensity_read(path, out, g, NULL, 0, msg, sizeof msg);
  if (rc == SPF_ERR_FORMAT && strstr(msg, "not an HDF5 file")) {
    int64_t dims[3];
    double voxel;
    const int got = read_cube(path, out, dims, &voxel, msg, sizeof msg);
    if (got == 1) {
      fprintf(stderr, "spinifel fsc: %s: neither HDF5 nor a readable MRC map (%s)\n", path, msg);
      return 1;
    }
    if (got == 2) {
      fprintf(stderr, "spinifel fsc: %s: the volume is %lld x %lld x %lld; a cube of odd size is needed\n", path,
              (long long)dims[0], (long long)dims[1], (long long)dims[2]);
      return 1;
    }
    if (got == 3) {
      fprintf(stderr, "spinifel fsc: out of memory\n");
      return 1;
    }
    *g = (spf_intensity_grid){.M = dims[0], .oversampling = NAN, .s_max_inv_angstrom = NAN,
                              .voxel_inv_angstrom = NAN, .corner_inv_angstrom = NAN, .edge_inv_angstrom = NAN,
                              .beamstop_inv_angstrom = NAN};
    return 0;
  }
  if (rc) {
    fprintf(stderr, "spinifel fsc: %s\n", *msg ? msg : spf_strerror(rc));
    return 1;
  }
  return 0;
}

/* A figure from the flag, else A's, else B's (NAN if none has it). */
static double pick(double flag, double a, double b) { return !isnan(flag) ? flag : !isnan(a) ? a : b; }

static int fsc_intensity(int argc, char **argv)
{
  const char *C = "fsc", *files[2] = {NULL, NULL}, *csv = NULL, *png = NULL;
  int nfiles = 0, interp = SPF_INTERP_FOURIER;
  int64_t rotations = 4000, threads = 0;
  double f_voxel = NAN, f_corner = NAN, f_edge = NAN, f_beamstop = NAN;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "--intensity")) continue;
    if (a[0] != '-') {
      if (nfiles == 2) {
        fprintf(stderr, "spinifel fsc: --intensity takes two files ('%s' is a third)\n", a);
        return 2;
      }
      files[nfiles++] = a;
      continue;
    }
    if (!(v = arg_value(C, argc, argv, &i))) return 2;
    int rc = 0;
    if (!strcmp(a, "-o") || !strcmp(a, "--csv")) csv = v;
    else if (!strcmp(a, "--png")) png = v;
    else if (!strcmp(a, "--rotations")) rc = arg_int64(C, a, v, 10, 10000000, &rotations);
    else if (!strcmp(a, "--threads")) rc = arg_int64(C, a, v, 0, 1024, &threads);
    else if (!strcmp(a, "--voxel-inv-angstrom")) rc = arg_double(C, a, v, 1e-9, 1e3, &f_voxel);
    else if (!strcmp(a, "--corner-inv-angstrom")) rc = arg_double(C, a, v, 1e-9, 1e3, &f_corner);
    else if (!strcmp(a, "--edge-inv-angstrom")) rc = arg_double(C, a, v, 1e-9, 1e3, &f_edge);
    else if (!strcmp(a, "--beamstop-inv-angstrom")) rc = arg_double(C, a, v, 0, 1e3, &f_beamstop);
    else if (!strcmp(a, "--interpolation")) {
      if (!strcmp(v, "fourier")) interp = SPF_INTERP_FOURIER;
      else if (!strcmp(v, "trilinear")) interp = SPF_INTERP_TRILINEAR;
      else {
        fprintf(stderr, "spinifel fsc: --interpolation: '%s' is not fourier or trilinear\n", v);
        return 2;
      }
    } else {
      fprintf(stderr, "spinifel fsc: --intensity: unknown or unusable option '%s' (try --help)\n", a);
      return 2;
    }
    if (rc) return rc;
  }
  if (nfiles != 2) {
    fprintf(stderr, "spinifel fsc: --intensity needs two files, A and B (B is turned onto A)\n");
    return 2;
  }
  double *a = NULL, *b = NULL, *aligned = NULL, *corr = NULL, *x = NULL;
  int64_t *count = NULL;
  spf_intensity_grid ga, gb;
  int status = load_intensity(files[0], &a, &ga);
  if (!status) status = load_intensity(files[1], &b, &gb);
  if (status) goto out;
  const int64_t M = ga.M, ns = SPF_SHELLS(M);
  if (gb.M != M) {
    fprintf(stderr, "spinifel fsc: %s is %lld^3, %s is %lld^3: the grids must match\n", files[0], (long long)M,
            files[1], (long long)gb.M);
    status = 1;
    goto out;
  }
  if (isnan(f_voxel) && !isnan(ga.voxel_inv_angstrom) && !isnan(gb.voxel_inv_angstrom) &&
      fabs(ga.voxel_inv_angstrom - gb.voxel_inv_angstrom) > 1e-6 * ga.voxel_inv_angstrom) {
    fprintf(stderr, "spinifel fsc: %s has voxels of %.6g 1/A, %s of %.6g 1/A: the grids must match\n", files[0],
            ga.voxel_inv_angstrom, files[1], gb.voxel_inv_angstrom);
    status = 1;
    goto out;
  }
  const double voxel = pick(f_voxel, ga.voxel_inv_angstrom, gb.voxel_inv_angstrom);
  const double corner = pick(f_corner, ga.corner_inv_angstrom, gb.corner_inv_angstrom);
  const double edge_f = pick(f_edge, ga.edge_inv_angstrom, gb.edge_inv_angstrom);
  const double bs_f = pick(f_beamstop, ga.beamstop_inv_angstrom, gb.beamstop_inv_angstrom);
  if (isnan(voxel) || isnan(corner)) {
    fprintf(stderr, "spinifel fsc: neither %s nor %s gives the grid's %s; give --voxel-inv-angstrom V "
                    "--corner-inv-angstrom C\n",
            files[0], files[1], isnan(voxel) ? "voxel size" : "corner radius");
    status = 2;
    goto out;
  }
  const spf_intensity_grid g = {.M = M, .voxel_inv_angstrom = voxel};
  /* Index radii: the beam stop (shells inside hold no data) and the edge. */
  const double r_bs = isnan(bs_f) ? 0.0 : spf_intensity_grid_index_radius(&g, bs_f);
  const double r_last = 0.5 * (double)(M - 1);
  const double r_edge = isnan(edge_f) ? r_last : fmin(spf_intensity_grid_index_radius(&g, edge_f), r_last);
  if (r_bs >= r_last) {
    fprintf(stderr, "spinifel fsc: the beam stop (%.4g 1/A) is beyond the grid's last shell (%.4g 1/A)\n", bs_f,
            spf_intensity_grid_inv_angstrom(&g, r_last));
    status = 1;
    goto out;
  }
  spf_shellcorr_options o;
  spf_shellcorr_default_options(&o);
  o.n_rotations = rotations;
  o.nthreads = (int)threads;
  /* Whole shells only: a shell the beam stop's edge cuts holds the voxels its few
   * neighbouring pixels barely constrain. */
  o.r_min = r_bs > 0 ? ceil(r_bs + 0.5) - 0.5 : 0.0;
  o.r_max = 0;
  o.interpolation = interp;
  spf_shellcorr_result res;
  aligned = malloc(sizeof(double) * (size_t)(M * M * M));
  corr = malloc(sizeof(double) * (size_t)ns);
  count = malloc(sizeof(int64_t) * (size_t)ns);
  x = malloc(sizeof(double) * (size_t)ns);
  int rc = aligned && corr && count && x ? spf_shellcorr_align(M, a, b, &o, &res, aligned) : SPF_ERR_ALLOC;
  if (!rc) rc = spf_shell_correlation(M, a, aligned, o.r_min, o.r_max, corr, count);
  if (rc) {
    fprintf(stderr, "spinifel fsc: %s\n",
            rc == SPF_ERR_DATA ? "a volume has a NaN or infinite voxel, or A is flat on every shell used"
                               : spf_strerror(rc));
    status = 1;
    goto out;
  }
  /* Shells: the first holding voxels beyond the beam stop, the edge's, the last. */
  int64_t k_first = 0;
  while (k_first < ns - 1 && count[k_first] == 0) k_first++;
  const int64_t k_edge = (int64_t)floor(r_edge + 0.5) < ns - 1 ? (int64_t)floor(r_edge + 0.5) : ns - 1;
  for (int64_t k = 0; k < ns; k++) x[k] = spf_intensity_grid_inv_angstrom(&g, (double)k);
  if (csv) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%.4000s.tmp", csv);
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL;
    if (f) {
      fprintf(f, "shell,s_inv_angstrom,fraction_of_corner,correlation,voxels\n");
      for (int64_t k = 0; k < ns; k++)
        fprintf(f, "%lld,%.6f,%.4f,%.6f,%lld\n", (long long)k, x[k], x[k] / corner, corr[k], (long long)count[k]);
      ok = fclose(f) == 0 && ok;
    }
    if (!ok || rename(tmp, csv) != 0) {
      fprintf(stderr, "spinifel fsc: cannot write %s: %s\n", csv, strerror(errno));
      remove(tmp);
      status = 1;
      goto out;
    }
  }
  const double cross = spf_shell_crossing(corr, k_first, ns - 1, 0.5);
  const double mean_edge = spf_shell_mean(corr, k_first, k_edge);
  if (png) {
    char msg[1024] = "", name[96];
    if (isfinite(cross)) snprintf(name, sizeof name, "0.5 at %.4f 1/A (%.2f of the corner)", cross * voxel, cross * voxel / corner);
    else snprintf(name, sizeof name, "shell correlation");
    spf_plot p = {.title = "Intensity shell correlation", .xlabel = "|q| (1/A)", .ylabel = "correlation",
                  .n_points = (int)ns, .n_series = 1, .x = x, .y = {corr}, .names = {name}, .n_hlines = 1,
                  .hlines = {0.5}, .n_vlines = isfinite(cross) ? 1 : 0, .vlines = {cross * voxel},
                  .ymin = -0.2, .ymax = 1.05};
    rc = spf_picture_plot(png, &p, msg, sizeof msg);
    if (rc) {
      fprintf(stderr, "spinifel fsc: %s\n", *msg ? msg : spf_strerror(rc));
      status = 1;
      goto out;
    }
  }
  const double angle = 2 * acos(fmin(1.0, fabs(res.quat[0]))) * 180 / M_PI;
  printf("aligned %s to %s: rotation (w x y z) %.5f %.5f %.5f %.5f (%.2f deg, to %.3f deg, %s), correlation %.4f "
         "(mean over shells %lld-%lld)\n",
         files[1], files[0], res.quat[0], res.quat[1], res.quat[2], res.quat[3], angle, res.precision_deg,
         interp == SPF_INTERP_FOURIER ? "Fourier interpolation" : "trilinear", res.score, (long long)k_first,
         (long long)(ns - 1));
  printf("grid %lld^3 of %.5f 1/A: beam stop %.4f 1/A (shell %.2f), edge %.4f 1/A (shell %.2f), corner %.4f 1/A "
         "(shell %.2f), last shell %.4f 1/A\n",
         (long long)M, voxel, r_bs * voxel, r_bs, r_edge * voxel, r_edge, corner, corner / voxel,
         r_last * voxel);
  if (isfinite(cross))
    printf("shell correlation 0.5 at %.4f 1/A (%.2f A), %.3f of the corner radius\n", cross * voxel,
           1 / (cross * voxel), cross * voxel / corner);
  else
    printf("shell correlation stays at or above 0.5 to the last shell, %.4f 1/A (%.2f A), %.3f of the corner "
           "radius\n",
           r_last * voxel, 1 / (r_last * voxel), r_last * voxel / corner);
  printf("mean shell correlation from the beam stop to the edge (shells %lld-%lld): %.4f\n", (long long)k_first,
         (long long)k_edge, mean_edge);
out:
  free(a);
  free(b);
  free(aligned);
  free(corr);
  free(count);
  free(x);
  return status;
}

static int load(const char *path, double **out, int64_t *M, double *voxel)
{
  int64_t dims[3];
  char msg[1024];
  const int got = read_cube(path, out, dims, voxel, msg, sizeof msg);
  if (got == 1) {
    fprintf(stderr, "spinifel fsc: %s\n", msg);
    return 1;
  }
  if (got == 2) {
    fprintf(stderr, "spinifel fsc: %s: the map is %lld x %lld x %lld; a cubic map of odd size is needed\n", path,
            (long long)dims[0], (long long)dims[1], (long long)dims[2]);
    return 2;
  }
  if (got == 3) {
    fprintf(stderr, "spinifel fsc: out of memory\n");
    return 1;
  }
  *M = dims[0];
  return 0;
}

int cmd_fsc(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) break;
    if (!strcmp(argv[i], "--intensity")) return fsc_intensity(argc, argv);
  }
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
