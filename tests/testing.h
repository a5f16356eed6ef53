/* A minimal test harness: named test functions, CHECK with a message, a summary line.
 * A test executable exits 0 when all checks pass, 1 otherwise, 77 when skipped. */
#ifndef SPINIFEL_TESTING_H
#define SPINIFEL_TESTING_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_ = 0, test_checks_ = 0, test_current_failed_ = 0;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    test_checks_++;                                                   \
    if (!(cond)) {                                                    \
      test_failures_++;                                               \
      test_current_failed_ = 1;                                       \
      fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fputc('\n', stderr);                                            \
    }                                                                 \
  } while (0)

#define RUN_TEST(fn)                                                  \
  do {                                                                \
    test_current_failed_ = 0;                                         \
    fn();                                                             \
    printf("%s %s\n", test_current_failed_ ? "FAIL" : "ok  ", #fn);   \
    fflush(stdout);                                                   \
  } while (0)

static inline int test_summary(void)
{
  printf("%d checks, %d failed\n", test_checks_, test_failures_);
  return test_failures_ ? 1 : 0;
}

/* Sanitizer builds set SPINIFEL_TEST_SCALE=small: big cases shrink, never vanish. */
static inline int test_small_scale(void)
{
  const char *s = getenv("SPINIFEL_TEST_SCALE");
  return s && !strcmp(s, "small");
}

#endif
