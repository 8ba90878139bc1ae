"""One declaration per op: an op declared in one place evaluates, differentiates, prints, draws and
compiles (with buffer reuse); nothing outside symgrad/ops/ asks for an op by name; no hidden channels;
generated code names what it computes."""
from __future__ import annotations

import ast
import pathlib
import re

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.ops import base
from symgrad.ops.base import REGISTRY, FUNCTION_OPS
from symgrad.ops.declare import elementwise_op
from symgrad.oneline import Notation

PACKAGE = pathlib.Path(sg.__file__).parent


@pytest.fixture
def scratch_registry():
    """Ops declared inside a test are removed afterwards (the registry meta-tests of other files
    cover every registered op)."""
    before, functions = dict(REGISTRY), dict(FUNCTION_OPS)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)
    FUNCTION_OPS.clear()
    FUNCTION_OPS.update(functions)


def test_an_op_declared_in_one_place_does_everything(scratch_registry):
    # the whole declaration: meaning, NumPy implementation, label, and how to compile it (a ufunc)
    cube_op = elementwise_op("cube", lambda t: t ** 3, lambda x: x ** 3, label="cube", ufunc="power",
                             ufunc_args=("3.0",), notation=Notation("call"))

    def cube(x):
        return base.apply(cube_op, x)

    x = sg.var("x")
    w = sg.param("w", np.array([0.5, -1.5, 2.0]))
    X = sg.var("X", shape=("batch", 3))
    # evaluates
    assert float(sg.evaluate(cube(x), {"x": 1.5})) == pytest.approx(3.375)
    # differentiates: the derivative op exists from the declaration on, and the gradient is 3x²
    assert "cube_prime" in REGISTRY and REGISTRY["cube_prime"].derivative_of == ("cube", 0)
    dx = sg.grad(cube(sg.sin(x)), x)
    assert float(sg.evaluate(dx, {"x": 0.7})) == pytest.approx(3 * np.sin(0.7) ** 2 * np.cos(0.7))
    L = sg.sum(cube(X * w))
    assert sg.check_grad(L, [w], {"X": np.array([[0.3, -0.2, 0.9], [1.1, 0.4, -0.6]])}) < 1e-6
    # prints: its SymPy meaning in closed form, its label in matrix notation
    assert sympy.simplify(sg.formula(sg.grad(cube(x), x)) - 3 * sympy.Symbol("x", real=True) ** 2) == 0
    assert sg.pretty(cube(X)) == "cube(X)" and sg.latex(cube(X)) == r"\operatorname{cube}\left(X\right)"
    # draws with its label
    dot = sg.draw(cube(x * 2.0)).source
    assert "cube(·)" in dot
    assert "cube(x·2)" in sg.draw(cube(x * 2.0), formulas=True).source
    # compiles, writing into the buffer of the product it consumes when nothing else reads it
    forward = sg.compile(L, inputs=[X])
    assert re.search(r"np\.power\((\w+), 3\.0, out=\1\)", forward.source), forward.source
    f = sg.compile([L, sg.grad(L, w)], inputs=[X])
    Xv = np.random.default_rng(0).normal(size=(4, 3))
    assert float(forward(Xv)) == pytest.approx(float(sg.evaluate(L, {"X": Xv})), rel=1e-12)
    for got, want in zip(f(Xv), sg.evaluate([L, sg.grad(L, w)], {"X": Xv})):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def _op_name_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing an op's name (``<x>.op.name``, ``op.name``) with string literals."""
    def is_op_name(e):
        return isinstance(e, ast.Attribute) and e.attr == "name" and (
            (isinstance(e.value, ast.Attribute) and e.value.attr in ("op", "opdef")) or
            (isinstance(e.value, ast.Name) and e.value.id in ("op", "opdef")))

    def is_text(e):
        if isinstance(e, ast.Constant):
            return isinstance(e.value, str)
        if isinstance(e, (ast.Tuple, ast.List, ast.Set)):
            return any(is_text(x) for x in e.elts)
        return isinstance(e, ast.Name) and e.id.isupper()  # a table of names

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left] + list(node.comparators)
            if any(is_op_name(s) for s in sides) and any(is_text(s) for s in sides):
                lines.append(node.lineno)
    return lines


def test_nothing_outside_ops_compares_op_names():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "ops" in path.relative_to(PACKAGE).parts[:1]:
            continue
        lines = _op_name_comparisons(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[str(path.relative_to(PACKAGE))] = lines
    assert found == {}
    # the check finds what it looks for
    assert _op_name_comparisons(ast.parse("if n.op.name == 'matmul': pass\nx = op.name in ('a', 'b')")) == [1, 2]


def test_no_hidden_channels():
    sources = {p: p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")}
    assert not any("GRAD_OF" in s or "len(REGISTRY)" in s for s in sources.values())
    # gradient provenance travels on the gradient node itself
    x, w = sg.var("x"), sg.param("w", 0.5)
    dw = sg.grad(sg.sin(w * x), w)
    assert w in dw.grad_of
    # derivative ops come with their op's declaration; grad (and grad of grad) registers nothing
    softsign = sg.elementwise(lambda t: t / (1 + t * t), "decl_softsign")
    assert "decl_softsign_prime" in REGISTRY
    before = set(REGISTRY)
    g = sg.grad(softsign(x), x)
    gg = sg.grad(g, x)
    assert set(REGISTRY) == before
    t = sympy.Symbol("t")
    want = sympy.diff(t / (1 + t * t), t, 2).subs(t, 0.4)
    assert float(sg.evaluate(gg, {"x": 0.4})) == pytest.approx(float(want))
    # leaves are node kinds, not ops
    assert sg.var("v").op is None and sg.var("v").kind == "var" and sg.const(1.0).kind == "const"
    assert not {"var", "param", "const"} & set(REGISTRY)


def _xor_step(opt):
    model = sg.nn.MLP([2, 8, 1], activation="tanh", seed=0)
    X, Y = sg.var("X", shape=("batch", 2)), sg.var("Y", shape=("batch", 1))
    return sg.compile_step(sg.losses.bce_with_logits(model(X), Y), opt, inputs=[X, Y])


def test_generated_code_names_what_it_computes():
    opt = sg.optim.Adam(lr=0.05)
    step = _xor_step(opt)
    src = step.source
    # a value written over a buffer has the name of what it now holds
    assert "mlp_0_a = np.tanh(mlp_0_z, out=mlp_0_z)" in src
    # cotangents after their node, optimizer state after its parameter
    assert re.search(r"^\s+dL_dmlp_0_W = .*# grad of: mlp\.0\.W$", src, re.M)
    assert "adam_m_mlp_0_W" in src and "adam_v_mlp_1_b" in src
    # constants as a person writes them (1 − β₁ folds to 0.09999999999999998)
    assert "0.1," in src and "0.09999999999999998" not in src and "0.0010000000000000009" not in src
    # the update opens with the optimizer's rule, and each parameter's block is marked
    rule = opt.rule_lines()
    assert rule[1].strip() == "m ← beta_1*m + g*(1 - beta_1)"
    for line in rule:
        assert f"# {line}" in src
    assert [ln.strip() for ln in src.splitlines() if ln.strip().startswith("# update of")] == \
        ["# update of mlp.0.W", "# update of mlp.0.b", "# update of mlp.1.W", "# update of mlp.1.b"]
    # and it still trains
    X, Y = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), np.array([[0], [1], [1], [0]])
    losses = [step(X, Y) for _ in range(300)]
    assert losses[-1] < 0.01


def test_a_name_never_shadows_the_function_or_an_op_it_calls():
    # a var named like the generated function, an op the function calls, and a builtin
    x = sg.var("step", shape=(3,))
    y = sg.var("sigmoid", shape=(3,))
    z = sg.var("abs", shape=(3,))
    w = sg.param("fn", np.ones(3))
    out = sg.sum(sg.sigmoid(x * w) + sg.relu(y) * z)
    f = sg.compile([out, sg.grad(out, w)], inputs=[x, y, z])
    rng = np.random.default_rng(1)
    feeds = [rng.normal(size=3) for _ in range(3)]
    for got, want in zip(f(*feeds), sg.evaluate([out, sg.grad(out, w)], dict(zip([x, y, z], feeds)))):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    tree = ast.parse(f.source)
    assert tree.body[0].name == "fn"
    assigned = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    args = {a.arg for a in tree.body[0].args.args}
    assert not ({"fn", "sigmoid", "abs", "np"} & (assigned | args))
