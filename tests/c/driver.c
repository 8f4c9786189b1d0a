/* The kernels as plain C, without Python: every cell and option on odd shapes,
 * through the public entry points of fastrnn.h, checked against a scalar
 * double reference (reference.h) and against each other.
 *
 * Per case: the float64 kernels on one thread over BLAS are the judge of
 * backward, themselves checked by central differences of the reference's
 * forward; then float64 on 2 and 3 threads, and float32 with the vectorised
 * products (fr_set_packed(1)) and with BLAS (fr_set_packed(0)) on 1, 2 and 3
 * threads, each compared with the reference (forward) and the judge
 * (backward), and packed float32 with BLAS float32 directly.  Exits 1 on any
 * mismatch, error status or modified input, printing each.
 *
 *   driver [substring]     runs the cases whose name contains substring
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastrnn.h"
#include "plan.h"
#include "driver.h"
#include "reference.h"

/* ---- the system BLAS, with the Fortran calling convention ------------------ */

/* gfortran passes the length of each character argument after the others. */
void sgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k,
            const float *alpha, const float *a, const int *lda, const float *b, const int *ldb,
            const float *beta, float *c, const int *ldc, size_t ta_len, size_t tb_len);
void dgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k,
            const double *alpha, const double *a, const int *lda, const double *b,
            const int *ldb, const double *beta, double *c, const int *ldc, size_t ta_len,
            size_t tb_len);

static void blas_sgemm(char *ta, char *tb, fr_blas_int *m, fr_blas_int *n, fr_blas_int *k,
                       float *alpha, float *a, fr_blas_int *lda, float *b, fr_blas_int *ldb,
                       float *beta, float *c, fr_blas_int *ldc)
{
    sgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 1, 1);
}

static void blas_dgemm(char *ta, char *tb, fr_blas_int *m, fr_blas_int *n, fr_blas_int *k,
                       double *alpha, double *a, fr_blas_int *lda, double *b, fr_blas_int *ldb,
                       double *beta, double *c, fr_blas_int *ldc)
{
    dgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 1, 1);
}

static const fr_blas blas_table = {blas_sgemm, blas_dgemm};

/* ---- the cases --------------------------------------------------------------- */

#define RNN_TANH .mode = FR_RNN, .act = {FR_TANH}
#define RNN_RELU .mode = FR_RNN, .act = {FR_RELU}
#define LSTM_DEFAULT .mode = FR_LSTM, .act = {FR_SIGMOID, FR_TANH, FR_TANH}
#define GRU_DEFAULT .mode = FR_GRU, .act = {FR_SIGMOID, FR_TANH}
#define SIZES(t, n, i, h) .T = t, .N = n, .I = i, .H = h

/* Shapes 1, 3, 17, 33 (and 65, 81, 97 where a case must reach a split of the
 * hidden units over 3 threads); T = 1 and T in the hundreds; inference in
 * several chunks of steps; lengths holding 0 and T; both directions; a few
 * rows of weights too large to pack. */
static const spec CASES[] = {
    {"rnn-tanh-1x1-T1", RNN_TANH, SIZES(1, 1, 1, 1), .n_dirs = 1, .bias = 1},
    {"rnn-relu-bi-lengths", RNN_RELU, SIZES(17, 3, 17, 33), .n_dirs = 2, .bias = 1, .lengths = 1},
    {"rnn-tanh-T300-lengths", RNN_TANH, SIZES(300, 3, 3, 17), .n_dirs = 1, .bias = 1, .lengths = 1},
    {"rnn-clip-nobias-batch-split", RNN_TANH, SIZES(8, 33, 33, 65), .n_dirs = 1, .clip = 0.3},
    {"rnn-softsign-bi-nulls", .mode = FR_RNN, .act = {FR_SOFTSIGN}, SIZES(5, 4, 3, 3), .n_dirs = 2,
     .bias = 1, .nulls = 1},
    {"lstm-bi-lengths", LSTM_DEFAULT, SIZES(5, 17, 33, 3), .n_dirs = 2, .bias = 1, .lengths = 1},
    {"lstm-proj-bi-lengths", LSTM_DEFAULT, SIZES(9, 3, 1, 17), .P = 3, .n_dirs = 2, .bias = 1,
     .lengths = 1},
    {"lstm-peep-clip-batch-split", LSTM_DEFAULT, SIZES(12, 33, 17, 33), .n_dirs = 1, .bias = 1,
     .peephole = 1, .clip = 0.5, .lengths = 1},
    {"lstm-peep-clip-bi-teams", LSTM_DEFAULT, SIZES(6, 33, 17, 33), .n_dirs = 2, .bias = 1,
     .peephole = 1, .clip = 0.5},
    {"lstm-input-forget-nobias", LSTM_DEFAULT, SIZES(33, 1, 3, 17), .n_dirs = 1, .input_forget = 1},
    {"lstm-peep-hidden-split", LSTM_DEFAULT, SIZES(6, 7, 17, 65), .n_dirs = 1, .bias = 1,
     .peephole = 1, .lengths = 1},
    {"lstm-proj-all-options-hidden-split", LSTM_DEFAULT, SIZES(5, 7, 3, 97), .P = 33, .n_dirs = 1,
     .bias = 1, .peephole = 1, .input_forget = 1, .clip = 1.0, .lengths = 1},
    {"lstm-few-rows-large-weights", LSTM_DEFAULT, SIZES(4, 3, 301, 250), .n_dirs = 1, .bias = 1,
     .lengths = 1}, /* inference reads W_ih, W_hh where they lie (plan.h) */
    {"gru-8-rows-large-weights-hidden-split", GRU_DEFAULT, SIZES(3, 8, 301, 342), .n_dirs = 1,
     .bias = 1, .linear_before_reset = 1}, /* inference splits the units (plan.c) */
    {"lstm-proj1-T150-bi", LSTM_DEFAULT, SIZES(150, 3, 3, 3), .P = 1, .n_dirs = 2, .bias = 1,
     .lengths = 1},
    {"lstm-activations", .mode = FR_LSTM, .act = {FR_HARDSIGMOID, FR_LEAKYRELU, FR_SCALEDTANH},
     .alpha = {0.3, 0.05, 1.5}, .beta = {0.4, 0, 0.7}, SIZES(4, 3, 3, 17), .n_dirs = 1,
     .bias = 1, .lengths = 1},
    {"gru-batch-split-chunks", GRU_DEFAULT, SIZES(40, 33, 3, 33), .n_dirs = 1, .bias = 1,
     .linear_before_reset = 1, .lengths = 1},
    {"gru-orig-hidden-split", GRU_DEFAULT, SIZES(9, 7, 1, 81), .n_dirs = 1, .bias = 1, .lengths = 1},
    {"gru-orig-bi-T1-nobias-nulls", GRU_DEFAULT, SIZES(1, 3, 17, 17), .n_dirs = 2, .nulls = 1},
    {"gru-chunks-bi-lengths", GRU_DEFAULT, SIZES(100, 17, 3, 3), .n_dirs = 2, .bias = 1,
     .linear_before_reset = 1, .lengths = 1},
    {"gru-activations-clip", .mode = FR_GRU, .act = {FR_SOFTSIGN, FR_ELU}, .alpha = {0, 0.7},
     SIZES(6, 5, 3, 17), .n_dirs = 1, .bias = 1, .linear_before_reset = 1, .clip = 0.4},
    {"gru-orig-T200-bi", GRU_DEFAULT, SIZES(200, 2, 1, 3), .n_dirs = 2, .bias = 1},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static fr_cell spec_cell(const spec *s)
{
    fr_cell c;
    memset(&c, 0, sizeof c);
    c.mode = s->mode;
    for (int k = 0; k < 3; k++)
        c.act[k] = (fr_act){s->act[k], s->alpha[k], s->beta[k]};
    c.clip = s->clip;
    c.input_forget = s->input_forget;
    c.linear_before_reset = s->linear_before_reset;
    return c;
}

static fr_dims spec_dims(const spec *s)
{
    fr_dims d = {s->T, s->N, s->I, s->H, s->P, s->n_dirs * spec_hout(s), s->n_dirs};
    return d;
}

/* ---- helpers for run.h ------------------------------------------------------- */

/* Every allocation of one run, freed together. */
typedef struct {
    void *p[64];
    int n;
} arena;

static void *arena_take(arena *a, size_t bytes)
{
    if (bytes == 0)
        return NULL;
    if (a->n == (int)(sizeof a->p / sizeof a->p[0])) {
        fprintf(stderr, "driver: arena full\n");
        exit(2);
    }
    void *v = malloc(bytes);
    if (!v) {
        fprintf(stderr, "driver: out of memory\n");
        exit(2);
    }
    return a->p[a->n++] = v;
}

static void arena_free(arena *a)
{
    for (int k = 0; k < a->n; k++)
        free(a->p[k]);
    a->n = 0;
}

static int fail(const spec *s, const char *what)
{
    printf("FAIL %s: %s\n", s->name, what);
    return 1;
}

#define REAL float
#define LAYER fr_layer_f32
#define SUFFIX f32
#define FORWARD fr_forward_f32
#define BACKWARD fr_backward_f32
#include "run.h"
#undef REAL
#undef LAYER
#undef SUFFIX
#undef FORWARD
#undef BACKWARD
#define REAL double
#define LAYER fr_layer_f64
#define SUFFIX f64
#define FORWARD fr_forward_f64
#define BACKWARD fr_backward_f64
#include "run.h"

/* ---- problems ---------------------------------------------------------------- */

static uint64_t rng_state;

/* Uniform in [-bound, bound], rounded to a float. */
static double uniform(double bound)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    z ^= z >> 31;
    double u = (double)(z >> 11) / 9007199254740992.0; /* [0, 1) */
    return (float)((2 * u - 1) * bound);
}

static double *random_array(size_t n, double bound)
{
    if (n == 0)
        return NULL;
    double *v = malloc(n * sizeof(double));
    for (size_t k = 0; k < n; k++)
        v[k] = uniform(bound);
    return v;
}

/* The inputs of case s: PyTorch's initialisation for the weights, x and the
 * states in [-1, 1], lengths cycling through T, 0, 1, T - 1 and random. */
static void make_problem(const spec *s, uint64_t seed, problem *p)
{
    int64_t T = s->T, N = s->N, H = s->H, Hout = spec_hout(s), GH = spec_gates(s) * H;
    int lstm = s->mode == FR_LSTM;
    double w = 1 / sqrt((double)H);
    rng_state = seed;
    memset(p, 0, sizeof *p);
    p->n_x = (size_t)(T * N * s->I);
    p->n_dy = (size_t)(T * N * s->n_dirs * Hout);
    size_t *n = p->n;
    n[F_WIH] = (size_t)(GH * s->I), n[F_WHH] = (size_t)(GH * Hout);
    n[F_BIH] = n[F_BHH] = s->bias ? (size_t)GH : 0;
    n[F_WHR] = (size_t)(s->P * H), n[F_WP] = s->peephole ? (size_t)(3 * H) : 0;
    n[F_H0] = n[F_DHN] = (size_t)(N * Hout);
    n[F_C0] = n[F_DCN] = lstm ? (size_t)(N * H) : 0;
    p->x = random_array(p->n_x, 1);
    p->dy = random_array(p->n_dy, 1);
    for (int d = 0; d < s->n_dirs; d++)
        for (int k = 0; k < N_FIELDS; k++)
            p->f[d][k] = random_array(n[k], k <= F_WP ? w : 1);
    if (s->nulls) { /* the kernels get NULL: zeros */
        memset(p->dy, 0, p->n_dy * sizeof(double));
        for (int d = 0; d < s->n_dirs; d++) {
            memset(p->f[d][F_DHN], 0, n[F_DHN] * sizeof(double));
            if (lstm)
                memset(p->f[d][F_DCN], 0, n[F_DCN] * sizeof(double));
        }
    }
    if (s->lengths) {
        p->lengths = malloc((size_t)N * sizeof(int64_t));
        for (int64_t k = 0; k < N; k++) {
            int64_t cycle[5] = {T, 0, 1, T - 1, 1 + (int64_t)((uniform(1) + 1) / 2 * (double)(T - 1))};
            p->lengths[k] = cycle[k % 5];
        }
    }
}

static void free_problem(problem *p)
{
    free(p->x), free(p->dy), free(p->lengths);
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < N_FIELDS; k++)
            free(p->f[d][k]);
}

static void free_outputs(outputs *o)
{
    free(o->y), free(o->h_n), free(o->c_n), free(o->y_train), free(o->h_n_train);
    free(o->c_n_train), free(o->dx);
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < N_GRAD_FIELDS; k++)
            free(o->g[d][k]);
    memset(o, 0, sizeof *o);
}

/* ---- comparisons ------------------------------------------------------------- */

static const char *FIELD_NAMES[N_FIELDS] = {"dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh",
                                            "dweight_hr", "dweight_peephole", "dh0", "dc0"};
static double worst[2]; /* the largest scaled difference seen: float64, float32 */
static int comparisons;

/* got against want (n values): max |got - want| / (1 + max |want|) <= tol, NaN never. */
static int check(const spec *s, const char *run, const char *field, const double *got,
                 const double *want, size_t n, double tol, int is_float)
{
    if (n == 0)
        return 0;
    double scale = 0, err = 0;
    size_t at = 0;
    for (size_t k = 0; k < n; k++)
        scale = fmax(scale, fabs(want[k]));
    for (size_t k = 0; k < n; k++) {
        double e = fabs(got[k] - want[k]);
        if (e != e)
            e = INFINITY;
        if (e > err)
            err = e, at = k;
    }
    err /= 1 + scale;
    comparisons++;
    worst[is_float] = fmax(worst[is_float], err);
    if (err <= tol)
        return 0;
    printf("FAIL %s: %s, %s[%zu] = %.9g, expected %.9g (scaled difference %.3g > %.3g)\n",
           s->name, run, field, at, got[at], want[at], err, tol);
    return 1;
}

/* The outputs of run `o` against `want`: forward, and backward when `grads`. */
static int check_outputs(const spec *s, const problem *p, const char *run, const outputs *o,
                         const outputs *want, int grads, double tol, int is_float)
{
    size_t ny = p->n_dy, nh = (size_t)s->n_dirs * p->n[F_H0], nc = (size_t)s->n_dirs * p->n[F_C0];
    int f = 0;
    f += check(s, run, "y", o->y, want->y, ny, tol, is_float);
    f += check(s, run, "h_n", o->h_n, want->h_n, nh, tol, is_float);
    f += check(s, run, "c_n", o->c_n, want->c_n, nc, tol, is_float);
    f += check(s, run, "y (training)", o->y_train, want->y, ny, tol, is_float);
    f += check(s, run, "h_n (training)", o->h_n_train, want->h_n, nh, tol, is_float);
    f += check(s, run, "c_n (training)", o->c_n_train, want->c_n, nc, tol, is_float);
    if (!grads)
        return f;
    f += check(s, run, "dx", o->dx, want->dx, p->n_x, tol, is_float);
    for (int d = 0; d < s->n_dirs; d++)
        for (int k = 0; k < N_GRAD_FIELDS; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s (direction %d)", FIELD_NAMES[k], d);
            f += check(s, run, name, o->g[d][k], want->g[d][k], p->n[k], tol, is_float);
        }
    return f;
}

/* sum y.dy + h_n.dh_n + c_n.dc_n over the reference's forward of p. */
static double reference_loss(const spec *s, const problem *p)
{
    size_t nh = p->n[F_H0], nc = p->n[F_C0];
    double *y = malloc(p->n_dy * sizeof(double));
    double *h_n = malloc((size_t)s->n_dirs * nh * sizeof(double));
    double *c_n = nc ? malloc((size_t)s->n_dirs * nc * sizeof(double)) : NULL;
    reference_forward(s, p, y, h_n, c_n);
    double loss = 0;
    for (size_t k = 0; k < p->n_dy; k++)
        loss += y[k] * p->dy[k];
    for (int d = 0; d < s->n_dirs; d++) {
        for (size_t k = 0; k < nh; k++)
            loss += h_n[d * nh + k] * p->f[d][F_DHN][k];
        for (size_t k = 0; k < nc; k++)
            loss += c_n[d * nc + k] * p->f[d][F_DCN][k];
    }
    free(y), free(h_n), free(c_n);
    return loss;
}

/* p + t v over x and every field that has a gradient, into q (q's arrays allocated). */
static void moved(const spec *s, const problem *p, const problem *v, double t, problem *q)
{
    *q = *p;
    q->x = malloc(p->n_x * sizeof(double));
    for (size_t k = 0; k < p->n_x; k++)
        q->x[k] = p->x[k] + t * v->x[k];
    for (int d = 0; d < s->n_dirs; d++)
        for (int k = 0; k < N_GRAD_FIELDS; k++) {
            if (!p->n[k])
                continue;
            q->f[d][k] = malloc(p->n[k] * sizeof(double));
            for (size_t j = 0; j < p->n[k]; j++)
                q->f[d][k][j] = p->f[d][k][j] + t * v->f[d][k][j];
        }
}

static void free_moved(const spec *s, problem *q)
{
    free(q->x);
    for (int d = 0; d < s->n_dirs; d++)
        for (int k = 0; k < N_GRAD_FIELDS; k++)
            free(q->f[d][k]);
}

/* The judge's gradients along a random direction v against the central
 * difference of the reference's loss. */
static int check_gradient(const spec *s, const problem *p, const outputs *judge, uint64_t seed)
{
    problem v, plus, minus;
    make_problem(s, seed, &v);
    const double eps = 1e-6;
    double analytic = 0, size = 0;
    for (size_t k = 0; k < p->n_x; k++)
        analytic += judge->dx[k] * v.x[k], size += fabs(judge->dx[k] * v.x[k]);
    for (int d = 0; d < s->n_dirs; d++)
        for (int k = 0; k < N_GRAD_FIELDS; k++)
            for (size_t j = 0; j < p->n[k]; j++) {
                double term = judge->g[d][k][j] * v.f[d][k][j];
                analytic += term, size += fabs(term);
            }
    moved(s, p, &v, eps, &plus);
    moved(s, p, &v, -eps, &minus);
    double numeric = (reference_loss(s, &plus) - reference_loss(s, &minus)) / (2 * eps);
    free_moved(s, &plus), free_moved(s, &minus), free_problem(&v);
    comparisons++;
    if (fabs(numeric - analytic) <= 1e-6 * (1 + size))
        return 0;
    printf("FAIL %s: backward (float64, 1 thread) along a random direction: %.12g, the central "
           "difference of the reference: %.12g\n", s->name, analytic, numeric);
    return 1;
}

/* ---- what the cases reached --------------------------------------------------- */

static struct {
    int hidden_split, batch_split, two_teams, packed, chunks;
} reached;

static void note_plan(const spec *s, int n_threads)
{
    fr_cell cell = spec_cell(s);
    fr_dims dims = spec_dims(s);
    for (int pass = FR_PASS_INFERENCE; pass <= FR_PASS_BACKWARD; pass++) {
        fr_plan plan = fr_make_plan(&cell, &dims, pass, n_threads);
        if (plan.split == FR_SPLIT_HIDDEN && plan.per_team > reached.hidden_split)
            reached.hidden_split = plan.per_team;
        if (plan.split == FR_SPLIT_BATCH && plan.per_team > reached.batch_split)
            reached.batch_split = plan.per_team;
        reached.two_teams |= plan.teams == 2;
        reached.chunks |= pass == FR_PASS_INFERENCE && plan.chunk < s->T;
        reached.packed |= fr_packed_enabled() && plan.packs;
    }
}

/* ---- main --------------------------------------------------------------------- */

static int run_case(const spec *s, uint64_t seed)
{
    const double tol64 = 1e-12, tol32 = 2e-5;
    problem p;
    outputs ref = {0}, judge = {0}, o = {0}, blas32 = {0};
    int f = 0;
    make_problem(s, seed, &p);
    ref.y = malloc(p.n_dy * sizeof(double));
    ref.h_n = malloc((size_t)s->n_dirs * p.n[F_H0] * sizeof(double));
    ref.c_n = p.n[F_C0] ? malloc((size_t)s->n_dirs * p.n[F_C0] * sizeof(double)) : NULL;
    reference_forward(s, &p, ref.y, ref.h_n, ref.c_n);

    fr_set_packed(0);
    f += run_f64(s, &p, 1, &judge);
    f += check_outputs(s, &p, "float64, 1 thread", &judge, &ref, 0, tol64, 0);
    f += check_gradient(s, &p, &judge, seed + 1);
    for (int threads = 2; threads <= 3; threads++) {
        char run[64];
        snprintf(run, sizeof run, "float64, %d threads", threads);
        f += run_f64(s, &p, threads, &o);
        f += check_outputs(s, &p, run, &o, &ref, 0, tol64, 0);
        f += check_outputs(s, &p, run, &o, &judge, 1, tol64, 0);
        free_outputs(&o);
    }
    for (int threads = 1; threads <= 3; threads++) {
        for (int packed = 0; packed <= 1; packed++) {
            char run[96];
            fr_set_packed(packed);
            if (packed && !fr_packed_enabled())
                break; /* no AVX2 or AVX-512: the BLAS run was the only one */
            snprintf(run, sizeof run, "float32, %s products, %d thread%s",
                     packed ? "vectorised" : "BLAS", threads, threads > 1 ? "s" : "");
            note_plan(s, threads);
            f += run_f32(s, &p, threads, packed ? &o : &blas32);
            const outputs *got = packed ? &o : &blas32;
            f += check_outputs(s, &p, run, got, &ref, 0, tol32, 1);
            f += check_outputs(s, &p, run, got, &judge, 1, tol32, 1);
        }
        if (fr_packed_enabled()) /* the vectorised products against the BLAS ones */
            f += check_outputs(s, &p, "float32, vectorised against BLAS", &o, &blas32, 1, tol32, 1);
        free_outputs(&o), free_outputs(&blas32);
    }
    fr_set_packed(1);
    free_outputs(&ref), free_outputs(&judge), free_problem(&p);
    return f;
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int failures = 0, ran = 0;
    printf("fastrnn C driver: OpenMP %s, vectorised float32 kernels %s\n",
           fr_openmp_enabled() ? "on" : "off",
           fr_packed_enabled() ? "on (the CPU has AVX-512 or AVX2)" : "off (neither: BLAS products only)");
    for (size_t k = 0; k < N_CASES; k++) {
        const spec *s = &CASES[k];
        if (only && !strstr(s->name, only))
            continue;
        int f = run_case(s, 1000 * (k + 1));
        printf("%s %s (T=%lld N=%lld I=%lld H=%lld P=%lld, %d direction%s)\n", f ? "FAIL" : "ok  ",
               s->name, (long long)s->T, (long long)s->N, (long long)s->I, (long long)s->H,
               (long long)s->P, s->n_dirs, s->n_dirs > 1 ? "s" : "");
        failures += f;
        ran++;
    }
    printf("reached: hidden split on %d threads, batch split on %d, two directions at once: %s, "
           "inference in chunks: %s, vectorised products: %s\n",
           reached.hidden_split, reached.batch_split, reached.two_teams ? "yes" : "no",
           reached.chunks ? "yes" : "no", reached.packed ? "yes" : "no");
    printf("%d cases, %d comparisons, %d failures; largest scaled difference: float64 %.2g, "
           "float32 %.2g\n", ran, comparisons, failures, worst[0], worst[1]);
    if (!only && (reached.hidden_split < 3 || reached.batch_split < 3 || !reached.two_teams
                  || !reached.chunks)) {
        printf("FAIL: the cases no longer reach every thread split (see plan.h)\n");
        failures++;
    }
    return failures ? 1 : 0;
}
