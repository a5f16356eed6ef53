/* libFuzzer harness: the reconstruct command's configuration reader (app/reconstruct_config.c).
 * Properties: no crash or sanitizer report on any text; a text it accepts, written back as
 * config.ini, reads back to the same configuration (a resume sees the run's settings). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "reconstruct_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  settings a;
  config_defaults(&a);
  int rc = config_read_text(&a, text, "fuzz.ini");
  FUZZ_CHECK(rc == 0 || rc == 1 || rc == 2);
  if (rc == 0) {
    static char once[65536], twice[65536];
    config_text(&a, 0, once, sizeof once);
    settings b;
    config_defaults(&b);
    FUZZ_CHECK(config_read_text(&b, once, "config.ini") == 0);
    config_text(&b, 0, twice, sizeof twice);
    FUZZ_CHECK(strcmp(once, twice) == 0);
  }
  free(text);
  return 0;
}
