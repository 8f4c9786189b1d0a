/* The products seam, for one dtype (a body included by kernels_f32.c and
 * kernels_f64.c with REAL set): every matrix product a step or a pass needs
 * goes through the functions below, which choose the kernel; the cells
 * (cell_*.h) and the drivers (forward.h, backward.h) call nothing else.
 *
 *   input_product        (rows, k1-k0) = bias + x rows (rows, I) W_ih[k0:k1]^T
 *   recurrent_product    per step, gates [g0, g1): h (rows, H_out) W_hh[gate rows]^T
 *   projection_product   per step (LSTM): h' (rows, P) = (o h(c')) (rows, H) W_hr^T
 *   dh_product           per step back: dh (rows, H_out) += dgates (rows, K) W_hh[:K]
 *   projection_grad_product, reset_grad_product   per step back: dh_tot W_hr, d_n W_hn
 *   steps_product        backward's products over all steps (weight gradients, dx)
 *
 * Operands.  A product reads a weight through an operand: one block of a
 * weight as torch lays it out (out_features x in_features), in a format.
 *   FR_FORMAT_DENSE   the block where it lies (dense, row stride ld): BLAS, or the
 *                     few-row dot products (fr_dot_rows) on the packed path
 *   FR_FORMAT_PANELS  float32 packed into panels (packed.h), read by fr_packed_gemm
 * A call prepares its operands once (prepare_forward, prepare_backward: packing
 * into the workspace when c->panels), and the *_operand functions say where a
 * thread's block lies.
 *
 * How a precision plugs in (weights prepared once at freeze time, SPEC
 * "Frozen inference"; forward only: only weight_product with b_rows reads them):
 *   1. a format (frozen.h: FR_FORMAT_PANELS, FR_FORMAT_BF16_PANELS,
 *      FR_FORMAT_INT8_PANELS) and its prepared type, made from a float32
 *      weight by fr_prepare, once, outside any call;
 *   2. its case in weight_product: round or quantize the rows of A (unless
 *      the operand says they already are), multiply, scale, accumulate in
 *      float32 into C;
 *   3. the *_operand functions returning views of the prepared weights the
 *      call received (c->fz: a frozen call packs nothing) from the thread's
 *      first column, which a frozen call's split puts at a panel.
 * The cells, the drivers and the float32/float64 state stay as they are. */

#if FR_REAL_IS_FLOAT && FR_HAVE_PACKED
#define FR_PACKED_PATH 1
#else
#define FR_PACKED_PATH 0
#endif

/* FR_FORMAT_DENSE, FR_FORMAT_PANELS and the reduced precisions: frozen.h. */
typedef struct {
    int format;          /* FR_FORMAT_* */
    const REAL *dense;   /* FR_FORMAT_DENSE: the block's first element */
    int64_t ld;          /* its row stride */
    const void *prepared; /* FR_FORMAT_PANELS: the block's panels (float) */
    fr_bf16_weights bf16; /* FR_FORMAT_BF16_PANELS: the block from its first column */
    fr_int8_weights int8; /* FR_FORMAT_INT8_PANELS: likewise */
    void *rows;          /* bfloat16 / int8: where the rows of A lie converted */
    int64_t ldr;         /* their stride (bfloat16 elements, int8 bytes) */
    float *scale_a;      /* int8: their scales */
    int converted;       /* the rows of A are already there (else weight_product converts them) */
} fr_operand;

static inline fr_operand dense_operand(const REAL *block, int64_t ld)
{
    fr_operand op = {0};
    op.format = FR_FORMAT_DENSE;
    op.dense = block;
    op.ld = ld;
    return op;
}

static inline fr_operand panels_operand(const REAL *panels)
{
    fr_operand op = {0};
    op.format = FR_FORMAT_PANELS;
    op.prepared = panels;
    return op;
}

static inline int is_lowp(int format)
{
    return format == FR_FORMAT_BF16_PANELS || format == FR_FORMAT_INT8_PANELS;
}

/* Block `block` of a prepared weight from its column col0 (a multiple of 16,
 * so a whole number of panels in), the rows of A to be converted into
 * `scratch` (fr_lowp_rows_floats(format, capacity, K) floats: capacity
 * scales, then the rows). */
static inline fr_operand prepared_operand(const fr_prepared *p, int block, int64_t col0,
                                          REAL *scratch, int64_t capacity)
{
    fr_operand op = {0};
    op.format = p->format;
    int64_t K = p->K;
    if (p->format == FR_FORMAT_PANELS) {
        op.prepared = p->panels[block] + col0 * K;
    } else if (p->format == FR_FORMAT_BF16_PANELS) {
        op.bf16 = p->bf16[block];
        op.bf16.panels += col0 * fr_bf16_row_elems(K);
        op.bf16.n -= col0;
        op.rows = scratch;
        op.ldr = fr_bf16_row_elems(K);
    } else {
        op.int8 = p->int8[block];
        op.int8.panels += col0 * fr_int8_row_bytes(K);
        op.int8.scale_w += col0;
        op.int8.colsum += col0;
        op.int8.n -= col0;
        op.scale_a = (float *)scratch;
        op.rows = (float *)scratch + capacity;
        op.ldr = fr_int8_row_bytes(K);
    }
    return op;
}

/* m rows of A (k long, stride lda) rounded or quantized into the operand's rows. */
static void convert_rows(const fr_operand *B, int64_t m, int64_t k, const REAL *A, int64_t lda)
{
#if FR_REAL_IS_FLOAT
    if (m <= 0)
        return;
    if (B->format == FR_FORMAT_BF16_PANELS)
        fr_bf16_rows(m, k, A, lda, (uint16_t *)B->rows, B->ldr);
    else if (B->format == FR_FORMAT_INT8_PANELS)
        fr_int8_rows(m, k, A, lda, (uint8_t *)B->rows, B->ldr, B->scale_a);
#else
    (void)B, (void)m, (void)k, (void)A, (void)lda;
#endif
}

/* Row-major C (m x n) = alpha op(A) op(B) + beta C, op(A) (m x k), op(B) (k x n),
 * through BLAS (or fr_dot_rows for a few rows of A B^T on the packed path). */
static void gemm_rm(const fr_blas *blas, int trans_a, int trans_b, int64_t m, int64_t n,
                    int64_t k, REAL alpha, const REAL *A, int64_t lda, const REAL *B,
                    int64_t ldb, REAL beta, REAL *C, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    char ta = trans_b ? 'T' : 'N', tb = trans_a ? 'T' : 'N';
    fr_blas_int M = (fr_blas_int)n, Nn = (fr_blas_int)m, K = (fr_blas_int)k;
    fr_blas_int la = (fr_blas_int)ldb, lb = (fr_blas_int)lda, lc = (fr_blas_int)ldc;
#if FR_PACKED_PATH
    if (!trans_a && trans_b && m <= FR_DOT_ROWS && k > 0 && alpha == 1 && (beta == 0 || beta == 1)
        && fr_packed_enabled()) {
        fr_dot_rows(m, n, k, A, lda, B, ldb, C, ldc, beta == 1);
        return;
    }
#endif
    if (K == 0) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return;
    }
    BLAS_GEMM(blas)(&ta, &tb, &M, &Nn, &K, &alpha, (REAL *)B, &la, (REAL *)A, &lb, &beta, C, &lc);
}

/* ---- the product over a weight ---------------------------------------------- */

/* C (m x n, ldc) = A (m x k, lda) op(B), or += with accumulate, B a weight's
 * block: with b_rows, op(B) = B^T, B the n rows of k (out_features of a torch
 * weight); else op(B) = B, the k rows of n columns (in_features).  Packed
 * panels hold op(B) either way. */
static void weight_product(const fr_blas *blas, const fr_operand *B, int b_rows, int64_t m,
                           int64_t n, int64_t k, const REAL *A, int64_t lda, REAL *C,
                           int64_t ldc, int accumulate)
{
#if FR_PACKED_PATH
    if (B->format == FR_FORMAT_PANELS) {
        fr_packed_gemm(m, n, k, A, lda, (const float *)B->prepared, C, ldc, accumulate);
        return;
    }
#endif
#if FR_REAL_IS_FLOAT
    if (is_lowp(B->format)) { /* only with b_rows: a frozen call's forward */
        if (m <= 0 || n <= 0)
            return;
        if (!B->converted)
            convert_rows(B, m, k, A, lda);
        if (B->format == FR_FORMAT_BF16_PANELS)
            fr_bf16_gemm(m, (const uint16_t *)B->rows, B->ldr, &B->bf16, 0, n, C, ldc, accumulate);
        else
            fr_int8_gemm(m, (const uint8_t *)B->rows, B->ldr, B->scale_a, &B->int8, 0, n, C, ldc,
                         accumulate);
        return;
    }
#endif
    gemm_rm(blas, 0, b_rows, m, n, k, 1, A, lda, B->dense, B->ld, accumulate, C, ldc);
}

/* ---- the operands of a call ------------------------------------------------- */

/* The thread's columns [k0, k1) of the input product: W_ih's rows (a frozen
 * call cuts at panels). */
static inline void input_columns(const ctx *c, const work *w, int64_t *k0, int64_t *k1)
{
    int64_t (*cut)(int64_t, int, int) = c->fz ? panel_part : part;
    *k0 = cut(c->GH, w->rank, w->team_size);
    *k1 = cut(c->GH, w->rank + 1, w->team_size);
}

/* The chunk's input rows converted (a frozen call in bfloat16 or int8): the
 * direction's block, chunk * N rows of I, scales first. */
static inline REAL *xq_of(const ctx *c) { return W(c, c->lay.xq); }

/* W_ih's rows from k0 (the thread's columns of the input product): packed per
 * thread, each thread's block FR_PANEL columns of padding further; a frozen
 * call's prepared W_ih from column k0, its rows converted into xq. */
static inline fr_operand ih_operand(const ctx *c, const work *w, int64_t k0)
{
    if (c->fz)
        return prepared_operand(c->fz->weight_ih, 0, k0, xq_of(c), c->chunk * c->N);
    if (c->panels)
        return panels_operand(W(c, c->lay.panels_ih) + c->I * (k0 + FR_PANEL * w->rank));
    return dense_operand(c->L->weight_ih + k0 * c->I, c->I);
}

/* The thread's panels of W_hh, K deep, from column col0 (`blocks` blocks, each
 * padded to whole panels: one per gate forward, one backward).  A hidden split
 * packs per thread, blocks * FR_PANEL columns of padding further per earlier
 * thread; a batch split shares one copy, packed by the team (packed_share). */
static inline REAL *panels_hh_of(const ctx *c, const work *w, int64_t K, int64_t col0, int64_t blocks)
{
    if (c->plan.split != FR_SPLIT_HIDDEN)
        return W(c, c->lay.panels_hh);
    return W(c, c->lay.panels_hh) + K * (col0 + blocks * FR_PANEL * w->rank);
}

/* Gate g of W_hh, the rows of the thread's units (H_out deep). */
static inline fr_operand hh_operand(const ctx *c, const work *w, int64_t g)
{
    int64_t nu = w->j1 - w->j0, K = c->Hout;
    if (c->fz)
        return prepared_operand(c->fz->weight_hh, (int)g, w->j0, w->lowp, c->N);
    if (c->panels)
        return panels_operand(panels_hh_of(c, w, K, c->G * w->j0, c->G) + g * fr_packed_size(K, nu));
    return dense_operand(c->L->weight_hh + (g * c->H + w->j0) * K, K);
}

/* W_hh's first K rows, the thread's output columns (backward's dh product). */
static inline fr_operand hh_cols_operand(const ctx *c, const work *w, int64_t K)
{
    if (c->panels)
        return panels_operand(panels_hh_of(c, w, K, w->o0, 1));
    return dense_operand(c->L->weight_hh + w->o0, c->Hout);
}

/* The rows of W_hh that the dh product reads: all, or the GRU's r and z without
 * linear_before_reset (its n part goes through r * h). */
static inline int64_t dh_product_depth(const ctx *c)
{
    return c->cell->mode == FR_GRU && !c->cell->linear_before_reset ? 2 * c->H : c->GH;
}

/* The columns [c0, c1) of a block of n that the thread packs, whole panels
 * from c0: a hidden split packs its own copy whole; a batch split shares one
 * copy, and each thread of the team packs a share of its panels (the barrier
 * before the first product that reads them waits for all). */
static inline void packed_share(const ctx *c, const work *w, int64_t n, int64_t *c0, int64_t *c1)
{
    int64_t panels = fr_panels(n), whole = c->plan.split == FR_SPLIT_HIDDEN;
    *c0 = whole ? 0 : FR_PANEL * part(panels, w->rank, w->team_size);
    *c1 = whole ? n : FR_PANEL * part(panels, w->rank + 1, w->team_size);
    *c1 = *c1 < n ? *c1 : n;
}

/* Forward: pack W_hh's rows of the thread's units gate by gate, and W_ih's rows
 * of the thread's columns of the input product. */
static void prepare_forward(const ctx *c, const work *w)
{
#if FR_PACKED_PATH
    if (!c->panels)
        return;
    int64_t nu = w->j1 - w->j0, K = c->Hout, c0, c1;
    REAL *panels = panels_hh_of(c, w, K, c->G * w->j0, c->G);
    packed_share(c, w, nu, &c0, &c1);
    for (int64_t g = 0; g < c->G && c1 > c0; g++)
        fr_pack_rows(panels + g * fr_packed_size(K, nu) + c0 * K, c->L->weight_hh, K,
                     g * c->H + w->j0 + c0, c1 - c0, K);
    int64_t k0, k1;
    input_columns(c, w, &k0, &k1);
    fr_pack_rows(W(c, c->lay.panels_ih) + c->I * (k0 + FR_PANEL * w->rank), c->L->weight_ih,
                 c->I, k0, k1 - k0, c->I);
#else
    (void)c, (void)w;
#endif
}

/* Backward: pack W_hh's columns of the thread's outputs for the dh product. */
static void prepare_backward(const ctx *c, const work *w)
{
#if FR_PACKED_PATH
    if (!c->panels)
        return;
    int64_t K = dh_product_depth(c), c0, c1;
    packed_share(c, w, w->o1 - w->o0, &c0, &c1);
    if (c1 > c0)
        fr_pack_cols(panels_hh_of(c, w, K, w->o0, 1) + c0 * K, c->L->weight_hh, c->Hout,
                     w->o0 + c0, c1 - c0, K);
#else
    (void)c, (void)w;
#endif
}

/* ---- the products of a step ------------------------------------------------- */

/* The folded bias of gate column k: b_ih + b_hh, but for the GRU's n gate with
 * linear_before_reset, whose b_hn sits inside r * (W_hn h + b_hn). */
static inline REAL folded_bias(const ctx *c, int64_t k)
{
    const LAYER *L = c->L;
    REAL b = L->bias_ih ? L->bias_ih[k] : 0;
    int keep_hn = c->cell->mode == FR_GRU && c->cell->linear_before_reset && k >= 2 * c->H;
    if (L->bias_hh && !keep_hn)
        b += L->bias_hh[k];
    return b;
}

/* C rows = bias + x rows @ W_ih[k0:k1]^T for `rows` x rows starting at x_row
 * (stride ldx) into C (stride ldc), gate columns [k0, k1); B: W_ih's rows from
 * k0.  The packed product adds the bias row as it stores C; the others start
 * from rows of it. */
static void input_product(const ctx *c, const work *w, const fr_operand *B, const REAL *x_row,
                          int64_t ldx, int64_t rows, REAL *C, int64_t ldc, int64_t k0, int64_t k1)
{
    if (rows <= 0 || k1 <= k0)
        return;
    REAL *bias = w->bias;
    for (int64_t k = k0; k < k1; k++)
        bias[k - k0] = folded_bias(c, k);
#if FR_PACKED_PATH
    if (B->format == FR_FORMAT_PANELS) {
        fr_packed_gemm_bias(rows, k1 - k0, c->I, x_row, ldx, (const float *)B->prepared, bias,
                            C + k0, ldc);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++)
        memcpy(C + r * ldc + k0, bias, (size_t)(k1 - k0) * sizeof(REAL));
#if FR_PACKED_PATH
    if (B->format == FR_FORMAT_DENSE && rows <= FR_DOT_INPUT_ROWS && fr_packed_enabled()) {
        fr_dot_rows(rows, k1 - k0, c->I, x_row, ldx, B->dense, B->ld, C + k0, ldc, 1);
        return;
    }
#endif
    weight_product(c->blas, B, 1, rows, k1 - k0, c->I, x_row, ldx, C + k0, ldc, 1);
}

/* The recurrent half of gates [g0, g1) for the thread's rows and units,
 * h @ W_hh[those gate rows]^T (h with stride ldh): added onto the
 * pre-activations of step s when in_place, else written to hg. */
static void recurrent_product(const ctx *c, const work *w, const REAL *h, int64_t ldh, int64_t s,
                              int64_t g0, int64_t g1, int in_place)
{
    int64_t nu = w->j1 - w->j0, rows = w->n1 - w->n0, G = c->G, K = c->Hout;
    REAL *out = in_place ? xg_row(c, w->n0, time_of(c, c->T, s)) + w->j0 : hg_of(c, w);
    int64_t ldo = in_place ? c->GH : G * nu, gate_stride = in_place ? c->H : nu;
    h += w->n0 * ldh;
    fr_operand B = hh_operand(c, w, g0);
    if (B.format == FR_FORMAT_DENSE && nu == c->H) { /* all units: the gates' rows follow each other */
        weight_product(c->blas, &B, 1, rows, (g1 - g0) * nu, K, h, ldh, out + g0 * gate_stride,
                       ldo, in_place);
        return;
    }
    if (is_lowp(B.format) && nu > 0) /* the state rows once for every gate */
        convert_rows(&B, rows, K, h, ldh);
    for (int64_t g = g0; g < g1; g++) {
        B = hh_operand(c, w, g);
        B.converted = 1;
        weight_product(c->blas, &B, 1, rows, nu, K, h, ldh, out + g * gate_stride, ldo, in_place);
    }
}

/* LSTM with a projection: h' = (o h(c')) W_hr^T for the thread's rows and
 * projection units; hout (N, H), hnext (N, P). */
static void projection_product(const ctx *c, const work *w, const REAL *hout, REAL *hnext)
{
    fr_operand B = c->fz ? prepared_operand(c->fz->weight_hr, 0, w->o0, w->lowp, c->N)
                         : dense_operand(c->L->weight_hr + w->o0 * c->H, c->H);
    weight_product(c->blas, &B, 1, w->n1 - w->n0, w->o1 - w->o0, c->H, hout + w->n0 * c->H,
                   c->H, hnext + w->n0 * c->P + w->o0, c->P, 0);
}

/* After the cell's gate gradients of step s: dhnext[rows, outs] += dhg[rows, :K] @ W_hh[:K, outs]. */
static void dh_product(const ctx *c, const work *w, REAL *dhnext, int64_t K)
{
    fr_operand B = hh_cols_operand(c, w, K);
    weight_product(c->blas, &B, 0, w->n1 - w->n0, w->o1 - w->o0, K,
                   W(c, c->lay.dhg) + w->n0 * c->GH, c->GH, dhnext + w->n0 * c->Hout + w->o0,
                   c->Hout, 1);
}

/* LSTM with a projection, back: dh_full[rows, units] = dh_tot[rows, :P] @ W_hr[:, units]. */
static void projection_grad_product(const ctx *c, const work *w, const REAL *dhtot, REAL *dhfull)
{
    fr_operand B = dense_operand(c->L->weight_hr + w->j0, c->H);
    weight_product(c->blas, &B, 0, w->n1 - w->n0, w->j1 - w->j0, c->P, dhtot + w->n0 * c->P,
                   c->P, dhfull + w->n0 * c->H + w->j0, c->H, 0);
}

/* GRU without linear_before_reset, back: d(r h)[rows, units] = d_n[rows, :H] @ W_hn[:, units]. */
static void reset_grad_product(const ctx *c, const work *w, const REAL *dhg, REAL *drh)
{
    int64_t H = c->H;
    fr_operand B = dense_operand(c->L->weight_hh + 2 * H * H + w->j0, H);
    weight_product(c->blas, &B, 0, w->n1 - w->n0, w->j1 - w->j0, H, dhg + w->n0 * c->GH + 2 * H,
                   c->GH, drh + w->n0 * H + w->j0, H, 0);
}

/* ---- the products over all steps -------------------------------------------- */

/* C (m x n, ldc) = op(A) B (+ C with accumulate), op(A) = A (m x k) or with
 * trans_a the transpose of A (k x m), B (k x n) as it lies: the blocked kernel
 * on the packed path (its blocks packed into the thread's `blocks`), else BLAS. */
static void steps_product(const ctx *c, REAL *blocks, int trans_a, int64_t m, int64_t n,
                          int64_t k, const REAL *A, int64_t lda, const REAL *B, int64_t ldb,
                          int accumulate, REAL *C, int64_t ldc)
{
#if FR_PACKED_PATH
    if (c->panels) {
        if (m > 0 && n > 0)
            fr_gemm_blocked(trans_a, m, n, k, A, lda, B, ldb, C, ldc, accumulate, blocks);
        return;
    }
#else
    (void)blocks;
#endif
    gemm_rm(c->blas, trans_a, 0, m, n, k, 1, A, lda, B, ldb, accumulate, C, ldc);
}
