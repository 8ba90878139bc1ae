"""Tokenize → numericalize → embed: a tiny corpus, its vocabulary and a learned 2-D embedding.

The course notes' text pipeline: a sentence is split into tokens
(``sg.text.tokenize``), each token becomes an integer id from a
vocabulary (``sg.text.Vocab``), sentences of different lengths are
padded into one array (``sg.text.pad``), and each id picks a row of an
embedding table (``sg.nn.Embedding``).  A one-hot vector gives every
word its own axis, so no two words are closer than any other two; a
learned embedding places words by what they are used for.

The corpus has eighteen short sentences on three topics (animals,
fruit and the course itself, with the notes' two example sentences).
A two-dimensional embedding is trained on a toy task: guess a
sentence's topic from the mean of its word vectors (padding masked out)
through one linear layer.  The plot shows where each word ends up.
"""
from __future__ import annotations

import time

import numpy as np

import symgrad as sg
import _common
from _common import pyplot, savefig, setup, write

NOTES = ["The course contents are well organized", "Text is something different from images"]
CORPUS = {
    "animals": ["The cat chases the mouse.", "The dog chases the cat.", "A dog barks at the cat.",
                "The mouse runs from the cat.", "A cat and a dog sleep.", "The dog runs after the mouse."],
    "fruit": ["I eat a sweet apple.", "She eats a ripe banana.", "The apple is sweet and ripe.",
              "A banana and an apple are fruit.", "He eats a ripe pear.", "The pear is sweet fruit."],
    "course": [NOTES[0] + ".", NOTES[1] + ".", "The model learns from text and images.",
               "Images are numbers to the model.", "The course teaches the model.", "Text is a sequence of tokens."],
}
NEW = ["A mouse runs.", "She eats an apple.", "The model reads text."]
TOPICS = list(CORPUS)
DIM = 2


def corpus():
    """Token lists, topic labels (0, 1, 2) and the vocabulary of the corpus."""
    texts = [s for sentences in CORPUS.values() for s in sentences]
    labels = np.array([k for k, sentences in enumerate(CORPUS.values()) for _ in sentences])
    docs = [sg.text.tokenize(s) for s in texts]
    return docs, labels, sg.text.Vocab.build(docs)


def word_topics(vocab) -> dict[str, str | None]:
    """The topic of each vocabulary word, or None for a word used in more than one (or none)."""
    seen: dict[str, set] = {}
    for topic, sentences in CORPUS.items():
        for s in sentences:
            for token in sg.text.tokenize(s):
                seen.setdefault(token, set()).add(topic)
    return {w: next(iter(seen[w])) if len(seen.get(w, ())) == 1 else None for w in vocab.itos}


def build(vocab, length: int, seed: int = 0):
    """ids → E[ids] → mean over the non-pad tokens → Linear(2, 3) → cross-entropy with the topic."""
    ids = sg.var("ids", shape=("batch", length), dtype="int")
    topic = sg.var("topic", shape=("batch",), dtype="int")
    emb = sg.nn.Embedding(len(vocab), DIM, init=("normal", {"std": 0.1}), seed=seed, name="emb")
    head = sg.nn.Linear(DIM, len(TOPICS), seed=seed + 1, name="head")
    mask = (1 - sg.equal(ids, vocab.pad_id)).named("mask")
    vectors = emb(ids)
    h = (sg.sum(vectors * sg.expand_dims(mask, -1), axis=1) / sg.expand_dims(sg.sum(mask, axis=1), -1)).named("h")
    logits = head(h)
    return {"ids": ids, "topic": topic, "emb": emb, "head": head, "mask": mask, "h": h, "logits": logits,
            "loss": sg.losses.cross_entropy(logits, topic, name="L")}


def nearest_same_topic(E: np.ndarray, vocab, topics: dict) -> tuple[int, int]:
    """Of the words used in one topic only, how many have as nearest such word (Euclidean, in the
    embedding) one of the same topic."""
    words = [w for w in vocab.itos if topics[w] is not None]
    rows = E[[vocab[w] for w in words]]
    dist = np.linalg.norm(rows[:, None, :] - rows[None, :, :], axis=-1)
    np.fill_diagonal(dist, np.inf)
    same = sum(topics[w] == topics[words[j]] for w, j in zip(words, dist.argmin(axis=1)))
    return int(same), len(words)


def main(argv=None):
    args = setup("19_embeddings", __doc__, argv)
    docs, labels, vocab = corpus()
    lines = ["Tokenize (the course notes' two sentences):"]
    lines += [f"  {s!r} → {sg.text.tokenize(s)}" for s in NOTES]
    lines.append(f"\nThe corpus: {len(docs)} sentences on {len(TOPICS)} topics ({', '.join(TOPICS)}), "
                 f"{sum(len(d) for d in docs)} tokens.")
    lines.append(f"Its vocabulary ({len(vocab)} tokens; the specials first, then by count, ties alphabetically), "
                 f"id token (count):")
    entries = [f"{i:2d} {t} ({vocab.counts.get(t, 0)})" for i, t in enumerate(vocab.itos)]
    lines += ["  " + "   ".join(f"{e:18s}" for e in entries[k:k + 6]).rstrip() for k in range(0, len(entries), 6)]
    lines.append("\nNumericalize, then pad to one array (id 0 is <pad>):")
    notes_ids = [vocab.encode(sg.text.tokenize(s)) for s in NOTES]
    for s, ids in zip(NOTES, notes_ids):
        lines.append(f"  {s!r} → {ids}")
    padded = sg.text.pad(notes_ids + [vocab.encode(sg.text.tokenize(NEW[0]))], value=vocab.pad_id)
    lines.append(f"  with {NEW[0]!r}, padded:")
    lines += ["    " + " ".join(f"{v:2d}" for v in row) for row in padded]
    print("\n".join(lines))

    batch = sg.text.pad([vocab.encode(d) for d in docs], value=vocab.pad_id)
    m = build(vocab, batch.shape[1])
    emb, E = m["emb"], m["emb"].E
    start = np.array(E.value, copy=True)
    word = "cat"
    word_id = sg.var("word", shape=(1,), dtype="int")
    by_product, lookup = sg.evaluate([sg.one_hot(word_id, len(vocab)) @ E, emb(word_id)], {word_id: [vocab[word]]})
    hot = " ".join("1" if i == vocab[word] else "0" for i in range(len(vocab)))
    onehot_lines = [f"\nOne-hot: {word!r} (id {vocab[word]}) is a vector of {len(vocab)} zeros with a 1 at its id:",
                    f"  {hot}",
                    f"every pair of one-hot words is √2 apart.  An embedding row is that vector times E "
                    f"({len(vocab)}×{DIM}): one_hot({word}) @ E = E[{vocab[word]}] = "
                    f"{np.array2string(lookup[0], precision=4)} (largest difference "
                    f"{float(np.max(np.abs(by_product - lookup))):.1e}), so the lookup E[id] stands for it."]
    print("\n".join(onehot_lines))

    eqs = sg.backprop_equations(m["loss"])
    formula = [f"\nThe model on padded batches of {batch.shape[1]} ids (index notation; ∂L/∂E adds δ into the row "
               f"each id picked, and rows never picked get 0):", eqs.pretty()]
    print("\n".join(formula))
    write(args.out, "pipeline.txt", "\n".join(lines + onehot_lines + formula))
    write(args.out, "formulas.tex", eqs.latex())
    _common.formulas(args.out, "formulas", ["Embedding → mean over the ids → linear → cross-entropy", eqs])
    print(f"wrote {sg.render(sg.draw(m['loss'], backward=True, collapse=True), args.out / 'embed_backward.svg')}")

    steps = 60 if args.smoke else 300
    step = sg.compile_step(m["loss"], sg.optim.Adam(lr=0.05), inputs=[m["ids"], m["topic"]],
                           outputs=[m["logits"]])
    t0 = time.perf_counter()
    first, _ = step(batch, labels)
    for _ in range(steps - 1):
        loss, logits = step(batch, labels)
    seconds = time.perf_counter() - t0
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
    print(f"\nTraining: Adam (lr 0.05), {steps} full-batch steps in {seconds:.2f} s: loss {float(first):.4f} → "
          f"{float(loss):.4f}, topic accuracy on the corpus {100 * accuracy:.0f} %")
    unchanged = [vocab.itos[i] for i in range(len(vocab)) if np.array_equal(E.value[i], start[i])]
    print(f"rows of E that training never moved: {', '.join(unchanged)} (<pad> is masked out, <unk> never occurs)")
    topics = word_topics(vocab)
    same, total = nearest_same_topic(E.value, vocab, topics)
    print(f"of the {total} words used in one topic only, {same} have a word of the same topic as nearest "
          f"neighbour in the 2-D embedding")

    new_ids = sg.text.pad([vocab.encode(sg.text.tokenize(s)) for s in NEW], length=batch.shape[1],
                          value=vocab.pad_id)
    probs = sg.evaluate(sg.softmax(m["logits"], axis=1), {m["ids"]: new_ids})
    print("New sentences (an unknown word becomes <unk>, id 1):")
    for s, ids, p in zip(NEW, new_ids, probs):
        tokens = vocab.decode(ids, skip_pad=True)
        print(f"  {s!r} → {tokens} → " + ", ".join(f"{t} {v:.3f}" for t, v in zip(TOPICS, p)))
    feeds_notes = {m["ids"]: sg.text.pad(notes_ids, length=batch.shape[1], value=vocab.pad_id)}
    path = sg.render(sg.draw(m["h"], values=feeds_notes), args.out / "embed_forward.svg")
    print(f"wrote {path} (the notes' two sentences through the trained embedding)")
    plot(args.out, E.value, vocab, topics)
    return {"corpus": CORPUS, "vocab": vocab, "E": np.array(E.value, copy=True), "start": start,
            "head_W": m["head"].W.value.copy(),
            "head_b": m["head"].b.value.copy(), "batch": batch, "labels": labels, "new_ids": new_ids}


def spread_labels(points: np.ndarray, gap: float = 0.06, rounds: int = 400) -> np.ndarray:
    """Label positions near ``points`` (scaled to the unit square) pushed apart until no two are
    closer than ``gap``, so that the words of a tight cluster stay readable."""
    low, span = points.min(axis=0), np.ptp(points, axis=0) + 1e-12
    unit = (points - low) / span
    pos = unit + np.array([0.012, 0.0])
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        d = pos[:, None, :] - pos[None, :, :]
        d[..., 0] *= 0.5  # words are wider than tall: need less room up and down than sideways
        dist = np.linalg.norm(d, axis=-1) + np.eye(len(pos))
        push = np.where((dist < gap)[..., None], d / dist[..., None] * (gap - dist)[..., None], 0.0).sum(axis=1)
        if not np.any(push):
            break
        pos += 0.5 * push + 1e-4 * rng.normal(size=pos.shape) * np.any(push != 0, axis=1, keepdims=True)
        pos += 0.05 * (unit + np.array([0.012, 0.0]) - pos)  # stay near the point
    return pos * span + low


def plot(out, E, vocab, topics):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 8.5))
    colors = dict(zip(TOPICS, ("tab:blue", "tab:orange", "tab:green")))
    labels = spread_labels(E)
    for i, w in enumerate(vocab.itos):
        color = colors.get(topics[w], "dimgray")
        special = w in vocab.specials
        ax.scatter(*E[i], color=color, marker="x" if special else "o", s=28)
        text = f"{w} (never trained)" if special else (repr(w) if not w.isalnum() else w)
        ax.plot([E[i, 0], labels[i, 0]], [E[i, 1], labels[i, 1]], color=color, lw=0.5, alpha=0.5)
        ax.text(labels[i, 0], labels[i, 1], text, fontsize=9, color=color, va="center")
    for topic, color in colors.items():
        ax.scatter([], [], color=color, label=f"used only in {topic} sentences")
    ax.scatter([], [], color="dimgray", label="used in several topics")
    ax.legend(loc="lower right", fontsize=9)
    ax.set_xlabel("embedding dim 1")
    ax.set_ylabel("embedding dim 2")
    ax.set_title("A 2-D embedding learned by guessing a sentence's topic from its mean word vector")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.2, y=0.12)
    print(f"wrote {savefig(fig, out, 'embedding_2d.png')}")


if __name__ == "__main__":
    main()
