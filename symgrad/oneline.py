"""One-line text of nodes: the printer behind drawing labels, code comments and node descriptions.

How an op prints is part of its declaration (:attr:`OpDef.notation
<symgrad.ops.base.OpDef>`): a :class:`Notation` says whether it is written
as a call (``σ(z)``), an infix operator with a precedence (``w·x + b``),
a fraction, a power (``x²``), a prefix (``−x``), a postfix (``Wᵀ``), a
juxtaposed product (``Wx``) or between bars (``|x|``).  :func:`apply_text`
applies that to operand texts; callers decide what an operand is called
(a name, ``∂L/∂a``, a number, or its own formula).

Examples
--------
>>> import symgrad as sg
>>> from symgrad.oneline import formula_text
>>> x, w, b = sg.var("x"), sg.param("w", 0.5), sg.param("b", 0.1)
>>> formula_text(sg.sigmoid(w * x + b), depth=3)
'σ(w·x + b)'
>>> formula_text(sg.var("W", shape=(2, 2)).T @ sg.var("v", shape=(2,)))
'Wᵀv'
"""
from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Callable

import numpy as np

from .graph import format_shape

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Node

# how tightly a text binds, for parentheses: f(x) and names, xᵀ, x², −x, a/b, x·y, x + y, x > y
ATOM, POSTFIX, POW, NEG, FRAC, MUL, ADD, CMP = 100, 90, 80, 70, 60, 60, 50, 40
STYLES = ("call", "infix", "frac", "power", "prefix", "postfix", "product", "bars", "through")
_SIMPLE = re.compile(r"\(.*\)|[^\W\d_][₀-₉]*ᵀ?")  # one letter (and subscript, ᵀ) or a group
_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")

Operand = tuple  # (text, precedence)


@dataclasses.dataclass(frozen=True)
class Notation:
    """How an op is written in one line of text.

    style : one of :data:`STYLES`; ``"call"`` writes ``label(args)``, ``"through"``
        writes input 0 alone (an op whose value is its first input).
    symbol : the operator (``"+"``, ``"·"``, ``"ᵀ"``); the op's label when empty.
    prec : how tightly the result binds (:data:`ATOM` … :data:`CMP`).
    tensor_symbol : for ``"infix"``: the symbol used when every operand is a
        tensor (``⊙`` for an elementwise product).
    spaced : for ``"infix"``: spaces around the symbol; None: only when an
        operand is longer than three characters.
    """

    style: str = "call"
    symbol: str = ""
    prec: int = ATOM
    tensor_symbol: str = ""
    spaced: bool | None = True

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"Notation: style must be one of {STYLES}, got {self.style!r}")


CALL = Notation()


def wrap(operand: Operand, at_least: int) -> str:
    """Parenthesize an operand that binds less tightly than ``at_least``."""
    text, prec = operand
    return text if prec >= at_least else f"({text})"


def apply_text(node: "Node", args: list[Operand]) -> Operand:
    """The op of ``node`` applied to operand texts: ``σ(z₁)``, ``W₂ᵀ(∂L/∂a₂)``, ``w·x + b``."""
    op = node.op
    nt = op.notation or CALL
    texts = [t for t, _ in args]
    sym = nt.symbol or op.label
    if nt.style == "product":  # juxtaposed as in Wx, (∂L/∂a)xᵀ; with the symbol between longer names
        left, right = wrap(args[0], POSTFIX), wrap(args[1], POSTFIX)
        if _SIMPLE.fullmatch(left) and _SIMPLE.fullmatch(right):
            return left + right, nt.prec
        return f"{wrap(args[0], nt.prec)} {sym} {wrap(args[1], nt.prec + 1)}", nt.prec
    if nt.style == "through":
        return args[0]
    if nt.style == "postfix":
        return wrap(args[0], ATOM) + sym, nt.prec
    if nt.style == "prefix":
        return sym + wrap(args[0], POW), nt.prec
    if nt.style == "bars":
        return f"{sym}{texts[0]}{sym}", ATOM
    if nt.style == "frac":
        left = wrap(args[0], ATOM if "/" in texts[0] else nt.prec)
        right = wrap(args[1], ATOM if "/" in texts[1] else nt.prec + 1)
        return f"{left}{sym}{right}", nt.prec
    if nt.style == "power":
        base = wrap(args[0], nt.prec + 1)
        exponent = node.inputs[1]
        if exponent.kind == "const" and re.fullmatch(r"\d+", texts[1]):
            return base + texts[1].translate(_SUP), nt.prec
        return f"{base}{sym}{wrap(args[1], nt.prec)}", nt.prec
    if nt.style == "infix":
        if nt.tensor_symbol and all(i.shape != () for i in node.inputs):
            sym = f" {nt.tensor_symbol} "
        elif nt.spaced or (nt.spaced is None and max(len(t) for t in texts) > 3):
            sym = f" {sym} "
        right_prec = nt.prec + (0 if op.commutative else 1)
        return wrap(args[0], nt.prec) + sym + wrap(args[1], right_prec), nt.prec
    return f"{op.label}({', '.join(texts)})", ATOM


def blank_text(node: "Node") -> str:
    """The op of a node with its inputs left blank: ``σ(·)``, ``· + ·``, ``· @ ·``, ``·ᵀ``."""
    op = node.op
    nt = op.notation or CALL
    if nt.style == "through":
        return "·"
    if nt.style in ("postfix", "prefix", "bars"):
        return apply_text(node, [("·", ATOM)] * op.nin)[0]
    if nt.style == "infix" and nt.tensor_symbol and all(i.shape != () for i in node.inputs):
        return f"· {nt.tensor_symbol} ·"
    if nt.style != "call" and op.nin == 2:
        return f"· {op.label} ·"
    return f"{op.label}({', '.join('·' * op.nin)})"


def number(x: float) -> str:
    """A number as a person writes it: 4 significant digits, ``1e-5`` rather than ``1e-05``."""
    if not np.isfinite(x):
        return str(x)
    s = f"{x:.4g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return "0" if s == "-0" else s


def const_text(node: "Node") -> str:
    """A scalar constant by its value, an array constant as ``const``."""
    return number(float(node.value)) if node.shape == () else "const"


def formula_text(node: "Node", depth: int = 2,
                 name: Callable[["Node"], str | None] = lambda n: n.name) -> str:
    """A node as a short formula of its inputs, ``depth`` ops deep (deeper parts print as ``…``);
    a node for which ``name`` gives a text is written by that text."""
    return _text(node, depth, name, top=True)[0]


def _text(node: "Node", depth: int, name, top: bool = False) -> Operand:
    given = name(node)
    if given and (node.is_leaf or not top):  # the top node itself is written as its formula
        return given, ATOM
    if node.kind == "const":
        t = const_text(node)
        return t, (NEG if t.startswith("-") else ATOM)
    if node.is_leaf:
        return node.kind, ATOM
    if depth <= 0:
        return "…", ATOM
    return apply_text(node, [_text(i, depth - 1, name) for i in node.inputs])


def describe(node: "Node") -> str:
    """Short text naming a node, for error messages: its name (or op) and shape."""
    label = node.name or (node.op.name if node.op is not None else node.kind)
    return f"{label}{format_shape(node.shape)}" if node.shape else label
