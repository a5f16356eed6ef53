/* Internal: FFTW's thread support is process-wide; initialise it once, for both precisions. */
#ifndef SPINIFEL_FFTW_THREADS_H
#define SPINIFEL_FFTW_THREADS_H

void spf_fftw_threads_init(void);

/* Threads for an FFT of n points: one below SPF_FFT_THREADED_MIN. A 31^3 or 41^3
 * transform gains nothing (31^3) or 20% (41^3) from a second thread on a quiet machine,
 * and on a busy one each of its barriers can wait for a descheduled thread: phasing at
 * M = 31 took 16x longer on 2 threads than on 1 with another job running. */
#define SPF_FFT_THREADED_MIN (48 * 48 * 48)
static inline int spf_fft_threads(long long n, int nthreads) { return n < SPF_FFT_THREADED_MIN ? 1 : nthreads; }

#endif
