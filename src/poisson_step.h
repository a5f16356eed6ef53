/* Internal: the Poisson (EMC) orientation step of a generation (reconstruct.h, "Two
 * orientation models"; likelihood.h): probabilities over every reference of the grid,
 * each reference's view of the data added to the merger.
 *
 * Three passes over the references (likelihood.h), whose model images are kept between
 * passes when they fit in store_bytes, else sliced again, and pass 1's log-likelihoods
 * too in what the model images leave of store_bytes (spf_likelihood_keep):
 *   1. each image's best reference and the spread of its log-likelihood;
 *   2. the annealing factor beta (spf_poisson_beta, from the medians over all images),
 *      then the normalisations;
 *   3. the views, merged in batches of references (the views chain, below); then per
 *      image its entropy, gap and fluence.
 * Over MPI each rank holds a share of the images (the shares consecutive in rank order,
 * as spf_share gives) and slices every reference; passes 1 and 2 are per image; what
 * sums or ranks over images (beta's medians, the views, the fluence's mean, the log's
 * figures) is taken over all images in their order, so the step is the same bits on any
 * number of ranks as in one process.
 *
 * The views chain: a view sums over all images in their order, so over P ranks a batch's
 * sums pass along the ranks: rank 0 starts them from its images, each next rank continues
 * them with its own (spf_likelihood_views_onto) and the last completes them: the same
 * additions in the same order as one process, hence the same bits (fixed-point sums of
 * the ranks' parts would not be: rounding each rank's part is not rounding the whole).
 * At step t rank r works on batch t - r, a pipeline that fills in P - 1 steps. The last
 * rank sends each completed batch b to rank b mod P, which holds it until every rank
 * holds one (every P batches); then all merge at once, so the type-1 sums are spread
 * over the ranks and none waits on another's. Each rank's merger keeps only its batches,
 * in fixed point: their sum over the ranks (the caller's spf_merger_fixed_sums
 * reduction) counts each view once and is exact. One process runs the same loop,
 * merging every batch as it completes. */
#ifndef SPINIFEL_POISSON_STEP_H
#define SPINIFEL_POISSON_STEP_H

#include <stdint.h>

#include "spinifel/likelihood.h"
#include "spinifel/merging.h"
#include "spinifel/mpi.h"
#include "spinifel/posterior.h"
#include "spinifel/reconstruct.h"
#include "spinifel/slicing.h"

typedef struct {
  const spf_comm *cm;
  spf_likelihood *lk;    /* this rank's images */
  spf_slicer *sl;        /* holding the model volume */
  spf_merger *mg;        /* receives the views */
  const spf_reconstruct_options *o; /* beta's schedule, update_fluence, on_step */
  int gen;
  int64_t n_images, np, n_refs, nb, slots, store_bytes;
  double *refq, *refm;   /* scratch: nb quaternions and matrices */
  float *slices;         /* scratch: nb model images */
  double *x, *b, *w;     /* scratch: merge points of `slots` orientations: coordinates, values, weights */
  double *phi;           /* n_images: fluence, updated when o->update_fluence (mean 1 over all images) */
  int64_t *best;         /* out, n_images: the best reference */
  float *best_dist, *gap, *entropy; /* out, n_images: -log L of the best, the log-likelihood
                                       gap to the best distant alternative (the confidence),
                                       the entropy (nats) */
  const spf_posterior_views *fixed; /* may be NULL: views added to every batch's */
  int track_k;           /* > 0: each image's track_k most probable references into: */
  int32_t *post_ref;     /*   out, n_images x track_k */
  float *post_p;
  double near_limit;     /* radians: a reference within this of the best, or of the best
                            turned 180 degrees about the beam, is not an alternative */
} spf_poisson_job;

/* The step: log gets beta, mean_entropy, median_gap (best - second best), median_spread, t_likelihood,
 * t_views, t_merge_points, and t_slice accumulates. Collective; the error is agreed. */
int spf_poisson_step(const spf_poisson_job *j, spf_generation_log *log);

#endif
