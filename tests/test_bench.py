"""The benchmark harness itself (``fastrnn.bench``): its grid, its numerical
check and a tiny end-to-end run.  No timing is asserted."""

import importlib.util
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastrnn
from fastrnn import bench
from fastrnn.bench import check, engines
from fastrnn.bench.engines import reduced_engines

# A tiny grid: I != H catches transposed weights; every cell, mode and engine.
TINY = ["--quick", "--shapes", "3x2x4x5", "--threads", "1", "--rounds", "2",
        "--target-time", "0.001", "--step-size", "6", "--gemm-size", "64"]

PLUGINS = '''
import numpy as np

from fastrnn.bench import Prepared, ReferenceEngine
from fastrnn.bench.engines import FrozenEngine


class Broken(ReferenceEngine):
    """The reference with its first output nudged: must fail the check."""

    def prepare(self, case, weights, inputs):
        prepared = super().prepare(case, weights, inputs)

        def collect(result):
            out = prepared.collect(result)
            key = next(iter(out))
            out[key] = out[key] + 0.01
            return out
        return Prepared(prepared.call, collect)


class Missing(ReferenceEngine):
    def load(self):
        raise ImportError("not installed here")


class Rounded(ReferenceEngine):
    """The reference on weights rounded to bfloat16: an engine of reduced precision."""

    precision = "bfloat16"
    modes = ("inference", "latency")

    def prepare(self, case, weights, inputs):
        def to_bfloat16(w):          # round to nearest even on the top 16 bits
            bits = w.astype(np.float32).view(np.uint32)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
            return bits.astype(np.uint32).view(np.float32)
        return super().prepare(case, {k: to_bfloat16(w) for k, w in weights.items()}, inputs)


def stand_in_freeze(module, dtype=None):
    """Where fastrnn has no freeze yet: the module itself (its call is a frozen one's)."""
    return module


class StandInFrozen(FrozenEngine):
    """The frozen float32 engine, on fastrnn.freeze or (where it is missing) the stand-in."""

    def load(self):
        import fastrnn
        if not hasattr(fastrnn, "freeze"):
            fastrnn.freeze = stand_in_freeze
        return super().load()


class StandInFrozenInt8(StandInFrozen):
    precision = freeze_dtype = "int8"


class Scrambled(Rounded):
    """Reduced precision with two gates swapped: beyond even the loose bound."""

    def prepare(self, case, weights, inputs):
        w = dict(weights)
        w["weight_ih_l0"] = np.roll(w["weight_ih_l0"], case.H, axis=0)
        return super().prepare(case, w, inputs)
'''


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    """A module of Engine subclasses on sys.path (spawned workers inherit it)."""
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "fastrnn_bench_plugins.py").write_text(textwrap.dedent(PLUGINS))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(folder))
        yield "fastrnn_bench_plugins"


def test_grid_and_flops():
    cases = bench.build_cases(["lstm"], [(10, 2, 3), (5, 1, 4, 6)], bench.MODES, [1, 2],
                              step_size=8)
    assert len(cases) == 2 * (2 + 2 + 1)
    c = bench.Case("lstm", "inference", 10, 2, 3, 5, 1)
    assert c.flops == 2 * 10 * 2 * 4 * 5 * (3 + 5)
    assert bench.Case("gru", "training", 10, 2, 3, 5, 1).flops == 3 * 2 * 10 * 2 * 3 * 5 * 8
    assert c.shape == "10x2x3x5"
    latency = [c for c in cases if c.mode == "latency"]
    assert {(c.T, c.N, c.I, c.H) for c in latency} == {(1, 1, 8, 8)}


def test_serving_grid():
    args = bench.parse_args(["--grid", "serving"])
    assert args.cells == ["lstm", "gru"] and args.modes == ["inference"]
    assert args.rounds == 7 and args.target_time == 0.1              # the default rounds
    cases = bench.build_cases(args.cells, args.shapes, args.modes, [1])
    assert {(c.cell, c.mode, c.T) for c in cases} == {("lstm", "inference", 25),
                                                      ("gru", "inference", 25)}
    assert sorted({(c.N, c.I, c.H) for c in cases}) == [
        (N, H, H) for N in (1, 4, 8) for H in (256, 512, 1024, 2048)]
    assert len(cases) == 2 * 3 * 4 and cases[0].shape == "25x1x256"
    quick = bench.parse_args(["--grid", "serving", "--quick"])
    assert set(quick.shapes) < set(bench.SERVING_SHAPES) and quick.rounds == bench.cli.QUICK_ROUNDS
    # explicit options win over the grid's
    mixed = bench.parse_args(["--grid", "serving", "--cells", "rnn", "--modes", "latency"])
    assert mixed.cells == ["rnn"] and mixed.modes == ["latency"]


def test_default_config_is_unchanged():
    args = bench.parse_args([])
    assert (args.cells, args.modes, args.shapes) == (list(bench.CELLS), list(bench.MODES),
                                                     list(bench.DEFAULT_SHAPES))
    frozen = ["fastrnn.frozen"] if hasattr(fastrnn, "freeze") else []
    assert args.engines == bench.engines_for() == ["fastrnn", "reference", "torch",
                                                   "onnxruntime", "fastrnn.torch",
                                                   "fastrnn.onnx"] + frozen
    assert (args.rounds, args.target_time, args.gemm_size, args.step_size) == (7, 0.1, 2048, 256)
    assert args.precision == "float32" and args.grid == "default"


def test_registry(plugins, monkeypatch):
    assert bench.engine_class("torch") is bench.TorchEngine
    assert bench.engine_class(f"{plugins}:Rounded").precision == "bfloat16"
    with pytest.raises(ValueError, match="expected one of"):
        bench.engine_class("nope")
    with pytest.raises(TypeError, match="Engine subclass"):
        bench.engine_class("fastrnn.bench:Case")
    with pytest.raises(ValueError, match="precision"):
        bench.engines_for("float16")
    assert all(bench.ENGINES[n].precision is None for n in bench.engines_for())
    assert {bench.ENGINES[n].precision for n in bench.engines_for("int8")} == {None, "int8"}
    # a registered engine of reduced precision joins the runs of its precision only
    rounded = bench.engine_class(f"{plugins}:Rounded")
    monkeypatch.setitem(bench.ENGINES, "reference.bf16", rounded)
    assert "reference.bf16" not in bench.engines_for()
    assert bench.engines_for("bfloat16")[-1] == "reference.bf16"
    assert "reference.bf16" not in bench.engines_for("int8")
    assert bench.parse_args(["--precision", "bfloat16"]).engines[-1] == "reference.bf16"


def test_precision_arguments(plugins):
    for bad in (["--precision", "int8", "--engines", "fastrnn,torch"],   # no int8 engine
                ["--precision", "bfloat16", "--engines", "reference"],
                ["--precision", "bfloat16", "--engines", "fastrnn,torch.int8"],
                ["--engines", f"reference,{plugins}:Rounded"],    # bfloat16 in a float32 run
                ["--precision", "bfloat16", "--dtype", "float64",
                 "--engines", f"reference,{plugins}:Rounded"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)
    args = bench.parse_args(["--precision", "bfloat16", "--engines",
                             f"reference,{plugins}:Rounded"])
    assert args.precision == "bfloat16"


def test_reduced_precision_error_is_reported(plugins, tmp_path, capsys):
    """An engine of reduced precision: checked at its loose bound, its error printed
    beside its time; a wrong one still fails."""
    out = tmp_path / "run.json"
    base = TINY + ["--cells", "lstm", "--modes", "inference,latency", "--precision",
                   "bfloat16", "--json", str(out)]
    assert bench.main(base + ["--engines", f"fastrnn,reference,{plugins}:Rounded"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    for record in result["cases"]:
        c = record["engines"][f"{plugins}:Rounded"]["check"]
        assert c["ok"] and c["precision"] == "bfloat16" and c["against"] == "fastrnn"
        assert 1e-5 < c["max_error"] < check.REDUCED_TOLERANCE["bfloat16"]
        assert c["tolerance"] == check.REDUCED_TOLERANCE["bfloat16"]
    assert " err " in printed and "in bfloat16 against the full-precision" in printed
    assert "(reference vs fastrnn" in printed          # the summary: full precision's

    assert bench.main(base + ["--engines", f"reference,{plugins}:Scrambled"]) == 1
    result = json.loads(out.read_text())
    for record in result["cases"]:
        assert record["engines"][f"{plugins}:Scrambled"]["status"] == "mismatch"
        assert record["suspects"] == [f"{plugins}:Scrambled"]
    assert "(bfloat16, tolerance 0.02)" in capsys.readouterr().err


def test_package_entry_points():
    """``python -m fastrnn.bench`` runs, and pyproject installs the package and names
    a console script that resolves to ``main``."""
    done = subprocess.run([sys.executable, "-m", "fastrnn.bench", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--grid" in done.stdout and "--precision" in done.stdout
    tomllib = pytest.importorskip("tomllib")
    pyproject = pathlib.Path(__file__).parents[1] / "pyproject.toml"
    config = tomllib.loads(pyproject.read_text())
    module, _, attr = config["project"]["scripts"]["fastrnn-bench"].partition(":")
    assert getattr(__import__(module, fromlist=[attr]), attr) is bench.main
    setuptools = config["tool"]["setuptools"]
    packages = setuptools.get("packages")
    if isinstance(packages, list):              # else found by packages.find
        assert {"fastrnn.bench", "fastrnn.bench.engines"} <= set(packages)


def test_problem_is_torch_layout_and_reproducible():
    case = bench.Case("gru", "latency", 1, 1, 4, 5, 1)
    weights, inputs = bench.make_problem(case, seed=3)
    assert {k: v.shape for k, v in weights.items()} == {
        "weight_ih_l0": (15, 4), "weight_hh_l0": (15, 5), "bias_ih_l0": (15,),
        "bias_hh_l0": (15,)}
    assert np.abs(weights["weight_hh_l0"]).max() <= 1 / np.sqrt(5)
    assert set(inputs) == {"x", "h0"} and inputs["x"].dtype == np.float32
    again, _ = bench.make_problem(bench.Case("gru", "latency", 1, 1, 4, 5, 2), seed=3)
    assert all(np.array_equal(weights[k], again[k]) for k in weights)


def test_parse_args():
    args = bench.parse_args(["--quick"])
    assert args.shapes == list(bench.QUICK_SHAPES) and args.rounds == bench.cli.QUICK_ROUNDS
    args = bench.parse_args(["--shapes", "100x1x64,5x2x3x4", "--threads", "1,2",
                             "--cells", "gru", "--modes", "training"])
    assert args.shapes == [(100, 1, 64), (5, 2, 3, 4)] and args.threads == [1, 2]
    for bad in (["--shapes", "10x2"], ["--cells", "xyz"], ["--engines", "nope"],
                ["--threads", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_compare_outputs():
    rng = np.random.default_rng(0)
    b = {"y": rng.standard_normal((3, 4)), "grad:w": 100 * rng.standard_normal(5)}
    assert bench.compare_outputs(b, b, 1e-4)["ok"]
    near = {k: v * (1 + 1e-6) for k, v in b.items()}
    result = bench.compare_outputs(near, b, 1e-4)
    assert result["ok"] and 0 < result["max_error"] < 1e-5
    off = dict(b, y=b["y"] + np.eye(3, 4) * 1e-2)
    result = bench.compare_outputs(off, b, 1e-4)
    assert not result["ok"] and result["worst"] == "y" and result["failed"] == ["y"]
    assert result["problems"][0].startswith("y: ")
    assert not bench.compare_outputs(dict(b, y=b["y"][:2]), b, 1e-4)["ok"]       # shape
    assert not bench.compare_outputs({"y": b["y"]}, b, 1e-4)["ok"]                # missing
    nan = dict(b, y=np.where(np.eye(3, 4, dtype=bool), np.nan, b["y"]))
    assert not bench.compare_outputs(nan, b, 1e-4)["ok"]


def test_onnx_graph_is_the_export_and_both_sessions_run_it():
    """The benchmark times fastrnn.onnx's export of the case's module (one
    implementation of the graph); onnxruntime and fastrnn.onnx's session both
    match the reference on it, inference and the latency step."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import fastrnn.onnx
    from fastrnn import reference
    from fastrnn._cell import Cell
    from fastrnn.bench.engines.ort_engines import _session_call
    for case in (bench.Case("gru", "inference", 4, 3, 5, 6, 1),
                 bench.Case("lstm", "latency", 1, 1, 3, 2, 1)):
        weights, inputs = bench.make_problem(case)
        model = bench.onnx_model(case, weights)     # the benchmark's one call site
        assert [n.op_type for n in model.graph.node] == [case.cell.upper(), "Squeeze"]
        state0 = tuple(inputs[s] for s in ("h0", "c0") if s in inputs) or None
        y_ref, state_ref, _ = reference.forward(Cell.make(case.cell), inputs["x"], state0,
                                                weights)
        for session in (ort.InferenceSession(model.SerializeToString(),
                                             providers=["CPUExecutionProvider"]),
                        fastrnn.onnx.InferenceSession(model)):
            prepared = _session_call(session, case, inputs)
            out = prepared.collect(prepared.call())
            if case.mode == "inference":
                assert np.allclose(out["y"], y_ref, atol=1e-5)
                assert np.allclose(out["h_n"], state_ref[0], atol=1e-5)
            else:
                assert np.allclose(out["h"], state_ref[0][0], atol=1e-5)
                assert np.allclose(out["c"], state_ref[1][0], atol=1e-5)


def test_smoke_run(tmp_path, capsys):
    out = tmp_path / "run.json"
    plot = tmp_path / "run.png"
    engines = "fastrnn,reference,torch,onnxruntime"
    status = bench.main(TINY + ["--engines", engines, "--json", str(out), "--plot", str(plot)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert status == 0, printed
    assert set(result) >= {"date", "command", "machine", "config", "gemm", "engines",
                           "engine_order", "cases", "ok"}
    assert result["machine"]["cores"] >= 1 and "numpy" in result["machine"]["versions"]
    assert result["gemm"]["flops_per_s"]["1"] > 0
    ready = result["engine_order"]
    assert "reference" in ready
    assert len(result["cases"]) == 3 * (1 + 1 + 1)
    for record in result["cases"]:
        assert record["flops"] > 0 and record["gemm_only_s"] > 0
        for name in ready:
            e = record["engines"][name]
            if e["status"] == "n/a":
                assert name == "onnxruntime" and record["case"]["mode"] == "training"
                continue
            assert e["status"] == "ok", e
            assert 1 <= len(e["rounds_s"]) <= 2 and e["median_s"] > 0 and e["reps"] >= 1
            if name != ready[0] and "check" in e:
                assert e["check"]["ok"] and e["check"]["against"] == ready[0]
    assert "LSTM, training, 1 thread" in printed and "GEMM peak" in printed
    try:
        import matplotlib  # noqa: F401
        assert plot.stat().st_size > 0
    except ImportError:
        assert not plot.exists()


def test_mismatch_fails_and_missing_engine_is_skipped(plugins, tmp_path, capsys):
    out = tmp_path / "run.json"
    args = TINY + ["--cells", "gru", "--modes", "inference,latency",
                   "--engines", f"reference,{plugins}:Broken,{plugins}:Missing",
                   "--json", str(out)]
    assert bench.main(args) == 1
    result = json.loads(out.read_text())
    assert result["engines"][f"{plugins}:Missing"]["status"] == "skipped"
    assert not result["ok"]
    for record in result["cases"]:
        e = record["engines"][f"{plugins}:Broken"]
        assert e["status"] == "mismatch" and not e["check"]["ok"]
        assert "median_s" not in e                          # nothing timed
    assert "MISMATCH" in capsys.readouterr().err

    assert bench.main(args + ["--keep-going"]) == 1          # timed anyway, still failing
    result = json.loads(out.read_text())
    assert all("median_s" in record["engines"][f"{plugins}:Broken"]
               for record in result["cases"])
    assert "!" in capsys.readouterr().out


def test_agreement_groups():
    y = np.arange(6.0).reshape(2, 3)
    outputs = {"fastrnn": {"y": y + 1}, "reference": {"y": y}, "torch": {"y": y * (1 + 1e-7)},
               "other": {"y": y + 1}}
    assert check.agreement_groups(outputs, 1e-4) == [["fastrnn", "other"],
                                                     ["reference", "torch"]]


# ---------------------------------------------------------------------------
# The engines at reduced precision

def test_reduced_precision_engines_registered():
    plain = engines.build_registry(frozen=False)
    assert list(plain)[:5] == ["fastrnn", "reference", "torch", "onnxruntime", "fastrnn.torch"]
    precisions = {name: cls.precision for name, cls in plain.items()}
    assert {n: p for n, p in precisions.items() if p} == {
        "torch.bfloat16": "bfloat16", "torch.int8": "int8", "onnxruntime.int8": "int8"}
    frozen = engines.build_registry(frozen=True)
    assert {n: frozen[n].precision for n in frozen if n not in plain} == {
        "fastrnn.frozen": None, "fastrnn.frozen.bfloat16": "bfloat16",
        "fastrnn.frozen.int8": "int8"}
    assert all(cls.modes == ("inference", "latency")
               for name, cls in frozen.items() if name not in plain or cls.precision)
    # the frozen engines are named where fastrnn.freeze exists, and only there
    assert ("fastrnn.frozen" in bench.ENGINES) == hasattr(fastrnn, "freeze")
    assert bench.engines_for("int8")[-2:] == ["torch.int8", "onnxruntime.int8"]
    assert bench.engines_for("bfloat16")[-1] == "torch.bfloat16"
    assert ("fastrnn.frozen.bfloat16" in bench.engines_for("bfloat16")) == hasattr(fastrnn,
                                                                                   "freeze")


def test_dynamic_quantize_lstm_check():
    """The ORT int8 engine's graph has a DynamicQuantizeLSTM node; a graph that
    quantize_dynamic leaves in float32 (GRU) is refused, its nodes named."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime.quantization")
    case = bench.Case("lstm", "inference", 2, 1, 3, 4, 1)
    quantized = reduced_engines.quantize_lstm_graph(bench.onnx_model(case, bench.make_problem(
        case)[0]))
    assert [n.op_type for n in quantized.graph.node] == ["DynamicQuantizeLSTM", "Squeeze"]
    gru = bench.Case("gru", "inference", 2, 1, 3, 4, 1)
    with pytest.raises(bench.Unsupported, match="no DynamicQuantizeLSTM node .*has GRU"):
        reduced_engines.quantize_lstm_graph(bench.onnx_model(gru, bench.make_problem(gru)[0]))


def _prepared_outputs(engine, case):
    weights, inputs = bench.make_problem(case)
    prepared = engine.prepare(case, weights, inputs)
    return prepared.collect(prepared.call())


def test_reduced_precision_engines_refuse_and_run():
    """In this process: each peer refuses what its library does not quantize, and
    runs the rest near float32 but not at it."""
    pytest.importorskip("torch")
    case = bench.Case("lstm", "inference", 3, 2, 4, 5, 1)
    fastrnn_engine = bench.FastrnnEngine()
    fastrnn_engine.load()
    torch_int8 = engines.TorchInt8Engine()
    torch_int8.load()
    rnn = bench.Case("rnn", "inference", 3, 2, 4, 5, 1)
    with pytest.raises(bench.Unsupported, match="no quantized nn.RNN"):
        torch_int8.prepare(rnn, *bench.make_problem(rnn))
    for engine in (torch_int8, engines.TorchBfloat16Engine()):
        engine.load()
        for c in (case, bench.Case("gru", "latency", 1, 1, 6, 6, 1)):
            expected = _prepared_outputs(fastrnn_engine, c)
            result = bench.compare_outputs(_prepared_outputs(engine, c), expected,
                                           check.REDUCED_TOLERANCE[engine.precision])
            assert result["ok"] and 1e-5 < result["max_error"], (engine, c, result)
    if importlib.util.find_spec("onnxruntime") is None:
        return
    ort_int8 = engines.OnnxRuntimeInt8Engine()
    ort_int8.load()
    gru = bench.Case("gru", "latency", 1, 1, 6, 6, 1)
    with pytest.raises(bench.Unsupported, match="quantizes LSTM only"):
        ort_int8.prepare(gru, *bench.make_problem(gru))
    result = bench.compare_outputs(_prepared_outputs(ort_int8, case),
                                   _prepared_outputs(fastrnn_engine, case), 5e-2)
    assert result["ok"] and 1e-5 < result["max_error"]


def test_int8_run_end_to_end(plugins, tmp_path, capsys):
    """``--precision int8 --quick``, small: the peers and the frozen engines (on
    fastrnn.freeze, or a stand-in where it is missing), each one's error
    beside its time, the cells a library does not quantize n/a with the reason."""
    out = tmp_path / "int8.json"
    names = ["fastrnn", f"{plugins}:StandInFrozen", f"{plugins}:StandInFrozenInt8",
             "torch.int8", "onnxruntime.int8"]
    status = bench.main(TINY + ["--cells", "lstm,gru", "--modes", "inference,latency",
                                "--precision", "int8", "--engines", ",".join(names),
                                "--json", str(out)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    result = json.loads(out.read_text())
    ran = result["engine_order"]
    assert ran[:3] == names[:3]
    for record in result["cases"]:
        frozen = record["engines"][names[1]]
        assert frozen["check"]["ok"] and "precision" not in frozen["check"]
        assert frozen["check"]["tolerance"] == bench.TOLERANCE["float32"]
        for name in ran[2:]:
            e = record["engines"][name]
            if name == "onnxruntime.int8" and record["case"]["cell"] == "gru":
                assert e["status"] == "n/a" and "LSTM only" in e["reason"]
                continue
            assert e["status"] == "ok" and e["median_s"] > 0, (name, e)
            assert e["check"]["precision"] == "int8" and e["check"]["against"] == "fastrnn"
            assert e["check"]["max_error"] < check.REDUCED_TOLERANCE["int8"]
            if name in ("torch.int8", "onnxruntime.int8"):          # really quantized
                assert e["check"]["max_error"] > 1e-4
    assert " err " in printed and "in int8 against the full-precision" in printed
    if "onnxruntime.int8" in ran:
        assert "n/a onnxruntime.int8: onnxruntime.quantization.quantize_dynamic " \
               "quantizes LSTM only (its GRU nodes stay float32)" in printed


@pytest.mark.skipif(not hasattr(fastrnn, "freeze"), reason="fastrnn.freeze is not built here")
def test_frozen_engines_run():
    """The registered frozen engines beside the module, at every precision."""
    for precision, names in (("float32", "fastrnn,fastrnn.frozen"),
                             ("bfloat16", "fastrnn,fastrnn.frozen.bfloat16"),
                             ("int8", "fastrnn,fastrnn.frozen.int8")):
        assert bench.main(TINY + ["--cells", "lstm", "--modes", "inference,latency",
                                  "--precision", precision, "--engines", names]) == 0
