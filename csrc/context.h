/* The addressing of one call, for one dtype (a body included by kernels_f32.c
 * and kernels_f64.c with REAL and LAYER set): what a direction reads and
 * writes (ctx), the share of one thread (work), and where row (t, n) of every
 * array lies.
 *
 * Workspace (plan.c, fr_make_layout): one block per direction, then one per
 * thread.  Threads: each direction has a team of plan.per_team threads; a
 * batch split gives each thread its rows [n0, n1) and all units, a hidden
 * split all rows and the units [j0, j1) (output columns [o0, o1)), with a
 * barrier per step.
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
    int panels;               /* this call packs its weights and runs the packed products */
    int format;               /* FR_FORMAT_DENSE, or a frozen call's format (frozen.h) */
    const fr_frozen_dir *fz;  /* a frozen call: this direction's prepared weights; else NULL */
    int all_steps;            /* the input product of one chunk covers every step */
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
    REAL *blocks;             /* backward: fr_gemm_blocked's packed blocks, past tmp */
    REAL *lowp;               /* frozen bfloat16 / int8: the thread's converted state rows */
    REAL *bias;               /* forward: the folded biases of the thread's input columns */
} work;

static inline REAL *W(const ctx *c, size_t offset) { return c->ws + offset; }
static inline int64_t len_of(const ctx *c, int64_t n) { return c->lengths ? c->lengths[n] : c->T; }
static inline int64_t time_of(const ctx *c, int64_t len, int64_t s)
{
    return c->L->reverse ? len - 1 - s : s;
}
static inline int64_t part(int64_t total, int k, int parts) { return total * k / parts; }

/* part() at whole panels of 16: where a frozen call's hidden split cuts, so
 * that each thread's units start at a panel of the prepared weights. */
static inline int64_t panel_part(int64_t total, int k, int parts)
{
    int64_t at = FR_LOWP_PANEL * part((total + FR_LOWP_PANEL - 1) / FR_LOWP_PANEL, k, parts);
    return at < total ? at : total;
}

#define BARRIER_IF(cond)                                                          \
    do {                                                                          \
        if (cond) {                                                               \
            _Pragma("omp barrier")                                                \
        }                                                                         \
    } while (0)

/* ---- rows ------------------------------------------------------------------- */

/* Row (t, n) of the gate pre-activations: the input half (biases folded in),
 * to which a step adds the recurrent half.  Training keeps all T steps in
 * saved; inference the current chunk of steps in the workspace. */
static inline REAL *xg_row(const ctx *c, int64_t n, int64_t t)
{
    if (c->all_steps)
        return (c->saved ? c->saved + c->sl.gates : W(c, c->lay.xg)) + (t * c->N + n) * c->GH;
    int64_t base = c->L->reverse ? len_of(c, n) - c->s0 - c->chunk : c->s0;
    return W(c, c->lay.xg) + ((t - base) * c->N + n) * c->GH;
}

/* The thread's block of hg: its rows, all gates of its units. */
static inline REAL *hg_of(const ctx *c, const work *w)
{
    int64_t nu = w->j1 - w->j0;
    return W(c, c->lay.hg) + w->n0 * c->G * nu + c->N * c->G * w->j0;
}

/* Whether a step's recurrent half can be added straight onto its input half
 * (the pre-activations in xg or saved): when the step's rows all read one
 * timestep, whose rows lie GH apart.  Only a reverse direction with lengths
 * gives each row its own timestep; there the product goes to hg and the cell
 * adds it.  Summing in place spares a pass over the gates per step. */
static inline int sums_in_place(const ctx *c) { return !(c->lengths && c->L->reverse); }

static inline REAL *y_row(const ctx *c, int64_t n, int64_t t) { return c->L->y + (t * c->N + n) * c->ldy; }
static inline REAL *saved_row(const ctx *c, size_t field, int64_t n, int64_t t, int64_t width)
{
    return c->saved + field + (t * c->N + n) * width;
}
static inline const REAL *dy_row(const ctx *c, int64_t n, int64_t t)
{
    return c->L->dy ? c->L->dy + (t * c->N + n) * c->ldy : NULL;
}
static inline REAL *dgx_row(const ctx *c, int64_t n, int64_t t)
{
    return W(c, c->lay.dgx) + (t * c->N + n) * c->GH;
}

/* Backward at step s past row n's length: the gradients of every gate at the
 * thread's units are zero (in dgx and in dhg, which the dh product reads). */
static inline void zero_gate_grads(const ctx *c, const work *w, int64_t n, int64_t s)
{
    size_t bytes = (size_t)(w->j1 - w->j0) * sizeof(REAL);
    REAL *dgx = dgx_row(c, n, s) + w->j0, *dhg = W(c, c->lay.dhg) + n * c->GH + w->j0;
    for (int64_t k = 0; k < c->G; k++) {
        memset(dgx + k * c->H, 0, bytes);
        memset(dhg + k * c->H, 0, bytes);
    }
}

/* After a forward step: output columns [o0, o1) of the thread's rows.  Active
 * rows write y (and the state the step started from, for training); rows past
 * their length keep their state and write zeros. */
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

/* ---- setting up a call ------------------------------------------------------ */

static void make_ctx(ctx *c, const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                     const int64_t *lengths, const REAL *x, const LAYER *L, int dir,
                     const fr_plan *plan, const fr_layout *lay, REAL *ws,
                     const fr_frozen_dir *fz, int format)
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
    c->format = format;
    c->fz = fz;
    c->panels = format == FR_FORMAT_DENSE && FR_REAL_IS_FLOAT && FR_HAVE_PACKED
                && plan->packs && fr_packed_enabled();
    c->s0 = 0;
}

/* The thread's share: direction, rows, units and output columns. */
static int make_work(work *w, const fr_plan *plan, const fr_layout *lay, REAL *ws, int n_dirs,
                     int64_t N, int64_t H, int64_t P, int tid, int format)
{
    int64_t (*cut)(int64_t, int, int) = format == FR_FORMAT_DENSE ? part : panel_part;
    int dir = plan->teams == 1 ? 0 : tid / plan->per_team;
    w->rank = tid % plan->per_team;
    w->team_size = plan->per_team;
    int k = w->rank, parts = plan->per_team;
    int64_t Hout = P ? P : H;
    if (plan->split == FR_SPLIT_HIDDEN) {
        w->n0 = 0, w->n1 = N;
        w->j0 = cut(H, k, parts), w->j1 = cut(H, k + 1, parts);
        w->o0 = cut(Hout, k, parts), w->o1 = cut(Hout, k + 1, parts);
        w->sync = parts > 1;
    } else {
        w->n0 = part(N, k, parts), w->n1 = part(N, k + 1, parts);
        w->j0 = 0, w->j1 = H;
        w->o0 = 0, w->o1 = Hout;
        w->sync = 0;
    }
    w->tmp = ws + (size_t)n_dirs * lay->per_dir + (size_t)tid * lay->per_thread;
    w->blocks = w->tmp + 12 * H;
    w->lowp = w->tmp + lay->lowp;
    w->bias = w->tmp + lay->bias;
    return dir;
}
