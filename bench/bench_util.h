/* Small helpers the benchmarks share (each bench source is its own program). */
#ifndef SPINIFEL_BENCH_UTIL_H
#define SPINIFEL_BENCH_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <omp.h>

#include "spinifel/spinifel.h"

/* Peak resident memory of this process in MiB (NaN if unknown). */
static inline double peak_rss_mib(void)
{
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru)) return NAN;
  return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is KiB on Linux */
}

/* A whole decimal number in [lo, hi]: 0 on success, 1 otherwise. */
static inline int parse_int64(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
  char *end;
  long long x = strtoll(v, &end, 10);
  if (end == v || *end || x < lo || x > hi) return 1;
  *out = (int64_t)x;
  return 0;
}

/* A number in the open interval (lo, hi): 0 on success, 1 otherwise. */
static inline int parse_double(const char *v, double lo, double hi, double *out)
{
  char *end;
  const double x = strtod(v, &end);
  if (end == v || *end || !(x > lo && x < hi)) return 1;
  *out = x;
  return 0;
}

/* Simulated images and their orientations into whole arrays (an spf_image_sink). */
typedef struct {
  float *images;
  double *quats;
  int64_t np;
} bench_sink_ctx;

static inline int bench_sink(void *ctx, int64_t first, int64_t count, const float *images, const double *quats)
{
  bench_sink_ctx *s = ctx;
  memcpy(s->images + (size_t)(first * s->np), images, sizeof(float) * (size_t)(count * s->np));
  memcpy(s->quats + 4 * (size_t)first, quats, sizeof(double) * 4 * (size_t)count);
  return 0;
}

/* n noise-free images of the built-in phantom (atoms atoms, centred) on det, seed 1, and
 * their orientations, into images (n * n_pixels) and quats (n * 4). t_sf (may be NULL):
 * seconds making the structure factors; tm (may be NULL): the simulation's split. */
static inline int bench_phantom_images(const spf_detector *det, int64_t atoms, int64_t n, int nt, float *images,
                                       double *quats, double *t_sf, spf_simulate_timing *tm)
{
  spf_molecule *mol = NULL;
  int rc = spf_molecule_phantom(1, atoms, &mol);
  if (rc) return rc;
  spf_molecule_centre(mol);
  int *type = malloc(sizeof(int) * (size_t)mol->n_atoms);
  double *pw = malloc(sizeof(double) * (size_t)det->n_pixels);
  spf_gaussian_form_factor ff[128];
  int n_types = 0;
  spf_scattering *sc = NULL;
  rc = type && pw ? spf_molecule_scattering_types(mol, type, ff, &n_types) : SPF_ERR_ALLOC;
  const double t0 = omp_get_wtime();
  if (!rc)
    rc = spf_scattering_make(mol->n_atoms, mol->xyz, type, n_types, ff, det->s_max * 1e-10 * (1 + 1e-6), 1e-4, nt, &sc);
  if (t_sf) *t_sf = omp_get_wtime() - t0;
  if (!rc) {
    spf_simulate_options so;
    spf_simulate_default_options(&so);
    so.n_images = n;
    so.seed = 1;
    so.poisson = 0;
    so.nthreads = nt;
    for (int64_t p = 0; p < det->n_pixels; p++) pw[p] = det->solid_angle[p] * det->polarization[p];
    spf_sim_pixels px = {det->n_pixels, det->s, pw, det->mask};
    bench_sink_ctx sctx = {images, quats, det->n_pixels};
    rc = spf_simulate_images(sc, &px, &so, bench_sink, &sctx, NULL, NULL, tm);
  }
  spf_scattering_free(sc);
  spf_molecule_free(mol);
  free(type);
  free(pw);
  return rc;
}

#endif
