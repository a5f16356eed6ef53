/* Rotations as unit quaternions q = (w, x, y, z); q and -q are the same rotation.
 * Matrix convention of docs/method.md, "Rotations" (skopi, SpiniFEL files):
 *   R = [[1-2(y^2+z^2), 2(xy-wz), 2(xz+wy)], [2(xy+wz), 1-2(x^2+z^2), 2(yz-wx)],
 *        [2(xz-wy), 2(yz+wx), 1-2(x^2+y^2)]],  row-major R[9];
 * an image with orientation R samples the molecule at h = R^T s. */
#ifndef SPINIFEL_ROTATION_H
#define SPINIFEL_ROTATION_H

#include <stdint.h>

#include "spinifel/random.h"

void spf_quat_to_matrix(const double q[4], double r[9]);
/* The unit quaternion with w >= 0 of a rotation matrix (Shepperd's method). */
void spf_matrix_to_quat(const double r[9], double q[4]);
void spf_quat_normalize(double q[4]);
/* Composition: R(a * b) = R(a) R(b). */
void spf_quat_multiply(const double a[4], const double b[4], double out[4]);
/* Inverse rotation (conjugate). */
void spf_quat_conjugate(const double q[4], double out[4]);
/* Angle in radians of the rotation taking a to b: 2 acos(|<a, b>|). */
double spf_quat_angle(const double a[4], const double b[4]);
/* Uniformly random rotation (Shoemake, Graphics Gems III), w >= 0. */
void spf_random_rotation(spf_rng *r, double q[4]);

/* The deterministic near-uniform grid of n orientations: the super-Fibonacci spiral
 * (Alexa, CVPR 2022), canonicalised to w >= 0. Orientations first .. first+count-1 are
 * computed on the fly (4 doubles each), so 10^7 orientations need no table.
 * Returns SPF_ERR_SIZE unless 1 <= n and 0 <= first <= first + count <= n. */
int spf_orientation_grid(int64_t n, int64_t first, int64_t count, double *q);

/* Measured covering radius of the size-n grid in radians: the largest angle from
 * n_probe random rotations (seeded) to their nearest grid orientation. Brute force,
 * O(n n_probe): a measurement, not a hot path. */
double spf_orientation_grid_covering_radius(int64_t n, int64_t n_probe, uint64_t seed, int nthreads);

/* The radius of a ball of rotations holding 1/n of SO(3): (theta - sin theta) / pi = 1/n.
 * No grid of n rotations covers SO(3) with a smaller radius. */
double spf_orientation_ball_radius(int64_t n);

#endif
