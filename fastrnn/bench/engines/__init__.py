"""The engines the benchmark times, and the registry that names them.

An engine is an :class:`Engine` subclass (``base.py``), one module per
library family: ``numpy_engines`` (fastrnn, the reference),
``torch_engines`` (torch, fastrnn.torch), ``ort_engines`` (ONNX Runtime, and fastrnn.onnx's session on the same graph),
``frozen_engines`` (fastrnn's frozen modules, in each precision) and
``reduced_engines`` (the peers at reduced precision: PyTorch's and ONNX
Runtime's dynamically quantized layers, PyTorch in bfloat16).

To add one, write its class beside its family and give it a name in
``build_registry``; ``--engines`` also takes ``module:Class`` for a class
defined anywhere.  An engine whose weights are in a reduced precision (a
frozen fastrnn module in bfloat16 or int8, a dynamically quantized torch
module or ONNX graph) says so with ``precision``: it then runs under
``--precision`` of that name only, and ``engines_for`` leaves it out of the
other runs.
"""

import importlib

import fastrnn
from fastrnn.bench.cases import PRECISIONS
from fastrnn.bench.engines.base import Engine, Prepared, Unsupported
from fastrnn.bench.engines.frozen_engines import (FrozenBfloat16Engine, FrozenEngine,
                                                  FrozenInt8Engine)
from fastrnn.bench.engines.numpy_engines import FastrnnEngine, ReferenceEngine
from fastrnn.bench.engines.ort_engines import FastrnnOnnxEngine, OnnxRuntimeEngine, onnx_model
from fastrnn.bench.engines.reduced_engines import (OnnxRuntimeInt8Engine, TorchBfloat16Engine,
                                                   TorchInt8Engine)
from fastrnn.bench.engines.torch_engines import FastrnnTorchEngine, TorchEngine

__all__ = ["Engine", "Prepared", "Unsupported", "ENGINES", "engine_class", "engines_for",
           "FastrnnEngine", "ReferenceEngine", "TorchEngine", "FastrnnTorchEngine",
           "OnnxRuntimeEngine", "FastrnnOnnxEngine", "onnx_model", "build_registry", "FrozenEngine",
           "FrozenBfloat16Engine", "FrozenInt8Engine", "TorchInt8Engine", "TorchBfloat16Engine",
           "OnnxRuntimeInt8Engine"]


def build_registry(frozen):
    """The engines by name, in the default column order.

    Parameters
    ----------
    frozen : bool
        Whether to name fastrnn's frozen engines (``fastrnn.frozen``,
        ``fastrnn.frozen.bfloat16``, ``fastrnn.frozen.int8``): where
        ``fastrnn.freeze`` exists.

    Returns
    -------
    dict
        name -> Engine subclass: the full-precision engines, then those of
        reduced precision (``Engine.precision``).
    """
    engines = {
        "fastrnn": FastrnnEngine,
        "reference": ReferenceEngine,
        "torch": TorchEngine,
        "onnxruntime": OnnxRuntimeEngine,
        "fastrnn.torch": FastrnnTorchEngine,
        "fastrnn.onnx": FastrnnOnnxEngine,
    }
    if frozen:
        engines.update({"fastrnn.frozen": FrozenEngine,
                        "fastrnn.frozen.bfloat16": FrozenBfloat16Engine,
                        "fastrnn.frozen.int8": FrozenInt8Engine})
    engines.update({"torch.bfloat16": TorchBfloat16Engine,
                    "torch.int8": TorchInt8Engine,
                    "onnxruntime.int8": OnnxRuntimeInt8Engine})
    return engines


#: name -> Engine subclass, in the default column order; ``--engines`` also
#: takes ``module:Class``.
ENGINES = build_registry(frozen=hasattr(fastrnn, "freeze"))


def engine_class(name):
    """The Engine subclass for a name in ENGINES or a ``module:Class`` path.

    Raises
    ------
    ValueError
        An unknown name.
    TypeError
        ``module:Class`` names something that is not an Engine subclass.
    ImportError, AttributeError
        ``module:Class`` does not import.
    """
    if name in ENGINES:
        return ENGINES[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if not (isinstance(cls, type) and issubclass(cls, Engine)):
            raise TypeError(f"engine {name!r}: expected an Engine subclass, got {cls!r}")
        return cls
    raise ValueError(f"engine {name!r}: expected one of {list(ENGINES)} or module:Class")


def engines_for(precision="float32"):
    """The registered engines a run at ``precision`` times by default.

    Parameters
    ----------
    precision : {"float32", "bfloat16", "int8"}

    Returns
    -------
    list of str
        Those of the case's own dtype (``Engine.precision`` None), then
        those whose weights are in ``precision``, in ``ENGINES``' order.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    full = [name for name, cls in ENGINES.items() if cls.precision is None]
    return full + [name for name, cls in ENGINES.items()
                   if cls.precision is not None and cls.precision == precision]
