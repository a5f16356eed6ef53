/* Orientation matching by sgemm with a running best (see matching.h). */
#include "spinifel/matching.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"

#define CROSS_MAX_FLOATS ((int64_t)16 << 20) /* 64 MiB of image-by-model products */

/* A model's norms: ||m||, ||m^-|| (its negative entries), 1 / ||m||^2 (0 for m = 0). */
typedef struct {
  double root, neg, inv2;
} model_norms;

struct spf_matcher_s {
  int64_t n_img, n_pix, block;
  int scale, nthreads;
  float *data;       /* sqrt(w) d */
  float *sqrt_w;     /* NULL when unweighted */
  double *dnorm2;    /* ||sqrt(w) d||^2 per image */
  double *dneg;      /* ||(sqrt(w) d)^-|| per image, the norm of its negative entries */
  double data_mean_norm2;
  int64_t *best;
  float *best_dist, *second_dist;
  int keep;          /* length of each image's sorted list of nearest references */
  int64_t *top_idx;  /* n_img * keep (keep > 1 only) */
  float *top_dist;
  float *models;     /* weighted copy of a batch (when weighted) */
  float *mnorm2;
  model_norms *mnorms;    /* per model of the batch, for the recheck bound */
  float *cross;
  int64_t model_cap, cross_cap;
  double t_gemm, t_scan;
  int64_t rechecks;  /* pairs measured again (exact_dot) since make or reset */
};

/* Whether (da, ia) comes before (db, ib): smaller distance, then lower index (so the
 * results do not depend on the order the references come in); -1 (none) after all. */
static int nearer(float da, int64_t ia, float db, int64_t ib)
{
  return da < db || (da == db && (uint64_t)ia < (uint64_t)ib);
}

typedef struct {
  double lower; /* below the pair's distance for sure */
  int64_t model;
} candidate;

static int cand_before(const candidate *x, const candidate *y)
{
  return x->lower < y->lower || (x->lower == y->lower && x->model < y->model);
}

static void heap_down(candidate *h, int64_t n, int64_t i)
{
  for (;;) {
    int64_t c = 2 * i + 1;
    if (c >= n) return;
    if (c + 1 < n && cand_before(&h[c + 1], &h[c])) c++;
    if (!cand_before(&h[c], &h[i])) return;
    const candidate t = h[i];
    h[i] = h[c];
    h[c] = t;
    i = c;
  }
}

/* A min-heap on the lower bound: the candidates come out nearest first, and most never
 * need to (the first above what is kept ends the image), so no full sort. */
static void heap_make(candidate *h, int64_t n)
{
  for (int64_t i = n / 2 - 1; i >= 0; i--) heap_down(h, n, i);
}

static void heap_pop(candidate *h, int64_t *n)
{
  h[0] = h[--*n];
  heap_down(h, *n, 0);
}

/* d.m in double, in an order fixed by n alone (32 running sums, as four vectors of 8,
 * enough to hide the FMA latency; then a fixed tree), so the same pair gives the same
 * bits in any batch. The products of floats are exact in double, so contraction into
 * FMA changes nothing. */
#define DOT_LANES 32
static double exact_dot(const float *x, const float *y, int64_t n)
{
  double s[DOT_LANES] = {0};
  int64_t p = 0;
  for (; p + DOT_LANES <= n; p += DOT_LANES)
    for (int k = 0; k < DOT_LANES; k++) s[k] += (double)x[p + k] * y[p + k];
  for (int k = 0; k < DOT_LANES && p < n; p++, k++) s[k] += (double)x[p] * y[p];
  for (int w = DOT_LANES / 2; w > 0; w /= 2)
    for (int k = 0; k < w; k++) s[k] += s[k + w];
  return s[0];
}

void spf_match_default_options(spf_match_options *o)
{
  if (!o) return;
  o->scale = SPF_SCALE_PER_IMAGE;
  o->pixel_weight = NULL;
  o->image_block = 0;
  o->nthreads = 0;
  o->keep = 1;
}

void spf_matcher_free(spf_matcher *m)
{
  if (!m) return;
  free(m->data);
  free(m->sqrt_w);
  free(m->dnorm2);
  free(m->dneg);
  free(m->best);
  free(m->best_dist);
  free(m->second_dist);
  free(m->top_idx);
  free(m->top_dist);
  free(m->models);
  free(m->mnorm2);
  free(m->mnorms);
  free(m->cross);
  free(m);
}

void spf_matcher_reset(spf_matcher *m)
{
  if (!m) return;
  for (int64_t i = 0; i < m->n_img; i++) {
    m->best[i] = -1;
    m->best_dist[i] = m->second_dist[i] = FLT_MAX;
  }
  if (m->top_idx)
    for (int64_t k = 0; k < m->n_img * m->keep; k++) {
      m->top_idx[k] = -1;
      m->top_dist[k] = FLT_MAX;
    }
  m->t_gemm = m->t_scan = 0;
  m->rechecks = 0;
}

int spf_matcher_make(int64_t n_images, int64_t n_pixels, const float *data,
                     const spf_match_options *opts, spf_matcher **out)
{
  if (!out) return SPF_ERR_NULL;
  *out = NULL;
  if (n_images < 1 || n_pixels < 1) return SPF_ERR_SIZE;
  if (!data) return SPF_ERR_NULL;
  spf_match_options o;
  if (opts) o = *opts;
  else spf_match_default_options(&o);
  if (o.scale < SPF_SCALE_NONE || o.scale > SPF_SCALE_PER_IMAGE || o.image_block < 0 || o.nthreads < 0 ||
      o.keep < 1 || o.keep > 4096)
    return SPF_ERR_OPTION;
  if (n_pixels > INT32_MAX || n_images > INT32_MAX) return SPF_ERR_SIZE; /* BLAS sizes are int */
  spf_matcher *m = calloc(1, sizeof *m);
  if (!m) return SPF_ERR_ALLOC;
  m->n_img = n_images;
  m->n_pix = n_pixels;
  m->scale = o.scale;
  m->nthreads = o.nthreads > 0 ? o.nthreads : omp_get_max_threads();
  m->block = o.image_block;
  m->data = malloc(sizeof(float) * (size_t)(n_images * n_pixels));
  m->dnorm2 = malloc(sizeof(double) * (size_t)n_images);
  m->dneg = malloc(sizeof(double) * (size_t)n_images);
  m->best = malloc(sizeof(int64_t) * (size_t)n_images);
  m->best_dist = malloc(sizeof(float) * (size_t)n_images);
  m->second_dist = malloc(sizeof(float) * (size_t)n_images);
  if (!m->data || !m->dnorm2 || !m->dneg || !m->best || !m->best_dist || !m->second_dist) goto nomem;
  m->keep = o.keep;
  if (o.keep > 1) {
    m->top_idx = malloc(sizeof(int64_t) * (size_t)(n_images * o.keep));
    m->top_dist = malloc(sizeof(float) * (size_t)(n_images * o.keep));
    if (!m->top_idx || !m->top_dist) goto nomem;
  }
  if (o.pixel_weight) {
    m->sqrt_w = malloc(sizeof(float) * (size_t)n_pixels);
    if (!m->sqrt_w) goto nomem;
    for (int64_t p = 0; p < n_pixels; p++) {
      float w = o.pixel_weight[p];
      if (!(w >= 0.0f && isfinite(w))) {
        spf_matcher_free(m);
        return SPF_ERR_DATA;
      }
      m->sqrt_w[p] = sqrtf(w);
    }
  }
  int bad = 0;
  double total = 0;
#pragma omp parallel for num_threads(m->nthreads) reduction(|| : bad) reduction(+ : total)
  for (int64_t i = 0; i < n_images; i++) {
    const float *d = data + i * n_pixels;
    float *dst = m->data + i * n_pixels;
    double s = 0, neg = 0;
    for (int64_t p = 0; p < n_pixels; p++) {
      float v = m->sqrt_w ? d[p] * m->sqrt_w[p] : d[p];
      bad = bad || !isfinite(v);
      dst[p] = v;
      s += (double)v * v;
      neg += v < 0 ? (double)v * v : 0.0;
    }
    m->dnorm2[i] = s;
    m->dneg[i] = sqrt(neg);
    total += s;
  }
  if (bad) {
    spf_matcher_free(m);
    return SPF_ERR_DATA;
  }
  m->data_mean_norm2 = total / (double)n_images;
  openblas_set_num_threads(m->nthreads);
  spf_matcher_reset(m);
  *out = m;
  return SPF_OK;
nomem:
  spf_matcher_free(m);
  return SPF_ERR_ALLOC;
}

int spf_matcher_add_batch(spf_matcher *m, int64_t first_ref, int64_t n_models, const float *models)
{
  if (!m || (n_models > 0 && !models)) return SPF_ERR_NULL;
  if (n_models < 0 || first_ref < 0 || n_models > INT32_MAX) return SPF_ERR_SIZE;
  if (n_models == 0) return SPF_OK;
  const int64_t np = m->n_pix;
  int64_t block = m->block > 0 ? m->block : CROSS_MAX_FLOATS / n_models;
  if (block < 1) block = 1;
  if (block > m->n_img) block = m->n_img;
  if (n_models > m->model_cap) {
    float *mn = realloc(m->mnorm2, sizeof(float) * (size_t)n_models);
    if (!mn) return SPF_ERR_ALLOC;
    m->mnorm2 = mn;
    model_norms *nr = realloc(m->mnorms, sizeof(model_norms) * (size_t)n_models);
    if (!nr) return SPF_ERR_ALLOC;
    m->mnorms = nr;
    if (m->sqrt_w) {
      float *mw = realloc(m->models, sizeof(float) * (size_t)(n_models * np));
      if (!mw) return SPF_ERR_ALLOC;
      m->models = mw;
    }
    m->model_cap = n_models;
  }
  if (block * n_models > m->cross_cap) {
    float *cr = realloc(m->cross, sizeof(float) * (size_t)(block * n_models));
    if (!cr) return SPF_ERR_ALLOC;
    m->cross = cr;
    m->cross_cap = block * n_models;
  }
  const float *mod = models;
  if (m->sqrt_w) {
#pragma omp parallel for num_threads(m->nthreads)
    for (int64_t j = 0; j < n_models; j++)
      for (int64_t p = 0; p < np; p++) m->models[j * np + p] = models[j * np + p] * m->sqrt_w[p];
    mod = m->models;
  }
  double msum = 0;
  int bad = 0;
#pragma omp parallel for num_threads(m->nthreads) reduction(+ : msum) reduction(|| : bad)
  for (int64_t j = 0; j < n_models; j++) {
    double s = 0, neg = 0;
    for (int64_t p = 0; p < np; p++) {
      const double y = mod[j * np + p];
      s += y * y;
      neg += y < 0 ? y * y : 0.0;
    }
    bad = bad || !isfinite(s);
    m->mnorm2[j] = (float)s;
    m->mnorms[j] = (model_norms){sqrt(s), sqrt(neg), m->mnorm2[j] > 0 ? 1.0 / m->mnorm2[j] : 0.0};
    msum += s;
  }
  if (bad) return SPF_ERR_DATA;
  /* SpiniFEL's global scale: one factor for the batch, from mean squared norms. */
  const double a = m->scale == SPF_SCALE_GLOBAL && msum > 0 ? sqrt(m->data_mean_norm2 / (msum / (double)n_models)) : 1.0;

  for (int64_t i0 = 0; i0 < m->n_img; i0 += block) {
    const int64_t nb = m->n_img - i0 < block ? m->n_img - i0 : block;
    double t0 = omp_get_wtime();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)n_models, (int)np, 1.0f,
                m->data + i0 * np, (int)np, mod, (int)np, 0.0f, m->cross, (int)n_models);
    double t1 = omp_get_wtime();
    /* sgemm's rounding of d.m depends on its blocking, threads and the shapes of the call
     * (OpenBLAS's Haswell kernels give different last bits for the same pair in different
     * batches), so it only proposes: a pair within the bound of that rounding of the
     * distance still kept is measured again in a fixed order (exact_dot), and only those
     * distances are kept. The result is then the same bits whatever the batches, image
     * blocks, threads or MPI ranks. Bound, c = d.m, fl(c) sgemm's: |fl(c) - c| <=
     * g sum |d_p m_p| with g = n u / (1 - n u), u = 2^-24, and sum |d_p m_p| = c + 2
     * sum_{d_p m_p < 0} |d_p m_p| <= |fl(c)| + |fl(c) - c| + 2 (||d^-|| ||m|| + ||d|| ||m^-||)
     * (Cauchy-Schwarz on the negative parts); so |fl(c) - c| <= E = g' (|fl(c)| + N) with
     * g' = g / (1 - g) and N the negative parts' term. The distance then moves by at most
     * E (2 |fl(c)| + E) / ||m||^2 (per-image scale) or 2 a E, plus the float rounding of two
     * distances. Non-negative data (photon counts) make N small and the bound ~ 2 n u
     * (d.m)^2 / ||m||^2. */
    const double gam = (double)np * (FLT_EPSILON / 2), g = gam / (1 - gam);
    const double g1 = g / (1 - g) * (1 + 1e-6); /* 1e-6: the norms' own rounding, far above it */
    int64_t rechecks = 0;
    int bad_alloc = 0;
#pragma omp parallel num_threads(m->nthreads) reduction(+ : rechecks) reduction(|| : bad_alloc)
    {
      /* The candidates of one image: the lower bound of their distance and their model. */
      candidate *cand = malloc(sizeof(candidate) * (size_t)n_models);
      bad_alloc = !cand;
#pragma omp for schedule(static)
      for (int64_t ii = 0; ii < nb; ii++) {
        if (!cand) continue;
        const int64_t i = i0 + ii;
        const float *c = m->cross + ii * n_models, *x = m->data + i * np;
        const double dn = m->dnorm2[i], xn = sqrt(dn), xneg = m->dneg[i];
        /* |fl(c) - c| <= g ||d|| ||m||, so (c^+)^2 / ||m||^2 moves by at most g (2 + 3 g) ||d||^2
         * (||m||^2 rounded to float: the factor 1 + FLT_EPSILON). */
        const double cs_image = g1 * (2 + 3 * g1) * (1 + FLT_EPSILON) * dn + 4 * DBL_EPSILON * dn;
        float best = m->best_dist[i], second = m->second_dist[i];
        int64_t arg = m->best[i];
        const int K = m->keep;
        int64_t *ti = m->top_idx ? m->top_idx + i * K : NULL;
        float *td = m->top_dist ? m->top_dist + i * K : NULL;
        int64_t nc = 0;
        for (int64_t j = 0; j < n_models; j++) {
          const double mn = m->mnorm2[j], cf = c[j];
          const float keep_below = td ? td[K - 1] : second;
          double d, slack;
          if (m->scale == SPF_SCALE_PER_IMAGE) {
            d = (cf > 0 && mn > 0) ? dn - cf * cf * m->mnorms[j].inv2 : dn;
            /* Cauchy-Schwarz's bound first: most pairs stop here. */
            if (d - cs_image > keep_below) continue;
            const double E = g1 * (fabs(cf) + 2 * (xneg * m->mnorms[j].root + xn * m->mnorms[j].neg));
            slack = fmin(mn > 0 ? E * (2 * fabs(cf) + E) * m->mnorms[j].inv2 : 0, cs_image) + FLT_EPSILON * dn;
          } else {
            d = dn + a * a * mn - 2.0 * a * cf;
            const double E = g1 * fmin(fabs(cf) + 2 * (xneg * m->mnorms[j].root + xn * m->mnorms[j].neg), xn * m->mnorms[j].root);
            slack = 2 * a * E + FLT_EPSILON * (dn + a * a * mn + 2 * a * fabs(cf));
          }
          if (d - slack <= keep_below) cand[nc++] = (candidate){d - slack, j};
        }
        /* Nearest first: the kept distances fall as they go in, and the first candidate
         * whose bound is above what is kept ends the image. The result is the same in any
         * order (ties by index), so the order only saves work. */
        heap_make(cand, nc);
        while (nc > 0) {
          if (!(cand[0].lower <= (td ? td[K - 1] : second))) break;
          const int64_t j = cand[0].model;
          heap_pop(cand, &nc);
          const double mn = m->mnorm2[j], e = exact_dot(x, mod + j * np, np);
          rechecks++;
          const double d = m->scale == SPF_SCALE_PER_IMAGE ? ((e > 0 && mn > 0) ? dn - e * e / mn : dn)
                                                           : dn + a * a * mn - 2.0 * a * e;
          const float df = (float)d;
          const int64_t ref = first_ref + j;
          if (nearer(df, ref, best, arg)) {
            second = best;
            best = df;
            arg = ref;
          } else if (df < second) {
            second = df;
          }
          if (ti && nearer(df, ref, td[K - 1], ti[K - 1])) {
            /* Insert into the sorted list, ordered by distance, then index. */
            int k = K - 1;
            while (k > 0 && nearer(df, ref, td[k - 1], ti[k - 1])) {
              td[k] = td[k - 1];
              ti[k] = ti[k - 1];
              k--;
            }
            td[k] = df;
            ti[k] = ref;
          }
        }
        m->best[i] = arg;
        m->best_dist[i] = best;
        m->second_dist[i] = second;
      }
      free(cand);
    }
    if (bad_alloc) return SPF_ERR_ALLOC;
    m->rechecks += rechecks;
    m->t_gemm += t1 - t0;
    m->t_scan += omp_get_wtime() - t1;
  }
  return SPF_OK;
}

int spf_matcher_results(const spf_matcher *m, int64_t *best, float *best_dist, float *second_dist)
{
  if (!m) return SPF_ERR_NULL;
  if (best) memcpy(best, m->best, sizeof(int64_t) * (size_t)m->n_img);
  if (best_dist) memcpy(best_dist, m->best_dist, sizeof(float) * (size_t)m->n_img);
  if (second_dist) memcpy(second_dist, m->second_dist, sizeof(float) * (size_t)m->n_img);
  return SPF_OK;
}

int spf_matcher_nearest(const spf_matcher *m, int64_t *index, float *dist)
{
  if (!m) return SPF_ERR_NULL;
  for (int64_t i = 0; i < m->n_img; i++)
    for (int k = 0; k < m->keep; k++) {
      const int64_t at = i * m->keep + k;
      if (index) index[at] = m->keep > 1 ? m->top_idx[at] : m->best[i];
      if (dist) dist[at] = m->keep > 1 ? m->top_dist[at] : m->best_dist[i];
    }
  return SPF_OK;
}

void spf_matcher_timing(const spf_matcher *m, double *gemm_seconds, double *scan_seconds)
{
  if (!m) return;
  if (gemm_seconds) *gemm_seconds = m->t_gemm;
  if (scan_seconds) *scan_seconds = m->t_scan;
}

int spf_matcher_seed(spf_matcher *m, const int64_t *index, const float *dist, const float *second_dist)
{
  if (!m || !index || !dist || !second_dist) return SPF_ERR_NULL;
  const int K = m->keep;
  for (int64_t i = 0; i < m->n_img; i++) {
    for (int k = 1; k < K; k++)
      if (nearer(dist[i * K + k], index[i * K + k], dist[i * K + k - 1], index[i * K + k - 1])) return SPF_ERR_ARG;
    if (second_dist[i] < dist[i * K]) return SPF_ERR_ARG;
  }
  for (int64_t i = 0; i < m->n_img; i++) {
    m->best[i] = index[i * K];
    m->best_dist[i] = dist[i * K];
    m->second_dist[i] = second_dist[i];
  }
  if (K > 1) {
    memcpy(m->top_idx, index, sizeof(int64_t) * (size_t)(m->n_img * K));
    memcpy(m->top_dist, dist, sizeof(float) * (size_t)(m->n_img * K));
  }
  return SPF_OK;
}

int64_t spf_matcher_rechecks(const spf_matcher *m)
{
  return m ? m->rechecks : 0;
}
