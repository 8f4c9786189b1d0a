/* How a call splits its work over threads, and where its scratch lies.
 * Shared by the drivers (forward.h, backward.h) and fr_workspace_size (plan.c). */
#ifndef FASTRNN_PLAN_H
#define FASTRNN_PLAN_H

#include "fastrnn.h"
#include "frozen.h"

enum { FR_SPLIT_BATCH = 0, FR_SPLIT_HIDDEN = 1 };

typedef struct {
    int teams;        /* directions that run at once: n_dirs, or 1 on one thread */
    int per_team;     /* threads per direction */
    int n_threads;    /* teams * per_team */
    int split;        /* FR_SPLIT_BATCH: batch rows per thread, no barrier per step;
                         FR_SPLIT_HIDDEN: hidden units per thread, a barrier per step */
    int64_t chunk;    /* timesteps per input GEMM (inference; training takes all T) */
    int packs;        /* a module's call packs its float32 weights (fr_worth_packing) */
} fr_plan;

/* Offsets (in elements) of one direction's scratch inside ws; the block of
 * direction d starts at d * per_dir, thread k's own scratch at
 * n_dirs * per_dir + k * per_thread. */
typedef struct {
    size_t h, c, hfull, rh, hg, panels_hh, panels_ih, xg; /* forward */
    size_t xq;        /* frozen bfloat16 / int8: the chunk's input rows converted */
    size_t dgx, daux, dhout, dh, dc, dhg, dhtot, dhsc; /* backward (and panels_hh) */
    size_t per_dir, per_thread, total;
    size_t lowp;      /* frozen bfloat16 / int8: inside a thread's scratch, its converted state rows */
    size_t bias;      /* forward: inside a thread's scratch, the folded biases of its input columns */
} fr_layout;

/* Offsets (in elements) inside one direction's saved (training) block. */
typedef struct {
    size_t gates, hprev, c, hfull, aux, total;
} fr_saved_layout;

fr_plan fr_make_plan(const fr_cell *cell, const fr_dims *d, int pass, int n_threads);
/* format: FR_FORMAT_DENSE for the modules' calls, else a frozen call's (frozen.h). */
fr_layout fr_make_layout(const fr_cell *cell, const fr_dims *d, int pass, const fr_plan *plan,
                         int format);
fr_saved_layout fr_make_saved_layout(const fr_cell *cell, const fr_dims *d);

/* Up to this many rows, A B^T runs as dot products of rows (fr_dot_rows),
 * reading B where it lies. */
#define FR_DOT_ROWS 4
/* An input product over up to this many rows of a weight that the call does
 * not pack runs as dot products too: it reads W_ih once, where BLAS would
 * copy it to its packed layout first, a pass as long as the product itself
 * over so few rows. */
#define FR_DOT_INPUT_ROWS 32
/* The weights of a layer (W_ih and W_hh, floats) that a core's L2 holds;
 * fr_large_weights: more than that. */
#define FR_L2_WEIGHT_FLOATS (1 << 19)

static inline int fr_large_weights(int64_t G, const fr_dims *d)
{
    int64_t Hout = d->proj_size ? d->proj_size : d->hidden_size;
    return G * d->hidden_size * (d->input_size + Hout) > FR_L2_WEIGHT_FLOATS;
}

/* Packing the weights reads them once more than a BLAS call would: it pays
 * from the second step on, and for a single row only over a few steps (BLAS
 * then runs a GEMV, which packs nothing).  Inference on up to FR_DOT_ROWS
 * rows packs only weights that fit in L2, which the packed product then
 * reads at the rate of its multiply-adds step after step: larger ones come
 * from L3 or memory at every step, packed or not, and the dot products read
 * them where they lie, without the pass that packs them. */
static inline int fr_worth_packing(int G, const fr_dims *d, int pass)
{
    if (pass == FR_PASS_INFERENCE && d->batch <= FR_DOT_ROWS && fr_large_weights(G, d))
        return 0;
    return d->seq_len >= 2 && d->seq_len * d->batch >= 8;
}

/* Floats that hold m rows of K converted for a bfloat16 or int8 product
 * (lowp.h's row layouts; int8 rows then their m scales); 0 for other formats. */
static inline size_t fr_lowp_rows_floats(int format, int64_t m, int64_t K)
{
    if (format == FR_FORMAT_INT8_PANELS)
        return (size_t)m * (size_t)(fr_int8_row_bytes(K) / 4 + 1);
    if (format == FR_FORMAT_BF16_PANELS)
        return (size_t)m * (size_t)(fr_bf16_row_elems(K) / 2);
    return 0;
}

#endif
