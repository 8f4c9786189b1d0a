"""ONNX Runtime's engine: its CPU RNN/LSTM/GRU kernels, through a session on
a one-node graph."""

from fastrnn.bench.engines.base import Engine, Prepared, Unsupported


def onnx_model(case, weights):
    """The graph the ONNX engines time for ``case``: the one call site.

    ``fastrnn.onnx.to_model`` of the case's one-layer module (one recurrent
    node and the ``Squeeze`` that gives ``y`` the module's shape), with the
    initial state as inputs for the latency case.

    Returns
    -------
    onnx.ModelProto
        Inputs ``x`` (then ``h0``, ``c0``), outputs ``y``, ``h_n`` (``c_n``).
    """
    import fastrnn
    from fastrnn.onnx import to_model
    module = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[case.cell](
        case.I, case.H, dtype=case.dtype, seed=0)
    module.load_state_dict(weights)
    return to_model(module, initial_state=case.mode == "latency")


class OnnxRuntimeEngine(Engine):
    """ONNX Runtime's CPU RNN/LSTM/GRU kernels (inference only)."""

    modes = ("inference", "latency")

    def load(self):
        import onnx  # noqa: F401  (builds the graphs)
        import onnxruntime
        self.ort = onnxruntime
        return onnxruntime.__version__

    def session(self, case, model):
        """An ``InferenceSession`` on ``model`` (bytes) at the case's thread count."""
        ort = self.ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = case.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def model(self, case, weights):
        """The graph to time (``onnx.ModelProto``): ``onnx_model``'s here; a reduced
        precision's in a subclass."""
        return onnx_model(case, weights)

    def prepare(self, case, weights, inputs):
        if case.dtype != "float32":     # its LSTM and GRU: "does not support double yet"
            raise Unsupported("onnxruntime's CPU RNN kernels run float32 only")
        session = self.session(case, self.model(case, weights).SerializeToString())
        return _session_call(session, case, inputs)


def _session_call(session, case, inputs):
    """``Prepared`` for a session with onnxruntime's interface on ``onnx_model``'s
    graph: inference returns ``y``, ``h_n`` (``c_n``); latency the new state."""
    states = ["h0", "c0"] if case.cell == "lstm" else ["h0"]
    feeds = {"x": inputs["x"]}
    if case.mode == "latency":
        feeds.update({s: inputs[s] for s in states})
        names = [f"{s[0]}_n" for s in states]
        keys = {f"{s[0]}_n": s[0] for s in states}
    else:
        names = ["y"] + [f"{s[0]}_n" for s in states]
        keys = {name: name for name in names}

    def collect(result):
        return {keys[name]: value[0] if case.mode == "latency" else value
                for name, value in zip(names, result)}
    return Prepared(lambda: session.run(names, feeds), collect)


class FastrnnOnnxEngine(OnnxRuntimeEngine):
    """``fastrnn.onnx.InferenceSession`` on the very graph onnxruntime times:
    code written for onnxruntime, switched by an import (inference only)."""

    def load(self):
        import fastrnn.onnx
        self.session_class = fastrnn.onnx.InferenceSession
        return fastrnn.__version__

    def session(self, case, model):
        options = type("SessionOptions", (), {"intra_op_num_threads": case.threads})()
        return self.session_class(model, options)

    def prepare(self, case, weights, inputs):   # float32 and float64 alike
        session = self.session(case, self.model(case, weights).SerializeToString())
        return _session_call(session, case, inputs)
