/* The orientation step of a generation, both models (see orientation.h). */
#include "spinifel/orientation.h"

#include <float.h>
#include <math.h>
#include <omp.h>
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

/* Merge batches hold a fixed number of orientations, the same on any number of ranks. */
#define MERGE_BATCH_IMAGES 256

/* The confidence (the gap, below): each image's nearest references kept in hard
 * generations, and how far an alternative must be from the best, in ball radii of the
 * grid. 64 nearest hold the best's neighbours within 3 ball radii (about 26 on any grid)
 * and the nearest alternative beyond when one is close in distance; keeping them costs
 * about a fifth more matching than the best alone (the demo's generations). */
#define CONFIDENCE_KEEP 64
#define CONFIDENCE_RADII 3.0

/* Local refinement's passes per step (local_refine, below). */
#define LOCAL_PASSES 1

static const double ZFLIP[4] = {0, 0, 0, 1}; /* 180 degrees about the beam (z) */

struct spf_orienter_s {
  spf_reconstruct_options o; /* resolved */
  const spf_comm *cm;
  int nthreads;
  int64_t n_images, np, n_total, nb, slots;
  const float *images;       /* the caller's: this rank's images */
  const double *s;           /* the caller's: the pixels' s */
  double s_max;
  spf_slicer *sl;
  spf_view_scales sc;        /* fixed-point scales of the views' sums */
  double *x, *b, *w;         /* merge points of `slots` orientations: coordinates, values, weights */
  double *refq, *refm;       /* a batch of references: quaternions, matrices */
  float *slices;             /*   and model images */
  int64_t *best;             /* n_images: this generation's best reference */
  double *prev_q;            /* n_images * 4: the orientations before this generation */
  /* Euclidean */
  float *pix_w;              /* matching weights: 1 / the mean image (pixel_weighting), or 1 */
  float *weight;             /* this generation's: pix_w within the resolution, else 0 */
  double res_frac;           /* this generation's resolution (fraction of s_max) */
  spf_matcher *mt;           /* the images, weighted by mt_weight, keeping mt_keep nearest */
  float *mt_weight;
  int mt_keep;
  int K;                     /* soft assignment's list length (1: hard only) */
  int L;                     /* the lists' length: K, and CONFIDENCE_KEEP in hard generations
                                (0 with the Poisson model) */
  int64_t *vi;               /* n_images * L nearest references */
  float *vd;                 /*   and their distances */
  spf_view *views;           /* n_images * K: the views to merge */
  float *second;             /* n_images: second-best distance (the matcher's) */
  int refined;               /* this generation's orientations are off the grid (local_refine) */
  double *cand_q;            /* local_refine: ref_batch candidate quaternions */
  double *cand_d;            /*   and distances */
  /* Poisson */
  spf_likelihood *lk;
};

/* ---- Schedules ---------------------------------------------------------------------- */

/* The resolution schedule: generation gen (>= 1) matches on the pixels with |s| <=
 * fraction * s_max, res_start at generation 1 rising linearly to all pixels at
 * res_generations (res_start >= 1: all pixels throughout). */
static double resolution_fraction(const spf_reconstruct_options *o, int gen)
{
  return o->res_start >= 1 || o->res_generations <= 1
             ? 1.0
             : fmin(1.0, o->res_start + (1.0 - o->res_start) * (gen - 1) / (o->res_generations - 1));
}

/* The soft assignment's schedule: generations 1 .. soft_generations, when soft_k > 1. */
static int soft_assignment(const spf_orienter *p, int gen)
{
  return p->K > 1 && gen <= p->o.soft_generations;
}

/* ---- The plan ------------------------------------------------------------------------ */

/* The mean image over every rank's images, in fixed point at the views' scales (exact
 * over ranks), when the matching weights or the Poisson floors need it (else 0): the
 * matching weights 1 / mean (the mean image is the same for every orientation, so this
 * is a Poisson-like, chi-square metric that lets every resolution shell speak, not only
 * the bright centre, whose near-spherical speckle says little about the orientation);
 * *mean_all its mean over the pixels. */
static int mean_image(spf_orienter *p, double *mean, double *mean_all)
{
  const int64_t np = p->np;
  const int poisson = p->o.model == SPF_MODEL_POISSON, weighted = p->o.pixel_weighting == 1;
  int64_t *pix_fixed = malloc(sizeof(int64_t) * (size_t)np);
  int rc = pix_fixed ? SPF_OK : SPF_ERR_ALLOC;
  rc = spf_comm_agree(p->cm, rc);
  for (int64_t q = 0; !rc && q < np; q++) {
    pix_fixed[q] = 0;
    if (weighted || poisson)
      for (int64_t i = 0; i < p->n_images; i++)
        pix_fixed[q] += spf_to_fixed(p->images[i * np + q], p->sc.pix_scale[q]);
  }
  if (!rc) rc = spf_comm_sum_int64(p->cm, pix_fixed, np);
  *mean_all = 0;
  for (int64_t q = 0; !rc && q < np; q++) {
    const double m = mean[q] = (double)pix_fixed[q] * p->sc.pix_unit[q] / (double)p->n_total;
    p->pix_w[q] = !weighted ? 1.0f : m > 0 ? (float)(1.0 / m) : 0.0f;
    *mean_all += m / (double)np;
  }
  free(pix_fixed);
  return rc;
}

/* The Poisson model's likelihood plan, with floors at model_floor x each pixel's mean
 * count (1e-3 of the overall mean where a pixel saw nothing). */
static int likelihood_plan(spf_orienter *p, const double *mean, double mean_all)
{
  spf_likelihood_options lo;
  spf_likelihood_default_options(&lo);
  lo.nthreads = p->nthreads;
  float *floor = malloc(sizeof(float) * (size_t)p->np);
  const float least = (float)(1e-3 * mean_all);
  int rc = floor ? SPF_OK : SPF_ERR_ALLOC;
  for (int64_t q = 0; !rc && q < p->np; q++) {
    floor[q] = (float)(p->o.model_floor * mean[q]);
    if (!(floor[q] >= least)) floor[q] = least > 0 ? least : 1e-30f;
  }
  lo.pixel_floor = floor;
  if (!rc) rc = spf_likelihood_make(p->n_images, p->np, p->images, &lo, &p->lk);
  free(floor);
  return rc;
}

int spf_orienter_make(int64_t n_images, int64_t np, const float *images, const double *s, double s_max,
                      const spf_reconstruct_options *o, spf_orienter **out)
{
  if (!images || !s || !o || !out) return SPF_ERR_NULL;
  *out = NULL;
  if (n_images < 1 || np < 1) return SPF_ERR_SIZE;
  if ((o->model != SPF_MODEL_EUCLIDEAN && o->model != SPF_MODEL_POISSON) || o->ref_batch < 1) return SPF_ERR_OPTION;
  spf_orienter *p = calloc(1, sizeof *p);
  if (!p) return spf_comm_agree(o->comm, SPF_ERR_ALLOC);
  p->o = *o;
  p->cm = o->comm;
  p->nthreads = o->nthreads > 0 ? o->nthreads : omp_get_max_threads();
  p->n_images = n_images;
  p->np = np;
  p->nb = o->ref_batch;
  p->slots = MERGE_BATCH_IMAGES;
  p->images = images;
  p->s = s;
  p->s_max = s_max;
  p->K = o->model == SPF_MODEL_EUCLIDEAN && o->soft_k > 1 && o->soft_generations > 0 ? o->soft_k : 1;
  p->L = o->model != SPF_MODEL_EUCLIDEAN ? 0 : p->K > CONFIDENCE_KEEP ? p->K : CONFIDENCE_KEEP;
  const int64_t nb = p->nb, K = p->K, L = p->L, merge_pts = p->slots * np;
  p->x = malloc(sizeof(double) * 3 * (size_t)merge_pts);
  p->b = malloc(sizeof(double) * (size_t)merge_pts);
  p->w = malloc(sizeof(double) * (size_t)merge_pts);
  p->refq = malloc(sizeof(double) * 4 * (size_t)nb);
  p->refm = malloc(sizeof(double) * 9 * (size_t)nb);
  p->slices = malloc(sizeof(float) * (size_t)(nb * np));
  p->best = malloc(sizeof(int64_t) * (size_t)n_images);
  p->prev_q = malloc(sizeof(double) * 4 * (size_t)n_images);
  p->pix_w = malloc(sizeof(float) * (size_t)np);
  p->weight = malloc(sizeof(float) * (size_t)np);
  p->mt_weight = malloc(sizeof(float) * (size_t)np);
  p->views = malloc(sizeof(spf_view) * (size_t)(n_images * K));
  p->vi = L > 0 ? malloc(sizeof(int64_t) * (size_t)(n_images * L)) : NULL;
  p->vd = L > 0 ? malloc(sizeof(float) * (size_t)(n_images * L)) : NULL;
  p->second = malloc(sizeof(float) * (size_t)n_images);
  p->cand_q = malloc(sizeof(double) * 4 * (size_t)nb);
  p->cand_d = malloc(sizeof(double) * (size_t)nb);
  double *mean = malloc(sizeof(double) * (size_t)np), mean_all = 0;
  int rc = p->x && p->b && p->w && p->refq && p->refm && p->slices && p->best && p->prev_q && p->pix_w && p->weight &&
                   p->mt_weight && p->views && (L == 0 || (p->vi && p->vd)) && p->second && p->cand_q && p->cand_d && mean
               ? SPF_OK
               : SPF_ERR_ALLOC;
  if (!rc) rc = spf_slicer_make(o->M, np, s, s_max, o->oversampling, o->slice_tol, nb, p->nthreads, &p->sl);
  /* The data's figures over every rank: the views' scales, the mean image. */
  rc = spf_comm_agree(p->cm, rc);
  if (!rc) rc = spf_view_scales_make(p->cm, n_images, np, images, &p->sc, &p->n_total);
  if (!rc) rc = mean_image(p, mean, &mean_all);
  if (!rc && o->model == SPF_MODEL_POISSON) rc = likelihood_plan(p, mean, mean_all);
  free(mean);
  rc = spf_comm_agree(p->cm, rc);
  if (rc) spf_orienter_free(p);
  else *out = p;
  return rc;
}

int64_t spf_orienter_total_images(const spf_orienter *p)
{
  return p ? p->n_total : 0;
}

int spf_orienter_start(spf_orienter *p, const spf_run_state *resume, const double *true_quats, spf_run_state *st)
{
  if (!p || !st) return SPF_ERR_NULL;
  const int64_t n = p->n_images;
  if (st->n_images != n || (resume && resume->n_images != n)) return SPF_ERR_SIZE;
  if (resume) {
    if (resume != st) spf_run_state_copy_images(st, 0, resume, 0, n);
    return SPF_OK;
  }
  /* Generation 0: random orientations, one seeded stream per image; no matching yet.
   * (A resume, above, keeps the state's distances: resetting them first lost them
   * when the state resumed in place.) */
  for (int64_t i = 0; i < n; i++) st->best_dist[i] = st->gap[i] = NAN;
  for (int64_t i = 0; i < n; i++) {
    spf_rng r;
    spf_rng_seed(&r, p->o.seed, (uint64_t)(p->o.first_image + i));
    spf_random_rotation(&r, st->orientations + 4 * i);
    if (p->o.start_from_truth && true_quats) memcpy(st->orientations + 4 * i, true_quats + 4 * i, sizeof(double) * 4);
    st->best[i] = -1;
    st->entropy[i] = NAN;
    st->fluence[i] = 1;
  }
  if (p->o.model != SPF_MODEL_POISSON || !p->o.update_fluence) return SPF_OK;
  /* The first fluence guess: each image's photons over the mean (EMC refines it).
   * Photons are integers: their sum over the ranks is exact. */
  double mine = 0;
  for (int64_t i = 0; i < n; i++) mine += spf_likelihood_photons(p->lk, i);
  int64_t all = (int64_t)mine;
  const int rc = spf_comm_sum_int64(p->cm, &all, 1);
  const double total = (double)all;
  for (int64_t i = 0; !rc && i < n && total > 0; i++)
    st->fluence[i] = spf_likelihood_photons(p->lk, i) * (double)p->n_total / total;
  return rc;
}

/* ---- The step ------------------------------------------------------------------------ */

/* Images whose orientation changed: moved farther than 1.5 ball radii of this grid
 * (about its covering radius) from the previous one, the nearer of the orientation and
 * its Friedel flip counting; an image's first match always counts. A step to a
 * neighbouring reference is not a change: on a fine grid images near the boundary
 * between two references swap back and forth with the last bits of the model, and
 * counting them kept the stopping rule from firing long after the orientations had
 * settled (the demo's data: 1-2% every generation for 30 generations). */
static int64_t changed_count(int64_t n, const int64_t *prev, int64_t n_refs, const double *q, const double *q_prev)
{
  int64_t changed = 0;
  const double limit = 1.5 * spf_orientation_ball_radius(n_refs);
  for (int64_t i = 0; i < n; i++) {
    if (prev[i] < 0) {
      changed++;
      continue;
    }
    double flip[4];
    spf_quat_multiply(ZFLIP, q_prev + 4 * i, flip);
    changed += fmin(spf_quat_angle(q + 4 * i, q_prev + 4 * i), spf_quat_angle(q + 4 * i, flip)) > limit;
  }
  return changed;
}

/* Either model's matches into the state: each image's orientation is its best
 * reference's, st->best the best (after counting the images that changed); the count
 * and the rechecks are summed over the ranks. */
static int record_matches(spf_orienter *p, int64_t n_refs, spf_run_state *st,
                          spf_generation_log *log)
{
  const int64_t n = p->n_images;
  memcpy(p->prev_q, st->orientations, sizeof(double) * 4 * (size_t)n);
  for (int64_t i = 0; i < n; i++) spf_orientation_grid(n_refs, p->best[i], 1, st->orientations + 4 * i);
  int64_t counts[2] = {changed_count(n, st->best, n_refs, st->orientations, p->prev_q), log->rechecks};
  memcpy(st->best, p->best, sizeof(int64_t) * (size_t)n);
  const int rc = spf_comm_sum_int64(p->cm, counts, 2);
  log->rechecks = counts[1];
  log->fraction_changed = (double)counts[0] / (double)p->n_total;
  log->n_references = n_refs;
  return rc;
}

/* The matcher for this generation's options: it holds the weighted images, so it is made
 * again only when the weights or the kept list's length change (the schedules), and
 * reset otherwise. */
static int matcher_for(spf_orienter *p, const spf_match_options *mo)
{
  if (p->mt && mo->keep == p->mt_keep && !memcmp(mo->pixel_weight, p->mt_weight, sizeof(float) * (size_t)p->np)) {
    spf_matcher_reset(p->mt);
    return SPF_OK;
  }
  spf_matcher_free(p->mt);
  p->mt = NULL;
  const int rc = spf_matcher_make(p->n_images, p->np, p->images, mo, &p->mt);
  p->mt_keep = mo->keep;
  memcpy(p->mt_weight, mo->pixel_weight, sizeof(float) * (size_t)p->np);
  return rc;
}

/* Soft assignment's views: Boltzmann weights over each image's K nearest, at a
 * temperature relative to the image's own best misfit: a rough model spreads each image
 * over its plausible orientations (deterministic annealing, as EMC), a good one
 * concentrates it. */
static void soft_views(spf_orienter *p)
{
  const int K = p->K;
  for (int64_t i = 0; i < p->n_images; i++) {
    const double d0 = p->vd[i * K], T = p->o.soft_tau * fmax(d0, 1e-30);
    double sum = 0;
    for (int k = 0; k < K; k++) {
      const int64_t v = i * K + k;
      p->views[v] = (spf_view){p->vi[v], i, p->vi[v] >= 0 ? exp(-((double)p->vd[v] - d0) / T) : 0.0};
      sum += p->views[v].w;
    }
    for (int k = 0; k < K; k++) p->views[i * K + k].w /= sum;
  }
}

/* Each image's confidence, its gap: how much farther the nearest alternative is than
 * the best, relative to the best, (d_alt - d_best) / d_best, where the alternative is a
 * reference farther than CONFIDENCE_RADII ball radii from both the best and the best's
 * Friedel twin (the list's last distance when none of its L nearest is that far: the
 * gap is at least that). An image matched to a wrong orientation has its true one, a
 * different one, nearly as near. The gap to the second-best reference, a neighbour on
 * any fine grid, measured the grid's spacing instead; relative to the best distance the
 * gap ranks the images' errors better than in absolute terms (Spearman 0.66-0.70 against
 * 0.45 on the demo's data). */
static void confidence_gaps(spf_orienter *p, int L, int64_t n_refs, spf_run_state *st)
{
  const double limit = CONFIDENCE_RADII * spf_orientation_ball_radius(n_refs);
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
  for (int64_t i = 0; i < p->n_images; i++) {
    const int64_t *idx = p->vi + i * L;
    const float *dist = p->vd + i * L;
    double flip[4];
    spf_quat_multiply(ZFLIP, st->orientations + 4 * i, flip);
    float alt = dist[L - 1];
    for (int k = 1; k < L && idx[k] >= 0; k++) {
      double q[4];
      spf_orientation_grid(n_refs, idx[k], 1, q);
      if (fmin(spf_quat_angle(q, st->orientations + 4 * i), spf_quat_angle(q, flip)) > limit) {
        alt = dist[k];
        break;
      }
    }
    st->gap[i] = (alt - st->best_dist[i]) / fmaxf(st->best_dist[i], FLT_MIN);
  }
}

/* The matching metric, per-image scale, for image x against model image m under the
 * weights w, in double: ||x||^2 - (x.m)^2 / ||m||^2 when x.m > 0 (matching.h). */
static double weighted_distance(int64_t np, const float *w, const float *x, const float *m)
{
  double xx = 0, xm = 0, mm = 0;
  for (int64_t q = 0; q < np; q++) {
    const double wq = w[q], a = x[q], b = m[q];
    xx += wq * a * a;
    xm += wq * a * b;
    mm += wq * b * b;
  }
  return xm > 0 && mm > 0 ? xx - xm * xm / mm : xx;
}

/* Off the grid: each image's match refined by a pattern search from its grid
 * orientation: at each step h the six rotations by +-h about the three axes (composed on
 * the right), the lowest distance kept when it beats the current; h from half the grid's
 * ball radius, halved local_refine - 1 times. The grid's spacing bounds a grid match's
 * error (median 5.2 degrees on the demo's final grid, ball radius 6.0); the data tell
 * orientations apart more finely. Measured on the demo's data (seed 1): 3 steps, one
 * pass each: median 2.1 degrees, 90th percentile 4.9 (grid: 5.2 / 8.1); two passes per
 * step 1.3 / 3.2 for a fifth more time per run. Each image's search is its own, so the
 * result is the same however the images are spread over ranks; candidates are sliced
 * ref_batch at a time. */
static int local_refine(spf_orienter *p, int64_t n_refs, spf_run_state *st)
{
  const int64_t n = p->n_images, np = p->np, nb = p->nb;
  double h = 0.5 * spf_orientation_ball_radius(n_refs);
  double *dist = malloc(sizeof(double) * (size_t)n), *dnew = malloc(sizeof(double) * (size_t)n);
  double *qnew = malloc(sizeof(double) * 4 * (size_t)n);
  int64_t *img = malloc(sizeof(int64_t) * (size_t)nb);
  unsigned char *active = malloc((size_t)n);
  int rc = dist && dnew && qnew && img && active ? SPF_OK : SPF_ERR_ALLOC;
  /* Every image's distance at its grid orientation, in this metric. */
  for (int64_t i0 = 0; !rc && i0 < n; i0 += nb) {
    const int64_t c = n - i0 < nb ? n - i0 : nb;
    for (int64_t k = 0; k < c; k++) spf_quat_to_matrix(st->orientations + 4 * (i0 + k), p->refm + 9 * k);
    rc = spf_slicer_slice(p->sl, c, p->refm, p->slices);
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
    for (int64_t k = 0; k < c; k++)
      dist[i0 + k] = weighted_distance(np, p->weight, p->images + (i0 + k) * np, p->slices + k * np);
  }
  for (int level = 0; !rc && level < p->o.local_refine; level++, h *= 0.5) {
    memset(active, 1, (size_t)n);
    for (int pass = 0; !rc && pass < LOCAL_PASSES; pass++) {
      memcpy(qnew, st->orientations, sizeof(double) * 4 * (size_t)n);
      memcpy(dnew, dist, sizeof(double) * (size_t)n);
      /* The candidates (image, move) in order, six moves per active image, sliced nb at a
       * time; an image's moves may straddle two batches: the lowest distance wins, ties
       * to the earlier move, whatever the batches. */
      int64_t i = 0;
      int mv = 0;
      while (!rc) {
        int64_t c = 0;
        while (i < n && c < nb) {
          if (!active[i]) {
            i++;
            continue;
          }
          const double half = 0.5 * (mv % 2 ? -h : h);
          double d[4] = {cos(half), 0, 0, 0};
          d[1 + mv / 2] = sin(half);
          spf_quat_multiply(st->orientations + 4 * i, d, p->cand_q + 4 * c);
          spf_quat_to_matrix(p->cand_q + 4 * c, p->refm + 9 * c);
          img[c++] = i;
          if (++mv == 6) mv = 0, i++;
        }
        if (c == 0) break;
        rc = spf_slicer_slice(p->sl, c, p->refm, p->slices);
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
        for (int64_t k = 0; k < c; k++)
          p->cand_d[k] = weighted_distance(np, p->weight, p->images + img[k] * np, p->slices + k * np);
        for (int64_t k = 0; k < c; k++)
          if (p->cand_d[k] < dnew[img[k]]) {
            dnew[img[k]] = p->cand_d[k];
            memcpy(qnew + 4 * img[k], p->cand_q + 4 * k, sizeof(double) * 4);
          }
      }
      /* Moved images search again from their new orientation; the others are done at
       * this step (their candidates would be the same). */
      for (int64_t j = 0; j < n; j++) {
        active[j] = active[j] && dnew[j] < dist[j];
        if (!active[j]) continue;
        dist[j] = dnew[j];
        memcpy(st->orientations + 4 * j, qnew + 4 * j, sizeof(double) * 4);
      }
    }
  }
  for (int64_t j = 0; !rc && j < n; j++) st->best_dist[j] = (float)dist[j];
  free(dist);
  free(dnew);
  free(qnew);
  free(img);
  free(active);
  return rc;
}

/* The Euclidean model: slice the model for every reference, keep each image's nearest
 * L (soft: K) and their distances; the views are soft in soft generations. *soft:
 * whether this generation's views are soft. */
static int euclidean_orient(spf_orienter *p, int gen, int64_t n_refs, const double *u_model,
                            spf_run_state *st, spf_generation_log *log, int *soft)
{
  const int64_t np = p->np, n = p->n_images;
  int rc = spf_slicer_set_volume(p->sl, u_model);
  /* Match on the pixels within this generation's resolution. */
  const double frac = p->res_frac = resolution_fraction(&p->o, gen);
  for (int64_t q = 0; q < np; q++) {
    const double *sq = p->s + 3 * q, s_abs = sqrt(sq[0] * sq[0] + sq[1] * sq[1] + sq[2] * sq[2]);
    p->weight[q] = s_abs <= frac * p->s_max * (1 + 1e-12) ? p->pix_w[q] : 0.0f;
  }
  spf_match_options mo;
  spf_match_default_options(&mo);
  mo.nthreads = p->nthreads;
  mo.pixel_weight = p->weight;
  *soft = soft_assignment(p, gen);
  mo.keep = *soft ? p->K : p->L;
  if (!rc) rc = matcher_for(p, &mo);
  const spf_match_job job = {.cm = p->cm, .sl = p->sl, .own = p->mt, .mo = &mo, .n_images = n, .np = np,
                             .n_refs = n_refs, .nb = p->nb, .store_bytes = (int64_t)p->o.match_store_mib << 20,
                             .images = p->images, .refq = p->refq, .refm = p->refm, .slices = p->slices,
                             .on_step = p->o.on_step, .step_ctx = p->o.step_ctx, .gen = gen};
  rc = spf_comm_agree(p->cm, rc);
  if (rc) return rc;
  rc = spf_slice_and_match(&job, mo.keep, p->vi, p->vd, p->second, log);
  if (rc) return rc;
  for (int64_t i = 0; i < n; i++) {
    p->best[i] = p->vi[i * mo.keep];
    st->best_dist[i] = p->vd[i * mo.keep];
  }
  rc = record_matches(p, n_refs, st, log);
  if (!rc) confidence_gaps(p, mo.keep, n_refs, st);
  /* On the final grid, as the driver's schedule defines it (reconstruct.c, reference_count). */
  const int final_grid = gen >= p->o.refs_generations || p->o.refs_start <= 0 || p->o.refs_start >= n_refs;
  p->refined = !rc && !*soft && p->o.local_refine > 0 && final_grid;
  if (p->refined) rc = local_refine(p, n_refs, st);
  if (*soft) soft_views(p);
  return rc;
}

/* The Poisson model: probabilities over every reference, the views added to the merger
 * (poisson_step.h). */
static int poisson_orient(spf_orienter *p, int gen, int64_t n_refs, const double *u_model,
                          spf_merger *mg, spf_run_state *st, spf_generation_log *log)
{
  int rc = spf_slicer_set_volume(p->sl, u_model);
  const spf_poisson_job job = {.cm = p->cm, .lk = p->lk, .sl = p->sl, .mg = mg, .o = &p->o, .gen = gen,
                               .n_images = p->n_images, .np = p->np, .n_refs = n_refs, .nb = p->nb,
                               .slots = p->slots, .store_bytes = (int64_t)p->o.match_store_mib << 20,
                               .refq = p->refq, .refm = p->refm, .slices = p->slices, .x = p->x, .b = p->b,
                               .w = p->w, .phi = st->fluence, .best = p->best, .best_dist = st->best_dist,
                               .gap = st->gap, .entropy = st->entropy, .fixed = p->o.fixed_views,
                               .track_k = st->posterior_k, .post_ref = st->posterior_ref, .post_p = st->posterior_p,
                               .near_limit = CONFIDENCE_RADII * spf_orientation_ball_radius(n_refs)};
  rc = spf_comm_agree(p->cm, rc);
  if (!rc) rc = spf_poisson_step(&job, log);
  if (rc) return rc;
  return record_matches(p, n_refs, st, log);
}

int spf_orienter_execute(spf_orienter *p, int gen, int64_t n_refs, const double *u_model,
                         spf_merger *mg, spf_run_state *st, spf_generation_log *log)
{
  if (!p || !mg || !st || !log) return SPF_ERR_NULL;
  const spf_reconstruct_options *o = &p->o;
  const int poisson = o->model == SPF_MODEL_POISSON;
  const double t0 = omp_get_wtime();
  int rc = SPF_OK, soft = 0;
  p->res_frac = 1;
  p->refined = 0;
  if (!u_model) {
    log->n_references = 0; /* generation 0: each image at its own orientation */
    log->fraction_changed = 1;
  } else if (poisson) {
    rc = poisson_orient(p, gen, n_refs, u_model, mg, st, log);
  } else {
    rc = euclidean_orient(p, gen, n_refs, u_model, st, log, &soft);
  }
  const double t1 = omp_get_wtime();
  log->t_slice_match = t1 - t0;
  if (rc) return rc;
  if (o->on_step) o->on_step(o->step_ctx, gen, "merge", 0, 1);
  if (!u_model || !poisson) {
    /* The views (the Poisson step has added its own): one per image at its match or its
     * own orientation, or the soft assignment's. */
    for (int64_t i = 0; !soft && i < p->n_images; i++)
      p->views[i] = (spf_view){u_model && !p->refined ? st->best[i] : -1 - (o->first_image + i), i, 1.0};
    const float *pixel_on = u_model && o->res_merge && p->res_frac < 1 ? p->weight : NULL;
    rc = spf_merge_views(mg, p->sl, p->cm, p->nthreads, soft ? p->n_images * p->K : p->n_images, p->views, n_refs,
                         o->first_image, st->orientations, p->np, p->images, pixel_on, p->slots, &p->sc, p->x, p->b,
                         p->w, &log->t_reduce);
    log->t_merge = omp_get_wtime() - t1;
  }
  return rc;
}

void spf_orienter_free(spf_orienter *p)
{
  if (!p) return;
  spf_slicer_free(p->sl);
  spf_matcher_free(p->mt);
  spf_likelihood_free(p->lk);
  spf_view_scales_free(&p->sc);
  free(p->x); free(p->b); free(p->w); free(p->refq); free(p->refm); free(p->slices); free(p->best); free(p->prev_q);
  free(p->pix_w); free(p->weight); free(p->mt_weight); free(p->views); free(p->vi); free(p->vd); free(p->second);
  free(p->cand_q); free(p->cand_d);
  free(p);
}
