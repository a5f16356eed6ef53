/* MRC2014 maps (see mrc.h). The 1024-byte header is 256 4-byte words. */
#include "spinifel/mrc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spinifel/error.h"
#include "tempfile.h"

static void put_i32(unsigned char *h, int word, int32_t v) { memcpy(h + 4 * word, &v, 4); }
static void put_f32(unsigned char *h, int word, float v) { memcpy(h + 4 * word, &v, 4); }
static int32_t get_i32(const unsigned char *h, int word)
{
  int32_t v;
  memcpy(&v, h + 4 * word, 4);
  return v;
}
static float get_f32(const unsigned char *h, int word)
{
  float v;
  memcpy(&v, h + 4 * word, 4);
  return v;
}

int spf_mrc_write(const char *path, const float *data, int64_t nx, int64_t ny, int64_t nz, double voxel,
                  const double origin[3], char *msg, size_t msg_len)
{
  if (!path || !data) return SPF_ERR_NULL;
  if (nx < 1 || ny < 1 || nz < 1 || nx > INT32_MAX || ny > INT32_MAX || nz > INT32_MAX) return SPF_ERR_SIZE;
  if (!(voxel > 0 && isfinite(voxel))) return SPF_ERR_ARG;
  const int64_t n = nx * ny * nz;
  double mn = INFINITY, mx = -INFINITY, sum = 0, sum2 = 0;
  for (int64_t i = 0; i < n; i++) {
    mn = fmin(mn, data[i]);
    mx = fmax(mx, data[i]);
    sum += data[i];
    sum2 += (double)data[i] * data[i];
  }
  const double mean = sum / (double)n, rms = sqrt(fmax(sum2 / (double)n - mean * mean, 0));
  unsigned char h[1024];
  memset(h, 0, sizeof h);
  put_i32(h, 0, (int32_t)nx);
  put_i32(h, 1, (int32_t)ny);
  put_i32(h, 2, (int32_t)nz);
  put_i32(h, 3, 2); /* mode 2: float32 */
  put_i32(h, 7, (int32_t)nx); /* mx, my, mz: sampling = size */
  put_i32(h, 8, (int32_t)ny);
  put_i32(h, 9, (int32_t)nz);
  put_f32(h, 10, (float)(nx * voxel)); /* cell in Angstrom */
  put_f32(h, 11, (float)(ny * voxel));
  put_f32(h, 12, (float)(nz * voxel));
  put_f32(h, 13, 90.0f);
  put_f32(h, 14, 90.0f);
  put_f32(h, 15, 90.0f);
  put_i32(h, 16, 1); /* columns, rows, sections = x, y, z */
  put_i32(h, 17, 2);
  put_i32(h, 18, 3);
  put_f32(h, 19, (float)mn);
  put_f32(h, 20, (float)mx);
  put_f32(h, 21, (float)mean);
  put_i32(h, 22, 1); /* space group P1 */
  put_i32(h, 27, 20140); /* EXTTYP 0, NVERSION 20140 */
  for (int k = 0; k < 3; k++) put_f32(h, 49 + k, origin ? (float)origin[k] : 0.0f);
  memcpy(h + 208, "MAP ", 4);
  h[212] = 0x44; /* little-endian machine stamp */
  h[213] = 0x44;
  put_f32(h, 54, (float)rms);
  put_i32(h, 55, 1);
  snprintf((char *)h + 224, 80, "spinifel density map");

  char tmp[4096];
  if (spf_temp_name(path, tmp, sizeof tmp)) {
    if (msg) snprintf(msg, msg_len, "%.200s...: path too long", path);
    return SPF_ERR_IO;
  }
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    if (msg) snprintf(msg, msg_len, "%s: cannot create (%s)", path, strerror(errno));
    return SPF_ERR_IO;
  }
  int ok = fwrite(h, 1, sizeof h, f) == sizeof h && fwrite(data, sizeof(float), (size_t)n, f) == (size_t)n;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    if (msg) snprintf(msg, msg_len, "%s: write failed (%s)", path, strerror(errno));
    return SPF_ERR_IO;
  }
  return SPF_OK;
}

int spf_mrc_read(const char *path, float **data, int64_t dims[3], double *voxel, double origin[3], char *msg,
                 size_t msg_len)
{
  if (!path || !data || !dims) return SPF_ERR_NULL;
  *data = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (msg) snprintf(msg, msg_len, "%s: cannot open (%s)", path, strerror(errno));
    return SPF_ERR_IO;
  }
  unsigned char h[1024];
  int rc = SPF_OK;
  if (fread(h, 1, sizeof h, f) != sizeof h) {
    if (msg) snprintf(msg, msg_len, "%s: shorter than an MRC header", path);
    rc = SPF_ERR_FORMAT;
  }
  int64_t n = 0, ext = 0;
  if (!rc) {
    for (int k = 0; k < 3; k++) dims[k] = get_i32(h, k);
    ext = get_i32(h, 23);
    if (memcmp(h + 208, "MAP ", 4) != 0 || dims[0] < 1 || dims[1] < 1 || dims[2] < 1 || ext < 0 ||
        dims[0] > 100000 || dims[1] > 100000 || dims[2] > 100000) {
      if (msg) snprintf(msg, msg_len, "%s: not an MRC map (bad header)", path);
      rc = SPF_ERR_FORMAT;
    } else if (get_i32(h, 3) != 2) {
      if (msg) snprintf(msg, msg_len, "%s: MRC mode %d, only mode 2 (float32) is read", path, get_i32(h, 3));
      rc = SPF_ERR_FORMAT;
    }
  }
  if (!rc) {
    n = dims[0] * dims[1] * dims[2];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (size != 1024 + ext + 4 * n) {
      if (msg) snprintf(msg, msg_len, "%s: %ld bytes, header says %lld", path, size, (long long)(1024 + ext + 4 * n));
      rc = SPF_ERR_FORMAT;
    }
  }
  if (!rc) {
    *data = malloc(sizeof(float) * (size_t)n);
    if (!*data) rc = SPF_ERR_ALLOC;
  }
  if (!rc && (fseek(f, 1024 + ext, SEEK_SET) != 0 || fread(*data, sizeof(float), (size_t)n, f) != (size_t)n)) {
    if (msg) snprintf(msg, msg_len, "%s: read error", path);
    rc = SPF_ERR_IO;
  }
  fclose(f);
  /* The voxel size is the cell's x length over its sampling (mx; the x size when 0): a
   * zero, negative or non-finite cell is no size at all, and every figure in Angstrom
   * would be a lie, so it is refused rather than taken as 1 A. */
  const int mx = get_i32(h, 7);
  const double cell = get_f32(h, 10), vox = cell / (double)(mx > 0 ? mx : dims[0]);
  if (!rc && !(vox > 0 && isfinite(vox))) {
    if (msg) snprintf(msg, msg_len, "%s: the cell size (%g A over %d samples) gives no valid voxel size", path, cell,
                      mx > 0 ? mx : (int)dims[0]);
    rc = SPF_ERR_FORMAT;
  }
  if (rc) {
    free(*data);
    *data = NULL;
    return rc;
  }
  if (voxel) *voxel = vox;
  if (origin)
    for (int k = 0; k < 3; k++) origin[k] = get_f32(h, 49 + k);
  return SPF_OK;
}
