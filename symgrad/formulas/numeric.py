"""Numbers from formulas: substitute values into a SymPy formula and compute it.

Works on scalar formulas and on matrix notation alike, so a printed
equation can be checked against :func:`symgrad.evaluate`.  Matrix products,
sums, transposes, Hadamard products and powers are computed by NumPy; an
op printed by its label (``σ(Z)``) runs the op's own implementation.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import sympy
from sympy import (HadamardPower, HadamardProduct, Identity, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose,
                   ZeroMatrix)

from ..errors import FeedError, GraphError
from ..graph import real_array
from ..ops.declare import NUMPY_FUNCS
from .notation import OpFunction, OpMatrix, OpScalar

_FUNCS: dict = {}


def numeric(expr: Any, values: Mapping[str, Any]) -> Any:
    """Compute ``expr`` with ``values`` for its symbols, by name.

    Parameters
    ----------
    expr : a formula (scalar or matrix notation, as from :func:`formula`).
    values : symbol name -> number or array (vectors as 1-D arrays, matrices
        as 2-D), including sizes of symbolic dims (``{"batch": 4}``).

    Returns
    -------
    A float or a NumPy array in matrix form (vectors as columns).

    Examples
    --------
    >>> import symgrad as sg
    >>> X = sg.var("X", shape=("batch", 2)); W = sg.param("W", [[1.0], [2.0]])
    >>> f = sg.formula(X @ W)
    >>> sg.formulas.numeric(f, {"X": [[1.0, 1.0]], "W": [[1.0], [2.0]], "batch": 1})
    array([[3.]])
    """
    if not isinstance(values, Mapping):
        raise FeedError(f"numeric: values must be a mapping of symbol names to numbers, got {type(values).__name__}")
    if not isinstance(expr, (sympy.Basic, sympy.MatrixBase, int, float)) or isinstance(expr, bool):
        raise GraphError(f"numeric: expected a SymPy formula (as from sg.formula), got {type(expr).__name__}")
    env = {str(k): v for k, v in values.items()}
    with np.errstate(all="ignore"):  # inf and nan come back as values, as from sg.evaluate
        ev = _Numeric(env)
        if isinstance(expr, sympy.MatrixBase):  # expand=True: one formula per entry
            return np.array([[float(ev.run(expr[i, j])) for j in range(expr.cols)] for i in range(expr.rows)])
        return ev.run(expr)


class _Numeric:
    def __init__(self, env: dict):
        self.env = env
        self.memo: dict = {}

    def run(self, e: Any) -> Any:
        if e in self.memo:
            return self.memo[e]
        out = self._eval(e)
        self.memo[e] = out
        return out

    def _lookup(self, name: str) -> Any:
        if name not in self.env:
            raise FeedError(f"numeric: no value for symbol {name!r}; known: {sorted(self.env)}")
        return real_array(self.env[name], f"numeric: the value of {name!r}").astype(np.float64)

    def _eval(self, e: Any) -> Any:
        if isinstance(e, (int, float)):
            return float(e)
        if isinstance(e, MatrixSymbol):
            v = self._lookup(e.name)
            return v.reshape(-1, 1) if v.ndim == 1 else v
        if isinstance(e, OneMatrix):
            return np.ones(self._dims(e.shape))
        if isinstance(e, ZeroMatrix):
            return np.zeros(self._dims(e.shape))
        if isinstance(e, Identity):
            return np.eye(self._dims(e.shape)[0])
        if isinstance(e, sympy.MatrixBase):
            return np.array(e.evalf().tolist(), dtype=np.float64)
        if isinstance(e, MatMul):
            out: Any = 1.0
            for a in e.args:
                v = self.run(a)
                out = out @ v if np.ndim(out) == 2 and np.ndim(v) == 2 else out * v
            return out
        if isinstance(e, (MatAdd, sympy.Add)):
            return _sum([self.run(a) for a in e.args])
        if isinstance(e, HadamardProduct):
            return _prod([self.run(a) for a in e.args])
        if isinstance(e, (HadamardPower, sympy.Pow)):
            return np.power(self.run(e.args[0]), self.run(e.args[1]))
        if isinstance(e, Transpose):
            return self.run(e.arg).T
        if isinstance(e, (OpMatrix, OpScalar, OpFunction)):
            out = e._numeric([self.run(a) for a in e.operands])
            return float(out) if isinstance(e, (OpScalar, OpFunction)) else out
        if isinstance(e, sympy.Mul):
            return _prod([self.run(a) for a in e.args])
        if isinstance(e, sympy.Symbol):
            v = self._lookup(e.name)
            return float(v) if v.ndim == 0 else v
        if isinstance(e, (sympy.Max, sympy.Min)):
            return _extreme(np.maximum if isinstance(e, sympy.Max) else np.minimum, [self.run(a) for a in e.args])
        if isinstance(e, sympy.Piecewise):  # before Function, which it is: computed for whole arrays
            syms = sorted(e.free_symbols, key=str)
            return sympy.lambdify(syms, e, modules=[NUMPY_FUNCS, "numpy"])(*[self.run(s) for s in syms])
        if isinstance(e, sympy.Function):  # before numbers: softplus(1) is a number SymPy cannot compute
            return self._function(e)
        if isinstance(e, sympy.Number) or e.is_number:
            return _real(e)
        raise GraphError(f"numeric: cannot compute {type(e).__name__} ({e})")

    def _dims(self, shape) -> tuple:
        return tuple(int(self.run(d)) for d in shape)

    def _function(self, e: Any) -> Any:
        args = [self.run(a) for a in e.args]
        dummies = sympy.symbols(f"t0:{len(args)}")
        key = (e.func, len(args))
        f = _FUNCS.get(key)
        if f is None:
            f = _FUNCS[key] = sympy.lambdify(dummies, e.func(*dummies), modules=[NUMPY_FUNCS, "numpy"])
        return f(*args)


def _real(e: Any) -> float:
    """A SymPy number as a float; nan for a non-real one (zoo, I·π), as NumPy's real arithmetic gives."""
    try:
        return float(e)
    except TypeError:
        pass
    try:
        complex(e)
    except TypeError:
        raise GraphError(f"numeric: cannot compute the number {e}") from None
    return float("nan")


def _extreme(fn: Any, vals: list) -> Any:
    out = vals[0]
    for v in vals[1:]:
        out = fn(out, v)
    return out


def _sum(vals: list) -> Any:
    out = vals[0]
    for v in vals[1:]:
        out = out + v
    return out


def _prod(vals: list) -> Any:
    out = vals[0]
    for v in vals[1:]:
        out = out * v
    return out
