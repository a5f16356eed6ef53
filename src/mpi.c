/* Collectives over MPI, or single-process no-ops (see mpi.h). */
#include "spinifel/mpi.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"

#ifdef SPINIFEL_HAVE_MPI
#include <mpi.h>
#endif

int spf_mpi_init(int *argc, char ***argv)
{
#ifdef SPINIFEL_HAVE_MPI
  /* Only under a launcher: a plain run stays a plain process (no MPI start-up). */
  if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return SPF_OK;
  return MPI_Init(argc, argv) == MPI_SUCCESS ? SPF_OK : SPF_ERR_MPI;
#else
  (void)argc;
  (void)argv;
  return SPF_OK;
#endif
}

void spf_mpi_finalize(void)
{
#ifdef SPINIFEL_HAVE_MPI
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Finalize();
#endif
}

int spf_mpi_available(void)
{
#ifdef SPINIFEL_HAVE_MPI
  return 1;
#else
  return 0;
#endif
}

void spf_comm_world(spf_comm *c)
{
  c->rank = 0;
  c->size = 1;
  c->active = 0;
#ifdef SPINIFEL_HAVE_MPI
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) {
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    c->active = c->size > 1;
  }
#endif
}

void spf_share(int64_t n, int rank, int size, int64_t *first, int64_t *count)
{
  const int64_t base = n / size, extra = n % size;
  *first = rank * base + (rank < extra ? rank : extra);
  *count = base + (rank < extra ? 1 : 0);
}

#ifdef SPINIFEL_HAVE_MPI
/* MPI counts are int: large buffers go in pieces. */
#define PIECE ((int64_t)1 << 28)
#endif

#ifdef SPINIFEL_HAVE_MPI
/* In-place reduction (op) of n items of type t, in pieces (MPI counts are int). */
static int reduce_in_place(void *buf, int64_t n, MPI_Datatype t, int64_t item_bytes, MPI_Op op)
{
  for (int64_t f = 0; f < n; f += PIECE)
    if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + f * item_bytes, (int)(n - f < PIECE ? n - f : PIECE), t, op,
                      MPI_COMM_WORLD) != MPI_SUCCESS)
      return SPF_ERR_MPI;
  return SPF_OK;
}
#endif

int spf_comm_sum_double(const spf_comm *c, double *buf, int64_t n)
{
  if (!c || !c->active) return SPF_OK;
#ifdef SPINIFEL_HAVE_MPI
  return reduce_in_place(buf, n, MPI_DOUBLE, (int64_t)sizeof(double), MPI_SUM);
#else
  (void)buf;
  (void)n;
  return SPF_OK;
#endif
}

int spf_comm_sum_int64(const spf_comm *c, int64_t *buf, int64_t n)
{
  if (!c || !c->active) return SPF_OK;
#ifdef SPINIFEL_HAVE_MPI
  return reduce_in_place(buf, n, MPI_INT64_T, (int64_t)sizeof(int64_t), MPI_SUM);
#else
  (void)buf;
  (void)n;
  return SPF_OK;
#endif
}

int spf_comm_max_double(const spf_comm *c, double *buf, int64_t n)
{
  if (!c || !c->active) return SPF_OK;
#ifdef SPINIFEL_HAVE_MPI
  return reduce_in_place(buf, n, MPI_DOUBLE, (int64_t)sizeof(double), MPI_MAX);
#else
  (void)buf;
  (void)n;
  return SPF_OK;
#endif
}

#ifdef SPINIFEL_HAVE_MPI
/* Counts and displacements in 8-byte words for the v-collectives (MPI counts are int). */
static int words(int64_t bytes, int *out)
{
  if (bytes % 8 || bytes / 8 > INT32_MAX) return SPF_ERR_SIZE;
  *out = (int)(bytes / 8);
  return SPF_OK;
}
#endif

int spf_comm_allgather(const spf_comm *c, const void *mine, int64_t n, int64_t item_bytes, void **out,
                       int64_t *total)
{
  if (!out || !total || (n > 0 && !mine)) return SPF_ERR_NULL;
  if (n < 0 || item_bytes < 1 || item_bytes % 8) return SPF_ERR_SIZE;
  *out = NULL;
  *total = 0;
  if (!c || !c->active) {
    *out = malloc((size_t)(n > 0 ? n * item_bytes : 1));
    if (!*out) return SPF_ERR_ALLOC;
    if (n > 0) memcpy(*out, mine, (size_t)(n * item_bytes));
    *total = n;
    return SPF_OK;
  }
#ifdef SPINIFEL_HAVE_MPI
  int64_t *counts = malloc(sizeof(int64_t) * (size_t)c->size);
  int *cw = malloc(sizeof(int) * (size_t)c->size), *dw = malloc(sizeof(int) * (size_t)c->size), mw = 0;
  int rc = counts && cw && dw ? SPF_OK : SPF_ERR_ALLOC;
  rc = spf_comm_agree(c, rc);
  if (!rc && MPI_Allgather(&n, 1, MPI_INT64_T, counts, 1, MPI_INT64_T, MPI_COMM_WORLD) != MPI_SUCCESS) rc = SPF_ERR_MPI;
  int64_t all = 0;
  for (int r = 0; !rc && r < c->size; r++) {
    rc = words(all * item_bytes, &dw[r]);
    if (!rc) rc = words(counts[r] * item_bytes, &cw[r]);
    all += counts[r];
  }
  if (!rc) rc = words(n * item_bytes, &mw);
  if (!rc) rc = words(all * item_bytes, &(int){0});
  if (!rc && !(*out = malloc((size_t)(all > 0 ? all * item_bytes : 8)))) rc = SPF_ERR_ALLOC;
  rc = spf_comm_agree(c, rc);
  if (!rc && MPI_Allgatherv(mine, mw, MPI_INT64_T, *out, cw, dw, MPI_INT64_T, MPI_COMM_WORLD) != MPI_SUCCESS)
    rc = SPF_ERR_MPI;
  if (!rc) *total = all;
  else {
    free(*out);
    *out = NULL;
  }
  free(counts);
  free(cw);
  free(dw);
  return rc;
#else
  return SPF_ERR_MPI;
#endif
}

int spf_comm_alltoallv(const spf_comm *c, const void *send, const int64_t *send_bytes, void **recv,
                       int64_t *recv_bytes)
{
  if (!send_bytes || !recv || !recv_bytes) return SPF_ERR_NULL;
  *recv = NULL;
  *recv_bytes = 0;
  if (!c || !c->active) {
    if (send_bytes[0] > 0 && !send) return SPF_ERR_NULL;
    *recv = malloc((size_t)(send_bytes[0] > 0 ? send_bytes[0] : 8));
    if (!*recv) return SPF_ERR_ALLOC;
    if (send_bytes[0] > 0) memcpy(*recv, send, (size_t)send_bytes[0]);
    *recv_bytes = send_bytes[0];
    return SPF_OK;
  }
#ifdef SPINIFEL_HAVE_MPI
  const int P = c->size;
  int64_t *rb = malloc(sizeof(int64_t) * (size_t)P);
  int *sc = malloc(sizeof(int) * 4 * (size_t)P), *sd = sc + P, *rcn = sc + 2 * P, *rd = sc + 3 * P;
  int rc = rb && sc ? SPF_OK : SPF_ERR_ALLOC;
  rc = spf_comm_agree(c, rc);
  if (!rc && MPI_Alltoall(send_bytes, 1, MPI_INT64_T, rb, 1, MPI_INT64_T, MPI_COMM_WORLD) != MPI_SUCCESS)
    rc = SPF_ERR_MPI;
  int64_t so = 0, ro = 0;
  for (int r = 0; !rc && r < P; r++) {
    rc = words(send_bytes[r], &sc[r]);
    if (!rc) rc = words(so, &sd[r]);
    if (!rc) rc = words(rb[r], &rcn[r]);
    if (!rc) rc = words(ro, &rd[r]);
    so += send_bytes[r];
    ro += rb[r];
  }
  if (!rc && !(*recv = malloc((size_t)(ro > 0 ? ro : 8)))) rc = SPF_ERR_ALLOC;
  rc = spf_comm_agree(c, rc);
  if (!rc && MPI_Alltoallv(send, sc, sd, MPI_INT64_T, *recv, rcn, rd, MPI_INT64_T, MPI_COMM_WORLD) != MPI_SUCCESS)
    rc = SPF_ERR_MPI;
  if (!rc) *recv_bytes = ro;
  else {
    free(*recv);
    *recv = NULL;
  }
  free(rb);
  free(sc);
  return rc;
#else
  (void)send;
  return SPF_ERR_MPI;
#endif
}

int spf_comm_agree(const spf_comm *c, int rc)
{
  if (!c || !c->active) return rc;
#ifdef SPINIFEL_HAVE_MPI
  int all = rc;
  if (MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) return SPF_ERR_MPI;
  return all;
#else
  return rc;
#endif
}

int spf_comm_bcast(const spf_comm *c, void *buf, int64_t bytes, int root)
{
  if (!c || !c->active) return SPF_OK;
#ifdef SPINIFEL_HAVE_MPI
  for (int64_t f = 0; f < bytes; f += PIECE)
    if (MPI_Bcast((char *)buf + f, (int)(bytes - f < PIECE ? bytes - f : PIECE), MPI_BYTE, root, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
      return SPF_ERR_MPI;
#else
  (void)buf;
  (void)bytes;
  (void)root;
#endif
  return SPF_OK;
}

int spf_comm_gather(const spf_comm *c, const void *mine, int64_t my_count, void *out, const int64_t *counts,
                    int64_t item_bytes, int root)
{
  if (!c || !c->active) {
    if (out != mine) memcpy(out, mine, (size_t)(my_count * item_bytes));
    return SPF_OK;
  }
#ifdef SPINIFEL_HAVE_MPI
  /* One rank at a time to root: simple, and sizes may exceed int as a whole. */
  if (c->rank == root) {
    char *dst = out;
    for (int r = 0; r < c->size; r++) {
      const int64_t bytes = counts[r] * item_bytes;
      if (r == root) memcpy(dst, mine, (size_t)bytes);
      else
        for (int64_t f = 0; f < bytes; f += PIECE)
          if (MPI_Recv(dst + f, (int)(bytes - f < PIECE ? bytes - f : PIECE), MPI_BYTE, r, 77, MPI_COMM_WORLD,
                       MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return SPF_ERR_MPI;
      dst += bytes;
    }
  } else {
    const int64_t bytes = my_count * item_bytes;
    for (int64_t f = 0; f < bytes; f += PIECE)
      if (MPI_Send((const char *)mine + f, (int)(bytes - f < PIECE ? bytes - f : PIECE), MPI_BYTE, root, 77,
                   MPI_COMM_WORLD) != MPI_SUCCESS)
        return SPF_ERR_MPI;
  }
#else
  (void)counts;
  (void)root;
#endif
  return SPF_OK;
}

int spf_comm_ring_shift(const spf_comm *c, const void *send, int64_t send_bytes, void **recv, int64_t *recv_cap,
                        int64_t *recv_bytes)
{
  if (!recv || !recv_cap || !recv_bytes || (send_bytes > 0 && !send)) return SPF_ERR_NULL;
  if (send_bytes < 0) return SPF_ERR_SIZE;
  int64_t in = send_bytes;
#ifdef SPINIFEL_HAVE_MPI
  const int active = c && c->active;
  const int right = active ? (c->rank + 1) % c->size : 0, left = active ? (c->rank + c->size - 1) % c->size : 0;
  /* Sizes first, so the receiver can make room. */
  if (active && MPI_Sendrecv(&send_bytes, 1, MPI_INT64_T, right, 78, &in, 1, MPI_INT64_T, left, 78, MPI_COMM_WORLD,
                             MPI_STATUS_IGNORE) != MPI_SUCCESS)
    return SPF_ERR_MPI;
#endif
  int rc = SPF_OK;
  if (in > *recv_cap) {
    void *p = realloc(*recv, (size_t)in);
    if (p) {
      *recv = p;
      *recv_cap = in;
    } else {
      rc = SPF_ERR_ALLOC;
    }
  }
#ifdef SPINIFEL_HAVE_MPI
  if (active) {
    /* Every rank learns whether all could make room before any data moves. */
    rc = spf_comm_agree(c, rc);
    *recv_bytes = 0;
    if (rc) return rc;
    for (int64_t f = 0; f < (send_bytes > in ? send_bytes : in); f += PIECE) {
      const int64_t ns = send_bytes - f < PIECE ? send_bytes - f : PIECE, nr = in - f < PIECE ? in - f : PIECE;
      if (MPI_Sendrecv(ns > 0 ? (const char *)send + f : send, (int)(ns > 0 ? ns : 0), MPI_BYTE, right, 79,
                       nr > 0 ? (char *)*recv + f : *recv, (int)(nr > 0 ? nr : 0), MPI_BYTE, left, 79, MPI_COMM_WORLD,
                       MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return SPF_ERR_MPI;
    }
    *recv_bytes = in;
    return SPF_OK;
  }
#endif
  (void)c;
  if (!rc && in > 0) memcpy(*recv, send, (size_t)in);
  *recv_bytes = rc ? 0 : in;
  return rc;
}
