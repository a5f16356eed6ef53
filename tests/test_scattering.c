/* Structure factors through the NUFFT against the direct sum over atoms. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "spinifel/scattering.h"
#include "testing.h"

/* Waasmaier-Kirfel carbon, nitrogen, oxygen (Acta Cryst. A51 (1995) 416), used here only
 * as realistic shapes; the test compares two evaluations of the same sum. */
static const spf_gaussian_form_factor FF[3] = {
    {{2.657506, 1.078079, 1.490909, -4.241070, 0.713791}, {14.780758, 0.776775, 42.086842, -0.000294, 0.239535}, 4.297983},
    {{11.893780, 3.277479, 1.858092, 0.858927, 0.912985}, {0.000158, 10.232723, 30.344690, 0.656065, 0.217287}, -11.804902},
    {{2.960427, 2.508818, 0.637853, 0.722838, 1.142756}, {14.182259, 5.936858, 0.112726, 34.958481, 0.390240}, 0.027014},
};

typedef struct {
  int64_t n_atoms;
  double *xyz;
  int *type;
} mol;

/* A uniformly random point in the unit ball (rejection from the cube). */
static void unit_ball(spf_rng *r, double v[3])
{
  double len;
  do {
    for (int k = 0; k < 3; k++) v[k] = 2 * spf_rng_uniform(r) - 1;
    len = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
  } while (len > 1);
}

/* A lumpy random molecule of n atoms within ~radius of an off-centre point. */
static mol random_molecule(int64_t n, double radius, uint64_t seed)
{
  mol m = {n, malloc(sizeof(double) * 3 * n), malloc(sizeof(int) * n)};
  spf_rng r;
  spf_rng_seed(&r, seed, 0);
  for (int64_t a = 0; a < n; a++) {
    double v[3];
    unit_ball(&r, v);
    m.xyz[3 * a] = 7.0 + radius * v[0] * 1.3;
    m.xyz[3 * a + 1] = -3.0 + radius * v[1];
    m.xyz[3 * a + 2] = 1.5 + radius * v[2] * 0.8;
    m.type[a] = (int)(spf_rng_next(&r) % 3);
  }
  return m;
}

static void random_points_in_ball(int64_t n, double s_max, uint64_t seed, float *h)
{
  spf_rng r;
  spf_rng_seed(&r, seed, 1);
  for (int64_t j = 0; j < n; j++) {
    double v[3];
    unit_ball(&r, v);
    for (int k = 0; k < 3; k++) h[k * n + j] = (float)(s_max * v[k]);
  }
}

static void nufft_structure_factors_match_direct_sum(void)
{
  mol m = random_molecule(400, 15.0, 3);
  const int64_t n = 500;
  float *h = malloc(sizeof(float) * 3 * n);
  float complex *F = malloc(sizeof(float complex) * n);
  double complex *ref = malloc(sizeof(double complex) * n);
  const double s_max = 0.4, tols[] = {1e-2, 1e-3, 1e-4, 1e-5};
  random_points_in_ball(n, s_max, 4, h);
  /* Include points on the band edge, where the window correction is largest. */
  for (int j = 0; j < 20; j++) {
    double len = sqrt(pow(h[j], 2) + pow(h[n + j], 2) + pow(h[2 * n + j], 2));
    for (int k = 0; k < 3; k++) h[k * n + j] = (float)(h[k * n + j] * (s_max * 0.999999 / len));
  }
  spf_scattering_direct(m.n_atoms, m.xyz, m.type, FF, n, h, h + n, h + 2 * n, ref);
  for (int t = 0; t < 4; t++) {
    spf_scattering *sc;
    int rc = spf_scattering_make(m.n_atoms, m.xyz, m.type, 3, FF, s_max, tols[t], 0, &sc);
    CHECK(rc == SPF_OK, "make at tol %.0e: %s", tols[t], spf_strerror(rc));
    if (rc) continue;
    rc = spf_scattering_eval(sc, n, h, h + n, h + 2 * n, F);
    CHECK(rc == SPF_OK, "eval: %s", spf_strerror(rc));
    double err = 0, nrm = 0;
    for (int64_t j = 0; j < n; j++) {
      err += pow(cabs(F[j] - ref[j]), 2);
      nrm += pow(cabs(ref[j]), 2);
    }
    int64_t gn[3];
    spf_scattering_info(sc, gn, NULL);
    printf("  tol %.0e: grid %lldx%lldx%lld, relative l2 error %.2e\n", tols[t], (long long)gn[0],
           (long long)gn[1], (long long)gn[2], sqrt(err / nrm));
    CHECK(sqrt(err / nrm) <= tols[t], "tol %.0e: error %.2e", tols[t], sqrt(err / nrm));
    spf_scattering_free(sc);
  }
  free(m.xyz); free(m.type); free(h); free(F); free(ref);
}

static void points_beyond_band_limit_and_bad_input_are_refused(void)
{
  mol m = random_molecule(50, 10.0, 5);
  spf_scattering *sc = NULL;
  CHECK(spf_scattering_make(m.n_atoms, m.xyz, m.type, 3, FF, 0.3, 1e-3, 0, &sc) == SPF_OK, "make");
  float hx[2] = {0.1f, 0.31f}, hy[2] = {0, 0}, hz[2] = {0, 0};
  float complex F[2];
  CHECK(spf_scattering_eval(sc, 2, hx, hy, hz, F) == SPF_ERR_ARG, "|h| beyond s_max");
  hx[1] = NAN;
  CHECK(spf_scattering_eval(sc, 2, hx, hy, hz, F) == SPF_ERR_ARG, "NaN h");
  spf_scattering_free(sc);
  m.type[3] = 7;
  CHECK(spf_scattering_make(m.n_atoms, m.xyz, m.type, 3, FF, 0.3, 1e-3, 0, &sc) == SPF_ERR_ARG, "type out of range");
  m.type[3] = 0;
  m.xyz[5] = INFINITY;
  CHECK(spf_scattering_make(m.n_atoms, m.xyz, m.type, 3, FF, 0.3, 1e-3, 0, &sc) == SPF_ERR_DATA, "infinite atom");
  CHECK(spf_scattering_make(m.n_atoms, m.xyz, m.type, 3, FF, 0.3, 1e-7, 0, &sc) == SPF_ERR_TOLERANCE, "tol 1e-7");
  CHECK(spf_scattering_make(m.n_atoms, m.xyz, m.type, 3, FF, -1, 1e-3, 0, &sc) == SPF_ERR_ARG, "negative s_max");
  /* No atoms: F = 0 everywhere. */
  CHECK(spf_scattering_make(0, NULL, NULL, 3, FF, 0.3, 1e-3, 0, &sc) == SPF_OK, "empty molecule");
  hx[1] = 0.2f;
  CHECK(spf_scattering_eval(sc, 2, hx, hy, hz, F) == SPF_OK && cabsf(F[0]) == 0 && cabsf(F[1]) == 0, "F of nothing is 0");
  spf_scattering_free(sc);
  free(m.xyz);
  free(m.type);
}

/* The density integrates to the number of electrons, f(0) summed over atoms. */
static void density_integrates_to_electron_count(void)
{
  mol m = random_molecule(60, 6.0, 8);
  double electrons = 0;
  for (int64_t a = 0; a < m.n_atoms; a++) {
    const spf_gaussian_form_factor *f = &FF[m.type[a]];
    electrons += f->c + f->a[0] + f->a[1] + f->a[2] + f->a[3] + f->a[4];
  }
  const int64_t n = 48;
  const double voxel = 0.75, origin[3] = {7.0 - 18, -3.0 - 18, 1.5 - 18};
  float *rho = malloc(sizeof(float) * n * n * n);
  CHECK(spf_scattering_density(m.n_atoms, m.xyz, m.type, 3, FF, 2 * M_PI * M_PI * voxel * voxel, n, voxel, origin, 0,
                               rho) == SPF_OK, "density");
  double sum = 0;
  for (int64_t i = 0; i < n * n * n; i++) sum += rho[i];
  sum *= voxel * voxel * voxel;
  CHECK(fabs(sum - electrons) < 0.01 * electrons, "integral %.3f vs %.3f electrons", sum, electrons);
  CHECK(spf_scattering_density(m.n_atoms, m.xyz, m.type, 3, FF, 0, n, voxel, origin, 0, rho) == SPF_ERR_ARG,
        "b_extra must be positive");
  free(rho);
  free(m.xyz);
  free(m.type);
}

int main(void)
{
  RUN_TEST(nufft_structure_factors_match_direct_sum);
  RUN_TEST(points_beyond_band_limit_and_bad_input_are_refused);
  RUN_TEST(density_integrates_to_electron_count);
  return test_summary();
}
