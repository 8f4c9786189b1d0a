/* LSTM, one dtype: a body included by kernels_f32.c and kernels_f64.c.  Gates i, f, g, o:
 *   i = f(x_i + h_i + p_i c),  f = f(x_f + h_f + p_f c)   (f = 1 - i with input_forget)
 *   g = g(x_g + h_g),          c' = f c + i g
 *   o = f(x_o + h_o + p_o c'), h' = o h(c')              (h' = W_hr o h(c') with a projection)
 * each pre-activation clipped to [-clip, clip] when clip is set.
 * Scratch: hg (N, 4H), c (N, H), hfull (N, H) with a projection; training saves
 * the pre-activations, c after each step, h_prev and o h(c').  Threads: a step
 * runs on the thread's rows and units (context.h), with a barrier before the
 * projection and its gradient under a hidden split; products via products.h. */

/* Whether a step's gate pass can run as one vector pass per row (packed.h's
 * fr_lstm_gates_vector): float32 on the packed path, the default activations, no
 * clip, peepholes or coupled gates. */
static inline int lstm_gates_fused(const ctx *c)
{
    const fr_act *a = c->cell->act;
    return FR_PACKED_PATH && fr_packed_enabled() && c->clip == 0 && !c->L->weight_peephole
           && !c->cell->input_forget && a[0].code == FR_SIGMOID && a[1].code == FR_TANH
           && a[2].code == FR_TANH;
}

/* One row's gate pass over the thread's units: pre (the four gates H apart)
 * -> c' in cn, h' (before any projection) in ho. */
FR_CLONES static void lstm_gates(const ctx *c, const work *w, int fused, REAL *pre, REAL *cn,
                                 REAL *ho)
{
    int64_t nu = w->j1 - w->j0, H = c->H, j0 = w->j0;
#if FR_PACKED_PATH
    if (fused) {
        fr_lstm_gates_vector(nu, pre, H, cn, ho);
        return;
    }
#else
    (void)fused;
#endif
    const fr_act *act = c->cell->act;
    const REAL *peep = c->L->weight_peephole;
    REAL *vi = w->tmp, *vf = w->tmp + nu, *vg = w->tmp + 2 * nu, *vo = w->tmp + 3 * nu;
    REAL *hc = w->tmp + 4 * nu;
    if (peep)
        for (int64_t j = 0; j < nu; j++) {
            pre[j] += peep[j0 + j] * cn[j];
            pre[H + j] += peep[H + j0 + j] * cn[j];
        }
    act_forward(&act[0], c->clip, pre, vi, nu);
    if (c->cell->input_forget)
        for (int64_t j = 0; j < nu; j++)
            vf[j] = 1 - vi[j];
    else
        act_forward(&act[0], c->clip, pre + H, vf, nu);
    act_forward(&act[1], c->clip, pre + 2 * H, vg, nu);
    for (int64_t j = 0; j < nu; j++)
        cn[j] = vf[j] * cn[j] + vi[j] * vg[j];
    if (peep)
        for (int64_t j = 0; j < nu; j++)
            pre[3 * H + j] += peep[2 * H + j0 + j] * cn[j];
    act_forward(&act[0], c->clip, pre + 3 * H, vo, nu);
    act_forward(&act[2], 0, cn, hc, nu);
    for (int64_t j = 0; j < nu; j++)
        ho[j] = vo[j] * hc[j];
}

FR_CLONES static void lstm_step_forward(const ctx *c, const work *w, int64_t s, const REAL *hprev, REAL *hnext)
{
    int64_t nu = w->j1 - w->j0, H = c->H, P = c->P, j0 = w->j0;
    int in_place = sums_in_place(c), fused = lstm_gates_fused(c);
    recurrent_product(c, w, hprev, c->Hout, s, 0, 4, in_place);
    const REAL *hg = hg_of(c, w);
    REAL *cst = W(c, c->lay.c);
    REAL *hout = P ? W(c, c->lay.hfull) : hnext;
    size_t bytes = (size_t)nu * sizeof(REAL);
    for (int64_t n = w->n0; n < w->n1; n++) {
        int64_t len = len_of(c, n);
        if (s >= len) {
            if (c->saved) {
                memset(saved_row(c, c->sl.c, n, s, H) + j0, 0, bytes);
                if (P)
                    memset(saved_row(c, c->sl.hfull, n, s, H) + j0, 0, bytes);
            }
            continue;
        }
        int64_t t = time_of(c, len, s);
        REAL *pre = xg_row(c, n, t) + j0;
        const REAL *hgr = hg + (n - w->n0) * 4 * nu;
        REAL *cn = cst + n * H + j0, *ho = hout + n * H + j0;
        if (!in_place)
            for (int64_t k = 0; k < 4; k++)
                for (int64_t j = 0; j < nu; j++)
                    pre[k * H + j] += hgr[k * nu + j];
        lstm_gates(c, w, fused, pre, cn, ho);
        if (c->saved) {
            memcpy(saved_row(c, c->sl.c, n, t, H) + j0, cn, bytes);
            if (P)
                memcpy(saved_row(c, c->sl.hfull, n, t, H) + j0, ho, bytes);
        }
    }
    if (P) { /* h' = W_hr (o h(c')) for the thread's rows and projection units */
        BARRIER_IF(w->sync);
        projection_product(c, w, hout, hnext);
    }
    finish_step(c, w, s, hprev, hnext);
}

/* dh_tot = dh + dy for the thread's projection units, then dh_full = dh_tot @ W_hr. */
static void lstm_projection_grad(const ctx *c, const work *w, int64_t s, const REAL *dhcur, REAL *dhnext)
{
    int64_t P = c->P;
    REAL *dhtot = W(c, c->lay.dhtot);
    for (int64_t n = w->n0; n < w->n1; n++) {
        int64_t len = len_of(c, n);
        int active = s < len;
        int64_t t = active ? time_of(c, len, s) : s;
        const REAL *dy = active ? dy_row(c, n, t) : NULL;
        REAL *save = W(c, c->lay.dhout) + (t * c->N + n) * P;
        for (int64_t o = w->o0; o < w->o1; o++) {
            REAL v = dhcur[n * P + o] + (dy ? dy[o] : 0);
            dhtot[n * P + o] = v;
            save[o] = active ? v : 0;
            dhnext[n * P + o] = active ? 0 : v;
        }
    }
    BARRIER_IF(w->sync);
    projection_grad_product(c, w, dhtot, W(c, c->lay.dhsc));
}

FR_CLONES static void lstm_step_backward(const ctx *c, const work *w, int64_t s, const REAL *dhcur, REAL *dhnext)
{
    const fr_act *act = c->cell->act;
    int64_t nu = w->j1 - w->j0, H = c->H, P = c->P, GH = c->GH, j0 = w->j0;
    const REAL *peep = c->L->weight_peephole;
    REAL *dc = W(c, c->lay.dc), *dhg = W(c, c->lay.dhg);
    REAL *vi = w->tmp, *di = vi + nu, *vf = di + nu, *df = vf + nu, *vg = df + nu;
    REAL *dg = vg + nu, *vo = dg + nu, *dout = vo + nu, *hc = dout + nu, *dhc = hc + nu;
    REAL *zeros = w->tmp + 11 * nu;
    size_t bytes = (size_t)nu * sizeof(REAL);
    memset(zeros, 0, bytes);
    if (P)
        lstm_projection_grad(c, w, s, dhcur, dhnext);
    for (int64_t n = w->n0; n < w->n1; n++) {
        int64_t len = len_of(c, n);
        if (s >= len) {
            zero_gate_grads(c, w, n, s);
            if (!P)
                memcpy(dhnext + n * H + j0, dhcur + n * H + j0, bytes);
            continue;
        }
        int64_t t = time_of(c, len, s);
        const REAL *pre = saved_row(c, c->sl.gates, n, t, GH) + j0;
        const REAL *cn = saved_row(c, c->sl.c, n, t, H) + j0;
        const REAL *cp = (s > 0 ? saved_row(c, c->sl.c, n, time_of(c, len, s - 1), H)
                                : c->L->c0 + n * H) + j0;
        act_backward(&act[0], c->clip, pre, vi, di, nu);
        if (c->cell->input_forget)
            for (int64_t j = 0; j < nu; j++)
                vf[j] = 1 - vi[j], df[j] = 0;
        else
            act_backward(&act[0], c->clip, pre + H, vf, df, nu);
        act_backward(&act[1], c->clip, pre + 2 * H, vg, dg, nu);
        act_backward(&act[0], c->clip, pre + 3 * H, vo, dout, nu);
        act_backward(&act[2], 0, cn, hc, dhc, nu);
        const REAL *restrict dh = P ? W(c, c->lay.dhsc) + n * H + j0 : dhcur + n * H + j0;
        const REAL *dy = P ? NULL : dy_row(c, n, t);
        /* dh_out and dy summed first, so that the loop below has no branch */
        REAL *restrict dht = w->tmp + 10 * nu;
        for (int64_t j = 0; j < nu; j++)
            dht[j] = dh[j] + (dy ? dy[j0 + j] : 0);
        /* peepholes absent: zeros; f = 1 - i with input_forget: dL/di gains -dL/df */
        const REAL *restrict p_i = peep ? peep + j0 : zeros;
        const REAL *restrict p_f = peep ? peep + H + j0 : zeros;
        const REAL *restrict p_o = peep ? peep + 2 * H + j0 : zeros;
        const REAL coupled = c->cell->input_forget ? 1 : 0;
        REAL *restrict dgr = dgx_row(c, n, t) + j0, *restrict dhgr = dhg + n * GH + j0;
        REAL *restrict dcn = dc + n * H + j0;
#pragma omp simd
        for (int64_t j = 0; j < nu; j++) {
            REAL d_o = dht[j] * hc[j] * dout[j];
            REAL dct = dcn[j] + dht[j] * vo[j] * dhc[j] + d_o * p_o[j];
            REAL d_f = (1 - coupled) * dct * cp[j] * df[j];
            REAL d_i = (dct * vg[j] - coupled * dct * cp[j]) * di[j];
            REAL d_g = dct * vi[j] * dg[j];
            dcn[j] = dct * vf[j] + d_i * p_i[j] + d_f * p_f[j];
            dgr[j] = dhgr[j] = d_i;
            dgr[H + j] = dhgr[H + j] = d_f;
            dgr[2 * H + j] = dhgr[2 * H + j] = d_g;
            dgr[3 * H + j] = dhgr[3 * H + j] = d_o;
        }
        if (!P)
            memset(dhnext + n * H + j0, 0, bytes);
    }
    BARRIER_IF(w->sync);
    dh_product(c, w, dhnext, dh_product_depth(c));
}
