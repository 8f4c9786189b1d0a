"""``load``: the recurrent layer of an ONNX graph as a fastrnn module."""

import numpy as np

from fastrnn.onnx.graph import RECURRENT, Graph, read_model
from fastrnn.onnx.recurrent import Spec, make_module

__all__ = ["load"]

# Nodes that pass one tensor on with its data unchanged (as export writes
# them between layers).
_PASS_THROUGH = ("Identity", "Reshape", "Squeeze", "Unsqueeze", "Transpose")


def load(model, node=None):
    """A fastrnn module computing what an ONNX graph's recurrent layer computes.

    Parameters
    ----------
    model : onnx.ModelProto, bytes, str, os.PathLike or binary file
    node : str, optional
        The name of one ``RNN``/``LSTM``/``GRU`` node to take out of a larger
        graph (convolutions around it, say).  Without it the graph must be one
        recurrent layer: one such node, or a stack of them chained through
        plumbing as :func:`fastrnn.onnx.export` writes it (then the module has
        one layer per node, and ``batch_first`` when the input is transposed
        before the first or the nodes have ``layout=1``).

    Returns
    -------
    fastrnn.RNN, fastrnn.LSTM or fastrnn.GRU
        With the graph's weights and options (``peepholes`` where the node has
        ``P``, ``bias`` where it has ``B``, ``cell_clip``, ``input_forget``,
        ``linear_before_reset``, ``activations`` and their parameters).  Its
        calls take the states and ``lengths=`` the node reads as inputs.

    Raises
    ------
    ValueError
        No such node, a node of another type, weights computed from graph
        inputs, constant initial states that are not zeros, constant
        ``sequence_lens``, or a node no module expresses (``direction``
        ``"reverse"``; ``clip`` on an RNN or GRU); the message lists the
        graph's recurrent nodes.

    Notes
    -----
    Weights may be initializers or ``Constant`` nodes, through any plumbing
    that ``fastrnn.onnx.run`` evaluates (``Unsqueeze``, ``Reshape``, ...).
    With ``sequence_lens``, a sequence of length 0 ends in its initial state
    in the module (PyTorch's rule) where ONNX Runtime gives zeros.
    """
    graph = Graph(read_model(model), strict=False)
    listing = graph.describe_recurrent()
    if node is not None:
        if not isinstance(node, str):
            raise TypeError(f"node: expected a node name (str) or None, got "
                            f"{type(node).__name__}")
        found = [n for n in graph.nodes if n.name == node]
        if not found:
            raise ValueError(f"node: the graph has no node named {node!r}; its recurrent "
                             f"nodes: {listing}")
        if found[0].op not in RECURRENT:
            raise ValueError(f"node: {node!r} is a {found[0].op} node, not RNN, LSTM or "
                             f"GRU; the graph's recurrent nodes: {listing}")
        chain, transposed = found, False
    else:
        chain, transposed = _stack(graph, listing)
    specs = [Spec(n) for n in chain]
    first = specs[0]
    for spec in specs[1:]:
        if _config(spec) != _config(first):
            raise ValueError(f"model: the recurrent nodes differ in their attributes or "
                             f"optional weights, so they are not one stack; load one with "
                             f"node=...; recurrent nodes: {listing}")
    layers = [_weights(graph, spec, listing) for spec in specs]
    return make_module(first, layers, batch_first=transposed or first.layout == 1)


def _config(spec):
    return (spec.mode, spec.direction, spec.hidden_size, spec.layout, spec.activations,
            spec.params, spec.clip, spec.input_forget, spec.linear_before_reset,
            "B" in spec.inputs, "P" in spec.inputs)


def _source(graph, name):
    """Follow pass-through nodes back from ``name``: (origin, the nodes passed)."""
    passed = []
    while name in graph.producers and graph.producers[name].op in _PASS_THROUGH:
        passed.append(graph.producers[name])
        name = graph.producers[name].inputs[0]
    return name, passed


def _stack(graph, listing):
    """The recurrent nodes as layers of one stack, and whether the input is transposed."""
    nodes = graph.recurrent()
    if not nodes:
        raise ValueError("model: the graph has no RNN, LSTM or GRU node")
    not_stack = (f"model: the graph is not one recurrent layer or a stack of them; name "
                 f"the node to load with node=...; recurrent nodes: {listing}")
    inputs = {v.name for v in graph.inputs}
    origin, passed = _source(graph, nodes[0].inputs[0])
    if origin not in inputs:
        if len(nodes) == 1:
            raise ValueError(f"model: the input X of {nodes[0].label} is computed by the "
                             f"graph, not fed; load it with node={nodes[0].name!r}")
        raise ValueError(not_stack)
    perms = [n.attrs.get("perm") for n in passed if n.op == "Transpose"]
    if perms not in ([], [[1, 0, 2]]) or any(n.op not in ("Identity", "Transpose")
                                           for n in passed):
        raise ValueError(not_stack)
    for previous, node in zip(nodes, nodes[1:]):
        if _source(graph, node.inputs[0])[0] != (previous.outputs or [""])[0]:
            raise ValueError(not_stack)
    return nodes, bool(perms)


def _weights(graph, spec, listing):
    """(W, R, B, P) of a node, from constants only."""
    label = spec.node.label
    out = []
    for key in ("W", "R", "B", "P"):
        name = spec.inputs.get(key)
        if name is None:
            out.append(None)
        elif name in graph.constants:
            out.append(graph.constants[name])
        else:
            raise ValueError(f"{label}: its weight {key} ({name!r}) is computed from graph "
                             f"inputs, not constants, so no module can hold it; recurrent "
                             f"nodes: {listing}")
    for key in ("initial_h", "initial_c"):
        value = graph.constants.get(spec.inputs.get(key))
        if value is not None and np.any(value):
            raise ValueError(f"{label}: {key} is a constant of the graph that is not zeros; "
                             f"a module takes its initial state at each call")
    if spec.inputs.get("sequence_lens") in graph.constants:
        raise ValueError(f"{label}: sequence_lens is a constant of the graph; a module takes "
                         f"lengths= at each call")
    return tuple(out)
