/* The kernels for float: the shared loop (layer.h) and the three cells,
 * compiled once per dtype from one body. */
#include "fastrnn.h"
#include "threads.h"
#include "packed.h"
#include "plan.h"

#define REAL float
#define FR_REAL_IS_FLOAT 1
#define LAYER fr_layer_f32
#define BLAS_GEMM(blas) ((blas)->sgemm)
#define FR_NAME(name) name##_f32

#include "act.h"
#include "layer.h"
#include "rnn.c"
#include "lstm.c"
#include "gru.c"
