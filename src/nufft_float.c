/* The single-precision NUFFT: instantiates nufft_template.h. Float rounding limits the
 * accuracy to about 1e-6 relative (more for large grids), hence the tolerance floor. */
#define FLT float
#define CPX float complex
#define CREAL crealf
#define CIMAG cimagf
#define PUB(name) spf_nufftf_##name
#define FFTW(name) fftwf_##name
#define PLAN_S spf_nufftf_plan_s
#define FLT_MIN_TOL 1e-6
#include "nufft_template.h"
