/* Frozen inference's reduced-precision products (lowp.h): the weights
 * prepared once, the portable path in plain C, and the choice of path.
 *
 * The portable path reads the same prepared layouts as the vector kernels
 * and does the same operations in the same order, so it gives their results
 * bit for bit: the int8 sums are exact integers; each bfloat16 step is the
 * fused, flushed multiply-add that vdpbf16ps does (a product of two bfloat16
 * is exact in float32 unless it under- or overflows: only then is fmaf
 * needed).  No thread split here: callers split the rows or the columns. */
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


static float float_of(uint32_t bits)
{
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static uint32_t bits_of(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}

/* bf16(x): round to nearest even; NaN quiet; a subnormal to a zero of its sign. */
static uint16_t bf16_of(float x)
{
    uint32_t b = bits_of(x);
    if ((b & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((b >> 16) | 0x40u);
    if ((b & 0x7F800000u) == 0)
        return (uint16_t)((b >> 16) & 0x8000u);
    return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

static inline float float_of_bf16(uint16_t h) { return float_of((uint32_t)h << 16); }

static inline float flush(float x) { return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x; }

/* ---- prepared weights ---------------------------------------------------- */

static void *aligned64(void *mem) { return (void *)(((uintptr_t)mem + 63) & ~(uintptr_t)63); }

static size_t bf16_panels_bytes(int64_t n, int64_t K)
{
    return (size_t)fr_lowp_panels(n) * (size_t)fr_bf16_row_elems(K) * FR_LOWP_PANEL * sizeof(uint16_t);
}

static size_t int8_panels_bytes(int64_t n, int64_t K)
{
    return (size_t)fr_lowp_panels(n) * (size_t)fr_int8_row_bytes(K) * FR_LOWP_PANEL;
}

size_t fr_bf16_weights_bytes(int64_t n, int64_t K)
{
    return n < 0 || K < 0 ? 0 : bf16_panels_bytes(n, K) + 63;
}

size_t fr_int8_weights_bytes(int64_t n, int64_t K)
{
    size_t per_column = sizeof(float) + sizeof(int32_t); /* scale_w, colsum */
    return n < 0 || K < 0 ? 0
                          : int8_panels_bytes(n, K) + (size_t)fr_lowp_panels(n) * FR_LOWP_PANEL * per_column + 63;
}

fr_status fr_bf16_view(void *mem, size_t bytes, int64_t n, int64_t K, fr_bf16_weights *w)
{
    if (n < 0 || K < 0 || bytes < fr_bf16_weights_bytes(n, K))
        return FR_ERR_ARGUMENT;
    w->n = n;
    w->K = K;
    w->panels = aligned64(mem);
    return FR_OK;
}

fr_status fr_int8_view(void *mem, size_t bytes, int64_t n, int64_t K, fr_int8_weights *w)
{
    if (n < 0 || K < 0 || K > FR_INT8_MAX_K || bytes < fr_int8_weights_bytes(n, K))
        return FR_ERR_ARGUMENT;
    int8_t *panels = aligned64(mem);
    float *scale_w = (float *)((char *)panels + int8_panels_bytes(n, K));
    w->n = n;
    w->K = K;
    w->panels = panels;
    w->scale_w = scale_w;
    w->colsum = (int32_t *)(scale_w + fr_lowp_panels(n) * FR_LOWP_PANEL);
    return FR_OK;
}

fr_status fr_bf16_prepare(void *mem, size_t bytes, const float *W, int64_t ldw, int64_t n,
                          int64_t K, fr_bf16_weights *w)
{
    if (n < 0 || K < 0 || ldw < K || bytes < fr_bf16_weights_bytes(n, K))
        return FR_ERR_ARGUMENT;
    uint16_t *panels = aligned64(mem);
    int64_t K2 = fr_bf16_row_elems(K) / 2;
    for (int64_t p = 0; p < fr_lowp_panels(n); p++)
        for (int64_t t = 0; t < K2; t++)
            for (int64_t c = 0; c < FR_LOWP_PANEL; c++)
                for (int64_t h = 0; h < 2; h++) {
                    int64_t j = p * FR_LOWP_PANEL + c, k = 2 * t + h;
                    panels[((p * K2 + t) * FR_LOWP_PANEL + c) * 2 + h] =
                        j < n && k < K ? bf16_of(W[j * ldw + k]) : 0;
                }
    w->n = n;
    w->K = K;
    w->panels = panels;
    return FR_OK;
}

fr_status fr_int8_prepare(void *mem, size_t bytes, const float *W, int64_t ldw, int64_t n,
                          int64_t K, fr_int8_weights *w)
{
    if (n < 0 || K < 0 || ldw < K || K > FR_INT8_MAX_K || bytes < fr_int8_weights_bytes(n, K))
        return FR_ERR_ARGUMENT;
    for (int64_t j = 0; j < n; j++)
        for (int64_t k = 0; k < K; k++)
            if (!(fabsf(W[j * ldw + k]) <= FLT_MAX))
                return FR_ERR_ARGUMENT;
    int8_t *panels = aligned64(mem);
    int64_t K4 = fr_int8_row_bytes(K) / 4, columns = fr_lowp_panels(n) * FR_LOWP_PANEL;
    float *scale_w = (float *)((char *)panels + int8_panels_bytes(n, K));
    int32_t *colsum = (int32_t *)(scale_w + columns);
    memset(panels, 0, int8_panels_bytes(n, K));
    for (int64_t j = 0; j < columns; j++) {
        int64_t p = j / FR_LOWP_PANEL, c = j % FR_LOWP_PANEL;
        float amax = 0.0f;
        for (int64_t k = 0; j < n && k < K; k++)
            amax = fmaxf(amax, fabsf(W[j * ldw + k]));
        float scale = amax / 127.0f; /* scale_w = amax / 127, 1 where that is 0 */
        scale_w[j] = scale == 0.0f ? 1.0f : scale;
        int32_t sum = 0;
        for (int64_t k = 0; j < n && k < K; k++) {
            float q = rintf(W[j * ldw + k] / scale_w[j]);
            q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
            panels[((p * K4 + k / 4) * FR_LOWP_PANEL + c) * 4 + k % 4] = (int8_t)q;
            sum += (int32_t)q;
        }
        colsum[j] = sum;
    }
    w->n = n;
    w->K = K;
    w->panels = panels;
    w->scale_w = scale_w;
    w->colsum = colsum;
    return FR_OK;
}

/* ---- the portable path ---------------------------------------------------- */

void fr_bf16_rows_portable(int64_t m, int64_t K, const float *A, int64_t lda, uint16_t *Ab,
                           int64_t ldab)
{
    for (int64_t i = 0; i < m; i++) {
        for (int64_t k = 0; k < K; k++)
            Ab[i * ldab + k] = bf16_of(A[i * lda + k]);
        if (K % 2)
            Ab[i * ldab + K] = 0;
    }
}

/* One of vdpbf16ps's two steps: fma(x, y, s) rounded once, then flushed. */
static inline float bf16_step(float x, float y, float s) { return flush(fmaf(x, y, s)); }

/* Whether x * y, both bfloat16, is exact in float32: all but a product that
 * under- or overflows (or a NaN).  Then s + x * y is rounded once, as fma. */
static inline int bf16_exact(float x, float y, float p)
{
    return (fabsf(p) >= FLT_MIN && fabsf(p) <= FLT_MAX) || x == 0.0f || y == 0.0f;
}

/* The sums of one panel for one row: s = every pair's two steps in turn.
 * The loop over the panel's lanes does s + x * y (which gcc vectorises) and
 * notes a product that was not exact; only then is the panel summed again
 * with fmaf. */
static void bf16_panel(const uint16_t *a, const uint16_t *panel, int64_t K2, float *s)
{
    int inexact = 0;
    for (int c = 0; c < FR_LOWP_PANEL; c++)
        s[c] = 0.0f;
    for (int64_t t = 0; t < K2; t++) {
        float a0 = float_of_bf16(a[2 * t]), a1 = float_of_bf16(a[2 * t + 1]);
        uint32_t b[FR_LOWP_PANEL]; /* column c's pair: k even in the low half */
        memcpy(b, panel + t * 2 * FR_LOWP_PANEL, sizeof b);
        for (int c = 0; c < FR_LOWP_PANEL; c++) {
            float w1 = float_of(b[c] & 0xFFFF0000u), w0 = float_of(b[c] << 16);
            float p1 = a1 * w1, p0 = a0 * w0;
            inexact |= !bf16_exact(a1, w1, p1) | !bf16_exact(a0, w0, p0);
            s[c] = flush(flush(s[c] + p1) + p0);
        }
    }
    if (!inexact)
        return;
    for (int c = 0; c < FR_LOWP_PANEL; c++)
        s[c] = 0.0f;
    for (int64_t t = 0; t < K2; t++) {
        float a0 = float_of_bf16(a[2 * t]), a1 = float_of_bf16(a[2 * t + 1]);
        const uint16_t *b = panel + t * 2 * FR_LOWP_PANEL;
        for (int c = 0; c < FR_LOWP_PANEL; c++) {
            s[c] = bf16_step(a1, float_of_bf16(b[2 * c + 1]), s[c]);
            s[c] = bf16_step(a0, float_of_bf16(b[2 * c]), s[c]);
        }
    }
}

/* C = f, or C += f, in the lanes of panel p inside the columns [n0, n1). */
static void store_lanes(float *row, int64_t p, int64_t n0, int64_t n1, const float *f,
                        int accumulate)
{
    int64_t first = p * FR_LOWP_PANEL;
    int64_t c0 = n0 > first ? n0 - first : 0;
    int64_t c1 = n1 - first < FR_LOWP_PANEL ? n1 - first : FR_LOWP_PANEL;
    for (int64_t c = c0; c < c1; c++)
        row[first + c] = accumulate ? row[first + c] + f[c] : f[c];
}

void fr_bf16_gemm_portable(int64_t m, const uint16_t *Ab, int64_t ldab, const fr_bf16_weights *w,
                           int64_t n0, int64_t n1, float *C, int64_t ldc, int accumulate)
{
    int64_t K2 = fr_bf16_row_elems(w->K) / 2;
    for (int64_t i = 0; i < m && n0 < n1; i++)
        for (int64_t p = n0 / FR_LOWP_PANEL; p * FR_LOWP_PANEL < n1; p++) {
            float s[FR_LOWP_PANEL];
            bf16_panel(Ab + i * ldab, w->panels + p * K2 * 2 * FR_LOWP_PANEL, K2, s);
            store_lanes(C + i * ldc, p, n0, n1, s, accumulate);
        }
}

void fr_int8_rows_portable(int64_t m, int64_t K, const float *A, int64_t lda, uint8_t *Aq,
                           int64_t ldaq, float *scale_a)
{
    int64_t Kq = fr_int8_row_bytes(K);
    for (int64_t i = 0; i < m; i++) {
        const float *a = A + i * lda;
        uint8_t *q = Aq + i * ldaq;
        float amax = 0.0f;
        int finite = 1;
        for (int64_t k = 0; k < K; k++) {
            float v = fabsf(a[k]);
            finite &= v <= FLT_MAX;
            amax = v > amax ? v : amax;
        }
        float inv = 127.0f / amax;
        memset(q, 128, (size_t)Kq);
        if (!finite) {
            scale_a[i] = NAN;
        } else if (!(inv <= FLT_MAX)) {
            scale_a[i] = 0.0f;
        } else {
            scale_a[i] = amax / 127.0f;
            for (int64_t k = 0; k < K; k++) {
                float v = rintf(a[k] * inv);
                v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
                q[k] = (uint8_t)((int)v + 128);
            }
        }
    }
}

/* The contributions of panel p for one row: exact sums of (q + 128) * qW
 * over the groups, the shift taken back, then float(dot) * (scale_a * scale_w). */
static void int8_panel(const uint8_t *a, float scale_a, const fr_int8_weights *w, int64_t p,
                       float *f)
{
    int64_t K4 = fr_int8_row_bytes(w->K) / 4;
    const int8_t *panel = w->panels + p * K4 * 4 * FR_LOWP_PANEL;
    int32_t s[FR_LOWP_PANEL] = {0};
    for (int64_t g = 0; g < K4; g++) {
        const int8_t *b = panel + g * 4 * FR_LOWP_PANEL;
        for (int c = 0; c < FR_LOWP_PANEL; c++)
            for (int q = 0; q < 4; q++)
                s[c] += (int32_t)a[4 * g + q] * (int32_t)b[4 * c + q];
    }
    for (int c = 0; c < FR_LOWP_PANEL; c++) {
        int64_t j = p * FR_LOWP_PANEL + c;
        int32_t dot = s[c] - 128 * w->colsum[j];
        f[c] = (float)dot * (scale_a * w->scale_w[j]);
    }
}

void fr_int8_gemm_portable(int64_t m, const uint8_t *Aq, int64_t ldaq, const float *scale_a,
                           const fr_int8_weights *w, int64_t n0, int64_t n1, float *C,
                           int64_t ldc, int accumulate)
{
    for (int64_t i = 0; i < m && n0 < n1; i++)
        for (int64_t p = n0 / FR_LOWP_PANEL; p * FR_LOWP_PANEL < n1; p++) {
            float f[FR_LOWP_PANEL];
            int8_panel(Aq + i * ldaq, scale_a[i], w, p, f);
            store_lanes(C + i * ldc, p, n0, n1, f, accumulate);
        }
}

/* ---- the choice of path ---------------------------------------------------- */

static int cpu_has(int precision_is_int8)
{
#if FR_HAVE_LOWP_AVX512
    __builtin_cpu_init();
    int base = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
               && __builtin_cpu_supports("avx512vl");
    return base && (precision_is_int8 ? __builtin_cpu_supports("avx512vnni")
                                      : __builtin_cpu_supports("avx512bf16"));
#else
    (void)precision_is_int8;
    return 0;
#endif
}

static int bf16_vector = -1, int8_vector = -1; /* -1: not asked yet */

fr_lowp_path fr_bf16_path(void)
{
    if (bf16_vector < 0)
        bf16_vector = cpu_has(0);
    return bf16_vector ? FR_LOWP_AVX512 : FR_LOWP_PORTABLE;
}

fr_lowp_path fr_int8_path(void)
{
    if (int8_vector < 0)
        int8_vector = cpu_has(1);
    return int8_vector ? FR_LOWP_AVX512 : FR_LOWP_PORTABLE;
}

void fr_lowp_set_vector(int enabled)
{
    bf16_vector = enabled && cpu_has(0);
    int8_vector = enabled && cpu_has(1);
}

const char *fr_bf16_path_name(fr_lowp_path path)
{
    return path == FR_LOWP_AVX512 ? "avx512_bf16" : "portable";
}

const char *fr_int8_path_name(fr_lowp_path path)
{
    return path == FR_LOWP_AVX512 ? "avx512_vnni" : "portable";
}

void fr_bf16_rows(int64_t m, int64_t K, const float *A, int64_t lda, uint16_t *Ab, int64_t ldab)
{
#if FR_HAVE_LOWP_AVX512
    if (fr_bf16_path() == FR_LOWP_AVX512) {
        fr_bf16_rows_avx512(m, K, A, lda, Ab, ldab);
        return;
    }
#endif
    fr_bf16_rows_portable(m, K, A, lda, Ab, ldab);
}

void fr_bf16_gemm(int64_t m, const uint16_t *Ab, int64_t ldab, const fr_bf16_weights *w,
                  int64_t n0, int64_t n1, float *C, int64_t ldc, int accumulate)
{
#if FR_HAVE_LOWP_AVX512
    if (fr_bf16_path() == FR_LOWP_AVX512) {
        fr_bf16_gemm_avx512(m, Ab, ldab, w, n0, n1, C, ldc, accumulate);
        return;
    }
#endif
    fr_bf16_gemm_portable(m, Ab, ldab, w, n0, n1, C, ldc, accumulate);
}

void fr_int8_rows(int64_t m, int64_t K, const float *A, int64_t lda, uint8_t *Aq, int64_t ldaq,
                  float *scale_a)
{
#if FR_HAVE_LOWP_AVX512
    if (fr_int8_path() == FR_LOWP_AVX512) {
        fr_int8_rows_avx512(m, K, A, lda, Aq, ldaq, scale_a);
        return;
    }
#endif
    fr_int8_rows_portable(m, K, A, lda, Aq, ldaq, scale_a);
}

void fr_int8_gemm(int64_t m, const uint8_t *Aq, int64_t ldaq, const float *scale_a,
                  const fr_int8_weights *w, int64_t n0, int64_t n1, float *C, int64_t ldc,
                  int accumulate)
{
#if FR_HAVE_LOWP_AVX512
    if (fr_int8_path() == FR_LOWP_AVX512) {
        fr_int8_gemm_avx512(m, Aq, ldaq, scale_a, w, n0, n1, C, ldc, accumulate);
        return;
    }
#endif
    fr_int8_gemm_portable(m, Aq, ldaq, scale_a, w, n0, n1, C, ldc, accumulate);
}
