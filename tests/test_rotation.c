/* Rotations: conventions, uniform sampling, and the orientation grid's coverage. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "spinifel/rotation.h"
#include "testing.h"

static void random_quat(spf_rng *r, double q[4]) { spf_random_rotation(r, q); }

static void matrices_are_rotations_and_round_trip(void)
{
  spf_rng r;
  spf_rng_seed(&r, 1, 0);
  double worst_orth = 0, worst_rt = 0, worst_comp = 0;
  for (int t = 0; t < 1000; t++) {
    double q[4], m[9], q2[4], a[4], ab[4], ma[9], mb[9], mab[9];
    random_quat(&r, q);
    spf_quat_to_matrix(q, m);
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++) {
        double s = 0;
        for (int k = 0; k < 3; k++) s += m[3 * i + k] * m[3 * j + k];
        worst_orth = fmax(worst_orth, fabs(s - (i == j)));
      }
    double det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
    worst_orth = fmax(worst_orth, fabs(det - 1));
    spf_matrix_to_quat(m, q2);
    worst_rt = fmax(worst_rt, spf_quat_angle(q, q2));
    random_quat(&r, a);
    spf_quat_multiply(q, a, ab);
    spf_quat_to_matrix(q, ma);
    spf_quat_to_matrix(a, mb);
    spf_quat_to_matrix(ab, mab);
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++) {
        double s = 0;
        for (int k = 0; k < 3; k++) s += ma[3 * i + k] * mb[3 * k + j];
        worst_comp = fmax(worst_comp, fabs(s - mab[3 * i + j]));
      }
  }
  CHECK(worst_orth < 1e-12, "R R^T = I and det R = 1: %.2e", worst_orth);
  CHECK(worst_rt < 1e-7, "q -> R -> q: %.2e rad", worst_rt);
  CHECK(worst_comp < 1e-12, "R(a b) = R(a) R(b): %.2e", worst_comp);
  /* The spec's matrix: 90 degrees about z, q = (cos 45, 0, 0, sin 45), maps x to y. */
  double qz[4] = {cos(M_PI / 4), 0, 0, sin(M_PI / 4)}, mz[9], id[4] = {1, 0, 0, 0}, neg[4];
  spf_quat_to_matrix(qz, mz);
  CHECK(fabs(mz[3] - 1) < 1e-15 && fabs(mz[1] + 1) < 1e-15, "R_z(90) maps x to y");
  CHECK(fabs(spf_quat_angle(id, qz) - M_PI / 2) < 1e-12, "angle of a 90 degree turn");
  for (int i = 0; i < 4; i++) neg[i] = -qz[i];
  CHECK(spf_quat_angle(qz, neg) == 0, "q and -q are one rotation");
  double inv[4], prod[4];
  spf_quat_conjugate(qz, inv);
  spf_quat_multiply(qz, inv, prod);
  CHECK(spf_quat_angle(prod, id) < 1e-12, "q q^-1 = 1");
}

/* Haar measure: the rotation angle has density (1 - cos t) / pi on [0, pi], so
 * P(angle < pi/2) = (pi/2 - 1)/pi = 0.18169; w has density (2/pi) sqrt(1 - w^2), so
 * E|w| = 4 / (3 pi) = 0.42441 with standard deviation sqrt(1/4 - E|w|^2) = 0.2649. */
static void shoemake_samples_are_uniform(void)
{
  spf_rng r;
  spf_rng_seed(&r, 2, 0);
  const int n = 200000;
  int below = 0;
  double mean_w = 0, id[4] = {1, 0, 0, 0};
  for (int i = 0; i < n; i++) {
    double q[4];
    spf_random_rotation(&r, q);
    below += spf_quat_angle(q, id) < M_PI / 2;
    mean_w += fabs(q[0]) / n;
  }
  double p = (M_PI / 2 - 1) / M_PI, frac = (double)below / n, sd = sqrt(p * (1 - p) / n);
  CHECK(fabs(frac - p) < 5 * sd, "P(angle < 90 deg) = %.5f, expected %.5f (5 sd = %.5f)", frac, p, 5 * sd);
  CHECK(fabs(mean_w - 4 / (3 * M_PI)) < 5 * 0.2649 / sqrt(n), "E|w| = %.5f, expected %.5f", mean_w, 4 / (3 * M_PI));
}

static void grid_is_deterministic_unit_and_chunkable(void)
{
  const int64_t n = 1000;
  double *all = malloc(sizeof(double) * 4 * n), *part = malloc(sizeof(double) * 4 * n);
  CHECK(spf_orientation_grid(n, 0, n, all) == SPF_OK, "whole grid");
  for (int64_t f = 0; f < n; f += 333) spf_orientation_grid(n, f, n - f < 333 ? n - f : 333, part + 4 * f);
  int same = 1;
  double worst = 0;
  for (int64_t i = 0; i < 4 * n; i++) same &= all[i] == part[i];
  for (int64_t i = 0; i < n; i++) {
    double *q = all + 4 * i;
    worst = fmax(worst, fabs(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3] - 1));
    same &= q[0] >= 0;
  }
  CHECK(same, "chunks equal the whole grid, w >= 0");
  CHECK(worst < 1e-14, "unit quaternions: %.2e", worst);
  CHECK(spf_orientation_grid(n, 990, 20, part) == SPF_ERR_SIZE, "range beyond n");
  free(all);
  free(part);
}

/* Covering radius ~ n^(-1/3): each 8x more orientations halves it. The measured radius
 * over the ideal ball radius was 1.38-1.44 for these sizes; the bound is 1.3x that. */
static void grid_covering_radius_shrinks_like_cube_root(void)
{
  const int64_t sizes[3] = {1000, 8000, 64000};
  const int64_t probes = test_small_scale() ? 4000 : 20000;
  double rad[3];
  for (int i = 0; i < 3; i++) {
    rad[i] = spf_orientation_grid_covering_radius(sizes[i], probes, 5, 0);
    double ideal = spf_orientation_ball_radius(sizes[i]);
    printf("  n %6lld: covering radius %.2f deg, ideal ball %.2f deg, ratio %.2f\n", (long long)sizes[i],
           rad[i] * 180 / M_PI, ideal * 180 / M_PI, rad[i] / ideal);
    CHECK(rad[i] / ideal < 1.8, "n %lld: covering / ideal = %.2f", (long long)sizes[i], rad[i] / ideal);
  }
  for (int i = 0; i < 2; i++)
    CHECK(rad[i + 1] / rad[i] > 0.4 && rad[i + 1] / rad[i] < 0.62, "ratio %lld -> %lld: %.3f", (long long)sizes[i],
          (long long)sizes[i + 1], rad[i + 1] / rad[i]);
}

int main(void)
{
  RUN_TEST(matrices_are_rotations_and_round_trip);
  RUN_TEST(shoemake_samples_are_uniform);
  RUN_TEST(grid_is_deterministic_unit_and_chunkable);
  RUN_TEST(grid_covering_radius_shrinks_like_cube_root);
  return test_summary();
}
