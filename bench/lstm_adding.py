"""An LSTM learns the adding problem: the sum of the two marked numbers in a sequence of 30.

Each step of a sequence carries two features: a number drawn from U(0, 1) and a marker, 1 at two
positions (one in each half) and 0 elsewhere.  The target is the sum of the two marked numbers; a model
that ignores the sequence can do no better than predicting the mean, with mean squared error
Var(u₁ + u₂) = 1/6 ≈ 0.167.  An :class:`symgrad.nn.LSTM` (hidden 32) reads the sequence, a
:class:`symgrad.nn.Linear` maps its final hidden state to the prediction, and ``sg.compile_step`` trains
both with Adam on fresh batches; the loss is then measured on a held-out set against the baseline.

Run:  python bench/lstm_adding.py           (a few thousand steps, about a minute)
      python bench/lstm_adding.py --smoke   (a few steps, for the tests)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # small products: one thread is fastest
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import symgrad as sg  # noqa: E402


def adding_batch(rng: np.random.Generator, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences ``(batch, length, 2)`` (number, marker) and targets ``(batch, 1)``."""
    values = rng.uniform(0.0, 1.0, size=(batch, length))
    marks = np.zeros((batch, length))
    half = length // 2
    rows = np.arange(batch)
    first, second = rng.integers(0, half, size=batch), rng.integers(half, length, size=batch)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = np.stack([values, marks], axis=2)
    y = (values[rows, first] + values[rows, second])[:, None]
    return x, y


def build(hidden: int, seed: int):
    lstm = sg.nn.LSTM(2, hidden, seed=seed, name="lstm")
    head = sg.nn.Linear(hidden, 1, seed=seed + 1, name="head")
    x = sg.var("x", shape=("batch", "T", 2))
    y = sg.var("y", shape=("batch", 1))
    _, (h, _) = lstm(x)
    pred = head(h)
    loss = sg.losses.mse(pred, y)
    return lstm, head, x, y, loss


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a few short steps (for the tests)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--length", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.length, args.hidden, args.batch = 30, 8, 8, 16
    rng = np.random.default_rng(args.seed)
    _, _, x, y, loss = build(args.hidden, args.seed)
    step = sg.compile_step(loss, sg.optim.Adam(lr=args.lr), inputs=[x, y])
    test_x, test_y = adding_batch(np.random.default_rng(args.seed + 1), 1000, args.length)
    baseline = float(np.mean((test_y - test_y.mean()) ** 2))
    start = step.evaluate(test_x, test_y)
    t0 = time.perf_counter()
    for k in range(1, args.steps + 1):
        bx, by = adding_batch(rng, args.batch, args.length)
        step(bx, by)
        if k % max(1, args.steps // 10) == 0 or k == args.steps:
            print(f"step {k:5d}   test mse {step.evaluate(test_x, test_y):.5f}", flush=True)
    seconds = time.perf_counter() - t0
    final = step.evaluate(test_x, test_y)
    print(f"adding problem, T={args.length}: test mse {start:.4f} -> {final:.5f} after {args.steps} Adam steps "
          f"({seconds:.1f} s, {seconds / args.steps * 1e3:.1f} ms/step); predicting the mean: {baseline:.4f} "
          f"(ratio {final / baseline:.3f})")
    return {"start": start, "final": final, "baseline": baseline}


if __name__ == "__main__":
    main()
