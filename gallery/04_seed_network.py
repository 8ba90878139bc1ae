"""The 3-3-3-2 network: x = [1.5, 2.5, 3] through sigmoid, sigmoid, softmax,
with binary cross-entropy against y = [1, 0].

Every layer's weights are equal (0.05, 0.025 and 1.0) and the biases are
[0.01, 0.02, 0.03], [0.01, 0.02, 0.03], [0.01, 0.02].  Prints the forward
values layer by layer, every ∂L/∂w_ij, and the per-entry formulas of the
last layer; draws the graph with values and gradients.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
import _common
from _common import setup, write


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
    return L, x, y, [W1, b1, W2, b2, W3, b3], [a1, h1, a2, h2, a3, yhat]


def fmt(v) -> str:
    return "[" + ", ".join(f"{e:.4f}" for e in np.ravel(v)) + "]"


def main(argv=None):
    args = setup("04_seed_network", __doc__, argv)
    L, x, y, params, layers = build()
    feeds = {x: [1.5, 2.5, 3.0], y: [1.0, 0.0]}
    vals = sg.evaluate(layers + [L], feeds)
    print("Forward pass (a = W h + b, h = σ(a), ŷ = softmax(a₃)):")
    lines = [f"  {n.name:>4} = {fmt(v)}" for n, v in zip(layers, vals)]
    lines.append(f"  L    = {float(vals[-1]):.4f}")
    print("\n".join(lines))

    grads = sg.grad(L, params)
    gvals = sg.evaluate(grads, feeds)
    out = ["Gradients ∂L/∂w_ij (row i = output unit, column j = input unit):"]
    for p, g in zip(params, gvals):
        if g.ndim == 2:
            for i, row in enumerate(g):
                out.append(f"  ∂L/∂{p.name}[{i}, :] = {fmt(row)}")
        else:
            out.append(f"  ∂L/∂{p.name}       = {fmt(g)}")
    print("\n".join(out))
    upstream = max(float(np.abs(g).max()) for g in gvals[:4])
    out.append(f"  Every row of W3 is the same, so a3[0] − a3[1] = b3[0] − b3[1] whatever h2 is: softmax, and so L,"
               f"\n  does not depend on the earlier layers. Largest |∂L/∂(W1, b1, W2, b2)| = {upstream:.1e}.")
    print(out[-1])
    err = sg.check_grad(L, params, feeds, rtol=1e-6, atol=1e-10)
    print(f"Largest difference from central finite differences: {err:.2e}")
    write(args.out, "values_and_gradients.txt", "\n".join(lines + out))

    dW3 = grads[4]
    entries = sg.formula(dW3, keep=[layers[3], layers[5]], expand=True)
    print("\nEntries of ∂L/∂W3 in terms of h2 and ŷ (BCE's derivative through the softmax Jacobian);")
    print("column j is the same with h2[j] in front:")
    for i in range(entries.shape[0]):
        print(sg.pretty(entries[i, 0], lhs=f"  ∂L/∂W3[{i},0]"))
    write(args.out, "dW3_entries.tex", sg.latex(entries))
    _common.formulas(args.out, "dW3_entries", [(f"∂L/∂W3[{i},0]", entries[i, 0]) for i in range(entries.shape[0])])

    print()
    for name, formulas in [("network_backward", False), ("network_backward_formulas", True)]:
        dot = sg.draw(L, backward=True, values=feeds, formulas=formulas)
        print(f"wrote {sg.render(dot, args.out / (name + '.svg'))}")


if __name__ == "__main__":
    main()
