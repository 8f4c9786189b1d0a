"""The machine: the FLOP rate of one large GEMM (the practical limit beside
every figure) and a description of the CPU, the libraries and the load."""

import os
import platform
import time

import numpy as np

from fastrnn.bench.cases import all_cores

DEFAULT_GEMM, QUICK_GEMM = 2048, 1024           # size of the peak GEMM


def gemm_peak(threads, size=DEFAULT_GEMM, dtype="float32", repeats=3):
    """FLOP rate of one ``size``-cubed GEMM through SciPy's BLAS.

    Parameters
    ----------
    threads : sequence of int
        Thread counts to measure at (set with threadpoolctl).
    size : int
    dtype : {"float32", "float64"}
        ``sgemm`` or ``dgemm``.
    repeats : int
        The best of this many calls, after one warm-up call.

    Returns
    -------
    dict
        thread count -> FLOP/s.
    """
    from scipy.linalg import blas
    from threadpoolctl import threadpool_limits

    gemm = blas.sgemm if dtype == "float32" else blas.dgemm
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((size, size)).astype(dtype))
    b = np.asfortranarray(rng.standard_normal((size, size)).astype(dtype))
    rates = {}
    for n in threads:
        with threadpool_limits(limits=n, user_api="blas"):
            gemm(1.0, a, b)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                gemm(1.0, a, b)
                best = min(best, time.perf_counter() - start)
        rates[n] = 2.0 * size ** 3 / best
    return rates


def load_average():
    """The 1, 5 and 15 minute load averages (other jobs make figures noisy), or None."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def machine_info():
    """CPU, cores, platform and library versions (without importing torch or onnx).

    The facts ``fastrnn.show_config`` reports, read by the same helpers, plus
    the load average.
    """
    import fastrnn
    from fastrnn import _config

    model, flags = _config._cpuinfo()
    versions = {"fastrnn": fastrnn.__version__}
    versions.update((k, v) for k, v in _config._versions().items() if k != "python")
    return {"cpu": model or platform.processor() or platform.machine(), "cores": all_cores(),
            "logical_cpus": os.cpu_count(),
            "simd": [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16",
                                 "avx512_vnni", "avx_vnni", "amx_tile") if f in flags],
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions, "load_average": load_average(),
            "blas": [{k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                              "threading_layer", "filepath")}
                     for lib in _config._loaded_libraries("blas")]}
