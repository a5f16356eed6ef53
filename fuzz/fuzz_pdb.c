/* libFuzzer harness: the PDB reader (src/molecule.c), with and without the biological
 * assembly and waters. Properties: no crash or sanitizer report on any text; a molecule
 * it accepts has atoms with finite coordinates, known elements, occupancies in [0, 1]
 * and a finite size. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "spinifel/spinifel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char in[512], msg[1024];
  fuzz_input_file("input.pdb", data, size, in, sizeof in);
  for (int variant = 0; variant < 2; variant++) {
    spf_pdb_options o;
    spf_pdb_default_options(&o);
    o.assembly = variant;
    o.include_water = variant;
    spf_molecule *m = NULL;
    int rc = spf_molecule_read_pdb(in, &o, &m, msg, sizeof msg);
    FUZZ_CHECK_RC(rc);
    if (rc != SPF_OK) {
      FUZZ_CHECK(m == NULL && msg[0]);
      continue;
    }
    FUZZ_CHECK(m->n_atoms > 0);
    for (int64_t i = 0; i < m->n_atoms; i++) {
      FUZZ_CHECK(isfinite(m->xyz[3 * i]) && isfinite(m->xyz[3 * i + 1]) && isfinite(m->xyz[3 * i + 2]));
      FUZZ_CHECK(m->z[i] >= 1 && m->z[i] <= 118);
      FUZZ_CHECK(m->occupancy[i] >= 0 && m->occupancy[i] <= 1);
    }
    double rg, rmax;
    spf_molecule_size(m, &rg, &rmax);
    FUZZ_CHECK(isfinite(rg) && isfinite(rmax));
    spf_molecule_free(m);
  }
  return 0;
}
