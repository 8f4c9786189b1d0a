/* The forward driver, for one dtype (a body included by kernels_f32.c and
 * kernels_f64.c): fr_forward_f32 / fr_forward_f64.
 *
 * A call runs one layer, all its directions, in one OpenMP parallel region
 * that spans the whole sequence:
 *   1. the call's weights are prepared once (products.h: packed on the packed path);
 *   2. the input half of every gate for a chunk of timesteps is one product,
 *      biases folded in: xg[t, n, :] = b_ih + b_hh + W_ih x[t, n] (training: one
 *      chunk of all T steps, kept as the saved gate pre-activations);
 *   3. per step, the cell (cell_*.h): the recurrent product h W_hh^T added onto
 *      the step's pre-activations and, right behind it, the fused elementwise
 *      pass that writes h' (and c'), y and, for training, what backward reads.
 * Workspace per direction: h (2, N, H_out) ping-pong, c (N, H), hfull, rh, hg,
 * the packed weights and xg (chunk, N, G*H); per thread 12 H of activation
 * values.  Threads: one team per direction (both at once when the plan has
 * two teams); a batch split needs a barrier only between chunks, a hidden
 * split one after each step. */

/* The input product of the chunk of steps starting at s0, split over the team.
 * A frozen call in bfloat16 or int8 converts the chunk's input rows once:
 * each thread a share of them into xq, then a barrier (on both paths, so
 * that two teams meet the same barriers), then each its columns. */
static void chunk_input(ctx *c, const work *w, int64_t s0)
{
    int64_t T = c->T, N = c->N, I = c->I, GH = c->GH, K = c->chunk;
    int lowp = is_lowp(c->format);
    c->s0 = s0;
    if (!c->all_steps && c->L->reverse && c->lengths) {
        /* Each sequence has its own window of timesteps: one product per
         * sequence (its rows converted by its own thread, at row n * K of xq). */
        fr_operand B = c->fz ? ih_operand(c, w, 0) : dense_operand(c->L->weight_ih, I);
        char *rows0 = B.rows;
        float *scales0 = B.scale_a;
        int64_t row_bytes = B.format == FR_FORMAT_INT8_PANELS ? B.ldr : 2 * B.ldr;
        for (int64_t n = part(N, w->rank, w->team_size); n < part(N, w->rank + 1, w->team_size); n++) {
            int64_t hi = len_of(c, n) - s0, lo = hi - K < 0 ? 0 : hi - K;
            if (lowp) {
                B.rows = rows0 + n * K * row_bytes;
                B.scale_a = scales0 ? scales0 + n * K : NULL;
            }
            if (hi > lo)
                input_product(c, w, &B, c->x + (lo * N + n) * I, N * I, hi - lo, xg_row(c, n, lo),
                              N * GH, 0, GH);
        }
        BARRIER_IF(lowp);
        return;
    }
    int64_t lo, hi;
    if (c->all_steps) {
        lo = 0;
        hi = T;
    } else if (c->L->reverse) {
        hi = T - s0;
        lo = hi - K < 0 ? 0 : hi - K;
    } else {
        lo = s0;
        hi = s0 + K > T ? T : s0 + K;
    }
    int64_t k0, k1;
    input_columns(c, w, &k0, &k1);
    fr_operand B = ih_operand(c, w, k0);
    if (lowp) {
        int64_t rows = (hi - lo) * N, r0 = part(rows, w->rank, w->team_size);
        int64_t r1 = part(rows, w->rank + 1, w->team_size);
        fr_operand mine = ih_operand(c, w, 0);
        if (B.format == FR_FORMAT_INT8_PANELS) {
            mine.rows = (uint8_t *)mine.rows + r0 * mine.ldr;
            mine.scale_a += r0;
        } else {
            mine.rows = (uint16_t *)mine.rows + r0 * mine.ldr;
        }
        convert_rows(&mine, r1 - r0, I, c->x + (lo * N + r0) * I, I);
        _Pragma("omp barrier")
        B.converted = 1;
    }
    input_product(c, w, &B, c->x + lo * N * I, I, (hi - lo) * N, xg_row(c, 0, lo), GH, k0, k1);
}

/* One direction, the thread's share: h0 in, the steps chunk by chunk, h_n out. */
static void run_forward(ctx *c, const work *w)
{
    const LAYER *L = c->L;
    int64_t N = c->N, H = c->H, Hout = c->Hout, T = c->T;
    REAL *h[2] = {W(c, c->lay.h), W(c, c->lay.h) + N * Hout};
    size_t obytes = (size_t)(w->o1 - w->o0) * sizeof(REAL);
    size_t ubytes = (size_t)(w->j1 - w->j0) * sizeof(REAL);
    for (int64_t n = w->n0; n < w->n1; n++) {
        memcpy(h[0] + n * Hout + w->o0, L->h0 + n * Hout + w->o0, obytes);
        if (c->cell->mode == FR_LSTM)
            memcpy(W(c, c->lay.c) + n * H + w->j0, L->c0 + n * H + w->j0, ubytes);
    }
    prepare_forward(c, w);
    for (int64_t s0 = 0; s0 < T; s0 += c->chunk) {
        chunk_input(c, w, s0);
        _Pragma("omp barrier")
        int64_t s1 = s0 + c->chunk > T ? T : s0 + c->chunk;
        for (int64_t s = s0; s < s1; s++) {
            const REAL *hprev = h[s & 1];
            REAL *hnext = h[(s + 1) & 1];
            switch (c->cell->mode) {
            case FR_RNN: rnn_step_forward(c, w, s, hprev, hnext); break;
            case FR_LSTM: lstm_step_forward(c, w, s, hprev, hnext); break;
            default: gru_step_forward(c, w, s, hprev, hnext); break;
            }
            BARRIER_IF(w->sync);
        }
        BARRIER_IF(s1 < T); /* the next chunk overwrites the input half */
    }
    for (int64_t n = w->n0; n < w->n1; n++) {
        memcpy(L->h_n + n * Hout + w->o0, h[T & 1] + n * Hout + w->o0, obytes);
        if (c->cell->mode == FR_LSTM)
            memcpy(L->c_n + n * H + w->j0, W(c, c->lay.c) + n * H + w->j0, ubytes);
    }
}

/* Thread tid's part of a call: its direction(s), its rows or units. */
static void forward_thread(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                           const int64_t *lengths, const REAL *x, const LAYER *dirs,
                           const fr_frozen_dir *frozen, int format, REAL *ws,
                           const fr_plan *plan, const fr_layout *lay, int tid)
{
    work w;
    int dir = make_work(&w, plan, lay, ws, d->n_dirs, d->batch, d->hidden_size, d->proj_size,
                        tid, format);
    /* With one team, the thread runs the directions one after the other. */
    int last = plan->teams == 1 ? d->n_dirs - 1 : dir;
    for (; dir <= last; dir++) {
        ctx c;
        make_ctx(&c, blas, cell, d, lengths, x, &dirs[dir], dir, plan, lay, ws,
                 frozen ? &frozen[dir] : NULL, format);
        run_forward(&c, &w);
    }
}

/* Both entry points: the modules' calls (frozen NULL, FR_FORMAT_DENSE) and
 * the frozen ones. */
static fr_status forward_layer(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                               const int64_t *lengths, const REAL *x, const LAYER *dirs,
                               const fr_frozen_dir *frozen, int format, REAL *ws, int n_threads)
{
    if (d->n_dirs < 1 || d->n_dirs > 2 || d->seq_len < 1 || d->batch < 1)
        return FR_ERR_ARGUMENT;
    int pass = dirs[0].saved ? FR_PASS_TRAIN : FR_PASS_INFERENCE;
    fr_plan plan = fr_make_plan(cell, d, pass, n_threads);
    fr_layout lay = fr_make_layout(cell, d, pass, &plan, format);
    if (plan.n_threads == 1) { /* no team to start (libgomp would still wake its pool) */
        forward_thread(blas, cell, d, lengths, x, dirs, frozen, format, ws, &plan, &lay, 0);
        return FR_OK;
    }
#pragma omp parallel num_threads(plan.n_threads)
    forward_thread(blas, cell, d, lengths, x, dirs, frozen, format, ws, &plan, &lay,
                   omp_get_thread_num());
    return FR_OK;
}

fr_status FR_NAME(fr_forward)(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                              const int64_t *lengths, const REAL *x, const LAYER *dirs,
                              REAL *ws, int n_threads)
{
    return forward_layer(blas, cell, d, lengths, x, dirs, NULL, FR_FORMAT_DENSE, ws, n_threads);
}

#if FR_REAL_IS_FLOAT
/* Whether p is a prepared weight of `format` with `blocks` blocks of n rows of K. */
static int prepared_as(const fr_prepared *p, int format, int blocks, int64_t n, int64_t K)
{
    return p && p->format == format && p->blocks == blocks && p->n == n && p->K == K;
}

fr_status fr_frozen_forward_f32(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                                const int64_t *lengths, const float *x, const fr_layer_f32 *dirs,
                                const fr_frozen_dir *frozen, int format, float *ws,
                                int n_threads)
{
    int G = fr_gates(cell->mode);
    int64_t H = d->hidden_size, P = d->proj_size, Hout = P ? P : H;
    if (!(format == FR_FORMAT_PANELS || is_lowp(format)) || d->n_dirs < 1 || d->n_dirs > 2)
        return FR_ERR_ARGUMENT;
    if (format == FR_FORMAT_PANELS && !fr_panels_available())
        return FR_ERR_ARGUMENT;
    for (int k = 0; k < d->n_dirs; k++) {
        const fr_frozen_dir *f = &frozen[k];
        if (dirs[k].saved || !prepared_as(f->weight_ih, format, 1, G * H, d->input_size)
            || !prepared_as(f->weight_hh, format, G, H, Hout)
            || (P ? !prepared_as(f->weight_hr, format, 1, P, H) : f->weight_hr != NULL))
            return FR_ERR_ARGUMENT;
    }
    return forward_layer(blas, cell, d, lengths, x, dirs, frozen, format, ws, n_threads);
}
#endif
