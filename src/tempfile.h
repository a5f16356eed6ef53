/* Internal: the temporary name an output is written under before it is renamed into
 * place, "<path>.tmp.<pid>", so that a failure or a kill never leaves a half-written
 * file under the final name. */
#ifndef SPINIFEL_TEMPFILE_H
#define SPINIFEL_TEMPFILE_H

#include <stddef.h>

/* Write path's temporary name into out (0 on success, -1 if it does not fit). First
 * removes path's temporaries left by writers that no longer run (a killed process's
 * "<path>.tmp.<pid>" with no such process on this machine); a live writer's is never
 * touched. A writer on another machine sharing the directory is not seen: one writer
 * per output, as the program writes them. */
int spf_temp_name(const char *path, char *out, size_t out_len);

/* SPF_OK when the file system holding path has at least bytes free (or cannot tell),
 * else SPF_ERR_NO_SPACE. Writers call it before each large write: libhdf5 1.10 left in
 * a failed write by a full disk cannot close the file, and crashes at exit. */
int spf_check_free_space(const char *path, double bytes);

#endif
