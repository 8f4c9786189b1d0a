/* The packed kernels' entry points (packed.h): each runs the instruction set
 * that fr_packed_isa() names, or, where the products are on the BLAS path
 * (a frozen call's prepared panels still need a kernel), the widest the CPU
 * has; and the packing of columns, which is copies only.  No state. */
#include <string.h>

#include "fastrnn.h"
#include "packed.h"

#if FR_HAVE_PACKED
static inline int wide(void)
{
    int isa = fr_packed_isa();
    return (isa != FR_ISA_NONE ? isa : fr_packed_best_isa()) == FR_ISA_AVX512;
}

/* Pack B[k][c] = M[k][col0 + c] (n columns of M, row stride ldm). */
void fr_pack_cols(float *dst, const float *M, int64_t ldm, int64_t col0, int64_t n, int64_t K)
{
    for (int64_t p = 0; p < fr_panels(n); p++) {
        float *panel = dst + p * FR_PANEL * K;
        int64_t width = n - p * FR_PANEL < FR_PANEL ? n - p * FR_PANEL : FR_PANEL;
        for (int64_t k = 0; k < K; k++) {
            memcpy(panel + k * FR_PANEL, M + k * ldm + col0 + p * FR_PANEL, (size_t)width * sizeof(float));
            for (int64_t c = width; c < FR_PANEL; c++)
                panel[k * FR_PANEL + c] = 0.0f;
        }
    }
}

void fr_pack_rows(float *dst, const float *M, int64_t ldm, int64_t row0, int64_t n, int64_t K)
{
    if (wide())
        fr_pack_rows_avx512(dst, M, ldm, row0, n, K);
    else
        fr_pack_rows_avx2(dst, M, ldm, row0, n, K);
}

void fr_packed_gemm(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
                    const float *Bp, float *C, int64_t ldc, int accumulate)
{
    const float *add = accumulate ? C : NULL;
    if (wide())
        fr_packed_gemm_avx512(m, n, K, A, lda, Bp, C, ldc, add, ldc);
    else
        fr_packed_gemm_avx2(m, n, K, A, lda, Bp, C, ldc, add, ldc);
}

void fr_packed_gemm_bias(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
                         const float *Bp, const float *bias, float *C, int64_t ldc)
{
    if (wide())
        fr_packed_gemm_avx512(m, n, K, A, lda, Bp, C, ldc, bias, 0);
    else
        fr_packed_gemm_avx2(m, n, K, A, lda, Bp, C, ldc, bias, 0);
}

void fr_dot_rows(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    if (wide())
        fr_dot_rows_avx512(m, n, K, A, lda, B, ldb, C, ldc, accumulate);
    else
        fr_dot_rows_avx2(m, n, K, A, lda, B, ldb, C, ldc, accumulate);
}

void fr_gemm_blocked(int a_trans, int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate,
                     float *scratch)
{
    if (wide())
        fr_gemm_blocked_avx512(a_trans, m, n, K, A, lda, B, ldb, C, ldc, accumulate, scratch);
    else
        fr_gemm_blocked_avx2(a_trans, m, n, K, A, lda, B, ldb, C, ldc, accumulate, scratch);
}

void fr_act_vector(int tanh_, const float *pre, float *out, int64_t n)
{
    if (wide())
        fr_act_avx512(tanh_, pre, out, n);
    else
        fr_act_avx2(tanh_, pre, out, n);
}

void fr_lstm_gates_vector(int64_t n, const float *pre, int64_t stride, float *c, float *h)
{
    if (wide())
        fr_lstm_gates_avx512(n, pre, stride, c, h);
    else
        fr_lstm_gates_avx2(n, pre, stride, c, h);
}
#endif
