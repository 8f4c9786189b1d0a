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
from cpython.ref cimport Py_REFCNT
from libc.stdint cimport int64_t
from libc.string cimport memset
from scipy.linalg.cython_blas cimport sgemm, dgemm

import math
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


_ISAS = {FR_ISA_AVX2: "avx2", FR_ISA_AVX512: "avx512"}


def packed_enabled():
    """True when fastrnn's float32 kernels run (packed and few-row products), on AVX-512 or AVX2."""
    return bool(fr_packed_enabled())


def packed_isa():
    """The instruction set the float32 kernels run on: "avx512", "avx2", or None (BLAS)."""
    return _ISAS.get(fr_packed_isa())


def packed_isas():
    """The instruction sets of the float32 kernels this CPU has, widest first."""
    best = fr_packed_best_isa()
    return [name for isa, name in sorted(_ISAS.items(), reverse=True) if isa <= best]


def set_packed(enabled):
    """Run the float32 products on fastrnn's kernels (True: the widest set the CPU
    has; "avx2" or "avx512": that one, or the widest below it) or on BLAS and
    generic loops (False)."""
    if isinstance(enabled, str):
        isas = {name: isa for isa, name in _ISAS.items()}
        if enabled not in isas:
            raise ValueError(f"enabled: expected True, False, 'avx2' or 'avx512', got {enabled!r}")
        fr_set_packed_isa(isas[enabled])
    else:
        fr_set_packed(bool(enabled))


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
# and its page faults (the kernel zeroing every page) weigh on every call;
# 256 MB holds the packed weights of an LSTM of H = 2048 (136 MB).  Larger
# scratch is taken and given back per call.
KEEP_SCRATCH_BYTES = 256 << 20
_kept = threading.local()


cdef object _scratch(size_t n, object dtype):
    """n elements of dtype for one kernel call, from a 64-byte boundary (the
    layout puts every region, and each packed panel row, on a cache line): the
    calling thread's kept buffer when the call's scratch is small enough,
    grown as needed."""
    if n * dtype.itemsize > KEEP_SCRATCH_BYTES:
        return _aligned_empty(n, dtype)
    buffers = getattr(_kept, "buffers", None)
    if buffers is None:
        buffers = _kept.buffers = {}
    buf = buffers.get(dtype)
    if buf is None or buf.size < n:
        buf = buffers[dtype] = _aligned_empty(n, dtype)
    return buf


cdef class _CellStruct:
    """A cell's fr_cell, built once (_make_cell's cache)."""
    cdef object cell
    cdef fr_cell c


# id(cell) -> _CellStruct; an entry holds its cell, so the id is not reused.
cdef dict _cell_structs = {}


cdef fr_cell _make_cell(object cell):
    cached = _cell_structs.get(id(cell))
    if cached is not None and (<_CellStruct>cached).cell is cell:
        return (<_CellStruct>cached).c
    cdef _CellStruct entry = _CellStruct()
    entry.cell = cell
    cdef fr_cell *c = &entry.c
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
    if len(_cell_structs) >= 256:      # modules come and go: keep the cache small
        _cell_structs.clear()
    _cell_structs[id(cell)] = entry
    return entry.c


cdef fr_dims _make_dims(tuple dims) except *:
    cdef fr_dims d
    d.seq_len, d.batch, d.input_size, d.hidden_size, d.proj_size, d.ldy, d.n_dirs = dims
    return d


ctypedef fused fr_layer:
    fr_layer_f32
    fr_layer_f64

ctypedef fused real:
    float
    double


# The pointer fields of fr_layer_f32 / fr_layer_f64 (the keys of a direction's
# dict, with "reverse"), at the same offsets in both structs.
cdef fr_layer_f32 _probe32
cdef fr_layer_f64 _probe64
cdef char *_base32 = <char *>&_probe32
cdef char *_base64 = <char *>&_probe64
_FIELD_OFFSETS = {
    "weight_ih": (<char *>&_probe32.weight_ih - _base32, <char *>&_probe64.weight_ih - _base64),
    "weight_hh": (<char *>&_probe32.weight_hh - _base32, <char *>&_probe64.weight_hh - _base64),
    "bias_ih": (<char *>&_probe32.bias_ih - _base32, <char *>&_probe64.bias_ih - _base64),
    "bias_hh": (<char *>&_probe32.bias_hh - _base32, <char *>&_probe64.bias_hh - _base64),
    "weight_hr": (<char *>&_probe32.weight_hr - _base32, <char *>&_probe64.weight_hr - _base64),
    "weight_peephole": (<char *>&_probe32.weight_peephole - _base32,
                        <char *>&_probe64.weight_peephole - _base64),
    "h0": (<char *>&_probe32.h0 - _base32, <char *>&_probe64.h0 - _base64),
    "c0": (<char *>&_probe32.c0 - _base32, <char *>&_probe64.c0 - _base64),
    "y": (<char *>&_probe32.y - _base32, <char *>&_probe64.y - _base64),
    "h_n": (<char *>&_probe32.h_n - _base32, <char *>&_probe64.h_n - _base64),
    "c_n": (<char *>&_probe32.c_n - _base32, <char *>&_probe64.c_n - _base64),
    "saved": (<char *>&_probe32.saved - _base32, <char *>&_probe64.saved - _base64),
    "dy": (<char *>&_probe32.dy - _base32, <char *>&_probe64.dy - _base64),
    "dh_n": (<char *>&_probe32.dh_n - _base32, <char *>&_probe64.dh_n - _base64),
    "dc_n": (<char *>&_probe32.dc_n - _base32, <char *>&_probe64.dc_n - _base64),
    "dh0": (<char *>&_probe32.dh0 - _base32, <char *>&_probe64.dh0 - _base64),
    "dc0": (<char *>&_probe32.dc0 - _base32, <char *>&_probe64.dc0 - _base64),
    "dweight_ih": (<char *>&_probe32.dweight_ih - _base32, <char *>&_probe64.dweight_ih - _base64),
    "dweight_hh": (<char *>&_probe32.dweight_hh - _base32, <char *>&_probe64.dweight_hh - _base64),
    "dbias_ih": (<char *>&_probe32.dbias_ih - _base32, <char *>&_probe64.dbias_ih - _base64),
    "dbias_hh": (<char *>&_probe32.dbias_hh - _base32, <char *>&_probe64.dbias_hh - _base64),
    "dweight_hr": (<char *>&_probe32.dweight_hr - _base32, <char *>&_probe64.dweight_hr - _base64),
    "dweight_peephole": (<char *>&_probe32.dweight_peephole - _base32,
                         <char *>&_probe64.dweight_peephole - _base64),
}
assert all(a == b for a, b in _FIELD_OFFSETS.values())
_FIELD_OFFSETS = {name: a for name, (a, b) in _FIELD_OFFSETS.items()}


cdef void _fill_layer(fr_layer *L, dict arrays) except *:
    """One direction's struct from the arrays given by field name; the rest NULL."""
    memset(L, 0, sizeof(L[0]))
    cdef char *base = <char *>L
    cdef Py_ssize_t offset
    for name, value in arrays.items():
        if name == "reverse":
            L.reverse = bool(value)
            continue
        at = _FIELD_OFFSETS.get(name)
        if at is None:
            raise ValueError(f"dirs: expected keys among the fields of fr_layer, got {name!r}")
        offset = at
        (<void **>(base + offset))[0] = _data(value)


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


# The blocks a training step's cache holds (forward's saved blocks, the
# module's copies of its parameters) are kept likewise, up to this many bytes
# per Python thread: a block that no cache holds any longer goes to the next
# step that needs one of its size.  At the larger shapes they are tens of
# megabytes each, past glibc's mmap threshold, so fresh ones are pages faulted
# in and zeroed on every step.
KEEP_CACHE_BYTES = 256 << 20


cdef bint _unheld(object buf):
    """Whether nothing but the kept list (and the caller's loop) refers to buf, an
    _aligned_empty view, or to the bytes under it (views of it refer to those)."""
    base = buf.base
    return Py_REFCNT(buf) == 2 and Py_REFCNT(base) == 2


def kept_empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` from a 64-byte boundary,
    for a block that a training step's cache holds: a kept one that nothing holds
    any longer, else a new one, kept while KEEP_CACHE_BYTES allows (making room by
    letting go of kept blocks that nothing holds)."""
    shape = tuple(shape)
    cdef size_t n = math.prod(shape)
    dtype = np.dtype(dtype)
    kept = getattr(_kept, "cache", None)
    if kept is None:
        kept = _kept.cache = []
    for buf in kept:
        if buf.size == n and buf.dtype == dtype and _unheld(buf):
            return buf.reshape(shape)
    buf = _aligned_empty(n, dtype)
    cdef size_t total = sum(b.nbytes for b in kept) + buf.nbytes
    cdef Py_ssize_t i = 0
    while total > KEEP_CACHE_BYTES and i < len(kept):
        if _unheld(kept[i]):
            total -= kept[i].nbytes
            del kept[i]
        else:
            i += 1
    if total <= KEEP_CACHE_BYTES:
        kept.append(buf)
    return buf.reshape(shape)


def new_saved(cell, tuple dims, dtype):
    """The block that forward-for-training saves per direction (uninitialised,
    from a 64-byte boundary: the products write its gate rows), from kept_empty."""
    cdef fr_cell c = _make_cell(cell)
    cdef fr_dims d = _make_dims(dims)
    return kept_empty((fr_saved_size(&c, &d),), dtype)


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
    _run_forward(&c, &d, x, lengths, dirs32, dirs64, single, NULL, FR_FORMAT_DENSE, pass_,
                 n_threads)


_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


cdef int _run_forward(const fr_cell *c, const fr_dims *d, x, lengths, const fr_layer_f32 *dirs32,
                      const fr_layer_f64 *dirs64, bint single, const fr_frozen_dir *frozen,
                      int format, int pass_, int n_threads) except -1:
    """One layer forward without the GIL: the module's kernels (FR_FORMAT_DENSE) or the
    frozen ones over prepared weights, scratch from _scratch."""
    cdef size_t n_ws
    if format == FR_FORMAT_DENSE:
        n_ws = fr_workspace_size(c, d, pass_, n_threads)
    else:
        n_ws = fr_frozen_workspace_size(c, d, format, n_threads)
    ws = _scratch(n_ws, _FLOAT32 if single else _FLOAT64)
    cdef void *xp = _data(x)
    cdef void *wsp = _data(ws)
    cdef const int64_t *lp = <const int64_t *>_data(lengths)
    cdef fr_status status
    _enter_kernels()
    with nogil:
        if format != FR_FORMAT_DENSE:
            status = fr_frozen_forward_f32(&_blas, c, d, lp, <const float *>xp, dirs32, frozen,
                                           format, <float *>wsp, n_threads)
        elif single:
            status = fr_forward_f32(&_blas, c, d, lp, <const float *>xp, dirs32, <float *>wsp,
                                    n_threads)
        else:
            status = fr_forward_f64(&_blas, c, d, lp, <const double *>xp, dirs64, <double *>wsp,
                                    n_threads)
    _leave_kernels()
    return _check(status)


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


# ---- frozen inference: weights prepared once (csrc/frozen.h) ----

def lowp_paths():
    """The path each reduced precision's products run on this CPU.

    Returns
    -------
    dict of str to str
        ``{"bfloat16": "avx512_bf16" or "portable", "int8": "avx512_vnni" or
        "portable"}``.
    """
    return {"bfloat16": fr_bf16_path_name(fr_bf16_path()).decode(),
            "int8": fr_int8_path_name(fr_int8_path()).decode()}


def set_lowp_vector(bint enabled):
    """Run the reduced-precision products on the CPU's vector instructions where it has
    them (True), or on the portable path (False); the results are the same bit for bit."""
    fr_lowp_set_vector(enabled)


def panels_available():
    """True where frozen float32 weights are kept in AVX-512 panels (else as they lie)."""
    return bool(fr_panels_available())


PRECISIONS = ("float32", "float64", "bfloat16", "int8")


cdef int _format_of(str precision) except -1:
    if precision == "bfloat16":
        return FR_FORMAT_BF16_PANELS
    if precision == "int8":
        return FR_FORMAT_INT8_PANELS
    if precision == "float32":
        return FR_FORMAT_PANELS if fr_panels_available() else FR_FORMAT_DENSE
    if precision == "float64":
        return FR_FORMAT_DENSE
    raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")


cdef object _aligned_bytes(size_t n):
    """A uint8 array of n bytes whose data starts at a 64-byte boundary."""
    raw = np.empty(n + 64, np.uint8)
    cdef size_t skip = (64 - (<size_t>_data(raw)) % 64) % 64
    return raw[skip:skip + n]


cdef object _aligned_empty(size_t n, object dtype):
    """n uninitialised elements of dtype (a numpy dtype) from a 64-byte boundary."""
    return _aligned_bytes(n * dtype.itemsize).view(dtype)


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` whose data starts on a
    64-byte line (the kernels read such an array a cache line at a time)."""
    shape = tuple(shape)
    return _aligned_empty(math.prod(shape), np.dtype(dtype)).reshape(shape)


cdef class Prepared:
    """One weight prepared once for a frozen module's kernels, read-only.

    Parameters
    ----------
    weight : ndarray (blocks * n, K), float32 (float64 for "float64")
        As torch lays it out: one row per output.
    precision : {"float32", "float64", "bfloat16", "int8"}
    blocks : int
        Blocks of rows prepared each on its own (W_hh: one per gate).

    float64 keeps the weight as it lies; float32 packs it into panels where
    the CPU has AVX-512 (else keeps it as it lies); bfloat16 and int8 convert
    it (csrc/lowp.h).  Pickles: the layouts of bfloat16 and int8 are the same
    on every path, so their bytes travel; float32 travels as the weight and
    is packed again for the CPU that loads it.
    """
    cdef fr_prepared prep
    cdef object data
    cdef readonly str precision
    cdef readonly int format
    cdef readonly int blocks
    cdef readonly tuple shape

    def __init__(self, weight, str precision, int blocks=1):
        self.format = _format_of(precision)
        self.precision = precision
        rows, K = weight.shape
        if blocks < 1 or blocks > FR_MAX_BLOCKS or rows % blocks:
            raise ValueError(f"blocks: expected 1 to {FR_MAX_BLOCKS} blocks that divide the "
                             f"{rows} rows, got {blocks}")
        self.blocks = blocks
        self.shape = (rows, K)
        if self.format == FR_FORMAT_DENSE:
            dtype = np.float64 if precision == "float64" else np.float32
            self.data = np.array(weight, dtype=dtype, order="C", copy=True)
        else:
            w = np.ascontiguousarray(weight, dtype=np.float32)
            self.data = self._block(rows // blocks, K)
            if fr_prepare(self.format, _data(self.data), self.data.nbytes, <const float *>_data(w),
                          rows // blocks, K, blocks, &self.prep) != FR_OK:
                raise ValueError(f"weight: cannot prepare a {tuple(weight.shape)} weight in "
                                 f"{precision} (int8 needs finite weights, rows of at most "
                                 "65536)")
        self.data.flags.writeable = False

    cdef object _block(self, int64_t n, int64_t K):
        cdef size_t nbytes = fr_prepare_bytes(self.format, n, K, self.blocks)
        if nbytes == 0:
            raise ValueError(f"weight: cannot prepare {self.blocks} blocks of ({n}, {K})")
        return _aligned_bytes(nbytes)

    @property
    def nbytes(self):
        """Bytes held: the prepared weight (scales and column sums included)."""
        return self.data.nbytes

    def dense(self):
        """The weight as torch lays it out, from float32 panels or as kept (not for bf16/int8)."""
        if self.format == FR_FORMAT_DENSE:
            return self.data
        if self.format != FR_FORMAT_PANELS:
            raise ValueError(f"precision: {self.precision} weights are converted; the float "
                             "weight is not kept")
        rows, K = self.shape
        n = rows // self.blocks
        panels = (n + 15) // 16
        each = fr_prepare_bytes(self.format, n, K, 1)
        out = []
        for b in range(self.blocks):
            start = (b * each + 63) // 64 * 64
            block = self.data[start:start + panels * 16 * K * 4].view(np.float32)
            out.append(block.reshape(panels, K, 16).transpose(0, 2, 1).reshape(-1, K)[:n])
        return np.ascontiguousarray(np.concatenate(out))

    def __reduce__(self):
        if self.format in (FR_FORMAT_DENSE, FR_FORMAT_PANELS):
            return (Prepared, (self.dense(), self.precision, self.blocks))
        return (_restore_prepared, (self.precision, self.shape, self.blocks, self.data.tobytes()))



def _restore_prepared(str precision, tuple shape, int blocks, bytes content):
    """A bfloat16 or int8 Prepared from its pickled bytes (Prepared.__reduce__)."""
    cdef Prepared p = Prepared.__new__(Prepared)
    p.format = _format_of(precision)
    p.precision = precision
    p.blocks = blocks
    p.shape = shape
    rows, K = shape
    p.data = p._block(rows // blocks, K)
    if len(content) != p.data.nbytes:
        raise ValueError(f"content: expected {p.data.nbytes} bytes of a prepared {precision} "
                         f"weight {shape}, got {len(content)}")
    p.data[:] = np.frombuffer(content, np.uint8)
    if fr_prepared_view(p.format, _data(p.data), p.data.nbytes, rows // blocks, K, blocks,
                        &p.prep) != FR_OK:
        raise ValueError(f"content: not a prepared {precision} weight {shape}")
    p.data.flags.writeable = False
    return p


cdef inline real *_at(char *p, const real *kind) noexcept:
    """p typed as the field `kind` is."""
    return <real *>p


cdef inline void _point_states(fr_layer *L, char *h0, char *h_n, char *y, char *c0,
                               char *c_n) noexcept:
    """A direction's state and output arrays (NULL c0, c_n: none) into its struct."""
    L.h0 = _at(h0, L.h0)
    L.h_n = _at(h_n, L.h_n)
    L.y = _at(y, L.y)
    L.c0 = _at(c0, L.c0)
    L.c_n = _at(c_n, L.c_n)


cdef class FrozenCall:
    """One kernel call of a frozen layer: the directions that share a cell.

    Built once from the cell, the directions' indices in the layer and, per
    direction, its prepared weights (``Prepared`` under "weight_ih",
    "weight_hh", "weight_hr") and arrays ("bias_ih", "bias_hh",
    "weight_peephole"; None where absent); a call fills in the pointers of
    its arrays and runs.  Nothing in it changes during a call.
    """
    cdef fr_cell cell
    cdef fr_layer_f32 dirs32[2]
    cdef fr_layer_f64 dirs64[2]
    cdef fr_frozen_dir fz[2]
    cdef int format, n_dirs, first, layer_dirs, single
    cdef int64_t input_size, hidden_size, proj_size, hidden_out
    cdef list keep

    def __init__(self, cell, list dir_indices, list weights, int layer_dirs, str precision):
        self.cell = _make_cell(cell)
        self.n_dirs = len(dir_indices)
        self.first = dir_indices[0]
        self.layer_dirs = layer_dirs
        self.single = precision != "float64"
        self.keep = weights
        cdef Prepared wih, whh, whr
        for k, w in enumerate(weights):
            wih, whh, whr = w["weight_ih"], w["weight_hh"], w["weight_hr"]
            self.format = wih.format
            G = fr_gates(self.cell.mode)
            self.input_size = wih.shape[1]
            self.hidden_size = wih.shape[0] // G
            self.proj_size = 0 if whr is None else whr.shape[0]
            self.hidden_out = self.proj_size or self.hidden_size
            self.fz[k].weight_ih = &wih.prep
            self.fz[k].weight_hh = &whh.prep
            self.fz[k].weight_hr = NULL if whr is None else &whr.prep
            arrays = {"reverse": dir_indices[k] == 1, "bias_ih": w["bias_ih"],
                      "bias_hh": w["bias_hh"], "weight_peephole": w["weight_peephole"]}
            if self.format == FR_FORMAT_DENSE:
                arrays.update(weight_ih=wih.data, weight_hh=whh.data,
                              weight_hr=None if whr is None else whr.data)
            if self.single:
                _fill_layer(&self.dirs32[k], arrays)
            else:
                _fill_layer(&self.dirs64[k], arrays)

    cdef int run(self, x, y, h0, c0, h_n, c_n, int64_t row0, lengths,
                 int n_threads) except -1:
        """Layer rows row0 + direction of h0/c0/h_n/c_n; x (T, N, I), y (T, N, D*H_out)."""
        cdef fr_dims d
        d.seq_len = x.shape[0]
        d.batch = x.shape[1]
        d.input_size = self.input_size
        d.hidden_size = self.hidden_size
        d.proj_size = self.proj_size
        d.ldy = self.layer_dirs * self.hidden_out
        d.n_dirs = self.n_dirs
        cdef int64_t N = d.batch, isz = 4 if self.single else 8, dd, srow
        cdef char *h0p = <char *>_data(h0)
        cdef char *hnp = <char *>_data(h_n)
        cdef char *yp = <char *>_data(y)
        cdef char *c0p = <char *>_data(c0)
        cdef char *cnp = <char *>_data(c_n)
        cdef fr_layer_f32 l32[2]
        cdef fr_layer_f64 l64[2]
        cdef int64_t h_at, c_at, y_at
        for k in range(self.n_dirs):
            dd = self.first + k
            srow = row0 + dd
            h_at = srow * N * self.hidden_out * isz
            c_at = srow * N * self.hidden_size * isz
            y_at = dd * self.hidden_out * isz
            if self.single:
                l32[k] = self.dirs32[k]
                _point_states(&l32[k], h0p + h_at, hnp + h_at, yp + y_at,
                              c0p + c_at if c0p != NULL else NULL, cnp + c_at if c0p != NULL else NULL)
            else:
                l64[k] = self.dirs64[k]
                _point_states(&l64[k], h0p + h_at, hnp + h_at, yp + y_at,
                              c0p + c_at if c0p != NULL else NULL, cnp + c_at if c0p != NULL else NULL)
        return _run_forward(&self.cell, &d, x, lengths, l32, l64, self.single, self.fz,
                            self.format, FR_PASS_INFERENCE, n_threads)


cdef class FrozenStack:
    """A frozen stack of layers: its kernel calls, built once.

    Parameters
    ----------
    spec : list
        Per layer, a list of kernel calls ``(cell, dir_indices, weights)``
        as ``FrozenCall`` takes them.
    n_dirs : int
    hidden_out : int
        H_out of every layer.
    precision : str
        One of ``PRECISIONS``; float64 computes in float64, the rest in float32.
    """
    cdef list layers
    cdef readonly list spec
    cdef readonly str precision
    cdef int n_dirs
    cdef int64_t hidden_out
    cdef object dtype

    def __init__(self, list spec, int n_dirs, int64_t hidden_out, str precision):
        self.spec = spec
        self.precision = precision
        self.n_dirs = n_dirs
        self.hidden_out = hidden_out
        self.dtype = np.dtype(np.float64 if precision == "float64" else np.float32)
        self.layers = [[FrozenCall(cell, list(dirs), list(weights), n_dirs, precision)
                        for cell, dirs, weights in calls] for calls in spec]

    def forward(self, x, h0, c0, lengths, int n_threads):
        """Run the stack: x (T, N, I), h0 (L*D, N, H_out), c0 (L*D, N, H) or None, all
        C-contiguous of the stack's dtype, checked; lengths int64 (N,) or None.

        Returns (y (T, N, D*H_out), h_n, c_n or None), new arrays."""
        cdef int64_t T = x.shape[0], N = x.shape[1]
        cdef int D = self.n_dirs
        if N == 0:
            return (np.zeros((T, 0, D * self.hidden_out), self.dtype), h0.copy(),
                    None if c0 is None else c0.copy())
        h_n = np.empty_like(h0)
        c_n = None if c0 is None else np.empty_like(c0)
        inp = x
        cdef int64_t k = 0
        for calls in self.layers:
            y = np.empty((T, N, D * self.hidden_out), self.dtype)
            for call in calls:
                (<FrozenCall>call).run(inp, y, h0, c0, h_n, c_n, k * D, lengths, n_threads)
            inp = y
            k += 1
        return inp, h_n, c_n

    def step(self, x, h0, c0, int n_threads):
        """One step of a one-layer, one-direction stack (a frozen cell): x (1, N, I),
        h0 (1, N, H_out), c0 (1, N, H) or None, checked, N >= 1.

        Returns (h_n, c_n or None), new arrays; the step's output is h_n itself."""
        h_n = np.empty_like(h0)
        c_n = None if c0 is None else np.empty_like(c0)
        (<FrozenCall>self.layers[0][0]).run(x, h_n, h0, c0, h_n, c_n, 0, None, n_threads)
        return h_n, c_n

    def __reduce__(self):
        return (FrozenStack, (self.spec, self.n_dirs, self.hidden_out, self.precision))
