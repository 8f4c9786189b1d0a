"""``to_model`` / ``export``: a fastrnn module as an ONNX graph.

One ``RNN``/``LSTM``/``GRU`` node per layer, in ``layout`` 0 (ONNX Runtime
refuses ``layout=1``), its weights as initializers in ONNX's layout, and the
plumbing that gives the module's own interface:

- ``x`` ``(T, N, I)`` (``(N, T, I)`` with ``batch_first``, through a
  ``Transpose``), ``T`` and ``N`` symbolic; optional inputs ``h0``
  (``c0``) ``(L*D, N, H)`` and ``lengths`` ``(N,)`` int32;
- each layer's ``Y`` ``(T, D, N, H)`` to ``(T, N, D*H)`` by ``Squeeze``
  (one direction) or ``Transpose`` + ``Reshape`` (two), the states cut per
  layer by ``Slice`` and joined by ``Concat``;
- outputs ``y``, ``h_n`` (``c_n``) shaped as the module returns them;
  with both ``h0`` and ``lengths``, ``Equal`` + ``Where`` keep the initial
  state of a sequence of length 0 (the module's rule; ONNX Runtime's
  recurrent nodes give zeros there).

Activation parameters are written in full (one value per activation that
takes one), so that no reader's own defaults come into play.
"""

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

import fastrnn
from fastrnn._cell import activation_params, default_activations
from fastrnn.onnx import _layout

__all__ = ["to_model", "export"]

#: The opset written by default, and the IR version that goes with it (one
#: that onnxruntime releases from 1.16 on read).
OPSET = 17
IR_VERSION = 8


def _mode(module):
    for mode, cls in (("rnn", fastrnn.RNN), ("lstm", fastrnn.LSTM), ("gru", fastrnn.GRU)):
        if isinstance(module, cls):
            return mode
    raise TypeError(f"module: expected a fastrnn.RNN, LSTM or GRU, got "
                    f"{type(module).__name__}")


def _attributes(module, mode, n_dirs):
    attrs = {"hidden_size": module.hidden_size}
    if n_dirs == 2:
        attrs["direction"] = "bidirectional"
    nonlinearity = getattr(module, "nonlinearity", "tanh")
    names = (tuple(module.activations) if module.activations is not None
             else default_activations(mode, n_dirs, nonlinearity))
    if names != default_activations(mode, n_dirs):
        attrs["activations"] = list(names)
    params = activation_params(names, module.activation_alpha, module.activation_beta)
    alphas, betas = _layout.explicit_params(names, params)
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    if mode == "lstm":
        if module.cell_clip is not None:
            attrs["clip"] = float(module.cell_clip)
        if module.input_forget:
            attrs["input_forget"] = 1
    if mode == "gru":
        attrs["linear_before_reset"] = int(module.linear_before_reset)
    return attrs


def to_model(module, *, initial_state=False, lengths=False, opset=OPSET, name=None):
    """Build the ONNX model of a fastrnn module, without writing it anywhere.

    Parameters
    ----------
    module : fastrnn.RNN, fastrnn.LSTM or fastrnn.GRU
        Any number of layers and directions, ``batch_first``, bias or not,
        float32 or float64, and the options beyond PyTorch (``peepholes``,
        ``cell_clip``, ``input_forget``, ``linear_before_reset``,
        ``activations`` with their parameters).
    initial_state : bool, default False
        Add the inputs ``h0`` (and ``c0`` for the LSTM), ``(L*D, N, H)``.
        Without them the initial state is zeros.
    lengths : bool, default False
        Add the input ``lengths``, ``(N,)`` int32: each sequence's length, as
        the module's ``lengths=`` (ONNX's ``sequence_lens``).
    opset : int, default 17
        The default-domain opset to write (13 or later).
    name : str, optional
        The graph's name.

    Returns
    -------
    onnx.ModelProto
        Inputs ``x`` (then ``h0``, ``c0``, ``lengths`` as asked), outputs
        ``y``, ``h_n`` (and ``c_n``), in the module's own layout.

    Raises
    ------
    TypeError
        ``module`` is not a fastrnn layer module.
    ValueError
        ``proj_size > 0`` (ONNX's LSTM has no projection), or an opset
        outside what this onnx knows.
    """
    mode = _mode(module)
    if getattr(module, "proj_size", 0):
        raise ValueError(f"module: proj_size={module.proj_size}: ONNX's LSTM has no "
                         f"projection, so an LSTM with proj_size > 0 cannot be exported")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not 13 <= opset <= newest:
        raise ValueError(f"opset: expected an int in [13, {newest}], got {opset!r}")
    op = _layout.OPS[mode]
    L, H, I = module.num_layers, module.hidden_size, module.input_size
    D = 2 if module.bidirectional else 1
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(module.dtype))
    attrs = _attributes(module, mode, D)
    params = module.state_dict()
    lstm = mode == "lstm"
    batch = ["N", "T"] if module.batch_first else ["T", "N"]
    inputs = [helper.make_tensor_value_info("x", elem, batch + [I])]
    states = ["h0", "c0"] if lstm else ["h0"]
    if initial_state:
        inputs += [helper.make_tensor_value_info(s, elem, [L * D, "N", H]) for s in states]
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", onnx.TensorProto.INT32, ["N"]))
    nodes, inits = [], []

    def const(value, key):
        inits.append(numpy_helper.from_array(np.asarray(value), key))
        return key

    def add(op_type, ins, outs, **kw):
        nodes.append(helper.make_node(op_type, ins, outs, name=outs[0], **kw))
        return outs[0]

    x = "x"
    if module.batch_first:
        x = add("Transpose", [x], ["x_time_major"], perm=[1, 0, 2])
    if D == 1:
        axes = const(np.array([1], np.int64), "axes_directions")
    else:
        joined = const(np.array([0, 0, D * H], np.int64), "shape_joined")
    if initial_state and L > 1:
        state_axes = const(np.array([0], np.int64), "axes_layers")
    finals = {s: [] for s in states}
    raw = "_onnx" if initial_state and lengths else ""
    for k in range(L):
        W, R, B, P = _layout.onnx_weights(mode, params, k, D)
        ins = [x, const(W, f"W_l{k}"), const(R, f"R_l{k}"),
               "" if B is None else const(B, f"B_l{k}"), "lengths" if lengths else ""]
        for s in states:
            if not initial_state:
                ins.append("")
            elif L == 1:
                ins.append(s)
            else:
                if s == states[0]:
                    starts = const(np.array([k * D], np.int64), f"starts_l{k}")
                    ends = const(np.array([(k + 1) * D], np.int64), f"ends_l{k}")
                ins.append(add("Slice", [s, starts, ends, state_axes], [f"{s}_l{k}"]))
        if P is not None:
            ins += [""] * (7 - len(ins)) + [const(P, f"P_l{k}")]
        while ins[-1] == "":
            ins.pop()
        final_names = {s: (f"{s[0]}_n{raw}" if L == 1 else f"{s[0]}_n_l{k}") for s in states}
        outs = [f"Y_l{k}"] + [final_names[s] for s in states]
        nodes.append(helper.make_node(op, ins, outs, name=f"{op}_l{k}", **attrs))
        for s in states:
            finals[s].append(final_names[s])
        last = k == L - 1
        out = "y" if last and not module.batch_first else f"y_l{k}"
        if D == 1:
            x = add("Squeeze", [f"Y_l{k}", axes], [out])
        else:
            swapped = add("Transpose", [f"Y_l{k}"], [f"Y_l{k}_batch_major"], perm=[0, 2, 1, 3])
            x = add("Reshape", [swapped, joined], [out])
    if module.batch_first:
        add("Transpose", [x], ["y"], perm=[1, 0, 2])
    if L > 1:
        for s in states:
            add("Concat", finals[s], [f"{s[0]}_n{raw}"], axis=0)
    if raw:
        # ONNX Runtime ends a sequence of length 0 in zeros; the module (as
        # torch) in its initial state: pick h0 / c0 for those rows.
        zero = const(np.array(0, np.int32), "zero_length")
        ends_empty = add("Equal", ["lengths", zero], ["empty"])
        rows = add("Unsqueeze", [ends_empty, const(np.array([0, 2], np.int64), "axes_empty")],
                   ["empty_rows"])
        for s in states:
            add("Where", [rows, s, f"{s[0]}_n{raw}"], [f"{s[0]}_n"])
    outputs = [helper.make_tensor_value_info("y", elem, batch + [D * H])]
    outputs += [helper.make_tensor_value_info(f"{s[0]}_n", elem, [L * D, "N", H])
                for s in states]
    graph = helper.make_graph(nodes, name or f"fastrnn_{mode}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastrnn", producer_version=fastrnn.__version__)
    model.ir_version = IR_VERSION if opset <= 17 else helper.find_min_ir_version_for(
        [helper.make_opsetid("", opset)])
    return model


def export(module, f, **options):
    """Write a fastrnn module as an ONNX model.

    Parameters
    ----------
    module : fastrnn.RNN, fastrnn.LSTM or fastrnn.GRU
    f : str, os.PathLike or binary file
        Where to write.
    **options
        As :func:`to_model`: ``initial_state``, ``lengths``, ``opset``, ``name``.

    Returns
    -------
    onnx.ModelProto
        The model written.

    Examples
    --------
    >>> import io, fastrnn, fastrnn.onnx
    >>> buffer = io.BytesIO()
    >>> model = fastrnn.onnx.export(fastrnn.GRU(4, 8, batch_first=True, seed=0), buffer)
    >>> [n.op_type for n in model.graph.node]
    ['Transpose', 'GRU', 'Squeeze', 'Transpose']
    """
    if not isinstance(f, (str, os.PathLike)) and not hasattr(f, "write"):
        raise TypeError(f"f: expected a path or a binary file, got {type(f).__name__}")
    model = to_model(module, **options)
    data = model.SerializeToString()
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            fh.write(data)
    else:
        f.write(data)
    return model
