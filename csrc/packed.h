/* The packed kernels (float32): panel packing, the product over packed
 * weights, the few-row dot products and backward's blocked products, each
 * written twice, for AVX-512 (avx512.c) and for AVX2 with FMA (avx2.c), and
 * compiled once with target attributes, so that the rest of the build needs
 * no -march flag; likewise the vector sigmoid, tanh and LSTM gate pass.  The
 * entry points below (packed.c) run the set that fr_packed_isa() names
 * (fastrnn.h).
 *
 * "Packed" means one thing in fastrnn: a matrix laid out in panels of
 * FR_PANEL columns, panel p holding columns 16p .. 16p + 15 of every row k
 * contiguous (zero-padded past the last column), the layout the register-
 * blocked product reads.  The per-call weights, frozen ones, and the blocks of
 * backward's products over all steps are packed that way, the same for both
 * instruction sets. */
#ifndef FASTRNN_PACKED_H
#define FASTRNN_PACKED_H

#include <stdint.h>

/* -DFR_NO_PACKED builds without them (the BLAS path everywhere). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(FR_NO_PACKED)
#define FR_HAVE_PACKED 1
#else
#define FR_HAVE_PACKED 0
#endif

#define FR_PANEL 16
/* fr_gemm_blocked packs FR_KC rows of B at a time (the block stays in L2) and
 * of a transposed A FR_MC columns at a time. */
#define FR_KC 256
#define FR_MC 128

/* The product over packed weights (fr_packed_gemm), both instruction sets:
 * rows of A read against one panel pair before the next pair, a block of
 * FR_A_BLOCK_FLOATS that stays in L2 while the pairs stream past (many rows:
 * the input product); products deeper than FR_K_DEEP in blocks of FR_K_BLOCK
 * rows of B (a pair of panels, and the rows of A against it, stay in L2),
 * each adding onto C, but for up to FR_FEW_ROWS rows (one step of a small
 * batch), which run in one block, fetched ahead, so that the weight streams
 * from memory in one pass; a B of FR_FETCH_AHEAD_FLOATS or more (1 MB: a
 * core's L2, more than it keeps of B beside the rows of A) has its next pair
 * of panels fetched ahead. */
#define FR_A_BLOCK_FLOATS 32768
#define FR_K_DEEP 1024
#define FR_K_BLOCK 512
#define FR_FEW_ROWS 8
#define FR_FETCH_AHEAD_FLOATS (1 << 18)

static inline int64_t fr_panels(int64_t n) { return (n + FR_PANEL - 1) / FR_PANEL; }

/* Floats of a packed K x n matrix. */
static inline int64_t fr_packed_size(int64_t K, int64_t n) { return fr_panels(n) * FR_PANEL * K; }

/* Floats of fr_gemm_blocked's scratch for products with n columns. */
static inline int64_t fr_blocked_scratch(int64_t n) { return fr_packed_size(FR_KC, n) + FR_MC * FR_KC; }

#if FR_HAVE_PACKED
/* Pack B (K x n) with B[k][c] = M[k][col0 + c]: n columns of M (row stride ldm). */
void fr_pack_cols(float *dst, const float *M, int64_t ldm, int64_t col0, int64_t n, int64_t K);

/* Pack B (K x n) with B[k][c] = M[row0 + c][k]: the transpose of n rows of M
 * (row stride ldm), as torch lays out a weight (out_features x in_features). */
void fr_pack_rows(float *dst, const float *M, int64_t ldm, int64_t row0, int64_t n, int64_t K);

/* C (m x n, ldc) = A (m x K, lda) B, or += with accumulate; B packed (fr_pack_*). */
void fr_packed_gemm(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
                    const float *Bp, float *C, int64_t ldc, int accumulate);

/* C (m x n, ldc) = bias + A (m x K, lda) B, the bias row (n floats) under every row. */
void fr_packed_gemm_bias(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
                         const float *Bp, const float *bias, float *C, int64_t ldc);

/* C (m x n, ldc) = A (m x K, lda) B^T, or += with accumulate, for a few rows of A
 * and B (n x K, ldb) as it lies: one dot product per row of A and of B. */
void fr_dot_rows(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float *C, int64_t ldc, int accumulate);

/* C (m x n, ldc) = op(A) B, or += with accumulate, for many rows and a long
 * shared dimension: op(A) is A (m x K, lda), or with a_trans the transpose of
 * A (K x m); B (K x n, ldb) as it lies.  Both are packed a block at a time
 * into `scratch` (fr_blocked_scratch(n) floats). */
void fr_gemm_blocked(int a_trans, int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate,
                     float *scratch);

/* The same products for one instruction set (avx512.c, avx2.c), which the
 * entry points above choose between. */
#define FR_PACKED_KERNELS(isa)                                                                   \
    void fr_pack_rows_##isa(float *dst, const float *M, int64_t ldm, int64_t row0, int64_t n,    \
                            int64_t K);                                                          \
    void fr_packed_gemm_##isa(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,      \
                              const float *Bp, float *C, int64_t ldc, const float *add,          \
                              int64_t ld_add);                                                   \
    void fr_dot_rows_##isa(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,         \
                           const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate);  \
    void fr_gemm_blocked_##isa(int a_trans, int64_t m, int64_t n, int64_t K, const float *A,     \
                               int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,  \
                               int accumulate, float *scratch);
FR_PACKED_KERNELS(avx512)
FR_PACKED_KERNELS(avx2)
#undef FR_PACKED_KERNELS

/* out[j] = sigmoid(pre[j]) (or tanh(pre[j]) with tanh_) for j < n, a vector at
 * a time. */
void fr_act_vector(int tanh_, const float *pre, float *out, int64_t n);

/* One row of the default LSTM's step (sigmoid, tanh, tanh; no clip, peepholes
 * or coupled gates) for n units: the gates i, f, g, o `stride` apart from pre,
 * c' = f c + i g in place, h = o tanh(c'); fr_act_vector's values, so its bits. */
void fr_lstm_gates_vector(int64_t n, const float *pre, int64_t stride, float *c, float *h);

void fr_act_avx512(int tanh_, const float *pre, float *out, int64_t n);
void fr_act_avx2(int tanh_, const float *pre, float *out, int64_t n);
void fr_lstm_gates_avx512(int64_t n, const float *pre, int64_t stride, float *c, float *h);
void fr_lstm_gates_avx2(int64_t n, const float *pre, int64_t stride, float *c, float *h);
#endif

#endif
