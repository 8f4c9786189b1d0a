"""What a bug report needs to say about this fastrnn: its build, the BLAS
SciPy gives it, the CPU it runs on and how many threads it uses.

``show_config()`` prints all of it and returns it as a dict; ``cpu_features()``
is the CPU's part: the instruction sets the kernels look for and the path each
precision's products run.
"""

import importlib.metadata
import os
import platform
import sys

from fastrnn import _core
from fastrnn.threads import _DEFAULT_RULE, _DEFAULT_THREADS, _local, get_num_threads
from fastrnn._version import __version__

__all__ = ["show_config", "cpu_features"]

# The instruction sets the kernels can use, under their /proc/cpuinfo names.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni")



def _lowp_path(precision):
    """The path of frozen bfloat16 / int8 products (csrc/lowp.h) on this CPU."""
    paths = getattr(_core, "lowp_paths", None)
    return paths()[precision] if paths is not None else "portable"


# The path each precision's products run on this CPU, one entry per precision.
# "avx512" / "avx2": fastrnn's packed kernels; "blas": SciPy's BLAS and generic loops;
# frozen bfloat16 and int8: "avx512_bf16" / "avx512_vnni", or "portable" (plain C).
KERNEL_PATHS = {
    "float32": lambda: _core.packed_isa() or "blas",
    "float64": lambda: "blas",
    "bfloat16": lambda: _lowp_path("bfloat16"),
    "int8": lambda: _lowp_path("int8"),
}

# The integers the kernels pass to BLAS (fr_blas_int in csrc/blas.h); importing
# fastrnn._core fails unless SciPy's BLAS reads them as such.
KERNEL_BLAS_INT_BITS = 32

# Packages whose versions a report names; the optional ones are not imported.
PACKAGES = ("numpy", "scipy", "threadpoolctl", "torch", "onnx", "onnxruntime")


def _cpuinfo(path="/proc/cpuinfo"):
    """The model name and the flags of the first CPU in /proc/cpuinfo ("", set() without it)."""
    model, flags = "", set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def _cpu_flags():
    """The CPU_FLAGS as {name: bool} and where they were read."""
    from_core = getattr(_core, "cpu_flags", None)
    if from_core is not None:
        found = from_core()
        return {name: bool(found.get(name, False)) for name in CPU_FLAGS}, "fastrnn._core.cpu_flags()"
    flags = _cpuinfo()[1]
    source = "/proc/cpuinfo" if flags else "unknown (no /proc/cpuinfo): all False"
    return {name: name in flags for name in CPU_FLAGS}, source


def cpu_features():
    """The instruction sets of this CPU that fastrnn uses, and the path each precision runs.

    Returns
    -------
    dict
        ``True``/``False`` under the lowercase ``/proc/cpuinfo`` names
        ``"avx2"``, ``"fma"``, ``"avx512f"``, ``"avx512_bf16"``,
        ``"avx512_vnni"``, ``"avx_vnni"`` (all ``False`` where they cannot be
        read), and under ``"kernels"`` a dict from precision (``"float32"``,
        ``"float64"``, ``"bfloat16"``, ``"int8"``) to the path its products
        run: ``"avx512"`` or ``"avx2"`` (fastrnn's packed kernels, for the
        widest instruction set the CPU has) or ``"blas"`` (SciPy's
        BLAS); for the frozen precisions (``fastrnn.freeze``)
        ``"avx512_bf16"``, ``"avx512_vnni"`` or ``"portable"``.

    Examples
    --------
    >>> import fastrnn
    >>> fastrnn.cpu_features()["kernels"]["float64"]
    'blas'
    """
    features = _cpu_flags()[0]
    features["kernels"] = {precision: path() for precision, path in KERNEL_PATHS.items()}
    return features


def _versions():
    versions = {"python": f"{platform.python_version()} ({platform.python_implementation()})"}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _loaded_libraries(user_api):
    """threadpoolctl's records of the libraries of one kind loaded in this process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [lib for lib in threadpool_info() if lib.get("user_api") == user_api]


def _blas():
    """The BLAS SciPy was built with and the one it loaded, with their integer widths."""
    import scipy
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)

    blas = {"name": None, "version": None, "int_bits": None,
            "kernel_int_bits": KERNEL_BLAS_INT_BITS}
    try:
        built = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # SciPy before 1.11 has no mode="dicts"
        built = {}
    blas["name"], blas["version"] = built.get("name"), built.get("version")
    if "has ilp64" in built:
        blas["int_bits"] = 64 if built["has ilp64"] else 32
    # NumPy may load a BLAS of its own; SciPy's is the one under SciPy's directories.
    loaded = [lib for lib in _loaded_libraries("blas") if "scipy" in lib.get("filepath", "")
              and "numpy" not in os.path.dirname(lib["filepath"])]
    for lib in loaded[:1]:
        blas.update({key: lib.get(key) for key in ("filepath", "architecture", "threading_layer",
                                                   "num_threads")})
        blas["loaded_version"] = lib.get("version")
        blas["name"] = blas["name"] or lib.get("internal_api")
    return blas


def _openmp():
    runtimes = [lib.get("filepath") for lib in _loaded_libraries("openmp")]
    return {"enabled": _core.openmp_enabled(), "runtimes": runtimes}


def _thread_default():
    """The count the kernels use now and what set it."""
    if getattr(_local, "stack", None):
        source = "fastrnn.threads(n) in this Python thread"
    elif get_num_threads() != _DEFAULT_THREADS:
        source = "fastrnn.set_num_threads"
    else:
        source = f"{_DEFAULT_RULE}, when fastrnn was imported"
    return {"num_threads": get_num_threads(), "source": source,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count()}


def show_config(file=None):
    """Print what a bug report needs about this fastrnn, and return it.

    Parameters
    ----------
    file : file-like, optional
        Where to print (``sys.stdout`` by default).

    Returns
    -------
    dict
        ``"version"``; ``"platform"``; ``"versions"`` of Python and of the
        packages fastrnn uses (``None`` where not installed; the optional ones
        are not imported); ``"openmp"`` (``"enabled"``: an OpenMP build or a
        serial one, and the OpenMP runtimes loaded); ``"blas"``: the BLAS SciPy
        was built with, its integer width (``"int_bits"``, ``None`` where SciPy
        does not say) and the width the kernels pass (``"kernel_int_bits"``),
        with the library loaded, its CPU architecture and threads;
        ``"cpu"``: the model, ``cpu_features()`` and where the flags were read;
        ``"threads"``: ``fastrnn.get_num_threads()`` and where the count came
        from.

    Examples
    --------
    >>> import fastrnn
    >>> config = fastrnn.show_config()  # doctest: +SKIP
    fastrnn 0.1.0
    ...
    """
    config = {
        "version": __version__,
        "platform": platform.platform(),
        "versions": _versions(),
        "openmp": _openmp(),
        "blas": _blas(),
        "cpu": {"model": _cpuinfo()[0] or platform.processor() or platform.machine(),
                "features": cpu_features(), "flags_from": _cpu_flags()[1]},
        "threads": _thread_default(),
    }
    out = sys.stdout if file is None else file
    print(f"fastrnn {__version__}", file=out)
    _print_tree({key: value for key, value in config.items() if key != "version"}, out, 1)
    return config


def _print_tree(tree, out, depth):
    for key, value in tree.items():
        if isinstance(value, dict):
            print(f"{'  ' * depth}{key}:", file=out)
            _print_tree(value, out, depth + 1)
        else:
            if isinstance(value, list):
                value = ", ".join(map(str, value)) or "none"
            print(f"{'  ' * depth}{key}: {value}", file=out)
