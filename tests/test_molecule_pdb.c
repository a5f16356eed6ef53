/* A real structure from the Protein Data Bank (2cex, the project's shared test data):
 * its own executable so that, where the file is absent, CTest reports a skip (77)
 * rather than a pass. SPINIFEL_SHARED_DATA names the folder (CTest sets it). */
#include <math.h>
#include <unistd.h>

#include "spinifel/spinifel.h"
#include "spinifel/molecule.h"
#include "testing.h"

static void reads_the_shared_2cex_structure(void)
{
  const char *dir = getenv("SPINIFEL_SHARED_DATA");
  char path[512];
  snprintf(path, sizeof path, "%s/2cex.pdb", dir ? dir : "../shared/data");
  if (access(path, R_OK) != 0) {
    printf("skip: 2cex.pdb not found at %s\n", path);
    exit(77);
  }
  /* Independent count: ATOM/HETATM lines that are not water (grep -E '^(ATOM  |HETATM)' | not HOH). */
  FILE *f = fopen(path, "r");
  char line[256];
  int64_t expect = 0;
  while (fgets(line, sizeof line, f))
    if ((!strncmp(line, "ATOM  ", 6) || !strncmp(line, "HETATM", 6)) && strncmp(line + 17, "HOH", 3)) expect++;
  fclose(f);
  spf_molecule *m;
  char msg[256] = "";
  CHECK(spf_molecule_read_pdb(path, NULL, &m, msg, sizeof msg) == SPF_OK, "read 2cex: %s", msg);
  CHECK(m->n_atoms == expect, "2cex atoms %lld, expected %lld", (long long)m->n_atoms, (long long)expect);
  int has[35] = {0};
  for (int64_t a = 0; a < m->n_atoms; a++) has[m->z[a]]++;
  CHECK(has[6] && has[7] && has[8] && has[16] && has[30], "C N O S Zn present");
  double rg, rmax;
  spf_molecule_size(m, &rg, &rmax);
  printf("  2cex: %lld atoms, radius of gyration %.1f A, max radius %.1f A\n", (long long)m->n_atoms, rg, rmax);
  CHECK(rg > 10 && rg < 40, "plausible radius of gyration %.1f", rg);
  spf_molecule_free(m);
}

int main(void)
{
  RUN_TEST(reads_the_shared_2cex_structure);
  return test_summary();
}
