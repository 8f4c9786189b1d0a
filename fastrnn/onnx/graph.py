"""Reading an ONNX model: bytes to a checked graph of nodes and constants.

Everything a model can get wrong is found here, before any kernel runs, and
reported as a ValueError or TypeError that names the node, the input or the
attribute: bytes that are not a model, references to undefined values,
operators outside what fastrnn evaluates, attributes of the wrong type.
Nodes whose inputs are all constants (``Constant`` nodes, initializers and
the plumbing computed from them, as exporters write weights) are folded
once, here, so that a session's call runs only what depends on its feeds.
"""

import os
from collections import namedtuple

import numpy as np
import onnx
from onnx import numpy_helper

from fastrnn.onnx._layout import MODES

#: The recurrent operators, and the plumbing evaluated beside them.
RECURRENT = tuple(MODES)
PLUMBING = ("Identity", "Constant", "Transpose", "Reshape", "Squeeze", "Unsqueeze",
            "Slice", "Concat", "Split", "Cast", "Equal", "Where")

# Attribute types, as AttributeProto numbers them.
_A = onnx.AttributeProto
_TYPE_NAMES = {_A.FLOAT: "float", _A.INT: "int", _A.STRING: "string", _A.TENSOR: "tensor",
               _A.GRAPH: "graph", _A.FLOATS: "floats", _A.INTS: "ints",
               _A.STRINGS: "strings"}
_RECURRENT_ATTRS = {"activation_alpha": _A.FLOATS, "activation_beta": _A.FLOATS,
                    "activations": _A.STRINGS, "clip": _A.FLOAT, "direction": _A.STRING,
                    "hidden_size": _A.INT, "layout": _A.INT}
ATTRIBUTES = {
    "RNN": _RECURRENT_ATTRS,
    "LSTM": dict(_RECURRENT_ATTRS, input_forget=_A.INT),
    "GRU": dict(_RECURRENT_ATTRS, linear_before_reset=_A.INT),
    "Identity": {},
    "Constant": {"value": _A.TENSOR, "value_float": _A.FLOAT, "value_floats": _A.FLOATS,
                 "value_int": _A.INT, "value_ints": _A.INTS},
    "Transpose": {"perm": _A.INTS},
    "Reshape": {"allowzero": _A.INT, "shape": _A.INTS},
    "Squeeze": {"axes": _A.INTS},
    "Unsqueeze": {"axes": _A.INTS},
    "Slice": {"starts": _A.INTS, "ends": _A.INTS, "axes": _A.INTS},
    "Concat": {"axis": _A.INT},
    "Split": {"axis": _A.INT, "split": _A.INTS, "num_outputs": _A.INT},
    "Cast": {"to": _A.INT, "saturate": _A.INT},
    "Equal": {},
    "Where": {},
}

#: A graph input or output as onnxruntime describes it: ``shape`` holds ints,
#: the names of symbolic dimensions and None for unknown ones.
NodeArg = namedtuple("NodeArg", ["name", "shape", "type"])


def read_model(model):
    """A ``ModelProto`` from a ModelProto, bytes, a path or a binary file.

    Raises
    ------
    TypeError
        ``model`` is none of these.
    ValueError
        The bytes are not an ONNX model.
    """
    if isinstance(model, onnx.ModelProto):
        return model
    base = None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as err:
            raise ValueError(f"model: cannot read {path!r}: {err}") from None
        base = os.path.dirname(os.path.abspath(path))
    elif isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
    elif hasattr(model, "read"):
        data = model.read()
        if not isinstance(data, bytes):
            raise TypeError("model: expected a file opened in binary mode, got one that "
                            f"reads {type(data).__name__}")
    else:
        raise TypeError(f"model: expected an onnx.ModelProto, bytes, a path or a binary "
                        f"file, got {type(model).__name__}")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as err:            # protobuf's DecodeError and its kin
        raise ValueError(f"model: not an ONNX model ({len(data)} bytes that do not parse "
                         f"as a ModelProto: {err})") from None
    if not proto.HasField("graph") or not proto.opset_import:
        raise ValueError(f"model: not an ONNX model ({len(data)} bytes without a graph "
                         f"or an opset)")
    if base is not None and any(_is_external(t) for t in proto.graph.initializer):
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, base)
        except Exception as err:
            raise ValueError(f"model: cannot read its external data: {err}") from None
    return proto


def _is_external(tensor):
    return tensor.data_location == onnx.TensorProto.EXTERNAL


def tensor_type(elem_type):
    """numpy dtype of an ONNX element type, or None where NumPy has none."""
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        return None


def _type_string(elem_type):
    """onnxruntime's name of a tensor type: ``tensor(float)``, ``tensor(int32)``."""
    try:
        return f"tensor({onnx.TensorProto.DataType.Name(elem_type).lower()})"
    except ValueError:
        return f"tensor(element type {elem_type})"


def to_array(tensor, what):
    """A TensorProto as a read-only ndarray; ValueError for one that is malformed."""
    if _is_external(tensor):
        raise ValueError(f"{what}: its data is stored outside the model (external data); "
                         f"load the model from its path so that the data can be read")
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as err:
        raise ValueError(f"{what}: a malformed tensor (shape {list(tensor.dims)}): "
                         f"{err}") from None
    arr = np.array(arr, copy=True)
    arr.flags.writeable = False
    return arr


class Value:
    """A graph input or output: name, numpy dtype, shape (ints, str, None) or None."""

    __slots__ = ("name", "dtype", "shape", "type")

    def __init__(self, proto, what):
        self.name = proto.name
        kind = proto.type.WhichOneof("value")
        if kind != "tensor_type":
            raise ValueError(f"{what} {proto.name!r}: expected a tensor, got "
                             f"{kind or 'no type'}")
        tt = proto.type.tensor_type
        self.dtype = tensor_type(tt.elem_type)
        self.type = _type_string(tt.elem_type)
        if tt.HasField("shape"):
            self.shape = tuple(d.dim_value if d.HasField("dim_value") else
                               (d.dim_param or None) for d in tt.shape.dim)
        else:
            self.shape = None

    def arg(self):
        return NodeArg(self.name, None if self.shape is None else list(self.shape), self.type)


class Node:
    """One node: ``op``, ``name``, ``inputs`` / ``outputs`` (names, "" for absent), ``attrs``."""

    __slots__ = ("op", "name", "inputs", "outputs", "attrs", "label", "foreign")

    def __init__(self, proto, index, strict=True):
        self.op = proto.op_type
        self.name = proto.name or f"{proto.op_type}_{index}"
        self.label = f"node {self.name!r} ({self.op})"
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.attrs = {}
        self.foreign = proto.domain not in ("", "ai.onnx") or self.op not in ATTRIBUTES
        if self.foreign and not strict:
            return                      # kept as an opaque node (load reads around it)
        if self.foreign:
            where = f" of domain {proto.domain!r}" if proto.domain not in ("", "ai.onnx") else ""
            raise ValueError(
                f"{self.label}: unsupported operator {self.op!r}{where}; fastrnn.onnx "
                f"evaluates {', '.join(RECURRENT)} and the plumbing {', '.join(PLUMBING)} "
                f"(use fastrnn.onnx.load(model, node=...) to take one recurrent layer out "
                f"of a larger graph)")
        known = ATTRIBUTES[self.op]
        for a in proto.attribute:
            if a.name not in known:
                raise ValueError(f"{self.label}: unknown attribute {a.name!r} (expected "
                                 f"some of {sorted(known)})")
            if a.type != known[a.name]:
                raise TypeError(f"{self.label}: attribute {a.name!r} must be of type "
                                f"{_TYPE_NAMES[known[a.name]]}, got "
                                f"{_TYPE_NAMES.get(a.type, 'undefined')}")
            if a.type == _A.TENSOR:
                self.attrs[a.name] = to_array(a.t, f"{self.label}: attribute {a.name!r}")
            elif a.type == _A.STRING:
                self.attrs[a.name] = _decode(a.s, self.label, a.name)
            elif a.type == _A.STRINGS:
                self.attrs[a.name] = [_decode(s, self.label, a.name) for s in a.strings]
            else:
                self.attrs[a.name] = onnx.helper.get_attribute_value(a)
                if isinstance(self.attrs[a.name], list):
                    self.attrs[a.name] = list(self.attrs[a.name])


def _decode(raw, label, attr):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{label}: attribute {attr!r} is not UTF-8 text") from None


class Graph:
    """A model's main graph, checked, with its constants folded.

    With ``strict=False`` nodes of other operators are kept, unread
    (``foreign``), and their outputs are not constants.

    Attributes
    ----------
    opset : int
        The version of the default operator set.
    inputs : list of Value
        The inputs a caller feeds (initializers excluded).
    outputs : list of Value
    nodes : list of Node
        Every node, in the model's (topological) order.
    runtime : list of Node
        The nodes that depend on the feeds, in order.
    constants : dict
        Initializers, and every value computed from constants alone.
    defaults : dict
        Initializers that are also graph inputs: a feed may replace them.
    producers : dict
        Value name -> the Node that writes it.
    """

    def __init__(self, proto, strict=True):
        from fastrnn.onnx.ops import evaluate   # the plumbing's arithmetic

        g = proto.graph
        opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
        if not opsets:
            raise ValueError("model: imports no version of the default ONNX operator set")
        self.opset = int(opsets[0])
        initializers = {}
        for t in g.initializer:
            initializers[t.name] = to_array(t, f"initializer {t.name!r}")
        if g.sparse_initializer:
            raise ValueError("model: sparse initializers are not supported")
        declared = [Value(v, "graph input") for v in g.input]
        self.defaults = {v.name: initializers.pop(v.name) for v in declared
                         if v.name in initializers}
        self.inputs = [v for v in declared if v.name not in self.defaults]
        self.outputs = [Value(v, "graph output") for v in g.output]
        self.constants = dict(initializers)
        self.nodes, self.runtime, self.producers = [], [], {}
        defined = set(self.constants) | {v.name for v in declared}
        for index, proto_node in enumerate(g.node):
            node = Node(proto_node, index, strict)
            for name in node.inputs:
                if name and name not in defined:
                    raise ValueError(f"{node.label}: reads {name!r}, which no graph input, "
                                     f"initializer or earlier node defines")
            for name in node.outputs:
                if name and name in defined:
                    raise ValueError(f"{node.label}: writes {name!r}, which is already "
                                     f"defined")
                if name:
                    defined.add(name)
                    self.producers[name] = node
            self.nodes.append(node)
            if not node.foreign and node.op in PLUMBING and all(not n or n in self.constants for n in node.inputs):
                values = evaluate(node, [self.constants.get(n) for n in node.inputs],
                                  self.opset)
                for name, value in zip(node.outputs, values):
                    if name:
                        value.flags.writeable = False
                        self.constants[name] = value
            else:
                self.runtime.append(node)
        for v in self.outputs:
            if v.name not in defined:
                raise ValueError(f"graph output {v.name!r}: no node, input or initializer "
                                 f"defines it")
        if not self.outputs:
            raise ValueError("model: the graph has no outputs")

    def recurrent(self):
        """The RNN/LSTM/GRU nodes, in order."""
        return [n for n in self.nodes if n.op in RECURRENT]

    def describe_recurrent(self):
        """'LSTM 'name', GRU 'other'' or 'none', for error messages."""
        nodes = self.recurrent()
        return ", ".join(f"{n.op} {n.name!r}" for n in nodes) if nodes else "none"
