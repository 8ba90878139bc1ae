"""Backpropagation equations of a two-layer MLP in matrix notation.

Z₁ = X W₁ + b₁, A₁ = σ(Z₁), Z₂ = A₁ W₂ + b₂, Ŷ = σ(Z₂), L = MSE(Ŷ, Y).
symgrad reads the equations off the backward graph: one δ per named
intermediate and one gradient per parameter, in the order backprop
computes them.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
from _common import formulas, setup, write


def main(argv=None):
    args = setup("05_backprop_equations", __doc__, argv)
    X = sg.var("X", shape=("batch", 3))
    Y = sg.var("Y", shape=("batch", 2))
    W1 = sg.param("W1", shape=(3, 4), init="xavier", seed=0)
    b1 = sg.param("b1", shape=(4,))
    W2 = sg.param("W2", shape=(4, 2), init="xavier", seed=1)
    b2 = sg.param("b2", shape=(2,))
    Z1 = (X @ W1 + b1).named("Z1")
    A1 = sg.sigmoid(Z1, name="A1")
    Z2 = (A1 @ W2 + b2).named("Z2")
    Yhat = sg.sigmoid(Z2, name="Yhat")
    L = sg.losses.mse(Yhat, Y, name="L")

    eqs = sg.backprop_equations(L)
    print(eqs)
    write(args.out, "backprop_equations.tex", eqs.latex())
    formulas(args.out, "backprop_equations", [eqs])
    print()
    print("∂L/∂W₁ in the named intermediates:")
    print(sg.pretty(sg.grad(L, W1), keep="named", lhs="  ∂L/∂W₁"))

    rng = np.random.default_rng(0)
    feeds = {X: rng.normal(size=(5, 3)), Y: rng.uniform(size=(5, 2))}
    err = sg.check_grad(L, [W1, b1, W2, b2], feeds)
    print(f"Gradients agree with finite differences to {err:.1e} on a batch of 5.")
    dot = sg.draw(L, backward=True, formulas=True)
    print(f"wrote {sg.render(dot, args.out / 'mlp_backward.svg')}")


if __name__ == "__main__":
    main()
