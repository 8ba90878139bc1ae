"""Evaluate graph nodes with NumPy, and check feeds.

``evaluate`` runs each op's ``impl`` in topological order; params use
their ``.value``.  Feeds are keyed by node or by name; symbolic dims are
bound on first sight and must agree across feeds.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .errors import FeedError, GraphError
from .graph import Graph, Node, as_node_list, format_shape
from .ops.base import range_error


#: leaf kinds a feed may set (a fed random node is not drawn: its value is fixed, e.g. to check ε)
FEEDABLE = ("var", "param", "buffer", "random")


def resolve_feeds(graph: Graph, feeds: Mapping | None) -> dict[Node, np.ndarray]:
    """Map feeds keyed by node or name onto the graph's leaves, checking shapes and dtypes."""
    if feeds is not None and not isinstance(feeds, Mapping):
        raise FeedError(f"feeds must be a mapping of vars (nodes or names) to values, got {type(feeds).__name__}")
    feeds = dict(feeds or {})
    by_name = {n.name: n for n in graph.order if n.kind in FEEDABLE}
    out: dict[Node, np.ndarray] = {}
    for key, value in feeds.items():
        if isinstance(key, Node):
            node = key
            if node not in graph:
                raise FeedError(f"feed for {node.describe()}, which is not in the graph")
        elif isinstance(key, str):
            if key not in by_name:
                raise FeedError(f"unknown feed name {key!r}; the graph's inputs are "
                                f"{sorted(n.name for n in graph.vars)} and params {sorted(n.name for n in graph.params)}")
            node = by_name[key]
        else:
            raise FeedError(f"feed keys must be nodes or names, got {key!r}")
        if node.kind not in FEEDABLE:
            raise FeedError(f"only vars, params, buffers and random nodes can be fed, not {node.describe()}")
        out[node] = _check_value(node, value)
    dims: dict[str, tuple[int, str]] = {}
    for node in graph.order:
        if node.kind == "var" and node not in out:
            raise FeedError(f"missing feed for var {node.name!r} of shape {format_shape(node.shape)}")
        if node in out:
            _bind_dims(node, out[node].shape, dims)
    return out


def complete_feeds(graph: Graph, feeds: Mapping | None, seed: Any, what: str) -> dict[Node, np.ndarray]:
    """:func:`resolve_feeds`, plus a draw for every random node that is not fed (in graph order,
    from a Generator made from ``seed``)."""
    from .random import concrete_shape, draw, make_rng
    fed = resolve_feeds(graph, feeds)
    rng = make_rng(seed, what)  # checked even when the graph has nothing to draw
    randoms = [n for n in graph.randoms if n not in fed]
    if randoms:
        dims: dict = {}
        for node, arr in fed.items():
            dims.update((d, n) for d, n in zip(node.shape, arr.shape) if isinstance(d, str))
        for node in randoms:
            fed[node] = draw(node, concrete_shape(node, dims, what), rng)
    return fed


def feed_array(node: Node, value: Any, where: str) -> np.ndarray:
    """``value`` as an array for var ``node`` (shared by evaluate and compiled functions): integers
    for an int var (integral floats accepted), real numbers otherwise (left in their own dtype);
    ``where`` starts the error messages (``"feed for 'x'"``)."""
    try:
        arr = np.asarray(value)
    except Exception as e:  # noqa: BLE001  anything np.asarray rejects
        raise FeedError(f"{where}: cannot convert {type(value).__name__} to an array ({e})") from None
    if node.dtype == "int":
        if arr.dtype.kind in "iu":
            return arr
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
        raise FeedError(f"{where} holds integer class indices: expected integers, got dtype {arr.dtype}")
    if arr.dtype.kind not in "fiub":
        raise FeedError(f"{where}: expected numbers (real numbers: int, float or bool), got dtype {arr.dtype}")
    return arr


def _check_value(node: Node, value: Any) -> np.ndarray:
    arr = feed_array(node, value, f"feed for {node.name!r}")
    if node.dtype != "int" and arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if arr.ndim != len(node.shape):
        raise FeedError(f"feed for {node.name!r}: expected shape {format_shape(node.shape)}, got {arr.shape}")
    return arr


def _bind_dims(node: Node, shape: tuple, dims: dict) -> None:
    for want, got in zip(node.shape, shape):
        if isinstance(want, int):
            if want != got:
                raise FeedError(f"feed for {node.name!r}: expected shape {format_shape(node.shape)}, got {shape}")
        else:
            seen = dims.setdefault(want, (got, node.name))
            if seen[0] != got:
                raise FeedError(f"feed for {node.name!r}: dim {want!r} is {got} here but {seen[0]} "
                                f"in the feed for {seen[1]!r}")


def evaluate(nodes: Node | list[Node], feeds: Mapping | None = None, *, graph: Graph | None = None,
             seed: Any = None):
    """Evaluate ``nodes`` with NumPy.

    Parameters
    ----------
    nodes : a node or a list of nodes.
    feeds : values for the vars (and optionally params, buffers and random
        nodes, which are then not drawn), keyed by node or name.
    seed : for the random nodes (:mod:`symgrad.random`), drawn once per call
        in graph order: None (fresh entropy), an int >= 0 or a
        ``numpy.random.Generator``.

    Returns
    -------
    A NumPy array (a list of them for a list of nodes).

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x"); w = sg.param("w", 0.5)
    >>> float(sg.evaluate(w * x, {"x": 4.0}))
    2.0
    """
    single = isinstance(nodes, Node)
    outs = as_node_list(nodes, "evaluate")
    if graph is not None and (not isinstance(graph, Graph) or any(n not in graph for n in outs)):
        raise GraphError("evaluate: graph= must be the sg.Graph of the nodes evaluated")
    graph = graph or Graph(outs)
    values = run_graph(graph, complete_feeds(graph, feeds, seed, "evaluate"))
    result = [values[n] for n in outs]
    return result[0] if single else result


def run_graph(graph: Graph, fed: dict[Node, np.ndarray]) -> dict[Node, np.ndarray]:
    """Values of every node of ``graph`` given checked feeds."""
    values: dict[Node, np.ndarray] = {}
    for node in graph.order:
        if node in fed:
            values[node] = fed[node]
        elif node.is_leaf:
            values[node] = node.value
        else:
            args = [values[i] for i in node.inputs]
            if node.op.index_bound or node.op.input_range:
                _check_op_inputs(node, args)
            out = node.op.impl(*args, **dict(node.attrs))
            values[node] = tuple(out) if node.op.outputs is not None else np.asarray(out)  # several outputs
    return values


def _what(node: Node) -> str:
    return f"feed for {node.name!r}" if node.kind == "var" else node.describe()


def _check_op_inputs(node: Node, args: list) -> None:
    """The value checks an op declares (a class index bound, an input range), as compiled functions
    make them at entry: a FeedError naming the fed input."""
    op = node.op
    if op.index_bound:
        y, k = np.asarray(args[0]), node.attr(op.index_bound)
        if y.size and (y.min() < 0 or y.max() >= k):
            raise FeedError(f"{_what(node.inputs[0])}: class index out of range [0, {k}) "
                            f"(got {y.min()}..{y.max()}) for {op.name}")
    for i, bounds in enumerate(op.input_range):
        if bounds is not None:
            message = range_error(op, i, args[i], bounds)
            if message:
                raise FeedError(f"{_what(node.inputs[i])}: {message}")
