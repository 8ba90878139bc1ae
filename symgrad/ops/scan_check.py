"""The per-op gradient check (``sg.check_grad(..., per_node=True)``) of a scan: its VJP, a reverse
scan, against central differences of the whole loop, with one random cotangent per output.  A
``scan_out`` only picks an output; its cotangent reaches the scan unchanged, so it is checked there."""
from __future__ import annotations

import numpy as np

from ..graph import Node
from .base import var


def is_pick(node: Node) -> bool:
    src = node.inputs[0] if node.inputs else None
    return src is not None and src.op is not None and src.op.outputs is not None


def check_loop(node: Node, needs: tuple, values: dict, rng: np.random.Generator, probes: int, h: float,
               rtol: float, atol: float, check, run) -> object:
    """Fill ``check`` (a :class:`~symgrad.diagnostics.NodeCheck`) for scan ``node``; ``run(ct, values,
    extra)`` evaluates a cotangent node."""
    if is_pick(node):
        check.note = "picks one output of the scan before it (its cotangent is checked there)"
        return check
    args = [values[i] for i in node.inputs]
    attrs = dict(node.attrs)
    outs = [np.asarray(o, dtype=np.float64) for o in values[node]]
    gs = [var(f"g{k}", shape=shape) for k, (shape, _) in enumerate(node.op.outputs(node))]
    try:
        cts = node.op.vjp(node, tuple(gs), needs)
    except Exception as e:  # noqa: BLE001  what the VJP raises is the finding
        check.status, check.note = "error", f"its VJP raised {type(e).__name__}: {e}"
        return check
    worst = 0.0
    for _ in range(probes):
        us = [rng.normal(size=o.shape) for o in outs]
        for i, (need, x) in enumerate(zip(needs, args)):
            if not need or np.asarray(x).dtype.kind != "f" or cts[i] is None:
                continue
            d = rng.normal(size=np.shape(x))

            def at(arr):
                shifted = list(args)
                shifted[i] = arr
                return [np.asarray(o, dtype=np.float64) for o in node.op.impl(*shifted, **attrs)]
            plus, minus = at(x + h * d), at(x - h * d)
            numeric = sum(float(np.sum(u * (p - m))) for u, p, m in zip(us, plus, minus)) / (2 * h)
            got = np.asarray(run(cts[i], values, dict(zip(gs, us))), dtype=np.float64)
            analytic = float(np.sum(np.broadcast_to(got, np.shape(x)) * d))
            size = max(abs(numeric), abs(analytic))
            err = abs(analytic - numeric)
            check.entries += sum(o.size for o in outs)
            rel = err / size if size > 0 else 0.0
            if rel >= worst:
                worst = rel
                check.error, check.input, check.analytic, check.numeric = rel, i, analytic, numeric
            if err > atol + rtol * size + 1e-7 * size:
                check.status = "wrong"
    return check
