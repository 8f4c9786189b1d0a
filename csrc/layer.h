/* The timestep loop shared by the three cells, for one dtype (REAL, LAYER).
 *
 * A call runs one layer, all its directions, in one OpenMP parallel region
 * that spans the whole sequence:
 *   1. the input half of every gate for a chunk of timesteps is one GEMM,
 *      biases folded in (training: one chunk of all T steps, kept as the
 *      saved gate pre-activations);
 *   2. per step, the recurrent product (one GEMM of the thread's rows or
 *      hidden units against weights packed once per call) and, right behind
 *      it, the cell's fused elementwise pass (rnn.c, lstm.c, gru.c);
 *   3. backward: per step in reverse the fused gate gradients and one product
 *      for dh; then the weight gradients and dx as a few GEMMs over all steps.
 * Threads: each direction has a team (plan.h).  A batch split gives each
 * thread its own rows and needs no barrier per step; a hidden split gives
 * each thread a slice of units, all gates of the slice packed together, and
 * a barrier per step.  Inside the region every BLAS call is single-threaded.
 *
 * Row (t, n) of a step: with lengths, sequence n runs steps s < L_n, forward
 * at t = s, reverse at t = L_n - 1 - s; at steps s >= L_n its state is kept
 * and row (s, n) of y is zero. */

typedef struct {
    const fr_blas *blas;
    const fr_cell *cell;
    const LAYER *L;
    const int64_t *lengths;
    const REAL *x;
    fr_plan plan;
    fr_layout lay;
    fr_saved_layout sl;
    int64_t T, N, I, H, P, Hout, G, GH, ldy;
    REAL clip;
    REAL *ws;                 /* this direction's block of the workspace */
    REAL *saved;              /* training: the saved block; NULL in inference */
    int packed;               /* per-step products over weights packed once (float, AVX-512) */
    int all_steps;            /* the input GEMM of one chunk covers every step */
    int64_t s0, chunk;        /* the current chunk of steps (inference) */
} ctx;

/* The part of the work that belongs to one thread. */
typedef struct {
    int64_t n0, n1;           /* batch rows */
    int64_t j0, j1;           /* hidden units */
    int64_t o0, o1;           /* output columns (units, or projection units) */
    int rank, team_size;      /* place in the direction's team */
    int sync;                 /* a barrier is needed after each phase of a step */
    REAL *tmp;                /* per-thread scratch, 12 * H */
    REAL *pack;               /* backward: operands of the blocked products, past tmp */
} work;

static inline REAL *W(const ctx *c, size_t offset) { return c->ws + offset; }
static inline int64_t len_of(const ctx *c, int64_t n) { return c->lengths ? c->lengths[n] : c->T; }
static inline int64_t time_of(const ctx *c, int64_t len, int64_t s)
{
    return c->L->reverse ? len - 1 - s : s;
}
static inline int64_t part(int64_t total, int k, int parts) { return total * k / parts; }

#define BARRIER_IF(cond)                                                          \
    do {                                                                          \
        if (cond) {                                                               \
            _Pragma("omp barrier")                                                \
        }                                                                         \
    } while (0)

/* Up to this many rows, A B^T runs as dot products of rows (fr_dot_rows). */
#define FR_DOT_ROWS 4

/* Row-major C (m x n) = alpha op(A) op(B) + beta C, op(A) (m x k), op(B) (k x n). */
static void gemm_rm(const fr_blas *blas, int trans_a, int trans_b, int64_t m, int64_t n,
                    int64_t k, REAL alpha, const REAL *A, int64_t lda, const REAL *B,
                    int64_t ldb, REAL beta, REAL *C, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    char ta = trans_b ? 'T' : 'N', tb = trans_a ? 'T' : 'N';
    fr_blas_int M = (fr_blas_int)n, Nn = (fr_blas_int)m, K = (fr_blas_int)k;
    fr_blas_int la = (fr_blas_int)ldb, lb = (fr_blas_int)lda, lc = (fr_blas_int)ldc;
#if FR_REAL_IS_FLOAT
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

/* ---- forward ---------------------------------------------------------------- */

/* Row (t, n) of the input half of the gates (biases folded in). */
static inline REAL *xg_row(const ctx *c, int64_t n, int64_t t)
{
    if (c->all_steps)
        return (c->saved ? c->saved + c->sl.gates : W(c, c->lay.xg)) + (t * c->N + n) * c->GH;
    int64_t base = c->L->reverse ? len_of(c, n) - c->s0 - c->chunk : c->s0;
    return W(c, c->lay.xg) + ((t - base) * c->N + n) * c->GH;
}

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

/* The thread's columns [k0, k1) of the input GEMM: W_ih's rows, packed once per
 * call (float32, AVX-512) into the thread's own block. */
static inline void input_columns(const work *w, int64_t GH, int64_t *k0, int64_t *k1)
{
    *k0 = part(GH, w->rank, w->team_size);
    *k1 = part(GH, w->rank + 1, w->team_size);
}

static inline REAL *packed_ih_of(const ctx *c, const work *w, int64_t k0)
{
    return W(c, c->lay.wpack_ih) + c->I * (k0 + FR_PANEL * w->rank);
}

static void pack_input(const ctx *c, const work *w)
{
#if FR_REAL_IS_FLOAT
    if (c->packed) {
        int64_t k0, k1;
        input_columns(w, c->GH, &k0, &k1);
        fr_pack_rows(packed_ih_of(c, w, k0), c->L->weight_ih, c->I, k0, k1 - k0, c->I);
    }
#else
    (void)c, (void)w;
#endif
}

/* C rows = bias + x rows @ W_ih[k0:k1]^T for `rows` x rows starting at x_row
 * (stride ldx) into C (stride ldc), gate columns [k0, k1); `packed`: the
 * thread's own columns, packed by pack_input. */
static void input_product(const ctx *c, const work *w, int packed, const REAL *x_row,
                          int64_t ldx, int64_t rows, REAL *C, int64_t ldc, int64_t k0, int64_t k1)
{
    if (rows <= 0 || k1 <= k0)
        return;
    for (int64_t k = k0; k < k1; k++)
        C[k] = folded_bias(c, k);
    for (int64_t r = 1; r < rows; r++)
        memcpy(C + r * ldc + k0, C + k0, (size_t)(k1 - k0) * sizeof(REAL));
#if FR_REAL_IS_FLOAT
    if (packed) {
        fr_packed_gemm(rows, k1 - k0, c->I, x_row, ldx, packed_ih_of(c, w, k0), C + k0, ldc, 1);
        return;
    }
#else
    (void)w, (void)packed;
#endif
    gemm_rm(c->blas, 0, 1, rows, k1 - k0, c->I, 1, x_row, ldx, c->L->weight_ih + k0 * c->I,
            c->I, 1, C + k0, ldc);
}

/* The input GEMM of the chunk of steps starting at s0, split over the team. */
static void chunk_input(ctx *c, const work *w, int64_t s0)
{
    int64_t T = c->T, N = c->N, I = c->I, GH = c->GH, K = c->chunk;
    c->s0 = s0;
    if (!c->all_steps && c->L->reverse && c->lengths) {
        /* Each sequence has its own window of timesteps: one GEMM per sequence. */
        for (int64_t n = part(N, w->rank, w->team_size); n < part(N, w->rank + 1, w->team_size); n++) {
            int64_t hi = len_of(c, n) - s0, lo = hi - K < 0 ? 0 : hi - K;
            if (hi > lo)
                input_product(c, w, 0, c->x + (lo * N + n) * I, N * I, hi - lo, xg_row(c, n, lo),
                              N * GH, 0, GH);
        }
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
    input_columns(w, GH, &k0, &k1);
    input_product(c, w, c->packed, c->x + lo * N * I, I, (hi - lo) * N, xg_row(c, 0, lo), GH,
                  k0, k1);
}

/* The thread's block of hg: its rows, all gates of its units. */
static inline REAL *hg_of(const ctx *c, const work *w)
{
    int64_t nu = w->j1 - w->j0;
    return W(c, c->lay.hg) + w->n0 * c->G * nu + c->N * c->G * w->j0;
}

/* The thread's packed weights: `blocks` blocks of K rows, each padded to whole
 * panels (one per gate forward, one backward).  A hidden split packs per
 * thread, so a thread starts blocks * FR_PANEL columns of padding further per
 * earlier thread; a batch split shares one copy, packed by the team's first
 * thread before the barrier that precedes the first step. */
static inline REAL *packed_of(const ctx *c, const work *w, int64_t K, int64_t col0, int64_t blocks)
{
    if (c->plan.split != FR_SPLIT_HIDDEN)
        return W(c, c->lay.wpack);
    return W(c, c->lay.wpack) + K * (col0 + blocks * FR_PANEL * w->rank);
}

static inline int packs(const ctx *c, const work *w)
{
    return c->plan.split == FR_SPLIT_HIDDEN || w->rank == 0;
}

/* Whether a step's recurrent half can be added straight onto its input half
 * (the pre-activations in xg or saved): when the step's rows all read one
 * timestep, whose rows lie GH apart.  Only a reverse direction with lengths
 * gives each row its own timestep; there the product goes to hg and the cell
 * adds it.  Summing in place spares a pass over the gates per step. */
static inline int sums_in_place(const ctx *c) { return !(c->lengths && c->L->reverse); }

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
#if FR_REAL_IS_FLOAT
    if (c->packed) {
        const REAL *pack = packed_of(c, w, K, G * w->j0, G);
        for (int64_t g = g0; g < g1; g++)
            fr_packed_gemm(rows, nu, K, h, ldh, pack + g * fr_packed_size(K, nu),
                           out + g * gate_stride, ldo, in_place);
        return;
    }
#endif
    if (c->plan.split != FR_SPLIT_HIDDEN) { /* all units: the gates' rows are contiguous */
        gemm_rm(c->blas, 0, 1, rows, (g1 - g0) * nu, K, 1, h, ldh, c->L->weight_hh + g0 * nu * K,
                K, in_place, out + g0 * gate_stride, ldo);
        return;
    }
    for (int64_t g = g0; g < g1; g++) /* the thread's rows of each gate, read in place */
        gemm_rm(c->blas, 0, 1, rows, nu, K, 1, h, ldh, c->L->weight_hh + (g * c->H + w->j0) * K,
                K, in_place, out + g * gate_stride, ldo);
}

/* Pack the rows of W_hh of the thread's units, gate by gate. */
static void pack_recurrent(const ctx *c, const work *w)
{
#if FR_REAL_IS_FLOAT
    int64_t nu = w->j1 - w->j0, K = c->Hout;
    if (c->packed && packs(c, w)) {
        REAL *pack = packed_of(c, w, K, c->G * w->j0, c->G);
        for (int64_t g = 0; g < c->G; g++)
            fr_pack_rows(pack + g * fr_packed_size(K, nu), c->L->weight_hh, K, g * c->H + w->j0,
                         nu, K);
    }
#else
    (void)c, (void)w;
#endif
}

static inline REAL *y_row(const ctx *c, int64_t n, int64_t t) { return c->L->y + (t * c->N + n) * c->ldy; }
static inline REAL *saved_row(const ctx *c, size_t field, int64_t n, int64_t t, int64_t width)
{
    return c->saved + field + (t * c->N + n) * width;
}

/* After a step: output columns [o0, o1) of the thread's rows.  Active rows write
 * y (and the state the step started from, for training); rows past their
 * length keep their state and write zeros. */
static void finish_step(const ctx *c, const work *w, int64_t s, const REAL *hprev, REAL *hnext)
{
    size_t bytes = (size_t)(w->o1 - w->o0) * sizeof(REAL);
    for (int64_t n = w->n0; n < w->n1; n++) {
        int64_t len = len_of(c, n);
        const REAL *hp = hprev + n * c->Hout + w->o0;
        REAL *hn = hnext + n * c->Hout + w->o0;
        if (s < len) {
            int64_t t = time_of(c, len, s);
            memcpy(y_row(c, n, t) + w->o0, hn, bytes);
            if (c->saved)
                memcpy(saved_row(c, c->sl.hprev, n, t, c->Hout) + w->o0, hp, bytes);
        } else {
            memcpy(hn, hp, bytes);
            memset(y_row(c, n, s) + w->o0, 0, bytes);
            if (c->saved)
                memset(saved_row(c, c->sl.hprev, n, s, c->Hout) + w->o0, 0, bytes);
        }
    }
}

/* The cells' steps (rnn.c, lstm.c, gru.c), each compiled also for AVX2 and
 * AVX-512 and picked at load time. */
FR_CLONES static void rnn_step_forward(const ctx *c, const work *w, int64_t s, const REAL *hprev, REAL *hnext);
FR_CLONES static void lstm_step_forward(const ctx *c, const work *w, int64_t s, const REAL *hprev, REAL *hnext);
FR_CLONES static void gru_step_forward(const ctx *c, const work *w, int64_t s, const REAL *hprev, REAL *hnext);
FR_CLONES static void rnn_step_backward(const ctx *c, const work *w, int64_t s, const REAL *dhcur, REAL *dhnext);
FR_CLONES static void lstm_step_backward(const ctx *c, const work *w, int64_t s, const REAL *dhcur, REAL *dhnext);
FR_CLONES static void gru_step_backward(const ctx *c, const work *w, int64_t s, const REAL *dhcur, REAL *dhnext);

/* ---- setting up a call ------------------------------------------------------ */

static void make_ctx(ctx *c, const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                     const int64_t *lengths, const REAL *x, const LAYER *L, int dir,
                     const fr_plan *plan, const fr_layout *lay, REAL *ws)
{
    c->blas = blas;
    c->cell = cell;
    c->L = L;
    c->lengths = lengths;
    c->x = x;
    c->plan = *plan;
    c->lay = *lay;
    c->sl = fr_make_saved_layout(cell, d);
    c->T = d->seq_len;
    c->N = d->batch;
    c->I = d->input_size;
    c->H = d->hidden_size;
    c->P = d->proj_size;
    c->Hout = c->P ? c->P : c->H;
    c->G = fr_gates(cell->mode);
    c->GH = c->G * c->H;
    c->ldy = d->ldy;
    c->clip = (REAL)cell->clip;
    c->ws = ws + (size_t)dir * lay->per_dir;
    c->saved = L->saved;
    c->chunk = L->saved ? c->T : plan->chunk;
    c->all_steps = c->chunk >= c->T;
    c->packed = FR_REAL_IS_FLOAT && fr_worth_packing(d) && fr_packed_enabled();
    c->s0 = 0;
}

/* The thread's share: direction, rows, units and output columns. */
static int make_work(work *w, const fr_plan *plan, const fr_layout *lay, REAL *ws, int n_dirs,
                     int64_t N, int64_t H, int64_t P, int tid)
{
    int dir = plan->teams == 1 ? 0 : tid / plan->per_team;
    w->rank = tid % plan->per_team;
    w->team_size = plan->per_team;
    int k = w->rank, parts = plan->per_team;
    int64_t Hout = P ? P : H;
    if (plan->split == FR_SPLIT_HIDDEN) {
        w->n0 = 0, w->n1 = N;
        w->j0 = part(H, k, parts), w->j1 = part(H, k + 1, parts);
        w->o0 = part(Hout, k, parts), w->o1 = part(Hout, k + 1, parts);
        w->sync = parts > 1;
    } else {
        w->n0 = part(N, k, parts), w->n1 = part(N, k + 1, parts);
        w->j0 = 0, w->j1 = H;
        w->o0 = 0, w->o1 = Hout;
        w->sync = 0;
    }
    w->tmp = ws + (size_t)n_dirs * lay->per_dir + (size_t)tid * lay->per_thread;
    w->pack = w->tmp + 12 * H;
    return dir;
}

/* ---- forward ---------------------------------------------------------------- */

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
    pack_recurrent(c, w);
    pack_input(c, w);
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

fr_status FR_NAME(fr_forward)(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                              const int64_t *lengths, const REAL *x, const LAYER *dirs,
                              REAL *ws, int n_threads)
{
    if (d->n_dirs < 1 || d->n_dirs > 2 || d->seq_len < 1 || d->batch < 1)
        return FR_ERR_ARGUMENT;
    int pass = dirs[0].saved ? FR_PASS_TRAIN : FR_PASS_INFERENCE;
    fr_plan plan = fr_make_plan(cell, d, pass, n_threads);
    fr_layout lay = fr_make_layout(cell, d, pass, &plan);
#pragma omp parallel num_threads(plan.n_threads)
    {
        work w;
        int tid = omp_get_thread_num();
        int dir = make_work(&w, &plan, &lay, ws, d->n_dirs, d->batch, d->hidden_size,
                            d->proj_size, tid);
        /* With one team, the thread runs the directions one after the other. */
        int last = plan.teams == 1 ? d->n_dirs - 1 : dir;
        for (; dir <= last; dir++) {
            ctx c;
            make_ctx(&c, blas, cell, d, lengths, x, &dirs[dir], dir, &plan, &lay, ws);
            run_forward(&c, &w);
        }
    }
    return FR_OK;
}

/* ---- backward --------------------------------------------------------------- */

static inline const REAL *dy_row(const ctx *c, int64_t n, int64_t t)
{
    return c->L->dy ? c->L->dy + (t * c->N + n) * c->ldy : NULL;
}
static inline REAL *dgx_row(const ctx *c, int64_t n, int64_t t)
{
    return W(c, c->lay.dgx) + (t * c->N + n) * c->GH;
}

/* The rows of W_hh that the dh product reads: all, or the GRU's r and z without
 * linear_before_reset (its n part goes through r * h). */
static inline int64_t dh_product_depth(const ctx *c)
{
    return c->cell->mode == FR_GRU && !c->cell->linear_before_reset ? 2 * c->H : c->GH;
}

/* After the cell's gate gradients of step s: dhnext[rows, outs] += dhg[rows, :K] @ W_hh[:K, outs]. */
static void recurrent_grad_product(const ctx *c, const work *w, REAL *dhnext, int64_t K)
{
    int64_t rows = w->n1 - w->n0, outs = w->o1 - w->o0;
    const REAL *dhg = W(c, c->lay.dhg) + w->n0 * c->GH;
    REAL *out = dhnext + w->n0 * c->Hout + w->o0;
#if FR_REAL_IS_FLOAT
    if (c->packed) {
        fr_packed_gemm(rows, outs, K, dhg, c->GH, packed_of(c, w, K, w->o0, 1), out, c->Hout, 1);
        return;
    }
#endif
    gemm_rm(c->blas, 0, 0, rows, outs, K, 1, dhg, c->GH, c->L->weight_hh + w->o0, c->Hout, 1,
            out, c->Hout);
}

static void run_backward_steps(ctx *c, const work *w)
{
    const LAYER *L = c->L;
    int64_t N = c->N, H = c->H, Hout = c->Hout, T = c->T;
    REAL *dh[2] = {W(c, c->lay.dh), W(c, c->lay.dh) + N * Hout};
    REAL *dc = W(c, c->lay.dc);
#if FR_REAL_IS_FLOAT
    if (c->packed && packs(c, w)) {
        int64_t K = dh_product_depth(c);
        fr_pack_cols(packed_of(c, w, K, w->o0, 1), L->weight_hh, Hout, w->o0, w->o1 - w->o0, K);
    }
#endif
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

/* A product over all steps at the end of backward, C = op(A) B (+ C with
 * accumulate): the blocked kernel (float32, AVX-512; its operands packed into
 * the thread's `pack`), else BLAS. */
static void steps_product(const ctx *c, REAL *pack, int trans_a, int64_t m, int64_t n,
                          int64_t k, const REAL *A, int64_t lda, const REAL *B, int64_t ldb,
                          int accumulate, REAL *C, int64_t ldc)
{
#if FR_REAL_IS_FLOAT
    if (c->packed) {
        if (m > 0 && n > 0)
            fr_gemm_blocked(trans_a, m, n, k, A, lda, B, ldb, C, ldc, accumulate, pack);
        return;
    }
#else
    (void)pack;
#endif
    gemm_rm(c->blas, trans_a, 0, m, n, k, 1, A, lda, B, ldb, accumulate, C, ldc);
}

/* Weight and bias gradients of one direction, part k of `parts`. */
static void weight_grads(const ctx *c, REAL *pack, int k, int parts)
{
    const LAYER *L = c->L;
    int64_t TN = c->T * c->N, H = c->H, I = c->I, GH = c->GH, Hout = c->Hout, P = c->P;
    const REAL *dgx = W(c, c->lay.dgx);
    const REAL *hprev = c->saved + c->sl.hprev;
    int64_t a = part(GH, k, parts), b = part(GH, k + 1, parts);
    /* dW_ih = dgates^T x */
    steps_product(c, pack, 1, b - a, I, TN, dgx + a, GH, c->x, I, 0, L->dweight_ih + a * I, I);
    /* dW_hh = dgates_h^T h_prev.  The GRU's n rows differ: with linear_before_reset
     * the gradient of (W_hn h + b_hn) is r * dn (daux); without, the right factor is r * h. */
    int gru = c->cell->mode == FR_GRU;
    int64_t split = gru ? (b < 2 * H ? b : (a > 2 * H ? a : 2 * H)) : b;
    steps_product(c, pack, 1, split - a, Hout, TN, dgx + a, GH, hprev, Hout, 0,
                  L->dweight_hh + a * Hout, Hout);
    if (gru && b > split) {
        const REAL *aux = c->saved + c->sl.aux;
        if (c->cell->linear_before_reset)
            steps_product(c, pack, 1, b - split, H, TN, W(c, c->lay.daux) + (split - 2 * H), H,
                          hprev, H, 0, L->dweight_hh + split * H, H);
        else
            steps_product(c, pack, 1, b - split, H, TN, dgx + split, GH, aux, H, 0,
                          L->dweight_hh + split * H, H);
    }
    if (L->dbias_ih)
        column_sums(dgx + a, GH, TN, b - a, L->dbias_ih + a);
    if (L->dbias_hh) {
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
        steps_product(c, pack, 1, pb - pa, H, TN, W(c, c->lay.dhout) + pa, P,
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

fr_status FR_NAME(fr_backward)(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                               const int64_t *lengths, const REAL *x, REAL *dx,
                               const LAYER *dirs, REAL *ws, int n_threads)
{
    if (d->n_dirs < 1 || d->n_dirs > 2 || d->seq_len < 1 || d->batch < 1)
        return FR_ERR_ARGUMENT;
    fr_plan plan = fr_make_plan(cell, d, FR_PASS_BACKWARD, n_threads);
    fr_layout lay = fr_make_layout(cell, d, FR_PASS_BACKWARD, &plan);
    int64_t TN = d->seq_len * d->batch, I = d->input_size;
    int64_t GH = fr_gates(cell->mode) * d->hidden_size;
#pragma omp parallel num_threads(plan.n_threads)
    {
        work w;
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        int dir = make_work(&w, &plan, &lay, ws, d->n_dirs, d->batch, d->hidden_size,
                            d->proj_size, tid);
        int last = plan.teams == 1 ? d->n_dirs - 1 : dir;
        for (; dir <= last; dir++) {
            ctx c;
            make_ctx(&c, blas, cell, d, lengths, x, &dirs[dir], dir, &plan, &lay, ws);
            run_backward_steps(&c, &w);
        }
        _Pragma("omp barrier")
        /* Every thread takes a share of the big products over all steps. */
        for (int k = 0; k < d->n_dirs; k++) {
            ctx c;
            make_ctx(&c, blas, cell, d, lengths, x, &dirs[k], k, &plan, &lay, ws);
            weight_grads(&c, w.pack, tid, nt);
            /* dx = sum over directions of dgates @ W_ih */
            int64_t r0 = part(TN, tid, nt), r1 = part(TN, tid + 1, nt);
            steps_product(&c, w.pack, 0, r1 - r0, I, GH, W(&c, lay.dgx) + r0 * GH, GH,
                          dirs[k].weight_ih, I, k ? 1 : 0, dx + r0 * I, I);
        }
    }
    return FR_OK;
}
