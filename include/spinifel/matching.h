/* Orientation matching: each experimental image takes the reference (model image) at
 * the smallest Euclidean distance.
 *
 *   dist(d, m) = || sqrt(w) (d - a m) ||^2 = ||d||^2 + a^2 ||m||^2 - 2 a d.m
 *
 * with per-pixel weights w (0 excludes a pixel, e.g. masked) and a scale a chosen by
 * the scale mode. The cross terms d.m for a block of images against a batch of models
 * are one single-precision matrix product (CBLAS sgemm). sgemm's rounding depends on
 * the call's shape and threads, so it only shortlists: a pair that may, within that
 * rounding's bound, beat what an image keeps is measured again by a dot product in an
 * order fixed by n_pixels alone, in double. The distances kept, and so the matches, are
 * the same bits however the references are batched, the images blocked or split over
 * matchers (MPI ranks), or the threads set; and free of sgemm's cancellation in
 * ||d||^2 - (d.m)^2 / ||m||^2. (The global scale, one factor per batch, still depends on
 * the batches.) Models arrive in batches and
 * each image keeps a running best and second best, so memory is bounded by the batch
 * and image-block sizes, never by the number of references.
 *
 * Arrays are row-major: data[i * n_pixels + p], models[j * n_pixels + p]. */
#ifndef SPINIFEL_MATCHING_H
#define SPINIFEL_MATCHING_H

#include <stdint.h>

enum spf_scale_mode {
  SPF_SCALE_NONE = 0,      /* a = 1 */
  SPF_SCALE_GLOBAL = 1,    /* one a per model batch, a^2 = mean ||d||^2 / mean ||m||^2 (SpiniFEL's) */
  SPF_SCALE_PER_IMAGE = 2  /* least squares per pair, a = max(d.m, 0) / ||m||^2 (varying fluence) */
};

typedef struct {
  int scale;                 /* enum spf_scale_mode; default SPF_SCALE_PER_IMAGE */
  const float *pixel_weight; /* n_pixels weights >= 0, or NULL for all 1 (copied at make) */
  int64_t image_block;       /* images per matrix product; 0: auto, keeping the product's
                                output under 64 MiB */
  int nthreads;              /* 0: OpenMP default; also sets OpenBLAS's thread count */
  int keep;                  /* nearest references kept per image, sorted (default 1; up to
                                4096): soft assignment merges each image at several */
} spf_match_options;

void spf_match_default_options(spf_match_options *o);

typedef struct spf_matcher_s spf_matcher;

/* A matcher for n_images images of n_pixels pixels (data is copied, weighted). */
int spf_matcher_make(int64_t n_images, int64_t n_pixels, const float *data,
                     const spf_match_options *opts, spf_matcher **out);

/* Compare every image with n_models models whose reference indices are
 * first_ref .. first_ref + n_models - 1. Equal distances go to the lower index. */
int spf_matcher_add_batch(spf_matcher *m, int64_t first_ref, int64_t n_models, const float *models);

/* Per image: index of the best reference (-1 before any batch), its distance, and the
 * second-best distance (the gap is a confidence figure). Any pointer may be NULL. */
int spf_matcher_results(const spf_matcher *m, int64_t *best, float *best_dist, float *second_dist);

/* Per image, its `keep` nearest references in increasing distance: index and dist are
 * n_images * keep (row i: image i); unfilled entries are -1 and FLT_MAX. Either may be NULL. */
int spf_matcher_nearest(const spf_matcher *m, int64_t *index, float *dist);

/* Start from earlier results instead of none: per image its keep nearest (index, dist,
 * sorted, as spf_matcher_nearest gives them) and its second-best distance, e.g. another
 * matcher's over other references (MPI ranks). The results are then those over both
 * sets of references. Unsorted lists or a second distance below the best: SPF_ERR_ARG. */
int spf_matcher_seed(spf_matcher *m, const int64_t *index, const float *dist, const float *second_dist);

/* Forget all batches (keep the data) to match again, e.g. in the next generation. */
void spf_matcher_reset(spf_matcher *m);

/* Seconds in the matrix products and in the distance scans, since make or reset. */
void spf_matcher_timing(const spf_matcher *m, double *gemm_seconds, double *scan_seconds);

/* Pairs measured again by the fixed-order dot product since make or reset (the cost of
 * matches that do not depend on how the work is cut). */
int64_t spf_matcher_rechecks(const spf_matcher *m);

void spf_matcher_free(spf_matcher *m);

#endif
