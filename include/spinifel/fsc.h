/* Fourier shell correlation of two densities on the same centred M^3 grid
 * (docs/method.md, "Quality"): per shell of integer radius k of the Fourier
 * index, FSC(k) = Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2). Shell k is the
 * resolution d = M voxel / k. */
#ifndef SPINIFEL_FSC_H
#define SPINIFEL_FSC_H

#include <stdint.h>

#include "spinifel/molecule.h"

/* fsc: (M - 1) / 2 + 1 values, shell 0 (the mean) to the Nyquist shell (M - 1) / 2.
 * Densities are x fastest, M odd. */
int spf_fsc(int64_t M, const double *a, const double *b, double *fsc);

/* Resolution (in the unit of voxel) where the curve first falls below threshold,
 * interpolated linearly between shells; the Nyquist resolution 2 voxel M / (M - 1) when
 * it never does. */
double spf_fsc_resolution(int64_t M, const double *fsc, double voxel, double threshold);

/* Resolution where the curve falls below threshold for good: after the outermost shell at
 * or above it (shell 0 counts as above), interpolated linearly to the next; the Nyquist
 * resolution when the last shell is at or above it. A shell or two of weak signal (a
 * minimum of the particle's intensity) can dip below the threshold with the shells
 * beyond it well above: the first crossing then reads the dip. The watch reads this one
 * (docs/watch.md): at 237 photons per image the first crossing jumped from 14 to 25 A in
 * 2 of 14 settled bursts (and 1 of the 6 before) on such a dip; this one stayed at 13.4-15.8 A
 * in the settled bursts. */
double spf_fsc_resolution_outer(int64_t M, const double *fsc, double voxel, double threshold);

/* A reference density for a reconstruction: the molecule (atoms centred on their centre
 * of mass, the simulator's form factors) on a centred M^3 grid of the given voxel
 * (Angstrom), each atom blurred by B = 2 pi^2 voxel^2 so the map is band-limited for its
 * grid (the same map `simulate --mrc` writes, on this grid). */
int spf_reference_density(const spf_molecule *m, int64_t M, double voxel, int nthreads, double *out);

#endif
