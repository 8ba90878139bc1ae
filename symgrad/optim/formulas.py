"""An optimizer's update rule as SymPy expressions (:class:`UpdateFormulas`), and printing helpers."""
from __future__ import annotations

import sympy

from ..formulas.printing import Printable, join_pretty, to_latex, to_pretty
from ..graph import Node

__all__ = ["UpdateFormulas"]


def _to_sympy(node: Node, keep: dict | None = None) -> sympy.Expr:
    """The SymPy meaning of a scalar graph (the formula builder's); nodes in ``keep`` stay symbols."""
    from ..formulas.build import SCALAR, Builder
    return _tidy(Builder(SCALAR, keep).define(node))


def _tidy(expr: sympy.Expr) -> sympy.Expr:
    """Show −max(−a, −b) as min(a, b) (the clamp of ``clip_value`` is built from maximum)."""
    def is_neg_max(e):
        return e.is_Mul and len(e.args) == 2 and e.args[0] == -1 and isinstance(e.args[1], sympy.Max) \
            and all(a.could_extract_minus_sign() for a in e.args[1].args)
    return expr.replace(is_neg_max, lambda e: sympy.Min(*[-a for a in e.args[1].args]))


class _GlobalNorm(sympy.Function):
    """‖g‖, the norm over all gradients together (for printing a clip_norm rule); |g| on one number."""

    is_extended_real = True
    is_extended_nonnegative = True

    @classmethod
    def eval(cls, x):
        if x.is_number:
            return sympy.Abs(x)
        return None

    def _latex(self, printer) -> str:
        return r"\lVert %s \rVert" % printer._print(self.args[0])

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm
        bar = prettyForm("‖")
        return prettyForm(*bar.right(printer._print(self.args[0]), bar))

    def _sympystr(self, printer) -> str:
        return "norm(%s)" % printer._print(self.args[0])


class UpdateFormulas(Printable, dict):
    """The update rule as SymPy expressions: ``{name: new value}`` in update order.

    Keys are the names of the updated quantities (``"g"`` for a clipped or
    decayed gradient, state names such as ``"m"``, and ``"theta"``); the
    right-hand sides read the *old* values except where an earlier line
    defines a new one (``theta`` uses the new ``m``).  ``str()`` prints one
    line per update, ``latex()`` an aligned LaTeX block.
    """

    def pretty(self) -> str:
        """One update per line, ``lhs ← rhs`` on the formula's baseline."""
        return "\n".join(join_pretty([f"{to_pretty(sympy.Symbol(name))} ← ", expr]) for name, expr in self.items())

    def latex(self) -> str:
        rows = [f"{to_latex(sympy.Symbol(name))} &\\leftarrow {to_latex(expr)}" for name, expr in self.items()]
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def mathml(self) -> str:
        """One row per update, ``lhs ← rhs``, as a MathML table."""
        from ..formulas.mathml import Row, table
        return table([Row(sympy.Symbol(name), expr, "←") for name, expr in self.items()])
