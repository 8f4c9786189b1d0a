# The C kernels' public header (csrc/fastrnn.h), for Cython.
from libc.stdint cimport int64_t


cdef extern from "fastrnn.h" nogil:
    ctypedef int fr_blas_int
    ctypedef void (*fr_sgemm_t)(char *, char *, int *, int *, int *, float *, float *, int *,
                                float *, int *, float *, float *, int *)
    ctypedef void (*fr_dgemm_t)(char *, char *, int *, int *, int *, double *, double *, int *,
                                double *, int *, double *, double *, int *)
    ctypedef struct fr_blas:
        fr_sgemm_t sgemm
        fr_dgemm_t dgemm

    ctypedef enum fr_status:
        FR_OK
        FR_ERR_ARGUMENT

    # fastrnn._cell.GATES's modes; _core checks them at import
    enum:
        FR_RNN
        FR_LSTM
        FR_GRU

    # fastrnn._cell.ACTIVATIONS, in order (ACTIVATION_CODES); _core checks them at import
    enum:
        FR_SIGMOID
        FR_TANH
        FR_RELU
        FR_HARDSIGMOID
        FR_LEAKYRELU
        FR_THRESHOLDEDRELU
        FR_SCALEDTANH
        FR_AFFINE
        FR_ELU
        FR_SOFTSIGN
        FR_SOFTPLUS
        FR_N_ACTIVATIONS

    int fr_gates(int mode)

    ctypedef struct fr_act:
        int code
        double alpha, beta

    ctypedef struct fr_cell:
        int mode
        fr_act act[3]
        double clip
        int input_forget
        int linear_before_reset

    ctypedef struct fr_dims:
        int64_t seq_len, batch, input_size, hidden_size, proj_size
        int64_t ldy
        int n_dirs

    ctypedef struct fr_layer_f32:
        int reverse
        const float *weight_ih
        const float *weight_hh
        const float *bias_ih
        const float *bias_hh
        const float *weight_hr
        const float *weight_peephole
        const float *h0
        const float *c0
        float *y
        float *h_n
        float *c_n
        float *saved
        const float *dy
        const float *dh_n
        const float *dc_n
        float *dh0
        float *dc0
        float *dweight_ih
        float *dweight_hh
        float *dbias_ih
        float *dbias_hh
        float *dweight_hr
        float *dweight_peephole

    ctypedef struct fr_layer_f64:
        int reverse
        const double *weight_ih
        const double *weight_hh
        const double *bias_ih
        const double *bias_hh
        const double *weight_hr
        const double *weight_peephole
        const double *h0
        const double *c0
        double *y
        double *h_n
        double *c_n
        double *saved
        const double *dy
        const double *dh_n
        const double *dc_n
        double *dh0
        double *dc0
        double *dweight_ih
        double *dweight_hh
        double *dbias_ih
        double *dbias_hh
        double *dweight_hr
        double *dweight_peephole

    enum:
        FR_PASS_INFERENCE
        FR_PASS_TRAIN
        FR_PASS_BACKWARD

    size_t fr_workspace_size(const fr_cell *cell, const fr_dims *d, int pass_, int n_threads)
    size_t fr_saved_size(const fr_cell *cell, const fr_dims *d)
    fr_status fr_forward_f32(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                             const int64_t *lengths, const float *x, const fr_layer_f32 *dirs,
                             float *ws, int n_threads)
    fr_status fr_forward_f64(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                             const int64_t *lengths, const double *x, const fr_layer_f64 *dirs,
                             double *ws, int n_threads)
    fr_status fr_backward_f32(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                              const int64_t *lengths, const float *x, float *dx,
                              const fr_layer_f32 *dirs, float *ws, int n_threads)
    fr_status fr_backward_f64(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                              const int64_t *lengths, const double *x, double *dx,
                              const fr_layer_f64 *dirs, double *ws, int n_threads)
    void fr_init()

    ctypedef struct fr_cpu_features:
        int avx2, fma, avx512f, avx512_bf16, avx512_vnni, avx_vnni

    fr_cpu_features fr_cpu_flags()
    int fr_openmp_enabled()
    enum:
        FR_ISA_NONE
        FR_ISA_AVX2
        FR_ISA_AVX512
    int fr_packed_best_isa()
    int fr_packed_isa()
    int fr_packed_enabled()
    void fr_set_packed_isa(int isa)
    void fr_set_packed(int enabled)


# Frozen inference (csrc/frozen.h, csrc/lowp.h).
from libc.stdint cimport uint16_t, int8_t, int32_t

cdef extern from "lowp.h" nogil:
    ctypedef struct fr_bf16_weights:
        int64_t n, K
        const uint16_t *panels

    ctypedef struct fr_int8_weights:
        int64_t n, K
        const int8_t *panels
        const float *scale_w
        const int32_t *colsum

    ctypedef enum fr_lowp_path:
        FR_LOWP_PORTABLE
        FR_LOWP_AVX512

    fr_lowp_path fr_bf16_path()
    fr_lowp_path fr_int8_path()
    void fr_lowp_set_vector(int enabled)
    const char *fr_bf16_path_name(fr_lowp_path path)
    const char *fr_int8_path_name(fr_lowp_path path)


cdef extern from "frozen.h" nogil:
    enum:
        FR_FORMAT_DENSE
        FR_FORMAT_PANELS
        FR_FORMAT_BF16_PANELS
        FR_FORMAT_INT8_PANELS
        FR_MAX_BLOCKS

    ctypedef struct fr_prepared:
        int format
        int blocks
        int64_t n, K

    ctypedef struct fr_frozen_dir:
        const fr_prepared *weight_ih
        const fr_prepared *weight_hh
        const fr_prepared *weight_hr

    int fr_panels_available()
    size_t fr_prepare_bytes(int format, int64_t n, int64_t K, int blocks)
    fr_status fr_prepare(int format, void *mem, size_t bytes, const float *W, int64_t n,
                         int64_t K, int blocks, fr_prepared *out)
    fr_status fr_prepared_view(int format, void *mem, size_t bytes, int64_t n, int64_t K,
                               int blocks, fr_prepared *out)
    size_t fr_frozen_workspace_size(const fr_cell *cell, const fr_dims *d, int format,
                                    int n_threads)
    fr_status fr_frozen_forward_f32(const fr_blas *blas, const fr_cell *cell, const fr_dims *d,
                                    const int64_t *lengths, const float *x,
                                    const fr_layer_f32 *dirs, const fr_frozen_dir *frozen,
                                    int format, float *ws, int n_threads)
