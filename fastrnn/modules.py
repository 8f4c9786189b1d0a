"""NumPy modules with PyTorch's API: RNN, LSTM, GRU and their one-step cells.

A module holds its configuration and its parameters (NumPy arrays under
PyTorch's state_dict names); it checks every argument, puts the input in
time-major order and hands the stack of layers to the module-level helpers
``_stack_forward`` / ``_stack_backward``, which run each layer (all its
directions at once) through ``fastrnn.functional`` and the C kernels.  Those
helpers take a configuration, a params dict and arrays only, so that other
front ends (the PyTorch bridge) stack layers the same way.
"""

import itertools
import types
import numbers
import warnings
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from fastrnn._cell import ACTIVATIONS, DEFAULT_ACTIVATIONS, GATES, WEIGHT_NAMES, Cell
from fastrnn.functional import layer_backward, layer_forward

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]


# ---------------------------------------------------------------------------
# Stacking layers: configuration + params dict + arrays, no checks

def _suffix(direction):
    return "_reverse" if direction else ""


def _layer_weights(params, layer, n_dirs):
    """The per-direction weight dicts of one layer, from state_dict-named ``params``."""
    return [{name: params.get(f"{name}_l{layer}{_suffix(d)}") for name in WEIGHT_NAMES}
            for d in range(n_dirs)]


def _padding_mask(lengths, T):
    """(T, N, 1) bool: True where step t is inside sequence n."""
    return (np.arange(T)[:, None] < lengths[None, :])[:, :, None]


def _stack_forward(cells_per_layer, params, x, h0, c0, lengths=None, dropout_masks=None,
                   training=False, n_threads=None):
    """Run a stack of recurrent layers, torch.nn.RNN / LSTM / GRU semantics.

    Nothing is checked: arrays arrive C-contiguous and of one float dtype.

    Parameters
    ----------
    cells_per_layer : list of list of Cell
        ``L`` layers, each a list of ``D`` cells (one per direction).
    params : dict
        PyTorch's state_dict names (``weight_ih_l0``, ``bias_hh_l1_reverse``,
        ..., ``weight_peephole_l{k}{suffix}``); absent biases, projections and
        peepholes are simply not there.
    x : ndarray (T, N, I)
        Time-major input.
    h0 : ndarray (L*D, N, H_out)
    c0 : ndarray (L*D, N, H) or None
        LSTM only.
    lengths : int64 ndarray (N,) or None
    dropout_masks : list of ndarray (T, N, D*H_out) or None
        ``L - 1`` scaled masks; mask ``k`` multiplies layer ``k``'s output
        before it feeds layer ``k + 1``.
    training : bool
        Keep what ``_stack_backward`` needs.
    n_threads : int or None

    Returns
    -------
    y : ndarray (T, N, D*H_out)
    h_n : ndarray (L*D, N, H_out)
    c_n : ndarray (L*D, N, H) or None
    saved : dict or None
        With ``training``: each layer's input and what its kernel saved.
    """
    D = len(cells_per_layer[0])
    T, N, _ = x.shape
    H_out = h0.shape[2]
    lstm = c0 is not None
    if N == 0:                       # nothing to compute; the kernels need N >= 1
        y = np.zeros((T, 0, D * H_out), x.dtype)
        saved = {"inputs": None, "saved": None} if training else None
        return y, h0.copy(), c0.copy() if lstm else None, saved
    h_n = np.empty_like(h0)
    c_n = np.empty_like(c0) if lstm else None
    inputs, kernel_saved = [], []
    inp = x
    for k, cells in enumerate(cells_per_layer):
        if k > 0 and dropout_masks is not None:
            inp = inp * dropout_masks[k - 1]
        rows = slice(k * D, (k + 1) * D)
        y, h_n_k, c_n_k, saved_k = layer_forward(
            cells, inp, h0[rows], c0[rows] if lstm else None, _layer_weights(params, k, D),
            lengths=lengths, training=training, n_threads=n_threads)
        h_n[rows] = h_n_k
        if lstm:
            c_n[rows] = c_n_k
        if training:
            inputs.append(inp)
            kernel_saved.append(saved_k)
        inp = y
    saved = {"inputs": inputs, "saved": kernel_saved} if training else None
    return inp, h_n, c_n, saved


def _stack_backward(cells_per_layer, params, x, h0, c0, saved, dy, dh_n, dc_n, lengths=None,
                    dropout_masks=None, n_threads=None):
    """Backpropagate through a stack run by ``_stack_forward(training=True)``.

    Nothing is checked.  ``params``, ``x``, ``h0``, ``c0``, ``lengths`` and
    ``dropout_masks`` are the very ones the forward used; ``saved`` is what it
    returned.  ``dy`` (T, N, D*H_out), ``dh_n`` (L*D, N, H_out) and ``dc_n``
    (L*D, N, H) may each be None (zeros); ``dy`` at padded positions is
    ignored.  Nothing given is modified, so ``saved`` may be used again.

    Returns
    -------
    dx : ndarray (T, N, I)
    dh0 : ndarray (L*D, N, H_out)
    dc0 : ndarray (L*D, N, H) or None
    grads : dict
        The gradient of every entry of ``params``, under the same name.
    """
    D = len(cells_per_layer[0])
    T, N, _ = x.shape
    lstm = c0 is not None
    if N == 0:
        return (np.zeros_like(x), np.zeros_like(h0), np.zeros_like(c0) if lstm else None,
                {name: np.zeros_like(value) for name, value in params.items()})
    if dy is not None and lengths is not None:
        dy = np.where(_padding_mask(lengths, T), dy, 0).astype(x.dtype, copy=False)
    dh0 = np.empty_like(h0)
    dc0 = np.empty_like(c0) if lstm else None
    grads = {}
    d_out = dy
    for k in reversed(range(len(cells_per_layer))):
        rows = slice(k * D, (k + 1) * D)
        dx, dh0_k, dc0_k, layer_grads = layer_backward(
            cells_per_layer[k], saved["inputs"][k], h0[rows], c0[rows] if lstm else None,
            _layer_weights(params, k, D), saved["saved"][k], d_out,
            None if dh_n is None else dh_n[rows], None if dc_n is None else dc_n[rows],
            lengths=lengths, n_threads=n_threads)
        dh0[rows] = dh0_k
        if lstm:
            dc0[rows] = dc0_k
        for d, direction_grads in enumerate(layer_grads):
            for name, grad in direction_grads.items():
                if grad is not None:
                    grads[f"{name}_l{k}{_suffix(d)}"] = grad
        d_out = dx * dropout_masks[k - 1] if k > 0 and dropout_masks is not None else dx
    return d_out, dh0, dc0, grads


# ---------------------------------------------------------------------------
# Checking arguments

def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}" if np.isscalar(value) else type(value).__name__


def _float_array(name, value):
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


def _check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {_describe(value)}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def _check_flag(name, value):
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral)
                                               and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {_describe(value)}")


def _check_dtype(dtype):
    try:
        dt = None if dtype is None else np.dtype(dtype)   # np.dtype(None) is float64
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64) or dt.byteorder not in ("=", "|"):
        raise TypeError(f"dtype: expected np.float32 or np.float64, got {dtype!r}")
    return dt


def _check_lengths(lengths, T, N):
    """Lengths as a fresh int64 array (N,) with values in [0, T]."""
    if isinstance(lengths, (list, tuple)):
        for v in lengths:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"lengths: expected integers, got an element "
                                f"{_describe(v)}")
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
                        f"got {_describe(lengths)}")
    if arr.shape != (N,):
        raise ValueError(f"lengths: expected {N} lengths (one per sequence), got shape "
                         f"{arr.shape}")
    if N and (arr.min() < 0 or arr.max() > T):
        raise ValueError(f"lengths: expected integers in [0, {T}] (T = {T}), got values "
                         f"from {arr.min()} to {arr.max()}")
    return np.array(arr, dtype=np.int64)


def _shape_str(dims):
    return str(tuple(dims))


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


# ---------------------------------------------------------------------------
# Parameters: shared by the layer modules and the cells

_instance_ids = itertools.count()


class _Parameters:
    """Parameters as live attributes, state_dict, load_state_dict, pickling."""

    # Filled by subclasses: self._shapes (ordered name -> shape), self._dtype.

    def __setattr__(self, name, value):
        shapes = self.__dict__.get("_shapes")
        if shapes is not None and name in shapes:
            self.__dict__[name] = self._converted(name, value, name)
            self._parameters_changed()
        elif name in type(self)._CONFIG:
            raise AttributeError(f"{name}: the configuration is fixed at construction; "
                                 f"build a new {type(self).__name__}")
        else:
            object.__setattr__(self, name, value)

    def _converted(self, key, value, label):
        """``value`` checked against the shape of parameter ``key`` as a fresh array."""
        arr = _float_array(label, value)
        if arr.shape != self._shapes[key]:
            raise ValueError(f"{label}: expected shape {_shape_str(self._shapes[key])}, "
                             f"got {_shape_str(arr.shape)}")
        return np.array(arr, dtype=self._dtype, order="C", copy=True)

    def _parameters_changed(self):
        pass

    def _init_parameters(self, seed, hidden_size):
        """PyTorch's initialisation: every parameter uniform in ±1/sqrt(hidden_size)."""
        try:
            self._rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as err:
            raise TypeError(f"seed: expected None, an int >= 0 or a numpy SeedSequence / "
                            f"Generator, got {_describe(seed)} ({err})") from None
        bound = 1.0 / np.sqrt(hidden_size)
        for name, shape in self._shapes.items():
            self.__dict__[name] = self._rng.uniform(-bound, bound, shape).astype(self._dtype)
        self._id = next(_instance_ids)

    def _params(self):
        return {name: self.__dict__[name] for name in self._shapes}

    def state_dict(self):
        """The parameters under PyTorch's names, as copies.

        Returns
        -------
        dict
            ``{name: ndarray}`` in PyTorch's order, same names and shapes as
            the ``torch.nn`` module's ``state_dict()``.
        """
        return {name: self.__dict__[name].copy() for name in self._shapes}

    def load_state_dict(self, state_dict, strict=True):
        """Copy parameters in, PyTorch's names and shapes.

        Parameters
        ----------
        state_dict : mapping
            ``{name: array}``; values are anything ``np.asarray`` takes (a
            CPU torch tensor too) of a float dtype, cast to the module's dtype.
        strict : bool, default True
            Require exactly the module's keys.  With ``False``, missing keys
            keep their values and unexpected keys are ignored; a wrong shape
            is an error either way.

        Returns
        -------
        namedtuple (missing_keys, unexpected_keys)

        Raises
        ------
        ValueError
            Missing or unexpected keys (``strict``), a value of the wrong shape.
        TypeError
            Not a mapping, or a value that is not a float array.

        Nothing is changed unless every entry is accepted.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got "
                            f"{_describe(state_dict)}")
        strict = _check_flag("strict", strict)
        missing = [k for k in self._shapes if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._shapes]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict: expected exactly the keys {list(self._shapes)}; "
                             f"missing {missing}, unexpected {unexpected}")
        new = {k: self._converted(k, state_dict[k], f"state_dict[{k!r}]")
               for k in self._shapes if k in state_dict}
        for k, value in new.items():
            np.copyto(self.__dict__[k], value)
        return _IncompatibleKeys(missing, unexpected)

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__["_id"] = next(_instance_ids)   # a copy is another module


def _config_property(name, doc):
    return property(lambda self: self.__dict__["_" + name], doc=doc)


# ---------------------------------------------------------------------------
# Layers: RNN, LSTM, GRU

class TrainCache:
    """What ``backward`` needs from one ``forward_train`` call.

    Opaque but for ``dropout_masks``: ``None`` or a list of ``num_layers - 1``
    time-major arrays ``(T, N, D*H_out)``, already scaled (0 or 1/(1-p));
    mask ``k`` multiplied layer ``k``'s output.  A cache may be passed to
    ``backward`` more than once, and only to the module that made it.
    """

    __slots__ = ("owner", "params", "x", "h0", "c0", "lengths", "dropout_masks", "saved",
                 "batched", "x_shape", "y_shape")

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)

    def __repr__(self):
        return f"<fastrnn TrainCache: input shape {self.x_shape}, output shape {self.y_shape}>"


class _RNNBase(_Parameters):
    _mode = None
    _CONFIG = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
               "bidirectional", "proj_size", "dtype", "nonlinearity", "peepholes",
               "cell_clip", "input_forget", "linear_before_reset", "activations",
               "activation_alpha", "activation_beta")

    input_size = _config_property("input_size", "int: features of each input step, I.")
    hidden_size = _config_property("hidden_size", "int: features of the hidden state, H.")
    num_layers = _config_property("num_layers", "int: layers stacked, L.")
    bias = _config_property("bias", "bool: whether the layers have bias_ih and bias_hh.")
    batch_first = _config_property("batch_first", "bool: x and y are (N, T, *).")
    dropout = _config_property("dropout", "float: dropout between layers (forward_train).")
    bidirectional = _config_property("bidirectional", "bool: two directions, D = 2.")
    proj_size = _config_property("proj_size", "int: LSTM projection size (0: none).")
    dtype = _config_property("dtype", "numpy.dtype: float32 or float64.")
    activations = _config_property(
        "activations", "tuple of str: the ONNX activations given, or None (the defaults).")
    activation_alpha = _config_property("activation_alpha", "tuple of float or None.")
    activation_beta = _config_property("activation_beta", "tuple of float or None.")

    def _setup(self, input_size, hidden_size, num_layers, bias, batch_first, dropout,
               bidirectional, proj_size, dtype, seed, *, nonlinearity="tanh",
               activations=None, activation_alpha=None, activation_beta=None,
               peepholes=False, cell_clip=None, input_forget=False, linear_before_reset=True):
        mode = self._mode
        input_size = _check_int("input_size", input_size, 1)
        hidden_size = _check_int("hidden_size", hidden_size, 1)
        num_layers = _check_int("num_layers", num_layers, 1)
        bias = _check_flag("bias", bias)
        batch_first = _check_flag("batch_first", batch_first)
        if (isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real)
                or not 0 <= dropout <= 1):
            raise ValueError(f"dropout: expected a number in [0, 1] (the probability of "
                             f"zeroing an element), got {_describe(dropout)}")
        dropout = float(dropout)
        bidirectional = _check_flag("bidirectional", bidirectional)
        proj_size = _check_int("proj_size", proj_size, 0)
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected less than hidden_size ({hidden_size}), "
                             f"got {proj_size}")
        dtype = _check_dtype(dtype)
        if mode == "rnn" and nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        peepholes = _check_flag("peepholes", peepholes)
        input_forget = _check_flag("input_forget", input_forget)
        linear_before_reset = _check_flag("linear_before_reset", linear_before_reset)
        if cell_clip is not None:
            if isinstance(cell_clip, (bool, np.bool_)) or not isinstance(cell_clip, numbers.Real):
                raise TypeError(f"cell_clip: expected None or a positive number, got "
                                f"{_describe(cell_clip)}")
            if not cell_clip > 0:
                raise ValueError(f"cell_clip: expected None or a positive number, got "
                                 f"{cell_clip!r}")
            cell_clip = float(cell_clip)
        D = 2 if bidirectional else 1
        cells, activations, activation_alpha, activation_beta = _direction_cells(
            mode, D, nonlinearity, activations, activation_alpha, activation_beta,
            cell_clip, input_forget, linear_before_reset)
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, "
                          "so non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        config = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                      bias=bias, batch_first=batch_first, dropout=dropout,
                      bidirectional=bidirectional, proj_size=proj_size, dtype=dtype,
                      nonlinearity=nonlinearity, peepholes=peepholes, cell_clip=cell_clip,
                      input_forget=input_forget, linear_before_reset=linear_before_reset,
                      activations=activations, activation_alpha=activation_alpha,
                      activation_beta=activation_beta)
        for name, value in config.items():
            self.__dict__["_" + name] = value
        self.__dict__["_cells_per_layer"] = [cells] * num_layers
        self.__dict__["_n_dirs"] = D
        self.__dict__["_hidden_out"] = proj_size or hidden_size
        G, H, H_out = GATES[mode], hidden_size, proj_size or hidden_size
        shapes = {}
        for k in range(num_layers):
            for d in range(D):
                sfx = f"_l{k}{_suffix(d)}"
                shapes["weight_ih" + sfx] = (G * H, input_size if k == 0 else D * H_out)
                shapes["weight_hh" + sfx] = (G * H, H_out)
                if bias:
                    shapes["bias_ih" + sfx] = (G * H,)
                    shapes["bias_hh" + sfx] = (G * H,)
                if proj_size:
                    shapes["weight_hr" + sfx] = (proj_size, H)
                if peepholes:
                    shapes["weight_peephole" + sfx] = (3 * H,)
        self.__dict__["_shapes"] = shapes
        self.__dict__["_dtype"] = dtype
        self._init_parameters(seed, hidden_size)

    def __repr__(self):
        c = self.__dict__
        s = f"{c['_input_size']}, {c['_hidden_size']}"
        if c["_proj_size"]:
            s += f", proj_size={c['_proj_size']}"
        if c["_num_layers"] != 1:
            s += f", num_layers={c['_num_layers']}"
        if self._mode == "rnn" and c["_nonlinearity"] != "tanh":
            s += f", nonlinearity={c['_nonlinearity']!r}"
        if not c["_bias"]:
            s += ", bias=False"
        if c["_batch_first"]:
            s += ", batch_first=True"
        if c["_dropout"]:
            s += f", dropout={c['_dropout']}"
        if c["_bidirectional"]:
            s += ", bidirectional=True"
        if c["_dtype"] != np.float32:
            s += f", dtype={c['_dtype'].name}"
        if self._mode == "gru" and not c["_linear_before_reset"]:
            s += ", linear_before_reset=False"
        if self._mode == "lstm":
            if c["_peepholes"]:
                s += ", peepholes=True"
            if c["_cell_clip"] is not None:
                s += f", cell_clip={c['_cell_clip']}"
            if c["_input_forget"]:
                s += ", input_forget=True"
        for name in ("activations", "activation_alpha", "activation_beta"):
            if c["_" + name] is not None:
                s += f", {name}={list(c['_' + name])}"
        return f"{type(self).__name__}({s})"

    # -- checking and laying out the arguments -------------------------------

    def _state_shape(self, N, batched, H):
        rows = self._num_layers * self._n_dirs
        return (rows, N, H) if batched else (rows, H)

    def _check_state(self, name, value, N, batched, H, copy=False):
        """A state as a C-contiguous (L*D, N, H) array of the dtype, zeros for None.

        With ``copy``, never memory that the caller holds."""
        rows = self._num_layers * self._n_dirs
        if value is None:
            return np.zeros((rows, N, H), self._dtype)
        arr = _float_array(name, value)
        want = self._state_shape(N, batched, H)
        if arr.shape != want:
            layout = "(D*num_layers, N, H_out)" if batched else "(D*num_layers, H_out)"
            raise ValueError(f"{name}: expected shape {_shape_str(want)} {layout}, got shape "
                             f"{_shape_str(arr.shape)}")
        out = np.ascontiguousarray(arr.reshape(rows, N, H), dtype=self._dtype)
        return out.copy() if copy and np.may_share_memory(out, arr) else out

    def _check_pair(self, name, value, N, batched, copy=False):
        """LSTM state: a (h, c) tuple; returns the two arrays (None kept for None)."""
        H_out, H = self._hidden_out, self._hidden_size
        if value is None:
            return None, None
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name}: expected a tuple (h, c) for the LSTM, got "
                            f"{_describe(value)}")
        h, c = value
        h = None if h is None else self._check_state(f"{name}[0]", h, N, batched, H_out, copy)
        c = None if c is None else self._check_state(f"{name}[1]", c, N, batched, H, copy)
        return h, c

    def _check_input(self, x, copy):
        """x as a time-major C-contiguous (T, N, I) array; returns (x_tm, batched)."""
        arr = _float_array("x", x)
        I = self._input_size
        if arr.ndim not in (2, 3):
            layout = "(N, T, I)" if self._batch_first else "(T, N, I)"
            raise ValueError(f"x: expected a 3-d array {layout} or a 2-d unbatched (T, I), "
                             f"got shape {_shape_str(arr.shape)}")
        batched = arr.ndim == 3
        if arr.shape[-1] != I:
            raise ValueError(f"x: expected input_size {I} as the last dimension, got shape "
                             f"{_shape_str(arr.shape)}")
        if batched and self._batch_first:
            tm = np.swapaxes(arr, 0, 1)
        elif batched:
            tm = arr
        else:
            tm = arr[:, None, :]
        if tm.shape[0] == 0:
            raise ValueError(f"x: expected at least one time step (T >= 1), got shape "
                             f"{_shape_str(arr.shape)}")
        out = np.ascontiguousarray(tm, dtype=self._dtype)
        if copy and np.may_share_memory(out, arr):
            out = out.copy()
        return out, batched

    def _prepare(self, x, state0, lengths, copy):
        x_tm, batched = self._check_input(x, copy)
        T, N, _ = x_tm.shape
        lstm = self._mode == "lstm"
        H_out, H = self._hidden_out, self._hidden_size
        if lstm:
            h0, c0 = self._check_pair("state0", state0, N, batched, copy)
            if h0 is None:
                h0 = self._check_state("state0[0]", None, N, batched, H_out)
            if c0 is None:
                c0 = self._check_state("state0[1]", None, N, batched, H)
        else:
            if isinstance(state0, tuple):
                raise TypeError(f"state0: expected an array h0 for {type(self).__name__} "
                                f"(only the LSTM takes a tuple), got a tuple")
            h0, c0 = self._check_state("state0", state0, N, batched, H_out, copy), None
        if lengths is not None:
            if not batched:
                raise ValueError("lengths: only for batched input; x is unbatched (T, I), "
                                 "so give lengths=None")
            lengths = _check_lengths(lengths, T, N)
        return x_tm, h0, c0, lengths, batched

    def _output(self, y, batched):
        if not batched:
            return y[:, 0, :]
        return np.swapaxes(y, 0, 1) if self._batch_first else y

    def _state_out(self, h, c, batched):
        if not batched:
            h = h[:, 0, :]
            c = None if c is None else c[:, 0, :]
        return (h, c) if self._mode == "lstm" else h

    # -- the public calls ----------------------------------------------------

    def __call__(self, x, state0=None, *, lengths=None):
        x_tm, h0, c0, lengths, batched = self._prepare(x, state0, lengths, copy=False)
        y, h_n, c_n, _ = _stack_forward(self._cells_per_layer, self._params(), x_tm, h0, c0,
                                        lengths)
        return self._output(y, batched), self._state_out(h_n, c_n, batched)

    def forward_train(self, x, state0=None, *, lengths=None):
        # The cache must not see later changes to what the caller gave or to the
        # module's parameters: it holds its own copies.
        x_tm, h0, c0, lengths, batched = self._prepare(x, state0, lengths, copy=True)
        params = {name: value.copy() for name, value in self._params().items()}
        T, N, _ = x_tm.shape
        masks = None
        p = self._dropout
        if p > 0 and self._num_layers > 1:
            shape = (T, N, self._n_dirs * self._hidden_out)
            masks = []
            for _ in range(self._num_layers - 1):
                keep = self._rng.random(shape) >= p
                masks.append((keep * (1.0 / (1.0 - p)) if p < 1 else
                              np.zeros(shape)).astype(self._dtype))
        y, h_n, c_n, saved = _stack_forward(self._cells_per_layer, params, x_tm, h0, c0,
                                            lengths, masks, training=True)
        y_out = self._output(y, batched)
        cache = TrainCache(owner=self._id, params=params, x=x_tm, h0=h0, c0=c0,
                           lengths=lengths, dropout_masks=masks, saved=saved,
                           batched=batched, x_shape=np.shape(x), y_shape=y_out.shape)
        return y_out, self._state_out(h_n, c_n, batched), cache

    def backward(self, cache, dy=None, dstate_n=None):
        if not isinstance(cache, TrainCache):
            raise TypeError(f"cache: expected the cache returned by forward_train, got "
                            f"{_describe(cache)}")
        if cache.owner != self._id:
            raise ValueError("cache: expected a cache from this module's forward_train, got "
                             "one from another module")
        T, N, _ = cache.x.shape
        batched = cache.batched
        if dy is not None:
            arr = _float_array("dy", dy)
            if arr.shape != cache.y_shape:
                raise ValueError(f"dy: expected the shape of y, {_shape_str(cache.y_shape)}, "
                                 f"got {_shape_str(arr.shape)}")
            if not batched:
                arr = arr[:, None, :]
            elif self._batch_first:
                arr = np.swapaxes(arr, 0, 1)
            dy = np.ascontiguousarray(arr, dtype=self._dtype)
        if self._mode == "lstm":
            dh_n, dc_n = self._check_pair("dstate_n", dstate_n, N, batched)
        else:
            if isinstance(dstate_n, tuple):
                raise TypeError(f"dstate_n: expected an array for {type(self).__name__} "
                                f"(only the LSTM takes a tuple), got a tuple")
            dh_n = None if dstate_n is None else self._check_state(
                "dstate_n", dstate_n, N, batched, self._hidden_out)
            dc_n = None
        dx, dh0, dc0, grads = _stack_backward(
            self._cells_per_layer, cache.params, cache.x, cache.h0, cache.c0, cache.saved,
            dy, dh_n, dc_n, cache.lengths, cache.dropout_masks)
        dx = self._output(dx, batched)
        grads = {name: grads[name] for name in self._shapes}
        return dx, self._state_out(dh0, dc0, batched), grads


def _direction_cells(mode, D, nonlinearity, activations, alphas, betas, clip, input_forget,
                     linear_before_reset):
    """One Cell per direction from ONNX's activations (k names, or 2k bidirectional)."""
    k = len(DEFAULT_ACTIVATIONS[mode])
    if activations is None:
        if mode == "rnn":
            names = ("Tanh",) if nonlinearity == "tanh" else ("Relu",)
        else:
            names = DEFAULT_ACTIVATIONS[mode]
        per_dir = [names] * D
    else:
        if isinstance(activations, str) or not isinstance(activations, (list, tuple)):
            raise TypeError(f"activations: expected a list of ONNX activation names, got "
                            f"{_describe(activations)}")
        activations = tuple(activations)
        for name in activations:
            if name not in ACTIVATIONS:
                raise ValueError(f"activations: expected names among {list(ACTIVATIONS)}, "
                                 f"got {name!r}")
        if len(activations) != k * D:
            raise ValueError(f"activations: expected {k * D} names ({k} per direction for "
                             f"{mode.upper()}, forward then reverse), got "
                             f"{len(activations)}: {list(activations)}")
        per_dir = [activations[d * k:(d + 1) * k] for d in range(D)]

    def split(arg, values, which):
        if values is None:
            return [None] * D, None
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray)):
            raise TypeError(f"{arg}: expected a list of numbers, got {_describe(values)}")
        values = list(values)
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise TypeError(f"{arg}: expected numbers, got an element {_describe(v)}")
        values = [float(v) for v in values]
        takes = [sum(ACTIVATIONS[n][which] is not None for n in names) for names in per_dir]
        if len(values) > sum(takes):
            raise ValueError(f"{arg}: expected at most {sum(takes)} values (one per "
                             f"activation that takes one, in order), got {len(values)}")
        return [values[:takes[0]], values[takes[0]:]][:D], tuple(values)

    alpha_dir, alphas = split("activation_alpha", alphas, 0)
    beta_dir, betas = split("activation_beta", betas, 1)
    cells = [Cell.make(mode, activations=per_dir[d], alphas=alpha_dir[d], betas=beta_dir[d],
                       clip=clip, input_forget=input_forget,
                       linear_before_reset=linear_before_reset) for d in range(D)]
    return cells, activations, alphas, betas


_CALL_DOC = """Run the {name} forward (inference: nothing kept for backward).

        Parameters
        ----------
        x : array_like, float
            ``(T, N, I)``, ``(N, T, I)`` with ``batch_first``, or unbatched
            ``(T, I)``.  Other float dtypes are converted to the module's
            dtype; integer, bool, complex and object inputs are a TypeError.
            ``T >= 1``; ``N = 0`` gives empty results.
        state0 : {state_type}, optional
            The initial state{state_shape}; None (or a None half) means zeros.
        lengths : list, tuple or integer array of N ints in [0, T], optional
            Batched input only.  Rows of ``y`` past a sequence's length are
            zero; the final state is each sequence's state after its last
            valid step (``state0`` for length 0); the reverse direction starts
            at each sequence's own last valid step.

        Returns
        -------
        y : ndarray
            ``(T, N, D*H_out)`` (or ``(N, T, D*H_out)``, ``(T, D*H_out)``):
            the last layer's output, directions concatenated.
        state_n : {state_type}
            The final state, shaped like ``state0``.

        Raises
        ------
        TypeError, ValueError
            For any malformed argument, naming it, before any kernel runs.
        """

_TRAIN_DOC = """Run the {name} forward and keep what ``backward`` needs.

        Same arguments as calling the module.  With ``dropout > 0`` and
        ``num_layers > 1``, inverted dropout (zero with probability ``p``,
        scale the rest by ``1/(1-p)``) applies to every layer's output but
        the last, drawn from the module's own generator (seeded by ``seed``).

        Returns
        -------
        y : ndarray
            As from calling the module.
        state_n : {state_type}
            As from calling the module.
        cache : TrainCache
            For ``backward`` of this module (any number of times); holds
            copies of the input, the initial state and the weights used, and
            ``cache.dropout_masks`` (time-major ``(T, N, D*H_out)`` scaled
            masks, or None).
        """

_BACKWARD_DOC = """Backpropagate through a ``forward_train`` call.

        Parameters
        ----------
        cache : TrainCache
            From this module's ``forward_train``.
        dy : array_like, optional
            Gradient of the loss with respect to ``y``, shaped like ``y``;
            None means zeros.  Values at padded positions (``lengths``) are
            ignored.
        dstate_n : {state_type}, optional
            Gradient with respect to ``state_n``, shaped like it; None (or a
            None half) means zeros.

        Returns
        -------
        dx : ndarray
            Gradient with respect to ``x``, shaped like ``x``.
        dstate0 : {state_type}
            Gradient with respect to ``state0`` (also when it defaulted to zeros).
        grads : dict
            Gradient of every parameter, same keys, order and shapes as
            ``state_dict()``.
        """


def _documented(func, doc):
    """A copy of ``func`` with its own docstring (one docstring per class)."""
    copy = types.FunctionType(func.__code__, func.__globals__, func.__name__,
                              func.__defaults__, func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__doc__ = doc
    return copy


_LSTM_STATE = dict(name="LSTM", state_type="tuple (h, c) of arrays",
                   state_shape=": ``h`` ``(D*L, N, H_out)``,\n            ``c`` "
                               "``(D*L, N, H)`` (without N unbatched)")
_H_STATE = dict(state_type="array", state_shape=" ``h``: ``(D*L, N, H)`` (``(D*L, H)`` "
                                                 "unbatched)")

_LAYER_PARAMS_DOC = """
    Parameters
    ----------
    input_size : int
        Features of each input step, I.
    hidden_size : int
        Features of the hidden state, H.
    num_layers : int, default 1
        Layers stacked, L; layer ``k > 0`` reads layer ``k - 1``'s output.{nonlinearity}
    bias : bool, default True
        Whether each layer has ``bias_ih`` and ``bias_hh``.
    batch_first : bool, default False
        ``x`` and ``y`` are ``(N, T, *)`` (states stay ``(D*L, N, *)``).
    dropout : float in [0, 1], default 0
        Inverted dropout on each layer's output but the last, in
        ``forward_train`` only.
    bidirectional : bool, default False
        Run a reverse direction too (D = 2), outputs concatenated.{proj}
    dtype : {{np.float32, np.float64}}, keyword-only
        The dtype of the parameters and of every computation.
    seed : int or None, keyword-only
        Seeds the initialisation (uniform in ±1/sqrt(H), as PyTorch) and the
        dropout masks; None draws fresh.{extra}
    activations : list of str, keyword-only, optional
        ONNX activation names in ONNX's order, {k} per direction (forward
        then reverse when bidirectional): {onnx_order}.  None is the cell's
        usual functions.  Names: Sigmoid, Tanh, Relu, HardSigmoid,
        LeakyRelu, ThresholdedRelu, ScaledTanh, Affine, Elu, Softsign,
        Softplus.
    activation_alpha, activation_beta : list of float, keyword-only, optional
        ONNX's parameters, consumed in order by the activations (both
        directions) that take one; the rest keep ONNX's defaults.

    Attributes
    ----------
    weight_ih_l{{k}}{{suffix}} : ndarray ({G}*H, I or D*H_out)
    weight_hh_l{{k}}{{suffix}} : ndarray ({G}*H, H_out)
    bias_ih_l{{k}}{{suffix}}, bias_hh_l{{k}}{{suffix}} : ndarray ({G}*H,)
        The live parameters under PyTorch's names (``suffix`` is ``""`` or
        ``"_reverse"``), rows in PyTorch's gate order ({gates}).{attrs}
"""

_SHAPES_DOC = """
    Shapes: T steps, N sequences, I = input_size, H = hidden_size,
    H_out = {h_out}, D = 2 if bidirectional else 1, L = num_layers.
    ``x`` is ``(T, N, I)``, ``(N, T, I)`` with ``batch_first``, or ``(T, I)``
    unbatched; ``y`` is ``(T, N, D*H_out)`` likewise; states are
    ``(D*L, N, H_out)`` (``(D*L, H_out)`` unbatched), row ``k*D + d`` for
    layer ``k``, direction ``d``{c_shape}.  ``lengths=`` gives each
    sequence's length in a padded batch.  Results are new arrays each call.
"""


class RNN(_RNNBase):
    _mode = "rnn"
    nonlinearity = _config_property("nonlinearity", "str: 'tanh' or 'relu'.")

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, dtype=np.float32,
                 seed=None, activations=None, activation_alpha=None, activation_beta=None):
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, 0, dtype, seed, nonlinearity=nonlinearity,
                    activations=activations, activation_alpha=activation_alpha,
                    activation_beta=activation_beta)

    __call__ = _documented(_RNNBase.__call__, _CALL_DOC.format(name="RNN", **_H_STATE))
    forward_train = _documented(_RNNBase.forward_train,
                                _TRAIN_DOC.format(name="RNN", **_H_STATE))
    backward = _documented(_RNNBase.backward, _BACKWARD_DOC.format(**_H_STATE))


RNN.__doc__ = ("""Elman RNN layers, ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, as torch.nn.RNN.
""" + _SHAPES_DOC.format(h_out="H", c_shape="") + _LAYER_PARAMS_DOC.format(
    nonlinearity="""
    nonlinearity : {'tanh', 'relu'}, default 'tanh'""", proj="", extra="",
    onnx_order="f", k=1, G=1, gates="one", attrs="") + """
    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> rnn = fastrnn.RNN(10, 20, num_layers=2, seed=0)
    >>> x = np.random.default_rng(0).standard_normal((5, 3, 10), dtype=np.float32)
    >>> y, h_n = rnn(x)
    >>> y.shape, h_n.shape
    ((5, 3, 20), (2, 3, 20))
    >>> y, h_n, cache = rnn.forward_train(x)
    >>> dx, dh0, grads = rnn.backward(cache, np.ones_like(y))
    >>> dx.shape, sorted(grads)[0]
    ((5, 3, 10), 'bias_hh_l0')
""")


class LSTM(_RNNBase):
    _mode = "lstm"
    peepholes = _config_property("peepholes", "bool: LSTM peephole weights (i, f, o).")
    cell_clip = _config_property("cell_clip", "float or None: gate pre-activation clip.")
    input_forget = _config_property("input_forget", "bool: coupled gates, f = 1 - i.")

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype=np.float32,
                 seed=None, peepholes=False, cell_clip=None, input_forget=False,
                 activations=None, activation_alpha=None, activation_beta=None):
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, proj_size, dtype, seed, peepholes=peepholes,
                    cell_clip=cell_clip, input_forget=input_forget, activations=activations,
                    activation_alpha=activation_alpha, activation_beta=activation_beta)

    __call__ = _documented(_RNNBase.__call__, _CALL_DOC.format(**_LSTM_STATE))
    forward_train = _documented(_RNNBase.forward_train, _TRAIN_DOC.format(**_LSTM_STATE))
    backward = _documented(_RNNBase.backward, _BACKWARD_DOC.format(**_LSTM_STATE))


LSTM.__doc__ = ("""LSTM layers, as torch.nn.LSTM, with ONNX's options.

    Gates i, f, g, o: ``c' = f*c + i*g``, ``h' = o*tanh(c')``; with
    ``proj_size > 0``, ``h' = W_hr (o*tanh(c'))``.
""" + _SHAPES_DOC.format(h_out="proj_size or H",
                                    c_shape=";\n    the cell state is ``(D*L, N, H)``")
    + _LAYER_PARAMS_DOC.format(nonlinearity="", proj="""
    proj_size : int, default 0
        LSTM projection: the hidden state has proj_size < H features.""", extra="""
    peepholes : bool, keyword-only, default False
        Peephole weights ``weight_peephole_l{k}{suffix}`` of shape (3*H,),
        gates (i, f, o): ``p_i*c`` and ``p_f*c`` join i and f, ``p_o*c'``
        joins o (ONNX's ``P``).
    cell_clip : float or None, keyword-only
        Clip every gate pre-activation to [-cell_clip, cell_clip], as ONNX
        Runtime's ``clip``.
    input_forget : bool, keyword-only, default False
        Couple the gates, ``f = 1 - i`` (ONNX's ``input_forget``).""",
        onnx_order="f for i/f/o, g for the cell input, h for the output", k=3, G=4,
        gates="i, f, g, o", attrs="""
    weight_hr_l{k}{suffix} : ndarray (H_out, H)
        With ``proj_size > 0``.
    weight_peephole_l{k}{suffix} : ndarray (3*H,)
        With ``peepholes``.""") + """
    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> lstm = fastrnn.LSTM(10, 20, num_layers=2, batch_first=True, seed=0)
    >>> x = np.zeros((3, 5, 10), np.float32)          # (N, T, I)
    >>> y, (h_n, c_n) = lstm(x, lengths=[5, 2, 4])
    >>> y.shape, h_n.shape, c_n.shape
    ((3, 5, 20), (2, 3, 20), (2, 3, 20))
    >>> y, state_n, cache = lstm.forward_train(x)
    >>> dx, (dh0, dc0), grads = lstm.backward(cache, np.ones_like(y))
    >>> grads["weight_ih_l0"].shape
    (80, 10)

    Loading weights trained with PyTorch::

        lstm.load_state_dict({k: v.numpy() for k, v in torch_lstm.state_dict().items()})
""")


class GRU(_RNNBase):
    _mode = "gru"
    linear_before_reset = _config_property(
        "linear_before_reset", "bool: True is PyTorch's GRU, False the original one.")

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype=np.float32, seed=None,
                 linear_before_reset=True, activations=None, activation_alpha=None,
                 activation_beta=None):
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, 0, dtype, seed, linear_before_reset=linear_before_reset,
                    activations=activations, activation_alpha=activation_alpha,
                    activation_beta=activation_beta)

    __call__ = _documented(_RNNBase.__call__, _CALL_DOC.format(name="GRU", **_H_STATE))
    forward_train = _documented(_RNNBase.forward_train,
                                _TRAIN_DOC.format(name="GRU", **_H_STATE))
    backward = _documented(_RNNBase.backward, _BACKWARD_DOC.format(**_H_STATE))


GRU.__doc__ = ("""GRU layers, as torch.nn.GRU, with ONNX's options.

    Gates r, z, n: ``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``,
    ``h' = (1-z)*n + z*h``.
""" + _SHAPES_DOC.format(h_out="H", c_shape="") + _LAYER_PARAMS_DOC.format(
    nonlinearity="", proj="", extra="""
    linear_before_reset : bool, keyword-only, default True
        True is PyTorch's GRU; False the original one,
        ``n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)`` (ONNX's default,
        Keras ``reset_after=False``).""",
    onnx_order="f for r and z, g for n", k=2, G=3, gates="r, z, n", attrs="") + """
    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> gru = fastrnn.GRU(10, 20, bidirectional=True, dtype=np.float64, seed=0)
    >>> x = np.zeros((5, 10))                          # unbatched (T, I)
    >>> y, h_n = gru(x)
    >>> y.shape, h_n.shape
    ((5, 40), (2, 20))
""")


# ---------------------------------------------------------------------------
# Cells: one step, inference only, the streaming path

class _CellBase(_Parameters):
    _mode = None
    _CONFIG = ("input_size", "hidden_size", "bias", "nonlinearity", "dtype")

    input_size = _config_property("input_size", "int: features of the input, I.")
    hidden_size = _config_property("hidden_size", "int: features of the state, H.")
    bias = _config_property("bias", "bool: whether the cell has bias_ih and bias_hh.")
    dtype = _config_property("dtype", "numpy.dtype: float32 or float64.")

    def _setup(self, input_size, hidden_size, bias, nonlinearity, dtype, seed):
        mode = self._mode
        input_size = _check_int("input_size", input_size, 1)
        hidden_size = _check_int("hidden_size", hidden_size, 1)
        bias = _check_flag("bias", bias)
        if mode == "rnn" and nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        dtype = _check_dtype(dtype)
        G, H = GATES[mode], hidden_size
        d = self.__dict__
        d.update(_input_size=input_size, _hidden_size=hidden_size, _bias=bias,
                 _nonlinearity=nonlinearity, _dtype=dtype,
                 _cells=[Cell.make(mode, nonlinearity=nonlinearity)])
        shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, H)}
        if bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        d["_shapes"] = shapes
        self._init_parameters(seed, hidden_size)
        self._parameters_changed()

    def _parameters_changed(self):
        # The weights list functional.layer_forward takes, made once (the arrays
        # are the live parameters; load_state_dict copies into them).
        d = self.__dict__
        d["_weights"] = [{name: d.get(name) for name in WEIGHT_NAMES}]

    def __repr__(self):
        s = f"{self._input_size}, {self._hidden_size}"
        if not self._bias:
            s += ", bias=False"
        if self._mode == "rnn" and self._nonlinearity != "tanh":
            s += f", nonlinearity={self._nonlinearity}"
        if self._dtype != np.float32:
            s += f", dtype={self._dtype.name}"
        return f"{type(self).__name__}({s})"

    def _slow_input(self, x_t):
        arr = _float_array("x_t", x_t)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self._input_size:
            raise ValueError(f"x_t: expected shape (N, {self._input_size}) or unbatched "
                             f"({self._input_size},), got {_shape_str(arr.shape)}")
        return np.ascontiguousarray(arr, dtype=self._dtype)

    def _slow_state(self, name, value, shape):
        arr = _float_array(name, value)
        if arr.shape != shape:
            raise ValueError(f"{name}: expected shape {_shape_str(shape)}, got "
                             f"{_shape_str(arr.shape)}")
        return np.ascontiguousarray(arr, dtype=self._dtype)

    def __call__(self, x_t, state=None):
        # The step of a cell whose state is h alone; LSTMCell has its own.
        return self._step(x_t, (("state", state),))[0]

    def _step(self, x_t, states):
        """x_t, states checked here; returns the new states as tuple of arrays."""
        x = x_t
        if type(x) is not np.ndarray or x.dtype != self._dtype or not x.flags.c_contiguous:
            x = self._slow_input(x_t)
        shape = x.shape
        I, H = self._input_size, self._hidden_size
        if len(shape) == 2 and shape[1] == I:
            N = shape[0]
            want = (N, H)
        elif len(shape) == 1 and shape[0] == I:
            N = 1
            want = (H,)
        else:
            self._slow_input(x)            # raises, naming x_t
            raise AssertionError("unreachable")
        checked = []
        for name, s in states:
            if s is None:
                s = np.zeros((1, N, H), self._dtype)
            else:
                if (type(s) is not np.ndarray or s.dtype != self._dtype
                        or not s.flags.c_contiguous or s.shape != want):
                    s = self._slow_state(name, s, want)
                s = s.reshape(1, N, H)
            checked.append(s)
        if N == 0:
            return tuple(np.zeros(want, self._dtype) for _ in states)
        h0 = checked[0]
        c0 = checked[1] if len(checked) > 1 else None
        _, h_n, c_n, _ = layer_forward(self._cells, x.reshape(1, N, I), h0, c0, self._weights)
        h_n = h_n.reshape(want)
        return (h_n,) if c0 is None else (h_n, c_n.reshape(want))


_CELL_DOC = """
    Parameters
    ----------
    input_size : int
        Features of each input, I.
    hidden_size : int
        Features of the state, H.
    bias : bool, default True
        Whether the cell has ``bias_ih`` and ``bias_hh``.{extra}
    dtype : {{np.float32, np.float64}}, keyword-only
    seed : int or None, keyword-only
        Seeds the initialisation (uniform in ±1/sqrt(H), as PyTorch); None
        draws fresh.

    Attributes
    ----------
    weight_ih : ndarray ({G}*H, I)
    weight_hh : ndarray ({G}*H, H)
    bias_ih, bias_hh : ndarray ({G}*H,)
        The live parameters (PyTorch's names); ``state_dict()`` /
        ``load_state_dict()`` as the layer modules.

    Notes
    -----
    One step, inference only: the low-latency streaming path.  Calling it
    takes ``x_t`` ``(N, I)`` or unbatched ``(I,)`` and the state ``(N, H)``
    (``(H,)``), None meaning zeros, and returns new arrays.
"""


_H_CELL_CALL_DOC = """{step}

        Parameters
        ----------
        x_t : array_like, float, (N, I) or (I,)
        state : array_like, float, (N, H) or (H,), optional
            ``h``; None means zeros.

        Returns
        -------
        h1 : ndarray (N, H) or (H,)
        """


class RNNCell(_CellBase):
    _mode = "rnn"
    nonlinearity = _config_property("nonlinearity", "str: 'tanh' or 'relu'.")

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *,
                 dtype=np.float32, seed=None):
        self._setup(input_size, hidden_size, bias, nonlinearity, dtype, seed)

    __call__ = _documented(_CellBase.__call__, _H_CELL_CALL_DOC.format(
        step="One Elman step, ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``."))


class LSTMCell(_CellBase):
    _mode = "lstm"

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, seed=None):
        self._setup(input_size, hidden_size, bias, "tanh", dtype, seed)

    def __call__(self, x_t, state=None):
        """One LSTM step.

        Parameters
        ----------
        x_t : array_like, float, (N, I) or (I,)
        state : tuple (h, c) of arrays (N, H) or (H,), optional
            None (or a None half) means zeros.

        Returns
        -------
        (h1, c1) : tuple of ndarray (N, H) or (H,)
        """
        if state is None:
            h = c = None
        elif isinstance(state, (tuple, list)) and len(state) == 2:
            h, c = state
        else:
            raise TypeError(f"state: expected a tuple (h, c) for the LSTMCell, got "
                            f"{_describe(state)}")
        return self._step(x_t, (("state[0]", h), ("state[1]", c)))


class GRUCell(_CellBase):
    _mode = "gru"

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, seed=None):
        self._setup(input_size, hidden_size, bias, "tanh", dtype, seed)

    __call__ = _documented(_CellBase.__call__, _H_CELL_CALL_DOC.format(
        step="One GRU step (PyTorch's GRU)."))


RNNCell.__doc__ = ("""One Elman RNN step, as torch.nn.RNNCell.

    ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, ``act`` tanh or relu.
""" + _CELL_DOC.format(extra="""
    nonlinearity : {'tanh', 'relu'}, default 'tanh'""", G=1) + """
    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> cell = fastrnn.RNNCell(4, 8, seed=0)
    >>> h = None
    >>> for x_t in np.zeros((3, 2, 4), np.float32):   # stream steps of a batch of 2
    ...     h = cell(x_t, h)
    >>> h.shape
    (2, 8)
""")

LSTMCell.__doc__ = ("""One LSTM step, as torch.nn.LSTMCell; the state is a tuple ``(h, c)``.
""" + _CELL_DOC.format(extra="", G=4) + """
    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> cell = fastrnn.LSTMCell(4, 8, seed=0)
    >>> state = None
    >>> for x_t in np.zeros((3, 4), np.float32):      # unbatched steps (I,)
    ...     state = cell(x_t, state)
    >>> state[0].shape, state[1].shape
    ((8,), (8,))
""")

GRUCell.__doc__ = ("""One GRU step, as torch.nn.GRUCell.
""" + _CELL_DOC.format(extra="", G=3) + """
    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> cell = fastrnn.GRUCell(4, 8, dtype=np.float64, seed=0)
    >>> h = cell(np.zeros((2, 4)))
    >>> h.shape
    (2, 8)
""")
