"""The `symgrad` command line: ``symgrad.cli.main(argv)`` called in-process, its output, files and exit code.

One smoke test runs the installed ``symgrad`` entry point as a user does, in a subprocess.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import re
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from symgrad.cli import main

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def symgrad(*args: str) -> Run:
    """``main(args)`` with stdout and stderr captured; argparse's SystemExit (--help, bad command) gives the code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return Run(code, unicodedata.normalize("NFC", out.getvalue()), err.getvalue())


def value_of(out: str, lhs: str) -> float:
    line = next(ln for ln in out.splitlines() if ln.startswith(lhs + " = "))
    return float(line.rsplit(" = ", 1)[1])


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_grad_prints_formulas_and_values():
    r = symgrad("grad", "sigmoid(w*x + b)", "--wrt", "w,b", "--loss", "bce", "--target", "y",
                "--values", "x=1.5,y=1,w=0.5,b=0.1")
    assert r.returncode == 0, r.stderr
    p = sigmoid(0.5 * 1.5 + 0.1)
    assert "∂L/∂w = x*(-y + sigmoid(b + w*x))" in r.stdout
    assert "∂L/∂b = -y + sigmoid(b + w*x)" in r.stdout
    assert value_of(r.stdout, "L") == pytest.approx(-math.log(p), rel=1e-5)
    assert value_of(r.stdout, "∂L/∂w") == pytest.approx((p - 1) * 1.5, rel=1e-5)
    assert value_of(r.stdout, "∂L/∂b") == pytest.approx(p - 1, rel=1e-5)


def test_grad_latex_pretty_and_chain():
    tex = symgrad("grad", "w**2/x", "--wrt", "w,x", "--latex")
    assert tex.returncode == 0
    assert tex.stdout.splitlines() == ["f = \\frac{w^{2}}{x}", "\\frac{\\partial f}{\\partial w} = \\frac{2 w}{x}",
                                       "\\frac{\\partial f}{\\partial x} = - \\frac{w^{2}}{x^{2}}"]
    pretty = symgrad("grad", "w**2/x", "--wrt", "w", "--pretty").stdout.splitlines()
    bar = next(ln for ln in pretty if ln.startswith("∂f/∂w = "))
    assert "─" in bar  # the fraction bar sits on the line of "∂f/∂w ="
    chain = symgrad("grad", "tanh(w*x)", "--wrt", "w", "--chain", "--values", "x=2,w=0.3")
    assert chain.returncode == 0
    assert "path 1: w → u₁ → f" in chain.stdout
    want = 2 * (1 - math.tanh(0.6) ** 2)
    assert value_of(chain.stdout, "∂f/∂w") == pytest.approx(want, rel=1e-5)
    total = re.findall(r"^∂f/∂w = .* = (\S+)$", chain.stdout, flags=re.M)
    assert float(total[-1]) == pytest.approx(want, rel=1e-5)  # the chain rule's total


def test_draw_writes_svg_with_values_and_gradients(tmp_path):
    out = tmp_path / "g.svg"
    r = symgrad("draw", "tanh(w*x + b)", "--wrt", "w", "-o", str(out), "--backward", "--values", "x=1.5,w=0.2,b=0.1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wrote {out}"
    texts = [t.text for t in ET.parse(out).getroot().iter(SVG + "text") if t.text]
    assert "0.4" in texts and f"{math.tanh(0.4):.4g}" in texts  # z = 0.2·1.5 + 0.1 and tanh(z)
    assert any(t.startswith("∂f/∂w") for t in texts)
    assert f"{1.5 * (1 - math.tanh(0.4) ** 2):.4g}" in texts
    dot = tmp_path / "g.dot"
    assert symgrad("draw", "w*x", "-o", str(dot)).returncode == 0
    assert dot.read_text().startswith("digraph symgrad {")


@pytest.mark.parametrize("args, message, caret", [
    (["grad", "sigmoid(w*x + b", "--wrt", "w"], "'(' was never closed at position 8", 8),
    (["grad", "w*x +* 2", "--wrt", "w"], "syntax error", None),
    (["grad", "w*x", "--wrt", "q"], "--wrt: 'q' does not appear in the expression", None),
    (["grad", "w*x"], "--wrt: name at least one variable", None),
    (["grad", "w*x", "--wrt", "w", "--values", "x=abc"], "'abc' (for x) is not a number", None),
    (["grad", "frobnicate(x)", "--wrt", "x"], "unknown function 'frobnicate' at position 1; allowed: abs,", 1),
    (["grad", "x.__class__", "--wrt", "x"], "Attribute is not allowed", 1),
    (["draw", "w*x", "--backward"], "--backward needs --wrt", None),
    (["draw", "w*x", "--wrt", "w"], "--wrt only applies with --backward", None),
    (["grad", "3"], "the expression '3' has no variables to differentiate", None),
    (["grad", "x", "--wrt", "x", "--values", "x=1,x=5"], "--values: x is given twice (x=1 and x=5)", None),
    (["grad", "w*x", "--wrt", "w,w"], "--wrt: 'w' is given twice", None),
    (["grad", "w*x", "--wrt", "w", "--values", "x=1e400,w=1"], "'1e400' (for x) is not a finite number", None),
    (["grad", "1e400*x", "--wrt", "x"], "the number 1e400 is beyond the range of a float", 1),
    (["grad", "w*x", "--wrt", "w", "--target", "t"], "--target only applies with --loss", None),
    (["draw", "w*x", "--timeout", "0", "-o", "g.dot"], "--timeout: expected a positive number", None),
])
def test_usage_errors_exit_2_with_a_message(args, message, caret):
    r = symgrad(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr, r.stderr
    assert r.stderr.startswith(f"symgrad {args[0]}: error: ")
    if caret is not None:  # the caret line points at the position (1-based) under the echoed expression
        lines = r.stderr.splitlines()
        assert lines[-1].index("^") - 2 == caret - 1 and lines[-2].strip() == args[1]


def test_injection_is_a_parse_error_not_an_import(tmp_path):
    marker = tmp_path / "pwned"
    expr = f'__import__("os").system("touch {marker}")'
    r = symgrad("grad", expr, "--wrt", "x")
    assert r.returncode == 2 and "calling attribute" in r.stderr and "is not allowed" in r.stderr
    r = symgrad("draw", f'x + (lambda: __import__("os").system("touch {marker}"))()', "-o", str(tmp_path / "a.svg"))
    assert r.returncode == 2 and "not allowed" in r.stderr
    assert not marker.exists() and not (tmp_path / "a.svg").exists()


def test_help_and_bad_command():
    for cmd in ([], ["grad"], ["draw"], ["gallery"]):
        r = symgrad(*cmd, "--help")
        assert r.returncode == 0 and r.stdout.startswith("usage: symgrad")
    r = symgrad("frob")
    assert r.returncode == 2 and "invalid choice: 'frob'" in r.stderr
    r = symgrad()
    assert r.returncode == 2 and "usage:" in r.stderr


def test_png_without_dot_is_a_clear_error(tmp_path, monkeypatch):
    env_path = tmp_path / "bin"
    env_path.mkdir()
    out = tmp_path / "g.png"
    monkeypatch.setenv("PATH", str(env_path))  # shutil.which("dot") finds nothing
    proc = symgrad("draw", "w*x", "-o", str(out))
    assert proc.returncode == 1
    assert "GraphvizNotFoundError" in proc.stderr and "install Graphviz" in proc.stderr
    assert not out.exists()


def test_gallery_writes_an_index_page(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))  # the example process
    out = tmp_path / "site"
    r = symgrad("gallery", "--only", "01", "--smoke", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"wrote {out}/index.html (1 examples)"
    page = (out / "index.html").read_text()
    assert "∂L/∂w = x⋅(-y + σ(b + w⋅x))" in unicodedata.normalize("NFC", page.replace("&#x27;", "'"))
    assert "\\frac{\\partial L}{\\partial w}" in page  # the LaTeX source
    links = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert links and not any(re.match(r"[a-z]+://", link) for link in links)  # nothing from the network
    for link in links:
        assert (out / link).is_file(), link
    assert any(link.endswith("perceptron_backward.svg") for link in links)
    bad = symgrad("gallery", "--only", "99", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "99" in bad.stderr


def test_installed_entry_point_runs():
    exe = Path(sys.executable).parent / ("symgrad.exe" if os.name == "nt" else "symgrad")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "symgrad"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([*cmd, "grad", "tanh(w*x)", "--wrt", "w", "--values", "x=2,w=0.3"], capture_output=True,
                       text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    out = unicodedata.normalize("NFC", r.stdout)
    assert out.startswith("f = tanh(w*x) = ")
    assert value_of(out, "f") == pytest.approx(math.tanh(0.6), rel=1e-5)
    assert value_of(out, "∂f/∂w") == pytest.approx(2 * (1 - math.tanh(0.6) ** 2), rel=1e-5)


def test_loss_target_used_in_the_expression_is_that_variable():
    # y is both a factor of the prediction and the loss's target: L = (x·y − y)², ∂L/∂x = 2y(x·y − y)
    r = symgrad("grad", "y*x", "--wrt", "x", "--loss", "mse", "--values", "x=2,y=3")
    assert r.returncode == 0, r.stderr
    assert "L = (x*y - y)**2" in r.stdout
    assert value_of(r.stdout, "L") == pytest.approx((2 * 3 - 3) ** 2)
    assert value_of(r.stdout, "∂L/∂x") == pytest.approx(2 * 3 * (2 * 3 - 3))


def test_expression_starting_with_minus_needs_no_double_dash(tmp_path):
    r = symgrad("grad", "-x", "--wrt", "x", "--values", "x=2")
    assert r.returncode == 0, r.stderr
    assert value_of(r.stdout, "f") == -2.0 and value_of(r.stdout, "∂f/∂x") == -1.0
    r = symgrad("grad", "--wrt", "w", "-2*w*x", "--values", "x=1.5,w=1")
    assert r.returncode == 0, r.stderr
    assert value_of(r.stdout, "∂f/∂w") == -3.0
    out = tmp_path / "neg.dot"
    r = symgrad("draw", "-x", "-o", str(out))
    assert r.returncode == 0 and out.read_text().startswith("digraph symgrad {")
    assert symgrad("grad", "--wrt", "x", "--", "-x").returncode == 0  # the explicit form still works
    r = symgrad("grad", "x", "--wrt", "x", "--bogus")
    assert r.returncode == 2 and "--bogus" in r.stderr  # an unknown option is still an error


def test_output_name_never_collides_with_a_user_variable():
    r = symgrad("grad", "f*x + out", "--wrt", "x", "--values", "f=2,x=3,out=5")
    assert r.returncode == 0, r.stderr
    assert "output = f*x + out = 11" in r.stdout and value_of(r.stdout, "∂output/∂x") == 2.0
    r = symgrad("grad", "L*x", "--wrt", "x", "--loss", "mse", "--values", "L=2,x=3,y=1")
    assert r.returncode == 0, r.stderr
    assert value_of(r.stdout, "loss") == pytest.approx((2 * 3 - 1) ** 2)
    assert value_of(r.stdout, "∂loss/∂x") == pytest.approx(2 * (2 * 3 - 1) * 2)


def test_constant_expression_is_drawn_and_needs_variables_to_differentiate(tmp_path):
    out = tmp_path / "c.dot"
    r = symgrad("draw", "3", "-o", str(out))
    assert r.returncode == 0 and "3" in out.read_text()
    r = symgrad("grad", "3", "--wrt", "x")
    assert r.returncode == 2 and "--wrt: 'x' does not appear in the expression '3'" in r.stderr
    assert "leaves are named" not in r.stderr


def test_non_finite_values_print_one_clean_warning_line_without_paths():
    r = symgrad("grad", "log(x)", "--wrt", "x", "--values", "x=0")
    assert r.returncode == 0
    assert value_of(r.stdout, "f") == -math.inf and value_of(r.stdout, "∂f/∂x") == math.inf
    assert r.stderr.splitlines() == ["symgrad grad: warning: not finite at these values: f = -inf, ∂f/∂x = inf"]
    chain = symgrad("grad", "sqrt(x)", "--wrt", "x", "--values", "x=-1", "--chain")
    assert chain.returncode == 0 and "nan" in chain.stdout
    for line in chain.stderr.splitlines():  # the chain rule evaluates too: warnings are single clean lines
        assert line.startswith("symgrad grad: warning: ")
    assert ".py" not in chain.stderr and "RuntimeWarning" not in chain.stderr and "Traceback" not in chain.stderr


def test_unexpected_exception_prints_one_line_and_a_report_hint(monkeypatch):
    import symgrad.cli as cli

    def broken(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "_build", broken)
    r = symgrad("grad", "x", "--wrt", "x")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "symgrad grad: internal error: RuntimeError: boom second line",
        "symgrad grad: this is a bug in symgrad; please report it with the command line "
        "(run again with --debug to see the traceback)"]
    debug = symgrad("grad", "x", "--wrt", "x", "--debug")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "RuntimeError: boom" in debug.stderr
    assert symgrad("--debug", "grad", "x", "--wrt", "x").stderr.startswith("Traceback")


def test_deep_expression_prints_in_named_intermediates_with_the_right_value():
    depth = 90  # within the parser's limit, deeper than one printable formula
    r = symgrad("grad", "sin(" * depth + "x" + ")" * depth, "--wrt", "x", "--values", "x=0.5")
    assert r.returncode == 0, r.stderr
    assert "  where" in r.stdout and "h_1 = " in r.stdout
    want, slope = 0.5, 1.0
    for _ in range(depth):
        slope *= math.cos(want)
        want = math.sin(want)
    assert value_of(r.stdout, "f") == pytest.approx(want, rel=1e-5)  # printed with 6 digits
    assert value_of(r.stdout, "∂f/∂x") == pytest.approx(slope, rel=1e-5)


def test_huge_exponent_is_a_usage_error_at_once():
    for expr in ("10**10**10*x", "2**1000000*x", "9" * 400 + "*x", "(10*x)**1e10"):
        r = symgrad("grad", expr, "--wrt", "x")
        assert r.returncode == 2 and r.stderr.startswith("symgrad grad: error: "), (expr, r.stderr)
        assert "Traceback" not in r.stderr
