/* What the harnesses share: the input as a file (the readers take paths) in a
 * per-process scratch folder, on tmpfs when there is one. */
#ifndef SPINIFEL_FUZZ_UTIL_H
#define SPINIFEL_FUZZ_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spinifel/spinifel.h"

/* The path of scratch file NAME ("input.pdb") of this process. */
static inline const char *fuzz_path(const char *name, char *buf, size_t len)
{
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  snprintf(buf, len, "%s/spinifel_fuzz.%ld.%s", base, (long)getpid(), name);
  return buf;
}

/* Write the input to scratch file NAME; returns its path, or aborts (a harness that cannot
 * write its input has nothing to test). */
static inline const char *fuzz_input_file(const char *name, const uint8_t *data, size_t size, char *buf, size_t len)
{
  fuzz_path(name, buf, len);
  FILE *f = fopen(buf, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
    perror(buf);
    abort();
  }
  return buf;
}

/* A property the reader promises does not hold: abort, so libFuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                                                 \
  do {                                                                                                   \
    if (!(cond)) {                                                                                       \
      printf("%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); /* stderr may be closed */ \
      fflush(stdout);                                                                                    \
      abort();                                                                                           \
    }                                                                                                    \
  } while (0)

/* A reader's result on a small input: success or a refusal, never "out of memory" (a
 * refusal for size must come from checking the declared sizes against the file). */
#define FUZZ_CHECK_RC(rc) FUZZ_CHECK((rc) != SPF_ERR_ALLOC)

/* Photon file (either kind) at path: opened, its first frames (at most max_frames, and
 * no more than 2^24 values) read back as finite non-negative counts, or refused. */
static inline void fuzz_photons(const char *path, int64_t max_frames)
{
  char msg[1024];
  spf_photons *p = NULL;
  int rc = spf_photons_open(path, &p, msg, sizeof msg);
  FUZZ_CHECK_RC(rc);
  if (rc != SPF_OK) return;
  const int64_t nf = spf_photons_n_frames(p), np = spf_photons_n_pixels(p);
  FUZZ_CHECK(nf >= 0 && np > 0);
  const int64_t k = nf < max_frames ? nf : max_frames;
  if (k > 0 && (uint64_t)np * (uint64_t)k <= (1u << 24)) {
    float *img = malloc((size_t)(k * np) * sizeof *img);
    if (img && spf_photons_read(p, 0, k, img, msg, sizeof msg) == SPF_OK)
      for (int64_t i = 0; i < k * np; i++) FUZZ_CHECK(isfinite(img[i]) && img[i] >= 0);
    free(img);
  }
  spf_photons_close_reader(p);
}

/* Detector file at path (wavelength 0: the file's): finite positions and a 0/1 mask, or refused. */
static inline void fuzz_detector(const char *path, double wavelength_m)
{
  char msg[1024];
  spf_photons_detector *det = NULL;
  int rc = spf_photons_detector_read(path, wavelength_m, &det, msg, sizeof msg);
  FUZZ_CHECK_RC(rc);
  if (rc != SPF_OK) return;
  FUZZ_CHECK(det->n_pixels > 0);
  for (int64_t i = 0; i < 3 * det->n_pixels; i++) FUZZ_CHECK(isfinite(det->s[i]));
  for (int64_t i = 0; i < det->n_pixels; i++) FUZZ_CHECK(det->mask[i] <= 1);
  spf_photons_detector_free(det);
}

#endif
