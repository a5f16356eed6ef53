/* Internal: the spreading kernel (the prolate spheroidal wave function psi_0) and its
 * numerics, shared by the float and double NUFFT. Everything here runs at plan time,
 * in double. */
#ifndef SPINIFEL_NUFFT_KERNEL_H
#define SPINIFEL_NUFFT_KERNEL_H

#include <stdint.h>

#define SPF_NUFFT_MAX_WIDTH 16
#define SPF_NUFFT_MAX_DEGREE 24
/* Kernel values are evaluated for KPAD(w) fine-grid points, w rounded up to a multiple
 * of 4, so the inner loops have a fixed, vector-friendly length; padded values are 0. */
#define SPF_NUFFT_KPAD(w) (((w) + 3) & ~3)

#define SPF_PSWF_MAX_TERMS 48

typedef struct {
  int width;        /* w: fine-grid points covered by the kernel */
  double c;         /* bandwidth: phi(z) = psi_0(c, z) / psi_0(c, 0), |z| <= 1 */
  double upsampfac;
  int n_terms;      /* Legendre terms of psi_0: P_0, P_2, ..., P_(2 n_terms - 2) */
  double legendre[SPF_PSWF_MAX_TERMS];
} spf_nufft_kernel;

/* Width and bandwidth for a tolerance and upsampling factor (2.0 or 1.25).
 * Returns SPF_ERR_TOLERANCE when the width would exceed SPF_NUFFT_MAX_WIDTH. */
int spf_nufft_kernel_choose(double tol, double upsampfac, spf_nufft_kernel *k);

/* phi(z) for |z| <= 1, 0 outside. */
double spf_nufft_kernel_eval(const spf_nufft_kernel *k, double z);

/* Piecewise-polynomial fit. For a point at fine-grid offset s in [0, 1) past the first
 * grid point it touches, grid point i (0 <= i < w) sees phi(2 (s - w/2 + i) / w). With
 * u = 2 s - 1 in [-1, 1), that is sum_d coef[d * kpad + i] u^(degree - d) (Horner
 * order, highest power first). Picks the smallest degree whose fit error, evaluated in
 * double Horner, is below target_err; coef must hold (SPF_NUFFT_MAX_DEGREE + 1) * kpad.
 * Returns the degree, or -1 if no degree up to the maximum reaches the target. */
int spf_nufft_kernel_fit(const spf_nufft_kernel *k, double target_err, double *coef, double *fit_err);

/* Fourier transform of the kernel in fine-grid units, phihat(xi) = int phi(2u/w) e^{i xi u} du,
 * at xi = 2 pi k / nf for the n centred modes k = -floor(n/2) .. ceil(n/2)-1. */
void spf_nufft_kernel_fourier(const spf_nufft_kernel *k, int64_t n, int64_t nf, double *phihat);

/* Fine-grid size: the smallest 2,3,5-smooth even integer >= max(upsampfac n, 2 w),
 * not a power of two unless allow_pow2. */
int64_t spf_nufft_fine_size(int64_t n, double upsampfac, int width, int allow_pow2);

/* Gauss-Legendre nodes and weights on [-1, 1]. */
void spf_gauss_legendre(int n, double *nodes, double *weights);

#endif
