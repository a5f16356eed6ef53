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

/* HDF5 prints its error stack by default; errors here become codes and messages. */
static inline void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

#endif
