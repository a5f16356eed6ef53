/* Intensity alignment benchmark: the phantom's true intensity against the same molecule
 * turned by a random rotation (exact: the atoms are turned), with optional noise, aligned
 * by spf_shellcorr_align.
 *
 *   shellcorr_bench [--M 31] [--threads 2] [--rotations 4000] [--candidates 8] [--steps 7]
 *                   [--noise 0] [--trials 3] [--pixels 128] [--atoms 2000]
 *
 * Default detector (128 x 128 of 300 um at 0.1 m, 6 keV), oversampling 1. --noise S
 * multiplies every voxel and its Friedel mate by (1 + S g), g standard normal (the noise
 * of the bright centre then rings through the Fourier interpolation: try --interpolation
 * trilinear). Prints, per trial, the
 * seconds, the scores computed, the angle between the recovered rotation and the truth,
 * the score, and the mean shell correlation against the exact ref. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/spinifel.h"
#include "spinifel/shellcorr.h"

int main(int argc, char **argv)
{
  int64_t M = 31, rotations = 4000, atoms = 2000, pixels = 128;
  int threads = 2, candidates = 8, steps = 7, trials = 3;
  double noise = 0;
  int interp = SPF_INTERP_FOURIER;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--M")) M = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rotations")) rotations = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--candidates")) candidates = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--noise")) noise = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--trials")) trials = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--pixels")) pixels = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--atoms")) atoms = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--interpolation"))
      interp = !strcmp(argv[i + 1], "trilinear") ? SPF_INTERP_TRILINEAR : SPF_INTERP_FOURIER;
    else {
      fprintf(stderr, "usage: shellcorr_bench [--M 31] [--threads 2] [--rotations 4000] [--candidates 8] [--steps 7] "
                      "[--noise 0] [--trials 3] [--pixels 128] [--atoms 2000] [--interpolation fourier|trilinear]\n");
      return 2;
    }
  }
  printf("shellcorr_bench --M %lld --threads %d --rotations %lld --candidates %d --steps %d --noise %g --trials %d "
         "--pixels %lld --atoms %lld --interpolation %s\n",
         (long long)M, threads, (long long)rotations, candidates, steps, noise, trials, (long long)pixels,
         (long long)atoms, interp == SPF_INTERP_TRILINEAR ? "trilinear" : "fourier");
  spf_detector_geometry geo;
  spf_detector_default_geometry(&geo);
  geo.nx = geo.ny = pixels;
  spf_detector *det = NULL;
  spf_molecule *mol = NULL;
  if (spf_detector_make(&geo, &det) || spf_molecule_phantom(1, atoms, &mol)) return 1;
  spf_molecule_centre(mol);
  spf_intensity_grid g;
  if (spf_intensity_grid_make(M, 1, det->n_pixels, det->s, det->mask, &g)) return 1;
  const int64_t n = mol->n_atoms, n3 = M * M * M, ns = SPF_SHELLS(M);
  int *type = malloc(sizeof(int) * (size_t)n);
  spf_gaussian_form_factor ff[128];
  int nty = 0;
  double *ref = malloc(sizeof(double) * (size_t)n3), *mov = malloc(sizeof(double) * (size_t)n3);
  double *al = malloc(sizeof(double) * (size_t)n3), *xyz = malloc(sizeof(double) * 3 * (size_t)n);
  double *corr = malloc(sizeof(double) * (size_t)ns);
  if (!type || !ref || !mov || !al || !xyz || !corr || spf_molecule_scattering_types(mol, type, ff, &nty)) return 1;
  if (spf_intensity_of_molecule(n, mol->xyz, type, nty, ff, &g, 1, 1e-4, threads, ref)) return 1;
  printf("grid %lld^3, voxel %.5f 1/A, corner %.4f 1/A\n", (long long)M, g.voxel_inv_angstrom, g.corner_inv_angstrom);
  spf_rng rng;
  spf_rng_seed(&rng, 7, 0);
  double worst = 0, total_t = 0;
  for (int t = 0; t < trials; t++) {
    double Q[4], R[9];
    spf_random_rotation(&rng, Q);
    spf_quat_to_matrix(Q, R);
    /* Atoms turned by Q: mov(s) = ref(Q^T s), so R = Q^T aligns mov onto ref. */
    for (int64_t a = 0; a < n; a++)
      for (int k = 0; k < 3; k++)
        xyz[3 * a + k] = R[3 * k] * mol->xyz[3 * a] + R[3 * k + 1] * mol->xyz[3 * a + 1] + R[3 * k + 2] * mol->xyz[3 * a + 2];
    if (spf_intensity_of_molecule(n, xyz, type, nty, ff, &g, 1, 1e-4, threads, mov)) return 1;
    /* Centrosymmetric noise, as an intensity's: voxel i and its mate n3 - 1 - i. */
    for (int64_t i = 0; noise > 0 && i <= n3 / 2; i++) {
      const double f = 1 + noise * spf_rng_normal(&rng);
      mov[i] *= f;
      if (n3 - 1 - i != i) mov[n3 - 1 - i] *= f;
    }
    spf_shellcorr_options o;
    spf_shellcorr_default_options(&o);
    o.n_rotations = rotations;
    o.n_candidates = candidates;
    o.refine_steps = steps;
    o.nthreads = threads;
    o.interpolation = interp;
    spf_shellcorr_result res;
    double t0 = omp_get_wtime();
    int rc = spf_shellcorr_align(M, ref, mov, &o, &res, al);
    const double dt = omp_get_wtime() - t0;
    if (rc) {
      fprintf(stderr, "shellcorr_bench: %s\n", spf_strerror(rc));
      return 1;
    }
    double Qc[4];
    spf_quat_conjugate(Q, Qc);
    const double err = spf_quat_angle(res.quat, Qc) * 180 / M_PI;
    spf_shell_correlation(M, ref, al, 1, 0, corr, NULL);
    printf("trial %d: %.2f s, %lld scores, angle error %.3f deg (last step %.3f deg), score %.4f, mean shell "
           "correlation %.4f\n",
           t, dt, (long long)res.evaluations, err, res.precision_deg, res.score, spf_shell_mean(corr, 1, ns - 1));
    if (getenv("SHELLCORR_FOURIER")) {
      /* Trigonometric interpolation: u = cos transform of mov / M^3, sliced at R^T q. */
      double *u = malloc(sizeof(double) * (size_t)n3), *s = malloc(sizeof(double) * 3 * (size_t)n3);
      float *img = malloc(sizeof(float) * (size_t)n3);
      spf_intensity_from_autocorrelation(M, mov, u);
      for (int64_t i = 0; i < n3; i++) u[i] /= (double)n3;
      const int64_t c = (M - 1) / 2;
      int64_t np = 0;
      for (int64_t i = 0; i < n3; i++) {
        const int64_t x = i % M - c, y = (i / M) % M - c, z = i / (M * M) - c;
        if (x * x + y * y + z * z > c * c) continue;
        s[3 * np] = (double)x, s[3 * np + 1] = (double)y, s[3 * np + 2] = (double)z;
        np++;
      }
      spf_slicer *sl = NULL;
      double Rm[9];
      spf_quat_to_matrix(res.quat, Rm);
      if (spf_slicer_make(M, np, s, 0.5 * (double)M, 1, 1e-6, 1, threads, &sl) || spf_slicer_set_volume(sl, u) ||
          spf_slicer_slice(sl, 1, Rm, img))
        return 1;
      for (int64_t i = 0; i < n3; i++) al[i] = 0;
      for (int64_t p = 0; p < np; p++)
        al[((int64_t)s[3 * p + 2] + c) * M * M + ((int64_t)s[3 * p + 1] + c) * M + (int64_t)s[3 * p] + c] = img[p];
      spf_slicer_free(sl);
      free(u);
      free(s);
      free(img);
      spf_shell_correlation(M, ref, al, 1, 0, corr, NULL);
      printf("  Fourier interpolation: mean shell correlation %.4f\n", spf_shell_mean(corr, 1, ns - 1));
    }
    if (getenv("SHELLCORR_CURVE"))
      for (int64_t k = 1; k < ns; k++) printf("  shell %lld: %.4f\n", (long long)k, corr[k]);
    worst = fmax(worst, err);
    total_t += dt;
  }
  printf("mean %.2f s per alignment, worst angle error %.3f deg\n", total_t / trials, worst);
  return 0;
}
