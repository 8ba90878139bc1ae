"""One training step of an MLP: symgrad's compiled step against hand-written
NumPy backprop (and PyTorch CPU / JAX when installed).

Two nets, each in float64 and float32, all with the same Adam update
(PyTorch's definition, lr 1e-3):

* big:  784-256-256-10, ReLU, softmax cross-entropy, batch 128;
* tiny: 2-16-16-1, sigmoid hidden layers, MSE, batch 32.

Times are medians over interleaved rounds (each implementation in turn, so
background load hits them alike), reported as ratios to hand-written NumPy
measured in the same process.  Every net and dtype is measured in fresh
processes: one for symgrad against NumPy, one for the same under glibc
malloc settings that keep freed memory (the ``tuned`` column: NumPy's
per-step temporaries then never page-fault, its best case; with the
default settings glibc may hand big freed blocks back to the kernel and
fault them in again on the next step, depending on the heap's history),
and one per framework (their thread pools and allocators would otherwise
slow NumPy's BLAS down in the same process).  The float32 rows give every
implementation float32 params.  Compile time is the time of
``sg.compile_step`` (graph, gradients, update rule, code generation and
loading) as the first compile of a fresh process with an empty cache of
generated modules, and again (warm) in the same process.

Run:  python bench/mlp_step.py          (~3 minutes)
      python bench/mlp_step.py --quick  (smoke test: tiny sizes, 2 rounds, cold compile of row 1 only)
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import symgrad as sg  # noqa: E402

LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8


# ====================================================================== data
def make_problem(sizes, batch, kind, seed=0):
    """Initial weights (He for ReLU, Xavier for sigmoid, as sg.nn.MLP draws them) and one batch."""
    model = sg.nn.MLP(sizes, activation="relu" if kind == "ce" else "sigmoid", seed=seed)
    weights = [p.value.copy() for p in model.parameters()]
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(batch, sizes[0]))
    Y = rng.integers(0, sizes[-1], size=batch) if kind == "ce" else rng.normal(size=(batch, sizes[-1]))
    return weights, X, Y


# ====================================================================== symgrad
def symgrad_step(sizes, kind, weights, dtype, reuse_buffers=True):
    model = sg.nn.MLP(sizes, activation="relu" if kind == "ce" else "sigmoid", seed=0)
    for p, w in zip(model.parameters(), weights):
        p.value = np.array(w, dtype=dtype)  # float32 params for a float32 step, as the others keep them
    X = sg.var("X", shape=("batch", sizes[0]))
    if kind == "ce":
        Y = sg.var("Y", shape=("batch",), dtype="int")
        loss = sg.losses.cross_entropy(model(X), Y)
    else:
        Y = sg.var("Y", shape=("batch", sizes[-1]))
        loss = sg.losses.mse(model(X), Y)
    t0 = time.perf_counter()
    step = sg.compile_step(loss, sg.optim.Adam(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS), inputs=[X, Y], dtype=dtype,
                           reuse_buffers=reuse_buffers)
    compile_s = time.perf_counter() - t0
    return step, compile_s


# ====================================================================== hand-written NumPy
def _sigmoid(z):
    """Overflow-free logistic function: exp only ever sees −|z|."""
    e = np.exp(-np.abs(z))
    out = np.where(z >= 0, 1.0, e)
    e += 1.0
    out /= e
    return out


class NumpyMLP:
    """Forward, backprop and Adam written by hand, in the usual careful style:
    log-sum-exp softmax, a stable sigmoid, in-place updates of the Adam state."""

    def __init__(self, weights, kind, dtype):
        self.p = [np.array(w, dtype=dtype) for w in weights]
        self.m = [np.zeros_like(w) for w in self.p]
        self.v = [np.zeros_like(w) for w in self.p]
        self.kind, self.dtype, self.t = kind, dtype, 0

    def __call__(self, X, Y):
        X = np.asarray(X, dtype=self.dtype)
        Ws, bs = self.p[0::2], self.p[1::2]
        n_layers = len(Ws)
        hs = [X]
        h = X
        for i in range(n_layers):
            z = h @ Ws[i]
            z += bs[i]
            if i < n_layers - 1:
                h = np.maximum(z, 0.0, out=z) if self.kind == "ce" else _sigmoid(z)
            else:
                h = z
            hs.append(h)
        out, n = hs[-1], X.shape[0]
        if self.kind == "ce":
            shifted = out - out.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            s = e.sum(axis=1, keepdims=True)
            rows = np.arange(n)
            loss = float(np.mean(np.log(s[:, 0]) - shifted[rows, Y]))
            d = e / s
            d[rows, Y] -= 1.0
            d /= n
        else:
            d = out - Y
            loss = float(np.mean(d * d))
            d *= 2.0 / d.size
        grads = [None] * len(self.p)
        for i in reversed(range(n_layers)):
            grads[2 * i] = hs[i].T @ d
            grads[2 * i + 1] = d.sum(axis=0)
            if i > 0:
                d = d @ Ws[i].T
                if self.kind == "ce":
                    d *= hs[i] > 0
                else:
                    d *= hs[i] * (1.0 - hs[i])
        self.t += 1
        bc1, bc2 = 1.0 - BETA1 ** self.t, 1.0 - BETA2 ** self.t
        step_size, root_bc2 = LR / bc1, math.sqrt(bc2)
        for p, g, m, v in zip(self.p, grads, self.m, self.v):
            m *= BETA1
            m += (1.0 - BETA1) * g
            v *= BETA2
            g *= g
            g *= 1.0 - BETA2
            v += g
            denom = np.sqrt(v)
            denom /= root_bc2
            denom += EPS
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom
        return loss


# ====================================================================== optional frameworks
def torch_step(weights, kind, dtype, X, Y):
    try:
        import torch
    except ImportError:
        return None
    tdt = torch.float64 if dtype == "float64" else torch.float32
    params = [torch.tensor(w, dtype=tdt, requires_grad=True) for w in weights]
    opt = torch.optim.Adam(params, lr=LR, betas=(BETA1, BETA2), eps=EPS)
    Xt = torch.tensor(X, dtype=tdt)
    Yt = torch.tensor(Y, dtype=torch.long if kind == "ce" else tdt)

    def step(_x=None, _y=None):
        opt.zero_grad(set_to_none=True)
        h = Xt
        n_layers = len(params) // 2
        for i in range(n_layers):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < n_layers - 1:
                h = torch.relu(h) if kind == "ce" else torch.sigmoid(h)
        loss = torch.nn.functional.cross_entropy(h, Yt) if kind == "ce" else torch.mean((h - Yt) ** 2)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def jax_step(weights, kind, dtype, X, Y):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    jdt = jnp.float64 if dtype == "float64" else jnp.float32
    params = [jnp.asarray(w, dtype=jdt) for w in weights]
    Xj = jnp.asarray(X, dtype=jdt)
    Yj = jnp.asarray(Y) if kind == "ce" else jnp.asarray(Y, dtype=jdt)

    def loss_fn(ps):
        h = Xj
        n_layers = len(ps) // 2
        for i in range(n_layers):
            h = h @ ps[2 * i] + ps[2 * i + 1]
            if i < n_layers - 1:
                h = jax.nn.relu(h) if kind == "ce" else jax.nn.sigmoid(h)
        if kind == "ce":
            logp = jax.nn.log_softmax(h, axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, Yj[:, None], axis=1))
        return jnp.mean((h - Yj) ** 2)

    @jax.jit
    def update(ps, ms, vs, t):
        loss, gs = jax.value_and_grad(loss_fn)(ps)
        bc1, bc2 = 1 - BETA1 ** t, 1 - BETA2 ** t
        ms = [BETA1 * m + (1 - BETA1) * g for m, g in zip(ms, gs)]
        vs = [BETA2 * v + (1 - BETA2) * g * g for v, g in zip(vs, gs)]
        ps = [p - (LR / bc1) * m / (jnp.sqrt(v) / jnp.sqrt(bc2) + EPS) for p, m, v in zip(ps, ms, vs)]
        return loss, ps, ms, vs

    state = {"p": params, "m": [jnp.zeros_like(p) for p in params], "v": [jnp.zeros_like(p) for p in params],
             "t": 0}

    def step(_x=None, _y=None):
        state["t"] += 1
        loss, state["p"], state["m"], state["v"] = update(state["p"], state["m"], state["v"],
                                                         jnp.asarray(state["t"], dtype=jdt))
        return float(loss)
    step()  # compile outside the timed region
    return step


# ====================================================================== timing
def _minor_faults() -> int:
    """Minor page faults of this process so far (0 where getrusage is missing)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(impls, X, Y, budget_s, per_round, min_rounds):
    """Median seconds per step of each implementation, over interleaved rounds,
    and the minor page faults per step each one caused.

    Each round runs every implementation for ``per_round`` steps in turn,
    starting one further along the list each round (so none always runs
    right after the same other one: the state NumPy's temporaries leave
    the allocator in is shared); rounds repeat until ``budget_s`` is spent
    (at least ``min_rounds``).
    """
    names = list(impls)
    times = {name: [] for name in names}
    faults = {name: 0 for name in names}
    for fn in impls.values():  # warm up
        fn(X, Y)
    start = time.perf_counter()
    rounds = 0
    while True:
        for k in range(len(names)):
            name = names[(rounds + k) % len(names)]
            fn = impls[name]
            f0 = _minor_faults()
            t0 = time.perf_counter()
            for _ in range(per_round):
                fn(X, Y)
            times[name].append((time.perf_counter() - t0) / per_round)
            faults[name] += _minor_faults() - f0
        rounds += 1
        if rounds >= min_rounds and time.perf_counter() - start >= budget_s:
            break
    per_step = {name: faults[name] / (rounds * per_round) for name in names}
    return {name: statistics.median(ts) for name, ts in times.items()}, rounds, per_step


#: glibc malloc settings under which freed memory is kept and reused, never handed back to the kernel
#: (no page faults on fresh temporaries once warm): the best case for code that allocates every step
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
                "MALLOC_TOP_PAD_": str(64 * 1024 * 1024)}
#: what each worker process runs next to the hand-written NumPy (frameworks in processes of their own,
#: so their thread pools and allocators do not touch the NumPy/symgrad measurement)
GROUPS = {"symgrad": ("symgrad", "no-reuse"), "tuned": ("symgrad",), "torch": ("torch",), "jax": ("jax",)}


def _configs(quick: bool):
    if quick:
        return [("big", [12, 8, 8, 4], 6, "ce", d) for d in ("float64", "float32")] + \
            [("tiny", [2, 4, 4, 1], 5, "mse", d) for d in ("float64", "float32")]
    return [("big", [784, 256, 256, 10], 128, "ce", d) for d in ("float64", "float32")] + \
        [("tiny", [2, 16, 16, 1], 32, "mse", d) for d in ("float64", "float32")]


def measure_configs(configs, group: str, budget: float, min_rounds: int, per_round: dict) -> list[dict]:
    """Measure ``configs`` in this process: the group's implementations interleaved with hand-written NumPy."""
    out = []
    for label, sizes, batch, kind, dtype in configs:
        weights, X, Y = make_problem(sizes, batch, kind)
        if dtype == "float32":
            X = X.astype(np.float32)
            if kind != "ce":
                Y = Y.astype(np.float32)
        ref = NumpyMLP(weights, kind, dtype)
        impls = {"numpy": ref}
        res = {"times": {}, "compile_s": None, "recompile_s": None}
        if "symgrad" in GROUPS[group]:
            step, res["compile_s"] = symgrad_step(sizes, kind, weights, dtype)
            _, res["recompile_s"] = symgrad_step(sizes, kind, weights, dtype)  # the same again, warm
            # both start from the same weights: the first losses must agree
            l_sg, l_np = step(X, Y), ref(X, Y)
            assert abs(l_sg - l_np) <= (1e-10 if dtype == "float64" else 1e-4) * max(1.0, abs(l_np)), (l_sg, l_np)
            impls["symgrad"] = step
        if "no-reuse" in GROUPS[group]:
            impls["no-reuse"], _ = symgrad_step(sizes, kind, weights, dtype, reuse_buffers=False)
        for name, make in (("torch", torch_step), ("jax", jax_step)):
            if name in GROUPS[group]:
                fn = make(weights, kind, dtype, X, Y)
                if fn is None:
                    return []  # not installed
                impls[name] = fn
        med, rounds, faults = measure(impls, X, Y, budget, per_round[label], min_rounds)
        res.update(times=med, faults=faults, rounds=rounds, per_round=per_round[label])
        out.append(res)
    return out


def _worker(configs, group: str, quick: bool) -> list[dict]:
    """Run :func:`measure_configs` in a fresh Python process (with an empty cache of generated modules,
    so its first ``sg.compile_step`` is a cold one), glibc malloc tuned for the ``tuned`` group."""
    import json
    import subprocess
    import tempfile
    spec = json.dumps({"configs": configs, "group": group, "quick": quick})
    with tempfile.TemporaryDirectory(prefix="symgrad-bench-") as tmp:
        env = dict(os.environ, TMPDIR=tmp, TEMP=tmp, TMP=tmp)
        if group == "tuned":
            env.update(TUNED_MALLOC)
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", spec], capture_output=True,
                             text=True, env=env, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"bench worker ({group}) failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _settings(quick: bool, group: str):
    if quick:
        return 0.0, 2, {"big": 1, "tiny": 1}
    budget = 10.0 if group in ("symgrad", "tuned") else 5.0
    return budget, 10, {"big": 5, "tiny": 100}


def run(quick: bool = False, frameworks=("torch", "jax")) -> list[dict]:
    """One row per config.  Full run: one fresh process per (config, group); --quick: one per group."""
    configs = _configs(quick)
    groups = ["symgrad", "tuned"] + [f for f in ("torch", "jax") if f in frameworks]
    per_group: dict[str, list] = {}
    for g in groups:
        batches = [configs] if quick else [[c] for c in configs]
        per_group[g] = [r for b in batches for r in _worker(b, g, quick)]
    rows = []
    for i, (label, sizes, batch, kind, dtype) in enumerate(configs):
        main = per_group["symgrad"][i]
        row = {"net": f"{label} {'-'.join(map(str, sizes))}", "batch": batch, "dtype": dtype,
               "cold_s": main["compile_s"] if (not quick or i == 0) else None, "warm_s": main["recompile_s"],
               "times": main["times"], "faults": main["faults"], "rounds": main["rounds"],
               "per_round": main["per_round"], "ratios": {}}
        tuned = per_group["tuned"][i]["times"]
        row["ratios"]["tuned"] = tuned["symgrad"] / tuned["numpy"]
        for f in ("torch", "jax"):
            if per_group.get(f):
                t = per_group[f][i]["times"]
                row["ratios"][f] = t[f] / t["numpy"]
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    frameworks = [f for f in ("torch", "jax") if any(f in r["ratios"] for r in rows)]
    missing = [f for f in ("torch", "jax") if f not in frameworks]  # not installed or not asked for
    head = (f"{'net':<22} {'batch':>5} {'dtype':<8} {'numpy ms':>9} {'symgrad ms':>10} {'symgrad/np':>10} "
            f"{'tuned':>6} {'no-reuse/np':>11}")
    for f in frameworks:
        head += f" {f + '/np':>9}"
    head += f" {'compile s':>9} {'warm s':>6} {'faults np/sg':>12} {'rounds':>9}"
    print("Adam step (forward + backward + update), median over interleaved rounds; ratios to hand-written NumPy")
    print("symgrad and NumPy interleaved in one process; a fresh process for each row and each column group")
    print("tuned: symgrad/np again, both under glibc malloc settings that never return freed memory")
    print("  (no page faults on NumPy's fresh temporaries: the hand-written code's best case)")
    print("no-reuse: symgrad compiled with reuse_buffers=False (every op allocates its result)")
    print("compile s: sg.compile_step as the first compile of a fresh process with an empty cache of generated")
    print("  modules (cold; imports excluded); warm s: the same compile again in that process")
    print("faults np/sg: minor page faults per step, hand-written NumPy / symgrad (default malloc)")
    print(head)
    print("-" * len(head))
    for r in rows:
        t = r["times"]
        line = (f"{r['net']:<22} {r['batch']:>5} {r['dtype']:<8} {t['numpy'] * 1e3:>9.3f} "
                f"{t['symgrad'] * 1e3:>10.3f} {t['symgrad'] / t['numpy']:>10.2f} {r['ratios']['tuned']:>6.2f} "
                f"{t['no-reuse'] / t['numpy']:>11.2f}")
        for f in frameworks:
            line += f" {r['ratios'][f]:>9.2f}" if f in r["ratios"] else f" {'-':>9}"
        cold = "-" if r["cold_s"] is None else f"{r['cold_s']:.3f}"
        fl = f"{r['faults']['numpy']:.0f}/{r['faults']['symgrad']:.0f}"
        line += f" {cold:>9} {r['warm_s']:>6.3f} {fl:>12} {str(r['rounds']) + 'x' + str(r['per_round']):>9}"
        print(line)
    if missing:
        print(f"(skipped: {', '.join(missing)} -- not installed or not asked for)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, 2 rounds")
    parser.add_argument("--frameworks", default="torch,jax",
                        help="comma-separated frameworks to compare when installed (default torch,jax; '' for none)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one measuring process
    args = parser.parse_args(argv)
    if args.worker:
        import json
        spec = json.loads(args.worker)
        budget, min_rounds, per_round = _settings(spec["quick"], spec["group"])
        res = measure_configs([tuple(c) for c in spec["configs"]], spec["group"], budget, min_rounds, per_round)
        print(json.dumps(res))
        return 0
    frameworks = tuple(f for f in args.frameworks.split(",") if f)
    print_table(run(quick=args.quick, frameworks=frameworks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
