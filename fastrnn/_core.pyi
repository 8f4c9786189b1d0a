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
def set_packed(enabled: bool) -> None: ...
def cpu_flags() -> dict[str, bool]: ...
def set_blas_thread_control(get_address: int, set_address: int) -> None: ...
def saved_size(cell: Cell, dims: Dims) -> int: ...
def forward(cell: Cell, dims: Dims, x: NDArray[np.floating], dirs: Sequence[Direction],
            lengths: Optional[NDArray[np.int64]], n_threads: int) -> None: ...
def backward(cell: Cell, dims: Dims, x: NDArray[np.floating], dx: NDArray[np.floating],
             dirs: Sequence[Direction], lengths: Optional[NDArray[np.int64]],
             n_threads: int) -> None: ...
