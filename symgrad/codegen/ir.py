"""The compiler's intermediate form: values with structural sharing, lowered from graph nodes.

A :class:`Value` is a leaf (an input, a scalar argument, a param, optimizer
state, a constant) or an op (an :class:`~symgrad.ops.base.OpDef`) applied
to values.  A :class:`Table` makes one value per (op, attrs, inputs) and one
per constant, over forward and backward nodes alike, and folds constant
subexpressions; :func:`lower` builds it from a graph.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import GraphError
from ..graph import Graph, Node, ShapedAttrs, format_shape

class Value(ShapedAttrs):
    """One value of the program.

    ``op`` is the OpDef (None for leaves, whose ``role`` says what they are);
    ``nodes`` are the graph nodes it computes (several after sharing);
    ``order`` is the smallest node id, so scheduling follows the graph's
    order; ``index`` is a leaf's position among the inputs or state;
    ``ident`` is set when the emitter names it; ``pyscalar`` marks a
    Python float (the learning rate, a count, and arithmetic on them).
    """

    __slots__ = ("op", "args", "attrs", "shape", "dtype", "role", "value", "nodes", "order", "index",
                 "ident", "pyscalar")

    def __init__(self, op, args: tuple, attrs: tuple, shape: tuple, dtype: str, role: str = "op",
                 value: Any = None, order: int = 0, index: int = -1):
        self.op, self.args, self.attrs = op, tuple(args), tuple(attrs)
        self.shape, self.dtype, self.role, self.value = tuple(shape), dtype, role, value
        self.nodes: list[Node] = []
        self.order, self.index = order, index
        self.ident: str | None = None
        self.pyscalar = False

    def is_const(self, value: float | None = None) -> bool:
        if self.role != "const":
            return False
        return value is None or bool(np.all(self.value == value))

    def __repr__(self) -> str:  # debugging aid
        what = self.op.name if self.op is not None else self.role
        return f"<{what} {format_shape(self.shape)} #{id(self) % 10000}>"


class Table:
    """Hash-consing of values: one value per (op, attrs, inputs) and per constant."""

    def __init__(self, dtype: str):
        self.dtype = dtype
        self.keys: dict = {}
        self.vals: list[Value] = []

    def add(self, key, make: Callable[[], Value], order: int, nodes=()) -> Value:
        v = self.keys.get(key) if key is not None else None
        if v is None:
            v = make()
            if key is not None:
                self.keys[key] = v
            self.vals.append(v)
        v.order = min(v.order, order)
        for n in nodes:
            if n not in v.nodes:
                v.nodes.append(n)
        return v

    def leaf(self, node: Node, role: str, index: int = -1) -> Value:
        if role == "const":
            return self.const(node.value, node.id, (node,))

        def make():
            return Value(None, (), (), node.shape, node.dtype, role=role, order=node.id, index=index,
                         value=node.value if role == "param" else None)
        return self.add(("leaf", id(node)), make, node.id, (node,))

    def copy_leaf(self, v: Value) -> Value:
        """The same leaf in this table (for a rewrite that copies one table into another)."""
        if v.role == "const":
            return self.const(v.value, v.order, v.nodes)
        return self.add(("leaf", id(v)), lambda: Value(None, (), (), v.shape, v.dtype, role=v.role, value=v.value,
                                                       order=v.order, index=v.index), v.order, v.nodes)

    def const(self, value: Any, order: int, nodes=()) -> Value:
        arr = np.array(value, dtype=np.float64)
        arr.setflags(write=False)
        key = ("const", arr.shape, arr.tobytes())
        return self.add(key, lambda: Value(None, (), (), arr.shape, "float", role="const", value=arr, order=order),
                        order, nodes)

    def _key(self, op, args: Sequence[Value], attrs: tuple):
        ids = tuple(id(a) for a in args)
        if op.commutative:
            ids = tuple(sorted(ids))
        key = (id(op), ids, tuple(attrs))
        try:
            hash(key)
        except TypeError:  # an unhashable attr: no sharing for this value
            return None
        return key

    def op(self, op, args: Sequence[Value], attrs: tuple, shape: tuple, dtype: str = "float",
           order: int = 0, nodes=()) -> Value:
        args = tuple(args)
        if op.foldable and not op.internal and args and all(a.role == "const" for a in args):
            folded = _fold(op, args, attrs)
            if folded is not None and folded.shape == tuple(shape):
                return self.const(folded, order, nodes)
        return self.add(self._key(op, args, attrs), lambda: Value(op, args, attrs, shape, dtype, order=order),
                        order, nodes)

    def find(self, op, args: Sequence[Value], attrs: tuple = ()) -> Value | None:
        key = self._key(op, args, attrs)
        return self.keys.get(key) if key is not None else None


def _fold(op, args, attrs) -> np.ndarray | None:
    try:
        with np.errstate(all="ignore"):
            return np.asarray(op.impl(*[a.value for a in args], **dict(attrs)), dtype=np.float64)
    except Exception:  # noqa: BLE001  not foldable: computed at run time instead
        return None


def lower(roots: list[Node], roles: Mapping[Node, tuple[str, int]], dtype: str) -> tuple[Table, dict]:
    """Nodes -> values with structural sharing; returns the table and node -> value."""
    graph = Graph(roots)
    table = Table(dtype)
    vals: dict[Node, Value] = {}
    for node in graph.order:
        if node.is_leaf:
            if node.kind == "var":
                if node not in roles:
                    raise GraphError(f"compile: the graph uses var {node.name!r} ({node.describe()}), "
                                     f"which is not listed in inputs")
                role, index = roles[node]
            elif node.kind in ("param", "buffer"):  # a buffer is read (and stored) like a param
                role, index = roles.get(node, ("param", -1))
            elif node.kind == "random":  # drawn at each call
                role, index = "random", -1
            else:
                role, index = "const", -1
            vals[node] = table.leaf(node, role, index)
            continue
        vals[node] = _lower_op(node, table, vals)
    return table, vals


def _lower_op(node: Node, table: Table, vals: dict) -> Value:
    if node.op.outputs is not None:  # a loop (symgrad.scan), with what it can compute before it taken out
        from .loops import lower_scan
        return lower_scan(node, table, vals, lambda n: table.leaf(n, "const") if n.kind == "const"
                          else _lower_op(n, table, vals))
    args = [vals[i] for i in node.inputs]
    return table.op(node.op, args, node.attrs, node.shape, node.dtype, node.id, (node,))
