"""symgrad's backends side by side: one training step, as a ratio to hand-written NumPy in the same run.

Rows (each in float64 and float32 where it says so):

* tiny MLP 2-16-16-1, sigmoid, MSE, Adam, batch 32 (f64, f32)      -- bench/mlp_step.py's nets and NumPy;
* big MLP 784-256-256-10, ReLU, cross-entropy, Adam, batch 128 (f64, f32);
* tanh RNN, T = 50, batch 32, in 32, hidden 64, forward + BPTT + SGD -- bench/rnn_bptt.py's problem and NumPy;
* LeNet-sized CNN, Adam, batch 64 (f32)                             -- bench/conv_step.py's net and NumPy.

Columns: hand-written NumPy (ms), then each symgrad backend (``numpy``, ``numba``, ``jax`` when
``backend="jax"`` works here, and ``jax-dev``: the JAX backend with ``sync=False``) and PyTorch / JAX written natively where they are installed, as ratios
to NumPy (lower is faster); then a table of compile times: the NumPy backend's, and for Numba and JAX
``cold`` (first ``sg.compile_step`` + first step of the row in a fresh process, with empty on-disk
caches: code generation, Numba compiling its kernels and whole-step core, XLA compiling the step; the
median of ``--cold-runs`` such processes),
``cached`` (the same again in a fresh process that finds them in ``$SYMGRAD_CACHE``) and ``import``
(importing Numba / JAX, timed before both).  Step times are medians of interleaved rounds of the
process's CPU time.

Run:  python bench/backends.py               (a few minutes)
      python bench/backends.py --quick       (smoke test: small sizes, 2 rounds)
      python bench/backends.py --threads 2   (BLAS threads; default 1)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def _set_threads(n: int) -> None:
    """BLAS threads: env vars before NumPy is imported (the workers start with them), threadpoolctl if there."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)


# ============================================================================ the problems
def _imports():
    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    import numpy as np
    import symgrad as sg
    import mlp_step
    return np, sg, mlp_step


def mlp_row(label, sizes, batch, kind, dtype, backends, frameworks):
    """``{name: callable()}`` for one MLP row, plus the compile seconds of each symgrad backend."""
    np, sg, mlp_step = _imports()
    weights, X, Y = mlp_step.make_problem(sizes, batch, kind)
    if dtype == "float32":
        X = X.astype(np.float32)
        Y = Y if kind == "ce" else Y.astype(np.float32)
    ref = mlp_step.NumpyMLP(weights, kind, dtype)
    fns = {"numpy": lambda: ref(X, Y)}
    compile_s = {}
    for backend in backends:
        model = sg.nn.MLP(sizes, activation="relu" if kind == "ce" else "sigmoid", seed=0)
        for p, w in zip(model.parameters(), weights):
            p.value = np.array(w, dtype=dtype)
        xv = sg.var("X", shape=("batch", sizes[0]))
        if kind == "ce":
            yv = sg.var("Y", shape=("batch",), dtype="int")
            loss = sg.losses.cross_entropy(model(xv), yv)
        else:
            yv = sg.var("Y", shape=("batch", sizes[-1]))
            loss = sg.losses.mse(model(xv), yv)
        opt = sg.optim.Adam(lr=mlp_step.LR, beta1=mlp_step.BETA1, beta2=mlp_step.BETA2, eps=mlp_step.EPS)
        step = _compile_timed(sg, compile_s, backend, lambda b=backend: sg.compile_step(
            loss, opt, inputs=[xv, yv], dtype=dtype, **_kw(b)), (X, Y))
        if step is not None:
            fns[f"sg-{backend}"] = (lambda s=step: _call(s, X, Y))
    for name, make in (("torch", mlp_step.torch_step), ("jax-native", mlp_step.jax_step)):
        if name in frameworks:
            fn = _optional(lambda m=make: m(weights, kind, dtype, X, Y))
            if fn is not None:
                fns[name] = (lambda f=fn: f(X, Y))
    return fns, compile_s


def rnn_row(backends, frameworks):
    np, sg, _ = _imports()
    import rnn_bptt as rb
    weights, X, Y = rb.make_problem()
    ws = [w.copy() for w in weights]
    work = rb.numpy_work()
    fns = {"numpy": lambda: rb.numpy_step(*ws, X, Y, work)}
    compile_s = {}
    for backend in backends:
        rnn = sg.nn.RNN(rb.IN, rb.HID, name="rnn")
        for p, w in zip((rnn.W_ih, rnn.W_hh, rnn.b_ih, rnn.b_hh), weights):
            p.value = w.copy()
        x, y = sg.var("x", shape=(rb.BATCH, rb.T, rb.IN)), sg.var("y", shape=(rb.BATCH, rb.T, rb.HID))
        out, _ = rnn(x, sg.const(np.zeros((rb.BATCH, rb.HID))))
        d = out - y
        loss = 0.5 * sg.sum(d ** 2)
        params = [rnn.W_ih, rnn.W_hh, rnn.b_ih, rnn.b_hh]
        step = _compile_timed(sg, compile_s, backend, lambda b=backend: sg.compile_step(
            loss, sg.optim.SGD(lr=rb.LR), inputs=[x, y], params=params, **_kw(b)), (X, Y))
        if step is not None:
            fns[f"sg-{backend}"] = (lambda s=step: _call(s, X, Y))
    return fns, compile_s


def cnn_row(batch, dtype, backends, frameworks):
    np, sg, _ = _imports()
    import conv_step as cs
    weights, X, Y = cs.make_problem(batch)
    Xd = X.astype(dtype)
    ref = cs.NumpyLeNet(weights, dtype)
    fns = {"numpy": lambda: ref(Xd, Y)}
    compile_s = {}
    for backend in backends:
        names = ["conv1.W", "conv1.b", "conv2.W", "conv2.b", "fc1.W", "fc1.b", "fc2.W", "fc2.b"]
        W1, b1, W2, b2, F1, c1, F2, c2 = (sg.param(n, np.array(w, dtype=dtype)) for n, w in zip(names, weights))
        xv = sg.var("X", shape=("batch", 1, 28, 28))
        yv = sg.var("Y", shape=("batch",), dtype="int")
        h = sg.max_pool2d(sg.relu(sg.conv2d(xv, W1, b1)), 2)
        h = sg.max_pool2d(sg.relu(sg.conv2d(h, W2, b2)), 2)
        h = sg.reshape(h, ("batch", 256))
        loss = sg.losses.cross_entropy(sg.relu(h @ F1 + c1) @ F2 + c2, yv)
        opt = sg.optim.Adam(lr=cs.LR, beta1=cs.BETA1, beta2=cs.BETA2, eps=cs.EPS)
        step = _compile_timed(sg, compile_s, backend, lambda b=backend: sg.compile_step(
            loss, opt, inputs=[xv, yv], dtype=dtype, **_kw(b)), (Xd, Y))
        if step is not None:
            fns[f"sg-{backend}"] = (lambda s=step: _call(s, Xd, Y))
    if "torch" in frameworks:
        fn = _optional(lambda: cs.torch_step(weights, dtype))
        if fn is not None:
            fns["torch"] = (lambda: fn(Xd, Y))
    return fns, compile_s


def _kw(backend: str) -> dict:
    """``sg.compile_step`` keywords of a column: ``jax-dev`` is the JAX backend with ``sync=False`` (params
    and state stay on the device between steps; ``p.value`` is written back only by ``step.sync()``)."""
    return {"backend": "jax", "sync": False} if backend == "jax-dev" else {"backend": backend}


def _call(step, *batch):
    """One step, waited for: a JAX step returns before its work is done (``block_until_ready``)."""
    out = step(*batch)
    ready = getattr(out, "block_until_ready", None)
    return ready() if ready is not None else out


def _optional(make):
    try:
        return make()
    except ImportError:
        return None


def _compile_timed(sg, compile_s, backend, make, batch):
    """Compile and run one step (Numba compiles its kernels at the first call); None when the backend
    is not available here (its extra not installed, or not written yet)."""
    t0 = time.perf_counter()
    try:
        step = make()
    except (sg.DependencyError, sg.GraphError, NotImplementedError) as e:
        if "backend" in str(e):
            return None
        raise
    _call(step, *batch)
    compile_s[backend] = time.perf_counter() - t0
    return step


# ============================================================================ measuring
def measure(fns: dict, rounds: int, reps: int) -> dict:
    """Median CPU seconds per call of each function over interleaved rounds of ``reps`` calls."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for r in range(rounds):
        names = list(fns)
        names = names[r % len(names):] + names[:r % len(names)]
        for k in names:
            t0 = time.process_time()
            for _ in range(reps):
                fns[k]()
            times[k].append((time.process_time() - t0) / reps)
    return {k: statistics.median(v) for k, v in times.items()}


def rows_spec(quick: bool):
    if quick:
        return [("tiny MLP 2-4-4-1", "mlp", ("tiny", [2, 4, 4, 1], 8, "mse")),
                ("big MLP 12-8-8-4", "mlp", ("big", [12, 8, 8, 4], 6, "ce"))]
    return [("tiny MLP 2-16-16-1 b32", "mlp", ("tiny", [2, 16, 16, 1], 32, "mse")),
            ("big MLP 784-256-256-10 b128", "mlp", ("big", [784, 256, 256, 10], 128, "ce")),
            ("tanh RNN T50 b32 32-64", "rnn", ()), ("LeNet CNN b64", "cnn", (64,))]


def worker(spec: dict) -> dict:
    """One row, measured in this process (fresh: the Numba timings are first compiles of the process)."""
    kind, args, dtype = spec["kind"], spec["args"], spec["dtype"]
    backends, frameworks = spec["backends"], spec["frameworks"]
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(spec["threads"])
    except ImportError:
        pass
    import_s = {}
    if "numba" in backends:  # Numba's own import (and the backend's modules), timed apart from compiling
        t0 = time.perf_counter()
        try:
            import symgrad.backends.numba_backend  # noqa: F401
            import_s["numba"] = time.perf_counter() - t0
        except ImportError:
            pass
    if "jax" in backends:  # JAX's import and its first array (backend start-up)
        t0 = time.perf_counter()
        try:
            import jax.numpy as jnp
            import symgrad.backends.jax_backend  # noqa: F401
            jnp.zeros(1).block_until_ready()
            import_s["jax"] = time.perf_counter() - t0
        except ImportError:
            pass
    if kind == "mlp":
        fns, compile_s = mlp_row(*args, dtype, backends, frameworks)
    elif kind == "rnn":
        fns, compile_s = rnn_row(backends, frameworks)
    else:
        fns, compile_s = cnn_row(*args, dtype, backends, frameworks)
    reps = spec["reps"]
    med = measure(fns, spec["rounds"], reps)
    return {"times": med, "compile": compile_s, "import": import_s}


def _run_worker(spec: dict, cache: str) -> dict:
    env = dict(os.environ, SYMGRAD_CACHE=cache)
    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                         capture_output=True, text=True, env=env, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"bench worker failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: small nets, 2 rounds")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--cold-runs", type=int, default=3,
                    help="fresh processes with empty caches per row for the cold compile times (median; default 3)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    _set_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    backends = ["numpy", "numba", "jax", "jax-dev"]
    frameworks = ["torch", "jax-native"]
    rounds = 2 if args.quick else args.rounds
    cols = ["sg-numpy", "sg-numba", "sg-jax", "sg-jax-dev", "torch", "jax-native"]
    print(f"One training step, median CPU time of {rounds} interleaved rounds, {args.threads} BLAS thread(s); "
          f"ratios to hand-written NumPy (lower is faster; '-': not available here)")
    head = f"{'row':28} {'dtype':7} {'numpy ms':>9} " + " ".join(f"{c:>10}" for c in cols)
    print(head)
    print("-" * len(head))
    compiles = []
    for label, kind, rargs in rows_spec(args.quick):
        for dtype in (["float64"] if kind == "rnn" else ["float32"] if kind == "cnn" else ["float64", "float32"]):
            reps = 1 if args.quick else (200 if "tiny" in label else 20 if kind == "mlp" else 3)
            spec = {"kind": kind, "args": list(rargs), "dtype": dtype, "backends": backends,
                    "frameworks": frameworks, "threads": args.threads, "rounds": rounds, "reps": reps}
            compile_only = dict(spec, backends=["numba", "jax"], frameworks=[], rounds=1, reps=1)
            with tempfile.TemporaryDirectory(prefix="symgrad-bench-cache-") as cache:
                res = _run_worker(spec, cache)  # cold: empty kernel and XLA caches
                warm = _run_worker(compile_only, cache)
            colds = [res["compile"]]
            for _ in range(1, 1 if args.quick else max(1, args.cold_runs)):  # more cold samples: compile times vary
                with tempfile.TemporaryDirectory(prefix="symgrad-bench-cache-") as cache:
                    colds.append(_run_worker(compile_only, cache)["compile"])
            res["cold_range"] = {}
            for b in ("numba", "jax"):
                got = sorted(c[b] for c in colds if c.get(b) is not None)
                if got:
                    res["compile"][b] = statistics.median(got)
                    res["cold_range"][b] = (got[0], got[-1], len(got))
            t = res["times"]
            line = f"{label:28} {dtype:7} {t['numpy'] * 1e3:9.3f} "
            line += " ".join(f"{t[c] / t['numpy']:10.2f}" if c in t else f"{'-':>10}" for c in cols)
            print(line, flush=True)
            compiles.append((label, dtype, res, warm))
    print()
    print("Compile seconds: sg.compile_step + the first step, in a fresh process (import not counted)")
    ccols = [("numpy", "numpy", "compile"), ("numba cold", "numba", "compile"), ("cached", "numba", "warm"),
             ("import", "numba", "import"), ("jax cold", "jax", "compile"), ("cached", "jax", "warm"),
             ("import", "jax", "import")]
    head = f"{'row':28} {'dtype':7} " + " ".join(f"{c:>10}" for c, _, _ in ccols)
    print(head)
    print("-" * len(head))
    for label, dtype, res, warm in compiles:
        vals = []
        for _, backend, what in ccols:
            v = (warm if what == "warm" else res)["compile" if what != "import" else "import"].get(backend)
            vals.append(f"{v:10.2f}" if v is not None else f"{'-':>10}")
        print(f"{label:28} {dtype:7} " + " ".join(vals))
    for label, dtype, res, warm in compiles:
        ranges = [f"{b} {lo:.2f}-{hi:.2f} ({n} runs)" for b, (lo, hi, n) in res["cold_range"].items() if n > 1]
        if ranges:
            print(f"  cold range, {label} {dtype}: " + "; ".join(ranges))
    print("cold: the median of --cold-runs fresh processes with an empty kernel cache ($SYMGRAD_CACHE: Numba's kernels")
    print("and core, JAX's compilation cache); symgrad's own Numba forms (softmax, cross-entropy) are cached beside the")
    print("package, once per installation and dtype (about 1 s more in the first run after installing); cached: the")
    print("same in a fresh process that finds them on disk; import: importing numba / jax and the backend's modules")
    print("(and JAX's first array), timed before the compiles.  JAX caches compiles that took over 1 s")
    print("(jax_persistent_cache_min_compile_time_secs).")
    print("sg-jax: backend='jax' writing p.value back after every step; sg-jax-dev: sync=False, params and")
    print("state kept on the device (step.sync() writes them back), each step waited for.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
