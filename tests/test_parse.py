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


def _caret_column(message: str) -> int:
    """The display column (0-based, under the echoed text) the caret line points at."""
    lines = message.splitlines()
    return lines[-1].index("^") - 2


@pytest.mark.parametrize("text, match", [
    ("1e400*x", r"the number 1e400 is beyond the range of a float"),
    ("9" * 400 + "*x", r"literal is 400 characters long; the limit is 100"),
    ("1" * 300 + "0" * 20 + "*x", r"literal is 320 characters long"),
])
def test_literal_beyond_float_range_or_length_is_a_parse_error(text, match):
    with pytest.raises(sg.ParseError, match=match) as info:
        parse(text)
    assert _caret_column(str(info.value)) == 0


@pytest.mark.parametrize("text, match", [
    ("10**10**10*x", r"the constant 10\*\*10\*\*10 is not a finite float64 number"),
    ("2**1000000*x", r"the constant 2\*\*1000000 is not a finite float64 number"),
    ("1/0*x", r"the constant 1/0 is not a finite"),
    ("log(0)*x", r"the constant log\(0\) is not a finite"),
    ("(10*x)**1e10", r"exact numbers of about 1e\+10 digits here; the limit is 1000"),
    ("((2*x)**1000)**1000", r"exact numbers of about 3.04e\+05 digits"),
    ("x + (3*x)^3000", r"exact numbers of about 1.43e\+03 digits"),
])
def test_constants_and_exponents_are_bounded_before_sympy_sees_them(text, match):
    with pytest.raises(sg.ParseError, match=match):
        parse(text)


def test_large_exponents_that_need_no_huge_exact_number_still_parse():
    for text, x, want in [("(x+1)**1000000", 1e-7, (1 + 1e-7) ** 1000000), ("x**1e3", 1.0001, 1.0001 ** 1e3),
                          ("2**1000*x", 3.0, 2.0 ** 1000 * 3.0), ("(2*x)**300", 0.75, 1.5 ** 300),
                          ("x + (3*x)^2000", 0.3, 0.3 + 0.9 ** 2000)]:
        p = parse(text)
        assert float(sg.evaluate(p.node, {"x": x})) == pytest.approx(want, rel=1e-9), text


@pytest.mark.parametrize("text", [
    "sin(" * 199 + "x" + ")" * 199,
    "x**" * 600 + "x",
    "(x*(x+" * 60 + "x" + "))" * 60,
    "exp(" * 101 + "x" + ")" * 101,
])
def test_nesting_deeper_than_the_limit_is_a_parse_error_with_a_caret(text):
    with pytest.raises(sg.ParseError, match=r"nested more than 100 levels deep here; the limit is 100") as info:
        parse(text)
    col = _caret_column(str(info.value))
    assert 0 <= col < len(text)


def test_nesting_at_the_limit_parses_and_evaluates():
    p = parse("sin(" * 100 + "x" + ")" * 100)
    want = 0.5
    for _ in range(100):
        want = np.sin(want)
    assert float(sg.evaluate(p.node, {"x": 0.5})) == pytest.approx(want, rel=1e-14)


def test_long_flat_sums_and_products_parse_without_recursion():
    p = parse("x+" * 999 + "x")
    assert float(sg.evaluate(p.node, {"x": 0.5})) == pytest.approx(500.0, rel=1e-14)
    q = parse("x*" * 999 + "x")
    assert float(sg.evaluate(q.node, {"x": 1.001})) == pytest.approx(1.001 ** 1000, rel=1e-12)


@pytest.mark.parametrize("text, bad", [
    ("αβγ + frob(x)", "frob"),          # two-byte letters before the call
    ("漢字 + frob(x)", "frob"),          # wide characters: two columns each
    ("e\u0301 + frob(x)", "frob"),       # a combining accent: no column
    ("(x +\n  frob(x))", "frob"),       # a newline inside the parentheses
    ("(αβ +\n é) + frob(x)", "frob"),
])
def test_caret_points_at_the_character_after_non_ascii_text_and_newlines(text, bad):
    import unicodedata

    with pytest.raises(sg.ParseError) as info:
        parse(text)
    msg = str(info.value)
    assert f"at position {text.index(bad) + 1}" in msg
    echoed = msg.splitlines()[-2][2:]
    assert "\n" not in echoed and echoed == text.replace("\n", " ")
    width = sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
                for c in echoed[:text.index(bad)])
    assert _caret_column(msg) == width


def test_syntax_error_caret_after_non_ascii_text():
    with pytest.raises(sg.ParseError, match="syntax error") as info:
        parse("αβ + é +* 2")
    assert "at position 9" in str(info.value) and _caret_column(str(info.value)) == 8
