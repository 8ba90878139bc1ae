"""Layers whose graph depends on the mode: :class:`Dropout`, :class:`BatchNorm1d`, :class:`BatchNorm2d`.

Their mode (``module.train()`` / ``module.eval()``) is read when they are *called*, so a training
graph and an evaluation graph of one model are two graphs that share the parameters.

Batch norm in training mode normalises with the statistics of the batch and records, with
:func:`symgrad.ops.state.with_update`, PyTorch's update of its running statistics
(``running ← (1 − momentum)·running + momentum·batch statistic``, the variance unbiased);
a compiled training step applies it after the forward pass.  In evaluation mode it normalises
with the running statistics, read from the buffers at every call.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape, size_of
from ..ops import apply, as_node, const, mean, sqrt
from ..ops.state import with_update
from ..random import dropout
from .layers import _check_size
from .module import Module

__all__ = ["Dropout", "BatchNorm1d", "BatchNorm2d"]


def _probability(p: Any, what: str) -> float:
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise GraphError(f"{what}: p must be a number in [0, 1], got {p!r}")
    return float(p)


class Dropout(Module):
    """Inverted dropout (:func:`symgrad.dropout`) in training mode, the identity in evaluation mode.

    Each call in training mode makes a new Bernoulli mask named ``<name>.mask`` (``<name>.mask2``,
    ... when the module is called again), drawn afresh at every step.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> drop = sg.nn.Dropout(0.5, name="drop")
    >>> x = sg.var("x", shape=("batch", 4))
    >>> y = drop(x)
    >>> sg.evaluate(y, {"x": np.ones((2, 4))}, seed=0)
    array([[0., 2., 2., 2.],
           [0., 0., 0., 0.]])
    >>> drop.eval()(x) is x
    True
    """

    def __init__(self, p: float = 0.5, *, name: str = "dropout"):
        super().__init__(name)
        self.p = _probability(p, f"Dropout {name!r}")
        self._calls = 0

    def forward(self, x: Any) -> Node:
        x = as_node(x, f"Dropout {self.name!r}")
        if not self.training or self.p == 0.0:
            return x
        self._calls += 1
        mask = f"{self.name}.mask" + (str(self._calls) if self._calls > 1 else "")
        return dropout(x, self.p, True, mask_name=mask, name=f"{self.name}.y")

    def config(self) -> dict:
        return {"p": self.p, "name": self.name}

    def __repr__(self) -> str:
        return f"Dropout(p={self.p}, name={self.name!r})"


class _BatchNorm(Module):
    """Shared by the 1-d and 2-d batch norms: ``axes`` are the axes averaged over, ``view`` the
    shape the per-feature vectors take to broadcast against the input."""

    rank: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *, affine: bool = True,
                 name: str = "bn"):
        super().__init__(name)
        what = f"{type(self).__name__} {name!r}"
        self.num_features = _check_size(num_features, f"{what}: num_features")
        for key, value in (("eps", eps), ("momentum", momentum)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
                raise GraphError(f"{what}: {key} must be a finite number, got {value!r}")
        if not eps > 0:
            raise GraphError(f"{what}: eps must be > 0, got {eps!r}")
        if not 0.0 <= momentum <= 1.0:
            raise GraphError(f"{what}: momentum must lie in [0, 1], got {momentum!r}")
        self.eps, self.momentum, self.affine = float(eps), float(momentum), bool(affine)
        c = self.num_features
        self.gamma = self.param("gamma", np.ones(c)) if affine else None
        self.beta = self.param("beta", np.zeros(c)) if affine else None
        self.running_mean = self.buffer("running_mean", np.zeros(c))
        self.running_var = self.buffer("running_var", np.ones(c))

    # the axes of the statistics, and how a (C,) vector is laid out against the input
    def _axes(self, x: Node) -> tuple:
        raise NotImplementedError  # pragma: no cover  (each subclass defines it)

    def _per_feature(self, v: Node, x: Node) -> Node:
        return v if x.ndim == 2 else v.reshape((self.num_features, 1, 1))

    def _check(self, x: Node) -> Node:
        x = as_node(x, f"{type(self).__name__} {self.name!r}")
        if x.ndim not in self.rank or x.shape[1] != self.num_features:
            want = " or ".join(f"{r}-d" for r in self.rank)
            raise ShapeError(f"{type(self).__name__} {self.name!r}: expected a {want} input with "
                             f"{self.num_features} features on axis 1, got {x.describe()} of shape "
                             f"{format_shape(x.shape)}")
        return x

    def forward(self, x: Any) -> Node:
        x = self._check(x)
        axes = self._axes(x)
        n = self.name
        if self.training:
            mu = mean(x, axis=axes, name=f"{n}.mu")
            xc = (x - self._per_feature(mu, x)).named(f"{n}.xc")
            var = mean(xc * xc, axis=axes, name=f"{n}.var")
            xhat = (xc / self._per_feature(sqrt(var + const(self.eps, name="ε")), x)).named(f"{n}.xhat")
        else:
            mu, var = self.running_mean, self.running_var
            xhat = ((x - self._per_feature(mu, x)) /
                    self._per_feature(sqrt(var + const(self.eps, name="ε")), x)).named(f"{n}.xhat")
        y = xhat
        if self.affine:
            y = xhat * self._per_feature(self.gamma, x) + self._per_feature(self.beta, x)
        y = y.named(f"{n}.y")
        if not self.training or self.momentum == 0.0:
            return y
        m = self.momentum
        count = size_of(tuple(x.shape[a] for a in axes))
        count = const(float(count)) if count is not None else apply("count", x, axis=axes)
        unbiased = var * count / (count - 1.0)
        y = with_update(y, self.running_mean, (1.0 - m) * self.running_mean + m * mu)
        return with_update(y, self.running_var, (1.0 - m) * self.running_var + m * unbiased)

    def config(self) -> dict:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "name": self.name}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}, "
                f"name={self.name!r}, training={self.training})")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(batch, features)`` inputs (PyTorch's ``BatchNorm1d``).

    ``y = γ ⊙ (x − μ_B)/√(σ²_B + ε) + β`` with the batch mean and (biased) variance in
    training mode, and the running statistics in evaluation mode.  Parameters ``gamma`` (ones),
    ``beta`` (zeros); buffers ``running_mean`` (zeros), ``running_var`` (ones), updated by a
    training step as ``(1 − momentum)·running + momentum·batch`` (unbiased variance).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> bn = sg.nn.BatchNorm1d(2, name="bn")
    >>> X = sg.var("X", shape=("batch", 2))
    >>> y = bn(X)
    >>> sg.evaluate(y, {"X": [[1.0, 10.0], [3.0, 30.0]]}).round(4)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> step = sg.compile_step(sg.sum(y), sg.optim.SGD(lr=0.1), inputs=[X])
    >>> _ = step(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> bn.running_mean.value, bn.running_var.value
    (array([0.2, 2. ]), array([ 1.1, 20.9]))
    >>> list(sg.ops.state.update_rules(y))  # printed as bn.running_mean ← …
    ['bn.running_mean', 'bn.running_var']
    """

    rank = (2,)

    def _axes(self, x: Node) -> tuple:
        return (0,)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of NCHW images per channel (PyTorch's ``BatchNorm2d``): the statistics
    are taken over the batch and both spatial axes; otherwise as :class:`BatchNorm1d`.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> bn = sg.nn.BatchNorm2d(3, name="bn")
    >>> x = sg.var("x", shape=("batch", 3, 4, 4))
    >>> y = bn(x)
    >>> v = sg.evaluate(y, {"x": np.random.default_rng(0).normal(2.0, 3.0, (5, 3, 4, 4))})
    >>> np.allclose(v.mean(axis=(0, 2, 3)), 0), np.allclose(v.var(axis=(0, 2, 3)), 1, atol=1e-4)
    (True, True)
    """

    rank = (4,)

    def _axes(self, x: Node) -> tuple:
        return (0, 2, 3)
