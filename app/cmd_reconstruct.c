/* spinifel reconstruct: M-TIP from a dataset to a density, with a configuration file,
 * a JSON-lines log, a checkpoint per generation and --resume. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "progress.h"
#include "reconstruct_config.h"

static int write_text_file(const char *path, const char *text)
{
  char tmp[2200];
  snprintf(tmp, sizeof tmp, "%.2100s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return SPF_ERR_IO;
  int ok = fputs(text, f) >= 0;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return SPF_ERR_IO;
  }
  return SPF_OK;
}

static void usage(FILE *out)
{
  settings s;
  config_defaults(&s);
  param t[MAX_PARAMS];
  const int n = config_param_table(&s, t);
  fprintf(out,
          "usage: spinifel reconstruct DATA.h5 -o OUTDIR [--config FILE.ini] [--NAME VALUE ...]\n"
          "       spinifel reconstruct --resume OUTDIR [--threads K] [--generations N]\n"
          "  Recover orientations and the 3D density from diffraction images (M-TIP).\n"
          "  Parameters come from the defaults, then the configuration file ([reconstruct]\n"
          "  section, NAME = VALUE), then the flags. OUTDIR receives config.ini (the effective\n"
          "  configuration), log.jsonl (a line per generation), checkpoint.h5 (after every\n"
          "  generation), and at the end density.mrc, results.h5, pictures (PNG) and report.html.\n"
          "options:\n"
          "  -o, --output OUTDIR  the run's directory (created when absent)\n"
          "  --config FILE.ini    parameters from a file (a run's own config.ini repeats it)\n"
          "  --resume OUTDIR      continue a stopped run from its last complete generation\n"
          "  --half-sets          reconstruct two random halves of the images independently into\n"
          "                       OUTDIR/half1 and OUTDIR/half2 and report the gold-standard FSC\n"
          "  -h, --help           this text\n"
          "examples:\n"
          "  spinifel reconstruct data.h5 -o run1\n"
          "  spinifel reconstruct data.h5 -o run2 --M 41 --generations 30 --threads 8\n"
          "  spinifel reconstruct photons.emc --detector det.dat -o run3 --half-sets\n"
          "  spinifel reconstruct --resume run1 --generations 40\n"
          "parameters (default):\n");
  char def[64];
  for (int i = 0; i < n; i++) {
    switch (t[i].type) {
    case T_TEXT: snprintf(def, sizeof def, "%s", ""); break;
    case T_DOUBLE: snprintf(def, sizeof def, "%g", *(double *)t[i].ptr); break;
    case T_INT: snprintf(def, sizeof def, "%d", *(int *)t[i].ptr); break;
    default: snprintf(def, sizeof def, "%lld", (long long)*(int64_t *)t[i].ptr);
    }
    if (!strcmp(t[i].name, "data") || !strcmp(t[i].name, "output")) continue;
    fprintf(out, "  --%-18s %s (%s)\n", t[i].name, t[i].help, def);
  }
}

typedef struct {
  double t_step;                 /* start of the current step */
  double last_step[3];           /* the previous generation's seconds per step (ETA) */
  double cur_step[3];
  const char *outdir;
  const char *config;
  FILE *log;
  int64_t n_images;
  int max_gen, progress, pictures_each, rank, distributed; /* progress: PROGRESS_* */
  const spf_comm *comm;
  int64_t n_all;   /* the run's images over all ranks */
  spf_run_state whole; /* distributed: rank 0's gathered state for the checkpoint */
  double voxel;
  double resolution;      /* 1 / s_max, A: the corner's */
  double t_start;
  char msg[1024];
  int rc;
} run_ctx;

static void json_number(FILE *f, const char *key, double v)
{
  if (isfinite(v)) fprintf(f, ",\"%s\":%.6g", key, v);
  else fprintf(f, ",\"%s\":null", key);
}

/* A progress line per step on a terminal: elapsed, and an ETA from this step's rate
 * (matching) or from the previous generation's duration of the step. */
static void on_step(void *ctx, int gen, const char *step, int64_t done, int64_t total)
{
  run_ctx *c = ctx;
  if (c->progress == PROGRESS_QUIET || c->rank != 0) return;
  const double now = omp_get_wtime();
  const int k = !strcmp(step, "slice+match") ? 0 : !strcmp(step, "merge") ? 1 : 2;
  if (done == 0) c->t_step = now; /* slice+match starts where the last generation ended */
  const double el = now - c->t_step;
  double eta = k == 0 && done > 0 ? el / (double)done * (double)(total - done)
                                  : (c->last_step[k] > el ? c->last_step[k] - el : 0);
  if (done == total) {
    eta = 0;
    c->cur_step[k] = el;
  }
  if (c->progress == PROGRESS_LINES) {
    /* A line as each step ends, with the time of day: a log file says where the run is. */
    if (done != total) return;
    progress_stamp();
    fprintf(stderr, "generation %d/%d %s done in %.1fs (run elapsed %.0fs)\n", gen + 1, c->max_gen, step, el,
            now - c->t_start);
    return;
  }
  fprintf(stderr, "\rgeneration %d/%d %-11s %3.0f%%  elapsed %5.1fs  ETA %5.1fs   ", gen + 1, c->max_gen, step,
          total > 0 ? 100.0 * (double)done / (double)total : 100.0, el, eta);
  fflush(stderr);
}


/* Gather each rank's share of n_all per-image items (item_bytes each) into rank 0's out. */
static int gather_images(const spf_comm *cw, int64_t n_all, const void *mine, int64_t n_mine, void *out,
                         int64_t item_bytes)
{
  int64_t *counts = malloc(sizeof(int64_t) * (size_t)cw->size);
  int rc = spf_comm_agree(cw, counts ? SPF_OK : SPF_ERR_ALLOC);
  for (int r = 0; !rc && r < cw->size; r++) {
    int64_t f0;
    spf_share(n_all, r, cw->size, &f0, &counts[r]);
  }
  if (!rc) rc = spf_comm_gather(cw, mine, n_mine, out, counts, item_bytes, 0);
  free(counts);
  return rc;
}

/* Gather the ranks' per-image state into rank 0's whole state (volumes are the same on
 * every rank): every rank takes part; SPF_OK or an error code agreed by all ranks. */
static int gather_state(run_ctx *c, const spf_run_state *st)
{
  const spf_comm *cw = c->comm;
  spf_run_state *w = &c->whole;
  const int64_t n = st->n_images;
  int rc = cw->rank == 0 && !w->orientations ? spf_run_state_make(st->M, c->n_all, w) : SPF_OK;
  rc = spf_comm_agree(cw, rc);
  if (!rc) rc = gather_images(cw, c->n_all, st->orientations, n, w->orientations, 4 * sizeof(double));
  if (!rc) rc = gather_images(cw, c->n_all, st->best, n, w->best, sizeof(int64_t));
  if (!rc) rc = gather_images(cw, c->n_all, st->best_dist, n, w->best_dist, sizeof(float));
  if (!rc) rc = gather_images(cw, c->n_all, st->gap, n, w->gap, sizeof(float));
  if (!rc) rc = gather_images(cw, c->n_all, st->fluence, n, w->fluence, sizeof(double));
  if (!rc) rc = gather_images(cw, c->n_all, st->entropy, n, w->entropy, sizeof(float));
  if (!rc && cw->rank == 0) spf_run_state_copy_volumes(w, st);
  return rc;
}

static int report_generation(run_ctx *c, const spf_generation_log *g, const spf_run_state *st);

static int on_generation(void *ctx, const spf_generation_log *g, const spf_run_state *st)
{
  run_ctx *c = ctx;
  if (!c->distributed) return report_generation(c, g, st);
  /* Rank 0 reports and checkpoints for all; every rank learns whether that worked. */
  int rc = gather_state(c, st);
  if (!rc && c->rank == 0) rc = report_generation(c, g, &c->whole);
  rc = spf_comm_agree(c->comm, rc);
  if (rc && !c->msg[0]) snprintf(c->msg, sizeof c->msg, "%s", spf_strerror(rc));
  c->rc = rc;
  return rc;
}

static int report_generation(run_ctx *c, const spf_generation_log *g, const spf_run_state *st)
{
  for (int k = 0; k < 3; k++) {
    c->last_step[k] = c->cur_step[k];
    c->cur_step[k] = -1;
  }
  if (c->progress == PROGRESS_LIVE) fputc('\r', stderr);
  fprintf(c->log, "{\"generation\":%d", g->generation);
  fprintf(c->log, ",\"model\":\"%s\"", g->model == SPF_MODEL_POISSON ? "poisson" : "euclidean");
  fprintf(c->log, ",\"n_references\":%lld", (long long)g->n_references);
  json_number(c->log, "beta", g->beta);
  json_number(c->log, "mean_entropy", g->mean_entropy);
  json_number(c->log, "median_loglik_gap", g->median_gap);
  json_number(c->log, "median_loglik_spread", g->median_spread);
  json_number(c->log, "negative_intensity_fraction", g->negative_fraction);
  json_number(c->log, "fraction_changed", g->fraction_changed);
  json_number(c->log, "median_orientation_error_deg", g->median_orientation_error_deg);
  json_number(c->log, "p90_orientation_error_deg", g->p90_orientation_error_deg);
  fprintf(c->log, ",\"cg_iterations\":%d", g->cg_iterations);
  json_number(c->log, "cg_residual", g->cg_residual);
  json_number(c->log, "rho", g->rho_chosen);
  json_number(c->log, "phase_error", g->phase_error);
  fprintf(c->log, ",\"support_size\":%lld", (long long)g->support_size);
  json_number(c->log, "t_slice_match", g->t_slice_match);
  json_number(c->log, "t_merge", g->t_merge);
  json_number(c->log, "t_phase", g->t_phase);
  json_number(c->log, "t_slice", g->t_slice);
  json_number(c->log, "t_likelihood", g->t_likelihood);
  json_number(c->log, "t_views", g->t_views);
  json_number(c->log, "t_merge_points", g->t_merge_points);
  json_number(c->log, "t_reduce", g->t_reduce);
  json_number(c->log, "t_ring", g->t_ring);
  fprintf(c->log, ",\"rechecks\":%lld", (long long)g->rechecks);
  const spf_reference_choice *rc_ = &g->refs_choice;
  if (rc_->n_references > 0) {
    fprintf(c->log, ",\"refs_chosen\":%lld", (long long)rc_->n_references);
    json_number(c->log, "particle_diameter_A", rc_->particle_voxels * c->voxel);
    json_number(c->log, "refs_ball_radius_deg", rc_->ball_radius_deg);
    fprintf(stderr,
            "%sreferences: %lld final orientations, from the data: the particle is about %.0f A across (generation "
            "0's autocorrelation falls below 1%% of its centre there) and the data reach %.1f A, so one "
            "orientation per ball of %.2f deg (d / 2D)%s; --refs sets it\n",
            c->progress == PROGRESS_LIVE ? "\n" : "", (long long)rc_->n_references, rc_->particle_voxels * c->voxel, c->resolution,
            rc_->ball_radius_deg,
            rc_->clamped < 0 ? ", raised to --refs-start" : rc_->clamped > 0 ? ", capped at --refs-max" : "");
  }
  fprintf(c->log, "}\n");
  fflush(c->log);
  char path[2100];
  snprintf(path, sizeof path, "%s/checkpoint.h5", c->outdir);
  c->rc = spf_checkpoint_write(path, st, c->config, c->msg, sizeof c->msg);
  if (!c->rc && c->pictures_each) {
    char title[64];
    snprintf(title, sizeof title, "Density after generation %d", g->generation);
    snprintf(path, sizeof path, "%.2000s/density_gen%03d.png", c->outdir, g->generation);
    c->rc = spf_picture_density(path, st->M, st->rho, c->voxel, title, c->msg, sizeof c->msg);
  }
  if (c->progress != PROGRESS_QUIET) {
    const double el = omp_get_wtime() - c->t_start, per = el / (g->generation + 1);
    if (c->progress == PROGRESS_LINES) progress_stamp();
    fprintf(stderr,
            "generation %d/%d: slice+match %.1fs merge %.1fs phase %.1fs | changed %.3f", g->generation + 1,
            c->max_gen, g->t_slice_match, g->t_merge, g->t_phase, g->fraction_changed);
    if (isfinite(g->median_orientation_error_deg))
      fprintf(stderr, " | error %.1f deg", g->median_orientation_error_deg);
    fprintf(stderr, " | elapsed %.0fs, ETA <= %.0fs\n", el, per * (c->max_gen - g->generation - 1));
  }
  c->t_step = omp_get_wtime();
  return c->rc;
}

/* Keep the first n lines of the log (the generations the checkpoint holds). */
static int trim_log(const char *path, int n)
{
  FILE *f = fopen(path, "r");
  if (!f) return n == 0 ? SPF_OK : SPF_ERR_IO;
  char *keep = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&keep, &len);
  char line[4096];
  int lines = 0;
  while (m && lines < n && fgets(line, sizeof line, f)) {
    fputs(line, m);
    lines += strchr(line, '\n') != NULL;
  }
  fclose(f);
  if (!m) return SPF_ERR_ALLOC;
  fclose(m);
  int rc = write_text_file(path, keep);
  free(keep);
  return rc;
}

/* --half-sets: two independent runs, each on one half of a seeded random split of the
 * images (OUTDIR/half1, OUTDIR/half2: ordinary run directories, resumable one by one),
 * then the gold-standard FSC between their aligned densities. */
static int run_half_sets(int argc, char **argv, const char *resume_dir, int half, const char *outdir,
                         const spf_comm *cw)
{
  if (resume_dir || half) {
    fprintf(stderr, "spinifel reconstruct: --half-sets cannot be combined with --resume or --half (resume "
                    "OUTDIR/half1 and OUTDIR/half2 one by one)\n");
    return 2;
  }
  char **args = malloc(sizeof(char *) * (size_t)(argc + 5));
  char dirs[2][2100], h[2][2] = {"1", "2"};
  if (!args) return 1;
  for (int k = 0; k < 2; k++) {
    int m = 0;
    for (int i = 0; i < argc; i++)
      if (strcmp(argv[i], "--half-sets")) args[m++] = argv[i];
    snprintf(dirs[k], sizeof dirs[k], "%.2000s/half%d", outdir, k + 1);
    args[m++] = "--half";
    args[m++] = h[k];
    args[m++] = "-o";
    args[m++] = dirs[k];
    if (cw->rank == 0) printf("== half %d of the images into %s\n", k + 1, dirs[k]);
    fflush(stdout);
    const int rc = cmd_reconstruct(m, args);
    if (rc) {
      free(args);
      return rc;
    }
  }
  free(args);
  if (cw->rank != 0) return 0; /* under mpirun, rank 0 compares the halves */
  char a[2200], b[2200], csv[2200];
  snprintf(a, sizeof a, "%s/density.mrc", dirs[0]);
  snprintf(b, sizeof b, "%s/density.mrc", dirs[1]);
  snprintf(csv, sizeof csv, "%.2000s/fsc_halves.csv", outdir);
  char *fargs[] = {"fsc", a, b, "-o", csv};
  printf("== gold standard: the half sets' densities aligned and compared (curve in %s)\n", csv);
  fflush(stdout);
  int rc = cmd_fsc(5, fargs);
  char msg[1024] = "";
  if (!rc && plot_outdir(outdir, msg, sizeof msg)) {
    fprintf(stderr, "spinifel reconstruct: pictures: %s\n", msg);
    rc = 1;
  }
  return rc;
}

/* Photon counts only: valid pixels that saw no photon in any image (of any rank) while
 * their neighbours did are dropped from img and s (spf_dead_pixels), the intensity grid
 * redone without them, and the count reported. */
static int mask_dead_pixels(const spf_comm *cw, const spf_dataset *d, int64_t n, int64_t *np, float *img, double *s,
                            spf_intensity_grid *ig, const spf_reconstruct_options *o, char *msg, size_t msg_len)
{
  const int64_t np_all = d->n_pixels, nv = *np;
  int64_t not_counts;
  double mean;
  int rc = spf_photon_count_stats(cw, n, nv, img, &not_counts, &mean);
  if (rc || not_counts) return rc;
  int64_t *isum = calloc((size_t)nv, sizeof(int64_t));
  double *sums = calloc((size_t)np_all, sizeof(double));
  uint8_t *dead = malloc((size_t)np_all), *mask = malloc((size_t)np_all);
  if (!isum || !sums || !dead || !mask) rc = SPF_ERR_ALLOC;
  for (int64_t i = 0; !rc && i < n; i++)
    for (int64_t v = 0; v < nv; v++) isum[v] += (int64_t)img[i * nv + v];
  if (!rc) rc = spf_comm_sum_int64(cw, isum, nv);
  int64_t n_dead = 0, total = 0;
  for (int64_t p = 0, v = 0; !rc && p < np_all; p++)
    if (d->mask[p]) {
      total += isum[v];
      sums[p] = (double)isum[v++];
    }
  if (!rc) rc = spf_dead_pixels(d->h.nx, d->h.ny, d->mask, sums, log((double)nv) + log(1e6), dead, &n_dead);
  if (!rc && n_dead > 0) {
    /* Keep the live valid pixels, in order, in place. */
    int64_t keep = 0;
    uint8_t *live = malloc((size_t)nv);
    if (!live) rc = SPF_ERR_ALLOC;
    for (int64_t p = 0, v = 0; !rc && p < np_all; p++) {
      mask[p] = d->mask[p] && !dead[p];
      if (d->mask[p]) keep += live[v++] = !dead[p];
    }
    for (int64_t v = 0, w = 0; !rc && v < nv; v++)
      if (live[v]) {
        memmove(s + 3 * w, s + 3 * v, sizeof(double) * 3);
        w++;
      }
    for (int64_t i = 0; !rc && i < n; i++)
      for (int64_t v = 0, w = 0; v < nv; v++)
        if (live[v]) img[i * keep + w++] = img[i * nv + v];
    free(live);
    if (!rc && spf_intensity_grid_make(ig->M, o->oversampling, np_all, d->s, mask, ig)) rc = SPF_ERR_DATA;
    if (!rc) {
      *np = keep;
      if (cw->rank == 0)
        fprintf(stderr,
                "masked %lld pixels that saw no photon in any image while their neighbours did (a valid pixel saw %.3g "
                "photons in all on average): an unmasked beam stop or dead pixels (--mask-dead 0 keeps them)\n",
                (long long)n_dead, (double)total / (double)nv);
    }
  }
  if (rc) snprintf(msg, msg_len, "masking photon-less pixels: %s", spf_strerror(rc));
  free(isum); free(sums); free(dead); free(mask);
  return rc;
}

/* Whether a checkpoint's configuration (results-changing part, as text) is the run's:
 * compared as settings, so that the way numbers are written (0.29999999999999999 by
 * versions before 0.3 was written as 0.3) does not matter. */
static int same_configuration(const char *stored, const char *current)
{
  if (!strcmp(stored, current)) return 1;
  settings a;
  char normal[16384];
  config_defaults(&a);
  if (config_read_text(&a, stored, "checkpoint.h5 configuration")) return 0;
  config_text(&a, 1, normal, sizeof normal);
  return !strcmp(normal, current);
}

/* The command, given where to note an output directory it created (created_dir[0] then
 * non-zero), so that a failed run removes it again when it is still empty. */
static int reconstruct_command(int argc, char **argv, char *created_dir, size_t created_len);

int cmd_reconstruct(int argc, char **argv)
{
  char created[4096] = "";
  const int rc = reconstruct_command(argc, argv, created, sizeof created);
  if (rc && created[0]) rmdir(created); /* only succeeds when empty: never removes output */
  return rc;
}

static int reconstruct_command(int argc, char **argv, char *created_dir, size_t created_len)
{
  settings S;
  config_defaults(&S);
  const char *resume_dir = NULL;
  char path[2100];
  int half_sets = 0;
  /* Pass 1: --config and --resume, so flags override the file. */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "--resume")) {
      const char *v = arg_value("reconstruct", argc, argv, &i);
      if (!v) return 2;
      if (!strcmp(argv[i - 1], "--resume")) {
        resume_dir = v;
        snprintf(path, sizeof path, "%s/config.ini", v);
      } else {
        snprintf(path, sizeof path, "%s", v);
      }
      int rc = config_read_file(&S, path, resume_dir);
      if (rc) return rc;
      if (resume_dir) snprintf(S.output, sizeof S.output, "%s", resume_dir);
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "--config") || !strcmp(a, "--resume")) {
      i++;
      continue;
    }
    if (!strcmp(a, "--half-sets")) {
      half_sets = 1;
      continue;
    }
    if (!strcmp(a, "--quiet") && !(i + 1 < argc && (!strcmp(argv[i + 1], "0") || !strcmp(argv[i + 1], "1")))) {
      S.quiet = 1; /* a bare --quiet; --quiet 0|1 is the parameter's usual form */
      continue;
    }
    if (a[0] != '-') {
      if (S.data[0] && !resume_dir && strcmp(S.data, a)) {
        fprintf(stderr, "spinifel reconstruct: one dataset only ('%s' and '%s')\n", S.data, a);
        return 2;
      }
      if (config_set(&S, "data", a, "DATA")) return 2;
      continue;
    }
    if (!(v = arg_value("reconstruct", argc, argv, &i))) return 2;
    const char *name = !strcmp(a, "-o") ? "output" : a + (a[1] == '-' ? 2 : 1);
    if (resume_dir && strcmp(name, "threads") && strcmp(name, "generations") && strcmp(name, "pictures-each") &&
        strcmp(name, "quiet")) {
      fprintf(stderr, "spinifel reconstruct: --resume takes only --threads, --generations, --pictures-each and --quiet (the run's configuration "
                      "is in %s)\n", path);
      return 2;
    }
    if (config_set(&S, name, v, a)) return 2;
  }
  if (!S.data[0] || !S.output[0]) {
    fprintf(stderr, "spinifel reconstruct: a dataset and an output directory are required (DATA.h5 -o OUTDIR)\n");
    return 2;
  }
  /* The dataset by absolute path, so that config.ini works from anywhere. */
  char *abs = realpath(S.data, NULL);
  if (!abs) {
    fprintf(stderr, "spinifel reconstruct: %s: %s\n", S.data, strerror(errno));
    return 1;
  }
  snprintf(S.data, sizeof S.data, "%s", abs);
  free(abs);
  if (S.detector[0]) {
    if (!(abs = realpath(S.detector, NULL))) {
      fprintf(stderr, "spinifel reconstruct: %s: %s\n", S.detector, strerror(errno));
      return 1;
    }
    snprintf(S.detector, sizeof S.detector, "%s", abs);
    free(abs);
  }
  spf_reconstruct_options o = S.o;
  if (!strcmp(S.model, "auto")) o.model = SPF_MODEL_AUTO;
  else if (!strcmp(S.model, "poisson")) o.model = SPF_MODEL_POISSON;
  else if (!strcmp(S.model, "euclidean")) o.model = SPF_MODEL_EUCLIDEAN;
  else {
    fprintf(stderr, "spinifel reconstruct: --model must be auto, poisson or euclidean, got '%s'\n", S.model);
    return 2;
  }
  if (o.M % 2 == 0) {
    fprintf(stderr, "spinifel reconstruct: --M must be odd, got %lld\n", (long long)o.M);
    return 2;
  }
  if (o.rho_min > o.rho_max) {
    fprintf(stderr, "spinifel reconstruct: --rho-min %g exceeds --rho-max %g\n", o.rho_min, o.rho_max);
    return 2;
  }
  const char *outdir = S.output;
  if (mkdir(outdir, 0777) == 0) {
    snprintf(created_dir, created_len, "%s", outdir);
  } else if (errno != EEXIST) {
    fprintf(stderr, "spinifel reconstruct: cannot create %s: %s\n", outdir, strerror(errno));
    return 1;
  }
  struct stat od;
  if (stat(outdir, &od) != 0 || !S_ISDIR(od.st_mode)) {
    fprintf(stderr, "spinifel reconstruct: the output %s exists and is not a directory\n", outdir);
    return 1;
  }
  spf_comm cw;
  spf_comm_world(&cw);
  if (half_sets) return run_half_sets(argc, argv, resume_dir, S.half, outdir, &cw);
  static char config[16384], config_results[16384], stored[16384];
  config_text(&S, 0, config, sizeof config);
  config_text(&S, 1, config_results, sizeof config_results);

  /* From here on one exit: every array the run holds is freed at 'out'. */
  char msg[1024] = "";
  spf_dataset *d = NULL;
  int64_t *slot = NULL;
  float *all = NULL, *img = NULL, *map = NULL;
  double *s = NULL, *q_true = NULL;
  spf_run_state st, whole;
  memset(&st, 0, sizeof st);
  memset(&whole, 0, sizeof whole);
  run_ctx c;
  memset(&c, 0, sizeof c);
  int ret = 1;
  int rc = S.detector[0] ? spf_dataset_open_emc(S.data, S.detector, &d, msg, sizeof msg)
                         : spf_dataset_open(S.data, &d, msg, sizeof msg);
  if (rc) {
    fprintf(stderr, "spinifel reconstruct: %s\n", msg);
    goto out;
  }
  const int64_t n_all = S.images > 0 && S.images < d->h.n_images ? S.images : d->h.n_images, np_all = d->n_pixels;
  /* Half sets: a seeded random split (Fisher-Yates), each half in file order. */
  int64_t n = n_all;
  slot = malloc(sizeof(int64_t) * (size_t)n_all);
  if (!slot) {
    fprintf(stderr, "spinifel reconstruct: out of memory\n");
    goto out;
  }
  for (int64_t i = 0; i < n_all; i++) slot[i] = i;
  if (S.half) {
    if (n_all < 4) {
      fprintf(stderr, "spinifel reconstruct: --half needs at least 4 images\n");
      ret = 2;
      goto out;
    }
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n_all);
    if (!perm) {
      fprintf(stderr, "spinifel reconstruct: out of memory\n");
      goto out;
    }
    spf_rng r;
    spf_rng_seed(&r, S.o.seed, 0x5EED5EEDull);
    for (int64_t i = 0; i < n_all; i++) perm[i] = i;
    for (int64_t i = n_all - 1; i > 0; i--) {
      const int64_t j = (int64_t)(spf_rng_next(&r) % (uint64_t)(i + 1)), t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    /* Image perm[k] belongs to half 1 when k < n_all / 2. */
    for (int64_t k = 0; k < n_all; k++) slot[perm[k]] = (k < n_all / 2) == (S.half == 1) ? 0 : -1;
    n = 0;
    for (int64_t i = 0; i < n_all; i++)
      if (slot[i] == 0) slot[i] = n++;
    free(perm);
  }
  /* Under mpirun: this rank's contiguous share of the run's images (of the half, with
   * --half), read and held alone. */
  const int64_t n_run = n;
  int64_t first = 0;
  if (cw.active) {
    spf_share(n_run, cw.rank, cw.size, &first, &n);
    for (int64_t i = 0; i < n_all; i++) slot[i] = slot[i] >= first && slot[i] < first + n ? slot[i] - first : -1;
  }
  int64_t np = 0;
  for (int64_t p = 0; p < np_all; p++) np += d->mask[p] != 0;
  if (o.start_from_truth && !d->h.has_orientations) {
    fprintf(stderr, "spinifel reconstruct: --start-from-truth: %s holds no orientations\n", S.data);
    ret = 2;
    goto out;
  }
  const int64_t M = o.M, n3 = M * M * M;
  /* The images are held in memory: say so before trying when they cannot fit (an
   * allocation that succeeds only to be killed later helps nobody). */
  const double need = 4.0 * (double)n * (double)np, have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  if (have > 0 && need > 0.9 * have) {
    fprintf(stderr, "spinifel reconstruct: %lld images of %lld pixels need %.1f GiB, more than this machine's %.1f GiB%s\n",
            (long long)n, (long long)np, need / 1073741824.0, have / 1073741824.0,
            cw.active ? "" : " (mpirun spreads them over ranks)");
    goto out;
  }
  all = malloc(sizeof(float) * (size_t)np_all * 64);
  img = malloc(sizeof(float) * (size_t)(n * np));
  s = malloc(sizeof(double) * 3 * (size_t)np);
  q_true = d->h.has_orientations ? malloc(sizeof(double) * 4 * (size_t)n) : NULL;
  const int st_rc = spf_run_state_make(M, n, &st);
  map = malloc(sizeof(float) * (size_t)n3);
  if (!all || !img || !s || (d->h.has_orientations && !q_true) || st_rc || !map) {
    fprintf(stderr, "spinifel reconstruct: out of memory for %lld images of %lld pixels\n", (long long)n,
            (long long)np);
    goto out;
  }
  /* Only valid pixels take part; s in 1/m as stored. */
  for (int64_t p = 0, v = 0; p < np_all; p++)
    if (d->mask[p]) {
      for (int k = 0; k < 3; k++) s[3 * v + k] = d->s[3 * p + k];
      v++;
    }
  /* The intensity's grid and the data's radii, for results.h5 (intensity.h). */
  spf_intensity_grid ig;
  if (spf_intensity_grid_make(M, o.oversampling, np_all, d->s, d->mask, &ig) != SPF_OK) {
    fprintf(stderr, "spinifel reconstruct: %s: no valid pixel, or a pixel position that is not finite\n", S.data);
    goto out;
  }
  double qchunk[4 * 64];
  for (int64_t f = 0; !rc && f < n_all; f += 64) {
    const int64_t c = n_all - f < 64 ? n_all - f : 64;
    int64_t mine = 0;
    for (int64_t i = 0; i < c; i++) mine += slot[f + i] >= 0;
    if (!mine) continue; /* other ranks' images are not read */
    rc = spf_dataset_read_images(d, f, c, all, q_true ? qchunk : NULL, msg, sizeof msg);
    for (int64_t i = 0; !rc && i < c; i++) {
      const int64_t at = slot[f + i];
      if (at < 0) continue;
      if (q_true) memcpy(q_true + 4 * at, qchunk + 4 * i, sizeof(double) * 4);
      for (int64_t p = 0, v = 0; p < np_all; p++)
        if (d->mask[p]) img[at * np + v++] = all[i * np_all + p];
    }
  }
  free(slot);
  free(all);
  slot = NULL;
  all = NULL;
  if (!rc && S.mask_dead && d->h.nx * d->h.ny == np_all) rc = mask_dead_pixels(&cw, d, n, &np, img, s, &ig, &o, msg,
                                                                                sizeof msg);
  spf_dataset_close_reader(d);
  d = NULL;
  if (rc) {
    fprintf(stderr, "spinifel reconstruct: %s\n", msg);
    goto out;
  }
  /* The model, decided once from the data and recorded in config.ini (a resume reads
   * the same data and decides the same). */
  {
    char why[256] = "";
    int model = SPF_MODEL_EUCLIDEAN;
    o.comm = &cw;
    rc = spf_reconstruct_pick_model(n, np, img, &o, &model, why, sizeof why);
    if (rc) {
      if (cw.rank == 0) fprintf(stderr, "spinifel reconstruct: %s\n", why[0] ? why : spf_strerror(rc));
      goto out;
    }
    o.model = S.o.model = model;
    /* The Poisson model's reference grid, unless one was asked for: EMC's 3,240
     * orientations (Dragonfly's num_div 4), fixed, as the probabilities cover every
     * reference each generation (the Euclidean schedule's 20,000 would cost six times as
     * much); measured enough for 52 A data of a 72 A protein (BENCHMARKS.md). */
    if (model == SPF_MODEL_POISSON && !S.refs_given && !resume_dir) {
      o.n_references = S.o.n_references = 3240;
      o.refs_start = S.o.refs_start = 0;
    }
    /* The automatic settings, resolved for the model, are recorded as numbers. */
    spf_reconstruct_resolve(&S.o, model);
    spf_reconstruct_resolve(&o, model);
    snprintf(S.model, sizeof S.model, "%s", model == SPF_MODEL_POISSON ? "poisson" : "euclidean");
    config_text(&S, 0, config, sizeof config);
    config_text(&S, 1, config_results, sizeof config_results);
    if (cw.rank == 0 && !resume_dir) fprintf(stderr, "%s\n", why);
  }
  int resumed = 0;
  snprintf(path, sizeof path, "%s/checkpoint.h5", outdir);
  if (resume_dir) {
    if (access(path, F_OK) != 0) {
      fprintf(stderr, "spinifel reconstruct: %s: no checkpoint to resume from\n", path);
      goto out;
    }
    /* Under mpirun every rank reads the whole state and keeps its share: the run may
     * resume on another number of ranks. */
    rc = cw.active ? spf_run_state_make(M, n_run, &whole) : SPF_OK;
    if (rc) snprintf(msg, sizeof msg, "out of memory for the checkpoint's %lld images", (long long)n_run);
    if (!rc) rc = spf_checkpoint_read(path, cw.active ? &whole : &st, stored, sizeof stored, msg, sizeof msg);
    if (!rc && cw.active) {
      spf_run_state_copy_volumes(&st, &whole);
      spf_run_state_copy_images(&st, 0, &whole, first, n);
    }
    if (cw.active) spf_run_state_free(&whole);
    if (rc) {
      fprintf(stderr, "spinifel reconstruct: %s\n", msg);
      goto out;
    }
    if (st.generation > o.max_generations) {
      fprintf(stderr, "spinifel reconstruct: %s holds %d generations, more than --generations %d\n", path,
              st.generation, o.max_generations);
      {
        ret = 2;
        goto out;
      }
    }
    if (!same_configuration(stored, config_results)) {
      fprintf(stderr, "spinifel reconstruct: %s was written with another configuration than %s/config.ini\n", path,
              outdir);
      goto out;
    }
    resumed = 1;
  }
  /* A fresh run's report must not show a comparison measured on an earlier run here
   * (spinifel demo writes it after the run). */
  snprintf(path, sizeof path, "%s/vs_truth.txt", outdir);
  if (cw.rank == 0 && !resumed) remove(path);
  snprintf(path, sizeof path, "%s/config.ini", outdir);
  if (cw.rank == 0 && write_text_file(path, config)) {
    fprintf(stderr, "spinifel reconstruct: cannot write %s\n", path);
    goto out;
  }
  snprintf(path, sizeof path, "%s/log.jsonl", outdir);
  if (cw.rank == 0 && (resumed ? trim_log(path, st.generation) : SPF_OK)) {
    fprintf(stderr, "spinifel reconstruct: cannot rewrite %s\n", path);
    goto out;
  }
  c.outdir = outdir;
  c.config = config_results;
  c.n_images = n;
  c.max_gen = o.max_generations;
  c.progress = progress_mode(S.quiet);
  c.t_start = omp_get_wtime();
  c.pictures_each = S.pictures_each;
  const double s_max = spf_s_max(np, s);
  /* Voxel of the grid: x = pi s / (s_max os) <=> spacing 1 / (2 s_max os). */
  const double voxel_a = 1e10 / (2.0 * s_max * o.oversampling);
  c.voxel = voxel_a;
  c.resolution = 1e10 / s_max;
  c.log = cw.rank == 0 ? fopen(path, resumed ? "a" : "w") : NULL;
  if (cw.rank == 0 && !c.log) {
    fprintf(stderr, "spinifel reconstruct: cannot write %s: %s\n", path, strerror(errno));
    goto out;
  }
  if (resumed && cw.rank == 0)
    fprintf(stderr, "resuming %s after generation %d of %d\n", outdir, st.generation, o.max_generations);
  o.nthreads = (int)S.threads;
  o.verbose = 0;
  o.on_step = on_step;
  o.step_ctx = &c;
  for (int k = 0; k < 3; k++) c.cur_step[k] = c.last_step[k] = -1;
  c.t_step = c.t_start;
  o.comm = &cw;
  o.first_image = first;
  c.rank = cw.rank;
  c.distributed = cw.active;
  c.comm = &cw;
  c.n_all = n_run;
  rc = spf_reconstruct(n, np, img, s, q_true, &o, resumed ? &st : NULL, on_generation, &c, &st);
  if (c.log) fclose(c.log);
  c.log = NULL;
  if (c.rc) {
    if (cw.rank == 0) fprintf(stderr, "spinifel reconstruct: %s\n", c.msg);
    goto out;
  }
  if (rc) {
    fprintf(stderr, "spinifel reconstruct: %s\n", spf_strerror(rc));
    goto out;
  }
  if (cw.active) {
    /* Rank 0 gathers every image's state (and truth) and writes the outputs; the
     * volumes are the same on every rank. */
    double *ta = cw.rank == 0 && q_true ? malloc(sizeof(double) * 4 * (size_t)n_run) : NULL;
    rc = spf_comm_agree(&cw, cw.rank == 0 && q_true && !ta ? SPF_ERR_ALLOC : SPF_OK);
    if (!rc) rc = gather_state(&c, &st);
    if (!rc && q_true) rc = gather_images(&cw, n_run, q_true, n, ta, 4 * sizeof(double));
    if (rc) {
      fprintf(stderr, "spinifel reconstruct: %s\n", spf_strerror(rc));
      free(ta);
      goto out;
    }
    if (cw.rank != 0) {
      free(ta);
      ret = 0;
      goto out;
    }
    spf_run_state_free(&st);
    st = c.whole;
    memset(&c.whole, 0, sizeof c.whole);
    free(q_true);
    q_true = ta;
    n = n_run;
  }
  for (int64_t i = 0; i < n3; i++) map[i] = (float)st.rho[i];
  snprintf(path, sizeof path, "%s/density.mrc", outdir);
  const double origin[3] = {-0.5 * (M - 1) * voxel_a, -0.5 * (M - 1) * voxel_a, -0.5 * (M - 1) * voxel_a};
  rc = spf_mrc_write(path, map, M, M, M, voxel_a, origin, msg, sizeof msg);
  snprintf(path, sizeof path, "%s/results.h5", outdir);
  if (!rc)
    rc = spf_results_write(path, M, st.rho, st.u, n, st.orientations, st.best_dist, st.gap,
                           o.model == SPF_MODEL_POISSON ? st.fluence : NULL,
                           o.model == SPF_MODEL_POISSON ? st.entropy : NULL, voxel_a, &ig,
                           st.generation, config, msg, sizeof msg);
  if (rc) {
    fprintf(stderr, "spinifel reconstruct: %s\n", msg);
    goto out;
  }
  if (plot_outdir(outdir, msg, sizeof msg)) {
    fprintf(stderr, "spinifel reconstruct: pictures: %s\n", msg);
    goto out;
  }
  printf("reconstructed %lld images in %d generations, %.1f s; voxel %.2f A, data to %.2f A (the farthest pixel); wrote "
         "%s/density.mrc, results.h5 and report.html\n",
         (long long)n, st.generation, omp_get_wtime() - c.t_start, voxel_a, 1e10 / s_max, outdir);
  /* The cap reached while images still move: the answer is not settled; say how to go on. */
  if (st.generation >= o.max_generations && st.generation > 1 && st.last_fraction_changed >= o.stop_fraction)
    printf("not converged: %.1f%% of the images still changed orientation in the last generation (the stopping rule "
           "is below %.1f%%); continue with: spinifel reconstruct --resume %s --generations %d\n",
           100 * st.last_fraction_changed, 100 * o.stop_fraction, outdir, 2 * o.max_generations);
  if (q_true) {
    double p90, med = spf_orientation_error_median(n, q_true, st.orientations, &p90);
    printf("orientation error: median %.2f deg, 90th percentile %.2f deg\n", med, p90);
  }
  ret = 0;
out:
  if (c.log) fclose(c.log);
  spf_dataset_close_reader(d);
  free(slot);
  free(all);
  free(img);
  free(s);
  free(q_true);
  free(map);
  spf_run_state_free(&st);
  spf_run_state_free(&whole);
  spf_run_state_free(&c.whole);
  return ret;
}
