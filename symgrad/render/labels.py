"""The texts in a drawing's boxes: node names (``z₁``, ``ŷ``), gradient labels
(``∂L/∂a₂``), formulas (``σ(z₁)``, ``W₂ᵀ(∂L/∂a₂)``), shapes and values.

How an op is written comes from its declaration, through the one text
printer of :mod:`symgrad.oneline` (:func:`~symgrad.oneline.apply_text`,
:func:`~symgrad.oneline.blank_text`); this module only decides what each
operand is called in a drawing: a name, the ``∂L/∂…`` of the node a
gradient belongs to, a number, or its own formula.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np

from ..graph import Node, format_shape
from ..oneline import ATOM, FRAC, NEG, Operand, apply_text, blank_text, const_text, number
from ..ops.state import STATE_UPDATE
from ..random import describe_distribution
from .scene import Scene, layer_prefix

SMALL_ARRAY = 9   # arrays with at most this many entries (and ≤ 6 columns) are shown in full
LINE_WIDTH = 30   # a "lhs = rhs" header longer than this is broken after "="
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eta": "η",
          "theta": "θ", "lambda": "λ", "mu": "μ", "sigma": "σ", "tau": "τ", "phi": "φ", "omega": "ω"}


def pretty_name(name: str) -> str:
    """Unicode form of a node name for drawings: ``z1`` → ``z₁``, ``yhat`` → ``ŷ``, ``delta2`` → ``δ₂``.

    Dotted layer names keep their prefix (``mlp.0.W`` stays as it is).

    Examples
    --------
    >>> from symgrad.render import pretty_name
    >>> pretty_name("W1"), pretty_name("y_hat"), pretty_name("mlp.0.W")
    ('W₁', 'ŷ', 'mlp.0.W')
    """
    if "." in name:
        return name
    m = re.fullmatch(r"([^\W\d_]+?)(_?hat)?_?(\d*)", name)
    if not m:
        return name
    base, hat, digits = m.groups()
    base = _GREEK.get(base, base)
    if hat and len(base) == 1:
        base += "\u0302"
    elif hat:
        base += hat
    return unicodedata.normalize("NFC", base + digits.translate(_SUB))


def format_value(value: Any, *, shape: bool = True) -> list[str]:
    """Lines that show a value: scalars to 4 significant digits, small arrays
    in full, larger ones as shape (unless ``shape=False``), mean, min and max.

    Examples
    --------
    >>> from symgrad.render import format_value
    >>> format_value(0.698123)
    ['0.6981']
    >>> format_value([[1, 2], [3, 4]])
    ['[[1, 2],', ' [3, 4]]']
    >>> format_value(range(100))
    ['(100,) mean 49.5', 'min 0 · max 99']
    """
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        return [number(float(a))]
    if a.size <= SMALL_ARRAY and a.ndim <= 2 and a.shape[-1] <= 6 and a.size > 0:
        if a.ndim == 1:
            return ["[" + ", ".join(number(v) for v in a) + "]"]
        rows = ["[" + ", ".join(number(v) for v in row) + "]" for row in a]
        return ["[" + rows[0] + ","] + [" " + r + "," for r in rows[1:-1]] + [" " + rows[-1] + "]"] \
            if len(rows) > 1 else ["[" + rows[0] + "]"]
    if a.size == 0:
        return [f"{format_shape(a.shape)} empty"]
    mean = f"mean {number(float(a.mean()))}"
    return [f"{format_shape(a.shape)} {mean}" if shape else mean,
            f"min {number(float(a.min()))} · max {number(float(a.max()))}"]


def _shapes(nodes: list[Node]) -> str:
    shapes = list(dict.fromkeys(format_shape(n.shape) for n in dict.fromkeys(nodes)))
    return ", ".join(shapes) if shapes else "·"


class Labels:
    """The text lines of each box of a :class:`~.scene.Scene`.

    ``show`` holds the fields a box shows (``"name"``, ``"op"``, ``"shape"``);
    with ``formulas`` an op box shows its formula (``σ(z₁)``), else its op
    with blank inputs (``σ(·)``).  ``where`` is the cluster a box is drawn
    in: names of its own layer drop their layer prefix there.
    """

    def __init__(self, scene: Scene, show: tuple, formulas: bool):
        self.s = scene
        self.show = show
        self.formulas = formulas
        self.loss_name = pretty_name(scene.loss.name) if scene.loss is not None and scene.loss.name else "L"
        # op labels of unnamed forward nodes, counted: a label used once can name its node (∂L/∂BCE)
        self.label_count: dict[str, int] = {}
        for n in scene.forward:
            if n.kind == "op" and not n.name:
                self.label_count[n.op.label] = self.label_count.get(n.op.label, 0) + 1

    # ---------------------------------------------------------- names
    def short(self, n: Node, where: str | None) -> str:
        """The name of a named node, dropping its layer prefix inside its own cluster."""
        name = n.name
        if layer_prefix(name) is not None and layer_prefix(name) == where:
            return pretty_name(name.rsplit(".", 1)[1])
        return pretty_name(name)

    def grad_label(self, n: Node, where: str | None) -> str:
        """``∂L/∂n``, with ``n`` by name, by its op label when that label is a
        word used by no other node (``∂L/∂BCE``), or by its formula."""
        if n is self.s.loss:
            target = self.loss_name
        elif n.name:
            target = self.short(n, where)
        elif n.kind == "const":
            target = const_text(n)
        elif n.kind == "op" and n.op.label.isalpha() and self.label_count.get(n.op.label, 0) == 1:
            target = n.op.label
        else:
            text, prec = self._formula(n, where, 1)
            target = text if prec >= ATOM else f"({text})"
        return f"∂{self.loss_name}/∂{target}"

    # ------------------------------------------------------- formulas
    def _operand(self, n: Node, where: str | None, depth: int) -> Operand:
        """How a formula refers to ``n`` and how tightly that text binds: its
        name, ∂L/∂… for a gradient, a number for a scalar constant, or its own
        formula (``depth`` levels deep at most)."""
        s = self.s
        if n in s.through:
            return self._operand(s.through[n], where, depth)
        if n in s.inline:
            return self._formula(n, where, depth)
        if n in s.owner:
            return self.grad_label(s.owner[n], where), FRAC
        if n.name:
            return self.short(n, where), ATOM
        if n.kind == "const":
            text = const_text(n)
            return text, (NEG if text.startswith("-") else ATOM)
        if depth <= 0:
            return "…", ATOM
        return self._formula(n, where, depth - 1)

    def formula(self, n: Node, where: str | None) -> str:
        """The op applied to the inputs: ``σ(z₁)``, ``W₂ᵀ(∂L/∂a₂)``, ``w·x + b``."""
        return self._formula(n, where, 2)[0]

    def _formula(self, n: Node, where: str | None, depth: int) -> Operand:
        n = self.s.absorbed.get(n, n)
        if n.is_leaf:
            return self._operand(n, where, depth)
        if n in self.s.hidden_inputs_of:
            return self._operand(n.inputs[0], where, depth)
        return apply_text(n, [self._operand(i, where, depth) for i in n.inputs])

    # ----------------------------------------------------------- boxes
    def _header(self, lhs: str | None, rhs: str | None) -> list[str]:
        if lhs and rhs:
            joined = f"{lhs} = {rhs}"
            return [joined] if len(joined) <= LINE_WIDTH else [f"{lhs} =", rhs]
        return [t for t in (lhs, rhs) if t]

    def _tail(self, n: Node) -> list[str]:
        lines = []
        if "shape" in self.show and n.shape != ():
            lines.append(format_shape(n.shape))
        if self.s.values is not None and not (n.kind == "const" and n.shape == ()):
            lines += format_value(self.s.values[n], shape=not lines)
        return lines

    def forward(self, n: Node) -> list[str]:
        """A forward node: a leaf by name (a scalar constant by value), an op as
        ``name = formula`` (or its op with blank inputs), then shape and value."""
        where = self.s.cluster.get(n)
        if n.kind in ("var", "param", "buffer"):
            head = [self.short(n, where)]
        elif n.kind == "random":
            head = [describe_distribution(n)]
        elif n.op is STATE_UPDATE:  # y, recording buffer ← new
            head = [f"{self.short(n.inputs[1], where)} ← new"]
        elif n.kind == "const":
            head = [self.short(n, where)] if n.name else [const_text(n)]
        else:
            lhs = self.short(n, where) if (n.name and "name" in self.show) else None
            rhs = None
            if "op" in self.show or not lhs:
                rhs = self.formula(n, where) if self.formulas else blank_text(n)
            head = self._header(lhs, rhs)
        return head + self._tail(n)

    def backward(self, n: Node) -> list[str]:
        """A backward node: ``∂L/∂n = formula`` for a gradient box, else its formula."""
        where = self.s.cluster.get(n)
        owner = self.s.owner.get(n)
        if n.is_leaf:  # a constant made by the backward pass: the seed 1, a count
            rhs = const_text(n)
        elif self.formulas:
            rhs = self.formula(n, where)
        elif "op" in self.show and n not in self.s.hidden_inputs_of:
            rhs = blank_text(self.s.absorbed.get(n, n))
        else:
            rhs = None
        tail = self._tail(n)
        if owner is not None:
            return self._header(self.grad_label(owner, where), rhs) + tail
        return (self._header(None, rhs) + tail) or [n.op.label]

    def alias(self, n: Node) -> list[str]:
        """The gradient box of a forward node whose cotangent is drawn as another's."""
        where = self.s.cluster.get(n)
        c = self.s.grads[n]
        rhs = self._operand(c, where, 2)[0] if self.formulas else None
        lines = self._header(self.grad_label(n, where), rhs)
        if "shape" in self.show and n.shape != ():
            lines.append(format_shape(n.shape))
        if self.s.values is not None:
            lines += format_value(self.s.values[c], shape="shape" not in self.show)
        return lines

    def layer(self, cluster: str, group: list[Node]) -> list[str]:
        """A collapsed layer: its name, parameters, ops, in → out shapes and output value."""
        s = self.s
        inside = set(group)
        params = [n for n in group if n.kind == "param"]
        ops = list(dict.fromkeys(n.op.label for n in group if n.kind == "op"))
        ins = [i for n in group for i in n.inputs if i not in inside and i.kind != "const"]
        consumers = [m for m in s.forward if m not in inside and any(i in inside for i in m.inputs)]
        outs = [n for n in group if any(n in m.inputs for m in consumers)]
        lines = [cluster]
        if params:
            lines.append(", ".join(f"{self.short(p, cluster)} {format_shape(p.shape)}" for p in params))
        if "op" in self.show and ops:
            lines.append(" ".join(ops))
        if "shape" in self.show:
            lines.append(f"{_shapes(ins)} → {_shapes(outs)}")
        if s.values is not None and len(outs) == 1:
            lines += format_value(s.values[outs[0]], shape="shape" not in self.show)
        return lines

    def layer_grads(self, cluster: str) -> list[str]:
        """A collapsed layer's gradients: ``∂L/∂layer`` and one line per parameter."""
        s = self.s
        params = [n for n in s.forward if n.kind == "param" and s.cluster.get(n) == cluster and n in s.grads]
        lines = [f"∂{self.loss_name}/∂{cluster}"]
        for p in params:
            label = f"∂{self.loss_name}/∂{self.short(p, cluster)}"
            if s.values is not None:
                vals = format_value(s.values[s.grads[p]])
                lines.append(f"{label}: {vals[0]}" if len(vals) == 1 else label)
                if len(vals) > 1:
                    lines += vals
            elif "shape" in self.show:
                lines.append(f"{label} {format_shape(p.shape)}")
            else:
                lines.append(label)
        return lines
