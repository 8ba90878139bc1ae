"""Backpropagation as a system of equations, read off the backward graph.

:func:`symgrad.adjoints` maps each forward node to its cotangent node.
Each named intermediate ``z1`` gets an adjoint symbol ``δ_z1`` standing
for its cotangent node, every parameter ``W`` an equation for ``∂L/∂W``;
each right-hand side is the formula of that cotangent node with the
cotangents of later named nodes kept as their δ symbols, so the system
reads as the textbook recursion (δ_Z1 = δ_A1 ⊙ σ′(Z1), ∂L/∂W1 = Xᵀ δ_Z1).
Unnamed intermediates are folded into the equations of named ones: name
the nodes you want to see with ``node.named("z1")``.  A graph with no named
intermediate at all gets the textbook names: each activation (σ, tanh,
ReLU, softmax, any non-arithmetic one-input op) is a₁, a₂, … and its
input z₁, z₂, … (A, Z for matrices).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import sympy

from ..autodiff import adjoints
from ..errors import GradError, GraphError
from ..evaluate import complete_feeds, evaluate
from ..graph import Graph, Node, as_node_list
from .build import MATRIX, SCALAR, Builder, finish, refold_map
from .notation import leaf_symbol
from .numeric import numeric
from .printing import DELTA, Printable, join_pretty, partial_latex, partial_text, symbol_text, to_latex


@dataclasses.dataclass(frozen=True, eq=False)
class Equation:
    """``lhs = rhs``.  kind: "forward" (a named value), "delta" (an adjoint) or "grad" (∂L/∂param)."""

    kind: str
    node: Node  # the forward node it is about
    lhs: Any  # the symbol defined (for "grad": the param's symbol)
    rhs: Any
    adjoint: Node | None  # the backward node (None for forward equations)


class BackpropEquations(Printable):
    """The result of :func:`backprop_equations`.

    Attributes
    ----------
    loss : the loss node; ``loss_symbol`` its symbol (its name, or L).
    forward : the :class:`Equation` list defining the named intermediates.
    equations : the backward system in order: each δ after the δs it
        uses, each parameter gradient right after the δs it needs.
    """

    def __init__(self, loss: Node, loss_symbol: Any, forward: list, equations: list,
                 names: dict | None = None):
        self.loss, self.loss_symbol = loss, loss_symbol
        self.forward, self.equations = forward, equations
        self.names = names or {}  # {node: name} for every named intermediate (given or automatic)

    def __len__(self) -> int:
        return len(self.equations)

    def __iter__(self):
        return iter(self.equations)

    def lhs_text(self, eq: Equation) -> str:
        if eq.kind == "grad":
            return partial_text(self.loss_symbol, eq.lhs)
        return symbol_text(eq.lhs)

    def lhs_latex(self, eq: Equation) -> str:
        if eq.kind == "grad":
            return partial_latex(self.loss_symbol, eq.lhs)
        return to_latex(eq.lhs)

    def labels(self) -> list[str]:
        return [_label(self.loss_symbol, eq) for eq in self.equations]

    def _line(self, e: Equation) -> str:
        if isinstance(e.rhs, Printable):  # index notation: the formula writes its own left-hand side
            return "\n".join("  " + ln for ln in e.rhs.pretty().splitlines())
        return join_pretty(["  ", self.lhs_text(e), " = ", e.rhs])

    def _randoms(self) -> list[Node]:
        return Graph(self.loss).randoms

    def pretty(self) -> str:
        from ..random import describe_distribution
        lines = ["forward:"] + [f"  {describe_distribution(r)}" for r in self._randoms()]
        lines += [self._line(e) for e in self.forward]
        lines += ["backward:"] + [self._line(e) for e in self.equations]
        return "\n".join(lines)

    def latex(self) -> str:
        """The forward definitions and the backward equations as one LaTeX ``aligned`` block."""
        def row(e):
            if isinstance(e.rhs, Printable):
                return e.rhs.latex().replace(" = ", " &= ", 1)
            return r"%s &= %s" % (self.lhs_latex(e), to_latex(e.rhs))
        from ..random import distribution_latex
        rows = [r"%s &\sim %s" % (to_latex(sympy.Symbol(r.name)), distribution_latex(r)) for r in self._randoms()]
        rows += [row(e) for e in self.forward]
        back = [row(e) for e in self.equations]
        sep = r" \\[6pt] " if rows and back else ""
        return r"\begin{aligned}" + r" \\ ".join(rows) + sep + r" \\ ".join(back) + r"\end{aligned}"

    def mathml(self) -> str:
        """The rows of :meth:`latex` as a MathML table, one row per equation aligned on ``=``."""
        from ..random import describe_distribution
        from .mathml import Row, index_row, partial, table, words

        def row(e):
            if isinstance(e.rhs, Printable):  # index notation: the formula writes its own left-hand side
                return index_row(e.rhs)
            return Row(partial(self.loss_symbol, e.lhs) if e.kind == "grad" else e.lhs, e.rhs)
        rows = [Row(sympy.Symbol(r.name), words(describe_distribution(r).split(" ~ ", 1)[1]), "∼")
                for r in self._randoms()]
        rows += [row(e) for e in self.forward]
        back = [row(e) for e in self.equations]
        return table(rows + back, gap_before=[len(rows)] if rows and back else [])

    def evaluate(self, feeds: Mapping | None = None, *, seed: Any = None) -> dict[str, Any]:
        """Numbers for every equation, computed from the printed right-hand sides.

        Forward values of the named nodes come from :func:`symgrad.evaluate`;
        each backward equation is then computed in order from its SymPy
        right-hand side with the values found so far.  Returns
        ``{label: array}`` with labels such as ``"δ_Z1"`` and ``"∂L/∂W1"``.
        Random nodes that ``feeds`` does not fix are drawn once (``seed``)
        and used by both.
        """
        graph = Graph(self.loss)
        fed = complete_feeds(graph, feeds, seed, "backprop_equations.evaluate")
        feeds = fed
        env: dict[str, Any] = {}
        for leaf in graph.leaves:
            if leaf.kind == "const" and leaf.name:  # a named constant prints by its name
                env[leaf.name] = leaf.value
            if leaf.kind in ("var", "param", "buffer", "random"):
                env[leaf.name] = fed[leaf] if leaf in fed else leaf.value
                for d, size in zip(leaf.shape, np.shape(env[leaf.name])):
                    if isinstance(d, str):
                        env[d] = size
        named = [e.node for e in self.forward]
        shapes = {}
        for node, val in zip(named, evaluate(named + [self.loss], feeds)[:-1] if named else []):
            env[str(self.loss_symbol if node is self.loss else self.names.get(node, node.name))] = val
            shapes[node] = np.shape(val)
        out = {}
        for eq in self.equations:
            if isinstance(eq.rhs, Printable):  # index notation
                val = eq.rhs.numeric(env)
                out[_label(self.loss_symbol, eq)] = val
                if eq.kind == "delta":
                    env[str(eq.lhs)] = val
                continue
            val = numeric(eq.rhs, env)
            shape = eq.node.shape if eq.kind == "grad" else shapes.get(eq.node, np.shape(val))
            val = np.asarray(val, dtype=np.float64).reshape(_concrete(shape, env))
            label = _label(self.loss_symbol, eq)
            out[label] = val
            if eq.kind == "delta":
                env[str(eq.lhs)] = val
        return out

    def __repr__(self) -> str:
        return f"<BackpropEquations: {len(self.forward)} forward, {len(self.equations)} backward>"


def _target_symbol(t: Node) -> sympy.Symbol:
    return sympy.Symbol(t.name if t.name else f"u_{t.id}", real=True)


def _concrete(shape: tuple, env: dict) -> tuple:
    return tuple(int(env[d]) if isinstance(d, str) else int(d) for d in shape)


def _label(loss_symbol: Any, eq: Equation) -> str:
    if eq.kind == "grad":
        return f"∂{loss_symbol}/∂{eq.lhs}"
    return str(eq.lhs)


def _is_activation(n: Node) -> bool:
    return n.op.activation


def _index_equations(loss: Node, loss_symbol: Any, graph: Graph, adj: dict, targets: list,
                     name_of: dict) -> BackpropEquations:
    """The same system in index notation: every equation an :class:`~.index.IndexFormula`
    (``δ_Z[n,o,i,j] = …``, ``∂L/∂W[o,c,p,q] = Σ_{n,i,j} δ_Z[n,o,i,j]·X[…]``)."""
    from .index import index_formula
    names: dict[Node, str] = {n: name_of[n] for n in graph.order if n in name_of}
    names[loss] = str(loss_symbol)
    backward = list(reversed(graph.order))
    deltas: dict[Node, str] = {}
    for n in backward:
        if n in names and n is not loss and n in adj and adj[n] not in deltas:
            deltas[adj[n]] = DELTA + names[n]
    kept = {**names, **deltas}

    def formula(node: Node, own: str, label: str):
        return index_formula(node, {k: v for k, v in kept.items() if v != own}, name=label)

    forward = [Equation("forward", n, sympy.Symbol(names[n]), formula(n, names[n], names[n]), None)
               for n in graph.order if n in names and n is not loss]
    position = {n: i for i, n in enumerate(backward)}
    due: dict[int, list[Node]] = {}
    for t in targets:
        if t in adj:
            users = [position[c] for c in graph.nx.successors(t) if c in adj]
            due.setdefault(max(users, default=-1), []).append(t)

    def grad_eq(t: Node) -> Equation:
        sym = _target_symbol(t)
        return Equation("grad", t, sym, formula(adj[t], "", f"∂{loss_symbol}/∂{sym}"), adj[t])

    equations = [grad_eq(t) for t in due.get(-1, [])]
    for i, n in enumerate(backward):
        if n in names and n is not loss and n in adj:
            own = DELTA + names[n]
            equations.append(Equation("delta", n, sympy.Symbol(own), formula(adj[n], own, own), adj[n]))
        equations += [grad_eq(t) for t in due.get(i, [])]
    return BackpropEquations(loss, loss_symbol, forward, equations, name_of)


def textbook_names(graph: Graph, loss: Node) -> dict[Node, str]:
    """Names for the activations of an all-unnamed graph (a1, a2, …) and their inputs (z1, z2, …);
    capitals for matrices; numbers taken by existing leaf names are skipped."""
    taken = {n.name for n in graph.order if n.name}
    out: dict[Node, str] = {}
    k = 0
    for n in graph.order:
        if n.is_leaf or n is loss or n in out or not _is_activation(n):
            continue
        z = n.inputs[0]
        name_z = not z.is_leaf and z not in out and z.name is None
        while True:
            k += 1
            a_name = ("A" if n.ndim >= 2 else "a") + str(k)
            z_name = ("Z" if z.ndim >= 2 else "z") + str(k)
            if a_name not in taken and (not name_z or z_name not in taken):
                break
        out[n] = a_name
        if name_z:
            out[z] = z_name
    return out


def backprop_equations(loss: Node, wrt: Node | Sequence[Node] | None = None, *,
                       auto_names: bool = True, notation: str = "auto") -> BackpropEquations:
    """The backward pass of ``loss`` as an ordered system of equations.

    Parameters
    ----------
    loss : a scalar node.
    wrt : the nodes to differentiate with respect to (default: every param).
    auto_names : when no intermediate node is named, name the activations
        and their inputs a₁, z₁, … (A₁, Z₁ for matrices) so each gets its δ;
        ``False`` writes each gradient in the leaves only.
    notation : ``"auto"`` (matrix notation where every node has rank ≤ 2,
        index notation otherwise: a CNN, attention over (batch, heads, seq, d)),
        ``"matrix"`` or ``"index"``.

    Returns
    -------
    :class:`BackpropEquations`: ``.forward`` (the named intermediates),
    ``.equations`` (one δ per named intermediate on a path to the loss and
    one gradient per ``wrt`` node), printable as unicode (``str``) and as a
    LaTeX ``aligned`` block (``.latex()``); ``.evaluate(feeds)`` computes
    every equation numerically.

    Examples
    --------
    >>> import symgrad as sg
    >>> x, y, w = sg.var("x"), sg.var("y"), sg.param("w", 0.5)
    >>> a = sg.sigmoid(w * x).named("a")
    >>> eqs = sg.backprop_equations(sg.losses.mse(a, y))
    >>> [str(e.lhs) for e in eqs.equations]
    ['δ_a', 'w']
    >>> eqs.equations[1].rhs
    x*δ_a*sigmoid_prime(w*x)
    """
    if not isinstance(loss, Node):
        raise GraphError(f"backprop_equations: loss must be a Node, got {type(loss).__name__}")
    graph = Graph(loss)
    targets = graph.params if wrt is None else as_node_list(wrt, "backprop_equations")
    if not targets:
        raise GradError(f"backprop_equations: {loss.describe()} has no params; pass wrt=[...]")
    if any(n.op is not None and n.op.outputs is not None for n in graph.order):  # loops: through time
        from .bptt import loop_backprop
        return loop_backprop(loss, targets, loss.name or "L")
    adj = adjoints(loss, targets)
    name_of = {n: n.name for n in graph.order if n.name is not None and not n.is_leaf and n is not loss}
    if auto_names and not name_of:
        name_of = textbook_names(graph, loss)
    names = {n.name for n in graph.order if n.name} | set(name_of.values())
    loss_name = loss.name or ("L" if "L" not in names else "loss")
    named = [n for n in graph.order if n in name_of]
    by_name: dict[str, Node] = {}
    for n in named + [n for n in graph.order if n.kind in ("var", "param", "buffer", "random")]:
        other = by_name.setdefault(name_of.get(n, n.name), n)
        if other is not n:
            raise GraphError(f"backprop_equations: two different nodes are both named {n.name!r}")
    if loss.name is None and loss_name in by_name:
        raise GraphError(f"backprop_equations: name the loss (loss.named(...)); {loss_name!r} is taken")
    if notation not in ("auto", "matrix", "index"):
        raise GraphError(f"backprop_equations: notation must be 'auto', 'matrix' or 'index', got {notation!r}")
    loss_symbol = leaf_symbol(loss_name, ())
    if notation == "index" or (notation == "auto" and any(
            n.ndim > 2 for n in graph.order + Graph(list(adj.values())).order)):
        return _index_equations(loss, loss_symbol, graph, adj, targets, name_of)
    symbols: dict[Node, Any] = {n: leaf_symbol(name_of[n], n.shape) for n in named}
    symbols[loss] = loss_symbol

    backward = list(reversed(graph.order))
    deltas: dict[Node, Any] = {}
    # an adjoint that is a forward node (3 in L = 3a, a in L = a²/2) or a constant (the seed 1 that
    # L = a + b passes to both terms) is no δ: it prints as itself
    forward_nodes = set(graph.order)
    for n in backward:
        if n in symbols and n is not loss and n in adj and adj[n] not in deltas and adj[n] not in forward_nodes \
                and not adj[n].is_leaf:
            deltas[adj[n]] = leaf_symbol(DELTA + name_of[n], n.shape)
    back_nodes = Graph(list(adj.values())).order
    mode = SCALAR if all(n.shape == () for n in graph.order + back_nodes) else MATRIX
    builder = Builder(mode, {**symbols, **deltas}, opaque=True, taken=names | {loss_name})
    kept = {**symbols, **deltas}
    refold = refold_map(kept) if mode == SCALAR else {}

    def rhs(node: Node, own: Any) -> Any:
        if node in kept and kept[node] != own:
            return kept[node]
        expr = builder.define(node) if not node.is_leaf else builder.value(node)
        return finish(expr, kept, own, refold) if mode == SCALAR else expr

    forward = [Equation("forward", n, symbols[n], rhs(n, symbols[n]), None)
               for n in graph.order if n in symbols]
    # each gradient right after the last of its consumers' δs
    position = {n: i for i, n in enumerate(backward)}
    due: dict[int, list[Node]] = {}
    for t in targets:
        if t not in adj:
            continue
        users = [position[c] for c in graph.nx.successors(t) if c in adj]
        due.setdefault(max(users, default=-1), []).append(t)
    equations = [Equation("grad", t, _target_symbol(t), rhs(adj[t], None), adj[t]) for t in due.get(-1, [])]
    for i, n in enumerate(backward):
        if n in symbols and n is not loss and n in adj:
            own = leaf_symbol(DELTA + name_of[n], n.shape)
            equations.append(Equation("delta", n, own, rhs(adj[n], own), adj[n]))
        for t in due.get(i, []):
            equations.append(Equation("grad", t, _target_symbol(t), rhs(adj[t], None), adj[t]))
    if builder.cuts:  # values nested too deep to print in one piece, written as intermediates h₁, h₂, …
        kept.update((n, sym) for n, (sym, _) in builder.cuts.items())
        cuts = [Equation("forward", n, sym, finish(d, kept, sym, refold) if mode == SCALAR else d, None)
                for n, (sym, d) in builder.cuts.items()]
        forward = sorted(forward + cuts, key=lambda e: e.node.id)  # ids grow along every edge
        name_of = {**name_of, **{n: str(sym) for n, (sym, _) in builder.cuts.items()}}
    return BackpropEquations(loss, loss_symbol, forward, equations, name_of)
