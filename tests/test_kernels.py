"""The C kernels (through fastrnn.functional) against the NumPy reference.

Every cell and option, float32 and float64, shapes from T = N = H = 1 to
batches that do not divide by the number of threads; inference and training
forward, backward; 1 and 2 threads; central finite differences in float64.
The same call runs through ``fastrnn.functional`` and its twin
``fastrnn.reference``; float32 runs on both product paths (``kernel_dtype``
and ``product_path`` in conftest.py).
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


def run_layer(impl, cell, weights, x, h0, c0, lengths, dy, dh_n, dc_n, n_threads):
    """Forward for training and backward of one layer through ``impl`` (the
    kernels, ``fastrnn.functional``, or its twin ``fastrnn.reference``)."""
    cells = [cell] * h0.shape[0]
    y, h_n, c_n, saved = impl.layer_forward(cells, x, h0, c0, weights, lengths=lengths,
                                            training=True, n_threads=n_threads)
    dx, dh0, dc0, grads = impl.layer_backward(cells, x, h0, c0, weights, saved, dy, dh_n,
                                              dc_n, lengths=lengths, n_threads=n_threads)
    return y, h_n, c_n, dx, dh0, dc0, grads


def run_kernels(cell, weights, x, h0, c0, lengths, dy, dh_n, dc_n, n_threads):
    """``run_layer`` through the kernels, whose inference forward must agree.

    To float32's rounding: on a few rows of large weights inference reads
    them where they lie and training packs them, and the two products sum in
    another order."""
    got = run_layer(functional, cell, weights, x, h0, c0, lengths, dy, dh_n, dc_n, n_threads)
    inference = functional.layer_forward([cell] * h0.shape[0], x, h0, c0, weights,
                                         lengths=lengths, n_threads=n_threads)
    tol = dict(rtol=1e-6, atol=1e-7) if x.dtype == np.float64 else dict(rtol=1e-5, atol=2e-6)
    for a, b in zip(inference[:3], got[:3]):
        if a is not None:
            np.testing.assert_allclose(a, b, **tol)
    return got


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
    want = run_layer(reference, cell, weights, x, h0, c0, lengths, dy, dh_n, dc_n, n_threads)
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
@pytest.mark.parametrize("D", [1, 2])
def test_small_shapes_match_reference(variant, kernel_dtype, D):
    dtype = kernel_dtype
    mode, cell_opts, layer_opts = variant
    for T, N, I, H in [(1, 1, 1, 1), (5, 3, 4, 6), (7, 9, 5, 33)]:
        assert_layer_matches(mode, cell_opts, layer_opts, T, N, I, H, D, dtype)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("D", [1, 2])
def test_lengths_match_reference(variant, D, kernel_dtype):
    mode, cell_opts, layer_opts = variant
    # Length 0 and T both present; the reverse direction starts at each own last step.
    assert_layer_matches(mode, cell_opts, layer_opts, 6, 5, 3, 7, D, kernel_dtype,
                         lengths=[6, 0, 3, 1, 6])


def make_stack(mode, L, D, T, N, I, H, P, dtype, rng):
    """Random params under torch's state_dict names, and the stack's other arguments."""
    H_out = P or H
    params = {}
    for k in range(L):
        _, weights, *_ = make_layer(mode, {}, {"proj": P, "peepholes": mode == "lstm"}, T, N,
                                    I if k == 0 else D * H_out, H, D, dtype, seed=k)
        for d, w in enumerate(weights):
            params.update({f"{name}_l{k}{'_reverse' if d else ''}": v for name, v in w.items()
                           if v is not None})
    x = rng.standard_normal((T, N, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((L * D, N, H_out))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((L * D, N, H))).astype(dtype) if mode == "lstm" else None
    masks = [((rng.random((T, N, D * H_out)) > 0.3) / 0.7).astype(dtype) for _ in range(L - 1)]
    return params, x, h0, c0, masks


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_stack_matches_reference_and_ignores_padded_dy(mode, kernel_dtype):
    """One stack_forward / stack_backward call through the kernels and the reference;
    NaN in dy past a sequence's length changes nothing (the kernels never read it)."""
    dtype, rng = kernel_dtype, np.random.default_rng(4)
    L, D, T, N, I, H, P = 2, 2, 5, 4, 3, 6, 2 if mode == "lstm" else 0
    params, x, h0, c0, masks = make_stack(mode, L, D, T, N, I, H, P, dtype, rng)
    cells = [[Cell.make(mode)] * D] * L
    lengths = np.array([5, 0, 2, 4], np.int64)
    padded = np.arange(T)[:, None] >= lengths[None, :]
    dy = rng.standard_normal((T, N, D * (P or H))).astype(dtype)
    dy_nan = np.where(padded[:, :, None], np.nan, dy).astype(dtype)
    dy_zero = np.where(padded[:, :, None], 0, dy).astype(dtype)
    dh_n = rng.standard_normal(h0.shape).astype(dtype)
    results = {}
    for impl in (functional, reference):
        y, h_n, c_n, saved = impl.stack_forward(cells, params, x, h0, c0, lengths=lengths,
                                                dropout_masks=masks, training=True)
        for name, d in (("nan", dy_nan), ("zero", dy_zero)):
            results[impl, name] = (y, h_n, c_n) + impl.stack_backward(
                cells, params, x, h0, c0, saved, d, dh_n, None, lengths=lengths,
                dropout_masks=masks)
    names = ["y", "h_n", "c_n", "dx", "dh0", "dc0"]
    for got_nan, got_zero, want in zip(results[functional, "nan"], results[functional, "zero"],
                                       results[reference, "nan"]):
        if isinstance(want, dict):
            assert want.keys() == params.keys() == got_nan.keys()
            for name in want:
                np.testing.assert_array_equal(got_nan[name], got_zero[name], err_msg=name)
                tol = dict(TOL[dtype])
                tol["atol"] *= max(1.0, float(np.abs(want[name]).max()))
                np.testing.assert_allclose(got_nan[name], want[name], **tol, err_msg=name)
        elif want is not None:
            name = names.pop(0)
            np.testing.assert_array_equal(got_nan, got_zero, err_msg=name)
            np.testing.assert_allclose(got_nan, want, **TOL[dtype], err_msg=name)
        else:
            names.pop(0)


def test_product_paths_switch(product_path):
    """The fixture really selects the path the float32 kernels take."""
    assert _core.packed_isa() == (None if product_path == "blas" else product_path)
    assert _core.packed_enabled() == (product_path != "blas")


# Shapes where two threads split the batch, split the hidden units, or stay at
# one; T * N > 1024 makes inference run its input GEMM in chunks of steps.
SPLIT_SHAPES = [(20, 17, 5, 40), (12, 3, 4, 130), (300, 5, 3, 20)]


@pytest.mark.parametrize("mode,cell_opts,layer_opts",
                         [("rnn", {}, {}), ("lstm", {}, {}), ("lstm", {}, {"proj": 37, "peepholes": True}),
                          ("gru", {}, {}), ("gru", {"linear_before_reset": False}, {})])
@pytest.mark.parametrize("shape", SPLIT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_thread_splits_match_reference(mode, cell_opts, layer_opts, shape, with_lengths, kernel_dtype):
    dtype = kernel_dtype
    T, N, I, H = shape
    lengths = np.random.default_rng(N).integers(0, T + 1, N) if with_lengths else None
    for D in (1, 2):
        assert_layer_matches(mode, cell_opts, layer_opts, T, N, I, H, D, dtype, lengths=lengths)


# Inference on up to four rows reads weights too big for L2 where they lie
# (dot products of rows, nothing packed): gates * H * (I + H) > 2^19 floats;
# on two threads, fewer than 16 rows of them split the hidden units.
# Widths that leave tails: of the rows of B (n mod 4) and of K (mod 16).
@pytest.mark.parametrize("mode,layer_opts,I,H", [("rnn", {}, 301, 650), ("lstm", {}, 301, 250),
                                                 ("lstm", {"proj": 37}, 601, 250),
                                                 ("gru", {}, 301, 342)])
@pytest.mark.parametrize("N", [1, 3, 4, 8])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_few_rows_of_large_weights_match_reference(mode, layer_opts, I, H, N, n_threads,
                                                   kernel_dtype):
    assert_layer_matches(mode, {}, layer_opts, 3, N, I, H, 2, kernel_dtype, n_threads=n_threads)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("D", [1, 2])
@pytest.mark.parametrize("N", [13, 2], ids=["batch-split", "hidden-split"])
def test_one_and_two_threads_agree(mode, kernel_dtype, D, N):
    dtype = kernel_dtype
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
                # a weight gradient sums T * N terms, and BLAS may sum a split of the
                # rows in another order: its rounding scales with the largest sum
                scaled = dict(tol, atol=tol["atol"] * max(1.0, float(np.abs(a).max())))
                np.testing.assert_allclose(a, results[1][6][d][name], **scaled, err_msg=name)


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
def test_kept_scratch_never_shows_through(variant, kernel_dtype):
    dtype = kernel_dtype
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scratch_and_saved_start_on_cache_lines(dtype):
    """The kernels' scratch and training's saved block start on a 64-byte line
    (the layout then keeps every region, and each packed panel row, on one)."""
    cell, weights, x, h0, c0, _ = make_layer("lstm", {}, {}, 5, 3, 4, 20, dtype=dtype)
    y, _, _, saved = functional.layer_forward([cell], x, h0, c0, weights, training=True)
    assert _core._kept.buffers[np.dtype(dtype)].ctypes.data % 64 == 0
    assert all(block.ctypes.data % 64 == 0 and block.dtype == dtype for block in saved)


def test_large_scratch_is_not_kept(monkeypatch):
    monkeypatch.setattr(_core, "KEEP_SCRATCH_BYTES", 1 << 20)
    cell, weights, x, h0, c0, _ = make_layer("rnn", {}, {}, 3, 2, 4, 8, dtype=np.float32)
    functional.layer_forward([cell], x, h0, c0, weights)
    kept = _core._kept.buffers[np.dtype(np.float32)]
    T = _core.KEEP_SCRATCH_BYTES // (2 * 8 * 4) + 1   # training scratch over the limit
    cell, weights, x, h0, c0, rng = make_layer("rnn", {}, {}, T, 2, 1, 8, dtype=np.float32)
    y, h_n, _, saved = functional.layer_forward([cell], x, h0, c0, weights, training=True)
    functional.layer_backward([cell], x, h0, c0, weights, saved, np.ones_like(y), None, None)
    assert _core._kept.buffers[np.dtype(np.float32)] is kept


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_long_sequence_stays_finite(mode, product_path):
    """T = 2000: the state stays bounded and still matches the reference."""
    cell, weights, x, h0, c0, rng = make_layer(mode, {}, {}, 2000, 2, 4, 8, dtype=np.float32)
    y, h_n, c_n, _ = functional.layer_forward([cell], x, h0, c0, weights)
    assert np.all(np.isfinite(y))
    y_ref, _, _, _ = reference.layer_forward([cell], x, h0, c0, weights)
    np.testing.assert_allclose(y, y_ref, rtol=1e-3, atol=1e-4)


def test_nan_propagates(product_path):
    cell, weights, x, h0, c0, _ = make_layer("lstm", {}, {}, 3, 2, 2, 4, dtype=np.float32)
    x[1, 0, 0] = np.nan
    y, h_n, c_n, _ = functional.layer_forward([cell], x, h0, c0, weights)
    assert np.all(np.isfinite(y[0])) and np.all(np.isnan(y[1:, 0]))
    assert np.all(np.isfinite(y[:, 1]))


def test_activations_accurate_over_range(product_path):
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
