"""Draw the 3-3-3-2 network of the course notes with values and gradients.

x = [1.5, 2.5, 3], a = W h + b with every weight of a layer equal (0.05,
0.025, 1.0), biases [0.01, 0.02, 0.03], [0.01, 0.02, 0.03], [0.01, 0.02];
sigmoid, sigmoid, softmax, and binary cross-entropy against y = [1, 0]
(the notes: a₁ = [0.36, 0.37, 0.38], ŷ ≈ [0.497, 0.502], L = 0.6981).
Writes SVG (and PNG when the Graphviz ``dot`` program is installed).

    python gallery/draw_seed_network.py --out _out/draw_seed_network
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

import symgrad as sg


def build():
    x = sg.var("x", shape=(3,))
    y = sg.var("y", shape=(2,))
    W1 = sg.param("W1", np.full((3, 3), 0.05))
    b1 = sg.param("b1", [0.01, 0.02, 0.03])
    W2 = sg.param("W2", np.full((3, 3), 0.025))
    b2 = sg.param("b2", [0.01, 0.02, 0.03])
    W3 = sg.param("W3", np.full((2, 3), 1.0))
    b3 = sg.param("b3", [0.01, 0.02])
    a1 = (W1 @ x + b1).named("a1")
    h1 = sg.sigmoid(a1, name="h1")
    a2 = (W2 @ h1 + b2).named("a2")
    h2 = sg.sigmoid(a2, name="h2")
    a3 = (W3 @ h2 + b3).named("a3")
    yhat = sg.softmax(a3, name="yhat")
    L = sg.losses.bce(yhat, y, name="L")
    return L, {x: [1.5, 2.5, 3.0], y: [1.0, 0.0]}


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="_out/draw_seed_network", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    L, feeds = build()
    dot = sg.draw(L, backward=True, values=feeds, formulas=True)
    paths = [sg.render(dot, out / "seed_network.svg")]
    if shutil.which("dot"):
        paths.append(sg.render(dot, out / "seed_network.png", dpi=144))
    for p in paths:
        print(f"wrote {p}")
    return paths


if __name__ == "__main__":
    main()
