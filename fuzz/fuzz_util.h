/* What the harnesses share: the input as a file (the readers take paths) in a
 * per-process scratch folder, on tmpfs when there is one. */
#ifndef SPINIFEL_FUZZ_UTIL_H
#define SPINIFEL_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The path of scratch file NAME ("input.pdb") of this process. */
static inline const char *fuzz_path(const char *name, char *buf, size_t len)
{
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  snprintf(buf, len, "%s/spinifel_fuzz.%ld.%s", base, (long)getpid(), name);
  return buf;
}

/* Write the input to scratch file NAME; returns its path, or aborts (a harness that cannot
 * write its input has nothing to test). */
static inline const char *fuzz_input_file(const char *name, const uint8_t *data, size_t size, char *buf, size_t len)
{
  fuzz_path(name, buf, len);
  FILE *f = fopen(buf, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
    perror(buf);
    abort();
  }
  return buf;
}

/* A property the reader promises does not hold: abort, so libFuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                                                 \
  do {                                                                                                   \
    if (!(cond)) {                                                                                       \
      printf("%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); /* stderr may be closed */ \
      fflush(stdout);                                                                                    \
      abort();                                                                                           \
    }                                                                                                    \
  } while (0)

/* A reader's result on a small input: success or a refusal, never "out of memory" (a
 * refusal for size must come from checking the declared sizes against the file). */
#define FUZZ_CHECK_RC(rc) FUZZ_CHECK((rc) != SPF_ERR_ALLOC)

#endif
