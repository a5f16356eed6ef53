/* Orientation matching over MPI ranks, the two splits of issue 6, timed side by side:
 *
 *   mpirun -np P match_split_bench [--images N] [--refs R] [--pixels n] [--M M]
 *        [--ref-batch B] [--threads K] [--repeat k] [--slice-mib S] [--seed s]
 *
 * (A) split images: each rank holds its share of the N images (spf_share), slices all R
 *     references itself in batches of B and matches its images against every batch.
 *     No communication; every rank computes the same R model images.
 * (B) split references: each rank slices only its contiguous share of the R references
 *     (once per generation, kept in memory when R/P x n^2 floats fit in S MiB, else
 *     sliced again for every visiting block) and the image blocks go round a ring
 *     (Isend to rank + 1, Irecv from rank - 1, P - 1 steps, overlapped with matching).
 *     Every rank keeps the best (distance, reference) per image of every block it saw;
 *     one MPI_Reduce_scatter with a min-location operation (ties to the lower index)
 *     delivers each image's best to the rank that owns it.
 *
 * Both run in the same invocation on the same data and must find the same best
 * reference for every image ("agree: yes", else exit 1). Data is synthetic: the
 * autocorrelation of a random blob density on the M^3 grid, sliced at random
 * orientations (seeded per image, so independent of P) plus 5% Gaussian noise, on an
 * n x n detector whose q range is the default detector's. Per mode: seconds (max over
 * ranks) in slicing (set_volume + NUFFT), matching (matcher copy + sgemm + scans) and
 * communication (time inside MPI: ring waits not hidden by matching, which include
 * waiting for a slower neighbour, and the reduction), the total, rates and bytes sent
 * per rank; then the ratio B/A of the totals. --repeat runs A, B, A, B, ...
 * and reports each mode's fastest repetition. Threads default to the cores divided by
 * the ranks on the node. Without MPI (or under -np 1) both modes do the same work. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "spinifel/spinifel.h"
#ifdef SPINIFEL_HAVE_MPI
#include <mpi.h>
#endif

#define NOISE_FRACTION 0.05 /* noise sigma / the image's rms */
#define SLICE_TOL 1e-4      /* as mtip_bench and reconstruct */

/* One image's best match so far; index -1: none yet (loses to any real match). */
typedef struct {
  float dist;
  int64_t index;
} best_pair;

typedef struct {
  int rank, size;
  int64_t n_img, n_ref, np, rb;
  int nt;
  int keep_slices;        /* B keeps its R/P model images for the whole generation */
  int64_t first_img, n_mine;
  const float *images;    /* my share: n_mine x np, image-major */
  const double *u;        /* the autocorrelation, M^3 */
  spf_slicer *sl;         /* made once (max_orient = rb) */
  spf_match_options mo;
  double *q, *rot;        /* rb quaternions and matrices, scratch */
} bench;

/* Seconds and counts of one mode on one rank. */
enum { T_SLICE, T_MATCH, T_GEMM, T_SCAN, T_COMM, T_TOTAL, N_TIMES };
typedef struct {
  double t[N_TIMES];
  double sliced;       /* model images this rank computed (after reduction: the most on one rank) */
  double sliced_all;   /* after reduction: over all ranks */
  double ring_bytes;   /* image bytes this rank sent round the ring */
  double reduce_bytes; /* bytes this rank put into the reduction */
} mode_stats;

static void fail(const char *what, int rc)
{
  fprintf(stderr, "match_split_bench: %s: %s\n", what, spf_strerror(rc));
#ifdef SPINIFEL_HAVE_MPI
  /* The other ranks would wait for this one in the ring or a collective. */
  MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  exit(1);
}

static void *xmalloc(size_t bytes, const char *what)
{
  void *p = malloc(bytes ? bytes : 1);
  if (!p) fail(what, SPF_ERR_ALLOC);
  return p;
}

static void barrier(const bench *b)
{
#ifdef SPINIFEL_HAVE_MPI
  if (b->size > 1) MPI_Barrier(MPI_COMM_WORLD);
#else
  (void)b;
#endif
}

#ifdef SPINIFEL_HAVE_MPI
/* a strictly better than b: smaller distance, then lower reference. */
static int pair_better(const best_pair *a, const best_pair *b)
{
  if (a->index < 0) return 0;
  if (b->index < 0) return 1;
  return a->dist < b->dist || (a->dist == b->dist && a->index < b->index);
}

static void pair_min_op(void *in, void *inout, int *len, MPI_Datatype *type)
{
  (void)type;
  const best_pair *a = in;
  best_pair *b = inout;
  for (int k = 0; k < *len; k++)
    if (pair_better(&a[k], &b[k])) b[k] = a[k];
}
#endif

/* Model images of grid references first .. first+count-1 into out (count x np), in
 * slicer batches of rb; adds the seconds to *t. */
static void slice_refs(bench *b, int64_t first, int64_t count, float *out, double *t)
{
  const double t0 = omp_get_wtime();
  for (int64_t f = 0; f < count; f += b->rb) {
    const int64_t c = count - f < b->rb ? count - f : b->rb;
    int rc = spf_orientation_grid(b->n_ref, first + f, c, b->q);
    if (rc) fail("orientation grid", rc);
    for (int64_t j = 0; j < c; j++) spf_quat_to_matrix(b->q + 4 * j, b->rot + 9 * j);
    if ((rc = spf_slicer_slice(b->sl, c, b->rot, out + f * b->np))) fail("slice", rc);
  }
  *t += omp_get_wtime() - t0;
}

/* (A) Every rank: all R references, its own images. */
static void run_split_images(bench *b, int64_t *best, float *dist, mode_stats *st)
{
  memset(st, 0, sizeof *st);
  float *models = xmalloc(sizeof(float) * (size_t)(b->rb * b->np), "model batch");
  barrier(b);
  const double t0 = omp_get_wtime();
  double ta = omp_get_wtime();
  int rc = spf_slicer_set_volume(b->sl, b->u);
  if (rc) fail("set_volume", rc);
  st->t[T_SLICE] += omp_get_wtime() - ta;
  ta = omp_get_wtime();
  spf_matcher *mt = NULL;
  if ((rc = spf_matcher_make(b->n_mine, b->np, b->images, &b->mo, &mt))) fail("matcher", rc);
  st->t[T_MATCH] += omp_get_wtime() - ta;
  for (int64_t f = 0; f < b->n_ref; f += b->rb) {
    const int64_t c = b->n_ref - f < b->rb ? b->n_ref - f : b->rb;
    slice_refs(b, f, c, models, &st->t[T_SLICE]);
    ta = omp_get_wtime();
    if ((rc = spf_matcher_add_batch(mt, f, c, models))) fail("match", rc);
    st->t[T_MATCH] += omp_get_wtime() - ta;
  }
  spf_matcher_results(mt, best, dist, NULL);
  spf_matcher_timing(mt, &st->t[T_GEMM], &st->t[T_SCAN]);
  spf_matcher_free(mt);
  st->t[T_TOTAL] = omp_get_wtime() - t0;
  st->sliced = (double)b->n_ref;
  free(models);
}

/* (B) Every rank: its R/P references, every image block in turn. */
static void run_split_refs(bench *b, int64_t *best, float *dist, mode_stats *st)
{
  memset(st, 0, sizeof *st);
  const int P = b->size;
  int64_t rf, rc_count;
  spf_share(b->n_ref, b->rank, P, &rf, &rc_count);
  const int64_t blk_max = (b->n_img + P - 1) / P, np = b->np;
  /* Two receive buffers: the block being matched is never the one being received. */
  float *ring[2] = {NULL, NULL};
  if (P > 1)
    for (int k = 0; k < 2; k++) ring[k] = xmalloc(sizeof(float) * (size_t)(blk_max * np), "ring buffer");
  float *models = xmalloc(sizeof(float) * (size_t)((b->keep_slices ? rc_count : b->rb) * np), "model slices");
  best_pair *all = xmalloc(sizeof(best_pair) * (size_t)b->n_img, "best pairs");
  best_pair *mine = xmalloc(sizeof(best_pair) * (size_t)b->n_mine, "my best pairs");
  memset(all, 0, sizeof(best_pair) * (size_t)b->n_img); /* padding bytes too: they are sent */
  for (int64_t i = 0; i < b->n_img; i++) {
    all[i].dist = FLT_MAX;
    all[i].index = -1;
  }
  int64_t *blk_best = xmalloc(sizeof(int64_t) * (size_t)blk_max, "block best");
  float *blk_dist = xmalloc(sizeof(float) * (size_t)blk_max, "block distances");

  barrier(b);
  const double t0 = omp_get_wtime();
  double ta = omp_get_wtime();
  int rc = spf_slicer_set_volume(b->sl, b->u);
  if (rc) fail("set_volume", rc);
  st->t[T_SLICE] += omp_get_wtime() - ta;
  const float *held = b->images;
  for (int s = 0; s < P; s++) {
    const int origin = (b->rank - s + P) % P;
    int64_t of, oc;
    spf_share(b->n_img, origin, P, &of, &oc);
#ifdef SPINIFEL_HAVE_MPI
    MPI_Request req[2];
    if (s < P - 1) {
      /* Pass the held block on while matching it; the next one arrives meanwhile. */
      int64_t nf, nc;
      spf_share(b->n_img, (origin + P - 1) % P, P, &nf, &nc);
      const int left = (b->rank + P - 1) % P, right = (b->rank + 1) % P;
      ta = omp_get_wtime();
      MPI_Irecv(ring[s % 2], (int)(nc * np), MPI_FLOAT, left, s, MPI_COMM_WORLD, &req[0]);
      MPI_Isend(held, (int)(oc * np), MPI_FLOAT, right, s, MPI_COMM_WORLD, &req[1]);
      st->t[T_COMM] += omp_get_wtime() - ta;
      st->ring_bytes += (double)(oc * np) * sizeof(float);
    }
#endif
    if (s == 0 && b->keep_slices) slice_refs(b, rf, rc_count, models, &st->t[T_SLICE]);
    ta = omp_get_wtime();
    spf_matcher *mt = NULL;
    if ((rc = spf_matcher_make(oc, np, held, &b->mo, &mt))) fail("matcher", rc);
    st->t[T_MATCH] += omp_get_wtime() - ta;
    for (int64_t f = 0; f < rc_count; f += b->rb) {
      const int64_t c = rc_count - f < b->rb ? rc_count - f : b->rb;
      const float *batch = models + f * np;
      if (!b->keep_slices) {
        slice_refs(b, rf + f, c, models, &st->t[T_SLICE]);
        batch = models;
      }
      ta = omp_get_wtime();
      if ((rc = spf_matcher_add_batch(mt, rf + f, c, batch))) fail("match", rc);
      st->t[T_MATCH] += omp_get_wtime() - ta;
    }
    double tg, tsc;
    spf_matcher_timing(mt, &tg, &tsc);
    st->t[T_GEMM] += tg;
    st->t[T_SCAN] += tsc;
    spf_matcher_results(mt, blk_best, blk_dist, NULL);
    spf_matcher_free(mt);
    for (int64_t i = 0; i < oc; i++) {
      all[of + i].dist = blk_dist[i];
      all[of + i].index = blk_best[i];
    }
#ifdef SPINIFEL_HAVE_MPI
    if (s < P - 1) {
      ta = omp_get_wtime();
      MPI_Waitall(2, req, MPI_STATUSES_IGNORE);
      st->t[T_COMM] += omp_get_wtime() - ta;
      held = ring[s % 2];
    }
#endif
  }
  /* Each image's best over all ranks, delivered to its owner. */
  ta = omp_get_wtime();
  if (P == 1) memcpy(mine, all, sizeof(best_pair) * (size_t)b->n_mine);
#ifdef SPINIFEL_HAVE_MPI
  else {
    int *counts = xmalloc(sizeof(int) * (size_t)(P > 0 ? P : 1), "counts");
    for (int r = 0; r < P; r++) {
      int64_t f, c;
      spf_share(b->n_img, r, P, &f, &c);
      counts[r] = (int)c;
    }
    /* MPI_MINLOC on MPI_FLOAT_INT would do below 2^31 references; a user operation keeps
     * the int64 index of the matcher and says how ties go. */
    MPI_Datatype pair_type;
    MPI_Op pair_op;
    MPI_Type_contiguous((int)sizeof(best_pair), MPI_BYTE, &pair_type);
    MPI_Type_commit(&pair_type);
    MPI_Op_create(pair_min_op, 1, &pair_op);
    MPI_Reduce_scatter(all, mine, counts, pair_type, pair_op, MPI_COMM_WORLD);
    MPI_Op_free(&pair_op);
    MPI_Type_free(&pair_type);
    free(counts);
    st->reduce_bytes = (double)b->n_img * sizeof(best_pair);
  }
#endif
  st->t[T_COMM] += omp_get_wtime() - ta;
  st->t[T_TOTAL] = omp_get_wtime() - t0;
  for (int64_t i = 0; i < b->n_mine; i++) {
    best[i] = mine[i].index;
    dist[i] = mine[i].dist;
  }
  st->sliced = (double)rc_count * (b->keep_slices ? 1 : P);
  free(ring[0]);
  free(ring[1]);
  free(models);
  free(all);
  free(mine);
  free(blk_best);
  free(blk_dist);
}

/* Maxima over ranks of the times, in place (every rank gets them). */
static void max_over_ranks(const bench *b, double *v, int n)
{
#ifdef SPINIFEL_HAVE_MPI
  if (b->size > 1) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
#else
  (void)b;
  (void)v;
  (void)n;
#endif
}

static void sum_over_ranks(const bench *b, double *v)
{
#ifdef SPINIFEL_HAVE_MPI
  if (b->size > 1) MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
  (void)b;
  (void)v;
#endif
}

static void print_mode(const bench *b, const char *name, const mode_stats *st, int rep_best, int repeat)
{
  const double *t = st->t;
  const double pairs = (double)b->n_img * (double)b->n_ref;
  printf("%s: total %.3f s = slicing %.3f s + matching %.3f s (sgemm %.3f s, scans %.3f s) + communication %.3f s "
         "[each the max over ranks%s]\n",
         name, t[T_TOTAL], t[T_SLICE], t[T_MATCH], t[T_GEMM], t[T_SCAN], t[T_COMM],
         repeat > 1 ? ", fastest repetition" : "");
  if (repeat > 1) printf("  (repetition %d of %d)\n", rep_best + 1, repeat);
  printf("  slicing: %.0f model images per rank (%.0f over all ranks) = %.0f model images/s per rank\n", st->sliced,
         st->sliced_all, st->sliced / t[T_SLICE]);
  printf("  throughput: %lld x %lld image-reference pairs in %.3f s = %.3g pairs/s (%.3g pairs/s per rank in "
         "matching)\n",
         (long long)b->n_img, (long long)b->n_ref, t[T_TOTAL], pairs / t[T_TOTAL], pairs / b->size / t[T_MATCH]);
  printf("  bytes sent per rank: ring %.2f MiB, reduction %.1f KiB (its input)%s\n", st->ring_bytes / 1048576.0,
         st->reduce_bytes / 1024.0, b->size == 1 ? " [one rank: none]" : "");
}

static int usage(void)
{
  fprintf(stderr, "usage: match_split_bench [--images N] [--refs R] [--pixels n] [--M M] [--ref-batch B]\n"
                  "                         [--threads K] [--repeat k] [--slice-mib S] [--seed s]\n");
  return 2;
}

int main(int argc, char **argv)
{
#ifdef SPINIFEL_HAVE_MPI
  MPI_Init(&argc, &argv);
#endif
  bench b;
  memset(&b, 0, sizeof b);
  spf_comm world;
  spf_comm_world(&world);
  b.rank = world.rank;
  b.size = world.size;
  int local_ranks = 1;
#ifdef SPINIFEL_HAVE_MPI
  {
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local_ranks);
    MPI_Comm_free(&node);
  }
#endif

  int64_t n = 2000, R = 20000, pix = 32, M = 31, rb = 1000, threads = 0, repeat = 1, seed = 1, slice_mib = -1;
  int bad = 0;
  for (int i = 1; i < argc && !bad; i += 2) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) bad = 1;
    else if (!strcmp(k, "--images")) bad = parse_int64(v, 1, 100000000, &n);
    else if (!strcmp(k, "--refs")) bad = parse_int64(v, 1, 100000000, &R);
    else if (!strcmp(k, "--pixels")) bad = parse_int64(v, 2, 4096, &pix);
    else if (!strcmp(k, "--M")) bad = parse_int64(v, 3, 1001, &M) || M % 2 == 0;
    else if (!strcmp(k, "--ref-batch")) bad = parse_int64(v, 1, 1000000, &rb);
    else if (!strcmp(k, "--threads")) bad = parse_int64(v, 0, 1024, &threads);
    else if (!strcmp(k, "--repeat")) bad = parse_int64(v, 1, 1000, &repeat);
    else if (!strcmp(k, "--seed")) bad = parse_int64(v, 0, INT64_MAX, &seed);
    else if (!strcmp(k, "--slice-mib")) bad = parse_int64(v, 0, INT64_MAX / 1048576, &slice_mib);
    else bad = 1;
    if (bad && b.rank == 0) fprintf(stderr, "match_split_bench: bad option or value: %s %s\n", k, v ? v : "");
  }
  if (!bad && (n < b.size || R < b.size)) {
    if (b.rank == 0) fprintf(stderr, "match_split_bench: need at least one image and one reference per rank\n");
    bad = 1;
  }
  if (bad) {
    if (b.rank == 0) usage();
#ifdef SPINIFEL_HAVE_MPI
    MPI_Finalize();
#endif
    return 2;
  }
  /* Cores shared by the ranks on this node, unless told. */
  const int per_rank = omp_get_num_procs() / local_ranks;
  const int nt = threads > 0 ? (int)threads : per_rank > 0 ? per_rank : 1;
  omp_set_num_threads(nt);
  openblas_set_num_threads(nt);
  b.nt = nt;
  b.n_img = n;
  b.n_ref = R;
  b.rb = rb;
  spf_share(n, b.rank, b.size, &b.first_img, &b.n_mine);
  int64_t rf, rcount;
  spf_share(R, b.rank, b.size, &rf, &rcount);

  /* ---- Detector: the default detector's q range on n x n pixels ---- */
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = g.ny = pix;
  g.distance_m *= (double)pix / 128.0;
  spf_detector *det = NULL;
  int rc = spf_detector_make(&g, &det);
  if (rc) fail("detector", rc);
  const int64_t np = det->n_pixels;
  b.np = np;
  if ((int64_t)((n + b.size - 1) / b.size) * np > INT32_MAX)
    fail("an image block exceeds MPI's int count", SPF_ERR_SIZE);

  /* B keeps its slices if they fit: by default a quarter of the node's memory, shared. */
  const double slice_bytes = (double)rcount * (double)np * sizeof(float);
  double budget = (double)slice_mib * 1048576.0;
  if (slice_mib < 0) budget = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE) / 4.0 / local_ranks;
  b.keep_slices = slice_bytes <= budget;
  {
    /* Every rank must take the same path (the largest share decides). */
    int keep = b.keep_slices;
#ifdef SPINIFEL_HAVE_MPI
    if (b.size > 1) MPI_Allreduce(MPI_IN_PLACE, &keep, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
#endif
    b.keep_slices = keep;
  }

  if (b.rank == 0) {
    printf("command:%s", b.size > 1 ? " mpirun -np" : "");
    if (b.size > 1) printf(" %d", b.size);
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("settings: %d rank%s (%d on this node), %d thread%s per rank, MPI %s; images %lld (%lld..%lld per rank), "
           "refs %lld (B: %lld..%lld per rank), detector %lld x %lld = %lld pixels, M %lld, ref batch %lld, "
           "repeat %lld, seed %lld\n",
           b.size, b.size > 1 ? "s" : "", local_ranks, nt, nt > 1 ? "s" : "",
           spf_mpi_available() ? "built in" : "not built",
           (long long)n, (long long)(n / b.size), (long long)((n + b.size - 1) / b.size), (long long)R,
           (long long)(R / b.size), (long long)((R + b.size - 1) / b.size), (long long)pix, (long long)pix,
           (long long)np, (long long)M, (long long)rb, (long long)repeat, (long long)seed);
    printf("openblas: core %s, config %s, OPENBLAS_CORETYPE=%s\n", openblas_get_corename(), openblas_get_config(),
           core ? core : "unset");
    if (b.size == 1)
      printf("note: one rank, so A and B do the same work (B: no ring, no reduction); compare under mpirun -np 2+\n");
  }

  /* ---- Synthetic data (setup, not timed below) ---- */
  const double t_setup = omp_get_wtime();
  const int64_t n3 = M * M * M;
  double *rho = xmalloc(sizeof(double) * (size_t)n3, "density");
  double *u = xmalloc(sizeof(double) * (size_t)n3, "autocorrelation");
  {
    /* A random blob of radius M/6 about the centre: the same on every rank (one seed). */
    spf_rng r;
    spf_rng_seed(&r, (uint64_t)seed, UINT64_MAX);
    const double c = (double)(M / 2), rad = (double)M / 6.0;
    for (int64_t z = 0; z < M; z++)
      for (int64_t y = 0; y < M; y++)
        for (int64_t x = 0; x < M; x++) {
          const double d2 = (x - c) * (x - c) + (y - c) * (y - c) + (z - c) * (z - c);
          const double v = spf_rng_uniform(&r);
          rho[(z * M + y) * M + x] = d2 <= rad * rad ? v : 0.0;
        }
    if ((rc = spf_autocorrelation(M, rho, u, nt))) fail("autocorrelation", rc);
  }
  b.u = u;
  if ((rc = spf_slicer_make(M, np, det->s, det->s_max, 1.0, SLICE_TOL, rb, nt, &b.sl))) fail("slicer", rc);
  if ((rc = spf_slicer_set_volume(b.sl, u))) fail("set_volume", rc);
  b.q = xmalloc(sizeof(double) * 4 * (size_t)rb, "quaternions");
  b.rot = xmalloc(sizeof(double) * 9 * (size_t)rb, "matrices");
  float *images = xmalloc(sizeof(float) * (size_t)(b.n_mine * np), "images");
  {
    /* Image i's orientation and noise come from its own streams: the data does not
     * depend on the number of ranks. */
    for (int64_t f = 0; f < b.n_mine; f += rb) {
      const int64_t c = b.n_mine - f < rb ? b.n_mine - f : rb;
      for (int64_t j = 0; j < c; j++) {
        spf_rng r;
        spf_rng_seed(&r, (uint64_t)seed, (uint64_t)(b.first_img + f + j));
        spf_random_rotation(&r, b.q + 4 * j);
        spf_quat_to_matrix(b.q + 4 * j, b.rot + 9 * j);
      }
      if ((rc = spf_slicer_slice(b.sl, c, b.rot, images + f * np))) fail("slice images", rc);
    }
    for (int64_t i = 0; i < b.n_mine; i++) {
      float *img = images + i * np;
      double ss = 0;
      for (int64_t p = 0; p < np; p++) ss += (double)img[p] * img[p];
      const double sigma = NOISE_FRACTION * sqrt(ss / (double)np);
      spf_rng r;
      spf_rng_seed(&r, (uint64_t)seed + 1, (uint64_t)(b.first_img + i));
      for (int64_t p = 0; p < np; p++) img[p] += (float)(sigma * spf_rng_normal(&r));
    }
  }
  b.images = images;
  spf_match_default_options(&b.mo); /* per-image scale, unweighted */
  b.mo.nthreads = nt;
  {
    double ts = omp_get_wtime() - t_setup;
    max_over_ranks(&b, &ts, 1);
    if (b.rank == 0) {
      printf("setup: volume, slicer and the images in %.2f s [not timed below]\n", ts);
      printf("B model slices: %lld refs x %lld pixels = %.1f MiB per rank, %s (budget %.0f MiB per rank%s)\n",
             (long long)((R + b.size - 1) / b.size), (long long)np, slice_bytes / 1048576.0,
             b.keep_slices ? "kept for the generation (sliced once)"
                           : "do not fit: sliced again for every visiting block",
             budget / 1048576.0,
             slice_mib < 0 ? ": a quarter of the node's memory, --slice-mib to change" : ", --slice-mib");
    }
  }

  /* ---- The two modes, alternating ---- */
  int64_t *best_a = xmalloc(sizeof(int64_t) * (size_t)b.n_mine, "best A");
  int64_t *best_b = xmalloc(sizeof(int64_t) * (size_t)b.n_mine, "best B");
  float *dist_a = xmalloc(sizeof(float) * (size_t)b.n_mine, "distances A");
  float *dist_b = xmalloc(sizeof(float) * (size_t)b.n_mine, "distances B");
  mode_stats best_st[2];
  int best_rep[2] = {0, 0};
  double *totals = xmalloc(sizeof(double) * 2 * (size_t)repeat, "totals");
  for (int rep = 0; rep < repeat; rep++) {
    mode_stats st[2];
    run_split_images(&b, best_a, dist_a, &st[0]);
    run_split_refs(&b, best_b, dist_b, &st[1]);
    for (int m = 0; m < 2; m++) {
      max_over_ranks(&b, st[m].t, N_TIMES);
      max_over_ranks(&b, &st[m].ring_bytes, 1);
      st[m].sliced_all = st[m].sliced;
      sum_over_ranks(&b, &st[m].sliced_all);
      max_over_ranks(&b, &st[m].sliced, 1);
      totals[2 * rep + m] = st[m].t[T_TOTAL];
      if (rep == 0 || st[m].t[T_TOTAL] < best_st[m].t[T_TOTAL]) {
        best_st[m] = st[m];
        best_rep[m] = rep;
      }
    }
  }

  /* ---- Same best reference per image? (last repetition) ---- */
  int64_t differ = 0, near_tie = 0;
  for (int64_t i = 0; i < b.n_mine; i++)
    if (best_a[i] != best_b[i]) {
      differ++;
      near_tie += fabsf(dist_a[i] - dist_b[i]) <= 1e-5f * fabsf(dist_a[i]);
    }
  int64_t counts2[2] = {differ, near_tie};
  if ((rc = spf_comm_sum_int64(&world, counts2, 2))) fail("sum", rc);
  differ = counts2[0];
  near_tie = counts2[1];

  /* A sanity figure: the orientations found against the truth (rank 0 regenerates the
   * true ones from the per-image seeds). */
  int64_t *counts = xmalloc(sizeof(int64_t) * (size_t)b.size, "counts");
  for (int r = 0; r < b.size; r++) {
    int64_t f;
    spf_share(n, r, b.size, &f, &counts[r]);
  }
  int64_t *best_all = b.rank == 0 ? xmalloc(sizeof(int64_t) * (size_t)n, "all best") : NULL;
  if ((rc = spf_comm_gather(&world, best_b, b.n_mine, best_all, counts, sizeof(int64_t), 0))) fail("gather", rc);
  double med = NAN, p90 = NAN;
  if (b.rank == 0) {
    double *qt = xmalloc(sizeof(double) * 4 * (size_t)n, "true orientations");
    double *qf = xmalloc(sizeof(double) * 4 * (size_t)n, "found orientations");
    for (int64_t i = 0; i < n; i++) {
      spf_rng r;
      spf_rng_seed(&r, (uint64_t)seed, (uint64_t)i);
      spf_random_rotation(&r, qt + 4 * i);
      if ((rc = spf_orientation_grid(R, best_all[i], 1, qf + 4 * i))) fail("found orientation", rc);
    }
    med = spf_orientation_error_median(n, qt, qf, &p90);
    free(qt);
    free(qf);
  }
  double mem = peak_rss_mib();
  max_over_ranks(&b, &mem, 1);

  if (b.rank == 0) {
    print_mode(&b, "A split images", &best_st[0], best_rep[0], (int)repeat);
    print_mode(&b, "B split references", &best_st[1], best_rep[1], (int)repeat);
    if (repeat > 1) {
      printf("totals per repetition (s):");
      for (int rep = 0; rep < repeat; rep++)
        printf(" A %.3f B %.3f%s", totals[2 * rep], totals[2 * rep + 1], rep + 1 < repeat ? "," : "");
      printf("\n");
    }
    printf("agree: %s (%lld of %lld images have a different best reference in A and B)\n", differ ? "no" : "yes",
           (long long)differ, (long long)n);
    if (differ) printf("  of those, %lld differ by a near tie (distances within 1e-5 relative)\n", (long long)near_tie);
    printf("check: median orientation error %.2f deg (90th percentile %.2f), grid ball radius %.2f deg\n", med, p90,
           spf_orientation_ball_radius(R) * 180.0 / M_PI);
    const double ratio = best_st[1].t[T_TOTAL] / best_st[0].t[T_TOTAL];
    printf("ratio B/A (total time): %.3f (%s)%s\n", ratio, ratio < 1 ? "B faster" : ratio > 1 ? "A faster" : "equal",
           b.size == 1 ? " [one rank: same work, the ratio is noise]" : "");
    printf("peak memory: %.0f MiB (max over ranks, ru_maxrss)\n", mem);
  }

  spf_slicer_free(b.sl);
  spf_detector_free(det);
  free(rho); free(u); free(images); free(b.q); free(b.rot);
  free(best_a); free(best_b); free(dist_a); free(dist_b); free(totals); free(counts); free(best_all);
#ifdef SPINIFEL_HAVE_MPI
  MPI_Finalize();
#endif
  return differ ? 1 : 0;
}
