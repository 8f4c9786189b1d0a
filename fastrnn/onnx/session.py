"""``InferenceSession`` and ``run``: ONNX graphs of recurrent nodes on fastrnn.

A session reads and checks the model once, folds its constants, and builds
one fastrnn module per recurrent node whose weights are constants; a call
checks the feeds against the graph's inputs and runs the nodes that depend
on them.  The interface is onnxruntime's, so that code written for it
switches by changing an import.
"""

from collections.abc import Mapping
from contextlib import nullcontext

import numpy as np

import fastrnn
from fastrnn.onnx.graph import RECURRENT, Graph, read_model
from fastrnn.onnx.ops import evaluate
from fastrnn.onnx.recurrent import Layer, Spec

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
        # name -> (dtype, type name, shape, rank, ((axis, size) of static dims))
        self._feed_specs = {}
        for v in graph.inputs:
            self._feed_specs[v.name] = _feed_spec(v.dtype, v.type, v.shape)
        for name, value in graph.defaults.items():
            self._feed_specs[name] = _feed_spec(value.dtype, str(value.dtype), value.shape)
        self._base = dict(graph.constants)
        self._base.update(graph.defaults)
        self._steps = [_RecurrentStep(node, graph) if node.op in RECURRENT
                       else _PlumbingStep(node, graph.opset) for node in graph.runtime]
        self._output_names = [v.name for v in graph.outputs]

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
            New arrays, in the order of ``output_names``.

        Raises
        ------
        TypeError
            A feed of the wrong dtype or kind.
        ValueError
            Missing or unknown feeds, shapes the graph cannot take.
        """
        names = self._output_names if output_names is None else self._check_names(output_names)
        env = dict(self._base)
        env.update(self._check_feeds(input_feed))
        fresh = set()
        with nullcontext() if self._threads is None else fastrnn.threads(self._threads):
            for step in self._steps:
                step(env, fresh)
        return _hand_back([env[name] for name in names], fresh)

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
        if not isinstance(feeds, Mapping):
            raise TypeError(f"input_feed: expected a dict of input names to arrays, got "
                            f"{type(feeds).__name__}")
        checked = {}
        specs = self._feed_specs
        for name, value in feeds.items():
            spec = specs.get(name)
            if spec is None:
                break                           # reported below
            dtype, type_name, shape, rank, static = spec
            arr = value if isinstance(value, np.ndarray) else _as_array(name, value)
            if dtype is not None and arr.dtype != dtype:
                raise TypeError(f"input {name!r}: expected {type_name}, got an array of dtype "
                                f"{arr.dtype}")
            if rank is not None and (arr.ndim != rank or any(arr.shape[i] != d
                                                             for i, d in static)):
                raise ValueError(f"input {name!r}: expected shape {list(shape)}, got "
                                 f"{list(arr.shape)}")
            checked[name] = arr
        if len(checked) != len(feeds) or any(v.name not in checked for v in self._inputs):
            unknown = [k for k in feeds if k not in specs]
            missing = [v.name for v in self._inputs if v.name not in feeds]
            raise ValueError(f"input_feed: expected the inputs {[v.name for v in self._inputs]}"
                             f"; missing {missing}, unknown {unknown}")
        return checked


def _feed_spec(dtype, type_name, shape):
    if shape is None:
        return dtype, type_name, None, None, ()
    static = tuple((i, d) for i, d in enumerate(shape) if isinstance(d, int))
    return dtype, type_name, shape, len(shape), static


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


def _root(arr):
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _hand_back(values, fresh):
    """C-contiguous arrays the caller owns: a copy of anything else's memory."""
    out, claimed = [], set()
    for v in values:
        root = id(_root(v))
        if root in fresh and root not in claimed:
            claimed.add(root)
            out.append(np.ascontiguousarray(v))
        else:
            out.append(np.array(v, order="C", copy=True))
    return out


class _PlumbingStep:
    def __init__(self, node, opset):
        self.node, self.opset = node, opset

    def __call__(self, env, fresh):
        node = self.node
        values = evaluate(node, [env[n] if n else None for n in node.inputs], self.opset)
        for name, value in zip(node.outputs, values):
            if name:
                env[name] = value


class _RecurrentStep:
    """A recurrent node: its Layer built once when its weights are constants."""

    def __init__(self, node, graph):
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

    def __call__(self, env, fresh):
        spec = self.spec
        label = spec.node.label
        layer = self.layer
        if layer is None or self.defaults is not None:
            weights = [None if n is None else env[n] for n in self.weight_names]
            if layer is None or any(w is not d for w, d in zip(weights, self.defaults)):
                layer = Layer(spec, *weights)
        X = env[spec.inputs["X"]]
        if X.dtype != layer.dtype:
            raise TypeError(f"{label}: X must have the dtype of W ({layer.dtype}), got "
                            f"{X.dtype}")
        if X.ndim != 3 or X.shape[2] != layer.input_size:
            want = "(batch_size, seq_length" if spec.layout else "(seq_length, batch_size"
            raise ValueError(f"{label}: X must have shape {want}, {layer.input_size}), got "
                             f"{X.shape}")
        T, N = (X.shape[1], X.shape[0]) if spec.layout else X.shape[:2]
        lengths = self._lengths(env, T, N)
        states = []
        for what in ("initial_h", "initial_c"):
            name = spec.inputs.get(what)
            if name is None:
                states.append(None)
                continue
            s = env[name]
            D, H = spec.n_dirs, layer.hidden_size
            want = (N, D, H) if spec.layout else (D, N, H)
            if s.shape != want:
                raise ValueError(f"{label}: {what} must have shape {want}, got {s.shape}")
            if s.dtype != layer.dtype:
                raise TypeError(f"{label}: {what} must have the dtype of X ({layer.dtype}), "
                                f"got {s.dtype}")
            states.append(s)
        results = layer(X, lengths, *states)
        for key, value in zip(("Y", "Y_h", "Y_c"), results):
            name = spec.outputs.get(key)
            if name:
                env[name] = value
                fresh.add(id(_root(value)))

    def _lengths(self, env, T, N):
        name = self.spec.inputs.get("sequence_lens")
        if name is None:
            return None
        label = self.spec.node.label
        lengths = env[name]
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
