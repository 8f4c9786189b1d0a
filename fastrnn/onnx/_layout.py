"""ONNX's layout of a recurrent layer beside fastrnn's (PyTorch's).

ONNX stacks the directions of one layer in each weight (``W`` is
``(D, G*H, I)``), orders the gates its own way (LSTM i, o, f, c; GRU z, r,
h), joins the two biases in ``B`` (``(D, 2*G*H)``) and orders the peepholes
i, o, f.  fastrnn names each direction's arrays as torch's state_dict
(``weight_ih_l0_reverse``, ...), gates LSTM i, f, g, o and GRU r, z, n,
peepholes i, f, o.  Export, load and the session convert through here.
"""

import numpy as np

from fastrnn._cell import ACTIVATIONS, GATES

#: ONNX operator -> fastrnn mode, and back.
MODES = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}
OPS = {mode: op for op, mode in MODES.items()}

# ONNX's gate blocks as indices into torch's: LSTM i,o,f,c from i,f,g,o;
# GRU z,r,h from r,z,n.  TORCH_ORDER is the inverse permutation.
ONNX_ORDER = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
TORCH_ORDER = {mode: tuple(int(k) for k in np.argsort(order))
               for mode, order in ONNX_ORDER.items()}
# Peepholes: ONNX's P is i, o, f; fastrnn's weight_peephole is i, f, o (a swap).
PEEPHOLE_ORDER = (0, 2, 1)


def _reorder(a, blocks, order):
    parts = np.split(a, blocks, axis=0)
    return np.concatenate([parts[k] for k in order])


def suffix(direction):
    """The state_dict suffix of a direction: ``""`` or ``"_reverse"``."""
    return "_reverse" if direction else ""


def onnx_weights(mode, params, layer, n_dirs):
    """One layer's ``W``, ``R``, ``B`` (or None) and ``P`` (or None), ONNX's layout.

    ``params`` is a module's state_dict; the result has the dtype of its arrays.
    """
    order, G = ONNX_ORDER[mode], GATES[mode]
    W, R, B, P = [], [], [], []
    for d in range(n_dirs):
        sfx = f"_l{layer}{suffix(d)}"
        W.append(_reorder(params["weight_ih" + sfx], G, order))
        R.append(_reorder(params["weight_hh" + sfx], G, order))
        if "bias_ih" + sfx in params:
            B.append(np.concatenate([_reorder(params["bias_ih" + sfx], G, order),
                                     _reorder(params["bias_hh" + sfx], G, order)]))
        if "weight_peephole" + sfx in params:
            P.append(_reorder(params["weight_peephole" + sfx], 3, PEEPHOLE_ORDER))
    return (np.stack(W), np.stack(R), np.stack(B) if B else None,
            np.stack(P) if P else None)


def torch_weights(mode, layer, W, R, B=None, P=None):
    """The state_dict entries of one layer from ONNX's ``W``, ``R``, ``B``, ``P``."""
    order, G = TORCH_ORDER[mode], GATES[mode]
    out = {}
    for d in range(W.shape[0]):
        sfx = f"_l{layer}{suffix(d)}"
        out["weight_ih" + sfx] = _reorder(W[d], G, order)
        out["weight_hh" + sfx] = _reorder(R[d], G, order)
        if B is not None:
            b_ih, b_hh = np.split(B[d], 2)
            out["bias_ih" + sfx] = _reorder(b_ih, G, order)
            out["bias_hh" + sfx] = _reorder(b_hh, G, order)
        if P is not None:
            out["weight_peephole" + sfx] = _reorder(P[d], 3, PEEPHOLE_ORDER)
    return out


def canonical_activation(name):
    """ONNX's spelling of an activation name given in any case, or None if unknown."""
    for known in ACTIVATIONS:
        if known.lower() == str(name).lower():
            return known
    return None


def explicit_params(names, params):
    """``activation_alpha`` / ``activation_beta`` lists naming every value.

    The inverse of :func:`activation_params`: one value for each activation
    that takes one, so that no reader's own defaults come into play.
    """
    alphas = [a for name, (a, _) in zip(names, params) if ACTIVATIONS[name][0] is not None]
    betas = [b for name, (_, b) in zip(names, params) if ACTIVATIONS[name][1] is not None]
    return alphas, betas


