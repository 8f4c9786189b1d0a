"""Benchmark fastrnn against the NumPy reference, PyTorch and ONNX Runtime.

Run ``python -m fastrnn.bench`` (or ``fastrnn-bench``); ``--help`` lists the
options, ``--quick`` runs a reduced grid in well under a minute, ``--grid
serving`` the serving shapes (LSTM and GRU inference, T = 25, batch 1, 4, 8,
I = H from 256 to 2048).

How it measures
---------------
Engines
    Each engine (``fastrnn``, ``reference``, ``torch``, ``onnxruntime``,
    ``fastrnn.torch``; or ``module:Class`` naming an :class:`Engine`
    subclass of your own) runs in its own worker process, started with the
    ``spawn`` context.  The thread pools of different libraries (OpenMP,
    oneDNN, ONNX Runtime's own) spin while they wait for work and would steal
    each other's cores if they shared a process.  An engine that is not
    installed is reported as skipped, never as an error.  An engine whose
    weights are in a reduced precision (``Engine.precision``: bfloat16,
    int8) runs under ``--precision`` of that name, beside the float32
    engines, and its error against them is printed beside its time: the
    largest ``max|a - b| / max|b|`` over the arrays it returns, ``b`` the
    float32 baseline's.  Those are ``torch.int8`` (``quantize_dynamic``,
    qint8), ``onnxruntime.int8`` (``DynamicQuantizeLSTM``), ``torch.bfloat16``
    and, where ``fastrnn.freeze`` exists, ``fastrnn.frozen.bfloat16`` and
    ``fastrnn.frozen.int8``; ``fastrnn.frozen`` (float32, weights packed
    once) then joins the float32 engines.  Why an engine did not run a case
    is printed under the tables (``n/a ...``).
Commands
    The parent sends every worker the same weights (generated once per case
    from ``--seed``, in ``torch.nn``'s state_dict layout) and the same inputs
    over a pipe, with the case (cell, mode, shape, threads, dtype) to prepare.
    Only one worker runs at a time: the parent waits for each reply.
Numerical check
    Before any timing, every case is run once by every engine, and each
    engine's results (``y`` and the final state; in training also ``dx`` and
    every weight gradient; one step's new state for the latency cases) are
    compared with fastrnn's, or the reference's where fastrnn is missing:
    ``|a - b| <= tol * (|b| + max|b|)`` elementwise, ``tol`` 1e-4 in float32
    and 1e-9 in float64 (``--tolerance``).  A mismatch is printed with the
    engines grouped by which agree with which (where the NumPy reference
    stands tells who is wrong), and the run exits with status 1 before
    timing anything (``--keep-going`` times the cases anyway, the figures of
    the engines found wrong marked ``!``, and still exits with 1;
    ``--check-only`` stops after the check).
Rounds
    Timing a case, each worker first calibrates a batch: the number of calls
    that lasts about ``--target-time`` seconds.  Then the rounds interleave
    the engines: round ``r`` times one batch of engine A on the case, then
    one of engine B, and so on, the engines' order rotated from round to
    round, so that a slow drift of the machine (another job, the clock)
    touches every engine alike.  An engine's figure for the case is the median
    over rounds of its batch's time per call.  The NumPy reference runs at
    most three rounds.  Before each batch the coordinator waits 50 ms: the
    engine timed just before leaves its thread pool spinning for a moment
    after its last call, and on a machine with few cores those spinning
    threads would steal the next engine's time.
Practical limit
    Beside the figures stands what the machine can do: the FLOP rate of one
    large GEMM (``scipy.linalg.blas.sgemm``, 2048 cubed by default, through
    the BLAS that fastrnn itself calls), at each thread count, and for each
    case the GEMM-only time, its matrix-product FLOPs divided by that rate:
    ``2*T*N*G*H*(I + H)`` for inference (the input and the recurrent
    products, G gates), three times that for a training step (forward, the
    gradient for the inputs and the one for the weights).  The ``of peak``
    column is the GEMM-only time over fastrnn's.

Threads: each case sets its engine's count, ``fastrnn.set_num_threads``,
``torch.set_num_threads`` (one inter-op thread), ONNX Runtime's
``intra_op_num_threads`` (``inter_op_num_threads = 1``), and threadpoolctl
for the reference's NumPy BLAS.

Modes: ``inference`` (torch under ``torch.no_grad``), ``training`` (one
forward and the backward of ``y.sum()``, that is ``dy = 1``, with the
gradients for the input and every weight; for torch ``loss.backward()`` with
parameters and input requiring grad) and ``latency`` (one step of the cell at
``N = 1``, ``I = H = --step-size``, the state given).  ONNX Runtime runs
inference and latency only.

Where each part lives
---------------------
``cases``
    the grids (``GRIDS``), :class:`Case`, ``build_cases``, ``make_problem``.
``engines``
    :class:`Engine` and the registry (``ENGINES``, ``engine_class``,
    ``engines_for``); one module per library family.
``worker``
    the process per engine and the protocol spoken over its pipe.
``check``
    the numerical check.
``runner``
    the grid's run: the check, then the interleaved rounds; the progress bar.
``machine``
    the GEMM peak and the description of the machine.
``report``, ``plot``
    the tables, the check's summary line, the figure.
``cli``
    ``parse_args`` and ``main`` (``python -m fastrnn.bench``, ``fastrnn-bench``).
"""

from fastrnn.bench.cases import (CELLS, DEFAULT_SHAPES, GRIDS, MODES, PRECISIONS, QUICK_SHAPES,
                                 SERVING_SHAPES, Case, Grid, all_cores, build_cases,
                                 make_problem)
from fastrnn.bench.check import TOLERANCE, compare_outputs
from fastrnn.bench.cli import main, parse_args
from fastrnn.bench.engines import (ENGINES, Engine, FastrnnEngine, FastrnnTorchEngine,
                                   OnnxRuntimeEngine, Prepared, ReferenceEngine, TorchEngine,
                                   Unsupported, engine_class, engines_for, onnx_model)
from fastrnn.bench.machine import gemm_peak, machine_info
from fastrnn.bench.report import format_tables

__all__ = ["Case", "Grid", "Engine", "Prepared", "Unsupported", "ENGINES", "GRIDS", "CELLS",
           "MODES", "PRECISIONS", "DEFAULT_SHAPES", "QUICK_SHAPES", "SERVING_SHAPES",
           "TOLERANCE", "FastrnnEngine", "ReferenceEngine", "TorchEngine",
           "FastrnnTorchEngine", "OnnxRuntimeEngine", "make_problem", "compare_outputs",
           "gemm_peak", "machine_info", "build_cases", "all_cores", "engine_class",
           "engines_for", "onnx_model", "format_tables", "parse_args", "main"]
