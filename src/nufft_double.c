/* The double-precision NUFFT: instantiates nufft_template.h. */
#define FLT double
#define CPX double complex
#define CREAL creal
#define CIMAG cimag
#define PUB(name) spf_nufft_##name
#define FFTW(name) fftw_##name
#define PLAN_S spf_nufft_plan_s
#define FLT_MIN_TOL 1e-14
#include "nufft_template.h"
