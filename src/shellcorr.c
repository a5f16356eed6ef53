/* Shell correlation of two intensities and their rotational alignment (see shellcorr.h). */
#include "spinifel/shellcorr.h"

#include <complex.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/align.h"
#include "spinifel/error.h"
#include "spinifel/nufft.h"
#include "spinifel/results.h"
#include "spinifel/rotation.h"

/* Relative accuracy of the Fourier interpolation: far below the score's changes between
 * neighbouring rotations of the local search. */
#define FOURIER_TOL 1e-9
/* The same for the polish's scores: kernel width 8 against 10, half the cost per point,
 * errors still far below the score's change over the last step. */
#define POLISH_TOL 1e-7
/* The local search's first step (radians): half the default coarse grid's covering radius. */
#define STEP0 (6.0 * M_PI / 180)

/* The shell radius range in force: r_max <= 0 or past the ball means the ball. */
static double ball_r_max(int64_t M, double r_max)
{
  const double c = 0.5 * (double)(M - 1);
  return r_max > 0 && r_max < c ? r_max : c;
}

int spf_shell_correlation(int64_t M, const double *a, const double *b, double r_min, double r_max, double *corr,
                          int64_t *count)
{
  if (!a || !b || !corr) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0) return SPF_ERR_SIZE;
  if (!(r_min >= 0) || isnan(r_max)) return SPF_ERR_ARG;
  const int64_t ns = SPF_SHELLS(M), c = (M - 1) / 2;
  const double hi = ball_r_max(M, r_max);
  double *sa = calloc((size_t)ns, sizeof(double)), *sb = calloc((size_t)ns, sizeof(double));
  double *sab = calloc((size_t)ns, sizeof(double)), *saa = calloc((size_t)ns, sizeof(double));
  double *sbb = calloc((size_t)ns, sizeof(double));
  int64_t *n = calloc((size_t)ns, sizeof(int64_t));
  int rc = sa && sb && sab && saa && sbb && n ? SPF_OK : SPF_ERR_ALLOC;
  /* Pass 1: means; pass 2: sums of centred products. */
  for (int pass = 0; !rc && pass < 2; pass++) {
    for (int64_t z = 0; z < M; z++)
      for (int64_t y = 0; y < M; y++)
        for (int64_t x = 0; x < M; x++) {
          const double dx = (double)(x - c), dy = (double)(y - c), dz = (double)(z - c);
          const double r = sqrt(dx * dx + dy * dy + dz * dz);
          if (r < r_min || r > hi) continue;
          const int64_t k = llround(r), i = (z * M + y) * M + x;
          if (pass == 0) {
            sa[k] += a[i];
            sb[k] += b[i];
            n[k]++;
          } else {
            const double da = a[i] - sa[k], db = b[i] - sb[k];
            sab[k] += da * db;
            saa[k] += da * da;
            sbb[k] += db * db;
          }
        }
    if (pass == 0)
      for (int64_t k = 0; k < ns; k++)
        if (n[k]) sa[k] /= (double)n[k], sb[k] /= (double)n[k];
  }
  for (int64_t k = 0; !rc && k < ns; k++) {
    corr[k] = n[k] >= 2 && saa[k] > 0 && sbb[k] > 0 ? sab[k] / sqrt(saa[k] * sbb[k]) : NAN;
    if (count) count[k] = n[k];
  }
  free(sa);
  free(sb);
  free(sab);
  free(saa);
  free(sbb);
  free(n);
  return rc;
}

double spf_shell_crossing(const double *corr, int64_t first, int64_t last, double threshold)
{
  if (!corr || first < 0) return NAN;
  int64_t prev = -1;
  for (int64_t k = first; k <= last; k++) {
    if (isnan(corr[k])) continue;
    if (corr[k] < threshold) {
      if (prev < 0) return (double)k;
      /* Linear between shell prev (at or above) and shell k (below). */
      const double t = (corr[prev] - threshold) / (corr[prev] - corr[k]);
      return (double)prev + t * (double)(k - prev);
    }
    prev = k;
  }
  return prev < 0 ? NAN : INFINITY;
}

double spf_shell_mean(const double *corr, int64_t first, int64_t last)
{
  if (!corr || first < 0) return NAN;
  double s = 0;
  int64_t n = 0;
  for (int64_t k = first; k <= last; k++)
    if (!isnan(corr[k])) s += corr[k], n++;
  return n ? s / (double)n : NAN;
}

void spf_shellcorr_default_options(spf_shellcorr_options *o)
{
  if (!o) return;
  o->n_rotations = 4000;
  o->n_candidates = 8;
  o->refine_steps = 7;
  o->r_min = 1;
  o->r_max = 0;
  o->interpolation = SPF_INTERP_FOURIER;
  o->nthreads = 0;
}

/* The voxels used, grouped by shell: offsets from the centre and the reference's values
 * centred on their shell mean. */
typedef struct {
  int64_t M, nv, ns;     /* voxels used, shells */
  double centre;
  double *q;             /* 3 * nv: x, y, z offsets of voxel j at 3j */
  double *ref_c;         /* nv: ref minus its shell mean */
  int64_t *start;        /* ns + 1: shell k's voxels are start[k] .. start[k+1]-1 */
  double *ref_ss;        /* ns: sum of ref_c^2 per shell (0: shell not scored) */
  int64_t scored;        /* shells scored */
  const double *mov;
} voxels;

static void voxels_free(voxels *v)
{
  free(v->q);
  free(v->ref_c);
  free(v->start);
  free(v->ref_ss);
}

static int voxels_make(int64_t M, const double *ref, const double *mov, double r_min, double r_max, voxels *v)
{
  memset(v, 0, sizeof *v);
  const int64_t c = (M - 1) / 2, ns = SPF_SHELLS(M);
  const double hi = ball_r_max(M, r_max);
  v->M = M;
  v->ns = ns;
  v->centre = (double)c;
  v->mov = mov;
  v->start = calloc((size_t)ns + 1, sizeof(int64_t));
  v->ref_ss = calloc((size_t)ns, sizeof(double));
  if (!v->start || !v->ref_ss) return SPF_ERR_ALLOC;
  /* Count per shell, then place (counting sort by shell). */
  for (int pass = 0; pass < 2; pass++) {
    int64_t *at = NULL;
    if (pass == 1) {
      for (int64_t k = 0; k < ns; k++) v->start[k + 1] += v->start[k];
      v->nv = v->start[ns];
      v->q = malloc(sizeof(double) * 3 * (size_t)(v->nv ? v->nv : 1));
      v->ref_c = malloc(sizeof(double) * (size_t)(v->nv ? v->nv : 1));
      at = malloc(sizeof(int64_t) * (size_t)ns);
      if (!v->q || !v->ref_c || !at) {
        free(at);
        return SPF_ERR_ALLOC;
      }
      memcpy(at, v->start, sizeof(int64_t) * (size_t)ns);
    }
    for (int64_t z = 0; z < M; z++)
      for (int64_t y = 0; y < M; y++)
        for (int64_t x = 0; x < M; x++) {
          const double dx = (double)(x - c), dy = (double)(y - c), dz = (double)(z - c);
          const double r = sqrt(dx * dx + dy * dy + dz * dz);
          if (r < r_min || r > hi) continue;
          const int64_t k = llround(r);
          if (pass == 0) {
            v->start[k + 1]++;
            continue;
          }
          const int64_t j = at[k]++;
          v->q[3 * j] = dx;
          v->q[3 * j + 1] = dy;
          v->q[3 * j + 2] = dz;
          v->ref_c[j] = ref[(z * M + y) * M + x];
        }
    free(at);
  }
  for (int64_t k = 0; k < ns; k++) {
    const int64_t n = v->start[k + 1] - v->start[k];
    if (n < 2) continue;
    double mean = 0, ss = 0;
    for (int64_t j = v->start[k]; j < v->start[k + 1]; j++) mean += v->ref_c[j];
    mean /= (double)n;
    for (int64_t j = v->start[k]; j < v->start[k + 1]; j++) {
      v->ref_c[j] -= mean;
      ss += v->ref_c[j] * v->ref_c[j];
    }
    v->ref_ss[k] = ss;
    v->scored += ss > 0;
  }
  return v->scored ? SPF_OK : SPF_ERR_DATA;
}

/* mov at grid point p (x, y, z), trilinear; p lies in [0, M-1]^3 up to rounding (the
 * voxels used are inside the inscribed ball), so the cell is clamped, never skipped. */
static inline double trilinear(const double *v, int64_t M, const double p[3])
{
  int64_t i[3];
  double f[3];
  for (int k = 0; k < 3; k++) {
    double fl = floor(p[k]);
    if (fl < 0) fl = 0;
    if (fl > (double)(M - 2)) fl = (double)(M - 2);
    i[k] = (int64_t)fl;
    f[k] = p[k] - fl;
  }
  const double *b = v + (i[2] * M + i[1]) * M + i[0];
  const int64_t sy = M, sz = M * M;
  const double c00 = b[0] + f[0] * (b[1] - b[0]), c10 = b[sy] + f[0] * (b[sy + 1] - b[sy]);
  const double c01 = b[sz] + f[0] * (b[sz + 1] - b[sz]), c11 = b[sz + sy] + f[0] * (b[sz + sy + 1] - b[sz + sy]);
  const double c0 = c00 + f[1] * (c10 - c00), c1 = c01 + f[1] * (c11 - c01);
  return c0 + f[2] * (c1 - c0);
}

/* The mean over scored shells of the Pearson correlation of ref and mov(R^T q). */
static double score(const voxels *v, const double quat[4])
{
  double R[9];
  spf_quat_to_matrix(quat, R);
  const double c = v->centre;
  double sum = 0;
  for (int64_t k = 0; k < v->ns; k++) {
    if (!(v->ref_ss[k] > 0)) continue;
    double sm = 0, smm = 0, smr = 0;
    const int64_t j0 = v->start[k], j1 = v->start[k + 1];
    for (int64_t j = j0; j < j1; j++) {
      const double *q = v->q + 3 * j;
      /* R^T q about the centre. */
      const double p[3] = {R[0] * q[0] + R[3] * q[1] + R[6] * q[2] + c, R[1] * q[0] + R[4] * q[1] + R[7] * q[2] + c,
                           R[2] * q[0] + R[5] * q[1] + R[8] * q[2] + c};
      const double m = trilinear(v->mov, v->M, p);
      sm += m;
      smm += m * m;
      smr += m * v->ref_c[j];
    }
    /* sum (m - mean m) ref_c = sum m ref_c, as ref_c sums to 0 on the shell. */
    const double var = smm - sm * sm / (double)(j1 - j0);
    sum += var > 0 ? smr / sqrt(var * v->ref_ss[k]) : 0.0;
  }
  return sum / (double)v->scored;
}

typedef double (*score_fn)(void *ctx, const double quat[4]);

static double trilinear_score(void *ctx, const double quat[4]) { return score(ctx, quat); }

/* Local search from q (in place): rotations by +-step about x, y and z while one improves
 * the score, then half the step; from step0 (radians), steps steps. The six moves are
 * scored on nt threads, thread t with ctx[t]; the best wins, ties to the first, so the
 * result does not depend on nt. Returns the score; *evals counts the scores computed. */
static double refine(score_fn fn, void **ctx, int nt, double q[4], double step0, int steps, int64_t *evals)
{
  double best = fn(ctx[0], q), step = step0;
  int64_t n = 1;
  for (int it = 0; it < steps; it++) {
    int improved = 1;
    while (improved) {
      double cand[6][4], sc[6];
#pragma omp parallel for num_threads(nt) schedule(static, 1)
      for (int k = 0; k < 6; k++) {
        double d[4] = {cos(0.5 * step), 0, 0, 0};
        d[1 + k / 2] = (k % 2 ? -1 : 1) * sin(0.5 * step);
        spf_quat_multiply(d, q, cand[k]);
        spf_quat_normalize(cand[k]);
        sc[k] = fn(ctx[omp_get_thread_num()], cand[k]);
      }
      n += 6;
      int kb = -1;
      for (int k = 0; k < 6; k++)
        if (sc[k] > best + 1e-12 && (kb < 0 || sc[k] > sc[kb])) kb = k;
      improved = kb >= 0;
      if (improved) {
        best = sc[kb];
        memcpy(q, cand[kb], sizeof cand[kb]);
      }
    }
    if (it + 1 < steps) step *= 0.5;
  }
  *evals = n;
  return best;
}

/* The score with Fourier (trigonometric) interpolation, as spf_rotate_intensity rotates:
 * mov's modes loaded into a type-2 NUFFT once, the voxels used evaluated at R^T q. One
 * thread (see spf_rotate_intensity). */
typedef struct {
  const voxels *v;
  spf_nufft_plan plan;
  double *x;            /* 3 * nv NUFFT coordinates: x, then y, then z */
  double complex *val;  /* nv */
} fourier_scorer;

static void fourier_free(fourier_scorer *f)
{
  spf_nufft_destroy(f->plan);
  free(f->x);
  free(f->val);
}

/* The modes u = cos transform of mov / M^3, centred (see spf_rotate_intensity). */
static int fourier_modes(int64_t M, const double *mov, double complex *f)
{
  const int64_t n3 = M * M * M;
  double *u = malloc(sizeof(double) * (size_t)n3);
  int rc = u ? spf_intensity_from_autocorrelation(M, mov, u) : SPF_ERR_ALLOC;
  for (int64_t i = 0; !rc && i < n3; i++) f[i] = u[i] / (double)n3;
  free(u);
  return rc;
}

static int fourier_make(const voxels *v, fourier_scorer *f)
{
  memset(f, 0, sizeof *f);
  f->v = v;
  const int64_t M = v->M, n3 = M * M * M;
  f->x = malloc(sizeof(double) * 3 * (size_t)(v->nv ? v->nv : 1));
  f->val = malloc(sizeof(double complex) * (size_t)(v->nv ? v->nv : 1));
  double complex *modes = malloc(sizeof(double complex) * (size_t)n3);
  int rc = f->x && f->val && modes ? SPF_OK : SPF_ERR_ALLOC;
  if (!rc) rc = fourier_modes(M, v->mov, modes);
  if (!rc) {
    spf_nufft_opts no;
    spf_nufft_default_opts(&no);
    no.upsampfac = 2.0; /* fixed: the bits must not depend on how many points a batch has */
    no.nthreads = 1;
    no.fftw_measure = 0;
    const int64_t n[3] = {M, M, M};
    rc = spf_nufft_make_plan(2, 3, n, +1, 1, POLISH_TOL, &no, &f->plan);
  }
  if (!rc) rc = spf_nufft_load_modes(f->plan, modes);
  free(modes);
  return rc;
}

static double fourier_score(void *ctx, const double quat[4])
{
  fourier_scorer *f = ctx;
  const voxels *v = f->v;
  double R[9];
  spf_quat_to_matrix(quat, R);
  const int64_t nv = v->nv;
  const double w = 2 * M_PI / (double)v->M;
  double *xx = f->x, *xy = f->x + nv, *xz = f->x + 2 * nv;
  for (int64_t j = 0; j < nv; j++) {
    const double *q = v->q + 3 * j;
    xx[j] = w * (R[0] * q[0] + R[3] * q[1] + R[6] * q[2]);
    xy[j] = w * (R[1] * q[0] + R[4] * q[1] + R[7] * q[2]);
    xz[j] = w * (R[2] * q[0] + R[5] * q[1] + R[8] * q[2]);
  }
  if (spf_nufft_set_points(f->plan, nv, xx, xy, xz) || spf_nufft_interpolate(f->plan, f->val)) return NAN;
  double sum = 0;
  for (int64_t k = 0; k < v->ns; k++) {
    if (!(v->ref_ss[k] > 0)) continue;
    double sm = 0, smm = 0, smr = 0;
    const int64_t j0 = v->start[k], j1 = v->start[k + 1];
    for (int64_t j = j0; j < j1; j++) {
      const double m = creal(f->val[j]);
      sm += m;
      smm += m * m;
      smr += m * v->ref_c[j];
    }
    const double var = smm - sm * sm / (double)(j1 - j0);
    sum += var > 0 ? smr / sqrt(var * v->ref_ss[k]) : 0.0;
  }
  return sum / (double)v->scored;
}

int spf_rotate_intensity(int64_t M, const double *in, const double q[4], double *out)
{
  if (!in || !q || !out) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0) return SPF_ERR_SIZE;
  const int64_t n3 = M * M * M, c = (M - 1) / 2;
  double *x = malloc(sizeof(double) * 3 * (size_t)n3);
  double complex *f = malloc(sizeof(double complex) * (size_t)n3), *v = malloc(sizeof(double complex) * (size_t)n3);
  int rc = x && f && v ? fourier_modes(M, in, f) : SPF_ERR_ALLOC;
  spf_nufft_plan p = NULL;
  if (!rc) {
    double R[9];
    spf_quat_to_matrix(q, R);
    const double w = 2 * M_PI / (double)M;
    double *xx = x, *xy = x + n3, *xz = x + 2 * n3;
    for (int64_t i = 0; i < n3; i++) {
      const double a = (double)(i % M - c), b = (double)((i / M) % M - c), d = (double)(i / (M * M) - c);
      xx[i] = w * (R[0] * a + R[3] * b + R[6] * d);
      xy[i] = w * (R[1] * a + R[4] * b + R[7] * d);
      xz[i] = w * (R[2] * a + R[5] * b + R[8] * d);
    }
    spf_nufft_opts no;
    spf_nufft_default_opts(&no);
    no.upsampfac = 2.0; /* fixed: the bits must not depend on how many points a batch has */
    no.nthreads = 1;
    no.fftw_measure = 0;
    const int64_t n[3] = {M, M, M};
    rc = spf_nufft_make_plan(2, 3, n, +1, 1, FOURIER_TOL, &no, &p);
    if (!rc) rc = spf_nufft_set_points(p, n3, xx, xy, xz);
    if (!rc) rc = spf_nufft_execute(p, v, f);
  }
  for (int64_t i = 0; !rc && i < n3; i++) out[i] = creal(v[i]);
  spf_nufft_destroy(p);
  free(x);
  free(f);
  free(v);
  return rc;
}

typedef struct {
  double score;
  int64_t index;
} ranked;

/* Higher scores first, ties to the lower index: a fixed order. */
static int by_score(const void *pa, const void *pb)
{
  const ranked *a = pa, *b = pb;
  if (a->score != b->score) return a->score > b->score ? -1 : 1;
  return (a->index > b->index) - (a->index < b->index);
}

int spf_shellcorr_align(int64_t M, const double *ref, const double *mov, const spf_shellcorr_options *opts,
                        spf_shellcorr_result *r, double *aligned)
{
  if (!ref || !mov || !r) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0) return SPF_ERR_SIZE;
  spf_shellcorr_options o;
  if (opts) o = *opts;
  else spf_shellcorr_default_options(&o);
  if (o.n_rotations < 1 || o.n_candidates < 1 || o.refine_steps < 1 || o.nthreads < 0 || !(o.r_min >= 0) ||
      isnan(o.r_max) || (o.interpolation != SPF_INTERP_FOURIER && o.interpolation != SPF_INTERP_TRILINEAR))
    return SPF_ERR_OPTION;
  const int nt = o.nthreads > 0 ? o.nthreads : omp_get_max_threads();
  for (int64_t i = 0; i < M * M * M; i++)
    if (!isfinite(ref[i]) || !isfinite(mov[i])) return SPF_ERR_DATA;
  voxels v;
  int rc = voxels_make(M, ref, mov, o.r_min, o.r_max, &v);
  double *grid = rc ? NULL : malloc(sizeof(double) * 4 * (size_t)o.n_rotations);
  double *coarse = rc ? NULL : malloc(sizeof(double) * (size_t)o.n_rotations);
  ranked *order = rc ? NULL : malloc(sizeof(ranked) * (size_t)o.n_rotations);
  if (!rc && (!grid || !coarse || !order)) rc = SPF_ERR_ALLOC;
  if (!rc) rc = spf_orientation_grid(o.n_rotations, 0, o.n_rotations, grid);
  if (!rc) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8)
    for (int64_t j = 0; j < o.n_rotations; j++) coarse[j] = score(&v, grid + 4 * j);
    /* Candidates: the best scores, each at least two covering radii (about twice the
     * radius of a ball holding 1/n of SO(3)) from those already taken; ties to the lower
     * index. */
    for (int64_t j = 0; j < o.n_rotations; j++) order[j].score = coarse[j], order[j].index = j;
    qsort(order, (size_t)o.n_rotations, sizeof *order, by_score);
    const double apart = 2.5 * spf_orientation_ball_radius(o.n_rotations);
    int64_t *cand = malloc(sizeof(int64_t) * (size_t)o.n_candidates);
    double *cq = malloc(sizeof(double) * 4 * (size_t)o.n_candidates), *cs = malloc(sizeof(double) * (size_t)o.n_candidates);
    int64_t *ce = malloc(sizeof(int64_t) * (size_t)o.n_candidates);
    if (!cand || !cq || !cs || !ce) rc = SPF_ERR_ALLOC;
    int nc = 0;
    for (int64_t j = 0; !rc && j < o.n_rotations && nc < o.n_candidates; j++) {
      const double *g = grid + 4 * order[j].index;
      int near = 0;
      for (int i = 0; i < nc && !near; i++) near = spf_quat_angle(g, grid + 4 * cand[i]) < apart;
      if (!near) cand[nc++] = order[j].index;
    }
    if (!rc) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
      for (int i = 0; i < nc; i++) {
        memcpy(cq + 4 * i, grid + 4 * cand[i], sizeof(double) * 4);
        void *vc[1] = {&v};
        cs[i] = refine(trilinear_score, vc, 1, cq + 4 * i, STEP0, o.refine_steps, &ce[i]);
      }
      int b = 0;
      r->evaluations = o.n_rotations;
      for (int i = 0; i < nc; i++) {
        r->evaluations += ce[i];
        if (cs[i] > cs[b]) b = i;
      }
      memcpy(r->quat, cq + 4 * b, sizeof r->quat);
      r->search_score = cs[b];
      const double last = STEP0 / pow(2.0, o.refine_steps - 1);
      r->precision_deg = last * 180 / M_PI;
      /* With Fourier interpolation, polish on the score of the figure (trilinear
       * interpolation's optimum is off by up to a few tenths of a degree): from 4 steps
       * down to the last. */
      const int fourier = o.interpolation == SPF_INTERP_FOURIER;
      const int np = !fourier ? 0 : nt < 6 ? nt : 6;
      fourier_scorer fs[6];
      void *fc[6];
      int64_t pe = 0;
      for (int t = 0; t < np; t++) {
        const int e = fourier_make(&v, &fs[t]);
        if (!rc) rc = e;
        fc[t] = &fs[t];
      }
      if (!rc && fourier) refine(fourier_score, fc, np, r->quat, 4 * last, 3, &pe);
      for (int t = 0; t < np; t++) fourier_free(&fs[t]);
      r->evaluations += pe;
      if (r->quat[0] < 0)
        for (int k = 0; k < 4; k++) r->quat[k] = -r->quat[k];
      /* The figure: the shells of ref and mov turned by the interpolation asked for. */
      double *al = aligned ? aligned : malloc(sizeof(double) * (size_t)(M * M * M));
      double *corr = malloc(sizeof(double) * (size_t)SPF_SHELLS(M));
      if (!rc && !(al && corr)) rc = SPF_ERR_ALLOC;
      if (!rc && fourier) rc = spf_rotate_intensity(M, mov, r->quat, al);
      if (!rc && !fourier) spf_rotate_volume(M, mov, r->quat, 0, al);
      if (!rc) rc = spf_shell_correlation(M, ref, al, o.r_min, o.r_max, corr, NULL);
      if (!rc) r->score = spf_shell_mean(corr, 0, SPF_SHELLS(M) - 1);
      if (al != aligned) free(al);
      free(corr);
    }
    free(cand);
    free(cq);
    free(cs);
    free(ce);
  }
  free(grid);
  free(coarse);
  free(order);
  voxels_free(&v);
  return rc;
}
