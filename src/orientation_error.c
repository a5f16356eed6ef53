/* The orientation error against the truth (see orientation_error.h). */
#include "spinifel/orientation_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/rotation.h"

static const double ZFLIP[4] = {0, 0, 0, 1}; /* 180 degrees about the beam (z) */

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Angles (degrees) of every image for the global rotation c, each image taking the
 * nearer of its found orientation and its Friedel flip; qf_used gets that choice. */
static void frame_angles(int64_t n, const double *qt, const double *qf, const double c[4], double *ang,
                         double *qf_used)
{
  for (int64_t i = 0; i < n; i++) {
    double pred[4], flip[4];
    spf_quat_multiply(qt + 4 * i, c, pred);
    /* Rz(180) R gives the same image as R up to the Ewald sphere's curvature (Friedel
     * symmetry): either is a correct answer. */
    spf_quat_multiply(ZFLIP, qf + 4 * i, flip);
    const double a = spf_quat_angle(pred, qf + 4 * i), b = spf_quat_angle(pred, flip);
    ang[i] = fmin(a, b) * 180.0 / M_PI;
    if (qf_used) memcpy(qf_used + 4 * i, a <= b ? qf + 4 * i : flip, sizeof(double) * 4);
  }
}

static double median_of(int64_t n, const double *ang, double *tmp, double *p90)
{
  memcpy(tmp, ang, sizeof(double) * (size_t)n);
  qsort(tmp, (size_t)n, sizeof(double), cmp_double);
  if (p90) *p90 = tmp[(int64_t)(0.9 * (double)(n - 1))];
  return tmp[n / 2];
}

double spf_orientation_error_median(int64_t n, const double *qt, const double *qf, double *p90)
{
  if (n < 1) return NAN;
  double *ang = malloc(sizeof(double) * (size_t)n);
  const double med = ang ? spf_orientation_errors(n, qt, qf, ang, p90) : NAN;
  free(ang);
  return med;
}

double spf_orientation_errors(int64_t n, const double *qt, const double *qf, double *ang, double *p90)
{
  if (n < 1 || !ang) return NAN;
  double *tmp = malloc(sizeof(double) * (size_t)n), *used = malloc(sizeof(double) * 4 * (size_t)n);
  if (!tmp || !used) {
    free(tmp); free(used);
    return NAN;
  }
  /* Candidate global rotations: the relative rotation of up to 200 images. */
  double best = INFINITY, c[4] = {1, 0, 0, 0};
  const int64_t step = n > 200 ? n / 200 : 1;
  for (int64_t j = 0; j < n; j += step) {
    double inv[4], cj[4];
    spf_quat_conjugate(qt + 4 * j, inv);
    spf_quat_multiply(inv, qf + 4 * j, cj);
    frame_angles(n, qt, qf, cj, ang, NULL);
    double med = median_of(n, ang, tmp, NULL);
    if (med < best) {
      best = med;
      memcpy(c, cj, sizeof c);
    }
  }
  /* Fit the frame: the chordal mean of the relative rotations of the images within twice
   * the median, so one image's error does not set everyone's. */
  for (int it = 0; it < 3; it++) {
    frame_angles(n, qt, qf, c, ang, used);
    double med = median_of(n, ang, tmp, NULL), acc[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
      if (ang[i] > 2 * med + 1e-9) continue;
      double inv[4], rel[4];
      spf_quat_conjugate(qt + 4 * i, inv);
      spf_quat_multiply(inv, used + 4 * i, rel);
      const double sgn = rel[0] * c[0] + rel[1] * c[1] + rel[2] * c[2] + rel[3] * c[3] < 0 ? -1 : 1;
      for (int k = 0; k < 4; k++) acc[k] += sgn * rel[k];
    }
    double len = sqrt(acc[0] * acc[0] + acc[1] * acc[1] + acc[2] * acc[2] + acc[3] * acc[3]);
    if (len > 0)
      for (int k = 0; k < 4; k++) c[k] = acc[k] / len;
  }
  frame_angles(n, qt, qf, c, ang, NULL);
  double med = median_of(n, ang, tmp, p90);
  free(tmp);
  free(used);
  return med;
}
