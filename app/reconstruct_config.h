/* The reconstruct command's parameters: one table gives the flag --NAME, the
 * configuration key NAME, its range and its help; read from INI text or flags, written
 * back as INI text (config.ini), so a written configuration reads back to itself. */
#ifndef SPINIFEL_APP_RECONSTRUCT_CONFIG_H
#define SPINIFEL_APP_RECONSTRUCT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "spinifel/spinifel.h"

enum { T_INT, T_I64, T_DOUBLE, T_TEXT };
typedef struct {
  const char *name;
  int type;
  void *ptr;
  double lo, hi;
  int results; /* 1: changes the result (a resume must match it) */
  const char *help;
} param;
#define MAX_PARAMS 64

typedef struct {
  spf_reconstruct_options o;
  int64_t images, threads;
  int half, pictures_each, mask_dead, quiet;
  int refs_given;          /* --refs, --refs-start or --refs-gens came from a flag or the file */
  int cg_tol_given, phase_every_given; /* --cg-tol, --phase-every likewise */
  char data[1024];
  char detector[1024]; /* EMC photons: their detector file */
  char output[1024];
  char model[1024];
} settings;

/* The defaults, before any file or flag. */
void config_defaults(settings *s);
/* The table of parameters pointing into s (t may be NULL); returns their number. */
int config_param_table(settings *s, param *t);
/* Set one parameter from text; 0 or 2 (message printed). where: "--name" or "FILE:LINE". */
int config_set(settings *s, const char *name, const char *value, const char *where);
/* The effective configuration as INI text; results_only leaves out what does not
 * change the result (output directory, threads), for the resume check. */
void config_text(settings *s, int results_only, char *out, size_t len);
/* Read a configuration file, or a run directory's config.ini (resume_dir not NULL):
 * what is missing or not a file is an input error (1), a bad line a usage error (2). */
int config_read_file(settings *s, const char *path, const char *resume_dir);
/* Read INI text (name: what messages call it); 0, or 2 for a bad line or value. */
int config_read_text(settings *s, const char *text, const char *name);

#endif
