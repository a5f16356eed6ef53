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

int progress_mode(int quiet)
{
  if (quiet) return PROGRESS_QUIET;
  return isatty(fileno(stderr)) ? PROGRESS_LIVE : PROGRESS_LINES;
}

void progress_stamp(void)
{
  const time_t t = time(NULL);
  struct tm tm;
  char buf[32] = "";
  if (localtime_r(&t, &tm)) strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  fprintf(stderr, "[%s] ", buf);
}

void progress_start(progress_bar *b, const char *label, const char *unit, int mode)
{
  b->label = label;
  b->unit = unit;
  b->start = now();
  b->last_print = b->start;
  b->mode = mode;
  b->last_tenth = 0;
}

void progress_update(progress_bar *b, int64_t done, int64_t total)
{
  if (b->mode == PROGRESS_QUIET) return;
  double t = now();
  const int tenth = total > 0 ? (int)(10 * done / total) : 10;
  if (b->mode == PROGRESS_LIVE && done < total && t - b->last_print < 0.1) return;
  if (b->mode == PROGRESS_LINES && tenth <= b->last_tenth && t - b->last_print < 60) return;
  b->last_print = t;
  b->last_tenth = tenth;
  double elapsed = t - b->start, rate = elapsed > 0 ? (double)done / elapsed : 0;
  double eta = rate > 0 ? (double)(total - done) / rate : 0;
  const double pct = total > 0 ? 100.0 * (double)done / (double)total : 100.0;
  if (b->mode == PROGRESS_LINES) {
    progress_stamp();
    fprintf(stderr, "%s %3.0f%% %lld/%lld %s  %.1f %s/s  elapsed %.0fs  ETA %.0fs\n", b->label, pct,
            (long long)done, (long long)total, b->unit, rate, b->unit, elapsed, eta);
    return;
  }
  int width = 30, filled = total > 0 ? (int)(width * (double)done / (double)total) : width;
  char bar[31];
  for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : ' ';
  bar[width] = 0;
  fprintf(stderr, "\r%s [%s] %3.0f%% %lld/%lld %s  %.1f %s/s  elapsed %.0fs  ETA %.0fs ", b->label, bar, pct,
          (long long)done, (long long)total, b->unit, rate, b->unit, elapsed, eta);
  fflush(stderr);
}

void progress_finish(progress_bar *b)
{
  if (b->mode == PROGRESS_LIVE) fputc('\n', stderr);
}
