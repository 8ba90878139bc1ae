"""Residual connections: the extra path of the chain rule, and deep networks with and without it.

A residual block adds its input to what its layers compute, a = x + H(x)
(the notes: a⁽ᴸ⁾ = a⁽ᴸ⁻²⁾ + H(x), with H two layers).  The chain rule then
has two paths from x to a, the skip path with derivative 1 and the path
through H:  ∂a/∂x = 1 + ∂H/∂x.  Stacking k blocks multiplies k such
factors, (1 + ∂H₁/∂x)⋯(1 + ∂H_k/∂a_{k−1}), a sum over 2ᵏ paths one of which
carries the gradient through every skip unchanged, so the gradient cannot
vanish the way a product of small factors ∂H/∂x does.

The page prints the chain rule path by path with numbers and the matrix
backprop equations of a block, draws both, and trains a 30-block tanh
network on the 8×8 digits with and without the skips, from the same weights
(ResNet won ILSVRC 2015 with 152 layers).
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
import _common
from _common import digits_split, pyplot, savefig, setup, write

BLOCKS, WIDTH, BRANCH_STD = 30, 32, 0.1
COLORS = {"plain": "#d62728", "residual": "#2ca02c"}


def scalar_block():
    """a = x + H(x), H(x) = w₂·tanh(w₁·x): the notes' block with a two-layer H, in scalars."""
    x, w1, w2 = sg.var("x"), sg.param("w1", 0.8), sg.param("w2", 0.5)
    z = (w1 * x).named("z")
    g = sg.tanh(z).named("g")
    H = (w2 * g).named("H")
    return (x + H).named("a"), x, (w1, w2)


def chain_rule(out) -> dict:
    a, x, (w1, w2) = scalar_block()
    feeds = {x: 0.5}
    chain = sg.chain_rule(a, x, feeds)
    print("One residual block, a = x + H(x) with H(x) = w₂⋅tanh(w₁⋅x), w₁ = 0.8, w₂ = 0.5, at x = 0.5:")
    print(sg.pretty(chain))
    dH = float(w1.value * w2.value * (1 - np.tanh(w1.value * 0.5) ** 2))
    print(f"the skip path contributes 1, the path through H ∂H/∂x = {dH:.6f}: ∂a/∂x = 1 + {dH:.6f} = {1 + dH:.6f}")
    write(out, "chain_rule.tex", chain.latex())
    _common.formulas(out, "chain_rule", ["One residual block, a = x + H(x)", chain])
    dot = sg.draw(a, backward=True, values=feeds, wrt=[x], formulas=True)
    print(f"wrote {sg.render(dot, out / 'residual_block_chain_rule.svg')}")

    print("\nk blocks a_i = a_{i−1} + tanh(v_i⋅a_{i−1}), v_i = 0.5, a₀ = x = 0.5: paths from x to a_k, and ∂a_k/∂x")
    print("against the product of the blocks' factors (1 + ∂H_i/∂a_{i−1}):")
    h, value, rows = sg.var("x"), 0.5, []
    x0, factors = h, []
    for k in range(1, 5):
        v = sg.param(f"v{k}", 0.5)
        factors.append(1 + 0.5 * (1 - np.tanh(0.5 * value) ** 2))
        value = value + np.tanh(0.5 * value)
        h = (h + sg.tanh(v * h)).named(f"a{k}")
        c = sg.chain_rule(h, x0, {x0: 0.5})
        rows.append((k, len(c.paths), c.value, float(np.prod(factors))))
        print(f"  k = {k}: {len(c.paths):2} paths, ∂a_{k}/∂x = {c.value:.6f}, Π(1 + ∂H_i/∂a_{{i−1}}) = "
              f"{np.prod(factors):.6f}")
    return {"chain": chain, "dH": dH, "paths": rows}


def matrix_block(out) -> None:
    rng = np.random.default_rng(0)
    X = sg.var("X", shape=("batch", 3))
    W, b = sg.param("W", rng.normal(0, 0.5, size=(3, 3))), sg.param("b", np.zeros(3))
    H = sg.tanh(X @ W + b).named("H")
    A = (X + H).named("A")
    L = sg.sum(A * A).named("L")
    eq = sg.backprop_equations(L, [X, W, b])
    print("\nThe same block on a batch, A = X + tanh(X⋅W + b), L = Σ A ⊙ A: ∂L/∂X has the skip term δ_A")
    print(sg.pretty(eq))
    write(out, "residual_block_equations.tex", eq.latex())
    _common.formulas(out, "residual_block_equations", ["The block on a batch", eq])
    dot = sg.draw(L, backward=True, wrt=[X, W, b], values={X: rng.normal(size=(4, 3))}, formulas=True)
    print(f"wrote {sg.render(dot, out / 'residual_block_backward.svg')}")


def digits(smoke: bool):
    """(train, validation) dicts of the 8×8 digits (gallery/_common.py)."""
    return digits_split(smoke)


def deep_net(skip: bool):
    """64 → tanh → BLOCKS blocks (h ← h + tanh(h W + b), or h ← tanh(h W + b) without the skip) → 10.

    Both variants get the same weights: blocks N(0, 0.1²), the input layer Xavier, the output N(0, 0.01²).
    Returns the vars, logits, loss, the block outputs h₀ … h_30 and the params.
    """
    X, Y = sg.var("X", shape=("batch", 64)), sg.var("Y", shape=("batch",), dtype="int")
    first = sg.nn.Linear(64, WIDTH, seed=0, name="in")
    blocks = [sg.nn.Linear(WIDTH, WIDTH, init=("normal", {"std": BRANCH_STD}), seed=i, name=f"block{i}")
              for i in range(1, BLOCKS + 1)]
    last = sg.nn.Linear(WIDTH, 10, init=("normal", {"std": 0.01}), seed=BLOCKS + 1, name="out")
    h = sg.tanh(first(X)).named("h0")
    hs = [h]
    for i, block in enumerate(blocks, 1):
        branch = sg.tanh(block(h))
        h = ((h + branch) if skip else branch).named(f"h{i}")
        hs.append(h)
    logits = last(h)
    params = [p for layer in [first, *blocks, last] for p in (layer.W, layer.b)]
    return X, Y, logits, sg.losses.cross_entropy(logits, Y, name="L"), hs, params


def experiment(train_data, val, epochs: int) -> dict:
    batch = {"X": train_data["X"][:256], "Y": train_data["Y"][:256]}
    runs = {}
    print(f"\n{BLOCKS} blocks of {WIDTH} tanh units on the digits, block weights N(0, {BRANCH_STD}²): "
          f"‖∂L/∂h_l‖ at initialisation on {len(batch['Y'])} digits")
    for kind in COLORS:
        X, Y, logits, L, hs, params = deep_net(kind == "residual")
        norms = [float(np.linalg.norm(g)) for g in sg.evaluate(sg.grad(L, hs), {X: batch["X"], Y: batch["Y"]})]
        print(f"  {kind:8} h₀ (input side): {norms[0]:.3e}  h₁₅: {norms[15]:.3e}  h₃₀ (output side): {norms[-1]:.3e}"
              f"  h₀/h₃₀: {norms[0] / norms[-1]:.3e}")
        runs[kind] = {"init_norms": norms, "params": params, "init_values": [p.value.copy() for p in params],
                      "vars": (X, Y, logits, L)}
    print(f"Training both from these weights: SGD (η = 0.01, momentum 0.9), batches of 64, {epochs} epochs, "
          f"{len(train_data['Y'])} digits:")
    for kind, run in runs.items():
        X, Y, logits, L = run["vars"]
        step = sg.compile_step(L, sg.optim.SGD(lr=0.01, momentum=0.9), inputs=[X, Y], outputs=[logits])
        h = sg.fit(step, train_data, epochs=epochs, batch_size=64, validation=val, seed=0, verbose=0,
                   track="grad_norms")
        run["history"] = h
        g = h.grad_norms
        print(f"  {kind:8} loss {h['loss'][0]:.4f} → {h['loss'][-1]:.4f}, validation accuracy "
              f"{100 * h['val_accuracy'][-1]:.1f} %; mean ‖∂L/∂W‖ in the last epoch: block 1 {g['block1.W'][-1]:.3e}, "
              f"block {BLOCKS} {g[f'block{BLOCKS}.W'][-1]:.3e}")
    return {"batch": batch, "runs": runs}


def main(argv=None):
    args = setup("14_residual", __doc__, argv)
    scalar = chain_rule(args.out)
    matrix_block(args.out)
    train_data, val = digits(args.smoke)
    result = experiment(train_data, val, 1 if args.smoke else 8)
    plot(args.out, result["runs"])
    return {"scalar": scalar, **result, "validation": val}


def plot(out, runs):
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for kind, run in runs.items():
        axes[0].plot(range(BLOCKS + 1), run["init_norms"], "o-", ms=3, color=COLORS[kind], label=kind)
        h = run["history"]
        blocks = [h.grad_norms[f"block{i}.W"] for i in range(1, BLOCKS + 1)]
        axes[1].plot(range(1, BLOCKS + 1), [b[-1] for b in blocks], "o-", ms=3, color=COLORS[kind],
                     label=f"{kind}, epoch {h.epochs[-1]}")
        axes[2].plot(h.epochs, h["loss"], "o-", ms=3, color=COLORS[kind], label=f"{kind}: training")
        axes[2].plot(h.epochs, h["val_loss"], ":", color=COLORS[kind], label=f"{kind}: validation")
    axes[0].set(title="‖∂L/∂h_l‖ at initialisation", xlabel="block output h_l (0 = input side)",
                ylabel="norm (log scale)", yscale="log")
    axes[1].set(title="‖∂L/∂W_l‖ in the last epoch", xlabel="block l", ylabel="mean norm over the epoch (log)",
                yscale="log")
    axes[2].set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    axes[2].axhline(np.log(10), color="grey", lw=0.8, label="chance: ln 10")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{BLOCKS} tanh blocks with and without the skip connection (same initial weights)")
    fig.tight_layout()
    print(f"wrote {savefig(fig, out, 'with_and_without_skips.png')}")


if __name__ == "__main__":
    main()
