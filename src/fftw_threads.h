/* Internal: FFTW's thread support is process-wide; initialise it once, for both precisions. */
#ifndef SPINIFEL_FFTW_THREADS_H
#define SPINIFEL_FFTW_THREADS_H

void spf_fftw_threads_init(void);

#endif
