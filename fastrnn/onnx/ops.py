"""The plumbing operators around recurrent nodes, in NumPy.

``Transpose``, ``Reshape``, ``Squeeze``, ``Unsqueeze``, ``Slice``,
``Concat``, ``Split``, ``Identity``, ``Cast``, ``Constant``, ``Equal`` and
``Where``: what
``fastrnn.onnx.export`` writes between layers and what exporters put
around constant weights, each in the forms of every opset since 7 (an
attribute before the opset that made it an input).  Results may be views
of the inputs; the session copies what it hands back.
"""

import numpy as np

from fastrnn.onnx.graph import tensor_type


def evaluate(node, inputs, opset):
    """The outputs of a plumbing node, a list of ndarrays.

    Parameters
    ----------
    node : fastrnn.onnx.graph.Node
    inputs : list of ndarray or None
        In the node's input order; None for an absent optional input.
    opset : int
        The model's default opset version.

    Raises
    ------
    ValueError
        Inputs this node cannot take (shapes, axes, an absent required input),
        naming the node.
    """
    try:
        for attr in node.attrs:
            if opset >= _BECAME_INPUT.get((node.op, attr), opset + 1):
                raise ValueError(f"attribute {attr!r} is an input since opset "
                                 f"{_BECAME_INPUT[node.op, attr]} (the model has {opset})")
        out = _OPS[node.op](node, inputs, opset)
    except (ValueError, IndexError, TypeError, KeyError) as err:
        raise ValueError(f"{node.label}: {err}") from None
    return out if isinstance(out, list) else [out]


# Attributes that later opsets made inputs: (operator, attribute) -> that opset.
_BECAME_INPUT = {("Reshape", "shape"): 5, ("Squeeze", "axes"): 13, ("Unsqueeze", "axes"): 13,
                 ("Slice", "starts"): 10, ("Slice", "ends"): 10, ("Slice", "axes"): 10,
                 ("Split", "split"): 13}


def _get(inputs, k, what):
    if k >= len(inputs) or inputs[k] is None:
        raise ValueError(f"needs its input {what}")
    return inputs[k]


def _optional(inputs, k):
    return inputs[k] if k < len(inputs) else None


def _ints(value, what):
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.ndim > 1:
        raise ValueError(f"{what}: expected a 1-d integer tensor, got dtype {arr.dtype} "
                         f"and shape {arr.shape}")
    return [int(v) for v in arr.reshape(-1)]


def _axes(axes, ndim, what):
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{what}: axis {a} is out of range for rank {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated axes {axes}")
    return out


def _identity(node, inputs, opset):
    return _get(inputs, 0, "input")


def _constant(node, inputs, opset):
    if len(node.attrs) != 1:
        raise ValueError(f"expected exactly one value attribute, got {sorted(node.attrs)}")
    (name, value), = node.attrs.items()
    if name == "value":
        return value
    if name in ("value_float", "value_floats"):
        return np.array(value, np.float32)
    return np.array(value, np.int64)


def _transpose(node, inputs, opset):
    x = _get(inputs, 0, "data")
    perm = node.attrs.get("perm", list(range(x.ndim))[::-1])
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"perm {perm} is not a permutation of the {x.ndim} axes of an input "
                         f"of shape {x.shape}")
    return np.transpose(x, perm)


def _reshape(node, inputs, opset):
    x = _get(inputs, 0, "data")
    if opset < 5:
        shape = list(node.attrs.get("shape", []))
    else:
        shape = _ints(_get(inputs, 1, "shape"), "shape")
    if not node.attrs.get("allowzero", 0):
        for i, s in enumerate(shape):
            if s == 0:
                if i >= x.ndim:
                    raise ValueError(f"shape {shape}: a 0 at position {i} copies a dimension "
                                     f"that an input of shape {x.shape} lacks")
                shape[i] = x.shape[i]
    if shape.count(-1) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"shape {shape}: at most one -1 and no other negative size")
    return np.reshape(x, shape)


def _squeeze(node, inputs, opset):
    x = _get(inputs, 0, "data")
    axes = node.attrs.get("axes") if opset < 13 else _optional(inputs, 1)
    if axes is None:
        return np.squeeze(x)
    axes = _axes(_ints(axes, "axes"), x.ndim, "axes")
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of size {x.shape[a]} (shape {x.shape})")
    return np.squeeze(x, tuple(axes))


def _unsqueeze(node, inputs, opset):
    x = _get(inputs, 0, "data")
    axes = node.attrs.get("axes") if opset < 13 else _get(inputs, 1, "axes")
    axes = _ints(axes if axes is not None else [], "axes")
    if not axes:
        raise ValueError("needs at least one axis")
    axes = sorted(_axes(axes, x.ndim + len(axes), "axes"))
    return np.expand_dims(x, tuple(axes))


def _slice(node, inputs, opset):
    x = _get(inputs, 0, "data")
    if opset < 10:
        starts, ends = node.attrs.get("starts"), node.attrs.get("ends")
        if starts is None or ends is None:
            raise ValueError("needs the attributes starts and ends")
        axes, steps = node.attrs.get("axes"), None
    else:
        starts = _ints(_get(inputs, 1, "starts"), "starts")
        ends = _ints(_get(inputs, 2, "ends"), "ends")
        axes, steps = _optional(inputs, 3), _optional(inputs, 4)
        axes = None if axes is None else _ints(axes, "axes")
        steps = None if steps is None else _ints(steps, "steps")
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"starts, ends, axes and steps differ in length: {starts}, {ends}, "
                         f"{axes}, {steps}")
    if 0 in steps:
        raise ValueError("a step of 0")
    index = [slice(None)] * x.ndim
    for axis, start, end, step in zip(_axes(axes, x.ndim, "axes"), starts, ends, steps):
        index[axis] = slice(start, end, step)
    return x[tuple(index)]


def _concat(node, inputs, opset):
    if "axis" not in node.attrs:
        raise ValueError("needs the attribute axis")
    parts = [v for v in inputs if v is not None]
    if not parts:
        raise ValueError("needs at least one input")
    axis = _axes([node.attrs["axis"]], parts[0].ndim, "axis")[0]
    return np.concatenate(parts, axis=axis)


def _split(node, inputs, opset):
    x = _get(inputs, 0, "input")
    axis = _axes([node.attrs.get("axis", 0)], x.ndim, "axis")[0]
    split = node.attrs.get("split") if opset < 13 else _optional(inputs, 1)
    n = len(node.outputs)
    if split is not None:
        sizes = _ints(split, "split")
        if len(sizes) != n or sum(sizes) != x.shape[axis] or min(sizes, default=0) < 0:
            raise ValueError(f"split {sizes} does not cut axis {axis} of size "
                             f"{x.shape[axis]} into {n} outputs")
    else:
        n = node.attrs.get("num_outputs", n)
        if n < 1 or n != len(node.outputs):
            raise ValueError(f"num_outputs {n} differs from the {len(node.outputs)} outputs")
        chunk = -(-x.shape[axis] // n)
        sizes = [min(chunk, max(x.shape[axis] - k * chunk, 0)) for k in range(n)]
        if opset < 18 and x.shape[axis] % n:
            raise ValueError(f"axis {axis} of size {x.shape[axis]} does not split evenly "
                             f"into {n} outputs")
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def _cast(node, inputs, opset):
    x = _get(inputs, 0, "input")
    if "to" not in node.attrs:
        raise ValueError("needs the attribute to")
    dtype = tensor_type(node.attrs["to"])
    if dtype is None or dtype.kind not in "biuf":
        raise ValueError(f"cannot cast to element type {node.attrs['to']} (fastrnn casts "
                         f"between booleans, integers and floats)")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"cannot cast an input of dtype {x.dtype}")
    return x.astype(dtype)


def _equal(node, inputs, opset):
    a, b = _get(inputs, 0, "A"), _get(inputs, 1, "B")
    if a.dtype != b.dtype:
        raise ValueError(f"inputs of different dtypes {a.dtype} and {b.dtype}")
    return np.equal(a, b)


def _where(node, inputs, opset):
    cond = _get(inputs, 0, "condition")
    x, y = _get(inputs, 1, "X"), _get(inputs, 2, "Y")
    if cond.dtype != np.bool_ or x.dtype != y.dtype:
        raise ValueError(f"expected a bool condition and X, Y of one dtype, got "
                         f"{cond.dtype}, {x.dtype}, {y.dtype}")
    return np.where(cond, x, y)


_OPS = {"Identity": _identity, "Constant": _constant, "Transpose": _transpose,
        "Reshape": _reshape, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Slice": _slice,
        "Concat": _concat, "Split": _split, "Cast": _cast, "Equal": _equal, "Where": _where}
