/* The bfloat16 path on AVX512_BF16 (lowp.h): rows converted with
 * vcvtne2ps2bf16, products with vdpbf16ps over the prepared panels.
 *
 * A tile holds mr x np sums of 16 columns, each summed pair by pair in K's
 * order from +0 (lowp.h's arithmetic; the portable path does the same
 * steps), then written onto C or added to it.  Compiled for its target here
 * alone; fr_bf16_path() calls it only where the CPU has the instructions. */
#include <string.h>

#include "lowp.h"

/* A multiply and an add stay two roundings, whatever -ffp-contract the build
 * passes (gcc's GNU modes fuse them by default). */
#pragma STDC FP_CONTRACT OFF
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#if FR_HAVE_LOWP_AVX512
#include "lowp_tiles.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

TARGET void fr_bf16_rows_avx512(int64_t m, int64_t K, const float *A, int64_t lda, uint16_t *Ab,
                                int64_t ldab)
{
    int64_t elems = fr_bf16_row_elems(K);
    for (int64_t i = 0; i < m; i++) {
        const float *a = A + i * lda;
        uint16_t *out = Ab + i * ldab;
        for (int64_t k0 = 0; k0 < elems; k0 += 32) {
            __m512 lo = _mm512_maskz_loadu_ps(fr_lowp_left(K - k0), a + k0);
            __m512 hi = _mm512_maskz_loadu_ps(fr_lowp_left(K - k0 - 16), a + k0 + 16);
            __m512bh both = _mm512_cvtne2ps_pbh(hi, lo);
            int64_t left = elems - k0;
            __mmask32 store = left >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << left) - 1u);
            _mm512_mask_storeu_epi16(out + k0, store, (__m512i)both);
        }
    }
}

/* Rows i .. i + mr of C, panels p .. p + np: the sums over every pair of K,
 * then C = s or C += s in the lanes of mask[q]. */
TARGET __attribute__((always_inline)) static inline void
bf16_tile(const int mr, const int np, int64_t K2, const uint16_t *A, int64_t lda,
          const uint16_t *B, float *C, int64_t ldc, const __mmask16 *mask, int accumulate)
{
    const int64_t panel = K2 * 2 * FR_LOWP_PANEL; /* bf16 elements of a panel */
    __m512 s[8][8];
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < np; q++)
            s[r][q] = _mm512_setzero_ps();
    for (int64_t t = 0; t < K2; t++) {
        __m512bh b[8];
        for (int q = 0; q < np; q++)
            b[q] = (__m512bh)_mm512_loadu_si512(B + q * panel + t * 2 * FR_LOWP_PANEL);
        for (int r = 0; r < mr; r++) {
            uint32_t pair;
            memcpy(&pair, A + r * lda + 2 * t, sizeof pair);
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)pair);
            for (int q = 0; q < np; q++)
                s[r][q] = _mm512_dpbf16_ps(s[r][q], a, b[q]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < np; q++) {
            float *out = C + r * ldc + q * FR_LOWP_PANEL;
            __m512 v = s[r][q];
            if (accumulate)
                v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[q], out), v);
            _mm512_mask_storeu_ps(out, mask[q], v);
        }
}

TARGET void fr_bf16_gemm_avx512(int64_t m, const uint16_t *Ab, int64_t ldab,
                                const fr_bf16_weights *w, int64_t n0, int64_t n1, float *C,
                                int64_t ldc, int accumulate)
{
    int64_t K2 = fr_bf16_row_elems(w->K) / 2;
    if (n1 <= n0)
        return;
#define TILE(mr, np, i, p)                                                                     \
    bf16_tile(mr, np, K2, Ab + (i) * ldab, ldab, w->panels + (p) * K2 * 2 * FR_LOWP_PANEL,     \
              C + (i) * ldc + (p) * FR_LOWP_PANEL, ldc, mask, accumulate)
    FR_LOWP_WALK(m, n0, n1, 2 * fr_bf16_row_elems(w->K));
#undef TILE
}
#endif
