"""Gradient descent on J(θ₁) for a line through the origin, h(x) = θ₁·x.

J(θ₁) = 1/(2m) Σ (θ₁ xᵢ − yᵢ)² is a parabola; gradient descent steps
θ₁ ← θ₁ − η J′(θ₁).  With a small rate it creeps, with a good one it lands
in a step or two, and past 2 / J″ it overshoots further every step.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
from _common import formulas, pyplot, savefig, setup, write

X_DATA = np.array([1.0, 2.0, 3.0])
Y_DATA = np.array([1.0, 2.0, 3.0])  # the best slope is exactly 1
RATES = {"small": 0.03, "good": 0.2, "too large": 0.45}


def descend(theta, dJ, rate, steps, start=0.0):
    path = [start]
    theta.value = start
    for _ in range(steps):
        theta.value = theta.value - rate * sg.evaluate(dJ)
        path.append(float(theta.value))
    return np.array(path)


def main(argv=None):
    args = setup("03_gradient_descent", __doc__, argv)
    theta = sg.param("theta1", 0.0)
    x, y = sg.const(X_DATA), sg.const(Y_DATA)
    m = len(X_DATA)
    J = sg.sum((theta * x - y) ** 2) / (2 * m)
    dJ = sg.grad(J, theta)
    d2J = sg.grad(dJ, theta)  # the backward graph is a graph: differentiate it again
    curvature = float(sg.evaluate(d2J))  # J″(θ₁) = (1/m) Σ xᵢ², the same for every θ₁
    print(sg.pretty(J, lhs="J(θ₁)"))
    print(sg.pretty(dJ, lhs="J′(θ₁)"))
    print("J″(θ₁) =", sg.pretty(d2J), f"= {curvature:.4g}; steps converge when η < 2/J″ = {2 / curvature:.4g}")
    write(args.out, "formulas.tex", f"J(\\theta_1) = {sg.latex(J)}\n"
                                    f"J'(\\theta_1) = {sg.latex(dJ)}\n")
    formulas(args.out, "formulas", [("J(θ₁)", J), ("J′(θ₁)", dJ), ("J″(θ₁)", d2J)])
    steps = 6 if args.smoke else 12
    paths = {name: descend(theta, dJ, rate, steps) for name, rate in RATES.items()}
    lines = []
    for name, path in paths.items():
        lines.append(f"η = {RATES[name]:<5} ({name:9}): θ₁ = " + ", ".join(f"{v:.3f}" for v in path[:7]) + " …")
    print("\n".join(lines))
    write(args.out, "paths.txt", "\n".join(lines))

    plt = pyplot()
    grid = np.linspace(-1.0, 3.0, 200)
    Jgrid = [(0.5 / m) * np.sum((t * X_DATA - Y_DATA) ** 2) for t in grid]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, (name, path) in zip(axes, paths.items()):
        ax.plot(grid, Jgrid, color="#888", lw=1.5)
        shown = path[np.abs(path) < 3.0]
        Jp = [(0.5 / m) * np.sum((t * X_DATA - Y_DATA) ** 2) for t in shown]
        ax.plot(shown, Jp, "o-", color="#d62728", ms=5, lw=1)
        for k in range(len(shown) - 1):
            ax.annotate("", xy=(shown[k + 1], Jp[k + 1]), xytext=(shown[k], Jp[k]),
                        arrowprops=dict(arrowstyle="->", color="#d62728", lw=1))
        ax.set_title(f"η = {RATES[name]} ({name})")
        ax.set_xlabel("θ₁")
        ax.set_ylim(-0.2, 9)
        ax.set_xlim(-1, 3)
    axes[0].set_ylabel("J(θ₁)")
    fig.suptitle("Gradient descent on J(θ₁) = 1/(2m) Σ (θ₁xᵢ − yᵢ)²")
    savefig(fig, args.out, "descent_paths.png")
    print(f"wrote {args.out / 'descent_paths.png'}")


if __name__ == "__main__":
    main()
