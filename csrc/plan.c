/* How a call splits its work over threads and where its scratch lies: the
 * thread plan, the workspace layout (per direction, then per thread) and the
 * saved block of training, and their sizes (fr_workspace_size,
 * fr_saved_size).  Shared by both dtypes; no kernels here. */
#include "plan.h"
#include "packed.h"

/* Below this many multiply-adds per step, or per call, a second thread costs
 * more than it saves (waking it, and a barrier or two). */
#define FR_MIN_WORK_PER_THREAD 32768
#define FR_MIN_WORK_PER_CALL 262144
/* Rows of an input GEMM in inference: enough for the product to run at
 * speed (FR_MIN_CHUNK_ROWS), few enough that their pre-activations stay in
 * L2 until the steps add to them (FR_CHUNK_VALUES: 512 KB of float32), and
 * the scratch stays O(N * H) whatever T (FR_CHUNK_ROWS). */
#define FR_CHUNK_VALUES 131072
#define FR_MIN_CHUNK_ROWS 256
#define FR_CHUNK_ROWS 1024
/* A batch split wants at least this many rows per thread; in inference of
 * weights too large for L2 (plan.h), a whole group of rows of the packed
 * product (FR_FEW_ROWS): with fewer, each thread streams all of W_hh from L3
 * at every step for a few rows, where a hidden split streams each part once
 * for all of them. */
#define FR_MIN_ROWS_PER_THREAD 4
/* A hidden split wants at least this many units per thread. */
#define FR_MIN_UNITS_PER_THREAD 16

fr_plan fr_make_plan(const fr_cell *cell, const fr_dims *d, int pass, int n_threads)
{
    fr_plan p;
    int64_t N = d->batch, H = d->hidden_size, G = fr_gates(cell->mode);
    int64_t Hout = d->proj_size ? d->proj_size : H;
    if (n_threads < 1)
        n_threads = 1;
#ifndef _OPENMP
    n_threads = 1; /* a serial build: a split would leave all but the first part undone */
#endif
    int64_t work = N * G * H * Hout; /* multiply-adds of one step's recurrent product */
    if (d->seq_len * N * G * H * (Hout + d->input_size) < FR_MIN_WORK_PER_CALL)
        n_threads = 1;
    /* The two directions run at once when each has a thread's worth of work. */
    p.teams = (d->n_dirs == 2 && n_threads >= 2 && work >= FR_MIN_WORK_PER_THREAD) ? 2 : 1;
    int per = n_threads / p.teams;
    p.split = FR_SPLIT_BATCH;
    if (per > 1) {
        int64_t by_work = work / FR_MIN_WORK_PER_THREAD;
        if (by_work < per)
            per = by_work < 1 ? 1 : (int)by_work;
    }
    if (per > 1) {
        int64_t rows = pass == FR_PASS_INFERENCE && fr_large_weights(G, d) ? FR_FEW_ROWS
                                                                            : FR_MIN_ROWS_PER_THREAD;
        if (N >= (int64_t)per * rows) {
            p.split = FR_SPLIT_BATCH;
        } else {
            int64_t by_units = H / FR_MIN_UNITS_PER_THREAD;
            if (by_units < per)
                per = by_units < 1 ? 1 : (int)by_units;
            p.split = per > 1 ? FR_SPLIT_HIDDEN : FR_SPLIT_BATCH;
        }
    }
    p.per_team = per;
    p.n_threads = p.teams * per;
    int64_t T = d->seq_len;
    if (pass == FR_PASS_INFERENCE) {
        int64_t rows = FR_CHUNK_VALUES / (G * H);
        rows = rows < FR_MIN_CHUNK_ROWS ? FR_MIN_CHUNK_ROWS : (rows > FR_CHUNK_ROWS ? FR_CHUNK_ROWS : rows);
        int64_t chunk = rows / (N > 0 ? N : 1);
        p.chunk = chunk < 1 ? 1 : (chunk > T ? T : chunk);
    } else {
        p.chunk = T;
    }
    p.packs = fr_worth_packing(G, d, pass);
    return p;
}

/* n elements rounded up to a whole number of 64-byte lines (of float32; of
 * float64, two): with the workspace on a line, every region starts on one,
 * and a packed panel's rows are whole lines. */
static size_t fr_lines(size_t n) { return (n + 15) & ~(size_t)15; }

fr_layout fr_make_layout(const fr_cell *cell, const fr_dims *d, int pass, const fr_plan *plan,
                         int format)
{
    fr_layout l = {0};
    size_t T = (size_t)d->seq_len, N = (size_t)d->batch, H = (size_t)d->hidden_size;
    size_t P = (size_t)d->proj_size, G = (size_t)fr_gates(cell->mode);
    size_t Hout = P ? P : H, GH = G * H, TN = T * N;
    int lstm = cell->mode == FR_LSTM;
    int gru_lbr = cell->mode == FR_GRU && cell->linear_before_reset;
    int gru_orig = cell->mode == FR_GRU && !cell->linear_before_reset;
    size_t off = 0;
    /* A frozen call's weights are prepared: it packs none of its own. */
    int packs = format == FR_FORMAT_DENSE && plan->packs;
#define FR_TAKE(field, n) (l.field = off, off += fr_lines(n))
    if (pass == FR_PASS_BACKWARD) {
        FR_TAKE(dgx, TN * GH);
        FR_TAKE(daux, gru_lbr ? TN * H : 0);
        FR_TAKE(dhout, TN * P);
        FR_TAKE(dh, 2 * N * Hout);
        FR_TAKE(dc, lstm ? N * H : 0);
        FR_TAKE(dhg, N * GH);
        FR_TAKE(dhtot, N * P);
        FR_TAKE(dhsc, (P || gru_orig) ? N * H : 0);
        /* W_hh packed per thread for the dh product (float32, AVX-512) */
        FR_TAKE(panels_hh, plan->packs ? GH * (Hout + FR_PANEL * (size_t)plan->per_team) : 0);
    } else {
        FR_TAKE(h, 2 * N * Hout);
        FR_TAKE(c, lstm ? N * H : 0);
        FR_TAKE(hfull, P ? N * H : 0);
        FR_TAKE(rh, gru_orig ? N * H : 0);
        FR_TAKE(hg, N * GH);
        /* W_hh packed per thread, gate by gate (float32, AVX-512) */
        FR_TAKE(panels_hh, packs ? G * (H + FR_PANEL * (size_t)plan->per_team) * Hout : 0);
        /* W_ih packed per thread, its columns of the input GEMM (float32, AVX-512) */
        FR_TAKE(panels_ih, packs ? (GH + FR_PANEL * (size_t)plan->per_team) * (size_t)d->input_size
                                 : 0);
        FR_TAKE(xg, pass == FR_PASS_INFERENCE ? (size_t)plan->chunk * N * GH : 0);
        FR_TAKE(xq, fr_lowp_rows_floats(format, plan->chunk * (int64_t)N, d->input_size));
    }
#undef FR_TAKE
    l.per_dir = off;
    l.per_thread = fr_lines(12 * H); /* activation values and derivatives of one row's unit slice */
    l.lowp = l.per_thread; /* then a frozen call's converted state rows (H >= H_out wide) */
    l.per_thread += fr_lines(fr_lowp_rows_floats(format, (int64_t)N, (int64_t)H));
    if (pass != FR_PASS_BACKWARD) { /* the folded biases of the input product's columns */
        l.bias = l.per_thread;
        l.per_thread += fr_lines(GH);
    }
    if (pass == FR_PASS_BACKWARD && plan->packs) { /* fr_gemm_blocked's operands */
        size_t widest = (size_t)d->input_size > H ? (size_t)d->input_size : H;
        widest = Hout > widest ? Hout : widest;
        l.per_thread += fr_lines((size_t)fr_blocked_scratch((int64_t)widest));
    }
    l.total = (size_t)d->n_dirs * l.per_dir + (size_t)plan->n_threads * l.per_thread;
    return l;
}

fr_saved_layout fr_make_saved_layout(const fr_cell *cell, const fr_dims *d)
{
    fr_saved_layout s;
    size_t TN = (size_t)d->seq_len * (size_t)d->batch, H = (size_t)d->hidden_size;
    size_t P = (size_t)d->proj_size, G = (size_t)fr_gates(cell->mode);
    size_t off = 0;
    s.gates = off; off += TN * G * H;          /* gate pre-activations */
    s.hprev = off; off += TN * (P ? P : H);    /* the state each step started from */
    s.c = off; off += cell->mode == FR_LSTM ? TN * H : 0;  /* LSTM cell state after each step */
    s.hfull = off; off += P ? TN * H : 0;      /* LSTM o * h(c) before the projection */
    s.aux = off; off += cell->mode == FR_GRU ? TN * H : 0; /* GRU: W_hn h + b_hn, or r * h */
    s.total = off;
    return s;
}

size_t fr_workspace_size(const fr_cell *cell, const fr_dims *d, int pass, int n_threads)
{
    fr_plan plan = fr_make_plan(cell, d, pass, n_threads);
    return fr_make_layout(cell, d, pass, &plan, FR_FORMAT_DENSE).total;
}

size_t fr_frozen_workspace_size(const fr_cell *cell, const fr_dims *d, int format, int n_threads)
{
    fr_plan plan = fr_make_plan(cell, d, FR_PASS_INFERENCE, n_threads);
    return fr_make_layout(cell, d, FR_PASS_INFERENCE, &plan, format).total;
}

size_t fr_saved_size(const fr_cell *cell, const fr_dims *d)
{
    return fr_make_saved_layout(cell, d).total;
}
