"""Indexing: NumPy's ``x[key]`` on nodes, and the scatters that are its gradients.

A key may hold ints (negative too), slices with any step, ``None``, one
``...`` and at most one integer array: a constant array, or an int var
(``E[y]`` picks rows of an embedding table).  :func:`getitem` turns the key
into one of two ops:

* ``getitem``: ints, slices and ``None`` only (NumPy's basic indexing, a
  view); its gradient is ``scatter``, the cotangent written into zeros of
  the input's shape;
* ``gather``: a key with an index array, which is the op's second input (an
  int var, or a constant); its gradient is ``scatter_add``, which adds the
  cotangent into zeros as ``np.add.at`` does, so repeated indices
  accumulate.

Each scatter is differentiable in its values input (its gradient indexes the
cotangent with the same key), so gradients of gradients work.

The key is kept as an attr in a literal form, one entry per key position
(``...`` expanded): an int (non-negative on a fixed dim), ``(start, stop,
step)`` for a slice (``(None, None, ±1)`` for all of an axis), ``None`` for a
new axis, and ``()`` for the place of the index array; :func:`key_text`
writes it back as NumPy source (``1:3, None, ::-1, 0``).

Named dims: an int index (``x[-1]`` on ``"batch"``) and a slice that keeps
the whole dim (``:``, ``::-1``) work, the size being known at run time; a
slice whose length depends on the size (``x[1:]`` on ``"batch"``) raises a
ShapeError, since no shape could name that length.  Pick such entries with
an int var index instead (``sg.getitem(x, idx)`` with ``idx`` fed
``np.arange(1, n)``).

In index notation an index array reads as a tensor of positions
(``E[y[i], j]``), which is right for the non-negative indices that class
labels and token ids are; NumPy's negative indices in a fed int var wrap
when evaluated and compiled, not in the printed formula.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from ..errors import FeedError, GraphError, ShapeError
from ..graph import Node, format_shape
from .base import OpDef, apply, as_node, const, objarray, register

#: the key entry that stands for the index array (input 1 of gather and input 2 of scatter_add)
ARRAY = ()

__all__ = ["getitem", "key_text"]


# ------------------------------------------------------------------ keys
def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_slice(item: Any) -> bool:
    return type(item) is tuple and len(item) == 3


def _what(v: Any) -> str:
    text = repr(v)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(v).__name__} {text}"


def _slice_int(v: Any, x: Node, key: Any) -> int | None:
    if v is None:
        return None
    if not _is_int(v):
        raise GraphError(f"getitem: slice bounds and steps must be ints or None, got {_what(v)} in key {key!r} "
                         f"({x.describe()})")
    return int(v)


def _slice_entry(s: slice, n: Any, axis: int, x: Node, key: Any) -> tuple:
    start, stop, step = (_slice_int(v, x, key) for v in (s.start, s.stop, s.step))
    step = 1 if step is None else step
    if step == 0:
        raise ShapeError(f"getitem: slice step cannot be zero (axis {axis} of {x.describe()})")
    if not isinstance(n, int):  # a named dim: only slices that keep all of it
        whole = (step == 1 and start in (None, 0) and stop is None) or \
            (step == -1 and start in (None, -1) and stop is None)
        if not whole:
            text = f"{'' if start is None else start}:{'' if stop is None else stop}" + \
                ("" if step == 1 else f":{step}")
            raise ShapeError(
                f"getitem: slice {text} of named dim {n!r} (axis {axis} of {x.describe()}, shape "
                f"{format_shape(x.shape)}) has a length that depends on the size fed for {n!r}, which no shape "
                f"can name; slice only ':' or '::-1' of a named dim, or pick entries with an int var index "
                f"(sg.getitem(x, idx), idx fed e.g. np.arange(1, n))")
        return (None, None, step)
    start, stop, step = slice(start, stop, step).indices(n)
    length = len(range(start, stop, step))
    if length == 0:
        return (0, 0, 1)
    if length == n and abs(step) == 1:  # all of the axis, forwards or backwards
        return (None, None, step)
    return (start, None if stop < 0 else stop, step)


def _slice_length(item: tuple, n: Any) -> Any:
    start, stop, step = item
    if start is None:  # the whole axis, forwards or backwards
        return n
    return len(range(start, -1 if stop is None else stop, step))


def _array_entry(value: Any, n: Any, axis: int, x: Node) -> Node:
    """An index array given as data: a const node of its (int) positions, range-checked on a fixed dim."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged lists
        raise GraphError(f"getitem: an index array must be a rectangular array of ints ({e}; {x.describe()})") \
            from None
    if arr.dtype.kind == "b":
        raise GraphError(f"getitem: boolean masks are not supported as indices ({x.describe()}); "
                         f"use sg.where to select entries")
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise GraphError(f"getitem: an index array must hold ints, got dtype {arr.dtype} ({x.describe()})")
    if isinstance(n, int):
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise ShapeError(f"getitem: index array values {arr.min()}..{arr.max()} out of range for axis {axis} "
                             f"of size {n} ({x.describe()}, shape {format_shape(x.shape)})")
        arr = np.where(arr < 0, arr + n, arr)
    return const(arr.astype(np.float64))


def _normalize_key(x: Node, key: Any) -> tuple[tuple, Node | None]:
    """The literal form of ``key`` on ``x`` (one entry per key position, no ``...``) and the index
    array's node (None without one)."""
    entries = list(key) if type(key) is tuple else [key]
    if sum(1 for e in entries if e is Ellipsis) > 1:
        raise GraphError(f"getitem: a key can hold only one '...', got {key!r} ({x.describe()})")
    arrays = [e for e in entries if isinstance(e, (Node, list, tuple, np.ndarray)) and not
              (isinstance(e, np.ndarray) and e.ndim == 0)]
    if len(arrays) > 1:
        raise GraphError(f"getitem: at most one index array per key, got {len(arrays)} ({x.describe()}); "
                         f"index one axis at a time")
    used = sum(1 for e in entries if e is not None and e is not Ellipsis)
    if used > x.ndim:
        raise ShapeError(f"getitem: too many indices: {used} for the {x.ndim} axes of {x.describe()} "
                         f"(shape {format_shape(x.shape)})")
    pos = next((i for i, e in enumerate(entries) if e is Ellipsis), None)
    if pos is not None:
        entries[pos:pos + 1] = [slice(None)] * (x.ndim - used)
    else:
        entries += [slice(None)] * (x.ndim - used)
    items: list = []
    index: Node | None = None
    axis = 0
    for e in entries:
        if e is None:
            items.append(None)
            continue
        n = x.shape[axis]
        if isinstance(e, np.ndarray) and e.ndim == 0 and e.dtype.kind in "iu":
            e = e.item()
        if _is_int(e):
            k = int(e)
            if isinstance(n, int):
                if not -n <= k < n:
                    raise ShapeError(f"getitem: index {k} out of range for axis {axis} of size {n} "
                                     f"({x.describe()}, shape {format_shape(x.shape)})")
                k %= n
            items.append(k)
        elif isinstance(e, slice):
            items.append(_slice_entry(e, n, axis, x, key))
        elif isinstance(e, Node):
            if e.dtype != "int":
                raise GraphError(f"getitem: an index node must be an int var, got {e.describe()} of dtype "
                                 f"{e.dtype} (indexing {x.describe()})")
            index = e
            items.append(ARRAY)
        elif isinstance(e, (list, tuple, np.ndarray)):
            index = _array_entry(e, n, axis, x)
            items.append(ARRAY)
        else:
            raise GraphError(f"getitem: a key entry must be an int, a slice, None, '...', an int array or an "
                             f"int var, got {_what(e)} ({x.describe()})")
        axis += 1
    return tuple(items), index


def _numpy_key(items: tuple, index: Any = None) -> tuple:
    """The key as NumPy takes it; a trailing ``...`` makes an all-int key give a 0-d array, not a scalar."""
    out = []
    for item in items:
        if item is None:
            out.append(None)
        elif item == ARRAY:
            out.append(index)
        elif _is_slice(item):
            out.append(slice(*item))
        else:
            out.append(item)
    return tuple(out) + (Ellipsis,)


def _layout(items: tuple, index_ndim: int) -> list:
    """Where each axis of the result comes from: ``("item", p)`` for the slice or new axis at key position
    ``p``, ``("adv", k)`` for axis ``k`` of the index array.  As in NumPy, ints count with an index array as
    advanced indices, whose axes take the place of the first of them when they are next to each other in
    the key and otherwise come first."""
    has_array = ARRAY in items
    advanced = [p for p, it in enumerate(items) if it == ARRAY or (has_array and _is_int(it))]
    basic = [("item", p) for p, it in enumerate(items) if p not in advanced and not _is_int(it)]
    if not has_array:
        return basic
    adv = [("adv", k) for k in range(index_ndim)]
    if advanced == list(range(advanced[0], advanced[-1] + 1)):
        at = sum(1 for _, p in basic if p < advanced[0])
        return basic[:at] + adv + basic[at:]
    return adv + basic


def _axes_of(items: tuple) -> dict:
    """Key position -> the input axis it indexes (new axes index none)."""
    out, axis = {}, 0
    for p, it in enumerate(items):
        if it is not None:
            out[p] = axis
            axis += 1
    return out


def _indexed_shape(x_shape: tuple, items: tuple, index_shape: tuple = ()) -> tuple:
    axes = _axes_of(items)
    out = []
    for kind, p in _layout(items, len(index_shape)):
        if kind == "adv":
            out.append(index_shape[p])
        elif items[p] is None:
            out.append(1)
        else:
            out.append(_slice_length(items[p], x_shape[axes[p]]))
    return tuple(out)


# ------------------------------------------------------------- getitem
def _getitem_shape(nodes, key):
    return _indexed_shape(nodes[0].shape, key)


def _getitem_impl(x, key):
    try:
        return np.asarray(x)[_numpy_key(key)]
    except IndexError as e:  # an int beyond a named dim's fed size
        raise FeedError(f"getitem: {e} (key {key_text(key, np.shape(x))})") from None


def _slice_text(item: tuple, n: Any) -> str:
    start, stop, step = item
    if start is None:
        return ":" if step == 1 else "::-1"
    first = "" if (step > 0 and start == 0) or (step < 0 and start == n - 1) else str(start)
    last = "" if stop is None or (step > 0 and stop == n) else str(stop)
    return f"{first}:{last}" + ("" if step == 1 else f":{step}")


def key_text(key: tuple, shape: tuple, index: str = "idx") -> str:
    """The key as it is written in NumPy source: ``1:3, None, ::-1, 0``."""
    axes = _axes_of(key)
    parts = []
    for p, it in enumerate(key):
        if it is None:
            parts.append("None")
        elif it == ARRAY:
            parts.append(index)
        elif _is_slice(it):
            parts.append(_slice_text(it, shape[axes[p]]))
        else:
            parts.append(str(it))
    if all(_is_int(it) for it in key):  # an all-int key: a 0-d view, not a NumPy scalar
        parts.append("...")
    return ", ".join(parts)


def _emit_getitem(args, target, key):
    x = args[0]
    base = f"np.asarray({x})" if x.scalar or x.ndim == 0 else str(x)
    return f"{base}[{key_text(key, x.shape)}]"


def _sym_getitem(x, key):
    return objarray(x[_numpy_key(key)])


def _source_indices(items: tuple, x: Node, index: Node | None, idx: tuple, ix) -> tuple:
    """Indices into ``x`` for indices ``idx`` of ``x[key]``."""
    layout = _layout(items, index.ndim if index is not None else 0)
    at_item = {p: i for (kind, p), i in zip(layout, idx) if kind == "item"}
    at_array = tuple(i for (kind, _), i in zip(layout, idx) if kind == "adv")
    axes = _axes_of(items)
    out = []
    for p, it in enumerate(items):
        if it is None:
            continue
        n = ix.dim(x.shape[axes[p]])
        if it == ARRAY:
            pos = ix.entry(index, at_array)
            if index.kind == "const" and np.any(index.value < 0):  # negative positions along a named dim
                pos = sympy.Mod(pos, n)
            out.append(pos)
        elif _is_slice(it):
            start, _, step = it
            i = at_item[p]
            out.append((i if step == 1 else n - 1 - i) if start is None else start + step * i)
        else:
            out.append(sympy.Integer(it) if it >= 0 else n + it)
    return tuple(out)


def _getitem_index(node, idx, ix):
    x = node.inputs[0]
    return ix.entry(x, _source_indices(node.attr("key"), x, None, idx, ix))


register(OpDef("getitem", 1, _getitem_shape, _getitem_impl, _sym_getitem,
               vjp=lambda n, g, needs: (apply("scatter", g, n.inputs[0], key=n.attr("key")),),
               label="index", attr_names=("key",), emit=_emit_getitem, view=True, index=_getitem_index))


# ------------------------------------------------------------- scatter
def _check_values(op: str, g: Node, ref: Node, key: tuple, index_shape: tuple = ()) -> tuple:
    want = _indexed_shape(ref.shape, key, index_shape)
    if g.shape != want:
        raise ShapeError(f"{op}: values of shape {format_shape(g.shape)} do not fit key "
                         f"[{key_text(key, ref.shape)}] of {format_shape(ref.shape)}, which selects "
                         f"{format_shape(want)} ({g.describe()}, {ref.describe()})")
    return ref.shape


def _zeros(g, ref):
    return np.zeros(np.shape(ref), dtype=np.result_type(g, ref))


def _scatter_impl(g, ref, key):
    out = _zeros(g, ref)
    out[_numpy_key(key)] = g
    return out


def _sym_scatter(g, ref, key):
    out = np.full(ref.shape, sympy.Integer(0), dtype=object)
    out[_numpy_key(key)] = g
    return out


def stored(ix, node: Node) -> bool:
    """Whether index notation reads ``node``'s entries as a tensor of its own (a leaf or a node written
    by its symbol), so that a read outside it is 0; an inlined node's formula knows no bounds."""
    return node.is_leaf or node in ix.symbols


def _scattered_entry(node: Node, g: Node, ref: Node, index: Node | None, idx: tuple, ix) -> sympy.Expr:
    """The entry at ``idx`` of zeros of ``ref``'s shape into which ``g`` was added at the node's key:
    Σ over the index array's positions of ``g``, where the key reaches ``idx`` (else 0).  A slice's
    range is left to index notation's rule that an entry read outside a tensor is 0 when ``g`` is
    one; for an inlined ``g`` it is a condition."""
    items = node.attr("key")
    axes = _axes_of(items)
    conds, ranges, summed, at_item = [], [], [], {}
    at_array: tuple = ()
    if index is not None:
        at_array = tuple(ix.dummy(d) for d in index.shape)
        summed = list(at_array)
    for p, it in enumerate(items):
        if it is None:
            at_item[p] = sympy.Integer(0)
            continue
        j = idx[axes[p]]
        n = ix.dim(ref.shape[axes[p]])
        if it == ARRAY:
            pos = ix.entry(index, at_array)
            if index.kind == "const" and np.any(index.value < 0):
                pos = sympy.Mod(pos, n)
            conds.append(sympy.Eq(pos, j))
        elif _is_slice(it):
            start, _, step = it
            if start is None:
                at_item[p] = j if step == 1 else n - 1 - j
                continue
            if abs(step) == 1:
                at_item[p] = (j - start) * step
            else:
                conds.append(sympy.Eq(sympy.Mod(j - start, abs(step)), 0))
                at_item[p] = (j - start) / step
            ranges += [sympy.Ge(at_item[p], 0), sympy.Lt(at_item[p], _slice_length(it, ref.shape[axes[p]]))]
        else:
            conds.append(sympy.Eq(j, it if it >= 0 else n + it))
    if not stored(ix, g):
        conds += ranges
    layout = _layout(items, len(at_array))
    g_idx = tuple(at_item[p] if kind == "item" else at_array[p] for kind, p in layout)
    body = ix.entry(g, g_idx)
    if conds:
        body = sympy.Piecewise((body, sympy.And(*conds)), (0, True))
    return ix.sum(body, *summed)


def _scatter_index(node, idx, ix):
    g, ref = node.inputs
    return _scattered_entry(node, g, ref, None, idx, ix)


register(OpDef("scatter", 2, lambda nodes, key: _check_values("scatter", nodes[0], nodes[1], key),
               _scatter_impl, _sym_scatter,
               vjp=lambda n, g, needs: (apply("getitem", g, key=n.attr("key")), None),
               label="scatter", attr_names=("key",), fresh=True, preserves_dtype=True, index=_scatter_index))


# -------------------------------------------------------------- gather
def _positions(index) -> np.ndarray:
    """Index values as NumPy positions (a constant index array is stored as floats)."""
    arr = np.asarray(index)
    return arr.astype(np.intp) if arr.dtype.kind == "f" else arr


def _gather_impl(x, index, key):
    try:
        return np.asarray(x)[_numpy_key(key, _positions(index))]
    except IndexError as e:  # a fed index beyond its axis
        raise FeedError(f"gather: index out of range: {e}") from None


def _symbolic_positions(index) -> np.ndarray:
    try:
        return np.vectorize(int, otypes=[np.intp])(index)
    except TypeError:
        raise GraphError("gather: entries picked by an int var have no closed form (expand=True); "
                         "use index notation or a constant index") from None


def _sym_gather(x, index, key):
    return objarray(x[_numpy_key(key, _symbolic_positions(index))])


def _gather_shape(nodes, key):
    x, index = nodes
    return _indexed_shape(x.shape, key, index.shape)


def _gather_index(node, idx, ix):
    x, index = node.inputs
    return ix.entry(x, _source_indices(node.attr("key"), x, index, idx, ix))


register(OpDef("gather", 2, _gather_shape, _gather_impl, _sym_gather,
               vjp=lambda n, g, needs: (apply("scatter_add", g, n.inputs[0], n.inputs[1], key=n.attr("key")), None),
               label="gather", attr_names=("key",), fresh=True, preserves_dtype=True, int_inputs=True,
               index=_gather_index))


def _scatter_add_impl(g, ref, index, key):
    out = _zeros(g, ref)
    try:
        np.add.at(out, _numpy_key(key, _positions(index)), g)
    except IndexError as e:
        raise FeedError(f"scatter_add: index out of range: {e}") from None
    return out


def _sym_scatter_add(g, ref, index, key):
    out = np.full(ref.shape, sympy.Integer(0), dtype=object)
    np.add.at(out, _numpy_key(key, _symbolic_positions(index)), g)
    return out


def _scatter_add_index(node, idx, ix):
    g, ref, index = node.inputs
    return _scattered_entry(node, g, ref, index, idx, ix)


register(OpDef("scatter_add", 3,
               lambda nodes, key: _check_values("scatter_add", nodes[0], nodes[1], key, nodes[2].shape),
               _scatter_add_impl, _sym_scatter_add,
               vjp=lambda n, g, needs: (apply("gather", g, n.inputs[2], key=n.attr("key")), None, None),
               label="scatter-add", attr_names=("key",), fresh=True, preserves_dtype=True, int_inputs=True,
               index=_scatter_add_index))


# -------------------------------------------------------------- public
def getitem(x, key, name: str | None = None) -> Node:
    """``x[key]`` with NumPy's meaning.

    Parameters
    ----------
    x : a float node (or a number or array, made a constant).
    key : ints (negative too), slices (any step), ``None``, one ``...``, and at
        most one integer array: a list or array of ints, or an int var (its
        values picked at run time, e.g. token ids into an embedding table).
        As in NumPy, ints next to the index array count as advanced indices
        (``x[0, :, idx]`` puts the index array's axes first).
    name : optional name of the result.

    Returns
    -------
    Node
        ``x[key]``.  Its gradient writes the cotangent back into zeros of
        ``x``'s shape; with an index array repeated positions add up, as
        ``np.add.at``.

    Raises
    ------
    ShapeError
        an index out of range of a fixed dim, too many indices, a zero step,
        or a slice of a named dim whose length depends on its size
        (``x[1:]`` on ``"batch"``; ``x[-1]`` and ``x[::-1]`` work).
    GraphError
        a key entry of another type (a float, a string, a boolean mask, a
        float node) or more than one index array.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x = sg.var("x", shape=("batch", 4))
    >>> last = sg.getitem(x, (-1, slice(None, None, 2)))
    >>> last.shape
    (2,)
    >>> sg.evaluate(last, {"x": np.arange(12.0).reshape(3, 4)})
    array([ 8., 10.])
    >>> E = sg.param("E", np.arange(6.0).reshape(3, 2))
    >>> y = sg.var("y", shape=("batch",), dtype="int")
    >>> rows = sg.getitem(E, y)
    >>> rows.shape
    ('batch', 2)
    >>> sg.evaluate(sg.grad(sg.sum(rows), E), {"y": [2, 0, 2]})
    array([[1., 1.],
           [0., 0.],
           [2., 2.]])
    """
    x = as_node(x, "getitem")
    if x.dtype == "int":
        raise GraphError(f"getitem: {x.describe()} holds integers; indexing int nodes is not supported "
                         f"(the result would be a float node)")
    items, index = _normalize_key(x, key)
    if index is not None:
        return apply("gather", x, index, key=items, name=name)
    whole = len(items) == x.ndim and all(it == (None, None, 1) for it in items)
    if whole and name is None:  # x[:], x[...]: x itself
        return x
    return apply("getitem", x, key=items, name=name)
