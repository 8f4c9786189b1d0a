"""What the test modules share: the largest-error report, the kernels' two product
paths, and the process-wide thread count put back after every test."""

import numpy as np
import pytest

import fastrnn
from fastrnn import _core


@pytest.fixture(autouse=True)
def _restore_thread_count():
    """A test that calls fastrnn.set_num_threads (the benchmark's engines do) leaves
    the count as it found it for the tests after it."""
    count = fastrnn.get_num_threads()
    yield
    fastrnn.set_num_threads(count)


class LargestErrors(dict):
    """The largest error seen per key over a test module."""

    def record(self, key, actual, expected=None):
        """Keep ``max |actual - expected|`` (or the number ``actual`` when ``expected`` is None)."""
        if expected is None:
            err = float(actual)
        else:
            err = float(np.max(np.abs(np.asarray(actual, np.float64)
                                      - np.asarray(expected, np.float64)), initial=0.0))
        self[key] = max(self.get(key, 0.0), err)
        return err


@pytest.fixture(scope="module")
def largest_errors(request):
    """A module's ``LargestErrors``, printed at the module's end (run pytest with ``-s``)."""
    errors = LargestErrors()
    yield errors
    if errors:
        print(f"\nlargest absolute errors, {request.module.__name__}:")
        for key in sorted(errors):
            name = " ".join(key) if isinstance(key, tuple) else key
            print(f"  {name:40s} {errors[key]:.2e}")


# ---------------------------------------------------------------------------
# The float32 products run through fastrnn's kernels over packed weights, for
# AVX-512 or for AVX2 (the widest the CPU has, or one below it when asked),
# else through SciPy's BLAS; float64 always through BLAS.  The kernel tests run
# float32 on every path this machine has.

PATHS = ("avx512", "avx2", "blas")


def _choose_path(path):
    """Switch the float32 products to one path, or skip where the CPU lacks it."""
    if path != "blas" and path not in _core.packed_isas():
        pytest.skip(f"this CPU has no {path.upper()}: those kernels do not run here")
    _core.set_packed(path if path != "blas" else False)


def _use_path(path):
    """_choose_path as a generator that restores the switch."""
    was = _core.packed_isa()
    try:
        _choose_path(path)
        yield path
    finally:
        _core.set_packed(was or False)


@pytest.fixture
def set_product_path():
    """_choose_path for one test, as often as it likes; the switch restored after."""
    was = _core.packed_isa()
    yield _choose_path
    _core.set_packed(was or False)


@pytest.fixture(params=PATHS)
def product_path(request):
    """Run a float32 kernel test on each product path: "avx512", "avx2", "blas"."""
    yield from _use_path(request.param)


@pytest.fixture(params=[(np.float64, None)] + [(np.float32, path) for path in PATHS],
                ids=["f64"] + [f"f32-{path}" for path in PATHS])
def kernel_dtype(request):
    """The dtype of a kernel test: float64, and float32 on every product path."""
    dtype, path = request.param
    if path is None:
        yield dtype
    else:
        for _ in _use_path(path):
            yield dtype
