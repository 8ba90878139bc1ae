"""Every numbered gallery script runs in smoke mode into a temporary folder, prints what it shows
and writes its files; the printed numbers are checked against the models they come from."""
from __future__ import annotations

import importlib.util
import re
import sys
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.showcase import SCRIPT_RE

GALLERY = Path(__file__).resolve().parents[1] / "gallery"
SVG = "{http://www.w3.org/2000/svg}"


def run_script(name: str, out: Path, capsys) -> tuple[object, str]:
    """Import gallery/<name>.py (with gallery/ on sys.path for _common) and run main in smoke mode."""
    sys.path.insert(0, str(GALLERY))
    try:
        spec = importlib.util.spec_from_file_location(f"gallery_{name}", GALLERY / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result = module.main(["--smoke", "--out", str(out)])
    finally:
        sys.path.remove(str(GALLERY))
    return result, unicodedata.normalize("NFC", capsys.readouterr().out)  # SymPy writes ŷ as y + U+0302


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg"
    return [unicodedata.normalize("NFC", t.text) for t in root.iter(SVG + "text") if t.text]


def svg_node_count(path: Path) -> int:
    return sum(1 for g in ET.parse(path).getroot().iter(SVG + "g") if g.get("class") == "node")


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def numbers_after(text: str, label: str) -> list[float]:
    line = next(ln for ln in text.splitlines() if label in ln)
    return [float(v) for v in re.findall(r"-?\d+\.\d+(?:e[-+]\d+)?", line.split(label, 1)[1])]


def test_every_numbered_script_has_a_test():
    """Page tests live here and in tests/test_gallery_*.py (one module per group of pages)."""
    scripts = sorted(p.stem for p in GALLERY.iterdir() if SCRIPT_RE.match(p.name))
    tested = [n[len("test_"):] for n in globals() if re.match(r"test_\d\d_", n)]
    for module in Path(__file__).parent.glob("test_gallery_*.py"):
        tested += re.findall(r"^def test_(\d\d_\w+)\(", module.read_text(encoding="utf-8"), flags=re.M)
    tested.sort()
    assert scripts == tested and len(scripts) >= 9


def test_01_perceptron(tmp_path, capsys):
    _, out = run_script("01_perceptron", tmp_path, capsys)
    x, y, w, b = 1.5, 1.0, 0.5, 0.1
    p = 1 / (1 + np.exp(-(w * x + b)))
    assert numbers_after(out, "At x = 1.5, y = 1, w = 0.5, b = 0.1:")[:3] == pytest.approx(
        [-np.log(p), (p - y) * x, p - y], abs=5e-5)
    assert "∂L/∂w = x⋅(-y + σ(b + w⋅x))" in out
    assert "path 1: w → u₁ → z → ŷ → L" in out
    step = numbers_after(out, "One step with η = 0.5:")
    assert step[:2] == pytest.approx([w - 0.5 * (p - y) * x, b - 0.5 * (p - y)], abs=5e-5)
    assert step[3] < step[2]  # the loss went down
    for name in ("perceptron_forward", "perceptron_backward", "perceptron_backward_formulas"):
        assert "0.3559" in svg_texts(tmp_path / f"{name}.svg")
    assert "∂L/∂w = ∂L/∂z · x" in svg_texts(tmp_path / "perceptron_backward_formulas.svg")
    assert "\\frac{\\partial L}{\\partial w}" in (tmp_path / "formulas.tex").read_text()


def test_02_linear_regression(tmp_path, capsys):
    _, out = run_script("02_linear_regression", tmp_path, capsys)
    assert "Σ(x ⊙ sign(-y + b⋅𝟙 + w⋅x))" in out  # MAE sees only the sign of each error
    assert "2⋅Σ((-y + b⋅𝟙 + w⋅x) ⊙ x)" in out   # MSE sees its size
    tex = (tmp_path / "gradients.tex").read_text()
    assert "\\odot" in tex and "\\operatorname{sign}" in tex
    fits = dict(re.findall(r"(MAE|MSE): b = ([-\d.]+)", (tmp_path / "fits.txt").read_text()))
    assert set(fits) == {"MAE", "MSE"} and fits["MAE"] != fits["MSE"]
    assert is_png(tmp_path / "traffic_fit.png")


def test_03_gradient_descent(tmp_path, capsys):
    _, out = run_script("03_gradient_descent", tmp_path, capsys)
    assert "7⋅(θ₁ - 1)" in out and "14⋅(θ₁ - 1)" in out
    assert numbers_after(out, "J″(θ₁) = 14/3 =")[:2] == pytest.approx([4.667, 0.4286], abs=1e-3)
    paths = {m[0]: [float(v) for v in m[1].split(", ")]
             for m in re.findall(r"η = ([\d.]+)\s.*?θ₁ = (.*) …", (tmp_path / "paths.txt").read_text())}
    # θ ← θ − η·(14/3)(θ − 1) from θ = 0: the exact iterates
    for rate, path in paths.items():
        want = [0.0]
        for _ in range(len(path) - 1):
            want.append(want[-1] - float(rate) * 14 / 3 * (want[-1] - 1))
        assert path == pytest.approx(want, abs=6e-4)
    assert abs(paths["0.45"][-1] - 1) > abs(paths["0.45"][1] - 1)  # past 2/J″ it diverges
    assert is_png(tmp_path / "descent_paths.png")


def test_04_seed_network(tmp_path, capsys):
    _, out = run_script("04_seed_network", tmp_path, capsys)
    assert numbers_after(out, "a1 =") == [0.36, 0.37, 0.38]  # the course notes' first layer
    assert numbers_after(out, "L    =") == [0.6982]
    assert numbers_after(out, "finite differences:")[0] < 1e-6
    assert numbers_after(out, "∂L/∂b3       =") == [-0.5025, 0.5025]
    texts = svg_texts(tmp_path / "network_backward_formulas.svg")
    assert "∂L/∂W₃ = (∂L/∂a₃)h₂ᵀ" in texts and "a₁ = W₁x + b₁" in texts
    assert svg_node_count(tmp_path / "network_backward.svg") > 20


def test_05_backprop_equations(tmp_path, capsys):
    _, out = run_script("05_backprop_equations", tmp_path, capsys)
    assert "δ_Z₂ = δ_Ŷ ⊙ σ′(Z₂)" in out and "δ_Z₁ = δ_A₁ ⊙ σ′(Z₁)" in out
    assert numbers_after(out, "finite differences to")[0] < 1e-6
    tex = (tmp_path / "backprop_equations.tex").read_text()
    assert tex.startswith("\\begin{aligned}") and "\\odot" in tex
    assert svg_node_count(tmp_path / "mlp_backward.svg") > 10


def test_06_digits_mlp(tmp_path, capsys):
    accuracy, out = run_script("06_digits_mlp", tmp_path, capsys)
    assert "test accuracy" in out and "parameters identical: True" in out
    assert 0.3 < accuracy <= 1.0  # the smoke run's few Adam steps already beat chance (10 %) by far
    assert is_png(tmp_path / "training_curves.png")
    assert isinstance(sg.load(tmp_path / "digits_mlp.npz"), sg.nn.MLP)
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,accuracy,val_loss,val_accuracy" and len(rows) == 3


def test_07_optimizers(tmp_path, capsys):
    _, out = run_script("07_optimizers", tmp_path, capsys)
    names = re.findall(r"^(\w+):$", out, flags=re.M)
    assert names == ["SGD", "SGDM", "AdaGrad", "RMSProp", "Adam"]
    finals = [float(v) for v in re.findall(r"after \d+ steps: θ = \(.*\), f = (\S+)", out)]
    assert len(finals) == 5 and all(np.isfinite(finals))
    assert "m ← β₁⋅m + g⋅(1 - β₁)" in out
    tex = (tmp_path / "update_rules.tex").read_text()
    assert tex.count("\\begin{aligned}") == 5 and tex.count("\\leftarrow") == 1 + 2 + 2 + 2 + 3
    assert is_png(tmp_path / "optimizer_paths.png")


def test_08_custom_activation(tmp_path, capsys):
    _, out = run_script("08_custom_activation", tmp_path, capsys)
    assert "swish′(z) = (z⋅(1 - σ(z)) + 1)⋅σ(z)" in out
    before, after = numbers_after(out, "loss")[:2]
    assert after < before / 10
    assert svg_node_count(tmp_path / "swish_net.svg") > 10
    assert is_png(tmp_path / "activations.png")


def test_09_deep_mlp(tmp_path, capsys):
    _, out = run_script("09_deep_mlp", tmp_path, capsys)
    collapsed, full = tmp_path / "deep_mlp_collapsed.svg", tmp_path / "deep_mlp_full.svg"
    assert svg_node_count(collapsed) < svg_node_count(full)
    assert f"{svg_node_count(full)} op by op, {svg_node_count(collapsed)} collapsed" in out
    titles = {t.text for t in ET.parse(collapsed).getroot().iter(SVG + "text")}
    assert {f"mlp.{i}" for i in range(4)} <= titles and {f"∂L/∂mlp.{i}" for i in range(4)} <= titles
    # the two identical hidden layers fold into one "× 2" box, forward and backward; the printed canvas
    # sizes and filled fractions are those of the written files
    from symgrad.render import canvas_size, filled_fraction
    files = {"collapsed": collapsed, "op by op": full,
             "repeats folded": tmp_path / "deep_mlp_repeats_backward.svg",
             "repeats folded, forward": tmp_path / "deep_mlp_repeats_forward.svg"}
    for what in ("repeats folded", "repeats folded, forward"):
        texts = " ".join(t.text or "" for t in ET.parse(files[what]).getroot().iter(SVG + "text"))
        assert "mlp.1 … mlp.2" in texts and "× 2" in texts, what
    assert svg_node_count(files["repeats folded"]) < svg_node_count(full)
    for what, path in files.items():
        text = path.read_text()
        w, h = canvas_size(text)
        assert f"{what:24}  {w:>6,.0f} × {h:<6,.0f}  {filled_fraction(text):.3f}" in out, what
    assert filled_fraction(full.read_text()) > 0.3  # one band, not a staircase (0.09 before)
    # formula growth of a sigmoid chain: the printed sizes against SymPy and the graph, counted here
    rows = {int(r[0]): [int(v.replace(",", "")) for v in r[1:]] for r in
            (line.split() for line in (tmp_path / "formula_growth.txt").read_text().splitlines()[2:])}
    assert sorted(rows) == [1, 2, 4, 8]
    x, t = sympy.Symbol("x", real=True), sympy.symbols("w1:9", real=True)
    h, textbook = sg.var("x"), x
    ws = [sg.param(f"w{k}", 0.5) for k in range(1, 9)]
    for w, s in zip(ws, t):
        h, textbook = sg.sigmoid(w * h), 1 / (1 + sympy.exp(-s * textbook))
    g = sg.grad(h, ws[0])
    closed, graph_ops = sympy.count_ops(sg.formula(g)), sum(1 for n in sg.Graph(g).order if not n.is_leaf)
    assert rows[8][0] == closed and rows[8][2] == graph_ops == 38
    assert rows[8][3] == sympy.count_ops(sympy.diff(textbook, t[0]))
    assert rows[8][0] > 3 * rows[4][0] and rows[8][2] < 2.2 * rows[4][2]  # swell vs linear growth
    assert is_png(tmp_path / "formula_growth.png")
