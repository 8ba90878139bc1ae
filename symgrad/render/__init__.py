"""Drawing: a graph (and its backward graph) as a ``graphviz.Digraph``; SVG, PNG, PDF and DOT files.

:func:`draw` reads the graph and, with ``backward=True``, the adjoint map of
:func:`symgrad.adjoints`, and writes DOT text in pure Python: forward nodes
in one palette, backward nodes in purple, every gradient tied to the node it
is the gradient of by a dashed edge and a matching ``∂L/∂…`` label.
Parameters named by layer (``mlp.0.W``) are grouped into clusters, and
``collapse=True`` draws each cluster as one box.

The pipeline, one module a step: :mod:`.scene` (which nodes are drawn,
folded shape ops, clusters) → :mod:`.labels` (the boxes' texts) →
:mod:`.dot` (styles, edges, legend: the DOT text) → :mod:`.output`
(:func:`render`: SVG from the system or the embedded Graphviz, PNG, PDF);
:mod:`.layout` keeps layer clusters on one axis and :mod:`.measure` reads a
rendered SVG back (:func:`filled_fraction`).
"""
from .dot import (BACKWARD_EDGE, FORWARD_EDGE, NODE_STYLES, TIE_EDGE, USES_EDGE, Drawing,
                  draw)
from .labels import format_value, pretty_name
from .measure import Box, canvas_size, filled_fraction, svg_boxes
from .output import render, render_bytes

__all__ = ["draw", "render", "Drawing", "format_value", "pretty_name", "render_bytes",
           # measuring a rendered drawing: its boxes and the share of the canvas they fill
           "filled_fraction", "svg_boxes", "canvas_size", "Box",
           # the palette: DOT attributes of each kind of box and edge
           "NODE_STYLES", "FORWARD_EDGE", "BACKWARD_EDGE", "USES_EDGE", "TIE_EDGE"]
