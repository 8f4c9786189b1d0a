"""The stack of recurrent layers and one layer of it, through the C kernels.

The front ends (the NumPy modules, ``fastrnn.torch``) check every argument
and then call ``stack_forward`` / ``stack_backward``: a configuration (one
``Cell`` per layer and direction), a params dict under torch's state_dict
names, and arrays.  Nothing is checked here: arrays arrive C-contiguous, of
one float dtype (float32 or float64) and of matching shapes, and every size
has passed ``fastrnn._checks.check_sizes``.

``fastrnn.reference`` has the same four functions with the same arguments and
results, in plain NumPy, so that a test runs one call through either.

Shapes: ``x`` (T, N, I) time-major; ``h0``, ``h_n`` (L*D, N, H_out) and
``c0``, ``c_n`` (L*D, N, H) for a stack, (D, N, H_out) and (D, N, H) for one
layer, row ``k*D + d`` for layer ``k``, direction ``d``; ``y`` (T, N, D*H_out);
L layers, D directions (direction 1 runs in reverse).
"""

import numpy as np

from fastrnn import _core
from fastrnn._cell import WEIGHT_NAMES, layer_weights, suffix
from fastrnn.threads import get_num_threads

__all__ = ["stack_forward", "stack_backward", "layer_forward", "layer_backward",
           "layer_weights"]


def stack_forward(cells_per_layer, params, x, h0, c0, *, lengths=None, dropout_masks=None,
                  training=False, n_threads=None):
    """Run a stack of recurrent layers, torch.nn.RNN / LSTM / GRU semantics.

    Parameters
    ----------
    cells_per_layer : list of list of fastrnn._cell.Cell
        ``L`` layers, each a list of ``D`` cells (one per direction).
    params : mapping
        The weights under torch's state_dict names (see ``layer_weights``).
    x : ndarray (T, N, I)
        Time-major input, float32 or float64.
    h0 : ndarray (L*D, N, H_out)
    c0 : ndarray (L*D, N, H) or None
        LSTM only.
    lengths : int64 ndarray (N,) or None
        Each sequence's length, in ``[0, T]``.
    dropout_masks : list of ndarray (T, N, D*H_out) or None
        ``L - 1`` scaled masks; mask ``k`` multiplies layer ``k``'s output
        before it feeds layer ``k + 1``.
    training : bool
        Keep what ``stack_backward`` needs.
    n_threads : int or None
        Default: ``fastrnn.get_num_threads()``.

    Returns
    -------
    y : ndarray (T, N, D*H_out)
    h_n : ndarray (L*D, N, H_out)
    c_n : ndarray (L*D, N, H) or None
    saved : dict or None
        With ``training``: each layer's input and what its kernel saved, for
        ``stack_backward``; None otherwise.
    """
    D = len(cells_per_layer[0])
    T, N, _ = x.shape
    H_out = h0.shape[2]
    lstm = c0 is not None
    if N == 0:                       # nothing to compute; the kernels need N >= 1
        y = np.zeros((T, 0, D * H_out), x.dtype)
        saved = {"inputs": None, "saved": None} if training else None
        return y, h0.copy(), c0.copy() if lstm else None, saved
    n_threads = get_num_threads() if n_threads is None else n_threads
    h_n = np.empty_like(h0)
    c_n = np.empty_like(c0) if lstm else None
    inputs, kernel_saved = [], []
    inp = x
    for k, cells in enumerate(cells_per_layer):
        if k > 0 and dropout_masks is not None:
            inp = inp * dropout_masks[k - 1]
        rows = slice(k * D, (k + 1) * D)
        y, _, _, saved_k = layer_forward(
            cells, inp, h0[rows], c0[rows] if lstm else None, layer_weights(params, k, D),
            lengths=lengths, training=training, n_threads=n_threads,
            h_n=h_n[rows], c_n=c_n[rows] if lstm else None)
        if training:
            inputs.append(inp)
            kernel_saved.append(saved_k)
        inp = y
    saved = {"inputs": inputs, "saved": kernel_saved} if training else None
    return inp, h_n, c_n, saved


def stack_backward(cells_per_layer, params, x, h0, c0, saved, dy, dh_n, dc_n, *, lengths=None,
                   dropout_masks=None, n_threads=None):
    """Backpropagate through a stack run by ``stack_forward(training=True)``.

    Parameters
    ----------
    cells_per_layer, params, x, h0, c0, lengths, dropout_masks
        The very ones the forward used.
    saved : dict
        What the forward returned.
    dy : ndarray (T, N, D*H_out) or None
        Gradient with respect to ``y``; None means zeros.  Rows at padded
        positions (past a sequence's length) are never read.
    dh_n : ndarray (L*D, N, H_out) or None
    dc_n : ndarray (L*D, N, H) or None
        Gradients with respect to the final state; None means zeros.
    n_threads : int or None

    Returns
    -------
    dx : ndarray (T, N, I)
    dh0 : ndarray (L*D, N, H_out)
    dc0 : ndarray (L*D, N, H) or None
    grads : dict
        The gradient of every entry of ``params``, under the same name.

    Nothing given is modified, so ``saved`` may be used again.
    """
    D = len(cells_per_layer[0])
    N = x.shape[1]
    lstm = c0 is not None
    if N == 0:
        return (np.zeros_like(x), np.zeros_like(h0), np.zeros_like(c0) if lstm else None,
                {name: np.zeros_like(value) for name, value in params.items()})
    n_threads = get_num_threads() if n_threads is None else n_threads
    dh0 = np.empty_like(h0)
    dc0 = np.empty_like(c0) if lstm else None
    grads = {}
    d_out = dy
    for k in reversed(range(len(cells_per_layer))):
        rows = slice(k * D, (k + 1) * D)
        dx, _, _, layer_grads = layer_backward(
            cells_per_layer[k], saved["inputs"][k], h0[rows], c0[rows] if lstm else None,
            layer_weights(params, k, D), saved["saved"][k], d_out,
            None if dh_n is None else dh_n[rows], None if dc_n is None else dc_n[rows],
            lengths=lengths, n_threads=n_threads, dh0=dh0[rows],
            dc0=dc0[rows] if lstm else None)
        for d, direction_grads in enumerate(layer_grads):
            for name, grad in direction_grads.items():
                if grad is not None:
                    grads[f"{name}_l{k}{suffix(d)}"] = grad
        d_out = dx * dropout_masks[k - 1] if k > 0 and dropout_masks is not None else dx
    return d_out, dh0, dc0, grads


# ---------------------------------------------------------------------------
# One layer, all its directions

def _groups(cells):
    """Directions that share a cell run in one kernel call (both at once)."""
    if len(cells) == 2 and cells[0] != cells[1]:
        return [[0], [1]]
    return [list(range(len(cells)))]


def _kernel_dims(cells, x, h0, weights, group):
    """The kernels' dims tuple (T, N, I, H, P, ldy, n_dirs) for the directions in ``group``."""
    T, N, I = x.shape
    H_out = h0.shape[2]
    H = weights[0]["weight_hh"].shape[0] // cells[0].gates
    P = 0 if weights[0].get("weight_hr") is None else H_out
    return (T, N, I, H, P, len(cells) * H_out, len(group))


def layer_forward(cells, x, h0, c0, weights, *, lengths=None, training=False, n_threads=None,
                  h_n=None, c_n=None):
    """Run one layer forward, all its directions.

    Parameters
    ----------
    cells : list of fastrnn._cell.Cell
        One per direction (direction 1 runs in reverse).
    x : ndarray (T, N, I)
    h0 : ndarray (D, N, H_out)
    c0 : ndarray (D, N, H) or None
        LSTM only.
    weights : list of dict
        Per direction, the arrays named in ``WEIGHT_NAMES`` (None where
        absent), as ``layer_weights`` gives them.
    lengths : int64 ndarray (N,) or None
    training : bool
        Keep what ``layer_backward`` needs.
    n_threads : int or None
        Default: ``fastrnn.get_num_threads()``.
    h_n : ndarray (D, N, H_out), optional
    c_n : ndarray (D, N, H), optional
        C-contiguous arrays to write the final state into (a stack passes
        its own rows); new arrays when None.

    Returns
    -------
    y : ndarray (T, N, D * H_out)
    h_n : ndarray (D, N, H_out)
    c_n : ndarray (D, N, H) or None
    saved : list of ndarray, one per direction, or None
        With ``training``, for ``layer_backward``.
    """
    D = len(cells)
    T, N, I = x.shape
    H_out = h0.shape[2]
    dtype = x.dtype
    lstm = cells[0].mode == "lstm"
    y = np.empty((T, N, D * H_out), dtype)
    h_n = np.empty_like(h0) if h_n is None else h_n
    c_n = None if not lstm else np.empty_like(c0) if c_n is None else c_n
    saved = [] if training else None
    n_threads = get_num_threads() if n_threads is None else n_threads
    y_flat = y.reshape(-1)
    for group in _groups(cells):
        dims = _kernel_dims(cells, x, h0, weights, group)
        dirs = []
        for d in group:
            arrays = dict(weights[d], reverse=d == 1, h0=h0[d], y=y_flat[d * H_out:],
                          h_n=h_n[d])
            if lstm:
                arrays.update(c0=c0[d], c_n=c_n[d])
            if training:
                arrays["saved"] = _core.new_saved(cells[d], dims, dtype)
                saved.append(arrays["saved"])
            dirs.append(arrays)
        _core.forward(cells[group[0]], dims, x, dirs, lengths, n_threads)
    return y, h_n, c_n, saved


def layer_backward(cells, x, h0, c0, weights, saved, dy, dh_n, dc_n, *, lengths=None,
                   n_threads=None, dh0=None, dc0=None):
    """Run one layer backward from what ``layer_forward(training=True)`` saved.

    Parameters
    ----------
    cells, x, h0, c0, weights, lengths
        The very ones the forward used.
    saved : list
        What the forward returned.
    dy : ndarray (T, N, D * H_out) or None
        Rows at padded positions are never read.
    dh_n : ndarray (D, N, H_out) or None
    dc_n : ndarray (D, N, H) or None
        None means zeros.
    n_threads : int or None
    dh0 : ndarray (D, N, H_out), optional
    dc0 : ndarray (D, N, H), optional
        C-contiguous arrays to write the state gradients into; new when None.

    Returns
    -------
    dx : ndarray (T, N, I)
    dh0 : ndarray (D, N, H_out)
    dc0 : ndarray (D, N, H) or None
    grads : list of dict
        One per direction: the gradient of every weight in ``weights``,
        None where the weight is None.
    """
    T, N, I = x.shape
    H_out = h0.shape[2]
    dtype = x.dtype
    lstm = cells[0].mode == "lstm"
    dx = np.empty((T, N, I), dtype)
    dh0 = np.empty_like(h0) if dh0 is None else dh0
    dc0 = None if not lstm else np.empty_like(c0) if dc0 is None else dc0
    grads = [{name: None if w.get(name) is None else np.empty_like(w[name])
              for name in WEIGHT_NAMES} for w in weights]
    n_threads = get_num_threads() if n_threads is None else n_threads
    dy_flat = None if dy is None else dy.reshape(-1)
    groups = _groups(cells)
    dx_part = np.empty_like(dx) if len(groups) > 1 else dx
    for g, group in enumerate(groups):
        dims = _kernel_dims(cells, x, h0, weights, group)
        dirs = []
        for d in group:
            arrays = dict(weights[d], reverse=d == 1, h0=h0[d], saved=saved[d], dh0=dh0[d])
            arrays["dy"] = None if dy_flat is None else dy_flat[d * H_out:]
            arrays["dh_n"] = None if dh_n is None else dh_n[d]
            if lstm:
                arrays.update(c0=c0[d], dc0=dc0[d], dc_n=None if dc_n is None else dc_n[d])
            for name in WEIGHT_NAMES:
                arrays["d" + name] = grads[d][name]
            dirs.append(arrays)
        _core.backward(cells[group[0]], dims, x, dx if g == 0 else dx_part, dirs, lengths,
                       n_threads)
        if g > 0:
            dx += dx_part
    return dx, dh0, dc0, grads
