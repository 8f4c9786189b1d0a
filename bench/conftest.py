"""Parametrisation of the pytest-benchmark twins of ``python -m fastrnn.bench``.

``pytest bench/`` times the default grid; with ``--benchmark-disable`` (the
CI smoke run: every case called once) or ``--bench-quick`` it takes the
grid's quick shapes.  ``--bench-grid serving`` takes the serving grid,
``--bench-precision`` adds the engines of a reduced precision, and
``--bench-engines`` narrows the engines (default those of the precision;
those not installed are skipped).
"""

import pytest

from fastrnn import bench


def pytest_addoption(parser):
    group = parser.getgroup("fastrnn bench")
    group.addoption("--bench-quick", action="store_true",
                    help="the quick shapes of the grid, as python -m fastrnn.bench --quick")
    group.addoption("--bench-grid", default="default", choices=list(bench.GRIDS),
                    help="the grid of python -m fastrnn.bench --grid (default: default)")
    group.addoption("--bench-precision", default="float32", choices=bench.PRECISIONS,
                    help="as python -m fastrnn.bench --precision (default float32)")
    group.addoption("--bench-engines", default=None,
                    help="comma-separated engines (default: all of the precision)")


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
    grid = bench.GRIDS[config.getoption("bench_grid")]
    shapes = grid.quick_shapes if _quick(config) else grid.shapes
    threads = sorted({1, bench.all_cores()})
    cases = bench.build_cases(grid.cells, shapes, grid.modes, threads)
    names = config.getoption("bench_engines")
    names = ([n.strip() for n in names.split(",") if n.strip()] if names is not None
             else bench.engines_for(config.getoption("bench_precision")))
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
