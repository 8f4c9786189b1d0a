"""Build of fastrnn._core: the C kernels in csrc/ and their Cython wrapper.

OpenMP is probed by compiling and running a tiny program with $CC.  Without
it the build warns and goes serial; FASTRNN_FAIL_NO_OPENMP=1 makes that an
error.  FASTRNN_OPENMP=0 skips the probe and builds serial on purpose (with
the same warning).  FASTRNN_NATIVE=1 adds -march=native for a local build
(never for wheels).
"""

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy  # noqa: F401  (a build requirement; the wrapper uses no NumPy headers)
import scipy
from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel num_threads(2) reduction(+:n)
    n += 1;
    printf("%d\n", n);
    return n == 2 ? 0 : 1;
}
"""


def compiler_command():
    """$CC (or Python's own compiler) as a list: the program and its flags."""
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")


def openmp_flags():
    """The compile and link flags that give a working OpenMP, or None."""
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    cc = compiler_command()
    if not cc or shutil.which(cc[0]) is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        for cflags, lflags in candidates:
            build = subprocess.run([*cc, *cflags, src, "-o", exe, *lflags],
                                   capture_output=True)
            if build.returncode == 0 and subprocess.run([exe], capture_output=True).returncode == 0:
                return cflags, lflags
    return None


def wants_openmp():
    """False when FASTRNN_OPENMP=0 asks for a serial build, True when unset or 1."""
    value = os.environ.get("FASTRNN_OPENMP", "1")
    if value not in ("0", "1"):
        sys.exit(f"fastrnn: FASTRNN_OPENMP must be 0 (serial) or 1 (probe), got {value!r}")
    if value == "0" and os.environ.get("FASTRNN_FAIL_NO_OPENMP") == "1":
        sys.exit("fastrnn: FASTRNN_OPENMP=0 asks for a serial build, FASTRNN_FAIL_NO_OPENMP=1 forbids one")
    return value == "1"


def extension():
    # -fno-trapping-math lets gcc vectorise float selects; unlike -ffast-math it
    # changes no result and leaves subnormals alone.
    cflags = ["-O3", "-std=c11", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wno-unused-function",
              "-Wno-unknown-pragmas"]
    lflags = []
    omp = None
    if not wants_openmp():
        warnings.warn("fastrnn: FASTRNN_OPENMP=0; building the kernels serial")
    elif (omp := openmp_flags()) is None:
        if os.environ.get("FASTRNN_FAIL_NO_OPENMP") == "1":
            sys.exit("fastrnn: no working OpenMP found and FASTRNN_FAIL_NO_OPENMP=1")
        warnings.warn(f"fastrnn: no working OpenMP found with {shlex.join(compiler_command())}; "
                      "building the kernels serial")
    if omp is not None:
        cflags += omp[0]
        lflags += omp[1]
    if os.environ.get("FASTRNN_NATIVE") == "1":
        cflags.append("-march=native")
    return Extension(
        "fastrnn._core",
        sources=["fastrnn/_core.pyx", "csrc/cpu.c", "csrc/plan.c", "csrc/packed.c", "csrc/avx512.c", "csrc/avx2.c",
                 "csrc/kernels_f32.c", "csrc/kernels_f64.c", "csrc/lowp.c", "csrc/lowp_bf16.c",
                 "csrc/lowp_int8.c", "csrc/frozen.c"],
        include_dirs=["csrc"],
        depends=[os.path.join("csrc", f) for f in os.listdir("csrc")],
        extra_compile_args=cflags,
        extra_link_args=lflags,
    )


setup(
    ext_modules=cythonize(
        [extension()],
        include_path=[os.path.dirname(os.path.dirname(scipy.__file__))],
        compiler_directives={"language_level": 3, "boundscheck": False,
                             "wraparound": False, "cdivision": True},
    ),
)
