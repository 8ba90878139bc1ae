"""sg.formula_stats and `symgrad grad --stats`: the size of a gradient written in closed form, after
SymPy's cse, in named intermediates and as a backward graph, checked against SymPy directly; budgets
turn a formula that would not finish into "over budget"."""
from __future__ import annotations

import re

import pytest
import sympy

import symgrad as sg
from symgrad import cli
from symgrad.formula_size import TREE_LIMIT, tree_size


def sigmoid_chain(depth):
    x = sg.var("x")
    ws = [sg.param(f"w{k}", 0.5) for k in range(1, depth + 1)]
    h = x
    for w in ws:
        h = sg.sigmoid(w * h)
    return h, ws


def test_counts_against_sympy_and_the_graph():
    h, ws = sigmoid_chain(8)
    stats = sg.formula_stats(h, ws[0])
    g = sg.grad(h, ws[0])
    closed = sg.formula(g)
    replacements, reduced = sympy.cse(closed)
    assert stats["closed_form"] == sympy.count_ops(closed)
    assert stats["cse"] == sum(sympy.count_ops(e) for _, e in replacements) + sympy.count_ops(reduced[0])
    assert stats["graph_ops"] == sum(1 for n in sg.Graph(g).order if not n.is_leaf)
    # SymPy's own derivative of the forward closed form (σ is a SymPy function with σ′ = σ(1 − σ))
    w1 = sympy.Symbol("w1", real=True)
    assert stats["sympy_diff"] == sympy.count_ops(sympy.diff(sg.formula(h), w1))
    # the numbers (the same on every run: they are counts of exact formulas)
    assert stats.as_dict() == {"closed_form": 175, "cse": 40, "named": 38, "graph_ops": 38, "sympy_diff": 175}
    assert str(stats).splitlines() == [
        "size of ∂f/∂w1:",
        "  closed form (leaves only)              175 ops",
        "  closed form after sympy.cse            40 ops",
        "  named intermediates                    38 ops",
        "  backward graph                         38 op nodes",
        "  sympy.diff of the forward closed form  175 ops"]


def test_closed_form_swells_while_the_backward_graph_grows_linearly():
    sizes = {}
    for depth in (4, 8, 16):
        h, ws = sigmoid_chain(depth)
        sizes[depth] = sg.formula_stats(h, ws[0])
    # twice the depth: the backward graph and cse about twice, the closed form more than three times
    for a, b in ((4, 8), (8, 16)):
        assert sizes[b]["graph_ops"] == 2 * sizes[a]["graph_ops"] + 2
        assert sizes[b]["cse"] == 2 * sizes[a]["cse"]
        assert sizes[b]["closed_form"] > 3 * sizes[a]["closed_form"]


def test_named_intermediates_write_each_shared_value_once():
    x, w = sg.var("x"), sg.param("w", 0.3)
    z = (w * x).named("z")
    a = sg.tanh(z, name="a")
    y = a * a + a  # a is used three times, and by the gradient again
    stats = sg.formula_stats(y, w)
    # named: z = w·x and a = tanh(z) once each (1 op each), then the gradient in them, x⋅(2a + 1)⋅tanh′(z),
    # which is sg.formula(g, keep="named")
    g = sg.grad(y, w)
    in_names = sg.formula(g, keep="named")
    assert str(in_names) == "x*(2*a + 1)*tanh_prime(z)"
    assert stats["named"] == 1 + 1 + sympy.count_ops(in_names) == 7
    assert stats["closed_form"] == sympy.count_ops(sg.formula(g)) == 9
    assert stats["graph_ops"] == sum(1 for n in sg.Graph(g).order if not n.is_leaf)


def test_tensor_gradients_are_measured_in_matrix_notation():
    model = sg.nn.MLP([3, 4, 2], activation="tanh", seed=0)
    X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 2))
    L = sg.losses.mse(model(X), Y, name="L")
    W = model.parameters()[0]
    stats = sg.formula_stats(L, W)
    g = sg.grad(L, W)
    assert stats["closed_form"] == sympy.count_ops(sg.formula(g))
    assert stats["sympy_diff"] is None and stats.notes["sympy_diff"].startswith("n/a")
    assert stats["graph_ops"] == sum(1 for n in sg.Graph(g).order if not n.is_leaf)
    # without wrt: the node itself, and no sympy.diff row
    alone = sg.formula_stats(g)
    assert "sympy_diff" not in alone.as_dict() and alone["closed_form"] == stats["closed_form"]


def test_a_formula_that_would_not_finish_is_over_budget():
    x, w = sg.var("x"), sg.param("w", 0.5)
    y = w * x
    for _ in range(40):  # each level uses the one below three times: a tree of ~3⁴⁰ nodes
        y = sg.sin(y) * y + y
    stats = sg.formula_stats(y, w, budget=0.5)
    for key in ("closed_form", "cse", "sympy_diff"):
        assert stats[key] is None and stats.notes[key].startswith("over budget"), (key, stats.notes)
    # the graph forms are linear in the depth and always measured
    g = sg.grad(y, w)
    assert stats["graph_ops"] == sum(1 for n in sg.Graph(g).order if not n.is_leaf) == 358
    assert stats["named"] is not None
    assert "over budget" in str(stats)


def test_tree_size_counts_shared_subtrees_at_every_use():
    t = sympy.Symbol("t")
    e = t
    for _ in range(60):
        e = sympy.sin(e) + sympy.cos(e)  # a DAG of 180 nodes, a tree of ~2⁶⁰
    assert tree_size(e) == TREE_LIMIT + 1 and tree_size(e, limit=1000) == 1001
    assert tree_size(sympy.sin(t) + sympy.cos(t)) == 5


def test_cli_grad_stats(capsys):
    code = cli.main(["grad", "sigmoid(w*sigmoid(w*x))", "--wrt", "w", "--stats"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    start = lines.index("size of ∂f/∂w:")
    table = dict(re.split(r"\s{2,}", line.strip()) for line in lines[start + 1:start + 6])
    parsed = sg.parse("sigmoid(w*sigmoid(w*x))", params=["w"])
    f, w = parsed.node.named("f"), parsed.names["w"]
    want = sg.formula_stats(f, w)
    assert table == {"closed form (leaves only)": f"{want['closed_form']} ops",
                     "closed form after sympy.cse": f"{want['cse']} ops",
                     "named intermediates": f"{want['named']} ops",
                     "backward graph": f"{want['graph_ops']} op nodes",
                     "sympy.diff of the forward closed form": f"{want['sympy_diff']} ops"}
    assert want["graph_ops"] == sum(1 for n in sg.Graph(sg.grad(f, w)).order if not n.is_leaf)


def test_the_time_budget_goes_through_code_that_catches_every_exception():
    """The alarm can go off inside a formula builder's ``except Exception`` fallback; had it been
    swallowed there, the measurement would run on without a limit (it hung a test run for minutes)."""
    import time
    from symgrad.formula_size import OverBudget, time_limit
    swallowed = False
    with pytest.raises(OverBudget):
        with time_limit(0.05):
            try:
                start = time.perf_counter()
                while time.perf_counter() - start < 3.0:
                    pass
            except Exception:  # noqa: BLE001  what a fallback in the formula code does
                swallowed = True
    assert not swallowed
