"""How many threads the kernels use.

The default is ``OMP_NUM_THREADS`` when set, else the cores this process may
run on.  ``set_num_threads`` changes it for the whole process; ``threads(n)``
changes it for the calling Python thread inside a ``with`` block.  SciPy's
BLAS is kept single-threaded while a kernel runs, so no more threads run than
set (see ``_core._enter_kernels``).
"""

import contextlib
import ctypes
import os
import threading

__all__ = ["set_num_threads", "get_num_threads", "threads"]


def _default_num_threads():
    """The default count and where it came from (``fastrnn.show_config`` says)."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) >= 1:
        return int(value), "OMP_NUM_THREADS"
    try:
        return len(os.sched_getaffinity(0)), "the cores this process may run on (os.sched_getaffinity)"
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1, "os.cpu_count()"


# Read once, when fastrnn is imported.
_DEFAULT_THREADS, _DEFAULT_RULE = _default_num_threads()
_process_threads = _DEFAULT_THREADS
_local = threading.local()


def _check_count(n):
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"n: expected an integer >= 1, got {type(n).__name__}")
    n = int(n.__index__()) if not isinstance(n, int) else n
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    return n


def set_num_threads(n):
    """Set the number of threads the kernels use, for the whole process.

    Parameters
    ----------
    n : int
        At least 1.
    """
    global _process_threads
    _process_threads = _check_count(n)


def get_num_threads():
    """The number of threads the next kernel call from this Python thread uses."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else _process_threads


@contextlib.contextmanager
def threads(n):
    """Use ``n`` threads inside the ``with`` block, in the calling Python thread only.

    Examples
    --------
    >>> import fastrnn
    >>> with fastrnn.threads(1):
    ...     fastrnn.get_num_threads()
    1
    """
    n = _check_count(n)
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(n)
    try:
        yield n
    finally:
        stack.pop()


def _scipy_blas_thread_functions():
    """Addresses of get/set_num_threads of SciPy's own OpenBLAS, or (0, 0).

    threadpoolctl finds the library that SciPy loaded; its symbols are looked
    up by the names that library exports.
    """
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return 0, 0
    for lib in ThreadpoolController().lib_controllers:
        if lib.internal_api != "openblas" or "scipy" not in os.path.basename(
                os.path.dirname(lib.filepath)) and "scipy" not in lib.filepath:
            continue
        if "numpy" in os.path.dirname(lib.filepath):
            continue
        dll = ctypes.CDLL(lib.filepath)
        for prefix in ("scipy_", ""):
            try:
                get = getattr(dll, prefix + "openblas_get_num_threads")
                set_ = getattr(dll, prefix + "openblas_set_num_threads")
            except AttributeError:
                continue
            return (ctypes.cast(get, ctypes.c_void_p).value,
                    ctypes.cast(set_, ctypes.c_void_p).value)
    return 0, 0
