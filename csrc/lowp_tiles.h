/* The walk over C that the vector kernels of lowp_bf16.c and lowp_int8.c
 * share: columns [n0, n1) in groups of whole panels, rows in blocks of
 * FR_LOWP_MC (kept in L2 while every panel group goes by) and tiles of up to
 * eight rows.  A tile keeps mr x np sums in registers; np is the most panels
 * that keep a dozen or more independent sums going for mr rows (a few rows
 * are all weight traffic: each weight is read once per call, whatever m).
 *
 * The including file defines TARGET (its target attribute) and
 * TILE(mr, np, i, p): the tile of rows i .. i + mr and panels p .. p + np,
 * reading the masks `mask[q]` of its panels (lanes inside [n0, n1)). */
#ifndef FASTRNN_LOWP_TILES_H
#define FASTRNN_LOWP_TILES_H

#include <immintrin.h>

#define FR_LOWP_MC 64
/* A tile's rows of A stay in L1 beside the weights streaming through: at
 * most this many bytes of them (four bf16 rows of K = 2048). */
#define FR_LOWP_TILE_A 16384

/* The first `left` lanes of sixteen (none for left <= 0). */
static inline __mmask16 fr_lowp_left(int64_t left)
{
    return left <= 0 ? 0 : left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* The lanes of panel p inside the columns [n0, n1). */
static inline __mmask16 fr_lowp_lanes(int64_t p, int64_t n0, int64_t n1)
{
    int64_t first = p * FR_LOWP_PANEL;
    int64_t c0 = n0 > first ? n0 - first : 0;
    int64_t c1 = n1 - first < FR_LOWP_PANEL ? n1 - first : FR_LOWP_PANEL;
    return (__mmask16)(((1u << c1) - 1u) & ~((1u << c0) - 1u));
}

/* Panels per tile for tiles of mr rows: 8, 4 or 2. */
static inline int fr_lowp_tile_panels(int64_t mr) { return mr == 1 ? 8 : mr <= 4 ? 4 : 2; }


/* The walk over the columns [n0, n1) of C and its m rows (a macro, so that
 * TILE inlines into it with mr and np constants).  np is 8 only for one row
 * and 4 only for up to four, so no tile spills its sums. */
#define FR_LOWP_ROWS4(np, mr, i, p)                                                     \
    switch (mr) {                                                                        \
    case 1: TILE(1, np, i, p); break;                                                    \
    case 2: TILE(2, np, i, p); break;                                                    \
    case 3: TILE(3, np, i, p); break;                                                    \
    default: TILE(4, np, i, p); break;                                                   \
    }
#define FR_LOWP_ROWS8(np, mr, i, p)                                                     \
    switch (mr) {                                                                        \
    case 1: TILE(1, np, i, p); break;                                                    \
    case 2: TILE(2, np, i, p); break;                                                    \
    case 3: TILE(3, np, i, p); break;                                                    \
    case 4: TILE(4, np, i, p); break;                                                    \
    case 5: TILE(5, np, i, p); break;                                                    \
    case 6: TILE(6, np, i, p); break;                                                    \
    case 7: TILE(7, np, i, p); break;                                                    \
    default: TILE(8, np, i, p); break;                                                   \
    }

#define FR_LOWP_WALK(m, n0, n1, row_bytes)                                               \
    do {                                                                                 \
        int64_t p0_ = (n0) / FR_LOWP_PANEL, p1_ = fr_lowp_panels(n1);                   \
        int64_t cap_ = FR_LOWP_TILE_A / ((row_bytes) > 0 ? (row_bytes) : 1);             \
        cap_ = cap_ < 1 ? 1 : cap_ > 8 ? 8 : cap_;                                       \
        for (int64_t i0_ = 0; i0_ < (m); i0_ += FR_LOWP_MC) {                            \
            int64_t mb_ = (m) - i0_ < FR_LOWP_MC ? (m) - i0_ : FR_LOWP_MC;               \
            int want_ = fr_lowp_tile_panels(mb_ < cap_ ? mb_ : cap_);                    \
            for (int64_t p_ = p0_; p_ < p1_;) {                                          \
                int np_ = want_;                                                         \
                while (np_ > p1_ - p_)                                                   \
                    np_ /= 2;                                                            \
                __mmask16 mask[8];                                                       \
                for (int q_ = 0; q_ < np_; q_++)                                         \
                    mask[q_] = fr_lowp_lanes(p_ + q_, (n0), (n1));                       \
                for (int64_t i_ = i0_; i_ < i0_ + mb_; i_ += cap_) {                     \
                    int mr_ = (int)(i0_ + mb_ - i_ < cap_ ? i0_ + mb_ - i_ : cap_);      \
                    switch (np_) {                                                       \
                    case 8: TILE(1, 8, i_, p_); break;                                   \
                    case 4: FR_LOWP_ROWS4(4, mr_, i_, p_); break;                        \
                    case 2: FR_LOWP_ROWS8(2, mr_, i_, p_); break;                        \
                    default: FR_LOWP_ROWS8(1, mr_, i_, p_); break;                       \
                    }                                                                    \
                }                                                                        \
                p_ += np_;                                                               \
            }                                                                            \
        }                                                                                \
    } while (0)

#endif
