"""Measuring a drawing: the boxes of the nodes and clusters of an SVG that Graphviz wrote, and
how much of the canvas they cover.

:func:`svg_boxes` reads the SVG text (the ``<g class="node">`` and ``<g class="cluster">`` groups,
their polygons, ellipses and paths) and returns each box in canvas coordinates (points, y down);
:func:`filled_fraction` is the area of the union of those boxes over the canvas area: 1 for a
drawing with no empty space, small for one laid out as a diagonal staircase.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree import ElementTree

from ..errors import RenderError

_SVG = "{http://www.w3.org/2000/svg}"
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Box:
    """One node or cluster of a rendered drawing: its kind (``"node"`` or ``"cluster"``), its DOT id
    (``n12``, ``cluster_3``), its text (a cluster's label, a node's lines joined by newlines) and
    its bounding box in canvas points (``x0 < x1``, ``y0 < y1``, y growing downwards)."""
    kind: str
    id: str
    text: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2


def _transform(text: str | None):
    """The point map of a Graphviz ``transform="scale(s t) rotate(0) translate(x y)"``."""
    sx = sy = 1.0
    tx = ty = 0.0
    if text:
        m = re.search(r"scale\(([^)]*)\)", text)
        if m:
            nums = [float(v) for v in _NUMBER.findall(m.group(1))]
            sx, sy = (nums[0], nums[-1]) if nums else (1.0, 1.0)
        m = re.search(r"translate\(([^)]*)\)", text)
        if m:
            nums = [float(v) for v in _NUMBER.findall(m.group(1))]
            tx, ty = (nums + [0.0, 0.0])[:2]
    return lambda x, y: (sx * (x + tx), sy * (y + ty))


def _shape_points(g) -> list[tuple[float, float]]:
    """The points that bound a group's shapes (not its text)."""
    pts: list[tuple[float, float]] = []
    for el in g:
        tag = el.tag.replace(_SVG, "")
        if tag == "polygon":
            nums = [float(v) for v in _NUMBER.findall(el.get("points", ""))]
            pts += list(zip(nums[0::2], nums[1::2]))
        elif tag == "ellipse":
            cx, cy, rx, ry = (float(el.get(k, 0)) for k in ("cx", "cy", "rx", "ry"))
            pts += [(cx - rx, cy - ry), (cx + rx, cy + ry)]
        elif tag == "path":
            nums = [float(v) for v in _NUMBER.findall(el.get("d", ""))]
            pts += list(zip(nums[0::2], nums[1::2]))
        elif tag in ("g", "a"):
            pts += _shape_points(el)
    return pts


def _text(g) -> str:
    return "\n".join("".join(t.itertext()) for t in g.iter(f"{_SVG}text"))


def canvas_size(svg_text: str) -> tuple[float, float]:
    """The canvas (width, height) of an SVG in points, from its ``viewBox`` (else width/height).

    Examples
    --------
    >>> canvas_size('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 80"></svg>')
    (120.0, 80.0)
    """
    root = _parse(svg_text)
    box = root.get("viewBox")
    if box:
        nums = [float(v) for v in _NUMBER.findall(box)]
        if len(nums) == 4:
            return nums[2], nums[3]
    try:
        return (float(_NUMBER.match(root.get("width", "")).group()),
                float(_NUMBER.match(root.get("height", "")).group()))
    except AttributeError:
        raise RenderError("measure: the SVG has neither a viewBox nor a width and height") from None


def _parse(svg_text: str):
    if isinstance(svg_text, bytes):
        svg_text = svg_text.decode("utf-8")
    if not isinstance(svg_text, str):
        raise RenderError(f"measure: expected SVG text, got {type(svg_text).__name__}")
    try:
        return ElementTree.fromstring(svg_text.encode("utf-8"))
    except ElementTree.ParseError as e:
        raise RenderError(f"measure: not a well-formed SVG ({e})") from None


def svg_boxes(svg_text: str) -> list[Box]:
    """The nodes and clusters of a Graphviz SVG, each as a :class:`Box` in canvas points.

    Examples
    --------
    >>> import symgrad as sg
    >>> from symgrad.render import render_bytes
    >>> x, w = sg.var("x"), sg.param("w", 0.5)
    >>> svg = render_bytes(sg.draw(sg.sigmoid(w * x), legend=False).source).decode()
    >>> sorted(b.kind for b in svg_boxes(svg))
    ['node', 'node', 'node', 'node']
    """
    root = _parse(svg_text)
    graph = next((g for g in root.iter(f"{_SVG}g") if g.get("class") == "graph"), None)
    if graph is None:
        raise RenderError("measure: the SVG has no Graphviz graph group (<g class=\"graph\">)")
    to_canvas = _transform(graph.get("transform"))
    boxes = []
    for g in graph.iter(f"{_SVG}g"):
        kind = g.get("class")
        if kind not in ("node", "cluster"):
            continue
        pts = [to_canvas(x, y) for x, y in _shape_points(g)]
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        title = g.find(f"{_SVG}title")
        boxes.append(Box(kind, title.text if title is not None else "", _text(g),
                         min(xs), min(ys), max(xs), max(ys)))
    return boxes


def union_area(boxes) -> float:
    """Area of the union of axis-aligned boxes (anything with x0, y0, x1, y1), by a sweep over x.

    Examples
    --------
    >>> union_area([Box("node", "a", "", 0, 0, 2, 2), Box("node", "b", "", 1, 1, 3, 3)])
    7.0
    """
    rects = [(b.x0, b.y0, b.x1, b.y1) for b in boxes if b.x1 > b.x0 and b.y1 > b.y0]
    xs = sorted({x for r in rects for x in (r[0], r[2])})
    total = 0.0
    for left, right in zip(xs, xs[1:]):
        spans = sorted((r[1], r[3]) for r in rects if r[0] <= left and r[2] >= right)
        covered, end = 0.0, float("-inf")
        for y0, y1 in spans:
            if y1 <= end:
                continue
            covered += y1 - max(y0, end)
            end = y1
        total += covered * (right - left)
    return total


def filled_fraction(svg_text: str) -> float:
    """The share of a drawing's canvas covered by its boxes: the area of the union of the node and
    cluster boxes of a Graphviz SVG over the canvas area (edges and margins count as empty).

    A drawing laid out as a diagonal staircase of layer clusters scores low (most of the canvas
    is the empty triangles beside the stairs); one whose clusters tile a band scores high.

    Examples
    --------
    >>> import symgrad as sg
    >>> from symgrad.render import render_bytes, filled_fraction
    >>> x, w = sg.var("x"), sg.param("w", 0.5)
    >>> svg = render_bytes(sg.draw(sg.sigmoid(w * x), legend=False).source).decode()
    >>> 0.0 < filled_fraction(svg) < 1.0
    True
    """
    width, height = canvas_size(svg_text)
    if width <= 0 or height <= 0:
        raise RenderError(f"measure: the SVG canvas is empty ({width} × {height})")
    return union_area(svg_boxes(svg_text)) / (width * height)
