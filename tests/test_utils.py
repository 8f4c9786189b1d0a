"""fastrnn.utils: clip_grad_norm against its definition and torch's clip_grad_norm_."""

import doctest
import math

import numpy as np
import pytest

import fastrnn
import fastrnn.utils
from fastrnn.utils import clip_grad_norm

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None


def random_grads(rng, dtype=np.float64, scale=1.0):
    return {"weight_ih_l0": (scale * rng.standard_normal((12, 3))).astype(dtype),
            "weight_hh_l0": (scale * rng.standard_normal((12, 4))).astype(dtype),
            "bias_ih_l0": (scale * rng.standard_normal(12)).astype(dtype)}


def test_doctest():
    assert doctest.testmod(fastrnn.utils).failed == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clips_to_max_norm_and_returns_the_norm_before(dtype):
    rng = np.random.default_rng(0)
    grads = random_grads(rng, dtype, scale=10.0)
    before = {k: v.copy() for k, v in grads.items()}
    flat = np.concatenate([v.ravel().astype(np.float64) for v in before.values()])
    norm = clip_grad_norm(grads, 1.5)
    assert norm == pytest.approx(np.linalg.norm(flat), rel=1e-6)
    after = np.concatenate([v.ravel().astype(np.float64) for v in grads.values()])
    assert np.linalg.norm(after) == pytest.approx(1.5, rel=1e-5)
    for k in grads:
        assert grads[k].dtype == dtype
        np.testing.assert_allclose(grads[k], before[k] * (1.5 / (norm + 1e-6)), rtol=1e-6)


def test_leaves_small_gradients_alone():
    grads = random_grads(np.random.default_rng(1), scale=0.01)
    before = {k: v.copy() for k, v in grads.items()}
    norm = clip_grad_norm(grads, 10.0)
    assert norm < 10.0
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


def test_inf_norm_and_p_norm():
    grads = {"a": np.array([1.0, -7.0]), "b": np.array([[3.0]])}
    assert clip_grad_norm({k: v.copy() for k, v in grads.items()}, 100.0, math.inf) == 7.0
    assert clip_grad_norm({k: v.copy() for k, v in grads.items()}, 100.0, 1) == 11.0


def test_empty_dict_has_norm_zero():
    assert clip_grad_norm({}, 1.0) == 0.0


def test_non_finite_norm_is_not_hidden():
    grads = {"a": np.array([1.0, np.nan])}
    assert math.isnan(clip_grad_norm(grads, 1.0))
    assert np.isnan(grads["a"]).all()


def test_gradients_of_a_module():
    lstm = fastrnn.LSTM(3, 5, seed=0)
    x = np.random.default_rng(2).standard_normal((7, 2, 3)).astype(np.float32)
    y, _, cache = lstm.forward_train(x)
    _, _, grads = lstm.backward(cache, 100.0 * np.ones_like(y))
    norm = clip_grad_norm(grads, 1.0)
    assert norm > 1.0
    total = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    assert total == pytest.approx(1.0, rel=1e-5)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_agrees_with_torch(norm_type):
    grads = random_grads(np.random.default_rng(3), scale=5.0)
    params = [torch.nn.Parameter(torch.zeros(v.shape, dtype=torch.float64))
              for v in grads.values()]
    for p, v in zip(params, grads.values()):
        p.grad = torch.from_numpy(v.copy())
    want = float(torch.nn.utils.clip_grad_norm_(params, 2.0, norm_type=norm_type))
    got = clip_grad_norm(grads, 2.0, norm_type)
    assert got == pytest.approx(want, rel=1e-12)
    for p, v in zip(params, grads.values()):
        np.testing.assert_allclose(v, p.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("args, error, words", [
    (([1.0],), TypeError, "grads: expected a dict"),
    (({"a": np.array([1, 2])},), TypeError, "grads['a']: expected a float ndarray, got an "
                                            "array of dtype int64"),
    (({"a": [1.0]},), TypeError, "grads['a']: expected a float ndarray, got list"),
    (({"a": np.ones(2)}, 0.0), ValueError, "max_norm: expected a positive finite number"),
    (({"a": np.ones(2)}, math.inf), ValueError, "max_norm: expected a positive finite"),
    (({"a": np.ones(2)}, "1"), TypeError, "max_norm: expected a positive number, got str"),
    (({"a": np.ones(2)}, 1.0, -2), ValueError, "norm_type: expected a positive number or inf"),
    (({"a": np.ones(2)}, True), TypeError, "max_norm: expected a positive number, got bool"),
])
def test_bad_input(args, error, words):
    if len(args) == 1:
        args = args + (1.0,)
    with pytest.raises(error) as info:
        clip_grad_norm(*args)
    assert words in str(info.value)


def test_read_only_array_is_an_error_and_untouched():
    a = np.full(3, 10.0)
    a.flags.writeable = False
    with pytest.raises(ValueError, match=r"grads\['a'\]: expected a writeable array"):
        clip_grad_norm({"a": a}, 1.0)
    np.testing.assert_array_equal(a, 10.0)
