"""``scan`` (a loop as one node) and ``scan_out`` (one of its outputs): recurrences over a scanned
input with closed-over values, two carries, reverse order, a named number of steps and batch."""
from __future__ import annotations

import numpy as np

import symgrad as sg

from . import Case


def _rnn(xs, w):
    """tanh recurrence over (T, batch, 2) with a closed-over (2, 2) matrix; the stacked outputs."""
    _, ys = sg.scan(lambda h, x: (sg.tanh(x @ w + h @ w + 0.1), h * x), xs[0], xs)
    return ys


def _two_carries(xs, b):
    """(h, c) carried, in reverse; the final h."""
    def step(carry, x):
        h, c = carry
        c = sg.sigmoid(x + b) * c + sg.tanh(h)
        return (sg.tanh(c) * x, c), None
    (h, _), _ = sg.scan(step, (xs[0], xs[-1]), xs, reverse=True)
    return h


def _scalar(xs, a):
    """A scalar carry over (T,) with a scalar closed value; carry and stacked output together."""
    total, ys = sg.scan(lambda c, x: (c * a + sg.sin(x), c * x), sg.const(0.5), xs)
    return ys + total


def _no_xs(x):
    """length= without scanned inputs: x closed over, iterated 3 times."""
    h, ys = sg.scan(lambda h, _: (sg.tanh(h + x), h), x, length=3)
    return sg.sum(ys, axis=0) * h


CASES = [
    Case("scan", ((3, "batch", 2), (2, 2)), _rnn),
    Case("scan", ((4, 3), (3,)), _two_carries),
    Case("scan", (("T",), ()), _scalar),
    Case("scan", (("batch", 2),), _no_xs),
    Case("scan_out", ((2, "batch", 2), (2, 2)), _rnn),
    Case("scan_out", (("T", 2), (2,)), _two_carries),
    Case("scan_out", ((5,), ()), _scalar),
    Case("scan_out", ((3,),), _no_xs),
]
