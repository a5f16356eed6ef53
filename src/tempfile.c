#include "tempfile.h"

#include "spinifel/error.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

/* Remove "<dir>/<base>.tmp.<pid>" files whose process is gone (kill(pid, 0): ESRCH). */
static void remove_stale(const char *path)
{
  const char *slash = strrchr(path, '/');
  char dir[4096];
  const char *base = slash ? slash + 1 : path;
  if (slash) {
    const size_t n = (size_t)(slash - path);
    if (n >= sizeof dir) return;
    memcpy(dir, path, n);
    dir[n] = 0;
    if (n == 0) snprintf(dir, sizeof dir, "/");
  } else {
    snprintf(dir, sizeof dir, ".");
  }
  const size_t blen = strlen(base);
  if (blen == 0) return;
  DIR *d = opendir(dir);
  if (!d) return;
  const long self = (long)getpid();
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *name = e->d_name;
    if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0) continue;
    const char *digits = name + blen + 5;
    char *end;
    errno = 0;
    const long pid = strtol(digits, &end, 10);
    if (end == digits || *end || errno || pid <= 0 || pid == self) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
    char full[8192];
    if (snprintf(full, sizeof full, "%s/%s", dir, name) < (int)sizeof full) unlink(full);
  }
  closedir(d);
}

int spf_temp_name(const char *path, char *out, size_t out_len)
{
  if (!path || !out) return -1;
  const int n = snprintf(out, out_len, "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= out_len) return -1;
  remove_stale(path);
  return 0;
}

int spf_check_free_space(const char *path, double bytes)
{
  struct statvfs v;
  if (!path || statvfs(path, &v) != 0) return SPF_OK; /* cannot tell: the write will say */
  const double avail = (double)v.f_bavail * (double)v.f_frsize;
  return avail >= bytes ? SPF_OK : SPF_ERR_NO_SPACE;
}
