"""The command line: ``python -m fastrnn.bench`` and ``fastrnn-bench``.

``parse_args`` fills in the defaults of ``--grid`` and ``--quick``; ``main``
starts a worker per engine, runs the grid (``runner``), prints the tables
(``report``) and writes ``--json`` and ``--plot``.
"""

import argparse
import datetime
import json
import multiprocessing
import sys
import time

from fastrnn.bench.cases import CELLS, GRIDS, MODES, PRECISIONS, STEP_SIZE, all_cores, build_cases
from fastrnn.bench.check import TOLERANCE
from fastrnn.bench.engines import ENGINES, engine_class, engines_for
from fastrnn.bench.machine import DEFAULT_GEMM, QUICK_GEMM, gemm_peak, load_average, \
    machine_info
from fastrnn.bench.plot import plot
from fastrnn.bench.report import format_check_summary, format_tables, format_unsupported
from fastrnn.bench.runner import Progress, run_grid
from fastrnn.bench.worker import Worker

DEFAULT_ROUNDS, QUICK_ROUNDS = 7, 3
DEFAULT_TARGET, QUICK_TARGET = 0.1, 0.01        # seconds of calls per round


def _parse_list(text, kind=str):
    return [kind(item.strip()) for item in text.split(",") if item.strip()]


def _parse_shape(text):
    parts = text.lower().split("x")
    if len(parts) not in (3, 4) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected TxNxH or TxNxIxH, "
                                         "positive integers")
    return tuple(int(p) for p in parts)


def _shapes_text(shapes):
    return ",".join("x".join(map(str, s)) for s in shapes)


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m fastrnn.bench",
        description="Time fastrnn against the NumPy reference, PyTorch and ONNX Runtime "
                    "(each when installed), after checking that they agree.")
    p.add_argument("--quick", action="store_true",
                   help="a reduced grid, few and short rounds: well under a minute")
    p.add_argument("--grid", choices=list(GRIDS), default="default",
                   help="the cells, modes and shapes by default: "
                        + "; ".join(f"{name}: {g.description}" for name, g in GRIDS.items()))
    p.add_argument("--cells", type=lambda s: _parse_list(s),
                   help="comma-separated: rnn,lstm,gru (default: the grid's; all for default)")
    p.add_argument("--shapes", type=lambda s: [_parse_shape(x) for x in _parse_list(s)],
                   help="comma-separated TxNxH (I = H) or TxNxIxH (default: the grid's, "
                        f"{_shapes_text(GRIDS['default'].shapes)} for default)")
    p.add_argument("--modes", type=lambda s: _parse_list(s),
                   help="comma-separated: inference,training,latency (default: the grid's; "
                        "all for default)")
    p.add_argument("--threads", type=lambda s: _parse_list(s, int),
                   help=f"comma-separated thread counts (default 1,{all_cores()})")
    p.add_argument("--engines", type=lambda s: _parse_list(s),
                   help="comma-separated, from " + ",".join(ENGINES)
                        + " or module:Class (default all of --precision; missing ones "
                          "are skipped)")
    p.add_argument("--dtype", choices=sorted(TOLERANCE), default="float32")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="of the weights: a reduced one adds the engines computing in it, "
                        "their error against float32 beside their time (default float32)")
    p.add_argument("--rounds", type=int, help=f"timing rounds (default {DEFAULT_ROUNDS}, "
                                              f"quick {QUICK_ROUNDS})")
    p.add_argument("--target-time", type=float,
                   help=f"seconds of calls per engine per round (default {DEFAULT_TARGET}, "
                        f"quick {QUICK_TARGET})")
    p.add_argument("--step-size", type=int, default=STEP_SIZE,
                   help=f"I = H of the single-step latency cases (default {STEP_SIZE})")
    p.add_argument("--gemm-size", type=int,
                   help=f"size of the peak GEMM (default {DEFAULT_GEMM}, quick {QUICK_GEMM}; "
                        "0 skips it)")
    p.add_argument("--seed", type=int, default=0, help="of weights and inputs")
    p.add_argument("--tolerance", type=float,
                   help="of the numerical check (default 1e-4 float32, 1e-9 float64)")
    p.add_argument("--keep-going", action="store_true",
                   help="time the cases even when the numerical check fails")
    p.add_argument("--check-only", action="store_true", help="the numerical check, no timing")
    p.add_argument("--json", metavar="FILE", help="write every round, the medians and the "
                                                  "machine's description")
    p.add_argument("--plot", metavar="FILE", help="draw a figure (needs matplotlib)")
    return p


def parse_args(argv=None):
    """The command line, the grid's and quick defaults filled in.

    Parameters
    ----------
    argv : list of str, optional
        Default ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
        With ``argv`` (the arguments as given) beside the options.
    """
    p = _parser()
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    grid = GRIDS[args.grid]
    if args.cells is None:
        args.cells = list(grid.cells)
    if args.modes is None:
        args.modes = list(grid.modes)
    if args.shapes is None:
        args.shapes = list(grid.quick_shapes if args.quick else grid.shapes)
    if args.engines is None:
        args.engines = engines_for(args.precision)
    if args.threads is None:
        args.threads = sorted({1, all_cores()})
    args.modes = [m for m in MODES if m in args.modes] + [m for m in args.modes
                                                          if m not in MODES]
    if args.rounds is None:
        args.rounds = QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS
    if args.target_time is None:
        args.target_time = QUICK_TARGET if args.quick else DEFAULT_TARGET
    if args.gemm_size is None:
        args.gemm_size = QUICK_GEMM if args.quick else DEFAULT_GEMM
    for what, values, allowed in (("--cells", args.cells, CELLS), ("--modes", args.modes, MODES)):
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            p.error(f"{what}: expected names among {','.join(allowed)}, got {','.join(values)}")
    if not args.threads or min(args.threads) < 1:
        p.error(f"--threads: expected integers >= 1, got {args.threads}")
    if args.rounds < 1 or args.target_time < 0 or args.step_size < 1:
        p.error("--rounds and --step-size must be >= 1, --target-time >= 0")
    if args.precision != "float32" and args.dtype != "float32":
        p.error(f"--precision {args.precision}: reduces float32 weights, got --dtype "
                f"{args.dtype}")
    precisions = {}
    for name in args.engines:
        try:
            precisions[name] = engine_class(name).precision
        except Exception as e:
            p.error(f"--engines: {e}")
    wrong = [name for name, pr in precisions.items() if pr not in (None, args.precision)]
    if wrong:
        p.error(f"--engines: {', '.join(f'{n} computes in {precisions[n]}' for n in wrong)}; "
                f"expected engines of --precision {args.precision}")
    if args.precision != "float32" and args.precision not in precisions.values():
        registered = [n for n, cls in ENGINES.items() if cls.precision == args.precision]
        p.error(f"--precision {args.precision}: no engine of --engines computes in it "
                f"(registered: {', '.join(registered) or 'none'})")
    return args


def main(argv=None):
    """Run the benchmark; return the exit status (0, or 1 after a failed check or an error).

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``); see ``--help``.
    """
    t0 = time.perf_counter()
    args = parse_args(argv)
    cases = build_cases(args.cells, args.shapes, args.modes, args.threads, args.dtype,
                        args.step_size)
    machine = machine_info()
    print(f"fastrnn bench: {machine['cpu']}, {machine['cores']} cores, {args.dtype}, "
          f"{len(cases)} cases, {args.rounds} round{'s' if args.rounds > 1 else ''} "
          f"of ~{args.target_time:g} s",
          file=sys.stderr)
    load = machine["load_average"]
    if load and load[0] > 0.5:
        print(f"note: load average {load[0]:.2f} before starting; other jobs on this machine "
              "make the figures noisy (the 1-minute load is in the JSON, before and after)",
              file=sys.stderr)

    gemm_rates = {}
    if args.gemm_size:
        print(f"measuring the GEMM peak ({args.gemm_size}^3) ...", file=sys.stderr)
        gemm_rates = gemm_peak(sorted(set(args.threads)), args.gemm_size, args.dtype)

    context = multiprocessing.get_context("spawn")
    started = [Worker(name, context) for name in dict.fromkeys(args.engines)]
    engines, workers = {}, []
    for worker in started:
        status, detail = worker.wait_ready()
        if status == "ready":
            engines[worker.name] = {"status": "ready", "version": detail}
            workers.append(worker)
        else:
            engines[worker.name] = {"status": "skipped", "reason": detail}
            print(f"skipped {worker.name}: {detail}", file=sys.stderr)

    batches = 1 + (0 if args.check_only else args.rounds)        # per case and engine
    progress = Progress(len(cases) * len(workers) * batches)
    try:
        records, failed = run_grid(cases, workers, args, progress, gemm_rates)
    finally:
        progress.close()
        for worker in workers:
            worker.stop()

    names = [w.name for w in workers]
    print(format_tables(records, names, gemm_rates))
    for text in (format_unsupported(records), format_check_summary(records)):
        if text:
            print(text)
    for name, e in engines.items():
        if e["status"] == "skipped":
            print(f"skipped {name}: {e['reason']}")

    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "command": [sys.executable, "-m", "fastrnn.bench"] + args.argv,
              "machine": machine,
              "config": {k: v for k, v in vars(args).items() if k != "argv"},
              "gemm": {"size": args.gemm_size, "dtype": args.dtype,
                       "flops_per_s": {str(n): rate for n, rate in gemm_rates.items()}},
              "engines": engines, "engine_order": names, "cases": records,
              "load_average_after": load_average(), "elapsed_s": time.perf_counter() - t0,
              "ok": not failed}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        print(f"wrote {args.json}")
    if args.plot:
        try:
            plot(result, args.plot)
            print(f"wrote {args.plot}")
        except ImportError:
            print(f"--plot: matplotlib is not installed (pip install matplotlib); "
                  f"{args.plot} not written", file=sys.stderr)
    return 1 if failed else 0
