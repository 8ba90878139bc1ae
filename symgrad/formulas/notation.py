"""Matrix notation: the SymPy objects tensor formulas are made of.

A node of shape ``()`` is a SymPy scalar, a vector ``(n,)`` is an n×1
column and a matrix ``(m, n)`` is m×n; symbolic dims (``"batch"``) become
positive integer symbols.  Broadcasting is written out with the ones
matrix: a bias ``b`` added to every row of ``X W`` is ``X W + 𝟙 bᵀ``, and
summing a matrix over its rows is ``δᵀ 𝟙``.

The functions ``add`` ... ``reshape`` below are the vocabulary that the
``matrix`` field of an :class:`~symgrad.ops.base.OpDef` is written in: the
formula builder calls ``op.matrix(node, args, notation)`` with ``args`` in
the form above.  An op without a rule is printed as its label applied to
its arguments (``σ(Z)``, ``softmax(Z)``) by :class:`~symgrad.formulas.opclasses.OpMatrix` or
:class:`~symgrad.formulas.opclasses.OpScalar`, whose entries still follow the op's ``sym`` rule.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import sympy
from sympy import HadamardPower, HadamardProduct, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix
from sympy.matrices.expressions.hadamard import hadamard_product
from sympy.matrices.expressions.matexpr import MatrixExpr

from ..errors import ShapeError
from ..graph import Node, format_shape
from ..ops.base import FUNCTION_OPS, get_op
from .opclasses import OpFunction, OpMatrix, OpScalar, _op_class, op_function

__all__ = ["dim", "matrix_shape", "leaf_symbol", "const_number", "const_value", "broadcast", "add", "sub",
           "neg", "mul", "div", "power", "matmul", "transpose", "reduce_sum", "reduce_mean", "count",
           "expand_dims", "reshape", "broadcast_like", "generic", "OpMatrix", "OpScalar", "OpFunction"]


# ------------------------------------------------------------ shapes
@functools.lru_cache(maxsize=None)
def _dim_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, positive=True)


def dim(d: int | str) -> sympy.Expr:
    """A dim as SymPy: an Integer, or a positive integer symbol for a named dim."""
    return sympy.Integer(d) if isinstance(d, int) else _dim_symbol(d)


def matrix_shape(shape: tuple, what: str = "node") -> tuple | None:
    """``()`` -> None (a scalar), ``(n,)`` -> ``(n, 1)``, ``(m, n)`` -> ``(m, n)``."""
    if len(shape) == 0:
        return None
    if len(shape) == 1:
        return dim(shape[0]), sympy.Integer(1)
    if len(shape) == 2:
        return dim(shape[0]), dim(shape[1])
    raise ShapeError(f"formula: matrix notation covers scalars, vectors and matrices, but {what} has shape "
                     f"{format_shape(shape)}; use formula(..., expand=True) with fixed shapes instead")


def leaf_symbol(name: str, shape: tuple) -> sympy.Basic:
    """The symbol of a named node: a real Symbol, or a MatrixSymbol of its matrix shape."""
    ms = matrix_shape(shape, name)
    return sympy.Symbol(name, real=True) if ms is None else MatrixSymbol(name, *ms)


def const_number(v: float) -> sympy.Expr:
    """A float as an exact number where it is a short decimal (0.1 -> 1/10)."""
    v = float(v)
    if not np.isfinite(v):
        return sympy.nan if np.isnan(v) else (sympy.oo if v > 0 else -sympy.oo)
    if v == int(v) and abs(v) < 1e15:
        return sympy.Integer(int(v))
    text = repr(v)
    mantissa = text.split("e")[0].replace("-", "").replace(".", "").lstrip("0")
    if len(mantissa) <= 8:
        return sympy.Rational(text)
    return _exact(v)


def _exact(v: float) -> sympy.Expr:
    """``v`` as the square root of a simple fraction (1/√6 = √6/6, √2) when it is that number to the last bit,
    else a Float (a rational that is no short decimal, 1/3, stays a float)."""
    from fractions import Fraction
    if 1e-6 < abs(v) < 1e6:
        f = Fraction(v * v).limit_denominator(1000)
        root = sympy.sqrt(sympy.Rational(f.numerator, f.denominator)) if 0 < f.numerator <= 10**6 else None
        if root is not None and not root.is_rational:
            if float(np.sqrt(float(f))) == abs(v) or float(1 / np.sqrt(float(1 / f))) == abs(v):
                return root if v > 0 else -root
    return sympy.Float(v)


_const_numbers = np.frompyfunc(const_number, 1, 1)


def const_value(value: np.ndarray) -> sympy.Basic:
    """A const array in matrix notation: a number, c·𝟙 for a constant fill, else an explicit matrix."""
    value = np.asarray(value, dtype=np.float64)
    if value.ndim == 0:
        return const_number(value)
    ms = matrix_shape(value.shape, "a constant")
    flat = value.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        c = const_number(flat[0])
        return ZeroMatrix(*ms) if c == 0 else c * OneMatrix(*ms)
    return sympy.ImmutableMatrix(_const_numbers(value.reshape(int(ms[0]), int(ms[1]))).tolist())


# ------------------------------------------------- the generic form
def generic(node: Node, args: list) -> Any:
    """``label(args)``: the fallback for ops without a matrix rule.

    A derived elementwise op that is not an activation's derivative
    (``∂bce/∂p``, not ``σ′``) is written out from its SymPy meaning when
    that meaning is made of sums, products, powers and other ops
    (``(P − Y) ⊘ (P ⊙ (𝟙 − P))``).
    """
    if node.op.elementwise:
        args = [a if i.shape == () else broadcast(a, i.shape, node.shape) for a, i in zip(args, node.inputs)]
        in_ndims = tuple(0 if i.shape == () else node.ndim for i in node.inputs)
        op = node.op
        if op.derivative_of is not None and not op.label.endswith("′") and node.shape != () and op.scalar:
            ts = sympy.symbols(f"t0:{op.nin}", real=True)
            meaning = sympy.sympify(op.scalar(*ts, **dict(node.attrs)))
            out = from_scalar(meaning, dict(zip(ts, args)), matrix_shape(node.shape))
            if out is not None:
                return out
    else:
        in_ndims = tuple(i.ndim for i in node.inputs)
    for i in node.inputs:
        matrix_shape(i.shape, i.describe())
    ms = matrix_shape(node.shape, node.describe())
    if ms is None:
        return _op_class(OpScalar, node.op, node.attrs, in_ndims)(*args)
    return _op_class(OpMatrix, node.op, node.attrs, in_ndims)(ms[0], ms[1], *args)


def from_scalar(expr: sympy.Expr, args: dict, shape: tuple) -> Any:
    """An elementwise SymPy expression in symbols standing for matrices, as matrix notation.

    Sums become matrix sums (a number c becomes c·𝟙), products Hadamard
    products, negative powers elementwise division, functions the ops
    that mean them.  None when some part has no matrix form.
    """
    def conv(e):
        if e in args:
            return args[e]
        if e.is_number:
            return e
        if isinstance(e, sympy.Add):
            parts = [conv(a) for a in e.args]
            if any(p is None for p in parts):
                return None
            out = parts[0] if isinstance(parts[0], MatrixExpr) else parts[0] * OneMatrix(*shape)
            for p in parts[1:]:
                out = out + (p if isinstance(p, MatrixExpr) else p * OneMatrix(*shape))
            return out
        if isinstance(e, sympy.Mul):
            coeff, num, den = sympy.Integer(1), [], []
            for f in e.args:
                if isinstance(f, sympy.Pow) and f.exp.is_number and f.exp < 0:
                    base = conv(f.base ** -f.exp)
                    (den if isinstance(base, MatrixExpr) else num).append(
                        base if isinstance(base, MatrixExpr) else (None if base is None else 1 / base))
                else:
                    num.append(conv(f))
            if any(p is None for p in num + den):
                return None
            mats = []
            for p in num:
                if isinstance(p, MatrixExpr):
                    mats.append(p)
                else:
                    coeff = coeff * p
            out = mats[0] if mats else OneMatrix(*shape)
            for m in mats[1:]:
                out = hadamard(out, m)
            if den:
                d = den[0]
                for m in den[1:]:
                    d = hadamard(d, m)
                out = HadamardPower(d, -1) if not mats else hadamard(out, HadamardPower(d, -1))
            return coeff * out
        if isinstance(e, sympy.Pow) and e.exp.is_number:
            base = conv(e.base)
            return None if base is None else HadamardPower(base, e.exp) if isinstance(base, MatrixExpr) \
                else base ** e.exp
        op = FUNCTION_OPS.get(type(e)) if isinstance(e, sympy.Function) and len(e.args) == 1 else None
        if op is not None:
            inner = conv(e.args[0])
            if isinstance(inner, MatrixExpr):
                return _op_class(OpMatrix, op, (), (2,))(shape[0], shape[1], inner)
        return None

    out = conv(expr)
    return out if isinstance(out, MatrixExpr) else None


# ------------------------------------------------------ broadcasting
def broadcast(a: Any, src: tuple, dst: tuple) -> Any:
    """``a`` (the form of an array of shape ``src``) broadcast to ``dst`` with ones matrices."""
    if tuple(src) == tuple(dst):
        return a
    ms = matrix_shape(dst)
    if ms is None:
        return a
    if len(src) == 0:
        return a * OneMatrix(*ms)
    if len(dst) == 1:  # (1,) -> (n,)
        return OneMatrix(ms[0], 1) * a
    row, src2 = (T(a), (1, src[0])) if len(src) == 1 else (a, tuple(src))
    out = row
    if src2[0] == 1 and dst[0] != 1:
        out = OneMatrix(ms[0], 1) * out
    if src2[1] == 1 and dst[1] != 1:
        out = out * OneMatrix(1, ms[1])
    return out


def _ones_coeff(a: Any) -> Any:
    """c when ``a`` is c·𝟙 (a broadcast scalar), else None."""
    if isinstance(a, OneMatrix):
        return sympy.Integer(1)
    if isinstance(a, ZeroMatrix):
        return sympy.Integer(0)
    if isinstance(a, MatMul):
        coeff, mats = a.as_coeff_matrices()
        if len(mats) == 1 and isinstance(mats[0], OneMatrix) and mats[0].shape == a.shape:
            return coeff
    return None


def _both(node: Node, args: list) -> tuple:
    return tuple(broadcast(a, i.shape, node.shape) for a, i in zip(args, node.inputs))


def split_coeff(a: Any) -> tuple:
    """``c M`` -> ``(c, M)`` for a scalar coefficient c (1 when there is none)."""
    if isinstance(a, MatMul):
        coeff, mats = a.as_coeff_matrices()
        if coeff != 1:
            return coeff, (mats[0] if len(mats) == 1 else MatMul(*mats))
    return sympy.Integer(1), a


class HeldTranspose(Transpose):
    """``(A ⊙ B)ᵀ`` kept whole: SymPy's Transpose distributes over ⊙ and + when evaluated."""

    def doit(self, **hints):
        arg = self.arg.doit(**hints) if hints.get("deep", True) else self.arg
        return T(arg)


def T(a: Any) -> Any:
    """Transpose, kept as ``(…)ᵀ`` around sums and Hadamard products (SymPy would distribute it)."""
    if not isinstance(a, MatrixExpr):
        return a
    if isinstance(a, (HadamardProduct, HadamardPower, MatAdd)):
        return HeldTranspose(a)
    if isinstance(a, MatMul):
        coeff, mats = a.as_coeff_matrices()
        return coeff * MatMul(*[T(m) for m in reversed(mats)]) if len(mats) > 1 else coeff * T(mats[0])
    if isinstance(a, (MatrixSymbol, Transpose, OneMatrix, ZeroMatrix, sympy.MatrixBase)):
        return a.T
    return HeldTranspose(a)


def hadamard(a: Any, b: Any) -> Any:
    """``A ⊙ B`` with scalar coefficients taken outside."""
    ca, ma = split_coeff(a)
    cb, mb = split_coeff(b)
    return (ca * cb) * hadamard_product(ma, mb)


# ------------------------------------------------- elementwise rules
def add(node: Node, args: list) -> Any:
    """``A + B`` (scalars are broadcast as c·𝟙)."""
    if node.shape == ():
        return args[0] + args[1]
    a, b = _both(node, args)
    return a + b


def sub(node: Node, args: list) -> Any:
    if node.shape == ():
        return args[0] - args[1]
    a, b = _both(node, args)
    return a - b


def neg(node: Node, args: list) -> Any:
    return -args[0]


def mul(node: Node, args: list) -> Any:
    """Scalar times matrix, or the Hadamard product ``A ⊙ B``."""
    (x, y), (a, b) = node.inputs, args
    if x.shape == () and y.shape == ():
        return a * b
    if x.shape == ():
        return a * broadcast(b, y.shape, node.shape)
    if y.shape == ():
        return b * broadcast(a, x.shape, node.shape)
    a, b = _both(node, args)
    ca, cb = _ones_coeff(a), _ones_coeff(b)
    if ca is not None:
        return ca * b
    if cb is not None:
        return cb * a
    return hadamard(a, b)


def div(node: Node, args: list) -> Any:
    """``A / c`` as ``(1/c) A``; elementwise division as ``A ⊙ B^{∘-1}``."""
    (x, y), (a, b) = node.inputs, args
    if y.shape == ():
        return broadcast(a, x.shape, node.shape) / b if x.shape != () else a / b
    bb = broadcast(b, y.shape, node.shape)
    cb = _ones_coeff(bb)
    if cb is not None:
        return broadcast(a, x.shape, node.shape) / cb
    inv = HadamardPower(bb, -1)
    if x.shape == ():
        return a * inv
    aa = broadcast(a, x.shape, node.shape)
    ca = _ones_coeff(aa)
    return ca * inv if ca is not None else hadamard(aa, inv)


def power(node: Node, args: list) -> Any:
    """``A^{∘p}`` for a scalar exponent; otherwise the generic form."""
    (x, y), (a, b) = node.inputs, args
    if x.shape == () and y.shape == ():
        return a ** b
    if y.shape == ():
        return HadamardPower(broadcast(a, x.shape, node.shape), b)
    return generic(node, args)


# ---------------------------------------------------- linear algebra
def matmul(node: Node, args: list) -> Any:
    """``A B``; a vector on the left is a column read as a row, ``vᵀ w`` is a scalar."""
    (x, y), (a, b) = node.inputs, args
    for i in node.inputs:
        matrix_shape(i.shape, i.describe())
    if x.ndim == 1 and y.ndim == 1:
        return generic(node, args)
    if x.ndim == 1:
        return T(b) * a
    return a * b


def transpose(node: Node, args: list) -> Any:
    (x,), (a,) = node.inputs, args
    if x.ndim == 2 and node.attr("axes") == (1, 0):
        return T(a)
    return a if x.ndim <= 1 else generic(node, args)


def reduce_sum(node: Node, args: list) -> Any:
    """Σ(A) over all entries; ``Aᵀ𝟙`` (column sums) and ``A𝟙`` (row sums) over one axis."""
    (x,), (a,) = node.inputs, args
    axes = tuple(range(x.ndim)) if node.attr("axis") is None else node.attr("axis")
    keep = node.attr("keepdims")
    if x.ndim == 0 or not axes:
        return a
    ms = matrix_shape(x.shape, x.describe())
    if len(axes) == x.ndim:
        coeff, m = split_coeff(a)
        total = coeff * _op_class(OpScalar, get_op("sum"), (("axis", None), ("keepdims", False)), (x.ndim,))(m)
        return total * OneMatrix(1, 1) if keep else total
    if axes == (0,):
        return OneMatrix(1, ms[0]) * a if keep else T(a) * OneMatrix(ms[0], 1)
    return a * OneMatrix(ms[1], 1)


def count(node: Node, args: list) -> Any:
    """The number of entries reduced: a product of dims."""
    x = node.inputs[0]
    axes = range(x.ndim) if node.attr("axis") is None else node.attr("axis")
    return sympy.Mul(*[dim(x.shape[i]) for i in axes])


def reduce_mean(node: Node, args: list) -> Any:
    return reduce_sum(node, args) / count(node, args)


def expand_dims(node: Node, args: list) -> Any:
    (x,), (a,) = node.inputs, args
    if node.ndim > 2:
        matrix_shape(node.shape, node.describe())
    if x.ndim == 0:
        return a * OneMatrix(*matrix_shape(node.shape))
    return T(a) if node.attr("axis") == (0,) else a


def reshape(node: Node, args: list) -> Any:
    """Same matrix: itself; a column to a row: its transpose; otherwise ``reshape(A)``."""
    x, a = node.inputs[0], args[0]
    src, dst = matrix_shape(x.shape, x.describe()), matrix_shape(node.shape, node.describe())
    if src == dst:
        return a
    if src is not None and dst is not None and (src[1], src[0]) == tuple(dst) and 1 in (src[0], src[1]):
        return T(a)
    return generic(node, args)


def broadcast_like(node: Node, args: list) -> Any:
    """``broadcast_like``/``broadcast_to``: written out with ones matrices."""
    return broadcast(args[0], node.inputs[0].shape, node.shape)
