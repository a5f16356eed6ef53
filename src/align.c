/* Alignment of two densities (see align.h). */
#include "spinifel/align.h"

#include <complex.h> /* before fftw3.h: fftw_complex is then double complex */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "fftw_threads.h"
#include "spinifel/error.h"
#include "spinifel/rotation.h"

void spf_align_default_options(spf_align_options *o)
{
  if (!o) return;
  o->n_rotations = 4000;
  o->refine_steps = 7;
  o->nthreads = 0;
  o->start[0] = 1;
  o->start[1] = o->start[2] = o->start[3] = 0;
}

/* out(x) = in(sg R^T (x - c_out) + c_in), trilinear, zero outside. */
static void rotate_about(int64_t M, const double *in, const double q[4], int invert, const double c_in[3],
                         const double c_out[3], double *out)
{
  double R[9];
  spf_quat_to_matrix(q, R);
  const double sg = invert ? -1.0 : 1.0;
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < M; x++) {
        const double p[3] = {x - c_out[0], y - c_out[1], z - c_out[2]};
        double s[3];
        /* R^T p, then the hand. */
        for (int k = 0; k < 3; k++) s[k] = sg * (R[k] * p[0] + R[3 + k] * p[1] + R[6 + k] * p[2]) + c_in[k];
        const double fx = floor(s[0]), fy = floor(s[1]), fz = floor(s[2]);
        const int64_t ix = (int64_t)fx, iy = (int64_t)fy, iz = (int64_t)fz;
        const double ax = s[0] - fx, ay = s[1] - fy, az = s[2] - fz;
        double v = 0;
        for (int dz = 0; dz < 2; dz++)
          for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++) {
              const int64_t X = ix + dx, Y = iy + dy, Z = iz + dz;
              if (X < 0 || Y < 0 || Z < 0 || X >= M || Y >= M || Z >= M) continue;
              v += (dx ? ax : 1 - ax) * (dy ? ay : 1 - ay) * (dz ? az : 1 - az) * in[(Z * M + Y) * M + X];
            }
        out[(z * M + y) * M + x] = v;
      }
}

void spf_rotate_volume(int64_t M, const double *in, const double q[4], int invert, double *out)
{
  const double c = 0.5 * (double)(M - 1), cc[3] = {c, c, c};
  rotate_about(M, in, q, invert, cc, cc, out);
}

/* Centre of mass of the positive part (grid coordinates); the grid centre if none. */
static void centre_of_mass(int64_t M, const double *v, double com[3])
{
  double s = 0, a[3] = {0, 0, 0};
  for (int64_t z = 0; z < M; z++)
    for (int64_t y = 0; y < M; y++)
      for (int64_t x = 0; x < M; x++) {
        const double d = v[(z * M + y) * M + x];
        if (d <= 0) continue;
        s += d;
        a[0] += d * x;
        a[1] += d * y;
        a[2] += d * z;
      }
  for (int k = 0; k < 3; k++) com[k] = s > 0 ? a[k] / s : 0.5 * (double)(M - 1);
}

/* Per-thread work space: the rotated volume and its spectrum. */
typedef struct {
  double *vol;
  fftw_complex *spec;
} work_t;

typedef struct {
  int64_t M, n, nspec;
  fftw_plan fwd, inv;
  fftw_complex *ref_spec; /* FFT of the mean-free reference */
  double ref_norm;
  double com_ref[3], com_mov[3]; /* rotations turn mov about its centre of mass onto ref's */
} ctx_t;

/* Best correlation over circular shifts of mov rotated by q (and inverted). */
static double score(const ctx_t *c, work_t *w, const double *mov, const double q[4], int inv, int shift[3])
{
  const int64_t M = c->M, n = c->n;
  rotate_about(M, mov, q, inv, c->com_mov, c->com_ref, w->vol);
  double mean = 0, nrm = 0;
  for (int64_t i = 0; i < n; i++) mean += w->vol[i];
  mean /= (double)n;
  for (int64_t i = 0; i < n; i++) {
    w->vol[i] -= mean;
    nrm += w->vol[i] * w->vol[i];
  }
  if (!(nrm > 0)) return -1;
  fftw_execute_dft_r2c(c->fwd, w->vol, w->spec);
  /* c(s) = sum_x mov(x) ref(x + s): the mov shifted by +s matches ref best. */
  for (int64_t k = 0; k < c->nspec; k++) w->spec[k] = conj(w->spec[k]) * c->ref_spec[k];
  fftw_execute_dft_c2r(c->inv, w->spec, w->vol);
  int64_t arg = 0;
  for (int64_t i = 1; i < n; i++)
    if (w->vol[i] > w->vol[arg]) arg = i;
  const int64_t sx = arg % M, sy = (arg / M) % M, sz = arg / (M * M);
  shift[0] = (int)(sx > M / 2 ? sx - M : sx);
  shift[1] = (int)(sy > M / 2 ? sy - M : sy);
  shift[2] = (int)(sz > M / 2 ? sz - M : sz);
  return w->vol[arg] / (double)n / sqrt(nrm * c->ref_norm);
}

int spf_align(int64_t M, const double *ref, const double *mov, const spf_align_options *opts, spf_align_result *r,
              double *aligned)
{
  if (!ref || !mov || !r) return SPF_ERR_NULL;
  if (M < 3 || M % 2 == 0) return SPF_ERR_SIZE;
  spf_align_options o;
  if (opts) o = *opts;
  else spf_align_default_options(&o);
  if (o.n_rotations < 0 || o.refine_steps < 0 || o.nthreads < 0) return SPF_ERR_OPTION;
  if (o.n_rotations == 0) {
    const double s = sqrt(o.start[0] * o.start[0] + o.start[1] * o.start[1] + o.start[2] * o.start[2] +
                          o.start[3] * o.start[3]);
    if (!(s > 0) || !isfinite(s)) return SPF_ERR_OPTION;
    for (int k = 0; k < 4; k++) o.start[k] /= s;
  }
  const int nt = o.nthreads > 0 ? o.nthreads : omp_get_max_threads();
  ctx_t c = {.M = M, .n = M * M * M, .nspec = M * M * (M / 2 + 1)};
  work_t *w = calloc((size_t)nt, sizeof *w);
  /* The rotations searched: the grid, or the one start (both hands each). */
  const int64_t n_rot = o.n_rotations > 0 ? o.n_rotations : 1;
  double *q = malloc(sizeof(double) * 4 * (size_t)n_rot), *rm = fftw_malloc(sizeof(double) * (size_t)c.n);
  c.ref_spec = fftw_malloc(sizeof(fftw_complex) * (size_t)c.nspec);
  int rc = w && q && rm && c.ref_spec ? SPF_OK : SPF_ERR_ALLOC;
  for (int t = 0; !rc && t < nt; t++) {
    w[t].vol = fftw_malloc(sizeof(double) * (size_t)c.n);
    w[t].spec = fftw_malloc(sizeof(fftw_complex) * (size_t)c.nspec);
    if (!w[t].vol || !w[t].spec) rc = SPF_ERR_ALLOC;
  }
  if (!rc) {
    /* One-thread plans, executed concurrently on each thread's own arrays (new-array
     * execution is thread-safe; all arrays come from fftw_malloc, same alignment). */
    spf_fftw_threads_init();
    fftw_plan_with_nthreads(1);
    c.fwd = fftw_plan_dft_r2c_3d((int)M, (int)M, (int)M, w[0].vol, w[0].spec, FFTW_ESTIMATE);
    c.inv = fftw_plan_dft_c2r_3d((int)M, (int)M, (int)M, w[0].spec, w[0].vol, FFTW_ESTIMATE);
    if (!c.fwd || !c.inv) rc = SPF_ERR_ALLOC;
  }
  if (!rc) {
    double mean = 0;
    for (int64_t i = 0; i < c.n; i++) mean += ref[i];
    mean /= (double)c.n;
    c.ref_norm = 0;
    for (int64_t i = 0; i < c.n; i++) {
      rm[i] = ref[i] - mean;
      c.ref_norm += rm[i] * rm[i];
    }
    centre_of_mass(M, ref, c.com_ref);
    centre_of_mass(M, mov, c.com_mov);
    if (!(c.ref_norm > 0)) rc = SPF_ERR_DATA;
    else fftw_execute_dft_r2c(c.fwd, rm, c.ref_spec);
  }
  if (!rc) {
    if (o.n_rotations > 0) spf_orientation_grid(o.n_rotations, 0, o.n_rotations, q);
    else memcpy(q, o.start, sizeof o.start);
    const int64_t nc = 2 * n_rot;
    double *coarse = malloc(sizeof(double) * (size_t)nc);
    if (!coarse) rc = SPF_ERR_ALLOC;
    /* Coarse search over both hands. */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16)
    for (int64_t j = 0; j < nc; j++) {
      int sh[3];
      if (coarse) coarse[j] = score(&c, &w[omp_get_thread_num()], mov, q + 4 * (j % n_rot), (int)(j / n_rot), sh);
    }
    /* Refine the best few: sharp densities make the coarse grid's best point a poor
     * guide to the best basin. Ties keep the lowest index (a fixed result). */
    enum { TOP = 8 };
    int64_t top[TOP];
    int ntop = 0;
    for (int64_t j = 0; coarse && j < nc; j++) {
      int k = ntop < TOP ? ntop++ : TOP;
      if (k == TOP && !(coarse[j] > coarse[top[TOP - 1]])) continue;
      if (k == TOP) k = TOP - 1;
      while (k > 0 && coarse[j] > coarse[top[k - 1]]) {
        top[k] = top[k - 1];
        k--;
      }
      top[k] = j;
    }
    double best = -2, cur[4] = {1, 0, 0, 0};
    int inv = 0, shift[3] = {0, 0, 0};
    for (int t = 0; t < ntop; t++) {
      double qc[4];
      memcpy(qc, q + 4 * (top[t] % n_rot), sizeof qc);
      const int ic = (int)(top[t] / n_rot);
      int shc[3];
      double bc = score(&c, &w[0], mov, qc, ic, shc);
      /* Local refinement: rotations by +-step about x, y, z, halving the step. */
      double step = 6.0 * M_PI / 180;
      for (int it = 0; it < o.refine_steps; it++) {
        int improved = 1;
        while (improved) {
          improved = 0;
          double cand[6][4], sc[6];
          int csh[6][3];
#pragma omp parallel for num_threads(nt < 6 ? nt : 6)
          for (int k = 0; k < 6; k++) {
            double d[4] = {cos(0.5 * step), 0, 0, 0};
            d[1 + k / 2] = (k % 2 ? -1 : 1) * sin(0.5 * step);
            spf_quat_multiply(d, qc, cand[k]);
            sc[k] = score(&c, &w[omp_get_thread_num()], mov, cand[k], ic, csh[k]);
          }
          int kb = -1;
          for (int k = 0; k < 6; k++)
            if (sc[k] > bc + 1e-12 && (kb < 0 || sc[k] > sc[kb])) kb = k;
          if (kb >= 0) {
            bc = sc[kb];
            memcpy(qc, cand[kb], sizeof qc);
            memcpy(shc, csh[kb], sizeof shc);
            improved = 1;
          }
        }
        step *= 0.5;
      }
      if (bc > best) {
        best = bc;
        memcpy(cur, qc, sizeof cur);
        inv = ic;
        memcpy(shift, shc, sizeof shift);
      }
    }
    free(coarse);
    r->correlation = best;
    memcpy(r->quat, cur, sizeof cur);
    r->inverted = inv;
    memcpy(r->shift, shift, sizeof shift);
    if (aligned) {
      rotate_about(M, mov, cur, inv, c.com_mov, c.com_ref, w[0].vol);
      for (int64_t z = 0; z < M; z++)
        for (int64_t y = 0; y < M; y++)
          for (int64_t x = 0; x < M; x++) {
            const int64_t X = ((x + shift[0]) % M + M) % M, Y = ((y + shift[1]) % M + M) % M,
                          Z = ((z + shift[2]) % M + M) % M;
            aligned[(Z * M + Y) * M + X] = w[0].vol[(z * M + y) * M + x];
          }
    }
  }
  if (c.fwd) fftw_destroy_plan(c.fwd);
  if (c.inv) fftw_destroy_plan(c.inv);
  for (int t = 0; w && t < nt; t++) {
    fftw_free(w[t].vol);
    fftw_free(w[t].spec);
  }
  free(w);
  free(q);
  fftw_free(rm);
  fftw_free(c.ref_spec);
  return rc;
}
