"""DOT output: node and edge styles, the boxes and edges of a scene, collapsed
layers, the legend, and :func:`draw`, which runs scene → labels → DOT."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import graphviz
import numpy as np

from ..errors import FeedError, GraphError, RenderError
from ..graph import Node, as_node_list
from ..ops.state import STATE_UPDATE
from .labels import Labels
from .layout import ORDER_EDGE, beside_first_use, order_edges
from .repeats import Repeat, fold_repeats
from .loops import expand_loops, is_loop
from .output import render_bytes
from .scene import Scene, build_scene

# ------------------------------------------------------------------ styles
FONT = "Helvetica"
FORWARD_EDGE = {"color": "#475569", "penwidth": "1.2", "arrowsize": "0.7"}
BACKWARD_EDGE = {"color": "#7c3aed", "penwidth": "2", "arrowsize": "0.7", "dir": "back"}
USES_EDGE = {"color": "#a8a29e", "style": "dotted", "arrowsize": "0.5", "constraint": "false"}
TIE_EDGE = {"color": "#7c3aed", "style": "dashed", "arrowhead": "none", "penwidth": "1.3"}
# a loop's carry, from the value leaving a step back to the one entering the next (render/loops.py)
CARRY_EDGE = {"color": "#ea580c", "penwidth": "2.2", "arrowsize": "0.8", "constraint": "false"}
LOOP_STYLE = {"style": "rounded,dashed,bold", "color": "#ea580c", "fontcolor": "#9a3412", "fontsize": "13",
              "labeljust": "l", "penwidth": "1.6"}

# node styles: DOT attributes and the legend text of each kind of node
NODE_STYLES: dict[str, tuple[dict[str, str], str]] = {
    "input": ({"shape": "box", "style": "rounded,filled", "fillcolor": "#dbeafe", "color": "#2563eb"},
              "input"),
    "param": ({"shape": "box", "style": "filled", "fillcolor": "#fef3c7", "color": "#b45309",
               "penwidth": "1.5"}, "parameter"),
    "const": ({"shape": "box", "style": "filled", "fillcolor": "#f1f5f9", "color": "#94a3b8",
               "fontsize": "10"}, "constant"),
    "random": ({"shape": "box", "style": "rounded,filled,dashed", "fillcolor": "#fce7f3", "color": "#be185d",
                "penwidth": "1.5"}, "random (drawn each call)"),
    "buffer": ({"shape": "cylinder", "style": "filled", "fillcolor": "#ecfccb", "color": "#4d7c0f"},
               "buffer (updated by a step)"),
    "update": ({"shape": "cds", "style": "filled", "fillcolor": "#ecfccb", "color": "#4d7c0f"},
               "buffer update (training step)"),
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
    "carry": ({"shape": "box", "style": "rounded,filled", "fillcolor": "#ffedd5", "color": "#ea580c",
               "penwidth": "1.5"}, "carry entering a step"),
    # draw(..., check=report): an op whose local derivative (VJP) disagrees with finite differences
    "check_failed": ({"shape": "octagon", "style": "filled,bold", "fillcolor": "#f87171", "color": "#7f1d1d",
                      "fontcolor": "#450a0a", "penwidth": "3"}, "wrong local derivative (check_grad)"),
}
# the legend's lines for the edge kinds: a picture of the line in its colour, and its meaning
LEGEND_EDGES = (("forward", "──▶  forward", FORWARD_EDGE["color"]),
                ("backward", "◀━━  gradient flow", BACKWARD_EDGE["color"]),
                ("tie", "╌╌╌  gradient of", TIE_EDGE["color"]),
                ("uses", "┈┈▶  value used by backward", USES_EDGE["color"]),
                ("carry", "━━▶  carry to the next step", CARRY_EDGE["color"]),
                ("repeat", "━━▶  into the next repeat (× N)", CARRY_EDGE["color"]))
# Graphviz keeps edges between nodes of one group straight: the forward chain
# of ops reads along one line, the chain of gradient boxes along another
NODE_GROUPS = {"op": "forward", "loss": "forward", "layer": "forward",
               "grad": "backward", "param_grad": "backward", "layer_grad": "backward"}
BACKWARD_STYLES = ("grad", "param_grad", "backward_op", "backward_const", "layer_grad")
CLUSTER_STYLE = {"style": "rounded,filled", "fillcolor": "#f8fafc", "color": "#cbd5e1",
                 "fontcolor": "#334155", "fontsize": "11", "labeljust": "l"}
SHOW_FIELDS = ("name", "op", "shape")
RANKDIRS = ("LR", "RL", "TB", "BT")

Edge = tuple  # (from key, to key, kind) in computation direction; kind: forward, backward, uses, tie,
#              carry (a loop's), repeat (from a folded block into the next, collapse="repeats")


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


def draw(outputs: Node | Sequence[Node], *, backward: bool = False, values: Mapping | None = None,
         show: Iterable[str] = ("name", "op", "shape"), formulas: bool = False, rankdir: str = "LR",
         collapse: bool | str = False, wrt: Node | Sequence[Node] | None = None,
         legend: bool = True, shape_ops: bool = False, check=None, unroll: bool = False) -> Drawing:
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
    collapse : ``True`` draws each layer cluster (parameters named ``layer.W``) as one
        box with its parameters and in/out shapes, so deep models stay readable;
        ``"repeats"`` draws op by op but folds each run of identical consecutive
        blocks (layers ``mlp.1`` … ``mlp.10`` with the same ops, shapes and wiring)
        into one box marked ``× N``, forward and backward alike (:mod:`.repeats`).
    wrt : what the backward graph differentiates with respect to; default:
        every parameter (every float input when the graph has none).
    legend : add a small legend of the node and edge styles used.
    shape_ops : also draw the backward pass's shape-only ops (``expand_dims``,
        ``reshape``, ``broadcast``, sums over size-1 axes) as nodes; by
        default they are folded into their neighbours, so the backward graph
        reads as in a textbook (``∂L/∂W₁ = (∂L/∂a₁)xᵀ``).
    unroll : draw each loop (:func:`symgrad.scan`) written out, one copy of its body per step (small
        fixed T); by default a loop is drawn as its body once, in a box marked ``× T``, with its carry
        edge looping back.
    check : a report of ``sg.check_grad(..., per_node=True)``: each op whose
        local derivative failed the check is drawn red (an octagon, the
        ``check_failed`` style) with a line giving its relative error, the
        first one in forward order marked "first".

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
    if not isinstance(rankdir, str) or rankdir not in RANKDIRS:
        raise RenderError(f"draw: rankdir must be one of {RANKDIRS}, got {rankdir!r}")
    if not (isinstance(collapse, str) and collapse == "repeats"):
        collapse = _flag("collapse", collapse)
    backward, formulas, legend, shape_ops = (
        _flag(k, v) for k, v in (("backward", backward), ("formulas", formulas),
                                 ("legend", legend), ("shape_ops", shape_ops)))
    if values is not None and not isinstance(values, Mapping):
        raise FeedError(f"draw: values must be a mapping of vars (nodes or names) to values, "
                        f"got {type(values).__name__}")
    failed = _failed_nodes(check)
    if _flag("unroll", unroll):
        from .loops import unroll as _unroll
        outs = _unroll(outs)
    scene = build_scene(outs, backward=backward, wrt=wrt, shape_ops=shape_ops, values=values)
    writer = _DotWriter(scene, Labels(scene, show, formulas), collapse, failed)
    return writer.write(rankdir, legend)


def _flag(what: str, value) -> bool:
    """A yes/no option of draw: a bool (or 0/1)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    hint = ' or "repeats"' if what == "collapse" else ""
    raise RenderError(f"draw: {what} must be True or False{hint}, got {value!r}")


def _check_show(show: Iterable[str]) -> tuple[str, ...]:
    if isinstance(show, str):
        show = (show,)
    try:
        fields = tuple(show)
    except TypeError:
        raise RenderError(f"draw: show must be a sequence of field names, got {show!r}") from None
    bad = [f for f in fields if not isinstance(f, str) or f not in SHOW_FIELDS]
    if bad:
        raise RenderError(f"draw: unknown show field(s) {bad}; choose from {SHOW_FIELDS}")
    return fields


def _failed_nodes(check) -> dict[Node, str]:
    """{node: note line} of the failed checks of a per-node gradient-check report (draw's ``check=``)."""
    if check is None:
        return {}
    checks = getattr(check, "checks", None)
    if not isinstance(checks, list) or not hasattr(check, "first_failure"):
        raise RenderError(f"draw: check must be the report of sg.check_grad(..., per_node=True), "
                          f"got {type(check).__name__}")
    first = check.first_failure
    notes = {}
    for c in checks:
        if c.failed:
            what = f"rel. error {c.error:.2g}" if c.status == "wrong" else "VJP failed"
            notes[c.node] = f"✗ {'first ' if c is first else ''}wrong ∂ ({what})"
    return notes


def _forward_style(n: Node, scene: Scene) -> str:
    if n.kind == "var":
        return "input"
    if n.kind in ("param", "const", "random", "buffer"):
        return n.kind
    if n.op is STATE_UPDATE:
        return "update"
    return "loss" if n is scene.loss else "op"


def _mode_caption(nodes) -> str:
    """The drawing's title when the graph depends on the mode: a training graph draws random nodes
    (dropout masks, ε) or updates buffers; an evaluation graph reads buffers (running statistics)."""
    nodes = list(nodes)
    randoms = [n.name for n in nodes if n.kind == "random"]
    updated = [n.inputs[1].name for n in nodes if n.op is STATE_UPDATE]
    read = [n.name for n in nodes if n.kind == "buffer" and n.name not in updated]
    parts = []
    if randoms:
        parts.append(f"random at each call: {', '.join(randoms)}")
    if updated:
        parts.append(f"a training step updates {', '.join(updated)}")
    if updated or randoms:
        return "training graph — " + "; ".join(parts)
    if read:
        return f"evaluation graph — reads {', '.join(read)}"
    return ""


def _grad_style(of: Node) -> str:
    """The style of the gradient box of forward node ``of``."""
    return "param_grad" if of.kind == "param" else "grad"


class _DotWriter:
    """Turns a :class:`~.scene.Scene` and its :class:`~.labels.Labels` into DOT statements."""

    def __init__(self, scene: Scene, labels: Labels, collapse: bool | str,
                 failed: Mapping[Node, str] | None = None):
        self.s = scene
        self.failed = dict(failed or {})
        self.labels = labels
        self.collapse = collapse is True and bool(scene.cluster)
        self.fold = collapse == "repeats" and bool(scene.cluster)
        self.repeats: dict[str, Repeat] = {}
        every = sorted(set(scene.forward) | set(scene.back_only), key=lambda n: n.id)
        self.key = {n: f"n{i}" for i, n in enumerate(every)}
        self.alias_key = {n: f"g{self.key[n][1:]}" for n in scene.aliases}

    def _items(self, drawn_back: list[Node]) -> list[_Item]:
        s, text = self.s, self.labels
        items = [_Item(self.key[n], _forward_style(n, s), ["loop"] if is_loop(n) else text.forward(n),
                       s.cluster.get(n))
                 if n not in self.failed else
                 _Item(self.key[n], "check_failed", text.forward(n) + [self.failed[n]], s.cluster.get(n))
                 for n in s.forward]
        for n in drawn_back:
            owner = s.owner.get(n)
            if owner is not None:
                items.append(_Item(self.key[n], _grad_style(owner), text.backward(n), s.cluster.get(n),
                                   rank_with=self.key[owner]))
            else:
                style = "backward_const" if n.is_leaf else "backward_op"
                items.append(_Item(self.key[n], style, ["loop"] if is_loop(n) else text.backward(n),
                                   s.cluster.get(n)))
        items += [_Item(self.alias_key[n], _grad_style(n), text.alias(n), s.cluster.get(n),
                        rank_with=self.key[n]) for n in s.aliases]
        return items

    def _edges(self, drawn_back: list[Node], items: list[_Item]) -> list[Edge]:
        s = self.s
        edges: list[Edge] = []
        for n in s.forward:
            for i in dict.fromkeys(n.inputs):
                edges.append((self.key[i], self.key[n], "forward"))
        for n in drawn_back:
            for i in s.drawn_inputs(n):
                edges.append((self.key[i], self.key[n], "uses" if i in s.forward_set else "backward"))
        for n in s.aliases:
            c = s.grads[n]
            edges.append((self.key[c], self.alias_key[n], "uses" if c in s.forward_set else "backward"))
        ties = [(item.rank_with, item.key, "tie") for item in items if item.rank_with is not None]
        tied = {(a, b) for a, b, _ in ties}
        return [e for e in edges if e[2] != "uses" or (e[0], e[1]) not in tied] + ties

    def write(self, rankdir: str, legend: bool) -> Drawing:
        drawn_back = [n for n in self.s.back_only if n not in self.s.hidden]
        items = self._items(drawn_back)
        edges = self._edges(drawn_back, items)
        items, edges, self.loops = expand_loops(self, items, edges)  # a loop: its body once, × T
        if self.collapse:
            items, edges = self._collapse(items, edges)
        elif self.fold:  # runs of identical blocks drawn once, × N
            items, edges, self.repeats = fold_repeats(items, edges, self._node_of(), self.s,
                                                      values=self.s.values is not None)
        return self._emit(items, edges, rankdir, legend)

    def _node_of(self) -> dict[str, Node]:
        """The node each drawn key shows (an alias box: the forward node it is the gradient of)."""
        node_of = {self.key[n]: n for n in self.s.forward + self.s.back_only}
        node_of.update({self.alias_key[n]: n for n in self.s.aliases})
        return node_of

    def _collapse(self, items: list[_Item], edges: list[Edge]) -> tuple[list[_Item], list[Edge]]:
        """Replace each cluster by one forward box and, with a backward graph, one
        gradient box; edges between the same two boxes are drawn once."""
        s = self.s
        node_of = self._node_of()
        ids = {c: k for k, c in enumerate(s.ordered_clusters())}
        members: dict[str, list[Node]] = {}
        box_of: dict[str, str] = {}
        for item in items:
            if item.cluster is not None and item.cluster in ids:  # (a loop's box stays as it is)
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
                    bad = [self.failed[m] for m in members[box] if m in self.failed]
                    new_items.append(_Item(box, "check_failed" if bad else "layer",
                                           self.labels.layer(item.cluster, members[box]) + bad[:1]))
                else:
                    tie = f"layer{ids[item.cluster]}"
                    new_items.append(_Item(box, "layer_grad", self.labels.layer_grads(item.cluster),
                                           rank_with=tie if tie in members else None))
        moved = [(box_of.get(a, a), box_of.get(b, b), kind) for a, b, kind in edges]
        ties = {(a, b) for a, b, kind in moved if kind == "tie"}
        new_edges: list[Edge] = []
        seen: set[tuple[str, str]] = set()
        for a, b, kind in moved:
            if a == b or (a, b) in seen or (kind != "tie" and (a, b) in ties):
                continue
            seen.add((a, b))
            new_edges.append((a, b, kind))
        return new_items, new_edges

    def _emit(self, items: list[_Item], edges: list[Edge], rankdir: str, legend: bool) -> Drawing:
        dot = Drawing(name="symgrad", graph_attr={"rankdir": rankdir, "newrank": "true", "fontname": FONT,
                                                  "nodesep": "0.3", "ranksep": "0.45"},
                      node_attr={"fontname": FONT, "fontsize": "12", "margin": "0.15,0.05"},
                      edge_attr={"fontname": FONT, "fontsize": "10"})
        used = list(dict.fromkeys(i.style for i in items))
        loops = getattr(self, "loops", {})
        clusters = (self.s.ordered_clusters() if not self.collapse else []) + list(loops)
        by_cluster: dict[str | None, list[_Item]] = {}
        for item in items:
            keep = not self.collapse or item.cluster in loops
            by_cluster.setdefault(item.cluster if keep else None, []).append(item)
        for item in by_cluster.get(None, []):
            _node(dot, item)
        for k, name in enumerate(clusters):
            if name not in by_cluster:
                continue
            repeat = self.repeats.get(name)
            if repeat is not None and repeat.clusters != [name]:  # a block of several clusters, × N
                if name != repeat.clusters[0]:
                    continue
                with dot.subgraph(name=f"cluster_{k}") as outer:
                    outer.attr(label=repeat.label, **LOOP_STYLE)
                    for item in by_cluster.get(repeat.block, []):  # nodes named by the block itself
                        _node(outer, item)
                    for j, inner in enumerate(c for c in repeat.clusters if c != repeat.block):
                        with outer.subgraph(name=f"cluster_{k}_{j}") as sub:
                            sub.attr(label=inner[len(repeat.block) + 1:], **CLUSTER_STYLE)
                            for item in by_cluster.get(inner, []):
                                _node(sub, item)
                continue
            with dot.subgraph(name=f"cluster_{k}") as sub:
                if name in loops:
                    sub.attr(label=loops[name][0], **LOOP_STYLE)
                elif repeat is not None:
                    sub.attr(label=repeat.label, **LOOP_STYLE)
                else:
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
            elif kind in ("carry", "repeat"):
                dot.edge(a, b, **CARRY_EDGE)
            else:
                dot.edge(a, b, **TIE_EDGE)
        cluster_of = {item.key: item.cluster for item in items
                      if item.cluster in by_cluster and item.cluster is not None}
        for a, b in order_edges(cluster_of, edges):  # each layer after the one feeding it: no staircase
            dot.edge(a, b, **ORDER_EDGE)
        params = [item.key for item in items if item.style == "param"]
        for p, op in beside_first_use(params, cluster_of, edges):  # W under · @ ·, not a column before
            dot.body.append(f"\t{{rank=same; {op}; {p}}}\n")
        for item in items:
            if item.rank_with is not None:
                dot.body.append(f"\t{{rank=same; {item.rank_with}; {item.key}}}\n")
        mode = _mode_caption(self.s.forward)
        if mode:
            dot.attr(label=mode, labelloc="t", fontsize="13", fontcolor="#334155")
        if legend:
            _legend(dot, used, {k for _, _, k in edges}, self.labels.loss_name)
        return dot


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
