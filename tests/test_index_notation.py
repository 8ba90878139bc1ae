"""Index notation: formulas of tensors of any rank, printed with Indexed and Σ, and computed back to the
same numbers as sg.evaluate."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.errors import FeedError
from symgrad.formulas.index import index_formula, index_symbol, reshape_index

RNG = np.random.default_rng(3)
XV = RNG.normal(size=(2, 3, 4))


def _check(node, values, **names):
    f = index_formula(node, **names)
    got = f.numeric(values)
    want = sg.evaluate(node, {k: v for k, v in values.items() if k in ("X", "Y", "V")})
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    return f


def test_rank3_elementwise_reductions_and_layouts_compute_to_evaluate():
    X = sg.var("X", shape=("batch", 3, 4))
    w, b = sg.param("w", np.arange(4.0)), sg.param("b", np.ones(3))
    vals = {"X": XV, "w": w.value, "b": b.value, "batch": 2}
    _check(sg.sum(sg.tanh(X) * w, axis=2) + b, vals)                      # broadcast + sum
    _check(sg.mean(X * X, axis=(0, 2), keepdims=True), vals)              # mean, keepdims
    _check(sg.transpose(X, (2, 0, 1)) * 2.0, vals)                          # transpose
    _check(sg.reshape(X, ("batch", 12)), vals)                              # merge axes
    _check(sg.reshape(sg.reshape(X, ("batch", 12)), ("batch", 3, 4)), vals)  # split them again
    _check(sg.expand_dims(sg.sum(X, axis=1), 1) - X, vals)                 # expand + broadcast


def test_gradients_of_rank3_nodes_compute_to_evaluate():
    X = sg.var("X", shape=("batch", 3, 4))
    w = sg.param("w", np.arange(4.0))
    L = sg.sum(sg.sigmoid(X * w) ** 2)
    vals = {"X": XV, "w": w.value, "batch": 2}
    for g in sg.grad(L, [X, w]):
        _check(g, vals, name="g")


def test_printed_formula_reads_like_the_textbook():
    X = sg.var("X", shape=("batch", 3, 4))
    w, b = sg.param("w", np.arange(4.0)), sg.param("b", np.ones(3))
    f = index_formula((sg.sum(sg.tanh(X) * w, axis=2) + b).named("Z"))
    assert f.pretty() == "Z[i,j] = b[j] + Σ tanh(X[i,j,k])⋅w[k]\n                k"
    assert f.latex() == r"Z_{i,j} = b_{j} + \sum_{k} \tanh{\left(X_{i,j,k} \right)} w_{k}"
    # the formula is SymPy: the free indices, the summation index and its range
    i, j, k = (index_symbol(c) for c in "ijk")
    assert f.indices == (i, j)
    (s,) = [a for a in sympy.preorder_traversal(f.rhs) if isinstance(a, sympy.Sum)]
    assert s.limits == ((k, 0, 3),)


def test_index_letters_avoid_names_in_the_graph():
    i = sg.var("i", shape=(2, 3))
    f = index_formula(sg.sum(i, axis=1), name="s")
    assert "i" not in {str(k) for k in f.indices}
    np.testing.assert_allclose(f.numeric({"i": np.ones((2, 3))}), [3.0, 3.0])


def test_an_op_without_an_index_form_prints_whole_and_is_computed_from_its_operands():
    X = sg.var("X", shape=("batch", 3, 4))
    f = index_formula(sg.max(X, axis=2) * 2.0, name="P")
    assert "max(X)" in f.pretty()
    m = sg.evaluate(sg.max(X, axis=2), {"X": XV})
    np.testing.assert_allclose(f.numeric({"X": XV, "batch": 2}), 2.0 * m)  # max applied to X's value
    np.testing.assert_allclose(f.numeric({"X": XV, "batch": 2, "max(X)": -m}), -2.0 * m)  # a given value wins
    with pytest.raises(FeedError, match=r"max\(X\) needs the value of 'X'"):
        f.numeric({"batch": 2})


def test_reshape_indices_split_and_merge_axes():
    i, j, k, l = (index_symbol(c) for c in "ijkl")
    assert reshape_index((2, 12), (2, 3, 4), (i, j, k)) == (i, 4 * j + k)
    assert reshape_index(("b", "s", 6), ("b", "s", 2, 3), (i, j, k, l)) == (i, j, 3 * k + l)
    assert reshape_index((2, 3, 4), (2, 12), (i, j)) == (i, sympy.floor(j / 4), sympy.Mod(j, 4))


def test_softmax_log_softmax_and_one_hot_have_index_forms():
    X = sg.var("X", shape=("batch", 3, 4))
    y = sg.var("y", shape=("batch", 3), dtype="int")
    yv = np.array([[0, 3, 1], [2, 2, 0]])
    vals = {"X": XV, "batch": 2, "y": yv}
    for node in (sg.softmax(X, axis=2), sg.log_softmax(X, axis=1), sg.one_hot(y, 4) * 2.0):
        f = index_formula(node, name="P")
        assert not f.opaque
        feeds = {k: v for k, v in (("X", XV), ("y", yv)) if k in {n.name for n in sg.Graph(node).vars}}
        np.testing.assert_allclose(f.numeric(vals), sg.evaluate(node, feeds), rtol=1e-12)
    assert index_formula(sg.softmax(X, axis=2), name="P").pretty() == (
        "             X[i,j,k]\n"
        "            ℯ\n"
        "P[i,j,k] = ───────────\n"
        "              X[i,j,l]\n"
        "           Σ ℯ\n"
        "           l")


def test_index_forms_with_max_min_piecewise_and_constants_compute():
    X = sg.var("X", shape=("batch", 3, 4))
    vals = {"X": XV, "batch": 2}
    for node in (sg.maximum(X, 0.5) * np.pi, sg.where(sg.greater(X, 0.0), X, -X)):
        _check(node, vals, name="Y")


def test_matrix_formula_of_a_piecewise_op_computes_for_whole_arrays():
    # numeric() used to reach Piecewise only after Function (which it is) and then compute scalars only
    X = sg.var("X", shape=(2, 3))
    node = sg.where(sg.greater(X, 0.0), X, 2.0 * X)
    xv = RNG.normal(size=(2, 3))
    got = sg.formulas.numeric(sg.formula(node, expand=True), {f"X[{i},{j}]": xv[i, j] for i in range(2) for j in range(3)})
    np.testing.assert_allclose(np.asarray(got, dtype=float), sg.evaluate(node, {"X": xv}))


@pytest.mark.parametrize("sa, sb", [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,)),
                                     (("batch", 2, 3), (3, 4)), ((2, 1, 2, 3), (5, 3, 2))])
def test_matmul_index_form_computes_to_evaluate(sa, sb):
    A, B = sg.var("A", shape=sa), sg.var("B", shape=sb)
    sizes = lambda s: tuple(2 if d == "batch" else d for d in s)  # noqa: E731
    av, bv = RNG.normal(size=sizes(sa)), RNG.normal(size=sizes(sb))
    f = index_formula(A @ B, name="C")
    assert not f.opaque
    np.testing.assert_allclose(f.numeric({"A": av, "B": bv, "batch": 2}), sg.evaluate(A @ B, {"A": av, "B": bv}),
                               rtol=1e-12)


def test_formula_pretty_and_latex_use_index_notation_beyond_rank_2():
    X = sg.var("X", shape=("batch", 3, 4))
    w = sg.param("w", np.arange(4.0))
    Z = (X * w).sum(axis=2).named("Z")
    f = sg.formula(Z)
    assert sg.pretty(Z) == f.pretty() == "Z[i,j] = Σ X[i,j,k]⋅w[k]\n         k"
    assert sg.latex(Z) == r"Z_{i,j} = \sum_{k} X_{i,j,k} w_{k}"
    np.testing.assert_allclose(f.numeric({"X": XV, "w": w.value, "batch": 2}), sg.evaluate(Z, {"X": XV}))
    # asked for, index notation works for matrices too, and keep= writes kept nodes by name
    A = sg.var("A", shape=(2, 3))
    H = sg.tanh(A @ sg.param("W", np.ones((3, 2)))).named("H")
    assert sg.pretty(sg.sum(H * H, axis=1), keep="named", notation="index") == (
        "               2\n"
        "y[i] = Σ H[i,j]\n"
        "       j")
    # a scalar node expanded is its one formula
    x = sg.var("x")
    assert sg.formula(x * 2.0, expand=True) == 2 * sympy.Symbol("x", real=True)


def test_lhs_names_an_index_formula_instead_of_doubling_it():
    X = sg.var("X", shape=("batch", 3, 4))
    w = sg.param("w", [1.0, 2.0, 3.0, 4.0])
    text = sg.pretty(sg.sum(X * w, axis=2), lhs="y", notation="index")
    assert text.splitlines()[0].startswith("y[i,j] = Σ X[i,j,k]⋅w[k]") and text.count("=") == 1
    assert sg.latex(sg.sum(X * w, axis=2), lhs="y", notation="index").startswith("y_{i,j} = ")
