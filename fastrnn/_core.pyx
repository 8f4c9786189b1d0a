"""The thin layer between Python and the C kernels.

At import: fills the BLAS table from scipy.linalg.cython_blas, checks that the
kernels' enums (modes, activations) are fastrnn._cell's, and lets the kernels
read the CPU once (fr_init).  Per call: fills the kernels' structs field by
field by name from the Python description of a layer, hands the threads to
the kernels (SciPy's BLAS runs single-threaded inside them), lends them
scratch, releases the GIL for the whole call and turns a status code into an
exception.  It checks nothing that the Python layer above it has checked:
arrays arrive C-contiguous, of the kernel's dtype and of the right shapes.
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS
from libc.stdint cimport int64_t
from scipy.linalg.cython_blas cimport sgemm, dgemm

import threading

import numpy as np

from fastrnn._kernels cimport *
from fastrnn._cell import ACTIVATION_CODES, GATES

cdef fr_blas _blas
_blas.sgemm = <fr_sgemm_t>sgemm
_blas.dgemm = <fr_dgemm_t>dgemm



cdef bint _blas_ints_match():
    """True when SciPy's BLAS reads the 32-bit integers the kernels pass.

    Every integer argument of a 1x1x1 SGEMM points at {1, INT_MIN}: a BLAS
    with 32-bit integers reads 1 and computes 2 * 3; one with 64-bit integers
    reads a negative number, rejects the call and leaves C alone.
    """
    cdef fr_blas_int probe[2]
    probe[0] = 1
    probe[1] = -2147483647 - 1
    cdef float a = 2, b = 3, c = 0, one = 1, zero = 0
    cdef char no = b'N'
    _blas.sgemm(&no, &no, probe, probe, probe, &one, &a, probe, &b, probe, &zero, &c, probe)
    return c == 6


if not _blas_ints_match():
    raise ImportError(f"fastrnn's kernels pass {sizeof(fr_blas_int) * 8}-bit integers to BLAS, "
                      "but SciPy's cython_blas does not read them as such (an ILP64 BLAS?); "
                      "rebuild fastrnn against this SciPy")

# The kernels' enums by name; checked against fastrnn._cell below.
_MODES = {"rnn": FR_RNN, "lstm": FR_LSTM, "gru": FR_GRU}
_ACTIVATIONS = {"Sigmoid": FR_SIGMOID, "Tanh": FR_TANH, "Relu": FR_RELU,
                "HardSigmoid": FR_HARDSIGMOID, "LeakyRelu": FR_LEAKYRELU,
                "ThresholdedRelu": FR_THRESHOLDEDRELU, "ScaledTanh": FR_SCALEDTANH,
                "Affine": FR_AFFINE, "Elu": FR_ELU, "Softsign": FR_SOFTSIGN,
                "Softplus": FR_SOFTPLUS}


def _enum_mismatches():
    """What differs between the kernels' enums and fastrnn._cell (empty: nothing)."""
    found = []
    gates = {name: fr_gates(code) for name, code in _MODES.items()}
    if gates != GATES:
        found.append(f"modes: the kernels have gates {gates}, fastrnn._cell.GATES {GATES}")
    if _ACTIVATIONS != ACTIVATION_CODES or len(_ACTIVATIONS) != FR_N_ACTIVATIONS:
        found.append(f"activations: the kernels have {_ACTIVATIONS} ({FR_N_ACTIVATIONS} in all), "
                     f"fastrnn._cell.ACTIVATION_CODES {ACTIVATION_CODES}")
    return found


if _enum_mismatches():
    raise ImportError("fastrnn's kernels and fastrnn._cell disagree (rebuild the extension "
                      "after changing either): " + "; ".join(_enum_mismatches()))

# The CPU is read, and the product path chosen, once, here.
fr_init()


def cpu_flags():
    """The CPU's features as the kernels see them.

    Returns
    -------
    dict of str to bool
        Under /proc/cpuinfo's names: "avx2", "fma", "avx512f", "avx512_bf16",
        "avx512_vnni", "avx_vnni"; False where the compiler cannot ask.
    """
    cdef fr_cpu_features f = fr_cpu_flags()
    return {"avx2": bool(f.avx2), "fma": bool(f.fma), "avx512f": bool(f.avx512f),
            "avx512_bf16": bool(f.avx512_bf16), "avx512_vnni": bool(f.avx512_vnni),
            "avx_vnni": bool(f.avx_vnni)}


def openmp_enabled():
    """True when the kernels were built with OpenMP."""
    return bool(fr_openmp_enabled())


def packed_enabled():
    """True when the float32 AVX-512 kernels run: packed and few-row products, vector activations."""
    return bool(fr_packed_enabled())


def set_packed(bint enabled):
    """Use the float32 AVX-512 kernels where the CPU has them (True), or BLAS and generic loops (False)."""
    fr_set_packed(enabled)


# ---- one owner of threads: SciPy's BLAS runs single-threaded inside a kernel ----

ctypedef int (*blas_get_threads_t)() noexcept nogil
ctypedef void (*blas_set_threads_t)(int) noexcept nogil
cdef blas_get_threads_t _blas_get_threads = NULL
cdef blas_set_threads_t _blas_set_threads = NULL
cdef int _kernels_running = 0
cdef int _blas_threads_saved = 1


def set_blas_thread_control(size_t get_address, size_t set_address):
    """Give the addresses of SciPy's BLAS get/set_num_threads (0, 0: none known)."""
    global _blas_get_threads, _blas_set_threads
    _blas_get_threads = <blas_get_threads_t>get_address
    _blas_set_threads = <blas_set_threads_t>set_address


cdef inline void _enter_kernels():
    # Called with the GIL held: the count is safe across Python threads.
    global _kernels_running, _blas_threads_saved
    if _kernels_running == 0 and _blas_set_threads != NULL:
        _blas_threads_saved = _blas_get_threads()
        if _blas_threads_saved != 1:
            _blas_set_threads(1)
    _kernels_running += 1


cdef inline void _leave_kernels():
    global _kernels_running
    _kernels_running -= 1
    if _kernels_running == 0 and _blas_set_threads != NULL and _blas_threads_saved != 1:
        _blas_set_threads(_blas_threads_saved)


# ---- arrays and structs ----

cdef void *_data(object a) except? NULL:
    """The data pointer of a contiguous array (NULL for None)."""
    if a is None:
        return NULL
    cdef Py_buffer view
    PyObject_GetBuffer(a, &view, PyBUF_ANY_CONTIGUOUS)
    cdef void *p = view.buf
    PyBuffer_Release(&view)  # the caller keeps the array alive for the call
    return p


# Scratch of up to this many bytes is kept between calls, one buffer per Python
# thread and dtype: a fresh buffer comes from mmap and goes back with munmap,
# and its page faults weigh most on small calls.  Larger scratch is taken and
# given back per call.
KEEP_SCRATCH_BYTES = 16 << 20
_kept = threading.local()


cdef object _scratch(size_t n, object dtype):
    """n elements of dtype for one kernel call: the calling thread's kept buffer
    when the call's scratch is small enough, grown as needed."""
    if n * dtype.itemsize > KEEP_SCRATCH_BYTES:
        return np.empty(n, dtype)
    buffers = getattr(_kept, "buffers", None)
    if buffers is None:
        buffers = _kept.buffers = {}
    buf = buffers.get(dtype)
    if buf is None or buf.size < n:
        buf = buffers[dtype] = np.empty(n, dtype)
    return buf


cdef fr_cell _make_cell(object cell):
    cdef fr_cell c
    c.mode = _MODES[cell.mode]
    for k in range(3):
        c.act[k].code = 0
        c.act[k].alpha = 0
        c.act[k].beta = 0
    for k, name in enumerate(cell.activations):
        c.act[k].code = ACTIVATION_CODES[name]
        c.act[k].alpha = cell.alphas[k]
        c.act[k].beta = cell.betas[k]
    c.clip = 0.0 if cell.clip is None else cell.clip
    c.input_forget = cell.input_forget
    c.linear_before_reset = cell.linear_before_reset
    return c


cdef fr_dims _make_dims(tuple dims) except *:
    cdef fr_dims d
    d.seq_len, d.batch, d.input_size, d.hidden_size, d.proj_size, d.ldy, d.n_dirs = dims
    return d


# The fields of fr_layer_f32 / fr_layer_f64, the keys of a direction's dict.
_FIELDS = frozenset((
    "reverse", "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_peephole",
    "h0", "c0", "y", "h_n", "c_n", "saved", "dy", "dh_n", "dc_n", "dh0", "dc0",
    "dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh", "dweight_hr", "dweight_peephole"))

ctypedef fused fr_layer:
    fr_layer_f32
    fr_layer_f64

ctypedef fused real:
    float
    double


cdef inline real *_field(dict arrays, str name, const real *kind) except? NULL:
    """The data of arrays[name] (NULL if absent or None), typed as the field `kind` is."""
    return <real *>_data(arrays.get(name))


cdef void _fill_layer(fr_layer *L, dict arrays) except *:
    """One direction's struct, field by field by name; a missing key is NULL."""
    unknown = arrays.keys() - _FIELDS
    if unknown:
        raise ValueError(f"dirs: expected keys among the fields of fr_layer, got {sorted(unknown)}")
    L.reverse = bool(arrays.get("reverse", False))
    L.weight_ih = _field(arrays, "weight_ih", L.weight_ih)
    L.weight_hh = _field(arrays, "weight_hh", L.weight_hh)
    L.bias_ih = _field(arrays, "bias_ih", L.bias_ih)
    L.bias_hh = _field(arrays, "bias_hh", L.bias_hh)
    L.weight_hr = _field(arrays, "weight_hr", L.weight_hr)
    L.weight_peephole = _field(arrays, "weight_peephole", L.weight_peephole)
    L.h0 = _field(arrays, "h0", L.h0)
    L.c0 = _field(arrays, "c0", L.c0)
    L.y = _field(arrays, "y", L.y)
    L.h_n = _field(arrays, "h_n", L.h_n)
    L.c_n = _field(arrays, "c_n", L.c_n)
    L.saved = _field(arrays, "saved", L.saved)
    L.dy = _field(arrays, "dy", L.dy)
    L.dh_n = _field(arrays, "dh_n", L.dh_n)
    L.dc_n = _field(arrays, "dc_n", L.dc_n)
    L.dh0 = _field(arrays, "dh0", L.dh0)
    L.dc0 = _field(arrays, "dc0", L.dc0)
    L.dweight_ih = _field(arrays, "dweight_ih", L.dweight_ih)
    L.dweight_hh = _field(arrays, "dweight_hh", L.dweight_hh)
    L.dbias_ih = _field(arrays, "dbias_ih", L.dbias_ih)
    L.dbias_hh = _field(arrays, "dbias_hh", L.dbias_hh)
    L.dweight_hr = _field(arrays, "dweight_hr", L.dweight_hr)
    L.dweight_peephole = _field(arrays, "dweight_peephole", L.dweight_peephole)


cdef int _fill_dirs(list dirs, x, fr_layer_f32 *dirs32, fr_layer_f64 *dirs64) except -1:
    """The structs of x's dtype, one per direction (at most 2); 1 for float32, 0 for float64."""
    if not 1 <= len(dirs) <= 2:
        raise ValueError(f"dirs: expected 1 or 2 directions, got {len(dirs)}")
    single = x.dtype == np.float32
    for d, arrays in enumerate(dirs):
        if single:
            _fill_layer(&dirs32[d], arrays)
        else:
            _fill_layer(&dirs64[d], arrays)
    return single


cdef int _check(fr_status status) except -1:
    if status != FR_OK:
        raise RuntimeError(f"fastrnn kernel failed with status {status}")
    return 0


def saved_size(cell, tuple dims):
    """Elements that forward-for-training saves per direction."""
    cdef fr_cell c = _make_cell(cell)
    cdef fr_dims d = _make_dims(dims)
    return fr_saved_size(&c, &d)


cdef fr_dims _call_dims(tuple dims, list dirs) except *:
    cdef fr_dims d = _make_dims(dims)
    if len(dirs) != d.n_dirs:
        raise ValueError(f"dirs: expected {d.n_dirs} directions (dims' n_dirs), got {len(dirs)}")
    return d


def forward(cell, tuple dims, x, list dirs, lengths, int n_threads):
    """Run one layer forward.

    dims: (T, N, I, H, P, ldy, n_dirs); x: (T*N, I); dirs: one dict of arrays per
    direction, keyed by the fields of fr_layer ("saved" present for training);
    lengths: int64 (N,) or None.  Outputs are written into the given arrays.
    """
    cdef fr_cell c = _make_cell(cell)
    cdef fr_dims d = _call_dims(dims, dirs)
    cdef fr_layer_f32 dirs32[2]
    cdef fr_layer_f64 dirs64[2]
    cdef bint single = _fill_dirs(dirs, x, dirs32, dirs64)
    cdef int pass_ = FR_PASS_TRAIN if dirs[0].get("saved") is not None else FR_PASS_INFERENCE
    ws = _scratch(fr_workspace_size(&c, &d, pass_, n_threads), x.dtype)
    cdef void *xp = _data(x)
    cdef void *wsp = _data(ws)
    cdef const int64_t *lp = <const int64_t *>_data(lengths)
    cdef fr_status status
    _enter_kernels()
    with nogil:
        if single:
            status = fr_forward_f32(&_blas, &c, &d, lp, <const float *>xp, dirs32,
                                    <float *>wsp, n_threads)
        else:
            status = fr_forward_f64(&_blas, &c, &d, lp, <const double *>xp, dirs64,
                                    <double *>wsp, n_threads)
    _leave_kernels()
    _check(status)


def backward(cell, tuple dims, x, dx, list dirs, lengths, int n_threads):
    """Run one layer backward from what forward saved; dx (T*N, I) gets the sum over directions."""
    cdef fr_cell c = _make_cell(cell)
    cdef fr_dims d = _call_dims(dims, dirs)
    cdef fr_layer_f32 dirs32[2]
    cdef fr_layer_f64 dirs64[2]
    cdef bint single = _fill_dirs(dirs, x, dirs32, dirs64)
    ws = _scratch(fr_workspace_size(&c, &d, FR_PASS_BACKWARD, n_threads), x.dtype)
    cdef void *xp = _data(x)
    cdef void *dxp = _data(dx)
    cdef void *wsp = _data(ws)
    cdef const int64_t *lp = <const int64_t *>_data(lengths)
    cdef fr_status status
    _enter_kernels()
    with nogil:
        if single:
            status = fr_backward_f32(&_blas, &c, &d, lp, <const float *>xp, <float *>dxp, dirs32,
                                     <float *>wsp, n_threads)
        else:
            status = fr_backward_f64(&_blas, &c, &d, lp, <const double *>xp, <double *>dxp,
                                     dirs64, <double *>wsp, n_threads)
    _leave_kernels()
    _check(status)
