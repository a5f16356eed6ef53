/* Diffraction datasets in HDF5, in SpiniFEL's layout:
 *
 *   intensities                (N, 1, ny, nx) float32, chunked one image per chunk
 *   pixel_position_reciprocal  (3, 1, ny, nx) float64, 1/m (attribute units = "1/m")
 *   pixel_index_map            (1, ny, nx, 2) int32: (row, column) of each pixel
 *   mask                       (1, ny, nx) uint8, 1 = valid pixel
 *   orientations               (N, 4) float64, (w, x, y, z) (optional: unknown for real data)
 *   attributes on /: photon_energy_eV, detector_distance_m, pixel_size_m, generator (text)
 *
 * Pixel p = row * nx + column is the flat pixel order everywhere in spinifel (the
 * detector's x is the fast axis). CXI files (CXIDB: /entry_1/data_1/data or
 * /entry_1/instrument_1/detector_1/data, with detector distance, pixel size and source
 * energy) are read too, with the beam at the array centre. EMC photon files with their
 * detector file (photons.h) are read through spf_dataset_open_emc.
 *
 * Errors come with one line naming the file and the dataset in msg (may be NULL). */
#ifndef SPINIFEL_DATASET_H
#define SPINIFEL_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  int64_t n_images, ny, nx;
  double photon_energy_ev, distance_m, pixel_size_m;
  int has_orientations;
  int compression;          /* writer: deflate level 0 (none) .. 9 */
  char generator[1024];     /* free text: program, settings, seed */
} spf_dataset_header;

/* ---- writing: a stream of images, in order, to a temporary file renamed at close ---- */
typedef struct spf_dataset_writer_s spf_dataset_writer;

int spf_dataset_create(const char *path, const spf_dataset_header *h, spf_dataset_writer **w, char *msg,
                       size_t msg_len);
/* s: 3 * n_pixels (pixel-major, 1/m); mask: n_pixels. Required before close. */
int spf_dataset_write_geometry(spf_dataset_writer *w, const double *s, const uint8_t *mask);
/* Images first .. first + count - 1 (first must equal the number written so far);
 * quats (count * 4) required when the header says has_orientations. */
int spf_dataset_write_images(spf_dataset_writer *w, int64_t first, int64_t count, const float *images,
                             const double *quats);
/* Finish: fails (and leaves no file) unless all N images and the geometry were written. */
int spf_dataset_close(spf_dataset_writer *w, char *msg, size_t msg_len);
/* Give up: the temporary file is removed. */
void spf_dataset_abort(spf_dataset_writer *w);

/* ---- reading ---- */
typedef struct {
  spf_dataset_header h;
  int64_t n_pixels;
  double *s;          /* 3 * n_pixels, pixel-major, 1/m */
  uint8_t *mask;      /* n_pixels */
  int is_cxi;
  char path[1024];
  int64_t file_id, data_id, quat_id; /* HDF5 handles (internal) */
  struct spf_photons_s *photons;      /* EMC photons reader (internal), or NULL */
} spf_dataset;

int spf_dataset_open(const char *path, spf_dataset **d, char *msg, size_t msg_len);
/* An EMC photon file (binary or HDF5 variant) and its detector file, seen as a dataset:
 * s and mask from the detector file (its wavelength: see photons.h), images as dense
 * counts, no orientations; nx x ny from the detector file when it says, else
 * n_pixels x 1. The pixel counts of the two files must agree. */
int spf_dataset_open_emc(const char *photons_path, const char *detector_path, spf_dataset **d, char *msg,
                         size_t msg_len);
/* Images first .. first + count - 1 into out (count * n_pixels floats) and, if quats is
 * not NULL and the file has them, their orientations. Reads only that range. NaN,
 * infinite or negative intensities give SPF_ERR_DATA naming the image. */
int spf_dataset_read_images(spf_dataset *d, int64_t first, int64_t count, float *out, double *quats, char *msg,
                            size_t msg_len);
void spf_dataset_close_reader(spf_dataset *d);

#endif
