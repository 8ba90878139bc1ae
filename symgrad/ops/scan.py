"""Loops as graph nodes: :func:`scan`.

``scan(fn, init, xs)`` traces ``fn(carry, x_t) -> (carry, y_t)`` once, with placeholder leaves for
the carry and for one step of the scanned inputs, into a :class:`Body`: a graph of its own whose
leaves are those placeholders, placeholders for the outer nodes the body closes over (parameters,
other nodes: they become inputs of the loop) and constants.  One ``scan`` node runs the body over
the steps; it has several outputs — the final carries, then every per-step output stacked on a new
leading axis — and ``scan_out`` nodes pick them.

Besides the outputs asked for, the body stacks the per-step values its backward pass reads (the
carry entering each step, a gate's activation): they are chosen when the body is traced, from the
body's own backward graph, so that the gradient (:mod:`.scan_grad`, a reverse scan) does not
compute the forward pass again.  A compiled function stores only the outputs something reads.

Printing, drawing and compiling read the body; ``unroll=True`` builds the explicit loop instead.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Graph, Node, check_name, format_shape
from .base import OpDef, as_node, register, var
from .scan_batch import reachable, substitute

__all__ = ["scan", "Body", "scan_out", "SCAN", "SCAN_OUT", "make_scan"]


class Body:
    """A traced loop body; immutable, hashed by identity.

    carry_in, xs_in, closed_in : the placeholder leaves (``var`` nodes) for the carry entering a step,
        one step of each scanned input, and each outer value the body reads.
    carry_out : the carry leaving a step (one node per carry, each of its carry's shape).
    ys : the per-step outputs, stacked by the loop: the caller's first (``n_user`` of them), then
        the values saved for the backward pass (``saved``).
    labels : ``{node: (name, shift)}`` for printing with a time index: the carry entering step t is
        ``(h, -1)`` (h_{t−1}), one step of x is ``(x, 0)``, a carry leaving it ``(h, 0)``.
    role : ``"forward"`` or ``"backward"`` (the reverse scan of a gradient); ``of``: for a backward
        body, the forward scan node whose gradient it computes.
    sums : for a backward body, ``[(outer node, per-step node, input index, (stacked, fixed))]``: gradients
        summed over the steps outside the loop (``Σ_t h_{t−1}ᵀ δz_t`` as one contraction), for the
        printers; ``stacked`` and ``fixed`` map the placeholders the per-step node reads to outer nodes.
    origin : for a backward body, ``{placeholder: forward body node}`` of the values saved by the forward loop.
    """

    def __init__(self, carry_in, xs_in, closed_in, carry_out, ys, n_user: int, labels: dict,
                 role: str = "forward", of: Node | None = None, sums: Sequence = (), origin: dict | None = None):
        self.carry_in, self.xs_in, self.closed_in = tuple(carry_in), tuple(xs_in), tuple(closed_in)
        self.carry_out, self.ys = tuple(carry_out), tuple(ys)
        self.n_user = n_user
        self.labels = dict(labels)
        self.role, self.of = role, of
        self.sums = list(sums)
        self.origin = dict(origin or {})  # backward body: saved placeholder -> the forward body node it holds
        self.graph = Graph(list(self.carry_out) + list(self.ys)) if self.carry_out or self.ys else None
        self.plan = None  # what the backward pass reads (scan_grad.Plan), set by make_scan

    @property
    def placeholders(self) -> tuple[Node, ...]:
        return self.carry_in + self.xs_in + self.closed_in

    @property
    def saved(self) -> tuple[Node, ...]:
        return self.ys[self.n_user:]

    def nodes(self) -> list[Node]:
        """Every node of the body, placeholders first."""
        inner = self.graph.order if self.graph is not None else []
        return list(self.placeholders) + [n for n in inner if n not in set(self.placeholders)]

    def __repr__(self) -> str:
        names = lambda ns: ", ".join(n.name for n in ns)  # noqa: E731
        return (f"<{self.role} body: carries ({names(self.carry_in)}), xs ({names(self.xs_in)}), "
                f"closed ({names(self.closed_in)}), {len(self.ys)} stacked>")


# ------------------------------------------------------------------ the ops
def _outputs(node: Node) -> tuple:
    body, T = node.attr("body"), node.attr("length")
    return tuple((c.shape, c.dtype) for c in body.carry_in) + tuple(((T,) + y.shape, y.dtype) for y in body.ys)


def _no_sym(*args, **attrs):
    raise GraphError("formula: a scan has no entrywise expansion; print it with sg.formula (the body once, "
                     "with a time index) or build it with unroll=True")


def run_body(body: Body, arrays: Sequence[np.ndarray], length: int, reverse: bool) -> tuple:
    """The loop, evaluated with :func:`symgrad.evaluate`'s NumPy ops: final carries, then stacked outputs."""
    from ..evaluate import run_graph
    k, j = len(body.carry_in), len(body.xs_in)
    carry = [np.asarray(a) for a in arrays[:k]]
    xs = [np.asarray(a) for a in arrays[k:k + j]]
    fixed = dict(zip(body.closed_in, (np.asarray(a) for a in arrays[k + j:])))
    T = xs[0].shape[0] if xs else int(length)
    for x in xs:
        if x.shape[0] != T:
            raise ShapeError(f"scan: the scanned inputs have lengths {[a.shape[0] for a in xs]}; they must agree")
    steps = range(T - 1, -1, -1) if reverse else range(T)
    ys: list[list] = [[None] * T for _ in body.ys]
    for t in steps:
        fed = dict(fixed)
        fed.update(zip(body.carry_in, carry))
        fed.update((p, x[t]) for p, x in zip(body.xs_in, xs))
        values = run_graph(body.graph, fed) if body.graph is not None else fed
        carry = [np.asarray(values[c]) for c in body.carry_out]
        for m, y in enumerate(body.ys):
            ys[m][t] = values[y]
    dims = _bind(body, carry, xs, fixed)
    stacked = []
    for m, y in enumerate(body.ys):
        if T:
            stacked.append(np.stack([np.asarray(v, dtype=np.float64) if y.dtype != "int" else np.asarray(v)
                                     for v in ys[m]]))
        else:
            stacked.append(np.zeros((0,) + tuple(dims.get(d, d) for d in y.shape)))
    return tuple(carry) + tuple(stacked)


def _bind(body: Body, carry, xs, fixed) -> dict:
    dims: dict = {}
    pairs = list(zip(body.carry_in, carry)) + [(p, x[0] if len(x) else np.zeros(x.shape[1:]))
                                               for p, x in zip(body.xs_in, xs)] + list(fixed.items())
    for p, arr in pairs:
        dims.update((d, n) for d, n in zip(p.shape, np.shape(arr)) if isinstance(d, str))
    return dims


def _scan_impl(*arrays, body, length, reverse):
    return run_body(body, arrays, length, reverse)


def _scan_vjp(node: Node, gs: tuple, needs: tuple) -> tuple:
    from .scan_grad import scan_vjp
    return scan_vjp(node, gs, needs)


def _out_shape(nodes, index):
    (src,) = nodes
    if src.op is None or src.op.outputs is None:
        raise GraphError(f"scan_out: expects a scan node, got {src.describe()}")
    outs = src.op.outputs(src)
    if not 0 <= index < len(outs):
        raise GraphError(f"scan_out: output {index} of a node with {len(outs)} outputs")
    return outs[index][0]


def _never(node, g, needs):  # autodiff routes a picker's cotangent to its scan
    raise GraphError("scan_out: its cotangent is collected by autodiff, never asked of the op")


SCAN = register(OpDef("scan", 0, lambda nodes, **attrs: (), _scan_impl, _no_sym, vjp=_scan_vjp, label="scan",
                      attr_names=("body", "length", "reverse"), foldable=False, outputs=_outputs))
SCAN_OUT = register(OpDef("scan_out", 1, _out_shape, lambda t, index: t[index], _no_sym, vjp=_never, label="out",
                          attr_names=("index",), foldable=False, view=True))


def scan_out(node: Node, index: int) -> Node:
    """Output ``index`` of a scan node (final carries first, then the stacked outputs)."""
    shape, dtype = node.op.outputs(node)[index]
    return Node(SCAN_OUT, (node,), (("index", index),), shape, dtype)


def make_scan(body: Body, init: Sequence[Node], xs: Sequence[Node], closed: Sequence[Node], length: Any,
              reverse: bool) -> Node:
    """The scan node running ``body`` (whose stacked outputs are extended here by the values its backward
    pass reads, unless it already has them)."""
    from .scan_grad import with_saved
    body = with_saved(body)
    inputs = tuple(init) + tuple(xs) + tuple(closed)
    for p, n in zip(body.placeholders, inputs):
        if p.shape != n.shape and p in body.carry_in + body.closed_in:
            raise ShapeError(f"scan: {n.describe()} of shape {format_shape(n.shape)} does not fit placeholder "
                             f"{p.name!r} {format_shape(p.shape)}")
    attrs = (("body", body), ("length", length), ("reverse", bool(reverse)))
    return Node(SCAN, inputs, attrs, (), "float")


# --------------------------------------------------------------- tracing
def _flatten(tree: Any, what: str) -> tuple[list[Node], Any]:
    """Nodes of a node, or of a (nested) tuple or list of them, and the structure to rebuild it."""
    if isinstance(tree, (tuple, list)):
        nodes, parts = [], []
        for t in tree:
            ns, s = _flatten(t, what)
            nodes += ns
            parts.append(s)
        return nodes, tuple(parts)
    if tree is None:
        raise GraphError(f"scan: {what} holds None; give nodes or numbers")
    return [as_node(tree, f"scan {what}")], None


def _unflatten(struct: Any, nodes: list[Node]) -> Any:
    it = iter(nodes)

    def build(s):
        return next(it) if s is None else tuple(build(p) for p in s)
    return build(struct)


def _length(xs: list[Node], length: Any) -> Any:
    dims = []
    for x in xs:
        if x.ndim == 0:
            raise ShapeError(f"scan: a scanned input needs a leading time axis, got the scalar {x.describe()}")
        dims.append(x.shape[0])
    if len(set(dims)) > 1:
        raise ShapeError(f"scan: the scanned inputs have leading axes {dims}; they must agree "
                         f"({', '.join(x.describe() for x in xs)})")
    if length is not None:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer, str)) or \
                isinstance(length, (int, np.integer)) and length < 0:
            raise ShapeError(f"scan: length must be an int >= 0 or a dim name, got {length!r}")
        length = int(length) if not isinstance(length, str) else length
        if dims and dims[0] != length:
            raise ShapeError(f"scan: length={length!r} but the scanned inputs have {dims[0]!r} steps")
        if not dims and isinstance(length, str):
            raise ShapeError(f"scan: without scanned inputs the length must be an int, got the dim {length!r}")
        return length
    if not dims:
        raise ShapeError("scan: give scanned inputs xs or a length")
    return dims[0]


def _names(given: Any, nodes: list[Node], default: str, strip: Callable[[str], str], what: str) -> list[str]:
    if given is not None:
        names = [given] if isinstance(given, str) else list(given)
        if len(names) != len(nodes):
            raise GraphError(f"scan: {len(names)} {what} for {len(nodes)} nodes")
        return [check_name(n) for n in names]
    out = []
    for i, n in enumerate(nodes):
        base = strip(n.name) if n.name else ""
        out.append(base or (default if len(nodes) == 1 else f"{default}{i + 1}"))
    return out


def _carry_stem(name: str) -> str:
    """``h0`` / ``h_0`` / ``h_init`` -> ``h``; module names keep their last part (``rnn.h0`` -> ``h``)."""
    name = name.rsplit(".", 1)[-1]
    return re.sub(r"(_?0|_init)$", "", name) or name


def _x_stem(name: str) -> str:
    """``xs`` -> ``x``, ``X`` -> ``x``."""
    name = name.rsplit(".", 1)[-1]
    if len(name) > 1 and name.endswith("s"):
        name = name[:-1]
    return name.lower() if len(name) == 1 else name


class UniqueNames:
    """Fresh names for a body's placeholders: ``name``, then ``name_2``, ``name_3``… past those taken
    (by ``nodes``, when given)."""

    def __init__(self, nodes=()):
        self.taken: set[str] = {n.name for n in nodes if n.name}

    def __call__(self, name: str) -> str:
        out, k = name, 1
        while out in self.taken:
            k += 1
            out = f"{name}_{k}"
        self.taken.add(out)
        return out


def trace(fn: Callable, init_nodes: list[Node], carry_struct: Any, xs_nodes: list[Node], xs_struct: Any,
          carry_names: Any = None, x_names: Any = None, has_xs: bool = True) -> tuple[Body, list[Node], Any, Any]:
    """Trace ``fn`` once into a :class:`Body`; returns it, the outer nodes it closes over and the
    structures of its carry and per-step output."""
    unique = UniqueNames()
    cn = [unique(n) for n in _names(carry_names, init_nodes, "h", _carry_stem, "carry names")]
    xn = [unique(n) for n in _names(x_names, xs_nodes, "x", _x_stem, "x names")]
    carry_in = [var(n, c.shape, c.dtype) for n, c in zip(cn, init_nodes)]
    xs_in = [var(n, x.shape[1:], x.dtype) for n, x in zip(xn, xs_nodes)]
    result = fn(_unflatten(carry_struct, carry_in), _unflatten(xs_struct, xs_in) if has_xs else None)
    if not isinstance(result, tuple) or len(result) != 2:
        raise GraphError(f"scan: fn must return a pair (carry, y), got {type(result).__name__}")
    new_carry, y = result
    carry_out, out_struct = _flatten(new_carry, "the carry fn returns")
    if out_struct != carry_struct:
        raise GraphError(f"scan: fn returns a carry of another structure ({len(carry_out)} nodes for "
                         f"{len(carry_in)} carried)")
    for c, o in zip(carry_in, carry_out):
        if o.shape != c.shape:
            raise ShapeError(f"scan: the carry {c.name!r} enters a step as {format_shape(c.shape)} and leaves it as "
                             f"{format_shape(o.shape)} ({o.describe()}); a carry keeps its shape")
    ys, y_struct = ([], "none") if y is None else _flatten(y, "the output fn returns")
    placeholders = carry_in + xs_in
    closed, closed_in, inner = _close_over(placeholders, carry_out + ys, unique)
    carry_out, ys = inner[:len(carry_out)], inner[len(carry_out):]
    labels = {p: (p.name, -1) for p in carry_in}
    labels.update((p, (p.name, 0)) for p in xs_in)
    labels.update((o, (p.name, 0)) for p, o in zip(carry_in, carry_out) if o not in labels)
    body = Body(carry_in, xs_in, closed_in, carry_out, ys, len(ys), labels)
    return body, closed, carry_struct, y_struct


def _close_over(placeholders: list[Node], outputs: list[Node], unique: UniqueNames) -> tuple[list, list, list]:
    """The outer nodes a body reads (params, vars, nodes computed outside), each replaced by a new
    placeholder; nodes built from constants alone stay inside.  Returns (outer nodes, their
    placeholders, the outputs rebuilt over them)."""
    if not outputs:
        return [], [], []
    order = reachable(outputs)
    ph = set(placeholders)
    dep: set[Node] = set()
    constant: set[Node] = set()
    for n in order:
        if n in ph:
            dep.add(n)
        elif n.kind == "const":
            constant.add(n)
        elif not n.is_leaf and any(i in dep for i in n.inputs):
            dep.add(n)
        elif not n.is_leaf and all(i in constant for i in n.inputs):
            constant.add(n)
    closed: list[Node] = []
    outside = lambda n: n not in dep and n not in constant  # noqa: E731
    for n in order:
        if n in dep and not n.is_leaf:
            closed += [i for i in n.inputs if outside(i) and i not in closed]
    closed += [o for o in dict.fromkeys(outputs) if outside(o) and o not in closed]
    for p in placeholders:
        unique.taken.add(p.name)
    closed_in = []
    for i, c in enumerate(closed):
        name = c.name if c.name else f"c{i + 1}"
        closed_in.append(var(unique(name), c.shape, c.dtype))
    inner = substitute(outputs, dict(zip(closed, closed_in)))
    return closed, closed_in, inner


# ------------------------------------------------------------- public API
def scan(fn: Callable, init: Any, xs: Any = None, length: Any = None, reverse: bool = False,
         unroll: bool = False, *, carry_names: Any = None, x_names: Any = None) -> tuple[Any, Any]:
    """A loop as one graph node, as JAX's ``lax.scan``.

    Parameters
    ----------
    fn : ``fn(carry, x_t) -> (carry, y_t)``, traced once: ``carry`` has the structure of ``init``
        (a node or a tuple of nodes, e.g. an LSTM's ``(h, c)``), ``x_t`` of ``xs`` (one step; None
        without xs); ``y_t`` is a node, a tuple of nodes or None.  Nodes ``fn`` uses from outside
        (parameters, other nodes) become inputs of the loop.
    init : the initial carry.
    xs : a node or a tuple of nodes scanned along axis 0 (their leading axes agree: the number of
        steps, an int or a named dim such as ``"T"``), or None with ``length``.
    length : the number of steps (needed without xs).
    reverse : run from the last step to the first (``ys`` stay aligned with ``xs``).
    unroll : build the explicit loop (one copy of the body per step; needs an int length).
    carry_names, x_names : names of the body's placeholders, for formulas and drawings (``"h"``:
        ``h_t = tanh(x_t W + h_{t−1} U)``); by default the names of ``init`` and ``xs`` without a
        trailing 0 or s, else h and x.

    Returns
    -------
    ``(final_carry, ys)``: the carry after the last step, in ``init``'s structure, and the ``y_t``
    stacked on a new axis 0, in ``y_t``'s structure (None when ``fn`` returns None).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> xs = sg.var("xs", shape=(4,))
    >>> total, partial = sg.scan(lambda c, x: (c + x, c + x), sg.const(0.0), xs)
    >>> sg.evaluate([total, partial], {"xs": [1.0, 2.0, 3.0, 4.0]})
    [array(10.), array([ 1.,  3.,  6., 10.])]
    >>> float(sg.evaluate(sg.grad(total * total, xs), {"xs": [1.0, 2.0, 3.0, 4.0]})[0])
    20.0
    """
    if not callable(fn):
        raise GraphError(f"scan: fn must be callable, got {type(fn).__name__}")
    init_nodes, carry_struct = _flatten(init, "init")
    has_xs = xs is not None
    xs_nodes, xs_struct = _flatten(xs, "xs") if has_xs else ([], None)
    T = _length(xs_nodes, length)
    if unroll:
        from .scan_unroll import unrolled
        return unrolled(fn, init_nodes, carry_struct, xs_nodes, xs_struct, has_xs, T, reverse)
    body, closed, carry_struct, y_struct = trace(fn, init_nodes, carry_struct, xs_nodes, xs_struct,
                                                 carry_names, x_names, has_xs)
    node = make_scan(body, init_nodes, xs_nodes, closed, T, reverse)
    k = len(init_nodes)
    finals = [scan_out(node, i) for i in range(k)]
    ys = [scan_out(node, k + m) for m in range(body.n_user)]
    return _unflatten(carry_struct, finals), (None if y_struct == "none" else _unflatten(y_struct, ys))
