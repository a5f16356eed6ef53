/* The M-TIP driver: from images of unknown orientation to a density
 * (docs/method.md, "The outer loop"). The setup resolves the options for the model
 * (spf_reconstruct_pick_model, spf_reconstruct_resolve), makes the merger and the
 * orientation step's plan (which takes the data's figures over every rank: the
 * fixed-point scales, the mean image, the Poisson model's floors) and starts from
 * random orientations (seeded), or from a resumed state. Each generation is then:
 *  1. the schedule: the reference grid (refs_start rising to n_references); the
 *     orientation step keeps its own (resolution, soft assignment, annealing);
 *  2. the orientation step (orientation.h): slice the model at the references and match
 *     every image (Euclidean) or weigh every reference by its likelihood (Poisson), and
 *     add the images' views at their orientations to the merger; generation 0, with no
 *     model yet, merges each image at its random orientation;
 *  3. the merge: the Toeplitz least squares solved by CG along an L-curve of
 *     regularisation weights (merging.h), the intensity clipped at zero when positive;
 *  4. phasing (phasing.h), every phase_every generations and always the first and the last;
 * then the report (the log, the orientation error against the truth when given, the
 * caller's callback), until the fraction of images whose orientation changed falls
 * below a threshold on the final grid or the generation cap is reached.
 *
 * Converging from random orientations needs more than the plain loop, which settles in
 * a wrong local minimum (60-90 degrees median error on the tests' data). What the
 * defaults do, each measured to matter on 2,000 phantom images of 32 x 32:
 *  - the matching metric weights pixels by 1 / the mean image (Poisson-like), so the
 *    outer shells, which carry the orientation, count as much as the bright centre;
 *  - the slices come from the merged autocorrelation (the phased model's is only as good
 *    as phasing, 10-15% Fourier error here);
 *  - soft assignment (deterministic annealing, as in EMC) for the first generations: each
 *    image is merged at its 64 nearest references with Boltzmann weights; this is cheap
 *    because the merge takes one weighted mean image per distinct orientation;
 *  - a coarse reference grid first, refined geometrically to the final one;
 *  - plain CG stopped at 100 iterations, not the preconditioned one run to its tolerance
 *    (early stopping regularises: 7.8 against 9.4 degrees on the demo's data).
 * Departures from the plain loop (docs/method.md, "The outer loop"), documented here;
 * the plain loop is soft_k = 1, refs_start = 0, slice_merged = 0, pixel_weighting = 0.
 * The pixel weights, the soft assignment and the resolution schedule (res_start) are
 * the orientation step's (orientation.h); which autocorrelation is sliced and the
 * reference grid are the driver's, CG the merge's.
 *
 * Two orientation models (model): the Euclidean one above, and for photon-limited data
 * (integer counts, a low mean: the default picks it, spf_reconstruct_pick_model) the
 * Poisson likelihood of EMC (likelihood.h, docs/method.md, "Photon-limited data"). With
 * it each generation slices every reference, computes each image's probabilities over all of
 * them in three passes over the references (the model images are kept between passes
 * when they fit in match_store_mib, and pass 1's log-likelihoods in what they leave of
 * it: the later passes then skip the products), and adds every reference's view (the probability-
 * weighted sum of the images over its weight, sum_k P_jk phi_k) to the Toeplitz merge;
 * CG, the L-curve and phasing are as above. What it adds, each measured to matter:
 *  - annealing: beta starts at Dragonfly's empirical exp(-6.5 (photons / 1e5)^0.15) and
 *    doubles every beta_period (4) generations, but is at least beta_min_spread (2) over
 *    the median image's spread of log L, and at most beta_max (0.5). From a
 *    near-spherical model the photon rule's beta leaves every reference equally likely
 *    and nothing moves (2cex, 5,000 images of 260 photons: flat for 12 generations with a
 *    floor of 1 and doubling every 10; mean shell correlation 0.94 from random
 *    orientations with 2 and 5); near 1, a model merged from few photons pulls each
 *    image to views its own photons made (1,000 phantom images of 100 photons: 0.92
 *    with the cap, 0.86 without, 0.56 at beta 1 throughout);
 *  - per-image fluence phi_k from the probabilities, mean 1, kept in the run state;
 *  - model floors at model_floor x each pixel's mean count, so one photon where the
 *    noisy model is near zero does not decide the orientation;
 *  - the merged intensity clipped at zero (spf_intensity_clip): least squares rings below
 *    zero where the data are sparse, and a Poisson mean cannot be negative;
 *  - accuracy and schedule for counts (spf_reconstruct_resolve): slicing at 1e-3, the
 *    merge's sums at 1e-4, phasing every fifth generation and at the last (the merged
 *    model is the one sliced): the same intensity as 1e-4 / 1e-6 and phasing every
 *    generation (2cex at 280 photons, 20 generations: 0.932 against 0.937 mean shell
 *    correlation), in 140 s instead of 230 s. The stopping rule ends it as the Euclidean
 *    model's (2cex at 260 photons: 26-27 generations, 0.940-0.942 against 0.927-0.931
 *    at a cap of 16, the earlier default, where 22% of the images still moved).
 * The first three are the orientation step's (src/poisson_step.h), the clip the merge's,
 * the last the driver's.
 * Under MPI (comm) each rank holds a share of the images, the shares consecutive in
 * rank order (first_image, as spf_share gives), and slices every reference; the views'
 * sums pass along the ranks in the images' order and the figures over images are
 * gathered, so the run is the same bits as one process's on any number of ranks. The
 * per-image log-likelihood gap to the best distant alternative (a reference beyond 3 ball
 * radii of the best and of its Friedel twin, as the Euclidean confidence) is the state's
 * gap, -log L of the best its
 * best_dist, and the entropy of the probabilities its entropy.
 *
 * The fraction of images that changed compares references of the same grid, or
 * orientations (1.5 ball radii of the new grid) when the grid changed; the stopping rule
 * acts once the grid is final. */
#ifndef SPINIFEL_RECONSTRUCT_H
#define SPINIFEL_RECONSTRUCT_H

#include <stdint.h>

#include "spinifel/merging.h"
#include "spinifel/mpi.h"
#include "spinifel/orientation_error.h" /* the log's orientation error */
#include "spinifel/phasing.h"
#include "spinifel/posterior.h"
#include "spinifel/results.h"

/* Progress within a generation: step is "slice+match" (done / total references),
 * "merge" or "phase" (0 / 1 at the start, 1 / 1 at the end). */
typedef void (*spf_step_fn)(void *ctx, int generation, const char *step, int64_t done, int64_t total);

/* The automatic final reference grid (spf_reconstruct_reference_count). */
typedef struct {
  int64_t n_references;     /* chosen */
  double particle_voxels;   /* D_vox; (M-1)/2 when u never falls below 1% inside the grid */
  double ball_radius_deg;   /* theta, degrees */
  int clamped;              /* -1: raised to min_refs, 1: lowered to max_refs, 0: neither */
} spf_reference_choice;

enum spf_model {
  SPF_MODEL_AUTO = -1,     /* Poisson for integer photon counts with a low mean, else Euclidean */
  SPF_MODEL_EUCLIDEAN = 0, /* nearest model image (M-TIP), soft assignment early */
  SPF_MODEL_POISSON = 1    /* EMC: probabilities from the Poisson likelihood (likelihood.h) */
};

typedef struct {
  int model;               /* enum spf_model (default SPF_MODEL_AUTO) */
  double poisson_mean;     /* auto: Poisson when every value is an integer and the mean count
                              per valid pixel is at most this (default 2) */
  double beta_start;       /* Poisson: annealing factor of generation 1; 0 (default): auto,
                              exp(-6.5 (n / 1e5)^0.15) for the median image's n photons
                              (Dragonfly's empirical rule: 0.10 at 100 photons, 0.07 at 280) */
  double beta_min_spread;  /*   and at least this over the median image's spread of log L (best -
                              mean over references; default 2): from a near-spherical model the
                              rule's beta leaves every reference equally likely, and nothing moves */
  double beta_max;         /*   and at most this (default 0.5; measured below) */
  int beta_period;         /*   beta doubles every beta_period generations, up to 1 (default 0:
                              auto, 4):
                              measured on 1,000 images of 100 photons, beta near 1 lets the
                              noisy model pull each image to the views its own photons made */
  int update_fluence;      /*   1: per-image fluence from the probabilities, as EMC (default 1) */
  double model_floor;      /*   the model counts as at least this fraction of each pixel's mean
                                count (default 0.1): the merged model is noisy where photons are
                                few, and a near-zero value there would let one photon decide */
  int positive_intensity;  /* 1: clip the merged 3D intensity at 0 (a Poisson mean is never
                              negative); default -1: on with the Poisson model */
  int64_t M;               /* grid size, odd (default 31) */
  double oversampling;     /* NUFFT coordinates x = pi s / (s_max * oversampling) (default 1) */
  int64_t n_references;    /* reference orientations for matching (default 0: auto, from the data
                              after generation 0, spf_reconstruct_reference_count, at least
                              refs_start, at most refs_max; the command
                              line uses 3,240 and no schedule with the Poisson model, whose
                              probabilities cover every reference each generation) */
  int64_t refs_max;        /* the automatic count's cap (default 1000000) */
  int64_t refs_start;      /* reference schedule: generation 1 uses refs_start (default 2000; 0: n_references), */
  int refs_generations;    /*   rising geometrically to n_references at this generation (default 16) */
  int64_t ref_batch;       /* references sliced per batch (default 1000) */
  int max_generations;     /* default 0: auto, 60 (the stopping rule usually ends a run at 18-30) */
  double stop_fraction;    /* stop when fewer images change orientation (default 0.02) */
  int n_rho;               /* L-curve points (default 5) */
  double rho_min, rho_max; /* regularisation range relative to sum(w) / M^3 (default 1e-3 .. 10) */
  double phi;              /* ball penalty relative to sum(w) / M^3 (default 10) */
  double slice_tol;        /* slicing accuracy (default 0: auto, 1e-4; 1e-3 with the Poisson
                              model, whose counts are far noisier; merge.nufft_tol likewise:
                              0 is 1e-5, 1e-4 with the Poisson model, both summed in
                              single precision) */
  int phase_every;         /* phase every this many generations and at the last (default 0:
                              auto: 5 with slice_merged 1 or 2, where the density feeds only
                              the next phasing, 1 with 0; measured the same density on the
                              demo's data and on 2cex at 280 photons, BENCHMARKS.md); every
                              generation whose phased model is sliced next phases */
  double res_start;        /* resolution schedule: generation 1 matches on pixels with
                              |s| <= res_start * s_max, rising linearly to all pixels at
                              generation res_generations (default 1: no schedule) */
  int res_generations;     /* default 5 */
  int res_merge;           /* 1: merge only those pixels too (default 0) */
  int use_prior;           /* 1: merge with rho u0 from the previous model (default 0: it slowed
                              convergence, see spf_reconstruct_default_options) */
  int continue_phasing;    /* 1: phase from the previous density and support (default 1) */
  int pixel_weighting;     /* matching metric: 0 plain Euclidean, 1 weighted by 1 / the mean
                              image (Poisson-like; default) */
  int soft_k;              /* soft assignment: merge each image at its soft_k nearest references (default 64) */
  double soft_tau;         /*   with weights exp(-(d - d_best) / (soft_tau d_best)) (default 0.3) */
  int soft_generations;    /*   in generations 1 .. soft_generations (default 8; 0: hard only) */
  int local_refine;        /* Euclidean, on the final grid: refine each image's match off the grid
                              by a pattern search of this many steps, from half the grid's ball
                              radius, halving (default 3; 0: the grid's orientations). The
                              views are then merged at the refined orientations */
  int slice_merged;        /* the model each generation slices: 1 the merged autocorrelation, 0 the
                              phased density's, 2 the phased one while the reference grid grows
                              (generations before refs_generations) and the merged one on the
                              final grid; default -1: auto, 2 (Euclidean), 1 (Poisson). The
                              phasing's support and positivity break the mixtures of near-
                              symmetric frames a merged model can settle in on noisy data
                              (BENCHMARKS.md "Every start converges"); the merged model is the
                              more accurate once the orientations hold */
  int slice_phase_cycles;  /* phasing cycles of a phasing whose model is sliced next (default 1:
                              it continues from the last density every generation; 1, 3 and 10
                              settled the hardest starts seen alike, BENCHMARKS.md) */
  int phase_average;       /* the last generation's density (the output) is the mean of this many
                              phasings of the last merge from the same start, the first at
                              phase.shrinkwrap_threshold, the others at it times 1.25^-1, 1.25,
                              1.25^-2, 1.25^2, ... (default 5; 1: one phasing; at most 100).
                              Each phasing's fixed point carries errors of its own that the
                              mean averages out:
                              correlation with the truth 0.963-0.966 -> 0.970-0.980 on the demo,
                              0.94-0.95 -> 0.97-0.98 with Poisson noise (BENCHMARKS.md). Only
                              the output: what later generations start from is the first's.
                              The others run side by side, a thread each */
  int start_from_truth;    /* diagnostics: generation 0 uses true_quats (default 0) */
  spf_merge_options merge;
  spf_phase_options phase;
  uint64_t seed;
  int nthreads;
  int verbose;             /* 1: a line per generation on stderr */
  const spf_comm *comm;    /* MPI: the images are this rank's share (default NULL: one process).
                              Euclidean: each rank slices its share of the references, the
                              image blocks go round the ranks, every sum over images is
                              exact; Poisson: each rank slices every reference, the views'
                              sums pass along the ranks. The result is the same bits as
                              one process's (with the same threads per process) */
  int64_t first_image;     /*   global index of this rank's first image (default 0); the
                                shares consecutive in rank order (spf_share) */
  int64_t match_store_mib; /*   each rank slices its share of the references once per
                                generation and keeps the model images for the visiting
                                image blocks when they fit in this (default 4096), else
                                slices them again for each of the P blocks; the Poisson
                                model keeps its model images and log-likelihoods
                                (8 bytes per image and reference) in it */
  spf_step_fn on_step;     /* progress callback (default NULL) */
  void *step_ctx;
  const spf_posterior_views *fixed_views;
                           /* Poisson: the views and weights of images this run does not
                              examine (posterior.h: kept probabilities), added to every
                              generation's; NULL (default): none. Its reference count must
                              be every generation's of the run (n_references, the schedule
                              done by the resumed generation), its pixels the images', and
                              the run a resume with a model, else SPF_ERR_OPTION; each rank that merges
                              a batch adds them once (give every rank the same) */
} spf_reconstruct_options;

void spf_reconstruct_default_options(spf_reconstruct_options *o);

typedef struct {
  int generation;
  int model;                    /* enum spf_model in use (never AUTO) */
  int64_t n_references;         /* of this generation's grid (0 in generation 0) */
  spf_reference_choice refs_choice; /* the automatic final grid, in the generation that chose
                                   it (n_references 0 otherwise) */
  double fraction_changed;      /* images whose orientation changed: moved farther than 1.5
                                   ball radii of this generation's grid, a step to a
                                   neighbouring reference not counting (1 in generation 0) */
  double beta;                  /* Poisson: annealing factor (NAN otherwise) */
  double mean_entropy;          /* Poisson: mean entropy of the images' probabilities (nats) */
  double median_gap;              /* Poisson: median log-likelihood gap best - second best */
  double median_spread;         /* Poisson: median over images of best - mean log-likelihood */
  double negative_fraction;     /* voxels of the merged intensity below 0 before any clipping */
  double median_orientation_error_deg; /* against the truth when given (else NAN) */
  double p90_orientation_error_deg;    /* its 90th percentile */
  int cg_iterations;
  double cg_residual, rho_chosen;
  double phase_error;           /* final Fourier-space error of phasing */
  int64_t support_size;
  double t_slice_match, t_merge, t_phase; /* seconds */
  double t_slice;               /* the slicing part of t_slice_match */
  double t_likelihood;          /* Poisson: the products of counts and log-models (in t_slice_match) */
  double t_views;               /* Poisson: probabilities and views (in t_slice_match) */
  double t_merge_points;        /* Poisson: the views' type-1 sums into the merger (in t_slice_match) */
  double t_reduce;              /* the MPI sums and broadcasts of the merge (in t_merge) */
  double t_ring;                /* passing image blocks round the ranks (in t_slice_match) */
  int64_t rechecks;             /* image-reference pairs matching measured again in a fixed
                                   order (all ranks), against images x references by sgemm */
} spf_generation_log;

/* A callback after each generation (may be NULL) with the log and the run's state (a
 * checkpoint can be written from it); returns 0 to go on. */
typedef int (*spf_generation_fn)(void *ctx, const spf_generation_log *log, const spf_run_state *state);

/* Reconstruct from n_images images of n_pixels valid pixels each (images: image-major,
 * only the valid pixels, in the order of s), s: 3 * n_pixels reciprocal vectors (any
 * unit, consistent). true_quats (n_images * 4, may be NULL) only feeds the log.
 * out: the caller's state (M and n_images set, every array allocated) receives the
 * result: orientations, best_dist and gap per image, rho, u (the last merged
 * autocorrelation), u_model, support, generation (generations run).
 * resume (may be NULL, may be out itself): a state after a complete generation, from
 * which the run continues exactly as it would have without the stop. */
int spf_reconstruct(int64_t n_images, int64_t n_pixels, const float *images, const double *s,
                    const double *true_quats, const spf_reconstruct_options *o, const spf_run_state *resume,
                    spf_generation_fn on_generation, void *ctx, spf_run_state *out);

/* Fill the options left at 0 (auto) for model (SPF_MODEL_POISSON or _EUCLIDEAN): the
 * accuracies, the generation cap, beta's period and the phasing schedule.
 * spf_reconstruct calls it; a caller that reports or records the options may call it
 * first (the values then stand). */
int spf_reconstruct_resolve(spf_reconstruct_options *o, int model);

/* The final reference grid for the data (n_references 0: auto), chosen once, from the
 * merged autocorrelation u of generation 0 (M^3, centred): the images at random
 * orientations make it the spherical average, whose radius is the particle's size. A
 * rotation by theta moves the outermost pixel (resolution d = 1 / s_max) by theta / d;
 * the intensity of a particle D across varies on the scale 1 / D and is sampled at its
 * Nyquist interval 1 / (2 D): the grid holds one orientation per ball of rotations of
 * radius theta = d / (2 D) (spf_orientation_ball_radius), finer gains nothing the data
 * can tell apart. In grid units (voxel d / (2 oversampling)) theta = oversampling / D_vox,
 * D_vox the radius (voxels) at which u's shell mean falls below 1% of its centre: the
 * diameter of the sphere that scatters alike (46 A for the phantom, whose atoms reach
 * 34 A from the centre and whose radius of gyration is 18.6 A). The count is kept within
 * [min_refs, max_refs]. */
int spf_reconstruct_reference_count(int64_t M, const double *u, double oversampling, int64_t min_refs,
                                    int64_t max_refs, spf_reference_choice *choice);

/* Over every rank of comm (may be NULL): how many values of the images are not photon
 * counts (non-negative integers up to 1e7), and the mean count per value. */
int spf_photon_count_stats(const spf_comm *comm, int64_t n_images, int64_t n_pixels, const float *images,
                           int64_t *not_counts, double *mean);

/* The model for data: opts->model unless AUTO, then Poisson when every value of every
 * image is a non-negative integer and the mean count per pixel is at most
 * opts->poisson_mean (over all ranks of opts->comm). why (may be NULL) receives one line
 * saying what was chosen and why. */
int spf_reconstruct_pick_model(int64_t n_images, int64_t n_pixels, const float *images,
                               const spf_reconstruct_options *opts, int *model, char *why, size_t why_len);

#endif
