"""Pure-NumPy reference of every fastrnn cell, forward and backward.

This module is the oracle that every kernel is tested against, and a plain
statement of what the kernels compute.  It is written for clarity, not speed:
one Python loop over time, and backpropagation through time written out by
hand, step by step, beside the forward equations it differentiates.

Conventions
-----------
Time-major: ``x`` is ``(T, N, I)``.  A cell has ``G`` gates (RNN 1, LSTM 4,
GRU 3) stacked in PyTorch's row order in ``weight_ih`` ``(G*H, I)`` and
``weight_hh`` ``(G*H, H_out)``; ``H_out`` is the LSTM projection size ``P``
when ``weight_hr`` is given, else ``H``.  ``f``, ``g``, ``h`` are the cell's
activations in ONNX's order (``Cell.activations``) and ``clip(a)`` bounds a
gate pre-activation to ``[-Cell.clip, Cell.clip]`` when a clip is set.

With ``zx = W_ih x_t + b_ih`` and ``zh = W_hh h + b_hh``, each split per gate,
one step from the state ``(h, c)`` is::

    RNN   h' = f(clip(zx + zh))

    LSTM  i  = f(clip(zx_i + zh_i + p_i * c))
          f_ = f(clip(zx_f + zh_f + p_f * c))      or 1 - i with input_forget
          g_ = g(clip(zx_g + zh_g))
          c' = f_ * c + i * g_
          o  = f(clip(zx_o + zh_o + p_o * c'))
          h' = o * h(c')                           or W_hr (o * h(c')) with a projection

    GRU   r  = f(clip(zx_r + zh_r))
          z  = f(clip(zx_z + zh_z))
          n  = g(clip(zx_n + r * (W_hn h + b_hn)))   linear_before_reset (PyTorch)
          n  = g(clip(zx_n + W_hn (r * h) + b_hn))   otherwise (ONNX's default)
          h' = (1 - z) * n + z * h

The clip sits where ONNX Runtime's CPU kernels put it: on each whole gate
pre-activation, after biases and peephole terms (for the GRU's ``n``, after
the reset gate is applied); the cell state ``c'`` itself is never clipped.

With ``lengths``, steps past a sequence's length leave its state unchanged
and write zeros to ``y``; ``reverse`` runs each sequence from its own last
valid step back to its first, as PyTorch's packed sequences and ONNX's
``sequence_lens`` do.  Everything is computed in the dtype of ``x``.

Precisions (inference only)
---------------------------
The forward functions take ``precision``: None (the dtype of ``x``, as
above), ``"bfloat16"`` or ``"int8"``, the arithmetic of SPEC's frozen
modules, for float32 ``x`` only.  Only the matrix products change; every one
of them (``W_ih x``, ``W_hh h``, the GRU's ``W_hn (r * h)``, the projection
``W_hr (o * h(c'))``) goes through ``product(a, W, precision)``, and the
biases, peepholes, gates, cell state and outputs stay in float32:

- bfloat16: ``a`` and ``W`` rounded to bfloat16 (``round_bfloat16``), the
  products of those values (each exact) summed in float64 and rounded once to
  float32; the kernels accumulate in float32 (flushing subnormal sums), which
  agrees with this to float32 rounding.
- int8: ``W`` quantized per row (``quantize_weight``, what a frozen module
  does once), each row of ``a`` quantized as the product runs
  (``quantize_rows``), the exact integer dot, then
  ``float32(dot) * (scale_a * scale_w[r])``: the product bit for bit what
  ``csrc/lowp.c`` computes.

The functions
-------------
``direction_forward`` / ``direction_backward`` run one direction of one
layer.  ``layer_forward`` / ``layer_backward`` and ``stack_forward`` /
``stack_backward`` take and return exactly what the functions of the same
names in ``fastrnn.functional`` (the kernels) do, so that a test makes one
call through either.  ``forward`` / ``backward`` run the stack with states
as tuples and zeros by default, as torch.nn.RNN / LSTM / GRU take them.
"""

import numpy as np

from fastrnn._cell import WEIGHT_NAMES, Cell

__all__ = ["activation", "activation_grad", "round_bfloat16", "quantize_weight",
           "quantize_rows", "product", "direction_forward", "direction_backward",
           "layer_forward", "layer_backward", "stack_forward", "stack_backward",
           "forward", "backward"]


# ---------------------------------------------------------------------------
# Activations (ONNX's definitions) and their derivatives

def _sigmoid(x):
    # 1 / (1 + exp(-x)) written as exp(-log(1 + exp(-x))): no overflow for
    # either sign and full relative precision in both tails.
    return np.exp(-np.logaddexp(0, -x))


# name: (f(x, alpha, beta), f'(x, alpha, beta))
_ACTIVATIONS = {
    "Sigmoid": (lambda x, a, b: _sigmoid(x),
                lambda x, a, b: _sigmoid(x) * _sigmoid(-x)),
    "Tanh": (lambda x, a, b: np.tanh(x),
             lambda x, a, b: 1 - np.tanh(x) ** 2),
    "Relu": (lambda x, a, b: np.maximum(x, 0),
             lambda x, a, b: x > 0),
    "Affine": (lambda x, a, b: a * x + b,
               lambda x, a, b: np.full_like(x, a)),
    "LeakyRelu": (lambda x, a, b: np.where(x >= 0, x, a * x),
                  lambda x, a, b: np.where(x >= 0, 1, a)),
    "ThresholdedRelu": (lambda x, a, b: np.where((x > a) | np.isnan(x), x, 0),
                        lambda x, a, b: x > a),
    "ScaledTanh": (lambda x, a, b: a * np.tanh(b * x),
                   lambda x, a, b: a * b * (1 - np.tanh(b * x) ** 2)),
    "HardSigmoid": (lambda x, a, b: np.clip(a * x + b, 0, 1),
                    lambda x, a, b: a * ((a * x + b > 0) & (a * x + b < 1))),
    "Elu": (lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))),
            lambda x, a, b: np.where(x >= 0, 1, a * np.exp(np.minimum(x, 0)))),
    "Softsign": (lambda x, a, b: x / (1 + np.abs(x)),
                 lambda x, a, b: 1 / (1 + np.abs(x)) ** 2),
    "Softplus": (lambda x, a, b: np.logaddexp(0, x),
                 lambda x, a, b: _sigmoid(x)),
}


def _apply(which, name, x, alpha, beta):
    x = np.asarray(x)
    try:
        fn = _ACTIVATIONS[name][which]
    except KeyError:
        raise ValueError(f"activation: expected one of {list(_ACTIVATIONS)}, "
                         f"got {name!r}") from None
    # float() keeps a NumPy scalar alpha from promoting float32 to float64.
    return np.asarray(fn(x, float(alpha), float(beta))).astype(x.dtype, copy=False)


def activation(name, x, alpha, beta):
    """Apply the ONNX activation ``name`` elementwise.

    Parameters
    ----------
    name : str
        One of ``fastrnn._cell.ACTIVATIONS`` ("Sigmoid", "Tanh", "Relu",
        "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid",
        "Elu", "Softsign", "Softplus").
    x : ndarray
        Pre-activation, any shape, float32 or float64.
    alpha, beta : float
        The activation's parameters (ignored by those that take none).

    Returns
    -------
    ndarray
        Same shape and dtype as ``x``.
    """
    return _apply(0, name, x, alpha, beta)


def activation_grad(name, x, alpha, beta):
    """Derivative of ``activation(name, ., alpha, beta)`` at ``x``, elementwise.

    At a kink the value of the branch that ``activation`` takes there is used
    (Relu: 0 at 0, LeakyRelu and Elu: the ``x >= 0`` branch).

    Returns
    -------
    ndarray
        Same shape and dtype as ``x``.
    """
    return _apply(1, name, x, alpha, beta)


def _gate(cell, k, pre):
    """Value of a gate: the cell's activation ``k`` at its clipped pre-activation."""
    if cell.clip is not None:
        pre = np.clip(pre, -cell.clip, cell.clip)
    return activation(cell.activations[k], pre, cell.alphas[k], cell.betas[k])


def _gate_grad(cell, k, pre, dgate):
    """Gradient with respect to ``pre`` from the one with respect to ``_gate(cell, k, pre)``."""
    clipped = pre if cell.clip is None else np.clip(pre, -cell.clip, cell.clip)
    dpre = dgate * activation_grad(cell.activations[k], clipped, cell.alphas[k], cell.betas[k])
    if cell.clip is not None:
        dpre = dpre * (np.abs(pre) <= cell.clip)  # a clipped value does not move
    return dpre


# ---------------------------------------------------------------------------
# The products, in each precision (SPEC, "Frozen inference"; csrc/lowp.h)

PRECISIONS = (None, "bfloat16", "int8")

# The longest row an int8 product takes (csrc/lowp.h's FR_INT8_MAX_K).
INT8_MAX_K = 65536


def _check_precision(precision, dtype):
    if not (precision is None or isinstance(precision, str) and precision in PRECISIONS):
        raise ValueError(f"precision: expected None, 'bfloat16' or 'int8', got {precision!r}")
    if precision is not None and dtype != np.float32:
        raise ValueError(f"precision: {precision!r} is for float32 input, got {dtype} "
                         "(float64 runs at precision=None only)")


def _check_trainable(cache):
    if cache["precision"] is not None:
        raise ValueError("cache: backward runs after a forward at precision=None only, "
                         f"this one ran at {cache['precision']!r}")


def _float32_array(name, a):
    a = np.asarray(a)
    if a.dtype != np.float32:
        raise TypeError(f"{name}: expected a float32 array, got dtype {a.dtype}")
    return a


def round_bfloat16(x):
    """Round float32 values to bfloat16, as the kernels convert them.

    Round to nearest, ties to even; a NaN stays a (quiet) NaN; a subnormal
    gives a zero of its sign (as ``vcvtneps2bf16``); infinities stay.

    Parameters
    ----------
    x : ndarray of float32, any shape

    Returns
    -------
    ndarray of float32
        Same shape; each value is exactly a bfloat16 (its low 16 bits zero).
    """
    x = _float32_array("x", x)
    bits = np.ascontiguousarray(x).view(np.uint32).astype(np.uint64)
    # Adding 0x7FFF plus the lowest kept bit, then truncating, rounds half to even.
    nearest = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    subnormal_or_zero = (bits & 0x7F800000) == 0
    out = np.where(nan, (bits & 0xFFFF0000) | 0x00400000,
                   np.where(subnormal_or_zero, bits & 0x80000000, nearest))
    return out.astype(np.uint32).view(np.float32).reshape(x.shape)


def quantize_weight(W):
    """Quantize a weight matrix per row to int8, as a frozen module does once.

    For each row ``r``: ``amax = max|W[r, :]|``, ``scale_w[r] = amax / 127``
    (1 where that is 0), ``qW[r] = clip(rint(W[r] / scale_w[r]), -127, 127)``,
    all in float32 (``rint``: ties to even).

    Parameters
    ----------
    W : ndarray of float32, shape (n, K)
        Finite values (a NaN or an infinity is a ValueError, as at freeze time).

    Returns
    -------
    qW : ndarray of int8, shape (n, K)
    scale_w : ndarray of float32, shape (n,)
    """
    W = _float32_array("W", W)
    if W.ndim != 2:
        raise ValueError(f"W: expected a 2-d weight matrix, got shape {W.shape}")
    if not np.all(np.isfinite(W)):
        raise ValueError("W: expected finite weights, got a NaN or an infinity")
    scale = np.max(np.abs(W), axis=1, initial=0) / np.float32(127)
    scale_w = np.where(scale == 0, np.float32(1), scale)
    qW = np.clip(np.rint(W / scale_w[:, None]), -127, 127).astype(np.int8)
    return qW, scale_w


def quantize_rows(a):
    """Quantize each row of a product's left operand to int8, as the product runs.

    For each row (the last axis): ``amax = max|a|``, ``inv = 127 / amax``,
    ``scale_a = amax / 127``, ``qa = clip(rint(a * inv), -127, 127)``, all in
    float32.  Where ``inv`` is not finite (a row of zeros, or ``amax`` below
    about 2**-121) ``scale_a = 0`` and ``qa = 0``: the row's products are 0.
    A row holding a NaN or an infinity gives ``scale_a = NaN`` and ``qa = 0``:
    its products are NaN.

    Parameters
    ----------
    a : ndarray of float32, shape (..., K)

    Returns
    -------
    qa : ndarray of int8, shape (..., K)
    scale_a : ndarray of float32, shape (...)
    """
    a = _float32_array("a", a)
    finite = np.all(np.isfinite(a), axis=-1)
    amax = np.max(np.abs(np.where(np.isfinite(a), a, 0)), axis=-1, initial=0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = np.float32(127) / amax
        usable = finite & np.isfinite(inv)
        q = np.clip(np.rint(a * inv[..., None]), -127, 127)
    qa = np.where(usable[..., None], q, 0).astype(np.int8)
    scale_a = np.where(usable, amax / np.float32(127),
                       np.where(finite, np.float32(0), np.float32(np.nan)))
    return qa, scale_a


def product(a, W, precision=None):
    """``a W^T`` in a precision: the one place the precisions live.

    Parameters
    ----------
    a : ndarray, shape (..., K)
        The left operand (input rows, state rows, the projection's input).
    W : ndarray, shape (n, K)
        A weight as torch holds it (one row per output), unconverted:
        each precision converts it here, as it would be at freeze time.
    precision : {None, "bfloat16", "int8"}
        None: ``a @ W.T`` in the dtype of ``a``.  ``"bfloat16"``: both rounded
        to bfloat16, the exact products summed in float64, then rounded once to
        float32.  ``"int8"``: ``float32(qa . qW[r]) * (scale_a * scale_w[r])``
        with the integer dot exact.  Both need float32 ``a`` and ``W``.

    Returns
    -------
    ndarray, shape (..., n)
        Float32 for the reduced precisions.
    """
    _check_precision(precision, np.asarray(a).dtype)
    if precision is None:
        return a @ W.T
    if precision == "bfloat16":
        a16 = round_bfloat16(a).astype(np.float64)
        W16 = round_bfloat16(W).astype(np.float64)
        return (a16 @ W16.T).astype(np.float32)
    if np.shape(W)[-1] > INT8_MAX_K:
        raise ValueError(f"W: int8 products take rows of at most {INT8_MAX_K}, "
                         f"got {np.shape(W)[-1]}")
    qW, scale_w = quantize_weight(W)
    qa, scale_a = quantize_rows(a)
    # The int32 dot, computed exactly in float64: every partial sum is an
    # integer of magnitude below 127 * 127 * INT8_MAX_K < 2**31 << 2**53.
    dot = qa.astype(np.float64) @ qW.astype(np.float64).T
    return dot.astype(np.float32) * (scale_a[..., None] * scale_w)


# ---------------------------------------------------------------------------
# One step of each cell, forward and backward
#
# A forward step takes the input half of the gates ``zx`` (N, G*H) and the
# state before the step, and returns the state after it (h first) and what the
# backward step needs.  A backward step takes that, the gradient with respect
# to the state after the step, and returns the gradient with respect to ``zx``
# and to the state before the step; it adds its share of the gradients of the
# recurrent weights into ``grads``.

def _recurrent_backward(w, grads, dz, h_in, rows=slice(None)):
    """Backward of ``z = h_in W_hh[rows]^T + b_hh[rows]``: accumulate, return dh_in."""
    grads["weight_hh"][rows] += dz.T @ h_in
    grads["bias_hh"][rows] += dz.sum(axis=0)
    return dz @ w["weight_hh"][rows]


def _rnn_step(cell, w, zx, state, precision=None):
    (h,) = state
    a = zx + product(h, w["weight_hh"], precision) + w["bias_hh"]
    return (_gate(cell, 0, a),), {"h": h, "a": a}


def _rnn_step_backward(cell, w, s, dstate, grads):
    (dh_new,) = dstate
    da = _gate_grad(cell, 0, s["a"], dh_new)
    return da, (_recurrent_backward(w, grads, da, s["h"]),)


def _lstm_step(cell, w, zx, state, precision=None):
    h, c = state
    zh = product(h, w["weight_hh"], precision) + w["bias_hh"]
    zx_i, zx_f, zx_g, zx_o = np.split(zx, 4, axis=1)
    zh_i, zh_f, zh_g, zh_o = np.split(zh, 4, axis=1)
    p_i, p_f, p_o = np.split(w["weight_peephole"], 3)   # zeros without peepholes
    s = {"h": h, "c": c}
    s["a_i"] = zx_i + zh_i + p_i * c
    s["a_f"] = zx_f + zh_f + p_f * c
    s["a_g"] = zx_g + zh_g
    s["i"] = _gate(cell, 0, s["a_i"])
    s["f"] = 1 - s["i"] if cell.input_forget else _gate(cell, 0, s["a_f"])
    s["g"] = _gate(cell, 1, s["a_g"])
    s["c_new"] = c_new = s["f"] * c + s["i"] * s["g"]
    s["a_o"] = zx_o + zh_o + p_o * c_new
    s["o"] = _gate(cell, 0, s["a_o"])
    s["m"] = activation(cell.activations[2], c_new, cell.alphas[2], cell.betas[2])
    h_new = s["o"] * s["m"]
    if w["weight_hr"] is not None:
        h_new = product(h_new, w["weight_hr"], precision)
    return (h_new, c_new), s


def _lstm_step_backward(cell, w, s, dstate, grads):
    dh_new, dc_new = dstate
    p_i, p_f, p_o = np.split(w["weight_peephole"], 3)
    if w["weight_hr"] is not None:          # h' = W_hr (o * m)
        grads["weight_hr"] += dh_new.T @ (s["o"] * s["m"])
        dh_new = dh_new @ w["weight_hr"]
    # h' = o * m, m = h(c')
    do = dh_new * s["m"]
    dc_new = dc_new + dh_new * s["o"] * activation_grad(
        cell.activations[2], s["c_new"], cell.alphas[2], cell.betas[2])
    da_o = _gate_grad(cell, 0, s["a_o"], do)
    dc_new = dc_new + da_o * p_o            # o's peephole looks at c'
    # c' = f * c + i * g
    di, df, dg = dc_new * s["g"], dc_new * s["c"], dc_new * s["i"]
    dc = dc_new * s["f"]
    if cell.input_forget:                   # f = 1 - i
        di, da_f = di - df, np.zeros_like(df)
    else:
        da_f = _gate_grad(cell, 0, s["a_f"], df)
    da_i = _gate_grad(cell, 0, s["a_i"], di)
    da_g = _gate_grad(cell, 1, s["a_g"], dg)
    dc = dc + da_i * p_i + da_f * p_f
    grads["weight_peephole"] += np.concatenate([
        (da_i * s["c"]).sum(axis=0), (da_f * s["c"]).sum(axis=0),
        (da_o * s["c_new"]).sum(axis=0)])
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
    return da, (_recurrent_backward(w, grads, da, s["h"]), dc)


def _gru_step(cell, w, zx, state, precision=None):
    (h,) = state
    H = w["weight_hh"].shape[0] // 3
    zx_r, zx_z, zx_n = np.split(zx, 3, axis=1)
    zh_rz = product(h, w["weight_hh"][:2 * H], precision) + w["bias_hh"][:2 * H]
    W_hn, b_hn = w["weight_hh"][2 * H:], w["bias_hh"][2 * H:]
    s = {"h": h}
    s["a_r"] = zx_r + zh_rz[:, :H]
    s["a_z"] = zx_z + zh_rz[:, H:]
    s["r"] = r = _gate(cell, 0, s["a_r"])
    s["z"] = z = _gate(cell, 0, s["a_z"])
    if cell.linear_before_reset:
        s["zh_n"] = product(h, W_hn, precision) + b_hn
        s["a_n"] = zx_n + r * s["zh_n"]
    else:
        s["a_n"] = zx_n + product(r * h, W_hn, precision) + b_hn
    s["n"] = n = _gate(cell, 1, s["a_n"])
    return ((1 - z) * n + z * h,), s


def _gru_step_backward(cell, w, s, dstate, grads):
    (dh_new,) = dstate
    H = w["weight_hh"].shape[0] // 3
    h, r, z, n = s["h"], s["r"], s["z"], s["n"]
    # h' = (1 - z) * n + z * h
    dn, dz, dh = dh_new * (1 - z), dh_new * (h - n), dh_new * z
    da_n = _gate_grad(cell, 1, s["a_n"], dn)
    if cell.linear_before_reset:            # a_n = zx_n + r * (W_hn h + b_hn)
        dr = da_n * s["zh_n"]
        dh = dh + _recurrent_backward(w, grads, da_n * r, h, slice(2 * H, None))
    else:                                   # a_n = zx_n + W_hn (r * h) + b_hn
        drh = _recurrent_backward(w, grads, da_n, r * h, slice(2 * H, None))
        dr, dh = drh * h, dh + drh * r
    da_rz = np.concatenate([_gate_grad(cell, 0, s["a_r"], dr),
                            _gate_grad(cell, 0, s["a_z"], dz)], axis=1)
    dh = dh + _recurrent_backward(w, grads, da_rz, h, slice(0, 2 * H))
    return np.concatenate([da_rz, da_n], axis=1), (dh,)


_STEPS = {"rnn": (_rnn_step, _rnn_step_backward),
          "lstm": (_lstm_step, _lstm_step_backward),
          "gru": (_gru_step, _gru_step_backward)}


# ---------------------------------------------------------------------------
# One direction of a layer

def _float_array(name, a):
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {a.dtype}")
    return a


def _filled_weights(cell, weights, dtype):
    """The weights in ``dtype``, absent biases and peepholes filled with zeros."""
    unknown = set(weights) - set(WEIGHT_NAMES)
    if unknown:
        raise ValueError(f"weights: unexpected keys {sorted(unknown)}")
    w = {k: None if weights.get(k) is None else np.asarray(weights[k], dtype=dtype)
         for k in WEIGHT_NAMES}
    GH = w["weight_hh"].shape[0]
    H = GH // cell.gates
    if cell.mode != "lstm" and (w["weight_hr"] is not None or w["weight_peephole"] is not None):
        raise ValueError(f"weights: weight_hr and weight_peephole are LSTM only, not {cell.mode}")
    for k in ("bias_ih", "bias_hh"):
        if w[k] is None:
            w[k] = np.zeros(GH, dtype)
    if cell.mode == "lstm" and w["weight_peephole"] is None:
        w["weight_peephole"] = np.zeros(3 * H, dtype)
    return w


def _time_order(T, N, lengths, reverse):
    """Which time index each sequence reads at each step, and whether it is valid.

    Returns ``order`` (T, N) and ``valid`` (T, N): at step ``s`` sequence ``n``
    reads ``x[order[s, n], n]``.  Forward, ``order[s, n] = s``.  In reverse, the
    first ``L_n`` steps read ``t = L_n - 1 - s`` and the padded steps keep
    their own index, so each column of ``order`` is a permutation of ``0..T-1``
    that is its own inverse: ``y[order, n]`` puts step-ordered results back
    in time order.
    """
    lengths = np.full(N, T) if lengths is None else np.asarray(lengths)
    if lengths.shape != (N,) or np.any(lengths < 0) or np.any(lengths > T):
        raise ValueError(f"lengths: expected {N} integers in [0, {T}], got {lengths!r}")
    step = np.arange(T)[:, None]
    valid = step < lengths
    order = np.where(valid, lengths - 1 - step, step) if reverse else np.repeat(step, N, axis=1)
    return order, valid


def direction_forward(cell, x, state0, weights, *, lengths=None, reverse=False,
                      precision=None):
    """Run one direction of a layer over a batch of sequences.

    Parameters
    ----------
    cell : fastrnn._cell.Cell
        The recurrence: kind, activations, clip and options.
    x : ndarray, shape (T, N, I)
        The input, float32 or float64; everything is computed in its dtype.
    state0 : tuple of ndarray
        ``(h0,)`` for RNN and GRU, ``(h0, c0)`` for LSTM; ``h0`` (N, H_out),
        ``c0`` (N, H).
    weights : dict
        ``"weight_ih"`` (G*H, I), ``"weight_hh"`` (G*H, H_out), ``"bias_ih"``
        and ``"bias_hh"`` (G*H,) or None, and for LSTM ``"weight_hr"`` (P, H)
        or None (projection; then H_out = P) and ``"weight_peephole"`` (3*H,)
        or None (peepholes, gates i, f, o).  Missing keys mean None.
    lengths : array of int, shape (N,), optional
        Each sequence's length, in ``[0, T]``; None means all ``T``.
    reverse : bool
        Run each sequence backwards, from its own last valid step.
    precision : {None, "bfloat16", "int8"}
        The products' arithmetic (see ``product``); the reduced precisions
        take float32 ``x`` only and give a cache that ``direction_backward``
        refuses (inference only).

    Returns
    -------
    y : ndarray, shape (T, N, H_out)
        The hidden state after each step, zeros past a sequence's length.
    state_n : tuple of ndarray
        The state after each sequence's last valid step (``state0`` for
        length 0), shaped like ``state0``.
    cache : dict
        What ``direction_backward`` needs; it can be used more than once.
        ``cache["steps"][s]`` holds the gate pre-activations (``"a"``,
        ``"a_i"``, ...) and values of step ``s`` in processing order.
    """
    x = _float_array("x", x)
    dtype = x.dtype
    _check_precision(precision, dtype)
    T, N, _ = x.shape
    w = _filled_weights(cell, weights, dtype)
    state0 = state = tuple(np.asarray(s, dtype=dtype) for s in state0)
    if len(state0) != (2 if cell.mode == "lstm" else 1):
        raise ValueError(f"state0: expected {'(h0, c0)' if cell.mode == 'lstm' else '(h0,)'}, "
                         f"got a tuple of {len(state0)}")
    order, valid = _time_order(T, N, lengths, reverse)
    batch = np.arange(N)
    step_forward = _STEPS[cell.mode][0]

    # x in step order; padded positions never enter the computation.
    x_steps = np.where(valid[:, :, None], x[order, batch], 0)
    # The input half of every gate for all steps at once.
    zx = product(x_steps, w["weight_ih"], precision) + w["bias_ih"]    # (T, N, G*H)
    ys, steps = [], []
    for s in range(T):
        new_state, saved = step_forward(cell, w, zx[s], state, precision)
        keep = valid[s][:, None]            # padded steps leave the state as it was
        state = tuple(np.where(keep, new, old) for new, old in zip(new_state, state))
        ys.append(np.where(keep, new_state[0], 0))
        steps.append(saved)
    H_out = w["weight_hh"].shape[1]
    y = np.stack(ys)[order, batch] if T else np.zeros((0, N, H_out), dtype)
    cache = {"cell": cell, "x_steps": x_steps, "weights": w,
             "given": {k: weights[k] is not None for k in weights},
             "state0": state0,
             "order": order, "valid": valid, "steps": steps, "precision": precision}
    return y, state, cache


def direction_backward(cache, dy, dstate_n):
    """Backpropagate through time for one layer direction.

    Parameters
    ----------
    cache : dict
        From ``direction_forward``.
    dy : ndarray, shape (T, N, H_out), or None
        Gradient with respect to ``y``; None means zeros.  Values at padded
        positions (past a sequence's length) are ignored.
    dstate_n : tuple of (ndarray or None), or None
        Gradient with respect to ``state_n``, shaped like it; None (or a None
        entry) means zeros.

    Returns
    -------
    dx : ndarray, shape (T, N, I)
    dstate0 : tuple of ndarray
        Gradient with respect to ``state0``, shaped like it.
    dweights : dict
        Same keys as the ``weights`` given to ``direction_forward``; None where
        that weight was None.
    """
    _check_trainable(cache)
    cell, x_steps, w = cache["cell"], cache["x_steps"], cache["weights"]
    order, valid, steps = cache["order"], cache["valid"], cache["steps"]
    dtype = x_steps.dtype
    T, N, I = x_steps.shape
    batch = np.arange(N)
    H_out = w["weight_hh"].shape[1]
    step_backward = _STEPS[cell.mode][1]

    if dy is None:
        dy_steps = np.zeros((T, N, H_out), dtype)
    else:
        dy_steps = np.asarray(dy, dtype=dtype)[order, batch]
    if dstate_n is None:
        dstate_n = (None,) * len(cache["state0"])
    dstate = tuple(np.zeros_like(s0) if d is None else np.asarray(d, dtype=dtype)
                   for s0, d in zip(cache["state0"], dstate_n))

    grads = {k: np.zeros_like(v) for k, v in w.items() if v is not None}
    dzx = np.zeros((T, N, w["weight_ih"].shape[0]), dtype)
    for s in reversed(range(T)):
        keep = valid[s][:, None]
        # What reaches the step's new state: the gradient carried back from the
        # later steps plus dy; nothing on rows whose step was padding (so dy
        # past a sequence's length is ignored).
        d_new = (dstate[0] + dy_steps[s],) + dstate[1:]
        d_new = tuple(np.where(keep, d, 0) for d in d_new)
        dzx[s], d_old = step_backward(cell, w, steps[s], d_new, grads)
        # A padded step copied the state through, and so does its gradient.
        dstate = tuple(np.where(keep, do, d) for do, d in zip(d_old, dstate))

    # The input half, for all steps at once.
    grads["weight_ih"] = dzx.reshape(-1, dzx.shape[2]).T @ x_steps.reshape(-1, I)
    grads["bias_ih"] = dzx.sum(axis=(0, 1))
    dx = (dzx @ w["weight_ih"])[order, batch]
    dweights = {k: grads[k] if given else None for k, given in cache["given"].items()}
    return dx, dstate, dweights


# ---------------------------------------------------------------------------
# One layer and the whole stack, with the arguments and results of
# fastrnn.functional's kernel calls (the same call runs through either)

def _suffix(direction):
    return "_reverse" if direction else ""


def layer_forward(cells, x, h0, c0, weights, *, lengths=None, training=False, n_threads=None,
                  h_n=None, c_n=None, precision=None):
    """One layer, all its directions: ``fastrnn.functional.layer_forward`` in NumPy.

    Same arguments and results (see there); ``n_threads`` is accepted and
    ignored (NumPy's BLAS threads are its own), and ``saved`` is a list of
    ``direction_forward`` caches.  ``precision`` (None, ``"bfloat16"``,
    ``"int8"``) as in ``direction_forward``.
    """
    lstm = cells[0].mode == "lstm"
    h_n = np.empty_like(h0) if h_n is None else h_n
    c_n = None if not lstm else np.empty_like(c0) if c_n is None else c_n
    ys, caches = [], []
    for d, cell in enumerate(cells):
        state0 = (h0[d], c0[d]) if lstm else (h0[d],)
        y, state_n, cache = direction_forward(cell, x, state0, weights[d], lengths=lengths,
                                              reverse=d == 1, precision=precision)
        ys.append(y)
        caches.append(cache)
        h_n[d] = state_n[0]
        if lstm:
            c_n[d] = state_n[1]
    return np.concatenate(ys, axis=2), h_n, c_n, caches if training else None


def layer_backward(cells, x, h0, c0, weights, saved, dy, dh_n, dc_n, *, lengths=None,
                   n_threads=None, dh0=None, dc0=None):
    """``fastrnn.functional.layer_backward`` in NumPy: same arguments and results.

    ``cells``, ``x``, ``weights`` and ``lengths`` are in ``saved`` already;
    they are taken for the same signature.
    """
    lstm = cells[0].mode == "lstm"
    H_out = h0.shape[2]
    dh0 = np.empty_like(h0) if dh0 is None else dh0
    dc0 = None if not lstm else np.empty_like(c0) if dc0 is None else dc0
    dx, grads = 0, []
    for d, cache in enumerate(saved):
        dy_d = None if dy is None else dy[:, :, d * H_out:(d + 1) * H_out]
        dstate_n = ((None if dh_n is None else dh_n[d],)
                    + ((None if dc_n is None else dc_n[d],) if lstm else ()))
        dx_d, dstate0, dw = direction_backward(cache, dy_d, dstate_n)
        dx = dx + dx_d
        dh0[d] = dstate0[0]
        if lstm:
            dc0[d] = dstate0[1]
        grads.append(dw)
    return dx, dh0, dc0, grads


def _layer_params(params, k, n_dirs):
    """Layer ``k``'s weights, one dict per direction, from torch's state_dict names."""
    return [{name: params.get(f"{name}_l{k}{_suffix(d)}") for name in WEIGHT_NAMES}
            for d in range(n_dirs)]


def stack_forward(cells_per_layer, params, x, h0, c0, *, lengths=None, dropout_masks=None,
                  training=False, n_threads=None, precision=None):
    """A stack of layers: ``fastrnn.functional.stack_forward`` in NumPy.

    Same arguments and results (see there): ``params`` under torch's
    state_dict names, ``h0`` (L*D, N, H_out), ``c0`` (L*D, N, H) or None,
    ``y`` (T, N, D*H_out); ``n_threads`` is ignored.  ``precision`` (None,
    ``"bfloat16"``, ``"int8"``) as in ``direction_forward``: every layer's
    products in it, the output of one layer (float32) the next one's input.
    """
    D = len(cells_per_layer[0])
    lstm = c0 is not None
    h_n = np.empty_like(h0)
    c_n = np.empty_like(c0) if lstm else None
    inp, caches = x, []
    for k, cells in enumerate(cells_per_layer):
        if k > 0 and dropout_masks is not None:
            inp = inp * np.asarray(dropout_masks[k - 1], dtype=x.dtype)
        rows = slice(k * D, (k + 1) * D)
        inp, _, _, layer_caches = layer_forward(
            cells, inp, h0[rows], c0[rows] if lstm else None, _layer_params(params, k, D),
            lengths=lengths, training=True, h_n=h_n[rows], c_n=c_n[rows] if lstm else None,
            precision=precision)
        caches.append(layer_caches)
    return inp, h_n, c_n, {"caches": caches} if training else None


def stack_backward(cells_per_layer, params, x, h0, c0, saved, dy, dh_n, dc_n, *, lengths=None,
                   dropout_masks=None, n_threads=None):
    """``fastrnn.functional.stack_backward`` in NumPy: same arguments and results.

    ``dy`` at padded positions is ignored; ``grads`` holds the gradient of
    every entry of ``params`` under its name.
    """
    D = len(cells_per_layer[0])
    lstm = c0 is not None
    dh0 = np.empty_like(h0)
    dc0 = np.empty_like(c0) if lstm else None
    grads = {}
    d_out = dy                               # gradient with respect to layer k's output
    for k in reversed(range(len(cells_per_layer))):
        rows = slice(k * D, (k + 1) * D)
        d_in, _, _, layer_grads = layer_backward(
            cells_per_layer[k], None, h0[rows], c0[rows] if lstm else None, None,
            saved["caches"][k], d_out, None if dh_n is None else dh_n[rows],
            None if dc_n is None else dc_n[rows], dh0=dh0[rows],
            dc0=dc0[rows] if lstm else None)
        for d, dw in enumerate(layer_grads):
            grads.update({f"{name}_l{k}{_suffix(d)}": g for name, g in dw.items()
                          if g is not None})
        d_out = d_in * dropout_masks[k - 1] if (k > 0 and dropout_masks is not None) else d_in
    return d_out, dh0, dc0, grads


# ---------------------------------------------------------------------------
# The stack as torch.nn.RNN / LSTM / GRU take it: states as tuples, defaults

def forward(cell, x, state0, params, *, num_layers=1, bidirectional=False, lengths=None,
            dropout_masks=None, precision=None):
    """Run a stack of layers, torch.nn.RNN / LSTM / GRU semantics.

    Parameters
    ----------
    cell : Cell or sequence of Cell
        The recurrence, or one per direction (ONNX allows different
        activations for the reverse direction).
    x : ndarray, shape (T, N, I)
        Float32 or float64; everything is computed in its dtype.
    state0 : tuple of ndarray, or None
        ``(h0,)`` or ``(h0, c0)``; ``h0`` (D*L, N, H_out), ``c0`` (D*L, N, H),
        indexed ``layer * D + direction`` as torch.  None means zeros.
    params : dict
        torch's state_dict names: ``weight_ih_l{k}{suffix}``,
        ``weight_hh_l{k}{suffix}``, ``bias_ih_l{k}{suffix}``,
        ``bias_hh_l{k}{suffix}``, ``weight_hr_l{k}{suffix}``,
        ``weight_peephole_l{k}{suffix}`` with suffix ``""`` or
        ``"_reverse"``; the biases, ``weight_hr`` and ``weight_peephole``
        may be absent.
    num_layers : int
    bidirectional : bool
    lengths : array of int, shape (N,), optional
        Each sequence's length, in ``[0, T]``.
    dropout_masks : list of ndarray, optional
        ``num_layers - 1`` arrays (T, N, D*H_out), already scaled (0 or
        1/(1-p)); mask ``k`` multiplies layer ``k``'s output before it feeds
        layer ``k + 1``.
    precision : {None, "bfloat16", "int8"}
        None: everything in the dtype of ``x``.  ``"bfloat16"`` or ``"int8"``
        (float32 ``x`` only, inference: ``backward`` refuses the cache): every
        product as ``product`` computes it, as SPEC's frozen modules do.

    Returns
    -------
    y : ndarray, shape (T, N, D*H_out)
        The last layer's output, both directions concatenated.
    state_n : tuple of ndarray
        Shaped like ``state0``.
    cache : dict
        What ``backward`` needs.
    """
    x = _float_array("x", x)
    dtype = x.dtype
    _check_precision(precision, dtype)
    N = x.shape[1]
    D = 2 if bidirectional else 1
    cells = [cell] * D if isinstance(cell, Cell) else list(cell)
    if len(cells) != D:
        raise ValueError(f"cell: expected one Cell or {D} (one per direction), got {len(cells)}")
    if dropout_masks is not None and len(dropout_masks) != num_layers - 1:
        raise ValueError(f"dropout_masks: expected {num_layers - 1} masks, "
                         f"got {len(dropout_masks)}")
    lstm = cells[0].mode == "lstm"
    if state0 is None:
        w_hh = np.asarray(params["weight_hh_l0"])
        H = w_hh.shape[0] // cells[0].gates
        state0 = ((np.zeros((D * num_layers, N, w_hh.shape[1]), dtype),)
                  + ((np.zeros((D * num_layers, N, H), dtype),) if lstm else ()))
    h0, c0 = (tuple(np.asarray(s, dtype=dtype) for s in state0) + (None,))[:2]
    masks = None if dropout_masks is None else [np.asarray(m, dtype=dtype)
                                                for m in dropout_masks]
    stack = dict(cells_per_layer=[cells] * num_layers, params=params, x=x, h0=h0, c0=c0,
                 lengths=lengths, dropout_masks=masks, precision=precision)
    y, h_n, c_n, saved = stack_forward(**stack, training=True)
    return y, (h_n, c_n) if lstm else (h_n,), dict(stack, saved=saved)


def backward(cache, dy, dstate_n):
    """Backpropagate through the whole stack.

    Parameters
    ----------
    cache : dict
        From ``forward``.
    dy : ndarray, shape (T, N, D*H_out), or None
        Gradient with respect to ``y``; None means zeros.
    dstate_n : tuple of (ndarray or None), or None
        Gradient with respect to ``state_n``, shaped like it; None (or a None
        entry) means zeros.

    Returns
    -------
    dx : ndarray, shape (T, N, I)
    dstate0 : tuple of ndarray
        Shaped like ``state0`` (also when ``state0`` was None).
    grads : dict
        Keyed like ``params``, one entry for every parameter present.
    """
    _check_trainable(cache)
    dtype = cache["x"].dtype
    lstm = cache["c0"] is not None
    dh_n, dc_n = (tuple(None if d is None else np.asarray(d, dtype=dtype)
                        for d in (dstate_n or (None, None))) + (None,))[:2]
    stack = {k: cache[k] for k in ("cells_per_layer", "params", "x", "h0", "c0", "saved")}
    dx, dh0, dc0, grads = stack_backward(**stack, dy=dy, dh_n=dh_n, dc_n=dc_n if lstm else None,
                                         lengths=cache["lengths"],
                                         dropout_masks=cache["dropout_masks"])
    return dx, (dh0, dc0) if lstm else (dh0,), grads
