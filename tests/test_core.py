"""The Cython boundary: enums checked against fastrnn._cell, the CPU's flags,
directions filled by name, the blocks of a training step's cache kept between steps."""

import numpy as np
import pytest

import fastrnn
from fastrnn import _core, functional
from fastrnn._cell import ACTIVATION_CODES, GATES, Cell

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni")


def test_kernel_enums_match_cell():
    assert _core._enum_mismatches() == []
    assert _core._MODES.keys() == GATES.keys()
    assert _core._ACTIVATIONS == ACTIVATION_CODES


def test_cpu_flags_names_and_types():
    flags = _core.cpu_flags()
    assert tuple(flags) == FLAGS
    assert all(type(v) is bool for v in flags.values())
    # the packed path runs only where the CPU has AVX-512, or AVX2 and FMA
    assert _core.packed_isa() in (None, "avx2", "avx512")
    assert _core.packed_isa() != "avx512" or flags["avx512f"]
    assert _core.packed_isa() != "avx2" or (flags["avx2"] and flags["fma"])


def test_cpu_flags_agree_with_proc_cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            line = next(l for l in f if l.startswith("flags"))
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags")
    listed = set(line.split(":", 1)[1].split())
    flags = _core.cpu_flags()
    for name in ("avx2", "fma", "avx512f"):  # names every compiler fastrnn builds with knows
        assert flags[name] == (name in listed), name


def test_set_packed_round_trip():
    before = _core.packed_isa()
    flags = _core.cpu_flags()
    widest = "avx512" if flags["avx512f"] else "avx2" if flags["avx2"] and flags["fma"] else None
    try:
        assert _core.packed_isas() == {"avx512": ["avx512", "avx2"], "avx2": ["avx2"], None: []}[widest]
        _core.set_packed(False)
        assert _core.packed_enabled() is False and _core.packed_isa() is None
        _core.set_packed(True)
        assert _core.packed_isa() == widest
        _core.set_packed("avx2")  # one below the widest, where the CPU has it
        assert _core.packed_isa() == (widest and "avx2")
        _core.set_packed("avx512")  # the widest below it where the CPU lacks it
        assert _core.packed_isa() == widest
        with pytest.raises(ValueError, match="enabled: expected"):
            _core.set_packed("sse")
    finally:
        _core.set_packed(before or False)


def _rnn_call(dtype=np.float32):
    T, N, I, H = 3, 2, 4, 5
    rng = np.random.default_rng(0)
    arrays = {"weight_ih": rng.standard_normal((H, I)).astype(dtype),
              "weight_hh": rng.standard_normal((H, H)).astype(dtype),
              "h0": np.zeros((N, H), dtype), "y": np.empty((T, N, H), dtype),
              "h_n": np.empty((N, H), dtype)}
    x = rng.standard_normal((T, N, I)).astype(dtype)
    return Cell.make("rnn"), (T, N, I, H, 0, H, 1), x, arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fields_by_name_match_functional(dtype):
    """Keys in any order, absent ones NULL (no bias): the layer functional computes."""
    cell, dims, x, arrays = _rnn_call(dtype)
    shuffled = dict(reversed(list(arrays.items())))
    _core.forward(cell, dims, x, [shuffled], None, 1)
    weights = [{"weight_ih": arrays["weight_ih"], "weight_hh": arrays["weight_hh"],
                "bias_ih": None, "bias_hh": None}]
    y, h_n, _, _ = functional.layer_forward([cell], x, arrays["h0"][None], None, weights,
                                            n_threads=1)
    np.testing.assert_array_equal(shuffled["y"], y)
    np.testing.assert_array_equal(shuffled["h_n"], h_n[0])


def test_unknown_field_is_an_error():
    cell, dims, x, arrays = _rnn_call()
    arrays["weigth_hh"] = arrays.pop("weight_hh")
    with pytest.raises(ValueError, match="weigth_hh"):
        _core.forward(cell, dims, x, [arrays], None, 1)


def test_directions_must_match_dims():
    cell, dims, x, arrays = _rnn_call()
    two = dims[:6] + (2,)
    with pytest.raises(ValueError, match="dirs: expected 2 directions"):
        _core.forward(cell, two, x, [arrays], None, 1)


def _address(a):
    return a.__array_interface__["data"][0]


def test_saved_block_kept_once_nothing_holds_it():
    """A saved block goes to the next forward once nothing refers to it, or to its
    bytes through a view, and never while something does."""
    cell, dims = Cell.make("lstm"), (7, 3, 5, 6, 0, 6, 1)
    first = _core.new_saved(cell, dims, np.float32)
    where = _address(first)
    second = _core.new_saved(cell, dims, np.float32)      # first still held
    assert _address(second) != where
    del first
    again = _core.new_saved(cell, dims, np.float32)
    assert _address(again) == where
    view = again[3:]
    del again
    assert _address(_core.new_saved(cell, dims, np.float32)) != where  # a view holds it
    del view
    assert _address(_core.new_saved(cell, dims, np.float64)) != where  # another dtype
    assert _address(_core.new_saved(cell, dims, np.float32)) == where
    bigger = (7, 4, 5, 6, 0, 6, 1)
    assert _address(_core.new_saved(cell, bigger, np.float32)) != where  # another size


def test_kept_saved_blocks_stay_within_their_bound(monkeypatch):
    cell = Cell.make("gru")
    monkeypatch.setattr(_core, "KEEP_CACHE_BYTES", 1 << 20)
    held = [_core.new_saved(cell, (64, 8, 4, 32, 0, 32, 1), np.float32) for _ in range(8)]
    kept = _core._kept.cache
    assert sum(b.nbytes for b in kept) <= 1 << 20
    del held
    fresh = _core.new_saved(cell, (64, 8, 4, 48, 0, 48, 1), np.float32)  # room made for it
    assert any(_address(b) == _address(fresh) for b in kept)
    assert sum(b.nbytes for b in kept) <= 1 << 20


def test_training_on_kept_saved_blocks_matches():
    """Steps whose saved blocks are reused give the gradients of the first."""
    m = fastrnn.LSTM(5, 6, num_layers=2, bidirectional=True, seed=0)
    x = np.random.default_rng(1).standard_normal((7, 3, 5)).astype(np.float32)
    dy = np.random.default_rng(2).standard_normal((7, 3, 12)).astype(np.float32)
    y, _, cache = m.forward_train(x)
    first = m.backward(cache, dy)
    del cache
    for _ in range(3):
        y2, _, cache = m.forward_train(x)
        again = m.backward(cache, dy)
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(first[0], again[0])
        for k in first[2]:
            np.testing.assert_array_equal(first[2][k], again[2][k])


def test_kept_blocks_take_any_shape():
    a = _core.kept_empty((3, 4, 5), np.float64)
    assert a.shape == (3, 4, 5) and a.dtype == np.float64 and a.flags.c_contiguous
    assert _address(a) % 64 == 0
    where = _address(a)
    del a
    b = _core.kept_empty((6, 10), np.float64)       # the same size: the same block
    assert _address(b) == where and b.shape == (6, 10)


def test_cache_keeps_the_parameters_of_its_step():
    """A cache's copies of the parameters are its own while it lives, though later
    steps reuse the blocks of caches that are gone."""
    m = fastrnn.LSTM(5, 6, seed=0)
    x = np.random.default_rng(1).standard_normal((4, 2, 5)).astype(np.float32)
    dy = np.ones((4, 2, 6), np.float32)
    _, _, first = m.forward_train(x)
    expected = m.backward(first, dy)
    before = m.state_dict()
    for k in before:
        before[k] = before[k].copy()
    for _ in range(3):          # steps on other weights while `first` lives
        m.load_state_dict({k: v * 1.5 for k, v in before.items()})
        _, _, other = m.forward_train(x)
        m.backward(other, dy)
        del other
    again = m.backward(first, dy)
    np.testing.assert_array_equal(expected[0], again[0])
    for k in expected[2]:
        np.testing.assert_array_equal(expected[2][k], again[2][k])
