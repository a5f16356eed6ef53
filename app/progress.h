/* A progress line with rate and ETA on stderr, only when stderr is a terminal. */
#ifndef SPINIFEL_APP_PROGRESS_H
#define SPINIFEL_APP_PROGRESS_H

#include <stdint.h>

typedef struct {
  const char *label;   /* e.g. "simulate" */
  const char *unit;    /* e.g. "images" */
  double start;        /* wall-clock seconds at start */
  double last_print;
  int enabled;         /* stderr is a terminal */
} progress_bar;

void progress_start(progress_bar *b, const char *label, const char *unit);
/* Update with done out of total; redraws at most 10 times a second, and at the end. */
void progress_update(progress_bar *b, int64_t done, int64_t total);
void progress_finish(progress_bar *b);

#endif
