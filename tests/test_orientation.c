/* The orientation step (orientation.h): both models find the references their images
 * were made at, generation 0 merges each image at its own orientation, start and resume
 * set the per-image state. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "testing.h"

#define M_GRID 9
#define N_REFS 300

/* The autocorrelation of a random compact density on the M_GRID grid, a 12 x 12
 * detector at 3 cm, and n images sliced from it at references ref[i] of the N_REFS grid
 * (random, seeded) or, when q_true is given, at random orientations written there. */
typedef struct {
  spf_detector *det;
  double *u0;
  int64_t n, *ref;
  float *img;
} problem;

static int problem_make(int64_t n, double *q_true, problem *pb)
{
  const int64_t M = M_GRID, n3 = M * M * M;
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = g.ny = 12;
  g.distance_m = 0.03;
  int rc = spf_detector_make(&g, &pb->det);
  if (rc) return rc;
  const int64_t np = pb->det->n_pixels;
  double *rho0 = calloc(n3, sizeof(double)), *rot = malloc(sizeof(double) * 9 * n), q[4];
  pb->n = n;
  pb->u0 = malloc(sizeof(double) * n3);
  pb->ref = malloc(sizeof(int64_t) * n);
  pb->img = malloc(sizeof(float) * n * np);
  rc = rho0 && rot && pb->u0 && pb->ref && pb->img ? SPF_OK : SPF_ERR_ALLOC;
  spf_rng r;
  spf_rng_seed(&r, 11, 0);
  for (int64_t z = 2; !rc && z < 7; z++)
    for (int64_t y = 3; y < 6; y++)
      for (int64_t x = 2; x < 6; x++) rho0[(z * M + y) * M + x] = spf_rng_uniform(&r);
  if (!rc) rc = spf_autocorrelation(M, rho0, pb->u0, 1);
  for (int64_t i = 0; !rc && i < n; i++) {
    pb->ref[i] = (int64_t)(spf_rng_uniform(&r) * N_REFS) % N_REFS;
    if (q_true) spf_random_rotation(&r, q_true + 4 * i);
    else spf_orientation_grid(N_REFS, pb->ref[i], 1, q);
    spf_quat_to_matrix(q_true ? q_true + 4 * i : q, rot + 9 * i);
  }
  spf_slicer *sl = NULL;
  if (!rc) rc = spf_slicer_make(M, np, pb->det->s, pb->det->s_max, 1.0, 1e-4, n, 1, &sl);
  if (!rc) rc = spf_slicer_set_volume(sl, pb->u0);
  if (!rc) rc = spf_slicer_slice(sl, n, rot, pb->img);
  spf_slicer_free(sl);
  free(rho0);
  free(rot);
  return rc;
}

static void problem_free(problem *pb)
{
  spf_detector_free(pb->det);
  free(pb->u0);
  free(pb->ref);
  free(pb->img);
}

static void options(spf_reconstruct_options *o, int model)
{
  spf_reconstruct_default_options(o);
  o->M = M_GRID;
  o->n_references = N_REFS;
  o->ref_batch = 64;
  o->nthreads = 2;
  o->soft_k = 1;
  o->model = model;
  spf_reconstruct_resolve(o, model);
}

static int64_t same_refs(const problem *pb, const int64_t *best)
{
  int64_t same = 0;
  for (int64_t i = 0; i < pb->n; i++) same += best[i] == pb->ref[i];
  return same;
}

static void euclidean_step_finds_the_references_its_images_were_sliced_at(void)
{
  problem pb;
  spf_run_state st;
  spf_merger *mg = NULL;
  spf_orienter *orienter = NULL;
  CHECK(problem_make(40, NULL, &pb) == SPF_OK && spf_run_state_make(M_GRID, 40, &st) == SPF_OK, "problem");
  spf_reconstruct_options o;
  options(&o, SPF_MODEL_EUCLIDEAN);
  CHECK(spf_merger_make(M_GRID, &o.merge, &mg) == SPF_OK, "merger");
  const int64_t np = pb.det->n_pixels;
  CHECK(spf_orienter_make(pb.n, np, pb.img, pb.det->s, pb.det->s_max, &o, &orienter) == SPF_OK, "make");
  CHECK(spf_orienter_total_images(orienter) == pb.n, "images %lld", (long long)spf_orienter_total_images(orienter));
  CHECK(spf_orienter_start(orienter, NULL, NULL, &st) == SPF_OK, "start");
  spf_generation_log log = {0};
  CHECK(spf_orienter_execute(orienter, 1, N_REFS, pb.u0, mg, &st, &log) == SPF_OK, "execute");
  CHECK(same_refs(&pb, st.best) == pb.n, "%lld of %lld images at their references", (long long)same_refs(&pb, st.best),
        (long long)pb.n);
  double q[4], dq = 0, dmax = 0;
  for (int64_t i = 0; i < pb.n; i++) {
    spf_orientation_grid(N_REFS, pb.ref[i], 1, q);
    for (int k = 0; k < 4; k++) dq = fmax(dq, fabs(q[k] - st.orientations[4 * i + k]));
    dmax = fmax(dmax, st.best_dist[i]);
  }
  CHECK(dq == 0, "orientations are the references' (max difference %.3g)", dq);
  CHECK(log.n_references == N_REFS && log.fraction_changed == 1, "log: %lld references, changed %.3f",
        (long long)log.n_references, log.fraction_changed);
  /* The same model again: nothing changes. */
  spf_generation_log again = {0};
  CHECK(spf_orienter_execute(orienter, 2, N_REFS, pb.u0, mg, &st, &again) == SPF_OK, "execute again");
  CHECK(again.fraction_changed == 0, "changed %.3f on the same model", again.fraction_changed);
  int gaps = 1;
  for (int64_t i = 0; i < pb.n; i++) gaps &= st.gap[i] > 1;
  CHECK(gaps, "every image sliced at its reference is confident: its nearest alternative at least twice as far "
        "(largest best distance %.3g)", dmax);
  spf_orienter_free(orienter);
  spf_merger_free(mg);
  spf_run_state_free(&st);
  problem_free(&pb);
}

/* The confidence against a brute-force search: every reference's distance to each image
 * (plain metric, per-image scale, in double from the same model), the best, and the
 * nearest reference farther than 3 ball radii from the best and its Friedel twin. */
static void euclidean_confidence_is_the_gap_to_the_nearest_distant_alternative(void)
{
  problem pb;
  spf_run_state st;
  spf_merger *mg = NULL;
  spf_orienter *orienter = NULL;
  const int64_t n = 12;
  double *q_true = malloc(sizeof(double) * 4 * n);
  CHECK(q_true && problem_make(n, q_true, &pb) == SPF_OK && spf_run_state_make(M_GRID, n, &st) == SPF_OK, "problem");
  const int64_t np = pb.det->n_pixels;
  spf_reconstruct_options o;
  options(&o, SPF_MODEL_EUCLIDEAN);
  o.pixel_weighting = 0;
  CHECK(spf_merger_make(M_GRID, &o.merge, &mg) == SPF_OK, "merger");
  CHECK(spf_orienter_make(n, np, pb.img, pb.det->s, pb.det->s_max, &o, &orienter) == SPF_OK, "make");
  CHECK(spf_orienter_start(orienter, NULL, NULL, &st) == SPF_OK, "start");
  spf_generation_log log = {0};
  CHECK(spf_orienter_execute(orienter, 1, N_REFS, pb.u0, mg, &st, &log) == SPF_OK, "execute");
  /* Every reference's model image, as the orienter slices them. */
  double *rot = malloc(sizeof(double) * 9 * N_REFS), *d = malloc(sizeof(double) * N_REFS), q[4];
  float *ref_img = malloc(sizeof(float) * N_REFS * np);
  spf_slicer *sl = NULL;
  CHECK(rot && d && ref_img, "memory");
  for (int64_t j = 0; j < N_REFS; j++) {
    spf_orientation_grid(N_REFS, j, 1, q);
    spf_quat_to_matrix(q, rot + 9 * j);
  }
  CHECK(spf_slicer_make(M_GRID, np, pb.det->s, pb.det->s_max, o.oversampling, o.slice_tol, N_REFS, 1, &sl) == SPF_OK &&
            spf_slicer_set_volume(sl, pb.u0) == SPF_OK && spf_slicer_slice(sl, N_REFS, rot, ref_img) == SPF_OK,
        "slices");
  const double limit = 3 * spf_orientation_ball_radius(N_REFS);
  const double zflip[4] = {0, 0, 0, 1};
  double worst = 0;
  int64_t same_best = 0;
  for (int64_t i = 0; i < n; i++) {
    const float *x = pb.img + i * np;
    int64_t best = 0;
    for (int64_t j = 0; j < N_REFS; j++) {
      const float *m = ref_img + j * np;
      double xx = 0, xm = 0, mm = 0;
      for (int64_t p = 0; p < np; p++) xx += (double)x[p] * x[p], xm += (double)x[p] * m[p], mm += (double)m[p] * m[p];
      d[j] = xm > 0 && mm > 0 ? xx - xm * xm / mm : xx;
      if (d[j] < d[best]) best = j;
    }
    same_best += best == st.best[i];
    double qb[4], flip[4], alt = INFINITY;
    spf_orientation_grid(N_REFS, best, 1, qb);
    spf_quat_multiply(zflip, qb, flip);
    for (int64_t j = 0; j < N_REFS; j++) {
      spf_orientation_grid(N_REFS, j, 1, q);
      if (fmin(spf_quat_angle(q, qb), spf_quat_angle(q, flip)) > limit && d[j] < alt) alt = d[j];
    }
    const double gap = (alt - d[best]) / d[best];
    worst = fmax(worst, fabs(st.gap[i] - gap) / gap);
  }
  /* The slices agree to the slicer's tolerance (1e-4 relative): distances of images far
   * from every reference to a few 1e-4, their differences to a few 1e-3. */
  CHECK(same_best == n, "%lld of %lld images at the brute force's best", (long long)same_best, (long long)n);
  CHECK(worst < 1e-2, "gap against the brute force's: largest relative difference %.3g", worst);
  spf_slicer_free(sl);
  free(rot); free(d); free(ref_img); free(q_true);
  spf_orienter_free(orienter);
  spf_merger_free(mg);
  spf_run_state_free(&st);
  problem_free(&pb);
}

/* Distance (plain metric, per-image scale) of image x to the model's slice at q. */
static double slice_distance(spf_slicer *sl, int64_t np, const float *x, const double q[4], float *m)
{
  double r[9], xx = 0, xm = 0, mm = 0;
  spf_quat_to_matrix(q, r);
  if (spf_slicer_slice(sl, 1, r, m) != SPF_OK) return NAN;
  for (int64_t p = 0; p < np; p++) xx += (double)x[p] * x[p], xm += (double)x[p] * m[p], mm += (double)m[p] * m[p];
  return xm > 0 && mm > 0 ? xx - xm * xm / mm : xx;
}

/* Local refinement: from the grid's match, every image's distance falls or stays (and the
 * state's is the distance at the state's orientation), and images sliced at random
 * orientations end far nearer their truth than the grid's spacing allows. */
static void local_refinement_moves_matches_off_the_grid_towards_the_truth(void)
{
  const int64_t n = 24;
  problem pb;
  double *q_true = malloc(sizeof(double) * 4 * n), e_grid[24], e_ref[24];
  CHECK(q_true && problem_make(n, q_true, &pb) == SPF_OK, "problem");
  const int64_t np = pb.det->n_pixels;
  spf_run_state st[2];
  for (int v = 0; v < 2; v++) {
    spf_merger *mg = NULL;
    spf_orienter *orienter = NULL;
    spf_reconstruct_options o;
    options(&o, SPF_MODEL_EUCLIDEAN);
    o.pixel_weighting = 0;
    o.local_refine = v ? 3 : 0;
    CHECK(spf_run_state_make(M_GRID, n, &st[v]) == SPF_OK && spf_merger_make(M_GRID, &o.merge, &mg) == SPF_OK &&
              spf_orienter_make(n, np, pb.img, pb.det->s, pb.det->s_max, &o, &orienter) == SPF_OK &&
              spf_orienter_start(orienter, NULL, NULL, &st[v]) == SPF_OK,
          "make %d", v);
    spf_generation_log log = {0};
    CHECK(spf_orienter_execute(orienter, 1, N_REFS, pb.u0, mg, &st[v], &log) == SPF_OK, "execute %d", v);
    spf_orienter_free(orienter);
    spf_merger_free(mg);
  }
  spf_slicer *sl = NULL;
  float *m = malloc(sizeof(float) * np);
  spf_reconstruct_options o;
  options(&o, SPF_MODEL_EUCLIDEAN);
  CHECK(m && spf_slicer_make(M_GRID, np, pb.det->s, pb.det->s_max, o.oversampling, o.slice_tol, 1, 1, &sl) == SPF_OK &&
            spf_slicer_set_volume(sl, pb.u0) == SPF_OK,
        "slicer");
  const double zflip[4] = {0, 0, 0, 1};
  int64_t lower = 0;
  double worst_state = 0;
  for (int64_t i = 0; i < n; i++) {
    const float *x = pb.img + i * np;
    const double dg = slice_distance(sl, np, x, st[0].orientations + 4 * i, m);
    const double dr = slice_distance(sl, np, x, st[1].orientations + 4 * i, m);
    lower += dr <= dg * (1 + 1e-6);
    worst_state = fmax(worst_state, fabs(st[1].best_dist[i] - dr) / fmax(dr, 1e-30));
    CHECK(st[0].best[i] == st[1].best[i], "image %lld: the same grid match", (long long)i);
    for (int v = 0; v < 2; v++) {
      double flip[4];
      spf_quat_multiply(zflip, st[v].orientations + 4 * i, flip);
      const double a = fmin(spf_quat_angle(q_true + 4 * i, st[v].orientations + 4 * i),
                            spf_quat_angle(q_true + 4 * i, flip)) * 180 / M_PI;
      (v ? e_ref : e_grid)[i] = a;
    }
  }
  /* Over the images the grid matched near their truth (this small, coarse model leaves
   * others at near-symmetric mates, which a local search cannot leave): the median error
   * falls. The grid of 300 has ball radius 22.7 deg; measured 14.8 -> 9.4 deg (the 9^3
   * model and 12 x 12 images blur finer steps). */
  double g[24], r[24];
  int64_t k = 0;
  for (int64_t i = 0; i < n; i++)
    if (e_grid[i] < 35) g[k] = e_grid[i], r[k++] = e_ref[i];
  for (int64_t a = 0; a < k; a++)
    for (int64_t b = a + 1; b < k; b++) {
      if (g[b] < g[a]) { const double t = g[a]; g[a] = g[b]; g[b] = t; }
      if (r[b] < r[a]) { const double t = r[a]; r[a] = r[b]; r[b] = t; }
    }
  CHECK(k >= 8 && r[k / 2] < 0.75 * g[k / 2], "median error %.2f deg after refinement, %.2f on the grid (%lld images)",
        k ? r[k / 2] : NAN, k ? g[k / 2] : NAN, (long long)k);
  spf_slicer_free(sl);
  free(m);
  free(q_true);
  spf_run_state_free(&st[0]);
  spf_run_state_free(&st[1]);
  problem_free(&pb);
}

static void poisson_step_finds_the_references_of_photon_counts(void)
{
  problem pb;
  spf_run_state st;
  spf_merger *mg = NULL;
  spf_orienter *orienter = NULL;
  CHECK(problem_make(40, NULL, &pb) == SPF_OK && spf_run_state_make(M_GRID, 40, &st) == SPF_OK, "problem");
  const int64_t np = pb.det->n_pixels;
  /* About 3,000 photons per image. */
  double total = 0;
  for (int64_t k = 0; k < pb.n * np; k++) total += fabs(pb.img[k]);
  float *counts = malloc(sizeof(float) * pb.n * np);
  spf_rng r;
  spf_rng_seed(&r, 4, 0);
  for (int64_t k = 0; k < pb.n * np; k++) counts[k] = (float)spf_rng_poisson(&r, 3000.0 * pb.n * fabs(pb.img[k]) / total);
  /* The model in the counts' unit. */
  double *u = malloc(sizeof(double) * M_GRID * M_GRID * M_GRID);
  for (int64_t k = 0; k < M_GRID * M_GRID * M_GRID; k++) u[k] = pb.u0[k] * 3000.0 * pb.n / total;
  spf_reconstruct_options o;
  options(&o, SPF_MODEL_POISSON);
  CHECK(spf_merger_make(M_GRID, &o.merge, &mg) == SPF_OK, "merger");
  CHECK(spf_orienter_make(pb.n, np, counts, pb.det->s, pb.det->s_max, &o, &orienter) == SPF_OK, "make");
  CHECK(spf_orienter_start(orienter, NULL, NULL, &st) == SPF_OK, "start");
  spf_generation_log log = {0};
  CHECK(spf_orienter_execute(orienter, 1, N_REFS, u, mg, &st, &log) == SPF_OK, "execute");
  const int64_t same = same_refs(&pb, st.best);
  CHECK(same >= pb.n * 9 / 10, "%lld of %lld images at their references", (long long)same, (long long)pb.n);
  double fsum = 0;
  int finite = 1;
  for (int64_t i = 0; i < pb.n; i++) {
    fsum += st.fluence[i];
    finite &= isfinite(st.entropy[i]) && st.gap[i] >= 0 && isfinite(st.best_dist[i]);
  }
  CHECK(fabs(fsum / pb.n - 1) < 1e-12, "mean fluence %.15f", fsum / pb.n);
  CHECK(finite, "finite entropies, gaps and best -log L");
  CHECK(log.beta > 0 && log.beta <= 0.5 && isfinite(log.mean_entropy) && isfinite(log.median_gap),
        "log: beta %.3g, entropy %.3g, gap %.3g", log.beta, log.mean_entropy, log.median_gap);
  spf_orienter_free(orienter);
  spf_merger_free(mg);
  spf_run_state_free(&st);
  problem_free(&pb);
  free(counts);
  free(u);
}

static void generation_zero_merges_each_image_at_its_own_orientation(void)
{
  const int64_t n = 300, M = M_GRID, n3 = M * M * M;
  problem pb;
  spf_run_state st;
  spf_merger *mg = NULL;
  spf_orienter *orienter = NULL;
  double *q = malloc(sizeof(double) * 4 * n), *u = malloc(sizeof(double) * n3);
  CHECK(problem_make(n, q, &pb) == SPF_OK && spf_run_state_make(M, n, &st) == SPF_OK, "problem");
  const int64_t np = pb.det->n_pixels;
  spf_reconstruct_options o;
  options(&o, SPF_MODEL_EUCLIDEAN);
  o.start_from_truth = 1;
  CHECK(spf_merger_make(M, &o.merge, &mg) == SPF_OK, "merger");
  CHECK(spf_orienter_make(n, np, pb.img, pb.det->s, pb.det->s_max, &o, &orienter) == SPF_OK, "make");
  CHECK(spf_orienter_start(orienter, NULL, q, &st) == SPF_OK, "start");
  spf_generation_log log = {0};
  CHECK(spf_orienter_execute(orienter, 0, N_REFS, NULL, mg, &st, &log) == SPF_OK, "execute");
  CHECK(!memcmp(st.orientations, q, sizeof(double) * 4 * n), "orientations kept");
  CHECK(log.n_references == 0 && log.fraction_changed == 1, "log: %lld references, changed %.3f",
        (long long)log.n_references, log.fraction_changed);
  /* The merged autocorrelation is the one the images were sliced from. */
  const double lambda0 = (double)n * np / n3;
  spf_merge_stats ms;
  CHECK(spf_merger_solve(mg, 1e-3 * lambda0, 0, NULL, u, &ms) == SPF_OK, "solve");
  double num = 0, den = 0;
  for (int64_t k = 0; k < n3; k++) num += (u[k] - pb.u0[k]) * (u[k] - pb.u0[k]), den += pb.u0[k] * pb.u0[k];
  CHECK(sqrt(num / den) < 0.05, "merged at the true orientations: relative error %.3g", sqrt(num / den));
  spf_orienter_free(orienter);
  spf_merger_free(mg);
  spf_run_state_free(&st);
  problem_free(&pb);
  free(q);
  free(u);
}

static void start_draws_seeded_orientations_and_resume_copies_the_state(void)
{
  const int64_t n = 20;
  problem pb;
  spf_run_state st, other;
  spf_orienter *orienter = NULL;
  CHECK(problem_make(n, NULL, &pb) == SPF_OK && spf_run_state_make(M_GRID, n, &st) == SPF_OK &&
            spf_run_state_make(M_GRID, n, &other) == SPF_OK,
        "problem");
  spf_reconstruct_options o;
  options(&o, SPF_MODEL_EUCLIDEAN);
  o.seed = 7;
  o.first_image = 100;
  CHECK(spf_orienter_make(n, pb.det->n_pixels, pb.img, pb.det->s, pb.det->s_max, &o, &orienter) == SPF_OK, "make");
  CHECK(spf_orienter_start(orienter, NULL, NULL, &st) == SPF_OK, "start");
  int seeded = 1, fresh = 1;
  for (int64_t i = 0; i < n; i++) {
    spf_rng r;
    double q[4];
    spf_rng_seed(&r, 7, (uint64_t)(100 + i));
    spf_random_rotation(&r, q);
    seeded &= !memcmp(q, st.orientations + 4 * i, sizeof q);
    fresh &= st.best[i] == -1 && isnan(st.best_dist[i]) && isnan(st.entropy[i]) && st.fluence[i] == 1;
  }
  CHECK(seeded, "one seeded stream per image's global index");
  CHECK(fresh, "no match, no entropy, fluence 1");
  for (int64_t i = 0; i < n; i++) {
    other.best[i] = i;
    other.best_dist[i] = (float)i;
    other.gap[i] = 1;
    other.fluence[i] = 2;
  }
  CHECK(spf_orienter_start(orienter, &other, NULL, &st) == SPF_OK, "resume");
  CHECK(!memcmp(st.best, other.best, sizeof(int64_t) * n) && !memcmp(st.best_dist, other.best_dist, sizeof(float) * n) &&
            !memcmp(st.fluence, other.fluence, sizeof(double) * n),
        "the resumed state's per-image arrays");
  /* Resumed in place (the state is its own resume): its distances are kept. */
  CHECK(spf_orienter_start(orienter, &st, NULL, &st) == SPF_OK, "resume in place");
  CHECK(!memcmp(st.best_dist, other.best_dist, sizeof(float) * n) && !memcmp(st.gap, other.gap, sizeof(float) * n),
        "resumed in place: distances and gaps kept (best_dist %g)", st.best_dist[3]);
  spf_orienter_free(orienter);
  /* The model must be resolved; a non-finite value is refused. */
  o.model = SPF_MODEL_AUTO;
  CHECK(spf_orienter_make(n, pb.det->n_pixels, pb.img, pb.det->s, pb.det->s_max, &o, &orienter) == SPF_ERR_OPTION,
        "auto model refused");
  o.model = SPF_MODEL_EUCLIDEAN;
  pb.img[3] = NAN;
  CHECK(spf_orienter_make(n, pb.det->n_pixels, pb.img, pb.det->s, pb.det->s_max, &o, &orienter) == SPF_ERR_DATA &&
            !orienter,
        "NaN refused");
  spf_run_state_free(&st);
  spf_run_state_free(&other);
  problem_free(&pb);
}

int main(void)
{
  RUN_TEST(euclidean_step_finds_the_references_its_images_were_sliced_at);
  RUN_TEST(euclidean_confidence_is_the_gap_to_the_nearest_distant_alternative);
  RUN_TEST(local_refinement_moves_matches_off_the_grid_towards_the_truth);
  RUN_TEST(poisson_step_finds_the_references_of_photon_counts);
  RUN_TEST(generation_zero_merges_each_image_at_its_own_orientation);
  RUN_TEST(start_draws_seeded_orientations_and_resume_copies_the_state);
  return test_summary();
}
