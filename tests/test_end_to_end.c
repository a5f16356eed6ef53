/* End to end: noise-free 32 x 32 images of the built-in phantom, reconstructed from
 * random orientations with the default schedule. The final generation's median
 * orientation error must be small, and the density, aligned (rotation, translation,
 * hand), must correlate with the phantom's own density on the same grid.
 * SPINIFEL_TEST_SCALE=small (sanitizer builds): 400 images and 4 short generations, to
 * run every path under the sanitizers; the accuracy limits are the optimised build's. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "testing.h"

typedef struct {
  float *images;
  double *quats;
  int64_t np;
} sink_t;

static int sink(void *ctx, int64_t first, int64_t count, const float *images, const double *quats)
{
  sink_t *s = ctx;
  memcpy(s->images + first * s->np, images, sizeof(float) * (size_t)(count * s->np));
  memcpy(s->quats + 4 * first, quats, sizeof(double) * 4 * (size_t)count);
  return 0;
}

static void phantom_converges_from_random_orientations(void)
{
  const int small = test_small_scale();
  const int64_t n = small ? 400 : 2000;
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = g.ny = 32;
  g.distance_m = 0.03;
  spf_detector *det;
  spf_molecule *mol;
  CHECK(spf_detector_make(&g, &det) == SPF_OK && spf_molecule_phantom(1, 2000, &mol) == SPF_OK, "setup");
  spf_molecule_centre(mol);
  int *type = malloc(sizeof(int) * mol->n_atoms), n_types = 0;
  spf_gaussian_form_factor ff[128];
  spf_scattering *sc;
  CHECK(spf_molecule_scattering_types(mol, type, ff, &n_types) == SPF_OK, "types");
  CHECK(spf_scattering_make(mol->n_atoms, mol->xyz, type, n_types, ff, det->s_max * 1e-10 * (1 + 1e-6), 1e-4, 2, &sc) ==
            SPF_OK,
        "structure factors");
  const int64_t np = det->n_pixels;
  sink_t s = {malloc(sizeof(float) * n * np), malloc(sizeof(double) * 4 * n), np};
  double *w = malloc(sizeof(double) * np);
  for (int64_t p = 0; p < np; p++) w[p] = det->solid_angle[p] * det->polarization[p];
  spf_sim_pixels px = {np, det->s, w, det->mask};
  spf_simulate_options so;
  spf_simulate_default_options(&so);
  so.n_images = n;
  so.poisson = 0;
  so.nthreads = 2;
  CHECK(spf_simulate_images(sc, &px, &so, sink, &s, NULL, NULL, NULL) == SPF_OK, "simulate");

  spf_reconstruct_options o;
  spf_reconstruct_default_options(&o);
  o.nthreads = 2;
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
  CHECK(spf_reconstruct(n, np, s.images, det->s, s.quats, &o, NULL, NULL, NULL, &st) == SPF_OK, "reconstruct");
  double p90, med = spf_orientation_error_median(n, s.quats, st.orientations, &p90);
  const double limit = small ? 100 : 10; /* random orientations: about 100 */
  CHECK(med < limit, "median orientation error %.2f deg (limit %.0f)", med, limit);

  /* The phantom's density on the reconstruction's grid (voxel 1 / (2 s_max)), blurred to
   * half a voxel, against the reconstruction after alignment. */
  const double voxel = 1e10 / (2 * det->s_max), origin[3] = {-0.5 * (M - 1) * voxel, -0.5 * (M - 1) * voxel,
                                                             -0.5 * (M - 1) * voxel};
  float *tf = malloc(sizeof(float) * n3);
  double *truth = malloc(sizeof(double) * n3);
  CHECK(spf_scattering_density(mol->n_atoms, mol->xyz, type, n_types, ff, 2 * M_PI * M_PI * voxel * voxel, M, voxel,
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
  free(tf); free(truth); free(w); free(s.images); free(s.quats); free(type);
  spf_scattering_free(sc);
  spf_molecule_free(mol);
  spf_detector_free(det);
}

int main(void)
{
  RUN_TEST(phantom_converges_from_random_orientations);
  return test_summary();
}
