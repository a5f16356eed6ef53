/* Fourier shell correlation: a copy gives 1, a band-limited copy falls at its band
 * limit, unrelated noise stays near 0. */
#include <complex.h>
#include <fftw3.h>
#include <math.h>

#include "spinifel/spinifel.h"
#include "testing.h"

/* Keep the Fourier modes of v with |k| <= kmax (rounded as the FSC's shells). */
static void band_limit(int64_t M, double *v, int64_t kmax)
{
  const int64_t n = M * M * M, h = M / 2 + 1;
  fftw_complex *f = fftw_malloc(sizeof(fftw_complex) * M * M * h);
  fftw_plan fw = fftw_plan_dft_r2c_3d(M, M, M, v, f, FFTW_ESTIMATE), bw = fftw_plan_dft_c2r_3d(M, M, M, f, v, FFTW_ESTIMATE);
  fftw_execute(fw);
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < h; x++) {
        const int64_t kz = z <= M / 2 ? z : z - M, ky = y <= M / 2 ? y : y - M;
        if (llround(sqrt((double)(x * x + ky * ky + kz * kz))) > kmax) f[(z * M + y) * h + x] = 0;
      }
  fftw_execute(bw);
  for (int64_t i = 0; i < n; i++) v[i] /= (double)n;
  fftw_destroy_plan(fw);
  fftw_destroy_plan(bw);
  fftw_free(f);
}

static void copies_band_limits_and_noise(void)
{
  const int64_t M = 31, n = M * M * M, ns = (M - 1) / 2 + 1;
  double *a = malloc(sizeof(double) * n), *b = malloc(sizeof(double) * n), fsc[16];
  spf_rng r;
  spf_rng_seed(&r, 21, 0);
  for (int64_t i = 0; i < n; i++) a[i] = spf_rng_normal(&r);
  CHECK(spf_fsc(M, a, a, fsc) == SPF_OK, "fsc");
  double worst = 0;
  for (int64_t k = 0; k < ns; k++) worst = fmax(worst, fabs(fsc[k] - 1));
  CHECK(worst < 1e-12, "a copy: FSC differs from 1 by %.1e", worst);
  CHECK(fabs(spf_fsc_resolution(M, fsc, 2.0, 0.5) - 2.0 * M / (ns - 1)) < 1e-12, "a copy reaches Nyquist");
  /* Band-limited at shell 9: FSC 1 up to 9, 0 beyond; 0.5 crossed between 9 and 10. */
  for (int64_t i = 0; i < n; i++) b[i] = a[i];
  band_limit(M, b, 9);
  spf_fsc(M, a, b, fsc);
  CHECK(fsc[9] > 0.999 && fsc[10] < 1e-9, "band limit: FSC(9) %.4f FSC(10) %.2e", fsc[9], fsc[10]);
  const double res = spf_fsc_resolution(M, fsc, 1.0, 0.5), lo = M / 10.0, hi = M / 9.0;
  CHECK(res >= lo && res <= hi, "band limit 9: resolution %.3f, expected in [%.3f, %.3f]", res, lo, hi);
  /* Unrelated noise: near 0 (the shells hold hundreds of modes: |FSC| < 4 / sqrt(modes)). */
  for (int64_t i = 0; i < n; i++) b[i] = spf_rng_normal(&r);
  spf_fsc(M, a, b, fsc);
  int bad = 0;
  for (int64_t k = 4; k < ns; k++) bad += fabs(fsc[k]) > 4.0 / sqrt(4 * M_PI * k * k);
  CHECK(bad == 0, "unrelated noise: %d shells with |FSC| above 4 sigma", bad);
  CHECK(spf_fsc(30, a, b, fsc) == SPF_ERR_SIZE, "even M refused");
  free(a);
  free(b);
}

/* The first crossing and the crossing for good: equal on a curve that falls once, the
 * dip's and the tail's on a curve with a weak shell inside; both interpolate linearly
 * (d = M voxel / k). */
static void first_and_outer_crossings(void)
{
  const int64_t M = 21; /* shells 0 .. 10 */
  const double voxel = 1.5;
  const double once[11] = {1, 1, 0.99, 0.95, 0.9, 0.8, 0.6, 0.4, 0.2, 0.1, 0.05};
  /* 0.5 between shells 6 (0.6) and 7 (0.4): k = 6.5. */
  const double d_once = M * voxel / 6.5;
  CHECK(fabs(spf_fsc_resolution(M, once, voxel, 0.5) - d_once) < 1e-12 &&
            fabs(spf_fsc_resolution_outer(M, once, voxel, 0.5) - d_once) < 1e-12,
        "one crossing: %.6f and %.6f, expected %.6f", spf_fsc_resolution(M, once, voxel, 0.5),
        spf_fsc_resolution_outer(M, once, voxel, 0.5), d_once);
  const double dip[11] = {1, 1, 0.99, 0.95, 0.45, 0.7, 0.75, 0.7, 0.3, 0.1, 0.05};
  /* First: between 3 (0.95) and 4 (0.45), k = 3 + 0.45 / 0.5 = 3.9; for good: between 7
   * (0.7) and 8 (0.3), k = 7.5. */
  CHECK(fabs(spf_fsc_resolution(M, dip, voxel, 0.5) - M * voxel / 3.9) < 1e-12, "the dip's: %.6f",
        spf_fsc_resolution(M, dip, voxel, 0.5));
  CHECK(fabs(spf_fsc_resolution_outer(M, dip, voxel, 0.5) - M * voxel / 7.5) < 1e-12, "for good: %.6f",
        spf_fsc_resolution_outer(M, dip, voxel, 0.5));
  const double high[11] = {1, 1, 1, 1, 0.3, 0.9, 0.9, 0.9, 0.9, 0.8, 0.6};
  CHECK(fabs(spf_fsc_resolution_outer(M, high, voxel, 0.5) - 2 * voxel * M / (M - 1)) < 1e-12,
        "above at the last shell: Nyquist");
  const double none[11] = {1, 0.3, 0.2, 0.1, 0, 0, 0, 0, 0, 0, 0};
  /* Below from shell 1: between shell 0 (1) and 1 (0.3), k = 0.5 / 0.7. */
  CHECK(fabs(spf_fsc_resolution_outer(M, none, voxel, 0.5) - M * voxel / (0.5 / 0.7)) < 1e-9 &&
            fabs(spf_fsc_resolution(M, none, voxel, 0.5) - M * voxel / (0.5 / 0.7)) < 1e-9,
        "below from shell 1: %.6f", spf_fsc_resolution_outer(M, none, voxel, 0.5));
  double nan_tail[11];
  for (int k = 0; k < 11; k++) nan_tail[k] = once[k];
  nan_tail[10] = NAN;
  CHECK(fabs(spf_fsc_resolution_outer(M, nan_tail, voxel, 0.5) - d_once) < 1e-12, "a NaN shell counts as below");
}

int main(void)
{
  RUN_TEST(copies_band_limits_and_noise);
  RUN_TEST(first_and_outer_crossings);
  return test_summary();
}
