"""Backpropagation through time for a tanh RNN: symgrad's compiled training step against hand-written
NumPy (and PyTorch's ``nn.RNN`` when it can be imported).

The problem (issue 11): T = 50 steps, batch 32, input 32, hidden 64, float64;
``h_t = tanh(x_t W_ih + b_ih + b_hh + h_{t−1} W_hh)`` from h_0 = 0, loss ``½ Σ_t ‖h_t − y_t‖²``, one SGD
update of the four parameters.  All implementations start from the same weights and batch, and their
losses and gradients are compared (the ``agree`` column: largest difference of any gradient entry).

* symgrad: :class:`symgrad.nn.RNN` and ``sg.compile_step`` (the forward loop and the reverse scan of the
  gradient compiled to two Python ``for`` loops; the input projection of all steps before the loop).
* symgrad, ``backend="numba"`` (when Numba is installed): the same loops, each body's elementwise ops one
  Numba kernel (``tanh(u_t + h W_hh)`` forward, ``(δh + δy_t) ⊙ (1 − h_t²)`` backward) whose tanh is
  vectorised; the products stay NumPy's BLAS calls.  Compiled (and its kernels jitted) before timing.
* NumPy: written by hand as one would: the input projection ``X W_ih + b`` of all steps in one product
  before the loop, hidden states written in place into one preallocated array, the backward loop
  computing δz_t in place into a preallocated array, the weight gradients as single products over all
  steps after it (``Σ_t h_{t−1}ᵀ δz_t`` as one GEMM), the update in place.
* PyTorch: ``nn.RNN(batch_first=True)`` with ``loss.backward()`` and ``torch.optim.SGD``, in a process of
  its own (its thread pool would slow NumPy's BLAS down), measured against the same NumPy code there.
* JAX (when importable): the same recurrence as ``lax.scan``, ``jax.value_and_grad`` and the update in one
  jitted function, float64, XLA on one thread, in a process of its own, measured against NumPy there.

Times are medians over interleaved rounds of the process's CPU time (``time.process_time``: steadier
than the wall clock on a shared machine), one BLAS thread by default (``--threads``); ``--clock wall``
measures elapsed time.

Run:  python bench/rnn_bptt.py              (about a minute)
      python bench/rnn_bptt.py --quick      (smoke test: a few rounds, no PyTorch)
      python bench/rnn_bptt.py --torch-python /path/to/python
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
T, BATCH, IN, HID = 50, 32, 32, 64
LR = 1e-3


def _threads(n: int) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def make_problem(seed: int = 0):
    import numpy as np
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(HID)
    weights = [rng.uniform(-k, k, size=s) for s in ((IN, HID), (HID, HID), (HID,), (HID,))]
    X = rng.normal(size=(BATCH, T, IN))
    Y = rng.normal(size=(BATCH, T, HID)) * 0.5
    return weights, X, Y


# ------------------------------------------------------------------------------- hand-written NumPy
def numpy_step(W_ih, W_hh, b_ih, b_hh, X, Y, work):
    """One forward + BPTT + SGD step, in place; ``work`` holds the preallocated arrays."""
    import numpy as np
    Hs, dZ, U = work["H"], work["dZ"], work["U"]
    Xt = X.transpose(1, 0, 2)  # (T, batch, in)
    np.matmul(Xt, W_ih, out=U)
    U += b_ih
    U += b_hh
    Hs[0] = 0.0
    for t in range(T):
        z = np.matmul(Hs[t], W_hh, out=Hs[t + 1])
        z += U[t]
        np.tanh(z, out=z)
    D = Hs[1:] - Y.transpose(1, 0, 2)
    loss = 0.5 * float(np.vdot(D, D))
    dh = work["dh"]
    dh[...] = 0.0
    for t in range(T - 1, -1, -1):
        dz = dZ[t]
        np.add(dh, D[t], out=dz)  # δh_t, then δz_t = δh_t ⊙ (1 − h_t²)
        h = Hs[t + 1]
        sq = np.multiply(h, h, out=work["sq"])
        np.subtract(1.0, sq, out=sq)
        dz *= sq
        np.matmul(dz, W_hh.T, out=dh)
    flat = dZ.reshape(T * BATCH, HID)
    g_ih = Xt.reshape(T * BATCH, IN).T @ flat
    g_hh = Hs[:-1].reshape(T * BATCH, HID).T @ flat
    g_b = flat.sum(axis=0)
    W_ih -= LR * g_ih
    W_hh -= LR * g_hh
    b_ih -= LR * g_b
    b_hh -= LR * g_b
    return loss, (g_ih, g_hh, g_b, g_b)


def numpy_work():
    import numpy as np
    return {"H": np.empty((T + 1, BATCH, HID)), "dZ": np.empty((T, BATCH, HID)), "U": np.empty((T, BATCH, HID)),
            "dh": np.empty((BATCH, HID)), "sq": np.empty((BATCH, HID))}


# ----------------------------------------------------------------------------------------- symgrad
def symgrad_step(weights, grads_too=False, backend="numpy"):
    import numpy as np
    sys.path.insert(0, ROOT)
    import symgrad as sg
    rnn = sg.nn.RNN(IN, HID, name="rnn")
    for p, w in zip((rnn.W_ih, rnn.W_hh, rnn.b_ih, rnn.b_hh), weights):
        p.value = w.copy()
    x, y = sg.var("x", shape=(BATCH, T, IN)), sg.var("y", shape=(BATCH, T, HID))
    out, _ = rnn(x, sg.const(np.zeros((BATCH, HID))))
    d = out - y
    loss = 0.5 * sg.sum(d ** 2)
    params = [rnn.W_ih, rnn.W_hh, rnn.b_ih, rnn.b_hh]
    step = sg.compile_step(loss, sg.optim.SGD(lr=LR), inputs=[x, y], params=params, backend=backend)
    grads = sg.compile(sg.grad(loss, params), [x, y]) if grads_too else None
    return step, grads, params


# ------------------------------------------------------------------------------------------ timing
def clock(kind: str):
    return time.process_time if kind == "cpu" else time.perf_counter


def rounds(fns: dict, n: int, reps: int, kind: str, raw: dict | None = None) -> dict:
    """Median seconds per call of each function, over ``n`` interleaved rounds of ``reps`` calls (each
    round's times also into ``raw`` when given)."""
    now = clock(kind)
    times = {k: [] for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            t0 = now()
            for _ in range(reps):
                fn()
            times[k].append((now() - t0) / reps)
    if raw is not None:
        raw.update(times)
    return {k: statistics.median(v) for k, v in times.items()}


def torch_times(n: int, reps: int, kind: str) -> dict:
    """PyTorch nn.RNN and the NumPy step, measured in this process (run as a subprocess)."""
    import numpy as np
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    weights, X, Y = make_problem()
    rnn = torch.nn.RNN(IN, HID, batch_first=True).double()
    with torch.no_grad():
        for t_name, w in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), weights):
            getattr(rnn, t_name).copy_(torch.tensor(w.T.copy() if w.ndim == 2 else w))
    opt = torch.optim.SGD(rnn.parameters(), lr=LR)
    xt, yt, h0 = torch.tensor(X), torch.tensor(Y), torch.zeros(1, BATCH, HID, dtype=torch.float64)

    def torch_step():
        opt.zero_grad()
        out, _ = rnn(xt, h0)
        loss = 0.5 * ((out - yt) ** 2).sum()
        loss.backward()
        opt.step()
        return float(loss)
    first = torch_step()
    ws = [w.copy() for w in weights]
    work = numpy_work()
    np_first, _ = numpy_step(*[w.copy() for w in weights], X, Y, work)
    got = rounds({"torch": torch_step, "numpy": lambda: numpy_step(*ws, X, Y, work)}, n, reps, kind)
    got["agree"] = abs(first - np_first)
    return got


def jax_times(n: int, reps: int, kind: str) -> dict:
    """JAX: the same RNN as ``lax.scan``, ``jax.value_and_grad`` and the SGD update in one jitted function
    (float64), and the NumPy step, measured in this process (run as a subprocess)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    weights, X, Y = make_problem()

    def loss_fn(params, X, Y):
        W_ih, W_hh, b_ih, b_hh = params
        U = jnp.einsum("bti,ih->tbh", X, W_ih) + b_ih + b_hh

        def cell(h, u):
            h = jnp.tanh(u + h @ W_hh)
            return h, h
        _, Hs = jax.lax.scan(cell, jnp.zeros((BATCH, HID)), U)
        return 0.5 * jnp.sum((Hs - jnp.transpose(Y, (1, 0, 2))) ** 2)

    @jax.jit
    def jax_step(params, X, Y):
        loss, g = jax.value_and_grad(loss_fn)(params, X, Y)
        return loss, tuple(p - LR * d for p, d in zip(params, g))

    state = {"p": tuple(jnp.asarray(w) for w in weights)}
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    t0 = time.perf_counter()
    loss0, _ = jax_step(state["p"], Xj, Yj)
    compile_s = time.perf_counter() - t0

    def run():
        loss, state["p"] = jax_step(state["p"], Xj, Yj)
        return float(loss)
    ws = [w.copy() for w in weights]
    work = numpy_work()
    np_first, _ = numpy_step(*[w.copy() for w in weights], X, Y, work)
    got = rounds({"jax": run, "numpy": lambda: numpy_step(*ws, X, Y, work)}, n, reps, kind)
    got["agree"] = abs(float(loss0) - np_first)
    got["compile"] = compile_s
    return got


def _worker(python: str, flag: str, n: int, args) -> tuple[dict | None, str]:
    """Run this script as ``--torch-worker`` / ``--jax-worker`` in a process of its own: its times, or why not."""
    env = dict(os.environ, XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    cmd = [python, os.path.abspath(__file__), flag, "--rounds", str(n), "--threads", str(args.threads),
           "--clock", args.clock]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env if flag == "--jax-worker" else None)
    if res.returncode == 0 and res.stdout.strip():
        return json.loads(res.stdout.strip().splitlines()[-1]), ""
    return None, (res.stderr or "no output").strip().splitlines()[-1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: 3 rounds, no PyTorch")
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--torch-python", default=None, help="a Python that has torch (default: this one)")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--jax-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    _threads(args.threads)
    n, reps = (3, 2) if args.quick else (args.rounds, 10)
    if args.torch_worker:
        print(json.dumps(torch_times(n, reps, args.clock)))
        return
    if args.jax_worker:
        print(json.dumps(jax_times(n, reps, args.clock)))
        return
    import numpy as np
    weights, X, Y = make_problem()
    step, grads, params = symgrad_step(weights, grads_too=True)
    work = numpy_work()
    ref_loss, ref_grads = numpy_step(*[w.copy() for w in weights], X, Y, work)
    ours = grads(X, Y)
    agree = max(float(np.abs(a - b).max()) for a, b in zip(ours, ref_grads))
    first = step(X, Y)
    ws = [w.copy() for w in weights]
    fns = {"symgrad": lambda: step(X, Y), "numpy": lambda: numpy_step(*ws, X, Y, work)}
    try:
        nb_step, _, _ = symgrad_step(weights, backend="numba")
        nb_first = nb_step(X, Y)
        fns["numba"] = lambda: nb_step(X, Y)
    except ImportError as e:  # symgrad's DependencyError: the extra is not installed
        nb_why = str(e).splitlines()[0]
    raw: dict = {}
    times = rounds(fns, n, reps, args.clock, raw)
    # the ratio within each round (both measured under the same load), then its median: steadier than the
    # ratio of the two medians on a shared machine
    paired = statistics.median(s / h for s, h in zip(raw["symgrad"], raw["numpy"]))
    print(f"tanh RNN, T={T}, batch {BATCH}, input {IN}, hidden {HID}, float64: forward + BPTT + SGD step "
          f"({args.clock} time, median of {n} rounds x {reps}, {args.threads} BLAS thread(s))")
    print(f"{'':10s}{'ms/step':>10s}{'x NumPy':>10s}  agree")
    print(f"{'NumPy':10s}{times['numpy'] * 1e3:10.3f}{1.0:10.2f}  (hand-written BPTT)")
    print(f"{'symgrad':10s}{times['symgrad'] * 1e3:10.3f}{times['symgrad'] / times['numpy']:10.2f}  "
          f"loss {abs(first - ref_loss):.1e}, gradients {agree:.1e}; paired per-round ratio {paired:.3f}")
    if "numba" in times:
        nb_paired = statistics.median(s / h for s, h in zip(raw["numba"], raw["numpy"]))
        print(f"{'sg numba':10s}{times['numba'] * 1e3:10.3f}{times['numba'] / times['numpy']:10.2f}  "
              f"loss {abs(nb_first - ref_loss):.1e}; paired per-round ratio {nb_paired:.3f} (backend='numba')")
    else:
        print(f"{'sg numba':10s}{'-':>10s}{'-':>10s}  not measured ({nb_why})")
    if not args.quick:
        tt, why = _worker(args.torch_python or sys.executable, "--torch-worker", n, args)
        if tt is not None:
            ratio = tt["torch"] / tt["numpy"]
            print(f"{'PyTorch':10s}{ratio * times['numpy'] * 1e3:10.3f}{ratio:10.2f}  loss {tt['agree']:.1e} "
                  f"(nn.RNN, timed against NumPy in its own process: {tt['numpy'] * 1e3:.3f} ms there)")
        else:
            print(f"{'PyTorch':10s}{'-':>10s}{'-':>10s}  not measured ({why})")
        jt, why = _worker(sys.executable, "--jax-worker", n, args)
        if jt is not None:
            ratio = jt["jax"] / jt["numpy"]
            print(f"{'JAX':10s}{ratio * times['numpy'] * 1e3:10.3f}{ratio:10.2f}  loss {jt['agree']:.1e} "
                  f"(lax.scan + value_and_grad + SGD in one jit, one thread, compiled in {jt['compile']:.2f} s; "
                  f"NumPy there: {jt['numpy'] * 1e3:.3f} ms)")
        else:
            print(f"{'JAX':10s}{'-':>10s}{'-':>10s}  not measured ({why})")


if __name__ == "__main__":
    main()
