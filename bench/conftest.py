"""Parametrisation of the pytest-benchmark twins of ``python -m fastrnn.bench``.

``pytest bench/`` times the default grid; with ``--benchmark-disable`` (the
CI smoke run: every case called once) or ``--bench-quick`` it takes the quick
grid.  ``--bench-engines`` narrows the engines (default all of them; those
not installed are skipped).
"""

import pytest

from fastrnn import bench


def pytest_addoption(parser):
    group = parser.getgroup("fastrnn bench")
    group.addoption("--bench-quick", action="store_true",
                    help="the quick grid of python -m fastrnn.bench --quick")
    group.addoption("--bench-engines", default=",".join(bench.ENGINES),
                    help="comma-separated engines (default: all)")


def _quick(config):
    try:
        disabled = config.getoption("benchmark_disable")
    except ValueError:              # pytest-benchmark is not installed
        disabled = True
    return disabled or config.getoption("bench_quick")


def pytest_generate_tests(metafunc):
    if "bench_case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    shapes = bench.QUICK_SHAPES if _quick(config) else bench.DEFAULT_SHAPES
    threads = sorted({1, bench.all_cores()})
    cases = bench.build_cases(bench.CELLS, shapes, bench.MODES, threads)
    names = [n.strip() for n in config.getoption("bench_engines").split(",") if n.strip()]
    params = [pytest.param(name, case, id=f"{name}-{case.cell}-{case.mode}-"
                                         f"{case.shape.replace(' ', '')}-{case.threads}t")
              for case in cases for name in names
              if case.mode in bench.engine_class(name).modes]
    metafunc.parametrize(("engine_name", "bench_case"), params)


_engines = {}


@pytest.fixture(scope="session")
def load_engine():
    """Load an engine once per session; skip the test when it is not installed."""
    def load(name):
        if name not in _engines:
            engine = bench.engine_class(name)()
            try:
                engine.load()
                _engines[name] = engine
            except Exception as e:          # not installed, or not built yet
                _engines[name] = f"{type(e).__name__}: {e}"
        engine = _engines[name]
        if isinstance(engine, str):
            pytest.skip(f"{name} unavailable: {engine}")
        return engine
    return load
