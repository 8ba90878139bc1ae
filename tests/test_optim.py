"""Optimizers and schedules: compiled steps equal hand-written NumPy
references of each rule over 10 steps, formulas equal the textbook rules,
and the step object honours its interface."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.optim import schedules

N, D, K = 6, 3, 2  # batch, features, outputs


# ----------------------------------------------------------------- the model
def _model(seed=0):
    """pred = a · (X @ W) + b, mean squared error: gradients easy to write by hand."""
    rng = np.random.default_rng(seed)
    X = sg.var("X", shape=("batch", D))
    Y = sg.var("Y", shape=("batch", K))
    W = sg.param("W", rng.normal(size=(D, K)))
    b = sg.param("b", rng.normal(size=(K,)))
    a = sg.param("a", 0.8)
    loss = sg.losses.mse(a * (X @ W) + b, Y)
    return X, Y, [W, b, a], loss


def _grads(values, Xv, Yv):
    W, b, a = values
    xw = Xv @ W
    r = a * xw + b - Yv
    n = r.size
    return [2 * a * Xv.T @ r / n, 2 * r.sum(axis=0) / n, np.array(2 * np.sum(r * xw) / n)]


def _batches(steps=10, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(N, D)), rng.normal(size=(N, K))) for _ in range(steps)]


# ----------------------------------------------------------------- references (PyTorch's definitions)
def _clip(grads, cfg):
    if cfg.get("clip_value") is not None:
        c = cfg["clip_value"]
        grads = [np.clip(g, -c, c) for g in grads]
    if cfg.get("clip_norm") is not None:
        c = cfg["clip_norm"]
        total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        grads = [g * (c / max(total, c)) for g in grads]
    return grads


def _reference(kind, cfg, values, batches, lr_of):
    values = [np.array(v, dtype=np.float64) for v in values]
    state = [dict() for _ in values]
    wd = cfg.get("weight_decay", 0.0)
    for t, (Xv, Yv) in enumerate(batches, start=1):
        lr = lr_of(t - 1)
        grads = _clip(_grads(values, Xv, Yv), cfg)
        for p, g, st in zip(values, grads, state):
            if kind == "SGD":
                g = g + wd * p
                mom = cfg.get("momentum", 0.0)
                if mom:
                    st["b"] = g.copy() if t == 1 else mom * st["b"] + g
                    g = g + mom * st["b"] if cfg.get("nesterov") else st["b"]
                p -= lr * g
            elif kind == "AdaGrad":
                g = g + wd * p
                st["s"] = st.get("s", np.zeros_like(p)) + g * g
                p -= lr * g / (np.sqrt(st["s"]) + cfg.get("eps", 1e-10))
            elif kind == "RMSProp":
                g = g + wd * p
                al = cfg.get("alpha", 0.99)
                st["v"] = al * st.get("v", np.zeros_like(p)) + (1 - al) * g * g
                avg = np.sqrt(st["v"]) + cfg.get("eps", 1e-8)
                mom = cfg.get("momentum", 0.0)
                if mom:
                    st["b"] = mom * st.get("b", np.zeros_like(p)) + g / avg
                    p -= lr * st["b"]
                else:
                    p -= lr * g / avg
            elif kind in ("Adam", "AdamW"):
                decoupled = kind == "AdamW" or cfg.get("decoupled")
                if decoupled:
                    p *= 1 - lr * wd
                else:
                    g = g + wd * p
                b1, b2, eps = cfg.get("beta1", 0.9), cfg.get("beta2", 0.999), cfg.get("eps", 1e-8)
                st["m"] = b1 * st.get("m", np.zeros_like(p)) + (1 - b1) * g
                st["v"] = b2 * st.get("v", np.zeros_like(p)) + (1 - b2) * g * g
                m_hat = st["m"] / (1 - b1 ** t)
                v_hat = st["v"] / (1 - b2 ** t)
                p -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return values, state


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, clip_norm=0.5)),
    ("SGD", dict(lr=0.1, momentum=0.5, nesterov=True, clip_value=0.05)),
    ("AdaGrad", dict(lr=0.1)),
    ("AdaGrad", dict(lr=0.1, weight_decay=0.1, clip_norm=0.3)),
    ("RMSProp", dict(lr=0.01)),
    ("RMSProp", dict(lr=0.01, momentum=0.9, alpha=0.9)),
    ("RMSProp", dict(lr=0.01, clip_value=0.1, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, beta1=0.8, beta2=0.99, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, clip_norm=0.5)),
    ("Adam", dict(lr=0.01, clip_value=0.02, clip_norm=0.05)),
]


@pytest.mark.parametrize("kind,cfg", CONFIGS, ids=[f"{k}-{'-'.join(c)}" for k, c in CONFIGS])
def test_ten_steps_equal_the_numpy_reference(kind, cfg):
    X, Y, params, loss = _model()
    start = [p.value.copy() for p in params]
    opt = getattr(sg.optim, kind)(**cfg)
    step = sg.compile_step(loss, opt, inputs=[X, Y])
    arrays = [p.value for p in params]
    batches = _batches()
    losses = [step(Xv, Yv) for Xv, Yv in batches]
    want, state = _reference(kind, cfg, start, batches, lambda k: cfg["lr"])
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-11, atol=1e-13, err_msg=f"{kind} {cfg} {p.name}")
    for p, st in zip(params, state):
        for name, arr in st.items():
            np.testing.assert_allclose(step.state[p.name][name], arr, rtol=1e-11, atol=1e-13)
    # params were updated in place: the same array objects
    assert all(p.value is arr for p, arr in zip(params, arrays))
    assert step.t == 10 and all(isinstance(v, float) for v in losses)
    # the loss returned is the loss before each update
    assert losses[0] == pytest.approx(np.mean((start[2] * (batches[0][0] @ start[0]) + start[1] - batches[0][1]) ** 2),
                                      rel=1e-13)


def test_clip_norm_bounds_the_global_norm():
    X, Y, params, loss = _model()
    start = [p.value.copy() for p in params]
    step = sg.compile_step(loss, sg.optim.SGD(lr=1.0, clip_norm=0.25), inputs=[X, Y])
    Xv, Yv = _batches(1)[0]
    step(Xv, Yv)
    moved = math.sqrt(sum(float(np.sum((p.value - s) ** 2)) for p, s in zip(params, start)))
    raw = math.sqrt(sum(float(np.sum(g * g)) for g in _grads(start, Xv, Yv)))
    assert raw > 0.25 and moved == pytest.approx(0.25, rel=1e-12)


@pytest.mark.parametrize("kind,cfg", [("Adam", dict(lr=0.01)), ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True))])
def test_float32_step_tracks_float64(kind, cfg):
    X, Y, params, loss = _model()
    start = [p.value.copy() for p in params]
    step = sg.compile_step(loss, getattr(sg.optim, kind)(**cfg), inputs=[X, Y], dtype="float32")
    batches = _batches()
    for Xv, Yv in batches:
        step(Xv, Yv)
    want, _ = _reference(kind, cfg, start, batches, lambda k: cfg["lr"])
    for p, w in zip(params, want):
        assert p.value.dtype == np.float64  # the master copy stays float64
        np.testing.assert_allclose(p.value, w, rtol=2e-4, atol=2e-5)
    for st in step.state.values():
        assert all(a.dtype == np.float32 for a in st.values())


# ----------------------------------------------------------------- schedules
def test_schedule_values():
    s = schedules.step(0.1, step_size=3, gamma=0.5)
    assert [s(k) for k in range(7)] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    c = schedules.cosine(1.0, total_steps=4, min_lr=0.2)
    assert [c(k) for k in (0, 2, 4, 9)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    w = schedules.linear_warmup(0.4, warmup_steps=4)
    assert [w(k) for k in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    wc = schedules.linear_warmup(schedules.cosine(0.4, 10), warmup_steps=2)
    assert [wc(0), wc(1), wc(2), wc(7)] == pytest.approx([0.2, 0.4, 0.4, 0.2])
    e = schedules.exponential(2.0, 0.5)
    assert e(3) == 0.25
    for sched in (s, c, w, wc, e, schedules.constant(0.3)):
        f = sympy.lambdify(sympy.Symbol("k", integer=True, nonnegative=True), sched.formula())
        for k in (0, 1, 3, 5, 12):
            assert float(f(k)) == pytest.approx(sched(k), rel=1e-12), (sched, k)


@pytest.mark.parametrize("kind,cfg,sched", [
    ("Adam", dict(), schedules.cosine(0.05, total_steps=8, min_lr=0.001)),
    ("SGD", dict(momentum=0.9), schedules.step(0.1, step_size=3, gamma=0.5)),
    ("RMSProp", dict(), schedules.linear_warmup(0.01, warmup_steps=4)),
])
def test_learning_rate_schedule_is_applied_per_step(kind, cfg, sched):
    X, Y, params, loss = _model()
    start = [p.value.copy() for p in params]
    step = sg.compile_step(loss, getattr(sg.optim, kind)(lr=sched, **cfg), inputs=[X, Y])
    batches = _batches()
    for Xv, Yv in batches:
        step(Xv, Yv)
    want, _ = _reference(kind, cfg, start, batches, sched)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-11, atol=1e-13)
    assert step.optimizer.lr_at(3) == sched(3)


# ----------------------------------------------------------------- formulas
def _sym(expr, name):
    found = [s for s in expr.free_symbols if s.name == name]
    return found[0] if found else sympy.Symbol(name, real=True)


POSITIVE = {"v", "s", "beta_1", "beta_2", "epsilon", "eta", "t", "alpha", "mu", "c", "lambda"}


def _equal(a, b):
    """a − b simplifies to 0, with the quantities that are positive in an optimizer declared so
    (√(v / (1 − β₂ᵗ)) = √v / √(1 − β₂ᵗ) needs v ≥ 0)."""
    diff = a - b
    pos = {s: sympy.Symbol(s.name, positive=True) for s in diff.free_symbols if s.name in POSITIVE}
    diff = diff.subs(pos)
    # 1 − βᵗ > 0 for 0 < β < 1: name it q > 0
    for name in ("beta_1", "beta_2"):
        beta = [s for s in diff.free_symbols if s.name == name]
        t = [s for s in diff.free_symbols if s.name == "t"]
        if beta and t:
            diff = diff.subs(beta[0] ** t[0], 1 - sympy.Symbol("q" + name[-1], positive=True))
    return sympy.simplify(diff) == 0


def test_adam_formulas_are_the_textbook_rule():
    f = sg.optim.Adam(lr=1e-3).formulas()
    assert list(f) == ["m", "v", "theta"]
    syms = {}
    for expr in f.values():
        for s in expr.free_symbols:
            syms[s.name] = s
    b1, b2, g, m, v = (syms[n] for n in ("beta_1", "beta_2", "g", "m", "v"))
    eta, eps, t, theta = (syms[n] for n in ("eta", "epsilon", "t", "theta"))
    assert _equal(f["m"], b1 * m + (1 - b1) * g)
    assert _equal(f["v"], b2 * v + (1 - b2) * g ** 2)
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    assert _equal(f["theta"], theta - eta * m_hat / (sympy.sqrt(v_hat) + eps))
    tex = f.latex()
    assert "\\beta_{1}" in tex and "\\leftarrow" in tex and tex.startswith("\\begin{aligned}")
    assert "β₁" in str(f) and "←" in str(f)


def test_sgd_adagrad_rmsprop_adamw_formulas():
    f = sg.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01).formulas()
    theta, g, b = _sym(f["g"], "theta"), _sym(f["g"], "g"), _sym(f["b"], "b")
    lam, mu, eta = _sym(f["g"], "lambda"), _sym(f["b"], "mu"), _sym(f["theta"], "eta")
    assert _equal(f["g"], g + lam * theta)
    assert _equal(f["b"], mu * b + g)
    assert _equal(f["theta"], theta - eta * (g + mu * b))
    f = sg.optim.AdaGrad(lr=0.1).formulas()
    s, eps = _sym(f["s"], "s"), _sym(f["theta"], "epsilon")
    assert _equal(f["s"], s + g ** 2)
    assert _equal(f["theta"], theta - eta * g / (sympy.sqrt(s) + eps))
    f = sg.optim.RMSProp(lr=0.1, momentum=0.5).formulas()
    al, v = _sym(f["v"], "alpha"), _sym(f["v"], "v")
    assert _equal(f["v"], al * v + (1 - al) * g ** 2)
    assert _equal(f["b"], mu * b + g / (sympy.sqrt(v) + eps))
    f = sg.optim.AdamW(lr=0.1, weight_decay=0.01).formulas()
    assert "g" not in f  # decoupled: the gradient is not changed
    assert _equal(sympy.diff(f["theta"], _sym(f["theta"], "lambda")), -eta * theta)


def test_clipping_formulas():
    f = sg.optim.SGD(lr=0.1, clip_value=0.5).formulas()
    g, c = _sym(f["g"], "g"), _sym(f["g"], "c")
    for gv, cv in [(0.3, 0.5), (2.0, 0.5), (-2.0, 0.5)]:
        assert float(f["g"].subs({g: gv, c: cv})) == max(-cv, min(gv, cv))
    f = sg.optim.Adam(lr=0.1, clip_norm=1.0).formulas()
    g, c = _sym(f["g"], "g"), _sym(f["g"], "c")
    for gv in (0.5, -3.0):
        assert float(f["g"].subs({g: gv, c: 1.0})) == gv * 1.0 / max(abs(gv), 1.0)


# ----------------------------------------------------------------- the step object
def test_step_interface_outputs_evaluate_and_in_place_updates():
    X = sg.var("X", shape=("batch", 2))
    Y = sg.var("Y", shape=("batch",), dtype="int")
    model = sg.nn.MLP([2, 5, 3], activation="relu", seed=0)
    logits = model(X)
    loss = sg.losses.cross_entropy(logits, Y)
    opt = sg.optim.Adam(lr=0.01)
    step = sg.compile_step(loss, opt, inputs=[X, Y], outputs=[logits])
    assert step.inputs == [X, Y] and step.optimizer is opt and step.t == 0
    assert [p.name for p in step.params] == [p.name for p in model.parameters()]
    assert "def step(" in step.source and "# grad of:" in step.source
    rng = np.random.default_rng(0)
    Xv, Yv = rng.normal(size=(8, 2)), rng.integers(0, 3, 8)
    before = [p.value.copy() for p in step.params]
    want_loss, want_logits = sg.evaluate([loss, logits], {"X": Xv, "Y": Yv})
    ev = step.evaluate(Xv, Yv)
    assert isinstance(ev, tuple) and isinstance(ev[0], float)
    assert ev[0] == pytest.approx(float(want_loss), rel=1e-13)
    assert all(np.array_equal(p.value, b) for p, b in zip(step.params, before)) and step.t == 0
    out = step(Xv, Yv)
    assert out[0] == pytest.approx(float(want_loss), rel=1e-13)
    np.testing.assert_allclose(out[1], want_logits, rtol=1e-13)
    assert step.t == 1 and not any(np.array_equal(p.value, b) for p, b in zip(step.params, before))
    # restoring in place (as sg.fit does for early stopping) is seen by the next step
    for p, b in zip(step.params, before):
        p.value[...] = b
    assert step.evaluate(Xv, Yv)[0] == pytest.approx(float(want_loss), rel=1e-13)
    step.reset()
    assert step.t == 0 and all(not np.any(a) for st in step.state.values() for a in st.values())
    # keyword call by input name
    assert step(Y=Yv, X=Xv)[0] == pytest.approx(float(want_loss), rel=1e-13)


def test_xor_mlp_trains():
    X = sg.var("X", shape=("batch", 2))
    Y = sg.var("Y", shape=("batch", 1))
    model = sg.nn.MLP([2, 8, 1], activation="tanh", seed=3)
    loss = sg.losses.bce_with_logits(model(X), Y)
    step = sg.compile_step(loss, sg.optim.Adam(lr=0.05), inputs=[X, Y])
    Xv = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Yv = np.array([[0.0], [1.0], [1.0], [0.0]])
    for _ in range(600):
        last = step(Xv, Yv)
    assert last < 0.01


def test_step_with_fit_and_no_inputs():
    x, y = sg.var("x", shape=("batch",)), sg.var("y", shape=("batch",))
    w = sg.param("w", 0.0)
    step = sg.compile_step(sg.losses.mse(w * x, y), sg.optim.SGD(lr=0.1), inputs=[x, y])
    xs = np.linspace(-1, 1, 20)
    sg.fit(step, {"x": xs, "y": 3 * xs}, epochs=30, batch_size=5, seed=0, verbose=0)
    assert float(w.value) == pytest.approx(3.0, abs=1e-3)
    t1, t2 = sg.param("theta1", -9.0), sg.param("theta2", 1.2)
    f = 0.05 * t1 ** 2 + 2.0 * t2 ** 2
    step = sg.compile_step(f, sg.optim.SGD(lr=0.2, momentum=0.8), inputs=[])
    for _ in range(200):
        step()
    assert abs(float(t1.value)) < 1e-3 and abs(float(t2.value)) < 1e-3


def test_only_the_chosen_params_move():
    X, Y, (W, b, a), loss = _model()
    b0, a0 = b.value.copy(), a.value.copy()
    step = sg.compile_step(loss, sg.optim.SGD(lr=0.1), inputs=[X, Y], params=[W])
    Xv, Yv = _batches(1)[0]
    step(Xv, Yv)
    assert np.array_equal(b.value, b0) and np.array_equal(a.value, a0) and step.params == [W]


def test_bad_settings_are_typed_errors():
    for make in (lambda: sg.optim.SGD(lr=-1.0), lambda: sg.optim.SGD(lr=0.1, nesterov=True),
                 lambda: sg.optim.Adam(beta1=1.0), lambda: sg.optim.Adam(clip_norm=0.0),
                 lambda: sg.optim.RMSProp(alpha=-0.1), lambda: sg.optim.AdaGrad(eps="x"),
                 lambda: schedules.step(0.1, step_size=0), lambda: schedules.cosine(0.1, 10, min_lr=1.0)):
        with pytest.raises(sg.OptimizerError):
            make()
    X, Y, params, loss = _model()
    with pytest.raises(sg.GraphError, match="scalar"):
        sg.compile_step(X @ params[0], sg.optim.SGD(), inputs=[X])
    with pytest.raises(sg.GraphError, match="not in the graph"):
        sg.compile_step(loss, sg.optim.SGD(), inputs=[X, Y], params=[sg.param("other", 1.0)])
    with pytest.raises(sg.GraphError, match="optimizer"):
        sg.compile_step(loss, "adam", inputs=[X, Y])
    with pytest.raises(sg.GraphError, match="var 'Y'"):
        sg.compile_step(loss, sg.optim.SGD(), inputs=[X])
    step = sg.compile_step(loss, sg.optim.SGD(), inputs=[X, Y])
    with pytest.raises(sg.FeedError, match="'X'"):
        step(np.zeros((2, 4)), np.zeros((2, 2)))
    assert step.t == 0  # nothing ran


# ----------------------------------------------------------------- float32 param values
def _as32(params):
    for p in params:
        p.value = p.value.astype(np.float32)
    return [p.value for p in params]


@pytest.mark.parametrize("kind,cfg", [("Adam", dict(lr=0.01)), ("SGD", dict(lr=0.05, momentum=0.9))])
def test_float32_params_are_trained_in_place(kind, cfg):
    X, Y, params, loss = _model()
    start = [p.value.copy() for p in params]
    arrays = _as32(params)
    step = sg.compile_step(loss, getattr(sg.optim, kind)(**cfg), inputs=[X, Y], dtype="float32")
    # no float64 master: the params are computed on and updated in their own arrays
    assert "_load" not in step.source and "held as" not in step.source
    batches = _batches()
    for Xv, Yv in batches:
        step(Xv, Yv)
    want, _ = _reference(kind, cfg, start, batches, lambda k: cfg["lr"])
    for p, arr, s, w in zip(params, arrays, start, want):
        assert p.value is arr and p.value.dtype == np.float32
        assert np.abs(p.value - s).max() > 1e-3  # it did move
        np.testing.assert_allclose(p.value, w, rtol=2e-4, atol=2e-5)


def test_param_dtype_changed_between_calls_recompiles():
    X, Y, params, loss = _model()
    W, b, a = params
    start = [p.value.copy() for p in params]
    _as32(params)
    step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[X, Y], dtype="float32")
    direct = step.source
    batches = _batches()
    for Xv, Yv in batches[:4]:
        step(Xv, Yv)
    W.value = W.value.astype(np.float64)  # a float64 value from now on: a master copy again
    master = W.value
    for Xv, Yv in batches[4:7]:
        step(Xv, Yv)
    assert step.source != direct and "held as float64" in step.source and step.t == 7
    assert W.value is master and W.value.dtype == np.float64
    W.value = W.value.astype(np.float32)  # and back: the first variant again, not a third compile
    for Xv, Yv in batches[7:]:
        step(Xv, Yv)
    assert step.source == direct and len(step._variants) == 2
    want, _ = _reference("Adam", dict(lr=0.01), start, batches, lambda k: 0.01)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=2e-4, atol=2e-5)


def test_float64_step_with_a_float32_param():
    X, Y, params, loss = _model()
    W, b, a = params
    start = [p.value.copy() for p in params]
    W.value = W.value.astype(np.float32)
    held = W.value
    step = sg.compile_step(loss, sg.optim.SGD(lr=0.05), inputs=[X, Y])
    batches = _batches()
    for Xv, Yv in batches:
        step(Xv, Yv)
    want, _ = _reference("SGD", dict(lr=0.05), start, batches, lambda k: 0.05)
    assert W.value is held and W.value.dtype == np.float32  # updated where it is held
    np.testing.assert_allclose(W.value, want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.value, want[1], rtol=1e-5, atol=1e-6)
    assert b.value.dtype == np.float64


def test_param_of_another_dtype_is_a_state_error():
    X, Y, params, loss = _model()
    W = params[0]
    object.__setattr__(W, "_value", np.zeros(W.shape, dtype=np.int64))  # past the setter, which converts
    with pytest.raises(sg.StateError, match="param 'W'.*int64"):
        sg.compile_step(loss, sg.optim.SGD(lr=0.1), inputs=[X, Y])


def test_float32_params_work_with_evaluate_fit_and_save(tmp_path):
    model = sg.nn.MLP([2, 4, 1], activation="tanh", seed=0)
    _as32(model.parameters())
    X, Y = sg.var("X", shape=("batch", 2)), sg.var("Y", shape=("batch", 1))
    loss = sg.losses.mse(model(X), Y)
    rng = np.random.default_rng(0)
    Xv = rng.normal(size=(64, 2)).astype(np.float32)
    Yv = (Xv[:, :1] * Xv[:, 1:]).astype(np.float32)
    before = float(sg.evaluate(loss, {"X": Xv, "Y": Yv}))
    step = sg.compile_step(loss, sg.optim.Adam(lr=0.05), inputs=[X, Y], dtype="float32")
    sg.fit(step, {"X": Xv, "Y": Yv}, epochs=20, batch_size=16, seed=0, verbose=0)
    after = float(sg.evaluate(loss, {"X": Xv, "Y": Yv}))
    assert after < 0.5 * before
    assert all(p.value.dtype == np.float32 for p in model.parameters())
    assert step.evaluate(Xv, Yv) == pytest.approx(after, rel=1e-4)
    path = sg.save(tmp_path / "m.npz", model)
    again = sg.load(path)
    for p, q in zip(model.parameters(), again.parameters()):
        np.testing.assert_array_equal(p.value, q.value)  # float32 values come back exactly
