/* Progress on stderr that fits where it goes: a live line on a terminal, plain
 * timestamped lines when stderr is redirected (a log file read later, or by tail -f),
 * nothing with --quiet. */
#ifndef SPINIFEL_APP_PROGRESS_H
#define SPINIFEL_APP_PROGRESS_H

#include <stdint.h>

enum { PROGRESS_QUIET, PROGRESS_LINES, PROGRESS_LIVE };

/* The mode for this process: quiet if asked, live on a terminal, lines otherwise. */
int progress_mode(int quiet);
/* "[2026-12-02 06:45:12] " on stderr: the start of a progress line in LINES mode. */
void progress_stamp(void);

typedef struct {
  const char *label;   /* e.g. "simulate" */
  const char *unit;    /* e.g. "images" */
  double start;        /* wall-clock seconds at start */
  double last_print;
  int mode;            /* PROGRESS_* */
  int last_tenth;      /* LINES: the last tenth of the work reported */
} progress_bar;

void progress_start(progress_bar *b, const char *label, const char *unit, int mode);
/* Update with done out of total: LIVE redraws at most 10 times a second and at the end;
 * LINES prints a line at every tenth of the work, and at least once a minute. */
void progress_update(progress_bar *b, int64_t done, int64_t total);
void progress_finish(progress_bar *b);

#endif
