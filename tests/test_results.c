/* Checkpoints, results files and the intensity of an autocorrelation. */
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spinifel/error.h"
#include "spinifel/phasing.h"
#include "spinifel/random.h"
#include "spinifel/results.h"
#include "testing.h"

static char dir[64];

static const char *tmp_path(const char *name)
{
  static char p[4][128];
  static int k = 0;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
  return p[k];
}

static int file_exists(const char *path)
{
  struct stat s;
  return stat(path, &s) == 0;
}

/* Entries in the temp directory other than . and .. (leftover temp files show up here). */
static int dir_entries(void)
{
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* A run state with every array allocated (1 on success). */
static int state_alloc(spf_run_state *s, int64_t m, int64_t n)
{
  memset(s, 0, sizeof *s);
  s->M = m;
  s->n_images = n;
  const size_t n3 = (size_t)(m * m * m);
  s->orientations = malloc(sizeof(double) * 4 * (size_t)n);
  s->best = malloc(sizeof(int64_t) * (size_t)n);
  s->best_dist = malloc(sizeof(float) * (size_t)n);
  s->gap = malloc(sizeof(float) * (size_t)n);
  s->fluence = malloc(sizeof(double) * (size_t)n);
  s->entropy = malloc(sizeof(float) * (size_t)n);
  s->rho = malloc(sizeof(double) * n3);
  s->u = malloc(sizeof(double) * n3);
  s->u_model = malloc(sizeof(double) * n3);
  s->support = malloc(n3);
  s->rho_next = malloc(sizeof(double) * n3);
  s->support_next = malloc(n3);
  return s->orientations && s->best && s->best_dist && s->gap && s->fluence && s->entropy && s->rho && s->u &&
         s->u_model && s->support && s->rho_next && s->support_next;
}

static void state_free(spf_run_state *s)
{
  free(s->orientations);
  free(s->best);
  free(s->best_dist);
  free(s->gap);
  free(s->fluence);
  free(s->entropy);
  free(s->rho);
  free(s->u);
  free(s->u_model);
  free(s->support);
  free(s->rho_next);
  free(s->support_next);
}

static void state_fill(spf_run_state *s, uint64_t seed)
{
  spf_rng g;
  spf_rng_seed(&g, seed, 0);
  const int64_t n = s->n_images, n3 = s->M * s->M * s->M;
  s->generation = 3 + (int)seed;
  s->have_model = 1;
  s->n_references = 1000 + (int64_t)seed * 37;
  for (int64_t i = 0; i < 4 * n; i++) s->orientations[i] = spf_rng_uniform(&g) - 0.5;
  for (int64_t i = 0; i < n; i++) {
    s->best[i] = i % 5 == 0 ? -1 : (int64_t)(spf_rng_uniform(&g) * 1e12);
    s->best_dist[i] = i % 7 == 0 ? NAN : (float)spf_rng_uniform(&g);
    s->gap[i] = i % 7 == 0 ? NAN : (float)(spf_rng_uniform(&g) * 1e-3);
    s->fluence[i] = 0.5 + spf_rng_uniform(&g);
    s->entropy[i] = i % 3 == 0 ? NAN : (float)(spf_rng_uniform(&g) * 9);
  }
  for (int64_t i = 0; i < n3; i++) {
    s->rho[i] = spf_rng_uniform(&g) * 1e-300; /* subnormal-adjacent values must survive too */
    s->u[i] = spf_rng_uniform(&g) - 0.5;
    s->u_model[i] = -spf_rng_uniform(&g) * 1e300;
    s->support[i] = (uint8_t)(spf_rng_uniform(&g) * 256);
    s->rho_next[i] = spf_rng_uniform(&g) + 2;
    s->support_next[i] = (uint8_t)(spf_rng_uniform(&g) * 256);
  }
}

static int state_equal(const spf_run_state *a, const spf_run_state *b)
{
  const size_t n = (size_t)a->n_images, n3 = (size_t)(a->M * a->M * a->M);
  return a->generation == b->generation && a->have_model == b->have_model && a->n_references == b->n_references &&
         !memcmp(a->orientations, b->orientations, sizeof(double) * 4 * n) &&
         !memcmp(a->best, b->best, sizeof(int64_t) * n) && !memcmp(a->best_dist, b->best_dist, sizeof(float) * n) &&
         !memcmp(a->gap, b->gap, sizeof(float) * n) && !memcmp(a->fluence, b->fluence, sizeof(double) * n) &&
         !memcmp(a->entropy, b->entropy, sizeof(float) * n) && !memcmp(a->rho, b->rho, sizeof(double) * n3) &&
         !memcmp(a->u, b->u, sizeof(double) * n3) && !memcmp(a->u_model, b->u_model, sizeof(double) * n3) &&
         !memcmp(a->support, b->support, n3) && !memcmp(a->rho_next, b->rho_next, sizeof(double) * n3) &&
         !memcmp(a->support_next, b->support_next, n3);
}

static void checkpoint_round_trip_is_bit_exact(void)
{
  spf_run_state a, b;
  CHECK(state_alloc(&a, 6, 11) && state_alloc(&b, 6, 11), "alloc");
  state_fill(&a, 1);
  const char *path = tmp_path("ck.h5");
  const char *config = "[run]\nM = 6\nseed = 42\nname = \"x y\"\n";
  char msg[256] = "", back[256];
  CHECK(spf_checkpoint_write(path, &a, config, msg, sizeof msg) == SPF_OK, "write: %s", msg);
  b.generation = -7;
  b.have_model = -7;
  CHECK(spf_checkpoint_read(path, &b, back, sizeof back, msg, sizeof msg) == SPF_OK, "read: %s", msg);
  CHECK(state_equal(&a, &b), "every field bit-exact");
  CHECK(!strcmp(back, config), "config text '%s'", back);
  /* config_out NULL, and a short buffer: truncated, NUL-terminated. */
  CHECK(spf_checkpoint_read(path, &b, NULL, 0, msg, sizeof msg) == SPF_OK, "read without config: %s", msg);
  char small[5];
  CHECK(spf_checkpoint_read(path, &b, small, sizeof small, msg, sizeof msg) == SPF_OK && !strcmp(small, "[run"),
        "short config buffer: '%s'", small);
  CHECK(dir_entries() == 1, "only the checkpoint in the directory (no temp left), %d entries", dir_entries());

  /* A config above the 64 KiB of a compact HDF5 attribute. */
  const size_t big = 200000;
  char *cfg = malloc(big + 1), *cfg_back = malloc(big + 1);
  for (size_t i = 0; i < big; i++) cfg[i] = (char)('a' + i % 26);
  cfg[big] = 0;
  CHECK(spf_checkpoint_write(path, &a, cfg, msg, sizeof msg) == SPF_OK, "write big config: %s", msg);
  CHECK(spf_checkpoint_read(path, &b, cfg_back, big + 1, msg, sizeof msg) == SPF_OK && !strcmp(cfg, cfg_back),
        "big config round trip: %s", msg);
  free(cfg);
  free(cfg_back);
  unlink(path);
  state_free(&a);
  state_free(&b);
}

/* A checkpoint from before the phasing schedule and the automatic reference count: the
   next phasing starts from rho and support, and the count reads as 0 (not chosen). */
static void older_checkpoint_reads_with_defaults(void)
{
  spf_run_state a, b;
  CHECK(state_alloc(&a, 4, 3) && state_alloc(&b, 4, 3), "alloc");
  state_fill(&a, 11);
  state_fill(&b, 12);
  const char *path = tmp_path("old.h5");
  char msg[256] = "";
  CHECK(spf_checkpoint_write(path, &a, "c", msg, sizeof msg) == SPF_OK, "write: %s", msg);
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(f >= 0 && H5Ldelete(f, "rho_next", H5P_DEFAULT) >= 0 && H5Ldelete(f, "support_next", H5P_DEFAULT) >= 0 &&
            H5Adelete(f, "n_references") >= 0,
        "strip the new fields");
  H5Fclose(f);
  CHECK(spf_checkpoint_read(path, &b, NULL, 0, msg, sizeof msg) == SPF_OK, "read: %s", msg);
  CHECK(!memcmp(b.rho_next, a.rho, sizeof(double) * 64) && !memcmp(b.support_next, a.support, 64),
        "the next phasing starts from rho and support");
  CHECK(b.n_references == 0, "no count chosen: %lld", (long long)b.n_references);
  CHECK(!memcmp(b.rho, a.rho, sizeof(double) * 64) && b.generation == a.generation, "the rest as written");
  /* A count that is not a whole number is refused. */
  f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t at = H5Acreate2(f, "n_references", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  const double bad = 12.5;
  H5Awrite(at, H5T_NATIVE_DOUBLE, &bad);
  H5Aclose(at);
  H5Sclose(sp);
  H5Fclose(f);
  CHECK(spf_checkpoint_read(path, &b, NULL, 0, msg, sizeof msg) == SPF_ERR_DATA && strstr(msg, "n_references"),
        "a fractional count: %s", msg);
  unlink(path);
  state_free(&a);
  state_free(&b);
}

/* The same content written twice, seconds apart, is the same bytes (no times in any
 * object header, the root group's included). */
static int same_bytes(const char *a, const char *b)
{
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa && fb, ca, cb;
  while (same && (ca = fgetc(fa)) != EOF) same = ca == (cb = fgetc(fb));
  same = same && fgetc(fb) == EOF;
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

static void same_content_gives_the_same_bytes(void)
{
  spf_run_state a;
  CHECK(state_alloc(&a, 5, 4), "alloc");
  state_fill(&a, 13);
  char msg[256] = "", p1[128], p2[128], r1[128], r2[128];
  snprintf(p1, sizeof p1, "%s", tmp_path("t1.h5"));
  snprintf(p2, sizeof p2, "%s", tmp_path("t2.h5"));
  snprintf(r1, sizeof r1, "%s", tmp_path("r1.h5"));
  snprintf(r2, sizeof r2, "%s", tmp_path("r2.h5"));
  CHECK(spf_checkpoint_write(p1, &a, "c", msg, sizeof msg) == SPF_OK &&
            spf_results_write(r1, 5, a.rho, a.u, 4, a.orientations, a.best_dist, a.gap, NULL, NULL, 1.5, NULL, 3, "c", msg,
                              sizeof msg) == SPF_OK,
        "first writes: %s", msg);
  sleep(1); /* HDF5 keeps times in seconds */
  CHECK(spf_checkpoint_write(p2, &a, "c", msg, sizeof msg) == SPF_OK &&
            spf_results_write(r2, 5, a.rho, a.u, 4, a.orientations, a.best_dist, a.gap, NULL, NULL, 1.5, NULL, 3, "c", msg,
                              sizeof msg) == SPF_OK,
        "second writes: %s", msg);
  CHECK(same_bytes(p1, p2), "checkpoint: the same bytes");
  CHECK(same_bytes(r1, r2), "results: the same bytes");
  unlink(p1), unlink(p2), unlink(r1), unlink(r2);
  state_free(&a);
}

/* The kept references (spf_run_state_track): written when kept, read back bit-exact;
 * absent from a checkpoint, a state that keeps them gets none (-1, 0); a checkpoint with
 * another count is refused; copy_images carries them between states keeping the same. */
static void kept_references_round_trip(void)
{
  spf_run_state a, b, c;
  int rc = spf_run_state_make(5, 9, &a);
  if (!rc) rc = spf_run_state_make(5, 9, &b);
  if (!rc) rc = spf_run_state_make(5, 9, &c);
  CHECK(rc == SPF_OK, "make");
  if (rc) return;
  state_fill(&a, 2);
  CHECK(spf_run_state_track(&a, 0) == SPF_ERR_ARG && spf_run_state_track(&a, 1025) == SPF_ERR_ARG, "k out of range");
  CHECK(spf_run_state_track(&a, 4) == SPF_OK && spf_run_state_track(&b, 4) == SPF_OK && spf_run_state_track(&c, 3) == SPF_OK,
        "track");
  CHECK(a.posterior_ref[0] == -1 && a.posterior_p[0] == 0, "made as none");
  spf_rng g;
  spf_rng_seed(&g, 7, 0);
  for (int64_t e = 0; e < 9 * 4; e++) {
    a.posterior_ref[e] = e % 4 == 3 ? -1 : (int32_t)(spf_rng_uniform(&g) * 3240);
    a.posterior_p[e] = e % 4 == 3 ? 0.0f : (float)spf_rng_uniform(&g);
  }
  const char *path = tmp_path("kept.h5");
  char msg[256] = "";
  CHECK(spf_checkpoint_write(path, &a, "c", msg, sizeof msg) == SPF_OK, "write: %s", msg);
  CHECK(spf_checkpoint_read(path, &b, NULL, 0, msg, sizeof msg) == SPF_OK, "read: %s", msg);
  CHECK(!memcmp(a.posterior_ref, b.posterior_ref, sizeof(int32_t) * 36) &&
        !memcmp(a.posterior_p, b.posterior_p, sizeof(float) * 36), "kept references bit-exact");
  CHECK(spf_checkpoint_read(path, &c, NULL, 0, msg, sizeof msg) == SPF_ERR_DATA, "another count refused");
  /* copy_images: the same count is copied, another is not touched. */
  spf_run_state_copy_images(&b, 2, &a, 5, 1);
  CHECK(!memcmp(b.posterior_ref + 8, a.posterior_ref + 20, sizeof(int32_t) * 4), "copied with the image");
  spf_run_state_free(&c);
  CHECK(spf_run_state_make(5, 9, &c) == SPF_OK && spf_run_state_track(&c, 3) == SPF_OK, "make again");
  spf_run_state_copy_images(&c, 0, &a, 0, 9);
  CHECK(c.posterior_ref[0] == -1 && c.posterior_p[0] == 0, "another count is not copied");
  /* Without kept references in the file: none. */
  spf_run_state plain;
  CHECK(spf_run_state_make(5, 9, &plain) == SPF_OK, "make plain");
  state_fill(&plain, 3);
  CHECK(spf_checkpoint_write(path, &plain, "c", msg, sizeof msg) == SPF_OK, "write plain: %s", msg);
  CHECK(spf_checkpoint_read(path, &b, NULL, 0, msg, sizeof msg) == SPF_OK, "read plain: %s", msg);
  int none = 1;
  for (int64_t e = 0; e < 36; e++) none &= b.posterior_ref[e] == -1 && b.posterior_p[e] == 0;
  CHECK(none, "a checkpoint without kept references gives none");
  remove(path);
  spf_run_state_free(&plain);
  spf_run_state_free(&a);
  spf_run_state_free(&b);
  spf_run_state_free(&c);
}

static void checkpoint_with_other_sizes_is_refused(void)
{
  spf_run_state a, b, c;
  CHECK(state_alloc(&a, 5, 8) && state_alloc(&b, 7, 8) && state_alloc(&c, 5, 9), "alloc");
  state_fill(&a, 2);
  state_fill(&b, 3);
  state_fill(&c, 4);
  const char *path = tmp_path("ck.h5");
  char msg[256] = "";
  CHECK(spf_checkpoint_write(path, &a, "cfg", msg, sizeof msg) == SPF_OK, "write: %s", msg);
  spf_run_state b0 = b;
  msg[0] = 0;
  CHECK(spf_checkpoint_read(path, &b, NULL, 0, msg, sizeof msg) == SPF_ERR_DATA, "other M");
  CHECK(strstr(msg, path) && strstr(msg, "M = 5") && strstr(msg, "M = 7") && !strchr(msg, '\n'),
        "one line naming the file and both sizes: %s", msg);
  CHECK(b.generation == b0.generation && b.have_model == b0.have_model, "state untouched");
  msg[0] = 0;
  CHECK(spf_checkpoint_read(path, &c, NULL, 0, msg, sizeof msg) == SPF_ERR_DATA, "other n_images");
  CHECK(strstr(msg, path) && strstr(msg, "8 images") && strstr(msg, "9 images"), "message: %s", msg);

  /* A checkpoint missing one dataset, or with one of another shape. */
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(f >= 0 && H5Ldelete(f, "gap", H5P_DEFAULT) >= 0, "delete gap");
  hsize_t d[1] = {3};
  hid_t sp = H5Screate_simple(1, d, NULL);
  hid_t ds = H5Dcreate2(f, "gap", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dclose(ds);
  H5Sclose(sp);
  H5Fclose(f);
  spf_run_state a2;
  CHECK(state_alloc(&a2, 5, 8), "alloc");
  state_fill(&a2, 9);
  msg[0] = 0;
  CHECK(spf_checkpoint_read(path, &a2, NULL, 0, msg, sizeof msg) == SPF_ERR_DATA, "damaged checkpoint");
  CHECK(strstr(msg, "'gap' has shape (3), expected (8)"), "names the dataset of the wrong shape: %s", msg);
  spf_run_state a3;
  CHECK(state_alloc(&a3, 5, 8), "alloc");
  state_fill(&a3, 9);
  CHECK(state_equal(&a2, &a3), "a refused file leaves the arrays untouched");
  f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  H5Ldelete(f, "gap", H5P_DEFAULT);
  H5Fclose(f);
  CHECK(spf_checkpoint_read(path, &a2, NULL, 0, msg, sizeof msg) == SPF_ERR_DATA && strstr(msg, "'gap' is missing"),
        "names the missing dataset: %s", msg);
  state_free(&a2);
  state_free(&a3);

  /* Not a checkpoint, not HDF5, absent. */
  CHECK(spf_results_write(path, 5, a.rho, a.u, 8, a.orientations, NULL, NULL, NULL, NULL, 1.0, NULL, 1, "c", msg, sizeof msg) ==
            SPF_OK,
        "results file: %s", msg);
  CHECK(spf_checkpoint_read(path, &a, NULL, 0, msg, sizeof msg) == SPF_ERR_DATA && strstr(msg, "checkpoint"),
        "a results file is not a checkpoint: %s", msg);
  FILE *t = fopen(path, "w");
  fputs("not hdf5\n", t);
  fclose(t);
  CHECK(spf_checkpoint_read(path, &a, NULL, 0, msg, sizeof msg) == SPF_ERR_IO && strstr(msg, path),
        "text file: %s", msg);
  unlink(path);
  CHECK(spf_checkpoint_read(path, &a, NULL, 0, msg, sizeof msg) == SPF_ERR_IO && strstr(msg, path),
        "absent file: %s", msg);
  state_free(&a);
  state_free(&b);
  state_free(&c);
}

static void failed_write_leaves_no_file(void)
{
  spf_run_state a;
  CHECK(state_alloc(&a, 5, 4), "alloc");
  state_fill(&a, 5);
  char path[160], msg[256] = "";
  snprintf(path, sizeof path, "%s/no_such_dir/ck.h5", dir);
  CHECK(spf_checkpoint_write(path, &a, "cfg", msg, sizeof msg) == SPF_ERR_IO, "missing directory");
  CHECK(strstr(msg, path) && !strchr(msg, '\n'), "message names the path: %s", msg);
  CHECK(spf_results_write(path, 5, a.rho, a.u, 4, a.orientations, a.best_dist, a.gap, a.fluence, a.entropy, 1.0, NULL, 1, "c", msg,
                          sizeof msg) == SPF_ERR_IO && strstr(msg, path),
        "results, missing directory: %s", msg);
  CHECK(!file_exists(path) && dir_entries() == 0, "nothing written");

  /* The rename fails (path is a directory): the temp file goes, the directory stays. */
  const char *sub = tmp_path("sub");
  CHECK(mkdir(sub, 0700) == 0, "mkdir");
  CHECK(spf_checkpoint_write(sub, &a, "cfg", msg, sizeof msg) == SPF_ERR_IO && strstr(msg, sub),
        "rename onto a directory: %s", msg);
  struct stat s;
  CHECK(stat(sub, &s) == 0 && S_ISDIR(s.st_mode) && dir_entries() == 1, "directory intact, no temp file left");
  rmdir(sub);

  /* Bad arguments. */
  CHECK(spf_checkpoint_write(NULL, &a, "c", NULL, 0) == SPF_ERR_NULL, "NULL path");
  CHECK(spf_checkpoint_write(tmp_path("x.h5"), &a, NULL, NULL, 0) == SPF_ERR_NULL, "NULL config");
  double *keep = a.u_model;
  a.u_model = NULL;
  CHECK(spf_checkpoint_write(tmp_path("x.h5"), &a, "c", NULL, 0) == SPF_ERR_NULL, "NULL array");
  CHECK(spf_checkpoint_read(tmp_path("x.h5"), &a, NULL, 0, NULL, 0) == SPF_ERR_NULL, "read, NULL array");
  a.u_model = keep;
  a.M = 0;
  CHECK(spf_checkpoint_write(tmp_path("x.h5"), &a, "c", NULL, 0) == SPF_ERR_SIZE, "M = 0");
  CHECK(spf_checkpoint_read(tmp_path("x.h5"), &a, NULL, 0, NULL, 0) == SPF_ERR_SIZE, "read, M = 0");
  a.M = 5;
  a.n_images = 0;
  CHECK(spf_checkpoint_write(tmp_path("x.h5"), &a, "c", NULL, 0) == SPF_ERR_SIZE, "no images");
  a.n_images = 4;
  CHECK(spf_results_write(tmp_path("x.h5"), 4, a.rho, a.u, 4, a.orientations, NULL, NULL, NULL, NULL, 1, NULL, 1, "c", NULL, 0) ==
            SPF_ERR_SIZE,
        "results, even M");
  CHECK(spf_results_write(tmp_path("x.h5"), 5, a.rho, NULL, 4, a.orientations, NULL, NULL, NULL, NULL, 1, NULL, 1, "c", NULL, 0) ==
            SPF_ERR_NULL,
        "results, NULL u");
  CHECK(dir_entries() == 0, "still nothing written");
  state_free(&a);
}

static void checkpoint_over_an_existing_one_replaces_it(void)
{
  spf_run_state a, b, r;
  CHECK(state_alloc(&a, 5, 6) && state_alloc(&b, 5, 6) && state_alloc(&r, 5, 6), "alloc");
  state_fill(&a, 6);
  state_fill(&b, 7);
  const char *path = tmp_path("ck.h5");
  char msg[256] = "", cfg[64];
  CHECK(spf_checkpoint_write(path, &a, "first", msg, sizeof msg) == SPF_OK, "first: %s", msg);
  CHECK(spf_checkpoint_write(path, &b, "second", msg, sizeof msg) == SPF_OK, "second: %s", msg);
  CHECK(spf_checkpoint_read(path, &r, cfg, sizeof cfg, msg, sizeof msg) == SPF_OK, "read: %s", msg);
  CHECK(state_equal(&b, &r) && !state_equal(&a, &r) && !strcmp(cfg, "second"), "the second state, config '%s'",
        cfg);
  CHECK(dir_entries() == 1, "one file, no temp left");
  unlink(path);
  state_free(&a);
  state_free(&b);
  state_free(&r);
}

/* ---- results file, read back with plain HDF5 ---- */

static int read_set(hid_t f, const char *name, hid_t mem_type, void *buf, int rank, const hsize_t *dims)
{
  if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return 0;
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(ds);
  hsize_t d[4] = {0};
  int ok = H5Sget_simple_extent_ndims(sp) == rank;
  if (ok) H5Sget_simple_extent_dims(sp, d, NULL);
  for (int k = 0; ok && k < rank; k++) ok = d[k] == dims[k];
  ok = ok && H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
  H5Sclose(sp);
  H5Dclose(ds);
  return ok;
}

static void results_round_trip(void)
{
  const int64_t m = 7, n = 9, n3 = m * m * m;
  spf_run_state a;
  CHECK(state_alloc(&a, m, n), "alloc");
  state_fill(&a, 8);
  double *vol = malloc(sizeof(double) * (size_t)n3), *want = malloc(sizeof(double) * (size_t)n3);
  double q[4 * 9];
  float fb[9];
  const char *path = tmp_path("res.h5");
  char msg[256] = "";
  CHECK(spf_intensity_from_autocorrelation(m, a.u, want) == SPF_OK, "intensity");
  const spf_intensity_grid grid = {.M = m, .oversampling = 1.25, .s_max_inv_angstrom = 0.1, .voxel_inv_angstrom = 0.05,
                                   .corner_inv_angstrom = 0.11, .edge_inv_angstrom = 0.08,
                                   .beamstop_inv_angstrom = 0.01};
  for (int with = 1; with >= 0; with--) {
    CHECK(spf_results_write(path, m, a.rho, a.u, n, a.orientations, with ? a.best_dist : NULL, with ? a.gap : NULL, NULL, NULL,
                            1.75, with ? &grid : NULL, 12, "key = value", msg, sizeof msg) == SPF_OK,
          "write (with scores %d): %s", with, msg);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "open");
    const hsize_t dv[3] = {m, m, m}, dq[2] = {n, 4}, dn[1] = {n};
    CHECK(read_set(f, "intensity", H5T_NATIVE_DOUBLE, vol, 3, dv) && !memcmp(vol, want, sizeof(double) * n3),
          "intensity");
    CHECK(read_set(f, "autocorrelation", H5T_NATIVE_DOUBLE, vol, 3, dv) && !memcmp(vol, a.u, sizeof(double) * n3),
          "autocorrelation");
    CHECK(read_set(f, "density", H5T_NATIVE_DOUBLE, vol, 3, dv) && !memcmp(vol, a.rho, sizeof(double) * n3),
          "density");
    CHECK(read_set(f, "orientations", H5T_NATIVE_DOUBLE, q, 2, dq) && !memcmp(q, a.orientations, sizeof q),
          "orientations");
    if (with) {
      CHECK(read_set(f, "best_distance", H5T_NATIVE_FLOAT, fb, 1, dn) && !memcmp(fb, a.best_dist, sizeof fb),
            "best_distance");
      CHECK(read_set(f, "confidence", H5T_NATIVE_FLOAT, fb, 1, dn) && !memcmp(fb, a.gap, sizeof fb), "confidence");
    } else {
      CHECK(H5Lexists(f, "best_distance", H5P_DEFAULT) == 0 && H5Lexists(f, "confidence", H5P_DEFAULT) == 0,
            "scores omitted");
    }
    double voxel = 0;
    int gens = 0;
    hid_t at = H5Aopen(f, "voxel_angstrom", H5P_DEFAULT);
    CHECK(at >= 0 && H5Aread(at, H5T_NATIVE_DOUBLE, &voxel) >= 0 && voxel == 1.75, "voxel_angstrom %g", voxel);
    H5Aclose(at);
    at = H5Aopen(f, "generations", H5P_DEFAULT);
    CHECK(at >= 0 && H5Aread(at, H5T_NATIVE_INT, &gens) >= 0 && gens == 12, "generations %d", gens);
    H5Aclose(at);
    at = H5Aopen(f, "config", H5P_DEFAULT);
    hid_t t = H5Aget_type(at);
    char cfg[64] = "";
    CHECK(H5Tget_class(t) == H5T_STRING && H5Tget_size(t) < sizeof cfg && H5Aread(at, t, cfg) >= 0 &&
              !strcmp(cfg, "key = value"),
          "config '%s'", cfg);
    H5Tclose(t);
    H5Aclose(at);
    H5Fclose(f);
    /* The intensity and its grid as fsc --intensity reads them. */
    double *in = NULL;
    spf_intensity_grid g;
    char unit[256];
    CHECK(spf_intensity_read(path, &in, &g, unit, sizeof unit, msg, sizeof msg) == SPF_OK, "read: %s", msg);
    CHECK(in && !memcmp(in, want, sizeof(double) * n3) && g.M == m, "intensity read back");
    if (with) {
      CHECK(!memcmp(&g, &grid, sizeof g), "grid attributes read back");
      CHECK(strstr(unit, "photons per pixel") != NULL, "unit '%s'", unit);
    } else {
      CHECK(g.voxel_inv_angstrom == 1.0 / (m * 1.75), "voxel from voxel_angstrom: %g", g.voxel_inv_angstrom);
      CHECK(isnan(g.s_max_inv_angstrom) && isnan(g.oversampling) && isnan(g.corner_inv_angstrom) &&
                isnan(g.edge_inv_angstrom) && isnan(g.beamstop_inv_angstrom) && !unit[0],
            "no grid: NAN figures, no unit");
    }
    free(in);
  }
  spf_intensity_grid bad = grid;
  bad.M = m + 2;
  CHECK(spf_results_write(path, m, a.rho, a.u, n, a.orientations, NULL, NULL, NULL, NULL, 1.75, &bad, 12, "c", msg, sizeof msg) ==
            SPF_ERR_SIZE,
        "a grid of another size is refused");
  CHECK(dir_entries() == 1, "one file, no temp left");
  unlink(path);
  free(vol);
  free(want);
  state_free(&a);
}

static void intensity_file_round_trip_and_bad_files(void)
{
  const int64_t m = 5, n3 = m * m * m;
  double vol[125];
  for (int64_t i = 0; i < n3; i++) vol[i] = 0.5 * (double)i - 3;
  const spf_intensity_grid grid = {.M = m, .oversampling = 1, .s_max_inv_angstrom = 0.125, .voxel_inv_angstrom = 0.05,
                                   .corner_inv_angstrom = 0.125, .edge_inv_angstrom = 0.09,
                                   .beamstop_inv_angstrom = 0.002};
  const char *path = tmp_path("truth.h5");
  char msg[256] = "", unit[64];
  CHECK(spf_intensity_write(path, &grid, vol, "electrons^2", "test", msg, sizeof msg) == SPF_OK, "write: %s", msg);
  double *in = NULL;
  spf_intensity_grid g;
  CHECK(spf_intensity_read(path, &in, &g, unit, sizeof unit, msg, sizeof msg) == SPF_OK, "read: %s", msg);
  CHECK(in && !memcmp(in, vol, sizeof vol) && !memcmp(&g, &grid, sizeof g) && !strcmp(unit, "electrons^2"),
        "round trip");
  free(in);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t at = H5Aopen(f, "format", H5P_DEFAULT);
  char fmt[64] = "";
  hid_t t = H5Aget_type(at);
  CHECK(at >= 0 && H5Tget_size(t) < sizeof fmt && H5Aread(at, t, fmt) >= 0 && !strcmp(fmt, "spinifel intensity 1"),
        "format '%s'", fmt);
  H5Tclose(t);
  H5Aclose(at);
  H5Fclose(f);
  CHECK(dir_entries() == 1, "one file, no temp left");

  CHECK(spf_intensity_write(tmp_path("no/such/dir.h5"), &grid, vol, "u", "g", msg, sizeof msg) == SPF_ERR_IO,
        "unwritable path");
  CHECK(dir_entries() == 1, "failed write leaves nothing");
  CHECK(spf_intensity_read(tmp_path("none.h5"), &in, &g, NULL, 0, msg, sizeof msg) == SPF_ERR_IO && !in,
        "missing file");
  FILE *txt = fopen(tmp_path("text.h5"), "w");
  fputs("not hdf5\n", txt);
  fclose(txt);
  CHECK(spf_intensity_read(tmp_path("text.h5"), &in, &g, NULL, 0, msg, sizeof msg) == SPF_ERR_FORMAT &&
            strstr(msg, "not an HDF5 file"),
        "not HDF5: %s", msg);
  /* A checkpoint has no intensity; a non-cubic intensity is refused. */
  spf_run_state a;
  CHECK(state_alloc(&a, 3, 2), "alloc");
  state_fill(&a, 3);
  CHECK(spf_checkpoint_write(tmp_path("ck.h5"), &a, "c", msg, sizeof msg) == SPF_OK, "checkpoint");
  CHECK(spf_intensity_read(tmp_path("ck.h5"), &in, &g, NULL, 0, msg, sizeof msg) == SPF_ERR_FORMAT &&
            strstr(msg, "'intensity'"),
        "no intensity: %s", msg);
  state_free(&a);
  f = H5Fcreate(tmp_path("flat.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hsize_t d2[3] = {5, 5, 3};
  hid_t sp = H5Screate_simple(3, d2, NULL);
  hid_t ds = H5Dcreate2(f, "intensity", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, vol);
  H5Dclose(ds);
  H5Sclose(sp);
  H5Fclose(f);
  CHECK(spf_intensity_read(tmp_path("flat.h5"), &in, &g, NULL, 0, msg, sizeof msg) == SPF_ERR_FORMAT &&
            strstr(msg, "(5, 5, 3)"),
        "non-cubic: %s", msg);
  const char *names[] = {"truth.h5", "text.h5", "ck.h5", "flat.h5"};
  for (int i = 0; i < 4; i++) unlink(tmp_path(names[i]));
}

/* ---- intensity against direct sums ---- */

static int64_t cidx(int64_t m, int64_t r3, int64_t r2, int64_t r1)
{
  const int64_t c = (m - 1) / 2;
  return ((r3 + c) * m + (r2 + c)) * m + (r1 + c);
}

static void intensity_matches_a_direct_sum(void)
{
  for (int64_t m = 5; m <= 7; m += 2) {
    const int64_t n3 = m * m * m, c = (m - 1) / 2;
    double *u = malloc(sizeof(double) * (size_t)n3), *in = malloc(sizeof(double) * (size_t)n3);
    spf_rng g;
    spf_rng_seed(&g, 10 + (uint64_t)m, 0);
    for (int64_t i = 0; i < n3; i++) u[i] = spf_rng_uniform(&g) - 0.3;
    /* Symmetrise: u(r) = u(-r), the centred index a maps to -r at 2c - a. */
    for (int64_t r3 = -c; r3 <= c; r3++)
      for (int64_t r2 = -c; r2 <= c; r2++)
        for (int64_t r1 = -c; r1 <= c; r1++) u[cidx(m, -r3, -r2, -r1)] = u[cidx(m, r3, r2, r1)];
    CHECK(spf_intensity_from_autocorrelation(m, u, in) == SPF_OK, "M = %lld", (long long)m);
    double err = 0, norm = 0;
    for (int64_t k3 = -c; k3 <= c; k3++)
      for (int64_t k2 = -c; k2 <= c; k2++)
        for (int64_t k1 = -c; k1 <= c; k1++) {
          double s = 0;
          for (int64_t r3 = -c; r3 <= c; r3++)
            for (int64_t r2 = -c; r2 <= c; r2++)
              for (int64_t r1 = -c; r1 <= c; r1++)
                s += u[cidx(m, r3, r2, r1)] * cos(2 * M_PI * (double)(k3 * r3 + k2 * r2 + k1 * r1) / (double)m);
          err = fmax(err, fabs(in[cidx(m, k3, k2, k1)] - s));
          norm = fmax(norm, fabs(s));
        }
    CHECK(err <= 1e-12 * norm, "M = %lld: max error %g of max %g", (long long)m, err, norm);
    free(u);
    free(in);
  }
  double x[27], y[27];
  CHECK(spf_intensity_from_autocorrelation(3, NULL, y) == SPF_ERR_NULL, "NULL u");
  CHECK(spf_intensity_from_autocorrelation(4, x, y) == SPF_ERR_SIZE, "even M");
  CHECK(spf_intensity_from_autocorrelation(0, x, y) == SPF_ERR_SIZE, "M = 0");
}

static void intensity_of_an_autocorrelation_is_the_power_spectrum(void)
{
  for (int64_t m = 5; m <= 7; m += 2) {
    const int64_t n3 = m * m * m, c = (m - 1) / 2;
    double *rho = malloc(sizeof(double) * (size_t)n3), *u = malloc(sizeof(double) * (size_t)n3),
           *in = malloc(sizeof(double) * (size_t)n3);
    spf_rng g;
    spf_rng_seed(&g, 20 + (uint64_t)m, 0);
    for (int64_t i = 0; i < n3; i++) rho[i] = spf_rng_uniform(&g);
    CHECK(spf_autocorrelation(m, rho, u, 1) == SPF_OK, "autocorrelation");
    CHECK(spf_intensity_from_autocorrelation(m, u, in) == SPF_OK, "intensity");
    double err = 0, norm = 0;
    for (int64_t k3 = -c; k3 <= c; k3++)
      for (int64_t k2 = -c; k2 <= c; k2++)
        for (int64_t k1 = -c; k1 <= c; k1++) {
          /* |FFT rho|^2 does not depend on where rho's origin is. */
          double re = 0, im = 0;
          for (int64_t i3 = 0; i3 < m; i3++)
            for (int64_t i2 = 0; i2 < m; i2++)
              for (int64_t i1 = 0; i1 < m; i1++) {
                double ph = -2 * M_PI * (double)(k3 * i3 + k2 * i2 + k1 * i1) / (double)m;
                re += rho[(i3 * m + i2) * m + i1] * cos(ph);
                im += rho[(i3 * m + i2) * m + i1] * sin(ph);
              }
          const double p = re * re + im * im;
          err = fmax(err, fabs(in[cidx(m, k3, k2, k1)] - p));
          norm = fmax(norm, p);
        }
    CHECK(err <= 1e-10 * norm, "M = %lld: max error %g of max %g", (long long)m, err, norm);
    free(rho);
    free(u);
    free(in);
  }
}

int main(void)
{
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  snprintf(dir, sizeof dir, "/tmp/spf_results_XXXXXX");
  if (!mkdtemp(dir)) return 1;
  RUN_TEST(checkpoint_round_trip_is_bit_exact);
  RUN_TEST(checkpoint_with_other_sizes_is_refused);
  RUN_TEST(kept_references_round_trip);
  RUN_TEST(older_checkpoint_reads_with_defaults);
  RUN_TEST(same_content_gives_the_same_bytes);
  RUN_TEST(failed_write_leaves_no_file);
  RUN_TEST(checkpoint_over_an_existing_one_replaces_it);
  RUN_TEST(results_round_trip);
  RUN_TEST(intensity_file_round_trip_and_bad_files);
  RUN_TEST(intensity_matches_a_direct_sum);
  RUN_TEST(intensity_of_an_autocorrelation_is_the_power_spectrum);
  CHECK(rmdir(dir) == 0, "temp directory empty at the end");
  return test_summary();
}
