"""The public NumPy API: fastrnn.RNN / LSTM / GRU and the cells.

Against PyTorch (when importable) for everything PyTorch has, against
``fastrnn.reference`` for the options beyond it, and a battery of malformed
arguments.  Run with ``-s`` to see the largest error against PyTorch per cell
and dtype.
"""

import concurrent.futures
import copy
import doctest
import pickle
import random
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastrnn
import fastrnn.cells
import fastrnn.layers
from fastrnn import reference as ref
from fastrnn._cell import Cell

try:
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
except ImportError:  # pragma: no cover - torch is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")

CLASSES = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}
def assert_close(a, b, dtype, errors=None, key=None):
    """Equal within the dtype's tolerance; the error recorded under ``key`` in ``errors``."""
    if key is not None:
        errors.record(key, a, b)
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               **TOL[dtype])


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


# ---------------------------------------------------------------------------
# 1. Parity with torch.nn, random configurations

def torch_module(m, mode, dtype):
    kwargs = dict(num_layers=m.num_layers, bias=m.bias, batch_first=m.batch_first,
                  bidirectional=m.bidirectional,
                  dtype=torch.float32 if dtype == np.float32 else torch.float64)
    if mode == "lstm":
        kwargs["proj_size"] = m.proj_size
    if mode == "rnn":
        kwargs["nonlinearity"] = m.nonlinearity
    tm = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[mode](
        m.input_size, m.hidden_size, **kwargs)
    return tm


def random_config(mode, nonlinearity, dtype, case):
    """A configuration in which every option shows up across the cases."""
    r = random.Random(f"{mode}-{nonlinearity}-{dtype.__name__}-{case}")
    cfg = dict(L=case % 3 + 1, bidirectional=case in (1, 3, 4, 5), batch_first=case in (1, 2, 5),
               bias=case != 3, unbatched=case == 4, T=r.randint(1, 6), N=r.randint(1, 4),
               I=r.randint(1, 5), H=r.randint(2, 5))
    cfg["proj"] = r.randint(1, cfg["H"] - 1) if mode == "lstm" and case in (1, 2, 4, 5) else 0
    cfg["lengths"] = None
    if not cfg["unbatched"] and case % 3 != 1:
        cfg["lengths"] = [r.randint(1, cfg["T"]) for _ in range(cfg["N"])]
        cfg["lengths"][0] = cfg["T"]
    return cfg


TORCH_CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]


@needs_torch
@pytest.mark.parametrize("case", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode,nonlinearity", TORCH_CELLS, ids=["rnn-tanh", "rnn-relu",
                                                               "lstm", "gru"])
def test_matches_torch(mode, nonlinearity, dtype, case, largest_errors):
    cfg = random_config(mode, nonlinearity, dtype, case)
    rng = np.random.default_rng(case)
    kwargs = dict(proj_size=cfg["proj"]) if mode == "lstm" else {}
    if mode == "rnn":
        kwargs["nonlinearity"] = nonlinearity
    m = CLASSES[mode](cfg["I"], cfg["H"], num_layers=cfg["L"], bias=cfg["bias"],
                      batch_first=cfg["batch_first"], bidirectional=cfg["bidirectional"],
                      dtype=dtype, seed=case, **kwargs)
    tm = torch_module(m, mode, dtype)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    T, N, I, H, L = cfg["T"], cfg["N"], cfg["I"], cfg["H"], cfg["L"]
    D = 2 if cfg["bidirectional"] else 1
    H_out = cfg["proj"] or H
    if cfg["unbatched"]:
        x_shape, s_shape, c_shape = (T, I), (L * D, H_out), (L * D, H)
    else:
        x_shape = (N, T, I) if cfg["batch_first"] else (T, N, I)
        s_shape, c_shape = (L * D, N, H_out), (L * D, N, H)
    x = rng.standard_normal(x_shape).astype(dtype)
    h0 = (rng.standard_normal(s_shape) * 0.5).astype(dtype)
    c0 = (rng.standard_normal(c_shape) * 0.5).astype(dtype)
    state0 = (h0, c0) if mode == "lstm" else h0

    y, state_n, cache = m.forward_train(x, state0, lengths=cfg["lengths"])
    y_inf, state_inf = m(x, state0, lengths=cfg["lengths"])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dstate = tuple(rng.standard_normal(s.shape).astype(dtype) for s in as_tuple(state_n))
    dx, dstate0, grads = m.backward(cache, dy, dstate if mode == "lstm" else dstate[0])

    # torch, autograd
    x_t = torch.tensor(x, requires_grad=True)
    s0_t = [torch.tensor(s, requires_grad=True) for s in as_tuple(state0)]
    hx = tuple(s0_t) if mode == "lstm" else s0_t[0]
    if cfg["lengths"] is not None:
        packed = pack_padded_sequence(x_t, torch.tensor(cfg["lengths"]),
                                      batch_first=cfg["batch_first"], enforce_sorted=False)
        out, hn = tm(packed, hx)
        y_t, _ = pad_packed_sequence(out, batch_first=cfg["batch_first"], total_length=T)
    else:
        y_t, hn = tm(x_t, hx)
    hn = hn if mode == "lstm" else (hn,)
    loss = (y_t * torch.tensor(dy)).sum() + sum((h * torch.tensor(g)).sum()
                                                for h, g in zip(hn, dstate))
    loss.backward()

    cell = mode if mode != "rnn" else f"rnn-{nonlinearity}"
    dt = dtype.__name__
    assert y.shape == tuple(y_t.shape)
    assert_close(y, y_t.detach().numpy(), dtype, largest_errors, ("forward", cell, dt))
    np.testing.assert_array_equal(y, y_inf)
    for a, b, c in zip(as_tuple(state_n), hn, as_tuple(state_inf)):
        assert_close(a, b.detach().numpy(), dtype, largest_errors, ("forward", cell, dt))
        np.testing.assert_array_equal(a, c)
    assert_close(dx, x_t.grad.numpy(), dtype, largest_errors, ("gradient", cell, dt))
    for a, b in zip(as_tuple(dstate0), s0_t):
        assert_close(a, b.grad.numpy(), dtype, largest_errors, ("gradient", cell, dt))
    assert list(grads) == list(m.state_dict())
    for name, p in tm.named_parameters():
        assert grads[name].shape == tuple(p.shape)
        assert_close(grads[name], p.grad.numpy(), dtype, largest_errors, ("gradient", cell, dt))


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_default_state_matches_torch(mode, dtype):
    """state0=None is zeros; dstate0 is still returned; dy/dstate None are zeros."""
    m = CLASSES[mode](3, 4, 2, bidirectional=True, dtype=dtype, seed=1)
    tm = torch_module(m, mode, dtype)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(dtype)
    y, state_n, cache = m.forward_train(x)
    zeros = [torch.zeros(4, 2, 4, dtype=tm.weight_hh_l0.dtype, requires_grad=True)
             for _ in as_tuple(state_n)]
    y_t, hn = tm(torch.tensor(x), tuple(zeros) if mode == "lstm" else zeros[0])
    assert_close(y, y_t.detach().numpy(), dtype)
    # loss = sum(y): dstate_n None
    y_t.sum().backward()
    dx, dstate0, grads = m.backward(cache, np.ones_like(y))
    for a, b in zip(as_tuple(dstate0), zeros):
        assert_close(a, b.grad.numpy(), dtype)
    for name, p in tm.named_parameters():
        assert_close(grads[name], p.grad.numpy(), dtype)
    # dy None, dstate_n given (LSTM: one half None)
    dx0, ds0, g0 = m.backward(cache)
    assert not np.any(dx0) and all(not np.any(g) for g in g0.values())
    dh = np.ones((4, 2, 4), dtype)
    if mode == "lstm":
        a = m.backward(cache, None, (dh, None))
        b = m.backward(cache, np.zeros_like(y), (dh, np.zeros_like(dh)))
    else:
        a = m.backward(cache, None, dh)
        b = m.backward(cache, np.zeros_like(y), dh)
    np.testing.assert_array_equal(a[0], b[0])
    for k in a[2]:
        np.testing.assert_array_equal(a[2][k], b[2][k])


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode,nonlinearity", TORCH_CELLS, ids=["rnn-tanh", "rnn-relu",
                                                               "lstm", "gru"])
def test_cells_match_torch(mode, nonlinearity, dtype, largest_errors):
    cls = {"rnn": fastrnn.RNNCell, "lstm": fastrnn.LSTMCell, "gru": fastrnn.GRUCell}[mode]
    tcls = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[mode]
    rng = np.random.default_rng(2)
    cell_name = mode if mode != "rnn" else f"rnn-{nonlinearity}"
    for bias in (True, False):
        kw = dict(nonlinearity=nonlinearity) if mode == "rnn" else {}
        cell = cls(3, 5, bias, dtype=dtype, seed=0, **kw)
        tcell = tcls(3, 5, bias, dtype=torch.float32 if dtype == np.float32
                     else torch.float64, **kw)
        tcell.load_state_dict({k: torch.from_numpy(v) for k, v in cell.state_dict().items()})
        for shape in [(4, 3), (3,), (1, 3)]:
            x = rng.standard_normal(shape).astype(dtype)
            hshape = shape[:-1] + (5,)
            h = rng.standard_normal(hshape).astype(dtype)
            c = rng.standard_normal(hshape).astype(dtype)
            with torch.no_grad():
                if mode == "lstm":
                    want = tcell(torch.tensor(x), (torch.tensor(h), torch.tensor(c)))
                    got = cell(x, (h, c))
                    want0 = tcell(torch.tensor(x))
                    got0 = cell(x)
                else:
                    want, got = (tcell(torch.tensor(x), torch.tensor(h)),), (cell(x, h),)
                    want0, got0 = (tcell(torch.tensor(x)),), (cell(x),)
            for a, b in zip(got + got0, want + want0):
                assert a.shape == tuple(b.shape)
                assert_close(a, b.numpy(), dtype, largest_errors, ("cell", cell_name, dtype.__name__))


# ---------------------------------------------------------------------------
# 2. Lengths of 0 and T against the reference (PyTorch does not take 0)

def expected_cells(mode, D, activations=None, alphas=(), betas=(), **options):
    """One Cell per direction, alphas/betas consumed in order across directions."""
    from fastrnn._cell import ACTIVATIONS, DEFAULT_ACTIVATIONS
    k = len(DEFAULT_ACTIVATIONS[mode])
    names = [None] * D if activations is None else [activations[d * k:(d + 1) * k]
                                                    for d in range(D)]
    alphas, betas, cells = list(alphas or ()), list(betas or ()), []
    for d in range(D):
        n_a = n_b = 0
        if names[d] is not None:
            n_a = sum(ACTIVATIONS[n][0] is not None for n in names[d])
            n_b = sum(ACTIVATIONS[n][1] is not None for n in names[d])
        cells.append(Cell.make(mode, activations=names[d], alphas=alphas[:n_a],
                               betas=betas[:n_b], **options))
        alphas, betas = alphas[n_a:], betas[n_b:]
    return cells


def check_against_reference(m, cells, x, state0, lengths, dtype, dropout_masks=None,
                            tol=None, y=None, state_n=None, cache=None):
    """forward_train and backward of module ``m`` against reference.forward/backward."""
    tol = tol or TOL[dtype]
    rng = np.random.default_rng(5)
    if cache is None:
        y, state_n, cache = m.forward_train(x, state0, lengths=lengths)
    masks = cache.dropout_masks if dropout_masks is None else dropout_masks
    y_r, state_r, cache_r = ref.forward(cells, x, None if state0 is None else
                                        as_tuple(state0), m.state_dict(),
                                        num_layers=m.num_layers, bidirectional=m.bidirectional,
                                        lengths=lengths, dropout_masks=masks)
    np.testing.assert_allclose(y, y_r, **tol)
    for a, b in zip(as_tuple(state_n), state_r):
        np.testing.assert_allclose(a, b, **tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dstate = tuple(rng.standard_normal(s.shape).astype(dtype) for s in as_tuple(state_n))
    dx, dstate0, grads = m.backward(cache, dy, dstate if len(dstate) == 2 else dstate[0])
    dx_r, dstate0_r, grads_r = ref.backward(cache_r, dy, dstate)
    np.testing.assert_allclose(dx, dx_r, **tol)
    for a, b in zip(as_tuple(dstate0), dstate0_r):
        np.testing.assert_allclose(a, b, **tol)
    assert set(grads) == set(grads_r)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads_r[k], **tol, err_msg=k)


def random_state(m, N, dtype, rng):
    D = 2 if m.bidirectional else 1
    h = rng.standard_normal((m.num_layers * D, N, m.proj_size or m.hidden_size)).astype(dtype)
    if isinstance(m, fastrnn.LSTM):
        return h, rng.standard_normal((m.num_layers * D, N, m.hidden_size)).astype(dtype)
    return h


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_lengths_zero_and_full_against_reference(mode, dtype):
    rng = np.random.default_rng(3)
    kw = dict(proj_size=2) if mode == "lstm" else {}
    m = CLASSES[mode](3, 4, 2, bidirectional=True, dtype=dtype, seed=3, **kw)
    x = rng.standard_normal((5, 4, 3)).astype(dtype)
    state0 = random_state(m, 4, dtype, rng)
    lengths = np.array([0, 5, 2, 0])
    check_against_reference(m, expected_cells(mode, 2), x, state0, lengths, dtype)
    y, state_n = m(x, state0, lengths=lengths)
    assert not np.any(y[:, 0]) and not np.any(y[2:, 2])
    for s, s0 in zip(as_tuple(state_n), as_tuple(state0)):
        np.testing.assert_array_equal(s[:, [0, 3]], s0[:, [0, 3]])  # length 0: state0
    # lengths as a list, a tuple and an unsigned array give the same answer
    for other in (lengths.tolist(), tuple(lengths.tolist()), lengths.astype(np.uint8)):
        np.testing.assert_array_equal(m(x, state0, lengths=other)[0], y)
    # all lengths T is no lengths
    np.testing.assert_array_equal(m(x, state0, lengths=[5] * 4)[0], m(x, state0)[0])


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(["rnn", "lstm", "gru"]), L=st.integers(1, 3),
       bidirectional=st.booleans(), batch_first=st.booleans(), T=st.integers(1, 5),
       N=st.integers(1, 4), proj=st.booleans(), data=st.data())
def test_random_shapes_against_reference(mode, L, bidirectional, batch_first, T, N, proj,
                                         data):
    kw = dict(proj_size=2) if mode == "lstm" and proj else {}
    m = CLASSES[mode](2, 3, L, bidirectional=bidirectional, batch_first=batch_first,
                      dtype=np.float64, seed=0, **kw)
    lengths = data.draw(st.none() | st.lists(st.integers(0, T), min_size=N, max_size=N))
    rng = np.random.default_rng(T * 10 + N)
    x = rng.standard_normal((T, N, 2))
    state0 = random_state(m, N, np.float64, rng)
    D = 2 if bidirectional else 1
    layout = (lambda a: np.swapaxes(a, 0, 1)) if batch_first else (lambda a: a)
    y, state_n, cache = m.forward_train(layout(x), state0, lengths=lengths)
    y_r, state_r, cache_r = ref.forward(expected_cells(mode, D), x, as_tuple(state0),
                                        m.state_dict(), num_layers=L,
                                        bidirectional=bidirectional, lengths=lengths)
    tol = TOL[np.float64]
    np.testing.assert_allclose(layout(y), y_r, **tol)
    for a, b in zip(as_tuple(state_n), state_r):
        np.testing.assert_allclose(a, b, **tol)
    dy = rng.standard_normal(y_r.shape)
    dstate = tuple(rng.standard_normal(s.shape) for s in state_r)
    dx, dstate0, grads = m.backward(cache, layout(dy), dstate if mode == "lstm" else dstate[0])
    dx_r, dstate0_r, grads_r = ref.backward(cache_r, dy, dstate)
    np.testing.assert_allclose(layout(dx), dx_r, **tol)
    for a, b in zip(as_tuple(dstate0), dstate0_r):
        np.testing.assert_allclose(a, b, **tol)
    for k in grads_r:
        np.testing.assert_allclose(grads[k], grads_r[k], **tol, err_msg=k)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_dy_at_padded_positions_is_ignored(mode):
    m = CLASSES[mode](3, 4, 2, bidirectional=True, batch_first=True, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 3))
    lengths = [5, 2, 0]
    y, _, cache = m.forward_train(x, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    dy_garbage = dy.copy()
    dy_garbage[1, 2:] = np.nan
    dy_garbage[2] = 1e30
    dy_clean = dy.copy()
    dy_clean[1, 2:] = 0
    dy_clean[2] = 0
    a, b = m.backward(cache, dy_garbage), m.backward(cache, dy_clean)
    np.testing.assert_array_equal(a[0], b[0])
    for k in a[2]:
        np.testing.assert_array_equal(a[2][k], b[2][k])
    assert not np.any(a[0][2])


# ---------------------------------------------------------------------------
# 3. Options beyond PyTorch against the reference (float64 tight)

OPTION_CASES = {
    "lstm-peepholes": ("lstm", dict(peepholes=True), {}),
    "lstm-clip": ("lstm", dict(cell_clip=0.5), dict(clip=0.5)),
    "lstm-input-forget": ("lstm", dict(input_forget=True), dict(input_forget=True)),
    "lstm-all-proj": ("lstm", dict(peepholes=True, cell_clip=0.8, input_forget=True,
                                   proj_size=2), dict(clip=0.8, input_forget=True)),
    "lstm-activations": ("lstm", dict(activations=["HardSigmoid", "LeakyRelu", "ScaledTanh"],
                                      activation_alpha=[0.3, 0.05, 1.5],
                                      activation_beta=[0.4, 0.7]), {}),
    "lstm-bidir-activations": ("lstm", dict(
        bidirectional=True, peepholes=True,
        activations=["Sigmoid", "Softsign", "Tanh", "HardSigmoid", "Elu", "Affine"],
        activation_alpha=[0.25, 0.9, 0.5], activation_beta=[0.45, 0.1]), {}),
    "gru-original": ("gru", dict(linear_before_reset=False),
                     dict(linear_before_reset=False)),
    "gru-bidir-original-activations": ("gru", dict(
        linear_before_reset=False, bidirectional=True,
        activations=["Sigmoid", "Softplus", "HardSigmoid", "ThresholdedRelu"],
        activation_alpha=[0.2, 0.1]), dict(linear_before_reset=False)),
    "gru-default-activations-named": ("gru", dict(activations=["Sigmoid", "Tanh"]), {}),
    "rnn-activations": ("rnn", dict(activations=["LeakyRelu"], activation_alpha=[0.2]), {}),
    "rnn-bidir-activations": ("rnn", dict(bidirectional=True,
                                          activations=["ScaledTanh", "Elu"],
                                          activation_alpha=[0.8, 0.6],
                                          activation_beta=[1.2]), {}),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", OPTION_CASES)
def test_options_against_reference(name, dtype):
    mode, kwargs, cell_options = OPTION_CASES[name]
    rng = np.random.default_rng(len(name))
    m = CLASSES[mode](3, 4, 2, dtype=dtype, seed=7, **kwargs)
    D = 2 if m.bidirectional else 1
    cells = expected_cells(mode, D, kwargs.get("activations"), kwargs.get("activation_alpha"),
                           kwargs.get("activation_beta"), **cell_options)
    x = rng.standard_normal((5, 3, 3)).astype(dtype)
    state0 = random_state(m, 3, dtype, rng)
    if name.startswith("lstm-peep") or "peepholes" in kwargs:
        assert m.state_dict()["weight_peephole_l1"].shape == (12,)
    check_against_reference(m, cells, x, state0, [5, 1, 3], dtype)
    check_against_reference(m, cells, x, None, None, dtype)


def test_option_defaults_and_properties():
    lstm = fastrnn.LSTM(3, 4, peepholes=True, cell_clip=2, input_forget=True, seed=0)
    assert lstm.peepholes and lstm.cell_clip == 2.0 and lstm.input_forget
    keys = list(lstm.state_dict())
    assert keys == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                    "weight_peephole_l0"]
    assert fastrnn.GRU(3, 4).linear_before_reset is True
    assert fastrnn.RNN(3, 4, nonlinearity="relu").nonlinearity == "relu"
    # the ONNX default activations are the same as no activations
    a = fastrnn.LSTM(3, 4, seed=0, activations=["Sigmoid", "Tanh", "Tanh"])
    b = fastrnn.LSTM(3, 4, seed=0)
    x = np.ones((2, 1, 3), np.float32)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])


# ---------------------------------------------------------------------------
# 4. Dropout

@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_dropout_reproducible_and_reused_by_backward(mode):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 3))
    make = lambda seed: CLASSES[mode](3, 5, 3, dropout=0.4, bidirectional=True,
                                      dtype=np.float64, seed=seed)
    a, b = make(11), make(11)
    ya, sa, ca = a.forward_train(x, lengths=[4, 2, 3])
    yb, _, cb = b.forward_train(x, lengths=[4, 2, 3])
    np.testing.assert_array_equal(ya, yb)
    assert len(ca.dropout_masks) == 2
    for ma, mb in zip(ca.dropout_masks, cb.dropout_masks):
        assert ma.shape == (4, 3, 10)
        np.testing.assert_array_equal(ma, mb)
        assert set(np.unique(ma)) <= {0.0, 1 / 0.6}
        assert 0.1 < np.mean(ma == 0) < 0.7
    # a second call draws new masks; inference has no dropout
    ya2, sa2, ca2 = a.forward_train(x, lengths=[4, 2, 3])
    assert not np.array_equal(ca.dropout_masks[0], ca2.dropout_masks[0])
    no_dropout = CLASSES[mode](3, 5, 3, bidirectional=True, dtype=np.float64, seed=11)
    np.testing.assert_array_equal(a(x)[0], no_dropout(x)[0])
    # backward uses the cache's masks: compare with the reference given the same masks
    check_against_reference(a, expected_cells(mode, 2), x, None, [4, 2, 3], np.float64,
                            y=ya, state_n=sa, cache=ca)
    check_against_reference(a, expected_cells(mode, 2), x, None, [4, 2, 3], np.float64,
                            y=ya2, state_n=sa2, cache=ca2)


def test_dropout_edge_cases_and_warning():
    with pytest.warns(UserWarning, match="dropout"):
        fastrnn.LSTM(3, 4, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastrnn.LSTM(3, 4, 2, dropout=0.5)
        fastrnn.LSTM(3, 4, 1, dropout=0.0)
    m = fastrnn.GRU(3, 4, 2, dropout=1.0, seed=0)
    x = np.ones((3, 2, 3), np.float32)
    y, h_n, cache = m.forward_train(x)
    assert np.all(np.isfinite(y)) and not np.any(cache.dropout_masks[0])
    dx, dh0, grads = m.backward(cache, np.ones_like(y))
    assert not np.any(dx) and np.all(np.isfinite(grads["weight_ih_l1"]))
    m1 = fastrnn.LSTM(3, 4, 1, seed=0)
    assert m1.forward_train(x)[2].dropout_masks is None


# ---------------------------------------------------------------------------
# 5. Malformed arguments: every entry point, type and message

LSTM_M = fastrnn.LSTM(3, 4, 2, seed=0)
GRU_M = fastrnn.GRU(3, 4, seed=0)
RNN_M = fastrnn.RNN(3, 4, seed=0, batch_first=True)
X = np.zeros((5, 2, 3), np.float32)
H0 = np.zeros((2, 2, 4), np.float32)
LSTM_CACHE = LSTM_M.forward_train(X)[2]
GRU_CACHE = GRU_M.forward_train(X)[2]
OTHER_CACHE = fastrnn.LSTM(3, 4, 2, seed=0).forward_train(X)[2]
LSTM_CELL = fastrnn.LSTMCell(3, 4, seed=0)
GRU_CELL = fastrnn.GRUCell(3, 4, seed=0)
SD = LSTM_M.state_dict()
BIDIR_M = fastrnn.LSTM(2 ** 10, 4, bidirectional=True, seed=0)


def huge(shape):
    """A float32 array of ``shape`` that takes no memory (every element the same)."""
    return np.broadcast_to(np.zeros((1,) * len(shape), np.float32), shape)


def sd_with(**changes):
    sd = dict(SD)
    for k, v in changes.items():
        if v is None:
            del sd[k]
        else:
            sd[k] = v
    return sd


BAD = {
    # constructors
    "input_size 0": (lambda: fastrnn.LSTM(0, 4), ValueError, "input_size"),
    "input_size float": (lambda: fastrnn.LSTM(3.0, 4), TypeError, "input_size"),
    "hidden_size 0": (lambda: fastrnn.GRU(3, 0), ValueError, "hidden_size"),
    "hidden_size bool": (lambda: fastrnn.RNN(3, True), TypeError, "hidden_size"),
    "num_layers 0": (lambda: fastrnn.LSTM(3, 4, 0), ValueError, "num_layers"),
    "num_layers str": (lambda: fastrnn.LSTM(3, 4, "2"), TypeError, "num_layers"),
    "dropout > 1": (lambda: fastrnn.LSTM(3, 4, 2, dropout=1.5), ValueError, "dropout"),
    "dropout str": (lambda: fastrnn.GRU(3, 4, 2, dropout="0.1"), ValueError, "dropout"),
    "dropout bool": (lambda: fastrnn.GRU(3, 4, 2, dropout=True), ValueError, "dropout"),
    "proj_size >= H": (lambda: fastrnn.LSTM(3, 4, proj_size=4), ValueError, "proj_size"),
    "proj_size < 0": (lambda: fastrnn.LSTM(3, 4, proj_size=-1), ValueError, "proj_size"),
    "dtype int": (lambda: fastrnn.LSTM(3, 4, dtype=np.int32), TypeError, "dtype"),
    "dtype float16": (lambda: fastrnn.GRU(3, 4, dtype=np.float16), TypeError, "dtype"),
    "dtype junk": (lambda: fastrnn.RNN(3, 4, dtype="nonsense"), TypeError, "dtype"),
    "dtype None": (lambda: fastrnn.RNN(3, 4, dtype=None), TypeError, "dtype"),
    "cell dtype": (lambda: fastrnn.LSTMCell(3, 4, dtype=np.complex64), TypeError, "dtype"),
    "nonlinearity": (lambda: fastrnn.RNN(3, 4, nonlinearity="sigmoid"), ValueError,
                     "nonlinearity"),
    "cell nonlinearity": (lambda: fastrnn.RNNCell(3, 4, nonlinearity="gelu"), ValueError,
                          "nonlinearity"),
    "cell input_size": (lambda: fastrnn.GRUCell(0, 4), ValueError, "input_size"),
    "cell hidden_size": (lambda: fastrnn.LSTMCell(3, 4.5), TypeError, "hidden_size"),
    "bias str": (lambda: fastrnn.LSTM(3, 4, bias="yes"), TypeError, "bias"),
    "batch_first": (lambda: fastrnn.LSTM(3, 4, batch_first=None), TypeError, "batch_first"),
    "bidirectional": (lambda: fastrnn.LSTM(3, 4, bidirectional=2), TypeError,
                      "bidirectional"),
    "cell_clip negative": (lambda: fastrnn.LSTM(3, 4, cell_clip=-1), ValueError, "cell_clip"),
    "cell_clip str": (lambda: fastrnn.LSTM(3, 4, cell_clip="1"), TypeError, "cell_clip"),
    "peepholes": (lambda: fastrnn.LSTM(3, 4, peepholes="no"), TypeError, "peepholes"),
    "activations count": (lambda: fastrnn.LSTM(3, 4, activations=["Sigmoid", "Tanh"]),
                          ValueError, "activations"),
    "activations bidir count": (lambda: fastrnn.LSTM(3, 4, bidirectional=True,
                                                     activations=["Sigmoid", "Tanh", "Tanh"]),
                                ValueError, "activations"),
    "activations str": (lambda: fastrnn.RNN(3, 4, activations="Tanh"), TypeError,
                        "activations"),
    "activations unknown": (lambda: fastrnn.GRU(3, 4, activations=["Sigmoid", "Gelu"]),
                            ValueError, "activations"),
    "alpha too many": (lambda: fastrnn.RNN(3, 4, activations=["LeakyRelu"],
                                           activation_alpha=[0.1, 0.2]),
                       ValueError, "activation_alpha"),
    "beta not numbers": (lambda: fastrnn.RNN(3, 4, activations=["Affine"],
                                             activation_beta=["a"]),
                         TypeError, "activation_beta"),
    "seed": (lambda: fastrnn.LSTM(3, 4, seed="abc"), TypeError, "seed"),
    # __call__ / forward_train: x
    "x int": (lambda: LSTM_M(X.astype(np.int32)), TypeError, "x: .*int32"),
    "x bool": (lambda: GRU_M(X.astype(bool)), TypeError, "x: .*bool"),
    "x complex": (lambda: LSTM_M(X.astype(complex)), TypeError, "x: .*complex"),
    "x object": (lambda: LSTM_M(X.astype(object)), TypeError, "x: .*object"),
    "x None": (lambda: GRU_M(None), TypeError, "x"),
    "x str": (lambda: GRU_M("abc"), TypeError, "x"),
    "x ragged": (lambda: GRU_M([[1.0, 2.0], [1.0]]), TypeError, "x"),
    "x 1-d": (lambda: LSTM_M(np.zeros(3)), ValueError, r"x: .*shape \(3,\)"),
    "x 4-d": (lambda: LSTM_M(np.zeros((1, 5, 2, 3))), ValueError, "x: .*3-d"),
    "x input size": (lambda: LSTM_M(np.zeros((5, 2, 4))), ValueError, "x: .*input_size 3"),
    "x T=0": (lambda: LSTM_M(np.zeros((0, 2, 3))), ValueError, r"x: .*T >= 1"),
    "x T=0 batch_first": (lambda: RNN_M(np.zeros((2, 0, 3))), ValueError, r"x: .*T >= 1"),
    "x T=0 unbatched": (lambda: GRU_M(np.zeros((0, 3))), ValueError, r"x: .*T >= 1"),
    "train x int": (lambda: GRU_M.forward_train(X.astype(np.int64)), TypeError, "x"),
    "train x shape": (lambda: RNN_M.forward_train(np.zeros((2, 5, 2))), ValueError, "x"),
    # state0
    "state0 array for LSTM": (lambda: LSTM_M(X, np.zeros((2, 2, 4))), TypeError,
                              r"state0: expected a tuple \(h, c\)"),
    "state0 triple": (lambda: LSTM_M(X, (H0, H0, H0)), TypeError, "state0"),
    "state0[0] shape": (lambda: LSTM_M(X, (np.zeros((1, 2, 4)), H0)), ValueError,
                        r"state0\[0\]: expected shape \(2, 2, 4\)"),
    "state0[1] int": (lambda: LSTM_M(X, (H0, H0.astype(int))), TypeError, r"state0\[1\]"),
    "state0[1] N": (lambda: LSTM_M(X, (H0, np.zeros((2, 3, 4)))), ValueError,
                    r"state0\[1\]"),
    "state0 tuple for GRU": (lambda: GRU_M(X, (H0[:1],)), TypeError, "state0"),
    "state0 shape GRU": (lambda: GRU_M(X, H0), ValueError,
                         r"state0: expected shape \(1, 2, 4\)"),
    "state0 batched for unbatched": (lambda: GRU_M(X[:, 0], H0[:1]), ValueError,
                                     r"state0: expected shape \(1, 4\)"),
    "state0 complex": (lambda: GRU_M(X, H0[:1].astype(complex)), TypeError, "state0"),
    "train state0 shape": (lambda: LSTM_M.forward_train(X, (H0, H0[:1])), ValueError,
                           r"state0\[1\]"),
    # lengths
    "lengths float list": (lambda: LSTM_M(X, lengths=[5.0, 2.0]), TypeError, "lengths"),
    "lengths float array": (lambda: LSTM_M(X, lengths=np.array([5.0, 2.0])), TypeError,
                            "lengths: .*float64"),
    "lengths bool list": (lambda: LSTM_M(X, lengths=[True, True]), TypeError, "lengths"),
    "lengths bool array": (lambda: LSTM_M(X, lengths=np.array([1, 1], bool)), TypeError,
                           "lengths"),
    "lengths int": (lambda: LSTM_M(X, lengths=5), TypeError, "lengths"),
    "lengths count": (lambda: LSTM_M(X, lengths=[5, 2, 1]), ValueError,
                      "lengths: expected 2 lengths"),
    "lengths huge": (lambda: LSTM_M(X, lengths=[2 ** 70, 1]), ValueError, "lengths"),
    "lengths 2-d": (lambda: LSTM_M(X, lengths=np.array([[5, 2]])), ValueError, "lengths"),
    "lengths > T": (lambda: LSTM_M(X, lengths=[6, 2]), ValueError, r"lengths: .*\[0, 5\]"),
    "lengths < 0": (lambda: GRU_M(X, lengths=[-1, 2]), ValueError, r"lengths: .*\[0, 5\]"),
    "lengths unbatched": (lambda: GRU_M(X[:, 0], lengths=[5]), ValueError,
                          "lengths: only for batched"),
    "train lengths": (lambda: GRU_M.forward_train(X, lengths=[1.5, 2]), TypeError,
                      "lengths"),
    # backward
    "cache None": (lambda: LSTM_M.backward(None), TypeError, "cache"),
    "cache dict": (lambda: LSTM_M.backward({}), TypeError, "cache"),
    "cache other module": (lambda: LSTM_M.backward(OTHER_CACHE), ValueError,
                           "cache: .*another module"),
    "cache other kind": (lambda: GRU_M.backward(LSTM_CACHE), ValueError, "cache"),
    "dy shape": (lambda: LSTM_M.backward(LSTM_CACHE, np.zeros((5, 2, 3))), ValueError,
                 r"dy: expected the shape of y, \(5, 2, 4\)"),
    "dy int": (lambda: LSTM_M.backward(LSTM_CACHE, np.zeros((5, 2, 4), int)), TypeError,
               "dy"),
    "dstate_n array for LSTM": (lambda: LSTM_M.backward(LSTM_CACHE, None, H0), TypeError,
                                "dstate_n"),
    "dstate_n[0] shape": (lambda: LSTM_M.backward(LSTM_CACHE, None, (H0[:1], None)),
                          ValueError, r"dstate_n\[0\]"),
    "dstate_n[1] object": (lambda: LSTM_M.backward(LSTM_CACHE, None,
                                                   (None, H0.astype(object))),
                           TypeError, r"dstate_n\[1\]"),
    "dstate_n GRU shape": (lambda: GRU_M.backward(GRU_CACHE, None, H0), ValueError,
                           "dstate_n"),
    "dstate_n GRU tuple": (lambda: GRU_M.backward(GRU_CACHE, None, (H0[:1],)), TypeError,
                           "dstate_n"),
    # load_state_dict and parameters
    "sd missing": (lambda: LSTM_M.load_state_dict(sd_with(bias_hh_l1=None)), ValueError,
                   r"state_dict: .*missing \['bias_hh_l1'\]"),
    "sd unexpected": (lambda: LSTM_M.load_state_dict(sd_with(weight_hr_l0=np.zeros((2, 4)))),
                      ValueError, r"state_dict: .*unexpected \['weight_hr_l0'\]"),
    "sd shape": (lambda: LSTM_M.load_state_dict(sd_with(weight_ih_l1=np.zeros((16, 3)))),
                 ValueError, r"state_dict\['weight_ih_l1'\]: expected shape \(16, 4\)"),
    "sd shape non-strict": (lambda: LSTM_M.load_state_dict(
        {"weight_hh_l0": np.zeros((4, 4))}, strict=False), ValueError,
        r"state_dict\['weight_hh_l0'\]"),
    "sd int": (lambda: LSTM_M.load_state_dict(sd_with(bias_ih_l0=np.zeros(16, int))),
               TypeError, r"state_dict\['bias_ih_l0'\]: .*int"),
    "sd not a mapping": (lambda: LSTM_M.load_state_dict([("weight_ih_l0", SD["weight_ih_l0"])]),
                         TypeError, "state_dict"),
    "sd strict junk": (lambda: LSTM_M.load_state_dict(SD, strict="no"), TypeError, "strict"),
    "cell sd missing": (lambda: GRU_CELL.load_state_dict({}), ValueError, "state_dict"),
    "setattr shape": (lambda: setattr(LSTM_M, "weight_ih_l0", np.zeros((16, 4))), ValueError,
                      "weight_ih_l0"),
    "setattr config": (lambda: setattr(LSTM_M, "hidden_size", 5), AttributeError,
                       "hidden_size"),
    # cells
    "cell x int": (lambda: LSTM_CELL(np.zeros((2, 3), int)), TypeError, "x_t"),
    "cell x shape": (lambda: LSTM_CELL(np.zeros((2, 4))), ValueError, r"x_t: .*\(N, 3\)"),
    "cell x 3-d": (lambda: GRU_CELL(np.zeros((1, 2, 3))), ValueError, "x_t"),
    "cell x 0-d": (lambda: GRU_CELL(np.float32(1)), ValueError, "x_t"),
    "cell state shape": (lambda: GRU_CELL(np.zeros((2, 3)), np.zeros((2, 5))), ValueError,
                         r"state: expected shape \(2, 4\)"),
    "cell state int": (lambda: GRU_CELL(np.zeros((2, 3)), np.zeros((2, 4), int)), TypeError,
                       "state"),
    "cell unbatched state": (lambda: GRU_CELL(np.zeros(3), np.zeros((1, 4))), ValueError,
                             r"state: expected shape \(4,\)"),
    "lstm cell state array": (lambda: LSTM_CELL(np.zeros((2, 3)), np.zeros((2, 4))),
                              TypeError, r"state: expected a tuple \(h, c\)"),
    "lstm cell state[1]": (lambda: LSTM_CELL(np.zeros((2, 3)), (np.zeros((2, 4)),
                                                                 np.zeros((1, 4)))),
                           ValueError, r"state\[1\]"),
    # sizes past what BLAS's 32-bit integers or the kernels' int64 indices take;
    # x is a broadcast view: the check fires before anything of its size is made
    "size G*H": (lambda: fastrnn.LSTM(3, 2 ** 29), ValueError, r"hidden_size: 4\*hidden_size"),
    "size I": (lambda: fastrnn.GRU(2 ** 31, 4), ValueError, "input_size: input_size"),
    "size D*H_out": (lambda: fastrnn.RNN(3, 2 ** 30 + 1, 2, bidirectional=True), ValueError,
                     r"hidden_size: 2\*H_out"),
    "size cell G*H": (lambda: fastrnn.GRUCell(3, 2 ** 30), ValueError, "hidden_size"),
    "size N": (lambda: GRU_M(huge((1, 2 ** 31, 3))), ValueError, r"x: N \(the batch\)"),
    "size T*N training": (lambda: GRU_M.forward_train(huge((2 ** 16, 2 ** 15, 3))),
                          ValueError, r"x: T\*N = 65536\*32768"),
    "size N*I reverse": (lambda: BIDIR_M(huge((1, 2 ** 21, 2 ** 10)),
                                        lengths=np.ones(2 ** 21, np.int64)),
                         ValueError, r"x: N\*I = 2097152\*1024"),
    "size work int64": (lambda: GRU_M(huge((2 ** 29, 2 ** 29, 3))), ValueError,
                        r"x: T\*N\*G\*H\*\(H_out \+ I\)"),
    "size cell N": (lambda: GRU_CELL(huge((2 ** 31, 3))), ValueError, r"x: N \(the batch\)"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input(case, monkeypatch):
    func, exc, match = BAD[case]

    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel ran on bad input")

    monkeypatch.setattr(fastrnn._core, "forward", no_kernel)
    monkeypatch.setattr(fastrnn._core, "backward", no_kernel)
    before = LSTM_M.state_dict()
    with pytest.raises(exc, match=match):
        func()
    for k, v in LSTM_M.state_dict().items():   # nothing half-loaded
        np.testing.assert_array_equal(v, before[k])


# ---------------------------------------------------------------------------
# 6. Inputs, outputs, N = 0, copies, threads

@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_inputs_unchanged_readonly_noncontiguous(mode):
    rng = np.random.default_rng(0)
    m = CLASSES[mode](3, 4, 2, bidirectional=True, dtype=np.float32, seed=0)
    base = rng.standard_normal((5, 6, 6))
    x_nc = base[:, ::2, ::2]                   # float64, non-contiguous: (5, 3, 3)
    state0 = random_state(m, 3, np.float64, rng)
    state0 = tuple(np.asfortranarray(s) for s in as_tuple(state0))
    for a in (base,) + state0:
        a.setflags(write=False)
    lengths = np.array([5, 3, 1])
    lengths.setflags(write=False)
    saved = [a.copy() for a in (base, lengths) + state0]
    s0 = state0 if mode == "lstm" else state0[0]

    y, sn = m(x_nc, s0, lengths=lengths)
    y2, sn2, cache = m.forward_train(x_nc, s0, lengths=lengths)
    dy = np.asfortranarray(rng.standard_normal(y.shape))
    dy.setflags(write=False)
    dsn = tuple(np.ones(s.shape)[..., ::-1] for s in as_tuple(sn))   # negative strides
    dy_saved = dy.copy()
    dx, ds0, grads = m.backward(cache, dy, dsn if mode == "lstm" else dsn[0])
    for a, b in zip((base, lengths) + state0, saved):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dy, dy_saved)
    # the same as contiguous float32 copies
    c = lambda a: np.ascontiguousarray(a, np.float32)
    s0c = tuple(map(c, state0))
    yc, snc = m(c(x_nc), s0c if mode == "lstm" else s0c[0], lengths=lengths.tolist())
    np.testing.assert_array_equal(y, yc)
    np.testing.assert_array_equal(y, y2)
    for a, b in zip(as_tuple(sn), as_tuple(snc)):
        np.testing.assert_array_equal(a, b)
    for arr in (y, dx) + as_tuple(sn) + as_tuple(ds0):
        assert arr.dtype == np.float32
        assert not any(np.shares_memory(arr, a) for a in (base,) + state0)


def test_float16_and_float64_inputs_converted():
    m = fastrnn.GRU(3, 4, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float16)
    y16, _ = m(x)
    y32, _ = m(x.astype(np.float32))
    y64, _ = m(x.astype(np.float64))
    assert y16.dtype == y64.dtype == np.float32
    np.testing.assert_array_equal(y16, y32)
    np.testing.assert_array_equal(y64, y32)
    yl, _ = m(x.astype(np.float32).tolist())       # nested lists are arrays too
    np.testing.assert_array_equal(yl, y32)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_results_are_new_and_cache_is_isolated(mode):
    rng = np.random.default_rng(1)
    m = CLASSES[mode](3, 4, 2, batch_first=True, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 5, 3))
    y1, s1 = m(x)
    keep = [a.copy() for a in (y1,) + as_tuple(s1)]
    y2, s2 = m(x + 1)
    for a, b in zip((y1,) + as_tuple(s1), keep):
        np.testing.assert_array_equal(a, b)
        assert not any(np.shares_memory(a, c) for c in (y2,) + as_tuple(s2))
    # the cache holds its own x, state and weights
    y, sn, cache = m.forward_train(x)
    dy = rng.standard_normal(y.shape)
    first = m.backward(cache, dy)
    x[...] = 7
    y[...] = 3
    sd = m.state_dict()
    m.load_state_dict({k: v * 2 for k, v in sd.items()})
    m.weight_hh_l0[...] = 0
    second = m.backward(cache, dy)
    np.testing.assert_array_equal(first[0], second[0])
    for k in first[2]:
        np.testing.assert_array_equal(first[2][k], second[2][k])
    assert not np.shares_memory(first[0], second[0])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_empty_batch(mode, batch_first):
    kw = dict(proj_size=2) if mode == "lstm" else {}
    m = CLASSES[mode](3, 4, 2, bidirectional=True, batch_first=batch_first, seed=0, **kw)
    H_out = 2 if mode == "lstm" else 4
    x = np.zeros((0, 5, 3) if batch_first else (5, 0, 3), np.float32)
    y_shape = (0, 5, 2 * H_out) if batch_first else (5, 0, 2 * H_out)
    for lengths in (None, [], np.zeros(0, np.int64)):
        y, sn = m(x, lengths=lengths)
        assert y.shape == y_shape and y.dtype == np.float32
        assert as_tuple(sn)[0].shape == (4, 0, H_out)
    y, sn, cache = m.forward_train(x)
    dx, ds0, grads = m.backward(cache, np.zeros(y_shape, np.float32))
    assert dx.shape == x.shape and as_tuple(ds0)[0].shape == (4, 0, H_out)
    if mode == "lstm":
        assert sn[1].shape == ds0[1].shape == (4, 0, 4)
    for k, v in m.state_dict().items():
        assert grads[k].shape == v.shape and not np.any(grads[k])
    cell = {"rnn": fastrnn.RNNCell, "lstm": fastrnn.LSTMCell, "gru": fastrnn.GRUCell}[mode](
        3, 4)
    out = as_tuple(cell(np.zeros((0, 3), np.float32)))
    assert all(o.shape == (0, 4) for o in out)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_nan_and_inf_propagate(mode):
    m = CLASSES[mode](3, 4, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    x[1, 0, 0] = np.nan
    y, sn = m(x)
    assert np.all(np.isnan(y[1:, 0])) and not np.any(np.isnan(y[:1, 0]))
    assert np.all(np.isfinite(y[:, 1]))
    if torch is not None:
        tm = torch_module(m, mode, np.float64)
        tm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
        x[1, 0, 0] = np.inf
        with torch.no_grad():
            y_t = tm(torch.tensor(x))[0].numpy()
        np.testing.assert_allclose(m(x)[0], y_t, rtol=1e-10, atol=1e-10, equal_nan=True)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_pickle_and_deepcopy(mode):
    m = CLASSES[mode](3, 4, 2, dropout=0.3, bidirectional=True, dtype=np.float64, seed=4)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert repr(clone) == repr(m)
        np.testing.assert_array_equal(clone(x)[0], m(x)[0])
        # the generator travels too: the same masks
        yc, _, cc = clone.forward_train(x)
        state = pickle.dumps(m)
        ym, _, cm = pickle.loads(state).forward_train(x)
        np.testing.assert_array_equal(yc, ym)
        # a copy is another module: it shares no arrays and refuses the other's cache
        assert not np.shares_memory(clone.weight_ih_l0, m.weight_ih_l0)
        with pytest.raises(ValueError, match="cache"):
            m.backward(cc)
        assert clone.backward(cc)[0].shape == x.shape
    cell = {"rnn": fastrnn.RNNCell, "lstm": fastrnn.LSTMCell, "gru": fastrnn.GRUCell}[mode](
        3, 4, seed=0)
    for clone in (pickle.loads(pickle.dumps(cell)), copy.deepcopy(cell)):
        for a, b in zip(as_tuple(clone(x[0])), as_tuple(cell(x[0]))):
            np.testing.assert_array_equal(a, b)
        clone.weight_ih[...] = 0                    # still live after the copy
        assert not np.array_equal(as_tuple(clone(x[0]))[0], as_tuple(cell(x[0]))[0])


def test_parameters_start_on_cache_lines():
    """Built, assigned, loaded, unpickled or copied, every parameter array is
    C-contiguous in the module's dtype from a 64-byte line (the kernels read
    the weights where they lie)."""
    m = fastrnn.LSTM(5, 7, 2, bidirectional=True, proj_size=3, seed=0)
    m.weight_hh_l0 = np.ones((28, 3))                   # float64, any alignment
    m.load_state_dict({"bias_ih_l1": np.arange(28.0)}, strict=False)
    cell = fastrnn.GRUCell(5, 6, dtype=np.float64, seed=0)
    for module in (m, pickle.loads(pickle.dumps(m)), copy.deepcopy(m),
                   cell, pickle.loads(pickle.dumps(cell)), copy.deepcopy(cell)):
        for name, arr in module.__dict__.items():
            if name in module._shapes:
                assert arr.ctypes.data % 64 == 0 and arr.flags.c_contiguous, name
                assert arr.dtype == module.dtype, name
    clone = pickle.loads(pickle.dumps(cell))
    assert clone._weights[0]["weight_ih"] is clone.weight_ih   # the call reads these arrays


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_threads_give_serial_answers(mode):
    rng = np.random.default_rng(0)
    m = CLASSES[mode](8, 16, 2, bidirectional=True, seed=0)
    cell = {"lstm": fastrnn.LSTMCell, "gru": fastrnn.GRUCell}[mode](8, 16, seed=0)
    inputs = [rng.standard_normal((6 + k, 5, 8)).astype(np.float32) for k in range(8)]
    lengths = [list(rng.integers(0, 6, 5)) for _ in inputs]

    def work(k):
        y, sn = m(inputs[k], lengths=lengths[k])
        yt, _, cache = m.forward_train(inputs[k], lengths=lengths[k])
        dx, ds0, grads = m.backward(cache, np.ones_like(yt))
        step = as_tuple(cell(inputs[k][0]))
        return [y, *as_tuple(sn), yt, dx, *as_tuple(ds0), *grads.values(), *step]

    serial = [work(k) for k in range(len(inputs))]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            parallel = list(pool.map(work, range(len(inputs))))
            for a, b in zip(serial, parallel):
                for u, v in zip(a, b):
                    np.testing.assert_array_equal(u, v)


# ---------------------------------------------------------------------------
# 7. Parameters, state_dict, init, repr, docs

def test_state_dict_round_trip_and_live_parameters():
    a = fastrnn.LSTM(3, 5, 2, bidirectional=True, proj_size=2, dtype=np.float64, seed=1)
    b = fastrnn.LSTM(3, 5, 2, bidirectional=True, proj_size=2, dtype=np.float64, seed=2)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    assert not np.array_equal(a(x)[0], b(x)[0])
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    # copies both ways
    sd = a.state_dict()
    sd["weight_ih_l0"][...] = 0
    assert np.any(a.weight_ih_l0)
    assert not np.shares_memory(b.weight_ih_l0, a.weight_ih_l0)
    # live attribute: in-place edits change the output; load_state_dict copies into it
    live = a.weight_hh_l1_reverse
    y0 = a(x)[0]
    live[...] = 0
    assert not np.array_equal(a(x)[0], y0)
    a.load_state_dict({"weight_hh_l1_reverse": np.ones((20, 2), np.float32)}, strict=False)
    assert a.weight_hh_l1_reverse is live and np.all(live == 1)
    # strict=False reports what it skipped; cast to the module's dtype
    r = a.load_state_dict({"weight_ih_l0": np.ones((20, 3), np.float32), "extra": 1},
                          strict=False)
    assert "extra" in r.unexpected_keys and "weight_hh_l0" in r.missing_keys
    assert a.weight_ih_l0.dtype == np.float64 and np.all(a.weight_ih_l0 == 1)
    # assigning an attribute checks and converts
    a.weight_ih_l0 = np.zeros((20, 3), np.float32)
    assert a.weight_ih_l0.dtype == np.float64 and not np.any(a.weight_ih_l0)


@needs_torch
@pytest.mark.parametrize("kwargs", [
    dict(cls="LSTM", num_layers=2, bidirectional=True, proj_size=2),
    dict(cls="GRU", bias=False, num_layers=3),
    dict(cls="RNN", nonlinearity="relu", bidirectional=True),
])
def test_state_dict_names_shapes_and_torch_load(kwargs):
    kwargs = dict(kwargs)
    cls = kwargs.pop("cls")
    tm = getattr(torch.nn, cls)(3, 5, **kwargs)
    m = getattr(fastrnn, cls)(3, 5, **kwargs)
    sd = m.state_dict()
    assert list(sd) == list(tm.state_dict())
    for k, v in tm.state_dict().items():
        assert sd[k].shape == tuple(v.shape) and sd[k].dtype == np.float32
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    with torch.no_grad():
        y_t = tm(torch.tensor(x))[0].numpy()
    np.testing.assert_allclose(m(x)[0], y_t, rtol=1e-5, atol=1e-6)
    m.load_state_dict(tm.state_dict())              # tensors directly, too
    np.testing.assert_allclose(m(x)[0], y_t, rtol=1e-5, atol=1e-6)


def test_init_like_torch_and_reproducible():
    a = fastrnn.LSTM(3, 16, 2, seed=5)
    b = fastrnn.LSTM(3, 16, 2, seed=5)
    c = fastrnn.LSTM(3, 16, 2, seed=6)
    d = fastrnn.LSTM(3, 16, 2, dtype=np.float64, seed=5)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
        assert not np.array_equal(v, c.state_dict()[k])
        np.testing.assert_array_equal(v, d.state_dict()[k].astype(np.float32))
        assert np.all(np.abs(v) <= 0.25) and np.max(np.abs(v)) > 0.2
    assert not np.array_equal(fastrnn.GRU(3, 4).weight_ih_l0, fastrnn.GRU(3, 4).weight_ih_l0)
    cell = fastrnn.GRUCell(3, 16, seed=5)
    assert list(cell.state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert list(fastrnn.RNNCell(3, 4, False).state_dict()) == ["weight_ih", "weight_hh"]


@needs_torch
def test_repr_like_torch():
    for args, kwargs in [((10, 20), dict(num_layers=2, batch_first=True)),
                         ((3, 4), dict(bias=False, dropout=0.5, num_layers=2)),
                         ((3, 4), dict(proj_size=2, bidirectional=True))]:
        assert repr(fastrnn.LSTM(*args, **kwargs)) == repr(torch.nn.LSTM(*args, **kwargs))
    assert repr(fastrnn.GRU(3, 4)) == repr(torch.nn.GRU(3, 4))
    assert repr(fastrnn.LSTMCell(3, 4)) == repr(torch.nn.LSTMCell(3, 4))
    assert (repr(fastrnn.RNNCell(3, 4, False, "relu"))
            == repr(torch.nn.RNNCell(3, 4, False, "relu")))
    assert repr(fastrnn.GRU(3, 4, dtype=np.float64, linear_before_reset=False)) == \
        "GRU(3, 4, dtype=float64, linear_before_reset=False)"


def test_docstrings_and_examples():
    for cls in (fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU, fastrnn.RNNCell, fastrnn.LSTMCell,
                fastrnn.GRUCell):
        assert "Examples" in cls.__doc__ and "Parameters" in cls.__doc__
        for name in ("__call__", "state_dict", "load_state_dict"):
            assert getattr(cls, name).__doc__
    for cls in (fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU):
        for name in ("forward_train", "backward"):
            assert "Returns" in getattr(cls, name).__doc__
    assert "(h, c)" in fastrnn.LSTM.__call__.__doc__
    for module in (fastrnn.layers, fastrnn.cells):
        results = doctest.testmod(module)
        assert results.failed == 0 and results.attempted > 5
