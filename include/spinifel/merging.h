/* Merging: with orientations fixed, solve for the autocorrelation u on the M^3 grid
 *
 *   [A* W A + rho I + phi F* P F] u = A* W b + rho u0
 *
 * (docs/method.md, "Step 3: merging"). A maps u to intensities at the data points,
 * (A u)_j = sum_k u_k exp(i k . x_j), k the centred grid index (M odd, k in
 * [-(M-1)/2, (M-1)/2]^3); W the point weights; b the intensities; P keeps the Fourier
 * modes of u outside the ball |q| <= (M-1)/2 (a smoothness prior); F the unitary FFT.
 * Every point is used with its Friedel mate -x_j, so the operator and u are real.
 *
 * A* W A is the convolution with T(d) = sum_j w_j exp(i d . x_j), d in [-M, M)^3, one
 * type-1 NUFFT onto the 2M grid; A* W b is one type-1 NUFFT onto the M grid. Both are
 * sums over points, accumulated batch by batch (and, across MPI ranks, by a sum). The
 * solve is conjugate gradients with zero-padded FFT convolutions (on the smallest even
 * 7-smooth grid >= 2M - 1: only offsets up to M - 1 occur), preconditioned
 * by T. Chan's optimal circulant approximation of A* W A (exact for rho I and the ball
 * penalty, which are circulant on the M grid): its eigenvalues are the sampling density
 * of the points smoothed to the grid, so the preconditioner is a density compensation.
 * Without it CG stops at its cap far from the solution, and the early-stopped iterate is
 * so sensitive that a change of summation order (MPI ranks) in the last bit of the sums
 * changes the result in the fifth digit.
 *
 * u layout: u[(i3 * M + i2) * M + i1], i = k + (M-1)/2. */
#ifndef SPINIFEL_MERGING_H
#define SPINIFEL_MERGING_H

#include <stdint.h>

#include "spinifel/mpi.h"

typedef struct {
  double nufft_tol;   /* accuracy of the two type-1 sums (default 1e-6) */
  int cg_max_iter;    /* conjugate-gradient iteration cap (default 100) */
  double cg_tol;      /* stop when ||residual|| <= cg_tol ||right-hand side|| (default 1e-6) */
  int nthreads;       /* 0: OpenMP default */
  int fftw_measure;   /* 1: FFTW_MEASURE plans (faster FFTs, but timing-dependent plans make
                         results differ in the last bits between processes); default 0:
                         FFTW_ESTIMATE, so a run and its resume agree bit for bit */
  int preconditioner; /* 1: circulant (T. Chan) preconditioner (default); 0: plain CG */
} spf_merge_options;

void spf_merge_default_options(spf_merge_options *o);

typedef struct {
  int iterations;        /* CG iterations run */
  double rel_residual;   /* final ||r|| / ||rhs|| */
  double data_misfit;    /* ||W^(1/2) (A u - b)|| with A u complex (real when u is
                            centrosymmetric), from the Toeplitz form, no NUFFT */
  double solution_norm;  /* ||u|| */
  double rho, phi;       /* the weights used */
  double seconds;
} spf_merge_stats;

typedef struct spf_merger_s spf_merger;

/* A merger for an M^3 grid (M odd, >= 3). */
int spf_merger_make(int64_t M, const spf_merge_options *opts, spf_merger **out);

/* Add n points (NUFFT coordinates in [-pi, pi], as for slicing) with intensities b and
 * weights w (w may be NULL for all 1) to the Toeplitz kernel and the right-hand side. */
int spf_merger_add_points(spf_merger *mg, int64_t n, const double *x, const double *y, const double *z,
                          const double *b, const double *w);

/* Exact sums: from now on each add_points call's three sums are rounded to multiples of
 * powers of two fixed by these bounds and added as integers, so the totals are the same
 * bits whatever the order of the calls, or their spread over MPI ranks (reduce
 * spf_merger_fixed_sums with spf_comm_sum_int64). The calls themselves (which points go
 * together) must be the same: each call's own sums are in double. Bounds, over every call (and
 * rank): weight_bound >= sum w, wb_bound >= sum w |b|, wb2_bound >= sum w b^2. Each
 * entry is within bound 2^-62 of the double sum, per call. Clears the sums; all three 0
 * turns it off. */
int spf_merger_exact_sums(spf_merger *mg, double weight_bound, double wb_bound, double wb2_bound);
/* The integer sums in exact mode, one array: kernel ((2M)^3), rhs (M^3), wb2 (1). */
int spf_merger_fixed_sums(spf_merger *mg, int64_t **sums, int64_t *len);
/* Drop the accumulated sums (next generation). */
void spf_merger_clear(spf_merger *mg);

/* The accumulated sums in double: kernel ((2M)^3 doubles, real part of T in FFT order)
 * and right-hand side (M^3 doubles), plus sum w b^2 (1 double). The pointers stay owned
 * by the merger; outside exact mode, other ranks' values may be added in place (an MPI
 * reduction, exact only to rounding). In exact mode they hold the integer sums' values
 * after a solve or apply, and changes to them are overwritten: reduce
 * spf_merger_fixed_sums instead. */
void spf_merger_sums(spf_merger *mg, double **kernel, int64_t *kernel_len, double **rhs, int64_t *rhs_len,
                     double **wb2);

/* Solve for u (M^3, written to u) with weights rho, phi; u0 (may be NULL: zero) is both
 * the prior in rho u0 and the CG starting point. */
int spf_merger_solve(spf_merger *mg, double rho, double phi, const double *u0, double *u,
                     spf_merge_stats *stats);

/* The same solve for n_rho values of rho at once, plain CG only (SPF_ERR_OPTION with the
 * preconditioner): the systems differ by rho I and share u0 as start and prior, so their
 * residuals all start at rhs - (A* W A + phi F* P F) u0 and one Krylov space serves them
 * all (multi-shift CG, Jegerlehner; the smallest rho drives the recurrence). Each
 * solution is, up to rounding, what spf_merger_solve gives for its rho, with its own
 * stopping test, for one operator application per iteration instead of n_rho. u holds
 * n_rho solutions of M^3, one after another; stats (may be NULL) n_rho entries, seconds
 * the total shared equally. */
int spf_merger_solve_shifted(spf_merger *mg, int n_rho, const double *rhos, double phi, const double *u0,
                             double *u, spf_merge_stats *stats);

/* L-curve: solve for n_rho values of rho (phi fixed) and keep the solution at the
 * corner, the point of largest curvature of (log misfit, log ||u||); with fewer than
 * three values, the first. stats (n_rho entries, may be NULL) receives every solve;
 * *chosen the index kept. */
int spf_merger_solve_lcurve(spf_merger *mg, int n_rho, const double *rhos, double phi, const double *u0,
                            double *u, int *chosen, spf_merge_stats *stats);

/* The same over MPI ranks holding the same sums. Plain CG: every rank solves every rho
 * at once (spf_merger_solve_shifted). With the preconditioner rank r solves rhos r, r + size, ...;
 * the stats are shared, every rank picks the same corner, and its solver broadcasts
 * the solution. comm NULL or inactive: spf_merger_solve_lcurve. A solve's result does
 * not depend on the rank that runs it, so the outcome equals the one-process one. */
int spf_merger_solve_lcurve_shared(spf_merger *mg, const spf_comm *comm, int n_rho, const double *rhos, double phi,
                                   const double *u0, double *u, int *chosen, spf_merge_stats *stats);

/* H u = (A* W A + rho I + phi F* P F) u: the operator, exposed for tests. */
int spf_merger_apply(spf_merger *mg, double rho, double phi, const double *u, double *out);

void spf_merger_free(spf_merger *mg);

/* Clip the 3D intensity of a centrosymmetric autocorrelation u (M^3, layout as above) at
 * zero: I = Re FFT(u), u <- IFFT(max(I, 0)). A Poisson mean is never negative; the
 * least-squares merge lets high-q voxels ring below zero. negative_fraction (may be NULL):
 * the fraction of voxels of I that were below 0. */
int spf_intensity_clip(int64_t M, double *u, double *negative_fraction);

#endif
