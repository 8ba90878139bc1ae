"""NumPy source for one value, from its op's declaration.

A ufunc op is written as its Python operator (``a + b``, ``-x``, ``A @ B``)
or, into a buffer, as the ufunc with ``out=`` (``np.tanh(z, out=z)``, or
``a += b`` when the buffer is the first operand); an op with an ``emit``
rule writes its own source; any other op calls its NumPy implementation,
bound as a global of the generated module under the op's name (with
``work=`` the workspace a training step keeps for the value, when its
kernel takes one).
"""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from ..ops.base import Code, Target
from ..runtime import Workspace
from .ir import Value
from .names import float_literal, literal_attr

_AUGMENTABLE = ("+", "-", "*", "/")
_AUGMENTED = re.compile(r"^\w+ [-+*/]= ")


def is_augmented(src: str) -> bool:
    """Whether emitted source is an augmented assignment (a statement, not an expression)."""
    return bool(_AUGMENTED.match(src))


class Globals:
    """The globals of a generated module, each under a generated name (``_c0``) or, for an op's
    implementation, under the op's own name when that is a plain word no value uses."""

    def __init__(self, taken: Callable[[str], bool]):
        self.table: dict[str, Any] = {}
        self._ids: dict[int, str] = {}
        self._taken = taken

    def bind(self, obj: Any, stem: str) -> str:
        key = id(obj)
        if key not in self._ids:
            name = f"_{stem}{len(self.table)}"
            self.table[name] = obj
            self._ids[key] = name
        return self._ids[key]

    def op(self, opdef) -> str:
        name = opdef.name
        if re.fullmatch(r"[a-z][a-z_]*[a-z]", name) and not self._taken(name) \
                and self.table.get(name, opdef.impl) is opdef.impl:
            self.table[name] = opdef.impl
            return name
        return self.bind(opdef.impl, "op_")


class Expressions:
    """Source text of values: references to earlier values and the op applied to them."""

    def __init__(self, np_dtype, float32: bool, globals_: Globals, dim: Callable[[Any], str]):
        self.np_dtype, self.float32, self.g, self.dim = np_dtype, float32, globals_, dim

    def ref(self, v: Value) -> str:
        if v.role == "const":
            if v.ndim == 0:
                return float_literal(v.value)
            arr = np.asarray(v.value, dtype=self.np_dtype)
            arr.setflags(write=False)
            return self.g.bind(arr, "c")
        assert v.ident is not None, f"value used before definition: {v}"
        return v.ident

    def args(self, v: Value) -> list[Code]:
        out = []
        ufunc = v.op.ufunc is not None
        for x in v.args:
            text = self.ref(x)
            # python scalars (computed in float64) meet float32 arrays as float32 scalars; python floats are
            # weak in ufuncs, but elsewhere `0.5 * (x > 0)` would be float64
            if self.float32 and ((x.pyscalar and not v.pyscalar) or (x.role == "const" and x.ndim == 0 and not ufunc)):
                text = f"_sc({text})"
            out.append(Code(text, x.shape, x.pyscalar))
        return out

    def expr(self, v: Value, out: str | None = None, augment: bool = False) -> str:
        """Source for ``v``; ``out`` is a buffer to write into (ops that can write one), or a
        :class:`~symgrad.runtime.Workspace` its kernel takes; with ``augment`` the source may be an
        augmented assignment to it (``out += b``)."""
        op, a = v.op, self.args(v)
        if op.ufunc is not None:
            return self._ufunc(v, a, out, augment)
        if op.emit is not None:
            src = op.emit(a, Target(v.ndim, out if op.inplace else None, self.dim, augment), **dict(v.attrs))
            return src if op.preserves_dtype or not self.float32 else f"_cast({src})"
        kw = [f"{k}={repr(val) if literal_attr(val) else self.g.bind(val, 'attr')}" for k, val in v.attrs]
        if out is not None and isinstance(self.g.table.get(out), Workspace):
            kw.append(f"work={out}")
        call = f"{self.g.op(op)}({', '.join(list(a) + kw)})"
        return f"_cast({call})" if self.float32 and not op.preserves_dtype else call

    def _ufunc(self, v: Value, a: list[str], out: str | None, augment: bool) -> str:
        op = v.op
        a = list(a) + list(op.ufunc_args)
        infix = op.infix if augment and len(a) == 2 else None
        if out is not None:
            if infix in _AUGMENTABLE and a[0] == out:
                return f"{out} {infix}= {a[1]}"
            if infix in _AUGMENTABLE and op.commutative and a[1] == out:
                return f"{out} {infix}= {a[0]}"
            return f"np.{op.ufunc}({', '.join(a)}, out={out})"
        infix = op.infix
        if infix and not op.ufunc_args:
            if len(a) == 1:
                return f"{infix}{a[0]}"
            if op.pyfloat_infix or not (v.args[0].pyscalar and v.args[0].role != "const"):
                return f"{a[0]} {infix} {a[1]}"
        return f"np.{op.ufunc}({', '.join(a)})"
