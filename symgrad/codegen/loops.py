"""Loops in generated code: a scan becomes a Python ``for`` over preallocated output arrays.

Lowering (:func:`lower_scan`) first takes out of the loop what does not depend on the carry and can
be computed for every step at once (:class:`~symgrad.ops.scan_batch.Batcher`): the input projection
``x_t W_ih + b`` of a recurrent layer is one product ``X W_ih + b`` over all steps before the loop,
and a backward loop's ``1 − h_t²`` one expression over the saved activations.  The loop body is then
compiled like any function (its own :class:`~.schedule.Program`: shared subexpressions, buffer reuse,
σ′ read off σ), and its statements are written inline, inside the loop, by :class:`BodyWriter`,
which shares the enclosing function's names and globals.  Each step reads its slice of the scanned
arrays (``x = X[t]``), the outputs something reads are written into arrays allocated once before the
loop (``hs[t] = h``), and the carries are rebound (``h, c = h_new, c_new``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..graph import Graph, Node
from ..ops.base import var
from ..ops.scan import SCAN, Body
from ..ops.scan_batch import Batcher, reachable, substitute
from .buffers import assign, persist_loop_temps
from .ir import Table, Value
from .names import ADJOINT, comment_text, ident_base
from ..runtime import Workspace
from .schedule import Program, fresh, writes_out

if TYPE_CHECKING:  # pragma: no cover
    from .function import FunctionWriter


# ------------------------------------------------------------------ lowering
def hoist(node: Node) -> tuple[Body, tuple[Node, ...]]:
    """The scan ``node``'s body with the parts that do not depend on the carry computed outside:
    returns the new body and the scan's new inputs (init, xs and the hoisted arrays, closed values)."""
    body: Body = node.attr("body")
    K, J = len(body.carry_in), len(body.xs_in)
    init, xs, closed = node.inputs[:K], node.inputs[K:K + J], node.inputs[K + J:]
    if body.graph is None:
        return body, node.inputs
    carried: set[Node] = set(body.carry_in)
    for n in body.graph.order:
        if any(i in carried for i in n.inputs):
            carried.add(n)
    batch = Batcher(dict(zip(body.xs_in, xs)), dict(zip(body.closed_in, closed)), lambda n: None,
                    can_batch=lambda n: n not in carried)
    outputs = list(body.carry_out) + list(body.ys)
    frontier = [i for n in body.graph.order if n in carried and not n.is_leaf for i in n.inputs if i not in carried]
    frontier += [o for o in outputs if o not in carried]
    mapping: dict[Node, Node] = {}
    new_x: list[tuple[Node, Node]] = []
    new_c: list[tuple[Node, Node]] = []
    seen: set[Node] = set()

    def visit(f: Node) -> None:
        if f in seen or f.is_leaf or f.op.outputs is not None:
            return
        seen.add(f)
        if not all(m.kind == "const" for m in reachable([f]) if m.is_leaf):
            got = batch(f)
            # worth it: a product over all steps (one GEMM instead of T), or anything computed once; an
            # elementwise expression of one step stays in the loop, on cache-hot arrays of one step
            # (hoisting 1 − h² out of BPTT's loop was measured slower: two passes over T steps' arrays
            # that no longer fit the cache cost more than the per-step calls they save)
            if got is not None and (not got[1] or _has_product(f, carried)):
                ph = var(f"u{len(mapping) + 1}", f.shape, f.dtype)
                mapping[f] = ph
                (new_x if got[1] else new_c).append((ph, got[0]))
                return
        for i in f.inputs:
            if i not in carried:
                visit(i)

    for f in frontier:
        visit(f)
    if not mapping:
        return body, node.inputs
    memo: dict[Node, Node] = {}
    inner = substitute(outputs, mapping, memo)
    labels = {memo.get(n, n): label for n, label in body.labels.items()}
    new = Body(body.carry_in, body.xs_in + tuple(p for p, _ in new_x), body.closed_in + tuple(p for p, _ in new_c),
               inner[:K], inner[K:], body.n_user, labels, body.role, body.of, body.sums, body.origin)
    inputs = tuple(init) + tuple(xs) + tuple(o for _, o in new_x) + tuple(closed) + tuple(o for _, o in new_c)
    return new, inputs


def _has_product(f: Node, carried: set) -> bool:
    """Whether the part of ``f`` computed outside the loop holds more than elementwise arithmetic, views
    and reductions (a matrix product: one call for all steps instead of one per step)."""
    return any(n.op is not None and not (n.op.elementwise or n.op.layout or n.op.reduction)
               for n in reachable([f]) if n not in carried)


def lower_scan(node: Node, table: Table, vals: dict[Node, Value], lower_node) -> Value:
    """The value of a scan node: its hoisted inputs lowered into ``table`` first (``lower_node(n)``
    lowers one node whose inputs have values)."""
    body, inputs = hoist(node)
    for n in Graph(list(inputs)).order:
        if n not in vals:
            vals[n] = lower_node(n)
    attrs = (("body", body), ("length", node.attr("length")), ("reverse", node.attr("reverse")))
    return table.op(SCAN, [vals[i] for i in inputs], attrs, (), "float", node.id, (node,))


# ------------------------------------------------------------------ writing
class BodyWriter:
    """Writes the statements of one loop body inside the enclosing function (``parent``)."""

    def __init__(self, program: Program, parent: "FunctionWriter"):
        from .function import FunctionWriter
        w = FunctionWriter.__new__(FunctionWriter)
        w.p = program
        w.state_arrays, w.rng = [], parent.rng
        w.names, w.g, w.dim_ident = parent.names, parent.g, parent.dim_ident
        w.op_names = parent.op_names
        for v in program.schedule:  # the ops' implementations keep their own names
            if v.op.name not in w.names.taken:
                w.op_names.add(v.op.name)
                w.names.reserve(v.op.name)
        w.x = parent._body_expressions(program)
        w._body_expressions, w._step_rows, w._store_row = parent._body_expressions, parent._step_rows, \
            parent._store_row
        w.loop_workspace = parent.loop_workspace
        w.bufs = assign(program, w.g.bind)
        w.master_ident, w.ident_of, w.generic, w.stored_in = {}, parent.ident_of, parent.generic, {}
        w.loop_rows = parent.__dict__.setdefault("loop_rows", {})
        w.body_pass = parent.body_pass
        self.w = w


def loop_lines(writer: "FunctionWriter", v: Value) -> list[str]:
    """The source of scan value ``v``: its output arrays, the loop, its final carries; names the
    ``scan_out`` values that read it."""
    p, names = writer.p, writer.names
    body: Body = v.attr("body")
    K, J = len(body.carry_in), len(body.xs_in)
    args = [writer.x.ref(a) for a in v.args]
    init, xs, closed = args[:K], args[K:K + J], args[K + J:]
    picks = [u for u in p.live.values() if u.role == "op" and u.args and u.args[0] is v and u.op is not SCAN]
    need = sorted({u.attr("index") - K for u in picks if u.attr("index") >= K})
    label = ", ".join(p_.name for p_ in body.carry_in) or "no carry"
    lines = [f"# loop ({body.role}): carries {comment_text(label)}; "
             f"{'last step first' if v.attr('reverse') else 'first step first'}"]
    # a training step keeps the loop's arrays between calls (no page faults each step) unless an array
    # leaves the step (an output that is one of them or a view of one)
    keep = p.params_writable and p.reuse and not _leaves(p, picks)
    work = writer.g.bind(Workspace(), "work") if keep and writer.loop_workspace else None
    if xs:
        T = names.new("T")
        lines.append(f"{T} = len({xs[0]})")
    else:
        T = str(int(v.attr("length")))
    # the body, compiled on its own: placeholders are its inputs, carries and needed ys its outputs
    outputs = list(body.carry_out) + [body.ys[m] for m in need]
    program = Program("body", p.dtype, list(body.placeholders), [], outputs, [], [], params_writable=False)
    if writer.body_pass is not None:
        writer.body_pass(program)
    program.plan()
    bw = BodyWriter(program, writer).w
    step = "t" if "t" not in names.taken else names.new("step")
    names.reserve(step)
    rev = v.attr("reverse")

    # output arrays, allocated once; a carry's history and its new values share one array of T + 1
    # steps (the carry entering step t is the one leaving step t − 1), so neither is copied
    arrays: list[str] = []
    slot_of: dict[int, str] = {}  # stacked output -> where step t writes it
    view_of: dict[int, str] = {}  # stacked output -> the array its scan_out names
    row_of: dict[int, tuple[str, int]] = {}  # ... when a slice of a T + 1 array: (array, first row)
    rows = writer.__dict__.setdefault("loop_rows", {})  # scan_out value -> (array, first row), for later loops
    init_lines: list[str] = []
    copies: list[tuple[int, str]] = []  # (value, slot) of a value already written into another slot
    for k, (ph, out) in enumerate(zip(body.carry_in, body.carry_out)):
        hist = next((m for m in need if body.ys[m] is ph), None)
        if hist is None:
            continue
        name = names.new(ident_base(_stem(body, out, k)) + "_all")
        arrays.append(_alloc(writer, name, f"{T} + 1", ph, work))
        first, rest = (f"{name}[1:]", f"{name}[:{T}]") if rev else (f"{name}[:{T}]", f"{name}[1:]")
        view_of[hist] = first
        row_of[hist] = (name, 1 if rev else 0)
        init_lines.append(writer._store_row(f"{name}[{T if rev else 0}]", init[k], ph.ndim))
        for m in need:
            if body.ys[m] is out and m not in view_of:
                view_of[m] = rest
                row_of[m] = (name, 0 if rev else 1)
        _slot(slot_of, copies, id(program.val[out]), f"{name}[{step}]" if rev else f"{name}[{step} + 1]")
    for m in need:
        if m in view_of:
            continue
        name = names.new(ident_base(_stem(body, body.ys[m], m)) + "_all")
        arrays.append(_alloc(writer, name, T, body.ys[m], work))
        view_of[m] = name
        _slot(slot_of, copies, id(program.val[body.ys[m]]), f"{name}[{step}]")
    written = set()
    owner: dict[int, Value] = {}  # buffer -> the first value written into it
    for u in program.schedule:
        b = bw.bufs.of.get(id(u))
        if b is not None:
            owner.setdefault(id(b), u)
    for vid, slot in slot_of.items():  # computed in its slot when its buffer's first value can write there
        buf = bw.bufs.of.get(vid)
        if buf is not None and buf.kind == "temp" and buf.preallocated is None and writes_out(owner[id(buf)]):
            buf.preallocated = slot
            written.add(slot)
    if keep:  # the body's other temporaries: kept across steps and calls
        persist_loop_temps(program, bw.bufs, writer.g.bind,
                           [(program.val.get(ph), program.val[out]) for ph, out in zip(body.carry_in, body.carry_out)])
    lines += arrays + init_lines

    carry_ids = []
    for k, ph in enumerate(body.carry_in):
        ident = names.new(ident_base(ph.name))
        carry_ids.append(ident)
        if program.val.get(ph) is not None:
            program.val[ph].ident = ident
    inner = []
    for j, (ph, outer) in enumerate(zip(body.xs_in, xs)):
        pv = program.val.get(ph)
        if pv is not None and pv.role == "input":
            src = v.args[K + j]
            if src.role == "op" and src.op.layout == "transpose" and src.attr("axes")[0] != 0:
                # a transposed view: one step is spread over the memory; copied once, steps read rows
                outer_c = names.new(ident_base(ph.name) + "_steps")
                lines.append(f"{outer_c} = {writer._step_rows(outer, work, outer_c)}")
                outer = outer_c
            pv.ident = names.new(ident_base(ph.name))
            base, offset = rows.get(id(src), (outer, 0))  # a slice of a loop's array: its row, directly
            inner.append(f"{pv.ident} = {base}[{step}{f' + {offset}' if offset else ''}]")
    for ph, outer in zip(body.closed_in, closed):
        pv = program.val.get(ph)
        if pv is not None and pv.role == "input":
            pv.ident = outer
    lines += [f"{c} = {i}" for c, i in zip(carry_ids, init)]
    lines.append(f"for {step} in {f'range({T} - 1, -1, -1)' if rev else f'range({T})'}:")
    inner += [ln[4:] for ln in bw._ops()]
    by_id = {id(program.val[o]): program.val[o] for o in outputs}
    for vid, slot in list(slot_of.items()) + copies:
        if slot not in written:
            inner.append(bw._store_row(slot, bw.x.ref(by_id[vid]), by_id[vid].ndim))
    if K:
        new = [bw.x.ref(program.val[o]) for o in body.carry_out]
        inner.append(f"{', '.join(carry_ids)} = {', '.join(new)}")
    lines += ["    " + ln for ln in inner] or ["    pass"]
    for u in picks:
        k = u.attr("index")
        u.ident = carry_ids[k] if k < K else view_of[k - K]
        if k >= K and (k - K) in row_of:
            rows[id(u)] = row_of[k - K]
    return ["    " + ln for ln in lines]


def _slot(slot_of: dict, copies: list, vid: int, slot: str) -> None:
    if vid in slot_of:
        copies.append((vid, slot))
    else:
        slot_of[vid] = slot


def _alloc(writer: "FunctionWriter", name: str, length: str, like: Node, work: str | None) -> str:
    dt = "_DT" if like.dtype != "int" else "np.int64"
    dims = ", ".join([length] + [writer._dim(d) for d in like.shape]) + ("," if not like.shape else "")
    if work is not None:
        return f"{name} = {work}.empty({name!r}, ({dims}), {dt})"
    return f"{name} = np.empty(({dims}), dtype={dt})"


def step_rows(arr, work=None, tag: str = ""):
    """``arr`` with each step's slice contiguous: itself when it is C-contiguous, else a copy (into
    ``work``, a :class:`~symgrad.runtime.Workspace`, when given)."""
    if arr.flags.c_contiguous:
        return arr
    if work is None:
        return np.ascontiguousarray(arr)
    out = work.empty(tag, arr.shape, arr.dtype)
    np.copyto(out, arr)
    return out


def _leaves(p: Program, picks: list[Value]) -> bool:
    """Whether a returned or stored value is one of ``picks`` or a view of one."""
    alias = {id(u) for u in picks}
    for v in p.schedule:
        if not fresh(v) and any(id(a) in alias for a in v.args):
            alias.add(id(v))
    return any(id(v) in alias for v in p.out_vals) or any(v is not None and id(v) in alias for _, v in p.plan_stores)


def _stem(body: Body, y: Node, m: int) -> str:
    if y.name:
        return y.name.split(".")[-1]
    named = next((f.name for f in y.grad_of if f.name), None)
    if named:
        return ADJOINT.format(named.split(".")[-1])
    if y in body.labels:
        name, shift = body.labels[y]
        return name.split(".")[-1] + ("_prev" if shift < 0 else "")
    return y.name.split(".")[-1] if y.name else f"y{m + 1}"
