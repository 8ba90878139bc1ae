"""Regression tests for printing bugs of formulas (issue 14): exact text, and the printed formula's number."""
import numpy as np
import pytest

import symgrad as sg
from symgrad.formulas.numeric import numeric
from symgrad.graph import Graph


def _close(expr, values, node):
    got = np.asarray(numeric(expr, values), dtype=np.float64)
    want = np.asarray(sg.evaluate(node, {k: v for k, v in values.items() if not isinstance(v, int)}),
                      dtype=np.float64)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-10, atol=1e-12)


def test_hessian_vector_product_prints_its_hadamard_power_of_an_op_without_crashing():
    W = sg.param("W", np.ones((3, 2)))
    X = sg.var("X", shape=("batch", 3))
    v = sg.var("v", shape=(3, 2))
    g = sg.grad(sg.sum(sg.tanh(X @ W) ** 2), [W])[0]
    hvp = sg.grad(sg.sum(g * v), [W])[0]
    assert sg.pretty(hvp) == (
        " T ⎛  ⎛             ∘2     ⎞                                      ⎞\n"
        "X ⋅⎝2⋅⎝(X⋅v) ⊙ tanh′  (X⋅W)⎠ + 2⋅((X⋅v) ⊙ tanh(X⋅W) ⊙ tanh′′(X⋅W))⎠")
    rng = np.random.default_rng(0)
    values = {"X": rng.normal(size=(4, 3)), "v": rng.normal(size=(3, 2)), "W": np.ones((3, 2)), "batch": 4}
    _close(sg.formula(hvp), values, hvp)


def test_constant_factor_on_a_named_node_stays_a_number_not_a_delta_symbol():
    w, x = sg.param("w", 0.5), sg.var("x")
    a = sg.sigmoid(w * x).named("a")
    eqs = sg.backprop_equations((3 * a).named("L"))
    assert str(eqs) == ("forward:\n  a = σ(w⋅x)\n  L = 3⋅a\n"
                        "backward:\n  δ_a = 3\n  ∂L/∂w = 3⋅x⋅σ′(w⋅x)")
    got = eqs.evaluate({"x": 2.0})
    want = sg.evaluate(sg.grad(3 * sg.sigmoid(w * x), [w])[0], {"x": 2.0})
    assert float(got["δ_a"]) == 3.0
    assert float(got["∂L/∂w"]) == pytest.approx(float(want), rel=1e-12)


def test_named_node_that_is_its_own_adjoint_keeps_its_name_in_the_forward_equations():
    w, x = sg.param("w", 0.5), sg.var("x")
    a = sg.sigmoid(w * x).named("a")
    eqs = sg.backprop_equations((a * a / 2).named("L"))
    assert eqs.forward[1].rhs == eqs.forward[0].lhs ** 2 / 2
    got = eqs.evaluate({"x": 2.0})
    want = sg.evaluate(sg.grad(sg.sigmoid(w * x) ** 2 / 2, [w])[0], {"x": 2.0})
    assert float(got["∂L/∂w"]) == pytest.approx(float(want), rel=1e-12)


def test_matrix_sum_keeps_the_minus_before_a_negative_fraction_coefficient():
    Y, Z = sg.var("Y", shape=("batch", 3)), sg.var("Z", shape=("batch", 3))
    g = sg.grad(-sg.sum(Y * Z) - sg.mean(Z * Z), Z)
    assert sg.pretty(g) == ("        2     \n"
                            "-Y - ───────⋅Z\n"
                            "     3⋅batch  ")
    rng = np.random.default_rng(1)
    _close(sg.formula(g), {"Y": rng.normal(size=(4, 3)), "Z": rng.normal(size=(4, 3)), "batch": 4}, g)


def test_matrix_difference_prints_one_minus_sign():
    A, B = sg.var("A", shape=(2, 3)), sg.var("B", shape=(2, 3))
    assert sg.pretty(A - B) == "-B + A"
    assert sg.pretty(A - 2 * B) == "-2⋅B + A"


def test_vector_dot_vector_prints_as_x_transpose_w_not_as_a_call():
    x, w, b = sg.var("x", shape=(3,)), sg.var("w", shape=(3,)), sg.var("b")
    y = x @ w + b
    assert sg.pretty(y) == ("     T  \n"
                            "b + x ⋅w")
    assert sg.latex(y) == "b + x^{T} w"
    assert sg.latex((x @ w) ** 2) == r"\left(x^{T} w\right)^{2}"
    values = {"x": np.array([1.0, -2.0, 0.5]), "w": np.array([0.3, 0.1, -4.0]), "b": 0.25}
    _close(sg.formula(y), values, y)


def test_comparison_prints_infix_as_an_iverson_bracket_not_prefix():
    P, T = sg.var("P", shape=("n",)), sg.var("T", shape=("n",))
    y = P * sg.greater(P, 0)
    assert sg.pretty(y) == "P ⊙ [P > 0]"
    assert sg.latex(y) == r"P \odot \left[P > 0\right]"
    assert sg.pretty(sg.greater_equal(P, T)) == "[P ≥ T]"
    assert sg.latex(sg.greater_equal(P, T)) == r"\left[P \geq T\right]"
    values = {"P": np.array([1.5, -2.0, 0.0, 3.0]), "T": np.array([1.0, 1.0, 0.0, 4.0]), "n": 4}
    _close(sg.formula(y), {"P": values["P"], "n": 4}, y)
    _close(sg.formula(sg.greater_equal(P, T)), values, sg.greater_equal(P, T))


def test_mean_absolute_error_prints_sigma_of_bars_not_a_bars_call():
    P, T = sg.var("P", shape=("n",)), sg.var("T", shape=("n",))
    mae = sg.mean(abs(P - T))
    assert sg.pretty(mae) == ("Σ│-T + P│\n"
                              "─────────\n"
                              "    n    ")
    values = {"P": np.array([1.5, -2.0, 0.0, 3.0]), "T": np.array([1.0, 1.0, 0.0, 4.0]), "n": 4}
    _close(sg.formula(mae), values, mae)


def test_scaled_dot_product_by_a_root_prints_as_a_division_by_the_root_not_a_float():
    Q, K = sg.var("Q", shape=("n", 6)), sg.var("K", shape=("n", 6))
    scores = Q @ K.T / np.sqrt(6)
    assert sg.pretty(scores) == ("   T   \n"
                                 "Q⋅K /√6")
    assert sg.latex(scores) == r"\frac{Q K^{T}}{\sqrt{6}}"
    rng = np.random.default_rng(2)
    _close(sg.formula(scores), {"Q": rng.normal(size=(3, 6)), "K": rng.normal(size=(3, 6)), "n": 3}, scores)


_Q, _K, _V = (sg.var(name, shape=("n", 6)) for name in "QKV")
_S = sg.var("s")


@pytest.mark.parametrize("node, text, tex", [
    (-(_Q @ _K.T) / np.sqrt(6), "    T   \n-Q⋅K /√6", r"-\frac{Q K^{T}}{\sqrt{6}}"),
    (_Q @ _K.T * 0.5, "   T  \nQ⋅K /2", r"\frac{Q K^{T}}{2}"),
    (_Q / 3.0, "Q/3", r"\frac{Q}{3}"),
    (_S * _Q / 3.0, "s⋅Q/3", r"\frac{s Q}{3}"),
    ((_Q - _K) / np.sqrt(2), "(-K + Q)/√2", r"\frac{- K + Q}{\sqrt{2}}"),
    (_Q / 4.0 - _K / np.sqrt(6), "Q/4 - K/√6", r"-\frac{K}{\sqrt{6}} + \frac{Q}{4}"),
    (sg.softmax(_Q @ _K.T / np.sqrt(6), axis=1) @ _V, "       ⎛   T   ⎞  \nsoftmax⎝Q⋅K /√6⎠⋅V",
     r"\operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{6}}\right) V"),
    # coefficients that are no reciprocal of an integer or a root stay in front
    (_Q * 0.75, "3/4⋅Q", r"\left(\frac{3}{4}\right) Q"),
    (_Q * (2 / np.sqrt(6)), "√6  \n──⋅Q\n3   ", r"\frac{\sqrt{6}}{3} Q"),
], ids=["negative", "half", "third", "scalar-factor", "sum", "two-terms", "attention", "3/4", "2/sqrt6"])
def test_matrix_coefficient_that_is_one_over_an_integer_or_a_root_prints_as_a_division(node, text, tex):
    assert sg.pretty(node) == text
    assert sg.latex(node) == tex
    rng = np.random.default_rng(5)
    values = {"Q": rng.normal(size=(3, 6)), "K": rng.normal(size=(3, 6)), "V": rng.normal(size=(3, 6)),
              "s": rng.normal(), "n": 3}
    used = {v.name for v in Graph(node).vars} | {"n"}
    _close(sg.formula(node), {k: v for k, v in values.items() if k in used}, node)


def test_constants_that_are_roots_of_simple_fractions_become_exact_numbers():
    from symgrad.formulas.notation import const_number
    import sympy
    assert isinstance(const_number(1 / 3), sympy.Float)  # not a short decimal, not a root
    assert const_number(-np.sqrt(0.5)) == -sympy.sqrt(2) / 2
    assert const_number(1 / np.sqrt(6)) == sympy.sqrt(6) / 6
    assert isinstance(const_number(np.pi), sympy.Float)  # no false exactness
    assert isinstance(const_number(0.12345678912), sympy.Float)


def test_named_constant_prints_by_its_name_and_computes_with_its_value():
    X = sg.var("X", shape=("batch", 3))
    eps = sg.const(1e-5, name="ε")
    node = X / sg.sqrt(sg.mean(X * X, axis=1, keepdims=True) + eps)
    text = sg.pretty(node)
    assert "ε" in text and "100000" not in text
    xv = np.random.default_rng(2).normal(size=(4, 3))
    got = sg.formulas.numeric(sg.formula(node), {"X": xv, "batch": 4, "ε": 1e-5})
    np.testing.assert_allclose(got, sg.evaluate(node, {"X": xv}), rtol=1e-12)
    # in index notation the constant's value travels with the formula
    T = sg.var("T", shape=("batch", 2, 3))
    f = sg.formula(T * eps, notation="index")
    assert "ε" in f.pretty()
    tv = np.ones((2, 2, 3))
    np.testing.assert_allclose(f.numeric({"T": tv, "batch": 2}), 1e-5 * tv)
    # and backprop equations evaluate with it
    w = sg.param("w", 0.5)
    L = sg.sum(sg.sigmoid(X * w) * eps).named("L")
    eqs = sg.backprop_equations(L)
    assert eqs.evaluate({"X": xv})["∂L/∂w"] == pytest.approx(float(sg.evaluate(sg.grad(L, w), {"X": xv})))


def test_latex_of_a_loop_output_in_index_notation_and_dotted_names():
    """{h_{4}}_{i,j}, not the invalid double subscript h_{4}_{i,j}; rnn.b upright like rnn.W_hh; a
    definition's text rnn.b_ih + rnn.b_hh as two names, not one \\mathrm block."""
    T, B, I, H = 4, 2, 3, 5
    rnn = sg.nn.RNN(I, H, name="rnn")
    x, y = sg.var("x", shape=(B, T, I)), sg.var("y", shape=(B, H))
    _, hT = rnn(x)
    L = sg.sum((hT - y) ** 2, name="L")
    tex = sg.latex(L, notation="index")
    assert r"{h_{4}}_{i,j}" in tex and "}_{i,j}" not in tex.replace(r"{h_{4}}_{i,j}", "")
    assert r"\mathrm{rnn.b} &= \mathrm{rnn.b\_ih} + \mathrm{rnn.b\_hh}" in tex
