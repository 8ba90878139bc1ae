"""Neural-network ops: softmax, log_softmax (stable, along one axis) and
one_hot (class indices to rows of the identity)."""
from __future__ import annotations

import operator

import numpy as np
import sympy

from .. import runtime
from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape, normalize_axes
from .base import OpDef, apply, as_node, objarray, register

_exp = np.frompyfunc(sympy.exp, 1, 1)
_log = np.frompyfunc(sympy.log, 1, 1)


def _same_shape(nodes, axis):
    return nodes[0].shape


def _sym_softmax(x, axis):
    e = objarray(_exp(x))
    return objarray(e / np.sum(e, axis=axis, keepdims=True))


def _sym_log_softmax(x, axis):
    e = objarray(_exp(x))
    return objarray(x - _log(np.sum(e, axis=axis, keepdims=True)))


def _softmax_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    axis = n.attr("axis")
    gs = g * n
    return (gs - n * apply("sum", gs, axis=(axis,), keepdims=True),)


def _log_softmax_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    axis = n.attr("axis")
    return (g - apply("exp", n) * apply("sum", g, axis=(axis,), keepdims=True),)


def _normalizer(node: Node, idx: tuple, ix):
    """The entry of the input at ``idx`` and Σ_k exp(input) along the op's axis, in index notation."""
    x, axis = node.inputs[0], node.attr("axis")
    k = ix.dummy(x.shape[axis])
    along = tuple(k if d == axis else i for d, i in enumerate(idx))
    return ix.entry(x, idx), ix.sum(sympy.exp(ix.entry(x, along)), k)


def _softmax_index(node: Node, idx: tuple, ix):
    own, total = _normalizer(node, idx, ix)
    return sympy.exp(own) / total


def _log_softmax_index(node: Node, idx: tuple, ix):
    own, total = _normalizer(node, idx, ix)
    return own - sympy.log(total)


register(OpDef("softmax", 1, _same_shape, runtime.softmax, _sym_softmax, vjp=_softmax_vjp, label="softmax",
               attr_names=("axis",), activation=True, output_range=(0.0, 1.0), fresh=True, index=_softmax_index))
register(OpDef("log_softmax", 1, _same_shape, runtime.log_softmax, _sym_log_softmax, vjp=_log_softmax_vjp,
               label="log softmax", attr_names=("axis",), activation=True, fresh=True, index=_log_softmax_index))


def _axis(op: str, x: Node, axis: int) -> int:
    if x.ndim == 0:
        raise ShapeError(f"{op}: needs at least one axis, got a scalar ({x.describe()})")
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.bool_)):
        raise ShapeError(f"{op}: axis must be one int, got {axis!r} ({x.describe()})")
    return normalize_axes(op, x, axis)[0]


def softmax(x, axis: int = -1, name=None) -> Node:
    """exp(x) / Σ exp(x) along ``axis``; computed with the max subtracted."""
    x = as_node(x, "softmax")
    return apply("softmax", x, axis=_axis("softmax", x, axis), name=name)


def log_softmax(x, axis: int = -1, name=None) -> Node:
    """x − log Σ exp(x) along ``axis`` (log-sum-exp, no overflow)."""
    x = as_node(x, "log_softmax")
    return apply("log_softmax", x, axis=_axis("log_softmax", x, axis), name=name)


def _one_hot_shape(nodes, num_classes):
    return nodes[0].shape + (num_classes,)


def _sym_one_hot(y, num_classes):
    raise GraphError("one_hot of a symbolic class index has no closed form; feed the targets as one-hot floats")


def _one_hot_index(node: Node, idx: tuple, ix):
    """one_hot(y)[…, c] = [y[…] = c]."""
    from ..formulas.index import Iverson
    return Iverson(ix.entry(node.inputs[0], idx[:-1]), idx[-1])


register(OpDef("one_hot", 1, _one_hot_shape, runtime.one_hot, _sym_one_hot, vjp=None, label="one-hot",
               attr_names=("num_classes",), foldable=False, int_inputs=True, index_bound="num_classes", fresh=True,
               index=_one_hot_index))


def one_hot(y, num_classes: int, name=None) -> Node:
    """Rows of the identity picked by integer class indices ``y``."""
    y = as_node(y, "one_hot")
    if y.dtype != "int":
        raise GraphError(f"one_hot: expects an int var of class indices, got {y.describe()} of dtype {y.dtype}")
    k = _count_of_classes(num_classes)
    if k < 1:
        raise ShapeError(f"one_hot: num_classes must be a positive int, got {k} ({y.describe()})")
    return apply("one_hot", y, num_classes=k, name=name)


def _count_of_classes(num_classes) -> int:
    """``num_classes`` as a plain ``int`` (an int subclass or a NumPy integer is converted, so nothing of
    the caller's type travels with the graph); bools and non-integers are refused."""
    if isinstance(num_classes, (bool, np.bool_)):
        raise ShapeError(f"one_hot: num_classes must be an int, got the bool {bool(num_classes)}")
    try:
        return int(operator.index(num_classes))
    except TypeError:
        raise ShapeError(f"one_hot: num_classes must be an int, got {type(num_classes).__name__}") from None
