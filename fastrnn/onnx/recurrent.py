"""One ONNX ``RNN`` / ``LSTM`` / ``GRU`` node, computed by fastrnn.

:class:`Spec` reads a node's attributes (ONNX's defaults filled in, every
value checked); :func:`make_module` turns a spec and its weights into a
fastrnn module through the public API; :class:`Layer` runs a node as ONNX
defines it: ``layout`` 0 or 1, the ``reverse`` direction, ``sequence_lens``,
initial states, ``Y_h`` / ``Y_c`` shaped ``(D, N, H)`` and ``Y`` as a view of
the kernel's output (``fastrnn.onnx._views``).

Where the operator spec is silent, ONNX Runtime's behaviour is followed:
a sequence of length 0 gets zeros in ``Y_h`` and ``Y_c`` (not its initial
state), unused ``activation_alpha`` / ``activation_beta`` values are
ignored, activation names match in any case.  ``clip`` on an RNN or GRU
node, which fastrnn's modules do not take, runs through
``fastrnn.reference.forward``.
"""

import numpy as np

import fastrnn
from fastrnn import reference
from fastrnn._cell import DEFAULT_ACTIVATIONS, GATES, Cell, activation_params, default_activations
from fastrnn._checks import call_size_bounds, check_call_sizes
from fastrnn.onnx import _layout

_DIRECTIONS = ("forward", "reverse", "bidirectional")
_INPUTS = {"RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
           "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
           "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")}
_OUTPUTS = {"RNN": ("Y", "Y_h"), "GRU": ("Y", "Y_h"), "LSTM": ("Y", "Y_h", "Y_c")}
_CLASSES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


class Spec:
    """A recurrent node's configuration, from its attributes.

    Attributes
    ----------
    node : fastrnn.onnx.graph.Node
    mode : {"rnn", "lstm", "gru"}
    direction : {"forward", "reverse", "bidirectional"}
    n_dirs : int
        D: 2 when bidirectional, else 1.
    hidden_size : int or None
        None when the node leaves it out (then R's shape gives it).
    layout : {0, 1}
    activations : tuple of str
        ONNX's names, ``k * D`` of them (k = 1, 3, 2 for RNN, LSTM, GRU).
    params : list of (alpha, beta)
        One per activation, ONNX's defaults filled in.
    clip : float or None
    input_forget, linear_before_reset : bool
    inputs : dict
        ONNX input name (``X``, ``W``, ... ``P``) -> value name, present ones only.
    outputs : dict
        ``Y``, ``Y_h``, ``Y_c`` -> value name, present ones only.
    """

    def __init__(self, node):
        self.node = node
        label = node.label
        a = node.attrs
        self.mode = _layout.MODES[node.op]
        names_in, names_out = _INPUTS[node.op], _OUTPUTS[node.op]
        if len(node.inputs) > len(names_in) or len(node.outputs) > len(names_out):
            raise ValueError(f"{label}: expected at most {len(names_in)} inputs "
                             f"({', '.join(names_in)}) and {len(names_out)} outputs, got "
                             f"{len(node.inputs)} and {len(node.outputs)}")
        self.inputs = {k: v for k, v in zip(names_in, node.inputs) if v}
        self.outputs = {k: v for k, v in zip(names_out, node.outputs) if v}
        for required in ("X", "W", "R"):
            if required not in self.inputs:
                raise ValueError(f"{label}: the input {required} is required")
        self.direction = a.get("direction", "forward")
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"{label}: direction must be one of {list(_DIRECTIONS)}, got "
                             f"{self.direction!r}")
        self.n_dirs = 2 if self.direction == "bidirectional" else 1
        self.hidden_size = a.get("hidden_size")
        if self.hidden_size is not None and self.hidden_size < 1:
            raise ValueError(f"{label}: hidden_size must be >= 1, got {self.hidden_size}")
        self.layout = a.get("layout", 0)
        if self.layout not in (0, 1):
            raise ValueError(f"{label}: layout must be 0 or 1, got {self.layout}")
        self.clip = a.get("clip")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"{label}: clip must be a positive number, got {self.clip}")
        self.input_forget = _flag(label, a, "input_forget")
        self.linear_before_reset = _flag(label, a, "linear_before_reset")
        k = len(DEFAULT_ACTIVATIONS[self.mode])
        names = a.get("activations")
        if names is None:
            names = default_activations(self.mode, self.n_dirs)
        if len(names) != k * self.n_dirs:
            raise ValueError(f"{label}: activations must name {k * self.n_dirs} functions "
                             f"({k} per direction), got {len(names)}: {names}")
        canonical = []
        for name in names:
            known = _layout.canonical_activation(name)
            if known is None:
                raise ValueError(f"{label}: unknown activation {name!r} (expected one of "
                                 f"{', '.join(_layout.ACTIVATIONS)})")
            canonical.append(known)
        self.activations = tuple(canonical)
        self.params = activation_params(self.activations, a.get("activation_alpha"),
                                                a.get("activation_beta"))

    @property
    def gates(self):
        return GATES[self.mode]

    def cells(self):
        """One fastrnn Cell per direction (for the reference)."""
        k = len(self.activations) // self.n_dirs
        out = []
        for d in range(self.n_dirs):
            names = self.activations[d * k:(d + 1) * k]
            params = self.params[d * k:(d + 1) * k]
            alphas, betas = _layout.explicit_params(names, params)
            out.append(Cell.make(self.mode, activations=names, alphas=alphas, betas=betas,
                                 clip=self.clip, input_forget=self.input_forget,
                                 linear_before_reset=self.linear_before_reset))
        return out


def _flag(label, attrs, name):
    value = attrs.get(name, 0)
    if value not in (0, 1):
        raise ValueError(f"{label}: {name} must be 0 or 1, got {value}")
    return bool(value)


def check_weights(spec, W, R, B=None, P=None):
    """Check W, R, B, P against each other and the spec; return (I, H, dtype)."""
    label, D, G = spec.node.label, spec.n_dirs, spec.gates
    for what, arr in (("W", W), ("R", R), ("B", B), ("P", P)):
        if arr is not None and arr.dtype not in (np.float32, np.float64):
            raise TypeError(f"{label}: {what} must be float32 or float64, got {arr.dtype}")
    if R.ndim != 3 or R.shape[0] != D or R.shape[1] != G * R.shape[2]:
        raise ValueError(f"{label}: R must have shape (num_directions={D}, {G}*hidden_size, "
                         f"hidden_size), got {R.shape}")
    H = R.shape[2]
    if spec.hidden_size is not None and spec.hidden_size != H:
        raise ValueError(f"{label}: hidden_size is {spec.hidden_size} but R has shape "
                         f"{R.shape} (hidden_size {H})")
    if W.ndim != 3 or W.shape[:2] != (D, G * H):
        raise ValueError(f"{label}: W must have shape ({D}, {G * H}, input_size), got "
                         f"{W.shape}")
    expect = {"B": (D, 2 * G * H), "P": (D, 3 * H)}
    for what, arr in (("B", B), ("P", P)):
        if arr is not None and arr.shape != expect[what]:
            raise ValueError(f"{label}: {what} must have shape {expect[what]}, got {arr.shape}")
    dtypes = {arr.dtype for arr in (W, R, B, P) if arr is not None}
    if len(dtypes) > 1:
        raise TypeError(f"{label}: W, R, B and P must share one dtype, got "
                        f"{sorted(str(d) for d in dtypes)}")
    return W.shape[2], H, W.dtype


def module_options(spec, reverse=False):
    """The fastrnn module keywords that express a spec (ValueError where none does).

    With ``reverse``, a ``reverse`` node is read as forward (its caller
    reverses the sequences).
    """
    label = spec.node.label
    if spec.direction == "reverse" and not reverse:
        raise ValueError(f"{label}: direction 'reverse' (one direction, run backwards) has "
                         f"no fastrnn module: modules run forward or both ways")
    if spec.clip is not None and spec.mode != "lstm":
        raise ValueError(f"{label}: clip on {spec.node.op} has no fastrnn module option "
                         f"(only the LSTM takes cell_clip)")
    options = {"bidirectional": spec.n_dirs == 2}
    D = spec.n_dirs
    if spec.activations == default_activations(spec.mode, D):
        pass                            # the module's own defaults
    elif spec.mode == "rnn" and spec.activations == ("Relu",) * D:
        options["nonlinearity"] = "relu"
    else:
        alphas, betas = _layout.explicit_params(spec.activations, spec.params)
        options.update(activations=list(spec.activations), activation_alpha=alphas or None,
                       activation_beta=betas or None)
    if spec.mode == "lstm":
        options.update(cell_clip=spec.clip, input_forget=spec.input_forget)
    if spec.mode == "gru":
        options["linear_before_reset"] = spec.linear_before_reset
    return options


def make_module(spec, layers, batch_first=False, reverse=False):
    """A fastrnn module for a stack of nodes sharing ``spec``'s configuration.

    ``layers`` is a list of ``(W, R, B, P)`` per layer (B and P may be None;
    all layers alike); ``reverse`` as in :func:`module_options`.
    """
    _, _, B0, P0 = layers[0]
    I, H, dtype = check_weights(spec, *layers[0])
    for k, weights in enumerate(layers[1:], 1):
        if check_weights(spec, *weights) != (spec.n_dirs * H, H, dtype):
            raise ValueError(f"layer {k} of the stack of {spec.node.op} nodes: "
                             f"expected weights reading the {spec.n_dirs * H} features of "
                             f"the layer before, of hidden size {H} and dtype {dtype}")
    options = module_options(spec, reverse)
    if spec.mode == "lstm":
        options["peepholes"] = P0 is not None
    cls = getattr(fastrnn, _CLASSES[spec.mode])
    module = cls(I, H, num_layers=len(layers), bias=B0 is not None, batch_first=batch_first,
                 dtype=dtype, seed=0, **options)
    params = {}
    for k, weights in enumerate(layers):
        params.update(_layout.torch_weights(spec.mode, k, *weights))
    module.load_state_dict(params)
    return module


class Layer:
    """A recurrent node with its weights, ready to run many times.

    Parameters
    ----------
    spec : Spec
    W, R, B, P : ndarray
        ONNX's layout (B and P may be None), checked here.

    Notes
    -----
    The node runs on the frozen stack of its module (``FrozenStack.forward``)
    with the arguments the session checked: the module's own checks are not
    repeated, but for the sizes the kernels can index (``check_call_sizes``),
    tested against bounds computed here.
    """

    def __init__(self, spec, W, R, B=None, P=None):
        self.spec = spec
        self.input_size, self.hidden_size, self.dtype = check_weights(spec, W, R, B, P)
        self.reverse = spec.direction == "reverse"
        self.lstm = spec.mode == "lstm"
        if spec.clip is not None and spec.mode != "lstm":
            self.stack = None           # no module takes clip: the reference runs it
            self.cells = spec.cells()
            self.params = _layout.torch_weights(spec.mode, 0, W, R, B)
        else:
            # frozen: the weights packed once, for every run of the node
            module = make_module(spec, [(W, R, B, P)], reverse=self.reverse)
            self.stack = fastrnn.freeze(module)._stack
            # check_call_sizes passes below these: N, N with lengths, T*N
            self.max_batch, self.max_batch_lengths, self.max_steps = call_size_bounds(
                spec.mode, self.input_size, self.hidden_size, n_dirs=spec.n_dirs)

    def run(self, X, lengths, h0, c0, n_threads):
        """Run the node on checked arrays: ``(y, Y_h, Y_c)``.

        ``X``, ``h0``, ``c0`` are in the node's layout (``h0``, ``c0`` None
        for zeros); ``lengths`` an int64 array (N,) or None.  ``y`` is the
        kernel's output, (T, N, D*H) time-major (``_views.recurrent_output``
        says how ONNX's ``Y`` views it); ``Y_h`` and ``Y_c`` are ONNX's,
        ``Y_c`` None but for the LSTM.  All three are new arrays.
        """
        spec, lstm = self.spec, self.lstm
        if spec.layout == 1:
            X = X.transpose(1, 0, 2)
            h0 = None if h0 is None else h0.transpose(1, 0, 2)
            c0 = None if c0 is None else c0.transpose(1, 0, 2)
        T, N = X.shape[0], X.shape[1]
        if T == 0:                      # as ONNX Runtime: every sequence has length 0
            D, H = spec.n_dirs, self.hidden_size
            y = np.zeros((0, N, D * H), self.dtype)
            h_n = np.zeros((D, N, H), self.dtype)
            c_n = h_n.copy() if lstm else None
        elif self.reverse or self.stack is None:
            y, h_n, c_n = self._forward(X, lengths, h0, c0, n_threads)
        else:
            y, h_n, c_n = self._stack_forward(X, lengths, h0, c0, n_threads)
        if lengths is not None and N and T:
            empty = lengths == 0        # ONNX Runtime zeroes their final state
            if empty.any():
                h_n[:, empty] = 0
                if lstm:
                    c_n[:, empty] = 0
        if spec.layout == 1:
            h_n = np.ascontiguousarray(h_n.transpose(1, 0, 2))
            c_n = None if c_n is None else np.ascontiguousarray(c_n.transpose(1, 0, 2))
        return y, h_n, c_n

    def _forward(self, X, lengths, h0, c0, n_threads):
        """y (T, N, D*H), h_n, c_n through the frozen stack (or the reference)."""
        order = None
        if self.reverse:                # each sequence backwards from its own end
            order = _reverse_order(X.shape[0], X.shape[1], lengths)
            X = X[::-1] if order is None else X[order, np.arange(X.shape[1])]
        if self.stack is not None:
            y, h_n, c_n = self._stack_forward(X, lengths, h0, c0, n_threads)
        else:                           # RNN or GRU: one state
            y, (h_n,), _ = reference.forward(
                self.cells, X, None if h0 is None else (h0,), self.params,
                bidirectional=self.spec.n_dirs == 2, lengths=lengths)
            c_n = None
        if self.reverse:
            y = y[::-1] if order is None else y[order, np.arange(X.shape[1])]
        return y, h_n, c_n

    def _stack_forward(self, X, lengths, h0, c0, n_threads):
        """The frozen module's call, less the checks the session made."""
        T, N = X.shape[0], X.shape[1]
        if (N > (self.max_batch if lengths is None else self.max_batch_lengths)
                or T * N > self.max_steps):
            spec = self.spec           # raises, as the module would
            check_call_sizes(spec.mode, T, N, self.input_size, self.hidden_size,
                             n_dirs=spec.n_dirs, lengths=lengths is not None)
        shape = (self.spec.n_dirs, N, self.hidden_size)
        x = X if X.flags.c_contiguous else np.ascontiguousarray(X)
        h0 = np.zeros(shape, self.dtype) if h0 is None else np.ascontiguousarray(h0)
        if self.lstm:
            c0 = np.zeros(shape, self.dtype) if c0 is None else np.ascontiguousarray(c0)
        return self.stack.forward(x, h0, c0, lengths, n_threads)


def _reverse_order(T, N, lengths):
    """Time indices reading each sequence backwards from its own last valid step.

    None when every sequence is T long (plain ``[::-1]``).  Padded steps keep
    their index, so the permutation is its own inverse.
    """
    if lengths is None or (lengths == T).all():
        return None
    step = np.arange(T)[:, None]
    return np.where(step < lengths, lengths - 1 - step, step)
