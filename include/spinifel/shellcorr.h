/* Comparison of two 3D intensities on the same centred M^3 grid (M odd, x fastest), the
 * figure EMC users quote (docs/method.md, "Comparing two intensities"):
 * align one to the other by a rotation, then the Pearson correlation per shell of |q|, and
 * the radius where it falls below 0.5.
 *
 * Shells: voxel a (per axis) is at index offset q = a - (M-1)/2; shell k holds the voxels
 * whose |q| rounds to k, k = 0 .. (M-1)/2, so SPF_SHELLS(M) shells fill the grid's
 * inscribed ball (the cube's corners are left out: no shell there is whole). intensity.h
 * turns an index radius into 1/A.
 *
 * Intensities are centrosymmetric (Friedel) and the same for both hands of a molecule, and
 * their origin is fixed at the grid centre: the alignment is a rotation about the centre,
 * with no hand and no translation. */
#ifndef SPINIFEL_SHELLCORR_H
#define SPINIFEL_SHELLCORR_H

#include <stdint.h>

#define SPF_SHELLS(M) (((M) - 1) / 2 + 1)

/* Pearson correlation of a and b per shell, over the voxels with r_min <= |q| <= r_max
 * (index units; r_max <= 0 or beyond (M-1)/2 means (M-1)/2, so 0 and 0 take the whole
 * ball): corr[k] for k = 0 .. SPF_SHELLS(M) - 1, NAN for a shell with fewer than 2 such
 * voxels or on which either volume is constant (shell 0 is one voxel: always NAN); count
 * (may be NULL) receives the voxels used per shell. Two passes in double (means, then
 * centred sums). */
int spf_shell_correlation(int64_t M, const double *a, const double *b, double r_min, double r_max, double *corr,
                          int64_t *count);

/* Where the curve first falls below threshold going out from shell first to shell last
 * (NAN shells skipped): the radius in shell units, linear between the last shell at or
 * above the threshold and the first below; the first defined shell's own radius if it is
 * already below. +INFINITY when no shell in [first, last] is below, NAN when none is
 * defined. */
double spf_shell_crossing(const double *corr, int64_t first, int64_t last, double threshold);

/* The mean of the defined (not NAN) shells first .. last, each shell counting once; NAN if
 * none is defined. */
double spf_shell_mean(const double *corr, int64_t first, int64_t last);

typedef struct {
  int64_t n_rotations; /* coarse search: spf_orientation_grid of this size (default 4000,
                          covering radius about 12 degrees) */
  int n_candidates;    /* best coarse rotations refined, at least 2 covering radii apart
                          (default 8) */
  int refine_steps;    /* local search: rotations by +-step about x, y and z while one
                          improves, then the step halves; from 6 degrees, this many steps
                          (default 7: last step 6 / 2^6 = 0.094 degrees), at least 1 */
  double r_min, r_max; /* voxels used: r_min <= |q| <= r_max, index units (default 1 and 0;
                          r_max <= 0 or beyond (M-1)/2: (M-1)/2). Set r_min to the beam
                          stop's radius: the shells inside it hold no data */
  int interpolation;   /* how mov is turned for the figure and the polish:
                          SPF_INTERP_FOURIER (default): spf_rotate_intensity, exact for
                          reconstruct's intensity, a Fourier sum on the grid;
                          SPF_INTERP_TRILINEAR: spf_rotate_volume (align.h), local, for
                          volumes that are no such sum (a measured or noisy map: noise on
                          the bright centre rings through a Fourier sum to every shell),
                          no polish; it smooths speckles a few voxels wide, so an exact
                          copy scores below 1 (0.98 at M = 31 in shellcorr_bench) */
  int nthreads;        /* 0: OpenMP default */
} spf_shellcorr_options;

enum { SPF_INTERP_FOURIER = 0, SPF_INTERP_TRILINEAR = 1 };

void spf_shellcorr_default_options(spf_shellcorr_options *o);

typedef struct {
  double score;         /* the mean shell correlation over the shells used of ref and the
                           aligned mov (turned as o->interpolation says): the figure */
  double search_score;  /* the coarse and local search's best, with trilinear interpolation
                           (lower: trilinear smooths speckles a few voxels wide) */
  double quat[4];       /* R, w >= 0: aligned(x) = mov(R^T x) about the grid centre */
  double precision_deg; /* the local searches' last step: quat is a local maximum of score
                           against rotations by this angle about x, y and z. Measured on
                           exact rotated copies (Fourier interpolation): within 0.18 deg
                           of the true rotation (2 last steps) at M = 15 and 21
                           (test_shellcorr), 0.06 deg at M = 31 and 51 (shellcorr_bench);
                           trilinear: within 0.4 deg at M = 15, 0.08 at 21 */
  int64_t evaluations;  /* scores computed */
} spf_shellcorr_result;

/* Align mov to ref by a rotation about the grid centre, maximising the mean over the shells
 * used of the per-shell Pearson correlation of ref and mov rotated, which counts every
 * shell once (a correlation over all the voxels would be the few bright low shells', which
 * are nearly round). Coarse search over the orientation grid (parallel over rotations),
 * then a local search from each candidate (parallel over candidates), both with trilinear
 * interpolation (fast); then, with Fourier interpolation, the best is polished by the same
 * local search, from 4 last steps down to the last, on the interpolation of
 * spf_rotate_intensity (the Fourier sum by a NUFFT, exact for reconstruct's intensity).
 * The same result whatever the thread count. aligned (may be NULL): mov rotated by quat
 * with that interpolation (zero outside the cube for trilinear). SPF_ERR_DATA
 * for a NaN or infinite voxel, or when ref is constant on every shell used.
 * Turn the reconstruction onto the truth (mov = reconstruction): its rotation is exact. */
int spf_shellcorr_align(int64_t M, const double *ref, const double *mov, const spf_shellcorr_options *o,
                        spf_shellcorr_result *r, double *aligned);

/* out(q) = in(R^T q), q relative to the grid centre, by trigonometric interpolation: in is
 * taken as Re sum_k u_k exp(i k . x), x = 2 pi q / M, with u its inverse transform (u =
 * the cos transform of in / M^3, which is reconstruct's autocorrelation when in is its
 * intensity), evaluated at R^T q by a type-2 NUFFT (double, relative accuracy 1e-9, one
 * thread: the same bits whatever the thread count). Exact for reconstruct's intensity, which is
 * this sum (slicing.h); for sampled |F|^2 exact when the molecule's autocorrelation fits
 * the grid. The whole cube (the corners, beyond the inscribed ball, are periodic images).
 * in and out must not overlap. */
int spf_rotate_intensity(int64_t M, const double *in, const double q[4], double *out);

#endif
