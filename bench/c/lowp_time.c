/* Times the per-step products of frozen inference on one thread: float32
 * over packed weights (fr_packed_gemm, what a step runs today), bfloat16 and
 * int8 (csrc/lowp.h, the left operand's conversion included), for the
 * gates of an LSTM layer: C (m x 4H) += A (m x H) W^T, K = H.
 *
 * Each kernel runs blocks of back-to-back calls (as a step loop does, its
 * weights warm in whatever cache holds them), blocks of the three kernels
 * interleaved; a block's time is its median call, a kernel's the median of
 * its blocks.  Prints GFLOP/s (2 m n K per call) and the ratios to float32.
 * Build and run: bench/c/lowp_time.sh [m ...] (default 1 4 8 200);
 * LOWP_H=512 times that hidden size alone, LOWP_PORTABLE=1 the portable path. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lowp.h"
#include "fastrnn.h"
#include "packed.h"

#define BLOCK 9  /* calls per block (the first warms up) */
#define ROUNDS 15 /* blocks per kernel */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    int64_t m, n, K;
    const float *A;
    float *C;
    const float *f32;          /* packed by fr_pack_rows */
    const fr_bf16_weights *bw;
    const fr_int8_weights *iw;
    uint16_t *Ab;
    uint8_t *Aq;
    float *scale_a;
} problem;

static void run(const problem *p, int kernel)
{
    switch (kernel) {
    case 0:
        fr_packed_gemm(p->m, p->n, p->K, p->A, p->K, p->f32, p->C, p->n, 1);
        break;
    case 1:
        fr_bf16_rows(p->m, p->K, p->A, p->K, p->Ab, fr_bf16_row_elems(p->K));
        fr_bf16_gemm(p->m, p->Ab, fr_bf16_row_elems(p->K), p->bw, 0, p->n, p->C, p->n, 1);
        break;
    default:
        fr_int8_rows(p->m, p->K, p->A, p->K, p->Aq, fr_int8_row_bytes(p->K), p->scale_a);
        fr_int8_gemm(p->m, p->Aq, fr_int8_row_bytes(p->K), p->scale_a, p->iw, 0, p->n, p->C, p->n, 1);
        break;
    }
}

int main(int argc, char **argv)
{
    int64_t ms[16] = {1, 4, 8, 200};
    int n_ms = 4;
    if (argc > 1) {
        n_ms = argc - 1 < 16 ? argc - 1 : 16;
        for (int i = 0; i < n_ms; i++)
            ms[i] = atoll(argv[i + 1]);
    }
    fr_init();
    if (!fr_packed_enabled()) {
        fprintf(stderr, "lowp_time: no AVX2 or AVX-512, so no float32 packed kernel to compare with\n");
        return 1;
    }
    if (getenv("LOWP_PORTABLE") && atoi(getenv("LOWP_PORTABLE")))
        fr_lowp_set_vector(0);
    int64_t Hs[] = {256, 512, 1024, 2048};
    int n_Hs = 4;
    if (getenv("LOWP_H")) { /* one hidden size only */
        Hs[0] = atoll(getenv("LOWP_H"));
        n_Hs = 1;
    }
    printf("one thread; paths: bf16 %s, int8 %s; median of %d blocks of %d calls\n",
           fr_bf16_path_name(fr_bf16_path()), fr_int8_path_name(fr_int8_path()), ROUNDS, BLOCK - 1);
    printf("%5s %5s %6s | %9s %9s %9s | %9s %9s %9s | %6s %6s\n", "m", "H", "n=4H", "f32 us",
           "bf16 us", "int8 us", "f32 GF/s", "bf16 GF/s", "int8 GF/s", "bf16 x", "int8 x");
    for (int a = 0; a < n_ms; a++)
        for (int b = 0; b < n_Hs; b++) {
            int64_t m = ms[a], K = Hs[b], n = 4 * K;
            float *W = malloc(sizeof(float) * (size_t)(n * K)), *A = malloc(sizeof(float) * (size_t)(m * K));
            float *C = calloc((size_t)(m * n), sizeof(float)), *scale_a = malloc(sizeof(float) * (size_t)m);
            float *f32 = aligned_alloc(64, sizeof(float) * (size_t)((fr_packed_size(K, n) + 15) / 16 * 16));
            size_t bb = fr_bf16_weights_bytes(n, K), ib = fr_int8_weights_bytes(n, K);
            void *bmem = malloc(bb), *imem = malloc(ib);
            uint16_t *Ab = malloc(sizeof(uint16_t) * (size_t)(m * fr_bf16_row_elems(K)));
            uint8_t *Aq = malloc((size_t)(m * fr_int8_row_bytes(K)));
            for (int64_t i = 0; i < n * K; i++)
                W[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
            for (int64_t i = 0; i < m * K; i++)
                A[i] = (float)((i * 40503u) % 1001) / 500.0f - 1.0f;
            fr_pack_rows(f32, W, K, 0, n, K);
            fr_bf16_weights bw;
            fr_int8_weights iw;
            fr_bf16_prepare(bmem, bb, W, K, n, K, &bw);
            fr_int8_prepare(imem, ib, W, K, n, K, &iw);
            problem p = {m, n, K, A, C, f32, &bw, &iw, Ab, Aq, scale_a};
            double blocks[3][ROUNDS], med[3];
            for (int r = 0; r < ROUNDS; r++)
                for (int k = 0; k < 3; k++) {
                    double calls[BLOCK];
                    for (int c = 0; c < BLOCK; c++) {
                        double t0 = now();
                        run(&p, k);
                        calls[c] = now() - t0;
                    }
                    blocks[k][r] = median(calls + 1, BLOCK - 1);
                }
            double flop = 2.0 * (double)m * (double)n * (double)K;
            for (int k = 0; k < 3; k++)
                med[k] = median(blocks[k], ROUNDS);
            printf("%5lld %5lld %6lld | %9.1f %9.1f %9.1f | %9.1f %9.1f %9.1f | %6.2f %6.2f\n",
                   (long long)m, (long long)K, (long long)n, 1e6 * med[0], 1e6 * med[1], 1e6 * med[2],
                   flop / med[0] * 1e-9, flop / med[1] * 1e-9, flop / med[2] * 1e-9, med[0] / med[1],
                   med[0] / med[2]);
            fflush(stdout);
            free(W), free(A), free(C), free(scale_a), free(f32), free(bmem), free(imem), free(Ab), free(Aq);
        }
    return 0;
}
