"""Backpropagation through time, as equations: :func:`backprop_equations` of a loss computed by loops.

The gradient of a loop is a loop (:mod:`symgrad.ops.scan_grad`); its body is printed once, at step t,
like the forward body (:mod:`.loops`): each cotangent of a node named in the forward body
(``δ_z_t = (δ_h_t + ∂L/∂h_t) ⊙ (1 − h_t ⊙ h_t)``), then each carried δ from the step after it
(``δ_h_t = δ_z_{t+1} W_hhᵀ``), started from the cotangent of the last carry (``δ_h_T = …``).  A
parameter's gradient is the sum over the steps of a per-step term (``∂L/∂W_hh = Σ_t h_{t−1}ᵀ δ_z_t``),
which is how the compiler computes it too: one contraction after the loop.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import sympy

from ..autodiff import adjoints
from ..evaluate import complete_feeds, evaluate
from ..graph import Graph, Node
from ..ops.base import get_op
from .loops import Section, _is_loop, _is_pick, _Outer, _show, _tex
from .numeric import numeric
from .printing import Printable, join_pretty, partial_latex, partial_text, to_latex, to_pretty


class SumOverSteps:
    """``Σ_t term``: a parameter gradient summed over a loop's steps (its term in the loop's symbols)."""

    def __init__(self, term: Any, section: Section, node: Node, sources: tuple):
        self.term, self.section, self.node = term, section, node
        self.stacked, self.fixed = sources  # the outer nodes its placeholders read: per step, whole

    def pretty(self) -> str:
        return join_pretty(["Σₜ ", self.term])

    def latex(self) -> str:
        return r"\sum_{t} " + to_latex(self.term)

    def mathml(self) -> str:
        from .mathml import row, sum_over
        return row(sum_over("t"), self.term)


class LoopBackprop(Printable):
    """The result of :func:`symgrad.backprop_equations` for a loss computed by loops.

    ``forward``: ``(section, equations, initial)`` of each forward loop and the loss; ``backward``: the
    same for each backward loop; ``grads``: ``(param, [right-hand side parts])``.
    """

    def __init__(self, loss: Node, loss_name: str, loss_expr: Any, forward: list, backward: list, grads: list,
                 outer: _Outer):
        self.loss, self.loss_name, self.loss_expr = loss, loss_name, loss_expr
        self.forward, self.backward, self.grads, self.outer = forward, backward, grads, outer

    def labels(self) -> list[str]:
        out = []
        for sec, eqs, _ in self.backward:
            out += [str(lhs) for lhs, _, node, offset in eqs if offset == 0]
        return out + [f"∂{self.loss_name}/∂{p.name}" for p, _ in self.grads]

    def _grad_rows(self, printer, joiner) -> list[str]:
        rows = []
        for p, parts in self.grads:
            texts = [printer(x) for x in parts]
            rows.append(joiner(p, texts))
        return rows

    def pretty(self) -> str:
        lines = ["forward:"]
        for sec, eqs, init in self.forward:
            lines.append(f"  for {sec.header}:")
            lines += [join_pretty(["    ", lhs, " = ", rhs]) for lhs, rhs, *_ in eqs]
            lines += [join_pretty(["    ", lhs, " = ", rhs]) for lhs, rhs in init + sec.definitions]
        if isinstance(self.loss_expr, Printable):  # index notation writes its own left-hand side
            lines += ["  " + ln for ln in self.loss_expr.pretty().splitlines()]
        else:
            lines.append(join_pretty(["  ", self.loss_name, " = ", self.loss_expr]))
        lines.append("backward:")
        for sec, eqs, init in self.backward:
            lines += [join_pretty(["  ", lhs, " = ", rhs]) for lhs, rhs in init]
            lines.append(f"  for {sec.header}:")
            lines += [join_pretty(["    ", lhs, " = ", sec.shown(rhs, off)]) for lhs, rhs, _, off in eqs]
        for p, parts in self.grads:
            blocks = [x for x in parts if isinstance(x, Block)]
            if blocks:  # a parameter made of named blocks: each block's gradient is its named part's
                lines.append(f"  {partial_text(sympy.Symbol(self.loss_name), sympy.Symbol(p.name))} = "
                             + ", ".join(x.text(p) for x in blocks))
                continue
            row = ["  ", partial_text(sympy.Symbol(self.loss_name), sympy.Symbol(p.name)), " = "]
            for k, x in enumerate(parts):
                row += ([" + "] if k else []) + (["Σₜ ", x.section.shown(x.term, 0)] if isinstance(x, SumOverSteps)
                                                 else [x])
            lines.append(join_pretty(row))
        return "\n".join(lines)

    def latex(self) -> str:
        rows = []
        for sec, eqs, init in self.forward:
            rows += [r"%s &= %s" % (to_latex(lhs), to_latex(rhs)) for lhs, rhs, *_ in eqs]
            rows += [r"%s &= %s" % (to_latex(lhs), to_latex(rhs)) for lhs, rhs in init + sec.definitions]
        rows.append(r"%s &= %s" % (self.loss_name, _tex(self.loss_expr).split(" = ", 1)[-1]))  # noqa: UP031
        back = []
        for sec, eqs, init in self.backward:
            back += [r"%s &= %s" % (to_latex(lhs), to_latex(rhs)) for lhs, rhs in init]
            back += [r"%s &= %s" % (to_latex(lhs), to_latex(sec.shown(rhs, off))) for lhs, rhs, _, off in eqs]
        for p, parts in self.grads:
            from ..ops.index import key_text
            text = " + ".join(r"\sum_{t} " + to_latex(x.section.shown(x.term, 0)) if isinstance(x, SumOverSteps)
                              else r"\left[%s\right] \leftarrow %s" % (key_text(x.key, p.shape), to_latex(x.symbol))
                              if isinstance(x, Block) else to_latex(x) for x in parts)
            back.append(r"%s &= %s" % (partial_latex(sympy.Symbol(self.loss_name), sympy.Symbol(p.name)), text))
        return r"\begin{aligned}" + r" \\ ".join(rows) + r" \\[6pt] " + r" \\ ".join(back) + r"\end{aligned}"

    def mathml(self) -> str:
        """The rows of :meth:`latex` as a MathML table aligned on ``=``, each loop under its ``for t = …``."""
        from ..ops.index import key_text
        from .mathml import Heading, Row, cell, index_row, mo, partial, row, sum_over, table, words
        rows = []
        for sec, eqs, init in self.forward:
            rows.append(Heading(f"for {sec.header}:"))
            rows += [Row(lhs, rhs) for lhs, rhs, *_ in eqs]
            rows += [Row(lhs, rhs) for lhs, rhs in init + sec.definitions]
        rows.append(index_row(self.loss_expr) if isinstance(self.loss_expr, Printable)
                    else Row(sympy.Symbol(self.loss_name), self.loss_expr))
        back = []
        for sec, eqs, init in self.backward:
            back += [Row(lhs, rhs) for lhs, rhs in init]
            back.append(Heading(f"for {sec.header}:"))
            back += [Row(lhs, sec.shown(rhs, off)) for lhs, rhs, _, off in eqs]
        for p, parts in self.grads:
            terms = []
            for k, x in enumerate(parts):
                terms += [mo("+")] if k else []
                if isinstance(x, SumOverSteps):
                    terms.append(row(sum_over("t"), x.section.shown(x.term, 0)))
                elif isinstance(x, Block):
                    terms.append(row(words(f"[{key_text(x.key, p.shape)}]"), mo("←"), x.symbol))
                else:
                    terms.append(cell(x))
            back.append(Row(partial(sympy.Symbol(self.loss_name), sympy.Symbol(p.name)), row(*terms)))
        return table(rows + back, gap_before=[len(rows)])

    # ------------------------------------------------------------------ numbers
    def evaluate(self, feeds: Mapping | None = None, *, seed: Any = None) -> dict[str, np.ndarray]:
        """Numbers for every backward equation, from the printed right-hand sides: each backward loop's
        equations run step by step (forward values, the loop's inputs and the cotangents reaching it from
        outside come from :func:`symgrad.evaluate`), each parameter's gradient as the sum of its printed
        terms.  Returns ``{label: array}``: ``"δ_z"`` stacked over the steps, ``"∂L/∂W_hh"``."""
        graph = Graph(self.loss)
        fed = complete_feeds(graph, feeds, seed, "backprop_equations.evaluate")
        env: dict[str, Any] = {}
        for leaf in graph.leaves:
            if leaf.kind in ("var", "param", "buffer", "random"):
                env[leaf.name] = fed[leaf] if leaf in fed else leaf.value
                env.update((d, n) for d, n in zip(leaf.shape, np.shape(env[leaf.name])) if isinstance(d, str))
        scans = [sec.scan for sec, *_ in self.backward]
        extra = [n for _, parts in self.grads for x in parts if isinstance(x, SumOverSteps)
                 for n in list(x.stacked.values()) + list(x.fixed.values())]
        # a loop's outputs read outside it (h_T under a linear head) by the symbols they print as
        picked = {n: s for n, s in self.outer.picks.items() if isinstance(s, (sympy.Symbol, sympy.MatrixSymbol))}
        outer_nodes = sorted({i for s in scans for i in s.inputs} | set(extra) | set(picked), key=lambda n: n.id)
        values = dict(zip(outer_nodes, evaluate(outer_nodes, fed))) if outer_nodes else {}
        for n, sym in picked.items():
            env.setdefault(sym.name, values[n])
        out: dict[str, np.ndarray] = {}
        sums: dict[Node, list] = {}
        for sec, eqs, _ in self.backward:
            self._run(sec, eqs, values, env, out, sums)
        for p, parts in self.grads:
            total = np.zeros(p.shape)
            for x in parts:
                if isinstance(x, SumOverSteps):
                    total = total + np.sum([v.reshape(p.shape) for v in sums[x.node]], axis=0)
                elif isinstance(x, Block):
                    from ..ops.index import _numpy_key
                    total[_numpy_key(x.key)] += out[f"∂{self.loss_name}/∂{x.of.name}"]
                else:
                    total = total + np.asarray(numeric(x, env), dtype=np.float64).reshape(p.shape)
            out[f"∂{self.loss_name}/∂{p.name}"] = total
        return out

    def _run(self, sec: Section, eqs: list, values: dict, env: dict, out: dict, sums: dict) -> None:
        body, scan = sec.body, sec.scan
        K, J = len(body.carry_in), len(body.xs_in)
        inputs = [values[i] for i in scan.inputs]
        carry = [np.asarray(v, dtype=np.float64) for v in inputs[:K]]
        xs = inputs[K:K + J]
        T = len(xs[0]) if xs else int(scan.attr("length"))
        for p, c in zip(body.closed_in, inputs[K + J:]):
            sym = sec.fixed[p]
            if isinstance(sym, (sympy.Symbol, sympy.MatrixSymbol)):
                env[sym.name] = c
        for p, c, v in zip(body.closed_in, scan.inputs[K + J:], inputs[K + J:]):
            env.update((d, n) for d, n in zip(c.shape, np.shape(v)) if isinstance(d, str))
        terms = list({x.node: x for _, parts in self.grads for x in parts
                      if isinstance(x, SumOverSteps) and x.section is sec}.values())  # each sum once
        for x in terms:  # what the Σ_t terms read that the loop itself does not
            for p, src in x.fixed.items():
                sym = sec.fixed.get(p)
                if isinstance(sym, (sympy.Symbol, sympy.MatrixSymbol)):
                    env[sym.name] = values[src]
        stacked: dict[str, list] = {}
        for t in (range(T - 1, -1, -1) if scan.attr("reverse") else range(T)):
            step: dict[Node, np.ndarray] = dict(zip(body.carry_in, carry))
            step.update((p, np.asarray(x[t], dtype=np.float64)) for p, x in zip(body.xs_in, xs))
            for n, v in step.items():  # dims of the batch, from this step's values
                env.update((d, s) for d, s in zip(n.shape, np.shape(v)) if isinstance(d, str))

            def bind(offset):
                for n in sec.kept:
                    if n in step:
                        env[sec.name(n, offset)] = step[n]
            for lhs, rhs, node, offset in eqs:
                bind(offset)
                shape = tuple(env[d] if isinstance(d, str) else d for d in node.shape)
                step[node] = np.asarray(numeric(rhs, env), dtype=np.float64).reshape(shape)
                if offset == 0:
                    stacked.setdefault(str(lhs), [None] * T)[t] = step[node]
            for x in terms:
                step.update((p, np.asarray(values[src][t], dtype=np.float64)) for p, src in x.stacked.items()
                            if p not in step)
            bind(0)
            for x in terms:
                sums.setdefault(x.node, []).append(np.asarray(numeric(x.term, env), dtype=np.float64))
            carry = [step[o] for o in body.carry_out]
        for name, vals in stacked.items():
            out[name.rsplit("_", 1)[0]] = np.stack(vals)


def loop_backprop(loss: Node, targets: list[Node], loss_name: str) -> LoopBackprop:
    """:func:`symgrad.backprop_equations` of ``loss`` when its graph holds loops."""
    adj = adjoints(loss, targets)
    grads = {t: adj[t] for t in targets if t in adj}
    outer = _Outer([loss] + list(grads.values()), loss_name)
    forward, backward = [], []
    for sec in sorted(outer.sections.values(), key=lambda s: s.scan.id):
        entry = (sec, sec.equations(), sec.initial(outer))
        (backward if sec.body.role == "backward" else forward).append(entry)
    sums = {}
    for sec, *_ in backward:
        for total, term, _, sources in sec.body.sums:
            sums[total] = (sec, term, sources)
    rows, named = [], {}
    for t, g in grads.items():
        parts = []
        for term in _terms(g):
            block = _block(term, sums)
            if term in sums:
                parts.append(_sum(term, sums))
            elif block is not None:  # a gate's block of a parameter: ∂L/∂W_ih[:, 4:8] = ∂L/∂W_if
                key, total, of = block
                named.setdefault(of, _sum(total, sums))
                parts.append(Block(key, t.shape, of, _partial_of(loss_name, of)))
            else:
                parts.append(outer.value(term, None, []))
        rows.append((t, parts))
    order = lambda k: tuple((it[0] or 0) if isinstance(it, tuple) else 0 for it in k)  # noqa: E731  by position
    rows = [(of, [s_]) for of, s_ in sorted(named.items(), key=lambda kv: kv[0].id)] + \
        [(t, sorted(parts, key=lambda x: order(x.key)) if all(isinstance(x, Block) for x in parts) else parts)
         for t, parts in rows]
    loss_expr = outer.formula(loss, loss_name)
    return LoopBackprop(loss, loss_name, loss_expr, forward, backward, rows, outer)


def _sum(total: Node, sums: dict) -> SumOverSteps:
    sec, per_step, sources = sums[total]
    return SumOverSteps(sec.builder(0).define(per_step), sec, total, sources)


def _block(term: Node, sums: dict) -> tuple | None:
    """``(key, sum node, the named block)`` when ``term`` writes a loop's Σ_t for a named block of a
    parameter (``W_ih[:, 4:8]``, read as ``W_if``) into the parameter's place, else None."""
    if term.op is not get_op("scatter") or term.inputs[0] not in sums:
        return None
    sec, _, _ = sums[term.inputs[0]]
    for total, _, index, _ in sec.body.sums:
        if total is term.inputs[0]:
            of = sec.body.of.inputs[index]
            if of.name and not of.is_leaf:
                return term.attr("key"), total, of
    return None


def _partial_of(loss: str, node: Node) -> Any:
    from .loops import _partial
    return _partial(loss, node.name, node.shape)


class Block:
    """One block of a parameter's gradient: ``∂L/∂W_ih[key] = ∂L/∂W_if``."""

    def __init__(self, key: tuple, shape: tuple, of: Node, symbol: Any):
        self.key, self.shape, self.of, self.symbol = key, shape, of, symbol

    def text(self, param: Node) -> str:
        from ..ops.index import key_text
        return f"[{key_text(self.key, param.shape)}] ← {to_pretty(self.symbol)}"


def _terms(n: Node) -> list[Node]:
    if n.op is not None and n.op.arith == "add" and all(i.shape == n.shape for i in n.inputs):
        return _terms(n.inputs[0]) + _terms(n.inputs[1])
    return [n]


def has_loops(node: Node) -> bool:
    """Whether ``node``'s graph holds a loop."""
    return any(_is_loop(n) or _is_pick(n) for n in Graph(node).order)
