"""The engines that take NumPy arrays: fastrnn's modules and cells, and the
pure-NumPy reference."""

import numpy as np

from fastrnn.bench.cases import cell_weights
from fastrnn.bench.engines.base import (Engine, Prepared, layer_outputs, state_outputs,
                                        step_input, training_outputs)


class FastrnnEngine(Engine):
    """fastrnn's modules and cells, NumPy in and out."""

    def load(self):
        import fastrnn
        missing = [name for name in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")
                   if not hasattr(fastrnn, name)]
        if missing:
            raise ImportError(f"fastrnn {fastrnn.__version__} has no {', '.join(missing)}")
        self.fastrnn = fastrnn
        return fastrnn.__version__

    def build(self, case, weights):
        """The module of the case (its cell for latency), the case's weights loaded."""
        fr = self.fastrnn
        dtype = np.dtype(case.dtype)
        extra = {"nonlinearity": "tanh"} if case.cell == "rnn" else {}
        if case.mode == "latency":
            cls = {"rnn": fr.RNNCell, "lstm": fr.LSTMCell, "gru": fr.GRUCell}[case.cell]
            cell = cls(case.I, case.H, **extra, dtype=dtype, seed=0)
            cell.load_state_dict(cell_weights(weights))
            return cell
        cls = {"rnn": fr.RNN, "lstm": fr.LSTM, "gru": fr.GRU}[case.cell]
        module = cls(case.I, case.H, **extra, dtype=dtype, seed=0)
        module.load_state_dict(weights)
        return module

    def prepare(self, case, weights, inputs):
        self.fastrnn.set_num_threads(case.threads)
        module = self.build(case, weights)
        if case.mode == "latency":
            x, state = step_input(case, inputs)
            return Prepared(lambda: module(x, state),
                            lambda r: state_outputs(case.cell, r, ("h", "c")))
        x = inputs["x"]
        dtype = x.dtype
        if case.mode == "inference":
            return Prepared(lambda: module(x), lambda r: layer_outputs(case, *r))
        dy = np.ones((case.T, case.N, case.H), dtype)

        def step():
            y, state, cache = module.forward_train(x)
            dx, _, grads = module.backward(cache, dy)
            return y, state, dx, grads
        return Prepared(step, lambda r: training_outputs(case, *r))


class ReferenceEngine(Engine):
    """``fastrnn.reference``: the pure-NumPy oracle (a Python loop over time)."""

    max_rounds = 3

    def load(self):
        import threadpoolctl

        import fastrnn
        from fastrnn import reference
        from fastrnn._cell import Cell
        self.reference, self.Cell, self.threadpoolctl = reference, Cell, threadpoolctl
        return fastrnn.__version__

    def prepare(self, case, weights, inputs):
        ref = self.reference
        # NumPy's own BLAS does the reference's products.
        self.threadpoolctl.threadpool_limits(limits=case.threads, user_api="blas")
        cell = self.Cell.make(case.cell)
        x = inputs["x"]
        if case.mode == "latency":          # one step of the stack: T = 1, state (1, N, H)
            state0 = tuple(inputs[k] for k in ("h0", "c0") if k in inputs)
            return Prepared(lambda: ref.forward(cell, x, state0, weights),
                            lambda r: state_outputs(case.cell, _unwrap(case, tuple(
                                s[0] for s in r[1])), ("h", "c")))
        if case.mode == "inference":
            return Prepared(lambda: ref.forward(cell, x, None, weights),
                            lambda r: layer_outputs(case, r[0], _unwrap(case, r[1])))
        dy = np.ones((case.T, case.N, case.H), x.dtype)

        def step():
            y, state, cache = ref.forward(cell, x, None, weights)
            dx, _, grads = ref.backward(cache, dy, None)
            return y, _unwrap(case, state), dx, grads
        return Prepared(step, lambda r: training_outputs(case, *r))


def _unwrap(case, state):
    """The reference's state tuple as the modules return it: ``(h, c)`` or ``h``."""
    return state if case.cell == "lstm" else state[0]
