"""Compiler-internal ops: what the compile-time rewrites of the public ops
(their ``rewrite`` fields) turn parts of a graph into.

They are declared like every other op, with ``internal=True``: they never
appear in a user's graph, are not registered, have no gradient and no
SymPy meaning of their own, and exist only in compiled code.

* ``bcast`` / ``reshape_to``: a broadcast or reshape to a (possibly
  symbolic) shape known when compiling;
* ``count_dims``: the number of entries over symbolic dims, a Python float;
* ``mask_mul``: ``g * (x > 0)``, ReLU's backward pass without a float mask;
* ``pick``: ``x[..., y]``, Σ one_hot(y)·x without the one-hot rows;
* ``xent_grad``: ``c·(one_hot(y) − softmax(z))`` from ``log_softmax(z)``;
* ``cast``: integer class indices met by float32 arithmetic;
* ``sumsq``: ``Σ x²`` over every entry as one dot product of ``x`` with itself
  (float64 only: BLAS accumulates float32 in float32).
"""
from __future__ import annotations

import numpy as np

from ..errors import GraphError
from .base import OpDef


def _no_sym(*args, **attrs):
    raise GraphError("compiler-internal ops have no formula")


def _internal(name: str, nin: int, impl, label: str, **spec) -> OpDef:
    spec.setdefault("fresh", not spec.get("view", False) and not spec.get("python_scalar", False))
    return OpDef(name=name, nin=nin, shape=lambda nodes, **attrs: (), impl=impl, sym=_no_sym, vjp=None,
                 label=label, internal=True, foldable=False, **spec)


def pick(x, y):
    """``x[..., y]`` along the last axis: Σ one_hot(y)·x without building the one-hot rows."""
    if x.ndim == 2:
        return x[np.arange(x.shape[0]), y]
    return np.take_along_axis(x, np.asarray(y)[..., None], axis=-1)[..., 0]


def xent_grad(log_probs, y, scale):
    """``scale · (one_hot(y) − exp(log_probs))``: the softmax cross-entropy gradient wrt the logits."""
    p = np.exp(log_probs)
    if p.ndim == 2:
        p[np.arange(p.shape[0]), y] -= 1.0
    else:
        idx = np.asarray(y)[..., None]
        np.put_along_axis(p, idx, np.take_along_axis(p, idx, axis=-1) - 1.0, axis=-1)
    p *= -scale
    return p


def sumsq(x):
    """``Σ x²`` over all entries: one BLAS dot product, read in memory order (no copy for a transposed
    view of a contiguous array)."""
    flat = np.ravel(x, order="K")
    return np.dot(flat, flat)


def _emit_mask_mul(args, target):
    g, x = args
    if target.buffer is None:
        return f"{g} * ({x} > 0)"
    if g == target.buffer and target.augment:
        return f"{g} *= {x} > 0"
    return f"np.multiply({g}, {x} > 0, out={target.buffer})"


BCAST = _internal("bcast", 1, np.broadcast_to, "broadcast", view=True, layout="broadcast",
                  emit=lambda args, target, shape: f"np.broadcast_to({args[0]}, {target.dims(shape)})")
RESHAPE_TO = _internal("reshape_to", 1, np.reshape, "reshape", view=True, layout="reshape",
                       emit=lambda args, target, shape: f"np.reshape({args[0]}, {target.dims(shape)})")
COUNT_DIMS = _internal("count_dims", 0, None, "N", python_scalar=True,
                       emit=lambda args, target, dims: f"_f64({' * '.join(target.dim(d) for d in dims)})")
MASK_MUL = _internal("mask_mul", 2, lambda g, x: g * (x > 0), "⊙𝟙[>0]", inplace=True, emit=_emit_mask_mul,
                     elementwise=True)
PICK = _internal("pick", 2, pick, "pick", preserves_dtype=True)
XENT_GRAD = _internal("xent_grad", 3, xent_grad, "softmax − one-hot", preserves_dtype=True)
SUMSQ = _internal("sumsq", 1, sumsq, "Σ²", preserves_dtype=True)
CAST = _internal("cast", 1, lambda x: x, "cast", emit=lambda args, target: f"{args[0]}.astype(_DT)")
