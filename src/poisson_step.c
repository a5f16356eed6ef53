/* The Poisson (EMC) orientation step (see poisson_step.h). */
#include "poisson_step.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/posterior.h"
#include "spinifel/rotation.h"

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Model images of references f .. f + c - 1: from the store once filled, else sliced. */
static int poisson_models(const spf_poisson_job *j, float *store, int stored, int64_t f, int64_t c, const float **models,
                          spf_generation_log *log)
{
  if (store && stored) {
    *models = store + f * j->np;
    return SPF_OK;
  }
  float *dst = store ? store + f * j->np : j->slices;
  const double ts = omp_get_wtime();
  int rc = spf_orientation_grid(j->n_refs, f, c, j->refq);
  for (int64_t k = 0; !rc && k < c; k++) spf_quat_to_matrix(j->refq + 4 * k, j->refm + 9 * k);
  if (!rc) rc = spf_slicer_slice(j->sl, c, j->refm, dst);
  log->t_slice += omp_get_wtime() - ts;
  *models = dst;
  return rc;
}

static void poisson_progress(const spf_poisson_job *j, int64_t *done, int64_t c)
{
  *done += c;
  if (j->o->on_step) j->o->on_step(j->o->step_ctx, j->gen, "slice+match", *done, 3 * j->n_refs);
}

/* Add references f .. f + c - 1 (views summed over every image, and their weights) to
 * the merger: each reference with weight at its orientation, its view over its weight. */
static int merge_poisson_batch(const spf_poisson_job *j, int64_t f, int64_t c, double *views, double *wt,
                               double *tmerge)
{
  const int64_t np = j->np, n = j->slots * np;
  /* The images not examined: their kept probabilities' sums (posterior.h). */
  for (int64_t r = 0; j->fixed && r < c; r++) {
    const double *v = spf_posterior_views_view(j->fixed, f + r);
    for (int64_t p = 0; p < np; p++) views[r * np + p] += v[p];
    wt[r] += spf_posterior_views_weight(j->fixed, f + r);
  }
  int rc = spf_orientation_grid(j->n_refs, f, c, j->refq);
  int64_t used = 0;
  for (int64_t r = 0; !rc && r < c; r++) {
    if (!(wt[r] > 0)) continue;
    double rot[9];
    spf_quat_to_matrix(j->refq + 4 * r, rot);
    spf_slicer_points(j->sl, rot, j->x + used * np, j->x + n + used * np, j->x + 2 * n + used * np);
    for (int64_t p = 0; p < np; p++) {
      j->b[used * np + p] = views[r * np + p] / wt[r];
      j->w[used * np + p] = wt[r];
    }
    used++;
  }
  if (!rc && used > 0) {
    const int64_t nup = used * np;
    if (nup < n) {
      memmove(j->x + nup, j->x + n, sizeof(double) * (size_t)nup);
      memmove(j->x + 2 * nup, j->x + 2 * n, sizeof(double) * (size_t)nup);
    }
    const double tm = omp_get_wtime();
    rc = spf_merger_add_points(j->mg, nup, j->x, j->x + nup, j->x + 2 * nup, j->b, j->w);
    *tmerge += omp_get_wtime() - tm;
  }
  return rc;
}

/* The confidence's predicate: references a and b within the limit of each other, or b
 * within it of a turned 180 degrees about the beam (the Friedel twin's orientation, as
 * orientation.c's confidence). spf_quat_angle's test without its acos: |qa . qb| at
 * least cos(limit / 2). */
typedef struct {
  const double *q, *flip; /* n_refs quaternions, and each turned about the beam */
  double cos_half;
} near_ctx;

static double quat_dot(const double *a, const double *b)
{
  return fabs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]);
}

static int near_refs(void *ctx, int64_t a, int64_t b)
{
  const near_ctx *c = ctx;
  return quat_dot(c->q + 4 * a, c->q + 4 * b) >= c->cos_half ||
         quat_dot(c->flip + 4 * a, c->q + 4 * b) >= c->cos_half;
}

/* References in batch b of pb over R. */
static int64_t batch_refs(int64_t R, int64_t pb, int64_t b)
{
  return R - b * pb < pb ? R - b * pb : pb;
}

/* Pass 3, the views merged in batches of pb <= slots references: the views chain along
 * the ranks, completed batches merged round-robin (poisson_step.h). */
static int poisson_views(const spf_poisson_job *j, float *store, spf_generation_log *log, int64_t *done,
                         double *tmerge)
{
  const spf_comm *cm = j->cm;
  const int P = cm && cm->active ? cm->size : 1, rank = cm && cm->active ? cm->rank : 0;
  const int64_t np = j->np, R = j->n_refs, pb = j->nb < j->slots ? j->nb : j->slots;
  const int64_t nbatch = (R + pb - 1) / pb, rec = pb * (np + 1);
  /* A batch's sums: c views (np each) then c weights. part: the batch this rank works on
   * (or receives); held: a completed batch waiting to be merged here. */
  double *part = malloc(sizeof(double) * (size_t)rec), *held = malloc(sizeof(double) * (size_t)rec);
  int64_t *send_bytes = calloc((size_t)P, sizeof(int64_t)), held_b = -1;
  int rc = part && held && send_bytes ? SPF_OK : SPF_ERR_ALLOC;
  for (int64_t t = 0; t < nbatch + P - 1; t++) {
    const int64_t b = t - rank, bc = t - (P - 1); /* mine; the one completed at this step */
    for (int r = 0; r < P; r++) send_bytes[r] = 0;
    if (!rc && b >= 0 && b < nbatch) {
      const int64_t f = b * pb, c = batch_refs(R, pb, b);
      const float *models = NULL;
      rc = poisson_models(j, store, 1, f, c, &models, log);
      if (!rc && rank == 0) rc = spf_likelihood_views(j->lk, f, c, models, part, part + c * np);
      else if (!rc) rc = spf_likelihood_views_onto(j->lk, f, c, models, part, part + c * np);
      poisson_progress(j, done, c);
      const int to = rank < P - 1 ? rank + 1 : (int)(b % P);
      if (!rc && to != rank) {
        send_bytes[to] = c * (np + 1) * (int64_t)sizeof(double);
      } else if (!rc) {
        double *sw = held; /* complete and mine: held, whose last batch is merged */
        held = part;
        part = sw;
        held_b = b;
      }
    }
    rc = spf_comm_agree(cm, rc);
    if (rc) break;
    if (P > 1) {
      /* In rank order: the partial sums from rank - 1, then a completed batch from P - 1. */
      void *in = NULL;
      int64_t got = 0, at = 0;
      rc = spf_comm_alltoallv(cm, part, send_bytes, &in, &got);
      const int64_t bp = t - (rank - 1);
      if (!rc && rank > 0 && bp >= 0 && bp < nbatch) {
        const int64_t n = batch_refs(R, pb, bp) * (np + 1);
        if ((at + n) * (int64_t)sizeof(double) <= got) memcpy(part, (double *)in + at, sizeof(double) * (size_t)n);
        at += n;
      }
      if (!rc && rank < P - 1 && bc >= 0 && bc < nbatch && bc % P == rank) {
        const int64_t n = batch_refs(R, pb, bc) * (np + 1);
        if ((at + n) * (int64_t)sizeof(double) <= got) memcpy(held, (double *)in + at, sizeof(double) * (size_t)n);
        at += n;
        held_b = bc;
      }
      if (!rc && at * (int64_t)sizeof(double) != got) rc = SPF_ERR_MPI;
      free(in);
    }
    /* Every P batches (and after the last) each rank merges the batch it holds. */
    if (!rc && held_b >= 0 && bc >= 0 && (bc % P == P - 1 || bc == nbatch - 1)) {
      const int64_t c = batch_refs(R, pb, held_b);
      rc = merge_poisson_batch(j, held_b * pb, c, held, held + c * np, tmerge);
      held_b = -1;
    }
  }
  free(part);
  free(held);
  free(send_bytes);
  return spf_comm_agree(cm, rc);
}

/* The annealing factor's schedule: beta_start (0: Dragonfly's exp(-6.5 (n / 1e5)^0.15)
 * for the median image's n photons) doubled every beta_period generations from
 * generation 1, at least beta_min_spread over the median image's spread of log L (best -
 * mean), at most beta_max (and 1). fig: n x 3 per-image figures of every image (spread,
 * photons, fluence); tmp: n doubles of scratch; log->median_spread is set. */
static double poisson_beta(const spf_reconstruct_options *o, int gen, int64_t n, const double *fig, double *tmp,
                           spf_generation_log *log)
{
  for (int64_t k = 0; k < n; k++) tmp[k] = fig[3 * k];
  qsort(tmp, (size_t)n, sizeof(double), cmp_double);
  log->median_spread = tmp[n / 2];
  for (int64_t k = 0; k < n; k++) tmp[k] = fig[3 * k + 1];
  qsort(tmp, (size_t)n, sizeof(double), cmp_double);
  const double b0 = o->beta_start > 0 ? o->beta_start : exp(-6.5 * pow(tmp[n / 2] * 1e-5, 0.15));
  double beta = b0 * pow(2.0, (double)((gen - 1) / (o->beta_period > 0 ? o->beta_period : 1)));
  if (log->median_spread > 0) beta = fmax(beta, o->beta_min_spread / log->median_spread);
  beta = fmin(o->beta_max > 0 ? fmin(1, o->beta_max) : 1, beta);
  return beta > 0 ? beta : 1e-12;
}

int spf_poisson_step(const spf_poisson_job *j, spf_generation_log *log)
{
  const spf_comm *cm = j->cm;
  const int64_t np = j->np, R = j->n_refs, N = j->n_images;
  float *store = R * np * (int64_t)sizeof(float) <= j->store_bytes ? malloc(sizeof(float) * (size_t)(R * np)) : NULL;
  double *bestL = malloc(sizeof(double) * (size_t)N), *gap = malloc(sizeof(double) * (size_t)N);
  double *meanL = malloc(sizeof(double) * (size_t)N), *ent = malloc(sizeof(double) * (size_t)N);
  double *fl = malloc(sizeof(double) * (size_t)N), *fig = malloc(sizeof(double) * 3 * (size_t)N);
  double *far = malloc(sizeof(double) * (size_t)N), *allq = malloc(sizeof(double) * 8 * (size_t)R);
  /* Per-image figures of all ranks' images, in the images' order: n_all x 3. */
  double *all = NULL, *tmp = NULL;
  int64_t n_all = 0, done = 0;
  int rc = bestL && gap && meanL && ent && fl && fig && far && allq ? SPF_OK : SPF_ERR_ALLOC;
  if (!rc) rc = spf_orientation_grid(R, 0, R, allq);
  static const double zflip[4] = {0, 0, 0, 1}; /* 180 degrees about the beam (z) */
  for (int64_t r = 0; !rc && r < R; r++) spf_quat_multiply(zflip, allq + 4 * r, allq + 4 * (R + r));
  const near_ctx nc = {allq, allq + 4 * R, cos(0.5 * j->near_limit)};
  if (!rc) rc = spf_likelihood_set_near(j->lk, near_refs, (void *)&nc);
  const float *models = NULL;
  /* 1. Each image's best reference and the spread of its log-likelihood. */
  double tp0, tv0, tmerge = 0;
  spf_likelihood_timing(j->lk, &tp0, &tv0);
  /* What the store leaves of its budget keeps pass 1's likelihoods for passes 2 and 3. */
  const int64_t left = j->store_bytes - (store ? R * np * (int64_t)sizeof(float) : 0);
  if (!rc) rc = spf_likelihood_keep(j->lk, left > 0 ? left : 0);
  if (!rc) rc = spf_likelihood_track(j->lk, j->track_k > 0 ? j->track_k : 0);
  if (!rc) rc = spf_likelihood_begin(j->lk, R, j->phi);
  for (int64_t f = 0; !rc && f < R; f += j->nb) {
    const int64_t c = R - f < j->nb ? R - f : j->nb;
    rc = poisson_models(j, store, 0, f, c, &models, log);
    if (!rc) rc = spf_likelihood_scan(j->lk, f, c, models);
    poisson_progress(j, &done, c);
  }
  if (!rc) rc = spf_likelihood_best(j->lk, j->best, bestL, gap, meanL);
  for (int64_t k = 0; !rc && k < N; k++) {
    fig[3 * k] = bestL[k] - meanL[k];
    fig[3 * k + 1] = spf_likelihood_photons(j->lk, k);
    fig[3 * k + 2] = j->phi[k];
  }
  rc = spf_comm_agree(cm, rc);
  if (!rc) rc = spf_comm_allgather(cm, fig, N, 3 * (int64_t)sizeof(double), (void **)&all, &n_all);
  if (!rc && !(tmp = malloc(sizeof(double) * (size_t)n_all))) rc = SPF_ERR_ALLOC;
  rc = spf_comm_agree(cm, rc);
  /* 2. beta, from the medians over all images. */
  const double beta = rc ? 1 : poisson_beta(j->o, j->gen, n_all, all, tmp, log);
  for (int64_t f = 0; !rc && f < R; f += j->nb) {
    const int64_t c = R - f < j->nb ? R - f : j->nb;
    rc = poisson_models(j, store, 1, f, c, &models, log);
    if (!rc) rc = spf_likelihood_normalise(j->lk, beta, f, c, models);
    poisson_progress(j, &done, c);
  }
  if (!rc) rc = spf_likelihood_distant_gap(j->lk, far);
  spf_likelihood_set_near(j->lk, NULL, NULL);
  /* 3. The views. Exact sums with bounds over every call (and every rank): sum w <= np
   * sum phi, sum w |b| <= photons, sum w b^2 <= photons max K/phi. */
  double photons = 0, kmax = 0, phisum = 0;
  spf_posterior_views_totals(j->fixed, NULL, &phisum, &photons, &kmax);
  for (int64_t k = 0; !rc && k < n_all; k++) {
    photons += all[3 * k + 1];
    phisum += all[3 * k + 2];
  }
  for (int64_t k = 0; !rc && k < n_all; k++)
    if (all[3 * k + 2] > 0) kmax = fmax(kmax, all[3 * k + 1] / all[3 * k + 2]);
  if (!rc)
    rc = spf_merger_exact_sums(j->mg, 2.0 * (double)np * fmax(phisum, 1e-300), 2.0 * fmax(photons, 1e-300),
                               2.0 * fmax(photons * kmax, 1e-300));
  rc = spf_comm_agree(cm, rc);
  if (!rc) rc = poisson_views(j, store, log, &done, &tmerge);
  /* Per image: confidence figures, and the fluence for the next generation (mean 1 over
   * all images). */
  if (!rc) rc = spf_likelihood_image_stats(j->lk, ent, NULL, fl);
  if (!rc && j->track_k > 0) rc = spf_likelihood_top(j->lk, j->post_ref, j->post_p);
  for (int64_t k = 0; !rc && k < N; k++) {
    j->best_dist[k] = (float)-bestL[k];
    j->gap[k] = (float)(isfinite(far[k]) ? far[k] : gap[k]); /* every reference near: the second best's */
    j->entropy[k] = (float)ent[k];
    fig[3 * k] = ent[k];
    fig[3 * k + 1] = fl[k];
    fig[3 * k + 2] = gap[k];
  }
  free(all);
  all = NULL;
  rc = spf_comm_agree(cm, rc);
  if (!rc) rc = spf_comm_allgather(cm, fig, N, 3 * (int64_t)sizeof(double), (void **)&all, &n_all);
  if (!rc) {
    double hsum = 0, fsum = 0;
    for (int64_t k = 0; k < n_all; k++) {
      hsum += all[3 * k];
      fsum += all[3 * k + 1];
      tmp[k] = all[3 * k + 2];
    }
    if (j->o->update_fluence && fsum > 0)
      for (int64_t k = 0; k < N; k++) j->phi[k] = fl[k] * (double)n_all / fsum;
    qsort(tmp, (size_t)n_all, sizeof(double), cmp_double);
    double tp1, tv1;
    spf_likelihood_timing(j->lk, &tp1, &tv1);
    log->t_likelihood = tp1 - tp0;
    log->t_views = tv1 - tv0;
    log->t_merge_points = tmerge;
    log->beta = beta;
    log->mean_entropy = hsum / (double)n_all;
    log->median_gap = tmp[n_all / 2];
  }
  free(far); free(allq);
  free(store); free(bestL); free(gap); free(meanL); free(ent); free(fl); free(fig); free(all); free(tmp);
  return spf_comm_agree(cm, rc);
}
