/* One case through the kernels of one dtype: inference forward, training
 * forward and backward, each array of its exact size in its own allocation
 * (so that AddressSanitizer and valgrind see any access past it), outputs,
 * scratch and saved state filled with NaN first (so that a value read before
 * it was written shows as a mismatch).  Included by driver.c once per dtype
 * with REAL, LAYER, SUFFIX, FORWARD and BACKWARD defined. */

#define RUN_CAT_(a, b) a##_##b
#define RUN_CAT(a, b) RUN_CAT_(a, b)
#define RUN_NAME(name) RUN_CAT(name, SUFFIX)

/* n elements of REAL from the arena, NaN; NULL when n is 0. */
static REAL *RUN_NAME(nan_array)(arena *a, size_t n)
{
    REAL *v = arena_take(a, n * sizeof(REAL));
    for (size_t k = 0; k < n; k++)
        v[k] = (REAL)NAN;
    return v;
}

/* The double values v (n of them) as REAL; NULL when n is 0. */
static REAL *RUN_NAME(converted)(arena *a, const double *v, size_t n)
{
    REAL *out = arena_take(a, n * sizeof(REAL));
    for (size_t k = 0; k < n; k++)
        out[k] = (REAL)v[k];
    return out;
}

/* The directions' arrays parts[d] (n each) as one double array; NULL when n is 0. */
static double *RUN_NAME(gathered)(REAL *const *parts, int n_dirs, size_t n)
{
    if (n == 0)
        return NULL;
    double *out = malloc((size_t)n_dirs * n * sizeof(double));
    for (int d = 0; d < n_dirs; d++)
        for (size_t k = 0; k < n; k++)
            out[d * n + k] = parts[d][k];
    return out;
}

/* 1 when every element of the REAL array v still equals the double original. */
static int RUN_NAME(unchanged)(const REAL *v, const double *original, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!(v[k] == (REAL)original[k]))
            return 0;
    return 1;
}

/* Runs case s on problem p with n_threads; fills o.  Returns the number of
 * failures (a status other than FR_OK, an input modified), each printed. */
static int RUN_NAME(run)(const spec *s, const problem *p, int n_threads, outputs *o)
{
    arena a = {0};
    fr_cell cell = spec_cell(s);
    fr_dims dims = spec_dims(s);
    int D = s->n_dirs, lstm = s->mode == FR_LSTM, failures = 0;
    size_t T = (size_t)s->T, N = (size_t)s->N, I = (size_t)s->I, H = (size_t)s->H;
    size_t Hout = (size_t)spec_hout(s), ny = T * N * (size_t)D * Hout;
    REAL *x = RUN_NAME(converted)(&a, p->x, p->n_x);
    REAL *dy = s->nulls ? NULL : RUN_NAME(converted)(&a, p->dy, p->n_dy);
    REAL *in[2][N_FIELDS];
    for (int d = 0; d < D; d++)
        for (int k = 0; k < N_FIELDS; k++)
            in[d][k] = RUN_NAME(converted)(&a, p->f[d][k], p->n[k]);

    LAYER L[2];
    REAL *h_n[2], *c_n[2], *saved[2];
    memset(L, 0, sizeof L);
    for (int d = 0; d < D; d++) {
        L[d].reverse = d;
        L[d].weight_ih = in[d][F_WIH], L[d].weight_hh = in[d][F_WHH];
        L[d].bias_ih = in[d][F_BIH], L[d].bias_hh = in[d][F_BHH];
        L[d].weight_hr = in[d][F_WHR], L[d].weight_peephole = in[d][F_WP];
        L[d].h0 = in[d][F_H0], L[d].c0 = in[d][F_C0];
    }

    /* inference */
    REAL *y = RUN_NAME(nan_array)(&a, ny);
    for (int d = 0; d < D; d++) {
        L[d].y = y + d * Hout;
        L[d].h_n = h_n[d] = RUN_NAME(nan_array)(&a, N * Hout);
        L[d].c_n = c_n[d] = lstm ? RUN_NAME(nan_array)(&a, N * H) : NULL;
    }
    REAL *ws = RUN_NAME(nan_array)(&a, fr_workspace_size(&cell, &dims, FR_PASS_INFERENCE, n_threads));
    if (FORWARD(&blas_table, &cell, &dims, p->lengths, x, L, ws, n_threads) != FR_OK)
        failures += fail(s, "inference forward returned an error status");
    o->y = RUN_NAME(gathered)(&y, 1, ny);
    o->h_n = RUN_NAME(gathered)(h_n, D, N * Hout);
    o->c_n = lstm ? RUN_NAME(gathered)(c_n, D, N * H) : NULL;

    /* forward for training: fresh outputs, and the saved state for backward */
    y = RUN_NAME(nan_array)(&a, ny);
    for (int d = 0; d < D; d++) {
        L[d].y = y + d * Hout;
        L[d].h_n = h_n[d] = RUN_NAME(nan_array)(&a, N * Hout);
        L[d].c_n = c_n[d] = lstm ? RUN_NAME(nan_array)(&a, N * H) : NULL;
        L[d].saved = saved[d] = RUN_NAME(nan_array)(&a, fr_saved_size(&cell, &dims));
    }
    ws = RUN_NAME(nan_array)(&a, fr_workspace_size(&cell, &dims, FR_PASS_TRAIN, n_threads));
    if (FORWARD(&blas_table, &cell, &dims, p->lengths, x, L, ws, n_threads) != FR_OK)
        failures += fail(s, "training forward returned an error status");
    o->y_train = RUN_NAME(gathered)(&y, 1, ny);
    o->h_n_train = RUN_NAME(gathered)(h_n, D, N * Hout);
    o->c_n_train = lstm ? RUN_NAME(gathered)(c_n, D, N * H) : NULL;

    /* backward */
    REAL *grads[N_GRAD_FIELDS][2];
    for (int d = 0; d < D; d++) {
        L[d].saved = saved[d];
        L[d].dy = dy ? dy + d * Hout : NULL;
        L[d].dh_n = s->nulls ? NULL : in[d][F_DHN];
        L[d].dc_n = s->nulls ? NULL : in[d][F_DCN];
        for (int k = 0; k < N_GRAD_FIELDS; k++)
            grads[k][d] = RUN_NAME(nan_array)(&a, p->n[k]);
        L[d].dweight_ih = grads[F_WIH][d], L[d].dweight_hh = grads[F_WHH][d];
        L[d].dbias_ih = grads[F_BIH][d], L[d].dbias_hh = grads[F_BHH][d];
        L[d].dweight_hr = grads[F_WHR][d], L[d].dweight_peephole = grads[F_WP][d];
        L[d].dh0 = grads[F_H0][d], L[d].dc0 = grads[F_C0][d];
    }
    REAL *dx = RUN_NAME(nan_array)(&a, T * N * I);
    ws = RUN_NAME(nan_array)(&a, fr_workspace_size(&cell, &dims, FR_PASS_BACKWARD, n_threads));
    if (BACKWARD(&blas_table, &cell, &dims, p->lengths, x, dx, L, ws, n_threads) != FR_OK)
        failures += fail(s, "backward returned an error status");
    o->dx = RUN_NAME(gathered)(&dx, 1, T * N * I);
    for (int d = 0; d < D; d++)
        for (int k = 0; k < N_GRAD_FIELDS; k++)
            o->g[d][k] = RUN_NAME(gathered)(&grads[k][d], 1, p->n[k]);

    /* the inputs are read, never written */
    int same = RUN_NAME(unchanged)(x, p->x, p->n_x);
    same &= s->nulls || RUN_NAME(unchanged)(dy, p->dy, p->n_dy);
    for (int d = 0; d < D; d++)
        for (int k = 0; k < N_FIELDS; k++)
            same &= RUN_NAME(unchanged)(in[d][k], p->f[d][k], p->n[k]);
    if (!same)
        failures += fail(s, "an input array was modified");
    arena_free(&a);
    return failures;
}

#undef RUN_NAME
#undef RUN_CAT
#undef RUN_CAT_
