"""State that a training step updates besides the params: buffers and their update rules.

A *buffer* is a leaf of kind ``"buffer"`` holding an array, like a param, that gradients do
not train (batch norm's running mean and variance).  A training graph says how a step
changes it with :func:`with_update`: ``with_update(y, buffer, new)`` is ``y`` itself (values,
gradients, formulas and drawings read through it) and records ``buffer ← new``.
:func:`symgrad.compile_step` finds these records in the loss's graph and writes ``new`` into
the buffer at every step, after the forward pass, like optimizer state; :func:`symgrad.evaluate`
and :func:`symgrad.compile` leave buffers alone.  :func:`state_updates` lists the records and
:func:`update_rules` prints them the way an optimizer's rule prints.

Examples
--------
>>> import numpy as np, symgrad as sg
>>> x = sg.var("x", shape=("batch", 2))
>>> avg = sg.ops.state.buffer("avg", np.zeros(2))
>>> y = sg.ops.state.with_update(2 * x, avg, 0.9 * avg + 0.1 * sg.mean(x, axis=0))
>>> sg.evaluate(y, {"x": np.ones((3, 2))})
array([[2., 2.],
       [2., 2.],
       [2., 2.]])
>>> [(b.name, new.shape) for b, new in sg.ops.state.state_updates(y)]
[('avg', (2,))]
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Graph, Node, check_name, format_shape, real_array
from ..oneline import Notation
from .base import OpDef, apply, as_node, register

__all__ = ["buffer", "with_update", "state_updates", "update_rules", "STATE_UPDATE"]


def buffer(name: str, value: Any) -> Node:
    """A buffer leaf named ``name`` holding a float64 copy of ``value`` (settable ``.value``)."""
    check_name(name)
    arr = real_array(value, f"buffer {name!r}: value").astype(np.float64, copy=True)
    if not np.all(np.isfinite(arr)):
        raise GraphError(f"buffer {name!r}: value has non-finite entries")
    return Node(None, (), (), arr.shape, "float", name=name, value=arr, kind="buffer")


def _shape(nodes, **_):
    y, buf, new = nodes
    if buf.kind != "buffer":
        raise GraphError(f"with_update: input 1 must be a buffer (sg.ops.state.buffer), got {buf.describe()}")
    if new.shape != buf.shape:
        raise ShapeError(f"with_update: the new value of buffer {buf.name!r} has shape {format_shape(new.shape)}, "
                         f"the buffer {format_shape(buf.shape)}")
    return y.shape


def _vjp(n: Node, g: Node, needs: tuple) -> tuple:
    return (g if needs[0] else None, None, None)


def _rewrite(v, args, shape, ir):
    return args[0]  # compiled code computes y; the step stores the new value itself


STATE_UPDATE = register(OpDef(
    "with_update", 3, _shape, lambda y, b, new: y, lambda y, b, new: y, vjp=_vjp, label="update",
    notation=Notation("through"), matrix=lambda n, a, mx: a[0], index=lambda n, idx, ix: ix.entry(n.inputs[0], idx),
    rewrite=_rewrite, foldable=False, preserves_dtype=True))


def with_update(y: Any, buf: Node, new: Any) -> Node:
    """``y``, recording that a training step sets ``buf`` to ``new`` (see the module docstring)."""
    if not isinstance(buf, Node) or buf.kind != "buffer":
        raise GraphError(f"with_update: expected a buffer node, got {buf!r}")
    return apply(STATE_UPDATE, as_node(y, "with_update"), buf, as_node(new, "with_update"))


def state_updates(outputs: Node | Sequence[Node]) -> list[tuple[Node, Node]]:
    """``(buffer, new value)`` for every update recorded in the graph of ``outputs``, in graph order.

    Raises GraphError when one buffer is given two different updates in one graph.
    """
    seen: dict[Node, Node] = {}
    for n in Graph(outputs).order:
        if n.op is STATE_UPDATE:
            buf, new = n.inputs[1], n.inputs[2]
            if seen.get(buf, new) is not new:
                raise GraphError(f"buffer {buf.name!r} is updated twice in one graph (is its module called twice "
                                 f"in training mode?); a step can apply one update per buffer")
            seen[buf] = new
    return list(seen.items())


def update_rules(outputs: Node | Sequence[Node]):
    """The buffer updates of the graph of ``outputs`` as formulas, ``buffer ← new`` one a line.

    Returns an :class:`~symgrad.optim.UpdateFormulas` (``str()``, ``.latex()``), keyed by buffer name,
    whose right-hand sides are matrix formulas of the new values.
    """
    from ..formulas import formula
    from ..optim.formulas import UpdateFormulas
    return UpdateFormulas({buf.name: formula(new, keep="named") for buf, new in state_updates(outputs)})
