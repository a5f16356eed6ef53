/* Reconstruction while the data arrive (spinifel watch, docs/watch.md): the pieces the
 * command's loop is made of, each a pure function of its arguments.
 *
 *  - the half sets: each image belongs to one of two halves for good, from its burst
 *    file's name and its index in the file (spf_watch_half), so the two reconstructions
 *    stay independent however the bursts arrive and whatever came before;
 *  - continuation: a run's state grown by the images of a new burst
 *    (spf_run_state_extend); spf_reconstruct resumed from it matches every image,
 *    the new ones included, against the current model in its next generation and refines
 *    all of them in the generations after;
 *  - feedback: the fraction of low-confidence images (spf_watch_low_confidence), the
 *    trend of resolution against the number of images and the count projected for a
 *    target resolution with its uncertainty (spf_watch_project_shells for the data
 *    resolution, spf_watch_project for a line through resolutions), and the warnings
 *    (spf_watch_assess).
 *
 * Units: resolutions in Angstrom (d, smaller is better), image counts as doubles. */
#ifndef SPINIFEL_WATCH_H
#define SPINIFEL_WATCH_H

#include <stdint.h>

#include "spinifel/results.h"

/* The half set (0 or 1) of image `index` of the burst file called `name` (its name
 * without the directory): bit 0 of a 64-bit FNV-1a hash of the name and the index,
 * mixed (splitmix64). Depends on nothing else: not on arrival order, other files or the
 * number of images so far. Halves are equal in size on average (binomial spread). */
int spf_watch_half(const char *name, int64_t index);

/* A state for old->n_images + n_new images (out is allocated here; free it with
 * spf_run_state_free): old's volumes, counters and per-image state first, then n_new
 * images as generation 0 would start them: a random orientation from (seed, first_new + i)
 * (spf_random_rotation), best -1, best_dist and gap NaN, fluence 1, entropy NaN.
 * last_fraction_changed is set to 1 (the new images are not matched yet), so that a
 * resume from out does not take the old run's stopping rule as met. n_new >= 0. */
int spf_run_state_extend(const spf_run_state *old, int64_t n_new, uint64_t seed, int64_t first_new,
                         spf_run_state *out);

/* Low-confidence images: the confidence of an image is its gap (the state's: the relative
 * gap to the nearest distant alternative, or the log-likelihood gap to it with the Poisson model); an
 * image is low-confidence when its gap is below `fraction` of the median gap of all n
 * images (or not finite). *low receives the fraction of images first .. first + count - 1
 * that are (0 when count is 0). */
int spf_watch_low_confidence(int64_t n, const float *gap, double fraction, int64_t first, int64_t count,
                             double *low);

/* The trend of resolution with data: a least-squares line log(1/d) = a + b log N over the
 * last `window` (>= 2) of the n points (N images, d Angstrom, both finite and > 0; points
 * where the FSC never fell below its threshold say nothing of the trend and should be
 * left out by the caller), and the count N* where it reaches d_target:
 * log N* = (log(1/d_target) - a) / b. Its uncertainty is the inverse prediction's
 * standard error, s / |b| sqrt(1/n + (log N* - mean log N)^2 / Sxx), s the residuals'
 * standard deviation (n - 2 degrees of freedom), given as
 * the range [n_low, n_high] = exp(log N* -+ se). */
typedef struct {
  int status;        /* SPF_WATCH_* below */
  int n_used;        /* points fitted */
  double a, b;       /* the line; b is the exponent of 1/d ~ N^b */
  double n_target;   /* projected images for d_target (NaN unless status is PROJECTED or REACHED) */
  double n_low, n_high; /* the range: one standard error either side (spf_watch_project), or
                           the backtests' largest error (spf_watch_project_shells) */
  double kappa;      /* spf_watch_project_shells: the backtests' largest error in log N per unit
                        of log N extrapolated (NaN before there is one; infinite when a backtest
                        did not reach a resolution the data did) */
} spf_watch_projection;

/* The statuses, as spf_watch_project gives them; spf_watch_project_shells gives the same
 * ones by its own rules (five rows; not reaching d_target within 1000 x N; its range past
 * 10 N*: see there). */
enum {
  SPF_WATCH_PROJECTED = 0,  /* n_target projected from the trend */
  SPF_WATCH_REACHED = 1,    /* the last point is already at or below d_target: n_target its N */
  SPF_WATCH_FEW_POINTS = 2, /* fewer than three usable points (a and b are fitted from two): a
                               line through two has no uncertainty, and on the benchmark's
                               stream the first two settled bursts projected 39-69% too few */
  SPF_WATCH_NOT_IMPROVING = 3, /* the fitted exponent b is below SPF_WATCH_MIN_EXPONENT: more data
                                  hardly helped (ten times the images would gain less than 12%) */
  SPF_WATCH_UNCERTAIN = 4,     /* projected, but one standard error spans more than a factor 10
                                  either way: n_target and the range are given, and mean little */
  SPF_WATCH_SETTLING = 5       /* no burst's orientations have settled yet (spf_watch_first_settled):
                                  the resolution still moves with the search, not with the data */
};
#define SPF_WATCH_MIN_EXPONENT 0.05

/* Where the trend starts: the first of n bursts whose orientations have settled, that is
 * whose last generation changed the orientation of fewer than `fraction` (default
 * SPF_WATCH_SETTLED_FRACTION) of the images it examined in each half (changed[i]: the
 * larger of the two halves' fractions; NaN, unknown, counts as settled); n when none has.
 * Fine grids on few, small images keep changing a larger share between neighbouring
 * references with the orientations found (the test stream of tests/cli_watch.sh: 0.08-0.24
 * started from the truth), hence the watch's --settled-fraction. Before it the half sets'
 * resolution improves as the orientations are found, not as the data grow, and a trend
 * through those bursts projects far too few images: on the benchmark's stream (bursts of
 * 2,000 images at 474 photons, BENCHMARKS.md) 40-60% too few after bursts 6-8 from all
 * bursts; from the first settled one (the fourth: 0.044 changed, 0.55, 0.21 and 0.09
 * before it) -35% to +135%, with the count that reached each target inside the one
 * standard error range every time. */
#define SPF_WATCH_SETTLED_FRACTION 0.05
int spf_watch_first_settled(int n, const double *changed, double fraction);

int spf_watch_project(int n, const double *n_images, const double *resolution_a, int window, double d_target,
                      spf_watch_projection *p);

/* The trend of the data resolution shell by shell, and the count projected for d_target.
 * Rows i = 0 .. n-1 of shell_corr (each (M - 1) / 2 + 1 wide: the halves' intensity shell
 * correlation after a burst, shell 0 unread, a NaN shell as no correlation) at n_images[i]
 * images (> 0, increasing). Each shell's correlation c is read as a signal-to-noise ratio
 * c / (1 - c) (c clamped to [1e-3, 0.999]) and fitted, over the last `window` (>= 3) rows,
 * as a power of N: log SNR = a_k + g_k log N with g_k at most 1, since independent images
 * add signal-to-noise at most in proportion to their number (a faster rise is orientations
 * still improving, which stops). The model's resolution at N is where its predicted curve
 * falls below `threshold` for good (spf_fsc_resolution_outer, in the unit of voxel), and
 * N* the first count, from the last row's on, where it reaches d_target (NOT_IMPROVING if
 * not within 1000 times). Why shells and not a line through the resolutions: the
 * resolution crawls where the outermost shells stop gaining (the detector's edge, the
 * orientations' precision) while the inner ones still gain as N; a power law through
 * the resolutions saw a constant exponent early, then bent, and projected 18-30% too few
 * on the benchmark's stream at 0.5, where this model projected within 20% (BENCHMARKS.md).
 * The range is from backtests: each of the last fits before the latest (3 rows or more,
 * ending two rows or more before it, at most `window` of them) projects the last row's
 * resolution; kappa is the largest error of those in log N per unit of log N it
 * extrapolated. The range is every count whose distance from the last row the projection
 * could miss by that share: log N_last + h / (1 + kappa) .. log N_last + h / (1 - kappa),
 * h = log(N* / N_last) but at least the last burst's step in log N. A projection needs
 * five rows (FEW_POINTS before: three to fit and two for a backtest); UNCERTAIN when the
 * upper end passes 10 N*, kappa is 1 or more, or no backtest has one (the last row no
 * finer than those before: kappa NaN, the range open above). a and b give the model's
 * local line log(1/d) = a + b log N at the last row (b its exponent). The caller leaves out rows
 * before the orientations settled and rows at Nyquist, as for spf_watch_project. */
int spf_watch_project_shells(int n, const double *n_images, int64_t M, const double *shell_corr, double voxel,
                             double threshold, int window, double d_target, spf_watch_projection *p);

/* The data resolution: where the halves' intensity shell correlation (spf_shell_correlation,
 * each shell's mean removed; shell 0 NaN) falls below `threshold` for good, as
 * spf_fsc_resolution_outer reads an FSC (shell 0 counts as above; a NaN shell as below), in
 * the unit of voxel (shell k is M voxel / k). No phasing is in it: it says what the data
 * and their orientations hold. On the benchmark's stream (BENCHMARKS.md) it moved smoothly
 * with the images (11.8 to 10.9 A at 0.5 from 8,000 to 34,000 images) while the density's
 * FSC resolution scattered over 12.5-15.4 A from one phasing to the next; the watch's trend
 * and projection read it by default (--trend). NaN when M < 3 or an argument is NULL. */
double spf_watch_data_resolution(int64_t M, const double *shell_corr, double voxel, double threshold);

/* One burst's figures, as the warnings read them. */
typedef struct {
  int64_t n_images;        /* images so far, this burst's included */
  double resolution_a;     /* the half sets' FSC resolution after it (NaN if unknown) */
  double low_confidence;   /* the fraction of this burst's images of low confidence */
  double mean_photons;     /* this burst's mean photons (or intensity sum) per image */
} spf_watch_point;

typedef struct {
  int flat_bursts;         /* resolution flat: over the last flat_bursts bursts (default 3) */
  double flat_fraction;    /*   it improved by less than this (relative, default 0.02) */
  double flat_growth;      /*   while the images grew by at least this (relative, default 0.2) */
  double low_ratio;        /* low-confidence rising: the last burst's fraction above low_ratio x the
                              mean of the earlier bursts' (default 2) */
  double low_min;          /*   and above low_min (default 0.05) */
  double photon_ratio;     /* a burst whose mean photons per image differ from the median of the
                              earlier bursts by more than this factor either way (default 1.5) */
} spf_watch_thresholds;

void spf_watch_default_thresholds(spf_watch_thresholds *t);

enum {
  SPF_WATCH_WARN_FLAT = 1,          /* resolution flat over the recent bursts */
  SPF_WATCH_WARN_LOW_CONFIDENCE = 2, /* the fraction of low-confidence images rising */
  SPF_WATCH_WARN_PHOTONS = 4        /* the last burst's photon counts differ from the rest */
};

/* The warnings for the last of n bursts (history in arrival order): a bitmask of
 * SPF_WATCH_WARN_*. */
int spf_watch_assess(int n, const spf_watch_point *history, const spf_watch_thresholds *t, unsigned *flags);

#endif
