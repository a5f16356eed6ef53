/* spinifel plot: the pictures of a reconstruction's output directory, and report.html. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

#define MAX_GEN 10000

/* The value of "key": in a JSON line (NAN when absent or null). */
static double json_value(const char *line, const char *key)
{
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(line, pat);
  if (!p) return NAN;
  p += strlen(pat);
  if (!strncmp(p, "null", 4)) return NAN;
  return strtod(p, NULL);
}

/* The value of `key = ...` in OUTDIR/name (a copy, trimmed), or "" when absent. */
static void file_value(const char *outdir, const char *name, const char *key, char *out, size_t len)
{
  char path[4200], line[4200];
  snprintf(path, sizeof path, "%.4000s/%s", outdir, name);
  out[0] = 0;
  FILE *f = fopen(path, "r");
  if (!f) return;
  const size_t kl = strlen(key);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl) && line[kl] == ' ' && line[kl + 1] == '=') {
      snprintf(out, len, "%s", line + kl + 3);
      out[strcspn(out, "\n")] = 0;
      break;
    }
  fclose(f);
}

static void config_value(const char *outdir, const char *key, char *out, size_t len)
{
  file_value(outdir, "config.ini", key, out, len);
}

/* Convergence, in two pictures of one unit each: convergence.png, the percentage of
 * images whose orientation changed per generation (a vertical line where the reference
 * grid reaches its final size: before it, images keep moving to the finer grid's
 * orientations); and, when the data hold the true orientations, orientation_error.png,
 * the median and 90th percentile error in degrees. */
static int plot_convergence(const char *outdir, char *msg, size_t len, int *n_gen)
{
  char path[4200], line[4096];
  snprintf(path, sizeof path, "%.4000s/log.jsonl", outdir);
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(msg, len, "%s: cannot open", path);
    return SPF_ERR_IO;
  }
  static double x[MAX_GEN], changed[MAX_GEN], err[MAX_GEN], p90[MAX_GEN], refs[MAX_GEN];
  int n = 0, have_err = 0;
  while (n < MAX_GEN && fgets(line, sizeof line, f)) {
    x[n] = json_value(line, "generation");
    changed[n] = 100 * json_value(line, "fraction_changed");
    err[n] = json_value(line, "median_orientation_error_deg");
    p90[n] = json_value(line, "p90_orientation_error_deg");
    refs[n] = json_value(line, "n_references");
    have_err |= isfinite(err[n]);
    n += isfinite(x[n]);
  }
  fclose(f);
  *n_gen = n;
  if (n < 1) {
    snprintf(msg, len, "%s: no generation logged", path);
    return SPF_ERR_DATA;
  }
  int final_from = n - 1; /* first generation on the last generation's grid */
  while (final_from > 0 && refs[final_from - 1] == refs[n - 1]) final_from--;
  char name[96];
  if (final_from > 0)
    snprintf(name, sizeof name, "final grid (%.0f references) from the line",
             refs[n - 1]);
  else
    snprintf(name, sizeof name, "%.0f references", refs[n - 1]);
  spf_plot p = {.title = "Convergence: orientations changed per generation", .xlabel = "generation",
                .ylabel = "orientations changed (%)", .n_points = n, .n_series = 1, .x = x, .y = {changed},
                .names = {name}, .n_vlines = final_from > 0 ? 1 : 0, .vlines = {x[final_from]}, .ymin = 0,
                .ymax = 105};
  snprintf(path, sizeof path, "%.4000s/convergence.png", outdir);
  int rc = spf_picture_plot(path, &p, msg, len);
  if (rc || !have_err) return rc;
  spf_plot e = {.title = "Orientation error against the data's true orientations", .xlabel = "generation",
                .ylabel = "orientation error (degrees)", .n_points = n, .n_series = 2, .x = x, .y = {err, p90},
                .names = {"median", "90th percentile"}, .ymin = 0, .ymax = 180};
  snprintf(path, sizeof path, "%.4000s/orientation_error.png", outdir);
  return spf_picture_plot(path, &e, msg, len);
}

/* The half sets' FSC curve, when the directory has one. *res05 gets its 0.5 resolution. */
static int plot_fsc(const char *outdir, char *msg, size_t len, double *res05, double *res0143)
{
  char path[4200], line[256];
  snprintf(path, sizeof path, "%.4000s/fsc_halves.csv", outdir);
  FILE *f = fopen(path, "r");
  *res05 = *res0143 = NAN;
  if (!f) return SPF_OK; /* not a half-set run */
  static double k[4096], y[4096];
  double d1 = NAN;
  int n = 0;
  while (n < 4096 && fgets(line, sizeof line, f)) {
    long long shell;
    double d, v;
    if (sscanf(line, "%lld,%lf,%lf", &shell, &d, &v) != 3) continue;
    if (shell == 1) d1 = d;
    k[n] = (double)shell;
    y[n++] = v;
  }
  fclose(f);
  if (n < 3 || !isfinite(d1)) {
    snprintf(msg, len, "%s: not an FSC curve", path);
    return SPF_ERR_DATA;
  }
  /* x: spatial frequency 1/d in 1/A (shell k at k / (M voxel) = k / d1). */
  for (int i = 0; i < n; i++) k[i] /= d1;
  const int64_t M = 2 * (n - 1) + 1;
  const double voxel = d1 / (double)M;
  *res05 = spf_fsc_resolution(M, y, voxel, 0.5);
  *res0143 = spf_fsc_resolution(M, y, voxel, 0.143);
  char name[96];
  snprintf(name, sizeof name, "half 1 vs 2: 0.5 at %.1f A, 0.143 at %.1f A", *res05, *res0143);
  spf_plot p = {.title = "Gold-standard FSC (half sets)", .xlabel = "1 / resolution (1/A)", .ylabel = "FSC",
                .n_points = n, .n_series = 1, .x = k, .y = {y}, .names = {name}, .n_hlines = 2,
                .hlines = {0.5, 0.143}, .n_vlines = isfinite(*res05) ? 1 : 0, .vlines = {1.0 / *res05},
                .ymin = -0.2, .ymax = 1.05};
  snprintf(path, sizeof path, "%.4000s/fsc.png", outdir);
  return spf_picture_plot(path, &p, msg, len);
}

/* A few images next to the model's slices at their matched orientations. */
static int plot_gallery(const char *outdir, const double *u, int64_t M, char *msg, size_t len)
{
  char data[4200], path[4200];
  config_value(outdir, "data", data, sizeof data);
  char half[16];
  config_value(outdir, "half", half, sizeof half);
  if (!data[0] || (half[0] && strcmp(half, "0"))) return SPF_OK; /* half runs: image order differs */
  char detector[4200];
  config_value(outdir, "detector", detector, sizeof detector);
  spf_dataset *d;
  int rc = detector[0] ? spf_dataset_open_emc(data, detector, &d, msg, len) : spf_dataset_open(data, &d, msg, len);
  if (rc) return rc;
  const int64_t npa = d->n_pixels, n_show = d->h.n_images < 8 ? d->h.n_images : 8;
  int64_t np = 0;
  for (int64_t p = 0; p < npa; p++) np += d->mask[p] != 0;
  float *img = malloc(sizeof(float) * (size_t)(npa * n_show)), *model = calloc((size_t)(npa * n_show), sizeof(float));
  float *slices = malloc(sizeof(float) * (size_t)(np * n_show));
  double *s = malloc(sizeof(double) * 3 * (size_t)np), *q = malloc(sizeof(double) * 4 * (size_t)d->h.n_images);
  double *rot = malloc(sizeof(double) * 9 * (size_t)n_show);
  rc = img && model && slices && s && q && rot ? SPF_OK : SPF_ERR_ALLOC;
  double s_max = 0;
  for (int64_t p = 0, v = 0; !rc && p < npa; p++)
    if (d->mask[p]) {
      for (int k = 0; k < 3; k++) s[3 * v + k] = d->s[3 * p + k];
      s_max = fmax(s_max, sqrt(s[3 * v] * s[3 * v] + s[3 * v + 1] * s[3 * v + 1] + s[3 * v + 2] * s[3 * v + 2]));
      v++;
    }
  if (!rc) rc = spf_dataset_read_images(d, 0, n_show, img, NULL, msg, len);
  snprintf(path, sizeof path, "%.4000s/results.h5", outdir);
  /* The run may have used only the first images: read as many orientations as it has. */
  int64_t n_res = d->h.n_images;
  char images[64];
  config_value(outdir, "images", images, sizeof images);
  if (atoll(images) > 0 && atoll(images) < n_res) n_res = atoll(images);
  if (!rc) rc = spf_results_read_orientations(path, n_res, q, msg, len);
  spf_slicer *sl = NULL;
  if (!rc) rc = spf_slicer_make(M, np, s, s_max, 1.0, 1e-4, n_show, 0, &sl);
  if (!rc) rc = spf_slicer_set_volume(sl, u);
  for (int64_t i = 0; !rc && i < n_show; i++) spf_quat_to_matrix(q + 4 * i, rot + 9 * i);
  if (!rc) rc = spf_slicer_slice(sl, n_show, rot, slices);
  spf_slicer_free(sl);
  for (int64_t i = 0; !rc && i < n_show; i++)
    for (int64_t p = 0, v = 0; p < npa; p++)
      if (d->mask[p]) model[i * npa + p] = fmaxf(slices[i * np + v++], 0.0f);
  const int64_t nx = d->h.nx, ny = d->h.ny;
  spf_dataset_close_reader(d);
  if (!rc) {
    char cap[8][48];
    const char *caps[8];
    for (int i = 0; i < n_show; i++) {
      snprintf(cap[i], sizeof cap[i], "image %d | model", i);
      caps[i] = cap[i];
    }
    snprintf(path, sizeof path, "%.4000s/gallery.png", outdir);
    rc = spf_picture_gallery(path, (int)n_show, nx, ny, img, model, caps, msg, len);
  }
  free(img); free(model); free(slices); free(s); free(q); free(rot);
  return rc;
}

static void html_escape(FILE *f, const char *t)
{
  for (; *t; t++) {
    if (*t == '<') fputs("&lt;", f);
    else if (*t == '>') fputs("&gt;", f);
    else if (*t == '&') fputs("&amp;", f);
    else fputc(*t, f);
  }
}

static int write_report(const char *outdir, int n_gen, double res05, double res0143, double voxel, int64_t M)
{
  char path[4200], tmp[4300], line[4096];
  snprintf(path, sizeof path, "%.4000s/report.html", outdir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return SPF_ERR_IO;
  fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>spinifel reconstruction</title>\n"
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}img{max-width:100%%;border:1px solid #ccc;"
             "margin:0.5em 0}pre{background:#f4f4f4;padding:1em;overflow:auto}td,th{padding:0.2em 0.8em;text-align:left}"
             "</style></head><body>\n<h1>spinifel reconstruction</h1>\n<table>\n");
  if (M > 0)
    fprintf(f, "<tr><th>generations</th><td>%d</td></tr>\n<tr><th>grid</th><td>%lld<sup>3</sup> voxels of %.2f "
               "&Aring;</td></tr>\n", n_gen, (long long)M, voxel);
  else
    fprintf(f, "<tr><th>half sets</th><td><a href=\"half1/report.html\">half 1</a>, "
               "<a href=\"half2/report.html\">half 2</a></td></tr>\n");
  if (isfinite(res05))
    fprintf(f, "<tr><th>gold-standard resolution</th><td>FSC 0.5 at %.1f &Aring;, 0.143 at %.1f &Aring;</td></tr>\n",
            res05, res0143);
  /* The last generation's figures. */
  char logp[4200], last[4096] = "";
  snprintf(logp, sizeof logp, "%.4000s/log.jsonl", outdir);
  FILE *lg = fopen(logp, "r");
  while (lg && fgets(line, sizeof line, lg)) snprintf(last, sizeof last, "%s", line);
  if (lg) fclose(lg);
  const double med = json_value(last, "median_orientation_error_deg"), ch = json_value(last, "fraction_changed");
  const double p90 = json_value(last, "p90_orientation_error_deg");
  if (isfinite(med)) fprintf(f, "<tr><th>median orientation error</th><td>%.2f&deg;</td></tr>\n", med);
  if (isfinite(p90)) fprintf(f, "<tr><th>90th percentile orientation error</th><td>%.2f&deg;</td></tr>\n", p90);
  if (isfinite(ch)) fprintf(f, "<tr><th>orientations changed (last generation)</th><td>%.1f%%</td></tr>\n", 100 * ch);
  /* The density against a known truth, when a command measured it (spinifel demo). */
  char corr[64], hand[64], r05[64], r0143[64], nyq[64];
  file_value(outdir, "vs_truth.txt", "correlation", corr, sizeof corr);
  file_value(outdir, "vs_truth.txt", "hand", hand, sizeof hand);
  file_value(outdir, "vs_truth.txt", "fsc_0.5_A", r05, sizeof r05);
  file_value(outdir, "vs_truth.txt", "fsc_0.143_A", r0143, sizeof r0143);
  file_value(outdir, "vs_truth.txt", "nyquist_A", nyq, sizeof nyq);
  if (corr[0] && r05[0] && r0143[0]) {
    fprintf(f, "<tr><th>density vs the truth (after alignment)</th><td>correlation ");
    html_escape(f, corr);
    fprintf(f, " (");
    html_escape(f, hand[0] ? hand : "?");
    fprintf(f, " hand); FSC 0.5 at ");
    html_escape(f, r05);
    fprintf(f, " &Aring;, 0.143 at ");
    html_escape(f, r0143);
    fprintf(f, " &Aring;");
    if (nyq[0]) {
      fprintf(f, " (Nyquist ");
      html_escape(f, nyq);
      fprintf(f, " &Aring;)");
    }
    fprintf(f, "</td></tr>\n");
  }
  fprintf(f, "</table>\n");
  const char *pics[6][2] = {{"density.png", "Density: central slices and projections"},
                           {"intensity.png", "3D intensity: central slices (log scale) with resolution rings"},
                           {"gallery.png", "Images and the model's slices at their matched orientations"},
                           {"fsc.png", "Fourier shell correlation between the half sets"},
                           {"convergence.png", "Convergence"},
                           {"orientation_error.png", "Orientation error (the data hold the true orientations)"}};
  /* What a reader needs to read the curves. */
  const char *notes[7] = {
      [5] = "The share of images whose orientation moved in each generation. While the reference grid grows "
            "(up to the vertical line) and while matching is soft, images keep moving to the finer grid's "
            "orientations, so the share stays high; a move across grids counts only beyond 1.5 times the new "
            "grid's spacing. On the final grid it falls, and the run stops once it is below stop-fraction.",
      [6] = "Angle between each image's orientation and its true one (the nearer of it and its Friedel mate), "
            "after the best global rotation: the median and the 90th percentile. Images left in wrong "
            "orientations show in the 90th percentile first."};
  for (int i = 0; i < 6; i++) {
    char pp[4200];
    snprintf(pp, sizeof pp, "%.4000s/%s", outdir, pics[i][0]);
    if (access(pp, R_OK) != 0) continue;
    fprintf(f, "<h2>%s</h2>\n<img src=\"%s\" alt=\"%s\">\n", pics[i][1], pics[i][0], pics[i][1]);
    if (notes[i]) fprintf(f, "<p>%s</p>\n", notes[i]);
  }
  fprintf(f, "<h2>Settings</h2>\n<pre>");
  char cp[4200];
  snprintf(cp, sizeof cp, "%.4000s/config.ini", outdir);
  FILE *cf = fopen(cp, "r");
  while (cf && fgets(line, sizeof line, cf)) html_escape(f, line);
  if (cf) fclose(cf);
  fprintf(f, "</pre>\n");
  /* For the headless-browser test: mark whether every picture decoded. */
  fprintf(f, "<script>window.addEventListener('load',function(){var ok=true;for(var i=0;i<document.images.length;i++)"
             "ok=ok&&document.images[i].naturalWidth>0;document.body.setAttribute('data-images-loaded',ok?'yes':'no');"
             "});</script>\n</body></html>\n");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    remove(tmp);
    return SPF_ERR_IO;
  }
  return SPF_OK;
}

/* The pictures of a directory with density.mrc and results.h5; need_log: log.jsonl is
 * required (a reconstruction's), else convergence.png is drawn only when it is there.
 * The figures report.html shows come back in n_gen, res05, res0143, voxel and M. */
static int draw_pictures(const char *outdir, int need_log, char *msg, size_t len, int *n_gen_out, double *res05,
                         double *res0143, double *voxel_out, int64_t *M_out);

int plot_outdir(const char *outdir, char *msg, size_t len)
{
  char path[4200];
  snprintf(path, sizeof path, "%.4000s/density.mrc", outdir);
  if (access(path, R_OK) != 0) {
    /* A half-set run's directory: the curve and a report; each half has its own. */
    snprintf(path, sizeof path, "%.4000s/fsc_halves.csv", outdir);
    if (access(path, R_OK) == 0) {
      double r05, r0143;
      int rc = plot_fsc(outdir, msg, len, &r05, &r0143);
      if (!rc && write_report(outdir, 0, r05, r0143, NAN, 0)) {
        snprintf(msg, len, "%s/report.html: cannot write", outdir);
        rc = SPF_ERR_IO;
      }
      return rc;
    }
  }
  /* A watch's directory (docs/watch.md): the pictures again, its own report kept. */
  snprintf(path, sizeof path, "%.4000s/state/watch.state", outdir);
  if (access(path, R_OK) == 0) return plot_pictures(outdir, msg, len);
  int n_gen = 0;
  int64_t M = 0;
  double r05, r0143, voxel;
  int rc = draw_pictures(outdir, 1, msg, len, &n_gen, &r05, &r0143, &voxel, &M);
  if (!rc && write_report(outdir, n_gen, r05, r0143, voxel, M)) {
    snprintf(msg, len, "%s/report.html: cannot write", outdir);
    rc = SPF_ERR_IO;
  }
  return rc;
}

int plot_pictures(const char *outdir, char *msg, size_t len)
{
  int n_gen = 0;
  int64_t M = 0;
  double r05, r0143, voxel;
  return draw_pictures(outdir, 0, msg, len, &n_gen, &r05, &r0143, &voxel, &M);
}

static int draw_pictures(const char *outdir, int need_log, char *msg, size_t len, int *n_gen_out, double *res05,
                         double *res0143, double *voxel_out, int64_t *M_out)
{
  char path[4200];
  *n_gen_out = 0;
  *res05 = *res0143 = *voxel_out = NAN;
  *M_out = 0;
  snprintf(path, sizeof path, "%.4000s/density.mrc", outdir);
  float *map = NULL;
  int64_t dims[3];
  double voxel, origin[3];
  int rc = spf_mrc_read(path, &map, dims, &voxel, origin, msg, len);
  if (rc) return rc;
  /* A reconstruction's density is a cube of M^3 (M >= 3): anything else is another map. */
  if (dims[0] != dims[1] || dims[0] != dims[2] || dims[0] < 3) {
    snprintf(msg, len, "%s: a %lld x %lld x %lld map, not a reconstruction's cubic density", path, (long long)dims[0],
             (long long)dims[1], (long long)dims[2]);
    free(map);
    return SPF_ERR_FORMAT;
  }
  const int64_t M = dims[0], n3 = M * M * M;
  double *rho = malloc(sizeof(double) * (size_t)n3), *vol = malloc(sizeof(double) * (size_t)n3);
  rc = rho && vol ? SPF_OK : SPF_ERR_ALLOC;
  for (int64_t i = 0; !rc && i < n3; i++) rho[i] = map[i];
  free(map);
  snprintf(path, sizeof path, "%.4000s/density.png", outdir);
  if (!rc) rc = spf_picture_density(path, M, rho, voxel, "Density", msg, len);
  snprintf(path, sizeof path, "%.4000s/results.h5", outdir);
  if (!rc) rc = spf_results_read_volume(path, "intensity", M, vol, msg, len);
  if (!rc) {
    /* Rings at round resolutions: the finest on the grid, then about 2 and 4 times it. */
    static const double nice[] = {2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 500};
    const int n_nice = (int)(sizeof nice / sizeof *nice);
    const double nyq = 2 * voxel * M / (M - 1);
    double rings[3];
    int nr = 0;
    for (int i = 0, want = 0; i < n_nice && nr < 3; i++)
      if (nice[i] >= nyq * (want ? 2 * rings[nr - 1] / nyq : 1.0) - 1e-9) {
        rings[nr++] = nice[i];
        want = 1;
      }
    snprintf(path, sizeof path, "%.4000s/intensity.png", outdir);
    rc = spf_picture_intensity(path, M, vol, voxel, nr, rings, "3D intensity", msg, len);
  }
  snprintf(path, sizeof path, "%.4000s/results.h5", outdir);
  if (!rc) rc = spf_results_read_volume(path, "autocorrelation", M, vol, msg, len);
  if (!rc) rc = plot_gallery(outdir, vol, M, msg, len);
  snprintf(path, sizeof path, "%.4000s/log.jsonl", outdir);
  if (!rc && (need_log || access(path, R_OK) == 0)) rc = plot_convergence(outdir, msg, len, n_gen_out);
  if (!rc) rc = plot_fsc(outdir, msg, len, res05, res0143);
  *voxel_out = voxel;
  *M_out = M;
  free(rho);
  free(vol);
  return rc;
}

int cmd_plot(int argc, char **argv)
{
  if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    printf("usage: spinifel plot OUTDIR\n"
           "  Draw the pictures of a reconstruction (density.png, intensity.png, gallery.png,\n"
           "  convergence.png, fsc.png for half sets) and report.html into OUTDIR.\n");
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-') {
    fprintf(stderr, "spinifel plot: one output directory of spinifel reconstruct is required\n");
    return 2;
  }
  char msg[1024] = "";
  const int rc = plot_outdir(argv[1], msg, sizeof msg);
  if (rc) {
    fprintf(stderr, "spinifel plot: %s\n", *msg ? msg : spf_strerror(rc));
    return 1;
  }
  printf("wrote the pictures and %s/report.html\n", argv[1]);
  return 0;
}
