/* What the plain-C driver of the kernels works on: a case (a layer and its
 * options), a problem (that case's inputs, in double) and the outputs of one
 * run of the kernels.  Shared by driver.c, reference.h and run.h. */
#ifndef FR_DRIVER_H
#define FR_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "fastrnn.h"

/* One layer to run: a cell, its sizes and its options. */
typedef struct {
    const char *name;
    int mode;                      /* FR_RNN, FR_LSTM, FR_GRU */
    int act[3];                    /* activation codes, as fr_cell.act */
    double alpha[3], beta[3];
    int64_t T, N, I, H, P;
    int n_dirs;
    int bias, peephole, input_forget, linear_before_reset;
    double clip;
    int lengths;                   /* 0: none; 1: lengths 0, T and between */
    int nulls;                     /* backward with dy, dh_n and dc_n NULL (zeros) */
} spec;

/* The arrays of one direction, inputs and (as outputs) their gradients. */
enum { F_WIH, F_WHH, F_BIH, F_BHH, F_WHR, F_WP, F_H0, F_C0, F_DHN, F_DCN, N_FIELDS };
/* The fields that backward returns a gradient for (F_WIH .. F_C0). */
#define N_GRAD_FIELDS (F_C0 + 1)

/* Inputs of one case, in double (each value exactly a float, so that the
 * float32 and float64 kernels read the same numbers).  An array of size 0
 * is NULL: no bias, no projection, no peepholes, no cell state. */
typedef struct {
    double *x, *dy;                /* (T*N, I), (T*N, D*Hout) */
    double *f[2][N_FIELDS];        /* per direction */
    size_t n_x, n_dy, n[N_FIELDS];
    int64_t *lengths;              /* N values, or NULL */
} problem;

/* What one run of the kernels computed, converted to double. */
typedef struct {
    double *y, *h_n, *c_n;         /* inference: (T*N, D*Hout), D*(N, Hout), D*(N, H) */
    double *y_train, *h_n_train, *c_n_train;
    double *dx;                    /* backward: (T*N, I) */
    double *g[2][N_GRAD_FIELDS];   /* backward: the gradient of each input field */
} outputs;

static inline int64_t spec_gates(const spec *s) { return s->mode == FR_LSTM ? 4 : s->mode == FR_GRU ? 3 : 1; }
static inline int64_t spec_hout(const spec *s) { return s->P ? s->P : s->H; }

#endif
