/* The error budget of one generation: what each step's accuracy setting costs in time
 * and what it changes, against a high-accuracy run of the same step and against the
 * noise the data themselves carry.
 *
 *   tolerance_bench [--images N] [--pixels P] [--distance D] [--M M] [--refs R]
 *                   [--photons K] [--threads T]
 *
 * Data: N images of the built-in phantom (P x P pixels of 300 um at D metres, 6 keV),
 * noise-free, or with --photons K Poisson counts of K photons per image on average.
 * Defaults: the demo's data (2,000 noise-free 32 x 32 images at 0.03 m, M = 31) and
 * R = 5,000 references.
 *
 *  1. Merging at the true orientations, as a generation merges (plain CG, 100
 *     iterations, the L-curve of 5 solves): u at each type-1 tolerance against u at
 *     1e-9; u at other CG caps against 400 iterations. The noise floor: the two
 *     half-sets' autocorrelations differ by ||u1 - u2|| / 2 ~ the full set's own
 *     statistical error (each half has twice its variance).
 *  2. Phasing (one seed) of each u: the density's change against the density phased
 *     from the reference u, beside the half-sets' densities' difference.
 *  3. Slicing the phased model at each type-2 tolerance against 1e-6, and matching
 *     every image to R references: the images whose best reference changes, and how
 *     far (in grid ball radii) the new one is from the old.
 * Every figure is a relative 2-norm difference. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "spinifel/spinifel.h"

#define SLOTS 256 /* images per add_points call */

static void fail(const char *what, int rc)
{
  fprintf(stderr, "tolerance_bench: %s: %s\n", what, spf_strerror(rc));
  exit(1);
}

static void *xmalloc(size_t bytes)
{
  void *p = malloc(bytes ? bytes : 1);
  if (!p) fail("allocation", SPF_ERR_ALLOC);
  return p;
}

static double rel_diff(int64_t n, const double *a, const double *ref)
{
  double d = 0, r = 0;
  for (int64_t i = 0; i < n; i++) d += (a[i] - ref[i]) * (a[i] - ref[i]), r += ref[i] * ref[i];
  return sqrt(d / r);
}

static double rel_diff_f(int64_t n, const float *a, const float *ref)
{
  double d = 0, r = 0;
  for (int64_t i = 0; i < n; i++) d += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]), r += (double)ref[i] * ref[i];
  return sqrt(d / r);
}

typedef struct {
  int64_t M, n, np;
  const float *images;
  const double *quats;
  spf_slicer *sl; /* for the merge coordinates */
  int nt;
} problem;

/* Merge images i = first, first + step, ... at their true orientations; u out. */
static double merge(const problem *pb, double tol, int cg_cap, int64_t first, int64_t step, double *u, double *t_add)
{
  spf_merge_options mo;
  spf_merge_default_options(&mo);
  mo.nufft_tol = tol;
  mo.cg_max_iter = cg_cap;
  mo.preconditioner = 0; /* as the reconstruction runs it */
  mo.nthreads = pb->nt;
  spf_merger *mg = NULL;
  int rc = spf_merger_make(pb->M, &mo, &mg);
  if (rc) fail("merger", rc);
  const int64_t np = pb->np, bpts = SLOTS * np;
  double *x = xmalloc(sizeof(double) * 3 * (size_t)bpts), *b = xmalloc(sizeof(double) * (size_t)bpts);
  const double t0 = omp_get_wtime();
  int64_t count = 0;
  for (int64_t i0 = first; i0 < pb->n;) {
    int64_t c = 0;
    for (; c < SLOTS && i0 < pb->n; c++, i0 += step) {
      double r[9];
      spf_quat_to_matrix(pb->quats + 4 * i0, r);
      spf_slicer_points(pb->sl, r, x + c * np, x + bpts + c * np, x + 2 * bpts + c * np);
      for (int64_t p = 0; p < np; p++) b[c * np + p] = pb->images[i0 * np + p];
    }
    /* the three coordinate arrays are bpts apart; only c * np of each are used */
    if ((rc = spf_merger_add_points(mg, c * np, x, x + bpts, x + 2 * bpts, b, NULL))) fail("add_points", rc);
    count += c;
  }
  const double t1 = omp_get_wtime();
  const int64_t n3 = pb->M * pb->M * pb->M;
  const double lambda0 = (double)count * (double)np / (double)n3;
  double rhos[5];
  for (int i = 0; i < 5; i++) rhos[i] = lambda0 * 1e-3 * pow(1e4, i / 4.0);
  spf_merge_stats st[5];
  int chosen = 0;
  if ((rc = spf_merger_solve_lcurve(mg, 5, rhos, 10 * lambda0, NULL, u, &chosen, st))) fail("L-curve", rc);
  const double t2 = omp_get_wtime();
  spf_merger_free(mg);
  free(x);
  free(b);
  if (t_add) *t_add = t1 - t0;
  return t2 - t1;
}

static void phase(const problem *pb, const double *u, double *rho, double *u_model)
{
  spf_phase_options po;
  spf_phase_default_options(&po);
  po.nthreads = pb->nt;
  po.seed = 7;
  const int64_t n3 = pb->M * pb->M * pb->M;
  uint8_t *support = xmalloc((size_t)n3);
  spf_phase_cycle *cyc = xmalloc(sizeof(spf_phase_cycle) * (size_t)(po.n_cycles + 1));
  int rc = spf_phase(pb->M, u, &po, NULL, NULL, rho, support, u_model, cyc);
  if (rc) fail("phase", rc);
  free(support);
  free(cyc);
}

int main(int argc, char **argv)
{
  int64_t n = 2000, P = 32, M = 31, R = 5000, photons = 0, threads = 0;
  double distance = 0.03;
  for (int i = 1; i < argc; i += 2) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int bad = !v;
    if (bad) {
    } else if (!strcmp(k, "--images")) bad = parse_int64(v, 2, 10000000, &n);
    else if (!strcmp(k, "--pixels")) bad = parse_int64(v, 2, 4096, &P);
    else if (!strcmp(k, "--M")) bad = parse_int64(v, 3, 301, &M) || M % 2 == 0;
    else if (!strcmp(k, "--refs")) bad = parse_int64(v, 1, 10000000, &R);
    else if (!strcmp(k, "--photons")) bad = parse_int64(v, 0, 100000000, &photons);
    else if (!strcmp(k, "--threads")) bad = parse_int64(v, 0, 1024, &threads);
    else if (!strcmp(k, "--distance")) bad = parse_double(v, 1e-4, 100, &distance);
    else
      bad = 1;
    if (bad) {
      fprintf(stderr, "usage: tolerance_bench [--images N] [--pixels P] [--distance D] [--M M] [--refs R] "
                      "[--photons K] [--threads T]\n");
      return 2;
    }
  }
  const int nt = threads > 0 ? (int)threads : omp_get_max_threads();
  omp_set_num_threads(nt);
  int rc;
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = g.ny = P;
  g.distance_m = distance;
  spf_detector *det = NULL;
  if ((rc = spf_detector_make(&g, &det))) fail("detector", rc);
  const int64_t np = det->n_pixels, n3 = M * M * M;

  /* ---- Data ---- */
  float *images = xmalloc(sizeof(float) * (size_t)(n * np));
  double *quats = xmalloc(sizeof(double) * 4 * (size_t)n);
  if ((rc = bench_phantom_images(det, 2000, n, nt, images, quats, NULL, NULL))) fail("simulate", rc);
  if (photons > 0) {
    double total = 0;
    for (int64_t k = 0; k < n * np; k++) total += images[k];
    spf_rng rg;
    spf_rng_seed(&rg, 3, 0);
    for (int64_t k = 0; k < n * np; k++)
      images[k] = (float)spf_rng_poisson(&rg, (double)photons * (double)n * images[k] / total);
  }
  printf("settings: %lld %s images of %lld x %lld pixels at %.3f m (%.2f A in the corner), M %lld, %lld references, "
         "%d threads\n",
         (long long)n, photons > 0 ? "Poisson" : "noise-free", (long long)P, (long long)P, distance,
         det->resolution_corner_m * 1e10, (long long)M, (long long)R, nt);
  if (photons > 0) printf("photons: %lld per image on average\n", (long long)photons);

  problem pb = {M, n, np, images, quats, NULL, nt};
  if ((rc = spf_slicer_make(M, np, det->s, det->s_max, 1.0, 1e-6, 1000, nt, &pb.sl))) fail("slicer", rc);

  /* ---- 1. Merging ---- */
  double *u_ref = xmalloc(sizeof(double) * (size_t)n3), *u = xmalloc(sizeof(double) * (size_t)n3);
  double *u1 = xmalloc(sizeof(double) * (size_t)n3), *u2 = xmalloc(sizeof(double) * (size_t)n3);
  double *rho_ref = xmalloc(sizeof(double) * (size_t)n3), *rho = xmalloc(sizeof(double) * (size_t)n3);
  double *model = xmalloc(sizeof(double) * (size_t)n3), *scratch = xmalloc(sizeof(double) * (size_t)n3);
  double t_add;
  merge(&pb, 1e-9, 100, 0, 1, u_ref, &t_add);
  phase(&pb, u_ref, rho_ref, model);
  merge(&pb, 1e-9, 100, 0, 2, u1, NULL);
  merge(&pb, 1e-9, 100, 1, 2, u2, NULL);
  /* The half-sets' difference, relative to the full set's norm. */
  double d = 0, r = 0;
  for (int64_t i = 0; i < n3; i++) d += (u1[i] - u2[i]) * (u1[i] - u2[i]), r += u_ref[i] * u_ref[i];
  const double noise_u = 0.5 * sqrt(d / r);
  phase(&pb, u1, rho, scratch);
  phase(&pb, u2, u, scratch);
  d = r = 0;
  for (int64_t i = 0; i < n3; i++) d += (rho[i] - u[i]) * (rho[i] - u[i]), r += rho_ref[i] * rho_ref[i];
  printf("noise floor (half-sets): autocorrelation %.2e, density %.2e (each ||half1 - half2|| / 2, relative to the "
         "full set's)\n",
         noise_u, 0.5 * sqrt(d / r));
  printf("\nmerging (type-1 sums at tol, plain CG capped at 100, L-curve of 5): against tol 1e-9\n");
  printf("| type-1 tol | add_points s | CG s | autocorrelation error | density error (phased, seed 7) |\n|---|---|---|---|---|\n");
  const double tols[] = {1e-6, 1e-5, 1e-4, 1e-3};
  for (int k = 0; k < 4; k++) {
    double ta;
    const double ts = merge(&pb, tols[k], 100, 0, 1, u, &ta);
    phase(&pb, u, rho, scratch);
    printf("| %.0e | %.2f | %.2f | %.2e | %.2e |\n", tols[k], ta, ts, rel_diff(n3, u, u_ref), rel_diff(n3, rho, rho_ref));
  }
  printf("\nCG cap (type-1 at 1e-9): against 400 iterations\n");
  printf("| CG cap | CG s | autocorrelation error | density error |\n|---|---|---|---|\n");
  double *u400 = xmalloc(sizeof(double) * (size_t)n3), *rho400 = xmalloc(sizeof(double) * (size_t)n3);
  merge(&pb, 1e-9, 400, 0, 1, u400, NULL);
  phase(&pb, u400, rho400, scratch);
  const int caps[] = {25, 50, 100, 200};
  for (int k = 0; k < 4; k++) {
    const double ts = merge(&pb, 1e-9, caps[k], 0, 1, u, NULL);
    phase(&pb, u, rho, scratch);
    printf("| %d | %.2f | %.2e | %.2e |\n", caps[k], ts, rel_diff(n3, u, u400), rel_diff(n3, rho, rho400));
  }

  /* ---- 3. Slicing and matching ---- */
  spf_match_options mo;
  spf_match_default_options(&mo);
  mo.nthreads = nt;
  float *w = xmalloc(sizeof(float) * (size_t)np);
  for (int64_t p = 0; p < np; p++) {
    double mean = 0;
    for (int64_t i = 0; i < n; i++) mean += images[i * np + p];
    w[p] = mean > 0 ? (float)((double)n / mean) : 0.0f;
  }
  mo.pixel_weight = w;
  const int64_t batch = 1000;
  double *q = xmalloc(sizeof(double) * 4 * (size_t)batch), *rot = xmalloc(sizeof(double) * 9 * (size_t)batch);
  float *slices_ref = xmalloc(sizeof(float) * (size_t)(R * np)), *slices = xmalloc(sizeof(float) * (size_t)(R * np));
  int64_t *best_ref = xmalloc(sizeof(int64_t) * (size_t)n), *best = xmalloc(sizeof(int64_t) * (size_t)n);
  const double ball = spf_orientation_ball_radius(R);
  const double stols[] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2};
  printf("\nslicing the phased model (float type 2 at tol) and matching every image to %lld references: against "
         "1e-6\n",
         (long long)R);
  printf("| type-2 tol | slicing s | slice error | images whose best reference changes | median move (ball radii) |\n"
         "|---|---|---|---|---|\n");
  for (int k = 0; k < 5; k++) {
    spf_slicer *sl = NULL;
    if ((rc = spf_slicer_make(M, np, det->s, det->s_max, 1.0, stols[k], batch, nt, &sl))) fail("slicer", rc);
    if ((rc = spf_slicer_set_volume(sl, model))) fail("set_volume", rc);
    float *out = k == 0 ? slices_ref : slices;
    const double t0 = omp_get_wtime();
    for (int64_t f = 0; f < R; f += batch) {
      const int64_t c = R - f < batch ? R - f : batch;
      if ((rc = spf_orientation_grid(R, f, c, q))) fail("grid", rc);
      for (int64_t j = 0; j < c; j++) spf_quat_to_matrix(q + 4 * j, rot + 9 * j);
      if ((rc = spf_slicer_slice(sl, c, rot, out + f * np))) fail("slice", rc);
    }
    const double t_slice = omp_get_wtime() - t0;
    spf_slicer_free(sl);
    spf_matcher *mt = NULL;
    if ((rc = spf_matcher_make(n, np, images, &mo, &mt))) fail("matcher", rc);
    for (int64_t f = 0; f < R; f += batch)
      if ((rc = spf_matcher_add_batch(mt, f, R - f < batch ? R - f : batch, out + f * np))) fail("match", rc);
    if ((rc = spf_matcher_results(mt, k == 0 ? best_ref : best, NULL, NULL))) fail("results", rc);
    spf_matcher_free(mt);
    if (k == 0) {
      printf("| %.0e (reference) | %.2f | | | |\n", stols[k], t_slice);
      continue;
    }
    int64_t changed = 0;
    double *moves = xmalloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
      if (best[i] == best_ref[i]) continue;
      double qa[4], qb[4];
      spf_orientation_grid(R, best[i], 1, qa);
      spf_orientation_grid(R, best_ref[i], 1, qb);
      const double dot = fabs(qa[0] * qb[0] + qa[1] * qb[1] + qa[2] * qb[2] + qa[3] * qb[3]);
      moves[changed++] = 2 * acos(fmin(1.0, dot)) / ball;
    }
    for (int64_t a = 1; a < changed; a++) /* insertion sort: few */
      for (int64_t b = a; b > 0 && moves[b] < moves[b - 1]; b--) {
        const double t = moves[b];
        moves[b] = moves[b - 1];
        moves[b - 1] = t;
      }
    printf("| %.0e | %.2f | %.2e | %lld (%.2f%%) | %s%.2f |\n", stols[k], t_slice, rel_diff_f(R * np, slices, slices_ref),
           (long long)changed, 100.0 * (double)changed / (double)n, changed ? "" : "-", changed ? moves[changed / 2] : 0.0);
    free(moves);
  }
  printf("\npeak memory: %.0f MiB\n", peak_rss_mib());
  spf_slicer_free(pb.sl);
  spf_detector_free(det);
  free(images); free(quats); free(u_ref); free(u); free(u1); free(u2); free(rho_ref); free(rho); free(model);
  free(scratch); free(u400); free(rho400); free(w); free(q); free(rot); free(slices_ref); free(slices);
  free(best_ref); free(best);
  return 0;
}
