/* Checkpoints and results of a reconstruction, in HDF5.
 *
 * Checkpoint layout (all written whole, contiguous):
 *   orientations   (N, 4) float64 (w, x, y, z)
 *   best           (N) int64
 *   best_distance  (N) float32
 *   gap            (N) float32
 *   fluence        (N) float64: each image's relative fluence (Poisson model; 1 otherwise)
 *   entropy        (N) float32: entropy of each image's orientation probabilities (nats;
 *                  NaN for the Euclidean model). Checkpoints without these two (older
 *                  ones) read as fluence 1 and entropy NaN.
 *   rho, u, u_model (M, M, M) float64
 *   support        (M, M, M) uint8
 *   rho_next       (M, M, M) float64, support_next (M, M, M) uint8: where the next
 *                  phasing starts (checkpoints without them read as rho and support)
 *   attributes on /: format = "spinifel checkpoint 1", generation (int), have_model (int),
 *                    last_fraction_changed (double), n_references (double: the final
 *                    reference count chosen after generation 0, 0 before; checkpoints
 *                    without it read as 0), config (text)
 *
 * Files are written to "<path>.tmp.<pid>", synced and renamed into place: a failure or
 * a kill mid-write leaves no partial file and any previous file at path intact. Files
 * need HDF5 >= 1.8 to read (the config text may exceed the 64 KiB of a compact attribute).
 * Volumes use the layout [(i3 * M + i2) * M + i1] with the grid centre at (M-1)/2.
 * msg (may be NULL) receives a one-line error naming the file and the dataset. */
#ifndef SPINIFEL_RESULTS_H
#define SPINIFEL_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "spinifel/intensity.h"

/* State of an M-TIP run after a complete generation: enough to continue it with the
 * same result as an uninterrupted run. Arrays are owned by the caller. */
typedef struct {
  int64_t M, n_images;
  int generation;            /* generations completed */
  int have_model;            /* 0 before the first phasing */
  double last_fraction_changed; /* of the last generation (1 for generation 0) */
  int64_t n_references;      /* the final reference grid's size when the run chose it from the
                                data (spf_reconstruct_reference_count, after generation 0);
                                0 before, or when the options fixed it */
  double *orientations;      /* n_images * 4 */
  int64_t *best;             /* n_images: reference index of the last match, -1 none */
  float *best_dist, *gap;    /* n_images (NaN before matching). Euclidean: the best distance
                                and the confidence, (d_alt - d_best) / d_best for the nearest
                                reference beyond 3 ball radii (orientation.c); Poisson: -log L
                                of the best reference, the log-likelihood gap to the best
                                alternative beyond 3 ball radii */
  double *fluence;           /* n_images: relative fluence phi (Poisson model), else 1 */
  float *entropy;            /* n_images: entropy of the orientation probabilities (nats), NaN
                                when not computed */
  double *rho, *u, *u_model; /* M^3 each: density, merged autocorrelation, model autocorrelation */
  uint8_t *support;          /* M^3 */
  double *rho_next;          /* M^3: the density and support the next phasing continues from: */
  uint8_t *support_next;     /* rho and support, unless the last generation phased only because it
                                was the last (a run's output, which a longer run never computed),
                                so that a resumed run equals an uninterrupted one */
  int posterior_k;           /* Poisson model, when asked (spf_run_state_track): each image's
                                posterior_k most probable references of its last E-step and
                                their probabilities (posterior.h); 0: none kept */
  int32_t *posterior_ref;    /* n_images x posterior_k, most probable first, -1 past the kept */
  float *posterior_p;        /* n_images x posterior_k */
} spf_run_state;

/* Allocate every array of a state for M^3 volumes and n_images images (generation 0,
 * no model); SPF_ERR_ALLOC leaves nothing allocated. Free with spf_run_state_free. */
int spf_run_state_make(int64_t M, int64_t n_images, spf_run_state *st);
void spf_run_state_free(spf_run_state *st);
/* Keep each image's k most probable references in st (1 <= k <= SPF_LIKELIHOOD_TRACK_MAX,
 * likelihood.h, else SPF_ERR_ARG):
 * allocated as none (-1, 0); spf_reconstruct fills them with the Poisson model, the
 * checkpoint stores them, copy_images copies them when both states keep the same k. */
int spf_run_state_track(spf_run_state *st, int k);
/* Copy what is not per image: the generation counters (generation, have_model,
 * last_fraction_changed, n_references) and the six M^3 volumes. Both states have src's M. */
void spf_run_state_copy_volumes(spf_run_state *dst, const spf_run_state *src);

/* The per-image state (orientations, best, best_dist, gap, fluence, entropy, and the
 * kept references when both keep the same number) of count
 * images, src's from src_first to dst's from dst_first; the caller keeps both in range. */
void spf_run_state_copy_images(spf_run_state *dst, int64_t dst_first, const spf_run_state *src, int64_t src_first,
                               int64_t count);

/* Write a checkpoint (HDF5, temp name + rename, so a kill mid-write keeps the previous
 * checkpoint intact). config: the run's effective configuration as text, stored so that
 * a resume can refuse a different configuration. Every array and config are required
 * (SPF_ERR_NULL); generation < 0 or have_model not 0/1 gives SPF_ERR_ARG. */
int spf_checkpoint_write(const char *path, const spf_run_state *st, const char *config, char *msg, size_t msg_len);
/* Read a checkpoint into st, whose M, n_images and arrays the caller has set up; a file
 * with other sizes gives SPF_ERR_DATA with a one-line message. config_out (may be NULL):
 * the stored configuration text, up to config_len bytes, NUL-terminated. Every shape is
 * checked before anything is read; a read error after that (damaged file: SPF_ERR_IO)
 * may leave st's arrays partly overwritten, but generation and have_model are set only
 * on success. */
int spf_checkpoint_read(const char *path, spf_run_state *st, char *config_out, size_t config_len, char *msg, size_t msg_len);

/* The results of a reconstruction in one HDF5 file (temp + rename):
 *   intensity        (M, M, M) float64: the 3D diffraction volume, FFT of u (real, centred: index a <-> mode a - (M-1)/2),
 *                    in the data's unit (photons per pixel: no solid-angle or polarization correction);
 *                    with grid, its attributes (intensity.h, all in 1/A but oversampling):
 *                    voxel_inv_angstrom, s_max_inv_angstrom, oversampling, corner_inv_angstrom,
 *                    edge_inv_angstrom, beamstop_inv_angstrom (double), unit (text)
 *   autocorrelation  (M, M, M) float64: u
 *   density          (M, M, M) float64: rho
 *   orientations     (N, 4) float64 (w, x, y, z); best_distance (N) float32; confidence (N) float32 (the state's gap)
 *   fluence (N) float64, entropy (N) float32: with the Poisson model (given non-NULL), each image's
 *   relative fluence and the entropy (nats) of its orientation probabilities
 *   attributes on /: voxel_angstrom (double), generations (int), config (text)
 * best_dist / gap may be NULL (then those datasets are omitted); grid may be NULL (then the
 * intensity has no attributes), else grid->M must be M. M must be odd. */
int spf_results_write(const char *path, int64_t M, const double *rho, const double *u, int64_t n_images,
                      const double *orientations, const float *best_dist, const float *gap,
                      const double *fluence, const float *entropy, double voxel_angstrom,
                      const spf_intensity_grid *grid, int generations, const char *config, char *msg,
                      size_t msg_len);

/* An intensity file: the dataset "intensity" (M, M, M) float64 with the same attributes
 * as results.h5's (unit: the given text), and on /: format = "spinifel intensity 1",
 * generator (text: what made it). Temp + rename. */
int spf_intensity_write(const char *path, const spf_intensity_grid *grid, const double *intensity, const char *unit,
                        const char *generator, char *msg, size_t msg_len);

/* The "intensity" of a results file or an intensity file: *intensity (M^3, malloc'ed,
 * caller frees), grid->M from the shape (cubic, odd, else SPF_ERR_FORMAT), the other
 * fields of grid from the attributes, NAN where the file lacks them (a results file of an
 * older version has only voxel_angstrom on /, which gives voxel_inv_angstrom =
 * 1 / (M voxel_angstrom)). unit (may be NULL): the unit text, "" if none. A file that is
 * not HDF5 gives SPF_ERR_FORMAT with "not an HDF5 file" in msg. */
int spf_intensity_read(const char *path, double **intensity, spf_intensity_grid *grid, char *unit, size_t unit_len,
                       char *msg, size_t msg_len);

/* The orientations (n_images x 4) of a results file; another count gives SPF_ERR_DATA
 * naming the shapes. */
int spf_results_read_orientations(const char *path, int64_t n_images, double *orientations, char *msg, size_t msg_len);

/* One per-image figure of a results file ("best_distance", "confidence", "fluence",
 * "entropy"), n_images of them, as double. */
int spf_results_read_per_image(const char *path, const char *name, int64_t n_images, double *out, char *msg,
                               size_t msg_len);

/* One M^3 volume of a results file ("intensity", "autocorrelation", "density"). */
int spf_results_read_volume(const char *path, const char *name, int64_t M, double *out, char *msg, size_t msg_len);

/* The 3D intensity of a centred real autocorrelation: I = Re FFT(u) on the same centred grid
 * (u index a <-> position a - (M-1)/2, I index a <-> mode a - (M-1)/2), M odd. Uses FFTW
 * (double) with FFTW_ESTIMATE and one thread; FFTW's planner is not thread-safe, so do not
 * call this while another thread plans an FFT. spf_autocorrelation (phasing.h) of a density
 * rho gives back I = |FFT rho|^2. */
int spf_intensity_from_autocorrelation(int64_t M, const double *u, double *intensity);

#endif
