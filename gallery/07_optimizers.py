"""SGD, SGD with momentum, AdaGrad, RMSProp and Adam on a valley.

f(θ₁, θ₂) = 0.05 θ₁² + 2 θ₂² is steep across the valley and nearly flat
along it: plain SGD zig-zags, momentum builds up speed along the floor,
the adaptive methods rescale each coordinate.  Prints every update rule
and plots the paths.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
from _common import formulas, pyplot, savefig, setup, write

START = (-9.0, 1.2)


def optimizers():
    return {
        "SGD": sg.optim.SGD(lr=0.2),
        "SGDM": sg.optim.SGD(lr=0.2, momentum=0.8),
        "AdaGrad": sg.optim.AdaGrad(lr=1.0),
        "RMSProp": sg.optim.RMSProp(lr=0.1),
        "Adam": sg.optim.Adam(lr=0.5),
    }


def valley(t1, t2):
    return 0.05 * t1 ** 2 + 2.0 * t2 ** 2


def main(argv=None):
    args = setup("07_optimizers", __doc__, argv)
    steps = 15 if args.smoke else 60
    paths, finals, tex, shown = {}, {}, [], []
    for name, opt in optimizers().items():
        t1, t2 = sg.param("theta1", START[0]), sg.param("theta2", START[1])
        f = valley(t1, t2)
        print(f"{name}:")
        rule = opt.formulas()
        print("  " + sg.pretty(rule).replace("\n", "\n  "))
        tex.append(f"% {name}\n{sg.latex(rule)}")
        shown += [name, rule]
        step = sg.compile_step(f, opt, inputs=[])
        path = [(float(t1.value), float(t2.value))]
        for _ in range(steps):
            step()
            path.append((float(t1.value), float(t2.value)))
        paths[name] = np.array(path)
        finals[name] = float(valley(*path[-1]))
        print(f"  after {steps} steps: θ = ({path[-1][0]:.3f}, {path[-1][1]:.3f}), f = {finals[name]:.2e}")
    write(args.out, "update_rules.tex", "\n\n".join(tex))
    formulas(args.out, "update_rules", shown)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    g1, g2 = np.meshgrid(np.linspace(-10, 2, 300), np.linspace(-2, 2, 200))
    ax.contour(g1, g2, valley(g1, g2), levels=np.geomspace(0.01, 12, 14), colors="#bbb", linewidths=0.8)
    colors = ["#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#d62728"]
    for (name, path), color in zip(paths.items(), colors):
        ax.plot(path[:, 0], path[:, 1], "o-", ms=2.5, lw=1.2, color=color, label=f"{name} (f = {finals[name]:.1e})")
    ax.plot(0, 0, "k*", ms=12)
    ax.set_xlabel("θ₁")
    ax.set_ylabel("θ₂")
    ax.set_title(f"{steps} steps from θ = {START} on f = 0.05 θ₁² + 2 θ₂²")
    ax.legend(loc="upper right", fontsize=9)
    savefig(fig, args.out, "optimizer_paths.png")
    print(f"wrote {args.out / 'optimizer_paths.png'}")


if __name__ == "__main__":
    main()
