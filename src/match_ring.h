/* Internal: slice and match over the MPI ranks, the references split and the image
 * blocks passed round a ring (the faster of issue 6's two distributions, measured by
 * bench/match_split_bench; BENCHMARKS.md).
 *
 * Rank r slices only its contiguous share of the reference grid (spf_share), so no two
 * ranks compute the same model image. Each rank's image block goes round the ring of
 * the ranks with its lists of nearest references, which seed the visited rank's matcher
 * (spf_matcher_seed), P shifts in all: after P - 1 the block has met every share of the
 * references, the last carries only the lists home. A rank keeps its share's model
 * images for the visiting blocks when they fit in store_bytes, else slices them again
 * for each block. One process is the same loop with one block and no shift. The lists
 * are the same bits as one process's: every distance is (per image and model, whatever
 * the batch, matching.h) and ties go to the lower index. */
#ifndef SPINIFEL_MATCH_RING_H
#define SPINIFEL_MATCH_RING_H

#include <stdint.h>

#include "spinifel/matching.h"
#include "spinifel/mpi.h"
#include "spinifel/reconstruct.h"
#include "spinifel/slicing.h"

/* The work of one generation's slice and match. */
typedef struct {
  const spf_comm *cm;
  spf_slicer *sl;               /* holding the model volume */
  spf_matcher *own;             /* the matcher of this rank's images, reset */
  const spf_match_options *mo;  /* for the visiting blocks' matchers */
  int64_t n_images, np;         /* this rank's images, pixels */
  int64_t n_refs, nb;           /* the grid's references, references per slicing batch */
  int64_t store_bytes;          /* the share's model images kept when they fit */
  const float *images;          /* this rank's, image-major (they travel the ring) */
  double *refq, *refm;          /* scratch: nb quaternions and matrices */
  float *slices;                /* scratch: nb model images */
  spf_step_fn on_step;          /* progress, "slice+match" (may be NULL) */
  void *step_ctx;
  int gen;
} spf_match_job;

/* Out, per own image: its L nearest references (idx, dist: n_images * L, sorted) and its
 * second-best distance. log: t_slice, t_ring and rechecks (this rank's) accumulate.
 * Collective; the error is agreed over the ranks. */
int spf_slice_and_match(const spf_match_job *j, int L, int64_t *idx, float *dist, float *second,
                        spf_generation_log *log);

#endif
