/* The kernels for double: the shared loop (layer.h) and the three cells,
 * compiled once per dtype from one body. */
#include "fastrnn.h"
#include "threads.h"
#include "packed.h"
#include "plan.h"

#define REAL double
#define FR_REAL_IS_FLOAT 0
#define LAYER fr_layer_f64
#define BLAS_GEMM(blas) ((blas)->dgemm)
#define FR_NAME(name) name##_f64

#include "act.h"
#include "layer.h"
#include "rnn.c"
#include "lstm.c"
#include "gru.c"
