"""MathML of formulas, chain rules and backprop equations, for a browser to typeset.

SymPy's MathML presentation printer taught symgrad's conventions, the same
ones :mod:`.printing` teaches the LaTeX and unicode printers: σ, ReLU,
softmax and every op by its label; ``⊙`` and ``⊘``; a bold 1 for the ones
matrix; ``δ`` names (``δ_{Z₁}``); entries ``(W₁)_{0,1}``; ``∂L/∂W`` as a
fraction; ``Σ`` with its indices underneath in index notation.  A system of
equations (backprop equations, update rules, a chain rule) is one
``<mtable>`` row per equation, aligned on its ``=``.

:func:`mathml` is the public entry point (``sg.mathml``); the small
builders below (:func:`table`, :func:`partial`, :func:`row`, …) are what
the printable objects' ``mathml()`` methods are written with.  Nothing here
fetches anything: the result is plain MathML that Chromium, Firefox and
Safari typeset by themselves.
"""
from __future__ import annotations

import html
import re
import unicodedata
from typing import Any, Sequence

import sympy
from sympy.printing.conventions import split_super_sub
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.pretty.pretty_symbology import pretty_symbol

from ..errors import GraphError
from .printing import DELTA, _ENTRY, _compound, _divided, _dotted, _qualified, _split_division

__all__ = ["mathml", "to_mathml", "table", "partial", "row", "mo", "mi", "mtext", "math", "Row", "Heading",
           "cell", "index_row", "words", "where", "sum_over", "joined"]

_PARTIAL = re.compile(r"^∂(?P<num>[^/]+)/∂(?P<den>.+)$")
_DUMMIES = ("QXQA", "QXQB", "QXQC", "QXQD")  # argument stand-ins when a function's printed shape is read
_ACCENTS = {"\u0302": "^", "\u0304": "¯", "\u0305": "¯", "\u0303": "~", "\u0307": "˙", "\u0308": "¨",
            "\u20d7": "→"}  # combining marks SymPy's names make (yhat -> ŷ) and the accents MathML sets over a letter
_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*|\d+(?:\.\d+)?|\s+|.", re.UNICODE)


# ------------------------------------------------------------ small builders (strings of MathML)
def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def mo(text: str) -> str:
    """An operator: ``<mo>=</mo>``."""
    return f"<mo>{_esc(text)}</mo>"


def mi(text: str) -> str:
    """An identifier (one letter is italic, a word upright, as MathML has it)."""
    return f"<mi>{_esc(text)}</mi>"


def mtext(text: str) -> str:
    """Words inside a formula (``where``, ``for t = 1, …, T``)."""
    return f"<mtext>{_esc(text)}</mtext>"


def row(*parts: Any) -> str:
    """An ``<mrow>`` of MathML strings and formulas (each SymPy object or number through :func:`to_mathml`)."""
    return "<mrow>" + "".join(p if isinstance(p, str) else to_mathml(p) for p in parts) + "</mrow>"


def partial(num: Any, den: Any) -> str:
    """``∂num/∂den`` as a fraction; ``num`` and ``den`` are symbols, names or MathML strings."""
    return ("<mfrac><mrow><mo>∂</mo>" + _operand(num) + "</mrow><mrow><mo>∂</mo>" + _operand(den)
            + "</mrow></mfrac>")


def _operand(x: Any) -> str:
    if isinstance(x, str):
        return x if x.startswith("<") else to_mathml(sympy.Symbol(x))
    return to_mathml(x)


class Row(tuple):
    """One equation of a :func:`table`: ``(lhs, relation, rhs)`` as MathML strings."""

    def __new__(cls, lhs: Any, rhs: Any, relation: str = "="):
        return super().__new__(cls, (_cell(lhs), relation, _cell(rhs)))


class Heading(str):
    """A row of a :func:`table` holding words across all columns (``for t = 1, …, T:``, ``where``)."""


def cell(x: Any) -> str:
    """MathML of one side of an equation: a MathML string (kept), a name or ``"∂L/∂w"`` (typeset),
    an object with a ``mathml()`` method, or a SymPy formula."""
    if isinstance(x, str):
        return x if x.startswith("<") or x == "" else _lhs_text(x)
    if hasattr(x, "mathml"):
        return x.mathml()
    return to_mathml(x)


_cell = cell


def index_row(formula: Any) -> "Row":
    """The :class:`Row` of an index-notation formula (it writes its own left-hand side, ``Z_{i,j}``)."""
    return Row(to_mathml(formula.lhs), to_mathml(formula.rhs))


def words(text: str) -> str:
    """Short text with math in it (``𝒩(0, 1)``, ``W_ih[0:4]``) as MathML tokens: words, numbers, operators."""
    return _finish("<mrow>" + "".join(el.toxml() for el in _MathML()._tokens(text)) + "</mrow>")


def where(body: str, definitions: Sequence[Any], header: str = "where") -> str:
    """``body``, then ``where`` (or ``header``) and a table of definitions beside it."""
    if not definitions:
        return body
    return (f'<mrow>{body}<mspace width="1.2em"/>{mtext(header)}<mspace width="0.6em"/>'
            f"{table(definitions)}</mrow>")


# Chromium aligns the contents of an <mtd> by CSS text-align and honours only its -webkit- values there;
# Firefox and Safari read columnalign
_RIGHT, _LEFT = "text-align:right;text-align:-webkit-right", "text-align:left;text-align:-webkit-left"


def table(rows: Sequence[Any], *, gap_before: Sequence[int] = ()) -> str:
    """Equations one per ``<mtr>``, aligned on the relation: left-hand sides right-aligned, the ``=`` (or
    ``←``, ``∼``) in a column of its own, right-hand sides left-aligned.

    ``rows`` are :class:`Row` s or ``(lhs, rhs)`` pairs (``=``); an empty left-hand side continues the
    equation above (``= …`` on the next line).  ``gap_before``: indices of rows that start a new group
    (the backward pass after the forward one) and get space above them.

    Examples
    --------
    >>> import sympy
    >>> from symgrad.formulas.mathml import table
    >>> x = sympy.Symbol("x")
    >>> table([(sympy.Symbol("y"), x ** 2)]).count("<mtr>")
    1
    """
    out = ['<mtable columnalign="right center left" displaystyle="true">']
    gaps = set(gap_before)
    for k, r in enumerate(rows):
        pad = "padding-top:0.9em;" if k in gaps else ""
        if isinstance(r, Heading):
            out.append(f'<mtr><mtd columnspan="3" columnalign="left" style="{pad}{_LEFT}">'
                       f"{mtext(r)}</mtd></mtr>")
            continue
        lhs, rel, rhs = r if isinstance(r, Row) else Row(*r)
        out.append(f'<mtr><mtd columnalign="right" style="{pad}{_RIGHT}">{lhs}</mtd>'
                   f'<mtd columnalign="center" style="{pad}padding-left:0;padding-right:0">{mo(rel) if rel else ""}</mtd>'
                   f'<mtd columnalign="left" style="{pad}{_LEFT}">{rhs}</mtd></mtr>')
    out.append("</mtable>")
    return "".join(out)


def math(inner: str, display: str = "block") -> str:
    """``inner`` wrapped in a ``<math>`` element (``display="block"`` centres it on a line of its own)."""
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="{display}">{inner}</math>'


# ------------------------------------------------------------ the printer
class _MathML(MathMLPresentationPrinter):
    """SymPy's presentation printer with symgrad's names, operators and op labels."""

    def __init__(self, settings=None):
        super().__init__(dict({"mat_symbol_style": "plain"}, **(settings or {})))

    def _print(self, expr, **kwargs):
        from .opclasses import _OpMixin
        if isinstance(expr, _OpMixin):
            return self._print_op(expr)
        if isinstance(expr, sympy.Function) and _own_printing(type(expr)):
            return self._print_shaped_function(expr)
        return super()._print(expr, **kwargs)

    # -- elements
    def _el(self, tag: str, *children, text: str | None = None, **attrs):
        el = self.dom.createElement(tag)
        for k, v in attrs.items():
            el.setAttribute(k, v)
        if text is not None:
            el.appendChild(self.dom.createTextNode(text))
        for c in children:
            el.appendChild(c)
        return el

    def _mrow(self, *children):
        return self._el("mrow", *children)

    def _tokens(self, text: str):
        """Literal text of a label as MathML tokens: words ``<mi>``, numbers ``<mn>``, the rest ``<mo>``."""
        out = []
        for tok in _WORD.findall(text):
            if tok.isspace():
                out.append(self._el("mspace", width="0.2em"))
            elif tok[0].isdigit():
                out.append(self._el("mn", text=tok))
            elif tok in ("′", "″") and out and out[-1].tagName in ("mi", "msub"):  # σ′, tight against its letter
                out.append(self._el("mo", text=tok, lspace="0", rspace="0"))
            elif tok[0].isalpha() or tok in ("𝟙", "𝟏"):
                m = re.fullmatch(r"(.+?)([₀-₉]+)", tok)  # θ₁ written with a subscript digit
                out.append(self._el("msub", self._accented(m[1]), self._el("mn", text=m[2].translate(_SUBSCRIPTS)))
                           if m else self._accented(tok))
            else:
                out.append(self._el("mo", text=tok))
        return out

    def _parens(self, inner, left="(", right=")"):
        return self._mrow(self._el("mo", text=left), inner, self._el("mo", text=right))

    # -- names
    def _name(self, name: str):
        """A name as SymPy writes it (z1 -> z₁, yhat -> ŷ, beta_2 -> β₂), subscripts as ``<msub>``."""
        if _qualified(name):
            return self._el("mi", text=name, mathvariant="normal") if len(name) > 1 else self._el("mi", text=name)
        parts = _dotted(name)
        if parts:
            return self._mrow(self._el("mi", text=parts[0], mathvariant="normal"), self._name(parts[1]))
        base, supers, subs = split_super_sub(name)
        head = self._accented(pretty_symbol(base) if base else name)
        if not subs and not supers:
            return head
        sub = self._mrow(*[self._name(s) if not s.isdigit() else self._el("mn", text=s) for s in subs]) \
            if subs else None
        sup = self._mrow(*[self._name(s) if not s.isdigit() else self._el("mn", text=s) for s in supers]) \
            if supers else None
        if sub is not None and sup is not None:
            return self._el("msubsup", head, sub, sup)
        return self._el("msub", head, sub) if sub is not None else self._el("msup", head, sup)

    def _accented(self, text: str):
        """``ŷ``, ``x̂``, ``x̄`` as a letter under its accent (a letter with a combining mark would be set upright
        as a two-character identifier)."""
        plain = unicodedata.normalize("NFD", text)
        if len(plain) == 2 and plain[1] in _ACCENTS and plain[0].isalpha():
            return self._el("mover", self._el("mi", text=plain[0]), self._el("mo", text=_ACCENTS[plain[1]]),
                            accent="true")
        return self._el("mi", text=text)

    def _print_Symbol(self, sym, style="plain"):
        name = sym.name
        if name.startswith(DELTA) and len(name) > len(DELTA):
            return self._el("msub", self._el("mi", text="δ"), self._name(name[len(DELTA):]))
        m = _PARTIAL.match(name)
        if m:  # ∂L/∂h_t: a per-step cotangent reaching a loop from outside
            return self._partial(self._name(m["num"]), self._name(m["den"]))
        m = _ENTRY.match(name)
        if m:
            base = self._print_Symbol(sympy.Symbol(m["base"]))
            if base.tagName != "mi":
                base = self._parens(base)
            return self._el("msub", base, self._mrow(*self._tokens(m["index"])))
        return self._name(name)

    _print_MatrixSymbol = _print_Symbol

    def _print_Dummy(self, sym, style="plain"):
        return self._print_Symbol(sym)

    def _partial(self, num, den):
        return self._el("mfrac", self._mrow(self._el("mo", text="∂"), num), self._mrow(self._el("mo", text="∂"), den))

    # -- matrix notation
    def _factor(self, a):
        return self._parens(self._print(a)) if _compound(a) else self.parenthesize(
            a, sympy.printing.precedence.PRECEDENCE["Mul"], strict=True)

    def _print_HadamardProduct(self, expr):
        num, den = _split_division(expr)
        out = self._mrow()
        for k, a in enumerate(num):
            if k:
                out.appendChild(self._el("mo", text="⊙"))
            out.appendChild(self._factor(a))
        for d in den:
            out.appendChild(self._el("mo", text="⊘"))
            out.appendChild(self._factor(d))
        return out

    def _print_HadamardPower(self, expr):
        base = self._parens(self._print(expr.base)) if _compound(expr.base) else self._print(expr.base)
        return self._script(base, self._mrow(self._el("mo", text="∘"), self._print(expr.exp)))

    def _print_OneMatrix(self, expr):
        return self._el("mn", text="𝟏")

    def _print_Identity(self, expr):
        return self._el("mi", text="I")

    def _print_ZeroMatrix(self, expr):
        return self._el("mn", text="𝟎")

    def _print_Transpose(self, expr):
        arg = expr.arg
        base = self._print(arg)
        if not isinstance(arg, (sympy.MatrixSymbol, sympy.Symbol)) and base.tagName not in ("mi", "msub"):
            base = self._parens(base)
        return self._script(base, self._el("mi", text="T", mathvariant="normal"))

    def _script(self, base, sup):
        """``base`` with a superscript; a subscripted base takes both at once (``b₁ᵀ`` as ``msubsup``)."""
        if base.tagName == "msub":
            return self._el("msubsup", *list(base.childNodes), sup)
        return self._el("msup", base, sup)

    def _print_MatMul(self, expr):
        split = _divided(expr)
        if split is not None:
            negative, rest, d = split
            frac = self._el("mfrac", self._print(rest), self._print(d))
            return self._mrow(self._el("mo", text="-"), frac) if negative else frac
        coeff = expr.as_coeff_mmul()[0]
        if sympy.S(coeff).could_extract_minus_sign() and not sympy.S(-expr.as_coeff_mmul()[0]).could_extract_minus_sign():
            positive = -expr
            if not sympy.S(positive.as_coeff_mmul()[0] if hasattr(positive, "as_coeff_mmul") else 1) \
                    .could_extract_minus_sign():  # −(1/batch)·one-hot(Y), not (−1)·(1/batch)·…
                return self._mrow(self._el("mo", text="-"), self._print(positive))
        return self._spaced(super()._print_MatMul(expr))

    def _print_Mul(self, expr):
        return self._spaced(super()._print_Mul(expr))

    def _spaced(self, out):
        """A product whose factor is a module-qualified name (``dec.0.a dec.1.W``) gets a thin space for its
        invisible times: juxtaposed upright names would read as one."""
        kids = list(out.childNodes)
        for k, kid in enumerate(kids):
            if kid.nodeType == kid.ELEMENT_NODE and kid.tagName == "mo" and kid.firstChild is not None \
                    and kid.firstChild.data in ("&InvisibleTimes;", "\u2062") \
                    and any(_upright_name(n) for n in kids[max(k - 1, 0):k + 2:2]):
                out.replaceChild(self._el("mspace", width="0.3em"), kid)
        return out

    def _print_MatAdd(self, expr):
        out = self._mrow()
        for k, item in enumerate(expr.args):
            coeff = item.as_coeff_mmul()[0] if hasattr(item, "as_coeff_mmul") else sympy.Integer(1)
            if k and sympy.S(coeff).could_extract_minus_sign():
                out.appendChild(self._el("mo", text="-"))
                out.appendChild(self._print(-item))
                continue
            if k:
                out.appendChild(self._el("mo", text="+"))
            out.appendChild(self._print(item))
        return out

    # -- ops and functions
    def _print_op(self, expr):
        """An op applied to matrix-notation arguments, by its label: ``σ(Z₁)``, ``softmax(Z)``, ``Σ(A)``."""
        form = expr._written_out()
        if form is not None:
            return self._print(form)
        notation = expr.op.notation
        style = getattr(notation, "style", None)
        args = [self._print(a) for a in expr.operands]
        if style == "infix" and len(args) == 2:  # an Iverson bracket [P > 0]
            return self._parens(self._mrow(args[0], self._el("mo", text=notation.symbol or expr.op.label), args[1]),
                                "[", "]")
        if style == "bars" and notation.symbol == "|" and len(args) == 1:
            return self._parens(args[0], "|", "|")
        label, sub = expr._label_parts()
        if label == "√" and not sub:
            return self._el("msqrt", *args)
        head = self._mrow(self._el("mo", text="∑") if label == "Σ" else self._tokens(label)[0],
                          *self._tokens(label)[1:])
        if sub:
            head = self._el("msub", head, self._mrow(*self._tokens(sub)))
        inner = args[0] if len(args) == 1 else self._commas(args)
        if len(args) == 1 and getattr(getattr(expr.operands[0], "op", None), "notation", None) is not None \
                and expr.operands[0].op.notation.style == "bars":  # Σ|P - T|: the bars are the parentheses
            return self._mrow(head, inner)
        return self._mrow(head, self._parens(inner))

    def _commas(self, items):
        out = self._mrow()
        for k, a in enumerate(items):
            if k:
                out.appendChild(self._el("mo", text=",", separator="true"))
            out.appendChild(a)
        return out

    def _print_shaped_function(self, expr):
        """A function that prints itself in unicode (σ(z), ‖g‖, [i = j]): the same shape, with its arguments
        typeset.  The shape is read from its unicode printing with stand-ins for the arguments."""
        from .printing import to_pretty
        n = len(expr.args)
        if n > len(_DUMMIES):
            return super()._print_Function(expr)
        text = to_pretty(type(expr)(*[sympy.Symbol(d) for d in _DUMMIES[:n]], evaluate=False))
        pieces = re.split("(" + "|".join(_DUMMIES[:n]) + ")", text)
        if "\n" in text or len(pieces) != 2 * n + 1:
            return super()._print_Function(expr)
        out = self._mrow()
        for k, piece in enumerate(pieces):
            if k % 2:
                out.appendChild(self._print(expr.args[_DUMMIES.index(piece)]))
            else:
                for tok in self._tokens(piece.strip() if piece.strip() else ""):
                    out.appendChild(tok)
        return out

    def _print_Function(self, expr):
        return self._mrow(self._el("mi", text=self.mathml_tag(expr)), self._paren_comma_separated(*expr.args))

    def _print_Max(self, expr):
        return self._mrow(self._el("mi", text="max"), self._paren_comma_separated(*expr.args))

    def _print_Min(self, expr):
        return self._mrow(self._el("mi", text="min"), self._paren_comma_separated(*expr.args))

    def _print_Piecewise(self, expr):
        rows = []
        for value, cond in expr.args:
            when = self._el("mtext", text="otherwise") if cond is sympy.true else self._mrow(
                self._el("mtext", text="if\u00a0"), self._print(cond))
            rows.append(self._el("mtr", self._el("mtd", self._print(value), columnalign="left", style=_LEFT),
                                 self._el("mtd", when, columnalign="left", style=_LEFT)))
        return self._mrow(self._el("mo", text="{"), self._el("mtable", *rows))

    # -- index notation
    def _print_Indexed(self, expr):
        label = str(expr.base.label)
        m = _PARTIAL.match(label)
        head = self._partial(self._name(m["num"]), self._name(m["den"])) if m else self._print(expr.base.label)
        if head.tagName not in ("mi", "mfrac"):
            head = self._parens(head)
        return self._el("msub", head, self._commas([self._print(i) for i in expr.indices]))

    def _print_IndexedBase(self, expr):
        return self._print(expr.label)

    def _print_Sum(self, expr):
        """Σ with its summation indices underneath and no bounds (each index runs over its axis)."""
        under = self._commas([self._print(k) for k, _, _ in expr.limits])
        body = self._print(expr.function)
        if isinstance(expr.function, sympy.Add):
            body = self._parens(body)
        return self._mrow(self._el("munder", self._el("mo", text="∑", movablelimits="false"), under), body)

    def _print_Relational(self, expr):
        ops = {"==": "=", "!=": "≠", "<=": "≤", ">=": "≥", "<": "<", ">": ">"}
        return self._mrow(self._print(expr.lhs), self._el("mo", text=ops.get(expr.rel_op, expr.rel_op)),
                          self._print(expr.rhs))

    def _print_str(self, s):
        return self._el("mi", text=s)


def _upright_name(el) -> bool:
    """Whether a printed factor starts with a module-qualified name (``bn.var``, ``enc_mu.W``)."""
    while el is not None and el.nodeType == el.ELEMENT_NODE and el.tagName != "mi":
        el = el.firstChild
    return el is not None and el.nodeType == el.ELEMENT_NODE and "." in (el.firstChild.data if el.firstChild else "")


def _own_printing(cls: type) -> bool:
    """Whether a SymPy function class is one of symgrad's own, printed by its ``_pretty`` (σ, ReLU, Φ, ‖·‖)."""
    return not cls.__module__.startswith("sympy.") and ("_pretty" in vars(cls) or any(
        "_pretty" in vars(b) for b in cls.__mro__[1:] if not b.__module__.startswith("sympy.")))


def to_mathml(expr: Any) -> str:
    """One formula (a SymPy object or a number) as a MathML element string, without ``<math>`` around it.

    Examples
    --------
    >>> import sympy
    >>> from symgrad.formulas.mathml import to_mathml
    >>> to_mathml(sympy.Symbol("delta_z1") if False else sympy.Symbol("δ_z1"))
    '<msub><mi>δ</mi><msub><mi>z</mi><mrow><mn>1</mn></mrow></msub></msub>'
    """
    if isinstance(expr, (int, float)):
        expr = sympy.sympify(expr)
    printer = _MathML()
    return _finish(printer._print(expr).toxml())


def _finish(text: str) -> str:
    """Printer output as characters: invisible times as U+2062, a minus sign (U+2212) for the hyphen SymPy writes."""
    return (text.replace("&InvisibleTimes;", "\u2062").replace("<mo>-</mo>", "<mo>\u2212</mo>")
            .replace("<mn>-", "<mn>\u2212"))


def _lhs_text(text: str) -> str:
    """A left-hand side given as text: ``"∂L/∂w"`` as a fraction, a name (``"z1"``, ``"ŷ"``) as a symbol."""
    m = _PARTIAL.match(text.strip())
    if m:
        return partial(m["num"].strip(), m["den"].strip())
    name = re.sub("([₀-₉]+)$", lambda m: "_" + m[1].translate(_SUBSCRIPTS), text.strip())  # c₁ as c_1
    if re.fullmatch(r"[^\W\d][\w.]*(\[[0-9,]+\])?", name):
        return to_mathml(sympy.Symbol(name))
    return _finish("<mrow>" + "".join(el.toxml() for el in _MathML()._tokens(text.strip())) + "</mrow>")


def mathml(obj: Any, lhs: Any = None, display: str = "block", **formula_options: Any) -> str:
    """MathML of a node's formula, a SymPy formula, a chain rule, backprop equations or an update rule.

    The same objects as :func:`symgrad.latex`, as a ``<math>`` element a browser typesets with nothing
    fetched: systems of equations become an ``<mtable>`` with one row per equation, aligned on ``=``.

    Parameters
    ----------
    obj : a Node (printed as ``formula(obj, **formula_options)``), a SymPy object, or an object with a
        ``mathml()`` method (:func:`chain_rule`, :func:`backprop_equations`, ``opt.formulas()``).
    lhs : put in front as ``lhs = …``: a name (``"z1"``, ``"ŷ"``), ``"∂L/∂w"`` (typeset as a
        fraction), a SymPy symbol, or a MathML string.
    display : ``"block"`` (a line of its own) or ``"inline"``.

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> sg.mathml(sg.sigmoid(x), lhs="a")
    '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block"><mrow><mi>a</mi><mo>=</mo><mrow><mi>σ</mi><mo>(</mo><mi>x</mi><mo>)</mo></mrow></mrow></math>'
    """
    from .printing import Printable, _resolve
    if display not in ("block", "inline"):
        raise GraphError(f"mathml: display must be 'block' or 'inline', got {display!r}")
    obj = _resolve(obj, "mathml", formula_options)
    if lhs is not None and not isinstance(lhs, (str, sympy.Basic)):
        raise GraphError(f"mathml: lhs must be a string or a SymPy symbol, got {type(lhs).__name__}")
    if lhs is not None and hasattr(obj, "renamed") and isinstance(lhs, str):  # an index formula names its lhs
        return math(obj.renamed(lhs).mathml(), display)
    body = obj.mathml() if isinstance(obj, Printable) else to_mathml(obj)
    if lhs is None:
        return math(body, display)
    return math(row(_cell(lhs), mo("="), body), display)


def sum_over(*indices: str) -> str:
    """``∑`` with ``indices`` underneath (``Σ_t`` of backpropagation through time)."""
    under = "<mo>,</mo>".join(to_mathml(sympy.Symbol(i)) for i in indices)
    return f'<munder><mo movablelimits="false">∑</mo><mrow>{under}</mrow></munder>'


def joined(parts: Sequence[Any], operator: str) -> str:
    """``parts`` (MathML strings or formulas) in one ``<mrow>`` with ``operator`` between them."""
    out: list[Any] = []
    for k, p in enumerate(parts):
        out += [mo(operator), p] if k else [p]
    return row(*out)
