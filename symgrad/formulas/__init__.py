"""Formulas: nodes as SymPy expressions, printed as a textbook would.

* :func:`formula` -- the SymPy formula of any node (a forward value, a
  loss, a gradient): a simplified ``sympy.Expr`` for scalar graphs, matrix
  notation (``Xᵀ(δ ⊙ σ′(Z))``) for tensor graphs, or one formula per
  entry with ``expand=True``; ``keep=`` writes it in named intermediates.
* :func:`latex`, :func:`pretty` -- LaTeX and unicode text of all of these;
  :func:`mathml` -- MathML a browser typesets (systems as aligned tables).
* :func:`chain_rule` -- every path from a leaf to the output with its
  local partial derivatives, symbolic and numeric, and their sum.
* :func:`backprop_equations` -- the δ of every named intermediate and the
  gradient of every parameter, as an ordered system of equations.

All of them read the graphs that :func:`symgrad.grad` builds; nothing is
differentiated again here.
"""
from .backprop import BackpropEquations, Equation, backprop_equations
from .build import formula
from .chain import ChainRule, Factor, Path, chain_rule
from .numeric import numeric
from .mathml import mathml
from .printing import latex, pretty

__all__ = ["formula", "latex", "pretty", "mathml", "chain_rule", "backprop_equations", "ChainRule", "Path", "Factor",
           "BackpropEquations", "Equation", "numeric"]
