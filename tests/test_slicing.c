/* Slicing against direct evaluation of the volume's Fourier sum. */
#include <complex.h>
#include <math.h>

#include "spinifel/spinifel.h"
#include "spinifel/slicing.h"
#include "testing.h"

/* A rotation matrix from a unit quaternion (w, x, y, z), as in docs/method.md ("Rotations"). */
static void quat_matrix(const double q[4], double r[9])
{
  double w = q[0], x = q[1], y = q[2], z = q[3];
  double m[9] = {1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                 2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)};
  for (int i = 0; i < 9; i++) r[i] = m[i];
}

static void slices_match_direct_evaluation(void)
{
  const int64_t m = 11, n = m * m * m, side = 12, np = side * side, nor = 5;
  double *s = malloc(sizeof(double) * 3 * np), u[1331];
  spf_rng r;
  spf_rng_seed(&r, 4, 0);
  for (int64_t i = 0; i < n; i++) u[i] = spf_rng_normal(&r);
  /* A flat detector's pixels on an Ewald sphere of radius 2 (arbitrary units). */
  double smax = 0;
  for (int64_t p = 0; p < np; p++) {
    double px = (p % side - 5.5) * 0.1, py = (p / side - 5.5) * 0.1, d = 1.0, len = sqrt(px * px + py * py + d * d);
    s[3 * p] = 2 * px / len;
    s[3 * p + 1] = 2 * py / len;
    s[3 * p + 2] = 2 * (d / len - 1);
    smax = fmax(smax, sqrt(s[3 * p] * s[3 * p] + s[3 * p + 1] * s[3 * p + 1] + s[3 * p + 2] * s[3 * p + 2]));
  }
  double rot[9 * 5];
  for (int k = 0; k < nor; k++) {
    double q[4], nq = 0;
    for (int i = 0; i < 4; i++) q[i] = spf_rng_normal(&r), nq += q[i] * q[i];
    for (int i = 0; i < 4; i++) q[i] /= sqrt(nq);
    quat_matrix(q, rot + 9 * k);
  }
  const double tols[] = {1e-3, 1e-5};
  for (int t = 0; t < 2; t++) {
    spf_slicer *sl;
    CHECK(spf_slicer_make(m, np, s, smax, 1.0, tols[t], nor, 0, &sl) == SPF_OK, "make");
    CHECK(spf_slicer_set_volume(sl, u) == SPF_OK, "volume");
    float *img = malloc(sizeof(float) * nor * np);
    CHECK(spf_slicer_slice(sl, nor, rot, img) == SPF_OK, "slice");
    double err = 0, nrm = 0, *x = malloc(sizeof(double) * 3 * np);
    double complex *c = malloc(sizeof(double complex) * np), f[1331];
    for (int64_t i = 0; i < n; i++) f[i] = u[i];
    int64_t nm[3] = {m, m, m};
    for (int k = 0; k < nor; k++) {
      spf_slicer_points(sl, rot + 9 * k, x, x + np, x + 2 * np);
      spf_nufft_direct(2, 3, nm, +1, 0, np, x, x + np, x + 2 * np, c, f);
      for (int64_t p = 0; p < np; p++) {
        err += pow(img[k * np + p] - creal(c[p]), 2);
        nrm += pow(creal(c[p]), 2);
      }
    }
    CHECK(sqrt(err / nrm) <= 10 * tols[t], "tol %.0e: slice error %.2e", tols[t], sqrt(err / nrm));
    printf("  tol %.0e: relative l2 error %.2e\n", tols[t], sqrt(err / nrm));
    free(img); free(x); free(c);
    spf_slicer_free(sl);
  }
  /* Pixels beyond s_max * oversampling are refused; slicing before a volume is too. */
  spf_slicer *sl;
  CHECK(spf_slicer_make(m, np, s, smax * 0.5, 1.0, 1e-3, 1, 0, &sl) == SPF_ERR_ARG, "pixel beyond band");
  CHECK(spf_slicer_make(m, np, s, smax, 1.0, 1e-3, 1, 0, &sl) == SPF_OK, "make");
  float one[144];
  CHECK(spf_slicer_slice(sl, 1, rot, one) == SPF_ERR_NO_MODES, "no volume yet");
  CHECK(spf_slicer_slice(sl, 2, rot, one) == SPF_ERR_SIZE, "batch above max_orient");
  spf_slicer_free(sl);
  free(s);
}

int main(void)
{
  RUN_TEST(slices_match_direct_evaluation);
  return test_summary();
}
