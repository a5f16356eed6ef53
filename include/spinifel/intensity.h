/* The 3D diffraction intensity on reconstruct's grid, on an absolute scale.
 *
 * reconstruct's intensity (results.h5 "intensity", spf_intensity_from_autocorrelation in
 * results.h) is I = Re FFT(u) on the centred M^3 grid (M odd), x fastest: index a of an
 * axis is mode m = a - (M-1)/2. Slicing evaluates I(s) = Re sum_k u_k exp(i k . x) at
 * x = pi s / (s_max oversampling) (slicing.h), and FFT mode m is x = 2 pi m / M (u is
 * real, so the FFT's sign does not matter), so voxel (m1, m2, m3) holds I at
 *
 *   s = (m1, m2, m3) * 2 s_max oversampling / M,
 *
 * one voxel being 2 s_max oversampling / M = 1 / (M voxel_angstrom) in 1/A, where
 * voxel_angstrom = 1 / (2 s_max oversampling) is the density's voxel. s_max is the largest
 * |s| of the dataset's valid pixels, as reconstruct computes it. The data sample |s| from
 * the beam stop to the detector's corner; the inscribed ball of the grid, index radius
 * (M-1)/2, reaches (M-1)/M s_max oversampling. (test_intensity checks this mapping against
 * the slicer.) */
#ifndef SPINIFEL_INTENSITY_H
#define SPINIFEL_INTENSITY_H

#include <stdint.h>

#include "spinifel/scattering.h"

/* The grid of an intensity volume and the radii of the data, all in 1/A. */
typedef struct {
  int64_t M;                    /* grid size per axis, odd */
  double oversampling;          /* reconstruct's NUFFT oversampling (its default: 1) */
  double s_max_inv_angstrom;    /* largest |s| of a valid pixel: the grid's scale */
  double voxel_inv_angstrom;    /* one index step: 2 s_max oversampling / M */
  double corner_inv_angstrom;   /* the data's corner radius: the largest |s| of a valid
                                   pixel (= s_max; pixel centres, not pixel edges) */
  double edge_inv_angstrom;     /* the data's edge radius: how far out the valid pixels ring
                                   the beam on every side, the smallest over azimuth wedges
                                   (about sqrt(valid pixels) of them) of the largest |s| in
                                   the wedge: for a square detector, about the middle of its
                                   nearest edge. Every shell up to the corner is swept by the
                                   rotations, but beyond the edge only part of each ring lies
                                   on the detector (fewer pixels per voxel) */
  double beamstop_inv_angstrom; /* the smallest |s| of a valid pixel: shells below it hold
                                   no data (with no beam stop, the pixel nearest the beam) */
} spf_intensity_grid;

/* The grid of an M^3 intensity for a detector of n_pixels pixels in any order (a pixel
 * array or an EMC detector file): s_inv_m 3 per pixel (sx, sy, sz of pixel 0 first, 1/m,
 * as in the dataset; the beam along z), mask 1 for a valid pixel. SPF_ERR_SIZE for an even
 * or too small M or no pixel, SPF_ERR_ARG for oversampling < 1, SPF_ERR_DATA when no pixel
 * is valid or some |s| is not finite. */
int spf_intensity_grid_make(int64_t M, double oversampling, int64_t n_pixels, const double *s_inv_m,
                            const uint8_t *mask, spf_intensity_grid *g);

/* Radius in 1/A of an index radius r (voxels from the centre), and back. */
double spf_intensity_grid_inv_angstrom(const spf_intensity_grid *g, double r);
double spf_intensity_grid_index_radius(const spf_intensity_grid *g, double s_inv_angstrom);

/* The molecule's intensity on the grid: out[(a3 M + a2) M + a1] = scale |F(s)|^2 at
 * s = voxel_inv_angstrom (a1 - c, a2 - c, a3 - c), c = (M-1)/2, F in electrons (the
 * simulator's F: scattering.h), the whole cube (corners reach sqrt(3) (M-1)/2 voxels).
 * Atoms as for spf_scattering_make, in the molecule's own frame: an image with
 * orientation R samples this volume at R^T s. scale: 1 gives electrons^2; the simulator's
 * fluence (photons/m^2) times r_e^2 (m^2) gives photons per steradian. The structure
 * factors come from one spf_scattering plan (NUFFT) with relative l2 accuracy tol
 * (1e-5 .. 1e-1), so the intensity's is about 2 tol. nthreads 0: OpenMP default. */
int spf_intensity_of_molecule(int64_t n_atoms, const double *xyz, const int *type, int n_types,
                              const spf_gaussian_form_factor *ff, const spf_intensity_grid *g, double scale,
                              double tol, int nthreads, double *out);

#endif
