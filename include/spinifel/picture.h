/* Pictures for looking at results: an RGB canvas with rectangles, lines, a built-in
 * 5x7 bitmap font and false-colour images, written as 8-bit PNG (libpng only), plus
 * ready-made composites (density slices, intensity slices with resolution rings,
 * line plots, image galleries). Coordinates are pixels, (0, 0) top-left; drawing is
 * clipped to the canvas. PNG files go to a temporary name renamed into place, so a
 * failure never leaves a partial file; msg (may be NULL) receives a one-line error
 * naming the file. */
#ifndef SPINIFEL_PICTURE_H
#define SPINIFEL_PICTURE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct { int64_t w, h; uint8_t *rgb; } spf_canvas;   /* row-major, 3 bytes per pixel */

/* A white canvas; w, h in 1..20000 (SPF_ERR_SIZE otherwise). Free with spf_canvas_free. */
int spf_canvas_make(int64_t w, int64_t h, spf_canvas *c);
/* Frees the pixels and zeroes the struct; safe on a zeroed or already freed canvas. */
void spf_canvas_free(spf_canvas *c);
/* A filled rectangle, top-left (x, y), clipped. */
void spf_canvas_rect(spf_canvas *c, int64_t x, int64_t y, int64_t w, int64_t h, const uint8_t rgb[3]);
/* A straight line thickness pixels wide (at least 1), clipped; non-finite ends draw nothing. */
void spf_canvas_line(spf_canvas *c, double x0, double y0, double x1, double y1, int thickness, const uint8_t rgb[3]);
/* Text in a built-in 5x7 bitmap font (ASCII 32..126, others drawn as '?'), each font pixel scale x scale;
 * (x, y) top-left; characters advance 6 * scale; g j p q y drop one row (a line is 8 * scale tall).
 * Returns the width drawn (also when c is NULL, to measure). */
int64_t spf_canvas_text(spf_canvas *c, int64_t x, int64_t y, const char *text, int scale, const uint8_t rgb[3]);
/* A 2D array (nx fastest, row 0 drawn at the top) magnified by zoom, values mapped lo..hi (clipped) through
 * colormap 0 = grayscale (black to white) or 1 = a perceptual blue-green-yellow map (viridis-like, a few
 * anchor colours interpolated). NaN drawn grey; lo == hi draws mid-scale. */
void spf_canvas_image(spf_canvas *c, int64_t x, int64_t y, int zoom, const double *v, int64_t nx, int64_t ny,
                      double lo, double hi, int colormap);
/* 8-bit RGB PNG, written to a temporary file renamed into place. */
int spf_png_write(const char *path, const spf_canvas *c, char *msg, size_t msg_len);
/* For tests and checks: a PNG's size and the fraction of its pixels that are not white (transparent
 * pixels count as composited on white). Any output pointer may be NULL. */
int spf_png_inspect(const char *path, int64_t *w, int64_t *h, double *nonwhite_fraction, char *msg,
                    size_t msg_len);

/* Composite pictures. Volumes are M^3 (x fastest, M odd, centre at (M-1)/2). */

/* Density: the three central slices (xy, xz, yz) and the three projections along z, y, x, side by side
 * in two rows with labels ("slice z=0", "projection z", ...; "(x,y)" names the across and down axes),
 * each panel zoomed so a panel is at least 160 px, grayscale from min to max of each row, and a scale
 * bar of a round length (1, 2, 5, 10, 20, 50, 100 ... Angstrom, about a quarter of a panel) labelled
 * e.g. "20 A". title (may be NULL) drawn on top. voxel_angstrom must be positive (SPF_ERR_ARG). */
int spf_picture_density(const char *path, int64_t M, const double *rho, double voxel_angstrom, const char *title,
                        char *msg, size_t msg_len);

/* 3D intensity (centred Fourier grid, index a <-> mode a-(M-1)/2; s per mode = 1 / (M * voxel_angstrom)):
 * the three central slices on a log10 scale (values <= 0 or below max*1e-6 clipped to max*1e-6),
 * colormap 1, with resolution rings drawn at the resolutions given (in Angstrom; ring radius =
 * M * voxel / d modes) and labelled, e.g. rings at 50, 20, 10 A. Rings must be positive (SPF_ERR_ARG). */
int spf_picture_intensity(const char *path, int64_t M, const double *intensity, double voxel_angstrom,
                          int n_rings, const double *ring_angstrom, const char *title, char *msg, size_t msg_len);

/* A line plot: up to 8 series sharing x, axes with ticks and numeric tick labels (nice round values), axis
 * labels, a legend with the series names, optional horizontal reference lines (e.g. FSC 0.5 and 0.143,
 * dashed grey, labelled with their value), optional vertical markers (x values, dashed, e.g. the
 * resolution reached). log_y: 1 for a log10 y axis (values <= 0 skipped). Size 720 x 480. title, labels
 * and names may be NULL. */
typedef struct {
  const char *title, *xlabel, *ylabel;
  int n_points, n_series;
  const double *x;                 /* n_points */
  const double *y[8];              /* each n_points; NaN points are skipped */
  const char *names[8];
  int n_hlines; double hlines[4];
  int n_vlines; double vlines[4];
  int log_y;
  double ymin, ymax;               /* both 0: automatic */
} spf_plot;
int spf_picture_plot(const char *path, const spf_plot *p, char *msg, size_t msg_len);

/* A gallery: n pairs of images side by side (left: experimental, right: model), each nx x ny, each pair
 * scaled by its own max, log-scaled (log10(1 + v / (max * 1e-3))) grayscale, with a caption per pair
 * (captions and any caption may be NULL). Up to 16 pairs, 4 pairs per row. Images larger than 256
 * pixels are shown binned (averaged), small ones magnified. */
int spf_picture_gallery(const char *path, int n, int64_t nx, int64_t ny, const float *left, const float *right,
                        const char *const *captions, char *msg, size_t msg_len);

#ifdef __cplusplus
}
#endif
#endif
