"""The perceptron: ŷ = σ(w·x + b) with binary cross-entropy.

Shows the loss and its gradients as formulas (closed form and chain rule),
draws the forward and backward graph with values and gradients on the
nodes, and takes one step of gradient descent.
"""
from __future__ import annotations

import symgrad as sg
from _common import formulas, setup, write

LEARNING_RATE = 0.5


def main(argv=None):
    args = setup("01_perceptron", __doc__, argv)
    x, y = sg.var("x"), sg.var("y")
    w, b = sg.param("w", 0.5), sg.param("b", 0.1)
    z = (w * x + b).named("z")
    yhat = sg.sigmoid(z, name="yhat")
    L = sg.losses.bce(yhat, y, name="L")
    dw, db = sg.grad(L, [w, b])
    feeds = {x: 1.5, y: 1.0}

    print("Model:  ŷ = σ(w·x + b),  L = −(y log ŷ + (1 − y) log(1 − ŷ))")
    print(sg.pretty(L, lhs="L"))
    print(sg.pretty(dw, lhs="∂L/∂w"))
    print(sg.pretty(db, lhs="∂L/∂b"))
    print()
    print(sg.chain_rule(L, w, feeds=feeds))
    write(args.out, "formulas.tex", "\n".join([
        f"L = {sg.latex(L)}",
        f"\\frac{{\\partial L}}{{\\partial w}} = {sg.latex(dw)}",
        f"\\frac{{\\partial L}}{{\\partial b}} = {sg.latex(db)}",
        sg.chain_rule(L, w, feeds=feeds).latex(),
    ]))
    formulas(args.out, "formulas", [("L", L), ("∂L/∂w", dw), ("∂L/∂b", db), sg.chain_rule(L, w, feeds=feeds)])

    loss0, gw, gb = (float(v) for v in sg.evaluate([L, dw, db], feeds))
    print()
    print(f"At x = 1.5, y = 1, w = 0.5, b = 0.1:  L = {loss0:.4f}, ∂L/∂w = {gw:.4f}, ∂L/∂b = {gb:.4f}")
    for name, dot in [("perceptron_forward", sg.draw(L, values=feeds)),
                      ("perceptron_backward", sg.draw(L, backward=True, values=feeds)),
                      ("perceptron_backward_formulas", sg.draw(L, backward=True, values=feeds, formulas=True))]:
        print(f"wrote {sg.render(dot, args.out / (name + '.svg'))}")

    w.value = w.value - LEARNING_RATE * gw
    b.value = b.value - LEARNING_RATE * gb
    loss1 = float(sg.evaluate(L, feeds))
    print(f"One step with η = {LEARNING_RATE}: w → {float(w.value):.4f}, b → {float(b.value):.4f}, "
          f"L {loss0:.4f} → {loss1:.4f}")
    assert loss1 < loss0


if __name__ == "__main__":
    main()
