"""A one-node ONNX graph of one recurrent layer, from torch's state_dict.

ONNX Runtime's engines time such graphs.  ``build_model`` is the one place
the benchmark makes a graph (``engines.ort_engines.onnx_model`` calls it);
``fastrnn.onnx.export`` writes graphs of whole modules and is meant to take
its place.
"""

import numpy as np

from fastrnn.bench.cases import GATES

__all__ = ["ONNX_GATE_ORDER", "onnx_gates", "build_model"]

# ONNX's gate order, as indices into torch's: LSTM i,o,f,c from i,f,g,o;
# GRU z,r,h from r,z,n.
ONNX_GATE_ORDER = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}


def onnx_gates(cell, a):
    """The gate blocks of ``a`` (stacked along axis 0, torch's order) in ONNX's order.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    a : ndarray
        ``(G*H, ...)``: a weight matrix or a bias.

    Returns
    -------
    ndarray
        A new array of the same shape.
    """
    blocks = np.split(a, GATES[cell], axis=0)
    return np.concatenate([blocks[k] for k in ONNX_GATE_ORDER[cell]])


def build_model(cell, weights, *, seq_len=None, batch=None, initial_state=False,
                output_sequence=True, opset=14):
    """A graph of one ``RNN``/``LSTM``/``GRU`` node, forward, one layer.

    The node's ``W``, ``R``, ``B`` initializers are the weights converted
    from torch's layout (gates reordered, the two biases concatenated), with
    ``linear_before_reset=1`` for the GRU as torch computes it; the RNN is
    tanh.  The dtype of the graph is that of the weights.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    weights : dict of ndarray
        torch's state_dict of a one-layer module: ``weight_ih_l0``
        ``(G*H, I)``, ``weight_hh_l0`` ``(G*H, H)``, ``bias_ih_l0``,
        ``bias_hh_l0`` ``(G*H,)``.
    seq_len, batch : int or None
        The graph's sequence length and batch; None leaves the dimension
        symbolic (``"T"``, ``"N"``).
    initial_state : bool
        Graph inputs ``initial_h`` (and ``initial_c``) ``(1, N, H)`` after
        ``X`` ``(T, N, I)``; without them the state starts at zero.
    output_sequence : bool
        A graph output ``Y`` ``(T, 1, N, H)`` before ``Y_h`` (``Y_c``)
        ``(1, N, H)``; without it only the final state.
    opset : int

    Returns
    -------
    onnx.ModelProto
        Checked by ``onnx.checker``.
    """
    import onnx
    from onnx import helper, numpy_helper

    if cell not in GATES:
        raise ValueError(f"cell: expected one of {sorted(GATES)}, got {cell!r}")
    w_ih, w_hh = weights["weight_ih_l0"], weights["weight_hh_l0"]
    hidden, inputs = w_hh.shape[1], w_ih.shape[1]
    init = {"W": onnx_gates(cell, w_ih)[None],
            "R": onnx_gates(cell, w_hh)[None],
            "B": np.concatenate([onnx_gates(cell, weights["bias_ih_l0"]),
                                 onnx_gates(cell, weights["bias_hh_l0"])])[None]}
    elem = helper.np_dtype_to_tensor_dtype(w_ih.dtype)
    T = "T" if seq_len is None else seq_len
    N = "N" if batch is None else batch
    lstm = cell == "lstm"
    graph_inputs = [helper.make_tensor_value_info("X", elem, [T, N, inputs])]
    node_inputs = ["X", "W", "R", "B"]
    if initial_state:
        states = ["initial_h", "initial_c"] if lstm else ["initial_h"]
        node_inputs += [""] + states                    # no sequence_lens
        graph_inputs += [helper.make_tensor_value_info(s, elem, [1, N, hidden])
                         for s in states]
    outputs = ["Y_h", "Y_c"] if lstm else ["Y_h"]
    graph_outputs = [helper.make_tensor_value_info(s, elem, [1, N, hidden]) for s in outputs]
    if output_sequence:
        outputs = ["Y"] + outputs
        graph_outputs.insert(0, helper.make_tensor_value_info("Y", elem, [T, 1, N, hidden]))
    else:
        outputs = [""] + outputs                        # no Y
    attributes = {"hidden_size": hidden}
    if cell == "gru":
        attributes["linear_before_reset"] = 1
    node = helper.make_node(cell.upper(), node_inputs, outputs, **attributes)
    graph = helper.make_graph([node], f"fastrnn_bench_{cell}", graph_inputs, graph_outputs,
                              [numpy_helper.from_array(v, k) for k, v in init.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8            # one that every supported ONNX Runtime reads
    onnx.checker.check_model(model)
    return model
