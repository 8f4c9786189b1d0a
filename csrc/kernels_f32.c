/* The kernels for float: fr_forward_f32 and fr_backward_f32, compiled from
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

#define REAL float
#define FR_REAL_IS_FLOAT 1
#define LAYER fr_layer_f32
#define BLAS_GEMM(blas) ((blas)->sgemm)
#define FR_NAME(name) name##_f32

#include "act.h"
#include "context.h"
#include "products.h"
#include "cell_rnn.h"
#include "cell_lstm.h"
#include "cell_gru.h"
#include "forward.h"
#include "backward.h"
