"""Drawing: the DOT text of sg.draw and the SVG of sg.render, parsed as XML.

The SVG tests read node labels, fill colours and edges out of the rendered
file; values on the nodes are compared with NumPy computations written out
here, independently of symgrad.
"""
from __future__ import annotations

import math
import re
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import models
import symgrad as sg
from symgrad.errors import FeedError, GradError, GraphvizNotFoundError, RenderError
from symgrad.oneline import number

rmod = sys.modules["symgrad.render"]  # the module (sg.render is the function)
SVG = "{http://www.w3.org/2000/svg}"

FILL = {kind: attrs["fillcolor"] for kind, (attrs, _) in rmod.NODE_STYLES.items()}
PURPLE = rmod.BACKWARD_EDGE["color"]


# ----------------------------------------------------------------- helpers
def parse_svg(data: bytes | str) -> dict:
    """Nodes (DOT id -> text lines, fill), edges (DOT tail, head, stroke, dash,
    width) and clusters (title -> label, bounding box) of a Graphviz SVG."""
    root = ET.fromstring(data if isinstance(data, bytes) else data.encode("utf-8"))
    assert root.tag == SVG + "svg"
    nodes, edges, clusters = {}, [], {}
    for g in root.iter(SVG + "g"):
        cls, title = g.get("class"), g.find(SVG + "title")
        texts = [t.text or "" for t in g.findall(SVG + "text")]
        shapes = [e for e in g if e.tag in (SVG + "ellipse", SVG + "polygon", SVG + "path")]
        if cls == "node":
            fill = shapes[0].get("fill") if shapes else None
            xs = [float(t.get("x")) for t in g.findall(SVG + "text")]
            ys = [float(t.get("y")) for t in g.findall(SVG + "text")]
            nodes[title.text] = {"text": texts, "fill": fill, "xy": (np.mean(xs), np.mean(ys)) if xs else None}
        elif cls == "edge":
            tail, head = title.text.split("->")
            path = g.find(SVG + "path")
            edges.append({"tail": tail, "head": head, "stroke": path.get("stroke"),
                          "dash": path.get("stroke-dasharray"), "width": path.get("stroke-width")})
        elif cls == "cluster":
            pts = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", shapes[0].get("d") or shapes[0].get("points"))]
            box = (min(pts[0::2]), min(pts[1::2]), max(pts[0::2]), max(pts[1::2]))
            clusters[title.text] = {"label": texts, "box": box}
    return {"nodes": nodes, "edges": edges, "clusters": clusters}


def svg_of(dot, tmp_path: Path, name: str = "g.svg", **kw) -> dict:
    path = sg.render(dot, tmp_path / name, **kw)
    return parse_svg(path.read_bytes())


def find(svg: dict, first_line: str) -> str:
    """The DOT id of the one node whose first text line is ``first_line``."""
    hits = [k for k, v in svg["nodes"].items() if v["text"] and v["text"][0] == first_line]
    assert len(hits) == 1, (first_line, [v["text"] for v in svg["nodes"].values()])
    return hits[0]


def grad_box(svg: dict, target: str) -> str:
    """The DOT id of the gradient box ``∂L/∂<target>`` (whatever formula follows)."""
    head = f"∂L/∂{target}"
    hits = [k for k, v in svg["nodes"].items()
            if v["text"] and (v["text"][0] == head or v["text"][0].startswith(head + " ="))]
    assert len(hits) == 1, (head, [v["text"] for v in svg["nodes"].values()])
    return hits[0]


def drawn(svg: dict, style: str) -> dict[str, str]:
    """First label line -> DOT id of the nodes drawn in ``style`` (legend left out)."""
    return {v["text"][0]: k for k, v in svg["nodes"].items()
            if v["fill"] == FILL[style] and not k.startswith("legend_")}


def edge(svg: dict, a: str, b: str) -> dict:
    """The edge between two nodes, in either DOT direction."""
    hits = [e for e in svg["edges"] if {e["tail"], e["head"]} == {a, b}]
    assert len(hits) == 1, (a, b, hits)
    return hits[0]


def sig4(x: float) -> str:
    return number(x)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def perceptron():
    x, y = sg.var("x"), sg.var("y")
    w, b = sg.param("w", 0.5), sg.param("b", 0.1)
    z = (w * x + b).named("z")
    yhat = sg.sigmoid(z, name="yhat")
    L = sg.losses.bce(yhat, y, name="L")
    return L, {x: 1.5, y: 1.0}


def seed_network():
    L, _, _, feeds = models.seed_network()
    return L, feeds


def mlp_by_hand(sizes=(3, 4, 2)):
    """A 2-layer MLP from sg.param nodes named like sg.nn.MLP's (mlp.0.W ...)."""
    X = sg.var("X", shape=(5, sizes[0]))
    Y = sg.var("Y", shape=(5, sizes[-1]))
    h = X
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = sg.param(f"mlp.{i}.W", shape=(n_in, n_out), init="xavier", seed=i)
        b = sg.param(f"mlp.{i}.b", np.linspace(-0.1, 0.1, n_out))
        h = (h @ W + b).named(f"mlp.{i}.z")
        if i < len(sizes) - 2:
            h = sg.tanh(h, name=f"mlp.{i}.a")
    L = sg.losses.mse(h, Y, name="L")
    rng = np.random.default_rng(0)
    return L, {X: rng.normal(size=(5, sizes[0])), Y: rng.normal(size=(5, sizes[-1]))}


@pytest.fixture
def no_dot(monkeypatch, tmp_path):
    """No Graphviz `dot` anywhere: empty PATH and shutil.which finding nothing."""
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)


# ------------------------------------------------------------ perceptron
def test_perceptron_forward_nodes_styles_values_and_edges(tmp_path):
    L, feeds = perceptron()
    svg = svg_of(sg.draw(L, values=feeds), tmp_path)
    ids = {name: find(svg, name) for name in ("x", "y", "w", "b", "z = · + ·", "ŷ = σ(·)", "L = BCE(·, ·)")}
    nodes = svg["nodes"]
    assert nodes[ids["x"]]["fill"] == nodes[ids["y"]]["fill"] == FILL["input"]
    assert nodes[ids["w"]]["fill"] == nodes[ids["b"]]["fill"] == FILL["param"]
    assert nodes[ids["z = · + ·"]]["fill"] == FILL["op"]
    assert nodes[ids["L = BCE(·, ·)"]]["fill"] == FILL["loss"]
    z = 0.5 * 1.5 + 0.1
    p = sigmoid(z)
    assert nodes[ids["x"]]["text"] == ["x", "1.5"] and nodes[ids["w"]]["text"] == ["w", "0.5"]
    assert nodes[ids["z = · + ·"]]["text"][1] == sig4(z) == "0.85"
    assert nodes[ids["ŷ = σ(·)"]]["text"][1] == sig4(p) == "0.7006"
    assert nodes[ids["L = BCE(·, ·)"]]["text"][1] == sig4(-math.log(p)) == "0.3559"
    for a, b in [("z = · + ·", "ŷ = σ(·)"), ("b", "z = · + ·")]:
        e = edge(svg, ids[a], ids[b])
        assert (e["tail"], e["head"]) == (ids[a], ids[b])
        assert e["stroke"] == rmod.FORWARD_EDGE["color"] and e["dash"] is None
    wx = next(k for k, v in nodes.items() if v["text"][:1] == ["· × ·"])
    assert {e["tail"] for e in svg["edges"] if e["head"] == wx} == {ids["w"], ids["x"]}
    # no backward part at all
    assert not any(v["fill"] in (FILL["grad"], FILL["param_grad"]) for v in nodes.values())
    assert all(e["stroke"] != PURPLE for e in svg["edges"])


def test_perceptron_backward_gradients_are_tied_to_their_nodes(tmp_path):
    L, feeds = perceptron()
    svg = svg_of(sg.draw(L, backward=True, values=feeds), tmp_path)
    nodes = svg["nodes"]
    p = sigmoid(0.85)
    dz = p - 1.0                        # ∂L/∂z of BCE after a sigmoid, y = 1
    want = {"w": (dz * 1.5, "w"), "b": (dz, "b"), "z": (dz, "z = · + ·"), "ŷ": (-1.0 / p, "ŷ = σ(·)"),
            "L": (1.0, "L = BCE(·, ·)")}
    for target, (value, forward_label) in want.items():
        g = grad_box(svg, target)
        assert nodes[g]["text"][-1].endswith(sig4(value))
        f = find(svg, forward_label)
        tie = edge(svg, f, g)
        assert tie["stroke"] == PURPLE and tie["dash"]  # dashed, purple, from the node to its gradient
        assert (tie["tail"], tie["head"]) == (f, g)
    assert nodes[grad_box(svg, "w")]["text"] == ["∂L/∂w = · × ·", "-0.4491"]
    assert nodes[grad_box(svg, "w")]["fill"] == nodes[grad_box(svg, "b")]["fill"] == FILL["param_grad"]
    assert nodes[grad_box(svg, "z")]["fill"] == FILL["grad"]
    # σ′(z) is a backward op fed (dotted) by z, and feeding ∂L/∂z along a solid purple edge
    sp = find(svg, "σ′(·)")
    assert nodes[sp]["fill"] == FILL["backward_op"] and nodes[sp]["text"][-1] == sig4(p * (1 - p))
    uses = edge(svg, find(svg, "z = · + ·"), sp)
    assert uses["stroke"] == rmod.USES_EDGE["color"] and uses["dash"]
    flow = edge(svg, sp, grad_box(svg, "z"))
    assert flow["stroke"] == PURPLE and flow["dash"] is None and float(flow["width"]) == 2
    # gradient flows right to left: drawn reversed, so the consumer is the DOT tail
    assert (flow["tail"], flow["head"]) == (grad_box(svg, "z"), sp)
    # ∂L/∂b is the same gradient as ∂L/∂z (the + routes it on): its own box, fed by ∂L/∂z
    assert edge(svg, grad_box(svg, "z"), grad_box(svg, "b"))["stroke"] == PURPLE
    legend = [v["text"][0] for k, v in nodes.items() if k.startswith("legend_")]
    assert {"input", "parameter", "operation", "gradient ∂L/∂·", "parameter gradient", "backward operation"} <= set(legend)
    assert any("gradient flow" in t for t in legend) and any("gradient of" in t for t in legend)


def test_perceptron_formulas_on_the_nodes():
    L, feeds = perceptron()
    src = sg.draw(L, backward=True, formulas=True).source
    for label in ("z = w·x + b", "ŷ = σ(z)", "L = BCE(ŷ, y)", "∂L/∂w = ∂L/∂z · x",
                  "∂L/∂z = ∂L/∂ŷ · σ′(z)", "∂L/∂b = ∂L/∂z", "∂L/∂L = 1"):
        assert f'"{label}' in src or f"{label}\\n" in src, label


# ------------------------------------------------------ the seed network
def seed_reference():
    """The 3-3-3-2 network and its gradients written out in NumPy."""
    x, y = np.array([1.5, 2.5, 3.0]), np.array([1.0, 0.0])
    W1, W2, W3 = np.full((3, 3), 0.05), np.full((3, 3), 0.025), np.ones((2, 3))
    b1, b2, b3 = np.array([0.01, 0.02, 0.03]), np.array([0.01, 0.02, 0.03]), np.array([0.01, 0.02])
    a1 = W1 @ x + b1
    h1 = sigmoid(a1)
    a2 = W2 @ h1 + b2
    h2 = sigmoid(a2)
    a3 = W3 @ h2 + b3
    p = np.exp(a3 - a3.max()) / np.exp(a3 - a3.max()).sum()
    L = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    dp = (p - y) / (p * (1 - p)) / 2
    da3 = p * (dp - np.dot(dp, p))
    dW3 = np.outer(da3, h2)
    da2 = (W3.T @ da3) * h2 * (1 - h2)
    return {"a1": a1, "h1": h1, "a3": a3, "yhat": p, "L": L, "db3": da3, "dW3": dW3, "db2": da2}


def test_seed_network_values_gradients_and_textbook_formulas(tmp_path):
    L, feeds = seed_network()
    ref = seed_reference()
    assert np.allclose(np.floor(ref["a1"] * 100) / 100, [0.36, 0.37, 0.38])  # the notes' numbers
    svg = svg_of(sg.draw(L, backward=True, values=feeds, formulas=True), tmp_path)
    nodes = svg["nodes"]
    assert nodes[find(svg, "a₁ = W₁x + b₁")]["text"][1:] == ["(3,)"] + rmod.format_value(ref["a1"])
    assert nodes[find(svg, "ŷ = softmax(a₃)")]["text"][2:] == rmod.format_value(ref["yhat"])
    assert nodes[find(svg, "L = mean(BCE(ŷ, y))")]["text"][1] == sig4(ref["L"]) == "0.6982"
    db3 = find(svg, "∂L/∂b₃ = ∂L/∂a₃")
    assert nodes[db3]["text"][2:] == rmod.format_value(ref["db3"]) == ["[-0.5025, 0.5025]"]
    dW3 = find(svg, "∂L/∂W₃ = (∂L/∂a₃)h₂ᵀ")
    assert nodes[dW3]["text"][1] == "(2, 3)" and nodes[dW3]["text"][2:] == rmod.format_value(ref["dW3"])
    assert nodes[find(svg, "∂L/∂a₂ = ∂L/∂h₂ ⊙ σ′(a₂)")]["text"][2:] == rmod.format_value(ref["db2"])
    find(svg, "∂L/∂W₁ = (∂L/∂a₁)xᵀ")
    find(svg, "∂L/∂h₁ = W₂ᵀ(∂L/∂a₂)")
    # W₂ᵀ is written into the formula; the edge comes from W₂ itself (a dotted "uses" edge)
    dh1 = find(svg, "∂L/∂h₁ = W₂ᵀ(∂L/∂a₂)")
    assert edge(svg, find(svg, "W₂"), dh1)["stroke"] == rmod.USES_EDGE["color"]
    for name in ("W₁", "b₁", "W₂", "b₂", "W₃", "b₃"):
        g = next(k for k, v in nodes.items() if v["text"][0].startswith(f"∂L/∂{name} "))
        assert nodes[g]["fill"] == FILL["param_grad"]
        assert edge(svg, find(svg, name), g)["dash"]
    # no shape-only op is drawn by default; shape_ops=True shows them
    assert not any("expand" in v["text"][0] for v in nodes.values())
    src = sg.draw(L, backward=True, formulas=True, shape_ops=True).source
    assert "expand(" in src and "Σ(" in src


# ------------------------------------------------------------- clusters
def cluster_members(source: str) -> dict[str, list[str]]:
    """Node labels' first lines inside each ``subgraph cluster_k`` of DOT text."""
    out, current = {}, None
    for line in source.splitlines():
        m = re.match(r"\s*subgraph (cluster_\w+) \{", line)
        if m:
            current = m.group(1)
            out[current] = []
        elif current and line.strip() == "}":
            current = None
        elif current:
            lab = re.search(r'label="?([^"\\\]]*)', line)
            if lab and "->" not in line and not line.strip().startswith(("color", "fillcolor", "label")):
                out[current].append(lab.group(1))
    return out


def test_mlp_parameters_are_grouped_by_layer(tmp_path):
    L, feeds = mlp_by_hand()
    dot = sg.draw(L, backward=True, values=feeds, formulas=True)
    members = cluster_members(dot.source)
    assert set(members) == {"cluster_0", "cluster_1", "cluster_legend"}
    assert {"W", "b", "z = XW + b", "a = tanh(z)", "∂L/∂W = Xᵀ(∂L/∂z)"} <= set(members["cluster_0"])
    assert {"W", "b", "z = mlp.0.a @ W + b"} <= set(members["cluster_1"])
    assert not any(lab.startswith("L =") for m in members.values() for lab in m)
    svg = svg_of(dot, tmp_path)
    labels = {c["label"][0]: c["box"] for c in svg["clusters"].values()}
    assert set(labels) == {"mlp.0", "mlp.1", "legend"}
    x0, y0, x1, y1 = labels["mlp.0"]
    inside = [k for k, v in svg["nodes"].items()
              if x0 <= v["xy"][0] <= x1 and y0 <= v["xy"][1] <= y1]
    texts = [svg["nodes"][k]["text"][0] for k in inside]
    assert "a = tanh(z)" in texts and "∂L/∂W = Xᵀ(∂L/∂z)" in texts and "L = mean((mlp.1.z − Y)²)" not in texts
    # the gradient of mlp.0.W is the NumPy one
    X, Y = (np.asarray(v) for v in feeds.values())
    W0, b0, W1, b1 = (p.value for p in sg.Graph(L).params)
    a = np.tanh(X @ W0 + b0)
    dz1 = 2 * (a @ W1 + b1 - Y) / Y.size
    dz0 = (dz1 @ W1.T) * (1 - a ** 2)
    g = find(svg, "∂L/∂W = Xᵀ(∂L/∂z)")
    assert svg["nodes"][g]["text"][2:] == rmod.format_value(X.T @ dz0, shape=False)


def test_nn_mlp_layers_draw_as_clusters():
    model = sg.nn.MLP([3, 4, 2], activation="sigmoid", seed=1)
    L = sg.losses.mse(model(sg.var("X", shape=("batch", 3))), sg.var("Y", shape=("batch", 2)))
    members = cluster_members(sg.draw(L, backward=True).source)
    assert {"W", "b", "z = · + ·", "a = σ(·)"} <= set(members["cluster_0"])
    assert {"W", "b", "z = · + ·"} <= set(members["cluster_1"])


def chain(depth: int):
    h = sg.var("x", shape=(4,))
    for i in range(depth):
        W = sg.param(f"chain.{i}.W", shape=(4, 4), init="xavier", seed=i)
        b = sg.param(f"chain.{i}.b", shape=(4,))
        h = sg.tanh(h @ W + b)
    return sg.sum(h * h, name="L")


def test_collapse_keeps_a_100_layer_chain_small(tmp_path):
    L = chain(100)
    svg = svg_of(sg.draw(L, collapse=True), tmp_path)
    assert len(svg["nodes"]) <= 110
    boxes = drawn(svg, "layer")
    assert sorted(boxes) == sorted(f"chain.{i}" for i in range(100))
    first = svg["nodes"][boxes["chain.0"]]["text"]
    assert first == ["chain.0", "W (4, 4), b (4,)", "· @ · + tanh", "(4,) → (4,)"] or \
        first == ["chain.0", "W (4, 4), b (4,)", "@ + tanh", "(4,) → (4,)"]
    for i in range(99):
        e = edge(svg, boxes[f"chain.{i}"], boxes[f"chain.{i + 1}"])
        assert e["stroke"] == rmod.FORWARD_EDGE["color"]
    assert len(sg.Graph(L)) > 500  # what collapse saved
    back = svg_of(sg.draw(L, collapse=True, backward=True), tmp_path, "b.svg")
    others = [k for k in back["nodes"] if not k.startswith(("layer", "dlayer", "legend_"))]
    assert len(back["nodes"]) - len(others) <= 2 * 100 + 11 and len(others) < 10  # the loss and its gradients
    grads = drawn(back, "layer_grad")
    assert len(grads) == 100
    fwd = drawn(back, "layer")
    for i in (0, 50, 99):
        tie = edge(back, fwd[f"chain.{i}"], grads[f"∂L/∂chain.{i}"])
        assert tie["dash"] and tie["stroke"] == PURPLE


# ------------------------------------------------------------ golden DOT
GOLDEN_SMALL = r'''digraph symgrad {
	graph [fontname=Helvetica newrank=true nodesep=0.3 rankdir=LR ranksep=0.45]
	node [fontname=Helvetica fontsize=12 margin="0.15,0.05"]
	edge [fontname=Helvetica fontsize=10]
	n0 [label="x\n2" color="#2563eb" fillcolor="#dbeafe" shape=box style="rounded,filled"]
	n1 [label="w\n0.5" color="#b45309" fillcolor="#fef3c7" penwidth=1.5 shape=box style=filled]
	n2 [label="w·x\n1" color="#334155" fillcolor="#ffffff" group=forward shape=ellipse style=filled]
	n3 [label="y = σ(w·x)\n0.7311" color="#dc2626" fillcolor="#fee2e2" group=forward penwidth=2 shape=box style="rounded,filled,bold"]
	n4 [label="∂y/∂y = 1" color="#7c3aed" fillcolor="#f3e8ff" fontcolor="#3b0764" group=backward shape=box style="rounded,filled"]
	n5 [label="∂y/∂(w·x) = σ′(w·x)\n0.1966" color="#7c3aed" fillcolor="#f3e8ff" fontcolor="#3b0764" group=backward shape=box style="rounded,filled"]
	n6 [label="∂y/∂w = ∂y/∂(w·x) · x\n0.3932" color="#6d28d9" fillcolor="#e9d5ff" fontcolor="#3b0764" group=backward penwidth=2.5 shape=box style="rounded,filled,bold"]
	n1 -> n2 [arrowsize=0.7 color="#475569" penwidth=1.2]
	n0 -> n2 [arrowsize=0.7 color="#475569" penwidth=1.2]
	n2 -> n3 [arrowsize=0.7 color="#475569" penwidth=1.2]
	n6 -> n5 [arrowsize=0.7 color="#7c3aed" dir=back penwidth=2]
	n0 -> n6 [arrowsize=0.5 color="#a8a29e" constraint=false style=dotted]
	n3 -> n4 [arrowhead=none color="#7c3aed" penwidth=1.3 style=dashed]
	n2 -> n5 [arrowhead=none color="#7c3aed" penwidth=1.3 style=dashed]
	n1 -> n6 [arrowhead=none color="#7c3aed" penwidth=1.3 style=dashed]
	{rank=same; n3; n4}
	{rank=same; n2; n5}
	{rank=same; n1; n6}
	subgraph cluster_legend {
		color="#cbd5e1" fontcolor="#475569" fontsize=10 label=legend labeljust=l margin=6 style=rounded
		legend_input [label=input color="#2563eb" fillcolor="#dbeafe" fontsize=9 height=0.3 margin="0.14,0.02" shape=box style="rounded,filled"]
		legend_param [label=parameter color="#b45309" fillcolor="#fef3c7" fontsize=9 height=0.3 margin="0.14,0.02" penwidth=1.5 shape=box style=filled]
		legend_op [label=operation color="#334155" fillcolor="#ffffff" fontsize=9 height=0.3 margin="0.14,0.02" shape=ellipse style=filled]
		legend_loss [label="loss (scalar output)" color="#dc2626" fillcolor="#fee2e2" fontsize=9 height=0.3 margin="0.14,0.02" penwidth=2 shape=box style="rounded,filled,bold"]
		legend_grad [label="gradient ∂y/∂·" color="#7c3aed" fillcolor="#f3e8ff" fontcolor="#3b0764" fontsize=9 height=0.3 margin="0.14,0.02" shape=box style="rounded,filled"]
		legend_param_grad [label="parameter gradient" color="#6d28d9" fillcolor="#e9d5ff" fontcolor="#3b0764" fontsize=9 height=0.3 margin="0.14,0.02" penwidth=2.5 shape=box style="rounded,filled,bold"]
		legend_forward [label="──▶  forward" fontcolor="#475569" fontsize=9 height=0.25 margin="0.05,0.01" shape=plaintext]
		legend_backward [label="◀━━  gradient flow" fontcolor="#7c3aed" fontsize=9 height=0.25 margin="0.05,0.01" shape=plaintext]
		legend_tie [label="╌╌╌  gradient of" fontcolor="#7c3aed" fontsize=9 height=0.25 margin="0.05,0.01" shape=plaintext]
		legend_uses [label="┈┈▶  value used by backward" fontcolor="#a8a29e" fontsize=9 height=0.25 margin="0.05,0.01" shape=plaintext]
		legend_input -> legend_loss [style=invis]
		legend_loss -> legend_forward [style=invis]
		legend_forward -> legend_uses [style=invis]
		{rank=same; legend_input; legend_param; legend_op}
		{rank=same; legend_loss; legend_grad; legend_param_grad}
		{rank=same; legend_forward; legend_backward; legend_tie}
	}
}
'''


def small_graph():
    x = sg.var("x")
    w = sg.param("w", 0.5)
    return sg.sigmoid(w * x, name="y"), {x: 2.0}


def test_golden_dot_for_a_small_graph():
    y, feeds = small_graph()
    src = sg.draw(y, backward=True, values=feeds, formulas=True).source
    assert src == GOLDEN_SMALL
    # what the golden text says, checked on its own: the values are σ(1), σ′(1), 2σ′(1)
    s = sigmoid(1.0)
    assert f'label="y = σ(w·x)\\n{sig4(s)}"' in src
    assert f'∂y/∂(w·x) = σ′(w·x)\\n{sig4(s * (1 - s))}"' in src
    assert f'∂y/∂w = ∂y/∂(w·x) · x\\n{sig4(2 * s * (1 - s))}"' in src
    ranks = re.findall(r"\{rank=same; (n\d+); (n\d+)\}", src)
    label = dict(re.findall(r'\t(n\d+) \[label="([^"\\]*)', src))
    assert {(label[a], label[b].split(" = ")[0]) for a, b in ranks} == {
        ("y = σ(w·x)", "∂y/∂y"), ("w·x", "∂y/∂(w·x)"), ("w", "∂y/∂w")}


def test_dot_text_is_deterministic():
    y1, f1 = small_graph()
    first = sg.draw(y1, backward=True, values=f1, formulas=True).source
    again = sg.draw(y1, backward=True, values=f1, formulas=True).source
    noise = [sg.var(f"v{i}") * 2.0 for i in range(7)]  # other nodes made in between
    y2, f2 = small_graph()
    rebuilt = sg.draw(y2, backward=True, values=f2, formulas=True).source
    assert first == again == rebuilt and noise
    L1, _ = seed_network()
    L2, _ = seed_network()
    assert sg.draw(L1, backward=True, formulas=True).source == sg.draw(L2, backward=True, formulas=True).source


# -------------------------------------------------------------- rendering
def test_svg_renders_without_a_system_graphviz(no_dot, tmp_path):
    assert shutil.which("dot") is None
    L, feeds = perceptron()
    dot = sg.draw(L, backward=True, values=feeds)
    t0 = time.perf_counter()
    svg = svg_of(dot, tmp_path, "p.svg")
    first = time.perf_counter() - t0
    assert "Generated by graphviz" in (tmp_path / "p.svg").read_text()
    assert find(svg, "∂L/∂w = · × ·")
    t0 = time.perf_counter()
    svg_of(dot, tmp_path, "q.svg")
    second = time.perf_counter() - t0
    print(f"embedded renderer: first render {first:.3f} s, next {second:.3f} s")
    assert "<svg" in dot._repr_image_svg_xml()  # Jupyter display needs no `dot` either


@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_png_and_pdf_without_dot_raise_a_typed_error(no_dot, tmp_path, fmt):
    L, _ = perceptron()
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz") as info:
        sg.render(sg.draw(L), tmp_path / f"g.{fmt}")
    assert "brew install graphviz" in str(info.value) and fmt.upper() in str(info.value)
    assert isinstance(info.value, RenderError) and isinstance(info.value, sg.SymgradError)
    assert not list(tmp_path.glob("*g*.*"))  # nothing half-written
    with pytest.raises(GraphvizNotFoundError):
        sg.render(sg.draw(L), tmp_path / "g.svg", backend="system")


@pytest.mark.skipif(shutil.which("dot") is None, reason="the system Graphviz `dot` is not installed")
def test_system_dot_renders_svg_png_and_pdf(tmp_path):
    L, feeds = perceptron()
    dot = sg.draw(L, backward=True, values=feeds)
    system = svg_of(dot, tmp_path, "s.svg", backend="system")
    embedded = svg_of(dot, tmp_path, "e.svg", backend="embedded")
    assert {k: v["text"] for k, v in system["nodes"].items()} == {k: v["text"] for k, v in embedded["nodes"].items()}
    assert sorted((e["tail"], e["head"]) for e in system["edges"]) == \
        sorted((e["tail"], e["head"]) for e in embedded["edges"])
    png = sg.render(dot, tmp_path / "g.png").read_bytes()
    sharp = sg.render(dot, tmp_path / "h.png", dpi=192).read_bytes()
    assert png[:8] == sharp[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert int.from_bytes(sharp[16:20], "big") == pytest.approx(2 * width, rel=0.02)  # 192 dpi vs Graphviz's 96
    assert sg.render(dot, tmp_path / "g.pdf").read_bytes()[:5] == b"%PDF-"


def test_dot_text_output_and_atomic_writes(no_dot, tmp_path):
    L, _ = perceptron()
    dot = sg.draw(L)
    out = sg.render(dot, tmp_path / "g.dot")
    assert out.read_text(encoding="utf-8") == dot.source
    assert sg.render(dot.source, tmp_path / "g.svg").read_text().count('class="node"') == len(sg.Graph(L)) + 4
    (tmp_path / "old.svg").write_text("stale")
    sg.render(dot, tmp_path / "old.svg")
    assert parse_svg((tmp_path / "old.svg").read_bytes())["nodes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty_bin", "g.dot", "g.svg", "old.svg"]
    with pytest.raises(RenderError, match="unknown format 'jpeg'"):
        sg.render(dot, tmp_path / "g.jpeg")
    with pytest.raises(RenderError, match="format"):
        sg.render(dot, tmp_path / "g")
    with pytest.raises(RenderError, match="dpi"):
        sg.render(dot, tmp_path / "g.svg", dpi=0)
    with pytest.raises(RenderError, match="expected a graphviz graph or DOT text"):
        sg.render(42, tmp_path / "g.svg")
    with pytest.raises(RenderError, match="could not render"):
        sg.render("digraph { a -> }", tmp_path / "bad.svg")
    assert not (tmp_path / "bad.svg").exists()


def test_bad_drawing_requests_raise_typed_errors():
    L, feeds = perceptron()
    x = sg.var("x", shape=(3,))
    with pytest.raises(RenderError, match="unknown show field"):
        sg.draw(L, show=("name", "colour"))
    with pytest.raises(RenderError, match="rankdir"):
        sg.draw(L, rankdir="left")
    with pytest.raises(GradError, match="scalar"):
        sg.draw(sg.sigmoid(x) * sg.param("w", 1.0), backward=True)
    with pytest.raises(GradError, match="one scalar output"):
        sg.draw([L, L * 2.0], backward=True)
    with pytest.raises(RenderError, match="wrt"):
        sg.draw(L, wrt=sg.Graph(L).params)
    with pytest.raises(FeedError, match="missing feed for var 'y'"):
        sg.draw(L, values={"x": 1.0})


def test_show_fields_and_wrt():
    L, feeds = perceptron()
    w = sg.Graph(L).find("w")
    src = sg.draw(L, backward=True, wrt=w, show=("name",)).source
    assert "∂L/∂w" in src and "∂L/∂b" not in src
    assert "· + ·" not in src and "\tn5 [label=z " in src
    bare = sg.draw(L, show=("op",)).source
    assert '"· + ·"' in bare and "z =" not in bare
    vec = sg.draw(sg.sum(sg.var("v", shape=(2, 3)), name="s"), show=("name", "shape")).source
    assert 'label="v\\n(2, 3)"' in vec


def test_format_value_and_pretty_names():
    assert rmod.format_value(0.698123) == ["0.6981"]
    assert rmod.format_value(-1.5e-7) == ["-1.5e-7"]
    assert rmod.format_value(np.array([0.36, 0.37, 0.38])) == ["[0.36, 0.37, 0.38]"]
    assert rmod.format_value(np.full((3, 3), 0.05)) == ["[[0.05, 0.05, 0.05],", " [0.05, 0.05, 0.05],",
                                                        " [0.05, 0.05, 0.05]]"]
    big = np.arange(20.0).reshape(4, 5) - 3
    assert rmod.format_value(big) == ["(4, 5) mean 6.5", "min -3 · max 16"]
    assert rmod.format_value(big, shape=False)[0] == "mean 6.5"
    assert [rmod.pretty_name(n) for n in ("W1", "yhat", "y_hat2", "delta", "mlp.0.W", "loss")] == \
        ["W₁", "ŷ", "ŷ₂", "δ", "mlp.0.W", "loss"]
