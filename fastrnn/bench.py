"""Benchmark fastrnn against the NumPy reference, PyTorch and ONNX Runtime.

Run ``python -m fastrnn.bench`` (or ``fastrnn-bench``); ``--help`` lists the
options, ``--quick`` runs a reduced grid in well under a minute.

How it measures
---------------
Engines
    Each engine (``fastrnn``, ``reference``, ``torch``, ``onnxruntime``,
    ``fastrnn.torch``; or ``module:Class`` naming an :class:`Engine`
    subclass of your own) runs in its own worker process, started with the
    ``spawn`` context.  The thread pools of different libraries (OpenMP,
    oneDNN, ONNX Runtime's own) spin while they wait for work and would steal
    each other's cores if they shared a process.  An engine that is not
    installed is reported as skipped, never as an error.
Commands
    The parent sends every worker the same weights (generated once per case
    from ``--seed``, in ``torch.nn``'s state_dict layout) and the same inputs
    over a pipe, with the case (cell, mode, shape, threads, dtype) to prepare.
    Only one worker runs at a time: the parent waits for each reply.
Numerical check
    Before any timing, every case is run once by every engine, and each
    engine's results (``y`` and the final state; in training also ``dx`` and
    every weight gradient; one step's new state for the latency cases) are
    compared with fastrnn's, or the reference's where fastrnn is missing:
    ``|a - b| <= tol * (|b| + max|b|)`` elementwise, ``tol`` 1e-4 in float32
    and 1e-9 in float64 (``--tolerance``).  A mismatch is printed with the
    engines grouped by which agree with which (where the NumPy reference
    stands tells who is wrong), and the run exits with status 1 before
    timing anything (``--keep-going`` times the cases anyway, the figures of
    the engines found wrong marked ``!``, and still exits with 1;
    ``--check-only`` stops after the check).
Rounds
    Timing a case, each worker first calibrates a batch: the number of calls
    that lasts about ``--target-time`` seconds.  Then the rounds interleave
    the engines: round ``r`` times one batch of engine A on the case, then
    one of engine B, and so on, the engines' order rotated from round to
    round, so that a slow drift of the machine (another job, the clock)
    touches every engine alike.  An engine's figure for the case is the median
    over rounds of its batch's time per call.  The NumPy reference runs at
    most three rounds.  Before each batch the coordinator waits 50 ms: the
    engine timed just before leaves its thread pool spinning for a moment
    after its last call, and on a machine with few cores those spinning
    threads would steal the next engine's time.
Practical limit
    Beside the figures stands what the machine can do: the FLOP rate of one
    large GEMM (``scipy.linalg.blas.sgemm``, 2048 cubed by default, through
    the BLAS that fastrnn itself calls), at each thread count, and for each
    case the GEMM-only time, its matrix-product FLOPs divided by that rate:
    ``2*T*N*G*H*(I + H)`` for inference (the input and the recurrent
    products, G gates), three times that for a training step (forward, the
    gradient for the inputs and the one for the weights).  The ``of peak``
    column is the GEMM-only time over fastrnn's.

Threads: each case sets its engine's count, ``fastrnn.set_num_threads``,
``torch.set_num_threads`` (one inter-op thread), ONNX Runtime's
``intra_op_num_threads`` (``inter_op_num_threads = 1``), and threadpoolctl
for the reference's NumPy BLAS.

Modes: ``inference`` (torch under ``torch.no_grad``), ``training`` (one
forward and the backward of ``y.sum()``, that is ``dy = 1``, with the
gradients for the input and every weight; for torch ``loss.backward()`` with
parameters and input requiring grad) and ``latency`` (one step of the cell at
``N = 1``, ``I = H = --step-size``, the state given).  ONNX Runtime runs
inference and latency only.
"""

import argparse
import datetime
import importlib
import importlib.metadata
import json
import multiprocessing
import os
import platform
import signal
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Case", "Engine", "Prepared", "Unsupported", "ENGINES", "DEFAULT_SHAPES",
           "QUICK_SHAPES", "make_problem", "compare_outputs", "gemm_peak", "build_cases",
           "main"]

CELLS = ("rnn", "lstm", "gru")
MODES = ("inference", "training", "latency")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELL_TITLES = {"rnn": "RNN (tanh)", "lstm": "LSTM", "gru": "GRU"}

# (T, N, H), I = H
DEFAULT_SHAPES = ((100, 1, 64), (100, 8, 128), (100, 32, 256), (50, 64, 512), (25, 64, 1024))
QUICK_SHAPES = ((100, 1, 64), (25, 16, 128))
STEP_SIZE = 256                     # I = H of the latency cases (N = 1)

DEFAULT_ROUNDS, QUICK_ROUNDS = 7, 3
DEFAULT_TARGET, QUICK_TARGET = 0.1, 0.01        # seconds of calls per round
DEFAULT_GEMM, QUICK_GEMM = 2048, 1024           # size of the peak GEMM
SETTLE_S = 0.05                     # pause before each timed batch
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


def all_cores():
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------
# Cases and problems

@dataclass(frozen=True)
class Case:
    """One timed configuration.

    Attributes
    ----------
    cell : {"rnn", "lstm", "gru"}
    mode : {"inference", "training", "latency"}
    T, N, I, H : int
        Sequence length, batch, input and hidden size (``T = N = 1`` for
        latency).
    threads : int
    dtype : {"float32", "float64"}
    """

    cell: str
    mode: str
    T: int
    N: int
    I: int
    H: int
    threads: int
    dtype: str = "float32"

    @property
    def shape(self):
        """``TxNxH`` (``TxNxIxH`` where ``I != H``; ``step HxH`` for latency)."""
        if self.mode == "latency":
            return f"step {self.I}x{self.H}" if self.I != self.H else f"step {self.H}"
        return (f"{self.T}x{self.N}x{self.H}" if self.I == self.H
                else f"{self.T}x{self.N}x{self.I}x{self.H}")

    @property
    def label(self):
        return f"{self.cell} {self.mode} {self.shape} {self.threads}t"

    @property
    def flops(self):
        """Matrix-product FLOPs: input and recurrent GEMMs, x3 for training."""
        products = 2 * self.T * self.N * GATES[self.cell] * self.H * (self.I + self.H)
        return 3 * products if self.mode == "training" else products


def build_cases(cells, shapes, modes, threads, dtype="float32", step_size=STEP_SIZE):
    """The grid, in the order it runs: cell, mode, threads, shape.

    Parameters
    ----------
    cells : sequence of str
    shapes : sequence of tuple
        ``(T, N, H)`` or ``(T, N, I, H)``.
    modes : sequence of str
    threads : sequence of int
    dtype : str
    step_size : int
        ``I = H`` of the latency cases.

    Returns
    -------
    list of Case
    """
    cases = []
    for cell in cells:
        for mode in modes:
            for n in threads:
                if mode == "latency":
                    cases.append(Case(cell, mode, 1, 1, step_size, step_size, n, dtype))
                    continue
                for shape in shapes:
                    T, N, I, H = shape if len(shape) == 4 else (shape[0], shape[1], shape[2],
                                                                 shape[2])
                    cases.append(Case(cell, mode, T, N, I, H, n, dtype))
    return cases


def make_problem(case, seed=0):
    """Weights and inputs of a case, the same for every engine.

    Weights are uniform in ``±1/sqrt(H)`` as torch initialises them, inputs
    uniform in ``[-1, 1]``, both drawn from ``seed`` and the sizes alone (so
    the 1-thread and all-core cases share them).

    Returns
    -------
    weights : dict of ndarray
        torch.nn's state_dict of a one-layer module: ``weight_ih_l0``
        ``(G*H, I)``, ``weight_hh_l0`` ``(G*H, H)``, ``bias_ih_l0``,
        ``bias_hh_l0`` ``(G*H,)``.  The cells use the same names without
        ``_l0``.
    inputs : dict of ndarray
        ``"x"`` ``(T, N, I)``; for latency also ``"h0"`` (and for the LSTM
        ``"c0"``), ``(1, N, H)``.
    """
    dtype = np.dtype(case.dtype)
    G, I, H = GATES[case.cell], case.I, case.H
    rng = np.random.default_rng([seed, G, I, H])
    k = 1 / np.sqrt(H)
    shapes = {"weight_ih_l0": (G * H, I), "weight_hh_l0": (G * H, H),
              "bias_ih_l0": (G * H,), "bias_hh_l0": (G * H,)}
    weights = {name: rng.uniform(-k, k, shape).astype(dtype) for name, shape in shapes.items()}
    rng = np.random.default_rng([seed, case.T, case.N, I, H, 1])
    inputs = {"x": rng.uniform(-1, 1, (case.T, case.N, I)).astype(dtype)}
    if case.mode == "latency":
        inputs["h0"] = rng.uniform(-0.5, 0.5, (1, case.N, H)).astype(dtype)
        if case.cell == "lstm":
            inputs["c0"] = rng.uniform(-0.5, 0.5, (1, case.N, H)).astype(dtype)
    return weights, inputs


def cell_weights(weights):
    """The layer's weights under the cell classes' names (no ``_l0``)."""
    return {name[:-len("_l0")]: w for name, w in weights.items()}


# ---------------------------------------------------------------------------
# Engines

class Unsupported(Exception):
    """An engine cannot run this case (reported, not an error)."""


@dataclass
class Prepared:
    """A case made ready to run on an engine.

    Attributes
    ----------
    call : callable
        No arguments; one call is what gets timed (an inference, a training
        step, a cell step).
    collect : callable
        Turns what ``call`` returned into a dict of ndarrays for the check:
        ``y``, ``h_n`` (and ``c_n``); in training also ``dx`` and
        ``grad:<name>`` for each weight; for latency ``h`` (and ``c``).
    """

    call: object
    collect: object


class Engine:
    """An implementation to time.  Subclass it to add one.

    Instances live in a worker process: ``load`` imports the library (raising
    ImportError when it is missing), ``prepare`` builds a case at its thread
    count.  Nothing is imported when the class is defined, so the parent can
    read ``modes`` and ``max_rounds`` without loading the library.
    """

    #: the modes it can run
    modes = MODES
    #: at most this many timing rounds (None: as many as asked)
    max_rounds = None

    def load(self):
        """Import the library; return its version string."""
        raise NotImplementedError

    def prepare(self, case, weights, inputs):
        """Build ``case`` from ``make_problem``'s arrays; return a :class:`Prepared`."""
        raise NotImplementedError


def _state_outputs(cell, state, prefix, to_numpy=np.asarray):
    """{"h_n": h, "c_n": c} (``prefix`` "h_n"-style) from a state, tuple for the LSTM."""
    if cell == "lstm":
        h, c = state
        return {prefix[0]: to_numpy(h), prefix[1]: to_numpy(c)}
    return {prefix[0]: to_numpy(state)}


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

    def prepare(self, case, weights, inputs):
        fr = self.fastrnn
        fr.set_num_threads(case.threads)
        dtype = np.dtype(case.dtype)
        extra = {"nonlinearity": "tanh"} if case.cell == "rnn" else {}
        if case.mode == "latency":
            cls = {"rnn": fr.RNNCell, "lstm": fr.LSTMCell, "gru": fr.GRUCell}[case.cell]
            cell = cls(case.I, case.H, **extra, dtype=dtype, seed=0)
            cell.load_state_dict(cell_weights(weights))
            x, state = _step_input(case, inputs)
            return Prepared(lambda: cell(x, state),
                            lambda r: _state_outputs(case.cell, r, ("h", "c")))
        cls = {"rnn": fr.RNN, "lstm": fr.LSTM, "gru": fr.GRU}[case.cell]
        module = cls(case.I, case.H, **extra, dtype=dtype, seed=0)
        module.load_state_dict(weights)
        x = inputs["x"]
        if case.mode == "inference":
            return Prepared(lambda: module(x), lambda r: _layer_outputs(case, *r))
        dy = np.ones((case.T, case.N, case.H), dtype)

        def step():
            y, state, cache = module.forward_train(x)
            dx, _, grads = module.backward(cache, dy)
            return y, state, dx, grads
        return Prepared(step, lambda r: _training_outputs(case, *r))


def _step_input(case, inputs):
    """``x_t`` ``(N, I)`` and the state for a cell call."""
    x = inputs["x"][0]
    if case.cell == "lstm":
        return x, (inputs["h0"][0], inputs["c0"][0])
    return x, inputs["h0"][0]


def _layer_outputs(case, y, state, to_numpy=np.asarray):
    out = {"y": to_numpy(y)}
    out.update(_state_outputs(case.cell, state, ("h_n", "c_n"), to_numpy))
    return out


def _training_outputs(case, y, state, dx, grads, to_numpy=np.asarray):
    out = _layer_outputs(case, y, state, to_numpy)
    out["dx"] = to_numpy(dx)
    out.update({f"grad:{name}": to_numpy(g) for name, g in grads.items()})
    return out


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
        if case.mode == "latency":
            w = cell_weights(weights)
            state = tuple(inputs[k][0] for k in ("h0", "c0") if k in inputs)
            return Prepared(lambda: ref.direction_forward(cell, x, state, w),
                            lambda r: _state_outputs(case.cell, r[1] if case.cell == "lstm"
                                                     else r[1][0], ("h", "c")))
        if case.mode == "inference":
            return Prepared(lambda: ref.forward(cell, x, None, weights),
                            lambda r: _layer_outputs(case, r[0], _unwrap(case, r[1])))
        dy = np.ones((case.T, case.N, case.H), x.dtype)

        def step():
            y, state, cache = ref.forward(cell, x, None, weights)
            dx, _, grads = ref.backward(cache, dy, None)
            return y, _unwrap(case, state), dx, grads
        return Prepared(step, lambda r: _training_outputs(case, *r))


def _unwrap(case, state):
    """The reference's state tuple as the modules return it: ``(h, c)`` or ``h``."""
    return state if case.cell == "lstm" else state[0]


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
            x = tensors["x"][0]
            state = ((tensors["h0"][0], tensors["c0"][0]) if case.cell == "lstm"
                     else tensors["h0"][0])

            def step():
                with torch.no_grad():
                    return cell(x, state)
            return Prepared(step, lambda r: _state_outputs(case.cell, r, ("h", "c"), to_numpy))

        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[case.cell]
        module = cls(case.I, case.H, **extra, dtype=dtype)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        x = tensors["x"]
        if case.mode == "inference":
            def infer():
                with torch.no_grad():
                    return module(x)
            return Prepared(infer, lambda r: _layer_outputs(case, *r, to_numpy=to_numpy))

        x = x.clone().requires_grad_(True)
        params = dict(module.named_parameters())

        def step():
            for p in params.values():
                p.grad = None
            x.grad = None
            y, state = module(x)
            y.sum().backward()
            return y, state, x.grad, {k: p.grad for k, p in params.items()}
        return Prepared(step, lambda r: _training_outputs(case, *r, to_numpy=to_numpy))


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


# ONNX's gate order, as indices into torch's: LSTM i,o,f,c from i,f,g,o;
# GRU z,r,h from r,z,n.
ONNX_GATE_ORDER = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}


def onnx_model(case, weights):
    """A one-node ONNX graph computing ``case`` with ``weights``.

    One ``RNN``/``LSTM``/``GRU`` node, its ``W``, ``R``, ``B`` initializers
    converted from torch's layout (gates reordered, the two biases
    concatenated), ``linear_before_reset=1`` for the GRU as torch.  Inputs:
    ``X`` ``(T, N, I)``, and for latency ``initial_h`` (``initial_c``).
    Outputs: ``Y`` ``(T, 1, N, H)`` (inference only), ``Y_h`` (``Y_c``)
    ``(1, N, H)``.

    Returns
    -------
    onnx.ModelProto
    """
    import onnx
    from onnx import helper, numpy_helper

    order = ONNX_GATE_ORDER[case.cell]

    def reorder(a):
        blocks = np.split(a, GATES[case.cell], axis=0)
        return np.concatenate([blocks[k] for k in order])

    init = {"W": reorder(weights["weight_ih_l0"])[None],
            "R": reorder(weights["weight_hh_l0"])[None],
            "B": np.concatenate([reorder(weights["bias_ih_l0"]),
                                 reorder(weights["bias_hh_l0"])])[None]}
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(case.dtype))
    lstm = case.cell == "lstm"
    graph_inputs = [helper.make_tensor_value_info("X", elem, [case.T, case.N, case.I])]
    node_inputs = ["X", "W", "R", "B"]
    if case.mode == "latency":
        states = ["initial_h", "initial_c"] if lstm else ["initial_h"]
        node_inputs += [""] + states                    # no sequence_lens
        graph_inputs += [helper.make_tensor_value_info(s, elem, [1, case.N, case.H])
                         for s in states]
    outputs = ["Y_h", "Y_c"] if lstm else ["Y_h"]
    graph_outputs = [helper.make_tensor_value_info(s, elem, [1, case.N, case.H])
                     for s in outputs]
    if case.mode == "latency":
        outputs = [""] + outputs                        # no Y
    else:
        outputs = ["Y"] + outputs
        graph_outputs.insert(0, helper.make_tensor_value_info(
            "Y", elem, [case.T, 1, case.N, case.H]))
    attributes = {"hidden_size": case.H}
    if case.cell == "gru":
        attributes["linear_before_reset"] = 1
    node = helper.make_node(case.cell.upper(), node_inputs, outputs, **attributes)
    graph = helper.make_graph([node], f"fastrnn_bench_{case.cell}", graph_inputs,
                              graph_outputs,
                              [numpy_helper.from_array(v, k) for k, v in init.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8            # one that every supported ONNX Runtime reads
    onnx.checker.check_model(model)
    return model


class OnnxRuntimeEngine(Engine):
    """ONNX Runtime's CPU RNN/LSTM/GRU kernels (inference only)."""

    modes = ("inference", "latency")

    def load(self):
        import onnx  # noqa: F401  (builds the graphs)
        import onnxruntime
        self.ort = onnxruntime
        return onnxruntime.__version__

    def prepare(self, case, weights, inputs):
        if case.dtype != "float32":     # its LSTM and GRU: "does not support double yet"
            raise Unsupported("onnxruntime's CPU RNN kernels run float32 only")
        ort = self.ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = case.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        model = onnx_model(case, weights).SerializeToString()
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
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


#: name -> Engine subclass; ``--engines`` also takes ``module:Class``.
ENGINES = {
    "fastrnn": FastrnnEngine,
    "reference": ReferenceEngine,
    "torch": TorchEngine,
    "onnxruntime": OnnxRuntimeEngine,
    "fastrnn.torch": FastrnnTorchEngine,
}


def engine_class(name):
    """The Engine subclass for a name in ENGINES or a ``module:Class`` path."""
    if name in ENGINES:
        return ENGINES[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if not (isinstance(cls, type) and issubclass(cls, Engine)):
            raise TypeError(f"engine {name!r}: expected an Engine subclass, got {cls!r}")
        return cls
    raise ValueError(f"engine {name!r}: expected one of {list(ENGINES)} or module:Class")


# ---------------------------------------------------------------------------
# The worker process and the parent's handle on it

def _calibrate(call, target):
    """Warm up, then the number of calls that lasts about ``target`` seconds."""
    start = time.perf_counter()
    call()                                  # first call: allocations, lazy setup
    first = time.perf_counter() - start
    best, spent, calls = first, first, 0
    while calls < 3 and spent < target:
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return max(1, min(10 ** 6, round(target / max(best, 1e-9))))


def _worker_main(engine_name, conn):
    """Serve one engine's commands until told to stop.

    Replies: ``("ready", version)`` or ``("unavailable", reason)`` first;
    then per command ``("ok", value)``, ``("unsupported", reason)`` or
    ``("error", traceback)``.  Commands: ``("prepare", case, weights, inputs,
    outputs_wanted, target)`` -> ``{"outputs": dict or None, "reps": int}``;
    ``("time", reps)`` -> seconds per call; ``("release",)``; ``("stop",)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C: the parent stops us
    try:
        engine = engine_class(engine_name)()
        version = engine.load()
    except Exception as e:                  # not installed, or broken: skipped
        conn.send(("unavailable", f"{type(e).__name__}: {e}"))
        conn.close()
        return
    conn.send(("ready", version))
    prepared = None
    while True:
        try:
            command, *args = conn.recv()
        except EOFError:
            return
        if command == "stop":
            conn.close()
            return
        try:
            if command == "prepare":
                case, weights, inputs, outputs_wanted, target = args
                prepared = None             # free the last case's arrays first
                prepared = engine.prepare(case, weights, inputs)
                outputs = None
                if outputs_wanted:
                    outputs = {k: np.array(v) for k, v in
                               prepared.collect(prepared.call()).items()}
                reps = _calibrate(prepared.call, target) if target else None
                reply = {"outputs": outputs, "reps": reps}
            elif command == "time":
                (reps,) = args
                call = prepared.call
                start = time.perf_counter()
                for _ in range(reps):
                    call()
                reply = (time.perf_counter() - start) / reps
            elif command == "release":
                prepared = None
                reply = None
            else:
                raise ValueError(f"unknown command {command!r}")
            conn.send(("ok", reply))
        except Unsupported as e:
            conn.send(("unsupported", str(e)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class EngineError(Exception):
    """An engine raised, or its worker died."""


class Worker:
    """The parent's end of one engine's worker process."""

    def __init__(self, name, context):
        self.name = name
        self.cls = engine_class(name)
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(name, child),
                                       name=f"fastrnn-bench-{name}", daemon=True)
        self.process.start()
        child.close()
        self.status, self.detail, self.dead = None, None, False

    def wait_ready(self):
        """Wait for the worker to load its library; return (status, version or reason)."""
        try:
            self.status, self.detail = self.conn.recv()
        except EOFError:
            self.status, self.detail = "unavailable", "the worker process died while loading"
        if self.status != "ready":
            self.stop()
        return self.status, self.detail

    def request(self, *command):
        """Send a command, return its value; raise Unsupported or EngineError."""
        if self.dead:
            raise EngineError(f"{self.name}: its worker process died earlier")
        try:
            self.conn.send(command)
            status, value = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self.dead = True
            code = self.process.exitcode
            raise EngineError(f"{self.name}: the worker process died (exit code {code})")
        if status == "unsupported":
            raise Unsupported(value)
        if status == "error":
            raise EngineError(f"{self.name} raised:\n{value}")
        return value

    def stop(self):
        if self.process.is_alive() and not self.dead and self.status == "ready":
            try:
                self.conn.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()


# ---------------------------------------------------------------------------
# Numerical check

def compare_outputs(outputs, expected, tolerance):
    """Compare one engine's results with the baseline's.

    Parameters
    ----------
    outputs, expected : dict of ndarray
        From ``Prepared.collect``; only keys of ``expected`` are compared,
        and each must be present in ``outputs`` with the same shape.
    tolerance : float
        ``|a - b| <= tolerance * (|b| + max|b|)`` elementwise must hold.

    Returns
    -------
    dict
        ``ok`` (bool), ``max_error`` (largest ``|a - b| / max|b|`` over the
        arrays), ``worst`` (its key), ``failed`` (the keys that fail) and
        ``problems`` (a message for each).
    """
    result = {"ok": True, "max_error": 0.0, "worst": None, "failed": [], "problems": []}
    for key, b in expected.items():
        b = np.asarray(b, dtype=np.float64)
        if key not in outputs:
            result["failed"].append(key)
            result["problems"].append(f"{key}: missing")
            continue
        a = np.asarray(outputs[key], dtype=np.float64)
        if a.shape != b.shape:
            result["failed"].append(key)
            result["problems"].append(f"{key}: shape {a.shape}, expected {b.shape}")
            continue
        if a.size == 0:
            continue
        scale = float(np.max(np.abs(b))) if np.all(np.isfinite(b)) else 1.0
        diff = np.abs(a - b)
        bad = ~(diff <= tolerance * (np.abs(b) + scale))     # NaN counts as bad
        error = float(np.max(diff)) / scale if scale > 0 else float(np.max(diff))
        if not np.isfinite(error):
            error = float("inf")
        if error >= result["max_error"]:
            result["max_error"], result["worst"] = error, key
        if bad.any():
            result["failed"].append(key)
            where = np.unravel_index(np.argmax(np.where(np.isnan(diff), np.inf, diff)), diff.shape)
            result["problems"].append(
                f"{key}: {int(bad.sum())} of {bad.size} values off, largest error "
                f"{error:.2e} of max|{key}| = {scale:.3g} (at {tuple(map(int, where))}: "
                f"{a[where]:.6g}, expected {b[where]:.6g})")
    result["ok"] = not result["problems"]
    return result


# ---------------------------------------------------------------------------
# The machine

def gemm_peak(threads, size=DEFAULT_GEMM, dtype="float32", repeats=3):
    """FLOP rate of one ``size``-cubed GEMM through SciPy's BLAS.

    Parameters
    ----------
    threads : sequence of int
        Thread counts to measure at (set with threadpoolctl).
    size : int
    dtype : {"float32", "float64"}
        ``sgemm`` or ``dgemm``.
    repeats : int
        The best of this many calls, after one warm-up call.

    Returns
    -------
    dict
        thread count -> FLOP/s.
    """
    from scipy.linalg import blas
    from threadpoolctl import threadpool_limits

    gemm = blas.sgemm if dtype == "float32" else blas.dgemm
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((size, size)).astype(dtype))
    b = np.asfortranarray(rng.standard_normal((size, size)).astype(dtype))
    rates = {}
    for n in threads:
        with threadpool_limits(limits=n, user_api="blas"):
            gemm(1.0, a, b)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                gemm(1.0, a, b)
                best = min(best, time.perf_counter() - start)
        rates[n] = 2.0 * size ** 3 / best
    return rates


def _load_average():
    """The 1, 5 and 15 minute load averages (other jobs make figures noisy), or None."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def machine_info():
    """CPU, cores, platform and library versions (without importing torch or onnx)."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", platform.machine()):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    versions = {}
    for package in ("fastrnn", "numpy", "scipy", "threadpoolctl", "torch", "onnxruntime",
                    "onnx"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    info = {"cpu": cpu, "cores": all_cores(), "logical_cpus": os.cpu_count(),
            "simd": [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16",
                                 "amx_tile") if f in flags],
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions, "load_average": _load_average()}
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                                 "threading_layer", "filepath")}
                        for lib in threadpool_info() if lib.get("user_api") == "blas"]
    except ImportError:
        pass
    return info


# ---------------------------------------------------------------------------
# Progress on stderr

class Progress:
    """A plain-text progress bar on stderr: redrawn in place on a terminal,
    a line per tenth elsewhere."""

    def __init__(self, total, stream=None, width=30):
        self.total, self.done, self.width = max(total, 1), 0, width
        self.stream = sys.stderr if stream is None else stream
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start, self.label, self.last_tenth = time.perf_counter(), "", -1

    def update(self, label=None, n=1):
        self.done += n
        if label is not None:
            self.label = label
        self._draw()

    def _line(self):
        fraction = min(self.done / self.total, 1.0)
        filled = int(self.width * fraction)
        elapsed = time.perf_counter() - self.start
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:3.0f}% "
                f"{elapsed:5.0f}s  {self.label}")

    def _draw(self):
        if self.tty:
            self.stream.write("\r" + self._line()[:119].ljust(119))
            self.stream.flush()
        else:
            tenth = int(10 * self.done / self.total)
            if tenth != self.last_tenth:
                self.last_tenth = tenth
                self.stream.write(self._line() + "\n")
                self.stream.flush()

    def write(self, message):
        """Print a message above the bar."""
        if self.tty:
            self.stream.write("\r" + " " * 119 + "\r")
        self.stream.write(message.rstrip("\n") + "\n")
        if self.tty:
            self._draw()
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\r" + " " * 119 + "\r")
            self.stream.flush()


# ---------------------------------------------------------------------------
# Running the grid

def _run(cases, workers, args, progress, gemm_rates):
    """Check every case, then time every case; return (records, failed)."""
    tolerance = TOLERANCE[args.dtype] if args.tolerance is None else args.tolerance
    records, failed = [], False
    for case in cases:
        rate = gemm_rates.get(case.threads)
        record = {"case": asdict(case), "shape": case.shape, "flops": case.flops,
                  "gemm_only_s": case.flops / rate if rate else None, "engines": {}}
        records.append(record)
        failed |= _check_case(case, record, workers, args.seed, tolerance, progress)
    mismatched = any(e["status"] == "mismatch" for r in records for e in r["engines"].values())
    if mismatched and not args.check_only and not args.keep_going:
        progress.write("numerical check FAILED: nothing timed (--keep-going times anyway)")
    if args.check_only or (mismatched and not args.keep_going):
        return records, failed
    for case, record in zip(cases, records):
        failed |= _time_case(case, record, workers, args, progress)
    return records, failed


def _check_case(case, record, workers, seed, tolerance, progress):
    """Run a case once on every engine and compare; return True on a failure.

    Fills ``record["engines"][name]`` with ``status`` ("ok", "n/a",
    "error" or "mismatch"), ``reason`` and ``check``.
    """
    weights, inputs = make_problem(case, seed)
    outputs, failed = {}, False
    for worker in workers:
        e = record["engines"][worker.name] = {"status": "ok"}
        progress.update(f"check {worker.name}: {case.label}")
        if case.mode not in worker.cls.modes:
            e.update(status="n/a", reason=f"{worker.name} does not run {case.mode}")
            continue
        try:
            outputs[worker.name] = worker.request("prepare", case, weights, inputs,
                                                  True, 0)["outputs"]
            worker.request("release")
        except Unsupported as exc:
            e.update(status="n/a", reason=str(exc))
        except EngineError as exc:
            e.update(status="error", reason=str(exc))
            failed = True
            progress.write(f"ERROR {case.label}: {exc}")
    order = ["fastrnn", "reference"] + [w.name for w in workers]
    baseline = next((name for name in order if name in outputs), None)
    for name, out in outputs.items():
        e = record["engines"][name]
        if name == baseline:
            e["check"] = {"baseline": True}
            continue
        e["check"] = compare_outputs(out, outputs[baseline], tolerance)
        e["check"].update(against=baseline, tolerance=tolerance)
        if not e["check"]["ok"]:
            e["status"] = "mismatch"
            failed = True
    _report_mismatches(case, record, outputs, baseline, tolerance, progress)
    return failed


def _time_case(case, record, workers, args, progress):
    """Time a case: rounds interleaving the engines, the order rotated each
    round; store ``reps``, ``rounds_s`` and ``median_s``.  Return True on an
    error."""
    start = time.perf_counter()
    weights, inputs = make_problem(case, args.seed)
    ready, failed = [], False

    def fail(e, exc):
        nonlocal failed
        e.update(status="error", reason=str(exc))
        failed = True
        progress.write(f"ERROR {case.label}: {exc}")

    for worker in workers:
        e = record["engines"][worker.name]
        if e["status"] not in ("ok", "mismatch"):
            progress.update(n=args.rounds)
            continue
        try:
            e["reps"] = worker.request("prepare", case, weights, inputs, False,
                                       args.target_time)["reps"]
            e["rounds_s"] = []
            ready.append(worker)
        except (Unsupported, EngineError) as exc:
            fail(e, exc)
            progress.update(n=args.rounds)
    for r in range(args.rounds):
        for k in range(len(ready)):
            worker = ready[(k + r) % len(ready)]
            e = record["engines"][worker.name]
            progress.update(f"time  {case.label} round {r + 1}/{args.rounds}")
            limit = worker.cls.max_rounds
            if e["status"] == "error" or (limit is not None and r >= limit):
                continue
            time.sleep(SETTLE_S)            # the last engine's thread pool goes idle
            try:
                e["rounds_s"].append(worker.request("time", e["reps"]))
            except EngineError as exc:
                fail(e, exc)
    for worker in ready:
        e = record["engines"][worker.name]
        if e["rounds_s"]:
            e["median_s"] = statistics.median(e["rounds_s"])
        try:
            worker.request("release")
        except EngineError:
            pass
    record["timing_wall_s"] = time.perf_counter() - start
    return failed


def _agreement_groups(outputs, tolerance):
    """Engines grouped by agreement, each against its group's first engine."""
    groups = []
    for name, out in outputs.items():
        for group in groups:
            if compare_outputs(out, outputs[group[0]], tolerance)["ok"]:
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def _report_mismatches(case, record, outputs, baseline, tolerance, progress):
    """Print the engines that disagree with the baseline on a case, and which
    engines agree with which (``record["agreement"]``): where the NumPy
    reference stands tells who is wrong (``record["suspects"]``)."""
    failing = [n for n, e in record["engines"].items() if e["status"] == "mismatch"]
    if not failing:
        return
    lines = [f"MISMATCH {case.label}: against {baseline}, tolerance {tolerance:g}"]
    for name in failing:
        check = record["engines"][name]["check"]
        problems, others = check["problems"], check["failed"][1:]
        lines.append(f"    {name}: {problems[0]}"
                     + (f"; also off: {', '.join(others)}" if others else ""))
    groups = record["agreement"] = _agreement_groups(outputs, tolerance)
    oracle = next((g for g in groups if "reference" in g), None)
    # The suspects: those apart from the reference, or those apart from the baseline.
    record["suspects"] = ([n for n in outputs if n not in oracle] if oracle
                          else failing)
    if len(outputs) > 2:
        lines.append("    agreeing: " + " | ".join(", ".join(g) for g in groups)
                     + (" (the reference sides with "
                        + ", ".join(n for n in oracle if n != "reference") + ")"
                        if oracle and len(oracle) > 1 else ""))
    if oracle:
        lines.append(f"    wrong, by the reference: {', '.join(record['suspects'])}")
    progress.write("\n".join(lines))


# ---------------------------------------------------------------------------
# Reporting

def _fmt(value):
    """Three significant figures (an exponent only below 0.001)."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ratio(value):
    return f"{value:.0f}x" if value >= 10 else f"{value:.2f}x"


def _base_engine(records, names):
    """fastrnn when it was measured, else the first engine with a figure."""
    measured = [n for n in names if any("median_s" in r["engines"].get(n, {}) for r in records)]
    if "fastrnn" in measured:
        return "fastrnn"
    return measured[0] if measured else None


def format_tables(records, names, gemm_rates):
    """The text report: one table per cell, mode and thread count.

    Parameters
    ----------
    records : list of dict
        From the run (the ``cases`` of the JSON).
    names : list of str
        The engines that ran, in column order.
    gemm_rates : dict
        thread count -> FLOP/s.

    Returns
    -------
    str
    """
    base = _base_engine(records, names)
    if base is None:
        return "nothing was timed\n"
    peers = [n for n in names if n != base]
    lines = []
    if gemm_rates:
        lines.append("GEMM peak (one large GEMM through SciPy's BLAS): "
                     + ", ".join(f"{n} thread{'s' if n > 1 else ''} {rate / 1e9:.1f} GFLOP/s"
                                 for n, rate in sorted(gemm_rates.items())))
    lines.append(f"Medians over rounds; a peer's (x) is its time / {base}'s "
                 f"(> 1: {base} is faster); 'of peak' = GEMM-only time / {base}'s; "
                 "! = wrong by the numerical check.")
    groups = {}
    for r in records:
        c = r["case"]
        groups.setdefault((c["cell"], c["mode"], c["threads"]), []).append(r)
    for (cell, mode, threads), group in groups.items():
        unit, scale = ("us", 1e6) if mode == "latency" else ("ms", 1e3)
        lines.append("")
        lines.append(f"{CELL_TITLES.get(cell, cell)}, {mode}, {threads} "
                     f"thread{'s' if threads > 1 else ''} ({unit} per call)")
        header = ["shape", "GEMM-only", base, "of peak"] + peers
        rows = [header]
        for r in group:
            cells = [r["shape"]]
            gemm = r["gemm_only_s"]
            cells.append(_fmt(gemm * scale) if gemm else "-")
            b = r["engines"].get(base, {})
            base_time = b.get("median_s")
            suspects = r.get("suspects", [])
            cells.append(_cell_text(b, scale, base in suspects))
            cells.append(f"{100 * gemm / base_time:.0f}%" if gemm and base_time else "-")
            for name in peers:
                e = r["engines"].get(name, {})
                text = _cell_text(e, scale, name in suspects)
                if "median_s" in e and base_time:
                    text += f" ({_ratio(e['median_s'] / base_time)})"
                cells.append(text)
            rows.append(cells)
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            lines.append("  " + "  ".join(text.ljust(w) if i == 0 else text.rjust(w)
                                          for i, (text, w) in enumerate(zip(row, widths))))
    return "\n".join(lines) + "\n"


def _cell_text(e, scale, suspect):
    if "median_s" in e:
        return _fmt(e["median_s"] * scale) + ("!" if suspect else "")
    return {"n/a": "n/a", "error": "ERROR", "mismatch": "MISMATCH",
            "skipped": "skipped"}.get(e.get("status"), "-")


def plot(result, path):
    """Draw the run as one figure (needs matplotlib).

    One column per cell; rows: time per call for each engine over the shapes
    in inference (the single cell step as a lone point at the right) and in
    training, log scale, one line style per thread count (filled markers for
    one thread), the GEMM-only time in grey; then fastrnn's speedup against
    the fastest peer (figures of engines the numerical check found wrong
    left out).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    records, names = result["cases"], result["engine_order"]
    base = _base_engine(records, names)
    cells = [c for c in CELLS if any(r["case"]["cell"] == c for r in records)]
    threads = sorted({r["case"]["threads"] for r in records})
    ran = {r["case"]["mode"] for r in records}
    time_modes = [m for m in ("inference", "training") if m in ran]
    if not time_modes:                          # latency only: on the first row
        time_modes = ["inference"]
    shapes = list(dict.fromkeys(r["shape"] for r in records if r["case"]["mode"] != "latency"))
    steps = list(dict.fromkeys(r["shape"] for r in records if r["case"]["mode"] == "latency"))
    position = {label: x for x, label in enumerate(shapes + steps)}
    styles = ["-", "--", ":", "-."]
    colours = {name: f"C{i}" for i, name in enumerate(names)}
    mode_colours = {"inference": "C0", "training": "C1", "latency": "C2"}

    def select(cell, mode, n_threads):
        return [r for r in records if r["case"]["cell"] == cell and r["case"]["mode"] == mode
                and r["case"]["threads"] == n_threads]

    def median(r, name, checked=False):
        if checked and name in r.get("suspects", []):
            return None
        return r["engines"].get(name, {}).get("median_s")

    def draw(ax, rows, values, k, lone=False, *, colour, marker="o", label=None):
        points = [(position[r["shape"]], v) for r, v in zip(rows, values) if v]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, "" if lone else styles[k % len(styles)], marker=marker,
                    color=colour, markerfacecolor=colour if k == 0 else "none", label=label)

    n_rows = len(time_modes) + 1
    fig, axes = plt.subplots(n_rows, len(cells), figsize=(5 * len(cells), 3.7 * n_rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_yscale("log")        # before the formatters: setting a scale resets them
    for j, cell in enumerate(cells):
        for i, mode in enumerate(time_modes):
            ax = axes[i, j]
            for k, n_threads in enumerate(threads):
                for rows, lone in ((select(cell, mode, n_threads), False),
                                   (select(cell, "latency", n_threads) if i == 0 else [], True)):
                    for name in names:
                        times = [(median(r, name) or 0) * 1e3 for r in rows]
                        draw(ax, rows, times, k, lone, colour=colours[name],
                             label=None if lone else f"{name}, {n_threads}t")
                    gemm = [(r["gemm_only_s"] or 0) * 1e3 for r in rows]
                    draw(ax, rows, gemm, k, lone, colour="0.6", marker=".",
                         label=None if lone else f"GEMM-only, {n_threads}t")
            ax.set_title(f"{CELL_TITLES[cell]}: {mode}"
                         + (" (and one cell step)" if i == 0 and steps else ""))
            ax.set_ylabel("ms per call")
            ticks = list(position) if i == 0 else shapes
            ax.set_xticks(range(len(ticks)), ticks, rotation=30)
        ax = axes[-1, j]
        for k, n_threads in enumerate(threads):
            for mode, marker in (("inference", "o"), ("training", "s"), ("latency", "^")):
                rows = select(cell, mode, n_threads)
                speedups = []
                for r in rows:
                    own = median(r, base, checked=True)
                    # fastrnn.torch runs fastrnn's own kernels: not a peer
                    peers = [median(r, n, checked=True) for n in names
                             if n != base and not n.startswith("fastrnn")]
                    peers = [t for t in peers if t]
                    speedups.append(min(peers) / own if own and peers else None)
                draw(ax, rows, speedups, k, mode == "latency", colour=mode_colours[mode],
                     marker=marker, label=f"{mode}, {n_threads}t")
        ax.axhline(1.0, color="k", linewidth=0.8)
        ax.set_title(f"{CELL_TITLES[cell]}: {base}'s speedup vs the fastest peer")
        ax.set_ylabel(f"fastest peer's time / {base}'s")
        ax.set_xticks(range(len(position)), list(position), rotation=30)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(      # label 2x and 5x only
            lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.tick_params(axis="y", which="minor", labelsize="x-small")
    for ax in axes.flat:
        ax.grid(True, which="both", alpha=0.3)
    for row in axes:
        if row[-1].get_legend_handles_labels()[0]:
            row[-1].legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    machine = result["machine"]
    fig.suptitle(f"fastrnn bench, {result['config']['dtype']}: {machine['cpu']}, "
                 f"{machine['cores']} cores, {result['date'][:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------
# Command line

def _parse_list(text, kind=str):
    return [kind(item.strip()) for item in text.split(",") if item.strip()]


def _parse_shape(text):
    parts = text.lower().split("x")
    if len(parts) not in (3, 4) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected TxNxH or TxNxIxH, "
                                         "positive integers")
    return tuple(int(p) for p in parts)


def parse_args(argv=None):
    """The command line, quick defaults filled in."""
    p = argparse.ArgumentParser(
        prog="python -m fastrnn.bench",
        description="Time fastrnn against the NumPy reference, PyTorch and ONNX Runtime "
                    "(each when installed), after checking that they agree.")
    p.add_argument("--quick", action="store_true",
                   help="a reduced grid, few and short rounds: well under a minute")
    p.add_argument("--cells", type=lambda s: _parse_list(s), default=list(CELLS),
                   help="comma-separated: rnn,lstm,gru (default all)")
    p.add_argument("--shapes", type=lambda s: [_parse_shape(x) for x in _parse_list(s)],
                   help="comma-separated TxNxH (I = H) or TxNxIxH (default: "
                        + ",".join("x".join(map(str, s)) for s in DEFAULT_SHAPES) + ")")
    p.add_argument("--modes", type=lambda s: _parse_list(s), default=list(MODES),
                   help="comma-separated: inference,training,latency (default all)")
    p.add_argument("--threads", type=lambda s: _parse_list(s, int),
                   help=f"comma-separated thread counts (default 1,{all_cores()})")
    p.add_argument("--engines", type=lambda s: _parse_list(s), default=list(ENGINES),
                   help="comma-separated, from " + ",".join(ENGINES)
                        + " or module:Class (default all; missing ones are skipped)")
    p.add_argument("--dtype", choices=sorted(TOLERANCE), default="float32")
    p.add_argument("--rounds", type=int, help=f"timing rounds (default {DEFAULT_ROUNDS}, "
                                              f"quick {QUICK_ROUNDS})")
    p.add_argument("--target-time", type=float,
                   help=f"seconds of calls per engine per round (default {DEFAULT_TARGET}, "
                        f"quick {QUICK_TARGET})")
    p.add_argument("--step-size", type=int, default=STEP_SIZE,
                   help=f"I = H of the single-step latency cases (default {STEP_SIZE})")
    p.add_argument("--gemm-size", type=int,
                   help=f"size of the peak GEMM (default {DEFAULT_GEMM}, quick {QUICK_GEMM}; "
                        "0 skips it)")
    p.add_argument("--seed", type=int, default=0, help="of weights and inputs")
    p.add_argument("--tolerance", type=float,
                   help="of the numerical check (default 1e-4 float32, 1e-9 float64)")
    p.add_argument("--keep-going", action="store_true",
                   help="time the cases even when the numerical check fails")
    p.add_argument("--check-only", action="store_true", help="the numerical check, no timing")
    p.add_argument("--json", metavar="FILE", help="write every round, the medians and the "
                                                  "machine's description")
    p.add_argument("--plot", metavar="FILE", help="draw a figure (needs matplotlib)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.shapes is None:
        args.shapes = list(QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    if args.threads is None:
        args.threads = sorted({1, all_cores()})
    args.modes = [m for m in MODES if m in args.modes] + [m for m in args.modes
                                                          if m not in MODES]
    if args.rounds is None:
        args.rounds = QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS
    if args.target_time is None:
        args.target_time = QUICK_TARGET if args.quick else DEFAULT_TARGET
    if args.gemm_size is None:
        args.gemm_size = QUICK_GEMM if args.quick else DEFAULT_GEMM
    for what, values, allowed in (("--cells", args.cells, CELLS), ("--modes", args.modes, MODES)):
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            p.error(f"{what}: expected names among {','.join(allowed)}, got {','.join(values)}")
    if not args.threads or min(args.threads) < 1:
        p.error(f"--threads: expected integers >= 1, got {args.threads}")
    if args.rounds < 1 or args.target_time < 0 or args.step_size < 1:
        p.error("--rounds and --step-size must be >= 1, --target-time >= 0")
    for name in args.engines:
        try:
            engine_class(name)
        except Exception as e:
            p.error(f"--engines: {e}")
    return args


def main(argv=None):
    """Run the benchmark; return the exit status (0, or 1 after a failed check or an error).

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``); see ``--help``.
    """
    t0 = time.perf_counter()
    args = parse_args(argv)
    cases = build_cases(args.cells, args.shapes, args.modes, args.threads, args.dtype,
                        args.step_size)
    machine = machine_info()
    print(f"fastrnn bench: {machine['cpu']}, {machine['cores']} cores, {args.dtype}, "
          f"{len(cases)} cases, {args.rounds} round{'s' if args.rounds > 1 else ''} "
          f"of ~{args.target_time:g} s",
          file=sys.stderr)
    load = machine["load_average"]
    if load and load[0] > 0.5:
        print(f"note: load average {load[0]:.2f} before starting; other jobs on this machine "
              "make the figures noisy (the 1-minute load is in the JSON, before and after)",
              file=sys.stderr)

    gemm_rates = {}
    if args.gemm_size:
        print(f"measuring the GEMM peak ({args.gemm_size}^3) ...", file=sys.stderr)
        gemm_rates = gemm_peak(sorted(set(args.threads)), args.gemm_size, args.dtype)

    context = multiprocessing.get_context("spawn")
    started = [Worker(name, context) for name in dict.fromkeys(args.engines)]
    engines, workers = {}, []
    for worker in started:
        status, detail = worker.wait_ready()
        if status == "ready":
            engines[worker.name] = {"status": "ready", "version": detail}
            workers.append(worker)
        else:
            engines[worker.name] = {"status": "skipped", "reason": detail}
            print(f"skipped {worker.name}: {detail}", file=sys.stderr)

    progress = Progress(len(cases) * len(workers) * (1 + args.rounds))
    try:
        records, failed = _run(cases, workers, args, progress, gemm_rates)
    finally:
        progress.close()
        for worker in workers:
            worker.stop()

    names = [w.name for w in workers]
    print(format_tables(records, names, gemm_rates))
    checks = [(r, name, e["check"]) for r in records for name, e in r["engines"].items()
              if e.get("check", {}).get("against")]
    if checks:
        r, name, worst = max(checks, key=lambda t: t[2]["max_error"])
        bad = sum(not c["ok"] for _, _, c in checks)
        print(f"numerical check: {len(checks)} comparisons, "
              + (f"{bad} FAILED" if bad else "all within tolerance")
              + f"; largest error {worst['max_error']:.1e} of the array's max "
              f"({name} vs {worst['against']}, {r['case']['cell']} {r['case']['mode']} "
              f"{r['shape']}, {worst['worst']})")
    for name, e in engines.items():
        if e["status"] == "skipped":
            print(f"skipped {name}: {e['reason']}")

    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "command": [sys.executable, "-m", "fastrnn.bench"] + args.argv,
              "machine": machine,
              "config": {k: v for k, v in vars(args).items() if k != "argv"},
              "gemm": {"size": args.gemm_size, "dtype": args.dtype,
                       "flops_per_s": {str(n): rate for n, rate in gemm_rates.items()}},
              "engines": engines, "engine_order": names, "cases": records,
              "load_average_after": _load_average(), "elapsed_s": time.perf_counter() - t0,
              "ok": not failed}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        print(f"wrote {args.json}")
    if args.plot:
        try:
            plot(result, args.plot)
            print(f"wrote {args.plot}")
        except ImportError:
            print(f"--plot: matplotlib is not installed (pip install matplotlib); "
                  f"{args.plot} not written", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
