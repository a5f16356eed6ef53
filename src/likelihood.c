/* Poisson likelihood orientation over sparse photons (see likelihood.h). */
#include "spinifel/likelihood.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"

/* References per run: the products keep JC accumulators per image in registers and
 * read JC consecutive log-model values per photon (the model is stored pixel-major
 * within each run of JC references). The photons' pixels are random, so a run should sit
 * in L2: at 9,896 pixels and 280 photons per image (likelihood_bench, same run, 2
 * threads) a pass took 2.00 s with JC 32 (1.27 MB per run), 1.42 s with 16, 1.13 s with 8
 * (0.32 MB), against 2.5-2.6 s for a dense sgemm of the same shape. */
#define JC 8
#define IMAGE_BLOCK 256

struct spf_likelihood_s {
  int64_t n_img, np, entries;
  int nthreads;
  double drop_mass;
  float *floor;      /* np: model values below count as these */
  int64_t *off;      /* n_img + 1: image k's entries are off[k] .. off[k+1] - 1 */
  int32_t *pix;      /* pixel of each entry, increasing within an image */
  float *cnt;        /* its count */
  double *photons;   /* n_img */
  /* the E-step */
  int pass;          /* 1, 2, 3 (4: done), 0 before begin */
  int64_t n_refs, next_ref;
  double beta;
  double *phi;       /* n_img */
  int64_t *best;
  double *best_L, *second_L, *sum_L, *Z, *entropy, *p_best, *exp_W;
  double *alt_L;     /* pass 2: the best L among references not near the best */
  spf_likelihood_near_fn near;
  void *near_ctx;
  /* a batch */
  int64_t cap;       /* references the buffers hold (a multiple of JC) */
  float *logw;       /* (cap / JC) runs x np pixels x JC */
  double *sum_w;     /* cap */
  double *L;         /* n_img x cap: L, then P in pass 3 */
  uint8_t *active;   /* n_img x (cap / JC): the run has a kept probability */
  double *scatter;   /* nthreads x np x JC */
  /* Pass 1's L and sum_w of every reference, for passes 2 and 3 (spf_likelihood_keep). */
  int64_t keep_bytes, kept_cap;
  int keeping;
  double *kept_L;    /* n_img x n_refs */
  double *kept_sw;   /* n_refs */
  /* Pass 3's K most probable references per image (spf_likelihood_track). */
  int track_k, top_k;
  int32_t *top_ref;  /* n_img x top_k, most probable first */
  float *top_p;
  double t_product, t_views;
};

void spf_likelihood_default_options(spf_likelihood_options *o)
{
  if (!o) return;
  o->model_floor = 0;
  o->pixel_floor = NULL;
  o->drop_mass = 1e-6;
  o->nthreads = 0;
}

void spf_likelihood_free(spf_likelihood *lk)
{
  if (!lk) return;
  free(lk->off); free(lk->pix); free(lk->cnt); free(lk->photons); free(lk->phi); free(lk->best);
  free(lk->best_L); free(lk->second_L); free(lk->sum_L); free(lk->Z); free(lk->entropy); free(lk->p_best);
  free(lk->exp_W); free(lk->alt_L); free(lk->floor); free(lk->logw); free(lk->sum_w); free(lk->L); free(lk->active); free(lk->scatter);
  free(lk->kept_L); free(lk->kept_sw); free(lk->top_ref); free(lk->top_p);
  free(lk);
}

int spf_likelihood_make(int64_t n_images, int64_t n_pixels, const float *counts, const spf_likelihood_options *opts,
                        spf_likelihood **out)
{
  if (!counts || !out) return SPF_ERR_NULL;
  *out = NULL;
  if (n_images < 1 || n_pixels < 1 || n_pixels > INT32_MAX) return SPF_ERR_SIZE;
  spf_likelihood_options o;
  if (opts) o = *opts;
  else spf_likelihood_default_options(&o);
  if (!(o.model_floor >= 0) || !isfinite(o.model_floor) || !(o.drop_mass >= 0 && o.drop_mass < 1))
    return SPF_ERR_OPTION;
  spf_likelihood *lk = calloc(1, sizeof *lk);
  if (!lk) return SPF_ERR_ALLOC;
  lk->n_img = n_images;
  lk->np = n_pixels;
  lk->nthreads = o.nthreads > 0 ? o.nthreads : omp_get_max_threads();
  lk->drop_mass = o.drop_mass;
  const size_t n = (size_t)n_images;
  lk->off = malloc(sizeof(int64_t) * (n + 1));
  lk->photons = malloc(sizeof(double) * n);
  lk->phi = malloc(sizeof(double) * n);
  lk->best = malloc(sizeof(int64_t) * n);
  double **per_image[] = {&lk->best_L, &lk->second_L, &lk->sum_L, &lk->Z, &lk->entropy, &lk->p_best, &lk->exp_W,
                          &lk->alt_L};
  int rc = lk->off && lk->photons && lk->phi && lk->best ? SPF_OK : SPF_ERR_ALLOC;
  for (size_t a = 0; a < sizeof per_image / sizeof *per_image; a++)
    if (!(*per_image[a] = malloc(sizeof(double) * n))) rc = SPF_ERR_ALLOC;
  /* Count the entries, check the counts. */
  int64_t entries = 0;
  double total = 0;
  for (int64_t k = 0; !rc && k < n_images; k++) {
    lk->off[k] = entries;
    double ph = 0;
    for (int64_t p = 0; p < n_pixels; p++) {
      const float c = counts[k * n_pixels + p];
      if (!(c >= 0) || !isfinite(c) || c != floorf(c) || c > 1e7f) {
        rc = SPF_ERR_DATA;
        break;
      }
      entries += c > 0;
      ph += c;
    }
    lk->photons[k] = ph;
    total += ph;
  }
  if (!rc) {
    lk->off[n_images] = entries;
    lk->entries = entries;
    lk->pix = malloc(sizeof(int32_t) * (size_t)(entries > 0 ? entries : 1));
    lk->cnt = malloc(sizeof(float) * (size_t)(entries > 0 ? entries : 1));
    if (!lk->pix || !lk->cnt) rc = SPF_ERR_ALLOC;
  }
  for (int64_t k = 0; !rc && k < n_images; k++) {
    int64_t e = lk->off[k];
    for (int64_t p = 0; p < n_pixels; p++) {
      const float c = counts[k * n_pixels + p];
      if (c > 0) {
        lk->pix[e] = (int32_t)p;
        lk->cnt[e++] = c;
      }
    }
  }
  /* The floor: a model of no photons at a pixel that saw one would be -infinity. */
  const double mean = total / ((double)n_images * (double)n_pixels);
  const double fl = o.model_floor > 0 ? o.model_floor : 1e-3 * (mean > 0 ? mean : 1.0);
  if (!rc && !(lk->floor = malloc(sizeof(float) * (size_t)n_pixels))) rc = SPF_ERR_ALLOC;
  for (int64_t p = 0; !rc && p < n_pixels; p++) {
    lk->floor[p] = o.pixel_floor ? o.pixel_floor[p] : (float)fl;
    if (!(lk->floor[p] > 0) || !isfinite(lk->floor[p])) rc = SPF_ERR_OPTION;
  }
  if (rc) {
    spf_likelihood_free(lk);
    return rc;
  }
  *out = lk;
  return SPF_OK;
}

double spf_likelihood_photons(const spf_likelihood *lk, int64_t k)
{
  return lk && k >= 0 && k < lk->n_img ? lk->photons[k] : NAN;
}

int64_t spf_likelihood_entries(const spf_likelihood *lk) { return lk ? lk->entries : 0; }

int spf_likelihood_begin(spf_likelihood *lk, int64_t n_refs, const double *phi)
{
  if (!lk) return SPF_ERR_NULL;
  if (n_refs < 1) return SPF_ERR_SIZE;
  for (int64_t k = 0; k < lk->n_img; k++) {
    const double f = phi ? phi[k] : 1.0;
    if (!(f >= 0) || !isfinite(f)) return SPF_ERR_DATA;
    lk->phi[k] = f;
    lk->best[k] = -1;
    lk->best_L[k] = lk->second_L[k] = lk->alt_L[k] = -INFINITY;
    lk->sum_L[k] = lk->Z[k] = lk->entropy[k] = lk->p_best[k] = lk->exp_W[k] = 0;
  }
  /* Keep pass 1's values when they fit: the products are most of a pass. */
  lk->keeping = n_refs <= (INT64_MAX / 16) / (lk->n_img + 1) &&
                (int64_t)sizeof(double) * (lk->n_img + 1) * n_refs <= lk->keep_bytes; /* no overflow: checked first */
  if (lk->keeping && lk->kept_cap < n_refs) {
    free(lk->kept_L);
    free(lk->kept_sw);
    lk->kept_L = malloc(sizeof(double) * (size_t)(lk->n_img * n_refs));
    lk->kept_sw = malloc(sizeof(double) * (size_t)n_refs);
    lk->kept_cap = lk->kept_L && lk->kept_sw ? n_refs : 0;
    if (!lk->kept_cap) {
      free(lk->kept_L);
      free(lk->kept_sw);
      lk->kept_L = lk->kept_sw = NULL;
      lk->keeping = 0; /* no room: compute the products again */
    }
  } else if (!lk->keeping) {
    free(lk->kept_L);
    free(lk->kept_sw);
    lk->kept_L = lk->kept_sw = NULL;
    lk->kept_cap = 0;
  }
  if (lk->top_k != lk->track_k) {
    free(lk->top_ref);
    free(lk->top_p);
    lk->top_ref = NULL;
    lk->top_p = NULL;
    lk->top_k = 0;
    if (lk->track_k > 0) {
      lk->top_ref = malloc(sizeof(int32_t) * (size_t)(lk->n_img * lk->track_k));
      lk->top_p = malloc(sizeof(float) * (size_t)(lk->n_img * lk->track_k));
      if (!lk->top_ref || !lk->top_p) {
        free(lk->top_ref);
        free(lk->top_p);
        lk->top_ref = NULL;
        lk->top_p = NULL;
        return SPF_ERR_ALLOC;
      }
      lk->top_k = lk->track_k;
    }
  }
  for (int64_t e = 0; e < lk->n_img * lk->top_k; e++) {
    lk->top_ref[e] = -1;
    lk->top_p[e] = 0;
  }
  lk->n_refs = n_refs;
  lk->next_ref = 0;
  lk->pass = 1;
  lk->beta = 0;
  return SPF_OK;
}

/* Buffers for a batch of count references. */
static int batch_buffers(spf_likelihood *lk, int64_t count)
{
  const int64_t np = lk->np, need = (count + JC - 1) / JC * JC;
  if (need > lk->cap) {
    free(lk->logw); free(lk->sum_w); free(lk->L); free(lk->active); free(lk->scatter);
    lk->logw = malloc(sizeof(float) * (size_t)(need * np));
    lk->sum_w = malloc(sizeof(double) * (size_t)need);
    lk->L = malloc(sizeof(double) * (size_t)(need * lk->n_img));
    lk->active = malloc((size_t)(need / JC * lk->n_img));
    lk->scatter = malloc(sizeof(double) * (size_t)(lk->nthreads * np * JC));
    lk->cap = lk->logw && lk->sum_w && lk->L && lk->active && lk->scatter ? need : 0;
    if (!lk->cap) return SPF_ERR_ALLOC;
  }
  return SPF_OK;
}

/* The log-model and sum_w of a batch (buffers for it allocated). */
static int load_batch(spf_likelihood *lk, int64_t count, const float *models)
{
  int rc = batch_buffers(lk, count);
  if (rc) return rc;
  const int64_t np = lk->np, need = (count + JC - 1) / JC * JC;
  const float *fl = lk->floor;
#pragma omp parallel for num_threads(lk->nthreads) schedule(static)
  for (int64_t j = 0; j < need; j++) {
    float *run = lk->logw + (j / JC) * np * JC + j % JC;
    double s = 0;
    if (j < count) {
      const float *m = models + j * np;
      for (int64_t p = 0; p < np; p++) {
        const float w = m[p] > fl[p] ? m[p] : fl[p];
        s += w;
        run[p * JC] = logf(w);
      }
    } else {
      for (int64_t p = 0; p < np; p++) run[p * JC] = 0;
    }
    lk->sum_w[j] = s;
  }
  return SPF_OK;
}

/* L[k][j] for the loaded batch: per image and run of JC references, the counts times
 * the log-model at the image's pixels, in pixel order. */
static void products(spf_likelihood *lk, int64_t count)
{
  const double t0 = omp_get_wtime();
  const int64_t np = lk->np, runs = (count + JC - 1) / JC, cap = lk->cap;
  const int64_t blocks = (lk->n_img + IMAGE_BLOCK - 1) / IMAGE_BLOCK;
#pragma omp parallel for num_threads(lk->nthreads) schedule(dynamic, 1)
  for (int64_t t = 0; t < runs * blocks; t++) {
    const int64_t r = t % runs, b = t / runs;
    const float *run = lk->logw + r * np * JC;
    const int64_t k_end = (b + 1) * IMAGE_BLOCK < lk->n_img ? (b + 1) * IMAGE_BLOCK : lk->n_img;
    for (int64_t k = b * IMAGE_BLOCK; k < k_end; k++) {
      double acc[JC];
      for (int jj = 0; jj < JC; jj++) acc[jj] = 0;
      for (int64_t e = lk->off[k]; e < lk->off[k + 1]; e++) {
        const float *row = run + (int64_t)lk->pix[e] * JC;
        const double c = lk->cnt[e];
        for (int jj = 0; jj < JC; jj++) acc[jj] += c * (double)row[jj];
      }
      double *out = lk->L + k * cap + r * JC;
      const double phi = lk->phi[k];
      for (int jj = 0; jj < JC; jj++) out[jj] = acc[jj] - phi * lk->sum_w[r * JC + jj];
    }
  }
  lk->t_product += omp_get_wtime() - t0;
}

/* Passes 2 and 3: the batch's L and sum_w, from pass 1's kept values or computed again. */
static int batch_L(spf_likelihood *lk, int64_t first_ref, int64_t count, const float *models)
{
  if (!lk->keeping) {
    int rc = load_batch(lk, count, models);
    if (!rc) products(lk, count);
    return rc;
  }
  int rc = batch_buffers(lk, count);
  if (rc) return rc;
  const int64_t R = lk->n_refs, cap = lk->cap;
  memcpy(lk->sum_w, lk->kept_sw + first_ref, sizeof(double) * (size_t)count);
#pragma omp parallel for num_threads(lk->nthreads) schedule(static)
  for (int64_t k = 0; k < lk->n_img; k++)
    memcpy(lk->L + k * cap, lk->kept_L + k * R + first_ref, sizeof(double) * (size_t)count);
  return SPF_OK;
}

static int check_batch(spf_likelihood *lk, int pass, int64_t first_ref, int64_t count, const float *models)
{
  if (!lk || !models) return SPF_ERR_NULL;
  if (lk->pass != pass) return SPF_ERR_ARG;
  if (first_ref != lk->next_ref || count < 1 || first_ref + count > lk->n_refs) return SPF_ERR_ARG;
  return SPF_OK;
}

static void batch_done(spf_likelihood *lk, int64_t count)
{
  lk->next_ref += count;
  if (lk->next_ref == lk->n_refs) {
    lk->pass++;
    lk->next_ref = 0;
  }
}

int spf_likelihood_scan(spf_likelihood *lk, int64_t first_ref, int64_t count, const float *models)
{
  int rc = check_batch(lk, 1, first_ref, count, models);
  if (!rc) rc = load_batch(lk, count, models);
  if (rc) return rc;
  products(lk, count);
  if (lk->keeping) memcpy(lk->kept_sw + first_ref, lk->sum_w, sizeof(double) * (size_t)count);
#pragma omp parallel for num_threads(lk->nthreads) schedule(static)
  for (int64_t k = 0; k < lk->n_img; k++) {
    const double *Lk = lk->L + k * lk->cap;
    if (lk->keeping) memcpy(lk->kept_L + k * lk->n_refs + first_ref, Lk, sizeof(double) * (size_t)count);
    double b = lk->best_L[k], s = lk->second_L[k], sum = lk->sum_L[k];
    int64_t bi = lk->best[k];
    for (int64_t j = 0; j < count; j++) {
      const double v = Lk[j];
      sum += v;
      /* Strictly greater: an equal L keeps the lower index (earlier batch or j). */
      if (v > b) {
        s = b;
        b = v;
        bi = first_ref + j;
      } else if (v > s) {
        s = v;
      }
    }
    lk->best_L[k] = b;
    lk->second_L[k] = s;
    lk->sum_L[k] = sum;
    lk->best[k] = bi;
  }
  batch_done(lk, count);
  return SPF_OK;
}

int spf_likelihood_best(const spf_likelihood *lk, int64_t *best, double *best_L, double *gap, double *mean_L)
{
  if (!lk) return SPF_ERR_NULL;
  if (lk->pass < 2) return SPF_ERR_ARG;
  for (int64_t k = 0; k < lk->n_img; k++) {
    if (best) best[k] = lk->best[k];
    if (best_L) best_L[k] = lk->best_L[k];
    if (gap) gap[k] = lk->n_refs > 1 ? lk->best_L[k] - lk->second_L[k] : INFINITY;
    if (mean_L) mean_L[k] = lk->sum_L[k] / (double)lk->n_refs;
  }
  return SPF_OK;
}

int spf_likelihood_normalise(spf_likelihood *lk, double beta, int64_t first_ref, int64_t count, const float *models)
{
  int rc = check_batch(lk, 2, first_ref, count, models);
  if (rc) return rc;
  if (!(beta > 0 && beta <= 1)) return SPF_ERR_ARG;
  if (first_ref == 0) lk->beta = beta;
  else if (beta != lk->beta) return SPF_ERR_ARG;
  if ((rc = batch_L(lk, first_ref, count, models))) return rc;
#pragma omp parallel for num_threads(lk->nthreads) schedule(static)
  for (int64_t k = 0; k < lk->n_img; k++) {
    const double *Lk = lk->L + k * lk->cap, mx = lk->best_L[k];
    double z = lk->Z[k], alt = lk->alt_L[k];
    for (int64_t j = 0; j < count; j++) z += exp(beta * (Lk[j] - mx));
    lk->Z[k] = z;
    /* The comparison first: the predicate runs only for a new candidate. */
    if (lk->near)
      for (int64_t j = 0; j < count; j++)
        if (Lk[j] > alt && !lk->near(lk->near_ctx, lk->best[k], first_ref + j)) alt = Lk[j];
    lk->alt_L[k] = alt;
  }
  batch_done(lk, count);
  return SPF_OK;
}

/* x y rounded on its own, then added: with -ffp-contract=fast the compiler fuses a
 * product into the sum (an FMA) in some iterations and not in others (the vectoriser's
 * remainder), by the position in the loop, so a sum over images split among plans would
 * round differently from one plan's. (The vectorised loop rounded its products; these
 * are the same bits but for an odd image count's last image, formerly fused.) */
static inline double rounded_product(double x, double y)
{
  volatile double t = x * y;
  return t;
}

/* Into a list of k (reference, probability), most probable first: after the entries of
 * equal probability (the references come in increasing order, so the lower index leads). */
static void top_insert(int32_t *ref, float *prob, int k, int32_t r, float p)
{
  if (!(p > prob[k - 1])) return;
  int at = k - 1;
  while (at > 0 && p > prob[at - 1]) {
    ref[at] = ref[at - 1];
    prob[at] = prob[at - 1];
    at--;
  }
  ref[at] = r;
  prob[at] = p;
}

/* Pass 3; onto: views and weights hold the sums over earlier images, which this
 * plan's images continue (the same additions, in the same order, as one plan of all). */
static int views_pass(spf_likelihood *lk, int64_t first_ref, int64_t count, const float *models, double *views,
                      double *weights, int onto)
{
  int rc = check_batch(lk, 3, first_ref, count, models);
  if (rc) return rc;
  if (!views || !weights) return SPF_ERR_NULL;
  if ((rc = batch_L(lk, first_ref, count, models))) return rc;
  const double t0 = omp_get_wtime();
  const int64_t np = lk->np, cap = lk->cap, runs = (count + JC - 1) / JC;
  const double drop = lk->drop_mass / (double)lk->n_refs, beta = lk->beta;
  /* Probabilities in place of L; a reference below its share of the dropped mass is
   * zero for the image. Then the image's statistics, in j order. */
#pragma omp parallel for num_threads(lk->nthreads) schedule(static)
  for (int64_t k = 0; k < lk->n_img; k++) {
    double *Pk = lk->L + k * cap;
    const double mx = lk->best_L[k], logz = log(lk->Z[k]);
    double h = lk->entropy[k], ew = lk->exp_W[k];
    for (int64_t r = 0; r < runs; r++) {
      int any = 0;
      for (int64_t j = r * JC; j < (r + 1) * JC; j++) {
        if (j >= count) {
          Pk[j] = 0;
          continue;
        }
        const double lp = beta * (Pk[j] - mx) - logz, p = exp(lp);
        if (first_ref + j == lk->best[k]) lk->p_best[k] = p;
        if (p < drop) {
          Pk[j] = 0;
          continue;
        }
        Pk[j] = p;
        if (lk->top_k) top_insert(lk->top_ref + k * lk->top_k, lk->top_p + k * lk->top_k, lk->top_k,
                                  (int32_t)(first_ref + j), (float)p);
        h -= p * lp;
        ew += p * lk->sum_w[j];
        any = 1;
      }
      lk->active[k * (cap / JC) + r] = (uint8_t)any;
    }
    lk->entropy[k] = h;
    lk->exp_W[k] = ew;
  }
  /* Weights: over images in order. */
#pragma omp parallel for num_threads(lk->nthreads) schedule(static)
  for (int64_t j = 0; j < count; j++) {
    double w = onto ? weights[j] : 0;
    for (int64_t k = 0; k < lk->n_img; k++) w += rounded_product(lk->L[k * cap + j], lk->phi[k]);
    weights[j] = w;
  }
  /* Views: per run of references (one thread's), every image's photons scattered with
   * its probabilities, images in order. */
#pragma omp parallel for num_threads(lk->nthreads) schedule(dynamic, 1)
  for (int64_t r = 0; r < runs; r++) {
    double *acc = lk->scatter + (int64_t)omp_get_thread_num() * np * JC;
    const int64_t jn = (r + 1) * JC < count ? JC : count - r * JC;
    memset(acc, 0, sizeof(double) * (size_t)(np * JC));
    for (int64_t jj = 0; onto && jj < jn; jj++) {
      const double *v = views + (r * JC + jj) * np;
      for (int64_t p = 0; p < np; p++) acc[p * JC + jj] = v[p];
    }
    for (int64_t k = 0; k < lk->n_img; k++) {
      if (!lk->active[k * (cap / JC) + r]) continue;
      const double *Pk = lk->L + k * cap + r * JC;
      for (int64_t e = lk->off[k]; e < lk->off[k + 1]; e++) {
        double *row = acc + (int64_t)lk->pix[e] * JC;
        const double c = lk->cnt[e];
        for (int jj = 0; jj < JC; jj++) row[jj] += c * Pk[jj];
      }
    }
    for (int64_t jj = 0; jj < jn; jj++) {
      double *v = views + (r * JC + jj) * np;
      for (int64_t p = 0; p < np; p++) v[p] = acc[p * JC + jj];
    }
  }
  lk->t_views += omp_get_wtime() - t0;
  batch_done(lk, count);
  return SPF_OK;
}

int spf_likelihood_views(spf_likelihood *lk, int64_t first_ref, int64_t count, const float *models, double *views,
                         double *weights)
{
  return views_pass(lk, first_ref, count, models, views, weights, 0);
}

int spf_likelihood_views_onto(spf_likelihood *lk, int64_t first_ref, int64_t count, const float *models,
                              double *views, double *weights)
{
  return views_pass(lk, first_ref, count, models, views, weights, 1);
}

int spf_likelihood_image_stats(const spf_likelihood *lk, double *entropy, double *p_best, double *fluence)
{
  if (!lk) return SPF_ERR_NULL;
  if (lk->pass < 4) return SPF_ERR_ARG;
  for (int64_t k = 0; k < lk->n_img; k++) {
    if (entropy) entropy[k] = lk->entropy[k];
    if (p_best) p_best[k] = lk->p_best[k];
    if (fluence) fluence[k] = lk->exp_W[k] > 0 ? lk->photons[k] / lk->exp_W[k] : lk->phi[k];
  }
  return SPF_OK;
}

int spf_likelihood_set_near(spf_likelihood *lk, spf_likelihood_near_fn near, void *ctx)
{
  if (!lk) return SPF_ERR_NULL;
  if (lk->pass == 2 && lk->next_ref > 0) return SPF_ERR_ARG; /* not within pass 2 */
  lk->near = near;
  lk->near_ctx = ctx;
  return SPF_OK;
}

int spf_likelihood_distant_gap(const spf_likelihood *lk, double *gap)
{
  if (!lk || !gap) return SPF_ERR_NULL;
  if (lk->pass < 3 || !lk->near) return SPF_ERR_ARG;
  for (int64_t k = 0; k < lk->n_img; k++) gap[k] = lk->best_L[k] - lk->alt_L[k];
  return SPF_OK;
}

int spf_likelihood_track(spf_likelihood *lk, int k)
{
  if (!lk) return SPF_ERR_NULL;
  if (k < 0 || k > SPF_LIKELIHOOD_TRACK_MAX) return SPF_ERR_ARG;
  lk->track_k = k;
  return SPF_OK;
}

int spf_likelihood_top(const spf_likelihood *lk, int32_t *refs, float *probs)
{
  if (!lk || !refs || !probs) return SPF_ERR_NULL;
  if (lk->pass < 4 || lk->top_k < 1) return SPF_ERR_ARG;
  memcpy(refs, lk->top_ref, sizeof(int32_t) * (size_t)(lk->n_img * lk->top_k));
  memcpy(probs, lk->top_p, sizeof(float) * (size_t)(lk->n_img * lk->top_k));
  return SPF_OK;
}

int spf_likelihood_keep(spf_likelihood *lk, int64_t bytes)
{
  if (!lk) return SPF_ERR_NULL;
  if (bytes < 0) return SPF_ERR_ARG;
  lk->keep_bytes = bytes;
  return SPF_OK;
}

void spf_likelihood_timing(const spf_likelihood *lk, double *product_seconds, double *views_seconds)
{
  if (!lk) return;
  if (product_seconds) *product_seconds = lk->t_product;
  if (views_seconds) *views_seconds = lk->t_views;
}
