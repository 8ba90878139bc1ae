"""Loops in drawings: a scan drawn as its body once, in a box marked ``× T``, with the carry edge
looping back from the carry leaving a step to the carry entering it; or, with ``unroll=True``, the
loop written out step by step (for small T), as course notes draw it.

:func:`expand_loops` replaces a scan's box by its body's boxes in a cluster of their own: the carry
entering a step (``hₜ₋₁``) and one step of each scanned input (``xₜ``) as boxes fed by the loop's
inputs, the body's ops (``zₜ``, ``hₜ``) with their names indexed by t, the closed-over values (the
weights) drawn where they are, feeding the body directly, and the loop's outputs (``h_T``, the
stacked ``hₜ``) fed by the body nodes they stack.  A backward loop is drawn the same way, in the
backward palette, its steps running from T down to 1.
"""
from __future__ import annotations

from typing import Any

from ..errors import RenderError
from ..graph import Node, as_node_list, format_shape
from ..oneline import blank_text
from ..ops.scan import SCAN_OUT
from ..ops.scan_batch import reachable, substitute
from ..ops.join import stack
from ..ops.index import getitem
from .labels import pretty_name

_SUB = {"t": "ₜ", "-": "₋", "+": "₊", "1": "₁", "2": "₂", "T": "T"}


def is_loop(n: Node) -> bool:
    return n.op is not None and n.op.outputs is not None


def _indexed(base: str, shift: int, loss: str = "L") -> str:
    """``h`` and -1 -> ``hₜ₋₁``; a δ name keeps its δ (``δhₜ``); a cotangent from outside the loop
    (``∂h``) reads ``∂L/∂hₜ``."""
    text = "t" if shift == 0 else f"t{shift:+d}"
    base = base.split(".")[-1]
    head = f"∂{loss}/∂" if base.startswith("∂") else ""
    return head + pretty_name(base.lstrip("∂")) + "".join(_SUB.get(c, c) for c in text)


def _name(body, n: Node, flip: bool) -> str | None:
    label = body.labels.get(n)
    if label is None and n.name:
        label = (n.name, 0)
    if label is None and n.grad_of:
        named = next((f.name for f in n.grad_of if f.name), None)
        label = ("δ" + named, 0) if named else None
    if label is None:
        return None
    base, shift = label
    return _indexed(base, -shift if flip else shift)


def expand_loops(writer: Any, items: list, edges: list) -> tuple[list, list, dict]:
    """Items and edges with each loop's box replaced by its body (see the module); also returns
    ``{cluster name: (label, backward)}`` of the loop clusters."""
    from .dot import _Item
    s = writer.s
    loops = [n for n in s.forward + s.back_only if is_loop(n) and n in writer.key]
    clusters: dict[str, tuple[str, bool]] = {}
    for k, scan in enumerate(loops):
        body = scan.attr("body")
        backward = body.role == "backward" or scan in s.back_only
        flip = scan.attr("reverse") if body.role == "forward" else not scan.attr("reverse")
        T = str(scan.attr("length"))
        steps = f"t = {T}…1" if scan.attr("reverse") else f"t = 1…{T}"
        cname = f"loop{k}"
        clusters[cname] = (f"× {T}   {'backward loop, ' if body.role == 'backward' else ''}{steps}", backward)
        skey = writer.key[scan]
        K, J = len(body.carry_in), len(body.xs_in)
        closed = dict(zip(body.closed_in, scan.inputs[K + J:]))
        inner = [n for n in (body.graph.order if body.graph is not None else []) if n not in closed]
        key = {n: f"{skey}_{i}" for i, n in enumerate(inner)}
        for n in inner:
            name = _name(body, n, flip)
            if n.is_leaf and n.kind != "const":
                lines = [name or pretty_name(n.name)]
                style = "carry" if n in body.carry_in else ("backward_const" if backward else "input")
            elif n.kind == "const":
                from ..oneline import const_text
                lines, style = [const_text(n)], "backward_const" if backward else "const"
            else:
                op = blank_text(n)
                lines = [f"{name} = {op}" if name else op]
                style = "backward_op" if backward else "op"
            if n.shape != ():
                lines.append(format_shape(n.shape))
            items.append(_Item(key[n], style, lines, cname))
        # edges inside the body; closed-over values feed their consumers directly
        out_edges = []
        for n in inner:
            for i in dict.fromkeys(n.inputs):
                src = writer.key.get(closed[i]) if i in closed else key.get(i)
                if src is not None:
                    out_edges.append((src, key[n], "backward" if backward else "forward"))
        for p, o in zip(body.carry_in, body.carry_out):  # the carry, back to the next step
            if p in key and o in key:
                out_edges.append((key[o], key[p], "carry"))
        # the loop's inputs feed the placeholders, its outputs come from the body nodes
        inputs = list(body.carry_in) + list(body.xs_in)
        picks = {}
        for n in s.forward + s.back_only:
            if n.op is SCAN_OUT and n.inputs[0] is scan and n in writer.key:
                picks[writer.key[n]] = n
        for a, b, kind in edges:
            if b == skey:
                for pos, i in enumerate(scan.inputs[:K + J]):
                    if writer.key.get(i) == a and inputs[pos] in key:
                        out_edges.append((a, key[inputs[pos]], kind))
            elif a == skey and b in picks:
                index = picks[b].attr("index")
                src = body.carry_out[index] if index < K else body.ys[index - K]
                if src in key:
                    out_edges.append((key[src], b, kind))
                elif src in closed and closed[src] in writer.key:
                    out_edges.append((writer.key[closed[src]], b, kind))
            else:
                out_edges.append((a, b, kind))
        edges = out_edges
        items = [it for it in items if it.key != skey]
        for it in items:
            if it.key in picks:
                it.lines = _pick_lines(picks[it.key], body, T, flip) + it.lines[1:]
    return items, edges, clusters


def _pick_lines(pick: Node, body, T: str, flip: bool) -> list[str]:
    K, index = len(body.carry_in), pick.attr("index")
    if index < K:  # the last carry: h_T (h₁ for a loop run backwards)
        base = body.labels.get(body.carry_out[index], (body.carry_in[index].name, 0))[0]
        return [pretty_name(base.split(".")[-1]) + ("₁" if flip else f"_{T}")]
    y = body.ys[index - K]
    name = _name(body, y, flip) or f"y{index - K + 1}ₜ"
    return [f"{name}, t = 1…{T}"]


# ------------------------------------------------------------------------ unrolled
def unroll(outputs: Any) -> list[Node]:
    """``outputs`` with every loop written out: the body copied once per step (its names indexed by the
    step, ``z_1``, ``h_2``), the scanned inputs read by ``x[t]``, the stacked outputs by ``stack``."""
    outs = as_node_list(outputs, "draw")
    memo: dict[Node, Node] = {}

    def rebuild(n: Node) -> Node:
        if n in memo:
            return memo[n]
        if n.is_leaf:
            return n
        inputs = tuple(rebuild(i) for i in n.inputs)
        if n.op is SCAN_OUT:
            finals, ys = _unrolled(n.inputs[0], tuple(rebuild(i) for i in n.inputs[0].inputs))
            K = len(finals)
            out = finals[n.attr("index")] if n.attr("index") < K else ys[n.attr("index") - K]
        elif all(a is b for a, b in zip(inputs, n.inputs)):
            out = n
        else:
            out = Node(n.op, inputs, n.attrs, n.shape, n.dtype, name=n.name)
        memo[n] = out
        return out

    cache: dict[Node, tuple] = {}

    def _unrolled(scan: Node, inputs: tuple) -> tuple[list, list]:
        if scan in cache:
            return cache[scan]
        body, T = scan.attr("body"), scan.attr("length")
        if not isinstance(T, int):
            raise RenderError(f"draw: unroll=True needs loops of a fixed number of steps, got {T!r} steps")
        K, J = len(body.carry_in), len(body.xs_in)
        carry = list(inputs[:K])
        xs, closed = inputs[K:K + J], inputs[K + J:]
        ys: list[list] = [[None] * T for _ in body.ys]
        for t in (range(T - 1, -1, -1) if scan.attr("reverse") else range(T)):
            mapping = dict(zip(body.carry_in, carry))
            mapping.update((p, getitem(x, t)) for p, x in zip(body.xs_in, xs))
            mapping.update(zip(body.closed_in, closed))
            names = {o: body.labels.get(o, (p.name, 0))[0] for p, o in zip(body.carry_in, body.carry_out)}
            step = _named_copy(list(body.carry_out) + list(body.ys), mapping, t + 1, names)
            carry = step[:K]
            for m, y in enumerate(step[K:]):
                ys[m][t] = y
        stacked = [stack(v, axis=0) if T else None for v in ys]
        cache[scan] = (carry, stacked)
        return cache[scan]

    return [rebuild(o) for o in outs]


def _named_copy(roots: list[Node], mapping: dict, step: int, names: dict) -> list[Node]:
    """``roots`` over ``mapping``, the copy of each named node (and of each carry, named by ``names``)
    named ``<name>_<step>``."""
    memo: dict[Node, Node] = {}
    out = substitute(roots, mapping, memo)
    name_of = {new: (old.name or names.get(old)) for old, new in memo.items() if old not in mapping}
    done: dict[Node, Node] = {}
    for n in reachable(out):  # in order: each copy reads the renamed copies of its inputs
        if n.is_leaf:
            continue
        inputs = tuple(done.get(i, i) for i in n.inputs)
        name = name_of.get(n)
        if name or any(a is not b for a, b in zip(inputs, n.inputs)):
            done[n] = Node(n.op, inputs, n.attrs, n.shape, n.dtype,
                           name=f"{name.rsplit('.', 1)[-1]}_{step}" if name else n.name)
    return [done.get(o, o) for o in out]
