"""The peers at reduced precision: PyTorch's and ONNX Runtime's dynamically
quantized recurrent layers (int8), and PyTorch's modules in bfloat16.

Each is made from the float32 module or graph of the case, as a user of that
library makes it, and runs in a worker of its own like every engine.  The
benchmark compares it with the float32 baseline of the same weights and input
(``check.py``) and prints its error beside its time: the largest
``max|a - b| / max|b|`` over the arrays it returns (``y``, ``h_n``, ``c_n``;
``h``, ``c`` for the cell step), ``b`` the float32 result.  The same measure
serves every engine of reduced precision, fastrnn's frozen modules included.

``torch.int8``
    ``torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.GRU},
    dtype=torch.qint8)`` on the fbgemm engine: weights int8 (one scale per
    matrix), the input and state rows quantized per call to 8 bits, int32
    products.  ``quantize_dynamic`` swaps a model's children, never the model
    itself, so the module is quantized inside a ``Sequential`` and taken out
    again; where the result is not ``torch.ao.nn.quantized.dynamic``'s class
    the engine refuses the case.  PyTorch has no quantized ``nn.RNN``: the RNN
    layer is not run; the cell step quantizes ``nn.RNNCell``, ``LSTMCell``,
    ``GRUCell``.
``torch.bfloat16``
    ``torch.nn``'s module (or cell) converted to bfloat16 once; a call
    converts the float32 input and state to bfloat16 and the results back, as
    a float32 pipeline must.  (``torch.autocast("cpu", torch.bfloat16)`` runs
    the same bfloat16 LSTM, with the weights cast again on every call.)
``onnxruntime.int8``
    ``onnxruntime.quantization.quantize_dynamic`` (``QuantType.QInt8``, its
    defaults otherwise: one scale per matrix; ``reduce_range`` on a CPU
    without VNNI, where 8-bit weights saturate) on the float32 graph of the
    ``onnxruntime`` engine, which rewrites the ``LSTM`` node into
    ``com.microsoft``'s ``DynamicQuantizeLSTM``.  The engine checks that the
    node is there, on a probe graph when it loads and on each case's graph,
    and refuses otherwise (a graph it left in float32 would be timed as
    float32).  ONNX Runtime quantizes LSTM only: its ``GRU`` and ``RNN`` nodes
    stay float32, so those cells are not run.
"""

import logging
import os
import tempfile
import warnings

import fastrnn

from fastrnn.bench.cases import Case, make_problem
from fastrnn.bench.engines.base import Unsupported
from fastrnn.bench.engines.ort_engines import OnnxRuntimeEngine, onnx_model
from fastrnn.bench.engines.torch_engines import TorchEngine

__all__ = ["TorchInt8Engine", "TorchBfloat16Engine", "OnnxRuntimeInt8Engine",
           "quantize_lstm_graph", "QUANTIZED_LSTM_OP"]

#: the node ``onnxruntime.quantization.quantize_dynamic`` makes of an LSTM
QUANTIZED_LSTM_OP = "DynamicQuantizeLSTM"


class TorchInt8Engine(TorchEngine):
    """PyTorch's dynamically quantized LSTM and GRU (qint8, fbgemm)."""

    modes = ("inference", "latency")
    precision = "int8"

    def load(self):
        version = super().load()
        torch = self.torch
        if "fbgemm" not in torch.backends.quantized.supported_engines:
            raise ImportError(f"torch {version} has no fbgemm quantized engine (it has "
                              f"{', '.join(torch.backends.quantized.supported_engines)})")
        torch.backends.quantized.engine = "fbgemm"
        return version

    def convert(self, case, module):
        torch, nn = self.torch, self.torch.nn
        if case.dtype != "float32":
            raise Unsupported("torch's dynamic quantization takes float32 modules")
        if case.mode != "latency" and case.cell == "rnn":
            raise Unsupported("torch.ao.quantization.quantize_dynamic has no quantized "
                              "nn.RNN (only LSTM and GRU)")
        with warnings.catch_warnings():         # torch.ao.quantization's deprecation notice
            warnings.simplefilter("ignore")
            holder = torch.ao.quantization.quantize_dynamic(
                nn.Sequential(module), {type(module)}, dtype=torch.qint8)
        quantized = holder[0]
        expected = getattr(torch.ao.nn.quantized.dynamic, type(module).__name__)
        if type(quantized) is not expected:
            raise Unsupported(f"quantize_dynamic left {type(module).__name__} as "
                              f"{type(quantized).__module__}.{type(quantized).__name__}, not "
                              f"{expected.__module__}.{expected.__name__}")
        return quantized


class TorchBfloat16Engine(TorchEngine):
    """``torch.nn``'s modules and cells converted to bfloat16."""

    modes = ("inference", "latency")
    precision = "bfloat16"

    def convert(self, case, module):
        if case.dtype != "float32":
            raise Unsupported("the bfloat16 peer starts from float32 modules")
        return _Bfloat16(self.torch, module.to(self.torch.bfloat16))


class _Bfloat16:
    """A bfloat16 module called with float32 tensors: input and state converted
    to bfloat16 on the way in, every result to float32 on the way out."""

    def __init__(self, torch, module):
        self.torch, self.module = torch, module

    def __call__(self, x, state=None):
        bf16, f32 = self.torch.bfloat16, self.torch.float32

        def cast(value, dtype):
            if isinstance(value, tuple):
                return tuple(cast(v, dtype) for v in value)
            return value.to(dtype)

        args = (x,) if state is None else (x, cast(state, bf16))
        result = self.module(*cast(args, bf16))
        return cast(result, f32)


def quantize_lstm_graph(model):
    """``onnxruntime.quantization.quantize_dynamic`` of a float32 graph, checked.

    Parameters
    ----------
    model : onnx.ModelProto
        A graph with an ``LSTM`` node, its weights initializers.

    Returns
    -------
    onnx.ModelProto
        The quantized graph, with a ``DynamicQuantizeLSTM`` node.

    Raises
    ------
    Unsupported
        The quantized graph has no ``DynamicQuantizeLSTM`` node (the message
        lists the nodes it has).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Without VNNI, ONNX Runtime's u8s8 products run on vpmaddubsw, whose int16
    # pair sums saturate: 25-33 % error at LSTM (25, 1..4, 256..512) on an AVX2
    # CPU.  Its documentation's remedy, 7-bit weights (reduce_range), brings
    # that to about 1 %; with VNNI the full 8 bits are exact and kept.
    features = fastrnn.cpu_features()
    reduce_range = not (features["avx512_vnni"] or features["avx_vnni"])

    with tempfile.TemporaryDirectory(prefix="fastrnn-bench-") as folder:
        source, target = os.path.join(folder, "float32.onnx"), os.path.join(folder, "int8.onnx")
        onnx.save(model, source)
        logging.disable(logging.WARNING)        # its advice to pre-process the graph
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, reduce_range=reduce_range)
        finally:
            logging.disable(logging.NOTSET)
        quantized = onnx.load(target)
    ops = [node.op_type for node in quantized.graph.node]
    if QUANTIZED_LSTM_OP not in ops:
        raise Unsupported(f"onnxruntime.quantization.quantize_dynamic wrote no "
                          f"{QUANTIZED_LSTM_OP} node (the quantized graph has "
                          f"{', '.join(ops) or 'no nodes'}): it would run in float32")
    return quantized


class OnnxRuntimeInt8Engine(OnnxRuntimeEngine):
    """ONNX Runtime's dynamically quantized LSTM (``DynamicQuantizeLSTM``)."""

    precision = "int8"

    def load(self):
        version = super().load()
        try:                                    # refuse the engine, not each case
            quantize_lstm_graph(onnx_model(*_probe()))
        except Unsupported as exc:
            raise ImportError(str(exc)) from None
        return version

    def model(self, case, weights):
        if case.cell != "lstm":
            raise Unsupported("onnxruntime.quantization.quantize_dynamic quantizes LSTM "
                              f"only (its {case.cell.upper()} nodes stay float32)")
        return quantize_lstm_graph(onnx_model(case, weights))


def _probe():
    """A small LSTM case and its weights: the graph ``load`` quantizes."""
    case = Case("lstm", "inference", 2, 1, 8, 8, 1)
    return case, make_problem(case)[0]
