"""Per-node gradient checking (sg.check_grad(..., per_node=True)): a wrong VJP planted in a custom op
is named exactly, correct graphs (ReLU kinks, max ties, masked scores included) give clean reports,
and sg.draw(..., check=report) colours the failing node."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.ops import base
from symgrad.ops.declare import elementwise_op
from symgrad.render import NODE_STYLES

from test_ops_grad import CASES, _feed

SVG = "{http://www.w3.org/2000/svg}"
RED = NODE_STYLES["check_failed"][0]["fillcolor"]


def softsign_with_wrong_vjp():
    """softsign(t) = t / (1 + |t|), whose derivative is 1 / (1 + |t|)², declared with the VJP
    g / (1 + |t|): the square forgotten."""
    def wrong(node, g, needs):
        return (g / (1.0 + sg.abs(node.inputs[0])),)
    return elementwise_op("softsign_wrong", lambda t: t / (1 + sympy.Abs(t)), lambda x: x / (1 + np.abs(x)),
                          vjp=wrong, registered=False)


def three_layers(middle):
    """X → ReLU(X W1 + b1) → middle(· W2 + b2) → · W3 + b3 → cross-entropy; returns the loss, the
    params, the middle activation node and the feeds."""
    rng = np.random.default_rng(0)
    X = sg.var("X", shape=("batch", 3))
    y = sg.var("y", shape=("batch",), dtype="int")
    params = [sg.param("l1.W", rng.normal(size=(3, 5))), sg.param("l1.b", rng.normal(size=5) * 0.1),
              sg.param("l2.W", rng.normal(size=(5, 4))), sg.param("l2.b", rng.normal(size=4) * 0.1),
              sg.param("l3.W", rng.normal(size=(4, 2))), sg.param("l3.b", np.zeros(2))]
    W1, b1, W2, b2, W3, b3 = params
    a1 = sg.relu((X @ W1 + b1).named("l1.z"), name="l1.a")
    a2 = middle((a1 @ W2 + b2).named("l2.z"))
    L = sg.losses.cross_entropy(a2 @ W3 + b3, y, name="L")
    feeds = {"X": rng.normal(size=(8, 3)), "y": rng.integers(0, 2, size=8)}
    return L, params, a2, feeds


def test_a_wrong_vjp_in_a_custom_op_is_named_exactly():
    op = softsign_with_wrong_vjp()
    L, params, bad, feeds = three_layers(lambda z: base.apply(op, z, name="l2.a"))
    # the whole-gradient check only says that some gradient is wrong
    with pytest.raises(sg.GradientCheckError, match="l1"):
        sg.check_grad(L, params, feeds)
    report = sg.check_grad(L, params, feeds, per_node=True)
    assert isinstance(report, sg.GradCheckReport) and not report.ok
    first = report.first_failure
    assert report.node is bad and first.node is bad
    assert (first.op, first.input, first.status) == ("softsign_wrong", 0, "wrong")
    assert first.input_shapes == ((8, 4),) and first.shape == (8, 4)
    assert [c.node for c in report.failures] == [bad]  # every other op on the path agrees
    assert all(c.status == "ok" for c in report.checks if c.node is not bad)
    # the numbers in the report are the probe's two directional derivatives: far apart here, while
    # every other op agrees to rounding
    assert first.error > 1e-2 and abs(first.analytic - first.numeric) > 1e-2 * abs(first.numeric)
    assert max(c.error for c in report.checks if c.node is not bad) < 1e-8
    text = str(report)
    assert text.splitlines()[1].startswith("FAILED: the first wrong local derivative is l2.a = softsign_wrong(l2.z)")
    assert "(op softsign_wrong, (8, 4) → (8, 4)): input 0: relative error" in text
    # the ops are listed in forward order, the matmul of layer 1 first
    assert [c.op for c in report.checks][:3] == ["matmul", "add", "relu"]


def test_a_wrong_vjp_for_one_input_of_a_registered_op(scratch_registry):
    # a two-input op t0·t1² whose declared VJP gets input 1 wrong (t0·t1 instead of 2·t0·t1)
    def vjp(node, g, needs):
        a, b = node.inputs
        return (g * b * b if needs[0] else None, g * a * b if needs[1] else None)
    op = elementwise_op("mulsq_wrong", lambda a, b: a * b ** 2, lambda a, b: a * b ** 2, nin=2, vjp=vjp)
    x = sg.var("x", shape=(4,))
    w, v = sg.param("w", np.array([0.5, -1.0, 2.0, 0.3])), sg.param("v", np.array([1.5, 0.2, -0.7, 1.1]))
    mid = base.apply(op, sg.tanh(w * x), v)
    L = sg.sum(sg.sin(mid))
    report = sg.check_grad(L, [w, v], {"x": np.array([0.3, -0.8, 1.2, 0.5])}, per_node=True)
    assert report.node is mid and report.first_failure.input == 1
    # with only w differentiated, input 1 is not on the path and the op's VJP for input 0 is right
    assert sg.check_grad(L, [w], {"x": np.array([0.3, -0.8, 1.2, 0.5])}, per_node=True).ok


@pytest.fixture
def scratch_registry():
    before, functions = dict(base.REGISTRY), dict(base.FUNCTION_OPS)
    yield
    base.REGISTRY.clear()
    base.REGISTRY.update(before)
    base.FUNCTION_OPS.clear()
    base.FUNCTION_OPS.update(functions)


def test_a_correct_network_with_kinks_and_ties_gives_a_clean_report():
    def middle(z):  # ReLU of ReLU (exact zeros), a max over ties of zeros, |·| and maximum at 0
        a = sg.relu(sg.relu(z) - 0.3)
        return sg.relu(a) + sg.abs(a) + sg.maximum(a, 0.0) + sg.expand_dims(sg.max(a, axis=1), 1)
    L, params, _, feeds = three_layers(middle)
    report = sg.check_grad(L, params, feeds, per_node=True)
    assert report.ok and report.first_failure is None and report.node is None
    assert all(c.status == "ok" for c in report.checks), str(report)
    assert all(c.error < 1e-6 for c in report.checks)
    # the kinks were met (and left out of the comparison), not missed
    kinked = {c.op: c.left_out for c in report.checks if c.left_out}
    assert {"relu", "abs", "maximum", "max"} <= set(kinked)
    assert str(report).splitlines()[1] == "ok: every local derivative agrees with finite differences"
    # the whole-gradient check agrees that this gradient is right
    assert sg.check_grad(L, params, feeds, rtol=1e-4, atol=1e-6) < 1e-5


def test_an_op_made_by_sympy_passes_and_its_derivative_op_too():
    swish = sg.elementwise(lambda t: t * sg.sympy_sigmoid(t), "swish_diag")
    L, params, _, feeds = three_layers(swish)
    assert sg.check_grad(L, params, feeds, per_node=True).ok
    # grad of grad: the backward graph's own ops (swish′, products) are checked too
    g = sg.grad(L, params[2])
    report = sg.check_grad(sg.sum(g * g), params[2:4], feeds, per_node=True)
    assert report.ok and "swish_diag_prime" in {c.op for c in report.checks}


def test_no_false_alarm_on_any_registered_op_case():
    """Every op case of the gradient meta-test, at its random values: no op flagged, none skipped."""
    flagged = []
    for name, shapes, build, domain, *extra in CASES:
        spec = extra[0] if extra else None
        ints = spec.int_inputs if spec is not None else ()
        rng = np.random.default_rng(7)
        xs = [sg.var(f"x{i}", shape=s, dtype="int" if i in ints else "float") for i, s in enumerate(shapes)]
        y = sg.sum(sg.sin(build(*xs)))
        feeds = {x: _feed(x.shape, domain[i] if i < len(domain) else (-2, 2), rng, int_=i in ints)
                 for i, x in enumerate(xs)}
        wrt = [x for i, x in enumerate(xs) if i not in ints]
        if spec is not None and spec.wrt is not None:
            wrt = [xs[i] for i in spec.wrt]
        elif name == "where":
            wrt = xs[1:]
        if name in ("reshape_like", "broadcast_like"):
            wrt = xs[:1]
        report = sg.check_grad(y, wrt, feeds, per_node=True)
        if not report.ok or any(c.status == "skipped" for c in report.checks):
            flagged.append((name, shapes, str(report)))
    assert flagged == []


def test_a_scaled_vjp_is_caught_for_an_op_of_every_kind():
    """A VJP off by 1 % (every cotangent times 1.01) is flagged at exactly that op, for ops of each kind:
    elementwise, broadcasting binary, reduction, matmul, softmax, layout."""
    rng = np.random.default_rng(3)
    x = sg.var("x", shape=(3, 4))
    W = sg.param("W", rng.normal(size=(4, 2)))
    c = sg.param("c", rng.normal(size=(4,)))
    builds = {"tanh": lambda: sg.tanh(x * c), "mul": lambda: x * c, "sum": lambda: sg.sum(x * c, axis=0),
              "matmul": lambda: (x * c) @ W, "softmax": lambda: sg.softmax(x * c, axis=1),
              "transpose": lambda: sg.transpose(x * c)}
    feeds = {"x": rng.normal(size=(3, 4))}
    for name, build in builds.items():
        out = build()
        target = next(n for n in sg.Graph(out).order if n.op is not None and n.op.name == name)
        original = target.op.vjp

        def scaled(node, g, needs, _original=original):
            return tuple(None if ct is None else ct * 1.01 for ct in _original(node, g, needs))
        object.__setattr__(target.op, "vjp", scaled)  # OpDef is frozen: planted for this check only
        try:
            report = sg.check_grad(sg.sum(sg.sin(out)), [c, W] if name == "matmul" else [c], feeds, per_node=True)
        finally:
            object.__setattr__(target.op, "vjp", original)
        assert report.node is target, (name, str(report))


def test_a_vjp_that_raises_or_returns_a_wrong_shape_is_an_error_not_a_crash():
    def raising(node, g, needs):
        raise ValueError("not written yet")

    def misshapen(node, g, needs):
        return (sg.sum(g, axis=1),)  # (2,) for an input of (2, 3): it does not even broadcast
    x = sg.var("x", shape=(2, 3))
    w = sg.param("w", np.ones((2, 3)))
    for rule, note in ((raising, "its VJP raised ValueError: not written yet"),
                       (misshapen, "its VJP for input 0 has shape (2,), which does not fit the input's shape (2, 3)")):
        op = elementwise_op("cube_bad", lambda t: t ** 3, lambda v: v ** 3, vjp=rule, registered=False)
        node = base.apply(op, w * x)
        report = sg.check_grad(sg.sum(node), w, {"x": np.full((2, 3), 0.5)}, per_node=True)
        assert report.node is node
        assert (report.first_failure.status, report.first_failure.note) == ("error", note)


def test_draw_colours_the_failing_node(tmp_path):
    op = softsign_with_wrong_vjp()
    L, params, bad, feeds = three_layers(lambda z: base.apply(op, z, name="l2.a"))
    report = sg.check_grad(L, params, feeds, per_node=True)
    # the rendered SVG: exactly one node (besides the legend's sample) is filled red, the failing op
    path = sg.render(sg.draw(L, check=report), tmp_path / "g.svg")
    red = []
    for g in ET.parse(path).getroot().iter(SVG + "g"):
        shapes = [e for e in g if e.tag in (SVG + "ellipse", SVG + "polygon", SVG + "path")]
        if g.get("class") == "node" and shapes and shapes[0].get("fill") == RED:
            red.append((g.find(SVG + "title").text, [t.text or "" for t in g.findall(SVG + "text")]))
    assert [texts for title, texts in red if title != "legend_check_failed"] == [
        ["a = softsign_wrong(·)", "(batch, 4)", "✗ first wrong ∂ (rel. error " + f"{report.first_failure.error:.2g})"]]
    # the DOT of a backward drawing with values and of a collapsed one: the op's box, the layer's box
    for kwargs, first_line in (({"backward": True, "values": feeds}, "a = softsign_wrong(·)"), ({"collapse": True}, "l2")):
        lines = [ln for ln in sg.draw(L, check=report, **kwargs).source.splitlines()
                 if f'fillcolor="{RED}"' in ln and "legend_" not in ln]
        assert len(lines) == 1 and f'label="{first_line}' in lines[0] and "✗ first wrong ∂" in lines[0], lines
    # a clean report colours nothing; anything else is refused
    clean, cparams, _, cfeeds = three_layers(sg.tanh)
    ok = sg.check_grad(clean, cparams, cfeeds, per_node=True)
    assert RED not in sg.draw(clean, check=ok).source
    with pytest.raises(sg.RenderError, match="check must be the report"):
        sg.draw(L, check=0.5)


def test_check_grad_per_node_arguments():
    x, w = sg.var("x"), sg.param("w", 0.3)
    with pytest.raises(sg.GradError, match="per_node must be True or False"):
        sg.check_grad(w * x, w, {"x": 1.0}, per_node="yes")
    with pytest.raises(sg.GradError, match="probes must be a positive int"):
        sg.check_grad(w * x, w, {"x": 1.0}, per_node=True, probes=0)
    with pytest.raises(sg.GraphError, match="not in the graph"):
        sg.check_grad(w * x, sg.param("v", 1.0), {"x": 1.0}, per_node=True)
    # report access by node, and more probes check the same thing
    y = sg.tanh(w * x)
    report = sg.check_grad(y, w, {"x": 2.0}, per_node=True, probes=5, seed=1)
    assert [c.op for c in report] == ["mul", "tanh"] and report[y].status == "ok" and len(report) == 2
    with pytest.raises(KeyError):
        report[x]


def test_random_nodes_are_drawn_once_for_the_whole_check():
    """A dropout mask is drawn once (from seed=) and held fixed: the per-node check and the whole-gradient
    check see one function, not a new mask at every finite difference."""
    rng = np.random.default_rng(0)
    X, y = sg.var("X", shape=("batch", 4)), sg.var("y", shape=("batch",), dtype="int")
    W1, W2 = sg.param("l1.W", rng.normal(size=(4, 6))), sg.param("l2.W", rng.normal(size=(6, 3)))
    L = sg.losses.cross_entropy(sg.dropout(sg.tanh(X @ W1), 0.5) @ W2, y)
    feeds = {"X": rng.normal(size=(8, 4)), "y": rng.integers(0, 3, 8)}
    report = sg.check_grad(L, [W1, W2], feeds, per_node=True, seed=3)
    assert report.ok and max(c.error for c in report.checks) < 1e-8
    assert sg.check_grad(L, [W1, W2], feeds, seed=3) < 1e-8
