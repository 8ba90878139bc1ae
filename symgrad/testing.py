"""Gradient checking against central finite differences (per op: :mod:`symgrad.diagnostics`)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .autodiff import grad
from .errors import FeedError, GradError, GradientCheckError, GraphError
from .evaluate import complete_feeds, evaluate
from .graph import Graph, Node, as_node_list, finite_number


def numeric_grad(y: Node, w: Node, feeds: Mapping | None = None, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of scalar ``y`` with respect to leaf ``w`` (random nodes are drawn
    once, so every difference sees the same draws)."""
    graph = Graph(y)
    fed = complete_feeds(graph, feeds, None, "numeric_grad")
    base = np.array(fed[w] if w in fed else w.value, dtype=np.float64)
    out = np.zeros(base.shape)
    for idx in np.ndindex(base.shape):
        vals = []
        for sign in (1.0, -1.0):
            pert = base.copy()
            pert[idx] += sign * eps
            vals.append(float(evaluate(y, {**fed, w: pert}, graph=graph)))
        out[idx] = (vals[0] - vals[1]) / (2 * eps)
    return out


def _setting(what: str, value, positive: bool = False) -> float:
    """A tolerance or step of check_grad as a float: a finite real number, ≥ 0 (> 0 when ``positive``)."""
    number = finite_number(value)
    if number is None or number < 0 or (positive and number == 0):
        need = "positive" if positive else "non-negative"
        raise GradError(f"check_grad: {what} must be a {need} finite number, got {value!r}")
    return number


class _Default:
    """The default of a tolerance: it depends on ``per_node``."""

    def __repr__(self) -> str:
        return "default"


DEFAULT = _Default()


def check_grad(y: Node, wrt: Node | Sequence[Node], feeds: Mapping | None = None, *, eps: float = 1e-6,
               rtol: float = DEFAULT, atol: float = DEFAULT, per_node: bool = False,
               probes: int = 2, seed: int | None = 0):
    """Compare ``grad(y, wrt)`` with central finite differences.

    ``wrt`` are leaves (params or float vars).  Raises
    :class:`GradientCheckError` naming the node, the index, both values and
    the error at the worst entry; returns the largest absolute error
    (default tolerances ``rtol=1e-5``, ``atol=1e-7``).

    With ``per_node=True`` nothing is raised for a wrong gradient: each op on
    a path from ``wrt`` to ``y`` is checked on its own, its VJP at the values
    the graph has against finite differences of that op alone, with
    ``probes`` random probes per input (default tolerance ``rtol=1e-4`` of the
    size of the terms); the result is a
    :class:`~symgrad.diagnostics.GradCheckReport` naming the first op whose
    local derivative is wrong (``report.first_failure``, ``report.node``;
    ``sg.draw(..., check=report)`` colours it).  See
    :mod:`symgrad.diagnostics` for how kinks (ReLU at 0, ties of a max) are
    kept from giving false alarms.  Random nodes (dropout masks) are drawn
    once, from ``seed``, and held fixed for the whole check.

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x"); w = sg.param("w", 0.3)
    >>> sg.check_grad(sg.sigmoid(w * x), w, {"x": 2.0}) < 1e-8
    True
    >>> sg.check_grad(sg.sigmoid(w * x), w, {"x": 2.0}, per_node=True).ok
    True
    """
    if not isinstance(per_node, (bool, np.bool_)):
        raise GradError(f"check_grad: per_node must be True or False, got {per_node!r}")
    if per_node:
        from .diagnostics import check_nodes
        if feeds is not None and not isinstance(feeds, Mapping):
            raise FeedError(f"check_grad: feeds must be a mapping of vars (nodes or names) to values, "
                            f"got {type(feeds).__name__}")
        return check_nodes(y, wrt, feeds, eps=_setting("eps", eps, positive=True),
                           rtol=_setting("rtol", 1e-4 if rtol is DEFAULT else rtol),
                           atol=_setting("atol", 1e-12 if atol is DEFAULT else atol), probes=probes, seed=seed)
    rtol = 1e-5 if rtol is DEFAULT else rtol
    atol = 1e-7 if atol is DEFAULT else atol
    if not isinstance(y, Node):
        raise GraphError(f"check_grad: y must be a Node, got {type(y).__name__}")
    targets = as_node_list(wrt, "check_grad")
    for w in targets:
        if w.kind not in ("param", "var"):
            raise GradError(f"check_grad: wrt must be params or float vars, got {w.describe()}")
    if feeds is not None and not isinstance(feeds, Mapping):
        raise FeedError(f"check_grad: feeds must be a mapping of vars (nodes or names) to values, "
                        f"got {type(feeds).__name__}")
    eps = _setting("eps", eps, positive=True)
    rtol, atol = _setting("rtol", rtol), _setting("atol", atol)
    grads = grad(y, targets)
    # random nodes (dropout masks) drawn once, from ``seed``: the gradient and every difference see the same
    fed = complete_feeds(Graph(y), feeds, seed, "check_grad")
    analytic = evaluate(grads + [y], fed)[:-1]  # y too, so every feed has its node
    worst = 0.0
    for w, a in zip(targets, analytic):
        n = numeric_grad(y, w, fed, eps)
        a = np.broadcast_to(a, n.shape)
        err = np.abs(a - n)
        tol = atol + rtol * np.abs(n)
        if err.size:
            worst = max(worst, float(err.max()))
        bad = err > tol
        if np.any(bad) or not np.all(np.isfinite(a)):
            idx = np.unravel_index(int(np.argmax(np.where(np.isfinite(err), err - tol, np.inf))), err.shape)
            rel = err[idx] / max(abs(n[idx]), 1e-300)
            raise GradientCheckError(
                f"gradient of {y.describe()} with respect to {w.describe()} at index {tuple(int(i) for i in idx)}: "
                f"analytic {float(a[idx]):.10g}, numeric {float(n[idx]):.10g}, abs error {err[idx]:.3g}, rel error {rel:.3g} "
                f"(tolerance atol={atol}, rtol={rtol})")
    return worst
