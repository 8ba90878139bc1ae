"""Graph rewriting for loops: rebuilding nodes over new inputs, and batching a loop body's per-step
computation over the time axis.

:func:`substitute` copies the part of a graph that depends on some nodes with those nodes replaced (a
traced body closed over its placeholders, a backward body reading saved values).  :class:`Batcher`
computes a per-step value for all steps at once, from the stacked ``(T, ...)`` arrays of the per-step
values it reads: ``x_t W + b`` becomes ``X W + b`` with ``X`` of shape ``(T, batch, in)``.  The
gradient of :func:`symgrad.scan` uses it to take the parameter gradients out of the backward loop
(``Σ_t h_{t−1}ᵀ δz_t`` as one contraction over t and the batch), and the compiler to compute the
input projection of every step before the loop.  Only ops whose batched form is plain NumPy
broadcasting or a product with a fixed matrix are batched; anything else stays per step.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

from ..errors import ShapeError
from ..graph import Node, mark_grad_of
from .base import apply


def reachable(roots: Iterable[Node]) -> list[Node]:
    """Every node ``roots`` depend on, in topological order (ids grow along every edge); unlike
    :class:`~symgrad.graph.Graph` it does not ask leaves for distinct names (a body's placeholder and
    an outer var may share one)."""
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.inputs)
    return sorted(seen, key=lambda n: n.id)


def substitute(roots: Iterable[Node], mapping: Mapping[Node, Node], memo: dict | None = None) -> list[Node]:
    """``roots`` rebuilt with every node in ``mapping`` replaced by its value (nodes that depend on no
    replaced node are kept as they are; names, attrs and ``grad_of`` are kept)."""
    memo = {} if memo is None else memo
    memo.update(mapping)
    roots = list(roots)
    for n in reachable(roots):
        if n in memo or n.is_leaf:
            continue
        inputs = tuple(memo.get(i, i) for i in n.inputs)
        if all(a is b for a, b in zip(inputs, n.inputs)):
            continue
        m = Node(n.op, inputs, n.attrs, n.shape, n.dtype, name=n.name)
        for f in n.grad_of:  # still the cotangent of the same forward node
            mark_grad_of(m, f)
        memo[n] = m
    return [memo.get(r, r) for r in roots]


class Batcher:
    """Per-step nodes of a loop body as whole-sequence nodes (a leading time axis of length ``length``).

    ``stacked`` maps per-step nodes to nodes holding their values for every step, ``(T,) + shape``
    (a scanned input, a saved value); ``fixed`` maps the body's placeholders for values that do not
    change over the steps to the outer nodes; constants stay as they are.  ``boundary(node)`` is asked
    for a per-step node that cannot be batched and is not stacked yet: it returns a stacked node for it
    (the loop then stores it at each step), or None to give up.
    """

    def __init__(self, stacked: Mapping[Node, Node], fixed: Mapping[Node, Node],
                 boundary: Callable[[Node], Node | None], can_batch: Callable[[Node], bool] = lambda n: True):
        self.stacked = dict(stacked)
        self.fixed = dict(fixed)
        self.boundary = boundary
        self.can_batch = can_batch
        self.memo: dict[Node, tuple[Node, bool] | None] = {}

    def __call__(self, node: Node) -> tuple[Node, bool] | None:
        """``(outer node, batched)``: batched nodes have the leading time axis; unbatched ones are the
        same for every step.  None when the node can be had neither way."""
        if node in self.memo:
            return self.memo[node]
        out = self._batch(node)
        self.memo[node] = out
        return out

    def _batch(self, node: Node) -> tuple[Node, bool] | None:
        if node in self.stacked:
            return self.stacked[node], True
        if node in self.fixed:
            return self.fixed[node], False
        if node.kind == "const":
            return node, False
        if node.op is not None and node.op.outputs is not None:  # a loop: only its outputs are values
            return None
        picks = bool(node.inputs) and node.inputs[0].op is not None and node.inputs[0].op.outputs is not None
        if not node.is_leaf and not picks and self.can_batch(node):
            args = []
            for i in node.inputs:
                got = self(i)
                if got is None:
                    break
                args.append(got)
            else:
                made = self._apply(node, args)
                if made is not None:
                    return made
        out = self.boundary(node)
        if out is not None:
            self.stacked[node] = out
            return out, True
        return None

    def _apply(self, node: Node, args: list[tuple[Node, bool]]) -> tuple[Node, bool] | None:
        op, attrs = node.op, dict(node.attrs)
        nodes = [a for a, _ in args]
        if not any(b for _, b in args):  # the same at every step: computed once, outside
            return _checked(lambda: apply(op, *nodes, **attrs), node.shape, False)
        want = ("T",) + node.shape  # only the rank and the per-step dims are checked
        if op.elementwise and op.outputs is None:
            lifted = []
            for (a, batched), inp in zip(args, node.inputs):
                if batched and inp.ndim < node.ndim:  # (T, n) against (m, n): (T, 1, n)
                    a = apply("expand_dims", a, axis=tuple(range(1, 1 + node.ndim - inp.ndim)))
                lifted.append(a)
            return _checked(lambda: apply(op, *lifted, **attrs), want, True)
        if op is _MATMUL():
            (a, ba), (b, bb) = args
            ia, ib = node.inputs
            if ba and not bb and b.ndim <= 2:  # (T, …, m, k) @ (k, n)
                return _checked(lambda: apply(op, a, b), want, True)
            if bb and not ba and a.ndim <= 2 and ib.ndim >= 2:  # (m, k) @ (T, …, k, n)
                return _checked(lambda: apply(op, a, b), want, True)
            if bb and not ba and ib.ndim == 1:  # (m, k) @ (k,) per step: (T, k) @ (m, k)ᵀ
                rhs = apply("transpose", a, axes=(1, 0)) if a.ndim == 2 else a
                return _checked(lambda: apply(op, b, rhs), want, True)
            if ba and bb and ia.ndim == ib.ndim >= 2:
                return _checked(lambda: apply(op, a, b), want, True)
            return None
        if len(args) != 1 or not args[0][1]:
            return None
        a = args[0][0]
        if op.layout == "transpose":
            return _checked(lambda: apply(op, a, axes=(0,) + tuple(x + 1 for x in attrs["axes"])), want, True)
        if op.layout == "expand":
            return _checked(lambda: apply(op, a, axis=tuple(x + 1 for x in attrs["axis"])), want, True)
        if op.reduction is not None and set(attrs) <= {"axis", "keepdims"}:
            axis = attrs.get("axis")
            axis = tuple(range(1, a.ndim)) if axis is None else tuple(x + 1 for x in axis)
            return _checked(lambda: apply(op, a, axis=axis, keepdims=attrs.get("keepdims", False)), want, True)
        return None


def _MATMUL():
    from .base import get_op
    return get_op("matmul")


def _checked(make: Callable[[], Node], want: tuple, batched: bool) -> tuple[Node, bool] | None:
    """``(make(), batched)`` when it builds and has the rank and per-step dims wanted, else None."""
    try:
        out = make()
    except ShapeError:
        return None
    if len(out.shape) != len(want) or (batched and out.shape[1:] != want[1:]) or (not batched and out.shape != want):
        return None
    return out, batched
