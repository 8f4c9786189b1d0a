"""The C kernels (through fastrnn.functional) against the NumPy reference.

Every cell and option, float32 and float64, shapes from T = N = H = 1 to
batches that do not divide by the number of threads; inference and training
forward, backward; 1 and 2 threads; central finite differences in float64.
"""

import numpy as np
import pytest

from fastrnn import _core, functional, reference
from fastrnn._cell import Cell

TOL = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}

# (mode, cell options, layer options) for every option of the kernels.
VARIANTS = [
    ("rnn", {}, {}),
    ("rnn", {"nonlinearity": "relu"}, {}),
    ("rnn", {"activations": ("Softsign",)}, {}),
    ("rnn", {"clip": 0.3}, {"bias": False}),
    ("lstm", {}, {}),
    ("lstm", {}, {"proj": 3}),
    ("lstm", {}, {"peepholes": True}),
    ("lstm", {"input_forget": True}, {"peepholes": True}),
    ("lstm", {"clip": 0.4}, {}),
    ("lstm", {"activations": ("HardSigmoid", "LeakyRelu", "ScaledTanh"),
              "alphas": (0.3, 0.05, 1.5), "betas": (0.4, 0.7)}, {}),
    ("lstm", {}, {"proj": 2, "peepholes": True, "bias": False}),
    ("gru", {}, {}),
    ("gru", {"linear_before_reset": False}, {}),
    ("gru", {"clip": 0.4}, {}),
    ("gru", {"linear_before_reset": False}, {"bias": False}),
    ("gru", {"activations": ("Softsign", "Elu"), "alphas": (0.7,)}, {}),
]
VARIANT_IDS = [f"{m}-{'-'.join(f'{k}' for k in {**c, **l}) or 'default'}" for m, c, l in VARIANTS]


def make_layer(mode, cell_opts, layer_opts, T, N, I, H, D=1, dtype=np.float64, seed=0):
    """A random layer with PyTorch's initialisation, its input and initial state."""
    rng = np.random.default_rng(seed)
    cell = Cell.make(mode, **cell_opts)
    G, P = cell.gates, layer_opts.get("proj", 0)
    H_out = P or H
    bound = 1 / np.sqrt(H)

    def u(*shape):
        return rng.uniform(-bound, bound, shape).astype(dtype)

    bias = layer_opts.get("bias", True)
    weights = [dict(weight_ih=u(G * H, I), weight_hh=u(G * H, H_out),
                    bias_ih=u(G * H) if bias else None, bias_hh=u(G * H) if bias else None,
                    weight_hr=u(P, H) if P else None,
                    weight_peephole=u(3 * H) if layer_opts.get("peepholes") else None)
               for _ in range(D)]
    x = rng.standard_normal((T, N, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((D, N, H_out))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((D, N, H))).astype(dtype) if mode == "lstm" else None
    return cell, weights, x, h0, c0, rng


def reference_layer(cell, weights, x, h0, c0, lengths, dy, dh_n, dc_n):
    """Both directions of a layer through the reference, stacked like the kernels."""
    D, H_out = h0.shape[0], h0.shape[2]
    ys, hs, cs, dx, dh0, dc0, grads = [], [], [], 0, [], [], []
    for d in range(D):
        state0 = (h0[d],) if c0 is None else (h0[d], c0[d])
        y, state, cache = reference.layer_forward(cell, x, state0, weights[d], lengths=lengths,
                                                  reverse=d == 1)
        ys.append(y)
        hs.append(state[0])
        cs.append(state[-1])
        dstate = (dh_n[d],) if c0 is None else (dh_n[d], dc_n[d])
        dxd, dstate0, dw = reference.layer_backward(cache, dy[..., d * H_out:(d + 1) * H_out],
                                                    dstate)
        dx = dx + dxd
        dh0.append(dstate0[0])
        dc0.append(dstate0[-1])
        grads.append(dw)
    return (np.concatenate(ys, axis=2), np.stack(hs), np.stack(cs) if c0 is not None else None,
            dx, np.stack(dh0), np.stack(dc0) if c0 is not None else None, grads)


def run_kernels(cell, weights, x, h0, c0, lengths, dy, dh_n, dc_n, n_threads):
    D = h0.shape[0]
    y_inf, h_inf, c_inf, _ = functional.layer_forward([cell] * D, x, h0, c0, weights,
                                                      lengths=lengths, n_threads=n_threads)
    y, h_n, c_n, saved = functional.layer_forward([cell] * D, x, h0, c0, weights,
                                                  lengths=lengths, training=True,
                                                  n_threads=n_threads)
    for a, b in [(y_inf, y), (h_inf, h_n), (c_inf, c_n)]:
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    dx, dh0, dc0, grads = functional.layer_backward([cell] * D, x, h0, c0, weights, saved, dy,
                                                    dh_n, dc_n, lengths=lengths,
                                                    n_threads=n_threads)
    return y, h_n, c_n, dx, dh0, dc0, grads


def assert_layer_matches(mode, cell_opts, layer_opts, T, N, I, H, D=1, dtype=np.float64,
                         lengths=None, n_threads=2, seed=0):
    cell, weights, x, h0, c0, rng = make_layer(mode, cell_opts, layer_opts, T, N, I, H, D,
                                               dtype, seed)
    lengths = None if lengths is None else np.asarray(lengths, np.int64)
    dy = rng.standard_normal((T, N, D * h0.shape[2])).astype(dtype)
    dh_n = rng.standard_normal(h0.shape).astype(dtype)
    dc_n = rng.standard_normal(c0.shape).astype(dtype) if c0 is not None else None
    inputs = [a.copy() for a in (x, h0, dy, dh_n)]
    got = run_kernels(cell, weights, x, h0, c0, lengths, dy, dh_n, dc_n, n_threads)
    want = reference_layer(cell, weights, x, h0, c0, lengths, dy, dh_n, dc_n)
    names = ["y", "h_n", "c_n", "dx", "dh0", "dc0"]
    for name, a, b in zip(names, got[:6], want[:6]):
        if b is not None:
            np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=name)
    for d in range(D):
        for name, b in want[6][d].items():
            if b is not None:
                # a weight gradient sums T * N terms: its rounding error scales
                # with the largest of them, not with each (maybe cancelled) sum
                tol = dict(TOL[dtype])
                tol["atol"] *= max(1.0, float(np.abs(b).max(initial=0.0)))
                np.testing.assert_allclose(got[6][d][name], b, **tol,
                                           err_msg=f"{name} direction {d}")
    for before, after in zip(inputs, (x, h0, dy, dh_n)):
        np.testing.assert_array_equal(before, after)  # inputs never modified


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D", [1, 2])
def test_small_shapes_match_reference(variant, dtype, D):
    mode, cell_opts, layer_opts = variant
    for T, N, I, H in [(1, 1, 1, 1), (5, 3, 4, 6), (7, 9, 5, 33)]:
        assert_layer_matches(mode, cell_opts, layer_opts, T, N, I, H, D, dtype)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("D", [1, 2])
def test_lengths_match_reference(variant, D):
    mode, cell_opts, layer_opts = variant
    # Length 0 and T both present; the reverse direction starts at each own last step.
    assert_layer_matches(mode, cell_opts, layer_opts, 6, 5, 3, 7, D, lengths=[6, 0, 3, 1, 6])


# Shapes where two threads split the batch, split the hidden units, or stay at
# one; T * N > 1024 makes inference run its input GEMM in chunks of steps.
SPLIT_SHAPES = [(20, 17, 5, 40), (12, 3, 4, 130), (300, 5, 3, 20)]


@pytest.mark.parametrize("mode,cell_opts,layer_opts",
                         [("rnn", {}, {}), ("lstm", {}, {}), ("lstm", {}, {"proj": 37, "peepholes": True}),
                          ("gru", {}, {}), ("gru", {"linear_before_reset": False}, {})])
@pytest.mark.parametrize("shape", SPLIT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_thread_splits_match_reference(mode, cell_opts, layer_opts, shape, with_lengths, dtype):
    T, N, I, H = shape
    lengths = np.random.default_rng(N).integers(0, T + 1, N) if with_lengths else None
    for D in (1, 2):
        assert_layer_matches(mode, cell_opts, layer_opts, T, N, I, H, D, dtype, lengths=lengths)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D", [1, 2])
@pytest.mark.parametrize("N", [13, 2], ids=["batch-split", "hidden-split"])
def test_one_and_two_threads_agree(mode, dtype, D, N):
    # 13 rows do not divide between 2 threads; 2 rows make the threads split units.
    cell, weights, x, h0, c0, rng = make_layer(mode, {}, {}, 9, N, 6, 160, D, dtype)
    dy = rng.standard_normal((9, N, D * 160)).astype(dtype)
    results = [run_kernels(cell, weights, x, h0, c0, None, dy, None, None, n)
               for n in (1, 2)]
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for a, b in zip(results[0][:6], results[1][:6]):
        if a is not None:
            np.testing.assert_allclose(a, b, **tol)
    for d in range(D):
        for name, a in results[0][6][d].items():
            if a is not None:
                np.testing.assert_allclose(a, results[1][6][d][name], **tol)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_gradients_match_finite_differences(variant):
    """d <dy, y> / d theta along a random direction, central differences in float64."""
    mode, cell_opts, layer_opts = variant
    cell, weights, x, h0, c0, rng = make_layer(mode, cell_opts, layer_opts, 4, 3, 3, 5, 2,
                                               seed=1)
    lengths = np.array([4, 2, 3], np.int64)
    dy = rng.standard_normal((4, 3, 2 * h0.shape[2]))

    def loss(x, h0, c0, weights):
        y, h_n, c_n, _ = functional.layer_forward([cell] * 2, x, h0, c0, weights,
                                                  lengths=lengths)
        return np.sum(y * dy) + np.sum(h_n) + (np.sum(c_n * c_n) if c_n is not None else 0)

    y, h_n, c_n, saved = functional.layer_forward([cell] * 2, x, h0, c0, weights,
                                                  lengths=lengths, training=True)
    dx, dh0, dc0, grads = functional.layer_backward(
        [cell] * 2, x, h0, c0, weights, saved, dy, np.ones_like(h_n),
        None if c_n is None else 2 * c_n, lengths=lengths)
    eps = 1e-6
    params = {"x": (x, dx), "h0": (h0, dh0)}
    if c0 is not None:
        params["c0"] = (c0, dc0)
    for d in range(2):
        for name, w in weights[d].items():
            if w is not None:
                params[f"{name}[{d}]"] = (w, grads[d][name])
    for name, (value, analytic) in params.items():
        direction = rng.standard_normal(value.shape)
        original = value.copy()
        value += eps * direction
        up = loss(x, h0, c0, weights)
        value[...] = original - eps * direction
        down = loss(x, h0, c0, weights)
        value[...] = original
        numeric = (up - down) / (2 * eps)
        assert np.isclose(np.sum(analytic * direction), numeric, rtol=1e-6, atol=1e-7), name


@pytest.mark.parametrize("variant", [v for v in VARIANTS if not v[1] and not v[2]],
                         ids=["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kept_scratch_never_shows_through(variant, dtype):
    """The scratch kept between calls is filled with NaN: the next answers must not change."""
    mode, cell_opts, layer_opts = variant
    cell, weights, x, h0, c0, rng = make_layer(mode, cell_opts, layer_opts, 7, 5, 4, 24, 2, dtype)
    lengths = np.array([7, 3, 5, 1, 6], np.int64)
    dy = rng.standard_normal((7, 5, 48)).astype(dtype)
    for n_threads in (1, 2):
        first = run_kernels(cell, weights, x, h0, c0, lengths, dy, None, None, n_threads)
        kept = _core._kept.buffers[np.dtype(dtype)]
        kept[...] = np.nan
        again = run_kernels(cell, weights, x, h0, c0, lengths, dy, None, None, n_threads)
        assert _core._kept.buffers[np.dtype(dtype)] is kept  # the same buffer, reused
        for a, b in zip(first[:6], again[:6]):
            if a is not None:
                np.testing.assert_array_equal(a, b)
        for d in range(2):
            for name, a in first[6][d].items():
                if a is not None:
                    np.testing.assert_array_equal(a, again[6][d][name], err_msg=name)


def test_large_scratch_is_not_kept():
    cell, weights, x, h0, c0, _ = make_layer("rnn", {}, {}, 3, 2, 4, 8, dtype=np.float32)
    functional.layer_forward([cell], x, h0, c0, weights)
    kept = _core._kept.buffers[np.dtype(np.float32)]
    T = _core.KEEP_SCRATCH_BYTES // (2 * 8 * 4) + 1   # training scratch over the limit
    cell, weights, x, h0, c0, rng = make_layer("rnn", {}, {}, T, 2, 1, 8, dtype=np.float32)
    y, h_n, _, saved = functional.layer_forward([cell], x, h0, c0, weights, training=True)
    functional.layer_backward([cell], x, h0, c0, weights, saved, np.ones_like(y), None, None)
    assert _core._kept.buffers[np.dtype(np.float32)] is kept


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_long_sequence_stays_finite(mode):
    """T = 2000: the state stays bounded and still matches the reference."""
    cell, weights, x, h0, c0, rng = make_layer(mode, {}, {}, 2000, 2, 4, 8, dtype=np.float32)
    y, h_n, c_n, _ = functional.layer_forward([cell], x, h0, c0, weights)
    assert np.all(np.isfinite(y))
    state0 = (h0[0],) if c0 is None else (h0[0], c0[0])
    y_ref, _, _ = reference.layer_forward(cell, x, state0, weights[0])
    np.testing.assert_allclose(y[..., :], y_ref, rtol=1e-3, atol=1e-4)


def test_nan_propagates():
    cell, weights, x, h0, c0, _ = make_layer("lstm", {}, {}, 3, 2, 2, 4, dtype=np.float32)
    x[1, 0, 0] = np.nan
    y, h_n, c_n, _ = functional.layer_forward([cell], x, h0, c0, weights)
    assert np.all(np.isfinite(y[0])) and np.all(np.isnan(y[1:, 0]))
    assert np.all(np.isfinite(y[:, 1]))


def test_activations_accurate_over_range():
    """The float32 sigmoid and tanh of the kernels against float64 NumPy."""
    x = np.concatenate([np.linspace(-30, 30, 20001), [0.0, 1e-30, -1e-8, 0.2499, 0.2501,
                                                      np.inf, -np.inf]])
    x = x.astype(np.float32).astype(np.float64)  # the inputs the kernel sees
    for mode, act in [("rnn", "Tanh"), ("rnn", "Sigmoid")]:
        cell = Cell.make(mode, activations=(act,))
        n = x.size
        weights = [dict(weight_ih=np.ones((1, 1), np.float32), weight_hh=np.zeros((1, 1), np.float32),
                        bias_ih=None, bias_hh=None, weight_hr=None, weight_peephole=None)]
        xs = x.astype(np.float32).reshape(1, n, 1)
        y, *_ = functional.layer_forward([cell], xs, np.zeros((1, n, 1), np.float32), None,
                                         weights)
        want = np.tanh(x) if act == "Tanh" else 1 / (1 + np.exp(-x))
        err = np.abs(y.ravel().astype(np.float64) - want) / np.maximum(np.abs(want), 1e-30)
        assert err.max() < 4 * np.finfo(np.float32).eps, (act, x[np.argmax(err)])
