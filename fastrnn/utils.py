"""Helpers for training with the NumPy modules' ``forward_train`` / ``backward``."""

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["clip_grad_norm"]


def clip_grad_norm(grads, max_norm, norm_type=2.0):
    """Scale a gradient dict in place so that its global norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: the norm is taken over all arrays
    together, as if they were one vector; when it exceeds ``max_norm`` every
    array is multiplied by ``max_norm / (norm + 1e-6)``.  A non-finite norm
    is not hidden: a NaN norm scales every array by NaN and an infinite one
    by 0 (so an inf entry becomes NaN), as torch does.

    Parameters
    ----------
    grads : dict of str to ndarray, float
        A gradient dict, such as the one ``backward`` returns (any float
        dtype, any shapes); its arrays are modified in place.
    max_norm : float
        The largest norm allowed, > 0.
    norm_type : float, default 2.0
        The p of the p-norm, > 0, or ``math.inf`` for the largest absolute
        value.

    Returns
    -------
    float
        The global norm of the gradients before clipping.

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn.utils import clip_grad_norm
    >>> grads = {"weight": np.array([3.0, 0.0]), "bias": np.array([4.0])}
    >>> clip_grad_norm(grads, 1.0)
    5.0
    >>> np.round(grads["weight"], 6), np.round(grads["bias"], 6)
    (array([0.6, 0. ]), array([0.8]))
    """
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads: expected a dict of float arrays, got {type(grads).__name__}")
    arrays = []
    for name, value in grads.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            what = (f"an array of dtype {value.dtype}" if isinstance(value, np.ndarray)
                    else type(value).__name__)
            raise TypeError(f"grads[{name!r}]: expected a float ndarray, got {what}")
        if not value.flags.writeable:
            raise ValueError(f"grads[{name!r}]: expected a writeable array (it is scaled "
                             f"in place), got a read-only one")
        arrays.append(value)
    max_norm = _positive("max_norm", max_norm, allow_inf=False)
    norm_type = _positive("norm_type", norm_type, allow_inf=True)
    if not arrays:
        return 0.0
    if math.isinf(norm_type):
        norm = max(float(np.max(np.abs(a), initial=0.0)) for a in arrays)
    else:
        total = sum(float(np.sum(np.abs(a.astype(np.float64)) ** norm_type)) for a in arrays)
        norm = total ** (1.0 / norm_type)
    scale = max_norm / (norm + 1e-6)
    if scale >= 1.0:
        return norm
    for a in arrays:
        a *= a.dtype.type(scale)
    return norm


def _positive(name, value, allow_inf):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a positive number, got {type(value).__name__}")
    value = float(value)
    if not value > 0 or (math.isinf(value) and not allow_inf):
        want = "a positive number or inf" if allow_inf else "a positive finite number"
        raise ValueError(f"{name}: expected {want}, got {value!r}")
    return value
