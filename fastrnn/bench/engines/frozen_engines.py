"""fastrnn's frozen modules: ``fastrnn.freeze(module, dtype)``, weights packed
once, in float32 (the module's own precision), bfloat16 or int8.

Each engine builds the case's module (its cell for the single-step latency
case) as the ``fastrnn`` engine does, freezes it once when the case is
prepared, and times the frozen module's call, which takes what the module's
takes.  ``fastrnn.frozen`` computes in the case's own dtype and is checked at
``--tolerance`` beside the module; the bfloat16 and int8 engines run under
``--precision`` of their name, their error against float32 printed beside
their time (the measure of ``reduced_engines``).  Frozen modules run
inference and the cell step, not training.

The registry names these engines only when ``fastrnn.freeze`` exists
(``engines.build_registry``), so the benchmark runs with a fastrnn that has
none.
"""

from fastrnn.bench.engines.numpy_engines import FastrnnEngine

__all__ = ["FrozenEngine", "FrozenBfloat16Engine", "FrozenInt8Engine"]


class FrozenEngine(FastrnnEngine):
    """``fastrnn.freeze(module)``: the module's own precision, weights packed once."""

    modes = ("inference", "latency")
    #: ``fastrnn.freeze``'s ``dtype``
    freeze_dtype = None

    def load(self):
        version = super().load()
        if not hasattr(self.fastrnn, "freeze"):
            raise ImportError(f"fastrnn {version} has no freeze")
        return version

    def build(self, case, weights):
        return self.fastrnn.freeze(super().build(case, weights), self.freeze_dtype)


class FrozenBfloat16Engine(FrozenEngine):
    """``fastrnn.freeze(module, "bfloat16")``."""

    precision = freeze_dtype = "bfloat16"


class FrozenInt8Engine(FrozenEngine):
    """``fastrnn.freeze(module, "int8")``."""

    precision = freeze_dtype = "int8"
