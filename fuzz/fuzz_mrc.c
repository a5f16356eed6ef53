/* libFuzzer harness: the MRC map reader (src/mrc.c).
 * Properties: no crash or sanitizer report on any bytes; a map it accepts has sizes that
 * fit the file, a positive finite voxel size and a finite origin, and written back by
 * spf_mrc_write it reads back to the same samples and geometry. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "spinifel/spinifel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char in[512], out[512], msg[1024];
  fuzz_input_file("input.mrc", data, size, in, sizeof in);
  float *map = NULL;
  int64_t dims[3];
  double voxel, origin[3];
  int rc = spf_mrc_read(in, &map, dims, &voxel, origin, msg, sizeof msg);
  FUZZ_CHECK_RC(rc);
  if (rc != SPF_OK) {
    FUZZ_CHECK(map == NULL && msg[0]);
    return 0;
  }
  FUZZ_CHECK(dims[0] > 0 && dims[1] > 0 && dims[2] > 0);
  const int64_t n = dims[0] * dims[1] * dims[2];
  FUZZ_CHECK(1024 + 4 * (uint64_t)n <= size);
  FUZZ_CHECK(voxel > 0 && isfinite(voxel));
  FUZZ_CHECK(isfinite(origin[0]) && isfinite(origin[1]) && isfinite(origin[2]));
  fuzz_path("output.mrc", out, sizeof out);
  FUZZ_CHECK(spf_mrc_write(out, map, dims[0], dims[1], dims[2], voxel, origin, msg, sizeof msg) == SPF_OK);
  float *again = NULL;
  int64_t d2[3];
  double v2, o2[3];
  FUZZ_CHECK(spf_mrc_read(out, &again, d2, &v2, o2, msg, sizeof msg) == SPF_OK);
  FUZZ_CHECK(d2[0] == dims[0] && d2[1] == dims[1] && d2[2] == dims[2]);
  FUZZ_CHECK(memcmp(again, map, (size_t)n * sizeof *map) == 0);
  /* The cell is stored as a float: the voxel size comes back to float precision. */
  FUZZ_CHECK(fabs(v2 - voxel) <= 1e-6 * voxel);
  for (int k = 0; k < 3; k++) FUZZ_CHECK((float)o2[k] == (float)origin[k]);
  free(again);
  free(map);
  remove(out);
  return 0;
}
