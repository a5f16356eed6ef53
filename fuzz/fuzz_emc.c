/* libFuzzer harness: EMC's binary photon files and text detector files (src/photons.c),
 * on the same bytes. Properties: no crash or sanitizer report on any bytes; sizes checked
 * against the file before allocating; frames it reads are finite non-negative counts;
 * a detector it accepts has finite positions and a 0/1 mask. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "spinifel/spinifel.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char in[512];
  fuzz_input_file("input.emc", data, size, in, sizeof in);
  fuzz_photons(in, 4);
  fuzz_detector(in, 0);
  fuzz_detector(in, 1e-10);
  return 0;
}
