"""How big a gradient's formula is, written four ways: expression swell made visible.

Symbolic differentiation's known failure is expression swell: the closed
form of a gradient (every intermediate written out in the leaves) repeats
the forward pass inside every factor of the chain rule, and grows
quadratically or worse with depth, while the backward graph that
:func:`symgrad.grad` builds shares each value and grows linearly.
:func:`formula_stats` measures the same gradient as

* ``closed_form``: the closed form symgrad prints (:func:`symgrad.formula`,
  deep graphs' ``h₁, h₂…`` intermediates substituted back);
* ``cse``: that closed form after SymPy's common-subexpression elimination
  (``sympy.cse``: the replacements plus the reduced expression);
* ``named``: symgrad's named-intermediate form: every value used more than
  once, and every node with a name, written once as a symbol (the textbook
  z, a, δ recursion), derivative functions such as σ′ left unexpanded;
* ``graph_ops``: the op nodes of the gradient's graph (the forward ops it
  uses and the backward ops);
* ``sympy_diff`` (with ``wrt=``): ``sympy.diff`` of the forward closed form,
  SymPy's own derivative, for comparison.

The first four are operation counts (``sympy.count_ops``), the last graph
nodes.  Each measurement runs under a time budget (``budget`` seconds,
through ``SIGALRM`` in the main thread) and a size budget (an expression
tree larger than :data:`TREE_LIMIT` nodes is not handed to SymPy): one that
would not finish is reported as over budget, never waited for.  The
builder's own budgets apply as well (:mod:`symgrad.formulas.build`:
nesting, exact numbers; :mod:`symgrad.formulas.simplify`: what is simplified).
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from typing import Any

import sympy

from .errors import GraphError
from .graph import Graph, Node

#: expression trees larger than this (nodes, shared subtrees counted each time) are not given to SymPy
TREE_LIMIT = 2_000_000
#: seconds each measurement may take by default
DEFAULT_BUDGET = 5.0
ROWS = (("closed_form", "closed form (leaves only)", "ops"),
        ("cse", "closed form after sympy.cse", "ops"),
        ("named", "named intermediates", "ops"),
        ("graph_ops", "backward graph", "op nodes"),
        ("sympy_diff", "sympy.diff of the forward closed form", "ops"))


class OverBudget(BaseException):
    """Internal: a measurement ran past its time or size budget.  A BaseException, as KeyboardInterrupt:
    the alarm can go off inside code with an ``except Exception`` (a formula builder trying one form and
    falling back to another), which would swallow it and let the measurement run on without a limit."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`OverBudget` in the block after ``seconds`` (main thread, POSIX; elsewhere, or when
    another interval timer is running, the block runs without a limit and only size budgets apply)."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise OverBudget(f"{seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def tree_size(expr: Any, limit: int = TREE_LIMIT) -> int:
    """Nodes of ``expr`` as a tree (a shared subexpression counted at each use), computed on the DAG;
    capped at ``limit + 1``."""
    if not isinstance(expr, sympy.Basic):
        return 1
    sizes: dict = {}
    stack = [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if e in sizes:
            continue
        if ready:
            sizes[e] = min(limit + 1, 1 + sum(sizes[a] for a in e.args))
        else:
            stack.append((e, True))
            stack.extend((a, False) for a in e.args if a not in sizes)
    return sizes[expr]


class FormulaStats:
    """Operation counts of one gradient (or node) written four ways; see :func:`formula_stats`.

    ``stats["closed_form"]`` is a count (an int) or None when it was over
    budget or does not apply (``stats.notes[key]`` says which);
    ``stats.as_dict()`` gives every count, ``stats.seconds`` the time each
    took, ``str(stats)`` a table.
    """

    def __init__(self, title: str, counts: dict, notes: dict, seconds: dict):
        self.title, self.counts, self.notes, self.seconds = title, counts, notes, seconds

    def __getitem__(self, key: str) -> int | None:
        if key not in self.counts:
            raise KeyError(f"FormulaStats has no {key!r}; it has {list(self.counts)}")
        return self.counts[key]

    def __iter__(self):
        return iter(self.counts)

    def as_dict(self) -> dict[str, int | None]:
        return dict(self.counts)

    def __repr__(self) -> str:
        return f"FormulaStats({self.title!r}, {self.counts})"

    def __str__(self) -> str:
        rows = []
        for key, label, unit in ROWS:
            if key not in self.counts:
                continue
            value = self.counts[key]
            shown = f"{value:,} {unit}" if value is not None else self.notes.get(key, "-")
            rows.append((label, shown))
        width = max(len(r[0]) for r in rows)
        lines = [f"size of {self.title}:"] + [f"  {label.ljust(width)}  {shown}" for label, shown in rows]
        return "\n".join(lines)


def formula_stats(node: Node, wrt: Node | None = None, *, budget: float | None = DEFAULT_BUDGET) -> FormulaStats:
    """Operation counts of a formula written in closed form, after ``sympy.cse``, in named
    intermediates, and as a backward graph (see the module docstring).

    Parameters
    ----------
    node : the node measured (a gradient from :func:`symgrad.grad`), or with
        ``wrt`` a scalar node whose gradient is measured.
    wrt : a leaf of ``node``'s graph: measure ``grad(node, wrt)`` and also
        ``sympy.diff`` of ``node``'s closed form.
    budget : seconds each measurement may take (None: no time limit, size
        budgets only); one past it is reported as over budget.

    Returns
    -------
    FormulaStats
        dict access (``stats["cse"]``) and a table (``str(stats)``).

    Examples
    --------
    >>> import symgrad as sg
    >>> x, w = sg.var("x"), sg.param("w", 0.5)
    >>> h = x
    >>> for _ in range(4):
    ...     h = sg.sigmoid(w * h)
    >>> stats = sg.formula_stats(h, w)
    >>> stats["graph_ops"], stats["closed_form"] > stats["cse"]
    (24, True)
    """
    from .autodiff import grad
    if not isinstance(node, Node):
        raise GraphError(f"formula_stats: expected a Node, got {type(node).__name__}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or not math.isfinite(budget) or budget <= 0):
        raise GraphError(f"formula_stats: budget must be a positive number of seconds or None, got {budget!r}")
    if wrt is not None:
        if not isinstance(wrt, Node):
            raise GraphError(f"formula_stats: wrt must be one node (a param or var), got {type(wrt).__name__}")
        target = grad(node, wrt)
        title = f"∂{_name(node)}/∂{_name(wrt)}"
    else:
        target, title = node, _name(node)
    counts: dict[str, int | None] = {}
    notes: dict[str, str] = {}
    seconds: dict[str, float] = {}

    def measure(key: str, fn) -> Any:
        start = time.perf_counter()
        try:
            with time_limit(budget):
                value = fn()
        except OverBudget as e:
            value, notes[key] = None, f"over budget ({e})"
        except RecursionError:
            value, notes[key] = None, "over budget (nested too deep)"
        except _NotApplicable as e:
            value, notes[key] = None, f"n/a ({e})"
        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start
        return value

    closed = measure("closed_form", lambda: _closed_form(target))
    counts["closed_form"] = measure("closed_form", lambda: _checked_count(closed)) if closed is not None else None
    counts["cse"] = measure("cse", lambda: _cse_count(closed)) if closed is not None else None
    if closed is None:
        notes["cse"] = notes["closed_form"]
    counts["named"] = measure("named", lambda: _named_count(target))
    counts["graph_ops"] = sum(1 for n in Graph(target).order if not n.is_leaf)
    if wrt is not None:
        counts["sympy_diff"] = measure("sympy_diff", lambda: _diff_count(node, wrt))
    return FormulaStats(title, counts, notes, seconds)


class _NotApplicable(Exception):
    """Internal: a form that this node does not have (index notation, a tensor wrt)."""


def _name(node: Node) -> str:
    return node.name or "f"


def _count(expr: Any) -> int | None:
    if tree_size(expr) > TREE_LIMIT:
        return None
    return int(sympy.count_ops(expr, visual=False))


def _closed_form(node: Node) -> Any:
    from .formulas.build import formula_with_definitions
    expr, defs = formula_with_definitions(node)
    if not isinstance(expr, sympy.Basic):
        raise _NotApplicable("index notation")
    if defs:  # a deep graph's intermediates h₁, h₂… substituted back: the closed form proper
        rule: dict = {}
        for symbol, definition in defs:
            rule[symbol] = definition.xreplace(rule)
        expr = expr.xreplace(rule)
    return expr


def _cse_count(expr: Any) -> int:
    if tree_size(expr) > TREE_LIMIT:
        raise OverBudget(f"tree of more than {TREE_LIMIT:,} nodes")
    replacements, reduced = sympy.cse(expr)
    return sum(int(sympy.count_ops(e, visual=False)) for _, e in replacements) + \
        sum(int(sympy.count_ops(e, visual=False)) for e in reduced)


def _named_count(node: Node) -> int:
    from .formulas.build import MATRIX, SCALAR, Builder, keep_symbols, mode_for
    from .formulas.notation import leaf_symbol
    _, nodes = keep_symbols(node, None)
    if any(n.ndim > 2 for n in nodes):
        raise _NotApplicable("index notation")
    mode = mode_for(node, nodes, False, keep="named")
    users: dict[Node, int] = {}
    for n in nodes:
        for i in set(n.inputs):
            users[i] = users.get(i, 0) + 1
    taken = {n.name for n in nodes if n.is_leaf and n.name}
    symbols: dict[Node, Any] = {}
    counter = 0
    for n in sorted(nodes, key=lambda n: n.id):
        if n.is_leaf or n is node or not (users.get(n, 0) > 1 or n.name):
            continue
        name = n.name if n.name and n.name not in taken else None
        while name is None or name in taken:
            counter += 1
            name = f"h_{counter}"
        taken.add(name)
        symbols[n] = leaf_symbol(name, n.shape) if mode == MATRIX else sympy.Symbol(name, real=True)
    builder = Builder(mode if mode in (SCALAR, MATRIX) else SCALAR, symbols, opaque=True, taken=taken)
    total = 0
    for n in symbols:
        total += _checked_count(builder.define(n))
    if not node.is_leaf:
        total += _checked_count(builder.define(node))
    for _, definition in builder.definitions():  # nodes cut for nesting depth
        total += _checked_count(definition)
    return total


def _checked_count(expr: Any) -> int:
    count = _count(expr)
    if count is None:
        raise OverBudget(f"tree of more than {TREE_LIMIT:,} nodes")
    return count


def _diff_count(node: Node, wrt: Node) -> int:
    from .formulas.notation import leaf_symbol
    if node.shape != () or wrt.shape != () or not wrt.is_leaf:
        raise _NotApplicable("sympy.diff of a scalar with respect to a scalar leaf only")
    closed = _closed_form(node)
    if tree_size(closed) > TREE_LIMIT:
        raise OverBudget(f"tree of more than {TREE_LIMIT:,} nodes")
    derivative = sympy.diff(closed, leaf_symbol(wrt.name, ()))
    return _checked_count(derivative)
