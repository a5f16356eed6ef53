#include "fftw_threads.h"

#include <fftw3.h>
#include <pthread.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
  fftw_init_threads();
  fftwf_init_threads();
}

void spf_fftw_threads_init(void) { pthread_once(&once, init); }
