"""Optimizers as symbolic update rules, and learning-rate schedules.

Each optimizer writes its update as graph nodes built from the same ops as
the model: params θ, gradients g, state leaves (m, v, ...), the learning
rate η and the update count t go in; new θ and new state come out.  The
same rule serves twice:

* :func:`symgrad.compile_step` compiles it, together with the forward and
  backward passes, into one function that updates the arrays in place;
* :meth:`Optimizer.formulas` builds it on scalar symbols and prints it
  (SymPy expressions, LaTeX).

The rules follow PyTorch's definitions (``torch.optim``): coupled weight
decay adds λθ to the gradient, ``AdamW`` decays θ by (1 − ηλ) first.
Gradient clipping happens before weight decay: ``clip_value`` clamps each
entry to [−c, c]; ``clip_norm`` scales all gradients by c / max(‖g‖, c),
‖g‖ being the global norm over every gradient.

``lr`` is a float or a schedule: a callable of the update index
k = 0, 1, 2, ... (see :data:`schedules`).  It is checked when set (also
``opt.lr = ...`` after construction), and a schedule's value at every
update (:meth:`Optimizer.lr_at`): a negative, NaN or infinite rate raises
:class:`~symgrad.errors.OptimizerError` before anything moves.

Examples
--------
>>> import symgrad as sg
>>> print(sg.optim.SGD(lr=0.1, momentum=0.9).formulas())
b ← b⋅μ + g
θ ← -b⋅η + θ
"""
from .formulas import UpdateFormulas
from .optimizers import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSProp, UpdatePlan
from .schedules import Constant, Cosine, Exponential, LinearWarmup, Schedule, StepDecay, schedules

__all__ = ["Optimizer", "SGD", "AdaGrad", "RMSProp", "Adam", "AdamW", "UpdateFormulas", "UpdatePlan",
           "Schedule", "schedules"]
