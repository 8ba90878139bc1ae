"""A deep MLP drawn collapsed: one box per layer, forward and backward.

A 12-layer ``sg.nn.MLP`` (4 → 16 × 11 → 3, ReLU) on a batch of 8 with
softmax cross-entropy.  Drawn op by op the forward and backward graphs
have hundreds of boxes; ``collapse=True`` draws each layer (the cluster
of its ``mlp.i.*`` names) as one box with its in → out shapes, and its
gradients as one box beside it.  ``collapse="repeats"`` keeps the op-by-op
boxes but folds the ten identical hidden layers (same ops, shapes and wiring,
16 → 16) into one box marked ``mlp.1 … mlp.10 × 10``, in the forward and the
backward drawing.  The op-by-op drawing keeps the pipeline on one axis
(forward on top, backward under it); ``sg.render.filled_fraction`` measures
how much of its canvas is drawing.

The second half measures expression swell, the known failure of symbolic
differentiation: for a chain of sigmoids h_k = σ(w_k·h_{k−1}) of growing
depth, the size of ∂h/∂w₁ written as one closed formula (what SymPy's own
``diff`` gives), after SymPy's ``cse``, and as symgrad's backward graph,
which shares every value and grows linearly (``sg.formula_stats``).
"""
from __future__ import annotations

from xml.etree import ElementTree

import numpy as np
import sympy

import symgrad as sg
from _common import pyplot, savefig, setup, write
from symgrad.formula_size import OverBudget, time_limit
from symgrad.render import canvas_size, filled_fraction

DEPTH = 12
GROWTH_DEPTHS = (1, 2, 4, 8, 16, 32, 48)
#: seconds SymPy's diff of the textbook sigmoid may take per depth before the curve stops
DIFF_LIMIT = 10.0


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
             "op by op": sg.render(sg.draw(L, backward=True, values=feeds), args.out / "deep_mlp_full.svg"),
             "repeats folded": sg.render(sg.draw(L, backward=True, values=feeds, collapse="repeats"),
                                         args.out / "deep_mlp_repeats_backward.svg"),
             "repeats folded, forward": sg.render(sg.draw(L, values=feeds, collapse="repeats"),
                                                  args.out / "deep_mlp_repeats_forward.svg")}
    boxes = {k: count_boxes(p) for k, p in paths.items()}
    lines = [f"{depth} layers, {sum(p.value.size for p in model.parameters())} parameters",
             f"graph nodes: {len(forward)} forward, {len(both) - len(forward)} backward",
             f"boxes in the SVG (legend included): {boxes['op by op']} op by op, {boxes['collapsed']} collapsed, "
             f"{boxes['repeats folded']} with repeats folded",
             "drawing                   canvas (pt)      filled fraction"]
    for k, p in paths.items():
        text = p.read_text()
        w, h = canvas_size(text)
        lines.append(f"{k:24}  {w:>6,.0f} × {h:<6,.0f}  {filled_fraction(text):.3f}")
    print("\n".join(lines))
    write(args.out, "sizes.txt", "\n".join(lines))
    for p in paths.values():
        print(f"wrote {p}")
    print()
    formula_growth(args.out, (1, 2, 4, 8) if args.smoke else GROWTH_DEPTHS)


def sigmoid_chain(depth: int):
    """h_k = σ(w_k·h_{k−1}), h_0 = x: the output and the first weight."""
    x = sg.var("x")
    ws = [sg.param(f"w{k}", 0.5) for k in range(1, depth + 1)]
    h = x
    for w in ws:
        h = sg.sigmoid(w * h)
    return h, ws[0]


def textbook_diff(depth: int) -> int | None:
    """Operations of SymPy's diff of the chain written with σ(t) = 1/(1 + e^(−t)), or None past DIFF_LIMIT."""
    x = sympy.Symbol("x", real=True)
    ws = sympy.symbols(f"w1:{depth + 1}", real=True)
    h = x
    for w in ws:
        h = 1 / (1 + sympy.exp(-w * h))
    try:
        with time_limit(DIFF_LIMIT):
            return int(sympy.count_ops(sympy.diff(h, ws[0])))
    except OverBudget:
        return None


def formula_growth(out, depths):
    rows = []
    for depth in depths:
        h, w1 = sigmoid_chain(depth)
        stats = sg.formula_stats(h, w1)
        rows.append((depth, stats["closed_form"], stats["cse"], stats["graph_ops"], textbook_diff(depth)))
    head = "depth  closed form  after cse  backward graph  sympy.diff (σ via exp)"
    lines = ["Size of ∂h/∂w₁ for h = σ(w_d·σ(… σ(w₁·x))): operations (sympy.count_ops), graph op nodes", head]
    for depth, closed, cse, graph, naive in rows:
        lines.append(f"{depth:5}  {_n(closed):>11}  {_n(cse):>9}  {_n(graph):>14}  {_n(naive):>22}")
    print("\n".join(lines))
    write(out, "formula_growth.txt", "\n".join(lines))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ds = [r[0] for r in rows]
    for k, (label, style) in enumerate((("closed form (= sympy.diff of symgrad's formula)", "o-"),
                                        ("closed form after sympy.cse", "s--"),
                                        ("symgrad backward graph (op nodes)", "^-"),
                                        ("sympy.diff, σ written as 1/(1+e^(−t))", "x:")), 1):
        pts = [(d, r[k]) for d, r in zip(ds, rows) if r[k] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("depth of the sigmoid chain")
    ax.set_ylabel("size of ∂h/∂w₁")
    ax.set_title("Expression swell: closed form vs backward graph")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    print(f"wrote {savefig(fig, out, 'formula_growth.png')}")


def _n(value) -> str:
    return f"{value:,}" if value is not None else "over budget"


def count_boxes(svg_path) -> int:
    """Number of drawn nodes: the <g class="node"> groups of the SVG."""
    root = ElementTree.parse(svg_path).getroot()
    return sum(1 for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node")

if __name__ == "__main__":
    main()
