"""The layer modules: RNN, LSTM, GRU, stacks of layers with PyTorch's API.

A module holds its configuration and its parameters (``fastrnn._parameters``),
checks every argument (``fastrnn._checks``), puts the input in time-major
order and hands the stack to ``fastrnn.functional.stack_forward`` /
``stack_backward``, which run each layer through the C kernels.
"""

import warnings

import numpy as np

from fastrnn import functional
from fastrnn._cell import GATES, suffix
from fastrnn._checks import (call_size_bounds, check_call_sizes, check_cell_clip,
                             check_dropout, check_dtype, check_flag, check_int,
                             check_layer_sizes, check_lengths,
                             contiguous, describe, direction_cells, float_array,
                             layer_state, not_a_tuple, shape_str, state_halves,
                             time_major_input)
from fastrnn._parameters import Parameters, config_property, kept_copy

__all__ = ["RNN", "LSTM", "GRU", "TrainCache"]


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


def _doc(template, **fields):
    """Give the decorated method the docstring ``template.format(**fields)``."""
    def set_doc(method):
        method.__doc__ = template.format(**fields)
        return method
    return set_doc


class _RNNBase(Parameters):
    """What RNN, LSTM and GRU share: setup, argument layout, the three calls."""

    _mode = None
    _CONFIG = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
               "bidirectional", "proj_size", "dtype", "nonlinearity", "peepholes",
               "cell_clip", "input_forget", "linear_before_reset", "activations",
               "activation_alpha", "activation_beta")

    input_size = config_property("input_size", "int: features of each input step, I.")
    hidden_size = config_property("hidden_size", "int: features of the hidden state, H.")
    num_layers = config_property("num_layers", "int: layers stacked, L.")
    bias = config_property("bias", "bool: whether the layers have bias_ih and bias_hh.")
    batch_first = config_property("batch_first", "bool: x and y are (N, T, *).")
    dropout = config_property("dropout", "float: dropout between layers (forward_train).")
    bidirectional = config_property("bidirectional", "bool: two directions, D = 2.")
    proj_size = config_property("proj_size", "int: LSTM projection size (0: none).")
    dtype = config_property("dtype", "numpy.dtype: float32 or float64.")
    activations = config_property(
        "activations", "tuple of str: the ONNX activations given, or None (the defaults).")
    activation_alpha = config_property("activation_alpha", "tuple of float or None.")
    activation_beta = config_property("activation_beta", "tuple of float or None.")

    def _setup(self, input_size, hidden_size, num_layers, bias, batch_first, dropout,
               bidirectional, proj_size, dtype, seed, *, nonlinearity="tanh",
               activations=None, activation_alpha=None, activation_beta=None,
               peepholes=False, cell_clip=None, input_forget=False, linear_before_reset=True):
        mode = self._mode
        input_size = check_int("input_size", input_size, 1)
        hidden_size = check_int("hidden_size", hidden_size, 1)
        num_layers = check_int("num_layers", num_layers, 1)
        bias = check_flag("bias", bias)
        batch_first = check_flag("batch_first", batch_first)
        dropout = check_dropout(dropout)
        bidirectional = check_flag("bidirectional", bidirectional)
        proj_size = check_int("proj_size", proj_size, 0)
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected less than hidden_size ({hidden_size}), "
                             f"got {proj_size}")
        dtype = check_dtype(dtype)
        peepholes = check_flag("peepholes", peepholes)
        input_forget = check_flag("input_forget", input_forget)
        linear_before_reset = check_flag("linear_before_reset", linear_before_reset)
        cell_clip = check_cell_clip(cell_clip)
        D = 2 if bidirectional else 1
        cells, activations, activation_alpha, activation_beta = direction_cells(
            mode, D, nonlinearity=nonlinearity, activations=activations,
            alphas=activation_alpha, betas=activation_beta, clip=cell_clip,
            input_forget=input_forget, linear_before_reset=linear_before_reset)
        check_layer_sizes(mode, input_size, hidden_size, proj_size, num_layers, D)
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
        self.__dict__["_hidden_out"] = H_out = proj_size or hidden_size
        G, H = GATES[mode], hidden_size
        shapes = {}
        for k in range(num_layers):
            for d in range(D):
                sfx = f"_l{k}{suffix(d)}"
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
        # What _fast reads: the sizes check_call_sizes passes without lengths,
        # and the widths of the states.
        max_batch, _, max_steps = call_size_bounds(mode, input_size, hidden_size, proj_size,
                                                   num_layers, D)
        self.__dict__["_call_bounds"] = (max_batch, max_steps,
                                         (H_out, H) if mode == "lstm" else (H_out,))
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

    def _states(self, name, value, N, batched, copy=False, zeros=True):
        """The state argument ``name`` as ``(h, c)`` arrays (L*D, N, *); c None but for the LSTM.

        None (or a None half) gives zeros, or None with ``zeros=False``."""
        rows, H_out, H = self._num_layers * self._n_dirs, self._hidden_out, self._hidden_size
        dtype = self._dtype

        def one(label, v, size):
            if v is None and not zeros:
                return None
            return layer_state(label, v, rows, N, size, batched, dtype, copy)

        if self._mode == "lstm":
            h, c = state_halves(name, value, "LSTM")
            return one(f"{name}[0]", h, H_out), one(f"{name}[1]", c, H)
        not_a_tuple(name, value, type(self).__name__)
        return one(name, value, H_out), None

    def _prepare(self, x, state0, lengths, training):
        """The arguments of a call checked and laid out as the stack takes them.

        Sizes are checked before anything the size of ``x`` is made."""
        x_tm, given, batched = time_major_input(x, self._input_size, self._batch_first)
        T, N, _ = x_tm.shape
        check_call_sizes(self._mode, T, N, self._input_size, self._hidden_size,
                         self._proj_size, self._num_layers, self._n_dirs, training=training,
                         lengths=lengths is not None)
        h0, c0 = self._states("state0", state0, N, batched, copy=training)
        if lengths is not None:
            if not batched:
                raise ValueError("lengths: only for batched input; x is unbatched (T, I), "
                                 "so give lengths=None")
            lengths = check_lengths(lengths, T, N)
        x_tm = contiguous(x_tm, given, self._dtype, copy=training)
        return x_tm, h0, c0, lengths, batched

    def _fast(self, x, state0):
        """``_prepare``'s result for arguments it takes as they are, else None.

        Only arrays of the module's dtype, C-contiguous and of the shapes it
        wants pass here (no lengths, sizes within the kernels' bounds); None
        sends the call through ``_prepare``, whose checks report the rest.
        """
        dtype = self._dtype
        if type(x) is not np.ndarray or x.dtype != dtype or not x.flags.c_contiguous:
            return None
        shape = x.shape
        if len(shape) == 3 and not self._batch_first:
            T, N, I = shape
            x_tm, batched = x, True
        elif len(shape) == 2:
            T, I = shape
            N, batched = 1, False
            x_tm = x.reshape(T, 1, I)
        else:
            return None
        bounds = self.__dict__.get("_call_bounds")    # absent from older pickles
        if bounds is None:
            return None
        max_batch, max_steps, sizes = bounds
        if I != self._input_size or T < 1 or N > max_batch or T * N > max_steps:
            return None
        if self._mode == "lstm":
            if state0 is None:
                halves = (None, None)
            elif type(state0) in (tuple, list) and len(state0) == 2:
                halves = state0
            else:
                return None
        elif type(state0) is tuple:
            return None
        else:
            halves = (state0,)
        rows = self._num_layers * self._n_dirs
        states = []
        for s, size in zip(halves, sizes):
            if s is None:
                states.append(np.zeros((rows, N, size), dtype))
                continue
            if (type(s) is not np.ndarray or s.dtype != dtype or not s.flags.c_contiguous
                    or s.shape != ((rows, N, size) if batched else (rows, size))):
                return None
            states.append(s if batched else s.reshape(rows, 1, size))
        return x_tm, states[0], states[1] if len(states) > 1 else None, batched

    def _output(self, y, batched):
        if not batched:
            return y[:, 0, :]
        return np.swapaxes(y, 0, 1) if self._batch_first else y

    def _state_out(self, h, c, batched):
        if not batched:
            h = h[:, 0, :]
            c = None if c is None else c[:, 0, :]
        return (h, c) if self._mode == "lstm" else h

    # -- the three calls (each class gives them its own docstring) -----------

    def _inference_args(self, x, state0, lengths):
        """An inference call's arguments as ``_prepare`` gives them: through the
        fast path when it takes them, else through the checks."""
        fast = None if lengths is not None else self._fast(x, state0)
        if fast is None:
            return self._prepare(x, state0, lengths, training=False)
        x_tm, h0, c0, batched = fast
        return x_tm, h0, c0, None, batched

    def _call(self, x, state0, lengths):
        x_tm, h0, c0, lengths, batched = self._inference_args(x, state0, lengths)
        y, h_n, c_n, _ = functional.stack_forward(self._cells_per_layer, self._params(), x_tm,
                                                  h0, c0, lengths=lengths)
        return self._output(y, batched), self._state_out(h_n, c_n, batched)

    def _forward_train(self, x, state0, lengths):
        # The cache must not see later changes to what the caller gave or to the
        # module's parameters: it holds its own copies.
        x_tm, h0, c0, lengths, batched = self._prepare(x, state0, lengths, training=True)
        params = {name: kept_copy(value) for name, value in self._params().items()}
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
        y, h_n, c_n, saved = functional.stack_forward(
            self._cells_per_layer, params, x_tm, h0, c0, lengths=lengths, dropout_masks=masks,
            training=True)
        y_out = self._output(y, batched)
        cache = TrainCache(owner=self._id, params=params, x=x_tm, h0=h0, c0=c0,
                           lengths=lengths, dropout_masks=masks, saved=saved,
                           batched=batched, x_shape=np.shape(x), y_shape=y_out.shape)
        return y_out, self._state_out(h_n, c_n, batched), cache

    def _backward(self, cache, dy, dstate_n):
        if not isinstance(cache, TrainCache):
            raise TypeError(f"cache: expected the cache returned by forward_train, got "
                            f"{describe(cache)}")
        if cache.owner != self._id:
            raise ValueError("cache: expected a cache from this module's forward_train, got "
                             "one from another module")
        N = cache.x.shape[1]
        batched = cache.batched
        if dy is not None:
            arr = float_array("dy", dy)
            if arr.shape != cache.y_shape:
                raise ValueError(f"dy: expected the shape of y, {shape_str(cache.y_shape)}, "
                                 f"got {shape_str(arr.shape)}")
            if not batched:
                arr = arr[:, None, :]
            elif self._batch_first:
                arr = np.swapaxes(arr, 0, 1)
            dy = np.ascontiguousarray(arr, dtype=self._dtype)
        dh_n, dc_n = self._states("dstate_n", dstate_n, N, batched, zeros=False)
        dx, dh0, dc0, grads = functional.stack_backward(
            self._cells_per_layer, cache.params, cache.x, cache.h0, cache.c0, cache.saved,
            dy, dh_n, dc_n, lengths=cache.lengths, dropout_masks=cache.dropout_masks)
        dx = self._output(dx, batched)
        grads = {name: grads[name] for name in self._shapes}
        return dx, self._state_out(dh0, dc0, batched), grads


# ---------------------------------------------------------------------------
# The docstrings the three classes share, filled in per class

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
    __doc__ = ("""Elman RNN layers, ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, as torch.nn.RNN.
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

    _mode = "rnn"
    nonlinearity = config_property("nonlinearity", "str: 'tanh' or 'relu'.")

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, dtype=np.float32,
                 seed=None, activations=None, activation_alpha=None, activation_beta=None):
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, 0, dtype, seed, nonlinearity=nonlinearity,
                    activations=activations, activation_alpha=activation_alpha,
                    activation_beta=activation_beta)

    @_doc(_CALL_DOC, name="RNN", **_H_STATE)
    def __call__(self, x, state0=None, *, lengths=None):
        return self._call(x, state0, lengths)

    @_doc(_TRAIN_DOC, name="RNN", **_H_STATE)
    def forward_train(self, x, state0=None, *, lengths=None):
        return self._forward_train(x, state0, lengths)

    @_doc(_BACKWARD_DOC, **_H_STATE)
    def backward(self, cache, dy=None, dstate_n=None):
        return self._backward(cache, dy, dstate_n)


class LSTM(_RNNBase):
    __doc__ = ("""LSTM layers, as torch.nn.LSTM, with ONNX's options.

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

    _mode = "lstm"
    peepholes = config_property("peepholes", "bool: LSTM peephole weights (i, f, o).")
    cell_clip = config_property("cell_clip", "float or None: gate pre-activation clip.")
    input_forget = config_property("input_forget", "bool: coupled gates, f = 1 - i.")

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype=np.float32,
                 seed=None, peepholes=False, cell_clip=None, input_forget=False,
                 activations=None, activation_alpha=None, activation_beta=None):
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, proj_size, dtype, seed, peepholes=peepholes,
                    cell_clip=cell_clip, input_forget=input_forget, activations=activations,
                    activation_alpha=activation_alpha, activation_beta=activation_beta)

    @_doc(_CALL_DOC, **_LSTM_STATE)
    def __call__(self, x, state0=None, *, lengths=None):
        return self._call(x, state0, lengths)

    @_doc(_TRAIN_DOC, **_LSTM_STATE)
    def forward_train(self, x, state0=None, *, lengths=None):
        return self._forward_train(x, state0, lengths)

    @_doc(_BACKWARD_DOC, **_LSTM_STATE)
    def backward(self, cache, dy=None, dstate_n=None):
        return self._backward(cache, dy, dstate_n)


class GRU(_RNNBase):
    __doc__ = ("""GRU layers, as torch.nn.GRU, with ONNX's options.

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

    _mode = "gru"
    linear_before_reset = config_property(
        "linear_before_reset", "bool: True is PyTorch's GRU, False the original one.")

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype=np.float32, seed=None,
                 linear_before_reset=True, activations=None, activation_alpha=None,
                 activation_beta=None):
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, 0, dtype, seed, linear_before_reset=linear_before_reset,
                    activations=activations, activation_alpha=activation_alpha,
                    activation_beta=activation_beta)

    @_doc(_CALL_DOC, name="GRU", **_H_STATE)
    def __call__(self, x, state0=None, *, lengths=None):
        return self._call(x, state0, lengths)

    @_doc(_TRAIN_DOC, name="GRU", **_H_STATE)
    def forward_train(self, x, state0=None, *, lengths=None):
        return self._forward_train(x, state0, lengths)

    @_doc(_BACKWARD_DOC, **_H_STATE)
    def backward(self, cache, dy=None, dstate_n=None):
        return self._backward(cache, dy, dstate_n)
