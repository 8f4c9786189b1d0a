/* The BLAS routines fastrnn calls, as function pointers with the Fortran
 * calling convention of scipy.linalg.cython_blas.  The table is filled once,
 * at import, by fastrnn/_core.pyx, so the C code links no BLAS of its own and
 * uses the very library the user's SciPy uses. */
#ifndef FASTRNN_BLAS_H
#define FASTRNN_BLAS_H

/* cython_blas declares its integers as C int (LP64). */
typedef int fr_blas_int;

typedef void (*fr_sgemm_t)(char *transa, char *transb, fr_blas_int *m, fr_blas_int *n,
                           fr_blas_int *k, float *alpha, float *a, fr_blas_int *lda,
                           float *b, fr_blas_int *ldb, float *beta, float *c,
                           fr_blas_int *ldc);
typedef void (*fr_dgemm_t)(char *transa, char *transb, fr_blas_int *m, fr_blas_int *n,
                           fr_blas_int *k, double *alpha, double *a, fr_blas_int *lda,
                           double *b, fr_blas_int *ldb, double *beta, double *c,
                           fr_blas_int *ldc);

typedef struct {
    fr_sgemm_t sgemm;
    fr_dgemm_t dgemm;
} fr_blas;

#endif
