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

struct spf_matcher_s {
  int64_t n_img, n_pix, block;
  int scale, nthreads;
  float *data;       /* sqrt(w) d */
  float *sqrt_w;     /* NULL when unweighted */
  double *dnorm2;    /* ||sqrt(w) d||^2 per image */
  double data_mean_norm2;
  int64_t *best;
  float *best_dist, *second_dist;
  int keep;          /* length of each image's sorted list of nearest references */
  int64_t *top_idx;  /* n_img * keep (keep > 1 only) */
  float *top_dist;
  float *models;     /* weighted copy of a batch (when weighted) */
  float *mnorm2;
  float *cross;
  int64_t model_cap, cross_cap;
  double t_gemm, t_scan;
};

/* d.m in double, in an order fixed by n alone (eight running sums, then a tree), so the
 * same pair gives the same bits in any batch. The products of floats are exact in
 * double, so contraction into FMA changes nothing. */
static double exact_dot(const float *x, const float *y, int64_t n)
{
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t p = 0;
  for (; p + 8 <= n; p += 8)
    for (int k = 0; k < 8; k++) s[k] += (double)x[p + k] * y[p + k];
  for (int k = 0; p < n; p++, k++) s[k] += (double)x[p] * y[p];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
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
  free(m->best);
  free(m->best_dist);
  free(m->second_dist);
  free(m->top_idx);
  free(m->top_dist);
  free(m->models);
  free(m->mnorm2);
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
  m->best = malloc(sizeof(int64_t) * (size_t)n_images);
  m->best_dist = malloc(sizeof(float) * (size_t)n_images);
  m->second_dist = malloc(sizeof(float) * (size_t)n_images);
  if (!m->data || !m->dnorm2 || !m->best || !m->best_dist || !m->second_dist) goto nomem;
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
    double s = 0;
    for (int64_t p = 0; p < n_pixels; p++) {
      float v = m->sqrt_w ? d[p] * m->sqrt_w[p] : d[p];
      bad = bad || !isfinite(v);
      dst[p] = v;
      s += (double)v * v;
    }
    m->dnorm2[i] = s;
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
    double s = 0;
    for (int64_t p = 0; p < np; p++) s += (double)mod[j * np + p] * mod[j * np + p];
    bad = bad || !isfinite(s);
    m->mnorm2[j] = (float)s;
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
     * blocks, threads or MPI ranks. Bound: |fl(d.m) - d.m| <= n u ||d|| ||m|| (u = 2^-24,
     * Cauchy-Schwarz), so the distance moves by at most 2 n u (a ||d|| ||m||), which is
     * 2 n u ||d||^2 for the per-image scale; plus the float rounding of two distances. */
    const double nu = (double)np * (FLT_EPSILON / 2);
#pragma omp parallel for num_threads(m->nthreads) schedule(static)
    for (int64_t ii = 0; ii < nb; ii++) {
      const int64_t i = i0 + ii;
      const float *c = m->cross + ii * n_models, *x = m->data + i * np;
      const double dn = m->dnorm2[i];
      float best = m->best_dist[i], second = m->second_dist[i];
      int64_t arg = m->best[i];
      const int K = m->keep;
      int64_t *ti = m->top_idx ? m->top_idx + i * K : NULL;
      float *td = m->top_dist ? m->top_dist + i * K : NULL;
      for (int64_t j = 0; j < n_models; j++) {
        const double mn = m->mnorm2[j];
        double d, slack;
        if (m->scale == SPF_SCALE_PER_IMAGE) {
          d = (c[j] > 0 && mn > 0) ? dn - (double)c[j] * c[j] / mn : dn;
          slack = 2 * nu * (1 + nu) * (1 + FLT_EPSILON) * dn + FLT_EPSILON * dn;
        } else {
          d = dn + a * a * mn - 2.0 * a * c[j];
          slack = 2 * nu * (1 + nu) * a * sqrt(dn * mn) + FLT_EPSILON * (dn + a * a * mn);
        }
        /* The largest distance still kept: anything that may beat it is measured. */
        const float keep_below = td ? td[K - 1] : second;
        if (!((float)d - slack < keep_below)) continue;
        const double e = exact_dot(x, mod + j * np, np);
        if (m->scale == SPF_SCALE_PER_IMAGE) d = (e > 0 && mn > 0) ? dn - e * e / mn : dn;
        else d = dn + a * a * mn - 2.0 * a * e;
        const float df = (float)d;
        if (df < best) {
          second = best;
          best = df;
          arg = first_ref + j;
        } else if (df < second) {
          second = df;
        }
        if (ti && df < td[K - 1]) {
          /* Insert into the sorted list; equal distances keep the reference seen first. */
          int k = K - 1;
          while (k > 0 && td[k - 1] > df) {
            td[k] = td[k - 1];
            ti[k] = ti[k - 1];
            k--;
          }
          td[k] = df;
          ti[k] = first_ref + j;
        }
      }
      m->best[i] = arg;
      m->best_dist[i] = best;
      m->second_dist[i] = second;
    }
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
