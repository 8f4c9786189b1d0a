# Type stubs of fastrnn._core, the Cython layer over the C kernels (csrc/fastrnn.h).
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray

from fastrnn._cell import Cell

# dims: (seq_len T, batch N, input_size I, hidden_size H, proj_size P (0: none),
#        ldy (row stride of y and dy), n_dirs (1 or 2))
Dims = Tuple[int, int, int, int, int, int, int]

# One direction: arrays keyed by the fields of fr_layer_f32 / fr_layer_f64
# ("weight_ih", ..., "dweight_peephole", and "reverse": bool); a missing key is NULL.
Direction = Mapping[str, Any]

KEEP_SCRATCH_BYTES: int

def openmp_enabled() -> bool: ...
def packed_enabled() -> bool: ...
def packed_isa() -> str | None: ...
def packed_isas() -> list[str]: ...
def set_packed(enabled: bool | str) -> None: ...
def cpu_flags() -> dict[str, bool]: ...
def set_blas_thread_control(get_address: int, set_address: int) -> None: ...
def new_saved(cell: Cell, dims: Dims, dtype: np.dtype) -> NDArray[np.floating]: ...
def aligned_empty(shape: Sequence[int], dtype: np.dtype) -> NDArray[np.floating]: ...
def forward(cell: Cell, dims: Dims, x: NDArray[np.floating], dirs: Sequence[Direction],
            lengths: Optional[NDArray[np.int64]], n_threads: int) -> None: ...
def backward(cell: Cell, dims: Dims, x: NDArray[np.floating], dx: NDArray[np.floating],
             dirs: Sequence[Direction], lengths: Optional[NDArray[np.int64]],
             n_threads: int) -> None: ...

# Frozen inference (csrc/frozen.h): weights prepared once, the kernel calls built once.
PRECISIONS: Tuple[str, ...]   # "float32", "float64", "bfloat16", "int8"

def lowp_paths() -> dict[str, str]: ...
def set_lowp_vector(enabled: bool) -> None: ...
def panels_available() -> bool: ...

class Prepared:
    precision: str
    format: int
    blocks: int
    shape: Tuple[int, int]
    def __init__(self, weight: NDArray[np.floating], precision: str, blocks: int = 1) -> None: ...
    @property
    def nbytes(self) -> int: ...
    def dense(self) -> NDArray[np.floating]: ...

# One kernel call of a frozen layer: (cell, direction indices, per direction a dict of
# Prepared "weight_ih" / "weight_hh" / "weight_hr" and arrays "bias_ih" / "bias_hh" /
# "weight_peephole", None where absent).
FrozenCallSpec = Tuple[Cell, Tuple[int, ...], Sequence[Mapping[str, Any]]]

class FrozenCall:
    def __init__(self, cell: Cell, dir_indices: Sequence[int],
                 weights: Sequence[Mapping[str, Any]], layer_dirs: int, precision: str) -> None: ...

class FrozenStack:
    spec: list
    precision: str
    def __init__(self, spec: Sequence[Sequence[FrozenCallSpec]], n_dirs: int, hidden_out: int,
                 precision: str) -> None: ...
    def forward(self, x: NDArray[np.floating], h0: NDArray[np.floating],
                c0: Optional[NDArray[np.floating]], lengths: Optional[NDArray[np.int64]],
                n_threads: int) -> Tuple[NDArray[np.floating], NDArray[np.floating],
                                         Optional[NDArray[np.floating]]]: ...
    def step(self, x: NDArray[np.floating], h0: NDArray[np.floating],
             c0: Optional[NDArray[np.floating]], n_threads: int
             ) -> Tuple[NDArray[np.floating], Optional[NDArray[np.floating]]]: ...
