"""Simplifying formulas within a budget: :func:`tidy` (``sympy.simplify`` or the cheap
``factor_terms``, skipped where it would take seconds or expand a high power), :func:`finish` (the
shorter of a formula with unexpanded derivative functions and the same expanded and refolded into
kept symbols), and the helpers they share with :mod:`.chain` and :mod:`.backprop`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from ..ops.base import objarray
from . import notation
from .notation import OpFunction, const_number

#: expressions of at most this many tree nodes get sympy.simplify (its cost grows fast: ~1 s at 100)
SIMPLIFY_LIMIT = 40
#: expressions of at most this many nodes get the cheap factor_terms; larger ones are left as built
LIGHT_LIMIT = 400
#: expressions nested deeper than this are not simplified (simplify recurses into function arguments:
#: its time doubles with each level, 1 s at sin¹⁴(x))
SIMPLIFY_DEPTH = 10
#: a power with an exponent beyond this is never simplified (simplify expands (x + 1)**n: minutes at n = 100)
SIMPLIFY_POWER_LIMIT = 12


def _exact_digits(e: Any) -> float:
    """Decimal digits of the exact rational numbers in a product's factor (0 for anything else)."""
    if isinstance(e, sympy.Rational):
        return (abs(e.p).bit_length() + e.q.bit_length()) * 0.30103
    if isinstance(e, sympy.Pow):
        return _exact_digits(e.base) * float(abs(e.exp)) if isinstance(e.exp, sympy.Rational) else 0.0
    if isinstance(e, sympy.Mul):
        return sum(_exact_digits(a) for a in e.args)
    return 0.0


def size(expr: Any, limit: int) -> int:
    """Number of tree nodes of ``expr``, counting stops after ``limit``."""
    n = 0
    for _ in sympy.preorder_traversal(expr):
        n += 1
        if n > limit:
            break
    return n


def tidy(expr: Any, full: bool = True) -> Any:
    """Simplify a scalar formula within a budget.

    ``full``: sympy.simplify up to :data:`SIMPLIFY_LIMIT` nodes (kept only
    when it is shorter); otherwise, and for larger expressions up to
    :data:`LIGHT_LIMIT`, the cheap ``factor_terms``; larger formulas are
    left as built (SymPy's automatic canonical form already cancels
    ``a⁻¹·a``).
    """
    if not isinstance(expr, sympy.Expr) or isinstance(expr, sympy.MatrixExpr):
        return expr
    n = size(expr, LIGHT_LIMIT)
    if n > LIGHT_LIMIT or any(isinstance(a, notation.OpScalar) for a in sympy.preorder_traversal(expr)):
        return expr
    light = sympy.factor_terms(expr)
    if ops_count(light) >= ops_count(expr):
        light = expr
    if full and n <= SIMPLIFY_LIMIT and not _high_power(expr) and _depth(expr) <= SIMPLIFY_DEPTH \
            and not expr.has(sympy.Piecewise):  # SymPy's case logic takes seconds on max(a, b)'s gradient
        simple = sympy.simplify(expr)
        if ops_count(simple) < ops_count(light):
            return simple
    return light


def _depth(expr: Any) -> int:
    """Nesting depth of a SymPy expression (without recursion)."""
    depth, stack = 0, [(expr, 0)]
    while stack:
        e, d = stack.pop()
        depth = max(depth, d)
        stack.extend((a, d + 1) for a in e.args)
    return depth


def _high_power(expr: Any) -> bool:
    """Whether ``expr`` has a power beyond :data:`SIMPLIFY_POWER_LIMIT` (or a float or huge exact number)."""
    for p in expr.atoms(sympy.Pow):
        e = p.exp
        if e.is_Number and (not e.is_Rational or abs(e.p) > SIMPLIFY_POWER_LIMIT or e.q > SIMPLIFY_POWER_LIMIT):
            return True
    return any(_exact_digits(r) > 50 for r in expr.atoms(sympy.Rational))


def expand_opaque(expr: Any, refold: dict) -> Any:
    """Replace unexpanded derivative functions by their meaning, then kept meanings by their names."""
    out = expr.replace(lambda e: isinstance(e, OpFunction), lambda e: e.meaning()) if expr.has(OpFunction) \
        else expr
    return out.xreplace(refold) if refold else out


class _Refold(dict):
    """{meaning: symbol}, with the meaning of each symbol at hand (``without``)."""

    def without(self, symbol: Any) -> Any:
        """This map less the entry that gives ``symbol`` (a view: no copy of a map of thousands)."""
        if not hasattr(self, "_inverse"):
            self._inverse = {v: k for k, v in self.items()}
        key = self._inverse.get(symbol)
        return self if key is None else _Without(self, key)


class _Without:
    """A read-only view of a dict without one key, as ``xreplace`` reads a rule."""

    def __init__(self, rule: dict, key: Any):
        self.rule, self.key = rule, key

    def __contains__(self, k: Any) -> bool:
        return k in self.rule and k != self.key

    def __getitem__(self, k: Any) -> Any:
        if k == self.key:
            raise KeyError(k)
        return self.rule[k]

    def __bool__(self) -> bool:
        return len(self.rule) > 1


def refold_map(symbols: dict) -> dict:
    """{meaning of a kept node in its inputs' symbols: its symbol}, for kept nodes of leaves/kept inputs.

    After ``a = σ(z)`` is kept, a later ``σ(z)(1 − σ(z))`` reads ``a(1 − a)``.
    """
    out = _Refold()
    for node, sym in symbols.items():
        if node.is_leaf or not node.op.elementwise or node.op.arith is not None:
            continue
        if not all(i.is_leaf or i in symbols for i in node.inputs):
            continue
        if any(i.shape != () for i in node.inputs) or node.shape != ():
            continue
        args = [symbols[i] if i in symbols else
                (const_number(i.value) if i.kind == "const" else sympy.Symbol(i.name, real=True))
                for i in node.inputs]
        meaning = np.asarray(node.op.sym(*[objarray(a) for a in args], **dict(node.attrs)), dtype=object)[()]
        if not isinstance(meaning, sympy.Symbol) and not meaning.is_number:
            out[meaning] = sym
    return out


def ops_count(expr: Any) -> int:
    return int(sympy.count_ops(expr, visual=False))


def finish(expr: Any, symbols: dict | None, own: Any = None, refold: dict | None = None) -> Any:
    """Tidy a scalar formula: closed forms with :func:`tidy`; with kept symbols, the shorter of the
    unexpanded (``σ′(z)``) and the expanded-and-refolded (``a(1 − a)``) forms, tidied lightly.
    ``own`` is the symbol being defined, never refolded into its own definition; ``refold`` is
    :func:`refold_map` of ``symbols`` when the caller already has it."""
    if symbols is None:
        return tidy(expr)
    if size(expr, LIGHT_LIMIT) > LIGHT_LIMIT:
        return expr
    short = tidy(expr, full=False)
    refold = refold_map(symbols) if refold is None else refold
    rule = refold.without(own) if isinstance(refold, _Refold) else {k: v for k, v in refold.items() if v != own}
    expanded = expand_opaque(expr, rule)
    if expanded == expr:
        return short
    long = tidy(expanded, full=False)
    return long if ops_count(long) < ops_count(short) else short
