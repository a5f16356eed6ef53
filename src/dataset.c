/* HDF5 datasets (see dataset.h). */
#include "spinifel/dataset.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spinifel/detector.h"
#include "spinifel/photons.h"
#include "hdf5_util.h"
#include "spinifel/error.h"
#include "tempfile.h"

#define EV_PER_JOULE 6.241509074e18


struct spf_dataset_writer_s {
  spf_dataset_header h;
  char path[1024], tmp[1100];
  hid_t file, data, quats;
  int64_t written;
  int geometry_done;
};

static int put_attr_double(hid_t loc, const char *name, double v)
{
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a >= 0 ? H5Awrite(a, H5T_NATIVE_DOUBLE, &v) : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return e < 0 ? SPF_ERR_IO : SPF_OK;
}

static int put_attr_string(hid_t loc, const char *name, const char *v)
{
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a >= 0 ? H5Awrite(a, t, v) : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
  return e < 0 ? SPF_ERR_IO : SPF_OK;
}

void spf_dataset_abort(spf_dataset_writer *w)
{
  if (!w) return;
  if (w->data >= 0) H5Dclose(w->data);
  if (w->quats >= 0) H5Dclose(w->quats);
  if (w->file >= 0) H5Fclose(w->file);
  unlink(w->tmp);
  free(w);
}

int spf_dataset_create(const char *path, const spf_dataset_header *h, spf_dataset_writer **out, char *msg,
                       size_t msg_len)
{
  if (!path || !h || !out) return SPF_ERR_NULL;
  *out = NULL;
  if (h->n_images < 0 || h->ny < 1 || h->nx < 1 || h->compression < 0 || h->compression > 9) return SPF_ERR_SIZE;
  if (strlen(path) >= 1000) return SPF_ERR_ARG;
  quiet_hdf5();
  spf_dataset_writer *w = calloc(1, sizeof *w);
  if (!w) return SPF_ERR_ALLOC;
  w->h = *h;
  w->file = w->data = w->quats = -1;
  snprintf(w->path, sizeof w->path, "%s", path);
  if (spf_temp_name(path, w->tmp, sizeof w->tmp)) {
    free(w);
    return SPF_ERR_ARG;
  }
  w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (w->file < 0) {
    say(msg, msg_len, "%s: cannot create", path);
    free(w);
    return SPF_ERR_IO;
  }
  hsize_t dims[4] = {(hsize_t)h->n_images, 1, (hsize_t)h->ny, (hsize_t)h->nx};
  hsize_t chunk[4] = {1, 1, (hsize_t)h->ny, (hsize_t)h->nx};
  hid_t sp = H5Screate_simple(4, dims, NULL), pl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_obj_track_times(pl, 0); /* no timestamps: same content, same bytes */
  if (h->n_images > 0) {
    H5Pset_chunk(pl, 4, chunk);
    if (h->compression > 0) {
      H5Pset_shuffle(pl);
      H5Pset_deflate(pl, (unsigned)h->compression);
    }
  }
  w->data = H5Dcreate2(w->file, "intensities", H5T_IEEE_F32LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
  H5Pclose(pl);
  H5Sclose(sp);
  int rc = w->data < 0 ? SPF_ERR_IO : SPF_OK;
  if (!rc && h->has_orientations) {
    hsize_t qd[2] = {(hsize_t)h->n_images, 4};
    sp = H5Screate_simple(2, qd, NULL);
    hid_t qp = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(qp, 0);
    w->quats = H5Dcreate2(w->file, "orientations", H5T_IEEE_F64LE, sp, H5P_DEFAULT, qp, H5P_DEFAULT);
    H5Pclose(qp);
    H5Sclose(sp);
    if (w->quats < 0) rc = SPF_ERR_IO;
  }
  hid_t root = H5Gopen2(w->file, "/", H5P_DEFAULT);
  if (!rc) rc = put_attr_double(root, "photon_energy_eV", h->photon_energy_ev);
  if (!rc) rc = put_attr_double(root, "detector_distance_m", h->distance_m);
  if (!rc) rc = put_attr_double(root, "pixel_size_m", h->pixel_size_m);
  if (!rc) rc = put_attr_string(root, "generator", h->generator);
  H5Gclose(root);
  if (rc) {
    say(msg, msg_len, "%s: cannot create datasets", path);
    spf_dataset_abort(w);
    return rc;
  }
  *out = w;
  return SPF_OK;
}

int spf_dataset_write_geometry(spf_dataset_writer *w, const double *s, const uint8_t *mask)
{
  if (!w || !s || !mask) return SPF_ERR_NULL;
  const int64_t ny = w->h.ny, nx = w->h.nx, np = ny * nx;
  double *planes = malloc(sizeof(double) * 3 * (size_t)np);
  int32_t *index = malloc(sizeof(int32_t) * 2 * (size_t)np);
  if (!planes || !index) {
    free(planes);
    free(index);
    return SPF_ERR_ALLOC;
  }
  for (int64_t p = 0; p < np; p++) {
    for (int k = 0; k < 3; k++) planes[k * np + p] = s[3 * p + k];
    index[2 * p] = (int32_t)(p / nx);
    index[2 * p + 1] = (int32_t)(p % nx);
  }
  int rc = SPF_OK;
  hsize_t d1[4] = {3, 1, (hsize_t)ny, (hsize_t)nx}, d2[4] = {1, (hsize_t)ny, (hsize_t)nx, 2},
          d3[3] = {1, (hsize_t)ny, (hsize_t)nx};
  struct {
    const char *name;
    int rank;
    hsize_t *dims;
    hid_t file_type, mem_type;
    const void *buf;
  } sets[3] = {{"pixel_position_reciprocal", 4, d1, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, planes},
               {"pixel_index_map", 4, d2, H5T_STD_I32LE, H5T_NATIVE_INT32, index},
               {"mask", 3, d3, H5T_STD_U8LE, H5T_NATIVE_UINT8, mask}};
  for (int i = 0; i < 3 && !rc; i++) {
    hid_t sp = H5Screate_simple(sets[i].rank, sets[i].dims, NULL), pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(pl, 0);
    hid_t ds = H5Dcreate2(w->file, sets[i].name, sets[i].file_type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    if (ds < 0 || H5Dwrite(ds, sets[i].mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, sets[i].buf) < 0) rc = SPF_ERR_IO;
    if (!rc && i == 0) rc = put_attr_string(ds, "units", "1/m");
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
  }
  free(planes);
  free(index);
  if (!rc) w->geometry_done = 1;
  return rc;
}

int spf_dataset_write_images(spf_dataset_writer *w, int64_t first, int64_t count, const float *images,
                             const double *quats)
{
  if (!w || (count > 0 && !images)) return SPF_ERR_NULL;
  if (first != w->written || count < 0 || first + count > w->h.n_images) return SPF_ERR_SIZE;
  if (count == 0) return SPF_OK;
  if (w->h.has_orientations && !quats) return SPF_ERR_NULL;
  /* Room for the batch uncompressed, its orientations and HDF5's chunk cache and
   * metadata, before libhdf5 writes (a full disk mid-write leaves it unable to close). */
  const double batch = (double)count * ((double)w->h.ny * (double)w->h.nx * 4 + 32);
  if (spf_check_free_space(w->tmp, batch + (8 << 20)) != SPF_OK) return SPF_ERR_NO_SPACE;
  hsize_t start[4] = {(hsize_t)first, 0, 0, 0}, cnt[4] = {(hsize_t)count, 1, (hsize_t)w->h.ny, (hsize_t)w->h.nx};
  hid_t fs = H5Dget_space(w->data), ms = H5Screate_simple(4, cnt, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
  herr_t e = H5Dwrite(w->data, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, images);
  H5Sclose(ms);
  H5Sclose(fs);
  if (e >= 0 && w->h.has_orientations) {
    hsize_t qs[2] = {(hsize_t)first, 0}, qc[2] = {(hsize_t)count, 4};
    fs = H5Dget_space(w->quats);
    ms = H5Screate_simple(2, qc, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, qs, NULL, qc, NULL);
    e = H5Dwrite(w->quats, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, quats);
    H5Sclose(ms);
    H5Sclose(fs);
  }
  if (e < 0) return SPF_ERR_IO;
  w->written += count;
  return SPF_OK;
}

int spf_dataset_close(spf_dataset_writer *w, char *msg, size_t msg_len)
{
  if (!w) return SPF_ERR_NULL;
  if (w->written != w->h.n_images || !w->geometry_done) {
    say(msg, msg_len, "%s: incomplete (%lld of %lld images%s); not written", w->path, (long long)w->written,
        (long long)w->h.n_images, w->geometry_done ? "" : ", no geometry");
    spf_dataset_abort(w);
    return SPF_ERR_SIZE;
  }
  herr_t e = H5Dclose(w->data);
  w->data = -1;
  if (w->quats >= 0) e |= H5Dclose(w->quats);
  w->quats = -1;
  e |= H5Fclose(w->file);
  w->file = -1;
  if (e < 0 || rename(w->tmp, w->path) != 0) {
    say(msg, msg_len, "%s: could not finish writing", w->path);
    spf_dataset_abort(w);
    return SPF_ERR_IO;
  }
  free(w);
  return SPF_OK;
}

/* ------------------------------------------------------------------ reading */

void spf_dataset_close_reader(spf_dataset *d)
{
  if (!d) return;
  if (d->data_id > 0) H5Dclose((hid_t)d->data_id);
  if (d->quat_id > 0) H5Dclose((hid_t)d->quat_id);
  if (d->file_id > 0) H5Fclose((hid_t)d->file_id);
  spf_photons_close_reader(d->photons);
  free(d->s);
  free(d->mask);
  free(d);
}

static double get_attr_double(hid_t loc, const char *name, double fallback)
{
  if (H5Aexists(loc, name) <= 0) return fallback;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  double v = fallback;
  if (a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) v = fallback;
  if (a >= 0) H5Aclose(a);
  return v;
}

static double get_scalar_dataset(hid_t file, const char *name, double fallback)
{
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return fallback;
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  double v = fallback;
  if (ds >= 0 && h5_dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, &v) < 0)
    v = fallback;
  if (ds >= 0) H5Dclose(ds);
  return v;
}

/* Rank and dimensions of a dataset; -1 if absent or unreadable. */
static int dataset_shape(hid_t ds, hsize_t *dims)
{
  hid_t sp = H5Dget_space(ds);
  if (sp < 0) return -1;
  int rank = H5Sget_simple_extent_ndims(sp);
  if (rank > 0 && rank <= 4) H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  return rank;
}

/* Whether a dataset of rank dims holds data for every element it declares: no images,
 * or a file that declares more than was ever written (a shape set, the data never
 * written; a writer killed midway), is refused before anything is allocated for it.
 * Contiguous storage is allocated whole at the first write; chunked storage one chunk
 * at a time, so every chunk must exist. 0 when complete, else a message in msg. */
static int check_written(hid_t ds, const char *path, const char *name, int rank, const hsize_t *dims, char *msg,
                         size_t msg_len)
{
  if (dims[0] == 0) {
    say(msg, msg_len, "%s: dataset '%s' holds no images", path, name);
    return SPF_ERR_DATA;
  }
  hid_t cp = H5Dget_create_plist(ds);
  int rc = SPF_OK;
  const H5D_layout_t layout = cp >= 0 ? H5Pget_layout(cp) : H5D_LAYOUT_ERROR;
  if (layout == H5D_CONTIGUOUS && H5Dget_storage_size(ds) == 0) {
    say(msg, msg_len, "%s: dataset '%s' declares %llu images but holds no data (never written)", path, name,
        (unsigned long long)dims[0]);
    rc = SPF_ERR_DATA;
  } else if (layout == H5D_CHUNKED) {
    hsize_t chunk[4] = {0}, want = 1, have = 0;
    if (H5Pget_chunk(cp, rank, chunk) == rank) {
      for (int k = 0; k < rank; k++) want *= chunk[k] ? (dims[k] + chunk[k] - 1) / chunk[k] : 1;
      hid_t sp = H5Dget_space(ds); /* libhdf5 1.10 refuses H5S_ALL here */
      const herr_t e = sp >= 0 ? H5Dget_num_chunks(ds, sp, &have) : -1;
      if (sp >= 0) H5Sclose(sp);
      if (e >= 0 && have < want) {
        say(msg, msg_len, "%s: dataset '%s' declares %llu images but only %llu of its %llu chunks were written", path,
            name, (unsigned long long)dims[0], (unsigned long long)have, (unsigned long long)want);
        rc = SPF_ERR_DATA;
      }
    }
  }
  if (cp >= 0) H5Pclose(cp);
  /* What the file can hold: its storage within the file, and no more values than
   * deflate's best ratio (1032:1) gets out of that storage; checked before anything is
   * allocated from the declared sizes. */
  double values = 1;
  for (int k = 0; k < rank; k++) values *= (double)dims[k];
  const hid_t file = H5Iget_file_id(ds);
  hsize_t file_size = 0;
  if (file >= 0) {
    if (H5Fget_filesize(file, &file_size) < 0) file_size = 0;
    H5Fclose(file);
  }
  const hid_t type = H5Dget_type(ds);
  const double bytes = values * (double)(type >= 0 ? H5Tget_size(type) : 1);
  if (type >= 0) H5Tclose(type);
  const double storage = (double)H5Dget_storage_size(ds);
  if (!rc && file_size > 0 && (storage > (double)file_size || bytes > 1100.0 * (double)file_size)) {
    say(msg, msg_len, "%s: dataset '%s' declares %.3g values, more than the file's %llu bytes can hold", path, name,
        values, (unsigned long long)file_size);
    rc = SPF_ERR_DATA;
  }
  return rc;
}

/* The valid pixels' scattering vectors (1/m) must span a detector: not all at one point
 * (every image one value), and none beyond 1e12 1/m (0.01 A, where nothing is measured:
 * a unit mistake, which would make the voxel 0 A). */
static int check_pixels(const spf_dataset *d, const char *path, char *msg, size_t msg_len)
{
  double s_max = 0, spread = 0;
  int64_t first = -1;
  for (int64_t p = 0; p < d->n_pixels; p++) {
    if (!d->mask[p]) continue;
    if (first < 0) first = p;
    const double *a = d->s + 3 * p, *b = d->s + 3 * first;
    s_max = fmax(s_max, sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]));
    spread = fmax(spread, fabs(a[0] - b[0]) + fabs(a[1] - b[1]) + fabs(a[2] - b[2]));
  }
  if (first < 0) {
    say(msg, msg_len, "%s: every pixel is masked", path);
    return SPF_ERR_DATA;
  }
  if (!(s_max <= 1e12)) {
    say(msg, msg_len, "%s: 'pixel_position_reciprocal' reaches %.3g 1/m (a resolution of %.3g A): not in 1/m?", path,
        s_max, 1e10 / s_max);
    return SPF_ERR_DATA;
  }
  if (!(spread > 0)) {
    say(msg, msg_len, "%s: 'pixel_position_reciprocal' puts every valid pixel at the same point", path);
    return SPF_ERR_DATA;
  }
  return SPF_OK;
}

static int exists(hid_t file, const char *path)
{
  /* H5Lexists needs every intermediate group to exist: walk the path. */
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) return 0;
    *p = '/';
  }
  return H5Lexists(file, buf, H5P_DEFAULT) > 0;
}

static int open_cxi(spf_dataset *d, hid_t f, char *msg, size_t msg_len)
{
  const char *cands[2] = {"/entry_1/data_1/data", "/entry_1/instrument_1/detector_1/data"};
  const char *name = exists(f, cands[0]) ? cands[0] : exists(f, cands[1]) ? cands[1] : NULL;
  if (!name) {
    say(msg, msg_len, "%s: CXI file without %s or %s", d->path, cands[0], cands[1]);
    return SPF_ERR_FORMAT;
  }
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  hsize_t dims[4];
  if (ds < 0 || dataset_shape(ds, dims) != 3) {
    if (ds >= 0) H5Dclose(ds);
    say(msg, msg_len, "%s: dataset '%s' must be (N, ny, nx)", d->path, name);
    return SPF_ERR_FORMAT;
  }
  d->data_id = ds;
  int rc = check_written(ds, d->path, name, 3, dims, msg, msg_len);
  if (rc) return rc;
  d->h.n_images = (int64_t)dims[0];
  d->h.ny = (int64_t)dims[1];
  d->h.nx = (int64_t)dims[2];
  d->h.distance_m = get_scalar_dataset(f, "/entry_1/instrument_1/detector_1/distance", NAN);
  d->h.pixel_size_m = get_scalar_dataset(f, "/entry_1/instrument_1/detector_1/x_pixel_size", NAN);
  d->h.photon_energy_ev = get_scalar_dataset(f, "/entry_1/instrument_1/source_1/energy", NAN) * EV_PER_JOULE;
  if (!(d->h.distance_m > 0) || !(d->h.pixel_size_m > 0) || !(d->h.photon_energy_ev > 0)) {
    say(msg, msg_len, "%s: CXI geometry missing (detector_1/distance, x_pixel_size, source_1/energy)", d->path);
    return SPF_ERR_FORMAT;
  }
  d->is_cxi = 1;
  spf_detector_geometry g;
  spf_detector_default_geometry(&g);
  g.nx = d->h.nx;
  g.ny = d->h.ny;
  g.pixel_size_m = d->h.pixel_size_m;
  g.distance_m = d->h.distance_m;
  g.photon_energy_ev = d->h.photon_energy_ev;
  spf_detector *det;
  rc = spf_detector_make(&g, &det);
  if (rc) {
    say(msg, msg_len, "%s: CXI geometry is invalid", d->path);
    return rc;
  }
  memcpy(d->s, det->s, sizeof(double) * 3 * (size_t)d->n_pixels);
  memcpy(d->mask, det->mask, (size_t)d->n_pixels);
  spf_detector_free(det);
  return SPF_OK;
}

int spf_dataset_open(const char *path, spf_dataset **out, char *msg, size_t msg_len)
{
  if (!path || !out) return SPF_ERR_NULL;
  *out = NULL;
  quiet_hdf5();
  if (access(path, R_OK) != 0) {
    say(msg, msg_len, "%s: cannot open", path);
    return SPF_ERR_IO;
  }
  if (H5Fis_hdf5(path) <= 0) {
    spf_photons *p = NULL;
    if (spf_photons_open(path, &p, NULL, 0) == SPF_OK)
      say(msg, msg_len, "%s: an EMC photon file: it needs its detector file (--detector DET.dat)", path);
    else
      say(msg, msg_len, "%s: not an HDF5 file (empty, truncated or another format)", path);
    spf_photons_close_reader(p);
    return SPF_ERR_FORMAT;
  }
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    say(msg, msg_len, "%s: HDF5 cannot open it (truncated?)", path);
    return SPF_ERR_FORMAT;
  }
  spf_dataset *d = calloc(1, sizeof *d);
  if (!d) {
    H5Fclose(f);
    return SPF_ERR_ALLOC;
  }
  d->file_id = f;
  snprintf(d->path, sizeof d->path, "%s", path);
  int rc = SPF_OK;
  hsize_t dims[4];
  if (exists(f, "/entry_1")) {
    /* Sizes first, then geometry. */
    const char *name = exists(f, "/entry_1/data_1/data") ? "/entry_1/data_1/data" : "/entry_1/instrument_1/detector_1/data";
    hid_t ds = exists(f, name) ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    if (ds >= 0 && dataset_shape(ds, dims) == 3) {
      rc = check_written(ds, path, name, 3, dims, msg, msg_len);
      if (!rc) d->n_pixels = (int64_t)(dims[1] * dims[2]);
    }
    if (ds >= 0) H5Dclose(ds);
    if (!rc) {
      d->s = malloc(sizeof(double) * 3 * (size_t)(d->n_pixels + 1));
      d->mask = malloc((size_t)(d->n_pixels + 1));
      rc = (!d->s || !d->mask) ? SPF_ERR_ALLOC : open_cxi(d, f, msg, msg_len);
    }
  } else if (!exists(f, "intensities")) {
    if (exists(f, "place_ones"))
      say(msg, msg_len, "%s: EMC photons in HDF5: they need their detector file (--detector DET.dat)", path);
    else
      say(msg, msg_len, "%s: dataset 'intensities' is missing", path);
    rc = SPF_ERR_FORMAT;
  } else {
    hid_t ds = H5Dopen2(f, "intensities", H5P_DEFAULT);
    d->data_id = ds;
    int rank = ds >= 0 ? dataset_shape(ds, dims) : -1;
    if (rank != 4 || dims[1] != 1) {
      say(msg, msg_len, "%s: dataset 'intensities' must be (N, 1, ny, nx), has rank %d", path, rank);
      rc = SPF_ERR_FORMAT;
    } else {
      hid_t t = H5Dget_type(ds);
      if (H5Tget_class(t) != H5T_FLOAT && H5Tget_class(t) != H5T_INTEGER) {
        say(msg, msg_len, "%s: dataset 'intensities' is not numeric", path);
        rc = SPF_ERR_FORMAT;
      }
      H5Tclose(t);
    }
    if (!rc) rc = check_written(ds, path, "intensities", 4, dims, msg, msg_len);
    if (!rc) {
      d->h.n_images = (int64_t)dims[0];
      d->h.ny = (int64_t)dims[2];
      d->h.nx = (int64_t)dims[3];
      d->n_pixels = d->h.ny * d->h.nx;
      d->s = malloc(sizeof(double) * 3 * (size_t)d->n_pixels);
      d->mask = malloc((size_t)d->n_pixels);
      if (!d->s || !d->mask) rc = SPF_ERR_ALLOC;
    }
    if (!rc) {
      hid_t ps = exists(f, "pixel_position_reciprocal") ? H5Dopen2(f, "pixel_position_reciprocal", H5P_DEFAULT) : -1;
      hsize_t pd[4];
      if (ps < 0 || dataset_shape(ps, pd) != 4 || pd[0] != 3 || pd[1] != 1 || pd[2] != dims[2] || pd[3] != dims[3]) {
        say(msg, msg_len, "%s: dataset 'pixel_position_reciprocal' missing or not (3, 1, %llu, %llu)", path,
            (unsigned long long)dims[2], (unsigned long long)dims[3]);
        rc = SPF_ERR_FORMAT;
      } else {
        double *planes = malloc(sizeof(double) * 3 * (size_t)d->n_pixels);
        if (!planes || h5_dread(ps, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, planes) < 0) {
          say(msg, msg_len, "%s: cannot read 'pixel_position_reciprocal'", path);
          rc = SPF_ERR_IO;
        }
        for (int64_t p = 0; !rc && p < d->n_pixels; p++)
          for (int k = 0; k < 3; k++) {
            d->s[3 * p + k] = planes[k * d->n_pixels + p];
            if (!isfinite(d->s[3 * p + k])) {
              say(msg, msg_len, "%s: 'pixel_position_reciprocal' has a non-finite value", path);
              rc = SPF_ERR_DATA;
            }
          }
        free(planes);
      }
      if (ps >= 0) H5Dclose(ps);
    }
    if (!rc) {
      /* The mask is optional in SpiniFEL files: all pixels valid. */
      memset(d->mask, 1, (size_t)d->n_pixels);
      if (exists(f, "mask")) {
        hid_t ms = H5Dopen2(f, "mask", H5P_DEFAULT);
        hsize_t md[4];
        int r = ms >= 0 ? dataset_shape(ms, md) : -1;
        if (r != 3 || md[0] != 1 || md[1] != dims[2] || md[2] != dims[3] ||
            h5_dread(ms, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, d->mask) < 0) {
          say(msg, msg_len, "%s: dataset 'mask' is not (1, %llu, %llu)", path, (unsigned long long)dims[2],
              (unsigned long long)dims[3]);
          rc = SPF_ERR_FORMAT;
        }
        if (ms >= 0) H5Dclose(ms);
      }
    }
    if (!rc) rc = check_pixels(d, path, msg, msg_len);
    if (!rc && exists(f, "orientations")) {
      hid_t q = H5Dopen2(f, "orientations", H5P_DEFAULT);
      hsize_t qd[4];
      if (q < 0 || dataset_shape(q, qd) != 2 || qd[0] != dims[0] || qd[1] != 4) {
        say(msg, msg_len, "%s: dataset 'orientations' is not (%llu, 4)", path, (unsigned long long)dims[0]);
        rc = SPF_ERR_FORMAT;
        if (q >= 0) H5Dclose(q);
      } else {
        d->quat_id = q;
        d->h.has_orientations = 1;
      }
    }
    if (!rc) {
      hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
      d->h.photon_energy_ev = get_attr_double(root, "photon_energy_eV", NAN);
      d->h.distance_m = get_attr_double(root, "detector_distance_m", NAN);
      d->h.pixel_size_m = get_attr_double(root, "pixel_size_m", NAN);
      if (H5Aexists(root, "generator") > 0) {
        hid_t a = H5Aopen(root, "generator", H5P_DEFAULT), t = H5Aget_type(a);
        size_t sz = H5Tget_size(t);
        if (H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && sz < sizeof d->h.generator) {
          char buf[sizeof d->h.generator] = {0};
          if (H5Aread(a, t, buf) >= 0) snprintf(d->h.generator, sizeof d->h.generator, "%s", buf);
        }
        H5Tclose(t);
        H5Aclose(a);
      }
      H5Gclose(root);
    }
  }
  if (rc) {
    spf_dataset_close_reader(d);
    return rc;
  }
  *out = d;
  return SPF_OK;
}

int spf_dataset_open_emc(const char *photons_path, const char *detector_path, spf_dataset **out, char *msg,
                         size_t msg_len)
{
  if (!photons_path || !detector_path || !out) return SPF_ERR_NULL;
  *out = NULL;
  spf_dataset *d = calloc(1, sizeof *d);
  if (!d) return SPF_ERR_ALLOC;
  snprintf(d->path, sizeof d->path, "%s", photons_path);
  spf_photons_detector *det = NULL;
  int rc = spf_photons_open(photons_path, &d->photons, msg, msg_len);
  if (!rc) rc = spf_photons_detector_read(detector_path, 0, &det, msg, msg_len);
  if (!rc && det->n_pixels != spf_photons_n_pixels(d->photons)) {
    say(msg, msg_len, "%s: %lld pixels per frame, but the detector file %s has %lld", photons_path,
        (long long)spf_photons_n_pixels(d->photons), detector_path, (long long)det->n_pixels);
    rc = SPF_ERR_FORMAT;
  }
  if (!rc) {
    d->n_pixels = det->n_pixels;
    d->h.n_images = spf_photons_n_frames(d->photons);
    d->h.nx = det->nx;
    d->h.ny = det->ny;
    d->h.photon_energy_ev = SPF_HC_EV_M / det->wavelength_m;
    d->h.pixel_size_m = det->pixel_size_m;
    d->h.distance_m = det->detd_pixels * det->pixel_size_m; /* NAN when the pixel size is unknown */
    snprintf(d->h.generator, sizeof d->h.generator, "EMC photons with detector file %.900s", detector_path);
    d->s = malloc(sizeof(double) * 3 * (size_t)d->n_pixels);
    d->mask = malloc((size_t)d->n_pixels);
    if (!d->s || !d->mask) rc = SPF_ERR_ALLOC;
  }
  if (!rc) {
    memcpy(d->s, det->s, sizeof(double) * 3 * (size_t)d->n_pixels);
    memcpy(d->mask, det->mask, (size_t)d->n_pixels);
  }
  spf_photons_detector_free(det);
  if (rc) {
    spf_dataset_close_reader(d);
    return rc;
  }
  *out = d;
  return SPF_OK;
}

/* Whether the unfiltered chunks holding images first .. last of ds are stored at their
 * full size: libhdf5 1.10 copies a chunk's declared bytes out of a shorter stored chunk
 * unchecked, reading past a heap buffer (a crafted file; found by fuzz_hdf5). Chunks with
 * filters and chunks never written (the fill value) are libhdf5's to check. */
static int chunks_whole(hid_t ds, int rank, const hsize_t *dims, int64_t first, int64_t last)
{
  const hid_t cp = H5Dget_create_plist(ds);
  if (cp < 0) return 0;
  hsize_t chunk[4] = {0};
  const int ok_layout = H5Pget_layout(cp) == H5D_CHUNKED && H5Pget_chunk(cp, rank, chunk) == rank &&
                        H5Pget_nfilters(cp) == 0;
  H5Pclose(cp);
  if (!ok_layout) return 1;
  const hid_t t = H5Dget_type(ds);
  hsize_t bytes = t >= 0 ? (hsize_t)H5Tget_size(t) : 0;
  if (t >= 0) H5Tclose(t);
  for (int k = 0; k < rank; k++) {
    if (chunk[k] == 0) return 0;
    bytes *= chunk[k];
  }
  hsize_t off[4] = {0}, n_other = 1;
  for (int k = 1; k < rank; k++) n_other *= (dims[k] + chunk[k] - 1) / chunk[k];
  for (hsize_t c0 = (hsize_t)first / chunk[0] * chunk[0]; c0 <= (hsize_t)last; c0 += chunk[0])
    for (hsize_t j = 0; j < n_other; j++) {
      off[0] = c0;
      hsize_t rest = j;
      for (int k = rank - 1; k >= 1; k--) {
        const hsize_t nk = (dims[k] + chunk[k] - 1) / chunk[k];
        off[k] = rest % nk * chunk[k];
        rest /= nk;
      }
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t size = 0;
      if (H5Dget_chunk_info_by_coord(ds, off, &mask, &addr, &size) < 0) return 0;
      if (addr != HADDR_UNDEF && size != bytes) return 0;
    }
  return 1;
}

int spf_dataset_read_images(spf_dataset *d, int64_t first, int64_t count, float *out, double *quats, char *msg,
                            size_t msg_len)
{
  if (d && d->photons) return spf_photons_read(d->photons, first, count, out, msg, msg_len);

  if (!d || (count > 0 && !out)) return SPF_ERR_NULL;
  if (first < 0 || count < 0 || first + count > d->h.n_images) {
    say(msg, msg_len, "%s: images %lld..%lld requested, file has %lld", d->path, (long long)first,
        (long long)(first + count - 1), (long long)d->h.n_images);
    return SPF_ERR_SIZE;
  }
  if (count == 0) return SPF_OK;
  const int rank = d->is_cxi ? 3 : 4;
  hsize_t start[4] = {(hsize_t)first, 0, 0, 0}, cnt[4];
  if (d->is_cxi) {
    cnt[0] = (hsize_t)count, cnt[1] = (hsize_t)d->h.ny, cnt[2] = (hsize_t)d->h.nx;
  } else {
    cnt[0] = (hsize_t)count, cnt[1] = 1, cnt[2] = (hsize_t)d->h.ny, cnt[3] = (hsize_t)d->h.nx;
  }
  hsize_t dims[4] = {(hsize_t)d->h.n_images, 1, (hsize_t)d->h.ny, (hsize_t)d->h.nx};
  if (d->is_cxi) dims[1] = (hsize_t)d->h.ny, dims[2] = (hsize_t)d->h.nx;
  if (!chunks_whole((hid_t)d->data_id, rank, dims, first, first + count - 1)) {
    say(msg, msg_len, "%s: images %lld..%lld: a chunk of 'intensities' is stored shorter than it declares (damaged file)",
        d->path, (long long)first, (long long)(first + count - 1));
    return SPF_ERR_FORMAT;
  }
  hid_t fs = H5Dget_space((hid_t)d->data_id), ms = H5Screate_simple(rank, cnt, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
  herr_t e = h5_dread((hid_t)d->data_id, H5T_NATIVE_FLOAT, ms, fs, out);
  H5Sclose(ms);
  H5Sclose(fs);
  if (e < 0) {
    say(msg, msg_len, "%s: cannot read images %lld..%lld of 'intensities' (truncated file?)", d->path,
        (long long)first, (long long)(first + count - 1));
    return SPF_ERR_IO;
  }
  for (int64_t i = 0; i < count; i++)
    for (int64_t p = 0; p < d->n_pixels; p++) {
      float v = out[i * d->n_pixels + p];
      if (!(v >= 0) || !isfinite(v)) {
        say(msg, msg_len, "%s: dataset 'intensities' image %lld pixel %lld is %g (must be finite and >= 0)", d->path,
            (long long)(first + i), (long long)p, (double)v);
        return SPF_ERR_DATA;
      }
    }
  if (quats && d->quat_id > 0) {
    hsize_t qs[2] = {(hsize_t)first, 0}, qc[2] = {(hsize_t)count, 4};
    fs = H5Dget_space((hid_t)d->quat_id);
    ms = H5Screate_simple(2, qc, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, qs, NULL, qc, NULL);
    e = h5_dread((hid_t)d->quat_id, H5T_NATIVE_DOUBLE, ms, fs, quats);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) {
      say(msg, msg_len, "%s: cannot read 'orientations'", d->path);
      return SPF_ERR_IO;
    }
    /* The true orientations are unit quaternions; anything else would turn every
     * orientation error into NaN or 180 degrees. */
    for (int64_t i = 0; i < count; i++) {
      const double *q = quats + 4 * i, nn = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
      if (!(fabs(nn - 1) < 1e-4)) {
        say(msg, msg_len, "%s: dataset 'orientations' row %lld (%g, %g, %g, %g) is not a unit quaternion", d->path,
            (long long)(first + i), q[0], q[1], q[2], q[3]);
        return SPF_ERR_DATA;
      }
    }
  }
  return SPF_OK;
}
