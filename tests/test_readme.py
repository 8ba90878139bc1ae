"""The README's set-up commands, CI and code blocks stay true."""
from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command():
    assert "    bash scripts/test.sh\n" in README and "    bash scripts/gallery.sh\n" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^bash scripts/test\.sh\b", ci, flags=re.M)
    for script in ("scripts/test.sh", "scripts/gallery.sh"):
        text = (ROOT / script).read_text()
        assert "source scripts/_venv.sh" in text  # installs from nothing but Python
    venv = (ROOT / "scripts" / "_venv.sh").read_text()
    assert "-m venv .venv" in venv and "pip install -q -e \".[$1]\"" in venv


def test_readme_picture_is_a_committed_backward_graph():
    path = ROOT / "docs" / "perceptron_backward.svg"
    assert "](docs/perceptron_backward.svg)" in README
    texts = [t.text for t in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}text") if t.text]
    assert "∂L/∂w = ∂L/∂z · x" in texts and "-0.4491" in texts


def test_readme_python_blocks_run_and_print_what_they_say(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", README, flags=re.S)]
    assert len(blocks) == 2
    quick = {}
    exec(compile(blocks[0], "README quick start", "exec"), quick)  # noqa: S102  our own README's code
    assert [float(v) for v in (quick["loss"], quick["gw"], quick["gb"])] == pytest.approx(
        [0.3559, -0.4491, -0.2994], abs=5e-5)
    assert quick["losses"][-1] < 1e-2 and np.isfinite(quick["losses"]).all()
    assert (tmp_path / "perceptron.svg").read_text().lstrip().startswith("<?xml")
    exec(compile(blocks[1], "README add an op", "exec"), quick)  # noqa: S102  (continues the quick start)
    out = capsys.readouterr().out
    assert "∂L/∂w = x⋅(-y + σ(b + w⋅x))" in out
    assert "(z⋅(1 - σ(z)) + 1)⋅σ(z)" in out
