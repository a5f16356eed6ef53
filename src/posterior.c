/* Stored orientation posteriors (see posterior.h). */
#include "spinifel/posterior.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"

struct spf_posterior_views_s {
  int64_t n_refs, np, images;
  double phi_sum, photons, kmax;
  double *views;   /* n_refs x np */
  double *weights; /* n_refs */
  int32_t *nz;     /* np: one image's pixels with counts */
};

int spf_posterior_views_make(int64_t n_refs, int64_t n_pixels, spf_posterior_views **out)
{
  if (!out) return SPF_ERR_NULL;
  *out = NULL;
  if (n_refs < 1 || n_pixels < 1 || n_pixels > INT32_MAX || n_refs > (INT64_MAX / 8) / (n_pixels + 1))
    return SPF_ERR_SIZE;
  spf_posterior_views *pv = calloc(1, sizeof *pv);
  if (!pv) return SPF_ERR_ALLOC;
  pv->n_refs = n_refs;
  pv->np = n_pixels;
  pv->views = calloc((size_t)(n_refs * n_pixels), sizeof(double));
  pv->weights = calloc((size_t)n_refs, sizeof(double));
  pv->nz = malloc(sizeof(int32_t) * (size_t)n_pixels);
  if (!pv->views || !pv->weights || !pv->nz) {
    spf_posterior_views_free(pv);
    return SPF_ERR_ALLOC;
  }
  *out = pv;
  return SPF_OK;
}

int spf_posterior_views_add(spf_posterior_views *pv, int64_t n, const float *counts, const double *phi, int k,
                            const int32_t *refs, const float *probs)
{
  if (!pv || (n > 0 && (!counts || !phi || !refs || !probs))) return SPF_ERR_NULL;
  if (n < 0 || k < 1) return SPF_ERR_SIZE;
  const int64_t np = pv->np;
  for (int64_t i = 0; i < n; i++) {
    const float *c = counts + i * np;
    const int32_t *r = refs + i * (int64_t)k;
    const float *p = probs + i * (int64_t)k;
    /* Everything checked before the image's first addition. */
    if (!(phi[i] >= 0) || !isfinite(phi[i])) return SPF_ERR_DATA;
    int m = 0;
    while (m < k && r[m] >= 0) {
      if (r[m] >= pv->n_refs || !(p[m] >= 0 && p[m] <= 1)) return SPF_ERR_DATA;
      m++;
    }
    int64_t nnz = 0;
    double photons = 0;
    for (int64_t q = 0; q < np; q++) {
      if (!(c[q] >= 0) || !isfinite(c[q]) || c[q] != floorf(c[q])) return SPF_ERR_DATA;
      if (c[q] > 0) {
        pv->nz[nnz++] = (int32_t)q;
        photons += c[q];
      }
    }
    for (int e = 0; e < m; e++) {
      double *v = pv->views + (int64_t)r[e] * np;
      const double w = p[e];
      for (int64_t t = 0; t < nnz; t++) v[pv->nz[t]] += w * c[pv->nz[t]];
      pv->weights[r[e]] += w * phi[i];
    }
    pv->images++;
    pv->phi_sum += phi[i];
    pv->photons += photons;
    if (phi[i] > 0) pv->kmax = fmax(pv->kmax, photons / phi[i]);
  }
  return SPF_OK;
}

const double *spf_posterior_views_view(const spf_posterior_views *pv, int64_t j)
{
  return pv && j >= 0 && j < pv->n_refs ? pv->views + j * pv->np : NULL;
}

double spf_posterior_views_weight(const spf_posterior_views *pv, int64_t j)
{
  return pv && j >= 0 && j < pv->n_refs ? pv->weights[j] : 0;
}

int64_t spf_posterior_views_refs(const spf_posterior_views *pv) { return pv ? pv->n_refs : 0; }
int64_t spf_posterior_views_pixels(const spf_posterior_views *pv) { return pv ? pv->np : 0; }

void spf_posterior_views_totals(const spf_posterior_views *pv, int64_t *images, double *phi_sum, double *photons,
                                double *kmax)
{
  if (images) *images = pv ? pv->images : 0;
  if (phi_sum) *phi_sum = pv ? pv->phi_sum : 0;
  if (photons) *photons = pv ? pv->photons : 0;
  if (kmax) *kmax = pv ? pv->kmax : 0;
}

void spf_posterior_views_free(spf_posterior_views *pv)
{
  if (!pv) return;
  free(pv->views);
  free(pv->weights);
  free(pv->nz);
  free(pv);
}
