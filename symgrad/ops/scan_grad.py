"""The gradient of :func:`symgrad.scan`: a reverse scan built from the body's own backward graph.

The body is differentiated once more as an ordinary graph (:func:`symgrad.autodiff.vjp_graph`), with
placeholder cotangents for what leaves a step (``δh``: the carry, ``δy``: a per-step output).  The
backward loop runs that graph from the last step to the first:

* its carries are the δ of each carry (``δh_{t−1}`` from ``δh_t``), and the gradients of closed-over
  values that must be accumulated inside the loop;
* it scans the per-step cotangents ``δy_t``, the inputs ``x_t`` and the forward values the backward
  graph reads, which the forward loop stacked when it ran (:func:`with_saved` chooses them when the
  body is traced: a tanh's output, the carry entering each step; views of them are recomputed);
* a derivative read off its primal's output is written that way (tanh′(z) = 1 − tanh(z)²), so the
  backward loop reads the saved activation and never z;
* what does not feed the δ recurrence leaves the loop: a parameter's gradient ``Σ_t h_{t−1}ᵀ δz_t``
  is one contraction over the steps and the batch (:func:`symgrad.einsum`) of the stacked ``δz``,
  a bias's a sum, and ``δx_t = δz_t W_ihᵀ`` one product (:class:`~.scan_batch.Batcher`).

The result is an ordinary graph of ordinary nodes (the backward scan is a scan), so it evaluates,
prints, draws, compiles, and differentiates again.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import sympy

from ..errors import GradError, GraphError, NotDifferentiableError
from ..graph import Node, is_static
from .base import apply, const, get_op, var
from .scan import Body, UniqueNames, make_scan, scan_out
from .scan_batch import Batcher, reachable, substitute


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a body's backward pass reads: ``saved[node] = index`` of the stacked output holding the
    node's per-step values; ``error``: why the body cannot be differentiated, if it cannot."""

    saved: dict
    error: Exception | None = None

    def index(self, n: Node) -> int | None:
        """The stacked output holding ``n`` (an output of a loop inside the body: by loop and output)."""
        if n in self.saved:
            return self.saved[n]
        if _is_pick(n):
            for m, k in self.saved.items():
                if _is_pick(m) and m.inputs[0] is n.inputs[0] and m.attr("index") == n.attr("index"):
                    return k
        return None


def _is_pick(n: Node) -> bool:
    """Whether ``n`` picks an output of a node of several outputs (a loop)."""
    return bool(n.inputs) and n.inputs[0].op is not None and n.inputs[0].op.outputs is not None


def _float(nodes) -> list[Node]:
    return [n for n in nodes if n.dtype != "int"]


# ------------------------------------------------------------ the backward graph of a body
def backward_graph(body: Body, present: list[int], wrt: list[Node]) -> tuple[list, dict, dict, UniqueNames]:
    """The body's VJP: placeholder cotangents for every carry leaving a step (``gc``) and for the
    stacked outputs in ``present`` (``gy``), and ``{placeholder: cotangent node or None}`` for ``wrt``,
    derivatives read off their primals."""
    from ..autodiff import vjp_graph
    unique = UniqueNames(body.nodes())
    gc = [var(unique("δ" + body.labels.get(o, (p.name, 0))[0].split(".")[-1]), p.shape)
          for p, o in zip(body.carry_in, body.carry_out)]
    gy = {}
    for m in present:
        y = body.ys[m]
        label = body.labels.get(y, (y.name or f"y{m + 1}", 0))[0].split(".")[-1]
        gy[m] = var(unique("δ" + label), y.shape)
    float_carries = [k for k, p in enumerate(body.carry_in) if p.dtype != "int"]
    outputs = [body.carry_out[k] for k in float_carries] + [body.ys[m] for m in present]
    cts = [gc[k] for k in float_carries] + [gy[m] for m in present]
    adj = vjp_graph(outputs, cts, wrt) if outputs else {}
    res = {w: adj.get(w) for w in wrt}
    roots = [r for r in res.values() if r is not None]
    if roots:
        fixed = dict(zip(roots, substitute(roots, _primal_forms(body, roots))))
        res = {w: (fixed[r] if r is not None else None) for w, r in res.items()}
    return gc, gy, res, unique


def _primal_forms(body: Body, roots: list[Node]) -> dict[Node, Node]:
    """σ′(z) -> σ(z)(1 − σ(z)), tanh′(z) -> 1 − tanh(z)², … where the body computes the primal σ(z)."""
    if body.graph is None:
        return {}
    fwd = body.graph
    out = {}
    for d in reachable(roots):
        op = d.op
        if d in fwd or op is None or op.derivative_of is None or op.nin != 1 or op.attr_names or op.scalar is None:
            continue
        z = d.inputs[0]
        if z not in fwd:
            continue
        primal = next((p for p in fwd.nx.successors(z) if p.op is not None and p.op.name == op.derivative_of[0]
                       and p.inputs == (z,)), None)
        if primal is None or primal.op.scalar is None:
            continue
        t, a = sympy.Symbol("t", real=True), sympy.Dummy("a", real=True)
        try:
            expr = sympy.sympify(op.scalar(t)).subs(primal.op.scalar(t), a)
        except Exception:  # noqa: BLE001  a meaning SymPy cannot rewrite: keep the derivative op
            continue
        if t in expr.free_symbols:
            continue
        built = _nodes_of(expr, a, primal)
        if built is not None and built.shape == d.shape:
            out[d] = built
    return out


def _nodes_of(expr: sympy.Expr, a: sympy.Symbol, node: Node) -> Node | None:
    """Graph nodes for a polynomial in ``a`` (standing for ``node``); None for anything else."""
    if expr == a:
        return node
    if expr.is_Number:
        return const(float(expr))
    if isinstance(expr, sympy.Add):
        pos = [t for t in expr.args if not t.could_extract_minus_sign()]
        neg = [-t for t in expr.args if t.could_extract_minus_sign()]
        parts = [_nodes_of(t, a, node) for t in pos + neg]
        if any(p is None for p in parts) or not pos:
            return None
        out = parts[0]
        for p in parts[1:len(pos)]:
            out = out + p
        for p in parts[len(pos):]:
            out = out - p
        return out
    if isinstance(expr, sympy.Mul):
        parts = [_nodes_of(t, a, node) for t in expr.args]
        if any(p is None for p in parts):
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out * p
        return out
    if isinstance(expr, sympy.Pow) and expr.exp.is_Integer and 1 <= int(expr.exp) <= 4:
        base = _nodes_of(expr.base, a, node)
        if base is None:
            return None
        out = base
        for _ in range(int(expr.exp) - 1):
            out = out * base
        return out
    return None


def _forward_refs(body: Body, roots: list[Node]) -> list[Node]:
    """Forward nodes of the body the backward graph reads, looking through views (recomputed)."""
    fwd = set(body.nodes())
    seen, stack, refs = set(), list(roots), []
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n not in fwd and not (_is_pick(n) and n.inputs[0] in fwd):  # (a new pick of a body loop's output
            stack.extend(n.inputs)  # is a forward value, saved as one)
            continue
        if n.kind == "const" or n in body.xs_in or n in body.closed_in:
            continue
        if not n.is_leaf and (n.op.layout is not None or _constant(n)):
            stack.extend(n.inputs)  # a view or a constant: computed again
            continue
        refs.append(n)
    return sorted(refs, key=lambda n: n.id)


def _constant(n: Node) -> bool:
    return all(m.kind == "const" for m in reachable([n]) if m.is_leaf)


def with_saved(body: Body) -> Body:
    """``body`` with the values its backward pass reads added to its stacked outputs (once)."""
    if body.plan is not None:
        return body
    wrt = _float(body.placeholders)
    error = None
    refs: list[Node] = []
    try:
        _, _, res, _ = backward_graph(body, list(range(len(body.ys))), wrt)
        refs = _forward_refs(body, [r for r in res.values() if r is not None])
    except (NotDifferentiableError, GradError) as e:
        error = e
    ys = list(body.ys)
    saved = {y: m for m, y in enumerate(ys)}
    for r in refs:
        if Plan(saved).index(r) is None:
            saved[r] = len(ys)
            ys.append(r)
    new = Body(body.carry_in, body.xs_in, body.closed_in, body.carry_out, ys, body.n_user, body.labels,
               body.role, body.of, body.sums, body.origin)
    new.plan = Plan(saved, error)
    return new


# ------------------------------------------------------------------------ the VJP
def _zeros_like(ref: Node) -> Node:
    if is_static(ref.shape):
        return const(np.zeros(ref.shape))
    return apply("broadcast_like", const(0.0), ref)


def _terms(n: Node) -> list[Node]:
    """The summands of a sum of same-shaped nodes."""
    if n.op is not None and n.op.arith == "add" and all(i.shape == n.shape for i in n.inputs):
        return _terms(n.inputs[0]) + _terms(n.inputs[1])
    return [n]


def scan_vjp(node: Node, gs: tuple, needs: tuple) -> tuple:
    body: Body = node.attr("body")
    T, reverse = node.attr("length"), node.attr("reverse")
    plan: Plan = body.plan
    if plan.error is not None:
        raise NotDifferentiableError(f"grad: the body of a scan is not differentiable ({plan.error})")
    K, J = len(body.carry_in), len(body.xs_in)
    init, xs, closed = node.inputs[:K], node.inputs[K:K + J], node.inputs[K + J:]
    present = [m for m in range(len(body.ys)) if gs[K + m] is not None]
    want_x = [j for j in range(J) if needs[K + j]]
    want_c = [c for c in range(len(closed)) if needs[K + J + c]]
    wrt = _float(body.carry_in) + [body.xs_in[j] for j in want_x] + [body.closed_in[c] for c in want_c]
    gc, gy, res, _ = backward_graph(body, present, wrt)
    unique = UniqueNames(list(body.xs_in + body.closed_in) + gc + list(gy.values()))  # the backward body's leaves

    # the forward values the backward graph reads: stacked outputs of this scan, read step by step
    fwd = set(body.nodes())
    mapping: dict[Node, Node] = {}
    stacked: dict[Node, Node] = {gy[m]: gs[K + m] for m in present}
    stacked.update(zip(body.xs_in, xs))
    seen, stack = set(), [r for r in res.values() if r is not None]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        forward = n in fwd or (_is_pick(n) and n.inputs[0] in fwd)
        if forward and n not in body.xs_in and n not in body.closed_in and n.kind != "const":
            index = plan.index(n)
            if index is not None:
                label = body.labels.get(n, (n.name or "s", 0))
                stem = label[0].split(".")[-1] + ("_prev" if label[1] < 0 else "")
                ph = var(unique(stem), n.shape, n.dtype)
                mapping[n] = ph
                stacked[ph] = scan_out(node, K + index)
                continue
            if n.is_leaf:
                raise GraphError(f"grad: the backward pass of a scan reads {n.describe()}, which was not saved")
        stack.extend(n.inputs)
    keys = [w for w in wrt if res[w] is not None]
    rebuilt = dict(zip(keys, substitute([res[w] for w in keys], mapping)))
    res = {w: rebuilt.get(w) for w in wrt}

    # the δ recurrence: what depends on the carried δs stays in the loop
    dcarry = [res.get(p) if res.get(p) is not None else _zeros_like(g) for p, g in zip(body.carry_in, gc)]
    # the loop computes what the δ recurrence needs; the rest is computed for all steps at once where it
    # batches, from stacked values of the recurrence
    core: set[Node] = set(gc) | set(reachable(dcarry))
    boundary: list[Node] = []
    stand_in: list[Node] = []

    def store(n: Node) -> Node:
        boundary.append(n)
        stand_in.append(var(f"_stacked{len(boundary)}", (T,) + n.shape, n.dtype))
        return stand_in[-1]

    labels = {g: (g.name, 0) for g in gc}
    fixed = {p: c for p, c in zip(body.closed_in, closed)}
    batch = Batcher(stacked, fixed, store, can_batch=lambda n: n not in core)

    # gradients of closed-over values: summed over the steps outside the loop, else accumulated inside
    acc_in, acc_out, acc_init, acc_of = [], [], [], {}
    outer_c: dict[int, list[Node]] = {}
    sums = []
    for c in want_c:
        d = res[body.closed_in[c]]
        if d is None:
            continue
        kept = []
        for term in _terms(d):
            total = None if term in core else _sum_over_steps(term, batch)
            if total is None:
                kept.append(term)
            else:
                outer_c.setdefault(c, []).append(total)
                sums.append((total, term, K + J + c))
        if kept:
            acc = var(unique("Σδ" + body.closed_in[c].name.split(".")[-1]), body.closed_in[c].shape)
            new = acc
            for term in kept:
                new = new + term
            acc_of[c] = len(acc_in)
            acc_in.append(acc)
            acc_out.append(new)
            acc_init.append(_zeros_like(closed[c]))
            labels[acc] = (acc.name, 0)
    # gradients of the scanned inputs: computed for all steps after the loop where they can be
    outer_x: dict[int, Node] = {}
    for j in want_x:
        d = res[body.xs_in[j]]
        if d is None:
            continue
        got = batch(d) if d not in core else None
        outer_x[j] = got[0] if got is not None and got[1] else store(d)

    carry_out = dcarry + acc_out
    ys = list(boundary)
    roots = carry_out + ys
    used = {n for n in reachable(roots) if n.is_leaf}
    xs_in = [p for p in stacked if p in used and p not in body.closed_in]
    closed_in = [p for p in body.closed_in if p in used]
    labels.update((p, body.labels[p]) for p in stacked if p in body.labels)  # in the loop or in a Σ_t term
    labels.update((mapping_ph, body.labels.get(n, (n.name or mapping_ph.name, 0))) for n, mapping_ph in mapping.items())
    labels.update((d, (g.name, -1)) for d, g in zip(dcarry, gc) if d not in labels)
    for m, g in gy.items():  # the cotangent of a stacked output from outside: ∂L/∂y_t
        y = body.ys[m]
        labels[g] = ("∂" + body.labels.get(y, (y.name or f"y{m + 1}", 0))[0].split(".")[-1],
                     body.labels.get(y, (None, 0))[1])
    back = Body(list(gc) + acc_in, xs_in, closed_in, carry_out, ys, len(ys), labels, role="backward", of=node,
                origin={ph: n for n, ph in mapping.items()})
    init_b = [gs[k] if gs[k] is not None else _zeros_like(init[k]) for k in range(K)] + acc_init
    B = make_scan(back, init_b, [stacked[p] for p in xs_in], [fixed[p] for p in closed_in], T, not reverse)
    kb = len(back.carry_in)
    picks = {s: scan_out(B, kb + i) for i, s in enumerate(stand_in)}

    finals = {}
    memo: dict[Node, Node] = {}  # one rebuild for all: the sums the printers read are the gradient's nodes
    outs_x = dict(zip(outer_x, substitute(list(outer_x.values()), picks, memo)))
    rebuilt = {id(o): r for o, r in zip([o for o, _, _ in sums], substitute([o for o, _, _ in sums], picks, memo))}
    for c in want_c:
        parts = [rebuilt[id(o)] for o in outer_c.get(c, [])]
        if c in acc_of:
            parts.append(scan_out(B, K + acc_of[c]))
        if parts:
            total = parts[0]
            for p in parts[1:]:
                total = total + p
            finals[c] = total
    sources = (dict(stacked), dict(fixed))  # where a printed Σ_t term reads its placeholders: per step, fixed
    B.attr("body").sums.extend((rebuilt[id(o)], term, i, sources) for o, term, i in sums)
    out: list[Any] = []
    for k in range(K):
        out.append(scan_out(B, k) if needs[k] and init[k].dtype != "int" else None)
    for j in range(J):
        out.append(outs_x.get(j))
    for c in range(len(closed)):
        out.append(finals.get(c))
    return tuple(out)


def _sum_over_steps(term: Node, batch: Batcher) -> Node | None:
    """Σ_t of a per-step value, computed outside the loop, or None when that is not possible.

    ``Aᵀ B`` summed over t is one contraction over t and the rows (``einsum("tbi,tbk->ik")``), a sum
    over axes one more sum; anything else that batches is summed over its time axis."""
    from .einsum import einsum
    op = term.op
    if op is None:
        return None
    if op is get_op("matmul") and all(i.ndim == 2 for i in term.inputs):
        left, right = term.inputs
        if left.op is not None and left.op.layout == "transpose" and left.attr("axes") == (1, 0):
            p, q = batch(left.inputs[0]), batch(right)
            if p is not None and q is not None:
                (pn, pb), (qn, qb) = p, q
                if pb and qb:
                    return einsum("tbi,tbk->ik", pn, qn)
                if pb:
                    return apply("transpose", apply("sum", pn, axis=(0,), keepdims=False), axes=(1, 0)) @ qn
                if qb:
                    return apply("transpose", pn, axes=(1, 0)) @ apply("sum", qn, axis=(0,), keepdims=False)
                return None
    if op.reduction == "sum" and term.attr("axis") is not None and not term.attr("keepdims"):
        got = batch(term.inputs[0])
        if got is not None and got[1]:
            return apply("sum", got[0], axis=(0,) + tuple(a + 1 for a in term.attr("axis")), keepdims=False)
    got = batch(term)
    if got is None or not got[1]:
        return None
    return apply("sum", got[0], axis=(0,), keepdims=False)
