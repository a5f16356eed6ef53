/* Kept posteriors (likelihood.h's tracking) and the views of images not examined
 * (posterior.h), against brute-force sums and against the full E-step's own views. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "poisson_problem.h"
#include "testing.h"

static problem make_problem(int64_t n_img, int64_t n_ref, int64_t np, uint64_t seed)
{
  return make_problem_with(n_img, n_ref, np, seed, 0);
}

/* One E-step in batches, tracking k references; views and weights of every reference. */
static int e_step(const problem *q, int64_t batch, int threads, double beta, double drop, int k, double *V, double *Wt,
                  int32_t *refs, float *probs)
{
  spf_likelihood_options o;
  spf_likelihood_default_options(&o);
  o.nthreads = threads;
  o.drop_mass = drop;
  o.model_floor = 0.01;
  spf_likelihood *lk;
  int rc = spf_likelihood_make(q->n_img, q->np, q->counts, &o, &lk);
  if (rc) return rc;
  const int64_t R = q->n_ref, np = q->np;
  rc = spf_likelihood_track(lk, k);
  if (!rc) rc = spf_likelihood_begin(lk, R, q->phi);
  for (int64_t f = 0; !rc && f < R; f += batch) rc = spf_likelihood_scan(lk, f, R - f < batch ? R - f : batch, q->models + f * np);
  for (int64_t f = 0; !rc && f < R; f += batch)
    rc = spf_likelihood_normalise(lk, beta, f, R - f < batch ? R - f : batch, q->models + f * np);
  if (!rc && k > 0) rc = spf_likelihood_top(lk, refs, probs) == SPF_ERR_ARG ? SPF_OK : SPF_ERR_ARG; /* not before pass 3 */
  for (int64_t f = 0; !rc && f < R; f += batch)
    rc = spf_likelihood_views(lk, f, R - f < batch ? R - f : batch, q->models + f * np, V + f * np, Wt + f);
  if (!rc && k > 0) rc = spf_likelihood_top(lk, refs, probs);
  spf_likelihood_free(lk);
  return rc;
}

/* Every image's probabilities from their definition (double), the floor as e_step's. */
static double *brute_P(const problem *q, double beta)
{
  const int64_t N = q->n_img, R = q->n_ref, np = q->np;
  double *P = malloc(sizeof(double) * N * R);
  for (int64_t i = 0; i < N; i++) {
    double mx = -INFINITY;
    for (int64_t j = 0; j < R; j++) {
      double L = 0;
      for (int64_t p = 0; p < np; p++) {
        const double w = fmax(q->models[j * np + p], (double)0.01f);
        L += q->counts[i * np + p] * log(w) - q->phi[i] * w;
      }
      P[i * R + j] = L;
      mx = fmax(mx, L);
    }
    double z = 0;
    for (int64_t j = 0; j < R; j++) z += exp(beta * (P[i * R + j] - mx));
    for (int64_t j = 0; j < R; j++) P[i * R + j] = exp(beta * (P[i * R + j] - mx)) / z;
  }
  return P;
}

static void top_references_match_brute_force(void)
{
  problem q = make_problem(60, 45, 50, 11);
  const int K = 6;
  const double beta = 0.3;
  double *V = malloc(sizeof(double) * 45 * 50), *Wt = malloc(sizeof(double) * 45);
  int32_t *refs = malloc(sizeof(int32_t) * 60 * K), *refs2 = malloc(sizeof(int32_t) * 60 * K);
  float *probs = malloc(sizeof(float) * 60 * K), *probs2 = malloc(sizeof(float) * 60 * K);
  int rc = e_step(&q, 7, 2, beta, 0, K, V, Wt, refs, probs);
  CHECK(rc == SPF_OK, "e_step: %s", spf_strerror(rc));
  double *P = brute_P(&q, beta);
  int64_t wrong = 0;
  double worst = 0;
  for (int64_t i = 0; !rc && i < 60; i++) {
    /* The brute force's K largest, by selection (lower index first on equal values). */
    char used[45] = {0};
    for (int e = 0; e < K; e++) {
      int64_t bj = -1;
      for (int64_t j = 0; j < 45; j++)
        if (!used[j] && (bj < 0 || P[i * 45 + j] > P[i * 45 + bj])) bj = j;
      used[bj] = 1;
      /* float probabilities: a swap of two within float rounding is not an error */
      if (refs[i * K + e] != bj && fabs(P[i * 45 + refs[i * K + e]] - P[i * 45 + bj]) > 1e-6 * P[i * 45 + bj]) wrong++;
      if (refs[i * K + e] >= 0 && refs[i * K + e] < 45)
        worst = fmax(worst, fabs(probs[i * K + e] - P[i * 45 + refs[i * K + e]]) / fmax(P[i * 45 + refs[i * K + e]], 1e-30));
    }
  }
  CHECK(wrong == 0, "%lld kept references are not the brute force's largest", (long long)wrong);
  /* pass 3's P is exp of double sums (1e-12 here), stored as float */
  CHECK(worst < 1e-6, "kept probability off by %.3g relative", worst);
  /* Any batch and thread count: the same bits. */
  rc = e_step(&q, 45, 1, beta, 0, K, V, Wt, refs2, probs2);
  CHECK(rc == SPF_OK && !memcmp(refs, refs2, sizeof(int32_t) * 60 * K) && !memcmp(probs, probs2, sizeof(float) * 60 * K),
        "batch 45 on 1 thread differs from batch 7 on 2");
  free(P);
  /* With a dropped mass, a reference below drop / R is not kept: the kept are those above
   * it (up to K), then -1 and 0. */
  const int K2 = 40;
  const double drop = 1e-2;
  int32_t *r3 = malloc(sizeof(int32_t) * 60 * K2);
  float *p3 = malloc(sizeof(float) * 60 * K2);
  rc = e_step(&q, 7, 2, 0.05, drop, K2, V, Wt, r3, p3);
  CHECK(rc == SPF_OK, "e_step with a dropped mass: %s", spf_strerror(rc));
  P = brute_P(&q, 0.05);
  int64_t bad = 0, partial = 0;
  for (int64_t i = 0; !rc && i < 60; i++) {
    int above = 0, kept = 0, ended = 0;
    for (int64_t j = 0; j < 45; j++) above += P[i * 45 + j] >= drop / 45 * (1 + 1e-9);
    for (int e = 0; e < K2; e++) {
      if (r3[i * K2 + e] < 0) {
        ended = 1;
        bad += p3[i * K2 + e] != 0;
        continue;
      }
      bad += ended; /* a reference after a -1 */
      kept++;
    }
    bad += kept != (above < K2 ? above : K2);
    partial += kept < 45;
  }
  CHECK(bad == 0, "%lld images keep other references than those above the dropped mass", (long long)bad);
  CHECK(partial > 0, "the case drops nothing: it tests nothing");
  free(r3); free(p3); free(P);
  free(V); free(Wt); free(refs); free(refs2); free(probs); free(probs2);
  free_problem(&q);
}

/* Kept references covering every reference (K = R, nothing dropped): the posterior views
 * are the E-step's own views, the same sums in another order. */
static void posterior_views_equal_the_e_step_views(void)
{
  const int64_t N = 70, R = 33, np = 40;
  problem q = make_problem(N, R, np, 5);
  double *V = malloc(sizeof(double) * R * np), *Wt = malloc(sizeof(double) * R);
  int32_t *refs = malloc(sizeof(int32_t) * N * R);
  float *probs = malloc(sizeof(float) * N * R);
  int rc = e_step(&q, 8, 2, 0.2, 0, (int)R, V, Wt, refs, probs);
  CHECK(rc == SPF_OK, "e_step: %s", spf_strerror(rc));
  spf_posterior_views *pv = NULL;
  if (!rc) rc = spf_posterior_views_make(R, np, &pv);
  /* In two calls: the sums continue. */
  if (!rc) rc = spf_posterior_views_add(pv, 30, q.counts, q.phi, (int)R, refs, probs);
  if (!rc) rc = spf_posterior_views_add(pv, N - 30, q.counts + 30 * np, q.phi + 30, (int)R, refs + 30 * R, probs + 30 * R);
  CHECK(rc == SPF_OK, "posterior views: %s", spf_strerror(rc));
  /* Bound: each term's probability is rounded to float (2^-24 relative), so each sum is
   * within 2^-23 of its own magnitude (the terms are non-negative). */
  double worst = 0;
  for (int64_t j = 0; !rc && j < R; j++) {
    const double *v = spf_posterior_views_view(pv, j);
    for (int64_t p = 0; p < np; p++) worst = fmax(worst, fabs(v[p] - V[j * np + p]) / fmax(V[j * np + p], 1e-300));
    worst = fmax(worst, fabs(spf_posterior_views_weight(pv, j) - Wt[j]) / Wt[j]);
  }
  CHECK(worst <= 0x1p-23, "posterior views off the E-step's by %.3g relative", worst);
  int64_t n_added = 0;
  double phisum = 0, photons = 0, kmax = 0, ph_ref = 0, phi_ref = 0, k_ref = 0;
  spf_posterior_views_totals(pv, &n_added, &phisum, &photons, &kmax);
  for (int64_t i = 0; i < N; i++) {
    double c = 0;
    for (int64_t p = 0; p < np; p++) c += q.counts[i * np + p];
    ph_ref += c;
    phi_ref += q.phi[i];
    k_ref = fmax(k_ref, c / q.phi[i]);
  }
  CHECK(n_added == N && photons == ph_ref && fabs(phisum - phi_ref) < 1e-12 * phi_ref && kmax == k_ref,
        "totals %lld %g %g %g, want %lld %g %g %g", (long long)n_added, phisum, photons, kmax, (long long)N, phi_ref,
        ph_ref, k_ref);
  CHECK(spf_posterior_views_view(pv, R) == NULL && spf_posterior_views_view(pv, -1) == NULL, "out of range");
  spf_posterior_views_free(pv);
  free(V); free(Wt); free(refs); free(probs);
  free_problem(&q);
}

/* Brute force on a truncated list: each image's kept pairs summed directly. */
static void posterior_views_match_direct_sums(void)
{
  const int64_t N = 25, R = 9, np = 12;
  const int K = 3;
  problem q = make_problem(N, R, np, 9);
  int32_t refs[25 * 3];
  float probs[25 * 3];
  spf_rng r;
  spf_rng_seed(&r, 3, 0);
  for (int64_t i = 0; i < N * K; i++) {
    refs[i] = (int32_t)(spf_rng_next(&r) % (uint64_t)R);
    probs[i] = (float)spf_rng_uniform(&r);
  }
  refs[4 * K + 1] = -1; /* image 4 keeps one reference */
  refs[4 * K + 2] = 5;  /* ignored after the -1 */
  spf_posterior_views *pv = NULL;
  int rc = spf_posterior_views_make(R, np, &pv);
  if (!rc) rc = spf_posterior_views_add(pv, N, q.counts, q.phi, K, refs, probs);
  CHECK(rc == SPF_OK, "add: %s", spf_strerror(rc));
  double worst = 0;
  for (int64_t j = 0; !rc && j < R; j++) {
    double w = 0;
    for (int64_t i = 0; i < N; i++)
      for (int e = 0; e < K && refs[i * K + e] >= 0; e++)
        if (refs[i * K + e] == j) w += (double)probs[i * K + e] * q.phi[i];
    worst = fmax(worst, fabs(spf_posterior_views_weight(pv, j) - w) / fmax(w, 1e-300));
    for (int64_t p = 0; p < np; p++) {
      double v = 0;
      for (int64_t i = 0; i < N; i++)
        for (int e = 0; e < K && refs[i * K + e] >= 0; e++)
          if (refs[i * K + e] == j) v += (double)probs[i * K + e] * q.counts[i * np + p];
      worst = fmax(worst, fabs(spf_posterior_views_view(pv, j)[p] - v) / fmax(v, 1e-300));
    }
  }
  CHECK(worst < 1e-14, "off the direct sums by %.3g relative", worst);
  /* Bad input: nothing added for the bad image or after it. */
  int64_t before = 0, after = 0;
  spf_posterior_views_totals(pv, &before, NULL, NULL, NULL);
  int32_t bad_ref[3] = {0, (int32_t)R, -1};
  float ok_p[3] = {0.5f, 0.5f, 0};
  CHECK(spf_posterior_views_add(pv, 1, q.counts, q.phi, K, bad_ref, ok_p) == SPF_ERR_DATA, "reference past R");
  int32_t ok_ref[3] = {0, 1, -1};
  float bad_p[3] = {0.5f, 1.5f, 0};
  CHECK(spf_posterior_views_add(pv, 1, q.counts, q.phi, K, ok_ref, bad_p) == SPF_ERR_DATA, "probability > 1");
  float *neg = malloc(sizeof(float) * np);
  memcpy(neg, q.counts, sizeof(float) * np);
  neg[3] = -1;
  CHECK(spf_posterior_views_add(pv, 1, neg, q.phi, K, ok_ref, ok_p) == SPF_ERR_DATA, "negative count");
  neg[3] = 0.5f;
  CHECK(spf_posterior_views_add(pv, 1, neg, q.phi, K, ok_ref, ok_p) == SPF_ERR_DATA, "fractional count");
  spf_posterior_views_totals(pv, &after, NULL, NULL, NULL);
  CHECK(after == before, "a refused image was counted");
  CHECK(spf_posterior_views_add(pv, 1, q.counts, q.phi, 0, ok_ref, ok_p) == SPF_ERR_SIZE, "k = 0");
  spf_posterior_views *none = NULL;
  CHECK(spf_posterior_views_make(0, 5, &none) == SPF_ERR_SIZE && !none, "no references");
  CHECK(spf_posterior_views_make(INT64_MAX / 4, 5, &none) == SPF_ERR_SIZE && !none, "overflow");
  free(neg);
  spf_posterior_views_free(pv);
  free_problem(&q);
}

int main(void)
{
  RUN_TEST(top_references_match_brute_force);
  RUN_TEST(posterior_views_equal_the_e_step_views);
  RUN_TEST(posterior_views_match_direct_sums);
  return test_summary();
}
