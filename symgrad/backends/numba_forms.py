"""Numba forms of the ops that are not elementwise and not matrix products, for the Numba backend's
whole-step functions (:mod:`.numba_whole`).

Each form is a ``numba.njit`` function with the op's NumPy implementation's arguments and result
(``log_softmax(x, axis=1)``), computed as :mod:`symgrad.runtime` computes it (the max subtracted
first).  :func:`form_for` says which form computes a value, or None when the op has none for that
value's shapes: the step is then compiled as a driver calling fused kernels instead.

>>> import numpy as np
>>> x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, -np.inf]])
>>> np.round(log_softmax(x, axis=1), 4)
array([[-2.4076, -1.4076, -0.4076],
       [-0.6931, -0.6931,    -inf]])
>>> pick(x, np.array([2, 0]))
array([3., 0.])
"""
from __future__ import annotations

import math

import numba
import numpy as np

_OPTS = {"cache": True, "error_model": "numpy", "nogil": True}


@numba.njit(**_OPTS)
def log_softmax(x, axis=1):
    """x − max − log Σ exp(x − max) along the rows of a matrix (``axis`` is 1 or −1)."""
    n, k = x.shape
    out = np.empty_like(x)
    for i in range(n):
        m = x[i, 0]
        for j in range(k):
            if x[i, j] > m or x[i, j] != x[i, j]:  # NaN wins, as in np.max
                m = x[i, j]
                if m != m:
                    break
        s = 0.0
        for j in range(k):
            s += math.exp(x[i, j] - m)
        ls = math.log(s)
        for j in range(k):
            out[i, j] = (x[i, j] - m) - ls
    return out


@numba.njit(**_OPTS)
def softmax(x, axis=1):
    """exp(x − max) / Σ exp(x − max) along the rows of a matrix (``axis`` is 1 or −1)."""
    n, k = x.shape
    out = np.empty_like(x)
    for i in range(n):
        m = x[i, 0]
        for j in range(k):
            if x[i, j] > m or x[i, j] != x[i, j]:
                m = x[i, j]
                if m != m:
                    break
        s = 0.0
        for j in range(k):
            e = math.exp(x[i, j] - m)
            out[i, j] = e
            s += e
        for j in range(k):
            out[i, j] /= s
    return out


@numba.njit(**_OPTS)
def pick(x, y):
    """``x[i, y[i]]`` for each row i."""
    n = x.shape[0]
    out = np.empty(n, x.dtype)
    for i in range(n):
        out[i] = x[i, y[i]]
    return out


@numba.njit(**_OPTS)
def xent_grad(log_probs, y, scale):
    """``scale · (one_hot(y) − exp(log_probs))`` for a matrix of log-probabilities."""
    n, k = log_probs.shape
    out = np.empty_like(log_probs)
    for i in range(n):
        for j in range(k):
            p = math.exp(log_probs[i, j])
            if j == y[i]:
                p -= 1.0
            out[i, j] = p * -scale
    return out


def _rows(v) -> bool:
    """A matrix reduced along its rows (softmax and log-softmax of logits)."""
    axis = dict(v.attrs).get("axis")
    return v.args[0].ndim == 2 and axis in (1, -1)


def _matrix_and_labels(v) -> bool:
    return v.args[0].ndim == 2 and v.args[1].ndim == 1


_FORMS: list = []


def _table() -> list:
    if not _FORMS:
        from ..ops.base import get_op
        from ..ops.kernels import PICK, XENT_GRAD
        _FORMS.extend([(get_op("log_softmax"), log_softmax, _rows), (get_op("softmax"), softmax, _rows),
                       (PICK, pick, _matrix_and_labels), (XENT_GRAD, xent_grad, _matrix_and_labels)])
    return _FORMS


def form_for(v):
    """The Numba form computing value ``v`` (an op applied to values), or None."""
    for op, fn, applies in _table():
        if v.op is op and applies(v):
            return fn
    return None


__all__ = ["form_for", "log_softmax", "softmax", "pick", "xent_grad"]
