"""Statistics over axes: ``logsumexp``, ``variance``, ``std`` and the 2-norm ``norm``.

Each is one op (it prints as ``logsumexp(Z)``, ``Var(X)``, ``std(X)``, ``norm(x)``, and in index
notation as its textbook sum), with a NumPy kernel that neither overflows nor warns at extreme
finite inputs: log-sum-exp subtracts the max; variance and std divide by the largest magnitude
first (``Var(x) = s²·Var(x/s)``, exactly 0 for a constant slice), and so does the norm when a plain
sum of squares would leave the float range (``‖x‖ = s·‖x/s‖``): ``norm([1e200, 1e200])`` is
1.414e200, not ∞.

Gradients (new nodes of other ops):

* ``logsumexp``: ``g·exp(x − lse)`` (a softmax);
* ``variance``: ``g·2(x − mean)/(N − ddof)``;
* ``std``: ``g·(x − mean)/((N − ddof)·std)``, and 0 where std is 0;
* ``norm``: ``g·x/‖x‖``, and 0 where the norm is 0 (PyTorch's value at 0).

The last two divide with ``div_or_zero``, the quotient that is 0 where the divisor is 0; it
prints as a division.  (PyTorch's std gives NaN at zero variance; symgrad gives 0, the
subgradient its norm uses too, so a constant slice never puts NaN into a training step.)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from .. import runtime
from .. import oneline as P
from ..errors import ShapeError
from ..graph import Node, finite_number, normalize_axes, size_of
from ..oneline import Notation
from .base import OpDef, apply, as_node, const, objarray, register
from .declare import elementwise_op
from .linalg import expand_dims
from .reduce import reduced_shape

__all__ = ["logsumexp", "variance", "std", "norm"]

_exp = np.frompyfunc(sympy.exp, 1, 1)
_log = np.frompyfunc(sympy.log, 1, 1)
_sqrt = np.frompyfunc(sympy.sqrt, 1, 1)


# ------------------------------------------------------------ kernels
def _axes(x: np.ndarray, axis) -> tuple:
    return tuple(range(x.ndim)) if axis is None else axis


def _count(x: np.ndarray, axis) -> int:
    return int(np.prod([x.shape[a] for a in _axes(x, axis)], dtype=np.int64))


def logsumexp_kernel(x, axis=None, keepdims=False):
    """log Σ exp(x) over ``axis``, the max subtracted: exact for any finite x; −∞ entries add nothing,
    a slice of only −∞ gives −∞ (silently), +∞ gives +∞ and NaN gives NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return runtime.logsumexp(np.asarray(x), axis, keepdims)


def _scaled(x, axis):
    """x / s with s the largest magnitude over ``axis`` (kept dims; 1 where that is 0 or not finite)."""
    x = np.asarray(x)
    s = np.max(np.abs(x), axis=axis, keepdims=True, initial=0.0)
    s = np.where((s > 0) & np.isfinite(s), s, np.ones((), dtype=s.dtype))
    return x / s, s


def _scaled_variance(x, axis, ddof):
    """(variance of x/s, s): the variance of numbers in [−1, 1], which cannot overflow."""
    y, s = _scaled(x, axis)
    dof = _count(y, axis) - (ddof or 0)
    d = y - np.mean(y, axis=axis, keepdims=True)
    total = np.sum(d * d, axis=axis, keepdims=True)
    if dof <= 0:
        return np.full_like(total, np.nan), s
    return total / dof, s


def _keep(out, axis, keepdims):
    return out if keepdims else np.squeeze(out, axis=_axes(out, axis))


def variance_kernel(x, axis=None, keepdims=False, ddof=None):
    """Σ (x − mean)² / (N − ddof) over ``axis``, computed as s²·Var(x/s) (∞ only when the result is)."""
    with np.errstate(over="ignore", invalid="ignore"):  # invalid: ∞ − ∞ of infinite inputs gives NaN
        v, s = _scaled_variance(x, axis, ddof)
        return _keep(s * (s * v), axis, keepdims)


def std_kernel(x, axis=None, keepdims=False, ddof=None):
    """√variance, computed as s·√Var(x/s): finite whenever the result is."""
    with np.errstate(over="ignore", invalid="ignore"):
        v, s = _scaled_variance(x, axis, ddof)
        return _keep(s * np.sqrt(v), axis, keepdims)


def norm_kernel(x, axis=None, keepdims=False):
    """√Σ x² over ``axis``; when a sum of squares leaves the safe range (or is 0 or not finite), all of
    it is computed again as s·√Σ (x/s)², which neither overflows nor underflows."""
    x = np.asarray(x)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        squares = np.sum(x * x, axis=axis, keepdims=True)
        info = np.finfo(squares.dtype if squares.dtype.kind == "f" else np.float64)
        if np.all((squares > info.tiny / info.eps) & (squares < info.max * info.eps)):
            return _keep(np.sqrt(squares), axis, keepdims)
        y, s = _scaled(x, axis)
        return _keep(s * np.sqrt(np.sum(y * y, axis=axis, keepdims=True)), axis, keepdims)


def div_or_zero_kernel(a, b):
    """a / b, and 0 wherever b is 0 (no warning, no NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=np.result_type(a, b, np.float32))
    with np.errstate(over="ignore"):
        np.divide(a, b, out=out, where=b != 0)
    return out


# ------------------------------------------------------------ helpers
def _kept(n: Node, v: Node) -> Node:
    """``v`` (of the op's output shape) with the reduced axes back as size-1 dims."""
    axis = n.attr("axis")
    if n.attr("keepdims") or axis is None:
        return v
    return expand_dims(v, axis)


def _count_node(n: Node) -> Node:
    """The number of reduced entries: a const when the dims are fixed, else counted at run time."""
    x, axis = n.inputs[0], n.attr("axis")
    count = size_of(tuple(x.shape[a] for a in (range(x.ndim) if axis is None else axis)))
    return const(float(count)) if count is not None else apply("count", x, axis=axis)


def _dof_node(n: Node) -> Node:
    count, ddof = _count_node(n), n.attr("ddof") or 0
    if count.kind == "const":
        return const(float(count.value) - ddof)
    return count - ddof if ddof else count


def _centered(n: Node) -> Node:
    x = n.inputs[0]
    return x - apply("mean", x, axis=n.attr("axis"), keepdims=True)


def _index_count(n: Node, ix) -> sympy.Expr:
    x = n.inputs[0]
    axes = range(x.ndim) if n.attr("axis") is None else n.attr("axis")
    return sympy.Mul(*[ix.dim(x.shape[a]) for a in axes])


def _index_variance(n: Node, idx: tuple, ix) -> sympy.Expr:
    """Σ_k (X[k] − Σ_l X[l]/N)² / (N − ddof)."""
    x = n.inputs[0]
    inner, summed = ix.reduced(n, idx)
    inner2, summed2 = ix.reduced(n, idx)
    count = _index_count(n, ix)
    mean = ix.sum(ix.entry(x, inner2), *summed2) / count
    return ix.sum((ix.entry(x, inner) - mean) ** 2, *summed) / (count - _ddof_number(n.attr("ddof")))


def _ddof_number(ddof) -> sympy.Expr:
    if not ddof:
        return sympy.Integer(0)
    return sympy.Integer(int(ddof)) if ddof == int(ddof) else sympy.Float(ddof)


def _sym_variance(x, axis=None, keepdims=False, ddof=None):
    n = _count(x, axis)
    mean = objarray(np.sum(x, axis=axis, keepdims=True)) * sympy.Rational(1, n)
    d = objarray(x - mean)
    return objarray(np.sum(d * d, axis=axis, keepdims=keepdims)) / (sympy.Integer(n) - _ddof_number(ddof))


_REDUCE_ATTRS = ("axis", "keepdims")


# ------------------------------------------------------------ the ops
def _logsumexp_index(n: Node, idx: tuple, ix) -> sympy.Expr:
    inner, summed = ix.reduced(n, idx)
    return sympy.log(ix.sum(sympy.exp(ix.entry(n.inputs[0], inner)), *summed))


def _norm_index(n: Node, idx: tuple, ix) -> sympy.Expr:
    inner, summed = ix.reduced(n, idx)
    return sympy.sqrt(ix.sum(ix.entry(n.inputs[0], inner) ** 2, *summed))


def _logsumexp_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    return (_kept(n, g) * apply("exp", n.inputs[0] - _kept(n, n)),)


def _variance_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    return (_kept(n, g) * _centered(n) * (2.0 / _dof_node(n)),)


def _std_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    return (_kept(n, g) * apply("div_or_zero", _centered(n), _kept(n, n) * _dof_node(n)),)


def _norm_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    return (_kept(n, g) * apply("div_or_zero", n.inputs[0], _kept(n, n)),)


_STATS = dict(fresh=True, preserves_dtype=True)
register(OpDef("logsumexp", 1, reduced_shape, logsumexp_kernel,
               lambda x, axis=None, keepdims=False: objarray(_log(objarray(np.sum(_exp(x), axis=axis,
                                                                                 keepdims=keepdims)))),
               vjp=_logsumexp_vjp, label="logsumexp", attr_names=_REDUCE_ATTRS, index=_logsumexp_index, **_STATS))
# ddof is stored as None for 0, so formulas print Var(X), not Var_{ddof=0}(X)
register(OpDef("variance", 1, reduced_shape, variance_kernel, lambda x, **a: objarray(_sym_variance(x, **a)),
               vjp=_variance_vjp, label="Var", attr_names=_REDUCE_ATTRS + ("ddof",), index=_index_variance,
               **_STATS))
register(OpDef("std", 1, reduced_shape, std_kernel, lambda x, **a: objarray(_sqrt(_sym_variance(x, **a))),
               vjp=_std_vjp, label="std", attr_names=_REDUCE_ATTRS + ("ddof",),
               index=lambda n, idx, ix: sympy.sqrt(_index_variance(n, idx, ix)), **_STATS))
register(OpDef("norm", 1, reduced_shape, norm_kernel,
               lambda x, axis=None, keepdims=False: objarray(_sqrt(objarray(np.sum(x * x, axis=axis,
                                                                                   keepdims=keepdims)))),
               vjp=_norm_vjp, label="norm", notation=Notation("bars", "‖"), attr_names=_REDUCE_ATTRS,
               index=_norm_index, **_STATS))


def _div_or_zero_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    a, b = n.inputs
    return (apply("div_or_zero", g, b) if needs[0] else None,
            -apply("div_or_zero", g * n, b) if needs[1] else None)


# a / b, and 0 where b is 0: the division in the gradients of std and norm (it prints as a division)
elementwise_op("div_or_zero", lambda a, b: a / b, div_or_zero_kernel, nin=2, label="÷", vjp=_div_or_zero_vjp,
               domain=((-2.0, 2.0), (0.3, 3.0)), matrix=lambda n, a, mx: mx.div(n, a),
               notation=Notation("frac", "/", P.FRAC), preserves_dtype=True)


# ------------------------------------------------------ public functions
def _reduction(op: str, x: Any, axis: Any, keepdims: Any, name: str | None, **attrs: Any) -> Node:
    x = as_node(x, op)
    if not isinstance(keepdims, (bool, np.bool_)):
        raise ShapeError(f"{op}: keepdims must be True or False, got {keepdims!r} ({x.describe()})")
    return apply(op, x, axis=normalize_axes(op, x, axis), keepdims=bool(keepdims), name=name, **attrs)


def _ddof(op: str, x: Node, axis: Any, ddof: Any) -> float | int | None:
    value = finite_number(ddof)
    if value is None or value < 0:
        raise ShapeError(f"{op}: ddof must be a finite number >= 0, got {ddof!r} ({x.describe()})")
    axes = normalize_axes(op, x, axis)
    count = size_of(tuple(x.shape[a] for a in (range(x.ndim) if axes is None else axes)))
    if count is not None and count - value <= 0:
        raise ShapeError(f"{op}: ddof={ddof!r} leaves no degrees of freedom: {count} entries reduced "
                         f"({x.describe()}, axis={axis!r})")
    if value == 0:
        return None
    return int(value) if value == int(value) else value


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False, name: str | None = None) -> Node:
    """log Σ exp(x) over ``axis`` (an int, a tuple, or None for all), computed without overflow.

    −∞ entries are allowed (they add nothing; a slice of only −∞ gives −∞).  The gradient is the
    softmax over the same axes, ``exp(x − logsumexp(x))``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> Z = sg.var("Z", shape=("batch", 3))
    >>> sg.evaluate(sg.logsumexp(Z, axis=1), {"Z": [[1000.0, 1000.0, -np.inf]]})
    array([1000.69314718])
    >>> print(sg.pretty(sg.logsumexp(Z, axis=1)))
    logsumexp(Z)
    """
    return _reduction("logsumexp", x, axis, keepdims, name)


def variance(x: Any, axis: Any = None, keepdims: bool = False, ddof: float = 0, name: str | None = None) -> Node:
    """Σ (x − mean)² / (N − ddof) over ``axis`` (``np.var``; ``ddof=1`` is PyTorch's default).

    Examples
    --------
    >>> import symgrad as sg
    >>> X = sg.var("X", shape=("batch", 4))
    >>> sg.evaluate(sg.variance(X, axis=1), {"X": [[1.0, 2.0, 3.0, 4.0]]})
    array([1.25])
    >>> sg.evaluate(sg.variance(X, axis=1, ddof=1), {"X": [[1.0, 2.0, 3.0, 4.0]]}).round(6)
    array([1.666667])
    """
    x = as_node(x, "variance")
    return _reduction("variance", x, axis, keepdims, name, ddof=_ddof("variance", x, axis, ddof))


def std(x: Any, axis: Any = None, keepdims: bool = False, ddof: float = 0, name: str | None = None) -> Node:
    """The standard deviation √variance over ``axis`` (``np.std``).

    Where the standard deviation is 0 (a constant slice) the gradient is 0; PyTorch gives NaN there.

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(4,))
    >>> sg.evaluate(sg.std(x), {"x": [1.0, 3.0, 3.0, 1.0]})
    array(1.)
    >>> sg.evaluate(sg.grad(sg.std(x), x), {"x": [2.0, 2.0, 2.0, 2.0]})
    array([0., 0., 0., 0.])
    """
    x = as_node(x, "std")
    return _reduction("std", x, axis, keepdims, name, ddof=_ddof("std", x, axis, ddof))


def norm(x: Any, axis: Any = None, keepdims: bool = False, name: str | None = None) -> Node:
    """The 2-norm √Σ x² over ``axis`` (None: all entries, the Frobenius norm of a matrix).

    Finite whenever the result is (``norm([1e200, 1e200])`` is 1.414e200); the gradient ``x/‖x‖``
    is 0 where the norm is 0, as PyTorch's.

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(2,))
    >>> float(sg.evaluate(sg.norm(x), {"x": [3.0, 4.0]}))
    5.0
    >>> sg.evaluate(sg.grad(sg.norm(x), x), {"x": [0.0, 0.0]})
    array([0., 0.])
    """
    return _reduction("norm", x, axis, keepdims, name)
