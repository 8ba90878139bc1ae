"""Layer normalization, as ``torch.nn.LayerNorm``, built from ``sg.mean``, ``sg.variance`` and ``sg.sqrt``
so that its formulas and its backward pass are those of the ops.

(Batch normalization, with running statistics, lives in its own module.)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Node, finite_number, format_shape
from ..ops import as_node, const, mean, sqrt, variance
from .layers import _check_flag, _check_size
from .module import Module


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` axes, then scale and shift:

    ``x̂ = (x − μ) / √(σ² + ε)``, ``y = x̂ ⊙ γ + β``, with μ and σ² the mean and the biased variance
    (divided by the count, as PyTorch) of each sample over those axes.

    Parameters
    ----------
    normalized_shape : an int or a tuple of ints, the sizes of the trailing axes normalized over.
    eps : ε, added to the variance (a positive number; default 1e-5, PyTorch's).  It prints as ε.
    elementwise_affine : whether to learn ``gamma`` (PyTorch's ``weight``, ones) and ``beta``
        (PyTorch's ``bias``, zeros), both of shape ``normalized_shape``.
    bias : whether to learn ``beta`` (with ``elementwise_affine``).
    name : parameters ``<name>.gamma``, ``<name>.beta``; nodes ``<name>.mu``, ``<name>.var``,
        ``<name>.xhat`` and the output ``<name>.out`` (x̂ itself without ``elementwise_affine``).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> ln = sg.nn.LayerNorm(4, name="ln")
    >>> [(n, p.shape) for n, p in ln.named_parameters()]
    [('ln.gamma', (4,)), ('ln.beta', (4,))]
    >>> y = ln(sg.var("X", shape=("batch", 4)))
    >>> sg.evaluate(y, {"X": [[1.0, 2.0, 3.0, 4.0]]}).round(4)
    array([[-1.3416, -0.4472,  0.4472,  1.3416]])
    """

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, *, name: str = "layernorm"):
        super().__init__(name)
        what = f"LayerNorm {name!r}"
        dims = (normalized_shape,) if not isinstance(normalized_shape, (tuple, list)) else tuple(normalized_shape)
        if not dims:
            raise ShapeError(f"{what}: normalized_shape must name at least one axis, got {normalized_shape!r}")
        self.normalized_shape = tuple(_check_size(d, f"{what}: normalized_shape entry") for d in dims)
        number = finite_number(eps)
        if number is None or number <= 0 or isinstance(eps, (bool, np.bool_)):
            raise GraphError(f"{what}: eps must be a positive number, got {eps!r}")
        self.eps = float(number)
        self.elementwise_affine = _check_flag(elementwise_affine, f"{what}: elementwise_affine")
        bias = _check_flag(bias, f"{what}: bias")
        self.gamma = self.param("gamma", np.ones(self.normalized_shape)) if self.elementwise_affine else None
        self.beta = self.param("beta", np.zeros(self.normalized_shape)) \
            if self.elementwise_affine and bias else None

    def forward(self, x: Any) -> Node:
        """``x̂ ⊙ γ + β`` over the trailing axes, named ``<name>.out``."""
        x = as_node(x, f"LayerNorm {self.name!r}")
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ShapeError(f"LayerNorm {self.name!r}: input {x.describe()} of shape {format_shape(x.shape)} "
                             f"does not end in the normalized shape {format_shape(self.normalized_shape)}")
        axes = tuple(range(x.ndim - k, x.ndim))
        mu = mean(x, axis=axes, keepdims=True, name=f"{self.name}.mu")
        var = variance(x, axis=axes, keepdims=True, name=f"{self.name}.var")
        xhat = (x - mu) / sqrt(var + const(self.eps, name="ε"))
        if self.gamma is None:  # nothing learned: x̂ is the output
            return xhat.named(f"{self.name}.out")
        y = xhat.named(f"{self.name}.xhat") * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y.named(f"{self.name}.out")

    def config(self) -> dict | None:
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.elementwise_affine, "bias": self.beta is not None
                or not self.elementwise_affine, "name": self.name}

    def __repr__(self) -> str:
        return (f"LayerNorm({self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, name={self.name!r})")


__all__ = ["LayerNorm"]
