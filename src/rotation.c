/* Quaternions, random rotations and the reference orientation grid (see rotation.h). */
#include "spinifel/rotation.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "spinifel/error.h"

void spf_quat_to_matrix(const double q[4], double r[9])
{
  const double w = q[0], x = q[1], y = q[2], z = q[3];
  r[0] = 1 - 2 * (y * y + z * z);
  r[1] = 2 * (x * y - w * z);
  r[2] = 2 * (x * z + w * y);
  r[3] = 2 * (x * y + w * z);
  r[4] = 1 - 2 * (x * x + z * z);
  r[5] = 2 * (y * z - w * x);
  r[6] = 2 * (x * z - w * y);
  r[7] = 2 * (y * z + w * x);
  r[8] = 1 - 2 * (x * x + y * y);
}

void spf_quat_normalize(double q[4])
{
  double n = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  for (int i = 0; i < 4; i++) q[i] /= n;
}

void spf_matrix_to_quat(const double r[9], double q[4])
{
  /* Shepperd: take the largest of 4w^2, 4x^2, 4y^2, 4z^2 for a stable square root. */
  const double t = r[0] + r[4] + r[8];
  const double c[4] = {1 + t, 1 + r[0] - r[4] - r[8], 1 - r[0] + r[4] - r[8], 1 - r[0] - r[4] + r[8]};
  int k = 0;
  for (int i = 1; i < 4; i++)
    if (c[i] > c[k]) k = i;
  const double s = 2 * sqrt(c[k]);
  if (k == 0) {
    q[0] = s / 4;
    q[1] = (r[7] - r[5]) / s;
    q[2] = (r[2] - r[6]) / s;
    q[3] = (r[3] - r[1]) / s;
  } else if (k == 1) {
    q[0] = (r[7] - r[5]) / s;
    q[1] = s / 4;
    q[2] = (r[1] + r[3]) / s;
    q[3] = (r[2] + r[6]) / s;
  } else if (k == 2) {
    q[0] = (r[2] - r[6]) / s;
    q[1] = (r[1] + r[3]) / s;
    q[2] = s / 4;
    q[3] = (r[5] + r[7]) / s;
  } else {
    q[0] = (r[3] - r[1]) / s;
    q[1] = (r[2] + r[6]) / s;
    q[2] = (r[5] + r[7]) / s;
    q[3] = s / 4;
  }
  if (q[0] < 0)
    for (int i = 0; i < 4; i++) q[i] = -q[i];
  spf_quat_normalize(q);
}

void spf_quat_multiply(const double a[4], const double b[4], double o[4])
{
  const double w = a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
  const double x = a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2];
  const double y = a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1];
  const double z = a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0];
  o[0] = w;
  o[1] = x;
  o[2] = y;
  o[3] = z;
}

void spf_quat_conjugate(const double q[4], double o[4])
{
  o[0] = q[0];
  o[1] = -q[1];
  o[2] = -q[2];
  o[3] = -q[3];
}

double spf_quat_angle(const double a[4], const double b[4])
{
  double d = fabs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]);
  return 2 * acos(d > 1 ? 1 : d);
}

void spf_random_rotation(spf_rng *r, double q[4])
{
  const double u1 = spf_rng_uniform(r), u2 = 2 * M_PI * spf_rng_uniform(r), u3 = 2 * M_PI * spf_rng_uniform(r);
  const double a = sqrt(1 - u1), b = sqrt(u1);
  q[0] = b * cos(u3);
  q[1] = a * sin(u2);
  q[2] = a * cos(u2);
  q[3] = b * sin(u3);
  if (q[0] < 0)
    for (int i = 0; i < 4; i++) q[i] = -q[i];
}

int spf_orientation_grid(int64_t n, int64_t first, int64_t count, double *q)
{
  if (n < 1 || first < 0 || count < 0 || first > n - count) return SPF_ERR_SIZE;
  if (count > 0 && !q) return SPF_ERR_NULL;
  /* Super-Fibonacci constants: phi = sqrt(2) and psi, the real root of psi^4 = psi + 4. */
  const double phi = sqrt(2.0), psi = 1.533751168755204288118041;
  for (int64_t j = 0; j < count; j++) {
    const double s = (double)(first + j) + 0.5;
    const double t = s / (double)n, r = sqrt(t), rr = sqrt(1 - t);
    const double alpha = 2 * M_PI * fmod(s / phi, 1.0), beta = 2 * M_PI * fmod(s / psi, 1.0);
    double *o = q + 4 * j;
    o[0] = r * sin(alpha);
    o[1] = r * cos(alpha);
    o[2] = rr * sin(beta);
    o[3] = rr * cos(beta);
    if (o[0] < 0)
      for (int i = 0; i < 4; i++) o[i] = -o[i];
  }
  return SPF_OK;
}

double spf_orientation_grid_covering_radius(int64_t n, int64_t n_probe, uint64_t seed, int nthreads)
{
  if (n < 1 || n_probe < 1) return NAN;
  const int64_t chunk = 4096;
  double *probe = malloc(sizeof(double) * 4 * (size_t)n_probe), *best = malloc(sizeof(double) * (size_t)n_probe);
  double *grid = malloc(sizeof(double) * 4 * (size_t)chunk);
  if (!probe || !best || !grid) {
    free(probe); free(best); free(grid);
    return NAN;
  }
  for (int64_t p = 0; p < n_probe; p++) {
    spf_rng r;
    spf_rng_seed(&r, seed, (uint64_t)p);
    spf_random_rotation(&r, probe + 4 * p);
    best[p] = 0;
  }
  /* Grid in chunks: the largest |<q, g>| per probe is its nearest grid rotation. */
  for (int64_t f = 0; f < n; f += chunk) {
    const int64_t c = n - f < chunk ? n - f : chunk;
    spf_orientation_grid(n, f, c, grid);
#pragma omp parallel for num_threads(nthreads > 0 ? nthreads : omp_get_max_threads()) schedule(static)
    for (int64_t p = 0; p < n_probe; p++) {
      const double *a = probe + 4 * p;
      double b = best[p];
      for (int64_t g = 0; g < c; g++) {
        const double *q = grid + 4 * g;
        double d = fabs(a[0] * q[0] + a[1] * q[1] + a[2] * q[2] + a[3] * q[3]);
        b = d > b ? d : b;
      }
      best[p] = b;
    }
  }
  double worst = 1;
  for (int64_t p = 0; p < n_probe; p++) worst = best[p] < worst ? best[p] : worst;
  free(probe); free(best); free(grid);
  return 2 * acos(worst > 1 ? 1 : worst);
}

double spf_orientation_ball_radius(int64_t n)
{
  if (n < 1) return NAN;
  /* (theta - sin theta) / pi grows from 0 to 1 on [0, pi]: bisection. */
  double lo = 0, hi = M_PI, target = 1.0 / (double)n;
  for (int it = 0; it < 200; it++) {
    double mid = 0.5 * (lo + hi);
    if ((mid - sin(mid)) / M_PI < target) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}
