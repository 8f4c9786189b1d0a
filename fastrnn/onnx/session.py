"""``InferenceSession`` and ``run``: ONNX graphs of recurrent nodes on fastrnn.

A session reads and checks the model once, folds its constants, and builds
one frozen fastrnn stack per recurrent node whose weights are constants.  It
also decides, once, what a call runs: the plumbing that only changes how a
recurrent node's output is seen (the ``Squeeze`` / ``Transpose`` /
``Reshape`` that ``export`` writes) is folded into a view of the kernel's
output (``fastrnn.onnx._views``), and for each list of output names a plan
keeps the steps those outputs need and knows which results are new arrays
the caller may own and which must be copied.  A call then checks the feeds
against the graph's inputs, runs the plan's steps (a recurrent node calls
its stack with the arrays it checked) and hands the outputs back.  The
interface is onnxruntime's, so that code written for it switches by
changing an import.
"""

from collections.abc import Mapping

import numpy as np

from fastrnn.onnx import _views
from fastrnn.onnx.graph import RECURRENT, Graph, read_model
from fastrnn.onnx.ops import evaluate
from fastrnn.onnx.recurrent import Layer, Spec
from fastrnn.threads import get_num_threads

__all__ = ["InferenceSession", "run"]


class InferenceSession:
    """An ONNX model of ``RNN``/``LSTM``/``GRU`` nodes, prepared to run on fastrnn.

    Parameters
    ----------
    model : onnx.ModelProto, bytes, str, os.PathLike or binary file
        The model; its graph may hold ``RNN``, ``LSTM`` and ``GRU`` nodes
        (every attribute and optional input of the operators, float32 and
        float64) and the plumbing nodes ``Identity``, ``Constant``,
        ``Transpose``, ``Reshape``, ``Squeeze``, ``Unsqueeze``, ``Slice``,
        ``Concat``, ``Split``, ``Cast``, ``Equal``, ``Where``.
    sess_options : optional
        Read for ``intra_op_num_threads`` (when > 0, the thread count of
        every call) as onnxruntime's ``SessionOptions``; otherwise ignored.
    providers, provider_options, **kwargs
        Accepted for onnxruntime's signature, and ignored.

    Raises
    ------
    TypeError, ValueError
        A model that is not ONNX, an operator outside those above, an
        attribute of the wrong type or value, weights of inconsistent shapes.

    Examples
    --------
    >>> import numpy as np, fastrnn, fastrnn.onnx
    >>> lstm = fastrnn.LSTM(8, 16, seed=0)
    >>> session = fastrnn.onnx.InferenceSession(fastrnn.onnx.to_model(lstm))
    >>> [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    (['x'], ['y', 'h_n', 'c_n'])
    >>> y, h_n, c_n = session.run(None, {"x": np.zeros((5, 2, 8), np.float32)})
    >>> y.shape, h_n.shape
    ((5, 2, 16), (1, 2, 16))
    """

    def __init__(self, model, sess_options=None, providers=None, provider_options=None,
                 **kwargs):
        graph = Graph(read_model(model))
        self._graph = graph
        threads = getattr(sess_options, "intra_op_num_threads", 0) or 0
        self._threads = int(threads) if isinstance(threads, int) and threads > 0 else None
        self._inputs = graph.inputs
        # what a feed may be: name -> Value (or an initializer's array), and the
        # checks made of it: name -> (dtype, rank, ((axis, size) of static dims), required)
        self._feed_values = {v.name: v for v in graph.inputs}
        self._feed_values.update(graph.defaults)
        self._feed_specs = {v.name: _feed_spec(v.dtype, v.shape, True) for v in graph.inputs}
        self._feed_specs.update((name, _feed_spec(value.dtype, value.shape, False))
                                for name, value in graph.defaults.items())
        self._defaults = list(graph.defaults.items())
        self._output_names = [v.name for v in graph.outputs]
        self._steps, self._origins = _compile(graph)
        self._plans = {}
        self._all = self._plan(tuple(self._output_names))

    def get_inputs(self):
        """The inputs to feed: a list of NodeArg (``name``, ``shape``, ``type``)."""
        return [v.arg() for v in self._inputs]

    def get_outputs(self):
        """The graph's outputs: a list of NodeArg (``name``, ``shape``, ``type``)."""
        return [v.arg() for v in self._graph.outputs]

    def get_providers(self):
        """Where the session computes: ``["fastrnn"]``."""
        return ["fastrnn"]

    def run(self, output_names, input_feed, run_options=None):
        """Compute outputs from the feeds.

        Parameters
        ----------
        output_names : list of str or None
            The outputs wanted, in order; None for all of them.
        input_feed : dict
            Input name -> ndarray, one for every input of ``get_inputs()``
            (an initializer that is also a graph input may be fed too),
            of its element type and of a shape its declared one admits.
        run_options : optional
            Accepted for onnxruntime's signature, and ignored.

        Returns
        -------
        list of ndarray
            New C-contiguous arrays the caller owns (none shares memory with
            a feed, the model or another output), in the order of
            ``output_names``.

        Raises
        ------
        TypeError
            A feed of the wrong dtype or kind.
        ValueError
            Missing or unknown feeds, shapes the graph cannot take.
        """
        plan = self._all if output_names is None else self._plan_for(output_names)
        env = self._check_feeds(input_feed)
        n_threads = self._threads or get_num_threads()
        for step in plan.steps:
            step(env, n_threads)
        return plan.hand_back(env)

    def _plan_for(self, output_names):
        if type(output_names) in (list, tuple):
            try:
                plan = self._plans.get(tuple(output_names))
            except TypeError:           # unhashable names: reported below
                plan = None
            if plan is not None:
                return plan
        return self._plan(tuple(self._check_names(output_names)))

    def _plan(self, names):
        plan = self._plans.get(names)
        if plan is None:
            plan = _Plan(names, self._steps, self._origins, self._graph.constants)
            if len(self._plans) < 64:
                self._plans[names] = plan
        return plan

    def _check_names(self, output_names):
        if isinstance(output_names, str) or not isinstance(output_names, (list, tuple)):
            raise TypeError(f"output_names: expected a list of output names or None, got "
                            f"{type(output_names).__name__}")
        unknown = [n for n in output_names if n not in self._output_names]
        if unknown:
            raise ValueError(f"output_names: unknown outputs {unknown}; the graph's outputs "
                             f"are {self._output_names}")
        return list(output_names)

    def _check_feeds(self, feeds):
        """The feeds checked against the graph's inputs, the defaults added: a new dict."""
        if type(feeds) is not dict and not isinstance(feeds, Mapping):
            raise TypeError(f"input_feed: expected a dict of input names to arrays, got "
                            f"{type(feeds).__name__}")
        env = {}
        specs = self._feed_specs
        required = 0
        for name, value in feeds.items():
            spec = specs.get(name)
            if spec is None:
                break                           # reported below
            dtype, rank, static, needed = spec
            arr = value if isinstance(value, np.ndarray) else _as_array(name, value)
            if dtype is not None and arr.dtype != dtype:
                self._wrong_feed(name, arr)
            if rank is not None:
                dims = arr.shape
                if len(dims) != rank:
                    self._wrong_feed(name, arr)
                for i, d in static:
                    if dims[i] != d:
                        self._wrong_feed(name, arr)
            env[name] = arr
            required += needed
        if len(env) != len(feeds) or required != len(self._inputs):
            unknown = [k for k in feeds if k not in specs]
            missing = [v.name for v in self._inputs if v.name not in feeds]
            raise ValueError(f"input_feed: expected the inputs {[v.name for v in self._inputs]}"
                             f"; missing {missing}, unknown {unknown}")
        for name, value in self._defaults:
            if name not in env:
                env[name] = value
        return env

    def _wrong_feed(self, name, arr):
        """Raise the error for a feed of the wrong dtype or shape."""
        value = self._feed_values[name]         # a Value, or an initializer's array
        if value.dtype is not None and arr.dtype != value.dtype:
            type_name = value.type if hasattr(value, "type") else str(value.dtype)
            raise TypeError(f"input {name!r}: expected {type_name}, got an array of dtype "
                            f"{arr.dtype}")
        raise ValueError(f"input {name!r}: expected shape {list(value.shape)}, got "
                         f"{list(arr.shape)}")


def _feed_spec(dtype, shape, required):
    if shape is None:
        return dtype, None, (), required
    static = tuple((i, d) for i, d in enumerate(shape) if isinstance(d, int))
    return dtype, len(shape), static, required


def _as_array(name, value):
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise TypeError(f"input {name!r}: expected an ndarray, got {type(value).__name__} "
                        f"({err})") from None
    if arr.dtype == object:
        raise TypeError(f"input {name!r}: expected an ndarray of numbers, got "
                        f"{type(value).__name__}")
    return arr


# ---------------------------------------------------------------------------
# Building the steps, once

# Plumbing whose outputs are always new arrays; the rest may view their first input.
_ALLOCATING = ("Concat", "Cast", "Equal", "Where")


def _compile(graph):
    """The steps of the graph's runtime nodes, and where each value's memory comes from.

    Returns
    -------
    steps : list
        In order; each has ``reads`` and ``writes`` (env keys) and is called
        as ``step(env, n_threads)``.
    origins : dict
        Value name -> ``("buffer", key)`` for (a view of) an array a call
        makes, which it may hand back without a copy, once; ``("fed",)`` for
        memory the caller or the model owns, always copied.
    """
    constants = graph.constants
    steps, origins, views, shown = [], {}, {}, set()

    def show(name):                     # a view becomes a value: a step computes it
        if name in views and name not in shown:
            shown.add(name)
            steps.append(_ViewStep(name, *views[name]))

    for node in graph.runtime:
        if node.op in RECURRENT:
            for name in node.inputs:
                show(name)
            step = _RecurrentStep(node, graph, constants, len(steps))
            steps.append(step)
            spec = step.spec
            Y = spec.outputs.get("Y")
            if Y:
                origins[Y] = ("buffer", step.raw)
                if step.y is None:
                    views[Y] = (step.raw, _views.recurrent_output(spec.n_dirs, step.hidden_size,
                                                                  spec.layout))
            for key in ("Y_h", "Y_c"):
                if key in spec.outputs:
                    origins[spec.outputs[key]] = ("buffer", spec.outputs[key])
            continue
        data = node.inputs[0] if node.inputs else ""
        if data in views and all(not n or n in constants for n in node.inputs[1:]):
            view = _views.fold(views[data][1], node,
                               [constants.get(n) for n in node.inputs], graph.opset)
            if view is not None:
                views[node.outputs[0]] = (views[data][0], view)
                origins[node.outputs[0]] = origins[data]
                continue
        for name in node.inputs:
            show(name)
        steps.append(_PlumbingStep(node, graph.opset, constants))
        for name in node.outputs:
            if name:
                origins[name] = (("buffer", name) if node.op in _ALLOCATING
                                 else origins.get(data, ("fed",)))
    for v in graph.outputs:
        show(v.name)
    return steps, origins


class _Plan:
    """What a call with these output names runs, and how it hands them back."""

    def __init__(self, names, steps, origins, constants):
        needed = set(names)
        kept = []
        for step in reversed(steps):
            if needed.intersection(step.writes):
                kept.append(step)
                needed.update(step.reads)
        self.steps = kept[::-1]
        self.outputs = []                # (env name or None, constant, hand back as is)
        claimed = set()
        for name in names:
            origin = origins.get(name, ("fed",))
            own = origin[0] == "buffer" and origin not in claimed
            claimed.add(origin)
            if name in constants and name not in origins:
                self.outputs.append((None, constants[name], False))
            else:
                self.outputs.append((name, None, own))

    def hand_back(self, env):
        """C-contiguous arrays the caller owns: a copy of anything else's memory."""
        out = []
        for name, constant, own in self.outputs:
            value = constant if name is None else env[name]
            out.append(np.ascontiguousarray(value) if own
                       else np.array(value, order="C", copy=True))
        return out


class _PlumbingStep:
    def __init__(self, node, opset, constants):
        self.node, self.opset = node, opset
        self.args = [None if not n else constants.get(n) for n in node.inputs]
        self.fed = [(k, n) for k, n in enumerate(node.inputs) if n and n not in constants]
        self.reads = [n for _, n in self.fed]
        self.writes = [n for n in node.outputs if n]

    def __call__(self, env, n_threads):
        node = self.node
        args = list(self.args)
        for k, name in self.fed:
            args[k] = env[name]
        for name, value in zip(node.outputs, evaluate(node, args, self.opset)):
            if name:
                env[name] = value


class _ViewStep:
    """A recurrent node's output seen as a plumbing node's result (``_views.View``)."""

    def __init__(self, name, raw, view):
        self.name, self.raw, self.view = name, raw, view
        self.reads, self.writes = [raw], [name]

    def __call__(self, env, n_threads):
        env[self.name] = self.view.apply(env[self.raw])


class _RecurrentStep:
    """A recurrent node: its Layer built once when its weights are constants.

    It writes the kernel's output ``y`` (T, N, D*H) under ``raw`` (``Y`` is
    a view of it) and ``Y_h`` / ``Y_c`` under their names.
    """

    def __init__(self, node, graph, constants, index):
        self.spec = spec = Spec(node)
        self.weight_names = [spec.inputs.get(k) for k in ("W", "R", "B", "P")]
        known = dict(graph.defaults)
        known.update(graph.constants)
        self.layer = self.defaults = None
        if all(n is None or n in known for n in self.weight_names):
            weights = [None if n is None else known[n] for n in self.weight_names]
            self.layer = Layer(spec, *weights)
            if any(n in graph.defaults for n in self.weight_names):
                self.defaults = weights      # fed replacements rebuild the layer
        self.fixed = {n: constants[n] for n in self.weight_names if n in constants}
        R = known.get(spec.inputs["R"])
        self.hidden_size = (spec.hidden_size if spec.hidden_size is not None or R is None
                            or R.ndim != 3 else R.shape[2])
        self.raw = ("y", index)
        names = ("X", "sequence_lens", "initial_h", "initial_c")
        self.x, self.lens, self.h0, self.c0 = (spec.inputs.get(k) for k in names)
        self.y_h, self.y_c = spec.outputs.get("Y_h"), spec.outputs.get("Y_c")
        # Y as a value, when the hidden size is known only from fed weights
        self.y = spec.outputs.get("Y") if self.hidden_size is None else None
        self.reads = [n for n in spec.inputs.values() if n not in constants]
        self.writes = [self.raw] + [n for n in (self.y, self.y_h, self.y_c) if n]

    def __call__(self, env, n_threads):
        spec = self.spec
        layer = self.layer
        if layer is None or self.defaults is not None:
            fixed = self.fixed
            weights = [None if n is None else env[n] if n in env else fixed[n]
                       for n in self.weight_names]
            if layer is None or any(w is not d for w, d in zip(weights, self.defaults)):
                layer = Layer(spec, *weights)
        X = env[self.x]
        if X.dtype != layer.dtype:
            raise TypeError(f"{spec.node.label}: X must have the dtype of W ({layer.dtype}), "
                            f"got {X.dtype}")
        if X.ndim != 3 or X.shape[2] != layer.input_size:
            want = "(batch_size, seq_length" if spec.layout else "(seq_length, batch_size"
            raise ValueError(f"{spec.node.label}: X must have shape {want}, "
                             f"{layer.input_size}), got {X.shape}")
        T, N = (X.shape[1], X.shape[0]) if spec.layout else (X.shape[0], X.shape[1])
        lengths = None if self.lens is None else self._lengths(env[self.lens], T, N)
        want = (N, spec.n_dirs, layer.hidden_size) if spec.layout else (
            spec.n_dirs, N, layer.hidden_size)
        h0 = None if self.h0 is None else self._state(env[self.h0], "initial_h", want, layer)
        c0 = None if self.c0 is None else self._state(env[self.c0], "initial_c", want, layer)
        y, h_n, c_n = layer.run(X, lengths, h0, c0, n_threads)
        env[self.raw] = y
        if self.y:
            env[self.y] = _views.recurrent_output(spec.n_dirs, layer.hidden_size,
                                                  spec.layout).apply(y)
        if self.y_h:
            env[self.y_h] = h_n
        if self.y_c:
            env[self.y_c] = c_n

    def _state(self, s, what, want, layer):
        if s.shape != want:
            raise ValueError(f"{self.spec.node.label}: {what} must have shape {want}, got "
                             f"{s.shape}")
        if s.dtype != layer.dtype:
            raise TypeError(f"{self.spec.node.label}: {what} must have the dtype of X "
                            f"({layer.dtype}), got {s.dtype}")
        return s

    def _lengths(self, lengths, T, N):
        label = self.spec.node.label
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"{label}: sequence_lens must be int32, got {lengths.dtype}")
        if lengths.shape != (N,):
            raise ValueError(f"{label}: sequence_lens must have shape ({N},) (batch_size), "
                             f"got {lengths.shape}")
        if N and (lengths.min() < 0 or lengths.max() > T):
            raise ValueError(f"{label}: sequence_lens must lie in [0, {T}] (seq_length), "
                             f"got values from {lengths.min()} to {lengths.max()}")
        return lengths.astype(np.int64)


def run(model, feeds, output_names=None):
    """Evaluate an ONNX model of recurrent nodes once, as onnxruntime would.

    Parameters
    ----------
    model : onnx.ModelProto, bytes, str, os.PathLike or binary file
    feeds : dict
        Input name -> ndarray.
    output_names : list of str, optional
        The outputs wanted; all of them by default.

    Returns
    -------
    list of ndarray
        As ``onnxruntime.InferenceSession(model).run(output_names, feeds)``.

    See Also
    --------
    InferenceSession : the same, prepared once for many calls.
    """
    return InferenceSession(model).run(output_names, feeds)
