"""The grid: what a case is, the named grids, and the weights and inputs of a case.

Every engine receives the same arrays, made here from ``--seed`` and the
case's sizes alone, in ``torch.nn``'s state_dict layout.
"""

import os
from dataclasses import dataclass

import numpy as np

CELLS = ("rnn", "lstm", "gru")
MODES = ("inference", "training", "latency")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELL_TITLES = {"rnn": "RNN (tanh)", "lstm": "LSTM", "gru": "GRU"}

# (T, N, H), I = H
DEFAULT_SHAPES = ((100, 1, 64), (100, 8, 128), (100, 32, 256), (50, 64, 512), (25, 64, 1024))
QUICK_SHAPES = ((100, 1, 64), (25, 16, 128))
# Serving: short sequences of a few rows through weights too large for the cache.
SERVING_SHAPES = tuple((25, N, H) for H in (256, 512, 1024, 2048) for N in (1, 4, 8))
QUICK_SERVING_SHAPES = ((25, 1, 256), (25, 8, 1024))
STEP_SIZE = 256                     # I = H of the latency cases (N = 1)

# The precisions of an engine's weights (``--precision``): the reduced ones run
# on float32 cases, beside the float32 engines, their error measured against them.
PRECISIONS = ("float32", "bfloat16", "int8")
REDUCED_PRECISIONS = ("bfloat16", "int8")


@dataclass(frozen=True)
class Grid:
    """A named set of cases: the defaults of ``--cells``, ``--modes`` and ``--shapes``.

    Attributes
    ----------
    cells : tuple of str
    modes : tuple of str
    shapes : tuple of tuple
        ``(T, N, H)`` or ``(T, N, I, H)``.
    quick_shapes : tuple of tuple
        The shapes under ``--quick``.
    description : str
        One line for ``--help``.
    """

    cells: tuple
    modes: tuple
    shapes: tuple
    quick_shapes: tuple
    description: str


#: ``--grid`` name -> Grid.
GRIDS = {
    "default": Grid(CELLS, MODES, DEFAULT_SHAPES, QUICK_SHAPES,
                    "RNN, LSTM, GRU: inference, training, one step; TxNxH 100x1x64 to 25x64x1024"),
    "serving": Grid(("lstm", "gru"), ("inference",), SERVING_SHAPES, QUICK_SERVING_SHAPES,
                    "LSTM and GRU inference, T = 25, batch 1, 4, 8, I = H 256 to 2048"),
}


def all_cores():
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


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
