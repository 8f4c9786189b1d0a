"""Memory stays flat over 10^4 calls: modules, cells, bad input and the torch bridge.

Each entry point runs a warm-up (the kernels' kept scratch, NumPy's and the
allocator's caches fill), then 10^4 calls measured by the process's resident
set (/proc/self/statm, which sees C allocations too), then 10^3 calls
measured by tracemalloc's exact count of live Python and NumPy allocations.  The bounds are a
small fraction of what leaking one call's outputs would cost, so a leak of
the results, the cache or the scratch fails, while allocator noise does not.
"""

import gc
import os
import tracemalloc

import numpy as np
import pytest

import fastrnn

CALLS = 10_000             # calls measured by the resident set
TRACED_CALLS = 1_000       # calls measured by tracemalloc (exact, but slow)
WARMUP = 300
RSS_BOUND = 8 << 20        # bytes of resident growth over CALLS calls
TRACED_BOUND = 64 << 10    # bytes of live Python/NumPy allocations gained over TRACED_CALLS

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="reads the resident set from /proc/self/statm")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_growth(call):
    """Resident bytes gained over CALLS calls of call(), after a warm-up."""
    for _ in range(WARMUP):
        call()
    gc.collect()
    before = rss_bytes()
    for _ in range(CALLS):
        call()
    gc.collect()
    return rss_bytes() - before


def traced_growth(call):
    """Bytes of traced allocations gained over TRACED_CALLS calls.  Tracing
    starts before the warm-up, so what a call replaces (the previous results)
    is counted at both ends."""
    tracemalloc.start()
    try:
        for _ in range(WARMUP // 3):
            call()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(TRACED_CALLS):
            call()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def check_flat(call, leaked_per_call):
    """call() keeps no memory; leaked_per_call: bytes a call's results hold."""
    # The bounds mean something: leaking the results would exceed each many times.
    assert CALLS * leaked_per_call > 4 * RSS_BOUND
    assert TRACED_CALLS * leaked_per_call > 4 * TRACED_BOUND
    rss, traced = rss_growth(call), traced_growth(call)
    print(f"\n{CALLS} calls: resident {rss / 2**20:+.2f} MiB; "
          f"{TRACED_CALLS} calls: traced {traced / 2**10:+.1f} KiB")
    assert rss < RSS_BOUND, f"resident set grew by {rss / 2**20:.1f} MiB over {CALLS} calls"
    assert traced < TRACED_BOUND, (f"{traced / 2**10:.0f} KiB of allocations left over "
                                   f"after {TRACED_CALLS} calls")


def nbytes(*values):
    total = 0
    for v in values:
        total += sum(nbytes(a) for a in v) if isinstance(v, tuple) else v.nbytes
    return total


RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 4, 16)).astype(np.float32)


def test_module_inference_flat():
    m = fastrnn.LSTM(16, 32, bidirectional=True, seed=0)
    lengths = [8, 0, 3, 8]
    check_flat(lambda: m(X, lengths=lengths), nbytes(*m(X)))


def test_module_training_flat():
    m = fastrnn.GRU(16, 32, num_layers=2, seed=0)
    dy = np.ones((8, 4, 32), np.float32)

    def step():
        y, h, cache = m.forward_train(X)
        return m.backward(cache, dy)
    dx, dh0, grads = step()
    check_flat(step, nbytes(dx, dh0, *grads.values()))


def test_module_float64_flat():
    m = fastrnn.RNN(16, 32, nonlinearity="relu", dtype=np.float64, seed=0)
    x = X.astype(np.float64)
    check_flat(lambda: m(x), nbytes(*m(x)))


@pytest.mark.parametrize("cls", [fastrnn.RNNCell, fastrnn.LSTMCell, fastrnn.GRUCell])
def test_cells_flat(cls):
    cell = cls(16, 32, seed=0)
    x = np.tile(X[0], (8, 1))   # (32, 16): a batch of 32 streams
    # Each step's result is kept alive by the next one, as in streaming.
    state = [None]

    def step():
        state[0] = cell(x, state[0])
    step()
    check_flat(step, nbytes(state[0]))


@pytest.mark.parametrize("precision", [None, "int8"])
def test_frozen_flat(precision):
    frozen = fastrnn.freeze(fastrnn.LSTM(16, 32, bidirectional=True, seed=0), precision)
    lengths = [8, 0, 3, 8]
    check_flat(lambda: frozen(X, lengths=lengths), nbytes(*frozen(X)))
    cell = fastrnn.freeze(fastrnn.GRUCell(16, 32, seed=0), precision)
    x = np.tile(X[0], (8, 1))
    state = [None]

    def step():
        state[0] = cell(x, state[0])
    step()
    check_flat(step, nbytes(state[0]))


def test_bad_input_flat():
    m = fastrnn.LSTM(16, 32, seed=0)
    bad = np.zeros((64, 4, 15), np.float32)   # input_size 15, not 16

    def call():
        try:
            m(bad)
        except ValueError:
            pass
    # What a leak of the converted input per failed call would hold.
    check_flat(call, bad.nbytes)


def test_torch_bridge_flat():
    torch = pytest.importorskip("torch")
    import fastrnn.torch as ft

    m = ft.LSTM(16, 32, bidirectional=True)
    x = torch.from_numpy(X.copy()).requires_grad_()

    def step():
        m.zero_grad()
        x.grad = None
        y, _ = m(x)
        y.sum().backward()
    step()
    size = sum(p.grad.numel() * 4 for p in m.parameters()) + X.nbytes * 4
    check_flat(step, size)
