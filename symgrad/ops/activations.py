"""Elementwise activations and bounds: GELU, ELU, SiLU, the Heaviside step, minimum and clip.

Each op is declared from its SymPy meaning (:func:`~symgrad.ops.declare.elementwise_op`) with a
NumPy kernel that stays finite and silent at any finite input.  The derivative of an activation
is an op of its own, declared with it (``GELU′``): its meaning is the SymPy derivative of the
activation's meaning, its kernel a stable NumPy formula.

GELU is the exact (erf) form ``x·Φ(x)``, with ``Φ`` the standard normal CDF.  NumPy has no erf,
so :func:`erf` below is one: Chebyshev interpolants of erf (and of the scaled complement
``erfc(z)·exp(z²)``) whose coefficients are computed with mpmath the first time they are needed;
it agrees with ``math.erf`` to a few ulps.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import sympy
from numpy.polynomial import chebyshev

from .. import runtime
from ..errors import GraphError
from ..graph import Node, finite_number
from .base import apply, as_node
from .declare import elementwise_op
from .sympy_funcs import cdf_limits
from .sympy_funcs import sigmoid as _sp_sigmoid

__all__ = ["gelu", "elu", "silu", "step", "minimum", "clip", "erf", "normal_cdf", "normal_pdf", "Phi", "phi"]


# ------------------------------------------------------------ kernels
_ERF_SMALL = 2.0  # |z| below: erf(z) = z·A(z²); from here to _ERF_ONE: 1 − exp(−z²)·B(1/z); beyond: ±1
_ERF_ONE = 6.0    # erfc(6) = 2e-17: erf is 1 to double precision from here on


def _chebyshev_coefficients(f: Callable, lo: Any, hi: Any, degree: int) -> np.ndarray:
    """Chebyshev coefficients of ``f`` on [lo, hi] (interpolation at the Chebyshev points), computed
    in 30-digit arithmetic so that the rounded coefficients carry no error of their own."""
    import mpmath as mp
    with mp.workdps(30):
        lo, hi, n = mp.mpf(lo), mp.mpf(hi), degree + 1
        angles = [mp.pi * (k + mp.mpf(1) / 2) / n for k in range(n)]
        values = [f(lo + (hi - lo) * (mp.cos(t) + 1) / 2) for t in angles]
        return np.array([float((2 if j else 1) * mp.fsum(v * mp.cos(j * t) for v, t in zip(values, angles)) / n)
                         for j in range(n)])


@functools.lru_cache(maxsize=None)
def _erf_tables() -> tuple[np.ndarray, np.ndarray]:
    import mpmath as mp
    small = _chebyshev_coefficients(lambda w: mp.erf(mp.sqrt(w)) / mp.sqrt(w), 0, _ERF_SMALL ** 2, 20)
    scaled_tail = _chebyshev_coefficients(lambda v: mp.erfc(1 / v) * mp.exp(1 / v ** 2),
                                          mp.mpf(1) / _ERF_ONE, mp.mpf(1) / _ERF_SMALL, 14)
    return small, scaled_tail


def erf(x: Any) -> np.ndarray:
    """The error function, elementwise, in NumPy (float64; NaN stays NaN, ±∞ gives ±1).

    Examples
    --------
    >>> import math
    >>> from symgrad.ops.activations import erf
    >>> bool(abs(erf(0.5) - math.erf(0.5)) < 1e-15)
    True
    """
    small_c, tail_c = _erf_tables()
    z = np.asarray(x, dtype=np.float64)
    a = np.abs(z)
    out = np.where(a < _ERF_ONE, 0.0, np.sign(z))  # ±1 from 6 on; sign(NaN) is NaN
    small = a < _ERF_SMALL
    zs = z[small]
    out[small] = zs * chebyshev.chebval(zs * zs * (2 / _ERF_SMALL ** 2) - 1.0, small_c)
    mid = (a >= _ERF_SMALL) & (a < _ERF_ONE)
    am = a[mid]
    lo, hi = 1 / _ERF_ONE, 1 / _ERF_SMALL
    tail = np.exp(-am * am) * chebyshev.chebval((1.0 / am - lo) * (2 / (hi - lo)) - 1.0, tail_c)
    out[mid] = np.copysign(1.0 - tail, z[mid])
    return out


_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def normal_cdf(x: Any) -> np.ndarray:
    """Φ(x) = (1 + erf(x/√2))/2, the standard normal CDF (PyTorch's formula in its exact GELU)."""
    return 0.5 * (1.0 + erf(np.multiply(x, _SQRT1_2)))


def normal_pdf(x: Any) -> np.ndarray:
    """φ(x) = exp(−x²/2)/√(2π); x is clipped where φ is 0 anyway, so x² never overflows."""
    xc = np.clip(x, -40.0, 40.0)
    with np.errstate(under="ignore"):
        return np.exp(-0.5 * xc * xc) * _INV_SQRT_2PI


def _gelu(x):
    return np.multiply(x, normal_cdf(x))


def _gelu_prime(x):
    with np.errstate(under="ignore"):
        return normal_cdf(x) + np.multiply(x, normal_pdf(x))


def _elu(x, alpha=1.0):
    x = np.asarray(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _elu_prime(x, alpha=1.0):
    x = np.asarray(x)
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def _silu(x):
    return np.multiply(x, runtime.sigmoid(x))


def _silu_prime(x):
    """σ(x)·(1 + x·(1 − σ(x))): no product ever exceeds |x|."""
    s = runtime.sigmoid(x)
    return s * (1.0 + np.multiply(x, 1.0 - s))


def _clip(x, low=None, high=None):
    if low is None and high is None:
        return np.array(x, dtype=np.result_type(x, np.float32))
    return np.clip(x, low, high)


def _clip_prime(x, low=None, high=None):
    """1 inside [low, high], the bounds included (PyTorch's clamp passes the gradient there), else 0."""
    x = np.asarray(x)
    inside = np.ones(x.shape, dtype=bool)
    if low is not None:
        inside &= x >= low
    if high is not None:
        inside &= x <= high
    return inside.astype(np.result_type(x, np.float32))


# ------------------------------------------------------------ meanings
class Phi(sympy.Function):
    """Φ(t), the standard normal CDF; Φ′ = φ."""

    nargs = 1
    _imp_ = staticmethod(normal_cdf)  # what sympy.lambdify calls for Φ

    @classmethod
    def eval(cls, t):
        return cdf_limits(t)

    def fdiff(self, argindex=1):
        return phi(self.args[0])

    def _eval_rewrite_as_erf(self, t, **kwargs):
        return (1 + sympy.erf(t / sympy.sqrt(2))) / 2

    def _eval_evalf(self, prec):
        return self.rewrite(sympy.erf)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        return _latex_call(r"\Phi", printer, self.args[0], exp)

    def _pretty(self, printer):
        return _pretty_call("Φ", printer, self.args[0])


class phi(sympy.Function):
    """φ(t) = exp(−t²/2)/√(2π), the standard normal density; φ′(t) = −t·φ(t)."""

    nargs = 1
    _imp_ = staticmethod(normal_pdf)

    def fdiff(self, argindex=1):
        return -self.args[0] * phi(self.args[0])

    def _eval_rewrite_as_exp(self, t, **kwargs):
        return sympy.exp(-t ** 2 / 2) / sympy.sqrt(2 * sympy.pi)

    def _eval_evalf(self, prec):
        return self.rewrite(sympy.exp)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        return _latex_call(r"\varphi", printer, self.args[0], exp)

    def _pretty(self, printer):
        return _pretty_call("φ", printer, self.args[0])


def _latex_call(name: str, printer, arg, exp=None) -> str:
    base = r"%s\left(%s\right)" % (name, printer._print(arg))
    return base if exp is None else r"%s^{%s}" % (base, exp)


def _pretty_call(name: str, printer, arg):
    from sympy.printing.pretty.stringpict import prettyForm
    return prettyForm(*prettyForm(*printer._print(arg).parens()).left(name))


def _exact(v: float) -> sympy.Expr:
    """A float attribute in a SymPy meaning: ±∞, an integer, a short decimal as a fraction, else a Float."""
    if math.isinf(v):
        return sympy.oo if v > 0 else -sympy.oo
    if v == int(v) and abs(v) < 1e15:
        return sympy.Integer(int(v))
    text = repr(float(v))
    digits = text.split("e")[0].replace("-", "").replace(".", "").lstrip("0")
    return sympy.Rational(text) if len(digits) <= 8 else sympy.Float(v)


def _elu_meaning(t, alpha=1.0):
    return sympy.Piecewise((t, t > 0), (_exact(alpha) * (sympy.exp(t) - 1), True))


def _clip_meaning(t, low=None, high=None):
    pieces = ([(_exact(low), t < _exact(low))] if low is not None else []) + \
        ([(_exact(high), t > _exact(high))] if high is not None else [])
    return sympy.Piecewise(*pieces, (t, True)) if pieces else t


def _derivative_meaning(meaning: Callable) -> Callable:
    """``t -> d meaning/dt`` (with the op's attrs), taken by SymPy once per attrs."""
    t = sympy.Symbol("t", real=True)

    @functools.lru_cache(maxsize=None)
    def derivative(attrs: tuple) -> sympy.Expr:
        return sympy.diff(meaning(t, **dict(attrs)), t)

    def prime(x, **attrs):
        return derivative(tuple(sorted(attrs.items()))).subs(t, x)
    return prime


def _activation(name: str, meaning: Callable, impl: Callable, prime_impl: Callable, label: str, *,
                prime_vjp: Any = "derive", attr_names: tuple = (), **spec: Any) -> None:
    """Declare an activation and its derivative op ``<name>_prime``: the derivative's meaning is
    SymPy's derivative of ``meaning``, its NumPy kernel ``prime_impl``."""
    prime_name = f"{name}_prime"
    elementwise_op(prime_name, _derivative_meaning(meaning), prime_impl, label=f"{label}′", vjp=prime_vjp,
                   attr_names=attr_names, derivative_of=(name, 0), domain=spec.get("domain"))

    def vjp(node: Node, g: Node, needs: tuple) -> tuple:
        return (g * apply(prime_name, node.inputs[0], **dict(node.attrs)),)
    elementwise_op(name, meaning, impl, label=label, vjp=vjp, attr_names=attr_names, **spec)


def _elu_prime_vjp(node: Node, g: Node, needs: tuple) -> tuple:
    """ELU″ = α·eˣ for x ≤ 0 and 0 for x > 0, that is ELU′(x) − step(x) (step(0) = 0): no exp of a
    large x, as the derived Piecewise would compute."""
    x = node.inputs[0]
    return (g * (node - apply("step", x)),)


_activation("gelu", lambda t: t * Phi(t), _gelu, _gelu_prime, "GELU", domain=((-3.0, 3.0),))
_activation("elu", _elu_meaning, _elu, _elu_prime, "ELU", attr_names=("alpha",), prime_vjp=_elu_prime_vjp)
_activation("silu", lambda t: t * _sp_sigmoid(t), _silu, _silu_prime, "SiLU", domain=((-4.0, 4.0),))
_activation("clip", _clip_meaning, _clip, _clip_prime, "clip", attr_names=("low", "high"),
            prime_vjp=lambda n, g, needs: (None,), preserves_dtype=True)


def _minimum_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    """To the smaller input; a tie goes to the first, as sg.maximum's does."""
    a, b = n.inputs
    mask = apply("greater_equal", b, a)
    return (g * mask if needs[0] else None, g * (1.0 - mask) if needs[1] else None)


elementwise_op("minimum", sympy.Min, np.minimum, nin=2, label="min", vjp=_minimum_vjp, ufunc="minimum",
               commutative=True)


# ------------------------------------------------------ public functions
def _real(op: str, what: str, value: Any, finite: bool = True) -> float:
    """A number argument as a float (a bool, a node or a string is refused; ±∞ only when not ``finite``)."""
    number = finite_number(value)
    if number is None and not finite and isinstance(value, (float, np.floating)) and math.isinf(value):
        number = float(value)
    if number is None:
        kind = "a finite real number" if finite else "a real number (±inf allowed)"
        raise GraphError(f"{op}: {what} must be {kind}, got {value!r} ({type(value).__name__})")
    return number


def gelu(x: Any, name: str | None = None) -> Node:
    """GELU(x) = x·Φ(x), with Φ the standard normal CDF (the exact, erf form; PyTorch's default).

    Examples
    --------
    >>> import symgrad as sg
    >>> y = sg.gelu(sg.const([-1.0, 0.0, 1.0]))
    >>> sg.evaluate(y).round(6)
    array([-0.158655,  0.      ,  0.841345])
    >>> x = sg.var("x")
    >>> print(sg.pretty(sg.gelu(x)))
    x⋅Φ(x)
    """
    return apply("gelu", x, name=name)


def elu(x: Any, alpha: float = 1.0, name: str | None = None) -> Node:
    """ELU(x) = x for x > 0, α(eˣ − 1) otherwise (PyTorch's ``elu``; the gradient at 0 is α).

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.evaluate(sg.elu(sg.const([-1000.0, -1.0, 2.0]), alpha=0.5)).round(6)
    array([-0.5    , -0.31606,  2.     ])
    """
    return apply("elu", x, alpha=_real("elu", "alpha", alpha), name=name)


def silu(x: Any, name: str | None = None) -> Node:
    """SiLU(x) = x·σ(x) (also called swish), finite and silent for any finite x.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.evaluate(sg.silu(sg.const([-1000.0, 0.0, 2.0]))).round(6)
    array([-0.      ,  0.      ,  1.761594])
    """
    return apply("silu", x, name=name)


def step(x: Any, name: str | None = None) -> Node:
    """The Heaviside step: 1 where x > 0, 0 where x ≤ 0 (``np.heaviside(x, 0)``; NaN gives 0).

    Its gradient is 0 (the derivative almost everywhere), so nothing flows through it.  It is the
    op autodiff uses for ReLU′ and prints as such.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.evaluate(sg.step(sg.const([-2.0, 0.0, 3.0])))
    array([0., 0., 1.])
    """
    return apply("step", x, name=name)


def minimum(a: Any, b: Any, name: str | None = None) -> Node:
    """The elementwise minimum (``np.minimum``, broadcasting); the gradient goes to the smaller input,
    at a tie to ``a`` (as :func:`symgrad.maximum`'s to its first input).

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.evaluate(sg.minimum(sg.const([1.0, 5.0]), 3.0))
    array([1., 3.])
    """
    return apply("minimum", a, b, name=name)


def clip(x: Any, low: float | None = None, high: float | None = None, name: str | None = None) -> Node:
    """``x`` limited to [low, high] (``np.clip``; either bound may be None).

    The gradient is 1 inside the interval, bounds included, and 0 outside, as PyTorch's ``clamp``.
    The bounds are numbers; for bounds that are nodes write ``sg.minimum(sg.maximum(x, low), high)``.

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(4,))
    >>> sg.evaluate(sg.clip(x, -1.0, 1.0), {"x": [-3.0, -1.0, 0.5, 2.0]})
    array([-1. , -1. ,  0.5,  1. ])
    >>> sg.evaluate(sg.grad(sg.sum(sg.clip(x, -1.0, 1.0)), x), {"x": [-3.0, -1.0, 0.5, 2.0]})
    array([0., 1., 1., 0.])
    """
    x = as_node(x, "clip")
    bounds = {}
    for what, value in (("low", low), ("high", high)):
        if isinstance(value, Node):
            raise GraphError(f"clip: {what} must be a number or None, got the node {value.describe()}; for "
                             f"bounds that are nodes use sg.minimum(sg.maximum(x, low), high)")
        if value is not None:
            v = _real("clip", what, value, finite=False)
            bounds[what] = None if math.isinf(v) and (v < 0) == (what == "low") else v
        else:
            bounds[what] = None
    if low is None and high is None:
        raise GraphError(f"clip: give low, high or both ({x.describe()})")
    if bounds["low"] is not None and bounds["high"] is not None and bounds["low"] > bounds["high"]:
        raise GraphError(f"clip: low ({bounds['low']:g}) is above high ({bounds['high']:g}) ({x.describe()})")
    return apply("clip", x, low=bounds["low"], high=bounds["high"], name=name)
