"""Every check of a user's argument, done once, before any kernel runs.

The front ends (``fastrnn.layers``, ``fastrnn.cells``, ``fastrnn._parameters``
and, for sizes, ``fastrnn.torch``) call these; each raises a ``TypeError`` or
``ValueError`` that names the argument, what was expected and what was given,
and returns the value in the form the kernels take (a C-contiguous array of
the module's dtype, an int64 lengths array, a list of ``Cell``).

Sizes.  The kernels pass every GEMM dimension and leading dimension to BLAS
as a C int (``fr_blas_int``, 32 bits: SciPy's BLAS is LP64) and index their
arrays with int64_t and size_t.  For a layer with G gates, input I (the input
size for the first layer, D*H_out after it), hidden size H, output H_out and
D directions, the GEMMs take (csrc/forward.h, backward.h and the cells):

* rows: N per step, chunk*N <= max(N, 1024) for the input GEMM in
  inference, T*N in training (the input GEMM over all steps, the k of the
  weight-gradient GEMMs, the rows of dx);
* columns and depths: I, G*H, H_out, H, P, all <= G*H or I;
* leading dimensions: I, G*H, H_out, H, P and, for a reverse direction with
  lengths in inference (one input GEMM per sequence), N*I and N*G*H.

Everything the kernels index (x, y, the gates and saved arrays, the scratch
of fr_workspace_size, the work estimate of fr_make_plan) is at most
T*N*G*H*(H_out + I) elements, so that product must fit in int64_t.
"""

import numbers

import numpy as np

from fastrnn._cell import ACTIVATIONS, DEFAULT_ACTIVATIONS, GATES, Cell

BLAS_INT_MAX = 2 ** 31 - 1       # fr_blas_int is a C int
INDEX_MAX = 2 ** 63 - 1          # the kernels index with int64_t


def describe(value):
    """A short description of ``value`` for an error message."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}" if np.isscalar(value) else type(value).__name__


def shape_str(dims):
    return str(tuple(dims))


# ---------------------------------------------------------------------------
# Scalars and configuration

def check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {describe(value)}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def check_flag(name, value):
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral)
                                               and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {describe(value)}")


def check_dtype(dtype):
    try:
        dt = None if dtype is None else np.dtype(dtype)   # np.dtype(None) is float64
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64) or dt.byteorder not in ("=", "|"):
        raise TypeError(f"dtype: expected np.float32 or np.float64, got {dtype!r}")
    return dt


def check_dropout(dropout):
    if (isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real)
            or not 0 <= dropout <= 1):
        raise ValueError(f"dropout: expected a number in [0, 1] (the probability of "
                         f"zeroing an element), got {describe(dropout)}")
    return float(dropout)


def check_cell_clip(cell_clip):
    if cell_clip is None:
        return None
    if isinstance(cell_clip, (bool, np.bool_)) or not isinstance(cell_clip, numbers.Real):
        raise TypeError(f"cell_clip: expected None or a positive number, got "
                        f"{describe(cell_clip)}")
    if not cell_clip > 0:
        raise ValueError(f"cell_clip: expected None or a positive number, got {cell_clip!r}")
    return float(cell_clip)


def _numbers(arg, values):
    """ONNX's activation_alpha / activation_beta as a list of floats (None kept)."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray)):
        raise TypeError(f"{arg}: expected a list of numbers, got {describe(values)}")
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{arg}: expected numbers, got an element {describe(v)}")
    return [float(v) for v in values]


def direction_cells(mode, n_dirs, *, nonlinearity="tanh", activations=None, alphas=None,
                    betas=None, clip=None, input_forget=False, linear_before_reset=True):
    """One ``Cell`` per direction from a layer's ONNX activation arguments.

    ``activations``: None, or the ``k`` names of the cell (``2k`` forward then
    reverse when ``n_dirs == 2``); ``alphas`` and ``betas`` are consumed in
    order by the activations (both directions) that take one.  The names, the
    RNN ``nonlinearity`` and ``clip`` are checked by ``Cell.make``.

    Returns
    -------
    (cells, activations, alphas, betas)
        The cells, and the three arguments as tuples (None kept) for the
        module's attributes.
    """
    k = len(DEFAULT_ACTIVATIONS[mode])
    if activations is None:
        per_dir = [None] * n_dirs
    else:
        if isinstance(activations, str) or not isinstance(activations, (list, tuple)):
            raise TypeError(f"activations: expected a list of ONNX activation names, got "
                            f"{describe(activations)}")
        activations = tuple(activations)
        if len(activations) != k * n_dirs:
            raise ValueError(f"activations: expected {k * n_dirs} names ({k} per direction "
                             f"for {mode.upper()}, forward then reverse), got "
                             f"{len(activations)}: {list(activations)}")
        per_dir = [activations[d * k:(d + 1) * k] for d in range(n_dirs)]
    alphas, betas = _numbers("activation_alpha", alphas), _numbers("activation_beta", betas)
    cells, left = [], {"activation_alpha": alphas, "activation_beta": betas}
    for d in range(n_dirs):
        cell = Cell.make(mode, nonlinearity=nonlinearity, activations=per_dir[d],
                         alphas=left["activation_alpha"], betas=left["activation_beta"],
                         clip=clip, input_forget=input_forget,
                         linear_before_reset=linear_before_reset)
        for which, arg in enumerate(left):    # what this direction consumed
            if left[arg] is not None:
                taken = sum(ACTIVATIONS[n][which] is not None for n in cell.activations)
                left[arg] = left[arg][taken:]
        cells.append(cell)
    for arg, rest in left.items():
        if rest:
            given = alphas if arg == "activation_alpha" else betas
            raise ValueError(f"{arg}: expected at most {len(given) - len(rest)} values (one "
                             f"per activation that takes one, in order), got {len(given)}")
    as_tuple = (lambda v: None if v is None else tuple(v))
    return cells, activations, as_tuple(alphas), as_tuple(betas)


# ---------------------------------------------------------------------------
# Arrays

def float_array(name, value):
    """``value`` as an ndarray of a float dtype (not yet converted); TypeError otherwise."""
    if not isinstance(value, np.ndarray):
        if hasattr(value, "detach") and hasattr(value, "numpy"):   # a torch tensor
            value = value.detach().cpu().numpy()
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as err:
            raise TypeError(f"{name}: expected a float array, got {type(value).__name__} "
                            f"that NumPy cannot turn into one ({err})") from None
    if value.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float array (float32 or float64; other float "
                        f"dtypes are converted), got dtype {value.dtype}")
    return value


def contiguous(arr, given, dtype, copy=False):
    """``arr`` C-contiguous in ``dtype``; with ``copy``, never memory of ``given``."""
    out = np.ascontiguousarray(arr, dtype=dtype)
    return out.copy() if copy and np.may_share_memory(out, given) else out


def time_major_input(x, input_size, batch_first):
    """A layer's ``x`` checked, as a time-major (T, N, I) view (not yet copied).

    Returns ``(x_tm, given, batched)``: ``given`` the array ``x`` became, for
    ``contiguous``, once the sizes have been checked.
    """
    arr = float_array("x", x)
    if arr.ndim not in (2, 3):
        layout = "(N, T, I)" if batch_first else "(T, N, I)"
        raise ValueError(f"x: expected a 3-d array {layout} or a 2-d unbatched (T, I), "
                         f"got shape {shape_str(arr.shape)}")
    batched = arr.ndim == 3
    if arr.shape[-1] != input_size:
        raise ValueError(f"x: expected input_size {input_size} as the last dimension, got "
                         f"shape {shape_str(arr.shape)}")
    if batched and batch_first:
        tm = np.swapaxes(arr, 0, 1)
    elif batched:
        tm = arr
    else:
        tm = arr[:, None, :]
    if tm.shape[0] == 0:
        raise ValueError(f"x: expected at least one time step (T >= 1), got shape "
                         f"{shape_str(arr.shape)}")
    return tm, arr, batched


def layer_state(name, value, rows, N, H, batched, dtype, copy=False):
    """A layer's state as a C-contiguous (rows, N, H) array of ``dtype``, zeros for None."""
    if value is None:
        return np.zeros((rows, N, H), dtype)
    arr = float_array(name, value)
    want = (rows, N, H) if batched else (rows, H)
    if arr.shape != want:
        layout = "(D*num_layers, N, H_out)" if batched else "(D*num_layers, H_out)"
        raise ValueError(f"{name}: expected shape {shape_str(want)} {layout}, got shape "
                         f"{shape_str(arr.shape)}")
    return contiguous(arr.reshape(rows, N, H), arr, dtype, copy)


def state_halves(name, value, what):
    """An LSTM state: a (h, c) tuple or list, or None; returns its two halves."""
    if value is None:
        return None, None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name}: expected a tuple (h, c) for the {what}, got "
                        f"{describe(value)}")
    return value


def not_a_tuple(name, value, what):
    """RNN and GRU states are arrays: a tuple is a TypeError (only the LSTM takes one)."""
    if isinstance(value, tuple):
        raise TypeError(f"{name}: expected an array for {what} (only the LSTM takes a "
                        f"tuple), got a tuple")


def check_lengths(lengths, T, N):
    """Lengths as a fresh int64 array (N,) with values in [0, T]."""
    if isinstance(lengths, (list, tuple)):
        for v in lengths:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"lengths: expected integers, got an element "
                                f"{describe(v)}")
        try:
            arr = np.array(lengths, dtype=np.int64)
        except OverflowError:
            raise ValueError(f"lengths: expected integers in [0, {T}], got {lengths!r}") from None
    elif isinstance(lengths, np.ndarray):
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths: expected an integer array, got dtype {lengths.dtype}")
        arr = lengths
    else:
        raise TypeError(f"lengths: expected a list, tuple or integer array of {N} lengths, "
                        f"got {describe(lengths)}")
    if arr.shape != (N,):
        raise ValueError(f"lengths: expected {N} lengths (one per sequence), got shape "
                         f"{arr.shape}")
    if N and (arr.min() < 0 or arr.max() > T):
        raise ValueError(f"lengths: expected integers in [0, {T}] (T = {T}), got values "
                         f"from {arr.min()} to {arr.max()}")
    return np.array(arr, dtype=np.int64)


def cell_input(x_t, input_size, dtype, check_batch):
    """A cell's ``x_t`` as a C-contiguous (N, I) or (I,) array of ``dtype``.

    ``check_batch(N)`` checks the batch size before anything is copied."""
    arr = float_array("x_t", x_t)
    if arr.ndim not in (1, 2) or arr.shape[-1] != input_size:
        raise ValueError(f"x_t: expected shape (N, {input_size}) or unbatched "
                         f"({input_size},), got {shape_str(arr.shape)}")
    if arr.ndim == 2:
        check_batch(arr.shape[0])
    return np.ascontiguousarray(arr, dtype=dtype)


def cell_state(name, value, shape, dtype):
    """A cell's state of exactly ``shape``, C-contiguous in ``dtype``."""
    arr = float_array(name, value)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape_str(shape)}, got "
                         f"{shape_str(arr.shape)}")
    return np.ascontiguousarray(arr, dtype=dtype)


# ---------------------------------------------------------------------------
# Sizes the kernels can index (see the module docstring)

def _at_most(name, what, value, limit, why):
    if value > limit:
        raise ValueError(f"{name}: {what} = {value} is more than {why} can take "
                         f"(at most {limit})")


def check_layer_sizes(mode, input_size, hidden_size, proj_size=0, num_layers=1, n_dirs=1):
    """The sizes of a configuration that BLAS takes as C ints (at construction)."""
    blas = "BLAS's 32-bit integers"
    _at_most("input_size", "input_size", input_size, BLAS_INT_MAX, blas)
    G = GATES[mode]
    _at_most("hidden_size", f"{G}*hidden_size (the rows of weight_hh)", G * hidden_size,
             BLAS_INT_MAX, blas)
    if num_layers > 1:
        _at_most("hidden_size", f"{n_dirs}*H_out (the input of the layers after the first)",
                 n_dirs * (proj_size or hidden_size), BLAS_INT_MAX, blas)


def check_call_sizes(mode, T, N, input_size, hidden_size, proj_size=0, num_layers=1,
                     n_dirs=1, *, training=False, lengths=False):
    """The sizes of one call (``x`` of T steps, N sequences) that the kernels can index.

    ``lengths``: whether the call has lengths (a reverse direction with
    lengths runs one input GEMM per sequence).  The configuration passed
    ``check_layer_sizes``.
    """
    blas = "BLAS's 32-bit integers"
    G, H_out = GATES[mode], proj_size or hidden_size
    I = max(input_size, n_dirs * H_out if num_layers > 1 else 0)
    _at_most("x", "N (the batch)", N, BLAS_INT_MAX, blas)
    if training:
        _at_most("x", f"T*N = {T}*{N} (the rows of the GEMMs over all steps)", T * N,
                 BLAS_INT_MAX, blas)
    if n_dirs == 2 and lengths:
        _at_most("x", f"N*I = {N}*{I} (a leading dimension of the reverse direction's "
                 f"input GEMM)", N * I, BLAS_INT_MAX, blas)
        _at_most("x", f"N*{G}*hidden_size = {N}*{G * hidden_size} (a leading dimension of "
                 f"the reverse direction's input GEMM)", N * G * hidden_size, BLAS_INT_MAX,
                 blas)
    _at_most("x", f"T*N*G*H*(H_out + I) = {T}*{N}*{G * hidden_size}*{H_out + I} (the "
             f"multiply-adds of a step over all steps)", T * N * G * hidden_size * (H_out + I),
             INDEX_MAX, "the kernels' 64-bit indices")


def call_size_bounds(mode, input_size, hidden_size, proj_size=0, num_layers=1, n_dirs=1):
    """The bounds under which ``check_call_sizes`` passes an inference call.

    Returns ``(max_batch, max_batch_lengths, max_steps)``: a call passes iff
    ``N <= max_batch`` (``max_batch_lengths`` with lengths) and
    ``T*N <= max_steps``.  For the fast paths that check a call against
    bounds computed once; past them the call goes to ``check_call_sizes``,
    which says what is wrong.
    """
    G, H_out = GATES[mode], proj_size or hidden_size
    I = max(input_size, n_dirs * H_out if num_layers > 1 else 0)
    max_batch_lengths = BLAS_INT_MAX
    if n_dirs == 2:     # the reverse direction's input GEMM: N*I and N*G*H as leading dims
        max_batch_lengths = min(BLAS_INT_MAX // I, BLAS_INT_MAX // (G * hidden_size))
    return BLAS_INT_MAX, max_batch_lengths, INDEX_MAX // (G * hidden_size * (H_out + I))


def cell_batch_limit(mode, input_size, hidden_size):
    """The largest N that ``check_call_sizes`` takes for one step of a cell."""
    work = GATES[mode] * hidden_size * (hidden_size + input_size)
    return min(BLAS_INT_MAX, INDEX_MAX // work)
