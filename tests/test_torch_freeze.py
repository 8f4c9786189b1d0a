"""``fastrnn.torch.freeze``: a copy of a torch model with its recurrent layers frozen.

Where fastrnn has no ``freeze`` yet, a stand-in returning the NumPy module
itself (whose call is what a frozen module's is) takes its place, so that the
wrapper's own work (the copy, the arguments, PackedSequence, hx, the errors)
is tested; the tests of reduced precision run only on the real one.
"""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

import fastrnn  # noqa: E402
import fastrnn.torch  # noqa: E402

HAS_FREEZE = hasattr(fastrnn, "freeze")
needs_freeze = pytest.mark.skipif(not HAS_FREEZE, reason="fastrnn.freeze is not built here")


def _stand_in_freeze(module, dtype=None):
    """The module itself: the same call as a frozen module's, at its own precision."""
    if dtype is not None:
        raise NotImplementedError("the stand-in freezes at the module's own precision only")
    return module


@pytest.fixture(autouse=True)
def freeze_impl(monkeypatch):
    """fastrnn.freeze, or the stand-in where it is missing."""
    if not HAS_FREEZE:
        monkeypatch.setattr(fastrnn, "freeze", _stand_in_freeze, raising=False)
    yield fastrnn.freeze


def _made(cls, *args, seed=0, **kwargs):
    torch.manual_seed(seed)
    return cls(*args, **kwargs)


def _close(a, b, rtol=1e-5, atol=1e-6):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _close(u, v, rtol, atol)
        return
    assert a.shape == b.shape and a.dtype == b.dtype
    assert torch.allclose(a, b, rtol=rtol, atol=atol), float((a - b).abs().max())


class _OwnLSTM(nn.LSTM):
    """A subclass: freeze leaves it alone."""


def test_copy_with_recurrent_layers_frozen():
    model = nn.Sequential(_made(nn.LSTM, 4, 6), nn.Identity(), _made(nn.Linear, 6, 3),
                          _made(fastrnn.torch.GRU, 3, 5), _made(_OwnLSTM, 5, 2))
    frozen = fastrnn.torch.freeze(model)
    assert [type(m) for m in frozen] == [fastrnn.torch.FrozenLSTM, nn.Identity, nn.Linear,
                                         fastrnn.torch.FrozenGRU, _OwnLSTM]
    assert [type(m) for m in model] == [nn.LSTM, nn.Identity, nn.Linear, fastrnn.torch.GRU,
                                        _OwnLSTM]                      # the model unchanged
    assert frozen[2] is not model[2] and torch.equal(frozen[2].weight, model[2].weight)
    assert frozen[4] is not model[4]
    assert not list(frozen[0].parameters()) and "0.weight_ih_l0" not in frozen.state_dict()
    lstm = frozen[0]
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.mode) == (4, 6, 1, "LSTM")
    assert repr(lstm).startswith("FrozenLSTM(4, 6, dtype=")
    # the model itself, and one layer shared by two places
    assert type(fastrnn.torch.freeze(_made(nn.GRU, 3, 4))) is fastrnn.torch.FrozenGRU
    shared = _made(nn.RNN, 3, 3)
    twice = fastrnn.torch.freeze(nn.Sequential(shared, shared))
    assert twice[0] is twice[1] and type(twice[0]) is fastrnn.torch.FrozenRNN


CONFIGS = [
    (nn.LSTM, {}),
    (nn.LSTM, {"num_layers": 2, "bidirectional": True, "proj_size": 3}),
    (nn.GRU, {"batch_first": True, "bias": False}),
    (nn.RNN, {"nonlinearity": "relu", "num_layers": 2, "dropout": 0.3}),
    (fastrnn.torch.LSTM, {"batch_first": True}),
]


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("cls, options", CONFIGS,
                         ids=["lstm", "lstm-2-bi-proj", "gru-bf-nobias", "rnn-relu-2", "fr-lstm"])
def test_same_results_as_the_module(cls, options):
    module = _made(cls, 5, 4, **options)
    frozen = fastrnn.torch.freeze(module)
    D = 2 if module.bidirectional else 1
    rows, h_out = D * module.num_layers, module.proj_size or module.hidden_size
    batch_first = module.batch_first
    g = torch.Generator().manual_seed(1)
    x = torch.randn((3, 7, 5) if batch_first else (7, 3, 5), generator=g)
    h0 = torch.randn(rows, 3, h_out, generator=g)
    hx = (h0, torch.randn(rows, 3, 4, generator=g)) if module.mode == "LSTM" else h0
    module.eval()
    with torch.no_grad():
        for args in ((x,), (x, hx)):
            _close(frozen(*args), module(*args))
        unbatched = x[0] if batch_first else x[:, 0]
        hx1 = tuple(s[:, 0] for s in hx) if module.mode == "LSTM" else hx[:, 0]
        _close(frozen(unbatched, hx1), module(unbatched, hx1))
        _close(frozen(x.double()), module(x))            # other float dtypes: converted
    y, _ = frozen(x)
    assert y.dtype == torch.float32 and not y.requires_grad   # grad mode on, nothing needs it


@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_sequence(batch_first):
    module = _made(nn.LSTM, 3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    frozen = fastrnn.torch.freeze(module)
    g = torch.Generator().manual_seed(2)
    padded = torch.randn((4, 5, 3) if batch_first else (5, 4, 3), generator=g)
    hx = (torch.randn(4, 4, 4, generator=g), torch.randn(4, 4, 4, generator=g))
    descending = [1, 3, 0, 2]                      # the order of lengths 5, 5, 3, 1
    with torch.no_grad():
        for lengths, enforce_sorted, order in (([3, 5, 1, 5], False, slice(None)),
                                               ([5, 5, 3, 1], True, descending)):
            x = padded[order] if batch_first else padded[:, order]
            packed = pack_padded_sequence(x, lengths, batch_first=batch_first,
                                          enforce_sorted=enforce_sorted)
            for args in ((packed,), (packed, hx)):
                (y, state), (y_ref, state_ref) = frozen(*args), module(*args)
                assert torch.equal(y.batch_sizes, y_ref.batch_sizes)
                for a, b in ((y.sorted_indices, y_ref.sorted_indices),
                             (y.unsorted_indices, y_ref.unsorted_indices)):
                    assert (a is None and b is None) or torch.equal(a, b)
                _close(y.data, y_ref.data)
                _close(state, state_ref)
    # every sequence full: no lengths
    full = pack_padded_sequence(padded, [5] * 4, batch_first=batch_first)
    with torch.no_grad():
        _close(frozen(full)[0].data, module(full)[0].data)


def test_a_snapshot():
    module = _made(nn.GRU, 3, 4)
    frozen = fastrnn.torch.freeze(nn.Sequential(module))
    x = torch.randn(4, 2, 3)
    with torch.no_grad():
        before = frozen(x)
        module.weight_hh_l0.add_(1.0)
        module.bias_ih_l0.zero_()
        _close(frozen(x), before)


def test_gradients_are_refused():
    model = nn.Sequential(_made(nn.Linear, 3, 3), _made(nn.LSTM, 3, 4))
    frozen = fastrnn.torch.freeze(model)
    x = torch.randn(5, 2, 3)
    with pytest.raises(RuntimeError, match="FrozenLSTM: a frozen module computes no "
                                           "gradients, but its input requires grad"):
        frozen(x)                                # through the Linear's parameters
    with pytest.raises(RuntimeError, match="input requires grad"):
        frozen[1](x.clone().requires_grad_(True))
    h = torch.zeros(1, 2, 4)
    with pytest.raises(RuntimeError, match="its hx requires grad"):
        frozen[1](x, (h.clone().requires_grad_(True), h))
    packed = pack_padded_sequence(x.clone().requires_grad_(True), [5, 2])
    with pytest.raises(RuntimeError, match="input requires grad"):
        frozen[1](packed)
    with torch.no_grad():
        y, _ = frozen(x)
    with torch.inference_mode():
        frozen(x)
    assert y.shape == (5, 2, 4) and not y.requires_grad


def test_bad_input():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module, got str"):
        fastrnn.torch.freeze("lstm")
    with pytest.raises(TypeError, match="model: .*float32 or float64, got a LSTM of "
                                        "torch.bfloat16"):
        fastrnn.torch.freeze(_made(nn.LSTM, 3, 4, dtype=torch.bfloat16))
    frozen = fastrnn.torch.freeze(_made(nn.LSTM, 3, 4))
    x = torch.randn(5, 2, 3)
    with pytest.raises(TypeError, match="input: expected a tensor or a PackedSequence, got "
                                        "list"):
        frozen([[0.0] * 3])
    with pytest.raises(TypeError, match=r"hx: expected a tuple \(h_0, c_0\) of tensors"):
        frozen(x, torch.zeros(1, 2, 4))
    gru = fastrnn.torch.freeze(_made(nn.GRU, 3, 4))
    with pytest.raises(TypeError, match="hx: expected a tensor, got tuple"):
        gru(x, (torch.zeros(1, 2, 4),))
    with torch.no_grad():
        with pytest.raises(ValueError, match="input_size 3"):      # the frozen module's checks
            frozen(torch.randn(5, 2, 4))
        with pytest.raises(TypeError):
            frozen(torch.ones(5, 2, 3, dtype=torch.int64))
        with pytest.raises(ValueError, match="expected shape"):
            gru(x, torch.zeros(2, 2, 4))


def test_float64_and_pickle():
    module = _made(nn.LSTM, 3, 4, num_layers=2, dtype=torch.float64)
    model = fastrnn.torch.freeze(nn.Sequential(module))
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        y, (h, c) = model(x)
        _close((y, h, c), (lambda r: (r[0], *r[1]))(module(x)), rtol=1e-12, atol=1e-12)
        again = pickle.loads(pickle.dumps(model))
        _close(again(x), (y, (h, c)), rtol=0, atol=0)
    assert y.dtype == torch.float64


@pytest.mark.skipif(HAS_FREEZE, reason="fastrnn.freeze exists")
def test_without_fastrnn_freeze(monkeypatch):
    monkeypatch.delattr(fastrnn, "freeze")
    with pytest.raises(RuntimeError, match="computes through fastrnn.freeze"):
        fastrnn.torch.freeze(nn.LSTM(3, 4))


@needs_freeze
@pytest.mark.parametrize("dtype, bound", [("bfloat16", 2e-2), ("int8", 5e-2)])
def test_reduced_precision(dtype, bound):
    module = _made(nn.LSTM, 16, 32, num_layers=2)
    frozen = fastrnn.torch.freeze(nn.Sequential(module), dtype)[0]
    assert frozen.dtype == dtype and 0 < frozen.nbytes
    assert fastrnn.torch.freeze(module).nbytes > frozen.nbytes
    x = torch.randn(20, 3, 16)
    with torch.no_grad():
        y, _ = frozen(x)
        y_ref, _ = module(x)
    error = float((y - y_ref).abs().max() / y_ref.abs().max())
    assert 0 < error < bound and y.dtype == torch.float32


@needs_freeze
def test_reduced_precision_bad_input():
    with pytest.raises(ValueError, match="dtype"):
        fastrnn.torch.freeze(nn.LSTM(3, 4), "float16")
    with pytest.raises((ValueError, TypeError), match="dtype|float64"):
        fastrnn.torch.freeze(nn.LSTM(3, 4, dtype=torch.float64), "int8")
    assert np.dtype(fastrnn.torch.freeze(nn.GRU(3, 4)).dtype) == np.float32
