/* Frozen inference (SPEC, "Frozen inference"): a layer's weights prepared
 * once, outside any call, in the format its products read, and the forward
 * driver that takes them, so that a frozen call packs and converts no weight.
 *
 * Formats of a prepared weight (W: n rows of K, as torch lays it out; a
 * weight with several blocks, W_hh gate by gate, prepares each block of
 * n / blocks rows on its own, so that a block's units start at a panel):
 *   FR_FORMAT_DENSE        the float32 or float64 weight as it lies (nothing
 *                          prepared: the module's own call, fr_forward_*)
 *   FR_FORMAT_PANELS       float32 panels of 16 rows (packed.h's fr_pack_rows),
 *                          read by fr_packed_gemm; only where the CPU has AVX-512
 *   FR_FORMAT_BF16_PANELS  bfloat16 panels (lowp.h, fr_bf16_prepare)
 *   FR_FORMAT_INT8_PANELS  int8 panels, row scales and column sums (fr_int8_prepare)
 * A prepared weight lies in memory the caller owns (fr_prepare_bytes long)
 * and is only read by the calls: several calls may share it at once.
 *
 * A frozen call splits its threads as fr_forward_f32 does, but at multiples
 * of 16 units (a panel) under a hidden split.  The left operand of a
 * bfloat16 or int8 product is converted once per chunk of steps for the
 * input half (the team shares the rows, then a barrier) and once per step
 * for the state rows (each thread into its own scratch, no barrier). */
#ifndef FASTRNN_FROZEN_H
#define FASTRNN_FROZEN_H

#include "fastrnn.h"
#include "lowp.h"

enum { FR_FORMAT_DENSE = 0, FR_FORMAT_PANELS = 1, FR_FORMAT_BF16_PANELS = 2,
       FR_FORMAT_INT8_PANELS = 3 };

/* The most blocks a prepared weight has (W_hh of an LSTM: one per gate). */
#define FR_MAX_BLOCKS 4

/* One weight prepared by fr_prepare: views into the caller's memory. */
typedef struct {
    int format;                            /* FR_FORMAT_PANELS, _BF16_PANELS, _INT8_PANELS */
    int blocks;                            /* blocks of rows, prepared each on its own */
    int64_t n, K;                          /* rows of one block, length of a row */
    const float *panels[FR_MAX_BLOCKS];    /* FR_FORMAT_PANELS: fr_packed_size(K, n) floats */
    fr_bf16_weights bf16[FR_MAX_BLOCKS];   /* FR_FORMAT_BF16_PANELS */
    fr_int8_weights int8[FR_MAX_BLOCKS];   /* FR_FORMAT_INT8_PANELS */
} fr_prepared;

/* The prepared weights of one layer direction: W_ih (G*H x I, one block),
 * W_hh (G blocks of H x H_out), W_hr (P x H, one block; NULL without a
 * projection).  All of one format. */
typedef struct {
    const fr_prepared *weight_ih, *weight_hh, *weight_hr;
} fr_frozen_dir;

/* 1 where FR_FORMAT_PANELS can run: built with the packed kernels, on a CPU
 * with AVX-512 or AVX2 and FMA (after fr_init). */
int fr_panels_available(void);

/* Bytes of the caller's memory for W (blocks * n rows of K) in `format`,
 * alignment slack included; 0 for a format or size it cannot take. */
size_t fr_prepare_bytes(int format, int64_t n, int64_t K, int blocks);

/* Prepare W (blocks * n rows of K, row stride K; IN) into mem (`bytes`
 * long; OUT) and point *out into it.  FR_ERR_ARGUMENT for an unknown format,
 * blocks outside [1, FR_MAX_BLOCKS], a short block of memory, panels where
 * fr_panels_available() is 0, and what fr_bf16_prepare / fr_int8_prepare
 * refuse (int8: K > FR_INT8_MAX_K, a weight that is NaN or infinite). */
fr_status fr_prepare(int format, void *mem, size_t bytes, const float *W, int64_t n, int64_t K,
                     int blocks, fr_prepared *out);

/* Point *out into memory that holds a weight prepared before by fr_prepare
 * with the same format and sizes, copied since (from a pickle, say) to mem
 * at the same offset from a 64-byte boundary.  FR_ERR_ARGUMENT as fr_prepare
 * for the format, the sizes and a short block. */
fr_status fr_prepared_view(int format, void *mem, size_t bytes, int64_t n, int64_t K, int blocks,
                           fr_prepared *out);

/* Elements (float) of scratch that a frozen call in `format` needs. */
size_t fr_frozen_workspace_size(const fr_cell *cell, const fr_dims *d, int format, int n_threads);

/* One layer, all its directions, forward, over prepared weights: as
 * fr_forward_f32 in inference (dirs[].saved NULL; their weight_ih,
 * weight_hh and weight_hr unread), frozen[d] the prepared weights of
 * direction d, all in `format`.  ws: fr_frozen_workspace_size elements. */
fr_status fr_frozen_forward_f32(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                                const int64_t *lengths, const float *x, const fr_layer_f32 *dirs,
                                const fr_frozen_dir *frozen, int format, float *ws,
                                int n_threads);

#endif
