"""Compiler backends: the name given as ``sg.compile(..., backend=)`` -> the module that compiles.

A backend module exposes the two functions of :mod:`symgrad.codegen.api` with their signatures,

    compile(outputs, inputs, dtype, **options) -> a CompiledFunction-like object
    compile_step(loss, optimizer, inputs, outputs, **options) -> a StepFunction-like object

(options are the keywords of ``sg.compile`` / ``sg.compile_step``: ``reuse_buffers``, ``seed``,
``params``, ``eval_loss``, ``eval_outputs``), returning objects with the same interface: callable,
``.source``, ``.seed()``, ``.rng``; steps update the params in place and have ``.reset()`` and
``.evaluate()``.  ``"numpy"`` is the compiler of :mod:`symgrad.codegen` itself.  A backend whose
optional dependency is missing raises :class:`~symgrad.errors.DependencyError` naming the extra
to install; an unknown name raises :class:`~symgrad.errors.GraphError` listing the known ones.

>>> from symgrad.backends import BACKENDS, get_backend
>>> get_backend("numpy").__name__
'symgrad.codegen.api'
>>> sorted(BACKENDS)[:2]
['jax', 'numba']
>>> get_backend("fortran")
Traceback (most recent call last):
...
symgrad.errors.GraphError: compile: unknown backend 'fortran'; the backends are 'jax', 'numba', 'numpy'
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from types import ModuleType

from ..errors import DependencyError, GraphError


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where a backend lives: ``module`` (imported on first use), the package it ``needs``
    (checked first, None for none) and the pip ``extra`` that installs it."""

    module: str
    needs: str | None = None
    extra: str | None = None


#: backend name -> where it lives (one line per backend)
BACKENDS: dict[str, Backend] = {
    "numpy": Backend("symgrad.codegen.api"),
    "numba": Backend("symgrad.backends.numba_backend", "numba", "numba"),
    "jax": Backend("symgrad.backends.jax_backend", "jax", "jax"),
}


def get_backend(name: str, what: str = "compile") -> ModuleType:
    """The module of backend ``name`` (with ``compile`` and ``compile_step``)."""
    if not isinstance(name, str) or name not in BACKENDS:
        known = ", ".join(repr(k) for k in sorted(BACKENDS))
        raise GraphError(f"{what}: unknown backend {name!r}; the backends are {known}")
    spec = BACKENDS[name]
    if spec.needs is not None:
        try:
            importlib.import_module(spec.needs)
        except ImportError as e:
            raise DependencyError(f"{what}: backend={name!r} needs {spec.needs}: pip install "
                                  f"'symgrad[{spec.extra}]' ({e})") from None
    try:
        return importlib.import_module(spec.module)
    except ImportError as e:
        if e.name == spec.module:
            raise GraphError(f"{what}: backend {name!r} is not available in this version of symgrad "
                             f"({spec.module} is missing)") from None
        raise


def cache_dir(kind: str) -> str:
    """The folder of a backend's on-disk cache (``"numba"``: kernel sources and Numba's compiled code;
    ``"jax"``: JAX's compilation cache), created when missing: ``$SYMGRAD_CACHE/<kind>``, else
    ``~/.cache/symgrad/<kind>``, else a temporary folder when neither can be written."""
    root = os.environ.get("SYMGRAD_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "symgrad")
    for folder in (os.path.join(root, kind), os.path.join(tempfile.gettempdir(), f"symgrad_{kind}")):
        try:
            os.makedirs(folder, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    raise OSError(f"symgrad {kind} backend: no writable cache folder (set SYMGRAD_CACHE)")


__all__ = ["BACKENDS", "Backend", "get_backend", "cache_dir"]
