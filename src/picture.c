/* Pictures (see picture.h): a small RGB canvas, a 5x7 bitmap font, PNG through libpng's
 * simplified API, and the composite pictures built from them. */
#include "spinifel/picture.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spinifel/error.h"
#include "tempfile.h"

#define MAX_DIM 20000
#define MARGIN 20
#define GAP 24

/* ASCII 32..126, five columns per glyph, bit 0 = top row (the classic HD44780-style font). */
static const uint8_t FONT[95][5] = {
  {0x00,0x00,0x00,0x00,0x00}, {0x00,0x00,0x5F,0x00,0x00}, {0x00,0x07,0x00,0x07,0x00}, {0x14,0x7F,0x14,0x7F,0x14},
  {0x24,0x2A,0x7F,0x2A,0x12}, {0x23,0x13,0x08,0x64,0x62}, {0x36,0x49,0x55,0x22,0x50}, {0x00,0x05,0x03,0x00,0x00},
  {0x00,0x1C,0x22,0x41,0x00}, {0x00,0x41,0x22,0x1C,0x00}, {0x08,0x2A,0x1C,0x2A,0x08}, {0x08,0x08,0x3E,0x08,0x08},
  {0x00,0x50,0x30,0x00,0x00}, {0x08,0x08,0x08,0x08,0x08}, {0x00,0x60,0x60,0x00,0x00}, {0x20,0x10,0x08,0x04,0x02},
  {0x3E,0x51,0x49,0x45,0x3E}, {0x00,0x42,0x7F,0x40,0x00}, {0x42,0x61,0x51,0x49,0x46}, {0x21,0x41,0x45,0x4B,0x31},
  {0x18,0x14,0x12,0x7F,0x10}, {0x27,0x45,0x45,0x45,0x39}, {0x3C,0x4A,0x49,0x49,0x30}, {0x01,0x71,0x09,0x05,0x03},
  {0x36,0x49,0x49,0x49,0x36}, {0x06,0x49,0x49,0x29,0x1E}, {0x00,0x36,0x36,0x00,0x00}, {0x00,0x56,0x36,0x00,0x00},
  {0x08,0x14,0x22,0x41,0x00}, {0x14,0x14,0x14,0x14,0x14}, {0x00,0x41,0x22,0x14,0x08}, {0x02,0x01,0x51,0x09,0x06},
  {0x32,0x49,0x79,0x41,0x3E}, {0x7E,0x11,0x11,0x11,0x7E}, {0x7F,0x49,0x49,0x49,0x36}, {0x3E,0x41,0x41,0x41,0x22},
  {0x7F,0x41,0x41,0x22,0x1C}, {0x7F,0x49,0x49,0x49,0x41}, {0x7F,0x09,0x09,0x09,0x01}, {0x3E,0x41,0x49,0x49,0x7A},
  {0x7F,0x08,0x08,0x08,0x7F}, {0x00,0x41,0x7F,0x41,0x00}, {0x20,0x40,0x41,0x3F,0x01}, {0x7F,0x08,0x14,0x22,0x41},
  {0x7F,0x40,0x40,0x40,0x40}, {0x7F,0x02,0x0C,0x02,0x7F}, {0x7F,0x04,0x08,0x10,0x7F}, {0x3E,0x41,0x41,0x41,0x3E},
  {0x7F,0x09,0x09,0x09,0x06}, {0x3E,0x41,0x51,0x21,0x5E}, {0x7F,0x09,0x19,0x29,0x46}, {0x46,0x49,0x49,0x49,0x31},
  {0x01,0x01,0x7F,0x01,0x01}, {0x3F,0x40,0x40,0x40,0x3F}, {0x1F,0x20,0x40,0x20,0x1F}, {0x3F,0x40,0x38,0x40,0x3F},
  {0x63,0x14,0x08,0x14,0x63}, {0x07,0x08,0x70,0x08,0x07}, {0x61,0x51,0x49,0x45,0x43}, {0x00,0x7F,0x41,0x41,0x00},
  {0x02,0x04,0x08,0x10,0x20}, {0x00,0x41,0x41,0x7F,0x00}, {0x04,0x02,0x01,0x02,0x04}, {0x40,0x40,0x40,0x40,0x40},
  {0x00,0x01,0x02,0x04,0x00}, {0x20,0x54,0x54,0x54,0x78}, {0x7F,0x48,0x44,0x44,0x38}, {0x38,0x44,0x44,0x44,0x20},
  {0x38,0x44,0x44,0x48,0x7F}, {0x38,0x54,0x54,0x54,0x18}, {0x08,0x7E,0x09,0x01,0x02}, {0x0C,0x52,0x52,0x52,0x3E},
  {0x7F,0x08,0x04,0x04,0x78}, {0x00,0x44,0x7D,0x40,0x00}, {0x20,0x40,0x44,0x3D,0x00}, {0x7F,0x10,0x28,0x44,0x00},
  {0x00,0x41,0x7F,0x40,0x00}, {0x7C,0x04,0x18,0x04,0x78}, {0x7C,0x08,0x04,0x04,0x78}, {0x38,0x44,0x44,0x44,0x38},
  {0x7C,0x14,0x14,0x14,0x08}, {0x08,0x14,0x14,0x18,0x7C}, {0x7C,0x08,0x04,0x04,0x08}, {0x48,0x54,0x54,0x54,0x20},
  {0x04,0x3F,0x44,0x40,0x20}, {0x3C,0x40,0x40,0x20,0x7C}, {0x1C,0x20,0x40,0x20,0x1C}, {0x3C,0x40,0x30,0x40,0x3C},
  {0x44,0x28,0x10,0x28,0x44}, {0x0C,0x50,0x50,0x50,0x3C}, {0x44,0x64,0x54,0x4C,0x44}, {0x00,0x08,0x36,0x41,0x00},
  {0x00,0x00,0x7F,0x00,0x00}, {0x00,0x41,0x36,0x08,0x00}, {0x08,0x04,0x08,0x10,0x08},
};

static const uint8_t BLACK[3] = {0, 0, 0}, WHITE[3] = {255, 255, 255}, GREY[3] = {150, 150, 150},
                     LIGHT[3] = {228, 228, 228}, DARK[3] = {70, 70, 70};

/* ---- canvas primitives ---- */

int spf_canvas_make(int64_t w, int64_t h, spf_canvas *c)
{
  if (!c) return SPF_ERR_NULL;
  *c = (spf_canvas){0, 0, NULL};
  if (w < 1 || h < 1 || w > MAX_DIM || h > MAX_DIM) return SPF_ERR_SIZE;
  c->rgb = malloc((size_t)(3 * w * h));
  if (!c->rgb) return SPF_ERR_ALLOC;
  memset(c->rgb, 255, (size_t)(3 * w * h));
  c->w = w, c->h = h;
  return SPF_OK;
}

void spf_canvas_free(spf_canvas *c)
{
  if (!c) return;
  free(c->rgb);
  *c = (spf_canvas){0, 0, NULL};
}

void spf_canvas_rect(spf_canvas *c, int64_t x, int64_t y, int64_t w, int64_t h, const uint8_t rgb[3])
{
  if (!c || !c->rgb || !rgb || w < 1 || h < 1) return;
  /* Clipped ends, written so that no sum can overflow whatever x, y, w, h are. */
  const int64_t x1 = x > c->w - w ? c->w : x + w, y1 = y > c->h - h ? c->h : y + h;
  for (int64_t j = y < 0 ? 0 : y; j < y1; j++)
    for (int64_t i = x < 0 ? 0 : x; i < x1; i++) memcpy(c->rgb + 3 * (j * c->w + i), rgb, 3);
}

/* Liang-Barsky: cut the segment to the box; 0 when nothing is left. */
static int clip_segment(double *x0, double *y0, double *x1, double *y1, double xa, double ya, double xb, double yb)
{
  const double dx = *x1 - *x0, dy = *y1 - *y0;
  if (!isfinite(dx) || !isfinite(dy)) return 0;
  const double p[4] = {-dx, dx, -dy, dy}, q[4] = {*x0 - xa, xb - *x0, *y0 - ya, yb - *y0};
  double t0 = 0, t1 = 1;
  for (int k = 0; k < 4; k++) {
    if (p[k] == 0 && q[k] < 0) return 0; /* parallel to this edge and outside */
    if (p[k] < 0) t0 = fmax(t0, q[k] / p[k]);
    if (p[k] > 0) t1 = fmin(t1, q[k] / p[k]);
  }
  if (t0 > t1) return 0;
  const double ax = *x0, ay = *y0;
  *x0 = ax + t0 * dx, *y0 = ay + t0 * dy, *x1 = ax + t1 * dx, *y1 = ay + t1 * dy;
  return 1;
}

void spf_canvas_line(spf_canvas *c, double x0, double y0, double x1, double y1, int thickness, const uint8_t rgb[3])
{
  if (!c || !c->rgb || !rgb) return;
  const int t = thickness < 1 ? 1 : thickness > 100 ? 100 : thickness;
  if (!clip_segment(&x0, &y0, &x1, &y1, -t, -t, (double)c->w + t, (double)c->h + t)) return;
  /* Unit steps along the longer axis: consecutive stamps touch, like Bresenham. */
  const int64_t n = (int64_t)ceil(fmax(fabs(x1 - x0), fabs(y1 - y0))) + 1;
  for (int64_t i = 0; i < n; i++) {
    const double s = n > 1 ? (double)i / (double)(n - 1) : 0;
    const double x = x0 + s * (x1 - x0), y = y0 + s * (y1 - y0);
    spf_canvas_rect(c, (int64_t)floor(x - t / 2.0 + 0.5), (int64_t)floor(y - t / 2.0 + 0.5), t, t, rgb);
  }
}

static void dashed(spf_canvas *c, double x0, double y0, double x1, double y1, const uint8_t rgb[3])
{
  const double len = hypot(x1 - x0, y1 - y0);
  for (double s = 0; s < len; s += 10) {
    const double e = fmin(s + 6, len);
    spf_canvas_line(c, x0 + (x1 - x0) * s / len, y0 + (y1 - y0) * s / len, x0 + (x1 - x0) * e / len,
                    y0 + (y1 - y0) * e / len, 1, rgb);
  }
}

/* vertical: reading upwards, (x, y) the bottom-left corner (for y-axis labels). */
static int64_t draw_text(spf_canvas *c, int64_t x, int64_t y, const char *s, int scale, const uint8_t rgb[3],
                         int vertical)
{
  if (!s || scale < 1) return 0;
  int64_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
    const uint8_t *g = FONT[(*p >= 32 && *p <= 126 ? *p : '?') - 32];
    if (!c) continue;
    const int drop = strchr("gjpqy", *p) != NULL; /* a one-row descender reads much better */
    for (int i = 0; i < 5; i++)
      for (int j = 0; j < 7; j++) {
        if (!(g[i] >> j & 1)) continue;
        const int64_t off = (n * 6 + i) * scale, down = (j + drop) * scale;
        if (vertical) spf_canvas_rect(c, x + down, y - off - scale, scale, scale, rgb);
        else spf_canvas_rect(c, x + off, y + down, scale, scale, rgb);
      }
  }
  return n ? (n * 6 - 1) * (int64_t)scale : 0;
}

int64_t spf_canvas_text(spf_canvas *c, int64_t x, int64_t y, const char *text, int scale, const uint8_t rgb[3])
{
  return draw_text(c && c->rgb && rgb ? c : NULL, x, y, text, scale, rgb, 0);
}

static int64_t text_width(const char *s, int scale) { return draw_text(NULL, 0, 0, s, scale, NULL, 0); }

/* Text in at most max_w pixels: scale 2 if it fits, else scale 1, else cut short. */
static int64_t fit_text(spf_canvas *c, int64_t x, int64_t y, const char *s, int64_t max_w, const uint8_t rgb[3])
{
  if (!s) return 0;
  if (text_width(s, 2) <= max_w) return spf_canvas_text(c, x, y, s, 2, rgb);
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  const int64_t fit = (max_w + 1) / 6;
  if (fit < (int64_t)strlen(buf)) {
    buf[fit < 0 ? 0 : fit] = 0;
    if (fit >= 4) memcpy(buf + fit - 3, "...", 3);
  }
  return spf_canvas_text(c, x, y + 3, buf, 1, rgb);
}

/* ---- colour maps and images ---- */

static const uint8_t VIRIDIS[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                                      {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};

static void colour(double t, int colormap, uint8_t out[3])
{
  if (colormap != 1 || isnan(t)) {
    out[0] = out[1] = out[2] = isnan(t) ? 128 : (uint8_t)lround(255 * fmin(fmax(t, 0), 1));
    return;
  }
  t = fmin(fmax(t, 0), 1);
  const int k = t >= 1 ? 7 : (int)(t * 8);
  const double f = t * 8 - k;
  for (int i = 0; i < 3; i++) out[i] = (uint8_t)lround(VIRIDIS[k][i] * (1 - f) + VIRIDIS[k + 1][i] * f);
}

void spf_canvas_image(spf_canvas *c, int64_t x, int64_t y, int zoom, const double *v, int64_t nx, int64_t ny,
                      double lo, double hi, int colormap)
{
  if (!c || !c->rgb || !v || nx < 1 || ny < 1 || zoom < 1) return;
  for (int64_t j = 0; j < ny; j++)
    for (int64_t i = 0; i < nx; i++) {
      const double a = v[j * nx + i];
      uint8_t rgb[3];
      colour(hi != lo ? (a - lo) / (hi - lo) : (isnan(a) ? a : 0.5), colormap, rgb);
      spf_canvas_rect(c, x + i * zoom, y + j * zoom, zoom, zoom, rgb);
    }
}

/* ---- PNG ---- */

int spf_png_write(const char *path, const spf_canvas *c, char *msg, size_t msg_len)
{
  if (!path || !c || !c->rgb) return SPF_ERR_NULL;
  if (c->w < 1 || c->h < 1 || c->w > MAX_DIM || c->h > MAX_DIM) return SPF_ERR_SIZE;
  char tmp[4096];
  if (spf_temp_name(path, tmp, sizeof tmp)) {
    if (msg) snprintf(msg, msg_len, "%.200s...: path too long", path);
    return SPF_ERR_IO;
  }
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    if (msg) snprintf(msg, msg_len, "%s: cannot create (%s)", path, strerror(errno));
    return SPF_ERR_IO;
  }
  png_image im = {.version = PNG_IMAGE_VERSION, .width = (png_uint_32)c->w, .height = (png_uint_32)c->h,
                  .format = PNG_FORMAT_RGB};
  int ok = png_image_write_to_stdio(&im, f, 0, c->rgb, 0, NULL);
  char why[128];
  snprintf(why, sizeof why, "%s", ok ? "" : im.message);
  png_image_free(&im);
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    const int e = errno;
    unlink(tmp);
    if (msg) snprintf(msg, msg_len, "%s: write failed (%s)", path, why[0] ? why : strerror(e));
    return SPF_ERR_IO;
  }
  return SPF_OK;
}

int spf_png_inspect(const char *path, int64_t *w, int64_t *h, double *nonwhite_fraction, char *msg, size_t msg_len)
{
  if (!path) return SPF_ERR_NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (msg) snprintf(msg, msg_len, "%s: cannot open (%s)", path, strerror(errno));
    return SPF_ERR_IO;
  }
  png_image im = {.version = PNG_IMAGE_VERSION};
  int rc = SPF_OK;
  uint8_t *buf = NULL;
  if (!png_image_begin_read_from_stdio(&im, f)) {
    rc = SPF_ERR_FORMAT;
  } else if (im.width > 100000 || im.height > 100000) {
    snprintf(im.message, sizeof im.message, "%ux%u pixels, too large", im.width, im.height);
    rc = SPF_ERR_FORMAT;
  } else {
    im.format = PNG_FORMAT_RGB;
    buf = malloc(PNG_IMAGE_SIZE(im));
    if (!buf) rc = SPF_ERR_ALLOC;
    else memset(buf, 255, PNG_IMAGE_SIZE(im)); /* transparent pixels are composited onto this white */
    if (buf && !png_image_finish_read(&im, NULL, buf, 0, NULL)) rc = SPF_ERR_FORMAT;
  }
  if (rc == SPF_ERR_FORMAT && msg) snprintf(msg, msg_len, "%s: not a readable PNG (%s)", path, im.message);
  png_image_free(&im);
  fclose(f);
  if (!rc) {
    const int64_t n = (int64_t)im.width * im.height;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) count += buf[3 * i] != 255 || buf[3 * i + 1] != 255 || buf[3 * i + 2] != 255;
    if (w) *w = im.width;
    if (h) *h = im.height;
    if (nonwhite_fraction) *nonwhite_fraction = (double)count / (double)n;
  }
  free(buf);
  return rc;
}

/* ---- helpers shared by the composites ---- */

/* The 1-2-5 x 10^k value nearest to v on a log scale. */
static double round125(double v)
{
  const double p = pow(10, floor(log10(v))), f = v / p;
  return p * (f < sqrt(2) ? 1 : f < sqrt(10) ? 2 : f < sqrt(50) ? 5 : 10);
}

static int finish(spf_canvas *c, const char *path, char *msg, size_t msg_len)
{
  const int rc = spf_png_write(path, c, msg, msg_len);
  spf_canvas_free(c);
  return rc;
}

static void min_max(const double *v, int64_t n, double *lo, double *hi)
{
  *lo = INFINITY, *hi = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(v[i])) *lo = fmin(*lo, v[i]), *hi = fmax(*hi, v[i]);
  if (*lo > *hi) *lo = *hi = 0;
}

/* A panel caption: name at scale 2, then the across and down axes small. */
static void panel_label(spf_canvas *c, int64_t x, int64_t y, const char *name, const char *axes)
{
  const int64_t w = spf_canvas_text(c, x, y, name, 2, BLACK);
  spf_canvas_text(c, x + w + 6, y + 7, axes, 1, DARK);
}

/* The three central slices (and, if proj, the three projections) of an M^3 volume into 3 or 6
 * M x M panels: xy, xz, yz; across is the first axis, down the second. */
static void cut_volume(int64_t M, const double *v, double *out, int proj)
{
  const int64_t m2 = M * M, c0 = (M - 1) / 2;
  for (int64_t b = 0; b < M; b++)
    for (int64_t a = 0; a < M; a++) {
      out[b * M + a] = v[(c0 * M + b) * M + a];
      out[m2 + b * M + a] = v[(b * M + c0) * M + a];
      out[2 * m2 + b * M + a] = v[(b * M + a) * M + c0];
    }
  if (!proj) return;
  memset(out + 3 * m2, 0, sizeof(double) * 3 * m2);
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < M; x++) {
        const double a = v[(z * M + y) * M + x];
        out[3 * m2 + y * M + x] += a;
        out[4 * m2 + z * M + x] += a;
        out[5 * m2 + z * M + y] += a;
      }
}

static const char *const AXES[3] = {"(x,y)", "(x,z)", "(y,z)"};

/* A canvas for rows of three P-wide panels, body_h tall below the title; *y: where the body starts. */
static int panels_canvas(spf_canvas *c, int64_t P, int64_t body_h, const char *title, int64_t *y)
{
  const int rc = spf_canvas_make(2 * MARGIN + 3 * P + 2 * GAP, MARGIN + (title ? 30 : 0) + body_h + MARGIN, c);
  if (rc) return rc;
  *y = MARGIN;
  if (title) fit_text(c, MARGIN, MARGIN, title, c->w - 2 * MARGIN, BLACK), *y += 30;
  return SPF_OK;
}

/* ---- composites ---- */

int spf_picture_density(const char *path, int64_t M, const double *rho, double voxel_angstrom, const char *title,
                        char *msg, size_t msg_len)
{
  if (!path || !rho) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0 || M > 4001) return SPF_ERR_SIZE;
  if (!(voxel_angstrom > 0 && isfinite(voxel_angstrom))) return SPF_ERR_ARG;
  const int64_t m2 = M * M, zoom = (160 + M - 1) / M, P = M * zoom;
  spf_canvas c;
  int64_t y;
  const int rc = panels_canvas(&c, P, 2 * (22 + P + 16) + 48, title, &y);
  if (rc) return rc;
  double *buf = malloc(sizeof(double) * 6 * (size_t)m2);
  if (!buf) return spf_canvas_free(&c), SPF_ERR_ALLOC;
  cut_volume(M, rho, buf, 1);
  static const char *const names[6] = {"slice z=0", "slice y=0", "slice x=0",
                                       "projection z", "projection y", "projection x"};
  for (int r = 0; r < 2; r++, y += 22 + P + 16) {
    double lo, hi;
    min_max(buf + 3 * r * m2, 3 * m2, &lo, &hi);
    for (int k = 0; k < 3; k++) {
      const int64_t x = MARGIN + k * (P + GAP);
      panel_label(&c, x, y, names[3 * r + k], AXES[k]);
      spf_canvas_image(&c, x, y + 22, (int)zoom, buf + (3 * r + k) * m2, M, M, lo, hi, 0);
    }
  }
  /* Scale bar: the round length nearest a quarter of the panel's width in Angstrom. */
  const double len = round125(M * voxel_angstrom / 4);
  const int64_t bar = (int64_t)lround(len / voxel_angstrom * (double)zoom);
  char lab[64];
  snprintf(lab, sizeof lab, "%g A", len);
  spf_canvas_rect(&c, MARGIN, y + 4, bar, 6, BLACK);
  spf_canvas_text(&c, MARGIN + bar + 10, y, lab, 2, BLACK);
  spf_canvas_text(&c, MARGIN, y + 34, "(a,b): a across, b down, index 0 top-left; gray: min to max of each row", 1,
                  DARK);
  free(buf);
  return finish(&c, path, msg, msg_len);
}

int spf_picture_intensity(const char *path, int64_t M, const double *intensity, double voxel_angstrom,
                          int n_rings, const double *ring_angstrom, const char *title, char *msg, size_t msg_len)
{
  if (!path || !intensity || (n_rings > 0 && !ring_angstrom)) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0 || M > 4001 || n_rings < 0) return SPF_ERR_SIZE;
  if (!(voxel_angstrom > 0 && isfinite(voxel_angstrom))) return SPF_ERR_ARG;
  for (int k = 0; k < n_rings; k++)
    if (!(ring_angstrom[k] > 0 && isfinite(ring_angstrom[k]))) return SPF_ERR_ARG;
  const int64_t m2 = M * M, zoom = (160 + M - 1) / M, P = M * zoom;
  spf_canvas c;
  int64_t y;
  const int rc = panels_canvas(&c, P, 22 + P + 16 + 56, title, &y);
  if (rc) return rc;
  double *buf = malloc(sizeof(double) * 3 * (size_t)m2);
  if (!buf) return spf_canvas_free(&c), SPF_ERR_ALLOC;
  double lo, mx;
  min_max(intensity, m2 * M, &lo, &mx);
  if (!(mx > 0)) mx = 1; /* all zero: everything sits at the floor */
  const double floor_v = mx * 1e-6;
  cut_volume(M, intensity, buf, 0);
  for (int64_t i = 0; i < 3 * m2; i++)
    if (!isnan(buf[i])) buf[i] = log10(fmax(buf[i], floor_v));
  static const char *const names[3] = {"slice z=0", "slice y=0", "slice x=0"};
  const uint8_t ring_rgb[3] = {255, 255, 255};
  for (int k = 0; k < 3; k++) {
    const int64_t x = MARGIN + k * (P + GAP), py = y + 22;
    panel_label(&c, x, y, names[k], AXES[k]);
    spf_canvas_image(&c, x, py, (int)zoom, buf + k * m2, M, M, log10(floor_v), log10(mx), 1);
    /* Mode 0 sits at the centre of pixel (M-1)/2. */
    const double cx = x + (M - 1) / 2.0 * zoom + zoom / 2.0, cy = py + (M - 1) / 2.0 * zoom + zoom / 2.0;
    int64_t box[32][4];
    int nbox = 0;
    for (int r = 0; r < n_rings; r++) {
      const double rad = M * voxel_angstrom / ring_angstrom[r] * zoom;
      if (rad > P) continue; /* entirely outside the panel */
      const int nseg = 16 + (int)(rad / 2);
      for (int s = 0; s < nseg; s++) {
        double a0 = 2 * M_PI * s / nseg, a1 = 2 * M_PI * (s + 1) / nseg;
        double x0 = cx + rad * cos(a0), y0 = cy + rad * sin(a0), x1 = cx + rad * cos(a1), y1 = cy + rad * sin(a1);
        if (clip_segment(&x0, &y0, &x1, &y1, x, py, x + P - 1, py + P - 1))
          spf_canvas_line(&c, x0, y0, x1, y1, 1, ring_rgb);
      }
      /* Label at the first of a few spots on the right that is inside and clear of other labels. */
      char lab[32];
      snprintf(lab, sizeof lab, "%g A", ring_angstrom[r]);
      const int64_t lw = text_width(lab, 1);
      static const double ang[6] = {-45, -20, 20, 45, -70, 70};
      for (int a = 0; a < 6 && nbox < 32; a++) {
        const double th = ang[a] * M_PI / 180;
        const int64_t lx = (int64_t)(cx + rad * cos(th)) + 3, ly = (int64_t)(cy + rad * sin(th)) + (th < 0 ? -10 : 3);
        int clear = lx + lw < x + P && ly > py && ly + 9 < py + P;
        for (int q = 0; q < nbox && clear; q++)
          clear = lx > box[q][2] + 2 || lx + lw + 4 < box[q][0] || ly > box[q][3] + 2 || ly + 11 < box[q][1];
        if (!clear) continue;
        spf_canvas_rect(&c, lx - 1, ly - 1, lw + 3, 10, BLACK); /* legible on any colour, over other rings */
        spf_canvas_text(&c, lx + 1, ly + 1, lab, 1, ring_rgb);
        box[nbox][0] = lx - 1, box[nbox][1] = ly - 1, box[nbox][2] = lx + lw + 2, box[nbox++][3] = ly + 9;
        break;
      }
    }
  }
  free(buf);
  /* Colour bar under the first panel, labelled with the intensities at its ends. */
  y += 22 + P + 16;
  for (int64_t i = 0; i < P; i++) {
    uint8_t rgb[3];
    colour((double)i / (double)(P - 1), 1, rgb);
    spf_canvas_rect(&c, MARGIN + i, y, 1, 12, rgb);
  }
  char lab[64];
  snprintf(lab, sizeof lab, "%.2g", floor_v);
  spf_canvas_text(&c, MARGIN, y + 16, lab, 1, BLACK);
  snprintf(lab, sizeof lab, "%.2g", mx);
  spf_canvas_text(&c, MARGIN + P - text_width(lab, 1), y + 16, lab, 1, BLACK);
  spf_canvas_text(&c, MARGIN + P + 10, y + 2, "intensity, log scale", 1, BLACK);
  spf_canvas_text(&c, MARGIN, y + 42, "(a,b): a across, b down; centre = mode 0; rings: resolution in Angstrom", 1,
                  DARK);
  return finish(&c, path, msg, msg_len);
}

static const uint8_t SERIES[8][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                                     {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {188, 189, 34}};

/* Tick label: enough decimals for the step, no "-0". */
static void tick_label(char *buf, size_t n, double v, double step)
{
  if (fabs(v) < step * 1e-6) v = 0;
  const int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  if (fabs(v) >= 1e6 || dec > 6) snprintf(buf, n, "%g", v);
  else snprintf(buf, n, "%.*f", dec, v);
}

int spf_picture_plot(const char *path, const spf_plot *p, char *msg, size_t msg_len)
{
  if (!path || !p || !p->x) return SPF_ERR_NULL;
  if (p->n_points < 1 || p->n_series < 1 || p->n_series > 8 || p->n_hlines < 0 || p->n_hlines > 4 ||
      p->n_vlines < 0 || p->n_vlines > 4)
    return SPF_ERR_SIZE;
  for (int s = 0; s < p->n_series; s++)
    if (!p->y[s]) return SPF_ERR_NULL;
  const int manual = p->ymin != 0 || p->ymax != 0, lg = p->log_y != 0;
  if (manual && (!(p->ymax > p->ymin) || !isfinite(p->ymin) || !isfinite(p->ymax) || (lg && p->ymin <= 0)))
    return SPF_ERR_ARG;
#define FY(v) (lg ? ((v) > 0 ? log10(v) : NAN) : (v))
  /* Data ranges (reference lines included, so they stay in view). */
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (int i = 0; i < p->n_points; i++) {
    if (!isfinite(p->x[i])) continue;
    xlo = fmin(xlo, p->x[i]), xhi = fmax(xhi, p->x[i]);
    for (int s = 0; s < p->n_series; s++)
      if (isfinite(FY(p->y[s][i]))) ylo = fmin(ylo, FY(p->y[s][i])), yhi = fmax(yhi, FY(p->y[s][i]));
  }
  if (xlo > xhi) return SPF_ERR_DATA;
  for (int k = 0; k < p->n_vlines; k++)
    if (isfinite(p->vlines[k])) xlo = fmin(xlo, p->vlines[k]), xhi = fmax(xhi, p->vlines[k]);
  for (int k = 0; k < p->n_hlines; k++)
    if (isfinite(FY(p->hlines[k]))) ylo = fmin(ylo, FY(p->hlines[k])), yhi = fmax(yhi, FY(p->hlines[k]));
  if (ylo > yhi) ylo = 0, yhi = 1;
  if (xlo == xhi) xlo -= 1, xhi += 1;
  const double xstep = round125((xhi - xlo) / 5);
  xlo = floor(xlo / xstep) * xstep, xhi = ceil(xhi / xstep) * xstep;
  double ystep;
  if (manual) ylo = FY(p->ymin), yhi = FY(p->ymax);
  if (lg) {
    if (!manual) ylo = floor(ylo), yhi = fmax(ceil(yhi), floor(ylo) + 1);
    ystep = ceil((yhi - ylo) / 8); /* whole decades */
    if (ystep < 1) ystep = 1;
  } else {
    if (ylo == yhi) ylo -= 1, yhi += 1;
    ystep = round125((yhi - ylo) / 5);
    if (!manual) ylo = floor(ylo / ystep) * ystep, yhi = ceil(yhi / ystep) * ystep;
  }
  spf_canvas c;
  int rc = spf_canvas_make(720, 480, &c);
  if (rc) return rc;
  const int64_t L = 100, R = 720 - 24, T = 44, B = 480 - 64;
#define PX(v) (L + ((v) - xlo) / (xhi - xlo) * (double)(R - L))
#define PY(v) (B - ((v) - ylo) / (yhi - ylo) * (double)(B - T))
  /* Ticks: labels first, to pick a font size that fits. */
  double xt[64], yt[64];
  char xl[64][32], yl[64][32];
  int nxt = 0, nyt = 0;
  for (double k = ceil(xlo / xstep - 1e-9); k * xstep <= xhi + 1e-9 * xstep && nxt < 64; k++, nxt++)
    xt[nxt] = k * xstep, tick_label(xl[nxt], 32, xt[nxt], xstep);
  for (double k = ceil(ylo / ystep - 1e-9); k * ystep <= yhi + 1e-9 * ystep && nyt < 64; k++, nyt++) {
    yt[nyt] = k * ystep;
    if (!lg) tick_label(yl[nyt], 32, yt[nyt], ystep);
    else if (fabs(yt[nyt]) >= 4) snprintf(yl[nyt], 32, "1e%.0f", yt[nyt]); /* decades */
    else snprintf(yl[nyt], 32, "%g", pow(10, yt[nyt]));
  }
  int64_t xw = 0, yw = 0;
  for (int i = 0; i < nxt; i++) xw = xw > text_width(xl[i], 2) ? xw : text_width(xl[i], 2);
  for (int i = 0; i < nyt; i++) yw = yw > text_width(yl[i], 2) ? yw : text_width(yl[i], 2);
  const int xs = nxt > 1 && xw + 10 > (R - L) / (nxt - 1) ? 1 : 2, ys = yw > L - 40 ? 1 : 2;
  for (int i = 0; i < nxt; i++) {
    const int64_t X = (int64_t)lround(PX(xt[i]));
    spf_canvas_rect(&c, X, T, 1, B - T, LIGHT);
    spf_canvas_rect(&c, X, B, 1, 6, BLACK);
    const int64_t tw = text_width(xl[i], xs), tx = X - tw / 2 < 720 - 2 - tw ? X - tw / 2 : 720 - 2 - tw;
    spf_canvas_text(&c, tx, B + 10, xl[i], xs, BLACK); /* the last label kept inside the picture */
  }
  for (int i = 0; i < nyt; i++) {
    const int64_t Y = (int64_t)lround(PY(yt[i]));
    spf_canvas_rect(&c, L, Y, R - L, 1, LIGHT);
    spf_canvas_rect(&c, L - 6, Y, 6, 1, BLACK);
    spf_canvas_text(&c, L - 10 - text_width(yl[i], ys), Y - 7 * ys / 2, yl[i], ys, BLACK);
  }
  /* Reference lines; their labels are obstacles for the legend. */
  int64_t obst[8][4];
  int nob = 0;
  for (int k = 0; k < p->n_hlines; k++) {
    const double v = FY(p->hlines[k]);
    if (!(v >= ylo && v <= yhi)) continue;
    char lab[32];
    snprintf(lab, sizeof lab, "%.3g", p->hlines[k]);
    const int64_t Y = (int64_t)lround(PY(v)), w = text_width(lab, 2);
    dashed(&c, L, Y, R, Y, GREY);
    spf_canvas_text(&c, R - w - 6, Y - 18, lab, 2, GREY);
    obst[nob][0] = R - w - 6, obst[nob][1] = Y - 18, obst[nob][2] = R, obst[nob++][3] = Y;
  }
  const uint8_t vcol[3] = {190, 50, 50};
  for (int k = 0; k < p->n_vlines; k++) {
    const double v = p->vlines[k];
    if (!(v >= xlo && v <= xhi)) continue;
    char lab[32];
    snprintf(lab, sizeof lab, "%.3g", v);
    const int64_t X = (int64_t)lround(PX(v)), w = text_width(lab, 2);
    const int64_t lx = X + 6 + w < R ? X + 6 : X - 6 - w;
    dashed(&c, X, T, X, B, vcol);
    spf_canvas_text(&c, lx, T + 6 + 18 * k, lab, 2, vcol);
    obst[nob][0] = lx, obst[nob][1] = T + 6 + 18 * k, obst[nob][2] = lx + w, obst[nob++][3] = T + 20 + 18 * k;
  }
  /* Series, broken at missing points; a lone point gets a dot. */
  for (int s = 0; s < p->n_series; s++)
    for (int i = 0; i < p->n_points; i++) {
      const double x0 = p->x[i], y0 = FY(p->y[s][i]);
      if (!isfinite(x0) || !isfinite(y0)) continue;
      const int next = i + 1 < p->n_points && isfinite(p->x[i + 1]) && isfinite(FY(p->y[s][i + 1]));
      const int prev = i > 0 && isfinite(p->x[i - 1]) && isfinite(FY(p->y[s][i - 1]));
      double ax = PX(x0), ay = PY(y0), bx = next ? PX(p->x[i + 1]) : ax, by = next ? PY(FY(p->y[s][i + 1])) : ay;
      if ((next || !prev) && clip_segment(&ax, &ay, &bx, &by, L, T, R, B))
        spf_canvas_line(&c, ax, ay, bx, by, next ? 2 : 4, SERIES[s]);
    }
  spf_canvas_rect(&c, L, T, R - L + 1, 1, BLACK);
  spf_canvas_rect(&c, L, B, R - L + 1, 1, BLACK);
  spf_canvas_rect(&c, L, T, 1, B - T, BLACK);
  spf_canvas_rect(&c, R, T, 1, B - T, BLACK);
  /* Legend in the corner that hides the fewest points and no labels; long names in the small font. */
  int nn = 0;
  int64_t lw = 0;
  for (int s = 0; s < p->n_series; s++)
    if (p->names[s]) nn++, lw = lw > text_width(p->names[s], 2) ? lw : text_width(p->names[s], 2);
  const int ls = lw > (R - L) / 3 ? 1 : 2, lh = 9 * ls;
  if (nn) {
    const int64_t bw = lw * ls / 2 + 44, bh = lh * nn + 10;
    int64_t best_x = R - bw - 8, best_y = T + 8, best = INT64_MAX;
    for (int corner = 0; corner < 4; corner++) {
      const int64_t bx = corner & 1 ? L + 8 : R - bw - 8, by = corner & 2 ? B - bh - 8 : T + 8;
      int64_t hits = 0;
      for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->n_points; i++) {
          const double X = PX(p->x[i]), Y = PY(FY(p->y[s][i]));
          hits += X >= bx && X <= bx + bw && Y >= by && Y <= by + bh;
        }
      for (int k = 0; k < nob; k++)
        hits += 1000 * (obst[k][0] < bx + bw && obst[k][2] > bx && obst[k][1] < by + bh && obst[k][3] > by);
      if (hits < best) best = hits, best_x = bx, best_y = by;
    }
    spf_canvas_rect(&c, best_x, best_y, bw, bh, GREY);
    spf_canvas_rect(&c, best_x + 1, best_y + 1, bw - 2, bh - 2, WHITE);
    int64_t ly = best_y + 6;
    for (int s = 0; s < p->n_series; s++) {
      if (!p->names[s]) continue;
      spf_canvas_rect(&c, best_x + 8, ly + 7 * ls / 2 - 1, 24, 3, SERIES[s]);
      spf_canvas_text(&c, best_x + 38, ly, p->names[s], ls, BLACK);
      ly += lh;
    }
  }
  if (p->title) fit_text(&c, (720 - text_width(p->title, 2)) / 2 > 8 ? (720 - text_width(p->title, 2)) / 2 : 8,
                         10, p->title, 704, BLACK);
  if (p->xlabel) spf_canvas_text(&c, (L + R - text_width(p->xlabel, 2)) / 2, B + 34, p->xlabel, 2, BLACK);
  if (p->ylabel) draw_text(&c, 10, (T + B + text_width(p->ylabel, 2)) / 2, p->ylabel, 2, BLACK, 1);
#undef FY
#undef PX
#undef PY
  return finish(&c, path, msg, msg_len);
}

/* Average b x b blocks (NaN ignored) so large detector images stay a sensible size. */
static void bin_image(const float *src, int64_t nx, int64_t ny, int64_t b, double *dst, int64_t bx, int64_t by)
{
  for (int64_t j = 0; j < by; j++)
    for (int64_t i = 0; i < bx; i++) {
      double sum = 0;
      int64_t n = 0;
      for (int64_t v = j * b; v < (j + 1) * b && v < ny; v++)
        for (int64_t u = i * b; u < (i + 1) * b && u < nx; u++)
          if (!isnan(src[v * nx + u])) sum += src[v * nx + u], n++;
      dst[j * bx + i] = n ? sum / (double)n : NAN;
    }
}

int spf_picture_gallery(const char *path, int n, int64_t nx, int64_t ny, const float *left, const float *right,
                        const char *const *captions, char *msg, size_t msg_len)
{
  if (!path || !left || !right) return SPF_ERR_NULL;
  if (n < 1 || n > 16 || nx < 1 || ny < 1 || nx > 65536 || ny > 65536) return SPF_ERR_SIZE;
  const int64_t m = nx > ny ? nx : ny, b = (m + 255) / 256, bx = (nx + b - 1) / b, by = (ny + b - 1) / b;
  const int64_t mb = bx > by ? bx : by, zoom = (128 + mb - 1) / mb, dw = bx * zoom, dh = by * zoom;
  const int64_t cell = 2 * dw + 6, cols = n < 4 ? n : 4, rows = (n + 3) / 4, row_h = 14 + dh + 26 + GAP;
  static const char *const header = "left: experimental, right: model (log scale)";
  int64_t W = 2 * MARGIN + cols * cell + (cols - 1) * GAP;
  if (W < 2 * MARGIN + text_width(header, 2)) W = 2 * MARGIN + text_width(header, 2);
  double *img = malloc(sizeof(double) * 2 * (size_t)(bx * by));
  if (!img) return SPF_ERR_ALLOC;
  spf_canvas c;
  int rc = spf_canvas_make(W, MARGIN + 30 + rows * row_h + MARGIN - GAP, &c);
  if (rc) {
    free(img);
    return rc;
  }
  spf_canvas_text(&c, MARGIN, MARGIN, header, 2, BLACK);
  for (int k = 0; k < n; k++) {
    const float *src[2] = {left + (int64_t)k * nx * ny, right + (int64_t)k * nx * ny};
    double mx = 0;
    for (int s = 0; s < 2; s++) {
      bin_image(src[s], nx, ny, b, img + s * bx * by, bx, by);
      for (int64_t i = 0; i < bx * by; i++)
        if (isfinite(img[s * bx * by + i])) mx = fmax(mx, img[s * bx * by + i]);
    }
    if (!(mx > 0)) mx = 1;
    for (int64_t i = 0; i < 2 * bx * by; i++)
      if (!isnan(img[i])) img[i] = log10(1 + fmax(img[i], 0) / (mx * 1e-3));
    const int64_t x = MARGIN + (k % 4) * (cell + GAP), y = MARGIN + 30 + (k / 4) * row_h;
    for (int s = 0; s < 2; s++) {
      spf_canvas_text(&c, x + s * (dw + 6), y, s ? "model" : "exp", 1, DARK);
      spf_canvas_image(&c, x + s * (dw + 6), y + 14, (int)zoom, img + s * bx * by, bx, by, 0, log10(1001), 0);
    }
    if (captions && captions[k]) fit_text(&c, x, y + 14 + dh + 4, captions[k], cell, BLACK);
  }
  free(img);
  return finish(&c, path, msg, msg_len);
}
