"""Random nodes (sg.random), sg.dropout and the Dropout layer: draws, seeds, shapes, compiled code,
gradients through random values, printing and drawing."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.errors import GraphError, ShapeError


def _xvar(shape=("batch", 3)):
    return sg.var("x", shape=shape)


def test_normal_draws_have_the_asked_mean_and_std():
    eps = sg.random.normal((20000,), mean=2.0, std=0.5)
    v = sg.evaluate(eps, seed=0)
    assert abs(v.mean() - 2.0) < 0.02 and abs(v.std() - 0.5) < 0.01


def test_uniform_and_bernoulli_statistics():
    u = sg.evaluate(sg.random.uniform((20000,), low=-3.0, high=1.0), seed=1)
    assert u.min() >= -3.0 and u.max() < 1.0 and abs(u.mean() + 1.0) < 0.05
    m = sg.evaluate(sg.random.bernoulli(0.3, (20000,)), seed=2)
    assert set(np.unique(m)) == {0.0, 1.0} and abs(m.mean() - 0.3) < 0.01


def test_each_evaluation_draws_afresh_and_a_seed_repeats_the_draw():
    x = _xvar()
    y = x + sg.random.normal(like=x)
    feeds = {"x": np.zeros((4, 3))}
    a, b = sg.evaluate(y, feeds), sg.evaluate(y, feeds)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(sg.evaluate(y, feeds, seed=5), sg.evaluate(y, feeds, seed=5))


def test_one_random_node_has_one_value_per_evaluation_in_every_consumer():
    eps = sg.random.normal((3,))
    a, b = sg.evaluate([eps * 2.0, eps + 1.0], seed=0)
    np.testing.assert_allclose(a / 2.0, b - 1.0)


def test_symbolic_dims_come_from_the_inputs():
    x = _xvar(("batch", 2))
    eps = sg.random.normal(("batch", 5))
    out = sg.evaluate(sg.sum(x, axis=1, keepdims=True) + eps, {"x": np.ones((7, 2))}, seed=0)
    assert out.shape == (7, 5)
    with pytest.raises(ShapeError, match="needs dim 'seq', which no input fixes"):
        sg.evaluate(sg.random.normal(("seq",)) + 1.0, seed=0)
    with pytest.raises(GraphError, match="needs dim 'seq', which no input fixes"):
        sg.compile(sg.random.normal(("seq",)) + x[0, 0], [x])


def test_compiled_function_draws_what_evaluate_draws_with_the_same_seed():
    x = _xvar()
    y = sg.tanh(x + sg.random.normal(like=x, std=0.3)) * sg.random.bernoulli(0.6, like=x, name="mask") \
        + sg.random.uniform(("batch", 1), low=-1.0, high=2.0)
    xs = np.random.default_rng(3).normal(size=(5, 3))
    f = sg.compile(y, [x], seed=11)
    np.testing.assert_allclose(f(xs), sg.evaluate(y, {"x": xs}, seed=11), rtol=0, atol=0)
    assert not np.array_equal(f(xs), f(xs))  # fresh draws at every call
    f.seed(11)
    np.testing.assert_array_equal(f(xs), sg.evaluate(y, {"x": xs}, seed=11))
    assert "standard_normal((d_batch, 3), dtype=_DT)  # ε ~ 𝒩(0, 0.09)" in f.source
    f32 = sg.compile(y, [x], seed=11, dtype="float32")
    assert f32(xs).dtype == np.float32


def test_a_fed_random_node_is_not_drawn():
    x = _xvar()
    eps = sg.random.normal(like=x)
    fixed = np.full((2, 3), 0.25)
    np.testing.assert_array_equal(sg.evaluate(x + eps, {"x": np.zeros((2, 3)), "ε": fixed}), fixed)


def test_reparameterisation_gradients_go_through_the_drawn_values():
    mu, s = sg.var("mu", shape=("batch", 2)), sg.var("s", shape=("batch", 2))
    eps = sg.random.normal(like=mu)
    z = mu + s * eps
    L = sg.sum(z * z)
    dmu, ds = sg.grad(L, [mu, s])
    assert str(sg.formula(sg.grad(sg.sum(z), [s])[0])) == "ε"
    feeds = {"mu": np.ones((3, 2)), "s": np.full((3, 2), 2.0)}
    e, gm, gs = sg.evaluate([eps, dmu, ds], feeds, seed=4)
    np.testing.assert_allclose(gm, 2 * (1 + 2 * e))
    np.testing.assert_allclose(gs, 2 * (1 + 2 * e) * e)


def test_random_nodes_check_their_arguments():
    with pytest.raises(GraphError, match="std must be >= 0"):
        sg.random.normal((2,), std=-1.0)
    with pytest.raises(GraphError, match="low must be <= high"):
        sg.random.uniform((2,), low=1.0, high=0.0)
    with pytest.raises(GraphError, match=r"p must lie in \[0, 1\]"):
        sg.random.bernoulli(1.5, (2,))
    with pytest.raises(GraphError, match="give a shape or like=, not both"):
        sg.random.normal((2,), like=_xvar())
    with pytest.raises(GraphError, match="give a shape"):
        sg.random.normal()
    with pytest.raises(GraphError, match="seed must be None, an int >= 0"):
        sg.evaluate(sg.random.normal((2,)), seed=-1)
    with pytest.raises(GraphError, match="mean must be finite"):
        sg.random.normal((2,), mean=float("nan"))


def test_two_random_nodes_with_one_name_are_refused():
    a, b = sg.random.normal((2,)), sg.random.normal((2,))
    with pytest.raises(GraphError, match="both named 'ε'"):
        sg.evaluate(a + b)


def test_backprop_equations_list_the_distribution_and_evaluate_with_one_draw():
    X = sg.var("X", shape=("batch", 3))
    W = sg.param("W", np.random.default_rng(0).normal(size=(3, 2)))
    V = sg.param("V", np.random.default_rng(1).normal(size=(3, 2)))
    mu, logvar = (X @ W).named("mu"), (X @ V).named("logvar")
    sigma = sg.exp(0.5 * logvar).named("sigma")
    z = (mu + sigma * sg.random.normal(like=mu)).named("z")
    L = sg.sum(z * z).named("L")
    eq = sg.backprop_equations(L, [W, V])
    text = str(eq)
    assert "ε ~ 𝒩(0, 1)" in text and "δ_σ = δ_z ⊙ ε" in text and "δ_μ = δ_z" in text
    assert r"\epsilon &\sim \mathcal{N}(0, 1)" in eq.latex()
    feeds = {"X": np.random.default_rng(2).normal(size=(4, 3))}
    got = eq.evaluate(feeds, seed=9)
    want = sg.evaluate(sg.grad(L, [W, V]), feeds, seed=9)
    np.testing.assert_allclose(got["∂L/∂W"], want[0])
    np.testing.assert_allclose(got["∂L/∂V"], want[1])


def test_drawing_shows_the_random_node_as_its_own_kind():
    x = _xvar()
    y = sg.sum(x * sg.random.normal(like=x))
    dot = sg.draw(y).source
    line = next(ln for ln in dot.splitlines() if "ε ~ 𝒩(0, 1)" in ln)
    assert "#fce7f3" in line and "dashed" in line
    assert "random (drawn each call)" in dot


# ------------------------------------------------------------------ dropout
def test_dropout_statistics_scaling_and_zero_gradient_where_dropped():
    x = sg.var("x", shape=("batch", 1000))
    y = sg.dropout(x, 0.3)
    (g,) = sg.grad(sg.sum(y * y), [x])
    xs = np.random.default_rng(0).uniform(1.0, 2.0, size=(20, 1000))
    v, gv = sg.evaluate([y, g], {"x": xs}, seed=1)
    dropped = v == 0
    assert abs(dropped.mean() - 0.3) < 0.01
    np.testing.assert_allclose(v[~dropped], xs[~dropped] / 0.7)
    assert abs(v.mean() / xs.mean() - 1.0) < 0.01  # the mean is preserved
    assert np.all(gv[dropped] == 0.0)
    np.testing.assert_allclose(gv[~dropped], 2 * xs[~dropped] / 0.7 ** 2)


def test_dropout_masks_repeat_with_the_seed_and_differ_without():
    x = sg.var("x", shape=("batch", 50))
    y = sg.dropout(x, 0.5)
    f, g = sg.compile(y, [x], seed=3), sg.compile(y, [x], seed=3)
    xs = np.ones((4, 50))
    np.testing.assert_array_equal(f(xs), g(xs))
    assert not np.array_equal(f(xs), f(xs))


def test_dropout_edge_probabilities_and_eval_mode():
    x = _xvar()
    assert sg.dropout(x, 0.0) is x and sg.dropout(x, 0.7, training=False) is x
    np.testing.assert_array_equal(sg.evaluate(sg.dropout(x, 1.0), {"x": np.ones((2, 3))}), np.zeros((2, 3)))
    with pytest.raises(GraphError, match=r"p must lie in \[0, 1\]"):
        sg.dropout(x, -0.1)
    with pytest.raises(GraphError, match="training must be True or False"):
        sg.dropout(x, 0.5, training="yes")


def test_dropout_module_follows_the_mode_and_names_each_mask():
    drop = sg.nn.Dropout(0.5, name="drop")
    x = _xvar()
    y1, y2 = drop(x), drop(x * 2.0)
    names = sorted(n.name for n in sg.Graph([y1, y2]).randoms)
    assert names == ["drop.mask", "drop.mask2"]
    drop.eval()
    assert drop(x) is x and not drop.training
    drop.train()
    assert drop(x) is not x
    with pytest.raises(GraphError, match="p must be a number in"):
        sg.nn.Dropout(2.0)


def test_fit_draws_a_fresh_mask_every_batch_and_a_seed_repeats_training():
    def run(seed):
        X = sg.var("X", shape=("batch", 4))
        T = sg.var("T", shape=("batch", 1))
        w = sg.param("w", np.full((4, 1), 0.1))
        pred = sg.dropout(X, 0.5) @ w
        step = sg.compile_step(sg.losses.mse(pred, T), sg.optim.SGD(lr=0.05), inputs=[X, T])
        rng = np.random.default_rng(0)
        xs = rng.normal(size=(64, 4))
        ts = xs @ np.array([[1.0], [-1.0], [0.5], [2.0]])
        hist = sg.fit(step, {"X": xs, "T": ts}, epochs=3, batch_size=8, seed=seed, verbose=0)
        return w.value.copy(), hist["loss"]

    w1, l1 = run(7)
    w2, l2 = run(7)
    w3, _ = run(8)
    np.testing.assert_array_equal(w1, w2)
    assert l1 == l2
    assert not np.array_equal(w1, w3)


def test_step_seed_reseeds_the_draws():
    x = sg.var("x", shape=("batch", 3))
    w = sg.param("w", np.ones(3))
    L = sg.sum(sg.dropout(x, 0.5) * w)
    step = sg.compile_step(L, sg.optim.SGD(lr=0.1), inputs=[x], seed=1)
    xs = np.ones((2, 3))
    first = step.evaluate(xs)
    step.seed(1)
    assert step.evaluate(xs) == first
    with pytest.raises(GraphError, match="seed must be an int >= 0"):
        step.seed(-2)


def test_random_node_expression_is_printed_by_name():
    x = _xvar((3,))
    eps = sg.random.normal(like=x)
    expr = sg.formula(x + 2 * eps)
    e, xs = sympy.MatrixSymbol("ε", 3, 1), sympy.MatrixSymbol("x", 3, 1)
    assert sympy.simplify(sympy.Matrix(expr) - sympy.Matrix(xs + 2 * e)) == sympy.zeros(3, 1)
