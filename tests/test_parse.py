"""Safe expression parsing: whitelist, positions, no evaluation."""
import numpy as np
import pytest

import symgrad as sg
from symgrad.parse import parse


def test_parse_builds_the_expected_graph():
    p = parse("sigmoid(w*x + b)", params=["w", "b"], values={"w": 0.5, "b": 0.1})
    assert p.node.op.name == "sigmoid"
    assert p.names["w"].kind == "param" and p.names["x"].kind == "var"
    assert float(p.names["w"].value) == 0.5
    got = float(sg.evaluate(p.node, {"x": 1.5}))
    assert got == pytest.approx(1 / (1 + np.exp(-(0.5 * 1.5 + 0.1))), rel=1e-15)


@pytest.mark.parametrize("text,want", [
    ("x^2 + 3*x", 2.0 ** 2 + 6.0), ("-x**2", -4.0), ("exp(log(x))", 2.0), ("leaky_relu(-x, alpha=0.2)", -0.4),
    ("maximum(x, 3)", 3.0), ("2 / x - +x", -1.0), ("sqrt(abs(-x*8))", 4.0), ("1e-1 * x", 0.2),
])
def test_parse_values(text, want):
    p = parse(text)
    assert float(sg.evaluate(p.node, {"x": 2.0})) == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize("text,match", [
    ('__import__("os")', "unknown function '__import__'"),
    ("x.__class__", "Attribute is not allowed"),
    ("(lambda: 1)()", "calling lambda 'lambda: 1' is not allowed"),
    ('__import__("os").system("ls")', "calling attribute .* is not allowed"),
    ("open('f')", "unknown function 'open'"),
    ("[x for x in y]", "ListComp is not allowed"),
    ("'abc'", "only numbers"),
    ("x if y else z", "IfExp is not allowed"),
    ("x < y", "Compare is not allowed"),
    ("sigmoid", "is a function"),
    ("sigmoid(x, y)", "takes 1 argument"),
    ("leaky_relu(x, slope=2)", "no keyword 'slope'"),
    ("_secret * 2", "may not start with '_'"),
    ("x % 2", "operator Mod is not allowed"),
    ("", "empty expression"),
])
def test_parse_rejects_anything_outside_the_whitelist(text, match):
    with pytest.raises(sg.ParseError, match=match):
        parse(text)


def test_syntax_error_points_at_the_position():
    with pytest.raises(sg.ParseError) as info:
        parse("sigmoid(w*x + )")
    msg = str(info.value)
    assert "syntax error" in msg and "position 15" in msg
    lines = msg.splitlines()
    assert lines[-1].index("^") == lines[-2].index(")")


def test_error_position_of_a_bad_call():
    with pytest.raises(sg.ParseError) as info:
        parse("x + evil(x)")
    lines = str(info.value).splitlines()
    assert lines[-1].index("^") == lines[-2].index("evil")


def test_huge_or_deep_input_is_refused_cleanly():
    with pytest.raises(sg.ParseError, match="limit"):
        parse("x+" * 5000 + "x")
    with pytest.raises(sg.ParseError):
        parse("(" * 900 + "x" + ")" * 900)


def test_parse_is_public_and_builds_differentiable_graphs():
    p = sg.parse("sigmoid(w*x + b)", params=["w", "b"], values={"w": 0.5, "b": 0.1, "x": 1.5})
    w, b, x = p.names["w"], p.names["b"], p.names["x"]
    assert w.kind == b.kind == "param" and x.kind == "var" and float(w.value) == 0.5
    dw = sg.grad(p.node, w)
    s = 1 / (1 + np.exp(-(0.5 * 1.5 + 0.1)))
    assert float(sg.evaluate(dw, {x: 1.5})) == pytest.approx(1.5 * s * (1 - s), rel=1e-12)
