/* The diffraction simulator: images of one molecule in random orientations.
 *
 * Per image i: a uniformly random orientation q_i (Shoemake), the structure factor at
 * h = R(q_i)^T s for every valid pixel (through spf_scattering), the expected photon
 * count  fluence_i * r_e^2 * (solid angle * polarization)_p * |F(h)|^2  plus a flat
 * background, then Poisson noise. Every random number of image i comes from streams
 * (seed, i), so the images do not depend on the batch size or the thread count.
 * Memory is bounded by one batch of images, whatever the number of images. */
#ifndef SPINIFEL_SIMULATE_H
#define SPINIFEL_SIMULATE_H

#include <stdint.h>

#include "spinifel/scattering.h"

#define SPF_R_ELECTRON_M 2.8179403262e-15 /* classical electron radius (CODATA 2018) */

/* The detector as the simulator sees it: flat pixel arrays, pixel p of every array
 * being the same pixel (the detector's own order). */
typedef struct {
  int64_t n_pixels;
  const double *s_inv_m;      /* 3 * n_pixels: (sx, sy, sz) of pixel 0 first, in 1/m */
  const double *weight_sr;    /* solid angle times polarization factor, per pixel */
  const uint8_t *mask;        /* 1: valid pixel; 0: masked (written as 0 photons) */
} spf_sim_pixels;

typedef struct {
  int64_t n_images;
  uint64_t seed;
  double fluence;         /* photons per m^2 per pulse (default 1e24, i.e. 1e12 per um^2) */
  double fluence_jitter;  /* relative spread of the per-shot fluence, log-normal with mean 1
                             (default 0: every shot the same) */
  double background;      /* mean background photons per valid pixel (default 0) */
  int poisson;            /* 1: Poisson photon noise (default); 0: expected counts */
  int batch_images;       /* images per structure-factor batch (default 64) */
  int nthreads;           /* 0: OpenMP default */
} spf_simulate_options;

void spf_simulate_default_options(spf_simulate_options *o);

/* Receives consecutive batches: images (count * n_pixels photons, image-major) and their
 * orientations (count * 4, w x y z). Returns 0 to go on, an error code to stop. */
typedef int (*spf_image_sink)(void *ctx, int64_t first, int64_t count, const float *images,
                              const double *quaternions);
/* Called after each batch (may be NULL). */
typedef void (*spf_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct {
  double slicing;   /* structure factors at the rotated pixels */
  double noise;     /* intensities, fluence jitter and Poisson noise */
  double output;    /* time spent in the sink */
} spf_simulate_timing;

/* Simulate o->n_images images of the molecule behind sc. timing may be NULL.
 * Every |s| of a valid pixel must be within the band limit sc was made for. */
int spf_simulate_images(spf_scattering *sc, const spf_sim_pixels *px, const spf_simulate_options *o,
                        spf_image_sink sink, void *sink_ctx, spf_progress_fn progress,
                        void *progress_ctx, spf_simulate_timing *timing);

/* Orientation of image i: the same one spf_simulate_images uses. */
void spf_simulate_orientation(uint64_t seed, int64_t image, double q[4]);

#endif
