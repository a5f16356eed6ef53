/* Reconstruction while the data arrive: half sets, continuation, feedback (see watch.h). */
#include "spinifel/watch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/fsc.h"
#include "spinifel/random.h"
#include "spinifel/rotation.h"

int spf_watch_half(const char *name, int64_t index)
{
  uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */
  for (const unsigned char *c = (const unsigned char *)(name ? name : ""); *c; c++) h = (h ^ *c) * 1099511628211ull;
  uint64_t x = (uint64_t)index;
  for (int k = 0; k < 8; k++, x >>= 8) h = (h ^ (x & 0xff)) * 1099511628211ull;
  /* splitmix64's finaliser: FNV's low bit alone follows the last byte too closely. */
  h += 0x9E3779B97F4A7C15ull;
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  h ^= h >> 31;
  return (int)(h & 1);
}

int spf_run_state_extend(const spf_run_state *old, int64_t n_new, uint64_t seed, int64_t first_new,
                         spf_run_state *out)
{
  if (!old || !out) return SPF_ERR_NULL;
  if (n_new < 0 || old->n_images < 0 || old->n_images + n_new < 1) return SPF_ERR_SIZE;
  const int rc = spf_run_state_make(old->M, old->n_images + n_new, out);
  if (rc) return rc;
  const size_t n = (size_t)old->n_images;
  spf_run_state_copy_volumes(out, old);
  out->last_fraction_changed = 1;
  spf_run_state_copy_images(out, 0, old, 0, (int64_t)n);
  for (int64_t i = 0; i < n_new; i++) {
    const size_t k = n + (size_t)i;
    spf_rng r;
    spf_rng_seed(&r, seed, (uint64_t)(first_new + i));
    spf_random_rotation(&r, out->orientations + 4 * k);
    out->best[k] = -1;
    out->best_dist[k] = out->gap[k] = NAN;
    out->fluence[k] = 1;
    out->entropy[k] = NAN;
  }
  return SPF_OK;
}

static int cmp_float(const void *a, const void *b)
{
  const float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

int spf_watch_low_confidence(int64_t n, const float *gap, double fraction, int64_t first, int64_t count, double *low)
{
  if (!gap || !low) return SPF_ERR_NULL;
  if (n < 1 || first < 0 || count < 0 || first + count > n) return SPF_ERR_SIZE;
  if (!(fraction >= 0)) return SPF_ERR_ARG;
  float *finite = malloc(sizeof(float) * (size_t)n);
  if (!finite) return SPF_ERR_ALLOC;
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(gap[i])) finite[m++] = gap[i];
  double median = NAN;
  if (m > 0) {
    qsort(finite, (size_t)m, sizeof(float), cmp_float);
    median = m % 2 ? finite[m / 2] : 0.5 * ((double)finite[m / 2 - 1] + (double)finite[m / 2]);
  }
  free(finite);
  int64_t k = 0;
  for (int64_t i = first; i < first + count; i++) k += !(isfinite(gap[i]) && gap[i] >= fraction * median);
  *low = count > 0 ? (double)k / (double)count : 0;
  return SPF_OK;
}

int spf_watch_project(int n, const double *n_images, const double *d, int window, double d_target,
                      spf_watch_projection *p)
{
  if (!n_images || !d || !p) return SPF_ERR_NULL;
  if (n < 0 || window < 2) return SPF_ERR_SIZE;
  if (!(d_target > 0) || !isfinite(d_target)) return SPF_ERR_ARG;
  *p = (spf_watch_projection){.status = SPF_WATCH_FEW_POINTS, .a = NAN, .b = NAN, .n_target = NAN, .n_low = NAN,
                              .n_high = NAN, .kappa = NAN};
  /* The last `window` usable points. */
  double x[256], y[256];
  int m = 0;
  for (int i = n - 1; i >= 0 && m < window && m < 256; i--)
    if (n_images[i] > 0 && d[i] > 0 && isfinite(n_images[i]) && isfinite(d[i])) {
      x[m] = log(n_images[i]);
      y[m] = -log(d[i]);
      m++;
    }
  p->n_used = m;
  /* The newest point is first: already there? */
  if (m >= 1 && d[n - 1] > 0 && d[n - 1] <= d_target && n_images[n - 1] > 0) {
    p->status = SPF_WATCH_REACHED;
    p->n_target = p->n_low = p->n_high = n_images[n - 1];
  }
  if (m < 2) return SPF_OK;
  double mx = 0, my = 0;
  for (int i = 0; i < m; i++) mx += x[i], my += y[i];
  mx /= m;
  my /= m;
  double sxx = 0, sxy = 0;
  for (int i = 0; i < m; i++) sxx += (x[i] - mx) * (x[i] - mx), sxy += (x[i] - mx) * (y[i] - my);
  if (!(sxx > 0)) return SPF_OK; /* every point at one N: no trend */
  p->b = sxy / sxx;
  p->a = my - p->b * mx;
  if (p->status == SPF_WATCH_REACHED) return SPF_OK;
  /* A line through two points has no uncertainty: the line is kept (for the picture),
   * nothing projected. */
  if (m < 3) return SPF_OK;
  if (!(p->b >= SPF_WATCH_MIN_EXPONENT)) {
    p->status = SPF_WATCH_NOT_IMPROVING;
    return SPF_OK;
  }
  double ssr = 0;
  for (int i = 0; i < m; i++) {
    const double r = y[i] - (p->a + p->b * x[i]);
    ssr += r * r;
  }
  const double xs = (-log(d_target) - p->a) / p->b;
  p->status = SPF_WATCH_PROJECTED;
  p->n_target = exp(xs);
  const double s = sqrt(ssr / (m - 2));
  const double se = s / fabs(p->b) * sqrt(1.0 / m + (xs - mx) * (xs - mx) / sxx);
  p->n_low = exp(xs - se);
  p->n_high = exp(xs + se);
  if (se > log(10.0)) p->status = SPF_WATCH_UNCERTAIN;
  return SPF_OK;
}

double spf_watch_data_resolution(int64_t M, const double *cc, double voxel, double threshold)
{
  if (!cc || M < 3 || !(voxel > 0)) return NAN;
  /* Shell 0 (one voxel, NaN here) is never read: the outer crossing counts it as above.
   * A NaN shell elsewhere (no variance) fails "at or above" and counts as below. */
  return spf_fsc_resolution_outer(M, cc, voxel, threshold);
}

/* A shell's correlation read as a signal-to-noise ratio, log(c / (1 - c)); c clamped to
 * [1e-3, 0.999] (no correlation, or a shell already all signal), NaN as none. */
static double shell_log_snr(double c)
{
  if (!isfinite(c)) c = 0;
  c = fmin(fmax(c, 1e-3), 0.999);
  return log(c / (1 - c));
}

/* Each shell's log SNR against log N over rows lo .. hi - 1: a[k] + g[k] log N, the slope
 * capped at 1 (the value at the rows' mean log N kept). */
static void shell_fit(int lo, int hi, const double *logn, const double *cc, int ns, double *a, double *g)
{
  const int m = hi - lo;
  double mx = 0, sxx = 0;
  for (int i = lo; i < hi; i++) mx += logn[i];
  mx /= m;
  for (int i = lo; i < hi; i++) sxx += (logn[i] - mx) * (logn[i] - mx);
  for (int k = 1; k < ns; k++) {
    double my = 0, sxy = 0;
    for (int i = lo; i < hi; i++) my += shell_log_snr(cc[(size_t)i * ns + k]);
    my /= m;
    for (int i = lo; i < hi; i++) sxy += (logn[i] - mx) * (shell_log_snr(cc[(size_t)i * ns + k]) - my);
    g[k] = sxx > 0 ? sxy / sxx : 0;
    if (g[k] > 1) g[k] = 1;
    a[k] = my - g[k] * mx;
  }
}

/* The model's resolution at log N = x: the outer crossing of its predicted curve. */
static double shell_res(int64_t M, const double *a, const double *g, double x, double voxel, double threshold,
                        double *work)
{
  const int ns = (int)((M - 1) / 2 + 1);
  work[0] = NAN;
  for (int k = 1; k < ns; k++) work[k] = 1 / (1 + exp(-(a[k] + g[k] * x)));
  return spf_fsc_resolution_outer(M, work, voxel, threshold);
}

/* log N where the model first reaches d_target from x0 on: x0 itself if it is there
 * already, NaN if not within 1000 x exp(x0). Scanned in steps (a shell whose correlation
 * falls with N can make the crossing move back), then bisected. */
#define SHELL_REACH_STEPS 240
static double shell_reach(int64_t M, const double *a, const double *g, double x0, double voxel, double threshold,
                          double d_target, double *work)
{
  if (shell_res(M, a, g, x0, voxel, threshold, work) <= d_target) return x0;
  const double step = log(1000.0) / SHELL_REACH_STEPS;
  for (int s = 1; s <= SHELL_REACH_STEPS; s++) {
    double lo = x0 + (s - 1) * step, hi = x0 + s * step;
    if (!(shell_res(M, a, g, hi, voxel, threshold, work) <= d_target)) continue;
    for (int it = 0; it < 50; it++) {
      const double mid = 0.5 * (lo + hi);
      if (shell_res(M, a, g, mid, voxel, threshold, work) <= d_target) hi = mid;
      else lo = mid;
    }
    return hi;
  }
  return NAN;
}

int spf_watch_project_shells(int n, const double *n_images, int64_t M, const double *shell_corr, double voxel,
                             double threshold, int window, double d_target, spf_watch_projection *p)
{
  if (!n_images || !shell_corr || !p) return SPF_ERR_NULL;
  if (n < 0 || window < 3 || M < 3) return SPF_ERR_SIZE;
  if (!(d_target > 0) || !isfinite(d_target) || !(voxel > 0) || !isfinite(threshold)) return SPF_ERR_ARG;
  *p = (spf_watch_projection){.status = SPF_WATCH_FEW_POINTS, .n_used = n < window ? n : window, .a = NAN,
                              .b = NAN, .n_target = NAN, .n_low = NAN, .n_high = NAN, .kappa = NAN};
  for (int i = 0; i < n; i++)
    if (!(n_images[i] > 0) || !isfinite(n_images[i]) || (i && !(n_images[i] > n_images[i - 1]))) return SPF_ERR_ARG;
  if (n == 0) return SPF_OK;
  const int ns = (int)((M - 1) / 2 + 1);
  double *logn = malloc(sizeof(double) * (size_t)n), *d = malloc(sizeof(double) * (size_t)n);
  double *a = malloc(sizeof(double) * (size_t)ns), *g = malloc(sizeof(double) * (size_t)ns);
  double *work = malloc(sizeof(double) * (size_t)ns);
  if (!logn || !d || !a || !g || !work) {
    free(logn), free(d), free(a), free(g), free(work);
    return SPF_ERR_ALLOC;
  }
  for (int i = 0; i < n; i++) {
    logn[i] = log(n_images[i]);
    d[i] = spf_watch_data_resolution(M, shell_corr + (size_t)i * ns, voxel, threshold);
  }
  const double x0 = logn[n - 1];
  if (d[n - 1] <= d_target) {
    p->status = SPF_WATCH_REACHED;
    p->n_target = p->n_low = p->n_high = n_images[n - 1];
  }
  /* Backtests: each of the last fits before this one (3 rows or more, ending two bursts or
   * more before the last) projects the last row's resolution; kappa, the largest error in
   * log N per unit of log N it had to extrapolate. The last row only: a burst or two ahead,
   * the resolution's step is its noise, and the shape error shows over the longest span. */
  double kappa = NAN;
  for (int e = n - 2; p->status != SPF_WATCH_REACHED && e >= 3 && e >= n - window; e--) {
    if (!(d[n - 1] < d[e - 1])) continue; /* not an improvement: nothing to project */
    shell_fit(e - window > 0 ? e - window : 0, e, logn, shell_corr, ns, a, g);
    const double xr = shell_reach(M, a, g, logn[e - 1], voxel, threshold, d[n - 1] * (1 + 1e-12), work);
    const double r = isfinite(xr) ? fabs(xr - x0) / (x0 - logn[e - 1]) : INFINITY;
    if (!(r <= kappa)) kappa = r;
  }
  if (n >= 3) {
    shell_fit(n - p->n_used, n, logn, shell_corr, ns, a, g);
    /* The model's local exponent and line at the last point (what resolution.png draws
     * between the bursts). */
    const double dl = shell_res(M, a, g, x0 - 0.05, voxel, threshold, work);
    const double dh = shell_res(M, a, g, x0 + 0.05, voxel, threshold, work);
    p->b = (log(dl) - log(dh)) / 0.1;
    p->a = -log(shell_res(M, a, g, x0, voxel, threshold, work)) - p->b * x0;
  }
  if (p->status == SPF_WATCH_REACHED || n < 5) goto done;
  const double xs = shell_reach(M, a, g, x0, voxel, threshold, d_target, work);
  p->kappa = kappa;
  if (!isfinite(xs)) {
    p->status = SPF_WATCH_NOT_IMPROVING;
    goto done;
  }
  p->n_target = exp(xs);
  /* The counts x whose distance from the last row, x - x0, the projection may miss by
   * kappa (x - x0): x0 + h / (1 + kappa) .. x0 + h / (1 - kappa), h at least one burst's
   * step (a model at the target already, the data not, is a burst away). */
  const double h = fmax(xs - x0, x0 - logn[n - 2]);
  p->n_low = fmin(exp(x0 + h / (1 + kappa)), p->n_target);
  p->n_high = kappa < 1 ? fmax(exp(x0 + h / (1 - kappa)), p->n_target) : INFINITY;
  if (isnan(kappa)) p->n_low = n_images[n - 1];
  p->status = p->n_high <= 10 * p->n_target ? SPF_WATCH_PROJECTED : SPF_WATCH_UNCERTAIN;
done:
  free(logn), free(d), free(a), free(g), free(work);
  return SPF_OK;
}

int spf_watch_first_settled(int n, const double *changed, double fraction)
{
  if (n <= 0 || !changed) return n > 0 ? n : 0;
  for (int i = 0; i < n; i++)
    if (!(changed[i] >= fraction)) return i; /* NaN: settled */
  return n;
}

void spf_watch_default_thresholds(spf_watch_thresholds *t)
{
  if (!t) return;
  t->flat_bursts = 3;
  t->flat_fraction = 0.02;
  t->flat_growth = 0.2;
  t->low_ratio = 2;
  t->low_min = 0.05;
  t->photon_ratio = 1.5;
}

static int cmp_double(const void *a, const void *b)
{
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int spf_watch_assess(int n, const spf_watch_point *h, const spf_watch_thresholds *t, unsigned *flags)
{
  if (!h || !flags) return SPF_ERR_NULL;
  if (n < 1) return SPF_ERR_SIZE;
  spf_watch_thresholds def;
  if (!t) {
    spf_watch_default_thresholds(&def);
    t = &def;
  }
  *flags = 0;
  const spf_watch_point *last = &h[n - 1];
  /* Flat: over the last flat_bursts bursts the resolution improved by less than
   * flat_fraction while the images grew by at least flat_growth. */
  const int k = t->flat_bursts;
  if (k >= 1 && n > k) {
    const spf_watch_point *then = &h[n - 1 - k];
    if (isfinite(then->resolution_a) && isfinite(last->resolution_a) && then->n_images > 0 &&
        (double)last->n_images >= (1 + t->flat_growth) * (double)then->n_images &&
        (then->resolution_a - last->resolution_a) < t->flat_fraction * then->resolution_a)
      *flags |= SPF_WATCH_WARN_FLAT;
  }
  if (n >= 2) {
    /* Low confidence rising: the last burst's fraction against the earlier ones' mean. */
    double mean = 0;
    int m = 0;
    for (int i = 0; i < n - 1; i++)
      if (isfinite(h[i].low_confidence)) mean += h[i].low_confidence, m++;
    if (m > 0 && isfinite(last->low_confidence)) {
      mean /= m;
      if (last->low_confidence > t->low_min && last->low_confidence > t->low_ratio * mean)
        *flags |= SPF_WATCH_WARN_LOW_CONFIDENCE;
    }
    /* Photons: the last burst's mean against the median of the earlier ones. */
    double *v = malloc(sizeof(double) * (size_t)(n - 1));
    if (!v) return SPF_ERR_ALLOC;
    m = 0;
    for (int i = 0; i < n - 1; i++)
      if (h[i].mean_photons > 0 && isfinite(h[i].mean_photons)) v[m++] = h[i].mean_photons;
    if (m > 0 && last->mean_photons >= 0 && isfinite(last->mean_photons)) {
      qsort(v, (size_t)m, sizeof(double), cmp_double);
      const double med = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
      if (last->mean_photons > t->photon_ratio * med || last->mean_photons * t->photon_ratio < med)
        *flags |= SPF_WATCH_WARN_PHOTONS;
    }
    free(v);
  }
  return SPF_OK;
}
