/* Views into the merger, exact over MPI ranks (see merge_views.h). */
#include "merge_views.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/rotation.h"
#include "fixed_point.h"

int spf_view_scales_make(const spf_comm *cm, int64_t n_images, int64_t np, const float *images, spf_view_scales *sc,
                         int64_t *n_total)
{
  *n_total = n_images;
  double *dmax = malloc(sizeof(double) * (size_t)np);
  sc->pix_scale = malloc(sizeof(double) * (size_t)np);
  sc->pix_unit = malloc(sizeof(double) * (size_t)np);
  int rc = dmax && sc->pix_scale && sc->pix_unit ? SPF_OK : SPF_ERR_ALLOC;
  rc = spf_comm_agree(cm, rc);
  /* The largest |d_p| of any image, a maximum: exact over ranks. */
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
  if (!rc) rc = spf_comm_sum_int64(cm, n_total, 1);
  double sum_dmax = 0, sum_dmax2 = 0;
  for (int64_t p = 0; !rc && p < np; p++) {
    /* Sums over images of w d_p, with weights per image summing to 1: below n_total max. */
    const int e = spf_fixed_exponent(2.0 * (double)*n_total * dmax[p]);
    sc->pix_scale[p] = ldexp(1.0, -e);
    sc->pix_unit[p] = ldexp(1.0, e);
    sum_dmax += dmax[p];
    sum_dmax2 += dmax[p] * dmax[p];
  }
  const int e = spf_fixed_exponent(2.0 * (double)*n_total);
  sc->w_scale = ldexp(1.0, -e);
  sc->w_unit = ldexp(1.0, e);
  sc->weight_bound = 2.0 * (double)*n_total * (double)np;
  sc->wb_bound = 2.0 * (double)*n_total * fmax(sum_dmax, 1e-300);
  sc->wb2_bound = 2.0 * (double)*n_total * fmax(sum_dmax2, 1e-300);
  free(dmax);
  return rc;
}

void spf_view_scales_free(spf_view_scales *sc)
{
  if (!sc) return;
  free(sc->pix_scale);
  free(sc->pix_unit);
  sc->pix_scale = sc->pix_unit = NULL;
}

static int cmp_view(const void *a, const void *b)
{
  const spf_view *x = a, *y = b;
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

/* Step 1: this rank's views (sorted by key) summed per distinct orientation with any
 * weight, in fixed point: *part gets *nk records of PART_HEAD + np (position not yet
 * set), *keys their keys. Integer sums: each orientation's are the same bits whichever
 * thread adds them. */
static int local_parts(int nthreads, int64_t n_views, const spf_view *v, int64_t first_image, const double *own_quats,
                       int64_t np, const float *images, const spf_view_scales *sc, int64_t **part, int64_t **keys,
                       int64_t *nk)
{
  int64_t n = 0, *start = malloc(sizeof(int64_t) * (size_t)(n_views + 1));
  for (int64_t g = 0; start && g < n_views;) {
    int64_t e = g, any = 0;
    for (; e < n_views && v[e].key == v[g].key; e++) any |= v[e].w > 0;
    if (any) start[n++] = g;
    g = e;
  }
  const int64_t rec = PART_HEAD + np;
  int64_t *pt = malloc(sizeof(int64_t) * (size_t)(n * rec + 1)), *ky = malloc(sizeof(int64_t) * (size_t)(n + 1));
  const int rc = start && pt && ky ? SPF_OK : SPF_ERR_ALLOC;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 16) if (!rc)
  for (int64_t k = 0; k < n; k++) {
    const int64_t g = start[k];
    int64_t *r = pt + k * rec, *S = r + PART_HEAD, W = 0;
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
    r[0] = ky[k] = v[g].key;
    r[2] = W;
    memcpy(r + 3, q, sizeof q);
  }
  free(start);
  *part = pt;
  *keys = ky;
  *nk = n;
  return rc;
}

/* Step 2: the global list of orientations, its batches of `slots` and their owners (the
 * batches shared contiguously over the ranks); each part's position set and sent to its
 * batch's owner. *recv (the caller frees) gets this rank's *nrecv parts; one process
 * keeps its own (*part then NULL). Collective (rc agreed). */
static int exchange_parts(const spf_comm *cm, int rc, int64_t np, int64_t slots, int64_t **part, int64_t *keys,
                          int64_t nk, int64_t **recv, int64_t *nrecv)
{
  const int P = cm && cm->active ? cm->size : 1;
  const int64_t rec = PART_HEAD + np;
  int64_t *send_bytes = calloc((size_t)P, sizeof(int64_t)), *gkeys = NULL, ng = 0;
  if (!send_bytes) rc = SPF_ERR_ALLOC;
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
    int64_t *r = *part + k * rec;
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
      rc = spf_comm_alltoallv(cm, *part, send_bytes, (void **)recv, &bytes);
      *nrecv = bytes / (rec * (int64_t)sizeof(int64_t));
    } else {
      *recv = *part; /* one process keeps its parts */
      *part = NULL;
      *nrecv = nk;
    }
  }
  free(send_bytes);
  free(gkeys);
  return spf_comm_agree(cm, rc);
}

/* Step 3: this rank's batches into the merger (the parts sorted here by position), the
 * parts of each orientation added as integers, one merger call per batch. */
static int add_batches(spf_merger *mg, const spf_slicer *sl, int64_t *recv, int64_t nrecv, int64_t n_refs,
                       int64_t np, const float *pixel_on, int64_t slots, const spf_view_scales *sc, double *x,
                       double *b, double *w)
{
  const int64_t rec = PART_HEAD + np, n = slots * np;
  qsort(recv, (size_t)nrecv, sizeof(int64_t) * (size_t)rec, cmp_part);
  int64_t used = 0;
  int64_t *S = malloc(sizeof(int64_t) * (size_t)np);
  int rc = S ? SPF_OK : SPF_ERR_ALLOC;
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
  return rc;
}

int spf_merge_views(spf_merger *mg, const spf_slicer *sl, const spf_comm *cm, int nthreads, int64_t n_views,
                    spf_view *v, int64_t n_refs, int64_t first_image, const double *own_quats, int64_t np,
                    const float *images, const float *pixel_on, int64_t slots, const spf_view_scales *sc, double *x,
                    double *b, double *w, double *t_comm)
{
  int rc = spf_merger_exact_sums(mg, sc->weight_bound, sc->wb_bound, sc->wb2_bound); /* and clear */
  qsort(v, (size_t)n_views, sizeof *v, cmp_view);
  int64_t *part = NULL, *keys = NULL, *recv = NULL, nk = 0, nrecv = 0;
  if (!rc) rc = local_parts(nthreads, n_views, v, first_image, own_quats, np, images, sc, &part, &keys, &nk);
  const double t0 = omp_get_wtime();
  rc = exchange_parts(cm, rc, np, slots, &part, keys, nk, &recv, &nrecv);
  *t_comm += omp_get_wtime() - t0;
  if (!rc) rc = add_batches(mg, sl, recv, nrecv, n_refs, np, pixel_on, slots, sc, x, b, w);
  free(part);
  free(keys);
  free(recv);
  return spf_comm_agree(cm, rc);
}
