"""Universal approximation: a 1-D function as a sum of N shifted sigmoids.

The course notes write the one-hidden-layer network with one input as

    y = b + Σᵢ cᵢ·sigmoid(bᵢ + wᵢ·x)

and say that with enough pieces it approximates any curve.  Each term is
a sigmoid shifted to sit at x = −bᵢ/wᵢ, made steep by wᵢ and scaled to a
step of height cᵢ; added up they climb and fall like the target.

The page builds the formula with N = 3 (printed and drawn with its
gradients), then fits f(x) = sin(3x) + x/2 on [−2, 2] with N sigmoids in
two ways: written down directly (a smoothed staircase: one sigmoid per
step of a grid, cᵢ the rise of f over that step) and trained by Adam on
the mean squared error, starting from that staircase or from random
weights.  The table gives the largest error on the grid for each N; the
plot shows the N = 8 fit and its eight shifted sigmoids.
"""
from __future__ import annotations

import time

import numpy as np

import symgrad as sg
import _common
from _common import pyplot, savefig, setup, write

LOW, HIGH = -2.0, 2.0
POINTS = 201
#: a staircase sigmoid rises over about a quarter of its grid step: wᵢ = STEEP / step
STEEP = 4.0
SIZES = (1, 2, 4, 8, 16, 32)
SMOKE_SIZES = (1, 4, 8)
SHOWN = 8  # the N whose sigmoids are plotted one by one


def target(x):
    """The curve to approximate."""
    return np.sin(3 * x) + 0.5 * x


def staircase(n: int) -> dict:
    """Weights of the smoothed staircase with n steps on [LOW, HIGH]: one sigmoid per step,
    centred mid-step, its height the rise of the target over the step."""
    knots = np.linspace(LOW, HIGH, n + 1)
    middle = np.round((knots[:-1] + knots[1:]) / 2, 12)  # 0, not 1e-16, for a step centred at 0
    w = np.full(n, STEEP / ((HIGH - LOW) / n))
    return {"w": w, "b": -w * middle, "c": target(knots[1:]) - target(knots[:-1]), "b0": float(target(knots[0]))}


def sigmoid_sum(p: dict, x: np.ndarray) -> np.ndarray:
    """b₀ + Σᵢ cᵢ σ(wᵢ x + bᵢ) in NumPy (for the table and the plot)."""
    return p["b0"] + (1 / (1 + np.exp(-(np.outer(x, p["w"]) + p["b"])))) @ p["c"]


def terms(p: dict, x: np.ndarray) -> np.ndarray:
    """Each cᵢ σ(wᵢ x + bᵢ), one column per sigmoid."""
    return p["c"] / (1 + np.exp(-(np.outer(x, p["w"]) + p["b"])))


def build(start: dict):
    """The network for N = len(start['w']) sigmoids as graph nodes, starting from ``start``."""
    n = len(start["w"])
    x, t = sg.var("x", shape=("batch", 1)), sg.var("t", shape=("batch", 1))
    w, b = sg.param("w", np.reshape(start["w"], (1, n))), sg.param("b", np.asarray(start["b"], float))
    c, b0 = sg.param("c", np.reshape(start["c"], (n, 1))), sg.param("b0", float(start["b0"]))
    y = (sg.sigmoid(x @ w + b) @ c + b0).named("y")
    return x, t, (w, b, c, b0), y, sg.losses.mse(y, t, name="L")


def train(start: dict, steps: int, xs: np.ndarray) -> dict:
    """Full-batch Adam on the mean squared error; the trained weights."""
    x, t, (w, b, c, b0), _, loss = build(start)
    step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[x, t])
    for _ in range(steps):
        step(xs[:, None], target(xs)[:, None])
    return {"w": w.value.ravel().copy(), "b": b.value.copy(), "c": c.value.ravel().copy(), "b0": float(b0.value)}


def scalar_network(n: int = 3):
    """y = b + Σ cᵢ σ(bᵢ + wᵢ x) with one scalar param per weight (as the notes write it)."""
    x = sg.var("x")
    start = staircase(n)
    w = [sg.param(f"w{i}", float(start["w"][i - 1])) for i in range(1, n + 1)]
    b = [sg.param(f"b{i}", float(start["b"][i - 1])) for i in range(1, n + 1)]
    c = [sg.param(f"c{i}", float(start["c"][i - 1])) for i in range(1, n + 1)]
    y = sg.param("b", start["b0"])
    for wi, bi, ci in zip(w, b, c):
        y = y + ci * sg.sigmoid(wi * x + bi)
    return x, w, b, c, y.named("y")


def main(argv=None):
    args = setup("15_universal_approximation", __doc__, argv)
    sizes, steps = (SMOKE_SIZES, 150) if args.smoke else (SIZES, 2000)

    print("The course notes' network with one input: y = b + Σᵢ cᵢ·sigmoid(bᵢ + wᵢ·x)")
    x, w, b, c, y = scalar_network(3)
    text = [sg.pretty(y, lhs="y"), "", "its gradients (one sigmoid's weights; the others' are alike):",
            sg.pretty(sg.grad(y, c[0]), lhs="∂y/∂c₁"), sg.pretty(sg.grad(y, w[0]), lhs="∂y/∂w₁"),
            sg.pretty(sg.grad(y, b[0]), lhs="∂y/∂b₁")]
    print("\n".join(text))
    t = sg.var("t")
    loss = ((y - t) ** 2).named("L")
    x0 = 0.5
    path = sg.render(sg.draw(loss, backward=True, values={x: x0, t: float(target(x0))}, formulas=True),
                     args.out / "three_sigmoids.svg")
    print(f"drawn with the N = 3 staircase weights at x = {x0}, t = f({x0}): {path}")

    X, _, _, Y, L = build(staircase(4))
    vector = [sg.pretty(Y, lhs="y"), sg.pretty(Y, notation="index"), "", str(sg.backprop_equations(L))]
    print("\nFor any N the weights are vectors w, b, c (x a batch of inputs, one per row):")
    print("\n".join(vector))
    write(args.out, "formulas.txt", "\n".join(text + [""] + vector))
    write(args.out, "formulas.tex", "\n\n".join([sg.latex(y), sg.latex(sg.grad(y, w[0])), sg.latex(Y),
                                                 sg.backprop_equations(L).latex()]))
    _common.formulas(args.out, "formulas", [
        ("y", y), ("∂y/∂c₁", sg.grad(y, c[0])), ("∂y/∂w₁", sg.grad(y, w[0])), ("∂y/∂b₁", sg.grad(y, b[0])),
        "For any N (vectors w, b, c; a batch of inputs)", ("y", Y), sg.formula(Y, notation="index"),
        sg.backprop_equations(L)])

    xs = np.linspace(LOW, HIGH, POINTS)
    print(f"\nTarget f(x) = sin(3x) + x/2 on [{LOW:g}, {HIGH:g}], {POINTS} points.")
    print(f"Staircase: knots tₖ = {LOW:g} + k·Δ, Δ = {HIGH - LOW:g}/N; sigmoid k centred mid-step, "
          f"wₖ = {STEEP:g}/Δ, cₖ = f(tₖ) − f(tₖ₋₁), b = f({LOW:g}).")
    print(f"Trained: Adam (lr 0.01), {steps} full-batch steps on the mean squared error; random start "
          f"w, b ~ 𝒩(0, 3²), c ~ 𝒩(0, 0.5²), b = 0 (seed N).")
    fits, rows, t0 = {}, [], time.perf_counter()
    for n in sizes:
        stair = staircase(n)
        rng = np.random.default_rng(n)
        rand = {"w": rng.normal(0, 3, n), "b": rng.normal(0, 3, n), "c": rng.normal(0, 0.5, n), "b0": 0.0}
        fits[n] = {"staircase": stair, "from staircase": train(stair, steps, xs), "from random": train(rand, steps, xs)}
        errors = [float(np.max(np.abs(sigmoid_sum(p, xs) - target(xs)))) for p in fits[n].values()]
        rows.append((n, *errors))
    seconds = time.perf_counter() - t0
    head = "    N   staircase   trained from the staircase   trained from random"
    table = ["largest |y(x) − f(x)| on the grid", head] + [
        f"{n:5d}  {e0:10.4f}  {e1:27.4f}  {e2:20.4f}" for n, e0, e1, e2 in rows]
    print("\n".join(table))
    print(f"({2 * len(sizes)} fits in {seconds:.1f} s)")
    n, _, from_stair, from_random = rows[-1]
    print(f"At N = {n} the fit from random weights is {from_random / from_stair:.1f}× worse than the one from the "
          f"staircase: the theorem promises that good weights exist, not that descent from anywhere finds them.")
    write(args.out, "errors.txt", "\n".join(table))

    shown = SHOWN if SHOWN in fits else max(fits)
    plot(args.out, xs, fits, rows, shown)
    return fits


def plot(out, xs, fits, rows, shown):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for ax, key in zip(axes[:2], ("staircase", "from staircase")):
        p = fits[shown][key]
        ax.plot(xs, target(xs), color="black", lw=2.5, label="f(x) = sin 3x + x/2")
        parts = terms(p, xs)
        for i in range(parts.shape[1]):
            ax.plot(xs, parts[:, i] + (p["b0"] if i == 0 else 0.0), lw=1, ls="--", alpha=0.8,
                    label="cᵢ·σ(wᵢx + bᵢ), one per sigmoid (b added to the first)" if i == 0 else None)
        ax.plot(xs, sigmoid_sum(p, xs), color="crimson", lw=2, label=f"their sum, N = {shown}")
        title = "written down: a smoothed staircase" if key == "staircase" else "trained by Adam from the staircase"
        ax.set_title(f"{title}\nmax error {np.max(np.abs(sigmoid_sum(p, xs) - target(xs))):.3f}")
        ax.set_xlabel("x")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.35, 0.0), ncol=3, fontsize=9, frameon=False)
    ns = [r[0] for r in rows]
    for k, (label, style) in enumerate((("staircase", "o-"), ("trained from the staircase", "s-"),
                                        ("trained from random weights", "^--")), 1):
        axes[2].plot(ns, [r[k] for r in rows], style, label=label)
    axes[2].set_xscale("log", base=2)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("N, the number of sigmoids")
    axes[2].set_ylabel("largest |y(x) − f(x)|")
    axes[2].set_title("More pieces, closer fit")
    axes[2].grid(True, alpha=0.3, which="both")
    axes[2].legend(fontsize=8)
    print(f"wrote {savefig(fig, out, 'sum_of_sigmoids.png')}")


if __name__ == "__main__":
    main()
