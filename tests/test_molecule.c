/* Molecules: form factors, PDB reading, the phantom. */
#include <math.h>
#include <unistd.h>

#include "spinifel/spinifel.h"
#include "spinifel/molecule.h"
#include "testing.h"

static char tmpdir[64];

static const char *write_file(const char *name, const char *text)
{
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

/* f0(0) = a1+...+a5+c must equal the electron count: catches typos in the table. */
static void form_factors_count_electrons_and_decrease(void)
{
  const int zs[] = {1, 6, 7, 8, 11, 12, 15, 16, 17, 19, 20, 25, 26, 29, 30, 34};
  for (size_t i = 0; i < sizeof zs / sizeof *zs; i++) {
    double f0 = spf_form_factor(zs[i], 0.0);
    CHECK(fabs(f0 - zs[i]) < 0.01, "%s: f0(0) = %.4f", spf_element_symbol(zs[i]), f0);
    double prev = f0;
    int mono = 1;
    for (double s = 0.05; s <= 2.0; s += 0.05) {
      double f = spf_form_factor(zs[i], s);
      mono &= f < prev;
      prev = f;
    }
    CHECK(mono, "%s: f0 decreases on [0, 2] 1/A", spf_element_symbol(zs[i]));
    CHECK(spf_element_from_symbol(spf_element_symbol(zs[i])) == zs[i], "symbol round trip");
  }
  /* An independent parametrisation: Cromer-Mann 4-Gaussian carbon (International Tables
   * Vol. C, Table 6.1.1.4), good to ~0.01 electron for sin(theta)/lambda <= 1. */
  const double cm_a[4] = {2.31, 1.02, 1.5886, 0.865}, cm_b[4] = {20.8439, 10.2075, 0.5687, 51.6512}, cm_c = 0.2156;
  double worst = 0;
  for (double s = 0; s <= 2.0; s += 0.02) {
    double cm = cm_c;
    for (int i = 0; i < 4; i++) cm += cm_a[i] * exp(-cm_b[i] * s * s / 4);
    worst = fmax(worst, fabs(cm - spf_form_factor(6, s)));
  }
  CHECK(worst < 0.03, "carbon: Waasmaier-Kirfel and Cromer-Mann differ by %.4f", worst);
  CHECK(isnan(spf_form_factor(92, 0.1)), "untabulated element gives NaN");
  CHECK(spf_element_from_symbol("fe") == 26 && spf_element_from_symbol(" C") == 6 && spf_element_from_symbol("Xx") == 0,
        "symbols");
}

static void pdb_edge_cases(void)
{
  spf_molecule *m;
  char msg[256];
  /* Blank element columns, two models, altlocs, water, a HETATM. */
  const char *pdb =
      "MODEL        1\n"
      "ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00 20.00\n"
      "ATOM      2  CA AALA A   1      11.639   6.071  -5.147  0.60 20.00           C\n"
      "ATOM      3  CA BALA A   1      11.700   6.000  -5.100  0.40 20.00           C\n"
      "HETATM    4 FE   HEM A   2       1.000   2.000   3.000  1.00 20.00\n"
      "HETATM    5  O   HOH A   3       5.000   5.000   5.000  1.00 20.00           O\n"
      "ENDMDL\n"
      "MODEL        2\n"
      "ATOM      1  N   ALA A   1      99.000   6.134  -6.504  1.00 20.00           N\n"
      "ENDMDL\n";
  CHECK(spf_molecule_read_pdb(write_file("a.pdb", pdb), NULL, &m, msg, sizeof msg) == SPF_OK, "read: %s", msg);
  CHECK(m->n_atoms == 3, "first model, first altloc, no water: %lld atoms", (long long)m->n_atoms);
  CHECK(m->z[0] == 7 && m->z[1] == 6 && m->z[2] == 26, "elements from names: %d %d %d", m->z[0], m->z[1], m->z[2]);
  CHECK(fabs(m->xyz[3] - 11.639) < 1e-9, "altloc A kept");
  spf_molecule_free(m);
  spf_pdb_options o;
  spf_pdb_default_options(&o);
  o.include_water = 1;
  spf_molecule_read_pdb(write_file("a.pdb", pdb), &o, &m, msg, sizeof msg);
  CHECK(m->n_atoms == 4, "with water: %lld", (long long)m->n_atoms);
  spf_molecule_free(m);
  /* BIOMT: two copies, the second rotated 180 degrees about z and shifted. */
  const char *bio =
      "REMARK 350 BIOMOLECULE: 1\n"
      "REMARK 350 APPLY THE FOLLOWING TO CHAINS: A\n"
      "REMARK 350   BIOMT1   1  1.000000  0.000000  0.000000        0.00000\n"
      "REMARK 350   BIOMT2   1  0.000000  1.000000  0.000000        0.00000\n"
      "REMARK 350   BIOMT3   1  0.000000  0.000000  1.000000        0.00000\n"
      "REMARK 350   BIOMT1   2 -1.000000  0.000000  0.000000       10.00000\n"
      "REMARK 350   BIOMT2   2  0.000000 -1.000000  0.000000        0.00000\n"
      "REMARK 350   BIOMT3   2  0.000000  0.000000  1.000000        0.00000\n"
      "ATOM      1  CA  ALA A   1       1.000   2.000   3.000  1.00 20.00           C\n"
      "ATOM      2  CA  ALA B   1       7.000   7.000   7.000  1.00 20.00           C\n";
  o.assembly = 1;
  CHECK(spf_molecule_read_pdb(write_file("b.pdb", bio), &o, &m, msg, sizeof msg) == SPF_OK, "assembly: %s", msg);
  CHECK(m->n_atoms == 2 && fabs(m->xyz[3] - 9.0) < 1e-9 && fabs(m->xyz[4] + 2.0) < 1e-9,
        "BIOMT copies chain A only: %lld atoms", (long long)m->n_atoms);
  spf_molecule_free(m);
  CHECK(spf_molecule_read_pdb(write_file("c.pdb", "ATOM      1  CA  ALA A   1      1.00x   2.000   3.000  1.00 20.00           C\n"),
                              NULL, &m, msg, sizeof msg) == SPF_ERR_FORMAT && strstr(msg, ":1:"),
        "bad coordinate names the line: %s", msg);
  /* Values no PDB holds: a coordinate of 1e300, occupancies of 1e300 or below 0, a NaN
   * B-factor; an operator with a row missing (its matrix would be read uninitialised). */
  const char *bad_values[] = {
      "ATOM      1  CA  ALA A   1       1e300   2.000   3.000  1.00 20.00           C\n",
      "ATOM      1  CA  ALA A   1       1.000   2.000   3.000 1e300 20.00           C\n",
      "ATOM      1  CA  ALA A   1       1.000   2.000   3.000 -0.50 20.00           C\n",
      "ATOM      1  CA  ALA A   1       1.000   2.000   3.000  1.00   nan           C\n",
      "ATOM      1  CA  ALA A   1       1.000   2.000   3.000  x.00 20.00           C\n"};
  const char *bad_what[] = {"coordinate", "occupancy", "occupancy", "B-factor", "occupancy"};
  for (int b = 0; b < 5; b++)
    CHECK(spf_molecule_read_pdb(write_file("v.pdb", bad_values[b]), NULL, &m, msg, sizeof msg) == SPF_ERR_FORMAT &&
              strstr(msg, ":1:") && strstr(msg, bad_what[b]),
          "bad value %d: %s", b, msg);
  char holey[2048];
  snprintf(holey, sizeof holey, "%s", bio);
  char *row = strstr(holey, "REMARK 350   BIOMT2   2");
  memset(row, ' ', 26); /* no longer a BIOMT record: operator 2 lacks row 2 */
  memcpy(row, "REMARK 999", 10);
  CHECK(spf_molecule_read_pdb(write_file("h.pdb", holey), &o, &m, msg, sizeof msg) == SPF_ERR_FORMAT &&
            strstr(msg, "operator 2 lacks BIOMT row 2"),
        "a missing BIOMT row: %s", msg);
  CHECK(spf_molecule_read_pdb(write_file("d.pdb", ""), NULL, &m, msg, sizeof msg) == SPF_ERR_FORMAT, "empty file");
  CHECK(spf_molecule_read_pdb(write_file("e.pdb", "ATOM      1  XQ  ALA A   1       1.000   2.000   3.000  1.00 20.00          XQ\n"),
                              NULL, &m, msg, sizeof msg) == SPF_ERR_FORMAT, "unknown element");
  CHECK(spf_molecule_read_pdb("/nonexistent/x.pdb", NULL, &m, msg, sizeof msg) == SPF_ERR_IO, "missing file");
}

static void phantom_is_deterministic_centred_and_asymmetric(void)
{
  spf_molecule *a, *b;
  CHECK(spf_molecule_phantom(7, 2000, &a) == SPF_OK && spf_molecule_phantom(7, 2000, &b) == SPF_OK, "phantom");
  CHECK(a->n_atoms == 2000 && !memcmp(a->xyz, b->xyz, sizeof(double) * 6000) && !memcmp(a->z, b->z, sizeof(int) * 2000),
        "same seed, same molecule");
  double c[3] = {0, 0, 0}, w = 0, skew[3] = {0, 0, 0}, m2[3] = {0, 0, 0}, dmin = 1e9;
  int count[35] = {0};
  for (int64_t i = 0; i < a->n_atoms; i++) {
    for (int k = 0; k < 3; k++) c[k] += a->z[i] * a->xyz[3 * i + k];
    w += a->z[i];
    count[a->z[i]]++;
  }
  CHECK(fabs(c[0] / w) + fabs(c[1] / w) + fabs(c[2] / w) < 1e-9, "centred on its centre of mass");
  for (int64_t i = 0; i < a->n_atoms; i++)
    for (int k = 0; k < 3; k++) skew[k] += pow(a->xyz[3 * i + k], 3) / 2000, m2[k] += pow(a->xyz[3 * i + k], 2) / 2000;
  double sk = 0;
  for (int k = 0; k < 3; k++) sk = fmax(sk, fabs(skew[k]) / pow(m2[k], 1.5));
  CHECK(sk > 0.1, "not centrosymmetric: largest axis skewness %.3f", sk);
  for (int64_t i = 0; i < 300; i++)
    for (int64_t j = i + 1; j < a->n_atoms; j++) {
      double d = 0;
      for (int k = 0; k < 3; k++) d += pow(a->xyz[3 * i + k] - a->xyz[3 * j + k], 2);
      dmin = fmin(dmin, sqrt(d));
    }
  CHECK(dmin >= 1.4 - 1e-9, "minimum distance %.3f", dmin);
  CHECK(fabs(count[6] / 2000.0 - 0.62) < 0.04 && fabs(count[7] / 2000.0 - 0.17) < 0.03, "composition C %d N %d O %d S %d",
        count[6], count[7], count[8], count[16]);
  double rg, rmax;
  spf_molecule_size(a, &rg, &rmax);
  printf("  phantom: 2000 atoms, radius of gyration %.1f A, max radius %.1f A, skewness %.2f, min distance %.2f A\n",
         rg, rmax, sk, dmin);
  spf_molecule_free(a);
  spf_molecule_free(b);
}

int main(void)
{
  snprintf(tmpdir, sizeof tmpdir, "/tmp/spf_test_molXXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  RUN_TEST(form_factors_count_electrons_and_decrease);
  RUN_TEST(pdb_edge_cases);
  RUN_TEST(phantom_is_deterministic_centred_and_asymmetric);
  const char *names[] = {"a.pdb", "b.pdb", "c.pdb", "d.pdb", "e.pdb"};
  for (int i = 0; i < 5; i++) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
    unlink(p);
  }
  rmdir(tmpdir);
  return test_summary();
}
