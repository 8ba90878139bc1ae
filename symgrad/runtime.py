"""Numerically stable NumPy kernels shared by evaluation and compiled code.

Both :func:`symgrad.evaluate` and the source written by the compiler call
these same functions, so the two cannot drift apart.  None of them warns
or returns NaN for finite inputs of any magnitude.  Also here: the
:class:`Workspace` in which a training step's conv and pooling kernels keep
their arrays between calls.
"""
from __future__ import annotations

import math

import numpy as np


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp only ever sees -|x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_prime(x):
    s = sigmoid(x)
    return s * (1.0 - s)


def softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))."""
    x = np.asarray(x)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def tanh_prime(x):
    t = np.tanh(x)
    return 1.0 - t * t


def relu(x):
    return np.maximum(x, 0.0)


def step(x):
    """Heaviside step with step(0) = 0: the derivative of relu."""
    return (np.asarray(x) > 0).astype(np.result_type(x, np.float32))


def leaky_relu(x, alpha):
    return np.where(x > 0, x, alpha * x)


def leaky_relu_prime(x, alpha):
    return np.where(x > 0, 1.0, alpha).astype(np.result_type(x, np.float32))


def logsumexp(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(over="ignore"):  # x − m below the float range is −∞, whose exp is the exact 0
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x, axis):
    """x − max − log Σ exp(x − max): exact for any finite x and for −∞ entries (a row of only −∞ is NaN)."""
    m = np.max(x, axis=axis, keepdims=True)
    with np.errstate(over="ignore"):  # x − m below the float range is −∞, whose exp is the exact 0
        z = np.subtract(x, m)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def softmax(x, axis):
    """exp(x − max) / Σ exp(x − max): exact for any finite x and for −∞ entries."""
    with np.errstate(over="ignore"):  # as in log_softmax
        z = np.exp(np.subtract(x, np.max(x, axis=axis, keepdims=True)))
    return z / np.sum(z, axis=axis, keepdims=True)


def weighted(w, x):
    """w · x, and 0 wherever w is 0, also where x is ±∞ (0 · log 0 = 0 in a cross-entropy)."""
    with np.errstate(invalid="ignore"):  # 0 · ∞: replaced below
        out = np.asarray(np.multiply(w, x))
    np.copyto(out, 0, where=np.asarray(w) == 0)
    return out


def safe_log(x):
    """log clamped below at -100, as PyTorch's BCELoss does: log(0) is finite."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(np.maximum(x, 0.0)), -100.0)


def bce(p, y):
    """Elementwise binary cross-entropy of probabilities, log clamped at -100."""
    return -(y * safe_log(p)) - (1.0 - y) * safe_log(1.0 - p)  # (a perfect prediction gives +0.0, not -0.0)


def bce_dp(p, y):
    """d bce / d p = (p - y) / (p (1 - p)), denominator kept >= 1e-12."""
    return (p - y) / np.maximum(p * (1.0 - p), 1e-12)


def bce_logits(z, y):
    """Binary cross-entropy of logits: softplus(z) - y z, stable for any z."""
    return softplus(z) - y * z


def one_hot(y, num_classes):
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise IndexError(f"one_hot: class index out of range [0, {num_classes}) (got {y.min()}..{y.max()})")
    out = np.zeros(y.shape + (num_classes,))
    np.put_along_axis(out, y[..., None].astype(np.intp), 1.0, axis=-1)
    return out


def equal(a, b):
    return (np.asarray(a) == b).astype(np.float64)


def equal_nan(a, b):
    """1.0 where a == b or both are NaN, else 0.0."""
    a, b = np.asarray(a), np.asarray(b)
    return ((a == b) | (np.isnan(a) & np.isnan(b))).astype(np.float64)


def greater(a, b):
    return (np.asarray(a) > b).astype(np.float64)


def greater_equal(a, b):
    return (np.asarray(a) >= b).astype(np.float64)


def where(c, a, b):
    return np.where(np.asarray(c) != 0, a, b)


def sum_keep(x, axis, keepdims):
    return np.sum(x, axis=axis, keepdims=keepdims)


def broadcast_like(g, ref):
    return np.broadcast_to(g, np.shape(ref))


def reshape_like(g, ref):
    return np.reshape(g, np.shape(ref))


def count(ref, axis):
    """Number of elements of ``ref`` over ``axis`` (all when None), as float."""
    shape = np.shape(ref)
    axes = range(len(shape)) if axis is None else axis
    n = 1
    for a in axes:
        n *= shape[a]
    return float(n)


# ----------------------------------------------------------------- work arrays kept between calls
class Workspace:
    """Arrays one kernel call reuses at the next call, so that a training step does not allocate (and have
    the OS fault in) its large temporaries at every step.

    A training step binds one workspace per value whose op's kernel takes ``work=`` (see
    :func:`workspace_kernel`) and whose result does not leave the step; the step's lock keeps two calls from
    using it at once.  ``sg.evaluate`` and plain compiled functions pass none: their kernels allocate, so
    they keep nothing between calls and stay safe to call from several threads.

    Each ``tag`` names one array; asking for the same tag again returns the same memory (its first
    ``prod(shape)`` entries, C-contiguous), replaced by a larger array when a larger one is asked for.
    A kernel asks for each tag once per call, and reads nothing left there by an earlier call.

    Examples
    --------
    >>> w = Workspace()
    >>> a = w.empty("cols", (2, 3), np.float32)
    >>> b = w.empty("cols", (3, 2), np.float32)
    >>> b.shape, np.shares_memory(a, b)
    ((3, 2), True)
    >>> w.zeros("acc", (2,), np.float64)
    array([0., 0.])
    """

    __slots__ = ("_flat",)

    def __init__(self):
        self._flat: dict = {}

    def empty(self, tag: str, shape: tuple, dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``, the memory of ``tag``."""
        dtype = np.dtype(dtype)
        size = math.prod(shape)
        flat = self._flat.get((tag, dtype))
        if flat is None or flat.size < size:
            flat = self._flat[(tag, dtype)] = np.empty(size, dtype)
        return flat[:size].reshape(shape)

    def zeros(self, tag: str, shape: tuple, dtype) -> np.ndarray:
        out = self.empty(tag, shape, dtype)
        out.fill(0)
        return out

    def __repr__(self) -> str:
        held = sum(a.nbytes for a in self._flat.values())
        return f"Workspace({len(self._flat)} arrays, {held} bytes)"


def empty(work: Workspace | None, tag: str, shape: tuple, dtype) -> np.ndarray:
    """``work.empty(tag, shape, dtype)``, or a new array when there is no workspace."""
    return np.empty(shape, dtype) if work is None else work.empty(tag, shape, dtype)


def zeros(work: Workspace | None, tag: str, shape: tuple, dtype) -> np.ndarray:
    """``work.zeros(tag, shape, dtype)``, or a new array of zeros when there is no workspace."""
    return np.zeros(shape, dtype) if work is None else work.zeros(tag, shape, dtype)


def workspace_kernel(fn):
    """Mark an op's NumPy implementation as taking ``work=None`` (a :class:`Workspace`): a training step
    then passes it one for each value it computes with that op (see :func:`takes_workspace`).  Its result
    may then live in the workspace: the step reads it only until the value's last use, before the next call."""
    fn.takes_workspace = True
    return fn


def takes_workspace(op) -> bool:
    """Whether ``op``'s implementation takes a :class:`Workspace` (``work=``)."""
    return getattr(op.impl, "takes_workspace", False)
