"""``with_update`` (a value that records a buffer update): its value and gradient are its first
input's, whatever the buffer and the new value are."""
from __future__ import annotations

import numpy as np

import symgrad as sg
from symgrad.ops.state import buffer, with_update

from . import Case

_B2 = buffer("case_buffer2", np.arange(2.0))
_B3 = buffer("case_buffer3", np.ones(3))

CASES = [
    Case("with_update", ((2,),), lambda x: with_update(x * x, _B2, 0.9 * _B2 + 0.1 * x)),
    Case("with_update", (("batch", 3),), lambda x: with_update(sg.tanh(x), _B3, sg.mean(x, axis=0))),
    Case("with_update", (("batch", 2, 3),), lambda x: sg.sum(with_update(x, _B3, _B3 * 2.0), axis=1)),
    Case("with_update", ((), (2,)), lambda s, v: with_update(s * v, _B2, v)),
]
