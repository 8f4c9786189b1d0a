"""Checks of the NumPy oracle itself: against PyTorch, finite differences and hand.

Run with ``-s`` to see the largest errors per cell (conftest.py prints them).
"""

import math

import numpy as np
import pytest

from fastrnn import reference as ref
from fastrnn._cell import ACTIVATIONS, GATES, Cell


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0))


# ---------------------------------------------------------------------------
# Building problems

def make_params(rng, mode, I, H, *, L=1, D=1, bias=True, proj=0, peepholes=False, scale=0.6):
    """Random parameters under torch's state_dict names."""
    G, H_out = GATES[mode], proj or H
    shapes = {"weight_ih": None, "weight_hh": (G * H, H_out)}
    if bias:
        shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
    if proj:
        shapes["weight_hr"] = (proj, H)
    if peepholes:
        shapes["weight_peephole"] = (3 * H,)
    params = {}
    for k in range(L):
        for d in range(D):
            for name, shape in shapes.items():
                shape = shape or (G * H, I if k == 0 else D * H_out)
                suffix = f"_l{k}" + ("_reverse" if d else "")
                params[name + suffix] = rng.uniform(-scale, scale, shape)
    return params


def make_state(rng, mode, n, N, H, H_out):
    h0 = rng.standard_normal((n, N, H_out)) * 0.5
    return (h0, rng.standard_normal((n, N, H)) * 0.5) if mode == "lstm" else (h0,)


def loss_of(y, state_n, gy, gs):
    return np.sum(y * gy) + sum(np.sum(s * g) for s, g in zip(state_n, gs))


# ---------------------------------------------------------------------------
# 1. Against PyTorch (float64, every output and every gradient)

TORCH_CELLS = {                  # name: (mode, torch kwargs, Cell)
    "rnn-tanh": ("rnn", {"nonlinearity": "tanh"}, Cell.make("rnn")),
    "rnn-relu": ("rnn", {"nonlinearity": "relu"}, Cell.make("rnn", nonlinearity="relu")),
    "lstm": ("lstm", {}, Cell.make("lstm")),
    "lstm-proj": ("lstm", {"proj_size": 3}, Cell.make("lstm")),
    "gru": ("gru", {}, Cell.make("gru")),
}
TORCH_CONFIGS = {                # name: (num_layers, directions, bias, lengths)
    "1layer": (1, 1, True, None),
    "nobias": (1, 1, False, None),
    "bidir-lengths-nobias": (1, 2, False, [5, 2, 4]),
    "2layers-lengths": (2, 1, True, [3, 5, 1]),
    "2layers-bidir-lengths": (2, 2, True, [4, 1, 5]),
}


def torch_run(mode, kwargs, params, x, state0, gy, gs, *, L, D, bias, lengths, masks=None):
    """torch's outputs and gradients; layer by layer (to apply masks) when masks are given."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    T, N, I = x.shape
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[mode]
    H = params["weight_hh_l0"].shape[0] // GATES[mode]
    x_t = torch.tensor(x, requires_grad=True)
    s0_t = [torch.tensor(s, requires_grad=True) for s in state0]

    def run(module, inp, hx):
        if lengths is not None:
            inp = pack_padded_sequence(inp, torch.tensor(lengths), enforce_sorted=False)
        out, hn = module(inp, tuple(hx) if mode == "lstm" else hx[0])
        if lengths is not None:
            out, _ = pad_packed_sequence(out, total_length=T)
        return out, (hn if mode == "lstm" else (hn,))

    blocks = [(0, L)] if masks is None else [(k, 1) for k in range(L)]  # (first layer, layers)
    inp, finals, modules = x_t, [[] for _ in state0], []
    for k, n_layers in blocks:
        module = cls(inp.shape[2], H, num_layers=n_layers, bias=bias, bidirectional=D == 2,
                     **kwargs).double()
        module.load_state_dict({name: torch.tensor(params[name.replace("_l0", f"_l{k}")
                                                          if n_layers == 1 else name])
                                for name in module.state_dict()})
        if k > 0:
            inp = inp * torch.tensor(masks[k - 1])
        inp, hn = run(module, inp, [s[k * D:(k + n_layers) * D] for s in s0_t])
        for f, h in zip(finals, hn):
            f.append(h)
        modules.append((k, n_layers, module))
    hn = [torch.cat(f) for f in finals]
    loss = (inp * torch.tensor(gy)).sum() + sum((h * torch.tensor(g)).sum() for h, g in zip(hn, gs))
    loss.backward()
    grads = {}
    for k, n_layers, module in modules:
        for name, p in module.named_parameters():
            grads[name.replace("_l0", f"_l{k}") if n_layers == 1 else name] = p.grad.numpy()
    return (inp.detach().numpy(), [h.detach().numpy() for h in hn], x_t.grad.numpy(),
            [s.grad.numpy() for s in s0_t], grads)


def compare_with_torch(errors, cell_name, L, D, bias, lengths, dropout=False, seed=0):
    mode, kwargs, cell = TORCH_CELLS[cell_name]
    rng = np.random.default_rng(seed)
    T, N, I, H = 5, 3, 4, 5
    proj = kwargs.get("proj_size", 0)
    H_out = proj or H
    params = make_params(rng, mode, I, H, L=L, D=D, bias=bias, proj=proj)
    x = rng.standard_normal((T, N, I))
    state0 = make_state(rng, mode, L * D, N, H, H_out)
    gy = rng.standard_normal((T, N, D * H_out))
    gs = [rng.standard_normal(s.shape) for s in state0]
    masks = None
    if dropout:
        p = 0.4
        masks = [(rng.random((T, N, D * H_out)) > p) / (1 - p) for _ in range(L - 1)]

    y, state_n, cache = ref.forward(cell, x, state0, params, num_layers=L, bidirectional=D == 2,
                                    lengths=lengths, dropout_masks=masks)
    dx, dstate0, grads = ref.backward(cache, gy, gs)
    t_y, t_state, t_dx, t_dstate, t_grads = torch_run(
        mode, kwargs, params, x, state0, gy, gs, L=L, D=D, bias=bias, lengths=lengths, masks=masks)

    assert set(grads) == set(t_grads) == set(params)
    errs = {"y": max_err(y, t_y), "dx": max_err(dx, t_dx)}
    for i, (a, b, da, db) in enumerate(zip(state_n, t_state, dstate0, t_dstate)):
        errs[f"state_n[{i}]"], errs[f"dstate0[{i}]"] = max_err(a, b), max_err(da, db)
    errs.update({name: max_err(grads[name], t_grads[name]) for name in params})
    errors.record(f"torch forward, {cell_name}",
           max(v for k, v in errs.items() if k == "y" or k.startswith("state")))
    errors.record(f"torch backward, {cell_name}", max(errs.values()))
    bad = {k: v for k, v in errs.items() if not v < 1e-10}
    assert not bad, bad


@pytest.mark.parametrize("config", TORCH_CONFIGS)
@pytest.mark.parametrize("cell_name", TORCH_CELLS)
def test_matches_torch(cell_name, config, largest_errors):
    compare_with_torch(largest_errors, cell_name, *TORCH_CONFIGS[config])


@pytest.mark.parametrize("cell_name", TORCH_CELLS)
def test_dropout_masks_match_torch_layer_by_layer(cell_name, largest_errors):
    compare_with_torch(largest_errors, cell_name, 3, 2, True, [5, 3, 2], dropout=True, seed=1)


# ---------------------------------------------------------------------------
# 2. Against central finite differences (float64, every option)

def kinks(cell):
    """Points where the cell's pre-activations must not be for a finite difference."""
    points = [] if cell.clip is None else [-cell.clip, cell.clip]
    for name, a, b in zip(cell.activations, cell.alphas, cell.betas):
        points += {"Relu": [0.0], "LeakyRelu": [0.0], "Elu": [0.0], "ThresholdedRelu": [a],
                   "HardSigmoid": [-b / a, (1 - b) / a] if a else []}.get(name, [])
    return np.array(points)


def pre_activations(cache):
    """Every value an activation or a clip saw in a layer: gate pre-activations, and c'."""
    return np.concatenate([v.ravel() for step in cache["steps"] for k, v in step.items()
                           if k.startswith("a") or k == "c_new"])


def distance_to_kinks(cell, caches):
    pts = kinks(cell)
    if pts.size == 0:
        return np.inf
    values = np.concatenate([pre_activations(c) for c in caches])
    return float(np.min(np.abs(values[:, None] - pts[None, :])))


def check_finite_differences(loss_fn, arrays, grads, rng, errors, key, h=1e-6):
    """Directional derivative along a random direction, one argument at a time."""
    assert set(grads) == set(arrays)
    for name, a in arrays.items():
        v = rng.standard_normal(a.shape)
        fd = (loss_fn({**arrays, name: a + h * v}) - loss_fn({**arrays, name: a - h * v})) / (2 * h)
        exact = float(np.sum(grads[name] * v))
        err = abs(fd - exact) / max(1.0, abs(exact))
        errors.record(key, err)
        assert err < 1e-6, (name, fd, exact)


# Every option, PyTorch's or not.  For RNN every ONNX activation, with
# parameters other than the defaults.
ACTIVATION_PARAMS = {"Affine": ((0.7,), (-0.2,)), "LeakyRelu": ((0.05,), ()),
                     "ThresholdedRelu": ((0.3,), ()), "ScaledTanh": ((1.5,), (0.6,)),
                     "HardSigmoid": ((0.3,), (0.4,)), "Elu": ((0.8,), ())}
FD_CELLS = {
    **{f"rnn-{name}": Cell.make("rnn", activations=(name,), alphas=alphas, betas=betas)
       for name in ACTIVATIONS for alphas, betas in [ACTIVATION_PARAMS.get(name, ((), ()))]},
    "rnn-clip": Cell.make("rnn", clip=1.0),
    "lstm": Cell.make("lstm"),
    "lstm-peepholes": Cell.make("lstm"),
    "lstm-clip": Cell.make("lstm", clip=1.0),
    "lstm-input_forget": Cell.make("lstm", input_forget=True),
    "lstm-proj": Cell.make("lstm"),
    "lstm-activations": Cell.make("lstm", activations=("HardSigmoid", "Softsign", "ScaledTanh"),
                                alphas=(0.3, 1.5), betas=(0.45, 0.7)),
    "lstm-everything": Cell.make("lstm", activations=("Sigmoid", "Elu", "Softplus"), alphas=(0.8,),
                               clip=1.0, input_forget=True),
    "gru": Cell.make("gru"),
    "gru-original": Cell.make("gru", linear_before_reset=False),
    "gru-clip": Cell.make("gru", clip=1.0),
    "gru-original-clip": Cell.make("gru", clip=1.0, linear_before_reset=False),
    "gru-activations": Cell.make("gru", activations=("HardSigmoid", "LeakyRelu"), alphas=(0.3, 0.1),
                               betas=(0.45,)),
}
FD_LSTM_EXTRAS = {"lstm-peepholes": {"peepholes": True}, "lstm-proj": {"proj": 3},
                  "lstm-everything": {"peepholes": True, "proj": 3}}
SEQUENCES = {"full": (None, False), "lengths": ([4, 2, 0], False),
             "lengths-reverse": ([4, 2, 0], True), "reverse": (None, True)}


def layer_problem(cell_name, seed):
    cell = FD_CELLS[cell_name]
    rng = np.random.default_rng(seed)
    T, N, I, H = 4, 3, 3, 4
    extras = FD_LSTM_EXTRAS.get(cell_name, {})
    H_out = extras.get("proj") or H
    params = make_params(rng, cell.mode, I, H, **extras, scale=0.8 if cell.clip else 0.6)
    arrays = {name[:-len("_l0")]: v for name, v in params.items()}
    arrays["x"] = rng.standard_normal((T, N, I))
    state0 = make_state(rng, cell.mode, 1, N, H, H_out)
    arrays.update(zip(("h0", "c0"), (s[0] for s in state0)))
    gy = rng.standard_normal((T, N, H_out))
    gs = [rng.standard_normal(s[0].shape) for s in state0]
    return cell, arrays, gy, gs, rng


def run_layer(cell, arrays, lengths, reverse):
    state0 = tuple(arrays[k] for k in ("h0", "c0") if k in arrays)
    weights = {k: v for k, v in arrays.items() if k in ref.WEIGHT_NAMES}
    return ref.direction_forward(cell, arrays["x"], state0, weights, lengths=lengths, reverse=reverse)


@pytest.mark.parametrize("sequence", SEQUENCES)
@pytest.mark.parametrize("cell_name", FD_CELLS)
def test_layer_gradients_match_finite_differences(cell_name, sequence, largest_errors):
    lengths, reverse = SEQUENCES[sequence]
    for seed in range(20):       # a problem whose pre-activations stay clear of every kink
        cell, arrays, gy, gs, rng = layer_problem(cell_name, seed)
        y, state_n, cache = run_layer(cell, arrays, lengths, reverse)
        if distance_to_kinks(cell, [cache]) > 1e-4:
            break
    else:
        pytest.fail("no problem clear of the kinks")
    if cell.clip is not None:    # the clip really clips, and not everything
        clipped = np.mean(np.abs(pre_activations(cache)) > cell.clip)
        assert 0.05 < clipped < 0.8, clipped

    dx, dstate0, dweights = ref.direction_backward(cache, gy, gs)
    grads = {"x": dx, **dict(zip(("h0", "c0"), dstate0)), **dweights}

    def loss_fn(a):
        y, state_n, _ = run_layer(cell, a, lengths, reverse)
        return loss_of(y, state_n, gy, gs)

    check_finite_differences(loss_fn, arrays, grads, rng, largest_errors,
                             f"finite differences, {cell.mode}")


STACK_CASES = {                  # name: (cells per direction, make_params extras)
    "rnn": ((Cell.make("rnn"), Cell.make("rnn", activations=("Softsign",))), {}),
    "lstm": ((Cell.make("lstm", clip=0.9),
              Cell.make("lstm", activations=("HardSigmoid", "Tanh", "Softsign"), alphas=(0.3,),
                      betas=(0.45,), input_forget=True)), {"peepholes": True, "proj": 3}),
    "gru": ((Cell.make("gru", linear_before_reset=False), Cell.make("gru")), {}),
}


@pytest.mark.parametrize("case", STACK_CASES)
def test_stack_gradients_match_finite_differences(case, largest_errors):
    cells, extras = STACK_CASES[case]
    mode = cells[0].mode
    T, N, I, H, L, D = 4, 3, 3, 4, 2, 2
    H_out = extras.get("proj") or H
    lengths = [4, 1, 3]
    for seed in range(20):
        rng = np.random.default_rng(seed)
        params = make_params(rng, mode, I, H, L=L, D=D, **extras)
        arrays = {**params, "x": rng.standard_normal((T, N, I))}
        arrays.update(zip(("h0", "c0"), make_state(rng, mode, L * D, N, H, H_out)))
        masks = [(rng.random((T, N, D * H_out)) > 0.3) / 0.7]
        gy = rng.standard_normal((T, N, D * H_out))
        gs = [rng.standard_normal(arrays[k].shape) for k in ("h0", "c0") if k in arrays]

        def run(a):
            state0 = tuple(a[k] for k in ("h0", "c0") if k in a)
            p = {k: v for k, v in a.items() if k not in ("x", "h0", "c0")}
            return ref.forward(list(cells), a["x"], state0, p, num_layers=L, bidirectional=True,
                               lengths=lengths, dropout_masks=masks)

        y, state_n, cache = run(arrays)
        if all(distance_to_kinks(c, [lc]) > 1e-4 for layer in cache["saved"]["caches"]
               for lc in layer for c in cells):
            break
    dx, dstate0, grads = ref.backward(cache, gy, gs)
    grads.update({"x": dx, **dict(zip(("h0", "c0"), dstate0))})
    check_finite_differences(lambda a: loss_of(*run(a)[:2], gy, gs), arrays, grads, rng,
                             largest_errors,
                             f"finite differences, {mode} stack")


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_grad_matches_finite_differences(name):
    alpha, beta = (p[0] if p else 0.0 for p in ACTIVATION_PARAMS.get(name, ((), ())))
    x = np.linspace(-4, 4, 161) + 0.0123          # clear of every kink by > 1e-3
    h = 1e-6
    f = lambda v: ref.activation(name, v, alpha, beta)
    fd = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(ref.activation_grad(name, x, alpha, beta), fd, rtol=1e-7, atol=1e-8)
    for dtype in (np.float32, np.float64):
        assert ref.activation(name, x.astype(dtype), alpha, beta).dtype == dtype
        assert ref.activation_grad(name, x.astype(dtype), np.float64(alpha), beta).dtype == dtype


def test_activations_by_hand():
    x = np.array([-2.0, -0.5, 0.0, 0.3, 2.0])
    cases = {
        ("Sigmoid", 0, 0): 1 / (1 + np.exp(-x)),
        ("Tanh", 0, 0): np.tanh(x),
        ("Relu", 0, 0): [0, 0, 0, 0.3, 2],
        ("Affine", 2, 1): [-3, 0, 1, 1.6, 5],
        ("LeakyRelu", 0.1, 0): [-0.2, -0.05, 0, 0.3, 2],
        ("ThresholdedRelu", 0.3, 0): [0, 0, 0, 0, 2],        # x > alpha, strictly
        ("ScaledTanh", 2, 0.5): 2 * np.tanh(0.5 * x),
        ("HardSigmoid", 0.2, 0.5): [0.1, 0.4, 0.5, 0.56, 0.9],
        ("Elu", 2, 0): [2 * (math.exp(-2) - 1), 2 * (math.exp(-0.5) - 1), 0, 0.3, 2],
        ("Softsign", 0, 0): [-2 / 3, -1 / 3, 0, 0.3 / 1.3, 2 / 3],
        ("Softplus", 0, 0): np.log1p(np.exp(x)),
    }
    for (name, a, b), want in cases.items():
        np.testing.assert_allclose(ref.activation(name, x, a, b), want, rtol=1e-14, atol=1e-15)
    for name in ACTIVATIONS:     # NaN propagates through every activation
        with np.errstate(invalid="ignore"):
            assert np.isnan(ref.activation(name, np.array([np.nan]), 0.5, 0.5)).all(), name
    # sigmoid stays accurate, relative to its size, far in the tails
    np.testing.assert_allclose(ref.activation("Sigmoid", np.array([-700.0, 700.0]), 0, 0),
                               [math.exp(-700), 1.0], rtol=1e-12)


# ---------------------------------------------------------------------------
# 3. Small cases worked out by hand

def test_rnn_by_hand():
    # I = H = 1, T = 2, ReLU; w_ih = 2, w_hh = 0.5, b_ih + b_hh = 0.1 - 0.1 = 0; h0 = 0; x = 1, 2.
    #   h1 = relu(2*1 + 0.5*0) = 2,  h2 = relu(2*2 + 0.5*2) = 5.
    # Backward of y2 alone (dy = 0, 1):
    #   da2 = 1, dh1 = 0.5*da2 = 0.5, da1 = 0.5, dh0 = 0.5*da1 = 0.25;
    #   dx = 2*da = 1, 2;  dw_ih = da1*x1 + da2*x2 = 0.5 + 2 = 2.5;  dw_hh = da1*h0 + da2*h1 = 2;
    #   db_ih = db_hh = da1 + da2 = 1.5.
    cell = Cell.make("rnn", nonlinearity="relu")
    w = {"weight_ih": [[2.0]], "weight_hh": [[0.5]], "bias_ih": [0.1], "bias_hh": [-0.1]}
    y, (h_n,), cache = ref.direction_forward(cell, np.array([1.0, 2.0]).reshape(2, 1, 1),
                                         (np.zeros((1, 1)),), w)
    np.testing.assert_allclose(y.ravel(), [2, 5], rtol=1e-15)
    np.testing.assert_allclose(h_n, [[5]], rtol=1e-15)
    dx, (dh0,), dw = ref.direction_backward(cache, np.array([0.0, 1.0]).reshape(2, 1, 1), None)
    np.testing.assert_allclose(dx.ravel(), [1, 2], rtol=1e-15)
    np.testing.assert_allclose(dh0, [[0.25]], rtol=1e-15)
    want = {"weight_ih": 2.5, "weight_hh": 2.0, "bias_ih": 1.5, "bias_hh": 1.5}
    for k, v in want.items():
        np.testing.assert_allclose(dw[k].ravel(), [v], rtol=1e-15)


def test_lstm_by_hand():
    # I = H = 1, T = 2, all weights and biases 0: i = f = o = sigmoid(0) = 1/2, g = tanh(0) = 0.
    # c0 = 1: c1 = c0/2 = 1/2, c2 = 1/4;  h1 = tanh(1/2)/2, h2 = tanh(1/4)/2.
    # Backward of c2 alone: dc1 = f = 1/2, dc0 = 1/4.  Per step, with dc' the gradient at c':
    #   da_f = dc' * c * f(1-f) = dc' * c / 4,  da_g = dc' * i * (1 - g^2) = dc' / 2,
    #   da_i = da_o = 0.
    #   step 2 (dc' = 1,   c = 1/2): da_f = 1/8, da_g = 1/2
    #   step 1 (dc' = 1/2, c = 1):   da_f = 1/8, da_g = 1/4
    #   db = (0, 1/4, 3/4, 0);  with x = 1, 2:
    #   dw_ih = (0, 1/8*1 + 1/8*2, 1/4*1 + 1/2*2, 0) = (0, 3/8, 5/4, 0).
    cell = Cell.make("lstm")
    w = {"weight_ih": np.zeros((4, 1)), "weight_hh": np.zeros((4, 1)),
         "bias_ih": np.zeros(4), "bias_hh": np.zeros(4)}
    x = np.array([1.0, 2.0]).reshape(2, 1, 1)
    y, (h_n, c_n), cache = ref.direction_forward(cell, x, (np.full((1, 1), 0.3), np.ones((1, 1))), w)
    np.testing.assert_allclose(y.ravel(), [math.tanh(0.5) / 2, math.tanh(0.25) / 2], rtol=1e-15)
    np.testing.assert_allclose(c_n, [[0.25]], rtol=1e-15)
    dx, (dh0, dc0), dw = ref.direction_backward(cache, None, (None, np.ones((1, 1))))
    np.testing.assert_allclose(dc0, [[0.25]], rtol=1e-15)
    np.testing.assert_array_equal(dh0, [[0.0]])
    np.testing.assert_allclose(dw["bias_hh"], [0, 0.25, 0.75, 0], rtol=1e-15)
    np.testing.assert_allclose(dw["weight_ih"].ravel(), [0, 0.375, 1.25, 0], rtol=1e-15)


@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_gru_by_hand(linear_before_reset):
    # I = H = 1, T = 2, weights 0, b_in = 1: r = z = 1/2, n = tanh(1), h' = (tanh(1) + h) / 2.
    # h0 = 1: h1 = (tanh 1 + 1)/2 = sigmoid(2) = 0.8807970779778823,
    #         h2 = (tanh 1 + h1)/2 = 0.8211956169668236.
    # Backward of h2 alone: only h' = ... + z*h carries it: dh1 = 1/2, dh0 = 1/4.
    cell = Cell.make("gru", linear_before_reset=linear_before_reset)
    w = {"weight_ih": np.zeros((3, 1)), "weight_hh": np.zeros((3, 1)),
         "bias_ih": np.array([0.0, 0.0, 1.0]), "bias_hh": np.zeros(3)}
    y, (h_n,), cache = ref.direction_forward(cell, np.ones((2, 1, 1)), (np.ones((1, 1)),), w)
    np.testing.assert_allclose(y.ravel(), [0.8807970779778823, 0.8211956169668236], rtol=1e-15)
    dx, (dh0,), dw = ref.direction_backward(cache, None, (np.ones((1, 1)),))
    np.testing.assert_allclose(dh0, [[0.25]], rtol=1e-15)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_length_zero_keeps_the_initial_state(mode, bidirectional):
    rng = np.random.default_rng(3)
    T, N, I, H, D = 3, 2, 2, 3, 1 + bidirectional
    params = make_params(rng, mode, I, H, D=D)
    state0 = make_state(rng, mode, D, N, H, H)
    x = rng.standard_normal((T, N, I))
    y, state_n, cache = ref.forward(Cell.make(mode), x, state0, params, bidirectional=bidirectional,
                                    lengths=[0, 3])
    assert np.all(y[:, 0] == 0) and np.all(y[:, 1] != 0)
    for s, s0 in zip(state_n, state0):
        np.testing.assert_array_equal(s[:, 0], s0[:, 0])
    gs = [rng.standard_normal(s.shape) for s in state0]
    dx, dstate0, grads = ref.backward(cache, rng.standard_normal(y.shape), gs)
    assert np.all(dx[:, 0] == 0)
    for d, g in zip(dstate0, gs):
        np.testing.assert_array_equal(d[:, 0], g[:, 0])   # passed straight through


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_reverse_runs_each_sequence_from_its_own_end(mode):
    # Reverse with lengths == forward over each sequence's valid prefix flipped by hand.
    rng = np.random.default_rng(4)
    T, N, I, H, lengths = 5, 3, 2, 3, [5, 2, 3]
    w = {k[:-3]: v for k, v in make_params(rng, mode, I, H).items()}
    state0 = tuple(s[0] for s in make_state(rng, mode, 1, N, H, H))
    x = rng.standard_normal((T, N, I))
    y, state_n, _ = ref.direction_forward(Cell.make(mode), x, state0, w, lengths=lengths, reverse=True)
    x_flipped = x.copy()
    for n, L in enumerate(lengths):
        x_flipped[:L, n] = x[:L, n][::-1]
    y_f, state_f, _ = ref.direction_forward(Cell.make(mode), x_flipped, state0, w, lengths=lengths)
    for n, L in enumerate(lengths):
        np.testing.assert_allclose(y[:L, n], y_f[:L, n][::-1], rtol=1e-14)
        assert np.all(y[L:, n] == 0)
    for a, b in zip(state_n, state_f):
        np.testing.assert_allclose(a, b, rtol=1e-14)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_padding_never_enters_the_computation(mode):
    # x and dy past a sequence's length may hold anything, NaN included.
    rng = np.random.default_rng(5)
    T, N, I, H, lengths = 4, 2, 2, 3, [2, 4]
    params = make_params(rng, mode, I, H, L=2, D=2)
    x, dy = rng.standard_normal((T, N, I)), rng.standard_normal((T, N, 2 * H))
    x_nan, dy_nan = x.copy(), dy.copy()
    x_nan[2:, 0] = dy_nan[2:, 0] = np.nan
    results = []
    for xx, dd in ((x, dy), (x_nan, dy_nan)):
        y, state_n, cache = ref.forward(Cell.make(mode), xx, None, params, num_layers=2,
                                        bidirectional=True, lengths=lengths)
        dx, dstate0, grads = ref.backward(cache, dd, None)
        results.append([y, *state_n, dx, *dstate0, *grads.values()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert np.all(results[0][1 + len(state_n)][2:, 0] == 0)      # dx is 0 at padded positions


# ---------------------------------------------------------------------------
# dtypes, untouched inputs, reusable caches

STACKS = {                       # name: (Cell, make_params extras)
    "rnn": (Cell.make("rnn", clip=1.0), {}),
    "lstm": (Cell.make("lstm", clip=1.5, input_forget=True), {"peepholes": True, "proj": 2}),
    "gru": (Cell.make("gru", linear_before_reset=False), {}),
}


def stack_problem(name, dtype=np.float64, seed=6):
    cell, extras = STACKS[name]
    rng = np.random.default_rng(seed)
    T, N, I, H, L = 4, 3, 3, 4, 2
    H_out = extras.get("proj") or H
    params = make_params(rng, cell.mode, I, H, L=L, D=2, **extras)
    state0 = make_state(rng, cell.mode, 2 * L, N, H, H_out)
    x = rng.standard_normal((T, N, I))
    masks = [(rng.random((T, N, 2 * H_out)) > 0.5) * 2.0]
    gy = rng.standard_normal((T, N, 2 * H_out))
    gs = tuple(rng.standard_normal(s.shape) for s in state0)
    cast = lambda a: np.asarray(a, dtype=dtype)
    return (cell, cast(x), tuple(map(cast, state0)), {k: cast(v) for k, v in params.items()},
            dict(num_layers=L, bidirectional=True, lengths=[4, 2, 3], dropout_masks=masks),
            cast(gy), tuple(map(cast, gs)))


def run_stack(cell, x, state0, params, kw, gy, gs):
    y, state_n, cache = ref.forward(cell, x, state0, params, **kw)
    dx, dstate0, grads = ref.backward(cache, gy, gs)
    return [y, *state_n, dx, *dstate0, *(grads[k] for k in sorted(grads))]


@pytest.mark.parametrize("name", STACKS)
def test_float32_in_float32_out_close_to_float64(name):
    out32 = run_stack(*stack_problem(name, np.float32))
    out64 = run_stack(*stack_problem(name, np.float64))
    for a, b in zip(out32, out64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("name", STACKS)
def test_inputs_untouched_and_read_only_inputs_work(name):
    problem = stack_problem(name)
    cell, x, state0, params, kw, gy, gs = problem
    arrays = [x, *state0, *params.values(), *kw["dropout_masks"], gy, *gs]
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.flags.writeable = False
    first = run_stack(*problem)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)
    # The same cache twice gives the same gradients.
    y, state_n, cache = ref.forward(cell, x, state0, params, **kw)
    again = ref.backward(cache, gy, gs), ref.backward(cache, gy, gs)
    for a, b in zip(again[0][2].values(), again[1][2].values()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again[0][0], first[1 + len(state0)])    # dx


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_none_means_zeros(mode):
    rng = np.random.default_rng(7)
    T, N, I, H = 3, 2, 2, 3
    params = make_params(rng, mode, I, H)
    x = rng.standard_normal((T, N, I))
    zeros = make_state(rng, mode, 1, N, H, H)
    zeros = tuple(np.zeros_like(s) for s in zeros)
    y, state_n, cache = ref.forward(Cell.make(mode), x, None, params)
    y0, state_n0, cache0 = ref.forward(Cell.make(mode), x, zeros, params)
    np.testing.assert_array_equal(y, y0)
    dx, dstate0, grads = ref.backward(cache, None, None)
    assert not np.any(dx) and all(not np.any(g) for g in grads.values())
    assert [d.shape for d in dstate0] == [s.shape for s in zeros]
    half = ref.backward(cache, np.ones_like(y), (None,) * len(zeros))
    full = ref.backward(cache0, np.ones_like(y), zeros)
    np.testing.assert_array_equal(half[0], full[0])


def test_clip_placement_as_onnx_runtime():
    # ONNX Runtime clips each whole gate pre-activation, after the biases and
    # the peephole terms, and for the GRU's n after the reset gate is applied.
    sig = lambda v: 1 / (1 + math.exp(-v))
    # LSTM, H = 1, weights 0, p_i = 2, c0 = 1, clip 1: a_i = 0 + 2*c0 = 2 -> 1, so i = sigmoid(1)
    # (not sigmoid(2), as a clip before the peephole would give);
    # f = o = 1/2, g = tanh(b_g = 3 -> 1).
    # c1 = f*c0 + i*g = 1/2 + sigmoid(1)*tanh(1); h1 = o * tanh(c1), c1 itself is not clipped.
    w = {"weight_ih": np.zeros((4, 1)), "weight_hh": np.zeros((4, 1)),
         "bias_ih": np.array([0.0, 0.0, 3.0, 0.0]), "weight_peephole": np.array([2.0, 0.0, 0.0])}
    y, (h1, c1), _ = ref.direction_forward(Cell.make("lstm", clip=1.0), np.zeros((1, 1, 1)),
                                       (np.zeros((1, 1)), np.ones((1, 1))), w)
    want_c = 0.5 + sig(1) * math.tanh(1)
    np.testing.assert_allclose(c1, [[want_c]], rtol=1e-15)
    np.testing.assert_allclose(h1, [[0.5 * math.tanh(want_c)]], rtol=1e-15)
    # GRU, H = 1, weights 0, h0 = 0, b_hn = 3, clip 1: r = z = 1/2;
    # linear_before_reset: a_n = 0 + r*(0 + 3) = 1.5 -> 1;
    # otherwise:           a_n = 0 + W_hn (r h) + 3 = 3 -> 1.
    # Either way n = tanh(1) (clipping W_hn h + b_hn alone would give tanh(1/2)), h1 = n/2.
    for lbr in (True, False):
        w = {"weight_ih": np.zeros((3, 1)), "weight_hh": np.zeros((3, 1)),
             "bias_hh": np.array([0.0, 0.0, 3.0])}
        y, (h1,), _ = ref.direction_forward(Cell.make("gru", clip=1.0, linear_before_reset=lbr),
                                        np.zeros((1, 1, 1)), (np.zeros((1, 1)),), w)
        np.testing.assert_allclose(h1, [[math.tanh(1) / 2]], rtol=1e-15)
