/* The reconstruction driver: the orientation-error metric, stop and resume. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "small_problem.h"
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

/* Stops after a given generation, keeping a copy of the state (a checkpoint). */
typedef struct {
  int stop_after;
  spf_run_state *copy;
} stop_ctx;

static void state_copy(spf_run_state *dst, const spf_run_state *src)
{
  const int64_t n = src->n_images, n3 = src->M * src->M * src->M;
  dst->generation = src->generation;
  dst->have_model = src->have_model;
  dst->last_fraction_changed = src->last_fraction_changed;
  memcpy(dst->orientations, src->orientations, sizeof(double) * 4 * n);
  memcpy(dst->best, src->best, sizeof(int64_t) * n);
  memcpy(dst->best_dist, src->best_dist, sizeof(float) * n);
  memcpy(dst->gap, src->gap, sizeof(float) * n);
  memcpy(dst->fluence, src->fluence, sizeof(double) * n);
  memcpy(dst->entropy, src->entropy, sizeof(float) * n);
  memcpy(dst->rho, src->rho, sizeof(double) * n3);
  memcpy(dst->u, src->u, sizeof(double) * n3);
  memcpy(dst->u_model, src->u_model, sizeof(double) * n3);
  memcpy(dst->support, src->support, n3);
}

static int stop_at(void *ctx, const spf_generation_log *log, const spf_run_state *st)
{
  stop_ctx *c = ctx;
  if (log->generation + 1 != c->stop_after) return 0;
  state_copy(c->copy, st);
  return 1;
}

/* A run stopped after generation 2 and resumed from its state ends bit-identical to an
 * uninterrupted run: the state holds everything a generation reads. poisson: the images
 * become photon counts (about 60 per image) and the Poisson model runs, whose per-image
 * fluence and log-likelihood gaps must survive the stop too. */
static void resume_case(int poisson)
{
  spf_detector *det;
  float *img;
  double *q;
  CHECK(small_problem(60, &det, &img, &q) == SPF_OK, "test problem");
  const int64_t M = SMALL_PROBLEM_M, n3 = M * M * M, n = 60, np = det->n_pixels;
  if (poisson) {
    double total = 0;
    for (int64_t k = 0; k < n * np; k++) total += fabs(img[k]);
    spf_rng r;
    spf_rng_seed(&r, 8, 0);
    for (int64_t k = 0; k < n * np; k++) img[k] = (float)spf_rng_poisson(&r, 60.0 * n * fabs(img[k]) / total);
  }

  spf_reconstruct_options o;
  spf_reconstruct_default_options(&o);
  o.model = poisson ? SPF_MODEL_POISSON : SPF_MODEL_EUCLIDEAN;
  o.M = M;
  o.n_references = 300;
  o.ref_batch = 128;
  o.max_generations = 4;
  o.stop_fraction = 0;
  o.phase.n_cycles = 2;
  o.nthreads = 2;
  spf_run_state full, part, saved;
  CHECK(spf_run_state_make(M, n, &full) == SPF_OK && spf_run_state_make(M, n, &part) == SPF_OK &&
            spf_run_state_make(M, n, &saved) == SPF_OK,
        "states");
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, NULL, NULL, NULL, &full) == SPF_OK, "uninterrupted run");
  CHECK(full.generation == 4, "generations run %d", full.generation);
  stop_ctx c = {2, &saved};
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, NULL, stop_at, &c, &part) == SPF_OK, "stopped run");
  CHECK(saved.generation == 2 && saved.have_model == 1, "stopped after generation %d", saved.generation);
  /* Scribble over the output state: the resume must rely on the saved one only. */
  memset(part.rho, 0, sizeof(double) * n3);
  memset(part.orientations, 0, sizeof(double) * 4 * n);
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, &saved, NULL, NULL, &part) == SPF_OK, "resumed run");
  CHECK(part.generation == 4, "resumed run ended at generation %d", part.generation);
  double du = 0, drho = 0;
  for (int64_t k = 0; k < n3; k++) du = fmax(du, fabs(part.u[k] - full.u[k])), drho = fmax(drho, fabs(part.rho[k] - full.rho[k]));
  CHECK(!memcmp(part.rho, full.rho, sizeof(double) * n3) && !memcmp(part.u, full.u, sizeof(double) * n3),
        "density and autocorrelation equal to the uninterrupted run's (max differences %.3g, %.3g)", du, drho);
  CHECK(!memcmp(part.orientations, full.orientations, sizeof(double) * 4 * n) &&
            !memcmp(part.best, full.best, sizeof(int64_t) * n) && !memcmp(part.gap, full.gap, sizeof(float) * n) &&
            !memcmp(part.best_dist, full.best_dist, sizeof(float) * n),
        "orientations equal to the uninterrupted run's");
  CHECK(!memcmp(part.fluence, full.fluence, sizeof(double) * n) && !memcmp(part.entropy, full.entropy, sizeof(float) * n),
        "fluence and entropy equal to the uninterrupted run's");
  if (poisson) {
    int finite = 1;
    for (int64_t i = 0; i < n; i++) finite &= isfinite(full.gap[i]) && full.gap[i] >= 0 && isfinite(full.entropy[i]);
    CHECK(finite, "every image has a finite log-likelihood gap and entropy");
  }
  /* A state of another size is refused. */
  saved.M = 7;
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, &saved, NULL, NULL, &part) == SPF_ERR_DATA, "wrong-size state");
  saved.M = M;
  /* A non-finite pixel is refused, not summed. */
  const float keep = img[5];
  img[5] = NAN;
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, NULL, NULL, NULL, &part) == SPF_ERR_DATA, "NaN pixel");
  img[5] = INFINITY;
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, NULL, NULL, NULL, &part) == SPF_ERR_DATA, "infinite pixel");
  img[5] = keep;
  spf_run_state_free(&full);
  spf_run_state_free(&part);
  spf_run_state_free(&saved);
  spf_detector_free(det);
  free(q); free(img);
}

static void resume_gives_the_uninterrupted_result(void) { resume_case(0); }
static void poisson_resume_gives_the_uninterrupted_result(void) { resume_case(1); }

int main(void)
{
  RUN_TEST(orientation_error_is_invariant_to_frame_and_friedel_flip);
  RUN_TEST(resume_gives_the_uninterrupted_result);
  RUN_TEST(poisson_resume_gives_the_uninterrupted_result);
  return test_summary();
}
