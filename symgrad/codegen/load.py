"""Loading generated source: written to a real file (so tracebacks and ``inspect`` show it) and
executed with its globals bound, among them the slow paths of input checking."""
from __future__ import annotations

import builtins
import hashlib
import linecache
import os
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import FeedError
from ..evaluate import feed_array
from ..graph import Node, format_shape
from .function import FunctionWriter
from .schedule import Program, dims_before


def load_into(work: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Copy (and cast) a param's value into its persistent working array."""
    np.copyto(work, value, casting="same_kind")
    return work


def _cache_dir() -> str | None:
    path = os.path.join(tempfile.gettempdir(), "symgrad_codegen")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path


def _load(source: str, fname: str, namespace: dict) -> tuple[Callable, str]:
    """Write ``source`` to a real file (atomically) and execute it in ``namespace``."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    folder = _cache_dir()
    path = None
    if folder is not None:
        path = os.path.join(folder, f"{fname}_{digest}.py")
        if not os.path.exists(path):
            try:
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".py")
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(source)
                os.replace(tmp, path)
            except OSError:
                path = None
    filename = path or f"<symgrad-{fname}-{digest}>"
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    code = builtins.compile(source, filename, "exec")
    exec(code, namespace)  # noqa: S102  the source is generated here, from op declarations and our identifiers
    return namespace[fname], filename


def _feed_helpers(fname: str, inputs: list[Node], np_dtype, dims_of, ranges: dict) -> dict:
    """The slow paths of input checking, bound into the generated module."""

    def feed(i: int, value: Any) -> np.ndarray:
        node = inputs[i]
        arr = feed_array(node, value, f"{fname}: input {node.name!r}")
        return arr if node.dtype == "int" else arr.astype(np_dtype, copy=False)

    def bad_shape(i: int, arr: np.ndarray, known: tuple) -> None:
        node = inputs[i]
        bound = dict(zip(dims_of(i), known))
        got = tuple(arr.shape)
        if len(got) == len(node.shape):
            for want, d in zip(node.shape, got):
                if isinstance(want, str) and want in bound and bound[want] != d:
                    raise FeedError(f"{fname}: input {node.name!r} of shape {got}: dim {want!r} is {d} here "
                                    f"but {bound[want]} in an earlier input")
        raise FeedError(f"{fname}: input {node.name!r}: expected shape {format_shape(node.shape)}, got {got}")

    def bad_class(i: int, arr: np.ndarray, k: int) -> None:
        raise FeedError(f"{fname}: input {inputs[i].name!r}: class index out of range [0, {k}) "
                        f"(got {arr.min()}..{arr.max()})")

    def bad_range(i: int, arr: np.ndarray) -> None:
        lo, hi, ops = ranges[i]
        raise FeedError(f"{fname}: input {inputs[i].name!r}: values must lie in [{lo:g}, {hi:g}] for {ops} "
                        f"(got {arr.min():g}..{arr.max():g})")

    return {"_feed": feed, "_bad_shape": bad_shape, "_bad_class": bad_class, "_bad_range": bad_range,
            "_stale": _stale}


class ParamDtypeChanged(Exception):
    """Raised by a compiled step, before it changes anything, when a param's value no longer has the
    dtype the step was compiled for (``p.value = ...`` of the other float type); the step recompiles."""


def _stale(value: np.ndarray, want: np.dtype) -> None:
    if value.dtype != want:  # (an equal dtype that is another object is fine)
        raise ParamDtypeChanged


def build(fname: str, program: Program, state_arrays: Sequence[np.ndarray] = (),
          rng: np.random.Generator | None = None) -> tuple[Callable, str, str]:
    """Plan, write and load ``program``: the function, its source and the file it was loaded from.
    ``rng`` is the Generator the function draws its random nodes from."""
    program.plan()
    writer = FunctionWriter(program, state_arrays, rng)
    source = writer.source()
    ns = dict(writer.g.table)
    ns.update(_runtime_globals(program.np_dtype))
    ns.update(_feed_helpers(fname, program.inputs, program.np_dtype, lambda i: dims_before(program.inputs, i),
                            program.range_checks))
    ns["__name__"] = f"symgrad_generated_{fname}"
    fn, filename = _load(source, fname, ns)
    return fn, source, filename


def _runtime_globals(np_dtype) -> dict[str, Any]:
    """What every generated module reads besides its own bindings."""
    return {"np": np, "_ndarray": np.ndarray, "_DT": np.dtype(np_dtype), "_f64": np.float64,
            "_errstate": np.errstate, "_cast": lambda x, _dt=np_dtype: np.asarray(x, dtype=_dt),
            "_sc": np_dtype, "_load": load_into}
