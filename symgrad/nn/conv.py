"""Convolution and pooling layers on ``(N, C, H, W)`` tensors, with PyTorch's names, layout and meaning:
:class:`Conv2d` (weight ``W`` of shape ``(out, in/groups, kh, kw)``, bias ``b`` of shape ``(out,)``),
:class:`MaxPool2d` and :class:`AvgPool2d`.

They call the public ops :func:`symgrad.conv2d`, :func:`symgrad.max_pool2d` and
:func:`symgrad.avg_pool2d`, so formulas, drawings and compiled code are those of the ops.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from ..init import initialize, resolve, to_config
from ..ops import as_node
from ..ops.conv import avg_pool2d, conv2d, max_pool2d
from .layers import _check_flag, _check_size, derive_seeds, init_param
from .module import Module


def _pair(value: Any, what: str, low: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``low``, as a pair."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                                  and v >= low for v in items):
        raise ShapeError(f"{what} must be an int >= {low} or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


def _check_input(layer: Module, x: Node, channels: int | None) -> None:
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        need = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ShapeError(f"{type(layer).__name__} {layer.name!r}: input {x.describe()} of shape "
                         f"{format_shape(x.shape)} is not {need}")


class Conv2d(Module):
    """2-D convolution (cross-correlation), as ``torch.nn.Conv2d``.

    ``Z[n,o,i,j] = b[o] + Σ_{c,p,q} W[o,c,p,q]·X[n, c, s·i + d·p − pad, s·j + d·q − pad]``.

    Parameters
    ----------
    in_channels, out_channels : channel counts of the input and output.
    kernel_size : an int or a pair ``(kh, kw)``.
    stride, padding, dilation : an int or a pair (rows, columns); padding adds zeros.
    groups : split the channels into this many groups, each with its own filters.
    bias : whether to add ``b``.
    init : initializer of ``W`` (a name, a ``(name, options)`` pair or a callable; see
        :mod:`symgrad.init`); default ``"he"`` (normal, σ = √(2 / fan_in), for a ReLU after it;
        PyTorch's default is a uniform one).  ``W`` is drawn as an array of shape
        ``(kh, kw, in/groups, out)`` — so fan_in = in/groups·kh·kw and fan_out = out·kh·kw, as
        :func:`symgrad.init.fans` reads a weight — and stored transposed as ``(out, in/groups, kh, kw)``.
    bias_init : initializer of ``b``; default ``"zeros"``.
    seed : seeds ``W``'s initializer (``b`` gets a seed derived from it).
    name : parameters ``<name>.W``, ``<name>.b``; output ``<name>.z``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> conv = sg.nn.Conv2d(1, 2, 3, padding=1, seed=0, name="conv")
    >>> [(n, p.shape) for n, p in conv.named_parameters()]
    [('conv.W', (2, 1, 3, 3)), ('conv.b', (2,))]
    >>> z = conv(sg.var("X", shape=("batch", 1, 8, 8)))
    >>> z.name, z.shape
    ('conv.z', ('batch', 2, 8, 8))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, *, init: Any = None, bias_init: Any = None,
                 seed: int | None = None, name: str = "conv"):
        super().__init__(name)
        what = f"Conv2d {name!r}"
        self.in_channels = _check_size(in_channels, f"{what}: in_channels")
        self.out_channels = _check_size(out_channels, f"{what}: out_channels")
        self.kernel_size = _pair(kernel_size, f"{what}: kernel_size", 1)
        self.stride = _pair(stride, f"{what}: stride", 1)
        self.padding = _pair(padding, f"{what}: padding", 0)
        self.dilation = _pair(dilation, f"{what}: dilation", 1)
        self.groups = _check_size(groups, f"{what}: groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ShapeError(f"{what}: groups={self.groups} must divide in_channels={self.in_channels} "
                             f"and out_channels={self.out_channels}")
        bias = _check_flag(bias, f"{what}: bias")
        self.init = "he" if init is None else init
        self.bias_init = "zeros" if bias_init is None else bias_init
        resolve(self.init, what)
        resolve(self.bias_init, f"{what}: bias_init")
        self.seed = seed
        b_seed = None if seed is None else derive_seeds(seed, 1)[0]
        kh, kw = self.kernel_size
        drawn_shape = (kh, kw, self.in_channels // self.groups, self.out_channels)
        try:
            drawn = initialize(self.init, drawn_shape, seed=seed)
        except (GraphError, ShapeError) as e:
            raise type(e)(f"{what}: W, drawn as (kh, kw, in/groups, out) = {drawn_shape}: {e}") from None
        self.W = self.param("W", np.ascontiguousarray(drawn.transpose(3, 2, 0, 1)))
        self.b = init_param(self, "b", (self.out_channels,), self.bias_init, b_seed) if bias else None

    def forward(self, x: Any) -> Node:
        """``conv2d(x, W, b)``, named ``<name>.z``."""
        x = as_node(x, f"Conv2d {self.name!r}")
        _check_input(self, x, self.in_channels)
        return conv2d(x, self.W, self.b, stride=self.stride, padding=self.padding, dilation=self.dilation,
                      groups=self.groups, name=f"{self.name}.z")

    def config(self) -> dict | None:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation), "groups": self.groups,
                "bias": self.b is not None, "init": to_config(self.init), "bias_init": to_config(self.bias_init),
                "seed": self.seed, "name": self.name}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={getattr(self, k)}" for k, default in
                        (("dilation", (1, 1)), ("groups", 1)) if getattr(self, k) != default)
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}{extra}, bias={self.b is not None}, "
                f"name={self.name!r})")


class _Pool2d(Module):
    """What both pooling layers share: kernel, stride (default: the kernel) and padding."""

    op: Callable[..., Node]

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, name: str = "pool"):
        super().__init__(name)
        what = f"{type(self).__name__} {name!r}"
        self.kernel_size = _pair(kernel_size, f"{what}: kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, f"{what}: stride", 1)
        self.padding = _pair(padding, f"{what}: padding", 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ShapeError(f"{what}: padding {self.padding} may be at most half the kernel {self.kernel_size}")

    def forward(self, x: Any) -> Node:
        """The pooled input, named ``<name>.out``."""
        x = as_node(x, f"{type(self).__name__} {self.name!r}")
        _check_input(self, x, None)
        return self.op(x, self.kernel_size, self.stride, self.padding, name=f"{self.name}.out")

    def config(self) -> dict | None:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "name": self.name}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, name={self.name!r})")


class MaxPool2d(_Pool2d):
    """2-D max pooling, as ``torch.nn.MaxPool2d`` (padding reads as −∞; the gradient of a window goes
    to its first maximal entry).  See :func:`symgrad.max_pool2d`.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> pool = sg.nn.MaxPool2d(2)
    >>> sg.evaluate(pool(sg.const(np.arange(16.0).reshape(1, 1, 4, 4))))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """

    op = staticmethod(max_pool2d)

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, name: str = "maxpool"):
        super().__init__(kernel_size, stride, padding, name)


class AvgPool2d(_Pool2d):
    """2-D average pooling, as ``torch.nn.AvgPool2d`` (padded zeros count in the mean,
    ``count_include_pad=True``).  See :func:`symgrad.avg_pool2d`.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> pool = sg.nn.AvgPool2d(2)
    >>> sg.evaluate(pool(sg.const(np.arange(16.0).reshape(1, 1, 4, 4))))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """

    op = staticmethod(avg_pool2d)

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, name: str = "avgpool"):
        super().__init__(kernel_size, stride, padding, name)


__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d"]
