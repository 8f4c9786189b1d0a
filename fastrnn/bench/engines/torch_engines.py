"""The engines that take torch tensors: ``torch.nn`` itself, and
``fastrnn.torch`` (torch modules computing with fastrnn's kernels)."""

from fastrnn.bench.cases import cell_weights
from fastrnn.bench.engines.base import Engine, Prepared, layer_outputs, state_outputs, \
    training_outputs


class TorchEngine(Engine):
    """``torch.nn.RNN/LSTM/GRU`` and their cells."""

    def _namespace(self):
        """Where the module classes come from."""
        import torch.nn
        return torch.nn

    def _version(self):
        return self.torch.__version__

    def load(self):
        import torch
        self.torch = torch
        self.nn = self._namespace()
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:        # already set, or parallel work already done
            pass
        return self._version()

    def convert(self, case, module):
        """The module (or cell) to time, made from the float32/float64 one with the
        case's weights: the module itself here; a reduced precision's copy in a subclass."""
        return module

    def prepare(self, case, weights, inputs):
        torch, nn = self.torch, self.nn
        torch.set_num_threads(case.threads)
        dtype = getattr(torch, case.dtype)
        extra = {"nonlinearity": "tanh"} if case.cell == "rnn" else {}
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}

        def to_numpy(tensor):
            return tensor.detach().numpy()

        if case.mode == "latency":
            import torch.nn as tnn                      # cells: torch's own classes
            cls = {"rnn": tnn.RNNCell, "lstm": tnn.LSTMCell, "gru": tnn.GRUCell}[case.cell]
            cell = cls(case.I, case.H, **extra, dtype=dtype)
            cell.load_state_dict({k: torch.from_numpy(v)
                                  for k, v in cell_weights(weights).items()})
            cell = self.convert(case, cell)
            x = tensors["x"][0]
            state = ((tensors["h0"][0], tensors["c0"][0]) if case.cell == "lstm"
                     else tensors["h0"][0])

            def step():
                with torch.no_grad():
                    return cell(x, state)
            return Prepared(step, lambda r: state_outputs(case.cell, r, ("h", "c"), to_numpy))

        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[case.cell]
        module = cls(case.I, case.H, **extra, dtype=dtype)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        module = self.convert(case, module)
        x = tensors["x"]
        if case.mode == "inference":
            def infer():
                with torch.no_grad():
                    return module(x)
            return Prepared(infer, lambda r: layer_outputs(case, *r, to_numpy=to_numpy))

        x = x.clone().requires_grad_(True)
        params = dict(module.named_parameters())

        def step():
            for p in params.values():
                p.grad = None
            x.grad = None
            y, state = module(x)
            y.sum().backward()
            return y, state, x.grad, {k: p.grad for k, p in params.items()}
        return Prepared(step, lambda r: training_outputs(case, *r, to_numpy=to_numpy))


class FastrnnTorchEngine(TorchEngine):
    """``fastrnn.torch``: torch modules computing with fastrnn's kernels."""

    modes = ("inference", "training")

    def _namespace(self):
        import fastrnn.torch
        return fastrnn.torch

    def _version(self):
        import fastrnn
        self.fastrnn = fastrnn
        return fastrnn.__version__

    def prepare(self, case, weights, inputs):
        self.fastrnn.set_num_threads(case.threads)      # the kernels' own count
        return super().prepare(case, weights, inputs)
