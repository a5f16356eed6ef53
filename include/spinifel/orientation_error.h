/* Validation: how far found orientations are from the true ones (simulated data), the
 * figure reconstruct's log, `spinifel orientations` and the tests report. */
#ifndef SPINIFEL_ORIENTATION_ERROR_H
#define SPINIFEL_ORIENTATION_ERROR_H

#include <stdint.h>

/* Median angle (degrees) between true and found orientations after fitting the global
 * rotation between the two frames: the best of the relative rotations of up to 200
 * images, refined as the chordal mean over the images within twice the median. R and
 * Rz(180) R give the same image but for the Ewald sphere's curvature (Friedel symmetry),
 * so each image counts the nearer of the two. percentile90 (may be NULL): the 90th.
 * Quaternions (w, x, y, z), n * 4 each. NaN for n < 1 or when memory runs out. */
double spf_orientation_error_median(int64_t n, const double *q_true, const double *q_found, double *percentile90);

/* The same, with every image's angle (degrees, n entries) in angles. */
double spf_orientation_errors(int64_t n, const double *q_true, const double *q_found, double *angles,
                              double *percentile90);

#endif
