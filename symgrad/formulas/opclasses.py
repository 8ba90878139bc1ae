"""The SymPy classes of an op applied to matrix-notation arguments, printed as its label (``σ(Z)``).

:class:`OpMatrix` has a matrix result, :class:`OpScalar` a scalar one
(``Σ(A)``), and :class:`OpFunction` is a scalar op kept unexpanded
(``σ′(z)``).  One class is made per op use (op, attrs, input ranks) by
:func:`_op_class`; its entries follow the op's ``sym`` rule, through the
NumPy conversions ``to_numpy`` and ``from_numpy`` below.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy
from sympy import Basic
from sympy.matrices.expressions.matexpr import MatrixExpr

from ..errors import ShapeError
from .labels import apply_latex, apply_pretty, latex_label

__all__ = ["OpMatrix", "OpScalar", "OpFunction", "op_function"]


# ---------------------------------------------------- conversions
def to_numpy(m: Any, ndim: int, obj: bool = True) -> np.ndarray:
    """An explicit matrix (or scalar) in matrix form -> a NumPy array of ``ndim`` dims."""
    if ndim == 0:
        if isinstance(m, np.ndarray):
            return m.reshape(())
        arr = np.empty((), dtype=object if obj else np.float64)
        arr[()] = m
        return arr
    arr = np.array(m.tolist() if hasattr(m, "tolist") else m, dtype=object if obj else np.float64)
    return arr.reshape(-1) if ndim == 1 else arr


def from_numpy(arr: np.ndarray, explicit: bool = True) -> Any:
    """A NumPy array (object or float) -> matrix form (scalar, column, matrix)."""
    arr = np.asarray(arr)
    if arr.ndim == 0:
        return arr[()]
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ShapeError(f"formula: cannot write an array of shape {arr.shape} as a matrix")
    return sympy.ImmutableMatrix(arr.tolist()) if explicit else arr


def _explicit(m: Any) -> Any:
    if isinstance(m, MatrixExpr) and not isinstance(m, sympy.MatrixBase):
        return m.as_explicit()
    return m


# ----------------------------------------------------- op classes
class _OpMixin:
    """Printing shared by the op-applied classes (label applied to arguments)."""

    op: Any = None
    attrs: tuple = ()

    def _label_parts(self) -> tuple[str, str]:
        sub = _attr_subscript(self.op, self.attrs, self._ndims())
        return self.op.label, sub

    def _ndims(self) -> tuple:
        return ()

    def _written_out(self) -> Any:
        """The form this op use prints as, when matrix notation has one: a vector·vector product is ``xᵀw``."""
        style = getattr(self.op.notation, "style", None)
        if style == "product" and tuple(self.in_ndims) == (1, 1) and len(self.operands) == 2:
            a, b = self.operands
            return sympy.MatMul(sympy.Transpose(a), b)
        return None

    @property
    def precedence(self) -> int:  # read by SymPy's printers for parentheses: xᵀw binds as a product
        from sympy.printing.precedence import PRECEDENCE
        return PRECEDENCE["Mul"] if self._written_out() is not None else PRECEDENCE["Atom"]

    def _latex(self, printer, exp=None):
        form = self._written_out()
        if form is not None:
            body = printer._print(form)
            return body if exp is None else r"\left(%s\right)^{%s}" % (body, exp)
        notation = self.op.notation
        if getattr(notation, "style", None) == "infix" and len(self.operands) == 2:  # an Iverson bracket [P > 0]
            a, b = (printer._print(x) for x in self.operands)
            body = r"\left[%s %s %s\right]" % (a, latex_label(notation.symbol or self.op.label), b)
            return body if exp is None else r"%s^{%s}" % (body, exp)
        label, sub = self._label_parts()
        return apply_latex(latex_label(label), sub, [printer._print(a) for a in self.operands], exp)

    def _pretty(self, printer):
        form = self._written_out()
        if form is not None:
            return printer._print(form)
        from sympy.printing.pretty.stringpict import prettyForm
        notation = self.op.notation
        style = getattr(notation, "style", None)
        if style == "infix" and len(self.operands) == 2:  # a comparison as an Iverson bracket [P > 0]
            a, b = (printer._print(x) for x in self.operands)
            inner = prettyForm(*a.right(f" {notation.symbol or self.op.label} ", b))
            return prettyForm(*inner.parens("[", "]"))
        if style == "bars" and notation.symbol == "|" and len(self.operands) == 1:  # |P - T|
            return prettyForm(*printer._print(self.operands[0]).parens("|", "|"))
        label, sub = self._label_parts()
        if len(self.operands) == 1 and getattr(getattr(self.operands[0], "op", None), "notation", None) is not None \
                and self.operands[0].op.notation.style == "bars":  # Σ|P - T|: the bars are the parentheses
            head, args = prettyForm(label + (f"_{sub}" if sub else "")), printer._print(self.operands[0])
            out = prettyForm(*head.right(args), binding=prettyForm.FUNC)
            out.prettyFunc, out.prettyArgs = head, args  # what SymPy's power printing reads
            return out
        return apply_pretty(printer, label + (f"_{sub}" if sub else ""), self.operands)

    def _sympystr(self, printer):
        return f"{self.op.name}({', '.join(printer._print(a) for a in self.operands)})"

    def _numeric(self, values: list) -> Any:
        ndims = self.in_ndims or (0,) * len(values)
        arrays = [to_numpy(v, nd, obj=False) if nd else v for v, nd in zip(values, ndims)]
        return from_numpy(np.asarray(self.op.impl(*arrays, **dict(self.attrs)), dtype=np.float64), explicit=False)


def _attr_subscript(op, attrs: tuple, ndims: tuple) -> str:
    parts = []
    for key, value in attrs:
        if value is None or key == "keepdims":  # the shape of the result says whether axes were kept
            continue
        if key == "axis" and ndims and value in ((ndims[0] - 1,), ndims[0] - 1):
            continue  # the last axis is the default reading (softmax of each row)
        if key == "num_classes":
            continue  # one_hot's width is the shape of its result
        if key in ("axis", "axes") and isinstance(value, tuple) and len(value) == 1:
            value = value[0]
        parts.append(f"{key}={value}")
    return ",".join(parts)


class OpMatrix(_OpMixin, MatrixExpr):
    """An op applied to matrix-notation arguments, with a matrix result.

    ``args`` are ``(rows, cols, *operands)``; the op, its attrs and the
    NumPy ranks of its inputs are class attributes (one class per op use,
    made by :func:`_op_class`).
    """

    in_ndims: tuple = ()

    def __new__(cls, rows, cols, *operands):
        return Basic.__new__(cls, sympy.sympify(rows), sympy.sympify(cols), *operands)

    @property
    def shape(self):
        return self.args[0], self.args[1]

    @property
    def operands(self) -> tuple:
        return self.args[2:]

    def _ndims(self) -> tuple:
        return self.in_ndims

    def as_explicit(self):
        arrays = [to_numpy(_explicit(a), nd) for a, nd in zip(self.operands, self.in_ndims)]
        out = self.op.sym(*arrays, **dict(self.attrs))
        return from_numpy(np.asarray(out, dtype=object).reshape(tuple(int(d) for d in self.shape)))

    def _entry(self, i, j, **kwargs):
        return self.as_explicit()[i, j]


class OpScalar(_OpMixin, sympy.Expr):
    """An op applied to matrix-notation arguments, with a scalar result (``Σ(A)``)."""

    in_ndims: tuple = ()
    is_commutative = True

    def __new__(cls, *operands):
        return Basic.__new__(cls, *operands)

    @property
    def operands(self) -> tuple:
        return self.args

    def _ndims(self) -> tuple:
        return self.in_ndims

    def doit(self, **hints):
        ops = [a.doit(**hints) if isinstance(a, Basic) else a for a in self.operands]
        if all(not isinstance(a, MatrixExpr) or isinstance(a, sympy.MatrixBase) for a in ops):
            arrays = [to_numpy(a, nd) for a, nd in zip(ops, self.in_ndims)]
            return np.asarray(self.op.sym(*arrays, **dict(self.attrs)), dtype=object).reshape(())[()]
        return self.func(*ops)


class OpFunction(_OpMixin, sympy.Function):
    """A scalar op kept unexpanded (``σ′(z)``); :meth:`meaning` is its SymPy definition."""

    @property
    def operands(self) -> tuple:
        return self.args

    def meaning(self) -> sympy.Expr:
        return sympy.sympify(self.op.scalar(*self.args, **dict(self.attrs)))

    def fdiff(self, argindex=1):
        return sympy.diff(self.meaning(), self.args[argindex - 1])


_CLASSES: dict = {}


def _op_class(base: type, op, attrs: tuple, in_ndims: tuple) -> type:
    key = (base, op, attrs, in_ndims)  # the OpDef itself (hashed by identity), not its name
    cls = _CLASSES.get(key)
    if cls is None:
        body = {"op": op, "attrs": attrs, "in_ndims": in_ndims}
        if base is OpFunction:
            body["nargs"] = op.nin
        cls = _CLASSES[key] = type(op.name, (base,), body)
    return cls


def op_function(op, attrs: tuple = ()) -> type:
    """The unexpanded SymPy function class of a scalar op (one per op and attrs)."""
    return _op_class(OpFunction, op, attrs, ())
