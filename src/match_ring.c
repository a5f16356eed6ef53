/* Slice and match over a ring of the MPI ranks (see match_ring.h). */
#include "match_ring.h"

#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/rotation.h"

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

/* This rank's block at the start: empty lists, and its images when it travels. */
static void block_fill(void *buf, const spf_match_job *j, int L, int with_images)
{
  int64_t *h = buf;
  h[0] = j->n_images;
  h[1] = with_images;
  block_view v = block_open(buf, L);
  for (int64_t k = 0; k < j->n_images * L; k++) {
    v.idx[k] = -1;
    v.dist[k] = FLT_MAX;
  }
  for (int64_t i = 0; i < j->n_images; i++) v.second[i] = FLT_MAX;
  if (v.images) memcpy(v.images, j->images, sizeof(float) * (size_t)(j->n_images * j->np));
}

int spf_slice_and_match(const spf_match_job *j, int L, int64_t *idx, float *dist, float *second,
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
  if (!rc) block_fill(buf[0], j, L, P > 1);
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
      if (j->on_step) j->on_step(j->step_ctx, j->gen, "slice+match", t * rcount + f + c, P * rcount);
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
