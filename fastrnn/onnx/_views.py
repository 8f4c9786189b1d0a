"""Layout views of a recurrent node's output, decided when a session is built.

A recurrent node's kernel writes ``y``, ``(T, N, D*H)`` time-major; ONNX's
``Y`` is that array seen as ``(T, D, N, H)`` (``(N, T, D, H)`` for layout 1),
and the plumbing that exporters write after it (``Squeeze`` of the direction
axis, ``Transpose`` and ``Reshape`` joining the directions, ``Transpose`` to
batch-first) only changes how the same elements are seen.  A :class:`View`
says how, as ``y.reshape(shape).transpose(perm)`` with ``shape`` in terms of
the call's ``T`` and ``N``; :func:`fold` composes a plumbing node into a view
when that can be decided for every ``T`` and ``N``, and returns None when it
cannot (the node then runs as any other, with its own checks).
"""

from fastrnn.onnx.ops import _BECAME_INPUT, _ints

#: The plumbing nodes a view can absorb.
FOLDABLE = ("Identity", "Transpose", "Squeeze", "Unsqueeze", "Reshape")
_SYMBOLS = ("T", "N")


class View:
    """``y.reshape(shape).transpose(perm)`` of a kernel output ``y`` (T, N, C).

    Parameters
    ----------
    shape : tuple of int or str
        The reshape, each dimension an int or ``"T"`` / ``"N"`` (the call's).
    perm : tuple of int
        The transpose applied after it.
    """

    __slots__ = ("shape", "perm", "plain", "identity")

    def __init__(self, shape, perm):
        self.shape, self.perm = tuple(shape), tuple(perm)
        self.identity = self.perm == tuple(range(len(self.perm)))
        self.plain = self.identity and len(shape) == 3 and self.shape[:2] == _SYMBOLS

    @property
    def dims(self):
        """The viewed value's shape (ints and ``"T"`` / ``"N"``)."""
        return tuple(self.shape[p] for p in self.perm)

    def apply(self, y):
        """The view of ``y`` (the very array when the view is ``y`` itself)."""
        if self.plain:
            return y
        T, N = y.shape[0], y.shape[1]
        v = y.reshape([T if d == "T" else N if d == "N" else d for d in self.shape])
        return v if self.identity else v.transpose(self.perm)

    def __repr__(self):
        return f"View(shape={self.shape}, perm={self.perm})"


def recurrent_output(n_dirs, hidden_size, layout):
    """ONNX's ``Y`` of a node as a view of its kernel output."""
    return View(("T", "N", n_dirs, hidden_size), (1, 0, 2, 3) if layout else (0, 2, 1, 3))


def fold(view, node, params, opset):
    """The view of ``node``'s output given the view of its data input, or None.

    ``params`` holds the node's other inputs (constants; None for absent).
    None where the node's result is not a view for every ``T`` and ``N``, or
    where it would raise: the node then runs, and reports, as usual.
    """
    if node.op not in FOLDABLE or len(node.outputs) != 1:
        return None
    if any(opset >= _BECAME_INPUT.get((node.op, a), opset + 1) for a in node.attrs):
        return None
    try:
        return _FOLDS[node.op](view, node, params, opset)
    except (ValueError, TypeError, IndexError):
        return None


def _param(params, k):
    return params[k] if k < len(params) else None


def _normal_axes(axes, rank):
    out = [a % rank for a in axes if -rank <= a < rank]
    if len(out) != len(axes) or len(set(out)) != len(out):
        raise ValueError("axes")
    return out


def _identity(view, node, params, opset):
    return view


def _transpose(view, node, params, opset):
    rank = len(view.perm)
    p = node.attrs.get("perm", list(range(rank))[::-1])
    if sorted(p) != list(range(rank)):
        return None
    return View(view.shape, [view.perm[i] for i in p])


def _squeeze(view, node, params, opset):
    dims, rank = view.dims, len(view.perm)
    axes = node.attrs.get("axes") if opset < 13 else _param(params, 1)
    if axes is None:
        if any(d in _SYMBOLS for d in dims):
            return None                 # T or N might be 1
        axes = [i for i, d in enumerate(dims) if d == 1]
    else:
        axes = _normal_axes(_ints(axes, "axes"), rank)
        if any(dims[a] != 1 for a in axes):
            return None
    dropped = {view.perm[a] for a in axes}
    kept = [j for j in range(len(view.shape)) if j not in dropped]
    renumber = {j: k for k, j in enumerate(kept)}
    return View([view.shape[j] for j in kept],
                [renumber[view.perm[i]] for i in range(rank) if i not in axes])


def _unsqueeze(view, node, params, opset):
    axes = node.attrs.get("axes") if opset < 13 else _param(params, 1)
    if axes is None:
        return None
    axes = _ints(axes, "axes")
    if not axes:
        return None
    axes = set(_normal_axes(axes, len(view.perm) + len(axes)))
    shape, old, perm = list(view.shape), iter(view.perm), []
    for i in range(len(view.perm) + len(axes)):
        if i in axes:
            perm.append(len(shape))
            shape.append(1)
        else:
            perm.append(next(old))
    return View(shape, perm)


def _product(dims):
    """(int factor, sorted symbols) of a product of dimensions."""
    k, symbols = 1, []
    for d in dims:
        if d in _SYMBOLS:
            symbols.append(d)
        else:
            k *= d
    return k, sorted(symbols)


def _reshape(view, node, params, opset):
    moved = [p for p in view.perm if view.shape[p] != 1]
    if moved != sorted(moved):
        return None                     # not in y's order: a reshape would copy
    dims = view.dims
    shape = list(node.attrs.get("shape", [])) if opset < 5 else _param(params, 1)
    if shape is None:
        return None
    shape = _ints(shape, "shape") if opset >= 5 else shape
    allowzero = node.attrs.get("allowzero", 0)
    target = []
    for i, s in enumerate(shape):
        if s == 0 and not allowzero and i < len(dims):
            target.append(dims[i])
        elif s == 0 or s < -1:
            return None
        else:
            target.append(s)
    total = _product(dims)
    if target.count(-1) > 1:
        return None
    if -1 in target:
        known = _product(d for d in target if d != -1)
        if known[1] or known[0] == 0 or total[0] % known[0]:
            return None                 # symbolic or zero known sizes: leave it to NumPy
        k, symbols = total[0] // known[0], total[1]
        if not symbols:
            target[target.index(-1)] = k
        elif len(symbols) == 1 and k == 1:
            target[target.index(-1)] = symbols[0]
        else:
            return None
    elif _product(target) != total:
        return None
    return View(target, range(len(target)))


_FOLDS = {"Identity": _identity, "Transpose": _transpose, "Squeeze": _squeeze,
          "Unsqueeze": _unsqueeze, "Reshape": _reshape}
