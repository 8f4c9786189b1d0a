/* Frozen inference's prepared weights (frozen.h): each block of a weight laid
 * out once, in the format its products read, inside the caller's memory.  The
 * driver that reads them is forward.h's fr_frozen_forward_f32; its scratch is
 * plan.c's.  No function here allocates or keeps state. */
#include <string.h>

#include "frozen.h"
#include "packed.h"

int fr_panels_available(void)
{
    return fr_packed_best_isa() != FR_ISA_NONE;
}

static size_t block_bytes(int format, int64_t n, int64_t K)
{
    switch (format) {
    case FR_FORMAT_PANELS: return (size_t)fr_packed_size(K, n) * sizeof(float) + 63;
    case FR_FORMAT_BF16_PANELS: return fr_bf16_weights_bytes(n, K);
    case FR_FORMAT_INT8_PANELS: return fr_int8_weights_bytes(n, K);
    default: return 0;
    }
}

size_t fr_prepare_bytes(int format, int64_t n, int64_t K, int blocks)
{
    if (n < 0 || K < 0 || blocks < 1 || blocks > FR_MAX_BLOCKS)
        return 0;
    return (size_t)blocks * block_bytes(format, n, K);
}

/* The checks fr_prepare and fr_prepared_view share, and *out's sizes; *each:
 * the bytes of one block. */
static fr_status start(int format, size_t bytes, int64_t n, int64_t K, int blocks,
                       fr_prepared *out, size_t *each)
{
    *each = block_bytes(format, n, K);
    if (n < 0 || K < 0 || blocks < 1 || blocks > FR_MAX_BLOCKS || *each == 0
        || bytes < (size_t)blocks * *each)
        return FR_ERR_ARGUMENT;
    if (format == FR_FORMAT_PANELS && !fr_panels_available())
        return FR_ERR_ARGUMENT;
    memset(out, 0, sizeof *out);
    out->format = format;
    out->blocks = blocks;
    out->n = n;
    out->K = K;
    return FR_OK;
}

fr_status fr_prepare(int format, void *mem, size_t bytes, const float *W, int64_t n, int64_t K,
                     int blocks, fr_prepared *out)
{
    size_t each;
    if (start(format, bytes, n, K, blocks, out, &each) != FR_OK)
        return FR_ERR_ARGUMENT;
    for (int b = 0; b < blocks; b++) {
        char *block = (char *)mem + (size_t)b * each;
        const float *rows = W + (size_t)b * (size_t)n * (size_t)K;
        fr_status status = FR_OK;
        if (format == FR_FORMAT_PANELS) {
#if FR_HAVE_PACKED
            float *panels = (float *)(((uintptr_t)block + 63) & ~(uintptr_t)63);
            fr_pack_rows(panels, rows, K, 0, n, K);
            out->panels[b] = panels;
#endif
        } else if (format == FR_FORMAT_BF16_PANELS) {
            status = fr_bf16_prepare(block, each, rows, K, n, K, &out->bf16[b]);
        } else {
            status = fr_int8_prepare(block, each, rows, K, n, K, &out->int8[b]);
        }
        if (status != FR_OK)
            return status;
    }
    return FR_OK;
}

fr_status fr_prepared_view(int format, void *mem, size_t bytes, int64_t n, int64_t K, int blocks,
                           fr_prepared *out)
{
    size_t each;
    if (start(format, bytes, n, K, blocks, out, &each) != FR_OK)
        return FR_ERR_ARGUMENT;
    for (int b = 0; b < blocks; b++) {
        char *block = (char *)mem + (size_t)b * each;
        fr_status status = FR_OK;
        if (format == FR_FORMAT_PANELS)
            out->panels[b] = (const float *)(((uintptr_t)block + 63) & ~(uintptr_t)63);
        else if (format == FR_FORMAT_BF16_PANELS)
            status = fr_bf16_view(block, each, n, K, &out->bf16[b]);
        else
            status = fr_int8_view(block, each, n, K, &out->int8[b]);
        if (status != FR_OK)
            return status;
    }
    return FR_OK;
}
