/* Error codes shared by every module of libspinifel.
 * Every function that can fail returns one of these; 0 means success.
 * spf_strerror() turns a code into a one-line message; the caller decides
 * whether and where to print it. */
#ifndef SPINIFEL_ERROR_H
#define SPINIFEL_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum spf_error {
  SPF_OK = 0,
  SPF_ERR_NULL = 1,          /* a required pointer argument was NULL */
  SPF_ERR_SIZE = 2,          /* a size (modes, points, dimension) is zero, negative or inconsistent */
  SPF_ERR_TOLERANCE = 3,     /* tolerance outside the range this precision can reach */
  SPF_ERR_POINT = 4,         /* a non-uniform point is NaN, infinite or outside [-3pi, 3pi) */
  SPF_ERR_ALLOC = 5,         /* memory allocation failed */
  SPF_ERR_TOO_BIG = 6,       /* the request needs more memory than this machine has */
  SPF_ERR_TYPE = 7,          /* transform type is not 1 or 2 */
  SPF_ERR_OPTION = 8,        /* an option field has a value outside its documented range */
  SPF_ERR_FFTW = 9,          /* FFTW could not make a plan */
  SPF_ERR_NO_POINTS = 10,    /* execute called before set_points */
  SPF_ERR_ARG = 11,          /* an argument is outside its documented range */
  SPF_ERR_IO = 12,           /* a file could not be opened, read or written */
  SPF_ERR_FORMAT = 13,       /* a file does not have the expected content or layout */
  SPF_ERR_DATA = 14,         /* data values are invalid (NaN, infinite, negative where not allowed) */
  SPF_ERR_MPI = 15,          /* an MPI call failed or another rank reported an error */
  SPF_ERR_UNSUPPORTED = 16,  /* the feature was not built into this library */
  SPF_ERR_NO_MODES = 17,     /* interpolate called before load_modes */
  SPF_ERR_NO_SPACE = 18,     /* the output's file system has not enough free space */
  SPF_ERR_COUNT_
};

/* A static one-line description of an error code (never NULL). */
const char *spf_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
