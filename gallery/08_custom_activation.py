"""A custom activation from a SymPy formula: swish(t) = t·σ(t).

symgrad turns the formula into an op; SymPy derives its derivative, which
becomes an op too.  It then prints, evaluates, draws and trains like a
built-in activation.
"""
from __future__ import annotations

import numpy as np
import sympy

import symgrad as sg
from _common import formulas, pyplot, savefig, setup, write


def main(argv=None):
    args = setup("08_custom_activation", __doc__, argv)
    swish = sg.elementwise(lambda t: t * sg.sympy_sigmoid(t), "swish")
    mish = sg.elementwise(lambda t: t * sympy.tanh(sg.sympy_softplus(t)), "mish")

    z = sg.var("z")
    for name, act in (("swish", swish), ("mish", mish)):
        d1 = sg.grad(act(z), z)
        d2 = sg.grad(d1, z)
        print(sg.pretty(act(z), lhs=f"{name}(z)"))
        print(sg.pretty(d1, lhs=f"{name}′(z)"))
        print(sg.pretty(d2, lhs=f"{name}″(z)"))
        write(args.out, f"{name}.tex", f"{sg.latex(act(z))}\n{sg.latex(d1)}\n{sg.latex(d2)}")
        formulas(args.out, name, [(f"{name}(z)", act(z)), (f"{name}′(z)", d1), (f"{name}″(z)", d2)])

    # a small network with swish hidden units learns XOR
    X = sg.var("X", shape=("batch", 2))
    Y = sg.var("Y", shape=("batch", 1))
    W1 = sg.param("W1", shape=(2, 8), init="xavier", seed=3)
    b1 = sg.param("b1", shape=(8,))
    W2 = sg.param("W2", shape=(8, 1), init="xavier", seed=4)
    b2 = sg.param("b2", shape=(1,))
    logits = swish(X @ W1 + b1) @ W2 + b2
    L = sg.losses.bce_with_logits(logits, Y)
    step = sg.compile_step(L, sg.optim.Adam(lr=0.05), inputs=[X, Y])
    xs = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    ys = np.array([[0], [1], [1], [0]], dtype=float)
    steps = 100 if args.smoke else 600
    losses = [float(step(xs, ys)) for _ in range(steps)]
    print(f"XOR with swish hidden units: loss {losses[0]:.3f} → {losses[-1]:.4f} after {steps} Adam steps")
    print(f"wrote {sg.render(sg.draw(L, backward=True), args.out / 'swish_net.svg')}")

    plt = pyplot()
    t = np.linspace(-5, 5, 400)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    tv = sg.var("t", shape=(400,))
    for name, act, color in (("swish", swish, "#d62728"), ("mish", mish, "#1f77b4")):
        y = act(tv)
        dy = sg.grad(sg.sum(y), tv)
        yv, dyv = sg.evaluate([y, dy], {tv: t})
        axes[0].plot(t, yv, color=color, label=name)
        axes[1].plot(t, dyv, color=color, label=f"{name}′ (derived by SymPy)")
    axes[0].plot(t, np.maximum(t, 0), color="#999", ls="--", label="ReLU")
    for ax, title in zip(axes, ("activation", "derivative")):
        ax.axhline(0, color="#ccc", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("t")
        ax.legend()
    savefig(fig, args.out, "activations.png")
    print(f"wrote {args.out / 'activations.png'}")


if __name__ == "__main__":
    main()
