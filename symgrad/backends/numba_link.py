"""Calls from a whole step's core (:mod:`.numba_whole`) to its kernels by address, not by linking.

A ``numba.njit`` function calling another links the callee's code into its own: LLVM then optimises and
compiles every kernel a second time, as part of the core, after compiling it once on its own.  For a
small model's step that is a third of the compile time.  Here the core calls each kernel through
``kernel_call(n)(kernel, x0, …)``: an intrinsic that compiles the kernel for the argument types (or loads it
from Numba's disk cache), publishes the address of its machine code to LLVM under a name made from the
kernel's source hash and those types (``llvmlite.binding.add_symbol``), and emits a plain call of that
name, so the core's module holds only the core.

A core loaded from Numba's disk cache refers to those names, so they must be published before it is
loaded.  Each (kernel, argument types) a core is compiled with is therefore recorded in the cache folder
(``sigs/<kernel hash>/<name>.pkl``, written before the core's own cache entry can be), and
:func:`prepare_core` publishes every recorded one of the kernels a core calls before Numba looks in its
cache; when a kernel has no record while the core has a cache entry, that entry is removed and the core
is compiled again.

>>> import numpy as np, symgrad as sg
>>> x = sg.var("x", shape=(3,))
>>> step = sg.compile_step(sg.sum(sg.tanh(x * sg.param("w", np.ones(3)))), sg.optim.SGD(lr=0.1),
...                        inputs=[x], backend="numba")
>>> round(step(np.array([0.5, -1.0, 2.0])), 6), "_ck2(_nk_" in step.source
(0.664551, True)
"""
from __future__ import annotations

import glob
import hashlib
import os
import pickle
import threading

from numba.core import cgutils
from numba.extending import intrinsic

_LOCK = threading.RLock()
_PUBLISHED: dict[str, object] = {}  # symbol name -> the compile result whose code it names (kept alive)
_CALLS: dict[int, object] = {}  # arity -> intrinsic


def _types_text(argtypes) -> str:
    return "|".join(f"{t}/{t.key!r}" for t in argtypes)


def symbol(key: str, argtypes) -> str:
    """The name a kernel (its source hash ``key``) compiled for ``argtypes`` is published under."""
    return "symgrad_kernel_" + hashlib.sha256(f"{key}|{_types_text(argtypes)}".encode()).hexdigest()[:32]


def _sig_dir(key: str) -> str:
    from .numba_kernels import cache_dir
    return os.path.join(cache_dir(), "sigs", key)


def _disk() -> bool:
    return os.environ.get("SYMGRAD_NUMBA_CACHE", "1") != "0"


def publish(disp, key: str, argtypes: tuple):
    """Compile (or load) ``disp`` for ``argtypes`` and publish its code's address: ``(name, compile result)``.
    (The compile takes Numba's own lock, outside this module's: a core being typed holds Numba's and then
    publishes.)"""
    if argtypes not in disp.overloads:
        disp.compile(argtypes)
    cres = disp.overloads[argtypes]
    name = symbol(key, argtypes)
    with _LOCK:
        if name not in _PUBLISHED:
            import llvmlite.binding as ll
            ll.add_symbol(name, cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name))
            _PUBLISHED[name] = cres
    return name, cres


def _record(key: str, argtypes: tuple, name: str) -> None:
    """Write ``argtypes`` to the kernel's record (once, atomically), for later processes' :func:`prepare_core`."""
    from .numba_kernels import _write_once
    folder = _sig_dir(key)
    os.makedirs(folder, exist_ok=True)
    _write_once(os.path.join(folder, name + ".pkl"), pickle.dumps(argtypes))


def _typer(typingctx, disp, *args):
    key = getattr(getattr(disp, "dispatcher", None), "symgrad_key", None)
    if key is None:
        return None
    argtypes = tuple(args)
    name, cres = publish(disp.dispatcher, key, argtypes)
    if _disk():
        _record(key, argtypes, name)
    fndesc = cres.fndesc

    def codegen(context, builder, signature, llargs):
        fnty = context.call_conv.get_function_type(fndesc.restype, fndesc.argtypes)
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        status, res = context.call_conv.call_function(builder, fn, fndesc.restype, fndesc.argtypes, llargs[1:])
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return res

    return cres.signature.return_type(disp, *args), codegen


def kernel_call(n: int):
    """The intrinsic ``call(kernel, x0, …, x{n-1})``: the kernel's result, its code called by address."""
    with _LOCK:
        got = _CALLS.get(n)
        if got is None:
            names = ", ".join(f"x{i}" for i in range(n))
            ns = {"_typer": _typer}
            exec(f"def call(typingctx, kernel, {names}):\n    return _typer(typingctx, kernel, {names})\n", ns)  # noqa: S102
            got = _CALLS[n] = intrinsic(ns["call"])
        return got


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def prepare_core(core_path: str, kernels) -> None:
    """Before the core in ``core_path`` is handed to Numba: when Numba has it cached, publish every recorded
    compile of the ``kernels`` (dispatchers with ``symgrad_key``) it calls; when a kernel has no record (or
    an unreadable one), drop the core's cache entries instead (they would refer to names nothing publishes)."""
    folder, stem = os.path.split(os.path.splitext(core_path)[0])
    entries = glob.glob(os.path.join(folder, "__pycache__", f"{glob.escape(stem)}.core-*"))
    if not entries or not _disk():
        return
    todo, complete = [], True
    for disp in kernels:
        key = disp.symgrad_key
        files = sorted(glob.glob(os.path.join(_sig_dir(key), "symgrad_kernel_*.pkl")))
        complete = complete and bool(files)
        for path in files:
            try:
                with open(path, "rb") as f:
                    argtypes = pickle.load(f)
                if symbol(key, argtypes) != os.path.basename(path)[:-4]:
                    raise ValueError(path)
                todo.append((disp, key, argtypes))
            except Exception:  # noqa: BLE001  a damaged record: removed (the next compile writes it again)
                complete = False
                _unlink(path)
    if not complete:  # a core compiled with a kernel whose record is gone: compile it again
        for path in entries:
            _unlink(path)
        return
    for disp, key, argtypes in todo:
        publish(disp, key, argtypes)


__all__ = ["kernel_call", "prepare_core", "publish", "symbol"]
