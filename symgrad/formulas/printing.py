"""LaTeX and unicode printing of formulas, chain rules and backprop equations.

SymPy's printers with a few textbook conventions: the Hadamard product is
``⊙``, the ones matrix is a bold 1, adjoints print as ``δ_{z₁}`` and entry
symbols ``W1[0,1]`` as ``(W₁)_{0,1}``.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

import sympy
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct
from sympy.printing.latex import LatexPrinter
from sympy.printing.pretty.pretty import PrettyPrinter
from sympy.printing.pretty.pretty_symbology import pretty_symbol, pretty_use_unicode
from sympy.printing.pretty.stringpict import prettyForm

from ..errors import GraphError
from ..graph import Node

#: prefix of the name of an adjoint symbol (δ_z1 is the cotangent of z1)
DELTA = "δ_"
_ENTRY = re.compile(r"^(?P<base>.+)\[(?P<index>[0-9,]+)\]$")


_GREEK = re.compile("[\u03b1-\u03c9]")  # small Greek letters, spelled out for LaTeX


def _qualified(name: str) -> bool:
    """A module-qualified name with a word after an underscore (``bn.running_mean``): printed as
    written, not with SymPy's subscript (``bn.runningₘₑₐₙ``)."""
    return "." in name and re.search(r"_[^\W\d_]{2,}", name) is not None


def _dotted(name: str) -> tuple[str, str] | None:
    """``("bn.", "xhat")`` for a module-qualified name whose last part SymPy decorates (a hat, a
    Greek letter: ``bn.x̂``, ``bn.μ``); the decoration then applies to that part alone."""
    head, dot, last = name.rpartition(".")
    if not dot or re.fullmatch(r"[A-Za-z]+\d*", last) and pretty_symbol(last) == last or not last[:1].isalpha():
        return None
    if pretty_symbol(last) == last or re.fullmatch(r"[A-Za-z]+\d+", last):
        return None
    return head + dot, last


def _name_text(name: str, bold: bool = False) -> str:
    """A name in unicode: as written when module-qualified with words, else SymPy's (x̂, μ, z₁)."""
    if _qualified(name):
        return name
    parts = _dotted(name)
    return parts[0] + pretty_symbol(parts[1], bold) if parts else pretty_symbol(name, bold)


def _split_division(expr) -> tuple[list, list]:
    """Factors of a Hadamard product, and the bases of its ``^{∘-1}`` factors (printed after ⊘)."""
    num, den = [], []
    for a in expr.args:
        if isinstance(a, HadamardPower) and a.exp == -1:
            den.append(a.base)
        else:
            num.append(a)
    return num, den


def _divided(expr):
    """``(negative, rest, d)`` for a matrix product whose number coefficient is ±1/d with ``d`` an integer > 1 or
    a root of one (``Q Kᵀ/√6``, ``A/3``, as one writes them), ``rest`` the product without it; else None."""
    coeff, rest = expr.as_coeff_mmul()
    number, scalars = sympy.S(coeff).as_independent(*sympy.S(coeff).free_symbols, as_Add=False)
    if not number.is_number or number in (1, -1) or number == 0:
        return None
    inv = 1 / number
    d = -inv if inv.is_negative else inv
    if not ((d.is_Integer and d > 1) or (d.is_Pow and d.base.is_Integer and d.base > 1 and d.exp.is_Rational
                                         and d.exp.p == 1 and d.exp.q > 1)):
        return None
    from sympy.matrices.expressions.matmul import MatMul
    factors = ([scalars] if scalars != 1 else []) + list(rest.args if isinstance(rest, MatMul) else [rest])
    rest = MatMul(*factors) if len(factors) > 1 else factors[0]
    return bool(inv.is_negative), rest, d


def _compound(expr) -> bool:
    from sympy.matrices.expressions.matadd import MatAdd
    from sympy.matrices.expressions.matmul import MatMul
    return isinstance(expr, (MatAdd, MatMul, HadamardProduct))


class _Latex(LatexPrinter):
    def _print_HadamardProduct(self, expr):
        prec = sympy.printing.precedence.PRECEDENCE["Mul"]
        num, den = _split_division(expr)
        text = r" \odot ".join(r"\left(%s\right)" % self._print(a) if _compound(a)  # as the unicode form
                                else self.parenthesize(a, prec, strict=True) for a in num)
        return text + "".join(r" \oslash " + (r"\left(%s\right)" % self._print(d) if _compound(d)
                                               else self.parenthesize(d, prec, strict=True)) for d in den)

    def _print_OneMatrix(self, expr):
        return r"\mathbf{1}"

    def _print_MatMul(self, expr):
        split = _divided(expr)
        if split is None:
            return super()._print_MatMul(expr)
        negative, rest, d = split
        return ("-" if negative else "") + r"\frac{%s}{%s}" % (self._print(rest), self._print(d))

    def _print_Symbol(self, expr, style="plain"):
        name = expr.name
        if name.startswith(DELTA) and len(name) > len(DELTA):
            return r"\delta_{%s}" % self._print_Symbol(sympy.Symbol(name[len(DELTA):]), style)
        m = _ENTRY.match(name)
        if m:
            base = self._print_Symbol(sympy.Symbol(m["base"]), style)
            base = r"\left(%s\right)" % base if "_" in base or "^" in base else base
            return r"%s_{%s}" % (base, m["index"])
        if re.fullmatch(r"[\w.]+( [+−-] [\w.]+)+", name):  # a definition's text: rnn.b_ih + rnn.b_hh
            return " ".join(t if t in "+−-" else self._print_Symbol(sympy.Symbol(t), style) for t in name.split())
        if _qualified(name):
            return r"\mathrm{%s}" % name.replace("_", r"\_")
        parts = _dotted(name)
        if parts:
            return r"\mathrm{%s}%s" % (parts[0], self._print_Symbol(sympy.Symbol(parts[1]), style))
        if re.fullmatch(r"\w+(\.\w+)+", name):  # rnn.b: upright like rnn.W_hh, not italic r·n·n·.·b
            return r"\mathrm{%s}" % name.replace("_", r"\_")
        spelled = _GREEK.sub(lambda g: unicodedata.name(g[0]).split()[-1].lower(), name)
        if spelled != name and re.fullmatch(r"[A-Za-z]+\d*(_\w+)?", spelled):  # ε -> \epsilon, σ_1 -> \sigma_{1}
            return super()._print_Symbol(sympy.Symbol(spelled), style)
        return super()._print_Symbol(expr, style)

    def _print_MatrixSymbol(self, expr, style="plain"):
        if _qualified(expr.name) or _GREEK.search(expr.name) or _dotted(expr.name):
            return self._print_Symbol(sympy.Symbol(expr.name), style)
        return super()._print_MatrixSymbol(expr)


class _Pretty(PrettyPrinter):
    def _print_HadamardProduct(self, expr):
        from sympy.matrices.expressions.matadd import MatAdd
        from sympy.matrices.expressions.matmul import MatMul
        paren = lambda x: isinstance(x, (MatAdd, MatMul, HadamardProduct))  # noqa: E731
        num, den = _split_division(expr)
        out = self._print_seq(num, None, None, " ⊙ ", parenthesize=paren)
        for d in den:
            form = self._print(d)
            out = prettyForm(*out.right(" ⊘ ", prettyForm(*form.parens()) if paren(d) else form))
        return out

    def _print_HadamardPower(self, expr):
        from sympy.matrices.expressions.matadd import MatAdd
        from sympy.matrices.expressions.matmul import MatMul
        from sympy.printing.pretty.stringpict import stringPict
        base = self._print(expr.base)
        if isinstance(expr.base, (MatAdd, MatMul, HadamardProduct)):
            base = prettyForm(*base.parens())
        circ_exp = prettyForm(*stringPict.next("∘", self._print(expr.exp)), binding=prettyForm.LINE)
        return base ** circ_exp

    def _print_MatMul(self, expr):  # Q⋅Kᵀ/√6, not √6/6⋅Q⋅Kᵀ
        split = _divided(expr)
        if split is None:
            return super()._print_MatMul(expr)
        negative, rest, d = split
        form = self._print(rest)
        if _compound(rest) and not isinstance(rest, type(expr)):  # (A + B)/√2, A ⊙ B/√2 in parentheses
            form = prettyForm(*form.parens())
        out = prettyForm(*form.right("/", self._print(d)))
        if negative:
            out = prettyForm(*out.left("-"))
        out.binding = prettyForm.MUL
        return out

    def _print_MatAdd(self, expr):
        # SymPy writes a term with a negative coefficient after a bare space, trusting its text to start
        # with "-"; a negative fraction puts the sign inside the numerator and the sum read as a product
        from sympy.printing.pretty.stringpict import stringPict
        out = None
        for item in expr.args:
            if out is None:
                out = self._print(item)
                continue
            coeff = item.as_coeff_mmul()[0] if hasattr(item, "as_coeff_mmul") else sympy.Integer(1)
            if sympy.S(coeff).could_extract_minus_sign():
                out = prettyForm(*stringPict.next(out, " - ", self._print(-item)))
            else:
                out = prettyForm(*stringPict.next(out, " + ", self._print(item)))
        return out

    def _print_Max(self, expr):  # max(a, b) in 2-D, as in the LaTeX (SymPy's default is one-line "Max(a, b)")
        return self._named_call("max", expr.args)

    def _print_Min(self, expr):
        return self._named_call("min", expr.args)

    def _named_call(self, name, args):
        head, inner = prettyForm(name), prettyForm(*self._print_seq(args, delimiter=", ").parens())
        out = prettyForm(*head.right(inner), binding=prettyForm.FUNC)
        out.prettyFunc, out.prettyArgs = head, inner  # what SymPy's power printing reads for f(x)²
        return out

    def _print_Symbol(self, e, bold_name=False):
        name = e.name
        if name.startswith(DELTA) and len(name) > len(DELTA):
            return prettyForm("δ_" + _name_text(name[len(DELTA):], bold_name))
        m = _ENTRY.match(name)
        if m:
            return prettyForm(pretty_symbol(m["base"], bold_name) + f"[{m['index']}]")
        if _qualified(name):
            return prettyForm(name)
        parts = _dotted(name)
        if parts:
            return prettyForm(parts[0] + pretty_symbol(parts[1], bold_name))
        return super()._print_Symbol(e, bold_name)

    _print_MatrixSymbol = _print_Symbol


class Printable:
    """Base of the objects :func:`latex` and :func:`pretty` print by their own methods."""

    def latex(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def pretty(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def mathml(self) -> str:  # pragma: no cover - overridden
        """MathML (an element, without ``<math>``; see :func:`symgrad.mathml`)."""
        raise NotImplementedError(f"{type(self).__name__} has no MathML form")

    def __str__(self) -> str:
        return self.pretty()

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"


class WithDefinitions(Printable):
    """A formula written in intermediates (a graph too deep for one expression) and their definitions."""

    def __init__(self, expr: Any, definitions: list):
        self.expr, self.definitions = expr, list(definitions)

    def pretty(self) -> str:
        lines = [to_pretty(self.expr), "where"]
        lines += [join_pretty(["  ", s, " = ", d]) for s, d in self.definitions]
        return "\n".join(lines)

    def latex(self) -> str:
        defs = r",\; ".join(r"%s = %s" % (to_latex(s), to_latex(d)) for s, d in self.definitions)
        return to_latex(self.expr) + r"\qquad \text{where } " + defs

    def mathml(self) -> str:
        from .mathml import cell, where
        return where(cell(self.expr), self.definitions)


def _resolve(obj: Any, what: str, kwargs: dict) -> Any:
    if isinstance(obj, Node):
        from .build import formula_with_definitions
        unknown = sorted(set(kwargs) - {"keep", "expand", "notation"})
        if unknown:
            raise GraphError(f"{what}: unknown formula option(s) {unknown}; the options are keep, expand, notation")
        expr, defs = formula_with_definitions(obj, **kwargs)
        return WithDefinitions(expr, defs) if defs else expr
    if kwargs:
        raise GraphError(f"{what}: formula options {sorted(kwargs)} only apply to a Node")
    if isinstance(obj, (sympy.Basic, sympy.MatrixBase, sympy.NDimArray, Printable, int, float)):
        return obj
    raise GraphError(f"{what}: expected a Node, a formula or a chain-rule/backprop object, "
                     f"got {type(obj).__name__}")


def latex(obj: Any, lhs: str | None = None, **formula_options: Any) -> str:
    """LaTeX of a node's formula, a SymPy formula, a chain rule or backprop equations.

    Parameters
    ----------
    obj : a Node (printed as ``formula(obj, **formula_options)``), a
        SymPy object, or the result of :func:`chain_rule` /
        :func:`backprop_equations`.
    lhs : LaTeX put in front as ``lhs = …`` (e.g. ``r"\\frac{\\partial L}{\\partial w}"``).

    Examples
    --------
    >>> import symgrad as sg
    >>> x, w = sg.var("x"), sg.param("w", 0.5)
    >>> sg.latex(sg.sigmoid(w * x))
    '\\\\sigma\\\\left(w x\\\\right)'
    """
    obj = _resolve(obj, "latex", formula_options)
    if lhs is not None and not isinstance(lhs, str):
        raise GraphError(f"latex: lhs must be a string, got {type(lhs).__name__}")
    if lhs is not None and hasattr(obj, "renamed"):  # an index formula writes its own left-hand side
        return obj.renamed(lhs).latex()
    text = obj.latex() if isinstance(obj, Printable) else to_latex(obj)
    return text if lhs is None else f"{lhs} = {text}"


def to_latex(expr: Any) -> str:
    return _Latex().doprint(sympy.sympify(expr) if isinstance(expr, (int, float)) else expr)


def pretty(obj: Any, lhs: str | None = None, **formula_options: Any) -> str:
    """Unicode (2-D, SymPy pretty-printer) text of the same objects as :func:`latex`.

    ``lhs``: text put in front as ``lhs = …``, on the formula's baseline
    (so a fraction's bar lines up with the ``=``).

    Examples
    --------
    >>> import symgrad as sg
    >>> x, w = sg.var("x"), sg.param("w", 0.5)
    >>> print(sg.pretty(sg.sigmoid(w * x)))
    σ(w⋅x)
    >>> print(sg.pretty(sg.sigmoid(w * x), lhs="ŷ"))
    ŷ = σ(w⋅x)
    """
    obj = _resolve(obj, "pretty", formula_options)
    if lhs is not None and not isinstance(lhs, str):
        raise GraphError(f"pretty: lhs must be a string, got {type(lhs).__name__}")
    if isinstance(obj, Printable):
        if lhs is not None and hasattr(obj, "renamed"):  # an index formula writes its own left-hand side
            return obj.renamed(lhs).pretty()
        text = obj.pretty()
        return text if lhs is None else f"{lhs} = {text}"
    return to_pretty(obj) if lhs is None else join_pretty([f"{lhs} = ", obj])


def to_pretty(expr: Any) -> str:
    flag = pretty_use_unicode(True)
    try:
        return _Pretty({"use_unicode": True, "wrap_line": False}).doprint(
            sympy.sympify(expr) if isinstance(expr, (int, float)) else expr)
    finally:
        pretty_use_unicode(flag)


def join_pretty(parts: list) -> str:
    """Strings and SymPy objects side by side on a common baseline, as text."""
    flag = pretty_use_unicode(True)
    try:
        printer = _Pretty({"use_unicode": True, "wrap_line": False})
        out = prettyForm("")
        for p in parts:
            form = prettyForm(p) if isinstance(p, str) else printer._print(
                sympy.sympify(p) if isinstance(p, (int, float)) else p)
            out = prettyForm(*out.right(form))
        return out.render(wrap_line=False)
    finally:
        pretty_use_unicode(flag)


def symbol_text(sym: Any) -> str:
    """One-line unicode of a symbol (``W₁``, ``δ_z₁``)."""
    return to_pretty(sym)


def partial_latex(num: Any, den: Any) -> str:
    return r"\frac{\partial %s}{\partial %s}" % (to_latex(num), to_latex(den))


def partial_text(num: Any, den: Any) -> str:
    return f"∂{symbol_text(num)}/∂{symbol_text(den)}"


def number_text(v: Any) -> str:
    """A float as short text (``0.3291``); arrays via NumPy."""
    import numpy as np
    arr = np.asarray(v)
    if arr.ndim == 0:
        return f"{float(arr):.6g}"
    return np.array2string(arr, precision=4, suppress_small=True)
