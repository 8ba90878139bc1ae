"""Repeated blocks drawn once: ``draw(..., collapse="repeats")`` folds each run of identical
consecutive blocks (the ten 16 → 16 hidden layers of a deep MLP, the layers of a transformer
encoder) into one box marked ``× N``, in the forward and in the backward drawing alike.

A *block* is the set of layer clusters sharing a name prefix up to its first integer part
(``mlp.3`` for cluster ``mlp.3``; ``enc.layers.1`` for ``enc.layers.1.self_attn`` and
``enc.layers.1.linear1``).  Two blocks are identical when their boxes, in drawing order, have the
same style, kind, op, shape, dtype and names relative to the block (``W``, ``z``, ``∂L/∂a``),
and the same edges among themselves and to the outside (by box position, direction and kind).
Only parameters' *values* differ, so one block stands for all.

:func:`fold_repeats` keeps the first block of each run of two or more, marked
``first … last × N`` in the loop style of :mod:`.loops`; the run's other boxes are dropped,
edges that entered or left any block of the run enter or leave the kept block at the same place,
and the edges from one block to the next become an orange ``repeat`` edge looping back, drawn as
a loop's carry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..graph import Node
from .scene import Scene


@dataclass
class Repeat:
    """One folded run: the kept block, the names of its first and last block and their count."""
    block: str
    first: str
    last: str
    count: int
    clusters: list[str] = field(default_factory=list)
    values: bool = False  # the boxes show values: those of the first block

    @property
    def label(self) -> str:
        shown = f"   (values of {self.first})" if self.values else ""
        return f"{self.first} … {self.last}   × {self.count}{shown}"


def block_of(cluster: str | None) -> str | None:
    """The block a cluster belongs to: its name up to its first integer part (None without one).

    Examples
    --------
    >>> block_of("mlp.3"), block_of("enc.layers.1.self_attn"), block_of("head")
    ('mlp.3', 'enc.layers.1', None)
    """
    if cluster is None:
        return None
    parts = cluster.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i + 1])
    return None


def _local(name: str | None, block: str) -> str | None:
    """A name relative to its block: ``W`` of ``mlp.3.W``, ``""`` for the block's own cluster."""
    if name is None or name == block:
        return "" if name is not None else None
    return name[len(block) + 1:] if name.startswith(block + ".") else name


def _attr_text(n: Node) -> str:
    def simple(v: Any) -> str:
        if isinstance(v, (int, float, str, bool, type(None))):
            return repr(v)
        if isinstance(v, tuple):
            return "(" + ",".join(simple(x) for x in v) + ")"
        return type(v).__name__
    return ";".join(f"{k}={simple(v)}" for k, v in n.attrs) if not n.is_leaf else ""


def _describe(n: Node, style: str, block: str, scene: Scene) -> tuple:
    owner = scene.owner.get(n)
    const = repr(n.value.tolist()) if n.kind == "const" and getattr(n.value, "size", 2) <= 16 else None
    return (style, n.kind, n.op.name if n.op is not None else None, n.shape, n.dtype,
            _local(n.name, block), _local(owner.name, block) if owner is not None else None,
            _attr_text(n), const)


def _signatures(blocks: dict[str, list], node_of: dict[str, Node], edges: list, scene: Scene) -> dict[str, tuple]:
    index = {item.key: (b, i) for b, members in blocks.items() for i, item in enumerate(members)}
    inner: dict[str, set] = {b: set() for b in blocks}
    outer: dict[str, set] = {b: set() for b in blocks}
    for a, b, kind in edges:
        ia, ib = index.get(a), index.get(b)
        if ia is not None and ib is not None and ia[0] == ib[0]:
            inner[ia[0]].add((ia[1], ib[1], kind))
            continue
        if ia is not None:
            outer[ia[0]].add((ia[1], "out", kind))
        if ib is not None:
            outer[ib[0]].add((ib[1], "in", kind))
    sigs = {}
    for b, members in blocks.items():
        boxes = tuple((_local(item.cluster, b),) + _describe(node_of[item.key], item.style, b, scene)
                      for item in members)
        sigs[b] = (boxes, tuple(sorted(inner[b])), tuple(sorted(outer[b])))
    return sigs


def fold_repeats(items: list, edges: list, node_of: dict[str, Node], scene: Scene,
                 min_count: int = 2, values: bool = False) -> tuple[list, list, dict[str, Repeat]]:
    """Items and edges with each run of ≥ ``min_count`` identical consecutive blocks folded into its
    first block (``values``: its boxes show values, those of the first block); also returns ``{cluster name: Repeat}`` for the clusters of the kept blocks."""
    blocks: dict[str, list] = {}
    for item in items:
        b = block_of(item.cluster)
        if b is not None and item.key in node_of:
            blocks.setdefault(b, []).append(item)
    if len(blocks) < min_count:
        return items, edges, {}
    sigs = _signatures(blocks, node_of, edges, scene)
    order = list(blocks)
    runs: list[list[str]] = []
    for b in order:
        if runs and sigs[runs[-1][-1]] == sigs[b]:
            runs[-1].append(b)
        else:
            runs.append([b])
    rep_of: dict[str, str] = {}     # dropped key -> the kept key at the same place
    block_at: dict[str, str] = {}   # key of a folded run -> its block
    repeats: dict[str, Repeat] = {}
    for run in runs:
        if len(run) < min_count:
            continue
        kept = blocks[run[0]]
        rep = Repeat(run[0], run[0], run[-1], len(run),
                     list(dict.fromkeys(item.cluster for item in kept)), values)
        for c in rep.clusters:
            repeats[c] = rep
        for b in run:
            for pos, item in enumerate(blocks[b]):
                block_at[item.key] = b
                if b != run[0]:
                    rep_of[item.key] = kept[pos].key
    if not repeats:
        return items, edges, {}
    items = [item for item in items if item.key not in rep_of]
    new_edges: list = []
    seen: set = set()
    for a, b, kind in edges:
        ba, bb = block_at.get(a), block_at.get(b)
        if ba is not None and bb is not None and ba != bb and kind in ("forward", "backward"):
            kind = "repeat"  # from one block to the next: drawn looping back, as a loop's carry
        a, b = rep_of.get(a, a), rep_of.get(b, b)
        if a == b or (a, b, kind) in seen:
            continue
        seen.add((a, b, kind))
        new_edges.append((a, b, kind))
    return items, new_edges, repeats
