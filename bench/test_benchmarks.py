"""The cases of ``python -m fastrnn.bench`` under pytest-benchmark.

One test per engine x case (cell, mode, shape, threads), grouped by case so
that pytest-benchmark's table sets the engines side by side.  Unlike the
command line, every engine runs in this one process, one after the other, so
their thread pools may linger into each other's timings: the command line's
figures (a process per engine, interleaved rounds, medians) are the ones to
quote.  ``pytest bench/ --benchmark-disable`` calls each case once (a smoke
test, on the quick grid).
"""

import pytest

from fastrnn import bench

pytest.importorskip("pytest_benchmark")


def test_engine(benchmark, load_engine, engine_name, bench_case):
    engine = load_engine(engine_name)
    weights, inputs = bench.make_problem(bench_case)
    try:
        prepared = engine.prepare(bench_case, weights, inputs)
    except bench.Unsupported as e:
        pytest.skip(str(e))
    benchmark.group = f"{bench_case.cell} {bench_case.mode} {bench_case.shape} " \
                      f"{bench_case.threads}t"
    benchmark.extra_info.update(engine=engine_name, flops=bench_case.flops,
                                **{k: getattr(bench_case, k) for k in
                                   ("cell", "mode", "T", "N", "I", "H", "threads", "dtype")})
    result = benchmark(prepared.call)
    outputs = prepared.collect(result)
    assert outputs, "the engine returned nothing"
