"""einsum: matrix products, batched contractions, outer products, an index summed in one operand,
ellipsis broadcasting, three operands."""
from __future__ import annotations

import symgrad as sg

from . import Case


def _spec(spec):
    return lambda *xs: sg.einsum(spec, *xs)


CASES = [
    Case("einsum", ((2, 3), (3, 4)), _spec("ij,jk->ik")),
    Case("einsum", (("batch", 2, 3), ("batch", 4, 3)), _spec("bqd,bkd->bqk")),
    Case("einsum", ((2, 3), (4,)), _spec("ij,k->ki")),
    Case("einsum", ((3,), (3,)), _spec("i,i->")),
    Case("einsum", ((2, 1, 2, 3), (3, 3, 2)), _spec("...ij,...jk->...ik")),
    Case("einsum", ((2, 3, 2), (2, 2), (3, 2)), _spec("abc,cd,be->dea")),
    Case("einsum", (("batch", 3), (3, 2)), _spec("nk,kj->jn")),
]
