"""How gradient graphs and their formulas grow with depth.

A chain of L scalar sigmoid layers, h_k = σ(w_k h_{k-1} + b_k) with every
z_k and h_k named, and an MSE loss.  For each depth the table shows the
forward and backward node counts, the time of ``sg.grad`` (all 2L
params), the time of ``sg.formula(dw1, keep="named")`` (the gradient of
the first weight, written in the named intermediates) and, for small L,
the time SymPy's own ``sympy.diff`` takes on the closed form of the loss
("—" where it was not run, "> Ns" where it ran out of time).  "formula
ops" is the size (sympy.count_ops) of the printed gradient.

Run: ``python3 bench/grad_scaling.py`` (``--depths 10 100 1000``,
``--diff-depths 5 10 20 100``, ``--diff-timeout 20``).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sympy  # noqa: E402

import symgrad as sg  # noqa: E402


def chain(depth: int):
    """Loss, params and first weight of a depth-``depth`` sigmoid chain."""
    x, y = sg.var("x"), sg.var("y")
    h, params = x, []
    for k in range(1, depth + 1):
        w, b = sg.param(f"w{k}", 0.5), sg.param(f"b{k}", 0.1)
        params += [w, b]
        z = (w * h + b).named(f"z{k}")
        h = sg.sigmoid(z).named(f"h{k}")
    return sg.losses.mse(h, y), params


def counts(loss, grads) -> tuple[int, int]:
    forward = sg.Graph(loss)
    both = sg.Graph(list(grads))
    backward = sum(1 for n in both.order if n not in forward)
    return len(forward), backward


def measure(depth: int) -> dict:
    loss, params = chain(depth)
    t0 = time.perf_counter()
    grads = sg.grad(loss, params)
    t_grad = time.perf_counter() - t0
    t0 = time.perf_counter()
    f = sg.formula(grads[0], keep="named")
    t_formula = time.perf_counter() - t0
    n_fwd, n_bwd = counts(loss, grads)
    return {"L": depth, "forward": n_fwd, "backward": n_bwd, "grad": t_grad, "formula": t_formula,
            "formula_ops": sympy.count_ops(f)}


def _sympy_diff(depth: int, queue) -> None:
    loss, params = chain(depth)
    closed = sg.formula(loss)
    w1 = sympy.Symbol("w1", real=True)
    t0 = time.perf_counter()
    try:
        sympy.diff(closed, w1)
    except RecursionError:  # SymPy differentiates recursively, one frame per nesting level
        queue.put("RecursionError")
        return
    queue.put(f"{time.perf_counter() - t0:.4f}")


def sympy_diff_time(depth: int, timeout: float) -> str:
    """Seconds for sympy.diff of the closed-form loss wrt w1, as text ("> Ns" past ``timeout``)."""
    queue: mp.Queue = mp.Queue()
    proc = mp.Process(target=_sympy_diff, args=(depth, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return f"> {timeout:g}s"
    return queue.get() if not queue.empty() else "failed"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", type=int, nargs="+", default=[5, 10, 20, 100, 1000])
    ap.add_argument("--diff-depths", type=int, nargs="+", default=[5, 10, 20, 100])
    ap.add_argument("--diff-timeout", type=float, default=20.0)
    args = ap.parse_args(argv)
    head = (f"{'L':>5} {'fwd nodes':>9} {'bwd nodes':>9} {'bwd/fwd':>7} {'grad s':>8} "
            f"{'formula s':>9} {'grad+formula s':>14} {'formula ops':>11} {'sympy.diff s':>12}")
    print(head)
    print("-" * len(head))
    for depth in args.depths:
        r = measure(depth)
        diff = sympy_diff_time(depth, args.diff_timeout) if depth in args.diff_depths else "—"
        diff_text = f"{diff:>12}"
        print(f"{r['L']:>5} {r['forward']:>9} {r['backward']:>9} {r['backward'] / r['forward']:>7.2f} "
              f"{r['grad']:>8.4f} {r['formula']:>9.4f} {r['grad'] + r['formula']:>14.4f} "
              f"{r['formula_ops']:>11} {diff_text}")


if __name__ == "__main__":
    main()
