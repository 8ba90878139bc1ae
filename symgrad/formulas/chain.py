"""The chain rule, path by path: ∂L/∂w = ∂L/∂a · ∂a/∂z · ∂z/∂w.

Every simple path from ``x`` to ``y`` in the graph (networkx
``all_simple_paths``) contributes the product of its local partial
derivatives; the gradient is the sum over paths.  Each local partial is
the op's own VJP applied to the seed 1, so the factors are the very nodes
that :func:`symgrad.grad` multiplies, shown one at a time.

Scalar graphs only: the local partial of a tensor node is a Jacobian, not
a matrix formula; :func:`backprop_equations` writes tensor gradients.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import networkx as nx
import numpy as np
import sympy

from ..errors import GraphError, NotDifferentiableError, ShapeError
from ..evaluate import evaluate
from ..graph import Graph, Node
from ..ops import const
from .build import SCALAR, Builder, refold_map, tidy
from .printing import Printable, join_pretty, number_text, partial_latex, partial_text, symbol_text, to_latex


@dataclasses.dataclass(frozen=True, eq=False)
class Factor:
    """The local partial derivative ∂output/∂input along one edge."""

    output: Node
    input: Node
    expr: sympy.Expr  # in the symbols of the chain rule
    value: float | None  # with feeds
    node: Node  # the VJP node it was read from


@dataclasses.dataclass(frozen=True, eq=False)
class Path:
    """One path x → … → y: its nodes, local partials (from y down to x) and their product."""

    nodes: tuple
    factors: tuple
    product: sympy.Expr
    value: float | None


class ChainRule(Printable):
    """The result of :func:`chain_rule`.

    Attributes
    ----------
    output, wrt : the nodes y and x.
    symbols : {node: sympy.Symbol} for the nodes the formulas are written in
        (named nodes by name, other path nodes as u₁, u₂, …).
    definitions : [(symbol, formula)], each intermediate in terms of earlier
        ones, in topological order.
    paths : the :class:`Path` list.
    total : Σ over paths of their products, ∂y/∂x in the symbols.
    value : its number with feeds (None without).
    """

    def __init__(self, output: Node, wrt: Node, symbols: dict, definitions: list, paths: list,
                 total: sympy.Expr, value: float | None, closed: dict):
        self.output, self.wrt = output, wrt
        self.symbols, self.definitions, self.paths = symbols, definitions, paths
        self.total, self.value = total, value
        self._closed = closed

    def closed_form(self, expr: Any = None) -> sympy.Expr:
        """``expr`` (default: :attr:`total`) with every intermediate symbol replaced by its closed form."""
        expr = self.total if expr is None else expr
        return tidy(sympy.sympify(expr).xreplace(self._closed))

    def _sym(self, node: Node) -> sympy.Symbol:
        return self.symbols[node]

    # ------------------------------------------------------------ printing
    def pretty(self) -> str:
        y, x = self._sym(self.output), self._sym(self.wrt)
        head = partial_text(y, x)
        lines = []
        for k, path in enumerate(self.paths, 1):
            names = " → ".join(symbol_text(self._sym(n)) for n in path.nodes)
            chain = " · ".join(partial_text(self._sym(f.output), self._sym(f.input)) for f in path.factors)
            lines.append(f"path {k}: {names}:  {chain or '1'}")
            for f in path.factors:
                parts = [f"    {partial_text(self._sym(f.output), self._sym(f.input))} = ", f.expr]
                if f.value is not None and not f.expr.is_number:
                    parts.append(f" = {number_text(f.value)}")
                lines.append(join_pretty(parts))
            parts = ["  product = ", path.product]
            if path.value is not None and not path.product.is_number:
                parts.append(f" = {number_text(path.value)}")
            lines.append(join_pretty(parts))
        total = [f"{head} = ", self.total] + ([f" = {number_text(self.value)}"] if self.value is not None else [])
        lines.append(join_pretty(total))
        if self.definitions:
            lines.append("where")
            lines.extend(join_pretty(["  ", s, " = ", d]) for s, d in self.definitions)
        return "\n".join(lines)

    def latex(self) -> str:
        y, x = self._sym(self.output), self._sym(self.wrt)
        rows = []
        symbolic = " + ".join(" ".join(partial_latex(self._sym(f.output), self._sym(f.input)) for f in p.factors)
                              or "1" for p in self.paths) or "0"
        rows.append(r"%s &= %s" % (partial_latex(y, x), symbolic))
        if self.paths:
            rows.append("&= " + " + ".join(
                (r" \cdot ".join(r"\left(%s\right)" % to_latex(f.expr) for f in p.factors) or "1")
                for p in self.paths))
        rows.append("&= " + to_latex(self.total))
        if self.value is not None:
            rows.append("&= " + number_text(self.value))
        body = r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"
        if self.definitions:
            defs = r",\; ".join(r"%s = %s" % (to_latex(s), to_latex(d)) for s, d in self.definitions)
            body += r"\qquad \text{where } " + defs
        return body

    def mathml(self) -> str:
        """The rows of :meth:`latex` as a MathML table aligned on ``=``, the definitions beside it."""
        from .mathml import Row, joined, partial, row, table, where, words
        y, x = self._sym(self.output), self._sym(self.wrt)
        symbolic = [row(*[partial(self._sym(f.output), self._sym(f.input)) for f in p.factors]) if p.factors
                    else words("1") for p in self.paths]
        rows = [Row(partial(y, x), joined(symbolic, "+") if symbolic else words("0"))]
        if self.paths:
            factors = [joined([row("<mo>(</mo>", f.expr, "<mo>)</mo>") for f in p.factors], "·") if p.factors
                       else words("1") for p in self.paths]
            rows.append(Row("", joined(factors, "+")))
        rows.append(Row("", self.total))
        if self.value is not None:
            rows.append(Row("", words(number_text(self.value))))
        return where(table(rows), [Row(s, d) for s, d in self.definitions])

    def __repr__(self) -> str:
        return f"<ChainRule ∂{self.output.describe()}/∂{self.wrt.describe()}: {len(self.paths)} path(s)>"


def _symbols(graph: Graph, y: Node, path_nodes: set) -> dict:
    """Named nodes by name, other path nodes u_1, u_2, … (y is L when free)."""
    used = {n.name for n in graph.order if n.name}
    out: dict[Node, sympy.Symbol] = {}
    for n in graph.order:
        if n.name is not None and n.kind != "const":
            out[n] = sympy.Symbol(n.name, real=True)
    counter = 0
    for n in graph.order:
        if n in out or n not in path_nodes or n.kind == "const":
            continue
        if n is y and "L" not in used:
            name = "L"
        else:
            counter += 1
            while f"u_{counter}" in used:
                counter += 1
            name = f"u_{counter}"
        used.add(name)
        out[n] = sympy.Symbol(name, real=True)
    return out


def _local_partial(graph: Graph, node: Node, inp: Node) -> Node:
    """∂node/∂inp as a node: the op's VJP of the seed 1, summed over the argument positions."""
    positions = graph.nx.edges[inp, node]["args"]
    if node.op.vjp is None:
        raise NotDifferentiableError(f"chain_rule: op {node.op.name} is not differentiable with respect to "
                                     f"input {positions[0]} ({inp.describe()})")
    needs = tuple(i in positions for i in range(len(node.inputs)))
    cts = node.op.vjp(node, const(1.0), needs)
    parts = [cts[p] for p in positions if cts[p] is not None]
    if not parts:
        return const(0.0)
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def chain_rule(y: Node, x: Node, feeds: Mapping | None = None) -> ChainRule:
    """The chain rule for ∂y/∂x written out path by path.

    Parameters
    ----------
    y : a scalar node of a scalar graph (every node of shape ``()``).
    x : a node of ``y``'s graph (a param, var or intermediate).
    feeds : values for the vars; with them (or when the graph has no vars)
        every factor, product and the total also get a number.

    Returns
    -------
    A :class:`ChainRule`: ``.paths`` (each with ``.nodes``, ``.factors``,
    ``.product``, ``.value``), ``.total`` (the sum over paths, equal to
    ``formula(grad(y, x))``), ``.value``; it prints as
    ∂L/∂w = ∂L/∂a · ∂a/∂z · ∂z/∂w (``str``, ``.latex()``).

    Examples
    --------
    >>> import symgrad as sg
    >>> x, w = sg.var("x"), sg.param("w", 0.5)
    >>> a = sg.sigmoid(w * x).named("a")
    >>> cr = sg.chain_rule(a, w, {"x": 2.0})
    >>> len(cr.paths), cr.total
    (1, a*x*(1 - a))
    >>> round(cr.value, 6)
    0.393224
    """
    for what, n in (("y", y), ("x", x)):
        if not isinstance(n, Node):
            raise GraphError(f"chain_rule: {what} must be a Node, got {type(n).__name__}")
    graph = Graph(y)
    if x not in graph:
        raise GraphError(f"chain_rule: {x.describe()} is not in the graph of {y.describe()}")
    tensors = [n for n in graph.order if n.shape != ()]
    if tensors:
        raise ShapeError(f"chain_rule: needs a scalar graph, but {tensors[0].describe()} has shape "
                         f"{tensors[0].shape}; the local partials of tensors are Jacobians, so use "
                         f"sg.backprop_equations(loss) for the matrix form of backprop")
    raw_paths = [tuple(p) for p in nx.all_simple_paths(graph.nx, x, y)] if x is not y else [(x,)]
    raw_paths = [p for p in raw_paths if all(n.dtype != "int" for n in p)]
    raw_paths.sort(key=lambda p: tuple(n.id for n in p))
    on_path = {n for p in raw_paths for n in p} | {x, y}
    symbols = _symbols(graph, y, on_path)
    taken = {n.name for n in graph.order if n.name} | {str(s) for s in symbols.values()}
    builder = Builder(SCALAR, {n: s for n, s in symbols.items() if not n.is_leaf}, taken=taken)
    refold = refold_map({n: s for n, s in symbols.items() if not n.is_leaf})

    edges: dict[tuple, Node] = {}
    for p in raw_paths:
        for inp, out in zip(p[:-1], p[1:]):
            if (inp, out) not in edges:
                edges[(inp, out)] = _local_partial(graph, out, inp)
    have_numbers = feeds is not None or not graph.vars
    numbers = _values(y, list(edges.values()), feeds) if have_numbers else {}

    paths = []
    for p in raw_paths:
        factors = []
        for inp, out in reversed(list(zip(p[:-1], p[1:]))):
            node = edges[(inp, out)]
            expr = builder.value(node)
            expr = tidy(expr.xreplace(refold) if refold else expr, full=False)
            factors.append(Factor(out, inp, expr, numbers.get(node), node))
        product = tidy(sympy.Mul(*[f.expr for f in factors]), full=False)
        value = float(np.prod([f.value for f in factors])) if have_numbers else None
        paths.append(Path(p, tuple(factors), product, value))
    total = tidy(sympy.Add(*[p.product for p in paths]))
    value = float(sum(p.value for p in paths)) if have_numbers else None

    closed_builder = Builder(SCALAR, taken=taken)
    closed = {s: closed_builder.value(n) for n, s in symbols.items() if not n.is_leaf}
    used = set().union(*[f.expr.free_symbols for p in paths for f in p.factors], {symbols[y], symbols[x]},
                       {s for n, s in symbols.items() if n in on_path})
    definitions = [(n, symbols[n], tidy(builder.define(n), full=False)) for n in graph.order
                   if n in symbols and not n.is_leaf and symbols[n] in used]
    # values nested too deep to print in one piece are intermediates h₁, h₂, … of their own
    definitions += [(n, sym, tidy(d, full=False)) for n, (sym, d) in builder.cuts.items()]
    definitions = [(sym, d) for _, sym, d in sorted(definitions, key=lambda t: t[0].id)]
    return ChainRule(y, x, symbols, definitions, paths, total, value, closed)


def _values(y: Node, nodes: list, feeds: Mapping | None) -> dict:
    vals = evaluate(list(nodes) + [y], feeds or {})
    return {n: float(v) for n, v in zip(nodes, vals[:-1])}
