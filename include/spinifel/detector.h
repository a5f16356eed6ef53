/* A flat pixel detector facing the beam (docs/method.md, "Units and geometry").
 * Pixel p = iy * nx + ix (x fastest); its centre is at lab position
 * ((ix - cx) * pixel, (iy - cy) * pixel, D) with the beam along +z through (cx, cy).
 * Scattering vector s = ((x, y, D) / r - (0, 0, 1)) / lambda, in 1/m. */
#ifndef SPINIFEL_DETECTOR_H
#define SPINIFEL_DETECTOR_H

#include <stdint.h>

#define SPF_HC_EV_M 1.239841984e-6 /* h c in eV m (CODATA 2018) */

enum spf_polarization {
  SPF_POLARIZATION_NONE = 0,       /* unpolarised: (1 + cos^2 2theta) / 2 */
  SPF_POLARIZATION_HORIZONTAL = 1  /* linear along x (XFEL undulators): 1 - (x / r)^2 */
};

typedef struct {
  int64_t nx, ny;            /* pixels along x (fast) and y */
  double pixel_size_m;       /* square pixels */
  double distance_m;         /* sample to detector */
  double photon_energy_ev;   /* lambda = h c / E */
  double beam_center_x, beam_center_y; /* in pixels; NAN: the array centre (n - 1) / 2 */
  double beamstop_inv_m;     /* pixels with |s| below this are masked (0: none) */
  int polarization;          /* enum spf_polarization */
} spf_detector_geometry;

/* Fill g with a default like the paper's data: 128 x 128 pixels of 300 um at 0.1 m and
 * 6 keV (about 11 A at the edge, 8 A in the corners), horizontal polarization, no
 * beam stop. */
void spf_detector_default_geometry(spf_detector_geometry *g);

typedef struct {
  spf_detector_geometry g;
  int64_t n_pixels;
  double wavelength_m;
  double *s;            /* 3 * n_pixels: (sx, sy, sz) per pixel, 1/m */
  double *s_norm;       /* |s| per pixel, 1/m */
  double *solid_angle;  /* steradians, p^2 D / r^3 (flat pixel, small-pixel limit) */
  double *polarization; /* polarization factor per pixel */
  uint8_t *mask;        /* 1 valid, 0 masked */
  double s_max;         /* largest |s| over valid pixels, 1/m */
  double resolution_edge_m;   /* 1/|s| at the middle of the farthest edge */
  double resolution_corner_m; /* 1/|s| at the farthest corner */
} spf_detector;

/* Make a detector (caller frees with spf_detector_free). */
int spf_detector_make(const spf_detector_geometry *g, spf_detector **out);

/* 2x2 binning: sizes halve (an odd last row or column is dropped), s and polarization
 * are averaged, solid angles summed; a binned pixel is valid when all four are. */
int spf_detector_bin2(const spf_detector *in, spf_detector **out);

/* Bin n_images images (nx * ny each, of `in`) into out_images (binned size): sums of
 * the four pixels. */
void spf_detector_bin2_images(const spf_detector *in, int64_t n_images, const float *images, float *out_images);

void spf_detector_free(spf_detector *d);

/* The largest |s| of n points s (3 per point, 1/m; 0 when n is 0): the data's resolution
 * 1 / s_max and the reconstruction's voxel 1 / (2 s_max oversampling). One function, so
 * the command line and the Python binding round it alike. */
double spf_s_max(int64_t n, const double *s);

/* Valid pixels that never saw a photon while their neighbours did: an unmasked beam stop,
 * dead pixels. sums: photons per pixel over all images (nx * ny, x fastest). A seed is a
 * valid pixel with sum 0 whose valid 8-neighbours (at least 3) saw at least
 * min_neighbour_mean photons on average: were it live, the chance of no photon is about
 * exp(-min_neighbour_mean), so ln(pixels) + ln(1e6) leaves a one-in-a-million chance of a
 * false flag on the whole detector. From the seeds, the flag spreads through connected
 * valid pixels with sum 0 (the inside of a beam stop has only dark neighbours). dead
 * (nx * ny) receives 1 for each flagged pixel, n_dead (may be NULL) their count. */
int spf_dead_pixels(int64_t nx, int64_t ny, const uint8_t *mask, const double *sums, double min_neighbour_mean,
                    uint8_t *dead, int64_t *n_dead);

#endif
