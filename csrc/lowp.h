/* Frozen inference's products in bfloat16 and int8 (SPEC, "Frozen inference").
 *
 * A product is C (m x n, ldc) = A (m x K) W^T, or C += A W^T: A a left operand
 * (input rows for all steps, or one step's state rows), W a weight matrix as
 * torch holds it (n rows = outputs, K long: weight_ih, weight_hh, weight_hr).
 * W is prepared once (fr_bf16_prepare, fr_int8_prepare) into memory the caller
 * owns; A is converted per product (fr_bf16_rows, fr_int8_rows) into a buffer
 * the caller owns; the product (fr_bf16_gemm, fr_int8_gemm) computes the
 * columns [n0, n1) of C, so threads can split the outputs.
 *
 * The arithmetic, the same on every path:
 *   bf16(x)    float32 to bfloat16, round to nearest even; NaN stays a quiet
 *              NaN; a subnormal gives a zero of its sign (as vcvtneps2bf16).
 *   bfloat16   a = bf16(A[i][k]), w = bf16(W[j][k]) (K padded to even with
 *              zeros); per output, s = +0 and for each pair t (k = 2t, 2t + 1)
 *              s = ftz(fma(a[2t+1], w[2t+1], s)); s = ftz(fma(a[2t], w[2t], s))
 *              (fma: one rounding; ftz: a subnormal gives a zero of its sign),
 *              exactly what vdpbf16ps does; then C = s, or C = C + s.
 *   int8       per row j of W: amax = max|W[j][:]|, scale_w[j] = amax / 127
 *              (1 where that is 0), qW = clip(rint(W / scale_w), -127, 127);
 *              per row i of A: amax = max|A[i][:]|; inv = 127 / amax;
 *              scale_a[i] = amax / 127, q = clip(rint(A * inv), -127, 127);
 *              a row whose inv is not finite (amax 0, or below about 2^-121)
 *              gives scale_a = 0, q = 0; a row holding a NaN or an infinity
 *              gives scale_a = NaN, q = 0 (its outputs are NaN); all float32.
 *              dot = sum_k q[k] qW[j][k] exactly in int32 (K <= FR_INT8_MAX_K),
 *              then C = f, or C = C + f, f = float(dot) * (scale_a[i] * scale_w[j]),
 *              each operation rounded to float32 (no fused multiply-add).
 *
 * Layouts (FR_LOWP_PANEL = 16 output columns per panel, panel p holds columns
 * 16p .. 16p + 15, columns past n zero; a prepared block is 64-byte aligned
 * inside the caller's memory, each panel a whole number of cache lines):
 *   bfloat16 weights  panel p, pair t, column c, half h (k = 2t + h) at
 *                     panels[((p * K2 + t) * 16 + c) * 2 + h], K2 = (K + 1) / 2
 *                     (vdpbf16ps: lane c takes the pair of its column);
 *   int8 weights      panel p, group g, column c, byte b (k = 4g + b) at
 *                     panels[((p * K4 + g) * 16 + c) * 4 + b], K4 = (K + 3) / 4
 *                     (vpdpbusd: lane c takes the four bytes of its column);
 *                     then scale_w and colsum[j] = sum_k qW[j][k], one per
 *                     column of the whole panels;
 *   bfloat16 rows     row i at Ab + i * ldab, fr_bf16_row_elems(K) bf16 (pad 0);
 *   int8 rows         row i at Aq + i * ldaq, fr_int8_row_bytes(K) bytes, each
 *                     q + 128 (pad 128, q = 0) for vpdpbusd's unsigned operand,
 *                     and scale_a[i]; the kernel subtracts 128 * colsum[j].
 *
 * Paths: the AVX512_BF16 and AVX512_VNNI kernels (lowp_bf16.c, lowp_int8.c,
 * compiled for those targets in their own files) or a portable one in plain C
 * (lowp.c), chosen at the first call from the CPU; all give bit-identical
 * results (each file keeps a multiply and an add apart, whatever the build's
 * -ffp-contract).
 * No function allocates, prints or keeps state but the choice of path. */
#ifndef FASTRNN_LOWP_H
#define FASTRNN_LOWP_H

#include <stddef.h>
#include <stdint.h>

#include "fastrnn.h"

#define FR_LOWP_PANEL 16
/* The longest K whose int32 sums of (q + 128) * qW cannot overflow. */
#define FR_INT8_MAX_K 65536

typedef enum {
    FR_LOWP_PORTABLE = 0, /* plain C */
    FR_LOWP_AVX512 = 1,   /* AVX512_BF16 (vdpbf16ps) or AVX512_VNNI (vpdpbusd) */
} fr_lowp_path;

/* Weights prepared once by fr_bf16_prepare: pointers into the caller's block. */
typedef struct {
    int64_t n, K;            /* outputs (rows of W), length of a row */
    const uint16_t *panels;  /* fr_lowp_panels(n) panels of K2 pairs x 16 columns */
} fr_bf16_weights;

/* Weights prepared once by fr_int8_prepare: pointers into the caller's block. */
typedef struct {
    int64_t n, K;
    const int8_t *panels;    /* fr_lowp_panels(n) panels of K4 groups x 16 columns x 4 */
    const float *scale_w;    /* 16 * fr_lowp_panels(n): scale of each row of W */
    const int32_t *colsum;   /* 16 * fr_lowp_panels(n): sum of each row of qW */
} fr_int8_weights;

static inline int64_t fr_lowp_panels(int64_t n) { return (n + FR_LOWP_PANEL - 1) / FR_LOWP_PANEL; }
/* bf16 elements of a converted row, and bytes of a quantized row. */
static inline int64_t fr_bf16_row_elems(int64_t K) { return (K + 1) / 2 * 2; }
static inline int64_t fr_int8_row_bytes(int64_t K) { return (K + 3) / 4 * 4; }

/* Bytes of the caller's block for prepared weights (n x K), alignment slack
 * included: what a frozen module holds for them (nbytes). */
size_t fr_bf16_weights_bytes(int64_t n, int64_t K);
size_t fr_int8_weights_bytes(int64_t n, int64_t K);

/* Prepare W (n x K, row stride ldw; IN) into mem (`bytes` long, at least
 * fr_*_weights_bytes(n, K); OUT) and point *w into it.  FR_ERR_ARGUMENT for
 * negative sizes, a short block, ldw < K, and (int8) K > FR_INT8_MAX_K or a
 * weight that is NaN or infinite (SPEC asks for finite weights). */
fr_status fr_bf16_prepare(void *mem, size_t bytes, const float *W, int64_t ldw, int64_t n,
                          int64_t K, fr_bf16_weights *w);
fr_status fr_int8_prepare(void *mem, size_t bytes, const float *W, int64_t ldw, int64_t n,
                          int64_t K, fr_int8_weights *w);

/* Point *w into a block prepared before by fr_*_prepare for the same n and K
 * and copied since to mem, `bytes` long, at the same offset from a 64-byte
 * boundary (a prepared block holds no pointer of its own).  FR_ERR_ARGUMENT
 * as fr_*_prepare for sizes and a short block. */
fr_status fr_bf16_view(void *mem, size_t bytes, int64_t n, int64_t K, fr_bf16_weights *w);
fr_status fr_int8_view(void *mem, size_t bytes, int64_t n, int64_t K, fr_int8_weights *w);

/* The left operand: m rows of A (K long, row stride lda; IN) into Ab (row
 * stride ldab >= fr_bf16_row_elems(K); OUT), or into Aq (row stride ldaq >=
 * fr_int8_row_bytes(K); OUT) with scale_a (m; OUT). */
typedef void fr_bf16_rows_fn(int64_t m, int64_t K, const float *A, int64_t lda, uint16_t *Ab,
                             int64_t ldab);
typedef void fr_int8_rows_fn(int64_t m, int64_t K, const float *A, int64_t lda, uint8_t *Aq,
                             int64_t ldaq, float *scale_a);

/* Columns [n0, n1) of C (m rows, row stride ldc; OUT, or IN/OUT with
 * accumulate) = rows of A converted above times w^T; other columns untouched.
 * 0 <= n0 <= n1 <= w->n.  Any m: a few rows (one step's state) go through
 * the weights once, all rows at once; many (the input rows of all steps) in
 * blocks that keep their rows in cache. */
typedef void fr_bf16_gemm_fn(int64_t m, const uint16_t *Ab, int64_t ldab,
                             const fr_bf16_weights *w, int64_t n0, int64_t n1, float *C,
                             int64_t ldc, int accumulate);
typedef void fr_int8_gemm_fn(int64_t m, const uint8_t *Aq, int64_t ldaq, const float *scale_a,
                             const fr_int8_weights *w, int64_t n0, int64_t n1, float *C,
                             int64_t ldc, int accumulate);

/* Each on the path chosen for this CPU. */
fr_bf16_rows_fn fr_bf16_rows;
fr_bf16_gemm_fn fr_bf16_gemm;
fr_int8_rows_fn fr_int8_rows;
fr_int8_gemm_fn fr_int8_gemm;

/* The path the functions above take on this CPU (the vector one where the CPU
 * has its instructions); fr_lowp_set_vector(0) sends both to the portable
 * path, fr_lowp_set_vector(1) back to the best the CPU has. */
fr_lowp_path fr_bf16_path(void);
fr_lowp_path fr_int8_path(void);
void fr_lowp_set_vector(int enabled);
/* "portable", "avx512_bf16", "avx512_vnni": the name of a precision's path. */
const char *fr_bf16_path_name(fr_lowp_path path);
const char *fr_int8_path_name(fr_lowp_path path);

/* The paths themselves (the check program compares them). */
fr_bf16_rows_fn fr_bf16_rows_portable;
fr_bf16_gemm_fn fr_bf16_gemm_portable;
fr_int8_rows_fn fr_int8_rows_portable;
fr_int8_gemm_fn fr_int8_gemm_portable;
#if defined(__GNUC__) && defined(__x86_64__)
#define FR_HAVE_LOWP_AVX512 1
fr_bf16_rows_fn fr_bf16_rows_avx512;
fr_bf16_gemm_fn fr_bf16_gemm_avx512;
fr_int8_rows_fn fr_int8_rows_avx512;
fr_int8_gemm_fn fr_int8_gemm_avx512;
#else
#define FR_HAVE_LOWP_AVX512 0
#endif

#endif
