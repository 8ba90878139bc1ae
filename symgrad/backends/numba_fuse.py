"""The Numba backend's IR pass: groups of elementwise values (and a sum or mean at their root) become
one value whose op is a fused kernel (:mod:`.numba_kernels`).

:func:`fuse` runs on a :class:`~symgrad.codegen.schedule.Program` after lowering and rewriting and
before planning, so scheduling, liveness, buffer reuse and naming then treat a kernel like any op: it
may write over a dead temporary of its shape or straight into a param's array (an optimizer update),
and its value carries the nodes of the group's root, whose name and ``# grad of:`` comment it gets.

A value joins the group of the value that reads it when it is elementwise with printable scalar code,
has that value's shape (no work is repeated), and nothing else reads it (no output, store or second
reader).  Groups of fewer than ``min_ops`` ops stay NumPy calls (a lone ``np.add`` is as fast as a loop,
and every kernel costs a Numba compile), unless they call ``exp``, ``tanh`` or σ, whose loops here are
vectorised and NumPy's float64 ones are not on most CPUs (:mod:`.numba_scalar`).

A new optimizer state that only its param's update reads (Adam's m and v, SGD's momentum) joins that
update's group: the kernel computes it at each point, writes it into the state's own array (an input of
the kernel; its source says ``also writes x0, x3``) and uses it for the param, so a param's whole update is
one loop and one compiled kernel instead of three.
"""
from __future__ import annotations

import re

import dataclasses
from collections import Counter
from typing import Any

from ..codegen.ir import Value
from ..codegen.names import float_literal
from ..codegen.schedule import Program
from ..ops.base import OpDef
from .numba_kernels import digest, index_text, kernel_source, load_kernel, scalar_code
from .numba_scalar import VECTOR_FUNCS


def _no_sym(*args, **kwargs):  # pragma: no cover  kernels exist only inside the compiler
    raise NotImplementedError("a fused Numba kernel has no formula")


@dataclasses.dataclass
class Kernel:
    """One fused kernel: its source, the Numba dispatcher, and the global name the driver calls it by."""

    source: str
    fn: Any
    name: str
    ops: list[str]
    op: Any = None  #: the internal op of its call (the value computing it has it as its op)
    scalar_out: bool = False  #: a full reduction, returned as a float
    python: bool = True  #: callable from Python (else only from other compiled code)
    variants: dict = dataclasses.field(default_factory=dict)  #: input index -> :meth:`aliased` kernel
    writes: tuple = ()  #: indices of the inputs it also writes (optimizer states updated in its loop)

    def header(self) -> str:
        """The line that opens its source in ``.source``."""
        also = f"; also writes {', '.join(f'x{k}' for k in self.writes)}" if self.writes else ""
        return f"# ---- {self.name}: {', '.join(dict.fromkeys(self.ops))}{also} (numba.njit, error_model='numpy')\n"

    def aliased(self, k: int) -> "Kernel":
        """This kernel for a call that writes its result over its input ``k``: that input is read
        from ``out`` (and is no argument).  The loop then reads and writes one array at the same index,
        which LLVM vectorises; with two arguments that are the same array, its overlap check fails at
        run time and the loop runs one number at a time (4-8 times slower for ``tanh``)."""
        got = self.variants.get(k)
        if got is None:
            lines = self.source.split("\n")
            d = next(i for i, ln in enumerate(lines) if ln.startswith("def kernel("))
            lines[d] = re.sub(rf"\bx{k}, ", "", lines[d], count=1)
            source = re.sub(rf"\bx{k}\b", "out", "\n".join(lines))
            fn = load_kernel(source, python=self.python)
            writes = tuple(w - (w > k) for w in self.writes)
            got = self.variants[k] = Kernel(source, fn, f"_nk_{digest(source)[:10]}", self.ops, self.op,
                                            python=self.python, writes=writes)
        return got

    def call(self, args: list[str], out: str) -> tuple["Kernel", list[str]]:
        """``(kernel, arguments)`` of a call writing into ``out``: :meth:`aliased` when ``out`` is one of
        ``args`` (compared as source text, so a view of it never matches)."""
        k = next((i for i, a in enumerate(args) if str(a) == out), None)
        if k is None:
            return self, list(args) + [out]
        return self.aliased(k), [a for i, a in enumerate(args) if i != k] + [out]


def _broadcast_index(arg_shape: tuple, loop_shape: tuple) -> tuple | None:
    """The index of an input of ``arg_shape`` at each point of a loop over ``loop_shape``, or None
    when it does not broadcast there statically."""
    k, m = len(loop_shape), len(arg_shape)
    if m > k:
        return None
    idx = []
    for a, d in enumerate(arg_shape):
        j = a + k - m
        if d == loop_shape[j]:
            idx.append(f"i{j}")
        elif d == 1:
            idx.append("0")
        else:
            return None
    return tuple(idx)


def _reduce_spec(v: Value) -> tuple[str, tuple, bool] | None:
    """``(kind, axes, keepdims)`` of a sum or mean value over normalised axes, else None."""
    if v.role != "op" or v.op.reduction not in ("sum", "mean"):
        return None
    attrs = dict(v.attrs)
    if set(attrs) - {"axis", "keepdims"} or not v.args:
        return None
    ndim = v.args[0].ndim
    axis = attrs.get("axis")
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = axis if isinstance(axis, tuple) else (axis,)
        if not all(isinstance(a, int) and -ndim <= a < ndim for a in axes):
            return None
        axes = tuple(sorted({a % ndim for a in axes}))
    keep = bool(attrs.get("keepdims", False))
    want = tuple(1 if j in axes else d for j, d in enumerate(v.args[0].shape)) if keep else \
        tuple(d for j, d in enumerate(v.args[0].shape) if j not in axes)
    if tuple(v.shape) != want or ndim == 0:
        return None
    return v.op.reduction, axes, keep


class Fuser:
    """Finds the groups of one program and replaces each with a kernel value."""

    def __init__(self, p: Program, min_ops: int = 3, whole: bool = False, flat: bool = True):
        # whole: for a whole-step function (every elementwise op and reduction a loop, loop nests of the
        # arrays' own rank: no flat 1-D views, which need contiguous arrays inside Numba); flat=False: loop
        # nests of the arrays' rank also outside (a loop body's kernels: no reshape calls per step)
        self.p, self.min_ops, self.whole, self.flat = p, min_ops, whole, flat and not whole
        self.kernels: list[Kernel] = []
        self._code: dict[int, str | None] = {}

    def _elementwise(self, v: Value) -> bool:
        """Whether ``v`` can be computed inside a loop (an elementwise op with scalar code)."""
        if v.role != "op" or not v.op.elementwise or v.dtype != "float" or v.ndim == 0:
            return False
        if any(a.dtype != "float" or (a.role == "op" and a.op.outputs is not None) for a in v.args):
            return False
        if any(_broadcast_index(a.shape, v.shape) is None for a in v.args):
            return False
        if id(v) not in self._code:
            self._code[id(v)] = scalar_code(v.op, v.attrs, [f"a{i}" for i in range(len(v.args))])
        return self._code[id(v)] is not None

    def _vector(self, v: Value) -> bool:
        """Whether ``v``'s scalar code calls a function whose loop beats NumPy's ufunc (``tanh``, ``exp``, σ)."""
        code = self._code.get(id(v)) or ""
        return any(re.search(rf"(?<![\w.]){f}\(", code) for f in VECTOR_FUNCS)

    def run(self) -> list[Kernel]:
        p = self.p
        roots = list(p.out_vals) + [v for _, v in p.store_vals] + list(p.barrier_vals)
        order = _topo(roots)
        readers: dict[int, set[int]] = {}
        for v in order:
            for a in v.args:
                readers.setdefault(id(a), set()).add(id(v))
        external = {id(v) for v in roots}

        def fits(a: Value, into: Value, shape: tuple) -> bool:  # computable at each point of into's loop
            return self._elementwise(a) and tuple(a.shape) == tuple(shape) and readers.get(id(a)) == {id(into)}

        def inlinable(a: Value, into: Value, shape: tuple) -> bool:
            return fits(a, into, shape) and id(a) not in external

        # a new optimizer state (Adam's m and v, a momentum) read only by its param's update is computed in
        # that update's loop and written into the state's array there: one kernel, one pass, per param
        stored = Counter(id(sv) for _, sv in p.store_vals)
        state_of = {id(sv): leaf for leaf, sv in p.store_vals
                    if leaf.role == "state" and stored[id(sv)] == 1 and tuple(leaf.shape) == tuple(sv.shape)}
        other_roots = {id(u) for u in list(p.out_vals) + list(p.barrier_vals)}

        def mergeable(a: Value, into: Value, shape: tuple) -> bool:
            return (id(a) in state_of and id(a) not in other_roots and id(state_of[id(a)]) not in other_roots
                    and fits(a, into, shape))

        def collect(v: Value, red, loop_shape: tuple, merge: bool) -> tuple[list[Value], dict]:
            members: list[Value] = []  # the group's values, readers before what they read
            writes: dict[int, Value] = {}  # id of a member -> the state leaf it is written into
            stack = [v]
            while stack:
                u = stack.pop()
                if any(m is u for m in members):
                    continue
                members.append(u)
                for a in (u.args[:1] if (red is not None and u is v) else u.args):
                    if any(m is a for m in members):
                        continue
                    if inlinable(a, u, loop_shape):
                        stack.append(a)
                    elif merge and red is None and mergeable(a, u, loop_shape):
                        writes[id(a)] = state_of[id(a)]
                        stack.append(a)
            inside = {id(m) for m in members}
            if any(not readers.get(id(leaf), set()) <= inside for leaf in writes.values()):
                return collect(v, red, loop_shape, False)  # the old state is read elsewhere too
            return members, writes

        absorbed: set[int] = set()
        replaced: dict[int, Value] = {}
        merged: set[int] = set()
        for v in reversed(order):
            if id(v) in absorbed or v.role != "op":
                continue
            red = _reduce_spec(v)
            if red is None and not self._elementwise(v):
                continue
            loop_shape = tuple(v.args[0].shape) if red is not None else tuple(v.shape)
            members, writes = collect(v, red, loop_shape, True)
            if red is not None and len(members) < 2 and not self.whole:
                continue  # a lone reduction stays np.sum
            if len(members) < self.min_ops and not any(self._vector(m) for m in members):
                continue
            new = self._kernel_value(v, members, red, loop_shape, writes)
            for m in members:
                absorbed.add(id(m))
            merged.update(writes)
            replaced[id(v)] = new
        if not replaced:
            return []
        p.store_vals = [(leaf, sv) for leaf, sv in p.store_vals if id(sv) not in merged]  # stored by the kernel
        for v in order:
            if id(v) not in absorbed:
                v.args = tuple(replaced.get(id(a), a) for a in v.args)
        for new in replaced.values():
            new.args = tuple(replaced.get(id(a), a) for a in new.args)
        sub = lambda x: replaced.get(id(x), x)  # noqa: E731
        p.out_vals = [sub(v) for v in p.out_vals]
        p.store_vals = [(leaf, sub(v)) for leaf, v in p.store_vals]
        p.barrier_vals = [sub(v) for v in p.barrier_vals]
        p.val = {n: sub(v) for n, v in p.val.items()}
        return self.kernels

    def _kernel_value(self, root: Value, members: list[Value], red, loop_shape: tuple,
                      writes: dict | None = None) -> Value:
        """The kernel computing ``members`` (``root`` first) and the value that calls it; ``writes``: id of a
        member -> the state leaf (an input of the kernel) its value is written into, at each point."""
        writes = writes or {}
        inside = {id(m) for m in members}
        ordered: list[Value] = []  # every member after the members it reads
        done: set[int] = set()

        def visit(u):
            if id(u) in done:
                return
            done.add(id(u))
            for a in u.args:
                if id(a) in inside:
                    visit(a)
            ordered.append(u)
        for u in reversed(members):
            visit(u)
        params: list[Value] = []  # the kernel's inputs, in order of first use
        for u in ordered:
            for a in u.args:
                if id(a) not in inside and not (a.role == "const" and a.ndim == 0) and not any(q is a for q in params):
                    params.append(a)
        for leaf in writes.values():  # a state written without its old value being read
            if not any(q is leaf for q in params):
                params.append(leaf)
        # flat: every array input has the loop's shape, so the kernel loops over 1-D arrays (one kernel, one
        # Numba compile, for every rank); else a loop nest with each input read at its broadcast index
        flat = self.flat and len(loop_shape) > 1 and all(a.ndim == 0 or tuple(a.shape) == loop_shape for a in params) and (
            red is None or len(red[1]) == len(loop_shape) and not red[2])
        rank = 1 if flat else len(loop_shape)
        index = [None if a.ndim == 0 else ("i0",) if flat else _broadcast_index(a.shape, loop_shape) for a in params]
        texts: dict[int, str] = {}
        body: list[tuple[str, str]] = []
        elem_root = root if red is None else root.args[0]
        result = ""
        for u in ordered:
            if u is root and red is not None:
                continue
            args = []
            for a in u.args:
                if id(a) in inside:
                    args.append(texts[id(a)])
                elif a.role == "const" and a.ndim == 0:
                    args.append(float_literal(a.value))
                else:
                    k = next(i for i, q in enumerate(params) if q is a)
                    args.append(index_text(f"x{k}", index[k]))
            code = scalar_code(u.op, u.attrs, args)
            if u is elem_root:
                result = code
            else:
                temp = f"t{len(body)}"
                body.append((temp, code))
                texts[id(u)] = temp
        for i, leaf in writes.items():
            k = next(j for j, q in enumerate(params) if q is leaf)
            body.append((index_text(f"x{k}", index[k]), texts[i]))
        if not result:  # a lone reduction (whole-step functions): the sum of its input
            k = next(i for i, q in enumerate(params) if q is elem_root)
            result = index_text(f"x{k}", index[k])
        if self.p.float32:  # float32 arithmetic stays float32: Python floats would make every entry float64
            body, result = [(t, _float32_text(c, index)) for t, c in body], _float32_text(result, index)
        plist = [(f"x{k}", index[k]) for k in range(len(params))]
        reduce, dims_from = None, ()
        if red is not None:
            kind, axes, keep = red
            axes = (0,) if flat else axes
            kept = [j for j in range(rank) if j not in axes]
            if keep:
                out_index = ", ".join("0" if j in axes else f"i{j}" for j in range(rank))
            else:
                out_index = ", ".join(f"i{j}" for j in kept) if kept else None
            reduce = (kind, axes, out_index)
            dims_from = []
            for j in range(rank):  # each loop length from an input that spans it
                dims_from.append(next((f"x{k}", a.ndim - (len(loop_shape) - j) if not flat else 0)
                                      for k, a in enumerate(params)
                                      if a.ndim > 0 and (flat or (len(loop_shape) - j <= a.ndim and
                                                                  a.shape[a.ndim - (len(loop_shape) - j)]
                                                                  == loop_shape[j]))))
        source = kernel_source(rank, plist, body, result, reduce, dims_from)
        fn = load_kernel(source, python=not self.whole)
        name = f"_nk_{digest(source)[:10]}"
        written = tuple(sorted(next(j for j, q in enumerate(params) if q is leaf) for leaf in writes.values()))
        kernel = Kernel(source, fn, name, [m.op.name for m in ordered], python=not self.whole, writes=written)
        self.kernels.append(kernel)
        scalar_out = red is not None and reduce[2] is None
        # a kernel writes its result in place only when no input is a view (which could overlap the buffer
        # at other indices: NumPy's ufuncs copy then, a loop would read what it has overwritten); a reduction
        # zeroes its result first: never in place
        views = any(a.role == "op" and not a.op.fresh and a.ndim > 0 for a in params)
        op = _kernel_op(kernel, len(params), scalar_out, inplace=red is None and not views, flat=flat)
        kernel.op, kernel.scalar_out = op, scalar_out
        new = Value(op, tuple(params), (("shape", tuple(root.shape)),), root.shape, "float", order=root.order)
        new.nodes = list(root.nodes)
        return new


_LITERAL = re.compile(r"(?<![\w.])(\d+\.\d*(?:e[-+]?\d+)?|\d+e[-+]?\d+)")


def _float32_text(code: str, index: list) -> str:
    """``code`` with its float literals and scalar inputs as float32 (``np.float32(0.5)``)."""
    code = _LITERAL.sub(r"np.float32(\1)", code)
    for k, ix in enumerate(index):
        if ix is None:
            code = re.sub(rf"\bx{k}\b(?!\[)", f"np.float32(x{k})", code)
    return code


def _kernel_op(kernel: Kernel, nin: int, scalar_out: bool, inplace: bool, flat: bool) -> OpDef:
    """The internal op of one kernel call: ``name(x0, x1, out)``, into the buffer the planner gives it.
    A flat kernel is handed its arrays as 1-D (``x.reshape(-1)``: a view of a C-ordered array, else a copy)
    and its result is reshaped back; the arrays a result lands in in place (params, optimizer state, the
    planner's buffers) are C-ordered, and a temporary that is not is rebound to the copy written."""

    name = kernel.name

    def emit(args, target, shape):
        ins = [(f"{a}.reshape(-1)" if flat else a) if a.ndim > 0 else a if a.scalar else f"float({a})"
               for a in args]
        if scalar_out:
            return f"_sc({name}({', '.join(ins)}))"
        if target.buffer is None:
            out = f"np.empty({target.dims(shape)}, _DT)"
            return f"{name}({', '.join(ins + [out + '.reshape(-1)' if flat else out])})" + (
                f".reshape({target.dims(shape)})" if flat else "")
        k, call = kernel.call(ins, f"{target.buffer}.reshape(-1)" if flat else target.buffer)
        return f"{k.name}({', '.join(call)})" + (f".reshape({target.dims(shape)})" if flat else "")

    return OpDef(name="fused", nin=nin, shape=lambda nodes, **attrs: (), impl=kernel.fn, sym=_no_sym, vjp=None,
                 label="fused", internal=True, foldable=False, emit=emit, inplace=inplace, fresh=True,
                 preserves_dtype=True)


def _topo(roots: list[Value]) -> list[Value]:
    """Every value reachable from ``roots``, each after its operands."""
    out: list[Value] = []
    seen: set[int] = set()
    for r in roots:
        if id(r) in seen:
            continue
        stack = [(r, False)]
        while stack:
            v, expanded = stack.pop()
            if expanded:
                out.append(v)
                continue
            if id(v) in seen:
                continue
            seen.add(id(v))
            stack.append((v, True))
            for a in reversed(v.args):
                if id(a) not in seen:
                    stack.append((a, False))
    return out


def fuse(p: Program, min_ops: int = 3, whole: bool = False, flat: bool = True) -> list[Kernel]:
    """Replace the fusible groups of ``p`` (before :meth:`Program.plan`) by kernel values (with
    ``whole``, every elementwise op and reduction, for :mod:`.numba_whole`, which inlines them).
    A group of fewer than ``min_ops`` ops becomes a kernel only when it calls one of
    :data:`~.numba_scalar.VECTOR_FUNCS`.  ``flat=False``: kernels loop over the arrays' own rank."""
    return Fuser(p, 1 if whole else min_ops, whole, flat).run()


__all__ = ["fuse", "Kernel", "Fuser"]
