"""Convolution and pooling: conv (1-D and 2-D, stride, padding, dilation, groups, bias), its two
gradient ops, max pooling with its gradient and select ops, average pooling and its gradient."""
from __future__ import annotations

import symgrad as sg
from symgrad.ops import apply

from . import Case


def _conv(stride=1, padding=0, dilation=1, groups=1):
    return lambda x, w, *b: sg.conv2d(x, w, *b, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _conv1(stride=1, padding=0, dilation=1, groups=1):
    return lambda x, w: sg.conv1d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _attrs(d, stride=1, padding=0, dilation=1, groups=1):
    return dict(stride=(stride,) * d, padding=(padding,) * d, dilation=(dilation,) * d, groups=groups)


def _grad_input(size, **kw):
    return lambda g, w: apply("conv_grad_input", g, w, size=size, **_attrs(len(size), **kw))


def _grad_weight(kernel, **kw):
    return lambda g, x: apply("conv_grad_weight", g, x, kernel=kernel, **_attrs(len(kernel), **kw))


def _pool(kernel, stride=None, padding=0):
    d = len(kernel)
    return dict(kernel=kernel, stride=kernel if stride is None else (stride,) * d, padding=(padding,) * d)


CASES = [
    Case("conv", (("batch", 2, 5, 5), (3, 2, 3, 3)), _conv()),
    Case("conv", ((2, 2, 5, 4), (4, 1, 3, 2)), _conv(stride=2, padding=1, groups=2)),
    Case("conv", ((1, 3, 6, 6), (2, 3, 2, 2), (2,)), _conv(padding=(1, 0), dilation=2)),
    Case("conv", (("batch", 2, 7), (4, 2, 3)), _conv1(stride=2, padding=1)),
    Case("conv", ((2, 4, 8), (4, 2, 2)), _conv1(dilation=3, groups=2)),
    Case("conv_grad_input", (("batch", 3, 3, 3), (3, 2, 3, 3)), _grad_input((5, 5))),
    Case("conv_grad_input", ((2, 4, 3, 3), (4, 1, 3, 2)), _grad_input((5, 4), stride=2, padding=1, groups=2)),
    Case("conv_grad_input", ((1, 2, 3, 3), (2, 3, 2, 2)), _grad_input((6, 6), stride=2, dilation=2, padding=1)),
    Case("conv_grad_input", (("batch", 4, 4), (4, 2, 3)), _grad_input((7,), stride=2, padding=1)),
    Case("conv_grad_weight", (("batch", 3, 3, 3), ("batch", 2, 5, 5)), _grad_weight((3, 3))),
    Case("conv_grad_weight", ((2, 4, 3, 3), (2, 2, 5, 4)), _grad_weight((3, 2), stride=2, padding=1, groups=2)),
    Case("conv_grad_weight", ((1, 2, 3, 3), (1, 3, 6, 6)), _grad_weight((2, 2), stride=2, dilation=2, padding=1)),
    Case("conv_grad_weight", (("batch", 4, 4), ("batch", 2, 7)), _grad_weight((3,), stride=2, padding=1)),
    Case("max_pool", (("batch", 2, 4, 4),), lambda x: sg.max_pool2d(x, 2)),
    Case("max_pool", ((1, 2, 5, 5),), lambda x: sg.max_pool2d(x, 3, stride=2, padding=1)),
    Case("max_pool", ((2, 1, 4, 5),), lambda x: sg.max_pool2d(x, (2, 3), stride=1)),
    Case("max_pool", ((1, 3, 6, 4),), lambda x: sg.max_pool2d(x, 2, stride=(2, 1), padding=1)),
    Case("max_pool_grad", (("batch", 2, 2, 2), ("batch", 2, 4, 4)),
         lambda g, x: apply("max_pool_grad", g, x, **_pool((2, 2))), wrt=(0,)),
    Case("max_pool_grad", ((1, 2, 3, 3), (1, 2, 5, 5)),
         lambda g, x: apply("max_pool_grad", g, x, **_pool((3, 3), 2, 1)), wrt=(0,)),
    Case("max_pool_grad", ((2, 1, 3, 3), (2, 1, 4, 5)),
         lambda g, x: apply("max_pool_grad", g, x, **_pool((2, 3), 1)), wrt=(0,)),
    Case("max_pool_grad", ((1, 2, 2, 2), (1, 2, 4, 4)),
         lambda g, x: apply("max_pool_grad", g, x, **_pool((2, 2))), wrt=(0,)),
    Case("max_pool_select", (("batch", 2, 4, 4), ("batch", 2, 4, 4)),
         lambda h, x: apply("max_pool_select", h, x, **_pool((2, 2))), wrt=(0,)),
    Case("max_pool_select", ((1, 2, 5, 5), (1, 2, 5, 5)),
         lambda h, x: apply("max_pool_select", h, x, **_pool((3, 3), 2, 1)), wrt=(0,)),
    Case("max_pool_select", ((2, 1, 4, 5), (2, 1, 4, 5)),
         lambda h, x: apply("max_pool_select", h, x, **_pool((2, 3), 1)), wrt=(0,)),
    Case("max_pool_select", ((1, 1, 3, 3), (1, 1, 3, 3)),
         lambda h, x: apply("max_pool_select", h, x, **_pool((3, 3))), wrt=(0,)),
    Case("avg_pool", (("batch", 2, 4, 4),), lambda x: sg.avg_pool2d(x, 2)),
    Case("avg_pool", ((1, 2, 5, 5),), lambda x: sg.avg_pool2d(x, 3, stride=2, padding=1)),
    Case("avg_pool", ((2, 1, 4, 5),), lambda x: sg.avg_pool2d(x, (2, 3), stride=1)),
    Case("avg_pool", ((1, 3, 6, 4),), lambda x: sg.avg_pool2d(x, 2, stride=(2, 1), padding=1)),
    Case("avg_pool_grad", (("batch", 2, 2, 2),), lambda g: apply("avg_pool_grad", g, size=(4, 4), **_pool((2, 2)))),
    Case("avg_pool_grad", ((1, 2, 3, 3),), lambda g: apply("avg_pool_grad", g, size=(5, 5), **_pool((3, 3), 2, 1))),
    Case("avg_pool_grad", ((2, 1, 3, 3),), lambda g: apply("avg_pool_grad", g, size=(4, 5), **_pool((2, 3), 1))),
    Case("avg_pool_grad", ((1, 1, 2, 2),), lambda g: apply("avg_pool_grad", g, size=(5, 5), **_pool((2, 2)))),
]
