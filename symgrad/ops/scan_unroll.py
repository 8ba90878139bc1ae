"""``scan(..., unroll=True)``: the loop written out, one copy of the body per step (small T)."""
from __future__ import annotations

from typing import Any, Callable

from ..errors import ShapeError
from ..graph import Node
from .index import getitem
from .join import stack


def unrolled(fn: Callable, init: list[Node], carry_struct: Any, xs: list[Node], xs_struct: Any, has_xs: bool,
             length: Any, reverse: bool) -> tuple[Any, Any]:
    """``(final_carry, ys)`` of the unrolled loop: ``fn`` called once per step on ``xs[t]``."""
    from .scan import _flatten, _unflatten
    if not isinstance(length, int):
        raise ShapeError(f"scan: unroll=True needs a fixed number of steps, got the named dim {length!r}")
    carry = _unflatten(carry_struct, init)
    per_step: list = [None] * length
    y_struct: Any = "none"
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        x_t = _unflatten(xs_struct, [getitem(x, t) for x in xs]) if has_xs else None
        result = fn(carry, x_t)
        if not isinstance(result, tuple) or len(result) != 2:
            raise ShapeError(f"scan: fn must return a pair (carry, y), got {type(result).__name__}")
        carry, y = result
        if y is not None:
            per_step[t], y_struct = _flatten(y, "the output fn returns")
    carry_nodes, _ = _flatten(carry, "the carry fn returns")
    final = _unflatten(carry_struct, carry_nodes)
    if y_struct == "none" or not length:
        return final, None
    ys = [stack([per_step[t][m] for t in range(length)], axis=0) for m in range(len(per_step[0]))]
    return final, _unflatten(y_struct, ys)
