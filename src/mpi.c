/* Collectives over MPI, or single-process no-ops (see mpi.h). */
#include "spinifel/mpi.h"

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
/* In-place sum of n items of type t, in pieces (MPI counts are int). */
static int sum_in_place(void *buf, int64_t n, MPI_Datatype t, int64_t item_bytes)
{
  for (int64_t f = 0; f < n; f += PIECE)
    if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + f * item_bytes, (int)(n - f < PIECE ? n - f : PIECE), t, MPI_SUM,
                      MPI_COMM_WORLD) != MPI_SUCCESS)
      return SPF_ERR_MPI;
  return SPF_OK;
}
#endif

int spf_comm_sum_double(const spf_comm *c, double *buf, int64_t n)
{
  if (!c || !c->active) return SPF_OK;
#ifdef SPINIFEL_HAVE_MPI
  return sum_in_place(buf, n, MPI_DOUBLE, (int64_t)sizeof(double));
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
  return sum_in_place(buf, n, MPI_INT64_T, (int64_t)sizeof(int64_t));
#else
  (void)buf;
  (void)n;
  return SPF_OK;
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
