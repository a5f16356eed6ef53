/* Orientation matching against brute-force argmin in double. */
#include <float.h>
#include <math.h>

#include "spinifel/spinifel.h"
#include "spinifel/matching.h"
#include "testing.h"

/* Brute force: distance of image i to model j under the same definitions, in double. */
static double brute_dist(const float *d, const float *m, const float *w, int64_t np, int scale, double a_global)
{
  double dd = 0, mm = 0, dm = 0;
  for (int64_t p = 0; p < np; p++) {
    double ww = w ? w[p] : 1.0;
    dd += ww * d[p] * d[p];
    mm += ww * m[p] * m[p];
    dm += ww * d[p] * m[p];
  }
  double a = scale == SPF_SCALE_NONE ? 1.0 : scale == SPF_SCALE_GLOBAL ? a_global : (dm > 0 && mm > 0 ? dm / mm : 0);
  return dd + a * a * mm - 2 * a * dm;
}

static void run_match_case(int scale, int weighted, int64_t n_img, int64_t n_ref, int64_t np, int64_t batch,
                           int64_t block, uint64_t seed)
{
  float *models = malloc(sizeof(float) * n_ref * np), *data = malloc(sizeof(float) * n_img * np);
  float *w = weighted ? malloc(sizeof(float) * np) : NULL;
  int64_t *truth = malloc(sizeof(int64_t) * n_img), *best = malloc(sizeof(int64_t) * n_img);
  float *bd = malloc(sizeof(float) * n_img), *sd = malloc(sizeof(float) * n_img);
  spf_rng r;
  spf_rng_seed(&r, seed, 0);
  for (int64_t k = 0; k < n_ref * np; k++) models[k] = (float)(spf_rng_uniform(&r) * 10);
  if (w)
    for (int64_t p = 0; p < np; p++) w[p] = p % 7 == 0 ? 0.0f : (float)(0.5 + spf_rng_uniform(&r));
  /* Each image: a model, scaled (per-image fluence), plus noise. */
  for (int64_t i = 0; i < n_img; i++) {
    truth[i] = (int64_t)(spf_rng_next(&r) % (uint64_t)n_ref);
    double fl = scale == SPF_SCALE_PER_IMAGE ? 0.3 + 2 * spf_rng_uniform(&r) : 1.0;
    for (int64_t p = 0; p < np; p++)
      data[i * np + p] = (float)(fl * models[truth[i] * np + p] + spf_rng_normal(&r));
  }
  spf_match_options o;
  spf_match_default_options(&o);
  o.scale = scale;
  o.pixel_weight = w;
  o.image_block = block;
  spf_matcher *m;
  CHECK(spf_matcher_make(n_img, np, data, &o, &m) == SPF_OK, "make");
  for (int64_t f = 0; f < n_ref; f += batch) {
    int64_t nb = n_ref - f < batch ? n_ref - f : batch;
    CHECK(spf_matcher_add_batch(m, f, nb, models + f * np) == SPF_OK, "batch");
  }
  spf_matcher_results(m, best, bd, sd);
  /* The global scale is per batch: the brute force uses the same batches. */
  double dsum = 0;
  for (int64_t k = 0; k < n_img * np; k++) dsum += (w ? w[k % np] : 1.0) * data[k] * data[k];
  int64_t nbatch = (n_ref + batch - 1) / batch;
  double *a_batch = malloc(sizeof(double) * nbatch);
  for (int64_t b = 0; b < nbatch; b++) {
    int64_t f = b * batch, nb = n_ref - f < batch ? n_ref - f : batch;
    double msum = 0;
    for (int64_t k = f * np; k < (f + nb) * np; k++) msum += (w ? w[k % np] : 1.0) * models[k] * models[k];
    a_batch[b] = sqrt((dsum / n_img) / (msum / nb));
  }
  int wrong = 0, found_truth = 0;
  for (int64_t i = 0; i < n_img; i++) {
    double bmin = DBL_MAX, bsec = DBL_MAX;
    int64_t barg = -1;
    for (int64_t j = 0; j < n_ref; j++) {
      double d = brute_dist(data + i * np, models + j * np, w, np, scale, a_batch[j / batch]);
      if (d < bmin) { bsec = bmin; bmin = d; barg = j; }
      else if (d < bsec) bsec = d;
    }
    /* Same argmin, or a near tie within float rounding of the distances. */
    double dchosen = brute_dist(data + i * np, models + best[i] * np, w, np, scale, a_batch[best[i] / batch]);
    if (best[i] != barg && fabs(dchosen - bmin) > 1e-4 * fabs(bmin)) wrong++;
    if (fabs(bd[i] - bmin) > 1e-3 * fabs(bmin) + 1e-3 || fabs(sd[i] - bsec) > 1e-3 * fabs(bsec) + 1e-3) wrong++;
    found_truth += best[i] == truth[i];
  }
  free(a_batch);
  CHECK(wrong == 0, "scale %d weighted %d: %d images disagree with brute force", scale, weighted, wrong);
  if (scale != SPF_SCALE_GLOBAL)
    CHECK(found_truth > 0.95 * n_img, "scale %d: only %d of %lld images found their model", scale, found_truth,
          (long long)n_img);
  spf_matcher_free(m);
  free(models); free(data); free(w); free(truth); free(best); free(bd); free(sd);
}

static void matches_brute_force_argmin_all_scale_modes(void)
{
  for (int scale = 0; scale <= 2; scale++)
    for (int weighted = 0; weighted <= 1; weighted++)
      run_match_case(scale, weighted, 150, 97, 60, 32, 0, 10 + scale * 2 + weighted);
}

/* The results are the same bits however the work is cut: reference batches, image
 * blocks, threads, and the images split over several matchers (as over MPI ranks, whose
 * lists are then merged). sgemm alone would not give this: with OpenBLAS's Haswell
 * kernels (OPENBLAS_CORETYPE=Haswell, as in CI) the same pair's d.m differs in its last
 * bits from one call shape to another, and near ties flip. Nearly equal models (a base
 * plus 1e-4 noise) make near ties common. */
static void batch_and_block_sizes_do_not_change_results(void)
{
  const int64_t n_img = 150, n_ref = 240, np = 333;
  const int K = 6;
  float *models = malloc(sizeof(float) * n_ref * np), *data = malloc(sizeof(float) * n_img * np);
  spf_rng r;
  spf_rng_seed(&r, 77, 0);
  for (int64_t p = 0; p < np; p++) {
    const float base = (float)spf_rng_uniform(&r);
    for (int64_t j = 0; j < n_ref; j++) models[j * np + p] = base + (float)(1e-4 * spf_rng_uniform(&r));
    for (int64_t i = 0; i < n_img; i++) data[i * np + p] = base * (float)(1 + 0.01 * spf_rng_normal(&r));
  }
  int64_t *ref_i = malloc(sizeof(int64_t) * n_img * K), *got_i = malloc(sizeof(int64_t) * n_img * K);
  float *ref_d = malloc(sizeof(float) * n_img * (K + 1)), *got_d = malloc(sizeof(float) * n_img * (K + 1));
  int64_t *ref_b = malloc(sizeof(int64_t) * n_img), *got_b = malloc(sizeof(int64_t) * n_img);
  /* batch, image block, threads, image splits */
  const int64_t cases[][4] = {{240, 0, 1, 1}, {1, 0, 2, 1}, {7, 13, 2, 1}, {33, 150, 1, 3}, {100, 1, 2, 4}, {240, 0, 2, 2}};
  for (int t = 0; t < 6; t++) {
    const int64_t batch = cases[t][0], splits = cases[t][3];
    int64_t *bi = t == 0 ? ref_i : got_i, *bb = t == 0 ? ref_b : got_b;
    float *bd = t == 0 ? ref_d : got_d;
    for (int64_t sp = 0; sp < splits; sp++) {
      const int64_t f0 = n_img * sp / splits, n = n_img * (sp + 1) / splits - f0;
      spf_match_options o;
      spf_match_default_options(&o);
      o.image_block = cases[t][1];
      o.nthreads = (int)cases[t][2];
      o.keep = K;
      spf_matcher *m;
      CHECK(spf_matcher_make(n, np, data + f0 * np, &o, &m) == SPF_OK, "make");
      for (int64_t f = 0; f < n_ref; f += batch)
        spf_matcher_add_batch(m, f, n_ref - f < batch ? n_ref - f : batch, models + f * np);
      spf_matcher_nearest(m, bi + f0 * K, bd + f0 * K);
      spf_matcher_results(m, bb + f0, NULL, bd + n_img * K + f0);
      spf_matcher_free(m);
    }
    if (t > 0) {
      int diff = 0;
      for (int64_t i = 0; i < n_img; i++) {
        diff += ref_b[i] != got_b[i] || ref_d[n_img * K + i] != got_d[n_img * K + i];
        for (int k = 0; k < K; k++) diff += ref_i[i * K + k] != got_i[i * K + k] || ref_d[i * K + k] != got_d[i * K + k];
      }
      CHECK(diff == 0, "batch %lld block %lld threads %lld splits %lld: %d entries differ", (long long)batch,
            (long long)cases[t][1], (long long)cases[t][2], (long long)splits, diff);
    }
  }
  /* References split in two, the higher half first, its lists seeding the matcher of the
   * lower half (as the ranks' shares round the ring): the same bits again. */
  {
    spf_match_options o;
    spf_match_default_options(&o);
    o.keep = K;
    spf_matcher *hi, *lo;
    float *sec = malloc(sizeof(float) * n_img);
    CHECK(spf_matcher_make(n_img, np, data, &o, &hi) == SPF_OK && spf_matcher_make(n_img, np, data, &o, &lo) == SPF_OK,
          "make");
    spf_matcher_add_batch(hi, n_ref / 2, n_ref - n_ref / 2, models + n_ref / 2 * np);
    spf_matcher_nearest(hi, got_i, got_d);
    spf_matcher_results(hi, NULL, NULL, sec);
    CHECK(spf_matcher_seed(lo, got_i, got_d, sec) == SPF_OK, "seed");
    spf_matcher_add_batch(lo, 0, n_ref / 2, models);
    spf_matcher_nearest(lo, got_i, got_d);
    spf_matcher_results(lo, got_b, NULL, got_d + n_img * K);
    int diff = 0;
    for (int64_t i = 0; i < n_img; i++) {
      diff += ref_b[i] != got_b[i] || ref_d[n_img * K + i] != got_d[n_img * K + i];
      for (int k = 0; k < K; k++) diff += ref_i[i * K + k] != got_i[i * K + k] || ref_d[i * K + k] != got_d[i * K + k];
    }
    CHECK(diff == 0, "seeded from the other half of the references: %d entries differ", diff);
    /* A list out of order is refused. */
    float t = got_d[0];
    got_d[0] = got_d[1] + 1;
    CHECK(spf_matcher_seed(lo, got_i, got_d, got_d + n_img * K) == SPF_ERR_ARG, "unsorted seed");
    got_d[0] = t;
    spf_matcher_free(hi);
    spf_matcher_free(lo);
    free(sec);
  }
  /* The lists hold near ties: the check has something to catch. */
  int64_t close = 0;
  for (int64_t i = 0; i < n_img; i++) close += ref_d[i * K + 1] - ref_d[i * K] < 1e-5 * ref_d[i * K];
  CHECK(close > 0, "no near ties (%lld)", (long long)close);
  free(models); free(data); free(ref_i); free(got_i); free(ref_d); free(got_d); free(ref_b); free(got_b);
}

static int cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The kept list of nearest references equals the brute-force sorted distances. */
static void keeps_the_k_nearest_in_order(void)
{
  const int64_t n_img = 60, n_ref = 150, np = 30;
  const int K = 9;
  float *models = malloc(sizeof(float) * n_ref * np), *data = malloc(sizeof(float) * n_img * np);
  spf_rng r;
  spf_rng_seed(&r, 91, 0);
  for (int64_t k = 0; k < n_ref * np; k++) models[k] = (float)(spf_rng_uniform(&r) * 5);
  for (int64_t k = 0; k < n_img * np; k++) data[k] = (float)(spf_rng_uniform(&r) * 5);
  spf_match_options o;
  spf_match_default_options(&o);
  o.keep = K;
  o.scale = SPF_SCALE_NONE;
  spf_matcher *m;
  CHECK(spf_matcher_make(n_img, np, data, &o, &m) == SPF_OK, "make");
  for (int64_t f = 0; f < n_ref; f += 37)
    spf_matcher_add_batch(m, f, n_ref - f < 37 ? n_ref - f : 37, models + f * np);
  int64_t idx[60 * 9], best[60];
  float dist[60 * 9];
  CHECK(spf_matcher_nearest(m, idx, dist) == SPF_OK, "nearest");
  spf_matcher_results(m, best, NULL, NULL);
  int bad = 0;
  double all[150];
  for (int64_t i = 0; i < n_img; i++) {
    for (int64_t j = 0; j < n_ref; j++) all[j] = brute_dist(data + i * np, models + j * np, NULL, np, SPF_SCALE_NONE, 1);
    bad += idx[i * K] != best[i];
    for (int k = 0; k < K; k++) {
      const double own = brute_dist(data + i * np, models + idx[i * K + k] * np, NULL, np, SPF_SCALE_NONE, 1);
      bad += fabs(own - dist[i * K + k]) > 1e-4 * own || (k > 0 && dist[i * K + k] < dist[i * K + k - 1]);
      for (int l = 0; l < k; l++) bad += idx[i * K + l] == idx[i * K + k];
    }
    qsort(all, n_ref, sizeof(double), cmp_d);
    for (int k = 0; k < K; k++) bad += fabs(all[k] - dist[i * K + k]) > 1e-4 * all[k];
  }
  CHECK(bad == 0, "%d disagreements with the brute-force sorted distances", bad);
  spf_matcher_free(m);
  o.keep = 0;
  CHECK(spf_matcher_make(n_img, np, data, &o, &m) == SPF_ERR_OPTION, "keep 0 refused");
  free(models);
  free(data);
}

static void bad_input_is_refused(void)
{
  float d[4] = {1, 2, 3, NAN}, w[2] = {1, -1};
  spf_matcher *m = NULL;
  CHECK(spf_matcher_make(2, 2, d, NULL, &m) == SPF_ERR_DATA, "NaN data");
  CHECK(spf_matcher_make(0, 2, d, NULL, &m) == SPF_ERR_SIZE, "no images");
  CHECK(spf_matcher_make(2, 2, NULL, NULL, &m) == SPF_ERR_NULL, "NULL data");
  d[3] = 4;
  spf_match_options o;
  spf_match_default_options(&o);
  o.pixel_weight = w;
  CHECK(spf_matcher_make(2, 2, d, &o, &m) == SPF_ERR_DATA, "negative weight");
  o.pixel_weight = NULL;
  o.scale = 9;
  CHECK(spf_matcher_make(2, 2, d, &o, &m) == SPF_ERR_OPTION, "bad scale mode");
  CHECK(spf_matcher_make(2, 2, d, NULL, &m) == SPF_OK, "valid");
  int64_t best[2];
  spf_matcher_results(m, best, NULL, NULL);
  CHECK(best[0] == -1 && best[1] == -1, "no batch yet gives -1");
  float mod[2] = {INFINITY, 0};
  CHECK(spf_matcher_add_batch(m, 0, 1, mod) == SPF_ERR_DATA, "infinite model");
  spf_matcher_free(m);
}

int main(void)
{
  RUN_TEST(matches_brute_force_argmin_all_scale_modes);
  RUN_TEST(batch_and_block_sizes_do_not_change_results);
  RUN_TEST(keeps_the_k_nearest_in_order);
  RUN_TEST(bad_input_is_refused);
  return test_summary();
}
