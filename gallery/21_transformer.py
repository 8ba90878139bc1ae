"""The transformer encoder: one block drawn collapsed, and a toy task it learns (reversing digits).

The course notes' encoder block: input embedding plus positional encoding
(self-attention alone has no position information), then N × [multi-head
attention → add & norm → feed forward → add & norm], where "add" is a
residual connection and "norm" a layer norm.  This page

* prints the block's equations and follows the shapes of its named nodes
  through ``sg.nn.TransformerEncoderLayer`` (post-norm, as PyTorch's default);
* draws the whole model collapsed, one box per module
  (``sg.draw(..., collapse=True)``), forward and backward;
* trains embedding + learned positions + one encoder block + a linear read-out
  to reverse sequences of five digits (the idea of ``bench/transformer_reverse.py``,
  small enough for seconds), and plots the loss and the trained block's attention
  maps: to write position t the model must look at position T − 1 − t, so the maps
  turn into anti-diagonals.
"""
from __future__ import annotations

import time

import numpy as np

import symgrad as sg
import _common
from _common import pyplot, savefig, setup, write

VOCAB, T, D_MODEL, HEADS, FF = 10, 5, 16, 2, 32


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random digit sequences of length T and their reversals."""
    X = rng.integers(0, VOCAB, size=(n, T))
    return X, X[:, ::-1].copy()


def build(seed: int = 0):
    X = sg.var("X", shape=("batch", T), dtype="int")
    emb = sg.nn.Embedding(VOCAB, D_MODEL, seed=seed, name="emb")
    pos = sg.nn.PositionalEmbedding(T, D_MODEL, seed=seed + 1, name="pos")
    block = sg.nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, dropout=0.0, seed=seed + 2, name="block")
    head = sg.nn.Linear(D_MODEL, VOCAB, seed=seed + 3, name="head")
    logits = head(block(pos(emb(X))))
    return X, logits, {"emb": emb, "pos": pos, "block": block, "head": head}


EQUATIONS = [
    "x = E[tokens] + P                         (embedding + learned positions)",
    "s₁ = x + MultiheadAttention(x, x, x)      (add: the residual path)",
    "h = LayerNorm(s₁)                         (norm)",
    "s₂ = h + W₂·ReLU(W₁·h + b₁) + b₂          (feed forward, add)",
    "out = LayerNorm(s₂)                       (norm)",
    "logits = out·W + b, one row of 10 digit scores per position",
]


def main(argv=None):
    args = setup("21_transformer", __doc__, argv)
    X, logits, modules = build()
    block = modules["block"]
    Y = sg.var("Y", shape=("batch", T), dtype="int")
    loss = sg.losses.cross_entropy(logits, Y, name="L")
    nodes = {n.name: n for n in sg.Graph(loss).order if n.name}
    shown = ["pos.out", "block.self_attn.Q", "block.self_attn.weights", "block.self_attn.out", "block.sum1",
             "block.norm1.out", "block.linear1.a", "block.sum2", "block.out", "head.out", "L"]
    text = [f"One encoder block, post-norm (norm_first=False): {block}", *("  " + e for e in EQUATIONS),
            "The shapes of its named nodes for sequences of T = 5 digits, d_model = 16, 2 heads, feed-forward 32:"]
    text += [f"  {n:<24} ({', '.join(map(str, nodes[n].shape))})" for n in shown if n in nodes]
    counts = {k: m.num_parameters() for k, m in modules.items()}
    text.append("parameters: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"; {sum(counts.values())} in all")
    ln = sg.var("s", shape=("n", 4))
    text += ["Layer norm of one row in index notation (sg.nn.LayerNorm(4); γ and β its learned scale and shift):",
             sg.pretty(sg.nn.LayerNorm(4, name="ln")(ln), notation="index")]
    print("\n".join(text))
    write(args.out, "formulas.txt", "\n".join(text))
    _common.formulas(args.out, "formulas", ["Layer norm of one row in index notation",
                                            sg.formula(sg.nn.LayerNorm(4, name="ln")(ln), notation="index")])
    path = sg.render(sg.draw(loss, collapse=True), args.out / "transformer_collapsed.svg")
    print(f"wrote {path}")
    path = sg.render(sg.draw(loss, backward=True, collapse=True), args.out / "transformer_backward_collapsed.svg")
    print(f"wrote {path}")

    rng = np.random.default_rng(0)
    n_train, epochs = (600, 3) if args.smoke else (3000, 6)
    Xtr, Ytr = make_data(n_train, rng)
    Xte, Yte = make_data(500, rng)
    step = sg.compile_step(loss, sg.optim.Adam(lr=3e-3), inputs=[X, Y], seed=0)
    t0 = time.perf_counter()
    history = sg.fit(step, {"X": Xtr, "Y": Ytr}, epochs=epochs, batch_size=32, seed=0, verbose=0)
    seconds = time.perf_counter() - t0
    f = sg.compile([logits, nodes["block.self_attn.weights"]], inputs=[X])
    out, weights = f(Xte)
    predicted = out.argmax(axis=-1)
    token_acc, seq_acc = float(np.mean(predicted == Yte)), float(np.mean(np.all(predicted == Yte, axis=1)))
    result = [f"\nTraining to reverse {n_train} random 5-digit sequences: Adam (lr 0.003), batches of 32, "
              f"{epochs} epochs in {seconds:.1f} s",
              "loss per epoch: " + " ".join(f"{v:.3f}" for v in history["loss"]),
              f"on 500 fresh sequences: token accuracy {100 * token_acc:.1f} %, whole-sequence accuracy "
              f"{100 * seq_acc:.1f} % (chance: 10 % and 0.001 %)",
              f"example: {' '.join(map(str, Xte[0]))} → {' '.join(map(str, predicted[0]))}"]
    anti = np.fliplr(np.eye(T))
    mass = weights[:, :, anti > 0].sum(axis=-1).mean(axis=0) / T
    result.append("mean attention weight on the mirrored position T − 1 − t, per head: "
                  + ", ".join(f"{m:.3f}" for m in mass) + f" (uniform: {1 / T:.3f})")
    print("\n".join(result))
    write(args.out, "training.txt", "\n".join(result))
    plot(args.out, history["loss"], weights[0], Xte[0])
    return {"modules": modules, "X_test": Xte, "Y_test": Yte, "token_accuracy": token_acc,
            "sequence_accuracy": seq_acc, "weights": weights, "loss": list(history["loss"])}


def plot(out, losses, weights, tokens):
    plt = pyplot()
    fig, axes = plt.subplots(1, 1 + HEADS, figsize=(13, 3.8))
    axes[0].plot(range(1, len(losses) + 1), losses, marker="o")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("cross-entropy")
    axes[0].set_title("training loss")
    labels = [f"{t}:{d}" for t, d in enumerate(tokens)]
    for h, ax in enumerate(axes[1:]):
        im = ax.imshow(weights[h], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(T), labels)
        ax.set_yticks(range(T), [f"out {t}" for t in range(T)])
        ax.set_xlabel("key (position:digit)")
        ax.set_title(f"trained block, head {h + 1}")
    fig.colorbar(im, ax=axes[1:], shrink=0.8, label="attention weight")
    fig.suptitle("Reversing digits: to write position t the block looks at position T − 1 − t")
    print(f"wrote {savefig(fig, out, 'training_and_attention.png')}")


if __name__ == "__main__":
    main()
