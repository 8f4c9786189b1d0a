"""ONNX Runtime's engine: its CPU RNN/LSTM/GRU kernels, through a session on
a one-node graph."""

from fastrnn.bench.engines.base import Engine, Prepared, Unsupported


def onnx_model(case, weights):
    """The graph ONNX Runtime's engines time for ``case``: the one call site.

    Inference graphs output ``Y`` and the final state; latency graphs take
    the initial state and output only the new one.

    Returns
    -------
    onnx.ModelProto
    """
    from fastrnn.bench.onnx_graph import build_model
    latency = case.mode == "latency"
    return build_model(case.cell, weights, seq_len=case.T, batch=case.N,
                       initial_state=latency, output_sequence=not latency)


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
        names = [o.name for o in session.get_outputs()]
        feeds = {"X": inputs["x"]}
        if case.mode == "latency":
            feeds["initial_h"] = inputs["h0"]
            if case.cell == "lstm":
                feeds["initial_c"] = inputs["c0"]
        keys = {"Y": "y", "Y_h": "h_n", "Y_c": "c_n"} if case.mode == "inference" else \
            {"Y_h": "h", "Y_c": "c"}

        def collect(result):
            out = {}
            for name, value in zip(names, result):
                if name == "Y":                         # (T, 1, N, H) -> (T, N, H)
                    value = value[:, 0]
                elif case.mode == "latency":            # (1, N, H) -> (N, H)
                    value = value[0]
                out[keys[name]] = value
            return out
        return Prepared(lambda: session.run(names, feeds), collect)
