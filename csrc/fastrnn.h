/* fastrnn's one public C header: the cells, the dimensions, the per-direction
 * arrays and the kernels.  Plain C11; no Python anywhere below csrc/.
 *
 * Layout conventions (all arrays row-major, PyTorch's gate order):
 *   T = seq_len, N = batch, I = input_size, H = hidden_size,
 *   P = proj_size (0: none), H_out = P ? P : H, G = gates (RNN 1, LSTM 4, GRU 3).
 *   x, dx    (T*N, I), row (t, n) at x + (t*N + n)*I                        time-major
 *   y, dy    (T*N, ldy): row (t, n) at y + (t*N + n)*ldy, H_out columns; a
 *            bidirectional layer passes y + d*H_out for direction d, ldy = 2*H_out.
 *   weights  as torch.nn: weight_ih (G*H, I), weight_hh (G*H, H_out),
 *            bias_ih / bias_hh (G*H), weight_hr (P, H), weight_peephole (3*H: i, f, o).
 *   states   h (N, H_out), c (N, H).
 *   lengths  NULL, or N values in [0, T]: steps past a sequence's length keep its
 *            state and write zeros; the reverse direction starts at its own last step.
 */
#ifndef FASTRNN_H
#define FASTRNN_H

#include <stddef.h>
#include <stdint.h>

#include "blas.h"

typedef enum {
    FR_OK = 0,
    FR_ERR_ARGUMENT = 1, /* dimensions or options the kernels cannot take */
} fr_status;

enum { FR_RNN = 0, FR_LSTM = 1, FR_GRU = 2 };

/* ONNX's activations, in the order of fastrnn._cell.ACTIVATIONS. */
enum {
    FR_SIGMOID, FR_TANH, FR_RELU, FR_HARDSIGMOID, FR_LEAKYRELU, FR_THRESHOLDEDRELU,
    FR_SCALEDTANH, FR_AFFINE, FR_ELU, FR_SOFTSIGN, FR_SOFTPLUS, FR_N_ACTIVATIONS
};

typedef struct {
    int code;             /* FR_SIGMOID ... */
    double alpha, beta;
} fr_act;

/* What one cell computes (fastrnn._cell.Cell).  act: RNN (f), LSTM (f, g, h), GRU (f, g). */
typedef struct {
    int mode;                /* FR_RNN, FR_LSTM, FR_GRU */
    fr_act act[3];
    double clip;             /* clip gate pre-activations to [-clip, clip]; 0: no clip */
    int input_forget;        /* LSTM: f = 1 - i */
    int linear_before_reset; /* GRU: 1 as PyTorch, 0 as the original GRU */
} fr_cell;

typedef struct {
    int64_t seq_len, batch, input_size, hidden_size, proj_size;
    int64_t ldy;             /* row stride of y and dy */
    int n_dirs;              /* 1, or 2 for a bidirectional layer (both run at once) */
} fr_dims;

/* The arrays of one direction.  IN: read; OUT: written; NULL where unused.
 * saved: forward for training writes it, backward reads it; its size in
 * elements is fr_saved_size().  Inference passes saved = NULL. */
#define FR_DECLARE_LAYER(REAL, SUFFIX)                                            \
    typedef struct {                                                              \
        int reverse;                                                              \
        const REAL *weight_ih, *weight_hh;      /* IN */                          \
        const REAL *bias_ih, *bias_hh;          /* IN, or NULL: no bias */        \
        const REAL *weight_hr;                  /* IN (P, H), or NULL */          \
        const REAL *weight_peephole;            /* IN (3H), or NULL */            \
        const REAL *h0, *c0;                    /* IN initial state */            \
        REAL *y;                                /* forward OUT */                 \
        REAL *h_n, *c_n;                        /* forward OUT final state */     \
        REAL *saved;                            /* forward OUT / backward IN */   \
        const REAL *dy, *dh_n, *dc_n;           /* backward IN, or NULL: zeros */ \
        REAL *dh0, *dc0;                        /* backward OUT */                \
        REAL *dweight_ih, *dweight_hh, *dbias_ih, *dbias_hh; /* backward OUT */   \
        REAL *dweight_hr, *dweight_peephole;    /* backward OUT, or NULL */       \
    } fr_layer_##SUFFIX;

FR_DECLARE_LAYER(float, f32)
FR_DECLARE_LAYER(double, f64)

enum { FR_PASS_INFERENCE = 0, FR_PASS_TRAIN = 1, FR_PASS_BACKWARD = 2 };

/* Elements of scratch (of the kernel's dtype) that a pass needs, for n_threads. */
size_t fr_workspace_size(const fr_cell *cell, const fr_dims *d, int pass, int n_threads);
/* Elements that forward-for-training saves per direction for backward. */
size_t fr_saved_size(const fr_cell *cell, const fr_dims *d);

/* One layer, all its directions, forward.  x: IN (T*N, I).  ws: fr_workspace_size
 * elements.  Training when dirs[].saved is set. */
fr_status fr_forward_f32(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                         const int64_t *lengths, const float *x, const fr_layer_f32 *dirs,
                         float *ws, int n_threads);
fr_status fr_forward_f64(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                         const int64_t *lengths, const double *x, const fr_layer_f64 *dirs,
                         double *ws, int n_threads);

/* One layer backward, from what forward saved.  dx: OUT (T*N, I), the sum over
 * directions. */
fr_status fr_backward_f32(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                          const int64_t *lengths, const float *x, float *dx,
                          const fr_layer_f32 *dirs, float *ws, int n_threads);
fr_status fr_backward_f64(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                          const int64_t *lengths, const double *x, double *dx,
                          const fr_layer_f64 *dirs, double *ws, int n_threads);

/* Gates per cell: RNN 1, LSTM 4 (i, f, g, o), GRU 3 (r, z, n). */
static inline int fr_gates(int mode) { return mode == FR_LSTM ? 4 : mode == FR_GRU ? 3 : 1; }

/* Reads the CPU's features and takes the one decision that depends on them:
 * which instruction set the float32 products of the packed path run on.  Call
 * it once, before any kernel runs (fastrnn._core calls it at import); until
 * then the kernels take the BLAS path.  Calling it again changes nothing. */
void fr_init(void);

/* The CPU's features as fr_init read them (0 before fr_init), under the names
 * of /proc/cpuinfo; 0 where the compiler cannot ask for one. */
typedef struct {
    int avx2, fma, avx512f, avx512_bf16, avx512_vnni, avx_vnni;
} fr_cpu_features;

fr_cpu_features fr_cpu_flags(void);

/* The instruction sets of the packed kernels (packed.h), narrowest first. */
enum { FR_ISA_NONE = 0, FR_ISA_AVX2 = 1, FR_ISA_AVX512 = 2 };

/* The widest the CPU has (AVX2 needs FMA too), after fr_init; FR_ISA_NONE on a
 * CPU with neither or a build without them. */
int fr_packed_best_isa(void);

/* The one the float32 products run on now: weights packed once per call into
 * panels and multiplied by the packed kernels, with the few-row dot products
 * (and, with AVX-512, the vector sigmoid, tanh and LSTM gate pass) that go
 * with them; FR_ISA_NONE sends the products to BLAS and the activations to the
 * generic vectorised loops.  fr_init sets the best; fr_set_packed_isa(isa)
 * takes isa, or the best below it where the CPU lacks it; fr_set_packed(1) is
 * fr_set_packed_isa(FR_ISA_AVX512), fr_set_packed(0) FR_ISA_NONE.
 * fr_packed_enabled() is 1 unless FR_ISA_NONE.  Set it between calls, never
 * while a kernel runs. */
int fr_packed_isa(void);
int fr_packed_enabled(void);
void fr_set_packed_isa(int isa);
void fr_set_packed(int enabled);

/* 1 when built with OpenMP. */
int fr_openmp_enabled(void);

#endif
