"""SymPy functions for activations that SymPy does not have.

They differentiate (``fdiff``), evaluate at special points, rewrite to
``exp`` and print as a textbook would: ``σ(z)``, ``softplus(z)``,
``ReLU(z)``.
"""
from __future__ import annotations

import sympy


def cdf_limits(t):
    """The values every symmetric S-shaped CDF takes at 0, +∞ and −∞ (½, 1, 0); None elsewhere."""
    if t.is_zero:
        return sympy.Rational(1, 2)
    if t is sympy.oo:
        return sympy.Integer(1)
    if t is sympy.S.NegativeInfinity:
        return sympy.Integer(0)
    return None


class sigmoid(sympy.Function):
    """σ(t) = 1 / (1 + e^{-t})."""

    nargs = 1

    @classmethod
    def eval(cls, t):
        return cdf_limits(t)

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _eval_rewrite_as_exp(self, t, **kwargs):
        return 1 / (1 + sympy.exp(-t))

    def _eval_evalf(self, prec):
        return (1 / (1 + sympy.exp(-self.args[0])))._eval_evalf(prec) if self.args[0].is_number else None

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        base = r"\sigma\left(%s\right)" % printer._print(self.args[0])
        return base if exp is None else r"%s^{%s}" % (base, exp)

    def _sympystr(self, printer):
        return "sigmoid(%s)" % printer._print(self.args[0])

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm
        return prettyForm(*prettyForm(*printer._print(self.args[0]).parens()).left("σ"))

    def _numpycode(self, printer):
        return "sigmoid(%s)" % printer._print(self.args[0])


class softplus(sympy.Function):
    """softplus(t) = log(1 + e^t); its derivative is σ(t)."""

    nargs = 1

    @classmethod
    def eval(cls, t):
        if t.is_zero:
            return sympy.log(2)

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_log(self, t, **kwargs):
        return sympy.log(1 + sympy.exp(t))

    def _eval_rewrite_as_exp(self, t, **kwargs):
        return sympy.log(1 + sympy.exp(t))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real

    def _eval_evalf(self, prec):
        # a number: softplus(1) compares with other numbers (max(x, softplus(1)) needs that)
        return sympy.log(1 + sympy.exp(self.args[0]))._eval_evalf(prec) if self.args[0].is_number else None

    def _latex(self, printer, exp=None):
        base = r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])
        return base if exp is None else r"%s^{%s}" % (base, exp)

    def _numpycode(self, printer):
        return "softplus(%s)" % printer._print(self.args[0])


class step(sympy.Function):
    """Heaviside step with step(0) = 0: the derivative of ReLU."""

    nargs = 1

    @classmethod
    def eval(cls, t):
        if t.is_positive:
            return sympy.Integer(1)
        if t.is_nonpositive:
            return sympy.Integer(0)

    def fdiff(self, argindex=1):
        return sympy.Integer(0)  # zero almost everywhere, as autodiff frameworks take it

    def _latex(self, printer, exp=None):
        base = r"\mathbb{1}\left[%s > 0\right]" % printer._print(self.args[0])
        return base if exp is None else r"%s^{%s}" % (base, exp)

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm
        return prettyForm(*prettyForm(*printer._print(self.args[0]).parens()).left("𝟙"))

    def _numpycode(self, printer):
        return "step(%s)" % printer._print(self.args[0])


class relu(sympy.Function):
    """ReLU(t) = max(t, 0)."""

    nargs = 1

    @classmethod
    def eval(cls, t):
        if t.is_nonnegative:
            return t
        if t.is_nonpositive:
            return sympy.Integer(0)

    def fdiff(self, argindex=1):
        return step(self.args[0])

    def _eval_rewrite_as_Max(self, t, **kwargs):
        return sympy.Max(t, 0)

    def _latex(self, printer, exp=None):
        base = r"\operatorname{ReLU}\left(%s\right)" % printer._print(self.args[0])
        return base if exp is None else r"%s^{%s}" % (base, exp)

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm
        return prettyForm(*prettyForm(*printer._print(self.args[0]).parens()).left("ReLU"))

    def _numpycode(self, printer):
        return "relu(%s)" % printer._print(self.args[0])


class leaky_step(sympy.Function):
    """Derivative of leaky ReLU: 1 for t > 0, alpha otherwise."""

    nargs = 2

    @classmethod
    def eval(cls, t, alpha):
        if t.is_positive:
            return sympy.Integer(1)
        if t.is_nonpositive:
            return alpha

    def fdiff(self, argindex=1):
        return sympy.Integer(0)

    def _numpycode(self, printer):
        return "leaky_relu_prime(%s, %s)" % (printer._print(self.args[0]), printer._print(self.args[1]))


class leaky_relu(sympy.Function):
    """leaky_relu(t, α) = t for t > 0, α t otherwise."""

    nargs = 2

    @classmethod
    def eval(cls, t, alpha):
        if t.is_nonnegative:
            return t
        if t.is_nonpositive:
            return alpha * t

    def fdiff(self, argindex=1):
        if argindex == 1:
            return leaky_step(*self.args)
        t = self.args[0]
        return t * (1 - leaky_step(t, sympy.Integer(0)))

    def _latex(self, printer, exp=None):
        base = r"\operatorname{LeakyReLU}_{%s}\left(%s\right)" % (printer._print(self.args[1]),
                                                                    printer._print(self.args[0]))
        return base if exp is None else r"%s^{%s}" % (base, exp)

    def _numpycode(self, printer):
        return "leaky_relu(%s, %s)" % (printer._print(self.args[0]), printer._print(self.args[1]))


#: names the NumPy side of these functions has in :mod:`symgrad.runtime`
RUNTIME_NAMES = {"sigmoid": "sigmoid", "softplus": "softplus", "step": "step", "relu": "relu",
                 "leaky_step": "leaky_relu_prime", "leaky_relu": "leaky_relu"}
