"""Reliability of the command line, the formula printers and the renderers on hostile input.

* random command lines (Hypothesis, derandomized) end with status 0, 1 or 2
  and never show a traceback;
* formulas of graphs thousands of ops deep come out in named intermediates
  that compute the graph's value, instead of a RecursionError;
* exact numbers that SymPy could not write (10**(10**10)) become floats,
  and simplify is skipped where it would expand a huge power;
* both renderers stop at their time limit with a RenderError saying so, and
  large drawings get Graphviz's layout budgets.
"""
from __future__ import annotations

import contextlib
import io
import math
import stat
import sys

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.cli import main
from symgrad.errors import RenderError
from symgrad.formulas.build import MAX_DEPTH, formula_with_definitions
from symgrad.formulas.numeric import numeric
from symgrad.parse import FUNCTIONS
from symgrad.render.output import LARGE_GRAPH_EDGES, layout_budget, render_bytes

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: --help, a malformed command line
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------ random command lines
NAMES = ["x", "w", "b", "y", "f", "out", "L", "q"]
_leaf = st.sampled_from(NAMES + ["0", "1", "2.5", "-3", "1e400", "1e-300", "10**10**10", "()", "x.y", "_x"])


def _combine(children):
    unary = st.builds(lambda f, a: f"{f}({a})", st.sampled_from(sorted(FUNCTIONS) + ["frob", "__import__"]),
                      children)
    binary = st.builds(lambda a, op, b: f"({a}{op}{b})", children,
                       st.sampled_from(["+", "-", "*", "/", "**", "^", "@", "%", " ", ","]), children)
    call2 = st.builds(lambda a, b: f"maximum({a}, {b})", children, children)
    leaky = st.builds(lambda a, k: f"leaky_relu({a}, {k})", children,
                      st.sampled_from(["alpha=0.2", "alpha=x", "slope=1", "alpha=1e400"]))
    return st.one_of(unary, binary, call2, leaky, st.builds(lambda a: f"-{a}", children))


EXPRESSIONS = st.one_of(st.recursive(_leaf, _combine, max_leaves=6),
                        st.text(max_size=12), st.sampled_from(["sin(" * 150 + "x" + ")" * 150, "x**" * 200 + "x"]))
NAME_LISTS = st.one_of(st.lists(st.sampled_from(NAMES + ["1x", ""]), max_size=3).map(",".join), st.text(max_size=5))
VALUE_LISTS = st.one_of(
    st.lists(st.builds(lambda n, v: f"{n}={v}", st.sampled_from(NAMES),
                       st.sampled_from(["1", "-0.5", "0", "inf", "nan", "1e400", "abc", ""])), max_size=4).map(",".join),
    st.text(max_size=8))
OPTIONS = st.one_of(
    st.tuples(st.just("--wrt"), NAME_LISTS), st.tuples(st.just("--values"), VALUE_LISTS),
    st.tuples(st.just("--loss"), st.sampled_from(["mse", "mae", "bce", "bce_with_logits", "hinge"])),
    st.tuples(st.just("--target"), st.sampled_from(NAMES + ["1y", "_t", ""])),
    st.tuples(st.just("-o"), st.sampled_from(["g.dot", "g.gv", "g.svg", "g.png", "g.xyz", "nodir/g.dot", ".", "g"])),
    st.tuples(st.just("--rankdir"), st.sampled_from(["LR", "TB", "up"])),
    st.tuples(st.just("--timeout"), st.sampled_from(["30", "0", "-1", "nan", "x"])),
    st.tuples(st.just("--only"), st.sampled_from(["01", "99", ""])),
    st.sampled_from([("--latex",), ("--pretty",), ("--chain",), ("--backward",), ("--formulas",), ("--debug",),
                     ("--smoke",), ("--",), ("-x",), ("--wr",), ("-h",)]),
    st.tuples(st.text(max_size=6)))
RANDOM_LINES = st.builds(
    lambda cmd, expr, opts, where: [*([cmd] if cmd else []), *sum(opts[:where], ()), *([expr] if expr else []),
                                    *sum(opts[where:], ())],
    st.sampled_from(["grad", "grad", "grad", "draw", "draw", "gallery", "frob", ""]),
    st.one_of(EXPRESSIONS, st.none()), st.lists(OPTIONS, max_size=5), st.integers(0, 5))

# well-formed command lines over the whitelist, so that the working paths (formulas, values, chain rule,
# drawings) are exercised as often as the refusals
_VALID_LEAF = st.sampled_from(["x", "w", "b", "2", "0.5", "-1", "0"])
VALID_EXPRESSIONS = st.recursive(_VALID_LEAF, lambda c: st.one_of(
    st.builds(lambda f, a: f"{f}({a})", st.sampled_from(sorted(n for n, (_, k) in FUNCTIONS.items() if k == 1)), c),
    st.builds(lambda a, op, b: f"({a}{op}{b})", c, st.sampled_from(["+", "-", "*", "/", "**", "^"]), c),
    st.builds(lambda a, b: f"maximum({a}, {b})", c, c)), max_leaves=5)


def _valid_line(cmd, expr, wrt, values, loss, flags, suffix):
    argv = [cmd, f"{expr} + w*b*x", "--wrt", ",".join(wrt)]
    if loss:
        argv += ["--loss", loss]
    if values:
        argv += ["--values", "x=0.5,w=-1.5,b=2" + (",y=1" if loss else "")]
    if cmd == "grad":
        argv += flags
    else:
        argv += ["--backward", "-o", f"g.{suffix}"] + (["--formulas"] if "--chain" in flags else [])
    return argv


VALID_LINES = st.builds(
    _valid_line, st.sampled_from(["grad", "grad", "draw"]), VALID_EXPRESSIONS,
    st.lists(st.sampled_from(["x", "w", "b"]), min_size=1, max_size=3, unique=True), st.booleans(),
    st.sampled_from([None, None, "mse", "mae", "bce", "bce_with_logits"]),
    st.lists(st.sampled_from(["--latex", "--pretty", "--chain"]), max_size=2, unique=True).filter(
        lambda f: not {"--latex", "--pretty"} <= set(f)),
    st.sampled_from(["dot", "dot", "svg"]))


def _check_command_lines(strategy, examples: int, tmp_path, monkeypatch) -> set:
    """Run ``examples`` command lines from ``strategy`` in ``tmp_path``; return the exit codes seen."""
    monkeypatch.chdir(tmp_path)  # draw's default -o and the gallery's --out land here
    empty = tmp_path / "no_gallery"
    empty.mkdir()
    seen_codes = set()

    @settings(max_examples=examples, **SETTINGS)
    @given(strategy)
    def check(argv):
        if argv and argv[0] == "gallery":
            argv = [*argv, "--gallery-dir", str(empty)]  # never run the real gallery's scripts
        code, out, err = run_cli(argv)
        seen_codes.add(code)
        assert code in (0, 1, 2), (argv, code, err)
        assert "Traceback" not in out + err, (argv, err)
        assert "internal error" not in err, (argv, err)
        assert not any(line.lstrip().startswith('File "') for line in err.splitlines()), (argv, err)

    check()
    return seen_codes


def test_random_command_lines_never_show_a_traceback(tmp_path, monkeypatch):
    codes = _check_command_lines(RANDOM_LINES, 200, tmp_path, monkeypatch)
    assert 2 in codes and 0 in codes  # refusals, and the few lines that happen to be right


def test_random_well_formed_command_lines_work_without_a_traceback(tmp_path, monkeypatch):
    # formulas, values, chain rules and drawings of random whitelisted expressions (SymPy takes ~0.2 s each)
    assert 0 in _check_command_lines(VALID_LINES, 20, tmp_path, monkeypatch)


# ------------------------------------------------------------------ deep graphs
def _substitute(expr, definitions, values: dict) -> float:
    """The number a formula written in intermediates stands for: each definition computed in order."""
    env = dict(values)
    for sym, d in definitions:
        env[str(sym)] = numeric(d, env)
    return float(numeric(expr, env))


def test_formula_and_latex_of_a_depth_1000_graph_use_named_intermediates():
    x = sg.var("x")
    h = x
    for _ in range(1000):
        h = sg.sin(h)
    expr, defs = formula_with_definitions(h)
    assert len(defs) > 1000 // (2 * MAX_DEPTH) and [str(s) for s, _ in defs[:2]] == ["h_1", "h_2"]
    want = 0.5
    for _ in range(1000):
        want = math.sin(want)
    assert _substitute(expr, defs, {"x": 0.5}) == pytest.approx(want, rel=1e-12)
    assert sg.formula(h) == expr
    tex, text = sg.latex(h), sg.pretty(h)
    assert r"\text{where } h_{1} = " in tex and tex.count(r"\sin") == 1000
    assert "\nwhere\n" in text and text.count("sin") == 1000


def test_gradient_formula_of_a_deep_chain_computes_the_gradient():
    x, w = sg.var("x"), sg.param("w", 0.9)
    h = x
    for _ in range(120):
        h = sg.tanh(h * w)
    dw = sg.grad(h, w)
    expr, defs = formula_with_definitions(dw)
    assert defs
    got = _substitute(expr, defs, {"x": 0.7, "w": 0.9})
    assert got == pytest.approx(float(sg.evaluate(dw, {"x": 0.7})), rel=1e-10)


def test_backprop_equations_of_a_deep_unnamed_chain_evaluate_to_the_gradient():
    x, w = sg.var("x"), sg.param("w", 0.5)
    h = x
    for _ in range(100):  # arithmetic only: no activation gets a textbook name
        h = h * w + x
    loss = h.named("L")
    eqs = sg.backprop_equations(loss)
    intermediates = [e for e in eqs.forward if str(e.lhs).startswith("h_")]
    assert intermediates and "h₁ = " in str(eqs)
    got = eqs.evaluate({"x": 0.3})["∂L/∂w"]
    assert float(got) == pytest.approx(float(sg.evaluate(sg.grad(loss, w), {"x": 0.3})), rel=1e-10)


def test_backprop_equations_of_a_deep_activation_chain_are_linear_in_depth():
    x, w = sg.var("x"), sg.param("w", 0.5)
    h = x
    for _ in range(200):
        h = sg.tanh(h * w)
    eqs = sg.backprop_equations(h)
    # z_k, a_k for k < 200 and L; a δ for each named node and ∂L/∂w: two of each per layer
    assert len(eqs.forward) == 399 and len(eqs.equations) == 399
    got = eqs.evaluate({"x": 0.3})
    assert float(got["∂L/∂w"]) == pytest.approx(float(sg.evaluate(sg.grad(h, w), {"x": 0.3})), rel=1e-10)


# ------------------------------------------------------------------ exact numbers
def test_power_needing_a_huge_exact_number_is_written_in_floating_point():
    x = sg.var("x")
    f = sg.formula(sg.const(10.0) ** sg.const(1e10) * x)  # exactly, 10**(10**10) would never finish
    coeff = f.as_coeff_Mul()[0]
    assert isinstance(coeff, sympy.Float) and sympy.log(coeff, 10).evalf() == pytest.approx(1e10)
    g = sg.formula((sg.const(10.0) * x) ** sg.const(1e10))
    assert g.free_symbols == {sympy.Symbol("x", real=True)} and "e+10000000000" in str(g)
    prod = x
    for _ in range(20):  # 10**6000 would exceed Python's 4300-digit text limit
        prod = prod * sg.const(1e300)
    assert str(sg.formula(prod)) == "1.0e+6000*x"


def test_simplify_skips_a_huge_power_of_a_sum():
    x = sg.var("x")
    f = sg.formula((x + 1.0) ** sg.const(1e6))  # simplify would expand the binomial for minutes
    xs = sympy.Symbol("x", real=True)
    assert f == (xs + 1) ** 1000000
    assert sg.formula(sg.grad((x + 1.0) ** sg.const(1e6), x)) == 1000000 * (xs + 1) ** 999999


# ------------------------------------------------------------------ renderers
def _chain_dot(n: int) -> str:
    x = sg.var("x")
    h = x
    for k in range(n):
        h = sg.sin(h) * sg.var(f"v{k}")
    return sg.draw(h).source


def test_embedded_renderer_stops_at_its_time_limit_with_a_render_error():
    with pytest.raises(RenderError, match=r"the embedded Graphviz did not finish within 0.001 s"):
        render_bytes(_chain_dot(150), backend="embedded", timeout=0.001)
    svg = render_bytes("digraph { a -> b }", backend="embedded")  # the renderer works again afterwards
    assert b"<svg" in svg and b">a</text>" in svg


def test_system_dot_time_limit_is_a_render_error(tmp_path, monkeypatch):
    fake = tmp_path / "dot"
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RenderError, match=r"Graphviz `.*dot` did not finish within 0.5 s"):
        render_bytes("digraph { a -> b }", "svg", backend="system", timeout=0.5)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "fast", True])
def test_render_timeout_must_be_a_positive_number(timeout, tmp_path):
    with pytest.raises(RenderError, match="timeout must be a positive number"):
        sg.render(sg.draw(sg.var("x") * 2.0), tmp_path / "g.svg", timeout=timeout)
    assert not (tmp_path / "g.svg").exists()


def test_cli_draw_timeout_reaches_the_renderer(tmp_path):
    out = tmp_path / "g.svg"
    expr = "*".join(f"sin(v{k})" for k in range(120))
    code, _, err = run_cli(["draw", expr, "--formulas", "-o", str(out), "--timeout", "0.001"])
    assert code == 1 and "RenderError: render: " in err and "did not finish within 0.001 s" in err
    assert "--timeout SECONDS" in err and not out.exists()


def test_large_drawing_gets_graphviz_layout_budgets():
    x = sg.var("x")
    h = x
    for _ in range(299):  # x·x·…·x: one input feeding 300 ops at every distance
        h = h * x
    source = sg.draw(h, formulas=True).source
    budget = layout_budget(source)
    assert source.count("->") > LARGE_GRAPH_EDGES
    assert set(budget) == {"nslimit", "nslimit1"} and 0 < float(budget["nslimit"]) < 1
    assert layout_budget(sg.draw(sg.sin(x) * x).source) == {}


def test_three_hundred_factor_product_draws_with_formulas(tmp_path):
    out = tmp_path / "p.svg"
    code, stdout, err = run_cli(["draw", "*".join(["x"] * 300), "--formulas", "-o", str(out)])
    assert code == 0, err
    svg = out.read_text()
    assert stdout.strip() == f"wrote {out}"
    assert svg.count('<g id="node') == 1 + 299 + 3  # x, the 299 products and the legend's three boxes
    assert ">f = …·x·x · x</text>" in svg  # the formulas are there, shortened
