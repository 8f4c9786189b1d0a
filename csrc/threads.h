/* OpenMP, or stand-ins that make the same code run on one thread when the
 * compiler has no OpenMP.  The pragmas themselves are ignored without it. */
#ifndef FASTRNN_THREADS_H
#define FASTRNN_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

#endif
