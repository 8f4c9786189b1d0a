/* Checks csrc/lowp.h's bfloat16 and int8 products, every path this CPU can
 * run, against a scalar reference that follows SPEC's formulas as written
 * (the bfloat16 sums in vdpbf16ps's order, as lowp.h defines them).  Results
 * must agree bit for bit (NaN with NaN).  Exits 1 on the first mismatch.
 * Build and run: tests/c/lowp_check.sh. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowp.h"

/* A multiply and an add stay two roundings, whatever -ffp-contract the build
 * passes (gcc's GNU modes fuse them by default). */
#pragma STDC FP_CONTRACT OFF
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif


static int failures;

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        if (++failures >= 10)                                                                      \
            exit(1);                                                                               \
    } while (0)

/* ---- data ---------------------------------------------------------------- */

static unsigned long long rng = 0x9E3779B97F4A7C15ull;

static double uniform(void) /* [0, 1) */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static float normal(void)
{
    double u = uniform() + 1e-300, v = uniform();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* rows x cols values (stride ld): unit normals at a few scales, with a zero
 * row, a row of tiny values, a row that holds an exact tie of bf16 rounding
 * and, where `odd`, a row with a NaN, one with an infinity and one subnormal. */
static void fill(float *M, int64_t rows, int64_t cols, int64_t ld, int odd)
{
    for (int64_t i = 0; i < rows; i++) {
        float scale = (float)ldexp(1.0, (int)(i % 7) * 3 - 9);
        for (int64_t k = 0; k < ld; k++)
            M[i * ld + k] = k < cols ? scale * normal() : 12345.0f; /* past cols: never read */
    }
    if (rows > 1)
        memset(M + 1 * ld, 0, (size_t)cols * sizeof(float));
    if (rows > 2)
        for (int64_t k = 0; k < cols; k++)
            M[2 * ld + k] = (float)ldexp(normal(), -120);
    if (cols == 0)
        return;
    if (rows > 3)
        M[3 * ld] = 1.00390625f; /* 1 + 2^-8: halfway between two bf16, to even */
    if (odd && rows > 4)
        M[4 * ld + cols / 2] = NAN;
    if (odd && rows > 5)
        M[5 * ld + cols - 1] = -INFINITY;
    if (odd && rows > 6)
        M[6 * ld] = 1e-40f;
}

/* ---- the reference ---------------------------------------------------------- */

/* bf16 rounding: the nearer of the two bf16 around x, the even one at a tie;
 * NaN quiet; a subnormal to a zero of its sign. */
static float ref_bf16(float x)
{
    if (isnan(x))
        return NAN;
    if (isinf(x))
        return x;
    if (fpclassify(x) == FP_SUBNORMAL || x == 0)
        return copysignf(0.0f, x);
    uint32_t b;
    memcpy(&b, &x, 4);
    uint32_t lo_bits = b & 0xFFFF0000u, hi_bits = lo_bits + 0x10000u;
    float lo, hi;
    memcpy(&lo, &lo_bits, 4);
    memcpy(&hi, &hi_bits, 4);
    double dl = fabs((double)x - lo), dh = fabs((double)hi - x);
    if (isinf(hi))
        dh = fabs(ldexp(1.0, 128) - fabs((double)x)); /* past the largest bf16 */
    if (dl < dh || (dl == dh && ((lo_bits >> 16) & 1) == 0))
        return lo;
    return hi;
}

static float ref_ftz(float x) { return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x; }

/* C[i][j] (+)= the bf16 dot of rows i of A and j of W, vdpbf16ps's order:
 * pairs (2t, 2t + 1) in turn, K padded with a zero, the odd one first. */
static void ref_bf16_gemm(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
                          const float *W, int64_t ldw, float *C, int64_t ldc, int64_t n0,
                          int64_t n1, int accumulate)
{
    int64_t K2 = K + K % 2;
    float *a = calloc((size_t)(m * K2), sizeof(float)), *w = calloc((size_t)(n * K2), sizeof(float));
    for (int64_t i = 0; i < m; i++)
        for (int64_t k = 0; k < K; k++)
            a[i * K2 + k] = ref_bf16(A[i * lda + k]);
    for (int64_t j = 0; j < n; j++)
        for (int64_t k = 0; k < K; k++)
            w[j * K2 + k] = ref_bf16(W[j * ldw + k]);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = n0; j < n1; j++) {
            float s = 0.0f;
            for (int64_t k = 0; k < K2; k += 2) {
                s = ref_ftz(fmaf(a[i * K2 + k + 1], w[j * K2 + k + 1], s));
                s = ref_ftz(fmaf(a[i * K2 + k], w[j * K2 + k], s));
            }
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + s : s;
        }
    free(a), free(w);
}

/* SPEC's quantization of one row: scale and q; `weights` for the rule of W. */
static float ref_quantize(const float *a, int64_t K, int weights, int *q)
{
    float amax = 0.0f;
    int finite = 1;
    for (int64_t k = 0; k < K; k++) {
        finite = finite && isfinite(a[k]);
        if (fabsf(a[k]) > amax)
            amax = fabsf(a[k]);
    }
    if (weights) {
        float scale = amax / 127.0f;
        if (scale == 0.0f)
            scale = 1.0f;
        for (int64_t k = 0; k < K; k++) {
            float v = rintf(a[k] / scale);
            q[k] = (int)fminf(fmaxf(v, -127.0f), 127.0f);
        }
        return scale;
    }
    float inv = 127.0f / amax;
    if (!finite || !isfinite(inv)) {
        for (int64_t k = 0; k < K; k++)
            q[k] = 0;
        return finite ? 0.0f : NAN;
    }
    for (int64_t k = 0; k < K; k++) {
        float v = rintf(a[k] * inv);
        q[k] = (int)fminf(fmaxf(v, -127.0f), 127.0f);
    }
    return amax / 127.0f;
}

static void ref_int8_gemm(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
                          const float *W, int64_t ldw, float *C, int64_t ldc, int64_t n0,
                          int64_t n1, int accumulate)
{
    int *qa = malloc(sizeof(int) * (size_t)(m * K + 1)), *qw = malloc(sizeof(int) * (size_t)(n * K + 1));
    float *sa = malloc(sizeof(float) * (size_t)m), *sw = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < m; i++)
        sa[i] = ref_quantize(A + i * lda, K, 0, qa + i * K);
    for (int64_t j = 0; j < n; j++)
        sw[j] = ref_quantize(W + j * ldw, K, 1, qw + j * K);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = n0; j < n1; j++) {
            long long dot = 0;
            for (int64_t k = 0; k < K; k++)
                dot += (long long)qa[i * K + k] * qw[j * K + k];
            float f = (float)dot * (sa[i] * sw[j]);
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + f : f;
        }
    free(qa), free(qw), free(sa), free(sw);
}

/* ---- comparisons ---------------------------------------------------------- */

static int same(float x, float y)
{
    return (isnan(x) && isnan(y)) || memcmp(&x, &y, sizeof x) == 0;
}

static void compare(const char *what, const float *got, const float *want, int64_t m, int64_t n,
                    int64_t ldc, int64_t K, int64_t n0, int64_t n1, int accumulate)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ldc; j++)
            if (!same(got[i * ldc + j], want[i * ldc + j])) {
                FAIL("%s: m=%lld n=%lld K=%lld cols [%lld, %lld) accumulate=%d: C[%lld][%lld] = %a, want %a",
                     what, (long long)m, (long long)n, (long long)K, (long long)n0, (long long)n1,
                     accumulate, (long long)i, (long long)j, got[i * ldc + j], want[i * ldc + j]);
                return;
            }
}

typedef struct {
    const char *name;
    fr_bf16_rows_fn *bf16_rows;
    fr_bf16_gemm_fn *bf16_gemm;
    fr_int8_rows_fn *int8_rows;
    fr_int8_gemm_fn *int8_gemm;
} path;

/* Guard bytes past a prepared block: prepare must write inside it. */
#define GUARD 64

static void check_shape(const path *paths, int n_paths, int64_t m, int64_t n, int64_t K)
{
    int64_t lda = K + 3, ldw = K + 1, ldc = n + 5;
    int64_t ldab = fr_bf16_row_elems(K) + 2, ldaq = fr_int8_row_bytes(K) + 4;
    float *A = malloc(sizeof(float) * (size_t)(m * lda)), *W = malloc(sizeof(float) * (size_t)(n * ldw));
    float *C0 = malloc(sizeof(float) * (size_t)(m * ldc)), *want = malloc(sizeof(float) * (size_t)(m * ldc));
    float *got = malloc(sizeof(float) * (size_t)(m * ldc)), *scale_a = malloc(sizeof(float) * (size_t)m);
    uint16_t *Ab = malloc(sizeof(uint16_t) * (size_t)(m * ldab));
    uint8_t *Aq = malloc((size_t)(m * ldaq));
    size_t bbytes = fr_bf16_weights_bytes(n, K), ibytes = fr_int8_weights_bytes(n, K);
    unsigned char *bmem = malloc(bbytes + GUARD), *imem = malloc(ibytes + GUARD);
    fill(A, m, K, lda, 1);
    fill(W, n, K, ldw, 0);
    if (n > 3 && K > 0)
        W[3 * ldw] = 1e-40f; /* a subnormal weight */
    for (int64_t i = 0; i < m * ldc; i++)
        C0[i] = normal();
    memset(bmem + bbytes, 0xA5, GUARD);
    memset(imem + ibytes, 0xA5, GUARD);
    fr_bf16_weights bw;
    fr_int8_weights iw;
    if (fr_bf16_prepare(bmem, bbytes, W, ldw, n, K, &bw) != FR_OK
        || fr_int8_prepare(imem, ibytes, W, ldw, n, K, &iw) != FR_OK)
        FAIL("prepare refused n=%lld K=%lld", (long long)n, (long long)K);
    for (int g = 0; g < GUARD; g++)
        if (bmem[bbytes + g] != 0xA5 || imem[ibytes + g] != 0xA5) {
            FAIL("prepare wrote past its block: n=%lld K=%lld", (long long)n, (long long)K);
            break;
        }
    int64_t ranges[2][2] = {{0, n}, {n / 3, n - n / 4}};
    for (int precision = 0; precision < 2; precision++)
        for (int accumulate = 0; accumulate < 2; accumulate++)
            for (int r = 0; r < 2; r++) {
                int64_t n0 = ranges[r][0], n1 = ranges[r][1];
                if (r == 1 && (n1 <= n0 || (n0 == 0 && n1 == n)))
                    continue;
                memcpy(want, C0, sizeof(float) * (size_t)(m * ldc));
                if (precision == 0)
                    ref_bf16_gemm(m, n, K, A, lda, W, ldw, want, ldc, n0, n1, accumulate);
                else
                    ref_int8_gemm(m, n, K, A, lda, W, ldw, want, ldc, n0, n1, accumulate);
                for (int p = 0; p < n_paths; p++) {
                    char what[64];
                    snprintf(what, sizeof what, "%s %s", precision ? "int8" : "bf16", paths[p].name);
                    memcpy(got, C0, sizeof(float) * (size_t)(m * ldc));
                    if (precision == 0) {
                        paths[p].bf16_rows(m, K, A, lda, Ab, ldab);
                        paths[p].bf16_gemm(m, Ab, ldab, &bw, n0, n1, got, ldc, accumulate);
                    } else {
                        paths[p].int8_rows(m, K, A, lda, Aq, ldaq, scale_a);
                        paths[p].int8_gemm(m, Aq, ldaq, scale_a, &iw, n0, n1, got, ldc, accumulate);
                    }
                    compare(what, got, want, m, n, ldc, K, n0, n1, accumulate);
                }
            }
    free(A), free(W), free(C0), free(want), free(got), free(scale_a), free(Ab), free(Aq);
    free(bmem), free(imem);
}

/* The layouts lowp.h documents, read back element by element. */
static void check_layouts(void)
{
    int64_t n = 21, K = 7, K2 = 4, K4 = 2;
    float W[21 * 7];
    fill(W, n, K, K, 0);
    size_t bbytes = fr_bf16_weights_bytes(n, K), ibytes = fr_int8_weights_bytes(n, K);
    void *bmem = malloc(bbytes), *imem = malloc(ibytes);
    fr_bf16_weights bw;
    fr_int8_weights iw;
    fr_bf16_prepare(bmem, bbytes, W, K, n, K, &bw);
    fr_int8_prepare(imem, ibytes, W, K, n, K, &iw);
    if (((uintptr_t)bw.panels | (uintptr_t)iw.panels) % 64)
        FAIL("prepared panels not 64-byte aligned");
    for (int64_t j = 0; j < 32; j++) {
        int q[7];
        float scale = j < n ? ref_quantize(W + j * K, K, 1, q) : 1.0f;
        int sum = 0;
        for (int64_t k = 0; k < 8; k++) {
            int64_t p = j / 16, c = j % 16, t = k / 2, h = k % 2, g = k / 4, b = k % 4;
            float want = j < n && k < K ? ref_bf16(W[j * K + k]) : 0.0f;
            uint32_t bits = (uint32_t)bw.panels[((p * K2 + t) * 16 + c) * 2 + h] << 16;
            float got;
            memcpy(&got, &bits, 4);
            if (!same(got, want))
                FAIL("bf16 layout: W[%lld][%lld] = %a, want %a", (long long)j, (long long)k, got, want);
            int wq = j < n && k < K ? q[k] : 0;
            sum += wq;
            if (iw.panels[((p * K4 + g) * 16 + c) * 4 + b] != wq)
                FAIL("int8 layout: qW[%lld][%lld] = %d, want %d", (long long)j, (long long)k,
                     iw.panels[((p * K4 + g) * 16 + c) * 4 + b], wq);
        }
        if (!same(iw.scale_w[j], scale) || iw.colsum[j] != sum)
            FAIL("int8 scale or colsum of column %lld", (long long)j);
    }
    free(bmem), free(imem);
}

/* The converted rows themselves, bit for bit on every path: bf16 of special
 * values (NaN payloads, infinities, signed zeros, subnormals, the largest
 * float, ties) and int8's q + 128 and scales, against the reference. */
static void check_rows(const path *paths, int n_paths)
{
    static const uint32_t special[] = {
        0x7F800001u, 0xFFC12345u, 0x7FBFFFFFu, 0x7F800000u, 0xFF800000u, 0x00000000u,
        0x80000000u, 0x00000001u, 0x807FFFFFu, 0x00800000u, 0x7F7FFFFFu, 0x7F7F7FFFu,
        0x3F808000u, 0x3F818000u, 0x3F808001u, 0xBF80FFFFu, 0x3F7FFFFFu};
    enum { NS = sizeof special / sizeof *special, K = 37, M = 5 };
    float A[M * K];
    fill(A, M, K, K, 0);
    for (int k = 0; k < NS; k++)
        memcpy(&A[k], &special[k], 4);
    for (int k = 0; k < K; k++) /* amax so small that 127 / amax overflows: zeros */
        A[4 * K + k] = (float)(k % 3 - 1) * 1e-38f;
    uint16_t want_b[M * (K + 1)], got_b[M * (K + 1)];
    uint8_t want_q[M * 40], got_q[M * 40];
    float want_s[M], got_s[M];
    for (int p = 0; p < n_paths; p++) {
        paths[p].bf16_rows(M, K, A, K, got_b, K + 1);
        paths[p].int8_rows(M, K, A, K, got_q, 40, got_s);
        if (p == 0) {
            memcpy(want_b, got_b, sizeof want_b);
            memcpy(want_q, got_q, sizeof want_q);
            memcpy(want_s, got_s, sizeof want_s);
        }
        for (int i = 0; i < M; i++) {
            int q[K];
            float scale = ref_quantize(A + i * K, K, 0, q);
            if (i == 4 && scale != 0.0f)
                FAIL("the reference quantizes a row of amax 1e-38");
            if (!same(got_s[i], scale) || memcmp(&got_s[i], &want_s[i], 4))
                FAIL("int8 rows %s: scale_a[%d] = %a, want %a", paths[p].name, i, got_s[i], scale);
            for (int k = 0; k < 40; k++) {
                int wq = k < K ? q[k] + 128 : 128;
                if (got_q[i * 40 + k] != wq || got_q[i * 40 + k] != want_q[i * 40 + k])
                    FAIL("int8 rows %s: row %d, k %d: %d, want %d", paths[p].name, i, k, got_q[i * 40 + k], wq);
            }
            for (int k = 0; k < K + 1; k++) {
                uint16_t g = got_b[i * (K + 1) + k];
                uint32_t bits = (uint32_t)g << 16;
                float got, want = k < K ? ref_bf16(A[i * K + k]) : 0.0f;
                memcpy(&got, &bits, 4);
                if (!same(got, want) || g != want_b[i * (K + 1) + k])
                    FAIL("bf16 rows %s: row %d, k %d: %04x, want %a (portable %04x)", paths[p].name, i,
                         k, g, want, want_b[i * (K + 1) + k]);
            }
        }
    }
}

/* Bad arguments are refused; the longest K sums without overflow. */
static void check_edges(const path *paths, int n_paths)
{
    float W[4] = {1, NAN, 3, 4};
    char mem[4096];
    fr_int8_weights iw;
    fr_bf16_weights bw;
    if (fr_int8_prepare(mem, sizeof mem, W, 4, 1, 4, &iw) != FR_ERR_ARGUMENT)
        FAIL("int8 prepare took a NaN weight");
    if (fr_bf16_prepare(mem, 8, W, 4, 1, 4, &bw) != FR_ERR_ARGUMENT)
        FAIL("bf16 prepare took a short block");
    if (fr_int8_prepare(mem, sizeof mem, W, 2, 1, 4, &iw) != FR_ERR_ARGUMENT)
        FAIL("int8 prepare took ldw < K");
    int64_t K = FR_INT8_MAX_K, n = 16;
    float *big = malloc(sizeof(float) * (size_t)(n * K)), *a = malloc(sizeof(float) * (size_t)K);
    for (int64_t i = 0; i < n * K; i++)
        big[i] = 1.0f;
    for (int64_t k = 0; k < K; k++)
        a[k] = 1.0f;
    size_t bytes = fr_int8_weights_bytes(n, K);
    void *wmem = malloc(bytes);
    uint8_t *aq = malloc((size_t)fr_int8_row_bytes(K));
    float scale_a, C[16];
    if (fr_int8_prepare(wmem, bytes, big, K, n, K, &iw) != FR_OK)
        FAIL("int8 prepare refused K = FR_INT8_MAX_K");
    if (fr_int8_prepare(wmem, bytes, big, K, 1, K + 1, &iw) != FR_ERR_ARGUMENT)
        FAIL("int8 prepare took K > FR_INT8_MAX_K");
    fr_int8_prepare(wmem, bytes, big, K, n, K, &iw);
    for (int p = 0; p < n_paths; p++) {
        paths[p].int8_rows(1, K, a, K, aq, K, &scale_a);
        paths[p].int8_gemm(1, aq, K, &scale_a, &iw, 0, n, C, n, 0);
        /* q = qW = 127 everywhere: dot = 127 * 127 * K, near the int32 limit once shifted */
        float want = (float)(127LL * 127 * K) * ((1.0f / 127.0f) * (1.0f / 127.0f));
        for (int j = 0; j < n; j++)
            if (!same(C[j], want))
                FAIL("int8 %s at K = FR_INT8_MAX_K: %a, want %a", paths[p].name, C[j], want);
    }
    free(big), free(a), free(wmem), free(aq);
}

int main(void)
{
    path paths[3];
    int n_paths = 0;
    paths[n_paths++] = (path){"portable", fr_bf16_rows_portable, fr_bf16_gemm_portable,
                              fr_int8_rows_portable, fr_int8_gemm_portable};
#if FR_HAVE_LOWP_AVX512
    if (fr_bf16_path() == FR_LOWP_AVX512 && fr_int8_path() == FR_LOWP_AVX512)
        paths[n_paths++] = (path){"avx512", fr_bf16_rows_avx512, fr_bf16_gemm_avx512,
                                  fr_int8_rows_avx512, fr_int8_gemm_avx512};
#endif
    paths[n_paths++] = (path){"dispatched", fr_bf16_rows, fr_bf16_gemm, fr_int8_rows, fr_int8_gemm};
    printf("paths on this CPU: bf16 %s, int8 %s\n", fr_bf16_path_name(fr_bf16_path()),
           fr_int8_path_name(fr_int8_path()));
    if (fr_bf16_path() != fr_int8_path())
        printf("note: only one precision has its vector path here; the dispatched one covers it\n");
    fr_lowp_set_vector(0);
    if (fr_bf16_path() != FR_LOWP_PORTABLE || fr_int8_path() != FR_LOWP_PORTABLE)
        FAIL("fr_lowp_set_vector(0) left a vector path on");
    fr_lowp_set_vector(1);
    check_layouts();
    check_rows(paths, n_paths);
    check_edges(paths, n_paths);
    const int64_t Ks[] = {0, 1, 3, 17, 64, 255, 1024}, ns[] = {0, 1, 5, 16, 33, 100};
    const int64_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1000};
    int shapes = 0;
    for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ms / sizeof *ms; c++, shapes++)
                check_shape(paths, n_paths, ms[c], ns[b], Ks[a]);
    if (failures) {
        printf("lowp_check: %d mismatches\n", failures);
        return 1;
    }
    printf("lowp_check: %d shapes x {bf16, int8} x accumulate on/off x 2 column ranges, %d paths: all equal to the reference\n",
           shapes, n_paths);
    return 0;
}
