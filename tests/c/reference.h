/* The forward of every cell in plain scalar double, one sequence and one step
 * at a time, written from the equations (SPEC, "Cells and formulas") and not
 * from the kernels: the judge of every forward the driver runs, and through
 * central differences of it, of every backward. */
#ifndef FR_DRIVER_REFERENCE_H
#define FR_DRIVER_REFERENCE_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

/* ONNX's activation `code` with parameters a, b at x. */
static double ref_act(int code, double a, double b, double x)
{
    switch (code) {
    case FR_SIGMOID: return 1 / (1 + exp(-x));
    case FR_TANH: return tanh(x);
    case FR_RELU: return x > 0 ? x : 0;
    case FR_HARDSIGMOID: return fmax(0, fmin(1, a * x + b));
    case FR_LEAKYRELU: return x >= 0 ? x : a * x;
    case FR_THRESHOLDEDRELU: return x > a ? x : 0;
    case FR_SCALEDTANH: return a * tanh(b * x);
    case FR_AFFINE: return a * x + b;
    case FR_ELU: return x >= 0 ? x : a * (exp(x) - 1);
    case FR_SOFTSIGN: return x / (1 + fabs(x));
    case FR_SOFTPLUS: return log(1 + exp(x));
    }
    abort();
}

/* Activation k of the cell at x, its pre-activation clipped when `clipped`. */
static double ref_f(const spec *s, int k, int clipped, double x)
{
    if (clipped && s->clip > 0)
        x = fmax(-s->clip, fmin(s->clip, x));
    return ref_act(s->act[k], s->alpha[k], s->beta[k], x);
}

/* out[r] = b[r] + sum_k W[r][k] v[k] for r < rows (b NULL: no bias). */
static void ref_matvec(const double *W, const double *b, const double *v, int64_t rows,
                       int64_t cols, double *out)
{
    for (int64_t r = 0; r < rows; r++) {
        double sum = b ? b[r] : 0;
        for (int64_t k = 0; k < cols; k++)
            sum += W[r * cols + k] * v[k];
        out[r] = sum;
    }
}

/* One step of sequence n of direction f: h (Hout) and c (H) updated in place. */
static void ref_step(const spec *s, double *const *f, const double *x, double *h, double *c,
                     double *xg, double *hg, double *tmp)
{
    int64_t H = s->H, I = s->I, Hout = spec_hout(s), GH = spec_gates(s) * H;
    ref_matvec(f[F_WIH], f[F_BIH], x, GH, I, xg);
    ref_matvec(f[F_WHH], f[F_BHH], h, GH, Hout, hg);
    if (s->mode == FR_RNN) {
        for (int64_t j = 0; j < H; j++)
            h[j] = ref_f(s, 0, 1, xg[j] + hg[j]);
    } else if (s->mode == FR_LSTM) {
        const double *p = f[F_WP];
        double *hfull = tmp;
        for (int64_t j = 0; j < H; j++) {
            double i = ref_f(s, 0, 1, xg[j] + hg[j] + (p ? p[j] * c[j] : 0));
            double fg = s->input_forget ? 1 - i
                                        : ref_f(s, 0, 1, xg[H + j] + hg[H + j] + (p ? p[H + j] * c[j] : 0));
            double g = ref_f(s, 1, 1, xg[2 * H + j] + hg[2 * H + j]);
            c[j] = fg * c[j] + i * g;
            double o = ref_f(s, 0, 1, xg[3 * H + j] + hg[3 * H + j] + (p ? p[2 * H + j] * c[j] : 0));
            hfull[j] = o * ref_f(s, 2, 0, c[j]);
        }
        if (s->P)
            ref_matvec(f[F_WHR], NULL, hfull, s->P, H, h);
        else
            memcpy(h, hfull, (size_t)H * sizeof(double));
    } else {
        double *r = tmp, *z = tmp + H, *rh = tmp + 2 * H, *hn = tmp + 3 * H;
        const double *whn = f[F_WHH] + 2 * H * H, *bhn = f[F_BHH] ? f[F_BHH] + 2 * H : NULL;
        for (int64_t j = 0; j < H; j++) {
            r[j] = ref_f(s, 0, 1, xg[j] + hg[j]);
            z[j] = ref_f(s, 0, 1, xg[H + j] + hg[H + j]);
            rh[j] = r[j] * h[j];
        }
        if (s->linear_before_reset) /* n = g(x_n + b_in + r (W_hn h + b_hn)) */
            for (int64_t j = 0; j < H; j++)
                hn[j] = r[j] * hg[2 * H + j];
        else /* n = g(x_n + b_in + W_hn (r h) + b_hn) */
            ref_matvec(whn, bhn, rh, H, H, hn);
        for (int64_t j = 0; j < H; j++) {
            double nn = ref_f(s, 1, 1, xg[2 * H + j] + hn[j]);
            h[j] = (1 - z[j]) * nn + z[j] * h[j];
        }
    }
}

/* The layer forward: y (T*N, D*Hout), zeros past each length; h_n and c_n
 * (D*N*Hout, D*N*H; c_n only for the LSTM): each sequence's last state. */
static void reference_forward(const spec *s, const problem *p, double *y, double *h_n, double *c_n)
{
    int64_t T = s->T, N = s->N, I = s->I, H = s->H, Hout = spec_hout(s), D = s->n_dirs;
    int64_t GH = spec_gates(s) * H;
    double *xg = malloc((size_t)GH * sizeof(double)), *hg = malloc((size_t)GH * sizeof(double));
    double *tmp = malloc((size_t)4 * H * sizeof(double));
    double *h = malloc((size_t)Hout * sizeof(double)), *c = malloc((size_t)H * sizeof(double));
    memset(y, 0, (size_t)(T * N * D * Hout) * sizeof(double));
    for (int64_t d = 0; d < D; d++) {
        double *const *f = p->f[d];
        for (int64_t n = 0; n < N; n++) {
            int64_t len = p->lengths ? p->lengths[n] : T;
            memcpy(h, f[F_H0] + n * Hout, (size_t)Hout * sizeof(double));
            if (s->mode == FR_LSTM)
                memcpy(c, f[F_C0] + n * H, (size_t)H * sizeof(double));
            for (int64_t step = 0; step < len; step++) {
                int64_t t = d ? len - 1 - step : step;
                ref_step(s, f, p->x + (t * N + n) * I, h, c, xg, hg, tmp);
                memcpy(y + (t * N + n) * D * Hout + d * Hout, h, (size_t)Hout * sizeof(double));
            }
            memcpy(h_n + (d * N + n) * Hout, h, (size_t)Hout * sizeof(double));
            if (s->mode == FR_LSTM)
                memcpy(c_n + (d * N + n) * H, c, (size_t)H * sizeof(double));
        }
    }
    free(xg), free(hg), free(tmp), free(h), free(c);
}

#endif
