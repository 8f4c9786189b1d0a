/* The AVX2 kernels (float32, with FMA): the same products as avx512.c over
 * the same panels, for CPUs without AVX-512.  Sixteen ymm registers of eight
 * floats shape them: the product's tile is up to six rows by one panel (two
 * registers a row) or three rows by two panels, where avx512.c's is eight
 * rows by two panels.  Compiled once, each function with target("avx2,fma"),
 * and called only where fr_init found both (packed.h).  No scratch of their
 * own but fr_gemm_blocked's, which the caller lends; no threads. */
#include "packed.h"

#if FR_HAVE_PACKED
#include <immintrin.h>
#include <string.h>

#define FR_TARGET __attribute__((target("avx2,fma")))
#define FR_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

/* Rows of the product's tile: 6 x 16 (12 sums), or 3 x 32 from three rows down. */
#define FR_MR 6

/* The lanes of the first `left` of eight floats, as maskload and maskstore take them. */
FR_INLINE __m256i fr_mask8(int64_t left)
{
    int32_t l = left < 0 ? 0 : left > 8 ? 8 : (int32_t)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Eight floats from p, of which the first `left` are there (the rest read as 0). */
FR_INLINE __m256 fr_load8(const float *p, int64_t left)
{
    return left >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, fr_mask8(left));
}

/* The first `left` of the eight floats of v to p. */
FR_INLINE void fr_store8(float *p, int64_t left, __m256 v)
{
    if (left >= 8)
        _mm256_storeu_ps(p, v);
    else if (left > 0)
        _mm256_maskstore_ps(p, fr_mask8(left), v);
}

/* r[k] = column k of the eight rows r[0..7] (an 8 x 8 transpose in registers). */
FR_INLINE void fr_transpose8(__m256 r[8])
{
    __m256 t[8], s[8];
    for (int c = 0; c < 8; c += 2) {
        t[c] = _mm256_unpacklo_ps(r[c], r[c + 1]);     /* per lane: a0 b0 a1 b1 */
        t[c + 1] = _mm256_unpackhi_ps(r[c], r[c + 1]); /* per lane: a2 b2 a3 b3 */
    }
    for (int q = 0; q < 8; q += 4) { /* per lane: element j of rows q .. q + 3 */
        s[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
        s[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xEE);
        s[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
        s[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) { /* then the lanes: rows 0-3 from s[j], 4-7 from s[4 + j] */
        r[j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x31);
    }
}

/* Pack B[k][c] = M[row0 + c][k] (B is the transpose of n rows of M, row stride
 * ldm): eight rows by eight k at a time, transposed in registers (rows past n
 * read as zeros, k past K masked off), both halves of a panel's eight lines
 * one after the other, while the lines are in L1. */
FR_TARGET void
fr_pack_rows_avx2(float *dst, const float *M, int64_t ldm, int64_t row0, int64_t n, int64_t K)
{
    for (int64_t p = 0; p < fr_panels(n); p++) {
        float *panel = dst + p * FR_PANEL * K;
        for (int64_t k0 = 0; k0 < K; k0 += 8) {
            int64_t left = K - k0;
            for (int half = 0; half < 2; half++) {
                int64_t first = p * FR_PANEL + 8 * half, width = n - first;
                const float *src = M + (row0 + first) * ldm + k0;
                __m256 r[8];
                for (int c = 0; c < 8; c++)
                    r[c] = c < width ? fr_load8(src + c * ldm, left) : _mm256_setzero_ps();
                fr_transpose8(r);
                if (left >= 8)
                    for (int k = 0; k < 8; k++)
                        _mm256_storeu_ps(panel + (k0 + k) * FR_PANEL + 8 * half, r[k]);
                else
                    for (int k = 0; k < left; k++)
                        _mm256_storeu_ps(panel + (k0 + k) * FR_PANEL + 8 * half, r[k]);
            }
        }
    }
}

/* The first `width` columns of a tile's row r: the sums v0 .. v3 (np of them
 * in pairs), plus the row of `extra` unless NULL. */
FR_INLINE void fr_tile_row(const int np, float *row, const float *extra, int64_t width, __m256 v0,
                           __m256 v1, __m256 v2, __m256 v3)
{
    __m256 v[4] = {v0, v1, v2, v3};
    for (int q = 0; q < 2 * np; q++) {
        int64_t left = width - 8 * q;
        if (extra)
            v[q] = _mm256_add_ps(v[q], fr_load8(extra + 8 * q, left));
        fr_store8(row + 8 * q, left, v[q]);
    }
}

/* mr rows x np (1 or 2) panels, mr * np <= 6: c[r] = a(r, k) * B0/B1[k] summed
 * over k, plus row r of `add` (row stride ld_add: C itself to accumulate, 0
 * for one bias row under every row) unless add is NULL, into the first
 * `width` columns of C's rows; a(r, k) = A[r * ars + k * aks].  With `ahead`,
 * one cache line from there every 2^shift k is fetched into L2 on the way.
 * The sums are named, one per row and eight columns (c<row><block>): in an
 * array gcc stores them back on every k. */
FR_INLINE void
fr_micro_avx2(const int mr, const int np, int64_t K, const float *A, int64_t ars, int64_t aks,
              const float *B0, const float *B1, float *C, int64_t ldc, int64_t width,
              const float *add, int64_t ld_add, const char *ahead, int shift)
{
    const __m256 z = _mm256_setzero_ps();
    __m256 c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
    __m256 c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c40 = z, c41 = z;
    __m256 c50 = z, c51 = z;
    for (int64_t k = 0; k < K; k++) {
        if (ahead && (k & ((1 << shift) - 1)) == 0) /* a line of the next panels, into L2 */
            _mm_prefetch(ahead + (k >> shift) * 64, _MM_HINT_T1);
        const float *a = A + k * aks;
        __m256 b0 = _mm256_loadu_ps(B0 + k * FR_PANEL), b1 = _mm256_loadu_ps(B0 + k * FR_PANEL + 8);
        if (np == 2) {
            __m256 b2 = _mm256_loadu_ps(B1 + k * FR_PANEL), b3 = _mm256_loadu_ps(B1 + k * FR_PANEL + 8);
#define FR_ROW4(r)                                                                               \
    if (mr > r) {                                                                                \
        __m256 ar = _mm256_broadcast_ss(a + r * ars);                                            \
        c##r##0 = _mm256_fmadd_ps(ar, b0, c##r##0);                                              \
        c##r##1 = _mm256_fmadd_ps(ar, b1, c##r##1);                                              \
        c##r##2 = _mm256_fmadd_ps(ar, b2, c##r##2);                                              \
        c##r##3 = _mm256_fmadd_ps(ar, b3, c##r##3);                                              \
    }
            FR_ROW4(0) FR_ROW4(1) FR_ROW4(2)
#undef FR_ROW4
        } else {
#define FR_ROW2(r)                                                                               \
    if (mr > r) {                                                                                \
        __m256 ar = _mm256_broadcast_ss(a + r * ars);                                            \
        c##r##0 = _mm256_fmadd_ps(ar, b0, c##r##0);                                              \
        c##r##1 = _mm256_fmadd_ps(ar, b1, c##r##1);                                              \
    }
            FR_ROW2(0) FR_ROW2(1) FR_ROW2(2) FR_ROW2(3) FR_ROW2(4) FR_ROW2(5)
#undef FR_ROW2
        }
    }
#define FR_STORE(r, v2, v3)                                                                      \
    if (mr > r)                                                                                  \
        fr_tile_row(np, C + r * ldc, add ? add + r * ld_add : NULL, width, c##r##0, c##r##1, v2, v3);
    FR_STORE(0, c02, c03) FR_STORE(1, c12, c13) FR_STORE(2, c22, c23)
    FR_STORE(3, z, z) FR_STORE(4, z, z) FR_STORE(5, z, z)
#undef FR_STORE
}

/* Rows r .. r + mr (mr <= FR_MR) of C against K rows of panels p and p + 1
 * of Bp (B packed `depth` rows deep, n columns in all): fr_micro_avx2 on both
 * panels at once for up to three rows, one after the other for more (the
 * prefetch goes with the first).  `half` 0 or 1 does only the first or the
 * second of those (the first both for up to three rows), FR_BOTH both. */
#define FR_BOTH 2
FR_INLINE void
fr_panel_pair(int mr, int64_t K, const float *A, int64_t ars, int64_t aks, const float *Bp,
              int64_t depth, int64_t p, int64_t n, float *C, int64_t ldc, const float *add,
              int64_t ld_add, const char *ahead, int shift, int half)
{
    const float *B0 = Bp + p * FR_PANEL * depth, *B1 = B0 + FR_PANEL * depth;
    int two = p + 1 < fr_panels(n);
    int64_t width = n - p * FR_PANEL;
    C += p * FR_PANEL;
    add = add ? add + p * FR_PANEL : NULL;
#define FR_MICRO(rows, panels, b, col, w, pf)                                                    \
    fr_micro_avx2(rows, panels, K, A, ars, aks, b, b + FR_PANEL * depth, C + (col), ldc, w,     \
                  add ? add + (col) : NULL, ld_add, pf, shift)
    if (two && mr <= 3) {
        if (half == 1) { /* done with the first: only its share of the fetch */
            for (int64_t k = 0; ahead && k < K; k += (int64_t)1 << shift)
                _mm_prefetch(ahead + (k >> shift) * 64, _MM_HINT_T1);
            return;
        }
        switch (mr) {
        case 3: FR_MICRO(3, 2, B0, 0, width, ahead); break;
        case 2: FR_MICRO(2, 2, B0, 0, width, ahead); break;
        default: FR_MICRO(1, 2, B0, 0, width, ahead); break;
        }
        return;
    }
    for (int q = half == 1; q < (half == 0 ? 1 : 1 + two); q++) {
        const float *b = q ? B1 : B0;
        const char *pf = q == (half == 1) ? ahead : NULL;
        int64_t col = q * FR_PANEL, w = width - col;
        switch (mr) {
        case 6: FR_MICRO(6, 1, b, col, w, pf); break;
        case 5: FR_MICRO(5, 1, b, col, w, pf); break;
        case 4: FR_MICRO(4, 1, b, col, w, pf); break;
        case 3: FR_MICRO(3, 1, b, col, w, pf); break;
        case 2: FR_MICRO(2, 1, b, col, w, pf); break;
        default: FR_MICRO(1, 1, b, col, w, pf); break;
        }
    }
#undef FR_MICRO
}

/* One row, four panels at once: eight independent sums hide the FMA latency. */
FR_TARGET static void
fr_row_avx2(int64_t K, const float *a, const float *B, int64_t panels, float *C, int64_t n,
            const float *add)
{
    int64_t p = 0;
    for (; p + 4 <= panels; p += 4) {
        const float *b = B + p * FR_PANEL * K;
        __m256 s[8];
        for (int q = 0; q < 8; q++)
            s[q] = _mm256_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            __m256 ak = _mm256_broadcast_ss(a + k);
            for (int q = 0; q < 8; q++)
                s[q] = _mm256_fmadd_ps(ak, _mm256_loadu_ps(b + (q / 2) * FR_PANEL * K + k * FR_PANEL + 8 * (q % 2)), s[q]);
        }
        for (int q = 0; q < 8; q++) {
            int64_t col = p * FR_PANEL + 8 * q, left = n - col;
            if (add)
                s[q] = _mm256_add_ps(s[q], fr_load8(add + col, left));
            fr_store8(C + col, left, s[q]);
        }
    }
    for (; p < panels; p++) {
        const float *b = B + p * FR_PANEL * K;
        __m256 s[4];
        for (int q = 0; q < 4; q++)
            s[q] = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 2 <= K; k += 2)
            for (int q = 0; q < 4; q++)
                s[q] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + k + q / 2),
                                       _mm256_loadu_ps(b + (k + q / 2) * FR_PANEL + 8 * (q % 2)), s[q]);
        if (k < K)
            for (int q = 0; q < 2; q++)
                s[q] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + k),
                                       _mm256_loadu_ps(b + k * FR_PANEL + 8 * q), s[q]);
        for (int q = 0; q < 2; q++) {
            int64_t col = p * FR_PANEL + 8 * q, left = n - col;
            __m256 v = _mm256_add_ps(s[q], s[q + 2]);
            if (add)
                v = _mm256_add_ps(v, fr_load8(add + col, left));
            fr_store8(C + col, left, v);
        }
    }
}

/* The sums of v[0] .. v[7], in that order, as one vector. */
FR_INLINE __m256 fr_sums8(const __m256 v[8])
{
    __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    /* per lane: the lane's sums of v[0..3] (u0) and v[4..7] (u1) */
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* m rows of A against nj rows of B (m * nj <= 12): C[r][j] = A row r . B row j. */
FR_INLINE void
fr_dot_block(const int m, const int nj, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    __m256 s[4][8];
    for (int r = 0; r < m; r++)
        for (int j = 0; j < nj; j++)
            s[r][j] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 a[4];
        for (int r = 0; r < m; r++)
            a[r] = _mm256_loadu_ps(A + r * lda + k);
        for (int j = 0; j < nj; j++) {
            __m256 b = _mm256_loadu_ps(B + j * ldb + k);
            for (int r = 0; r < m; r++)
                s[r][j] = _mm256_fmadd_ps(a[r], b, s[r][j]);
        }
    }
    if (k < K) { /* the last K % 8, masked */
        __m256 a[4];
        for (int r = 0; r < m; r++)
            a[r] = fr_load8(A + r * lda + k, K - k);
        for (int j = 0; j < nj; j++) {
            __m256 b = fr_load8(B + j * ldb + k, K - k);
            for (int r = 0; r < m; r++)
                s[r][j] = _mm256_fmadd_ps(a[r], b, s[r][j]);
        }
    }
    for (int r = 0; r < m; r++) {
        __m256 v[8];
        for (int j = 0; j < 8; j++)
            v[j] = j < nj ? s[r][j] : _mm256_setzero_ps();
        float dots[8];
        _mm256_storeu_ps(dots, fr_sums8(v));
        for (int j = 0; j < nj; j++)
            C[r * ldc + j] = accumulate ? C[r * ldc + j] + dots[j] : dots[j];
    }
}

/* C (m x n, ldc) = A (m x K, lda) B^T, or += with accumulate, for a few rows of A
 * and B (n x K, ldb) as it lies: up to four rows of A against eight rows of B
 * (one row of A), four (two or three) or two (four) at a time, each row of B
 * streamed once for all of them, their sums added across lanes at the end. */
FR_TARGET void
fr_dot_rows_avx2(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    for (int64_t r = 0; r < m; r += 4) {
        int rows = m - r < 4 ? (int)(m - r) : 4, step = rows == 1 ? 8 : rows == 4 ? 2 : 4;
        const float *Ar = A + r * lda;
        float *Cr = C + r * ldc;
        for (int64_t j = 0; j < n; j += step) {
            int nj = n - j < step ? (int)(n - j) : step;
            const float *Bj = B + j * ldb;
#define FR_DOT(mm, jj) fr_dot_block(mm, jj, K, Ar, lda, Bj, ldb, Cr + j, ldc, accumulate)
            if (nj == step) {
                switch (rows) {
                case 1: FR_DOT(1, 8); break;
                case 2: FR_DOT(2, 4); break;
                case 3: FR_DOT(3, 4); break;
                default: FR_DOT(4, 2); break;
                }
            } else {
                for (int jj = 0; jj < nj; jj++) {
                    const float *Bjj = Bj + jj * ldb;
                    for (int rr = 0; rr < rows; rr++)
                        fr_dot_block(1, 1, K, Ar + rr * lda, lda, Bjj, ldb, Cr + rr * ldc + j + jj,
                                     ldc, accumulate);
                }
            }
#undef FR_DOT
        }
    }
}

/* K rows of B from row k0 (of `depth`), against A's columns from k0. */
FR_TARGET static void
packed_block(int64_t m, int64_t n, int64_t K, int64_t depth, int64_t k0, const float *A,
             int64_t lda, const float *Bp, float *C, int64_t ldc, const float *add, int64_t ld_add)
{
    int64_t panels = fr_panels(n), mb = FR_A_BLOCK_FLOATS / K / FR_MR * FR_MR;
    mb = mb < FR_MR ? FR_MR : mb;
    A += k0;
    Bp += k0 * FR_PANEL;
    for (int64_t m0 = 0; m0 < m; m0 += mb) {
        int64_t m1 = m0 + mb < m ? m0 + mb : m, groups = (m1 - m0 + FR_MR - 1) / FR_MR;
        /* The row groups run over one panel (16 K floats) at a time, so that
         * it and a tile's rows of A stay in a 32 KB L1 (up to three rows take
         * both panels at once).  Meanwhile the next pair's 2K lines are
         * fetched, K in each half, a share of them by each of the first
         * 2^shift groups (2^shift <= groups). */
        int shift = 0;
        while ((2 << shift) <= groups)
            shift++;
        int ahead = K == depth && n * K >= FR_FETCH_AHEAD_FLOATS;
        for (int64_t p = 0; p < panels; p += 2) {
            const char *next = ahead && p + 2 < panels
                                   ? (const char *)(Bp + (p + 2) * FR_PANEL * depth) : NULL;
            for (int half = 0; half < 2; half++)
                for (int64_t r = m0, g = 0; r < m1; r += FR_MR, g++) {
                    int mr = m1 - r < FR_MR ? (int)(m1 - r) : FR_MR;
                    const float *add_r = add ? add + r * ld_add : NULL;
                    if (next && g < (1 << shift))
                        fr_panel_pair(mr, K, A + r * lda, lda, 1, Bp, depth, p, n, C + r * ldc,
                                      ldc, add_r, ld_add, next + (half * K + g * (K >> shift)) * 64,
                                      shift, half);
                    else
                        fr_panel_pair(mr, K, A + r * lda, lda, 1, Bp, depth, p, n, C + r * ldc,
                                      ldc, add_r, ld_add, NULL, 0, half);
                }
        }
    }
}

/* C (m x n, ldc) = A (m x K, lda) B, plus row r of `add` (row stride ld_add)
 * under row r unless add is NULL. */
FR_TARGET void
fr_packed_gemm_avx2(int64_t m, int64_t n, int64_t K, const float *A, int64_t lda, const float *Bp,
                    float *C, int64_t ldc, const float *add, int64_t ld_add)
{
    if (m == 1) {
        fr_row_avx2(K, A, Bp, fr_panels(n), C, n, add);
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

/* C (m x n, ldc) = op(A) B, or += with accumulate (avx512.c's fr_gemm_blocked):
 * per block of FR_KC steps B packed into panels and a transposed A, FR_MC
 * columns at a time, into groups of sixteen columns side by side, whose rows
 * run in tiles of six, six and four; an A as it lies in tiles of six rows. */
FR_TARGET void
fr_gemm_blocked_avx2(int a_trans, int64_t m, int64_t n, int64_t K, const float *A, int64_t lda,
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
                        int64_t cols = mb - g < FR_PANEL ? mb - g : FR_PANEL;
                        memcpy(Ap + g * kc + FR_PANEL * k, A + (k0 + k) * lda + m0 + g,
                               (size_t)cols * sizeof(float));
                    }
            for (int64_t r = m0; r < m0 + mb;) {
                /* a tile stays inside its group of sixteen columns of a packed A */
                int64_t end = a_trans ? m0 + ((r - m0) / FR_PANEL + 1) * FR_PANEL : m0 + mb;
                end = end < m0 + mb ? end : m0 + mb;
                int mr = end - r >= FR_MR ? FR_MR : (int)(end - r);
                const float *Ar = a_trans ? Ap + (r - m0) / FR_PANEL * FR_PANEL * kc + (r - m0) % FR_PANEL
                                          : A + r * lda + k0;
                float *Cr = C + r * ldc;
                for (int64_t p = 0; p < panels; p += 2) {
                    if (a_trans) /* packed: step k's values FR_PANEL apart */
                        fr_panel_pair(mr, kc, Ar, 1, FR_PANEL, Bp, kc, p, n, Cr, ldc, acc ? Cr : NULL,
                                      ldc, NULL, 0, FR_BOTH);
                    else
                        fr_panel_pair(mr, kc, Ar, lda, 1, Bp, kc, p, n, Cr, ldc, acc ? Cr : NULL,
                                      ldc, NULL, 0, FR_BOTH);
                }
                r += mr;
            }
        }
    }
}

/* The float sigmoid and tanh eight at a time: avx512.c's steps (fr_exp's
 * polynomial as fused multiply-adds; each division a division: a 12-bit
 * reciprocal estimate and one Newton step miss the quotient by an ulp). */
FR_INLINE __m256 fr_exp8(__m256 x)
{
    /* clamp with x second: max/min return their second operand for NaN */
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-88.0f), x));
    const __m256 shifter = _mm256_set1_ps(12582912.0f);
    __m256 kf = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), shifter);
    __m256i kbits = _mm256_castps_si256(kf);
    kf = _mm256_sub_ps(kf, shifter);
    __m256 r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(1.42860682030941723e-06f), r);
    __m256 p = _mm256_set1_ps(1.98412698e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.38888889e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.33333333e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.16666667e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.66666667e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i sbits = _mm256_slli_epi32(
        _mm256_add_epi32(kbits, _mm256_set1_epi32((int)(127u - 0x4B400000u))), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(sbits));
}

FR_INLINE __m256 fr_recip8(__m256 d)
{
    return _mm256_div_ps(_mm256_set1_ps(1.0f), d); /* a 12-bit estimate and one Newton step miss by an ulp */
}

FR_INLINE __m256 fr_sigmoid8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    return fr_recip8(_mm256_add_ps(one, fr_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

FR_INLINE __m256 fr_tanh8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_andnot_ps(sign, x);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 q = _mm256_set1_ps(-8.86323552e-3f);
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(2.18694885e-2f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-5.39682540e-2f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(1.33333333e-1f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-3.33333333e-1f));
    __m256 small = _mm256_mul_ps(x, _mm256_fmadd_ps(q, x2, one)); /* keeps tanh(-0) = -0 */
    __m256 e = fr_exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), ax));
    __m256 big = _mm256_mul_ps(_mm256_sub_ps(one, e), fr_recip8(_mm256_add_ps(one, e)));
    big = _mm256_or_ps(big, _mm256_and_ps(x, sign));
    __m256 near0 = _mm256_cmp_ps(ax, _mm256_set1_ps(0.25f), _CMP_LT_OQ);
    return _mm256_blendv_ps(big, small, near0);
}

/* out[j] = sigmoid(pre[j]) or tanh(pre[j]) for j < n. */
FR_TARGET void fr_act_avx2(int tanh_, const float *pre, float *out, int64_t n)
{
    for (int64_t j = 0; j < n; j += 8) {
        __m256 x = fr_load8(pre + j, n - j);
        fr_store8(out + j, n - j, tanh_ ? fr_tanh8(x) : fr_sigmoid8(x));
    }
}

/* One row of the default LSTM's step for n units, eight at a time (avx512.c's
 * fr_lstm_gates_avx512): the same operations in the same order as the gate
 * pass over fr_act_avx2's vectors, so the same bits. */
FR_TARGET void fr_lstm_gates_avx2(int64_t n, const float *pre, int64_t stride, float *c, float *h)
{
    for (int64_t j = 0; j < n; j += 8) {
        int64_t left = n - j;
        const float *p = pre + j;
        __m256 vi = fr_sigmoid8(fr_load8(p, left));
        __m256 vf = fr_sigmoid8(fr_load8(p + stride, left));
        __m256 vg = fr_tanh8(fr_load8(p + 2 * stride, left));
        __m256 vo = fr_sigmoid8(fr_load8(p + 3 * stride, left));
        __m256 cn = _mm256_add_ps(_mm256_mul_ps(vf, fr_load8(c + j, left)), _mm256_mul_ps(vi, vg));
        fr_store8(c + j, left, cn);
        fr_store8(h + j, left, _mm256_mul_ps(vo, fr_tanh8(cn)));
    }
}
#endif
