"""Graph nodes -> SymPy, in three forms.

* scalar graphs: a ``sympy.Expr`` from each op's ``sym`` rule applied to
  0-d object arrays;
* tensor graphs: matrix notation from each op's ``matrix`` rule (see
  :mod:`.notation`);
* ``expand``: an object array of one formula per entry, from the ``sym``
  rules applied to arrays of entry symbols (``W1[0,1]``).

Nothing is differentiated here: a gradient node already *is* the chain
rule, written in ops, and its formula is read off the same way as any
other node's.  Products and sums of scalar nodes are collected flat
before SymPy sees them (SymPy re-sorts a product on every
multiplication, which is quadratic on a deep chain); which ops are
products and sums is read from their SymPy meaning.

Formulas have budgets, so that no graph makes SymPy recurse past
Python's limit or compute for ever: a value nested deeper than
:data:`MAX_DEPTH` levels is written as a named intermediate (the node's
own name, else h₁, h₂, …) whose definition comes with the formula
(:func:`formula_with_definitions`; ``pretty``/``latex`` print them after
"where"); an exact power or product that would need more than
:data:`MAX_EXACT_DIGITS` digits is computed in floating point instead
(``1.0e+10000000000``, not a number SymPy would take hours to write); and
``sympy.simplify`` is skipped where it would expand a high power.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from ..errors import GraphError, ShapeError
from ..graph import Node
from ..ops.base import objarray
from . import notation
from .notation import const_number, const_value, leaf_symbol, op_function
from .simplify import (LIGHT_LIMIT, SIMPLIFY_DEPTH, SIMPLIFY_LIMIT, SIMPLIFY_POWER_LIMIT,  # noqa: F401  re-exported
                       _exact_digits, expand_opaque, finish, ops_count, refold_map, size, tidy)

SCALAR, MATRIX, EXPAND = "scalar", "matrix", "expand"
#: a scalar of scalar leaves and fixed constant arrays (data): a closed form with each Σ written out
DATA = "data"
#: deepest nesting of a formula; a deeper value becomes a named intermediate (SymPy's printers recurse ~5
#: Python frames per level and fail near 200 levels)
MAX_DEPTH = 40
#: largest exact number, in decimal digits, a formula holds; beyond it numbers are floats (Python's int to
#: text conversion stops at 4300 digits, and 10**(10**10) would not finish)
MAX_EXACT_DIGITS = 1000

_const_numbers = np.frompyfunc(const_number, 1, 1)


class _Lazy:
    """A product or sum of parts, flattened into one SymPy Mul/Add when needed; ``depth``: its nesting
    once flattened."""

    __slots__ = ("kind", "parts", "flat", "depth")

    def __init__(self, kind: str, parts: tuple, depth: int = 1):
        self.kind, self.parts, self.flat, self.depth = kind, parts, None, depth

    def flatten(self) -> list:
        if self.flat is None:
            out, stack = [], [self]
            while stack:
                for p in stack.pop().parts:
                    if isinstance(p, _Lazy) and p.kind == self.kind and p.flat is None:
                        stack.append(p)
                    elif isinstance(p, _Lazy) and p.kind == self.kind:
                        out.extend(p.flat)
                    else:
                        out.append(p)
            self.flat = out
        return self.flat


def entry_symbols(name: str, shape: tuple) -> np.ndarray:
    """Per-entry real symbols ``W1[0,1]`` (a plain symbol for a scalar)."""
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        label = name if not shape else f"{name}[{','.join(str(i) for i in idx)}]"
        out[idx] = sympy.Symbol(label, real=True)
    return out


class Builder:
    """Computes SymPy values of nodes; nodes in ``symbols`` stand for themselves.

    ``opaque``: scalar derivative ops (σ′, ∂bce/∂p, ...) stay unexpanded
    functions.  ``dims`` binds symbolic dims to sizes in expand mode.
    ``taken``: names a new intermediate symbol must not have (the leaves'
    and kept nodes' names; the builder adds those it meets).  A value
    nested deeper than :data:`MAX_DEPTH` becomes a symbol; ``cuts`` maps
    each such node to ``(symbol, definition)``, in the order they were made.
    """

    def __init__(self, mode: str, symbols: dict | None = None, opaque: bool = False, dims: dict | None = None,
                 taken: Any = ()):
        self.mode = mode
        self.symbols = dict(symbols or {})
        self.opaque = opaque
        self.dims = dict(dims or {})
        self.values: dict[Node, Any] = {}
        self.cuts: dict[Node, tuple] = {}
        self._memo: dict[int, tuple] = {}
        self._depths: dict[Any, int] = {}
        self._taken = set(taken) | {str(s) for s in self.symbols.values() if isinstance(s, sympy.Basic)}
        self._counter = 0

    # ------------------------------------------------------------ API
    def value(self, node: Node) -> Any:
        """The node's formula, or its symbol when it has one (a node cut for depth gives its definition)."""
        self._ensure([node])
        if node in self.cuts:
            return self.cuts[node][1]
        return self.materialize(self.values[node])

    def define(self, node: Node) -> Any:
        """The node's formula in terms of its inputs' values (never its own symbol)."""
        if node.is_leaf:
            return self._leaf(node) if node not in self.symbols else self.symbols[node]
        if node in self.cuts:
            return self.cuts[node][1]
        self._ensure(node.inputs)
        return self.materialize(self._apply(node, [self.values[i] for i in node.inputs]))

    def definitions(self) -> list[tuple]:
        """``[(symbol, definition)]`` of the intermediates made for depth, each after those it uses."""
        return list(self.cuts.values())

    # ------------------------------------------------------- internals
    def _ensure(self, roots) -> None:
        need, seen, stack = [], set(), list(roots)
        while stack:
            n = stack.pop()
            if n in self.values or n in seen:
                continue
            seen.add(n)
            need.append(n)
            if n not in self.symbols and not n.is_leaf:
                stack.extend(n.inputs)
        for n in sorted(need, key=lambda n: n.id):  # ids grow along every edge
            if n in self.symbols:
                self.values[n] = self.symbols[n]
            elif n.is_leaf:
                self.values[n] = self._leaf(n)
                if n.name is not None:
                    self._taken.add(n.name)
            else:
                v = self._apply(n, [self.values[i] for i in n.inputs])
                if self.mode != EXPAND and self.depth(v) > MAX_DEPTH:
                    v = self._cut(n, v)
                self.values[n] = v

    def _cut(self, node: Node, v: Any) -> Any:
        """Write ``node`` as a new symbol from here on; its definition is ``v``."""
        name = node.name if node.name is not None and node.name not in self._taken else None
        while name is None or name in self._taken:
            self._counter += 1
            name = f"h_{self._counter}"
        self._taken.add(name)
        sym = leaf_symbol(name, node.shape) if self.mode == MATRIX else sympy.Symbol(name, real=True)
        self.cuts[node] = (sym, self.materialize(v))
        return sym

    def depth(self, v: Any) -> int:
        """Nesting depth of a value (a lazy product or sum counts as flattened)."""
        if isinstance(v, _Lazy):
            return v.depth
        if not isinstance(v, sympy.Basic) or not v.args:
            return 0
        memo = self._depths
        if v in memo:
            return memo[v]
        stack = [(v, False)]
        while stack:  # no recursion: this is what guards against deep expressions
            e, ready = stack.pop()
            if ready:
                memo[e] = 1 + max((memo[a] if a.args else 0) for a in e.args)
            elif e not in memo:
                stack.append((e, True))
                stack.extend((a, False) for a in e.args if a.args and a not in memo)
        return memo[v]

    def _lazy(self, kind: str, *parts: Any) -> _Lazy:
        depth = 1 + max((self.depth(p) - (isinstance(p, _Lazy) and p.kind == kind)) for p in parts)
        return _Lazy(kind, parts, depth)

    def _shape(self, node: Node) -> tuple:
        out = []
        for d in node.shape:
            if isinstance(d, str):
                if d not in self.dims:
                    raise ShapeError(f"formula: expand needs a size for dim {d!r} of {node.describe()}; "
                                     f"pass expand={{{d!r}: 2}}, for example")
                d = int(self.dims[d])
            out.append(d)
        return tuple(out)

    def _leaf(self, node: Node) -> Any:
        if node.kind == "const" and node.name and self.mode in (SCALAR, MATRIX):
            return leaf_symbol(node.name, node.shape)  # a named constant (ε) prints by its name
        if node.kind == "const":
            if self.mode == SCALAR:
                return const_number(node.value)
            if self.mode == MATRIX:
                return const_value(node.value)
            return objarray(_const_numbers(node.value))
        if self.mode == EXPAND:
            return entry_symbols(node.name, self._shape(node))
        return leaf_symbol(node.name, node.shape)

    def _apply(self, node: Node, args: list) -> Any:
        op, attrs = node.op, dict(node.attrs)
        if self.mode == EXPAND:
            return objarray(op.sym(*args, **attrs))
        if self.mode == MATRIX:
            args = [self.materialize(a) for a in args]
            if node.shape == () and all(i.shape == () for i in node.inputs) and op.elementwise:
                return self._scalar_apply(node, args)
            rule = op.matrix
            return rule(node, args, notation) if rule is not None else notation.generic(node, args)
        return self._scalar_apply(node, args)

    def _scalar_apply(self, node: Node, args: list) -> Any:
        op = node.op
        kind = op.arith  # products and sums are collected flat
        if kind == "mul":
            return self._lazy("mul", args[0], args[1])
        if kind == "add":
            return self._lazy("add", args[0], args[1])
        if kind == "sub":
            return self._lazy("add", args[0], self._lazy("mul", sympy.S.NegativeOne, args[1]))
        if kind == "neg":
            return self._lazy("mul", sympy.S.NegativeOne, args[0])
        if kind == "div":
            return self._lazy("mul", args[0], sympy.Pow(self.materialize(args[1]), -1))
        args = [self.materialize(a) for a in args]
        if self.opaque and op.derivative_of is not None and op.scalar is not None and op.label.endswith("′"):
            return op_function(op, node.attrs)(*args)
        if _is_power(op) and _power_digits(args[0], args[1]) > MAX_EXACT_DIGITS:
            args[0] = _inexact(args[0])  # 10**(10**10) exactly would not finish; 1.0e+10000000000 does
        out = op.sym(*[objarray(a) for a in args], **dict(node.attrs))
        return np.asarray(out, dtype=object).reshape(())[()]

    def materialize(self, v: Any) -> Any:
        """Turn a lazy product/sum into SymPy (once; shared parts are shared)."""
        if not isinstance(v, _Lazy):
            return v
        memo = self._memo
        stack = [(v, False)]
        while stack:
            lz, ready = stack.pop()
            if id(lz) in memo:
                continue
            parts = lz.flatten()
            if not ready:
                stack.append((lz, True))
                stack.extend((p, False) for p in parts if isinstance(p, _Lazy) and id(p) not in memo)
            else:
                vals = [memo[id(p)][1] if isinstance(p, _Lazy) else p for p in parts]
                if lz.kind == "mul" and sum(_exact_digits(p) for p in vals) > MAX_EXACT_DIGITS:
                    vals = [_inexact(p) if _exact_digits(p) else p for p in vals]
                memo[id(lz)] = (lz, sympy.Mul(*vals) if lz.kind == "mul" else sympy.Add(*vals))
        return memo[id(v)][1]


# ------------------------------------------------------- exact numbers
_POWER: dict = {}


def _is_power(op) -> bool:
    """Whether an op's SymPy meaning is ``t0 ** t1`` (read from the meaning, once per op)."""
    if op not in _POWER:
        t = sympy.symbols("t0:2")
        try:
            _POWER[op] = op.nin == 2 and op.scalar is not None and sympy.sympify(op.scalar(*t)) == t[0] ** t[1]
        except Exception:  # noqa: BLE001  a meaning that needs more than symbols is not a power
            _POWER[op] = False
    return _POWER[op]


def _power_digits(base: Any, exponent: Any) -> float:
    """Digits of the exact numbers SymPy makes for ``base ** exponent`` (it distributes over products)."""
    if not isinstance(exponent, sympy.Rational) or isinstance(base, sympy.Add):
        return 0.0
    return _exact_digits(base) * max(1.0, float(abs(exponent)))


def _inexact(e: Any) -> Any:
    """``e`` with its exact rational numbers (other than ±1) as floats."""
    if isinstance(e, sympy.Rational):
        return e if abs(e) == 1 else sympy.Float(e)
    return e.xreplace({r: sympy.Float(r) for r in e.atoms(sympy.Rational) if abs(r) != 1})


# ----------------------------------------------------------- keep sets
def reachable(node: Node, stop=lambda n: False) -> list[Node]:
    """Nodes ``node`` depends on, not looking behind nodes where ``stop`` is true."""
    seen, stack, out = {node}, [node], []
    while stack:
        n = stack.pop()
        out.append(n)
        if n is not node and stop(n):
            continue
        for i in n.inputs:
            if i not in seen:
                seen.add(i)
                stack.append(i)
    return out


def keep_symbols(node: Node, keep: Any) -> tuple[dict, list[Node]]:
    """Resolve ``keep`` (None, "named", nodes or names) to {node: symbol}; also return the nodes reached."""
    if keep is None:
        nodes = reachable(node)
        _check_names(n for n in nodes if n.is_leaf)
        return {}, nodes
    if isinstance(keep, str) and keep == "named":
        kept_pred = lambda n: n.name is not None and not n.is_leaf  # noqa: E731
        nodes = reachable(node, kept_pred)
        kept = [n for n in nodes if n is not node and kept_pred(n)]
    else:
        if isinstance(keep, (Node, str)):
            keep = [keep]
        try:
            wanted = list(keep)
        except TypeError:
            raise GraphError(f"formula: keep must be None, 'named' or a list of nodes, got {keep!r}") from None
        by_name = {}
        for n in reachable(node):
            if n.name is not None and not n.is_leaf:
                by_name.setdefault(n.name, n)
        chosen = set()
        for k in wanted:
            if isinstance(k, str):
                if k not in by_name:
                    raise GraphError(f"formula: keep: no intermediate node named {k!r} in the graph of "
                                     f"{node.describe()}")
                k = by_name[k]
            if not isinstance(k, Node):
                raise GraphError(f"formula: keep entries must be nodes or names, got {k!r}")
            if k.is_leaf:
                continue
            if k.name is None:
                raise GraphError(f"formula: keep: {k!r} has no name; name it with node.named('z1')")
            chosen.add(k)
        nodes = reachable(node, lambda n: n in chosen)
        kept = [n for n in nodes if n is not node and n in chosen]
    _check_names([n for n in nodes if n.is_leaf] + kept)
    return {n: None for n in kept}, nodes


def _check_names(nodes) -> None:
    by_name: dict[str, Node] = {}
    for n in nodes:
        if n.name is None or n.kind == "const":
            continue
        other = by_name.setdefault(n.name, n)
        if other is not n:
            raise GraphError(f"formula: two different nodes are both named {n.name!r} ({other!r} and {n!r}); "
                             f"names must be unique to print formulas in them")


def mode_for(node: Node, nodes: list[Node], expand: Any, keep: Any = None) -> str:
    if expand is not False and expand is not None:
        return EXPAND
    if all(n.shape == () for n in nodes):
        return SCALAR
    if keep is None and node.shape == () and all(
            n.kind == "const" and all(isinstance(d, int) for d in n.shape) for n in nodes if n.is_leaf and n.shape):
        return DATA
    return MATRIX


# ---------------------------------------------------------------- formula
NOTATIONS = ("auto", "matrix", "index")


def formula(node: Node, keep: Any = None, expand: bool | dict = False, notation: str = "auto") -> Any:
    """The formula of ``node`` as a SymPy object.

    Parameters
    ----------
    node : any node: a forward value, a loss, or a gradient from
        :func:`symgrad.grad`.
    keep : None for the closed form in the leaves (vars, params, consts);
        ``"named"`` to write it in every named intermediate node
        (``node.named("z1")``, ``name=...``); or a list of such nodes or
        their names.
    expand : ``True`` (or a dict binding symbolic dims, ``{"batch": 2}``)
        for one scalar formula per entry of a tensor node.
    notation : ``"matrix"``, ``"index"``, or ``"auto"``: matrix notation where
        it exists (every node of rank ≤ 2), index notation otherwise.

    Returns
    -------
    ``sympy.Expr`` for scalar graphs (simplified when small); a SymPy
    matrix expression (``X W₁ + 𝟙 b₁ᵀ``, ``Wᵀ δ ⊙ σ′(Z)``) for tensor
    graphs; in index notation a :class:`~symgrad.formulas.index.IndexFormula`
    (``Z[i,j,k] = Σ …``, printable, with ``.rhs`` the SymPy expression and
    ``.numeric(values)``); a ``sympy.Matrix`` of entry formulas with ``expand``
    (``sympy.Array`` beyond two dims; the formula itself for a scalar node).
    Leaves are real symbols named by the node name; float constants become
    exact rationals (0.1 -> 1/10).

    Examples
    --------
    >>> import symgrad as sg
    >>> x, w, b = sg.var("x"), sg.param("w", 0.5), sg.param("b", 0.1)
    >>> sg.formula(sg.sigmoid(w * x + b))
    sigmoid(b + w*x)
    >>> sg.formula(sg.grad(sg.sigmoid(w * x + b), w))
    x*(1 - sigmoid(b + w*x))*sigmoid(b + w*x)
    """
    expr, _ = formula_with_definitions(node, keep, expand, notation)
    return expr


def formula_with_definitions(node: Node, keep: Any = None, expand: bool | dict = False,
                             notation: str = "auto") -> tuple[Any, list]:
    """:func:`formula` and the definitions of the intermediates it is written in.

    A graph nested deeper than :data:`MAX_DEPTH` levels (a chain of
    thousands of ops) cannot be one SymPy expression that prints: its
    formula is then written in intermediates ``h₁, h₂, …`` (or the names of
    the nodes where the nesting reached the limit).

    Returns
    -------
    ``(formula, [(symbol, definition), ...])``, each definition after the
    ones it uses; the list is empty for all but very deep graphs.

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> h = x
    >>> for _ in range(300):
    ...     h = sg.sin(h)
    >>> expr, defs = sg.formulas.build.formula_with_definitions(h)
    >>> len(defs), defs[0][0], expr.free_symbols == {defs[-1][0]}
    (7, h_1, True)
    """
    if not isinstance(node, Node):
        raise GraphError(f"formula: expected a Node, got {type(node).__name__} ({node!r})")
    _check_options(expand, notation)
    marks, nodes = keep_symbols(node, keep)
    if expand is False and any(n.op is not None and n.op.outputs is not None for n in nodes):
        from .loops import loop_formula  # a loop: its body once, with a time index
        return loop_formula(node), []
    if expand is False and (notation == "index" or (notation == "auto" and any(n.ndim > 2 for n in nodes))):
        from .index import index_formula
        return index_formula(node, {n: n.name for n in marks}), []
    mode = mode_for(node, nodes, expand, keep)
    dims = expand if isinstance(expand, dict) else {}
    if mode == EXPAND:
        symbols = {}
        b = Builder(EXPAND, dims=dims)
        for n in marks:
            symbols[n] = entry_symbols(n.name, b._shape(n))
        b.symbols = symbols
        out = b.define(node)
        entries = np.asarray(out, dtype=object)
        entries = np.vectorize(lambda e: tidy(e, full=False), otypes=[object])(entries) if entries.size else entries
        if entries.ndim == 0:  # a scalar node: its one formula
            return entries[()], []
        if entries.ndim <= 2:
            return sympy.Matrix(entries.reshape(notation_shape(entries.shape)).tolist()), []
        return sympy.Array(entries.tolist()), []
    if mode == DATA:
        return tidy(np.asarray(Builder(EXPAND).define(node), dtype=object)[()]), []
    symbols = {n: leaf_symbol(n.name, n.shape) for n in marks}
    b = Builder(mode, symbols, opaque=keep is not None, taken={n.name for n in nodes if n.is_leaf and n.name})
    expr = b.define(node)
    if mode == MATRIX:
        return expr, b.definitions()
    defs = [(s, tidy(d, full=False)) for s, d in b.definitions()]
    return finish(expr, symbols if keep is not None else None), defs


def _check_options(expand: Any, notation: Any) -> None:
    if notation not in NOTATIONS:
        raise GraphError(f"formula: notation must be one of {NOTATIONS}, got {notation!r}")
    if isinstance(expand, dict):
        for k, v in expand.items():
            if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise GraphError(f"formula: expand binds named dims to positive sizes, got {k!r}: {v!r}")
    elif not isinstance(expand, bool):
        raise GraphError(f"formula: expand must be True, False or a dict of dim sizes, got {expand!r}")


def notation_shape(shape: tuple) -> tuple:
    """NumPy shape -> the 2-D shape of its matrix form (columns for vectors, 1×1 for scalars)."""
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (shape[0], 1)
    return shape
