"""Property tests: random expressions over the command line's function whitelist.

Random expression trees (nesting depth ≤ 4) over ``symgrad.parse.FUNCTIONS``
and ``+ - * / **`` (unary minus too), with leaves ``x``, ``y`` (fed), ``w``
(a param) and a few numbers, are built as graph nodes directly and, as
text, through :func:`symgrad.parse`; then

* compiled == evaluated, for the value and the gradients;
* formula == evaluated (``sg.formula`` computed by ``symgrad.formulas.numeric``);
* the parsed text evaluates like the directly built graph;
* parsing, differentiating, compiling, formulas and printing raise nothing
  but symgrad's own errors.

Hypothesis runs derandomized and without an example database, with a
bounded number of examples, so the suite is deterministic and takes seconds.
Values come from edge points (0, ±1, large) and a moderate range; where both
sides give NaN, or the same ±∞, they compare equal.
"""
from __future__ import annotations

import numpy as np
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.errors import SymgradError
from symgrad.parse import FUNCTIONS

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

UNARY = sorted(name for name, (_, arity) in FUNCTIONS.items() if arity == 1)
BINARY_FUNCTIONS = sorted(name for name, (_, arity) in FUNCTIONS.items() if arity == 2)
OPERATORS = {"+": sg.add, "-": sg.sub, "*": sg.mul, "/": sg.div, "**": sg.pow}
LEAF_NAMES = ["x", "y", "w"]  # w is a param (value W_VALUE); x and y are fed
NUMBERS = [0.0, 1.0, 2.0, 0.5, 3.0, 1000.0, 1e-3]
W_VALUE = 0.5
EDGE_VALUES = [0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.0, 10.0, -10.0, 100.0, 1e3, -1e3]


@st.composite
def trees(draw, depth: int = 4):
    """An expression tree of nesting depth ≤ ``depth``: a leaf name, a number,
    or ``(kind, name, *children)`` with kind ``"call"``, ``"op"`` or ``"neg"``."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.one_of(st.sampled_from(LEAF_NAMES), st.sampled_from(NUMBERS)))
    kind = draw(st.sampled_from(["unary", "unary", "op", "op", "neg", "call2"]))
    if kind == "unary":
        return ("call", draw(st.sampled_from(UNARY)), draw(trees(depth - 1)))
    if kind == "neg":
        return ("neg", "-", draw(trees(depth - 1)))
    a, b = draw(trees(depth - 1)), draw(trees(depth - 1))
    if kind == "call2":
        return ("call", draw(st.sampled_from(BINARY_FUNCTIONS)), a, b)
    return ("op", draw(st.sampled_from(sorted(OPERATORS))), a, b)


TREES = trees()
VALUES = st.one_of(st.sampled_from(EDGE_VALUES), st.floats(-5.0, 5.0, allow_nan=False))


def to_text(tree) -> str:
    if isinstance(tree, str):
        return tree
    if isinstance(tree, float):
        return repr(tree)
    kind, name, *args = tree
    parts = [to_text(a) for a in args]
    if kind == "neg":
        return f"-({parts[0]})"
    if kind == "op":
        return f"({parts[0]}) {name} ({parts[1]})"
    return f"{name}({', '.join(parts)})"


class Leaves:
    """The leaves x, y (vars) and w (a param) of one example, shared by its whole tree."""

    def __init__(self):
        self.x, self.y, self.w = sg.var("x"), sg.var("y"), sg.param("w", W_VALUE)

    def build(self, tree):
        if isinstance(tree, str):
            return getattr(self, tree)
        if isinstance(tree, float):
            return sg.const(tree)
        kind, name, *args = tree
        nodes = [self.build(a) for a in args]
        if kind == "neg":
            return -nodes[0]
        if kind == "op":
            return OPERATORS[name](*nodes)
        return FUNCTIONS[name][0](*nodes)


def symgrad_errors_only(call):
    """Run ``call``; a symgrad error means the case does not apply (an expression symgrad refuses),
    any other exception fails the test."""
    try:
        return call()
    except SymgradError:
        assume(False)


def feeds_for(nodes, xv: float, yv: float) -> dict:
    """The values of x and y, for those of them that the graph of ``nodes`` holds."""
    return {n.name: {"x": xv, "y": yv}[n.name] for n in sg.Graph(nodes).vars}


def scale_of(nodes, xv: float, yv: float) -> float:
    """The largest finite magnitude of any value in the graph of ``nodes`` (rounding errors scale with it)."""
    graph = sg.Graph(nodes)
    with np.errstate(all="ignore"):
        values = sg.evaluate(list(graph.order), feeds_for(nodes, xv, yv))
    finite = [abs(float(v)) for v in values if np.ndim(v) == 0 and np.isfinite(v)]
    return max(finite, default=0.0)


def close(a, b, scale: float, rtol: float) -> bool:
    """a and b agree to ``rtol`` of the largest magnitude ``scale`` the computation went through;
    NaN equals NaN and ±∞ equals itself."""
    a, b = float(a), float(b)
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    if np.isinf(a) or np.isinf(b):
        return a == b
    return abs(a - b) <= rtol * (1.0 + scale)


@settings(max_examples=120, **SETTINGS)
@given(tree=TREES, xv=VALUES, yv=VALUES)
def test_random_expressions_compiled_value_and_gradients_equal_evaluated(tree, xv, yv):
    leaves = Leaves()
    node = symgrad_errors_only(lambda: leaves.build(tree))
    graph = sg.Graph(node)
    wrt = [n for n in (leaves.x, leaves.y, leaves.w) if n in graph]
    outputs = [node] + (symgrad_errors_only(lambda: sg.grad(node, wrt)) if wrt else [])
    f = symgrad_errors_only(lambda: sg.compile(outputs, inputs=[leaves.x, leaves.y]))
    with np.errstate(all="ignore"):
        evaluated = sg.evaluate(outputs, feeds_for(outputs, xv, yv))
        compiled = f(xv, yv)
    compiled = compiled if isinstance(compiled, (list, tuple)) else [compiled]
    scale = scale_of(outputs, xv, yv)
    for out, e, c in zip(outputs, evaluated, compiled):
        assert close(e, c, scale, 1e-9), \
            f"{to_text(tree)} at x={xv}, y={yv}: {out.describe()} evaluated {e}, compiled {c}"


@settings(max_examples=100, **SETTINGS)
@given(tree=TREES, xv=VALUES, yv=VALUES)
def test_random_expressions_formula_equals_evaluated_and_prints(tree, xv, yv):
    leaves = Leaves()
    node = symgrad_errors_only(lambda: leaves.build(tree))
    expr = symgrad_errors_only(lambda: sg.formula(node))
    # SymPy folds log(0) to complex infinity and exp of that to nan, where NumPy's exp(-inf) is 0:
    # such a closed form is SymPy's reading of a singular point, not a wrong formula
    assume(not (isinstance(expr, sympy.Basic) and expr.has(sympy.zoo, sympy.nan)))
    for show in (sg.latex, sg.pretty):  # printing raises nothing but symgrad's errors
        symgrad_errors_only(lambda: show(expr))
    with np.errstate(all="ignore"):
        evaluated = float(sg.evaluate(node, feeds_for(node, xv, yv)))
    assume(np.isfinite(evaluated))  # overflow and invalid values: a simplified formula may legitimately differ
    value = sg.formulas.numeric(expr, {"x": xv, "y": yv, "w": W_VALUE})
    scale = scale_of(node, xv, yv)
    assert close(evaluated, value, scale, 1e-7), \
        f"{to_text(tree)} at x={xv}, y={yv}: formula {expr} gives {value}, evaluated {evaluated}"


@settings(max_examples=100, **SETTINGS)
@given(tree=TREES, xv=VALUES, yv=VALUES)
def test_random_expression_text_parses_to_the_graph_it_reads(tree, xv, yv):
    text = to_text(tree)
    parsed = symgrad_errors_only(lambda: sg.parse(text, params=["w"], values={"w": W_VALUE}))
    leaves = Leaves()
    node = symgrad_errors_only(lambda: leaves.build(tree))
    with np.errstate(all="ignore"):
        direct = float(sg.evaluate(node, feeds_for(node, xv, yv)))
        read = float(sg.evaluate(parsed.node, feeds_for(parsed.node, xv, yv)))
    assert close(direct, read, scale_of(node, xv, yv), 1e-9), f"{text} at x={xv}, y={yv}: parsed {read}, built {direct}"
