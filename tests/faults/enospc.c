/* A disk that fills up while a program writes, for tests (LD_PRELOAD): after
 * SPF_FAULT_BYTES bytes have gone through write(), pwrite() (libhdf5), fwrite() and fputs()
 * (stdio writes through glibc's internal write, which a preload cannot see) to files, not
 * the standard streams, every further write fails with ENOSPC. Unset: no effect. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static long long budget = -2; /* -2: not read yet; -1: no limit */

static int full(size_t n)
{
  if (budget == -2) {
    const char *e = getenv("SPF_FAULT_BYTES");
    budget = e ? atoll(e) : -1;
  }
  if (budget < 0) return 0;
  if ((long long)n > budget) {
    budget = 0;
    errno = ENOSPC;
    return 1;
  }
  budget -= (long long)n;
  return 0;
}

ssize_t write(int fd, const void *buf, size_t n)
{
  static ssize_t (*real)(int, const void *, size_t);
  if (!real) real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
  if (fd > 2 && full(n)) return -1;
  return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t at)
{
  static ssize_t (*real)(int, const void *, size_t, off_t);
  if (!real) real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
  if (fd > 2 && full(n)) return -1;
  return real(fd, buf, n, at);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t at) { return pwrite(fd, buf, n, at); }

size_t fwrite(const void *buf, size_t size, size_t n, FILE *f)
{
  static size_t (*real)(const void *, size_t, size_t, FILE *);
  if (!real) real = (size_t(*)(const void *, size_t, size_t, FILE *))dlsym(RTLD_NEXT, "fwrite");
  if (fileno(f) > 2 && full(size * n)) return 0;
  return real(buf, size, n, f);
}

int fputs(const char *s, FILE *f)
{
  static int (*real)(const char *, FILE *);
  if (!real) real = (int (*)(const char *, FILE *))dlsym(RTLD_NEXT, "fputs");
  if (fileno(f) > 2 && full(strlen(s))) return EOF;
  return real(s, f);
}
