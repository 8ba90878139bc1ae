"""Regularisation on an overfitting problem: an L2 penalty, dropout and early stopping.

Fifteen noisy samples of y = sin(3x) (noise std 0.3) and a 1-64-64-1 tanh
network with 4,353 parameters (its first layer's steps spread over the
inputs by weights N(0, 5²) and biases U(−5, 5)): trained long enough it
bends the curve through the noise, the training error falls far below the
noise variance and the validation error (200 fresh samples) climbs after a
minimum.  Three remedies
of the course notes, each trained from the same start with Adam:

* an L2 penalty, J = L + λ Σ‖W‖² over the weight matrices (not the biases,
  as the notes leave out β₀): its gradient adds 2λW, which pulls every
  weight towards 0 (weight decay);
* dropout: in training every hidden unit is set to 0 with probability p and
  the others are scaled by 1/(1 − p), so the expected value is unchanged;
  evaluation uses the whole network;
* early stopping: ``sg.fit(..., validation=..., early_stopping=patience)``
  stops when the validation loss has not improved for ``patience`` epochs
  and puts back the weights of the best epoch.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
import _common
from _common import pyplot, savefig, setup, write

N_TRAIN, N_VAL, NOISE, WIDTH = 15, 200, 0.3, 64
LAMBDA, P_DROP, PATIENCE, LR = 3e-3, 0.2, 25, 0.01
#: the first layer's weights N(0, 5²) and biases U(−5, 5) spread the tanh units' steps over [−1, 1]
FIRST = {"init": ("normal", {"std": 5.0}), "bias_init": ("uniform", {"low": -5.0, "high": 5.0})}
COLORS = {"none": "#d62728", "L2": "#1f77b4", "dropout": "#2ca02c", "early stopping": "#9467bd"}


def data():
    """Training and validation samples of sin(3x) with Gaussian noise (seeded)."""
    rng = np.random.default_rng(0)
    x_tr = np.sort(rng.uniform(-1.0, 1.0, N_TRAIN))
    y_tr = np.sin(3 * x_tr) + rng.normal(0.0, NOISE, N_TRAIN)
    x_va = np.linspace(-1.0, 1.0, N_VAL)
    y_va = np.sin(3 * x_va) + rng.normal(0.0, NOISE, N_VAL)
    return {"X": x_tr[:, None], "Y": y_tr[:, None]}, {"X": x_va[:, None], "Y": y_va[:, None]}


def network(p_drop: float = 0.0):
    """1 → 64 → 64 → 1 with tanh, the same initial weights for every variant (seeds 1, 2, 3)."""
    layers = [sg.nn.Linear(1, WIDTH, seed=1, name="fc1", **FIRST), sg.nn.Tanh(name="tanh1")]
    if p_drop:
        layers.append(sg.nn.Dropout(p_drop, name="drop1"))
    layers += [sg.nn.Linear(WIDTH, WIDTH, seed=2, name="fc2"), sg.nn.Tanh(name="tanh2")]
    if p_drop:
        layers.append(sg.nn.Dropout(p_drop, name="drop2"))
    layers.append(sg.nn.Linear(WIDTH, 1, seed=3, name="fc3"))
    return sg.nn.Sequential(*layers, name="net")


def weights(net) -> list:
    return [p for name, p in net.named_parameters() if name.endswith(".W")]


def l2_penalty(net):
    """Σ‖W‖² over the weight matrices."""
    terms = [sg.sum(W * W) for W in weights(net)]
    return sum(terms[1:], terms[0])


def mse_function(net):
    """The evaluation-mode mean squared error of ``net`` as a compiled function of (X, Y)."""
    net.eval()
    X, Y = sg.var("X", shape=("batch", 1)), sg.var("Y", shape=("batch", 1))
    f = sg.compile(sg.losses.mse(net(X), Y), [X, Y])
    net.train()
    return lambda d: float(f(d["X"], d["Y"]))


def train_variant(name: str, train: dict, val: dict, epochs: int) -> dict:
    """Full-batch Adam for ``epochs`` epochs, the training and validation MSE measured after each."""
    net = network(P_DROP if name == "dropout" else 0.0)
    X, Y = sg.var("X", shape=("batch", 1)), sg.var("Y", shape=("batch", 1))
    loss = sg.losses.mse(net(X), Y)
    if name == "L2":
        loss = loss + sg.const(LAMBDA, name="λ") * l2_penalty(net)
    step = sg.compile_step(loss, sg.optim.Adam(lr=LR), inputs=[X, Y], seed=0)
    mse = mse_function(net)
    curves = {"train": [], "val": []}
    for _ in range(epochs):
        step(train["X"], train["Y"])
        curves["train"].append(mse(train))
        curves["val"].append(mse(val))
    return {"net": net, "curves": curves, "mse": mse}


def early_stopping(train: dict, val: dict, epochs: int) -> dict:
    net = network()
    X, Y = sg.var("X", shape=("batch", 1)), sg.var("Y", shape=("batch", 1))
    step = sg.compile_step(sg.losses.mse(net(X), Y), sg.optim.Adam(lr=LR), inputs=[X, Y])
    history = sg.fit(step, train, epochs=epochs, batch_size=N_TRAIN, validation=val, early_stopping=PATIENCE,
                     seed=0, verbose=0)
    mse = mse_function(net)
    return {"net": net, "history": history, "curves": {"train": history["loss"], "val": history["val_loss"]},
            "mse": mse}


def formulas(out) -> None:
    rng = np.random.default_rng(1)
    X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 1))
    W1, W2 = sg.param("W1", rng.normal(size=(3, 4))), sg.param("W2", rng.normal(size=(4, 1)))
    H = sg.tanh(X @ W1).named("H")
    L = sg.losses.mse(H @ W2, Y, name="L")
    J = (L + sg.const(LAMBDA, name="λ") * (sg.sum(W1 * W1) + sg.sum(W2 * W2))).named("J")
    l2 = sg.backprop_equations(J, [W1, W2])
    print("L2 penalty on a one-hidden-layer network: the gradient of λ‖W‖² adds 2λW to each ∂J/∂W")
    print(sg.pretty(l2))

    print("\nSGD's weight_decay = λ adds λθ to every gradient, the gradient of (λ/2)‖θ‖²:")
    print(sg.pretty(sg.optim.SGD(lr=0.1, weight_decay=LAMBDA).formulas()))
    feeds = {X: rng.normal(size=(8, 3)), Y: rng.normal(size=(8, 1))}
    start = [W1.value.copy(), W2.value.copy()]
    after = []
    for loss, opt in ((L, sg.optim.SGD(lr=0.1, weight_decay=LAMBDA)),
                      ((L + sg.const(LAMBDA / 2) * (sg.sum(W1 * W1) + sg.sum(W2 * W2))), sg.optim.SGD(lr=0.1))):
        W1.value[...], W2.value[...] = start
        sg.compile_step(loss, opt, inputs=[X, Y])(feeds[X], feeds[Y])
        after.append([W1.value.copy(), W2.value.copy()])
    diff = max(float(np.abs(a - b).max()) for a, b in zip(*after))
    print(f"one SGD step with weight_decay = {LAMBDA:g} and one on L + ({LAMBDA:g}/2)‖θ‖²: "
          f"largest difference of the weights {diff:.1e}")

    D = sg.dropout(H, P_DROP, name="D")
    Ld = sg.losses.mse(D @ W2, Y, name="L")
    drop = sg.backprop_equations(Ld, [W1, W2])
    print(f"\nInverted dropout with p = {P_DROP}: m is drawn afresh at every step, the kept units scaled by "
          f"1/(1 − p) = {1 / (1 - P_DROP):g}; the backward pass uses the same mask")
    print(sg.pretty(drop))
    ones = sg.var("ones", shape=(100_000,))
    sample = sg.evaluate(sg.dropout(ones, P_DROP), {ones: np.ones(100_000)}, seed=0)
    print(f"on 100,000 ones: fraction set to 0 = {np.mean(sample == 0):.4f} (p = {P_DROP}), "
          f"mean = {sample.mean():.4f} (E[D] = H = 1)")
    write(out, "regularisation_equations.tex", l2.latex() + "\n\n" + drop.latex())
    _common.formulas(out, "regularisation_equations", ["L2 penalty", l2, "SGD with weight_decay",
                                                       sg.optim.SGD(lr=0.1, weight_decay=LAMBDA).formulas(),
                                                       "Inverted dropout", drop])
    dot = sg.draw(sg.losses.mse(sg.dropout(H, P_DROP, name="D") @ W2, Y, name="L"), backward=True)
    print(f"wrote {sg.render(dot, out / 'dropout_backward.svg')}")


def main(argv=None):
    args = setup("12_regularisation", __doc__, argv)
    formulas(args.out)
    train, val = data()
    epochs = 40 if args.smoke else 500
    print(f"\n{N_TRAIN} training and {N_VAL} validation samples of y = sin(3x) + N(0, {NOISE}²) "
          f"(the noise alone gives a validation MSE of about {NOISE ** 2:.2f});")
    print(f"1-{WIDTH}-{WIDTH}-1 tanh network ({network().num_parameters()} parameters), full-batch Adam "
          f"(η = {LR}), {epochs} epochs:")
    runs = {name: train_variant(name, train, val, epochs) for name in ("none", "L2", "dropout")}
    runs["early stopping"] = early_stopping(train, val, epochs)
    rows = []
    for name, run in runs.items():
        c = run["curves"]
        best = int(np.argmin(c["val"]))
        note = {"none": "", "L2": f" (λ = {LAMBDA:g})", "dropout": f" (p = {P_DROP})",
                "early stopping": f" (patience {PATIENCE})"}[name]
        sq = sum(float((W.value ** 2).sum()) for W in weights(run["net"]))
        rows.append(f"  {name + note:26} last epoch: train MSE {c['train'][-1]:.4f}, validation MSE {c['val'][-1]:.4f}"
                    f"; lowest validation MSE {c['val'][best]:.4f} at epoch {best + 1}; Σ‖W‖² = {sq:.2f}")
    print("\n".join(rows))
    h = runs["early stopping"]["history"]
    restored = runs["early stopping"]["mse"](val)
    ran = (f"stopped after epoch {h.epochs[-1]} (no improvement for {PATIENCE} epochs)" if h.stopped_early
           else f"ran all {h.epochs[-1]} epochs")
    print(f"early stopping: {ran}, put back epoch {h.best_epoch}: validation MSE of the restored weights "
          f"{restored:.4f}")
    write(args.out, "results.txt", "\n".join(rows))
    plot_curves(args.out, runs)
    plot_fits(args.out, runs, train, val)
    return {"runs": runs, "train": train, "val": val}


def plot_curves(out, runs):
    """One panel per variant: its training and validation error, with the unregularised validation error behind."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True, sharey=True)
    reference = runs["none"]["curves"]["val"]
    for ax, (name, run) in zip(axes.ravel(), runs.items()):
        c = run["curves"]
        epochs = np.arange(1, len(c["train"]) + 1)
        if name != "none":
            ax.plot(np.arange(1, len(reference) + 1), reference, color="#bbb", lw=1, label="none: validation")
        ax.plot(epochs, c["train"], "-", color=COLORS[name], label="training")
        ax.plot(epochs, c["val"], "--", color=COLORS[name], label="validation")
        best = int(np.argmin(c["val"])) + 1
        ax.plot(best, c["val"][best - 1], "o", color=COLORS[name], ms=5,
                label=f"lowest validation MSE {c['val'][best - 1]:.3f}, epoch {best}")
        ax.axhline(NOISE ** 2, color="black", lw=0.6, ls=":", label=f"noise variance {NOISE ** 2:.2f}")
        ax.set_title({"none": "no regularisation", "L2": f"L2 penalty, λ = {LAMBDA:g}",
                      "dropout": f"dropout, p = {P_DROP}",
                      "early stopping": f"early stopping, patience {PATIENCE} (weights of epoch {best} put back)"
                      }[name], fontsize=10)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean squared error (log)")
    fig.suptitle("Training and validation error on 15 noisy samples of sin(3x)")
    fig.tight_layout()
    print(f"wrote {savefig(fig, out, 'train_validation_curves.png')}")


def plot_fits(out, runs, train, val):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = np.linspace(-1.0, 1.0, 300)[:, None]
    ax.plot(xs, np.sin(3 * xs), color="black", lw=1, label="sin(3x)")
    ax.plot(val["X"], val["Y"], ".", color="#bbb", ms=3, label="validation samples")
    ax.plot(train["X"], train["Y"], "ko", ms=5, label="training samples")
    for name, run in runs.items():
        net = run["net"].eval()
        X = sg.var("X", shape=("batch", 1))
        ax.plot(xs, sg.evaluate(net(X), {X: xs}), color=COLORS[name], label=name)
        net.train()
    ax.set_ylim(-2, 2)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("The fitted functions after training (early stopping: the restored best epoch)")
    ax.legend(fontsize=8, ncol=2)
    print(f"wrote {savefig(fig, out, 'fitted_functions.png')}")


if __name__ == "__main__":
    main()
