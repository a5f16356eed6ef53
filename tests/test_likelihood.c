/* Poisson likelihood orientation against a brute-force double-precision reference. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "spinifel/likelihood.h"
#include "poisson_problem.h"
#include "testing.h"

/* Sparse Poisson counts from models with a per-image scale; some model values <= 0 (the
 * floor), some images empty. */
static problem make_problem(int64_t n_img, int64_t n_ref, int64_t np, uint64_t seed)
{
  return make_problem_with(n_img, n_ref, np, seed, 1);
}

/* The reference: every quantity from its definition, in double. */
typedef struct {
  double *L, *P, *V, *Wt, *H, *fl;
} reference;

static reference brute(const problem *q, double floor, double beta)
{
  const int64_t N = q->n_img, R = q->n_ref, np = q->np;
  reference b = {malloc(sizeof(double) * N * R), malloc(sizeof(double) * N * R), calloc(R * np, sizeof(double)),
                 calloc(R, sizeof(double)), calloc(N, sizeof(double)), calloc(N, sizeof(double))};
  for (int64_t k = 0; k < N; k++) {
    double mx = -INFINITY;
    for (int64_t j = 0; j < R; j++) {
      double cross = 0, sw = 0;
      for (int64_t p = 0; p < np; p++) {
        const double w = fmax((double)q->models[j * np + p], (double)(float)floor);
        cross += q->counts[k * np + p] * log(w);
        sw += w;
      }
      b.L[k * R + j] = cross - q->phi[k] * sw;
      mx = fmax(mx, b.L[k * R + j]);
    }
    double z = 0;
    for (int64_t j = 0; j < R; j++) z += exp(beta * (b.L[k * R + j] - mx));
    double ew = 0, ph = 0;
    for (int64_t j = 0; j < R; j++) {
      const double p = exp(beta * (b.L[k * R + j] - mx)) / z;
      b.P[k * R + j] = p;
      if (p > 0) b.H[k] -= p * log(p);
      double sw = 0;
      for (int64_t pp = 0; pp < np; pp++) sw += fmax((double)q->models[j * np + pp], (double)(float)floor);
      ew += p * sw;
      b.Wt[j] += p * q->phi[k];
      for (int64_t pp = 0; pp < np; pp++) b.V[j * np + pp] += p * q->counts[k * np + pp];
    }
    for (int64_t pp = 0; pp < np; pp++) ph += q->counts[k * np + pp];
    b.fl[k] = ph / ew;
  }
  return b;
}

static void free_reference(reference *b)
{
  free(b->L); free(b->P); free(b->V); free(b->Wt); free(b->H); free(b->fl);
}

typedef struct {
  int64_t *best;
  double *bestL, *gap, *mean, *H, *pbest, *fl, *V, *Wt;
} result;

/* One E-step with the given batch size and threads; keep: spf_likelihood_keep's bytes,
 * later: the models passes 2 and 3 are given (NULL: pass 1's). */
static int run_kept(const problem *q, int64_t batch, int threads, double beta, double drop, double floor,
                    int64_t keep, const float *later, result *out)
{
  spf_likelihood_options o;
  spf_likelihood_default_options(&o);
  o.nthreads = threads;
  o.drop_mass = drop;
  o.model_floor = floor;
  spf_likelihood *lk;
  int rc = spf_likelihood_make(q->n_img, q->np, q->counts, &o, &lk);
  if (rc) return rc;
  const int64_t N = q->n_img, R = q->n_ref, np = q->np;
  out->best = malloc(sizeof(int64_t) * N);
  double **arrs[] = {&out->bestL, &out->gap, &out->mean, &out->H, &out->pbest, &out->fl};
  for (int a = 0; a < 6; a++) *arrs[a] = malloc(sizeof(double) * N);
  out->V = malloc(sizeof(double) * R * np);
  out->Wt = malloc(sizeof(double) * R);
  const float *m23 = later ? later : q->models;
  rc = spf_likelihood_keep(lk, keep);
  if (!rc) rc = spf_likelihood_begin(lk, R, q->phi);
  for (int64_t f = 0; !rc && f < R; f += batch)
    rc = spf_likelihood_scan(lk, f, R - f < batch ? R - f : batch, q->models + f * np);
  if (!rc) rc = spf_likelihood_best(lk, out->best, out->bestL, out->gap, out->mean);
  for (int64_t f = 0; !rc && f < R; f += batch)
    rc = spf_likelihood_normalise(lk, beta, f, R - f < batch ? R - f : batch, m23 + f * np);
  for (int64_t f = 0; !rc && f < R; f += batch)
    rc = spf_likelihood_views(lk, f, R - f < batch ? R - f : batch, m23 + f * np, out->V + f * np, out->Wt + f);
  if (!rc) rc = spf_likelihood_image_stats(lk, out->H, out->pbest, out->fl);
  spf_likelihood_free(lk);
  return rc;
}

static int run(const problem *q, int64_t batch, int threads, double beta, double drop, double floor, result *out)
{
  return run_kept(q, batch, threads, beta, drop, floor, 0, NULL, out);
}

static void free_result(result *r)
{
  free(r->best); free(r->bestL); free(r->gap); free(r->mean); free(r->H); free(r->pbest); free(r->fl);
  free(r->V); free(r->Wt);
}

static void likelihood_probabilities_views_match_brute_force_double(void)
{
  problem q = make_problem(23, 70, 150, 11);
  const double floor = 1e-3, beta = 0.7;
  reference b = brute(&q, floor, beta);
  result r;
  CHECK(run(&q, 32, 2, beta, 0.0, floor, &r) == SPF_OK, "run");
  const int64_t N = q.n_img, R = q.n_ref, np = q.np;
  /* L: each term count x logf(w) against log(w): logf is within 2^-23 relative, so the
   * bound is 2^-22 sum_p K |log w| (plus rounding of the sums). */
  double worst_L = 0, worst_P = 0;
  for (int64_t k = 0; k < N; k++) {
    double scale = 1; /* absolute slack for the phi sum W term, summed in another order */
    for (int64_t p = 0; p < np; p++) scale += q.counts[k * np + p] * 10.0; /* |log w| <= log(1e3) < 7 */
    int64_t jb = 0;
    for (int64_t j = 0; j < R; j++) {
      if (b.L[k * R + j] > b.L[k * R + jb]) jb = j;
    }
    worst_L = fmax(worst_L, fabs(r.bestL[k] - b.L[k * R + jb]) / scale);
    CHECK(r.best[k] == jb || fabs(b.L[k * R + r.best[k]] - b.L[k * R + jb]) <= 4e-7 * scale, "image %lld best %lld vs %lld",
          (long long)k, (long long)r.best[k], (long long)jb);
    double mean = 0;
    for (int64_t j = 0; j < R; j++) mean += b.L[k * R + j] / R;
    CHECK(fabs(r.mean[k] - mean) <= 4e-7 * scale, "mean L");
    /* P: exp(beta dL) with dL off by 2 x 2^-22 scale. */
    const double pb = 2 * beta * 2.4e-7 * scale + 1e-12;
    worst_P = fmax(worst_P, fabs(r.pbest[k] - b.P[k * R + r.best[k]]) / pb);
    CHECK(fabs(r.H[k] - b.H[k]) <= 2 * pb * (1 + b.H[k]) + 1e-9, "entropy %g vs %g", r.H[k], b.H[k]);
    CHECK(fabs(r.fl[k] - b.fl[k]) <= pb * fabs(b.fl[k]) + 1e-12, "fluence %g vs %g", r.fl[k], b.fl[k]);
  }
  CHECK(worst_L <= 2.4e-7, "L relative to sum K |log w|: %g", worst_L);
  CHECK(worst_P <= 1, "probability of the best reference: %g of its bound", worst_P);
  /* Views and weights: sums of P times counts / phi, relative to the photon total. */
  double tot = 0, phisum = 0, worst_V = 0, worst_W = 0;
  for (int64_t k = 0; k < N * np; k++) tot += q.counts[k];
  for (int64_t k = 0; k < N; k++) phisum += q.phi[k];
  for (int64_t j = 0; j < R * np; j++) worst_V = fmax(worst_V, fabs(r.V[j] - b.V[j]));
  for (int64_t j = 0; j < R; j++) worst_W = fmax(worst_W, fabs(r.Wt[j] - b.Wt[j]));
  CHECK(worst_V <= 1e-4 * tot / R + 1e-12, "views: worst %g (photons %g)", worst_V, tot);
  CHECK(worst_W <= 1e-4 * phisum / R + 1e-12, "weights: worst %g", worst_W);
  /* The empty image: no photons, a flat likelihood but for phi sum W. */
  CHECK(r.fl[3] == 0, "empty image fluence %g", r.fl[3]);
  free_result(&r);
  free_reference(&b);
  free_problem(&q);
}

static void likelihood_same_bits_any_batch_and_threads(void)
{
  problem q = make_problem(40, 100, 90, 5);
  result a, c;
  CHECK(run(&q, 100, 1, 0.5, 1e-6, 0, &a) == SPF_OK, "run a");
  const int64_t batches[] = {7, 32, 45};
  for (int t = 0; t < 3; t++) {
    CHECK(run(&q, batches[t], 2, 0.5, 1e-6, 0, &c) == SPF_OK, "run c");
    CHECK(!memcmp(a.best, c.best, sizeof(int64_t) * q.n_img), "best, batch %lld", (long long)batches[t]);
    CHECK(!memcmp(a.bestL, c.bestL, sizeof(double) * q.n_img), "best L, batch %lld", (long long)batches[t]);
    CHECK(!memcmp(a.H, c.H, sizeof(double) * q.n_img), "entropy, batch %lld", (long long)batches[t]);
    CHECK(!memcmp(a.fl, c.fl, sizeof(double) * q.n_img), "fluence, batch %lld", (long long)batches[t]);
    CHECK(!memcmp(a.V, c.V, sizeof(double) * q.n_ref * q.np), "views, batch %lld", (long long)batches[t]);
    CHECK(!memcmp(a.Wt, c.Wt, sizeof(double) * q.n_ref), "weights, batch %lld", (long long)batches[t]);
    free_result(&c);
  }
  free_result(&a);
  free_problem(&q);
}

/* Pass 1's likelihoods kept for passes 2 and 3 (spf_likelihood_keep): the same bits as
 * computing them again, at any batch size; with too small a budget they are computed
 * again. That passes 2 and 3 then read the kept values, not their models, shows in a run
 * given other models there: the same bits when kept, others when not. */
static void kept_likelihoods_give_the_same_bits(void)
{
  problem q = make_problem(41, 100, 90, 5);
  const int64_t N = q.n_img, R = q.n_ref, np = q.np, need = (int64_t)sizeof(double) * (N + 1) * R;
  float *other = malloc(sizeof(float) * R * np);
  for (int64_t i = 0; i < R * np; i++) other[i] = 2 * q.models[i];
  result a, c;
  CHECK(run(&q, 100, 1, 0.5, 1e-6, 0, &a) == SPF_OK, "run a");
  const int64_t batches[] = {7, 32, 100};
  for (int t = 0; t < 4; t++) {
    const int64_t keep = t < 3 ? need : need - 1, batch = t < 3 ? batches[t] : 32;
    CHECK(run_kept(&q, batch, 2, 0.5, 1e-6, 0, keep, NULL, &c) == SPF_OK, "run c");
    CHECK(!memcmp(a.best, c.best, sizeof(int64_t) * N) && !memcmp(a.bestL, c.bestL, sizeof(double) * N) &&
              !memcmp(a.H, c.H, sizeof(double) * N) && !memcmp(a.fl, c.fl, sizeof(double) * N) &&
              !memcmp(a.pbest, c.pbest, sizeof(double) * N) && !memcmp(a.V, c.V, sizeof(double) * R * np) &&
              !memcmp(a.Wt, c.Wt, sizeof(double) * R),
          "kept %lld bytes, batch %lld: not the same bits", (long long)keep, (long long)batch);
    free_result(&c);
    CHECK(run_kept(&q, batch, 2, 0.5, 1e-6, 0, keep, other, &c) == SPF_OK, "run c, other models");
    const int same = !memcmp(a.V, c.V, sizeof(double) * R * np) && !memcmp(a.fl, c.fl, sizeof(double) * N);
    CHECK(same == (t < 3), "kept %lld bytes (%lld needed): passes 2 and 3 %s their models", (long long)keep,
          (long long)need, same ? "ignored" : "read");
    free_result(&c);
  }
  CHECK(spf_likelihood_keep(NULL, 1) == SPF_ERR_NULL, "NULL plan");
  spf_likelihood *lk;
  CHECK(spf_likelihood_make(N, np, q.counts, NULL, &lk) == SPF_OK, "plan");
  CHECK(spf_likelihood_keep(lk, -1) == SPF_ERR_ARG, "negative bytes");
  spf_likelihood_free(lk);
  free(other);
  free_result(&a);
  free_problem(&q);
}

/* The confidence's distant alternative (spf_likelihood_set_near, _distant_gap) against
 * brute force: best L minus the best L over references more than 3 indices from the
 * best (the predicate here), with the L's bound of the test above; the same at any batch
 * size; refused before pass 2 or without a predicate. */
static int near_by_index(void *ctx, int64_t a, int64_t b)
{
  const int64_t d = a > b ? a - b : b - a;
  return d <= *(const int64_t *)ctx;
}

static void distant_gap_matches_brute_force(void)
{
  problem q = make_problem(23, 70, 150, 12);
  const double floor = 1e-3;
  reference b = brute(&q, floor, 0.7);
  const int64_t N = q.n_img, R = q.n_ref, np = q.np, radius = 3;
  double *gap[2] = {malloc(sizeof(double) * N), malloc(sizeof(double) * N)};
  int64_t *best = malloc(sizeof(int64_t) * N);
  const int64_t batches[2] = {70, 9};
  for (int t = 0; t < 2; t++) {
    spf_likelihood_options o;
    spf_likelihood_default_options(&o);
    o.nthreads = 2;
    o.model_floor = floor;
    spf_likelihood *lk;
    CHECK(spf_likelihood_make(N, np, q.counts, &o, &lk) == SPF_OK, "plan");
    CHECK(spf_likelihood_begin(lk, R, q.phi) == SPF_OK, "begin");
    CHECK(spf_likelihood_distant_gap(lk, gap[t]) == SPF_ERR_ARG, "distant gap before pass 2");
    for (int64_t f = 0; f < R; f += batches[t])
      spf_likelihood_scan(lk, f, R - f < batches[t] ? R - f : batches[t], q.models + f * np);
    spf_likelihood_best(lk, best, NULL, NULL, NULL);
    CHECK(spf_likelihood_set_near(lk, near_by_index, (void *)&radius) == SPF_OK, "set near");
    for (int64_t f = 0; f < R; f += batches[t]) {
      spf_likelihood_normalise(lk, 0.7, f, R - f < batches[t] ? R - f : batches[t], q.models + f * np);
      if (f == 0 && R > batches[t])
        CHECK(spf_likelihood_set_near(lk, NULL, NULL) == SPF_ERR_ARG, "set near within pass 2");
    }
    CHECK(spf_likelihood_distant_gap(lk, gap[t]) == SPF_OK, "distant gap");
    spf_likelihood_set_near(lk, NULL, NULL);
    double g1;
    CHECK(spf_likelihood_distant_gap(lk, &g1) == SPF_ERR_ARG, "distant gap without a predicate");
    spf_likelihood_free(lk);
  }
  double worst = 0;
  for (int64_t k = 0; k < N; k++) {
    double scale = 1, alt = -INFINITY;
    for (int64_t p = 0; p < np; p++) scale += q.counts[k * np + p] * 10.0;
    for (int64_t j = 0; j < R; j++)
      if (llabs(j - best[k]) > radius) alt = fmax(alt, b.L[k * R + j]);
    const double want = b.L[k * R + best[k]] - alt;
    worst = fmax(worst, fabs(gap[0][k] - want) / scale);
    CHECK(gap[0][k] >= 0, "image %lld: distant gap %g < 0", (long long)k, gap[0][k]);
  }
  printf("  distant gap against brute force: worst %.2e of sum K |log w|\n", worst);
  CHECK(worst <= 8e-7, "distant gap off by %g of sum K |log w|", worst);
  CHECK(!memcmp(gap[0], gap[1], sizeof(double) * N), "distant gap depends on the batch size");
  free(gap[0]); free(gap[1]); free(best);
  free_reference(&b);
  free_problem(&q);
}

/* Plans over consecutive shares of the images (as MPI ranks hold them), each continuing
 * the views and weights of the one before (spf_likelihood_views_onto), give the one
 * plan's sums to the bit, whatever each plan's threads. */
static void likelihood_chained_plans_equal_one_plan(void)
{
  problem q = make_problem(40, 100, 90, 5);
  const double beta = 0.5, floor = 1e-3;
  const int64_t R = q.n_ref, np = q.np, batch = 32, first[4] = {0, 13, 30, 40};
  result a;
  CHECK(run(&q, batch, 2, beta, 1e-6, floor, &a) == SPF_OK, "one plan");
  spf_likelihood *lk[3] = {NULL, NULL, NULL};
  double *V = malloc(sizeof(double) * R * np), *Wt = malloc(sizeof(double) * R);
  int rc = SPF_OK;
  for (int s = 0; s < 3 && !rc; s++) {
    spf_likelihood_options o;
    spf_likelihood_default_options(&o);
    o.nthreads = 1 + s % 2;
    o.model_floor = floor;
    rc = spf_likelihood_make(first[s + 1] - first[s], np, q.counts + first[s] * np, &o, &lk[s]);
    if (!rc) rc = spf_likelihood_begin(lk[s], R, q.phi + first[s]);
    for (int64_t f = 0; !rc && f < R; f += batch)
      rc = spf_likelihood_scan(lk[s], f, R - f < batch ? R - f : batch, q.models + f * np);
    for (int64_t f = 0; !rc && f < R; f += batch)
      rc = spf_likelihood_normalise(lk[s], beta, f, R - f < batch ? R - f : batch, q.models + f * np);
  }
  for (int64_t f = 0; !rc && f < R; f += batch) {
    const int64_t c = R - f < batch ? R - f : batch;
    for (int s = 0; s < 3 && !rc; s++)
      rc = (s ? spf_likelihood_views_onto : spf_likelihood_views)(lk[s], f, c, q.models + f * np, V + f * np, Wt + f);
  }
  CHECK(rc == SPF_OK, "chained plans: %s", spf_strerror(rc));
  CHECK(!memcmp(V, a.V, sizeof(double) * R * np), "views");
  CHECK(!memcmp(Wt, a.Wt, sizeof(double) * R), "weights");
  for (int s = 0; s < 3; s++) spf_likelihood_free(lk[s]);
  free(V);
  free(Wt);
  free_result(&a);
  free_problem(&q);
}

/* Dropping references below drop_mass / R loses at most drop_mass of each image's
 * probability: the views differ from the full ones by at most drop_mass x its counts. */
static void likelihood_dropped_mass_within_bound(void)
{
  problem q = make_problem(30, 120, 60, 9);
  const double drop = 1e-2;
  result full, cut;
  CHECK(run(&q, 50, 2, 1.0, 0.0, 0, &full) == SPF_OK, "full");
  CHECK(run(&q, 50, 2, 1.0, drop, 0, &cut) == SPF_OK, "cut");
  for (int64_t p = 0; p < q.np; p++) {
    double diff = 0, bound = 0;
    for (int64_t j = 0; j < q.n_ref; j++) diff += fabs(full.V[j * q.np + p] - cut.V[j * q.np + p]);
    for (int64_t k = 0; k < q.n_img; k++) bound += drop * q.counts[k * q.np + p];
    CHECK(diff <= bound * (1 + 1e-12) + 1e-12, "pixel %lld: %g > %g", (long long)p, diff, bound);
  }
  free_result(&full);
  free_result(&cut);
  free_problem(&q);
}

/* The most likely reference is the one the image was drawn from, at enough photons. */
static void likelihood_finds_the_generating_reference(void)
{
  const int64_t N = 50, R = 40, np = 400;
  problem q = {N, R, np, malloc(sizeof(float) * N * np), malloc(sizeof(float) * R * np), malloc(sizeof(double) * N)};
  int64_t *truth = malloc(sizeof(int64_t) * N);
  spf_rng r;
  spf_rng_seed(&r, 3, 0);
  for (int64_t k = 0; k < R * np; k++) q.models[k] = (float)(2.0 * spf_rng_uniform(&r));
  for (int64_t i = 0; i < N; i++) {
    truth[i] = (int64_t)(spf_rng_next(&r) % (uint64_t)R);
    q.phi[i] = 1;
    for (int64_t p = 0; p < np; p++) q.counts[i * np + p] = (float)spf_rng_poisson(&r, q.models[truth[i] * np + p]);
  }
  result res;
  CHECK(run(&q, 16, 2, 1.0, 1e-6, 0, &res) == SPF_OK, "run");
  int right = 0;
  for (int64_t i = 0; i < N; i++) right += res.best[i] == truth[i];
  CHECK(right == N, "%d of %lld images at their reference", right, (long long)N);
  free_result(&res);
  free(truth);
  free_problem(&q);
}

static void likelihood_refuses_bad_counts_and_order(void)
{
  float bad[4] = {0, 1.5f, 2, 0};
  spf_likelihood *lk = NULL;
  CHECK(spf_likelihood_make(1, 4, bad, NULL, &lk) == SPF_ERR_DATA && !lk, "non-integer count");
  bad[1] = -1;
  CHECK(spf_likelihood_make(1, 4, bad, NULL, &lk) == SPF_ERR_DATA, "negative count");
  bad[1] = NAN;
  CHECK(spf_likelihood_make(1, 4, bad, NULL, &lk) == SPF_ERR_DATA, "NaN count");
  bad[1] = 1;
  CHECK(spf_likelihood_make(1, 4, bad, NULL, &lk) == SPF_OK, "good counts");
  float m[8] = {1, 1, 1, 1, 2, 2, 2, 2};
  CHECK(spf_likelihood_normalise(lk, 1, 0, 1, m) == SPF_ERR_ARG, "normalise before begin");
  CHECK(spf_likelihood_begin(lk, 2, NULL) == SPF_OK, "begin");
  CHECK(spf_likelihood_scan(lk, 1, 1, m) == SPF_ERR_ARG, "a gap in the references");
  CHECK(spf_likelihood_views(lk, 0, 1, m, NULL, NULL) == SPF_ERR_ARG, "views before the scan");
  CHECK(spf_likelihood_scan(lk, 0, 2, m) == SPF_OK, "scan");
  CHECK(spf_likelihood_normalise(lk, 0, 0, 2, m) == SPF_ERR_ARG, "beta 0");
  CHECK(spf_likelihood_normalise(lk, 1.5, 0, 2, m) == SPF_ERR_ARG, "beta above 1");
  spf_likelihood_free(lk);
}

int main(void)
{
  RUN_TEST(likelihood_probabilities_views_match_brute_force_double);
  RUN_TEST(likelihood_same_bits_any_batch_and_threads);
  RUN_TEST(kept_likelihoods_give_the_same_bits);
  RUN_TEST(distant_gap_matches_brute_force);
  RUN_TEST(likelihood_chained_plans_equal_one_plan);
  RUN_TEST(likelihood_dropped_mass_within_bound);
  RUN_TEST(likelihood_finds_the_generating_reference);
  RUN_TEST(likelihood_refuses_bad_counts_and_order);
  return test_summary();
}
