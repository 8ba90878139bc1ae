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
