/* The M-TIP outer loop (see reconstruct.h). */
#include "spinifel/reconstruct.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/likelihood.h"
#include "spinifel/matching.h"
#include "spinifel/random.h"
#include "spinifel/rotation.h"
#include "spinifel/slicing.h"
#include "fixed_point.h"
#include "match_ring.h"
#include "merge_views.h"
#include "poisson_step.h"

#define MERGE_BATCH_IMAGES 256

void spf_reconstruct_default_options(spf_reconstruct_options *o)
{
  if (!o) return;
  /* The schedule that converges from random orientations on the phantom and 2cex tests
   * (2,000 images of 32 x 32): soft assignment over the 64 nearest of a coarse grid for
   * 8 generations, then hard matching on a grid refined to 20,000 orientations. */
  o->model = SPF_MODEL_AUTO;
  o->poisson_mean = 2.0;
  o->beta_start = 0;
  o->beta_period = 0;
  o->beta_min_spread = 2;
  o->beta_max = 0.5;
  o->update_fluence = 1;
  o->model_floor = 0.1;
  o->positive_intensity = -1;
  o->M = 31;
  o->oversampling = 1.0;
  o->n_references = 20000;
  o->refs_start = 2000;
  o->refs_generations = 16;
  o->ref_batch = 1000;
  o->max_generations = 0;
  o->stop_fraction = 0.01;
  o->soft_k = 64;
  o->soft_tau = 0.3;
  o->soft_generations = 8;
  o->pixel_weighting = 1;
  o->slice_merged = 1;
  o->n_rho = 5;
  o->rho_min = 1e-3;
  o->rho_max = 10;
  o->phi = 10;
  o->slice_tol = 0;
  o->phase_every = 0;
  o->res_start = 1.0;
  o->res_generations = 5;
  o->res_merge = 0;
  o->use_prior = 1;
  o->continue_phasing = 1;
  o->start_from_truth = 0;
  spf_merge_default_options(&o->merge);
  o->merge.cg_max_iter = 100;
  o->merge.nufft_tol = 0; /* auto, by model: spf_reconstruct_resolve */
  /* Plain CG stopped at its cap: on the demo's data the converged (preconditioned)
   * solves ended at 9.4 degrees median (90th percentile 75) in 127 s, plain CG at 7.8
   * (26) in 104 s; the end-to-end test's data are indifferent (4.79 / 4.78). Stopping
   * early regularises the rough models of the first generations. */
  o->merge.preconditioner = 0;
  spf_phase_default_options(&o->phase);
  o->seed = 1;
  o->nthreads = 0;
  o->verbose = 0;
  o->comm = NULL;
  o->first_image = 0;
  o->match_store_mib = 4096;
  o->on_step = NULL;
  o->step_ctx = NULL;
}

static const double ZFLIP[4] = {0, 0, 0, 1}; /* 180 degrees about the beam (z) */

/* Reference orientations of generation gen (>= 1): refs_start rising geometrically to
 * n_references at generation refs_generations. */
static int64_t refs_at(const spf_reconstruct_options *o, int gen)
{
  if (o->refs_start <= 0 || o->refs_start >= o->n_references || gen >= o->refs_generations) return o->n_references;
  if (gen <= 1 || o->refs_generations <= 1) return o->refs_start;
  const double t = (double)(gen - 1) / (o->refs_generations - 1);
  return (int64_t)llround((double)o->refs_start * pow((double)o->n_references / (double)o->refs_start, t));
}

/* The orientation error over all ranks' images: gathered to rank 0, the figures
 * broadcast (e: median, 90th percentile). */
static int distributed_error(const spf_comm *cm, int64_t n, const double *qt, const double *qf, double e[2])
{
  int64_t *counts = malloc(sizeof(int64_t) * (size_t)cm->size), *ones = malloc(sizeof(int64_t) * (size_t)cm->size);
  int rc = counts && ones ? SPF_OK : SPF_ERR_ALLOC;
  for (int r = 0; ones && r < cm->size; r++) ones[r] = 1;
  rc = spf_comm_agree(cm, rc);
  if (!rc) rc = spf_comm_gather(cm, &n, 1, counts, ones, (int64_t)sizeof(int64_t), 0);
  int64_t total = 0;
  for (int r = 0; !rc && cm->rank == 0 && r < cm->size; r++) total += counts[r];
  double *at = cm->rank == 0 ? malloc(sizeof(double) * 4 * (size_t)(total > 0 ? total : 1)) : NULL;
  double *af = cm->rank == 0 ? malloc(sizeof(double) * 4 * (size_t)(total > 0 ? total : 1)) : NULL;
  if (!rc && cm->rank == 0 && (!at || !af)) rc = SPF_ERR_ALLOC;
  rc = spf_comm_agree(cm, rc);
  if (!rc) rc = spf_comm_gather(cm, qt, n, at, counts, 4 * (int64_t)sizeof(double), 0);
  if (!rc) rc = spf_comm_gather(cm, qf, n, af, counts, 4 * (int64_t)sizeof(double), 0);
  e[0] = e[1] = NAN;
  if (!rc && cm->rank == 0) e[0] = spf_orientation_error_median(total, at, af, &e[1]);
  if (!rc) rc = spf_comm_bcast(cm, e, 2 * (int64_t)sizeof(double), 0);
  free(counts);
  free(ones);
  free(at);
  free(af);
  return rc;
}

/* Whether a state's last generation met the stopping rule. */
static int resume_stopped(const spf_run_state *st, const spf_reconstruct_options *o)
{
  return st->last_fraction_changed < o->stop_fraction;
}

/* Images whose orientation changed: on the same grid, another reference; across a
 * change of grid (indices not comparable), an orientation farther from the previous one
 * than 1.5 ball radii of the new grid (about its covering radius), the nearer of the
 * orientation and its Friedel flip counting. */
static int64_t changed_count(int64_t n, const int64_t *best, const int64_t *prev, int64_t n_refs, int64_t n_refs_prev,
                             const double *q, const double *q_prev)
{
  int64_t changed = 0;
  const double limit = 1.5 * spf_orientation_ball_radius(n_refs);
  for (int64_t i = 0; i < n; i++) {
    if (n_refs == n_refs_prev || prev[i] < 0) {
      changed += best[i] != prev[i];
      continue;
    }
    double flip[4];
    spf_quat_multiply(ZFLIP, q_prev + 4 * i, flip);
    changed += fmin(spf_quat_angle(q + 4 * i, q_prev + 4 * i), spf_quat_angle(q + 4 * i, flip)) > limit;
  }
  return changed;
}

int spf_photon_count_stats(const spf_comm *comm, int64_t n_images, int64_t np, const float *images,
                           int64_t *not_counts, double *mean)
{
  if (!images || !not_counts || !mean) return SPF_ERR_NULL;
  if (n_images < 0 || np < 1) return SPF_ERR_SIZE;
  /* Over all ranks: values that are not counts, photons, values. */
  int64_t c[3] = {0, 0, n_images * np};
  double photons = 0;
  for (int64_t k = 0; k < n_images * np; k++) {
    const float v = images[k];
    if (!(v >= 0) || v != floorf(v) || v > 1e7f) c[0]++;
    else photons += v;
  }
  c[1] = (int64_t)llround(photons);
  const int rc = spf_comm_sum_int64(comm, c, 3);
  if (rc) return rc;
  *not_counts = c[0];
  *mean = c[2] > 0 ? (double)c[1] / (double)c[2] : 0;
  return SPF_OK;
}

int spf_reconstruct_pick_model(int64_t n_images, int64_t np, const float *images, const spf_reconstruct_options *o,
                               int *model, char *why, size_t why_len)
{
  if (!images || !o || !model) return SPF_ERR_NULL;
  int64_t not_counts;
  double mean;
  const int rc = spf_photon_count_stats(o->comm, n_images, np, images, &not_counts, &mean);
  if (rc) return rc;
  if (o->model == SPF_MODEL_EUCLIDEAN || o->model == SPF_MODEL_POISSON) {
    *model = o->model;
    if (o->model == SPF_MODEL_POISSON && not_counts > 0) {
      if (why) snprintf(why, why_len, "the Poisson model needs photon counts: %lld values are not non-negative integers",
                        (long long)not_counts);
      return SPF_ERR_DATA;
    }
    if (why) snprintf(why, why_len, "model %s (as asked); mean %.3g photons per pixel",
                      o->model == SPF_MODEL_POISSON ? "poisson" : "euclidean", mean);
    return SPF_OK;
  }
  if (o->model != SPF_MODEL_AUTO) return SPF_ERR_OPTION;
  if (not_counts == 0 && mean <= o->poisson_mean) {
    *model = SPF_MODEL_POISSON;
    if (why) snprintf(why, why_len, "model poisson: the data are photon counts, %.3g per pixel on average (<= %g)",
                      mean, o->poisson_mean);
  } else {
    *model = SPF_MODEL_EUCLIDEAN;
    if (why) {
      if (not_counts) snprintf(why, why_len, "model euclidean: the data are not photon counts (%lld non-integer values)", (long long)not_counts);
      else snprintf(why, why_len, "model euclidean: bright data, %.3g photons per pixel on average (> %g)", mean,
                    o->poisson_mean);
    }
  }
  return SPF_OK;
}

/* Photon counts of a few per pixel carry a relative noise far above 1e-3: on 2cex at 280
 * photons per frame, slicing at 1e-3 and merging's sums at 1e-4 gave the same mean shell
 * correlation (0.9372) as 1e-4 and 1e-6, and phasing every fifth generation (the merged
 * model is the one sliced: the density feeds only the next phasing) the same again; 16
 * generations with beta doubling every 4 gave 0.932 in 80% of the time of 20 and 5.
 * Noise-free and bright data keep the tighter defaults. */
int spf_reconstruct_resolve(spf_reconstruct_options *o, int model)
{
  if (!o) return SPF_ERR_NULL;
  if (model != SPF_MODEL_POISSON && model != SPF_MODEL_EUCLIDEAN) return SPF_ERR_ARG;
  const int poisson = model == SPF_MODEL_POISSON;
  if (!(o->slice_tol > 0)) o->slice_tol = poisson ? 1e-3 : 1e-4;
  if (!(o->merge.nufft_tol > 0)) o->merge.nufft_tol = poisson ? 1e-4 : 1e-6;
  if (o->max_generations < 1) o->max_generations = poisson ? 16 : 20;
  if (o->beta_period < 1) o->beta_period = 4;
  if (o->phase_every < 1) o->phase_every = poisson && o->slice_merged ? 5 : 1;
  return SPF_OK;
}

int spf_reconstruct(int64_t n_images, int64_t np, const float *images, const double *s, const double *true_quats,
                    const spf_reconstruct_options *opts, const spf_run_state *resume, spf_generation_fn on_generation,
                    void *ctx, spf_run_state *out)
{
  if (!images || !s || !out || !out->orientations || !out->best || !out->best_dist || !out->gap || !out->rho ||
      !out->u || !out->u_model || !out->support)
    return SPF_ERR_NULL;
  if (n_images < 1 || np < 1) return SPF_ERR_SIZE;
  spf_reconstruct_options o;
  if (opts) o = *opts;
  else spf_reconstruct_default_options(&o);
  if (o.M < 3 || o.M % 2 == 0 || o.n_references < 1 || o.ref_batch < 1 || o.max_generations < 0 || o.n_rho < 1)
    return SPF_ERR_OPTION;
  const int nthreads = o.nthreads > 0 ? o.nthreads : omp_get_max_threads();
  o.merge.nthreads = o.phase.nthreads = nthreads;
  const int64_t M = o.M, n3 = M * M * M, nb = o.ref_batch;
  if (out->M != M || out->n_images != n_images) return SPF_ERR_SIZE;
  if (resume && (resume->M != M || resume->n_images != n_images || resume->generation < 0)) return SPF_ERR_DATA;
  double *orient = out->orientations, *rho = out->rho, *u = out->u, *u_model = out->u_model;
  uint8_t *support = out->support;
  int64_t *prev = out->best;
  float *bd = out->best_dist;
  double s_max = 0;
  for (int64_t p = 0; p < np; p++)
    s_max = fmax(s_max, sqrt(s[3 * p] * s[3 * p] + s[3 * p + 1] * s[3 * p + 1] + s[3 * p + 2] * s[3 * p + 2]));
  if (!(s_max > 0)) return SPF_ERR_DATA;

  int model = SPF_MODEL_EUCLIDEAN;
  {
    const int mrc = spf_reconstruct_pick_model(n_images, np, images, &o, &model, NULL, 0);
    if (mrc) return mrc;
  }
  if (!out->fluence || !out->entropy) return SPF_ERR_NULL;
  {
    const int rr = spf_reconstruct_resolve(&o, model);
    if (rr) return rr;
  }
  const int positive = o.positive_intensity < 0 ? model == SPF_MODEL_POISSON : o.positive_intensity;
  spf_slicer *sl = NULL;
  spf_merger *mg = NULL;
  spf_matcher *mt = NULL;
  spf_likelihood *lk = NULL;
  const int K = model == SPF_MODEL_EUCLIDEAN && o.soft_k > 1 && o.soft_generations > 0 ? o.soft_k : 1;
  /* Merge batches hold a fixed number of orientations, the same on any number of ranks. */
  const int64_t slots = MERGE_BATCH_IMAGES, merge_pts = slots * np;
  double *x = malloc(sizeof(double) * 3 * (size_t)merge_pts), *b = malloc(sizeof(double) * (size_t)merge_pts);
  double *mw = malloc(sizeof(double) * (size_t)merge_pts);
  /* Each image's K nearest references (soft assignment) and the views to merge. */
  spf_view *views = malloc(sizeof(spf_view) * (size_t)(n_images * K));
  int64_t *vi = K > 1 ? malloc(sizeof(int64_t) * (size_t)(n_images * K)) : NULL;
  float *vd = K > 1 ? malloc(sizeof(float) * (size_t)(n_images * K)) : NULL;
  double *rhos = malloc(sizeof(double) * (size_t)o.n_rho);
  double *rho_prev = malloc(sizeof(double) * (size_t)n3);
  double *refq = malloc(sizeof(double) * 4 * (size_t)nb), *refm = malloc(sizeof(double) * 9 * (size_t)nb);
  float *slices = malloc(sizeof(float) * (size_t)(nb * np));
  int64_t *best = malloc(sizeof(int64_t) * (size_t)n_images);
  double *prev_q = malloc(sizeof(double) * 4 * (size_t)n_images);
  float *sd = malloc(sizeof(float) * (size_t)n_images);
  spf_merge_stats *st = malloc(sizeof(spf_merge_stats) * (size_t)o.n_rho);
  spf_phase_cycle *cyc = malloc(sizeof(spf_phase_cycle) * (size_t)(o.phase.n_cycles + 1));
  int rc = (x && b && mw && views && (K == 1 || (vi && vd)) && rho_prev && rhos && refq && refm && slices && best && prev_q && sd && st && cyc)
               ? SPF_OK
               : SPF_ERR_ALLOC;
  for (int64_t i = 0; !rc && i < n_images; i++) bd[i] = sd[i] = NAN; /* no matching before generation 1 */
  if (!rc) rc = spf_slicer_make(M, np, s, s_max, o.oversampling, o.slice_tol, nb, nthreads, &sl);
  if (!rc) rc = spf_merger_make(M, &o.merge, &mg);
  float *weight = malloc(sizeof(float) * (size_t)np), *pix_w = malloc(sizeof(float) * (size_t)np);
  float *mt_weight = malloc(sizeof(float) * (size_t)np);
  int mt_keep = 0;
  if (!weight || !pix_w || !mt_weight) rc = SPF_ERR_ALLOC;
  /* Pixel weights for matching: the mean image is the same for every orientation, so
   * 1 / mean is a Poisson-like (chi-square) metric that lets every resolution shell
   * speak, not only the bright centre, whose near-spherical speckle says little about
   * the orientation. */
  /* Over ranks the images are spread. Every sum over images is taken in fixed point
   * (fixed_point.h), so it is the same bits on any number of ranks; the scales are per
   * pixel, from the largest |d_p| of any image (a maximum, exact over ranks). */
  const spf_comm *cm = o.comm;
  int64_t n_total = n_images;
  int64_t *pix_fixed = malloc(sizeof(int64_t) * (size_t)np);
  spf_view_scales msc = {0};
  if (!pix_fixed) rc = SPF_ERR_ALLOC;
  rc = spf_comm_agree(cm, rc);
  if (!rc) rc = spf_view_scales_make(cm, n_images, np, images, &msc, &n_total);
  for (int64_t p = 0; !rc && p < np; p++) {
    pix_fixed[p] = 0;
    if (o.pixel_weighting == 1 || model == SPF_MODEL_POISSON)
      for (int64_t i = 0; i < n_images; i++) pix_fixed[p] += spf_to_fixed(images[i * np + p], msc.pix_scale[p]);
  }
  if (!rc) rc = spf_comm_sum_int64(cm, pix_fixed, np);
  double *mean_image = malloc(sizeof(double) * (size_t)np), mean_all = 0;
  if (!mean_image) rc = SPF_ERR_ALLOC;
  for (int64_t p = 0; !rc && p < np; p++) {
    const double mean = mean_image[p] = (double)pix_fixed[p] * msc.pix_unit[p] / (double)n_total;
    pix_w[p] = o.pixel_weighting != 1 ? 1.0f : mean > 0 ? (float)(1.0 / mean) : 0.0f;
    mean_all += mean / (double)np;
  }
  if (!rc && model == SPF_MODEL_POISSON) {
    spf_likelihood_options lo;
    spf_likelihood_default_options(&lo);
    lo.nthreads = nthreads;
    /* Floors from the mean image (1e-3 of the overall mean where a pixel saw nothing). */
    float *floor = malloc(sizeof(float) * (size_t)np);
    const float least = (float)(1e-3 * mean_all);
    if (!floor) rc = SPF_ERR_ALLOC;
    for (int64_t p = 0; !rc && p < np; p++) {
      floor[p] = (float)(o.model_floor * mean_image[p]);
      if (!(floor[p] >= least)) floor[p] = least > 0 ? least : 1e-30f;
    }
    lo.pixel_floor = floor;
    if (!rc) rc = spf_likelihood_make(n_images, np, images, &lo, &lk);
    free(floor);
  }
  free(mean_image);
  free(pix_fixed);
  /* Generation 0: random orientations, one seeded stream per image. */
  for (int64_t i = 0; !rc && !resume && i < n_images; i++) {
    spf_rng r;
    spf_rng_seed(&r, o.seed, (uint64_t)(o.first_image + i));
    spf_random_rotation(&r, orient + 4 * i);
    if (o.start_from_truth && true_quats) memcpy(orient + 4 * i, true_quats + 4 * i, sizeof(double) * 4);
    prev[i] = -1;
    out->entropy[i] = NAN;
    out->fluence[i] = 1;
  }
  /* The first fluence guess: each image's photons over the mean (EMC refines it). */
  rc = spf_comm_agree(cm, rc);
  if (!rc && !resume && model == SPF_MODEL_POISSON && o.update_fluence) {
    /* Photons are integers: their sum over the ranks is exact. */
    double mine = 0;
    for (int64_t i = 0; i < n_images; i++) mine += spf_likelihood_photons(lk, i);
    int64_t all = (int64_t)mine;
    rc = spf_comm_sum_int64(cm, &all, 1);
    const double total = (double)all;
    for (int64_t i = 0; !rc && i < n_images && total > 0; i++)
      out->fluence[i] = spf_likelihood_photons(lk, i) * (double)n_total / total;
  }
  /* Regularisation relative to the data's weight per grid point. */
  const double lambda0 = (double)n_total * (double)np / (double)n3;
  for (int i = 0; i < o.n_rho; i++)
    rhos[i] = lambda0 * (o.n_rho > 1 ? o.rho_min * pow(o.rho_max / o.rho_min, (double)i / (o.n_rho - 1)) : o.rho_min);
  int gen = 0, have_model = 0;
  if (!rc && resume) {
    /* Continue after the resumed state's last complete generation: it holds everything
     * the next generation reads, so the run goes on as if never stopped. */
    gen = resume->generation;
    have_model = resume->have_model;
    if (resume != out) {
      memcpy(orient, resume->orientations, sizeof(double) * 4 * (size_t)n_images);
      memcpy(prev, resume->best, sizeof(int64_t) * (size_t)n_images);
      memcpy(bd, resume->best_dist, sizeof(float) * (size_t)n_images);
      memcpy(out->gap, resume->gap, sizeof(float) * (size_t)n_images);
      memcpy(out->fluence, resume->fluence, sizeof(double) * (size_t)n_images);
      memcpy(out->entropy, resume->entropy, sizeof(float) * (size_t)n_images);
      memcpy(rho, resume->rho, sizeof(double) * (size_t)n3);
      memcpy(u, resume->u, sizeof(double) * (size_t)n3);
      memcpy(u_model, resume->u_model, sizeof(double) * (size_t)n3);
      memcpy(support, resume->support, (size_t)n3);
    }
    for (int64_t i = 0; i < n_images; i++) sd[i] = bd[i] + out->gap[i];
  }
  out->generation = gen;
  out->have_model = have_model;
  /* A resumed run that had already met its stopping rule does nothing more. */
  int stopped = resume && resume->generation > 1 && resume_stopped(resume, &o);
  for (; !rc && !stopped && gen < o.max_generations; gen++) {
    spf_generation_log log = {.generation = gen, .model = model, .fraction_changed = 1.0,
                              .median_orientation_error_deg = NAN, .beta = NAN, .mean_entropy = NAN,
                              .median_gap = NAN, .median_spread = NAN, .negative_fraction = NAN};
    double t0 = omp_get_wtime(), res_frac = 1;
    /* Reference schedule: a coarse grid while the model is rough, finer as it improves
     * (the grid's covering radius bounds the orientation error). */
    const int64_t n_refs = refs_at(&o, gen), n_refs_prev = refs_at(&o, gen - 1);
    if (have_model && model == SPF_MODEL_POISSON) {
      /* Probabilities over every reference; the merger receives the views. */
      rc = spf_slicer_set_volume(sl, u_model);
      memcpy(prev_q, orient, sizeof(double) * 4 * (size_t)n_images);
      const spf_poisson_job pj = {.cm = cm, .lk = lk, .sl = sl, .mg = mg, .o = &o, .gen = gen, .n_images = n_images, .np = np,
                              .n_refs = n_refs, .nb = nb, .slots = slots,
                              .store_bytes = (int64_t)o.match_store_mib << 20, .refq = refq, .refm = refm,
                              .slices = slices, .x = x, .b = b, .w = mw, .phi = out->fluence, .best = best,
                              .best_dist = bd, .gap = out->gap, .entropy = out->entropy};
      rc = spf_comm_agree(cm, rc);
      if (!rc) rc = spf_poisson_step(&pj, &log);
      if (rc) break;
      for (int64_t i = 0; i < n_images; i++) spf_orientation_grid(n_refs, best[i], 1, orient + 4 * i);
      int64_t changed = changed_count(n_images, best, prev, n_refs, n_refs_prev, orient, prev_q);
      rc = spf_comm_sum_int64(cm, &changed, 1);
      if (rc) break;
      log.fraction_changed = (double)changed / (double)n_total;
      for (int64_t i = 0; i < n_images; i++) prev[i] = best[i];
      log.n_references = n_refs;
    } else if (have_model) {
      /* Slice the model for every reference orientation, keep each image's best. */
      rc = spf_slicer_set_volume(sl, u_model);
      /* Resolution schedule: match on the inner pixels first. */
      double frac = res_frac = o.res_start >= 1 || o.res_generations <= 1
                        ? 1.0
                        : fmin(1.0, o.res_start + (1.0 - o.res_start) * (gen - 1) / (o.res_generations - 1));
      for (int64_t p = 0; p < np; p++)
        weight[p] = sqrt(s[3 * p] * s[3 * p] + s[3 * p + 1] * s[3 * p + 1] + s[3 * p + 2] * s[3 * p + 2]) <=
                            frac * s_max * (1 + 1e-12)
                        ? pix_w[p]
                        : 0.0f;
      spf_match_options mo;
      spf_match_default_options(&mo);
      mo.nthreads = nthreads;
      mo.pixel_weight = weight;
      const int soft = K > 1 && gen <= o.soft_generations;
      mo.keep = soft ? K : 1;
      /* The matcher holds the weighted images: made again only when the weights or the
       * kept list's length change (the schedules), reset otherwise. */
      if (mt && mo.keep == mt_keep && !memcmp(weight, mt_weight, sizeof(float) * (size_t)np)) {
        spf_matcher_reset(mt);
      } else {
        spf_matcher_free(mt);
        mt = NULL;
        if (!rc) rc = spf_matcher_make(n_images, np, images, &mo, &mt);
        mt_keep = mo.keep;
        memcpy(mt_weight, weight, sizeof(float) * (size_t)np);
      }
      const spf_match_job job = {.cm = cm, .sl = sl, .own = mt, .mo = &mo, .n_images = n_images, .np = np,
                             .n_refs = n_refs, .nb = nb, .store_bytes = (int64_t)o.match_store_mib << 20,
                             .images = images, .refq = refq, .refm = refm, .slices = slices, .on_step = o.on_step,
                             .step_ctx = o.step_ctx, .gen = gen};
      rc = spf_comm_agree(cm, rc);
      if (rc) break;
      rc = spf_slice_and_match(&job, mo.keep, soft ? vi : best, soft ? vd : bd, sd, &log);
      if (rc) break;
      memcpy(prev_q, orient, sizeof(double) * 4 * (size_t)n_images);
      for (int64_t i = 0; i < n_images; i++) {
        if (soft) {
          best[i] = vi[i * K];
          bd[i] = vd[i * K];
        }
        spf_orientation_grid(n_refs, best[i], 1, orient + 4 * i);
      }
      int64_t counts[2] = {changed_count(n_images, best, prev, n_refs, n_refs_prev, orient, prev_q), log.rechecks};
      for (int64_t i = 0; i < n_images; i++) prev[i] = best[i];
      rc = spf_comm_sum_int64(cm, counts, 2);
      log.rechecks = counts[1];
      log.fraction_changed = (double)counts[0] / (double)n_total;
      log.n_references = n_refs;
      if (soft) {
        /* Boltzmann weights over the K nearest, at a temperature relative to the image's
         * own best misfit: a rough model spreads each image over its plausible
         * orientations (deterministic annealing, as EMC), a good one concentrates it. */
        for (int64_t i = 0; i < n_images; i++) {
          const double d0 = vd[i * K], T = o.soft_tau * fmax(d0, 1e-30);
          double sum = 0;
          for (int k = 0; k < K; k++) {
            const int64_t v = i * K + k;
            views[v] = (spf_view){vi[v], i, vi[v] >= 0 ? exp(-((double)vd[v] - d0) / T) : 0.0};
            sum += views[v].w;
          }
          for (int k = 0; k < K; k++) views[i * K + k].w /= sum;
        }
      }
    }
    double t1 = omp_get_wtime();
    if (o.on_step) o.on_step(o.step_ctx, gen, "merge", 0, 1);
    const int merged_soft = have_model && K > 1 && gen <= o.soft_generations;
    const float *pon = have_model && o.res_merge && res_frac < 1 ? weight : NULL;
    if (!merged_soft)
      for (int64_t i = 0; i < n_images; i++)
        views[i] = (spf_view){have_model ? prev[i] : -1 - (o.first_image + i), i, 1.0};
    /* The Poisson step has added its views already. */
    if (!rc && !(have_model && model == SPF_MODEL_POISSON))
      rc = spf_merge_views(mg, sl, cm, nthreads, merged_soft ? n_images * K : n_images, views, n_refs, o.first_image,
                       orient, np, images, pon, slots, &msc, x, b, mw, &log.t_reduce);
    rc = spf_comm_agree(cm, rc);
    if (!rc && cm && cm->active) {
      /* The Toeplitz kernel, right-hand side and sum w b^2 are sums over the ranks'
       * batches, kept as integers: their sum is the same bits as one process's. */
      const double tr = omp_get_wtime();
      int64_t *sums, len;
      rc = spf_merger_fixed_sums(mg, &sums, &len);
      if (!rc) rc = spf_comm_sum_int64(cm, sums, len);
      log.t_reduce += omp_get_wtime() - tr;
    }
    int chosen = 0;
    /* The L-curve's solves are spread over the ranks. */
    if (!rc)
      rc = spf_merger_solve_lcurve_shared(mg, cm, o.n_rho, rhos, o.phi * lambda0,
                                          have_model && o.use_prior ? u_model : NULL, u, &chosen, st);
    /* A Poisson mean is never negative: the merged intensity is clipped at zero. */
    if (!rc && positive) rc = spf_intensity_clip(M, u, &log.negative_fraction);
    double t2 = omp_get_wtime();
    if (o.on_step) o.on_step(o.step_ctx, gen, "merge", 1, 1);
    /* The first generation (continuation starts from its density) and the last (the cap,
     * or the stopping rule met) always phase. */
    const int last = gen + 1 >= o.max_generations ||
                     (gen > 0 && n_refs == o.n_references && log.fraction_changed < o.stop_fraction);
    const int phase_now = o.phase_every <= 1 || !have_model || (gen + 1) % o.phase_every == 0 || last;
    if (o.on_step) o.on_step(o.step_ctx, gen, "phase", 0, 1);
    if (!rc && phase_now) {
      /* Later generations continue from the previous density and support (as SpiniFEL
       * does): restarting from noise lets the model jump between generations. */
      o.phase.seed = o.seed + (uint64_t)gen;
      if (have_model) memcpy(rho_prev, rho, sizeof(double) * (size_t)n3);
      /* Over MPI, rank 0 phases and sends the result (every rank holds the same u). */
      if (!cm || !cm->active || cm->rank == 0)
        rc = spf_phase(M, u, &o.phase, have_model && o.continue_phasing ? rho_prev : NULL,
                       have_model && o.continue_phasing ? support : NULL, rho, support, u_model, cyc);
      rc = spf_comm_agree(cm, rc);
      if (!rc) rc = spf_comm_bcast(cm, rho, n3 * (int64_t)sizeof(double), 0);
      if (!rc) rc = spf_comm_bcast(cm, support, n3, 0);
      if (!rc && !o.slice_merged) rc = spf_comm_bcast(cm, u_model, n3 * (int64_t)sizeof(double), 0);
      if (!rc) rc = spf_comm_bcast(cm, cyc, o.phase.n_cycles * (int64_t)sizeof *cyc, 0);
    }
    double t3 = omp_get_wtime();
    if (o.on_step) o.on_step(o.step_ctx, gen, "phase", 1, 1);
    if (rc) break;
    if (o.slice_merged) memcpy(u_model, u, sizeof(double) * (size_t)n3);
    have_model = 1;
    out->generation = gen + 1;
    out->have_model = 1;
    /* (The Poisson step writes its log-likelihood gaps itself.) */
    if (model != SPF_MODEL_POISSON)
      for (int64_t i = 0; i < n_images; i++) out->gap[i] = sd[i] - bd[i];
    log.cg_iterations = st[chosen].iterations;
    log.cg_residual = st[chosen].rel_residual;
    log.rho_chosen = st[chosen].rho;
    log.phase_error = phase_now && o.phase.n_cycles > 0 ? cyc[o.phase.n_cycles - 1].fourier_error : NAN;
    log.support_size = 0;
    for (int64_t v = 0; v < n3; v++) log.support_size += support[v] != 0;
    log.t_slice_match = t1 - t0;
    log.t_merge = t2 - t1;
    log.t_phase = t3 - t2;
    log.p90_orientation_error_deg = NAN;
    if (true_quats && !(cm && cm->active))
      log.median_orientation_error_deg =
          spf_orientation_error_median(n_images, true_quats, orient, &log.p90_orientation_error_deg);
    if (true_quats && cm && cm->active) {
      double e[2];
      rc = distributed_error(cm, n_images, true_quats, orient, e);
      if (rc) break;
      log.median_orientation_error_deg = e[0];
      log.p90_orientation_error_deg = e[1];
    }
    if (o.verbose)
      fprintf(stderr,
              "generation %d: changed %.3f, median orientation error %.2f deg, CG %d it (residual %.1e, rho %.3g), "
              "phasing error %.3f, support %lld | slice+match %.1fs merge %.1fs phase %.1fs\n",
              gen, log.fraction_changed, log.median_orientation_error_deg, log.cg_iterations, log.cg_residual,
              log.rho_chosen, log.phase_error, (long long)log.support_size, log.t_slice_match, log.t_merge,
              log.t_phase);
    /* The stopping rule acts on the final grid only (a finer grid still refines). */
    out->last_fraction_changed = n_refs == o.n_references ? log.fraction_changed : 1.0;
    if (on_generation && on_generation(ctx, &log, out)) break;
    if (gen > 0 && out->last_fraction_changed < o.stop_fraction) {
      gen++;
      break;
    }
  }
  spf_slicer_free(sl);
  spf_merger_free(mg);
  spf_matcher_free(mt);
  spf_likelihood_free(lk);
  free(prev_q);
  free(x); free(b); free(rhos); free(refq); free(refm); free(slices);
  free(best); free(sd); free(st); free(cyc); spf_view_scales_free(&msc); free(weight); free(pix_w); free(mt_weight);
  free(mw); free(views); free(vi); free(vd);
  free(rho_prev);
  return rc;
}
