"""ONNX interop: export fastrnn modules, run ONNX recurrent graphs, load their layers.

- :func:`export` / :func:`to_model`: a module as an ONNX model (a file, or a
  ``ModelProto`` in memory) that onnxruntime runs to the same numbers.
- :func:`run` and :class:`InferenceSession`: evaluate graphs of ONNX ``RNN``,
  ``LSTM`` and ``GRU`` nodes (and the plumbing around them) with fastrnn's
  kernels, behind onnxruntime's interface.
- :func:`load`: one recurrent layer of a graph as a fastrnn module.

Needs the ``onnx`` package (``pip install fastrnn[onnx]``); onnxruntime is
never needed.  ``import fastrnn`` does not import this module.
"""

try:
    import onnx  # noqa: F401
except ImportError as err:
    raise ImportError("fastrnn.onnx needs the onnx package: pip install fastrnn[onnx] "
                      f"(or pip install onnx) ({err})") from err

from fastrnn.onnx.export import export, to_model
from fastrnn.onnx.graph import NodeArg
from fastrnn.onnx.load import load
from fastrnn.onnx.session import InferenceSession, run

__all__ = ["export", "to_model", "run", "InferenceSession", "load", "NodeArg"]
