/* Shell correlation of intensities and their rotational alignment: against a brute-force
 * Pearson, identical volumes, an exactly rotated copy (the atoms turned), and noise. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "spinifel/shellcorr.h"
#include "testing.h"

/* The obvious Pearson per shell: gather each shell's voxels, then textbook sums. */
static void brute_force(int64_t M, const double *a, const double *b, double r_min, double r_max, double *corr,
                        int64_t *count)
{
  const int64_t c = (M - 1) / 2, ns = SPF_SHELLS(M);
  const double hi = r_max > 0 && r_max < c ? r_max : (double)c;
  double *va = malloc(sizeof(double) * (size_t)(M * M * M)), *vb = malloc(sizeof(double) * (size_t)(M * M * M));
  for (int64_t k = 0; k < ns; k++) {
    int64_t n = 0;
    for (int64_t z = 0; z < M; z++)
      for (int64_t y = 0; y < M; y++)
        for (int64_t x = 0; x < M; x++) {
          const double r = sqrt((double)((x - c) * (x - c) + (y - c) * (y - c) + (z - c) * (z - c)));
          if (r < r_min || r > hi || llround(r) != k) continue;
          va[n] = a[(z * M + y) * M + x];
          vb[n] = b[(z * M + y) * M + x];
          n++;
        }
    double ma = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) ma += va[i], mb += vb[i];
    ma /= n ? (double)n : 1;
    mb /= n ? (double)n : 1;
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) {
      sab += (va[i] - ma) * (vb[i] - mb);
      saa += (va[i] - ma) * (va[i] - ma);
      sbb += (vb[i] - mb) * (vb[i] - mb);
    }
    corr[k] = n >= 2 && saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
    count[k] = n;
  }
  free(va);
  free(vb);
}

static void shell_correlation_matches_brute_force(void)
{
  const int64_t M = 13, n3 = M * M * M, ns = SPF_SHELLS(M);
  double *a = malloc(sizeof(double) * n3), *b = malloc(sizeof(double) * n3);
  spf_rng r;
  spf_rng_seed(&r, 3, 0);
  for (int64_t i = 0; i < n3; i++) {
    a[i] = 100 * spf_rng_uniform(&r) + 1e3;
    b[i] = 0.5 * a[i] + 30 * spf_rng_normal(&r);
  }
  const double ranges[][2] = {{0, 0}, {0, 100}, {2.3, 4.7}, {1, 3}, {5.5, 0}};
  for (int t = 0; t < 5; t++) {
    double corr[7], want[7];
    int64_t count[7], nwant[7];
    CHECK(spf_shell_correlation(M, a, b, ranges[t][0], ranges[t][1], corr, count) == SPF_OK, "shells");
    brute_force(M, a, b, ranges[t][0], ranges[t][1], want, nwant);
    int same = 1;
    double err = 0;
    for (int64_t k = 0; k < ns; k++) {
      same &= count[k] == nwant[k] && isnan(corr[k]) == isnan(want[k]);
      if (!isnan(want[k])) err = fmax(err, fabs(corr[k] - want[k]));
    }
    CHECK(same, "range [%g, %g]: counts and undefined shells", ranges[t][0], ranges[t][1]);
    CHECK(err <= 1e-13, "range [%g, %g]: max difference %.2e", ranges[t][0], ranges[t][1], err);
  }
  double corr[7];
  int64_t count[7];
  CHECK(spf_shell_correlation(M, a, b, 0, 0, corr, count) == SPF_OK && isnan(corr[0]) && count[0] == 1,
        "shell 0 is one voxel: undefined");
  CHECK(spf_shell_correlation(M, a, a, 0, 0, corr, NULL) == SPF_OK, "a with itself");
  int ones = 1;
  for (int64_t k = 1; k < ns; k++) ones &= fabs(corr[k] - 1) < 1e-14;
  CHECK(ones, "identical volumes correlate 1 on every shell");
  CHECK(spf_shell_correlation(12, a, b, 0, 0, corr, NULL) == SPF_ERR_SIZE, "even M");
  CHECK(spf_shell_correlation(M, NULL, b, 0, 0, corr, NULL) == SPF_ERR_NULL, "NULL");
  CHECK(spf_shell_correlation(M, a, b, -1, 0, corr, NULL) == SPF_ERR_ARG, "negative r_min");
  free(a);
  free(b);
}

static void crossing_and_mean_of_a_curve(void)
{
  const double c1[] = {NAN, 0.9, 0.7, 0.4, 0.6, 0.2};
  CHECK(fabs(spf_shell_crossing(c1, 0, 5, 0.5) - (2 + 0.2 / 0.3)) < 1e-14, "linear between shells 2 and 3: %.6f",
        spf_shell_crossing(c1, 0, 5, 0.5));
  const double c2[] = {NAN, 0.9, NAN, 0.3};
  CHECK(fabs(spf_shell_crossing(c2, 0, 3, 0.5) - (1 + 2 * 0.4 / 0.6)) < 1e-14, "skips an undefined shell: %.6f",
        spf_shell_crossing(c2, 0, 3, 0.5));
  CHECK(spf_shell_crossing(c1, 1, 2, 0.5) == INFINITY, "never below: +inf");
  CHECK(spf_shell_crossing(c1, 3, 5, 0.5) == 3, "first shell already below: its radius");
  CHECK(isnan(spf_shell_crossing(c1, 0, 0, 0.5)), "nothing defined: NAN");
  CHECK(fabs(spf_shell_mean(c1, 0, 5) - (0.9 + 0.7 + 0.4 + 0.6 + 0.2) / 5) < 1e-15, "mean skips NAN");
  CHECK(fabs(spf_shell_mean(c1, 2, 3) - 0.55) < 1e-15, "mean of a range");
  CHECK(isnan(spf_shell_mean(c2, 2, 2)), "mean of nothing: NAN");
}

/* Waasmaier-Kirfel C, N, O (as in test_scattering). */
static const spf_gaussian_form_factor FF[3] = {
    {{2.657506, 1.078079, 1.490909, -4.241070, 0.713791}, {14.780758, 0.776775, 42.086842, -0.000294, 0.239535}, 4.297983},
    {{11.893780, 3.277479, 1.858092, 0.858927, 0.912985}, {0.000158, 10.232723, 30.344690, 0.656065, 0.217287}, -11.804902},
    {{2.960427, 2.508818, 0.637853, 0.722838, 1.142756}, {14.182259, 5.936858, 0.112726, 34.958481, 0.390240}, 0.027014},
};

enum { NA = 300 };

/* An asymmetric lumpy molecule: three blobs of different sizes, about 20 A across. */
static void molecule(double *xyz, int *type)
{
  spf_rng r;
  spf_rng_seed(&r, 11, 0);
  const double centre[3][3] = {{-5, 0, 1}, {4, 3, -1}, {2, -6, 3}}, size[3] = {6, 4, 3};
  for (int a = 0; a < NA; a++) {
    const int b = a % 3;
    for (int k = 0; k < 3; k++) xyz[3 * a + k] = centre[b][k] + size[b] * spf_rng_normal(&r) * 0.5;
    type[a] = (int)(spf_rng_next(&r) % 3);
  }
}

/* A grid whose real-space box, M / (2 s_max) = 2.5 M A, holds the molecule's
 * autocorrelation (about 40 A across) at M >= 15, as reconstruct's grid must: the speckles
 * are then a few voxels wide and the trigonometric interpolation is exact. */
static spf_intensity_grid grid(int64_t M)
{
  const double s_max = 0.2;
  const spf_intensity_grid g = {.M = M, .oversampling = 1, .s_max_inv_angstrom = s_max,
                                .voxel_inv_angstrom = 2 * s_max / (double)M, .corner_inv_angstrom = s_max,
                                .edge_inv_angstrom = 0.7 * s_max, .beamstop_inv_angstrom = 0.01};
  return g;
}

/* mov: the molecule turned by Q, so mov(s) = ref(Q^T s) exactly; the alignment should
 * give R = Q^T. */
static void rotated_copy_is_recovered_within_the_stated_precision(void)
{
  const int64_t M = test_small_scale() ? 15 : 21, n3 = M * M * M, ns = SPF_SHELLS(M);
  double xyz[3 * NA], turned[3 * NA];
  int type[NA];
  molecule(xyz, type);
  const spf_intensity_grid g = grid(M);
  double *ref = malloc(sizeof(double) * n3), *mov = malloc(sizeof(double) * n3), *al = malloc(sizeof(double) * n3);
  double *al2 = malloc(sizeof(double) * n3), corr[16];
  CHECK(spf_intensity_of_molecule(NA, xyz, type, 3, FF, &g, 1, 1e-4, 2, ref) == SPF_OK, "ref");
  spf_rng r;
  spf_rng_seed(&r, 12, 0);
  for (int t = 0; t < 2; t++) {
    double Q[4], R[9], Qc[4];
    spf_random_rotation(&r, Q);
    spf_quat_to_matrix(Q, R);
    for (int a = 0; a < NA; a++)
      for (int k = 0; k < 3; k++)
        turned[3 * a + k] = R[3 * k] * xyz[3 * a] + R[3 * k + 1] * xyz[3 * a + 1] + R[3 * k + 2] * xyz[3 * a + 2];
    CHECK(spf_intensity_of_molecule(NA, turned, type, 3, FF, &g, 1, 1e-4, 2, mov) == SPF_OK, "mov");
    spf_shellcorr_options o;
    spf_shellcorr_default_options(&o);
    o.nthreads = 2;
    if (test_small_scale()) o.n_rotations = 1000;
    spf_shellcorr_result res;
    CHECK(spf_shellcorr_align(M, ref, mov, &o, &res, al) == SPF_OK, "align");
    spf_quat_conjugate(Q, Qc);
    const double err = spf_quat_angle(res.quat, Qc) * 180 / M_PI;
    CHECK(spf_shell_correlation(M, ref, al, o.r_min, 0, corr, NULL) == SPF_OK, "curve");
    const double mean = spf_shell_mean(corr, 0, ns - 1);
    printf("  M = %lld, rotation %.1f deg: found within %.3f deg (last step %.3f deg), score %.4f (search, trilinear: "
           "%.4f), %lld scores\n",
           (long long)M, spf_quat_angle(Q, (double[4]){1, 0, 0, 0}) * 180 / M_PI, err, res.precision_deg, res.score,
           res.search_score, (long long)res.evaluations);
    CHECK(err <= 2.5 * res.precision_deg, "angle error %.3f deg, last step %.3f deg", err, res.precision_deg);
    CHECK(res.score > 0.99 && res.search_score > 0.9, "scores %.4f, %.4f of an exact copy", res.score,
          res.search_score);
    CHECK(res.score == mean, "score %.12f is the mean shell correlation of the aligned copy %.12f", res.score, mean);
    CHECK(res.quat[0] >= 0, "w >= 0");
    /* Trilinear interpolation: no polish, a figure lowered by the smoothing, the angle
     * farther (the trilinear score's optimum; shellcorr.h states what was measured). */
    if (t == 1) {
      spf_shellcorr_result tri;
      o.interpolation = SPF_INTERP_TRILINEAR;
      CHECK(spf_shellcorr_align(M, ref, mov, &o, &tri, al2) == SPF_OK, "align, trilinear");
      const double terr = spf_quat_angle(tri.quat, Qc) * 180 / M_PI;
      CHECK(spf_shell_correlation(M, ref, al2, o.r_min, 0, corr, NULL) == SPF_OK, "curve");
      printf("  trilinear: within %.3f deg, score %.4f\n", terr, tri.score);
      CHECK(terr <= 0.5, "trilinear: angle error %.3f deg", terr);
      CHECK(tri.score > 0.9 && tri.score < res.score && tri.score == spf_shell_mean(corr, 0, ns - 1) &&
                fabs(tri.score - tri.search_score) < 1e-3,
            "trilinear: score %.5f (Fourier %.5f, search %.5f)", tri.score, res.score, tri.search_score);
      o.interpolation = SPF_INTERP_FOURIER;
    }
    /* Two threads and one: the same bits. */
    if (t == 0) {
      spf_shellcorr_result one;
      o.nthreads = 1;
      CHECK(spf_shellcorr_align(M, ref, mov, &o, &one, al2) == SPF_OK, "align, one thread");
      CHECK(!memcmp(one.quat, res.quat, sizeof one.quat) && one.score == res.score &&
                one.evaluations == res.evaluations && !memcmp(al, al2, sizeof(double) * n3),
            "the same result on 1 and 2 threads");
    }
  }
  free(ref);
  free(mov);
  free(al);
  free(al2);
}

/* Reconstruct's intensity I = FFT(u) of a symmetric u on the grid, rotated: the obvious
 * sum I(R^T q) = sum_k u_k cos(2 pi k . R^T q / M) at every voxel. */
static void rotate_intensity_is_the_fourier_sum_at_rotated_points(void)
{
  const int64_t M = 7, n3 = M * M * M, c = (M - 1) / 2;
  double *u = malloc(sizeof(double) * n3), *in = malloc(sizeof(double) * n3), *out = malloc(sizeof(double) * n3);
  spf_rng r;
  spf_rng_seed(&r, 21, 0);
  for (int64_t i = 0; i < n3; i++) u[i] = spf_rng_uniform(&r) - 0.3;
  for (int64_t i = 0; i < n3; i++) u[n3 - 1 - i] = u[i]; /* index a <-> 2c - a: u(-k) = u(k) */
  CHECK(spf_intensity_from_autocorrelation(M, u, in) == SPF_OK, "intensity");
  double q[4], R[9];
  spf_random_rotation(&r, q);
  spf_quat_to_matrix(q, R);
  CHECK(spf_rotate_intensity(M, in, q, out) == SPF_OK, "rotate");
  double err = 0, nrm = 0;
  for (int64_t i = 0; i < n3; i++) {
    const double a[3] = {(double)(i % M - c), (double)((i / M) % M - c), (double)(i / (M * M) - c)};
    double p[3], s = 0;
    for (int k = 0; k < 3; k++) p[k] = R[k] * a[0] + R[3 + k] * a[1] + R[6 + k] * a[2];
    for (int64_t j = 0; j < n3; j++) {
      const double kx = (double)(j % M - c), ky = (double)((j / M) % M - c), kz = (double)(j / (M * M) - c);
      s += u[j] * cos(2 * M_PI * (kx * p[0] + ky * p[1] + kz * p[2]) / (double)M);
    }
    err = fmax(err, fabs(out[i] - s));
    nrm = fmax(nrm, fabs(s));
  }
  printf("  M = %lld: max error %.2e of max %.2e\n", (long long)M, err, nrm);
  CHECK(err <= 1e-9 * nrm, "max error %.2e of %.2e", err, nrm);
  CHECK(spf_rotate_intensity(8, in, q, out) == SPF_ERR_SIZE, "even M");
  CHECK(spf_rotate_intensity(M, NULL, q, out) == SPF_ERR_NULL, "NULL");
  free(u);
  free(in);
  free(out);
}

static void identical_volumes_align_at_the_identity_with_correlation_1(void)
{
  const int64_t M = 15, n3 = M * M * M;
  double xyz[3 * NA];
  int type[NA];
  molecule(xyz, type);
  const spf_intensity_grid g = grid(M);
  double *ref = malloc(sizeof(double) * n3);
  CHECK(spf_intensity_of_molecule(NA, xyz, type, 3, FF, &g, 1, 1e-4, 2, ref) == SPF_OK, "ref");
  spf_shellcorr_options o;
  spf_shellcorr_default_options(&o);
  o.nthreads = 2;
  o.n_rotations = 1000;
  spf_shellcorr_result res;
  CHECK(spf_shellcorr_align(M, ref, ref, &o, &res, NULL) == SPF_OK, "align");
  const double err = spf_quat_angle(res.quat, (double[4]){1, 0, 0, 0}) * 180 / M_PI;
  printf("  identity found within %.3f deg, score 1 - %.2e\n", err, 1 - res.score);
  double *al = malloc(sizeof(double) * n3), dev = 0, nrm = 0;
  CHECK(spf_rotate_intensity(M, ref, (double[4]){1, 0, 0, 0}, al) == SPF_OK, "identity rotation");
  /* The trigonometric interpolant is even: it gives the symmetric part of ref, which the
   * float structure factors leave asymmetric in the last digits. */
  for (int64_t i = 0; i < n3; i++)
    dev = fmax(dev, fabs(al[i] - 0.5 * (ref[i] + ref[n3 - 1 - i]))), nrm = fmax(nrm, fabs(ref[i]));
  CHECK(dev <= 1e-9 * nrm, "rotation by the identity: max change %.2e of %.2e", dev, nrm);
  free(al);
  CHECK(err <= 2 * res.precision_deg, "angle %.3f deg from the identity", err);
  CHECK(res.score > 1 - 1e-4 && res.score <= 1 + 1e-12, "score %.6f", res.score);
  free(ref);
}

/* Additive noise of one variance everywhere: the faint high shells lose most. */
static void noise_lowers_the_high_shells(void)
{
  const int64_t M = 21, n3 = M * M * M, ns = SPF_SHELLS(M);
  double xyz[3 * NA];
  int type[NA];
  molecule(xyz, type);
  const spf_intensity_grid g = grid(M);
  double *ref = malloc(sizeof(double) * n3), *noisy = malloc(sizeof(double) * n3), corr[16], clean[16];
  CHECK(spf_intensity_of_molecule(NA, xyz, type, 3, FF, &g, 1, 1e-4, 2, ref) == SPF_OK, "ref");
  /* Noise at half the mean intensity of the middle shell. */
  double mid = 0;
  int64_t n = 0;
  const int64_t c = (M - 1) / 2;
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < M; x++)
        if (llround(sqrt((double)((x - c) * (x - c) + (y - c) * (y - c) + (z - c) * (z - c)))) == c / 2)
          mid += ref[(z * M + y) * M + x], n++;
  mid /= (double)n;
  spf_rng r;
  spf_rng_seed(&r, 13, 0);
  /* Centrosymmetric noise (voxel i and its mate n3 - 1 - i), as any intensity's. */
  double *noise = malloc(sizeof(double) * n3);
  for (int64_t i = 0; i <= n3 / 2; i++) noise[i] = noise[n3 - 1 - i] = 0.5 * mid * spf_rng_normal(&r);
  for (int64_t i = 0; i < n3; i++) noisy[i] = ref[i] + noise[i];
  CHECK(spf_shell_correlation(M, ref, noisy, 1, 0, corr, NULL) == SPF_OK, "noisy");
  CHECK(spf_shell_correlation(M, ref, ref, 1, 0, clean, NULL) == SPF_OK, "clean");
  const double inner = spf_shell_mean(corr, 1, ns / 3), outer = spf_shell_mean(corr, 2 * ns / 3, ns - 1);
  const double cross = spf_shell_crossing(corr, 1, ns - 1, 0.5);
  printf("  noise at half the middle shell's mean: inner shells %.3f, outer %.3f, 0.5 crossed at shell %.2f of %lld\n", inner,
         outer, cross, (long long)(ns - 1));
  CHECK(spf_shell_mean(clean, 1, ns - 1) == 1, "without noise: 1");
  CHECK(inner > 0.9 && outer < inner - 0.3, "inner %.3f, outer %.3f", inner, outer);
  CHECK(cross > 1 && cross < (double)(ns - 1), "crossing %.2f inside the range", cross);
  /* The same noise on a turned copy: the alignment finds the rotation, and the curve after
   * it is the unturned one's (the search does not fit the noise). */
  double turned[3 * NA], Q[4], R[9], Qc[4], *mov = malloc(sizeof(double) * n3), *al = malloc(sizeof(double) * n3);
  spf_random_rotation(&r, Q);
  spf_quat_to_matrix(Q, R);
  for (int a = 0; a < NA; a++)
    for (int k = 0; k < 3; k++)
      turned[3 * a + k] = R[3 * k] * xyz[3 * a] + R[3 * k + 1] * xyz[3 * a + 1] + R[3 * k + 2] * xyz[3 * a + 2];
  CHECK(spf_intensity_of_molecule(NA, turned, type, 3, FF, &g, 1, 1e-4, 2, mov) == SPF_OK, "turned");
  for (int64_t i = 0; i < n3; i++) mov[i] += noise[i];
  spf_shellcorr_options o;
  spf_shellcorr_default_options(&o);
  o.nthreads = 2;
  spf_shellcorr_result res;
  CHECK(spf_shellcorr_align(M, ref, mov, &o, &res, al) == SPF_OK, "align");
  double after[16];
  CHECK(spf_shell_correlation(M, ref, al, 1, 0, after, NULL) == SPF_OK, "after");
  spf_quat_conjugate(Q, Qc);
  const double err = spf_quat_angle(res.quat, Qc) * 180 / M_PI, outer_after = spf_shell_mean(after, 2 * ns / 3, ns - 1);
  /* The score at the true rotation: the search must do at least as well (noise moves the
   * maximum; it is not the search's to find the truth beyond that). */
  double at_truth[16];
  CHECK(spf_rotate_intensity(M, mov, Qc, al) == SPF_OK && spf_shell_correlation(M, ref, al, 1, 0, at_truth, NULL) == SPF_OK,
        "at the truth");
  const double truth_score = spf_shell_mean(at_truth, 0, ns - 1);
  printf("  noisy turned copy: rotation within %.3f deg, score %.4f (at the true rotation %.4f), outer shells %.3f "
         "(unturned %.3f)\n",
         err, res.score, truth_score, outer_after, outer);
  CHECK(res.score >= truth_score, "score %.5f below the true rotation's %.5f", res.score, truth_score);
  CHECK(err < 5, "noisy copy: rotation within %.3f deg", err);
  CHECK(fabs(outer_after - outer) < 0.1, "outer shells %.3f after alignment, %.3f unturned", outer_after, outer);
  free(mov);
  free(al);
  free(noise);
  free(ref);
  free(noisy);
}

static void bad_input_is_refused(void)
{
  const int64_t M = 7, n3 = M * M * M;
  double *a = malloc(sizeof(double) * n3), *b = malloc(sizeof(double) * n3);
  for (int64_t i = 0; i < n3; i++) a[i] = b[i] = (double)(i % 5);
  spf_shellcorr_result res;
  spf_shellcorr_options o;
  spf_shellcorr_default_options(&o);
  o.n_rotations = 50;
  CHECK(spf_shellcorr_align(8, a, b, &o, &res, NULL) == SPF_ERR_SIZE, "even M");
  CHECK(spf_shellcorr_align(M, a, NULL, &o, &res, NULL) == SPF_ERR_NULL, "NULL");
  o.n_rotations = 0;
  CHECK(spf_shellcorr_align(M, a, b, &o, &res, NULL) == SPF_ERR_OPTION, "no rotations");
  o.n_rotations = 50;
  o.r_min = -1;
  CHECK(spf_shellcorr_align(M, a, b, &o, &res, NULL) == SPF_ERR_OPTION, "negative r_min");
  o.r_min = 1;
  o.interpolation = 2;
  CHECK(spf_shellcorr_align(M, a, b, &o, &res, NULL) == SPF_ERR_OPTION, "unknown interpolation");
  o.interpolation = SPF_INTERP_FOURIER;
  b[17] = NAN;
  CHECK(spf_shellcorr_align(M, a, b, &o, &res, NULL) == SPF_ERR_DATA, "NaN voxel");
  b[17] = 0;
  for (int64_t i = 0; i < n3; i++) a[i] = 4;
  CHECK(spf_shellcorr_align(M, a, b, &o, &res, NULL) == SPF_ERR_DATA, "constant reference");
  free(a);
  free(b);
}

int main(void)
{
  RUN_TEST(shell_correlation_matches_brute_force);
  RUN_TEST(crossing_and_mean_of_a_curve);
  RUN_TEST(rotate_intensity_is_the_fourier_sum_at_rotated_points);
  RUN_TEST(rotated_copy_is_recovered_within_the_stated_precision);
  RUN_TEST(identical_volumes_align_at_the_identity_with_correlation_1);
  RUN_TEST(noise_lowers_the_high_shells);
  RUN_TEST(bad_input_is_refused);
  return test_summary();
}
