"""fastrnn.freeze: frozen modules against their modules, the reduced precisions
against SPEC's arithmetic, the portable path, copies, threads, sizes, bad input.

The oracle of the reduced precisions is ``fastrnn.reference`` at
``precision="bfloat16"`` / ``"int8"`` (SPEC's "Frozen inference" written out
in NumPy): each step, from the same input and state as the frozen module,
agrees to float32 rounding.
"""

import copy
import pickle
import threading

import numpy as np
import pytest

import fastrnn
from fastrnn import _core, reference

F32 = np.float32


def _rng(seed=0):
    return np.random.default_rng(seed)


def _oracle_step(module, x, h, c, precision):
    """One step of a one-layer module from x (N, I), h and c (D, N, *), in ``precision``:
    fastrnn.reference, SPEC's arithmetic."""
    _, h_n, c_n, _ = reference.stack_forward(module._cells_per_layer, module.state_dict(),
                                             x[None], h, c, precision=precision)
    return h_n, c_n


# ---------------------------------------------------------------------------
# dtype=None equals the module, every option, 1 and 2 threads

MODULES = [
    ("rnn", dict(nonlinearity="relu")),
    ("rnn", dict(num_layers=2, bidirectional=True)),
    ("lstm", dict()),
    ("lstm", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("lstm", dict(proj_size=7, peepholes=True, cell_clip=2.0)),
    ("lstm", dict(input_forget=True, bias=False, bidirectional=True,
                  activations=["HardSigmoid", "Tanh", "Softsign"] * 2)),
    ("gru", dict()),
    ("gru", dict(linear_before_reset=False, bidirectional=True)),
    ("gru", dict(num_layers=3, activations=["Sigmoid", "Elu"], activation_alpha=[0.5])),
]
CLASSES = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}


def _make(mode, options, I, H, dtype=F32, seed=0):
    return CLASSES[mode](I, H, dtype=dtype, seed=seed, **options)


def _input(module, T, N, dtype, seed=1, unbatched=False):
    rng = _rng(seed)
    if unbatched:
        return rng.standard_normal((T, module.input_size)).astype(dtype)
    shape = (N, T) if module.batch_first else (T, N)
    return rng.standard_normal(shape + (module.input_size,)).astype(dtype)


def _assert_close(a, b, dtype):
    a, b = np.asarray(a), np.asarray(b)
    tol = 1e-6 if dtype == F32 else 1e-12
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _assert_outputs_close(got, want, dtype):
    (y1, s1), (y0, s0) = got, want
    _assert_close(y1, y0, dtype)
    for a, b in zip(s1 if isinstance(s1, tuple) else (s1,), s0 if isinstance(s0, tuple) else (s0,)):
        _assert_close(a, b, dtype)


@pytest.mark.parametrize("dtype", [F32, np.float64])
@pytest.mark.parametrize("mode,options", MODULES)
def test_equals_module(mode, options, dtype):
    module = _make(mode, options, 9, 37, dtype)
    frozen = fastrnn.freeze(module)
    assert frozen.dtype == np.dtype(dtype).name
    rng = _rng(2)
    for T, N in [(1, 1), (6, 3), (40, 9), (2, 0)]:
        x = _input(module, T, N, dtype)
        lengths = rng.integers(0, T + 1, N) if N else None
        for n_threads in (1, 2):
            with fastrnn.threads(n_threads):
                _assert_outputs_close(frozen(x, lengths=lengths), module(x, lengths=lengths),
                                      dtype)
    x = _input(module, 5, 1, dtype, unbatched=True)
    y, state = module(x)
    state0 = tuple(s + 0.5 for s in state) if isinstance(state, tuple) else state + 0.5
    _assert_outputs_close(frozen(x, state0), module(x, state0), dtype)


@pytest.mark.parametrize("cls", [fastrnn.RNNCell, fastrnn.LSTMCell, fastrnn.GRUCell])
@pytest.mark.parametrize("dtype", [F32, np.float64])
def test_cells_equal_module(cls, dtype):
    cell = cls(11, 40, dtype=dtype, seed=3)
    frozen = fastrnn.freeze(cell)
    rng = _rng(4)
    for shape in [(1, 11), (5, 11), (11,), (0, 11)]:
        x = rng.standard_normal(shape).astype(dtype)
        state = None
        for _ in range(3):
            want = cell(x, state)
            got = frozen(x, state)
            for a, b in zip(np.atleast_1d(got) if cls is not fastrnn.LSTMCell else got,
                            np.atleast_1d(want) if cls is not fastrnn.LSTMCell else want):
                _assert_close(a, b, dtype)
            state = want


# ---------------------------------------------------------------------------
# bfloat16 and int8 against SPEC's arithmetic

ONE_STEP = [("rnn", {}), ("rnn", dict(nonlinearity="relu", bidirectional=True)),
            ("lstm", {}), ("lstm", dict(peepholes=True, cell_clip=1.5)),
            ("lstm", dict(bias=False, input_forget=True,
                          activations=["HardSigmoid", "Softsign", "Tanh"])),
            ("gru", {}), ("gru", dict(bidirectional=True)), ("lstm", dict(proj_size=12)),
            ("gru", dict(linear_before_reset=False))]


def _check_step(mode, module, frozen, x, h, c, precision, rounding_inside):
    """The frozen step from (h, c) (D, N, *) against the oracle; returns the frozen state."""
    state0 = (h, c) if mode == "lstm" else h
    _, state = frozen(x[None], state0)
    got_h, got_c = state if mode == "lstm" else (state, None)
    want_h, want_c = _oracle_step(module, x, h, c, precision)
    if rounding_inside:
        # A product of a value the step computed itself (the projection's input,
        # GRU's r * h) rounds that value again: a last-bit difference in it may
        # move one rounding, by about a quantization step.
        close = np.isclose(got_h, want_h, rtol=1e-5, atol=1e-5)
        assert close.mean() > 0.97
        np.testing.assert_allclose(got_h, want_h, atol=2e-2)
    else:
        np.testing.assert_allclose(got_h, want_h, rtol=1e-5, atol=1e-5)
    if got_c is not None:
        np.testing.assert_allclose(got_c, want_c, rtol=1e-5, atol=1e-5)
    return got_h, got_c


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
@pytest.mark.parametrize("mode,options", ONE_STEP)
def test_one_step_matches_spec(mode, options, precision):
    rounding_inside = "proj_size" in options or options.get("linear_before_reset") is False
    for I, H, N in [(20, 33, 1), (64, 48, 5), (7, 130, 3)]:
        module = _make(mode, options, I, H, seed=H)
        frozen = fastrnn.freeze(module, precision)
        rng = _rng(I)
        H_out, D = options.get("proj_size", H), 1 + options.get("bidirectional", False)
        x = rng.standard_normal((N, I)).astype(F32)
        h = rng.standard_normal((D, N, H_out)).astype(F32) * 0.5
        c = rng.standard_normal((D, N, H)).astype(F32) if mode == "lstm" else None
        h[:, 0] = 0        # a row of zeros quantizes to zeros
        for n_threads in (1, 2):
            with fastrnn.threads(n_threads):
                _check_step(mode, module, frozen, x, h, c, precision, rounding_inside)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_sequence_step_by_step(mode, precision):
    """Each step from the frozen module's own previous state; a whole-sequence call
    gives the same steps."""
    module = _make(mode, {}, 16, 64, seed=5)
    frozen = fastrnn.freeze(module, precision)
    T, N = 30, 3
    x = _input(module, T, N, F32, seed=6)
    h = np.zeros((1, N, 64), F32)
    c = np.zeros((1, N, 64), F32) if mode == "lstm" else None
    hs = []
    for t in range(T):
        h, c = _check_step(mode, module, frozen, x[t], h, c, precision, False)
        hs.append(h[0])
    y, _ = frozen(x)
    np.testing.assert_allclose(y, np.stack(hs), rtol=1e-6, atol=1e-6)
    y_ref, _, _, _ = reference.stack_forward(module._cells_per_layer, module.state_dict(), x,
                                             np.zeros((1, N, 64), F32), c if c is None else 0 * c,
                                             precision=precision)
    assert _relative_error(y, y_ref) < 1e-3   # free-running: a carried last bit flips roundings


def _relative_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_accuracy_against_float32(mode):
    """PyTorch's initialisation, unit-normal inputs: about 1 % (int8), 0.3 % (bfloat16)."""
    module = _make(mode, {}, 64, 64, seed=7)
    x = _input(module, 50, 4, F32, seed=8)
    y, _ = module(x)
    bounds = {"bfloat16": 0.01, "int8": 0.03}
    for precision, bound in bounds.items():
        got, _ = fastrnn.freeze(module, precision)(x)
        assert _relative_error(got, y) < bound, precision


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_long_sequence_does_not_drift(mode):
    module = _make(mode, {}, 32, 64, seed=9)
    x = _input(module, 1000, 2, F32, seed=10)
    y, _ = module(x)
    for precision in ("bfloat16", "int8"):
        got, _ = fastrnn.freeze(module, precision)(x)
        assert np.all(np.isfinite(got)) and np.abs(got).max() <= 1
        early = _relative_error(got[:250], y[:250])
        late = _relative_error(got[-250:], y[-250:])
        assert late < 3 * early + 0.01, (precision, early, late)


# ---------------------------------------------------------------------------
# The portable path, copies, threads, sizes

# Shapes where two threads split the work: units (N < 8: a barrier per step,
# cut at panels of 16), batch rows, both directions at once; T past a chunk of
# 1024 rows, so that the reverse direction with lengths converts its input
# rows sequence by sequence.
SPLITS = [("lstm", dict(), 256, 2, 6), ("lstm", dict(proj_size=100), 200, 3, 5),
          ("gru", dict(linear_before_reset=False), 160, 2, 4), ("rnn", dict(), 300, 1, 9),
          ("gru", dict(), 64, 16, 7), ("lstm", dict(bidirectional=True), 64, 16, 100)]


@pytest.mark.parametrize("precision", [None, "bfloat16", "int8"])
@pytest.mark.parametrize("mode,options,H,N,T", SPLITS)
def test_two_threads_equal_one(mode, options, H, N, T, precision):
    module = _make(mode, options, 40, H, seed=H)
    frozen = fastrnn.freeze(module, precision)
    x = _input(module, T, N, F32, seed=N)
    lengths = _rng(T).integers(0, T + 1, N)
    with fastrnn.threads(1):
        one = frozen(x, lengths=lengths)
    with fastrnn.threads(2):
        two = frozen(x, lengths=lengths)
        if precision is None:
            _assert_outputs_close(two, module(x, lengths=lengths), F32)
    if precision is None:       # the float32 panels sum some columns in another order
        _assert_outputs_close(two, one, F32)
    else:                       # each column's sum is the same, however the columns split
        np.testing.assert_array_equal(two[0], one[0])


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_portable_path_equals_vector_path(precision):
    module = _make("lstm", dict(proj_size=20, bidirectional=True), 30, 50, seed=11)
    frozen = fastrnn.freeze(module, precision)
    x = _input(module, 12, 5, F32, seed=12)
    lengths = [12, 0, 5, 7, 12]
    vector = frozen(x, lengths=lengths)
    assert _core.lowp_paths()[precision] in ("portable", "avx512_bf16", "avx512_vnni")
    _core.set_lowp_vector(False)
    try:
        assert _core.lowp_paths()[precision] == "portable"
        portable = frozen(x, lengths=lengths)
    finally:
        _core.set_lowp_vector(True)
    np.testing.assert_array_equal(portable[0], vector[0])
    np.testing.assert_array_equal(portable[1][0], vector[1][0])


@pytest.mark.parametrize("precision", [None, "bfloat16", "int8"])
def test_snapshot_pickle_deepcopy(precision):
    module = _make("gru", dict(num_layers=2, batch_first=True), 10, 24, seed=13)
    frozen = fastrnn.freeze(module, precision)
    x = _input(module, 7, 3, F32, seed=14)
    want = frozen(x)
    module.weight_hh_l0 = module.weight_hh_l0 * 2     # not seen by the snapshot
    module.load_state_dict({"bias_ih_l1": np.ones(72)}, strict=False)
    for other in (frozen, pickle.loads(pickle.dumps(frozen)), copy.deepcopy(frozen)):
        got = other(x)
        np.testing.assert_array_equal(got[0], want[0])
        assert other.dtype == frozen.dtype and other.nbytes == frozen.nbytes
        assert repr(other) == repr(frozen)


def test_threads_share_one_frozen_module():
    frozen = fastrnn.freeze(_make("lstm", {}, 32, 64, seed=15), "int8")
    inputs = [_input(frozen, 20, 4, F32, seed=s) for s in range(4)]
    want = [frozen(x)[0] for x in inputs]
    got = [None] * 4

    def work(k):
        for _ in range(5):
            got[k] = frozen(inputs[k])[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_nbytes():
    module = fastrnn.LSTM(256, 256, seed=16)
    f32 = fastrnn.freeze(module).nbytes
    weights = sum(v.nbytes for v in module.state_dict().values())
    assert 0.95 * weights <= f32 <= 1.1 * weights
    assert 0.2 < fastrnn.freeze(module, "int8").nbytes / f32 < 0.3
    assert 0.45 < fastrnn.freeze(module, "bfloat16").nbytes / f32 < 0.55


def test_attributes_and_repr():
    module = fastrnn.LSTM(8, 16, num_layers=2, proj_size=4, batch_first=True, seed=17)
    frozen = fastrnn.freeze(module, "bfloat16")
    for name in ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                 "bidirectional", "proj_size", "peepholes", "cell_clip", "input_forget"):
        assert getattr(frozen, name) == getattr(module, name)
    assert frozen.dtype == "bfloat16"
    assert repr(frozen) == f"fastrnn.freeze({module!r}, dtype='bfloat16')"
    assert isinstance(frozen, fastrnn.frozen.LSTM) and not isinstance(frozen, fastrnn.LSTM)
    for name in ("forward_train", "backward", "load_state_dict"):
        with pytest.raises(AttributeError, match=name):
            getattr(frozen, name)
    with pytest.raises(AttributeError, match="read-only"):
        frozen.hidden_size = 3
    cell = fastrnn.freeze(fastrnn.GRUCell(3, 5, dtype=np.float64))
    assert cell.dtype == "float64" and cell.hidden_size == 5


# ---------------------------------------------------------------------------
# Bad input

def test_bad_freeze_arguments():
    module = fastrnn.LSTM(4, 8)
    for dtype in ("float16", "int4", np.float64, "float64", np.int8):
        with pytest.raises(ValueError, match="dtype"):
            fastrnn.freeze(module, dtype)
    for dtype in (5, [1], object()):
        with pytest.raises(TypeError, match="dtype"):
            fastrnn.freeze(module, dtype)
    assert fastrnn.freeze(module, np.float32).dtype == "float32"
    assert fastrnn.freeze(module, "float32").dtype == "float32"
    double = fastrnn.GRU(4, 8, dtype=np.float64)
    assert fastrnn.freeze(double, "float64").dtype == "float64"
    for dtype in ("bfloat16", "int8"):
        with pytest.raises(ValueError, match="float64"):
            fastrnn.freeze(double, dtype)
    for thing in (object(), np.zeros(3), fastrnn.freeze(module), "LSTM"):
        with pytest.raises(TypeError, match="module"):
            fastrnn.freeze(thing)
    module.weight_hh_l0 = np.where(np.eye(32, 8) > 0, np.nan, module.weight_hh_l0)
    for dtype in ("bfloat16", "int8"):
        with pytest.raises(ValueError, match="weight_hh_l0"):
            fastrnn.freeze(module, dtype)
    fastrnn.freeze(module)   # float32 keeps NaN weights, as the module does
    wide = fastrnn.RNNCell(65537, 1)
    with pytest.raises(ValueError, match="weight_ih.*65536"):
        fastrnn.freeze(wide, "int8")


def _message(call):
    try:
        call()
    except (TypeError, ValueError) as err:
        return type(err), str(err)
    raise AssertionError("no error")


@pytest.mark.parametrize("precision", [None, "int8"])
def test_frozen_rejects_what_the_module_rejects(precision):
    module = fastrnn.LSTM(4, 8, num_layers=2)
    frozen = fastrnn.freeze(module, precision)
    x = np.zeros((3, 2, 4), F32)
    bad = [((np.zeros((3, 2, 5), F32),), {}), ((np.zeros((3, 2, 4), int),), {}),
           ((x, np.zeros((2, 2, 8))), {}), ((x, (np.zeros((2, 2, 8)), np.zeros((1, 2, 8)))), {}),
           ((x,), dict(lengths=[1, 4])), ((x,), dict(lengths=[1.0, 2.0])),
           ((np.zeros((0, 2, 4)),), {}), ((np.zeros((3, 4)),), dict(lengths=[1]))]
    for args, kwargs in bad:
        assert _message(lambda: frozen(*args, **kwargs)) == _message(lambda: module(*args, **kwargs))
    cell = fastrnn.GRUCell(4, 8)
    frozen_cell = fastrnn.freeze(cell, precision)
    for args in [(np.zeros((2, 5)),), (np.zeros((2, 4)), np.zeros((3, 8))),
                 (np.zeros((2, 4)), (np.zeros((2, 8)),)), (np.zeros(4, complex),)]:
        assert _message(lambda: frozen_cell(*args)) == _message(lambda: cell(*args))
    inputs = [x.copy()]
    frozen(inputs[0])
    np.testing.assert_array_equal(inputs[0], x)


@pytest.mark.parametrize("mode,options", [("lstm", {}), ("gru", dict(num_layers=2)),
                                          ("rnn", dict(bidirectional=True)),
                                          ("lstm", dict(batch_first=True, proj_size=3))])
@pytest.mark.parametrize("which", ["frozen", "module"])
def test_fast_call_equals_the_checked_call(mode, options, which):
    """Arguments the fast path (the modules' and the frozen modules') takes as
    they are give what _prepare's path gives."""
    module = _make(mode, options, 4, 6, seed=21)
    frozen = fastrnn.freeze(module) if which == "frozen" else module
    rng = np.random.default_rng(22)
    rows, H_out = frozen.num_layers * (2 if frozen.bidirectional else 1), frozen.proj_size or 6
    for T, N in ((1, 1), (3, 2)):
        x = rng.standard_normal((N, T, 4) if frozen.batch_first else (T, N, 4)).astype(F32)
        h0 = rng.standard_normal((rows, N, H_out)).astype(F32)
        c0 = rng.standard_normal((rows, N, 6)).astype(F32)
        states = [None, (h0, c0), [h0, None], (None, c0)] if mode == "lstm" else [None, h0]
        for state0 in states:
            unbatched = (np.ascontiguousarray(x[0] if frozen.batch_first else x[:, 0]),
                         None if state0 is None else _unbatch(state0))
            for args in ((x, state0), unbatched):
                fast = frozen(*args)
                took = frozen._fast(*args) is not None
                assert took or args[0].ndim == 3 and frozen.batch_first
                slow = frozen(*_through_checks(args))   # float64 copies: converted
                for a, b in zip(_flat(fast), _flat(slow)):
                    np.testing.assert_array_equal(a, b)
                assert all(a.flags.writeable for a in _flat(fast))
    for near_miss in [(np.zeros((1, 1, 4), F32), (np.zeros((rows, 1, H_out), F32),) * 3),
                      (np.zeros((1, 1, 4), F32), np.zeros((rows, 2, H_out), F32)),
                      (np.zeros((1, 1, 4), F32), (np.zeros((rows, 1, H_out), F32),)),
                      (np.zeros((1, 1, 5), F32), None),
                      (np.zeros((1, 0, 4) if frozen.batch_first else (0, 1, 4), F32), None),
                      (np.zeros((1, 1, 1, 4), F32), None), (np.zeros(4, F32), None)]:
        assert frozen._fast(*near_miss) is None
        assert _message(lambda: frozen(*near_miss)) == _message(lambda: module(*near_miss))


def _unbatch(state0):
    if isinstance(state0, (tuple, list)):
        return type(state0)(_unbatch(s) for s in state0)
    return None if state0 is None else np.ascontiguousarray(state0[:, 0])


def _through_checks(args):
    """The same values as float64 arrays, which only _prepare's path takes."""
    def f64(a):
        if isinstance(a, (tuple, list)):
            return type(a)(f64(v) for v in a)
        return None if a is None else a.astype(np.float64)
    return tuple(f64(a) for a in args)


def _flat(result):
    y, state = result
    return [y] + ([s for s in state if s is not None] if isinstance(state, tuple) else [state])
