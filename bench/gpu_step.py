"""symgrad's JAX backend against PyTorch on one device, in the same run: one Adam training step of

* the big MLP 784-256-256-10 (ReLU, softmax cross-entropy), batch 128, and
* a LeNet-sized CNN (conv 1→6 5×5, ReLU, max pool 2, conv 6→16 5×5, ReLU, max pool 2, linear 256→120,
  ReLU, linear 120→10, cross-entropy) on 28×28 inputs, batch 128,

float32, from the same weights and batch (their first losses are compared: the ``agree`` column).
Both keep params, optimizer state and batch on the device: symgrad's step with ``sync=False`` (no
copy back into ``p.value`` per step; ``step.sync()`` at the end), PyTorch's tensors on the device; neither
reads the loss back during the timed steps.  A round runs ``--steps`` steps then waits for the device
(``block_until_ready`` / ``torch.cuda.synchronize``); the table gives the median time per step over
the rounds, each framework in turn, and the ratio symgrad / PyTorch (target ≤ 1.2 on a GPU).

Run:  bash bench/gpu.sh                          (a CUDA GPU: pip install 'jax[cuda12]' torch)
      python bench/gpu_step.py --device cpu      (the same on the CPU: a check that it runs)
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
MLP = [784, 256, 256, 10]
CNN = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (256, 120), (120,), (120, 10), (10,)]


def weights_for(shapes, seed=0):
    """PyTorch's default init (U(±1/√fan_in)), linear weights laid out as ``x @ W``."""
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        if len(shape) == 1:
            prev = out[-1].shape
            fan_in = math.prod(prev[1:]) if len(prev) == 4 else prev[0]
        else:
            fan_in = math.prod(shape[1:]) if len(shape) == 4 else shape[0]
        out.append(rng.uniform(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), size=shape).astype(np.float32))
    return out


def problems(batch):
    rng = np.random.default_rng(1)
    mlp_shapes = [s for a, b in zip(MLP[:-1], MLP[1:]) for s in ((a, b), (b,))]
    return {
        "MLP 784-256-256-10": ("mlp", weights_for(mlp_shapes), rng.normal(size=(batch, 784)).astype(np.float32),
                               rng.integers(0, 10, size=batch)),
        "LeNet CNN": ("cnn", weights_for(CNN), rng.normal(size=(batch, 1, 28, 28)).astype(np.float32),
                      rng.integers(0, 10, size=batch)),
    }


# ====================================================================== symgrad, backend="jax"
def symgrad_step(kind, weights, X, Y, device):
    sys.path.insert(0, ROOT)
    import jax
    import symgrad as sg
    from symgrad.backends import jax_backend
    ps = [sg.param(f"p{k}", w) for k, w in enumerate(weights)]
    y = sg.var("Y", shape=("batch",), dtype="int")
    if kind == "mlp":
        x = sg.var("X", shape=("batch", 784))
        h = x
        for i in range(0, len(ps), 2):
            h = h @ ps[i] + ps[i + 1]
            if i + 2 < len(ps):
                h = sg.relu(h)
    else:
        x = sg.var("X", shape=("batch", 1, 28, 28))
        h = sg.max_pool2d(sg.relu(sg.conv2d(x, ps[0], ps[1])), 2)
        h = sg.max_pool2d(sg.relu(sg.conv2d(h, ps[2], ps[3])), 2)
        h = sg.reshape(h, ("batch", 256))
        h = sg.relu(h @ ps[4] + ps[5]) @ ps[6] + ps[7]
    loss = sg.losses.cross_entropy(h, y)
    dev = jax.devices(device)[0]
    with jax.default_device(dev):
        t0 = time.perf_counter()
        step = jax_backend.compile_step(loss, sg.optim.Adam(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS), [x, y],
                                        dtype="float32", sync=False)
        Xd, Yd = jax.device_put(X, dev), jax.device_put(Y.astype(np.int32), dev)
        first = float(step(Xd, Yd))  # traces and compiles
        compile_s = time.perf_counter() - t0

    def run(n):
        with jax.default_device(dev):
            for _ in range(n):
                out = step(Xd, Yd)
            out.block_until_ready()
    return run, first, compile_s


# ====================================================================== PyTorch
def torch_step(kind, weights, X, Y, device):
    import torch
    import torch.nn.functional as F
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    ps = [torch.tensor(w, device=dev, requires_grad=True) for w in weights]
    opt = torch.optim.Adam(ps, lr=LR, betas=(BETA1, BETA2), eps=EPS)
    x, y = torch.tensor(X, device=dev), torch.tensor(Y, device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        if kind == "mlp":
            h = x
            for i in range(0, len(ps), 2):
                h = h @ ps[i] + ps[i + 1]
                if i + 2 < len(ps):
                    h = torch.relu(h)
        else:
            h = F.max_pool2d(F.relu(F.conv2d(x, ps[0], ps[1])), 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, ps[2], ps[3])), 2)
            h = F.relu(h.flatten(1) @ ps[4] + ps[5]) @ ps[6] + ps[7]
        loss = F.cross_entropy(h, y)
        loss.backward()
        opt.step()
        return loss

    t0 = time.perf_counter()
    first = float(step().detach())
    compile_s = time.perf_counter() - t0

    def run(n):
        for _ in range(n):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return run, first, compile_s


# ====================================================================== the table
def measure(runs: dict, steps: int, rounds: int) -> dict:
    for run in runs.values():  # warm up: allocator, autotuning
        run(steps)
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, run in runs.items():
            t0 = time.perf_counter()
            run(steps)
            times[k].append((time.perf_counter() - t0) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["gpu", "cpu"], default="gpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=50, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    if args.device == "gpu" and (torch is None or not torch.cuda.is_available()):
        print("PyTorch with CUDA is not available: the table needs it (pip install torch)", file=sys.stderr)
        return 2
    import jax
    print(f"JAX {jax.__version__} on {jax.devices(args.device)[0]}; "
          f"PyTorch {torch.__version__ if torch else 'not installed'}; float32, batch {args.batch}, "
          f"{args.steps} steps x {args.rounds} rounds")
    print(f"{'step':<20} {'symgrad jax':>12} {'pytorch':>12} {'ratio':>7} {'agree':>9} {'compile':>9}")
    for name, (kind, weights, X, Y) in problems(args.batch).items():
        runs, firsts, compiles = {}, {}, {}
        runs["sg"], firsts["sg"], compiles["sg"] = symgrad_step(kind, weights, X, Y, args.device)
        if torch is not None:
            runs["torch"], firsts["torch"], compiles["torch"] = torch_step(kind, weights, X, Y, args.device)
        med = measure(runs, args.steps, args.rounds)
        t_torch = med.get("torch")
        agree = abs(firsts["sg"] - firsts["torch"]) / abs(firsts["torch"]) if t_torch else float("nan")
        print(f"{name:<20} {med['sg'] * 1e3:>10.3f}ms {t_torch * 1e3 if t_torch else float('nan'):>10.3f}ms "
              f"{med['sg'] / t_torch if t_torch else float('nan'):>7.2f} {agree:>9.1e} {compiles['sg']:>8.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
