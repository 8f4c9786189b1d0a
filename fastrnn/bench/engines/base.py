"""What an engine is: the class to subclass, what it hands back, and the
helpers that turn an engine's results into the dicts the numerical check reads."""

from dataclasses import dataclass

import numpy as np

from fastrnn.bench.cases import MODES


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
    read ``modes``, ``max_rounds`` and ``precision`` without loading the
    library.
    """

    #: the modes it can run
    modes = MODES
    #: at most this many timing rounds (None: as many as asked)
    max_rounds = None
    #: the precision of the weights it computes with: None for the case's own
    #: dtype (float32 or float64, checked at ``--tolerance``), or one of
    #: ``REDUCED_PRECISIONS`` ("bfloat16", "int8"): such an engine runs under
    #: ``--precision`` of that name, on float32 cases, and its error against
    #: the float32 baseline is reported beside its time.
    precision = None

    def load(self):
        """Import the library; return its version string."""
        raise NotImplementedError

    def prepare(self, case, weights, inputs):
        """Build ``case`` from ``make_problem``'s arrays; return a :class:`Prepared`."""
        raise NotImplementedError


def state_outputs(cell, state, prefix, to_numpy=np.asarray):
    """``{"h_n": h, "c_n": c}`` (names from ``prefix``) from a state, a tuple for the LSTM."""
    if cell == "lstm":
        h, c = state
        return {prefix[0]: to_numpy(h), prefix[1]: to_numpy(c)}
    return {prefix[0]: to_numpy(state)}


def layer_outputs(case, y, state, to_numpy=np.asarray):
    """``y``, ``h_n`` (and ``c_n``) of a layer call."""
    out = {"y": to_numpy(y)}
    out.update(state_outputs(case.cell, state, ("h_n", "c_n"), to_numpy))
    return out


def training_outputs(case, y, state, dx, grads, to_numpy=np.asarray):
    """The layer's outputs, ``dx`` and ``grad:<name>`` for each weight."""
    out = layer_outputs(case, y, state, to_numpy)
    out["dx"] = to_numpy(dx)
    out.update({f"grad:{name}": to_numpy(g) for name, g in grads.items()})
    return out


def step_input(case, inputs):
    """``x_t`` ``(N, I)`` and the state for a cell call."""
    x = inputs["x"][0]
    if case.cell == "lstm":
        return x, (inputs["h0"][0], inputs["c0"][0])
    return x, inputs["h0"][0]
