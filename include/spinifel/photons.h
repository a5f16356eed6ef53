/* Sparse photons: the file layout of EMC (Dragonfly, github.com/duaneloh/Dragonfly), in
 * which many single-particle imaging datasets are kept, and its detector file.
 *
 * ---- The photon file (.emc) ----
 * Frames of integer photon counts on one detector, stored as lists of the pixels that
 * caught photons. Every number is a 32-bit signed integer, little-endian (the byte order
 * of the machines EMC runs on; spinifel converts on others). In file order:
 *
 *   header        1024 bytes: num_data (frames), num_pix (pixels per frame), type, then
 *                 zeros up to byte 1024. type 0 is the sparse layout below; EMC also
 *                 knows 1 (dense: num_data * num_pix int32 after the header) and
 *                 2 (dense: num_data * num_pix float64), which this reader accepts too.
 *   ones          num_data values: how many pixels of frame d hold exactly one photon
 *   multi         num_data values: how many pixels of frame d hold two or more
 *   place_ones    sum(ones) pixel indices, frame 0's first, then frame 1's, ...
 *   place_multi   sum(multi) pixel indices, in the same frame order
 *   count_multi   sum(multi) photon counts, one per entry of place_multi
 *
 * A pixel index is the position in the detector file (0 .. num_pix - 1); a pixel not
 * listed in a frame caught no photons. Nothing else is in the file (no orientations, no
 * geometry): the detector file gives each pixel its place in reciprocal space.
 * The reader checks the declared sizes against the file's length before it allocates,
 * and every index and count as it decodes (a pixel listed more than once in a frame has
 * its counts added, as EMC does). Dragonfly's Python writer can also produce an HDF5
 * variant (num_pix, and place_ones, place_multi, count_multi as one variable-length
 * int32 list per frame); spf_photons_open reads it as well. The writer writes type 0.
 *
 * ---- The detector file ----
 * Text: a first line "num_pix detd ewald_rad", then one line per pixel
 * "qx qy qz corr mask", in the pixel order of the photon files.
 *   qx qy qz   the pixel's scattering vector in voxels of EMC's 3D grid: q = s / dq with
 *              s = (k_out - k_in) / (2 pi) the scattering vector (1/m) and dq the voxel
 *              spacing (1/m). The Ewald sphere has radius ewald_rad voxels, so
 *              dq = 1 / (lambda * ewald_rad) and s = q / (lambda * ewald_rad).
 *   detd       the sample-detector distance in pixels (D / p); EMC uses it with ewald_rad
 *              only to lay pixels out flat (2D modes, pictures).
 *   corr       the pixel's solid angle (sr) times the polarization factor; EMC multiplies
 *              a slice of its model by it and divides it out when merging (it rescales
 *              corr by its mean, so only ratios matter).
 *   mask       0: used for orientations and merging; 1: merged but not used to find
 *              orientations (Dragonfly's own maker sets it outside the inscribed circle);
 *              2: not used at all.
 * The file holds no wavelength, yet s needs one. spinifel's detector files add
 * "wavelength_m=... pixel_size_m=... nx=... ny=..." after the three header numbers;
 * EMC's readers read only the first three (the line must stay under 1024 characters).
 * A file from Dragonfly can be given its wavelength the same way (append
 * " wavelength_m=VALUE" to its first line) or through the reader's argument.
 * Dragonfly also reads an HDF5 detector (datasets qx, qy, qz, corr, mask, detd,
 * ewald_rad); spinifel reads and writes it too (a name ending in .h5), the extra values
 * then being attributes of the root group.
 *
 * spinifel writes, for its flat detector (detector.h): detd = ewald_rad = D / p, so one
 * voxel is dq = p / (lambda D), the reciprocal spacing of the central pixels (EMC's own
 * default to within (p / D)^2), and q = s * lambda * D / p exactly as computed; corr =
 * solid_angle * polarization; mask 0 for spinifel's valid pixels and 2 for masked ones.
 * Numbers are printed with 17 significant digits, which read back to the same doubles:
 * s comes back within two roundings (|ds_k| <= 2^-51 |s_k|). Reading maps mask 0 and 1
 * to valid (their counts are trustworthy; spinifel uses one mask for both steps) and 2
 * and above to masked.
 *
 * Errors: every function returns an spf_err code; msg (may be NULL) receives one line
 * naming the file. Files are written to a temporary name and renamed when complete. */
#ifndef SPINIFEL_PHOTONS_H
#define SPINIFEL_PHOTONS_H

#include <stddef.h>
#include <stdint.h>

#include "spinifel/detector.h"

/* ---- writing a photon file: a stream of frames, memory independent of their number ---- */
typedef struct spf_photons_writer_s spf_photons_writer;

/* n_pixels: 1 .. 2^31 - 1. The frames' lists go to scratch files beside path (removed
 * from the directory as soon as they are open) and are joined into path at close. */
int spf_photons_create(const char *path, int64_t n_pixels, spf_photons_writer **w, char *msg, size_t msg_len);
/* Append count frames (count * n_pixels photon counts, frame-major). Every value must be
 * a non-negative integer below 2^31 (SPF_ERR_DATA naming the frame and pixel, and
 * nothing of the call written). At most 2^31 - 1 frames in a file. */
int spf_photons_write(spf_photons_writer *w, int64_t count, const float *frames, char *msg, size_t msg_len);
/* Finish the file (0 frames is a valid file, though EMC itself needs at least one). On
 * failure nothing is left at path. Frees w in every case. */
int spf_photons_close(spf_photons_writer *w, char *msg, size_t msg_len);
/* Give up: nothing is left at path. */
void spf_photons_abort(spf_photons_writer *w);

/* ---- reading a photon file (binary .emc of any type, or the HDF5 sparse variant) ---- */
typedef struct spf_photons_s spf_photons;

/* Reads the header and the per-frame counts (16 bytes per frame stay in memory). */
int spf_photons_open(const char *path, spf_photons **p, char *msg, size_t msg_len);
int64_t spf_photons_n_frames(const spf_photons *p);
int64_t spf_photons_n_pixels(const spf_photons *p);
/* Frames first .. first + count - 1 as dense counts into out (count * n_pixels floats;
 * counts above 2^24 are rounded to float). */
int spf_photons_read(spf_photons *p, int64_t first, int64_t count, float *out, char *msg, size_t msg_len);
void spf_photons_close_reader(spf_photons *p);

/* ---- detector files ---- */
typedef struct {
  int64_t n_pixels;
  int64_t nx, ny;          /* the 2D layout (x fastest) when the file gives it, else n_pixels x 1 */
  double *s;               /* 3 * n_pixels: (sx, sy, sz) per pixel, 1/m */
  double *corr;            /* n_pixels: the file's corr (solid angle x polarization) */
  uint8_t *mask;           /* n_pixels: spinifel's convention, 1 valid (file 0 or 1), 0 masked */
  uint8_t *emc_mask;       /* n_pixels: the file's values */
  double detd_pixels;      /* the header's detd */
  double ewald_rad_voxels; /* the header's ewald_rad */
  double wavelength_m;     /* the one used to compute s */
  double pixel_size_m;     /* NAN when the file does not say */
} spf_photons_detector;

/* Write det (s, solid angle, polarization and mask of every pixel, its distance, pixel
 * size and wavelength) as a detector file: text, or HDF5 when path ends in ".h5". */
int spf_photons_detector_write(const char *path, const spf_detector *det, char *msg, size_t msg_len);
/* Read a detector file (text or HDF5). wavelength_m > 0 overrides the file's; 0 takes the
 * file's (SPF_ERR_FORMAT if it has none). Caller frees with spf_photons_detector_free. */
int spf_photons_detector_read(const char *path, double wavelength_m, spf_photons_detector **d, char *msg,
                              size_t msg_len);
void spf_photons_detector_free(spf_photons_detector *d);

#endif
