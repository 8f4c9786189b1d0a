"""The numerical check: every engine's results on a case against the baseline's.

Before any timing, every case is run once by every engine, and each engine's
results (``y`` and the final state; in training also ``dx`` and every weight
gradient; one step's new state for the latency cases) are compared with
fastrnn's, or the reference's where fastrnn is missing:
``|a - b| <= tol * (|b| + max|b|)`` elementwise.  An engine whose weights
are in a reduced precision is compared with the same baseline at that
precision's looser bound (``REDUCED_TOLERANCE``: it catches a wrong gate,
not rounding), and its error is what the report prints beside its time.
"""

import numpy as np

from fastrnn.bench.cases import make_problem
from fastrnn.bench.engines import Unsupported
from fastrnn.bench.worker import EngineError

#: --tolerance's default, by the cases' dtype
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}
#: the bound of an engine computing in a reduced precision, against float32
REDUCED_TOLERANCE = {"bfloat16": 2e-2, "int8": 5e-2}
#: the engines a baseline is taken from, first found first
BASELINES = ("fastrnn", "reference")


def compare_outputs(outputs, expected, tolerance):
    """Compare one engine's results with the baseline's.

    Parameters
    ----------
    outputs, expected : dict of ndarray
        From ``Prepared.collect``; only keys of ``expected`` are compared,
        and each must be present in ``outputs`` with the same shape.
    tolerance : float
        ``|a - b| <= tolerance * (|b| + max|b|)`` elementwise must hold.

    Returns
    -------
    dict
        ``ok`` (bool), ``max_error`` (largest ``|a - b| / max|b|`` over the
        arrays), ``worst`` (its key), ``failed`` (the keys that fail) and
        ``problems`` (a message for each).
    """
    result = {"ok": True, "max_error": 0.0, "worst": None, "failed": [], "problems": []}
    for key, b in expected.items():
        b = np.asarray(b, dtype=np.float64)
        if key not in outputs:
            result["failed"].append(key)
            result["problems"].append(f"{key}: missing")
            continue
        a = np.asarray(outputs[key], dtype=np.float64)
        if a.shape != b.shape:
            result["failed"].append(key)
            result["problems"].append(f"{key}: shape {a.shape}, expected {b.shape}")
            continue
        if a.size == 0:
            continue
        scale = float(np.max(np.abs(b))) if np.all(np.isfinite(b)) else 1.0
        diff = np.abs(a - b)
        bad = ~(diff <= tolerance * (np.abs(b) + scale))     # NaN counts as bad
        error = float(np.max(diff)) / scale if scale > 0 else float(np.max(diff))
        if not np.isfinite(error):
            error = float("inf")
        if error >= result["max_error"]:
            result["max_error"], result["worst"] = error, key
        if bad.any():
            result["failed"].append(key)
            where = np.unravel_index(np.argmax(np.where(np.isnan(diff), np.inf, diff)), diff.shape)
            result["problems"].append(
                f"{key}: {int(bad.sum())} of {bad.size} values off, largest error "
                f"{error:.2e} of max|{key}| = {scale:.3g} (at {tuple(map(int, where))}: "
                f"{a[where]:.6g}, expected {b[where]:.6g})")
    result["ok"] = not result["problems"]
    return result


def check_case(case, record, workers, seed, tolerance, progress):
    """Run a case once on every engine and compare; return True on a failure.

    Fills ``record["engines"][name]`` with ``status`` ("ok", "n/a",
    "error" or "mismatch"), ``reason`` and ``check`` (``compare_outputs``'
    dict with ``against`` and ``tolerance``, and ``precision`` for an engine
    of reduced precision; ``{"baseline": True}`` for the baseline).
    """
    weights, inputs = make_problem(case, seed)
    outputs, failed = {}, False
    for worker in workers:
        e = record["engines"][worker.name] = {"status": "ok"}
        progress.update(f"check {worker.name}: {case.label}")
        if case.mode not in worker.cls.modes:
            e.update(status="n/a", reason=f"{worker.name} does not run {case.mode}")
            continue
        try:
            outputs[worker.name] = worker.request("prepare", case, weights, inputs,
                                                  True, 0)["outputs"]
            worker.request("release")
        except Unsupported as exc:
            e.update(status="n/a", reason=str(exc))
        except EngineError as exc:
            e.update(status="error", reason=str(exc))
            failed = True
            progress.write(f"ERROR {case.label}: {exc}")
    precision = {w.name: w.cls.precision for w in workers}
    full = {name: out for name, out in outputs.items() if precision[name] is None}
    order = list(BASELINES) + [w.name for w in workers]
    baseline = next((name for name in order if name in full), None)
    for name, out in outputs.items():
        e = record["engines"][name]
        if name == baseline:
            e["check"] = {"baseline": True}
            continue
        if baseline is None:            # only reduced-precision engines ran the case
            continue
        bound = tolerance if precision[name] is None else REDUCED_TOLERANCE[precision[name]]
        e["check"] = compare_outputs(out, outputs[baseline], bound)
        e["check"].update(against=baseline, tolerance=bound)
        if precision[name] is not None:
            e["check"]["precision"] = precision[name]
        if not e["check"]["ok"]:
            e["status"] = "mismatch"
            failed = True
    report_mismatches(case, record, full, baseline, tolerance, progress)
    return failed


def agreement_groups(outputs, tolerance):
    """Engines grouped by agreement, each against its group's first engine.

    Parameters
    ----------
    outputs : dict
        engine name -> its dict of ndarrays.
    tolerance : float

    Returns
    -------
    list of list of str
    """
    groups = []
    for name, out in outputs.items():
        for group in groups:
            if compare_outputs(out, outputs[group[0]], tolerance)["ok"]:
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def report_mismatches(case, record, outputs, baseline, tolerance, progress):
    """Print the engines that disagree with the baseline on a case, and which
    engines agree with which (``record["agreement"]``): where the NumPy
    reference stands tells who is wrong (``record["suspects"]``).

    ``outputs`` holds the engines of full precision; a reduced-precision
    engine off its own bound is a suspect by itself.
    """
    failing = [n for n, e in record["engines"].items() if e["status"] == "mismatch"]
    if not failing:
        return
    lines = [f"MISMATCH {case.label}: against {baseline}, tolerance {tolerance:g}"]
    for name in failing:
        check = record["engines"][name]["check"]
        problems, others = check["problems"], check["failed"][1:]
        bound = (f" ({check['precision']}, tolerance {check['tolerance']:g})"
                 if "precision" in check else "")
        lines.append(f"    {name}{bound}: {problems[0]}"
                     + (f"; also off: {', '.join(others)}" if others else ""))
    groups = record["agreement"] = agreement_groups(outputs, tolerance)
    oracle = next((g for g in groups if "reference" in g), None)
    reduced = [n for n in failing if n not in outputs]
    # The suspects: those apart from the reference, or those apart from the baseline.
    record["suspects"] = ([n for n in outputs if n not in oracle] if oracle
                          else [n for n in failing if n in outputs]) + reduced
    if len(outputs) > 2:
        lines.append("    agreeing: " + " | ".join(", ".join(g) for g in groups)
                     + (" (the reference sides with "
                        + ", ".join(n for n in oracle if n != "reference") + ")"
                        if oracle and len(oracle) > 1 else ""))
    if oracle:
        lines.append(f"    wrong, by the reference: {', '.join(record['suspects'])}")
    progress.write("\n".join(lines))
