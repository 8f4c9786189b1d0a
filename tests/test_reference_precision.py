"""The reference at bfloat16 and int8 (SPEC, "Frozen inference"): its own checks.

Hand-worked conversions, the int8 product against integer arithmetic, every
cell and option against float32 (errors in the range SPEC documents), long
sequences without drift, and precision=None unchanged.
"""

import warnings

import numpy as np
import pytest

from fastrnn import reference as ref
from fastrnn._cell import GATES, Cell

F32 = np.float32


def torch_init(rng, mode, I, H, *, L=1, D=1, proj=0, peepholes=False):
    """Parameters as PyTorch initialises them: uniform(-1/sqrt(H), 1/sqrt(H)), float32."""
    G, H_out, k = GATES[mode], proj or H, 1 / np.sqrt(H)
    params = {}
    for layer in range(L):
        for d in range(D):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            shapes = {"weight_ih": (G * H, I if layer == 0 else D * H_out),
                      "weight_hh": (G * H, H_out), "bias_ih": (G * H,), "bias_hh": (G * H,)}
            if proj:
                shapes["weight_hr"] = (proj, H)
            if peepholes:
                shapes["weight_peephole"] = (3 * H,)
            for name, shape in shapes.items():
                params[name + suffix] = rng.uniform(-k, k, shape).astype(F32)
    return params


def unit_normal_problem(seed, mode, T, N, H):
    """A cell with PyTorch's initialisation, unit-normal x (T, N, I=H), its float32 run."""
    rng = np.random.default_rng(seed)
    p = torch_init(rng, mode, H, H)
    x = rng.standard_normal((T, N, H)).astype(F32)
    cell = Cell.make(mode)
    y32, s32, _ = ref.forward(cell, x, None, p)
    return cell, p, x, y32, s32


def rel_errors(y, y32):
    """max|y - y32| / max|y32| and the RMS relative error."""
    d = np.asarray(y, np.float64) - y32
    return (float(np.max(np.abs(d)) / np.max(np.abs(y32))),
            float(np.sqrt(np.mean(d ** 2) / np.mean(np.asarray(y32, np.float64) ** 2))))


def int8_product_in_integers(a, W):
    """SPEC's int8 product with the dot in Python integers: the check of ``product``."""
    qa, scale_a = ref.quantize_rows(a)
    qW, scale_w = ref.quantize_weight(W)
    out = np.empty((a.shape[0], W.shape[0]), F32)
    for i in range(a.shape[0]):
        for r in range(W.shape[0]):
            dot = sum(int(u) * int(v) for u, v in zip(qa[i], qW[r]))
            out[i, r] = F32(dot) * (scale_a[i] * scale_w[r])
    return out


# ---------------------------------------------------------------------------
# bfloat16 rounding

def bits(u):
    return np.array(u, np.uint32).view(F32)


def test_bfloat16_known_values_ties_to_even():
    ulp = 2.0 ** -7                                   # bfloat16's spacing in [1, 2)
    cases = {
        1.0: 1.0,
        1 + ulp / 2: 1.0,                             # tie: down to the even 1.0
        1 + 3 * ulp / 2: 1 + 2 * ulp,                 # tie: up to the even 1 + 2 ulp
        1 + ulp / 2 + 2.0 ** -20: 1 + ulp,            # just past the tie: up
        -(1 + 3 * ulp / 2): -(1 + 2 * ulp),
        0.1: 0.10009765625,                           # 0x3DCCCCCD -> 0x3DCD
        float(bits(0x7F7F7FFF)): float(bits(0x7F7F0000)),   # below the largest's half-ulp
        float(bits(0x7F7F8000)): np.inf,              # the tie above the largest: to inf
        np.inf: np.inf, -np.inf: -np.inf,
        1e-40: 0.0, -1e-40: -0.0,                     # subnormals: a zero of their sign
    }
    x = np.array(list(cases), F32)
    got = ref.round_bfloat16(x)
    want = np.array(list(cases.values()), F32)
    np.testing.assert_array_equal(got, want)
    assert np.signbit(got[-1]) and not np.signbit(got[-2])
    nan = ref.round_bfloat16(np.array([np.nan, -np.nan], F32))
    assert np.all(np.isnan(nan))
    assert np.all(nan.view(np.uint32) & 0x00400000)   # quiet


def test_bfloat16_rounds_to_nearest_representable():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(20000) * np.exp(rng.uniform(-20, 20, 20000))).astype(F32)
    r = ref.round_bfloat16(x)
    assert r.shape == x.shape and r.dtype == F32
    assert np.all(r.view(np.uint32) & 0xFFFF == 0)
    np.testing.assert_array_equal(ref.round_bfloat16(r), r)          # idempotent
    # The two bfloat16 around x: r is the nearer (the even one on a tie).
    down = (x.view(np.uint32) & 0xFFFF0000).view(F32).astype(np.float64)
    up = ((x.view(np.uint32) & 0xFFFF0000) + 0x10000).view(F32).astype(np.float64)
    xd = x.astype(np.float64)
    nearer = np.where(np.abs(xd - down) < np.abs(up - xd), down,
                      np.where(np.abs(xd - down) > np.abs(up - xd), up, np.nan))
    tie = np.isnan(nearer)
    even = np.where((down.astype(F32).view(np.uint32) >> 16) & 1, up, down)
    np.testing.assert_array_equal(r, np.where(tie, even, nearer).astype(F32))


def test_bfloat16_matches_torch_on_normal_values():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(5000) * np.exp(rng.uniform(-30, 30, 5000))).astype(F32)
    want = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(ref.round_bfloat16(x), want)


def test_bfloat16_product_by_hand():
    ulp = 2.0 ** -7
    a = np.array([[1 + ulp / 2, 3.0]], F32)           # -> [1, 3]
    W = np.array([[1 + 3 * ulp / 2, 0.5], [0.0, 0.0]], F32)   # -> [1 + 2 ulp, 0.5]
    np.testing.assert_array_equal(ref.product(a, W, "bfloat16"),
                                  np.array([[1 + 2 * ulp + 1.5, 0.0]], F32))


# ---------------------------------------------------------------------------
# int8 quantization and product

def test_quantize_weight_by_hand():
    W = np.array([[127.0, 2.5, -3.5], [0.0, 0.0, 0.0]], F32)    # scale 1: ties to even
    qW, scale_w = ref.quantize_weight(W)
    assert qW.dtype == np.int8 and scale_w.dtype == F32
    np.testing.assert_array_equal(qW, [[127, 2, -4], [0, 0, 0]])
    np.testing.assert_array_equal(scale_w, [1, 1])               # amax 0: scale 1
    qW, scale_w = ref.quantize_weight(np.array([[0.5, -1.0, 0.25]], F32))
    assert scale_w[0] == F32(1) / F32(127)
    np.testing.assert_array_equal(qW, [[64, -127, 32]])          # 63.5 -> 64, 31.75 -> 32


def test_quantize_rows_by_hand():
    a = np.array([[127.0, 0.5, 1.5, -2.5],       # scale 1: 0.5 -> 0, 1.5 -> 2, -2.5 -> -2
                  [1.0, 2.0, 3.0, 0.0],          # inv = 127/3 in float32
                  [0.0, 0.0, 0.0, 0.0],          # zeros give zeros
                  [1e-38, 0.0, 0.0, 0.0],        # 127 / amax overflows: as zeros
                  [1.0, np.nan, 2.0, 0.0],       # not finite: scale NaN, q 0
                  [1.0, -np.inf, 2.0, 0.0]], F32)
    qa, scale_a = ref.quantize_rows(a)
    assert qa.dtype == np.int8 and scale_a.dtype == F32
    np.testing.assert_array_equal(qa, [[127, 0, 2, -2], [42, 85, 127, 0]] + [[0] * 4] * 4)
    np.testing.assert_array_equal(scale_a[:4], [1, F32(3) / F32(127), 0, 0])
    assert np.all(np.isnan(scale_a[4:]))
    qa3, scale3 = ref.quantize_rows(a[:4].reshape(2, 2, 4))     # rows of any batch shape
    np.testing.assert_array_equal(qa3.reshape(4, 4), qa[:4])
    np.testing.assert_array_equal(scale3.ravel(), scale_a[:4])


def test_int8_product_by_hand():
    a = np.array([[127.0, 0.5, 1.5], [0.0, 0.0, 0.0], [np.nan, 1.0, 1.0]], F32)
    W = np.array([[127.0, 2.5, -3.5], [0.0, 0.0, 0.0]], F32)
    y = ref.product(a, W, "int8")
    np.testing.assert_array_equal(y[:2], [[127 * 127 + 0 * 2 + 2 * -4, 0], [0, 0]])
    assert np.all(np.isnan(y[2]))


def test_int8_product_equals_integer_arithmetic():
    rng = np.random.default_rng(2)
    for m, n, K in [(3, 5, 7), (4, 17, 33), (1, 2, 1)]:
        a = (rng.standard_normal((m, K)) * 3).astype(F32)
        W = rng.uniform(-0.3, 0.3, (n, K)).astype(F32)
        a[0, :] = 0 if K > 5 else a[0, :]
        y = ref.product(a, W, "int8")
        assert y.dtype == F32
        np.testing.assert_array_equal(y, int8_product_in_integers(a, W))
    # Batched left operands (the input rows of all steps) give the same rows.
    a = rng.standard_normal((6, 4, 9)).astype(F32)
    W = rng.uniform(-1, 1, (5, 9)).astype(F32)
    np.testing.assert_array_equal(ref.product(a, W, "int8").reshape(24, 5),
                                  ref.product(a.reshape(24, 9), W, "int8"))


def test_int8_weight_quantization_matches_torch_per_channel():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    W = rng.uniform(-0.2, 0.2, (64, 48)).astype(F32)
    qW, scale_w = ref.quantize_weight(W)
    with warnings.catch_warnings():           # quantized tensors are deprecated in torch
        warnings.simplefilter("ignore", UserWarning)
        q_t = torch.quantize_per_channel(torch.from_numpy(W),
                                         torch.from_numpy(scale_w.astype(np.float64)),
                                         torch.zeros(64, dtype=torch.long), 0, torch.qint8)
    got = q_t.int_repr().numpy()
    # torch multiplies by a reciprocal of the scale where SPEC divides by it:
    # compare where those two round alike (all but a few near-ties).
    alike = np.rint(W * (F32(1) / scale_w[:, None])) == np.rint(W / scale_w[:, None])
    if not np.any(alike):
        pytest.skip("torch's rounding never matches SPEC's here")
    assert np.mean(alike) > 0.99
    np.testing.assert_array_equal(got[alike], qW[alike])


# ---------------------------------------------------------------------------
# Bad input

def test_bad_precision_and_dtype():
    rng = np.random.default_rng(4)
    cell = Cell.make("lstm")
    p = torch_init(rng, "lstm", 3, 4)
    x = rng.standard_normal((2, 1, 3)).astype(F32)
    with pytest.raises(ValueError, match="precision: expected None, 'bfloat16' or 'int8'"):
        ref.forward(cell, x, None, p, precision="float16")
    with pytest.raises(ValueError, match="precision: 'int8' is for float32 input, got float64"):
        ref.forward(cell, x.astype(np.float64), None, p, precision="int8")
    with pytest.raises(ValueError, match="precision"):
        ref.direction_forward(cell, x.astype(np.float64), (np.zeros((1, 4)),) * 2,
                              {"weight_ih": p["weight_ih_l0"], "weight_hh": p["weight_hh_l0"]},
                              precision="bfloat16")
    _, _, cache = ref.forward(cell, x, None, p, precision="int8")
    with pytest.raises(ValueError, match="backward runs after a forward at precision=None"):
        ref.backward(cache, None, None)
    with pytest.raises(TypeError, match="W: expected a float32 array, got dtype float64"):
        ref.quantize_weight(np.ones((2, 2)))
    with pytest.raises(ValueError, match="W: expected finite weights"):
        ref.quantize_weight(np.array([[1, np.inf]], F32))
    with pytest.raises(TypeError, match="a: expected a float32 array"):
        ref.quantize_rows(np.ones(3, np.float16))


# ---------------------------------------------------------------------------
# Whole networks against float32

@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_each_precision_against_float32(mode):
    cell, p, x, y32, s32 = unit_normal_problem(5, mode, T=20, N=4, H=64)
    # SPEC: about 0.3 % (bfloat16) and 1 % (int8) relative; measured here
    # 0.24-0.25 % and 0.75-0.78 % RMS, 0.3-0.7 % and 1.2-1.7 % at the worst entry.
    for precision, rms_bound, max_bound in [("bfloat16", 0.006, 0.02), ("int8", 0.02, 0.06)]:
        y, s, _ = ref.forward(cell, x, None, p, precision=precision)
        assert y.dtype == F32 and all(v.dtype == F32 for v in s)
        worst, rms = rel_errors(y, y32)
        assert rms < rms_bound and worst < max_bound, (precision, worst, rms)
        assert rms > 1e-4, "the reduced precision changed nothing"
        for v, v32 in zip(s, s32):
            assert rel_errors(v, v32)[1] < rms_bound


OPTIONS = {      # name: (mode, Cell.make kwargs, torch_init kwargs, forward kwargs)
    "lstm-2layers-bidir-lengths": ("lstm", {}, {"L": 2, "D": 2},
                                   {"num_layers": 2, "bidirectional": True}),
    "lstm-proj-peepholes": ("lstm", {}, {"proj": 5, "peepholes": True}, {}),
    "lstm-clip-input-forget": ("lstm", {"clip": 0.5, "input_forget": True}, {}, {}),
    "lstm-activations": ("lstm", {"activations": ("HardSigmoid", "Softsign", "Elu")}, {}, {}),
    "gru-onnx-reset-bidir": ("gru", {"linear_before_reset": False}, {"D": 2},
                             {"bidirectional": True}),
    "gru-clip": ("gru", {"clip": 0.3}, {}, {}),
    "rnn-relu-2layers": ("rnn", {"nonlinearity": "relu"}, {"L": 2}, {"num_layers": 2}),
}


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_option(name, precision):
    mode, cell_kw, init_kw, fwd_kw = OPTIONS[name]
    rng = np.random.default_rng(6)
    T, N, I, H = 7, 4, 6, 12
    p = torch_init(rng, mode, I, H, **init_kw)
    cell = Cell.make(mode, **cell_kw)
    x = rng.standard_normal((T, N, I)).astype(F32)
    lengths = np.array([7, 3, 0, 5])
    kw = dict(fwd_kw, lengths=lengths)
    y32, s32, _ = ref.forward(cell, x, None, p, **kw)
    y, s, _ = ref.forward(cell, x, None, p, precision=precision, **kw)
    assert y.shape == y32.shape and np.all(np.isfinite(y))
    assert rel_errors(y, y32)[1] < (0.01 if precision == "bfloat16" else 0.05)
    np.testing.assert_array_equal(y[3:, 1], 0)                 # past a length: zeros
    np.testing.assert_array_equal(y[:, 2], 0)
    # Each row is quantized on its own: a sequence alone, cut to its length,
    # gives its results in the batch (bit for bit in int8, whose sums are exact).
    ys, ss, _ = ref.forward(cell, x[:5, 3:4], None, p, precision=precision, **fwd_kw)
    check = (np.testing.assert_array_equal if precision == "int8" else
             lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7))
    check(y[:5, 3:4], ys)
    for v, vs in zip(s, ss):
        check(v[:, 3:4], vs)


def test_projection_and_reset_products_are_quantized():
    """One int8 step written out from SPEC: weight_hr and W_hn (r * h) quantized too."""
    rng = np.random.default_rng(7)
    N, I, H, P = 3, 5, 8, 4
    mm = int8_product_in_integers
    sig = lambda v: 1 / (1 + np.exp(-v))
    x = rng.standard_normal((1, N, I)).astype(F32)

    p = torch_init(rng, "lstm", I, H, proj=P, peepholes=True)
    h0, c0 = (rng.standard_normal((1, N, P)).astype(F32),
              rng.standard_normal((1, N, H)).astype(F32))
    z = (mm(x[0], p["weight_ih_l0"]) + p["bias_ih_l0"]
         + mm(h0[0], p["weight_hh_l0"]) + p["bias_hh_l0"])
    zi, zf, zg, zo = np.split(z, 4, axis=1)
    pi, pf, po = np.split(p["weight_peephole_l0"], 3)
    c = sig(zf + pf * c0[0]) * c0[0] + sig(zi + pi * c0[0]) * np.tanh(zg)
    h = mm(sig(zo + po * c) * np.tanh(c), p["weight_hr_l0"])
    y, (h_n, c_n), _ = ref.forward(Cell.make("lstm"), x, (h0, c0), p, precision="int8")
    np.testing.assert_allclose(c_n[0], c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_n[0], h, rtol=1e-5, atol=1e-6)

    p = torch_init(rng, "gru", I, H)
    h0 = rng.standard_normal((1, N, H)).astype(F32)
    W_hh, b_hh = p["weight_hh_l0"], p["bias_hh_l0"]
    zx = mm(x[0], p["weight_ih_l0"]) + p["bias_ih_l0"]
    zh = mm(h0[0], W_hh[:2 * H]) + b_hh[:2 * H]
    r, u = sig(zx[:, :H] + zh[:, :H]), sig(zx[:, H:2 * H] + zh[:, H:])
    n = np.tanh(zx[:, 2 * H:] + mm((r * h0[0]).astype(F32), W_hh[2 * H:]) + b_hh[2 * H:])
    y, (h_n,), _ = ref.forward(Cell.make("gru", linear_before_reset=False), x, (h0,), p,
                               precision="int8")
    np.testing.assert_allclose(h_n[0], (1 - u) * n + u * h0[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_long_sequence_no_drift(mode):
    cell, p, x, y32, _ = unit_normal_problem(8, mode, T=1000, N=2, H=16)
    bound = np.max(np.abs(y32))
    for precision in ("bfloat16", "int8"):
        y = ref.forward(cell, x, None, p, precision=precision)[0]
        assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.5 * bound
        middle = rel_errors(y[400:500], y32[400:500])[1]
        end = rel_errors(y[900:], y32[900:])[1]
        # measured: the RMS error of steps 900-999 within 5 % of that of steps 400-499
        assert end < 0.03 and end < 2 * middle, (precision, middle, end)


# ---------------------------------------------------------------------------
# precision=None is the float path as it was

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_precision_none_is_unchanged(dtype):
    rng = np.random.default_rng(9)
    p = {k: v.astype(dtype) for k, v in torch_init(rng, "lstm", 5, 6, D=2, proj=3).items()}
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    cell = Cell.make("lstm")
    kw = dict(bidirectional=True, lengths=[4, 1, 3])
    a = ref.forward(cell, x, None, p, **kw)
    b = ref.forward(cell, x, None, p, precision=None, **kw)
    for u, v in zip((a[0],) + a[1], (b[0],) + b[1]):
        assert u.dtype == dtype
        np.testing.assert_array_equal(u, v)
    gy = rng.standard_normal(a[0].shape).astype(dtype)
    np.testing.assert_array_equal(ref.backward(a[2], gy, None)[0], ref.backward(b[2], gy, None)[0])
    a_, W = x[0], p["weight_ih_l0"]
    np.testing.assert_array_equal(ref.product(a_, W), a_ @ W.T)
