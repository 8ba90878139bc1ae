"""Names and comments in generated code.

A value is named after the node it holds (``mlp_0_z``), a cotangent after
the node it is the gradient of (``dL_dmlp_0_W``: one template,
:data:`ADJOINT`), optimizer state after its parameter; constants print as
a person writes them.  User-chosen names only ever reach the code through
:func:`ident_base` (ASCII letters, digits and ``_``, starting with a
letter) and through comments, after :func:`comment_text`.
"""
from __future__ import annotations

import builtins
import keyword
import re
from typing import Any

import numpy as np

from ..graph import Node
from ..oneline import formula_text
from .ir import Value

_SAFE_CHARS = re.compile(r"[^A-Za-z0-9_]+")
ADJOINT = "dL_d{}"  # the cotangent of x is dL_dx
GENERIC = "t"  # the stem of values no node names
STEM_LIMIT = 40


_GREEK = re.compile("[\u03b1-\u03c9\u0391-\u03a9]")
_SHORT = {"epsilon": "eps", "lamda": "lam"}


def _spell(m: re.Match) -> str:
    import unicodedata
    word = unicodedata.name(m[0], "").split()[-1]
    word = _SHORT.get(word.lower(), word.lower())
    nxt = m.string[m.end():m.end() + 1]
    return (word.capitalize() if m[0].isupper() else word) + ("_" if nxt.isalpha() else "")


def ident_base(name: str | None) -> str:
    """An ASCII identifier stem from a user name (or 't'): letters, digits, '_' only, starting with a letter.

    Greek letters are spelled out (``ε`` -> ``eps``, ``bn.μ`` -> ``bn_mu``).

    >>> ident_base("mlp.0.W"), ident_base("ŷ"), ident_base(None), ident_base("ε"), ident_base("bn.σ2")
    ('mlp_0_W', 'v', 't', 'eps', 'bn_sigma2')
    """
    if not name:
        return "t"
    name = _GREEK.sub(_spell, name)
    base = _SAFE_CHARS.sub("_", name).strip("_")[:STEM_LIMIT]
    if not base or not base[0].isalpha():
        base = "v" + ("_" + base if base else "")
    return base


def comment_text(text: str, limit: int = 80) -> str:
    """Text made safe for a ``#`` comment: no line breaks or other non-printable characters.

    >>> comment_text("a\\nb")
    'a?b'
    """
    out = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return out if len(out) <= limit else out[:limit - 1] + "…"


def float_literal(x: float) -> str:
    """A float as source, written short when a 15-digit form is the same number up to
    rounding of the last bit (``0.1``, not ``0.09999999999999998``).

    >>> float_literal(1 - 0.9), float_literal(-2.5), float_literal(float("inf"))
    ('0.1', '(-2.5)', 'np.inf')
    """
    x = float(x)
    if np.isnan(x):
        return "np.nan"
    if np.isinf(x):
        return "np.inf" if x > 0 else "(-np.inf)"
    s = repr(x)
    short = repr(float(f"{x:.15g}"))
    if len(short) < len(s) and abs(float(short) - x) <= 1e-15 * abs(x):  # a few units in the last place
        s = short
    return f"({s})" if s.startswith("-") else s


def literal_attr(value: Any) -> bool:
    """Whether an attr can be written as a Python literal (else it is bound as a global)."""
    if value is None or isinstance(value, bool) or type(value) is int:
        return True
    if type(value) is float:
        return bool(np.isfinite(value))
    if type(value) is tuple:
        return all(literal_attr(x) for x in value)
    return False


class Names:
    """Identifiers of one generated function: unique, never a keyword, a builtin, a global of
    the module (``np``, the function itself, the ops it calls) or another value's name."""

    def __init__(self, reserved: set[str]):
        self.taken = set(reserved) | {"np"} | set(dir(builtins)) | set(keyword.kwlist)

    def new(self, base: str) -> str:
        """``base`` itself when free, else ``base_2``, ``base_3`` …; unnamed values are ``t1``, ``t2`` …"""
        k = 1
        name = base if base != GENERIC else f"{base}{k}"
        while name in self.taken or keyword.iskeyword(name) or not name.isidentifier():
            k += 1
            name = f"{base}_{k}" if base != GENERIC else f"{base}{k}"
        self.taken.add(name)
        return name

    def reserve(self, name: str) -> None:
        self.taken.add(name)


def _forward_of(v: Value) -> list[Node]:
    """The forward nodes whose cotangent ``v`` holds, named ones first."""
    fwd: list[Node] = []
    for n in v.nodes:
        for f in n.grad_of:
            if f not in fwd:
                fwd.append(f)
    fwd.sort(key=lambda f: (f.name is None, f.id))
    return fwd


def stem_for(v: Value, ident_of: dict[Node, str]) -> str:
    """The stem of ``v``'s name: a node's own name; else the adjoint of the forward node it is the
    gradient of (by name, or by the identifier its value has); else ``t``."""
    named = next((n.name for n in v.nodes if n.name), None)
    if named:
        return ident_base(named)
    for f in _forward_of(v):
        target = ident_base(f.name) if f.name else ident_of.get(f)
        if target:
            return ADJOINT.format(target)
    return GENERIC


def _short(node: Node) -> str:
    return node.name if node.name else formula_text(node, depth=2)


def comment_for(v: Value) -> str:
    """``grad of: w`` for a cotangent, the node names for a named value, else nothing."""
    fwd = _forward_of(v)
    if fwd:
        return "grad of: " + ", ".join(_short(f) for f in fwd)
    names = [n.name for n in v.nodes if n.name]
    return ", ".join(dict.fromkeys(names)) if names else ""
