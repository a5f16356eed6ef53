/* MRC2014 density maps (mode 2, float32), readable by ChimeraX, PyMOL and friends.
 * Data layout: x fastest, data[(iz * ny + iy) * nx + ix]. Writes go to a temporary
 * file renamed into place, so a failure never leaves a partial map. */
#ifndef SPINIFEL_MRC_H
#define SPINIFEL_MRC_H

#include <stddef.h>
#include <stdint.h>

/* voxel: Angstrom; origin: position of voxel (0, 0, 0) in Angstrom. msg (may be NULL)
 * receives a one-line error naming the file. */
int spf_mrc_write(const char *path, const float *data, int64_t nx, int64_t ny, int64_t nz, double voxel,
                  const double origin[3], char *msg, size_t msg_len);

/* Read a mode-2 map; *data is malloc'ed (caller frees). */
int spf_mrc_read(const char *path, float **data, int64_t dims[3], double *voxel, double origin[3], char *msg,
                 size_t msg_len);

#endif
