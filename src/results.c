/* Checkpoints and results in HDF5 (see results.h). */
#include "spinifel/results.h"

#include <complex.h> /* before fftw3.h: fftw_complex is then double complex */
#include <fcntl.h>
#include <math.h>
#include <fftw3.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fftw_threads.h"
#include "hdf5_util.h"
#include "spinifel/error.h"
#include "spinifel/likelihood.h" /* SPF_LIKELIHOOD_TRACK_MAX: the references a state keeps */
#include "tempfile.h"

#define CHECKPOINT_FORMAT "spinifel checkpoint 1"
/* M^3 doubles must fit in memory and in FFTW's int dimensions long before this. */
#define MAX_M 65536


int spf_run_state_make(int64_t M, int64_t n_images, spf_run_state *st)
{
  if (!st) return SPF_ERR_NULL;
  memset(st, 0, sizeof *st);
  if (M < 1 || n_images < 1) return SPF_ERR_SIZE;
  if (M > MAX_M) return SPF_ERR_TOO_BIG;
  const size_t n = (size_t)n_images, n3 = (size_t)(M * M * M);
  st->M = M;
  st->n_images = n_images;
  st->last_fraction_changed = 1;
  st->orientations = malloc(sizeof(double) * 4 * n);
  st->best = malloc(sizeof(int64_t) * n);
  st->best_dist = malloc(sizeof(float) * n);
  st->gap = malloc(sizeof(float) * n);
  st->fluence = malloc(sizeof(double) * n);
  st->entropy = malloc(sizeof(float) * n);
  st->rho = malloc(sizeof(double) * n3);
  st->u = malloc(sizeof(double) * n3);
  st->u_model = malloc(sizeof(double) * n3);
  st->support = malloc(n3);
  st->rho_next = calloc(n3, sizeof(double));
  st->support_next = calloc(n3, 1);
  if (!st->orientations || !st->best || !st->best_dist || !st->gap || !st->fluence || !st->entropy || !st->rho ||
      !st->u || !st->u_model || !st->support || !st->rho_next || !st->support_next) {
    spf_run_state_free(st);
    return SPF_ERR_ALLOC;
  }
  for (size_t i = 0; i < n; i++) {
    st->fluence[i] = 1;
    st->entropy[i] = NAN;
  }
  return SPF_OK;
}

/* Every image's kept references none (-1, probability 0). */
static void clear_kept(spf_run_state *st)
{
  for (size_t e = 0; e < (size_t)st->n_images * (size_t)st->posterior_k; e++) {
    st->posterior_ref[e] = -1;
    st->posterior_p[e] = 0;
  }
}

int spf_run_state_track(spf_run_state *st, int k)
{
  if (!st) return SPF_ERR_NULL;
  if (k < 1 || k > SPF_LIKELIHOOD_TRACK_MAX || st->n_images < 1) return SPF_ERR_ARG;
  const size_t e = (size_t)st->n_images * (size_t)k;
  int32_t *r = malloc(sizeof(int32_t) * e);
  float *p = malloc(sizeof(float) * e);
  if (!r || !p) {
    free(r);
    free(p);
    return SPF_ERR_ALLOC;
  }
  free(st->posterior_ref);
  free(st->posterior_p);
  st->posterior_ref = r;
  st->posterior_p = p;
  st->posterior_k = k;
  clear_kept(st);
  return SPF_OK;
}

void spf_run_state_copy_volumes(spf_run_state *dst, const spf_run_state *src)
{
  const size_t n3 = (size_t)(src->M * src->M * src->M);
  dst->generation = src->generation;
  dst->have_model = src->have_model;
  dst->last_fraction_changed = src->last_fraction_changed;
  dst->n_references = src->n_references;
  memcpy(dst->rho, src->rho, sizeof(double) * n3);
  memcpy(dst->u, src->u, sizeof(double) * n3);
  memcpy(dst->u_model, src->u_model, sizeof(double) * n3);
  memcpy(dst->support, src->support, n3);
  memcpy(dst->rho_next, src->rho_next, sizeof(double) * n3);
  memcpy(dst->support_next, src->support_next, n3);
}

void spf_run_state_copy_images(spf_run_state *dst, int64_t dst_first, const spf_run_state *src, int64_t src_first,
                               int64_t count)
{
  if (count <= 0) return;
  const size_t n = (size_t)count, d = (size_t)dst_first, s = (size_t)src_first;
  memcpy(dst->orientations + 4 * d, src->orientations + 4 * s, sizeof(double) * 4 * n);
  memcpy(dst->best + d, src->best + s, sizeof(int64_t) * n);
  memcpy(dst->best_dist + d, src->best_dist + s, sizeof(float) * n);
  memcpy(dst->gap + d, src->gap + s, sizeof(float) * n);
  memcpy(dst->fluence + d, src->fluence + s, sizeof(double) * n);
  memcpy(dst->entropy + d, src->entropy + s, sizeof(float) * n);
  if (dst->posterior_k > 0 && dst->posterior_k == src->posterior_k) {
    const size_t k = (size_t)dst->posterior_k;
    memcpy(dst->posterior_ref + k * d, src->posterior_ref + k * s, sizeof(int32_t) * k * n);
    memcpy(dst->posterior_p + k * d, src->posterior_p + k * s, sizeof(float) * k * n);
  }
}

void spf_run_state_free(spf_run_state *st)
{
  if (!st) return;
  free(st->orientations);
  free(st->best);
  free(st->best_dist);
  free(st->gap);
  free(st->fluence);
  free(st->entropy);
  st->fluence = NULL;
  st->entropy = NULL;
  free(st->posterior_ref);
  free(st->posterior_p);
  st->posterior_ref = NULL;
  st->posterior_p = NULL;
  st->posterior_k = 0;
  free(st->rho);
  free(st->u);
  free(st->u_model);
  free(st->support);
  free(st->rho_next);
  free(st->support_next);
  st->rho_next = NULL;
  st->support_next = NULL;
  st->orientations = NULL;
  st->best = NULL;
  st->best_dist = st->gap = NULL;
  st->rho = st->u = st->u_model = NULL;
  st->support = NULL;
}

/* ------------------------------------------------------------------ writing */

typedef struct {
  hid_t file;
  char *tmp;
} out_file;

static int out_open(out_file *o, const char *path, double bytes, char *msg, size_t msg_len)
{
  o->file = -1;
  o->tmp = malloc(strlen(path) + 32);
  if (!o->tmp) return SPF_ERR_ALLOC;
  spf_temp_name(path, o->tmp, strlen(path) + 32); /* fits: a pid has at most 20 digits */
  /* 1.8 format: a config text over 64 KiB needs dense attribute storage. */
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  /* That format gives the root group an object header with times unless told not to:
   * without them the same content is the same bytes (a resumed run's files equal an
   * uninterrupted one's). */
  H5Pset_obj_track_times(fcpl, 0);
  o->file = H5Fcreate(o->tmp, H5F_ACC_TRUNC, fcpl, fapl);
  H5Pclose(fapl);
  H5Pclose(fcpl);
  if (o->file < 0) {
    say(msg, msg_len, "%s: cannot create (directory missing or not writable?)", path);
    unlink(o->tmp); /* in case HDF5 got as far as creating it */
    free(o->tmp);
    o->tmp = NULL;
    return SPF_ERR_IO;
  }
  /* Room for the whole file and a margin for HDF5's metadata, checked before anything
   * large is written (see spf_check_free_space). */
  if (spf_check_free_space(o->tmp, bytes + (4 << 20)) != SPF_OK) {
    H5Fclose(o->file);
    unlink(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    say(msg, msg_len, "%s: not enough free space for its %.1f MiB", path, bytes / 1048576.0);
    return SPF_ERR_NO_SPACE;
  }
  return SPF_OK;
}

/* rc != 0: give up and remove the temp file. Otherwise close, sync (so the rename never
 * exposes a file whose data is still only in the page cache) and rename into place. */
static int out_close(out_file *o, const char *path, int rc, char *msg, size_t msg_len)
{
  herr_t e = H5Fclose(o->file);
  if (!rc && e < 0) {
    say(msg, msg_len, "%s: cannot finish writing", path);
    rc = SPF_ERR_IO;
  }
  if (!rc) {
    int fd = open(o->tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
      say(msg, msg_len, "%s: cannot sync the temporary file", path);
      rc = SPF_ERR_IO;
    }
    if (fd >= 0) close(fd);
  }
  if (!rc && rename(o->tmp, path) != 0) {
    say(msg, msg_len, "%s: cannot rename the temporary file into place", path);
    rc = SPF_ERR_IO;
  }
  if (rc) unlink(o->tmp);
  free(o->tmp);
  return rc;
}

static int put_array(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims, hid_t file_type,
                     hid_t mem_type, const void *buf, char *msg, size_t msg_len)
{
  hid_t sp = H5Screate_simple(rank, dims, NULL), pl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_obj_track_times(pl, 0); /* no timestamps: same content, same bytes */
  hid_t ds = H5Dcreate2(file, name, file_type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
  herr_t e = ds >= 0 ? H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : -1;
  if (ds >= 0 && H5Dclose(ds) < 0) e = -1;
  H5Pclose(pl);
  H5Sclose(sp);
  if (e < 0) {
    say(msg, msg_len, "%s: cannot write dataset '%s' (disk full?)", path, name);
    return SPF_ERR_IO;
  }
  return SPF_OK;
}

static int put_attr(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *v)
{
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a >= 0 ? H5Awrite(a, mem_type, v) : -1;
  if (a >= 0 && H5Aclose(a) < 0) e = -1;
  H5Sclose(sp);
  return e < 0 ? SPF_ERR_IO : SPF_OK;
}

static int put_attr_string(hid_t loc, const char *name, const char *v)
{
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1);
  int rc = put_attr(loc, name, t, t, v);
  H5Tclose(t);
  return rc;
}

/* Scalar attributes on /, one message for all. */
static int put_root_attrs(hid_t file, const char *path, const char *format, const int *ints[2],
                          const char *int_names[2], const double *voxel, const char *config, char *msg, size_t msg_len)
{
  hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
  if (root < 0) return SPF_ERR_IO;
  int rc = format ? put_attr_string(root, "format", format) : SPF_OK;
  for (int i = 0; i < 2 && !rc; i++)
    if (ints[i]) rc = put_attr(root, int_names[i], H5T_STD_I32LE, H5T_NATIVE_INT, ints[i]);
  if (!rc && voxel) rc = put_attr(root, "voxel_angstrom", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, voxel);
  if (!rc) rc = put_attr_string(root, "config", config);
  H5Gclose(root);
  if (rc) say(msg, msg_len, "%s: cannot write the attributes of /", path);
  return rc;
}

/* The unit of reconstruct's intensity: that of the merged data. */
#define RESULTS_INTENSITY_UNIT "photons per pixel (the data's unit: no solid-angle or polarization correction)"
#define INTENSITY_FORMAT "spinifel intensity 1"

/* The grid's figures as attributes of the dataset "intensity" (names in results.h). */
static const char *const GRID_ATTRS[6] = {"voxel_inv_angstrom",  "s_max_inv_angstrom", "oversampling",
                                          "corner_inv_angstrom", "edge_inv_angstrom",  "beamstop_inv_angstrom"};

static void grid_values(const spf_intensity_grid *g, double v[6])
{
  v[0] = g->voxel_inv_angstrom;
  v[1] = g->s_max_inv_angstrom;
  v[2] = g->oversampling;
  v[3] = g->corner_inv_angstrom;
  v[4] = g->edge_inv_angstrom;
  v[5] = g->beamstop_inv_angstrom;
}

static int put_intensity_attrs(hid_t file, const char *path, const spf_intensity_grid *g, const char *unit, char *msg,
                               size_t msg_len)
{
  hid_t ds = H5Dopen2(file, "intensity", H5P_DEFAULT);
  int rc = ds >= 0 ? SPF_OK : SPF_ERR_IO;
  double v[6];
  grid_values(g, v);
  for (int i = 0; i < 6 && !rc; i++) rc = put_attr(ds, GRID_ATTRS[i], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v[i]);
  if (!rc) rc = put_attr_string(ds, "unit", unit);
  if (ds >= 0 && H5Dclose(ds) < 0) rc = SPF_ERR_IO;
  if (rc) say(msg, msg_len, "%s: cannot write the attributes of 'intensity'", path);
  return rc;
}

int spf_checkpoint_write(const char *path, const spf_run_state *st, const char *config, char *msg, size_t msg_len)
{
  if (!path || !st || !config || !st->orientations || !st->best || !st->best_dist || !st->gap || !st->fluence ||
      !st->entropy || !st->rho || !st->u || !st->u_model || !st->support || !st->rho_next || !st->support_next)
    return SPF_ERR_NULL;
  if (st->M < 1 || st->n_images < 1) return SPF_ERR_SIZE;
  if (st->M > MAX_M) return SPF_ERR_TOO_BIG;
  if (st->generation < 0 || (st->have_model != 0 && st->have_model != 1)) return SPF_ERR_ARG;
  quiet_hdf5();
  out_file o;
  const double m3 = (double)st->M * (double)st->M * (double)st->M;
  int rc = out_open(&o, path, (double)st->n_images * (64 + 8.0 * st->posterior_k) + m3 * 42 + (double)strlen(config),
                    msg, msg_len);
  if (rc) return rc;
  const hsize_t m = (hsize_t)st->M, n = (hsize_t)st->n_images;
  const hsize_t dq[2] = {n, 4}, dn[1] = {n}, dv[3] = {m, m, m};
  const struct {
    const char *name;
    int rank;
    const hsize_t *dims;
    hid_t file_type, mem_type;
    const void *buf;
  } sets[] = {{"orientations", 2, dq, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, st->orientations},
              {"best", 1, dn, H5T_STD_I64LE, H5T_NATIVE_INT64, st->best},
              {"best_distance", 1, dn, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, st->best_dist},
              {"gap", 1, dn, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, st->gap},
              {"fluence", 1, dn, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, st->fluence},
              {"entropy", 1, dn, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, st->entropy},
              {"rho", 3, dv, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, st->rho},
              {"u", 3, dv, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, st->u},
              {"u_model", 3, dv, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, st->u_model},
              {"support", 3, dv, H5T_STD_U8LE, H5T_NATIVE_UINT8, st->support},
              {"rho_next", 3, dv, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, st->rho_next},
              {"support_next", 3, dv, H5T_STD_U8LE, H5T_NATIVE_UINT8, st->support_next}};
  for (size_t i = 0; i < sizeof sets / sizeof sets[0] && !rc; i++)
    rc = put_array(o.file, path, sets[i].name, sets[i].rank, sets[i].dims, sets[i].file_type, sets[i].mem_type,
                   sets[i].buf, msg, msg_len);
  if (!rc && st->posterior_k > 0) {
    const hsize_t dk[2] = {n, (hsize_t)st->posterior_k};
    rc = put_array(o.file, path, "posterior_refs", 2, dk, H5T_STD_I32LE, H5T_NATIVE_INT32, st->posterior_ref, msg,
                   msg_len);
    if (!rc)
      rc = put_array(o.file, path, "posterior_probs", 2, dk, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, st->posterior_p, msg,
                     msg_len);
  }
  const int *ints[2] = {&st->generation, &st->have_model};
  const char *int_names[2] = {"generation", "have_model"};
  if (!rc) rc = put_root_attrs(o.file, path, CHECKPOINT_FORMAT, ints, int_names, NULL, config, msg, msg_len);
  if (!rc) {
    hid_t root = H5Gopen2(o.file, "/", H5P_DEFAULT);
    const double refs = (double)st->n_references;
    rc = root >= 0 ? put_attr(root, "last_fraction_changed", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &st->last_fraction_changed)
                   : SPF_ERR_IO;
    if (!rc) rc = put_attr(root, "n_references", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &refs);
    if (root >= 0) H5Gclose(root);
    if (rc) say(msg, msg_len, "%s: cannot write the attributes of /", path);
  }
  return out_close(&o, path, rc, msg, msg_len);
}

int spf_results_write(const char *path, int64_t M, const double *rho, const double *u, int64_t n_images,
                      const double *orientations, const float *best_dist, const float *gap,
                      const double *fluence, const float *entropy, double voxel_angstrom,
                      const spf_intensity_grid *grid, int generations, const char *config, char *msg,
                      size_t msg_len)
{
  if (!path || !rho || !u || !orientations || !config) return SPF_ERR_NULL;
  if (M < 1 || M % 2 == 0 || n_images < 1 || (grid && grid->M != M)) return SPF_ERR_SIZE;
  if (M > MAX_M) return SPF_ERR_TOO_BIG;
  double *intensity = malloc(sizeof(double) * (size_t)(M * M * M));
  if (!intensity) return SPF_ERR_ALLOC;
  int rc = spf_intensity_from_autocorrelation(M, u, intensity);
  if (rc) {
    say(msg, msg_len, "%s: cannot compute the intensity from the autocorrelation (%s)", path, spf_strerror(rc));
    free(intensity);
    return rc;
  }
  quiet_hdf5();
  out_file o;
  rc = out_open(&o, path, (double)n_images * 56 + (double)M * (double)M * (double)M * 24 + (double)strlen(config), msg,
                msg_len);
  if (rc) {
    free(intensity);
    return rc;
  }
  const hsize_t m = (hsize_t)M, n = (hsize_t)n_images;
  const hsize_t dq[2] = {n, 4}, dn[1] = {n}, dv[3] = {m, m, m};
  rc = put_array(o.file, path, "intensity", 3, dv, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, intensity, msg, msg_len);
  free(intensity);
  if (!rc && grid) rc = put_intensity_attrs(o.file, path, grid, RESULTS_INTENSITY_UNIT, msg, msg_len);
  if (!rc) rc = put_array(o.file, path, "autocorrelation", 3, dv, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, u, msg, msg_len);
  if (!rc) rc = put_array(o.file, path, "density", 3, dv, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rho, msg, msg_len);
  if (!rc)
    rc = put_array(o.file, path, "orientations", 2, dq, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, orientations, msg,
                   msg_len);
  if (!rc && best_dist)
    rc = put_array(o.file, path, "best_distance", 1, dn, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, best_dist, msg, msg_len);
  if (!rc && gap) rc = put_array(o.file, path, "confidence", 1, dn, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, gap, msg, msg_len);
  if (!rc && fluence)
    rc = put_array(o.file, path, "fluence", 1, dn, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, fluence, msg, msg_len);
  if (!rc && entropy)
    rc = put_array(o.file, path, "entropy", 1, dn, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, entropy, msg, msg_len);
  const int *ints[2] = {&generations, NULL};
  const char *int_names[2] = {"generations", NULL};
  if (!rc) rc = put_root_attrs(o.file, path, NULL, ints, int_names, &voxel_angstrom, config, msg, msg_len);
  return out_close(&o, path, rc, msg, msg_len);
}

/* ------------------------------------------------------------------ reading */

/* "(a, b, c)" into buf. */
static void format_shape(char *buf, size_t len, int rank, const hsize_t *dims)
{
  size_t at = 0;
  buf[0] = 0;
  for (int k = 0; k <= rank && at < len; k++) {
    int w = k == rank ? snprintf(buf + at, len - at, k ? ")" : "()")
                      : snprintf(buf + at, len - at, "%s%llu", k ? ", " : "(", (unsigned long long)dims[k]);
    if (w < 0) break;
    at += (size_t)w;
  }
}

/* Open a dataset and check its rank and dimensions; -1 (message in msg) if it is
 * missing or has another shape. */
static hid_t open_checked(hid_t file, const char *path, const char *name, int rank, const hsize_t *want, char *msg,
                          size_t msg_len)
{
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
    say(msg, msg_len, "%s: dataset '%s' is missing", path, name);
    return -1;
  }
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
  hsize_t dims[8] = {0};
  int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  if (r > 0 && r <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
  int ok = r == rank;
  for (int k = 0; ok && k < rank; k++) ok = dims[k] == want[k];
  if (sp >= 0) H5Sclose(sp);
  if (!ok) {
    char have[96] = "unreadable", expect[96];
    if (r >= 0 && r <= 8) format_shape(have, sizeof have, r, dims);
    format_shape(expect, sizeof expect, rank, want);
    say(msg, msg_len, "%s: dataset '%s' has shape %s, expected %s", path, name, have, expect);
    if (ds >= 0) H5Dclose(ds);
    return -1;
  }
  return ds;
}

/* Length of a dataset's first dimension (0 if absent or scalar). */
static hsize_t first_dim(hid_t file, const char *name)
{
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return 0;
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
  hsize_t dims[8] = {0};
  if (sp >= 0 && H5Sget_simple_extent_ndims(sp) > 0 && H5Sget_simple_extent_ndims(sp) <= 8)
    H5Sget_simple_extent_dims(sp, dims, NULL);
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  return dims[0];
}

static int get_attr_double(hid_t loc, const char *name, double *v)
{
  if (H5Aexists(loc, name) <= 0) return SPF_ERR_DATA;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  herr_t e = a >= 0 ? H5Aread(a, H5T_NATIVE_DOUBLE, v) : -1;
  if (a >= 0) H5Aclose(a);
  return e < 0 ? SPF_ERR_DATA : SPF_OK;
}

static int get_attr_int(hid_t loc, const char *name, int *v)
{
  if (H5Aexists(loc, name) <= 0) return SPF_ERR_DATA;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  herr_t e = a >= 0 ? H5Aread(a, H5T_NATIVE_INT, v) : -1;
  if (a >= 0) H5Aclose(a);
  return e < 0 ? SPF_ERR_DATA : SPF_OK;
}

/* A text attribute (fixed or variable length) as a malloc'ed string in *out. */
static int get_attr_text(hid_t loc, const char *name, char **out)
{
  *out = NULL;
  if (H5Aexists(loc, name) <= 0) return SPF_ERR_DATA;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return SPF_ERR_DATA;
  hid_t t = H5Aget_type(a);
  int rc = SPF_ERR_DATA;
  if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
    if (H5Tis_variable_str(t) > 0) {
      char *s = NULL;
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      if (H5Aread(a, mt, &s) >= 0 && s) {
        *out = strdup(s);
        rc = *out ? SPF_OK : SPF_ERR_ALLOC;
      }
      if (s) H5free_memory(s);
      H5Tclose(mt);
    } else {
      size_t sz = H5Tget_size(t);
      *out = calloc(sz + 1, 1); /* +1: a string stored without its NUL */
      if (!*out) rc = SPF_ERR_ALLOC;
      else if (sz > 0 && H5Aread(a, t, *out) >= 0) rc = SPF_OK;
    }
  }
  if (rc) {
    free(*out);
    *out = NULL;
  }
  if (t >= 0) H5Tclose(t);
  H5Aclose(a);
  return rc;
}

/* Open an existing HDF5 file for reading; -1 with a one-line message otherwise. */
static hid_t open_read(const char *path, char *msg, size_t msg_len)
{
  quiet_hdf5();
  if (access(path, R_OK) != 0) {
    say(msg, msg_len, "%s: cannot open", path);
    return -1;
  }
  hid_t f = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
  if (f < 0) say(msg, msg_len, "%s: not an HDF5 file, or a damaged one", path);
  return f;
}

int spf_checkpoint_read(const char *path, spf_run_state *st, char *config_out, size_t config_len, char *msg,
                        size_t msg_len)
{
  if (!path || !st || !st->orientations || !st->best || !st->best_dist || !st->gap || !st->fluence ||
      !st->entropy || !st->rho || !st->u || !st->u_model || !st->support || !st->rho_next || !st->support_next)
    return SPF_ERR_NULL;
  if (st->M < 1 || st->n_images < 1) return SPF_ERR_SIZE;
  if (st->M > MAX_M) return SPF_ERR_TOO_BIG;
  hid_t f = open_read(path, msg, msg_len);
  if (f < 0) return SPF_ERR_IO;
  int rc = SPF_OK, generation = 0, have_model = 0;
  double last_changed = 1;
  char *format = NULL, *config = NULL;
  hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
  if (root < 0 || get_attr_text(root, "format", &format) || strcmp(format, CHECKPOINT_FORMAT) != 0) {
    say(msg, msg_len, "%s: not a spinifel checkpoint (attribute 'format' is not '%s')", path, CHECKPOINT_FORMAT);
    rc = SPF_ERR_DATA;
  }
  if (!rc && (get_attr_int(root, "generation", &generation) || get_attr_int(root, "have_model", &have_model) ||
              get_attr_double(root, "last_fraction_changed", &last_changed) || generation < 0 ||
              (have_model != 0 && have_model != 1))) {
    say(msg, msg_len, "%s: attributes 'generation' / 'have_model' / 'last_fraction_changed' missing or invalid", path);
    rc = SPF_ERR_DATA;
  }
  if (!rc && (rc = get_attr_text(root, "config", &config)) != SPF_OK)
    say(msg, msg_len, "%s: attribute 'config' missing or not text", path);
  /* Optional: checkpoints before the automatic reference count lack it. */
  double refs = 0;
  if (!rc && H5Aexists(root, "n_references") > 0 &&
      (get_attr_double(root, "n_references", &refs) || !(refs >= 0 && refs <= 1e12 && refs == floor(refs)))) {
    say(msg, msg_len, "%s: attribute 'n_references' invalid", path);
    rc = SPF_ERR_DATA;
  }
  if (root >= 0) H5Gclose(root);

  /* The common mismatch first, in the run's terms. */
  const hsize_t m = (hsize_t)st->M, n = (hsize_t)st->n_images;
  const hsize_t fm = first_dim(f, "rho"), fn = first_dim(f, "orientations");
  if (!rc && ((fm && fm != m) || (fn && fn != n))) {
    say(msg, msg_len, "%s: checkpoint has M = %llu, %llu images; this run has M = %llu, %llu images", path,
        (unsigned long long)fm, (unsigned long long)fn, (unsigned long long)m, (unsigned long long)n);
    rc = SPF_ERR_DATA;
  }
  const hsize_t dq[2] = {n, 4}, dn[1] = {n}, dv[3] = {m, m, m};
  const struct {
    const char *name;
    int rank;
    const hsize_t *dims;
    hid_t mem_type;
    void *buf;
  } sets[] = {{"orientations", 2, dq, H5T_NATIVE_DOUBLE, st->orientations},
              {"best", 1, dn, H5T_NATIVE_INT64, st->best},
              {"best_distance", 1, dn, H5T_NATIVE_FLOAT, st->best_dist},
              {"gap", 1, dn, H5T_NATIVE_FLOAT, st->gap},
              {"rho", 3, dv, H5T_NATIVE_DOUBLE, st->rho},
              {"u", 3, dv, H5T_NATIVE_DOUBLE, st->u},
              {"u_model", 3, dv, H5T_NATIVE_DOUBLE, st->u_model},
              {"support", 3, dv, H5T_NATIVE_UINT8, st->support},
              /* optional: checkpoints before the phasing schedule lack the next two,
                 before the Poisson model the last two */
              {"rho_next", 3, dv, H5T_NATIVE_DOUBLE, st->rho_next},
              {"support_next", 3, dv, H5T_NATIVE_UINT8, st->support_next},
              {"fluence", 1, dn, H5T_NATIVE_DOUBLE, st->fluence},
              {"entropy", 1, dn, H5T_NATIVE_FLOAT, st->entropy}};
  enum { NSETS = sizeof sets / sizeof sets[0], NOPTIONAL = 4 };
  hid_t ds[NSETS];
  for (int i = 0; i < NSETS; i++) ds[i] = -1;
  /* Every shape before any read, so a wrong file leaves st untouched. */
  for (int i = 0; i < NSETS && !rc; i++) {
    if (i >= NSETS - NOPTIONAL && H5Lexists(f, sets[i].name, H5P_DEFAULT) <= 0) continue;
    ds[i] = open_checked(f, path, sets[i].name, sets[i].rank, sets[i].dims, msg, msg_len);
    if (ds[i] < 0) rc = SPF_ERR_DATA;
  }
  /* The kept references when this state keeps them: absent (a checkpoint without them),
   * every image has none. */
  hid_t dkr = -1, dkp = -1;
  if (!rc && st->posterior_k > 0 && H5Lexists(f, "posterior_refs", H5P_DEFAULT) > 0) {
    const hsize_t dk[2] = {n, (hsize_t)st->posterior_k};
    dkr = open_checked(f, path, "posterior_refs", 2, dk, msg, msg_len);
    if (dkr >= 0) dkp = open_checked(f, path, "posterior_probs", 2, dk, msg, msg_len);
    if (dkr < 0 || dkp < 0) rc = SPF_ERR_DATA;
  }
  if (!rc && st->posterior_k > 0 && dkr < 0) clear_kept(st);
  if (!rc && dkr >= 0 &&
      (h5_dread(dkr, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, st->posterior_ref) < 0 ||
       h5_dread(dkp, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, st->posterior_p) < 0)) {
    say(msg, msg_len, "%s: cannot read dataset 'posterior_refs' / 'posterior_probs' (damaged file?)", path);
    rc = SPF_ERR_IO;
  }
  if (dkr >= 0) H5Dclose(dkr);
  if (dkp >= 0) H5Dclose(dkp);
  for (hsize_t i = 0; !rc && i < n; i++) {
    if (ds[NSETS - 2] < 0) st->fluence[i] = 1;
    if (ds[NSETS - 1] < 0) st->entropy[i] = NAN;
  }
  for (int i = 0; i < NSETS && !rc; i++)
    if (ds[i] >= 0 && h5_dread(ds[i], sets[i].mem_type, H5S_ALL, H5S_ALL, sets[i].buf) < 0) {
      say(msg, msg_len, "%s: cannot read dataset '%s' (damaged file?)", path, sets[i].name);
      rc = SPF_ERR_IO;
    }
  if (!rc && ds[NSETS - 4] < 0) memcpy(st->rho_next, st->rho, sizeof(double) * m * m * m);
  if (!rc && ds[NSETS - 3] < 0) memcpy(st->support_next, st->support, m * m * m);
  for (int i = 0; i < NSETS; i++)
    if (ds[i] >= 0) H5Dclose(ds[i]);
  H5Fclose(f);
  if (!rc) {
    st->generation = generation;
    st->have_model = have_model;
    st->last_fraction_changed = last_changed;
    st->n_references = (int64_t)refs;
    if (config_out && config_len > 0) snprintf(config_out, config_len, "%s", config);
  }
  free(format);
  free(config);
  return rc;
}

/* ------------------------------------------------------------------ intensity */

/* One whole dataset of the expected shape, as doubles. */
static int read_array(const char *path, const char *name, int rank, const hsize_t *dims, double *out, char *msg,
                      size_t msg_len)
{
  hid_t f = open_read(path, msg, msg_len);
  if (f < 0) return SPF_ERR_IO;
  hid_t ds = open_checked(f, path, name, rank, dims, msg, msg_len);
  int rc = ds < 0 ? SPF_ERR_DATA : SPF_OK;
  if (!rc && h5_dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, out) < 0) {
    say(msg, msg_len, "%s: cannot read dataset '%s' (damaged file?)", path, name);
    rc = SPF_ERR_IO;
  }
  if (ds >= 0) H5Dclose(ds);
  H5Fclose(f);
  return rc;
}

int spf_results_read_orientations(const char *path, int64_t n_images, double *orientations, char *msg, size_t msg_len)
{
  if (!path || !orientations) return SPF_ERR_NULL;
  if (n_images < 1) return SPF_ERR_SIZE;
  const hsize_t dq[2] = {(hsize_t)n_images, 4};
  return read_array(path, "orientations", 2, dq, orientations, msg, msg_len);
}

int spf_results_read_per_image(const char *path, const char *name, int64_t n_images, double *out, char *msg,
                               size_t msg_len)
{
  if (!path || !name || !out) return SPF_ERR_NULL;
  if (n_images < 1) return SPF_ERR_SIZE;
  const hsize_t d = (hsize_t)n_images;
  return read_array(path, name, 1, &d, out, msg, msg_len);
}

int spf_results_read_volume(const char *path, const char *name, int64_t M, double *out, char *msg, size_t msg_len)
{
  if (!path || !name || !out) return SPF_ERR_NULL;
  if (M < 1) return SPF_ERR_SIZE;
  const hsize_t dv[3] = {(hsize_t)M, (hsize_t)M, (hsize_t)M};
  return read_array(path, name, 3, dv, out, msg, msg_len);
}

int spf_intensity_write(const char *path, const spf_intensity_grid *grid, const double *intensity, const char *unit,
                        const char *generator, char *msg, size_t msg_len)
{
  if (!path || !grid || !intensity || !unit || !generator) return SPF_ERR_NULL;
  const int64_t M = grid->M;
  if (M < 1 || M % 2 == 0) return SPF_ERR_SIZE;
  if (M > MAX_M) return SPF_ERR_TOO_BIG;
  quiet_hdf5();
  out_file o;
  int rc = out_open(&o, path, (double)M * (double)M * (double)M * 8, msg, msg_len);
  if (rc) return rc;
  const hsize_t m = (hsize_t)M, dv[3] = {m, m, m};
  rc = put_array(o.file, path, "intensity", 3, dv, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, intensity, msg, msg_len);
  if (!rc) rc = put_intensity_attrs(o.file, path, grid, unit, msg, msg_len);
  if (!rc) {
    hid_t root = H5Gopen2(o.file, "/", H5P_DEFAULT);
    rc = root >= 0 ? put_attr_string(root, "format", INTENSITY_FORMAT) : SPF_ERR_IO;
    if (!rc) rc = put_attr_string(root, "generator", generator);
    if (root >= 0) H5Gclose(root);
    if (rc) say(msg, msg_len, "%s: cannot write the attributes of /", path);
  }
  return out_close(&o, path, rc, msg, msg_len);
}

int spf_intensity_read(const char *path, double **intensity, spf_intensity_grid *grid, char *unit, size_t unit_len,
                       char *msg, size_t msg_len)
{
  if (!path || !intensity || !grid) return SPF_ERR_NULL;
  *intensity = NULL;
  if (unit && unit_len) unit[0] = 0;
  quiet_hdf5();
  if (access(path, R_OK) != 0) {
    say(msg, msg_len, "%s: cannot open", path);
    return SPF_ERR_IO;
  }
  if (H5Fis_hdf5(path) <= 0) {
    say(msg, msg_len, "%s: not an HDF5 file", path);
    return SPF_ERR_FORMAT;
  }
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    say(msg, msg_len, "%s: a damaged HDF5 file", path);
    return SPF_ERR_IO;
  }
  int rc = SPF_OK;
  hid_t ds = -1;
  if (H5Lexists(f, "intensity", H5P_DEFAULT) <= 0 || (ds = H5Dopen2(f, "intensity", H5P_DEFAULT)) < 0) {
    say(msg, msg_len, "%s: no dataset 'intensity' (a results.h5 or an intensity file is needed)", path);
    rc = SPF_ERR_FORMAT;
  }
  hsize_t dims[8] = {0};
  int rank = -1;
  if (!rc) {
    hid_t sp = H5Dget_space(ds);
    rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank > 0 && rank <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0) H5Sclose(sp);
    if (rank != 3 || dims[0] != dims[1] || dims[0] != dims[2] || dims[0] % 2 == 0 || dims[0] < 3 ||
        dims[0] > MAX_M) {
      char have[96] = "unreadable";
      if (rank >= 0 && rank <= 8) format_shape(have, sizeof have, rank, dims);
      say(msg, msg_len, "%s: dataset 'intensity' has shape %s; a cube of odd size is needed", path, have);
      rc = SPF_ERR_FORMAT;
    }
  }
  const int64_t M = (int64_t)dims[0];
  if (!rc) {
    *intensity = malloc(sizeof(double) * (size_t)(M * M * M));
    if (!*intensity) rc = SPF_ERR_ALLOC;
  }
  if (!rc && h5_dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, *intensity) < 0) {
    say(msg, msg_len, "%s: cannot read dataset 'intensity' (damaged file?)", path);
    rc = SPF_ERR_IO;
  }
  if (!rc) {
    double v[6];
    for (int i = 0; i < 6; i++)
      if (get_attr_double(ds, GRID_ATTRS[i], &v[i])) v[i] = NAN;
    grid->M = M;
    grid->voxel_inv_angstrom = v[0];
    grid->s_max_inv_angstrom = v[1];
    grid->oversampling = v[2];
    grid->corner_inv_angstrom = v[3];
    grid->edge_inv_angstrom = v[4];
    grid->beamstop_inv_angstrom = v[5];
    double voxel_a;
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    if (isnan(v[0]) && root >= 0 && !get_attr_double(root, "voxel_angstrom", &voxel_a) && voxel_a > 0)
      grid->voxel_inv_angstrom = 1.0 / ((double)M * voxel_a);
    if (root >= 0) H5Gclose(root);
    char *text = NULL;
    if (unit && unit_len && !get_attr_text(ds, "unit", &text)) snprintf(unit, unit_len, "%s", text);
    free(text);
  }
  if (ds >= 0) H5Dclose(ds);
  H5Fclose(f);
  if (rc) {
    free(*intensity);
    *intensity = NULL;
  }
  return rc;
}

int spf_intensity_from_autocorrelation(int64_t m, const double *u, double *intensity)
{
  if (!u || !intensity) return SPF_ERR_NULL;
  if (m < 1 || m % 2 == 0) return SPF_ERR_SIZE;
  if (m > MAX_M) return SPF_ERR_TOO_BIG;
  const int64_t n = m * m * m, mh = m / 2 + 1, c = (m - 1) / 2;
  double *real = fftw_malloc(sizeof(double) * (size_t)n);
  fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * (size_t)(m * m * mh));
  int rc = real && spec ? SPF_OK : SPF_ERR_ALLOC;
  fftw_plan p = NULL;
  if (!rc) {
    /* One thread: the plan's thread count is process-wide state; set it explicitly so the
     * result does not depend on what another module planned last. */
    spf_fftw_threads_init();
    fftw_plan_with_nthreads(1);
    p = fftw_plan_dft_r2c_3d((int)m, (int)m, (int)m, real, spec, FFTW_ESTIMATE);
    if (!p) rc = SPF_ERR_FFTW;
  }
  if (!rc) {
    /* Lag 0 from the grid centre to index 0, as phasing.c's shift_grid does. */
    for (int64_t i3 = 0; i3 < m; i3++)
      for (int64_t i2 = 0; i2 < m; i2++)
        for (int64_t i1 = 0; i1 < m; i1++)
          real[(((i3 + m - c) % m) * m + (i2 + m - c) % m) * m + (i1 + m - c) % m] = u[(i3 * m + i2) * m + i1];
    fftw_execute(p);
    /* The half spectrum holds modes k1 >= 0; Re FFT(-k) = Re FFT(k) for real input. */
    for (int64_t a3 = 0; a3 < m; a3++)
      for (int64_t a2 = 0; a2 < m; a2++)
        for (int64_t a1 = 0; a1 < m; a1++) {
          int64_t k3 = a3 - c, k2 = a2 - c, k1 = a1 - c;
          if (k1 < 0) k3 = -k3, k2 = -k2, k1 = -k1;
          const int64_t j = ((((k3 + m) % m) * m) + (k2 + m) % m) * mh + k1;
          intensity[(a3 * m + a2) * m + a1] = creal(spec[j]);
        }
  }
  if (p) fftw_destroy_plan(p);
  fftw_free(real);
  fftw_free(spec);
  return rc;
}
