"""Initialisation: zero, constant, random, Xavier, He and orthogonal weights.

A unit sums n inputs, z = Σᵢ wᵢxᵢ, so with independent zero-mean weights and
inputs Var(z) = n·Var(w)·Var(x).  Keeping Var(z) = Var(x) layer after layer
asks for Var(w) = 1/n (Xavier/LeCun, for tanh and sigmoid); ReLU zeroes half
of its inputs, so He takes Var(w) = 2/n.  Small random weights (std 0.01)
shrink the signal at every layer; an orthogonal W keeps ‖Wx‖ = ‖x‖.

The page measures, in 10-layer tanh and ReLU networks on the 8×8 digits,
the spread of the activations and the gradient norm of every layer for each
scheme, trains the tanh networks for a few epochs, and shows on the course's
3-3-3-2 network what zero and constant weights do: every unit of a layer
gets the same gradient, so the units stay copies of each other.
"""
from __future__ import annotations

import numpy as np
import sympy

import symgrad as sg
import _common
from _common import pyplot, savefig, setup, write
from symgrad.formulas.printing import join_pretty

DEPTH, WIDTH = 10, 64
INITS = {"zeros": "zeros", "constant": ("constant", {"value": 0.05}), "random": "random",
         "xavier": "xavier_normal", "he": "he", "orthogonal": "orthogonal"}
COLORS = {"zeros": "#7f7f7f", "constant": "#8c564b", "random": "#9467bd", "xavier": "#1f77b4", "he": "#d62728",
          "orthogonal": "#2ca02c"}
X_COURSE, Y_COURSE = [1.5, 2.5, 3.0], [1.0, 0.0]  # the course notes' input and target


def digits(smoke: bool):
    """(train, validation) of the 8×8 digits, every pixel standardised (mean 0, variance 1 over the set)."""
    from sklearn.datasets import load_digits
    data = load_digits()
    X, y = data.data, data.target.astype(np.int64)
    X = (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-8)
    order = np.random.default_rng(0).permutation(len(y))
    n_train, n_val = (300, 100) if smoke else (1400, 397)
    tr, va = order[:n_train], order[n_train:n_train + n_val]
    return {"X": X[tr], "Y": y[tr]}, {"X": X[va], "Y": y[va]}


def variance_rules() -> list[str]:
    """Each scheme's standard deviation as a formula, its value for a 64 × 64 layer and the measured one."""
    n_in, n_out, c = sympy.symbols("n_in n_out c", positive=True)
    rules = {"zeros": sympy.Integer(0), "constant": sympy.Integer(0), "random": sympy.Rational(1, 100),
             "xavier": sympy.sqrt(2 / (n_in + n_out)), "he": sympy.sqrt(2 / n_in)}
    lines = ["Standard deviation of the weights of a layer with n_in inputs and n_out outputs: the formula, its value",
             "for a 64 × 64 layer, and the std of one 64 × 64 matrix drawn by sg.init.initialize(..., seed=0):"]
    for name, rule in rules.items():
        drawn = sg.init.initialize(INITS[name], (WIDTH, WIDTH), seed=0)
        value = float(rule.subs({n_in: WIDTH, n_out: WIDTH}))
        note = {"constant": "   (every entry 0.05: no spread at all)",
                "xavier": "   (Glorot & Bengio; √(1/n) when n_in = n_out = n, the notes' rule)",
                "he": "   (the notes' √(2/n))"}.get(name, "")
        lines.append(join_pretty([f"  {name:10} std = ", rule, f" = {value:.4f}   drawn: {drawn.std():.4f}{note}"]))
    W = sg.init.initialize("orthogonal", (WIDTH, WIDTH), seed=0)
    x = np.random.default_rng(1).normal(size=WIDTH)
    lines.append(f"  orthogonal WᵀW = I: max |WᵀW − I| = {np.abs(W.T @ W - np.eye(WIDTH)).max():.1e}, "
                 f"‖Wx‖/‖x‖ = {np.linalg.norm(x @ W) / np.linalg.norm(x):.6f}, std = {W.std():.4f} (≈ 1/√64 = 0.125)")
    return lines


def build(act: str, init, seed: int = 0):
    model = sg.nn.MLP([64] + [WIDTH] * (DEPTH - 1) + [10], activation=act, init=init, seed=seed, name="net")
    X, Y = sg.var("X", shape=("batch", 64)), sg.var("Y", shape=("batch",), dtype="int")
    logits = model(X)
    return model, X, Y, logits, sg.losses.cross_entropy(logits, Y, name="L")


def layer_statistics(act: str, init, batch: dict) -> dict:
    """Per hidden layer: std of the activations and the number of distinct units; per layer ‖∂L/∂W‖."""
    model, X, Y, _, L = build(act, init)
    hidden = [layer.name + ".a" for layer in model.layers[:-1]]
    acts = [n for n in sg.Graph(L).order if n.name in hidden]
    ws = [layer.W for layer in model.layers]
    f = sg.compile(acts + sg.grad(L, ws), [X, Y])
    values = f(batch["X"], batch["Y"])
    a, g = values[:len(acts)], values[len(acts):]
    return {"std": [float(v.std()) for v in a],
            "distinct": [int(np.unique(np.round(v, 12), axis=1).shape[1]) for v in a],
            "grad": [float(np.linalg.norm(v)) for v in g],
            "activations": a, "weights": [w.value.copy() for w in ws]}


def course_network(W1, W2, W3):
    """The course notes' 3-3-3-2 network (sigmoid, sigmoid, softmax, BCE) without biases."""
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(2,))
    params = [sg.param("W1", W1), sg.param("W2", W2), sg.param("W3", W3)]
    h1 = sg.sigmoid(params[0] @ x, name="h1")
    h2 = sg.sigmoid(params[1] @ h1, name="h2")
    L = sg.losses.bce(sg.softmax(params[2] @ h2, name="yhat"), y, name="L")
    return L, x, y, params


def distinct_rows(W: np.ndarray) -> int:
    return int(np.unique(np.round(W, 12), axis=0).shape[0])


def symmetry(out, steps: int) -> dict:
    rng = np.random.default_rng(0)
    starts = {"zeros": (np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((2, 3))),
              "constant": (np.full((3, 3), 0.05), np.full((3, 3), 0.025), np.full((2, 3), 1.0)),
              "random": tuple(rng.normal(0.0, 0.5, s) for s in ((3, 3), (3, 3), (2, 3)))}
    print("\nSymmetry, on the course's 3-3-3-2 network (x = [1.5, 2.5, 3], y = [1, 0], no biases):")
    L, *_ = course_network(*starts["zeros"])
    print(sg.pretty(sg.backprop_equations(L)))
    _common.formulas(out, "symmetry", ["The 3-3-3-2 network", sg.backprop_equations(L)])
    print("With W₃ = 0 (or with equal rows, as the notes' W₃ of ones) δ_h₂ = W₃ᵀ(…) has equal entries or is 0,")
    print("so every unit of a layer gets the same gradient; the rows of W₁ and W₂ move together.")
    result = {}
    for name, ws in starts.items():
        L, x, y, params = course_network(*ws)
        feeds = {x: X_COURSE, y: Y_COURSE}
        grads = sg.evaluate(sg.grad(L, params), feeds)
        step = sg.compile_step(L, sg.optim.SGD(lr=0.5), inputs=[x, y])
        for _ in range(steps):
            loss = step(np.array(X_COURSE), np.array(Y_COURSE))
        rows = [distinct_rows(p.value) for p in params[:2]]
        result[name] = {"grads": grads, "params": params, "rows": rows, "loss": float(loss)}
        label = {"zeros": "zeros", "constant": "constant (the notes' 0.05, 0.025, 1)", "random": "random N(0, 0.5²)"}
        print(f"  {label[name]:38} at the start max |∂L/∂W₁| = {np.abs(grads[0]).max():.4e}, "
              f"max |∂L/∂W₂| = {np.abs(grads[1]).max():.4e}; after {steps} SGD steps L = {loss:.4f}, "
              f"distinct rows of W₁: {rows[0]}, of W₂: {rows[1]}")
        if name == "zeros":
            print("    ∂L/∂W₃ at the start = " + np.array2string(grads[2], precision=4).replace("\n", ""))
    L, x, y, _ = course_network(*starts["zeros"])
    dot = sg.draw(L, backward=True, values={x: X_COURSE, y: Y_COURSE})
    print(f"wrote {sg.render(dot, out / 'zero_init_backward.svg')}")
    return result


def train_tanh(train_data: dict, val: dict, epochs: int) -> dict:
    finals = {}
    for name, init in INITS.items():
        model, X, Y, logits, L = build("tanh", init)
        step = sg.compile_step(L, sg.optim.SGD(lr=0.05, momentum=0.9), inputs=[X, Y], outputs=[logits])
        h = sg.fit(step, train_data, epochs=epochs, batch_size=64, validation=val, seed=0, verbose=0)
        finals[name] = h
        print(f"  {name:10} loss {h['loss'][0]:.4f} → {h['loss'][-1]:.4f}, "
              f"validation accuracy {100 * h['val_accuracy'][-1]:.1f} %")
    return finals


def main(argv=None):
    args = setup("11_initialisation", __doc__, argv)
    n, var_w, var_x, var_z = sympy.symbols("n Var(w) Var(x) Var(z)", positive=True)
    print("A unit z = Σᵢ wᵢxᵢ over n inputs, weights and inputs independent with mean 0:")
    print(sg.pretty(sympy.Eq(var_z, n * var_w * var_x)))
    _common.formulas(args.out, "variance", [sympy.Eq(var_z, n * var_w * var_x), "Xavier (tanh), He (ReLU)",
                                            sympy.Eq(var_w, 1 / n), sympy.Eq(var_w, 2 / n)])
    print(join_pretty(["so Var(z) = Var(x) when ", sympy.Eq(var_w, 1 / n), " (Xavier, for tanh); ReLU zeroes half "
                       "of its inputs and needs ", sympy.Eq(var_w, 2 / n), " (He)"]))
    lines = variance_rules()
    print("\n".join(lines))
    write(args.out, "variance_rules.txt", "\n".join(lines))

    train_data, val = digits(args.smoke)
    batch = {"X": train_data["X"][:256], "Y": train_data["Y"][:256]}
    stats = {}
    table = []
    for act in ("tanh", "relu"):
        print(f"\n{act} network, {DEPTH} layers of {WIDTH} units, biases 0, on {len(batch['Y'])} standardised digits:")
        for name, init in INITS.items():
            s = stats[(act, name)] = layer_statistics(act, init, batch)
            row = (f"  {name:10} activation std layer 1: {s['std'][0]:.3e}  layer 9: {s['std'][-1]:.3e}  "
                   f"‖∂L/∂W‖ layer 1: {s['grad'][0]:.3e}  layer 10: {s['grad'][-1]:.3e}  "
                   f"distinct units: {min(s['distinct'])}")
            print(row)
            table.append(f"{act} {row.strip()}")
        print("  (constant: the units of a layer are copies; the last W's rows are equal too, so the hidden layers'"
              " δ is 0 and\n   their ‖∂L/∂W‖ is rounding error)")
    write(args.out, "layer_statistics.txt", "\n".join(table))

    sym = symmetry(args.out, 20 if args.smoke else 200)

    epochs = 1 if args.smoke else 8
    print(f"\nTraining the tanh networks: SGD (η = 0.05, momentum 0.9), batches of 64, {epochs} epochs, "
          f"{len(train_data['Y'])} digits:")
    histories = train_tanh(train_data, val, epochs)

    plot_statistics(args.out, stats)
    if not args.smoke:
        plot_histograms(args.out, stats)
    return {"stats": stats, "batch": batch, "symmetry": sym, "histories": histories}


def plot_statistics(out, stats):
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for row, act in enumerate(("tanh", "relu")):
        std_ax, grad_ax = axes[row]
        for name in INITS:
            s = stats[(act, name)]
            std_ax.plot(range(1, DEPTH), np.maximum(s["std"], 1e-16), "o-", ms=3, color=COLORS[name], label=name)
            grad_ax.plot(range(1, DEPTH + 1), np.maximum(s["grad"], 1e-16), "o-", ms=3, color=COLORS[name],
                         label=name)
        std_ax.set_title(f"{act}: spread of the activations")
        std_ax.set_xlabel("hidden layer")
        std_ax.set_ylabel("std of the activations (log; 0 drawn at 1e-16)")
        grad_ax.set_title(f"{act}: gradient per layer")
        grad_ax.set_xlabel("layer")
        grad_ax.set_ylabel("‖∂L/∂W‖ (log; 0 drawn at 1e-16)")
        for ax in (std_ax, grad_ax):
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    print(f"wrote {savefig(fig, out, 'layer_statistics.png')}")


def plot_histograms(out, stats):
    """Histograms of the activations at hidden layers 1, 3, 5, 7, 9 for the schemes that keep them alive or not."""
    plt = pyplot()
    cases = [("tanh", "random"), ("tanh", "xavier"), ("relu", "xavier"), ("relu", "he")]
    layers = (0, 2, 4, 6, 8)
    fig, axes = plt.subplots(len(cases), len(layers), figsize=(13, 9), sharey="row")
    for r, (act, name) in enumerate(cases):
        for c, k in enumerate(layers):
            a = stats[(act, name)]["activations"][k].ravel()
            ax = axes[r, c]
            ax.hist(a, bins=50, range=(-1, 1) if act == "tanh" else (0, 3), color=COLORS[name])
            ax.set_title(f"{act}, {name}: layer {k + 1}\nstd {a.std():.2g}", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    print(f"wrote {savefig(fig, out, 'activation_histograms.png')}")


if __name__ == "__main__":
    main()
