/* The diffraction simulator (see simulate.h). */
#include "spinifel/simulate.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/random.h"
#include "spinifel/rotation.h"

/* Random streams of image i: orientation, then fluence and noise. */
#define STREAM_ORIENTATION(i) (2 * (uint64_t)(i))
#define STREAM_NOISE(i) (2 * (uint64_t)(i) + 1)

void spf_simulate_default_options(spf_simulate_options *o)
{
  if (!o) return;
  o->n_images = 0;
  o->seed = 0;
  o->fluence = 1e24;
  o->fluence_jitter = 0.0;
  o->background = 0.0;
  o->poisson = 1;
  o->batch_images = 64;
  o->nthreads = 0;
}

void spf_simulate_orientation(uint64_t seed, int64_t image, double q[4])
{
  spf_rng r;
  spf_rng_seed(&r, seed, STREAM_ORIENTATION(image));
  spf_random_rotation(&r, q);
}

int spf_simulate_images(spf_scattering *sc, const spf_sim_pixels *px, const spf_simulate_options *o,
                        spf_image_sink sink, void *sink_ctx, spf_progress_fn progress,
                        void *progress_ctx, spf_simulate_timing *timing)
{
  if (!sc || !px || !o || !sink) return SPF_ERR_NULL;
  if (o->n_images < 0 || px->n_pixels < 1 || o->batch_images < 1) return SPF_ERR_SIZE;
  if (!px->s_inv_m || !px->weight_sr || !px->mask) return SPF_ERR_NULL;
  if (!(o->fluence >= 0 && isfinite(o->fluence)) || !(o->fluence_jitter >= 0 && o->fluence_jitter < 10) ||
      !(o->background >= 0 && isfinite(o->background)))
    return SPF_ERR_ARG;
  const int nthreads = o->nthreads > 0 ? o->nthreads : omp_get_max_threads();
  const int64_t np = px->n_pixels, batch = o->batch_images;

  /* The valid pixels, in 1/Angstrom, and their photon scale r_e^2 * weight. */
  int64_t nv = 0;
  for (int64_t p = 0; p < np; p++) nv += px->mask[p] != 0;
  int64_t *valid = malloc(sizeof(int64_t) * (size_t)(nv + 1));
  double *s = malloc(sizeof(double) * 3 * (size_t)(nv + 1));
  float *h = malloc(sizeof(float) * 3 * (size_t)(batch * nv + 1));
  float complex *F = malloc(sizeof(float complex) * (size_t)(batch * nv + 1));
  float *images = malloc(sizeof(float) * (size_t)(batch * np));
  double *quats = malloc(sizeof(double) * 4 * (size_t)batch);
  int rc = SPF_OK;
  if (!valid || !s || !h || !F || !images || !quats) rc = SPF_ERR_ALLOC;
  for (int64_t p = 0, v = 0; !rc && p < np; p++) {
    if (!px->mask[p]) continue;
    valid[v] = p;
    for (int k = 0; k < 3; k++) s[3 * v + k] = px->s_inv_m[3 * p + k] * 1e-10;
    v++;
  }
  const double re2 = SPF_R_ELECTRON_M * SPF_R_ELECTRON_M;
  spf_simulate_timing t = {0, 0, 0};

  for (int64_t first = 0; !rc && first < o->n_images; first += batch) {
    const int64_t count = o->n_images - first < batch ? o->n_images - first : batch;
    const int64_t npts = count * nv;
    double t0 = omp_get_wtime();
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t i = 0; i < count; i++) {
      double *q = quats + 4 * i, rot[9];
      spf_simulate_orientation(o->seed, first + i, q);
      spf_quat_to_matrix(q, rot);
      /* h = R^T s: the molecule's frame sees the rotated pixel. */
      for (int64_t v = 0; v < nv; v++) {
        const double *sv = s + 3 * v;
        for (int k = 0; k < 3; k++)
          h[k * npts + i * nv + v] = (float)(rot[k] * sv[0] + rot[3 + k] * sv[1] + rot[6 + k] * sv[2]);
      }
    }
    rc = spf_scattering_eval(sc, npts, h, h + npts, h + 2 * npts, F);
    if (rc) break;
    double t1 = omp_get_wtime();
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t i = 0; i < count; i++) {
      spf_rng r;
      spf_rng_seed(&r, o->seed, STREAM_NOISE(first + i));
      double fluence = o->fluence;
      if (o->fluence_jitter > 0) {
        /* Log-normal with mean 1 and the requested relative spread. */
        double sg = sqrt(log(1.0 + o->fluence_jitter * o->fluence_jitter));
        fluence *= exp(sg * spf_rng_normal(&r) - 0.5 * sg * sg);
      }
      float *img = images + i * np;
      memset(img, 0, sizeof(float) * (size_t)np);
      for (int64_t v = 0; v < nv; v++) {
        const int64_t p = valid[v];
        const float complex f = F[i * nv + v];
        double mean = fluence * re2 * px->weight_sr[p] * (double)(crealf(f) * crealf(f) + cimagf(f) * cimagf(f)) +
                      o->background;
        img[p] = o->poisson ? (float)spf_rng_poisson(&r, mean) : (float)mean;
      }
    }
    double t2 = omp_get_wtime();
    rc = sink(sink_ctx, first, count, images, quats);
    double t3 = omp_get_wtime();
    t.slicing += t1 - t0;
    t.noise += t2 - t1;
    t.output += t3 - t2;
    if (progress && !rc) progress(progress_ctx, first + count, o->n_images);
  }
  if (timing) *timing = t;
  free(valid);
  free(s);
  free(h);
  free(F);
  free(images);
  free(quats);
  return rc;
}
