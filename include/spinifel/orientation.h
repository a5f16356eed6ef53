/* The orientation step of an M-TIP generation (reconstruct.h): every image's orientation
 * from the current model, and the images' views at those orientations added to the
 * merger, with one interface for the two orientation models (spf_reconstruct_options
 * .model; the method, its departures from the plain loop and what each was measured to
 * do are in reconstruct.h):
 *
 *  - Euclidean (M-TIP, docs/method.md, "Step 1: slicing" and
 *    "Step 2: orientation matching"): slice the model at every
 *    reference of the grid (slicing.h) and match each image to the nearest model image
 *    (matching.h) under a metric weighting pixels by 1 / the mean image
 *    (pixel_weighting), on the pixels within the resolution schedule (res_start ..,
 *    res_generations); in generations 1 .. soft_generations each image is merged at its
 *    soft_k nearest references with Boltzmann weights exp(-(d - d_best) / (soft_tau
 *    d_best)) (soft assignment), later at its nearest. The matcher holds the weighted
 *    images and is made again only when the weights or the kept list's length change
 *    (the schedules), else reset. Over MPI the references are split and the image blocks
 *    go round a ring of the ranks (src/match_ring.h). The views (one per image, or soft_k
 *    with soft assignment) are merged as one weighted mean image per distinct orientation,
 *    every sum in fixed point (src/merge_views.h); with res_merge only the pixels within
 *    the resolution are merged.
 *  - Poisson (EMC, likelihood.h): each image's probabilities over every reference of
 *    the grid at the annealing factor beta, every reference's probability-weighted view
 *    added to the merger, the per-image fluence updated; floors at model_floor x each
 *    pixel's mean count. Over MPI each rank slices every reference and the views' sums
 *    pass along the ranks in the images' order (src/poisson_step.h).
 *  - Generation 0 (no model yet), either model: each image is merged at its own
 *    orientation, random unless start_from_truth (spf_orienter_start).
 *
 * Either way the merger's sums are exact (spf_merger_exact_sums, bounds set here): the
 * views, and so the whole generation, are the same bits on any number of MPI ranks and
 * threads as in one process.
 *
 * A plan, like the slicer, matcher and merger: made once per run from this rank's
 * images (under MPI its share, the shares consecutive in rank order as spf_share gives:
 * o->first_image), the pixels and the options (o->comm the communicator); executed once
 * per generation with the model volume and the reference grid; freed at the end. Make,
 * start and execute are collective over o->comm (every rank calls them) and agree on the
 * error (all ranks return the same code). Arrays are image-major: images[i * n_pixels
 * + p], orientations[4 i + k] as (w, x, y, z). */
#ifndef SPINIFEL_ORIENTATION_H
#define SPINIFEL_ORIENTATION_H

#include <stdint.h>

#include "spinifel/merging.h"
#include "spinifel/reconstruct.h"
#include "spinifel/results.h"

typedef struct spf_orienter_s spf_orienter;

/* A plan for n_images images of n_pixels valid pixels (images, and s: 3 * n_pixels
 * reciprocal vectors, are kept, not copied: they must outlive the plan), s_max the
 * largest |s| (the slicer's scale, slicing.h). o: resolved options
 * (spf_reconstruct_resolve): o->model EUCLIDEAN or POISSON (else SPF_ERR_OPTION); the
 * orientation settings above, M, oversampling, ref_batch, match_store_mib, nthreads
 * (0: OpenMP's), seed, start_from_truth, comm, first_image and on_step are read (the
 * options are copied). Here the data's figures over every rank are taken: the views'
 * fixed-point scales, the mean image (matching weights; the Poisson model's floors and
 * its likelihood plan). A non-finite value in any rank's images: SPF_ERR_DATA. */
int spf_orienter_make(int64_t n_images, int64_t n_pixels, const float *images, const double *s, double s_max,
                      const spf_reconstruct_options *o, spf_orienter **out);

/* The images over all ranks. */
int64_t spf_orienter_total_images(const spf_orienter *plan);

/* The per-image state (st: orientations, best, best_dist, gap, fluence, entropy) to start
 * from. resume NULL: generation 0's: a random orientation per image (seeded: o->seed and
 * the image's global index; true_quats instead with start_from_truth, may be NULL),
 * best -1, best_dist and gap NaN, entropy NaN, fluence 1, or with the Poisson model and
 * update_fluence each image's photons over the mean (EMC refines it). resume (may be st
 * itself): the resumed state's, copied (best_dist restarts at NaN when resume is st, as
 * it always has: the next matching sets it). */
int spf_orienter_start(spf_orienter *plan, const spf_run_state *resume, const double *true_quats, spf_run_state *st);

/* One generation's orientation step. u_model: the model autocorrelation (M^3) to slice,
 * or NULL before the first model (generation 0: each image at its own orientation, no
 * matching). n_refs: this generation's reference grid (spf_orientation_grid). The merger mg is cleared and
 * receives the views (exact sums); the caller adds the ranks' sums and solves.
 * st: orientations, best, best_dist and gap per image (Poisson: and fluence, entropy).
 * log: n_references, fraction_changed (images whose orientation moved farther than 1.5
 * ball radii of this grid, either Friedel twin counting; 1 in generation 0), rechecks (summed over the ranks),
 * the Poisson figures (beta, mean_entropy, median_gap, median_spread), and the step's
 * seconds: t_slice_match (slicing, matching or the likelihood; the Poisson views come
 * out of its third pass and are in it), t_merge (the Euclidean and generation-0 views
 * into the merger, the merge's first part: the caller adds the solve), t_slice, t_ring,
 * t_reduce, t_likelihood, t_views, t_merge_points. Progress: o->on_step's "slice+match"
 * as references are done, then "merge" 0 where the merge starts (before the Euclidean
 * views; the caller reports "merge" 1 after its solve). */
int spf_orienter_execute(spf_orienter *plan, int generation, int64_t n_refs, const double *u_model, spf_merger *mg,
                         spf_run_state *st, spf_generation_log *log);

void spf_orienter_free(spf_orienter *plan);

#endif
