/* The backward driver, for one dtype (a body included by kernels_f32.c and
 * kernels_f64.c): fr_backward_f32 / fr_backward_f64, from what forward saved.
 *
 *   1. per step in reverse, the cell (cell_*.h): the fused gate gradients
 *      dgates[t] (kept for all steps, dgx) and one product for dh,
 *      dh_prev = dgates[t] W_hh (+ the cell's direct terms);
 *   2. then the weight gradients and dx as a few products over all steps:
 *      dW_ih = dgates^T x, dW_hh = dgates^T h_prev, db = sum dgates,
 *      dW_hr = dh_out^T (o h(c)), dx = sum over directions of dgates W_ih.
 * Workspace per direction: dgx (T*N, G*H), daux (GRU), dhout (projection), dh
 * (2, N, H_out) ping-pong, dc, dhg, dhtot, dhsc and W_hh packed for dh; per
 * thread 12 H of activation values and fr_gemm_blocked's blocks.  Threads:
 * the steps as forward's teams (a barrier per step with a hidden split); the
 * products over all steps split over every thread of the call, by rows of the
 * gradient (weights) or of dx. */

/* One direction's steps in reverse, the thread's share: dh_n in, dh0 out. */
static void run_backward_steps(ctx *c, const work *w)
{
    const LAYER *L = c->L;
    int64_t N = c->N, H = c->H, Hout = c->Hout, T = c->T;
    REAL *dh[2] = {W(c, c->lay.dh), W(c, c->lay.dh) + N * Hout};
    REAL *dc = W(c, c->lay.dc);
    prepare_backward(c, w);
    for (int64_t n = w->n0; n < w->n1; n++) {
        REAL *dst = dh[(T - 1) & 1] + n * Hout;
        for (int64_t o = w->o0; o < w->o1; o++)
            dst[o] = L->dh_n ? L->dh_n[n * Hout + o] : 0;
        if (c->cell->mode == FR_LSTM)
            for (int64_t j = w->j0; j < w->j1; j++)
                dc[n * H + j] = L->dc_n ? L->dc_n[n * H + j] : 0;
    }
    _Pragma("omp barrier")
    for (int64_t s = T - 1; s >= 0; s--) {
        const REAL *dhcur = dh[s & 1];
        REAL *dhnext = dh[(s & 1) ^ 1];
        switch (c->cell->mode) {
        case FR_RNN: rnn_step_backward(c, w, s, dhcur, dhnext); break;
        case FR_LSTM: lstm_step_backward(c, w, s, dhcur, dhnext); break;
        default: gru_step_backward(c, w, s, dhcur, dhnext); break;
        }
        BARRIER_IF(w->sync);
    }
    size_t obytes = (size_t)(w->o1 - w->o0) * sizeof(REAL);
    for (int64_t n = w->n0; n < w->n1; n++) {
        memcpy(L->dh0 + n * Hout + w->o0, dh[1] + n * Hout + w->o0, obytes);
        if (c->cell->mode == FR_LSTM)
            memcpy(L->dc0 + n * H + w->j0, dc + n * H + w->j0,
                   (size_t)(w->j1 - w->j0) * sizeof(REAL));
    }
}

/* Column sums of rows x cols block A (stride lda) into out[cols], added to or set. */
static void column_sums(const REAL *A, int64_t lda, int64_t rows, int64_t cols, REAL *out)
{
    for (int64_t k = 0; k < cols; k++)
        out[k] = 0;
    for (int64_t r = 0; r < rows; r++) {
        const REAL *row = A + r * lda;
#pragma omp simd
        for (int64_t k = 0; k < cols; k++)
            out[k] += row[k];
    }
}

/* Weight and bias gradients of one direction, part k of `parts`. */
static void weight_grads(const ctx *c, REAL *blocks, int k, int parts)
{
    const LAYER *L = c->L;
    int64_t TN = c->T * c->N, H = c->H, I = c->I, GH = c->GH, Hout = c->Hout, P = c->P;
    const REAL *dgx = W(c, c->lay.dgx);
    const REAL *hprev = c->saved + c->sl.hprev;
    int64_t a = part(GH, k, parts), b = part(GH, k + 1, parts);
    /* dW_ih = dgates^T x */
    steps_product(c, blocks, 1, b - a, I, TN, dgx + a, GH, c->x, I, 0, L->dweight_ih + a * I, I);
    /* dW_hh = dgates_h^T h_prev.  The GRU's n rows differ: with linear_before_reset
     * the gradient of (W_hn h + b_hn) is r * dn (daux); without, the right factor is r * h. */
    int gru = c->cell->mode == FR_GRU;
    int64_t split = gru ? (b < 2 * H ? b : (a > 2 * H ? a : 2 * H)) : b;
    steps_product(c, blocks, 1, split - a, Hout, TN, dgx + a, GH, hprev, Hout, 0,
                  L->dweight_hh + a * Hout, Hout);
    if (gru && b > split) {
        const REAL *aux = c->saved + c->sl.aux;
        if (c->cell->linear_before_reset)
            steps_product(c, blocks, 1, b - split, H, TN, W(c, c->lay.daux) + (split - 2 * H), H,
                          hprev, H, 0, L->dweight_hh + split * H, H);
        else
            steps_product(c, blocks, 1, b - split, H, TN, dgx + split, GH, aux, H, 0,
                          L->dweight_hh + split * H, H);
    }
    if (L->dbias_ih)
        column_sums(dgx + a, GH, TN, b - a, L->dbias_ih + a);
    if (L->dbias_hh) { /* the same sums as db_ih's over [a, split): copied, not summed again */
        if (L->dbias_ih)
            memcpy(L->dbias_hh + a, L->dbias_ih + a, (size_t)(split - a) * sizeof(REAL));
        else
            column_sums(dgx + a, GH, TN, split - a, L->dbias_hh + a);
        if (gru && b > split) {
            if (c->cell->linear_before_reset)
                column_sums(W(c, c->lay.daux) + (split - 2 * H), H, TN, b - split,
                            L->dbias_hh + split);
            else
                column_sums(dgx + split, GH, TN, b - split, L->dbias_hh + split);
        }
    }
    if (P) { /* dW_hr = dh_out^T (o * h(c)) */
        int64_t pa = part(P, k, parts), pb = part(P, k + 1, parts);
        steps_product(c, blocks, 1, pb - pa, H, TN, W(c, c->lay.dhout) + pa, P,
                      c->saved + c->sl.hfull, H, 0, L->dweight_hr + pa * H, H);
    }
    if (L->dweight_peephole) { /* dp_i = sum di c_prev, dp_f = sum df c_prev, dp_o = sum do c */
        int64_t ja = part(H, k, parts), jb = part(H, k + 1, parts);
        REAL *dp = L->dweight_peephole;
        for (int64_t j = ja; j < jb; j++)
            dp[j] = dp[H + j] = dp[2 * H + j] = 0;
        for (int64_t n = 0; n < c->N; n++) {
            int64_t len = len_of(c, n);
            for (int64_t s = 0; s < len; s++) {
                int64_t t = time_of(c, len, s);
                const REAL *g = dgx_row(c, n, t);
                const REAL *cn = saved_row(c, c->sl.c, n, t, H);
                const REAL *cp = s > 0 ? saved_row(c, c->sl.c, n, time_of(c, len, s - 1), H)
                                       : L->c0 + n * H;
                for (int64_t j = ja; j < jb; j++) {
                    dp[j] += g[j] * cp[j];
                    dp[H + j] += g[H + j] * cp[j];
                    dp[2 * H + j] += g[3 * H + j] * cn[j];
                }
            }
        }
    }
}

/* Thread tid's part of a call (of nt threads): its steps back, then its share
 * of the products over all steps. */
static void backward_thread(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                            const int64_t *lengths, const REAL *x, REAL *dx, const LAYER *dirs,
                            REAL *ws, const fr_plan *plan, const fr_layout *lay, int tid, int nt)
{
    int64_t TN = d->seq_len * d->batch, I = d->input_size;
    int64_t GH = fr_gates(cell->mode) * d->hidden_size;
    work w;
    int dir = make_work(&w, plan, lay, ws, d->n_dirs, d->batch, d->hidden_size,
                        d->proj_size, tid, FR_FORMAT_DENSE);
    int last = plan->teams == 1 ? d->n_dirs - 1 : dir;
    for (; dir <= last; dir++) {
        ctx c;
        make_ctx(&c, blas, cell, d, lengths, x, &dirs[dir], dir, plan, lay, ws, NULL,
                 FR_FORMAT_DENSE);
        run_backward_steps(&c, &w);
    }
    _Pragma("omp barrier")
    /* Every thread takes a share of the big products over all steps. */
    for (int k = 0; k < d->n_dirs; k++) {
        ctx c;
        make_ctx(&c, blas, cell, d, lengths, x, &dirs[k], k, plan, lay, ws, NULL,
                 FR_FORMAT_DENSE);
        weight_grads(&c, w.blocks, tid, nt);
        /* dx = sum over directions of dgates @ W_ih */
        int64_t r0 = part(TN, tid, nt), r1 = part(TN, tid + 1, nt);
        steps_product(&c, w.blocks, 0, r1 - r0, I, GH, W(&c, lay->dgx) + r0 * GH, GH,
                      dirs[k].weight_ih, I, k ? 1 : 0, dx + r0 * I, I);
    }
}

fr_status FR_NAME(fr_backward)(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                               const int64_t *lengths, const REAL *x, REAL *dx,
                               const LAYER *dirs, REAL *ws, int n_threads)
{
    if (d->n_dirs < 1 || d->n_dirs > 2 || d->seq_len < 1 || d->batch < 1)
        return FR_ERR_ARGUMENT;
    fr_plan plan = fr_make_plan(cell, d, FR_PASS_BACKWARD, n_threads);
    fr_layout lay = fr_make_layout(cell, d, FR_PASS_BACKWARD, &plan, FR_FORMAT_DENSE);
    if (plan.n_threads == 1) { /* no team to start (libgomp would still wake its pool) */
        backward_thread(blas, cell, d, lengths, x, dx, dirs, ws, &plan, &lay, 0, 1);
        return FR_OK;
    }
#pragma omp parallel num_threads(plan.n_threads)
    backward_thread(blas, cell, d, lengths, x, dx, dirs, ws, &plan, &lay, omp_get_thread_num(),
                    omp_get_num_threads());
    return FR_OK;
}
