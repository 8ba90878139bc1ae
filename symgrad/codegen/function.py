"""The source of one compiled function: arguments and their checks, params and state, one line
per scheduled value, the stores into params and state, and the return."""
from __future__ import annotations

import numpy as np

from ..errors import GraphError
from ..graph import Node, format_shape
from .buffers import Assignment, assign
from .emit import Expressions, Globals, is_augmented
from .ir import Value
from .loops import loop_lines
from .names import GENERIC, Names, comment_for, comment_text, float_literal, ident_base, stem_for
from .schedule import Program, dims_before


class FunctionWriter:
    """Writes the source of ``program`` (after :meth:`Program.plan`); ``globals`` are what it binds."""

    def __init__(self, program: Program, state_arrays=(), rng=None):
        self.p = program
        self.state_arrays = list(state_arrays)
        self.rng = rng
        self.op_names = {v.op.name for v in program.schedule}  # kept free for the ops' implementations
        self.names = Names(self.op_names | {program.fname})
        self.g = Globals(lambda name: name == program.fname or (name in self.names.taken
                                                                and name not in self.op_names))
        self.dim_ident: dict[str, str] = {}
        self.x = Expressions(program.np_dtype, program.float32, self.g, self._dim)
        self.bufs: Assignment = assign(program, self.g.bind)
        self.master_ident: dict[int, str] = {}
        self.ident_of: dict[Node, str] = {}  # forward node -> identifier of its value (for dL_d… names)
        self.generic: set[str] = set()  # identifiers of unnamed values
        self.stored_in = {id(v): leaf for leaf, v in program.plan_stores if v is not None}
        #: a backend's pass over each loop body's program before it is planned (the Numba backend fuses
        #: the body's elementwise ops there); None: the body is compiled as it is
        self.body_pass = None

    #: a training step's loop arrays come from a :class:`~symgrad.runtime.Workspace` kept between calls
    #: (False: ``np.empty`` at each call, for code that cannot call Python objects: a Numba core)
    loop_workspace = True

    def _body_expressions(self, program: Program) -> Expressions:
        """How a loop body's values are written (a backend's writer gives its own)."""
        return Expressions(program.np_dtype, program.float32, self.g, self._dim)

    def _store_row(self, slot: str, value: str, ndim: int) -> str:
        """The statement writing ``value`` (of ``ndim`` axes) into ``slot``, a row of a loop's array."""
        return f"{slot} = {value}"

    def _step_rows(self, array: str, work: str | None, tag: str) -> str:
        """Source of ``array`` (a loop's input, a transposed view) with each step's slice contiguous."""
        from .loops import step_rows
        rows_fn = self.g.bind(step_rows, "rows")
        return f"{rows_fn}({array}{f', {work}, {tag!r}' if work else ''})"

    def _dim(self, d) -> str:
        return str(int(d)) if isinstance(d, int) else self.dim_ident[d]

    def _name(self, v: Value, base: str) -> str:
        v.ident = self.names.new(base)
        if base == GENERIC:
            self.generic.add(v.ident)
        for n in v.nodes:
            self.ident_of.setdefault(n, v.ident)
        return v.ident

    # ------------------------------------------------------------ the parts
    def _arguments(self) -> tuple[list[str], list[str]]:
        p, params, lines = self.p, [], []
        for n in list(p.inputs) + list(p.scalars):
            v = p.val.get(n)
            ident = self.names.new(ident_base(n.name))
            params.append(ident)
            if v is not None:
                v.ident = ident
        for i, n in enumerate(p.inputs):
            x = params[i]
            lines.append(f"    # {comment_text(n.name)}: input {comment_text(format_shape(n.shape))}"
                         f"{', int' if n.dtype == 'int' else ''}")
            if n.dtype == "int":
                lines.append(f"    if {x}.__class__ is not _ndarray or {x}.dtype.kind not in 'iu': "
                             f"{x} = _feed({i}, {x})")
            else:
                lines.append(f"    if {x}.__class__ is not _ndarray or {x}.dtype is not _DT: {x} = _feed({i}, {x})")
            conds, binds, first = [f"{x}.ndim != {len(n.shape)}"], [], {}
            known = ", ".join(self.dim_ident[d] for d in dims_before(p.inputs, i))
            for k, d in enumerate(n.shape):
                if isinstance(d, int):
                    conds.append(f"{x}.shape[{k}] != {int(d)}")
                elif d in self.dim_ident:
                    conds.append(f"{x}.shape[{k}] != {self.dim_ident[d]}")
                elif d in first:
                    conds.append(f"{x}.shape[{k}] != {x}.shape[{first[d]}]")
                else:
                    first[d] = k
                    binds.append((d, f"{x}.shape[{k}]"))
            lines.append(f"    if {' or '.join(conds)}: _bad_shape({i}, {x}, ({known}{',' if known else ''}))")
            for d, src in binds:
                di = self.dim_ident[d] = self.names.new("d_" + ident_base(d))
                lines.append(f"    {di} = {src}  # dim {comment_text(d)}")
            if i in p.class_checks:
                k = int(p.class_checks[i])  # a plain int in the source, whatever the attr's type
                lines.append(f"    if {x}.size and ({x}.min() < 0 or {x}.max() >= {k}): _bad_class({i}, {x}, {k})")
            if i in p.range_checks:
                lo, hi, _ = p.range_checks[i]
                lines.append(f"    if {x}.size and ({x}.min() < {float_literal(lo)} or {x}.max() > {float_literal(hi)}): "
                             f"_bad_range({i}, {x})")
        return params, lines

    def _leaves(self) -> list[str]:
        p, body = self.p, []
        for v in sorted(p.live.values(), key=lambda v: v.order):
            if v.role == "param":
                body += self._param(v)
            elif v.role == "random":
                body += self._random(v)
            elif v.role == "state":
                node = v.nodes[0]
                self._name(v, ident_base(node.name))
                body.append(f"    {v.ident} = {self.g.bind(self.state_arrays[v.index], 'state')}"
                            f"  # state {comment_text(node.name)}")
            else:
                continue
            b = self.bufs.of.get(id(v))
            if b is not None:
                b.holder = v.ident
        return body

    def _random(self, v: Value) -> list[str]:
        """The draw of a random node from the function's Generator (the calls of :func:`symgrad.random.draw`)."""
        from ..random import describe_distribution
        node = v.nodes[0]
        missing = [d for d in node.shape if isinstance(d, str) and d not in self.dim_ident]
        if missing:
            raise GraphError(f"compile: random node {node.name!r} of shape {format_shape(node.shape)} needs dim "
                             f"{missing[0]!r}, which no input fixes (add an input with that dim, or use like=)")
        if self.rng is None:
            raise GraphError(f"compile: the graph has the random node {node.name!r} but no generator was given")
        rng = self.g.bind(self.rng, "rng")
        parts = [self._dim(d) for d in node.shape]
        shape = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        x = self._name(v, ident_base(node.name))
        note = f"  # {comment_text(describe_distribution(node))}"
        dist = node.attr("dist")
        if dist == "bernoulli":
            return [f"    {x} = ({rng}.random({shape}) < {float_literal(node.attr('p'))}).astype(_DT){note}"]
        if dist == "normal":
            lines = [f"    {x} = {rng}.standard_normal({shape}, dtype=_DT){note}"]
            scale, shift = node.attr("std"), node.attr("mean")
        else:
            lines = [f"    {x} = {rng}.random({shape}, dtype=_DT){note}"]
            scale, shift = node.attr("high") - node.attr("low"), node.attr("low")
        if scale != 1.0:
            lines.append(f"    {x} *= {float_literal(scale)}")
        if shift != 0.0:
            lines.append(f"    {x} += {float_literal(shift)}")
        return lines

    def _param(self, v: Value) -> list[str]:
        p, node = self.p, v.nodes[0]
        holder = self.g.bind(node, "param")
        base = ident_base(node.name)
        self._name(v, base)
        name = comment_text(node.name)
        kind = node.kind  # a param, or a buffer (read and stored the same way)
        if not p.params_writable:  # read only: a value of another dtype is cast
            return [f"    {v.ident} = {holder}.value  # {kind} {name}",
                    f"    if {v.ident}.dtype is not _DT: {v.ident} = {v.ident}.astype(_DT)"]
        if p.direct(v):  # computed on and updated in place
            return [f"    {v.ident} = {holder}.value  # {kind} {name}",
                    f"    if {v.ident}.dtype is not _DT: _stale({v.ident}, _DT)"]
        # held in another dtype: loaded into a working array, updated at the end
        stored = self.master_ident[id(v)] = self.names.new(base + "_value")
        sdt = self.g.bind(p.param_dtypes[id(v)], "dt")
        lines = [f"    {stored} = {holder}.value  # {kind} {name}, held as {p.param_dtypes[id(v)].name}",
                 f"    if {stored}.dtype is not {sdt}: _stale({stored}, {sdt})"]
        if v.ndim > 0:
            work = self.g.bind(np.empty(v.shape, dtype=p.np_dtype), "work")
            lines.append(f"    {v.ident} = _load({work}, {stored})")
        else:
            lines.append(f"    {v.ident} = {stored}.astype(_DT)")
        return lines

    def _ops(self) -> list[str]:
        p, body = self.p, []
        owner = p.update_of()
        announced: set = set()
        for v in p.schedule:
            if id(v) not in p.phase0 and not announced and p.rule_comment:
                body += [f"    # {comment_text(line, 110)}" for line in p.rule_comment]
                announced.add(None)
            param = owner.get(id(v))
            if param is not None and param not in announced:
                announced.add(param)
                body.append(f"    # update of {comment_text(param.name)}")
            if v.op.outputs is not None:  # a loop: its statements, and names for the outputs read
                body += loop_lines(self, v)
            elif not (v.args and v.args[0].role == "op" and v.args[0].op.outputs is not None):
                body.append("    " + self._statement(v))
        return body

    def _statement(self, v: Value) -> str:
        """``name = source  # comment``: the name of what the value holds, also when it is written
        over a buffer (``mlp_0_a = np.tanh(mlp_0_z, out=mlp_0_z)``); an unnamed value written over
        an unnamed one, and a new param or state written over the old, as an augmented assignment."""
        comment = comment_for(v)
        tail = f"  # {comment_text(comment)}" if comment else ""
        b = self.bufs.written.get(id(v))
        own = self.bufs.of.get(id(v))
        if b is None and own is not None and own.preallocated is not None:
            b, own.holder = own, own.preallocated
        leaf = self.stored_in.get(id(v))
        if leaf is not None and b is not None and b is self.bufs.of.get(id(leaf)):
            ident = leaf.ident  # the new content of a param or state array keeps the array's name
        else:
            ident = None
        stem = stem_for(v, self.ident_of)
        if b is None:
            src = self.x.expr(v)
        else:
            plain = ident is None and stem == GENERIC and b.holder in self.generic
            src = self.x.expr(v, out=b.holder, augment=plain or (ident is not None and b.holder == ident))
            if is_augmented(src):
                v.ident = b.holder
                return src + tail
        if ident is not None:
            v.ident = ident
        else:
            self._name(v, stem)
        if b is not None:
            b.holder = v.ident
        elif own is not None:
            own.holder = v.ident
        return f"{v.ident} = {src}{tail}"

    def _stores(self, outs: list[str]) -> tuple[list[str], list[str]]:
        p, body, tail = self.p, [], []
        # a new value computed in the leaf's own array needs no store; the working array of a param
        # held in another dtype is not its own array: the master is written from it
        aliased = {id(v) for leaf, v in p.plan_stores
                   if v is not None and self.bufs.of.get(id(v)) is not None
                   and self.bufs.of.get(id(v)) is self.bufs.of.get(id(leaf)) and id(leaf) not in self.master_ident}
        for k, v in enumerate(p.out_vals):
            if v.role in ("param", "state") and any(leaf is v for leaf, _ in p.plan_stores):
                ident = self.names.new("out")
                body.append(f"    {ident} = {outs[k]}.copy()")  # a param or state that is about to be overwritten
                outs[k] = ident
        for leaf, v in p.plan_stores:
            node = leaf.nodes[0]
            if v is None:
                _, u = p.master_updates[id(leaf)]
                master = self.master_ident[id(leaf)]
                tail.append(f"    np.subtract({master}, {self.x.ref(u)}, out={master})  # new {comment_text(node.name)}")
                continue
            if id(v) in aliased:
                continue
            if leaf.role == "param" and id(leaf) in self.master_ident:
                dest = self.master_ident[id(leaf)]
            elif leaf.role == "param" and leaf.ident is None:
                dest = f"{self.g.bind(node, 'param')}.value"
            elif leaf.ident is None:
                dest = self.g.bind(self.state_arrays[leaf.index], "state")
            else:
                dest = leaf.ident
            tail.append(f"    np.copyto({dest}, {self.x.ref(v)})  # new {comment_text(node.name)}")
        return body, tail

    # ------------------------------------------------------------ the whole
    def source(self) -> str:
        p = self.p
        params, checks = self._arguments()
        body = self._leaves() + self._ops()
        outs = [self.x.ref(v) for v in p.out_vals]
        for k, v in enumerate(p.out_vals):  # scalar constants and python scalars leave as NumPy scalars
            if (v.role == "const" and v.ndim == 0) or (v.pyscalar and p.float32):
                outs[k] = f"_sc({outs[k]})"
        copies, tail = self._stores(outs)
        body += copies + tail
        if p.return_float_first and outs:
            outs[0] = f"float({outs[0]})"
        if p.single:
            ret = outs[0]
        elif not outs:
            ret = "None"
        else:
            ret = "(" + ", ".join(outs) + ("," if len(outs) == 1 else "") + ")"
        head = [
            "# Generated by symgrad.compile: plain Python + NumPy, one line per op.",
            f"# dtype {p.dtype}; np is NumPy; names starting with '_' are bound when the module is loaded",
            "# (kernels from symgrad.runtime, params, constants).  Underflow to 0 is expected inside;",
            "# overflow, invalid and divide-by-zero follow the caller's np.errstate.",
            "",
            f"def {p.fname}({', '.join(params)}):",
        ]
        # a graph without ops (``x``, ``x + 0.0``, ``-(-x)``) has nothing to compute: no empty ``with``
        with_block = ["    with _errstate(under='ignore'):"] + ["    " + ln for ln in body] if body else []
        return "\n".join(head + checks + with_block + [f"    return {ret}", ""])
