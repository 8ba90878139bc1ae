"""sg.scan: a loop as one node.  Values and gradients equal the unrolled loop, the gradient is a
reverse scan that differentiates again, compiled loops equal evaluation (float64, float32, training
steps) and read as loops, and misuse is refused with the carry, shape or input named."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

T, B, I, H = 5, 3, 4, 6
TOL = 1e-12


def _close(got, want, what=""):
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=TOL, atol=TOL, err_msg=f"{what} output {k}")


def _rnn_params(rng, gates=1):
    return (sg.param("W_ih", rng.normal(size=(I, gates * H)) * 0.5),
            sg.param("W_hh", rng.normal(size=(H, gates * H)) * 0.5),
            sg.param("b", rng.normal(size=(gates * H,)) * 0.1))


def _tanh_rnn(W_ih, W_hh, b):
    def step(h, x):
        h = sg.tanh(x @ W_ih + h @ W_hh + b)  # b (H,) broadcasts over the batch
        return h, h
    return step


def _lstm(W_ih, W_hh, b):
    def step(carry, x):
        h, c = carry
        i, f, g, o = sg.split(x @ W_ih + b + h @ W_hh, 4, axis=1)
        c = sg.sigmoid(f) * c + sg.sigmoid(i) * sg.tanh(g)
        h = sg.sigmoid(o) * sg.tanh(c)
        return (h, c), h
    return step


def _feeds(rng, *names_shapes):
    return {n: rng.normal(size=s) for n, s in names_shapes}


def _both(build, unroll_shapes, scan_shapes):
    """``build(vars, unroll)`` for a loop as one node (symbolic shapes) and unrolled (fixed shapes)."""
    out = []
    for unroll, shapes in ((False, scan_shapes), (True, unroll_shapes)):
        vs = {n: sg.var(n, shape=s) for n, s in shapes.items()}
        out.append(build(vs, unroll))
    return out


def test_tanh_rnn_values_and_gradients_equal_the_unrolled_loop():
    rng = np.random.default_rng(0)
    W_ih, W_hh, b = _rnn_params(rng)

    def build(v, unroll):
        hT, hs = sg.scan(_tanh_rnn(W_ih, W_hh, b), v["h0"], v["X"], unroll=unroll)
        L = sg.sum(hs * hs) + sg.sum(sg.sin(hT))
        return [L, hT, hs] + sg.grad(L, [W_ih, W_hh, b, v["X"], v["h0"]])

    scan, unrolled = _both(build, {"X": (T, B, I), "h0": (B, H)}, {"X": ("T", "batch", I), "h0": ("batch", H)})
    feeds = _feeds(rng, ("X", (T, B, I)), ("h0", (B, H)))
    _close(sg.evaluate(scan, feeds), sg.evaluate(unrolled, feeds), "tanh rnn")
    # the symbolic batch and number of steps take other sizes in the same graph
    feeds2 = _feeds(rng, ("X", (2, 5, I)), ("h0", (5, H)))
    got = sg.evaluate(scan, feeds2)
    assert got[2].shape == (2, 5, H) and got[6].shape == (2, 5, I)


def test_lstm_two_carries_reverse_values_gradients_and_hessian_vector_product():
    rng = np.random.default_rng(1)
    W_ih, W_hh, b = _rnn_params(rng, gates=4)
    v = sg.var("v", shape=(H, 4 * H))

    def build(vs, unroll):
        (hT, cT), hs = sg.scan(_lstm(W_ih, W_hh, b), (vs["h0"], vs["c0"]), vs["X"], reverse=True, unroll=unroll)
        L = sg.sum(sg.sin(hs)) + sg.sum(cT * hT)
        grads = sg.grad(L, [W_ih, W_hh, b, vs["X"], vs["h0"], vs["c0"]])
        hvp = sg.grad(sg.sum(grads[1] * v), [W_hh, vs["X"], vs["c0"]])  # grad of grad: a Hessian-vector product
        return [L] + grads + hvp

    shapes = {"X": (T, B, I), "h0": (B, H), "c0": (B, H)}
    scan, unrolled = _both(build, shapes, {"X": ("T", "batch", I), "h0": ("batch", H), "c0": ("batch", H)})
    feeds = _feeds(rng, *shapes.items(), ("v", (H, 4 * H)))
    _close(sg.evaluate(scan, feeds), sg.evaluate(unrolled, feeds), "lstm")


def test_scan_gradient_passes_check_grad():
    rng = np.random.default_rng(2)
    W_ih, W_hh, b = _rnn_params(rng)
    X, h0 = sg.var("X", shape=("T", "batch", I)), sg.var("h0", shape=("batch", H))
    hT, hs = sg.scan(_tanh_rnn(W_ih, W_hh, b), h0, X)
    L = sg.mean(hs * hs) + sg.sum(hT)
    feeds = _feeds(rng, ("X", (T, B, I)), ("h0", (B, H)))
    assert sg.check_grad(L, [W_ih, W_hh, b, X, h0], feeds) < 1e-6


def test_gradient_is_a_reverse_scan_reading_saved_values_and_sums_over_steps_outside():
    """δh_{t−1} = (δh_t + δy_t) ⊙ (1 − h_t²) W_hhᵀ in the loop; Σ_t terms after it."""
    rng = np.random.default_rng(3)
    W_ih, W_hh, b = _rnn_params(rng)
    X, h0 = sg.var("X", shape=("T", "batch", I)), sg.var("h0", shape=("batch", H))
    hT, hs = sg.scan(_tanh_rnn(W_ih, W_hh, b), h0, X)
    dW_ih, dW_hh, db = sg.grad(sg.sum(hs * hs), [W_ih, W_hh, b])
    scans = [n for n in sg.Graph([dW_ih, dW_hh, db]).order if n.op is not None and n.op.name == "scan"]
    fwd, back = (s.attr("body") for s in scans)
    assert (fwd.role, back.role) == ("forward", "backward")
    assert scans[1].attr("reverse") and not scans[0].attr("reverse")
    ops = {n.op.name for n in back.graph.order if n.op is not None}
    assert "tanh" not in ops and "tanh_prime" not in ops  # 1 − h² from the saved activation
    assert [c.name for c in back.closed_in] == ["W_hh"]  # W_ih and b are not needed inside
    assert {dW_ih.op.name, dW_hh.op.name, db.op.name} == {"einsum", "sum"}


def test_closed_over_nodes_computed_outside_and_inside_and_no_xs():
    rng = np.random.default_rng(4)
    E = sg.param("E", rng.normal(size=(I, H)))
    X = sg.var("X", shape=(T, I))
    u = sg.tanh(X @ E)  # computed outside, read by every step
    w = sg.var("w", shape=(H,))

    def build(unroll):
        def step(c, t):
            return c * 0.5 + u[2] * w + t, c.sum()
        c, ys = sg.scan(step, sg.const(np.zeros(H)), sg.const(np.arange(3.0)), unroll=unroll)
        d, _ = sg.scan(lambda h, _: (sg.sin(h) + c, None), w, length=2, unroll=unroll)
        L = sg.sum(c * d) + sg.sum(ys)
        return [L] + sg.grad(L, [E, w, X])

    feeds = {"X": rng.normal(size=(T, I)), "w": rng.normal(size=H)}
    _close(sg.evaluate(build(False), feeds), sg.evaluate(build(True), feeds), "closed over")


def test_compiled_loop_equals_evaluation_float64_float32_and_reads_as_a_loop():
    rng = np.random.default_rng(5)
    W_ih, W_hh, b = _rnn_params(rng, gates=4)
    X, h0, c0 = sg.var("X", shape=("T", "batch", I)), sg.var("h0", shape=("batch", H)), sg.var("c0", shape=("batch", H))
    (hT, cT), hs = sg.scan(_lstm(W_ih, W_hh, b), (h0, c0), X)
    L = sg.sum(sg.sin(hs)) + sg.sum(cT * hT)
    outs = [L, hs] + sg.grad(L, [W_ih, W_hh, b, X, h0, c0])
    feeds = _feeds(rng, ("X", (T, B, I)), ("h0", (B, H)), ("c0", (B, H)))
    want = sg.evaluate(outs, feeds)
    f = sg.compile(outs, [X, h0, c0])
    _close(f(feeds["X"], feeds["h0"], feeds["c0"]), want, "compiled")
    small = {"X": feeds["X"][:2, :1], "h0": feeds["h0"][:1], "c0": feeds["c0"][:1]}  # other T and batch
    _close(f(small["X"], small["h0"], small["c0"]), sg.evaluate(outs, small), "T=2, batch=1")
    f32 = sg.compile(outs, [X, h0, c0], dtype="float32")
    for g, w in zip(f32(*(feeds[n].astype(np.float32) for n in ("X", "h0", "c0"))), want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)
    src = f.source
    loops = [i for i, ln in enumerate(src.splitlines()) if ln.strip().startswith("for ")]
    assert len(loops) == 2  # the forward loop and the backward loop
    lines = src.splitlines()
    first = loops[0]
    assert any("X @ W_ih" in ln for ln in lines[:first])  # the input projection of all steps, before the loop
    assert not any("W_ih" in ln for ln in lines[first:loops[1]] if "@" in ln)
    assert any("np.empty((T + 1," in ln for ln in lines[:first])  # preallocated: the carry history and new values
    assert not any("np.empty" in ln for ln in lines if ln.startswith(" " * 12))  # nothing allocated per step


def test_training_step_with_a_loop_equals_sgd_on_evaluated_gradients():
    rng = np.random.default_rng(6)
    W_ih, W_hh, b = _rnn_params(rng)
    X, Y = sg.var("X", shape=("T", "batch", I)), sg.var("Y", shape=("batch", H))
    hT, _ = sg.scan(_tanh_rnn(W_ih, W_hh, b), sg.const(np.zeros((1, H))) + 0 * Y, X)
    L = sg.losses.mse(hT, Y)
    feeds = _feeds(rng, ("X", (T, B, I)), ("Y", (B, H)))
    params = [W_ih, W_hh, b]
    before = [p.value.copy() for p in params]
    grads = sg.evaluate(sg.grad(L, params), feeds)
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        for p, v in zip(params, before):
            p.value = v.copy()
        step = sg.compile_step(L, sg.optim.SGD(lr=0.1), inputs=[X, Y], dtype=dtype)
        want = float(sg.evaluate(L, feeds))  # before the update
        loss = step(feeds["X"], feeds["Y"])
        assert abs(loss - want) <= tol * abs(want)
        for p, v, g in zip(params, before, grads):
            np.testing.assert_allclose(p.value, v - 0.1 * g, rtol=tol, atol=tol)
    for p, v in zip(params, before):
        p.value = v


def test_unrolled_loop_is_explicit_and_needs_a_fixed_length():
    rng = np.random.default_rng(7)
    W_ih, W_hh, b = _rnn_params(rng)
    X, h0 = sg.var("X", shape=(3, B, I)), sg.var("h0", shape=(B, H))
    hT, hs = sg.scan(_tanh_rnn(W_ih, W_hh, b), h0, X, unroll=True)
    ops = [n.op.name for n in sg.Graph(hs).order if n.op is not None]
    assert "scan" not in ops and ops.count("tanh") == 3
    with pytest.raises(sg.ShapeError, match="fixed number of steps"):
        sg.scan(_tanh_rnn(W_ih, W_hh, b), h0, sg.var("Xs", shape=("T", B, I)), unroll=True)


def test_scanned_integer_ids_and_a_scalar_carry():
    ids = sg.var("ids", shape=("T",), dtype="int")
    E = sg.param("E", np.arange(8.0).reshape(4, 2))
    total, ys = sg.scan(lambda c, i: (c + sg.sum(E[i]), c), sg.const(0.0), ids)
    got_total, got_ys = sg.evaluate([total, ys], {"ids": [1, 3, 3]})  # row sums of E: 1, 5, 9, 13
    assert float(got_total) == 31.0 and got_ys.tolist() == [0.0, 5.0, 18.0]
    dE = sg.grad(total, E)
    np.testing.assert_allclose(sg.evaluate(dE, {"ids": [1, 3, 3]}), [[0, 0], [1, 1], [0, 0], [2, 2]])
    f = sg.compile([total, dE], [ids])
    np.testing.assert_allclose(f(np.array([1, 3, 3]))[1], [[0, 0], [1, 1], [0, 0], [2, 2]])


def test_misuse_is_refused_with_what_was_wrong():
    x = sg.var("x", shape=(T, 3))
    h0 = sg.const(np.zeros(3))
    with pytest.raises(sg.ShapeError, match="carry 'h' enters a step as \\(3,\\) and leaves it as \\(2, 3\\)"):
        sg.scan(lambda h, xt: (h + sg.const(np.zeros((2, 3))), None), h0, x)
    with pytest.raises(sg.ShapeError, match="leading axes"):
        sg.scan(lambda h, xs: (h, None), h0, (x, sg.var("y", shape=(4, 3))))
    with pytest.raises(sg.ShapeError, match="give scanned inputs xs or a length"):
        sg.scan(lambda h, _: (h, None), h0)
    with pytest.raises(sg.GraphError, match="pair"):
        sg.scan(lambda h, xt: h, h0, x)
    with pytest.raises(sg.GraphError, match="another structure"):
        sg.scan(lambda c, xt: ((c[0], c[1], c[0]), None), (h0, h0), x)
    with pytest.raises(sg.ShapeError, match="length=4 but the scanned inputs have 5"):
        sg.scan(lambda h, xt: (h, None), h0, x, length=4)
    with pytest.raises(sg.ShapeError, match="without scanned inputs the length must be an int"):
        sg.scan(lambda h, _: (h, None), h0, length="T")


def test_a_loop_inside_a_loop_body_differentiates_and_compiles():
    """Regression: the outer backward body read the inner loop's outputs through new picks of the
    inner scan; the scan node itself was saved (a tuple stacked) instead of its outputs."""
    rng = np.random.default_rng(8)
    w = sg.param("w", np.array([0.5, -0.3]))
    X = sg.var("X", shape=(3, 4, 2))

    def outer(c, xt):
        inner, _ = sg.scan(lambda h, x: (sg.tanh(h * 0.9 + x * w), None), c, xt)
        return inner, sg.sum(inner)

    def build(unroll):
        hT, ys = sg.scan(outer, sg.const(np.zeros(2)), X, unroll=unroll)
        L = sg.sum(hT * hT) + sg.sum(ys)
        return [L] + sg.grad(L, [w, X])

    feeds = {"X": rng.normal(size=(3, 4, 2))}
    want = sg.evaluate(build(True), feeds)
    outs = build(False)
    _close(sg.evaluate(outs, feeds), want, "nested")
    _close(sg.compile(outs, [X])(feeds["X"]), want, "nested, compiled")
    assert "hₜ = tanh(9/10⋅hₜ₋₁ + w ⊙ xₜ)" in sg.pretty(outs[0])
