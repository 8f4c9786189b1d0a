"""Hardening: what the library must survive beyond the happy path.

Every product path (AVX-512, AVX2 and BLAS) on this machine against the
reference; subnormal floats and the MXCSR's FTZ/DAZ bits intact after
``import fastrnn`` and after calls; T = 2000 finite and matching the
reference; and property-based fuzzing (hypothesis) of every public entry
point, run in a subprocess so that a crash fails the test rather than ending
the test run.  Memory over many calls is tests/test_memory.py.

``python tests/test_hardening.py [max_examples]`` runs the fuzzing alone.
"""

import copy
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastrnn
from fastrnn import _core
from fastrnn._cell import Cell
from test_modules import as_tuple, check_against_reference

TESTS = os.path.dirname(os.path.abspath(__file__))
# Where the fastrnn this process imported lives: an in-place build, or the
# installed package when the tests run against an install (.ci/package).
FASTRNN_HOME = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
MODES = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def run_python(args, timeout):
    """Run the interpreter on args, importing the very fastrnn this process imported
    (and the test modules); the CompletedProcess."""
    path = [FASTRNN_HOME, TESTS, os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    return subprocess.run([sys.executable, "-X", "faulthandler", *args], cwd=TESTS, env=env,
                          capture_output=True, text=True, timeout=timeout)


def mode_of(m):
    return next(mode for mode, cls in MODES.items() if isinstance(m, cls))


def check_module(m, x, lengths, dtype):
    """forward_train, __call__ and backward of m against fastrnn.reference; returns y."""
    cell = Cell.make(mode_of(m), nonlinearity=getattr(m, "nonlinearity", "tanh"))
    y, state_n, cache = m.forward_train(x, lengths=lengths)
    check_against_reference(m, cell, x, None, lengths, dtype, tol=TOL[dtype], y=y,
                            state_n=state_n, cache=cache)
    np.testing.assert_allclose(m(x, lengths=lengths)[0], y, **TOL[dtype])
    return y


@pytest.mark.parametrize("path", ["blas", "avx2", "avx512"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_product_path_matches_reference(mode, path, set_product_path):
    # Shapes past one panel of 16 columns and one block of 8 rows, with a
    # remainder; lengths with 0 and T; both directions; two layers.
    set_product_path(path)
    rng = np.random.default_rng(1)
    kwargs = {"proj_size": 5} if mode == "lstm" else {}
    m = MODES[mode](7, 19, num_layers=2, bidirectional=True, seed=2, **kwargs)
    x = rng.standard_normal((9, 11, 7)).astype(np.float32)
    lengths = [9, 0, 1, 8, 5, 9, 3, 2, 9, 7, 4]
    with fastrnn.threads(2):
        check_module(m, x, lengths, np.float32)


@pytest.mark.parametrize("path", ["avx2", "avx512"])
@pytest.mark.parametrize("N", [1, 7])
def test_deep_products_match_reference(path, N, set_product_path):
    # I = 1030 and H = 1029: the input and recurrent products deeper than 1024
    # run in blocks of the weight's rows, and W_hh (17 MB) is fetched ahead;
    # 7 rows are a tile of six and one of one, 4H = 4116 columns end in a
    # part panel, and backward's products over all steps run their tiles of
    # six inside groups of sixteen.  N = 1: the one-row product.
    set_product_path(path)
    rng = np.random.default_rng(5)
    m = fastrnn.LSTM(1030, 1029, seed=6)
    x = rng.standard_normal((3, N, 1030)).astype(np.float32)
    with fastrnn.threads(2):
        check_module(m, x, None, np.float32)


@pytest.mark.parametrize("path", ["avx2", "avx512"])
def test_packed_and_blas_products_agree(path, set_product_path):
    rng = np.random.default_rng(4)
    m = fastrnn.LSTM(33, 65, seed=3)
    x = rng.standard_normal((12, 17, 33)).astype(np.float32)
    results = {}
    for chosen in ("blas", path):
        set_product_path(chosen)
        y, (h, c), cache = m.forward_train(x)
        dx, _, grads = m.backward(cache, np.ones_like(y))
        results[chosen] = (y, h, c, dx, grads["weight_hh_l0"])
    for a, b in zip(results["blas"], results[path]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


MXCSR_PROBE = textwrap.dedent("""
    import ctypes, json, mmap, platform, sys
    import numpy as np

    def mxcsr():
        # stmxcsr dword [rdi]; ret -- the SSE control word of the calling thread
        if platform.machine() not in ("x86_64", "AMD64"):
            return None
        try:
            page = mmap.mmap(-1, mmap.PAGESIZE,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        except (OSError, ValueError):
            return None
        page.write(bytes([0x0F, 0xAE, 0x1F, 0xC3]))
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        probe = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_uint32))(address)
        word = ctypes.c_uint32()
        probe(ctypes.byref(word))
        return word.value

    def subnormals_kept():
        return bool(np.float32(1e-40) * np.float32(1) != 0
                    and np.float32(1e-38) * np.float32(1e-3) != 0
                    and np.float64(1e-310) * 1.0 != 0)

    report = {"before": mxcsr(), "kept_before": subnormals_kept()}
    import fastrnn
    report["after_import"] = mxcsr()
    report["kept_after_import"] = subnormals_kept()
    # A subnormal through the kernels: y = relu(1 * x) on one unit, no bias.
    ys = []
    for dtype, tiny in ((np.float32, 1e-40), (np.float64, 1e-310)):
        m = fastrnn.RNN(1, 1, nonlinearity="relu", bias=False, dtype=dtype, seed=0)
        m.load_state_dict({"weight_ih_l0": [[1.0]], "weight_hh_l0": [[0.0]]})
        x = np.full((3, 2, 1), tiny, dtype)
        with fastrnn.threads(2):
            ys.append(bool((m(x)[0] == x).all()))
        y, h, cache = m.forward_train(x)
        dx = m.backward(cache, x)[0]
        ys.append(bool((dx == x).all()))
    for cls in (fastrnn.LSTM, fastrnn.GRU):
        m = cls(8, 32, seed=1, bidirectional=True)
        x = np.random.default_rng(0).standard_normal((20, 16, 8)).astype(np.float32)
        with fastrnn.threads(2):
            y, state, cache = m.forward_train(x)
            m.backward(cache, y)
        fastrnn.LSTMCell(8, 32, seed=1)(x[0])
    report["kernel_subnormals"] = ys
    report["after_calls"] = mxcsr()
    report["kept_after_calls"] = subnormals_kept()
    print(json.dumps(report))
""")

FTZ_DAZ = 0x8000 | 0x0040   # MXCSR flush-to-zero (bit 15) and denormals-are-zero (bit 6)


def test_subnormals_intact_after_import_and_calls():
    done = run_python(["-c", MXCSR_PROBE], timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["kept_before"] and report["kept_after_import"] and report["kept_after_calls"]
    assert all(report["kernel_subnormals"]), report
    if report["before"] is not None:
        for when in ("after_import", "after_calls"):
            assert report[when] & FTZ_DAZ == report["before"] & FTZ_DAZ, (when, report)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_long_sequence_matches_reference(mode, dtype):
    T = 2000
    rng = np.random.default_rng(7)
    m = MODES[mode](3, 6, bidirectional=True, dtype=dtype, seed=5)
    x = rng.standard_normal((T, 3, 3)).astype(dtype)
    y = check_module(m, x, [T, 0, 1234], dtype)
    assert np.isfinite(y).all()
    assert np.abs(y[1500:, 0]).max() > 1e-3     # the state still carries signal at the end


# ---- property-based fuzzing of the public API, in a subprocess ---------------------------

FUZZ_EXAMPLES = 120


def test_public_api_fuzzed_in_subprocess():
    done = run_python([os.path.abspath(__file__), str(FUZZ_EXAMPLES)],
                      timeout=600)
    output = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, f"fuzzing failed (exit status {done.returncode}):\n{output}"
    assert "fuzzed:" in done.stdout, output


ACCEPTED = (ValueError, TypeError)
DTYPES = (np.float32, np.float64, np.float16, np.int32, np.bool_, np.complex64, object)


def fuzz_main(max_examples):
    """Throws random shapes, dtypes, strides, Nones, states and lengths at every
    public entry point; only a result or ValueError/TypeError is accepted, and
    no input may change."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    warnings.simplefilter("ignore")
    run = settings(max_examples=max_examples, deadline=None, database=None, print_blob=True,
                   suppress_health_check=list(HealthCheck))

    @st.composite
    def value(draw, shape, dtype):
        """Mostly an array of `shape`; else one of another shape, dtype or kind."""
        kind = draw(st.sampled_from(["good"] * 6 + ["shape", "dtype", "none", "list", "other"]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        if kind == "none":
            return None
        if kind == "other":
            return draw(st.sampled_from([1.5, "x", (), [], {}, np.float32(2), 3]))
        if kind == "shape":
            shape = list(shape)
            op = draw(st.sampled_from(["grow", "shrink", "drop", "add", "zero"]))
            k = draw(st.integers(0, max(len(shape) - 1, 0)))
            if op == "drop" and shape:
                shape.pop(k)
            elif op == "add":
                shape.insert(k, draw(st.integers(0, 3)))
            elif shape:
                shape[k] = {"grow": shape[k] + 1, "shrink": max(shape[k] - 1, 0), "zero": 0,
                            "drop": shape[k]}[op]
        if kind == "dtype":
            dtype = draw(st.sampled_from(DTYPES))
        a = rng.standard_normal(tuple(shape)) * draw(st.sampled_from([1.0, 1e-3, 30.0]))
        if draw(st.integers(0, 9)) == 0 and a.size:
            a.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        a = a.astype(dtype)
        if kind == "list":
            return a.tolist()
        layout = draw(st.sampled_from(["c", "c", "fortran", "strided", "readonly", "broadcast"]))
        if layout == "fortran":
            a = np.asfortranarray(a)
        elif layout == "strided" and a.ndim:
            a = np.repeat(a, 2, axis=-1)[..., ::2]
        elif layout == "readonly":
            a.setflags(write=False)
        elif layout == "broadcast" and a.ndim:
            a = np.broadcast_to(a[..., :1], a.shape)
        return a

    @st.composite
    def lengths(draw, T, N):
        kind = draw(st.sampled_from(["none", "none", "good", "good", "array", "range", "count",
                                     "float", "bool", "other"]))
        good = draw(st.lists(st.integers(0, T), min_size=N, max_size=N))
        if kind == "none":
            return None
        if kind == "good":
            return good
        if kind == "array":
            return np.array(good, dtype=draw(st.sampled_from([np.int64, np.int32, np.uint8])))
        if kind == "range":
            return [draw(st.sampled_from([-1, T + 1, 2**63 - 1, -2**63, 2**64]))] + good[1:]
        if kind == "count":
            return good + [0]
        if kind == "float":
            return [float(v) for v in good]
        if kind == "bool":
            return [True] * N
        return draw(st.sampled_from([3, "3", np.zeros((N, 1), np.int64), {}]))

    @st.composite
    def module(draw):
        mode = draw(st.sampled_from(sorted(MODES)))
        kw = dict(num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                  batch_first=draw(st.booleans()), bias=draw(st.booleans()),
                  dtype=draw(st.sampled_from([np.float32, np.float64])),
                  seed=draw(st.integers(0, 9)))
        H = draw(st.integers(1, 5))
        if mode == "lstm":
            kw["proj_size"] = draw(st.integers(0, H - 1))
            kw["peepholes"] = draw(st.booleans())
        if mode == "rnn":
            kw["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
        if mode == "gru":
            kw["linear_before_reset"] = draw(st.booleans())
        return MODES[mode](draw(st.integers(1, 4)), H, **kw)

    def state_of(draw, m, N, batched):
        D = 2 if m.bidirectional else 1
        lead = (D * m.num_layers,) + ((N,) if batched else ())
        h = draw(value(lead + (m.proj_size or m.hidden_size,), m.dtype))
        if mode_of(m) != "lstm":
            return draw(st.sampled_from([h, None, (h,)]))
        c = draw(value(lead + (m.hidden_size,), m.dtype))
        return draw(st.sampled_from([(h, c), (h, c), None, h, (h,), (h, c, c), (None, c)]))

    def snapshot(*values):
        """Copies of the arrays among values (and inside tuples), to check later."""
        found = []
        for v in values:
            for a in (v if isinstance(v, (tuple, list)) else (v,)):
                if isinstance(a, np.ndarray) and a.dtype != object:
                    found.append((a, a.copy()))
        return found

    def unchanged(found):
        for a, before in found:
            assert np.array_equal(a, before, equal_nan=a.dtype.kind in "fc"), "input modified"

    outcomes = {"results": 0, "errors": 0}

    def attempt(call, *args, **kwargs):
        try:
            result = call(*args, **kwargs)
        except ACCEPTED:
            outcomes["errors"] += 1
            return None
        outcomes["results"] += 1
        return result

    @run
    @given(st.data())
    def fuzz_modules(data):
        draw = data.draw
        m = draw(module())
        T, N = draw(st.integers(0, 4)), draw(st.integers(0, 3))
        batched = draw(st.integers(0, 4)) > 0
        shape = ((N, T) if m.batch_first else (T, N)) if batched else (T,)
        x = draw(value(shape + (m.input_size,), m.dtype))
        state0 = state_of(draw, m, N, batched)
        lens = draw(lengths(T, N))
        inputs = snapshot(x, state0, lens)
        if not draw(st.booleans()):
            out = attempt(m, x, state0, lengths=lens)
            if out is not None:
                D = 2 if m.bidirectional else 1
                assert out[0].shape[-1] == D * (getattr(m, "proj_size", 0) or m.hidden_size)
            unchanged(inputs)
            return
        out = attempt(m.forward_train, x, state0, lengths=lens)
        unchanged(inputs)
        if out is None:
            return
        y, state_n, cache = out
        dy = draw(value(y.shape, m.dtype))
        parts = as_tuple(state_n)
        dstate = tuple(draw(value(p.shape, m.dtype)) for p in parts)
        dstate = draw(st.sampled_from([None, dstate if len(dstate) == 2 else dstate[0], dstate]))
        which = draw(st.sampled_from(["own"] * 4 + ["other", "none", "dict"]))
        if which == "other":
            other = copy.deepcopy(m)
            cache = attempt(other.forward_train, x, state0, lengths=lens)
            cache = None if cache is None else cache[2]
        elif which == "none":
            cache = None
        elif which == "dict":
            cache = {}
        inputs = snapshot(dy, dstate)
        for _ in range(draw(st.integers(1, 2))):     # a cache may be used twice
            attempt(m.backward, cache, dy, dstate)
        unchanged(inputs)

    @run
    @given(st.data())
    def fuzz_cells(data):
        draw = data.draw
        cls = draw(st.sampled_from([fastrnn.RNNCell, fastrnn.LSTMCell, fastrnn.GRUCell]))
        I, H = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        cell = cls(I, H, bias=draw(st.booleans()), dtype=dtype, seed=0)
        N = draw(st.integers(0, 3))
        lead = (N,) if draw(st.booleans()) else ()
        x = draw(value(lead + (I,), dtype))
        h = draw(value(lead + (H,), dtype))
        if cls is fastrnn.LSTMCell:
            c = draw(value(lead + (H,), dtype))
            state = draw(st.sampled_from([(h, c), None, h, (h,), (h, c, c), (None, c)]))
        else:
            state = draw(st.sampled_from([h, None, (h,)]))
        inputs = snapshot(x, state)
        attempt(cell, x, state)
        unchanged(inputs)

    @run
    @given(st.data())
    def fuzz_load_state_dict(data):
        draw = data.draw
        m = draw(module())
        sd = m.state_dict()
        keys = sorted(sd)

        def current(k):  # what an earlier edit left under k (0 for a dropped or None entry)
            value = sd.get(k)
            return 0 if value is None else value

        for _ in range(draw(st.integers(1, 3))):
            k = draw(st.sampled_from(keys))
            op = draw(st.sampled_from(["drop", "extra", "shape", "dtype", "list", "none",
                                       "scalar", "keep"]))
            if op == "drop":
                sd.pop(k, None)
            elif op == "extra":
                sd[k + "_x"] = np.zeros(2)
            elif op == "shape":
                sd[k] = np.zeros(np.asarray(current(k)).size + 1)
            elif op == "dtype":
                sd[k] = np.asarray(current(k)).astype(draw(st.sampled_from(DTYPES)))
            elif op == "list":
                sd[k] = np.asarray(current(k)).tolist()
            elif op == "none":
                sd[k] = None
            elif op == "scalar":
                sd[k] = 1.0
        inputs = snapshot(*sd.values())
        loaded = attempt(m.load_state_dict, sd, strict=draw(st.booleans()))
        unchanged(inputs)
        if loaded is not None:      # whatever was loaded, the module still runs
            x = np.ones((2, 1, m.input_size), m.dtype)
            m(np.swapaxes(x, 0, 1) if m.batch_first else x)

    fuzzers = [fuzz_modules, fuzz_cells, fuzz_load_state_dict]
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        fuzzers.append(torch_fuzzer(run, given, st, torch))
    for fuzz in fuzzers:
        fuzz()
    # Fuzzing that only ever hits the argument checks would prove little.
    assert outcomes["results"] > outcomes["errors"] / 10, outcomes
    print(f"fuzzed: {', '.join(f.__name__ for f in fuzzers)}, {max_examples} examples each; "
          f"{outcomes['results']} calls gave results, {outcomes['errors']} a ValueError/TypeError")


def torch_fuzzer(run, given, st, torch):
    """fastrnn.torch against torch.nn on the same random (often bad) input: the
    same exception type, or the same results and input gradient."""
    import fastrnn.torch as ft

    def outcome(m, x, hx):
        try:
            x = x.detach().clone().requires_grad_(x.is_floating_point())
            out = m(x) if hx is None else m(x, hx)
            if x.requires_grad:
                out[0].sum().backward()
            return out[0].detach(), None if x.grad is None else x.grad.detach()
        except Exception as err:   # the type is compared with torch.nn's
            return type(err)

    @run
    @given(st.data())
    def fuzz_torch_bridge(data):
        draw = data.draw
        name = draw(st.sampled_from(["RNN", "LSTM", "GRU"]))
        H = draw(st.integers(1, 4))
        kw = dict(num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                  batch_first=draw(st.booleans()), bias=draw(st.booleans()))
        if name == "LSTM":
            kw["proj_size"] = draw(st.integers(0, H - 1))
        I = draw(st.integers(1, 3))
        dtype = draw(st.sampled_from([torch.float32, torch.float64]))
        torch.manual_seed(draw(st.integers(0, 9)))
        theirs = getattr(torch.nn, name)(I, H, **kw).to(dtype)
        ours = getattr(ft, name)(I, H, **kw).to(dtype)
        ours.load_state_dict(theirs.state_dict())
        shape = list(draw(st.sampled_from([(2, 3, I), (3, I), (1, 1, I), (2, 0, I)])))
        if draw(st.integers(0, 4)) == 0:
            shape[-1] = draw(st.integers(0, 4))
        x_dtype = draw(st.sampled_from([dtype] * 4 + [torch.float16, torch.int64, torch.bool]))
        x = (torch.randn(shape, dtype=torch.float64) * 2).to(x_dtype)
        if draw(st.booleans()) and x.dim() == 3:
            x = x.transpose(0, 1).contiguous().transpose(0, 1)      # not contiguous
        hx = None
        if draw(st.booleans()):
            D = 2 if kw["bidirectional"] else 1
            batch = (shape[1 if not kw["batch_first"] else 0],) if len(shape) == 3 else ()
            h = torch.randn((D * kw["num_layers"],) + batch + (kw.get("proj_size") or H,),
                            dtype=dtype)
            if draw(st.integers(0, 3)) == 0:
                h = h[..., :0]
            hx = (h, torch.randn(h.shape[:-1] + (H,), dtype=dtype)) if name == "LSTM" else h
        expected, got = outcome(theirs, x, hx), outcome(ours, x, hx)
        if isinstance(expected, type):
            assert got is expected, f"torch.nn raised {expected.__name__}, fastrnn.torch {got}"
            return
        assert not isinstance(got, type), f"torch.nn ran, fastrnn.torch raised {got.__name__}"
        tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)
        for a, b in zip(got, expected):
            if b is not None:
                np.testing.assert_allclose(a.numpy(), b.numpy(), **tol)

    return fuzz_torch_bridge


if __name__ == "__main__":
    fuzz_main(int(sys.argv[1]) if len(sys.argv) > 1 else FUZZ_EXAMPLES)


@pytest.mark.parametrize("mode,I,H,P,L,D", [("lstm", 7, 5, 0, 1, 1), ("lstm", 3, 9, 4, 3, 2),
                                            ("gru", 11, 6, 0, 2, 2), ("rnn", 5, 2, 0, 1, 2)])
def test_call_size_bounds_are_where_check_call_sizes_stops(mode, I, H, P, L, D):
    """The fast paths' bounds (computed once) pass exactly what the checks pass."""
    from fastrnn._checks import call_size_bounds, check_call_sizes
    max_batch, max_batch_lengths, max_steps = call_size_bounds(mode, I, H, P, L, D)
    check = lambda T, N, lengths: check_call_sizes(mode, T, N, I, H, P, L, D, lengths=lengths)
    for lengths, limit in ((False, max_batch), (True, max_batch_lengths)):
        check(1, limit, lengths)
        with pytest.raises(ValueError):
            check(1, limit + 1, lengths)
    T = max_steps // 2
    check(T, 2, False)
    with pytest.raises(ValueError):
        check(T + 1, 2, False)
