/* Pictures: canvas drawing, PNG round trip (checked with plain libpng), the composite
 * pictures (exist, right size, neither blank nor all dark), and error handling.
 * SPINIFEL_TEST_KEEP=1 keeps the pictures (the directory is printed) for a look. */
#include "spinifel/picture.h"

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <unistd.h>

#include "spinifel/error.h"
#include "testing.h"

static char dir_[256];

static const char *file(const char *name)
{
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", dir_, name);
  return buf;
}

/* One pixel of an 8-bit RGB PNG, read with libpng's classic API (independent of spf_png_inspect). */
static int read_pixel(const char *path, int64_t x, int64_t y, uint8_t out[3])
{
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  uint8_t *volatile row = NULL;
  volatile int rc = -1;
  if (!setjmp(png_jmpbuf(png))) {
    png_init_io(png, f);
    png_read_info(png, info);
    if (png_get_bit_depth(png, info) == 8 && png_get_color_type(png, info) == PNG_COLOR_TYPE_RGB &&
        (int64_t)png_get_image_width(png, info) > x && (int64_t)png_get_image_height(png, info) > y) {
      row = malloc(png_get_rowbytes(png, info));
      for (int64_t j = 0; j <= y; j++) png_read_row(png, row, NULL);
      memcpy(out, row + 3 * x, 3);
      rc = 0;
    }
  }
  png_destroy_read_struct(&png, &info, NULL);
  free(row);
  fclose(f);
  return rc;
}

static void test_canvas_png_round_trip(void)
{
  const uint8_t red[3] = {220, 20, 30}, blue[3] = {0, 0, 200};
  spf_canvas c;
  CHECK(spf_canvas_make(200, 100, &c) == SPF_OK, "make");
  /* Text: width as documented, pixels only inside its box. */
  const int64_t w = spf_canvas_text(&c, 10, 10, "Hi 20 A", 2, blue);
  CHECK(w == (7 * 6 - 1) * 2, "text width %lld", (long long)w);
  CHECK(spf_canvas_text(NULL, 0, 0, "abc", 1, blue) == 17, "measure without a canvas");
  int64_t inside = 0, outside = 0;
  for (int64_t j = 0; j < c.h; j++)
    for (int64_t i = 0; i < c.w; i++) {
      const int ink = c.rgb[3 * (j * c.w + i) + 2] == 200;
      if (i >= 10 && i < 10 + w && j >= 10 && j < 24) inside += ink;
      else outside += ink;
    }
  CHECK(inside > 50 && outside == 0, "text pixels inside %lld outside %lld", (long long)inside, (long long)outside);
  spf_canvas_rect(&c, 0, 0, c.w, c.h, (const uint8_t[3]){255, 255, 255});
  /* A rectangle partly off the canvas: 30 x 30 pixels remain. */
  spf_canvas_rect(&c, 170, 70, 100, 100, red);
  spf_canvas_rect(&c, 170, 70, -5, 10, blue); /* empty: nothing drawn */
  spf_canvas_line(&c, NAN, 0, 10, 10, 3, blue); /* non-finite: nothing drawn */
  spf_canvas_line(&c, -1e30, 5, -1e29, 5, 3, blue); /* off canvas: nothing drawn */
  char msg[256] = "";
  CHECK(spf_png_write(file("rect.png"), &c, msg, sizeof msg) == SPF_OK, "write: %s", msg);
  spf_canvas_free(&c);
  spf_canvas_free(&c); /* twice is harmless */
  int64_t pw = 0, ph = 0;
  double frac = -1;
  CHECK(spf_png_inspect(file("rect.png"), &pw, &ph, &frac, msg, sizeof msg) == SPF_OK, "inspect: %s", msg);
  CHECK(pw == 200 && ph == 100, "size %lld x %lld", (long long)pw, (long long)ph);
  CHECK(fabs(frac - 30.0 * 30.0 / 20000.0) < 1e-9, "nonwhite fraction %.12f", frac);
  uint8_t px[3] = {0, 0, 0};
  CHECK(read_pixel(file("rect.png"), 185, 90, px) == 0, "libpng read");
  CHECK(px[0] == 220 && px[1] == 20 && px[2] == 30, "pixel %d %d %d", px[0], px[1], px[2]);
  CHECK(read_pixel(file("rect.png"), 169, 90, px) == 0 && px[0] == 255 && px[1] == 255, "left of the rectangle");

  /* A line and an image on a canvas (spot checks of the primitives). */
  CHECK(spf_canvas_make(64, 64, &c) == SPF_OK, "make");
  spf_canvas_line(&c, 0, 10.5, 63, 10.5, 1, red);
  CHECK(c.rgb[3 * (10 * 64 + 32)] == 220 && c.rgb[3 * (11 * 64 + 32)] == 255, "horizontal line on row 10");
  const double v[4] = {0, 1, NAN, 0.5};
  spf_canvas_image(&c, 0, 20, 4, v, 2, 2, 0, 1, 0);
  CHECK(c.rgb[3 * (21 * 64 + 1)] == 0 && c.rgb[3 * (21 * 64 + 5)] == 255, "grayscale black, white");
  CHECK(c.rgb[3 * (25 * 64 + 1)] == 128 && c.rgb[3 * (25 * 64 + 5)] == 128, "NaN grey, mid grey");
  spf_canvas_image(&c, 0, 40, 1, v, 2, 1, 0, 1, 1);
  const uint8_t *lo = c.rgb + 3 * (40 * 64), *hi = c.rgb + 3 * (40 * 64 + 1);
  CHECK(lo[2] > lo[1] && hi[0] > 200 && hi[1] > 200 && hi[2] < 80, "viridis ends: blue-purple to yellow");
  spf_canvas_free(&c);
}

static void check_picture(const char *name, int64_t min_w, int64_t min_h, double min_ink)
{
  int64_t w = 0, h = 0;
  double frac = -1;
  char msg[256] = "";
  CHECK(access(file(name), F_OK) == 0, "%s exists", name);
  CHECK(spf_png_inspect(file(name), &w, &h, &frac, msg, sizeof msg) == SPF_OK, "%s", msg);
  CHECK(w >= min_w && h >= min_h, "%s: %lld x %lld", name, (long long)w, (long long)h);
  CHECK(frac > min_ink && frac < 0.95, "%s: nonwhite fraction %.3f", name, frac);
}

/* An asymmetric blob: three Gaussians of different sizes and heights. */
static double *blob(int64_t M)
{
  double *rho = malloc(sizeof(double) * (size_t)(M * M * M));
  const double c[3][4] = {{-3, 0, 1, 2.5}, {3, 2, -1, 1.8}, {0, -4, 3, 1.2}}, h = (M - 1) / 2.0;
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < M; x++) {
        double s = 0;
        for (int k = 0; k < 3; k++) {
          const double dx = x - h - c[k][0], dy = y - h - c[k][1], dz = z - h - c[k][2];
          s += (k + 1) * exp(-(dx * dx + dy * dy + dz * dz) / (2 * c[k][3] * c[k][3]));
        }
        rho[(z * M + y) * M + x] = s;
      }
  return rho;
}

static void test_density(void)
{
  const int64_t M = 21;
  double *rho = blob(M);
  char msg[256] = "";
  int rc = spf_picture_density(file("density.png"), M, rho, 2.0, "blob, M=21, 2 A voxels", msg, sizeof msg);
  CHECK(rc == SPF_OK, "density: %d %s", rc, msg);
  check_picture("density.png", 3 * 160, 2 * 160, 0.05);
  CHECK(spf_picture_density(file("x.png"), 20, rho, 2.0, NULL, msg, sizeof msg) == SPF_ERR_SIZE, "even M");
  CHECK(spf_picture_density(file("x.png"), M, rho, 0, NULL, msg, sizeof msg) == SPF_ERR_ARG, "zero voxel");
  free(rho);
}

static void test_intensity(void)
{
  const int64_t M = 31;
  double *in = malloc(sizeof(double) * (size_t)(M * M * M));
  const double h = (M - 1) / 2.0;
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < M; x++) {
        const double q2 = (x - h) * (x - h) + (y - h) * (y - h) + (z - h) * (z - h);
        in[(z * M + y) * M + x] = 1e4 * exp(-q2 / 30) * (1.2 + cos(0.9 * (x - h) + 0.4 * (y - h) - 0.7 * (z - h)));
      }
  in[0] = -1; /* clipped to the floor */
  const double rings[3] = {20, 10, 5};
  char msg[256] = "";
  int rc = spf_picture_intensity(file("intensity.png"), M, in, 1.5, 3, rings, "intensity, rings at 20, 10, 5 A",
                                 msg, sizeof msg);
  CHECK(rc == SPF_OK, "intensity: %d %s", rc, msg);
  check_picture("intensity.png", 3 * 160, 160, 0.05);
  CHECK(spf_picture_intensity(file("x.png"), M, in, 1.5, 3, NULL, NULL, msg, sizeof msg) == SPF_ERR_NULL,
        "rings NULL");
  free(in);
}

static void test_plot(void)
{
  enum { N = 60 };
  double x[N], fsc[N], fsc2[N], err[N];
  for (int i = 0; i < N; i++) {
    x[i] = 0.25 * i / (N - 1);
    fsc[i] = 1 / (1 + exp((x[i] - 0.12) / 0.015));
    fsc2[i] = i == 30 ? NAN : 0.98 / (1 + exp((x[i] - 0.09) / 0.02));
    err[i] = 2.0 * pow(0.8, i) + 1e-3;
  }
  spf_plot p = {.title = "Fourier shell correlation", .xlabel = "spatial frequency (1/A)", .ylabel = "FSC",
                .n_points = N, .n_series = 2, .x = x, .y = {fsc, fsc2}, .names = {"half maps", "vs model"},
                .n_hlines = 2, .hlines = {0.5, 0.143}, .n_vlines = 1, .vlines = {0.12}};
  char msg[256] = "";
  int rc = spf_picture_plot(file("fsc.png"), &p, msg, sizeof msg);
  CHECK(rc == SPF_OK, "plot: %d %s", rc, msg);
  check_picture("fsc.png", 720, 480, 0.02); /* lines on white */
  int64_t w = 0, h = 0;
  CHECK(spf_png_inspect(file("fsc.png"), &w, &h, NULL, msg, sizeof msg) == SPF_OK && w == 720 && h == 480,
        "plot size %lld x %lld", (long long)w, (long long)h);
  spf_plot q = {.title = "error", .xlabel = "iteration", .ylabel = "R", .n_points = N, .n_series = 1, .x = x,
                .y = {err}, .names = {"R factor"}, .log_y = 1};
  rc = spf_picture_plot(file("log.png"), &q, msg, sizeof msg);
  CHECK(rc == SPF_OK, "log plot: %d %s", rc, msg);
  check_picture("log.png", 720, 480, 0.02);
  q.n_series = 9;
  CHECK(spf_picture_plot(file("x.png"), &q, msg, sizeof msg) == SPF_ERR_SIZE, "9 series");
  q.n_series = 1, q.ymin = 1, q.ymax = 0.5;
  CHECK(spf_picture_plot(file("x.png"), &q, msg, sizeof msg) == SPF_ERR_ARG, "ymax < ymin");
}

static void test_gallery(void)
{
  const int n = 3;
  const int64_t nx = 64, ny = 48;
  float *l = malloc(sizeof(float) * (size_t)(n * nx * ny)), *r = malloc(sizeof(float) * (size_t)(n * nx * ny));
  for (int k = 0; k < n; k++)
    for (int64_t j = 0; j < ny; j++)
      for (int64_t i = 0; i < nx; i++) {
        const double q2 = (i - 32.0) * (i - 32.0) + (j - 24.0) * (j - 24.0);
        const double model = 50 * exp(-q2 / 200) * (1 + cos(0.3 * (i + k * j)));
        r[(k * ny + j) * nx + i] = (float)model;
        l[(k * ny + j) * nx + i] = (float)floor(model + 0.5 * ((i * 7 + j * 13 + k) % 5)); /* "photon counts" */
      }
  const char *caps[3] = {"image 0: 1234 photons", NULL, "image 2, a long caption that will not fit at scale 2"};
  char msg[256] = "";
  int rc = spf_picture_gallery(file("gallery.png"), n, nx, ny, l, r, caps, msg, sizeof msg);
  CHECK(rc == SPF_OK, "gallery: %d %s", rc, msg);
  check_picture("gallery.png", 3 * 2 * 64, 64, 0.05);
  CHECK(spf_picture_gallery(file("x.png"), 17, nx, ny, l, r, NULL, msg, sizeof msg) == SPF_ERR_SIZE, "17 pairs");
  free(l);
  free(r);
}

static void test_errors(void)
{
  spf_canvas c;
  CHECK(spf_canvas_make(0, 10, &c) == SPF_ERR_SIZE && c.rgb == NULL, "zero width");
  CHECK(spf_canvas_make(10, 20001, &c) == SPF_ERR_SIZE, "too tall");
  CHECK(spf_canvas_make(10, 10, NULL) == SPF_ERR_NULL, "NULL canvas");
  CHECK(spf_canvas_make(10, 10, &c) == SPF_OK, "make");
  char bad[300], msg[256] = "";
  snprintf(bad, sizeof bad, "%s/no/such/dir/a.png", dir_);
  CHECK(spf_png_write(bad, &c, msg, sizeof msg) == SPF_ERR_IO, "write into a missing directory");
  CHECK(strstr(msg, bad) != NULL && strchr(msg, '\n') == NULL, "message names the file: %s", msg);
  CHECK(access(bad, F_OK) != 0, "no file left");
  CHECK(spf_png_write(NULL, &c, msg, sizeof msg) == SPF_ERR_NULL, "NULL path");
  CHECK(spf_png_write(file("x.png"), NULL, msg, sizeof msg) == SPF_ERR_NULL, "NULL canvas");
  spf_canvas_free(&c);
  CHECK(spf_png_inspect(bad, NULL, NULL, NULL, msg, sizeof msg) == SPF_ERR_IO, "inspect a missing file");
  CHECK(spf_png_inspect(NULL, NULL, NULL, NULL, msg, sizeof msg) == SPF_ERR_NULL, "inspect NULL");
  FILE *f = fopen(file("junk.txt"), "w");
  fputs("not a png\n", f);
  fclose(f);
  CHECK(spf_png_inspect(file("junk.txt"), NULL, NULL, NULL, msg, sizeof msg) == SPF_ERR_FORMAT, "not a PNG");

  const int64_t M = 5;
  double vol[125];
  for (int i = 0; i < 125; i++) vol[i] = i % 7;
  const double ring = 10;
  float img[16] = {1, 2, 3, 4};
  double x[2] = {0, 1}, y[2] = {1, 2};
  spf_plot p = {.n_points = 2, .n_series = 1, .x = x, .y = {y}};
  CHECK(spf_picture_density(bad, M, vol, 1, NULL, msg, sizeof msg) == SPF_ERR_IO, "density: %s", msg);
  CHECK(spf_picture_intensity(bad, M, vol, 1, 1, &ring, NULL, msg, sizeof msg) == SPF_ERR_IO, "intensity");
  CHECK(spf_picture_plot(bad, &p, msg, sizeof msg) == SPF_ERR_IO, "plot");
  CHECK(spf_picture_gallery(bad, 1, 4, 4, img, img, NULL, msg, sizeof msg) == SPF_ERR_IO, "gallery");
  CHECK(access(bad, F_OK) != 0, "no file left");
  CHECK(spf_picture_density(NULL, M, vol, 1, NULL, msg, sizeof msg) == SPF_ERR_NULL, "density NULL path");
  CHECK(spf_picture_density(file("x.png"), M, NULL, 1, NULL, msg, sizeof msg) == SPF_ERR_NULL, "density NULL");
  CHECK(spf_picture_intensity(file("x.png"), M, NULL, 1, 0, NULL, NULL, msg, sizeof msg) == SPF_ERR_NULL, "int");
  CHECK(spf_picture_plot(file("x.png"), NULL, msg, sizeof msg) == SPF_ERR_NULL, "plot NULL");
  p.y[0] = NULL;
  CHECK(spf_picture_plot(file("x.png"), &p, msg, sizeof msg) == SPF_ERR_NULL, "plot NULL series");
  CHECK(spf_picture_gallery(file("x.png"), 1, 4, 4, img, NULL, NULL, msg, sizeof msg) == SPF_ERR_NULL, "gallery");
  CHECK(access(file("x.png"), F_OK) != 0, "rejected calls write nothing");
}

int main(void)
{
  snprintf(dir_, sizeof dir_, "/tmp/spf_picture_XXXXXX");
  if (!mkdtemp(dir_)) {
    perror("mkdtemp");
    return 1;
  }
  RUN_TEST(test_canvas_png_round_trip);
  RUN_TEST(test_density);
  RUN_TEST(test_intensity);
  RUN_TEST(test_plot);
  RUN_TEST(test_gallery);
  RUN_TEST(test_errors);
  /* Only finished files remain: no temporary names left behind. */
  const char *keep = getenv("SPINIFEL_TEST_KEEP");
  DIR *d = opendir(dir_);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    CHECK(strstr(e->d_name, ".tmp.") == NULL, "leftover %s", e->d_name);
    if (!keep) unlink(file(e->d_name));
  }
  if (d) closedir(d);
  if (keep) printf("pictures kept in %s\n", dir_);
  else rmdir(dir_);
  return test_summary();
}
