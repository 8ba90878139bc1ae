"""Test cases of ops, one module per op family (``tests/op_cases/<family>.py``, each with a
``CASES`` list of :class:`Case`), read by both op meta-tests: the gradient check against finite
differences (tests/test_ops_grad.py) and compiled == evaluated (tests/test_codegen.py).  Adding an op
family adds its cases here, in its own module."""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Case:
    """One op applied to fed vars.

    op : the op's name (the built graph must contain it).
    shapes : one shape per input var (named dims such as "batch" allowed).
    build : ``build(*vars) -> node``.
    domain : per input, the (low, high) range its values are drawn from (default (-2, 2)).
    wrt : the inputs that get gradients (default: every float input).
    int_inputs : inputs that are integer vars (values drawn from their domain).
    """

    op: str
    shapes: tuple
    build: Callable
    domain: tuple = ()
    wrt: tuple | None = None
    int_inputs: tuple = ()

    def range_of(self, i: int) -> tuple:
        return self.domain[i] if i < len(self.domain) else (-2.0, 2.0)


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        cases += importlib.import_module(f"{__name__}.{info.name}").CASES
    return cases
