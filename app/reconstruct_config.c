/* The reconstruct command's parameters, their INI reading and writing. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "reconstruct_config.h"

void config_defaults(settings *s)
{
  memset(s, 0, sizeof *s);
  spf_reconstruct_default_options(&s->o);
  snprintf(s->model, sizeof s->model, "auto");
  s->mask_dead = 1;
}

int config_param_table(settings *s, param *t)
{
  spf_reconstruct_options *o = &s->o;
  const param p[] = {
      {"data", T_TEXT, s->data, 0, 0, 1, "the dataset (HDF5, SpiniFEL or CXI layout; or EMC photons with detector)"},
      {"output", T_TEXT, s->output, 0, 0, 0, "output directory"},
      {"detector", T_TEXT, s->detector, 0, 0, 1, "EMC (Dragonfly) detector file, when DATA is an EMC photon file"},
      {"images", T_I64, &s->images, 0, 1e15, 1, "use the first N images (0: all)"},
      {"half", T_INT, &s->half, 0, 2, 1, "0: all images; 1 or 2: that half of a random split (seed)"},
      {"model", T_TEXT, s->model, 0, 0, 1,
       "orientation model: auto (poisson for photon counts), poisson (EMC likelihood), euclidean (M-TIP)"},
      {"poisson-mean", T_DOUBLE, &o->poisson_mean, 0, 1e9, 1, "auto: poisson up to this mean count per pixel"},
      {"beta-start", T_DOUBLE, &o->beta_start, 0, 1, 1,
       "poisson: annealing factor of generation 1 (0: auto, from the photons per image)"},
      {"beta-min-spread", T_DOUBLE, &o->beta_min_spread, 0, 1e6, 1,
       "poisson: beta at least this over the median spread of log L (0: off)"},
      {"beta-max", T_DOUBLE, &o->beta_max, 1e-6, 1, 1, "poisson: the largest annealing factor"},
      {"beta-period", T_INT, &o->beta_period, 0, 1000, 1,
       "poisson: beta doubles every this many generations (0: 4)"},
      {"model-floor", T_DOUBLE, &o->model_floor, 0, 1e3, 1,
       "poisson: the model counts as at least this fraction of each pixel's mean count"},
      {"update-fluence", T_INT, &o->update_fluence, 0, 1, 1, "poisson: per-image fluence from the probabilities"},
      {"positive-intensity", T_INT, &o->positive_intensity, -1, 1, 1,
       "clip the merged intensity at 0 (-1: with the poisson model)"},
      {"mask-dead", T_INT, &s->mask_dead, 0, 1, 1,
       "1: mask pixels that saw no photon while their neighbours did (beam stop, dead pixels)"},
      {"M", T_I64, &o->M, 3, 301, 1, "grid size in voxels per side, odd (voxel 1 / (2 s_max oversampling))"},
      {"refs", T_I64, &o->n_references, 0, 1e9, 1,
       "final reference orientations (0: from the particle's size and the data's resolution)"},
      {"refs-max", T_I64, &o->refs_max, 1, 1e9, 1, "the most references --refs 0 may choose"},
      {"refs-start", T_I64, &o->refs_start, 0, 1e9, 1, "references of generation 1 (0: refs), rising to refs"},
      {"refs-gens", T_INT, &o->refs_generations, 1, 1000, 1, "generation at which refs is reached"},
      {"ref-batch", T_I64, &o->ref_batch, 1, 1e6, 1, "references sliced per batch (memory)"},
      {"generations", T_INT, &o->max_generations, 0, 1000, 0,
       "generation cap (0: 60, 16 for poisson; a resume may raise it)"},
      {"stop-fraction", T_DOUBLE, &o->stop_fraction, 0, 1, 1, "stop when fewer images change orientation"},
      {"seed", T_I64, &o->seed, 0, 9e18, 1, "seed of generation 0's orientations and of phasing"},
      {"pixel-weighting", T_INT, &o->pixel_weighting, 0, 1, 1, "matching metric: 1 = 1/mean image, 0 = plain"},
      {"res-start", T_DOUBLE, &o->res_start, 0.05, 1, 1, "match on |s| <= F s_max first (1: no schedule)"},
      {"res-gens", T_INT, &o->res_generations, 1, 1000, 1, "generation at which all pixels are used"},
      {"res-merge", T_INT, &o->res_merge, 0, 1, 1, "1: merge only the scheduled pixels too"},
      {"soft-k", T_INT, &o->soft_k, 1, 4096, 1, "soft assignment: nearest references per image"},
      {"soft-tau", T_DOUBLE, &o->soft_tau, 1e-6, 1e6, 1, "soft assignment temperature (relative)"},
      {"soft-gens", T_INT, &o->soft_generations, 0, 1000, 1, "generations with soft assignment"},
      {"local-refine", T_INT, &o->local_refine, 0, 8, 1,
       "refine matches off the final grid: step halvings from half its ball radius (0: off)"},
      {"slice-merged", T_INT, &o->slice_merged, -1, 2, 1,
       "model sliced: 1 merged, 0 phased, 2 phased until the final grid, then merged (-1: 2, 1 for poisson)"},
      {"slice-phase-cycles", T_INT, &o->slice_phase_cycles, 1, 10000, 1,
       "phasing cycles when the phased model is sliced next"},
      {"prior", T_INT, &o->use_prior, 0, 1, 1, "merge with the previous model as prior"},
      {"continue-phasing", T_INT, &o->continue_phasing, 0, 1, 1, "phase from the previous density"},
      {"n-rho", T_INT, &o->n_rho, 1, 100, 1, "L-curve points"},
      {"rho-min", T_DOUBLE, &o->rho_min, 1e-12, 1e12, 1, "smallest regularisation (relative)"},
      {"rho-max", T_DOUBLE, &o->rho_max, 1e-12, 1e12, 1, "largest regularisation (relative)"},
      {"phi", T_DOUBLE, &o->phi, 0, 1e12, 1, "ball penalty (relative)"},
      {"cg-iterations", T_INT, &o->merge.cg_max_iter, 1, 100000, 1, "CG iteration cap"},
      {"cg-tol", T_DOUBLE, &o->merge.cg_tol, 1e-15, 1, 1, "CG tolerance (relative residual)"},
      {"merge-tol", T_DOUBLE, &o->merge.nufft_tol, 0, 1e-2, 1, "merging: accuracy of the type-1 sums (0: 1e-5, 1e-4 for poisson; from 1e-5 up in single precision)"},
      {"slice-tol", T_DOUBLE, &o->slice_tol, 0, 1e-2, 1, "slicing: accuracy of the type-2 NUFFT (0: 1e-4, 1e-3 for poisson)"},
      {"preconditioner", T_INT, &o->merge.preconditioner, 0, 1, 1, "1: circulant preconditioner for CG"},
      {"phase-every", T_INT, &o->phase_every, 0, 1000, 1,
       "phase every N generations and at the last (0: 5 with slice-merged 1 or 2, else 1)"},
      {"phase-cycles", T_INT, &o->phase.n_cycles, 0, 10000, 1, "phasing cycles per generation"},
      {"phase-average", T_INT, &o->phase_average, 1, 100, 1,
       "the output density: mean of this many phasings of the last merge"},
      {"beta", T_DOUBLE, &o->phase.beta, 0.01, 1, 1, "HIO feedback"},
      {"start-from-truth", T_INT, &o->start_from_truth, 0, 1, 1, "diagnostics: start from the file's orientations"},
      {"pictures-each", T_INT, &s->pictures_each, 0, 1, 0, "1: also draw density_genNNN.png after every generation"},
      {"quiet", T_INT, &s->quiet, 0, 1, 0,
       "1: no progress on stderr (0: a live line on a terminal, timestamped lines otherwise)"},
      {"threads", T_I64, &s->threads, 0, 1024, 0, "threads (0: all)"},
  };
  const int n = (int)(sizeof p / sizeof p[0]);
  if (t) memcpy(t, p, sizeof p);
  return n;
}

int config_set(settings *s, const char *name, const char *value, const char *where)
{
  param t[MAX_PARAMS];
  const int n = config_param_table(s, t);
  for (int i = 0; i < n; i++) {
    if (strcmp(t[i].name, name)) continue;
    if (!strncmp(name, "refs", 4)) s->refs_given = 1;
    if (!strcmp(name, "cg-tol")) s->cg_tol_given = 1;
    if (!strcmp(name, "phase-every")) s->phase_every_given = 1;
    int64_t v64;
    int rc = 0;
    switch (t[i].type) {
    case T_TEXT:
      if (!value[0]) { /* config.ini leaves unset texts out: an empty one would not come back */
        fprintf(stderr, "spinifel reconstruct: %s: empty value\n", where);
        return 2;
      }
      if (strlen(value) >= 1024) {
        fprintf(stderr, "spinifel reconstruct: %s: path too long\n", where);
        return 2;
      }
      snprintf((char *)t[i].ptr, 1024, "%s", value);
      return 0;
    case T_DOUBLE: return arg_double("reconstruct", where, value, t[i].lo, t[i].hi, (double *)t[i].ptr);
    case T_INT:
      rc = arg_int64("reconstruct", where, value, (int64_t)t[i].lo, (int64_t)t[i].hi, &v64);
      if (!rc) *(int *)t[i].ptr = (int)v64;
      return rc;
    default:
      return arg_int64("reconstruct", where, value, (int64_t)t[i].lo, (int64_t)t[i].hi, (int64_t *)t[i].ptr);
    }
  }
  fprintf(stderr, "spinifel reconstruct: %s: unknown parameter '%s' (try --help)\n", where, name);
  return 2;
}

void config_text(settings *s, int results_only, char *out, size_t len)
{
  param t[MAX_PARAMS];
  const int n = config_param_table(s, t);
  size_t at = (size_t)snprintf(out, len, "[reconstruct]\n");
  for (int i = 0; i < n && at < len; i++) {
    if (results_only && !t[i].results) continue;
    if (t[i].type == T_TEXT && !((char *)t[i].ptr)[0]) continue; /* unset: as before the key existed */
    switch (t[i].type) {
    case T_TEXT: at += (size_t)snprintf(out + at, len - at, "%s = %s\n", t[i].name, (char *)t[i].ptr); break;
    case T_DOUBLE: {
      /* The shortest text that reads back to the same double: 0.3, not 0.29999999999999999. */
      const double v = *(double *)t[i].ptr;
      char num[40];
      for (int digits = 15; digits <= 17; digits++) {
        snprintf(num, sizeof num, "%.*g", digits, v);
        if (strtod(num, NULL) == v) break;
      }
      at += (size_t)snprintf(out + at, len - at, "%s = %s\n", t[i].name, num);
      break;
    }
    case T_INT: at += (size_t)snprintf(out + at, len - at, "%s = %d\n", t[i].name, *(int *)t[i].ptr); break;
    default: at += (size_t)snprintf(out + at, len - at, "%s = %lld\n", t[i].name, (long long)*(int64_t *)t[i].ptr);
    }
  }
}

typedef struct {
  settings *s;
  const char *path;
  int rc;
} ini_ctx;

static int on_ini_line(void *user, const char *section, const char *name, const char *value)
{
  ini_ctx *c = user;
  if (c->rc) return 0;
  if (strcmp(section, "reconstruct") != 0) {
    fprintf(stderr, "spinifel reconstruct: %s: unknown section [%s] (expected [reconstruct])\n", c->path, section);
    c->rc = 2;
    return 0;
  }
  char where[1100];
  snprintf(where, sizeof where, "%s: %s", c->path, name);
  c->rc = config_set(c->s, name, value, where);
  return c->rc == 0;
}

/* The INI subset config.ini is written in, read by hand: Debian's libinih stops at
 * 199-byte lines, shorter than the paths a configuration holds. Lines are "[section]",
 * "name = value" (both trimmed; the value may hold any byte but a newline, so whatever
 * config_text writes reads back), blank, or comments beginning with ';' or '#'. Returns
 * 0, the handler's refusal (c->rc), or 2 with the first bad line's number in *bad_line. */
static int parse_ini(char *text, size_t len, ini_ctx *c, int *bad_line)
{
  char section[256] = "";
  size_t at = 0;
  if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) at = 3; /* a UTF-8 byte-order mark */
  for (int line = 1; at < len; line++) {
    char *b = text + at, *nl = memchr(b, '\n', len - at);
    size_t n = nl ? (size_t)(nl - b) : len - at;
    at += n + 1;
    if (memchr(b, '\0', n)) {
      *bad_line = line;
      return 2;
    }
    while (n && isspace((unsigned char)b[n - 1])) n--;
    while (n && isspace((unsigned char)*b)) b++, n--;
    b[n] = '\0'; /* over the newline, a trailing space or, at the end, the reader's spare byte */
    if (!n || *b == ';' || *b == '#') continue;
    if (*b == '[') {
      if (b[n - 1] != ']' || n - 2 >= sizeof section) {
        *bad_line = line;
        return 2;
      }
      char *s = b + 1, *e = b + n - 1;
      while (s < e && isspace((unsigned char)*s)) s++;
      while (e > s && isspace((unsigned char)e[-1])) e--;
      snprintf(section, sizeof section, "%.*s", (int)(e - s), s);
      continue;
    }
    char *eq = strchr(b, '=');
    if (!eq || eq == b) {
      *bad_line = line;
      return 2;
    }
    char *ne = eq, *v = eq + 1;
    while (ne > b && isspace((unsigned char)ne[-1])) ne--;
    *ne = '\0';
    while (*v && isspace((unsigned char)*v)) v++;
    if (!*b) {
      *bad_line = line;
      return 2;
    }
    if (!on_ini_line(c, section, b, v)) return c->rc ? c->rc : 2;
  }
  return 0;
}

int config_read_file(settings *s, const char *path, const char *resume_dir)
{
  struct stat sb;
  if (resume_dir && stat(resume_dir, &sb) != 0) {
    fprintf(stderr, "spinifel reconstruct: --resume %s: %s\n", resume_dir, strerror(errno));
    return 1;
  }
  if (resume_dir && !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "spinifel reconstruct: --resume %s: not a directory\n", resume_dir);
    return 1;
  }
  if (stat(path, &sb) != 0) {
    if (resume_dir)
      fprintf(stderr, "spinifel reconstruct: --resume %s: not a run directory (no config.ini)\n", resume_dir);
    else
      fprintf(stderr, "spinifel reconstruct: the configuration %s: %s\n", path, strerror(errno));
    return 1;
  }
  if (!S_ISREG(sb.st_mode)) {
    fprintf(stderr, "spinifel reconstruct: the configuration %s is not a regular file\n", path);
    return 1;
  }
  if (sb.st_size > (1 << 20)) {
    fprintf(stderr, "spinifel reconstruct: the configuration %s is larger than 1 MiB: not a configuration\n", path);
    return 1;
  }
  FILE *f = fopen(path, "rb");
  char *text = malloc((size_t)sb.st_size + 1);
  size_t len = 0;
  int ok = f && text;
  if (ok) {
    len = fread(text, 1, (size_t)sb.st_size + 1, f);
    ok = !ferror(f) && len <= (size_t)sb.st_size;
  }
  if (f) fclose(f);
  if (!ok) {
    free(text);
    fprintf(stderr, "spinifel reconstruct: cannot read the configuration %s\n", path);
    return 1;
  }
  ini_ctx c = {s, path, 0};
  int bad = 0, rc = parse_ini(text, len, &c, &bad);
  free(text);
  if (rc && bad) fprintf(stderr, "spinifel reconstruct: %s:%d: not a valid INI line\n", path, bad);
  return rc;
}

int config_read_text(settings *s, const char *text, const char *name)
{
  const size_t len = strlen(text);
  char *copy = malloc(len + 1);
  if (!copy) {
    fprintf(stderr, "spinifel reconstruct: %s: out of memory\n", name);
    return 1;
  }
  memcpy(copy, text, len + 1);
  ini_ctx c = {s, name, 0};
  int bad = 0, rc = parse_ini(copy, len, &c, &bad);
  free(copy);
  if (rc && bad) fprintf(stderr, "spinifel reconstruct: %s:%d: not a valid INI line\n", name, bad);
  return rc;
}
