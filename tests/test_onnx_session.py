"""fastrnn.onnx.InferenceSession's prepared calls: folded plumbing, plans, outputs.

The plumbing a session folds into views of a recurrent node's output must
give the arrays that evaluating each node would; the arrays a call hands
back are new, writeable, C-contiguous and the caller's alone, whatever the
graph routes where; a plan for some outputs gives what the full graph gives.
"""

import itertools

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import fastrnn  # noqa: E402
import fastrnn.onnx as fo  # noqa: E402
from fastrnn.onnx import _views  # noqa: E402
from fastrnn.onnx.graph import Graph, Node, RECURRENT  # noqa: E402
from fastrnn.onnx.ops import evaluate  # noqa: E402
from fastrnn.onnx.recurrent import Layer, Spec  # noqa: E402


def interpret(model, feeds):
    """Every node of ``model`` evaluated on its own, in order (no folding, no plan)."""
    graph = Graph(model)
    env = dict(graph.constants, **graph.defaults, **feeds)
    for node in graph.nodes:
        if node.op not in RECURRENT:
            values = evaluate(node, [env[n] if n else None for n in node.inputs], graph.opset)
            env.update((n, v) for n, v in zip(node.outputs, values) if n)
            continue
        spec = Spec(node)
        get = {k: env[n] for k, n in spec.inputs.items()}
        layer = Layer(spec, get["W"], get["R"], get.get("B"), get.get("P"))
        lengths = get.get("sequence_lens")
        lengths = None if lengths is None else lengths.astype(np.int64)
        y, h_n, c_n = layer.run(get["X"], lengths, get.get("initial_h"), get.get("initial_c"),
                                fastrnn.get_num_threads())
        T, N = y.shape[:2]
        Y = y.reshape(T, N, spec.n_dirs, layer.hidden_size)
        Y = Y.transpose(1, 0, 2, 3) if spec.layout else Y.transpose(0, 2, 1, 3)
        env.update((n, v) for n, v in zip(node.outputs, (Y, h_n, c_n)) if n)
    return [env[v.name] for v in graph.outputs]


MODULES = [
    lambda: fastrnn.LSTM(3, 5, seed=0),
    lambda: fastrnn.GRU(3, 5, bidirectional=True, seed=1),
    lambda: fastrnn.RNN(3, 5, num_layers=2, batch_first=True, seed=2),
    lambda: fastrnn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True, seed=3),
]


@pytest.mark.parametrize("make", MODULES, ids=["lstm", "gru-bi", "rnn-2-bf", "lstm-2-bi-bf"])
@pytest.mark.parametrize("initial_state,lengths", [(False, False), (True, False), (True, True)])
def test_folded_plumbing_gives_what_each_node_gives(make, initial_state, lengths):
    module = make()
    model = fo.to_model(module, initial_state=initial_state, lengths=lengths)
    session = fo.InferenceSession(model)
    rng = np.random.default_rng(0)
    L, D = module.num_layers, 2 if module.bidirectional else 1
    for T, N in ((1, 1), (4, 3), (2, 1), (1, 2)):
        x = rng.standard_normal((N, T, 3) if module.batch_first else (T, N, 3))
        feeds = {"x": x.astype(np.float32)}
        if initial_state:
            for s in (["h0", "c0"] if isinstance(module, fastrnn.LSTM) else ["h0"]):
                feeds[s] = rng.standard_normal((L * D, N, 5)).astype(np.float32)
        if lengths:
            feeds["lengths"] = rng.integers(0, T + 1, N).astype(np.int32)
        got, want = session.run(None, feeds), interpret(model, feeds)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
        if not lengths:             # and what the module gives
            state0 = None
            if initial_state:
                state0 = ((feeds["h0"], feeds["c0"]) if isinstance(module, fastrnn.LSTM)
                          else feeds["h0"])
            y = module(feeds["x"], state0)[0]
            np.testing.assert_allclose(got[0], y, rtol=1e-5, atol=1e-6)


def test_exported_plumbing_is_folded():
    """export's Squeeze, and its Transpose + Reshape joining directions, run as views."""
    for module in (fastrnn.LSTM(3, 5), fastrnn.GRU(3, 5, bidirectional=True)):
        session = fo.InferenceSession(fo.to_model(module))
        kinds = [type(step).__name__ for step in session._all.steps]
        assert kinds == ["_RecurrentStep", "_ViewStep"]
        assert session._all.steps[1].view.plain       # y is the kernel's output itself


# Nodes a view may absorb, each (op, attrs, extra constant inputs) at opset 13.
I64 = np.int64
FOLD_CASES = [
    ("Identity", {}, []),
    ("Transpose", {"perm": [0, 2, 1, 3]}, []),
    ("Transpose", {"perm": [1, 0, 2]}, []),
    ("Transpose", {}, []),
    ("Squeeze", {}, [np.array([1], I64)]),
    ("Squeeze", {}, [np.array([-3], I64)]),
    ("Squeeze", {}, [np.array([0], I64)]),
    ("Squeeze", {}, []),
    ("Unsqueeze", {}, [np.array([0, -1], I64)]),
    ("Unsqueeze", {}, [np.array([2], I64)]),
    ("Reshape", {}, [np.array([0, 0, -1], I64)]),
    ("Reshape", {}, [np.array([0, 0, 10], I64)]),
    ("Reshape", {}, [np.array([0, -1], I64)]),
    ("Reshape", {}, [np.array([-1, 5], I64)]),
    ("Reshape", {}, [np.array([0, 0, 2, 5], I64)]),
]


def _node(op, attrs, extra):
    names = ["data"] + [f"c{k}" for k in range(len(extra))]
    return Node(helper.make_node(op, names, ["out"], **attrs), 0)


@pytest.mark.parametrize("n_dirs,layout", [(1, 0), (2, 0), (1, 1), (2, 1)])
def test_fold_matches_evaluate(n_dirs, layout):
    """Chains of up to three nodes: where fold gives a view, it is evaluate's array."""
    H = 5
    start = _views.recurrent_output(n_dirs, H, layout)
    folded = 0
    for chain in itertools.product(range(len(FOLD_CASES)), repeat=2):
        for T, N in ((1, 1), (3, 2), (2, 1)):
            y = np.arange(T * N * n_dirs * H, dtype=np.float32).reshape(T, N, n_dirs * H)
            view, value = start, start.apply(y)
            for k in chain:
                op, attrs, extra = FOLD_CASES[k]
                node = _node(op, attrs, extra)
                view = _views.fold(view, node, [None] + extra, 13)
                try:
                    value = evaluate(node, [value] + extra, 13)[0]
                except ValueError:
                    value = None
                if view is None:
                    break
                assert value is not None, (chain, T, N)   # folded only what always runs
                got = view.apply(y)
                assert got.shape == value.shape, (chain, T, N)
                np.testing.assert_array_equal(got, value)
                folded += 1
    assert folded > 100


def _feeds(rng, T=3, N=2, I=3, H=5, states=("h0", "c0")):
    feeds = {"x": rng.standard_normal((T, N, I)).astype(np.float32)}
    feeds.update((s, rng.standard_normal((1, N, H)).astype(np.float32)) for s in states)
    return feeds


def _assert_owned(outputs, feeds):
    for k, out in enumerate(outputs):
        assert out.flags.c_contiguous and out.flags.writeable
        for other in list(feeds.values()) + outputs[k + 1:]:
            assert not np.shares_memory(out, other)


def test_outputs_are_new_arrays_the_caller_owns():
    module = fastrnn.LSTM(3, 5, seed=0)
    session = fo.InferenceSession(fo.to_model(module, initial_state=True))
    feeds = _feeds(np.random.default_rng(1))
    given = {k: v.copy() for k, v in feeds.items()}
    first = session.run(None, feeds)
    _assert_owned(first, feeds)
    kept = [a.copy() for a in first]
    for a in first:
        a[...] = 7                  # the caller's to change: the next call is unaffected
    again = session.run(None, feeds)
    for a, b in zip(again, kept):
        np.testing.assert_array_equal(a, b)
    same = feeds["h0"]              # one array fed twice
    twice = session.run(["y", "y", "h_n", "c_n"], dict(feeds, c0=same))
    _assert_owned(twice, dict(feeds, c0=same))
    np.testing.assert_array_equal(twice[0], twice[1])
    for name, value in given.items():  # the feeds are left as they were
        np.testing.assert_array_equal(feeds[name], value)


def test_outputs_routed_to_inputs_and_constants_are_copied():
    """Outputs that are a feed, a constant, a view of a feed or one kernel output twice."""
    W = np.random.default_rng(2).standard_normal((1, 4, 3)).astype(np.float32)
    R = np.random.default_rng(3).standard_normal((1, 4, 4)).astype(np.float32)
    nodes = [helper.make_node("RNN", ["x", "W", "R"], ["Y", "Y_h"], hidden_size=4),
             helper.make_node("Identity", ["x"], ["x_copy"]),
             helper.make_node("Identity", ["W"], ["W_out"]),
             helper.make_node("Transpose", ["x"], ["x_t"], perm=[1, 0, 2]),
             helper.make_node("Squeeze", ["Y", "one"], ["y"]),
             helper.make_node("Identity", ["y"], ["y_again"])]
    outs = ["Y", "Y_h", "x_copy", "W_out", "x_t", "y", "y_again"]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "N", 3])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
         numpy_helper.from_array(np.array([1], np.int64), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = fo.InferenceSession(model)
    feeds = {"x": np.random.default_rng(4).standard_normal((2, 3, 3)).astype(np.float32)}
    got = session.run(None, feeds)
    _assert_owned(got, feeds)
    for g, w in zip(got, interpret(model, feeds)):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(got[3], W)
    got[3][...] = 0                 # not the model's weights
    np.testing.assert_array_equal(session.run(["W_out"], feeds)[0], W)


def test_plans_for_some_outputs_match_the_full_run():
    module = fastrnn.GRU(3, 5, num_layers=2, bidirectional=True, seed=4)
    session = fo.InferenceSession(fo.to_model(module, initial_state=True, lengths=True))
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal((4, 2, 3)).astype(np.float32),
             "h0": rng.standard_normal((4, 2, 5)).astype(np.float32),
             "lengths": np.array([4, 0], np.int32)}
    y, h_n = session.run(None, feeds)
    for names in (["h_n"], ["y"], ("h_n", "y"), ["h_n", "h_n"]):
        got = session.run(names, feeds)
        for name, g in zip(names, got):
            np.testing.assert_array_equal(g, {"y": y, "h_n": h_n}[name])
    assert len(session._plan_for(["h_n"]).steps) < len(session._all.steps)   # no y view
    with pytest.raises(TypeError, match="output_names"):
        session.run("h_n", feeds)
    with pytest.raises(ValueError, match=r"unknown outputs \[\['y'\]\]"):
        session.run([["y"]], feeds)


def test_fed_weights_without_hidden_size():
    """Y from weights known only at the call (no hidden_size attribute)."""
    rng = np.random.default_rng(6)
    W = rng.standard_normal((2, 12, 3)).astype(np.float32)
    R = rng.standard_normal((2, 12, 4)).astype(np.float32)
    node = helper.make_node("GRU", ["X", "W", "R"], ["Y"], direction="bidirectional")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                      for n in ("X", "W", "R")],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"X": rng.standard_normal((3, 2, 3)).astype(np.float32), "W": W, "R": R}
    Y, = fo.run(model, feeds)
    assert Y.shape == (3, 2, 2, 4) and Y.flags.c_contiguous
    np.testing.assert_array_equal(Y, interpret(model, feeds)[0])
