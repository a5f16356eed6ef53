/* Alignment of two densities on the same centred M^3 grid (M odd). A reconstruction is
 * defined up to a rotation, a translation and the hand (docs/method.md,
 * "Quality"): mov is turned about its centre of mass (of the positive part) onto ref's,
 * over a near-uniform grid of rotations, for both hands, each rotation followed by the
 * best circular translation (cross-correlation by FFT); the best few are refined
 * locally. The figure is the Pearson correlation over the grid. */
#ifndef SPINIFEL_ALIGN_H
#define SPINIFEL_ALIGN_H

#include <stdint.h>

typedef struct {
  int64_t n_rotations; /* coarse search grid (default 4000: covering radius ~12 deg); 0: no
                          search, both hands start from `start` */
  int refine_steps;    /* halvings of the local search step, from 6 deg (default 7); 0: none */
  int nthreads;        /* 0: OpenMP default */
  double start[4];     /* with n_rotations 0: the rotation (default identity), found some
                          other way. Two reconstructions' intensities fix it without the
                          phasing's noise (spf_shellcorr_align; the intensity is the same
                          for both hands and any shift): then only the hand and the shift
                          are left to find, with refine_steps 0 */
} spf_align_options;

void spf_align_default_options(spf_align_options *o);

typedef struct {
  double correlation;  /* Pearson correlation of ref and aligned mov */
  double quat[4];      /* rotation R applied to mov about its centre of mass, which goes to ref's */
  int inverted;        /* 1: mov' (x) = mov(-x), the other hand; 0: mov' = mov */
  int shift[3];        /* circular shift (x, y, z voxels) applied after the rotation */
} spf_align_result;

/* Align mov to ref (M^3 each, x fastest). aligned (may be NULL) receives mov aligned. */
int spf_align(int64_t M, const double *ref, const double *mov, const spf_align_options *o, spf_align_result *r,
              double *aligned);

/* out(x) = in(R^T x) about the grid centre (x relative to (M-1)/2), trilinear, zero
 * outside; invert: use in(-x). */
void spf_rotate_volume(int64_t M, const double *in, const double q[4], int invert, double *out);

#endif
