"""The cells: RNNCell, LSTMCell, GRUCell, one step at a time, inference only.

The low-latency streaming path: a call checks its arrays on a fast path
(already C-contiguous arrays of the cell's dtype and shape pass with a few
comparisons; anything else goes through ``fastrnn._checks``) and runs one
step of ``fastrnn.functional.layer_forward`` over weights gathered once.
"""

import numpy as np

from fastrnn import functional
from fastrnn._cell import GATES, WEIGHT_NAMES, Cell
from fastrnn._checks import (cell_batch_limit, cell_input, cell_state, check_call_sizes,
                             check_dtype, check_flag, check_int, check_layer_sizes,
                             state_halves)
from fastrnn._parameters import Parameters, config_property

__all__ = ["RNNCell", "LSTMCell", "GRUCell"]


class _CellBase(Parameters):
    _mode = None
    _CONFIG = ("input_size", "hidden_size", "bias", "nonlinearity", "dtype")

    input_size = config_property("input_size", "int: features of the input, I.")
    hidden_size = config_property("hidden_size", "int: features of the state, H.")
    bias = config_property("bias", "bool: whether the cell has bias_ih and bias_hh.")
    dtype = config_property("dtype", "numpy.dtype: float32 or float64.")

    def _setup(self, input_size, hidden_size, bias, nonlinearity, dtype, seed):
        mode = self._mode
        input_size = check_int("input_size", input_size, 1)
        hidden_size = check_int("hidden_size", hidden_size, 1)
        bias = check_flag("bias", bias)
        cell = Cell.make(mode, nonlinearity=nonlinearity)
        dtype = check_dtype(dtype)
        check_layer_sizes(mode, input_size, hidden_size)
        G, H = GATES[mode], hidden_size
        d = self.__dict__
        d.update(_input_size=input_size, _hidden_size=hidden_size, _bias=bias,
                 _nonlinearity=nonlinearity, _dtype=dtype, _cells=[cell],
                 _max_batch=cell_batch_limit(mode, input_size, hidden_size))
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

    def _layer_step(self, x, h0, c0):
        """One step of the layer: x (1, N, I), h0 and c0 (1, N, H) checked; returns h_n, c_n."""
        _, h_n, c_n, _ = functional.layer_forward(self._cells, x, h0, c0, self._weights)
        return h_n, c_n

    def __repr__(self):
        s = f"{self._input_size}, {self._hidden_size}"
        if not self._bias:
            s += ", bias=False"
        if self._mode == "rnn" and self._nonlinearity != "tanh":
            s += f", nonlinearity={self._nonlinearity}"
        if self._dtype != np.float32:
            s += f", dtype={self._dtype.name}"
        return f"{type(self).__name__}({s})"

    def _check_batch(self, N):
        """N sequences in one step: a ValueError past what the kernels can index."""
        check_call_sizes(self._mode, 1, N, self._input_size, self._hidden_size)

    def _step(self, x_t, states):
        """x_t and the ``(name, value)`` states checked here; returns the new states."""
        dtype = self._dtype
        x = x_t
        if type(x) is not np.ndarray or x.dtype != dtype or not x.flags.c_contiguous:
            x = cell_input(x_t, self._input_size, dtype, self._check_batch)
        shape = x.shape
        I, H = self._input_size, self._hidden_size
        if len(shape) == 2 and shape[1] == I:
            N = shape[0]
            want = (N, H)
        elif len(shape) == 1 and shape[0] == I:
            N = 1
            want = (H,)
        else:
            cell_input(x, I, dtype, self._check_batch)     # raises, naming x_t
            raise AssertionError("unreachable")
        if N > self._max_batch:
            self._check_batch(N)
        checked = []
        for name, s in states:
            if s is None:
                s = np.zeros((1, N, H), dtype)
            else:
                if (type(s) is not np.ndarray or s.dtype != dtype
                        or not s.flags.c_contiguous or s.shape != want):
                    s = cell_state(name, s, want, dtype)
                s = s.reshape(1, N, H)
            checked.append(s)
        if N == 0:
            return tuple(np.zeros(want, dtype) for _ in states)
        h0 = checked[0]
        c0 = checked[1] if len(checked) > 1 else None
        h_n, c_n = self._layer_step(x.reshape(1, N, I), h0, c0)
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

_H_STEP_PARAMETERS = """
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
    __doc__ = ("""One Elman RNN step, as torch.nn.RNNCell.

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
    _mode = "rnn"
    nonlinearity = config_property("nonlinearity", "str: 'tanh' or 'relu'.")

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *,
                 dtype=np.float32, seed=None):
        self._setup(input_size, hidden_size, bias, nonlinearity, dtype, seed)

    def __call__(self, x_t, state=None):
        return self._step(x_t, (("state", state),))[0]

    __call__.__doc__ = ("One Elman step, ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.\n"
                        + _H_STEP_PARAMETERS)


class LSTMCell(_CellBase):
    __doc__ = ("""One LSTM step, as torch.nn.LSTMCell; the state is a tuple ``(h, c)``.
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
        h, c = state_halves("state", state, "LSTMCell")
        return self._step(x_t, (("state[0]", h), ("state[1]", c)))


class GRUCell(_CellBase):
    __doc__ = ("""One GRU step, as torch.nn.GRUCell.
""" + _CELL_DOC.format(extra="", G=3) + """
    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> cell = fastrnn.GRUCell(4, 8, dtype=np.float64, seed=0)
    >>> h = cell(np.zeros((2, 4)))
    >>> h.shape
    (2, 8)
""")
    _mode = "gru"

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, seed=None):
        self._setup(input_size, hidden_size, bias, "tanh", dtype, seed)

    def __call__(self, x_t, state=None):
        return self._step(x_t, (("state", state),))[0]

    __call__.__doc__ = "One GRU step (PyTorch's GRU).\n" + _H_STEP_PARAMETERS
