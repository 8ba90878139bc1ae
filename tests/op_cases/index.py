"""Indexing: basic keys (ints, negative ints, slices with steps, None, ...) as ``getitem``; an index
array (an int var, or constant positions) as ``gather``; their gradients ``scatter`` and
``scatter_add`` (repeated indices add up), built here with the keys getitem makes."""
from __future__ import annotations

import symgrad as sg
from symgrad.ops import apply

from . import Case

S = slice
ANY = (-2.0, 2.0)


def _get(key):
    return lambda x: sg.getitem(x, key)


def _scatter(key):
    """scatter(g, ref) with the key getitem makes of ``key`` on ref."""
    return lambda g, ref: apply("scatter", g, ref, key=sg.getitem(ref, key).attr("key"))


def _scatter_add(key):
    """scatter_add(g, ref, idx); ``key`` is a function of the index var."""
    return lambda g, ref, idx: apply("scatter_add", g, ref, idx, key=sg.getitem(ref, key(idx)).attr("key"))


CASES = [
    Case("getitem", ((3, 4),), _get(1)),
    Case("getitem", ((4, 5),), _get((S(1, 4, 2), S(None, None, -1)))),
    Case("getitem", (("batch", 3, 4),), _get((-1, None, Ellipsis, S(None, None, 2)))),
    Case("getitem", (("batch", 4),), _get((S(None), -2))),
    Case("getitem", (("batch", 3),), _get((S(None, None, -1), S(2, 0, -1)))),
    Case("getitem", ((5,),), _get(S(4, 0, -2))),
    Case("getitem", ((2, 3),), _get((None, 0, 2))),
    Case("scatter", ((2,), (3, 4)), _scatter((1, S(None, None, 2))), wrt=(0,)),
    Case("scatter", (("batch",), ("batch", 3)), _scatter((S(None), 1)), wrt=(0,)),
    Case("scatter", ((2, 2), (4, 3)), _scatter((S(3, None, -2), S(0, 2))), wrt=(0,)),
    Case("scatter", ((1, 3), (3,)), _scatter((None, S(None))), wrt=(0,)),
    Case("scatter", (("batch", 3), ("batch", 3)), _scatter((S(None, None, -1), S(None))), wrt=(0,)),
    Case("gather", ((5, 3), (4,)), lambda x, i: sg.getitem(x, i), domain=(ANY, (0, 5)), int_inputs=(1,)),
    Case("gather", ((3, 4), ("batch",)), lambda x, i: sg.getitem(x, (S(None), i)), domain=(ANY, (-4, 4)),
         int_inputs=(1,)),
    Case("gather", ((2, 5, 3), (2, 2)), lambda x, i: sg.getitem(x, (1, S(None), i)), domain=(ANY, (0, 3)),
         int_inputs=(1,)),
    Case("gather", ((6, 2), ("batch", 3)), lambda x, i: sg.getitem(x, i), domain=(ANY, (0, 6)), int_inputs=(1,)),
    Case("gather", (("batch", 4, 3),), _get((S(None), [3, 0, 3, -1], S(None, None, -1)))),
    Case("gather", ((4,),), _get([[1, 1], [0, 3]])),
    Case("scatter_add", ((4, 3), (5, 3), (4,)), _scatter_add(lambda i: i), domain=(ANY, ANY, (0, 5)),
         wrt=(0,), int_inputs=(2,)),
    Case("scatter_add", ((3, "batch"), (3, 4), ("batch",)), _scatter_add(lambda i: (S(None), i)),
         domain=(ANY, ANY, (0, 4)), wrt=(0,), int_inputs=(2,)),
    Case("scatter_add", (("batch", 2), (6, 2), ("batch",)), _scatter_add(lambda i: i), domain=(ANY, ANY, (-6, 6)),
         wrt=(0,), int_inputs=(2,)),
    Case("scatter_add", ((2, 2, 5), (2, 5, 3), (2, 2)), _scatter_add(lambda i: (1, S(None), i)),
         domain=(ANY, ANY, (0, 3)), wrt=(0,), int_inputs=(2,)),
]
