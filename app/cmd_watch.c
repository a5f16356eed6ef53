/* spinifel watch: reconstruct while bursts of images arrive in a folder, and say after
 * each burst what the data reach and how much more they need (docs/watch.md).
 *
 * Two independent reconstructions, one per half set (each image goes to one half for
 * good: spf_watch_half), continue from their states as bursts arrive
 * (spf_run_state_extend, then spf_reconstruct resumed); after each burst the halves are
 * aligned and compared (gold-standard FSC), the averaged map and the outputs rewritten,
 * and a line appended to feedback.jsonl. OUTDIR/state/ holds what a restart needs,
 * committed after each burst by one rename (watch.state). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "progress.h"
#include "reconstruct_config.h"

#define C_NAME "watch"
#define STATE_PREFIX "spinifel watch state "
#define STATE_VERSION 4 /* 1: without the fraction changed, 2: without the data resolution, 3: without the
                           intensity shell correlations; all still read */
/* The intensity shell correlations kept per burst (the data trend reads them): M up to 255. */
#define WATCH_SHELLS 128

/* The one piece of state a signal handler may touch: set by SIGINT / SIGTERM, read
 * between steps (a handler can do nothing else safely). */
static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}

/* One ingested burst. */
typedef struct {
  char name[256];         /* file name in INDIR */
  int64_t n_images;       /* images in the file */
  int64_t n_half[2];      /* of them in each half */
  double res;             /* half sets' density FSC resolution after it at --fsc-threshold, A */
  double res143, res05;   /*   and at 0.143 and 0.5 */
  double res_data;        /* the data resolution at --fsc-threshold, A (spf_watch_data_resolution;
                             NaN: unknown, a state before version 3) */
  double low_conf;        /* fraction of its images of low confidence */
  double mean_photons;    /* its mean photons (intensity sum) per image */
  double changed;         /* the larger of the halves' last-generation fraction changed (NaN:
                             unknown, a state of version 1): spf_watch_first_settled */
  unsigned warnings;      /* SPF_WATCH_WARN_* */
  double shell_corr[WATCH_SHELLS]; /* the halves' intensity shell correlation after it, shells 0 ..
                                      (M - 1) / 2 (NaN: unknown, a state before version 4, or
                                      M above 255) */
} burst_rec;

/* A file that failed, not retried until it changes. */
typedef struct {
  char name[256];
  off_t size;
  time_t mtime;
} skip_rec;

typedef struct {
  settings S;              /* reconstruct's parameters */
  spf_reconstruct_options o; /* resolved once the model is known */
  const char *indir, *outdir;
  double target, idle, poll, threshold;
  double settled;          /* --settled-fraction: spf_watch_first_settled's */
  int refine, quiet, progress;
  int trend_density;       /* --trend density: the trend reads the density's FSC resolution */
  int64_t align_rotations;
  int64_t refresh;         /* Poisson: earlier images examined again per burst (both halves);
                              -1: all of them */
  spf_comm cw;             /* under mpirun: every rank refines the halves with its share of
                              the images, rank 0 polls, writes and reports */
  char config[16384], config_results[16384];
  /* what has been ingested */
  int n_bursts, cap;
  burst_rec *b;
  int n_skip, skip_cap;
  skip_rec *skip;
  int model;               /* -1 until the first burst */
  /* the geometry of the first burst: every later one must have it */
  int have_geom;
  int64_t np_all, nx, ny, np;
  double *s_all, *s;       /* 3 * np_all; 3 * np (valid pixels) */
  uint8_t *mask;
  spf_intensity_grid ig;
  double voxel, s_max;
  double t_start;
  char msg[2048];
} watch;

static void usage(FILE *out)
{
  fprintf(out,
          "usage: spinifel watch INDIR -o OUTDIR [--target-resolution A] [--stop-after-idle S] [options]\n"
          "  Reconstruct while bursts of images arrive in INDIR, and after each burst say what the\n"
          "  data reach and how many images a target resolution needs.\n"
          "  A burst is a file (HDF5 in SpiniFEL's layout, CXI, or EMC photons with --detector) that\n"
          "  counts once it is in INDIR under its final name: writers write it under another name\n"
          "  (a dotfile, or one ending in .tmp, .part or containing .tmp.) and rename it. Bursts are\n"
          "  taken in name order; every burst must have the first one's detector geometry.\n"
          "  Each image goes to one of two half sets for good; each half is reconstructed on its own:\n"
          "  the first burst by the full schedule from random orientations, each later burst by\n"
          "  --refine-generations generations that match the new images and --refresh-images\n"
          "  earlier ones against the current model and refine them (the Poisson model; the other\n"
          "  images count with their last probabilities, so a burst's cost does not grow with the\n"
          "  images so far; the Euclidean model matches every image). After each burst OUTDIR receives\n"
          "  density.mrc (the two halves aligned and averaged), results.h5, fsc_halves.csv,\n"
          "  pictures, report.html (refreshes itself) and one line appended to feedback.jsonl:\n"
          "  the data and density resolutions of the half sets, images so far, the projected images\n"
          "  for the target, warnings. OUTDIR/state/ holds what a restart needs: run the same\n"
          "  command again and it continues after the last complete burst. SIGINT or SIGTERM ends\n"
          "  it after the current step (exit 0; a burst in progress is done again at the next start).\n"
          "options:\n"
          "  -o, --output OUTDIR        the outputs and the state (created when absent)\n"
          "  --target-resolution A      the resolution wanted, in Angstrom (default: none, no projection)\n"
          "  --stop-after-idle S        exit 0 when no new burst has come for S seconds (default 0: never)\n"
          "  --poll S                   look for new files every S seconds (default 1)\n"
          "  --refine-generations K     generations per later burst (default 3)\n"
          "  --refresh-images N         with the Poisson model, the earlier images whose orientations each later\n"
          "                             burst examines again, over both halves, in rotation (default 12000; 'all':\n"
          "                             every image, a burst's cost then grows with the images so far). The\n"
          "                             others keep their last probabilities, and count in the model with them\n"
          "  --fsc-threshold T          the level of the half sets' correlation (intensity shells, density FSC)\n"
          "                             that defines the resolutions the trend, the projection and the warnings\n"
          "                             use (default 0.5; the density's at 0.143 is reported too)\n"
          "  --trend data|density       what the trend and the projection read (default data): the data resolution,\n"
          "                             where the half sets' intensities stop correlating per shell (no phasing in\n"
          "                             it), or the density's FSC resolution, which moves by 1-4 A with each phasing\n"
          "  --settled-fraction F       the trend starts at the first burst whose last generation changed the\n"
          "                             orientations of fewer than F of the images in each half (default 0.05):\n"
          "                             before, the resolution moves with the search, not with the data\n"
          "  --align-rotations N        rotations of the half sets' alignment search, on their intensities (default 2000)\n"
          "  --detector FILE            the EMC detector file, for bursts that are EMC photon files\n"
          "  --config FILE.ini          reconstruct's parameters from a file ([reconstruct] section)\n"
          "  --quiet                    no progress lines on stderr\n"
          "  --NAME VALUE               any parameter of 'spinifel reconstruct' (--M, --refs, --generations\n"
          "                             for the first burst, --threads, ...; not --images or --half);\n"
          "                             watch's own defaults are --prior 1 (the model carried across bursts)\n"
          "                             and --phase-average 1; with the Poisson model --refs 3240 reached from\n"
          "                             --refs-start 1000 over the first burst, --cg-tol 1e-4, --phase-every 16\n"
          "  -h, --help                 this text\n"
          "  Under mpirun every rank refines each half with its share of the images and rank 0 polls\n"
          "  INDIR and writes OUTDIR (the same bytes as one process).\n"
          "exit: 0 when stopped (idle, SIGINT, SIGTERM), 1 on a failure of the computation or the\n"
          "  output, 2 on bad usage. A malformed burst is reported by name and skipped, not fatal.\n"
          "examples:\n"
          "  spinifel watch incoming -o live --target-resolution 12\n"
          "  spinifel simulate --bursts 4 --burst-delay 30 --images 2000 --pixels 64 -o incoming &\n"
          "  spinifel watch incoming -o live --stop-after-idle 120 --M 41 --threads 2\n");
}

static double now_s(void)
{
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Sleep up to s seconds, waking early on a stop request. */
static void nap(double s)
{
  while (s > 0 && !stop_requested) {
    const double d = s < 0.1 ? s : 0.1;
    struct timespec t = {0, (long)(d * 1e9)};
    nanosleep(&t, NULL);
    s -= d;
  }
}

static void say(const watch *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const watch *w, const char *fmt, ...)
{
  if (w->progress == PROGRESS_QUIET || w->cw.rank != 0) return;
  if (w->progress == PROGRESS_LINES) progress_stamp();
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* ---- Which files are bursts ------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
  const size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* A burst under its final name: not a dotfile, no temporary mark, a data extension. */
static int is_burst_name(const char *name)
{
  if (name[0] == '.' || strstr(name, ".tmp") || ends_with(name, ".part") || ends_with(name, "~")) return 0;
  return ends_with(name, ".h5") || ends_with(name, ".hdf5") || ends_with(name, ".cxi") || ends_with(name, ".emc");
}

static int is_emc(const char *name) { return ends_with(name, ".emc"); }

static int ingested(const watch *w, const char *name)
{
  for (int i = 0; i < w->n_bursts; i++)
    if (!strcmp(w->b[i].name, name)) return 1;
  return 0;
}

static int skipped(const watch *w, const char *name, const struct stat *sb)
{
  for (int i = 0; i < w->n_skip; i++)
    if (!strcmp(w->skip[i].name, name)) return w->skip[i].size == sb->st_size && w->skip[i].mtime == sb->st_mtime;
  return 0;
}

static void remember_skip(watch *w, const char *name, const struct stat *sb)
{
  for (int i = 0; i < w->n_skip; i++)
    if (!strcmp(w->skip[i].name, name)) {
      w->skip[i].size = sb->st_size;
      w->skip[i].mtime = sb->st_mtime;
      return;
    }
  if (w->n_skip == w->skip_cap) {
    const int cap = w->skip_cap ? 2 * w->skip_cap : 16;
    skip_rec *p = realloc(w->skip, sizeof *p * (size_t)cap);
    if (!p) return; /* then it is tried again: harmless */
    w->skip = p;
    w->skip_cap = cap;
  }
  skip_rec *r = &w->skip[w->n_skip++];
  snprintf(r->name, sizeof r->name, "%s", name);
  r->size = sb->st_size;
  r->mtime = sb->st_mtime;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The first new burst in name order (its name in out), 1 if there is one, 0 if none,
 * -1 if INDIR cannot be read. *arrival: its ctime (the rename sets it). */
static int next_burst(watch *w, char *out, size_t out_len, double *arrival)
{
  DIR *d = opendir(w->indir);
  if (!d) return -1;
  char **names = NULL;
  int n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!is_burst_name(e->d_name) || strlen(e->d_name) >= 255 || ingested(w, e->d_name)) continue;
    char path[4400];
    struct stat sb;
    snprintf(path, sizeof path, "%.4000s/%s", w->indir, e->d_name);
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || skipped(w, e->d_name, &sb)) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      char **p = realloc(names, sizeof *p * (size_t)cap);
      if (!p) break;
      names = p;
    }
    if (!(names[n] = strdup(e->d_name))) break;
    n++;
  }
  closedir(d);
  int found = 0;
  if (n > 0) {
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    snprintf(out, out_len, "%s", names[0]);
    char path[4400];
    struct stat sb;
    snprintf(path, sizeof path, "%.4000s/%s", w->indir, names[0]);
    *arrival = stat(path, &sb) == 0 ? (double)sb.st_ctim.tv_sec + 1e-9 * (double)sb.st_ctim.tv_nsec : now_s();
    found = 1;
  }
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  return found;
}

/* ---- Reading bursts ----------------------------------------------------------------- */

static int open_burst(const watch *w, const char *name, spf_dataset **d, char *msg, size_t len)
{
  char path[4400];
  snprintf(path, sizeof path, "%.4000s/%s", w->indir, name);
  if (is_emc(name)) {
    if (!w->S.detector[0]) {
      snprintf(msg, len, "%s: an EMC photon file needs --detector", name);
      return SPF_ERR_ARG;
    }
    return spf_dataset_open_emc(path, w->S.detector, d, msg, len);
  }
  return spf_dataset_open(path, d, msg, len);
}

/* The first burst's geometry becomes the run's: valid pixels, s, the intensity grid. */
static int take_geometry(watch *w, const spf_dataset *d)
{
  w->np_all = d->n_pixels;
  w->nx = d->h.nx;
  w->ny = d->h.ny;
  w->s_all = malloc(sizeof(double) * 3 * (size_t)w->np_all);
  w->mask = malloc((size_t)w->np_all);
  w->s = malloc(sizeof(double) * 3 * (size_t)w->np_all);
  if (!w->s_all || !w->mask || !w->s) return SPF_ERR_ALLOC;
  memcpy(w->s_all, d->s, sizeof(double) * 3 * (size_t)w->np_all);
  memcpy(w->mask, d->mask, (size_t)w->np_all);
  w->np = 0;
  for (int64_t p = 0; p < w->np_all; p++)
    if (w->mask[p]) {
      for (int k = 0; k < 3; k++) w->s[3 * w->np + k] = w->s_all[3 * p + k];
      w->np++;
    }
  if (w->np < 1 || spf_intensity_grid_make(w->S.o.M, w->S.o.oversampling, w->np_all, w->s_all, w->mask, &w->ig))
    return SPF_ERR_DATA;
  w->s_max = spf_s_max(w->np, w->s);
  w->voxel = 1e10 / (2.0 * w->s_max * w->S.o.oversampling);
  w->have_geom = 1;
  return SPF_OK;
}

/* Whether d has the run's geometry; why in msg when not. */
static int same_geometry(const watch *w, const spf_dataset *d, const char *name, char *msg, size_t len)
{
  if (d->n_pixels != w->np_all || d->h.nx != w->nx || d->h.ny != w->ny) {
    snprintf(msg, len, "%s: a %lld x %lld detector, the first burst's is %lld x %lld: not the same geometry", name,
             (long long)d->h.nx, (long long)d->h.ny, (long long)w->nx, (long long)w->ny);
    return 0;
  }
  if (memcmp(d->mask, w->mask, (size_t)w->np_all)) {
    snprintf(msg, len, "%s: another mask than the first burst's: not the same geometry", name);
    return 0;
  }
  for (int64_t k = 0; k < 3 * w->np_all; k++)
    if (fabs(d->s[k] - w->s_all[k]) > 1e-9 * w->s_max) {
      snprintf(msg, len, "%s: pixel positions differ from the first burst's (pixel %lld): not the same geometry "
                         "(detector distance %g m, energy %g eV)",
               name, (long long)(k / 3), d->h.distance_m, d->h.photon_energy_ev);
      return 0;
    }
  return 1;
}

/* Check a new burst whole: it opens, has the geometry (the first one gives it) and every
 * image reads. Its image count, half counts and mean photons per image come back. */
static int check_burst(watch *w, const char *name, burst_rec *r, char *msg, size_t len)
{
  spf_dataset *d = NULL;
  int rc = open_burst(w, name, &d, msg, len);
  if (rc) return rc;
  const int first = !w->have_geom;
  if (d->h.n_images < 1) {
    snprintf(msg, len, "%s: no images", name);
    spf_dataset_close_reader(d);
    return SPF_ERR_FORMAT;
  }
  if (!w->have_geom) {
    rc = take_geometry(w, d);
    if (rc) snprintf(msg, len, "%s: no valid pixel, or a pixel position that is not finite", name);
  } else if (!same_geometry(w, d, name, msg, len)) {
    rc = SPF_ERR_DATA;
  }
  const int64_t n = d->h.n_images, chunk = 64;
  float *buf = rc ? NULL : malloc(sizeof(float) * (size_t)(d->n_pixels * chunk));
  if (!rc && !buf) rc = SPF_ERR_ALLOC;
  double photons = 0;
  r->n_half[0] = r->n_half[1] = 0;
  for (int64_t f = 0; !rc && f < n; f += chunk) {
    const int64_t c = n - f < chunk ? n - f : chunk;
    rc = spf_dataset_read_images(d, f, c, buf, NULL, msg, len);
    for (int64_t i = 0; !rc && i < c; i++) {
      for (int64_t p = 0; p < d->n_pixels; p++)
        if (w->mask[p]) photons += buf[i * d->n_pixels + p];
      r->n_half[spf_watch_half(name, f + i)]++;
    }
  }
  free(buf);
  spf_dataset_close_reader(d);
  if (rc && first && w->have_geom) {
    /* A first burst that fails gives no geometry: the next one does. */
    free(w->s_all);
    free(w->s);
    free(w->mask);
    w->s_all = w->s = NULL;
    w->mask = NULL;
    w->have_geom = 0;
  }
  if (rc) return rc;
  snprintf(r->name, sizeof r->name, "%s", name);
  r->n_images = n;
  r->mean_photons = photons / (double)n;
  return SPF_OK;
}

/* Every image of half h over the ingested bursts (and `extra`, a burst being added), in
 * arrival order, handed to visit(ctx, index in the half, its valid pixels, its file's
 * orientation or NULL) as the files are read, 64 images at a time: memory holds what the
 * visitor keeps, not the half. n_total: the images the half must have. *have_q: every
 * file had orientations. An ingested burst that no longer reads is fatal to the run. */
typedef int (*half_visitor)(void *ctx, int64_t index, const float *pixels, const double *quat);

static int visit_half(watch *w, int h, const burst_rec *extra, int64_t n_total, half_visitor visit, void *ctx,
                      int *have_q_out)
{
  float *buf = malloc(sizeof(float) * (size_t)(w->np_all * 64));
  float *valid = malloc(sizeof(float) * (size_t)w->np);
  double qbuf[4 * 64];
  int rc = buf && valid ? SPF_OK : SPF_ERR_ALLOC;
  if (rc) snprintf(w->msg, sizeof w->msg, "out of memory for a block of images");
  int64_t at = 0;
  int have_q = 1;
  for (int k = 0; !rc && k <= w->n_bursts; k++) {
    const burst_rec *r = k < w->n_bursts ? &w->b[k] : extra;
    if (!r) break;
    spf_dataset *d = NULL;
    rc = open_burst(w, r->name, &d, w->msg, sizeof w->msg);
    if (!rc && (d->h.n_images != r->n_images || !same_geometry(w, d, r->name, w->msg, sizeof w->msg))) {
      if (d->h.n_images != r->n_images)
        snprintf(w->msg, sizeof w->msg, "%s: %lld images, %lld when it was ingested", r->name,
                 (long long)d->h.n_images, (long long)r->n_images);
      rc = SPF_ERR_DATA;
    }
    have_q &= !rc && d->h.has_orientations;
    for (int64_t f = 0; !rc && f < r->n_images; f += 64) {
      const int64_t c = r->n_images - f < 64 ? r->n_images - f : 64;
      rc = spf_dataset_read_images(d, f, c, buf, d->h.has_orientations ? qbuf : NULL, w->msg, sizeof w->msg);
      for (int64_t i = 0; !rc && i < c; i++) {
        if (spf_watch_half(r->name, f + i) != h) continue;
        if (at >= n_total) {
          rc = SPF_ERR_DATA;
          snprintf(w->msg, sizeof w->msg, "%s: more images of half %d than recorded", r->name, h + 1);
          break;
        }
        for (int64_t p = 0, v = 0; p < w->np_all; p++)
          if (w->mask[p]) valid[v++] = buf[i * w->np_all + p];
        rc = visit(ctx, at, valid, d->h.has_orientations ? qbuf + 4 * i : NULL);
        if (rc) snprintf(w->msg, sizeof w->msg, "%s: image %lld: %s", r->name, (long long)(f + i), spf_strerror(rc));
        at++;
      }
    }
    spf_dataset_close_reader(d);
  }
  free(buf);
  free(valid);
  if (!rc && at != n_total) {
    rc = SPF_ERR_DATA;
    snprintf(w->msg, sizeof w->msg, "half %d: %lld images read, %lld recorded", h + 1, (long long)at,
             (long long)n_total);
  }
  if (have_q_out) *have_q_out = have_q;
  return rc;
}

/* A visitor that keeps the selected images (keep NULL: all) whose place among the
 * selected is in [lo, hi) (this rank's share), and every image's orientation. */
typedef struct {
  int64_t np;
  const uint8_t *keep;
  float *img;       /* the kept, in order */
  double *quats;    /* every image's */
  int64_t n_kept;
  int64_t lo, hi, seen;
} keep_ctx;

static int keep_image(void *ctx, int64_t index, const float *pixels, const double *quat)
{
  keep_ctx *c = ctx;
  if (quat) memcpy(c->quats + 4 * index, quat, sizeof(double) * 4);
  if (c->keep && !c->keep[index]) return SPF_OK;
  const int64_t at = c->seen++;
  if (at < c->lo || at >= c->hi) return SPF_OK;
  memcpy(c->img + c->n_kept * c->np, pixels, sizeof(float) * (size_t)c->np);
  c->n_kept++;
  return SPF_OK;
}

/* Every image of half h (see visit_half). The caller frees *img and *quats (NULL when a
 * file has no orientations). */
static int load_half(watch *w, int h, const burst_rec *extra, int64_t n_total, float **img_out, double **quats_out)
{
  keep_ctx c = {w->np, NULL, malloc(sizeof(float) * (size_t)(n_total * w->np)),
                malloc(sizeof(double) * 4 * (size_t)n_total), 0, 0, n_total, 0};
  int have_q = 0, rc = c.img && c.quats ? SPF_OK : SPF_ERR_ALLOC;
  if (rc) snprintf(w->msg, sizeof w->msg, "out of memory for %lld images of %lld pixels", (long long)n_total,
                   (long long)w->np);
  if (!rc) rc = visit_half(w, h, extra, n_total, keep_image, &c, &have_q);
  if (rc || !have_q) {
    free(c.quats);
    c.quats = NULL;
  }
  if (rc) {
    free(c.img);
    c.img = NULL;
  }
  *img_out = c.img;
  *quats_out = c.quats;
  return rc;
}

/* ---- The state on disk --------------------------------------------------------------- */

static void state_path(const watch *w, const char *what, char *out, size_t len)
{
  snprintf(out, len, "%.4000s/state/%s", w->outdir, what);
}

static void checkpoint_path(const watch *w, int h, int bursts, char *out, size_t len)
{
  char name[64];
  snprintf(name, sizeof name, "half%d.%05d.h5", h + 1, bursts);
  state_path(w, name, out, len);
}

static void refresh_text(long long refresh, char *out, size_t len)
{
  if (refresh < 0) snprintf(out, len, "all");
  else snprintf(out, len, "%lld", refresh);
}

/* watch.state, the commit point: written under a temporary name and renamed. */
static int write_state(const watch *w, int n_bursts, const burst_rec *b)
{
  char path[4200], tmp[4300];
  state_path(w, "watch.state", path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) return SPF_ERR_IO;
  fprintf(f, "%s%d\nmodel %s\nrefine_generations %d\nfsc_threshold %.17g\nrefresh_images %lld\nbursts %d\n",
          STATE_PREFIX, STATE_VERSION, w->model == SPF_MODEL_POISSON ? "poisson" : "euclidean", w->refine, w->threshold,
          (long long)w->refresh, n_bursts);
  for (int i = 0; i < n_bursts; i++) {
    fprintf(f, "b %lld %lld %lld %.17g %.17g %.17g %.17g %.17g %.17g %.17g %u %s\n", (long long)b[i].n_images,
            (long long)b[i].n_half[0], (long long)b[i].n_half[1], b[i].res, b[i].res143, b[i].res05, b[i].low_conf,
            b[i].mean_photons, b[i].changed, b[i].res_data, b[i].warnings, b[i].name);
    fprintf(f, "c");
    for (int k = 0; k < WATCH_SHELLS; k++) fprintf(f, " %.17g", b[i].shell_corr[k]);
    fprintf(f, "\n");
  }
  int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return SPF_ERR_IO;
  }
  return SPF_OK;
}

/* Read watch.state (absent: a fresh start, 0 bursts). */
static int read_state(watch *w)
{
  char path[4200], line[8192];
  state_path(w, "watch.state", path, sizeof path);
  FILE *f = fopen(path, "r");
  if (!f) return errno == ENOENT ? SPF_OK : SPF_ERR_IO;
  int rc = SPF_ERR_FORMAT, bursts = -1, refine = -1;
  long long refresh = -1; /* states before --refresh-images examined every image again */
  double threshold = NAN;
  char model[32] = "";
  /* Version 1 (no fraction changed) is read too: its bursts count as settled. */
  int version = 0;
  if (fgets(line, sizeof line, f) && !strncmp(line, STATE_PREFIX, strlen(STATE_PREFIX)) &&
      sscanf(line + strlen(STATE_PREFIX), "%d", &version) == 1 && version >= 1 && version <= STATE_VERSION &&
      fgets(line, sizeof line, f) &&
      sscanf(line, "model %31s", model) == 1 && fgets(line, sizeof line, f) &&
      sscanf(line, "refine_generations %d", &refine) == 1 && fgets(line, sizeof line, f) &&
      sscanf(line, "fsc_threshold %lf", &threshold) == 1 && fgets(line, sizeof line, f) &&
      (sscanf(line, "refresh_images %lld", &refresh) != 1 || fgets(line, sizeof line, f)) &&
      sscanf(line, "bursts %d", &bursts) == 1 && bursts >= 0 && bursts < 10000000)
    rc = SPF_OK;
  w->b = rc ? NULL : calloc((size_t)(bursts + 1), sizeof(burst_rec));
  if (!rc && !w->b) rc = SPF_ERR_ALLOC;
  w->cap = bursts + 1;
  for (int i = 0; !rc && i < bursts; i++) {
    burst_rec *r = &w->b[i];
    long long n, h0, h1;
    int used = 0;
    r->changed = r->res_data = NAN;
    for (int k = 0; k < WATCH_SHELLS; k++) r->shell_corr[k] = NAN;
    if (!fgets(line, sizeof line, f) ||
        (version == 1   ? sscanf(line, "b %lld %lld %lld %lf %lf %lf %lf %lf %u %n", &n, &h0, &h1, &r->res, &r->res143,
                                 &r->res05, &r->low_conf, &r->mean_photons, &r->warnings, &used) < 9
         : version == 2 ? sscanf(line, "b %lld %lld %lld %lf %lf %lf %lf %lf %lf %u %n", &n, &h0, &h1, &r->res,
                                 &r->res143, &r->res05, &r->low_conf, &r->mean_photons, &r->changed, &r->warnings,
                                 &used) < 10
                        : sscanf(line, "b %lld %lld %lld %lf %lf %lf %lf %lf %lf %lf %u %n", &n, &h0, &h1, &r->res,
                                 &r->res143, &r->res05, &r->low_conf, &r->mean_photons, &r->changed, &r->res_data,
                                 &r->warnings, &used) < 11) ||
        used == 0) {
      rc = SPF_ERR_FORMAT;
      break;
    }
    line[strcspn(line, "\n")] = 0;
    snprintf(r->name, sizeof r->name, "%s", line + used);
    if (version >= 4) {
      /* The curve's line: "c" and WATCH_SHELLS numbers. */
      char *c, *end;
      int k = 0;
      if (fgets(line, sizeof line, f) && line[0] == 'c' && line[1] == ' ')
        for (c = line + 1; k < WATCH_SHELLS; k++, c = end) {
          r->shell_corr[k] = strtod(c, &end);
          if (end == c) break;
        }
      if (k < WATCH_SHELLS) {
        rc = SPF_ERR_FORMAT;
        break;
      }
    }
    r->n_images = n;
    r->n_half[0] = h0;
    r->n_half[1] = h1;
  }
  fclose(f);
  if (rc) {
    snprintf(w->msg, sizeof w->msg, "%.1500s: not a watch state this version reads", path);
    return rc;
  }
  if (refine != w->refine || threshold != w->threshold || refresh != w->refresh) {
    char was[32], now[32];
    refresh_text(refresh, was, sizeof was);
    refresh_text(w->refresh, now, sizeof now);
    snprintf(w->msg, sizeof w->msg, "%.1500s was made with --refine-generations %d --fsc-threshold %g --refresh-images %s, "
                                    "not %d, %g and %s: use another OUTDIR or the same settings", path, refine, threshold,
             was, w->refine, w->threshold, now);
    return SPF_ERR_OPTION;
  }
  w->n_bursts = bursts;
  w->model = !strcmp(model, "poisson") ? SPF_MODEL_POISSON : SPF_MODEL_EUCLIDEAN;
  return SPF_OK;
}

/* Remove the checkpoints other than those of `keep` bursts (a killed run's, or the
 * previous burst's once the next is committed), and stale temporaries. */
static void tidy_state(const watch *w, int keep)
{
  char dir[4200];
  state_path(w, "", dir, sizeof dir);
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char want[2][64];
  snprintf(want[0], sizeof want[0], "half1.%05d.h5", keep);
  snprintf(want[1], sizeof want[1], "half2.%05d.h5", keep);
  while ((e = readdir(d))) {
    const int ckpt = !strncmp(e->d_name, "half", 4) && strstr(e->d_name, ".h5");
    if (!ckpt || !strcmp(e->d_name, want[0]) || !strcmp(e->d_name, want[1])) continue;
    if (strstr(e->d_name, ".tmp.")) continue; /* spf_temp_name removes dead writers' own */
    char p[4400];
    snprintf(p, sizeof p, "%.4000s%.255s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
}

/* Remove "NAME.tmp.PID" files in dir whose process is gone (a killed watch's), as the
 * library's writers do for their own outputs (src/tempfile.c); a live one's stay. */
static void remove_dead_temporaries(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *t = strstr(e->d_name, ".tmp.");
    if (!t) continue;
    char *end;
    errno = 0;
    const long pid = strtol(t + 5, &end, 10);
    if (end == t + 5 || *end || errno || pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    char p[4400];
    snprintf(p, sizeof p, "%.4000s/%.255s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
}

/* Keep the first n lines of feedback.jsonl (the bursts the state holds). */
static int trim_feedback(const watch *w, int n)
{
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%.4000s/feedback.jsonl", w->outdir);
  FILE *f = fopen(path, "r");
  if (!f) return n == 0 || errno == ENOENT ? SPF_OK : SPF_ERR_IO;
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *o = fopen(tmp, "w");
  if (!o) {
    fclose(f);
    return SPF_ERR_IO;
  }
  int lines = 0, ch, ok = 1;
  while (lines < n && (ch = fgetc(f)) != EOF) {
    ok &= fputc(ch, o) != EOF;
    lines += ch == '\n';
  }
  fclose(f);
  ok = fclose(o) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return SPF_ERR_IO;
  }
  return SPF_OK;
}

/* ---- One burst ------------------------------------------------------------------------ */

typedef struct {
  const watch *w;
  int half, burst;
  double t0;
  double changed; /* the last generation's fraction of images whose orientation changed */
} gen_ctx;

static int on_generation(void *ctx, const spf_generation_log *g, const spf_run_state *st)
{
  (void)st;
  gen_ctx *c = ctx;
  c->changed = g->fraction_changed;
  say(c->w, "burst %d, half %d: generation %d done (changed %.3f) in %.1fs", c->burst + 1, c->half + 1,
      g->generation + 1, g->fraction_changed, omp_get_wtime() - c->t0);
  /* Every rank stops together: a signal may reach some ranks only. */
  double stop = stop_requested ? 1 : 0;
  if (spf_comm_max_double(&c->w->cw, &stop, 1)) return 1;
  if (stop > 0) stop_requested = 1;
  return stop > 0;
}

/* The feedback's figures of one half after its refinement. */
typedef struct {
  double median_error; /* against the files' orientations (NaN without) */
  int generation;
  double changed;      /* the last generation's fraction of images whose orientation changed */
  double *quats;       /* the files' orientations of the half's images (NULL without) */
  int64_t examined;    /* images whose probabilities the burst computed (the others kept theirs) */
} half_figures;

/* Each image's most probable references kept in the checkpoints (the Poisson model): the
 * images a burst does not examine again count in the model with them (posterior.h). Late
 * in a stream an image's probabilities cover a few references (entropy 1.4 nats, about 4,
 * on the benchmark's phantom); the mass past the kept is reported (say). */
#define WATCH_POSTERIOR_K 32

/* A visitor for an incremental burst: the examined images kept, the others' kept
 * probabilities summed into the fixed views, 256 images at a time. */
typedef struct {
  keep_ctx k;
  const spf_run_state *old; /* the others' kept references and fluences */
  spf_posterior_views *pv;
  float *cnt;               /* a block of the others' images */
  double *phi;
  int32_t *ref;
  float *prob;
  int64_t n_block;
  double mass;              /* the others' kept probability, summed */
} split_ctx;

static int flush_block(split_ctx *c)
{
  const int rc = c->n_block ? spf_posterior_views_add(c->pv, c->n_block, c->cnt, c->phi, WATCH_POSTERIOR_K, c->ref,
                                                      c->prob)
                            : SPF_OK;
  c->n_block = 0;
  return rc;
}

static int split_image(void *ctx, int64_t index, const float *pixels, const double *quat)
{
  split_ctx *c = ctx;
  if (c->k.keep[index]) return keep_image(&c->k, index, pixels, quat);
  if (quat) memcpy(c->k.quats + 4 * index, quat, sizeof(double) * 4);
  const int64_t b = c->n_block, K = WATCH_POSTERIOR_K;
  memcpy(c->cnt + b * c->k.np, pixels, sizeof(float) * (size_t)c->k.np);
  c->phi[b] = c->old->fluence[index];
  memcpy(c->ref + b * K, c->old->posterior_ref + index * K, sizeof(int32_t) * K);
  /* Scaled to the image's whole weight: an image counts as much as an examined one,
   * its probability past the kept moved onto the kept (a little sharper than its
   * posterior; left out, early bursts' broad posteriors would count half). */
  double mass = 0;
  for (int64_t e = 0; e < K; e++) mass += c->old->posterior_p[index * K + e];
  c->mass += mass;
  for (int64_t e = 0; e < K; e++)
    c->prob[b * K + e] = mass > 0 ? (float)fmin(1.0, c->old->posterior_p[index * K + e] / mass) : 0;
  return ++c->n_block == 256 ? flush_block(c) : SPF_OK;
}

/* Which images of a half of n (before of them earlier) a Poisson burst examines: the new,
 * `share` earlier ones from a cursor that moves by share each burst (so every earlier
 * image is examined again in turn), and any earlier one without kept probabilities
 * (a state from before they were kept). 0 when every image is examined. */
static int64_t choose_examined(const spf_run_state *old, int64_t before, int64_t n, int64_t share, int bursts,
                               uint8_t *keep)
{
  if (share >= before) return 0;
  const int64_t from = (int64_t)((uint64_t)(bursts - 1) * (uint64_t)share % (uint64_t)before);
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++) {
    keep[i] = i >= before || (i - from + before) % before < share || old->posterior_ref[i * WATCH_POSTERIOR_K] < 0;
    m += keep[i];
  }
  return m == n ? 0 : m;
}

/* The per-image state of every rank's images, in rank order, into rank 0's dst (made for
 * them all, with src's kept-reference count); the volumes too (the same on every rank). */
static int gather_half(const watch *w, const spf_run_state *src, spf_run_state *dst)
{
  const spf_comm *cw = &w->cw;
  int64_t mine = src->n_images, *counts = NULL, ranks = 0;
  int rc = spf_comm_allgather(cw, &mine, 1, sizeof(int64_t), (void **)&counts, &ranks);
  const int root = cw->rank == 0;
  const int64_t K = src->posterior_k;
  const struct {
    const void *from;
    void *to;
    int64_t bytes;
  } a[] = {{src->orientations, root ? dst->orientations : NULL, 4 * sizeof(double)},
           {src->best, root ? dst->best : NULL, sizeof(int64_t)},
           {src->best_dist, root ? dst->best_dist : NULL, sizeof(float)},
           {src->gap, root ? dst->gap : NULL, sizeof(float)},
           {src->fluence, root ? dst->fluence : NULL, sizeof(double)},
           {src->entropy, root ? dst->entropy : NULL, sizeof(float)},
           {src->posterior_ref, root ? dst->posterior_ref : NULL, K * (int64_t)sizeof(int32_t)},
           {src->posterior_p, root ? dst->posterior_p : NULL, K * (int64_t)sizeof(float)}};
  for (size_t i = 0; !rc && i < sizeof a / sizeof a[0]; i++)
    if (a[i].bytes > 0) rc = spf_comm_gather(cw, a[i].from, mine, a[i].to, counts, a[i].bytes, 0);
  if (!rc && root) spf_run_state_copy_volumes(dst, src);
  free(counts);
  return spf_comm_agree(cw, rc);
}

/* A state for count images (kept references as k) with src's volumes and the per-image
 * state of src's images idx[0 .. count - 1]. */
static int pick_state(const spf_run_state *src, int64_t M, int k, const int64_t *idx, int64_t count, spf_run_state *out)
{
  int rc = spf_run_state_make(M, count, out);
  if (!rc && k > 0) rc = spf_run_state_track(out, k);
  if (rc) return rc;
  spf_run_state_copy_volumes(out, src);
  for (int64_t a = 0; a < count; a++) spf_run_state_copy_images(out, a, src, idx[a], 1);
  return SPF_OK;
}

/* Refine half h with the new burst r: its images loaded, its state extended (or the
 * first burst's run from random orientations), spf_reconstruct, the checkpoint. On rank
 * 0, st receives the state of every image of the half (allocated here; other ranks: left
 * empty). *low: low-confidence images among the new. With the Poisson model and
 * --refresh-images, a later burst examines only the new images and a share of the earlier
 * (choose_examined); the others, read from the files as they pass, add their kept
 * probabilities' views (posterior.h). Under mpirun each rank holds a contiguous share of
 * the examined images (spf_share, as reconstruct), every rank sums the fixed views of all
 * the others (so that every rank has the same), and rank 0 gathers the states and writes
 * the checkpoint; collective, the error agreed. */
static int refine_half(watch *w, int h, const burst_rec *r, spf_run_state *st, double *low, half_figures *fig,
                       int *interrupted)
{
  const spf_comm *cw = &w->cw;
  const int root = cw->rank == 0;
  int64_t before = 0;
  for (int k = 0; k < w->n_bursts; k++) before += w->b[k].n_half[h];
  const int64_t n = before + r->n_half[h];
  const int poisson = w->model == SPF_MODEL_POISSON, K = poisson ? WATCH_POSTERIOR_K : 0;
  memset(st, 0, sizeof *st);
  *low = NAN;
  if (n < 1) {
    snprintf(w->msg, sizeof w->msg, "half %d has no image yet", h + 1);
    return SPF_ERR_DATA;
  }
  spf_reconstruct_options o = w->o;
  o.seed = w->o.seed + (uint64_t)h; /* the halves start from independent orientations */
  o.comm = cw->active ? cw : NULL;
  spf_run_state old, ext, mine_in, mine_out, ex;
  memset(&old, 0, sizeof old);
  memset(&ext, 0, sizeof ext);
  memset(&mine_in, 0, sizeof mine_in);
  memset(&mine_out, 0, sizeof mine_out);
  memset(&ex, 0, sizeof ex);
  int rc = SPF_OK;
  if (w->n_bursts > 0) {
    char path[4200], stored[16384];
    checkpoint_path(w, h, w->n_bursts, path, sizeof path);
    rc = spf_run_state_make(o.M, before, &old);
    if (!rc && poisson) rc = spf_run_state_track(&old, K);
    if (rc) snprintf(w->msg, sizeof w->msg, "out of memory for the state of %lld images", (long long)before);
    if (!rc) rc = spf_checkpoint_read(path, &old, stored, sizeof stored, w->msg, sizeof w->msg);
    if (!rc && strcmp(stored, w->config_results)) {
      snprintf(w->msg, sizeof w->msg, "%.1500s was written with another configuration: run with the same parameters, or "
                                      "use another OUTDIR", path);
      rc = SPF_ERR_OPTION;
    }
    if (!rc) rc = spf_run_state_extend(&old, r->n_half[h], o.seed ^ 0x5A5A5A5Aull, before, &ext);
    o.max_generations = old.generation + w->refine;
  }
  /* The images this burst examines: all, or (incremental) the new and a share. (Kept
   * probabilities need one reference grid for every generation of the burst: the final
   * one, the first burst's schedule done.) */
  uint8_t *keep = malloc((size_t)n);
  int64_t m = 0;
  if (!rc && !keep) rc = SPF_ERR_ALLOC;
  if (!rc && poisson && w->n_bursts > 0 && w->refresh >= 0 && o.n_references > 0 &&
      (o.refs_start <= 0 || o.refs_start >= o.n_references || old.generation + 1 >= o.refs_generations))
    m = choose_examined(&old, before, n, w->refresh / 2 + (h == 0 ? w->refresh % 2 : 0), w->n_bursts, keep);
  const int64_t E = m ? m : n;
  int64_t first = 0, cnt = 0;
  spf_share(E, cw->rank, cw->size, &first, &cnt);
  o.first_image = first;
  if (!rc && cnt < 1) {
    snprintf(w->msg, sizeof w->msg, "half %d: %lld images to examine, fewer than the %d MPI ranks", h + 1, (long long)E,
             cw->size);
    rc = SPF_ERR_SIZE;
  }
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(E > 0 ? E : 1)); /* the examined, in order */
  if (!rc && !idx) rc = SPF_ERR_ALLOC;
  for (int64_t i = 0, a = 0; !rc && i < n; i++)
    if (!m || keep[i]) idx[a++] = i;
  /* Read the half: this rank's share of the examined images kept, the others' kept
   * probabilities summed (every rank sums all of them). */
  float *img = NULL;
  double *quats = NULL;
  spf_posterior_views *pv = NULL;
  split_ctx sc;
  memset(&sc, 0, sizeof sc);
  int have_q = 0;
  if (!rc) {
    sc = (split_ctx){{w->np, m ? keep : NULL, malloc(sizeof(float) * (size_t)((cnt > 0 ? cnt : 1) * w->np)),
                      malloc(sizeof(double) * 4 * (size_t)n), 0, first, first + cnt, 0},
                     &old, NULL, NULL, NULL, NULL, NULL, 0, 0};
    rc = sc.k.img && sc.k.quats ? SPF_OK : SPF_ERR_ALLOC;
    if (!rc && m) {
      sc.cnt = malloc(sizeof(float) * (size_t)(256 * w->np));
      sc.phi = malloc(sizeof(double) * 256);
      sc.ref = malloc(sizeof(int32_t) * 256 * K);
      sc.prob = malloc(sizeof(float) * 256 * K);
      rc = sc.cnt && sc.phi && sc.ref && sc.prob ? spf_posterior_views_make(o.n_references, w->np, &pv) : SPF_ERR_ALLOC;
      sc.pv = pv;
    }
    if (rc) snprintf(w->msg, sizeof w->msg, "out of memory for %lld images of %lld pixels", (long long)cnt,
                     (long long)w->np);
    if (!rc) rc = visit_half(w, h, r, n, m ? split_image : keep_image, m ? (void *)&sc : (void *)&sc.k, &have_q);
    if (!rc && m && (rc = flush_block(&sc)))
      snprintf(w->msg, sizeof w->msg, "half %d: the kept probabilities: %s", h + 1, spf_strerror(rc));
    free(sc.cnt); free(sc.phi); free(sc.ref); free(sc.prob);
    img = sc.k.img;
    quats = sc.k.quats;
  }
  rc = spf_comm_agree(cw, rc);
  if (!rc && m)
    say(w, "burst %d, half %d: examining %lld of %lld images (the other %lld with their kept probabilities: "
           "%.3f of the mass in the %d kept)", w->n_bursts + 1, h + 1, (long long)m, (long long)n, (long long)(n - m),
        sc.mass / (double)(n - m), K);
  /* This rank's share of the state to resume from: the examined images' as they were (the
   * new ones as extended). */
  const spf_run_state *resume = NULL;
  if (!rc && w->n_bursts > 0) {
    rc = pick_state(&ext, o.M, K, idx + first, cnt, &mine_in);
    resume = &mine_in;
  }
  if (!rc) rc = spf_run_state_make(o.M, cnt, &mine_out);
  if (!rc && K) rc = spf_run_state_track(&mine_out, K);
  if (rc) snprintf(w->msg, sizeof w->msg, "out of memory for the state of %lld images", (long long)cnt);
  rc = spf_comm_agree(cw, rc);
  if (!rc) {
    o.fixed_views = pv;
    double *q = NULL;
    if (have_q && (q = malloc(sizeof(double) * 4 * (size_t)(cnt > 0 ? cnt : 1))))
      for (int64_t a = 0; a < cnt; a++) memcpy(q + 4 * a, quats + 4 * idx[first + a], sizeof(double) * 4);
    gen_ctx gc = {w, h, w->n_bursts, omp_get_wtime(), NAN};
    rc = spf_reconstruct(cnt, w->np, img, w->s, q, &o, resume, on_generation, &gc, &mine_out);
    if (rc) snprintf(w->msg, sizeof w->msg, "half %d: %s", h + 1, spf_strerror(rc));
    fig->changed = gc.changed;
    free(q);
  }
  rc = spf_comm_agree(cw, rc);
  /* Rank 0: every image's state. The examined from the run (gathered), the others kept
   * as they were. */
  if (!rc && root) {
    rc = spf_run_state_make(o.M, n, st);
    if (!rc && K) rc = spf_run_state_track(st, K);
    if (!rc && m) rc = spf_run_state_make(o.M, E, &ex);
    if (!rc && m && K) rc = spf_run_state_track(&ex, K);
    if (rc) snprintf(w->msg, sizeof w->msg, "out of memory for the state of %lld images", (long long)n);
  }
  rc = spf_comm_agree(cw, rc);
  /* Every image examined: gathered straight into st. */
  if (!rc) rc = gather_half(w, &mine_out, m ? &ex : st);
  if (!rc && root && m) {
    spf_run_state_copy_images(st, 0, &old, 0, before);
    spf_run_state_copy_images(st, before, &ext, before, n - before);
    for (int64_t a = 0; a < E; a++) spf_run_state_copy_images(st, idx[a], &ex, a, 1);
    spf_run_state_copy_volumes(st, &ex);
  }
  const int generation = mine_out.generation;
  spf_run_state_free(&ext);
  spf_run_state_free(&old);
  spf_run_state_free(&mine_in);
  spf_run_state_free(&mine_out);
  spf_run_state_free(&ex);
  spf_posterior_views_free(pv);
  free(keep);
  free(idx);
  if (!rc && stop_requested && generation < o.max_generations) *interrupted = 1;
  if (!rc && !*interrupted && root) {
    char path[4200];
    checkpoint_path(w, h, w->n_bursts + 1, path, sizeof path);
    rc = spf_checkpoint_write(path, st, w->config_results, w->msg, sizeof w->msg);
  }
  if (!rc && root) rc = spf_watch_low_confidence(n, st->gap, 0.25, before, r->n_half[h], low);
  rc = spf_comm_agree(cw, rc); /* also: the checkpoint is on disk before any rank reads it */
  fig->generation = generation;
  fig->examined = E;
  fig->median_error = root && !rc && have_q ? spf_orientation_error_median(n, quats, st->orientations, NULL) : NAN;
  fig->quats = have_q ? quats : NULL;
  if (!have_q) free(quats);
  free(img);
  return rc;
}

/* The halves compared: half 2 aligned onto half 1, the FSC, the averaged maps; the
 * orientations of half 2's images turned into half 1's frame. */
typedef struct {
  double *fsc;        /* (M-1)/2 + 1 */
  double *fsc_u;      /*   the same of the halves' merged autocorrelations (their intensities'
                           shell correlation: no phasing in it) */
  double *cc_i;       /*   the Pearson correlation per shell of the halves' intensities (half 2's
                           turned by the rotation they fixed; NaN at shell 0): each shell's mean
                           left out, the round part two halves share even with their
                           orientations wrong; the data resolution reads it */
  double *rho, *u;    /* averaged */
  double correlation;
  spf_align_result ar;
} comparison;

static int compare_halves(const watch *w, const spf_run_state *h1, const spf_run_state *h2, comparison *c)
{
  const int64_t M = h1->M, n3 = M * M * M;
  double *aligned = malloc(sizeof(double) * (size_t)n3), *u2 = malloc(sizeof(double) * (size_t)n3);
  c->fsc = malloc(sizeof(double) * (size_t)((M - 1) / 2 + 1));
  c->fsc_u = malloc(sizeof(double) * (size_t)((M - 1) / 2 + 1));
  c->cc_i = malloc(sizeof(double) * (size_t)((M - 1) / 2 + 1));
  c->rho = malloc(sizeof(double) * (size_t)n3);
  c->u = malloc(sizeof(double) * (size_t)n3);
  double *i1 = malloc(sizeof(double) * (size_t)n3), *i2 = malloc(sizeof(double) * (size_t)n3);
  int rc = aligned && u2 && i1 && i2 && c->fsc && c->fsc_u && c->cc_i && c->rho && c->u ? SPF_OK : SPF_ERR_ALLOC;
  /* The rotation from the halves' intensities, the hand and the shift from their
   * densities. The intensities hold the data and no phasing: aligning the densities
   * alone locked onto a false rotation in 3 of 20 bursts of the benchmark's stream
   * (BENCHMARKS.md), which the intensities' shell correlation showed. */
  spf_shellcorr_options so;
  spf_shellcorr_default_options(&so);
  so.n_rotations = w->align_rotations;
  so.nthreads = (int)w->S.threads;
  spf_shellcorr_result sr;
  if (!rc) rc = spf_intensity_from_autocorrelation(M, h1->u, i1);
  if (!rc) rc = spf_intensity_from_autocorrelation(M, h2->u, i2);
  if (!rc) rc = spf_shellcorr_align(M, i1, i2, &so, &sr, aligned);
  if (!rc) rc = spf_shell_correlation(M, i1, aligned, 0, 0, c->cc_i, NULL);
  spf_align_options ao;
  spf_align_default_options(&ao);
  ao.n_rotations = 0;
  ao.refine_steps = 0;
  memcpy(ao.start, sr.quat, sizeof ao.start);
  ao.nthreads = (int)w->S.threads;
  if (!rc) rc = spf_align(M, h1->rho, h2->rho, &ao, &c->ar, aligned);
  if (!rc) rc = spf_fsc(M, h1->rho, aligned, c->fsc);
  if (!rc) {
    /* The autocorrelation is centred and centrosymmetric: only the rotation moves it. */
    spf_rotate_volume(M, h2->u, c->ar.quat, 0, u2);
    rc = spf_fsc(M, h1->u, u2, c->fsc_u);
    for (int64_t v = 0; !rc && v < n3; v++) {
      c->rho[v] = 0.5 * (h1->rho[v] + aligned[v]);
      c->u[v] = 0.5 * (h1->u[v] + u2[v]);
    }
    c->correlation = c->ar.correlation;
  }
  free(aligned);
  free(u2);
  free(i1);
  free(i2);
  return rc;
}

static void json_num(FILE *f, const char *key, double v)
{
  if (isfinite(v)) fprintf(f, ",\"%s\":%.6g", key, v);
  else fprintf(f, ",\"%s\":null", key);
}

/* A curve per shell, 0 .. (M - 1) / 2; an undefined shell (NaN) as null. */
static void json_curve(FILE *f, const char *key, int64_t M, const double *v)
{
  fprintf(f, ",\"%s\":[", key);
  for (int64_t k = 0; k <= (M - 1) / 2; k++) {
    if (isfinite(v[k])) fprintf(f, "%s%.5g", k ? "," : "", v[k]);
    else fprintf(f, "%snull", k ? "," : "");
  }
  fputc(']', f);
}

static void json_str(FILE *f, const char *key, const char *s)
{
  fprintf(f, ",\"%s\":\"", key);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

static const char *projection_status(int s)
{
  switch (s) {
  case SPF_WATCH_PROJECTED: return "projected";
  case SPF_WATCH_REACHED: return "reached";
  case SPF_WATCH_NOT_IMPROVING: return "not_improving";
  case SPF_WATCH_UNCERTAIN: return "uncertain";
  case SPF_WATCH_SETTLING: return "settling";
  default: return "few_points";
  }
}

/* The resolution the trend, the projection and the warnings read (--trend). */
static double trend_res(const watch *w, const burst_rec *r) { return w->trend_density ? r->res : r->res_data; }

/* The trend over the bursts so far: from the first whose orientations settled (*from, 0-based;
 * n if none), the points where the trend's curve crossed the threshold below Nyquist. */
static void project(const watch *w, int n, const burst_rec *b, spf_watch_projection *p, int *unreachable, int *from)
{
  const int64_t M = w->S.o.M;
  const int ns = (int)((M - 1) / 2 + 1);
  const double nyq = 2 * w->voxel * (double)M / (double)(M - 1);
  double *x = malloc(sizeof(double) * (size_t)(n + 1)), *y = malloc(sizeof(double) * (size_t)(n + 1));
  double *cc = w->trend_density ? NULL : malloc(sizeof(double) * (size_t)(n + 1) * (size_t)ns);
  const int ok = x && y && (w->trend_density || cc);
  int m = 0;
  int64_t total = 0;
  for (int i = 0; x && i < n; i++) x[i] = b[i].changed;
  *from = x ? spf_watch_first_settled(n, x, w->settled) : n;
  for (int i = 0; ok && i < n; i++) {
    total += b[i].n_images;
    /* The data trend needs the burst's curve (none in a state before version 4, or M > 255). */
    if (i >= *from && isfinite(trend_res(w, &b[i])) && trend_res(w, &b[i]) > nyq * (1 + 1e-9) &&
        (w->trend_density || (ns <= WATCH_SHELLS && isfinite(b[i].shell_corr[1])))) {
      x[m] = (double)total;
      y[m] = trend_res(w, &b[i]);
      if (cc) memcpy(cc + (size_t)m * ns, b[i].shell_corr, sizeof(double) * (size_t)ns);
      m++;
    }
  }
  *unreachable = w->target > 0 && w->target < nyq;
  memset(p, 0, sizeof *p);
  p->status = SPF_WATCH_FEW_POINTS;
  p->a = p->b = p->n_target = p->n_low = p->n_high = p->kappa = NAN;
  /* Without a target the trend is still fitted (for the picture), nothing projected. */
  const double target = w->target > 0 ? w->target : (m > 0 ? y[0] : 1);
  if (ok && m > 0) {
    if (w->trend_density) spf_watch_project(m, x, y, 6, target, p);
    else spf_watch_project_shells(m, x, M, cc, w->voxel, w->threshold, 6, target, p);
  }
  if (w->target <= 0) p->status = SPF_WATCH_FEW_POINTS, p->n_target = p->n_low = p->n_high = NAN;
  /* The FSC at Nyquist: the target (coarser than Nyquist) is reached. */
  if (ok && w->target >= nyq && n > 0 && isfinite(trend_res(w, &b[n - 1])) && trend_res(w, &b[n - 1]) <= w->target) {
    p->status = SPF_WATCH_REACHED;
    p->n_target = p->n_low = p->n_high = (double)total;
  }
  /* Nothing settled: no trend, and no resolution counts as reached (a first burst's half
   * sets can share a blob's shape to a fine FSC with their orientations still random). */
  if (*from >= n) {
    p->status = SPF_WATCH_SETTLING;
    p->n_used = 0;
    p->a = p->b = p->n_target = p->n_low = p->n_high = NAN;
  }
  free(x);
  free(y);
  free(cc);
}

/* resolution.png: the half sets' resolution against the images so far, with the target
 * and the projected count. */
static int plot_trend(const watch *w, int n, const burst_rec *b, const spf_watch_projection *p, char *msg,
                      size_t len)
{
  double *x = malloc(sizeof(double) * (size_t)(n + 1)), *y1 = malloc(sizeof(double) * (size_t)(n + 1));
  double *y2 = malloc(sizeof(double) * (size_t)(n + 1)), *yf = malloc(sizeof(double) * (size_t)(n + 1));
  double *yr = malloc(sizeof(double) * (size_t)(n + 1));
  int points = n;
  int rc = x && y1 && y2 && yf && yr ? SPF_OK : SPF_ERR_ALLOC;
  int64_t total = 0;
  for (int i = 0; !rc && i < n; i++) {
    total += b[i].n_images;
    x[i] = (double)total;
    y1[i] = b[i].res_data;
    y2[i] = b[i].res;
    yr[i] = b[i].res143;
    /* The data trend's line is the shell model's tangent at the last burst: drawn from there on. */
    yf[i] = isfinite(p->b) && (w->trend_density || i == n - 1) ? exp(-(p->a + p->b * log(x[i]))) : NAN;
  }
  char name_fit[160] = "trend";
  if (isfinite(p->b))
    snprintf(name_fit, sizeof name_fit, w->trend_density ? "fit: 1/d ~ N^%.2f" : "trend: 1/d ~ N^%.2f here", p->b);
  char title[200];
  if (p->status == SPF_WATCH_PROJECTED && w->target > 0)
    snprintf(title, sizeof title, "Half sets' resolution; %.1f A projected at %.0f images", w->target, p->n_target);
  else snprintf(title, sizeof title, "Half sets' resolution against the images so far");
  char name_data[80], name_dens[80];
  snprintf(name_data, sizeof name_data, "data: intensity shells %g%s", w->threshold, w->trend_density ? "" : " (the trend's)");
  snprintf(name_dens, sizeof name_dens, "density: FSC %g%s", w->threshold, w->trend_density ? " (the trend's)" : "");
  /* y1: the data resolution, y2: the density's at the threshold, yr: the density's at 0.143. */
  const int with143 = w->threshold != 0.143;
  spf_plot pl = {.title = title, .xlabel = "images so far", .ylabel = "resolution (A)", .n_points = n,
                 .n_series = with143 ? 4 : 3, .x = x, .y = {y1, y2, yf, yr},
                 .names = {name_data, name_dens, name_fit, "density: FSC 0.143"}};
  if (w->target > 0) {
    pl.n_hlines = 1;
    pl.hlines[0] = w->target;
  }
  if (!rc && p->status == SPF_WATCH_PROJECTED && isfinite(p->n_target) && p->n_target > (double)total &&
      p->n_target <= 4 * (double)total) {
    /* The trend drawn on to the projected count, marked by a vertical line. */
    x[n] = p->n_target;
    y1[n] = y2[n] = yr[n] = NAN;
    yf[n] = w->target;
    points = n + 1;
    pl.n_points = points;
    pl.n_vlines = 1;
    pl.vlines[0] = p->n_target;
  }
  char path[4200];
  snprintf(path, sizeof path, "%.4000s/resolution.png", w->outdir);
  if (!rc && points > 0) rc = spf_picture_plot(path, &pl, msg, len);
  free(x);
  free(y1);
  free(y2);
  free(yf);
  free(yr);
  return rc;
}

static const char *warning_text(unsigned bit)
{
  switch (bit) {
  case SPF_WATCH_WARN_FLAT: return "resolution_flat";
  case SPF_WATCH_WARN_LOW_CONFIDENCE: return "low_confidence_rising";
  default: return "photons_differ";
  }
}

static const char *warning_sentence(unsigned bit)
{
  switch (bit) {
  case SPF_WATCH_WARN_FLAT:
    return "the resolution has not improved over the last bursts although the images grew: more of the same data "
           "may not help (heterogeneity, a wrong model, or the limit the "
           "grid or the references set: --M, --refs)";
  case SPF_WATCH_WARN_LOW_CONFIDENCE:
    return "the share of images that fit no orientation clearly is rising: bad hits, another particle, or "
           "heterogeneity in the latest burst";
  default: return "the latest burst's photons per image differ from the earlier bursts': beam, hit rate or sample changed";
  }
}

/* report.html: refreshes itself; the trend, the projection, the warnings, the pictures. */
static int write_report(const watch *w, int n, const burst_rec *b, const spf_watch_projection *p, int unreachable)
{
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%.4000s/report.html", w->outdir);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) return SPF_ERR_IO;
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += b[i].n_images;
  const burst_rec *last = &b[n - 1];
  fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">"
             "<title>spinifel watch</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
             "img{max-width:100%%;border:1px solid #ccc;margin:0.5em 0}td,th{padding:0.2em 0.8em;text-align:left}"
             ".warn{background:#fff3cd;padding:0.5em;border-left:4px solid #e0a800}</style></head><body>\n"
             "<h1>spinifel watch</h1>\n<p>This page reloads itself every 10 s.</p>\n<table>\n");
  fprintf(f, "<tr><th>bursts</th><td>%d (last: ", n);
  for (const char *c = last->name; *c; c++) fputs(*c == '<' ? "&lt;" : *c == '&' ? "&amp;" : (char[2]){*c, 0}, f);
  fprintf(f, ")</td></tr>\n<tr><th>images</th><td>%lld</td></tr>\n", (long long)total);
  fprintf(f, "<tr><th>data resolution</th><td>%.1f &Aring; (the half sets' intensities correlate above %g per "
             "shell out to it%s)</td></tr>\n", last->res_data, w->threshold, w->trend_density ? "" : "; the trend's");
  fprintf(f, "<tr><th>density resolution</th><td>%.1f &Aring; (the half sets' density FSC %g; 0.143 at %.1f &Aring;, "
             "0.5 at %.1f &Aring;; the grid's Nyquist %.1f &Aring;; moves with each phasing)</td></tr>\n",
          last->res, w->threshold, last->res143, last->res05, 2 * w->voxel * (double)w->S.o.M / (double)(w->S.o.M - 1));
  if (w->target > 0) {
    fprintf(f, "<tr><th>target</th><td>%.1f &Aring;: ", w->target);
    if (unreachable) fprintf(f, "finer than the grid's Nyquist: raise --M (and the data must reach it)");
    else if (p->status == SPF_WATCH_REACHED) fprintf(f, "reached");
    else if (p->status == SPF_WATCH_PROJECTED)
      fprintf(f, "about %.0f images projected (%.0f to %.0f, %s), %.0f more than now", p->n_target,
              p->n_low, p->n_high, w->trend_density ? "one standard error" : "the trend's error on this run so far",
              fmax(0, p->n_target - (double)total));
    else if (p->status == SPF_WATCH_NOT_IMPROVING)
      fprintf(f, "no projection: the resolution is not improving with data%s",
              w->trend_density ? "" : " (the trend does not reach the target within 1000 times the images so far)");
    else if (p->status == SPF_WATCH_UNCERTAIN)
      fprintf(f, "no reliable projection: %s (%.3g images, %.3g to %.3g)",
              w->trend_density ? "the bursts scatter about the trend as much as it moves"
                               : "the trend's earlier projections missed by more than a factor 10 at this distance",
              p->n_target, p->n_low, p->n_high);
    else if (p->status == SPF_WATCH_SETTLING)
      fprintf(f, "no projection yet: the orientations are still settling (the last burst's last generation changed "
                 "%.1f%% of them; the trend starts at the first burst below %g%%)",
              100 * last->changed, 100 * w->settled);
    else fprintf(f, "no projection yet: it needs %s settled bursts whose resolution is inside the grid",
                 w->trend_density ? "three" : "five");
    fprintf(f, "</td></tr>\n");
  }
  fprintf(f, "<tr><th>low-confidence images (last burst)</th><td>%.1f%%</td></tr>\n", 100 * last->low_conf);
  fprintf(f, "<tr><th>photons per image (last burst)</th><td>%.4g</td></tr>\n</table>\n", last->mean_photons);
  for (unsigned bit = 1; bit <= SPF_WATCH_WARN_PHOTONS; bit <<= 1)
    if (last->warnings & bit) fprintf(f, "<p class=\"warn\">Warning: %s.</p>\n", warning_sentence(bit));
  if (w->n_skip > 0) {
    fprintf(f, "<p class=\"warn\">Skipped files (malformed, half-written or another geometry; the watch's log says "
               "why):");
    for (int i = 0; i < w->n_skip; i++) {
      fputc(' ', f);
      for (const char *c = w->skip[i].name; *c; c++)
        fputs(*c == '<' ? "&lt;" : *c == '&' ? "&amp;" : (char[2]){*c, 0}, f);
    }
    fprintf(f, "</p>\n");
  }
  const char *pics[4][2] = {{"resolution.png", "Resolution against the images so far, the fit and the projection"},
                            {"fsc.png", "Fourier shell correlation between the half sets"},
                            {"density.png", "Density (the half sets aligned and averaged)"},
                            {"intensity.png", "3D intensity (log scale)"}};
  for (int i = 0; i < 4; i++) {
    char pp[4200];
    snprintf(pp, sizeof pp, "%.4000s/%s", w->outdir, pics[i][0]);
    if (access(pp, R_OK) == 0)
      fprintf(f, "<h2>%s</h2>\n<img src=\"%s?b=%d\" alt=\"%s\">\n", pics[i][1], pics[i][0], n, pics[i][1]);
  }
  fprintf(f, "<h2>Bursts</h2>\n<table><tr><th>burst</th><th>images</th><th>so far</th><th>data resolution (&Aring;)</th>"
             "<th>density resolution (&Aring;)</th>"
             "<th>low confidence</th><th>photons per image</th><th>warnings</th></tr>\n");
  total = 0;
  for (int i = 0; i < n; i++) {
    total += b[i].n_images;
    fprintf(f, "<tr><td>%d</td><td>%lld</td><td>%lld</td><td>%.2f</td><td>%.2f</td><td>%.1f%%</td><td>%.4g</td><td>",
            i + 1, (long long)b[i].n_images, (long long)total, b[i].res_data, b[i].res, 100 * b[i].low_conf,
            b[i].mean_photons);
    for (unsigned bit = 1; bit <= SPF_WATCH_WARN_PHOTONS; bit <<= 1)
      if (b[i].warnings & bit) fprintf(f, "%s ", warning_text(bit));
    fprintf(f, "</td></tr>\n");
  }
  fprintf(f, "</table>\n</body></html>\n");
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    remove(tmp);
    return SPF_ERR_IO;
  }
  return SPF_OK;
}

/* The outputs after a burst: density.mrc, results.h5, fsc_halves.csv, pictures. */
static int write_outputs(watch *w, const spf_run_state *h[2], const burst_rec *all, int n, const comparison *c,
                         half_figures fig[2], double *combined_error)
{
  const int64_t M = h[0]->M, n3 = M * M * M;
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += all[i].n_images;
  float *map = malloc(sizeof(float) * (size_t)n3);
  double *q = malloc(sizeof(double) * 4 * (size_t)total), *fl = malloc(sizeof(double) * (size_t)total);
  float *bd = malloc(sizeof(float) * (size_t)total), *gap = malloc(sizeof(float) * (size_t)total);
  float *ent = malloc(sizeof(float) * (size_t)total);
  const int truth = fig[0].quats && fig[1].quats;
  double *qt = truth ? malloc(sizeof(double) * 4 * (size_t)total) : NULL;
  int rc = map && q && fl && bd && gap && ent && (!truth || qt) ? SPF_OK : SPF_ERR_ALLOC;
  if (rc) snprintf(w->msg, sizeof w->msg, "out of memory for the outputs");
  /* Every image in arrival order, from its half's state; half 2's orientations turned
   * into half 1's frame: the slicer reads the volume at R^T s, half 2's volume turned by
   * A is read at A^T R'^T s, so R' = R A^T. */
  double a_inv[4] = {c->ar.quat[0], -c->ar.quat[1], -c->ar.quat[2], -c->ar.quat[3]};
  int64_t at[2] = {0, 0}, k = 0;
  for (int i = 0; !rc && i < n; i++)
    for (int64_t j = 0; j < all[i].n_images; j++, k++) {
      const int hh = spf_watch_half(all[i].name, j);
      const int64_t t = at[hh]++;
      if (hh == 0) memcpy(q + 4 * k, h[0]->orientations + 4 * t, sizeof(double) * 4);
      else spf_quat_multiply(h[1]->orientations + 4 * t, a_inv, q + 4 * k);
      bd[k] = h[hh]->best_dist[t];
      gap[k] = h[hh]->gap[t];
      fl[k] = h[hh]->fluence[t];
      ent[k] = h[hh]->entropy[t];
      if (qt) memcpy(qt + 4 * k, fig[hh].quats + 4 * t, sizeof(double) * 4);
    }
  /* Against the files' orientations, both halves in half 1's frame: a wrong frame for
   * half 2 would show here and not in the halves' own figures. */
  *combined_error = !rc && qt ? spf_orientation_error_median(total, qt, q, NULL) : NAN;
  free(qt);
  char path[4200];
  const double voxel = w->voxel;
  for (int64_t v = 0; !rc && v < n3; v++) map[v] = (float)c->rho[v];
  const double origin[3] = {-0.5 * (M - 1) * voxel, -0.5 * (M - 1) * voxel, -0.5 * (M - 1) * voxel};
  snprintf(path, sizeof path, "%.4000s/density.mrc", w->outdir);
  if (!rc) rc = spf_mrc_write(path, map, M, M, M, voxel, origin, w->msg, sizeof w->msg);
  snprintf(path, sizeof path, "%.4000s/results.h5", w->outdir);
  const int poisson = w->model == SPF_MODEL_POISSON;
  if (!rc)
    rc = spf_results_write(path, M, c->rho, c->u, total, q, bd, gap, poisson ? fl : NULL, poisson ? ent : NULL, voxel,
                           &w->ig, h[0]->generation, w->config, w->msg, sizeof w->msg);
  /* The curve, as spinifel fsc writes it (plot reads it for fsc.png). */
  snprintf(path, sizeof path, "%.4000s/fsc_halves.csv", w->outdir);
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = rc ? NULL : fopen(tmp, "w");
  if (!rc && !f) rc = SPF_ERR_IO;
  if (f) {
    fprintf(f, "shell,resolution_A,fsc\n");
    for (int64_t s = 0; s < (M - 1) / 2 + 1; s++)
      fprintf(f, "%lld,%.4f,%.6f\n", (long long)s, s ? (double)M * voxel / (double)s : INFINITY, c->fsc[s]);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
      remove(tmp);
      rc = SPF_ERR_IO;
    }
    if (rc) snprintf(w->msg, sizeof w->msg, "%.1500s: cannot write", path);
  }
  if (!rc) rc = plot_pictures(w->outdir, w->msg, sizeof w->msg);
  free(map);
  free(q);
  free(fl);
  free(bd);
  free(gap);
  free(ent);
  return rc;
}

/* Append the burst's line to feedback.jsonl (flushed and synced). */
static int append_feedback(const watch *w, int n, const burst_rec *b, const spf_watch_projection *p, int unreachable, int from,
                           const half_figures fig[2], double combined_error, double arrival, double t_read, double t_refine[2],
                           double t_compare, double t_outputs, const comparison *c, const char *skipped_list)
{
  char path[4200];
  snprintf(path, sizeof path, "%.4000s/feedback.jsonl", w->outdir);
  FILE *f = fopen(path, "a");
  if (!f) return SPF_ERR_IO;
  const burst_rec *r = &b[n - 1];
  int64_t total = 0, halves[2] = {0, 0};
  for (int i = 0; i < n; i++) {
    total += b[i].n_images;
    halves[0] += b[i].n_half[0];
    halves[1] += b[i].n_half[1];
  }
  const double nyq = 2 * w->voxel * (double)w->S.o.M / (double)(w->S.o.M - 1);
  fprintf(f, "{\"burst\":%d", n);
  json_str(f, "file", r->name);
  fprintf(f, ",\"images_in_burst\":%lld,\"images\":%lld,\"images_half1\":%lld,\"images_half2\":%lld",
          (long long)r->n_images, (long long)total, (long long)halves[0], (long long)halves[1]);
  json_num(f, "data_resolution_A", r->res_data);
  fprintf(f, ",\"data_at_nyquist\":%s", r->res_data <= nyq * (1 + 1e-9) ? "true" : "false");
  json_num(f, "resolution_A", r->res);
  json_num(f, "fsc_threshold", w->threshold);
  json_num(f, "resolution_fsc0143_A", r->res143);
  json_num(f, "resolution_fsc05_A", r->res05);
  json_num(f, "nyquist_A", nyq);
  fprintf(f, ",\"at_nyquist\":%s", r->res <= nyq * (1 + 1e-9) ? "true" : "false");
  json_num(f, "halves_correlation", c->correlation);
  /* The curves themselves, shell 0 (the centre) to the edge: what the resolutions read. */
  json_curve(f, "fsc_halves", w->S.o.M, c->fsc);
  json_curve(f, "fsc_intensity_halves", w->S.o.M, c->fsc_u);
  json_curve(f, "intensity_shell_corr_halves", w->S.o.M, c->cc_i);
  json_num(f, "low_confidence_fraction", r->low_conf);
  json_num(f, "mean_photons_per_image", r->mean_photons);
  fprintf(f, ",\"generations\":%d", fig[0].generation);
  json_num(f, "fraction_changed_half1", fig[0].changed);
  json_num(f, "fraction_changed_half2", fig[1].changed);
  fprintf(f, ",\"examined\":%lld", (long long)(fig[0].examined + fig[1].examined));
  json_num(f, "median_orientation_error_deg", combined_error);
  json_num(f, "median_orientation_error_deg_half1", fig[0].median_error);
  json_num(f, "median_orientation_error_deg_half2", fig[1].median_error);
  fprintf(f, ",\"projection\":{");
  if (w->target > 0) {
    fprintf(f, "\"target_A\":%.6g,\"of\":\"%s\",\"status\":\"%s\"", w->target,
            w->trend_density ? "resolution" : "data_resolution",
            unreachable ? "finer_than_nyquist" : projection_status(p->status));
    json_num(f, "images", unreachable ? NAN : p->n_target);
    json_num(f, "images_low", unreachable ? NAN : p->n_low);
    json_num(f, "images_high", unreachable ? NAN : p->n_high);
    json_num(f, "exponent", p->b);
    json_num(f, "kappa", p->kappa);
    fprintf(f, ",\"points\":%d", p->n_used);
    json_num(f, "from_burst", from < n ? from + 1 : NAN);
  } else {
    fprintf(f, "\"status\":\"no_target\"");
  }
  fprintf(f, "},\"warnings\":[");
  int first = 1;
  for (unsigned bit = 1; bit <= SPF_WATCH_WARN_PHOTONS; bit <<= 1)
    if (r->warnings & bit) {
      fprintf(f, "%s\"%s\"", first ? "" : ",", warning_text(bit));
      first = 0;
    }
  fprintf(f, "],\"skipped\":[");
  /* The files skipped since the previous line (names separated by '/', which no file name holds). */
  for (const char *c = skipped_list; *c;) {
    const size_t k = strcspn(c, "/");
    fprintf(f, "%s\"", c == skipped_list ? "" : ",");
    for (size_t i = 0; i < k; i++) {
      if (c[i] == '"' || c[i] == '\\') fputc('\\', f);
      if ((unsigned char)c[i] >= 0x20) fputc(c[i], f);
    }
    fputc('"', f);
    c += k + (c[k] == '/');
  }
  fprintf(f, "]");
  const double t = now_s();
  fprintf(f, ",\"arrived_unix\":%.3f,\"written_unix\":%.3f", arrival, t);
  json_num(f, "latency_s", t - arrival);
  json_num(f, "t_read", t_read);
  json_num(f, "t_half1", t_refine[0]);
  json_num(f, "t_half2", t_refine[1]);
  json_num(f, "t_compare", t_compare);
  json_num(f, "t_outputs", t_outputs);
  struct rusage ru;
  json_num(f, "peak_rss_mib", getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : NAN);
  fprintf(f, "}\n");
  int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  return ok ? SPF_OK : SPF_ERR_IO;
}

/* The model and the options it resolves, from the first burst's images. */
static int choose_model(watch *w, const burst_rec *r)
{
  if (w->model < 0) {
    float *img[2] = {NULL, NULL};
    double *q[2] = {NULL, NULL};
    int rc = SPF_OK;
    for (int h = 0; !rc && h < 2; h++)
      if (r->n_half[h] > 0) rc = load_half(w, h, r, r->n_half[h], &img[h], &q[h]);
    /* Both halves' images together: one decision for the run. */
    float *all = rc ? NULL : malloc(sizeof(float) * (size_t)(r->n_images * w->np));
    if (!rc && !all) rc = SPF_ERR_ALLOC;
    if (!rc) {
      if (r->n_half[0]) memcpy(all, img[0], sizeof(float) * (size_t)(r->n_half[0] * w->np));
      if (r->n_half[1]) memcpy(all + r->n_half[0] * w->np, img[1], sizeof(float) * (size_t)(r->n_half[1] * w->np));
    }
    char why[256] = "";
    if (!rc) rc = spf_reconstruct_pick_model(r->n_images, w->np, all, &w->S.o, &w->model, why, sizeof why);
    if (rc && why[0]) snprintf(w->msg, sizeof w->msg, "%s", why);
    if (!rc) say(w, "%s", why);
    free(all);
    for (int h = 0; h < 2; h++) {
      free(img[h]);
      free(q[h]);
    }
    if (rc) return rc;
  }
  settings *S = &w->S;
  S->o.model = w->model;
  /* The first burst's run from random orientations: 16 generations with the Poisson
   * model (reconstruct runs to its stopping rule, 26-27 on photon-limited 2cex: the
   * watch's later bursts refine further, and its first line should come early). */
  if (w->model == SPF_MODEL_POISSON && S->o.max_generations == 0) S->o.max_generations = 16;
  /* The Poisson model's grid: EMC's 3,240 orientations as reconstruct, reached at the end
   * of the first burst from 1,000 (a coarse grid while the orientations are random); later
   * bursts use the final grid throughout, as their kept probabilities need. The merge's CG
   * to 1e-4 (its 1e-6 ran to the 100-iteration cap on photon counts), and phasing every
   * first burst's generations (16) besides each burst's last: with the merged model sliced
   * the density feeds only the phasings, not the orientations. On the first burst's half of the benchmark's stream (1,000 images, 16
   * generations) 34.1 -> 25.6 s, the same orientations (median error 70.98 / 70.91 deg;
   * with a fixed grid: 47 s). */
  if (w->model == SPF_MODEL_POISSON && !S->refs_given) {
    S->o.n_references = 3240;
    S->o.refs_start = 1000;
    S->o.refs_generations = S->o.max_generations > 0 ? S->o.max_generations : 16;
  }
  if (w->model == SPF_MODEL_POISSON && !S->cg_tol_given) S->o.merge.cg_tol = 1e-4;
  if (w->model == SPF_MODEL_POISSON && !S->phase_every_given)
    S->o.phase_every = S->o.max_generations > 1 && S->o.max_generations <= 1000 ? S->o.max_generations : 16;
  spf_reconstruct_resolve(&S->o, w->model);
  snprintf(S->model, sizeof S->model, "%s", w->model == SPF_MODEL_POISSON ? "poisson" : "euclidean");
  config_text(S, 0, w->config, sizeof w->config);
  config_text(S, 1, w->config_results, sizeof w->config_results);
  w->o = S->o;
  w->o.nthreads = (int)S->threads;
  w->o.verbose = 0;
  return SPF_OK;
}

/* Ingest one burst; 0 done, 1 skipped (message printed), 2 interrupted, -1 fatal (msg). */
static int ingest(watch *w, const char *name, double arrival, char *skipped_list, size_t skipped_len)
{
  const double t0 = omp_get_wtime();
  burst_rec r;
  memset(&r, 0, sizeof r);
  for (int k = 0; k < WATCH_SHELLS; k++) r.shell_corr[k] = NAN;
  char msg[2048] = "";
  int rc = check_burst(w, name, &r, msg, sizeof msg);
  if (!rc && w->n_bursts == 0 && (r.n_half[0] < 2 || r.n_half[1] < 2)) {
    snprintf(msg, sizeof msg, "%s: %lld images, too few to start two half sets", name, (long long)r.n_images);
    rc = SPF_ERR_DATA;
  }
  rc = spf_comm_agree(&w->cw, rc); /* every rank read the file: all skip it or none */
  if (!rc && (w->model < 0 || w->n_bursts == 0)) {
    /* The model from the first burst's images; data it cannot use (all zero) are a skip. */
    w->msg[0] = 0;
    rc = spf_comm_agree(&w->cw, choose_model(w, &r));
    if (rc == SPF_ERR_DATA) snprintf(msg, sizeof msg, "%.255s: %.1700s", name, w->msg[0] ? w->msg : spf_strerror(rc));
    else if (rc) {
      if (!w->msg[0]) snprintf(w->msg, sizeof w->msg, "%s", spf_strerror(rc));
      return -1;
    }
    if (rc) w->model = -1;
  }
  if (rc) {
    char path[4400];
    struct stat sb;
    snprintf(path, sizeof path, "%.4000s/%s", w->indir, name);
    if (stat(path, &sb) == 0) remember_skip(w, name, &sb);
    if (w->cw.rank == 0) fprintf(stderr, "spinifel watch: skipped %s: %s\n", name, msg[0] ? msg : spf_strerror(rc));
    const size_t used = strlen(skipped_list);
    if (used + strlen(name) + 3 < skipped_len) snprintf(skipped_list + used, skipped_len - used, "%s%s", used ? "/" : "", name);
    return 1;
  }
  const double t_read = omp_get_wtime() - t0;
  say(w, "burst %d: %s, %lld images (%lld and %lld in the half sets), %.4g photons per image", w->n_bursts + 1, name,
      (long long)r.n_images, (long long)r.n_half[0], (long long)r.n_half[1], r.mean_photons);
  spf_run_state st[2];
  memset(st, 0, sizeof st);
  half_figures fig[2];
  memset(fig, 0, sizeof fig);
  double combined_error = NAN;
  double low[2], t_refine[2] = {0, 0};
  int interrupted = 0;
  rc = SPF_OK;
  for (int h = 0; !rc && !interrupted && h < 2; h++) {
    const double t = omp_get_wtime();
    rc = refine_half(w, h, &r, &st[h], &low[h], &fig[h], &interrupted);
    t_refine[h] = omp_get_wtime() - t;
  }
  double stop = stop_requested ? 1 : 0; /* agreed: a signal may reach some ranks only */
  if (!rc) rc = spf_comm_max_double(&w->cw, &stop, 1);
  if (!rc && !interrupted && stop > 0) interrupted = 1;
  if (rc || interrupted) {
    spf_run_state_free(&st[0]);
    spf_run_state_free(&st[1]);
    free(fig[0].quats);
    free(fig[1].quats);
    if (interrupted) return 2;
    return -1;
  }
  /* The halves compared, the figures, the outputs, the feedback line, the commit. */
  double t = omp_get_wtime();
  comparison c;
  memset(&c, 0, sizeof c);
  const int root = w->cw.rank == 0; /* rank 0 compares, writes and reports */
  rc = root ? compare_halves(w, &st[0], &st[1], &c) : SPF_OK;
  if (rc) snprintf(w->msg, sizeof w->msg, "comparing the half sets: %s", spf_strerror(rc));
  const double t_compare = omp_get_wtime() - t;
  r.changed = fmax(fig[0].changed, fig[1].changed); /* a NaN (unknown) half gives the other's */
  if (!rc && root) {
    const int64_t M = w->S.o.M;
    /* Where the FSC falls below each level for good: a weak shell's dip inside is no
     * resolution (spf_fsc_resolution_outer). */
    r.res143 = spf_fsc_resolution_outer(M, c.fsc, w->voxel, 0.143);
    r.res05 = spf_fsc_resolution_outer(M, c.fsc, w->voxel, 0.5);
    r.res = spf_fsc_resolution_outer(M, c.fsc, w->voxel, w->threshold);
    r.res_data = spf_watch_data_resolution(M, c.cc_i, w->voxel, w->threshold);
    for (int64_t k = 0; (M - 1) / 2 < WATCH_SHELLS && k <= (M - 1) / 2; k++) r.shell_corr[k] = c.cc_i[k];
    const double nh = (double)(r.n_half[0] + r.n_half[1]);
    r.low_conf = nh > 0 ? ((r.n_half[0] ? low[0] * (double)r.n_half[0] : 0) +
                           (r.n_half[1] ? low[1] * (double)r.n_half[1] : 0)) / nh
                        : 0;
  }
  /* Every rank's list of bursts, this one last (committed below when all agree). */
  burst_rec *all = rc ? NULL : malloc(sizeof(burst_rec) * (size_t)(w->n_bursts + 1));
  if (!rc && !all) rc = SPF_ERR_ALLOC;
  if (!rc) {
    if (w->n_bursts) memcpy(all, w->b, sizeof(burst_rec) * (size_t)w->n_bursts);
    all[w->n_bursts] = r;
  }
  spf_watch_projection p;
  int unreachable = 0, from = 0;
  t = omp_get_wtime();
  if (!rc && root) {
    const int n = w->n_bursts + 1;
    spf_watch_point *hist = malloc(sizeof *hist * (size_t)n);
    int64_t total = 0;
    for (int i = 0; hist && i < n; i++) {
      total += all[i].n_images;
      hist[i] = (spf_watch_point){total, trend_res(w, &all[i]), all[i].low_conf, all[i].mean_photons};
    }
    rc = hist ? spf_watch_assess(n, hist, NULL, &all[n - 1].warnings) : SPF_ERR_ALLOC;
    free(hist);
    project(w, n, all, &p, &unreachable, &from);
    const spf_run_state *hs[2] = {&st[0], &st[1]};
    if (!rc) rc = write_outputs(w, hs, all, n, &c, fig, &combined_error);
    if (!rc) rc = plot_trend(w, n, all, &p, w->msg, sizeof w->msg);
    if (!rc && write_report(w, n, all, &p, unreachable)) {
      snprintf(w->msg, sizeof w->msg, "%s/report.html: cannot write", w->outdir);
      rc = SPF_ERR_IO;
    }
    const double t_outputs = omp_get_wtime() - t;
    if (!rc && append_feedback(w, n, all, &p, unreachable, from, fig, combined_error, arrival, t_read, t_refine, t_compare, t_outputs, &c, skipped_list)) {
      snprintf(w->msg, sizeof w->msg, "%s/feedback.jsonl: cannot append", w->outdir);
      rc = SPF_ERR_IO;
    }
    if (!rc && write_state(w, n, all)) {
      snprintf(w->msg, sizeof w->msg, "%s/state/watch.state: cannot write", w->outdir);
      rc = SPF_ERR_IO;
    }
  }
  rc = spf_comm_agree(&w->cw, rc);
  if (!rc) {
    /* Committed: the new list is the run's, the previous checkpoints go. */
    free(w->b);
    w->b = all;
    all = NULL;
    w->n_bursts++;
    w->cap = w->n_bursts;
  }
  if (!rc && root) {
    tidy_state(w, w->n_bursts);
    const burst_rec *rr = &w->b[w->n_bursts - 1];
    int64_t total = 0;
    for (int i = 0; i < w->n_bursts; i++) total += w->b[i].n_images;
    fprintf(stderr, "burst %d (%s): %lld images so far, data resolution %.2f A (intensity shells at %g), half sets' "
                    "density FSC 0.5 at %.2f A, 0.143 at %.2f A", w->n_bursts, rr->name, (long long)total, rr->res_data,
            w->threshold, rr->res05, rr->res143);
    if (w->target > 0 && p.status == SPF_WATCH_PROJECTED && !unreachable)
      fprintf(stderr, "; %.1f A projected at %.0f images", w->target, p.n_target);
    if (w->target > 0 && p.status == SPF_WATCH_REACHED) fprintf(stderr, "; %.1f A reached", w->target);
    fprintf(stderr, " (%.1f s)\n", omp_get_wtime() - t0);
    for (unsigned bit = 1; bit <= SPF_WATCH_WARN_PHOTONS; bit <<= 1)
      if (rr->warnings & bit) fprintf(stderr, "spinifel watch: warning: %s: %s\n", rr->name, warning_sentence(bit));
    skipped_list[0] = 0;
  }
  free(all);
  free(c.fsc);
  free(c.fsc_u);
  free(c.cc_i);
  free(c.rho);
  free(c.u);
  spf_run_state_free(&st[0]);
  spf_run_state_free(&st[1]);
  free(fig[0].quats);
  free(fig[1].quats);
  return rc ? -1 : 0;
}

/* ---- The command ---------------------------------------------------------------------- */

static int parse(int argc, char **argv, watch *w)
{
  settings *S = &w->S;
  /* --config first, so that flags override the file. */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return -1;
    }
    if (!strcmp(argv[i], "--config")) {
      const char *v = arg_value(C_NAME, argc, argv, &i);
      if (!v) return 2;
      const int rc = config_read_file(S, v, NULL);
      if (rc) return rc;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "--config")) {
      i++;
      continue;
    }
    if (!strcmp(a, "--quiet") && !(i + 1 < argc && (!strcmp(argv[i + 1], "0") || !strcmp(argv[i + 1], "1")))) {
      w->quiet = 1;
      continue;
    }
    if (a[0] != '-') {
      if (w->indir && strcmp(w->indir, a)) {
        fprintf(stderr, "spinifel watch: one input folder only ('%s' and '%s')\n", w->indir, a);
        return 2;
      }
      w->indir = a;
      continue;
    }
    if (!(v = arg_value(C_NAME, argc, argv, &i))) return 2;
    int rc = 0;
    if (!strcmp(a, "-o") || !strcmp(a, "--output")) w->outdir = v;
    else if (!strcmp(a, "--target-resolution")) rc = arg_double(C_NAME, a, v, 1e-3, 1e6, &w->target);
    else if (!strcmp(a, "--stop-after-idle")) rc = arg_double(C_NAME, a, v, 0, 1e9, &w->idle);
    else if (!strcmp(a, "--poll")) rc = arg_double(C_NAME, a, v, 0.01, 3600, &w->poll);
    else if (!strcmp(a, "--fsc-threshold")) rc = arg_double(C_NAME, a, v, 0.01, 0.99, &w->threshold);
    else if (!strcmp(a, "--settled-fraction")) rc = arg_double(C_NAME, a, v, 0, 1, &w->settled);
    else if (!strcmp(a, "--trend")) {
      if (!strcmp(v, "data") || !strcmp(v, "density")) w->trend_density = !strcmp(v, "density");
      else {
        fprintf(stderr, "spinifel watch: --trend must be data or density, got '%s'\n", v);
        rc = 2;
      }
    }
    else if (!strcmp(a, "--align-rotations")) rc = arg_int64(C_NAME, a, v, 10, 10000000, &w->align_rotations);
    else if (!strcmp(a, "--refresh-images")) {
      if (!strcmp(v, "all")) w->refresh = -1;
      else rc = arg_int64(C_NAME, a, v, 0, INT64_MAX / 4, &w->refresh);
    } else if (!strcmp(a, "--refine-generations")) {
      int64_t k;
      rc = arg_int64(C_NAME, a, v, 1, 1000, &k);
      w->refine = (int)k;
    } else {
      const char *name = a + (a[1] == '-' ? 2 : 1);
      if (!strcmp(name, "data") || !strcmp(name, "images") || !strcmp(name, "half") || !strcmp(name, "output") ||
          !strcmp(name, "pictures-each")) {
        fprintf(stderr, "spinifel watch: %s is not a watch parameter (the images come from INDIR)\n", a);
        return 2;
      }
      if (config_set(S, name, v, a)) return 2;
      if (!strcmp(name, "quiet")) w->quiet = S->quiet;
    }
    if (rc) return rc;
  }
  if (!w->indir || !w->outdir) {
    fprintf(stderr, "spinifel watch: an input folder and an output directory are required (INDIR -o OUTDIR)\n");
    return 2;
  }
  if (S->o.M % 2 == 0) {
    fprintf(stderr, "spinifel watch: --M must be odd, got %lld\n", (long long)S->o.M);
    return 2;
  }
  if (strcmp(S->model, "auto") && strcmp(S->model, "poisson") && strcmp(S->model, "euclidean")) {
    fprintf(stderr, "spinifel watch: --model must be auto, poisson or euclidean, got '%s'\n", S->model);
    return 2;
  }
  S->o.model = !strcmp(S->model, "poisson") ? SPF_MODEL_POISSON
             : !strcmp(S->model, "euclidean") ? SPF_MODEL_EUCLIDEAN : SPF_MODEL_AUTO;
  return 0;
}

static void watch_free(watch *w)
{
  free(w->b);
  free(w->skip);
  free(w->s_all);
  free(w->s);
  free(w->mask);
}

/* After a restart: the first burst gives the geometry again, and the configuration and
 * model recorded are taken. */
static int restore(watch *w)
{
  int rc = read_state(w);
  if (rc || w->n_bursts == 0) return rc;
  spf_dataset *d = NULL;
  rc = open_burst(w, w->b[0].name, &d, w->msg, sizeof w->msg);
  if (!rc) {
    rc = take_geometry(w, d);
    if (rc) snprintf(w->msg, sizeof w->msg, "%s: no valid pixel", w->b[0].name);
  }
  spf_dataset_close_reader(d);
  if (rc) {
    char m[2048];
    snprintf(m, sizeof m, "the first ingested burst no longer reads: %.1900s", w->msg);
    snprintf(w->msg, sizeof w->msg, "%s", m);
    return rc;
  }
  return choose_model(w, &w->b[0]);
}

int cmd_watch(int argc, char **argv)
{
  watch w;
  memset(&w, 0, sizeof w);
  config_defaults(&w.S);
  /* Watch's own default: the merge keeps the previous model as prior. Each later burst
   * gets a few generations only, and the prior carries the model from burst to burst:
   * on cli_watch's stream the half maps' correlation rose 0.82 -> 0.89 over the bursts
   * with it, 0.86 -> 0.87 without (reconstruct, which runs to convergence, does better
   * without: BENCHMARKS.md "Every start converges"). --prior 0 overrides. And one
   * phasing per output, not reconstruct's mean of 5: the feedback reads the trend of the
   * half maps' agreement, which the mean's shared smoothing lifts most where the half sets
   * are small (cli_watch: correlation 0.967 at 40 images, 0.957 at 640). */
  w.S.o.use_prior = 1;
  w.S.o.phase_average = 1;
  w.poll = 1;
  w.threshold = 0.5;
  w.settled = SPF_WATCH_SETTLED_FRACTION;
  w.refine = 3;
  w.align_rotations = 2000;
  w.refresh = 12000;
  w.model = -1;
  int rc = parse(argc, argv, &w);
  if (rc) return rc < 0 ? 0 : rc;
  w.progress = progress_mode(w.quiet);
  /* Under mpirun: rank 0 polls, writes and reports; every rank refines each half with its
   * share of the images (docs/watch.md, "MPI"). */
  spf_comm_world(&w.cw);
  const int root = w.cw.rank == 0;
  struct stat sb;
  if (stat(w.indir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "spinifel watch: %s: %s\n", w.indir, errno ? strerror(errno) : "not a directory");
    return 1;
  }
  if (w.S.detector[0]) {
    char *abs = realpath(w.S.detector, NULL);
    if (!abs) {
      fprintf(stderr, "spinifel watch: %s: %s\n", w.S.detector, strerror(errno));
      return 1;
    }
    snprintf(w.S.detector, sizeof w.S.detector, "%s", abs);
    free(abs);
  }
  char path[4200];
  snprintf(path, sizeof path, "%.4000s/state", w.outdir);
  if ((mkdir(w.outdir, 0777) != 0 && errno != EEXIST) || (mkdir(path, 0777) != 0 && errno != EEXIST) ||
      stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "spinifel watch: cannot create %s: %s\n", path, strerror(errno));
    return 1;
  }
  snprintf(w.S.output, sizeof w.S.output, "%s", w.outdir);
  w.S.o.model = w.S.o.model; /* decided with the first burst */
  config_text(&w.S, 0, w.config, sizeof w.config);
  config_text(&w.S, 1, w.config_results, sizeof w.config_results);
  rc = spf_comm_agree(&w.cw, restore(&w));
  if (rc) {
    if (root) fprintf(stderr, "spinifel watch: %s\n", w.msg[0] ? w.msg : spf_strerror(rc));
    watch_free(&w);
    return rc == SPF_ERR_OPTION ? 2 : 1;
  }
  rc = spf_comm_agree(&w.cw, root && trim_feedback(&w, w.n_bursts) ? SPF_ERR_IO : SPF_OK);
  if (rc) {
    if (root) fprintf(stderr, "spinifel watch: cannot rewrite %s/feedback.jsonl\n", w.outdir);
    watch_free(&w);
    return 1;
  }
  if (root) {
    tidy_state(&w, w.n_bursts);
    remove_dead_temporaries(w.outdir);
    remove_dead_temporaries(path); /* OUTDIR/state */
  }
  if (w.n_bursts > 0 && root) {
    int64_t total = 0;
    for (int i = 0; i < w.n_bursts; i++) total += w.b[i].n_images;
    fprintf(stderr, "spinifel watch: continuing %s after %d bursts (%lld images; the last %s)\n", w.outdir, w.n_bursts,
            (long long)total, w.b[w.n_bursts - 1].name);
  }
  /* The configuration, as reconstruct writes it, and the watch's own settings. */
  char refresh_now[32];
  refresh_text(w.refresh, refresh_now, sizeof refresh_now);
  snprintf(path, sizeof path, "%.4000s/config.ini", w.outdir);
  if (root) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(w.config, f) >= 0 &&
             fprintf(f, "\n[watch]\nindir = %s\ntarget-resolution = %g\nrefine-generations = %d\nalign-rotations = %lld\n"
                     "fsc-threshold = %g\nrefresh-images = %s\nsettled-fraction = %g\n",
                     w.indir, w.target, w.refine, (long long)w.align_rotations, w.threshold, refresh_now, w.settled) > 0;
    if (f) ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
      remove(tmp);
      fprintf(stderr, "spinifel watch: cannot write %s\n", path);
      rc = SPF_ERR_IO;
    }
  }
  if (spf_comm_agree(&w.cw, rc)) {
    watch_free(&w);
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  w.t_start = now_s();
  double last = now_s();
  char skipped_list[4096] = "";
  int ret = 0;
  say(&w, "watching %s for bursts (outputs in %s)%s", w.indir, w.outdir,
      w.idle > 0 ? "" : "; SIGINT or SIGTERM ends it");
  for (;;) {
    /* Rank 0 looks; every rank learns what to do (a signal on any rank stops all). */
    struct {
      double arrival;
      int32_t cmd, pad; /* 0 nothing new, 1 a burst, 2 idle: stop, 3 a signal: stop, -1 the folder failed */
      char name[256];
    } next;
    memset(&next, 0, sizeof next);
    double stop = stop_requested ? 1 : 0;
    if (spf_comm_max_double(&w.cw, &stop, 1)) {
      ret = 1;
      break;
    }
    if (stop > 0) stop_requested = 1;
    if (root && stop > 0) next.cmd = 3;
    else if (root) {
      const int found = next_burst(&w, next.name, sizeof next.name, &next.arrival);
      if (found < 0) {
        fprintf(stderr, "spinifel watch: %s: cannot read the folder: %s\n", w.indir, strerror(errno));
        next.cmd = -1;
      } else if (found) {
        next.cmd = 1;
      } else if (w.idle > 0 && now_s() - last >= w.idle) {
        say(&w, "no new burst for %g s: stopping", w.idle);
        next.cmd = 2;
      }
    }
    if (spf_comm_bcast(&w.cw, &next, sizeof next, 0)) {
      ret = 1;
      break;
    }
    if (next.cmd < 0) ret = 1;
    if (next.cmd < 0 || next.cmd >= 2) break;
    if (next.cmd == 0) {
      nap(w.poll);
      continue;
    }
    w.msg[0] = 0;
    const int r = ingest(&w, next.name, next.arrival, skipped_list, sizeof skipped_list);
    if (r < 0) {
      if (root) fprintf(stderr, "spinifel watch: %s: %s\n", next.name, w.msg[0] ? w.msg : "failed");
      ret = 1;
      break;
    }
    if (r == 2) break;
    last = now_s();
  }
  if (stop_requested && ret == 0 && root)
    fprintf(stderr, "spinifel watch: stopped by a signal after %d bursts; the same command continues\n", w.n_bursts);
  watch_free(&w);
  return ret;
}
