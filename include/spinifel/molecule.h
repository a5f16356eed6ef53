/* A molecule: atoms with positions (Angstrom) and elements; read from PDB files or the
 * built-in phantom; X-ray form factors of Waasmaier & Kirfel, Acta Cryst. A51 (1995)
 * 416-431: f0(s) = sum_{i<5} a_i exp(-b_i s^2 / 4) + c, s = 2 sin(theta)/lambda in 1/A. */
#ifndef SPINIFEL_MOLECULE_H
#define SPINIFEL_MOLECULE_H

#include <stddef.h>
#include <stdint.h>

#include "spinifel/scattering.h"

typedef struct {
  int64_t n_atoms;
  double *xyz;        /* 3 * n_atoms, Angstrom */
  int *z;             /* atomic number per atom */
  double *occupancy;
  double *b_factor;   /* A^2 (kept, not used by the simulator) */
} spf_molecule;

typedef struct {
  int include_hetatm;   /* default 1 */
  int include_water;    /* HOH/WAT/DOD residues; default 0 */
  int assembly;         /* 1: apply REMARK 350 BIOMT of biomolecule 1; default 0 */
} spf_pdb_options;

void spf_pdb_default_options(spf_pdb_options *o);

/* Read ATOM/HETATM records of the first MODEL (first alternate location). Elements from
 * columns 77-78, else from the atom name. msg (may be NULL) gets "FILE:LINE: what". */
int spf_molecule_read_pdb(const char *path, const spf_pdb_options *opts, spf_molecule **out, char *msg,
                          size_t msg_len);

/* The built-in default: a deterministic protein-like phantom of n_atoms heavy atoms
 * (C 62%, N 17%, O 19.5%, S 1.5%) at protein density (0.056 atoms/A^3), in five
 * overlapping ellipsoidal domains of different sizes placed asymmetrically, with at
 * least 1.4 A between atoms, centred on its centre of mass. */
int spf_molecule_phantom(uint64_t seed, int64_t n_atoms, spf_molecule **out);

void spf_molecule_free(spf_molecule *m);

/* Radius of gyration and largest distance from the centre of mass, Angstrom. */
void spf_molecule_size(const spf_molecule *m, double *radius_of_gyration, double *max_radius);

/* Move the centre of mass (electron-weighted) to the origin. */
void spf_molecule_centre(spf_molecule *m);

/* Element <-> atomic number (1..34 covered by the table, plus a few heavier ones); 0 if
 * unknown. */
int spf_element_from_symbol(const char *symbol);
const char *spf_element_symbol(int z);

/* Waasmaier-Kirfel coefficients of element z; SPF_ERR_ARG if not tabulated. */
int spf_form_factor_coefficients(int z, spf_gaussian_form_factor *ff);
/* f0(s) in electrons (NAN if z is not tabulated). */
double spf_form_factor(int z, double s_inv_angstrom);

/* Compact per-atom type indices and a form-factor table for spf_scattering_make: type
 * (n_atoms ints), ff (room for 128 entries), *n_types. Occupancy scales the form factor. */
int spf_molecule_scattering_types(const spf_molecule *m, int *type, spf_gaussian_form_factor *ff, int *n_types);

#endif
