/* MRC maps: round trip, header layout, bad files. */
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spinifel/spinifel.h"
#include "spinifel/mrc.h"
#include "testing.h"

static char dir[64];

static void round_trip_and_header_layout(void)
{
  char path[128];
  snprintf(path, sizeof path, "%s/map.mrc", dir);
  float data[4 * 3 * 2];
  for (int i = 0; i < 24; i++) data[i] = (float)(i * 0.5 - 3);
  double origin[3] = {-10, 2.5, 7}, voxel = 1.75;
  char msg[256];
  CHECK(spf_mrc_write(path, data, 4, 3, 2, voxel, origin, msg, sizeof msg) == SPF_OK, "write: %s", msg);
  FILE *f = fopen(path, "rb");
  unsigned char h[1024];
  CHECK(fread(h, 1, 1024, f) == 1024, "header");
  fclose(f);
  int32_t w[4];
  float cell;
  memcpy(w, h, 16);
  memcpy(&cell, h + 40, 4);
  CHECK(w[0] == 4 && w[1] == 3 && w[2] == 2 && w[3] == 2, "nx ny nz mode at words 1-4");
  CHECK(fabsf(cell - 7.0f) < 1e-6, "cell a = nx * voxel = %g", cell);
  CHECK(!memcmp(h + 208, "MAP ", 4) && h[212] == 0x44, "MAP label and machine stamp");
  struct stat st;
  stat(path, &st);
  CHECK(st.st_size == 1024 + 24 * 4, "file size");
  float *back;
  int64_t dims[3];
  double v, o[3];
  CHECK(spf_mrc_read(path, &back, dims, &v, o, msg, sizeof msg) == SPF_OK, "read: %s", msg);
  CHECK(dims[0] == 4 && dims[1] == 3 && dims[2] == 2 && !memcmp(back, data, sizeof data), "data round trip");
  CHECK(fabs(v - voxel) < 1e-6 && fabs(o[0] + 10) < 1e-6 && fabs(o[1] - 2.5) < 1e-6, "voxel and origin");
  free(back);
  /* Truncated and foreign files. */
  char trunc[128];
  snprintf(trunc, sizeof trunc, "%s/trunc.mrc", dir);
  f = fopen(trunc, "wb");
  fwrite(h, 1, 1024, f);
  fwrite(data, 4, 10, f);
  fclose(f);
  CHECK(spf_mrc_read(trunc, &back, dims, &v, o, msg, sizeof msg) == SPF_ERR_FORMAT, "truncated: %s", msg);
  f = fopen(trunc, "w");
  fputs("not a map at all\n", f);
  fclose(f);
  CHECK(spf_mrc_read(trunc, &back, dims, &v, o, msg, sizeof msg) == SPF_ERR_FORMAT, "text file: %s", msg);
  CHECK(spf_mrc_read("/nonexistent.mrc", &back, dims, &v, o, msg, sizeof msg) == SPF_ERR_IO, "missing file");
  CHECK(spf_mrc_write("/nonexistent/dir/x.mrc", data, 4, 3, 2, 1, NULL, msg, sizeof msg) == SPF_ERR_IO &&
            access("/nonexistent/dir/x.mrc", F_OK) != 0,
        "unwritable directory: error, no file");
  /* A cell of zero, negative or NaN length has no voxel size: refused, not 1 A. */
  const float bad_cells[] = {0.0f, -8.0f, NAN, INFINITY};
  for (int k = 0; k < 4; k++) {
    unsigned char hb[1024];
    memcpy(hb, h, sizeof hb);
    memcpy(hb + 40, &bad_cells[k], 4);
    f = fopen(trunc, "wb");
    fwrite(hb, 1, 1024, f);
    fwrite(data, 4, 24, f);
    fclose(f);
    msg[0] = 0;
    back = (float *)1;
    CHECK(spf_mrc_read(trunc, &back, dims, &v, o, msg, sizeof msg) == SPF_ERR_FORMAT && !back &&
              strstr(msg, "voxel size"),
          "cell %g refused: %s", bad_cells[k], msg);
  }
  unlink(trunc);
  unlink(path);
}

/* A killed writer's "<path>.tmp.<pid>" is removed by the next write of path; a live
 * process's is not; nor are other files. */
static void stale_temporaries_are_removed(void)
{
  char path[128], dead[160], live[160], other[160];
  snprintf(path, sizeof path, "%s/d.mrc", dir);
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, NULL, 0); /* its pid now names no process */
  snprintf(dead, sizeof dead, "%s.tmp.%ld", path, (long)child);
  snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getppid());
  snprintf(other, sizeof other, "%s.tmp.x%ld", path, (long)child);
  const char *names[3] = {dead, live, other};
  for (int k = 0; k < 3; k++) {
    FILE *f = fopen(names[k], "w");
    fputs("half", f);
    fclose(f);
  }
  float data[8] = {0};
  char msg[256];
  CHECK(spf_mrc_write(path, data, 2, 2, 2, 1.0, NULL, msg, sizeof msg) == SPF_OK, "write: %s", msg);
  CHECK(access(dead, F_OK) != 0, "the dead writer's temporary is removed");
  CHECK(access(live, F_OK) == 0 && access(other, F_OK) == 0, "a live process's and other files are kept");
  unlink(live), unlink(other), unlink(path);
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/spf_test_mrcXXXXXX");
  if (!mkdtemp(dir)) return 1;
  RUN_TEST(round_trip_and_header_layout);
  RUN_TEST(stale_temporaries_are_removed);
  rmdir(dir);
  return test_summary();
}
