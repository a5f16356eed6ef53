/* Scale-out: shares, collectives and a distributed reconstruction against the
 * single-process one. Run directly it checks one process; tests/cli_mpi.sh runs it
 * under mpirun with 2, 3 and 4 ranks ("--ranks N": skip, 77, when MPI is not built). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/spinifel.h"
#include "phantom_data.h"
#include "small_problem.h"
#include "testing.h"
#ifdef SPINIFEL_HAVE_MPI
#include <mpi.h>
#endif

static spf_comm C;

static void shares_cover_every_item_once(void)
{
  for (int size = 1; size <= 5; size++)
    for (int64_t n = 0; n <= 11; n++) {
      int64_t next = 0, bad = 0, lo = INT64_MAX, hi = 0;
      for (int r = 0; r < size; r++) {
        int64_t first, count;
        spf_share(n, r, size, &first, &count);
        bad += first != next;
        next = first + count;
        lo = count < lo ? count : lo;
        hi = count > hi ? count : hi;
      }
      CHECK(!bad && next == n && hi - lo <= 1, "n %lld over %d ranks", (long long)n, size);
    }
}

static void collectives_add_and_agree(void)
{
  double v[3] = {1, 2, C.rank};
  int64_t k = C.rank + 1;
  CHECK(spf_comm_sum_double(&C, v, 3) == SPF_OK && spf_comm_sum_int64(&C, &k, 1) == SPF_OK, "sums");
  CHECK(v[0] == C.size && v[1] == 2 * C.size && v[2] == C.size * (C.size - 1) / 2.0, "double sums %g %g %g", v[0],
        v[1], v[2]);
  CHECK(k == (int64_t)C.size * (C.size + 1) / 2, "int64 sum %lld", (long long)k);
  /* An error on the last rank reaches every rank. */
  const int rc = spf_comm_agree(&C, C.rank == C.size - 1 ? SPF_ERR_DATA : SPF_OK);
  CHECK(rc == SPF_ERR_DATA, "agreed code %d", rc);
}

/* The L-curve spread over ranks (each rank holding the same sums) picks the same corner
 * and returns the same solution, bit for bit, as one process solving every value. */
static void lcurve_over_ranks_equals_one_process(void)
{
  const int64_t m = 7, n3 = m * m * m, np = 3000;
  double *x = malloc(sizeof(double) * 3 * np), *b = malloc(sizeof(double) * np);
  spf_rng r;
  spf_rng_seed(&r, 11, 0);
  for (int64_t j = 0; j < 3 * np; j++) x[j] = M_PI * (2 * spf_rng_uniform(&r) - 1);
  for (int64_t j = 0; j < np; j++) b[j] = exp(-(x[j] * x[j] + x[np + j] * x[np + j])) + 0.1 * spf_rng_normal(&r);
  spf_merger *mg;
  CHECK(spf_merger_make(m, NULL, &mg) == SPF_OK, "merger");
  spf_merger_add_points(mg, np, x, x + np, x + 2 * np, b, NULL);
  double rhos[6] = {1e-3, 1e-2, 1e-1, 1, 10, 100}, *u1 = malloc(sizeof(double) * n3), *u2 = malloc(sizeof(double) * n3);
  int c1 = -1, c2 = -2;
  spf_merge_stats s1[6], s2[6];
  CHECK(spf_merger_solve_lcurve(mg, 6, rhos, 1.0, NULL, u1, &c1, s1) == SPF_OK, "one process");
  CHECK(spf_merger_solve_lcurve_shared(mg, &C, 6, rhos, 1.0, NULL, u2, &c2, s2) == SPF_OK, "over ranks");
  CHECK(c1 == c2 && !memcmp(u1, u2, sizeof(double) * n3), "%d ranks: corner %d vs %d, solutions %s", C.size, c2, c1,
        memcmp(u1, u2, sizeof(double) * n3) ? "differ" : "equal");
  int same = 1;
  for (int i = 0; i < 6; i++)
    same &= s1[i].iterations == s2[i].iterations && s1[i].data_misfit == s2[i].data_misfit &&
            s1[i].solution_norm == s2[i].solution_norm;
  CHECK(same, "every value's stats shared");
  spf_merger_free(mg);
  free(x); free(b); free(u1); free(u2);
}

/* Every rank reconstructs its share; rank 0 compares with the whole problem in one
 * process (the same threads per process). Every sum over images is exact (fixed point)
 * and the matching's distances do not depend on how the work is cut, so the run is the
 * same bits on any number of ranks: generation 0's merge, one generation's matching from
 * the same model (soft and hard, model images kept or sliced again), and a whole
 * 5-generation run. */
static void distributed_run_equals_single_process(void)
{
  spf_detector *det;
  float *img;
  double *q;
  CHECK(small_problem(90, &det, &img, &q) == SPF_OK, "test problem");
  const int64_t M = SMALL_PROBLEM_M, n3 = M * M * M, n = 90, np = det->n_pixels;
  spf_reconstruct_options o;
  spf_reconstruct_default_options(&o);
  o.M = M;
  o.n_references = 400;
  o.refs_start = 100;
  o.refs_generations = 3;
  o.soft_k = 8;
  o.soft_generations = 1;
  o.max_generations = 1;
  o.stop_fraction = 0;
  o.phase.n_cycles = 2;
  o.nthreads = 1;
  int64_t first, count;
  spf_share(n, C.rank, C.size, &first, &count);
  spf_run_state whole, part;
  CHECK(spf_run_state_make(M, n, &whole) == SPF_OK && spf_run_state_make(M, count, &part) == SPF_OK, "states");
  if (C.rank == 0) CHECK(spf_reconstruct(n, np, img, det->s, NULL, &o, NULL, NULL, NULL, &whole) == SPF_OK, "one process");
  o.comm = &C;
  o.first_image = first;
  CHECK(spf_reconstruct(count, np, img + first * np, det->s, NULL, &o, NULL, NULL, NULL, &part) == SPF_OK,
        "distributed");
  int64_t counts[64];
  for (int k = 0; k < C.size && k < 64; k++) {
    int64_t f;
    spf_share(n, k, C.size, &f, &counts[k]);
  }
  int64_t *best_all = malloc(sizeof(int64_t) * n);
  CHECK(spf_comm_gather(&C, part.best, count, best_all, counts, sizeof(int64_t), 0) == SPF_OK, "gather");
  if (C.rank == 0) {
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += best_all[i] != whole.best[i];
    double d = 0, nrm = 0;
    for (int64_t i = 0; i < n3; i++) d += pow(part.u[i] - whole.u[i], 2), nrm += whole.u[i] * whole.u[i];
    CHECK(differ == 0, "%d ranks: %lld of %lld orientations differ from one process", C.size, (long long)differ,
          (long long)n);
    CHECK(d == 0, "%d ranks: merged autocorrelation differs by %.2e (relative)", C.size, sqrt(d / nrm));
    printf("  %d ranks: %lld orientations differ, merged autocorrelation relative difference %.2e\n", C.size, (long long)differ, sqrt(d / nrm));
  }
  /* Matching from the same model: every rank resumes from one process's generation 0
   * (the volumes broadcast, its share of the per-image state), so generation 1 slices the
   * same model, and the references split over the ranks with the image blocks going
   * round the ring must give every image the same best reference, best distance and gap,
   * bit for bit, soft (8 nearest) and hard. */
  CHECK(spf_comm_bcast(&C, whole.u_model, n3 * (int64_t)sizeof(double), 0) == SPF_OK &&
            spf_comm_bcast(&C, whole.u, n3 * (int64_t)sizeof(double), 0) == SPF_OK &&
            spf_comm_bcast(&C, whole.rho, n3 * (int64_t)sizeof(double), 0) == SPF_OK &&
            spf_comm_bcast(&C, whole.support, n3, 0) == SPF_OK &&
            spf_comm_bcast(&C, whole.orientations, 4 * n * (int64_t)sizeof(double), 0) == SPF_OK &&
            spf_comm_bcast(&C, whole.best, n * (int64_t)sizeof(int64_t), 0) == SPF_OK,
        "broadcast generation 0");
  whole.generation = 1;
  whole.have_model = 1;
  whole.last_fraction_changed = 1;
  for (int64_t i = 0; i < n; i++) whole.best_dist[i] = whole.gap[i] = NAN;
  for (int soft = 1; soft >= 0; soft--) {
    o.soft_generations = soft;
    o.max_generations = 2;
    o.match_store_mib = soft ? 4096 : 0; /* hard: slice again for every visiting block */
    spf_run_state one, mine, res;
    CHECK(spf_run_state_make(M, n, &one) == SPF_OK && spf_run_state_make(M, count, &mine) == SPF_OK &&
              spf_run_state_make(M, count, &res) == SPF_OK,
          "states");
    res.generation = 1;
    res.have_model = 1;
    res.last_fraction_changed = 1;
    memcpy(res.orientations, whole.orientations + 4 * first, sizeof(double) * 4 * count);
    memcpy(res.best, whole.best + first, sizeof(int64_t) * count);
    for (int64_t i = 0; i < count; i++) res.best_dist[i] = res.gap[i] = NAN;
    memcpy(res.rho, whole.rho, sizeof(double) * n3);
    memcpy(res.u, whole.u, sizeof(double) * n3);
    memcpy(res.u_model, whole.u_model, sizeof(double) * n3);
    memcpy(res.support, whole.support, n3);
    o.comm = &C;
    o.first_image = first;
    CHECK(spf_reconstruct(count, np, img + first * np, det->s, NULL, &o, &res, NULL, NULL, &mine) == SPF_OK,
          "distributed generation 1");
    float *bd_all = malloc(sizeof(float) * n), *gap_all = malloc(sizeof(float) * n);
    CHECK(spf_comm_gather(&C, mine.best, count, best_all, counts, sizeof(int64_t), 0) == SPF_OK &&
              spf_comm_gather(&C, mine.best_dist, count, bd_all, counts, sizeof(float), 0) == SPF_OK &&
              spf_comm_gather(&C, mine.gap, count, gap_all, counts, sizeof(float), 0) == SPF_OK,
          "gather");
    if (C.rank == 0) {
      o.comm = NULL;
      o.first_image = 0;
      CHECK(spf_reconstruct(n, np, img, det->s, NULL, &o, &whole, NULL, NULL, &one) == SPF_OK, "one process, generation 1");
      int64_t differ = 0;
      for (int64_t i = 0; i < n; i++)
        differ += best_all[i] != one.best[i] || bd_all[i] != one.best_dist[i] || gap_all[i] != one.gap[i] ||
                  !(one.gap[i] >= 0);
      CHECK(differ == 0, "%d ranks, %s matching: %lld of %lld images differ from one process", C.size,
            soft ? "soft" : "hard", (long long)differ, (long long)n);
    }
    free(bd_all);
    free(gap_all);
    spf_run_state_free(&one);
    spf_run_state_free(&mine);
    spf_run_state_free(&res);
  }
  /* The whole run, soft and hard generations and a growing reference grid: the same
   * bits as one process, every generation. */
  o.soft_generations = 2;
  o.max_generations = 5;
  o.match_store_mib = 4096;
  o.comm = &C;
  o.first_image = first;
  CHECK(spf_reconstruct(count, np, img + first * np, det->s, NULL, &o, NULL, NULL, NULL, &part) == SPF_OK &&
            part.generation == 5,
        "distributed, 5 generations");
  CHECK(spf_comm_gather(&C, part.best, count, best_all, counts, sizeof(int64_t), 0) == SPF_OK, "gather");
  if (C.rank == 0) {
    spf_run_state one;
    CHECK(spf_run_state_make(M, n, &one) == SPF_OK, "state");
    o.comm = NULL;
    o.first_image = 0;
    CHECK(spf_reconstruct(n, np, img, det->s, NULL, &o, NULL, NULL, NULL, &one) == SPF_OK, "one process, 5 generations");
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += best_all[i] != one.best[i];
    const int same_u = !memcmp(part.u, one.u, sizeof(double) * n3), same_rho = !memcmp(part.rho, one.rho, sizeof(double) * n3);
    CHECK(differ == 0 && same_u && same_rho && !memcmp(part.support, one.support, n3),
          "%d ranks, 5 generations: %lld orientations differ; autocorrelation %s, density %s", C.size,
          (long long)differ, same_u ? "same" : "differs", same_rho ? "same" : "differs");
    printf("  %d ranks, 5 generations: %lld orientations differ; autocorrelation and density %s\n", C.size,
           (long long)differ, same_u && same_rho ? "the same bits" : "differ");
    spf_run_state_free(&one);
  }
  spf_run_state_free(&whole);
  spf_run_state_free(&part);
  free(best_all); free(q); free(img);
  spf_detector_free(det);
}

/* A run's per-generation figures, as the log gets them. */
typedef struct {
  int n;
  double f[8][6];
} run_figures;

static int record_figures(void *ctx, const spf_generation_log *g, const spf_run_state *st)
{
  (void)st;
  run_figures *r = ctx;
  if (r->n < 8) {
    const double f[6] = {g->fraction_changed, g->beta, g->mean_entropy, g->median_gap, g->median_spread,
                         g->negative_fraction};
    memcpy(r->f[r->n++], f, sizeof f);
  }
  return 0;
}

/* Gather a per-image array of the ranks' shares to rank 0 (n images in all). */
static int gather_shares(const void *mine, int64_t n, int64_t item_bytes, void *out)
{
  int64_t counts[64], first, count;
  for (int k = 0; k < C.size && k < 64; k++) spf_share(n, k, C.size, &first, &counts[k]);
  spf_share(n, C.rank, C.size, &first, &count);
  return spf_comm_gather(&C, mine, count, out, counts, item_bytes, 0);
}

/* The Poisson model over ranks: photon counts of the phantom (16 x 16 pixels, about 50
 * photons an image), 4 generations from random orientations, each rank holding its share
 * of the images. The views' sums pass along the ranks in the images' order and the
 * figures over images are gathered, so the density, intensity, orientations, per-image
 * figures and the log's are the same bits as one process's: with the model images kept,
 * and sliced again in smaller batches than the ranks (a pipeline that is never full). */
static void distributed_poisson_equals_single_process(void)
{
  /* 241 images: rank 0's share is odd on 2, 3 and 4 ranks (a sum's split mid-vector). */
  const int64_t n = 241, M = 15, n3 = M * M * M;
  phantom_data pd;
  CHECK(phantom_data_make(16, 0.05, 0.003e10, n, 1.25e25, 1, 3, &pd) == SPF_OK, "simulate");
  const int64_t np_all = pd.det->n_pixels;
  int64_t np = 0;
  for (int64_t p = 0; p < np_all; p++) np += pd.det->mask[p] != 0;
  double *sv = malloc(sizeof(double) * 3 * np), photons = 0;
  float *img = malloc(sizeof(float) * n * np);
  for (int64_t p = 0, v = 0; p < np_all; p++) {
    if (!pd.det->mask[p]) continue;
    memcpy(sv + 3 * v, pd.det->s + 3 * p, sizeof(double) * 3);
    for (int64_t i = 0; i < n; i++) photons += img[i * np + v] = pd.images[i * np_all + p];
    v++;
  }
  CHECK(photons / n > 20 && photons / n < 100, "%.1f photons per image", photons / n);
  spf_reconstruct_options o;
  spf_reconstruct_default_options(&o);
  o.model = SPF_MODEL_POISSON;
  o.M = M;
  o.n_references = 200;
  o.refs_start = 0;
  o.stop_fraction = 0;
  o.n_rho = 3;
  o.phase.n_cycles = 2;
  o.nthreads = 1;
  int64_t first, count;
  spf_share(n, C.rank, C.size, &first, &count);
  double *q_all = malloc(sizeof(double) * 4 * n), *fl_all = malloc(sizeof(double) * n);
  float *f_all = malloc(sizeof(float) * 3 * n);
  int64_t *best_all = malloc(sizeof(int64_t) * n);
  for (int variant = 0; variant < 2; variant++) {
    /* Kept models, batches of 64 references (4 batches); sliced again, batches of 30 (7). */
    o.max_generations = variant ? 3 : 4;
    o.ref_batch = variant ? 30 : 64;
    o.match_store_mib = variant ? 0 : 4096;
    spf_run_state part;
    run_figures rf = {0};
    CHECK(spf_run_state_make(M, count, &part) == SPF_OK, "state");
    o.comm = &C;
    o.first_image = first;
    CHECK(spf_reconstruct(count, np, img + first * np, sv, NULL, &o, NULL, record_figures, &rf, &part) == SPF_OK &&
              part.generation == o.max_generations,
          "distributed Poisson run");
    CHECK(gather_shares(part.best, n, sizeof(int64_t), best_all) == SPF_OK &&
              gather_shares(part.orientations, n, 4 * sizeof(double), q_all) == SPF_OK &&
              gather_shares(part.fluence, n, sizeof(double), fl_all) == SPF_OK &&
              gather_shares(part.entropy, n, sizeof(float), f_all) == SPF_OK &&
              gather_shares(part.gap, n, sizeof(float), f_all + n) == SPF_OK &&
              gather_shares(part.best_dist, n, sizeof(float), f_all + 2 * n) == SPF_OK,
          "gather");
    if (C.rank == 0) {
      spf_run_state one;
      run_figures r1 = {0};
      CHECK(spf_run_state_make(M, n, &one) == SPF_OK, "state");
      o.comm = NULL;
      o.first_image = 0;
      CHECK(spf_reconstruct(n, np, img, sv, NULL, &o, NULL, record_figures, &r1, &one) == SPF_OK, "one process");
      const int same_u = !memcmp(part.u, one.u, sizeof(double) * n3), same_rho = !memcmp(part.rho, one.rho, sizeof(double) * n3);
      const int same_img = !memcmp(best_all, one.best, sizeof(int64_t) * n) &&
                           !memcmp(q_all, one.orientations, sizeof(double) * 4 * n) &&
                           !memcmp(fl_all, one.fluence, sizeof(double) * n) &&
                           !memcmp(f_all, one.entropy, sizeof(float) * n) && !memcmp(f_all + n, one.gap, sizeof(float) * n) &&
                           !memcmp(f_all + 2 * n, one.best_dist, sizeof(float) * n);
      const int same_log = rf.n == r1.n && !memcmp(rf.f, r1.f, sizeof rf.f);
      int64_t differ = 0;
      for (int64_t i = 0; i < n; i++) differ += best_all[i] != one.best[i];
      CHECK(same_u && same_rho && !memcmp(part.support, one.support, n3) && same_img && same_log,
            "%d ranks, Poisson (%s): %lld orientations differ; intensity %s, density %s, per-image figures %s, log %s",
            C.size, variant ? "sliced again" : "kept models", (long long)differ, same_u ? "same" : "differs",
            same_rho ? "same" : "differs", same_img ? "same" : "differ", same_log ? "same" : "differs");
      CHECK(r1.n >= 2 && isfinite(r1.f[1][1]) && isfinite(r1.f[1][2]), "the Poisson figures of generation 1");
      printf("  %d ranks, Poisson, %d generations (%s): %lld orientations differ; intensity, density, per-image "
             "figures and log %s (generation 1: beta %.3f, mean entropy %.3f)\n",
             C.size, one.generation, variant ? "sliced again" : "kept models", (long long)differ,
             same_u && same_rho && same_img && same_log ? "the same bits" : "differ", r1.f[1][1], r1.f[1][2]);
      spf_run_state_free(&one);
    }
    spf_run_state_free(&part);
  }
  free(q_all); free(fl_all); free(f_all); free(best_all); free(sv); free(img);
  phantom_data_free(&pd);
}

int main(int argc, char **argv)
{
  int want = argc == 3 && !strcmp(argv[1], "--ranks") ? atoi(argv[2]) : 1;
#ifdef SPINIFEL_HAVE_MPI
  MPI_Init(&argc, &argv);
#else
  if (want > 1) {
    printf("skip: built without MPI\n");
    return 77;
  }
#endif
  spf_comm_world(&C);
  if (C.size != want) {
    fprintf(stderr, "expected %d ranks, have %d\n", want, C.size);
#ifdef SPINIFEL_HAVE_MPI
    MPI_Finalize();
#endif
    return 1;
  }
  RUN_TEST(shares_cover_every_item_once);
  RUN_TEST(collectives_add_and_agree);
  RUN_TEST(lcurve_over_ranks_equals_one_process);
  RUN_TEST(distributed_run_equals_single_process);
  RUN_TEST(distributed_poisson_equals_single_process);
  int rc = test_summary();
  /* Every rank's verdict counts. */
  rc = spf_comm_agree(&C, rc);
#ifdef SPINIFEL_HAVE_MPI
  MPI_Finalize();
#endif
  return rc;
}
