"""Drawings of loops: the body once in a box marked × T with the carry edge looping back (forward and
backward graphs), or the loop written out with unroll=True; checked on the DOT text and the SVG."""
from __future__ import annotations

import html
import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.render.dot import CARRY_EDGE


def _rnn_loss(T="T"):
    rnn = sg.nn.RNN(3, 4, seed=0)
    x, y = sg.var("x", shape=(2, T, 3)), sg.var("y", shape=(2, T, 4))
    out, h = rnn(x)
    return (0.5 * sg.sum((out - y) ** 2)).named("L")


def _nodes(source: str) -> dict[str, str]:
    """DOT node id -> its label."""
    return {m[1]: m[2].strip('"') for m in re.finditer(r'^\s*(\w+) \[label=("[^"]*"|\S+)', source, flags=re.M)}


def _clusters(source: str) -> list[tuple[str, list[str]]]:
    """(label, node ids) of each cluster."""
    out = []
    for block in re.split(r"subgraph cluster_", source)[1:]:
        body = block.split("\n\t}")[0]
        label = re.search(r'label="([^"]*)"', body.splitlines()[1]) or re.search(r"label=(\S+)", body.splitlines()[1])
        out.append((label[1], re.findall(r"^\s*(\w+) \[", body, flags=re.M)))
    return out


def _carry_edges(source: str) -> list[tuple[str, str]]:
    color = CARRY_EDGE["color"]
    return re.findall(r"^\s*(\w+) -> (\w+) \[[^\]]*color=\"%s\"" % color, source, flags=re.M)


def test_forward_drawing_has_the_body_once_in_a_box_marked_times_T_with_the_carry_looping_back():
    src = sg.draw(_rnn_loss()).source
    labels = _nodes(src)
    (label, members), = [c for c in _clusters(src) if c[0].startswith("× T")]
    assert label == "× T   t = 1…T"
    inside = {labels[k].split("\\n")[0] for k in members}
    assert {"hₜ₋₁", "xₜ", "hₜ = tanh(·)", "zₜ = · + ·"} <= inside
    assert sum(lbl.startswith("hₜ = tanh") for lbl in labels.values()) == 1  # the body once
    (a, b), = _carry_edges(src)
    assert labels[a].startswith("hₜ = tanh") and labels[b].startswith("hₜ₋₁")
    assert "constraint=false" in re.search(rf"{a} -> {b} \[[^\]]*\]", src)[0]
    # the loop's outputs, fed by the body: the stacked hₜ
    assert any(lbl.startswith("hₜ, t = 1…T") for lbl in labels.values())


def test_backward_drawing_has_a_backward_loop_box_with_the_carried_delta():
    src = sg.draw(_rnn_loss(), backward=True).source
    labels = _nodes(src)
    titles = [c[0] for c in _clusters(src)]
    assert "× T   t = 1…T" in titles and "× T   backward loop, t = T…1" in titles
    (_, members), = [c for c in _clusters(src) if "backward loop" in c[0]]
    inside = {labels[k].split("\\n")[0] for k in members}
    assert {"δhₜ", "∂L/∂hₜ", "hₜ"} <= inside and any(t.startswith("δzₜ =") for t in inside)
    carries = [(labels[a].split("\\n")[0], labels[b].split("\\n")[0]) for a, b in _carry_edges(src)]
    assert ("hₜ = tanh(·)", "hₜ₋₁") in carries
    assert any(a.startswith("δhₜ₋₁") and b == "δhₜ" for a, b in carries)


def test_lstm_drawing_loops_both_carries_back():
    lstm = sg.nn.LSTM(3, 4, seed=0)
    _, (h, c) = lstm(sg.var("x", shape=(2, "T", 3)))
    src = sg.draw(sg.sum(h).named("L"), legend=False).source
    labels = _nodes(src)
    carries = sorted(labels[b].split("\\n")[0] for _, b in _carry_edges(src))
    assert carries == ["cₜ₋₁", "hₜ₋₁"]
    heads = {v.split("\\n")[0] for v in labels.values()}
    assert {"iₜ = σ(·)", "fₜ = σ(·)", "gₜ = tanh(·)", "oₜ = σ(·)"} <= heads


def test_unrolled_drawing_writes_the_loop_out_step_by_step():
    L = _rnn_loss(T=3)
    src = sg.draw(L, unroll=True).source
    heads = [v.split("\\n")[0] for v in _nodes(src).values()]
    assert not any(c[0].startswith("×") for c in _clusters(src)) and not _carry_edges(src)
    for t in "₁₂₃":
        assert f"h{t} = tanh(·)" in heads and f"z{t} = · + ·" in heads
    # the unrolled graph is the same function
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(2, 3, 3)), "y": rng.normal(size=(2, 3, 4))}
    from symgrad.render.loops import unroll
    np.testing.assert_allclose(sg.evaluate(unroll(L)[0], feeds), sg.evaluate(L, feeds), rtol=1e-12)
    with pytest.raises(sg.RenderError, match="fixed number of steps"):
        sg.draw(_rnn_loss(), unroll=True)


def test_loop_drawings_with_values_collapse_and_svg():
    L = _rnn_loss(T=4)
    rng = np.random.default_rng(1)
    feeds = {"x": rng.normal(size=(2, 4, 3)), "y": rng.normal(size=(2, 4, 4))}
    src = sg.draw(L, backward=True, values=feeds).source
    assert "× 4   t = 1…4" in src and "backward loop, t = 4…1" in src
    assert "× 4" in sg.draw(L, collapse=True).source
    from symgrad.render import render_bytes
    svg = render_bytes(sg.draw(L).source, "svg").decode("utf-8")
    texts = [html.unescape(t).replace("\xa0", " ") for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert "× 4   t = 1…4" in texts and "hₜ₋₁" in texts and "hₜ = tanh(·)" in texts
