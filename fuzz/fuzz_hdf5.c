/* libFuzzer harness: the HDF5 readers (src/dataset.c in both layouts, src/photons.c's HDF5
 * photon and detector files) on the same bytes. Properties: no crash or sanitizer report
 * in spinifel's code; a file accepted has consistent sizes, finite geometry, and its first
 * images read back finite and non-negative, or are refused with a message. What libhdf5
 * does inside H5Fopen on crafted bytes is libhdf5's (RELIABILITY.md; tools/lsan-libhdf5.supp); that
 * spinifel closes every HDF5 object it opens is checked after each input. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "spinifel/spinifel.h"

static void check_images(const float *img, int64_t n)
{
  for (int64_t i = 0; i < n; i++) FUZZ_CHECK(isfinite(img[i]) && img[i] >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char in[512], msg[1024];
  fuzz_input_file("input.h5", data, size, in, sizeof in);

  spf_dataset *d = NULL;
  int rc = spf_dataset_open(in, &d, msg, sizeof msg);
  FUZZ_CHECK_RC(rc);
  if (rc == SPF_OK) {
    FUZZ_CHECK(d->h.n_images > 0 && d->n_pixels > 0 && d->n_pixels == d->h.nx * d->h.ny);
    for (int64_t p = 0; p < 3 * d->n_pixels; p++) FUZZ_CHECK(isfinite(d->s[p]));
    const int64_t k = d->h.n_images < 3 ? d->h.n_images : 3;
    if ((uint64_t)d->n_pixels * (uint64_t)k <= (1u << 24)) {
      float *img = malloc((size_t)(k * d->n_pixels) * sizeof *img);
      double *q = malloc((size_t)(4 * k) * sizeof *q);
      if (img && q && spf_dataset_read_images(d, 0, k, img, q, msg, sizeof msg) == SPF_OK)
        check_images(img, k * d->n_pixels);
      free(img);
      free(q);
    }
    spf_dataset_close_reader(d);
  }

  spf_photons *p = NULL;
  rc = spf_photons_open(in, &p, msg, sizeof msg);
  FUZZ_CHECK_RC(rc);
  if (rc == SPF_OK) {
    const int64_t nf = spf_photons_n_frames(p), np = spf_photons_n_pixels(p);
    FUZZ_CHECK(nf >= 0 && np > 0);
    const int64_t k = nf < 3 ? nf : 3;
    if (k > 0 && (uint64_t)np * (uint64_t)k <= (1u << 24)) {
      float *img = malloc((size_t)(k * np) * sizeof *img);
      if (img && spf_photons_read(p, 0, k, img, msg, sizeof msg) == SPF_OK) check_images(img, k * np);
      free(img);
    }
    spf_photons_close_reader(p);
  }

  spf_photons_detector *det = NULL;
  rc = spf_photons_detector_read(in, 1e-10, &det, msg, sizeof msg);
  FUZZ_CHECK_RC(rc);
  if (rc == SPF_OK) {
    FUZZ_CHECK(det->n_pixels > 0);
    for (int64_t i = 0; i < 3 * det->n_pixels; i++) FUZZ_CHECK(isfinite(det->s[i]));
    for (int64_t i = 0; i < det->n_pixels; i++) FUZZ_CHECK(det->mask[i] <= 1);
    spf_photons_detector_free(det);
  }
  /* Every file, dataset, attribute, type and space the readers opened is closed again. */
  FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
  return 0;
}
