/* The M-TIP outer loop (see reconstruct.h). */
#include "spinifel/reconstruct.h"

#include <float.h>
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

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

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

/* What a block of images carries round the ring, in one buffer: a header {images,
 * images included}, each image's L nearest (indices, distances), its second-best
 * distance, then (but on the way home) the images themselves. */
typedef struct {
  int64_t n;
  int64_t *idx;
  float *dist, *second, *images;
} block_view;

static int64_t block_bytes(int64_t n, int L, int64_t np, int with_images)
{
  return 2 * (int64_t)sizeof(int64_t) + n * L * (int64_t)(sizeof(int64_t) + sizeof(float)) +
         n * (int64_t)sizeof(float) + (with_images ? n * np * (int64_t)sizeof(float) : 0);
}

static block_view block_open(void *buf, int L)
{
  int64_t *h = buf;
  block_view v = {.n = h[0], .idx = h + 2};
  v.dist = (float *)(v.idx + v.n * L);
  v.second = v.dist + v.n * L;
  v.images = h[1] ? v.second + v.n : NULL;
  return v;
}

/* The work of slice+match of one generation. */
typedef struct {
  const spf_comm *cm;
  spf_slicer *sl;
  spf_matcher *own;             /* the matcher of this rank's images, reset */
  const spf_match_options *mo;  /* for the visiting blocks' matchers */
  int64_t n_images, np, n_refs, nb, store_bytes;
  const float *images;
  double *refq, *refm;          /* nb quaternions and matrices */
  float *slices;                /* nb model images */
  const spf_reconstruct_options *o;
  int gen;
} match_job;

/* Slice and match over the ranks with the references split (the faster of issue 6's
 * two distributions, measured by bench/match_split_bench): rank r slices only its
 * contiguous share of the grid, so no two ranks compute the same model image, and the
 * image blocks go round a ring, each with its lists of nearest references (which seed
 * the visited rank's matcher), P shifts in all (the last carries only the lists home). The share's model images are kept for the
 * visiting blocks when they fit in store_bytes, else sliced again for each. One process
 * is the same loop with one block and no shift. Out, per own image: the L nearest (idx,
 * dist, n_images * L) and the second-best distance; equal to one process's to the bit,
 * as every distance is (per image and model, whatever the batch) and ties go to the
 * lower index. */
static int slice_and_match(const match_job *j, int L, int64_t *idx, float *dist, float *second,
                           spf_generation_log *log)
{
  const spf_comm *cm = j->cm;
  const int P = cm && cm->active ? cm->size : 1, rank = cm && cm->active ? cm->rank : 0;
  const int64_t np = j->np, nb = j->nb;
  int64_t rf, rcount;
  spf_share(j->n_refs, rank, P, &rf, &rcount);
  float *store = P > 1 && rcount * np * (int64_t)sizeof(float) <= j->store_bytes
                     ? malloc(sizeof(float) * (size_t)(rcount > 0 ? rcount * np : 1))
                     : NULL;
  /* One process matches its images where they are: the block carries only the lists. */
  int64_t cap[2] = {block_bytes(j->n_images, L, np, P > 1), 0}, got = 0;
  void *buf[2] = {malloc((size_t)cap[0]), NULL};
  int rc = buf[0] ? SPF_OK : SPF_ERR_ALLOC;
  if (!rc) {
    int64_t *h = buf[0];
    h[0] = j->n_images;
    h[1] = P > 1;
    block_view v = block_open(buf[0], L);
    for (int64_t k = 0; k < j->n_images * L; k++) {
      v.idx[k] = -1;
      v.dist[k] = FLT_MAX;
    }
    for (int64_t i = 0; i < j->n_images; i++) v.second[i] = FLT_MAX;
    if (v.images) memcpy(v.images, j->images, sizeof(float) * (size_t)(j->n_images * np));
  }
  for (int t = 0; t < P; t++) {
    rc = spf_comm_agree(cm, rc);
    if (rc) break;
    block_view v = block_open(buf[0], L);
    spf_matcher *m = j->own;
    /* A visiting block's matcher starts from the lists it brings. */
    if (t > 0) rc = spf_matcher_make(v.n, np, v.images, j->mo, &m);
    if (t > 0 && !rc) rc = spf_matcher_seed(m, v.idx, v.dist, v.second);
    for (int64_t f = 0; !rc && f < rcount; f += nb) {
      const int64_t c = rcount - f < nb ? rcount - f : nb;
      float *models = store ? store + f * np : j->slices;
      if (!store || t == 0) {
        const double ts = omp_get_wtime();
        rc = spf_orientation_grid(j->n_refs, rf + f, c, j->refq);
        for (int64_t k = 0; !rc && k < c; k++) spf_quat_to_matrix(j->refq + 4 * k, j->refm + 9 * k);
        if (!rc) rc = spf_slicer_slice(j->sl, c, j->refm, models);
        log->t_slice += omp_get_wtime() - ts;
      }
      if (!rc) rc = spf_matcher_add_batch(m, rf + f, c, models);
      if (j->o->on_step) j->o->on_step(j->o->step_ctx, j->gen, "slice+match", t * rcount + f + c, P * rcount);
    }
    if (!rc) {
      /* The lists now cover this rank's share of the references too. */
      spf_matcher_nearest(m, v.idx, v.dist);
      spf_matcher_results(m, NULL, NULL, v.second);
    }
    log->rechecks += spf_matcher_rechecks(m);
    if (m != j->own) spf_matcher_free(m);
    rc = spf_comm_agree(cm, rc);
    if (rc || P == 1) break;
    /* Pass the block on; on the last shift it goes home without its images. */
    int64_t *h = buf[0];
    if (t == P - 1) h[1] = 0;
    const double tr = omp_get_wtime();
    rc = spf_comm_ring_shift(cm, buf[0], block_bytes(v.n, L, np, (int)h[1]), &buf[1], &cap[1], &got);
    log->t_ring += omp_get_wtime() - tr;
    void *sw = buf[0];
    buf[0] = buf[1];
    buf[1] = sw;
    const int64_t sc = cap[0];
    cap[0] = cap[1];
    cap[1] = sc;
  }
  if (!rc) {
    block_view v = block_open(buf[0], L);
    if (v.n != j->n_images) rc = SPF_ERR_MPI; /* a ring that did not close */
    if (!rc) {
      memcpy(idx, v.idx, sizeof(int64_t) * (size_t)(v.n * L));
      memcpy(dist, v.dist, sizeof(float) * (size_t)(v.n * L));
      memcpy(second, v.second, sizeof(float) * (size_t)v.n);
    }
  }
  free(store);
  free(buf[0]);
  free(buf[1]);
  return spf_comm_agree(cm, rc);
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

/* One image at one orientation with a weight: key >= 0 is a reference of the grid,
 * key < 0 the image's own orientation (generation 0). */
typedef struct {
  int64_t key, image;
  double w;
} view_t;

static int cmp_view(const void *a, const void *b)
{
  const view_t *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->image < y->image ? -1 : x->image > y->image;
}

static int cmp_int64(const void *a, const void *b)
{
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* A distinct orientation's part of the sums from one rank: [key, position in the global
 * list of keys, sum w (fixed), quaternion (4 doubles' bits), sum w d_p (fixed, np)]. */
#define PART_HEAD 7

static int cmp_part(const void *a, const void *b)
{
  return cmp_int64((const int64_t *)a + 1, (const int64_t *)b + 1);
}

/* The merge's fixed-point scales: per pixel for sum w d (bounded by n_total max |d_p|, as
 * the weights of an image sum to 1), and for sum w. */
typedef struct {
  double *pix_scale; /* np: 2^-e_p */
  double *pix_unit;  /* np: 2^e_p */
  double w_scale, w_unit;
} merge_scales;

/* Add the views (one image at one orientation with a weight) to the merger's sums, the
 * same bits on any number of ranks. The least-squares misfit of all images that share
 * an orientation, sum_i w_i ||A u - d_i||^2, equals W ||A u - dbar||^2 + const with
 * W = sum w_i and dbar the weighted mean image: one slice per distinct orientation
 * carries the same information as every image, so the NUFFTs see at most
 * min(images, references) slices whatever the soft assignment's spread.
 *  1. Each rank sums its views per orientation in fixed point (W and W dbar).
 *  2. The distinct orientations of all ranks, sorted, are cut into batches of `slots`,
 *     the batches shared out over the ranks; each rank's parts go to the batches' owners
 *     (one personalised exchange), which add them as integers: every orientation's W and
 *     dbar are then the same bits whichever ranks held its images.
 *  3. Each owner adds its batches, one merger call per batch, whose sums the merger keeps
 *     in fixed point (spf_merger_exact_sums); the caller adds the ranks' integer sums.
 * So every NUFFT sees the same points in the same batches as in one process, and every
 * sum is exact: nothing depends on the ranks but the time. Views have global keys:
 * >= 0 a reference of the grid, < 0 the own orientation of image -1 - key (generation 0,
 * whose quaternion travels with the part). */
static int merge_views(spf_merger *mg, const spf_slicer *sl, const spf_comm *cm, int nthreads, int64_t n_views,
                       view_t *v, int64_t n_refs, int64_t first_image, const double *own_quats, int64_t np,
                       const float *images, const float *pixel_on, int64_t slots, const merge_scales *sc, double *x,
                       double *b, double *w, double *t_comm)
{
  const int P = cm && cm->active ? cm->size : 1;
  spf_merger_clear(mg);
  qsort(v, (size_t)n_views, sizeof *v, cmp_view);
  /* 1. This rank's distinct orientations with any weight (first view of each: start). */
  int64_t nk = 0, *start = malloc(sizeof(int64_t) * (size_t)(n_views + 1));
  for (int64_t g = 0; start && g < n_views;) {
    int64_t e = g, any = 0;
    for (; e < n_views && v[e].key == v[g].key; e++) any |= v[e].w > 0;
    if (any) start[nk++] = g;
    g = e;
  }
  const int64_t rec = PART_HEAD + np;
  int64_t *part = malloc(sizeof(int64_t) * (size_t)(nk * rec + 1)), *keys = malloc(sizeof(int64_t) * (size_t)(nk + 1));
  int64_t *send_bytes = calloc((size_t)P, sizeof(int64_t)), *gkeys = NULL, *recv = NULL, nrecv = 0, ng = 0;
  int rc = start && part && keys && send_bytes ? SPF_OK : SPF_ERR_ALLOC;
  /* Integer sums: each orientation's are the same bits whichever thread adds them. */
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 16) if (!rc)
  for (int64_t k = 0; k < nk; k++) {
    const int64_t g = start[k];
    int64_t *r = part + k * rec, *S = r + PART_HEAD, W = 0;
    for (int64_t p = 0; p < np; p++) S[p] = 0;
    for (int64_t t = g; t < n_views && v[t].key == v[g].key; t++) {
      if (!(v[t].w > 0)) continue;
      const float *img = images + v[t].image * np;
      const double wt = v[t].w;
      for (int64_t p = 0; p < np; p++) S[p] += spf_to_fixed(wt * img[p], sc->pix_scale[p]);
      W += spf_to_fixed(wt, sc->w_scale);
    }
    double q[4] = {0, 0, 0, 0};
    if (v[g].key < 0) memcpy(q, own_quats + 4 * (-1 - v[g].key - first_image), sizeof q);
    r[0] = keys[k] = v[g].key;
    r[2] = W;
    memcpy(r + 3, q, sizeof q);
  }
  free(start);
  /* 2. The global list of orientations, its batches and their owners. */
  const double t0 = omp_get_wtime();
  rc = spf_comm_agree(cm, rc);
  if (!rc) rc = spf_comm_allgather(cm, keys, nk, (int64_t)sizeof(int64_t), (void **)&gkeys, &ng);
  int64_t nu = 0;
  if (!rc) {
    qsort(gkeys, (size_t)ng, sizeof(int64_t), cmp_int64);
    for (int64_t i = 0; i < ng; i++)
      if (i == 0 || gkeys[i] != gkeys[nu - 1]) gkeys[nu++] = gkeys[i];
  }
  const int64_t n_batches = (nu + slots - 1) / slots;
  for (int64_t k = 0; !rc && k < nk; k++) {
    int64_t *r = part + k * rec;
    const int64_t *at = bsearch(&r[0], gkeys, (size_t)nu, sizeof(int64_t), cmp_int64);
    r[1] = at - gkeys;
    /* Batches are shared contiguously, so the parts (sorted by key) go out in rank order. */
    int owner = 0;
    for (int o = 1; o < P; o++) {
      int64_t f, c;
      spf_share(n_batches, o, P, &f, &c);
      if (r[1] / slots >= f) owner = o;
    }
    send_bytes[owner] += rec * (int64_t)sizeof(int64_t);
  }
  if (!rc) {
    if (P > 1) {
      int64_t bytes = 0;
      rc = spf_comm_alltoallv(cm, part, send_bytes, (void **)&recv, &bytes);
      nrecv = bytes / (rec * (int64_t)sizeof(int64_t));
    } else {
      recv = part; /* one process keeps its parts */
      part = NULL;
      nrecv = nk;
    }
  }
  rc = spf_comm_agree(cm, rc);
  *t_comm += omp_get_wtime() - t0;
  /* 3. This rank's batches, the parts of each orientation added as integers. */
  if (!rc) qsort(recv, (size_t)nrecv, sizeof(int64_t) * (size_t)rec, cmp_part);
  const int64_t n = slots * np;
  int64_t used = 0;
  int64_t *S = malloc(sizeof(int64_t) * (size_t)np);
  if (!S) rc = SPF_ERR_ALLOC;
  for (int64_t g = 0; !rc && g < nrecv;) {
    const int64_t *r = recv + g * rec, pos = r[1];
    int64_t e = g, W = 0;
    for (int64_t p = 0; p < np; p++) S[p] = 0;
    for (; e < nrecv && recv[e * rec + 1] == pos; e++) {
      const int64_t *re = recv + e * rec;
      W += re[2];
      for (int64_t p = 0; p < np; p++) S[p] += re[PART_HEAD + p];
    }
    if (W > 0) {
      const double Wd = (double)W * sc->w_unit;
      double q[4], rot[9], *avg = b + used * np;
      if (r[0] >= 0) spf_orientation_grid(n_refs, r[0], 1, q);
      else memcpy(q, r + 3, sizeof q);
      spf_quat_to_matrix(q, rot);
      spf_slicer_points(sl, rot, x + used * np, x + n + used * np, x + 2 * n + used * np);
      for (int64_t p = 0; p < np; p++) {
        avg[p] = (double)S[p] * sc->pix_unit[p] / Wd;
        w[used * np + p] = pixel_on && !pixel_on[p] ? 0.0 : Wd;
      }
      used++;
    }
    g = e;
    /* A batch ends at a multiple of slots in the global list, or with the parts. */
    if (used > 0 && (g >= nrecv || recv[g * rec + 1] / slots != pos / slots)) {
      /* The coordinate arrays are at stride n; close the gaps of a partial batch. */
      const int64_t nup = used * np;
      if (used < slots) {
        memmove(x + nup, x + n, sizeof(double) * (size_t)nup);
        memmove(x + 2 * nup, x + 2 * n, sizeof(double) * (size_t)nup);
      }
      rc = spf_merger_add_points(mg, nup, x, x + nup, x + 2 * nup, b, w);
      used = 0;
    }
  }
  free(S);
  free(part);
  free(keys);
  free(send_bytes);
  free(gkeys);
  free(recv);
  return spf_comm_agree(cm, rc);
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

/* The Poisson (EMC) step of a generation: probabilities over every reference, each
 * reference's view of the data added to the merger. Three passes over the references
 * (likelihood.h), whose model images are kept between passes when they fit in
 * store_bytes, else sliced again. Over MPI each rank holds a share of the images (the
 * shares consecutive in rank order, as spf_share gives) and slices every reference;
 * passes 1 and 2 are per image; what sums or ranks over images (the annealing factor's
 * medians, the views, the fluence's mean, the log's figures) is taken over all images
 * in their order, so the step is the same bits on any number of ranks as in one
 * process. */
typedef struct {
  const spf_comm *cm;
  spf_likelihood *lk;
  spf_slicer *sl;
  spf_merger *mg;
  const spf_reconstruct_options *o;
  int gen;
  int64_t n_images, np, n_refs, nb, slots, store_bytes;
  double *refq, *refm;   /* nb quaternions and matrices */
  float *slices;         /* nb model images */
  double *x, *b, *w;     /* merge points of `slots` orientations: coordinates, values, weights */
  double *phi;           /* n_images: fluence, updated when o->update_fluence */
  int64_t *best;         /* out, n_images */
  float *best_dist, *gap, *entropy; /* out, n_images */
} poisson_job;

/* Model images of references f .. f + c - 1: from the store once filled, else sliced. */
static int poisson_models(const poisson_job *j, float *store, int stored, int64_t f, int64_t c, const float **models,
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

static void poisson_progress(const poisson_job *j, int64_t *done, int64_t c)
{
  *done += c;
  if (j->o->on_step) j->o->on_step(j->o->step_ctx, j->gen, "slice+match", *done, 3 * j->n_refs);
}

/* Add references f .. f + c - 1 (views summed over every image, and their weights) to
 * the merger: each reference with weight at its orientation, its view over its weight. */
static int merge_poisson_batch(const poisson_job *j, int64_t f, int64_t c, const double *views, const double *wt,
                               double *tmerge)
{
  const int64_t np = j->np, n = j->slots * np;
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

/* References in batch b of pb over R. */
static int64_t batch_refs(int64_t R, int64_t pb, int64_t b)
{
  return R - b * pb < pb ? R - b * pb : pb;
}

/* Pass 3, the views merged in batches of pb <= slots references. A view sums over all
 * images in their order, so over P ranks a batch's sums pass along the ranks as a chain:
 * rank 0 starts them from its images, each next rank continues them with its own
 * (spf_likelihood_views_onto) and the last completes them: the same additions in the
 * same order as one process, hence the same bits (fixed-point sums of the ranks' parts
 * would not be: rounding each rank's part is not rounding the whole). At step t rank r
 * works on batch t - r, a pipeline that fills in P - 1 steps. The last rank sends each
 * completed batch b to rank b mod P, which holds it until every rank holds one (every P
 * batches); then all merge at once, so the type-1 sums are spread over the ranks and none
 * waits on another's. Each rank's merger keeps only its batches, in fixed point: their
 * sum over the ranks (the caller's spf_merger_fixed_sums reduction) counts each view once
 * and is exact. One process runs the same loop, merging every batch as it completes. */
static int poisson_views(const poisson_job *j, float *store, spf_generation_log *log, int64_t *done,
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

/* The annealing factor from every image's spread of log L (best - mean) and photons
 * (fig, n x 3: spread, photons, fluence): doubling every beta_period generations from
 * its start, at least beta_min_spread over the median spread, at most beta_max. */
static double poisson_beta(const poisson_job *j, int64_t n, const double *fig, double *tmp, spf_generation_log *log)
{
  for (int64_t k = 0; k < n; k++) tmp[k] = fig[3 * k];
  qsort(tmp, (size_t)n, sizeof(double), cmp_double);
  log->median_spread = tmp[n / 2];
  for (int64_t k = 0; k < n; k++) tmp[k] = fig[3 * k + 1];
  qsort(tmp, (size_t)n, sizeof(double), cmp_double);
  const double b0 = j->o->beta_start > 0 ? j->o->beta_start : exp(-6.5 * pow(tmp[n / 2] * 1e-5, 0.15));
  double beta = b0 * pow(2.0, (double)((j->gen - 1) / (j->o->beta_period > 0 ? j->o->beta_period : 1)));
  if (log->median_spread > 0) beta = fmax(beta, j->o->beta_min_spread / log->median_spread);
  beta = fmin(j->o->beta_max > 0 ? fmin(1, j->o->beta_max) : 1, beta);
  return beta > 0 ? beta : 1e-12;
}

static int poisson_step(const poisson_job *j, spf_generation_log *log)
{
  const spf_comm *cm = j->cm;
  const int64_t np = j->np, R = j->n_refs, N = j->n_images;
  float *store = R * np * (int64_t)sizeof(float) <= j->store_bytes ? malloc(sizeof(float) * (size_t)(R * np)) : NULL;
  double *bestL = malloc(sizeof(double) * (size_t)N), *gap = malloc(sizeof(double) * (size_t)N);
  double *meanL = malloc(sizeof(double) * (size_t)N), *ent = malloc(sizeof(double) * (size_t)N);
  double *fl = malloc(sizeof(double) * (size_t)N), *fig = malloc(sizeof(double) * 3 * (size_t)N);
  /* Per-image figures of all ranks' images, in the images' order: n_all x 3. */
  double *all = NULL, *tmp = NULL;
  int64_t n_all = 0, done = 0;
  int rc = bestL && gap && meanL && ent && fl && fig ? SPF_OK : SPF_ERR_ALLOC;
  const float *models = NULL;
  /* 1. Each image's best reference and the spread of its log-likelihood. */
  double tp0, tv0, tmerge = 0;
  spf_likelihood_timing(j->lk, &tp0, &tv0);
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
  const double beta = rc ? 1 : poisson_beta(j, n_all, all, tmp, log);
  for (int64_t f = 0; !rc && f < R; f += j->nb) {
    const int64_t c = R - f < j->nb ? R - f : j->nb;
    rc = poisson_models(j, store, 1, f, c, &models, log);
    if (!rc) rc = spf_likelihood_normalise(j->lk, beta, f, c, models);
    poisson_progress(j, &done, c);
  }
  /* 3. The views. Exact sums with bounds over every call (and every rank): sum w <= np
   * sum phi, sum w |b| <= photons, sum w b^2 <= photons max K/phi. */
  double photons = 0, kmax = 0, phisum = 0;
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
  for (int64_t k = 0; !rc && k < N; k++) {
    j->best_dist[k] = (float)-bestL[k];
    j->gap[k] = (float)gap[k];
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
  free(store); free(bestL); free(gap); free(meanL); free(ent); free(fl); free(fig); free(all); free(tmp);
  return spf_comm_agree(cm, rc);
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
  view_t *views = malloc(sizeof(view_t) * (size_t)(n_images * K));
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
  double *dmax = malloc(sizeof(double) * (size_t)np);
  int64_t *pix_fixed = malloc(sizeof(int64_t) * (size_t)np);
  merge_scales msc = {.pix_scale = malloc(sizeof(double) * (size_t)np), .pix_unit = malloc(sizeof(double) * (size_t)np)};
  if (!dmax || !pix_fixed || !msc.pix_scale || !msc.pix_unit) rc = SPF_ERR_ALLOC;
  rc = spf_comm_agree(cm, rc);
  for (int64_t p = 0; !rc && p < np; p++) {
    dmax[p] = 0;
    for (int64_t i = 0; i < n_images; i++) {
      const double d = images[i * np + p];
      if (!isfinite(d)) rc = SPF_ERR_DATA; /* would make the fixed-point sums meaningless */
      dmax[p] = fmax(dmax[p], fabs(d));
    }
  }
  rc = spf_comm_agree(cm, rc);
  if (!rc) rc = spf_comm_max_double(cm, dmax, np);
  if (!rc) rc = spf_comm_sum_int64(cm, &n_total, 1);
  double sum_dmax = 0, sum_dmax2 = 0;
  for (int64_t p = 0; !rc && p < np; p++) {
    /* Sums over images of w d_p, with weights per image summing to 1: below n_total max. */
    const int e = spf_fixed_exponent(2.0 * (double)n_total * dmax[p]);
    msc.pix_scale[p] = ldexp(1.0, -e);
    msc.pix_unit[p] = ldexp(1.0, e);
    pix_fixed[p] = 0;
    if (o.pixel_weighting == 1 || model == SPF_MODEL_POISSON)
      for (int64_t i = 0; i < n_images; i++) pix_fixed[p] += spf_to_fixed(images[i * np + p], msc.pix_scale[p]);
    sum_dmax += dmax[p];
    sum_dmax2 += dmax[p] * dmax[p];
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
  {
    const int e = spf_fixed_exponent(2.0 * (double)n_total);
    msc.w_scale = ldexp(1.0, -e);
    msc.w_unit = ldexp(1.0, e);
  }
  /* The merge's sums: sum w <= n_total np, sum w |b| <= n_total sum_p max |d_p|, and
   * sum w b^2 <= n_total sum_p max d_p^2 (a mean image is no larger than its images). */
  if (!rc)
    rc = spf_merger_exact_sums(mg, 2.0 * (double)n_total * (double)np, 2.0 * (double)n_total * fmax(sum_dmax, 1e-300),
                               2.0 * (double)n_total * fmax(sum_dmax2, 1e-300));
  free(dmax);
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
      const poisson_job pj = {.cm = cm, .lk = lk, .sl = sl, .mg = mg, .o = &o, .gen = gen, .n_images = n_images, .np = np,
                              .n_refs = n_refs, .nb = nb, .slots = slots,
                              .store_bytes = (int64_t)o.match_store_mib << 20, .refq = refq, .refm = refm,
                              .slices = slices, .x = x, .b = b, .w = mw, .phi = out->fluence, .best = best,
                              .best_dist = bd, .gap = out->gap, .entropy = out->entropy};
      rc = spf_comm_agree(cm, rc);
      if (!rc) rc = poisson_step(&pj, &log);
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
      const match_job job = {.cm = cm, .sl = sl, .own = mt, .mo = &mo, .n_images = n_images, .np = np,
                             .n_refs = n_refs, .nb = nb, .store_bytes = (int64_t)o.match_store_mib << 20,
                             .images = images, .refq = refq, .refm = refm, .slices = slices, .o = &o, .gen = gen};
      rc = spf_comm_agree(cm, rc);
      if (rc) break;
      rc = slice_and_match(&job, mo.keep, soft ? vi : best, soft ? vd : bd, sd, &log);
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
            views[v] = (view_t){vi[v], i, vi[v] >= 0 ? exp(-((double)vd[v] - d0) / T) : 0.0};
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
        views[i] = (view_t){have_model ? prev[i] : -1 - (o.first_image + i), i, 1.0};
    /* The Poisson step has added its views already. */
    if (!rc && !(have_model && model == SPF_MODEL_POISSON))
      rc = merge_views(mg, sl, cm, nthreads, merged_soft ? n_images * K : n_images, views, n_refs, o.first_image,
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
  free(best); free(sd); free(st); free(cyc); free(msc.pix_scale); free(msc.pix_unit); free(weight); free(pix_w); free(mt_weight);
  free(mw); free(views); free(vi); free(vd);
  free(rho_prev);
  return rc;
}
