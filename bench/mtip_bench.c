/* One M-TIP generation, step by step: slicing, matching, merging, phasing.
 *
 *   mtip_bench [--images N] [--pixels P] [--M M] [--refs R1,R2,...] [--ref-batch B]
 *              [--threads K] [--distance D] [--atoms A]
 *
 * Data: N noise-free images of the built-in phantom on a P x P detector (300 um pixels,
 * 6 keV, D metres), with their true orientations (simulation timed apart, not part of
 * the generation). Model: merge at the TRUE orientations (the merge step: type-1 NUFFTs
 * of all N P^2 points, then the L-curve of 5 CG solves) and phase once (the phase step),
 * giving u_model. Then for each R: slice u_model for R reference orientations of the
 * grid in batches of B and match every image (per-image scale), as a generation does.
 * Matching is compared with bare cblas_sgemm on the matcher's shapes (image block x B x
 * P^2, over the same N x R work) in the same run. One summary line per R: seconds per
 * generation = slice + match + merge + phase. Peak memory (ru_maxrss) at the end.
 *
 * The default sizes are the (10,000 images of 64 x 64, M = 41, 10,000 and
 * 50,000 references); they take minutes on 2 cores. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "spinifel/spinifel.h"

#define MAX_REFS 16
#define MERGE_BATCH_IMAGES 256               /* images per add_points call, as the orientation step */
#define MATCHER_CROSS_FLOATS ((int64_t)16 << 20) /* the matcher's auto image block: 64 MiB of products */

static void fail(const char *what, int rc)
{
  fprintf(stderr, "mtip_bench: %s: %s\n", what, spf_strerror(rc));
  exit(1);
}

static void *xmalloc(size_t bytes, const char *what)
{
  void *p = malloc(bytes ? bytes : 1);
  if (!p) fail(what, SPF_ERR_ALLOC);
  return p;
}

static int usage(void)
{
  fprintf(stderr, "usage: mtip_bench [--images N] [--pixels P] [--M M] [--refs R1,R2,...] [--ref-batch B]\n"
                  "                  [--threads K] [--distance D] [--atoms A]\n");
  return 2;
}

/* The matcher's image block for a batch of c models (image_block = 0). */
static int64_t matcher_block(int64_t c, int64_t n)
{
  int64_t b = MATCHER_CROSS_FLOATS / c;
  if (b < 1) b = 1;
  return b > n ? n : b;
}

int main(int argc, char **argv)
{
  int64_t n = 10000, P = 64, M = 41, rb = 1000, threads = 0, atoms = 2000;
  int64_t refs[MAX_REFS] = {10000, 50000};
  int n_refs = 2;
  double distance = 0.05;
  for (int i = 1; i < argc; i += 2) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return usage();
    int bad = 0;
    if (!strcmp(k, "--images")) bad = parse_int64(v, 1, 100000000, &n);
    else if (!strcmp(k, "--pixels")) bad = parse_int64(v, 2, 4096, &P);
    else if (!strcmp(k, "--M")) bad = parse_int64(v, 3, 1001, &M) || M % 2 == 0;
    else if (!strcmp(k, "--ref-batch")) bad = parse_int64(v, 1, 1000000, &rb);
    else if (!strcmp(k, "--threads")) bad = parse_int64(v, 0, 1024, &threads);
    else if (!strcmp(k, "--atoms")) bad = parse_int64(v, 1, 10000000, &atoms);
    else if (!strcmp(k, "--distance")) bad = parse_double(v, 1e-4, 100, &distance);
    else if (!strcmp(k, "--refs")) {
      char buf[512];
      snprintf(buf, sizeof buf, "%s", v);
      n_refs = 0;
      for (char *tok = strtok(buf, ","); tok && !bad; tok = strtok(NULL, ",")) {
        if (n_refs == MAX_REFS) bad = 1;
        else bad = parse_int64(tok, 1, 100000000, &refs[n_refs++]);
      }
      bad = bad || n_refs == 0;
    } else
      bad = 1;
    if (bad) {
      fprintf(stderr, "mtip_bench: bad option or value: %s %s\n", k, v);
      return usage();
    }
  }
  const int nt = threads > 0 ? (int)threads : omp_get_max_threads();
  omp_set_num_threads(nt);
  openblas_set_num_threads(nt);
  const char *coretype = getenv("OPENBLAS_CORETYPE");
  int rc;

  /* ---- Detector and molecule ---- */
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = g.ny = P;
  g.distance_m = distance;
  spf_detector *det = NULL;
  if ((rc = spf_detector_make(&g, &det))) fail("detector", rc);
  const int64_t np = det->n_pixels;
  for (int64_t p = 0; p < np; p++)
    if (!det->mask[p]) fail("detector has masked pixels (the benchmark expects none)", SPF_ERR_DATA);

  printf("settings: images %lld, detector %lld x %lld (%lld pixels) of %.0f um at %.3f m, %.0f eV "
         "(resolution %.2f A edge, %.2f A corner), M %lld, refs",
         (long long)n, (long long)P, (long long)P, (long long)np, g.pixel_size_m * 1e6, g.distance_m,
         g.photon_energy_ev, det->resolution_edge_m * 1e10, det->resolution_corner_m * 1e10, (long long)M);
  for (int r = 0; r < n_refs; r++) printf("%s%lld", r ? "," : " ", (long long)refs[r]);
  printf(", ref batch %lld, threads %d, phantom %lld atoms\n", (long long)rb, nt, (long long)atoms);
  printf("openblas: core %s, config %s, OPENBLAS_CORETYPE=%s\n", openblas_get_corename(), openblas_get_config(),
         coretype ? coretype : "unset");

  /* ---- Simulation (not part of the generation) ---- */
  float *images = xmalloc(sizeof(float) * (size_t)(n * np), "images");
  double *true_q = xmalloc(sizeof(double) * 4 * (size_t)n, "orientations");
  double t0 = omp_get_wtime(), t_sf = 0;
  spf_simulate_timing stm = {0, 0, 0};
  if ((rc = bench_phantom_images(det, atoms, n, nt, images, true_q, &t_sf, &stm))) fail("simulate", rc);
  double t_sim = omp_get_wtime() - t0;
  printf("simulation: %lld noise-free images in %.2f s (structure-factor volume %.2f s, slicing %.2f s, "
         "intensities %.2f s) [not part of the generation]\n",
         (long long)n, t_sim, t_sf, stm.slicing, stm.noise);

  /* ---- Setup, once per run: slicer (also gives merge coordinates) and merger ---- */
  const double slice_tol = 1e-4;
  t0 = omp_get_wtime();
  spf_slicer *sl = NULL;
  if ((rc = spf_slicer_make(M, np, det->s, det->s_max, 1.0, slice_tol, rb, nt, &sl))) fail("slicer", rc);
  spf_merge_options mopt;
  spf_merge_default_options(&mopt);
  mopt.cg_max_iter = 100;
  mopt.nthreads = nt;
  spf_merger *mg = NULL;
  if ((rc = spf_merger_make(M, &mopt, &mg))) fail("merger", rc);
  printf("setup: slicer and merger made in %.2f s [once per run, not per generation]\n", omp_get_wtime() - t0);

  /* ---- Merge at the true orientations ---- */
  const int64_t n3 = M * M * M, slots = n < MERGE_BATCH_IMAGES ? n : MERGE_BATCH_IMAGES, bpts = slots * np;
  double *mx = xmalloc(sizeof(double) * 3 * (size_t)bpts, "merge coordinates");
  double *mb = xmalloc(sizeof(double) * (size_t)bpts, "merge intensities");
  double *u = xmalloc(sizeof(double) * (size_t)n3, "u"), *u_model = xmalloc(sizeof(double) * (size_t)n3, "u_model");
  double *rho = xmalloc(sizeof(double) * (size_t)n3, "rho");
  uint8_t *support = xmalloc((size_t)n3, "support");
  const int n_rho = 5;
  const double lambda0 = (double)n * (double)np / (double)n3;
  double rhos[5];
  for (int i = 0; i < n_rho; i++) rhos[i] = lambda0 * 1e-3 * pow(10 / 1e-3, (double)i / (n_rho - 1));
  spf_merge_stats mst[5];
  double t_coord = 0, t_add = 0;
  const double t_merge0 = omp_get_wtime();
  spf_merger_clear(mg);
  for (int64_t i0 = 0; i0 < n; i0 += slots) {
    const int64_t c = n - i0 < slots ? n - i0 : slots, nu = c * np;
    double ta = omp_get_wtime();
    for (int64_t j = 0; j < c; j++) {
      double r[9];
      spf_quat_to_matrix(true_q + 4 * (i0 + j), r);
      spf_slicer_points(sl, r, mx + j * np, mx + nu + j * np, mx + 2 * nu + j * np);
    }
    const float *img = images + (size_t)(i0 * np);
    for (int64_t k = 0; k < nu; k++) mb[k] = img[k];
    double tb = omp_get_wtime();
    if ((rc = spf_merger_add_points(mg, nu, mx, mx + nu, mx + 2 * nu, mb, NULL))) fail("merge: add_points", rc);
    t_add += omp_get_wtime() - tb;
    t_coord += tb - ta;
  }
  int chosen = 0;
  const double t_solve0 = omp_get_wtime();
  if ((rc = spf_merger_solve_lcurve(mg, n_rho, rhos, 10 * lambda0, NULL, u, &chosen, mst))) fail("merge: L-curve", rc);
  const double t_solve = omp_get_wtime() - t_solve0, t_merge = omp_get_wtime() - t_merge0;
  int cg_total = 0;
  for (int i = 0; i < n_rho; i++) cg_total += mst[i].iterations;
  const double n_pts = (double)n * (double)np;
  printf("merge: %lld images x %lld pixels = %.0f points at the true orientations, %.2f s = coordinates %.2f s "
         "+ add_points %.2f s + L-curve %.2f s\n",
         (long long)n, (long long)np, n_pts, t_merge, t_coord, t_add, t_solve);
  printf("merge add_points: %.0f points in %.2f s = %.2f M points/s (two type-1 NUFFTs per point: kernel on "
         "(2M)^3 and right-hand side on M^3)\n",
         n_pts, t_add, n_pts / t_add * 1e-6);
  printf("merge CG: %d solves (rho %.3g .. %.3g, phi %.3g = 10 lambda0, lambda0 %.4g), %d iterations in %.2f s = "
         "%.1f ms/iteration; chosen rho %.3g (%d iterations, residual %.1e)\n",
         n_rho, rhos[0], rhos[n_rho - 1], 10 * lambda0, lambda0, cg_total, t_solve,
         cg_total ? t_solve / cg_total * 1e3 : 0.0, mst[chosen].rho, mst[chosen].iterations,
         mst[chosen].rel_residual);
  free(mx);
  free(mb);

  /* ---- Phase ---- */
  spf_phase_options po;
  spf_phase_default_options(&po);
  po.nthreads = nt;
  spf_phase_cycle *cyc = xmalloc(sizeof(spf_phase_cycle) * (size_t)(po.n_cycles + 1), "phase cycles");
  t0 = omp_get_wtime();
  if ((rc = spf_phase(M, u, &po, NULL, NULL, rho, support, u_model, cyc))) fail("phase", rc);
  const double t_phase = omp_get_wtime() - t0;
  printf("phase: M %lld, %d cycles x [%d ER, %d HIO, %d ER] in %.2f s; Fourier error %.3f, support %lld voxels\n",
         (long long)M, po.n_cycles, po.er_before, po.hio, po.er_after, t_phase,
         po.n_cycles > 0 ? cyc[po.n_cycles - 1].fourier_error : NAN,
         (long long)(po.n_cycles > 0 ? cyc[po.n_cycles - 1].support_size : 0));
  free(cyc);

  /* ---- Slice and match, per number of references ---- */
  double *refq = xmalloc(sizeof(double) * 4 * (size_t)rb, "reference quaternions");
  double *refm = xmalloc(sizeof(double) * 9 * (size_t)rb, "reference matrices");
  float *slices = xmalloc(sizeof(float) * (size_t)(rb * np), "slices");
  int64_t *best = xmalloc(sizeof(int64_t) * (size_t)n, "best");
  double *found_q = xmalloc(sizeof(double) * 4 * (size_t)n, "found orientations");
  double summary[MAX_REFS][2];
  for (int r = 0; r < n_refs; r++) {
    const int64_t R = refs[r];
    double sort0, interp0, sort1, interp1;
    spf_slicer_timing(sl, &sort0, &interp0);
    double t_slice = 0, t_match = 0, t_grid = 0;
    t0 = omp_get_wtime();
    if ((rc = spf_slicer_set_volume(sl, u_model))) fail("slicer: set_volume", rc);
    const double t_volume = omp_get_wtime() - t0;
    t_slice += t_volume;
    spf_match_options mo;
    spf_match_default_options(&mo);
    mo.nthreads = nt;
    /* The reconstruction's metric: pixels weighted by 1 / the mean image. */
    float *pw = xmalloc(sizeof(float) * (size_t)np, "pixel weights");
    for (int64_t p = 0; p < np; p++) {
      double mean = 0;
      for (int64_t i = 0; i < n; i++) mean += images[i * np + p];
      mean /= (double)n;
      pw[p] = mean > 0 ? (float)(1.0 / mean) : 0.0f;
    }
    mo.pixel_weight = pw;
    spf_matcher *mt = NULL;
    t0 = omp_get_wtime();
    if ((rc = spf_matcher_make(n, np, images, &mo, &mt))) fail("matcher", rc);
    const double t_make = omp_get_wtime() - t0;
    t_match += t_make;
    int64_t last_c = rb;
    for (int64_t f = 0; f < R; f += rb) {
      const int64_t c = R - f < rb ? R - f : rb;
      double ta = omp_get_wtime();
      if ((rc = spf_orientation_grid(R, f, c, refq))) fail("orientation grid", rc);
      for (int64_t j = 0; j < c; j++) spf_quat_to_matrix(refq + 4 * j, refm + 9 * j);
      double tb = omp_get_wtime();
      if ((rc = spf_slicer_slice(sl, c, refm, slices))) fail("slice", rc);
      double tc = omp_get_wtime();
      if ((rc = spf_matcher_add_batch(mt, f, c, slices))) fail("match", rc);
      double td = omp_get_wtime();
      t_grid += tb - ta;
      t_slice += tc - ta;
      t_match += td - tc;
      last_c = c;
    }
    spf_slicer_timing(sl, &sort1, &interp1);
    double t_gemm, t_scan;
    spf_matcher_timing(mt, &t_gemm, &t_scan);
    if ((rc = spf_matcher_results(mt, best, NULL, NULL))) fail("matcher results", rc);
    spf_matcher_free(mt);
    free(pw);

    const double evals = (double)R * (double)np, flops = 2.0 * (double)n * (double)R * (double)np;
    printf("slicing: R=%lld refs, %.0f evaluations in %.2f s = %.1f M/s (set_volume %.2f s, grid+matrices %.2f s, "
           "sort %.2f s, interpolation %.2f s = %.1f M/s)\n",
           (long long)R, evals, t_slice, evals / t_slice * 1e-6, t_volume, t_grid, sort1 - sort0, interp1 - interp0,
           evals / (interp1 - interp0) * 1e-6);
    printf("matching: R=%lld refs x %lld images in %.2f s (make %.2f s, sgemm %.2f s, scan %.2f s, other %.2f s); "
           "sgemm %.1f GFLOP/s, image block %lld\n",
           (long long)R, (long long)n, t_match, t_make, t_gemm, t_scan, t_match - t_make - t_gemm - t_scan,
           flops / t_gemm * 1e-9, (long long)matcher_block(rb, n));

    /* Bare sgemm on the matcher's shapes over the same N x R work; the models are the
     * last batch of slices, the data the images. */
    const int64_t cap_a = matcher_block(rb, n) * rb, cap_b = matcher_block(last_c, n) * last_c;
    float *cross = xmalloc(sizeof(float) * (size_t)(cap_a > cap_b ? cap_a : cap_b), "sgemm output");
    openblas_set_num_threads(nt);
    t0 = omp_get_wtime();
    for (int64_t f = 0; f < R; f += rb) {
      const int64_t c = R - f < rb ? R - f : rb, blk = matcher_block(c, n);
      for (int64_t i0 = 0; i0 < n; i0 += blk) {
        const int64_t nb = n - i0 < blk ? n - i0 : blk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)c, (int)np, 1.0f, images + i0 * np,
                    (int)np, slices, (int)np, 0.0f, cross, (int)c);
      }
    }
    const double t_bare = omp_get_wtime() - t0;
    free(cross);
    printf("sgemm alone: same shapes and work in %.2f s = %.1f GFLOP/s; matcher sgemm / bare sgemm throughput = %.2f; "
           "whole matching (sgemm + scan) %.2f s = %.2f x the bare sgemm time (%.0f%% of its speed)\n",
           t_bare, flops / t_bare * 1e-9, t_bare / t_gemm, t_gemm + t_scan, (t_gemm + t_scan) / t_bare,
           100.0 * t_bare / (t_gemm + t_scan));

    /* A check that the pipeline works: the orientations found against the truth. */
    for (int64_t i = 0; i < n; i++)
      if ((rc = spf_orientation_grid(R, best[i], 1, found_q + 4 * i))) fail("found orientation", rc);
    double p90 = NAN, med = spf_orientation_error_median(n, true_q, found_q, &p90);
    printf("check: R=%lld median orientation error %.2f deg (90th percentile %.2f), grid ball radius %.2f deg "
           "(pixels weighted by 1 / the mean image)\n",
           (long long)R, med, p90, spf_orientation_ball_radius(R) * 180.0 / M_PI);
    summary[r][0] = t_slice;
    summary[r][1] = t_match;
  }
  for (int r = 0; r < n_refs; r++) {
    const double tot = summary[r][0] + summary[r][1] + t_merge + t_phase;
    printf("generation: R=%lld refs, %lld images, %lld x %lld pixels, M %lld, %d threads: %.2f s = slice %.2f s "
           "(%.0f%%) + match %.2f s (%.0f%%) + merge %.2f s (%.0f%%) + phase %.2f s (%.0f%%)\n",
           (long long)refs[r], (long long)n, (long long)P, (long long)P, (long long)M, nt, tot, summary[r][0],
           100 * summary[r][0] / tot, summary[r][1], 100 * summary[r][1] / tot, t_merge, 100 * t_merge / tot,
           t_phase, 100 * t_phase / tot);
  }
  printf("peak memory: %.0f MiB (ru_maxrss)\n", peak_rss_mib());

  spf_slicer_free(sl);
  spf_merger_free(mg);
  spf_detector_free(det);
  free(images); free(true_q); free(u); free(u_model); free(rho); free(support);
  free(refq); free(refm); free(slices); free(best); free(found_q);
  return 0;
}
