/* The M-TIP outer loop (see reconstruct.h). */
#include "spinifel/reconstruct.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/matching.h"
#include "spinifel/random.h"
#include "spinifel/rotation.h"
#include "spinifel/slicing.h"

#define MERGE_BATCH_IMAGES 256

void spf_reconstruct_default_options(spf_reconstruct_options *o)
{
  if (!o) return;
  o->M = 31;
  o->oversampling = 1.0;
  o->n_references = 10000;
  o->ref_batch = 1000;
  o->max_generations = 10;
  o->stop_fraction = 0.01;
  o->n_rho = 5;
  o->rho_min = 1e-3;
  o->rho_max = 10;
  o->phi = 10;
  o->slice_tol = 1e-4;
  o->res_start = 1.0;
  o->res_generations = 5;
  o->use_prior = 1;
  o->continue_phasing = 1;
  o->start_from_truth = 0;
  spf_merge_default_options(&o->merge);
  o->merge.cg_max_iter = 100;
  spf_phase_default_options(&o->phase);
  o->seed = 1;
  o->nthreads = 0;
  o->verbose = 0;
}

static const double ZFLIP[4] = {0, 0, 0, 1}; /* 180 degrees about the beam (z) */

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Angles (degrees) of every image for the global rotation c, each image taking the
 * nearer of its found orientation and its Friedel flip; qf_used gets that choice. */
static void frame_angles(int64_t n, const double *qt, const double *qf, const double c[4], double *ang,
                         double *qf_used)
{
  for (int64_t i = 0; i < n; i++) {
    double pred[4], flip[4];
    spf_quat_multiply(qt + 4 * i, c, pred);
    /* Rz(180) R gives the same image as R up to the Ewald sphere's curvature (Friedel
     * symmetry): either is a correct answer. */
    spf_quat_multiply(ZFLIP, qf + 4 * i, flip);
    const double a = spf_quat_angle(pred, qf + 4 * i), b = spf_quat_angle(pred, flip);
    ang[i] = fmin(a, b) * 180.0 / M_PI;
    if (qf_used) memcpy(qf_used + 4 * i, a <= b ? qf + 4 * i : flip, sizeof(double) * 4);
  }
}

static double median_of(int64_t n, const double *ang, double *tmp, double *p90)
{
  memcpy(tmp, ang, sizeof(double) * (size_t)n);
  qsort(tmp, (size_t)n, sizeof(double), cmp_double);
  if (p90) *p90 = tmp[(int64_t)(0.9 * (double)(n - 1))];
  return tmp[n / 2];
}

double spf_orientation_error_median(int64_t n, const double *qt, const double *qf, double *p90)
{
  if (n < 1) return NAN;
  double *ang = malloc(sizeof(double) * (size_t)n), *tmp = malloc(sizeof(double) * (size_t)n);
  double *used = malloc(sizeof(double) * 4 * (size_t)n);
  if (!ang || !tmp || !used) {
    free(ang); free(tmp); free(used);
    return NAN;
  }
  /* Candidate global rotations: the relative rotation of up to 200 images. */
  double best = INFINITY, c[4] = {1, 0, 0, 0};
  const int64_t step = n > 200 ? n / 200 : 1;
  for (int64_t j = 0; j < n; j += step) {
    double inv[4], cj[4];
    spf_quat_conjugate(qt + 4 * j, inv);
    spf_quat_multiply(inv, qf + 4 * j, cj);
    frame_angles(n, qt, qf, cj, ang, NULL);
    double med = median_of(n, ang, tmp, NULL);
    if (med < best) {
      best = med;
      memcpy(c, cj, sizeof c);
    }
  }
  /* Fit the frame: the chordal mean of the relative rotations of the images within twice
   * the median, so one image's error does not set everyone's. */
  for (int it = 0; it < 3; it++) {
    frame_angles(n, qt, qf, c, ang, used);
    double med = median_of(n, ang, tmp, NULL), acc[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
      if (ang[i] > 2 * med + 1e-9) continue;
      double inv[4], rel[4];
      spf_quat_conjugate(qt + 4 * i, inv);
      spf_quat_multiply(inv, used + 4 * i, rel);
      const double sgn = rel[0] * c[0] + rel[1] * c[1] + rel[2] * c[2] + rel[3] * c[3] < 0 ? -1 : 1;
      for (int k = 0; k < 4; k++) acc[k] += sgn * rel[k];
    }
    double len = sqrt(acc[0] * acc[0] + acc[1] * acc[1] + acc[2] * acc[2] + acc[3] * acc[3]);
    if (len > 0)
      for (int k = 0; k < 4; k++) c[k] = acc[k] / len;
  }
  frame_angles(n, qt, qf, c, ang, NULL);
  double med = median_of(n, ang, tmp, p90);
  free(ang);
  free(tmp);
  free(used);
  return med;
}

/* Add every image, at its orientation, to the merger's sums. */
static int merge_images(spf_merger *mg, const spf_slicer *sl, int64_t n_images, int64_t np, const float *images,
                        const double *quats, double *x, double *b)
{
  int rc = SPF_OK;
  spf_merger_clear(mg);
  for (int64_t f = 0; f < n_images && !rc; f += MERGE_BATCH_IMAGES) {
    const int64_t c = n_images - f < MERGE_BATCH_IMAGES ? n_images - f : MERGE_BATCH_IMAGES, n = c * np;
    for (int64_t i = 0; i < c; i++) {
      double r[9];
      spf_quat_to_matrix(quats + 4 * (f + i), r);
      spf_slicer_points(sl, r, x + i * np, x + n + i * np, x + 2 * n + i * np);
      for (int64_t p = 0; p < np; p++) b[i * np + p] = images[(f + i) * np + p];
    }
    rc = spf_merger_add_points(mg, n, x, x + n, x + 2 * n, b, NULL);
  }
  return rc;
}

int spf_reconstruct(int64_t n_images, int64_t np, const float *images, const double *s, const double *true_quats,
                    const spf_reconstruct_options *opts, spf_generation_fn on_generation, void *ctx, double *rho,
                    double *u, double *orient, float *best_dist, float *gap, int *generations_run)
{
  if (!images || !s || !rho || !u || !orient) return SPF_ERR_NULL;
  if (n_images < 1 || np < 1) return SPF_ERR_SIZE;
  spf_reconstruct_options o;
  if (opts) o = *opts;
  else spf_reconstruct_default_options(&o);
  if (o.M < 3 || o.M % 2 == 0 || o.n_references < 1 || o.ref_batch < 1 || o.max_generations < 1 || o.n_rho < 1)
    return SPF_ERR_OPTION;
  const int nthreads = o.nthreads > 0 ? o.nthreads : omp_get_max_threads();
  o.merge.nthreads = o.phase.nthreads = nthreads;
  const int64_t M = o.M, n3 = M * M * M, nb = o.ref_batch;
  double s_max = 0;
  for (int64_t p = 0; p < np; p++)
    s_max = fmax(s_max, sqrt(s[3 * p] * s[3 * p] + s[3 * p + 1] * s[3 * p + 1] + s[3 * p + 2] * s[3 * p + 2]));
  if (!(s_max > 0)) return SPF_ERR_DATA;

  spf_slicer *sl = NULL;
  spf_merger *mg = NULL;
  spf_matcher *mt = NULL;
  int64_t merge_pts = (n_images < MERGE_BATCH_IMAGES ? n_images : MERGE_BATCH_IMAGES) * np;
  double *x = malloc(sizeof(double) * 3 * (size_t)merge_pts), *b = malloc(sizeof(double) * (size_t)merge_pts);
  double *u_model = malloc(sizeof(double) * (size_t)n3), *rhos = malloc(sizeof(double) * (size_t)o.n_rho);
  double *rho_prev = malloc(sizeof(double) * (size_t)n3);
  uint8_t *support = malloc((size_t)n3);
  double *refq = malloc(sizeof(double) * 4 * (size_t)nb), *refm = malloc(sizeof(double) * 9 * (size_t)nb);
  float *slices = malloc(sizeof(float) * (size_t)(nb * np));
  int64_t *best = malloc(sizeof(int64_t) * (size_t)n_images), *prev = malloc(sizeof(int64_t) * (size_t)n_images);
  float *bd = malloc(sizeof(float) * (size_t)n_images), *sd = malloc(sizeof(float) * (size_t)n_images);
  spf_merge_stats *st = malloc(sizeof(spf_merge_stats) * (size_t)o.n_rho);
  spf_phase_cycle *cyc = malloc(sizeof(spf_phase_cycle) * (size_t)(o.phase.n_cycles + 1));
  int rc = (x && b && u_model && rho_prev && support && rhos && refq && refm && slices && best && prev && bd && sd && st && cyc)
               ? SPF_OK
               : SPF_ERR_ALLOC;
  for (int64_t i = 0; !rc && i < n_images; i++) bd[i] = sd[i] = NAN; /* no matching before generation 1 */
  if (!rc) rc = spf_slicer_make(M, np, s, s_max, o.oversampling, o.slice_tol, nb, nthreads, &sl);
  if (!rc) rc = spf_merger_make(M, &o.merge, &mg);
  float *weight = malloc(sizeof(float) * (size_t)np);
  if (!weight) rc = SPF_ERR_ALLOC;
  /* Generation 0: random orientations, one seeded stream per image. */
  for (int64_t i = 0; !rc && i < n_images; i++) {
    spf_rng r;
    spf_rng_seed(&r, o.seed, (uint64_t)i);
    spf_random_rotation(&r, orient + 4 * i);
    if (o.start_from_truth && true_quats) memcpy(orient + 4 * i, true_quats + 4 * i, sizeof(double) * 4);
    prev[i] = -1;
  }
  /* Regularisation relative to the data's weight per grid point. */
  const double lambda0 = (double)n_images * (double)np / (double)n3;
  for (int i = 0; i < o.n_rho; i++)
    rhos[i] = lambda0 * (o.n_rho > 1 ? o.rho_min * pow(o.rho_max / o.rho_min, (double)i / (o.n_rho - 1)) : o.rho_min);
  int gen = 0, have_model = 0;
  for (; !rc && gen < o.max_generations; gen++) {
    spf_generation_log log = {.generation = gen, .fraction_changed = 1.0, .median_orientation_error_deg = NAN};
    double t0 = omp_get_wtime();
    if (have_model) {
      /* Slice the model for every reference orientation, keep each image's best. */
      rc = spf_slicer_set_volume(sl, u_model);
      /* Resolution schedule: match on the inner pixels first. */
      double frac = o.res_start >= 1 || o.res_generations <= 1
                        ? 1.0
                        : fmin(1.0, o.res_start + (1.0 - o.res_start) * (gen - 1) / (o.res_generations - 1));
      for (int64_t p = 0; p < np; p++)
        weight[p] = sqrt(s[3 * p] * s[3 * p] + s[3 * p + 1] * s[3 * p + 1] + s[3 * p + 2] * s[3 * p + 2]) <=
                    frac * s_max * (1 + 1e-12);
      spf_match_options mo;
      spf_match_default_options(&mo);
      mo.nthreads = nthreads;
      mo.pixel_weight = weight;
      spf_matcher_free(mt);
      mt = NULL;
      if (!rc) rc = spf_matcher_make(n_images, np, images, &mo, &mt);
      for (int64_t f = 0; !rc && f < o.n_references; f += nb) {
        const int64_t c = o.n_references - f < nb ? o.n_references - f : nb;
        spf_orientation_grid(o.n_references, f, c, refq);
        for (int64_t j = 0; j < c; j++) spf_quat_to_matrix(refq + 4 * j, refm + 9 * j);
        rc = spf_slicer_slice(sl, c, refm, slices);
        if (!rc) rc = spf_matcher_add_batch(mt, f, c, slices);
      }
      if (rc) break;
      spf_matcher_results(mt, best, bd, sd);
      int64_t changed = 0;
      for (int64_t i = 0; i < n_images; i++) {
        changed += best[i] != prev[i];
        prev[i] = best[i];
        spf_orientation_grid(o.n_references, best[i], 1, orient + 4 * i);
      }
      log.fraction_changed = (double)changed / (double)n_images;
    }
    double t1 = omp_get_wtime();
    rc = merge_images(mg, sl, n_images, np, images, orient, x, b);
    int chosen = 0;
    if (!rc) rc = spf_merger_solve_lcurve(mg, o.n_rho, rhos, o.phi * lambda0, have_model && o.use_prior ? u_model : NULL, u,
                                           &chosen, st);
    double t2 = omp_get_wtime();
    if (!rc) {
      /* Later generations continue from the previous density and support (as SpiniFEL
       * does): restarting from noise lets the model jump between generations. */
      o.phase.seed = o.seed + (uint64_t)gen;
      if (have_model) memcpy(rho_prev, rho, sizeof(double) * (size_t)n3);
      rc = spf_phase(M, u, &o.phase, have_model && o.continue_phasing ? rho_prev : NULL,
                     have_model && o.continue_phasing ? support : NULL, rho, support, u_model, cyc);
    }
    double t3 = omp_get_wtime();
    if (rc) break;
    have_model = 1;
    log.cg_iterations = st[chosen].iterations;
    log.cg_residual = st[chosen].rel_residual;
    log.rho_chosen = st[chosen].rho;
    log.phase_error = o.phase.n_cycles > 0 ? cyc[o.phase.n_cycles - 1].fourier_error : NAN;
    log.support_size = o.phase.n_cycles > 0 ? cyc[o.phase.n_cycles - 1].support_size : 0;
    log.t_slice_match = t1 - t0;
    log.t_merge = t2 - t1;
    log.t_phase = t3 - t2;
    if (true_quats) log.median_orientation_error_deg = spf_orientation_error_median(n_images, true_quats, orient, NULL);
    if (o.verbose)
      fprintf(stderr,
              "generation %d: changed %.3f, median orientation error %.2f deg, CG %d it (residual %.1e, rho %.3g), "
              "phasing error %.3f, support %lld | slice+match %.1fs merge %.1fs phase %.1fs\n",
              gen, log.fraction_changed, log.median_orientation_error_deg, log.cg_iterations, log.cg_residual,
              log.rho_chosen, log.phase_error, (long long)log.support_size, log.t_slice_match, log.t_merge,
              log.t_phase);
    if (on_generation && on_generation(ctx, &log, rho, M)) break;
    if (gen > 0 && log.fraction_changed < o.stop_fraction) {
      gen++;
      break;
    }
  }
  if (!rc && best_dist) memcpy(best_dist, bd, sizeof(float) * (size_t)n_images);
  if (!rc && gap)
    for (int64_t i = 0; i < n_images; i++) gap[i] = sd[i] - bd[i];
  if (generations_run) *generations_run = gen;
  spf_slicer_free(sl);
  spf_merger_free(mg);
  spf_matcher_free(mt);
  free(x); free(b); free(u_model); free(rhos); free(refq); free(refm); free(slices);
  free(best); free(prev); free(bd); free(sd); free(st); free(cyc); free(weight);
  free(rho_prev); free(support);
  return rc;
}
