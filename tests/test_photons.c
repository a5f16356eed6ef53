/* Sparse photons (EMC layout) and detector files: exact round trips, the byte layout
 * EMC reads, and malformed files giving error codes. */
#include <dirent.h>
#include <float.h>
#include <hdf5.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spinifel/spinifel.h"
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

static int files_in_dir(void)
{
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void remove_all(void)
{
  DIR *d = opendir(dir);
  char p[512];
  for (struct dirent *e; d && (e = readdir(d));)
    if (e->d_name[0] != '.') {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  if (d) closedir(d);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

/* n frames of np pixels: empty frames, a frame of all ones, one of all multi, and random
 * sparse frames with 0, 1 and multi counts (up to 2^24, exact in float). */
static float *make_frames(int64_t n, int64_t np)
{
  float *f = calloc((size_t)(n * np), sizeof(float));
  for (int64_t i = 0; i < n; i++)
    for (int64_t p = 0; p < np; p++) {
      float *v = &f[i * np + p];
      if (i % 7 == 3) continue; /* empty */
      if (i == 5) *v = 1;
      else if (i == 6) *v = (float)(2 + p % 5);
      else {
        const uint64_t r = next() % 100;
        *v = r < 80 ? 0 : r < 93 ? 1 : r < 99 ? (float)(2 + next() % 30) : (float)(1 + next() % (1u << 24));
      }
    }
  return f;
}

static int write_file(const char *path, int64_t n, int64_t np, const float *frames, int64_t batch)
{
  spf_photons_writer *w;
  char msg[256];
  int rc = spf_photons_create(path, np, &w, msg, sizeof msg);
  for (int64_t f = 0; !rc && f < n; f += batch) rc = spf_photons_write(w, n - f < batch ? n - f : batch, frames + f * np, msg, sizeof msg);
  if (rc) {
    spf_photons_abort(w);
    return rc;
  }
  return spf_photons_close(w, msg, sizeof msg);
}

static int32_t *slurp(const char *path, long *n_ints)
{
  FILE *f = fopen(path, "rb");
  fseek(f, 0, SEEK_END);
  const long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  int32_t *a = calloc((size_t)bytes / 4 + 2, 4); /* zero-terminated for text */
  *n_ints = (long)fread(a, 1, (size_t)bytes, f) / 4;
  fclose(f);
  return a;
}

static void spill(const char *path, const void *data, size_t bytes)
{
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, bytes, f);
  fclose(f);
}

static void sparse_frames_round_trip_exactly(void)
{
  const int64_t n = 40, np = 53;
  float *frames = make_frames(n, np), *back = malloc(sizeof(float) * (size_t)(n * np));
  const char *path = tmp_path("a.emc");
  CHECK(write_file(path, n, np, frames, 6) == SPF_OK, "write in batches of 6");
  CHECK(files_in_dir() == 1, "only the file is left (%d entries)", files_in_dir());
  spf_photons *p;
  char msg[256] = "";
  CHECK(spf_photons_open(path, &p, msg, sizeof msg) == SPF_OK, "open: %s", msg);
  CHECK(spf_photons_n_frames(p) == n && spf_photons_n_pixels(p) == np, "sizes");
  CHECK(spf_photons_read(p, 0, n, back, msg, sizeof msg) == SPF_OK, "read all: %s", msg);
  CHECK(!memcmp(frames, back, sizeof(float) * (size_t)(n * np)), "all frames equal the dense originals");
  /* Ranges anywhere, single frames included. */
  const int64_t ranges[4][2] = {{0, 1}, {17, 9}, {39, 1}, {5, 2}};
  for (int r = 0; r < 4; r++) {
    const int64_t a = ranges[r][0], c = ranges[r][1];
    CHECK(spf_photons_read(p, a, c, back, msg, sizeof msg) == SPF_OK &&
              !memcmp(frames + a * np, back, sizeof(float) * (size_t)(c * np)),
          "frames %lld..%lld", (long long)a, (long long)(a + c - 1));
  }
  CHECK(spf_photons_read(p, 38, 3, back, msg, sizeof msg) == SPF_ERR_SIZE, "range past the end");
  spf_photons_close_reader(p);

  /* The bytes EMC reads: header, ones[], multi[], place_ones, place_multi, count_multi. */
  long m;
  int32_t *a = slurp(path, &m);
  int64_t t1 = 0, tm = 0;
  for (int64_t i = 0; i < n; i++) t1 += a[256 + i], tm += a[256 + n + i];
  CHECK(a[0] == n && a[1] == np && a[2] == 0 && a[255] == 0, "header: num_data, num_pix, type 0, zeros");
  CHECK(m == 256 + 2 * n + t1 + 2 * tm, "length: %ld ints", m);
  int ok = 1;
  for (int64_t i = 0, o = 256 + 2 * n, pm = o + t1, cm = pm + tm; i < n; i++) {
    float dense[64] = {0};
    for (int32_t k = 0; k < a[256 + i]; k++) dense[a[o++]] += 1;
    for (int32_t k = 0; k < a[256 + n + i]; k++, pm++, cm++) {
      ok &= a[cm] > 1;
      dense[a[pm]] += (float)a[cm];
    }
    ok &= !memcmp(dense, frames + i * np, sizeof(float) * (size_t)np);
  }
  CHECK(ok, "decoded by hand: the same frames, multi counts > 1");
  CHECK(a[256 + 3] == 0 && a[256 + n + 3] == 0 && a[256 + 5] == np && a[256 + n + 6] == np,
        "empty frame; all pixels one; all pixels multi");
  free(a);
  free(frames);
  free(back);
  remove_all();
}

static void writer_refuses_non_counts_and_keeps_going(void)
{
  const int64_t np = 4;
  const char *path = tmp_path("b.emc");
  spf_photons_writer *w;
  char msg[256] = "";
  CHECK(spf_photons_create(path, np, &w, msg, sizeof msg) == SPF_OK, "create");
  const float good[4] = {0, 1, 2, 0};
  const float bad[5][4] = {{0, -1, 0, 0}, {0, 0.5f, 0, 0}, {NAN, 0, 0, 0}, {0, 0, INFINITY, 0}, {0, 0, 0, 2147483648.0f}};
  CHECK(spf_photons_write(w, 1, good, msg, sizeof msg) == SPF_OK, "a good frame");
  for (int k = 0; k < 5; k++) {
    float two[8];
    memcpy(two, good, sizeof good);
    memcpy(two + 4, bad[k], sizeof bad[k]);
    msg[0] = 0;
    CHECK(spf_photons_write(w, 2, two, msg, sizeof msg) == SPF_ERR_DATA && strstr(msg, "b.emc") &&
              strstr(msg, "frame 2") && !strchr(msg, '\n'),
          "bad value %d refused, one line naming file and frame: %s", k, msg);
  }
  CHECK(spf_photons_write(w, 1, good, msg, sizeof msg) == SPF_OK, "goes on after a refusal");
  CHECK(spf_photons_close(w, msg, sizeof msg) == SPF_OK, "close: %s", msg);
  spf_photons *p;
  float back[8];
  CHECK(spf_photons_open(path, &p, msg, sizeof msg) == SPF_OK && spf_photons_n_frames(p) == 2, "nothing of the refused calls");
  CHECK(spf_photons_read(p, 0, 2, back, msg, sizeof msg) == SPF_OK && !memcmp(back, good, sizeof good) &&
            !memcmp(back + 4, good, sizeof good),
        "the two good frames");
  spf_photons_close_reader(p);
  CHECK(spf_photons_create(path, 0, &w, msg, sizeof msg) == SPF_ERR_SIZE, "zero pixels");
  CHECK(spf_photons_create("/nonexistent/x.emc", 4, &w, msg, sizeof msg) == SPF_ERR_IO && strstr(msg, "/nonexistent"),
        "unwritable place: %s", msg);

  /* Abort leaves nothing; an existing file is untouched until close. */
  remove_all();
  CHECK(spf_photons_create(path, np, &w, msg, sizeof msg) == SPF_OK, "create again");
  spf_photons_write(w, 1, good, msg, sizeof msg);
  CHECK(files_in_dir() == 0, "scratch files are not in the directory");
  spf_photons_abort(w);
  CHECK(files_in_dir() == 0, "abort leaves nothing");
  /* Zero frames: a valid file. */
  CHECK(spf_photons_create(path, np, &w, msg, sizeof msg) == SPF_OK && spf_photons_close(w, msg, sizeof msg) == SPF_OK,
        "zero frames");
  CHECK(spf_photons_open(path, &p, msg, sizeof msg) == SPF_OK && spf_photons_n_frames(p) == 0, "reads zero frames");
  spf_photons_close_reader(p);
  remove_all();
}

/* A small file to break: 3 frames of 6 pixels, listed by hand (ints). */
static int make_small(int32_t *a)
{
  memset(a, 0, 256 * 4);
  a[0] = 3, a[1] = 6, a[2] = 0;
  int32_t body[] = {2, 0, 1, /* ones */ 1, 0, 2, /* multi */ 0, 5, 3, /* place_ones */
                    4, 1, 2, /* place_multi */ 7, 2, 9 /* count_multi */};
  memcpy(a + 256, body, sizeof body);
  return 256 + (int)(sizeof body / 4);
}

static int open_code(const char *path, char *msg, size_t len)
{
  spf_photons *p = NULL;
  msg[0] = 0;
  int rc = spf_photons_open(path, &p, msg, len);
  if (!rc) {
    float out[64];
    rc = spf_photons_read(p, 0, spf_photons_n_frames(p), out, msg, len);
  }
  spf_photons_close_reader(p);
  return rc;
}

static void malformed_photon_files_give_errors(void)
{
  int32_t a[300], b[300];
  const int n = make_small(a);
  const char *path = tmp_path("m.emc");
  char msg[256];
  spill(path, a, 4 * (size_t)n);
  CHECK(open_code(path, msg, sizeof msg) == SPF_OK, "the hand-made file reads: %s", msg);
  spf_photons *p;
  float out[18];
  spf_photons_open(path, &p, msg, sizeof msg);
  spf_photons_read(p, 0, 3, out, msg, sizeof msg);
  const float want[18] = {1, 0, 0, 0, 7, 1, 0, 0, 0, 0, 0, 0, 0, 2, 9, 1, 0, 0};
  CHECK(!memcmp(out, want, sizeof want), "hand-made frames decode as listed");
  spf_photons_close_reader(p);

  struct {
    const char *what;
    int index, value;
    int64_t bytes; /* file length in bytes, -1: whole */
    int want;
  } cases[] = {
      {"truncated by one int", -1, 0, 4 * (n - 1), SPF_ERR_FORMAT},
      {"truncated in the counts", -1, 0, 4 * 258, SPF_ERR_FORMAT},
      {"shorter than the header", -1, 0, 1000, SPF_ERR_FORMAT},
      {"empty", -1, 0, 0, SPF_ERR_FORMAT},
      {"bytes after the lists", -1, 0, 4 * (n + 1), SPF_ERR_FORMAT},
      {"absurd number of frames", 0, 2000000000, -1, SPF_ERR_FORMAT},
      {"negative number of frames", 0, -3, -1, SPF_ERR_FORMAT},
      {"zero pixels", 1, 0, -1, SPF_ERR_FORMAT},
      {"unknown type", 2, 7, -1, SPF_ERR_FORMAT},
      {"more ones than pixels", 256, 7, -1, SPF_ERR_DATA},
      {"negative ones", 257, -1, -1, SPF_ERR_DATA},
      {"huge multi", 259, 2000000000, -1, SPF_ERR_DATA},
      {"pixel index = num_pix", 262, 6, -1, SPF_ERR_DATA},
      {"negative pixel index", 265, -2, -1, SPF_ERR_DATA},
      {"negative count", 269, -4, -1, SPF_ERR_DATA},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    memcpy(b, a, sizeof a);
    if (cases[k].index >= 0) b[cases[k].index] = cases[k].value;
    spill(path, b, cases[k].bytes >= 0 ? (size_t)cases[k].bytes : 4 * (size_t)n);
    const int rc = open_code(path, msg, sizeof msg);
    CHECK(rc == cases[k].want && strstr(msg, "m.emc") && !strchr(msg, '\n'), "%s: code %d, message '%s'",
          cases[k].what, rc, msg);
  }
  CHECK(open_code(tmp_path("none.emc"), msg, sizeof msg) == SPF_ERR_IO, "missing file");
  CHECK(open_code(dir, msg, sizeof msg) == SPF_ERR_IO, "a directory");

  /* Dense types: int32 and float64 frames after the header. */
  int32_t dense[256 + 12] = {2, 6, 1};
  for (int i = 0; i < 12; i++) dense[256 + i] = i;
  spill(path, dense, sizeof dense);
  CHECK(spf_photons_open(path, &p, msg, sizeof msg) == SPF_OK && spf_photons_read(p, 1, 1, out, msg, sizeof msg) == SPF_OK &&
            out[0] == 6 && out[5] == 11,
        "dense int32: %s", msg);
  spf_photons_close_reader(p);
  dense[256 + 7] = -1;
  spill(path, dense, sizeof dense);
  CHECK(open_code(path, msg, sizeof msg) == SPF_ERR_DATA, "dense int32 negative: %s", msg);
  spill(path, dense, sizeof dense - 4);
  CHECK(open_code(path, msg, sizeof msg) == SPF_ERR_FORMAT, "dense int32 truncated: %s", msg);
  unsigned char dd[1024 + 8 * 6] = {0};
  const int32_t hd[3] = {1, 6, 2};
  memcpy(dd, hd, sizeof hd);
  for (int i = 0; i < 6; i++) {
    const double v = i == 4 ? NAN : 0.25 * i;
    memcpy(dd + 1024 + 8 * i, &v, 8);
  }
  spill(path, dd, sizeof dd);
  CHECK(open_code(path, msg, sizeof msg) == SPF_ERR_DATA, "dense float64 NaN: %s", msg);
  remove_all();
}

/* Dragonfly's Python writer's HDF5 variant: num_pix and three lists per frame. */
static void reads_the_hdf5_variant(void)
{
  const char *path = tmp_path("v.h5");
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const int32_t np = 5;
  hsize_t one = 1, three = 3;
  hid_t sp = H5Screate_simple(1, &one, NULL);
  hid_t ds = H5Dcreate2(f, "num_pix", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, &np);
  H5Dclose(ds);
  H5Sclose(sp);
  int32_t o0[] = {0, 3}, o2[] = {4}, pm1[] = {1, 2}, cm1[] = {5, 2};
  hvl_t ones[3] = {{2, o0}, {0, NULL}, {1, o2}}, pm[3] = {{0, NULL}, {2, pm1}, {0, NULL}},
        cm[3] = {{0, NULL}, {2, cm1}, {0, NULL}};
  hvl_t *lists[3] = {ones, pm, cm};
  const char *names[3] = {"place_ones", "place_multi", "count_multi"};
  hid_t ft = H5Tvlen_create(H5T_STD_I32LE), mt = H5Tvlen_create(H5T_NATIVE_INT32);
  sp = H5Screate_simple(1, &three, NULL);
  for (int k = 0; k < 3; k++) {
    ds = H5Dcreate2(f, names[k], ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, lists[k]);
    H5Dclose(ds);
  }
  H5Sclose(sp);
  H5Tclose(ft);
  H5Tclose(mt);
  H5Fclose(f);
  spf_photons *p;
  char msg[256] = "";
  float out[15];
  CHECK(spf_photons_open(path, &p, msg, sizeof msg) == SPF_OK && spf_photons_n_frames(p) == 3 &&
            spf_photons_n_pixels(p) == 5,
        "open: %s", msg);
  const float want[15] = {1, 0, 0, 1, 0, 0, 5, 2, 0, 0, 0, 0, 0, 0, 1};
  CHECK(p && spf_photons_read(p, 0, 3, out, msg, sizeof msg) == SPF_OK && !memcmp(out, want, sizeof want),
        "frames: %s", msg);
  CHECK(p && spf_photons_read(p, 1, 1, out, msg, sizeof msg) == SPF_OK && !memcmp(out, want + 5, 5 * sizeof(float)),
        "one frame from the middle");
  spf_photons_close_reader(p);
  /* The dataset opener points at the missing detector. */
  spf_dataset *d;
  CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_ERR_FORMAT && strstr(msg, "detector"), "hint: %s", msg);
  remove_all();
}

static spf_detector *small_detector(void)
{
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = 9, g.ny = 7, g.pixel_size_m = 3e-4, g.distance_m = 0.05, g.photon_energy_ev = 6000;
  g.beamstop_inv_m = 3.5e7; /* masks the centre and its four neighbours */
  spf_detector *det;
  spf_detector_make(&g, &det);
  return det;
}

/* Both encodings: s back within two roundings (17 significant digits read back exactly),
 * corr exact, masks mapped, the extra values present. */
static void detector_round_trips(void)
{
  spf_detector *det = small_detector();
  const char *names[2] = {"d.det.dat", "d.det.h5"};
  for (int e = 0; e < 2; e++) {
    const char *path = tmp_path(names[e]);
    char msg[256] = "";
    CHECK(spf_photons_detector_write(path, det, msg, sizeof msg) == SPF_OK, "%s: write: %s", names[e], msg);
    spf_photons_detector *d;
    CHECK(spf_photons_detector_read(path, 0, &d, msg, sizeof msg) == SPF_OK, "%s: read: %s", names[e], msg);
    if (!d) continue;
    double worst = 0;
    int masks = 1, corr = 1;
    for (int64_t p = 0; p < det->n_pixels; p++) {
      for (int k = 0; k < 3; k++) {
        const double a = det->s[3 * p + k], b = d->s[3 * p + k];
        if (a != b) worst = fmax(worst, fabs(a - b) / fabs(a));
      }
      corr &= d->corr[p] == det->solid_angle[p] * det->polarization[p];
      masks &= d->mask[p] == det->mask[p] && d->emc_mask[p] == (det->mask[p] ? 0 : 2);
    }
    CHECK(worst <= ldexp(1, -51), "%s: s within 2^-51 relative: %.2e", names[e], worst);
    CHECK(corr && masks, "%s: corr exact, masks 0 / 2", names[e]);
    CHECK(d->nx == 9 && d->ny == 7 && d->wavelength_m == det->wavelength_m && d->pixel_size_m == 3e-4, "%s: extras",
          names[e]);
    CHECK(d->detd_pixels == 0.05 / 3e-4 && d->ewald_rad_voxels == d->detd_pixels, "%s: detd = ewald_rad = D / p",
          names[e]);
    int64_t masked = 0;
    for (int64_t p = 0; p < d->n_pixels; p++) masked += !d->mask[p];
    CHECK(masked == 5, "%s: the beam stop masks 5 pixels (%lld)", names[e], (long long)masked);
    /* EMC's flat layout from the same numbers: qx * detd / (qz + ewald_rad) is the pixel's
     * x in pixels from the beam. */
    double lay = 0;
    for (int64_t p = 0; p < d->n_pixels; p++) {
      const double sc = d->wavelength_m * d->ewald_rad_voxels, qx = d->s[3 * p] * sc, qz = d->s[3 * p + 2] * sc;
      lay = fmax(lay, fabs(qx * d->detd_pixels / (qz + d->ewald_rad_voxels) - ((double)(p % 9) - 4)));
    }
    CHECK(lay < 1e-9, "%s: EMC's 2D layout puts pixels at their columns (%.1e)", names[e], lay);
    spf_photons_detector_free(d);
    /* An explicit wavelength wins: s scales as 1 / lambda. */
    CHECK(spf_photons_detector_read(path, 2 * det->wavelength_m, &d, msg, sizeof msg) == SPF_OK &&
              fabs(d->s[3 * 5] * 2 - det->s[3 * 5]) <= 1e-15 * fabs(det->s[3 * 5]),
          "%s: given wavelength", names[e]);
    spf_photons_detector_free(d);
  }
  spf_detector_free(det);
  remove_all();
}

/* A file as Dragonfly's maker writes it: "%d %.6f %.6f" header, 16 digits, mask 0/1/2. */
static void reads_dragonfly_style_detector(void)
{
  spf_detector *det = small_detector();
  const char *path = tmp_path("df.dat");
  FILE *f = fopen(path, "w");
  const double R = 0.05 / 3e-4, sc = det->wavelength_m * R;
  fprintf(f, "%lld %.6f %.6f\n", (long long)det->n_pixels, R, R);
  for (int64_t p = 0; p < det->n_pixels; p++)
    fprintf(f, "%21.15e %21.15e %21.15e %21.15e %d\n", det->s[3 * p] * sc, det->s[3 * p + 1] * sc,
            det->s[3 * p + 2] * sc, det->solid_angle[p], (int)(p % 3));
  fclose(f);
  spf_photons_detector *d = NULL;
  char msg[256] = "";
  CHECK(spf_photons_detector_read(path, 0, &d, msg, sizeof msg) == SPF_ERR_FORMAT && strstr(msg, "wavelength"),
        "no wavelength: %s", msg);
  CHECK(spf_photons_detector_read(path, det->wavelength_m, &d, msg, sizeof msg) == SPF_OK, "given one: %s", msg);
  if (d) {
    double worst = 0;
    for (int64_t p = 0; p < 3 * det->n_pixels; p++)
      if (det->s[p] != 0) worst = fmax(worst, fabs(d->s[p] - det->s[p]) / fabs(det->s[p]));
    /* ewald_rad printed to 1e-6 of 166.67 is the largest rounding. */
    CHECK(worst < 1e-8, "s from a 6-decimal header: %.1e", worst);
    CHECK(d->mask[0] && d->mask[1] && !d->mask[2] && d->emc_mask[1] == 1, "mask 0, 1 valid; 2 masked");
    CHECK(d->nx == det->n_pixels && d->ny == 1 && isnan(d->pixel_size_m), "no shape, no pixel size");
  }
  spf_photons_detector_free(d);
  /* The same with the wavelength appended to its first line. */
  long m;
  char *text = (char *)slurp(path, &m), *nl = strchr(text, '\n');
  f = fopen(path, "w");
  fprintf(f, "%.*s wavelength_m=%.17g%s", (int)(nl - text), text, det->wavelength_m, nl);
  fclose(f);
  free(text);
  CHECK(spf_photons_detector_read(path, 0, &d, msg, sizeof msg) == SPF_OK, "appended: %s", msg);
  spf_photons_detector_free(d);
  spf_detector_free(det);
  remove_all();
}

static int det_code(const char *text, char *msg, size_t len)
{
  const char *path = tmp_path("bad.dat");
  spill(path, text, strlen(text));
  spf_photons_detector *d = NULL;
  msg[0] = 0;
  int rc = spf_photons_detector_read(path, 1e-10, &d, msg, len);
  spf_photons_detector_free(d);
  return rc;
}

static void malformed_detector_files_give_errors(void)
{
  char msg[256];
  const char *line = "1 2 3 0.5 0\n";
  char two[256];
  snprintf(two, sizeof two, "2 100 100\n%s%s", line, line);
  CHECK(det_code(two, msg, sizeof msg) == SPF_OK, "a good two-pixel file: %s", msg);
  struct {
    const char *what, *text;
    int want;
  } cases[] = {
      {"old style header", "2\n1 2 3 0.5 0\n1 2 3 0.5 0\n", SPF_ERR_FORMAT},
      {"missing pixel", "2 100 100\n1 2 3 0.5 0\n", SPF_ERR_FORMAT},
      {"short line", "2 100 100\n1 2 3 0.5 0\n1 2 3\n", SPF_ERR_FORMAT},
      {"extra pixel", "1 100 100\n1 2 3 0.5 0\n1 2 3 0.5 0\n", SPF_ERR_FORMAT},
      {"mask not an integer", "1 100 100\n1 2 3 0.5 1.5\n", SPF_ERR_FORMAT},
      {"negative mask", "1 100 100\n1 2 3 0.5 -1\n", SPF_ERR_FORMAT},
      {"NaN q", "1 100 100\n1 nan 3 0.5 0\n", SPF_ERR_DATA},
      {"infinite corr", "1 100 100\n1 2 3 inf 0\n", SPF_ERR_DATA},
      {"absurd pixel count", "2000000000 100 100\n1 2 3 0.5 0\n", SPF_ERR_FORMAT},
      {"zero ewald_rad", "1 100 0\n1 2 3 0.5 0\n", SPF_ERR_FORMAT},
      {"text, not numbers", "hello world\n", SPF_ERR_FORMAT},
      {"empty", "", SPF_ERR_FORMAT},
      {"no newline in 1024 characters", "\x01\x02\x03", SPF_ERR_FORMAT},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const int rc = det_code(cases[k].text, msg, sizeof msg);
    CHECK(rc == cases[k].want && strstr(msg, "bad.dat") && !strchr(msg, '\n'), "%s: code %d, '%s'", cases[k].what, rc,
          msg);
  }
  spf_photons_detector *d;
  CHECK(spf_photons_detector_read(tmp_path("none.dat"), 0, &d, msg, sizeof msg) == SPF_ERR_IO, "missing file");
  remove_all();
}

/* The dataset view: the images and geometry the rest of the program reads. */
static void dataset_reads_emc_with_its_detector(void)
{
  spf_detector *det = small_detector();
  const int64_t n = 11, np = det->n_pixels;
  float *frames = make_frames(n, np), *back = malloc(sizeof(float) * (size_t)(n * np));
  const char *ph = tmp_path("x.emc"), *dp = tmp_path("x.det.dat");
  char msg[256] = "";
  CHECK(write_file(ph, n, np, frames, 4) == SPF_OK && spf_photons_detector_write(dp, det, msg, sizeof msg) == SPF_OK,
        "write both");
  spf_dataset *d = NULL;
  CHECK(spf_dataset_open_emc(ph, dp, &d, msg, sizeof msg) == SPF_OK, "open: %s", msg);
  if (d) {
    CHECK(d->h.n_images == n && d->n_pixels == np && d->h.nx == 9 && d->h.ny == 7 && !d->h.has_orientations, "header");
    CHECK(fabs(d->h.photon_energy_ev - 6000) < 1e-6 && fabs(d->h.distance_m - 0.05) < 1e-15, "energy and distance");
    CHECK(spf_dataset_read_images(d, 2, 9, back, NULL, msg, sizeof msg) == SPF_OK &&
              !memcmp(back, frames + 2 * np, sizeof(float) * (size_t)(9 * np)),
          "images 2..10: %s", msg);
    int same = 1;
    for (int64_t p = 0; p < np; p++) same &= d->mask[p] == det->mask[p];
    CHECK(same, "mask");
    spf_dataset_close_reader(d);
  }
  CHECK(spf_dataset_open(ph, &d, msg, sizeof msg) == SPF_ERR_FORMAT && strstr(msg, "detector"), "hint: %s", msg);
  /* Another detector's pixel count. */
  spf_detector_geometry g = det->g;
  g.nx = 8;
  spf_detector *other;
  spf_detector_make(&g, &other);
  spf_photons_detector_write(dp, other, msg, sizeof msg);
  CHECK(spf_dataset_open_emc(ph, dp, &d, msg, sizeof msg) == SPF_ERR_FORMAT && strstr(msg, "x.emc"),
        "pixel counts differ: %s", msg);
  spf_detector_free(other);
  spf_detector_free(det);
  free(frames);
  free(back);
  remove_all();
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/spf_test_phXXXXXX");
  if (!mkdtemp(dir)) return 1;
  RUN_TEST(sparse_frames_round_trip_exactly);
  RUN_TEST(writer_refuses_non_counts_and_keeps_going);
  RUN_TEST(malformed_photon_files_give_errors);
  RUN_TEST(reads_the_hdf5_variant);
  RUN_TEST(detector_round_trips);
  RUN_TEST(reads_dragonfly_style_detector);
  RUN_TEST(malformed_detector_files_give_errors);
  RUN_TEST(dataset_reads_emc_with_its_detector);
  rmdir(dir);
  return test_summary();
}
