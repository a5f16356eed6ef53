/* Phasing: from an autocorrelation u to an electron density rho on the same M^3 grid
 * (docs/method.md, "Step 4: phasing").
 *
 * Measured amplitudes |F| = sqrt(max(FFT(u), 0)) on every mode but DC. Plain M-TIP
 * leaves modes outside the resolution ball |q| <= (M-1)/2 free; that lets high-frequency noise
 * into the cube's corners (48% of the modes): on the test density the aligned
 * correlation with the truth was 0.85 that way and 0.98 constraining them. Merging
 * pushes u's transform there to ~0 (the ball penalty), so constraining them amounts to
 * a band limit at the resolution. free_outside_ball = 1 gives the plain rule. Alternating
 * projections: Fourier modulus replacement (keep phases, set amplitudes), then in real
 * space support and positivity, by error reduction (ER), hybrid input-output (HIO,
 * feedback beta) or RAAR; shrinkwrap refreshes the support from |rho| blurred by a
 * Gaussian and thresholded at a fraction of its maximum; rho is recentred by its
 * centre of mass after each cycle. The schedule is n_cycles x [er_before ER, hio HIO
 * (or RAAR), er_after ER, shrinkwrap], SpiniFEL's default being 10 x [50, 25, 50].
 *
 * Layout of u and rho: [(i3 * M + i2) * M + i1], grid centre at (M-1)/2. */
#ifndef SPINIFEL_PHASING_H
#define SPINIFEL_PHASING_H

#include <stdint.h>

typedef struct {
  int n_cycles;            /* default 10 */
  int er_before, hio, er_after; /* iterations per cycle: default 50, 25, 50 */
  int use_raar;            /* 1: RAAR instead of HIO in the middle block (default 0) */
  double beta;             /* HIO / RAAR feedback (default 0.3) */
  double shrinkwrap_sigma; /* Gaussian blur in voxels (default 1.0; 0 disables shrinkwrap) */
  double shrinkwrap_threshold; /* fraction of the blurred maximum kept (default 0.05: 0.15
                                  cut the density's tails and left a 10% Fourier error) */
  int free_outside_ball;   /* 1: leave modes outside the resolution ball free (default 0) */
  double support_threshold;    /* initial support: u above this fraction of its maximum,
                                  shrunk to half its extent (default 0.01) */
  uint64_t seed;           /* random start inside the support */
  int nthreads;            /* 0: OpenMP default */
} spf_phase_options;

void spf_phase_default_options(spf_phase_options *o);

typedef struct {
  double fourier_error;    /* || |F| - |F_meas| || / || |F_meas| || over measured modes, end of cycle */
  int64_t support_size;    /* voxels in the support after shrinkwrap */
} spf_phase_cycle;

/* Phase u (M^3, M odd). Writes rho (M^3) and, if not NULL, support (M^3 bytes) and the
 * model autocorrelation of rho for the next slicing, u_model = IFFT(|FFT rho|^2) (M^3).
 * cycles (n_cycles entries) may be NULL. rho_start, support_start may be NULL (then a
 * random start inside the support from u). */
int spf_phase(int64_t M, const double *u, const spf_phase_options *opts, const double *rho_start,
              const uint8_t *support_start, double *rho, uint8_t *support, double *u_model,
              spf_phase_cycle *cycles);

/* Autocorrelation of a density on the same grid, u = IFFT(|FFT rho|^2), centred. */
int spf_autocorrelation(int64_t M, const double *rho, double *u, int nthreads);

#endif
