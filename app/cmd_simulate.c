/* spinifel simulate: diffraction images of a molecule in random orientations. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "progress.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: spinifel simulate -o OUT.h5 [--emc OUT.emc] [options]\n"
          "  Simulate diffraction images of one molecule in uniformly random orientations.\n"
          "\n"
          "molecule:\n"
          "  --pdb FILE          PDB structure (ATOM/HETATM, first model; water skipped)\n"
          "  --assembly          apply the PDB's BIOMT assembly of biomolecule 1\n"
          "  --atoms N           atoms of the built-in phantom when no --pdb (default 2000)\n"
          "detector:\n"
          "  --pixels N          N x N pixels (default 128)\n"
          "  --pixel-size M      pixel size in metres (default 3e-4)\n"
          "  --distance M        sample-detector distance in metres (default 0.1)\n"
          "  --energy EV         photon energy in eV (default 6000)\n"
          "  --beamstop S        mask pixels with |s| below S in 1/A (default 0)\n"
          "  --bin2              bin 2x2 before simulating (positions averaged, counts summed)\n"
          "beam and noise:\n"
          "  --images N          number of images (default 1000)\n"
          "  --fluence F         photons per um^2 per pulse (default 1e12)\n"
          "  --jitter R          relative spread of the per-shot fluence (default 0)\n"
          "  --background B      mean background photons per pixel (default 0)\n"
          "  --no-noise          write expected counts instead of Poisson samples\n"
          "  --quiet             no progress on stderr (a live line on a terminal, timestamped lines otherwise)\n"
          "  --seed S            random seed (default 1)\n"
          "output:\n"
          "  -o, --output FILE   the HDF5 dataset\n"
          "  --emc FILE          also (or only) the photon counts as an EMC sparse photon file\n"
          "                      (Dragonfly's format; needs photon noise)\n"
          "  --emc-detector FILE its detector file (default: FILE without .emc, plus .det.dat;\n"
          "                      a name ending in .h5 gives the HDF5 form)\n"
          "  --mrc FILE          reference density map (default: OUT with .truth.mrc)\n"
          "  --voxel A           voxel of the reference map in Angstrom (default 1)\n"
          "  --intensity-out F   also write the true 3D intensity |F(s)|^2 (HDF5: dataset 'intensity' with\n"
          "                      the attributes of reconstruct's results.h5) on the grid reconstruct uses\n"
          "                      for this dataset with the same M and oversampling (spinifel fsc --intensity)\n"
          "  --intensity-M M     its size, odd (default 31, reconstruct's default)\n"
          "  --intensity-oversampling X  the grid's oversampling (default 1, what reconstruct uses)\n"
          "  --intensity-unit U  e2: |F|^2 in electrons^2 (default); photons-per-sr: times the mean\n"
          "                      fluence and r_e^2; photons-per-pixel: times the solid angle of a pixel\n"
          "                      at the beam, (pixel / distance)^2 (the data's unit at low angle)\n"
          "  --compress L        deflate level 0-9 (default 0)\n"
          "  --bursts N          a stream for spinifel watch: -o names a folder (created) that receives N\n"
          "                      files PREFIX0001.h5 .. of --images images each, each written under a\n"
          "                      temporary name and renamed when complete; together they are the images\n"
          "                      of one run of N x --images images with the same seed\n"
          "  --burst-delay S     wait S seconds after each burst but the last (default 0)\n"
          "  --burst-prefix P    the bursts' file names start with P (default burst_)\n"
          "  --tol T             structure-factor accuracy (default 1e-4)\n"
          "  --threads K         threads (default: all)\n"
          "examples:\n"
          "  spinifel simulate --pdb 2cex.pdb --images 10000 -o 2cex.h5\n"
          "  spinifel simulate --images 2000 --pixels 32 --distance 0.03 --no-noise -o phantom.h5\n"
          "  spinifel simulate --bursts 5 --burst-delay 60 --images 2000 --pixels 64 -o incoming\n"
          "  spinifel simulate --pdb 2cex.pdb --pixels 101 --distance 0.53 --beamstop 0.00273 \\\n"
          "      --fluence 8e13 --images 5000 -o photons.h5 --emc photons.emc   (photon-limited)\n");
}

/* --bursts: the images go to one file per burst, each renamed into place when complete. */
typedef struct {
  const char *dir, *prefix;
  int64_t per, count, current; /* images per burst, bursts, the open burst (-1: none) */
  double delay;                /* seconds after each burst but the last */
  spf_dataset_header h;        /* n_images: per */
  const double *s;
  const uint8_t *mask;
  int quiet;
} bursts_ctx;

typedef struct {
  spf_dataset_writer *w;       /* NULL: no HDF5 output */
  spf_photons_writer *photons; /* NULL: no EMC output */
  progress_bar *bar;
  char *msg;
  size_t msg_len;
  const char *out; /* the HDF5 output's name, for messages */
  bursts_ctx *bursts; /* NULL: one file */
} sink_ctx;

static void burst_path(const bursts_ctx *b, int64_t k, char *out, size_t len)
{
  snprintf(out, len, "%.3000s/%.200s%04lld.h5", b->dir, b->prefix, (long long)(k + 1));
}

/* Close the open burst (renamed into place), say so, wait the delay before the next. */
static int burst_close(sink_ctx *s)
{
  bursts_ctx *b = s->bursts;
  if (b->current < 0) return SPF_OK;
  const int rc = spf_dataset_close(s->w, s->msg, s->msg_len);
  s->w = NULL;
  if (rc) return rc;
  char path[3300];
  burst_path(b, b->current, path, sizeof path);
  if (!b->quiet) {
    const int mode = progress_mode(0);
    if (mode == PROGRESS_LINES) progress_stamp();
    fprintf(stderr, "%swrote burst %lld of %lld: %s\n", mode == PROGRESS_LIVE ? "\r" : "",
            (long long)b->current + 1, (long long)b->count, path);
    fflush(stderr);
  }
  if (b->current + 1 < b->count && b->delay > 0) {
    struct timespec t = {(time_t)b->delay, (long)((b->delay - floor(b->delay)) * 1e9)};
    nanosleep(&t, NULL);
  }
  b->current = -1;
  return SPF_OK;
}

static int burst_open(sink_ctx *s, int64_t k)
{
  bursts_ctx *b = s->bursts;
  char path[3300];
  burst_path(b, k, path, sizeof path);
  int rc = spf_dataset_create(path, &b->h, &s->w, s->msg, s->msg_len);
  if (!rc && (rc = spf_dataset_write_geometry(s->w, b->s, b->mask)) == SPF_ERR_IO)
    snprintf(s->msg, s->msg_len, "%s: cannot write the detector geometry (disk full?)", path);
  if (rc && s->w) {
    spf_dataset_abort(s->w);
    s->w = NULL;
  }
  if (!rc) b->current = k;
  return rc;
}

/* The batch split over the bursts it falls in. */
static int burst_sink(sink_ctx *s, int64_t first, int64_t count, const float *images, const double *quats,
                      int64_t n_pixels)
{
  bursts_ctx *b = s->bursts;
  int rc = SPF_OK;
  while (!rc && count > 0) {
    const int64_t k = first / b->per, local = first - k * b->per;
    const int64_t take = b->per - local < count ? b->per - local : count;
    if (k != b->current) {
      rc = burst_close(s);
      if (!rc) rc = burst_open(s, k);
    }
    if (!rc) rc = spf_dataset_write_images(s->w, local, take, images, quats);
    if (rc == SPF_ERR_IO) snprintf(s->msg, s->msg_len, "burst %lld: cannot write images (disk full?)", (long long)k + 1);
    first += take;
    count -= take;
    images += take * n_pixels;
    quats += 4 * take;
  }
  return rc;
}

static int sink(void *ctx, int64_t first, int64_t count, const float *images, const double *quats)
{
  sink_ctx *s = ctx;
  if (s->bursts) return burst_sink(s, first, count, images, quats, s->bursts->h.nx * s->bursts->h.ny);
  int rc = s->w ? spf_dataset_write_images(s->w, first, count, images, quats) : SPF_OK;
  if (rc == SPF_ERR_IO)
    snprintf(s->msg, s->msg_len, "%s: cannot write images %lld to %lld (disk full?)", s->out, (long long)first,
             (long long)(first + count - 1));
  if (!rc && s->photons) rc = spf_photons_write(s->photons, count, images, s->msg, s->msg_len);
  return rc;
}

static void progress(void *ctx, int64_t done, int64_t total) { progress_update(ctx, done, total); }

int cmd_simulate(int argc, char **argv)
{
  const char *C = "simulate";
  const char *pdb = NULL, *out = NULL, *mrc = NULL, *iout = NULL, *iunit = "e2", *emc = NULL, *emc_det = NULL;
  const char *burst_prefix = "burst_";
  int64_t bursts = 0;
  double burst_delay = 0;
  int assembly = 0, bin2 = 0, noise = 1, quiet = 0;
  int64_t atoms = 2000, pixels = 128, images = 1000, seed = 1, compress = 0, threads = 0, intensity_M = 31;
  double pixel_size = 3e-4, distance = 0.1, energy = 6000, beamstop = 0, fluence = 1e12, jitter = 0,
         background = 0, voxel = 1.0, tol = 1e-4, intensity_os = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    int rc = 0;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--assembly")) assembly = 1;
    else if (!strcmp(a, "--bin2")) bin2 = 1;
    else if (!strcmp(a, "--no-noise")) noise = 0;
    else if (!strcmp(a, "--quiet")) quiet = 1;
    else if (!strcmp(a, "--pdb") || !strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--mrc") ||
             !strcmp(a, "--intensity-out") || !strcmp(a, "--intensity-unit") || !strcmp(a, "--emc") ||
             !strcmp(a, "--emc-detector") || !strcmp(a, "--burst-prefix")) {
      if (!(v = arg_value(C, argc, argv, &i))) return 2;
      if (!strcmp(a, "--pdb")) pdb = v;
      else if (!strcmp(a, "--mrc")) mrc = v;
      else if (!strcmp(a, "--intensity-out")) iout = v;
      else if (!strcmp(a, "--intensity-unit")) iunit = v;
      else if (!strcmp(a, "--emc")) emc = v;
      else if (!strcmp(a, "--emc-detector")) emc_det = v;
      else if (!strcmp(a, "--burst-prefix")) burst_prefix = v;
      else out = v;
    } else {
      if (!(v = arg_value(C, argc, argv, &i))) return 2;
      if (!strcmp(a, "--atoms")) rc = arg_int64(C, a, v, 1, 10000000, &atoms);
      else if (!strcmp(a, "--pixels")) rc = arg_int64(C, a, v, 2, 4096, &pixels);
      else if (!strcmp(a, "--images")) rc = arg_int64(C, a, v, 1, 100000000, &images);
      else if (!strcmp(a, "--seed")) rc = arg_int64(C, a, v, 0, INT64_MAX, &seed);
      else if (!strcmp(a, "--compress")) rc = arg_int64(C, a, v, 0, 9, &compress);
      else if (!strcmp(a, "--threads")) rc = arg_int64(C, a, v, 0, 1024, &threads);
      else if (!strcmp(a, "--pixel-size")) rc = arg_double(C, a, v, 1e-7, 1, &pixel_size);
      else if (!strcmp(a, "--distance")) rc = arg_double(C, a, v, 1e-4, 100, &distance);
      else if (!strcmp(a, "--energy")) rc = arg_double(C, a, v, 10, 1e6, &energy);
      else if (!strcmp(a, "--beamstop")) rc = arg_double(C, a, v, 0, 100, &beamstop);
      else if (!strcmp(a, "--fluence")) rc = arg_double(C, a, v, 0, 1e20, &fluence);
      else if (!strcmp(a, "--jitter")) rc = arg_double(C, a, v, 0, 9, &jitter);
      else if (!strcmp(a, "--background")) rc = arg_double(C, a, v, 0, 1e9, &background);
      else if (!strcmp(a, "--voxel")) rc = arg_double(C, a, v, 0.05, 100, &voxel);
      else if (!strcmp(a, "--tol")) rc = arg_double(C, a, v, 1e-5, 0.1, &tol);
      else if (!strcmp(a, "--intensity-M")) rc = arg_int64(C, a, v, 3, 1001, &intensity_M);
      else if (!strcmp(a, "--bursts")) rc = arg_int64(C, a, v, 1, 1000000, &bursts);
      else if (!strcmp(a, "--burst-delay")) rc = arg_double(C, a, v, 0, 86400, &burst_delay);
      else if (!strcmp(a, "--intensity-oversampling")) rc = arg_double(C, a, v, 1, 16, &intensity_os);
      else {
        fprintf(stderr, "spinifel simulate: unknown option '%s' (try --help)\n", a);
        return 2;
      }
      if (rc) return rc;
    }
  }
  if (!out && !emc) {
    fprintf(stderr, "spinifel simulate: an output file is required (-o OUT.h5 and/or --emc OUT.emc)\n");
    return 2;
  }
  if (intensity_M % 2 == 0) {
    fprintf(stderr, "spinifel simulate: --intensity-M must be odd, got %lld\n", (long long)intensity_M);
    return 2;
  }
  if (strcmp(iunit, "e2") && strcmp(iunit, "photons-per-sr") && strcmp(iunit, "photons-per-pixel")) {
    fprintf(stderr, "spinifel simulate: --intensity-unit: '%s' is not e2, photons-per-sr or photons-per-pixel\n",
            iunit);
    return 2;
  }
  if (bursts && (!out || emc)) {
    fprintf(stderr, "spinifel simulate: --bursts writes HDF5 bursts into the folder -o names (no --emc)\n");
    return 2;
  }
  if (!bursts && (burst_delay > 0 || strcmp(burst_prefix, "burst_"))) {
    fprintf(stderr, "spinifel simulate: --burst-delay and --burst-prefix go with --bursts\n");
    return 2;
  }
  if (strchr(burst_prefix, '/') || burst_prefix[0] == '.') {
    fprintf(stderr, "spinifel simulate: --burst-prefix '%s': a file name start, without '/' or a leading '.'\n",
            burst_prefix);
    return 2;
  }
  char burst_dir[3000] = "";
  if (bursts) {
    /* The folder, without trailing slashes (its name gives the truth map's). */
    snprintf(burst_dir, sizeof burst_dir, "%s", out);
    for (size_t n = strlen(burst_dir); n > 1 && burst_dir[n - 1] == '/'; n--) burst_dir[n - 1] = 0;
    struct stat sb;
    if (mkdir(burst_dir, 0777) != 0 && (stat(burst_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
      fprintf(stderr, "spinifel simulate: cannot create the folder %s\n", burst_dir);
      return 1;
    }
  }
  /* The dataset is HDF5: a name that says otherwise misleads whoever finds the file. */
  if (out && !bursts) {
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (!dot || (slash && dot < slash) || (strcmp(dot, ".h5") && strcmp(dot, ".hdf5"))) {
      fprintf(stderr, "spinifel simulate: -o %s: the dataset is HDF5; give it a name ending in .h5 or .hdf5\n", out);
      return 2;
    }
  }
  if (emc && !noise) {
    fprintf(stderr, "spinifel simulate: --emc stores integer photon counts: drop --no-noise\n");
    return 2;
  }
  if (emc_det && !emc) {
    fprintf(stderr, "spinifel simulate: --emc-detector goes with --emc\n");
    return 2;
  }
  char mrc_default[4096], det_default[4096];
  if (!mrc) {
    const char *base = bursts ? burst_dir : out ? out : emc, *ext = bursts ? "" : out ? ".h5" : ".emc";
    size_t n = strlen(base);
    if (n > strlen(ext) && !strcmp(base + n - strlen(ext), ext)) n -= strlen(ext);
    snprintf(mrc_default, sizeof mrc_default, "%.*s.truth.mrc", (int)n, base);
    mrc = mrc_default;
  }
  if (emc && !emc_det) {
    size_t n = strlen(emc);
    if (n > 4 && !strcmp(emc + n - 4, ".emc")) n -= 4;
    snprintf(det_default, sizeof det_default, "%.*s.det.dat", (int)n, emc);
    emc_det = det_default;
  }
  /* An output that is a directory, default names included, would only fail at the
   * rename, after all the work. */
  const char *outs[5] = {bursts ? NULL : out, emc, mrc, iout, emc_det};
  for (int k = 0; k < 5; k++) {
    struct stat sb;
    if (outs[k] && stat(outs[k], &sb) == 0 && S_ISDIR(sb.st_mode)) {
      fprintf(stderr, "spinifel simulate: %s is a directory, not a file name\n", outs[k]);
      return 1;
    }
  }
  const int nthreads = threads > 0 ? (int)threads : omp_get_max_threads();
  char msg[1024] = "";
  int rc = SPF_OK;
  double t_start = omp_get_wtime();

  /* The molecule, centred on its centre of mass. */
  spf_molecule *mol = NULL;
  if (pdb) {
    spf_pdb_options po;
    spf_pdb_default_options(&po);
    po.assembly = assembly;
    rc = spf_molecule_read_pdb(pdb, &po, &mol, msg, sizeof msg);
  } else {
    rc = spf_molecule_phantom(1, atoms, &mol);
    snprintf(msg, sizeof msg, "built-in phantom: %s", spf_strerror(rc));
  }
  if (rc) {
    fprintf(stderr, "spinifel simulate: %s\n", msg);
    return 1;
  }
  spf_molecule_centre(mol);
  double rg, rmax;
  spf_molecule_size(mol, &rg, &rmax);

  /* The detector. */
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = g.ny = pixels;
  g.pixel_size_m = pixel_size;
  g.distance_m = distance;
  g.photon_energy_ev = energy;
  g.beamstop_inv_m = beamstop * 1e10;
  spf_detector *det = NULL, *full = NULL;
  rc = spf_detector_make(&g, &full);
  if (!rc && bin2) {
    rc = spf_detector_bin2(full, &det);
    spf_detector_free(full);
  } else {
    det = full;
  }
  if (rc) {
    fprintf(stderr, "spinifel simulate: detector: %s\n", spf_strerror(rc));
    spf_molecule_free(mol);
    return 1;
  }

  /* Structure factors, valid to the detector's largest |s|. */
  int *type = malloc(sizeof(int) * (size_t)mol->n_atoms);
  spf_gaussian_form_factor ff[128];
  int n_types = 0;
  spf_scattering *sc = NULL;
  rc = type ? spf_molecule_scattering_types(mol, type, ff, &n_types) : SPF_ERR_ALLOC;
  double t_sf = omp_get_wtime();
  if (!rc) rc = spf_scattering_make(mol->n_atoms, mol->xyz, type, n_types, ff, det->s_max * 1e-10 * (1 + 1e-6), tol,
                                    nthreads, &sc);
  t_sf = omp_get_wtime() - t_sf;
  if (rc) {
    fprintf(stderr, "spinifel simulate: structure factors: %s\n", spf_strerror(rc));
    goto fail;
  }

  /* The dataset, written as the images come. */
  spf_dataset_header h = {.n_images = bursts ? images * bursts : images, .ny = det->g.ny, .nx = det->g.nx, .photon_energy_ev = energy,
                          .distance_m = distance, .pixel_size_m = det->g.pixel_size_m, .has_orientations = 1,
                          .compression = (int)compress};
  snprintf(h.generator, sizeof h.generator,
           "spinifel %s simulate: molecule=%s atoms=%lld images=%lld pixels=%lldx%lld pixel_size=%g distance=%g "
           "energy=%g beamstop=%g fluence=%g/um2 jitter=%g background=%g noise=%s seed=%lld tol=%g bin2=%d",
           SPINIFEL_VERSION, pdb ? pdb : "phantom", (long long)mol->n_atoms, (long long)h.n_images, (long long)det->g.nx,
           (long long)det->g.ny, det->g.pixel_size_m, distance, energy, beamstop, fluence, jitter, background,
           noise ? "poisson" : "none", (long long)seed, tol, bin2);
  spf_dataset_writer *w = NULL;
  spf_photons_writer *pw = NULL;
  msg[0] = 0; /* messages below are the writers' */
  bursts_ctx bc = {burst_dir, burst_prefix, images, bursts, -1, burst_delay, h, det->s, det->mask, quiet};
  bc.h.n_images = images;
  if (bursts)
    snprintf(bc.h.generator + strlen(bc.h.generator), sizeof bc.h.generator - strlen(bc.h.generator),
             " bursts=%lld", (long long)bursts);
  if (out && !bursts) rc = spf_dataset_create(out, &h, &w, msg, sizeof msg);
  if (!rc && out && !bursts && (rc = spf_dataset_write_geometry(w, det->s, det->mask)) == SPF_ERR_IO)
    snprintf(msg, sizeof msg, "%s: cannot write the detector geometry (disk full?)", out);
  if (!rc && emc) rc = spf_photons_create(emc, det->n_pixels, &pw, msg, sizeof msg);
  if (rc) {
    fprintf(stderr, "spinifel simulate: %s\n", *msg ? msg : spf_strerror(rc));
    spf_dataset_abort(w);
    spf_photons_abort(pw);
    goto fail;
  }
  spf_simulate_options so;
  spf_simulate_default_options(&so);
  so.n_images = h.n_images;
  so.seed = (uint64_t)seed;
  so.fluence = fluence * 1e12;
  so.fluence_jitter = jitter;
  so.background = background;
  so.poisson = noise;
  so.nthreads = nthreads;
  spf_sim_pixels px = {det->n_pixels, det->s, NULL, det->mask};
  double *weight = malloc(sizeof(double) * (size_t)det->n_pixels);
  if (!weight) rc = SPF_ERR_ALLOC;
  for (int64_t p = 0; !rc && p < det->n_pixels; p++) weight[p] = det->solid_angle[p] * det->polarization[p];
  px.weight_sr = weight;
  progress_bar bar;
  progress_start(&bar, "simulate", "images", progress_mode(quiet));
  sink_ctx sctx = {w, pw, &bar, msg, sizeof msg, out, bursts ? &bc : NULL};
  spf_simulate_timing tm = {0, 0, 0};
  if (!rc) rc = spf_simulate_images(sc, &px, &so, sink, &sctx, progress, &bar, &tm);
  if (!rc && bursts) rc = burst_close(&sctx);
  if (bursts) w = sctx.w; /* a burst left open by a failure: aborted below */
  progress_finish(&bar);
  free(weight);
  /* The EMC detector file first: if it fails, no photon file appears without it. */
  if (!rc && emc) rc = spf_photons_detector_write(emc_det, det, msg, sizeof msg);
  if (rc) {
    if (*msg) fprintf(stderr, "spinifel simulate: %s\n", msg);
    else fprintf(stderr, "spinifel simulate: %s: %s\n", out ? out : emc, spf_strerror(rc));
    spf_dataset_abort(w);
    spf_photons_abort(pw);
    goto fail;
  }
  double t_close = omp_get_wtime();
  rc = w ? spf_dataset_close(w, msg, sizeof msg) : SPF_OK;
  if (rc) spf_photons_abort(pw);
  else if (pw) rc = spf_photons_close(pw, msg, sizeof msg);
  t_close = omp_get_wtime() - t_close;
  if (rc) {
    fprintf(stderr, "spinifel simulate: %s\n", msg);
    if (emc) unlink(emc_det);
    goto fail;
  }

  /* The reference density map. */
  {
    const int64_t n = 2 * (int64_t)ceil((rmax + 4.0) / voxel) + 1;
    const double origin[3] = {-0.5 * (double)(n - 1) * voxel, -0.5 * (double)(n - 1) * voxel,
                              -0.5 * (double)(n - 1) * voxel};
    float *map = malloc(sizeof(float) * (size_t)(n * n * n));
    rc = map ? spf_scattering_density(mol->n_atoms, mol->xyz, type, n_types, ff, 2 * M_PI * M_PI * voxel * voxel, n,
                                      voxel, origin, nthreads, map)
             : SPF_ERR_ALLOC;
    if (!rc) rc = spf_mrc_write(mrc, map, n, n, n, voxel, origin, msg, sizeof msg);
    free(map);
    if (rc) {
      fprintf(stderr, "spinifel simulate: reference map: %s\n", *msg ? msg : spf_strerror(rc));
      goto fail;
    }
  }
  const double total = omp_get_wtime() - t_start;
  /* The true intensity on reconstruct's grid for this dataset (intensity.h). */
  spf_intensity_grid ig = {0};
  double t_int = omp_get_wtime();
  if (iout) {
    const double fluence_sr = so.fluence * SPF_R_ELECTRON_M * SPF_R_ELECTRON_M; /* photons/sr per e^2 */
    const double pixel_sr = det->g.pixel_size_m * det->g.pixel_size_m / (distance * distance);
    const double scale = !strcmp(iunit, "e2") ? 1.0 : !strcmp(iunit, "photons-per-sr") ? fluence_sr : fluence_sr * pixel_sr;
    char unit[256], gen[1200];
    if (!strcmp(iunit, "e2")) snprintf(unit, sizeof unit, "electrons^2 (|F|^2, F in electrons)");
    else if (!strcmp(iunit, "photons-per-sr"))
      snprintf(unit, sizeof unit, "photons per steradian (fluence %g/um^2 r_e^2 |F|^2)", fluence);
    else
      snprintf(unit, sizeof unit, "photons per pixel at the beam (fluence %g/um^2 r_e^2 (%g m / %g m)^2 |F|^2)",
               fluence, det->g.pixel_size_m, distance);
    snprintf(gen, sizeof gen, "%.1000s; intensity M=%lld oversampling=%g unit=%s", h.generator, (long long)intensity_M,
             intensity_os, iunit);
    const int64_t im = intensity_M;
    double *vol = malloc(sizeof(double) * (size_t)(im * im * im));
    rc = vol ? spf_intensity_grid_make(im, intensity_os, det->n_pixels, det->s, det->mask, &ig)
             : SPF_ERR_ALLOC;
    if (!rc) rc = spf_intensity_of_molecule(mol->n_atoms, mol->xyz, type, n_types, ff, &ig, scale, tol, nthreads, vol);
    *msg = 0;
    if (!rc) rc = spf_intensity_write(iout, &ig, vol, unit, gen, msg, sizeof msg);
    free(vol);
    if (rc) {
      fprintf(stderr, "spinifel simulate: intensity: %s\n", *msg ? msg : spf_strerror(rc));
      goto fail;
    }
  }
  t_int = omp_get_wtime() - t_int;
  printf("molecule: %s, %lld atoms, radius of gyration %.1f A, max radius %.1f A\n", pdb ? pdb : "built-in phantom",
         (long long)mol->n_atoms, rg, rmax);
  printf("detector: %lld x %lld pixels, resolution %.2f A at the edge, %.2f A in the corner\n", (long long)det->g.nx,
         (long long)det->g.ny, det->resolution_edge_m * 1e10, det->resolution_corner_m * 1e10);
  printf("images: %lld in %.2f s = %.0f images/s (structure factor volume %.2f s, slicing %.2f s, noise %.2f s, "
         "I/O %.2f s) with %d threads\n",
         (long long)h.n_images, total, (double)h.n_images / total, t_sf, tm.slicing, tm.noise, tm.output + t_close, nthreads);
  if (bursts) printf("wrote %lld bursts of %lld images into %s, and %s\n", (long long)bursts, (long long)images, burst_dir, mrc);
  else if (out) printf("wrote %s and %s\n", out, mrc);
  else printf("wrote %s\n", mrc);
  if (emc) printf("wrote %s (EMC photons) and %s (its detector)\n", emc, emc_det);
  if (iout)
    printf("wrote %s: intensity %lld^3 in %.2f s, voxel %.5f 1/A, corner pixel %.4f 1/A (%.2f A), edge %.4f 1/A, beam "
           "stop %.4f 1/A\n",
           iout, (long long)ig.M, t_int, ig.voxel_inv_angstrom, ig.corner_inv_angstrom, 1 / ig.corner_inv_angstrom,
           ig.edge_inv_angstrom, ig.beamstop_inv_angstrom);
fail:
  spf_scattering_free(sc);
  free(type);
  spf_detector_free(det);
  spf_molecule_free(mol);
  return rc ? 1 : 0;
}
