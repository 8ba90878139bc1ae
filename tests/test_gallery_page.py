"""The gallery page: typeset MathML built from two smoke runs, and a headless-Chromium screenshot of it."""
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from symgrad import showcase

NS = "{http://www.w3.org/1998/Math/MathML}"
MATH = re.compile(r"<math\b.*?</math>", re.S)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """01 (single formulas and a chain rule) and 05 (a system of backprop equations), smoke runs, one index."""
    out = tmp_path_factory.mktemp("gallery")
    for only in ("01", "05"):
        results = showcase.run(out, only=only, smoke=True, echo=False)
        assert results[0].returncode == 0, results[0].stderr[-2000:]
    path = showcase.write_index(out, showcase.collected(out))
    return path, path.read_text(encoding="utf-8")


def section(html: str, name: str) -> str:
    start = html.index(f'<section id="{name}"')
    return html[start:html.index("</section>", start)]


def maths(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in MATH.findall(html)]


def test_every_formula_is_mathml_without_latex_left(page):
    _, html = page
    found = MATH.findall(html)
    assert len(found) >= 5
    for m in found:
        assert "&" not in m and "\\" not in m, m[:300]  # no aligned-block & or \\[6pt] printed literally
        ET.fromstring(m)  # well-formed XML


def test_backprop_system_is_one_table_row_per_equation(page):
    _, html = page
    (eqs,) = maths(section(html, "05_backprop_equations"))
    tables = [e for e in eqs.iter() if e.tag == NS + "mtable"]
    rows = [r for r in tables[0] if r.tag == NS + "mtr"]
    assert len(tables) == 1 and len(rows) == 13  # 5 forward definitions, 8 backward equations
    assert all(r[1][0].text == "=" for r in rows)
    assert {e.text for e in eqs.iter() if e.tag == NS + "mo"} >= {"⊙", "="}


def test_perceptron_formulas_keep_text_and_latex(page):
    _, html = page
    perceptron = section(html, "01_perceptron")
    first = maths(perceptron)[0]
    assert [e.text for e in first.iter() if e.tag == NS + "mi"][0] == "L"
    assert "σ" in [e.text for e in first.iter() if e.tag == NS + "mi"]
    # the unicode text and the LaTeX source stay on the page, in fold-outs
    assert "∂L/∂w = x⋅(-y + σ(b + w⋅x))" in perceptron
    assert r"\frac{\partial L}{\partial w} = x \left(- y + \sigma\left(b + w x\right)\right)" in perceptron
    assert "<h3>What it prints</h3>" in perceptron


def test_collected_rebuilds_results_from_the_folders(page):
    path, _ = page
    results = showcase.collected(path.parent, "05")
    assert [r.name for r in results] == ["05_backprop_equations"]
    assert "backward:" in results[0].stdout
    with pytest.raises(showcase.SymgradError, match="no gallery output"):
        showcase.collected(path.parent, "99")


def chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(chromium() is None, reason="no Chromium on PATH")
def test_chromium_screenshot_of_the_page_is_drawn(page, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    import numpy as np
    path, _ = page
    shot = tmp_path / "index.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,3000", path.resolve().as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.is_file()
    pixels = image.imread(str(shot))
    assert pixels.shape[:2] == (3000, 1200)
    rgb = np.round(pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours = np.unique(rgb[:: 7], axis=0)
    inked = np.mean(np.any(rgb < 200, axis=1))
    assert len(colours) > 50, len(colours)  # text, typeset formulas and drawings, not one flat colour
    assert inked > 0.01, inked
