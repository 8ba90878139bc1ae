"""Per-node gradient checking: which local derivative on the path is wrong.

A whole-function check (:func:`symgrad.check_grad`, PyTorch's ``gradcheck``,
JAX's ``check_grads``) says only that ∂L/∂w disagrees with finite
differences.  :func:`check_nodes` (``sg.check_grad(..., per_node=True)``)
checks every op on a path from the parameters to the loss on its own: at
the values the graph actually has, each op's vector-Jacobian product
(the nodes its ``vjp`` rule builds) is compared with central finite
differences of that op's NumPy ``impl`` alone, so the report names the
first op, in forward order, whose local derivative is wrong.

How one op is checked (a random-probe test, exact for linear maps): for a
random cotangent ``u`` of the output's shape and, per input ``i``, a random
direction ``d`` of its shape,

    analytic  ⟨vjp_i(u), d⟩      numeric  ⟨u, (f(x_i + h·d) − f(x_i − h·d)) / 2h⟩

must agree to ``rtol`` of the size of the sum's terms.  A wrong VJP (a
factor, a sign, a transpose, a missing term) makes them differ at random
probes with probability one.  False alarms are kept away so:

* the step is relative: ``d = z ⊙ (|x| + rms(x))`` with ``z ~ N(0, 1)`` and
  ``h = eps`` (1e-6), so every entry moves by about a millionth of its size;
* output entries where the op is not smooth along ``d`` are left out of both
  sums (their cotangent entry is set to 0, so the VJP is evaluated with the
  same mask): where the second difference ``f(x+hd) − 2f(x) + f(x−hd)`` is
  more than 1e-3 of the two one-sided differences (ReLU at 0, |x| at 0, ties
  of a max, a comparison at equality, steep curvature within the step), or
  where a perturbed value is not finite (the edge of log's or sqrt's domain).
  At ordinary random values no entry is left out; how many were is reported;
* the tolerance adds an estimate of the rounding error of the differences
  (64·ε·|f|/h per entry), so an op with a large value and a small
  derivative is not flagged for cancellation;
* integer inputs (class indices) are never perturbed, and an op whose
  ``impl`` does not give the recorded value again (a random op) is skipped.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import GradError, GraphError
from .evaluate import complete_feeds, run_graph
from .graph import Graph, Node, as_node_list, format_shape
from .ops.scan_check import check_loop, is_pick

#: a second difference larger than this fraction of the one-sided differences marks a kink
KINK = 1e-3
#: rounding error allowance, in units of machine epsilon times |f| / h
ROUNDING = 64.0
EPS64 = float(np.finfo(np.float64).eps)


@dataclasses.dataclass
class NodeCheck:
    """The check of one op's local derivative.

    Attributes
    ----------
    node : the forward node checked.
    op : its op's name.
    input_shapes, shape : the shapes of its inputs' values and of its value.
    status : ``"ok"``, ``"wrong"`` (the VJP disagrees with finite differences),
        ``"error"`` (the VJP raised, returned the wrong number or shape of
        cotangents, or the op has none) or ``"skipped"`` (nothing to compare).
    error : the largest relative error over probes and inputs (NaN when
        nothing was compared).
    input : the input index where it was found.
    analytic, numeric : the two directional derivatives at that probe.
    left_out, entries : output entries left out at kinks or domain edges
        (summed over probes and inputs), and entries compared in all.
    note : why it was skipped, or what went wrong.
    """

    node: Node
    op: str
    input_shapes: tuple
    shape: tuple
    status: str = "ok"
    error: float = math.nan
    input: int | None = None
    analytic: float = math.nan
    numeric: float = math.nan
    left_out: int = 0
    entries: int = 0
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("wrong", "error")

    @property
    def text(self) -> str:
        """The node as a short formula, with its name when it has one (``mlp.0.a = tanh(mlp.0.z)``)."""
        from .oneline import formula_text
        body = formula_text(self.node, depth=2)
        return f"{self.node.name} = {body}" if self.node.name else body

    @property
    def shapes_text(self) -> str:
        return ", ".join(format_shape(s) for s in self.input_shapes) + " → " + format_shape(self.shape)

    def summary(self) -> str:
        """One line: what the node is and what the check found."""
        where = f"{self.text} (op {self.op}, {self.shapes_text})"
        if self.status == "wrong":
            return (f"{where}: input {self.input}: relative error {self.error:.3g} "
                    f"(VJP {self.analytic:.10g}, finite differences {self.numeric:.10g})")
        if self.status == "error":
            return f"{where}: {self.note}"
        return where


class GradCheckReport:
    """The result of ``sg.check_grad(y, wrt, feeds, per_node=True)``.

    ``checks`` lists one :class:`NodeCheck` per op on a path from ``wrt`` to
    ``y``, in forward (topological) order; ``first_failure`` is the first
    that failed (None when every local derivative agrees), ``node`` its
    node; ``ok`` says whether none failed.  ``report[node]`` is the check of
    one node; ``str(report)`` a table.
    """

    def __init__(self, output: Node, wrt: list[Node], checks: list[NodeCheck], *, probes: int, rtol: float):
        self.output, self.wrt, self.checks = output, wrt, checks
        self.probes, self.rtol = probes, rtol

    @property
    def failures(self) -> list[NodeCheck]:
        return [c for c in self.checks if c.failed]

    @property
    def first_failure(self) -> NodeCheck | None:
        return next((c for c in self.checks if c.failed), None)

    @property
    def node(self) -> Node | None:
        """The node of the first failing check, or None."""
        first = self.first_failure
        return first.node if first is not None else None

    @property
    def ok(self) -> bool:
        return not self.failures

    def __getitem__(self, node: Node) -> NodeCheck:
        for c in self.checks:
            if c.node is node:
                return c
        raise KeyError(f"{node!r} is not an op on a path from {[w.name for w in self.wrt]} to the output")

    def __len__(self) -> int:
        return len(self.checks)

    def __iter__(self):
        return iter(self.checks)

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"{len(self.failures)} failed, first: {self.first_failure.text}"
        return f"GradCheckReport({len(self.checks)} ops, {state})"

    def __str__(self) -> str:
        from .oneline import formula_text
        head = (f"per-node gradient check of {formula_text(self.output, depth=1)}: {len(self.checks)} ops on the "
                f"path from {', '.join(w.name for w in self.wrt)}, {self.probes} random probes per input, "
                f"rtol {self.rtol:g}")
        first = self.first_failure
        lines = [head, (f"FAILED: the first wrong local derivative is {first.summary()}" if first is not None
                        else "ok: every local derivative agrees with finite differences")]
        rows = [("#", "node", "op", "shapes", "rel. error", "status")]
        for k, c in enumerate(self.checks, 1):
            err = "-" if math.isnan(c.error) else f"{c.error:.2g}"
            status = c.status + (f" ({c.left_out}/{c.entries} entries at kinks)" if c.left_out else "")
            if c.status in ("error", "skipped") and c.note:
                status += f": {c.note}"
            rows.append((str(k), _cut(c.text, 36), c.op, c.shapes_text, err, status))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            lines.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5])
        return "\n".join(lines)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


# ------------------------------------------------------------------ checking
def check_nodes(y: Node, wrt: Node | Sequence[Node], feeds: Mapping | None = None, *, eps: float = 1e-6,
                rtol: float = 1e-4, atol: float = 1e-12, probes: int = 2, seed: int = 0) -> GradCheckReport:
    """Check every op's VJP on a path from ``wrt`` to ``y`` against finite differences of that op alone.

    See the module docstring for the method; :func:`symgrad.check_grad` with
    ``per_node=True`` calls this.

    Examples
    --------
    >>> import symgrad as sg
    >>> x, w = sg.var("x"), sg.param("w", 0.3)
    >>> report = sg.check_grad(sg.tanh(w * x) ** 2, w, {"x": 2.0}, per_node=True)
    >>> report.ok, [c.op for c in report.checks]
    (True, ['mul', 'tanh', 'pow'])
    """
    if not isinstance(y, Node):
        raise GraphError(f"check_grad: y must be a Node, got {type(y).__name__}")
    targets = as_node_list(wrt, "check_grad")
    if isinstance(probes, bool) or not isinstance(probes, (int, np.integer)) or probes < 1:
        raise GradError(f"check_grad: probes must be a positive int, got {probes!r}")
    graph = Graph(y)
    for w in targets:
        if w not in graph:
            raise GraphError(f"check_grad: {w.describe()} is not in the graph of {y.describe()}")
        if w.dtype == "int":
            raise GradError(f"check_grad: {w.describe()} holds integers (class indices) and has no gradient")
    values = run_graph(graph, complete_feeds(graph, feeds, seed, "check_grad"))  # random nodes drawn once
    as64 = {n: _float64(v) for n, v in values.items()}
    relevant: set[Node] = set(targets)
    for node in graph.order:
        if node not in relevant and any(i in relevant for i in node.inputs):
            relevant.add(node)
    rng = np.random.default_rng(seed)
    checks = []
    with np.errstate(all="ignore"):
        for node in graph.order:
            if node.is_leaf or node not in relevant:
                continue
            needs = tuple(i in relevant and i.dtype != "int" for i in node.inputs)
            if node.op.outputs is not None or is_pick(node):  # a loop: checked as a whole (ops/scan_check.py)
                check = NodeCheck(node, node.op.name, tuple(np.shape(as64[i]) if not isinstance(as64[i], tuple) else ()
                                                                for i in node.inputs), ())
                checks.append(check_loop(node, needs, as64, rng, int(probes), float(eps), float(rtol),
                                         float(atol), check, _run))
                continue
            checks.append(_check_op(node, needs, as64, rng, int(probes), float(eps), float(rtol), float(atol)))
    return GradCheckReport(y, targets, checks, probes=int(probes), rtol=float(rtol))


def _float64(v: Any) -> np.ndarray:
    if isinstance(v, tuple):  # the outputs of a loop
        return tuple(_float64(x) for x in v)
    arr = np.asarray(v)
    return arr.astype(np.float64) if arr.dtype.kind == "f" and arr.dtype != np.float64 else arr


def _check_op(node: Node, needs: tuple, values: dict, rng: np.random.Generator, probes: int, h: float,
              rtol: float, atol: float) -> NodeCheck:
    args = [values[i] for i in node.inputs]
    out = values[node]
    check = NodeCheck(node, node.op.name, tuple(np.shape(a) for a in args), tuple(np.shape(out)))
    attrs = dict(node.attrs)
    if out.dtype.kind != "f":
        return _skip(check, "its value is not a float array")
    if node.op.vjp is None:
        check.status, check.note = "error", f"op {node.op.name} has no VJP (it is not differentiable)"
        return check
    again = _impl(node, args, attrs)
    if again is None or again.shape != out.shape or not np.allclose(again, out, rtol=1e-6, atol=1e-12, equal_nan=True):
        return _skip(check, "its impl does not give the recorded value again (a random op?)")
    from .ops import var  # a cotangent placeholder, fed with the probe
    g = var("g", shape=node.shape)
    try:
        cts = node.op.vjp(node, g, needs)
    except Exception as e:  # noqa: BLE001  a user's VJP rule may raise anything: that is the finding
        check.status, check.note = "error", f"its VJP raised {type(e).__name__}: {e}"
        return check
    if not isinstance(cts, (tuple, list)) or len(cts) != len(node.inputs):
        check.status = "error"
        check.note = f"its VJP returned {_count(cts)} for {len(node.inputs)} input(s)"
        return check
    compared = False
    for _ in range(probes):
        u = rng.normal(size=out.shape)
        for i, (need, x) in enumerate(zip(needs, args)):
            if not need or x.dtype.kind != "f":
                continue
            finite = np.isfinite(x)  # a masked score (-inf) stays where it is
            scale = float(np.sqrt(np.mean(x[finite] ** 2))) if finite.any() else 0.0
            d = np.where(finite, rng.normal(size=x.shape) * (np.abs(x) + (scale if scale > 0 else 1.0)), 0.0)
            plus = _impl(node, _with(args, i, x + h * d), attrs)
            minus = _impl(node, _with(args, i, x - h * d), attrs)
            if plus is None or minus is None or plus.shape != out.shape or minus.shape != out.shape:
                continue
            one_sided = np.abs(plus - again) + np.abs(again - minus)
            noise_floor = ROUNDING * EPS64 * (np.abs(plus) + np.abs(minus) + np.abs(again))
            kink = np.abs(plus - 2 * again + minus) > KINK * one_sided
            bad = ~np.isfinite(plus) | ~np.isfinite(minus) | ~np.isfinite(again) | (kink & (one_sided > noise_floor))
            check.left_out += int(bad.sum())
            check.entries += int(out.size)
            if out.size and bad.all():
                continue
            um = np.where(bad, 0.0, u)
            diff = np.where(bad, 0.0, (plus - minus) / (2 * h))
            numeric = float(np.sum(um * diff))
            ct = cts[i]
            if ct is None:
                contrib = np.zeros(x.shape)
            else:
                if not isinstance(ct, Node):
                    check.status = "error"
                    check.note = f"its VJP returned {type(ct).__name__} for input {i}, not a node"
                    return check
                try:
                    got = np.asarray(_run(ct, values, {g: um}), dtype=np.float64)
                except Exception as e:  # noqa: BLE001  the VJP's nodes failed to evaluate
                    check.status, check.input = "error", i
                    check.note = f"evaluating its VJP for input {i} raised {type(e).__name__}: {e}"
                    return check
                fitted = _fit(got, x.shape)
                if fitted is None:
                    check.status, check.input = "error", i
                    check.note = (f"its VJP for input {i} has shape {format_shape(got.shape)}, which does not "
                                  f"fit the input's shape {format_shape(x.shape)}")
                    return check
                contrib = np.where(d != 0, fitted * d, 0.0)  # 0·inf of an unperturbed -inf entry is 0
            analytic = float(np.sum(contrib))
            size = max(float(np.sum(np.abs(um * diff))), float(np.sum(np.abs(contrib))))
            magnitude = np.where(bad, 0.0, np.abs(plus) + np.abs(minus))
            rounding = ROUNDING * EPS64 * float(np.sum(np.abs(um) * magnitude)) / (2 * h)
            err = abs(analytic - numeric)
            rel = err / size if size > 0 else (0.0 if err == 0 else math.inf)
            if not math.isfinite(analytic):
                rel = math.inf
            compared = True
            if math.isnan(check.error) or rel > check.error:
                check.error, check.input, check.analytic, check.numeric = rel, i, analytic, numeric
            if not (err <= atol + rtol * size + rounding) and check.status != "wrong":
                check.status = "wrong"
                check.error, check.input, check.analytic, check.numeric = rel, i, analytic, numeric
    if not compared and check.status == "ok":
        return _skip(check, "every entry is at a kink or a domain edge" if check.entries else
                     "no float input to perturb")
    return check


def _skip(check: NodeCheck, why: str) -> NodeCheck:
    check.status, check.note = "skipped", why
    return check


def _count(cts: Any) -> str:
    return f"{len(cts)} cotangent(s)" if isinstance(cts, (tuple, list)) else type(cts).__name__


def _with(args: list, i: int, x: np.ndarray) -> list:
    out = list(args)
    out[i] = x
    return out


def _impl(node: Node, args: list, attrs: dict) -> np.ndarray | None:
    try:
        out = np.asarray(node.op.impl(*args, **attrs))
    except (ArithmeticError, ValueError, FloatingPointError):  # out of the op's domain
        return None
    return out.astype(np.float64) if out.dtype.kind in "fiub" else None


def _fit(ct: np.ndarray, shape: tuple) -> np.ndarray | None:
    """A cotangent summed over broadcast axes to ``shape`` (as autodiff's fit_to does), or None."""
    lead = ct.ndim - len(shape)
    if lead > 0:
        ct = ct.sum(axis=tuple(range(lead)))
    if ct.ndim == len(shape):
        stretched = tuple(k for k, (a, b) in enumerate(zip(ct.shape, shape)) if b == 1 and a != 1)
        if stretched:
            ct = ct.sum(axis=stretched, keepdims=True)
    try:
        return np.broadcast_to(ct, shape)
    except ValueError:
        return None


def _run(root: Node, values: dict, extra: dict) -> np.ndarray:
    """The value of ``root``, computing only what ``values`` and ``extra`` (node -> array) do not hold."""
    computed: dict[Node, np.ndarray] = dict(extra)

    def known(n: Node) -> bool:
        return n in values or n in computed

    stack = [root]
    while stack:
        n = stack[-1]
        if known(n):
            stack.pop()
            continue
        if n.is_leaf:
            if n.kind in ("param", "const"):
                computed[n] = np.asarray(n.value, dtype=np.float64)
                stack.pop()
                continue
            raise GraphError(f"check_grad: the VJP uses {n.describe()}, which has no value here")
        missing = [i for i in n.inputs if not known(i)]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        args = [computed[i] if i in computed else values[i] for i in n.inputs]
        out = n.op.impl(*args, **dict(n.attrs))
        computed[n] = tuple(out) if n.op.outputs is not None else np.asarray(out)  # a loop's outputs
    return computed[root] if root in computed else values[root]
