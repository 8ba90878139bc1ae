"""One training step of a LeNet-sized CNN: symgrad's compiled step against hand-written NumPy im2col
(and PyTorch CPU when installed).

The net, on 28×28 single-channel inputs, batch 64::

    conv 1→6, 5×5 → ReLU → max pool 2 → conv 6→16, 5×5 → ReLU → max pool 2 → flatten (256)
    → linear 256→120 → ReLU → linear 120→10 → softmax cross-entropy

with one Adam update (PyTorch's definition, lr 1e-3), in float32 and float64.  All implementations
start from the same weights and batch; their first losses are compared (the ``agree`` column).

* symgrad: ``sg.conv2d``, ``sg.max_pool2d`` and the update compiled by ``sg.compile_step``.
* NumPy: written by hand in the usual fast style: channels-last activations, im2col as a strided
  view copied once, one GEMM per convolution, pooling by reshape, col2im as one add per kernel offset,
  Adam in place.
* PyTorch CPU: ``F.conv2d``/``F.max_pool2d``/``F.linear`` and ``torch.optim.Adam``, in a process of its
  own (its thread pool would otherwise slow NumPy's BLAS down), measured against the same NumPy code
  there; its ratio to symgrad goes through NumPy's time in each process.

Times are medians over interleaved rounds (each implementation in turn, so background load hits
them alike), by default of the process's CPU time (``time.process_time``: steadier than the wall clock
on a shared machine, where time spent descheduled is not counted; with several BLAS threads it sums
them, so compare with ``--threads 1``); ``--clock wall`` measures elapsed time.  The spread column is the
interquartile range of symgrad's step times, relative to their median.

Run:  python bench/conv_step.py            (~1 minute on a quiet machine)
      python bench/conv_step.py --quick    (smoke test: batch 8, 2 rounds, float64, no PyTorch)
      python bench/conv_step.py --torch-python /path/to/python   (a Python that has torch)
      python bench/conv_step.py --threads 1   (one BLAS/PyTorch thread each: steadier on a busy machine,
                                               where idle-waiting thread pools slow everyone down)
      python bench/conv_step.py --clock wall  (elapsed time instead of CPU time)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
SHAPES = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (256, 120), (120,), (120, 10), (10,)]


# ====================================================================== data
def make_problem(batch, seed=0):
    """Weights drawn as PyTorch's defaults (U(±1/√fan_in)), linear weights as ``x @ W``, and one batch."""
    rng = np.random.default_rng(seed)
    weights = []
    for shape in SHAPES:
        fan_in = math.prod(shape[1:]) if len(shape) == 4 else shape[0] if len(shape) == 2 else None
        if fan_in is None:  # a bias: the fan-in of the weight before it
            prev = weights[-1].shape
            fan_in = math.prod(prev[1:]) if len(prev) == 4 else prev[0]
        bound = 1.0 / math.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, size=shape))
    X = rng.normal(size=(batch, 1, 28, 28))
    Y = rng.integers(0, 10, size=batch)
    return weights, X, Y


# ====================================================================== symgrad
def symgrad_step(weights, dtype):
    sys.path.insert(0, ROOT)
    import symgrad as sg
    names = ["conv1.W", "conv1.b", "conv2.W", "conv2.b", "fc1.W", "fc1.b", "fc2.W", "fc2.b"]
    W1, b1, W2, b2, F1, c1, F2, c2 = (sg.param(n, np.array(w, dtype=dtype)) for n, w in zip(names, weights))
    X = sg.var("X", shape=("batch", 1, 28, 28))
    Y = sg.var("Y", shape=("batch",), dtype="int")
    h = sg.max_pool2d(sg.relu(sg.conv2d(X, W1, b1)), 2)
    h = sg.max_pool2d(sg.relu(sg.conv2d(h, W2, b2)), 2)
    h = sg.reshape(h, ("batch", 256))
    logits = sg.relu(h @ F1 + c1) @ F2 + c2
    loss = sg.losses.cross_entropy(logits, Y)
    t0 = time.perf_counter()
    step = sg.compile_step(loss, sg.optim.Adam(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS), inputs=[X, Y], dtype=dtype)
    return step, time.perf_counter() - t0


# ====================================================================== hand-written NumPy
def _im2col(x, k):
    """Channels-last ``x`` (N, H, W, C) → rows (N·Ho·Wo, C·k·k), one copy of a strided view."""
    n, h, w, c = x.shape
    win = sliding_window_view(x, (k, k), axis=(1, 2))  # (N, Ho, Wo, C, k, k)
    return win.reshape(n * (h - k + 1) * (w - k + 1), c * k * k)


def _col2im(cols, shape, k):
    """The adjoint of _im2col: rows (N·Ho·Wo, C·k·k) added back onto (N, H, W, C), one add per kernel offset."""
    n, h, w, c = shape
    ho, wo = h - k + 1, w - k + 1
    parts = cols.reshape(n, ho, wo, c, k, k)
    out = np.zeros(shape, dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            out[:, i:i + ho, j:j + wo, :] += parts[:, :, :, :, i, j]
    return out


def _pool(a):
    """2×2 max pooling of channels-last ``a`` by reshape, and the mask of each window's maxima."""
    n, h, w, c = a.shape
    r = a.reshape(n, h // 2, 2, w // 2, 2, c)
    p = r.max(axis=(2, 4))
    mask = r == p[:, :, None, :, None, :]
    return p, mask


class NumpyLeNet:
    """Forward, backprop and Adam written by hand."""

    def __init__(self, weights, dtype):
        self.p = [np.array(w, dtype=dtype) for w in weights]
        self.m = [np.zeros_like(w) for w in self.p]
        self.v = [np.zeros_like(w) for w in self.p]
        self.dtype, self.t = dtype, 0

    def __call__(self, X, Y):
        W1, b1, W2, b2, F1, c1, F2, c2 = self.p
        X = np.asarray(X, dtype=self.dtype)
        n = X.shape[0]
        x = X.transpose(0, 2, 3, 1)                                   # (N, 28, 28, 1)
        cols1 = _im2col(x, 5)                                         # (N·576, 25)
        z1 = cols1 @ W1.reshape(6, -1).T
        z1 += b1
        a1 = np.maximum(z1, 0.0, out=z1).reshape(n, 24, 24, 6)
        p1, mask1 = _pool(a1)                                         # (N, 12, 12, 6)
        cols2 = _im2col(p1, 5)                                        # (N·64, 150)
        z2 = cols2 @ W2.reshape(16, -1).T
        z2 += b2
        a2 = np.maximum(z2, 0.0, out=z2).reshape(n, 8, 8, 16)
        p2, mask2 = _pool(a2)                                         # (N, 4, 4, 16)
        h = p2.transpose(0, 3, 1, 2).reshape(n, 256)                  # flattened as (C, H, W)
        z3 = h @ F1
        z3 += c1
        a3 = np.maximum(z3, 0.0, out=z3)
        out = a3 @ F2
        out += c2
        shifted = out - out.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(np.mean(np.log(s[:, 0]) - shifted[rows, Y]))
        d = e / s
        d[rows, Y] -= 1.0
        d /= n
        g = [None] * 8
        g[6], g[7] = a3.T @ d, d.sum(axis=0)
        d = d @ F2.T
        d *= a3 > 0
        g[4], g[5] = h.T @ d, d.sum(axis=0)
        d = (d @ F1.T).reshape(n, 16, 4, 4).transpose(0, 2, 3, 1)     # back to channels-last
        d2 = mask2 * d[:, :, None, :, None, :]
        d2 = d2.reshape(n * 64, 16)
        d2 *= a2.reshape(n * 64, 16) > 0
        g[2], g[3] = (d2.T @ cols2).reshape(16, 6, 5, 5), d2.sum(axis=0)
        d = _col2im(d2 @ W2.reshape(16, -1), p1.shape, 5)             # (N, 12, 12, 6)
        d1 = (mask1 * d[:, :, None, :, None, :]).reshape(n * 576, 6)
        d1 *= a1.reshape(n * 576, 6) > 0
        g[0], g[1] = (d1.T @ cols1).reshape(6, 1, 5, 5), d1.sum(axis=0)
        self.t += 1
        bc1, bc2 = 1.0 - BETA1 ** self.t, 1.0 - BETA2 ** self.t
        step_size, root_bc2 = LR / bc1, math.sqrt(bc2)
        for p, gr, m, v in zip(self.p, g, self.m, self.v):
            m *= BETA1
            m += (1.0 - BETA1) * gr
            v *= BETA2
            gr = gr * gr
            gr *= 1.0 - BETA2
            v += gr
            denom = np.sqrt(v)
            denom /= root_bc2
            denom += EPS
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom
        return loss


# ====================================================================== PyTorch
def torch_step(weights, dtype):
    import torch
    import torch.nn.functional as F
    tdt = torch.float32 if dtype == "float32" else torch.float64
    W1, b1, W2, b2, F1, c1, F2, c2 = ps = [torch.tensor(np.array(w, dtype=dtype), dtype=tdt, requires_grad=True)
                                           for w in weights]
    opt = torch.optim.Adam(ps, lr=LR, betas=(BETA1, BETA2), eps=EPS)

    def step(X, Y):
        x, y = torch.from_numpy(np.asarray(X, dtype=dtype)), torch.from_numpy(Y)
        opt.zero_grad(set_to_none=True)
        h = F.max_pool2d(F.relu(F.conv2d(x, W1, b1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, W2, b2)), 2)
        logits = F.relu(h.flatten(1) @ F1 + c1) @ F2 + c2
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


# ====================================================================== timing
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def _measure(steps: dict, X, Y, rounds: int, clock: str = "cpu") -> tuple[dict, dict, dict]:
    """Median seconds per step of each, over interleaved rounds; each one's first loss; and each one's
    spread (interquartile range over the median)."""
    tick = CLOCKS[clock]
    first = {name: fn(X, Y) for name, fn in steps.items()}
    times: dict = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            t0 = tick()
            fn(X, Y)
            times[name].append(tick() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    spread = {}
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
        spread[name] = (q[2] - q[0]) / med[name] if med[name] else 0.0
    return med, first, spread


def worker_torch(batch, dtype, rounds, threads, clock) -> dict:
    if threads:
        import torch
        torch.set_num_threads(threads)
    weights, X, Y = make_problem(batch)
    med, first, spread = _measure({"torch": torch_step(weights, dtype), "numpy": NumpyLeNet(weights, dtype)}, X, Y,
                                  rounds, clock)
    return {"time": med, "loss": first, "spread": spread}


def run_torch(python, batch, dtype, rounds, threads, clock):
    """The PyTorch worker in a process of its own; None when that Python has no torch."""
    cmd = [python, os.path.abspath(__file__), "--worker", "torch", "--batch", str(batch), "--dtype", dtype,
           "--rounds", str(rounds), "--clock", clock] + (["--threads", str(threads)] if threads else [])
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        if "No module named 'torch'" not in res.stderr:
            print(f"  (PyTorch worker failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else '?'})")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: batch 8, 2 rounds, float64, no PyTorch")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dtype", choices=["float32", "float64"], default=None)
    ap.add_argument("--torch-python", default=sys.executable, help="the Python that runs the PyTorch worker")
    ap.add_argument("--threads", type=int, default=None, help="BLAS and PyTorch threads (default: theirs)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                    help="cpu: the process's CPU time (default); wall: elapsed time")
    ap.add_argument("--worker", choices=["torch"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads and os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads) and argv is None:
        # thread pools read these when NumPy is imported: start again with them set
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
                   MKL_NUM_THREADS=str(args.threads))
        return subprocess.run([sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env=env).returncode
    if args.worker:
        print(json.dumps(worker_torch(args.batch, args.dtype, args.rounds, args.threads, args.clock)))
        return 0
    batch, rounds = (8, 2) if args.quick else (args.batch, args.rounds)
    dtypes = [args.dtype] if args.dtype else (["float64"] if args.quick else ["float32", "float64"])
    threads = f", {args.threads} thread(s) each" if args.threads else ""
    print(f"LeNet step (conv 1→6 5×5, pool, conv 6→16 5×5, pool, 256→120→10, Adam), batch {batch}, "
          f"median {args.clock} time of {rounds} interleaved rounds{threads}")
    header = (f"{'dtype':8} {'symgrad ms':>10} {'spread':>6} {'numpy ms':>9} {'torch ms':>9} {'sg/numpy':>9} "
              f"{'sg/torch':>9} {'compile s':>9}  agree")
    rows, torch_seen = [], False
    for dtype in dtypes:
        weights, X, Y = make_problem(batch)
        step, compile_s = symgrad_step(weights, dtype)
        med, first, spread = _measure({"symgrad": step, "numpy": NumpyLeNet(weights, dtype)}, X, Y, rounds, args.clock)
        tr = None if args.quick else run_torch(args.torch_python, batch, dtype, rounds, args.threads, args.clock)
        tol = 1e-4 if dtype == "float32" else 1e-9
        losses = [first["symgrad"], first["numpy"]] + ([tr["loss"]["torch"]] if tr else [])
        agree = "yes" if max(losses) - min(losses) <= tol * max(1.0, abs(losses[0])) else f"NO {losses}"
        sg_ms, np_ms = med["symgrad"] * 1e3, med["numpy"] * 1e3
        if tr:
            torch_seen = True
            torch_ms = tr["time"]["torch"] * 1e3
            # NumPy's time in each process carries the ratio across (the two processes ran at different times)
            vs_torch = (med["symgrad"] / med["numpy"]) / (tr["time"]["torch"] / tr["time"]["numpy"])
            t_text, r_text = f"{torch_ms:9.2f}", f"{vs_torch:9.2f}"
        else:
            t_text, r_text = f"{'-':>9}", f"{'-':>9}"
        rows.append(f"{dtype:8} {sg_ms:10.2f} {spread['symgrad']:6.0%} {np_ms:9.2f} {t_text} "
                    f"{sg_ms / np_ms:9.2f} {r_text} "
                    f"{compile_s:9.2f}  {agree}")
    print(header)
    for r in rows:
        print(r)
    if not args.quick and not torch_seen:
        print(f"PyTorch: not importable by {args.torch_python} (pass --torch-python)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
