/* Merging against dense linear algebra on tiny grids. */
#include <complex.h>
#include <float.h>
#include <math.h>

#include "spinifel/spinifel.h"
#include "spinifel/merging.h"
#include "testing.h"

/* Centred index of grid slot i (M odd). */
static int kc(int64_t i, int64_t m) { return (int)(i - (m - 1) / 2); }

/* Dense operator H = Re(A^H W A) + rho I + phi F* P F on an M^3 grid, column-major n x n. */
static double *dense_operator(int64_t m, int64_t np, const double *x, const double *w, double rho, double phi)
{
  const int64_t n = m * m * m;
  double *h = calloc((size_t)(n * n), sizeof(double));
  for (int64_t a = 0; a < n; a++)
    for (int64_t b = 0; b < n; b++) {
      int da[3] = {kc(a % m, m) - kc(b % m, m), kc((a / m) % m, m) - kc((b / m) % m, m),
                   kc(a / (m * m), m) - kc(b / (m * m), m)};
      double s = 0;
      for (int64_t j = 0; j < np; j++)
        s += (w ? w[j] : 1.0) * cos(da[0] * x[j] + da[1] * x[np + j] + da[2] * x[2 * np + j]);
      h[a * n + b] = s + (a == b ? rho : 0.0);
    }
  /* F* P F: P keeps DFT frequencies outside the ball |q| <= (m-1)/2. */
  const int r = (int)(m - 1) / 2;
  for (int64_t a = 0; a < n; a++)
    for (int64_t b = 0; b < n; b++) {
      double s = 0;
      for (int q3 = -r; q3 <= r; q3++)
        for (int q2 = -r; q2 <= r; q2++)
          for (int q1 = -r; q1 <= r; q1++) {
            if (q1 * q1 + q2 * q2 + q3 * q3 <= r * r) continue;
            double ph = 2 * M_PI / m * (q1 * (double)(a % m - b % m) + q2 * (double)((a / m) % m - (b / m) % m) +
                                        q3 * (double)(a / (m * m) - b / (m * m)));
            s += cos(ph);
          }
      h[a * n + b] += phi * s / (double)n;
    }
  return h;
}

/* Solve h x = y by Gaussian elimination with partial pivoting (h, y overwritten). */
static void dense_solve(int64_t n, double *h, double *y)
{
  for (int64_t c = 0; c < n; c++) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; r++)
      if (fabs(h[r * n + c]) > fabs(h[piv * n + c])) piv = r;
    for (int64_t k = 0; k < n; k++) {
      double t = h[c * n + k];
      h[c * n + k] = h[piv * n + k];
      h[piv * n + k] = t;
    }
    double t = y[c];
    y[c] = y[piv];
    y[piv] = t;
    for (int64_t r = c + 1; r < n; r++) {
      double f = h[r * n + c] / h[c * n + c];
      for (int64_t k = c; k < n; k++) h[r * n + k] -= f * h[c * n + k];
      y[r] -= f * y[c];
    }
  }
  for (int64_t c = n - 1; c >= 0; c--) {
    for (int64_t k = c + 1; k < n; k++) y[c] -= h[c * n + k] * y[k];
    y[c] /= h[c * n + c];
  }
}

static void random_points(int64_t np, double radius, uint64_t seed, double *x)
{
  spf_rng r;
  spf_rng_seed(&r, seed, 0);
  for (int64_t j = 0; j < 3 * np; j++) x[j] = radius * (2 * spf_rng_uniform(&r) - 1);
}

/* Points at uniformly random radius and direction: density ~ 1/|x|^2, crowding the
 * origin as slices through it do. */
static void radial_points(int64_t np, double radius, uint64_t seed, double *x)
{
  spf_rng r;
  spf_rng_seed(&r, seed, 0);
  for (int64_t j = 0; j < np; j++) {
    double d[3], n2;
    do {
      for (int a = 0; a < 3; a++) d[a] = 2 * spf_rng_uniform(&r) - 1;
      n2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    } while (n2 > 1 || n2 < 1e-6);
    const double t = radius * spf_rng_uniform(&r) / sqrt(n2);
    for (int a = 0; a < 3; a++) x[a * np + j] = t * d[a];
  }
}

static void operator_matches_dense_matrix(void)
{
  const int64_t m = 5, n = 125, np = 300;
  double *x = malloc(sizeof(double) * 3 * np), *w = malloc(sizeof(double) * np), *b = malloc(sizeof(double) * np);
  double u[125], out[125];
  random_points(np, M_PI, 1, x);
  spf_rng r;
  spf_rng_seed(&r, 2, 0);
  for (int64_t j = 0; j < np; j++) w[j] = spf_rng_uniform(&r), b[j] = spf_rng_normal(&r);
  for (int64_t i = 0; i < n; i++) u[i] = spf_rng_normal(&r);
  spf_merge_options o;
  spf_merge_default_options(&o);
  o.nufft_tol = 1e-12;
  spf_merger *mg;
  CHECK(spf_merger_make(m, &o, &mg) == SPF_OK, "make");
  /* Two batches: the sums are linear in the points. */
  spf_merger_add_points(mg, 100, x, x + np, x + 2 * np, b, w);
  double *x2 = malloc(sizeof(double) * 3 * 200);
  for (int d = 0; d < 3; d++) memcpy(x2 + d * 200, x + d * np + 100, sizeof(double) * 200);
  spf_merger_add_points(mg, 200, x2, x2 + 200, x2 + 400, b + 100, w + 100);
  const double rho = 0.3, phi = 2.5;
  CHECK(spf_merger_apply(mg, rho, phi, u, out) == SPF_OK, "apply");
  double *h = dense_operator(m, np, x, w, rho, phi);
  double err = 0, nrm = 0;
  for (int64_t a = 0; a < n; a++) {
    double s = 0;
    for (int64_t c = 0; c < n; c++) s += h[a * n + c] * u[c];
    err += (s - out[a]) * (s - out[a]);
    nrm += s * s;
  }
  CHECK(sqrt(err / nrm) < 1e-10, "operator vs dense: relative error %.2e", sqrt(err / nrm));
  free(h);

  /* The CG solution against a dense solve, and the misfit against its definition. */
  double sol[125], rhs[125], *hd = dense_operator(m, np, x, w, rho, phi);
  for (int64_t a = 0; a < n; a++) {
    double s = 0;
    for (int64_t j = 0; j < np; j++)
      s += w[j] * b[j] * cos(kc(a % m, m) * x[j] + kc((a / m) % m, m) * x[np + j] + kc(a / (m * m), m) * x[2 * np + j]);
    rhs[a] = s + rho * u[a];
  }
  dense_solve(n, hd, rhs);
  free(hd);
  spf_merger_free(mg);
  o.cg_tol = 1e-13;
  o.cg_max_iter = 1000;
  spf_merge_stats st;
  /* Plain, then preconditioned CG (the default, kept for the misfit check below). */
  for (int pc = 0; pc <= 1; pc++) {
    o.preconditioner = pc;
    spf_merger_make(m, &o, &mg);
    spf_merger_add_points(mg, np, x, x + np, x + 2 * np, b, w);
    CHECK(spf_merger_solve(mg, rho, phi, u, sol, &st) == SPF_OK, "solve");
    err = nrm = 0;
    for (int64_t a = 0; a < n; a++) err += pow(sol[a] - rhs[a], 2), nrm += rhs[a] * rhs[a];
    CHECK(sqrt(err / nrm) < 1e-9, "CG (preconditioner %d) vs dense solve: relative difference %.2e after %d iterations",
          pc, sqrt(err / nrm), st.iterations);
    if (!pc) spf_merger_free(mg);
  }
  double misfit = 0;
  for (int64_t j = 0; j < np; j++) {
    double complex au = 0;
    for (int64_t a = 0; a < n; a++)
      au += sol[a] * cexp(I * (kc(a % m, m) * x[j] + kc((a / m) % m, m) * x[np + j] + kc(a / (m * m), m) * x[2 * np + j]));
    misfit += w[j] * pow(cabs(au - b[j]), 2);
  }
  /* A u is complex unless u is centrosymmetric; the misfit counts both parts. */
  CHECK(fabs(st.data_misfit - sqrt(misfit)) < 1e-8 * sqrt(misfit), "misfit %.10g vs %.10g", st.data_misfit,
        sqrt(misfit));
  spf_merger_free(mg);
  free(x); free(x2); free(w); free(b);
}

/* Perfect orientations and noise-free data give back the true autocorrelation. */
static void exact_data_recover_true_autocorrelation(void)
{
  const int64_t m = 9, n = 729, np = test_small_scale() ? 6000 : 20000;
  /* A real, centrosymmetric u whose DFT vanishes outside the ball (like a true
   * autocorrelation sampled at the resolution limit). */
  double u_true[729] = {0};
  spf_rng r;
  spf_rng_seed(&r, 9, 0);
  const int rad = 4;
  double coef[9][9][9] = {{{0}}};
  for (int q3 = -rad; q3 <= rad; q3++)
    for (int q2 = -rad; q2 <= rad; q2++)
      for (int q1 = -rad; q1 <= rad; q1++)
        if (q1 * q1 + q2 * q2 + q3 * q3 <= rad * rad && coef[-q3 + 4][-q2 + 4][-q1 + 4] == 0)
          coef[q3 + 4][q2 + 4][q1 + 4] = coef[-q3 + 4][-q2 + 4][-q1 + 4] = spf_rng_normal(&r);
  for (int64_t a = 0; a < n; a++) {
    double s = 0;
    for (int q3 = -rad; q3 <= rad; q3++)
      for (int q2 = -rad; q2 <= rad; q2++)
        for (int q1 = -rad; q1 <= rad; q1++)
          s += coef[q3 + 4][q2 + 4][q1 + 4] *
               cos(2 * M_PI / m * (q1 * kc(a % m, m) + q2 * kc((a / m) % m, m) + q3 * kc(a / (m * m), m)));
    u_true[a] = s;
  }
  double *x = malloc(sizeof(double) * 3 * np), *b = malloc(sizeof(double) * np);
  radial_points(np, M_PI, 10, x);
  int64_t nm[3] = {m, m, m};
  double complex *c = malloc(sizeof(double complex) * np), f[729];
  for (int64_t a = 0; a < n; a++) f[a] = u_true[a];
  spf_nufft_direct(2, 3, nm, +1, 0, np, x, x + np, x + 2 * np, c, f);
  for (int64_t j = 0; j < np; j++) b[j] = creal(c[j]);
  spf_merger *mg;
  spf_merge_options o;
  spf_merge_default_options(&o);
  o.cg_tol = 1e-10;
  o.cg_max_iter = 500;
  double u[729];
  spf_merge_stats st;
  /* The points crowd the origin, like slices through it: the circulant preconditioner
   * (density compensation) must cut the iterations. */
  o.preconditioner = 0;
  spf_merger_make(m, &o, &mg);
  spf_merger_add_points(mg, np, x, x + np, x + 2 * np, b, NULL);
  spf_merger_solve(mg, 1e-6 * np, 1e-2 * np, NULL, u, &st);
  const int plain_iterations = st.iterations;
  spf_merger_free(mg);
  o.preconditioner = 1;
  spf_merger_make(m, &o, &mg);
  spf_merger_add_points(mg, np, x, x + np, x + 2 * np, b, NULL);
  spf_merger_solve(mg, 1e-6 * np, 1e-2 * np, NULL, u, &st);
  CHECK(st.iterations < plain_iterations, "preconditioned CG took %d iterations, plain %d", st.iterations,
        plain_iterations);
  printf("  CG iterations to 1e-10: %d preconditioned, %d plain\n", st.iterations, plain_iterations);
  double err = 0, nrm = 0;
  for (int64_t a = 0; a < n; a++) err += pow(u[a] - u_true[a], 2), nrm += u_true[a] * u_true[a];
  printf("  recovery: relative error %.2e, %d CG iterations, misfit %.2e\n", sqrt(err / nrm), st.iterations,
         st.data_misfit);
  CHECK(sqrt(err / nrm) < 1e-4, "recovery error %.2e", sqrt(err / nrm));

  /* L-curve over a decade sweep picks an interior value and a solution still close. */
  double rhos[5] = {1e-8 * np, 1e-6 * np, 1e-4 * np, 1e-2 * np, 1 * np};
  int chosen = -1;
  spf_merge_stats sts[5];
  CHECK(spf_merger_solve_lcurve(mg, 5, rhos, 1e-2 * np, NULL, u, &chosen, sts) == SPF_OK, "lcurve");
  CHECK(chosen >= 1 && chosen <= 3, "L-curve corner is interior: %d", chosen);
  spf_merger_free(mg);
  free(x); free(b); free(c);
}

/* Exact sums: the same batches added in another order (as when MPI ranks hold them and
 * their sums are added) give the same integer sums, and so the same solution bit for
 * bit, which double accumulation does not (this CG solve is sensitive: the two orders'
 * double sums give solutions 1e-3 apart); and the sums are the double accumulation's
 * within the bound on rounding to the quantum. */
static void exact_sums_do_not_depend_on_call_order(void)
{
  const int64_t m = 9, n3 = m * m * m, np = 4000;
  double *x = malloc(sizeof(double) * 3 * np), *b = malloc(sizeof(double) * np), *w = malloc(sizeof(double) * np);
  radial_points(np, M_PI, 21, x);
  spf_rng r;
  spf_rng_seed(&r, 22, 0);
  double sw = 0, swb = 0, swb2 = 0;
  for (int64_t j = 0; j < np; j++) {
    b[j] = exp(-x[j] * x[j]) * (1 + spf_rng_uniform(&r)) * 1e3;
    w[j] = 0.1 + spf_rng_uniform(&r);
    sw += w[j], swb += w[j] * fabs(b[j]), swb2 += w[j] * b[j] * b[j];
  }
  spf_merge_options o;
  spf_merge_default_options(&o);
  o.nthreads = 1;
  const int64_t cuts[4] = {0, 1234, 3000, np};
  const int orders[2][3] = {{0, 1, 2}, {2, 0, 1}};
  double *u[4], *kern[2], *rhs[2], wb2s[2];
  int64_t *sums[2], len = 0;
  for (int t = 0; t < 4; t++) {
    /* t = 0, 1: exact, batches in two orders; 2, 3: double, the same two orders. */
    spf_merger *mg;
    CHECK(spf_merger_make(m, &o, &mg) == SPF_OK, "merger");
    if (t < 2) CHECK(spf_merger_exact_sums(mg, sw, swb, swb2) == SPF_OK, "exact mode");
    for (int k = 0; k < 3; k++) {
      const int c = orders[t % 2][k];
      spf_merger_add_points(mg, cuts[c + 1] - cuts[c], x + cuts[c], x + np + cuts[c], x + 2 * np + cuts[c], b + cuts[c],
                            w + cuts[c]);
    }
    if (t < 2) {
      int64_t *f;
      CHECK(spf_merger_fixed_sums(mg, &f, &len) == SPF_OK, "fixed sums");
      sums[t] = malloc(sizeof(int64_t) * len);
      memcpy(sums[t], f, sizeof(int64_t) * len);
    }
    u[t] = malloc(sizeof(double) * n3);
    spf_merge_stats st;
    CHECK(spf_merger_solve(mg, 1e-2 * sw / n3, 0, NULL, u[t], &st) == SPF_OK, "solve");
    if (t % 2 == 0) {
      /* The sums as the solver saw them (after the solve, the exact mode's are in double). */
      double *k, *rh, *wb2;
      int64_t kl, rl;
      spf_merger_sums(mg, &k, &kl, &rh, &rl, &wb2);
      kern[t / 2] = malloc(sizeof(double) * kl);
      rhs[t / 2] = malloc(sizeof(double) * rl);
      memcpy(kern[t / 2], k, sizeof(double) * kl);
      memcpy(rhs[t / 2], rh, sizeof(double) * rl);
      wb2s[t / 2] = *wb2;
    }
    spf_merger_free(mg);
  }
  CHECK(!memcmp(sums[0], sums[1], sizeof(int64_t) * len), "exact sums differ between call orders");
  CHECK(!memcmp(u[0], u[1], sizeof(double) * n3), "exact-mode solutions differ between call orders");
  CHECK(memcmp(u[2], u[3], sizeof(double) * n3) != 0, "the double sums agreed too: the check above shows nothing");
  /* Each entry off by at most half a quantum per call, 2^e <= bound 2^-60 (the bounds
   * are the sums themselves here), plus the double sums' own rounding. */
  double worst = 0;
  const double *ex[3] = {kern[0], rhs[0], &wb2s[0]}, *db[3] = {kern[1], rhs[1], &wb2s[1]}, bnd[3] = {sw, swb, swb2};
  const int64_t lens[3] = {8 * n3, n3, 1};
  for (int a = 0; a < 3; a++) {
    double big = 0, dmax = 0;
    for (int64_t i = 0; i < lens[a]; i++) big = fmax(big, fabs(db[a][i])), dmax = fmax(dmax, fabs(ex[a][i] - db[a][i]));
    const double lim = 3 * bnd[a] * ldexp(1.0, -61) * (1 + 1e-5) + 8 * DBL_EPSILON * big;
    CHECK(dmax <= lim, "sum %d: exact vs double accumulation %.3g > %.3g", a, dmax, lim);
    worst = fmax(worst, dmax / bnd[a]);
  }
  printf("  exact vs double accumulation: largest difference %.2e of the bound\n", worst);
  free(kern[0]); free(kern[1]); free(rhs[0]); free(rhs[1]);
  spf_merger *mg;
  spf_merger_make(m, &o, &mg);
  CHECK(spf_merger_exact_sums(mg, -1, 1, 1) == SPF_ERR_ARG, "negative bound");
  CHECK(spf_merger_fixed_sums(mg, sums, &len) == SPF_ERR_ARG, "fixed sums outside exact mode");
  spf_merger_free(mg);
  for (int t = 0; t < 4; t++) free(u[t]);
  free(sums[0]); free(sums[1]);
  free(x); free(b); free(w);
}

/* Multi-shift CG: the L-curve's solves at once equal the separate solves of each rho
 * (the same Krylov iterates, so only rounding differs), stopped at the cap or each at
 * its own tolerance, with a prior and without. Uniform points: on points crowding the
 * origin (radial_points) early-stopped plain CG is so ill-conditioned that any change
 * of rounding moves the tenth iterate by 1e-6 (merging.h), separate solves included. */
static void shifted_solves_equal_separate_solves(void)
{
  const int64_t m = 9, n = m * m * m, np = 3000;
  double *x = malloc(sizeof(double) * 3 * np), *b = malloc(sizeof(double) * np), *w = malloc(sizeof(double) * np);
  double *u0 = malloc(sizeof(double) * n), *all = malloc(sizeof(double) * 5 * n), *one = malloc(sizeof(double) * n);
  random_points(np, M_PI, 31, x);
  spf_rng r;
  spf_rng_seed(&r, 32, 0);
  for (int64_t j = 0; j < np; j++) b[j] = exp(-x[j] * x[j]) + 0.1 * spf_rng_normal(&r), w[j] = 0.2 + spf_rng_uniform(&r);
  for (int64_t i = 0; i < n; i++) u0[i] = 0.01 * spf_rng_normal(&r);
  /* Not sorted: the smallest rho, which drives the recurrence, is in the middle. */
  const double rhos[5] = {1e-2 * np, 1e-4 * np, 1e-5 * np, 1e-1 * np, 1e-3 * np}, phi = 1e-2 * np;
  const int caps[2] = {15, 2000};
  const double tols[2] = {1e-14, 1e-9};
  double worst[2] = {0, 0};
  for (int c = 0; c < 2; c++)
    for (int prior = 0; prior <= 1; prior++) {
      spf_merge_options o;
      spf_merge_default_options(&o);
      o.nufft_tol = 1e-12;
      o.preconditioner = 0;
      o.cg_max_iter = caps[c];
      o.cg_tol = tols[c];
      spf_merger *mg;
      CHECK(spf_merger_make(m, &o, &mg) == SPF_OK, "make");
      spf_merger_add_points(mg, np, x, x + np, x + 2 * np, b, w);
      spf_merge_stats st[5], s1;
      CHECK(spf_merger_solve_shifted(mg, 5, rhos, phi, prior ? u0 : NULL, all, st) == SPF_OK, "shifted");
      for (int k = 0; k < 5; k++) {
        CHECK(spf_merger_solve(mg, rhos[k], phi, prior ? u0 : NULL, one, &s1) == SPF_OK, "solve");
        double err = 0, nrm = 0;
        for (int64_t i = 0; i < n; i++) err += pow(all[k * n + i] - one[i], 2), nrm += one[i] * one[i];
        /* At the cap the two are the same iterate, apart from rounding (1e-16) grown by
         * CG's loss of orthogonality over 15 steps; converged, both are within
         * cond * 1e-9 of the solution, cond <= (largest eigenvalue + rho) / rho <= 1e4. */
        const double bound = c == 0 ? 1e-9 : 2e-5;
        worst[c] = fmax(worst[c], sqrt(err / nrm));
        CHECK(sqrt(err / nrm) < bound, "cap %d prior %d rho %g: shifted vs separate %.2e (bound %.0e), iterations %d / %d",
              caps[c], prior, rhos[k], sqrt(err / nrm), bound, st[k].iterations, s1.iterations);
        CHECK(abs(st[k].iterations - s1.iterations) <= 1, "iterations %d vs %d", st[k].iterations, s1.iterations);
        CHECK(fabs(st[k].data_misfit - s1.data_misfit) <= 1e-6 * s1.data_misfit, "misfit %.6e vs %.6e",
              st[k].data_misfit, s1.data_misfit);
        if (c == 1) CHECK(st[k].rel_residual <= o.cg_tol, "residual %.2e", st[k].rel_residual);
      }
      if (c == 1 && prior) printf("  converged: iterations per rho %d %d %d %d %d (one operator each)\n",
                                  st[0].iterations, st[1].iterations, st[2].iterations, st[3].iterations,
                                  st[4].iterations);
      if (c == 1 && prior) printf("  shifted vs separate solves: %.1e at the cap, %.1e converged\n", worst[0], worst[1]);
      spf_merger_free(mg);
    }
  spf_merge_options o;
  spf_merge_default_options(&o);
  o.preconditioner = 1;
  spf_merger *mg;
  spf_merger_make(m, &o, &mg);
  CHECK(spf_merger_solve_shifted(mg, 5, rhos, phi, NULL, all, NULL) == SPF_ERR_OPTION, "preconditioned: refused");
  spf_merger_free(mg);
  free(x); free(b); free(w); free(u0); free(all); free(one);
}

static void bad_arguments(void)
{
  spf_merger *mg = NULL;
  CHECK(spf_merger_make(4, NULL, &mg) == SPF_ERR_SIZE, "even M");
  CHECK(spf_merger_make(1, NULL, &mg) == SPF_ERR_SIZE, "M = 1");
  CHECK(spf_merger_make(5, NULL, NULL) == SPF_ERR_NULL, "NULL out");
  CHECK(spf_merger_make(5, NULL, &mg) == SPF_OK, "valid");
  double x[2] = {0, 1}, b[2] = {1, NAN};
  CHECK(spf_merger_add_points(mg, 2, x, x, x, b, NULL) == SPF_ERR_DATA, "NaN intensity");
  double u[125] = {0}, out[125];
  CHECK(spf_merger_solve(mg, -1, 0, NULL, out, NULL) == SPF_ERR_ARG, "negative rho");
  CHECK(spf_merger_apply(mg, 0, 0, u, out) == SPF_OK, "apply on empty sums");
  spf_merger_free(mg);
}

/* The Toeplitz part A* W A u by direct sums, (A u)_j = sum_k u_k exp(i k . x_j), on grids
 * whose convolution grid is not 2M (M = 11: 22 has the factor 11, so the merger pads to
 * 24); rho = phi = 0 isolates the convolution, whose embedding is what changes. */
static void toeplitz_matches_direct_sums(void)
{
  const int64_t sizes[2] = {5, 11};
  for (int t = 0; t < 2; t++) {
    const int64_t m = sizes[t], n = m * m * m, np = 60;
    double *x = malloc(sizeof(double) * 3 * np), *w = malloc(sizeof(double) * np), *b = calloc((size_t)np, sizeof(double));
    double *u = malloc(sizeof(double) * n), *out = malloc(sizeof(double) * n);
    double complex *au = malloc(sizeof(double complex) * np);
    random_points(np, M_PI, 3 + t, x);
    spf_rng r;
    spf_rng_seed(&r, 4 + t, 0);
    for (int64_t j = 0; j < np; j++) w[j] = spf_rng_uniform(&r);
    for (int64_t i = 0; i < n; i++) u[i] = spf_rng_normal(&r);
    spf_merge_options o;
    spf_merge_default_options(&o);
    o.nufft_tol = 1e-12;
    spf_merger *mg = NULL;
    CHECK(spf_merger_make(m, &o, &mg) == SPF_OK, "make M = %d", (int)m);
    CHECK(spf_merger_add_points(mg, np, x, x + np, x + 2 * np, b, w) == SPF_OK, "points");
    CHECK(spf_merger_apply(mg, 0, 0, u, out) == SPF_OK, "apply");
    for (int64_t j = 0; j < np; j++) {
      double complex s = 0;
      for (int64_t i = 0; i < n; i++)
        s += u[i] * cexp(I * (kc(i % m, m) * x[j] + kc((i / m) % m, m) * x[np + j] + kc(i / (m * m), m) * x[2 * np + j]));
      au[j] = w[j] * s;
    }
    double err = 0, nrm = 0;
    for (int64_t i = 0; i < n; i++) {
      double complex s = 0;
      for (int64_t j = 0; j < np; j++)
        s += au[j] * cexp(-I * (kc(i % m, m) * x[j] + kc((i / m) % m, m) * x[np + j] + kc(i / (m * m), m) * x[2 * np + j]));
      /* The merger uses every point with its Friedel mate: the real part. */
      err += (creal(s) - out[i]) * (creal(s) - out[i]);
      nrm += creal(s) * creal(s);
    }
    CHECK(sqrt(err / nrm) < 1e-10, "M = %d: Toeplitz vs direct sums, relative error %.2e", (int)m, sqrt(err / nrm));
    spf_merger_free(mg);
    free(x), free(w), free(b), free(u), free(out), free(au);
  }
}

/* The kernel T(d) = sum_j w_j cos(d . x_j) and the right-hand side sum_j w_j b_j cos(k . x_j)
 * against direct sums, at the tolerances runs use. One type 1 carries both (strengths
 * w + i w b): each part must keep its own accuracy, |err| <= tol times its own sum of
 * sizes, also when b is a thousand times smaller than w, as photon counts per pixel are;
 * a leak of the w part into the rhs would show there as an error of about tol sum w,
 * a thousand times the bound. */
static void sums_meet_the_tolerance(void)
{
  const int64_t m = 7, m2 = 2 * m, n3 = m * m * m, nk = m2 * m2 * m2, np = 1500, h = (m - 1) / 2;
  double *x = malloc(sizeof(double) * 3 * np), *b = malloc(sizeof(double) * np), *w = malloc(sizeof(double) * np);
  double *kd = malloc(sizeof(double) * nk), *rd = malloc(sizeof(double) * n3);
  random_points(np, M_PI, 31, x);
  spf_rng r;
  spf_rng_seed(&r, 32, 0);
  double sw = 0, swb = 0;
  for (int64_t j = 0; j < np; j++) {
    w[j] = 0.1 + spf_rng_uniform(&r);
    b[j] = 1e-3 * spf_rng_normal(&r);
    sw += w[j], swb += w[j] * fabs(b[j]);
  }
  /* Slot i of the kernel holds d = c for c < M, c - 2M otherwise, per axis; slot i of
   * the rhs k = j - (M - 1) / 2. */
  for (int64_t i = 0; i < nk; i++) {
    const int64_t c1 = i % m2, c2 = (i / m2) % m2, c3 = i / (m2 * m2);
    const double d1 = c1 < m ? c1 : c1 - m2, d2 = c2 < m ? c2 : c2 - m2, d3 = c3 < m ? c3 : c3 - m2;
    double s = 0;
    for (int64_t j = 0; j < np; j++) s += w[j] * cos(d1 * x[j] + d2 * x[np + j] + d3 * x[2 * np + j]);
    kd[i] = s;
  }
  for (int64_t i = 0; i < n3; i++) {
    const double k1 = i % m - h, k2 = (i / m) % m - h, k3 = i / (m * m) - h;
    double s = 0;
    for (int64_t j = 0; j < np; j++) s += w[j] * b[j] * cos(k1 * x[j] + k2 * x[np + j] + k3 * x[2 * np + j]);
    rd[i] = s;
  }
  /* 1e-4 and 1e-5 run the sums in single precision, 1e-6 in double. */
  const double tols[3] = {1e-4, 1e-5, 1e-6};
  for (int t = 0; t < 3; t++) {
    spf_merge_options o;
    spf_merge_default_options(&o);
    o.nufft_tol = tols[t];
    spf_merger *mg = NULL;
    CHECK(spf_merger_make(m, &o, &mg) == SPF_OK, "make");
    CHECK(spf_merger_add_points(mg, np, x, x + np, x + 2 * np, b, w) == SPF_OK, "points");
    double *kern, *rhs, *wb2;
    int64_t kl, rl;
    spf_merger_sums(mg, &kern, &kl, &rhs, &rl, &wb2);
    CHECK(kl == nk && rl == n3, "sizes %lld %lld", (long long)kl, (long long)rl);
    double ek = 0, er = 0;
    for (int64_t i = 0; i < nk; i++) ek = fmax(ek, fabs(kd[i] - kern[i]));
    for (int64_t i = 0; i < n3; i++) er = fmax(er, fabs(rd[i] - rhs[i]));
    printf("  tol %.0e: kernel error %.2e of sum w, rhs error %.2e of sum w |b|\n", tols[t], ek / sw, er / swb);
    CHECK(ek <= tols[t] * sw, "tol %.0e: kernel error %.2e > tol sum w", tols[t], ek / sw);
    CHECK(er <= tols[t] * swb, "tol %.0e: rhs error %.2e > tol sum w |b|", tols[t], er / swb);
    spf_merger_free(mg);
  }
  free(x), free(b), free(w), free(kd), free(rd);
}

int main(void)
{
  RUN_TEST(operator_matches_dense_matrix);
  RUN_TEST(toeplitz_matches_direct_sums);
  RUN_TEST(sums_meet_the_tolerance);
  RUN_TEST(exact_data_recover_true_autocorrelation);
  RUN_TEST(exact_sums_do_not_depend_on_call_order);
  RUN_TEST(shifted_solves_equal_separate_solves);
  RUN_TEST(bad_arguments);
  return test_summary();
}
