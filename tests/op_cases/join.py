"""Joining: concat (two inputs, a list of three as a tree, stack), pad with zeros and with another value
(NumPy's forms of pad_width), and the ops split, flatten and squeeze are made of."""
from __future__ import annotations

import symgrad as sg

from . import Case

CASES = [
    Case("concat", ((2, 3), (4, 3)), lambda a, b: sg.concat([a, b], axis=0)),
    Case("concat", (("batch", 2), ("batch", 3)), lambda a, b: sg.concat([a, b], axis=1)),
    Case("concat", ((2, 3, 1), (2, 3, 2)), lambda a, b: sg.concat([a, b], axis=-1)),
    Case("concat", ((3,), (2,)), lambda a, b: sg.concat([a, b, a])),
    Case("concat", (("batch", 3), ("batch", 3)), lambda a, b: sg.stack([a, b, a * b], axis=1)),
    Case("pad", ((3,),), lambda x: sg.pad(x, 1)),
    Case("pad", (("batch", 2, 3),), lambda x: sg.pad(x, ((0, 0), (1, 2), (0, 1)))),
    Case("pad", ((2, 3),), lambda x: sg.pad(x, (1, 2), value=0.5)),
    Case("pad", ((2, 2, 2),), lambda x: sg.pad(x, ((1, 0),), value=-1.0)),
    Case("getitem", (("batch", 5),), lambda x: sg.split(x, [1, 3], axis=1)[1]),
    Case("getitem", ((6, 2),), lambda x: sg.concat(sg.split(x, 3)[::-1])),
    Case("reshape", (("batch", 3, 4),), lambda x: sg.flatten(x)),
    Case("reshape", ((2, 1, 3, 1),), lambda x: sg.squeeze(x)),
    Case("reshape", (("batch", "seq", 1),), lambda x: sg.squeeze(x, -1)),
]
