/* Molecules: PDB reading, the built-in phantom, form factors (see molecule.h). */
#include "spinifel/molecule.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spinifel/error.h"
#include "spinifel/random.h"

/* Waasmaier & Kirfel (1995), neutral atoms: a1..a5, b1..b5 (A^2), c. */
static const struct {
  int z;
  const char *sym;
  double a[5], b[5], c;
} WK[] = {
    {1, "H", {0.413048, 0.294953, 0.187491, 0.080701, 0.023736}, {15.56995, 32.39847, 5.711404, 61.88987, 1.334118}, 0.000049},
    {6, "C", {2.657506, 1.078079, 1.490909, -4.24107, 0.713791}, {14.78076, 0.776775, 42.08684, -0.000294, 0.239535}, 4.297983},
    {7, "N", {11.89378, 3.277479, 1.858092, 0.858927, 0.912985}, {0.000158, 10.23272, 30.34469, 0.656065, 0.217287}, -11.8049},
    {8, "O", {2.960427, 2.508818, 0.637853, 0.722838, 1.142756}, {14.18226, 5.936858, 0.112726, 34.95848, 0.39024}, 0.027014},
    {11, "NA", {4.910127, 3.081783, 1.262067, 1.098938, 0.560991}, {3.281434, 9.119178, 0.102763, 132.0139, 0.405878}, 0.079712},
    {12, "MG", {4.708971, 1.194814, 1.558157, 1.170413, 3.239403}, {4.875207, 108.5061, 0.111516, 48.29241, 1.928171}, 0.126842},
    {15, "P", {1.950541, 4.14693, 1.49456, 1.522042, 5.729711}, {0.908139, 27.04495, 0.07128, 67.52019, 1.981173}, 0.155233},
    {16, "S", {6.372157, 5.154568, 1.473732, 1.635073, 1.209372}, {1.514347, 22.09253, 0.061373, 55.44517, 0.646925}, 0.154722},
    {17, "CL", {1.446071, 6.870609, 6.151801, 1.750347, 0.634168}, {0.052357, 1.193165, 18.34342, 46.3984, 0.401005}, 0.146773},
    {19, "K", {8.163991, 7.146945, 1.07014, 0.877316, 1.486434}, {12.81632, 0.808945, 210.327, 39.59765, 0.052821}, 0.253614},
    {20, "CA", {8.593655, 1.477324, 1.436254, 1.182839, 7.113258}, {10.46064, 0.041891, 81.39038, 169.8478, 0.688098}, 0.196255},
    {25, "MN", {11.70954, 1.733414, 2.673141, 2.023368, 7.00318}, {5.59712, 0.0178, 21.78842, 89.51791, 0.383054}, -0.147293},
    {26, "FE", {12.3111, 1.876623, 3.066177, 2.070451, 6.975185}, {5.009415, 0.014461, 18.74304, 82.76788, 0.346506}, -0.304931},
    {29, "CU", {14.01419, 4.784577, 5.056806, 1.457971, 6.932996}, {3.73828, 0.003744, 13.03498, 72.55479, 0.265666}, -3.254477},
    {30, "ZN", {14.741, 6.907748, 4.642337, 2.191766, 38.42404}, {3.388232, 0.243315, 11.90369, 63.31213, 0.000397}, -36.91583},
    {34, "SE", {17.35407, 4.653248, 4.259489, 4.136455, 6.749163}, {2.349787, 0.00255, 15.57946, 45.1812, 0.177432}, -3.160982},
};
#define N_WK ((int)(sizeof WK / sizeof *WK))

int spf_element_from_symbol(const char *symbol)
{
  if (!symbol) return 0;
  char up[3] = {0, 0, 0};
  int n = 0;
  for (const char *p = symbol; *p && n < 3; p++) {
    if (isspace((unsigned char)*p)) continue;
    if (!isalpha((unsigned char)*p) || n == 2) return 0;
    up[n++] = (char)toupper((unsigned char)*p);
  }
  for (int i = 0; i < N_WK; i++)
    if (!strcmp(up, WK[i].sym)) return WK[i].z;
  return 0;
}

const char *spf_element_symbol(int z)
{
  for (int i = 0; i < N_WK; i++)
    if (WK[i].z == z) return WK[i].sym;
  return "?";
}

int spf_form_factor_coefficients(int z, spf_gaussian_form_factor *ff)
{
  for (int i = 0; i < N_WK; i++)
    if (WK[i].z == z) {
      if (ff) {
        memcpy(ff->a, WK[i].a, sizeof ff->a);
        memcpy(ff->b, WK[i].b, sizeof ff->b);
        ff->c = WK[i].c;
      }
      return SPF_OK;
    }
  return SPF_ERR_ARG;
}

double spf_form_factor(int z, double s)
{
  spf_gaussian_form_factor f;
  if (spf_form_factor_coefficients(z, &f)) return NAN;
  double v = f.c;
  for (int i = 0; i < 5; i++) v += f.a[i] * exp(-f.b[i] * s * s / 4);
  return v;
}

void spf_pdb_default_options(spf_pdb_options *o)
{
  if (!o) return;
  o->include_hetatm = 1;
  o->include_water = 0;
  o->assembly = 0;
}

void spf_molecule_free(spf_molecule *m)
{
  if (!m) return;
  free(m->xyz);
  free(m->z);
  free(m->occupancy);
  free(m->b_factor);
  free(m);
}

static int grow(spf_molecule *m, int64_t *cap)
{
  int64_t c = *cap ? 2 * *cap : 1024;
  double *xyz = realloc(m->xyz, sizeof(double) * 3 * (size_t)c);
  if (xyz) m->xyz = xyz;
  int *z = realloc(m->z, sizeof(int) * (size_t)c);
  if (z) m->z = z;
  double *oc = realloc(m->occupancy, sizeof(double) * (size_t)c);
  if (oc) m->occupancy = oc;
  double *bf = realloc(m->b_factor, sizeof(double) * (size_t)c);
  if (bf) m->b_factor = bf;
  if (!xyz || !z || !oc || !bf) return SPF_ERR_ALLOC;
  *cap = c;
  return SPF_OK;
}

/* Columns [from, to) of a line as a trimmed string. */
static void field(const char *line, size_t len, int from, int to, char *out)
{
  int n = 0;
  for (int i = from; i < to && (size_t)i < len; i++) out[n++] = line[i];
  out[n] = 0;
  while (n > 0 && isspace((unsigned char)out[n - 1])) out[--n] = 0;
  int s = 0;
  while (out[s] && isspace((unsigned char)out[s])) s++;
  if (s) memmove(out, out + s, (size_t)(n - s + 1));
}

static int parse_double(const char *s, double *v)
{
  char *end;
  if (!*s) return 0;
  *v = strtod(s, &end);
  return *end == 0 && isfinite(*v);
}

#define MAX_BIOMT 64

int spf_molecule_read_pdb(const char *path, const spf_pdb_options *opts, spf_molecule **out, char *msg,
                          size_t msg_len)
{
  if (!path || !out) return SPF_ERR_NULL;
  *out = NULL;
  spf_pdb_options o;
  if (opts) o = *opts;
  else spf_pdb_default_options(&o);
  FILE *f = fopen(path, "r");
  if (!f) {
    if (msg) snprintf(msg, msg_len, "%s: cannot open", path);
    return SPF_ERR_IO;
  }
  spf_molecule *m = calloc(1, sizeof *m);
  if (!m) {
    fclose(f);
    return SPF_ERR_ALLOC;
  }
  int64_t cap = 0, lineno = 0;
  int rc = SPF_OK, models = 0, done_model = 0;
  char line[512], altloc_kept = 0;
  double biomt[MAX_BIOMT][12];
  unsigned biomt_rows[MAX_BIOMT] = {0}; /* bit r: row r + 1 of that operator seen */
  int n_biomt = 0, in_bm1 = 0;
  char chains[256] = {0}; /* chains[c]: chain c is in biomolecule 1 */
  char *atom_chain = NULL;
  while (!rc && fgets(line, sizeof line, f)) {
    lineno++;
    size_t len = strcspn(line, "\r\n");
    line[len] = 0;
    if (!strncmp(line, "MODEL", 5)) {
      models++;
      continue;
    }
    if (!strncmp(line, "ENDMDL", 6)) {
      done_model = 1;
      continue;
    }
    if (!strncmp(line, "REMARK 350", 10)) {
      if (strstr(line, "BIOMOLECULE:")) in_bm1 = atoi(strstr(line, "BIOMOLECULE:") + 12) == 1;
      else if (in_bm1 && (strstr(line, "APPLY THE FOLLOWING TO CHAINS:") || strstr(line, "AND CHAINS:"))) {
        /* A list such as "A, B, C": one-character chain IDs (PDB column 22). */
        for (const char *c = strstr(line, ":") + 1; *c; c++)
          if (!isspace((unsigned char)*c) && *c != ',' && (c[1] == ',' || c[1] == '\0' || isspace((unsigned char)c[1])) &&
              (c[-1] == ',' || c[-1] == ':' || isspace((unsigned char)c[-1])))
            chains[(unsigned char)*c] = 1;
      } else if (in_bm1 && len > 23 && !strncmp(line + 13, "BIOMT", 5)) {
        int row = line[18] - '1', id;
        double v[4];
        if (row >= 0 && row < 3 &&
            sscanf(line + 19, "%d %lf %lf %lf %lf", &id, &v[0], &v[1], &v[2], &v[3]) == 5 && id >= 1 &&
            id <= MAX_BIOMT) {
          for (int k = 0; k < 4; k++) biomt[id - 1][row * 4 + k] = v[k];
          biomt_rows[id - 1] |= 1u << row;
          if (id > n_biomt) n_biomt = id;
        }
      }
      continue;
    }
    const int is_atom = !strncmp(line, "ATOM  ", 6), is_het = !strncmp(line, "HETATM", 6);
    if (!is_atom && !is_het) continue;
    if (done_model || (is_het && !o.include_hetatm)) continue;
    char res[8], name[8], elem[8], buf[16];
    field(line, len, 17, 20, res);
    if (!o.include_water && (!strcmp(res, "HOH") || !strcmp(res, "WAT") || !strcmp(res, "DOD"))) continue;
    const char alt = len > 16 ? line[16] : ' ';
    if (alt != ' ') {
      if (!altloc_kept) altloc_kept = alt;
      if (alt != altloc_kept) continue;
    }
    double xyz[3], occ = 1, bf = 0;
    for (int k = 0; k < 3; k++) {
      field(line, len, 30 + 8 * k, 38 + 8 * k, buf);
      /* The PDB's 8.3 columns hold -999.999 .. 9999.999 A. */
      if (!parse_double(buf, &xyz[k]) || !(fabs(xyz[k]) < 1e4)) {
        if (msg) snprintf(msg, msg_len, "%s:%lld: bad coordinate field '%s' (a number of A, |x| < 10000)", path,
                          (long long)lineno, buf);
        rc = SPF_ERR_FORMAT;
        break;
      }
    }
    if (rc) break;
    field(line, len, 54, 60, buf);
    if (*buf && (!parse_double(buf, &occ) || !(occ >= 0 && occ <= 1))) {
      if (msg) snprintf(msg, msg_len, "%s:%lld: bad occupancy '%s' (a number from 0 to 1)", path, (long long)lineno, buf);
      rc = SPF_ERR_FORMAT;
      break;
    }
    field(line, len, 60, 66, buf);
    if (*buf && (!parse_double(buf, &bf) || !(fabs(bf) < 1e4))) {
      if (msg) snprintf(msg, msg_len, "%s:%lld: bad B-factor '%s'", path, (long long)lineno, buf);
      rc = SPF_ERR_FORMAT;
      break;
    }
    field(line, len, 76, 78, elem);
    int z = spf_element_from_symbol(elem);
    if (!*elem) {
      /* No element column: PDB atom names put the element right-justified in 13-14. */
      field(line, len, 12, 16, name);
      char e[3] = {0, 0, 0};
      if (len > 13 && (line[12] == ' ' || isdigit((unsigned char)line[12]))) e[0] = line[13];
      else if (len > 13) e[0] = line[12], e[1] = line[13];
      z = spf_element_from_symbol(e);
      if (!z && e[1]) {
        e[1] = 0;
        z = spf_element_from_symbol(e);
      }
      snprintf(elem, sizeof elem, "%s", e);
    }
    if (!z) {
      if (msg) snprintf(msg, msg_len, "%s:%lld: unknown or untabulated element '%s'", path, (long long)lineno, elem);
      rc = SPF_ERR_FORMAT;
      break;
    }
    if (m->n_atoms == cap) {
      rc = grow(m, &cap);
      char *ac = realloc(atom_chain, (size_t)cap);
      if (!ac) rc = SPF_ERR_ALLOC;
      else atom_chain = ac;
      if (rc) break;
    }
    for (int k = 0; k < 3; k++) m->xyz[3 * m->n_atoms + k] = xyz[k];
    m->z[m->n_atoms] = z;
    m->occupancy[m->n_atoms] = occ;
    m->b_factor[m->n_atoms] = bf;
    atom_chain[m->n_atoms] = len > 21 ? line[21] : ' ';
    m->n_atoms++;
  }
  if (!rc && ferror(f)) {
    if (msg) snprintf(msg, msg_len, "%s: read error", path);
    rc = SPF_ERR_IO;
  }
  fclose(f);
  if (!rc && m->n_atoms == 0) {
    if (msg) snprintf(msg, msg_len, "%s: no ATOM or HETATM records", path);
    rc = SPF_ERR_FORMAT;
  }
  for (int t = 0; !rc && o.assembly && t < n_biomt; t++)
    if (biomt_rows[t] != 7u) {
      if (msg) snprintf(msg, msg_len, "%s: REMARK 350 operator %d lacks BIOMT row%s%s%s", path, t + 1,
                        biomt_rows[t] & 1 ? "" : " 1", biomt_rows[t] & 2 ? "" : " 2", biomt_rows[t] & 4 ? "" : " 3");
      rc = SPF_ERR_FORMAT;
    }
  /* A BIOMT operator is a rotation and a translation; anything else is a damaged record. */
  for (int t = 0; !rc && o.assembly && t < n_biomt; t++) {
    const double *b = biomt[t];
    double worst = 0;
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++) {
        const double d = b[4 * i] * b[4 * j] + b[4 * i + 1] * b[4 * j + 1] + b[4 * i + 2] * b[4 * j + 2] - (i == j);
        worst = fmax(worst, fabs(d));
      }
    if (!(worst < 1e-3) || !(fabs(b[3]) < 1e5 && fabs(b[7]) < 1e5 && fabs(b[11]) < 1e5)) {
      if (msg) snprintf(msg, msg_len, "%s: REMARK 350 operator %d is not a rotation and a translation (|t| < 1e5 A)", path,
                        t + 1);
      rc = SPF_ERR_FORMAT;
    }
  }
  if (!rc && o.assembly && n_biomt > 0) {
    /* Every BIOMT copy of the listed chains (the identity among them, usually). */
    const int64_t n0 = m->n_atoms;
    int64_t keep = 0;
    for (int64_t a = 0; a < n0; a++) keep += chains[(unsigned char)atom_chain[a]];
    if (keep == 0) {
      if (msg) snprintf(msg, msg_len, "%s: REMARK 350 biomolecule 1 applies to no chain that has atoms", path);
      rc = SPF_ERR_FORMAT;
    }
    while (cap < keep * n_biomt && !rc) rc = grow(m, &cap);
    if (!rc) {
      spf_molecule *g = calloc(1, sizeof *g);
      int64_t gcap = 0;
      while (g && gcap < keep * n_biomt && !rc) rc = grow(g, &gcap);
      if (!g) rc = SPF_ERR_ALLOC;
      for (int t = 0; !rc && t < n_biomt; t++)
        for (int64_t a = 0; a < n0; a++) {
          if (!chains[(unsigned char)atom_chain[a]]) continue;
          const double *x = m->xyz + 3 * a, *r = biomt[t];
          for (int k = 0; k < 3; k++)
            g->xyz[3 * g->n_atoms + k] = r[4 * k] * x[0] + r[4 * k + 1] * x[1] + r[4 * k + 2] * x[2] + r[4 * k + 3];
          g->z[g->n_atoms] = m->z[a];
          g->occupancy[g->n_atoms] = m->occupancy[a];
          g->b_factor[g->n_atoms] = m->b_factor[a];
          g->n_atoms++;
        }
      if (!rc) {
        spf_molecule_free(m);
        m = g;
      } else {
        spf_molecule_free(g);
      }
    }
  }
  free(atom_chain);
  if (rc) {
    spf_molecule_free(m);
    return rc;
  }
  *out = m;
  return SPF_OK;
}

void spf_molecule_centre(spf_molecule *m)
{
  double c[3] = {0, 0, 0}, w = 0;
  for (int64_t a = 0; a < m->n_atoms; a++) {
    double za = m->z[a] * m->occupancy[a];
    for (int k = 0; k < 3; k++) c[k] += za * m->xyz[3 * a + k];
    w += za;
  }
  if (w <= 0) return;
  for (int64_t a = 0; a < m->n_atoms; a++)
    for (int k = 0; k < 3; k++) m->xyz[3 * a + k] -= c[k] / w;
}

void spf_molecule_size(const spf_molecule *m, double *rg, double *rmax)
{
  double c[3] = {0, 0, 0}, s2 = 0, mx = 0;
  for (int64_t a = 0; a < m->n_atoms; a++)
    for (int k = 0; k < 3; k++) c[k] += m->xyz[3 * a + k] / (double)m->n_atoms;
  for (int64_t a = 0; a < m->n_atoms; a++) {
    double d2 = 0;
    for (int k = 0; k < 3; k++) d2 += pow(m->xyz[3 * a + k] - c[k], 2);
    s2 += d2 / (double)m->n_atoms;
    mx = fmax(mx, sqrt(d2));
  }
  if (rg) *rg = sqrt(s2);
  if (rmax) *rmax = mx;
}

/* The phantom's domains: centre and semi-axes in units of the overall scale. Three
 * domains alone left the low-resolution envelope close to a symmetric ellipsoid, whose
 * near-symmetries trap orientation matching; the two small lobes, off every axis of the
 * others and on opposite sides, break them. */
static const double DOMAINS[][6] = {
    {-0.45, 0.00, 0.05, 1.00, 0.80, 0.72},  /* large domain */
    {0.62, 0.20, -0.10, 0.70, 0.62, 0.55},  /* second domain */
    {0.05, -0.75, 0.55, 0.38, 0.33, 0.33},  /* small lobe, off the domains' axis */
    {0.95, -0.45, 0.60, 0.34, 0.28, 0.26},  /* arm of the second domain */
    {-1.00, 0.70, -0.45, 0.36, 0.30, 0.28}, /* lobe at the far end of the large domain */
};
#define N_DOMAINS ((int)(sizeof DOMAINS / sizeof *DOMAINS))

static int in_domains(const double p[3], double scale)
{
  for (int d = 0; d < N_DOMAINS; d++) {
    double s = 0;
    for (int k = 0; k < 3; k++) s += pow((p[k] - scale * DOMAINS[d][k]) / (scale * DOMAINS[d][3 + k]), 2);
    if (s <= 1) return 1;
  }
  return 0;
}

int spf_molecule_phantom(uint64_t seed, int64_t n_atoms, spf_molecule **out)
{
  if (!out) return SPF_ERR_NULL;
  *out = NULL;
  if (n_atoms < 1 || n_atoms > 10000000) return SPF_ERR_SIZE;
  /* Scale the domains so their union holds n_atoms at protein density: the union's
   * volume at scale 1 is measured by Monte Carlo with a fixed seed. */
  spf_rng r;
  spf_rng_seed(&r, 12345, 0);
  int64_t hits = 0, tries = 200000;
  for (int64_t t = 0; t < tries; t++) {
    double p[3] = {4 * spf_rng_uniform(&r) - 2, 4 * spf_rng_uniform(&r) - 2, 4 * spf_rng_uniform(&r) - 2};
    hits += in_domains(p, 1.0);
  }
  const double vol1 = 64.0 * (double)hits / (double)tries, density = 0.056, min_d = 1.4;
  const double scale = cbrt((double)n_atoms / density / vol1);
  spf_molecule *m = calloc(1, sizeof *m);
  int64_t cap = 0;
  int rc = m ? SPF_OK : SPF_ERR_ALLOC;
  while (!rc && cap < n_atoms) rc = grow(m, &cap);
  /* Hash grid of cell min_d for the minimum-distance test. */
  const double half = 2.2 * scale;
  const int64_t nc = (int64_t)ceil(2 * half / min_d) + 1;
  int64_t *head = rc ? NULL : malloc(sizeof(int64_t) * (size_t)(nc * nc * nc));
  int64_t *next = rc ? NULL : malloc(sizeof(int64_t) * (size_t)n_atoms);
  if (!rc && (!head || !next)) rc = SPF_ERR_ALLOC;
  if (!rc)
    for (int64_t i = 0; i < nc * nc * nc; i++) head[i] = -1;
  spf_rng_seed(&r, seed, 1);
  int64_t attempts = 0;
  while (!rc && m->n_atoms < n_atoms) {
    if (++attempts > 200 * n_atoms) {
      rc = SPF_ERR_ARG; /* cannot happen at this density; never loop forever */
      break;
    }
    double p[3];
    for (int k = 0; k < 3; k++) p[k] = half * (2 * spf_rng_uniform(&r) - 1);
    if (!in_domains(p, scale)) continue;
    int64_t c[3];
    for (int k = 0; k < 3; k++) c[k] = (int64_t)((p[k] + half) / min_d);
    int ok = 1;
    for (int64_t dz = -1; dz <= 1 && ok; dz++)
      for (int64_t dy = -1; dy <= 1 && ok; dy++)
        for (int64_t dx = -1; dx <= 1 && ok; dx++) {
          int64_t x = c[0] + dx, y = c[1] + dy, z = c[2] + dz;
          if (x < 0 || y < 0 || z < 0 || x >= nc || y >= nc || z >= nc) continue;
          for (int64_t a = head[(z * nc + y) * nc + x]; a >= 0 && ok; a = next[a]) {
            double d2 = 0;
            for (int k = 0; k < 3; k++) d2 += pow(m->xyz[3 * a + k] - p[k], 2);
            ok = d2 >= min_d * min_d;
          }
        }
    if (!ok) continue;
    const int64_t a = m->n_atoms++;
    for (int k = 0; k < 3; k++) m->xyz[3 * a + k] = p[k];
    const double u = spf_rng_uniform(&r);
    m->z[a] = u < 0.62 ? 6 : u < 0.79 ? 7 : u < 0.985 ? 8 : 16;
    m->occupancy[a] = 1;
    m->b_factor[a] = 20;
    const int64_t cell = (c[2] * nc + c[1]) * nc + c[0];
    next[a] = head[cell];
    head[cell] = a;
  }
  free(head);
  free(next);
  if (rc) {
    spf_molecule_free(m);
    return rc;
  }
  spf_molecule_centre(m);
  *out = m;
  return SPF_OK;
}

int spf_molecule_scattering_types(const spf_molecule *m, int *type, spf_gaussian_form_factor *ff, int *n_types)
{
  if (!m || !type || !ff || !n_types) return SPF_ERR_NULL;
  int nt = 0, kz[128];
  double kocc[128];
  for (int64_t a = 0; a < m->n_atoms; a++) {
    int t = 0;
    while (t < nt && !(kz[t] == m->z[a] && kocc[t] == m->occupancy[a])) t++;
    if (t == nt) {
      if (nt == 128) return SPF_ERR_SIZE;
      if (spf_form_factor_coefficients(m->z[a], &ff[nt])) return SPF_ERR_ARG;
      for (int i = 0; i < 5; i++) ff[nt].a[i] *= m->occupancy[a];
      ff[nt].c *= m->occupancy[a];
      kz[nt] = m->z[a];
      kocc[nt] = m->occupancy[a];
      nt++;
    }
    type[a] = t;
  }
  *n_types = nt;
  return SPF_OK;
}
