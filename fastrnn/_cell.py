"""What a recurrent cell computes: its kind, its activations and its options.

One frozen description shared by the reference, the kernels, the modules and
the ONNX bridge, so that every layer of fastrnn names a cell the same way.
"""

from dataclasses import dataclass
from functools import lru_cache

# The weights of one layer direction, under the names of torch's state_dict
# (without the _l{k}{suffix}); weight_hr is the LSTM projection,
# weight_peephole the LSTM peepholes (gates i, f, o).
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_peephole")


def suffix(direction):
    """The state_dict suffix of a direction: ``""`` or ``"_reverse"``."""
    return "_reverse" if direction else ""


def layer_weights(params, layer, n_dirs):
    """The weights of one layer, a dict per direction, from state_dict-named ``params``.

    Parameters
    ----------
    params : mapping
        torch's names: ``weight_ih_l{k}{suffix}``, ``weight_hh_l{k}{suffix}``,
        ``bias_ih_l{k}{suffix}``, ``bias_hh_l{k}{suffix}``,
        ``weight_hr_l{k}{suffix}``, ``weight_peephole_l{k}{suffix}``, suffix
        ``""`` or ``"_reverse"``; biases, projections and peepholes may be
        absent.
    layer : int
    n_dirs : int

    Returns
    -------
    list of dict
        ``n_dirs`` dicts keyed by ``fastrnn._cell.WEIGHT_NAMES``, None where
        absent: what ``layer_forward`` and ``layer_backward`` take.
    """
    return [{name: params.get(key) for name, key in _weight_keys(layer, d)}
            for d in range(n_dirs)]


@lru_cache(maxsize=None)
def _weight_keys(layer, direction):
    """(name, state_dict key) of each of WEIGHT_NAMES for one layer direction."""
    return tuple((name, f"{name}_l{layer}{suffix(direction)}") for name in WEIGHT_NAMES)

# Gates per cell, in PyTorch's order: RNN (one), LSTM (i, f, g, o), GRU (r, z, n).
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# ONNX's activation functions and their default (alpha, beta) when the graph
# leaves them out: the standalone operators' defaults, as the RNN/LSTM/GRU spec
# says ("the same as of corresponding ONNX operators").  None: the function
# takes none.  ONNX Runtime's LSTM and GRU kernels agree for LeakyRelu,
# HardSigmoid and Elu but fill 0.0 for ThresholdedRelu, ScaledTanh and Affine
# (rnn_helpers.cc, NameToArgDefaultsMap); its RNN kernel fills 0.0 for all.
ACTIVATIONS = {
    "Sigmoid": (None, None),
    "Tanh": (None, None),
    "Relu": (None, None),
    "HardSigmoid": (0.2, 0.5),
    "LeakyRelu": (0.01, None),
    "ThresholdedRelu": (1.0, None),
    "ScaledTanh": (1.0, 1.0),
    "Affine": (1.0, 0.0),
    "Elu": (1.0, None),
    "Softsign": (None, None),
    "Softplus": (None, None),
}

# How many activations each cell takes, in ONNX's order:
# RNN (f), LSTM (f for i/f/o, g for the cell input, h for the output), GRU (f for r/z, g for n).
DEFAULT_ACTIVATIONS = {
    "rnn": ("Tanh",),
    "lstm": ("Sigmoid", "Tanh", "Tanh"),
    "gru": ("Sigmoid", "Tanh"),
}

# The order of the activations inside the C kernels' enum (csrc/act.h).
ACTIVATION_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}


def activation_params(names, alphas, betas):
    """Each activation's (alpha, beta), ONNX's way.

    ``alphas`` and ``betas`` are consumed in order by the activations that
    take one (both directions: forward first); an activation left without
    a value gets its ONNX operator's default; values left over are ignored
    (as ONNX Runtime does).  Activations that take none get 0.0.
    """
    alpha_iter, beta_iter = iter(alphas or ()), iter(betas or ())
    out = []
    for name in names:
        da, db = ACTIVATIONS[name]
        a = 0.0 if da is None else float(next(alpha_iter, da))
        b = 0.0 if db is None else float(next(beta_iter, db))
        out.append((a, b))
    return out


def default_activations(mode, n_dirs, nonlinearity="tanh"):
    """The activation names a layer uses when none are given, both directions."""
    if mode == "rnn":
        return ("Tanh" if nonlinearity == "tanh" else "Relu",) * n_dirs
    return DEFAULT_ACTIVATIONS[mode] * n_dirs


@dataclass(frozen=True)
class Cell:
    """The recurrence of one layer direction.

    Attributes
    ----------
    mode : {"rnn", "lstm", "gru"}
    activations : tuple of str
        ONNX activation names in ONNX's order for the cell (1 for RNN, 3 for
        LSTM, 2 for GRU).
    alphas, betas : tuple of float
        Each activation's parameters, its default where it takes one, 0.0
        where it takes none.
    clip : float or None
        Clip every gate pre-activation to ``[-clip, clip]`` (ONNX ``clip``).
    input_forget : bool
        LSTM only: couple the gates, ``f = 1 - i``.
    linear_before_reset : bool
        GRU only: ``True`` is PyTorch's GRU, ``False`` the original one.
    """

    mode: str
    activations: tuple
    alphas: tuple
    betas: tuple
    clip: object = None
    input_forget: bool = False
    linear_before_reset: bool = True

    @property
    def gates(self):
        return GATES[self.mode]

    @classmethod
    def make(cls, mode, *, nonlinearity="tanh", activations=None, alphas=None,
             betas=None, clip=None, input_forget=False, linear_before_reset=True):
        """Build a cell, filling in ONNX's default activations and parameters.

        ``nonlinearity`` ("tanh" or "relu", checked for the RNN even when
        ``activations`` are given) is PyTorch's way to pick the RNN
        activation; ``activations`` (ONNX names) overrides it.  ``alphas`` and
        ``betas`` are the values given for the activations that take one, in
        order, as ONNX's ``activation_alpha`` / ``activation_beta``.
        """
        if mode not in GATES:
            raise ValueError(f"mode: expected one of {sorted(GATES)}, got {mode!r}")
        if mode == "rnn" and nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        if activations is None:
            activations = default_activations(mode, 1, nonlinearity)
        activations = tuple(activations)
        want = len(DEFAULT_ACTIVATIONS[mode])
        if len(activations) != want:
            raise ValueError(f"activations: expected {want} names for {mode}, "
                             f"got {len(activations)}: {activations!r}")
        for name in activations:
            if name not in ACTIVATIONS:
                raise ValueError(f"activations: expected names among {list(ACTIVATIONS)}, "
                                 f"got {name!r}")
        a_out, b_out = zip(*activation_params(activations, alphas, betas))
        if clip is not None:
            clip = float(clip)
            if not clip > 0:
                raise ValueError(f"clip: expected a positive number or None, got {clip!r}")
        return cls(mode, activations, a_out, b_out, clip,
                   bool(input_forget), bool(linear_before_reset))
