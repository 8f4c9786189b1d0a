/* The AVX-512 kernels (float32): the product over packed weights, the few-row
 * dot products, backward's blocked products over all steps, the packing and
 * the vector sigmoid and tanh.  Compiled once, each function with
 * target("avx512f"), and called only where fr_init found AVX-512 (packed.h).
 * No scratch of their own but fr_gemm_blocked's, which the caller lends; no
 * threads: each call runs on the thread that makes it. */
#include "packed.h"

#if FR_HAVE_PACKED
#include <immintrin.h>
#include <string.h>

#define FR_TARGET __attribute__((target("avx512f")))
#define FR_INLINE __attribute__((target("avx512f"), always_inline)) static inline

/* The lanes of the first `left` (>= 0) of sixteen floats. */
FR_INLINE __mmask16 fr_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* Pack B[k][c] = M[row0 + c][k] (B is the transpose of n rows of M, row stride
 * ldm): sixteen rows by sixteen k at a time, transposed in registers (rows past
 * n read as zeros, k past K masked off). */
FR_TARGET void
fr_pack_rows_avx512(float *dst, const float *M, int64_t ldm, int64_t row0, int64_t n, int64_t K)
{
    for (int64_t p = 0; p < fr_panels(n); p++) {
        float *panel = dst + p * FR_PANEL * K;
        int64_t width = n - p * FR_PANEL < FR_PANEL ? n - p * FR_PANEL : FR_PANEL;
        const float *src = M + (row0 + p * FR_PANEL) * ldm;
        for (int64_t k0 = 0; k0 < K; k0 += 16) {
            int64_t left = K - k0;
            __mmask16 km = fr_mask(left);
            __m512 r[16], t[16], u[16];
            for (int c = 0; c < 16; c++)
                r[c] = c < width ? _mm512_maskz_loadu_ps(km, src + c * ldm + k0) : _mm512_setzero_ps();
            /* per 128-bit lane L: u[4q + j] = element 4L + j of rows 4q .. 4q + 3 */
            for (int c = 0; c < 16; c += 2) {
                t[c] = _mm512_unpacklo_ps(r[c], r[c + 1]);
                t[c + 1] = _mm512_unpackhi_ps(r[c], r[c + 1]);
            }
            for (int q = 0; q < 4; q++) {
                __m512 lo0 = t[4 * q], hi0 = t[4 * q + 1], lo1 = t[4 * q + 2], hi1 = t[4 * q + 3];
                u[4 * q] = _mm512_shuffle_ps(lo0, lo1, 0x44);
                u[4 * q + 1] = _mm512_shuffle_ps(lo0, lo1, 0xEE);
                u[4 * q + 2] = _mm512_shuffle_ps(hi0, hi1, 0x44);
                u[4 * q + 3] = _mm512_shuffle_ps(hi0, hi1, 0xEE);
            }
            /* then the lanes: row k = 4L + j of the panel gathers lane L of u[j], u[4 + j], u[8 + j], u[12 + j] */
            for (int j = 0; j < 4; j++) {
                __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
                __m512 w0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
                __m512 v1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
                __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
                __m512 out[4] = {_mm512_shuffle_f32x4(v0, v1, 0x88), _mm512_shuffle_f32x4(w0, w1, 0x88),
                                 _mm512_shuffle_f32x4(v0, v1, 0xDD), _mm512_shuffle_f32x4(w0, w1, 0xDD)};
                for (int L = 0; L < 4; L++)
                    if (4 * L + j < left)
                        _mm512_storeu_ps(panel + (k0 + 4 * L + j) * FR_PANEL, out[L]);
            }
        }
    }
}

/* mr (<= 8) rows x two panels: c[r] = a(r, k) * B0/B1[k] summed over k, plus
 * row r of `add` (row stride ld_add: C itself to accumulate, 0 for one bias
 * row under every row) unless add is NULL; a(r, k) = A[r * ars + k * aks]
 * (rows of A as they lie: ars = lda, aks = 1).  With `ahead`, one cache line
 * from there every 2^shift k (two at every k with `both`, a compile-time
 * constant as mr is) is fetched into L2 on the way. */
FR_INLINE void
fr_micro_avx512(const int mr, int64_t K, const float *A, int64_t ars, int64_t aks,
                const float *B0, const float *B1, float *C, int64_t ldc, __mmask16 m0,
                __mmask16 m1, const float *add, int64_t ld_add, const char *ahead, int shift,
                const int both)
{
    __m512 c0[8], c1[8];
    for (int r = 0; r < mr; r++)
        c0[r] = c1[r] = _mm512_setzero_ps();
    /* The tile's lines of C are read (to add onto) or written after the last
     * k: fetched now, they arrive while the sums run.  Where C is megabytes
     * (an input product over many steps, backward's blocked products, which
     * add onto C at each block of k) they would otherwise come from L3 or
     * memory at the end of every tile. */
    for (int r = 0; r < mr; r++) {
        _mm_prefetch((const char *)(C + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + r * ldc + FR_PANEL), _MM_HINT_T0);
    }
    for (int64_t k = 0; k < K; k++) {
        if (ahead && both) { /* the next panels, into L2: two lines at every k */
            _mm_prefetch(ahead + k * 128, _MM_HINT_T1);
            _mm_prefetch(ahead + k * 128 + 64, _MM_HINT_T1);
        } else if (ahead && (k & ((1 << shift) - 1)) == 0) { /* one every 2^shift k */
            _mm_prefetch(ahead + (k >> shift) * 64, _MM_HINT_T1);
        }
        __m512 b0 = _mm512_loadu_ps(B0 + k * FR_PANEL);
        __m512 b1 = _mm512_loadu_ps(B1 + k * FR_PANEL);
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(A[r * ars + k * aks]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        float *row = C + r * ldc;
        if (add) {
            const float *extra = add + r * ld_add;
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, extra));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, extra + FR_PANEL));
        }
        _mm512_mask_storeu_ps(row, m0, c0[r]);
        _mm512_mask_storeu_ps(row + FR_PANEL, m1, c1[r]);
    }
}

/* Rows r .. r + mr (mr <= 8) of C against K rows of panels p and p + 1 of Bp
 * (B packed `depth` rows deep, n columns in all): fr_micro_avx512 with the
 * panels' masks (and its prefetch). */
FR_INLINE void
fr_panel_pair(int mr, int64_t K, const float *A, int64_t ars, int64_t aks, const float *Bp,
              int64_t depth, int64_t p, int64_t n, float *C, int64_t ldc, const float *add,
              int64_t ld_add, const char *ahead, int shift, const int both)
{
    const float *B0 = Bp + p * FR_PANEL * depth;
    int two = p + 1 < fr_panels(n);
    const float *B1 = two ? B0 + FR_PANEL * depth : B0;
    __mmask16 m0 = fr_mask(n - p * FR_PANEL), m1 = two ? fr_mask(n - (p + 1) * FR_PANEL) : 0;
    C += p * FR_PANEL;
    add = add ? add + p * FR_PANEL : NULL;
    switch (mr) {
    case 8: fr_micro_avx512(8, K, A, ars, aks, B0, B1, C, ldc, m0, m1, add, ld_add, ahead, shift, both); break;
    case 7: fr_micro_avx512(7, K, A, ars, aks, B0, B1, C, ldc, m0, m1, add, ld_add, ahead, shift, both); break;
    case 6: fr_micro_avx512(6, K, A, ars, aks, B0, B1, C, ldc, m0, m1, add, ld_add, ahead, shift, both); break;
    case 5: fr_micro_avx512(5, K, A, ars, aks, B0, B1, C, ldc, m0, m1, add, ld_add, ahead, shift, both); break;
    case 4: fr_micro_avx512(4, K, A, ars, aks, B0, B1, C, ldc, m0, m1, add, ld_add, ahead, shift, both); break;
    case 3: fr_micro_avx512(3, K, A, ars, aks, B0, B1, C, ldc, m0, m1, add, ld_add, ahead, shift, both); break;
    case 2: fr_micro_avx512(2, K, A, ars, aks, B0, B1, C, ldc, m0, m1, add, ld_add, ahead, shift, both); break;
    default: fr_micro_avx512(1, K, A, ars, aks, B0, B1, C, ldc, m0, m1, add, ld_add, ahead, shift, both); break;
    }
}

/* One row, four panels at once: enough independent sums to hide the FMA latency. */
FR_TARGET static void
fr_row_avx512(int64_t K, const float *a, const float *B, int64_t panels, float *C, int64_t n,
              const float *add)
{
    int64_t p = 0;
    for (; p + 4 <= panels; p += 4) {
        const float *b = B + p * FR_PANEL * K;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int64_t k = 0; k < K; k++) {
            __m512 ak = _mm512_set1_ps(a[k]);
            s0 = _mm512_fmadd_ps(ak, _mm512_loadu_ps(b + k * FR_PANEL), s0);
            s1 = _mm512_fmadd_ps(ak, _mm512_loadu_ps(b + FR_PANEL * K + k * FR_PANEL), s1);
            s2 = _mm512_fmadd_ps(ak, _mm512_loadu_ps(b + 2 * FR_PANEL * K + k * FR_PANEL), s2);
            s3 = _mm512_fmadd_ps(ak, _mm512_loadu_ps(b + 3 * FR_PANEL * K + k * FR_PANEL), s3);
        }
        __m512 s[4] = {s0, s1, s2, s3};
        for (int q = 0; q < 4; q++) {
            int64_t col = (p + q) * FR_PANEL, left = n - col;
            __mmask16 m = fr_mask(left);
            if (add)
                s[q] = _mm512_add_ps(s[q], _mm512_maskz_loadu_ps(m, add + col));
            _mm512_mask_storeu_ps(C + col, m, s[q]);
        }
    }
    for (; p < panels; p++) {
        const float *b = B + p * FR_PANEL * K;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        int64_t k = 0;
        for (; k + 2 <= K; k += 2) {
            s0 = _mm512_fmadd_ps(_mm512_set1_ps(a[k]), _mm512_loadu_ps(b + k * FR_PANEL), s0);
            s1 = _mm512_fmadd_ps(_mm512_set1_ps(a[k + 1]), _mm512_loadu_ps(b + (k + 1) * FR_PANEL), s1);
        }
        if (k < K)
            s0 = _mm512_fmadd_ps(_mm512_set1_ps(a[k]), _mm512_loadu_ps(b + k * FR_PANEL), s0);
        s0 = _mm512_add_ps(s0, s1);
        int64_t col = p * FR_PANEL, left = n - col;
        __mmask16 m = fr_mask(left);
        if (add)
            s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m, add + col));
        _mm512_mask_storeu_ps(C + col, m, s0);
    }
}

/* Rows r < mr (<= 4) of A against rows q < nb (<= 4) of B: mr x nb dot
 * products side by side, sixteen k at a time, so that each vector of B read
 * serves every row of A and each of A every row of B (a masked tail for the
 * last k). */
FR_INLINE void
fr_dot_tile(const int mr, const int nb, int64_t K, const float *A, int64_t lda, const float *B,
            int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    __m512 s[4][4];
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < nb; q++)
            s[r][q] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 b[4];
        for (int q = 0; q < nb; q++)
            b[q] = _mm512_loadu_ps(B + q * ldb + k);
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_loadu_ps(A + r * lda + k);
            for (int q = 0; q < nb; q++)
                s[r][q] = _mm512_fmadd_ps(a, b[q], s[r][q]);
        }
    }
    if (k < K) {
        __mmask16 m = fr_mask(K - k);
        __m512 b[4];
        for (int q = 0; q < nb; q++)
            b[q] = _mm512_maskz_loadu_ps(m, B + q * ldb + k);
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_maskz_loadu_ps(m, A + r * lda + k);
            for (int q = 0; q < nb; q++)
                s[r][q] = _mm512_fmadd_ps(a, b[q], s[r][q]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < nb; q++) {
            float dot = _mm512_reduce_add_ps(s[r][q]);
            C[r * ldc + q] = accumulate ? C[r * ldc + q] + dot : dot;
        }
}

/* fr_dot_tile for nb rows of B and every row of A, four at a time. */
FR_INLINE void
fr_dot_rows_of(const int nb, int64_t m, int64_t K, const float *A, int64_t lda, const float *B,
               int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    int64_t r = 0;
    for (; r + 4 <= m; r += 4)
        fr_dot_tile(4, nb, K, A + r * lda, lda, B, ldb, C + r * ldc, ldc, accumulate);
    switch (m - r) {
    case 3: fr_dot_tile(3, nb, K, A + r * lda, lda, B, ldb, C + r * ldc, ldc, accumulate); break;
    case 2: fr_dot_tile(2, nb, K, A + r * lda, lda, B, ldb, C + r * ldc, ldc, accumulate); break;
    case 1: fr_dot_tile(1, nb, K, A + r * lda, lda, B, ldb, C + r * ldc, ldc, accumulate); break;
    default: break;
    }
}

/* C (m x n, ldc) = A (m x K, lda) B^T, or += with accumulate, for a few rows of A
 * and B (n x K, ldb) as it lies: tiles of four rows of B by up to four of A,
 * each row of B streamed once for all m rows (from L1 for the rows past the
 * first four).  For a few rows the product is all memory traffic, and a BLAS
 * GEMM would first copy B to its packed layout. */
FR_TARGET void
fr_dot_rows_avx512(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    int64_t j = 0;
    for (; j + 4 <= n; j += 4)
        fr_dot_rows_of(4, m, K, A, lda, B + j * ldb, ldb, C + j, ldc, accumulate);
    switch (n - j) {
    case 3: fr_dot_rows_of(3, m, K, A, lda, B + j * ldb, ldb, C + j, ldc, accumulate); break;
    case 2: fr_dot_rows_of(2, m, K, A, lda, B + j * ldb, ldb, C + j, ldc, accumulate); break;
    case 1: fr_dot_rows_of(1, m, K, A, lda, B + j * ldb, ldb, C + j, ldc, accumulate); break;
    default: break;
    }
}

/* The blocking of the packed product: packed.h.  From this many floats
 * (4 MB, of a shared L3) the weight comes from memory at every step even
 * when warm: a lone group of rows, which runs alone over each pair of
 * panels, fetches all of the next pair, not half. */
#define FR_FETCH_ALL_FLOATS (1 << 20)

/* K rows of B from row k0 (of `depth`), against A's columns from k0. */
FR_TARGET static void
packed_block(int64_t m, int64_t n, int64_t K, int64_t depth, int64_t k0, const float *A,
             int64_t lda, const float *Bp, float *C, int64_t ldc, const float *add, int64_t ld_add)
{
    int64_t panels = fr_panels(n), mb = FR_A_BLOCK_FLOATS / K / 8 * 8;
    mb = mb < 8 ? 8 : mb;
    A += k0;
    Bp += k0 * FR_PANEL;
    for (int64_t m0 = 0; m0 < m; m0 += mb) {
        int64_t m1 = m0 + mb < m ? m0 + mb : m, groups = (m1 - m0 + 7) / 8;
        /* While the row groups run over a pair of panels (from L2 after the
         * first), the next pair (its 2K lines, whole panels only) is fetched
         * from memory, a share per group: a weight too big for L2 streams in
         * at the pace of the products, not at the first group's stall. */
        int shift = 0;
        while ((2 << shift) < groups) /* 2^shift >= groups / 2: at most the 2K lines */
            shift++;
        int ahead = K == depth && n * K >= FR_FETCH_AHEAD_FLOATS;
        int all = groups == 1 && n * K >= FR_FETCH_ALL_FLOATS;
        for (int64_t p = 0; p < panels; p += 2) {
            const char *next = ahead && p + 2 < panels
                                   ? (const char *)(Bp + (p + 2) * FR_PANEL * depth) : NULL;
            for (int64_t r = m0, g = 0; r < m1; r += 8, g++) {
                int mr = m1 - r < 8 ? (int)(m1 - r) : 8;
                const float *add_r = add ? add + r * ld_add : NULL;
                /* (a copy for each: the one without prefetches has none to test for) */
                if (next && all)
                    fr_panel_pair(mr, K, A + r * lda, lda, 1, Bp, depth, p, n, C + r * ldc, ldc,
                                  add_r, ld_add, next, 0, 1);
                else if (next)
                    fr_panel_pair(mr, K, A + r * lda, lda, 1, Bp, depth, p, n, C + r * ldc, ldc,
                                  add_r, ld_add, next + g * (K >> shift) * 64, shift, 0);
                else
                    fr_panel_pair(mr, K, A + r * lda, lda, 1, Bp, depth, p, n, C + r * ldc, ldc,
                                  add_r, ld_add, NULL, 0, 0);
            }
        }
    }
}

/* C (m x n, ldc) = A (m x K, lda) B, plus `add` as fr_micro_avx512 takes it. */
FR_TARGET void
fr_packed_gemm_avx512(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda, const float *Bp,
            float *C, int64_t ldc, const float *add, int64_t ld_add)
{
    if (m == 1) {
        fr_row_avx512(K, A, Bp, fr_panels(n), C, n, add);
        return;
    }
    if (K <= FR_K_DEEP || m <= FR_FEW_ROWS) {
        packed_block(m, n, K > 0 ? K : 1, K, 0, A, lda, Bp, C, ldc, add, ld_add);
        return;
    }
    for (int64_t k0 = 0; k0 < K; k0 += FR_K_BLOCK) {
        int64_t kc = K - k0 < FR_K_BLOCK ? K - k0 : FR_K_BLOCK;
        packed_block(m, n, kc, K, k0, A, lda, Bp, C, ldc, k0 ? C : add, k0 ? ldc : ld_add);
    }
}

/* C (m x n, ldc) = op(A) B, or += with accumulate, for products with many rows
 * and a long shared dimension (backward's sums over all timesteps): op(A) is A
 * (m x K, row stride lda), or with a_trans the transpose of A (K x m); B
 * (K x n, row stride ldb) as it lies.  Per block of steps, B is packed into
 * panels, and a transposed A, FR_MC of its columns at a time, into groups of
 * sixteen columns side by side (`scratch`, fr_blocked_scratch(n) floats): its
 * rows are read in order, where eight columns read across FR_KC rows a
 * power-of-two apart would miss the cache on every row.  An A that is not
 * transposed is read in place, eight rows of one block at a time. */
FR_TARGET void
fr_gemm_blocked_avx512(int a_trans, int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
                const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate,
                float *scratch)
{
    int64_t panels = fr_panels(n);
    float *Bp = scratch, *Ap = scratch + fr_packed_size(FR_KC, n);
    if (K == 0 && !accumulate)
        for (int64_t r = 0; r < m; r++)
            memset(C + r * ldc, 0, (size_t)n * sizeof(float));
    for (int64_t k0 = 0; k0 < K; k0 += FR_KC) {
        int64_t kc = K - k0 < FR_KC ? K - k0 : FR_KC;
        int acc = accumulate || k0 > 0;
        fr_pack_cols(Bp, B + k0 * ldb, ldb, 0, n, kc);
        for (int64_t m0 = 0; m0 < m; m0 += FR_MC) {
            int64_t mb = m - m0 < FR_MC ? m - m0 : FR_MC;
            if (a_trans)
                for (int64_t k = 0; k < kc; k++)
                    for (int64_t g = 0; g < mb; g += FR_PANEL) {
                        __mmask16 mw = fr_mask(mb - g);
                        _mm512_mask_storeu_ps(Ap + g * kc + FR_PANEL * k, mw,
                                              _mm512_maskz_loadu_ps(mw, A + (k0 + k) * lda + m0 + g));
                    }
            for (int64_t r = m0; r < m0 + mb; r += 8) {
                int mr = m0 + mb - r >= 8 ? 8 : (int)(m0 + mb - r);
                const float *Ar = a_trans ? Ap + (r - m0) / FR_PANEL * FR_PANEL * kc + (r - m0) % FR_PANEL
                                          : A + r * lda + k0;
                float *Cr = C + r * ldc;
                for (int64_t p = 0; p < panels; p += 2) {
                    if (a_trans) /* packed: step k's values FR_PANEL apart */
                        fr_panel_pair(mr, kc, Ar, 1, FR_PANEL, Bp, kc, p, n, Cr, ldc, acc ? Cr : NULL, ldc, NULL, 0, 0);
                    else
                        fr_panel_pair(mr, kc, Ar, lda, 1, Bp, kc, p, n, Cr, ldc, acc ? Cr : NULL, ldc, NULL, 0, 0);
                }
            }
        }
    }
}

/* The float sigmoid and tanh sixteen at a time, for CPUs with AVX-512: fr_exp's
 * steps as fused multiply-adds, and each division as a 14-bit reciprocal
 * estimate refined by one Newton step (within an ulp of the quotient) in
 * place of a vector division, which perf showed as the gate pass's hot spot. */
FR_INLINE __m512 fr_exp16(__m512 x)
{
    /* clamp with x second: max/min return their second operand for NaN */
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-88.0f), x));
    const __m512 shifter = _mm512_set1_ps(12582912.0f);
    __m512 kf = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shifter);
    __m512i kbits = _mm512_castps_si512(kf);
    kf = _mm512_sub_ps(kf, shifter);
    __m512 r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(1.42860682030941723e-06f), r);
    __m512 p = _mm512_set1_ps(1.98412698e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.38888889e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.33333333e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.16666667e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.66666667e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i sbits = _mm512_slli_epi32(
        _mm512_add_epi32(kbits, _mm512_set1_epi32((int)(127u - 0x4B400000u))), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(sbits));
}

FR_INLINE __m512 fr_recip16(__m512 d)
{
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}

FR_INLINE __m512 fr_sigmoid16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    return fr_recip16(_mm512_add_ps(one, fr_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

FR_INLINE __m512 fr_tanh16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512i xi = _mm512_castps_si512(x);
    __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 q = _mm512_set1_ps(-8.86323552e-3f);
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(2.18694885e-2f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-5.39682540e-2f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(1.33333333e-1f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-3.33333333e-1f));
    __m512 small = _mm512_mul_ps(x, _mm512_fmadd_ps(q, x2, one)); /* keeps tanh(-0) = -0 */
    __m512 e = fr_exp16(_mm512_mul_ps(_mm512_set1_ps(-2.0f), ax));
    __m512 big = _mm512_mul_ps(_mm512_sub_ps(one, e), fr_recip16(_mm512_add_ps(one, e)));
    big = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(big),
                                              _mm512_and_si512(xi, sign)));
    __mmask16 near0 = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.25f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(near0, big, small);
}

/* out[j] = sigmoid(pre[j]) or tanh(pre[j]) for j < n. */
FR_TARGET void fr_act_avx512(int tanh_, const float *pre, float *out, int64_t n)
{
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = fr_mask(n - j);
        __m512 x = _mm512_maskz_loadu_ps(m, pre + j);
        _mm512_mask_storeu_ps(out + j, m, tanh_ ? fr_tanh16(x) : fr_sigmoid16(x));
    }
}
/* One row of the default LSTM's step for n units, sixteen at a time:
 * i, f, o = sigmoid, g = tanh of the pre-activations (the four gates `stride`
 * apart from pre), c = f c + i g in place, h = o tanh(c).  The same operations
 * in the same order as the gate pass over separate vectors, so the same bits. */
FR_TARGET void fr_lstm_gates_avx512(int64_t n, const float *pre, int64_t stride, float *c,
                                    float *h)
{
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = fr_mask(n - j);
        const float *p = pre + j;
        __m512 vi = fr_sigmoid16(_mm512_maskz_loadu_ps(m, p));
        __m512 vf = fr_sigmoid16(_mm512_maskz_loadu_ps(m, p + stride));
        __m512 vg = fr_tanh16(_mm512_maskz_loadu_ps(m, p + 2 * stride));
        __m512 vo = fr_sigmoid16(_mm512_maskz_loadu_ps(m, p + 3 * stride));
        __m512 cn = _mm512_add_ps(_mm512_mul_ps(vf, _mm512_maskz_loadu_ps(m, c + j)),
                                  _mm512_mul_ps(vi, vg));
        _mm512_mask_storeu_ps(c + j, m, cn);
        _mm512_mask_storeu_ps(h + j, m, _mm512_mul_ps(vo, fr_tanh16(cn)));
    }
}
#endif
