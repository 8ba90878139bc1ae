"""Reverse mode: the chain rule on the graph, producing new graph nodes.

``grad(y, wrt)`` walks the graph of ``y`` in reverse topological order and
asks each op for its vector-Jacobian product.  The result is built from
the same ops as the forward pass, so it can be evaluated, printed, drawn,
compiled and differentiated again.  Broadcasting is undone here, in
:func:`fit_to`, and nowhere else.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import GradError, GraphError, NotDifferentiableError
from .graph import Graph, Node, as_node_list, format_shape, is_static, mark_grad_of
from .ops import broadcast_like, broadcast_to, const
from .ops import sum as _sum


def fit_to(g: Node, node: Node) -> Node:
    """Make cotangent ``g`` have exactly ``node``'s shape.

    Sums over the axes that broadcasting added or stretched, then
    broadcasts up where ``g`` still has size-1 or missing axes.
    """
    if g.shape == node.shape:
        return g
    lead = g.ndim - node.ndim
    if lead > 0:
        g = _sum(g, axis=tuple(range(lead)))
    if g.ndim == node.ndim:
        stretched = tuple(i for i, (dg, dn) in enumerate(zip(g.shape, node.shape)) if dn == 1 and dg != 1)
        if stretched:
            g = _sum(g, axis=stretched, keepdims=True)
    if g.shape != node.shape:
        g = broadcast_to(g, node.shape) if is_static(node.shape) else broadcast_like(g, node)
    return g


def _zeros_like(node: Node) -> Node:
    if is_static(node.shape):
        return const(np.zeros(node.shape))
    return broadcast_like(const(0.0), node)


def grad(y: Node, wrt: Node | Sequence[Node]) -> Node | list[Node]:
    """Gradient nodes of scalar ``y`` with respect to ``wrt``.

    Parameters
    ----------
    y : a node of shape ``()``.
    wrt : a node or a list of nodes of ``y``'s graph (params or float vars,
        or intermediate nodes).

    Returns
    -------
    One gradient node per ``wrt`` entry (a single node when ``wrt`` is a
    node), each of its shape.

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> dx = sg.grad(x ** 3, x)
    >>> float(sg.evaluate(dx, {"x": 2.0}))
    12.0
    """
    single = isinstance(wrt, Node)
    targets = as_node_list(wrt, "grad")
    done = adjoints(y, targets)
    out = [done[w] if w in done else _zeros_like(w) for w in targets]
    return out[0] if single else out


def adjoints(y: Node, wrt: Sequence[Node]) -> dict[Node, Node]:
    """The cotangent node ∂y/∂n of every node n on a path from ``wrt`` to ``y``.

    Keys are forward nodes (``y`` itself maps to the seed 1); values are
    backward nodes, each of its key's shape.  ``grad`` reads its results
    from here, and the backprop-equation and drawing views use the whole map.
    Each value's ``grad_of`` lists the forward nodes it is the cotangent of.
    """
    if not isinstance(y, Node):
        raise GradError(f"grad: y must be a Node, got {type(y).__name__}")
    targets = as_node_list(wrt, "grad")
    if y.shape != ():
        raise GradError(f"grad: y must be a scalar (shape ()), got {y.describe()} of shape "
                        f"{format_shape(y.shape)}; reduce it first, e.g. sg.sum(y) or sg.mean(y)")
    graph = Graph(y)
    for w in targets:
        if w not in graph:
            raise GraphError(f"grad: {w.describe()} is not in the graph of {y.describe()}")
        if w.dtype == "int":
            raise GradError(f"grad: {w.describe()} holds integers (class indices) and has no gradient")
    return _backprop(graph, {y: [const(1.0)]}, targets)


def vjp_graph(outputs: Sequence[Node], cotangents: Sequence[Node], wrt: Sequence[Node]) -> dict[Node, Node]:
    """:func:`adjoints` seeded with a cotangent per output instead of 1 for a scalar: the map from every
    node on a path from ``wrt`` to ``outputs`` to its cotangent, Σ_k ⟨cotangent_k, ∂output_k/∂node⟩
    (an output listed twice gets the sum).  The loop body of :func:`symgrad.scan` is differentiated
    this way, with placeholder cotangents."""
    seeds: dict[Node, list[Node]] = {}
    for out, ct in zip(as_node_list(outputs, "vjp_graph"), as_node_list(cotangents, "vjp_graph")):
        seeds.setdefault(out, []).append(ct)
    return _backprop(Graph(list(seeds)), seeds, as_node_list(wrt, "vjp_graph"))


def _backprop(graph: Graph, seeds: dict[Node, list[Node]], targets: list[Node]) -> dict[Node, Node]:
    # nodes on a path from some target to y: every node of Graph(y) is y or one of its ancestors, so
    # these are the targets' descendants in it (one pass in topological order, for all targets at once)
    relevant: set[Node] = set(targets)
    for node in graph.order:
        if node not in relevant and any(i in relevant for i in node.inputs):
            relevant.add(node)

    pending: dict[Node, list[Node]] = {n: list(parts) for n, parts in seeds.items()}
    # a node of several outputs (a scan) collects one list of cotangents per output from its pickers
    per_output: dict[Node, dict[int, list[Node]]] = {}
    done: dict[Node, Node] = {}
    for node in reversed(graph.order):
        if node.op is not None and node.op.outputs is not None:
            if node in relevant and node in per_output:
                _multi_vjp(node, per_output.pop(node), relevant, pending)
            continue
        parts = pending.pop(node, None)
        if parts is None or node not in relevant:
            continue
        g = parts[0]
        for p in parts[1:]:
            g = g + p
        g = fit_to(g, node)
        done[node] = g
        mark_grad_of(g, node)  # provenance, on the node itself (``add`` passes one cotangent to both inputs)
        if node.is_leaf:
            continue
        source = node.inputs[0] if node.inputs else None
        if source is not None and source.op is not None and source.op.outputs is not None:  # a picker
            if source in relevant:
                per_output.setdefault(source, {}).setdefault(node.attr("index"), []).append(g)
            continue
        needs = tuple(i in relevant and i.dtype != "int" for i in node.inputs)
        if not any(needs):
            continue
        if node.op.vjp is None:
            idx = needs.index(True)
            raise NotDifferentiableError(
                f"grad: op {node.op.name} is not differentiable with respect to input {idx} "
                f"({node.inputs[idx].describe()})")
        cotangents = node.op.vjp(node, g, needs)
        for inp, need, ct in zip(node.inputs, needs, cotangents):
            if need and ct is not None:
                pending.setdefault(inp, []).append(ct)
    return done


def _multi_vjp(node: Node, parts: dict[int, list[Node]], relevant: set, pending: dict) -> None:
    """The VJP of a node of several outputs, given the cotangents its pickers collected."""
    gs = []
    for k, _ in enumerate(node.op.outputs(node)):
        ps = parts.get(k)
        g = None
        if ps:
            g = ps[0]
            for p in ps[1:]:
                g = g + p
        gs.append(g)
    needs = tuple(i in relevant and i.dtype != "int" for i in node.inputs)
    if not any(needs):
        return
    if node.op.vjp is None:
        raise NotDifferentiableError(f"grad: op {node.op.name} is not differentiable")
    for inp, need, ct in zip(node.inputs, needs, node.op.vjp(node, tuple(gs), needs)):
        if need and ct is not None:
            pending.setdefault(inp, []).append(ct)
