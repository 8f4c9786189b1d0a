"""Running the grid: the check of every case, then the timing rounds, with
progress on stderr.

Timing a case, each worker first calibrates a batch: the number of calls
that lasts about ``--target-time`` seconds.  Then the rounds interleave the
engines: round ``r`` times one batch of engine A on the case, then one of
engine B, and so on, the engines' order rotated from round to round, so that
a slow drift of the machine (another job, the clock) touches every engine
alike.  An engine's figure for the case is the median over rounds of its
batch's time per call.  An engine may cap its rounds (``Engine.max_rounds``:
the NumPy reference runs at most three).  Before each batch the coordinator
waits ``SETTLE_S``: the engine timed just before leaves its thread pool
spinning for a moment after its last call, and on a machine with few cores
those spinning threads would steal the next engine's time.
"""

import statistics
import sys
import time
from dataclasses import asdict

from fastrnn.bench.cases import make_problem
from fastrnn.bench.check import TOLERANCE, check_case
from fastrnn.bench.engines import Unsupported
from fastrnn.bench.worker import EngineError

SETTLE_S = 0.05                     # pause before each timed batch


class Progress:
    """A plain-text progress bar on stderr: redrawn in place on a terminal,
    a line per tenth elsewhere."""

    def __init__(self, total, stream=None, width=30):
        self.total, self.done, self.width = max(total, 1), 0, width
        self.stream = sys.stderr if stream is None else stream
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start, self.label, self.last_tenth = time.perf_counter(), "", -1

    def update(self, label=None, n=1):
        self.done += n
        if label is not None:
            self.label = label
        self._draw()

    def _line(self):
        fraction = min(self.done / self.total, 1.0)
        filled = int(self.width * fraction)
        elapsed = time.perf_counter() - self.start
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:3.0f}% "
                f"{elapsed:5.0f}s  {self.label}")

    def _draw(self):
        if self.tty:
            self.stream.write("\r" + self._line()[:119].ljust(119))
            self.stream.flush()
        else:
            tenth = int(10 * self.done / self.total)
            if tenth != self.last_tenth:
                self.last_tenth = tenth
                self.stream.write(self._line() + "\n")
                self.stream.flush()

    def write(self, message):
        """Print a message above the bar."""
        if self.tty:
            self.stream.write("\r" + " " * 119 + "\r")
        self.stream.write(message.rstrip("\n") + "\n")
        if self.tty:
            self._draw()
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\r" + " " * 119 + "\r")
            self.stream.flush()


def run_grid(cases, workers, args, progress, gemm_rates):
    """Check every case, then time every case; return (records, failed)."""
    tolerance = TOLERANCE[args.dtype] if args.tolerance is None else args.tolerance
    records, failed = [], False
    for case in cases:
        rate = gemm_rates.get(case.threads)
        record = {"case": asdict(case), "shape": case.shape, "flops": case.flops,
                  "gemm_only_s": case.flops / rate if rate else None, "engines": {}}
        records.append(record)
        failed |= check_case(case, record, workers, args.seed, tolerance, progress)
    mismatched = any(e["status"] == "mismatch" for r in records for e in r["engines"].values())
    if mismatched and not args.check_only and not args.keep_going:
        progress.write("numerical check FAILED: nothing timed (--keep-going times anyway)")
    if args.check_only or (mismatched and not args.keep_going):
        return records, failed
    for case, record in zip(cases, records):
        failed |= time_case(case, record, workers, args, progress)
    return records, failed


def time_case(case, record, workers, args, progress):
    """Time a case: rounds interleaving the engines, the order rotated each
    round; store ``reps``, ``rounds_s`` and ``median_s``.  Return True on an
    error."""
    start = time.perf_counter()
    weights, inputs = make_problem(case, args.seed)
    ready, failed = [], False

    def fail(e, exc):
        nonlocal failed
        e.update(status="error", reason=str(exc))
        failed = True
        progress.write(f"ERROR {case.label}: {exc}")

    for worker in workers:
        e = record["engines"][worker.name]
        if e["status"] not in ("ok", "mismatch"):
            progress.update(n=args.rounds)
            continue
        try:
            e["reps"] = worker.request("prepare", case, weights, inputs, False,
                                       args.target_time)["reps"]
            e["rounds_s"] = []
            ready.append(worker)
        except (Unsupported, EngineError) as exc:
            fail(e, exc)
            progress.update(n=args.rounds)
    for r in range(args.rounds):
        for k in range(len(ready)):
            worker = ready[(k + r) % len(ready)]
            e = record["engines"][worker.name]
            progress.update(f"time  {case.label} round {r + 1}/{args.rounds}")
            limit = worker.cls.max_rounds
            if e["status"] == "error" or (limit is not None and r >= limit):
                continue
            time.sleep(SETTLE_S)            # the last engine's thread pool goes idle
            try:
                e["rounds_s"].append(worker.request("time", e["reps"]))
            except EngineError as exc:
                fail(e, exc)
    for worker in ready:
        e = record["engines"][worker.name]
        if e["rounds_s"]:
            e["median_s"] = statistics.median(e["rounds_s"])
        try:
            worker.request("release")
        except EngineError:
            pass
    record["timing_wall_s"] = time.perf_counter() - start
    return failed

