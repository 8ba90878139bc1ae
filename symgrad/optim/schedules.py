"""Learning-rate schedules: a rate as a function of the update index k = 0, 1, 2, ...

Each schedule evaluates (``schedule(k)``) and prints (``schedule.formula()``,
a SymPy expression in ``k``); :data:`schedules` names them for
``sg.optim.schedules.step(0.1, step_size=10)``.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import sympy

from ..errors import OptimizerError

__all__ = ["Schedule", "schedules"]


def _positive(value: Any, what: str, allow_zero: bool = False) -> float:
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise OptimizerError(f"{what} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise OptimizerError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise OptimizerError(f"{what} must be a finite {'non-negative' if allow_zero else 'positive'} number, "
                             f"got {value!r}")
    return x


def _count(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise OptimizerError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _decay(value: Any, what: str) -> float:
    """A decay factor γ in (0, 1]: γ > 1 would grow the rate without bound (γᵏ overflows after about
    700 / ln γ updates) and training with it diverges long before."""
    x = _positive(value, what)
    if x > 1.0:
        raise OptimizerError(f"{what} must be in (0, 1] (a factor the rate decays by), got {value!r}")
    return x


def _index(k: Any, what: str) -> int:
    """An update index k = 0, 1, 2, ..."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0:
        raise OptimizerError(f"{what}: the update index must be an int k >= 0, got {k!r}")
    return int(k)


_K = sympy.Symbol("k", integer=True, nonnegative=True)


class Schedule:
    """A learning rate as a function of the update index k = 0, 1, 2, ...

    ``schedule(k)`` is the rate used by update number k + 1 (k an int >= 0,
    else :class:`~symgrad.errors.OptimizerError`);
    ``schedule.formula()`` is the same as a SymPy expression in ``k``.
    """

    def __call__(self, k: int) -> float:
        raise NotImplementedError  # pragma: no cover  (abstract)

    def formula(self) -> sympy.Expr:
        raise NotImplementedError  # pragma: no cover  (abstract)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _base(lr: Any, what: str) -> float | Schedule:
    if isinstance(lr, Schedule):
        return lr
    return _positive(lr, what)


class Constant(Schedule):
    """η_k = lr."""

    def __init__(self, lr: float):
        self.lr = _positive(lr, "schedules.constant: lr")

    def __call__(self, k: int) -> float:
        _index(k, "schedules.constant")
        return self.lr

    def formula(self) -> sympy.Expr:
        return sympy.Float(self.lr)


class StepDecay(Schedule):
    """η_k = lr · γ^⌊k / step_size⌋: multiply by ``gamma`` (0 < γ ≤ 1) every ``step_size`` updates."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1):
        self.lr = _positive(lr, "schedules.step: lr")
        self.step_size = _count(step_size, "schedules.step: step_size")
        self.gamma = _decay(gamma, "schedules.step: gamma")

    def __call__(self, k: int) -> float:
        return self.lr * self.gamma ** (_index(k, "schedules.step") // self.step_size)

    def formula(self) -> sympy.Expr:
        return sympy.Float(self.lr) * sympy.Float(self.gamma) ** sympy.floor(_K / self.step_size)


class Exponential(Schedule):
    """η_k = lr · γ^k, with 0 < γ ≤ 1 (a γ above 1 is refused: the rate would grow until it overflows).

    Examples
    --------
    >>> from symgrad.optim import schedules
    >>> schedules.exponential(0.1, gamma=0.5)(2)
    0.025
    """

    def __init__(self, lr: float, gamma: float):
        self.lr = _positive(lr, "schedules.exponential: lr")
        self.gamma = _decay(gamma, "schedules.exponential: gamma")

    def __call__(self, k: int) -> float:
        return self.lr * self.gamma ** _index(k, "schedules.exponential")

    def formula(self) -> sympy.Expr:
        return sympy.Float(self.lr) * sympy.Float(self.gamma) ** _K


class Cosine(Schedule):
    """η_k = η_min + (lr − η_min)(1 + cos(π min(k, T) / T)) / 2 over ``total_steps`` = T updates."""

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0):
        self.lr = _positive(lr, "schedules.cosine: lr")
        self.total_steps = _count(total_steps, "schedules.cosine: total_steps")
        self.min_lr = _positive(min_lr, "schedules.cosine: min_lr", allow_zero=True)
        if self.min_lr > self.lr:
            raise OptimizerError(f"schedules.cosine: min_lr {min_lr} is above lr {lr}")

    def __call__(self, k: int) -> float:
        frac = min(_index(k, "schedules.cosine"), self.total_steps) / self.total_steps
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def formula(self) -> sympy.Expr:
        T = self.total_steps
        lo, hi = sympy.Float(self.min_lr), sympy.Float(self.lr)
        return lo + (hi - lo) * (1 + sympy.cos(sympy.pi * sympy.Min(_K, T) / T)) / 2


class LinearWarmup(Schedule):
    """Rise linearly to ``lr`` over ``warmup_steps`` updates, then follow ``lr``.

    η_k = lr(0)·(k + 1)/W for k < W, then lr(k − W); ``lr`` is a float or
    another schedule (e.g. warmup then cosine decay).
    """

    def __init__(self, lr: float | Schedule, warmup_steps: int):
        self.lr = _base(lr, "schedules.linear_warmup: lr")
        self.warmup_steps = _count(warmup_steps, "schedules.linear_warmup: warmup_steps")

    def _after(self, k: int) -> float:
        return self.lr(k) if isinstance(self.lr, Schedule) else self.lr

    def __call__(self, k: int) -> float:
        k = _index(k, "schedules.linear_warmup")
        W = self.warmup_steps
        if k < W:
            return self._after(0) * (k + 1) / W
        return self._after(k - W)

    def formula(self) -> sympy.Expr:
        W = self.warmup_steps
        after = self.lr.formula() if isinstance(self.lr, Schedule) else sympy.Float(self.lr)
        return sympy.Piecewise((after.subs(_K, 0) * (_K + 1) / W, _K < W), (after.subs(_K, _K - W), True))


#: learning-rate schedules: ``sg.optim.schedules.step(0.1, step_size=10)``, ``.cosine``, ``.linear_warmup``...
schedules = SimpleNamespace(constant=Constant, step=StepDecay, exponential=Exponential, cosine=Cosine,
                            linear_warmup=LinearWarmup)
