"""Linear regression on a traffic-style series: ŷ = b + w·x.

Predict tomorrow's views from today's.  The MAE gradient only sees the
sign of each error, the MSE gradient sees its size, so a few viral days
pull the MSE line much more than the MAE line.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
from _common import formulas, pyplot, savefig, setup, write

SCALE = 1000.0  # views are modelled in thousands, so both parameters move at similar speeds


def traffic(days: int, seed: int = 0) -> np.ndarray:
    """Daily views: a slow upward trend, a weekly cycle, noise and a few viral spikes."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    views = 4000 + 15 * t + 600 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 250, days)
    for day in rng.choice(np.arange(5, days - 1), size=4, replace=False):
        views[day] += rng.uniform(4000, 7000)
    return views


def fit(loss, w, b, x, y, data, steps, lr):
    """Full-batch Adam from the initial guess ŷ = 500 + 1·x; returns the loss per step."""
    w.value, b.value = 1.0, 500 / SCALE
    step = sg.compile_step(loss, sg.optim.Adam(lr=lr), inputs=[x, y])
    return [float(step(*data)) for _ in range(steps)]


def main(argv=None):
    args = setup("02_linear_regression", __doc__, argv)
    views = traffic(90)
    x_data, y_data = views[:-1] / SCALE, views[1:] / SCALE
    w, b = sg.param("w", 1.0), sg.param("b", 0.5)
    x, y = sg.var("x", shape=("n",)), sg.var("y", shape=("n",))
    yhat = (b + w * x).named("yhat")
    losses = {"MAE": sg.losses.mae(yhat, y, name="L"), "MSE": sg.losses.mse(yhat, y, name="L")}

    e = np.abs(views[1:] - (500 + views[:-1]))
    print(f"Initial guess ŷ = 500 + 1·x: first errors e₁ = {e[0]:.0f}, e₂ = {e[1]:.0f} views; "
          f"MAE = {e.mean():.0f} views")
    tex, shown = [], []
    for name, L in losses.items():
        dw = sg.grad(L, w)
        shown += [name, ("∂L/∂w", dw)]
        print(f"{name}:")
        print(sg.pretty(dw, lhs="  ∂L/∂w"))
        tex.append(f"\\text{{{name}}}:\\quad \\frac{{\\partial L}}{{\\partial w}} = {sg.latex(dw)}")
    write(args.out, "gradients.tex", "\n".join(tex))
    formulas(args.out, "gradients", shown)

    steps = 300 if args.smoke else 3000
    fitted, curves = {}, {}
    for name, L in losses.items():
        curves[name] = fit(L, w, b, x, y, (x_data, y_data), steps, lr=0.01)
        fitted[name] = (float(w.value), float(b.value) * SCALE)
        mae = np.mean(np.abs(fitted[name][1] + fitted[name][0] * views[:-1] - views[1:]))
        print(f"{name} fit: ŷ = {fitted[name][1]:.0f} + {fitted[name][0]:.3f}·x   (mean abs error {mae:.0f} views)")
    write(args.out, "fits.txt", "\n".join(f"{k}: b = {v[1]:.1f}, w = {v[0]:.4f}" for k, v in fitted.items()))

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    ax1.scatter(views[:-1], views[1:], s=14, color="#555", label="(today, tomorrow)")
    grid = np.linspace(views.min(), views.max(), 50)
    for (name, (wv, bv)), color in zip(fitted.items(), ("#1f77b4", "#d62728")):
        ax1.plot(grid, bv + wv * grid, color=color, lw=2, label=f"{name}: ŷ = {bv:.0f} + {wv:.2f}·x")
    ax1.set_xlabel("views today")
    ax1.set_ylabel("views tomorrow")
    ax1.set_title("One-feature model ŷ = b + w·x")
    ax1.legend()
    for (name, hist), color in zip(curves.items(), ("#1f77b4", "#d62728")):
        ax2.plot(hist, color=color, label=name)
    ax2.set_yscale("log")
    ax2.set_xlabel("Adam step")
    ax2.set_ylabel("loss (views in thousands)")
    ax2.set_title("Training loss")
    ax2.legend()
    savefig(fig, args.out, "traffic_fit.png")
    print(f"wrote {args.out / 'traffic_fit.png'}")


if __name__ == "__main__":
    main()
