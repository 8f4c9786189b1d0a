/* Gate activations of one dtype, a body included by kernels_f32.c and
 * kernels_f64.c with REAL set.  The sigmoid and tanh of float are written here, branch-free and
 * vectorisable (libm's are neither), accurate to a few ulp; double uses libm.
 * NaN propagates and +-inf saturates, as in PyTorch. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#if FR_REAL_IS_FLOAT
static inline float fr_exp(float x)
{
    /* exp(x) = 2^k exp(r), r = x - k ln2, |r| <= ln2/2; degree-7 Taylor for exp(r). */
    x = x > 88.0f ? 88.0f : x;
    x = x < -88.0f ? -88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float kf = x * 1.44269504088896341f + shifter;
    uint32_t kbits;
    memcpy(&kbits, &kf, sizeof kbits);
    kf -= shifter;
    float r = x - kf * 0.693145751953125f - kf * 1.42860682030941723e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666667e-1f + r * (4.16666667e-2f
              + r * (8.33333333e-3f + r * (1.38888889e-3f + r * 1.98412698e-4f))))));
    uint32_t sbits = (kbits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &sbits, sizeof scale);
    return p * scale;
}

static inline float fr_sigmoid(float x) { return 1.0f / (1.0f + fr_exp(-x)); }

static inline float fr_tanh(float x)
{
    /* Odd Taylor series near 0 (no cancellation), (1 - e)/(1 + e), e = exp(-2|x|), beyond. */
    float ax = fabsf(x), x2 = x * x;
    float small = x * (1.0f + x2 * (-3.33333333e-1f + x2 * (1.33333333e-1f
                  + x2 * (-5.39682540e-2f + x2 * (2.18694885e-2f + x2 * -8.86323552e-3f)))));
    float e = fr_exp(-2.0f * ax);
    float big = copysignf((1.0f - e) / (1.0f + e), x);
    return ax < 0.25f ? small : big;
}
#else
static inline double fr_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double fr_tanh(double x) { return tanh(x); }
#endif

static inline REAL act_value(int code, REAL a, REAL b, REAL x)
{
    switch (code) {
    case FR_SIGMOID: return fr_sigmoid(x);
    case FR_TANH: return fr_tanh(x);
    case FR_RELU: return x > 0 ? x : (x == x ? 0 : x);
    case FR_HARDSIGMOID: { REAL v = a * x + b; return v > 1 ? 1 : (v < 0 ? 0 : v); }
    case FR_LEAKYRELU: return x >= 0 ? x : a * x;
    case FR_THRESHOLDEDRELU: return x > a ? x : (x == x ? 0 : x);
    case FR_SCALEDTANH: return a * fr_tanh(b * x);
    case FR_AFFINE: return a * x + b;
    case FR_ELU: return x >= 0 ? x : a * (exp(x) - 1);
    case FR_SOFTSIGN: return x / (1 + fabs(x));
    case FR_SOFTPLUS: return x > 20 ? x : log1p(exp(x));
    }
    return x;
}

/* The derivative at pre-activation x, given the value v = act(x). */
static inline REAL act_deriv(int code, REAL a, REAL b, REAL x, REAL v)
{
    switch (code) {
    case FR_SIGMOID: return v * (1 - v);
    case FR_TANH: return 1 - v * v;
    case FR_RELU: return x > 0 ? 1 : 0;
    case FR_HARDSIGMOID: { REAL u = a * x + b; return (u > 0 && u < 1) ? a : 0; }
    case FR_LEAKYRELU: return x >= 0 ? 1 : a;
    case FR_THRESHOLDEDRELU: return x > a ? 1 : 0;
    case FR_SCALEDTANH: { REAL t = fr_tanh(b * x); return a * b * (1 - t * t); }
    case FR_AFFINE: return a;
    case FR_ELU: return x >= 0 ? 1 : v + a;
    case FR_SOFTSIGN: { REAL d = 1 + fabs(x); return 1 / (d * d); }
    case FR_SOFTPLUS: return fr_sigmoid(x);
    }
    return 1;
}

static inline REAL clip_value(REAL clip, REAL x)
{
    if (clip > 0) {
        x = x > clip ? clip : x;
        x = x < -clip ? -clip : x;
    }
    return x;
}

/* Hot loops get AVX2 and AVX-512 versions, picked at run time (not -march=native). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FR_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define FR_CLONES
#endif

/* out[j] = act(clip(pre[j])) for j < n.  The common activations get their own
 * loop so that the compiler vectorises them. */
FR_CLONES static void act_forward(const fr_act *act, REAL clip, const REAL *restrict pre,
                        REAL *restrict out, int64_t n)
{
    if (clip > 0 || (act->code != FR_SIGMOID && act->code != FR_TANH)) {
        const REAL a = (REAL)act->alpha, b = (REAL)act->beta;
        for (int64_t j = 0; j < n; j++)
            out[j] = act_value(act->code, a, b, clip_value(clip, pre[j]));
#if FR_REAL_IS_FLOAT && FR_HAVE_PACKED
    } else if (fr_packed_enabled()) { /* a vector at a time (avx512.c, avx2.c) */
        fr_act_vector(act->code == FR_TANH, pre, out, n);
#endif
    } else if (act->code == FR_SIGMOID) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            out[j] = fr_sigmoid(pre[j]);
    } else {
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            out[j] = fr_tanh(pre[j]);
    }
}

/* out[j] = act(clip(pre[j])), deriv[j] = d out[j] / d pre[j] (0 where clipped). */
FR_CLONES static void act_backward(const fr_act *act, REAL clip, const REAL *restrict pre,
                         REAL *restrict out, REAL *restrict deriv, int64_t n)
{
    act_forward(act, clip, pre, out, n);
    if (clip > 0 || (act->code != FR_SIGMOID && act->code != FR_TANH)) {
        const REAL a = (REAL)act->alpha, b = (REAL)act->beta;
        for (int64_t j = 0; j < n; j++) {
            REAL x = clip_value(clip, pre[j]);
            REAL inside = (clip > 0 && (pre[j] > clip || pre[j] < -clip)) ? 0 : 1;
            deriv[j] = inside * act_deriv(act->code, a, b, x, out[j]);
        }
    } else if (act->code == FR_SIGMOID) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            deriv[j] = out[j] * (1 - out[j]);
    } else {
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            deriv[j] = 1 - out[j] * out[j];
    }
}
