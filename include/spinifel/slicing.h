/* Slicing: model images of the current autocorrelation for a batch of orientations
 * (docs/method.md, "Step 1: slicing"):
 *
 *   I_m(s_p) = Re sum_k u_k exp(i k . x),   x = pi R_m^T s_p / (s_max * oversampling)
 *
 * u on the M^3 grid as in merging.h. The volume is transformed once
 * (spf_slicer_set_volume: kernel correction and FFT), then every batch of orientations
 * costs one sort and one interpolation of n_orient x n_pixels points (float NUFFT). */
#ifndef SPINIFEL_SLICING_H
#define SPINIFEL_SLICING_H

#include <stdint.h>

typedef struct spf_slicer_s spf_slicer;

/* s: 3 * n_pixels reciprocal coordinates (s_x, s_y, s_z of pixel 0 first) in any unit,
 * s_max in the same unit (every |s| must be <= s_max * oversampling). tol: accuracy of
 * the images, 1e-6 .. 1e-1 (float). max_orient: the largest batch slice will get. */
int spf_slicer_make(int64_t M, int64_t n_pixels, const double *s, double s_max, double oversampling,
                    double tol, int64_t max_orient, int nthreads, spf_slicer **out);

/* Load the autocorrelation u (M^3 doubles). */
int spf_slicer_set_volume(spf_slicer *sl, const double *u);

/* Model images for n_orient rotation matrices (rot: 9 per orientation, row-major R).
 * images: n_orient * n_pixels floats, image-major. */
int spf_slicer_slice(spf_slicer *sl, int64_t n_orient, const double *rot, float *images);

/* The NUFFT coordinates of orientation R's pixels (3 * n_pixels: x then y then z), as
 * merging wants them for the data of an image with that orientation. */
void spf_slicer_points(const spf_slicer *sl, const double *rot, double *x, double *y, double *z);

/* Seconds in set_points (sorting) and in interpolation since make. */
void spf_slicer_timing(const spf_slicer *sl, double *sort_seconds, double *interp_seconds);

void spf_slicer_free(spf_slicer *sl);

#endif
