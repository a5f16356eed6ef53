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

#include "spinifel/spinifel.h"
#include "fuzz_util.h"

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

  fuzz_photons(in, 3);
  fuzz_detector(in, 1e-10);
  /* Every file, dataset, attribute, type and space the readers opened is closed again. */
  FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
  return 0;
}
