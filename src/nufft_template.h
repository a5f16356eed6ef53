/* Precision-generic NUFFT, included once per precision by nufft_double.c and
 * nufft_float.c, which define:
 *   FLT          float or double
 *   CPX          FLT complex
 *   PUB(name)    public name, e.g. spf_nufft_##name
 *   FFTW(name)   fftw_##name or fftwf_##name
 *   PLAN_S       the plan struct tag
 *   FLT_MIN_TOL  smallest tolerance this precision accepts
 *   CREAL, CIMAG real and imaginary parts of a CPX
 * Layout of the algorithm (see nufft.h for the contract):
 *   set_points: check, fold into [0, nf), counting-sort into bins, cut into subproblems
 *   type 1: spread each subproblem into a private box, add boxes to the fine grid,
 *           FFT, multiply the kept modes by 1/phihat
 *   type 2: place modes times 1/phihat on the zeroed fine grid, FFT, interpolate */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fftw3.h>

#include "fftw_threads.h"
#include "nufft_kernel.h"
#include "spinifel/error.h"
#include "spinifel/nufft.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define BIN_X 16 /* bin sizes in fine-grid points: a bin's box fits in L1/L2 */
#define BIN_Y 4
#define BIN_Z 4
#define MIN_AUTO_SUB 8192     /* automatic subproblem sizes (choose_max_sub) */
#define MAX_AUTO_SUB 65536
#define MAX_AUTO_BOX (1 << 22) /* fine-grid points a subproblem's box may expect to span */
#define INTERP_CHUNK 4096

/* c: strengths as FLTs, interleaved (re, im) for complex strengths, one per point for real. */
typedef void (*spread_fn)(struct PLAN_S *p, int64_t j0, int64_t j1, const FLT *c, int thread);
typedef void (*interp_fn)(const struct PLAN_S *p, int64_t j0, int64_t j1, CPX *c);
typedef void (*interp_real_fn)(const struct PLAN_S *p, int64_t j0, int64_t j1, FLT *c);

/* Per-thread scratch for spreading: per-point grid offsets and the private box. */
typedef struct {
  int32_t *l0;        /* 3 * max_sub first grid index touched, per dimension */
  FLT *u;             /* 3 * max_sub offsets in [-1, 1) for the polynomial */
  FLT *box;           /* interleaved complex box, or real (box_nv 1) */
  size_t box_cap;     /* in FLT */
  int32_t box_lo[3];  /* the box's place on the fine grid, its sizes and row length */
  int64_t box_n[3], box_row;
  int box_nv;         /* FLTs per box point: 2 complex, 1 real */
} scratch_t;

struct PLAN_S {
  int type, dim, sign, ntransf, nthreads, modeord, kernel_eval, sort, deterministic;
  double tol;
  int fftw_measure, pow2_fine_grid;
  int grid_ready;                /* kernel, fine grid and FFT made (upsampfac 0: at set_points) */
  int64_t max_sub_opt;           /* the option: 0 automatic */
  int64_t max_sub, sub_cap;      /* points per subproblem now; scratch's capacity */
  int64_t n_modes[3], nf[3], n_modes_total, nf_total;
  double inv_nf[3];
  int collapsed[3];              /* a dimension with one mode: coordinate ignored */
  spf_nufft_kernel ker;
  int width, kpad, degree;
  FLT *coef;                     /* (degree + 1) rows of kpad rounded up to whole Horner
                                    vectors (kernel_lanes), Horner order, 64-byte aligned */
  FLT *deconv[3];                /* 1/phihat per centred mode */
  CPX *fine;                     /* nf_total + kpad (the tail lets rows be read whole) */
  FLT *fine_re;                  /* interpolate_real: Re fine, nf_total + kpad, made on demand */
  int fine_re_valid;             /*   1: it holds the loaded modes' grid */
  FFTW(plan) fft;                /* the 3D FFT, when not pruned */
  FFTW(plan) pass[3];            /* pruned FFT: one 1D pass per dimension, in the order they run */
  int n_pass;
  spread_fn spread, spread_real;
  interp_fn interp;
  interp_real_fn interp_real;
  int64_t n_points;
  int modes_loaded;              /* type 2: the fine grid holds transformed modes */
  const FLT *coords[3];
  int64_t *perm;                 /* sorted order, or NULL when not sorting */
  int64_t perm_cap;
  int32_t *bin_of;               /* scratch for the sort */
  double *t_sorted;              /* 3 * perm_cap folded grid coordinates, in sorted order */
  CPX *c_sorted;                 /* perm_cap strengths in sorted order (execute's buffer) */
  scratch_t *scratch;            /* one per thread */
  spf_nufft_timing timing;
};

/* ---------------------------------------------------------------- helpers */

static void *alloc_aligned(size_t bytes)
{
  void *ptr = NULL;
  if (bytes == 0) bytes = 64;
  if (posix_memalign(&ptr, 64, bytes) != 0) return NULL;
  return ptr;
}

/* Position of coordinate x (radians, [-3pi, 3pi]) on a periodic grid of nf points, in [0, nf].
 * Double even for float plans: float would lose 1e-5 of a grid point at nf ~ 300. */
static ALWAYS_INLINE double fold(double x, double nf, double inv_nf)
{
  double t = x * (nf * (0.5 / M_PI));
  return t - nf * floor(t * inv_nf);
}

/* i mod n for i in [-n, 2n): grid indices never stray further than a kernel width. */
static ALWAYS_INLINE int64_t wrap(int64_t i, int64_t n)
{
  return i < 0 ? i + n : (i >= n ? i - n : i);
}

/* Index of the point whose permuted place a loop over sorted points should prefetch
 * now. A permuted copy touches one random place per point, and the out-of-order window
 * alone keeps too few of those misses in flight: prefetching 128 points ahead made a
 * 10^6-point gather ~3x faster (BENCHMARKS.md). Past the end it repeats the last one. */
#define PERM_AHEAD 128
static ALWAYS_INLINE int64_t perm_ahead(const int64_t *perm, int64_t j, int64_t m)
{
  return perm[j + PERM_AHEAD < m ? j + PERM_AHEAD : m - 1];
}

/* Lanes of one Horner vector for kpad kernel values: all kpad in one 16- or 32-byte
 * vector, else 64-byte vectors (the coefficient rows then pad to whole vectors). */
static inline int kernel_lanes(int kpad)
{
  return kpad * (int)sizeof(FLT) <= 32 ? kpad : 64 / (int)sizeof(FLT);
}

/* Horner on whole vectors for n offsets u at once (n independent chains hide the FMA
 * latency), nc vectors a row, into B-aligned out[a]. Written with vector types because
 * the plain loop over a runtime degree compiled to half-width FMAs whose results went
 * through the stack and back at full width, a store-forwarding stall per point (7% of
 * sparse type-1 time, BENCHMARKS.md). */
#define KERNEL_HORNER(B)                                                                          \
  typedef FLT kvec##B __attribute__((vector_size(B), may_alias));                                 \
  static ALWAYS_INLINE void horner_##B(const FLT *coef, int degree, const int NC, const int N,    \
                                       const FLT *u, FLT *const *out)                             \
  {                                                                                               \
    const kvec##B *c = (const kvec##B *)coef;                                                     \
    for (int q = 0; q < NC; q++) {                                                                \
      kvec##B v[3];                                                                               \
      for (int a = 0; a < N; a++) v[a] = c[q];                                                    \
      for (int d = 1; d <= degree; d++) {                                                         \
        const kvec##B cd = c[d * NC + q];                                                         \
        for (int a = 0; a < N; a++) v[a] = v[a] * u[a] + cd;                                      \
      }                                                                                           \
      for (int a = 0; a < N; a++) ((kvec##B *)out[a])[q] = v[a];                                  \
    }                                                                                             \
  }
KERNEL_HORNER(16)
KERNEL_HORNER(32)
KERNEL_HORNER(64)

/* Kernel values at the kpad grid points starting at l0, for n (1 or 3) offsets u in
 * [-1, 1); out[a] are 64-byte aligned and hold a coefficient row's length. */
static ALWAYS_INLINE void eval_kernel_n(const struct PLAN_S *p, const FLT *u, FLT *const *out, const int N,
                                        const int KP)
{
  if (p->kernel_eval) {
    const int L = kernel_lanes(KP), NC = (KP + L - 1) / L, bytes = L * (int)sizeof(FLT);
    if (bytes == 16) horner_16(p->coef, p->degree, NC, N, u, out);
    else if (bytes == 32) horner_32(p->coef, p->degree, NC, N, u, out);
    else horner_64(p->coef, p->degree, NC, N, u, out);
    return;
  }
  const int w = p->width;
  for (int a = 0; a < N; a++)
    for (int i = 0; i < KP; i++) {
      double z = 2.0 * (((double)u[a] + 1.0) * 0.5 - 0.5 * w + i) / w;
      out[a][i] = (FLT)(i < w ? spf_nufft_kernel_eval(&p->ker, z) : 0.0);
    }
}

static ALWAYS_INLINE void eval_kernel(const struct PLAN_S *p, FLT u, FLT *ker, const int KP)
{
  FLT *const out[1] = {ker};
  eval_kernel_n(p, &u, out, 1, KP);
}

/* The three dimensions' kernels at once. */
static ALWAYS_INLINE void eval_kernel3(const struct PLAN_S *p, const FLT *u, FLT *kx, FLT *ky,
                                       FLT *kz, const int KP)
{
  FLT *const out[3] = {kx, ky, kz};
  eval_kernel_n(p, u, out, 3, KP);
}

/* A point's kernels in every dimension that has more than one mode (a collapsed one keeps
 * its kernel {1, 0, ...}), from offsets u. */
static ALWAYS_INLINE void eval_kernels(const struct PLAN_S *p, const FLT *u, int full3d, FLT *kx, FLT *ky,
                                       FLT *kz, const int KP)
{
  if (full3d) {
    eval_kernel3(p, u, kx, ky, kz, KP);
    return;
  }
  FLT *kers[3] = {kx, ky, kz};
  for (int d = 0; d < 3; d++)
    if (!p->collapsed[d]) eval_kernel(p, u[d], kers[d], KP);
}

/* First grid index touched and polynomial offset, for one coordinate. */
static ALWAYS_INLINE void point_offset(double t, int w, int32_t *l0, FLT *u)
{
  double a = ceil(t - 0.5 * w);
  *l0 = (int32_t)a;
  *u = (FLT)(2.0 * (a - t + 0.5 * w) - 1.0);
}

/* ---------------------------------------------------------------- spreading */

/* NV: FLTs per strength and box point, 2 for complex strengths, 1 for real ones (half the
 * FMAs, box and additions; the fine grid's imaginary part stays zero). */
static ALWAYS_INLINE void spread_generic(struct PLAN_S *p, int64_t j0, int64_t j1, const FLT *c,
                                         int thread, const int W, const int NV)
{
  enum { KPMAX = SPF_NUFFT_KPAD(SPF_NUFFT_MAX_WIDTH) };
  const int KP = SPF_NUFFT_KPAD(W);
  scratch_t *s = &p->scratch[thread];
  const int64_t n = j1 - j0;
  int wd[3];
  int32_t lo[3] = {INT32_MAX, INT32_MAX, INT32_MAX}, hi[3] = {INT32_MIN, INT32_MIN, INT32_MIN};
  for (int d = 0; d < 3; d++) wd[d] = p->collapsed[d] ? 1 : W;

  const int64_t m = p->n_points;
  for (int64_t jj = 0; jj < n; jj++) {
    for (int d = 0; d < 3; d++) {
      int32_t l0 = 0;
      FLT u = 0;
      if (!p->collapsed[d]) point_offset(p->t_sorted[d * m + j0 + jj], W, &l0, &u);
      s->l0[3 * jj + d] = l0;
      s->u[3 * jj + d] = u;
      if (l0 < lo[d]) lo[d] = l0;
      if (l0 > hi[d]) hi[d] = l0;
    }
  }
  int64_t bn[3];
  for (int d = 0; d < 3; d++) bn[d] = (int64_t)hi[d] - lo[d] + wd[d];
  /* Rows padded by KP for whole-vector writes, and never a multiple of 64 complex
   * numbers, whose power-of-two strides make the w rows fight over cache sets. */
  int64_t row = bn[0] + KP;
  if (row % 64 == 0) row += 4;
  const size_t need = (size_t)(NV * row * bn[1] * bn[2]);
  if (need > s->box_cap) {
    free(s->box);
    s->box = alloc_aligned(need * sizeof(FLT));
    s->box_cap = s->box ? need : 0;
    if (!s->box) return; /* reported by the caller through box_cap == 0 */
  }
  FLT *box = s->box;
  memset(box, 0, need * sizeof(FLT));

  /* Kernels double-buffered: the next point's are evaluated before this point's rows,
   * so their FMA chains run beside the row updates instead of stalling the next point. */
  _Alignas(64) FLT kxb[2][KPMAX], kyb[2][KPMAX], kzb[2][KPMAX], kc[2 * KPMAX];
  for (int b = 0; b < 2; b++) {
    for (int i = 0; i < KPMAX; i++) kxb[b][i] = kyb[b][i] = kzb[b][i] = 0;
    kxb[b][0] = kyb[b][0] = kzb[b][0] = 1;
  }
  const int full3d = !p->collapsed[0] && !p->collapsed[1] && !p->collapsed[2];
  if (n > 0) eval_kernels(p, s->u, full3d, kxb[0], kyb[0], kzb[0], KP);
  for (int64_t jj = 0; jj < n; jj++) {
    const FLT cre = c[NV * (j0 + jj)], cim = NV == 2 ? c[NV * (j0 + jj) + 1] : 0;
    const int cur = (int)(jj & 1);
    const FLT *kx = kxb[cur], *ky = kyb[cur], *kz = kzb[cur];
    if (jj + 1 < n) eval_kernels(p, s->u + 3 * (jj + 1), full3d, kxb[!cur], kyb[!cur], kzb[!cur], KP);
    if (NV == 2) {
#pragma omp simd
      for (int i = 0; i < KP; i++) {
        kc[2 * i] = cre * kx[i];
        kc[2 * i + 1] = cim * kx[i];
      }
    } else {
#pragma omp simd
      for (int i = 0; i < KP; i++) kc[i] = cre * kx[i];
    }
    const int64_t ix = s->l0[3 * jj] - lo[0], iy = s->l0[3 * jj + 1] - lo[1],
                  iz = s->l0[3 * jj + 2] - lo[2];
    for (int dz = 0; dz < wd[2]; dz++) {
      for (int dy = 0; dy < wd[1]; dy++) {
        const FLT k = ky[dy] * kz[dz];
        FLT *restrict r = box + NV * (((iz + dz) * bn[1] + iy + dy) * row + ix);
#pragma omp simd
        for (int m = 0; m < NV * KP; m++) r[m] += k * kc[m];
      }
    }
  }

  for (int d = 0; d < 3; d++) {
    s->box_lo[d] = lo[d];
    s->box_n[d] = bn[d];
  }
  s->box_row = row;
  s->box_nv = NV;
}

/* Add a thread's box to the periodic fine grid. Boxes of different subproblems overlap
 * at their edges, so the caller serialises the additions, in subproblem order: the sums
 * then do not depend on thread timing, and a run repeats bit for bit. */
static void add_box(struct PLAN_S *p, int thread)
{
  const scratch_t *s = &p->scratch[thread];
  const int32_t *lo = s->box_lo;
  const int64_t *bn = s->box_n, row = s->box_row;
  const FLT *box = s->box;
  const int64_t nf1 = p->nf[0], nf2 = p->nf[1], nf3 = p->nf[2];
  const int nv = s->box_nv;
  FLT *fine = (FLT *)p->fine;
  for (int64_t z = 0; z < bn[2]; z++) {
    const int64_t gz = wrap(lo[2] + z, nf3);
    for (int64_t y = 0; y < bn[1]; y++) {
      const int64_t gy = wrap(lo[1] + y, nf2);
      FLT *g = fine + 2 * ((gz * nf2 + gy) * nf1);
      const FLT *b = box + nv * ((z * bn[1] + y) * row);
      /* A box row may wrap around the periodic grid: add it in contiguous pieces. */
      for (int64_t x = 0; x < bn[0];) {
        const int64_t gx = wrap(lo[0] + x, nf1);
        const int64_t len = bn[0] - x < nf1 - gx ? bn[0] - x : nf1 - gx;
        FLT *restrict gp = g + 2 * gx;
        const FLT *restrict bp = b + nv * x;
        if (nv == 2) {
#pragma omp simd
          for (int64_t q = 0; q < 2 * len; q++) gp[q] += bp[q];
        } else {
          for (int64_t q = 0; q < len; q++) gp[2 * q] += bp[q];
        }
        x += len;
      }
    }
  }
}

/* ---------------------------------------------------------------- interpolation */

/* Sorted point j's first grid index per dimension and its kernel values there. */
static ALWAYS_INLINE void point_kernels(const struct PLAN_S *p, int64_t j, const int W, const int KP,
                                        int full3d, int32_t l0[3], FLT *kx, FLT *ky, FLT *kz)
{
  const int64_t m = p->n_points;
  FLT u[3] = {0, 0, 0};
  for (int d = 0; d < 3; d++) {
    l0[d] = 0;
    if (!p->collapsed[d]) point_offset(p->t_sorted[d * m + j], W, &l0[d], &u[d]);
  }
  eval_kernels(p, u, full3d, kx, ky, kz, KP);
}

static ALWAYS_INLINE void interp_generic(const struct PLAN_S *p, int64_t j0, int64_t j1, CPX *c,
                                         const int W)
{
  enum { KPMAX = SPF_NUFFT_KPAD(SPF_NUFFT_MAX_WIDTH) };
  const int KP = SPF_NUFFT_KPAD(W);
  const int64_t nf1 = p->nf[0], nf2 = p->nf[1], nf3 = p->nf[2];
  const FLT *fine = (const FLT *)p->fine;
  int wd[3];
  for (int d = 0; d < 3; d++) wd[d] = p->collapsed[d] ? 1 : W;
  _Alignas(64) FLT kx[KPMAX], ky[KPMAX], kz[KPMAX], acc[2 * KPMAX], tmp[2 * KPMAX];
  int64_t iy[KPMAX], iz[KPMAX];
  for (int i = 0; i < KPMAX; i++) kx[i] = ky[i] = kz[i] = 0;
  kx[0] = ky[0] = kz[0] = 1;
  const int full3d = !p->collapsed[0] && !p->collapsed[1] && !p->collapsed[2];
  for (int64_t j = j0; j < j1; j++) {
    int32_t l0[3];
    point_kernels(p, j, W, KP, full3d, l0, kx, ky, kz);
    for (int i = 0; i < wd[1]; i++) iy[i] = wrap(l0[1] + i, nf2);
    for (int i = 0; i < wd[2]; i++) iz[i] = wrap(l0[2] + i, nf3);
    const int contiguous_x = l0[0] >= 0 && l0[0] + wd[0] <= nf1;
    if (full3d && contiguous_x) {
      /* The common case, every loop of compile-time length: one accumulator per y row,
       * each summed over z, so W chains of W FMAs run side by side instead of one of W^2
       * (the FMA latency, not the loads, bounded the single chain). Reads past the
       * kernel's end (into the next row, or the grid's zeroed tail) meet zero kernel
       * values (kx is zero-padded to KP). */
      FLT accy[KPMAX][2 * KPMAX];
      for (int dy = 0; dy < W; dy++)
#pragma omp simd
        for (int q = 0; q < 2 * KP; q++) accy[dy][q] = 0;
      for (int dz = 0; dz < W; dz++) {
        const FLT kzz = kz[dz];
        const FLT *plane = fine + 2 * (iz[dz] * nf2 * nf1 + l0[0]);
        for (int dy = 0; dy < W; dy++) {
          const FLT *r = plane + 2 * iy[dy] * nf1;
#pragma omp simd
          for (int q = 0; q < 2 * KP; q++) accy[dy][q] += kzz * r[q];
        }
      }
      FLT kxx[2 * KPMAX];
      for (int i = 0; i < KP; i++) kxx[2 * i] = kxx[2 * i + 1] = kx[i];
#pragma omp simd
      for (int q = 0; q < 2 * KP; q++) {
        FLT a = 0;
        for (int dy = 0; dy < W; dy++) a += ky[dy] * accy[dy][q];
        acc[q] = a * kxx[q];
      }
      FLT re = 0, im = 0;
      for (int i = 0; i < KP; i++) {
        re += acc[2 * i];
        im += acc[2 * i + 1];
      }
      c[j] = re + im * I;
      continue;
    }
    for (int m = 0; m < 2 * KP; m++) acc[m] = 0;
    for (int dz = 0; dz < wd[2]; dz++) {
      for (int dy = 0; dy < wd[1]; dy++) {
        const FLT k = ky[dy] * kz[dz];
        const FLT *r = fine + 2 * ((iz[dz] * nf2 + iy[dy]) * nf1);
        if (contiguous_x) {
          /* Reads past the kernel's end (into the next row, or the grid's zeroed tail)
           * meet zero kernel values below. */
          r += 2 * l0[0];
        } else {
          for (int i = 0; i < KP; i++) {
            const int64_t gx = wrap(l0[0] + i, nf1);
            tmp[2 * i] = r[2 * gx];
            tmp[2 * i + 1] = r[2 * gx + 1];
          }
          r = tmp;
        }
#pragma omp simd
        for (int m = 0; m < 2 * KP; m++) acc[m] += k * r[m];
      }
    }
    FLT re = 0, im = 0;
    for (int i = 0; i < KP; i++) {
      re += kx[i] * acc[2 * i];
      im += kx[i] * acc[2 * i + 1];
    }
    c[j] = re + im * I;
  }
}

/* Re of the type-2 sums from Re of the fine grid (the kernel is real, so Re c_j is the
 * kernel-weighted sum of Re fine): half the loads and FMAs of interp_generic. The same
 * loop order, so the values equal Re of interp_generic's up to rounding. */
static ALWAYS_INLINE void interp_real_generic(const struct PLAN_S *p, int64_t j0, int64_t j1, FLT *c,
                                              const int W)
{
  enum { KPMAX = SPF_NUFFT_KPAD(SPF_NUFFT_MAX_WIDTH) };
  const int KP = SPF_NUFFT_KPAD(W);
  const int64_t nf1 = p->nf[0], nf2 = p->nf[1], nf3 = p->nf[2];
  const FLT *fine = p->fine_re;
  int wd[3];
  for (int d = 0; d < 3; d++) wd[d] = p->collapsed[d] ? 1 : W;
  _Alignas(64) FLT kx[KPMAX], ky[KPMAX], kz[KPMAX], tmp[KPMAX];
  int64_t iy[KPMAX], iz[KPMAX];
  for (int i = 0; i < KPMAX; i++) kx[i] = ky[i] = kz[i] = tmp[i] = 0;
  kx[0] = ky[0] = kz[0] = 1;
  const int full3d = !p->collapsed[0] && !p->collapsed[1] && !p->collapsed[2];
  for (int64_t j = j0; j < j1; j++) {
    int32_t l0[3];
    point_kernels(p, j, W, KP, full3d, l0, kx, ky, kz);
    for (int i = 0; i < wd[1]; i++) iy[i] = wrap(l0[1] + i, nf2);
    for (int i = 0; i < wd[2]; i++) iz[i] = wrap(l0[2] + i, nf3);
    const int contiguous_x = l0[0] >= 0 && l0[0] + wd[0] <= nf1;
    FLT acc[KPMAX];
    if (full3d && contiguous_x) {
      /* As in interp_generic: one accumulator per y row, loops of compile-time length. */
      FLT accy[KPMAX][KPMAX];
      for (int dy = 0; dy < W; dy++)
#pragma omp simd
        for (int q = 0; q < KP; q++) accy[dy][q] = 0;
      for (int dz = 0; dz < W; dz++) {
        const FLT kzz = kz[dz];
        const FLT *plane = fine + iz[dz] * nf2 * nf1 + l0[0];
        for (int dy = 0; dy < W; dy++) {
          const FLT *r = plane + iy[dy] * nf1;
#pragma omp simd
          for (int q = 0; q < KP; q++) accy[dy][q] += kzz * r[q];
        }
      }
#pragma omp simd
      for (int q = 0; q < KP; q++) {
        FLT a = 0;
        for (int dy = 0; dy < W; dy++) a += ky[dy] * accy[dy][q];
        acc[q] = a * kx[q];
      }
    } else {
      for (int q = 0; q < KP; q++) acc[q] = 0;
      for (int dz = 0; dz < wd[2]; dz++) {
        for (int dy = 0; dy < wd[1]; dy++) {
          const FLT k = ky[dy] * kz[dz];
          const FLT *r = fine + (iz[dz] * nf2 + iy[dy]) * nf1;
          if (contiguous_x) {
            r += l0[0];
          } else {
            for (int i = 0; i < wd[0]; i++) tmp[i] = r[wrap(l0[0] + i, nf1)];
            r = tmp;
          }
          for (int q = 0; q < KP; q++) acc[q] += k * r[q];
        }
      }
      for (int q = 0; q < KP; q++) acc[q] *= kx[q];
    }
    FLT re = 0;
    for (int q = 0; q < KP; q++) re += acc[q];
    c[j] = re;
  }
}

/* One specialisation per width, so every inner loop has a compile-time length. */
#define SPF_WIDTH_INSTANCES(X) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16)
#define DEFINE_KERNELS(W)                                                                    \
  static void spread_w##W(struct PLAN_S *p, int64_t j0, int64_t j1, const FLT *c, int t) \
  {                                                                                          \
    spread_generic(p, j0, j1, c, t, W, 2);                                                   \
  }                                                                                          \
  static void spread_real_w##W(struct PLAN_S *p, int64_t j0, int64_t j1, const FLT *c, int t) \
  {                                                                                          \
    spread_generic(p, j0, j1, c, t, W, 1);                                                   \
  }                                                                                          \
  static void interp_w##W(const struct PLAN_S *p, int64_t j0, int64_t j1, CPX *c)           \
  {                                                                                          \
    interp_generic(p, j0, j1, c, W);                                                         \
  }                                                                                          \
  static void interp_real_w##W(const struct PLAN_S *p, int64_t j0, int64_t j1, FLT *c)      \
  {                                                                                          \
    interp_real_generic(p, j0, j1, c, W);                                                    \
  }
SPF_WIDTH_INSTANCES(DEFINE_KERNELS)
#define SPREAD_ENTRY(W) [W] = spread_w##W,
#define INTERP_ENTRY(W) [W] = interp_w##W,
static const spread_fn spread_table[SPF_NUFFT_MAX_WIDTH + 1] = {SPF_WIDTH_INSTANCES(SPREAD_ENTRY)};
#define SPREAD_REAL_ENTRY(W) [W] = spread_real_w##W,
static const spread_fn spread_real_table[SPF_NUFFT_MAX_WIDTH + 1] = {SPF_WIDTH_INSTANCES(SPREAD_REAL_ENTRY)};
static const interp_fn interp_table[SPF_NUFFT_MAX_WIDTH + 1] = {SPF_WIDTH_INSTANCES(INTERP_ENTRY)};
#define INTERP_REAL_ENTRY(W) [W] = interp_real_w##W,
static const interp_real_fn interp_real_table[SPF_NUFFT_MAX_WIDTH + 1] = {SPF_WIDTH_INSTANCES(INTERP_REAL_ENTRY)};

/* ---------------------------------------------------------------- plan */

static int64_t phys_mem_bytes(void)
{
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return INT64_MAX;
  return (int64_t)pages * page;
}

static void free_scratch(struct PLAN_S *p)
{
  if (!p->scratch) return;
  for (int t = 0; t < p->nthreads; t++) {
    free(p->scratch[t].l0);
    free(p->scratch[t].u);
    free(p->scratch[t].box);
  }
  free(p->scratch);
  p->scratch = NULL;
}

/* What setup_grid made, so a failed setup leaves the plan as before it. */
static void free_grid(struct PLAN_S *p)
{
  if (p->fft) FFTW(destroy_plan)(p->fft);
  for (int i = 0; i < p->n_pass; i++) FFTW(destroy_plan)(p->pass[i]);
  p->n_pass = 0;
  if (p->fine) FFTW(free)(p->fine);
  free(p->fine_re);
  free(p->coef);
  for (int d = 0; d < 3; d++) {
    free(p->deconv[d]);
    p->deconv[d] = NULL;
  }
  p->fft = NULL;
  p->fine = NULL;
  p->fine_re = NULL;
  p->coef = NULL;
  p->grid_ready = 0;
}

void PUB(destroy)(struct PLAN_S *p)
{
  if (!p) return;
  free_grid(p);
  free(p->perm);
  free(p->bin_of);
  free(p->t_sorted);
  free(p->c_sorted);
  free_scratch(p);
  free(p);
}

/* Fine-grid sizes for upsampling factor sigma: 1 when they fit in memory and FFTW's ints. */
static int grid_sizes(const struct PLAN_S *p, double sigma, int width, int64_t nf[3], int64_t *total)
{
  const int allow_pow2 = p->pow2_fine_grid == 1 || (p->pow2_fine_grid < 0 && p->type == 1);
  int64_t t = 1;
  for (int d = 0; d < 3; d++) {
    nf[d] = spf_nufft_fine_size(p->n_modes[d], sigma, width, allow_pow2);
    if (t > INT64_MAX / 64 / nf[d]) return 0;
    t *= nf[d];
  }
  *total = t;
  /* FFTW's sizes are int; and a grid that does not fit in memory would swap or die. */
  return t <= INT_MAX / 2 && (double)t * sizeof(CPX) <= 0.8 * (double)phys_mem_bytes();
}

/* The FFT. Type 1 keeps only the modes, type 2 starts from them alone: along each
 * dimension two runs of the fine grid, [0, ceil(N/2)) and [nf - floor(N/2), nf). In 3D
 * the FFT then runs as 1D passes over just the lines that matter: type 1 all x-lines,
 * the y-lines of the kept x, the z-lines of the kept (x, y); type 2 the reverse. At
 * sigma 2 that is 7/12 of the work of the whole 3D FFT. Elsewhere one plan. */
static int plan_fft(struct PLAN_S *p)
{
  const unsigned flags = p->fftw_measure ? FFTW_MEASURE : FFTW_ESTIMATE;
  const int fsign = p->sign > 0 ? FFTW_BACKWARD : FFTW_FORWARD;
  FFTW(complex) *g = (FFTW(complex) *)p->fine;
  /* MEASURE overwrites the array it plans on; the grid is zeroed before every use. */
  const int prune = !p->collapsed[0] && !p->collapsed[1] && !p->collapsed[2];
  if (!prune) {
    int n[3] = {(int)p->nf[2], (int)p->nf[1], (int)p->nf[0]};
    p->fft = FFTW(plan_dft)(3, n, g, g, fsign, flags);
    return p->fft ? SPF_OK : SPF_ERR_FFTW;
  }
  const int64_t stride[3] = {1, p->nf[0], p->nf[0] * p->nf[1]};
  p->n_pass = 0;
  for (int step = 0; step < 3; step++) {
    const int d = p->type == 1 ? step : 2 - step;
    /* Type 1 keeps the modes of the dimensions it has passed, x before y before z;
     * type 2 has modes only in those it has yet to pass, z before y before x: in both,
     * the dimensions below d are their runs of modes, the others whole. */
    int64_t len[3];
    int nruns[3];
    for (int e = 0; e < 3; e++) {
      if (e >= d) {
        len[e] = p->nf[e];
        nruns[e] = 1;
      } else {
        const int64_t n = p->n_modes[e];
        len[e] = (n + 1) / 2;
        nruns[e] = n / 2 > 0 ? 2 : 1;
      }
    }
    /* A dimension's two runs as one more loop of the plan: both ceil(N/2) long, the
     * second starting one line early when N is odd (a line outside the modes, which
     * type 1 never reads and type 2 holds at zero), so each pass is one plan. */
    FFTW(iodim) dim = {(int)p->nf[d], (int)stride[d], (int)stride[d]};
    FFTW(iodim) many[4];
    int nmany = 0;
    const int es[2] = {d == 0 ? 1 : 0, d == 2 ? 1 : 2}; /* the other two dimensions */
    for (int q = 0; q < 2; q++) {
      const int e = es[q];
      many[nmany++] = (FFTW(iodim)){(int)len[e], (int)stride[e], (int)stride[e]};
      if (nruns[e] == 2) {
        const int64_t jump = p->nf[e] - len[e];
        many[nmany++] = (FFTW(iodim)){2, (int)(jump * stride[e]), (int)(jump * stride[e])};
      }
    }
    FFTW(plan) pl = FFTW(plan_guru_dft)(1, &dim, nmany, many, g, g, fsign, flags);
    if (!pl) return SPF_ERR_FFTW;
    p->pass[p->n_pass++] = pl;
  }
  return SPF_OK;
}

static void run_fft(const struct PLAN_S *p)
{
  if (p->fft) FFTW(execute)(p->fft);
  for (int i = 0; i < p->n_pass; i++) FFTW(execute)(p->pass[i]);
}

/* setup_grid's work; on failure it may leave parts made, which setup_grid frees. */
static int setup_grid_parts(struct PLAN_S *p, double sigma)
{
  int rc;
  if ((rc = spf_nufft_kernel_choose(p->tol, sigma, &p->ker)) != SPF_OK) return rc;
  p->width = p->ker.width;
  p->kpad = SPF_NUFFT_KPAD(p->width);
  if (!grid_sizes(p, sigma, p->width, p->nf, &p->nf_total)) return SPF_ERR_TOO_BIG;
  for (int d = 0; d < 3; d++) p->inv_nf[d] = 1.0 / (double)p->nf[d];

  /* Kernel: polynomial fit to well below the tolerance, and its Fourier transform. */
  {
    double coef[(SPF_NUFFT_MAX_DEGREE + 1) * SPF_NUFFT_KPAD(SPF_NUFFT_MAX_WIDTH)], fit_err;
    /* tol/10 is reachable for every width and keeps the fit's share of the error small. */
    double target = p->tol * 0.1 > 1e-14 ? p->tol * 0.1 : 1e-14;
    p->degree = spf_nufft_kernel_fit(&p->ker, target, coef, &fit_err);
    if (p->degree < 0) return SPF_ERR_TOLERANCE; /* every width 2..16 fits (tested) */
    const int lanes = kernel_lanes(p->kpad);
    const int kstride = (p->kpad + lanes - 1) / lanes * lanes;
    const size_t nc = (size_t)(p->degree + 1) * kstride;
    p->coef = alloc_aligned(sizeof(FLT) * nc);
    if (!p->coef) return SPF_ERR_ALLOC;
    memset(p->coef, 0, sizeof(FLT) * nc);
    for (int d = 0; d <= p->degree; d++)
      for (int i = 0; i < p->kpad; i++) p->coef[(size_t)d * kstride + i] = (FLT)coef[d * p->kpad + i];
  }
  for (int d = 0; d < 3; d++) {
    int64_t n = p->n_modes[d];
    double *ph = malloc(sizeof(double) * (size_t)n);
    p->deconv[d] = malloc(sizeof(FLT) * (size_t)n);
    if (!ph || !p->deconv[d]) {
      free(ph);
      return SPF_ERR_ALLOC;
    }
    if (p->collapsed[d]) ph[0] = 1.0;
    else spf_nufft_kernel_fourier(&p->ker, n, p->nf[d], ph);
    for (int64_t k = 0; k < n; k++) p->deconv[d][k] = (FLT)(1.0 / ph[k]);
    free(ph);
  }

  p->fine = FFTW(malloc)(sizeof(CPX) * (size_t)(p->nf_total + p->kpad));
  if (!p->fine) return SPF_ERR_ALLOC;
  memset(p->fine, 0, sizeof(CPX) * (size_t)(p->nf_total + p->kpad));
  spf_fftw_threads_init();
  FFTW(plan_with_nthreads)(p->nthreads);
  if ((rc = plan_fft(p)) != SPF_OK) return rc;
  p->spread = spread_table[p->width];
  p->interp = interp_table[p->width];
  p->spread_real = spread_real_table[p->width];
  p->interp_real = interp_real_table[p->width];
  p->grid_ready = 1;
  return SPF_OK;
}

/* Kernel, fine grid, deconvolution tables and FFT plan for upsampling factor sigma. */
static int setup_grid(struct PLAN_S *p, double sigma)
{
  int rc = setup_grid_parts(p, sigma);
  if (rc) free_grid(p);
  return rc;
}

/* Upsampling factor for upsampfac 0: the cheaper of 2 and 1.25 for m points by a cost
 * model of one execute, wall seconds on 2 threads of this project's machines (fitted on
 * the 16-case matrix, BENCHMARKS.md): each point costs one vector update per kernel row
 * (w^(dim-1) rows, 1.6 ns each), the FFT n log2 n times 2e-10 s (double) or 1.2e-10 s
 * (float). Only the ratio of the two matters, so the thread count drops out. Sparse
 * points on a large grid get 1.25 (a smaller FFT, a wider kernel); dense ones 2. */
static double choose_upsampfac(const struct PLAN_S *p, int64_t m)
{
  const double sigmas[2] = {2.0, 1.25};
  const double fft_per = sizeof(FLT) == 8 ? 2e-10 : 1.2e-10, row = 1.6e-9;
  double best = 2.0, best_cost = INFINITY;
  for (int i = 0; i < 2; i++) {
    spf_nufft_kernel k;
    int64_t nf[3], total;
    if (spf_nufft_kernel_choose(p->tol, sigmas[i], &k) != SPF_OK) continue;
    if (!grid_sizes(p, sigmas[i], k.width, nf, &total)) continue;
    double rows = 1;
    int dims = 0;
    for (int d = 0; d < 3; d++) dims += !p->collapsed[d];
    for (int d = 1; d < dims; d++) rows *= k.width;
    const double cost = (double)m * rows * row + (double)total * log2((double)total + 1) * fft_per;
    if (cost < best_cost) {
      best_cost = cost;
      best = sigmas[i];
    }
  }
  return best;
}

/* Points per spreading subproblem for m points (type 1). Each subproblem spreads into a
 * private box, its points' extent plus a kernel-wide halo, added to the fine grid after:
 * where points are sparse on the grid, small subproblems' boxes are mostly halo, and
 * larger ones measured faster (64^3 modes, 10^6 points, double: 0.053-0.058 s at 65,536
 * against 0.060-0.064 at 8,192; BENCHMARKS.md); where they are dense the size makes no
 * difference. m / 16 keeps 16 subproblems to share among threads; the box cap bounds a
 * box's memory when the grid is large for the points. A function of m and the grid
 * alone, never of the thread count, so the result's bits do not depend on the latter. */
static int64_t choose_max_sub(const struct PLAN_S *p, int64_t m)
{
  if (p->max_sub_opt > 0) return p->max_sub_opt;
  int64_t s = m / 16;
  if (s > MAX_AUTO_SUB) s = MAX_AUTO_SUB;
  if (m > 0 && (double)s / (double)m * (double)p->nf_total > MAX_AUTO_BOX)
    s = (int64_t)((double)MAX_AUTO_BOX * (double)m / (double)p->nf_total);
  return s < MIN_AUTO_SUB ? MIN_AUTO_SUB : s;
}

int PUB(make_plan)(int type, int dim, const int64_t *n_modes, int sign, int ntransf, double tol,
                   const spf_nufft_opts *opts_in, struct PLAN_S **plan_out)
{
  if (!plan_out) return SPF_ERR_NULL;
  *plan_out = NULL;
  if (!n_modes) return SPF_ERR_NULL;
  if (type != 1 && type != 2) return SPF_ERR_TYPE;
  if (dim < 1 || dim > 3 || ntransf < 1) return SPF_ERR_SIZE;
  if (sign != 1 && sign != -1) return SPF_ERR_ARG;
  if (!(tol >= FLT_MIN_TOL && tol <= 0.1)) return SPF_ERR_TOLERANCE;
  spf_nufft_opts o;
  if (opts_in) o = *opts_in;
  else spf_nufft_default_opts(&o);
  if ((o.modeord != 0 && o.modeord != 1) || (o.upsampfac != 2.0 && o.upsampfac != 1.25 && o.upsampfac != 0.0) ||
      o.nthreads < 0 || o.max_subproblem < 0 || (o.kernel_eval != 0 && o.kernel_eval != 1) || (o.deterministic != 0 && o.deterministic != 1) ||
      o.pow2_fine_grid < -1 || o.pow2_fine_grid > 1)
    return SPF_ERR_OPTION;

  struct PLAN_S *p = calloc(1, sizeof *p);
  if (!p) return SPF_ERR_ALLOC;
  p->type = type;
  p->dim = dim;
  p->sign = sign;
  p->ntransf = ntransf;
  p->modeord = o.modeord;
  p->kernel_eval = o.kernel_eval;
  p->deterministic = o.deterministic;
  p->sort = o.sort != 0;
  p->max_sub_opt = o.max_subproblem;
  p->max_sub = o.max_subproblem > 0 ? o.max_subproblem : MIN_AUTO_SUB;
  p->nthreads = o.nthreads > 0 ? o.nthreads : omp_get_max_threads();
  int rc = SPF_OK;

  p->n_modes_total = 1;
  for (int d = 0; d < 3; d++) {
    p->n_modes[d] = d < dim ? n_modes[d] : 1;
    if (p->n_modes[d] < 1 || p->n_modes[d] > ((int64_t)1 << 30)) { rc = SPF_ERR_SIZE; goto fail; }
    p->collapsed[d] = p->n_modes[d] == 1;
    if (p->n_modes_total > INT64_MAX / p->n_modes[d]) { rc = SPF_ERR_TOO_BIG; goto fail; }
    p->n_modes_total *= p->n_modes[d];
  }
  p->tol = tol;
  p->fftw_measure = o.fftw_measure;
  p->pow2_fine_grid = o.pow2_fine_grid;
  if (o.upsampfac != 0.0) {
    if ((rc = setup_grid(p, o.upsampfac)) != SPF_OK) goto fail;
  } else {
    /* Chosen at the first set_points; refuse now what neither factor can do. */
    spf_nufft_kernel k;
    int64_t nf[3], total;
    if ((rc = spf_nufft_kernel_choose(tol, 2.0, &k)) != SPF_OK) goto fail;
    if (!grid_sizes(p, 1.25, k.width, nf, &total)) {
      rc = SPF_ERR_TOO_BIG;
      goto fail;
    }
  }
  p->scratch = calloc((size_t)p->nthreads, sizeof(scratch_t));
  if (!p->scratch) { rc = SPF_ERR_ALLOC; goto fail; }
  p->n_points = -1;
  *plan_out = p;
  return SPF_OK;
fail:
  PUB(destroy)(p);
  return rc;
}

/* ---------------------------------------------------------------- points */

/* Counting sort of the points by bin; stable, so the order does not depend on threads. */
static int sort_points(struct PLAN_S *p)
{
  const int64_t m = p->n_points;
  int64_t nb[3], bs[3] = {BIN_X, BIN_Y, BIN_Z};
  for (int d = 0; d < 3; d++) {
    if (p->collapsed[d]) bs[d] = 1;
    nb[d] = (p->nf[d] + bs[d] - 1) / bs[d];
  }
  const int64_t nbins = nb[0] * nb[1] * nb[2];
  const int nt = p->nthreads;
  int64_t *counts = calloc((size_t)(nbins * nt), sizeof(int64_t));
  if (!counts) return SPF_ERR_ALLOC;
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t a = m * t / team, b = m * (t + 1) / team;
    int64_t *cnt = counts + (size_t)t * nbins;
    for (int64_t j = a; j < b; j++) {
      int64_t bin[3] = {0, 0, 0};
      for (int d = 0; d < 3; d++) {
        if (p->collapsed[d]) continue;
        int64_t q = (int64_t)(fold((double)p->coords[d][j], (double)p->nf[d], p->inv_nf[d]) / (double)bs[d]);
        bin[d] = q < nb[d] ? q : nb[d] - 1;
      }
      int32_t k = (int32_t)((bin[2] * nb[1] + bin[1]) * nb[0] + bin[0]);
      p->bin_of[j] = k;
      cnt[k]++;
    }
#pragma omp barrier
#pragma omp single
    {
      int64_t run = 0;
      for (int64_t k = 0; k < nbins; k++)
        for (int tt = 0; tt < team; tt++) {
          int64_t cnum = counts[(size_t)tt * nbins + k];
          counts[(size_t)tt * nbins + k] = run;
          run += cnum;
        }
    }
    for (int64_t j = a; j < b; j++) p->perm[cnt[p->bin_of[j]]++] = j;
  }
  free(counts);
  return SPF_OK;
}

int PUB(set_points)(struct PLAN_S *p, int64_t n_points, const FLT *x, const FLT *y, const FLT *z)
{
  if (!p) return SPF_ERR_NULL;
  if (n_points < 0) return SPF_ERR_SIZE;
  const FLT *xyz[3] = {x, y, z};
  for (int d = 0; d < 3; d++) {
    if (n_points > 0 && !p->collapsed[d] && !xyz[d]) return SPF_ERR_NULL;
    if (d >= p->dim) xyz[d] = NULL;
  }
  double t0 = omp_get_wtime();
  /* Every coordinate that is given is checked: NaN fails both comparisons. */
  int bad = 0;
  const double lim = (double)(FLT)(3.0 * M_PI); /* float's 3pi rounds up: accept it */
  for (int d = 0; d < p->dim; d++) {
    const FLT *v = xyz[d];
    if (!v) continue;
#pragma omp parallel for num_threads(p->nthreads) reduction(|| : bad) schedule(static)
    for (int64_t j = 0; j < n_points; j++) {
      double q = (double)v[j];
      bad = bad || !(q >= -lim && q <= lim);
    }
  }
  p->n_points = -1;
  if (bad) return SPF_ERR_POINT;
  if (!p->grid_ready) {
    int rc = setup_grid(p, choose_upsampfac(p, n_points));
    if (rc) return rc;
  }
  for (int d = 0; d < 3; d++) p->coords[d] = xyz[d];

  /* Scratch for spreading: per-point offsets of one subproblem per thread. */
  if (p->type == 1) {
    p->max_sub = choose_max_sub(p, n_points);
    if (p->max_sub > p->sub_cap) {
      p->sub_cap = 0;
      for (int t = 0; t < p->nthreads; t++) {
        scratch_t *s = &p->scratch[t];
        free(s->l0);
        free(s->u);
        s->l0 = malloc(sizeof(int32_t) * 3 * (size_t)p->max_sub);
        s->u = malloc(sizeof(FLT) * 3 * (size_t)p->max_sub);
        if (!s->l0 || !s->u) return SPF_ERR_ALLOC;
      }
      p->sub_cap = p->max_sub;
    }
  }
  if (n_points > p->perm_cap) {
    free(p->perm);
    free(p->bin_of);
    free(p->t_sorted);
    free(p->c_sorted);
    p->perm = p->sort ? malloc(sizeof(int64_t) * (size_t)n_points) : NULL;
    p->bin_of = p->sort ? malloc(sizeof(int32_t) * (size_t)n_points) : NULL;
    p->t_sorted = malloc(sizeof(double) * 3 * (size_t)n_points);
    p->c_sorted = malloc(sizeof(CPX) * (size_t)n_points);
    p->perm_cap = ((p->perm && p->bin_of) || !p->sort) && p->t_sorted && p->c_sorted ? n_points : 0;
    if (!p->perm_cap) return SPF_ERR_ALLOC;
  }
  p->n_points = n_points;
  if (p->sort && n_points > 0) {
    int rc = sort_points(p);
    if (rc) {
      p->n_points = -1;
      return rc;
    }
  }
  /* Folded coordinates in sorted order: one gather here, and the spreading loops read
   * memory in order instead of missing the cache on every point. */
  for (int d = 0; d < 3; d++) {
    double *t = p->t_sorted + (size_t)d * n_points;
    if (p->collapsed[d]) {
      memset(t, 0, sizeof(double) * (size_t)n_points);
      continue;
    }
    const FLT *v = p->coords[d];
    const double nf = (double)p->nf[d], inv = p->inv_nf[d];
    const int64_t *perm = p->perm;
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
    for (int64_t j = 0; j < n_points; j++) {
      if (perm) __builtin_prefetch(v + perm_ahead(perm, j, n_points));
      t[j] = fold((double)v[perm ? perm[j] : j], nf, inv);
    }
  }
  p->n_points = n_points;
  p->timing.sort += omp_get_wtime() - t0;
  return SPF_OK;
}

/* ---------------------------------------------------------------- execute */

/* Index into the centred deconvolution table, and fine-grid index, of output slot a. */
static ALWAYS_INLINE void mode_index(int64_t a, int64_t n, int64_t nf, int modeord, int64_t *centred,
                                     int64_t *fine_idx)
{
  int64_t k = modeord == 0 ? a - n / 2 : (a < (n + 1) / 2 ? a : a - n);
  *centred = k + n / 2;
  *fine_idx = k < 0 ? k + nf : k;
}

/* Type 1: fine grid -> modes (divide by phihat). Type 2: modes -> fine grid. */
static void deconvolve(struct PLAN_S *p, CPX *f, int to_modes)
{
  const int64_t n1 = p->n_modes[0], n2 = p->n_modes[1], n3 = p->n_modes[2];
  const int64_t nf1 = p->nf[0], nf2 = p->nf[1];
#pragma omp parallel for num_threads(p->nthreads) schedule(static) collapse(2)
  for (int64_t a3 = 0; a3 < n3; a3++) {
    for (int64_t a2 = 0; a2 < n2; a2++) {
      int64_t c3, g3, c2, g2;
      mode_index(a3, n3, p->nf[2], p->modeord, &c3, &g3);
      mode_index(a2, n2, nf2, p->modeord, &c2, &g2);
      const FLT d23 = p->deconv[2][c3] * p->deconv[1][c2];
      CPX *fr = f + (a3 * n2 + a2) * n1;
      CPX *gr = p->fine + (g3 * nf2 + g2) * nf1;
      for (int64_t a1 = 0; a1 < n1; a1++) {
        int64_t c1, g1;
        mode_index(a1, n1, nf1, p->modeord, &c1, &g1);
        const FLT s = d23 * p->deconv[0][c1];
        if (to_modes) fr[a1] = s * gr[g1];
        else gr[g1] = s * fr[a1];
      }
    }
  }
}

static void zero_fine(struct PLAN_S *p)
{
  const int64_t n = p->nf_total;
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
  for (int64_t i = 0; i < n; i++) p->fine[i] = 0;
}

/* c: complex strengths (c_real NULL) or real ones (c NULL). */
static int execute_type1(struct PLAN_S *p, const CPX *c, const FLT *c_real, CPX *f)
{
  double t0 = omp_get_wtime();
  zero_fine(p);
  const int64_t m = p->n_points, nsub = (m + p->max_sub - 1) / p->max_sub;
  const int64_t *perm = p->perm;
  const FLT *cs = (const FLT *)p->c_sorted;
  spread_fn spread = p->spread;
  if (c_real) {
    FLT *csr = (FLT *)p->c_sorted; /* perm_cap complex numbers hold m reals */
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
    for (int64_t j = 0; j < m; j++) {
      if (perm) __builtin_prefetch(c_real + perm_ahead(perm, j, m));
      csr[j] = c_real[perm ? perm[j] : j];
    }
    spread = p->spread_real;
  } else {
    CPX *csc = p->c_sorted;
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
    for (int64_t j = 0; j < m; j++) {
      if (perm) __builtin_prefetch(c + perm_ahead(perm, j, m));
      csc[j] = c[perm ? perm[j] : j];
    }
  }
  int failed = 0;
#pragma omp parallel num_threads(p->nthreads) reduction(|| : failed)
  {
    const int t = omp_get_thread_num();
    if (p->deterministic) {
#pragma omp for ordered schedule(static, 1)
      for (int64_t s = 0; s < nsub; s++) {
        const int64_t j0 = s * p->max_sub, j1 = j0 + p->max_sub < m ? j0 + p->max_sub : m;
        spread(p, j0, j1, cs, t);
        const int ok = p->scratch[t].box_cap != 0;
        failed = failed || !ok;
#pragma omp ordered
        if (ok) add_box(p, t);
      }
    } else {
#pragma omp for schedule(dynamic, 1)
      for (int64_t s = 0; s < nsub; s++) {
        const int64_t j0 = s * p->max_sub, j1 = j0 + p->max_sub < m ? j0 + p->max_sub : m;
        spread(p, j0, j1, cs, t);
        const int ok = p->scratch[t].box_cap != 0;
        failed = failed || !ok;
#pragma omp critical(spf_nufft_add_box)
        if (ok) add_box(p, t);
      }
    }
  }
  if (failed) return SPF_ERR_ALLOC;
  double t1 = omp_get_wtime();
  run_fft(p);
  double t2 = omp_get_wtime();
  deconvolve(p, f, 1);
  double t3 = omp_get_wtime();
  p->timing.spread += t1 - t0;
  p->timing.fft += t2 - t1;
  p->timing.deconvolve += t3 - t2;
  return SPF_OK;
}

static void load_modes(struct PLAN_S *p, const CPX *f)
{
  double t0 = omp_get_wtime();
  zero_fine(p);
  deconvolve(p, (CPX *)f, 0);
  double t1 = omp_get_wtime();
  run_fft(p);
  p->modes_loaded = 1;
  p->fine_re_valid = 0;
  p->timing.deconvolve += t1 - t0;
  p->timing.fft += omp_get_wtime() - t1;
}

static void interpolate(struct PLAN_S *p, CPX *c)
{
  double t2 = omp_get_wtime();
  const int64_t m = p->n_points, nchunk = (m + INTERP_CHUNK - 1) / INTERP_CHUNK;
#pragma omp parallel for num_threads(p->nthreads) schedule(dynamic, 1)
  for (int64_t s = 0; s < nchunk; s++) {
    const int64_t j0 = s * INTERP_CHUNK, j1 = j0 + INTERP_CHUNK < m ? j0 + INTERP_CHUNK : m;
    p->interp(p, j0, j1, p->c_sorted);
  }
  const int64_t *perm = p->perm;
  const CPX *cs = p->c_sorted;
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
  for (int64_t j = 0; j < m; j++) {
    if (perm) __builtin_prefetch(c + perm_ahead(perm, j, m), 1);
    c[perm ? perm[j] : j] = cs[j];
  }
  p->timing.spread += omp_get_wtime() - t2;
}

int PUB(execute)(struct PLAN_S *p, CPX *c, CPX *f)
{
  if (!p) return SPF_ERR_NULL;
  if (p->n_points < 0) return SPF_ERR_NO_POINTS;
  if (!f || (!c && p->n_points > 0)) return SPF_ERR_NULL;
  for (int v = 0; v < p->ntransf; v++) {
    CPX *cv = c ? c + (size_t)v * p->n_points : NULL;
    CPX *fv = f + (size_t)v * p->n_modes_total;
    if (p->type == 1) {
      int rc = execute_type1(p, cv, NULL, fv);
      if (rc) return rc;
    } else {
      load_modes(p, fv);
      interpolate(p, cv);
    }
  }
  return SPF_OK;
}

int PUB(load_modes)(struct PLAN_S *p, const CPX *f)
{
  if (!p || !f) return SPF_ERR_NULL;
  if (p->type != 2 || p->ntransf != 1) return SPF_ERR_ARG;
  if (!p->grid_ready) { /* upsampfac 0 before any points: the dense-points choice */
    int rc = setup_grid(p, 2.0);
    if (rc) return rc;
  }
  load_modes(p, f);
  return SPF_OK;
}

int PUB(interpolate)(struct PLAN_S *p, CPX *c)
{
  if (!p) return SPF_ERR_NULL;
  if (p->type != 2 || p->ntransf != 1) return SPF_ERR_ARG;
  if (!p->modes_loaded) return SPF_ERR_NO_MODES;
  if (p->n_points < 0) return SPF_ERR_NO_POINTS;
  if (!c && p->n_points > 0) return SPF_ERR_NULL;
  interpolate(p, c);
  return SPF_OK;
}

int PUB(execute_real)(struct PLAN_S *p, const FLT *c, CPX *f)
{
  if (!p) return SPF_ERR_NULL;
  if (p->type != 1 || p->ntransf != 1) return SPF_ERR_ARG;
  if (p->n_points < 0) return SPF_ERR_NO_POINTS;
  if (!f || (!c && p->n_points > 0)) return SPF_ERR_NULL;
  return execute_type1(p, NULL, c, f);
}

int PUB(interpolate_real)(struct PLAN_S *p, FLT *c)
{
  if (!p) return SPF_ERR_NULL;
  if (p->type != 2 || p->ntransf != 1) return SPF_ERR_ARG;
  if (!p->modes_loaded) return SPF_ERR_NO_MODES;
  if (p->n_points < 0) return SPF_ERR_NO_POINTS;
  if (!c && p->n_points > 0) return SPF_ERR_NULL;
  double t0 = omp_get_wtime();
  const int64_t nt = p->nf_total + p->kpad;
  if (!p->fine_re) {
    p->fine_re = alloc_aligned(sizeof(FLT) * (size_t)nt);
    if (!p->fine_re) return SPF_ERR_ALLOC;
  }
  if (!p->fine_re_valid) {
    FLT *g = p->fine_re;
    const CPX *f = p->fine;
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
    for (int64_t i = 0; i < nt; i++) g[i] = CREAL(f[i]);
    p->fine_re_valid = 1;
  }
  /* The sorted values go to the front of c_sorted (perm_cap complex numbers). */
  FLT *cs = (FLT *)p->c_sorted;
  const int64_t m = p->n_points, nchunk = (m + INTERP_CHUNK - 1) / INTERP_CHUNK;
#pragma omp parallel for num_threads(p->nthreads) schedule(dynamic, 1)
  for (int64_t s = 0; s < nchunk; s++) {
    const int64_t j0 = s * INTERP_CHUNK, j1 = j0 + INTERP_CHUNK < m ? j0 + INTERP_CHUNK : m;
    p->interp_real(p, j0, j1, cs);
  }
  const int64_t *perm = p->perm;
#pragma omp parallel for num_threads(p->nthreads) schedule(static)
  for (int64_t j = 0; j < m; j++) {
    if (perm) __builtin_prefetch(c + perm_ahead(perm, j, m), 1);
    c[perm ? perm[j] : j] = cs[j];
  }
  p->timing.spread += omp_get_wtime() - t0;
  return SPF_OK;
}

void PUB(get_info)(const struct PLAN_S *p, spf_nufft_info *info)
{
  if (!p || !info) return;
  info->type = p->type;
  info->dim = p->dim;
  info->width = p->width;
  info->poly_degree = p->kernel_eval ? p->degree : 0;
  info->beta = p->ker.c;
  info->upsampfac = p->ker.upsampfac;
  for (int d = 0; d < 3; d++) {
    info->n_modes[d] = p->n_modes[d];
    info->n_fine[d] = p->nf[d];
  }
  info->n_points = p->n_points;
  info->nthreads = p->nthreads;
}

void PUB(get_timing)(const struct PLAN_S *p, spf_nufft_timing *timing)
{
  if (p && timing) *timing = p->timing;
}

void PUB(reset_timing)(struct PLAN_S *p)
{
  if (p) memset(&p->timing, 0, sizeof p->timing);
}
