"""Vanishing and exploding gradients in networks of depth 20.

Backpropagation multiplies one factor per layer: δ_{l−1} = (δ_l ⊙ σ′(Z_l)) W_lᵀ.
With sigmoids every σ′ is at most 1/4, so the gradient reaching the first of
20 layers is smaller than the last one's by about (1/4)¹⁹ ≈ 4·10⁻¹²: the
layers near the output learn, those near the input hardly move.  Weights
that are too large do the opposite and the gradients explode.  ReLU (σ′ is
0 or 1) with He initialisation keeps the norms level; a residual block
h ← h + H(h) adds a path whose derivative is 1 (see 14_residual).

The page prints the chain rule of a sigmoid chain with its numbers and the
backprop equations of a small sigmoid MLP, measures ‖∂L/∂W_l‖ for every
layer of four 20-layer networks on the 8×8 digits at initialisation, trains
three of them with ``sg.fit(..., track="grad_norms")`` and plots the norms
over the layers and over training.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
import _common
from _common import digits_split, pyplot, savefig, setup, write

DEPTH = 20  # weight matrices in every network
WIDTH = 32
KINDS = ("sigmoid", "relu", "exploding", "residual")
TRAINED = ("sigmoid", "relu", "residual")
LABELS = {"sigmoid": "sigmoid, Xavier init", "relu": "ReLU, He init",
          "exploding": "ReLU, N(0, 0.5²) init", "residual": "residual ReLU blocks"}
COLORS = {"sigmoid": "#d62728", "relu": "#1f77b4", "exploding": "#ff7f0e", "residual": "#2ca02c"}


def digits(smoke: bool):
    """(train, validation) dicts of the 8×8 digits (gallery/_common.py)."""
    return digits_split(smoke)


class ResidualNet(sg.nn.Module):
    """x → ReLU(x W₀) → DEPTH − 2 blocks h ← h + ReLU(h W_l) → h W_last (no biases).

    Each block's weights are He-normal with gain √(2/B) for B blocks: the branch then adds about
    1/B of h's variance, and h grows by about (1 + 1/B)^B ≈ e over all blocks instead of 2^B.
    """

    def __init__(self, depth: int = DEPTH, width: int = WIDTH, seed: int = 0, name: str = "net"):
        super().__init__(name)
        blocks = depth - 2
        branch = sg.init.spec("he", gain=float(np.sqrt(2.0 / blocks)))
        self.first = self.add_module(sg.nn.Linear(64, width, init="he", bias=False, name=f"{name}.0", seed=seed))
        self.blocks = [self.add_module(sg.nn.Linear(width, width, init=branch, bias=False, name=f"{name}.{i}",
                                                    seed=seed + i)) for i in range(1, depth - 1)]
        self.last = self.add_module(sg.nn.Linear(width, 10, init="xavier", bias=False, name=f"{name}.{depth - 1}",
                                                 seed=seed + depth))

    def forward(self, x):
        h = sg.relu(self.first(x), name=f"{self.name}.0.a")
        for block in self.blocks:
            h = (h + sg.relu(block(h))).named(f"{block.name}.a")
        return self.last(h)


def build(kind: str, depth: int = DEPTH):
    """The model, its logits and loss on vars X (batch, 64) and Y (batch,)."""
    sizes = [64] + [WIDTH] * (depth - 1) + [10]
    if kind == "sigmoid":
        model = sg.nn.MLP(sizes, activation="sigmoid", init="xavier", seed=0, name="net", bias=False)
    elif kind == "relu":
        model = sg.nn.MLP(sizes, activation="relu", init="he", seed=0, name="net", bias=False)
    elif kind == "exploding":
        model = sg.nn.MLP(sizes, activation="relu", init=("normal", {"std": 0.5}), seed=0, name="net", bias=False)
    else:
        model = ResidualNet(depth)
    X, Y = sg.var("X", shape=("batch", 64)), sg.var("Y", shape=("batch",), dtype="int")
    logits = model(X)
    return model, X, Y, logits, sg.losses.cross_entropy(logits, Y, name="L")


def weights(model) -> list:
    return [p for name, p in model.named_parameters() if name.endswith(".W")]


def formulas(out) -> list[str]:
    """σ′, the chain rule of a sigmoid chain with numbers, and the backprop equations of a small MLP."""
    lines = []
    z = sg.var("z")
    dsig = sg.grad(sg.sigmoid(z), z)
    peak = float(sg.evaluate(dsig, {z: 0.0}))
    lines += [sg.pretty(dsig, lhs="σ′(z)"), f"largest at z = 0: σ′(0) = {peak:.4f}", ""]

    x = sg.var("x")
    h = x
    for k in range(1, 5):
        h = sg.sigmoid(sg.param(f"w{k}", 1.0) * h, name=f"h{k}")
    chain = sg.chain_rule(h, x, {x: 0.5})
    lines += ["A chain of four sigmoids with every w = 1, at x = 0.5: each layer multiplies by w⋅σ′ ≤ 1/4",
              sg.pretty(chain), f"four factors σ′ ≤ 1/4: ∂h₄/∂x = {chain.value:.6f} ≤ (1/4)⁴ = {0.25 ** 4:.6f}", ""]

    X = sg.var("X", shape=("batch", 4))
    W1, W2, W3 = (sg.param(f"W{i}", np.zeros(s)) for i, s in enumerate([(4, 3), (3, 3), (3, 2)], 1))
    out_layer = sg.sigmoid(sg.sigmoid(X @ W1) @ W2) @ W3
    L = sg.losses.cross_entropy(out_layer, sg.var("Y", shape=("batch",), dtype="int"), name="L")
    eqs = sg.backprop_equations(L, [W1, W2, W3])
    lines += ["Backprop through a 3-layer sigmoid MLP: every layer multiplies δ by σ′(Z) and by Wᵀ",
              sg.pretty(eqs), ""]
    write(out, "backprop_equations.tex", eqs.latex() + "\n\n" + chain.latex())
    _common.formulas(out, "backprop_equations", [("σ′(z)", dsig), "A chain of four sigmoids, w = 1, x = 0.5", chain,
                                                 "A 3-layer sigmoid MLP", eqs])

    lines += ["The course notes' numbers: one weight w multiplied 1000 times (a 1000-step chain),"]
    lines += [f"  w = {w}: w¹⁰⁰⁰ = {w ** 1000:.4g}" for w in (1.0, 1.01, 0.99, 0.01)]
    return lines


def norms_at_init(kind: str, batch: dict, depth: int = DEPTH) -> tuple[list[float], list[np.ndarray]]:
    """‖∂L/∂W_l‖ (Frobenius) of every layer on one batch, and the initial weights."""
    model, X, Y, _, L = build(kind, depth)
    ws = weights(model)
    grads = sg.evaluate(sg.grad(L, ws), {X: batch["X"], Y: batch["Y"]})
    return [float(np.linalg.norm(g)) for g in grads], [w.value.copy() for w in ws]


def train(kind: str, train_data: dict, val: dict, epochs: int):
    model, X, Y, logits, L = build(kind)
    step = sg.compile_step(L, sg.optim.SGD(lr=0.01, momentum=0.9), inputs=[X, Y], outputs=[logits])
    history = sg.fit(step, train_data, epochs=epochs, batch_size=64, validation=val, seed=0, verbose=0,
                     track="grad_norms")
    return model, history


def main(argv=None):
    args = setup("10_vanishing_gradients", __doc__, argv)
    epochs = 2 if args.smoke else 20
    lines = formulas(args.out)
    print("\n".join(lines))
    write(args.out, "formulas.txt", "\n".join(lines))

    train_data, val = digits(args.smoke)
    batch = {"X": train_data["X"][:256], "Y": train_data["Y"][:256]}
    print(f"\nFour networks of {DEPTH} weight matrices, {WIDTH} units wide, on {len(batch['Y'])} digits "
          f"(cross-entropy, mean over the batch).")
    print("‖∂L/∂W_l‖ at initialisation, layer 1 (input) … layer 20 (output):")
    init_norms, init_weights = {}, {}
    for kind in KINDS:
        init_norms[kind], init_weights[kind] = norms_at_init(kind, batch)
        n = init_norms[kind]
        print(f"  {kind:9} {LABELS[kind]:24} layer 1: {n[0]:.3e}  layer 10: {n[9]:.3e}  layer 20: {n[-1]:.3e}"
              f"  first/last: {n[0] / n[-1]:.3e}")
    print(f"  (1/4)¹⁹ = {0.25 ** (DEPTH - 1):.3e}: 19 sigmoid layers each scale δ by σ′ ≤ 1/4")
    print(f"  N(0, 0.5²) gives each ReLU layer 0.5² / (2/{WIDTH}) = {0.25 / (2 / WIDTH):g} times the variance that He "
          f"init keeps level:\n  the activations double at every layer forward and δ at every layer backward")
    write(args.out, "norms_at_init.txt", "layer " + " ".join(f"{k:>12}" for k in KINDS) + "\n" + "\n".join(
        f"{i + 1:5} " + " ".join(f"{init_norms[k][i]:12.4e}" for k in KINDS) for i in range(DEPTH)))

    print(f"\nTraining with SGD (η = 0.01, momentum 0.9), batches of 64, {epochs} epochs, "
          f"{len(train_data['Y'])} training and {len(val['Y'])} validation digits:")
    histories, models = {}, {}
    for kind in TRAINED:
        models[kind], histories[kind] = train(kind, train_data, val, epochs)
        h = histories[kind]
        g = list(h.grad_norms.values())
        print(f"  {kind:9} loss {h['loss'][0]:.4f} → {h['loss'][-1]:.4f}, validation accuracy "
              f"{100 * h['val_accuracy'][-1]:.1f} %; mean ‖∂L/∂W‖ in the last epoch: layer 1 {g[0][-1]:.3e}, "
              f"layer 20 {g[-1][-1]:.3e}")
    print("  (chance on ten classes: loss ln 10 = 2.3026, accuracy 10 %)")

    model, X, Y, logits, L = build("exploding")
    step = sg.compile_step(L, sg.optim.SGD(lr=0.01, momentum=0.9), inputs=[X, Y], outputs=[logits])
    try:
        sg.fit(step, train_data, epochs=1, batch_size=64, seed=0, verbose=0, max_grad_norm=1e3)
        print("\nexploding: training ran")
    except sg.TrainingError as e:
        print(f"\nexploding: sg.fit(..., max_grad_norm=1000) stopped it: {str(e).splitlines()[0][:300]}")
    print("Gradient clipping rescales g to length at most c before the step:")
    print(sg.pretty(sg.optim.SGD(lr=0.01, clip_norm=1.0).formulas()))
    _common.formulas(args.out, "clipping", ["SGD with clip_norm = 1", sg.optim.SGD(lr=0.01, clip_norm=1.0).formulas()])

    plot_over_layers(args.out, init_norms)
    plot_over_training(args.out, histories)
    for kind in ("sigmoid",) if args.smoke else TRAINED:
        path = args.out / f"grad_norms_{kind}.png"
        histories[kind].plot_grad_norms(path, title=f"{LABELS[kind]}: ‖∂L/∂W_l‖ per epoch and per layer")
        print(f"wrote {path}")
    depth = 6 if args.smoke else DEPTH
    _, X, Y, _, L = build("sigmoid", depth)
    feeds = {X: batch["X"][:16], Y: batch["Y"][:16]}
    dot = sg.draw(L, backward=True, values=feeds, collapse=True, rankdir="TB")
    print(f"wrote {sg.render(dot, args.out / 'sigmoid_net_backward.svg')} "
          f"({depth} sigmoid layers, one box per layer, values on 16 digits)")
    return {"init_norms": init_norms, "init_weights": init_weights, "batch": batch, "histories": histories,
            "models": models, "validation": val}


def plot_over_layers(out, init_norms):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    layers = np.arange(1, DEPTH + 1)
    for kind, norms in init_norms.items():
        ax.plot(layers, norms, "o-", ms=3.5, color=COLORS[kind], label=LABELS[kind])
    last = init_norms["sigmoid"][-1]
    ax.plot(layers, last * 0.25 ** (DEPTH - layers), ":", color="grey", label="last sigmoid layer × (1/4)^(20 − l)")
    ax.set_yscale("log")
    ax.set_xticks(layers)
    ax.set_xlabel("layer l (1 = input side, 20 = output side)")
    ax.set_ylabel("‖∂L/∂W_l‖ at initialisation (log scale)")
    ax.set_title("Gradient norm per layer of a 20-layer network")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    print(f"wrote {savefig(fig, out, 'grad_norms_over_layers.png')}")


def plot_over_training(out, histories):
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    fig, (norm_ax, loss_ax) = plt.subplots(1, 2, figsize=(12, 4.3))
    for kind, h in histories.items():
        g = list(h.grad_norms.values())
        norm_ax.plot(h.epochs, g[0], "o-", ms=3, color=COLORS[kind], label=f"{kind}: layer 1")
        norm_ax.plot(h.epochs, g[-1], "s--", ms=3, color=COLORS[kind], label=f"{kind}: layer 20")
        loss_ax.plot(h.epochs, h["loss"], "o-", ms=3, color=COLORS[kind], label=f"{LABELS[kind]} (train)")
        loss_ax.plot(h.epochs, h["val_loss"], ":", color=COLORS[kind], label=f"{LABELS[kind]} (validation)")
    norm_ax.set_yscale("log")
    norm_ax.set_xlabel("epoch")
    norm_ax.set_ylabel("mean ‖∂L/∂W‖ over the epoch (log scale)")
    norm_ax.set_title("First and last layer during training")
    norm_ax.legend(fontsize=8, ncol=2)
    loss_ax.axhline(np.log(10), color="grey", lw=0.8, label="chance: ln 10")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.set_title("Loss")
    loss_ax.legend(fontsize=8, loc="center right")
    for ax in (norm_ax, loss_ax):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    print(f"wrote {savefig(fig, out, 'grad_norms_over_training.png')}")


if __name__ == "__main__":
    main()
