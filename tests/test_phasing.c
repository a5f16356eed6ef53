/* Phasing: autocorrelation against a direct sum; recovery of a known density. */
#include <complex.h>
#include <fftw3.h>
#include <math.h>

#include "spinifel/spinifel.h"
#include "spinifel/phasing.h"
#include "testing.h"

static void autocorrelation_matches_direct_sum(void)
{
  const int64_t m = 7, n = 343, c = 3;
  double rho[343], u[343];
  spf_rng r;
  spf_rng_seed(&r, 1, 0);
  for (int64_t i = 0; i < n; i++) rho[i] = spf_rng_uniform(&r);
  CHECK(spf_autocorrelation(m, rho, u, 0) == SPF_OK, "autocorrelation");
  double maxerr = 0;
  for (int64_t k3 = -c; k3 <= c; k3++)
    for (int64_t k2 = -c; k2 <= c; k2++)
      for (int64_t k1 = -c; k1 <= c; k1++) {
        double s = 0;
        for (int64_t i3 = 0; i3 < m; i3++)
          for (int64_t i2 = 0; i2 < m; i2++)
            for (int64_t i1 = 0; i1 < m; i1++)
              s += rho[(i3 * m + i2) * m + i1] *
                   rho[(((i3 + k3 + m) % m) * m + (i2 + k2 + m) % m) * m + (i1 + k1 + m) % m];
        maxerr = fmax(maxerr, fabs(s - u[((k3 + c) * m + k2 + c) * m + k1 + c]));
      }
  CHECK(maxerr < 1e-10, "autocorrelation error %.2e", maxerr);
}

/* Best Pearson correlation of b with a over circular shifts, for b and its inversion. */
static double aligned_correlation(int64_t m, const double *a, const double *b)
{
  const int64_t n = m * m * m;
  double best = -1;
  double complex *fa = fftw_malloc(sizeof(double complex) * n), *fb = fftw_malloc(sizeof(double complex) * n);
  fftw_plan pa = fftw_plan_dft_3d((int)m, (int)m, (int)m, fa, fa, FFTW_FORWARD, FFTW_ESTIMATE);
  fftw_plan pb = fftw_plan_dft_3d((int)m, (int)m, (int)m, fb, fb, FFTW_FORWARD, FFTW_ESTIMATE);
  fftw_plan pi = fftw_plan_dft_3d((int)m, (int)m, (int)m, fb, fb, FFTW_BACKWARD, FFTW_ESTIMATE);
  double ma = 0, mb = 0;
  for (int64_t i = 0; i < n; i++) ma += a[i] / n, mb += b[i] / n;
  double va = 0, vb = 0;
  for (int64_t i = 0; i < n; i++) va += pow(a[i] - ma, 2), vb += pow(b[i] - mb, 2);
  for (int inv = 0; inv < 2; inv++) {
    for (int64_t i3 = 0; i3 < m; i3++)
      for (int64_t i2 = 0; i2 < m; i2++)
        for (int64_t i1 = 0; i1 < m; i1++) {
          int64_t i = (i3 * m + i2) * m + i1;
          int64_t j = inv ? (((m - i3) % m) * m + (m - i2) % m) * m + (m - i1) % m : i;
          fa[i] = a[i] - ma;
          fb[i] = b[j] - mb;
        }
    fftw_execute(pa);
    fftw_execute(pb);
    for (int64_t i = 0; i < n; i++) fb[i] = fa[i] * conj(fb[i]);
    fftw_execute(pi);
    for (int64_t i = 0; i < n; i++) best = fmax(best, creal(fb[i]) / n / sqrt(va * vb));
  }
  fftw_destroy_plan(pa);
  fftw_destroy_plan(pb);
  fftw_destroy_plan(pi);
  fftw_free(fa);
  fftw_free(fb);
  return best;
}

static void phasing_recovers_known_density_from_exact_intensities(void)
{
  const int64_t m = 33, n = m * m * m, c = 16;
  double *truth = calloc(n, sizeof(double)), *u = malloc(sizeof(double) * n), *rho = malloc(sizeof(double) * n);
  /* An asymmetric molecule of Gaussian blobs (a big lobe, a small one, an arm). */
  const double blobs[][5] = {{-2, 0, 1, 2.2, 1.0}, {3, 2, -1, 1.4, 0.7}, {0, -3, -2, 1.2, 0.5},
                             {4, -2, 2, 1.0, 0.4}, {-3, 3, -3, 1.1, 0.6}};
  for (int b = 0; b < 5; b++)
    for (int64_t i3 = 0; i3 < m; i3++)
      for (int64_t i2 = 0; i2 < m; i2++)
        for (int64_t i1 = 0; i1 < m; i1++) {
          double d2 = pow(i1 - c - blobs[b][0], 2) + pow(i2 - c - blobs[b][1], 2) + pow(i3 - c - blobs[b][2], 2);
          truth[(i3 * m + i2) * m + i1] += blobs[b][4] * exp(-d2 / (2 * blobs[b][3] * blobs[b][3]));
        }
  spf_autocorrelation(m, truth, u, 0);
  spf_phase_options o;
  spf_phase_default_options(&o);
  o.seed = 3;
  if (test_small_scale()) o.n_cycles = 4;
  spf_phase_cycle cyc[10];
  CHECK(spf_phase(m, u, &o, NULL, NULL, rho, NULL, NULL, cyc) == SPF_OK, "phase");
  double corr = aligned_correlation(m, truth, rho);
  printf("  correlation with truth after alignment %.4f; Fourier error %.3e -> %.3e; support %lld -> %lld\n", corr,
         cyc[0].fourier_error, cyc[o.n_cycles - 1].fourier_error, (long long)cyc[0].support_size,
         (long long)cyc[o.n_cycles - 1].support_size);
  CHECK(corr > 0.95, "correlation %.4f", corr);
  CHECK(cyc[o.n_cycles - 1].fourier_error < cyc[0].fourier_error, "error decreases");
  free(truth);
  free(u);
  free(rho);
}

static void bad_arguments(void)
{
  double u[27] = {0}, rho[27];
  CHECK(spf_phase(4, u, NULL, NULL, NULL, rho, NULL, NULL, NULL) == SPF_ERR_SIZE, "even M");
  CHECK(spf_phase(3, NULL, NULL, NULL, NULL, rho, NULL, NULL, NULL) == SPF_ERR_NULL, "NULL u");
  spf_phase_options o;
  spf_phase_default_options(&o);
  o.beta = 1.5;
  CHECK(spf_phase(3, u, &o, NULL, NULL, rho, NULL, NULL, NULL) == SPF_ERR_OPTION, "beta 1.5");
}

int main(void)
{
  RUN_TEST(autocorrelation_matches_direct_sum);
  RUN_TEST(phasing_recovers_known_density_from_exact_intensities);
  RUN_TEST(bad_arguments);
  return test_summary();
}
