"""The benchmark harness itself (``fastrnn.bench``): its grid, its numerical
check and a tiny end-to-end run.  No timing is asserted."""

import json
import textwrap

import numpy as np
import pytest

from fastrnn import bench

# A tiny grid: I != H catches transposed weights; every cell, mode and engine.
TINY = ["--quick", "--shapes", "3x2x4x5", "--threads", "1", "--rounds", "2",
        "--target-time", "0.001", "--step-size", "6", "--gemm-size", "64"]

PLUGINS = '''
from fastrnn.bench import Prepared, ReferenceEngine


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
    assert args.shapes == list(bench.QUICK_SHAPES) and args.rounds == bench.QUICK_ROUNDS
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


def test_onnx_graph_gate_order():
    pytest.importorskip("onnx")
    case = bench.Case("lstm", "inference", 2, 1, 3, 2, 1)
    weights, _ = bench.make_problem(case)
    model = bench.onnx_model(case, weights)
    from onnx import numpy_helper
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w_ih = weights["weight_ih_l0"]            # torch: i, f, g, o; ONNX: i, o, f, c
    assert np.array_equal(init["W"][0], np.concatenate([w_ih[0:2], w_ih[6:8], w_ih[2:4],
                                                        w_ih[4:6]]))
    assert init["B"].shape == (1, 16)


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
    assert bench._agreement_groups(outputs, 1e-4) == [["fastrnn", "other"],
                                                      ["reference", "torch"]]
