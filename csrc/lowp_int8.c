/* The int8 path on AVX512_VNNI (lowp.h): rows quantized sixteen values at a
 * time, products with vpdpbusd (unsigned q + 128 times signed qW, four k per
 * lane) over the prepared panels, exact in int32; then the shift taken back
 * (128 * colsum) and the sums scaled into float32 as the portable path does.
 * Compiled for its target here alone; fr_int8_path() calls it only where the
 * CPU has the instructions. */
#include <float.h>
#include <math.h>
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

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

TARGET void fr_int8_rows_avx512(int64_t m, int64_t K, const float *A, int64_t lda, uint8_t *Aq,
                                int64_t ldaq, float *scale_a)
{
    int64_t bytes = fr_int8_row_bytes(K);
    const __m512 big = _mm512_set1_ps(FLT_MAX);
    for (int64_t i = 0; i < m; i++) {
        const float *a = A + i * lda;
        uint8_t *q = Aq + i * ldaq;
        __m512 vmax = _mm512_setzero_ps();
        __mmask16 bad = 0; /* lanes that met a NaN or an infinity */
        for (int64_t k0 = 0; k0 < K; k0 += 16) {
            __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(fr_lowp_left(K - k0), a + k0));
            bad |= _mm512_cmp_ps_mask(v, big, _CMP_NLE_UQ);
            vmax = _mm512_max_ps(vmax, v);
        }
        float amax = _mm512_reduce_max_ps(vmax);
        float inv = 127.0f / amax;
        if (bad || !(inv <= FLT_MAX)) {
            scale_a[i] = bad ? NAN : 0.0f;
            memset(q, 128, (size_t)bytes);
            continue;
        }
        scale_a[i] = amax / 127.0f;
        const __m512 vinv = _mm512_set1_ps(inv);
        const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
        const __m512i shift = _mm512_set1_epi32(128);
        for (int64_t k0 = 0; k0 < bytes; k0 += 16) {
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(fr_lowp_left(K - k0), a + k0), vinv);
            __m512i qi = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(v), lo), hi);
            _mm512_mask_cvtepi32_storeu_epi8(q + k0, fr_lowp_left(bytes - k0), _mm512_add_epi32(qi, shift));
        }
    }
}

/* Rows i .. i + mr of C, panels p .. p + np (their first column j0): exact
 * int32 sums over every group of K, then f = float(dot) * (scale_a * scale_w)
 * written or added in the lanes of mask[q]. */
TARGET __attribute__((always_inline)) static inline void
int8_tile(const int mr, const int np, int64_t K4, const uint8_t *A, int64_t lda,
          const float *scale_a, const fr_int8_weights *w, int64_t p, float *C, int64_t ldc,
          const __mmask16 *mask, int accumulate)
{
    const int64_t panel = K4 * 4 * FR_LOWP_PANEL; /* bytes of a panel */
    const int8_t *B = w->panels + p * panel;
    __m512i s[8][8];
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < np; q++)
            s[r][q] = _mm512_setzero_si512();
    for (int64_t g = 0; g < K4; g++) {
        __m512i b[8];
        for (int q = 0; q < np; q++)
            b[q] = _mm512_loadu_si512(B + q * panel + g * 4 * FR_LOWP_PANEL);
        for (int r = 0; r < mr; r++) {
            uint32_t group;
            memcpy(&group, A + r * lda + 4 * g, sizeof group);
            __m512i a = _mm512_set1_epi32((int)group);
            for (int q = 0; q < np; q++)
                s[r][q] = _mm512_dpbusd_epi32(s[r][q], a, b[q]);
        }
    }
    for (int q = 0; q < np; q++) {
        int64_t j0 = (p + q) * FR_LOWP_PANEL;
        __m512i shift = _mm512_slli_epi32(_mm512_loadu_si512(w->colsum + j0), 7);
        __m512 scale_w = _mm512_loadu_ps(w->scale_w + j0);
        for (int r = 0; r < mr; r++) {
            float *out = C + r * ldc + q * FR_LOWP_PANEL;
            __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(s[r][q], shift));
            __m512 f = _mm512_mul_ps(dot, _mm512_mul_ps(_mm512_set1_ps(scale_a[r]), scale_w));
            if (accumulate)
                f = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[q], out), f);
            _mm512_mask_storeu_ps(out, mask[q], f);
        }
    }
}

TARGET void fr_int8_gemm_avx512(int64_t m, const uint8_t *Aq, int64_t ldaq, const float *scale_a,
                                const fr_int8_weights *w, int64_t n0, int64_t n1, float *C,
                                int64_t ldc, int accumulate)
{
    int64_t K4 = fr_int8_row_bytes(w->K) / 4;
    if (n1 <= n0)
        return;
#define TILE(mr, np, i, p)                                                                     \
    int8_tile(mr, np, K4, Aq + (i) * ldaq, ldaq, scale_a + (i), w, p,                          \
              C + (i) * ldc + (p) * FR_LOWP_PANEL, ldc, mask, accumulate)
    FR_LOWP_WALK(m, n0, n1, fr_int8_row_bytes(w->K));
#undef TILE
}
#endif
