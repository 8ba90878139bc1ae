"""Gradient checking against central finite differences."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .autodiff import grad
from .errors import FeedError, GradError, GradientCheckError, GraphError
from .evaluate import evaluate, resolve_feeds
from .graph import Graph, Node, as_node_list, finite_number


def numeric_grad(y: Node, w: Node, feeds: Mapping | None = None, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of scalar ``y`` with respect to leaf ``w``."""
    graph = Graph(y)
    fed = resolve_feeds(graph, feeds)
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


def check_grad(y: Node, wrt: Node | Sequence[Node], feeds: Mapping | None = None, *, eps: float = 1e-6,
               rtol: float = 1e-5, atol: float = 1e-7) -> float:
    """Compare ``grad(y, wrt)`` with central finite differences.

    ``wrt`` are leaves (params or float vars).  Raises
    :class:`GradientCheckError` naming the node, the index, both values and
    the error at the worst entry; returns the largest absolute error.

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x"); w = sg.param("w", 0.3)
    >>> sg.check_grad(sg.sigmoid(w * x), w, {"x": 2.0}) < 1e-8
    True
    """
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
    analytic = evaluate(grads + [y], feeds)[:-1]  # y too, so every feed has its node
    worst = 0.0
    for w, a in zip(targets, analytic):
        n = numeric_grad(y, w, feeds, eps)
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
