"""Layout of big drawings: layer clusters side by side along the pipeline, not a staircase.

Graphviz's ``dot`` gives every node a rank (a column, with ``rankdir=LR``) and keeps a cluster's
nodes in one block; two clusters whose rank ranges overlap cannot stand side by side, so ``dot``
stacks them.  Left to itself, a layer's parameters (sources with no inputs) get the rank just
before their first use, which is the rank of the previous layer's activation: every layer then
overlaps the one before by a column, and a deep net is drawn as a diagonal staircase, each cluster
below and to the right of the last, the canvas mostly empty.

:func:`order_edges` adds invisible edges that start each cluster after the cluster feeding it:
from the node that leaves one cluster to the sources of the cluster it enters (its parameters and
constants; the gradient boxes follow them through their ``rank=same`` ties).  Consecutive layers
then take disjoint rank ranges and line up on one axis, forward on top and backward under it.

:func:`beside_first_use` puts each parameter on the rank of the first op that reads it (``W``
under ``· @ ·``), so a layer takes one column per op and the forward ops stay on one line.

Very deep nets stay one long band (about 800 pt of width per layer); wrapping the band into rows
is not done here: fold repeated layers with ``draw(..., collapse="repeats")`` instead.
"""
from __future__ import annotations

from typing import Iterable, Sequence

#: DOT attributes of the invisible ordering edges (weight 0: they only order ranks, never pull)
ORDER_EDGE = {"style": "invis", "weight": "0"}


def _constraining(kind: str) -> bool:
    return kind in ("forward", "backward", "tie")


def _dot_direction(a: str, b: str, kind: str) -> tuple[str, str]:
    """The (tail, head) of an edge as written in DOT: backward edges are drawn reversed."""
    return (b, a) if kind == "backward" else (a, b)


def order_edges(cluster_of: dict[str, str | None], edges: Sequence[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """Invisible (tail, head) DOT edges that place each cluster after the clusters that feed it.

    ``cluster_of`` maps each drawn key to its cluster (None outside any); ``edges`` are the
    drawing's ``(from, to, kind)`` edges.  For each edge that crosses from cluster A into cluster B
    (in DOT direction, along a constraining edge), the tail gets an invisible edge to every source
    of B: a node of B with no constraining edge coming in from inside B.

    Examples
    --------
    >>> order_edges({"a": "l0", "W": "l1", "m": "l1"}, [("a", "m", "forward"), ("W", "m", "forward")])
    [('a', 'W')]
    """
    fed: dict[str, set[str]] = {}
    crossing: list[tuple[str, str]] = []
    for a, b, kind in edges:
        if not _constraining(kind):
            continue
        tail, head = _dot_direction(a, b, kind)
        ca, cb = cluster_of.get(tail), cluster_of.get(head)
        if cb is not None and ca == cb:
            fed.setdefault(cb, set()).add(head)
        elif cb is not None and ca is not None:
            crossing.append((tail, cb))
    members: dict[str, list[str]] = {}
    for key, c in cluster_of.items():
        if c is not None:
            members.setdefault(c, []).append(key)
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for tail, cb in crossing:
        for src in members.get(cb, []):
            if src not in fed.get(cb, set()) and (tail, src) not in seen:
                seen.add((tail, src))
                out.append((tail, src))
    return out


def beside_first_use(params: Iterable[str], cluster_of: dict[str, str | None],
                     edges: Sequence[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """(param, op) pairs to draw on one rank: each parameter of a cluster beside the first op of its
    cluster that reads it (``W`` under ``· @ ·``, ``b`` under ``· + ·``), not a column before it.

    A layer then takes one column per op, its forward ops stay on one straight line, and its
    parameters (and their gradient boxes, tied to them) sit under the ops that use them.

    Examples
    --------
    >>> beside_first_use(["W"], {"W": "l1", "m": "l1"}, [("a", "m", "forward"), ("W", "m", "forward")])
    [('W', 'm')]
    """
    first: dict[str, str] = {}
    for a, b, kind in edges:
        if kind == "forward" and a not in first and cluster_of.get(a) is not None \
                and cluster_of.get(a) == cluster_of.get(b):
            first[a] = b
    return [(p, first[p]) for p in params if p in first]
