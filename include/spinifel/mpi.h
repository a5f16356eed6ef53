/* Scale-out over MPI: a communicator handle and the few collective operations the
 * reconstruction needs. Without MPI at build time (or before MPI_Init) every call sees
 * a single process and the operations are no-ops, so one code path serves both. */
#ifndef SPINIFEL_MPI_H
#define SPINIFEL_MPI_H

#include <stdint.h>

typedef struct {
  int rank, size;
  int active;      /* 1: MPI is initialised and these ranks take part */
} spf_comm;

/* The world communicator when MPI is built in and initialised; otherwise rank 0 of 1. */
void spf_comm_world(spf_comm *c);

/* Start MPI when the program runs under a launcher (mpirun sets its variables); a plain
 * run stays one process. Finalize at exit (no-op when not started). */
int spf_mpi_init(int *argc, char ***argv);
void spf_mpi_finalize(void);

/* 1 when the library was built with MPI. */
int spf_mpi_available(void);

/* In-place sums over ranks (every rank gets the result). */
int spf_comm_sum_double(const spf_comm *c, double *buf, int64_t n);
int spf_comm_sum_int64(const spf_comm *c, int64_t *buf, int64_t n);
/* In-place maximum over ranks. */
int spf_comm_max_double(const spf_comm *c, double *buf, int64_t n);
/* Every rank's n items of item_bytes (a multiple of 8), in rank order, to every rank:
 * *out (malloc'd; the caller frees) holds *total items. */
int spf_comm_allgather(const spf_comm *c, const void *mine, int64_t n, int64_t item_bytes, void **out,
                       int64_t *total);
/* Personalised exchange: send_bytes[r] bytes (multiples of 8) of send, in rank order, go
 * to rank r; *recv (malloc'd) gets what every rank sent here, in rank order, *recv_bytes
 * in all. */
int spf_comm_alltoallv(const spf_comm *c, const void *send, const int64_t *send_bytes, void **recv,
                       int64_t *recv_bytes);
/* Agree on an error: every rank gets the first (largest) non-zero code of any rank, so
 * all ranks leave together instead of waiting in a collective for a failed one. */
int spf_comm_agree(const spf_comm *c, int rc);
/* Broadcast bytes from root. */
int spf_comm_bcast(const spf_comm *c, void *buf, int64_t bytes, int root);
/* Gather each rank's counts[rank] items of item_bytes into root's out (rank order). */
int spf_comm_gather(const spf_comm *c, const void *mine, int64_t my_count, void *out, const int64_t *counts,
                    int64_t item_bytes, int root);

/* Ring shift: send bytes to rank + 1 and receive from rank - 1 (cyclic) into *recv,
 * grown (realloc) when *recv_cap is too small; *recv_bytes gets the received size.
 * Without MPI (or one rank) the bytes are copied. */
int spf_comm_ring_shift(const spf_comm *c, const void *send, int64_t send_bytes, void **recv, int64_t *recv_cap,
                        int64_t *recv_bytes);

/* The contiguous share of n items of rank r among size ranks: first and count. */
void spf_share(int64_t n, int rank, int size, int64_t *first, int64_t *count);

#endif
