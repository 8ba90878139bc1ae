"""The optimizers: clipping, weight decay and one update rule each, written as graph nodes."""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import numpy as np
import sympy

from ..errors import OptimizerError
from ..graph import Node
from ..ops import const, maximum, sqrt, var
from ..ops import sum as _sum
from .formulas import UpdateFormulas, _GlobalNorm, _to_sympy
from .schedules import _positive

__all__ = ["Optimizer", "SGD", "AdaGrad", "RMSProp", "Adam", "AdamW", "UpdatePlan"]


class UpdatePlan:
    """What :meth:`Optimizer.plan` built: one new value per param, and the state.

    ``new_params[i]`` is the node of param i after the update; ``states``
    lists ``(param, state name, state leaf var, new state node)``.
    """

    def __init__(self, new_params: list[Node], states: list[tuple[Node, str, Node, Node]]):
        self.new_params = new_params
        self.states = states


_RULE_LINES: dict = {}  # (class, repr) -> the rule's text: SymPy builds it in ~50 ms, each compile asks


class Optimizer:
    """Base class: clipping, weight decay, the learning rate, formulas.

    Subclasses set ``hyper`` (name -> value, and the symbol name it prints
    as), list their ``state_names`` and write :meth:`rule`.
    """

    #: symbol names for formulas (SymPy prints beta_1 as β₁ and \\beta_{1})
    SYMBOLS = {"lr": "eta", "momentum": "mu", "beta1": "beta_1", "beta2": "beta_2", "eps": "epsilon",
               "alpha": "alpha", "weight_decay": "lambda", "clip_norm": "c", "clip_value": "c"}

    def __init__(self, lr: float | Callable[[int], float], *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, clip_value: float | None = None):
        self.lr = lr
        self.weight_decay = _positive(weight_decay, f"{type(self).__name__}: weight_decay", allow_zero=True)
        self.clip_norm = None if clip_norm is None else _positive(clip_norm, f"{type(self).__name__}: clip_norm")
        self.clip_value = None if clip_value is None else _positive(clip_value, f"{type(self).__name__}: clip_value")

    # ------------------------------------------------------------ subclass API
    state_names: tuple[str, ...] = ()

    def hyper(self) -> dict[str, float]:
        """Hyperparameters of the rule (besides the learning rate), name -> value."""
        return {}

    def rule(self, theta: Node, g: Node, state: dict[str, Node], lr: Node, t: Node,
             h: dict[str, Node]) -> tuple[Node, dict[str, Node]]:
        """New θ and new state from θ, the (clipped) gradient, the state, η, t and hyperparameter nodes."""
        raise NotImplementedError  # pragma: no cover  (abstract)

    # ------------------------------------------------------------ learning rate
    @property
    def lr(self) -> float | Callable[[int], float]:
        """The learning rate: a positive finite float, or a schedule (any callable of the update
        index k = 0, 1, 2, ..., such as those of :data:`~symgrad.optim.schedules`).  Checked when
        set, so ``opt.lr = "fast"`` or ``opt.lr = float("nan")`` raises :class:`OptimizerError`
        at once; a schedule's values are checked by :meth:`lr_at` at every update."""
        return self._lr

    @lr.setter
    def lr(self, value: float | Callable[[int], float]) -> None:
        what = f"{type(self).__name__}: lr"
        if callable(value) and not isinstance(value, type):
            try:
                inspect.signature(value).bind(0)
            except TypeError:
                raise OptimizerError(f"{what}: a schedule must take the update index k as its one "
                                     f"argument, got {value!r}") from None
            except ValueError:  # no signature to inspect (some builtins): checked at the first update
                pass
            self._lr = value
        elif isinstance(value, type):
            raise OptimizerError(f"{what} must be a number or a schedule, got the class {value.__name__}; "
                                 f"make one first (e.g. schedules.cosine(0.1, total_steps=1000))")
        else:
            self._lr = _positive(value, what)

    def lr_at(self, k: int) -> float:
        """The learning rate of update number k + 1 (``compile_step``'s step reads it at every update).

        A schedule's value is checked: a negative rate would climb the loss instead of descending it,
        so a value that is not a finite number >= 0 raises :class:`OptimizerError` (0 is allowed: a
        cosine schedule with ``min_lr=0`` ends there, and it leaves the params where they are).

        Examples
        --------
        >>> import symgrad as sg
        >>> sg.optim.SGD(lr=sg.optim.schedules.step(0.1, step_size=2, gamma=0.5)).lr_at(2)
        0.05
        >>> sg.optim.SGD(lr=lambda k: -0.1).lr_at(0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        symgrad.errors.OptimizerError: SGD: the lr schedule gave -0.1 for update 1 (k=0); a rate must be ...
        """
        lr = self._lr
        if not callable(lr):
            return lr
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0:
            raise OptimizerError(f"{type(self).__name__}.lr_at: the update index must be an int k >= 0, got {k!r}")
        value = lr(k)
        try:
            rate = float(value)
        except (TypeError, ValueError, OverflowError):
            rate = None
        if rate is None or isinstance(value, (bool, np.bool_, str, bytes)) or not math.isfinite(rate) or rate < 0:
            raise OptimizerError(f"{type(self).__name__}: the lr schedule gave {value!r} for update {k + 1} "
                                 f"(k={k}); a rate must be a finite number >= 0")
        return rate

    # ------------------------------------------------------------ shared parts

    def _hyper_nodes(self, symbolic: bool) -> dict[str, Node]:
        values = dict(self.hyper())
        if self.weight_decay:
            values["weight_decay"] = self.weight_decay
        if self.clip_norm is not None:
            values["clip_norm"] = self.clip_norm
        if self.clip_value is not None:
            values["clip_value"] = self.clip_value
        if symbolic:
            return {k: var(self.SYMBOLS.get(k, k)) for k in values}
        return {k: const(v) for k, v in values.items()}

    def _clip(self, grads: list[Node], h: dict[str, Node]) -> list[Node]:
        if "clip_value" in h:
            c = h["clip_value"]
            grads = [-maximum(-maximum(g, -c), -c) for g in grads]  # clamp to [−c, c]
        if "clip_norm" in h:
            c = h["clip_norm"]
            total = None
            for g in grads:
                sq = _sum(g * g)
                total = sq if total is None else total + sq
            coef = c / maximum(sqrt(total), c)
            grads = [g * coef for g in grads]
        return grads

    def _decay(self, theta: Node, g: Node, h: dict[str, Node]) -> Node:
        """Coupled (L2) weight decay: g + λθ."""
        return g + h["weight_decay"] * theta if "weight_decay" in h else g

    def plan(self, params: Sequence[Node], grads: Sequence[Node], lr: Node, t: Node,
             names: set[str] | None = None) -> UpdatePlan:
        """Build the update of every param as graph nodes (used by :func:`symgrad.compile_step`)."""
        taken = set(names or ())
        h = self._hyper_nodes(symbolic=False)
        grads = self._clip(list(grads), h)
        new_params, states = [], []
        for i, (p, g) in enumerate(zip(params, grads)):
            leaves = {}
            for s in self.state_names:
                name = f"{type(self).__name__.lower()}_{s}_{p.name}"  # adam_m_W: the state of W
                while name in taken:
                    name += "_"
                taken.add(name)
                leaves[s] = var(name, shape=p.shape)
            new_p, new_s = self.rule(p, g, leaves, lr, t, h)
            new_params.append(new_p)
            for s in self.state_names:
                states.append((p, s, leaves[s], new_s[s]))
        return UpdatePlan(new_params, states)

    def formulas(self) -> UpdateFormulas:
        """The update rule on scalars, as SymPy expressions (θ, g, state, η, t, hyperparameters).

        Examples
        --------
        >>> import symgrad as sg
        >>> f = sg.optim.Adam(lr=1e-3).formulas()
        >>> list(f)
        ['m', 'v', 'theta']
        >>> print(f["m"])
        beta_1*m + g*(1 - beta_1)
        """
        theta, g = var("theta"), var("g")
        lr, t = var("eta"), var("t")
        h = self._hyper_nodes(symbolic=True)
        state = {s: var(s) for s in self.state_names}
        out = UpdateFormulas()
        pre = self._clip([g], h)[0]
        if self._couples_decay():
            pre = self._decay(theta, pre, h)
        if pre is not g:
            out["g"] = _to_sympy(pre)
            if self.clip_norm is not None:  # on one scalar g the norm is |g|; it is the norm over all grads
                out["g"] = out["g"].replace(sympy.Abs, _GlobalNorm)
        # the rule proper reads the (clipped, decayed) gradient as g
        rule_h = {k: v for k, v in h.items() if not (k == "weight_decay" and self._couples_decay())}
        new_theta, new_state = self.rule(theta, g, state, lr, t, rule_h)
        keep = {}
        for s in self.state_names:
            out[s] = _to_sympy(new_state[s], keep)
            keep[new_state[s]] = sympy.Symbol(s, real=True)
        # θ reads the new state, written by its name
        out["theta"] = _to_sympy(new_theta, keep)
        return out

    def rule_lines(self) -> list[str]:
        """The update rule in plain text, one update a line (the comment that opens each update in
        a compiled step).

        Examples
        --------
        >>> import symgrad as sg
        >>> for line in sg.optim.SGD(lr=0.1, momentum=0.9).rule_lines():
        ...     print(line)
        SGD, for each param θ with gradient g:
          b ← b*mu + g
          θ ← -b*eta + theta
        """
        key = (type(self), repr(self))  # the rule is symbolic: the same settings give the same text
        if key not in _RULE_LINES:
            lines = [f"{type(self).__name__}, for each param θ with gradient g:"]
            for name, expr in self.formulas().items():
                lines.append(f"  {'θ' if name == 'theta' else name} ← {sympy.sstr(expr)}")
            _RULE_LINES[key] = tuple(lines)
        return list(_RULE_LINES[key])

    def _couples_decay(self) -> bool:
        return bool(self.weight_decay)

    def latex(self) -> str:
        """The update rule as an aligned LaTeX block."""
        return self.formulas().latex()

    def __repr__(self) -> str:
        parts = [f"lr={self.lr!r}"] + [f"{k}={v!r}" for k, v in self.hyper().items()]
        for k in ("weight_decay", "clip_norm", "clip_value"):
            v = getattr(self, k)
            if v:
                parts.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    b ← μ b + g; θ ← θ − η (g + μ b if nesterov else b); without momentum
    θ ← θ − η g.  Weight decay adds λθ to g first.

    Examples
    --------
    >>> import symgrad as sg
    >>> list(sg.optim.SGD(lr=0.1, momentum=0.9, nesterov=True).formulas())
    ['b', 'theta']
    """

    def __init__(self, lr: float | Callable[[int], float] = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, *, clip_norm: float | None = None, clip_value: float | None = None):
        super().__init__(lr, weight_decay=weight_decay, clip_norm=clip_norm, clip_value=clip_value)
        self.momentum = _positive(momentum, "SGD: momentum", allow_zero=True)
        if nesterov and not self.momentum:
            raise OptimizerError("SGD: nesterov=True needs a momentum > 0")
        self.nesterov = bool(nesterov)
        self.state_names = ("b",) if self.momentum else ()

    def hyper(self) -> dict[str, float]:
        return {"momentum": self.momentum} if self.momentum else {}

    def rule(self, theta, g, state, lr, t, h):
        g = self._decay(theta, g, h)
        if not self.momentum:
            return theta - lr * g, {}
        mu = h["momentum"]
        b = mu * state["b"] + g
        d = g + mu * b if self.nesterov else b
        return theta - lr * d, {"b": b}


class AdaGrad(Optimizer):
    """AdaGrad: s ← s + g²; θ ← θ − η g / (√s + ε)."""

    def __init__(self, lr: float | Callable[[int], float] = 0.01, eps: float = 1e-10, weight_decay: float = 0.0, *,
                 clip_norm: float | None = None, clip_value: float | None = None):
        super().__init__(lr, weight_decay=weight_decay, clip_norm=clip_norm, clip_value=clip_value)
        self.eps = _positive(eps, "AdaGrad: eps")
        self.state_names = ("s",)

    def hyper(self) -> dict[str, float]:
        return {"eps": self.eps}

    def rule(self, theta, g, state, lr, t, h):
        g = self._decay(theta, g, h)
        s = state["s"] + g * g
        return theta - (lr * g) / (sqrt(s) + h["eps"]), {"s": s}


class RMSProp(Optimizer):
    """RMSProp: v ← α v + (1 − α) g²; θ ← θ − η g / (√v + ε).

    With ``momentum`` μ: b ← μ b + g / (√v + ε); θ ← θ − η b.
    """

    def __init__(self, lr: float | Callable[[int], float] = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0, *, clip_norm: float | None = None,
                 clip_value: float | None = None):
        super().__init__(lr, weight_decay=weight_decay, clip_norm=clip_norm, clip_value=clip_value)
        self.alpha = _fraction(alpha, "RMSProp: alpha")
        self.eps = _positive(eps, "RMSProp: eps")
        self.momentum = _positive(momentum, "RMSProp: momentum", allow_zero=True)
        self.state_names = ("v", "b") if self.momentum else ("v",)

    def hyper(self) -> dict[str, float]:
        h = {"alpha": self.alpha, "eps": self.eps}
        if self.momentum:
            h["momentum"] = self.momentum
        return h

    def rule(self, theta, g, state, lr, t, h):
        g = self._decay(theta, g, h)
        a = h["alpha"]
        v = a * state["v"] + (1.0 - a) * (g * g)
        step = g / (sqrt(v) + h["eps"])
        if not self.momentum:
            return theta - lr * step, {"v": v}
        b = h["momentum"] * state["b"] + step
        return theta - lr * b, {"v": v, "b": b}


class Adam(Optimizer):
    """Adam (Kingma & Ba), with bias correction.

    m ← β₁ m + (1 − β₁) g; v ← β₂ v + (1 − β₂) g²;
    θ ← θ − η m̂ / (√v̂ + ε) with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ).
    ``decoupled=True`` (or :class:`AdamW`) decays θ ← θ (1 − ηλ) instead of
    adding λθ to the gradient.
    """

    def __init__(self, lr: float | Callable[[int], float] = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False, *,
                 clip_norm: float | None = None, clip_value: float | None = None):
        super().__init__(lr, weight_decay=weight_decay, clip_norm=clip_norm, clip_value=clip_value)
        self.beta1 = _fraction(beta1, f"{type(self).__name__}: beta1")
        self.beta2 = _fraction(beta2, f"{type(self).__name__}: beta2")
        self.eps = _positive(eps, f"{type(self).__name__}: eps")
        self.decoupled = bool(decoupled)
        self.state_names = ("m", "v")

    def hyper(self) -> dict[str, float]:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _couples_decay(self) -> bool:
        return bool(self.weight_decay) and not self.decoupled

    def rule(self, theta, g, state, lr, t, h):
        if self.decoupled and "weight_decay" in h:
            theta = theta * (1.0 - lr * h["weight_decay"])
        else:
            g = self._decay(theta, g, h)
        b1, b2 = h["beta1"], h["beta2"]
        m = b1 * state["m"] + (1.0 - b1) * g
        v = b2 * state["v"] + (1.0 - b2) * (g * g)
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        denom = sqrt(v) / sqrt(bc2) + h["eps"]
        return theta - ((lr / bc1) * m) / denom, {"m": m, "v": v}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ ← θ (1 − ηλ) before the Adam step."""

    def __init__(self, lr: float | Callable[[int], float] = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, *, clip_norm: float | None = None,
                 clip_value: float | None = None):
        super().__init__(lr, beta1, beta2, eps, weight_decay, decoupled=True, clip_norm=clip_norm,
                         clip_value=clip_value)


def _fraction(value: Any, what: str) -> float:
    x = _positive(value, what, allow_zero=True)
    if x >= 1.0:
        raise OptimizerError(f"{what} must be in [0, 1), got {value!r}")
    return x
