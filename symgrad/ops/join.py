"""Joining and reshaping tensors: concat, stack, split, pad (NumPy's meaning), flatten and squeeze.

Two ops are new here: ``concat`` of two tensors along one axis (a longer
list is a balanced tree of them, each entry copied about log₂ k times) and
``pad`` with a constant.  ``stack`` is ``expand_dims`` and ``concat``;
``split`` gives slices (:func:`~symgrad.ops.index.getitem`); ``flatten``
and ``squeeze`` are reshapes.

Named dims: an axis that is joined, split or padded must have a fixed size
(``"batch" + 3`` is no dim); the other axes may be named, and must then
carry the same name in every input.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import sympy

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from .base import OpDef, apply, as_node, objarray, register
from .index import getitem, stored
from .linalg import expand_dims, reshape

__all__ = ["concat", "stack", "split", "pad", "flatten", "squeeze"]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _axis(op: str, axis: Any, ndim: int, what: str) -> int:
    if not _is_int(axis):
        raise ShapeError(f"{op}: axis must be an int, got {type(axis).__name__} {axis!r}")
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{op}: axis {axis} out of range for {what} of {ndim} axes")
    return int(axis) % ndim


def _nodes(op: str, xs: Any) -> list[Node]:
    if isinstance(xs, Node) or not isinstance(xs, (list, tuple)):
        raise GraphError(f"{op}: expects a list of nodes, got {type(xs).__name__}")
    if not xs:
        raise GraphError(f"{op}: needs at least one input, got an empty list")
    return [as_node(x, op) for x in xs]


def _along(x: Node, axis: int, start: int, stop: int) -> Node:
    """``x[..., start:stop, ...]`` on ``axis``."""
    return getitem(x, (slice(None),) * axis + (slice(start, stop),))


# -------------------------------------------------------------- concat
def _concat_shape(nodes, axis):
    a, b = nodes
    _check_joinable("concat", [a, b], axis)
    return tuple(a.shape[k] + b.shape[k] if k == axis else d for k, d in enumerate(a.shape))


def _check_joinable(op: str, xs: list[Node], axis: int) -> None:
    first = xs[0]
    for x in xs:
        if x.ndim != first.ndim:
            raise ShapeError(f"{op}: inputs need the same number of axes, got shapes "
                             f"{', '.join(format_shape(n.shape) for n in xs)} ({x.describe()})")
        if not isinstance(x.shape[axis], int):
            raise ShapeError(f"{op}: axis {axis} of {x.describe()} is the named dim {x.shape[axis]!r}; joining along "
                             f"it would give a size no shape can name (shapes "
                             f"{', '.join(format_shape(n.shape) for n in xs)})")
        rest = [d for k, d in enumerate(x.shape) if k != axis]
        if rest != [d for k, d in enumerate(first.shape) if k != axis]:
            raise ShapeError(f"{op}: shapes {', '.join(format_shape(n.shape) for n in xs)} differ outside axis "
                             f"{axis} ({first.describe()}, {x.describe()})")


def _concat_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    a, b = n.inputs
    axis = n.attr("axis")
    na, nb = a.shape[axis], b.shape[axis]
    return (_along(g, axis, 0, na) if needs[0] else None, _along(g, axis, na, na + nb) if needs[1] else None)


def _concat_index(node, idx, ix):
    a, b = node.inputs
    axis = node.attr("axis")
    i, na = idx[axis], a.shape[axis]
    shifted = tuple(i - na if k == axis else j for k, j in enumerate(idx))
    return sympy.Piecewise((ix.entry(a, idx), sympy.Lt(i, na)), (ix.entry(b, shifted), True))


register(OpDef("concat", 2, _concat_shape, lambda a, b, axis: np.concatenate((a, b), axis=axis),
               lambda a, b, axis: objarray(np.concatenate((a, b), axis=axis)), vjp=_concat_vjp, label="concat",
               attr_names=("axis",), fresh=True, index=_concat_index,
               emit=lambda args, target, axis: f"np.concatenate(({args[0]}, {args[1]}), axis={axis})"))


def concat(xs: Sequence[Any], axis: int = 0, name: str | None = None) -> Node:
    """Join tensors along an existing axis, as ``np.concatenate``.

    Parameters
    ----------
    xs : a list of nodes (or arrays) with the same number of axes and the same
        dims outside ``axis``; ``axis`` must have a fixed size in each.
    axis : the axis to join along (negative counts from the end).
    name : optional name of the result.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> a = sg.var("a", shape=("batch", 2)); b = sg.var("b", shape=("batch", 1))
    >>> c = sg.concat([a, b], axis=1)
    >>> c.shape
    ('batch', 3)
    >>> sg.evaluate(c, {"a": np.ones((2, 2)), "b": np.zeros((2, 1))})
    array([[1., 1., 0.],
           [1., 1., 0.]])
    """
    nodes = _nodes("concat", xs)
    if nodes[0].ndim == 0:
        raise ShapeError(f"concat: cannot join scalars ({nodes[0].describe()}); use sg.stack")
    ax = _axis("concat", axis, nodes[0].ndim, f"{nodes[0].describe()}")
    if len(nodes) == 1:
        return nodes[0] if name is None else getitem(nodes[0], (slice(None),) * ax + (slice(0, None),), name=name)
    _check_joinable("concat", nodes, ax)

    def tree(part: list[Node], top: bool) -> Node:
        if len(part) == 1:
            return part[0]
        half = len(part) // 2
        return apply("concat", tree(part[:half], False), tree(part[half:], False), axis=ax,
                     name=name if top else None)
    return tree(nodes, True)


def stack(xs: Sequence[Any], axis: int = 0, name: str | None = None) -> Node:
    """Join tensors of one shape along a new axis, as ``np.stack``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x = sg.var("x", shape=(2,))
    >>> s = sg.stack([x, 2 * x, 3 * x], axis=1)
    >>> s.shape
    (2, 3)
    >>> sg.evaluate(s, {"x": [1.0, 10.0]})
    array([[ 1.,  2.,  3.],
           [10., 20., 30.]])
    """
    nodes = _nodes("stack", xs)
    for x in nodes:
        if x.shape != nodes[0].shape:
            raise ShapeError(f"stack: inputs need one shape, got {', '.join(format_shape(n.shape) for n in nodes)} "
                             f"({nodes[0].describe()}, {x.describe()})")
    ax = _axis("stack", axis, nodes[0].ndim + 1, "a result")
    return concat([expand_dims(x, ax) for x in nodes], axis=ax, name=name)


def split(x: Any, sections: Any, axis: int = 0) -> list[Node]:
    """Split a tensor into pieces along ``axis``, as ``np.split``.

    ``sections`` is a number of equal pieces (which must divide the axis) or a
    list of split points (``[2, 5]`` gives ``x[:2]``, ``x[2:5]``, ``x[5:]``).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x = sg.var("x", shape=("batch", 5))
    >>> [p.shape for p in sg.split(x, [1, 3], axis=1)]
    [('batch', 1), ('batch', 2), ('batch', 2)]
    >>> a, b = sg.split(sg.const(np.arange(4.0)), 2)
    >>> sg.evaluate(b)
    array([2., 3.])
    """
    x = as_node(x, "split")
    if x.ndim == 0:
        raise ShapeError(f"split: cannot split a scalar ({x.describe()})")
    ax = _axis("split", axis, x.ndim, x.describe())
    n = x.shape[ax]
    if _is_int(sections):
        count = int(sections)
        if count < 1:
            raise ShapeError(f"split: the number of sections must be at least 1, got {count} ({x.describe()})")
        if count == 1:
            return [x]
        if not isinstance(n, int):
            raise ShapeError(f"split: axis {ax} of {x.describe()} is the named dim {n!r}, whose size is not known "
                             f"when the graph is built")
        if n % count:
            raise ShapeError(f"split: {count} sections do not divide axis {ax} of size {n} ({x.describe()}); "
                             f"give split points instead")
        points = [n // count * k for k in range(1, count)]
    elif isinstance(sections, (list, tuple, np.ndarray)) and not isinstance(sections, str):
        points = list(np.asarray(sections).reshape(-1)) if isinstance(sections, np.ndarray) else list(sections)
        if any(not _is_int(p) for p in points):
            raise ShapeError(f"split: split points must be ints, got {sections!r} ({x.describe()})")
        points = [int(p) for p in points]
        if not points:
            return [x]
        if not isinstance(n, int):
            raise ShapeError(f"split: axis {ax} of {x.describe()} is the named dim {n!r}, whose size is not known "
                             f"when the graph is built")
    else:
        raise ShapeError(f"split: sections must be an int or a list of split points, got "
                         f"{type(sections).__name__} {sections!r}")
    bounds = [None] + points + [None]
    return [getitem(x, (slice(None),) * ax + (slice(lo, hi),)) for lo, hi in zip(bounds[:-1], bounds[1:])]


# ----------------------------------------------------------------- pad
def _pad_shape(nodes, widths, value):
    (x,) = nodes
    return tuple(d + lo + hi if isinstance(d, int) else d for d, (lo, hi) in zip(x.shape, widths))


def _pad_impl(x, widths, value):
    x = np.asarray(x)
    out = np.full(tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, widths)), value,
                  dtype=np.result_type(x, value))
    out[tuple(slice(lo, lo + d) for d, (lo, _) in zip(x.shape, widths))] = x
    return out


def _sym_number(value: float) -> sympy.Expr:
    from ..formulas.notation import const_number  # (formulas import the ops)
    return const_number(value)


def _sym_pad(x, widths, value):
    return objarray(np.pad(x, widths, mode="constant", constant_values=_sym_number(value)))


def _pad_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    x = n.inputs[0]
    key = tuple(slice(lo, lo + d) if isinstance(d, int) else slice(None)
                for d, (lo, _) in zip(x.shape, n.attr("widths")))
    return (getitem(g, key),)


def _pad_index_rule(node, idx, ix):
    """``X[i − before]``: when X is a tensor of its own, the entries read outside it are the zero padding;
    otherwise (an inlined X, or another value) the range is a condition."""
    x, value = node.inputs[0], node.attr("value")
    widths = node.attr("widths")
    inner = tuple(i - lo for i, (lo, _) in zip(idx, widths))
    entry = ix.entry(x, inner)
    if value == 0.0 and stored(ix, x):
        return entry
    inside = []
    for k, d, (lo, hi) in zip(inner, x.shape, widths):
        if lo or hi:
            inside += [sympy.Ge(k, 0), sympy.Lt(k, d)]
    return sympy.Piecewise((entry, sympy.And(*inside)), (_sym_number(value), True))


register(OpDef("pad", 1, _pad_shape, _pad_impl, _sym_pad, vjp=_pad_vjp, label="pad", attr_names=("widths", "value"),
               fresh=True, preserves_dtype=True, index=_pad_index_rule))


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None


def _pad_widths(x: Node, pad_width: Any) -> tuple:
    """NumPy's forms of ``pad_width`` (an int, ``(n,)``, ``(before, after)``, one pair per axis) as one
    ``(before, after)`` pair of ints per axis."""
    try:
        arr = np.asarray(pad_width)
    except (TypeError, ValueError):
        arr = np.asarray(None, dtype=object)
    if arr.dtype.kind not in "iu" or arr.ndim > 2:
        raise ShapeError(f"pad: pad_width must be an int, a (before, after) pair or one pair per axis, got "
                         f"{pad_width!r} ({x.describe()})")
    try:
        pairs = np.broadcast_to(arr.reshape(arr.shape if arr.ndim == 2 else (-1,)) if arr.ndim else arr,
                                (x.ndim, 2))
    except ValueError:
        raise ShapeError(f"pad: pad_width {pad_width!r} does not fit the {x.ndim} axes of {x.describe()} "
                         f"(shape {format_shape(x.shape)})") from None
    if pairs.size and pairs.min() < 0:
        raise ShapeError(f"pad: pad_width cannot be negative, got {pad_width!r} ({x.describe()})")
    return tuple((int(lo), int(hi)) for lo, hi in pairs)


def pad(x: Any, pad_width: Any, value: float = 0.0, name: str | None = None) -> Node:
    """Pad with a constant, as ``np.pad(x, pad_width, constant_values=value)``.

    Parameters
    ----------
    x : a node.
    pad_width : as NumPy takes it: ``n`` (every side of every axis), ``(n,)``,
        ``(before, after)`` (every axis), or ``((before, after), ...)`` one
        pair per axis.  A named dim can only get ``(0, 0)``.
    value : the number written around ``x``.
    name : optional name of the result.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x = sg.var("x", shape=("batch", 2))
    >>> p = sg.pad(x, ((0, 0), (1, 2)))
    >>> p.shape
    ('batch', 5)
    >>> sg.evaluate(p, {"x": [[1.0, 2.0]]})
    array([[0., 1., 2., 0., 0.]])
    """
    x = as_node(x, "pad")
    widths = _pad_widths(x, pad_width)
    v = _finite(value)
    if v is None:
        text = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise GraphError(f"pad: value must be a finite number, got {type(value).__name__} {text} ({x.describe()})")
    for k, (d, (lo, hi)) in enumerate(zip(x.shape, widths)):
        if not isinstance(d, int) and (lo or hi):
            raise ShapeError(f"pad: axis {k} of {x.describe()} is the named dim {d!r}, which cannot be padded "
                             f"(its padded size would be no dim); pad_width {widths[k]} there must be (0, 0)")
    if not any(lo or hi for lo, hi in widths):
        return x
    return apply("pad", x, widths=widths, value=v, name=name)


# ----------------------------------------------------- flatten, squeeze
def flatten(x: Any, start_axis: int = 1, end_axis: int = -1, name: str | None = None) -> Node:
    """Merge axes ``start_axis`` … ``end_axis`` into one, as ``torch.flatten`` (a reshape).

    The merged axes must have fixed sizes, or be one named dim among size-1
    axes.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.flatten(sg.var("x", shape=("batch", 3, 4, 5))).shape
    ('batch', 60)
    >>> sg.flatten(sg.var("x", shape=("batch", 3, 4, 5)), 1, 2).shape
    ('batch', 12, 5)
    """
    x = as_node(x, "flatten")
    nd = max(x.ndim, 1)
    start = _axis("flatten", start_axis, nd, f"{x.describe()}")
    end = _axis("flatten", end_axis, nd, f"{x.describe()}")
    if x.ndim == 0:
        return reshape(x, (1,), name=name)
    if start > end:
        raise ShapeError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} ({x.describe()})")
    group = x.shape[start:end + 1]
    if len(group) == 1:
        return x
    named = [d for d in group if not isinstance(d, int)]
    fixed = math.prod(d for d in group if isinstance(d, int))
    if not named:
        merged: Any = fixed
    elif len(named) == 1 and fixed == 1:
        merged = named[0]
    else:
        raise ShapeError(f"flatten: cannot merge axes {start}..{end} {format_shape(group)} of {x.describe()}: "
                         f"a named dim times other dims is no dim")
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1:], name=name)


def squeeze(x: Any, axis: Any = None, name: str | None = None) -> Node:
    """Drop axes of size 1, as ``np.squeeze``: all of them (``axis=None``; a named dim is kept) or those in
    ``axis``.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.squeeze(sg.var("x", shape=("batch", 1, 3, 1))).shape
    ('batch', 3)
    >>> sg.squeeze(sg.var("x", shape=(1, 3, 1)), axis=0).shape
    (3, 1)
    """
    x = as_node(x, "squeeze")
    if axis is None:
        axes = [k for k, d in enumerate(x.shape) if d == 1]
    else:
        given = (axis,) if _is_int(axis) else axis
        if not isinstance(given, (tuple, list)) or any(not _is_int(a) for a in given):
            raise ShapeError(f"squeeze: axis must be an int or a tuple of ints, got {axis!r}")
        axes = sorted({_axis("squeeze", a, x.ndim, x.describe()) for a in given})
        if len(axes) != len(given):
            raise ShapeError(f"squeeze: repeated axis in {axis!r}")
        for a in axes:
            if x.shape[a] != 1:
                size = f"the named dim {x.shape[a]!r}" if isinstance(x.shape[a], str) else f"size {x.shape[a]}"
                raise ShapeError(f"squeeze: axis {a} of {x.describe()} (shape {format_shape(x.shape)}) has {size}, "
                                 f"not 1")
    if not axes:
        return x
    target = tuple(d for k, d in enumerate(x.shape) if k not in axes)
    return reshape(x, target, name=name)
