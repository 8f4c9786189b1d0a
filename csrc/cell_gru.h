/* GRU, one dtype: a body included by kernels_f32.c and kernels_f64.c.  Gates r, z, n:
 *   r = f(x_r + h_r),  z = f(x_z + h_z)
 *   n = g(x_n + r (W_hn h + b_hn))          linear_before_reset (PyTorch)
 *   n = g(x_n + W_hn (r h) + b_hn)          otherwise (the original GRU)
 *   h' = (1 - z) n + z h
 * each pre-activation clipped to [-clip, clip] when clip is set.
 * Scratch: hg (N, 3H), rh (N, H) without linear_before_reset; training saves the
 * pre-activations, h_prev and W_hn h + b_hn (or r h).  Threads: a step runs on
 * the thread's rows and units (context.h); without linear_before_reset a hidden
 * split waits at a barrier for every thread's r h; products via products.h. */

FR_CLONES static void gru_step_forward(const ctx *c, const work *w, int64_t s, const REAL *hprev, REAL *hnext)
{
    const fr_act *act = c->cell->act;
    int lbr = c->cell->linear_before_reset;
    int64_t nu = w->j1 - w->j0, H = c->H, j0 = w->j0;
    REAL *hg = hg_of(c, w);
    REAL *rh = W(c, c->lay.rh);
    const REAL *bhn = c->L->bias_hh ? c->L->bias_hh + 2 * H + j0 : NULL;
    REAL *vr = w->tmp, *vz = w->tmp + nu, *vn = w->tmp + 2 * nu, *hn = w->tmp + 3 * nu;
    size_t bytes = (size_t)nu * sizeof(REAL);
    int in_place = sums_in_place(c);
    recurrent_product(c, w, hprev, H, s, 0, 2, in_place);
    if (lbr) /* W_hn h + b_hn stays apart: r multiplies it */
        recurrent_product(c, w, hprev, H, s, 2, 3, 0);
    for (int64_t n = w->n0; n < w->n1; n++) {
        int64_t len = len_of(c, n);
        const REAL *hp = hprev + n * H + j0;
        if (s >= len) {
            if (c->saved)
                memset(saved_row(c, c->sl.aux, n, s, H) + j0, 0, bytes);
            if (!lbr)
                memset(rh + n * H + j0, 0, bytes);
            continue;
        }
        int64_t t = time_of(c, len, s);
        REAL *pre = xg_row(c, n, t) + j0;
        REAL *hgr = hg + (n - w->n0) * 3 * nu;
        if (!in_place)
            for (int64_t j = 0; j < nu; j++) {
                pre[j] += hgr[j];
                pre[H + j] += hgr[nu + j];
            }
        act_forward(&act[0], c->clip, pre, vr, nu);
        act_forward(&act[0], c->clip, pre + H, vz, nu);
        REAL *aux = c->saved ? saved_row(c, c->sl.aux, n, t, H) + j0 : NULL;
        if (lbr) {
            for (int64_t j = 0; j < nu; j++) {
                hn[j] = hgr[2 * nu + j] + (bhn ? bhn[j] : 0);
                pre[2 * H + j] += vr[j] * hn[j];
            }
            act_forward(&act[1], c->clip, pre + 2 * H, vn, nu);
            for (int64_t j = 0; j < nu; j++)
                hnext[n * H + j0 + j] = (1 - vz[j]) * vn[j] + vz[j] * hp[j];
            if (aux)
                memcpy(aux, hn, bytes);
        } else { /* r h now; n after every thread's r h is in */
            for (int64_t j = 0; j < nu; j++) {
                rh[n * H + j0 + j] = vr[j] * hp[j];
                hgr[nu + j] = vz[j];
            }
            if (aux)
                memcpy(aux, rh + n * H + j0, bytes);
        }
    }
    if (!lbr) {
        BARRIER_IF(w->sync);
        recurrent_product(c, w, rh, H, s, 2, 3, in_place);
        for (int64_t n = w->n0; n < w->n1; n++) {
            int64_t len = len_of(c, n);
            if (s >= len)
                continue;
            REAL *pre = xg_row(c, n, time_of(c, len, s)) + j0;
            const REAL *hgr = hg + (n - w->n0) * 3 * nu;
            const REAL *hp = hprev + n * H + j0;
            if (!in_place)
                for (int64_t j = 0; j < nu; j++)
                    pre[2 * H + j] += hgr[2 * nu + j];
            act_forward(&act[1], c->clip, pre + 2 * H, vn, nu);
            for (int64_t j = 0; j < nu; j++) {
                REAL z = hgr[nu + j];
                hnext[n * H + j0 + j] = (1 - z) * vn[j] + z * hp[j];
            }
        }
    }
    finish_step(c, w, s, hprev, hnext);
}

FR_CLONES static void gru_step_backward(const ctx *c, const work *w, int64_t s, const REAL *dhcur, REAL *dhnext)
{
    const fr_act *act = c->cell->act;
    int lbr = c->cell->linear_before_reset;
    int64_t nu = w->j1 - w->j0, H = c->H, GH = c->GH, j0 = w->j0;
    REAL *dhg = W(c, c->lay.dhg);
    REAL *vr = w->tmp, *dr = vr + nu, *vz = dr + nu, *dz = vz + nu, *vn = dz + nu, *dn = vn + nu;
    size_t bytes = (size_t)nu * sizeof(REAL);
    for (int64_t n = w->n0; n < w->n1; n++) {
        int64_t len = len_of(c, n);
        if (s >= len) {
            zero_gate_grads(c, w, n, s);
            if (lbr)
                memset(W(c, c->lay.daux) + (s * c->N + n) * H + j0, 0, bytes);
            memcpy(dhnext + n * H + j0, dhcur + n * H + j0, bytes);
            continue;
        }
        int64_t t = time_of(c, len, s);
        const REAL *pre = saved_row(c, c->sl.gates, n, t, GH) + j0;
        const REAL *hp = saved_row(c, c->sl.hprev, n, t, H) + j0;
        const REAL *aux = saved_row(c, c->sl.aux, n, t, H) + j0;
        const REAL *dy = dy_row(c, n, t);
        act_backward(&act[0], c->clip, pre, vr, dr, nu);
        act_backward(&act[0], c->clip, pre + H, vz, dz, nu);
        act_backward(&act[1], c->clip, pre + 2 * H, vn, dn, nu);
        /* dh_out and dy summed first, so that the loops below have no branch */
        REAL *restrict dht = dn + nu;
        for (int64_t j = 0; j < nu; j++)
            dht[j] = dhcur[n * H + j0 + j] + (dy ? dy[j0 + j] : 0);
        REAL *restrict dgr = dgx_row(c, n, t) + j0, *restrict dhgr = dhg + n * GH + j0;
        REAL *restrict dhn = dhnext + n * H + j0;
        if (lbr) { /* n = g(x_n + r hn): d hn = r d_n, d r = hn d_n */
            REAL *restrict daux = W(c, c->lay.daux) + (t * c->N + n) * H + j0;
#pragma omp simd
            for (int64_t j = 0; j < nu; j++) {
                REAL d_n = dht[j] * (1 - vz[j]) * dn[j];
                REAL d_z = dht[j] * (hp[j] - vn[j]) * dz[j];
                REAL d_r = d_n * aux[j] * dr[j];
                dgr[j] = dhgr[j] = d_r;
                dgr[H + j] = dhgr[H + j] = d_z;
                dgr[2 * H + j] = d_n;
                dhgr[2 * H + j] = daux[j] = d_n * vr[j];
                dhn[j] = dht[j] * vz[j];
            }
        } else { /* d r waits for d(r h), below */
#pragma omp simd
            for (int64_t j = 0; j < nu; j++) {
                REAL d_n = dht[j] * (1 - vz[j]) * dn[j];
                REAL d_z = dht[j] * (hp[j] - vn[j]) * dz[j];
                dgr[H + j] = dhgr[H + j] = d_z;
                dgr[2 * H + j] = dhgr[2 * H + j] = d_n;
                dhn[j] = dht[j] * vz[j];
            }
        }
    }
    if (!lbr) { /* d(r h) = d_n @ W_hn, then d r = d(r h) h, and dh gains d(r h) r */
        BARRIER_IF(w->sync);
        REAL *drh = W(c, c->lay.dhsc);
        reset_grad_product(c, w, dhg, drh);
        for (int64_t n = w->n0; n < w->n1; n++) {
            int64_t len = len_of(c, n);
            if (s >= len)
                continue;
            int64_t t = time_of(c, len, s);
            const REAL *pre = saved_row(c, c->sl.gates, n, t, GH) + j0;
            const REAL *hp = saved_row(c, c->sl.hprev, n, t, H) + j0;
            act_backward(&act[0], c->clip, pre, vr, dr, nu);
            REAL *dgr = dgx_row(c, n, t) + j0;
#pragma omp simd
            for (int64_t j = 0; j < nu; j++) {
                REAL d = drh[n * H + j0 + j];
                REAL d_r = d * hp[j] * dr[j];
                dgr[j] = dhg[n * GH + j0 + j] = d_r;
                dhnext[n * H + j0 + j] += d * vr[j];
            }
        }
    }
    BARRIER_IF(w->sync);
    dh_product(c, w, dhnext, dh_product_depth(c));
}
