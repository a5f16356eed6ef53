#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress_bar *b, const char *label, const char *unit)
{
  b->label = label;
  b->unit = unit;
  b->start = now();
  b->last_print = 0;
  b->enabled = isatty(fileno(stderr));
}

void progress_update(progress_bar *b, int64_t done, int64_t total)
{
  if (!b->enabled) return;
  double t = now();
  if (done < total && t - b->last_print < 0.1) return;
  b->last_print = t;
  double elapsed = t - b->start, rate = elapsed > 0 ? (double)done / elapsed : 0;
  double eta = rate > 0 ? (double)(total - done) / rate : 0;
  int width = 30, filled = total > 0 ? (int)(width * (double)done / (double)total) : width;
  char bar[31];
  for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : ' ';
  bar[width] = 0;
  fprintf(stderr, "\r%s [%s] %3.0f%% %lld/%lld %s  %.1f %s/s  elapsed %.0fs  ETA %.0fs ", b->label, bar,
          total > 0 ? 100.0 * (double)done / (double)total : 100.0, (long long)done, (long long)total,
          b->unit, rate, b->unit, elapsed, eta);
  fflush(stderr);
}

void progress_finish(progress_bar *b)
{
  if (b->enabled) fputc('\n', stderr);
}
