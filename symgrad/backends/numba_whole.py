"""Whole-step functions for the Numba backend: the computation of a training step as one
``numba.njit`` function, so a step costs one call from Python instead of one per op.

When every op of a step has a Numba form -- elementwise ops and sums/means as loops (the fused
kernels of :mod:`.numba_fuse`, written inline), matrix products as one BLAS call each
(:func:`.numba_forms.matmul_into`, ``np.dot`` for vectors), transposes as ``.T``, softmax, log-softmax and the cross-entropy pieces as the
functions of :mod:`.numba_forms`, Python-scalar arithmetic as itself -- the step is two functions:

* the driver (Python): the NumPy backend's input checks and param loads, then one call;
* the core (``numba.njit``): every op, one line each with the NumPy backend's names and ``# grad of:``
  comments, each group of elementwise ops a call of its fused kernel (a njit function of its own,
  compiled once per process and cached on disk, shared by the values and the steps that compute the
  same expression, and called by address: ``_ck2(_nk_…, x, out)``, :mod:`.numba_link`, so LLVM does
  not compile its code a second time inside the core), the optimizer update written into the params'
  and state's own arrays; it returns the outputs.

Params, optimizer state and the work buffers the planner keeps between calls are arguments of the
core (a ``numba.njit`` function treats global arrays as constants).  With ``whole=True``, loops
(``sg.scan``: RNN, LSTM, GRU) are written inside the core as the NumPy backend writes them, their arrays from ``np.empty``, their
bodies' elementwise ops fused into kernels, gate slices as views and their gradients as small scatter
functions.  Random draws, float64 master params of a float32 step and ops without a form make
:func:`build_whole` raise :class:`NotWhole`; the backend then compiles the driver-and-kernels form
instead (also when Numba cannot type the core at its first call).  The core is written to the kernel cache folder and
compiled with Numba's on-disk cache, keyed by a hash of its source.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..codegen.emit import Expressions
from ..codegen.function import FunctionWriter
from ..codegen.load import _feed_helpers, _load, _runtime_globals
from ..codegen.schedule import Program, dims_before
from ..ops.base import get_op
from .numba_forms import copy_into, form_for, matmul_into, matmul_rows, new_array
from .numba_fuse import Kernel, fuse
from .numba_kernels import digest, kernel_path, load_kernel
from .numba_link import kernel_call, prepare_core
from .numba_scalar import SCALAR_FUNCS


class NotWhole(Exception):
    """The program has a part with no Numba form (the message says which)."""


_IDENT = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\b")


class _Expressions(Expressions):
    """Source of one value inside the core: kernel calls, products as ``matmul_into``/``np.dot``, forms by name."""

    def __init__(self, *args, kernels: dict, forms: dict, used: dict | None = None):
        super().__init__(*args)
        self.kernels, self.forms = kernels, forms
        self.used: dict = {} if used is None else used  # kernel name -> kernel, of the kernels the core calls

    def expr(self, v, out=None, augment=False):
        op = v.op
        k = self.kernels.get(id(op))
        if k is not None:
            return self._kernel_call(k, v, out)
        if op.ufunc == "matmul":
            a = [self.ref(x) for x in v.args]
            if v.args[0].ndim > 2 and v.args[1].ndim == 2:  # a stack of rows times a matrix: one gemm
                self.forms["matmul_rows"] = matmul_rows
                if out is None:
                    out = self._new(v)
                return f"matmul_rows({a[0]}, {a[1]}, {out})"
            if v.args[0].ndim > 2 or v.args[1].ndim > 2:
                raise NotWhole(f"matmul of shapes {v.args[0].shape} and {v.args[1].shape}")
            if v.args[0].ndim == 2 and v.args[1].ndim == 2:  # one BLAS gemm call, written inline
                self.forms["matmul_into"] = matmul_into
                if out is None:
                    out = self._new(v)
                return f"matmul_into({a[0]}, {a[1]}, {out})"
            return f"np.dot({a[0]}, {a[1]}, {out})" if out is not None and v.ndim == 2 else f"np.dot({a[0]}, {a[1]})"
        if op.ufunc is not None:
            if v.ndim > 0 and not v.pyscalar:
                raise NotWhole(f"{op.name} on an array outside a loop")
            return super().expr(v, None, False)
        if op.layout == "transpose" and v.ndim == 2:
            return f"{self.ref(v.args[0])}.T"
        if op.layout == "transpose" and dict(v.attrs).get("axes") is not None:
            # a view with its shape and strides permuted (Numba's np.transpose with axes compiles for seconds)
            x, axes = self.ref(v.args[0]), [int(i) for i in v.attr("axes")]
            shape = ", ".join(f"{x}.shape[{a}]" for a in axes)
            strides = ", ".join(f"{x}.strides[{a}]" for a in axes)
            return f"np.lib.stride_tricks.as_strided({x}, ({shape}), ({strides}))"
        if op.emit is not None and op.python_scalar:
            return super().expr(v, out, augment)
        if op is get_op("getitem") and v.args[0].ndim > 0 and _basic_key(v.attr("key")):  # a view, as in NumPy
            return super().expr(v, out, augment)
        if op is get_op("scatter") and v.ndim > 0 and _basic_key(v.attr("key")):
            return self._scatter(v, out)
        if op.layout == "broadcast" and len(v.args) == 1:  # a read-only view, or a new array of one number
            x, dims = v.args[0], ", ".join(self.dim(d) for d in v.shape) + ("," if v.ndim == 1 else "")
            if x.ndim == 0:
                text = self.ref(x) if x.pyscalar else f"float({self.ref(x)})"
                return f"np.full(({dims}), {text}, _DT)"
            return f"np.broadcast_to({self.ref(x)}, ({dims}))"
        fn = form_for(v)
        if fn is None:
            raise NotWhole(f"op {op.name} has no Numba form for shapes {[a.shape for a in v.args]}")
        self.forms[fn.__name__] = fn
        kw = [f"{k}={val!r}" for k, val in v.attrs if isinstance(val, (int, float))]
        return f"{fn.__name__}({', '.join([self.ref(x) for x in v.args] + kw)})"

    def _new(self, v) -> str:
        """A new array for value ``v`` (:func:`.numba_forms.new_array`: ``np.empty`` without compiling NumPy's)."""
        self.forms["new_array"] = new_array
        return f"new_array(({', '.join(self.dim(d) for d in v.shape)},), _DT)"

    def _scatter(self, v, out):
        """``g`` placed at a basic key of a new array of zeros (the gradient of a slice): a small njit
        function per key, cached by its source as the kernels are."""
        from ..ops.index import key_text
        g, ref = v.args
        source = "\n".join(["def kernel(x0, out):", "    out[...] = 0.0",
                            f"    out[{key_text(v.attr('key'), ref.shape)}] = x0", "    return out", ""])
        kernel = Kernel(source, load_kernel(source, python=False), f"_nk_{digest(source)[:10]}", ["scatter"],
                        python=False)
        self.used[kernel.name] = kernel
        if out is None:
            out = self._new(v)
        return self._call(kernel, [self.ref(g), out])

    def _call(self, kernel, args: list) -> str:
        """A call of a kernel by address (:mod:`.numba_link`): its code is not compiled into the core again."""
        self.used[kernel.name] = kernel
        self.forms[f"_ck{len(args)}"] = kernel_call(len(args))
        return f"_ck{len(args)}({kernel.name}, {', '.join(args)})"

    def _kernel_call(self, kernel, v, out):
        """A call of the kernel (a numba.njit function of its own, compiled once per process and
        cached on disk, shared by the values of the step that compute the same expression)."""
        args = []
        for x in v.args:
            text = self.ref(x)
            args.append(text if x.ndim > 0 or x.pyscalar else f"float({text})")
        if kernel.scalar_out:
            return self._call(kernel, args)
        if out is None:
            out = self._new(v)
        kernel, args = kernel.call(args, out)  # written over an input: the variant reading it from out
        return self._call(kernel, args)


def _basic_key(key) -> bool:
    """Whether an index key has only ints and slices with int bounds (Numba's basic indexing)."""
    from ..ops.index import _is_int, _is_slice
    return isinstance(key, tuple) and all(_is_int(it) or _is_slice(it) for it in key)


class _Writer(FunctionWriter):
    """:class:`~symgrad.codegen.function.FunctionWriter` writing the driver and the core."""

    loop_workspace = False  # a loop's arrays: np.empty in the core (a Workspace is a Python object)

    def __init__(self, program, state_arrays, rng, kernels):
        super().__init__(program, state_arrays, rng)
        self.forms: dict = {}
        self.x = _Expressions(program.np_dtype, program.float32, self.g, self._dim,
                              kernels={id(k.op): k for k in kernels}, forms=self.forms)
        self.body_pass = self._fuse_body

    def _fuse_body(self, program) -> None:
        """A loop body's elementwise ops and reductions, each group one kernel (as the step's own)."""
        for k in fuse(program, whole=True):
            self.x.kernels[id(k.op)] = k

    def _body_expressions(self, program) -> _Expressions:
        return _Expressions(program.np_dtype, program.float32, self.g, self._dim, kernels=self.x.kernels,
                            forms=self.forms, used=self.x.used)

    def _step_rows(self, array: str, work, tag: str) -> str:
        return f"np.ascontiguousarray({array})"

    def _store_row(self, slot: str, value: str, ndim: int) -> str:
        # Numba's setitem of an array compiles its broadcasting checks: seconds, for a plain copy
        if ndim == 0:
            return f"{slot} = {value}"
        self.forms["copy_into"] = copy_into
        return f"copy_into({slot}, {value})"

    def sources(self) -> tuple[str, str, list[str]]:
        """``(driver, core, the core's arguments)``."""
        p = self.p
        params, checks = self._arguments()
        leaves = self._leaves()
        body = self._ops()
        outs = [self.x.ref(v) for v in p.out_vals]
        copies, tail = self._stores(outs)
        for ln in tail:
            m = re.match(r"(\s*)np\.copyto\(([^,]+), (.+)\)(  #.*)?$", ln)
            if m is None:
                raise NotWhole(f"store {ln.strip()!r}")
            copies.append(f"{m.group(1)}{m.group(2)}[...] = {m.group(3)}{m.group(4) or ''}")
        core_lines = []
        for e in body + copies:
            for j, ln in enumerate(e.split("\n")):
                core_lines.append(ln if j == 0 else "    " + ln)
        defined = list(params)
        for ln in checks + leaves:
            m = re.match(r"\s*(\w+) = ", ln)
            if m and m.group(1) not in defined:
                defined.append(m.group(1))
        used: set[str] = set()
        for ln in core_lines + [", ".join(outs)]:
            used.update(_IDENT.findall(ln.split("  #")[0]))
        args = [d for d in defined if d in used]
        arrays = []
        for name in sorted(used):
            obj = self.g.table.get(name)
            if obj is None or name in args:
                continue
            if isinstance(obj, np.ndarray):
                arrays.append(name)
            elif name not in self.forms and name not in SCALAR_FUNCS and name not in self.x.used:
                raise NotWhole(f"global {name} ({type(obj).__name__})")
        core_args = args + arrays
        ret = "(" + ", ".join(outs) + ("," if len(outs) == 1 else "") + ")" if outs else "()"
        dt = p.np_dtype.__name__
        imports = ["import math", "import numpy as np",
                   "from symgrad.backends.numba_scalar import " + ", ".join(sorted(SCALAR_FUNCS))]
        forms = sorted(f for f in self.forms if not f.startswith("_ck"))
        calls = sorted(int(f[3:]) for f in self.forms if f.startswith("_ck"))  # the kernel_call intrinsics
        if forms:
            imports.append("from symgrad.backends.numba_forms import " + ", ".join(forms))
        if self.x.used:
            imports.append("from symgrad.backends.numba_kernels import loaded")
            imports.append("from symgrad.backends.numba_link import kernel_call")
        kernel_lines = [f"{name} = loaded({digest(k.source)!r})" for name, k in sorted(self.x.used.items())]
        kernel_lines += [f"_ck{n} = kernel_call({n})  # _ck{n}(kernel, x0, …): a call of its code by address" for n in calls]
        core = "\n".join(imports + ["", f"_DT = np.dtype(np.{dt})", "_f64 = np.float64", f"_sc = np.{dt}"] + kernel_lines + ["", "",
                                    f"def core({', '.join(core_args)}):"] + core_lines + [f"    return {ret}", ""])
        res = []
        for k, v in enumerate(p.out_vals):
            r = f"_r[{k}]"
            if (v.role == "const" and v.ndim == 0) or (v.pyscalar and p.float32) or v.ndim == 0:
                r = f"_sc({r})"
            res.append(r)
        if p.return_float_first and res:
            res[0] = f"float(_r[0])"
        ret_d = res[0] if p.single else "None" if not res else "(" + ", ".join(res) + ("," if len(res) == 1 else "") + ")"
        head = [
            "# Generated by symgrad.compile(backend='numba'), one whole step: the driver below checks the",
            "# inputs and loads the params (Python), _core (compiled by numba.njit, its source follows) computes",
            f"# every op, one line or one loop nest each, and updates params and state in place.  dtype {p.dtype}.",
            "",
            f"def {p.fname}({', '.join(params)}):",
        ]
        driver = "\n".join(head + checks + leaves + [f"    _r = _core({', '.join(core_args)})", f"    return {ret_d}", ""])
        return driver, core, core_args


def build_whole(fname: str, program: Program, state_arrays: Sequence = (), rng=None,
                whole: bool | None = None) -> tuple:
    """``(function, source, path, core, kernels)`` of ``program`` as a driver and one njit core, or raise
    :class:`NotWhole`.  ``whole``: None (a step with loops stays a driver), True (loops too) or False
    (never: raises).

    Loops are not put in the core by default because, measured on this project's 2-core machine, it does
    not pay: a tanh RNN step with SGD (9 kernels) compiles whole in about 5 s and runs 5.7-6.0 ms against
    4.6 ms as a driver (compiled in 2 s; the two alternated in one process, 30 rounds); an LSTM step with
    a head and Adam (33 kernels) compiles whole in 30 s and runs 6.5 ms against 5.6 ms.  It gains a little
    on small models, where Python's dispatch of each op dominates: an RNN of 32 units, 30 steps, with a head
    and Adam runs 0.70-0.77 ms whole against 0.90-0.93 ms as a driver, after 16 s of compiling."""
    if whole is False:
        raise NotWhole("whole=False")
    if any(v.role == "random" for v in program.val.values()):
        raise NotWhole("random draws")
    if whole is None and any(v.role == "op" and v.op.outputs is not None for v in program.val.values()):
        raise NotWhole("loops (a driver unless whole=True: quicker to compile, and as fast)")
    kernels = fuse(program, whole=True)
    program.plan()
    if program.master_updates or any(not program.direct(v) for v in program.val.values() if v.role == "param"):
        raise NotWhole("a param held in another dtype")
    writer = _Writer(program, state_arrays, rng, kernels)
    driver, core_src, _ = writer.sources()
    used = list(writer.x.used.values())
    prepare_core(kernel_path(core_src), [k.fn for k in used])  # the names a cached core calls its kernels by
    core = load_kernel(core_src, "core")
    ns = {k: v for k, v in writer.g.table.items()}
    ns.update(_runtime_globals(program.np_dtype))
    ns.update(_feed_helpers(fname, program.inputs, program.np_dtype, lambda i: dims_before(program.inputs, i),
                            program.range_checks))
    ns["_core"] = core
    ns["__name__"] = f"symgrad_generated_numba_{fname}"
    fn, path = _load(driver, fname, ns)
    parts = [driver, "# ---- _core (numba.njit, error_model='numpy')\n" + core_src]
    for k in used:
        parts.append(k.header() + k.source)
    return fn, "\n\n".join(parts), path, core, used


__all__ = ["build_whole", "NotWhole"]
