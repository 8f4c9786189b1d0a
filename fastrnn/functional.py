"""One recurrent layer, all its directions, through the C kernels.

The modules (``fastrnn.modules``) build stacks of layers on these two
functions; they check every argument first, so nothing is checked here:
arrays arrive C-contiguous, of one float dtype and of matching shapes.
Shapes: ``x`` (T, N, I) time-major, states (D, N, H_out) and (D, N, H),
``y`` (T, N, D * H_out), D = number of directions.
"""

import numpy as np

from fastrnn import _core
from fastrnn._cell import WEIGHT_NAMES
from fastrnn.threads import get_num_threads

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


def layer_forward(cells, x, h0, c0, weights, *, lengths=None, training=False, n_threads=None):
    """Run one layer forward.

    Parameters
    ----------
    cells : list of fastrnn._cell.Cell
        One per direction (direction 1 runs in reverse).
    x : ndarray (T, N, I)
    h0 : ndarray (D, N, H_out)
    c0 : ndarray (D, N, H) or None
        LSTM only.
    weights : list of dict
        Per direction, the arrays named in WEIGHT_NAMES (None where absent).
    lengths : int64 ndarray (N,) or None
    training : bool
        Keep what ``layer_backward`` needs.
    n_threads : int or None
        Default: ``fastrnn.get_num_threads()``.

    Returns
    -------
    y : ndarray (T, N, D * H_out)
    h_n : ndarray (D, N, H_out)
    c_n : ndarray (D, N, H) or None
    saved : list of ndarray, one per direction, or None
    """
    D = len(cells)
    T, N, I = x.shape
    H_out = h0.shape[2]
    dtype = x.dtype
    lstm = cells[0].mode == "lstm"
    y = np.empty((T, N, D * H_out), dtype)
    h_n = np.empty_like(h0)
    c_n = np.empty_like(c0) if lstm else None
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
                arrays["saved"] = np.empty(_core.saved_size(cells[d], dims), dtype)
                saved.append(arrays["saved"])
            dirs.append(arrays)
        _core.forward(cells[group[0]], dims, x, dirs, lengths, n_threads)
    return y, h_n, c_n, saved


def layer_backward(cells, x, h0, c0, weights, saved, dy, dh_n, dc_n, *, lengths=None,
                   n_threads=None):
    """Run one layer backward from what ``layer_forward(training=True)`` saved.

    ``dy`` (T, N, D * H_out), ``dh_n`` (D, N, H_out) and ``dc_n`` (D, N, H) may
    each be None (zeros).  Returns ``(dx, dh0, dc0, grads)``: ``dx`` (T, N, I),
    ``dh0`` like ``h0``, ``dc0`` like ``c0`` (None but for the LSTM), ``grads``
    one dict per direction with the gradient of every weight that is not None.
    """
    T, N, I = x.shape
    H_out = h0.shape[2]
    dtype = x.dtype
    lstm = cells[0].mode == "lstm"
    dx = np.empty((T, N, I), dtype)
    dh0 = np.empty_like(h0)
    dc0 = np.empty_like(c0) if lstm else None
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
