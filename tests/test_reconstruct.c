/* The reconstruction's orientation-error metric. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "testing.h"

static void orientation_error_is_invariant_to_frame_and_friedel_flip(void)
{
  const int64_t n = 500;
  double *qt = malloc(sizeof(double) * 4 * n), *qf = malloc(sizeof(double) * 4 * n);
  spf_rng r;
  spf_rng_seed(&r, 3, 0);
  double g[4], zflip[4] = {0, 0, 0, 1};
  spf_random_rotation(&r, g);
  for (int64_t i = 0; i < n; i++) {
    spf_random_rotation(&r, qt + 4 * i);
    /* Found = truth in another frame (q g), every third image also Friedel-flipped. */
    double t[4];
    spf_quat_multiply(qt + 4 * i, g, t);
    if (i % 3 == 0) spf_quat_multiply(zflip, t, qf + 4 * i);
    else memcpy(qf + 4 * i, t, sizeof t);
  }
  double p90, med = spf_orientation_error_median(n, qt, qf, &p90);
  CHECK(med < 1e-5 && p90 < 1e-5, "same orientations in another frame: median %.2e p90 %.2e deg", med, p90);
  /* Perturb every image by 3 degrees about a random axis: the median error is 3. */
  for (int64_t i = 0; i < n; i++) {
    double ax[3], len = 0, d[4], t[4];
    for (int k = 0; k < 3; k++) ax[k] = spf_rng_normal(&r), len += ax[k] * ax[k];
    double h = 1.5 * M_PI / 180;
    d[0] = cos(h);
    for (int k = 0; k < 3; k++) d[k + 1] = sin(h) * ax[k] / sqrt(len);
    spf_quat_multiply(qf + 4 * i, d, t);
    memcpy(qf + 4 * i, t, sizeof t);
  }
  med = spf_orientation_error_median(n, qt, qf, &p90);
  CHECK(fabs(med - 3.0) < 0.5, "3 degree perturbations: median %.3f", med);
  /* Unrelated orientations: large errors. */
  for (int64_t i = 0; i < n; i++) spf_random_rotation(&r, qf + 4 * i);
  med = spf_orientation_error_median(n, qt, qf, &p90);
  CHECK(med > 60, "random orientations: median %.1f deg", med);
  free(qt);
  free(qf);
}

int main(void)
{
  RUN_TEST(orientation_error_is_invariant_to_frame_and_friedel_flip);
  return test_summary();
}
