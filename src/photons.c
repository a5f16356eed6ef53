/* Sparse photons and detector files in EMC's layout (see photons.h). */
#include "spinifel/photons.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hdf5_util.h"
#include "spinifel/error.h"
#include "tempfile.h"

#define HEADER_BYTES 1024
#define MAX_INT32 2147483647LL
#define CHUNK_INTS 16384 /* ints per read or write buffer */

enum { KIND_SPARSE = 0, KIND_DENSE_INT = 1, KIND_DENSE_DOUBLE = 2, KIND_HDF5 = 3 };

/* ------------------------------------------------------------------ byte order */

static int host_is_big_endian(void)
{
  const uint16_t one = 1;
  return *(const uint8_t *)&one == 0;
}

/* The file is little-endian: swap in place on a big-endian host (the same call both ways). */
static void le32_swap(int32_t *a, size_t n)
{
  if (!host_is_big_endian()) return;
  for (size_t i = 0; i < n; i++) {
    uint32_t v = (uint32_t)a[i];
    a[i] = (int32_t)((v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24));
  }
}

static void le64_swap(double *a, size_t n)
{
  if (!host_is_big_endian()) return;
  for (size_t i = 0; i < n; i++) {
    uint8_t b[8], r[8];
    memcpy(b, &a[i], 8);
    for (int k = 0; k < 8; k++) r[k] = b[7 - k];
    memcpy(&a[i], r, 8);
  }
}

/* ------------------------------------------------------------------ writing photons */

enum { S_COUNTS, S_ONES, S_PLACE_MULTI, S_COUNT_MULTI, N_SCRATCH };

struct spf_photons_writer_s {
  char path[1024], tmp[1100];
  int64_t n_pixels, n_frames;
  FILE *scratch[N_SCRATCH]; /* (ones, multi) per frame, then the three lists; unlinked */
  int32_t *ones, *place_multi, *count_multi; /* one frame's lists */
  int failed;               /* an I/O error happened: only abort or close (which fails) */
};

void spf_photons_abort(spf_photons_writer *w)
{
  if (!w) return;
  for (int k = 0; k < N_SCRATCH; k++)
    if (w->scratch[k]) fclose(w->scratch[k]);
  unlink(w->tmp);
  free(w->ones);
  free(w->place_multi);
  free(w->count_multi);
  free(w);
}

int spf_photons_create(const char *path, int64_t n_pixels, spf_photons_writer **out, char *msg, size_t msg_len)
{
  if (!path || !out) return SPF_ERR_NULL;
  *out = NULL;
  if (n_pixels < 1 || n_pixels > MAX_INT32) {
    say(msg, msg_len, "%s: %lld pixels per frame (the EMC format holds 1 .. 2^31 - 1)", path, (long long)n_pixels);
    return SPF_ERR_SIZE;
  }
  if (strlen(path) >= 1000) return SPF_ERR_ARG;
  spf_photons_writer *w = calloc(1, sizeof *w);
  if (!w) return SPF_ERR_ALLOC;
  snprintf(w->path, sizeof w->path, "%s", path);
  if (spf_temp_name(path, w->tmp, sizeof w->tmp)) {
    free(w);
    return SPF_ERR_ARG;
  }
  w->n_pixels = n_pixels;
  w->ones = malloc(sizeof(int32_t) * (size_t)n_pixels);
  w->place_multi = malloc(sizeof(int32_t) * (size_t)n_pixels);
  w->count_multi = malloc(sizeof(int32_t) * (size_t)n_pixels);
  if (!w->ones || !w->place_multi || !w->count_multi) {
    spf_photons_abort(w);
    return SPF_ERR_ALLOC;
  }
  /* Scratch files beside the output (same file system, so space is checked where it
   * matters), unlinked at once: a crash leaves nothing behind. */
  for (int k = 0; k < N_SCRATCH; k++) {
    char name[1200];
    snprintf(name, sizeof name, "%s.%d", w->tmp, k);
    w->scratch[k] = fopen(name, "w+b");
    if (!w->scratch[k]) {
      say(msg, msg_len, "%s: cannot create a scratch file beside it: %s", path, strerror(errno));
      spf_photons_abort(w);
      return SPF_ERR_IO;
    }
    unlink(name);
  }
  *out = w;
  return SPF_OK;
}

static int put_ints(FILE *f, int32_t *a, size_t n)
{
  le32_swap(a, n);
  return fwrite(a, sizeof(int32_t), n, f) == n ? SPF_OK : SPF_ERR_IO;
}

int spf_photons_write(spf_photons_writer *w, int64_t count, const float *frames, char *msg, size_t msg_len)
{
  if (!w || (count > 0 && !frames)) return SPF_ERR_NULL;
  if (count < 0 || w->n_frames + count > MAX_INT32) {
    say(msg, msg_len, "%s: %lld more frames would exceed the format's 2^31 - 1", w->path, (long long)count);
    return SPF_ERR_SIZE;
  }
  if (w->failed) return SPF_ERR_IO;
  const int64_t np = w->n_pixels;
  /* Check the whole call first, so that a refused call writes nothing. */
  for (int64_t i = 0; i < count; i++)
    for (int64_t p = 0; p < np; p++) {
      const float v = frames[i * np + p];
      if (!(v >= 0 && v < 2147483648.0f) || v != floorf(v)) {
        say(msg, msg_len, "%s: frame %lld pixel %lld is %g (photon counts must be integers 0 .. 2^31 - 1)", w->path,
            (long long)(w->n_frames + i), (long long)p, (double)v);
        return SPF_ERR_DATA;
      }
    }
  int rc = SPF_OK;
  for (int64_t i = 0; !rc && i < count; i++) {
    const float *f = frames + i * np;
    int32_t n1 = 0, nm = 0;
    for (int64_t p = 0; p < np; p++) {
      if (f[p] == 1) {
        w->ones[n1++] = (int32_t)p;
      } else if (f[p] > 1) {
        w->place_multi[nm] = (int32_t)p;
        w->count_multi[nm++] = (int32_t)f[p];
      }
    }
    int32_t sizes[2] = {n1, nm};
    rc = put_ints(w->scratch[S_COUNTS], sizes, 2);
    if (!rc) rc = put_ints(w->scratch[S_ONES], w->ones, (size_t)n1);
    if (!rc) rc = put_ints(w->scratch[S_PLACE_MULTI], w->place_multi, (size_t)nm);
    if (!rc) rc = put_ints(w->scratch[S_COUNT_MULTI], w->count_multi, (size_t)nm);
    if (!rc) w->n_frames++;
  }
  if (rc) {
    w->failed = 1;
    say(msg, msg_len, "%s: cannot write the scratch files (disk full?)", w->path);
  }
  return rc;
}

/* Copy all of a scratch file to out; with pick 0 or 1, only that half of each pair. */
static int copy_scratch(FILE *in, FILE *out, int pick, int32_t *buf)
{
  if (fflush(in) != 0 || fseek(in, 0, SEEK_SET) != 0) return SPF_ERR_IO;
  size_t n;
  while ((n = fread(buf, sizeof(int32_t), CHUNK_INTS, in)) > 0) {
    if (pick >= 0) {
      for (size_t i = 0; 2 * i + 1 < n; i++) buf[i] = buf[2 * i + pick];
      n /= 2;
    }
    if (fwrite(buf, sizeof(int32_t), n, out) != n) return SPF_ERR_IO;
  }
  return ferror(in) ? SPF_ERR_IO : SPF_OK;
}

int spf_photons_close(spf_photons_writer *w, char *msg, size_t msg_len)
{
  if (!w) return SPF_ERR_NULL;
  if (w->failed) {
    say(msg, msg_len, "%s: an earlier write failed; not written", w->path);
    spf_photons_abort(w);
    return SPF_ERR_IO;
  }
  int32_t *buf = malloc(sizeof(int32_t) * CHUNK_INTS);
  FILE *out = buf ? fopen(w->tmp, "wb") : NULL;
  int rc = buf ? (out ? SPF_OK : SPF_ERR_IO) : SPF_ERR_ALLOC;
  if (!rc) {
    int32_t header[HEADER_BYTES / 4] = {(int32_t)w->n_frames, (int32_t)w->n_pixels, KIND_SPARSE};
    rc = put_ints(out, header, HEADER_BYTES / 4);
  }
  /* ones[] and multi[] come from the interleaved per-frame pairs, then the lists. */
  if (!rc) rc = copy_scratch(w->scratch[S_COUNTS], out, 0, buf);
  if (!rc) rc = copy_scratch(w->scratch[S_COUNTS], out, 1, buf);
  for (int k = S_ONES; !rc && k < N_SCRATCH; k++) rc = copy_scratch(w->scratch[k], out, -1, buf);
  if (out && fclose(out) != 0 && !rc) rc = SPF_ERR_IO;
  free(buf);
  if (!rc && rename(w->tmp, w->path) != 0) rc = SPF_ERR_IO;
  if (rc) {
    say(msg, msg_len, "%s: could not finish writing", w->path);
    spf_photons_abort(w);
    return rc;
  }
  for (int k = 0; k < N_SCRATCH; k++) fclose(w->scratch[k]);
  free(w->ones);
  free(w->place_multi);
  free(w->count_multi);
  free(w);
  return SPF_OK;
}

/* ------------------------------------------------------------------ reading photons */

struct spf_photons_s {
  char path[1024];
  int kind;
  int64_t n_frames, n_pixels;
  int fd;
  int64_t *ones_at, *multi_at;   /* sparse: n_frames + 1 running sums of ones[] and multi[] */
  int64_t place_ones_off, place_multi_off, count_multi_off; /* sparse: byte offsets of the lists */
  int32_t *buf[3];               /* read buffers, CHUNK_INTS each */
  hid_t file, place_ones, place_multi, count_multi; /* HDF5 variant */
};

void spf_photons_close_reader(spf_photons *p)
{
  if (!p) return;
  if (p->fd >= 0) close(p->fd);
  if (p->place_ones >= 0) H5Dclose(p->place_ones);
  if (p->place_multi >= 0) H5Dclose(p->place_multi);
  if (p->count_multi >= 0) H5Dclose(p->count_multi);
  if (p->file >= 0) H5Fclose(p->file);
  free(p->ones_at);
  free(p->multi_at);
  for (int k = 0; k < 3; k++) free(p->buf[k]);
  free(p);
}

int64_t spf_photons_n_frames(const spf_photons *p) { return p ? p->n_frames : 0; }
int64_t spf_photons_n_pixels(const spf_photons *p) { return p ? p->n_pixels : 0; }

/* Exactly n bytes at offset, or SPF_ERR_IO. */
static int read_at(int fd, void *buf, size_t n, int64_t offset)
{
  uint8_t *b = buf;
  while (n > 0) {
    ssize_t got = pread(fd, b, n, (off_t)offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return SPF_ERR_IO;
    b += got;
    n -= (size_t)got;
    offset += got;
  }
  return SPF_OK;
}

/* Read n int32 values at offset into running sums at[0..n] (at[0] = 0), each value
 * within 0 .. max. Returns the index of a bad value in *bad. */
static int read_sums(int fd, int64_t offset, int64_t n, int64_t max, int32_t *buf, int64_t *at, int64_t *bad)
{
  at[0] = 0;
  for (int64_t d = 0; d < n; d += CHUNK_INTS) {
    const int64_t c = n - d < CHUNK_INTS ? n - d : CHUNK_INTS;
    if (read_at(fd, buf, sizeof(int32_t) * (size_t)c, offset + 4 * d)) return SPF_ERR_IO;
    le32_swap(buf, (size_t)c);
    for (int64_t i = 0; i < c; i++) {
      if (buf[i] < 0 || buf[i] > max) {
        *bad = d + i;
        return SPF_ERR_DATA;
      }
      at[d + i + 1] = at[d + i] + buf[i];
    }
  }
  return SPF_OK;
}

static int open_binary(spf_photons *p, int64_t size, char *msg, size_t msg_len)
{
  int32_t head[3];
  if (size < HEADER_BYTES || read_at(p->fd, head, sizeof head, 0)) {
    say(msg, msg_len, "%s: shorter than the EMC header (1024 bytes)", p->path);
    return SPF_ERR_FORMAT;
  }
  le32_swap(head, 3);
  const int64_t n = head[0], np = head[1], body = size - HEADER_BYTES;
  if (n < 0 || np < 1 || head[2] < KIND_SPARSE || head[2] > KIND_DENSE_DOUBLE) {
    say(msg, msg_len, "%s: not an EMC photon file (header: %lld frames, %lld pixels, type %d)", p->path, (long long)n,
        (long long)np, head[2]);
    return SPF_ERR_FORMAT;
  }
  p->n_frames = n;
  p->n_pixels = np;
  p->kind = head[2];
  if (p->kind != KIND_SPARSE) {
    const int64_t item = p->kind == KIND_DENSE_INT ? 4 : 8;
    /* n * np * item == body, tested without overflow. */
    if ((n > 0 && np > body / item / n) || n * np * item != body) {
      say(msg, msg_len, "%s: %lld bytes after the header do not hold %lld dense frames of %lld pixels of %lld bytes",
          p->path, (long long)body, (long long)n, (long long)np, (long long)item);
      return SPF_ERR_FORMAT;
    }
    return SPF_OK;
  }
  if (n > body / 8) {
    say(msg, msg_len, "%s: truncated (%lld frames declared, the file cannot hold their counts)", p->path,
        (long long)n);
    return SPF_ERR_FORMAT;
  }
  p->ones_at = malloc(sizeof(int64_t) * (size_t)(n + 1));
  p->multi_at = malloc(sizeof(int64_t) * (size_t)(n + 1));
  if (!p->ones_at || !p->multi_at) return SPF_ERR_ALLOC;
  int64_t bad = 0;
  for (int k = 0; k < 2; k++) {
    int rc = read_sums(p->fd, HEADER_BYTES + 4 * k * n, n, np, p->buf[0], k ? p->multi_at : p->ones_at, &bad);
    if (rc == SPF_ERR_IO) {
      say(msg, msg_len, "%s: cannot read the per-frame counts", p->path);
      return rc;
    }
    if (rc) {
      say(msg, msg_len, "%s: frame %lld declares a number of %s pixels outside 0 .. %lld", p->path, (long long)bad,
          k ? "multi-photon" : "one-photon", (long long)np);
      return rc;
    }
  }
  /* The sums are below 2^62 (n and np are int32), but 4 (t1 + 2 tm) may not fit in
   * int64: compare in double, exact for any length a file can have. */
  const int64_t t1 = p->ones_at[n], tm = p->multi_at[n];
  const double need = (double)HEADER_BYTES + 8.0 * (double)n + 4.0 * ((double)t1 + 2.0 * (double)tm);
  if (need != (double)size) {
    say(msg, msg_len, "%s: %s (%lld bytes; %lld frames with %lld + %lld listed pixels need %.0f)", p->path,
        need > (double)size ? "truncated" : "has bytes after the photon lists", (long long)size, (long long)n,
        (long long)t1, (long long)tm, need);
    return SPF_ERR_FORMAT;
  }
  p->place_ones_off = HEADER_BYTES + 8 * n;
  p->place_multi_off = p->place_ones_off + 4 * t1;
  p->count_multi_off = p->place_multi_off + 4 * tm;
  return SPF_OK;
}

/* A dataset of the HDF5 variant: rank 1, variable-length integers. Its length, or -1. */
static int64_t vlen_list_length(hid_t ds)
{
  hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
  int64_t n = -1;
  hsize_t dim;
  if (sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 && H5Sget_simple_extent_dims(sp, &dim, NULL) == 1 && t >= 0 &&
      H5Tget_class(t) == H5T_VLEN) {
    hid_t base = H5Tget_super(t);
    if (base >= 0 && H5Tget_class(base) == H5T_INTEGER) n = (int64_t)dim;
    if (base >= 0) H5Tclose(base);
  }
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  return n;
}

static int open_hdf5(spf_photons *p, int64_t size, char *msg, size_t msg_len)
{
  p->kind = KIND_HDF5;
  p->file = H5Fopen(p->path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (p->file < 0) {
    say(msg, msg_len, "%s: HDF5 cannot open it (truncated?)", p->path);
    return SPF_ERR_FORMAT;
  }
  const char *names[3] = {"place_ones", "place_multi", "count_multi"};
  hid_t *ids[3] = {&p->place_ones, &p->place_multi, &p->count_multi};
  int64_t len[3];
  for (int k = 0; k < 3; k++) {
    *ids[k] = H5Lexists(p->file, names[k], H5P_DEFAULT) > 0 ? H5Dopen2(p->file, names[k], H5P_DEFAULT) : -1;
    len[k] = *ids[k] >= 0 ? vlen_list_length(*ids[k]) : -1;
    if (len[k] < 0 || len[k] != len[0]) {
      say(msg, msg_len, "%s: no EMC photons: '%s' missing, not a list per frame, or of another length", p->path,
          names[k]);
      return SPF_ERR_FORMAT;
    }
  }
  /* num_pix: a number, stored as a one-element array by Dragonfly's writer. */
  hid_t ds = H5Lexists(p->file, "num_pix", H5P_DEFAULT) > 0 ? H5Dopen2(p->file, "num_pix", H5P_DEFAULT) : -1;
  hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
  long long np = 0;
  const int ok = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 &&
                 h5_dread(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, &np) >= 0;
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  if (!ok || np < 1 || np > MAX_INT32) {
    say(msg, msg_len, "%s: 'num_pix' missing or not a number of pixels 1 .. 2^31 - 1", p->path);
    return SPF_ERR_FORMAT;
  }
  if (len[0] > size) { /* every frame takes space in the file */
    say(msg, msg_len, "%s: %lld frames declared in a file of %lld bytes", p->path, (long long)len[0], (long long)size);
    return SPF_ERR_FORMAT;
  }
  p->n_frames = len[0];
  p->n_pixels = np;
  return SPF_OK;
}

int spf_photons_open(const char *path, spf_photons **out, char *msg, size_t msg_len)
{
  if (!path || !out) return SPF_ERR_NULL;
  *out = NULL;
  quiet_hdf5();
  spf_photons *p = calloc(1, sizeof *p);
  if (!p) return SPF_ERR_ALLOC;
  p->fd = -1;
  p->file = p->place_ones = p->place_multi = p->count_multi = -1;
  snprintf(p->path, sizeof p->path, "%s", path);
  for (int k = 0; k < 3; k++)
    if (!(p->buf[k] = malloc(sizeof(int32_t) * CHUNK_INTS))) {
      spf_photons_close_reader(p);
      return SPF_ERR_ALLOC;
    }
  struct stat st;
  p->fd = open(path, O_RDONLY);
  if (p->fd < 0 || fstat(p->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    say(msg, msg_len, "%s: cannot open", path);
    spf_photons_close_reader(p);
    return SPF_ERR_IO;
  }
  int rc;
  if (H5Fis_hdf5(path) > 0) {
    close(p->fd);
    p->fd = -1;
    rc = open_hdf5(p, (int64_t)st.st_size, msg, msg_len);
  } else {
    rc = open_binary(p, (int64_t)st.st_size, msg, msg_len);
  }
  if (rc) {
    spf_photons_close_reader(p);
    return rc;
  }
  *out = p;
  return SPF_OK;
}

/* Consecutive int32 values of a list in the file, read a buffer at a time. */
typedef struct {
  int fd;
  int64_t offset, left;
  int32_t *buf;
  int64_t len, at;
} int_stream;

static int next_int(int_stream *s, int32_t *v)
{
  if (s->at == s->len) {
    const int64_t c = s->left < CHUNK_INTS ? s->left : CHUNK_INTS;
    if (c <= 0 || read_at(s->fd, s->buf, sizeof(int32_t) * (size_t)c, s->offset)) return SPF_ERR_IO;
    le32_swap(s->buf, (size_t)c);
    s->offset += 4 * c;
    s->left -= c;
    s->len = c;
    s->at = 0;
  }
  *v = s->buf[s->at++];
  return SPF_OK;
}

static int bad_pixel(const spf_photons *p, int64_t frame, int32_t pixel, char *msg, size_t msg_len)
{
  say(msg, msg_len, "%s: frame %lld lists pixel %d (the frames have %lld pixels)", p->path, (long long)frame, pixel,
      (long long)p->n_pixels);
  return SPF_ERR_DATA;
}

static int bad_count(const spf_photons *p, int64_t frame, int32_t pixel, int32_t count, char *msg, size_t msg_len)
{
  say(msg, msg_len, "%s: frame %lld pixel %d has a count of %d", p->path, (long long)frame, pixel, count);
  return SPF_ERR_DATA;
}

static int read_sparse(spf_photons *p, int64_t first, int64_t count, float *out, char *msg, size_t msg_len)
{
  const int64_t np = p->n_pixels;
  const int64_t o0 = p->ones_at[first], m0 = p->multi_at[first];
  int_stream ones = {p->fd, p->place_ones_off + 4 * o0, p->ones_at[first + count] - o0, p->buf[0], 0, 0};
  int_stream place = {p->fd, p->place_multi_off + 4 * m0, p->multi_at[first + count] - m0, p->buf[1], 0, 0};
  int_stream cnt = {p->fd, p->count_multi_off + 4 * m0, p->multi_at[first + count] - m0, p->buf[2], 0, 0};
  for (int64_t i = 0; i < count; i++) {
    const int64_t d = first + i;
    float *f = out + i * np;
    int32_t px, c;
    for (int64_t k = p->ones_at[d]; k < p->ones_at[d + 1]; k++) {
      if (next_int(&ones, &px)) goto io;
      if (px < 0 || px >= np) return bad_pixel(p, d, px, msg, msg_len);
      f[px] += 1;
    }
    for (int64_t k = p->multi_at[d]; k < p->multi_at[d + 1]; k++) {
      if (next_int(&place, &px) || next_int(&cnt, &c)) goto io;
      if (px < 0 || px >= np) return bad_pixel(p, d, px, msg, msg_len);
      if (c < 0) return bad_count(p, d, px, c, msg, msg_len);
      f[px] += (float)c;
    }
  }
  return SPF_OK;
io:
  say(msg, msg_len, "%s: cannot read the photon lists (file changed or unreadable)", p->path);
  return SPF_ERR_IO;
}

static int read_dense(spf_photons *p, int64_t first, int64_t count, float *out, char *msg, size_t msg_len)
{
  const int64_t np = p->n_pixels, item = p->kind == KIND_DENSE_INT ? 4 : 8, total = count * np;
  const int64_t per = CHUNK_INTS / 2; /* values per read: the buffer holds CHUNK_INTS * 4 bytes */
  for (int64_t at = 0; at < total; at += per) {
    const int64_t c = total - at < per ? total - at : per;
    if (read_at(p->fd, p->buf[0], (size_t)(c * item), HEADER_BYTES + (first * np + at) * item)) {
      say(msg, msg_len, "%s: cannot read frames %lld..%lld", p->path, (long long)first,
          (long long)(first + count - 1));
      return SPF_ERR_IO;
    }
    for (int64_t j = 0; j < c; j++) {
      double v;
      if (item == 4) {
        le32_swap(p->buf[0] + j, 1);
        v = p->buf[0][j];
      } else {
        double *dv = (double *)(void *)p->buf[0];
        le64_swap(dv + j, 1);
        v = dv[j];
      }
      if (!(v >= 0) || !isfinite(v)) {
        const int64_t g = first * np + at + j;
        say(msg, msg_len, "%s: frame %lld pixel %lld is %g (must be finite and >= 0)", p->path,
            (long long)(g / np), (long long)(g % np), v);
        return SPF_ERR_DATA;
      }
      out[at + j] = (float)v;
    }
  }
  return SPF_OK;
}

static int read_hdf5(spf_photons *p, int64_t first, int64_t count, float *out, char *msg, size_t msg_len)
{
  const int64_t np = p->n_pixels;
  hvl_t *lists[3] = {calloc((size_t)count, sizeof(hvl_t)), calloc((size_t)count, sizeof(hvl_t)),
                     calloc((size_t)count, sizeof(hvl_t))};
  hid_t ids[3] = {p->place_ones, p->place_multi, p->count_multi};
  hid_t mt = H5Tvlen_create(H5T_NATIVE_INT32);
  hsize_t start = (hsize_t)first, cnt = (hsize_t)count;
  hid_t ms = H5Screate_simple(1, &cnt, NULL);
  int rc = lists[0] && lists[1] && lists[2] ? SPF_OK : SPF_ERR_ALLOC;
  int done[3] = {0, 0, 0};
  for (int k = 0; !rc && k < 3; k++) {
    hid_t fs = H5Dget_space(ids[k]);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
    if (h5_dread(ids[k], mt, ms, fs, lists[k]) < 0) {
      say(msg, msg_len, "%s: cannot read frames %lld..%lld of the photon lists", p->path, (long long)first,
          (long long)(first + count - 1));
      rc = SPF_ERR_IO;
    } else {
      done[k] = 1;
    }
    H5Sclose(fs);
  }
  for (int64_t i = 0; !rc && i < count; i++) {
    const int64_t d = first + i;
    float *f = out + i * np;
    const int32_t *o = lists[0][i].p, *pm = lists[1][i].p, *cm = lists[2][i].p;
    if (lists[1][i].len != lists[2][i].len) {
      say(msg, msg_len, "%s: frame %lld has %zu multi-photon pixels but %zu counts", p->path, (long long)d,
          lists[1][i].len, lists[2][i].len);
      rc = SPF_ERR_DATA;
      break;
    }
    for (size_t k = 0; !rc && k < lists[0][i].len; k++) {
      if (o[k] < 0 || o[k] >= np) rc = bad_pixel(p, d, o[k], msg, msg_len);
      else f[o[k]] += 1;
    }
    for (size_t k = 0; !rc && k < lists[1][i].len; k++) {
      if (pm[k] < 0 || pm[k] >= np) rc = bad_pixel(p, d, pm[k], msg, msg_len);
      else if (cm[k] < 0) rc = bad_count(p, d, pm[k], cm[k], msg, msg_len);
      else f[pm[k]] += (float)cm[k];
    }
  }
  for (int k = 0; k < 3; k++) {
    if (done[k]) H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, lists[k]);
    free(lists[k]);
  }
  H5Sclose(ms);
  H5Tclose(mt);
  return rc;
}

int spf_photons_read(spf_photons *p, int64_t first, int64_t count, float *out, char *msg, size_t msg_len)
{
  if (!p || (count > 0 && !out)) return SPF_ERR_NULL;
  if (first < 0 || count < 0 || first + count > p->n_frames) {
    say(msg, msg_len, "%s: frames %lld..%lld requested, file has %lld", p->path, (long long)first,
        (long long)(first + count - 1), (long long)p->n_frames);
    return SPF_ERR_SIZE;
  }
  if (count == 0) return SPF_OK;
  memset(out, 0, sizeof(float) * (size_t)(count * p->n_pixels));
  switch (p->kind) {
  case KIND_SPARSE: return read_sparse(p, first, count, out, msg, msg_len);
  case KIND_HDF5: return read_hdf5(p, first, count, out, msg, msg_len);
  default: return read_dense(p, first, count, out, msg, msg_len);
  }
}

/* ------------------------------------------------------------------ detector files */

void spf_photons_detector_free(spf_photons_detector *d)
{
  if (!d) return;
  free(d->s);
  free(d->corr);
  free(d->mask);
  free(d->emc_mask);
  free(d);
}

static spf_photons_detector *alloc_detector(int64_t n)
{
  spf_photons_detector *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->n_pixels = n;
  d->nx = n;
  d->ny = 1;
  d->pixel_size_m = NAN;
  d->s = malloc(sizeof(double) * 3 * (size_t)n);
  d->corr = malloc(sizeof(double) * (size_t)n);
  d->mask = malloc((size_t)n);
  d->emc_mask = malloc((size_t)n);
  if (!d->s || !d->corr || !d->mask || !d->emc_mask) {
    spf_photons_detector_free(d);
    return NULL;
  }
  return d;
}

static int ends_with(const char *s, const char *tail)
{
  const size_t a = strlen(s), b = strlen(tail);
  return a >= b && !strcmp(s + a - b, tail);
}

/* Voxels per unit of s: q = s * scale (photons.h: scale = lambda * ewald_rad). */
static double q_scale(double wavelength_m, double ewald_rad) { return wavelength_m * ewald_rad; }

static int put_h5_double(hid_t loc, const char *name, int n, const double *v, int attribute)
{
  hsize_t dim = (hsize_t)n;
  hid_t sp = n > 0 ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_SCALAR);
  hid_t o = attribute ? H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT)
                      : H5Dcreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = o < 0 ? -1
                   : attribute ? H5Awrite(o, H5T_NATIVE_DOUBLE, v)
                               : H5Dwrite(o, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
  if (o >= 0 && attribute) H5Aclose(o);
  else if (o >= 0) H5Dclose(o);
  H5Sclose(sp);
  return e < 0 ? SPF_ERR_IO : SPF_OK;
}

static int write_detector_hdf5(const char *tmp, const spf_detector *det, double scale, double detd)
{
  const int64_t n = det->n_pixels;
  double *v = malloc(sizeof(double) * (size_t)n);
  uint8_t *m = malloc((size_t)n);
  hid_t f = v && m ? H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT) : -1;
  int rc = f < 0 ? SPF_ERR_IO : SPF_OK;
  const char *names[4] = {"qx", "qy", "qz", "corr"};
  for (int k = 0; !rc && k < 4; k++) {
    for (int64_t p = 0; p < n; p++)
      v[p] = k < 3 ? det->s[3 * p + k] * scale : det->solid_angle[p] * det->polarization[p];
    rc = put_h5_double(f, names[k], (int)n, v, 0);
  }
  if (!rc) {
    hsize_t dim = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t ds = H5Dcreate2(f, "mask", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    for (int64_t p = 0; p < n; p++) m[p] = det->mask[p] ? 0 : 2;
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, m) < 0) rc = SPF_ERR_IO;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
  }
  if (!rc) rc = put_h5_double(f, "detd", 0, &detd, 0);
  if (!rc) rc = put_h5_double(f, "ewald_rad", 0, &detd, 0);
  hid_t root = f >= 0 ? H5Gopen2(f, "/", H5P_DEFAULT) : -1;
  const double extra[4] = {det->wavelength_m, det->g.pixel_size_m, (double)det->g.nx, (double)det->g.ny};
  const char *extra_names[4] = {"wavelength_m", "pixel_size_m", "nx", "ny"};
  for (int k = 0; !rc && k < 4; k++) rc = put_h5_double(root, extra_names[k], 0, &extra[k], 1);
  if (root >= 0) H5Gclose(root);
  if (f >= 0 && H5Fclose(f) < 0) rc = SPF_ERR_IO;
  free(v);
  free(m);
  return rc;
}

static int write_detector_text(const char *tmp, const spf_detector *det, double scale, double detd)
{
  FILE *f = fopen(tmp, "w");
  if (!f) return SPF_ERR_IO;
  /* EMC reads the first three numbers; the rest is spinifel's (photons.h). */
  int ok = fprintf(f, "%lld %.17g %.17g wavelength_m=%.17g pixel_size_m=%.17g nx=%lld ny=%lld\n",
                   (long long)det->n_pixels, detd, detd, det->wavelength_m, det->g.pixel_size_m,
                   (long long)det->g.nx, (long long)det->g.ny) > 0;
  for (int64_t p = 0; ok && p < det->n_pixels; p++) {
    const double *s = det->s + 3 * p;
    ok = fprintf(f, "%.16e %.16e %.16e %.16e %d\n", s[0] * scale, s[1] * scale, s[2] * scale,
                 det->solid_angle[p] * det->polarization[p], det->mask[p] ? 0 : 2) > 0;
  }
  ok = (fclose(f) == 0) && ok;
  return ok ? SPF_OK : SPF_ERR_IO;
}

int spf_photons_detector_write(const char *path, const spf_detector *det, char *msg, size_t msg_len)
{
  if (!path || !det) return SPF_ERR_NULL;
  if (strlen(path) >= 1000) return SPF_ERR_ARG;
  if (det->n_pixels < 1 || det->n_pixels > MAX_INT32) return SPF_ERR_SIZE;
  const double detd = det->g.distance_m / det->g.pixel_size_m;
  if (!(detd > 0 && isfinite(detd)) || !(det->wavelength_m > 0 && isfinite(det->wavelength_m))) return SPF_ERR_ARG;
  quiet_hdf5();
  const double scale = q_scale(det->wavelength_m, detd);
  char tmp[1100];
  if (spf_temp_name(path, tmp, sizeof tmp)) return SPF_ERR_ARG;
  int rc = ends_with(path, ".h5") ? write_detector_hdf5(tmp, det, scale, detd)
                                  : write_detector_text(tmp, det, scale, detd);
  if (!rc && rename(tmp, path) != 0) rc = SPF_ERR_IO;
  if (rc) {
    unlink(tmp);
    say(msg, msg_len, "%s: cannot write the detector file", path);
  }
  return rc;
}

/* The spinifel values after the three header numbers: key=value tokens (others ignored). */
static void header_extras(const char *rest, double *wavelength, double *pixel, int64_t *nx, int64_t *ny)
{
  char buf[1100], *save = NULL;
  snprintf(buf, sizeof buf, "%s", rest);
  for (char *tok = strtok_r(buf, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq) continue;
    *eq = 0;
    char *end;
    const double v = strtod(eq + 1, &end);
    if (*end || end == eq + 1) continue;
    if (!strcmp(tok, "wavelength_m")) *wavelength = v;
    else if (!strcmp(tok, "pixel_size_m")) *pixel = v;
    else if (!strcmp(tok, "nx") && v >= 1 && v <= MAX_INT32) *nx = (int64_t)v;
    else if (!strcmp(tok, "ny") && v >= 1 && v <= MAX_INT32) *ny = (int64_t)v;
  }
}

/* Fill d->mask from d->emc_mask and s from q; checks the file's numbers. */
static int finish_detector(spf_photons_detector *d, const char *path, double wavelength_m, char *msg, size_t msg_len)
{
  if (!(d->detd_pixels > 0 && isfinite(d->detd_pixels)) || !(d->ewald_rad_voxels > 0 && isfinite(d->ewald_rad_voxels))) {
    say(msg, msg_len, "%s: detd and ewald_rad must be positive (have %g and %g)", path, d->detd_pixels,
        d->ewald_rad_voxels);
    return SPF_ERR_FORMAT;
  }
  if (wavelength_m > 0) d->wavelength_m = wavelength_m;
  if (!(d->wavelength_m > 0 && isfinite(d->wavelength_m))) {
    say(msg, msg_len, "%s: no wavelength (append ' wavelength_m=VALUE' to its first line, or give one)", path);
    return SPF_ERR_FORMAT;
  }
  if (!(d->pixel_size_m > 0 && isfinite(d->pixel_size_m))) d->pixel_size_m = NAN;
  if (d->nx * d->ny != d->n_pixels) {
    d->nx = d->n_pixels;
    d->ny = 1;
  }
  const double scale = q_scale(d->wavelength_m, d->ewald_rad_voxels);
  for (int64_t p = 0; p < d->n_pixels; p++) {
    for (int k = 0; k < 3; k++) {
      const double q = d->s[3 * p + k];
      if (!isfinite(q)) {
        say(msg, msg_len, "%s: pixel %lld has a non-finite q", path, (long long)p);
        return SPF_ERR_DATA;
      }
      d->s[3 * p + k] = q / scale;
      if (!isfinite(d->s[3 * p + k])) { /* q over a tiny scale: detd, ewald_rad or wavelength absurd */
        say(msg, msg_len, "%s: pixel %lld: q %g over ewald_rad %g and wavelength %g m is not a finite position", path,
            (long long)p, q, d->ewald_rad_voxels, d->wavelength_m);
        return SPF_ERR_DATA;
      }
    }
    if (!isfinite(d->corr[p])) {
      say(msg, msg_len, "%s: pixel %lld has a non-finite corr", path, (long long)p);
      return SPF_ERR_DATA;
    }
    d->mask[p] = d->emc_mask[p] < 2;
  }
  return SPF_OK;
}

static int read_detector_text(const char *path, int64_t size, double wavelength_m, spf_photons_detector **out,
                              char *msg, size_t msg_len)
{
  FILE *f = fopen(path, "r");
  if (!f) {
    say(msg, msg_len, "%s: cannot open", path);
    return SPF_ERR_IO;
  }
  char line[1100];
  if (!fgets(line, sizeof line, f) || !strchr(line, '\n')) {
    fclose(f);
    say(msg, msg_len, "%s: not a detector file (no first line 'num_pix detd ewald_rad' under 1024 characters)", path);
    return SPF_ERR_FORMAT;
  }
  char *end, *at = line;
  const long long n = strtoll(at, &end, 10);
  int fields = end != at;
  double head[2] = {0, 0};
  for (int k = 0; fields == k + 1 && k < 2; k++) {
    at = end;
    head[k] = strtod(at, &end);
    fields += end != at;
  }
  if (fields == 1) {
    fclose(f);
    say(msg, msg_len, "%s: an old-style detector file (the first line has no detd and ewald_rad)", path);
    return SPF_ERR_FORMAT;
  }
  /* Every pixel line holds at least ten characters ("0 0 0 0 0\n"). */
  const int64_t body = size - (int64_t)strlen(line);
  if (fields != 3 || n < 1 || n > MAX_INT32 || n > (body + 1) / 10) {
    fclose(f);
    say(msg, msg_len, "%s: not a detector file (first line: num_pix detd ewald_rad; %lld pixels in %lld bytes?)",
        path, n, (long long)size);
    return SPF_ERR_FORMAT;
  }
  spf_photons_detector *d = alloc_detector(n);
  if (!d) {
    fclose(f);
    return SPF_ERR_ALLOC;
  }
  d->detd_pixels = head[0];
  d->ewald_rad_voxels = head[1];
  d->wavelength_m = NAN;
  header_extras(end, &d->wavelength_m, &d->pixel_size_m, &d->nx, &d->ny);
  int rc = SPF_OK;
  for (int64_t p = 0; !rc && p < n; p++) {
    double v[5];
    if (fscanf(f, "%lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4]) != 5) {
      say(msg, msg_len, "%s: pixel %lld: expected 'qx qy qz corr mask' (truncated?)", path, (long long)p);
      rc = SPF_ERR_FORMAT;
    } else if (!(v[4] >= 0 && v[4] <= 255) || v[4] != floor(v[4])) {
      say(msg, msg_len, "%s: pixel %lld: mask %g is not an integer 0 .. 255", path, (long long)p, v[4]);
      rc = SPF_ERR_FORMAT;
    } else {
      for (int k = 0; k < 3; k++) d->s[3 * p + k] = v[k];
      d->corr[p] = v[3];
      d->emc_mask[p] = (uint8_t)v[4];
    }
  }
  char extra;
  if (!rc && fscanf(f, " %c", &extra) == 1) {
    say(msg, msg_len, "%s: more values than the %lld pixels of its first line", path, n);
    rc = SPF_ERR_FORMAT;
  }
  fclose(f);
  if (!rc) rc = finish_detector(d, path, wavelength_m, msg, msg_len);
  if (rc) {
    spf_photons_detector_free(d);
    return rc;
  }
  *out = d;
  return SPF_OK;
}

/* Number of elements of a dataset of rank 1..4 (its dims in dims), or -1. */
static int64_t h5_elements(hid_t f, const char *name, int *rank, hsize_t *dims)
{
  if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return -1;
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = ds >= 0 ? H5Dget_space(ds) : -1;
  int64_t n = -1;
  *rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  if (*rank >= 0 && *rank <= 4) {
    H5Sget_simple_extent_dims(sp, dims, NULL);
    n = (int64_t)H5Sget_simple_extent_npoints(sp);
  }
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  return n;
}

static int h5_read(hid_t f, const char *name, hid_t mem_type, void *buf)
{
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  herr_t e = ds >= 0 ? h5_dread(ds, mem_type, H5S_ALL, H5S_ALL, buf) : -1;
  if (ds >= 0) H5Dclose(ds);
  return e < 0 ? SPF_ERR_IO : SPF_OK;
}

static double h5_attr(hid_t f, const char *name)
{
  double v = NAN;
  if (H5Aexists(f, name) <= 0) return v;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT), sp = a >= 0 ? H5Aget_space(a) : -1;
  if (sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 && H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) v = NAN;
  if (sp >= 0) H5Sclose(sp);
  if (a >= 0) H5Aclose(a);
  return v;
}

static int read_detector_hdf5(const char *path, int64_t size, double wavelength_m, spf_photons_detector **out,
                              char *msg, size_t msg_len)
{
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    say(msg, msg_len, "%s: HDF5 cannot open it (truncated?)", path);
    return SPF_ERR_FORMAT;
  }
  const char *names[7] = {"qx", "qy", "qz", "corr", "mask", "detd", "ewald_rad"};
  int rank = 0, r;
  hsize_t dims[4] = {0, 0, 0, 0}, other[4];
  const int64_t n = h5_elements(f, "qx", &rank, dims);
  int rc = SPF_OK;
  /* A pixel's five values cannot take less than a byte of the file. */
  if (n < 1 || n > MAX_INT32 || n > size) rc = SPF_ERR_FORMAT;
  for (int k = 1; !rc && k < 7; k++)
    if (h5_elements(f, names[k], &r, other) != (k < 5 ? n : 1)) rc = SPF_ERR_FORMAT;
  if (rc) {
    H5Fclose(f);
    say(msg, msg_len, "%s: not an EMC detector (qx, qy, qz, corr, mask of one size; detd, ewald_rad numbers)", path);
    return rc;
  }
  spf_photons_detector *d = alloc_detector(n);
  double *v = malloc(sizeof(double) * (size_t)n);
  rc = d && v ? SPF_OK : SPF_ERR_ALLOC;
  for (int k = 0; !rc && k < 4; k++) {
    rc = h5_read(f, names[k], H5T_NATIVE_DOUBLE, v);
    for (int64_t p = 0; !rc && p < n; p++) {
      if (k < 3) d->s[3 * p + k] = v[p];
      else d->corr[p] = v[p];
    }
  }
  if (!rc) rc = h5_read(f, "mask", H5T_NATIVE_UINT8, d->emc_mask);
  if (!rc) rc = h5_read(f, "detd", H5T_NATIVE_DOUBLE, &d->detd_pixels);
  if (!rc) rc = h5_read(f, "ewald_rad", H5T_NATIVE_DOUBLE, &d->ewald_rad_voxels);
  if (rc == SPF_ERR_IO) say(msg, msg_len, "%s: cannot read the detector's datasets", path);
  free(v);
  if (!rc) {
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    d->wavelength_m = h5_attr(root, "wavelength_m");
    d->pixel_size_m = h5_attr(root, "pixel_size_m");
    const double nx = h5_attr(root, "nx"), ny = h5_attr(root, "ny");
    H5Gclose(root);
    if (nx >= 1 && ny >= 1 && nx <= MAX_INT32 && ny <= MAX_INT32) {
      d->nx = (int64_t)nx;
      d->ny = (int64_t)ny;
    } else if (rank == 2) { /* (ny, nx), x fastest */
      d->nx = (int64_t)dims[1];
      d->ny = (int64_t)dims[0];
    }
    rc = finish_detector(d, path, wavelength_m, msg, msg_len);
  }
  H5Fclose(f);
  if (rc) {
    spf_photons_detector_free(d);
    return rc;
  }
  *out = d;
  return SPF_OK;
}

int spf_photons_detector_read(const char *path, double wavelength_m, spf_photons_detector **out, char *msg,
                              size_t msg_len)
{
  if (!path || !out) return SPF_ERR_NULL;
  *out = NULL;
  if (!(wavelength_m >= 0) || !isfinite(wavelength_m)) return SPF_ERR_ARG;
  quiet_hdf5();
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || access(path, R_OK) != 0) {
    say(msg, msg_len, "%s: cannot open", path);
    return SPF_ERR_IO;
  }
  if (H5Fis_hdf5(path) > 0) return read_detector_hdf5(path, (int64_t)st.st_size, wavelength_m, out, msg, msg_len);
  return read_detector_text(path, (int64_t)st.st_size, wavelength_m, out, msg, msg_len);
}
