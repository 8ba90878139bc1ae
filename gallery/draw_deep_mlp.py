"""Draw a deep MLP collapsed to one box per layer, forward and backward.

A 12-layer ``sg.nn.MLP`` (4 → 16 × 11 → 3, ReLU) on a batch of 8 with
softmax cross-entropy: each layer is one box with its parameters, ops and
in → out shapes, its gradients in the box below it.  Writes SVG (and PNG
when the Graphviz ``dot`` program is installed).

    python gallery/draw_deep_mlp.py --out _out/draw_deep_mlp
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

import symgrad as sg

DEPTH = 12


def build(depth: int = DEPTH):
    model = sg.nn.MLP([4] + [16] * (depth - 1) + [3], activation="relu", seed=0)
    X = sg.var("X", shape=("batch", 4))
    labels = sg.var("labels", shape=("batch",), dtype="int")
    L = sg.losses.cross_entropy(model(X), labels, name="L")
    rng = np.random.default_rng(0)
    feeds = {X: rng.normal(size=(8, 4)), labels: rng.integers(0, 3, size=8)}
    return L, feeds


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="_out/draw_deep_mlp", help="output folder")
    parser.add_argument("--depth", type=int, default=DEPTH, help="number of layers")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    L, feeds = build(args.depth)
    dot = sg.draw(L, backward=True, values=feeds, collapse=True)
    paths = [sg.render(dot, out / "deep_mlp.svg")]
    if shutil.which("dot"):
        paths.append(sg.render(dot, out / "deep_mlp.png", dpi=144))
    for p in paths:
        print(f"wrote {p}")
    return paths


if __name__ == "__main__":
    main()
