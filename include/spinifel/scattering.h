/* Structure factors of a molecule at arbitrary reciprocal points, through the NUFFT.
 *
 *   F(h) = sum_atoms f_a(|h|) exp(2 pi i h . r_a),   f(s) = sum_{i<5} a_i exp(-b_i s^2 / 4) + c
 *
 * with h and s in 1/Angstrom, r in Angstrom, f in electrons (Waasmaier-Kirfel style
 * Gaussian form factors). Method: F(h) exp(-tau |h|^2) is the Fourier transform of a
 * sum of Gaussians (each form-factor term, widened by tau), which is sampled exactly on
 * a real-space grid at 4x the band limit s_max; one type-2 NUFFT evaluates it at any h
 * with |h| <= s_max, and dividing by exp(-tau |h|^2) gives F. All elements go through
 * one transform, with their form factors exact. Cost: one grid of the molecule at
 * make time, one FFT, then interpolation per point. */
#ifndef SPINIFEL_SCATTERING_H
#define SPINIFEL_SCATTERING_H

#include <complex.h>
#include <stdint.h>

typedef struct {
  double a[5], b[5], c; /* f(s) = sum a_i exp(-b_i s^2/4) + c, s in 1/Angstrom, b in A^2 */
} spf_gaussian_form_factor;

typedef struct spf_scattering_s spf_scattering;

/* Prepare F for n_atoms atoms at xyz (3 * n_atoms, x y z of atom 0 first, Angstrom) whose
 * form factors are ff[type[a]] (0 <= type < n_types). Valid for |h| <= s_max (1/A).
 * tol: relative l2 accuracy of F over a set of points, 1e-5 .. 1e-1 (below 1e-4 the
 * NUFFT runs in double). nthreads 0: OpenMP default. */
int spf_scattering_make(int64_t n_atoms, const double *xyz, const int *type, int n_types,
                        const spf_gaussian_form_factor *ff, double s_max, double tol,
                        int nthreads, spf_scattering **out);

/* F at n points h = (hx[j], hy[j], hz[j]) in 1/A; |h| must be <= s_max (SPF_ERR_ARG
 * otherwise). The plan keeps no pointer to the points after the call. */
int spf_scattering_eval(spf_scattering *sc, int64_t n, const float *hx, const float *hy,
                        const float *hz, float complex *F);

/* The slow, obvious reference: the direct sum over atoms, in double. */
void spf_scattering_direct(int64_t n_atoms, const double *xyz, const int *type,
                           const spf_gaussian_form_factor *ff, int64_t n, const float *hx,
                           const float *hy, const float *hz, double complex *F);

/* The molecule's electron density (electrons / A^3) on an n^3 grid, x fastest, voxel
 * (ix, iy, iz) centred at origin + voxel * (ix, iy, iz): the same Gaussians as F, each
 * widened by b_extra (A^2, > 0) so the map is band-limited for its grid (b_extra =
 * 2 pi^2 voxel^2 makes the narrowest blob half a voxel wide). */
int spf_scattering_density(int64_t n_atoms, const double *xyz, const int *type, int n_types,
                           const spf_gaussian_form_factor *ff, double b_extra, int64_t n, double voxel,
                           const double origin[3], int nthreads, float *out);

/* Grid size per dimension and seconds spent gridding the molecule (for reports). */
void spf_scattering_info(const spf_scattering *sc, int64_t *grid_n, double *grid_seconds);

void spf_scattering_free(spf_scattering *sc);

#endif
