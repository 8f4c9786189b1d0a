"""fastrnn: fast recurrent networks (Elman RNN, LSTM, GRU) on the CPU.

Fused forward and backward timestep loops in C with OpenMP, every matrix
product through SciPy's BLAS, NumPy in and NumPy out, with PyTorch's
semantics.  ``fastrnn.reference`` is the plain NumPy twin of every kernel.
"""

from fastrnn._version import __version__
from fastrnn import _core
from fastrnn.threads import get_num_threads, set_num_threads, threads
from fastrnn.modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from fastrnn.frozen import freeze
from fastrnn.threads import _scipy_blas_thread_functions
from fastrnn._config import cpu_features, show_config

_core.set_blas_thread_control(*_scipy_blas_thread_functions())
del _scipy_blas_thread_functions


def openmp_enabled():
    """True when the kernels were built with OpenMP (else they run on one thread)."""
    return _core.openmp_enabled()


__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
           "get_num_threads", "set_num_threads", "threads", "openmp_enabled",
           "show_config", "cpu_features", "freeze", "__version__"]
