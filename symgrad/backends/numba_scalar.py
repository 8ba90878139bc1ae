"""Scalar versions of symgrad's own SymPy functions, for the loops of the Numba backend.

The fused kernels (:mod:`.numba_kernels`) print each op's SymPy meaning as scalar Python; SymPy's
own functions become ``math`` calls and symgrad's (σ, softplus, the step, leaky ReLU, Φ, φ) become
calls of these, written as :mod:`symgrad.runtime` computes them (σ without overflow: ``exp`` only
ever sees −|x|).  They are small ``numba.njit`` functions that Numba inlines into the kernels.

``exp`` and ``tanh`` are written out here too, in arithmetic only: the C library's ``exp`` and
``tanh`` (which ``math.exp``, ``math.tanh`` and, on a CPU without AVX-512, NumPy's float64 ufuncs
call) work one number at a time, while a loop of additions, multiplications and one division is
vectorised by LLVM, four float64 lanes at a time with AVX2.  Both reduce the argument as
``y = k·ln 2 + r`` (|r| ≤ ln 2 / 2, ``k·ln 2`` in two parts so ``r`` is exact) and sum the Taylor
series of eʳ − 1 to the r¹³ term (the next term is below 10⁻¹⁷ of the sum); 2ᵏ is built from its
bits.  ``tanh(x) = −m / (2 + m)`` with ``m = eʸ − 1`` at ``y = −2|x|`` (so nothing cancels near 0),
signed like x; |x| > 20 gives ±1 exactly, as the C library does.  Measured over 9 million points
from 10⁻¹⁰ to 30 (``tests/test_backend_numba.py``): within 3 units in the last place of NumPy's
``tanh``, 0.44 on average; ``exp`` within 2 over its whole range, with inf, 0, subnormals and NaN
where NumPy has them.  On 2,048 numbers: 8 µs against 30–45 µs for ``np.tanh``.

>>> round(sigmoid(-800.0), 3), round(softplus(800.0), 1), step(0.0), leaky_relu(-2.0, 0.1)
(0.0, 800.0, 0.0, -0.2)
>>> [tanh(v) for v in (0.5, -0.0, 25.0)], exp(1.0), exp(-745.0), exp(710.0)
([0.46211715726000974, -0.0, 1.0], 2.7182818284590455, 5e-324, inf)
"""
from __future__ import annotations

import math

import numba
from numba import types
from numba.extending import intrinsic

_OPTS = {"inline": "always", "error_model": "numpy"}
_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_LN2 = 1.0 / math.log(2.0)
_LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits: k · _LN2_HI is exact for |k| < 2²⁰
_LN2_LO = 1.90821492927058770002e-10  # ln 2 − _LN2_HI
_ROUND = 6755399441055744.0  # 1.5 · 2⁵²: y + _ROUND rounds y to an integer held in the low bits
_ROUND_BITS = 0x4338000000000000  # the bits of _ROUND


@intrinsic
def _bits_of(typingctx, x):
    """The 64 bits of a float64, as an int64 (a no-op for the CPU: vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _float_of(typingctx, bits):
    """The float64 whose 64 bits are ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@numba.njit(**_OPTS)
def _expm1_reduced(r):
    """eʳ − 1 for |r| ≤ ln 2 / 2: the Taylor series to r¹³ by Horner's rule."""
    return r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
        1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
            1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (1.0 / 6227020800)))))))))))))


@numba.njit(**_OPTS)
def exp(x):
    y = 710.0 if x > 710.0 else x  # beyond: inf and 0 as the C library gives them; NaN passes through
    y = -746.0 if y < -746.0 else y
    kd = y * _INV_LN2 + _ROUND
    kf = kd - _ROUND  # k = round(y / ln 2)
    r = (y - kf * _LN2_HI) - kf * _LN2_LO
    k = _bits_of(kd) - _ROUND_BITS
    k1 = k >> 1  # 2ᵏ as 2^k1 · 2^k2, each a normal number, so subnormal results round once
    k2 = k - k1
    return ((1.0 + _expm1_reduced(r)) * _float_of((k1 + 1023) << 52)) * _float_of((k2 + 1023) << 52)


@numba.njit(**_OPTS)
def tanh(x):
    a = abs(x)
    a = 20.0 if a > 20.0 else a
    y = -2.0 * a
    kd = y * _INV_LN2 + _ROUND
    kf = kd - _ROUND
    r = (y - kf * _LN2_HI) - kf * _LN2_LO
    t = _float_of(((_bits_of(kd) - _ROUND_BITS) + 1023) << 52)  # 2ᵏ, k in [−58, 0]
    m = t * _expm1_reduced(r) + (t - 1.0)  # e^y − 1: exact steps when k = 0, no cancellation else
    return math.copysign(-m / (2.0 + m), x)


@numba.njit(**_OPTS)
def sigmoid(x):
    e = exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


@numba.njit(**_OPTS)
def softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@numba.njit(**_OPTS)
def step(x):
    return 1.0 if x > 0 else 0.0


@numba.njit(**_OPTS)
def relu(x):
    return x if x > 0 or x != x else 0.0  # NaN stays NaN, as in np.maximum(x, 0.0)


@numba.njit(**_OPTS)
def leaky_relu(x, alpha):
    return x if x > 0 else alpha * x


@numba.njit(**_OPTS)
def leaky_step(x, alpha):
    return 1.0 if x > 0 else alpha


@numba.njit(**_OPTS)
def Phi(x):  # noqa: N802  the name of the SymPy function it computes
    return 0.5 * (1.0 + math.erf(x * _SQRT1_2))


@numba.njit(**_OPTS)
def phi(x):
    xc = min(max(x, -40.0), 40.0)
    return exp(-0.5 * xc * xc) * _INV_SQRT_2PI


#: SymPy function name -> name of its scalar version here
SCALAR_FUNCS = ("sigmoid", "softplus", "step", "relu", "leaky_relu", "leaky_step", "Phi", "phi", "exp", "tanh")
#: the functions here whose loops beat NumPy's ufunc (vectorised where the C library is not): a kernel of
#: one op is worth its Numba compile when it calls one of them
VECTOR_FUNCS = ("exp", "tanh", "sigmoid")
