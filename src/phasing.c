/* Phase retrieval by ER / HIO / RAAR with shrinkwrap (see phasing.h). */
#include "spinifel/phasing.h"

#include <complex.h> /* before fftw3.h: fftw_complex is then double complex */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "fftw_threads.h"
#include "spinifel/error.h"
#include "spinifel/random.h"

void spf_phase_default_options(spf_phase_options *o)
{
  if (!o) return;
  o->n_cycles = 10;
  o->er_before = 50;
  o->hio = 25;
  o->er_after = 50;
  o->use_raar = 0;
  o->beta = 0.3;
  o->shrinkwrap_sigma = 1.0;
  o->shrinkwrap_threshold = 0.05;
  o->free_outside_ball = 0;
  o->support_threshold = 0.01;
  o->seed = 0;
  o->nthreads = 0;
}

/* Work space: a real grid and its half spectrum, with forward and inverse plans. */
typedef struct {
  int64_t m, n, nspec;
  double *real;
  fftw_complex *spec;
  fftw_plan fwd, inv;
} fft_ws;

static int ws_make(fft_ws *w, int64_t m, int nthreads)
{
  w->m = m;
  w->n = m * m * m;
  w->nspec = m * m * (m / 2 + 1);
  w->real = fftw_malloc(sizeof(double) * (size_t)w->n);
  w->spec = fftw_malloc(sizeof(fftw_complex) * (size_t)w->nspec);
  if (!w->real || !w->spec) return SPF_ERR_ALLOC;
  spf_fftw_threads_init();
  /* FFTW's planner is not thread-safe (its execution is): phasings may run side by side
   * (reconstruct's ensemble of phasings), so their plans are made and destroyed one at a
   * time. ESTIMATE: plans are made per call and must not depend on timing. */
#pragma omp critical(spf_phasing_planner)
  {
    fftw_plan_with_nthreads(spf_fft_threads(w->n, nthreads));
    w->fwd = fftw_plan_dft_r2c_3d((int)m, (int)m, (int)m, w->real, w->spec, FFTW_ESTIMATE);
    w->inv = fftw_plan_dft_c2r_3d((int)m, (int)m, (int)m, w->spec, w->real, FFTW_ESTIMATE);
  }
  return w->fwd && w->inv ? SPF_OK : SPF_ERR_FFTW;
}

static void ws_free(fft_ws *w)
{
#pragma omp critical(spf_phasing_planner)
  {
    if (w->fwd) fftw_destroy_plan(w->fwd);
    if (w->inv) fftw_destroy_plan(w->inv);
  }
  fftw_free(w->real);
  fftw_free(w->spec);
}

/* Frequency of index j of an M-point transform. */
static int64_t freq(int64_t j, int64_t m) { return j <= (m - 1) / 2 ? j : j - m; }

/* Copy a centred grid (lag 0 at (M-1)/2) to FFT order (lag 0 at 0), or back. */
static void shift_grid(int64_t m, const double *in, double *out, int to_fft)
{
  const int64_t c = (m - 1) / 2;
  for (int64_t i3 = 0; i3 < m; i3++)
    for (int64_t i2 = 0; i2 < m; i2++)
      for (int64_t i1 = 0; i1 < m; i1++) {
        int64_t s3 = (i3 + (to_fft ? m - c : c)) % m, s2 = (i2 + (to_fft ? m - c : c)) % m,
                s1 = (i1 + (to_fft ? m - c : c)) % m;
        out[(s3 * m + s2) * m + s1] = in[(i3 * m + i2) * m + i1];
      }
}

int spf_autocorrelation(int64_t m, const double *rho, double *u, int nthreads)
{
  if (!rho || !u) return SPF_ERR_NULL;
  if (m < 1 || m % 2 == 0) return SPF_ERR_SIZE;
  fft_ws w = {0};
  int rc = ws_make(&w, m, nthreads > 0 ? nthreads : omp_get_max_threads());
  if (!rc) {
    memcpy(w.real, rho, sizeof(double) * (size_t)w.n);
    fftw_execute(w.fwd);
    for (int64_t i = 0; i < w.nspec; i++) w.spec[i] = creal(w.spec[i] * conj(w.spec[i])) / (double)w.n;
    fftw_execute(w.inv);
    shift_grid(m, w.real, u, 0);
  }
  ws_free(&w);
  return rc;
}

/* Blur |rho| with a Gaussian of sigma voxels (periodic), into w->real. */
static void blur_abs(fft_ws *w, const double *rho, double sigma)
{
  const int64_t m = w->m, mh = m / 2 + 1;
  for (int64_t i = 0; i < w->n; i++) w->real[i] = fabs(rho[i]);
  fftw_execute(w->fwd);
  const double k = 2.0 * M_PI * M_PI * sigma * sigma / ((double)m * (double)m);
  for (int64_t j3 = 0; j3 < m; j3++)
    for (int64_t j2 = 0; j2 < m; j2++)
      for (int64_t j1 = 0; j1 < mh; j1++) {
        double q2 = (double)(freq(j3, m) * freq(j3, m) + freq(j2, m) * freq(j2, m) + j1 * j1);
        w->spec[(j3 * m + j2) * mh + j1] *= exp(-k * q2) / (double)w->n;
      }
  fftw_execute(w->inv);
}

/* Roll rho and support so that the centre of mass of rho's positive part is at the grid
 * centre (nearest voxel). */
static void recentre(int64_t m, double *rho, uint8_t *support, double *tmp_d, uint8_t *tmp_s)
{
  double s = 0, cm[3] = {0, 0, 0};
  const int64_t c = (m - 1) / 2;
  /* Circular mean per axis, so densities wrapped across the edge are handled. */
  double cs[3][2] = {{0, 0}, {0, 0}, {0, 0}};
  for (int64_t i3 = 0; i3 < m; i3++)
    for (int64_t i2 = 0; i2 < m; i2++)
      for (int64_t i1 = 0; i1 < m; i1++) {
        double v = rho[(i3 * m + i2) * m + i1];
        if (v <= 0) continue;
        int64_t idx[3] = {i1, i2, i3};
        for (int d = 0; d < 3; d++) {
          double a = 2.0 * M_PI * (double)idx[d] / (double)m;
          cs[d][0] += v * cos(a);
          cs[d][1] += v * sin(a);
        }
        s += v;
      }
  if (s <= 0) return;
  int64_t shift[3];
  for (int d = 0; d < 3; d++) {
    cm[d] = atan2(cs[d][1], cs[d][0]) * (double)m / (2.0 * M_PI);
    shift[d] = ((c - (int64_t)llround(cm[d])) % m + m) % m;
  }
  const int64_t n = m * m * m;
  memcpy(tmp_d, rho, sizeof(double) * (size_t)n);
  memcpy(tmp_s, support, (size_t)n);
  for (int64_t i3 = 0; i3 < m; i3++)
    for (int64_t i2 = 0; i2 < m; i2++)
      for (int64_t i1 = 0; i1 < m; i1++) {
        int64_t d = (((i3 + shift[2]) % m) * m + (i2 + shift[1]) % m) * m + (i1 + shift[0]) % m;
        rho[d] = tmp_d[(i3 * m + i2) * m + i1];
        support[d] = tmp_s[(i3 * m + i2) * m + i1];
      }
}

int spf_phase(int64_t m, const double *u, const spf_phase_options *opts, const double *rho_start,
              const uint8_t *support_start, double *rho, uint8_t *support_out, double *u_model,
              spf_phase_cycle *cycles)
{
  if (!u || !rho) return SPF_ERR_NULL;
  if (m < 3 || m % 2 == 0) return SPF_ERR_SIZE;
  spf_phase_options o;
  if (opts) o = *opts;
  else spf_phase_default_options(&o);
  if (o.n_cycles < 0 || o.er_before < 0 || o.hio < 0 || o.er_after < 0 || !(o.beta > 0 && o.beta < 1) ||
      !(o.shrinkwrap_sigma >= 0) || !(o.shrinkwrap_threshold > 0 && o.shrinkwrap_threshold < 1) ||
      !(o.support_threshold > 0 && o.support_threshold < 1))
    return SPF_ERR_OPTION;
  const int nthreads = o.nthreads > 0 ? o.nthreads : omp_get_max_threads();
  const int64_t n = m * m * m, mh = m / 2 + 1, r = (m - 1) / 2, c = r;
  fft_ws w = {0};
  double *amp = malloc(sizeof(double) * (size_t)(m * m * mh));
  uint8_t *measured = malloc((size_t)(m * m * mh));
  uint8_t *support = malloc((size_t)n), *tmp_s = malloc((size_t)n);
  double *tmp_d = malloc(sizeof(double) * (size_t)n), *proj = malloc(sizeof(double) * (size_t)n);
  int rc = (amp && measured && support && tmp_s && tmp_d && proj) ? ws_make(&w, m, nthreads) : SPF_ERR_ALLOC;
  if (rc) goto done;

  /* Measured amplitudes from the autocorrelation's transform. */
  shift_grid(m, u, w.real, 1);
  fftw_execute(w.fwd);
  for (int64_t j3 = 0; j3 < m; j3++)
    for (int64_t j2 = 0; j2 < m; j2++)
      for (int64_t j1 = 0; j1 < mh; j1++) {
        int64_t q3 = freq(j3, m), q2 = freq(j2, m), i = (j3 * m + j2) * mh + j1;
        double in = creal(w.spec[i]);
        amp[i] = sqrt(in > 0 ? in : 0);
        measured[i] = (!o.free_outside_ball || q3 * q3 + q2 * q2 + j1 * j1 <= r * r) && i != 0;
      }
  double amp_norm2 = 0;
  for (int64_t i = 0; i < m * m * mh; i++)
    if (measured[i]) amp_norm2 += amp[i] * amp[i] * (i % mh == 0 ? 1.0 : 2.0);

  /* Initial support: u's support, shrunk by half about the centre. */
  if (support_start) {
    memcpy(support, support_start, (size_t)n);
  } else {
    double umax = 0;
    for (int64_t i = 0; i < n; i++) umax = fmax(umax, u[i]);
    for (int64_t i3 = 0; i3 < m; i3++)
      for (int64_t i2 = 0; i2 < m; i2++)
        for (int64_t i1 = 0; i1 < m; i1++) {
          int64_t s3 = c + 2 * (i3 - c), s2 = c + 2 * (i2 - c), s1 = c + 2 * (i1 - c);
          int in = s3 >= 0 && s3 < m && s2 >= 0 && s2 < m && s1 >= 0 && s1 < m &&
                   u[(s3 * m + s2) * m + s1] > o.support_threshold * umax;
          support[(i3 * m + i2) * m + i1] = (uint8_t)in;
        }
  }
  if (rho_start) {
    memcpy(rho, rho_start, sizeof(double) * (size_t)n);
  } else {
    spf_rng g;
    spf_rng_seed(&g, o.seed, 0);
    for (int64_t i = 0; i < n; i++) rho[i] = support[i] ? spf_rng_uniform(&g) : 0.0;
  }

  for (int cyc = 0; cyc < o.n_cycles; cyc++) {
    const int blocks[3] = {o.er_before, o.hio, o.er_after};
    double err2 = 0;
    for (int b = 0; b < 3; b++)
      for (int it = 0; it < blocks[b]; it++) {
        /* Fourier modulus projection of rho into proj. */
        memcpy(w.real, rho, sizeof(double) * (size_t)n);
        fftw_execute(w.fwd);
        err2 = 0;
        for (int64_t i = 0; i < m * m * mh; i++) {
          double mag = cabs(w.spec[i]);
          if (measured[i]) {
            err2 += (mag - amp[i]) * (mag - amp[i]) * (i % mh == 0 ? 1.0 : 2.0);
            w.spec[i] = mag > 0 ? w.spec[i] * (amp[i] / mag) : amp[i];
          }
          w.spec[i] /= (double)n;
        }
        fftw_execute(w.inv);
        memcpy(proj, w.real, sizeof(double) * (size_t)n);
        /* Real-space step: support and positivity. */
        const int mode = b == 1 ? (o.use_raar ? 2 : 1) : 0;
        for (int64_t i = 0; i < n; i++) {
          const int ok = support[i] && proj[i] > 0;
          if (ok) rho[i] = proj[i];
          else if (mode == 0) rho[i] = 0;
          else if (mode == 1) rho[i] = rho[i] - o.beta * proj[i];
          else rho[i] = o.beta * rho[i] - (1.0 - 2.0 * o.beta) * proj[i];
        }
      }
    if (o.shrinkwrap_sigma > 0) {
      blur_abs(&w, rho, o.shrinkwrap_sigma);
      double bmax = 0;
      for (int64_t i = 0; i < n; i++) bmax = fmax(bmax, w.real[i]);
      for (int64_t i = 0; i < n; i++) support[i] = w.real[i] > o.shrinkwrap_threshold * bmax;
    }
    recentre(m, rho, support, tmp_d, tmp_s);
    if (cycles) {
      int64_t ns = 0;
      for (int64_t i = 0; i < n; i++) ns += support[i];
      cycles[cyc].fourier_error = amp_norm2 > 0 ? sqrt(err2 / amp_norm2) : 0;
      cycles[cyc].support_size = ns;
    }
  }
  /* The density lives where the support is and is non-negative. */
  for (int64_t i = 0; i < n; i++)
    if (!support[i] || rho[i] < 0) rho[i] = 0;
  if (support_out) memcpy(support_out, support, (size_t)n);
  if (u_model) rc = spf_autocorrelation(m, rho, u_model, nthreads);
done:
  ws_free(&w);
  free(amp);
  free(measured);
  free(support);
  free(tmp_s);
  free(tmp_d);
  free(proj);
  return rc;
}
