"""A deep MLP drawn collapsed: one box per layer, forward and backward.

A 12-layer ``sg.nn.MLP`` (4 → 16 × 11 → 3, ReLU) on a batch of 8 with
softmax cross-entropy.  Drawn op by op the forward and backward graphs
have hundreds of boxes; ``collapse=True`` draws each layer (the cluster
of its ``mlp.i.*`` names) as one box with its in → out shapes, and its
gradients as one box beside it.
"""
from __future__ import annotations

from xml.etree import ElementTree

import numpy as np

import symgrad as sg
from _common import setup, write

DEPTH = 12


def build(depth: int = DEPTH):
    model = sg.nn.MLP([4] + [16] * (depth - 1) + [3], activation="relu", seed=0)
    X = sg.var("X", shape=("batch", 4))
    labels = sg.var("labels", shape=("batch",), dtype="int")
    L = sg.losses.cross_entropy(model(X), labels, name="L")
    rng = np.random.default_rng(0)
    feeds = {X: rng.normal(size=(8, 4)), labels: rng.integers(0, 3, size=8)}
    return L, feeds, model


def main(argv=None):
    args = setup("09_deep_mlp", __doc__, argv)
    depth = 4 if args.smoke else DEPTH
    L, feeds, model = build(depth)
    grads = sg.grad(L, model.parameters())
    forward, both = sg.Graph(L), sg.Graph([L] + grads)
    paths = {"collapsed": sg.render(sg.draw(L, backward=True, values=feeds, collapse=True),
                                    args.out / "deep_mlp_collapsed.svg"),
             "op by op": sg.render(sg.draw(L, backward=True, values=feeds), args.out / "deep_mlp_full.svg")}
    boxes = {k: count_boxes(p) for k, p in paths.items()}
    lines = [f"{depth} layers, {sum(p.value.size for p in model.parameters())} parameters",
             f"graph nodes: {len(forward)} forward, {len(both) - len(forward)} backward",
             f"boxes in the SVG (legend included): {boxes['op by op']} op by op, {boxes['collapsed']} collapsed"]
    print("\n".join(lines))
    write(args.out, "sizes.txt", "\n".join(lines))
    for p in paths.values():
        print(f"wrote {p}")


def count_boxes(svg_path) -> int:
    """Number of drawn nodes: the <g class="node"> groups of the SVG."""
    root = ElementTree.parse(svg_path).getroot()
    return sum(1 for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node")

if __name__ == "__main__":
    main()
