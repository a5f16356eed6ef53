/* The intensity grid: where reconstruct's intensity voxels sit in reciprocal space, the
 * data's radii, and a molecule's intensity on the grid against the direct sum. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "testing.h"

/* Voxel (a1, a2, a3) of the intensity of u is the slicer's I at s = 2 m s_max os / M,
 * m = a - (M-1)/2, x fastest: the mapping intensity.h states, checked against slicing,
 * which defines the model images that reconstruct fits to the data. */
static void intensity_voxels_are_the_slicer_at_2_m_smax_os_over_M(void)
{
  const int64_t M = 9, n3 = M * M * M, c = (M - 1) / 2, np = 200;
  const double s_max = 1.7, os = 1.3; /* any unit */
  double *u = malloc(sizeof(double) * (size_t)n3), *in = malloc(sizeof(double) * (size_t)n3);
  double *s = malloc(sizeof(double) * 3 * np);
  int64_t *idx = malloc(sizeof(int64_t) * np);
  float *img = malloc(sizeof(float) * np);
  spf_rng r;
  spf_rng_seed(&r, 5, 0);
  /* A real u with no symmetry: a transposed or mirrored mapping would not match. */
  for (int64_t i = 0; i < n3; i++) u[i] = spf_rng_uniform(&r) - 0.4;
  CHECK(spf_intensity_from_autocorrelation(M, u, in) == SPF_OK, "intensity");
  for (int64_t p = 0; p < np; p++) {
    int64_t m[3];
    do {
      for (int k = 0; k < 3; k++) m[k] = (int64_t)(spf_rng_next(&r) % (uint64_t)M) - c;
    } while (m[0] * m[0] + m[1] * m[1] + m[2] * m[2] > c * c); /* the slicer's |s| <= s_max os */
    if (p == 0) m[0] = 1, m[1] = 2, m[2] = 3; /* one point that tells the axes apart */
    for (int k = 0; k < 3; k++) s[3 * p + k] = 2.0 * (double)m[k] * s_max * os / (double)M;
    idx[p] = ((m[2] + c) * M + (m[1] + c)) * M + (m[0] + c);
  }
  spf_slicer *sl = NULL;
  const double eye[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  CHECK(spf_slicer_make(M, np, s, s_max, os, 1e-6, 1, 1, &sl) == SPF_OK, "slicer");
  CHECK(sl && spf_slicer_set_volume(sl, u) == SPF_OK && spf_slicer_slice(sl, 1, eye, img) == SPF_OK, "slice");
  double err = 0, norm = 0;
  for (int64_t p = 0; p < np; p++) {
    err = fmax(err, fabs(img[p] - in[idx[p]]));
    norm = fmax(norm, fabs(in[idx[p]]));
  }
  printf("  M = %lld, oversampling %.1f: max |slice - intensity voxel| = %.2e of max %.2e\n", (long long)M, os, err,
         norm);
  CHECK(err <= 1e-5 * norm, "max error %g of %g", err, norm);
  spf_slicer_free(sl);
  free(u);
  free(in);
  free(s);
  free(idx);
  free(img);
}

/* The radii from a detector, against their definitions computed directly: a centred
 * detector with a beam stop and a larger one with the beam off centre. */
static void grid_radii_from_a_detector(void)
{
  for (int t = 0; t < 2; t++) {
    spf_detector_geometry geo;
    spf_detector_default_geometry(&geo);
    geo.nx = t ? 64 : 24;
    geo.ny = t ? 64 : 20;
    geo.beamstop_inv_m = t ? 0 : 0.005e10;
    if (t) geo.beam_center_x = 20.3;
    spf_detector *d = NULL;
    CHECK(spf_detector_make(&geo, &d) == SPF_OK, "detector");
    if (!d) return;
    spf_intensity_grid g;
    CHECK(spf_intensity_grid_make(31, 1.5, d->n_pixels, d->s, d->mask, &g) == SPF_OK, "grid");
    /* The nearest border pixel: the edge's lower bound. */
    double smax = 0, smin = INFINITY, border = INFINITY;
    int64_t n_valid = 0;
    for (int64_t iy = 0; iy < geo.ny; iy++)
      for (int64_t ix = 0; ix < geo.nx; ix++) {
        const int64_t p = iy * geo.nx + ix;
        const double r = d->s_norm[p] * 1e-10;
        if (!d->mask[p]) continue;
        smax = fmax(smax, r), smin = fmin(smin, r), n_valid++;
        if (ix == 0 || iy == 0 || ix == geo.nx - 1 || iy == geo.ny - 1) border = fmin(border, r);
      }
    const double rel = 1e-12;
    CHECK(fabs(g.s_max_inv_angstrom - smax) <= rel * smax && fabs(g.s_max_inv_angstrom - 1e-10 * d->s_max) <= rel * smax,
          "s_max %.9g, direct %.9g, detector %.9g", g.s_max_inv_angstrom, smax, 1e-10 * d->s_max);
    CHECK(g.corner_inv_angstrom == g.s_max_inv_angstrom, "corner = s_max");
    /* A wedge of angle w (about sqrt(valid pixels) of them) holding the foot of the nearest
     * border reaches at most 1 / cos w times farther. */
    const double w = 2 * M_PI / (n_valid < 64 ? 8 : floor(sqrt((double)n_valid)));
    printf("  %lld x %lld detector: edge %.5f 1/A, nearest border pixel %.5f, corner %.5f\n", (long long)geo.nx,
           (long long)geo.ny, g.edge_inv_angstrom, border, smax);
    CHECK(g.edge_inv_angstrom >= border && g.edge_inv_angstrom <= border / cos(w), "edge %.6g, nearest border %.6g",
          g.edge_inv_angstrom, border);
    CHECK(fabs(g.beamstop_inv_angstrom - smin) <= rel * smin && smin >= (t ? 0 : 0.005), "beam stop %.6g, direct %.6g",
          g.beamstop_inv_angstrom, smin);
    CHECK(fabs(g.voxel_inv_angstrom - 2 * smax * 1.5 / 31) <= rel * smax, "voxel %.9g", g.voxel_inv_angstrom);
    /* Reconstruct's density voxel: 1 / (M voxel_inv) = 1 / (2 s_max os). */
    CHECK(fabs(1.0 / (31 * g.voxel_inv_angstrom) - 1.0 / (2 * smax * 1.5)) <= 1e-12 / smax, "density voxel");
    /* The pixels in another order (an EMC detector file has no rows): the same figures. */
    const int64_t np = d->n_pixels;
    double *s2 = malloc(sizeof(double) * 3 * np);
    uint8_t *m2 = malloc(np);
    for (int64_t p = 0; p < np; p++) {
      const int64_t q = (p * 7919) % np; /* a permutation: 7919 is prime, np is not a multiple */
      memcpy(s2 + 3 * q, d->s + 3 * p, sizeof(double) * 3);
      m2[q] = d->mask[p];
    }
    spf_intensity_grid g2;
    CHECK(spf_intensity_grid_make(31, 1.5, np, s2, m2, &g2) == SPF_OK && !memcmp(&g, &g2, sizeof g),
          "the same grid whatever the pixel order");
    free(s2);
    free(m2);
    if (t == 0) {
      CHECK(fabs(spf_intensity_grid_index_radius(&g, spf_intensity_grid_inv_angstrom(&g, 7.25)) - 7.25) < 1e-12,
            "radius round trip");
      CHECK(spf_intensity_grid_make(30, 1, np, d->s, d->mask, &g) == SPF_ERR_SIZE, "even M");
      CHECK(spf_intensity_grid_make(31, 1, 0, d->s, d->mask, &g) == SPF_ERR_SIZE, "no pixels");
      CHECK(spf_intensity_grid_make(31, 0.5, np, d->s, d->mask, &g) == SPF_ERR_ARG, "oversampling");
      CHECK(spf_intensity_grid_make(31, 1, np, NULL, d->mask, &g) == SPF_ERR_NULL, "NULL s");
      uint8_t *none = calloc((size_t)np, 1);
      CHECK(spf_intensity_grid_make(31, 1, np, d->s, none, &g) == SPF_ERR_DATA, "no valid pixel");
      free(none);
    }
    spf_detector_free(d);
  }
}

/* Waasmaier-Kirfel C, N, O (as in test_scattering). */
static const spf_gaussian_form_factor FF[3] = {
    {{2.657506, 1.078079, 1.490909, -4.241070, 0.713791}, {14.780758, 0.776775, 42.086842, -0.000294, 0.239535}, 4.297983},
    {{11.893780, 3.277479, 1.858092, 0.858927, 0.912985}, {0.000158, 10.232723, 30.344690, 0.656065, 0.217287}, -11.804902},
    {{2.960427, 2.508818, 0.637853, 0.722838, 1.142756}, {14.182259, 5.936858, 0.112726, 34.958481, 0.390240}, 0.027014},
};

/* The truth intensity by NUFFT against the direct sum over atoms at a few voxels (the
 * cube's corners among them): |F| = sqrt(I / scale) within the scattering tolerance in
 * relative l2 (||F'| - |F|| <= |F' - F|, so the structure factors' bound carries over). */
static void molecule_intensity_matches_direct_sum(void)
{
  enum { NA = 60, NV = 120 };
  double xyz[3 * NA];
  int type[NA];
  spf_rng r;
  spf_rng_seed(&r, 9, 0);
  for (int a = 0; a < NA; a++) {
    for (int k = 0; k < 3; k++) xyz[3 * a + k] = 12 * (spf_rng_uniform(&r) - 0.5) + (k == 0 ? 2 : 0);
    type[a] = (int)(spf_rng_next(&r) % 3);
  }
  const int64_t M = 15, n3 = M * M * M, c = (M - 1) / 2;
  const spf_intensity_grid g = {.M = M, .oversampling = 1, .s_max_inv_angstrom = 0.3,
                                .voxel_inv_angstrom = 2 * 0.3 / 15.0, .corner_inv_angstrom = 0.3,
                                .edge_inv_angstrom = 0.2, .beamstop_inv_angstrom = 0.01};
  double *in = malloc(sizeof(double) * (size_t)n3);
  int64_t at[NV];
  float h[3 * NV];
  for (int v = 0; v < NV; v++) {
    at[v] = v < 8 ? ((v & 4 ? M - 1 : 0) * M + (v & 2 ? M - 1 : 0)) * M + (v & 1 ? M - 1 : 0)
                  : (int64_t)(spf_rng_next(&r) % (uint64_t)n3);
    const int64_t a1 = at[v] % M, a2 = (at[v] / M) % M, a3 = at[v] / (M * M);
    h[v] = (float)(g.voxel_inv_angstrom * (double)(a1 - c));
    h[NV + v] = (float)(g.voxel_inv_angstrom * (double)(a2 - c));
    h[2 * NV + v] = (float)(g.voxel_inv_angstrom * (double)(a3 - c));
  }
  double complex F[NV];
  spf_scattering_direct(NA, xyz, type, FF, NV, h, h + NV, h + 2 * NV, F);
  const double tols[] = {1e-3, 1e-4}, scale = 2.5;
  for (int t = 0; t < 2; t++) {
    CHECK(spf_intensity_of_molecule(NA, xyz, type, 3, FF, &g, scale, tols[t], 2, in) == SPF_OK, "intensity");
    double err = 0, nrm = 0;
    for (int v = 0; v < NV; v++) {
      const double a = sqrt(in[at[v]] / scale), b = cabs(F[v]);
      err += (a - b) * (a - b);
      nrm += b * b;
    }
    printf("  tol %.0e: relative l2 error of |F| at %d voxels %.2e\n", tols[t], NV, sqrt(err / nrm));
    CHECK(sqrt(err / nrm) <= tols[t], "tol %.0e: error %.2e", tols[t], sqrt(err / nrm));
  }
  spf_intensity_grid bad = g;
  bad.M = 14;
  CHECK(spf_intensity_of_molecule(NA, xyz, type, 3, FF, &bad, 1, 1e-4, 1, in) == SPF_ERR_SIZE, "even M");
  CHECK(spf_intensity_of_molecule(NA, xyz, type, 3, FF, &g, 1, 1e-9, 1, in) == SPF_ERR_TOLERANCE, "tolerance");
  CHECK(spf_intensity_of_molecule(NA, NULL, type, 3, FF, &g, 1, 1e-4, 1, in) == SPF_ERR_NULL, "NULL atoms");
  free(in);
}

int main(void)
{
  RUN_TEST(intensity_voxels_are_the_slicer_at_2_m_smax_os_over_M);
  RUN_TEST(grid_radii_from_a_detector);
  RUN_TEST(molecule_intensity_matches_direct_sum);
  return test_summary();
}
