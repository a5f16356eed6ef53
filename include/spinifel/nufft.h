/* Non-uniform fast Fourier transforms in 1, 2 and 3 dimensions (types 1 and 2).
 *
 *   type 1 (non-uniform to uniform): f[k] = sum_j c[j] exp(i sign k.x_j)
 *   type 2 (uniform to non-uniform): c[j] = sum_k f[k] exp(i sign k.x_j)
 *
 * Modes k run over N1 x N2 x N3 integers, in each dimension either centred,
 * k = -floor(N/2) .. ceil(N/2)-1, or FFT-style, 0 .. ceil(N/2)-1 then
 * -floor(N/2) .. -1 (opts.modeord). Mode arrays are stored with k1 fastest:
 * f[(i3 * N2 + i2) * N1 + i1]. Points x_j are radians, anywhere in
 * [-3pi, 3pi) (the transform is 2pi-periodic in each coordinate).
 *
 * The plan follows FINUFFT's guru interface: make a plan once (sizes, sign,
 * tolerance, threads: this plans the FFT), set points (sorts them; may be
 * called again with new points without re-planning), execute as often as
 * needed (ntransf vectors per call), destroy. The method is FINUFFT's (Barnett,
 * Magland and af Klinteberg, SIAM J. Sci. Comput. 41 (2019) C479): spread onto an
 * upsampled grid, FFT, divide by the kernel's Fourier transform; the kernel is the
 * prolate spheroidal wave function psi_0 (docs/method.md), which meets the requested
 * tolerance where the exponential-of-semicircle kernel of that paper, at the same
 * width, does not quite.
 *
 * With the default upsampfac 0 the kernel, the fine grid and the FFT plan are made at the
 * first set_points (or at load_modes, if that comes first: then for dense points, 2.0),
 * since the best upsampling factor depends on the number of points, as in FINUFFT.
 *
 * Precision is a prefix: spf_nufft_* is double, spf_nufftf_* is float.
 * A plan must not be used from two threads at once; different plans can.
 * Making and destroying plans calls the FFTW planner, which is not
 * thread-safe: do it from one thread (and an automatic plan's first set_points
 * or load_modes, which plans its FFT). */
#ifndef SPINIFEL_NUFFT_H
#define SPINIFEL_NUFFT_H

#include <complex.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int modeord;          /* 0: centred modes (default); 1: FFT-style order */
  double upsampfac;     /* fine-grid upsampling: 0 (default): chosen at the first set_points,
                           the cheaper of 2.0 and 1.25 for that many points by a cost model
                           (1.25 for points sparse on a large grid); kept for later calls.
                           Fix it (2.0 or 1.25) where results must not depend on the
                           number of points, as the library's own modules do.
                           2.0: the fine grid twice the modes; 1.25: less memory, a wider kernel */
  int nthreads;         /* OpenMP threads; 0: omp_get_max_threads() (default) */
  int fftw_measure;     /* 1: plan the FFT with FFTW_MEASURE (default, fastest execute);
                           0: FFTW_ESTIMATE (instant planning, slower FFTs) */
  int kernel_eval;      /* 1: piecewise-polynomial kernel (default); 0: its Legendre series, directly (slow) */
  int sort;             /* 1: sort points into cache-sized bins (default); 0: input order */
  int max_subproblem;   /* type 1: points per spreading subproblem; 0 (default): chosen at
                           each set_points from the point count m and the fine grid,
                           m / 16 within [8192, 65536] (larger subproblems spend less on
                           their boxes' halos where points are sparse on the grid) */
  int pow2_fine_grid;   /* fine-grid sizes are 2,3,5-smooth; may they be powers of two?
                           -1: auto (default): yes for type 1, no for type 2, whose
                               interpolation halves in speed on 2^k rows (cache-set
                               conflicts; measured in BENCHMARKS.md)
                            0: never;  1: yes */
  int deterministic;    /* type 1: 1 (default): boxes are added to the fine grid in a fixed
                           order, so repeated runs give the same bits (checkpoints, MPI);
                           0: in whatever order threads finish, ~20% faster spreading
                           (BENCHMARKS.md) but results vary in the last bits */
} spf_nufft_opts;

/* Fill opts with the defaults documented above. */
void spf_nufft_default_opts(spf_nufft_opts *opts);

/* What a plan chose, for reports and benchmarks. */
typedef struct {
  int type, dim, width;       /* transform type, dimension, kernel width in fine-grid points */
  int poly_degree;            /* degree of the piecewise polynomial (0 when direct) */
  double beta;                /* kernel shape parameter: psi_0's bandwidth c */
  double upsampfac;           /* 0, with width and n_fine, until an automatic plan has chosen */
  int64_t n_modes[3];         /* N1, N2, N3 (1 for unused dimensions) */
  int64_t n_fine[3];          /* fine-grid sizes */
  int64_t n_points;           /* points set by the last set_points */
  int nthreads;
} spf_nufft_info;

/* Seconds spent in each stage, summed since the plan was made (or reset). */
typedef struct {
  double sort;                /* set_points: checking and binning the points */
  double spread;              /* type 1 spreading or type 2 interpolation */
  double fft;
  double deconvolve;          /* kernel correction and copy between grids */
} spf_nufft_timing;

typedef struct spf_nufft_plan_s *spf_nufft_plan;
typedef struct spf_nufftf_plan_s *spf_nufftf_plan;

/* Make a plan.
 *   type      1 or 2
 *   dim       1, 2 or 3; n_modes[d] for d >= dim must be 1 (or n_modes may hold only dim entries)
 *   n_modes   mode counts, each >= 1 (a dimension with one mode ignores its coordinate)
 *   sign      +1 or -1: the sign of the exponent
 *   ntransf   vectors per execute (>= 1), stored one after another
 *   tol       requested relative l2 accuracy: 1e-14 .. 1e-1 in double,
 *             1e-6 .. 1e-1 in float (upsampfac 1.25 reaches about 1e-9 at best)
 *   opts      NULL for the defaults
 * On success *plan is a new plan; on failure it is NULL and a code is returned. */
int spf_nufft_make_plan(int type, int dim, const int64_t *n_modes, int sign, int ntransf,
                        double tol, const spf_nufft_opts *opts, spf_nufft_plan *plan);
int spf_nufftf_make_plan(int type, int dim, const int64_t *n_modes, int sign, int ntransf,
                         double tol, const spf_nufft_opts *opts, spf_nufftf_plan *plan);

/* Set n_points >= 0 points. x (and y, z for dim >= 2, 3) hold the coordinates; the
 * plan keeps these pointers (no copy): they must stay valid and unchanged until the
 * next set_points or destroy. Coordinates of dimensions with one mode may be NULL.
 * Returns SPF_ERR_POINT if any coordinate is NaN, infinite or outside [-3pi, 3pi).
 * On an automatic plan's first call this also chooses the upsampling factor and makes
 * the grid and the FFT plan (which can fail: SPF_ERR_ALLOC, SPF_ERR_FFTW). */
int spf_nufft_set_points(spf_nufft_plan plan, int64_t n_points,
                         const double *x, const double *y, const double *z);
int spf_nufftf_set_points(spf_nufftf_plan plan, int64_t n_points,
                          const float *x, const float *y, const float *z);

/* Execute on ntransf vectors. c: ntransf * n_points strengths (type 1 input, type 2
 * output); f: ntransf * N1*N2*N3 modes (type 1 output, type 2 input). */
int spf_nufft_execute(spf_nufft_plan plan, double complex *c, double complex *f);
int spf_nufftf_execute(spf_nufftf_plan plan, float complex *c, float complex *f);

/* Type 2 in two steps, for evaluating one set of modes at many point sets (slicing
 * many batches of orientations from one volume): load_modes does the kernel correction
 * and the FFT once; interpolate evaluates at the points of the last set_points, and can
 * follow any number of set_points calls. execute = load_modes + interpolate. Only for
 * type 2 plans with ntransf = 1 (else SPF_ERR_ARG); interpolate before load_modes gives
 * SPF_ERR_NO_MODES. */
int spf_nufft_load_modes(spf_nufft_plan plan, const double complex *f);
int spf_nufftf_load_modes(spf_nufftf_plan plan, const float complex *f);
int spf_nufft_interpolate(spf_nufft_plan plan, double complex *c);
int spf_nufftf_interpolate(spf_nufftf_plan plan, float complex *c);
/* The real parts of interpolate's values (Re c), at half its cost: the kernel is real, so
 * they come from the real part of the fine grid alone. For a real, centrosymmetric
 * volume (an autocorrelation) the values are real and this is all of them. */
int spf_nufft_interpolate_real(spf_nufft_plan plan, double *c);
int spf_nufftf_interpolate_real(spf_nufftf_plan plan, float *c);
/* Type 1 with real strengths c (n_points of them): execute's result for c + 0i, with half
 * its spreading work. Only for type 1 plans with ntransf = 1 (else SPF_ERR_ARG). */
int spf_nufft_execute_real(spf_nufft_plan plan, const double *c, double complex *f);
int spf_nufftf_execute_real(spf_nufftf_plan plan, const float *c, float complex *f);

void spf_nufft_destroy(spf_nufft_plan plan);
void spf_nufftf_destroy(spf_nufftf_plan plan);

void spf_nufft_get_info(const struct spf_nufft_plan_s *plan, spf_nufft_info *info);
void spf_nufftf_get_info(const struct spf_nufftf_plan_s *plan, spf_nufft_info *info);
void spf_nufft_get_timing(const struct spf_nufft_plan_s *plan, spf_nufft_timing *timing);
void spf_nufftf_get_timing(const struct spf_nufftf_plan_s *plan, spf_nufft_timing *timing);
void spf_nufft_reset_timing(spf_nufft_plan plan);
void spf_nufftf_reset_timing(spf_nufftf_plan plan);

/* The slow, obvious reference: the same sums evaluated directly in double precision,
 * O(n_points x modes) work, OpenMP-parallel. Arguments mean what they mean for a plan
 * (modeord as in the options; coordinates of one-mode dimensions may be NULL). For type 1
 * c is read and f written; for type 2 the reverse. One vector. */
int spf_nufft_direct(int type, int dim, const int64_t *n_modes, int sign, int modeord,
                     int64_t n_points, const double *x, const double *y, const double *z,
                     double complex *c, double complex *f);

#ifdef __cplusplus
}
#endif
#endif
