"""Masks: the lower and upper triangles of matrices (``tril``, ``triu``) and ``masked_fill``.

``tril``/``triu`` keep the entries on and below (above) diagonal ``k`` of the last two axes, as
NumPy's, with any leading (batch) axes; the axes may be named dims (a ``("seq", "seq")`` score
matrix).  Each is its own adjoint: the gradient is the same triangle of the cotangent.

``masked_fill(x, mask, value)`` is PyTorch's: ``value`` where ``mask`` is non-zero, ``x`` elsewhere,
with broadcasting.  A value of −∞ (a causal attention mask before a softmax) is written as is, never
as a product with the mask, so no ``0·∞`` makes a NaN; the gradient is the cotangent with the filled
entries set to 0, again a ``masked_fill``.
"""
from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import sympy

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from .base import OpDef, apply, as_node, objarray, register
from .declare import elementwise_op

__all__ = ["tril", "triu", "masked_fill"]


# ------------------------------------------------------------ tril, triu
def _triangle_shape(name: str):
    def shape(nodes, k=None):
        (x,) = nodes
        if x.ndim < 2:
            raise ShapeError(f"{name}: needs a matrix or a stack of matrices (at least 2 axes), got shape "
                             f"{format_shape(x.shape)} ({x.describe()})")
        return x.shape
    return shape


def _triangle(name: str, lower: bool) -> OpDef:
    numpy_fn = np.tril if lower else np.triu

    def impl(x, k=None):
        return numpy_fn(x, k or 0)

    def sym(x, k=None):
        return objarray(numpy_fn(x, k or 0))

    def vjp(n: Node, g: Node, needs: tuple) -> tuple:
        return (apply(name, g, k=n.attr("k")),)

    def index(n: Node, idx: tuple, ix) -> sympy.Expr:
        i, j = idx[-2], idx[-1]
        k = n.attr("k") or 0
        kept = sympy.Le(j - i, k) if lower else sympy.Ge(j - i, k)
        return sympy.Piecewise((ix.entry(n.inputs[0], idx), kept), (0, True))

    def emit(args, target, k=None):
        return f"np.{numpy_fn.__name__}({args[0]}{f', {k}' if k else ''})"

    # k is stored as None for the main diagonal, so formulas print tril(S), not tril_{k=0}(S)
    return register(OpDef(name, 1, _triangle_shape(name), impl, sym, vjp=vjp, label=name, attr_names=("k",),
                          index=index, emit=emit, fresh=True))


_triangle("tril", lower=True)
_triangle("triu", lower=False)


def _diagonal(op: str, k: Any) -> int | None:
    if isinstance(k, (bool, np.bool_)):
        raise ShapeError(f"{op}: k must be an int, got the bool {bool(k)}")
    try:
        k = int(operator.index(k))
    except TypeError:
        raise ShapeError(f"{op}: k must be an int, got {type(k).__name__} {k!r}") from None
    return k or None


def tril(x: Any, k: int = 0, name: str | None = None) -> Node:
    """The lower triangle of the last two axes: entries on and below diagonal ``k`` (``np.tril``).

    ``k`` > 0 keeps diagonals above the main one too, ``k`` < 0 drops the main one.  Leading axes
    are a batch of matrices.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> S = sg.var("S", shape=("batch", "seq", "seq"))
    >>> sg.evaluate(sg.tril(S), {"S": np.ones((1, 3, 3))})
    array([[[1., 0., 0.],
            [1., 1., 0.],
            [1., 1., 1.]]])
    """
    return apply("tril", as_node(x, "tril"), k=_diagonal("tril", k), name=name)


def triu(x: Any, k: int = 0, name: str | None = None) -> Node:
    """The upper triangle of the last two axes: entries on and above diagonal ``k`` (``np.triu``).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> sg.evaluate(sg.triu(sg.const(np.ones((2, 3))), k=1))
    array([[0., 1., 1.],
           [0., 0., 1.]])
    """
    return apply("triu", as_node(x, "triu"), k=_diagonal("triu", k), name=name)


# ------------------------------------------------------------ masked_fill
def _number(v: float) -> sympy.Expr:
    if math.isnan(v):
        return sympy.nan
    if math.isinf(v):
        return sympy.oo if v > 0 else -sympy.oo
    return sympy.Integer(int(v)) if v == int(v) and abs(v) < 1e15 else sympy.Float(v)


def _literal(v: float) -> str:
    if math.isnan(v):
        return "np.nan"
    if math.isinf(v):
        return "np.inf" if v > 0 else "(-np.inf)"
    return repr(float(v))


def _masked_fill(x, mask, value=0.0):
    x = np.asarray(x)
    return np.where(np.asarray(mask) != 0, np.asarray(value, dtype=np.result_type(x, np.float32)), x)


def _masked_fill_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    x, mask = n.inputs
    return (apply("masked_fill", g, mask, value=0.0) if needs[0] else None, None)


elementwise_op("masked_fill", lambda t, m, value=0.0: sympy.Piecewise((_number(value), sympy.Ne(m, 0)), (t, True)),
               _masked_fill, nin=2, label="masked fill", vjp=_masked_fill_vjp, attr_names=("value",),
               domain=((-2.0, 2.0), (0.0, 1.0)), preserves_dtype=True,
               emit=lambda args, target, value=0.0: f"np.where({args[1]} != 0, {_literal(value)}, {args[0]})")


def masked_fill(x: Any, mask: Any, value: float, name: str | None = None) -> Node:
    """``value`` where ``mask`` is non-zero, ``x`` elsewhere (PyTorch's ``masked_fill``).

    ``mask`` broadcasts with ``x`` and may be an int or a float node (or an array);  ``value`` is a
    number and may be ±inf: ``masked_fill(scores, causal, -np.inf)`` before a softmax gives a causal
    attention.  The gradient with respect to ``x`` is 0 at the filled entries; ``mask`` gets none.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> S = sg.var("S", shape=(3, 3))
    >>> future = sg.triu(sg.const(np.ones((3, 3))), k=1)
    >>> sg.evaluate(sg.softmax(sg.masked_fill(S, future, -np.inf)), {"S": np.zeros((3, 3))}).round(3)
    array([[1.   , 0.   , 0.   ],
           [0.5  , 0.5  , 0.   ],
           [0.333, 0.333, 0.333]])
    """
    x = as_node(x, "masked_fill")
    if isinstance(value, Node):
        raise GraphError(f"masked_fill: value must be a number, got the node {value.describe()}; to fill with "
                         f"the entries of a node use sg.where(mask, value, x)")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise GraphError(f"masked_fill: value must be a real number (±inf allowed), got {value!r} "
                         f"({type(value).__name__}) for {x.describe()}")
    try:
        v = float(value)
    except OverflowError:
        raise GraphError(f"masked_fill: value {value!r} is beyond the float range ({x.describe()})") from None
    mask = as_node(mask, "masked_fill")
    return apply("masked_fill", x, mask, value=v, name=name)
