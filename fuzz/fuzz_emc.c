/* libFuzzer harness: EMC's binary photon files and text detector files (src/photons.c),
 * on the same bytes. Properties: no crash or sanitizer report on any bytes; sizes checked
 * against the file before allocating; frames it reads are finite non-negative counts;
 * a detector it accepts has finite positions and a 0/1 mask. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "spinifel/spinifel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char in[512], msg[1024];
  fuzz_input_file("input.emc", data, size, in, sizeof in);
  spf_photons *p = NULL;
  int rc = spf_photons_open(in, &p, msg, sizeof msg);
  FUZZ_CHECK_RC(rc);
  if (rc == SPF_OK) {
    const int64_t nf = spf_photons_n_frames(p), np = spf_photons_n_pixels(p);
    FUZZ_CHECK(nf >= 0 && np > 0);
    const int64_t k = nf < 4 ? nf : 4;
    if (k > 0 && (uint64_t)np * (uint64_t)k <= (1u << 24)) {
      float *img = malloc((size_t)(k * np) * sizeof *img);
      if (img && spf_photons_read(p, 0, k, img, msg, sizeof msg) == SPF_OK)
        for (int64_t i = 0; i < k * np; i++) FUZZ_CHECK(isfinite(img[i]) && img[i] >= 0);
      free(img);
    }
    spf_photons_close_reader(p);
  }
  for (int w = 0; w < 2; w++) {
    spf_photons_detector *det = NULL;
    rc = spf_photons_detector_read(in, w ? 1e-10 : 0, &det, msg, sizeof msg);
    FUZZ_CHECK_RC(rc);
    if (rc != SPF_OK) continue;
    FUZZ_CHECK(det->n_pixels > 0);
    for (int64_t i = 0; i < 3 * det->n_pixels; i++) FUZZ_CHECK(isfinite(det->s[i]));
    for (int64_t i = 0; i < det->n_pixels; i++) FUZZ_CHECK(det->mask[i] <= 1);
    spf_photons_detector_free(det);
  }
  return 0;
}
