/* Orientation by Poisson likelihood, for photon-limited images (EMC: Loh & Elser, Phys.
 * Rev. E 80, 026705, 2009; docs/method.md, "Photon-limited data").
 *
 * Image k holds photon counts K_kp (non-negative integers); reference j's model image
 * W_jp >= 0 is in mean photons; phi_k is the image's relative fluence. Up to terms free
 * of j,
 *
 *   L_jk = sum_p K_kp log W_jp - phi_k sum_p W_jp
 *   P_jk = exp(beta (L_jk - max_j' L_j'k)) / Z_k,   Z_k = sum_j exp(beta (L_jk - max))
 *
 * over ALL references j, and reference j's view of the data is
 *
 *   V_jp = sum_k P_jk K_kp   with weight   Wt_j = sum_k P_jk phi_k,
 *
 * whose ratio V_jp / Wt_j is the view merging fits at that orientation.
 *
 * The images are kept sparse (per image, its non-zero pixels and counts), so every
 * product costs photons x references, not pixels x references. Memory is bounded by a
 * batch of references: the references arrive in batches, three times per E-step, which
 * the caller slices (or keeps) identically each time:
 *   1. spf_likelihood_scan:      each image's best and second-best L, and its mean over j;
 *   2. spf_likelihood_normalise: Z_k at the chosen beta (beta may depend on pass 1);
 *   3. spf_likelihood_views:     P, the views and weights of the batch, and per image
 *                                its entropy and expected model photons (fluence).
 *
 * Determinism: L_jk is summed in double over image k's pixels in increasing pixel order
 * (each term count x float log W is exact in double), every per-image sum runs over j in
 * increasing order and every per-reference sum over k in increasing order (each
 * weight's term rounded before it is added, wherever the image sits in the loop), so
 * results are the same bits for any batch size and thread count, and for plans over
 * consecutive shares of the images chained by spf_likelihood_views_onto.
 *
 * Dropped mass: in pass 3 a probability below drop_mass / n_refs is taken as zero, and the
 * views skip an image for a run of references with none left (a saving once the
 * probabilities have concentrated); each image loses at most drop_mass of its probability
 * in all, whatever the batches. */
#ifndef SPINIFEL_LIKELIHOOD_H
#define SPINIFEL_LIKELIHOOD_H

#include <stdint.h>

typedef struct {
  double model_floor;  /* model values below this (photons per pixel) count as this
                          (the log of a non-positive model), default 1e-3 x the mean
                          count per pixel when 0 */
  const float *pixel_floor; /* per-pixel floors instead (n_pixels values > 0, copied at make;
                          NULL: model_floor everywhere). A model merged from few photons
                          is noisy and rings below zero where the data are sparse; a
                          floor at a fraction of each pixel's mean count keeps one photon
                          there from deciding an image's orientation */
  double drop_mass;    /* largest probability an image may lose in pass 3 (default 1e-6;
                          0: keep every reference) */
  int nthreads;        /* 0: OpenMP default */
} spf_likelihood_options;

void spf_likelihood_default_options(spf_likelihood_options *o);

typedef struct spf_likelihood_s spf_likelihood;

/* A plan for n_images images of n_pixels pixels (counts: image-major; copied, sparse).
 * Counts must be finite non-negative integers (SPF_ERR_DATA otherwise). */
int spf_likelihood_make(int64_t n_images, int64_t n_pixels, const float *counts, const spf_likelihood_options *o,
                        spf_likelihood **out);

/* Photons of image k (sum of its counts), and the total number of stored (pixel, count)
 * entries over all images. */
double spf_likelihood_photons(const spf_likelihood *lk, int64_t image);
int64_t spf_likelihood_entries(const spf_likelihood *lk);

/* Start an E-step over n_refs references with fluences phi (n_images, >= 0; NULL: all 1). */
int spf_likelihood_begin(spf_likelihood *lk, int64_t n_refs, const double *phi);

/* Pass 1: references first_ref .. first_ref + count - 1 with model images models
 * (count * n_pixels, image-major, mean photons). Batches must come in increasing order
 * without gaps, the same in every pass. */
int spf_likelihood_scan(spf_likelihood *lk, int64_t first_ref, int64_t count, const float *models);

/* After pass 1 (all n_refs references): per image the best reference (lowest index on
 * ties), its L, the gap to the second best, and the mean of L over the references.
 * Any pointer may be NULL. */
int spf_likelihood_best(const spf_likelihood *lk, int64_t *best, double *best_L, double *gap, double *mean_L);

/* Pass 2, at annealing factor beta in (0, 1]. */
int spf_likelihood_normalise(spf_likelihood *lk, double beta, int64_t first_ref, int64_t count, const float *models);

/* Pass 3: the batch's views (count * n_pixels doubles, V_jp) and weights (count, Wt_j). */
int spf_likelihood_views(spf_likelihood *lk, int64_t first_ref, int64_t count, const float *models, double *views,
                         double *weights);

/* Pass 3 continuing sums: views and weights hold on entry the batch's sums over the
 * images before this plan's (another plan's output for the images just before them) and
 * get this plan's images added, in the same order and operations as one plan holding
 * all: a chain of plans over consecutive shares of the images ends on the same bits
 * (the MPI ranks' Poisson step, src/poisson_step.c). */
int spf_likelihood_views_onto(spf_likelihood *lk, int64_t first_ref, int64_t count, const float *models,
                              double *views, double *weights);

/* After pass 3: per image the entropy of its probabilities (nats; exp of it is the
 * effective number of references), the probability of its best reference, and the
 * EMC fluence phi_k = sum_p K_kp / sum_j P_jk sum_p W_jp (not normalised: the caller
 * scales the mean to 1, over all ranks). Any pointer may be NULL. */
int spf_likelihood_image_stats(const spf_likelihood *lk, double *entropy, double *p_best, double *fluence);

/* The confidence's distant alternative: near(ctx, a, b) is nonzero when references a and
 * b count as one orientation (neighbours on the grid, or a Friedel twin's). Set before
 * pass 2 (not during it: SPF_ERR_ARG), pass 2 keeps per image the best L over the
 * references not near its best; NULL (the default) keeps none. ctx must stay valid
 * through pass 2; near runs on several threads at once, so it must not write. */
typedef int (*spf_likelihood_near_fn)(void *ctx, int64_t a, int64_t b);
int spf_likelihood_set_near(spf_likelihood *lk, spf_likelihood_near_fn near, void *ctx);

/* After pass 2 with a near predicate: per image its best L minus the best L among the
 * references not near its best (+infinity when every reference is near). SPF_ERR_ARG
 * before pass 2 or without a predicate. */
int spf_likelihood_distant_gap(const spf_likelihood *lk, double *gap);

/* Keep pass 1's L_jk (and sum_p W_jp) for passes 2 and 3 when they fit in bytes,
 * (n_images + 1) x n_refs doubles: those passes then skip the products, two thirds of an
 * E-step's work, and read only their batch's place in the order (the models they are
 * given are not read again: they must be pass 1's, as always). 0 (the default): never.
 * Takes effect at the next spf_likelihood_begin (negative bytes: SPF_ERR_ARG).
 * The results are the same bits either way. */
int spf_likelihood_keep(spf_likelihood *lk, int64_t bytes);

/* Keep, in pass 3, each image's k most probable references (0 <= k <=
 * SPF_LIKELIHOOD_TRACK_MAX, else SPF_ERR_ARG; 0, the default: none), the sparse posterior
 * an incremental E-step stores for the images it does not examine again (posterior.h).
 * Takes effect at the next spf_likelihood_begin. */
#define SPF_LIKELIHOOD_TRACK_MAX 1024
int spf_likelihood_track(spf_likelihood *lk, int k);

/* After pass 3 with tracking: per image (refs, probs: n_images x k) its k most probable
 * references, most probable first (equal probabilities: lower index first), and their
 * probabilities P_jk (as floats); slots past the references kept (a probability below the
 * dropped mass) hold -1 and 0. SPF_ERR_ARG before pass 3 ends or without tracking. */
int spf_likelihood_top(const spf_likelihood *lk, int32_t *refs, float *probs);

/* Seconds in the products (passes 1-3) and in the views' scatter, since make. */
void spf_likelihood_timing(const spf_likelihood *lk, double *product_seconds, double *views_seconds);

void spf_likelihood_free(spf_likelihood *lk);

#endif
