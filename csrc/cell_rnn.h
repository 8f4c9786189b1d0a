/* Elman RNN, one dtype: a body included by kernels_f32.c and kernels_f64.c.
 *   h' = f(W_ih x + b_ih + W_hh h + b_hh)
 * Scratch: hg (N, H) the recurrent product; training saves the pre-activation
 * and the state each step started from.  Threads: a step runs on the thread's
 * rows and units (context.h); its products go through products.h. */

FR_CLONES static void rnn_step_forward(const ctx *c, const work *w, int64_t s, const REAL *hprev, REAL *hnext)
{
    int64_t nu = w->j1 - w->j0, H = c->H;
    int in_place = sums_in_place(c);
    recurrent_product(c, w, hprev, H, s, 0, 1, in_place);
    const REAL *hg = hg_of(c, w);
    for (int64_t n = w->n0; n < w->n1; n++) {
        int64_t len = len_of(c, n);
        if (s >= len)
            continue;
        REAL *pre = xg_row(c, n, time_of(c, len, s)) + w->j0;
        const REAL *hgr = hg + (n - w->n0) * nu;
        if (!in_place)
            for (int64_t j = 0; j < nu; j++)
                pre[j] += hgr[j];
        act_forward(&c->cell->act[0], c->clip, pre, hnext + n * H + w->j0, nu);
    }
    finish_step(c, w, s, hprev, hnext);
}

FR_CLONES static void rnn_step_backward(const ctx *c, const work *w, int64_t s, const REAL *dhcur, REAL *dhnext)
{
    int64_t nu = w->j1 - w->j0, H = c->H, j0 = w->j0;
    REAL *val = w->tmp, *deriv = w->tmp + nu;
    REAL *dhg = W(c, c->lay.dhg);
    for (int64_t n = w->n0; n < w->n1; n++) {
        int64_t len = len_of(c, n);
        const REAL *dh = dhcur + n * H + j0;
        if (s >= len) { /* state kept: the gradient passes through */
            zero_gate_grads(c, w, n, s);
            memcpy(dhnext + n * H + j0, dh, (size_t)nu * sizeof(REAL));
            continue;
        }
        int64_t t = time_of(c, len, s);
        const REAL *pre = saved_row(c, c->sl.gates, n, t, H) + j0;
        const REAL *dy = dy_row(c, n, t);
        act_backward(&c->cell->act[0], c->clip, pre, val, deriv, nu);
        /* dh and dy summed first, so that the loop below has no branch */
        REAL *restrict dht = val; /* the values are not needed past here */
        for (int64_t j = 0; j < nu; j++)
            dht[j] = dh[j] + (dy ? dy[j0 + j] : 0);
        REAL *restrict dg = dgx_row(c, n, t) + j0, *restrict dhgr = dhg + n * H + j0;
        REAL *restrict dhn = dhnext + n * H + j0;
#pragma omp simd
        for (int64_t j = 0; j < nu; j++) {
            dg[j] = dhgr[j] = dht[j] * deriv[j];
            dhn[j] = 0;
        }
    }
    BARRIER_IF(w->sync);
    dh_product(c, w, dhnext, dh_product_depth(c));
}
