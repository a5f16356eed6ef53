/* NUFFT tests: accuracy against direct sums, adjointness, edge cases, threads, errors. */
#include <math.h>

#include "nufft_kernel.h"
#include "spinifel/spinifel.h"
#include "testing.h"

typedef struct {
  int type, dim, sign, modeord, prec_float, nthreads, kernel_eval, sort, ntransf;
  int64_t n[3], m;
  double tol, upsampfac;
  uint64_t seed;
  double point_range; /* points uniform in [-range, range) */
} nufft_case;

static nufft_case base_case(int type, int prec_float, double tol)
{
  nufft_case k = {.type = type, .dim = 3, .sign = 1, .modeord = 0, .prec_float = prec_float,
                  .nthreads = 0, .kernel_eval = 1, .sort = 1, .ntransf = 1,
                  .n = {12, 13, 10}, .m = 1500, .tol = tol, .upsampfac = 2.0, .seed = 1,
                  .point_range = M_PI};
  return k;
}

typedef struct {
  int rc;           /* library error code of the fast transform */
  double rel_err;   /* relative l2 error against the direct sum, over all vectors */
} case_result;

static double complex rnd_c(spf_rng *r) { return spf_rng_normal(r) + I * spf_rng_normal(r); }

/* Run the fast transform on random data (points given or random) and compare with the
 * direct sum. pts may be NULL (random points); otherwise 3 * m coordinates. */
static case_result run_case(const nufft_case *k, const double *pts_in)
{
  case_result res = {0, NAN};
  const int64_t m = k->m, nt = k->ntransf;
  int64_t nm[3] = {1, 1, 1}, ntot = 1;
  for (int d = 0; d < k->dim; d++) nm[d] = k->n[d];
  for (int d = 0; d < 3; d++) ntot *= nm[d];
  double *pts = malloc(sizeof(double) * (size_t)(3 * m + 1));
  float *ptsf = malloc(sizeof(float) * (size_t)(3 * m + 1));
  double complex *in = malloc(sizeof(double complex) * (size_t)(nt * (m > ntot ? m : ntot)));
  double complex *out = malloc(sizeof(double complex) * (size_t)(nt * (m > ntot ? m : ntot)));
  double complex *ref = malloc(sizeof(double complex) * (size_t)(m > ntot ? m : ntot));
  spf_rng r;
  spf_rng_seed(&r, k->seed, 7);
  for (int64_t j = 0; j < 3 * m; j++) {
    double v = pts_in ? pts_in[j] : k->point_range * (2.0 * spf_rng_uniform(&r) - 1.0);
    /* Both precisions see the same points: float plans round them once here. */
    ptsf[j] = (float)v;
    pts[j] = k->prec_float ? (double)ptsf[j] : v;
  }
  const int64_t nin = k->type == 1 ? m : ntot, nout = k->type == 1 ? ntot : m;
  for (int64_t j = 0; j < nt * nin; j++) in[j] = rnd_c(&r);
  if (k->prec_float)
    for (int64_t j = 0; j < nt * nin; j++) in[j] = (float complex)in[j];

  spf_nufft_opts o;
  spf_nufft_default_opts(&o);
  o.modeord = k->modeord;
  o.upsampfac = k->upsampfac;
  o.nthreads = k->nthreads;
  o.kernel_eval = k->kernel_eval;
  o.sort = k->sort;
  o.fftw_measure = 0; /* tiny grids; planning time would dominate the test */
  const double *x = pts, *y = pts + m, *z = pts + 2 * m;
  const float *xf = ptsf, *yf = ptsf + m, *zf = ptsf + 2 * m;
  if (k->prec_float) {
    float complex *inf = malloc(sizeof(float complex) * (size_t)(nt * nin + 1));
    float complex *outf = malloc(sizeof(float complex) * (size_t)(nt * nout + 1));
    for (int64_t j = 0; j < nt * nin; j++) inf[j] = (float complex)in[j];
    spf_nufftf_plan p = NULL;
    res.rc = spf_nufftf_make_plan(k->type, k->dim, nm, k->sign, (int)nt, k->tol, &o, &p);
    if (!res.rc) res.rc = spf_nufftf_set_points(p, m, xf, yf, zf);
    if (!res.rc)
      res.rc = k->type == 1 ? spf_nufftf_execute(p, inf, outf) : spf_nufftf_execute(p, outf, inf);
    spf_nufftf_destroy(p);
    for (int64_t j = 0; j < nt * nout; j++) out[j] = outf[j];
    free(inf);
    free(outf);
  } else {
    spf_nufft_plan p = NULL;
    res.rc = spf_nufft_make_plan(k->type, k->dim, nm, k->sign, (int)nt, k->tol, &o, &p);
    if (!res.rc) res.rc = spf_nufft_set_points(p, m, x, y, z);
    if (!res.rc)
      res.rc = k->type == 1 ? spf_nufft_execute(p, in, out) : spf_nufft_execute(p, out, in);
    spf_nufft_destroy(p);
  }
  if (!res.rc) {
    double err = 0, nrm = 0;
    for (int64_t v = 0; v < nt; v++) {
      double complex *iv = in + v * nin, *ov = out + v * nout;
      if (k->type == 1) spf_nufft_direct(1, k->dim, nm, k->sign, k->modeord, m, x, y, z, iv, ref);
      else spf_nufft_direct(2, k->dim, nm, k->sign, k->modeord, m, x, y, z, ref, iv);
      for (int64_t j = 0; j < nout; j++) {
        err += pow(cabs(ov[j] - ref[j]), 2);
        nrm += pow(cabs(ref[j]), 2);
      }
    }
    res.rel_err = nrm > 0 ? sqrt(err / nrm) : sqrt(err);
  }
  free(pts);
  free(ptsf);
  free(in);
  free(out);
  free(ref);
  return res;
}

/* The accuracy promise: within 10x the tolerance (FINUFFT's errors sit at 1-3x). Float adds
 * its own rounding, about 1e-7 times sqrt(log of the grid), so its floor is 2e-6. */
static double error_bound(const nufft_case *k)
{
  double b = 10.0 * k->tol;
  if (k->prec_float && b < 2e-6 * 10) b = b > 2e-5 ? b : 2e-5;
  return b;
}

static void check_case(const nufft_case *k, const char *what)
{
  case_result r = run_case(k, NULL);
  double bound = error_bound(k);
  CHECK(r.rc == SPF_OK, "%s: %s", what, spf_strerror(r.rc));
  CHECK(r.rel_err <= bound, "%s: type %d dim %d %s tol %.0e N %lldx%lldx%lld M %lld: error %.3e > %.3e",
        what, k->type, k->dim, k->prec_float ? "float" : "double", k->tol, (long long)k->n[0],
        (long long)k->n[1], (long long)k->n[2], (long long)k->m, r.rel_err, bound);
}

static void type1_and_type2_match_direct_sum_double_all_tolerances(void)
{
  const double tols[] = {1e-1, 1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12, 1e-14};
  for (int type = 1; type <= 2; type++)
    for (size_t t = 0; t < sizeof tols / sizeof *tols; t++) {
      nufft_case k = base_case(type, 0, tols[t]);
      k.seed = 100 + t;
      check_case(&k, "double");
    }
}

static void type1_and_type2_match_direct_sum_float_all_tolerances(void)
{
  const double tols[] = {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6};
  for (int type = 1; type <= 2; type++)
    for (size_t t = 0; t < sizeof tols / sizeof *tols; t++) {
      nufft_case k = base_case(type, 1, tols[t]);
      k.seed = 200 + t;
      check_case(&k, "float");
    }
}

static void sizes_even_odd_one_and_dimensions(void)
{
  const int64_t sizes[][3] = {{1, 1, 1}, {1, 7, 4}, {8, 1, 9}, {5, 6, 1}, {2, 3, 2},
                              {16, 16, 16}, {15, 15, 15}, {33, 2, 5}};
  for (int type = 1; type <= 2; type++)
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
      for (int prec = 0; prec <= 1; prec++) {
        nufft_case k = base_case(type, prec, prec ? 1e-5 : 1e-9);
        memcpy(k.n, sizes[s], sizeof k.n);
        k.seed = 300 + s;
        check_case(&k, "3d sizes");
      }
  for (int type = 1; type <= 2; type++)
    for (int dim = 1; dim <= 2; dim++) {
      nufft_case k = base_case(type, 0, 1e-10);
      k.dim = dim;
      k.n[0] = dim == 1 ? 101 : 31;
      k.n[1] = 24;
      check_case(&k, "1d/2d");
      k.prec_float = 1;
      k.tol = 1e-5;
      check_case(&k, "1d/2d float");
    }
}

static void signs_mode_orders_upsampling_and_options(void)
{
  for (int type = 1; type <= 2; type++) {
    nufft_case k = base_case(type, 0, 1e-9);
    k.sign = -1;
    check_case(&k, "sign -1");
    k.modeord = 1;
    check_case(&k, "FFT-style modes");
    k = base_case(type, 0, 1e-8);
    k.upsampfac = 1.25;
    check_case(&k, "upsampfac 1.25");
    k = base_case(type, 1, 1e-4);
    k.upsampfac = 1.25;
    check_case(&k, "upsampfac 1.25 float");
    k = base_case(type, 0, 1e-11);
    k.kernel_eval = 0;
    check_case(&k, "direct kernel evaluation");
    k = base_case(type, 0, 1e-7);
    k.sort = 0;
    check_case(&k, "unsorted");
    k = base_case(type, 0, 1e-7);
    k.point_range = 3 * M_PI;
    check_case(&k, "points in [-3pi, 3pi)");
    k = base_case(type, 0, 1e-10);
    k.ntransf = 3;
    check_case(&k, "three vectors at once");
    k = base_case(type, 0, 1e-6);
    k.n[0] = k.n[1] = k.n[2] = 24;
    k.m = test_small_scale() ? 20000 : 120000; /* many subproblems and bins */
    k.seed = 9;
    check_case(&k, "many points");
  }
}

static void points_at_boundaries_repeated_and_clustered(void)
{
  const double edges[] = {-3 * M_PI, -M_PI, 0.0, M_PI, 3 * M_PI, nextafter(-M_PI, 0),
                          nextafter(M_PI, 0), nextafter(3 * M_PI, 0)};
  const int ne = sizeof edges / sizeof *edges, m = ne * ne * ne;
  double *pts = malloc(sizeof(double) * 3 * m);
  int j = 0;
  for (int a = 0; a < ne; a++)
    for (int b = 0; b < ne; b++)
      for (int c = 0; c < ne; c++, j++) {
        pts[j] = edges[a];
        pts[m + j] = edges[b];
        pts[2 * m + j] = edges[c];
      }
  for (int type = 1; type <= 2; type++)
    for (int prec = 0; prec <= 1; prec++) {
      nufft_case k = base_case(type, prec, prec ? 1e-5 : 1e-10);
      k.m = m;
      case_result r = run_case(&k, pts);
      CHECK(r.rc == SPF_OK && r.rel_err <= error_bound(&k), "edges: type %d prec %d err %.2e rc %d",
            type, prec, r.rel_err, r.rc);
    }
  /* One point repeated 1000 times, and all points inside one fine-grid cell. */
  const int mr = 1000;
  double *rep = malloc(sizeof(double) * 3 * mr);
  for (int i = 0; i < 3 * mr; i++) rep[i] = 0.123456789;
  double *clu = malloc(sizeof(double) * 3 * mr);
  spf_rng r;
  spf_rng_seed(&r, 5, 0);
  for (int i = 0; i < 3 * mr; i++) clu[i] = 2.5 + 1e-3 * spf_rng_uniform(&r);
  for (int type = 1; type <= 2; type++) {
    nufft_case k = base_case(type, 0, 1e-9);
    k.m = mr;
    case_result a = run_case(&k, rep), b = run_case(&k, clu);
    CHECK(a.rc == 0 && a.rel_err <= error_bound(&k), "repeated point: type %d err %.2e", type, a.rel_err);
    CHECK(b.rc == 0 && b.rel_err <= error_bound(&k), "clustered: type %d err %.2e", type, b.rel_err);
  }
  free(pts);
  free(rep);
  free(clu);
}

static void zero_points_and_single_mode(void)
{
  int64_t n[3] = {6, 5, 4};
  double complex f[120], c[1] = {0};
  for (int i = 0; i < 120; i++) f[i] = 99.0;
  spf_nufft_plan p;
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, 1e-6, NULL, &p) == SPF_OK, "plan");
  CHECK(spf_nufft_set_points(p, 0, NULL, NULL, NULL) == SPF_OK, "zero points");
  CHECK(spf_nufft_execute(p, c, f) == SPF_OK, "execute with zero points");
  double mx = 0;
  for (int i = 0; i < 120; i++) mx = fmax(mx, cabs(f[i]));
  CHECK(mx == 0.0, "type 1 of no points is zero, got %g", mx);
  spf_nufft_destroy(p);
  CHECK(spf_nufft_make_plan(2, 3, n, 1, 1, 1e-6, NULL, &p) == SPF_OK, "plan");
  CHECK(spf_nufft_set_points(p, 0, NULL, NULL, NULL) == SPF_OK, "zero points");
  CHECK(spf_nufft_execute(p, NULL, f) == SPF_OK, "type 2 to zero points");
  spf_nufft_destroy(p);

  /* A single mode: type 1 is the plain sum of strengths, type 2 a constant. */
  int64_t one[3] = {1, 1, 1};
  double x[3] = {0.3, -2.0, 9.0}, y[3] = {1, 2, 3}, z[3] = {-1, 0, 1};
  double complex cc[3] = {1 + 2 * I, -3, 0.5 * I}, ff = 0;
  x[2] = 3.0;
  CHECK(spf_nufft_make_plan(1, 3, one, -1, 1, 1e-12, NULL, &p) == SPF_OK, "plan");
  CHECK(spf_nufft_set_points(p, 3, x, y, z) == SPF_OK, "points");
  CHECK(spf_nufft_execute(p, cc, &ff) == SPF_OK, "exec");
  CHECK(cabs(ff - (cc[0] + cc[1] + cc[2])) < 1e-12, "single mode sum: %g%+gi", creal(ff), cimag(ff));
  spf_nufft_destroy(p);
}

/* <type2(f), c> = <f, type1(c)> with opposite signs: the two share kernel values, so this
 * holds to rounding, far below the tolerance. */
static void type1_and_type2_are_adjoint(void)
{
  int64_t n[3] = {14, 9, 11}, ntot = 14 * 9 * 11, m = 2000;
  double *x = malloc(sizeof(double) * 3 * m);
  double complex *c = malloc(sizeof(double complex) * m), *c2 = malloc(sizeof(double complex) * m);
  double complex *f = malloc(sizeof(double complex) * ntot), *f1 = malloc(sizeof(double complex) * ntot);
  spf_rng r;
  spf_rng_seed(&r, 77, 0);
  for (int64_t j = 0; j < 3 * m; j++) x[j] = 3 * M_PI * (2 * spf_rng_uniform(&r) - 1);
  for (int64_t j = 0; j < m; j++) c[j] = rnd_c(&r);
  for (int64_t j = 0; j < ntot; j++) f[j] = rnd_c(&r);
  const double tols[] = {1e-3, 1e-8};
  for (int t = 0; t < 2; t++) {
    spf_nufft_plan p1, p2;
    spf_nufft_make_plan(1, 3, n, -1, 1, tols[t], NULL, &p1);
    spf_nufft_make_plan(2, 3, n, +1, 1, tols[t], NULL, &p2);
    spf_nufft_set_points(p1, m, x, x + m, x + 2 * m);
    spf_nufft_set_points(p2, m, x, x + m, x + 2 * m);
    spf_nufft_execute(p1, c, f1);
    spf_nufft_execute(p2, c2, f);
    double complex lhs = 0, rhs = 0;
    double nl = 0, nr = 0;
    for (int64_t j = 0; j < m; j++) lhs += c2[j] * conj(c[j]), nl += cabs(c2[j]) * cabs(c[j]);
    for (int64_t j = 0; j < ntot; j++) rhs += f[j] * conj(f1[j]), nr += cabs(f[j]) * cabs(f1[j]);
    double rel = cabs(lhs - rhs) / fmax(nl, nr);
    CHECK(rel < 1e-13, "adjointness at tol %.0e: relative gap %.2e", tols[t], rel);
    spf_nufft_destroy(p1);
    spf_nufft_destroy(p2);
  }
  /* Float: the same identity to float rounding. */
  float *xf = malloc(sizeof(float) * 3 * m);
  float complex *cf = malloc(sizeof(float complex) * m), *c2f = malloc(sizeof(float complex) * m);
  float complex *ff = malloc(sizeof(float complex) * ntot), *f1f = malloc(sizeof(float complex) * ntot);
  for (int64_t j = 0; j < 3 * m; j++) xf[j] = (float)x[j];
  for (int64_t j = 0; j < m; j++) cf[j] = (float complex)c[j];
  for (int64_t j = 0; j < ntot; j++) ff[j] = (float complex)f[j];
  spf_nufftf_plan q1, q2;
  spf_nufftf_make_plan(1, 3, n, -1, 1, 1e-5, NULL, &q1);
  spf_nufftf_make_plan(2, 3, n, +1, 1, 1e-5, NULL, &q2);
  spf_nufftf_set_points(q1, m, xf, xf + m, xf + 2 * m);
  spf_nufftf_set_points(q2, m, xf, xf + m, xf + 2 * m);
  spf_nufftf_execute(q1, cf, f1f);
  spf_nufftf_execute(q2, c2f, ff);
  double complex lhs = 0, rhs = 0;
  double nl = 0, nr = 0;
  for (int64_t j = 0; j < m; j++) lhs += c2f[j] * conj(cf[j]), nl += cabs(c2f[j]) * cabs(cf[j]);
  for (int64_t j = 0; j < ntot; j++) rhs += ff[j] * conj(f1f[j]), nr += cabs(ff[j]) * cabs(f1f[j]);
  double rel = cabs(lhs - rhs) / fmax(nl, nr);
  CHECK(rel < 1e-5, "float adjointness: relative gap %.2e", rel);
  spf_nufftf_destroy(q1);
  spf_nufftf_destroy(q2);
  free(x); free(c); free(c2); free(f); free(f1);
  free(xf); free(cf); free(c2f); free(ff); free(f1f);
}

static void thread_count_changes_results_only_by_rounding(void)
{
  int64_t n[3] = {20, 20, 20}, ntot = 8000, m = test_small_scale() ? 30000 : 200000;
  double *x = malloc(sizeof(double) * 3 * m);
  double complex *c = malloc(sizeof(double complex) * m), *f = malloc(sizeof(double complex) * ntot);
  double complex *out[2] = {malloc(sizeof(double complex) * ntot), malloc(sizeof(double complex) * m)};
  double complex *out1[2] = {malloc(sizeof(double complex) * ntot), malloc(sizeof(double complex) * m)};
  spf_rng r;
  spf_rng_seed(&r, 8, 0);
  for (int64_t j = 0; j < 3 * m; j++) x[j] = M_PI * (2 * spf_rng_uniform(&r) - 1);
  for (int64_t j = 0; j < m; j++) c[j] = rnd_c(&r);
  for (int64_t j = 0; j < ntot; j++) f[j] = rnd_c(&r);
  for (int type = 1; type <= 2; type++) {
    for (int threads = 1; threads <= 2; threads++) {
      spf_nufft_opts o;
      spf_nufft_default_opts(&o);
      o.nthreads = threads;
      o.fftw_measure = 0;
      spf_nufft_plan p;
      spf_nufft_make_plan(type, 3, n, 1, 1, 1e-9, &o, &p);
      spf_nufft_set_points(p, m, x, x + m, x + 2 * m);
      double complex *dst = threads == 1 ? out1[type - 1] : out[type - 1];
      if (type == 1) spf_nufft_execute(p, c, dst);
      else spf_nufft_execute(p, dst, f);
      if (type == 1 && threads == 2) {
        /* Threads add their boxes in a fixed order: repeats are bit-identical (checkpoint
         * resume and MPI reproducibility rest on it). */
        double complex *again = malloc(sizeof(double complex) * ntot);
        int same = 1;
        for (int rep = 0; rep < 4; rep++) {
          spf_nufft_execute(p, c, again);
          same = same && !memcmp(again, dst, sizeof(double complex) * ntot);
        }
        CHECK(same, "type 1 with 2 threads: repeated executions differ");
        free(again);
      }
      spf_nufft_destroy(p);
    }
    int64_t len = type == 1 ? ntot : m;
    double err = 0, nrm = 0;
    for (int64_t j = 0; j < len; j++) {
      err += pow(cabs(out[type - 1][j] - out1[type - 1][j]), 2);
      nrm += pow(cabs(out1[type - 1][j]), 2);
    }
    CHECK(sqrt(err / nrm) < 1e-14, "type %d: 1 vs 2 threads differ by %.2e", type, sqrt(err / nrm));
  }
  free(x); free(c); free(f);
  for (int i = 0; i < 2; i++) free(out[i]), free(out1[i]);
}

static void new_points_without_replanning_match_fresh_plan(void)
{
  nufft_case k = base_case(1, 0, 1e-9);
  int64_t m = 800, ntot = 12 * 13 * 10;
  double *x = malloc(sizeof(double) * 6 * m);
  double complex *c = malloc(sizeof(double complex) * m), *f_re = malloc(sizeof(double complex) * ntot),
                 *f_fresh = malloc(sizeof(double complex) * ntot);
  spf_rng r;
  spf_rng_seed(&r, 3, 0);
  for (int64_t j = 0; j < 6 * m; j++) x[j] = M_PI * (2 * spf_rng_uniform(&r) - 1);
  for (int64_t j = 0; j < m; j++) c[j] = rnd_c(&r);
  spf_nufft_plan p, q;
  spf_nufft_make_plan(1, 3, k.n, 1, 1, 1e-9, NULL, &p);
  spf_nufft_set_points(p, m, x, x + m, x + 2 * m);
  spf_nufft_execute(p, c, f_re);
  double *x2 = x + 3 * m;
  CHECK(spf_nufft_set_points(p, m, x2, x2 + m, x2 + 2 * m) == SPF_OK, "second set_points");
  spf_nufft_execute(p, c, f_re);
  spf_nufft_make_plan(1, 3, k.n, 1, 1, 1e-9, NULL, &q);
  spf_nufft_set_points(q, m, x2, x2 + m, x2 + 2 * m);
  spf_nufft_execute(q, c, f_fresh);
  double d = 0;
  for (int64_t j = 0; j < ntot; j++) d = fmax(d, cabs(f_re[j] - f_fresh[j]));
  CHECK(d == 0.0, "re-used plan differs from a fresh one by %g", d);
  spf_nufft_destroy(p);
  spf_nufft_destroy(q);
  free(x); free(c); free(f_re); free(f_fresh);
}

/* Subproblem sizes follow the point count (m / 16 from 8,192 to 65,536): a plan whose
 * second set of points is much larger grows its scratch, and gives what a fresh plan
 * gives, bit for bit, and the direct sum. */
static void more_points_on_a_used_plan_grow_its_subproblems(void)
{
  /* Few modes: the direct sum over all of them stays cheap at many points. */
  int64_t n[3] = {4, 5, 3}, ntot = 4 * 5 * 3, m1 = 500, m2 = test_small_scale() ? 150000 : 400000;
  double *x = malloc(sizeof(double) * 3 * (m1 + m2));
  double complex *c = malloc(sizeof(double complex) * m2), *f_re = malloc(sizeof(double complex) * ntot),
                 *f_fresh = malloc(sizeof(double complex) * ntot), *ref = malloc(sizeof(double complex) * ntot);
  spf_rng r;
  spf_rng_seed(&r, 11, 0);
  for (int64_t j = 0; j < 3 * (m1 + m2); j++) x[j] = M_PI * (2 * spf_rng_uniform(&r) - 1);
  for (int64_t j = 0; j < m2; j++) c[j] = rnd_c(&r);
  spf_nufft_opts o;
  spf_nufft_default_opts(&o);
  o.upsampfac = 2.0;
  o.fftw_measure = 0;
  spf_nufft_plan p, q;
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, 1e-9, &o, &p) == SPF_OK, "make_plan");
  CHECK(spf_nufft_set_points(p, m1, x, x + m1, x + 2 * m1) == SPF_OK, "set_points, few points");
  CHECK(spf_nufft_execute(p, c, f_re) == SPF_OK, "execute, few points");
  const double *x2 = x + 3 * m1;
  CHECK(spf_nufft_set_points(p, m2, x2, x2 + m2, x2 + 2 * m2) == SPF_OK, "set_points, many points");
  CHECK(spf_nufft_execute(p, c, f_re) == SPF_OK, "execute, many points");
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, 1e-9, &o, &q) == SPF_OK, "make_plan, fresh");
  spf_nufft_set_points(q, m2, x2, x2 + m2, x2 + 2 * m2);
  spf_nufft_execute(q, c, f_fresh);
  CHECK(!memcmp(f_re, f_fresh, sizeof(double complex) * ntot), "re-used plan differs from a fresh one");
  CHECK(spf_nufft_direct(1, 3, n, 1, o.modeord, m2, x2, x2 + m2, x2 + 2 * m2, c, ref) == SPF_OK, "direct sum");
  double err = 0, nrm = 0;
  for (int64_t k = 0; k < ntot; k++) {
    err += pow(cabs(f_re[k] - ref[k]), 2);
    nrm += pow(cabs(ref[k]), 2);
  }
  CHECK(sqrt(err / nrm) < 1e-8, "many points: error %.2e against the direct sum", sqrt(err / nrm));
  spf_nufft_destroy(p);
  spf_nufft_destroy(q);
  free(x); free(c); free(f_re); free(f_fresh); free(ref);
}

static void bad_arguments_return_distinct_codes(void)
{
  int64_t n[3] = {8, 8, 8}, zero[3] = {8, 0, 8}, neg[3] = {8, -3, 8}, huge[3] = {1 << 20, 1 << 20, 1 << 20};
  spf_nufft_plan p = (spf_nufft_plan)1;
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, 1e-6, NULL, NULL) == SPF_ERR_NULL, "NULL plan pointer");
  CHECK(spf_nufft_make_plan(1, 3, NULL, 1, 1, 1e-6, NULL, &p) == SPF_ERR_NULL && p == NULL, "NULL sizes");
  CHECK(spf_nufft_make_plan(1, 3, zero, 1, 1, 1e-6, NULL, &p) == SPF_ERR_SIZE, "zero size");
  CHECK(spf_nufft_make_plan(1, 3, neg, 1, 1, 1e-6, NULL, &p) == SPF_ERR_SIZE, "negative size");
  CHECK(spf_nufft_make_plan(1, 4, n, 1, 1, 1e-6, NULL, &p) == SPF_ERR_SIZE, "dim 4");
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 0, 1e-6, NULL, &p) == SPF_ERR_SIZE, "ntransf 0");
  CHECK(spf_nufft_make_plan(3, 3, n, 1, 1, 1e-6, NULL, &p) == SPF_ERR_TYPE, "type 3");
  CHECK(spf_nufft_make_plan(1, 3, n, 0, 1, 1e-6, NULL, &p) == SPF_ERR_ARG, "sign 0");
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, 1e-15, NULL, &p) == SPF_ERR_TOLERANCE, "tol 1e-15");
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, 0.5, NULL, &p) == SPF_ERR_TOLERANCE, "tol 0.5");
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, NAN, NULL, &p) == SPF_ERR_TOLERANCE, "tol NaN");
  spf_nufftf_plan pf;
  CHECK(spf_nufftf_make_plan(1, 3, n, 1, 1, 1e-7, NULL, &pf) == SPF_ERR_TOLERANCE, "float tol 1e-7");
  spf_nufft_opts o;
  spf_nufft_default_opts(&o);
  o.upsampfac = 1.25;
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, 1e-12, &o, &p) == SPF_ERR_TOLERANCE, "1.25 cannot reach 1e-12");
  o.upsampfac = 1.5;
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, 1e-6, &o, &p) == SPF_ERR_OPTION, "upsampfac 1.5");
  spf_nufft_default_opts(&o);
  o.modeord = 2;
  CHECK(spf_nufft_make_plan(1, 3, n, 1, 1, 1e-6, &o, &p) == SPF_ERR_OPTION, "modeord 2");
  CHECK(spf_nufft_make_plan(1, 3, huge, 1, 1, 1e-6, NULL, &p) == SPF_ERR_TOO_BIG, "2^60 modes");

  CHECK(spf_nufft_make_plan(2, 3, n, 1, 1, 1e-6, NULL, &p) == SPF_OK, "valid plan");
  double complex c[4], f[512] = {0};
  CHECK(spf_nufft_execute(p, c, f) == SPF_ERR_NO_POINTS, "execute before set_points");
  double x[4] = {0, 1, 2, 3}, y[4] = {0, 1, 2, 3}, z[4] = {0, 1, 2, NAN};
  CHECK(spf_nufft_set_points(p, 4, x, y, z) == SPF_ERR_POINT, "NaN point");
  z[3] = INFINITY;
  CHECK(spf_nufft_set_points(p, 4, x, y, z) == SPF_ERR_POINT, "infinite point");
  z[3] = 10.0;
  CHECK(spf_nufft_set_points(p, 4, x, y, z) == SPF_ERR_POINT, "point 10 outside [-3pi, 3pi]");
  CHECK(spf_nufft_execute(p, c, f) == SPF_ERR_NO_POINTS, "failed set_points leaves no points");
  CHECK(spf_nufft_set_points(p, 4, x, NULL, z) == SPF_ERR_NULL, "missing y");
  CHECK(spf_nufft_set_points(p, -1, x, y, z) == SPF_ERR_SIZE, "negative count");
  z[3] = 3.0;
  CHECK(spf_nufft_set_points(p, 4, x, y, z) == SPF_OK, "valid points");
  CHECK(spf_nufft_execute(p, NULL, f) == SPF_ERR_NULL, "NULL output");
  CHECK(spf_nufft_execute(p, c, f) == SPF_OK, "valid execute");
  CHECK(spf_nufft_set_points(NULL, 4, x, y, z) == SPF_ERR_NULL, "NULL plan");
  spf_nufft_destroy(p);
  spf_nufft_destroy(NULL);

  /* Every code has its own message. */
  for (int a = 0; a < SPF_ERR_COUNT_; a++)
    for (int b = a + 1; b < SPF_ERR_COUNT_; b++)
      CHECK(strcmp(spf_strerror(a), spf_strerror(b)) != 0, "codes %d and %d share a message", a, b);
  CHECK(strcmp(spf_strerror(-5), "unknown error code") == 0, "unknown code");
}

/* The kernel numerics on their own: psi_0 itself, the polynomial fit and the Fourier
 * transform. */
static void kernel_fit_and_fourier_transform_are_accurate(void)
{
  const double tols[] = {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8,
                         1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14};
  for (int up = 0; up < 2; up++)
    for (int t = 0; t < 14; t++) {
      spf_nufft_kernel k;
      double sigma = up ? 1.25 : 2.0;
      if (spf_nufft_kernel_choose(tols[t], sigma, &k) != SPF_OK) {
        CHECK(up == 1 && tols[t] < 1e-8, "only 1.25 at small tolerances may refuse: %.0e", tols[t]);
        continue;
      }
      /* psi_0 is the finite Fourier transform's eigenfunction (Slepian):
       * int_{-1}^{1} psi(t) cos(c x t) dt = lambda psi(x) for |x| <= 1; by Simpson's rule
       * with 20,000 intervals (error ~1e-11 at c <= 38), lambda from x = 0 (psi(0) = 1),
       * checked at several x, relative to lambda. */
      const double xs[] = {0.1, 0.37, 0.6, 0.85, 1.0};
      double lambda0 = 0, worst = 0;
      for (int ix = -1; ix < 5; ix++) {
        const double x = ix < 0 ? 0 : xs[ix];
        const int q = 20000;
        double s = 0;
        for (int i = 0; i <= q; i++) {
          const double tt = fmin(1.0, -1 + 2.0 * i / q); /* not past 1 by rounding */
          s += (i == 0 || i == q ? 1 : (i % 2 ? 4 : 2)) * spf_nufft_kernel_eval(&k, tt) * cos(k.c * x * tt);
        }
        s *= 2.0 / q / 3;
        if (ix < 0) lambda0 = s; /* psi(0) = 1 */
        else worst = fmax(worst, fabs(s - lambda0 * spf_nufft_kernel_eval(&k, x)) / lambda0);
      }
      CHECK(worst < 1e-9, "psi_0 (c %.2f, w %d) is the Fourier transform's eigenfunction: %.1e", k.c, k.width, worst);
      CHECK(spf_nufft_kernel_eval(&k, 0) == 1 || fabs(spf_nufft_kernel_eval(&k, 0) - 1) < 1e-14, "psi(0) = 1");
      CHECK(spf_nufft_kernel_eval(&k, 1.0001) == 0 && spf_nufft_kernel_eval(&k, 1.0) > 0 && spf_nufft_kernel_eval(&k, 1.0) < 0.2,
            "support [-1, 1], falling to its edge: psi(1) %.2e", spf_nufft_kernel_eval(&k, 1.0));
      double coef[(SPF_NUFFT_MAX_DEGREE + 1) * SPF_NUFFT_KPAD(SPF_NUFFT_MAX_WIDTH)], err = -1;
      double target = fmax(tols[t] * 0.1, 1e-14);
      int deg = spf_nufft_kernel_fit(&k, target, coef, &err);
      CHECK(deg > 0 && err <= target, "fit at tol %.0e sigma %.2f w %d: degree %d error %.2e", tols[t],
            sigma, k.width, deg, err);
      /* phihat against composite Simpson in z with 200000 intervals. */
      const int64_t n = 9, nf = 20;
      double ph[9];
      spf_nufft_kernel_fourier(&k, n, nf, ph);
      for (int64_t j = 0; j < n; j++) {
        double xi = 2 * M_PI * (double)(j - n / 2) / nf, s = 0;
        const int q = 200000;
        const double h = 2.0 / q;
        for (int i = 0; i <= q; i++) {
          double z = fmin(1.0, -1 + i * h); /* not past 1 by rounding: psi(1) is not 0 */
          double g = spf_nufft_kernel_eval(&k, z) * cos(xi * 0.5 * k.width * z);
          s += (i == 0 || i == q ? 1 : (i % 2 ? 4 : 2)) * g;
        }
        s *= 0.5 * k.width * h / 3;
        CHECK(fabs(s - ph[j]) < 1e-12 * fabs(s), "phihat w %d mode %lld: %.15g vs %.15g", k.width,
              (long long)(j - n / 2), ph[j], s);
      }
    }
  CHECK(spf_nufft_fine_size(128, 2.0, 7, 0) == 270, "fine size for 128: %lld", (long long)spf_nufft_fine_size(128, 2.0, 7, 0));
  CHECK(spf_nufft_fine_size(128, 2.0, 7, 1) == 256, "fine size for 128 with pow2");
  CHECK(spf_nufft_fine_size(1, 2.0, 7, 0) == 1, "one mode stays one");
  CHECK(spf_nufft_fine_size(3, 2.0, 7, 0) == 18, "at least 2w: %lld", (long long)spf_nufft_fine_size(3, 2.0, 7, 0));
}

/* load_modes once, then interpolate at two point sets = two full executes. */
static void load_modes_then_interpolate_many_point_sets(void)
{
  int64_t n[3] = {10, 11, 12}, ntot = 1320, m = 700;
  double *x = malloc(sizeof(double) * 6 * m);
  double complex *f = malloc(sizeof(double complex) * ntot), *a = malloc(sizeof(double complex) * m),
                 *b = malloc(sizeof(double complex) * m);
  spf_rng r;
  spf_rng_seed(&r, 12, 0);
  for (int64_t j = 0; j < 6 * m; j++) x[j] = M_PI * (2 * spf_rng_uniform(&r) - 1);
  for (int64_t j = 0; j < ntot; j++) f[j] = rnd_c(&r);
  spf_nufft_plan p;
  spf_nufft_make_plan(2, 3, n, 1, 1, 1e-9, NULL, &p);
  CHECK(spf_nufft_set_points(p, m, x, x + m, x + 2 * m) == SPF_OK, "points");
  CHECK(spf_nufft_interpolate(p, a) == SPF_ERR_NO_MODES, "interpolate before load_modes");
  CHECK(spf_nufft_load_modes(p, f) == SPF_OK, "load");
  for (int set = 0; set < 2; set++) {
    const double *xs = x + 3 * m * set;
    spf_nufft_set_points(p, m, xs, xs + m, xs + 2 * m);
    CHECK(spf_nufft_interpolate(p, a) == SPF_OK, "interpolate");
    spf_nufft_plan q;
    spf_nufft_make_plan(2, 3, n, 1, 1, 1e-9, NULL, &q);
    spf_nufft_set_points(q, m, xs, xs + m, xs + 2 * m);
    spf_nufft_execute(q, b, f);
    spf_nufft_destroy(q);
    double d = 0;
    for (int64_t j = 0; j < m; j++) d = fmax(d, cabs(a[j] - b[j]));
    CHECK(d == 0.0, "point set %d: split differs from execute by %g", set, d);
  }
  spf_nufft_destroy(p);
  spf_nufft_plan t1;
  spf_nufft_make_plan(1, 3, n, 1, 1, 1e-6, NULL, &t1);
  CHECK(spf_nufft_load_modes(t1, f) == SPF_ERR_ARG, "load_modes on a type 1 plan");
  spf_nufft_destroy(t1);
  free(x); free(f); free(a); free(b);
}

/* interpolate_real against the real part of the direct sum (complex modes, so Re is not
 * all of it), in both precisions, 3D and 2D (a collapsed dimension), with points over the
 * whole period (kernels wrapping round the grid), and after new modes are loaded (the real
 * grid must follow them). */
static void interpolate_real_matches_direct_real_part(void)
{
  for (int prec_float = 0; prec_float <= 1; prec_float++)
    for (int dim = 2; dim <= 3; dim++) {
      const double tol = prec_float ? 1e-4 : 1e-9;
      int64_t n[3] = {11, 12, dim == 3 ? 9 : 1}, ntot = n[0] * n[1] * n[2], m = 900;
      double *x = malloc(sizeof(double) * 3 * m);
      float *xf = malloc(sizeof(float) * 3 * m);
      double complex *f = malloc(sizeof(double complex) * ntot), *ref = malloc(sizeof(double complex) * m);
      double *c = malloc(sizeof(double) * m);
      float *cf = malloc(sizeof(float) * m);
      float complex *ff = malloc(sizeof(float complex) * ntot);
      spf_rng r;
      spf_rng_seed(&r, 40 + dim, (uint64_t)prec_float);
      for (int64_t j = 0; j < 3 * m; j++) {
        xf[j] = (float)(M_PI * (2 * spf_rng_uniform(&r) - 1));
        x[j] = prec_float ? (double)xf[j] : M_PI * (2 * spf_rng_uniform(&r) - 1);
      }
      spf_nufft_plan p = NULL;
      spf_nufftf_plan pf = NULL;
      int rc = prec_float ? spf_nufftf_make_plan(2, dim, n, 1, 1, tol, NULL, &pf) : spf_nufft_make_plan(2, dim, n, 1, 1, tol, NULL, &p);
      CHECK(rc == SPF_OK, "plan");
      rc = prec_float ? spf_nufftf_set_points(pf, m, xf, xf + m, xf + 2 * m) : spf_nufft_set_points(p, m, x, x + m, x + 2 * m);
      CHECK(rc == SPF_OK, "points");
      rc = prec_float ? spf_nufftf_interpolate_real(pf, cf) : spf_nufft_interpolate_real(p, c);
      CHECK(rc == SPF_ERR_NO_MODES, "interpolate_real before load_modes");
      for (int load = 0; load < 2; load++) {
        for (int64_t k = 0; k < ntot; k++) {
          f[k] = rnd_c(&r);
          ff[k] = (float complex)f[k];
          if (prec_float) f[k] = ff[k];
        }
        rc = prec_float ? spf_nufftf_load_modes(pf, ff) : spf_nufft_load_modes(p, f);
        if (!rc) rc = prec_float ? spf_nufftf_interpolate_real(pf, cf) : spf_nufft_interpolate_real(p, c);
        CHECK(rc == SPF_OK, "load and interpolate_real");
        if (prec_float)
          for (int64_t j = 0; j < m; j++) c[j] = cf[j];
        spf_nufft_direct(2, dim, n, 1, 0, m, x, x + m, x + 2 * m, ref, f);
        double err = 0, nrm = 0;
        for (int64_t j = 0; j < m; j++) {
          err += pow(c[j] - creal(ref[j]), 2);
          nrm += pow(creal(ref[j]), 2);
        }
        const double bound = prec_float ? 2e-5 > 10 * tol ? 2e-5 : 10 * tol : 10 * tol;
        CHECK(sqrt(err / nrm) <= bound, "%s %dD modes %d: Re error %.2e > %.2e", prec_float ? "float" : "double", dim,
              load, sqrt(err / nrm), bound);
      }
      spf_nufft_destroy(p);
      spf_nufftf_destroy(pf);
      free(x); free(xf); free(f); free(ref); free(c); free(cf); free(ff);
    }
}

/* execute_real (type 1, real strengths) against the direct sum, both precisions, 3D and 2D,
 * points over the whole period (boxes wrapping round the grid), and against execute with
 * the same strengths as complex numbers (the same sums but for rounding). */
static void type1_real_strengths_match_direct_sum(void)
{
  for (int prec_float = 0; prec_float <= 1; prec_float++)
    for (int dim = 2; dim <= 3; dim++) {
      const double tol = prec_float ? 1e-4 : 1e-9;
      int64_t n[3] = {11, 12, dim == 3 ? 9 : 1}, ntot = n[0] * n[1] * n[2], m = 900;
      double *x = malloc(sizeof(double) * 3 * m), *c = malloc(sizeof(double) * m);
      float *xf = malloc(sizeof(float) * 3 * m), *cf = malloc(sizeof(float) * m);
      double complex *cc = malloc(sizeof(double complex) * m), *ref = malloc(sizeof(double complex) * ntot),
                     *f = malloc(sizeof(double complex) * ntot), *g = malloc(sizeof(double complex) * ntot);
      float complex *ccf = malloc(sizeof(float complex) * m), *ff = malloc(sizeof(float complex) * ntot),
                    *gf = malloc(sizeof(float complex) * ntot);
      spf_rng r;
      spf_rng_seed(&r, 50 + dim, (uint64_t)prec_float);
      for (int64_t j = 0; j < 3 * m; j++) {
        xf[j] = (float)(M_PI * (2 * spf_rng_uniform(&r) - 1));
        x[j] = prec_float ? (double)xf[j] : M_PI * (2 * spf_rng_uniform(&r) - 1);
      }
      for (int64_t j = 0; j < m; j++) {
        cf[j] = (float)spf_rng_normal(&r);
        c[j] = prec_float ? (double)cf[j] : spf_rng_normal(&r);
        cc[j] = c[j];
        ccf[j] = cf[j];
      }
      spf_nufft_plan p = NULL;
      spf_nufftf_plan pf = NULL;
      int rc = prec_float ? spf_nufftf_make_plan(1, dim, n, -1, 1, tol, NULL, &pf) : spf_nufft_make_plan(1, dim, n, -1, 1, tol, NULL, &p);
      if (!rc) rc = prec_float ? spf_nufftf_set_points(pf, m, xf, xf + m, xf + 2 * m) : spf_nufft_set_points(p, m, x, x + m, x + 2 * m);
      if (!rc) rc = prec_float ? spf_nufftf_execute_real(pf, cf, ff) : spf_nufft_execute_real(p, c, f);
      if (!rc) rc = prec_float ? spf_nufftf_execute(pf, ccf, gf) : spf_nufft_execute(p, cc, g);
      CHECK(rc == SPF_OK, "plan, points and both executes: %s", spf_strerror(rc));
      if (prec_float)
        for (int64_t k = 0; k < ntot; k++) f[k] = ff[k], g[k] = gf[k];
      spf_nufft_direct(1, dim, n, -1, 0, m, x, x + m, x + 2 * m, cc, ref);
      double err = 0, dif = 0, nrm = 0;
      for (int64_t k = 0; k < ntot; k++) {
        err += pow(cabs(f[k] - ref[k]), 2);
        dif += pow(cabs(f[k] - g[k]), 2);
        nrm += pow(cabs(ref[k]), 2);
      }
      const double bound = prec_float ? 2e-5 > 10 * tol ? 2e-5 : 10 * tol : 10 * tol;
      CHECK(sqrt(err / nrm) <= bound, "%s %dD: error %.2e > %.2e", prec_float ? "float" : "double", dim,
            sqrt(err / nrm), bound);
      CHECK(sqrt(dif / nrm) <= (prec_float ? 1e-6 : 1e-14), "%s %dD: real vs complex strengths differ by %.2e",
            prec_float ? "float" : "double", dim, sqrt(dif / nrm));
      if (prec_float) CHECK(spf_nufftf_execute_real(pf, NULL, ff) == SPF_ERR_NULL, "NULL strengths");
      spf_nufft_destroy(p);
      spf_nufftf_destroy(pf);
      free(x); free(c); free(xf); free(cf); free(cc); free(ref); free(f); free(g); free(ccf); free(ff); free(gf);
    }
  spf_nufft_plan t2 = NULL;
  int64_t n2[3] = {8, 8, 8};
  double one = 1, zero3[3] = {0, 0, 0};
  double complex out[512];
  spf_nufft_make_plan(2, 3, n2, 1, 1, 1e-6, NULL, &t2);
  spf_nufft_set_points(t2, 1, zero3, zero3 + 1, zero3 + 2);
  CHECK(spf_nufft_execute_real(t2, &one, out) == SPF_ERR_ARG, "execute_real on a type 2 plan");
  spf_nufft_destroy(t2);
}


/* upsampfac 0: the factor is chosen at the first set_points, by the number of points
 * against the grid: few points on a large grid get 1.25 (a smaller FFT), many points
 * 2.0; a tolerance 1.25 cannot reach gets 2.0 whatever the points; the transforms meet
 * the tolerance either way; the choice stays for later set_points calls; load_modes
 * before any points takes 2.0. */
static void automatic_upsampling_chooses_by_point_density(void)
{
  struct {
    int type;
    int64_t n, m;
    double tol, expect;
  } cases[] = {{1, 32, 500, 1e-6, 1.25}, {2, 32, 500, 1e-6, 1.25}, {1, 8, 20000, 1e-6, 2.0},
               {2, 8, 20000, 1e-6, 2.0},  {1, 32, 500, 1e-12, 2.0}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const int64_t n = cases[i].n, m = cases[i].m, nm[3] = {n, n, n}, ntot = n * n * n;
    double *pts = malloc(sizeof(double) * 3 * (size_t)m);
    double complex *in = malloc(sizeof(double complex) * (size_t)(m > ntot ? m : ntot));
    double complex *out = malloc(sizeof(double complex) * (size_t)(m > ntot ? m : ntot));
    double complex *ref = malloc(sizeof(double complex) * (size_t)(m > ntot ? m : ntot));
    spf_rng r;
    spf_rng_seed(&r, 40 + i, 0);
    for (int64_t j = 0; j < 3 * m; j++) pts[j] = M_PI * (2.0 * spf_rng_uniform(&r) - 1.0);
    const int type = cases[i].type;
    const int64_t nin = type == 1 ? m : ntot, nout = type == 1 ? ntot : m;
    for (int64_t j = 0; j < nin; j++) in[j] = rnd_c(&r);
    spf_nufft_opts o;
    spf_nufft_default_opts(&o);
    CHECK(o.upsampfac == 0.0, "the default is automatic");
    o.fftw_measure = 0;
    spf_nufft_plan p = NULL;
    int rc = spf_nufft_make_plan(type, 3, nm, 1, 1, cases[i].tol, &o, &p);
    CHECK(rc == SPF_OK, "case %zu: make_plan: %s", i, spf_strerror(rc));
    if (rc) continue;
    spf_nufft_info info;
    spf_nufft_get_info(p, &info);
    CHECK(info.upsampfac == 0.0 && info.width == 0, "case %zu: undecided before set_points", i);
    rc = spf_nufft_set_points(p, m, pts, pts + m, pts + 2 * m);
    if (!rc) rc = type == 1 ? spf_nufft_execute(p, in, out) : spf_nufft_execute(p, out, in);
    CHECK(rc == SPF_OK, "case %zu: %s", i, spf_strerror(rc));
    spf_nufft_get_info(p, &info);
    CHECK(info.upsampfac == cases[i].expect, "case %zu: type %d, %lld^3 modes, %lld points, tol %.0e: chose %.2f, expected %.2f",
          i, type, (long long)n, (long long)m, cases[i].tol, info.upsampfac, cases[i].expect);
    if (!rc) {
      if (type == 1) spf_nufft_direct(1, 3, nm, 1, 0, m, pts, pts + m, pts + 2 * m, in, ref);
      else spf_nufft_direct(2, 3, nm, 1, 0, m, pts, pts + m, pts + 2 * m, ref, in);
      double err = 0, nrm = 0;
      for (int64_t j = 0; j < nout; j++) {
        err += pow(cabs(out[j] - ref[j]), 2);
        nrm += pow(cabs(ref[j]), 2);
      }
      CHECK(sqrt(err / nrm) <= 10 * cases[i].tol, "case %zu: error %.2e at sigma %.2f, tol %.0e", i,
            sqrt(err / nrm), info.upsampfac, cases[i].tol);
    }
    /* Many more points later: the plan keeps its grid. */
    if (!rc && m < 1000) {
      double *more = malloc(sizeof(double) * 3 * 20000);
      for (int j = 0; j < 3 * 20000; j++) more[j] = M_PI * (2.0 * spf_rng_uniform(&r) - 1.0);
      CHECK(spf_nufft_set_points(p, 20000, more, more + 20000, more + 40000) == SPF_OK, "case %zu: more points", i);
      spf_nufft_get_info(p, &info);
      CHECK(info.upsampfac == cases[i].expect, "case %zu: the choice is kept", i);
      free(more);
    }
    spf_nufft_destroy(p);
    free(pts);
    free(in);
    free(out);
    free(ref);
  }

  /* load_modes before any points: the dense choice, and interpolation still exact. */
  const int64_t n = 16, nm[3] = {n, n, n}, m = 300;
  double complex *f = malloc(sizeof(double complex) * (size_t)(n * n * n));
  double complex c[300], ref[300];
  double pts[900];
  spf_rng r;
  spf_rng_seed(&r, 77, 0);
  for (int64_t k = 0; k < n * n * n; k++) f[k] = rnd_c(&r);
  for (int j = 0; j < 900; j++) pts[j] = M_PI * (2.0 * spf_rng_uniform(&r) - 1.0);
  spf_nufft_opts o;
  spf_nufft_default_opts(&o);
  o.fftw_measure = 0;
  spf_nufft_plan p = NULL;
  int rc = spf_nufft_make_plan(2, 3, nm, 1, 1, 1e-8, &o, &p);
  if (!rc) rc = spf_nufft_load_modes(p, f);
  if (!rc) rc = spf_nufft_set_points(p, m, pts, pts + m, pts + 2 * m);
  if (!rc) rc = spf_nufft_interpolate(p, c);
  CHECK(rc == SPF_OK, "load_modes first: %s", spf_strerror(rc));
  if (!rc) {
    spf_nufft_info info;
    spf_nufft_get_info(p, &info);
    CHECK(info.upsampfac == 2.0, "load_modes first: sigma %.2f, expected 2", info.upsampfac);
    spf_nufft_direct(2, 3, nm, 1, 0, m, pts, pts + m, pts + 2 * m, ref, f);
    double err = 0, nrm = 0;
    for (int j = 0; j < m; j++) {
      err += pow(cabs(c[j] - ref[j]), 2);
      nrm += pow(cabs(ref[j]), 2);
    }
    CHECK(sqrt(err / nrm) <= 1e-7, "load_modes first: error %.2e", sqrt(err / nrm));
  }
  spf_nufft_destroy(p);
  free(f);
}

int main(void)
{
  RUN_TEST(kernel_fit_and_fourier_transform_are_accurate);
  RUN_TEST(type1_and_type2_match_direct_sum_double_all_tolerances);
  RUN_TEST(type1_and_type2_match_direct_sum_float_all_tolerances);
  RUN_TEST(sizes_even_odd_one_and_dimensions);
  RUN_TEST(signs_mode_orders_upsampling_and_options);
  RUN_TEST(points_at_boundaries_repeated_and_clustered);
  RUN_TEST(zero_points_and_single_mode);
  RUN_TEST(type1_and_type2_are_adjoint);
  RUN_TEST(thread_count_changes_results_only_by_rounding);
  RUN_TEST(new_points_without_replanning_match_fresh_plan);
  RUN_TEST(more_points_on_a_used_plan_grow_its_subproblems);
  RUN_TEST(bad_arguments_return_distinct_codes);
  RUN_TEST(load_modes_then_interpolate_many_point_sets);
  RUN_TEST(interpolate_real_matches_direct_real_part);
  RUN_TEST(type1_real_strengths_match_direct_sum);
  RUN_TEST(automatic_upsampling_chooses_by_point_density);
  return test_summary();
}
