/* Internal: views into the merger, the same bits on any number of MPI ranks.
 *
 * A view is one image at one orientation with a weight: hard matching gives each image
 * one view (weight 1), soft assignment several (Boltzmann weights summing to 1),
 * generation 0 one at the image's own random orientation. The least-squares misfit of
 * all images that share an orientation, sum_i w_i ||A u - d_i||^2, equals
 * W ||A u - dbar||^2 + const with W = sum w_i and dbar the weighted mean image: one slice
 * per distinct orientation carries the same information as every image, so the merge's
 * NUFFTs see at most min(images, references) slices whatever the soft assignment's
 * spread. Every sum over images (W, W dbar, and the merger's Toeplitz kernel,
 * right-hand side and misfit constant) is taken in fixed point (fixed_point.h), so it is
 * the same bits whichever ranks hold the images (reconstruct.h, "Under MPI"). */
#ifndef SPINIFEL_MERGE_VIEWS_H
#define SPINIFEL_MERGE_VIEWS_H

#include <stdint.h>

#include "spinifel/merging.h"
#include "spinifel/mpi.h"
#include "spinifel/slicing.h"

/* One image at one orientation with a weight: key >= 0 is a reference of the grid,
 * key < 0 the own orientation of (global) image -1 - key (generation 0); image is the
 * rank's local index. */
typedef struct {
  int64_t key, image;
  double w;
} spf_view;

/* The views' fixed-point scales, from the data of every rank: per pixel for sum w d_p
 * (bounded by n_total max |d_p|, as the weights of an image sum to 1), for sum w, and
 * the merger's exact-sum bounds (spf_merger_exact_sums): sum w <= n_total n_pixels,
 * sum w |b| <= n_total sum_p max |d_p|, sum w b^2 <= n_total sum_p max d_p^2 (a mean
 * image is no larger than its images). */
typedef struct {
  double *pix_scale; /* n_pixels: 2^-e_p */
  double *pix_unit;  /* n_pixels: 2^e_p */
  double w_scale, w_unit;
  double weight_bound, wb_bound, wb2_bound;
} spf_view_scales;

/* The scales for this rank's n_images images (image-major, n_pixels each) and every
 * other rank's (a maximum and a count over comm, exact); *n_total: images over all
 * ranks. A non-finite value in any rank's images: SPF_ERR_DATA on every rank (it would
 * make the fixed-point sums meaningless). Free with spf_view_scales_free. Collective. */
int spf_view_scales_make(const spf_comm *comm, int64_t n_images, int64_t n_pixels, const float *images,
                         spf_view_scales *sc, int64_t *n_total);
void spf_view_scales_free(spf_view_scales *sc);

/* Clear the merger (exact sums at sc's bounds) and add n_views views (sorted here, in
 * place) of this rank's images, the same bits on any number of ranks:
 *  1. each rank sums its views per distinct orientation in fixed point (W and W dbar);
 *  2. the distinct orientations of all ranks, sorted, are cut into batches of `slots`,
 *     the batches shared out over the ranks; each rank's parts go to the batches' owners
 *     (one personalised exchange), which add them as integers: every orientation's W and
 *     dbar are then the same bits whichever ranks held its images;
 *  3. each owner adds its batches, one merger call per batch, whose sums the merger keeps
 *     in fixed point; the caller adds the ranks' integer sums (spf_merger_fixed_sums).
 * So every NUFFT sees the same points in the same batches as in one process. Keys >= 0
 * are orientations of the grid of n_refs; a key < 0 takes its quaternion from own_quats
 * (this rank's images, first_image the global index of the first). pixel_on (may be
 * NULL): pixels with 0 are left out of the merge. x (3 slots n_pixels), b and w (slots
 * n_pixels) are scratch. *t_comm accumulates the exchange's seconds. Collective. */
int spf_merge_views(spf_merger *mg, const spf_slicer *sl, const spf_comm *comm, int nthreads, int64_t n_views,
                    spf_view *views, int64_t n_refs, int64_t first_image, const double *own_quats, int64_t n_pixels,
                    const float *images, const float *pixel_on, int64_t slots, const spf_view_scales *sc, double *x,
                    double *b, double *w, double *t_comm);

#endif
