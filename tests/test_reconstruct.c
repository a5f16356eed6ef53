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
  spf_run_state_copy_volumes(dst, src);
  spf_run_state_copy_images(dst, 0, src, 0, src->n_images);
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
static void resume_case(int poisson, int auto_refs)
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
  o.n_references = auto_refs ? 0 : 300;
  if (auto_refs) o.refs_start = 40, o.refs_max = 100000;
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
  if (auto_refs)
    CHECK(full.n_references > 40 && full.n_references < 100000 && saved.n_references == full.n_references,
          "the chosen count (%lld) is in the state (%lld)", (long long)full.n_references, (long long)saved.n_references);
  /* Scribble over the output state: the resume must rely on the saved one only. */
  memset(part.rho, 0, sizeof(double) * n3);
  memset(part.orientations, 0, sizeof(double) * 4 * n);
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, &saved, NULL, NULL, &part) == SPF_OK, "resumed run");
  CHECK(part.generation == 4, "resumed run ended at generation %d", part.generation);
  double du = 0, drho = 0;
  for (int64_t k = 0; k < n3; k++) du = fmax(du, fabs(part.u[k] - full.u[k])), drho = fmax(drho, fabs(part.rho[k] - full.rho[k]));
  CHECK(!memcmp(part.rho, full.rho, sizeof(double) * n3) && !memcmp(part.u, full.u, sizeof(double) * n3),
        "density and autocorrelation equal to the uninterrupted run's (max differences %.3g, %.3g)", drho, du);
  CHECK(!memcmp(part.orientations, full.orientations, sizeof(double) * 4 * n) &&
            !memcmp(part.best, full.best, sizeof(int64_t) * n) && !memcmp(part.gap, full.gap, sizeof(float) * n) &&
            !memcmp(part.best_dist, full.best_dist, sizeof(float) * n),
        "orientations equal to the uninterrupted run's");
  CHECK(!memcmp(part.fluence, full.fluence, sizeof(double) * n) && !memcmp(part.entropy, full.entropy, sizeof(float) * n),
        "fluence and entropy equal to the uninterrupted run's");
  /* A run that ended at its cap of 2 generations (phasing there for its output only),
   * resumed with a cap of 4: the same result as a run capped at 4 from the start. */
  o.max_generations = 2;
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, NULL, NULL, NULL, &saved) == SPF_OK && saved.generation == 2,
        "run capped at 2 generations");
  o.max_generations = 4;
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, &saved, NULL, NULL, &part) == SPF_OK && part.generation == 4,
        "resumed with a cap of 4");
  CHECK(!memcmp(part.rho, full.rho, sizeof(double) * n3) && !memcmp(part.u, full.u, sizeof(double) * n3) &&
            !memcmp(part.orientations, full.orientations, sizeof(double) * 4 * n),
        "a finished run extended equals the longer run");
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

static void resume_gives_the_uninterrupted_result(void) { resume_case(0, 0); }
static void poisson_resume_gives_the_uninterrupted_result(void) { resume_case(1, 0); }
/* The automatic count is chosen once, from generation 0's merge: a resumed run keeps it
 * (re-choosing from a later merge would change the grid). */
static void resume_keeps_the_automatic_reference_count(void) { resume_case(0, 1); }

/* Data of zeros only would merge into a density of zeros: refused, for either model. */
static void all_zero_data_are_refused(void)
{
  float img[3 * 8] = {0};
  spf_reconstruct_options o;
  spf_reconstruct_default_options(&o);
  char why[128] = "";
  int model = -1;
  for (int m = -1; m <= 1; m++) {
    o.model = m;
    CHECK(spf_reconstruct_pick_model(3, 8, img, &o, &model, why, sizeof why) == SPF_ERR_DATA &&
              strstr(why, "every valid pixel of every image is 0"),
          "model %d: %s", m, why);
  }
  img[5] = 1;
  o.model = SPF_MODEL_AUTO;
  CHECK(spf_reconstruct_pick_model(3, 8, img, &o, &model, why, sizeof why) == SPF_OK, "one photon: %s", why);
}

/* The autocorrelation of a uniform ball of radius R (voxels) is, at distance r <= 2R,
 * proportional to 1 - 3r/(4R) + r^3/(16R^3): its shell mean falls to 1% of the centre's
 * at r = 1.8345 R (the root of that cubic minus 0.01). The count is the smallest n with
 * 1/n <= (theta - sin theta) / pi, theta = oversampling / D_vox. */
static void reference_count_from_a_ball(void)
{
  const int64_t M = 41, c = 20;
  double *u = malloc(sizeof(double) * (size_t)(M * M * M));
  double x = 1.8; /* the root, by Newton */
  for (int it = 0; it < 50; it++) x -= (1 - 0.75 * x + x * x * x / 16 - 0.01) / (-0.75 + 3 * x * x / 16);
  int64_t prev_n = 0;
  for (double R = 3; R <= 9; R += 1.5) {
    for (int64_t i = 0; i < M * M * M; i++) {
      const int64_t a = i / (M * M) - c, b = i / M % M - c, d = i % M - c;
      const double r = sqrt((double)(a * a + b * b + d * d)) / R;
      u[i] = r <= 2 ? 1 - 0.75 * r + r * r * r / 16 : 0;
    }
    spf_reference_choice ch;
    CHECK(spf_reconstruct_reference_count(M, u, 1.5, 1, 1000000000, &ch) == SPF_OK, "count at R %.1f", R);
    CHECK(fabs(ch.particle_voxels - x * R) < 0.25, "R %.1f: D_vox %.3f, expected %.3f", R, ch.particle_voxels, x * R);
    const double theta = 1.5 / ch.particle_voxels;
    CHECK(fabs(ch.ball_radius_deg - theta * 180 / M_PI) < 1e-9, "ball radius %.4f deg", ch.ball_radius_deg);
    const double frac = (theta - sin(theta)) / M_PI;
    const double n = (double)ch.n_references;
    CHECK(1 / n <= frac && 1 / (n - 1) > frac, "R %.1f: %lld references is the smallest count for %.3f deg",
          R, (long long)ch.n_references, ch.ball_radius_deg);
    CHECK(ch.clamped == 0 && ch.n_references > prev_n, "a larger particle needs more references (%lld after %lld)",
          (long long)ch.n_references, (long long)prev_n);
    prev_n = ch.n_references;
  }
  spf_reference_choice ch;
  CHECK(spf_reconstruct_reference_count(M, u, 1.5, 1, 1000, &ch) == SPF_OK && ch.n_references == 1000 &&
            ch.clamped == 1,
        "capped at max_refs: %lld", (long long)ch.n_references);
  CHECK(spf_reconstruct_reference_count(M, u, 1.5, 10000000, 20000000, &ch) == SPF_OK &&
            ch.n_references == 10000000 && ch.clamped == -1,
        "raised to min_refs: %lld", (long long)ch.n_references);
  CHECK(spf_reconstruct_reference_count(M, u, 1.5, 1, 10, NULL) == SPF_ERR_NULL, "no output");
  CHECK(spf_reconstruct_reference_count(40, u, 1.5, 1, 10, &ch) == SPF_ERR_SIZE, "even M");
  CHECK(spf_reconstruct_reference_count(M, u, 0, 1, 10, &ch) == SPF_ERR_ARG, "zero oversampling");
  CHECK(spf_reconstruct_reference_count(M, u, 1.5, 11, 10, &ch) == SPF_ERR_ARG, "max below min");
  u[c * M * M + c * M + c] = 0;
  CHECK(spf_reconstruct_reference_count(M, u, 1.5, 1, 10, &ch) == SPF_ERR_DATA, "a zero centre");
  u[c * M * M + c * M + c] = NAN;
  CHECK(spf_reconstruct_reference_count(M, u, 1.5, 1, 10, &ch) == SPF_ERR_DATA, "a NaN centre");
  free(u);
}

/* A few generations of the Euclidean model on small_problem, 300 references, no
 * stopping rule, short phasings. */
static void small_run_options(spf_reconstruct_options *o, int generations)
{
  spf_reconstruct_default_options(o);
  o->model = SPF_MODEL_EUCLIDEAN;
  o->M = SMALL_PROBLEM_M;
  o->n_references = 300;
  o->ref_batch = 128;
  o->max_generations = generations;
  o->stop_fraction = 0;
  o->phase.n_cycles = 2;
  o->nthreads = 2;
}

/* Which model each generation slices (slice_merged): the state's u_model after
 * generation g is what generation g + 1 slices. With 2 it is the phased density's
 * autocorrelation while the next grid still grows (g + 1 < refs_generations) and the
 * merged u on the final grid; with 1 always u; with 0 always the phased one. */
typedef struct {
  int n;
  int phased[8]; /* per generation: u_model is rho's autocorrelation (1), u (0), neither (-1) */
  double *ac;
} model_log;

static int log_model(void *ctx, const spf_generation_log *log, const spf_run_state *st)
{
  model_log *c = ctx;
  const int64_t n3 = st->M * st->M * st->M;
  if (c->n >= 8 || spf_autocorrelation(st->M, st->rho, c->ac, 1) != SPF_OK) return 1;
  double num = 0, den = 0;
  for (int64_t k = 0; k < n3; k++) {
    const double d = st->u_model[k] - c->ac[k];
    num += d * d;
    den += c->ac[k] * c->ac[k];
  }
  const int is_u = !memcmp(st->u_model, st->u, sizeof(double) * (size_t)n3);
  c->phased[c->n++] = is_u ? 0 : sqrt(num / den) < 1e-9 ? 1 : -1;
  (void)log;
  return 0;
}

static void sliced_model_follows_the_schedule(void)
{
  spf_detector *det;
  float *img;
  double *q;
  CHECK(small_problem(40, &det, &img, &q) == SPF_OK, "test problem");
  const int64_t M = SMALL_PROBLEM_M, n = 40, np = det->n_pixels;
  for (int mode = 0; mode <= 2; mode++) {
    spf_reconstruct_options o;
    small_run_options(&o, 5);
    o.refs_start = 40;
    o.refs_generations = 3;
    o.slice_phase_cycles = 1;
    o.phase_average = 1; /* the last density is one phasing's, whose autocorrelation u_model is */
    o.slice_merged = mode;
    spf_run_state st;
    model_log c = {0, {0}, malloc(sizeof(double) * (size_t)(M * M * M))};
    CHECK(c.ac && spf_run_state_make(M, n, &st) == SPF_OK, "state");
    CHECK(spf_reconstruct(n, np, img, det->s, q, &o, NULL, log_model, &c, &st) == SPF_OK && c.n == 5,
          "slice_merged %d: run (%d generations)", mode, c.n);
    for (int g = 0; g < c.n; g++) {
      const int want = mode == 0 ? 1 : mode == 1 ? 0 : g + 1 < o.refs_generations;
      CHECK(c.phased[g] == want, "slice_merged %d, after generation %d: the model is %s, want %s", mode, g,
            c.phased[g] == 1 ? "phased" : c.phased[g] == 0 ? "merged" : "neither", want ? "phased" : "merged");
    }
    spf_run_state_free(&st);
    free(c.ac);
  }
  spf_detector_free(det);
  free(img);
  free(q);
}

/* The output density is the mean of phase_average phasings of the last merge from the
 * same start, at shrinkwrap thresholds t, t / 1.25, t * 1.25 (for 3), the support their
 * union; nothing a later generation reads changes: the orientations, the merge and the
 * density later phasings continue from are those of a run with one phasing. */
typedef struct {
  int gen;
  double *rho_next;
  uint8_t *support_next;
} start_copy;

static int copy_start(void *ctx, const spf_generation_log *log, const spf_run_state *st)
{
  start_copy *c = ctx;
  const size_t n3 = (size_t)(st->M * st->M * st->M);
  if (log->generation == c->gen) {
    memcpy(c->rho_next, st->rho_next, sizeof(double) * n3);
    memcpy(c->support_next, st->support_next, n3);
  }
  return 0;
}

static void output_density_is_the_ensemble_mean(void)
{
  spf_detector *det;
  float *img;
  double *q;
  CHECK(small_problem(40, &det, &img, &q) == SPF_OK, "test problem");
  const int64_t M = SMALL_PROBLEM_M, n = 40, np = det->n_pixels, n3 = M * M * M;
  spf_reconstruct_options o;
  small_run_options(&o, 3);
  o.refs_start = 0;
  spf_run_state one, ens;
  start_copy c = {1, malloc(sizeof(double) * (size_t)n3), malloc((size_t)n3)};
  double *m[3], *mean = malloc(sizeof(double) * (size_t)n3);
  uint8_t *sup[3], *uni = malloc((size_t)n3);
  for (int k = 0; k < 3; k++) m[k] = malloc(sizeof(double) * (size_t)n3), sup[k] = malloc((size_t)n3);
  CHECK(spf_run_state_make(M, n, &one) == SPF_OK && spf_run_state_make(M, n, &ens) == SPF_OK, "states");
  o.phase_average = 1;
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, NULL, NULL, NULL, &one) == SPF_OK, "one phasing");
  o.phase_average = 3;
  CHECK(spf_reconstruct(n, np, img, det->s, q, &o, NULL, copy_start, &c, &ens) == SPF_OK, "an ensemble of 3");
  CHECK(!memcmp(one.u, ens.u, sizeof(double) * (size_t)n3) &&
            !memcmp(one.orientations, ens.orientations, sizeof(double) * 4 * (size_t)n) &&
            !memcmp(one.rho_next, ens.rho_next, sizeof(double) * (size_t)n3) &&
            !memcmp(one.support_next, ens.support_next, (size_t)n3),
        "the merge, the orientations and the next phasing's start are those of one phasing");
  /* The reference: three phasings of the last merge from generation 1's start. */
  const double t0 = o.phase.shrinkwrap_threshold, t[3] = {t0, t0 / 1.25, t0 * 1.25};
  for (int k = 0; k < 3; k++) {
    spf_phase_options po = o.phase;
    po.nthreads = 2;
    po.seed = o.seed + 2;
    po.shrinkwrap_threshold = t[k];
    CHECK(spf_phase(M, ens.u, &po, c.rho_next, c.support_next, m[k], sup[k], NULL, NULL) == SPF_OK, "phasing %d", k);
  }
  int differ = 0;
  for (int64_t v = 0; v < n3; v++) {
    mean[v] = (m[0][v] + m[1][v] + m[2][v]) / 3;
    uni[v] = sup[0][v] | sup[1][v] | sup[2][v];
    differ += m[1][v] != m[0][v];
  }
  CHECK(!memcmp(one.rho, m[0], sizeof(double) * (size_t)n3), "one phasing: the first member");
  CHECK(differ > 0, "the members differ (%d voxels)", differ);
  CHECK(!memcmp(ens.rho, mean, sizeof(double) * (size_t)n3) && !memcmp(ens.support, uni, (size_t)n3),
        "the ensemble's density is the members' mean, its support their union");
  for (int k = 0; k < 3; k++) free(m[k]), free(sup[k]);
  free(mean);
  free(uni);
  free(c.rho_next);
  free(c.support_next);
  spf_run_state_free(&one);
  spf_run_state_free(&ens);
  spf_detector_free(det);
  free(img);
  free(q);
}

int main(void)
{
  RUN_TEST(orientation_error_is_invariant_to_frame_and_friedel_flip);
  RUN_TEST(resume_gives_the_uninterrupted_result);
  RUN_TEST(poisson_resume_gives_the_uninterrupted_result);
  RUN_TEST(resume_keeps_the_automatic_reference_count);
  RUN_TEST(reference_count_from_a_ball);
  RUN_TEST(all_zero_data_are_refused);
  RUN_TEST(sliced_model_follows_the_schedule);
  RUN_TEST(output_density_is_the_ensemble_mean);
  return test_summary();
}
