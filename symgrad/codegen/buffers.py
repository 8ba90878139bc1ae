"""Buffer reuse: which array each value is written into.

An elementwise op may write into a temporary whose last use is now
(``np.add(a, b, out=a)``); a value that becomes a param's or a state's new
content is computed directly in that array when nothing reads the old
content afterwards; a training step keeps its fixed-shape temporaries
between calls, and gives each kernel that takes one (conv, pooling) a
:class:`~symgrad.runtime.Workspace` it keeps its result and temporaries in,
whatever the batch size.  Every value that owns memory gets a :class:`Buffer`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..runtime import Workspace, takes_workspace
from .ir import Value
from .schedule import FOREVER, Program, overwrites_input, ownable, writes_out

PERSIST = True  # training steps keep their fixed-shape temporaries between calls


@dataclasses.dataclass(eq=False)
class Buffer:
    """An array that values are written into, one after another.

    shape : its shape.
    busy_until : schedule position of the last read of the value it holds now.
    kind : ``"temp"`` (made by the function) or ``"leaf"`` (a param's or a state's own array).
    holder : identifier of the array in the generated code, the name of the
        value written last (set by the emitter).
    preallocated : global name of the array a training step keeps between calls, if any, or of
        the :class:`~symgrad.runtime.Workspace` its kernel draws the result from (passed as ``work=``).
    """

    shape: tuple
    busy_until: int
    kind: str
    holder: str | None = None
    preallocated: str | None = None
    first: int = -1  # schedule position of the first value written into it


@dataclasses.dataclass
class Assignment:
    """The buffers of one program: ``of[value id]`` (every value that owns memory) and
    ``written[value id]`` (values written into a buffer that already exists)."""

    of: dict[int, Buffer]
    written: dict[int, Buffer]


def assign(p: Program, bind: Callable[[object, str], str]) -> Assignment:
    """Give every ownable value a buffer: its own, a dead temporary's, or a param/state array.
    ``bind(array, stem)`` makes a preallocated array a global of the generated module."""
    of: dict[int, Buffer] = {}
    written: dict[int, Buffer] = {}
    writable: dict[int, Buffer] = {}
    for leaf, v in p.plan_stores:
        if v is None or leaf.ndim == 0:
            continue
        if leaf.role == "state" or (leaf.role == "param" and p.params_writable and p.direct(leaf)):
            writable[id(leaf)] = of[id(leaf)] = Buffer(leaf.shape, p.last.get(id(leaf), -1), "leaf")
    hint = _hints(p, writable) if p.reuse else {}
    temps: list[Buffer] = []
    if p.params_writable:  # params held in another dtype are loaded into persistent working arrays
        for v in p.live.values():
            if v.role == "param" and v.ndim > 0 and not p.direct(v):
                of[id(v)] = Buffer(v.shape, p.last.get(id(v), -1), "temp")
                temps.append(of[id(v)])
    for i, v in enumerate(p.schedule):
        if not ownable(v):
            continue
        chosen = _reusable(p, v, i, hint, of, temps) if p.reuse else None
        if chosen is not None:
            chosen.busy_until = p.last.get(id(v), i)
            of[id(v)] = written[id(v)] = chosen
            continue
        b = Buffer(v.shape, p.last.get(id(v), i), "temp", first=i)
        if PERSIST and p.params_writable and p.reuse and p.last.get(id(v)) != FOREVER:
            if all(isinstance(d, int) for d in v.shape) and (overwrites_input(v) or v.op.ufunc is not None):
                b.preallocated = bind(np.empty(v.shape, dtype=p.np_dtype), "ws")
            elif takes_workspace(v.op):  # any shape: the workspace grows to the largest batch seen
                b.preallocated = bind(Workspace(), "work")
        of[id(v)] = b
        temps.append(b)
    return Assignment(of, written)


def persist_loop_temps(p: Program, a: Assignment, bind: Callable[[object, str], str],
                       carries: list[tuple[Value | None, Value]]) -> None:
    """Inside a loop body of a training step: its fixed-shape temporaries become arrays kept across
    steps and calls, instead of one new array per step.  A buffer that holds a carry's new value is
    read as that carry by the next step, so it is kept only when the carry it replaces (``carries``:
    (value entering the step, value leaving it)) is no longer read when the buffer is first written."""
    carry_in = {id(out): inp for inp, out in carries}
    seen: set[int] = set()
    for v in p.schedule:
        b = a.of.get(id(v))
        if b is None or id(b) in seen or b.kind != "temp" or b.preallocated is not None:
            continue
        seen.add(id(b))
        if not all(isinstance(d, int) for d in b.shape):
            continue
        held = [u for u in p.schedule if a.of.get(id(u)) is b]
        ok = writes_out(held[0]) and all(carry_in[id(u)] is None or p.last.get(id(carry_in[id(u)]), -1) < b.first
                 for u in held if id(u) in carry_in)
        if ok:
            b.preallocated = bind(np.empty(b.shape, dtype=p.np_dtype), "ws")


def _hints(p: Program, writable: dict[int, Buffer]) -> dict[int, Buffer]:
    """Values that should be computed in a param's or state's array: the new content itself, and
    back through in-place ops, the values only it reads."""
    hint: dict[int, Buffer] = {}
    for leaf, v in p.plan_stores:
        if v is not None and id(leaf) in writable and p.last.get(id(v)) != FOREVER and v.role == "op" \
                and v.shape == leaf.shape:
            hint[id(v)] = writable[id(leaf)]
    for v in reversed(p.schedule):
        b = hint.get(id(v))
        if b is None or not overwrites_input(v):
            continue
        for a in v.args:
            if a.role == "op" and id(a) not in hint and ownable(a) and a.shape == v.shape \
                    and p.consumers.get(id(a)) == {id(v)} and p.last.get(id(a)) != FOREVER:
                hint[id(a)] = b
    return hint


def _reusable(p: Program, v: Value, i: int, hint: dict, of: dict, temps: list) -> Buffer | None:
    """A buffer ``v`` (at schedule position ``i``) may be written into, or None."""
    b = hint.get(id(v))
    elementwise = overwrites_input(v)
    if b is not None and writes_out(v) and (b.busy_until < i or (elementwise and b.busy_until <= i)):
        return b
    if elementwise:
        for a in v.args:
            ab = of.get(id(a))
            if ab is not None and ab.kind == "temp" and ab.busy_until <= i and ab.shape == v.shape \
                    and p.last.get(id(a), -1) <= i:
                return ab
    if elementwise or v.op.ufunc is not None:
        for tb in temps:
            if tb.busy_until < i and tb.shape == v.shape:
                return tb
    return None
