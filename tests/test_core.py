"""Graph construction, shapes, errors, evaluation and the seed-001 network."""
from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pytest

import symgrad as sg
from models import seed_network
from symgrad.ops import OpDef, register
from symgrad.errors import OpDefinitionError


# ------------------------------------------------------------------ graph
def test_nodes_are_immutable_and_hash_by_identity():
    x = sg.var("x")
    y = x * 2.0
    with pytest.raises(AttributeError, match="immutable"):
        y.shape = (3,)
    z = x * 2.0
    assert y is not z and len({y, z}) == 2
    assert y.inputs[0] is x and y.inputs[1].kind == "const"


def test_graph_is_a_networkx_dag_with_deterministic_order():
    x, w = sg.var("x"), sg.param("w", 2.0)
    y = sg.sin(x * w) + x * x
    g = sg.Graph(y)
    assert isinstance(g.nx, nx.DiGraph) and nx.is_directed_acyclic_graph(g.nx)
    assert [n.kind if n.is_leaf else n.op.name for n in g.order] == ["var", "param", "mul", "sin", "mul", "add"]
    sq = g.order[4]
    assert g.nx.edges[x, sq]["args"] == (0, 1)  # x * x: one edge, both argument positions
    assert g.vars == [x] and g.params == [w] and g.find("w") is w
    assert [n.op for n in sg.Graph(y).order] == [n.op for n in g.order]


def test_operators_follow_numpy_semantics():
    a = sg.var("a", shape=(2, 3))
    b = sg.var("b", shape=(3,))
    m = sg.var("m", shape=(3, 4))
    feeds = {"a": np.arange(6.0).reshape(2, 3) + 1, "b": np.array([1.0, 2.0, 4.0]), "m": np.ones((3, 4))}
    A, B, M = feeds["a"], feeds["b"], feeds["m"]
    cases = [(a + b, A + B), (a - b, A - B), (b - a, B - A), (a * b, A * B), (a / b, A / B), (a ** 2, A ** 2),
             (2 ** b, 2 ** B), (-a, -A), (a @ m, A @ M), (b @ m, B @ M), (a @ b, A @ B), (a.T, A.T),
             (1.0 - a, 1 - A), (3 / b, 3 / B), (sg.sum(a, axis=1), A.sum(1)), (sg.mean(a, axis=0, keepdims=True),
              A.mean(0, keepdims=True)), (sg.max(a), A.max()), (sg.reshape(a, (3, 2)), A.reshape(3, 2))]
    for node, want in cases:
        got = sg.evaluate(node, {k: v for k, v in feeds.items() if k in {n.name for n in sg.Graph(node).vars}})
        assert got.shape == np.shape(want) == tuple(node.shape)
        np.testing.assert_allclose(got, want, rtol=1e-15)


def test_symbolic_dims_propagate():
    X = sg.var("X", shape=("batch", 3))
    W = sg.param("W", shape=(3, 2), init="xavier", seed=0)
    b = sg.param("b", shape=(2,))
    h = sg.sigmoid(X @ W + b)
    assert h.shape == ("batch", 2)
    assert sg.sum(h, axis=0).shape == (2,) and sg.mean(h).shape == ()
    assert h.T.shape == (2, "batch")
    out = sg.evaluate(h, {X: np.ones((5, 3))})
    assert out.shape == (5, 2)


# ------------------------------------------------------------------ errors
def test_shape_mismatch_names_op_shapes_and_nodes():
    A = sg.var("A", shape=(3, 4))
    v = sg.var("v", shape=(5,))
    with pytest.raises(sg.ShapeError, match=r"matmul: shapes \(3, 4\) and \(5,\) do not align.*A.*v"):
        A @ v
    with pytest.raises(sg.ShapeError, match=r"add: shapes \(3, 4\), \(5,\) cannot be broadcast"):
        A + v
    with pytest.raises(sg.ShapeError, match="batch"):
        sg.var("p", shape=("batch", 3)) + sg.var("q", shape=("time", 3))
    with pytest.raises(sg.ShapeError, match="axis 2 out of range"):
        sg.sum(A, axis=2)
    with pytest.raises(sg.ShapeError, match="reshape"):
        sg.reshape(A, (5, 2))
    with pytest.raises(sg.ShapeError, match="mse"):
        sg.losses.mse(A, v)


def test_grad_errors_are_typed_and_clear():
    x = sg.var("x", shape=(3,))
    w = sg.param("w", 1.0)
    with pytest.raises(sg.GradError, match=r"must be a scalar.*\(3,\)"):
        sg.grad(x * w, w)
    other = sg.param("other", 1.0)
    with pytest.raises(sg.GraphError, match="other is not in the graph"):
        sg.grad(sg.sum(x * w), other)
    with pytest.raises(sg.GraphError, match="expected Nodes"):
        sg.grad(sg.sum(x * w), [w, 3.0])


def test_feed_errors_name_the_feed():
    x, y = sg.var("x", shape=("batch",)), sg.var("y", shape=("batch",))
    L = sg.losses.mse(x, y)
    with pytest.raises(sg.FeedError, match="unknown feed name 'z'"):
        sg.evaluate(L, {"x": [1.0], "y": [1.0], "z": 3})
    with pytest.raises(sg.FeedError, match="missing feed for var 'y'"):
        sg.evaluate(L, {"x": [1.0]})
    with pytest.raises(sg.FeedError, match="dim 'batch' is 3 here but 2"):
        sg.evaluate(L, {"x": [1.0, 2.0], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(sg.FeedError, match=r"expected shape \(batch,\)"):
        sg.evaluate(L, {"x": [[1.0]], "y": [1.0]})
    c = sg.var("c", shape=(2,), dtype="int")
    with pytest.raises(sg.FeedError, match="integer class indices"):
        sg.evaluate(sg.one_hot(c, 3), {"c": [0.5, 1.0]})
    with pytest.raises(sg.FeedError, match="expected numbers"):
        sg.evaluate(L, {"x": ["a"], "y": [1.0]})


def test_bad_names_and_values_rejected():
    for bad in ("", "1x", "x y", "x;import os", "a\nb", None, 3):
        with pytest.raises(sg.GraphError):
            sg.var(bad)
    with pytest.raises(sg.GraphError, match="two different leaves"):
        sg.Graph(sg.var("x") + sg.var("x"))
    with pytest.raises(sg.GraphError, match="non-finite"):
        sg.param("w", np.nan)
    with pytest.raises(sg.ShapeError, match="fixed shape"):
        sg.param("W", shape=("batch", 3))
    with pytest.raises(sg.GraphError, match="unknown init"):
        sg.param("W", shape=(2, 2), init="nope")
    with pytest.raises(sg.GraphError):
        sg.var("x") + "1"


def test_register_refuses_duplicates_and_incomplete_ops():
    with pytest.raises(OpDefinitionError, match="already registered"):
        register(OpDef("add", 2, lambda n: (), np.add, np.add, vjp=None, label="+"))
    with pytest.raises(OpDefinitionError, match="no impl"):
        register(OpDef("fresh_op_x", 1, lambda n: (), None, np.add, vjp=None, label="f"))
    with pytest.raises(OpDefinitionError, match="no label"):
        register(OpDef("fresh_op_y", 1, lambda n: (), np.add, np.add, vjp=None, label=""))
    with pytest.raises(OpDefinitionError, match="exactly one free symbol"):
        import sympy
        a, b = sympy.symbols("a b")
        sg.elementwise(a * b, "two_vars")


@pytest.fixture
def scratch_registry():
    """Ops registered inside a test (deliberately broken ones) are removed afterwards, so the
    registry-wide meta-tests of other files never see them, whatever order the files run in."""
    from symgrad.ops.base import REGISTRY
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def test_not_differentiable_op_reports_op_and_input(scratch_registry):
    def shape(nodes):
        return nodes[0].shape
    register(OpDef("round_test", 1, shape, np.round, lambda x: x, vjp=None, label="round"))
    from symgrad.ops import apply
    w = sg.param("w", 0.3)
    with pytest.raises(sg.NotDifferentiableError, match="round_test.*input 0"):
        sg.grad(apply("round_test", w * 2.0), w)


# --------------------------------------------------------------- evaluation
def test_feeds_by_node_or_name_and_params_use_values():
    x, w = sg.var("x"), sg.param("w", 0.5)
    assert float(sg.evaluate(w * x, {x: 4.0})) == 2.0
    assert float(sg.evaluate(w * x, {"x": 4.0})) == 2.0
    w.value = 3.0
    assert float(sg.evaluate(w * x, {"x": 4.0})) == 12.0
    assert float(sg.evaluate(w * x, {"x": 4.0, "w": 1.0})) == 4.0  # a feed overrides the param


def test_check_grad_reports_index_values_and_error(scratch_registry):
    from symgrad.ops import apply, register

    def shape(nodes):
        return nodes[0].shape
    # deliberately wrong VJP: claims d/dx x^2 = x
    register(OpDef("bad_square", 1, shape, np.square, lambda x: x, label="sq",
                   vjp=lambda n, g, needs: (g * n.inputs[0],)))
    w = sg.param("w", np.array([1.0, 2.0]))
    with pytest.raises(sg.GradientCheckError, match=r"w\(2,\) at index \(1,\): analytic 2, numeric 4(\.0+\d*)?, abs error 2"):
        sg.check_grad(sg.sum(apply("bad_square", w)), w)


# ---------------------------------------------------- the seed-001 network
def test_seed_network_forward_values_match_the_notes():
    L, params, inter, feeds = seed_network()
    vals = sg.evaluate(inter + [L], feeds)
    truncated = [np.floor(np.asarray(v) * 1000) / 1000 for v in vals]  # the notes print 3 digits, cut off
    notes = [[0.36, 0.37, 0.38], [0.589, 0.591, 0.593], [0.054, 0.064, 0.074], [0.513, 0.516, 0.518],
             [1.558, 1.568], [0.497, 0.502]]
    for got, want in zip(truncated, notes):
        np.testing.assert_allclose(got, want, atol=1e-9)
    assert np.floor(float(vals[6]) * 1e4) / 1e4 == 0.6981


def test_seed_network_gradients_equal_finite_differences():
    L, params, inter, feeds = seed_network()
    err = sg.check_grad(L, params, feeds, rtol=1e-6, atol=1e-10)
    assert err < 1e-8
    grads = sg.evaluate(sg.grad(L, params), feeds)
    # the two softmax outputs are pushed apart symmetrically: dL/db3 sums to zero
    assert abs(grads[5].sum()) < 1e-12 and grads[5][0] < 0 < grads[5][1]


# ------------------------------------------------------------- stability
def test_losses_match_numpy_references():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, size=(4, 3))
    t = (rng.uniform(size=(4, 3)) > 0.5).astype(float)
    z = rng.normal(size=(4, 3))
    P, T, Z = sg.const(p), sg.const(t), sg.const(z)
    np.testing.assert_allclose(sg.evaluate(sg.losses.mse(P, T)), np.mean((p - t) ** 2))
    np.testing.assert_allclose(sg.evaluate(sg.losses.mae(P, T)), np.mean(np.abs(p - t)))
    np.testing.assert_allclose(sg.evaluate(sg.losses.bce(P, T)), -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(sg.evaluate(sg.losses.bce_with_logits(Z, T)),
                               -np.mean(t * np.log(s) + (1 - t) * np.log(1 - s)))
    labels = np.array([0, 2, 1, 2])
    Yi = sg.var("Y", shape=(4,), dtype="int")
    lsm = z - np.log(np.exp(z).sum(1, keepdims=True))
    want = -np.mean(lsm[np.arange(4), labels])
    np.testing.assert_allclose(sg.evaluate(sg.losses.cross_entropy(Z, Yi), {Yi: labels}), want)
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(sg.evaluate(sg.losses.cross_entropy(Z, sg.const(onehot))), want)


def test_extreme_inputs_give_no_warnings_or_nan():
    z = sg.var("z", shape=(6,))
    y = sg.var("y", shape=(6,))
    zs = np.array([-1e4, -800.0, -30.0, 30.0, 800.0, 1e4])
    ys = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    outs = [sg.sigmoid(z), sg.softmax(z), sg.log_softmax(z), sg.softplus(z),
            sg.losses.bce_with_logits(z, y), sg.losses.bce(sg.sigmoid(z), y),
            sg.losses.cross_entropy(sg.reshape(z, (2, 3)), sg.reshape(y, (2, 3)))]
    params = []
    for L in outs[4:]:
        params.append(sg.grad(L, z))
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        vals = sg.evaluate(outs + params, {z: zs, y: ys})
    for v in vals:
        assert np.all(np.isfinite(v))
    sig = vals[0]
    assert sig[0] == 0.0 and sig[-1] == 1.0
    np.testing.assert_allclose(vals[4], np.mean(np.maximum(zs, 0) - ys * zs + np.log1p(np.exp(-np.abs(zs)))))
    np.testing.assert_allclose(vals[7], (sig - ys) / 6, atol=1e-15)  # d bce_with_logits / dz


def test_linear_size_backward_graph():
    x = sg.var("x")
    h = x
    for k in range(1000):
        h = sg.sigmoid(sg.param(f"w{k}", 0.5) * h + sg.param(f"b{k}", 0.1))
    fwd = sg.Graph(h)
    w0 = fwd.find("w0")
    g = sg.grad(h, w0)
    back = sg.Graph(g)
    backward_only = len(set(back.nx) - set(fwd.nx))
    assert backward_only <= 4 * len(fwd)
    # and the value is right
    xv = 0.3
    sg.check_grad(h, w0, {x: xv}, rtol=1e-5, atol=1e-12)


# ------------------------------------------------------------ files
def test_atomic_write_replaces_whole_files_with_normal_permissions(tmp_path):
    import os
    import stat

    from symgrad.files import atomic_open, atomic_write

    target = tmp_path / "out.txt"
    atomic_write(target, "first")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask  # not mkstemp's owner-only 0o600
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w", encoding="utf-8") as f:
            f.write("half of the second")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "first"  # the old file survives a failed write
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # and no temporary file is left behind
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


def test_param_keeps_float32_values_like_its_setter():
    a32 = np.arange(3, dtype=np.float32)
    w = sg.param("w", a32)
    assert w.value.dtype == np.float32 and w.value is not a32  # a copy: the caller's array stays theirs
    for other in ([1, 2, 3], np.arange(3), np.arange(3, dtype=">f4"), np.arange(3, dtype=np.float16)):
        v = sg.param("v", other).value
        assert v.dtype == np.float64 and v.dtype.isnative
        np.testing.assert_array_equal(v, [0, 1, 2] if not isinstance(other, list) else [1, 2, 3])


def test_bce_of_a_perfect_prediction_is_plus_zero():
    p, y = sg.var("p", shape=(2,)), sg.var("y", shape=(2,))
    val = sg.evaluate(sg.losses.bce(p, y), {p: [1.0, 0.0], y: [1.0, 0.0]})
    assert float(val) == 0.0 and not np.signbit(val)
