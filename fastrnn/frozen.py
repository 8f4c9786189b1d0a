"""Frozen inference: ``fastrnn.freeze(module, dtype)``, weights prepared once.

A frozen module is an inference-only snapshot of a fastrnn layer module or
cell (SPEC, "Frozen inference"): its weights are packed once, at freeze time,
in the layout the kernels read (float32 panels), or converted to bfloat16 or
quantized to int8 per row (``csrc/lowp.h``), and its call runs straight from
the checks to the kernels (``fastrnn._core.FrozenStack``): nothing packed,
converted or marshalled per call but the outputs.

Its call is the module's own: the very ``__call__``, argument checks and
output layout of ``fastrnn.layers`` / ``fastrnn.cells`` (borrowed, not
copied), so it rejects what the module rejects with the same messages.  A
layer's call, as a module's, first tries a fast path (``_fast``) that takes
only arguments those checks would pass as they are (arrays of the module's
dtype, C-contiguous, of the right shapes, sizes within the kernels' bounds)
and hands everything else to them.  The frozen classes share the module
classes' names (``fastrnn.frozen.LSTM``, as torch's
``torch.ao.nn.quantized.dynamic.LSTM``), so that those messages read the same.
"""

import numpy as np

from fastrnn import _core, cells, layers
from fastrnn._checks import describe
from fastrnn.functional import _groups, layer_weights
from fastrnn.threads import get_num_threads

__all__ = ["freeze", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

_REDUCED = ("bfloat16", "int8")


def _precision(module, dtype):
    """The frozen weights' precision as a string, from freeze's ``dtype`` argument."""
    own = module._dtype.name
    if dtype is None:
        return own
    if isinstance(dtype, str) and dtype in _REDUCED:
        if own != "float32":
            raise ValueError(f"dtype: {dtype!r} freezes float32 modules; this "
                             f"{type(module).__name__} is {own} (freeze it with dtype=None)")
        return dtype
    try:
        as_numpy = np.dtype(dtype)
    except TypeError:
        if isinstance(dtype, str):
            raise ValueError(f"dtype: expected None, 'bfloat16', 'int8' or the module's own "
                             f"dtype ({own}), got {dtype!r}") from None
        raise TypeError(f"dtype: expected None, 'bfloat16', 'int8' or the module's own dtype "
                        f"({own}), got {describe(dtype)}") from None
    if as_numpy != module._dtype:
        raise ValueError(f"dtype: expected None, 'bfloat16', 'int8' or the module's own dtype "
                         f"({own}), got {dtype!r}")
    return own


# The longest weight row an int8 product takes (csrc/lowp.h's FR_INT8_MAX_K).
INT8_MAX_K = 65536


def _check_weights(module, precision):
    """The reduced precisions take finite weights, int8 rows of at most INT8_MAX_K."""
    if precision not in _REDUCED:
        return
    for name, value in module._params().items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"module: {name} holds a NaN or an infinity; {precision} "
                             "weights must be finite")
        if precision == "int8" and value.ndim == 2 and value.shape[1] > INT8_MAX_K:
            raise ValueError(f"module: {name} has rows of {value.shape[1]}; int8 products "
                             f"take rows of at most {INT8_MAX_K}")


def _prepare_direction(w, gates, precision, dtype):
    """One direction's weights (``layer_weights``' dict) prepared as FrozenCall takes them."""
    def copy(a):
        return None if a is None else np.array(a, dtype=dtype, order="C", copy=True)
    return {"weight_ih": _core.Prepared(w["weight_ih"], precision),
            "weight_hh": _core.Prepared(w["weight_hh"], precision, gates),
            "weight_hr": (None if w["weight_hr"] is None
                          else _core.Prepared(w["weight_hr"], precision)),
            "bias_ih": copy(w["bias_ih"]), "bias_hh": copy(w["bias_hh"]),
            "weight_peephole": copy(w["weight_peephole"])}


def _spec(cells_per_layer, params, precision, dtype):
    """Per layer, its kernel calls ``(cell, dir_indices, weights)`` (``FrozenStack``)."""
    spec = []
    for k, layer_cells in enumerate(cells_per_layer):
        D = len(layer_cells)
        weights = [_prepare_direction(w, layer_cells[0].gates, precision, dtype)
                   for w in layer_weights(params, k, D)]
        spec.append([(layer_cells[g[0]], tuple(g), [weights[d] for d in g])
                     for g in _groups(layer_cells)])
    return spec


def _spec_nbytes(spec):
    total = 0
    for calls in spec:
        for _, _, weights in calls:
            for w in weights:
                total += sum(v.nbytes for v in w.values() if v is not None)
    return total


def _borrow(module_class, frozen_class):
    """The module class's configuration attributes on the frozen class (not dtype)."""
    for name in module_class._CONFIG:
        attr = getattr(module_class, name, None)
        if isinstance(attr, property) and name != "dtype":
            setattr(frozen_class, name, attr)
    return frozen_class


class _Frozen:
    """What the frozen layers and cells share: read-only, dtype, nbytes, repr, pickling."""

    _module_class = None

    @classmethod
    def _make(cls, config, stack):
        self = object.__new__(cls)
        self.__dict__.update(config)
        self.__dict__["_stack"] = stack
        self.__dict__["_nbytes"] = _spec_nbytes(stack.spec)
        return self

    def _config(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_stack", "_nbytes")}

    def __setattr__(self, name, value):
        raise AttributeError(f"{name}: a frozen module is read-only; freeze the module again "
                             "after changing it")

    def __getattr__(self, name):
        if name in ("forward_train", "backward", "load_state_dict", "state_dict"):
            raise AttributeError(f"{name}: a frozen {type(self).__name__} is inference-only "
                                 "(use the module it was frozen from)")
        raise AttributeError(f"{type(self).__name__!r} frozen module has no attribute {name!r}")

    @property
    def dtype(self):
        """str: the precision of the weights ("float32", "float64", "bfloat16", "int8")."""
        return self.__dict__["_stack"].precision

    @property
    def nbytes(self):
        """int: the bytes held for the parameters (prepared weights, scales, biases, peepholes)."""
        return self.__dict__["_nbytes"]

    def __repr__(self):
        return f"fastrnn.freeze({self._module_class.__repr__(self)}, dtype={self.dtype!r})"

    def __reduce__(self):
        return (type(self)._make, (self._config(), self._stack))


class _FrozenLayers(_Frozen):
    _prepare = layers._RNNBase._prepare
    _states = layers._RNNBase._states
    _output = layers._RNNBase._output
    _state_out = layers._RNNBase._state_out
    _fast = layers._RNNBase._fast
    _inference_args = layers._RNNBase._inference_args

    @classmethod
    def _freeze(cls, module, precision):
        config = {k: v for k, v in module.__dict__.items()
                  if k[1:] in module._CONFIG or k in ("_cells_per_layer", "_n_dirs",
                                                       "_hidden_out", "_call_bounds")}
        spec = _spec(module._cells_per_layer, module._params(), precision, module._dtype)
        stack = _core.FrozenStack(spec, module._n_dirs, module._hidden_out, precision)
        return cls._make(config, stack)

    def _call(self, x, state0, lengths):
        x_tm, h0, c0, lengths, batched = self._inference_args(x, state0, lengths)
        y, h_n, c_n = self._stack.forward(x_tm, h0, c0, lengths, get_num_threads())
        return self._output(y, batched), self._state_out(h_n, c_n, batched)


class _FrozenCell(_Frozen):
    _step = cells._CellBase._step
    _check_batch = cells._CellBase._check_batch

    @classmethod
    def _freeze(cls, module, precision):
        config = {k: module.__dict__[k] for k in ("_input_size", "_hidden_size", "_bias",
                                                  "_nonlinearity", "_dtype", "_cells",
                                                  "_max_batch")}
        params = {f"{name}_l0": value for name, value in module._params().items()}
        spec = _spec([module._cells], params, precision, module._dtype)
        return cls._make(config, _core.FrozenStack(spec, 1, module._hidden_size, precision))

    def _layer_step(self, x, h0, c0):
        return self._stack.step(x, h0, c0, get_num_threads())


def _frozen_class(module_class, base):
    frozen = type(module_class.__name__, (base,), {
        "__doc__": f"A frozen fastrnn.{module_class.__name__} (``fastrnn.freeze``): "
                   "inference only, weights prepared once.",
        "__module__": __name__,
        "__call__": module_class.__call__,
        "_mode": module_class._mode,
        "_module_class": module_class,
    })
    return _borrow(module_class, frozen)


RNN = _frozen_class(layers.RNN, _FrozenLayers)
LSTM = _frozen_class(layers.LSTM, _FrozenLayers)
GRU = _frozen_class(layers.GRU, _FrozenLayers)
RNNCell = _frozen_class(cells.RNNCell, _FrozenCell)
LSTMCell = _frozen_class(cells.LSTMCell, _FrozenCell)
GRUCell = _frozen_class(cells.GRUCell, _FrozenCell)

_FROZEN = {layers.RNN: RNN, layers.LSTM: LSTM, layers.GRU: GRU, cells.RNNCell: RNNCell,
           cells.LSTMCell: LSTMCell, cells.GRUCell: GRUCell}


def freeze(module, dtype=None):
    """An inference-only copy of a module with its weights prepared once.

    Parameters
    ----------
    module : fastrnn.RNN, LSTM, GRU, RNNCell, LSTMCell or GRUCell
        Every option of the layers (layers, directions, projections,
        peepholes, clip, activations, batch_first) is kept.
    dtype : {None, "bfloat16", "int8"} or the module's own numpy dtype
        None (or the module's dtype): the module's precision, float32
        weights kept packed in the layout the kernels read; results equal the
        module's.  "bfloat16": weights rounded to bfloat16 and each product's
        left operand too, sums in float32.  "int8": weights quantized per row,
        each left-operand row quantized when the product runs, exact integer
        products scaled into float32.  Both for float32 modules; biases,
        gates, states and outputs stay float32.

    Returns
    -------
    frozen module
        ``fastrnn.frozen.LSTM`` (and so on): called as the module (same
        arguments, checks and results, inputs and outputs of the module's
        dtype), with the module's configuration attributes, ``dtype`` (the
        weights' precision as a string), ``nbytes``; a snapshot (later changes
        to the module do not reach it), read-only, thread-safe, picklable.
        No ``forward_train``, ``backward`` or ``load_state_dict``.

    Raises
    ------
    TypeError
        ``module`` is not a fastrnn module; ``dtype`` is not a dtype.
    ValueError
        Another ``dtype``, a reduced precision of a float64 module, or
        weights holding NaN or infinity for a reduced precision.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> lstm = fastrnn.LSTM(16, 32, seed=0)
    >>> frozen = fastrnn.freeze(lstm, dtype="int8")
    >>> y, (h_n, c_n) = frozen(np.zeros((5, 2, 16), np.float32))
    >>> frozen.dtype, y.shape
    ('int8', (5, 2, 32))
    """
    frozen_class = _FROZEN.get(type(module))
    if frozen_class is None:
        for module_class, candidate in _FROZEN.items():
            if isinstance(module, module_class):
                frozen_class = candidate
    if frozen_class is None:
        hint = (" (a torch model: use fastrnn.torch.freeze)"
                if type(module).__module__.startswith("torch") else "")
        raise TypeError(f"module: expected a fastrnn RNN, LSTM, GRU, RNNCell, LSTMCell or "
                        f"GRUCell, got {describe(module)}{hint}")
    precision = _precision(module, dtype)
    _check_weights(module, precision)
    return frozen_class._freeze(module, precision)
