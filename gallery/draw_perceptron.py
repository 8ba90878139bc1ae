"""Draw the perceptron ŷ = σ(w·x + b) with binary cross-entropy.

Writes the forward graph and the forward + backward graph, with the values
at x = 1.5, y = 1, w = 0.5, b = 0.1 and every gradient on its node, as SVG
(and PNG when the Graphviz ``dot`` program is installed).

    python gallery/draw_perceptron.py --out _out/draw_perceptron
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import symgrad as sg


def build():
    x, y = sg.var("x"), sg.var("y")
    w, b = sg.param("w", 0.5), sg.param("b", 0.1)
    z = (w * x + b).named("z")
    yhat = sg.sigmoid(z, name="yhat")
    L = sg.losses.bce(yhat, y, name="L")
    return L, {x: 1.5, y: 1.0}


def write(dot, out: Path, stem: str) -> list[Path]:
    """SVG always (embedded renderer if needed); PNG too when `dot` is installed."""
    paths = [sg.render(dot, out / f"{stem}.svg")]
    if shutil.which("dot"):
        paths.append(sg.render(dot, out / f"{stem}.png", dpi=144))
    return paths


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="_out/draw_perceptron", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    L, feeds = build()
    paths = write(sg.draw(L, values=feeds, formulas=True), out, "perceptron_forward")
    paths += write(sg.draw(L, backward=True, values=feeds, formulas=True), out, "perceptron_backward")
    for p in paths:
        print(f"wrote {p}")
    return paths


if __name__ == "__main__":
    main()
