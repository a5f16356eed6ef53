/* Detector geometry against independent formulas. */
#include <math.h>

#include "spinifel/spinifel.h"
#include "spinifel/detector.h"
#include "testing.h"

static void geometry_matches_independent_formulas(void)
{
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = 65;
  g.ny = 41;
  spf_detector *d;
  CHECK(spf_detector_make(&g, &d) == SPF_OK, "make");
  {
    spf_detector_geometry g0;
    spf_detector *d0;
    spf_detector_default_geometry(&g0);
    spf_detector_make(&g0, &d0);
    printf("  default detector: edge %.2f A, corner %.2f A\n", d0->resolution_edge_m * 1e10,
           d0->resolution_corner_m * 1e10);
    CHECK(d0->resolution_edge_m > 9e-10 && d0->resolution_edge_m < 13e-10, "default reaches ~11 A at the edge");
    spf_detector_free(d0);
  }
  const double lambda = SPF_HC_EV_M / g.photon_energy_ev;
  CHECK(fabs(d->wavelength_m - lambda) < 1e-20, "wavelength");
  const int64_t centre = 20 * 65 + 32;
  CHECK(d->s_norm[centre] == 0, "s = 0 at the beam");
  double worst = 0, total_solid = 0;
  for (int64_t iy = 0; iy < g.ny; iy++)
    for (int64_t ix = 0; ix < g.nx; ix++) {
      int64_t p = iy * g.nx + ix;
      double x = (ix - 32.0) * g.pixel_size_m, y = (iy - 20.0) * g.pixel_size_m;
      double two_theta = atan(sqrt(x * x + y * y) / g.distance_m);
      worst = fmax(worst, fabs(d->s_norm[p] - 2 * sin(two_theta / 2) / lambda) * lambda);
      total_solid += d->solid_angle[p];
      /* mirrored pixel has mirrored s */
      int64_t q = (40 - iy) * g.nx + (64 - ix);
      worst = fmax(worst, fabs(d->s[3 * p] + d->s[3 * q]) * lambda + fabs(d->s[3 * p + 2] - d->s[3 * q + 2]) * lambda);
    }
  CHECK(worst < 1e-12, "|s| = 2 sin(theta)/lambda and mirror symmetry: %.2e", worst);
  /* Exact solid angle of a rectangle a x b centred on the beam at distance D. */
  double a = 0.5 * g.nx * g.pixel_size_m, b = 0.5 * g.ny * g.pixel_size_m, D = g.distance_m;
  double exact = 4 * asin(a * b / sqrt((a * a + D * D) * (b * b + D * D)));
  CHECK(fabs(total_solid - exact) < 1e-4 * exact, "solid angle %.6e vs %.6e", total_solid, exact);
  CHECK(d->resolution_corner_m < d->resolution_edge_m, "corner resolves finer than edge");
  printf("  edge resolution %.2f A, corner %.2f A, s_max %.4f 1/A\n", d->resolution_edge_m * 1e10,
         d->resolution_corner_m * 1e10, d->s_max * 1e-10);
  spf_detector_free(d);
}

static void beam_stop_and_binning(void)
{
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = g.ny = 32;
  g.beamstop_inv_m = 0.02e10;
  spf_detector *d, *b;
  spf_detector_make(&g, &d);
  int64_t masked = 0, expect = 0;
  for (int64_t p = 0; p < d->n_pixels; p++) {
    masked += !d->mask[p];
    expect += d->s_norm[p] < g.beamstop_inv_m;
  }
  CHECK(masked == expect && masked > 0, "beam stop masks %lld pixels, expected %lld", (long long)masked, (long long)expect);
  CHECK(spf_detector_bin2(d, &b) == SPF_OK && b->g.nx == 16 && b->g.ny == 16, "bin2 halves the sizes");
  float *img = malloc(sizeof(float) * 1024), out[256];
  double sum_in = 0, sum_out = 0, om_in = 0, om_out = 0;
  for (int i = 0; i < 1024; i++) img[i] = (float)(i % 7), sum_in += img[i], om_in += d->solid_angle[i];
  spf_detector_bin2_images(d, 1, img, out);
  for (int i = 0; i < 256; i++) sum_out += out[i], om_out += b->solid_angle[i];
  CHECK(sum_in == sum_out, "binning keeps total counts");
  CHECK(fabs(om_in - om_out) < 1e-12 * om_in, "binning keeps total solid angle");
  int64_t bmasked = 0;
  for (int64_t p = 0; p < b->n_pixels; p++) bmasked += !b->mask[p];
  CHECK(bmasked >= masked / 4, "masks propagate");
  free(img);
  spf_detector_free(d);
  spf_detector_free(b);
}

static void bad_geometry_is_refused(void)
{
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  spf_detector *d;
  g.nx = 0;
  CHECK(spf_detector_make(&g, &d) == SPF_ERR_SIZE, "zero pixels");
  spf_detector_default_geometry(&g);
  g.distance_m = -1;
  CHECK(spf_detector_make(&g, &d) == SPF_ERR_ARG, "negative distance");
  spf_detector_default_geometry(&g);
  g.photon_energy_ev = NAN;
  CHECK(spf_detector_make(&g, &d) == SPF_ERR_ARG, "NaN energy");
  CHECK(spf_detector_make(NULL, &d) == SPF_ERR_NULL, "NULL geometry");
}

/* Poisson counts summed over many images on a 40 x 30 detector with an unmasked beam stop
 * (a disk of radius 4 that sees nothing), one dead pixel, a masked corner, and a dark
 * high-q corner where the expected sum is below one photon: only the beam stop and the
 * dead pixel are flagged, the masked and the dark pixels are not. */
static void dead_pixels_are_the_beam_stop_and_the_dead_one(void)
{
  const int64_t nx = 40, ny = 30, n = nx * ny;
  double *sums = malloc(sizeof(double) * n);
  uint8_t *mask = malloc(n), *dead = malloc(n), *truth = calloc(n, 1);
  spf_rng r;
  spf_rng_seed(&r, 4, 0);
  for (int64_t y = 0; y < ny; y++)
    for (int64_t x = 0; x < nx; x++) {
      const int64_t p = y * nx + x;
      const double d2 = (double)((x - 20) * (x - 20) + (y - 15) * (y - 15));
      double mean = 2000.0 / (1 + d2 / 4); /* bright centre, falling outwards */
      mask[p] = !(x < 3 && y < 3);         /* a masked corner */
      if (x >= 36 && y >= 26) mean = 0.01; /* a dark corner: zeros expected */
      if (d2 <= 16) mean = 0, truth[p] = 1; /* the beam stop */
      if (x == 30 && y == 10) mean = 0, truth[p] = 1; /* a dead pixel */
      sums[p] = (double)spf_rng_poisson(&r, mean);
    }
  int64_t count = -1;
  CHECK(spf_dead_pixels(nx, ny, mask, sums, log((double)n) + log(1e6), dead, &count) == SPF_OK, "dead pixels");
  int64_t wrong = 0, expected = 0;
  for (int64_t p = 0; p < n; p++) {
    wrong += dead[p] != truth[p];
    expected += truth[p];
  }
  CHECK(wrong == 0 && count == expected, "%lld pixels flagged wrongly; %lld flagged, %lld expected", (long long)wrong,
        (long long)count, (long long)expected);
  CHECK(spf_dead_pixels(0, ny, mask, sums, 1, dead, NULL) == SPF_ERR_SIZE, "empty detector");
  CHECK(spf_dead_pixels(nx, ny, mask, sums, -1, dead, NULL) == SPF_ERR_ARG, "negative threshold");
  free(sums); free(mask); free(dead); free(truth);
}

int main(void)
{
  RUN_TEST(dead_pixels_are_the_beam_stop_and_the_dead_one);
  RUN_TEST(geometry_matches_independent_formulas);
  RUN_TEST(beam_stop_and_binning);
  RUN_TEST(bad_geometry_is_refused);
  return test_summary();
}
