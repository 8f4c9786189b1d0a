"""fastrnn.__version__, cpu_features() and show_config(): what a bug report shows."""

import importlib.metadata
import io
import os
import pathlib
import re
import types

import pytest

import fastrnn
from fastrnn import _config, _core

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni")


@pytest.fixture
def packed_restored():
    isa = _core.packed_isa()
    yield
    _core.set_packed(isa or False)


def test_version_is_one_string_from_one_place():
    from fastrnn._version import __version__

    assert fastrnn.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([abc]\d+|rc\d+)?(\.post\d+)?(\.dev\d+)?", __version__)


def test_version_matches_the_installed_metadata():
    try:
        dist = importlib.metadata.distribution("fastrnn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastrnn runs from a build in place, without package metadata")
    installed = pathlib.Path(dist.locate_file("fastrnn/__init__.py")).resolve()
    if installed != pathlib.Path(fastrnn.__file__).resolve():
        pytest.skip("the fastrnn metadata found belongs to another copy (an editable install?)")
    assert dist.version == fastrnn.__version__


def test_openmp_build_is_what_ci_asked_for():
    # .ci/package sets FASTRNN_EXPECT_OPENMP for each build it tests.
    expected = os.environ.get("FASTRNN_EXPECT_OPENMP")
    if expected not in ("0", "1"):
        pytest.skip("FASTRNN_EXPECT_OPENMP is not set to 0 or 1")
    assert fastrnn.openmp_enabled() is (expected == "1")
    assert fastrnn.show_config(file=io.StringIO())["openmp"]["enabled"] is (expected == "1")


def test_cpu_features_names_and_kernels(packed_restored):
    features = fastrnn.cpu_features()
    assert set(features) == set(FLAGS) | {"kernels"}
    assert all(type(features[name]) is bool for name in FLAGS)
    assert features["kernels"] == {"float32": _core.packed_isa() or "blas",
                                   "float64": "blas", **_core.lowp_paths()}
    if features["kernels"]["float32"] == "avx512":
        assert features["avx512f"]
    if features["kernels"]["float32"] == "avx2":
        assert features["avx2"] and features["fma"] and not features["avx512f"]
    _core.set_packed(False)
    assert fastrnn.cpu_features()["kernels"]["float32"] == "blas"


def test_cpu_features_agree_with_proc_cpuinfo():
    flags = _config._cpuinfo()[1]
    if not flags:
        pytest.skip("no /proc/cpuinfo here")
    features = fastrnn.cpu_features()
    for name in ("avx2", "fma", "avx512f"):
        assert features[name] is (name in flags), name


def test_cpu_features_read_proc_cpuinfo_or_nothing(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n"
                       "flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    real = _config._cpuinfo
    monkeypatch.setattr(_config, "_core", types.SimpleNamespace(packed_isa=lambda: None))
    monkeypatch.setattr(_config, "_cpuinfo", lambda: real(cpuinfo))
    assert real(cpuinfo)[0] == "Some CPU"
    features = fastrnn.cpu_features()
    assert {name for name in FLAGS if features[name]} == {"avx2", "fma", "avx512f", "avx512_vnni"}
    assert features["kernels"] == {"float32": "blas", "float64": "blas",
                                   "bfloat16": "portable", "int8": "portable"}

    monkeypatch.setattr(_config, "_cpuinfo", lambda: real(tmp_path / "missing"))
    features = fastrnn.cpu_features()
    assert not any(features[name] for name in FLAGS)
    assert _config._cpu_flags()[1].startswith("unknown")


def test_cpu_features_prefer_the_cores_own_flags(monkeypatch):
    fake_core = types.SimpleNamespace(
        packed_isa=lambda: "avx512", openmp_enabled=lambda: True,
        cpu_flags=lambda: {"avx2": True, "fma": 1, "avx512f": True, "avx_vnni": False})
    monkeypatch.setattr(_config, "_core", fake_core)
    features = fastrnn.cpu_features()
    assert features == {"avx2": True, "fma": True, "avx512f": True, "avx512_bf16": False,
                        "avx512_vnni": False, "avx_vnni": False,
                        "kernels": {"float32": "avx512", "float64": "blas",
                                    "bfloat16": "portable", "int8": "portable"}}
    assert fastrnn.show_config(file=io.StringIO())["cpu"]["flags_from"] == "fastrnn._core.cpu_flags()"


def test_show_config_prints_and_returns_a_report(capsys):
    config = fastrnn.show_config()
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == f"fastrnn {fastrnn.__version__}"
    assert config["version"] == fastrnn.__version__
    assert config["openmp"]["enabled"] is fastrnn.openmp_enabled()
    assert config["cpu"]["features"] == fastrnn.cpu_features()
    for key in ("numpy", "scipy", "threadpoolctl"):
        assert config["versions"][key] == importlib.metadata.version(key)
        assert f"{key}: {config['versions'][key]}" in printed
    # _core imported, so SciPy's BLAS reads the kernels' 32-bit integers.
    assert config["blas"]["kernel_int_bits"] == 32
    assert config["blas"]["int_bits"] in (32, None)
    assert config["threads"]["num_threads"] == fastrnn.get_num_threads()
    for precision, path in config["cpu"]["features"]["kernels"].items():
        assert f"{precision}: {path}" in printed


def test_show_config_prints_to_the_file_given(capsys):
    out = io.StringIO()
    fastrnn.show_config(file=out)
    assert capsys.readouterr().out == ""
    assert out.getvalue().startswith(f"fastrnn {fastrnn.__version__}\n")


def test_show_config_says_where_the_thread_count_came_from():
    def source():
        return fastrnn.show_config(file=io.StringIO())["threads"]

    default = fastrnn.get_num_threads()
    assert "when fastrnn was imported" in source()["source"]
    with fastrnn.threads(default + 1):
        assert source()["num_threads"] == default + 1
        assert "fastrnn.threads" in source()["source"]
    fastrnn.set_num_threads(default + 2)
    try:
        assert source()["num_threads"] == default + 2
        assert source()["source"] == "fastrnn.set_num_threads"
    finally:
        fastrnn.set_num_threads(default)
    assert "when fastrnn was imported" in source()["source"]
