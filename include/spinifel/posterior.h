/* Stored orientation posteriors: the Poisson model's incremental E-step (Neal & Hinton,
 * "A view of the EM algorithm that justifies incremental, sparse, and other variants",
 * 1998; docs/watch.md, "Constant latency").
 *
 * The Poisson M-step needs, per reference j, the view V_jp = sum_k P_jk K_kp and the
 * weight Wt_j = sum_k P_jk phi_k over EVERY image k (likelihood.h). An image whose
 * probabilities are not computed again this generation can still take part with the
 * ones it had: its k most probable references kept from its last E-step
 * (spf_likelihood_track, spf_run_state.posterior_*). These sums over such images are
 * made here once, then added to the sums of the images that are examined
 * (spf_reconstruct_options.fixed_views): a generation then costs the examined images,
 * not all of them, and every image still counts in the model.
 *
 * Sums run over the images in the order they are added, each image's references in
 * its stored order, in double: the same images in the same order give the same bits. */
#ifndef SPINIFEL_POSTERIOR_H
#define SPINIFEL_POSTERIOR_H

#include <stdint.h>

typedef struct spf_posterior_views_s spf_posterior_views;

/* Empty sums for n_refs references of n_pixels pixels ((n_refs + 1) x n_pixels doubles;
 * SPF_ERR_SIZE when that overflows). */
int spf_posterior_views_make(int64_t n_refs, int64_t n_pixels, spf_posterior_views **out);

/* Add n images: counts (n x n_pixels, non-negative finite integers, else SPF_ERR_DATA),
 * fluence phi (n, finite >= 0), and per image k (reference, probability) pairs (refs,
 * probs: n x k; a reference of -1 ends the image's list; a reference >= n_refs or a
 * probability not in [0, 1]: SPF_ERR_DATA, nothing added for that image or after). */
int spf_posterior_views_add(spf_posterior_views *pv, int64_t n, const float *counts, const double *phi, int k,
                            const int32_t *refs, const float *probs);

/* Reference j's view (n_pixels) and weight; NULL when j is out of range. */
const double *spf_posterior_views_view(const spf_posterior_views *pv, int64_t j);
double spf_posterior_views_weight(const spf_posterior_views *pv, int64_t j);

/* Sizes, and the added images' totals, for the merger's bounds (poisson_step.c): images,
 * sum of phi, photons, largest photons / phi (images with phi > 0). */
int64_t spf_posterior_views_refs(const spf_posterior_views *pv);
int64_t spf_posterior_views_pixels(const spf_posterior_views *pv);
void spf_posterior_views_totals(const spf_posterior_views *pv, int64_t *images, double *phi_sum, double *photons,
                                double *kmax);

void spf_posterior_views_free(spf_posterior_views *pv);

#endif
