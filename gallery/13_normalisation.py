"""Batch norm and layer norm: their backward passes in matrix notation, the running
statistics, and a deep sigmoid network trained with and without them.

Batch norm normalises every feature over the batch, x̂ = (h − μ_B)/√(σ²_B + ε),
then scales and shifts, y = γ ⊙ x̂ + β.  Because μ_B and σ²_B depend on every
sample of the batch, the backward pass has three paths into h (through x̂,
σ² and μ); ``sg.backprop_equations`` prints them step by step, and they add
up to the compact textbook form
δh = (1/(Nσ)) (N δx̂ − Σ_batch δx̂ − x̂ ⊙ Σ_batch(δx̂ ⊙ x̂)).
Layer norm is the same computation over the features of each sample
instead of over the batch.  In training a batch-norm layer also keeps
running averages of μ_B and σ²_B, which evaluation uses in their place.

The course notes list slow convergence and vanishing gradients under
"internal covariate shift"; a 10-layer sigmoid network on the 8×8 digits,
trained by Adam, shows both and what normalising each layer does to them.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
import _common
from _common import digits_split, pyplot, savefig, setup, write

DEPTH, WIDTH, MOMENTUM = 10, 32, 0.1
COLORS = {"none": "#d62728", "batch norm": "#1f77b4", "layer norm": "#2ca02c"}


def small_net(kind: str):
    """h = X V → batch norm or layer norm of 2 features → tanh(·) W → L = Σ (the equations' example)."""
    rng = np.random.default_rng(4)
    X = sg.var("X", shape=("batch", 3))
    norm = sg.nn.BatchNorm1d(2, momentum=MOMENTUM, name="bn") if kind == "batch" else sg.nn.LayerNorm(2, name="ln")
    norm.gamma.value[...] = [1.5, 0.5]
    norm.beta.value[...] = [0.1, -0.2]
    V, W = sg.param("V", rng.normal(size=(3, 2))), sg.param("W", rng.normal(size=(2, 2)))
    h = (X @ V).named("h")
    L = sg.sum(sg.tanh(norm(h) @ W)).named("L")
    return L, X, h, norm, [V, W, norm.gamma, norm.beta], rng.normal(1.0, 2.0, size=(6, 3))


def compact_backward(dxhat: np.ndarray, xhat: np.ndarray, var: np.ndarray, axis: int, eps: float) -> np.ndarray:
    """δh from δx̂ in one line: (1/(Nσ)) (N δx̂ − Σ δx̂ − x̂ ⊙ Σ(δx̂ ⊙ x̂)), sums over ``axis``."""
    n = dxhat.shape[axis]
    sigma = np.sqrt(var + eps)
    return (n * dxhat - dxhat.sum(axis=axis, keepdims=True)
            - xhat * (dxhat * xhat).sum(axis=axis, keepdims=True)) / (n * sigma)


def equations(out) -> dict:
    results = {}
    for kind, axis in (("batch", 0), ("layer", 1)):
        L, X, h, norm, params, xs = small_net(kind)
        eq = sg.backprop_equations(L, params)
        print(f"{kind.capitalize()} norm{' (over the batch: axis 0)' if kind == 'batch' else ' (over the features of each sample: axis 1)'}, "
              f"h = X⋅V → {norm.name} → tanh(⋅)⋅W → L = Σ:")
        print(sg.pretty(eq))
        write(out, f"{kind}_norm_equations.tex", eq.latex())
        _common.formulas(out, f"{kind}_norm_equations", [f"{kind.capitalize()} norm", eq])
        feeds = {X: xs}
        values = eq.evaluate(feeds)
        stats = sg.evaluate([h, *[n for n in sg.Graph(L).order if n.name in (f"{norm.name}.xhat",)]], feeds)
        h_val, xhat = stats
        var = h_val.var(axis=axis, keepdims=True)
        dxhat = values[f"δ_{norm.name}.xhat"]
        compact = compact_backward(dxhat, xhat, var, axis, norm.eps)
        step_by_step = values["δ_h"]
        grads = sg.evaluate(sg.grad(L, params), feeds)
        names = ["∂L/∂V", "∂L/∂W", f"∂L/∂{norm.name}.gamma", f"∂L/∂{norm.name}.beta"]
        vs_grad = max(float(np.abs(values[k] - g).max()) for k, g in zip(names, grads))
        print(f"on {len(xs)} samples: the printed steps give δ_h; the compact form gives the same, largest "
              f"difference {np.abs(compact - step_by_step).max():.1e};\nevery ∂L/∂p of the equations against "
              f"sg.grad: largest difference {vs_grad:.1e}\n")
        results[kind] = {"values": values, "xs": xs, "params": params, "norm": norm, "compact": compact}
    return results


def running_statistics(out) -> dict:
    L, X, h, bn, params, xs = small_net("batch")
    rules = sg.ops.state.update_rules(L)
    print(f"The running statistics (momentum {MOMENTUM}, PyTorch's rule; the variance unbiased, × N/(N − 1)), "
          "updated by every compiled training step:")
    print(sg.pretty(rules))
    write(out, "running_statistics.tex", rules.latex())
    _common.formulas(out, "running_statistics", ["Running statistics", rules])
    dot = sg.draw(L, backward=True, values={X: xs})
    print(f"wrote {sg.render(dot, out / 'batch_norm_backward.svg')} (the training graph on those samples, "
          f"before the step)")
    step = sg.compile_step(L, sg.optim.SGD(lr=0.1), inputs=[X])
    h_before = sg.evaluate(h, {X: xs})
    step(xs)
    print(f"one step on the {len(xs)} samples above: bn.running_mean = "
          f"{np.array2string(bn.running_mean.value, precision=4)}, bn.running_var = "
          f"{np.array2string(bn.running_var.value, precision=4)}")
    print(f"  batch mean of h = {np.array2string(h_before.mean(axis=0), precision=4)}, unbiased variance = "
          f"{np.array2string(h_before.var(axis=0, ddof=1), precision=4)}")
    bn.eval()
    Z = sg.var("Z", shape=("batch", 2))
    y = bn(Z)
    print("In evaluation mode the layer reads the running statistics instead of the batch's:")
    print(sg.pretty(y, lhs="bn.y"))
    dot = sg.draw(sg.sum(y).named("S"))
    print(f"wrote {sg.render(dot, out / 'batch_norm_evaluation.svg')}")
    bn.train()
    return {"h": h_before, "running_mean": bn.running_mean.value.copy(), "running_var": bn.running_var.value.copy()}


def digits(smoke: bool):
    """(train, validation) dicts of the 8×8 digits (gallery/_common.py)."""
    return digits_split(smoke, smoke_val=150)


def deep_net(kind: str):
    """DEPTH Linear layers of WIDTH units with sigmoids; a norm layer before each sigmoid (its β replaces the
    bias).  The Sequential renames its children net.0, net.1, … in order."""
    modules, n_in = [], 64
    for i in range(DEPTH - 1):
        modules.append(sg.nn.Linear(n_in, WIDTH, seed=i, bias=kind == "none", name=f"fc{i}"))
        if kind == "batch norm":
            modules.append(sg.nn.BatchNorm1d(WIDTH, momentum=MOMENTUM, name=f"bn{i}"))
        elif kind == "layer norm":
            modules.append(sg.nn.LayerNorm(WIDTH, name=f"ln{i}"))
        modules.append(sg.nn.Sigmoid(name=f"sigmoid{i}"))
        n_in = WIDTH
    modules.append(sg.nn.Linear(WIDTH, 10, seed=DEPTH, name="out"))
    return sg.nn.Sequential(*modules, name="net")


def weight_names(history) -> list[str]:
    """The tracked weight matrices, input side first (Sequential names its children net.0, net.1, …)."""
    return [name for name in history.grad_norms if name.endswith(".W")]


def eval_accuracy(net, data) -> float:
    """Accuracy of the evaluation-mode network (batch norm with its running statistics)."""
    net.eval()
    X = sg.var("X", shape=("batch", 64))
    logits = sg.evaluate(net(X), {X: data["X"]})
    net.train()
    return float(np.mean(np.argmax(logits, axis=1) == data["Y"]))


def train(train_data, val, epochs: int) -> dict:
    runs = {}
    for kind in COLORS:
        net = deep_net(kind)
        X, Y = sg.var("X", shape=("batch", 64)), sg.var("Y", shape=("batch",), dtype="int")
        logits = net(X)
        step = sg.compile_step(sg.losses.cross_entropy(logits, Y), sg.optim.Adam(lr=1e-3), inputs=[X, Y],
                               outputs=[logits])
        h = sg.fit(step, train_data, epochs=epochs, batch_size=64, validation=val, seed=0, verbose=0,
                   track="grad_norms")
        acc = eval_accuracy(net, val)
        first = h.grad_norms[weight_names(h)[0]]
        print(f"  {kind:10} loss {h['loss'][0]:.4f} → {h['loss'][-1]:.4f}; validation accuracy in training mode "
              f"{100 * h['val_accuracy'][-1]:.1f} %, in evaluation mode {100 * acc:.1f} %; ‖∂L/∂W₁‖ in epoch 1 "
              f"{first[0]:.3e}")
        runs[kind] = {"net": net, "history": h, "accuracy": acc}
    return runs


def main(argv=None):
    args = setup("13_normalisation", __doc__, argv)
    eqs = equations(args.out)
    stats = running_statistics(args.out)
    train_data, val = digits(args.smoke)
    epochs = 2 if args.smoke else 10
    print(f"\n{DEPTH}-layer sigmoid network, {WIDTH} units wide, Adam (η = 0.001), batches of 64, {epochs} epochs on "
          f"{len(train_data['Y'])} digits ({len(val['Y'])} for validation):")
    runs = train(train_data, val, epochs)
    print("(sg.fit's validation runs the training graph: batch norm then normalises each validation batch by its "
          "own statistics;\n evaluation mode uses the running ones)")
    plot(args.out, runs)
    return {"equations": eqs, "running": stats, "runs": runs, "validation": val}


def plot(out, runs):
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for kind, run in runs.items():
        h = run["history"]
        axes[0].plot(h.epochs, h["loss"], "o-", ms=3, color=COLORS[kind], label=f"{kind}: training")
        axes[0].plot(h.epochs, h["val_loss"], ":", color=COLORS[kind], label=f"{kind}: validation")
        axes[1].plot(h.epochs, 100 * np.asarray(h["val_accuracy"]), "o-", ms=3, color=COLORS[kind], label=kind)
        first, last = weight_names(h)[0], weight_names(h)[-1]
        axes[2].plot(h.epochs, h.grad_norms[first], "o-", ms=3, color=COLORS[kind], label=f"{kind}: first layer")
        axes[2].plot(h.epochs, h.grad_norms[last], "s--", ms=3, color=COLORS[kind], label=f"{kind}: last layer")
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_ylabel("validation accuracy (%), training mode")
    axes[2].set_ylabel("mean ‖∂L/∂W‖ over the epoch (log)")
    axes[2].set_yscale("log")
    for ax, title in zip(axes, ("Loss", "Validation accuracy", "Gradient of the first and last layer")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(f"A {DEPTH}-layer sigmoid network on the digits, with and without normalisation")
    fig.tight_layout()
    print(f"wrote {savefig(fig, out, 'training_with_and_without.png')}")


if __name__ == "__main__":
    main()
