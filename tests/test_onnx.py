"""fastrnn.onnx: export, run, InferenceSession and load, against onnxruntime and the reference.

Random single-node models over every attribute and optional input against
onnxruntime (where it runs them: layout 0, float32) and against an oracle
built on ``fastrnn.reference`` (layout 1 and float64 too); the ONNX backend
node tests; export -> onnxruntime -> load round trips; a recurrent layer
taken out of a larger graph; malformed models and feeds.  Run with ``-s`` to
see the largest difference against onnxruntime per operator.
"""

import importlib
import io
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import fastrnn  # noqa: E402
import fastrnn.onnx as fo  # noqa: E402
from fastrnn import reference  # noqa: E402
from fastrnn._cell import Cell  # noqa: E402

try:
    import onnxruntime as ort
except ImportError:
    ort = None

needs_ort = pytest.mark.skipif(ort is None, reason="onnxruntime is not installed")

OPS = ("RNN", "LSTM", "GRU")
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
N_ACTS = {"RNN": 1, "LSTM": 3, "GRU": 2}
ACTS = ("Sigmoid", "Tanh", "Relu", "HardSigmoid", "LeakyRelu", "ThresholdedRelu",
        "ScaledTanh", "Affine", "Elu", "Softsign", "Softplus")
# The ONNX operators' defaults (alpha, beta), written out here independently.
SPEC_DEFAULTS = {"HardSigmoid": (0.2, 0.5), "LeakyRelu": (0.01, None),
                 "ThresholdedRelu": (1.0, None), "ScaledTanh": (1.0, 1.0),
                 "Affine": (1.0, 0.0), "Elu": (1.0, None)}
# ONNX gate order -> torch gate order, as block indices into ONNX's blocks.
TO_TORCH = {"RNN": [0], "LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
DIFFS = {}          # op -> largest |fastrnn - onnxruntime| / max(1, |onnxruntime|) seen


@pytest.fixture(scope="module", autouse=True)
def report_diffs():
    yield
    if DIFFS:
        print("\nlargest differences against onnxruntime (over max(1, |value|)):")
        for op in sorted(DIFFS):
            print(f"  {op:5s} {DIFFS[op]:.2e}")


def ort_run(model, feeds, names=None):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(names, feeds)


def assert_close(got, want, tol, key=None):
    assert got.shape == want.shape and got.dtype == want.dtype
    err = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    if key is not None:
        DIFFS[key] = max(DIFFS.get(key, 0.0), err / scale)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


# ---------------------------------------------------------------------------
# One node models, and an oracle for them built on fastrnn.reference

def node_model(op, attrs, feeds, outputs, opset=22):
    """A one-node model whose graph inputs are ``feeds`` (name -> array or None)."""
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    names = names[:8 if op == "LSTM" else 6]
    ins = [n if feeds.get(n) is not None else "" for n in names]
    while ins[-1] == "":
        ins.pop()
    graph_inputs = [helper.make_tensor_value_info(
        n, helper.np_dtype_to_tensor_dtype(feeds[n].dtype), list(feeds[n].shape))
        for n in ins if n]
    outs = [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")[:3 if op == "LSTM" else 2]]
    while outs[-1] == "":
        outs.pop()
    elem = helper.np_dtype_to_tensor_dtype(feeds["X"].dtype)
    node = helper.make_node(op, ins, outs, name="rec", **attrs)
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, elem, None) for o in outs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def oracle(op, attrs, feeds):
    """Y, Y_h, Y_c as the operator spec defines them (ONNX Runtime's zeros for length 0)."""
    G, k = GATES[op], N_ACTS[op]
    layout, direction = attrs.get("layout", 0), attrs.get("direction", "forward")
    X, W, R = feeds["X"], feeds["W"], feeds["R"]
    B, P, lens = feeds.get("B"), feeds.get("P"), feeds.get("sequence_lens")
    h0, c0 = feeds.get("initial_h"), feeds.get("initial_c")
    if layout:
        X = X.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        c0 = None if c0 is None else c0.transpose(1, 0, 2)
    D, H = W.shape[0], R.shape[2]
    T, N, _ = X.shape
    defaults = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"],
                "GRU": ["Sigmoid", "Tanh"]}[op] * D
    names = attrs.get("activations", defaults)
    alphas, betas = iter(attrs.get("activation_alpha", [])), iter(attrs.get("activation_beta", []))
    a_all, b_all = [], []
    for name in names:
        da, db = SPEC_DEFAULTS.get(name, (None, None))
        a_all.append([] if da is None else [next(alphas, da)])
        b_all.append([] if db is None else [next(betas, db)])

    def blocks(a, n, order):
        parts = np.split(a, n)
        return np.concatenate([parts[j] for j in order])

    cells, params = [], {}
    for d in range(D):
        s = slice(d * k, (d + 1) * k)
        cells.append(Cell.make(op.lower(), activations=names[s], alphas=sum(a_all[s], []),
                               betas=sum(b_all[s], []), clip=attrs.get("clip"),
                               input_forget=attrs.get("input_forget", 0),
                               linear_before_reset=attrs.get("linear_before_reset", 0)))
        w = {"weight_ih": blocks(W[d], G, TO_TORCH[op]), "weight_hh": blocks(R[d], G, TO_TORCH[op])}
        if B is not None:
            w["bias_ih"] = blocks(B[d][:G * H], G, TO_TORCH[op])
            w["bias_hh"] = blocks(B[d][G * H:], G, TO_TORCH[op])
        if P is not None:
            w["weight_peephole"] = blocks(P[d], 3, [0, 2, 1])
        params.update({f"{name}_l0{'_reverse' if d else ''}": v for name, v in w.items()})
    state0 = [np.zeros((D, N, H), X.dtype) if h0 is None else h0]
    if op == "LSTM":
        state0.append(np.zeros((D, N, H), X.dtype) if c0 is None else c0)
    if direction == "reverse":          # the reverse half of a bidirectional stack
        cells = cells * 2
        params.update({f"{name}_reverse": v for name, v in params.items()})
        state0 = [np.concatenate([s, s]) for s in state0]
    y, state_n, _ = reference.forward(cells, X, tuple(state0), params,
                                      bidirectional=len(cells) == 2, lengths=lens)
    if direction == "reverse":
        y, state_n = y[:, :, H:], tuple(s[1:] for s in state_n)
    Y = y.reshape(T, N, D, H).transpose(0, 2, 1, 3)
    Y_h, Y_c = state_n[0], state_n[-1]
    if lens is not None:
        Y_h[:, lens == 0] = 0
        Y_c[:, lens == 0] = 0
    if layout:
        Y, Y_h, Y_c = Y.transpose(2, 0, 1, 3), Y_h.transpose(1, 0, 2), Y_c.transpose(1, 0, 2)
    return {"Y": Y, "Y_h": Y_h, "Y_c": Y_c}


def f32(values):
    """Floats as a model stores them (attributes are float32)."""
    return [float(v) for v in np.asarray(values, np.float32)]


def random_case(rng, op, *, layout=0, dtype=np.float32, explicit_params=True):
    """Attributes, feeds and outputs of a random node: every option drawn."""
    T, N, I, H = (int(v) for v in rng.integers(1, 6, 4))
    direction = str(rng.choice(["forward", "reverse", "bidirectional"]))
    D = 2 if direction == "bidirectional" else 1
    G, k = GATES[op], N_ACTS[op]
    attrs = {"hidden_size": H}
    if direction != "forward" or rng.random() < 0.5:
        attrs["direction"] = direction
    if layout:
        attrs["layout"] = 1
    if rng.random() < 0.6:
        names = [str(a) for a in rng.choice(ACTS, k * D)]
        attrs["activations"] = names
        takes_a = [n for n in names if n in SPEC_DEFAULTS]
        takes_b = [n for n in names if SPEC_DEFAULTS.get(n, (0, None))[1] is not None]
        if explicit_params or rng.random() < 0.5:
            if takes_a:
                attrs["activation_alpha"] = f32(rng.uniform(0.1, 1.5, len(takes_a)))
            if takes_b:
                attrs["activation_beta"] = f32(rng.uniform(-0.5, 0.8, len(takes_b)))
    if rng.random() < 0.3:
        attrs["clip"] = f32([rng.uniform(0.2, 2.0)])[0]
    if op == "LSTM" and rng.random() < 0.3:
        attrs["input_forget"] = 1
    if op == "GRU":
        attrs["linear_before_reset"] = int(rng.integers(0, 2))

    def arr(*shape, scale=0.6):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    batch = (N, T, I) if layout else (T, N, I)
    state = (N, D, H) if layout else (D, N, H)
    feeds = {"X": arr(*batch, scale=1.0), "W": arr(D, G * H, I), "R": arr(D, G * H, H)}
    if rng.random() < 0.7:
        feeds["B"] = arr(D, 2 * G * H)
    if rng.random() < 0.5:
        feeds["sequence_lens"] = rng.integers(0, T + 1, N).astype(np.int32)
    if rng.random() < 0.5:
        feeds["initial_h"] = arr(*state, scale=1.0)
    if op == "LSTM":
        if rng.random() < 0.5:
            feeds["initial_c"] = arr(*state, scale=1.0)
        if rng.random() < 0.5:
            feeds["P"] = arr(D, 3 * H)
    outputs = [o for o in ("Y", "Y_h", "Y_c")[:3 if op == "LSTM" else 2] if rng.random() < 0.7]
    return attrs, feeds, outputs or ["Y"]


@needs_ort
@pytest.mark.parametrize("op", OPS)
def test_random_nodes_against_onnxruntime(op):
    rng = np.random.default_rng(OPS.index(op))
    for _ in range(40):
        attrs, feeds, outputs = random_case(rng, op)
        model = node_model(op, attrs, feeds, outputs)
        want = ort_run(model, feeds)
        got = fo.run(model, feeds)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, 1e-5, key=op)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("op", OPS)
def test_random_nodes_against_reference(op, layout, dtype):
    """Layout 1 and float64 (which onnxruntime refuses) against the spec's oracle;
    activation parameters sometimes left to the ONNX defaults."""
    rng = np.random.default_rng(10 + OPS.index(op) + 3 * layout)
    tol = 1e-10 if dtype == np.float64 else 1e-5
    for _ in range(15):
        attrs, feeds, outputs = random_case(rng, op, layout=layout, dtype=dtype,
                                            explicit_params=False)
        model = node_model(op, attrs, feeds, outputs)
        got = dict(zip([o.name for o in model.graph.output], fo.run(model, feeds)))
        want = oracle(op, attrs, feeds)
        for name, value in got.items():
            assert_close(value, want[name].astype(dtype), tol)


# ---------------------------------------------------------------------------
# The ONNX backend node tests

def backend_node_cases():
    # The recurrent operators' own case modules: the same cases as
    # onnx.backend.test.loader.load_model_tests(kind="node") filtered by name,
    # without generating every other operator's.
    for name in ("rnn", "lstm", "gru"):
        importlib.import_module(f"onnx.backend.test.case.node.{name}")
    from onnx.backend.test.case.node import _NodeTestCases
    return [t for t in _NodeTestCases if any(k in t.name for k in ("rnn", "lstm", "gru"))]


BACKEND_CASES = backend_node_cases()


def test_backend_node_cases_found():
    assert len(BACKEND_CASES) >= 18


@pytest.mark.parametrize("case", BACKEND_CASES, ids=lambda t: t.name)
def test_backend_node(case):
    names = [i.name for i in case.model.graph.input]
    for inputs, outputs in case.data_sets:
        got = fo.run(case.model, dict(zip(names, inputs)))
        assert len(got) == len(outputs)
        for g, w in zip(got, outputs):
            np.testing.assert_allclose(g, w, rtol=case.rtol, atol=case.atol)


# ---------------------------------------------------------------------------
# Export, onnxruntime, load

MODULES = [
    lambda: fastrnn.RNN(4, 6, seed=1),
    lambda: fastrnn.RNN(4, 6, num_layers=2, nonlinearity="relu", bidirectional=True, seed=2),
    lambda: fastrnn.RNN(4, 6, bias=False, batch_first=True, activations=["LeakyRelu"],
                        activation_alpha=[0.3], seed=3),
    lambda: fastrnn.LSTM(4, 6, seed=4),
    lambda: fastrnn.LSTM(4, 6, num_layers=3, batch_first=True, bidirectional=True, seed=5),
    lambda: fastrnn.LSTM(4, 6, peepholes=True, cell_clip=0.7, seed=6),
    lambda: fastrnn.LSTM(4, 6, 2, input_forget=True, bias=False, peepholes=True, seed=7),
    lambda: fastrnn.LSTM(4, 6, bidirectional=True, activations=["HardSigmoid", "Tanh", "Affine",
                                                                "Sigmoid", "Softsign", "Tanh"],
                         activation_beta=[0.4], seed=8),
    lambda: fastrnn.GRU(4, 6, seed=9),
    lambda: fastrnn.GRU(4, 6, 2, batch_first=True, linear_before_reset=False, seed=10),
    lambda: fastrnn.GRU(4, 6, bidirectional=True, bias=False, activations=[
        "Sigmoid", "ScaledTanh", "Sigmoid", "ThresholdedRelu"], seed=11),
]


def module_call(module, x, h0=None, c0=None, lengths=None):
    state = (h0, c0) if isinstance(module, fastrnn.LSTM) else h0
    y, state_n = module(x, state, lengths=lengths)
    return [y] + (list(state_n) if isinstance(state_n, tuple) else [state_n])


def module_feeds(module, rng, T=5, N=3, dtype=np.float32):
    D = 2 if module.bidirectional else 1
    x_shape = (N, T, module.input_size) if module.batch_first else (T, N, module.input_size)
    feeds = {"x": rng.standard_normal(x_shape).astype(dtype),
             "h0": rng.standard_normal((D * module.num_layers, N, module.hidden_size)).astype(dtype),
             "lengths": np.array([T, 0, 2][:N], np.int32)}
    if isinstance(module, fastrnn.LSTM):
        feeds["c0"] = rng.standard_normal(feeds["h0"].shape).astype(dtype)
    return feeds


@pytest.mark.parametrize("make", MODULES, ids=lambda m: repr(m()))
def test_export_round_trip(make, tmp_path):
    module = make()
    rng = np.random.default_rng(0)
    feeds = module_feeds(module, rng)
    for initial_state, lengths in ((False, False), (True, True)):
        model = fo.to_model(module, initial_state=initial_state, lengths=lengths)
        onnx.checker.check_model(model, full_check=True)
        fed = {k: v for k, v in feeds.items()
               if k == "x" or (k == "lengths" and lengths) or (k != "lengths" and initial_state)}
        want = module_call(module, fed["x"], fed.get("h0"), fed.get("c0"), fed.get("lengths"))
        got = fo.run(model, fed)
        for g, w in zip(got, want):
            assert_close(g, w, 1e-6)
        if ort is not None:
            for g, w in zip(ort_run(model, fed), want):
                assert_close(g, w, 1e-5)
        back = fo.load(model)
        assert type(back) is type(module)
        assert list(back.state_dict()) == list(module.state_dict())
        for key, value in module.state_dict().items():
            np.testing.assert_array_equal(back.state_dict()[key], value)
        for g, w in zip(module_call(back, fed["x"], fed.get("h0"), fed.get("c0"),
                                    fed.get("lengths")), want):
            np.testing.assert_array_equal(g, w)
    path = tmp_path / "m.onnx"
    fo.export(module, path)
    np.testing.assert_array_equal(fo.run(str(path), {"x": feeds["x"]})[0],
                                  module_call(module, feeds["x"])[0])
    buffer = io.BytesIO()
    fo.export(module, buffer)
    assert buffer.getvalue() == path.read_bytes()


def test_export_float64_and_symbolic_dims():
    module = fastrnn.LSTM(3, 5, 2, bidirectional=True, dtype=np.float64, seed=0)
    model = fo.to_model(module, initial_state=True)
    onnx.checker.check_model(model, full_check=True)
    session = fo.InferenceSession(model)
    rng = np.random.default_rng(1)
    for T, N in ((1, 1), (7, 4), (2, 0)):
        x = rng.standard_normal((T, N, 3))
        h0, c0 = rng.standard_normal((2, 4, N, 5))
        for g, w in zip(session.run(None, {"x": x, "h0": h0, "c0": c0}),
                        module_call(module, x, h0, c0)):
            assert_close(g, w, 1e-12)


@needs_ort
def test_session_interface_matches_onnxruntime():
    module = fastrnn.GRU(4, 6, 2, batch_first=True, seed=0)
    model = fo.to_model(module, initial_state=True, lengths=True)
    ours = fo.InferenceSession(model.SerializeToString())
    theirs = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, b in ((ours.get_inputs(), theirs.get_inputs()),
                 (ours.get_outputs(), theirs.get_outputs())):
        assert [(v.name, v.shape, v.type) for v in a] == [(v.name, v.shape, v.type) for v in b]
    feeds = module_feeds(module, np.random.default_rng(0))
    kept = {k: v.copy() for k, v in feeds.items()}
    first = ours.run(["h_n", "y"], feeds)
    second = ours.run(["h_n", "y"], feeds)
    assert first[0] is not second[0] and first[0].flags.c_contiguous
    for g, w in zip(first, theirs.run(["h_n", "y"], feeds)):
        assert_close(g, w, 1e-5)
    for k in feeds:
        np.testing.assert_array_equal(feeds[k], kept[k])


def test_export_rejects():
    with pytest.raises(ValueError, match="proj_size"):
        fo.to_model(fastrnn.LSTM(4, 6, proj_size=2))
    with pytest.raises(TypeError, match="module"):
        fo.to_model(fastrnn.LSTMCell(4, 6))
    with pytest.raises(ValueError, match="opset"):
        fo.to_model(fastrnn.GRU(4, 6), opset=7)
    with pytest.raises(TypeError, match="f:"):
        fo.export(fastrnn.GRU(4, 6), 3)


# ---------------------------------------------------------------------------
# A recurrent layer inside a larger graph: load(node=...) and a pipeline

def speech_model(rng, weights_as_constants=True):
    """Conv1d -> LSTM (bidirectional) -> MatMul, weights as an exporter writes them."""
    C, I, H, K = 2, 4, 5, 3
    conv_w = rng.standard_normal((I, C, K)).astype(np.float32) * 0.5
    lstm = fastrnn.LSTM(I, H, bidirectional=True, seed=0)
    W, R, B, _ = fo._layout.onnx_weights("lstm", lstm.state_dict(), 0, 2)
    head = rng.standard_normal((2 * H, 3)).astype(np.float32)
    nodes, inits = [], [numpy_helper.from_array(conv_w, "conv_w"),
                        numpy_helper.from_array(head, "head"),
                        numpy_helper.from_array(np.array([0], np.int64), "axes0")]
    nodes.append(helper.make_node("Conv", ["audio", "conv_w"], ["feat"], name="conv",
                                  pads=[1, 1]))                     # (N, I, T)
    nodes.append(helper.make_node("Transpose", ["feat"], ["feat_t"], name="to_time",
                                  perm=[2, 0, 1]))                  # (T, N, I)
    for key, value in (("W", W), ("R", R), ("B", B)):
        if weights_as_constants:        # per direction: Constant, Unsqueeze; then Concat
            halves = []
            for d in range(2):
                nodes.append(helper.make_node("Constant", [], [f"{key}{d}"], name=f"{key}{d}_c",
                                              value=numpy_helper.from_array(value[d])))
                nodes.append(helper.make_node("Unsqueeze", [f"{key}{d}", "axes0"],
                                              [f"{key}{d}_u"], name=f"{key}{d}_unsqueeze"))
                halves.append(f"{key}{d}_u")
            nodes.append(helper.make_node("Concat", halves, [f"{key}_cat"], name=f"{key}_cat",
                                          axis=0))
            inits.append(numpy_helper.from_array(np.array(value.shape, np.int64), f"{key}_shape"))
            nodes.append(helper.make_node("Reshape", [f"{key}_cat", f"{key}_shape"], [key],
                                          name=f"{key}_reshape"))
        else:
            inits.append(numpy_helper.from_array(value, key))
    nodes.append(helper.make_node("LSTM", ["feat_t", "W", "R", "B"], ["Y", "Y_h"],
                                  name="decoder", hidden_size=H, direction="bidirectional"))
    nodes.append(helper.make_node("Transpose", ["Y"], ["Y_t"], name="y_batch",
                                  perm=[0, 2, 1, 3]))
    inits.append(numpy_helper.from_array(np.array([0, 0, 2 * H], np.int64), "joined"))
    nodes.append(helper.make_node("Reshape", ["Y_t", "joined"], ["seq"], name="join"))
    nodes.append(helper.make_node("MatMul", ["seq", "head"], ["logits"], name="head_mm"))
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "speech", [helper.make_tensor_value_info("audio", f32, ["N", C, "T"])],
        [helper.make_tensor_value_info("logits", f32, ["T", "N", 3]),
         helper.make_tensor_value_info("feat_t", f32, ["T", "N", I]),
         helper.make_tensor_value_info("seq", f32, ["T", "N", 2 * H])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, lstm


def test_load_node_from_a_larger_graph():
    rng = np.random.default_rng(3)
    model, lstm = speech_model(rng)
    onnx.checker.check_model(model, full_check=True)
    back = fo.load(model.SerializeToString(), node="decoder")
    assert isinstance(back, fastrnn.LSTM) and back.bidirectional
    for key, value in lstm.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value)
    with pytest.raises(ValueError, match=r"unsupported operator 'Conv'.*node="):
        fo.run(model, {"audio": np.zeros((1, 2, 5), np.float32)})
    with pytest.raises(ValueError, match="LSTM 'decoder'"):
        fo.load(model, node="missing")
    with pytest.raises(ValueError, match="is a Conv node.*LSTM 'decoder'"):
        fo.load(model, node="conv")


@needs_ort
def test_pipeline_onnxruntime_around_fastrnn():
    rng = np.random.default_rng(4)
    model, _ = speech_model(rng, weights_as_constants=False)
    audio = rng.standard_normal((3, 2, 9)).astype(np.float32)
    logits, feat_t, seq = ort_run(model, {"audio": audio})
    layer = fo.load(model, node="decoder")
    y, _ = layer(feat_t)
    assert_close(y, seq, 1e-5)
    head = numpy_helper.to_array([t for t in model.graph.initializer if t.name == "head"][0])
    assert_close(y @ head, logits, 1e-5)


def test_load_errors_list_the_recurrent_nodes():
    case = next(t for t in BACKEND_CASES if t.name == "test_lstm_defaults")
    with pytest.raises(ValueError, match=r"computed from graph inputs.*LSTM"):
        fo.load(case.model)
    rng = np.random.default_rng(0)
    attrs, feeds, _ = random_case(rng, "GRU")
    attrs["direction"] = "reverse"
    feeds = {k: v for k, v in feeds.items() if k in ("X", "W", "R")}
    feeds["W"], feeds["R"] = feeds["W"][:1], feeds["R"][:1]
    model = node_model("GRU", attrs, feeds, ["Y"])
    for key in ("W", "R"):
        model.graph.initializer.append(numpy_helper.from_array(feeds[key], key))
    del model.graph.input[1:]
    with pytest.raises(ValueError, match="reverse"):
        fo.load(model)
    f32 = TensorProto.FLOAT
    plain = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", f32, [1])],
        [helper.make_tensor_value_info("y", f32, [1])]))
    with pytest.raises(ValueError, match="no RNN, LSTM or GRU"):
        fo.load(plain)
    W, R = (np.zeros((1, 12, k), np.float32) for k in (3, 4))
    side_by_side = helper.make_model(helper.make_graph(
        [helper.make_node("GRU", ["x", "W", "R"], [f"y{k}"], name=f"gru{k}", hidden_size=4)
         for k in (0, 1)], "g",
        [helper.make_tensor_value_info("x", f32, ["T", "N", 3])],
        [helper.make_tensor_value_info(f"y{k}", f32, None) for k in (0, 1)],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]))
    with pytest.raises(ValueError, match="not one recurrent layer.*GRU 'gru0', GRU 'gru1'"):
        fo.load(side_by_side)
    assert isinstance(fo.load(side_by_side, node="gru1"), fastrnn.GRU)
    with pytest.raises(ValueError, match="clip"):
        clipped = fo.to_model(fastrnn.GRU(3, 4, seed=0))
        clipped.graph.node[0].attribute.append(helper.make_attribute("clip", 1.0))
        fo.load(clipped)


# ---------------------------------------------------------------------------
# Bad models and bad feeds: ValueError / TypeError, never anything else

def small_model():
    return fo.to_model(fastrnn.LSTM(3, 4, bidirectional=True, peepholes=True, seed=0),
                       initial_state=True, lengths=True)


def small_feeds(rng=None):
    rng = rng or np.random.default_rng(0)
    return {"x": rng.standard_normal((4, 2, 3)).astype(np.float32),
            "h0": np.zeros((2, 2, 4), np.float32), "c0": np.zeros((2, 2, 4), np.float32),
            "lengths": np.array([4, 1], np.int32)}


@pytest.mark.parametrize("data", [b"", b"not an onnx model", bytes(range(256)) * 3,
                                  b"\x08\x07\x12\x03abc"])
def test_not_onnx(data):
    with pytest.raises(ValueError, match="not an ONNX model"):
        fo.InferenceSession(data)
    with pytest.raises(ValueError, match="not an ONNX model"):
        fo.load(data)


def test_model_argument_types(tmp_path):
    with pytest.raises(TypeError, match="model"):
        fo.run(42, {})
    with pytest.raises(ValueError, match="cannot read"):
        fo.run(str(tmp_path / "absent.onnx"), {})


def test_truncated_and_corrupted_bytes():
    data = small_model().SerializeToString()
    feeds = small_feeds()
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(1, len(data), 60).tolist()))
    variants = [data[:c] for c in cuts]
    for _ in range(150):
        b = bytearray(data)
        for pos in rng.integers(0, len(b), rng.integers(1, 4)):
            b[pos] ^= 1 << int(rng.integers(0, 8))
        variants.append(bytes(b))
    outcomes = {"ran": 0, "refused": 0}
    for v in variants:
        try:
            fo.run(v, feeds)
            outcomes["ran"] += 1
        except (ValueError, TypeError):
            outcomes["refused"] += 1
        try:
            fo.load(v)
        except (ValueError, TypeError):
            pass
    assert outcomes["refused"] > len(cuts) // 2


def test_unsupported_operator_and_domain():
    model = small_model()
    model.graph.node[0].op_type = "Add"
    with pytest.raises(ValueError, match="unsupported operator 'Add'"):
        fo.InferenceSession(model)
    model = small_model()
    model.graph.node[1].domain = "com.example"
    with pytest.raises(ValueError, match="domain 'com.example'"):
        fo.InferenceSession(model)


def test_attribute_of_the_wrong_type():
    model = small_model()
    lstm = next(n for n in model.graph.node if n.op_type == "LSTM")
    hidden = next(a for a in lstm.attribute if a.name == "hidden_size")
    lstm.attribute.remove(hidden)
    lstm.attribute.append(helper.make_attribute("hidden_size", 4.0))
    with pytest.raises(TypeError, match="hidden_size.*int.*float"):
        fo.InferenceSession(model)
    lstm.attribute.pop()
    lstm.attribute.append(helper.make_attribute("direction", "sideways"))
    with pytest.raises(ValueError, match="direction"):
        fo.InferenceSession(model)
    lstm.attribute.pop()
    lstm.attribute.append(helper.make_attribute("activations", ["Sigmoid", "Tanh", "Gelu"] * 2))
    with pytest.raises(ValueError, match="unknown activation 'Gelu'"):
        fo.InferenceSession(model)
    lstm.attribute.pop()
    lstm.attribute.append(helper.make_attribute("peepholes", 1))
    with pytest.raises(ValueError, match="unknown attribute 'peepholes'"):
        fo.InferenceSession(model)


@pytest.mark.parametrize("key,shape,match", [
    ("W_l0", (2, 12, 3), "W must have shape"),
    ("R_l0", (2, 16, 3), "R must have shape"),
    ("B_l0", (2, 30), "B must have shape"),
    ("P_l0", (1, 12), "P must have shape"),
    ("R_l0", (2, 12, 3), "hidden_size is 4"),
])
def test_inconsistent_weights(key, shape, match):
    model = small_model()
    init = next(t for t in model.graph.initializer if t.name == key)
    init.CopyFrom(numpy_helper.from_array(np.zeros(shape, np.float32), key))
    with pytest.raises(ValueError, match=match):
        fo.InferenceSession(model)


def test_bad_feeds():
    session = fo.InferenceSession(small_model())
    feeds = small_feeds()
    with pytest.raises(ValueError, match=r"missing \['c0'\]"):
        session.run(None, {k: v for k, v in feeds.items() if k != "c0"})
    with pytest.raises(ValueError, match=r"unknown \['z'\]"):
        session.run(None, dict(feeds, z=feeds["x"]))
    with pytest.raises(TypeError, match=r"input 'x': expected tensor\(float\).*float64"):
        session.run(None, dict(feeds, x=feeds["x"].astype(np.float64)))
    with pytest.raises(TypeError, match="input 'lengths'.*int32"):
        session.run(None, dict(feeds, lengths=feeds["lengths"].astype(np.float32)))
    with pytest.raises(ValueError, match="input 'x': expected shape"):
        session.run(None, dict(feeds, x=feeds["x"][..., :2]))
    model = small_model()
    init = next(t for t in model.graph.initializer if t.name == "W_l0")
    init.CopyFrom(numpy_helper.from_array(np.zeros((2, 16, 5), np.float32), "W_l0"))
    model.graph.input[0].type.tensor_type.ClearField("shape")
    with pytest.raises(ValueError, match="X must have shape"):
        fo.run(model, feeds)
    with pytest.raises(ValueError, match="initial_h must have shape"):
        session.run(None, dict(feeds, h0=np.zeros((2, 3, 4), np.float32)))
    with pytest.raises(ValueError, match="sequence_lens must lie in"):
        session.run(None, dict(feeds, lengths=np.array([5, 1], np.int32)))
    with pytest.raises(ValueError, match="sequence_lens must have shape"):
        session.run(None, dict(feeds, lengths=np.array([4, 1, 1], np.int32)))
    with pytest.raises(TypeError, match="input_feed"):
        session.run(None, [feeds["x"]])
    with pytest.raises(TypeError, match="input 'x'"):
        session.run(None, dict(feeds, x=object()))
    with pytest.raises(ValueError, match="output_names"):
        session.run(["nope"], feeds)


def test_graph_structure_errors():
    model = small_model()
    model.graph.node[1].input[0] = "undefined_value"
    with pytest.raises(ValueError, match="reads 'undefined_value'"):
        fo.InferenceSession(model)
    model = small_model()
    model.graph.output[0].name = "nowhere"
    with pytest.raises(ValueError, match="'nowhere'"):
        fo.InferenceSession(model)


def test_import_fastrnn_does_not_import_onnx():
    code = ("import sys, fastrnn; assert 'onnx' not in sys.modules\n"
            "sys.modules['onnx'] = None\n"
            "try:\n    import fastrnn.onnx\nexcept ImportError as e:\n"
            "    assert 'fastrnn[onnx]' in str(e), e\nelse:\n    raise SystemExit('imported')\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# The plumbing operators, in each opset's form, against onnx's own evaluator

I64 = np.int64
PLUMBING_CASES = [
    (13, "Transpose", {"perm": [1, 0, 2]}, []),
    (13, "Transpose", {}, []),
    (13, "Reshape", {}, [np.array([0, -1], I64)]),
    (14, "Reshape", {"allowzero": 1}, [np.array([3, 4, 1], I64)]),
    (11, "Squeeze", {"axes": [1]}, []),
    (13, "Squeeze", {}, [np.array([-2], I64)]),
    (13, "Squeeze", {}, []),
    (11, "Unsqueeze", {"axes": [0, 3]}, []),
    (13, "Unsqueeze", {}, [np.array([-1, 0], I64)]),
    (9, "Slice", {"starts": [1], "ends": [10], "axes": [2]}, []),
    (13, "Slice", {}, [np.array([-1, 0], I64), np.array([-100, 3], I64),
                       np.array([2, 0], I64), np.array([-1, 2], I64)]),
    (13, "Concat", {"axis": -1}, ["self"]),
    (11, "Split", {"axis": 2, "split": [1, 2]}, []),
    (13, "Split", {"axis": 2}, [np.array([2, 1], I64)]),
    (18, "Split", {"axis": 0, "num_outputs": 3}, []),
    (13, "Cast", {"to": TensorProto.INT32}, []),
    (13, "Identity", {}, []),
    (13, "Equal", {}, ["self"]),
]


@pytest.mark.parametrize("opset,op,attrs,extra", PLUMBING_CASES,
                         ids=[f"{c[1]}-{c[0]}-{k}" for k, c in enumerate(PLUMBING_CASES)])
def test_plumbing_against_onnx_reference(opset, op, attrs, extra):
    from onnx.reference import ReferenceEvaluator
    x = np.random.default_rng(0).standard_normal((4, 1, 3)).astype(np.float32)
    if op == "Split" and opset == 18:
        x = np.random.default_rng(0).standard_normal((5, 1, 3)).astype(np.float32)
    names, inits = ["x"], []
    for k, value in enumerate(extra):
        if isinstance(value, str):
            names.append("x")
        else:
            names.append(f"c{k}")
            inits.append(numpy_helper.from_array(value, f"c{k}"))
    n_out = {"Split": 3 if opset == 18 else 2}.get(op, 1)
    outs = [f"out{k}" for k in range(n_out)]
    graph = helper.make_graph(
        [helper.make_node(op, names, outs, **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    want = ReferenceEvaluator(model).run(None, {"x": x})
    got = fo.run(model, {"x": x})
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    if op in ("Squeeze", "Slice") and opset < 13 and attrs:
        newer = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        with pytest.raises(ValueError, match="is an input since opset"):
            fo.run(newer, {"x": x})


def test_empty_batch_and_no_steps():
    """N = 0 gives empty outputs (onnxruntime's LSTM aborts there); T = 0 an empty Y
    and zero final states, as onnxruntime."""
    rng = np.random.default_rng(5)
    H, I = 4, 3
    attrs = {"hidden_size": H, "direction": "bidirectional"}
    feeds = {"X": np.zeros((3, 0, I), np.float32), "W": rng.random((2, 4 * H, I), np.float32),
             "R": rng.random((2, 4 * H, H), np.float32)}
    model = node_model("LSTM", attrs, feeds, ["Y", "Y_h", "Y_c"])
    model.graph.input[0].type.tensor_type.ClearField("shape")
    Y, Y_h, Y_c = fo.run(model, feeds)
    assert Y.shape == (3, 2, 0, H) and Y_h.shape == Y_c.shape == (2, 0, H)
    Y, Y_h, Y_c = fo.run(model, dict(feeds, X=np.ones((0, 2, I), np.float32)))
    assert Y.shape == (0, 2, 2, H) and not Y_h.any() and not Y_c.any()


def test_fed_initializer_replaces_the_default():
    module = fastrnn.GRU(3, 4, seed=0)
    model = fo.to_model(module)
    model.graph.input.append(helper.make_tensor_value_info("B_l0", TensorProto.FLOAT, [1, 24]))
    session = fo.InferenceSession(model)
    assert [i.name for i in session.get_inputs()] == ["x"]
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(session.run(["y"], {"x": x})[0], module(x)[0])
    zero_bias = fastrnn.GRU(3, 4, bias=False, seed=0)
    zero_bias.load_state_dict({k: v for k, v in module.state_dict().items() if "bias" not in k})
    got = session.run(["y"], {"x": x, "B_l0": np.zeros((1, 24), np.float32)})[0]
    assert_close(got, zero_bias(x)[0], 1e-6)
    with pytest.raises(TypeError, match="B_l0"):
        session.run(["y"], {"x": x, "B_l0": np.zeros((1, 24))})


def test_load_layout_1_node_is_batch_first():
    rng = np.random.default_rng(6)
    N, T, I, H = 3, 5, 2, 4
    attrs = {"hidden_size": H, "direction": "bidirectional", "layout": 1,
             "activations": ["HardSigmoid", "Tanh", "Sigmoid", "Softsign"],
             "activation_alpha": [0.3]}
    feeds = {"X": rng.standard_normal((N, T, I)).astype(np.float32)}
    consts = {"W": rng.standard_normal((2, 3 * H, I)).astype(np.float32),
              "R": rng.standard_normal((2, 3 * H, H)).astype(np.float32)}
    model = node_model("GRU", attrs, {"X": feeds["X"], **consts}, ["Y", "Y_h"])
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    del model.graph.input[1:]
    module = fo.load(model)
    assert module.batch_first and module.bidirectional
    Y, Y_h = fo.run(model, {"X": feeds["X"]})
    y, h_n = module(feeds["X"])
    assert_close(y, Y.reshape(N, T, 2 * H), 1e-5)
    assert_close(h_n, Y_h.transpose(1, 0, 2), 1e-5)
