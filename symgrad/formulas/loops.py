"""Formulas through loops (:func:`symgrad.scan`): the body printed once, with a time index.

``sg.formula`` of a node computed by a loop gives a :class:`LoopFormula`: the node in terms of the
loop's outputs (``h_T``, the sequence ``h``), then, for each loop, its body's equations at step t —
``z_t = x_t W_ih + h_{t−1} W_hh + b``, ``h_t = tanh(z_t)`` — and its initial carry (``h_0 = …``).
The carry entering step t is ``h_{t−1}`` (``h_{t+1}`` in a loop run backwards), a step of a scanned
input ``x_t``, a node named inside the body ``z_t``.

:func:`loop_backprop` writes backpropagation through time the same way (:class:`LoopBackprop`): the
forward recurrences, then each backward loop's equations — ``δ_z_t = (δ_h_t + ∂L/∂h_t) ⊙ (1 − h_t ⊙ h_t)``
for the cotangent of a named body node, ``δ_h_t = δ_z_{t+1} W_hhᵀ`` for a carried δ, written from
step t+1 — and each parameter's gradient as a sum over the steps, ``∂L/∂W_hh = Σ_t h_{t−1}ᵀ δ_z_t``.
Its :meth:`~LoopBackprop.evaluate` runs the printed recurrences step by step and sums the printed
terms, from the forward values, which :func:`symgrad.evaluate` gives.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import sympy
from sympy import MatrixSymbol

from ..graph import Node
from ..ops.base import get_op
from ..ops.scan_batch import reachable
from .build import MATRIX, SCALAR, Builder
from .notation import leaf_symbol, matrix_shape
from .printing import DELTA, Printable, join_pretty, to_latex, to_pretty


def _index(shift: int) -> str:
    return "t" if shift == 0 else f"t{shift:+d}"


def _is_loop(n: Node) -> bool:
    return n.op is not None and n.op.outputs is not None


def _is_pick(n: Node) -> bool:
    return bool(n.inputs) and _is_loop(n.inputs[0])


class _Partial(sympy.Symbol):
    """``∂L/∂h_t``: a per-step cotangent that reaches a loop from outside, printed as a partial (its
    name, ``∂L/∂h_t``, is what numbers are looked up by)."""

    def _parts(self) -> tuple[str, str]:
        loss, of = self.name[1:].split("/∂", 1)
        return loss, of

    def _latex(self, printer):
        loss, of = self._parts()
        return r"\frac{\partial %s}{\partial %s}" % (loss, printer._print(sympy.Symbol(of)))

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm
        loss, of = self._parts()
        return prettyForm(f"∂{loss}/∂" + str(printer._print(sympy.Symbol(of))))


class _PartialMatrix(MatrixSymbol):
    _parts = _Partial._parts
    _latex = _Partial._latex
    _pretty = _Partial._pretty

    @property
    def name(self):
        return self.args[0].name


def _partial(loss: str, of: str, shape: tuple) -> Any:
    """The symbol ``∂loss/∂of``."""
    name = f"∂{loss}/∂{of}"
    ms = matrix_shape(shape, name)
    return _Partial(name, real=True) if ms is None else _PartialMatrix(name, *ms)


def _name(label: tuple, offset: int, reverse: bool) -> str:
    """``("h", -1)`` -> ``h_t-1`` (``h_t+1`` when the loop runs backwards); a δ label prints as δ_h_t."""
    base, shift = label
    shift = (-shift if reverse else shift) + offset
    base = base.split(".")[-1] if base.startswith("δ") else base
    if base.startswith("δ"):
        return DELTA + base[1:] + "_" + _index(shift)
    return f"{base}_{_index(shift)}"


class Section:
    """One loop's equations at step t: ``(lhs symbol, rhs, body node)`` each, its initial carries and
    the range of t."""

    def __init__(self, scan: Node, outer: "_Outer", loss: str = "L"):
        self.scan, self.body = scan, scan.attr("body")
        self.reverse, T = scan.attr("reverse"), scan.attr("length")
        # time indices are the forward loop's: a backward loop of a forward loop runs backwards
        self.flip = self.reverse if scan.attr("body").role == "forward" else not self.reverse
        self.T = str(T)
        self.header = f"t = {self.T}, …, 1" if self.reverse else f"t = 1, …, {self.T}"
        body = self.body
        nodes = body.graph.order if body.graph is not None else []
        self.mode = SCALAR if all(n.shape == () for n in nodes) else MATRIX
        self.kept: dict[Node, tuple] = {}  # node -> its label (name, shift)
        for p in body.carry_in + body.xs_in:
            self.kept[p] = body.labels.get(p, (p.name, 0))
        for n, label in body.labels.items():  # placeholders a printed Σ_t term reads
            if n.is_leaf and n not in self.kept and n not in body.closed_in:
                self.kept[n] = label
        for n in nodes:
            if not n.is_leaf and n.name and n not in body.carry_out:
                self.kept[n] = (n.name, 0)
        if body.role == "forward":  # h_t = o_t ⊙ tanh(c_t): a carry leaving the step has its own symbol
            for p, o in zip(body.carry_in, body.carry_out):
                if not o.is_leaf and o not in self.kept and body.carry_out.count(o) == 1:
                    self.kept[o] = body.labels.get(o, (p.name, 0))
        for n in nodes:  # cotangents of named forward nodes (a backward loop): δ_z
            if not n.is_leaf and n not in self.kept and n.grad_of and n not in body.carry_out:
                named = next((f.name for f in n.grad_of if f.name), None)
                if named and not named.startswith("δ") and "." not in named:
                    self.kept[n] = ("δ" + named, 0)
        self.loss, self.outer = loss, outer
        self.fixed: dict[Node, Any] = {}
        self.definitions: list[tuple] = []
        for p, c in zip(body.closed_in, scan.inputs[len(body.carry_in) + len(body.xs_in):]):
            self.fixed[p] = outer.value(c, p.name, self.definitions)
        self.inner = None  # the loops inside the body, whose outputs the body's equations read by symbol
        if any(_is_loop(n) for n in nodes):
            self.inner = _Outer(list(body.carry_out) + list(body.ys), loss)
            self.fixed.update(self.inner.picks)

    def symbols(self, offset: int) -> dict[Node, Any]:
        out = dict(self.fixed)
        for n in self.kept:
            out[n] = self.symbol(n, offset)
        return out

    def name(self, n: Node, offset: int) -> str:
        """The name of kept node ``n``'s symbol in an equation written at step t + ``offset``."""
        base, shift = self.kept[n]
        if base.startswith("∂"):
            return f"∂{self.loss}/∂" + _name((base[1:], shift), offset, self.flip)
        return _name((base, shift), offset, self.flip)

    def symbol(self, n: Node, offset: int) -> Any:
        base, shift = self.kept[n]
        if base.startswith("∂"):
            return _partial(self.loss, _name((base[1:], shift), offset, self.flip), n.shape)
        return leaf_symbol(_name((base, shift), offset, self.flip), n.shape)

    def display(self, offset: int) -> dict:
        """Symbols to print as formulas: a value the forward loop saved for this backward loop, which its
        body computes without a name, is written as that computation (``tanh(c_t)``)."""
        if self.body.role != "backward" or not self.body.origin:
            return {}
        fwd_body = self.body.of.attr("body")
        shown = {p: n for p, n in self.body.origin.items()
                 if p in self.kept and not n.name and not n.is_leaf and n not in fwd_body.carry_out}
        if not shown:
            return {}
        b = Section(self.body.of, self.outer, self.loss).builder(offset)
        return {self.symbol(p, offset): b.define(n) for p, n in shown.items()}

    def shown(self, expr: Any, offset: int) -> Any:
        """``expr`` as printed (saved values written as their computation)."""
        subs = self.display(offset)
        return expr.xreplace(subs) if subs and hasattr(expr, "xreplace") else expr

    def builder(self, offset: int) -> Builder:
        return Builder(self.mode, self.symbols(offset), opaque=True)

    def equations(self) -> list[tuple]:
        """``(lhs, rhs, node, offset)``: named nodes, then each carry leaving the step (written at step t; a
        backward loop's δ carries from step t+1), then the stacked outputs that are none of these."""
        body = self.body
        out = []
        b0 = self.builder(0)
        inner = self.inner.picks if self.inner is not None else {}
        for n in (body.graph.order if body.graph is not None else []):
            if n in self.kept and not n.is_leaf:  # (an output of a loop inside: that loop's symbol)
                out.append((b0.symbols[n], inner[n] if n in inner else b0.define(n), n, 0))
        for p, o in zip(body.carry_in, body.carry_out):
            if o in self.kept:  # a forward carry: written in its place among the named nodes
                continue
            label = body.labels.get(o, (p.name, 0 if body.role == "forward" else -1))
            offset = 1 if body.role == "backward" else 0
            b = self.builder(offset)
            lhs = leaf_symbol(_name(label, offset, self.flip), o.shape)
            if o.is_leaf:  # a carry passed on unchanged
                rhs = b.symbols.get(o, o)
            else:
                rhs = b.symbols[o] if o in b.symbols and o not in self.kept else b.define(o)
            out.append((lhs, rhs, o, offset))
        for m, y in enumerate(body.ys[:body.n_user] if body.role == "forward" else ()):
            if y in body.carry_out or y in self.kept or y.is_leaf:
                continue
            lhs = leaf_symbol(_name((y.name or f"y{m + 1}", 0), 0, self.flip), y.shape)
            out.append((lhs, b0.define(y), y, 0))
        return out

    def initial(self, outer: "_Outer") -> list[tuple]:
        body, scan = self.body, self.scan
        start = str(int(self.T) + 1) if self.reverse and self.T.isdigit() else f"{self.T}+1" if self.reverse else "0"
        out = []
        for k, (p, o) in enumerate(zip(body.carry_in, body.carry_out)):
            base = body.labels.get(o, (p.name, 0))[0]
            if body.role == "backward":  # the δ of the forward loop's last carry, from outside the loop
                name = _name((base, 0), 0, False).rsplit("_", 1)[0] + "_" + ("1" if self.flip else self.T)
            else:
                name = f"{base}_{start}"
            lhs, rhs = leaf_symbol(name, p.shape), outer.value(scan.inputs[k], None, self.definitions)
            if to_pretty(lhs) != to_pretty(rhs):  # h₀ = h₀ says nothing
                out.append((lhs, rhs))
        return out

    def output_symbol(self, index: int) -> Any:
        """The symbol of output ``index`` of the loop: a final carry ``h_T``, or a stacked sequence ``h``."""
        body, K = self.body, len(self.body.carry_in)
        if index < K:
            base = body.labels.get(body.carry_out[index], (body.carry_in[index].name, 0))[0]
            last = "1" if self.reverse else self.T
            return leaf_symbol(_name((base, 0), 0, False).rsplit("_", 1)[0] + "_" + last, body.carry_in[index].shape)
        y = body.ys[index - K]
        label = body.labels.get(y) or self.kept.get(y) or (y.name or f"y{index - K + 1}", 0)
        stem = _name(label, 0, self.flip).rsplit("_", 1)[0]
        return sympy.Symbol(stem + ("_prev" if label[1] < 0 else ""), real=True)


class _Outer:
    """Formulas of nodes outside loops, with each loop output read as its symbol."""

    def __init__(self, roots: Sequence[Node], loss: str = "L"):
        self.sections: dict[Node, Section] = {}
        self.picks: dict[Node, Any] = {}
        self.matrix = Builder(MATRIX, {}, opaque=True)
        self.scalar = Builder(SCALAR, {}, opaque=True)
        for n in reachable(roots):  # in order: a loop's inputs (read by its section) come first
            if _is_pick(n):
                scan = n.inputs[0]
                if scan not in self.sections:
                    self.sections[scan] = Section(scan, self, loss)
                self.picks[n] = self.sections[scan].output_symbol(n.attr("index"))
                self.matrix.symbols[n] = self.scalar.symbols[n] = self.picks[n]

    def value(self, node: Node, name: str | None, definitions: list) -> Any:
        """``node`` as a formula (a name with a definition when it is computed and ``name`` is given)."""
        if node in self.picks:
            return self.picks[node]
        if node.is_leaf and node.kind != "const":
            return leaf_symbol(node.name, node.shape)
        if _zero(node):
            return sympy.Integer(0)
        if _plain(node, top=True) and name is not None:  # blocks of parameters: W_ih[:, 0:4]
            expr = None
        else:
            try:
                expr = (self.scalar if node.shape == () and all(n.shape == () for n in reachable([node]))
                        else self.matrix).define(node)
            except Exception:  # noqa: BLE001  (a rank-3 value has no matrix notation: named instead)
                return sympy.Symbol(node.name or name or "u", real=True)
        if name is not None and not node.is_leaf:
            sym = leaf_symbol(node.name or name, node.shape)
            text = _plain(node, top=True)
            definitions.append((sym, sympy.Symbol(text) if text else expr))
            return sym
        return expr

    def formula(self, node: Node, name: str | None = None) -> Any:
        if node in self.picks:
            return self.picks[node]
        if any(n.ndim > 2 for n in reachable([node]) if not _is_loop(n)):
            from .index import index_formula
            names = {p: str(s) for p, s in self.picks.items()}
            return index_formula(node, names, name=name) if name else index_formula(node, names)
        return self.value(node, None, [])


def _plain(node: Node, top: bool = False) -> str | None:
    """``W[:, 0:4]``, ``b_ii + b_hi``: parameter blocks and their sums as text, else None."""
    if node.is_leaf:
        return node.name if node.kind != "const" else None
    if not top and node.name:
        return node.name
    if node.op is get_op("getitem") and node.inputs[0].is_leaf and node.inputs[0].name:
        from ..ops.index import key_text
        return f"{node.inputs[0].name}[{key_text(node.attr('key'), node.inputs[0].shape)}]"
    if node.op.arith in ("add", "sub"):
        a, b = (_plain(i) for i in node.inputs)
        return f"{a} {'+' if node.op.arith == 'add' else '-'} {b}" if a and b else None
    return None


def _zero(node: Node) -> bool:
    """Whether ``node`` is zero whatever its inputs: a zero constant, a view of one, a product with one."""
    if node.kind == "const":
        return not np.any(node.value)
    if node.is_leaf:
        return False
    if node.op.layout is not None or node.op.arith == "neg":
        return _zero(node.inputs[0])
    if node.op.arith == "mul" or node.op is get_op("matmul"):
        return any(i.kind == "const" and not np.any(i.value) for i in node.inputs)
    return False


def _show(expr: Any) -> str:
    return expr.pretty() if isinstance(expr, Printable) else to_pretty(expr)


def _tex(expr: Any) -> str:
    return expr.latex() if isinstance(expr, Printable) else to_latex(expr)


class LoopFormula(Printable):
    """A formula through loops: ``expr``, then each loop's equations at step t (see the module)."""

    def __init__(self, expr: Any, sections: list[tuple[Section, list, list]]):
        self.expr, self.sections = expr, sections

    def pretty(self) -> str:
        lines = [_show(self.expr)]
        for sec, eqs, init in self.sections:
            lines.append(f"where, for {sec.header}:")
            lines += [join_pretty(["  ", lhs, " = ", sec.shown(rhs, off)]) for lhs, rhs, _, off in eqs]
            lines += [join_pretty(["  ", lhs, " = ", rhs]) for lhs, rhs in init + sec.definitions]
        return "\n".join(lines)

    def latex(self) -> str:
        parts = [_tex(self.expr)]
        for sec, eqs, init in self.sections:
            rows = [r"%s &= %s" % (to_latex(lhs), to_latex(sec.shown(rhs, off))) for lhs, rhs, _, off in eqs]
            rows += [r"%s &= %s" % (to_latex(lhs), to_latex(rhs)) for lhs, rhs in init + sec.definitions]
            t = sec.header.replace("…", r"\dots")
            parts.append(r"\quad\text{where, for } %s:\quad \begin{aligned}%s\end{aligned}" % (t, r" \\ ".join(rows)))
        return "".join(parts)

    def mathml(self) -> str:
        """``expr``, then each loop's equations at step t as a MathML table beside it."""
        from .mathml import Row, cell, where
        body = cell(self.expr)
        for sec, eqs, init in self.sections:
            rows = [Row(lhs, sec.shown(rhs, off)) for lhs, rhs, _, off in eqs]
            rows += [Row(lhs, rhs) for lhs, rhs in init + sec.definitions]
            body = where(body, rows, f"where, for {sec.header}:")
        return body


def loop_formula(node: Node) -> LoopFormula:
    """:func:`symgrad.formula` of a node whose graph holds loops."""
    outer = _Outer([node])
    expr = outer.formula(node)
    sections = [(sec, sec.equations(), sec.initial(outer)) for sec in _nested(outer)]
    return LoopFormula(expr, sections)


def _nested(outer: _Outer) -> list[Section]:
    """The loops of ``outer`` in order, each followed by the loops inside its body."""
    out = []
    for sec in sorted(outer.sections.values(), key=lambda s: s.scan.id):
        out.append(sec)
        if sec.inner is not None:
            out += _nested(sec.inner)
    return out
