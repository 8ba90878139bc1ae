"""Printed formulas as a user reads them: lhs = rhs on one baseline, closed forms over data,
max/min and the optimizer rules in 2-D text and LaTeX."""
import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.errors import GraphError


def test_scalar_over_constant_data_is_a_closed_form():
    """J(θ) = 1/(2m) Σ (θ xᵢ − yᵢ)² over fixed data prints as a polynomial in θ, not a Σ of a Matrix."""
    theta = sg.param("theta1", 0.0)
    xs, ys = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])
    J = sg.sum((theta * sg.const(xs) - sg.const(ys)) ** 2) / 6
    dJ = sg.grad(J, theta)
    t = sympy.Symbol("theta1", real=True)
    assert sympy.simplify(sg.formula(J) - sympy.Rational(7, 3) * (t - 1) ** 2) == 0
    assert sympy.simplify(sg.formula(dJ) - sympy.Rational(14, 3) * (t - 1)) == 0
    assert sg.formula(sg.grad(dJ, theta)) == sympy.Rational(14, 3)
    assert not sg.formula(J).has(sympy.MatrixBase)
    # the closed form agrees with evaluation at another θ
    theta.value = 0.25
    assert float(sg.formula(J).subs(t, 0.25)) == pytest.approx(float(sg.evaluate(J)))


def test_tensor_vars_still_print_in_matrix_notation():
    x, y = sg.var("x", shape=("n",)), sg.var("y", shape=("n",))
    w = sg.param("w", 1.0)
    f = sg.formula(sg.losses.mse(w * x, y))
    assert f.has(sympy.MatrixSymbol)


def test_pretty_lhs_sits_on_the_baseline():
    x, w = sg.var("x"), sg.param("w", 0.5)
    text = sg.pretty(sg.sigmoid(w * x) / x ** 2, lhs="∂L/∂w")
    lines = text.splitlines()
    bar = next(i for i, ln in enumerate(lines) if "─" in ln)
    assert lines[bar].startswith("∂L/∂w = ")
    assert all(not ln.strip().startswith("∂L/∂w") for k, ln in enumerate(lines) if k != bar)
    assert sg.pretty(w * x, lhs="ŷ") == "ŷ = w⋅x"
    assert sg.latex(w * x, lhs=r"\hat y") == r"\hat y = w x"
    with pytest.raises(GraphError, match="lhs must be a string"):
        sg.pretty(w * x, lhs=3)


def test_max_and_min_print_in_lower_case_2d():
    x = sg.var("x")
    assert sg.pretty(sg.maximum(x, 0.0)) == "max(0, x)"
    text = sg.pretty(sg.maximum(x * x / 3, x))
    assert "max" in text and "Max" not in text and "─" in text  # the fraction is drawn, not flattened
    assert r"\max" in sg.latex(sg.maximum(x, 0.0))


def test_optimizer_rules_print_aligned_and_as_latex():
    rule = sg.optim.Adam(lr=1e-3).formulas()
    text = sg.pretty(rule)
    assert str(rule) == text
    lines = text.splitlines()
    starts = [ln.split("←")[0].strip() for ln in lines if "←" in ln]
    assert starts == ["m", "v", "θ"]
    tex = sg.latex(rule)
    assert tex.startswith("\\begin{aligned}") and tex.count("\\leftarrow") == 3
    b1, g, m = sympy.symbols("beta_1 g m", real=True)
    assert sympy.simplify(rule["m"] - (b1 * m + (1 - b1) * g)) == 0


def test_clip_norm_rule_prints_the_global_norm():
    rule = sg.optim.SGD(0.1, clip_norm=1.0).formulas()
    assert "‖g‖" in sg.pretty(rule)
    assert r"\lVert g \rVert" in sg.latex(rule)
    g, c = sympy.symbols("g c", real=True)
    # on numbers the norm of one entry is its absolute value: the clipped g is c·g / max(c, |g|)
    for gv, cv, want in [(3.0, 1.0, 1.0), (-0.5, 1.0, -0.5), (-4.0, 2.0, -2.0)]:
        assert float(rule["g"].subs({g: gv, c: cv})) == pytest.approx(want)


def test_one_hot_prints_as_a_hyphenated_name_in_latex():
    Y = sg.var("Y", shape=("batch",), dtype="int")
    tex = sg.latex(sg.one_hot(Y, 3) * 2.0)
    assert r"\operatorname{one\text{-}hot}" in tex and r"\operatorname{one}-" not in tex
    from symgrad.formulas.labels import latex_label
    assert latex_label("a - b") == r"\operatorname{a}\,-\,\operatorname{b}"  # a spaced minus stays a minus


def test_backprop_equations_name_an_unnamed_network_like_the_textbook():
    X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch",), dtype="int")
    W1, b1 = sg.param("W1", shape=(3, 4), init="xavier", seed=0), sg.param("b1", shape=(4,))
    W2, b2 = sg.param("W2", shape=(4, 2), init="xavier", seed=1), sg.param("b2", shape=(2,))
    L = sg.losses.cross_entropy(sg.sigmoid(X @ W1 + b1) @ W2 + b2, Y)
    eqs = sg.backprop_equations(L)
    assert [str(e.lhs) for e in eqs.forward] == ["Z1", "A1", "Z2", "A2", "L"]
    assert eqs.labels() == ["δ_A2", "δ_Z2", "∂L/∂b2", "∂L/∂W2", "δ_A1", "δ_Z1", "∂L/∂b1", "∂L/∂W1"]
    text = sg.pretty(eqs)
    assert "δ_Z₁ = δ_A₁ ⊙ σ′(Z₁)" in text and "A₁ = σ(Z₁)" in text
    # the printed system computes the same numbers as the backward graph
    rng = np.random.default_rng(0)
    feeds = {X: rng.normal(size=(5, 3)), Y: rng.integers(0, 2, size=5)}
    got = eqs.evaluate(feeds)
    want = sg.evaluate(sg.grad(L, [W1, b1, W2, b2]), feeds)
    for label, w in zip(["∂L/∂W1", "∂L/∂b1", "∂L/∂W2", "∂L/∂b2"], want):
        np.testing.assert_allclose(got[label], w, rtol=1e-10, atol=1e-12)
    # leaves only when asked
    flat = sg.backprop_equations(L, auto_names=False)
    assert [str(e.lhs) for e in flat.forward] == ["L"] and flat.labels() == ["∂L/∂b2", "∂L/∂W2", "∂L/∂b1", "∂L/∂W1"]


def test_textbook_names_skip_taken_names_and_respect_given_ones():
    x, y = sg.var("x"), sg.var("a1")  # a leaf already called a1
    w = sg.param("w", 0.5)
    eqs = sg.backprop_equations(sg.losses.mse(sg.tanh(w * x), y))
    assert [str(e.lhs) for e in eqs.forward] == ["z2", "a2", "L"]
    named = sg.backprop_equations(sg.losses.mse(sg.tanh((w * x).named("u")), y))
    assert [str(e.lhs) for e in named.forward] == ["u", "L"]  # a user's names win; nothing is added


def test_latex_hadamard_parenthesizes_products_like_the_unicode_form():
    X, W, V = sg.var("X", shape=("n", 3)), sg.param("W", shape=(3, 2)), sg.param("V", shape=(2, 2))
    Z = X @ W
    expr = sg.sigmoid(Z) * (Z @ V)
    assert sg.latex(expr) == r"\left(X W V\right) \odot \sigma\left(X W\right)"
    assert sg.pretty(expr) == "(X⋅W⋅V) ⊙ σ(X⋅W)"
