/* Small helpers shared by the modules that read and write HDF5 (dataset, results). */
#ifndef SPINIFEL_HDF5_UTIL_H
#define SPINIFEL_HDF5_UTIL_H

#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>

/* A one-line message into msg (may be NULL). */
static inline void say(char *msg, size_t len, const char *fmt, ...)
{
  if (!msg || !len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, len, fmt, ap);
  va_end(ap);
}

/* Called before every use of HDF5. HDF5 prints its error stack by default; errors here
 * become codes and messages. And no HDF5 exit handler: after a close that failed (a disk
 * filled up during the write), libhdf5 1.10's handler crashes on the half-closed file at
 * exit (H5F__close_cb), turning a clean error into a segfault; spinifel closes every
 * object it opens, so the handler has nothing to do. It only takes effect before HDF5's
 * first use in the process (a host that used HDF5 first keeps its handler). */
static inline void quiet_hdf5(void)
{
  H5dont_atexit();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Whether ds can be read without one fault of libhdf5 1.10 on damaged files: a compact
 * dataset (its data inside its header) whose stored size is less than its extent makes
 * H5Dread copy from a null buffer, a crash (found by fuzz_hdf5). 0: refuse the read. */
static inline int h5_compact_complete(hid_t ds)
{
  const hid_t cp = H5Dget_create_plist(ds);
  const H5D_layout_t layout = cp >= 0 ? H5Pget_layout(cp) : H5D_LAYOUT_ERROR;
  if (cp >= 0) H5Pclose(cp);
  if (layout != H5D_COMPACT) return 1;
  const hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
  const hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  const size_t size = ty >= 0 ? H5Tget_size(ty) : 0;
  if (sp >= 0) H5Sclose(sp);
  if (ty >= 0) H5Tclose(ty);
  return n >= 0 && size > 0 && (double)H5Dget_storage_size(ds) >= (double)n * (double)size;
}

/* H5Dread behind that check: every read of a file's dataset goes through here. */
static inline herr_t h5_dread(hid_t ds, hid_t mem_type, hid_t mem_space, hid_t file_space, void *buf)
{
  return h5_compact_complete(ds) ? H5Dread(ds, mem_type, mem_space, file_space, H5P_DEFAULT, buf) : -1;
}

#endif
