/* End to end at CI size: 600 noise-free 32 x 32 images of the built-in phantom (the
 * demo's detector), reconstructed from random orientations with the default schedule on
 * a 25^3 grid (the phantom's autocorrelation, 2 x 46 A, fits its 120 A). The final
 * generation's median orientation error must be small, and the density, aligned
 * (rotation, translation, hand), must correlate with the phantom's own density on the
 * same grid. About 35 s on a quiet 2-core machine; the demo's size (2,000 images, 31^3)
 * with the same limits is a benchmark: bench/whole_run.sh demo.
 * SPINIFEL_TEST_SCALE=small (sanitizer builds): 400 images and 4 short generations, to
 * run every path under the sanitizers; the accuracy limits are the optimised build's. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "phantom_data.h"
#include "testing.h"

static void phantom_converges_from_random_orientations(void)
{
  const int small = test_small_scale();
  const int64_t n = small ? 400 : 600;
  phantom_data pd;
  CHECK(phantom_data_make(32, 0.03, 0, n, 0, 0, 0, &pd) == SPF_OK, "simulate");
  spf_detector *det = pd.det;
  spf_molecule *mol = pd.mol;
  const int64_t np = det->n_pixels;

  spf_reconstruct_options o;
  spf_reconstruct_default_options(&o);
  o.nthreads = 2;
  o.M = 25;
  if (small) {
    o.max_generations = 4;
    o.n_references = 1000;
    o.refs_start = 500;
    o.refs_generations = 3;
    o.soft_k = 16;
    o.soft_generations = 2;
  }
  const int64_t M = o.M, n3 = M * M * M;
  spf_run_state st;
  CHECK(spf_run_state_make(M, n, &st) == SPF_OK, "state");
  CHECK(spf_reconstruct(n, np, pd.images, det->s, pd.quats, &o, NULL, NULL, NULL, &st) == SPF_OK, "reconstruct");
  double p90, med = spf_orientation_error_median(n, pd.quats, st.orientations, &p90);
  const double limit = small ? 100 : 10; /* random orientations: about 100 */
  CHECK(med < limit, "median orientation error %.2f deg (limit %.0f)", med, limit);

  /* The phantom's density on the reconstruction's grid (voxel 1 / (2 s_max)), blurred to
   * half a voxel, against the reconstruction after alignment. */
  const double voxel = 1e10 / (2 * det->s_max), origin[3] = {-0.5 * (M - 1) * voxel, -0.5 * (M - 1) * voxel,
                                                             -0.5 * (M - 1) * voxel};
  float *tf = malloc(sizeof(float) * n3);
  double *truth = malloc(sizeof(double) * n3);
  CHECK(spf_scattering_density(mol->n_atoms, mol->xyz, pd.type, pd.n_types, pd.ff, 2 * M_PI * M_PI * voxel * voxel, M, voxel,
                               origin, 2, tf) == SPF_OK,
        "truth density");
  for (int64_t i = 0; i < n3; i++) truth[i] = tf[i];
  spf_align_result ar;
  CHECK(spf_align(M, truth, st.rho, NULL, &ar, NULL) == SPF_OK, "align");
  const double cmin = small ? 0.5 : 0.8;
  CHECK(ar.correlation > cmin, "density correlation with the truth %.3f (limit %.2f)", ar.correlation, cmin);
  printf("  %lld images, %d generations: median orientation error %.2f deg (90th percentile %.2f); density "
         "correlation with the truth %.3f after alignment (hand %d)\n",
         (long long)n, st.generation, med, p90, ar.correlation, ar.inverted);
  spf_run_state_free(&st);
  free(tf); free(truth);
  phantom_data_free(&pd);
}

int main(void)
{
  RUN_TEST(phantom_converges_from_random_orientations);
  return test_summary();
}
