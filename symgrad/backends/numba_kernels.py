"""Fused loops for the Numba backend: the scalar code of each op, the source of one kernel, and the
on-disk and in-process caches of the compiled kernels.

A kernel computes a group of elementwise ops (and, at its root, possibly a sum or mean over axes) in
one loop nest over the output, reading each input at its broadcast index (``b[i1]`` for a bias of a
``(batch, n)`` loop).  Its source uses generic names (``x0, x1, …`` for the inputs, ``t0, t1, …`` for
the values inside the group, ``out`` for the result), so the kernels of equal expressions are one
kernel whatever the model calls their values: the driver function names them (see
:mod:`.numba_backend`).  The scalar code of an op comes from its declaration: its ufunc (``np.log``,
or its infix operator) or its SymPy meaning printed as Python (``Piecewise`` as ``a if c else b``,
symgrad's own functions as the calls of :mod:`.numba_scalar`); ``exp`` and ``tanh`` are the
vectorisable ones of :mod:`.numba_scalar`, not the C library's.

Each kernel's source is written, once and atomically, to ``<cache>/k_<hash of the source>.py`` (``…_core.py``
for a kernel called only from a whole step's core, compiled without its CPython wrapper) and
loaded from there with ``numba.njit(cache=True)``: Numba keys its cache on that file (path and
modification time), so a kernel compiled once is loaded from disk by every later process.  The
cache folder is ``$SYMGRAD_CACHE/numba`` or ``~/.cache/symgrad/numba`` (a temporary folder when
neither can be written).  ``SYMGRAD_NUMBA_CACHE=0`` turns Numba's on-disk cache off (the kernel files are
still written): saving a compiled kernel costs about a fifth more than compiling it, which a run that
compiles hundreds of kernels once (the op tests) does not need.

>>> import sympy
>>> from symgrad.ops import REGISTRY
>>> scalar_code(REGISTRY["tanh"], (), ["a"]), scalar_code(REGISTRY["mul"], (), ["a", "b"])
('tanh(a)', '(a * b)')
>>> scalar_code(REGISTRY["sigmoid"], (), ["z"])
'sigmoid((z))'
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import tempfile
import threading
from typing import Any, Sequence

import sympy
from sympy.printing.pycode import PythonCodePrinter

from ..ops.kernels import MASK_MUL
from . import cache_dir as backend_cache_dir
from .numba_scalar import SCALAR_FUNCS, VECTOR_FUNCS

_ARG = "zqarg{}"  # placeholder names of an op's operands while its SymPy meaning is printed


class _ScalarPrinter(PythonCodePrinter):
    """SymPy -> scalar Python for a Numba loop: symgrad's functions as :mod:`.numba_scalar` calls."""

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in SCALAR_FUNCS:
            return f"{name}({', '.join(self._print(a) for a in expr.args)})"
        return super()._print_Function(expr)

    def _print_Rational(self, expr):
        return f"({float(expr)!r})"

    def _print_Integer(self, expr):
        return f"{float(expr)!r}"


_PRINTED: dict[tuple, str | None] = {}
#: ops whose NumPy implementation does more than their SymPy meaning says, at points the meaning leaves
#: out (NaN = NaN counts as equal; x / 0 is 0): they stay NumPy calls
_MEANING_DIFFERS: tuple = ()


def _meaning_differs(op) -> bool:
    global _MEANING_DIFFERS
    if not _MEANING_DIFFERS:
        from ..ops.base import get_op
        _MEANING_DIFFERS = tuple(get_op(n) for n in ("equal_nan", "div_or_zero"))
    return any(op is o for o in _MEANING_DIFFERS)


def _printed(op, attrs: tuple) -> str | None:
    """The op's SymPy meaning as scalar Python in the placeholders, or None when it cannot be printed."""
    key = (id(op), attrs)
    if key not in _PRINTED:
        try:
            ts = sympy.symbols(" ".join(_ARG.format(i) for i in range(op.nin)), real=True, seq=True)
            expr = sympy.sympify(op.scalar(*ts, **dict(attrs)))
            text = _ScalarPrinter({"strict": True, "fully_qualified_modules": True}).doprint(expr)
            bad = expr.atoms(sympy.Symbol) - set(ts)
            _PRINTED[key] = None if bad or "zoo" in text or "nan" in text.lower() else text
        except Exception:  # noqa: BLE001  a meaning that does not print as Python: the op stays a NumPy call
            _PRINTED[key] = None
    return _PRINTED[key]


def scalar_code(op, attrs: tuple, args: Sequence[str]) -> str | None:
    """Scalar Python for ``op`` applied to the scalar expressions ``args``, or None (not fusible)."""
    if op is MASK_MUL:  # g ⊙ 𝟙[x > 0], a compiler-internal op with no SymPy meaning
        return f"({args[0]} * (1.0 if {args[1]} > 0 else 0.0))"
    if op.ufunc is not None:
        if op.infix and not op.ufunc_args and op.infix != "@":
            return f"({op.infix}{args[0]})" if len(args) == 1 else f"({args[0]} {op.infix} {args[1]})"
        fn = op.ufunc if op.ufunc in VECTOR_FUNCS and not op.ufunc_args else f"np.{op.ufunc}"
        return f"{fn}({', '.join(list(args) + list(op.ufunc_args))})"
    if not op.elementwise or op.scalar is None or _meaning_differs(op):
        return None
    text = _printed(op, tuple(attrs))
    if text is None:
        return None
    for i in reversed(range(len(args))):  # zqarg10 before zqarg1
        text = text.replace(_ARG.format(i), f"({args[i]})")
    return _VECTOR_CALL.sub(r"\1(", text)


_VECTOR_CALL = re.compile(r"\bmath\.(" + "|".join(f for f in VECTOR_FUNCS if f in ("exp", "tanh")) + r")\(")


# ------------------------------------------------------------------ kernel source
def kernel_source(ndim: int, params: Sequence[tuple[str, tuple | None]], body: Sequence[tuple[str, str]],
                  result: str, reduce: tuple | None = None, dims_from: Sequence[tuple[str, int]] = ()) -> str:
    """The source of one kernel ``kernel(x0, x1, …, out)``.

    ndim : rank of the loop nest.
    params : per input ``(name, index)``: index is None for a scalar, else one entry per input axis,
        ``"i<k>"`` (the loop index of axis k) or ``"0"`` (a broadcast axis of length 1).
    body : ``(temp, expression)`` computed in order at each point of the loop nest.
    result : the expression of the value at each point.
    reduce : None (elementwise: ``out`` has the loop's shape), or ``(kind, axes, out_index)``:
        kind ``"sum"`` or ``"mean"``, the reduced loop axes, and the index of ``out`` at each point
        (None for a full reduction returned as a float).
    dims_from : per loop axis, ``(array, axis)`` whose length it is (default: ``out``'s).
    """
    names = [n for n, _ in params]
    lines = ["import math", "import numpy as np", "from symgrad.backends.numba_scalar import "
             + ", ".join(sorted(f for f in SCALAR_FUNCS)), "", ""]
    full = reduce is not None and reduce[2] is None
    lines.append(f"def kernel({', '.join(names + ([] if full else ['out']))}):")
    for k in range(ndim):
        src, axis = dims_from[k] if dims_from else ("out", k)
        lines.append(f"    n{k} = {src}.shape[{axis}]")
    if reduce is not None:
        if full:
            lines.append("    acc = 0.0")
        else:  # zeroed as a loop nest (out.fill compiles Numba's implementation of it, per rank)
            lines += _out_loops(reduce[2], "out[{}] = 0.0")
    ind = "    "
    for k in range(ndim):
        lines.append(f"{ind}for i{k} in range(n{k}):")
        ind += "    "
    for temp, expr in body:
        lines.append(f"{ind}{temp} = {expr}")
    if reduce is None:
        idx = ", ".join(f"i{k}" for k in range(ndim))
        lines.append(f"{ind}out[{idx}] = {result}")
        lines.append("    return out")
        return "\n".join(lines) + "\n"
    kind, axes, out_index = reduce
    count = " * ".join(f"n{k}" for k in axes) or "1"
    if full:
        lines.append(f"{ind}acc += {result}")
        lines.append(f"    return acc / ({count})" if kind == "mean" else "    return acc")
    else:
        lines.append(f"{ind}out[{out_index}] += {result}")
        if kind == "mean":
            lines += [f"    scale = 1.0 / ({count})"] + _out_loops(reduce[2], "out[{}] *= scale")
        lines.append("    return out")
    return "\n".join(lines) + "\n"


def _out_loops(out_index: str, statement: str) -> list[str]:
    """A loop nest over every entry of ``out`` (of as many axes as ``out_index`` has) running ``statement``."""
    rank = len(out_index.split(", "))
    lines, ind = [], "    "
    for j in range(rank):
        lines.append(f"{ind}for j{j} in range(out.shape[{j}]):")
        ind += "    "
    return lines + [ind + statement.format(", ".join(f"j{j}" for j in range(rank)))]


def index_text(name: str, index: tuple | None) -> str:
    """``x0[i0, i1]`` (an array read at the loop point) or ``x0`` (a scalar)."""
    return name if index is None else f"{name}[{', '.join(index) if index else '()'}]"


# ------------------------------------------------------------------ compiling and caching
_LOCK = threading.Lock()
_COMPILED: dict[tuple, Any] = {}  # (source hash, on-disk cache, wrapper) -> the numba dispatcher


def cache_dir() -> str:
    """Where kernel sources and Numba's cache of them live (created when missing)."""
    return backend_cache_dir("numba")


def _helpers_hash() -> bytes:
    """A hash of the modules a kernel's source imports from (its compiled code inlines them)."""
    h = hashlib.sha256()
    for name in ("numba_scalar.py", "numba_forms.py"):
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), "rb") as f:
            h.update(f.read())
    return h.digest()


_HELPERS = _helpers_hash()


def digest(source: str) -> str:
    """The key of a kernel: a hash of its source and of the helpers it inlines (so an edit of
    :mod:`.numba_scalar` never runs a kernel compiled from the old one out of Numba's disk cache)."""
    return hashlib.sha256(_HELPERS + source.encode("utf-8")).hexdigest()[:20]


def _write_once(path: str, data: str | bytes) -> None:
    """Write ``data`` (source text, or bytes) to ``path`` atomically unless it is there already (a kernel
    file's mtime is Numba's cache key)."""
    if os.path.exists(path):
        return
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def kernel_path(source: str, python: bool = True) -> str:
    """The file a kernel's (or core's) source is written to and loaded from."""
    return os.path.join(cache_dir(), f"k_{digest(source)}{'' if python else '_core'}.py")


def load_kernel(source: str, fname: str = "kernel", python: bool = True):
    """The Numba dispatcher of ``fname`` in ``source``: from this process's cache, else from the
    kernel's file (written once), compiled on first call or loaded from Numba's on-disk cache.
    ``python=False``: called only from other compiled code (no CPython wrapper: a fifth less to compile)."""
    key = digest(source)
    disk = os.environ.get("SYMGRAD_NUMBA_CACHE", "1") != "0"
    with _LOCK:
        got = _COMPILED.get((key, disk, python))
        if got is not None:
            return got
        import numba
        # one file per (source, wrapper): Numba's disk cache is keyed by file, function and signature, not by
        # its options, so a kernel compiled without its CPython wrapper (called only from a whole step's core)
        # must never be what a call from Python loads
        tag = "" if python else "_core"
        path = kernel_path(source, python)
        _write_once(path, source)
        name = f"symgrad_numba_k_{key}{tag}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        fn = numba.njit(cache=disk, error_model="numpy", nogil=True, no_cfunc_wrapper=True,
                        no_cpython_wrapper=not python)(getattr(module, fname))
        fn.symgrad_key = key + tag  # the name its compiles are published under (:mod:`.numba_link`)
        _COMPILED[(key, disk, python)] = fn
        return fn


def loaded(key: str):
    """The dispatcher of the kernel whose source hash is ``key`` (loaded by :func:`load_kernel` in this
    process): how the core of a whole step (:mod:`.numba_whole`) names the kernels it calls."""
    disk = os.environ.get("SYMGRAD_NUMBA_CACHE", "1") != "0"
    return _COMPILED.get((key, disk, False)) or _COMPILED[(key, not disk, False)]


__all__ = ["loaded", "scalar_code", "kernel_source", "index_text", "load_kernel", "kernel_path", "cache_dir",
           "digest"]
