"""Declaring elementwise ops from their SymPy meaning.

:func:`elementwise_op` makes the :class:`~symgrad.ops.base.OpDef` of an
elementwise op from a SymPy function of scalar symbols: its shape rule
(broadcasting), its meaning on object arrays, a NumPy implementation by
``sympy.lambdify`` when none is given, and a VJP from derivative ops that
SymPy derives (:func:`derivative_op`).  :func:`make_elementwise` is the
public form (``sg.elementwise``) for one-input ops.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import sympy

from .. import runtime
from ..errors import OpDefinitionError
from ..graph import Node, broadcast_shapes, finite_number
from . import sympy_funcs
from .base import REGISTRY, VJP, OpDef, apply, objarray, register

__all__ = ["elementwise_op", "derivative_op", "make_elementwise", "NUMPY_FUNCS"]


def _elementwise_sym(scalar: Callable, nin: int) -> Callable:
    def sym(*arrays, **attrs):
        f = np.frompyfunc(lambda *a: scalar(*a, **attrs), nin, 1)
        with np.errstate(all="ignore"):  # constants are NumPy floats: 1000.0**1000.0 is inf, as evaluated, silently
            return objarray(f(*arrays))
    return sym


def _elementwise_shape(name: str):
    def shape(nodes, **attrs):
        return broadcast_shapes(name, nodes)
    return shape


def elementwise_op(name: str, scalar: Callable[..., sympy.Expr], impl: Callable | None = None, *,
                   nin: int = 1, label: str | None = None, vjp: VJP | None | str = "derive",
                   domain: tuple | None = None, attr_names: tuple = (), derivative_of: tuple | None = None,
                   differentiable: bool = True, registered: bool = True, **spec: Any) -> OpDef:
    """Declare (and register) an elementwise op from its SymPy meaning.

    ``scalar(*symbols, **attrs)`` is the SymPy function.  ``impl`` is the
    NumPy implementation (by default SymPy's ``lambdify`` of ``scalar``).
    With ``vjp="derive"`` each input's derivative is taken by SymPy and
    becomes a new elementwise op, declared here with this one, so the
    gradient is ``g * f_i'(inputs)``.  (The derivative of a derived op, a
    second derivative, is made when a gradient first needs it and kept by
    that op; it is not registered.)  ``spec`` holds further
    :class:`OpDef` fields (``notation``, ``ufunc``, ``rewrite``...).
    """
    if impl is None:
        impl = _lambdify(scalar, nin, attr_names)
    spec.setdefault("fresh", True)  # NumPy's elementwise functions return new arrays (_lambdify too)
    derivatives: dict[int, OpDef] | None = None
    if vjp == "derive":
        derivatives = {} if differentiable else None
        vjp = _derived_vjp(derivatives) if differentiable else None
    op = OpDef(name=name, nin=nin, shape=_elementwise_shape(name), impl=impl,
               sym=_elementwise_sym(scalar, nin), vjp=vjp, label=label or name,
               scalar=scalar, elementwise=True, domain=domain or ((-2.0, 2.0),) * nin,
               attr_names=attr_names, derivative_of=derivative_of, **spec)
    if registered:
        register(op)
    if derivatives is not None and derivative_of is None:
        for i in range(nin):
            derivatives[i] = derivative_op(op, i)
    return op


def _symbols(nin: int) -> tuple:
    return sympy.symbols(f"t0:{nin}", real=True) if nin > 1 else (sympy.Symbol("t", real=True),)


#: NumPy implementations of symgrad's own SymPy functions, for ``sympy.lambdify``
NUMPY_FUNCS = {k: getattr(runtime, v) for k, v in sympy_funcs.RUNTIME_NAMES.items()}


def _lambdify(scalar: Callable, nin: int, attr_names: tuple) -> Callable:
    """NumPy implementation of a SymPy scalar function (via sympy.lambdify)."""
    ts = _symbols(nin)
    cache: dict = {}

    def impl(*arrays, **attrs):
        key = tuple(sorted(attrs.items()))
        f = cache.get(key)
        if f is None:
            expr = sympy.sympify(scalar(*ts, **attrs))
            f = cache[key] = sympy.lambdify(ts, expr, modules=[NUMPY_FUNCS, "numpy"])
        out = f(*arrays)
        if any(out is a for a in arrays):  # an identity-like meaning: never hand out an input array
            out = np.array(out, dtype=np.float64)
        shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
        return np.broadcast_to(np.asarray(out, dtype=np.float64), shape).copy() if np.shape(out) != shape \
            else np.asarray(out, dtype=np.float64)

    return impl


def derivative_op(op: OpDef, index: int, registered: bool = True) -> OpDef:
    """The elementwise op ``∂op/∂input[index]``, derived by SymPy."""
    name = f"{op.name}_prime" if op.nin == 1 else f"{op.name}_d{index}"
    ts = _symbols(op.nin)

    def dscalar(*args, **attrs):
        expr = sympy.diff(op.scalar(*ts, **attrs), ts[index])
        return expr.subs(dict(zip(ts, args)), simultaneous=True)

    label = f"{op.label}′" if op.nin == 1 else f"∂{op.label}/∂{index}"
    lo_hi = op.domain if op.domain else ((-2.0, 2.0),) * op.nin
    return elementwise_op(name, dscalar, nin=op.nin, label=label, domain=lo_hi, attr_names=op.attr_names,
                          derivative_of=(op.name, index), registered=registered)


def _derived_vjp(derivatives: dict[int, OpDef]) -> VJP:
    """g · ∂op/∂input_i for each needed input, from the op's derivative ops."""
    def vjp(node: Node, g: Node, needs: tuple) -> tuple:
        attrs = dict(node.attrs)
        out = []
        for i, need in enumerate(needs):
            if not need:
                out.append(None)
                continue
            if i not in derivatives:  # a derived op's own derivative: made once, kept here
                derivatives[i] = derivative_op(node.op, i, registered=False)
            out.append(g * apply(derivatives[i], *node.inputs, **attrs))
        return tuple(out)
    return vjp


def make_elementwise(fn: Any, name: str, *, label: str | None = None,
                     domain: tuple[float, float] = (-2.0, 2.0)) -> Callable[[Any], Node]:
    """Make a new elementwise op from a SymPy function of one symbol.

    ``fn`` is a callable taking a SymPy symbol (``lambda t: t*sigmoid(t)``),
    a ``sympy.Lambda``, or an expression in exactly one free symbol.  The
    derivative is taken by SymPy; the op prints, evaluates and
    differentiates like a built-in one.  Returns the function that applies
    the op to a node.

    Examples
    --------
    >>> import symgrad as sg
    >>> swish = sg.elementwise(lambda t: t * sg.sympy_sigmoid(t), "swish")
    >>> float(sg.evaluate(swish(sg.const(0.0)), {}))
    0.0
    """
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise OpDefinitionError(f"elementwise: name must be an identifier not starting with '_', got {name!r}")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise OpDefinitionError(f"elementwise {name!r}: label must be a non-empty string, got {label!r}")
    bounds = tuple(domain) if isinstance(domain, (tuple, list, np.ndarray)) and len(domain) == 2 else (None, None)
    lo, hi = (finite_number(b) for b in bounds)
    if lo is None or hi is None or not lo < hi:
        raise OpDefinitionError(f"elementwise {name!r}: domain must be a pair (low, high) of finite numbers "
                                f"with low < high, got {domain!r}")
    t = sympy.Symbol("t", real=True)
    if isinstance(fn, sympy.Lambda):
        if len(fn.variables) != 1:
            raise OpDefinitionError(f"elementwise {name!r}: the Lambda must take exactly one variable")
        expr = fn(t)
    elif isinstance(fn, sympy.Basic):
        free = sorted(fn.free_symbols, key=str)
        if len(free) != 1:
            raise OpDefinitionError(f"elementwise {name!r}: the expression must have exactly one "
                                    f"free symbol, found {[str(s) for s in free]}")
        expr = fn.subs(free[0], t)
    elif callable(fn):
        try:
            expr = sympy.sympify(fn(t), strict=True)  # strict: a returned string is not parsed
        except Exception as e:  # noqa: BLE001  whatever the user's function raised, said as an op error
            raise OpDefinitionError(f"elementwise {name!r}: fn must return a SymPy expression of its "
                                    f"argument; calling it on a symbol gave {type(e).__name__}: {e}") from e
    else:
        raise OpDefinitionError(f"elementwise {name!r}: expected a SymPy expression, Lambda or callable")
    extra = expr.free_symbols - {t}
    if extra:
        raise OpDefinitionError(f"elementwise {name!r}: the function uses symbols other than its "
                                f"argument: {sorted(str(s) for s in extra)}")
    if name in REGISTRY:
        existing = REGISTRY[name]
        if existing.scalar is not None and sympy.simplify(existing.scalar(t) - expr) == 0:
            op = existing
        else:
            raise OpDefinitionError(f"elementwise: an op named {name!r} is already registered")
    else:
        op = elementwise_op(name, sympy.Lambda(t, expr), label=label or name, domain=((lo, hi),))

    def apply_op(x: Any, name: str | None = None) -> Node:
        return apply(op, x, name=name)

    apply_op.__name__ = name
    apply_op.op = op  # type: ignore[attr-defined]
    return apply_op
