/* Photon-limited end to end: 1,500 images of 32 x 32 pixels of the built-in phantom with
 * about 50 photons each (Poisson, a beam stop masked), reconstructed from random
 * orientations with the defaults, which pick the Poisson model for such data. The 3D
 * intensity, turned onto the true one, must correlate shell by shell out to the corner.
 * Measured when written (M = 21, 1,000 references, 12 generations): the Poisson model
 * 0.84 mean shell correlation, above 0.5 to the last shell; the Euclidean model on the
 * same data 0.68, below 0.5 from 0.72 of the corner radius (both limits below fail it).
 * SPINIFEL_TEST_SCALE=small (sanitizer builds): 300 images, 3 generations, to run every
 * path; no accuracy limit but a finite figure. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "phantom_data.h"
#include "testing.h"

static void poisson_model_recovers_the_intensity_at_50_photons(void)
{
  const int small = test_small_scale();
  const int64_t n = small ? 300 : 1500, M = 21;
  /* About 50 photons per image outside the beam stop. */
  phantom_data pd;
  CHECK(phantom_data_make(32, 0.1, 0.003e10, n, 1.25e25, 1, 2, &pd) == SPF_OK, "simulate");
  spf_detector *det = pd.det;
  spf_molecule *mol = pd.mol;
  /* Valid pixels only, as reconstruct takes them. */
  const int64_t np_all = det->n_pixels;
  int64_t np = 0;
  for (int64_t p = 0; p < np_all; p++) np += det->mask[p] != 0;
  double *sv = malloc(sizeof(double) * 3 * np);
  float *img = malloc(sizeof(float) * n * np);
  double photons = 0;
  for (int64_t p = 0, v = 0; p < np_all; p++) {
    if (!det->mask[p]) continue;
    memcpy(sv + 3 * v, det->s + 3 * p, sizeof(double) * 3);
    for (int64_t i = 0; i < n; i++) photons += img[i * np + v] = pd.images[i * np_all + p];
    v++;
  }
  CHECK(photons / n > 35 && photons / n < 70, "%.1f photons per image", photons / n);

  spf_reconstruct_options o;
  spf_reconstruct_default_options(&o);
  o.nthreads = 2;
  o.M = M;
  o.n_references = small ? 300 : 1000;
  o.refs_start = 0;
  o.max_generations = small ? 3 : 12;
  o.n_rho = 3;
  o.phase.n_cycles = 2;
  int model = -1;
  char why[256];
  CHECK(spf_reconstruct_pick_model(n, np, img, &o, &model, why, sizeof why) == SPF_OK && model == SPF_MODEL_POISSON,
        "the defaults pick the Poisson model for photon counts: %s", why);
  spf_run_state st;
  CHECK(spf_run_state_make(M, n, &st) == SPF_OK, "state");
  CHECK(spf_reconstruct(n, np, img, sv, pd.quats, &o, NULL, NULL, NULL, &st) == SPF_OK, "reconstruct");

  /* The true intensity on the reconstruction's grid, and the reconstruction's. */
  spf_intensity_grid ig;
  const int64_t n3 = M * M * M;
  double *truth = malloc(sizeof(double) * n3), *rec = malloc(sizeof(double) * n3), *al = malloc(sizeof(double) * n3);
  double corr[32];
  CHECK(spf_intensity_grid_make(M, 1.0, np_all, det->s, det->mask, &ig) == SPF_OK, "grid");
  CHECK(spf_intensity_of_molecule(mol->n_atoms, mol->xyz, pd.type, pd.n_types, pd.ff, &ig, 1.0, 1e-4, 2, truth) == SPF_OK,
        "true intensity");
  CHECK(spf_intensity_from_autocorrelation(M, st.u, rec) == SPF_OK, "intensity");
  int nonneg = 1;
  for (int64_t i = 0; i < n3; i++) nonneg &= rec[i] >= -1e-9 * fabs(rec[(n3 - 1) / 2]);
  CHECK(nonneg, "the merged intensity is non-negative");
  spf_shellcorr_options so2;
  spf_shellcorr_default_options(&so2);
  const double r_bs = spf_intensity_grid_index_radius(&ig, ig.beamstop_inv_angstrom);
  so2.r_min = ceil(r_bs + 0.5) - 0.5;
  so2.nthreads = 2;
  spf_shellcorr_result res;
  CHECK(spf_shellcorr_align(M, truth, rec, &so2, &res, al) == SPF_OK, "align");
  CHECK(spf_shell_correlation(M, truth, al, so2.r_min, 0, corr, NULL) == SPF_OK, "shell correlation");
  const int64_t first = (int64_t)ceil(r_bs + 0.5), last = (M - 1) / 2;
  const int64_t edge = (int64_t)floor(spf_intensity_grid_index_radius(&ig, ig.edge_inv_angstrom) + 0.5);
  const double mean = spf_shell_mean(corr, first, edge < last ? edge : last);
  const double cross = spf_shell_crossing(corr, first, last, 0.5);
  const double frac = isinf(cross) ? spf_intensity_grid_inv_angstrom(&ig, (double)last) / ig.corner_inv_angstrom
                                   : spf_intensity_grid_inv_angstrom(&ig, cross) / ig.corner_inv_angstrom;
  printf("  %lld images, %.1f photons each, %d generations: mean shell correlation %.3f (shells %lld-%lld), 0.5 at "
         "%.2f of the corner radius%s\n",
         (long long)n, photons / n, st.generation, mean, (long long)first, (long long)edge, frac,
         isinf(cross) ? " (never below)" : "");
  if (small) {
    CHECK(isfinite(mean), "a finite figure");
  } else {
    CHECK(mean >= 0.78, "mean shell correlation %.3f (limit 0.78)", mean);
    CHECK(frac >= 0.9, "shell correlation 0.5 at %.2f of the corner radius (limit 0.90)", frac);
  }
  spf_run_state_free(&st);
  free(truth); free(rec); free(al); free(sv); free(img);
  phantom_data_free(&pd);
}

int main(void)
{
  RUN_TEST(poisson_model_recovers_the_intensity_at_50_photons);
  return test_summary();
}
