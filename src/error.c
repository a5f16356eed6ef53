#include "spinifel/error.h"

const char *spf_strerror(int code)
{
  switch (code) {
  case SPF_OK: return "success";
  case SPF_ERR_NULL: return "a required pointer argument is NULL";
  case SPF_ERR_SIZE: return "a size is zero, negative or inconsistent";
  case SPF_ERR_TOLERANCE: return "tolerance outside the range this precision can reach";
  case SPF_ERR_POINT: return "a non-uniform point is NaN, infinite or outside [-3pi, 3pi)";
  case SPF_ERR_ALLOC: return "memory allocation failed";
  case SPF_ERR_TOO_BIG: return "the request needs more memory than this machine has";
  case SPF_ERR_TYPE: return "transform type must be 1 or 2";
  case SPF_ERR_OPTION: return "an option has a value outside its documented range";
  case SPF_ERR_FFTW: return "FFTW could not make a plan";
  case SPF_ERR_NO_POINTS: return "execute called before set_points";
  case SPF_ERR_ARG: return "an argument is outside its documented range";
  case SPF_ERR_IO: return "a file could not be opened, read or written";
  case SPF_ERR_FORMAT: return "a file does not have the expected content or layout";
  case SPF_ERR_DATA: return "invalid data values (NaN, infinite or negative)";
  case SPF_ERR_MPI: return "an MPI call failed";
  case SPF_ERR_UNSUPPORTED: return "feature not built into this library";
  case SPF_ERR_NO_MODES: return "interpolate called before load_modes";
  case SPF_ERR_NO_SPACE: return "not enough free space on the output's file system";
  default: return "unknown error code";
  }
}
