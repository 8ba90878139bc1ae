"""Shared plumbing for the gallery scripts: arguments, output folder, files.

Every script takes ``--out DIR`` (where its files go) and ``--smoke``
(a fast run for the tests), prints what it shows, and writes its
drawings, plots and formulas into the folder.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from symgrad.files import atomic_open, atomic_write


def setup(name: str, description: str, argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=name, description=description)
    p.add_argument("--out", default=f"_out/{name}", help="output folder")
    p.add_argument("--smoke", action="store_true", help="fast run with fewer steps (used by the tests)")
    args = p.parse_args(argv)
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def write(out: Path, filename: str, text: str) -> Path:
    """Write a text file (formulas, LaTeX, tables) atomically and return its path."""
    path = Path(out) / filename
    atomic_write(path, text if text.endswith("\n") else text + "\n")
    return path


def savefig(fig, out: Path, filename: str) -> Path:
    """Save a matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt
    path = Path(out) / filename
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def pyplot():
    """matplotlib.pyplot with a file-only backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def digits_split(smoke: bool, smoke_val: int = 100):
    """(train, validation) dicts ``{"X", "Y"}`` of scikit-learn's 8×8 digits: pixels scaled to [0, 1],
    labels 0-9, one fixed shuffle; 300 + ``smoke_val`` images in smoke mode, else 1400 + 397."""
    import numpy as np
    from sklearn.datasets import load_digits
    data = load_digits()
    X, y = data.data / 16.0, data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    n_train, n_val = (300, smoke_val) if smoke else (1400, 397)
    tr, va = order[:n_train], order[n_train:n_train + n_val]
    return {"X": X[tr], "Y": y[tr]}, {"X": X[va], "Y": y[va]}


def formulas(out: Path, name: str, items, title: str | None = None) -> Path:
    """Typeset formulas for the gallery page: write ``<name>.math.html``, which ``symgrad gallery`` puts on
    ``index.html`` as MathML (typeset by the browser, nothing fetched), each formula with its unicode
    text and LaTeX source in a fold-out underneath.

    ``items``: a list of
      - formulas: a Node, a SymPy expression, ``sg.chain_rule(...)``, ``sg.backprop_equations(...)``,
        ``opt.formulas()``, an index formula — anything ``sg.pretty`` prints;
      - ``(lhs, formula)`` pairs: ``lhs`` a name (``"ŷ"``, ``"z1"``) or ``"∂L/∂w"`` (typeset as a fraction);
      - strings: a caption shown above the next formula (``"Adam"``).

    Systems of equations (backprop equations, update rules, loops through time) come out as one table row
    per equation, aligned on ``=``.  Call it next to the ``print`` and ``.tex`` lines it mirrors, e.g.
    ``formulas(args.out, "formulas", [("L", L), ("∂L/∂w", dw), sg.chain_rule(L, w, feeds)])``.
    """
    import html
    import re

    import sympy

    import symgrad as sg
    from symgrad.formulas.mathml import _PARTIAL
    from symgrad.formulas.printing import _resolve, partial_latex, to_latex

    def latex_lhs(lhs: str, obj) -> str:
        m = _PARTIAL.match(lhs)
        if m:
            return partial_latex(sympy.Symbol(m["num"]), sympy.Symbol(m["den"]))
        if hasattr(obj, "renamed"):  # an index formula takes a name
            return lhs
        plain = re.fullmatch(r"[^\W\d][\w.]*", lhs)
        return to_latex(sympy.Symbol(lhs)) if plain else r"\text{%s}" % lhs

    parts = [f"<h4>{html.escape(title)}</h4>"] if title else []
    for item in items:
        if isinstance(item, str):
            parts.append(f'<p class="caption">{html.escape(item)}</p>')
            continue
        lhs, obj = item if isinstance(item, tuple) else (None, item)
        obj = _resolve(obj, "formulas", {})
        text = sg.pretty(obj, lhs=lhs)
        tex = sg.latex(obj, lhs=latex_lhs(lhs, obj) if lhs is not None else None)
        parts.append('<div class="formula">' + sg.mathml(obj, lhs=lhs)
                     + f'<details class="src"><summary>text · LaTeX</summary><pre>{html.escape(text)}</pre>'
                     f"<pre>{html.escape(tex)}</pre></details></div>")
    return write(out, f"{name}.math.html", "\n".join(parts))
