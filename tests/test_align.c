/* Alignment of densities: a rotated, inverted, shifted copy is found again. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "testing.h"

/* A blobby density: n Gaussian blobs within radius rmax of the centre. */
static void blobs(int64_t M, int n, double rmax, double sigma, uint64_t seed, double *out)
{
  spf_rng r;
  spf_rng_seed(&r, seed, 0);
  double c[64][4];
  for (int b = 0; b < n; b++) {
    double len;
    do {
      for (int k = 0; k < 3; k++) c[b][k] = rmax * (2 * spf_rng_uniform(&r) - 1);
      len = sqrt(c[b][0] * c[b][0] + c[b][1] * c[b][1] + c[b][2] * c[b][2]);
    } while (len > rmax);
    c[b][3] = 0.5 + spf_rng_uniform(&r);
  }
  const double h = 0.5 * (double)(M - 1);
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < M; x++) {
        double v = 0;
        for (int b = 0; b < n; b++) {
          double d2 = pow(x - h - c[b][0], 2) + pow(y - h - c[b][1], 2) + pow(z - h - c[b][2], 2);
          v += c[b][3] * exp(-d2 / (2 * sigma * sigma));
        }
        out[(z * M + y) * M + x] = v;
      }
}

/* mov = ref turned by q (and inverted), then shifted circularly by s voxels; rot: work. */
static void turned_copy(int64_t M, const double *ref, const double q[4], int inv, const int s[3], double *rot,
                        double *mov)
{
  spf_rotate_volume(M, ref, q, inv, rot);
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < M; x++)
        mov[(((z + s[2]) % M + M) % M * M + ((y + s[1]) % M + M) % M) * M + ((x + s[0]) % M + M) % M] =
            rot[(z * M + y) * M + x];
}

static void finds_rotation_hand_and_shift(void)
{
  const int64_t M = 21, n = M * M * M;
  double *ref = malloc(sizeof(double) * n), *rot = malloc(sizeof(double) * n), *mov = malloc(sizeof(double) * n);
  double *al = malloc(sizeof(double) * n);
  blobs(M, 7, 5.0, 1.5, 11, ref);
  spf_rng r;
  spf_rng_seed(&r, 4, 0);
  for (int inv = 0; inv <= 1; inv++) {
    double qt[4];
    spf_random_rotation(&r, qt);
    const int s[3] = {2, -1, 3};
    turned_copy(M, ref, qt, inv, s, rot, mov);
    spf_align_options o;
    spf_align_default_options(&o);
    o.n_rotations = 2000;
    spf_align_result res;
    CHECK(spf_align(M, ref, mov, &o, &res, al) == SPF_OK, "align");
    double qi[4];
    spf_quat_conjugate(qt, qi);
    const double ang = spf_quat_angle(res.quat, qi) * 180 / M_PI;
    CHECK(res.correlation > 0.98, "hand %d: correlation %.4f", inv, res.correlation);
    CHECK(res.inverted == inv, "hand %d found as %d", inv, res.inverted);
    CHECK(ang < 3, "hand %d: rotation off by %.2f deg", inv, ang);
    /* The aligned copy is the one the correlation describes. */
    double m1 = 0, m2 = 0, sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < n; i++) m1 += ref[i] / n, m2 += al[i] / n;
    for (int64_t i = 0; i < n; i++)
      sxy += (ref[i] - m1) * (al[i] - m2), sxx += pow(ref[i] - m1, 2), syy += pow(al[i] - m2, 2);
    CHECK(fabs(sxy / sqrt(sxx * syy) - res.correlation) < 0.02, "aligned copy correlation %.4f vs %.4f",
          sxy / sqrt(sxx * syy), res.correlation);
    printf("  hand %d: correlation %.4f, rotation error %.2f deg, shift %d %d %d\n", inv, res.correlation, ang,
           res.shift[0], res.shift[1], res.shift[2]);
  }
  /* An unrelated density does not align well. */
  blobs(M, 7, 5.0, 1.5, 99, mov);
  spf_align_options o;
  spf_align_default_options(&o);
  o.n_rotations = 500;
  spf_align_result res;
  CHECK(spf_align(M, ref, mov, &o, &res, NULL) == SPF_OK, "align unrelated");
  CHECK(res.correlation < 0.85, "unrelated densities correlate %.3f", res.correlation);
  printf("  unrelated: correlation %.3f\n", res.correlation);
  CHECK(spf_align(20, ref, mov, NULL, &res, NULL) == SPF_ERR_SIZE, "even M refused");
  free(ref); free(rot); free(mov); free(al);
}

/* A copy turned by a rotation that maps the grid onto itself (90 degrees about z, then
 * about x), inverted and shifted by whole voxels: no resampling error, so once aligned
 * the FSC stays near 1 to Nyquist, for a density with power there (sharp blobs). */
static void exact_copy_gives_fsc_one_to_nyquist(void)
{
  const int64_t M = 21, n = M * M * M;
  double *ref = malloc(sizeof(double) * n), *rot = malloc(sizeof(double) * n), *mov = malloc(sizeof(double) * n);
  double *al = malloc(sizeof(double) * n), fsc[16];
  blobs(M, 12, 6.0, 0.8, 12, ref);
  const double h = sqrt(0.5), qz[4] = {h, 0, 0, h}, qx[4] = {h, h, 0, 0};
  double qt[4];
  spf_quat_multiply(qx, qz, qt);
  spf_rotate_volume(M, ref, qt, 1, rot);
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < M; x++) mov[(((z + 1) % M) * M + (y + M - 2) % M) * M + x] = rot[(z * M + y) * M + x];
  spf_align_result res;
  CHECK(spf_align(M, ref, mov, NULL, &res, al) == SPF_OK, "align");
  CHECK(spf_fsc(M, ref, al, fsc) == SPF_OK, "fsc");
  double lowest = 1;
  for (int k = 0; k <= (M - 1) / 2; k++) lowest = fmin(lowest, fsc[k]);
  CHECK(res.inverted == 1 && lowest > 0.95, "hand %d, lowest FSC %.4f", res.inverted, lowest);
  printf("  exact copy: correlation %.5f, lowest FSC %.4f (Nyquist shell %.4f)\n", res.correlation, lowest,
         fsc[(M - 1) / 2]);
  free(ref); free(rot); free(mov); free(al);
}

/* A rotation found elsewhere (the intensities' in the watch): with n_rotations 0 only
 * the hand and the shift are searched, at that rotation as given (refine_steps 0), or
 * refined from it; a start that is no rotation is refused. */
static void hand_and_shift_at_a_given_rotation(void)
{
  const int64_t M = 21, n = M * M * M;
  double *ref = malloc(sizeof(double) * n), *rot = malloc(sizeof(double) * n), *mov = malloc(sizeof(double) * n);
  blobs(M, 7, 5.0, 1.5, 13, ref);
  spf_rng r;
  spf_rng_seed(&r, 5, 0);
  for (int inv = 0; inv <= 1; inv++) {
    double qt[4], qi[4];
    spf_random_rotation(&r, qt);
    spf_quat_conjugate(qt, qi);
    const int s[3] = {-2, 1, 2};
    turned_copy(M, ref, qt, inv, s, rot, mov);
    spf_align_options o;
    spf_align_default_options(&o);
    o.n_rotations = 0;
    o.refine_steps = 0;
    for (int k = 0; k < 4; k++) o.start[k] = 2 * qi[k]; /* not unit: normalised */
    spf_align_result res;
    CHECK(spf_align(M, ref, mov, &o, &res, NULL) == SPF_OK, "align at a given rotation");
    const double ang = spf_quat_angle(res.quat, qi) * 180 / M_PI;
    CHECK(res.inverted == inv && ang < 1e-6 && res.correlation > 0.98, "hand %d found as %d, %.2g deg, correlation %.4f",
          inv, res.inverted, ang, res.correlation);
    /* From 8 degrees off, the local search finds it. */
    const double h = 8 * M_PI / 360, d[4] = {cos(h), sin(h) / sqrt(3), sin(h) / sqrt(3), sin(h) / sqrt(3)};
    spf_quat_multiply(d, qi, o.start);
    o.refine_steps = 7;
    CHECK(spf_align(M, ref, mov, &o, &res, NULL) == SPF_OK, "align from near the rotation");
    const double ang2 = spf_quat_angle(res.quat, qi) * 180 / M_PI;
    CHECK(res.inverted == inv && ang2 < 2 && res.correlation > 0.98, "refined: hand %d, %.2f deg off, correlation %.4f",
          res.inverted, ang2, res.correlation);
    printf("  hand %d at the given rotation: correlation %.4f; refined from 8 deg off: %.2f deg\n", inv,
           res.correlation, ang2);
  }
  spf_align_options o;
  spf_align_default_options(&o);
  o.n_rotations = 0;
  o.start[0] = 0;
  spf_align_result res;
  CHECK(spf_align(M, ref, mov, &o, &res, NULL) == SPF_ERR_OPTION, "a zero start refused");
  o.start[0] = NAN;
  CHECK(spf_align(M, ref, mov, &o, &res, NULL) == SPF_ERR_OPTION, "a NaN start refused");
  o.start[0] = 1;
  o.n_rotations = -1;
  CHECK(spf_align(M, ref, mov, &o, &res, NULL) == SPF_ERR_OPTION, "negative n_rotations refused");
  free(ref); free(rot); free(mov);
}

int main(void)
{
  RUN_TEST(finds_rotation_hand_and_shift);
  RUN_TEST(exact_copy_gives_fsc_one_to_nyquist);
  RUN_TEST(hand_and_shift_at_a_given_rotation);
  return test_summary();
}
