"""Formulas: closed forms, kept names, matrix notation, expansion, printing,
the chain rule by paths and the backprop equations, each checked against
SymPy's own differentiation or against sg.evaluate."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.formulas import numeric
from symgrad.formulas.notation import OpMatrix
from symgrad.ops.sympy_funcs import sigmoid as S
from symgrad.testing import numeric_grad

x_, y_, w_, b_ = sympy.symbols("x y w b", real=True)


def perceptron(loss: str, named: bool = False):
    x, y = sg.var("x"), sg.var("y")
    w, b = sg.param("w", 0.5), sg.param("b", 0.1)
    z = w * x + b
    if named:
        z = z.named("z")
    yhat = sg.sigmoid(z)
    if named:
        yhat = yhat.named("a")
    L = sg.losses.bce(yhat, y) if loss == "bce" else sg.losses.mse(yhat, y)
    return L, w, b


def same(a, b) -> bool:
    return sympy.simplify(a - b) == 0


# ------------------------------------------------------------------ scalar
def test_example_bce_gradient_is_x_times_error():
    L, w, b = perceptron("bce")
    dw, db = sg.grad(L, [w, b])
    f = sg.formula(dw)
    assert isinstance(f, sympy.Expr)
    assert f == x_ * (S(b_ + w_ * x_) - y_)
    assert same(sg.formula(db), S(b_ + w_ * x_) - y_)
    assert f.free_symbols == {x_, y_, w_, b_} and all(s.is_real for s in f.free_symbols)


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_perceptron_gradients_equal_sympy_diff_of_closed_form(loss):
    L, w, b = perceptron(loss)
    closed = sg.formula(L)
    dw, db = sg.grad(L, [w, b])
    assert same(sympy.diff(closed, w_), sg.formula(dw))
    assert same(sympy.diff(closed, b_), sg.formula(db))
    # and the closed form is the loss itself, numerically
    value = float(closed.subs({x_: 1.5, y_: 1.0, w_: 0.5, b_: 0.1}).evalf())
    assert value == pytest.approx(float(sg.evaluate(L, {"x": 1.5, "y": 1.0})), rel=1e-12)


def test_constants_are_exact_rationals():
    x = sg.var("x")
    f = sg.formula(sg.const(0.1) * x + sg.const(2.5) * x ** 2)
    assert same(f, x_ / 10 + sympy.Rational(5, 2) * x_ ** 2)
    assert not f.atoms(sympy.Float)
    assert sg.formula(sg.const(1 / 3) * x).atoms(sympy.Float)  # not a short decimal: stays a float


def test_grad_of_grad_formula():
    x = sg.var("x")
    d2 = sg.grad(sg.grad(sg.sin(x) * x, x), x)
    assert same(sg.formula(d2), sympy.diff(sympy.sin(x_) * x_, x_, 2))


# -------------------------------------------------------------------- keep
def test_keep_named_writes_gradient_in_named_intermediates():
    L, w, b = perceptron("bce", named=True)
    a, z = sympy.symbols("a z", real=True)
    f = sg.formula(sg.grad(L, w), keep="named")
    assert f == x_ * (a - y_)
    L2, w2, _ = perceptron("mse", named=True)
    f2 = sg.formula(sg.grad(L2, w2), keep="named")
    assert f2.free_symbols == {x_, y_, a, z}
    assert {type(g).__name__ for g in f2.atoms(sympy.Function)} == {"sigmoid_prime"}  # σ′(z) stays σ′
    # with its meaning substituted and a = σ(z), it is the closed form
    closed = sg.formula(sg.grad(L2, w2))
    expanded = f2.replace(lambda e: type(e).__name__ == "sigmoid_prime", lambda e: e.meaning())
    assert same(expanded.subs({a: S(z)}).subs({z: b_ + w_ * x_}), closed)


def test_keep_by_node_and_by_name():
    L, w, b = perceptron("bce", named=True)
    g = sg.grad(L, w)
    a = sympy.Symbol("a", real=True)
    by_name = sg.formula(g, keep=["a"])
    nodes = {n.name: n for n in sg.Graph(L).order if n.name}
    by_node = sg.formula(g, keep=[nodes["a"]])
    assert by_name == by_node
    assert a in by_name.free_symbols and sympy.Symbol("z", real=True) not in by_name.free_symbols
    with pytest.raises(sg.GraphError, match="no intermediate node named 'q'"):
        sg.formula(g, keep=["q"])
    with pytest.raises(sg.GraphError, match="has no name"):
        sg.formula(g, keep=[next(n for n in sg.Graph(L).order if n.name is None and not n.is_leaf)])


def test_keep_named_is_linear_in_depth():
    def dw1(depth):
        x, y, h = sg.var("x"), sg.var("y"), None
        h = x
        ws = []
        for k in range(1, depth + 1):
            w = sg.param(f"w{k}", 0.5)
            ws.append(w)
            h = sg.sigmoid((w * h + sg.param(f"b{k}", 0.1)).named(f"z{k}")).named(f"h{k}")
        return sg.formula(sg.grad(sg.losses.mse(h, y), ws[0]), keep="named")

    f20, f40 = dw1(20), dw1(40)
    names = {str(s) for s in f20.free_symbols}
    assert {"x", "y", "h20"} | {f"z{k}" for k in range(1, 21)} | {f"w{k}" for k in range(2, 21)} == names
    assert sympy.count_ops(f40) / sympy.count_ops(f20) == pytest.approx(2.0, rel=0.1)
    assert len(f40.atoms(sympy.Function)) == 40  # σ′(z_k), one per layer


def test_duplicate_names_are_refused():
    x = sg.var("x")
    u = sg.sin(x).named("u")
    v = sg.cos(x).named("u")
    with pytest.raises(sg.GraphError, match="both named 'u'"):
        sg.formula(u * v, keep="named")


# -------------------------------------------------------------- chain rule
def test_chain_rule_single_path_matches_grad():
    L, w, b = perceptron("bce", named=True)
    feeds = {"x": 1.5, "y": 1.0}
    cr = sg.chain_rule(L, w, feeds)
    assert len(cr.paths) == 1
    path = cr.paths[0]
    assert path.nodes[0] is w and path.nodes[-1] is L
    assert len(path.factors) == len(path.nodes) - 1
    assert [f.output for f in path.factors] == list(reversed(path.nodes[1:]))
    a = sympy.Symbol("a", real=True)
    # ∂a/∂z is σ′(z) written in a, and the product cancels to x(a − y)
    dadz = [f for f in path.factors if f.output.name == "a"][0]
    assert same(dadz.expr, a * (1 - a))
    assert same(cr.total, x_ * (a - y_))
    dw = sg.grad(L, w)
    assert same(cr.closed_form(), sg.formula(dw))
    assert cr.value == pytest.approx(float(sg.evaluate(dw, feeds)), rel=1e-12)
    assert np.prod([f.value for f in path.factors]) == pytest.approx(cr.value, rel=1e-12)


def test_chain_rule_two_paths_sum_to_gradient():
    x, c = sg.var("x"), sg.param("c", 0.3)
    u = x * c
    L = sg.sin(u) * u + x ** 2        # x reaches L through sin(u), through u directly and through x²
    feeds = {"x": 0.7}
    cr = sg.chain_rule(L, x, feeds)
    assert len(cr.paths) == 3
    dx = sg.grad(L, x)
    assert same(cr.closed_form(), sg.formula(dx))
    assert same(sg.formula(dx), sympy.diff(sympy.sin(x_ * sympy.Symbol("c", real=True)) * x_
                                             * sympy.Symbol("c", real=True) + x_ ** 2, x_))
    assert cr.value == pytest.approx(float(sg.evaluate(dx, feeds)), rel=1e-12)
    assert sum(p.value for p in cr.paths) == pytest.approx(cr.value, rel=1e-12)
    # x * x: one edge used at both argument positions gives the factor 2x
    sq = sg.chain_rule(x * x, x)
    assert len(sq.paths) == 1 and same(sq.total, 2 * x_)


def test_chain_rule_printing():
    L, w, b = perceptron("bce", named=True)
    cr = sg.chain_rule(L, w, {"x": 1.5, "y": 1.0})
    text = str(cr)
    assert "∂L/∂w = x⋅(a - y) = -0.449149" in text
    assert "path 1: w → u₁ → z → a → L" in text
    tex = cr.latex()
    assert tex.startswith(r"\begin{aligned}\frac{\partial L}{\partial w} &= \frac{\partial L}{\partial a}")
    assert r"&= x \left(a - y\right)" in tex
    assert sg.latex(cr) == tex and sg.pretty(cr) == text and cr._repr_latex_() == "$$" + tex + "$$"


def test_chain_rule_errors():
    X = sg.var("X", shape=(2, 2))
    W = sg.param("W", np.eye(2))
    with pytest.raises(sg.ShapeError, match="backprop_equations"):
        sg.chain_rule(sg.sum(X @ W), W)
    with pytest.raises(sg.GraphError, match="not in the graph"):
        sg.chain_rule(sg.sin(sg.var("x")), sg.var("q"))


# --------------------------------------------------------- matrix notation
@pytest.fixture
def mlp():
    X = sg.var("X", shape=("batch", 3))
    Y = sg.var("Y", shape=("batch", 1))
    W1 = sg.param("W1", shape=(3, 3), init="xavier", seed=0)
    b1 = sg.param("b1", shape=(3,), init="normal", seed=1)
    W2 = sg.param("W2", shape=(3, 1), init="xavier", seed=2)
    b2 = sg.param("b2", shape=(1,), init="normal", seed=3)
    Z1 = (X @ W1 + b1).named("Z1")
    A1 = sg.sigmoid(Z1).named("A1")
    Z2 = (A1 @ W2 + b2).named("Z2")
    A2 = sg.sigmoid(Z2).named("A2")
    L = sg.losses.mse(A2, Y)
    rng = np.random.default_rng(0)
    feeds = {"X": rng.normal(size=(4, 3)), "Y": rng.normal(size=(4, 1))}
    nodes = dict(X=X, Y=Y, W1=W1, b1=b1, W2=W2, b2=b2, Z1=Z1, A1=A1, Z2=Z2, A2=A2, L=L)
    return nodes, feeds


def _values(nodes, feeds):
    vals = dict(feeds)
    vals.update({n.name: n.value for n in nodes.values() if n.kind == "param"})
    named = [n for n in nodes.values() if n.kind == "op"]
    vals.update({n.name: v for n, v in zip(named, sg.evaluate(named, feeds))})
    vals["batch"] = 4
    return vals


def test_matrix_notation_of_forward_and_gradients(mlp):
    n, feeds = mlp
    assert str(sg.formula(n["Z1"])) == "X*W1 + 1*b1.T"
    dW1, db1, dW2, db2 = sg.grad(n["L"], [n["W1"], n["b1"], n["W2"], n["b2"]])
    f = sg.formula(dW2, keep="named")
    assert str(f) == "(2/batch)*A1.T*(HadamardProduct(A2 - Y, sigmoid_prime(Z2)))"
    g = sg.formula(dW1, keep="named")
    assert str(g) == ("(2/batch)*X.T*(HadamardProduct((HadamardProduct(A2 - Y, sigmoid_prime(Z2)))*W2.T, "
                      "sigmoid_prime(Z1)))")
    hadamards = g.atoms(sympy.HadamardProduct)
    assert len(hadamards) == 2
    assert sympy.Transpose(sympy.MatrixSymbol("W2", 3, 1)) in g.atoms(sympy.Transpose) | set(
        sympy.preorder_traversal(g))
    assert any(isinstance(a, OpMatrix) and a.op.name == "sigmoid_prime" for a in sympy.preorder_traversal(g))
    # bias gradient: a column sum δᵀ1
    assert str(sg.formula(db2, keep="named")) == "(2/batch)*(HadamardProduct(A2 - Y, sigmoid_prime(Z2))).T*1"
    # numbers: closed forms and kept forms both reproduce sg.evaluate
    vals = _values(n, feeds)
    for grad, p in zip([dW1, db1, dW2, db2], ["W1", "b1", "W2", "b2"]):
        want = sg.evaluate(grad, feeds)
        for form in (sg.formula(grad), sg.formula(grad, keep="named")):
            got = numeric(form, vals)
            np.testing.assert_allclose(np.reshape(got, want.shape), want, rtol=1e-10, atol=1e-14)
    assert numeric(sg.formula(n["L"]), vals) == pytest.approx(float(sg.evaluate(n["L"], feeds)), rel=1e-12)


def test_matrix_notation_checked_by_sympy_alone(mlp):
    """Substitute explicit matrices and let SymPy compute the printed product."""
    n, feeds = mlp
    dW2 = sg.grad(n["L"], n["W2"])
    f = sg.formula(dW2, keep="named")
    vals = _values(n, feeds)
    batch = sympy.Symbol("batch", integer=True, positive=True)
    f4 = f.subs(batch, 4)
    rep = {}
    for name in ("A1", "A2", "Y", "Z2"):
        v = np.asarray(vals[name])
        rep[sympy.MatrixSymbol(name, *v.shape)] = sympy.ImmutableMatrix(v)
    explicit = f4.xreplace(rep).as_explicit()
    np.testing.assert_allclose(np.array(explicit.evalf(), dtype=float), sg.evaluate(dW2, feeds), rtol=1e-10)


def test_matrix_printing(mlp):
    n, _ = mlp
    dW2 = sg.grad(n["L"], n["W2"])
    tex = sg.latex(dW2, keep="named")
    assert tex == (r"\frac{2}{batch} A_{1}^{T} \left(\left(A_{2} - Y\right) \odot "
                   r"\sigma'\left(Z_{2}\right)\right)")
    text = sg.pretty(dW2, keep="named")
    assert "⊙ σ′(Z₂)" in text and "A₁" in text
    assert sg.latex(n["Z1"]) == r"X W_{1} + \mathbf{1} b_{1}^{T}"


def test_sums_broadcasts_and_softmax_print_in_matrix_notation():
    X = sg.var("X", shape=("batch", 3))
    W = sg.param("W", shape=(3, 2), init="xavier", seed=0)
    c = sg.var("c", shape=("batch",), dtype="int")
    L = sg.losses.cross_entropy(X @ W, c)
    assert str(sg.formula(L)) == "-sum((HadamardProduct(log_softmax(X*W), one_hot(c)))*1)/batch"
    assert sg.latex(sg.softmax(X @ W)) == r"\operatorname{softmax}\left(X W\right)"
    assert str(sg.formula(sg.sum(X, axis=0))) == "X.T*1"
    assert str(sg.formula(sg.sum(X, axis=1))) == "X*1"
    assert str(sg.formula(sg.mean(X, axis=0, keepdims=True))) == "1/batch*1*X"  # (1/batch) 1ᵀX


def test_tensor_errors():
    T = sg.var("T", shape=(2, 2, 2))
    with pytest.raises(sg.ShapeError, match=r"T has shape \(2, 2, 2\)"):
        sg.formula(sg.sum(T * 2.0), notation="matrix")  # rank 3 has no matrix form (auto: index notation)
    with pytest.raises(sg.GraphError, match="notation must be one of"):
        sg.formula(T * 2.0, notation="tensor")
    X = sg.var("X", shape=("batch", 2))
    with pytest.raises(sg.ShapeError, match="expand needs a size for dim 'batch'"):
        sg.formula(X * 2.0, expand=True)
    with pytest.raises(sg.GraphError, match="expected a Node"):
        sg.formula("x")
    with pytest.raises(sg.GraphError, match="latex: expected"):
        sg.latex(object())


# ------------------------------------------------------------------ expand
def test_expand_entries_match_finite_differences_and_sympy_diff():
    X = sg.var("X", shape=("batch", 2))
    y = sg.var("y", shape=("batch",))
    W = sg.param("W", shape=(2, 2), init="xavier", seed=0)
    b = sg.param("b", shape=(2,), init="normal", seed=1)
    v = sg.param("v", shape=(2,), init="normal", seed=2)
    L = sg.losses.mse(sg.tanh(X @ W + b) @ v, y)
    dW = sg.grad(L, W)
    E = sg.formula(dW, expand={"batch": 2})
    assert isinstance(E, sympy.Matrix) and E.shape == (2, 2)
    assert sympy.Symbol("W[0,1]", real=True) in E[0, 1].free_symbols
    # each entry is ∂L/∂W[i,j] of the expanded loss
    loss = sg.formula(L, expand={"batch": 2})  # a scalar node: its one formula, not a 1×1 matrix
    for i in range(2):
        for j in range(2):
            assert same(sympy.diff(loss, sympy.Symbol(f"W[{i},{j}]", real=True)), E[i, j])
    # and numerically it is the finite-difference gradient
    rng = np.random.default_rng(1)
    feeds = {"X": rng.normal(size=(2, 2)), "y": rng.normal(size=(2,))}
    subs = {sympy.Symbol(f"X[{i},{j}]", real=True): feeds["X"][i, j] for i in range(2) for j in range(2)}
    subs.update({sympy.Symbol(f"y[{i}]", real=True): feeds["y"][i] for i in range(2)})
    subs.update({sympy.Symbol(f"W[{i},{j}]", real=True): W.value[i, j] for i in range(2) for j in range(2)})
    subs.update({sympy.Symbol(f"{p.name}[{i}]", real=True): p.value[i] for p in (b, v) for i in range(2)})
    got = np.array(E.subs(subs).evalf(), dtype=float)
    np.testing.assert_allclose(got, numeric_grad(L, W, feeds), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got, sg.evaluate(dW, feeds), rtol=1e-12)


def test_expand_entry_symbols_print():
    W = sg.param("W1", shape=(2, 2), init="xavier", seed=0)
    E = sg.formula(W * 2.0, expand=True)
    assert E[0, 1] == 2 * sympy.Symbol("W1[0,1]", real=True)
    assert sg.latex(E[0, 1]) == r"2 \left(W_{1}\right)_{0,1}"
    assert sg.pretty(E[0, 1]) == "2⋅W₁[0,1]"


# ---------------------------------------------------------------- printing
def test_latex_and_pretty_golden_perceptron():
    L, w, b = perceptron("bce")
    dw = sg.grad(L, w)
    assert sg.latex(dw) == r"x \left(- y + \sigma\left(b + w x\right)\right)"
    assert sg.pretty(dw) == "x⋅(-y + σ(b + w⋅x))"
    assert sg.latex(dw) == sg.latex(sg.formula(dw))
    assert dw._repr_latex_() == "$" + sg.latex(dw) + "$"
    a_named = perceptron("mse", named=True)[0]
    g = sg.grad(a_named, sg.Graph(a_named).find("w"))
    assert sg.latex(g, keep="named") == r"2 x \left(a - y\right) \sigma'\left(z\right)"
    assert sg.pretty(g, keep="named") == "2⋅x⋅(a - y)⋅σ′(z)"


# --------------------------------------------------------------- backprop
def test_backprop_equations_two_layer(mlp):
    n, feeds = mlp
    eqs = sg.backprop_equations(n["L"])
    assert eqs.labels() == ["δ_A2", "δ_Z2", "∂L/∂b2", "∂L/∂W2", "δ_A1", "δ_Z1", "∂L/∂b1", "∂L/∂W1"]
    assert [e.kind for e in eqs.equations].count("delta") == 4 and len(eqs) == 8
    assert [str(e.lhs) for e in eqs.forward] == ["Z1", "A1", "Z2", "A2", "L"]
    rhs = {label: str(e.rhs) for label, e in zip(eqs.labels(), eqs.equations)}
    assert rhs["δ_Z1"] == "HadamardProduct(δ_A1, sigmoid_prime(Z1))"
    assert rhs["δ_A1"] == "δ_Z2*W2.T"
    assert rhs["∂L/∂W1"] == "X.T*δ_Z1"
    assert rhs["∂L/∂b1"] == "δ_Z1.T*1"
    # computing each printed equation in order reproduces evaluate of the gradients
    got = eqs.evaluate(feeds)
    wrt = [n[k] for k in ("W1", "b1", "W2", "b2", "Z1", "A1", "Z2", "A2")]
    want = dict(zip(["∂L/∂W1", "∂L/∂b1", "∂L/∂W2", "∂L/∂b2", "δ_Z1", "δ_A1", "δ_Z2", "δ_A2"],
                    sg.evaluate(sg.grad(n["L"], wrt), feeds)))
    for label, value in want.items():
        np.testing.assert_allclose(got[label], value, rtol=1e-10, atol=1e-15)
    tex = eqs.latex()
    assert tex.startswith(r"\begin{aligned}Z_{1} &= X W_{1} + \mathbf{1} b_{1}^{T}")
    assert r"\delta_{Z_{1}} &= \delta_{A_{1}} \odot \sigma'\left(Z_{1}\right)" in tex
    assert r"\frac{\partial L}{\partial W_{1}} &= X^{T} \delta_{Z_{1}}\end{aligned}" in tex
    assert "δ_Z₁ = δ_A₁ ⊙ σ′(Z₁)" in str(eqs)


def test_backprop_equations_scalar_and_alias():
    L, w, b = perceptron("bce", named=True)
    eqs = sg.backprop_equations(L)
    a, z = sympy.symbols("a z", real=True)
    d_a, d_z = sympy.symbols("δ_a δ_z", real=True)
    rhs = dict(zip(eqs.labels(), [e.rhs for e in eqs.equations]))
    assert list(rhs) == ["δ_a", "δ_z", "∂L/∂b", "∂L/∂w"]
    assert same(rhs["δ_a"], (a - y_) / (a * (1 - a)))
    assert rhs["∂L/∂b"] == d_z and rhs["∂L/∂w"] == x_ * d_z
    feeds = {"x": 1.5, "y": 1.0}
    got = eqs.evaluate(feeds)
    assert float(got["∂L/∂w"]) == pytest.approx(float(sg.evaluate(sg.grad(L, w), feeds)), rel=1e-12)
    # a named node whose cotangent is another's (u + c passes g through): δ_u = δ_v
    x, c = sg.var("x"), sg.param("c", 1.0)
    u = sg.sin(x * c).named("u")
    v = (u + c).named("v")
    e2 = sg.backprop_equations(v * v)
    assert dict(zip(e2.labels(), [e.rhs for e in e2.equations]))["δ_u"] == sympy.Symbol("δ_v", real=True)


def test_backprop_equations_errors():
    with pytest.raises(sg.GradError, match="no params"):
        sg.backprop_equations(sg.sin(sg.var("x")))
    with pytest.raises(sg.GraphError, match="must be a Node"):
        sg.backprop_equations(3.0)


def test_bce_and_cross_entropy_networks_in_matrix_notation():
    X = sg.var("X", shape=("batch", 3))
    y = sg.var("y", shape=("batch", 1))
    c = sg.var("c", shape=("batch",), dtype="int")
    W1 = sg.param("W1", shape=(3, 4), init="xavier", seed=0)
    b1 = sg.param("b1", shape=(4,), init="normal", seed=5)
    W2 = sg.param("W2", shape=(4, 2), init="xavier", seed=2)
    H = sg.tanh(X @ W1 + b1, name="H")
    P = sg.sigmoid(H @ W2, name="P")
    rng = np.random.default_rng(0)
    feeds = {"X": rng.normal(size=(5, 3)), "y": rng.uniform(size=(5, 1)), "c": np.array([0, 1, 1, 0, 1])}
    bce = sg.losses.bce(sg.sum(P, axis=1, keepdims=True) * 0.5, y)
    xent = sg.losses.cross_entropy(H @ W2, c)
    params = [W1, b1, W2]
    for L in (bce, xent):
        eqs = sg.backprop_equations(L)
        used = {n.name for n in sg.Graph(L).vars}
        f = {k: v for k, v in feeds.items() if k in used}
        got = eqs.evaluate(f)
        for p, want in zip(params, sg.evaluate(sg.grad(L, params), f)):
            np.testing.assert_allclose(got[f"∂L/∂{p.name}"], want, rtol=1e-10, atol=1e-15)
        vals = {**f, **{p.name: p.value for p in params}, "batch": 5}
        assert numeric(sg.formula(L), vals) == pytest.approx(float(sg.evaluate(L, f)), rel=1e-12)
    # ∂bce/∂p is written out: (q − y) ⊘ (q ⊙ (1 − q)) with q = P𝟙/2, not as an opaque label
    delta_p = sg.backprop_equations(bce).equations[0]
    assert str(delta_p.lhs) == "δ_P"
    assert "∂bce" not in sg.pretty(delta_p.rhs) and " ⊘ " in sg.pretty(delta_p.rhs)
    assert r"\oslash" in sg.latex(delta_p.rhs)
    # a scalar coefficient is taken out of the sum: Σ(c M) -> c Σ(M)
    x, yv = sg.var("x", shape=("n",)), sg.var("t", shape=("n",))
    w = sg.param("w", 0.5)
    dw = sg.grad(sg.losses.mse(w * x, yv), w)
    assert str(sg.formula(dw)) == "2*sum(HadamardProduct(w*x - t, x))/n"


def test_max_of_a_variable_and_softplus_or_sigmoid_of_a_number_has_a_formula():
    # found by the property suite: SymPy's Max compares its arguments, so softplus(1) must be a real number
    x = sg.var("x")
    for f in (sg.softplus, sg.sigmoid):
        expr = sg.formula(sg.maximum(x, f(sg.const(1.0))))
        want = float(sg.evaluate(f(sg.const(1.0))))
        assert float(expr.subs(sympy.Symbol("x", real=True), -5)) == pytest.approx(want, rel=1e-12)


def test_max_with_a_nan_constant_is_nan_like_numpy():
    # found by the property suite: SymPy's Max(x, nan) raised "The argument 'nan' is not comparable"
    x = sg.var("x")
    assert sg.formula(sg.maximum(x, sg.const(float("nan")))) is sympy.nan
    assert np.isnan(sg.evaluate(sg.maximum(x, sg.const(float("nan"))), {"x": 1.0}))
