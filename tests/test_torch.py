"""fastrnn.torch: the drop-in torch.nn.RNN / LSTM / GRU, against torch.nn itself.

Outputs and every gradient against torch.nn over random configurations,
gradcheck, packed sequences, ``convert``, a training loop, dropout, saving,
fallbacks, torch.nn's errors and DistributedDataParallel.  Run with ``-s`` to
see the largest error against torch.nn per cell and dtype.
"""

import copy
import io
import os
import random
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence  # noqa: E402

import fastrnn  # noqa: E402
import fastrnn.functional  # noqa: E402
import fastrnn.torch as ft  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")

CELLS = ("RNN", "LSTM", "GRU")
DTYPES = (torch.float64, torch.float32)
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
def assert_close(actual, expected, errors=None, key=None):
    """Equal within the dtype's tolerance, relative to the size of ``expected``; the
    error recorded under ``key`` in ``errors``."""
    actual, expected = actual.detach(), expected.detach()
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    a, b = actual.double().numpy(), expected.double().numpy()
    if key is not None:
        errors.record(key, a, b)
    tol = TOL[expected.dtype]
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


@pytest.fixture
def kernel_calls(monkeypatch):
    """Count the calls into fastrnn's stack (and whether forward kept a cache)."""
    calls = {"forward": 0, "backward": 0, "training": []}
    forward, backward = fastrnn.functional.stack_forward, fastrnn.functional.stack_backward

    def counted_forward(*args, **kwargs):
        calls["forward"] += 1
        calls["training"].append(kwargs.get("training", False))
        return forward(*args, **kwargs)

    def counted_backward(*args, **kwargs):
        calls["backward"] += 1
        return backward(*args, **kwargs)

    monkeypatch.setattr(fastrnn.functional, "stack_forward", counted_forward)
    monkeypatch.setattr(fastrnn.functional, "stack_backward", counted_backward)
    return calls


def make_pair(cell, *args, seed=0, **kwargs):
    """A torch.nn module and a fastrnn.torch one with the same weights."""
    torch.manual_seed(seed)
    reference = getattr(nn, cell)(*args, **kwargs)
    fast = getattr(ft, cell)(*args, **kwargs)
    fast.load_state_dict(reference.state_dict())
    return reference, fast


def flatten(outputs):
    """(output, h_n) or (output, (h_n, c_n)) -> list of tensors (packed: its data)."""
    y, hidden = outputs
    y = y.data if isinstance(y, PackedSequence) else y
    return [y] + (list(hidden) if isinstance(hidden, tuple) else [hidden])


def run_with_grads(module, x, hx, seed):
    """Outputs and the gradients of a random linear function of all of them.

    Returns ``(outputs, grads)``: grads of x, of each hx tensor and of each
    parameter (by name).
    """
    x = x.clone().requires_grad_()
    if hx is not None:
        hx = (tuple(h.clone().requires_grad_() for h in hx) if isinstance(hx, tuple)
              else hx.clone().requires_grad_())
    outputs = flatten(module(x, hx))
    g = torch.Generator().manual_seed(seed)
    loss = sum((out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
               for out in outputs)
    leaves = [x] + ([] if hx is None else list(hx) if isinstance(hx, tuple) else [hx])
    names, params = zip(*module.named_parameters())
    grads = torch.autograd.grad(loss, leaves + list(params))
    named = {"x": grads[0]}
    named.update({f"hx{i}": g_ for i, g_ in enumerate(grads[1:len(leaves)])})
    named.update(zip(names, grads[len(leaves):]))
    return outputs, named


def random_config(cell, seed):
    rng = random.Random(seed)
    kwargs = dict(num_layers=rng.choice([1, 2]), bias=rng.random() < 0.7,
                  batch_first=rng.random() < 0.5, bidirectional=rng.random() < 0.5)
    hidden = rng.randint(2, 5)
    if cell == "LSTM" and rng.random() < 0.5:
        kwargs["proj_size"] = rng.randint(1, hidden - 1)
    if cell == "RNN":
        kwargs["nonlinearity"] = rng.choice(["tanh", "relu"])
    shape = dict(T=rng.randint(1, 5), N=rng.randint(1, 4), I=rng.randint(1, 4), H=hidden,
                 unbatched=rng.random() < 0.25, hx=rng.random() < 0.6)
    return kwargs, shape


def random_inputs(cell, kwargs, shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    T, N, I, H = shape["T"], shape["N"], shape["I"], shape["H"]
    if shape["unbatched"]:
        x = torch.randn(T, I, generator=g, dtype=dtype)
    else:
        x = torch.randn(*((N, T) if kwargs["batch_first"] else (T, N)), I, generator=g,
                        dtype=dtype)
    if not shape["hx"]:
        return x, None
    rows = kwargs["num_layers"] * (2 if kwargs["bidirectional"] else 1)
    batch = () if shape["unbatched"] else (N,)
    h = torch.randn(rows, *batch, kwargs.get("proj_size") or H, generator=g, dtype=dtype)
    if cell != "LSTM":
        return x, h
    return x, (h, torch.randn(rows, *batch, H, generator=g, dtype=dtype))


# ---------------------------------------------------------------------------
# Parity with torch.nn

@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch_nn(cell, dtype, seed, kernel_calls, largest_errors):
    kwargs, shape = random_config(cell, seed)
    reference, fast = make_pair(cell, shape["I"], shape["H"], seed=seed, dtype=dtype, **kwargs)
    x, hx = random_inputs(cell, kwargs, shape, dtype, seed)
    expected, expected_grads = run_with_grads(reference, x, hx, seed)
    actual, actual_grads = run_with_grads(fast, x, hx, seed)
    assert kernel_calls["forward"] == 1 and kernel_calls["backward"] == 1
    dt = str(dtype).replace("torch.", "")
    for a, e in zip(actual, expected):
        assert_close(a, e, largest_errors, ("forward", cell, dt))
    assert actual_grads.keys() == expected_grads.keys()
    for name in expected_grads:
        assert_close(actual_grads[name], expected_grads[name], largest_errors, ("gradient", cell, dt))


@pytest.mark.parametrize("cell, kwargs", [
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2)),
    ("LSTM", dict(bias=False, batch_first=True)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("RNN", dict(num_layers=2, nonlinearity="tanh", bidirectional=True)),
    ("RNN", dict(nonlinearity="relu", bias=False)),
])
def test_gradcheck(cell, kwargs):
    torch.manual_seed(0)
    module = getattr(ft, cell)(2, 3, dtype=torch.float64, **kwargs)
    names, params = zip(*module.named_parameters())
    params = [p.detach().clone().requires_grad_() for p in params]
    rows = module.num_layers * (2 if module.bidirectional else 1)
    x = torch.randn(*((2, 3) if module.batch_first else (3, 2)), 2, dtype=torch.float64,
                    requires_grad=True)
    h0 = torch.randn(rows, 2, module.proj_size or 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(rows, 2, 3, dtype=torch.float64, requires_grad=True)

    def f(x, h0, c0, *params):
        # functional_call swaps the parameters: the module must pick up the new tensors.
        hx = (h0, c0) if cell == "LSTM" else h0
        return tuple(flatten(torch.func.functional_call(module, dict(zip(names, params)),
                                                        (x, hx))))

    inputs = (x, h0, c0, *params)
    with fastrnn.threads(1):     # hundreds of tiny calls: keep off a busy second core
        assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_packed_sequence(cell, dtype, kernel_calls, largest_errors):
    kwargs = dict(num_layers=2, bidirectional=True, batch_first=True)
    if cell == "LSTM":
        kwargs["proj_size"] = 2
    reference, fast = make_pair(cell, 3, 4, seed=3, dtype=dtype, **kwargs)
    lengths = [3, 5, 1, 5, 2]                                  # unsorted, with ties
    g = torch.Generator().manual_seed(3)
    padded = torch.randn(5, 5, 3, generator=g, dtype=dtype)
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    x, hx = random_inputs(cell, kwargs, dict(T=5, N=5, I=3, H=4, unbatched=False, hx=True),
                          dtype, 4)

    def run(module):
        data = packed.data.clone().requires_grad_()
        h = tuple(t.clone().requires_grad_() for t in hx) if cell == "LSTM" else \
            hx.clone().requires_grad_()
        seq = PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                             packed.unsorted_indices)
        out, hidden = module(seq, h)
        outputs = flatten((out, hidden))
        loss = sum((o * torch.randn(o.shape, generator=torch.Generator().manual_seed(i),
                                    dtype=dtype)).sum() for i, o in enumerate(outputs))
        leaves = [data] + list(h if cell == "LSTM" else (h,)) + list(module.parameters())
        return out, outputs, torch.autograd.grad(loss, leaves)

    out_ref, expected, expected_grads = run(reference)
    out, actual, actual_grads = run(fast)
    assert isinstance(out, PackedSequence)
    assert torch.equal(out.batch_sizes, out_ref.batch_sizes)
    assert torch.equal(out.sorted_indices, out_ref.sorted_indices)
    assert torch.equal(out.unsorted_indices, out_ref.unsorted_indices)
    dt = str(dtype).replace("torch.", "")
    for a, e in zip(actual, expected):
        assert_close(a, e, largest_errors, ("packed forward", cell, dt))
    for a, e in zip(actual_grads, expected_grads):
        assert_close(a, e, largest_errors, ("packed gradient", cell, dt))
    assert kernel_calls["forward"] == 1 and kernel_calls["backward"] == 1


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequence_full_lengths_and_sorted(enforce_sorted):
    reference, fast = make_pair("GRU", 3, 4, dtype=torch.float64, bidirectional=True)
    lengths = [4, 4, 4] if enforce_sorted else [4, 2, 3]
    x = torch.randn(4, 3, 3, dtype=torch.float64)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    for a, e in zip(flatten(fast(packed)), flatten(reference(packed))):
        assert_close(a, e)


def test_tensors_reach_the_kernels_without_copies(monkeypatch):
    seen = {}
    forward = fastrnn.functional.stack_forward

    def spy(cells, params, x, h0, c0, **kwargs):
        seen.update(params=params, x=x, h0=h0, c0=c0)
        return forward(cells, params, x, h0, c0, **kwargs)

    monkeypatch.setattr(fastrnn.functional, "stack_forward", spy)
    model = ft.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    x = torch.randn(5, 2, 3, requires_grad=True)
    hx = (torch.randn(4, 2, 2), torch.randn(4, 2, 4))
    model(x, hx)[0].sum().backward()
    assert seen["params"].keys() == model.state_dict().keys()
    for name, array in seen["params"].items():
        assert array.ctypes.data == getattr(model, name).data_ptr()
    for array, tensor in ((seen["x"], x), (seen["h0"], hx[0]), (seen["c0"], hx[1])):
        assert array.ctypes.data == tensor.data_ptr()


def test_sizes_past_the_kernels_are_a_value_error():
    """Checked before anything the size of the input is made (inputs here are expanded views)."""
    model = ft.GRU(3, 4)
    x = torch.zeros(1, 1, 3, requires_grad=True).expand(2 ** 16, 2 ** 15, 3)
    with pytest.raises(ValueError, match=r"x: T\*N = 65536\*32768"):
        model(x)                                     # training: T*N rows in one GEMM
    x = torch.zeros(1, 1, 3).expand(1, 2 ** 31, 3)
    hx = torch.zeros(1, 1, 4).expand(1, 2 ** 31, 4)
    with torch.no_grad(), pytest.raises(ValueError, match=r"x: N \(the batch\)"):
        model(x, hx)


def test_empty_batch_matches_torch_nn():
    reference, fast = make_pair("LSTM", 3, 4, dtype=torch.float64, num_layers=2)
    x = torch.randn(5, 0, 3, dtype=torch.float64, requires_grad=True)
    for a, e in zip(flatten(fast(x)), flatten(reference(x))):
        assert a.shape == e.shape
    y, (h, c) = fast(x)
    (y.sum() + h.sum()).backward()
    assert x.grad.shape == x.shape


# ---------------------------------------------------------------------------
# convert, training, modes, saving

class UserLSTM(nn.LSTM):
    """A user subclass: convert must leave it alone."""


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 3), nn.GRU(3, 4, batch_first=True))
        self.blocks = nn.ModuleList([nn.RNN(4, 4, nonlinearity="relu", batch_first=True),
                                     UserLSTM(4, 4, batch_first=True)])
        self.inner = nn.ModuleDict({"lstm": nn.LSTM(4, 5, batch_first=True, proj_size=2)})

    def forward(self, x):
        x, _ = self.encoder(x)
        x, _ = self.blocks[0](x)
        x, _ = self.blocks[1](x)
        return self.inner["lstm"](x)[0]


def test_convert_nested_model():
    torch.manual_seed(0)
    model = Net()
    before = copy.deepcopy(model)
    params = dict(model.named_parameters())
    assert ft.convert(model) is model
    assert type(model.encoder[1]) is ft.GRU
    assert type(model.blocks[0]) is ft.RNN
    assert type(model.blocks[1]) is UserLSTM
    assert type(model.inner["lstm"]) is ft.LSTM
    assert type(model.encoder[0]) is nn.Linear
    after = dict(model.named_parameters())
    assert after.keys() == params.keys()
    assert all(after[name] is params[name] for name in params)
    assert model.state_dict().keys() == before.state_dict().keys()
    x = torch.randn(2, 5, 3)
    assert_close(model(x), before(x))


def test_convert_root_and_idempotent():
    lstm = nn.LSTM(3, 4)
    weight = lstm.weight_ih_l0
    assert ft.convert(lstm) is lstm and type(lstm) is ft.LSTM
    assert lstm.weight_ih_l0 is weight
    assert ft.convert(lstm) is lstm and type(lstm) is ft.LSTM
    user = UserLSTM(3, 4)
    assert type(ft.convert(user)) is UserLSTM
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ft.convert("not a module")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_training_loop_matches_torch_nn(dtype, kernel_calls):
    torch.manual_seed(5)
    reference = nn.Sequential()
    reference.rnn = nn.LSTM(3, 6, num_layers=2, batch_first=True, dtype=dtype)
    reference.head = nn.Linear(6, 2, dtype=dtype)
    fast = ft.convert(copy.deepcopy(reference))
    assert type(fast.rnn) is ft.LSTM
    x = torch.randn(4, 7, 3, dtype=dtype)
    target = torch.randn(4, 7, 2, dtype=dtype)

    def losses(model):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        out = []
        for _ in range(5):
            opt.zero_grad()
            y, _ = model.rnn(x)
            loss = nn.functional.mse_loss(model.head(y), target)
            loss.backward()
            opt.step()
            out.append(loss.detach())
        return torch.stack(out)

    expected, actual = losses(reference), losses(fast)
    assert kernel_calls["backward"] == 5
    assert expected[-1] < expected[0]
    assert_close(actual, expected)
    for (name, a), (_, e) in zip(fast.named_parameters(), reference.named_parameters()):
        assert_close(a, e)


def test_no_grad_and_inference_mode(kernel_calls):
    reference, fast = make_pair("LSTM", 3, 4, dtype=torch.float64, num_layers=2)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    expected = flatten(reference(x))
    with torch.no_grad():
        actual = flatten(fast(x))
    with torch.inference_mode():
        inferred = flatten(fast(x))
    assert kernel_calls["training"] == [False, False]
    for a, b, e in zip(actual, inferred, expected):
        assert a.grad_fn is None and not a.requires_grad
        assert b.is_inference()
        assert_close(a, e)
        assert_close(b, e)
    # No parameter or input needs a gradient: no cache either.
    for p in fast.parameters():
        p.requires_grad_(False)
    fast(x.detach())
    assert kernel_calls["training"] == [False, False, False]


def test_save_and_load_model_and_state_dict(tmp_path):
    torch.manual_seed(0)
    model = ft.GRU(3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3)
    expected = flatten(model(x))
    path = tmp_path / "model.pt"
    torch.save(model, path)
    loaded = torch.load(path, weights_only=False)
    assert type(loaded) is ft.GRU
    for a, e in zip(flatten(loaded(x)), expected):
        assert torch.equal(a, e)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    plain = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    plain.load_state_dict(torch.load(buffer))          # fastrnn's state_dict is torch.nn's
    for a, e in zip(flatten(plain(x)), expected):
        assert_close(a, e)
    other = ft.GRU(3, 4, num_layers=2, bidirectional=True)
    other.load_state_dict(plain.state_dict())
    for a, e in zip(flatten(other(x)), expected):
        assert torch.equal(a, e)
    copied = copy.deepcopy(model)
    for a, e in zip(flatten(copied(x)), expected):
        assert torch.equal(a, e)


# ---------------------------------------------------------------------------
# Dropout

def test_dropout_reproducible_with_manual_seed(kernel_calls):
    torch.manual_seed(0)
    model = ft.LSTM(3, 4, num_layers=3, dropout=0.5, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    runs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        runs.append(model(x)[0])
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    model.eval()                                        # no dropout: torch.nn's numbers
    reference = nn.LSTM(3, 4, num_layers=3, dropout=0.5, dtype=torch.float64).eval()
    reference.load_state_dict(model.state_dict())
    assert_close(model(x)[0], reference(x)[0])
    assert not torch.equal(model(x)[0], runs[0])


@pytest.mark.parametrize("p", [0.4, 1.0])
def test_dropout_is_between_layers(p):
    """The masks come from torch's generator: one (T, N, D*H_out) mask per layer
    boundary, drawn at the start of forward.  Rebuilt here by hand, the stack is
    two torch.nn layers with the mask between them, forward and backward."""
    dtype = torch.float64
    torch.manual_seed(0)
    model = ft.LSTM(3, 4, num_layers=2, dropout=p, bidirectional=True, dtype=dtype)
    layers = [nn.LSTM(3, 4, bidirectional=True, dtype=dtype),
              nn.LSTM(8, 4, bidirectional=True, dtype=dtype)]
    state = model.state_dict()
    for k, layer in enumerate(layers):
        layer.load_state_dict({name.replace(f"_l{k}", "_l0"): value
                               for name, value in state.items() if f"_l{k}" in name})
    x = torch.randn(5, 2, 3, dtype=dtype)

    x1 = x.clone().requires_grad_()
    torch.manual_seed(11)
    y, (h, c) = model(x1)
    (y.sum() + h.sum() + c.sum()).backward()

    x2 = x.clone().requires_grad_()
    torch.manual_seed(11)
    mask = torch.zeros(5, 2, 8, dtype=dtype) if p == 1 else \
        torch.empty(5, 2, 8, dtype=dtype).bernoulli_(1 - p).div_(1 - p)
    y0, (h0, c0) = layers[0](x2)
    y_ref, (h1, c1) = layers[1](y0 * mask)
    (y_ref.sum() + h0.sum() + h1.sum() + c0.sum() + c1.sum()).backward()

    assert_close(y, y_ref)
    assert_close(h, torch.cat([h0, h1]))
    assert_close(x1.grad, x2.grad)
    for k, layer in enumerate(layers):
        for name, param in layer.named_parameters():
            assert_close(getattr(model, name.replace("_l0", f"_l{k}")).grad, param.grad)


# ---------------------------------------------------------------------------
# Double backward, fallbacks, errors

def test_double_backward_raises():
    torch.manual_seed(0)
    model = ft.GRU(3, 4, dtype=torch.float64)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    y, _ = model(x)
    (grad,) = torch.autograd.grad((y ** 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


def test_backward_twice_like_torch_nn(kernel_calls):
    torch.manual_seed(0)
    model = ft.LSTM(3, 4, num_layers=2, dtype=torch.float64)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    y, _ = model(x)
    y.sum().backward(retain_graph=True)
    first = x.grad.clone()
    y.sum().backward()                                  # the cache may be used again
    assert_close(x.grad, 2 * first)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()                              # freed, as torch.nn's would be
    assert kernel_calls["backward"] == 2


def test_in_place_change_before_backward_is_caught():
    model = ft.GRU(3, 4)
    y, _ = model(torch.randn(4, 2, 3))
    with torch.no_grad():
        model.weight_hh_l0.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_bfloat16_falls_back_to_torch_nn(kernel_calls):
    reference, fast = make_pair("LSTM", 3, 4, dtype=torch.bfloat16, num_layers=2)
    x = torch.randn(5, 2, 3, dtype=torch.bfloat16, requires_grad=True)
    expected, actual = flatten(reference(x)), flatten(fast(x))
    for a, e in zip(actual, expected):
        assert a.dtype == torch.bfloat16 and torch.equal(a, e)
    actual[0].sum().backward()
    assert kernel_calls["forward"] == 0 and kernel_calls["backward"] == 0


def test_other_device_falls_back_to_torch_nn(kernel_calls):
    fast = ft.GRU(3, 4, num_layers=2, device="meta")
    y, h = fast(torch.empty(5, 2, 3, device="meta"))
    assert y.device.type == "meta" and y.shape == (5, 2, 4) and h.shape == (2, 2, 4)
    assert kernel_calls["forward"] == 0


def test_autocast_falls_back_to_torch_nn(kernel_calls):
    reference, fast = make_pair("GRU", 3, 4)
    x = torch.randn(5, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, actual = flatten(reference(x)), flatten(fast(x))
    for a, e in zip(actual, expected):
        assert torch.equal(a, e)
    assert kernel_calls["forward"] == 0


def _bad_calls():
    f64 = dict(dtype=torch.float64)
    lengths_packed = pack_padded_sequence(torch.zeros(5, 2, 3), [5, 3])
    return {
        "4-D input": ("LSTM", {}, lambda: (torch.zeros(5, 2, 3, 1),)),
        "4-D input RNN": ("RNN", {}, lambda: (torch.zeros(5, 2, 3, 1),)),
        "4-D input GRU": ("GRU", {}, lambda: (torch.zeros(5, 2, 3, 1),)),
        "input size": ("GRU", {}, lambda: (torch.zeros(5, 2, 4),)),
        "hidden size": ("RNN", {}, lambda: (torch.zeros(5, 2, 3), torch.zeros(1, 3, 4))),
        "h0 size": ("LSTM", {}, lambda: (torch.zeros(5, 2, 3),
                                         (torch.zeros(1, 2, 5), torch.zeros(1, 2, 4)))),
        "c0 size": ("LSTM", {}, lambda: (torch.zeros(5, 2, 3),
                                         (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4)))),
        "batched, 2-D hx": ("GRU", {}, lambda: (torch.zeros(5, 2, 3), torch.zeros(1, 4))),
        "unbatched, 3-D hx": ("RNN", {}, lambda: (torch.zeros(5, 3), torch.zeros(1, 1, 4))),
        "LSTM unbatched, 3-D hx": ("LSTM", {}, lambda: (
            torch.zeros(5, 3), (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4)))),
        "LSTM batched, 2-D hx": ("LSTM", {}, lambda: (
            torch.zeros(5, 2, 3), (torch.zeros(1, 4), torch.zeros(1, 4)))),
        "LSTM hx not a tuple": ("LSTM", {}, lambda: (torch.zeros(5, 2, 3),
                                                     torch.zeros(1, 2, 4))),
        "input dtype": ("LSTM", {}, lambda: (torch.zeros(5, 2, 3, **f64),)),
        "integer input": ("GRU", {}, lambda: (torch.zeros(5, 2, 3, dtype=torch.int64),)),
        "hx dtype": ("GRU", {}, lambda: (torch.zeros(5, 2, 3), torch.zeros(1, 2, 4, **f64))),
        "T = 0": ("LSTM", {}, lambda: (torch.zeros(0, 2, 3),)),
        "packed, wrong h0": ("LSTM", {}, lambda: (
            lengths_packed, (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)))),
        "packed, wrong hx": ("GRU", {}, lambda: (lengths_packed, torch.zeros(1, 3, 4))),
        "packed, 3-D data": ("RNN", {}, lambda: (
            PackedSequence(torch.zeros(8, 3, 1), lengths_packed.batch_sizes),)),
    }


@pytest.mark.parametrize("case", list(_bad_calls()))
def test_bad_input_raises_like_torch_nn(case):
    cell, kwargs, make_args = _bad_calls()[case]
    reference, fast = make_pair(cell, 3, 4, **kwargs)
    with pytest.raises(Exception) as expected:
        reference(*make_args())
    with pytest.raises(expected.type, match=re.escape(str(expected.value))):
        fast(*make_args())


# ---------------------------------------------------------------------------
# Packaging and DistributedDataParallel

def test_import_fastrnn_does_not_import_torch():
    code = ("import sys, fastrnn; assert 'torch' not in sys.modules; "
            "import fastrnn.torch, torch; assert fastrnn.torch.LSTM.__mro__[2] is torch.nn.LSTM")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_distributed_data_parallel(tmp_path):
    sys.path.insert(0, os.path.dirname(__file__))
    try:
        import ddp_worker
    finally:
        sys.path.pop(0)
    import socket
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world_size = 2
    # The children find ddp_worker through the sys.path they inherit.
    sys.path.insert(0, os.path.dirname(__file__))
    try:
        context = mp.start_processes(ddp_worker.run, args=(world_size, port, str(tmp_path)),
                                     nprocs=world_size, join=False, start_method="spawn")
    finally:
        sys.path.pop(0)
    deadline = time.monotonic() + 120
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("the DDP workers did not finish in 120 s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()

    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world_size)]
    model, x, target = ddp_worker.make_problem()
    loss = nn.functional.mse_loss(model(x), target)
    loss.backward()
    expected = dict(model.named_parameters())
    for result in results:
        assert result["calls"] == {"forward": 1, "backward": 1}
        assert result["grads"].keys() == expected.keys()
        for name, param in expected.items():
            assert_close(result["grads"][name], param.grad)
    assert_close(torch.tensor(sum(r["loss"] for r in results) / world_size,
                              dtype=torch.float64), loss)


def test_module_docstrings():
    for obj in (ft.LSTM, ft.GRU, ft.RNN, ft.convert):
        assert obj.__doc__ and "Parameters" in obj.__doc__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import doctest
        result = doctest.testmod(ft, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
