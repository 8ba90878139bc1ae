"""Batch norm (1-d and 2-d): values and every gradient against a NumPy reference written here,
running statistics updated by compiled steps (PyTorch's rule), the evaluation graph, buffers in
state dicts and files, the printed update rule and backward pass, and PyTorch where installed."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.errors import GraphError, ShapeError


def _bn_reference(x, gamma, beta, eps, axes):
    """Training-mode batch norm and its backward pass by hand (per-feature statistics over ``axes``)."""
    shape = [1] * x.ndim
    shape[1] = x.shape[1]
    g, b = gamma.reshape(shape), beta.reshape(shape)
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    y = g * xhat + b

    def backward(dy):
        n = np.prod([x.shape[a] for a in axes])
        dgamma = (dy * xhat).sum(axis=axes)
        dbeta = dy.sum(axis=axes)
        dxhat = dy * g
        dx = inv / n * (n * dxhat - dxhat.sum(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
        return dx, dgamma, dbeta
    return y, backward, mu.reshape(-1), x.var(axis=axes, ddof=1).reshape(-1)


@pytest.mark.parametrize("kind, shape", [("1d", (6, 3)), ("2d", (4, 3, 5, 5))])
def test_training_values_and_gradients_match_the_reference(kind, shape):
    rng = np.random.default_rng(0)
    layer = (sg.nn.BatchNorm1d if kind == "1d" else sg.nn.BatchNorm2d)(3, eps=1e-3, name="bn")
    layer.gamma.value = rng.uniform(0.5, 2.0, 3)
    layer.beta.value = rng.normal(size=3)
    x = sg.var("x", shape=("batch",) + shape[1:])
    R = sg.var("R", shape=("batch",) + shape[1:])
    y = layer(x)
    L = sg.sum(y * R)
    xs, rs = rng.normal(2.0, 3.0, shape), rng.normal(size=shape)
    axes = (0,) if kind == "1d" else (0, 2, 3)
    want_y, backward, _, _ = _bn_reference(xs, layer.gamma.value, layer.beta.value, 1e-3, axes)
    got_y, *grads = sg.evaluate([y] + sg.grad(L, [x, layer.gamma, layer.beta]), {"x": xs, "R": rs})
    np.testing.assert_allclose(got_y, want_y, atol=1e-12)
    for got, want in zip(grads, backward(rs)):
        np.testing.assert_allclose(got, want, atol=1e-10)
    sg.check_grad(L, [x, layer.gamma, layer.beta], {"x": xs, "R": rs})


def test_running_statistics_follow_pytorchs_update_over_several_steps():
    rng = np.random.default_rng(1)
    bn = sg.nn.BatchNorm1d(4, momentum=0.2, name="bn")
    X = sg.var("X", shape=("batch", 4))
    step = sg.compile_step(sg.mean(bn(X) ** 2), sg.optim.SGD(lr=0.1), inputs=[X])
    rm, rv = np.zeros(4), np.ones(4)
    for _ in range(5):
        xs = rng.normal(1.0, 2.0, (8, 4))
        step(xs)
        rm = 0.8 * rm + 0.2 * xs.mean(axis=0)
        rv = 0.8 * rv + 0.2 * xs.var(axis=0, ddof=1)
    np.testing.assert_allclose(bn.running_mean.value, rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.value, rv, rtol=1e-12)
    assert step.buffers == [bn.running_mean, bn.running_var]


def test_evaluate_and_compile_leave_the_buffers_alone():
    bn = sg.nn.BatchNorm1d(2, name="bn")
    X = sg.var("X", shape=("batch", 2))
    y = bn(X)
    xs = np.array([[1.0, 2.0], [3.0, 5.0]])
    sg.evaluate(y, {"X": xs})
    sg.compile(y, [X])(xs)
    np.testing.assert_array_equal(bn.running_mean.value, [0.0, 0.0])
    np.testing.assert_array_equal(bn.running_var.value, [1.0, 1.0])


def test_eval_graph_reads_the_running_statistics_at_each_call_and_shares_parameters():
    bn = sg.nn.BatchNorm2d(2, eps=1e-5, name="bn")
    x = sg.var("x", shape=("batch", 2, 3, 3))
    train_y = bn(x)
    bn.eval()
    eval_y = bn(x)
    assert not any(n.kind == "random" for n in sg.Graph(eval_y).order)
    assert sg.Graph(eval_y).buffers == [bn.running_mean, bn.running_var]
    assert set(sg.Graph(train_y).params) == set(sg.Graph(eval_y).params) == {bn.gamma, bn.beta}
    f = sg.compile(eval_y, [x])
    bn.running_mean.value = np.array([1.0, -1.0])
    bn.running_var.value = np.array([4.0, 0.25])
    bn.gamma.value = np.array([2.0, 1.0])
    xs = np.random.default_rng(2).normal(size=(2, 2, 3, 3))
    want = (xs - np.array([1.0, -1.0])[:, None, None]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)[:, None, None]
    want *= np.array([2.0, 1.0])[:, None, None]
    np.testing.assert_allclose(f(xs), want, rtol=1e-12)
    np.testing.assert_allclose(sg.evaluate(eval_y, {"x": xs}), want, rtol=1e-12)


def test_float32_step_updates_float64_running_statistics():
    bn = sg.nn.BatchNorm1d(3, name="bn")
    X = sg.var("X", shape=("batch", 3))
    step = sg.compile_step(sg.mean(bn(X) ** 2), sg.optim.Adam(lr=0.01), inputs=[X], dtype="float32")
    xs = np.random.default_rng(3).normal(size=(16, 3))
    step(xs)
    assert bn.running_mean.value.dtype == np.float64
    np.testing.assert_allclose(bn.running_mean.value, 0.1 * xs.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.value, 0.9 + 0.1 * xs.var(axis=0, ddof=1), rtol=1e-5)


def test_buffers_are_saved_and_loaded_with_the_parameters(tmp_path):
    bn = sg.nn.BatchNorm1d(2, name="bn")
    bn.running_mean.value = np.array([0.5, -0.5])
    bn.running_var.value = np.array([2.0, 3.0])
    state = bn.state_dict()
    assert sorted(state) == ["bn.beta", "bn.gamma", "bn.running_mean", "bn.running_var"]
    path = sg.save(tmp_path / "bn.npz", bn)
    other = sg.nn.BatchNorm1d(2, name="bn")
    sg.load(path, into=other)
    np.testing.assert_array_equal(other.running_var.value, [2.0, 3.0])
    assert [n for n, _ in other.named_buffers()] == ["bn.running_mean", "bn.running_var"]


def test_update_rule_prints_like_an_optimizer_rule():
    bn = sg.nn.BatchNorm1d(2, momentum=0.25, name="bn")
    y = bn(sg.var("X", shape=(4, 2)))
    rules = sg.ops.state.update_rules(y)
    assert list(rules) == ["bn.running_mean", "bn.running_var"]
    sym = {s.name: s for e in rules.values() for s in e.free_symbols}
    mu, var, rm, rv = (sym[k] for k in ("bn.mu", "bn.var", "bn.running_mean", "bn.running_var"))
    def zero(e):
        return sympy.simplify(sympy.Matrix(e.as_explicit())).is_zero_matrix
    assert zero(rules["bn.running_mean"] - (mu / 4 + 3 * rm / 4))
    assert zero(rules["bn.running_var"] - (var / 3 + 3 * rv / 4))  # 1/4 of the unbiased 4/3·var
    assert str(rules).startswith("bn.running_mean ← ")
    assert r"\mathrm{bn.running\_var} &\leftarrow" in rules.latex()


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(GraphError, match="eps must be > 0"):
        sg.nn.BatchNorm1d(2, eps=0.0)
    with pytest.raises(GraphError, match=r"momentum must lie in \[0, 1\]"):
        sg.nn.BatchNorm1d(2, momentum=1.5)
    with pytest.raises(ShapeError, match="expected a 2-d input with 3 features on axis 1"):
        sg.nn.BatchNorm1d(3)(sg.var("x", shape=("batch", 4)))
    with pytest.raises(ShapeError, match="expected a 4-d input"):
        sg.nn.BatchNorm2d(3)(sg.var("x", shape=("batch", 3)))
    bn = sg.nn.BatchNorm1d(2)
    x = sg.var("x", shape=("batch", 2))
    with pytest.raises(GraphError, match="updated twice in one graph"):
        sg.compile_step(sg.sum(bn(x)) + sg.sum(bn(x * 2.0)), sg.optim.SGD(lr=0.1), inputs=[x])


# ------------------------------------------------------------------ PyTorch
def test_batchnorm1d_and_2d_match_pytorch_values_gradients_and_running_statistics():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for kind, shape in (("1d", (8, 3)), ("2d", (4, 3, 5, 5))):
        ours = (sg.nn.BatchNorm1d if kind == "1d" else sg.nn.BatchNorm2d)(3, eps=1e-4, momentum=0.3, name="bn")
        theirs = (torch.nn.BatchNorm1d if kind == "1d" else torch.nn.BatchNorm2d)(3, eps=1e-4, momentum=0.3).double()
        g0, b0 = rng.uniform(0.5, 1.5, 3), rng.normal(size=3)
        ours.gamma.value, ours.beta.value = g0.copy(), b0.copy()
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(g0))
            theirs.bias.copy_(torch.tensor(b0))
        x = sg.var("x", shape=("batch",) + shape[1:])
        R = sg.var("R", shape=("batch",) + shape[1:])
        L = sg.sum(ours(x) * R)
        step = sg.compile_step(L, sg.optim.SGD(lr=0.05), inputs=[x, R])
        opt = torch.optim.SGD(theirs.parameters(), lr=0.05)
        for _ in range(4):
            xs, rs = rng.normal(1.0, 2.0, shape), rng.normal(size=shape)
            xt = torch.tensor(xs, requires_grad=True)
            out = theirs(xt)
            loss = (out * torch.tensor(rs)).sum()
            opt.zero_grad()
            loss.backward()
            got = sg.evaluate([ours(x) * 1.0] + sg.grad(L, [x]), {"x": xs, "R": rs})
            np.testing.assert_allclose(got[0], out.detach().numpy(), atol=1e-10)
            np.testing.assert_allclose(got[1], xt.grad.numpy(), atol=1e-10)
            assert step(xs, rs) == pytest.approx(loss.item(), rel=1e-10)
            opt.step()
        np.testing.assert_allclose(ours.gamma.value, theirs.weight.detach().numpy(), atol=1e-10)
        np.testing.assert_allclose(ours.beta.value, theirs.bias.detach().numpy(), atol=1e-10)
        np.testing.assert_allclose(ours.running_mean.value, theirs.running_mean.numpy(), atol=1e-12)
        np.testing.assert_allclose(ours.running_var.value, theirs.running_var.numpy(), atol=1e-12)
        theirs.eval()
        ours.eval()
        xs = rng.normal(size=shape)
        np.testing.assert_allclose(sg.evaluate(ours(x), {"x": xs}), theirs(torch.tensor(xs)).detach().numpy(),
                                   atol=1e-10)
        ours.train()


def test_dropout_matches_pytorch_in_evaluation_and_by_statistics_in_training():
    torch = pytest.importorskip("torch")
    xs = np.random.default_rng(6).uniform(1.0, 2.0, (50, 400))
    x = sg.var("x", shape=("batch", 400))
    drop = sg.nn.Dropout(0.2, name="drop")
    ours = sg.evaluate(drop(x), {"x": xs}, seed=0)
    theirs = torch.nn.Dropout(0.2)(torch.tensor(xs)).numpy()
    assert abs((ours == 0).mean() - (theirs == 0).mean()) < 0.01
    np.testing.assert_allclose(ours[ours != 0] / xs[ours != 0], 1.25)  # kept entries scaled by 1/(1 − p)
    np.testing.assert_allclose(theirs[theirs != 0] / xs[theirs != 0], 1.25)
    drop.eval()
    np.testing.assert_array_equal(sg.evaluate(drop(x), {"x": xs}),
                                  torch.nn.Dropout(0.2).eval()(torch.tensor(xs)).numpy())


def test_drawings_say_which_mode_a_graph_was_built_in_and_group_the_statistics_with_their_layer():
    net = sg.nn.Sequential(sg.nn.Linear(4, 6, name="fc"), sg.nn.BatchNorm1d(6, name="bn"), sg.nn.ReLU(),
                           sg.nn.Dropout(0.2, name="drop"), sg.nn.Linear(6, 2, name="out"), name="net")
    X = sg.var("X", shape=("batch", 4))
    train_dot = sg.draw(sg.sum(net(X))).source
    assert 'label="training graph — random at each call: net.3.mask; a training step updates ' \
           'net.1.running_mean, net.1.running_var"' in train_dot
    net.eval()
    eval_dot = sg.draw(sg.sum(net(X))).source
    assert 'label="evaluation graph — reads net.1.running_mean, net.1.running_var"' in eval_dot
    assert "Bernoulli" not in eval_dot
    cluster = eval_dot[eval_dot.index("label=\"net.1\""):]
    cluster = cluster[:cluster.index("}")]
    assert "running_mean" in cluster and "cylinder" in cluster


@pytest.mark.parametrize("norm, steps", [
    # the textbook steps of each backward pass, each a matrix formula: δx̂ = γ ⊙ δy, then δσ², δμ, δh
    (lambda: sg.nn.BatchNorm1d(2, name="n"), ("δ_n.x̂ =", "δ_n.var =", "δ_n.xc =", "δ_n.μ =")),
    (lambda: sg.nn.LayerNorm(2, name="n"), ("δ_n.x̂ =", "δ_n.var =", "δ_n.μ =")),
], ids=["batch_norm", "layer_norm"])
def test_norm_backward_prints_in_matrix_notation_and_evaluates_to_the_gradient(norm, steps):
    rng = np.random.default_rng(4)
    X = sg.var("X", shape=("batch", 3))
    layer = norm()
    V = sg.param("V", rng.normal(size=(3, 2)))
    W = sg.param("W", rng.normal(size=(2, 2)))
    L = sg.sum(sg.tanh(layer((X @ V).named("h")) @ W)).named("L")
    params = [V, W, layer.gamma, layer.beta]
    eq = sg.backprop_equations(L, params)
    text = str(eq)
    back = text.split("backward:")[1]
    for lhs in steps + ("δ_h =", "∂L/∂n.γ =", "∂L/∂V ="):
        assert lhs in back
    assert "[" not in back and "Σ_" not in back
    assert "keepdims" not in text  # Var(h), not Var_keepdims=True(h): the (batch, 1) shape says it
    assert r"\delta_{\mathrm{n.}\hat{x}}" in eq.latex()
    feeds = {"X": rng.normal(size=(5, 3))}
    got = eq.evaluate(feeds)
    want = sg.evaluate(sg.grad(L, params), feeds)
    for label, w in zip(["∂L/∂V", "∂L/∂W", "∂L/∂n.gamma", "∂L/∂n.beta"], want):
        np.testing.assert_allclose(got[label], w, atol=1e-12)


def test_fit_validates_on_the_evaluation_graph_when_the_step_has_one():
    """With eval_loss=, step.evaluate and fit's validation use the evaluation-mode model: the same batch
    gives the same loss every time (no fresh dropout masks) and batch norm reads its running statistics."""
    rng = np.random.default_rng(0)
    net = sg.nn.Sequential(sg.nn.Linear(4, 8, seed=0), sg.nn.BatchNorm1d(8), sg.nn.ReLU(), sg.nn.Dropout(0.5),
                           sg.nn.Linear(8, 1, seed=1), name="net")
    X, T = sg.var("X", shape=("batch", 4)), sg.var("T", shape=("batch", 1))
    loss = sg.losses.mse(net(X), T)
    net.eval()
    eval_loss = sg.losses.mse(net(X), T)
    net.train()
    step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[X, T], eval_loss=eval_loss, seed=0)
    xs, ts = rng.normal(size=(32, 4)), rng.normal(size=(32, 1))
    hist = sg.fit(step, {"X": xs, "T": ts}, validation={"X": xs, "T": ts}, epochs=2, batch_size=8, verbose=0)
    assert step.evaluate(xs, ts) == step.evaluate(xs, ts) == pytest.approx(hist["val_loss"][-1])
    want = sg.evaluate(eval_loss, {"X": xs, "T": ts})  # running statistics, no mask
    assert step.evaluate(xs, ts) == pytest.approx(float(want), rel=1e-12)
    with pytest.raises(sg.errors.GraphError, match="eval_outputs must match outputs"):
        sg.compile_step(loss, sg.optim.SGD(lr=0.1), inputs=[X, T], eval_loss=eval_loss, eval_outputs=[X])
