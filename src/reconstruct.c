/* The M-TIP driver (see reconstruct.h): setup, then per generation the schedule, the
 * orientation step (orientation.h), the merge, phasing when due, and the report. */
#include "spinifel/reconstruct.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/detector.h"
#include "spinifel/orientation.h"

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
  o->n_references = 0;
  o->refs_max = 1000000;
  o->refs_start = 2000;
  o->refs_generations = 16;
  o->ref_batch = 1000;
  o->max_generations = 0;
  o->stop_fraction = 0.02;
  o->soft_k = 64;
  o->soft_tau = 0.3;
  o->soft_generations = 8;
  o->local_refine = 3;
  o->pixel_weighting = 1;
  o->slice_merged = -1;
  o->slice_phase_cycles = 1;
  o->phase_average = 5;
  o->n_rho = 5;
  o->rho_min = 1e-3;
  o->rho_max = 10;
  o->phi = 10;
  o->slice_tol = 0;
  o->phase_every = 0;
  o->res_start = 1.0;
  o->res_generations = 5;
  o->res_merge = 0;
  /* No prior: with the previous model as prior (rho u0, SpiniFEL's merge) the model kept
   * the memory of earlier, wrong orientations and the last images took 20-40 generations
   * to leave them; without, the same starts settle generations earlier (the demo's data,
   * BENCHMARKS.md "Every start converges"). */
  o->use_prior = 0;
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
  o->fixed_views = NULL;
}

/* ---- Schedules ---------------------------------------------------------------------- */

/* The reference schedule: generation gen (>= 1) matches against refs_start orientations
 * rising geometrically to n_references at generation refs_generations (a coarse grid
 * while the model is rough, finer as it improves: the grid's covering radius bounds the
 * orientation error); refs_start 0 (or >= n_references): n_references throughout. */
static int64_t reference_count(const spf_reconstruct_options *o, int gen)
{
  if (o->refs_start <= 0 || o->refs_start >= o->n_references || gen >= o->refs_generations) return o->n_references;
  if (gen <= 1 || o->refs_generations <= 1) return o->refs_start;
  const double t = (double)(gen - 1) / (o->refs_generations - 1);
  return (int64_t)llround((double)o->refs_start * pow((double)o->n_references / (double)o->refs_start, t));
}

int spf_reconstruct_reference_count(int64_t M, const double *u, double oversampling, int64_t min_refs,
                                    int64_t max_refs, spf_reference_choice *choice)
{
  if (!u || !choice) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0) return SPF_ERR_SIZE;
  if (!(oversampling > 0) || min_refs < 1 || max_refs < min_refs) return SPF_ERR_ARG;
  const int64_t c = (M - 1) / 2;
  double *sum = calloc((size_t)(c + 2), sizeof(double));
  int64_t *count = calloc((size_t)(c + 2), sizeof(int64_t));
  if (!sum || !count) {
    free(sum);
    free(count);
    return SPF_ERR_ALLOC;
  }
  /* Shell means of u at integer radii 0 .. c (the shells inside the grid's ball). */
  for (int64_t i3 = 0; i3 < M; i3++)
    for (int64_t i2 = 0; i2 < M; i2++)
      for (int64_t i1 = 0; i1 < M; i1++) {
        const double r = sqrt((double)((i3 - c) * (i3 - c) + (i2 - c) * (i2 - c) + (i1 - c) * (i1 - c)));
        const int64_t k = (int64_t)llround(r);
        if (k <= c) sum[k] += u[(i3 * M + i2) * M + i1], count[k]++;
      }
  const double u0 = sum[0];
  double d_vox = (double)c;
  int rc = u0 > 0 && isfinite(u0) ? SPF_OK : SPF_ERR_DATA;
  for (int64_t k = 1; !rc && k <= c; k++) {
    const double prev = sum[k - 1] / (double)count[k - 1] / u0, cur = sum[k] / (double)count[k] / u0;
    if (!isfinite(cur)) rc = SPF_ERR_DATA;
    else if (cur < 0.01) {
      d_vox = (double)(k - 1) + (prev - 0.01) / (prev - cur); /* linear between the shells */
      break;
    }
  }
  free(sum);
  free(count);
  if (rc) return rc;
  /* The smallest n whose ball of 1/n of SO(3) has radius <= theta: (theta - sin theta) / pi = 1/n. */
  const double theta = fmin(oversampling / d_vox, M_PI);
  const double n = ceil(M_PI / (theta - sin(theta)));
  choice->particle_voxels = d_vox;
  choice->ball_radius_deg = theta * 180 / M_PI;
  choice->clamped = n < (double)min_refs ? -1 : n > (double)max_refs ? 1 : 0;
  choice->n_references = n < (double)min_refs ? min_refs : n > (double)max_refs ? max_refs : (int64_t)n;
  return SPF_OK;
}

/* The stopping rule: fewer than stop_fraction of the images changed orientation, on the
 * final grid (a finer grid still refines): the figure a state keeps. */
static double stopping_figure(const spf_reconstruct_options *o, int64_t n_refs, double fraction_changed)
{
  return n_refs == o->n_references ? fraction_changed : 1.0;
}

/* The phasing schedule: every phase_every generations and always the first (later
 * phasings continue from its density): PHASE_SCHEDULED; and the last (the cap, or the
 * stopping rule met on the final grid: n_refs references, fraction_changed of the images
 * changed): PHASE_LAST when not also scheduled, an output that later phasings do not
 * continue from (a longer or resumed run never computed it). */
enum { PHASE_NONE = 0, PHASE_SCHEDULED, PHASE_LAST };

/* Whether the model generation gen + 1 slices is the phased one (slice_merged): always
 * with 0; with 2 while that generation's grid is not the final one (the schedule of
 * reference_count; before the final count is chosen it is not). */
static int slices_phased(const spf_reconstruct_options *o, int gen)
{
  if (o->slice_merged == 0) return 1;
  if (o->slice_merged != 2) return 0;
  return gen + 1 < o->refs_generations && o->refs_start > 0 &&
         (o->n_references == 0 || o->refs_start < o->n_references);
}

/* Whether generation gen is the run's last: the cap, or the stopping rule met. */
static int last_generation(const spf_reconstruct_options *o, int gen, int64_t n_refs, double fraction_changed)
{
  return gen + 1 >= o->max_generations || (gen > 0 && stopping_figure(o, n_refs, fraction_changed) < o->stop_fraction);
}

static int phase_due(const spf_reconstruct_options *o, int gen, int have_model, int last)
{
  if (o->phase_every <= 1 || !have_model || (gen + 1) % o->phase_every == 0 || slices_phased(o, gen))
    return PHASE_SCHEDULED;
  return last ? PHASE_LAST : PHASE_NONE;
}

/* Whether a state's last generation met the stopping rule. */
static int resume_stopped(const spf_run_state *st, const spf_reconstruct_options *o)
{
  return st->last_fraction_changed < o->stop_fraction;
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
  if (not_counts == 0 && mean == 0) { /* all-zero data would merge into an all-zero density */
    if (why) snprintf(why, why_len, "every valid pixel of every image is 0: nothing to reconstruct");
    return SPF_ERR_DATA;
  }
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
 * Noise-free and bright data keep the tighter accuracies. Phasing every fifth
 * generation holds for both models: on the demo's data the orientations are the same
 * bits and the density's correlation with the phantom 0.962 against 0.960. */
int spf_reconstruct_resolve(spf_reconstruct_options *o, int model)
{
  if (!o) return SPF_ERR_NULL;
  if (model != SPF_MODEL_POISSON && model != SPF_MODEL_EUCLIDEAN) return SPF_ERR_ARG;
  const int poisson = model == SPF_MODEL_POISSON;
  if (!(o->slice_tol > 0)) o->slice_tol = poisson ? 1e-3 : 1e-4;
  if (!(o->merge.nufft_tol > 0)) o->merge.nufft_tol = poisson ? 1e-4 : 1e-5; /* single precision, both */
  if (o->max_generations < 1) o->max_generations = 60;
  if (o->beta_period < 1) o->beta_period = 4;
  if (o->slice_merged < 0) o->slice_merged = poisson ? 1 : 2;
  if (o->phase_every < 1) o->phase_every = o->slice_merged ? 5 : 1;
  return SPF_OK;
}

/* ---- The driver ---------------------------------------------------------------------- */

/* What the generations of one run share. */
typedef struct {
  spf_reconstruct_options o; /* resolved: model, accuracies, threads */
  const spf_comm *cm;
  int64_t M, n3;
  int positive;              /* clip the merged intensity at zero */
  spf_orienter *orienter;    /* the orientation step */
  spf_merger *mg;            /* receives the views, solves */
  double lambda0;            /* the data's weight per grid point: the regularisation's unit */
  double *rhos;              /* n_rho regularisation weights of the L-curve */
  spf_merge_stats *stats;    /* n_rho: the L-curve's solves */
  double *scratch;           /* M^3: an output-only phasing's model autocorrelation */
  double *ens_rho;           /* phase_average > 1: M^3, the phasing ensemble's first density */
  uint8_t *ens_support;      /*   and its support; */
  double *ens_member;        /*   (phase_average - 1) M^3: the other members' densities */
  uint8_t *ens_member_support; /*   and supports */
  spf_phase_cycle *cyc;      /* phasing's cycles */
  const double *true_quats;  /* may be NULL */
  int auto_refs;             /* the final grid is chosen after generation 0 */
  spf_run_state *out;
} run;

static void run_free(run *r)
{
  spf_orienter_free(r->orienter);
  spf_merger_free(r->mg);
  free(r->rhos);
  free(r->stats);
  free(r->scratch);
  free(r->ens_rho);
  free(r->ens_member);
  free(r->ens_support);
  free(r->ens_member_support);
  free(r->cyc);
}

/* The run's options resolved (model, accuracies, threads) after checking the arguments;
 * nothing is allocated on error. */
static int run_options(int64_t n_images, int64_t np, const float *images, const double *s,
                       const spf_reconstruct_options *opts, const spf_run_state *resume, spf_run_state *out,
                       spf_reconstruct_options *o, double *s_max)
{
  if (!images || !s || !out || !out->orientations || !out->best || !out->best_dist || !out->gap || !out->rho ||
      !out->u || !out->u_model || !out->support || !out->rho_next || !out->support_next)
    return SPF_ERR_NULL;
  if (n_images < 1 || np < 1) return SPF_ERR_SIZE;
  if (opts) *o = *opts;
  else spf_reconstruct_default_options(o);
  if (o->M < 3 || o->M % 2 == 0 || o->n_references < 0 || (o->n_references == 0 && o->refs_max < 1) ||
      o->ref_batch < 1 || o->max_generations < 0 || o->n_rho < 1 || o->slice_merged < -1 || o->slice_merged > 2 ||
      o->slice_phase_cycles < 1 || o->phase_average < 1 || o->phase_average > 100)
    return SPF_ERR_OPTION;
  o->nthreads = o->nthreads > 0 ? o->nthreads : omp_get_max_threads();
  o->merge.nthreads = o->phase.nthreads = o->nthreads;
  if (out->M != o->M || out->n_images != n_images) return SPF_ERR_SIZE;
  if (resume && (resume->M != o->M || resume->n_images != n_images || resume->generation < 0)) return SPF_ERR_DATA;
  *s_max = spf_s_max(np, s);
  if (!(*s_max > 0)) return SPF_ERR_DATA;
  int model = SPF_MODEL_EUCLIDEAN;
  const int rc = spf_reconstruct_pick_model(n_images, np, images, o, &model, NULL, 0);
  if (rc) return rc;
  if (!out->fluence || !out->entropy) return SPF_ERR_NULL;
  o->model = model;
  const int rr = spf_reconstruct_resolve(o, model);
  /* Fixed views fit one grid, every generation's from the resumed one on (the schedule
   * only rises), and join a model that exists. */
  if (!rr && o->fixed_views &&
      (model != SPF_MODEL_POISSON || o->n_references < 1 || !resume || !resume->have_model ||
       reference_count(o, resume->generation + 1) != o->n_references ||
       spf_posterior_views_refs(o->fixed_views) != o->n_references || spf_posterior_views_pixels(o->fixed_views) != np))
    return SPF_ERR_OPTION;
  return rr;
}

/* Setup: the options, the merger, the orientation step's plan (which takes the data's
 * figures over every rank), the state to start from (generation 0's random orientations,
 * or the resumed state's), the L-curve's regularisation weights. */
static int run_setup(run *r, int64_t n_images, int64_t np, const float *images, const double *s,
                     const double *true_quats, const spf_reconstruct_options *opts, const spf_run_state *resume,
                     spf_run_state *out)
{
  memset(r, 0, sizeof *r);
  double s_max = 0;
  int rc = run_options(n_images, np, images, s, opts, resume, out, &r->o, &s_max);
  if (rc) return rc;
  const spf_reconstruct_options *o = &r->o;
  r->cm = o->comm;
  r->M = o->M;
  r->n3 = r->M * r->M * r->M;
  r->positive = o->positive_intensity < 0 ? o->model == SPF_MODEL_POISSON : o->positive_intensity;
  r->true_quats = true_quats;
  r->out = out;
  r->auto_refs = o->n_references == 0;
  /* resume may be out itself. */
  const int64_t resumed_refs = r->auto_refs && resume ? resume->n_references : 0;
  out->n_references = resumed_refs;
  if (resumed_refs > 0) r->o.n_references = resumed_refs;
  r->rhos = malloc(sizeof(double) * (size_t)o->n_rho);
  r->stats = malloc(sizeof(spf_merge_stats) * (size_t)o->n_rho);
  r->scratch = malloc(sizeof(double) * (size_t)r->n3);
  const int ens = o->phase_average > 1;
  r->ens_rho = ens ? malloc(sizeof(double) * (size_t)r->n3) : NULL;
  const size_t members = (size_t)(o->phase_average - 1) * (size_t)r->n3;
  r->ens_member = ens ? malloc(sizeof(double) * members) : NULL;
  r->ens_support = ens ? malloc((size_t)r->n3) : NULL;
  r->ens_member_support = ens ? malloc(members) : NULL;
  const int max_cycles = o->phase.n_cycles > o->slice_phase_cycles ? o->phase.n_cycles : o->slice_phase_cycles;
  r->cyc = malloc(sizeof(spf_phase_cycle) * (size_t)(max_cycles + 1));
  rc = r->rhos && r->stats && r->scratch && r->cyc &&
               (!ens || (r->ens_rho && r->ens_member && r->ens_support && r->ens_member_support))
           ? SPF_OK
           : SPF_ERR_ALLOC;
  if (!rc) rc = spf_merger_make(r->M, &o->merge, &r->mg);
  rc = spf_comm_agree(r->cm, rc);
  if (!rc) rc = spf_orienter_make(n_images, np, images, s, s_max, o, &r->orienter);
  if (!rc) rc = spf_orienter_start(r->orienter, resume, true_quats, out);
  if (rc) return rc;
  /* Regularisation relative to the data's weight per grid point. */
  int64_t fixed_images = 0;
  spf_posterior_views_totals(o->fixed_views, &fixed_images, NULL, NULL, NULL);
  r->lambda0 = (double)(spf_orienter_total_images(r->orienter) + fixed_images) * (double)np / (double)r->n3;
  for (int i = 0; i < o->n_rho; i++)
    r->rhos[i] = r->lambda0 * (o->n_rho > 1 ? o->rho_min * pow(o->rho_max / o->rho_min, (double)i / (o->n_rho - 1))
                                            : o->rho_min);
  if (resume && resume != out) {
    /* The resumed state's volumes (the orientation step took its per-image state). */
    memcpy(out->rho, resume->rho, sizeof(double) * (size_t)r->n3);
    memcpy(out->u, resume->u, sizeof(double) * (size_t)r->n3);
    memcpy(out->u_model, resume->u_model, sizeof(double) * (size_t)r->n3);
    memcpy(out->support, resume->support, (size_t)r->n3);
    memcpy(out->rho_next, resume->rho_next, sizeof(double) * (size_t)r->n3);
    memcpy(out->support_next, resume->support_next, (size_t)r->n3);
  }
  return SPF_OK;
}

/* The merge: over MPI the ranks' exact sums added, then the L-curve (its solves spread
 * over the ranks; the previous model as prior with use_prior), the intensity clipped at
 * zero when positive (a Poisson mean is never negative). *chosen: the L-curve's pick. */
static int merge_step(run *r, int have_model, int *chosen, spf_generation_log *log)
{
  const spf_reconstruct_options *o = &r->o;
  int rc = SPF_OK;
  if (r->cm && r->cm->active) {
    /* The Toeplitz kernel, right-hand side and sum w b^2 are sums over the ranks'
     * batches, kept as integers: their sum is the same bits as one process's. */
    const double tr = omp_get_wtime();
    int64_t *sums, len;
    rc = spf_merger_fixed_sums(r->mg, &sums, &len);
    if (!rc) rc = spf_comm_sum_int64(r->cm, sums, len);
    log->t_reduce += omp_get_wtime() - tr;
  }
  if (!rc)
    rc = spf_merger_solve_lcurve_shared(r->mg, r->cm, o->n_rho, r->rhos, o->phi * r->lambda0,
                                        have_model && o->use_prior ? r->out->u_model : NULL, r->out->u, chosen,
                                        r->stats);
  if (!rc && r->positive) rc = spf_intensity_clip(r->M, r->out->u, &log->negative_fraction);
  return rc;
}

/* Phasing of the merged autocorrelation. Later generations continue from the previous
 * density and support (as SpiniFEL does): restarting from noise lets the model jump
 * between generations. Over MPI rank 0 phases and broadcasts the result (every rank
 * holds the same u). */
/* The last generation's output density: the mean of phase_average phasings of u from
 * the start the first one (already in rho, support) had, at shrinkwrap thresholds spread
 * about the first's (spf_reconstruct_options.phase_average); the support is their union.
 * The other members run side by side, one thread each (a phasing at M = 31 uses one), and
 * are summed in member order: the same bits whatever the threads. Rank 0 only. */
static int phase_ensemble(run *r, const spf_phase_options *first, const double *rho_start,
                          const uint8_t *support_start, double *rho, uint8_t *support)
{
  const int64_t n3 = r->n3;
  const int K = r->o.phase_average;
  int rcs[100] = {0}; /* per member (phase_average <= 100): the first failure is returned */
  if (K > 100) return SPF_ERR_OPTION;
#pragma omp parallel for num_threads(r->o.nthreads) schedule(dynamic, 1)
  for (int k = 1; k < K; k++) {
    spf_phase_options po = *first;
    const int step = (k + 1) / 2 * (k % 2 ? -1 : 1); /* -1, +1, -2, +2, ... */
    po.shrinkwrap_threshold = fmin(0.99, first->shrinkwrap_threshold * pow(1.25, step));
    po.nthreads = 1;
    rcs[k] = spf_phase(r->M, r->out->u, &po, rho_start, support_start, r->ens_member + (size_t)(k - 1) * (size_t)n3,
                       r->ens_member_support + (size_t)(k - 1) * (size_t)n3, NULL, NULL);
  }
  for (int k = 1; k < K; k++)
    if (rcs[k]) return rcs[k];
  for (int64_t v = 0; v < n3; v++) {
    double sum = rho[v];
    for (int k = 1; k < K; k++) {
      sum += r->ens_member[(size_t)(k - 1) * (size_t)n3 + (size_t)v];
      support[v] |= r->ens_member_support[(size_t)(k - 1) * (size_t)n3 + (size_t)v];
    }
    rho[v] = sum / K;
  }
  return SPF_OK;
}

static int phase_step(run *r, int gen, int have_model, int due, int last, int *cycles)
{
  spf_reconstruct_options *o = &r->o;
  spf_run_state *out = r->out;
  const spf_comm *cm = r->cm;
  const int cont = have_model && o->continue_phasing;
  const size_t n3 = (size_t)r->n3;
  /* A phasing whose model is sliced next writes it; an output-only one leaves the model
   * that slicing reads as the schedule made it. The first kind runs every generation
   * from the last density: a few cycles do (slice_phase_cycles). */
  const int model_next = due == PHASE_SCHEDULED && slices_phased(o, gen);
  double *u_model = model_next ? out->u_model : r->scratch;
  spf_phase_options po = o->phase;
  po.seed = o->seed + (uint64_t)gen;
  if (model_next) po.n_cycles = o->slice_phase_cycles;
  *cycles = po.n_cycles;
  /* The last generation's output is an ensemble's mean; later generations (a longer or
   * resumed run) continue from its first member, as from any phasing. */
  const int ensemble = last && o->phase_average > 1;
  double *rho = ensemble ? r->ens_rho : out->rho;
  uint8_t *support = ensemble ? r->ens_support : out->support;
  int rc = SPF_OK;
  if (!cm || !cm->active || cm->rank == 0)
    rc = spf_phase(r->M, out->u, &po, cont ? out->rho_next : NULL, cont ? out->support_next : NULL, rho, support,
                   u_model, r->cyc);
  if (ensemble && !rc && (!cm || !cm->active || cm->rank == 0)) {
    memcpy(out->rho, rho, sizeof(double) * n3);
    memcpy(out->support, support, n3);
    rc = phase_ensemble(r, &po, cont ? out->rho_next : NULL, cont ? out->support_next : NULL, out->rho,
                        out->support);
  }
  rc = spf_comm_agree(cm, rc);
  if (!rc) rc = spf_comm_bcast(cm, out->rho, r->n3 * (int64_t)sizeof(double), 0);
  if (!rc) rc = spf_comm_bcast(cm, out->support, r->n3, 0);
  if (!rc && ensemble && due == PHASE_SCHEDULED) rc = spf_comm_bcast(cm, rho, r->n3 * (int64_t)sizeof(double), 0);
  if (!rc && ensemble && due == PHASE_SCHEDULED) rc = spf_comm_bcast(cm, support, r->n3, 0);
  if (!rc && model_next) rc = spf_comm_bcast(cm, out->u_model, r->n3 * (int64_t)sizeof(double), 0);
  if (!rc) rc = spf_comm_bcast(cm, r->cyc, po.n_cycles * (int64_t)sizeof *r->cyc, 0);
  if (!rc && due == PHASE_SCHEDULED) {
    memcpy(out->rho_next, rho, sizeof(double) * n3);
    memcpy(out->support_next, support, n3);
  }
  return rc;
}

/* The report: the log's merge and phasing figures, the orientation error against the
 * truth (over every rank's images), a line on stderr when verbose. */
static int report(const run *r, int cycles, int chosen, spf_generation_log *log)
{
  const spf_reconstruct_options *o = &r->o;
  const spf_comm *cm = r->cm;
  log->cg_iterations = r->stats[chosen].iterations;
  log->cg_residual = r->stats[chosen].rel_residual;
  log->rho_chosen = r->stats[chosen].rho;
  log->phase_error = cycles > 0 ? r->cyc[cycles - 1].fourier_error : NAN;
  log->support_size = 0;
  for (int64_t v = 0; v < r->n3; v++) log->support_size += r->out->support[v] != 0;
  const int64_t n = r->out->n_images;
  if (r->true_quats && !(cm && cm->active))
    log->median_orientation_error_deg =
        spf_orientation_error_median(n, r->true_quats, r->out->orientations, &log->p90_orientation_error_deg);
  if (r->true_quats && cm && cm->active) {
    double e[2];
    const int rc = distributed_error(cm, n, r->true_quats, r->out->orientations, e);
    if (rc) return rc;
    log->median_orientation_error_deg = e[0];
    log->p90_orientation_error_deg = e[1];
  }
  if (o->verbose)
    fprintf(stderr,
            "generation %d: changed %.3f, median orientation error %.2f deg, CG %d it (residual %.1e, rho %.3g), "
            "phasing error %.3f, support %lld | slice+match %.1fs merge %.1fs phase %.1fs\n",
            log->generation, log->fraction_changed, log->median_orientation_error_deg, log->cg_iterations,
            log->cg_residual, log->rho_chosen, log->phase_error, (long long)log->support_size, log->t_slice_match,
            log->t_merge, log->t_phase);
  return SPF_OK;
}

int spf_reconstruct(int64_t n_images, int64_t np, const float *images, const double *s, const double *true_quats,
                    const spf_reconstruct_options *opts, const spf_run_state *resume, spf_generation_fn on_generation,
                    void *ctx, spf_run_state *out)
{
  run r;
  int rc = run_setup(&r, n_images, np, images, s, true_quats, opts, resume, out);
  if (rc) {
    run_free(&r);
    return rc;
  }
  const spf_reconstruct_options *o = &r.o;
  /* A resumed run continues after its state's last complete generation, which holds
   * everything the next generation reads, so the run goes on as if never stopped; one
   * that had already met its stopping rule does nothing more. */
  int gen = resume ? resume->generation : 0, have_model = resume ? resume->have_model : 0;
  out->generation = gen;
  out->have_model = have_model;
  const int stopped = resume && resume->generation > 1 && resume_stopped(resume, o);
  for (; !rc && !stopped && gen < o->max_generations; gen++) {
    spf_generation_log log = {.generation = gen, .model = o->model, .fraction_changed = 1.0,
                              .median_orientation_error_deg = NAN, .p90_orientation_error_deg = NAN,
                              .beta = NAN, .mean_entropy = NAN, .median_gap = NAN, .median_spread = NAN,
                              .negative_fraction = NAN};
    /* 1. The schedule: this generation's reference grid; the final grid chosen from
     * generation 0's merge. */
    if (gen >= 1 && r.auto_refs && r.o.n_references == 0) {
      const int64_t floor_refs = o->refs_start > 0 ? o->refs_start : 1000;
      rc = spf_reconstruct_reference_count(r.M, out->u, o->oversampling, floor_refs,
                                           o->refs_max > floor_refs ? o->refs_max : floor_refs, &log.refs_choice);
      if (rc) break;
      r.o.n_references = out->n_references = log.refs_choice.n_references;
    }
    const int64_t n_refs = reference_count(o, gen);
    /* 2. Orientations from the model (none yet: random), the views into the merger. */
    rc = spf_orienter_execute(r.orienter, gen, n_refs, have_model ? out->u_model : NULL, r.mg, out, &log);
    if (rc) break;
    /* 3. The merge. */
    const double t1 = omp_get_wtime();
    int chosen = 0;
    rc = merge_step(&r, have_model, &chosen, &log);
    const double t2 = omp_get_wtime();
    if (o->on_step) o->on_step(o->step_ctx, gen, "merge", 1, 1);
    /* 4. Phasing, when due. */
    const int last = last_generation(o, gen, n_refs, log.fraction_changed);
    const int phased = phase_due(o, gen, have_model, last);
    if (o->on_step) o->on_step(o->step_ctx, gen, "phase", 0, 1);
    int cycles = 0;
    if (!rc && phased) rc = phase_step(&r, gen, have_model, phased, last, &cycles);
    const double t3 = omp_get_wtime();
    if (o->on_step) o->on_step(o->step_ctx, gen, "phase", 1, 1);
    if (rc) break;
    if (!slices_phased(o, gen)) memcpy(out->u_model, out->u, sizeof(double) * (size_t)r.n3);
    have_model = 1;
    out->generation = gen + 1;
    out->have_model = 1;
    /* 5. The report; the caller's callback; the stopping rule. */
    log.t_merge += t2 - t1; /* after the views, when the orientation step merged them */
    log.t_phase = t3 - t2;
    rc = report(&r, cycles, chosen, &log);
    if (rc) break;
    out->last_fraction_changed = stopping_figure(o, n_refs, log.fraction_changed);
    if (on_generation && on_generation(ctx, &log, out)) break;
    if (gen > 0 && out->last_fraction_changed < o->stop_fraction) break;
  }
  run_free(&r);
  return rc;
}
