"""Attention: queries, keys and values, the √d scaling, causal masking, attention maps and heads.

The course notes' self-attention: every input vector a¹ … a⁴ of a sequence
gives a query qⁱ, a key kⁱ and a value vⁱ; the attention score α₁,ᵢ = q¹·kⁱ
measures how similar query 1 is to key i; a softmax over i turns the scores
into weights, and b¹ = Σᵢ α′₁,ᵢ vⁱ.  All of b¹ … b⁴ are computed at once, as
matrices: softmax(Q·Kᵀ/√d)·V.  Masked (causal) self-attention lets position
t see only positions ≤ t, as a decoder must.  This page

* prints the formulas with ``sg.pretty`` (scores, weights, output; the causal
  form; the index notation of rank-4 batched, multi-head tensors);
* computes the notes' four-token example with numbers, plain and causal,
  and shows its attention maps as heatmaps;
* measures why the scores are divided by √d: for random unit-variance q and
  k the dot product's spread grows as √d and the softmax saturates;
* builds ``sg.nn.MultiheadAttention(8, 2)`` and follows the shapes through
  the head split (batch, seq, 8) → (batch, seq, 2, 4) → (batch, 2, seq, 4)
  and back, drawn with shapes, and plots each head's causal attention map.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
import _common
from _common import pyplot, savefig, setup, write

TOKENS = ("a¹", "a²", "a³", "a⁴")
D_IN, D = 6, 3            # input features of each token; query/key/value size d
E, HEADS, SEQ = 8, 2, 5   # the multi-head example


def formulas() -> list[str]:
    """softmax(Q·Kᵀ/√d)·V for d = 3, its named scores and weights, and the causal form."""
    Q, K, V = (sg.var(n, shape=("seq", D)) for n in "QKV")
    out = sg.attention(Q, K, V)
    nodes = {n.name: n for n in sg.Graph(out).order}
    causal = sg.attention(Q, K, V, causal=True, name="masked")
    return [f"Scaled dot-product attention with d = {D} (sg.attention(Q, K, V)):",
            sg.pretty(nodes["attn.scores"], lhs="scores"),
            sg.pretty(nodes["attn.weights"], lhs="weights"),
            sg.pretty(out, lhs="out"),
            "Causal (sg.attention(Q, K, V, causal=True)): the future (key j > query i) is filled with −∞ before "
            "the softmax, so its weight is e^(−∞) = 0:",
            sg.pretty(causal, lhs="out")]


def index_formulas() -> list[str]:
    """Rank-4 queries and keys (batch, head, seq, d): the scores in index notation."""
    Q, K, V = (sg.var(n, shape=("batch", "heads", "seq", D)) for n in "QKV")
    out = sg.attention(Q, K, V, causal=True)
    scores = next(n for n in sg.Graph(out).order if n.name == "attn.scores")
    return ["For rank-4 tensors Q, K, V of shape (batch, heads, seq, d) the formulas print in index notation; "
            "i batch, j head, k query, l key:",
            sg.pretty(scores, notation="index")]


def tokens_example(seed: int = 0) -> dict:
    """The notes' four tokens a¹ … a⁴ (rows of X, 6 features) projected to q, k, v of size 3, then
    attention plain and causal; every matrix evaluated by symgrad."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(len(TOKENS), D_IN)).round(1)
    x = sg.var("X", shape=(len(TOKENS), D_IN))
    Wq, Wk, Wv = (sg.param(n, rng.normal(size=(D_IN, D)).round(1) / 2) for n in ("W_q", "W_k", "W_v"))
    Q, K, V = (x @ W for W in (Wq, Wk, Wv))
    plain = sg.nn.attention_weights(Q, K, name="plain")
    causal = sg.nn.attention_weights(Q, K, causal=True, name="causal")
    scores = (Q @ K.T).named("QKᵀ")
    outs = sg.evaluate([Q, K, V, scores, plain, causal, sg.attention(Q, K, V), sg.attention(Q, K, V, causal=True)],
                       {x: X})
    keys = ("Q", "K", "V", "raw", "weights", "causal", "out", "causal_out")
    return {"X": X, "W_q": Wq.value, "W_k": Wk.value, "W_v": Wv.value, **dict(zip(keys, outs))}


def matrix(name: str, M: np.ndarray, rows=TOKENS, cols=TOKENS) -> list[str]:
    lines = [f"{name}:", "        " + "".join(f"{c:>9}" for c in cols)]
    lines += [f"  {r:>5} " + "".join(f"{v:9.4f}" for v in row) for r, row in zip(rows, M)]
    return lines


def scaling(samples: int, seed: int = 1) -> list[tuple[int, float, float, float, float]]:
    """For d in (4, 64, 512): the standard deviation of q·k over random N(0, 1) vectors, unscaled and
    divided by √d, and the mean largest softmax weight over 8 keys, unscaled and scaled."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in (4, 64, 512):
        q, k = rng.normal(size=(samples, 1, d)), rng.normal(size=(samples, 8, d))
        dots = np.einsum("nqd,nkd->nqk", q, k)[:, 0]
        qn, kn = sg.var("q", shape=("n", 1, d)), sg.var("k", shape=("n", 8, d))
        raw, scaled = sg.evaluate([sg.nn.attention_weights(qn, kn, scale=1.0),
                                   sg.nn.attention_weights(qn, kn)], {qn: q, kn: k})
        rows.append((d, float(dots.std()), float((dots / np.sqrt(d)).std()), float(raw.max(axis=-1).mean()),
                     float(scaled.max(axis=-1).mean())))
    return rows


def multihead(seed: int = 0) -> dict:
    """MultiheadAttention(8, 2) on a (1, 5, 8) sequence, causal: the shape of every named node, the head
    split in index notation, the output and each head's weights."""
    mha = sg.nn.MultiheadAttention(E, HEADS, seed=seed, name="mha")
    x = sg.var("x", shape=("batch", SEQ, E))
    y = mha(x, causal=True)
    nodes = {n.name: n for n in sg.Graph(y).order if n.name}
    steps = [("x", "the input, one E-vector per position"),
             ("mha.Q", "x·W_q + b_q, split into heads: reshape (batch, seq, H, E/H), swap axes 1 and 2"),
             ("mha.K", "the same with W_k, b_k"), ("mha.V", "the same with W_v, b_v"),
             ("mha.scores", "Q·Kᵀ/√(E/H) per head, the future masked"),
             ("mha.weights", "softmax over the keys (last axis)"), ("mha.heads", "weights·V per head"),
             ("mha.concat", "heads back side by side: swap axes 1 and 2, reshape (batch, seq, E)"),
             ("mha.out", "concat·W_o + b_o")]
    table = [f"  {n:<12} {'(' + ', '.join(map(str, nodes[n].shape)) + ')':<18} {why}" for n, why in steps]
    X = np.random.default_rng(seed + 1).normal(size=(1, SEQ, E))
    out, weights = sg.evaluate([y, nodes["mha.weights"]], {x: X})
    return {"module": mha, "y": y, "nodes": nodes, "table": table, "X": X, "out": out, "weights": weights,
            "Q_index": sg.pretty(nodes["mha.Q"], notation="index")}


def heatmaps(out, ex: dict, mh: dict) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 + HEADS, figsize=(15, 4.2))
    pictures = [(ex["weights"], "softmax(QKᵀ/√3)", TOKENS), (ex["causal"], "causal: future masked", TOKENS)]
    pictures += [(mh["weights"][0, h], f"multi-head: head {h + 1} (causal)",
                  [str(t) for t in range(1, SEQ + 1)]) for h in range(HEADS)]
    for ax, (W, title, labels) in zip(axes, pictures):
        im = ax.imshow(W, cmap="viridis", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{W[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if W[i, j] > 0.6 else "white")
    fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight")
    fig.suptitle("Attention maps: row i holds query i's weights over the keys (each row sums to 1)")
    print(f"wrote {savefig(fig, out, 'attention_maps.png')}")


def main(argv=None):
    args = setup("20_attention", __doc__, argv)
    text = formulas() + index_formulas()
    print("\n".join(text))

    ex = tokens_example()
    lines = [f"\nThe notes' four tokens a¹ … a⁴ ({D_IN} features each), q = a·W_q, k = a·W_k, v = a·W_v of size {D}:"]
    lines += matrix("Q·Kᵀ (α₁,ᵢ = q¹·kⁱ in row 1)", ex["raw"])
    lines += matrix(f"weights = softmax(Q·Kᵀ/√{D}) (α′, each row sums to 1)", ex["weights"])
    lines += matrix("causal weights (masked self-attention: a² sees a¹ and a² only)", ex["causal"])
    lines += matrix("out = weights·V (b¹ … b⁴, computed at once)", ex["out"], cols=("v₁", "v₂", "v₃"))
    lines.append("b¹ of the causal output is v¹ itself (query 1 sees key 1 only): "
                 f"max |b¹ − v¹| = {float(np.max(np.abs(ex['causal_out'][0] - ex['V'][0]))):.1e}")
    print("\n".join(lines))

    rows = scaling(200 if args.smoke else 2000)
    table = ["\nWhy √d: q·k of random N(0, 1) vectors of size d has standard deviation √d; divided by √d it stays 1, "
             "and the softmax over 8 keys does not saturate:",
             "     d   std(q·k)   std(q·k/√d)   mean max weight unscaled   scaled"]
    table += [f"  {d:4d}   {s:8.3f}   {ss:11.3f}   {m:24.3f}   {ms:6.3f}" for d, s, ss, m, ms in rows]
    print("\n".join(table))

    mh = multihead()
    heads = [f"\n{mh['module']}: {mh['module'].num_parameters()} parameters (4 matrices {E}×{E} and 4 biases); "
             f"head size E/H = {E // HEADS}. The shapes through the graph:"] + mh["table"]
    heads += ["The head split in index notation: head j, position k, feature l of Q is column 4j + l of x·W_q + b_q:",
              mh["Q_index"]]
    print("\n".join(heads))
    write(args.out, "formulas.txt", "\n".join(text + lines + table + heads))
    write(args.out, "formulas.tex", sg.latex(sg.attention(*(sg.var(n, shape=("seq", D)) for n in "QKV"))))
    qkv, qkv4 = [sg.var(n, shape=("seq", D)) for n in "QKV"], [sg.var(n, shape=("batch", "heads", "seq", D)) for n in "QKV"]
    _common.formulas(args.out, "formulas", [
        f"Scaled dot-product attention, d = {D}", ("out", sg.attention(*qkv)),
        "Causal: the future is −∞ before the softmax", ("out", sg.attention(*qkv, causal=True, name="masked")),
        "Rank-4 scores (batch, heads, seq, d) in index notation",
        sg.formula(next(n for n in sg.Graph(sg.attention(*qkv4, causal=True)).order if n.name == "attn.scores"),
                   notation="index")])
    path = sg.render(sg.draw(mh["y"], show=("name", "op", "shape")), args.out / "multihead_shapes.svg")
    print(f"wrote {path}")
    heatmaps(args.out, ex, mh)
    return {"example": ex, "scaling": rows, "multihead": mh}


if __name__ == "__main__":
    main()
