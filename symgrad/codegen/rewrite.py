"""Peephole rewrites and fusions, applied while copying the IR into a fresh table.

The rules themselves belong to the ops (their ``rewrite`` fields, in
:mod:`symgrad.ops`): σ′(z) read off σ(z) when that is computed, ReLU′ as
a mask, one-hot·log-softmax cross-entropy as a gather and its gradient as
``softmax − one-hot``, broadcasts and reshapes as the internal ops of
:mod:`symgrad.ops.kernels`.  This module applies them and does the two
rewrites that hold for every op: integer inputs meet float32 arithmetic
through a cast, broadcasts sink below elementwise ops
(``f(bcast(x), y) = bcast(f(x, y))``) so that NumPy broadcasting does the work,
and so do transposes (``f(xᵀ, y) = f(x, yᵀ)ᵀ``, ``(xᵀ)ᵀ = x``) so that an
elementwise op computes in the memory order of the value it transposes: a
batch-first view of a loop's step-major outputs stays step-major through the
loss and back into the reverse loop, which then reads its rows without a copy.

An op's rewrite receives ``(value, args, shape, ir)``: the original value
(its ``args`` are the original inputs), the rewritten inputs, the shape to
compute in, and this rewriter, whose :meth:`Rewriter.make`,
:meth:`Rewriter.const`, :meth:`Rewriter.bcast` and :meth:`Rewriter.computed`
build the replacement.
"""
from __future__ import annotations

from ..graph import broadcast_of
from ..ops.kernels import BCAST, CAST
from ..ops.base import get_op
from .ir import Table, Value


class Rewriter:
    """Copies ``old`` into a new table, rewriting each op value once its inputs are copied."""

    def __init__(self, old: Table, float32: bool):
        self.old = old
        self.new = Table(old.dtype)
        self.float32 = float32
        self._order = 0

    def run(self) -> dict[int, Value]:
        """Old value id -> its replacement in the new table."""
        remap: dict[int, Value] = {}
        for v in self.old.vals:
            if v.role != "op":
                nv = self.new.copy_leaf(v)
            else:
                nv = self.rewrite(v, [remap[id(a)] for a in v.args])
                for n in v.nodes:
                    if n not in nv.nodes:
                        nv.nodes.append(n)
                nv.order = min(nv.order, v.order)
            remap[id(v)] = nv
        return remap

    # ------------------------------------------------ what op rewrites build with
    def make(self, op, args, attrs=(), shape=None) -> Value:
        """``op`` applied to new values (shared with an equal value already made)."""
        return self.new.op(op, args, tuple(attrs), shape, "float", self._order)

    def const(self, x: float) -> Value:
        return self.new.const(x, self._order)

    def bcast(self, x: Value, shape: tuple) -> Value:
        """``x`` broadcast to ``shape`` (one broadcast, never a broadcast of a broadcast)."""
        if x.shape == tuple(shape):
            return x
        if x.op is BCAST:
            x = x.args[0]
        return self.make(BCAST, [x], (("shape", tuple(shape)),), shape)

    def computed(self, op, old_args, attrs=()) -> bool:
        """Whether the original program computes ``op(*old_args)`` anyway."""
        return self.old.find(op, old_args, attrs) is not None

    # ---------------------------------------------------------------- rules
    def rewrite(self, v: Value, args: list[Value]) -> Value:
        self._order = v.order
        if self.float32 and not v.op.int_inputs:  # class indices meet float ops as float32
            args = [self.make(CAST, [a], (), a.shape) if a.dtype == "int" else a for a in args]
        if v.op is get_op("transpose"):
            return self.transpose(args[0], v.attr("axes"))
        if v.op.elementwise:
            if any(a.op is BCAST for a in args):  # broadcasts sink below elementwise ops
                inner = [a.args[0] if a.op is BCAST else a for a in args]
                shape = broadcast_of(*(a.shape for a in inner))
                if shape is not None:
                    return self.bcast(self._apply(v, inner, shape), v.shape)
            sunk = self._sink_transpose(v, args)
            if sunk is not None:
                return sunk
        return self._apply(v, args, v.shape)

    def transpose(self, x: Value, axes: tuple) -> Value:
        """``x`` with its axes permuted (a transpose of a transpose is one transpose, or none)."""
        axes = tuple(int(a) for a in axes)
        if x.op is get_op("transpose"):
            inner = x.attr("axes")
            x, axes = x.args[0], tuple(inner[a] for a in axes)
        if axes == tuple(range(len(axes))):
            return x
        return self.make(get_op("transpose"), [x], (("axes", axes),), tuple(x.shape[a] for a in axes))

    def _sink_transpose(self, v: Value, args: list[Value]) -> Value | None:
        """``f(xᵀ, y)`` as ``f(x, yᵀ)ᵀ`` when the transposed operands share one permutation, every other
        operand is a scalar or a leaf (an input, a param: its layout was the caller's choice, not the
        program's) and nothing broadcasts; otherwise None."""
        t = get_op("transpose")
        perms = {a.attr("axes") for a in args if a.op is t}
        if len(perms) != 1 or any(a.shape != v.shape and a.shape != () for a in args):
            return None
        if any(a.op is not t and a.shape != () and a.op is not None for a in args):
            return None
        (perm,) = perms
        inv = tuple(int(i) for i in sorted(range(len(perm)), key=lambda k: perm[k]))
        inner = [a if a.shape == () else self.transpose(a, inv) for a in args]
        return self.transpose(self._apply(v, inner, tuple(v.shape[i] for i in inv)), perm)

    def _apply(self, v: Value, args: list[Value], shape: tuple) -> Value:
        if v.op.rewrite is not None:
            out = v.op.rewrite(v, args, shape, self)
            if out is not None:
                return out
        return self.new.op(v.op, args, v.attrs, shape, v.dtype, v.order)
