/* HDF5 datasets: round trips, range reads, bad files. */
#include <hdf5.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spinifel/spinifel.h"
#include "spinifel/dataset.h"
#include "spinifel/detector.h"
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

/* Image i's orientation: (i, i + 0.1, i + 0.2, i + 0.3) normalised. */
static void quat_of(int64_t i, double *q)
{
  double nn = 0;
  for (int k = 0; k < 4; k++) q[k] = (double)i + 0.1 * k, nn += q[k] * q[k];
  for (int k = 0; k < 4; k++) q[k] /= sqrt(nn);
}

/* A small valid file: n images of 6 x 5 pixels, image i pixel p = i * 100 + p. */
static int write_small(const char *path, int64_t n, int with_quats)
{
  spf_dataset_header h = {.n_images = n, .ny = 6, .nx = 5, .photon_energy_ev = 6000, .distance_m = 0.1,
                          .pixel_size_m = 3e-4, .has_orientations = with_quats, .compression = 4};
  snprintf(h.generator, sizeof h.generator, "test seed=1");
  spf_dataset_writer *w;
  int rc = spf_dataset_create(path, &h, &w, NULL, 0);
  if (rc) return rc;
  double s[90];
  uint8_t mask[30];
  for (int p = 0; p < 30; p++) {
    for (int k = 0; k < 3; k++) s[3 * p + k] = p * 1e8 + k;
    mask[p] = p != 7;
  }
  spf_dataset_write_geometry(w, s, mask);
  float img[3 * 30];
  double q[12];
  for (int64_t f = 0; f < n; f += 3) {
    int64_t c = n - f < 3 ? n - f : 3;
    for (int64_t i = 0; i < c; i++) {
      for (int p = 0; p < 30; p++) img[i * 30 + p] = (float)((f + i) * 100 + p);
      quat_of(f + i, q + 4 * i);
    }
    rc = spf_dataset_write_images(w, f, c, img, q);
    if (rc) {
      spf_dataset_abort(w);
      return rc;
    }
  }
  return spf_dataset_close(w, NULL, 0);
}

static void write_then_read_back_exactly(void)
{
  const char *path = tmp_path("a.h5");
  CHECK(write_small(path, 10, 1) == SPF_OK, "write");
  spf_dataset *d;
  char msg[256] = "";
  CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_OK, "open: %s", msg);
  CHECK(d->h.n_images == 10 && d->h.ny == 6 && d->h.nx == 5 && d->h.has_orientations, "header sizes");
  CHECK(d->h.photon_energy_ev == 6000 && d->h.distance_m == 0.1 && d->h.pixel_size_m == 3e-4, "attributes");
  CHECK(!strcmp(d->h.generator, "test seed=1"), "generator text '%s'", d->h.generator);
  int ok = 1;
  for (int p = 0; p < 30; p++) {
    for (int k = 0; k < 3; k++) ok &= d->s[3 * p + k] == p * 1e8 + k;
    ok &= d->mask[p] == (p != 7);
  }
  CHECK(ok, "geometry round trip");
  float img[4 * 30];
  double q[16];
  CHECK(spf_dataset_read_images(d, 4, 4, img, q, msg, sizeof msg) == SPF_OK, "read range: %s", msg);
  ok = 1;
  for (int i = 0; i < 4; i++) {
    for (int p = 0; p < 30; p++) ok &= img[i * 30 + p] == (float)((4 + i) * 100 + p);
    double want[4];
    quat_of(4 + i, want);
    ok &= !memcmp(q + 4 * i, want, sizeof want);
  }
  CHECK(ok, "images 4..7 and their orientations");
  spf_dataset_close_reader(d);
  /* Orientations that are not unit quaternions (NaN, zero) are refused, naming the row. */
  const double bad_q[2][4] = {{NAN, 0, 0, 1}, {0, 0, 0, 0}};
  for (int b = 0; b < 2; b++) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "orientations", H5P_DEFAULT);
    hsize_t start[2] = {5, 0}, cnt[2] = {1, 4};
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(2, cnt, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, bad_q[b]);
    H5Sclose(ms), H5Sclose(fs), H5Dclose(ds), H5Fclose(f);
    CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_OK, "open");
    CHECK(spf_dataset_read_images(d, 4, 4, img, q, msg, sizeof msg) == SPF_ERR_DATA && strstr(msg, "row 5") &&
              strstr(msg, "not a unit quaternion"),
          "bad orientation %d: %s", b, msg);
    CHECK(spf_dataset_read_images(d, 4, 4, img, NULL, msg, sizeof msg) == SPF_OK, "images without orientations");
    spf_dataset_close_reader(d);
  }
  CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_OK, "open");
  CHECK(spf_dataset_read_images(d, 8, 3, img, NULL, msg, sizeof msg) == SPF_ERR_SIZE, "range past the end");
  spf_dataset_close_reader(d);
  unlink(path);
}

static void incomplete_writer_leaves_no_file(void)
{
  const char *path = tmp_path("b.h5");
  spf_dataset_header h = {.n_images = 5, .ny = 2, .nx = 2, .photon_energy_ev = 6000, .distance_m = 0.1,
                          .pixel_size_m = 1e-4};
  spf_dataset_writer *w;
  spf_dataset_create(path, &h, &w, NULL, 0);
  float img[8] = {0};
  CHECK(spf_dataset_write_images(w, 0, 2, img, NULL) == SPF_OK, "two images");
  CHECK(spf_dataset_write_images(w, 3, 1, img, NULL) == SPF_ERR_SIZE, "out of order refused");
  char msg[256];
  CHECK(spf_dataset_close(w, msg, sizeof msg) == SPF_ERR_SIZE, "close incomplete: %s", msg);
  CHECK(access(path, F_OK) != 0, "no file left");
  struct stat st;
  char tmp[160];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  CHECK(stat(tmp, &st) != 0, "no temporary left");
}

/* Files with bad content, made with raw HDF5 calls. */
static void write_raw(const char *path, const char *name, int rank, const hsize_t *dims, const float *data)
{
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(ds);
  H5Sclose(sp);
  H5Fclose(f);
}

static void bad_files_give_clear_errors(void)
{
  spf_dataset *d;
  char msg[256];
  /* NaN, infinite and negative intensities name the image. */
  const char *path = tmp_path("c.h5");
  const float bad[3] = {NAN, INFINITY, -1};
  for (int b = 0; b < 3; b++) {
    write_small(path, 4, 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "intensities", H5P_DEFAULT);
    hsize_t start[4] = {2, 0, 3, 1}, cnt[4] = {1, 1, 1, 1};
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(4, cnt, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &bad[b]);
    H5Sclose(ms), H5Sclose(fs), H5Dclose(ds), H5Fclose(f);
    CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_OK, "open");
    float img[4 * 30];
    int rc = spf_dataset_read_images(d, 0, 4, img, NULL, msg, sizeof msg);
    CHECK(rc == SPF_ERR_DATA && strstr(msg, "image 2") && strstr(msg, "intensities"), "bad value %g: %s",
          (double)bad[b], msg);
    spf_dataset_close_reader(d);
  }
  /* Missing intensities; wrong shape. */
  hsize_t dims3[3] = {2, 3, 4};
  float zeros[24] = {0};
  write_raw(path, "other", 3, dims3, zeros);
  CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_ERR_FORMAT && strstr(msg, "intensities"), "missing: %s", msg);
  write_raw(path, "intensities", 3, dims3, zeros);
  CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_ERR_FORMAT && strstr(msg, "(N, 1, ny, nx)"), "shape: %s", msg);
  /* Declared but never written (contiguous), written in part (chunked), no images: refused
   * at open, before anything is allocated for them. */
  {
    const hsize_t huge[4] = {1000000000, 1, 3, 4};
    hid_t hf = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(4, huge, NULL);
    hid_t ds = H5Dcreate2(hf, "intensities", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds), H5Sclose(sp), H5Fclose(hf);
    CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_ERR_DATA && strstr(msg, "declares 1000000000 images") &&
              strstr(msg, "no data"),
          "never written: %s", msg);
    const hsize_t four[4] = {4, 1, 3, 4}, chunk[4] = {1, 1, 3, 4}, one[4] = {1, 1, 3, 4};
    hf = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    sp = H5Screate_simple(4, four, NULL);
    hid_t cp = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(cp, 4, chunk);
    ds = H5Dcreate2(hf, "intensities", H5T_IEEE_F32LE, sp, H5P_DEFAULT, cp, H5P_DEFAULT);
    hid_t ms = H5Screate_simple(4, one, NULL);
    const hsize_t start[4] = {0, 0, 0, 0};
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, one, NULL);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, zeros);
    H5Sclose(ms), H5Pclose(cp), H5Dclose(ds), H5Sclose(sp), H5Fclose(hf);
    CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_ERR_DATA && strstr(msg, "only 1 of its 4 chunks"),
          "written in part: %s", msg);
    const hsize_t none[4] = {0, 1, 3, 4};
    write_raw(path, "intensities", 4, none, zeros);
    CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_ERR_DATA && strstr(msg, "holds no images"),
          "no images: %s", msg);
  }
  /* Pixel positions at one point, or in the wrong unit (1e25 1/m), or every pixel masked. */
  for (int b = 0; b < 3; b++) {
    write_small(path, 2, 0);
    hid_t hf = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (b < 2) {
      hid_t ds = H5Dopen2(hf, "pixel_position_reciprocal", H5P_DEFAULT);
      double planes[90];
      for (int k = 0; k < 90; k++) planes[k] = b == 0 ? 5e8 : (k % 30) * 1e25;
      H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, planes);
      H5Dclose(ds);
    } else {
      hid_t ds = H5Dopen2(hf, "mask", H5P_DEFAULT);
      uint8_t none[30] = {0};
      H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, none);
      H5Dclose(ds);
    }
    H5Fclose(hf);
    const char *want[3] = {"same point", "not in 1/m", "every pixel is masked"};
    CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_ERR_DATA && strstr(msg, want[b]), "pixels %d: %s", b,
          msg);
  }
  /* Empty, text, truncated, missing. */
  FILE *f = fopen(path, "w");
  fclose(f);
  CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_ERR_FORMAT, "empty file: %s", msg);
  f = fopen(path, "w");
  fputs("hello\n", f);
  fclose(f);
  CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_ERR_FORMAT, "text file: %s", msg);
  const char *full = tmp_path("d.h5");
  write_small(full, 20, 1);
  struct stat st;
  stat(full, &st);
  FILE *in = fopen(full, "rb"), *out = fopen(path, "wb");
  char *buf = malloc((size_t)st.st_size);
  size_t got = fread(buf, 1, (size_t)st.st_size, in);
  fwrite(buf, 1, got / 2, out);
  fclose(in), fclose(out), free(buf);
  int rc = spf_dataset_open(path, &d, msg, sizeof msg);
  if (rc == SPF_OK) {
    float img[20 * 30];
    rc = spf_dataset_read_images(d, 0, 20, img, NULL, msg, sizeof msg);
    spf_dataset_close_reader(d);
  }
  CHECK(rc != SPF_OK, "truncated file gives an error: %s", msg);
  CHECK(spf_dataset_open("/nonexistent/x.h5", &d, msg, sizeof msg) == SPF_ERR_IO, "missing file");
  unlink(path);
  unlink(full);
}

static void reads_cxi_files(void)
{
  const char *path = tmp_path("e.cxi");
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const char *groups[] = {"/entry_1", "/entry_1/data_1", "/entry_1/instrument_1", "/entry_1/instrument_1/detector_1",
                          "/entry_1/instrument_1/source_1"};
  for (int i = 0; i < 5; i++) H5Gclose(H5Gcreate2(f, groups[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  hsize_t dims[3] = {3, 4, 6};
  float data[72];
  for (int i = 0; i < 72; i++) data[i] = (float)i;
  hid_t sp = H5Screate_simple(3, dims, NULL);
  hid_t ds = H5Dcreate2(f, "/entry_1/data_1/data", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(ds);
  H5Sclose(sp);
  const char *names[3] = {"/entry_1/instrument_1/detector_1/distance", "/entry_1/instrument_1/detector_1/x_pixel_size",
                          "/entry_1/instrument_1/source_1/energy"};
  const double vals[3] = {0.1, 3e-4, 6000 / 6.241509074e18};
  for (int i = 0; i < 3; i++) {
    sp = H5Screate(H5S_SCALAR);
    ds = H5Dcreate2(f, names[i], H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &vals[i]);
    H5Dclose(ds);
    H5Sclose(sp);
  }
  H5Fclose(f);
  spf_dataset *d;
  char msg[256] = "";
  CHECK(spf_dataset_open(path, &d, msg, sizeof msg) == SPF_OK, "open CXI: %s", msg);
  CHECK(d->is_cxi && d->h.n_images == 3 && d->h.ny == 4 && d->h.nx == 6, "CXI sizes");
  CHECK(fabs(d->h.photon_energy_ev - 6000) < 1e-6, "energy from joules: %g eV", d->h.photon_energy_ev);
  float img[24];
  CHECK(spf_dataset_read_images(d, 1, 1, img, NULL, msg, sizeof msg) == SPF_OK && img[0] == 24 && img[23] == 47,
        "CXI image 1");
  /* The geometry is the detector module's for the same settings. */
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = 6, g.ny = 4, g.pixel_size_m = 3e-4, g.distance_m = 0.1, g.photon_energy_ev = 6000;
  spf_detector *det;
  spf_detector_make(&g, &det);
  double worst = 0;
  for (int i = 0; i < 72; i++) worst = fmax(worst, fabs(d->s[i] - det->s[i]));
  CHECK(worst < 1e-3, "CXI reciprocal positions: %.2e 1/m", worst);
  spf_detector_free(det);
  spf_dataset_close_reader(d);
  unlink(path);
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/spf_test_dsXXXXXX");
  if (!mkdtemp(dir)) return 1;
  RUN_TEST(write_then_read_back_exactly);
  RUN_TEST(incomplete_writer_leaves_no_file);
  RUN_TEST(bad_files_give_clear_errors);
  RUN_TEST(reads_cxi_files);
  rmdir(dir);
  return test_summary();
}
