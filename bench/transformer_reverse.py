"""A 2-layer transformer encoder learns to reverse (or sort) short digit sequences (issue 11's done-when).

The model, built from the public layers::

    tokens (batch, T) ─► Embedding(10, d) + PositionalEmbedding(T, d)
                      ─► TransformerEncoder(2 × TransformerEncoderLayer(d, heads, ff, dropout=0))
                      ─► Linear(d, 10) ─► softmax cross-entropy against the reversed sequence

Every output position must find the input position T−1−t: attention has to learn it from the
learned position table alone.  ``--task sort`` asks for the digits in ascending order instead
(each output position must count how many inputs are smaller).  Trained with ``sg.compile_step``
(Adam, float32 by default) and ``sg.fit``; the token and whole-sequence accuracy are measured on
fresh sequences.

Run:  python bench/transformer_reverse.py            (d_model 64, 4 heads, T = 8, 20000 sequences, 4 epochs:
                                                     token and sequence accuracy 1.0000 with seed 0, ~2 min)
      python bench/transformer_reverse.py --task sort --epochs 6    (also 1.0000 with seed 0)
      python bench/transformer_reverse.py --smoke    (a few seconds: tiny model, loss must fall)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import symgrad as sg  # noqa: E402

VOCAB = 10


def make_data(n: int, seq_len: int, rng: np.random.Generator, task: str = "reverse") -> tuple[np.ndarray, np.ndarray]:
    """``n`` random digit sequences and their reversals (or sorted copies), int64 ``(n, seq_len)`` each."""
    X = rng.integers(0, VOCAB, size=(n, seq_len))
    return X, (X[:, ::-1].copy() if task == "reverse" else np.sort(X, axis=1))


def build(seq_len: int, d_model: int, heads: int, ff: int, layers: int = 2, norm_first: bool = False,
          seed: int = 0):
    """The token var, the logits (batch, seq_len, 10) and the modules."""
    X = sg.var("X", shape=("batch", seq_len), dtype="int")
    emb = sg.nn.Embedding(VOCAB, d_model, seed=seed, name="emb")
    pos = sg.nn.PositionalEmbedding(seq_len, d_model, seed=seed + 1, name="pos")
    enc = sg.nn.TransformerEncoder(
        lambda i: sg.nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, norm_first=norm_first,
                                                seed=seed + 10 + i),
        num_layers=layers, name="enc")
    head = sg.nn.Linear(d_model, VOCAB, seed=seed + 2, name="head")
    logits = head(enc(pos(emb(X))))
    return X, logits, (emb, pos, enc, head)


def accuracy(f, X: np.ndarray, Y: np.ndarray, batch: int = 500) -> tuple[float, float]:
    """Token accuracy and whole-sequence accuracy of the compiled logits function ``f``."""
    pred = np.concatenate([np.argmax(f(X[i:i + batch]), axis=-1) for i in range(0, len(X), batch)])
    return float((pred == Y).mean()), float((pred == Y).all(axis=1).mean())


def train(seq_len=8, d_model=64, heads=4, ff=128, layers=2, n_train=20000, n_test=2000, epochs=4,
          batch_size=64, lr=2e-3, dtype="float32", norm_first=False, task="reverse", seed=0, verbose=1) -> dict:
    """Train and evaluate; returns the history's losses, accuracies and the time taken."""
    rng = np.random.default_rng(seed)
    Xtr, Ytr = make_data(n_train, seq_len, rng, task)
    Xte, Yte = make_data(n_test, seq_len, rng, task)
    X, logits, modules = build(seq_len, d_model, heads, ff, layers, norm_first, seed)
    Y = sg.var("Y", shape=("batch", seq_len), dtype="int")
    loss = sg.losses.cross_entropy(logits, Y)
    step = sg.compile_step(loss, sg.optim.Adam(lr=lr), inputs=[X, Y], dtype=dtype, seed=seed)
    f = sg.compile(logits, inputs=[X], dtype=dtype)
    start = time.perf_counter()
    history = sg.fit(step, {"X": Xtr, "Y": Ytr}, epochs=epochs, batch_size=batch_size, seed=seed,
                     verbose=2 if verbose > 1 else 0)
    seconds = time.perf_counter() - start
    token_acc, seq_acc = accuracy(f, Xte, Yte)
    params = sum(m.num_parameters() for m in modules)
    return {"loss": list(history["loss"]), "token_accuracy": token_acc, "sequence_accuracy": seq_acc,
            "seconds": seconds, "params": params}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a tiny, fast run (the test uses it)")
    ap.add_argument("--seq-len", type=int, default=8)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--norm-first", action="store_true")
    ap.add_argument("--task", default="reverse", choices=["reverse", "sort"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.smoke:
        settings = dict(seq_len=4, d_model=16, heads=2, ff=32, layers=2, n_train=512, n_test=256, epochs=3,
                        batch_size=32, lr=3e-3)
    else:
        settings = dict(seq_len=args.seq_len, d_model=args.d_model, heads=args.heads, ff=args.ff,
                        layers=args.layers, n_train=args.n_train, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr)
    result = train(**settings, dtype=args.dtype, norm_first=args.norm_first, task=args.task, seed=args.seed,
                   verbose=0 if args.smoke else 2)
    print(f"task {args.task}; settings: {settings}, dtype {args.dtype}, norm_first {args.norm_first}, "
          f"seed {args.seed}")
    print(f"{'epoch':>5} {'loss':>9}")
    for i, value in enumerate(result["loss"], 1):
        print(f"{i:>5} {value:>9.3g}")
    print(f"token accuracy {result['token_accuracy']:.4f}, whole-sequence accuracy "
          f"{result['sequence_accuracy']:.4f} on fresh sequences; {result['params']} parameters; "
          f"training took {result['seconds']:.1f} s")
    return result


if __name__ == "__main__":
    main()
