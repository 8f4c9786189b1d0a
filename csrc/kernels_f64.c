/* The kernels for double: fr_forward_f64 and fr_backward_f64, compiled from
 * the bodies that both dtypes share (REAL, LAYER, FR_NAME set below):
 *   act.h        gate activations
 *   context.h    a call's addressing: ctx, work, rows, finish_step
 *   products.h   the products seam: every product, its kernel and its operands
 *   cell_*.h     each cell's step, forward and backward
 *   forward.h    the forward driver
 *   backward.h   the backward driver and the weight gradients */
#include <string.h>

#include "fastrnn.h"
#include "threads.h"
#include "plan.h"
#include "packed.h"

#define REAL double
#define FR_REAL_IS_FLOAT 0
#define LAYER fr_layer_f64
#define BLAS_GEMM(blas) ((blas)->dgemm)
#define FR_NAME(name) name##_f64

#include "act.h"
#include "context.h"
#include "products.h"
#include "cell_rnn.h"
#include "cell_lstm.h"
#include "cell_gru.h"
#include "forward.h"
#include "backward.h"
