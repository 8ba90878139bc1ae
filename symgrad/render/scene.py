"""What a drawing shows, before any text: the forward nodes, the backward nodes,
which cotangent is drawn as the gradient of which node, the shape-only ops
folded away, and the layer clusters.

:func:`build_scene` reads the graph (and, for a backward drawing, the adjoint
map of :func:`symgrad.adjoints`); :mod:`.labels` writes the boxes' texts and
:mod:`.dot` the DOT statements from the :class:`Scene` it returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

import numpy as np

from ..autodiff import adjoints
from ..errors import GradError, RenderError
from ..evaluate import complete_feeds, run_graph
from ..graph import Graph, Node, as_node_list


@dataclass
class Scene:
    """The nodes of a drawing and how they relate; see :func:`build_scene`."""

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

    # read once the scene is built (build_scene fills the fields above)
    @cached_property
    def forward_set(self) -> set[Node]:
        return set(self.forward)

    @cached_property
    def hidden(self) -> set[Node]:
        """Backward nodes that get no box of their own."""
        return set(self.through) | set(self.absorbed.values()) | self.inline

    @cached_property
    def hidden_inputs_of(self) -> set[Node]:
        """Drawn shape ops (gradient boxes) whose formula and edges pass their first input on."""
        return {n for n in self.owner if self.fold and is_shape_op(n) and n not in self.absorbed}

    def passes_to(self, n: Node) -> Node:
        """The node a hidden shape op passes on (``n`` itself when it is drawn)."""
        while n in self.through:
            n = self.through[n]
        return n

    def drawn_inputs(self, n: Node) -> list[Node]:
        """The inputs an edge is drawn from: through hidden shape ops, and for a
        gradient box that shows a hidden node's computation, that node's inputs."""
        shown = self.absorbed.get(n, n)
        inputs = shown.inputs[:1] if shown in self.hidden_inputs_of else shown.inputs
        out = []
        for i in inputs:
            i = self.passes_to(i)
            out.extend(self.drawn_inputs(i) if i in self.inline else [i])
        return list(dict.fromkeys(out))

    def ordered_clusters(self) -> list[str]:
        """Cluster names in the order of their first forward node."""
        seen: dict[str, None] = {}
        for n in self.forward + self.back_only:
            c = self.cluster.get(n)
            if c is not None:
                seen.setdefault(c, None)
        return list(seen)


def build_scene(outs: list[Node], *, backward: bool, wrt: Any, shape_ops: bool,
                values: Mapping | None) -> Scene:
    """The scene of a drawing of ``outs``: with ``backward``, the backward graph of
    the one scalar output with respect to ``wrt``, its shape-only ops folded
    away unless ``shape_ops``; with ``values``, every drawn value computed."""
    graph = Graph(outs)
    scene = Scene(forward=list(graph.order))
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
        scene.values = run_graph(everything, complete_feeds(everything, values, None, "draw"))
    _assign_clusters(scene, outs)
    return scene


def _add_backward(scene: Scene, graph: Graph, outs: list[Node], wrt: Any) -> None:
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


def is_shape_op(n: Node) -> bool:
    """Ops that only move or copy entries: expand, reshape, broadcast, a sum over size-1 axes."""
    if n.is_leaf:
        return False
    if n.op.shape_only:
        return True
    if n.op.reduction == "sum":
        x = n.inputs[0]
        axes = range(x.ndim) if n.attr("axis") is None else n.attr("axis")
        return all(x.shape[a] == 1 for a in axes)
    return False


def _fold_shape_ops(scene: Scene) -> None:
    """Hide the backward pass's shape-only ops: one that is not a gradient box
    passes its input on; a gradient box that is one shows the computation of
    its input instead, when nothing else uses that input."""
    uses: dict[Node, int] = {}
    for n in scene.back_only:
        for i in dict.fromkeys(n.inputs):
            uses[i] = uses.get(i, 0) + 1
    back = set(scene.back_only)
    for n in scene.back_only:
        if (not n.is_leaf and n.op.layout == "transpose" and n not in scene.owner
                and scene.passes_to(n.inputs[0]) not in back):
            scene.inline.add(n)  # Wᵀ of a forward node: the formula shows it, the edge comes from W
            continue
        if not is_shape_op(n):
            continue
        src = n.inputs[0]
        if n not in scene.owner:
            scene.through[n] = src
        elif (src in back and src not in scene.owner and not is_shape_op(src) and not src.is_leaf
              and uses.get(src) == 1):
            scene.absorbed[n] = src


def layer_prefix(name: str | None) -> str | None:
    """The layer part of a dotted name (``mlp.0`` of ``mlp.0.W``), else None."""
    return name.rsplit(".", 1)[0] if name and "." in name else None


def _assign_clusters(scene: Scene, outs: list[Node]) -> None:
    """Layer clusters: params by name prefix; op nodes by name prefix or by the
    cluster of their param inputs; an unnamed op with one non-constant input
    (an activation) joins its input's cluster when it feeds a cluster (the
    next layer), not when it feeds the loss; constants used inside one
    cluster; backward nodes by the forward node they are the gradient of,
    their forward inputs, or their consumers."""
    cl = scene.cluster
    protected = set(outs) | ({scene.loss} if scene.loss is not None else set())
    for n in scene.forward:
        if n.kind in ("param", "op", "buffer", "random") and layer_prefix(n.name):
            cl[n] = layer_prefix(n.name)
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
    _assign_backward_clusters(scene)


def _assign_backward_clusters(scene: Scene) -> None:
    cl = scene.cluster
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
