"""Scalar versions of symgrad's own SymPy functions, for the loops of the Numba backend.

The fused kernels (:mod:`.numba_kernels`) print each op's SymPy meaning as scalar Python; SymPy's
own functions become ``math`` calls and symgrad's (σ, softplus, the step, leaky ReLU, Φ, φ) become
calls of these, written as :mod:`symgrad.runtime` computes them (σ without overflow: ``exp`` only
ever sees −|x|).  They are small ``numba.njit`` functions that Numba inlines into the kernels.

>>> round(sigmoid(-800.0), 3), round(softplus(800.0), 1), step(0.0), leaky_relu(-2.0, 0.1)
(0.0, 800.0, 0.0, -0.2)
"""
from __future__ import annotations

import math

import numba

_OPTS = {"inline": "always", "error_model": "numpy"}
_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@numba.njit(**_OPTS)
def sigmoid(x):
    e = math.exp(-abs(x))
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
    return math.exp(-0.5 * xc * xc) * _INV_SQRT_2PI


#: SymPy function name -> name of its scalar version here
SCALAR_FUNCS = ("sigmoid", "softplus", "step", "relu", "leaky_relu", "leaky_step", "Phi", "phi")
