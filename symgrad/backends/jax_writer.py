"""``jax.numpy`` source for one compiled program: the JAX backend's writer.

It reads the same scheduled program as the NumPy backend (:class:`~symgrad.codegen.schedule.Program`:
lowered, shared, rewritten, dead values dropped) and writes one line per value with the same names
and ``# grad of:`` comments, but as a pure function of its arguments: no ``out=``, no buffers kept
between calls.  Params, buffers and optimizer state come in as tuples and their new values go out
in tuples (the caller donates the old ones); random nodes are drawn from a ``jax.random`` key that is
split once per draw and returned; a loop (:func:`symgrad.scan`) becomes ``jax.lax.scan`` over a body
function written inline.  :mod:`.jax_ops` says how each op is written.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..codegen.emit import Globals
from ..codegen.names import Names, comment_for, comment_text, float_literal, ident_base, literal_attr, stem_for
from ..codegen.schedule import Program
from ..errors import GraphError
from ..graph import Node, format_shape
from ..ops.base import Code, Target
from ..ops.scan import SCAN, Body
from ..ops.conv import _CONV_UNFOLDED, _GRAD_WEIGHT_UNFOLDED, _UNFOLD
from .jax_ops import jax_form, missing, numpy_emit_as_jax

_UNFOLDED = (_CONV_UNFOLDED, _GRAD_WEIGHT_UNFOLDED)  # what reads an im2col (the NumPy backend's conv rewrite)

_INFIX_OK = re.compile(r"^[\w.]+$")


def plan(p: Program) -> Program:
    """Schedule ``p`` for JAX: every param is computed on in the program's dtype (no float64 master
    of a float32 step: the device arrays have the step's dtype), no buffers are assigned."""
    p.param_dtypes = {id(v): np.dtype(p.np_dtype) for v in p.val.values() if v.role == "param"}
    p._stores()
    p._schedule()
    return p


class JaxWriter:
    """Writes the source of a planned program (:func:`plan`) as one Python function over ``jax.numpy``.

    ``step=True`` writes a training step: ``(params, state, key, *inputs, *scalars)`` in, ``(outputs,
    new params, new state, key)`` out; otherwise ``(params, key, *inputs)`` in, the outputs out.
    """

    def __init__(self, program: Program, step: bool = False, parent: "JaxWriter | None" = None):
        self.p = program
        self.step = step
        self.float32 = program.float32
        if parent is None:
            self.op_names = {v.op.name for v in program.schedule}
            self.names = Names(self.op_names | {program.fname, "jnp", "jax", "lax", "params", "state", "key"})
            self.g = Globals(lambda name: name in self.names.taken and name not in self.op_names)
            self.dim_ident: dict[str, str] = {}
            self.ident_of: dict[Node, str] = {}
            self.generic: set[str] = set()
        else:
            for attr in ("op_names", "names", "g", "dim_ident", "ident_of", "generic"):
                setattr(self, attr, getattr(parent, attr))
            for v in program.schedule:
                if v.op.name not in self.names.taken:
                    self.op_names.add(v.op.name)
                    self.names.reserve(v.op.name)
        self.param_nodes: list[Node] = []  # params and buffers, in the order of the params tuple
        self.randoms: list[Node] = []

    # ------------------------------------------------------------ names and references
    def _dim(self, d) -> str:
        return str(int(d)) if isinstance(d, int) else self.dim_ident[d]

    def _name(self, v, base: str) -> str:
        v.ident = self.names.new(base)
        if base == "t":
            self.generic.add(v.ident)
        for n in v.nodes:
            self.ident_of.setdefault(n, v.ident)
        return v.ident

    def ref(self, v) -> str:
        if v.role == "const":
            if v.ndim == 0:
                return float_literal(v.value)
            arr = np.asarray(v.value, dtype=self.p.np_dtype)
            arr.setflags(write=False)
            return self.g.bind(arr, "c")
        if v.role == "op" and v.op is _UNFOLD and v.ident is None:
            return self.ref(v.args[0])
        assert v.ident is not None, f"value used before definition: {v}"
        return v.ident

    def _fn(self, op, fn) -> str:
        """The global a JAX form is called by: the op's own name when that is free."""
        name = op.name
        if re.fullmatch(r"[a-z][a-z_]*[a-z]", name) and not (name in self.names.taken and name not in self.op_names) \
                and self.g.table.get(name, fn) is fn:
            self.g.table[name] = fn
            return name
        return self.g.bind(fn, "op_")

    # ------------------------------------------------------------ one value
    def expr(self, v) -> str:
        op = v.op
        args = []
        for a in v.args:
            text = self.ref(a)
            # as in the NumPy backend: Python scalars meet float32 arrays as float32 scalars outside ufuncs
            if self.float32 and ((a.pyscalar and not v.pyscalar) or (a.role == "const" and a.ndim == 0
                                                                     and op.ufunc is None)):
                text = f"_sc({text})"
            args.append(Code(text, a.shape, a.pyscalar))
        attrs = list(v.attrs)
        if op in _UNFOLDED:  # conv(x, W) read back from the im2col the NumPy backend shares
            cols = v.args[1]
            unfold = dict(cols.attrs)
            kernel = unfold.pop("kernel")
            x = self.ref(cols.args[0])
            if op is _CONV_UNFOLDED:
                from .jax_ops import conv
                return self._call(self._fn_named("conv", conv), [x, args[0]], sorted(unfold.items()))
            from .jax_ops import conv_grad_weight
            return self._call(self._fn_named("conv_grad_weight", conv_grad_weight), [args[0], x],
                              sorted({**unfold, "kernel": kernel}.items()))
        form = jax_form(op)
        if form is None:
            raise missing(op)
        if form == "ufunc":
            src = self._ufunc(v, args)
        elif form == "emit":
            src = numpy_emit_as_jax(op.emit(args, Target(v.ndim, None, self._dim, False), **dict(attrs)))
        else:
            src = self._call(self._fn(op, form), args, attrs)
        if self.float32 and not op.preserves_dtype:
            src = f"_cast({src})"
        return src

    def _fn_named(self, name: str, fn) -> str:
        if self.g.table.get(name, fn) is fn and name not in self.names.taken:
            self.g.table[name] = fn
            self.names.reserve(name)
            self.op_names.add(name)
            return name
        if self.g.table.get(name) is fn:
            return name
        return self.g.bind(fn, "op_")

    def _call(self, fname: str, args: list, attrs) -> str:
        kw = [f"{k}={repr(val) if literal_attr(val) else self.g.bind(val, 'attr')}" for k, val in attrs]
        return f"{fname}({', '.join(list(args) + kw)})"

    def _ufunc(self, v, args: list) -> str:
        op = v.op
        a = list(args) + list(op.ufunc_args)
        if op.infix and not op.ufunc_args:
            if len(a) == 1:
                return f"{op.infix}{a[0]}"
            return f"{a[0]} {op.infix} {a[1]}"
        return f"jnp.{op.ufunc}({', '.join(a)})"

    def statement(self, v) -> str:
        comment = comment_for(v)
        tail = f"  # {comment_text(comment)}" if comment else ""
        src = self.expr(v)
        self._name(v, stem_for(v, self.ident_of))
        return f"{v.ident} = {src}{tail}"

    # ------------------------------------------------------------ the parts
    def arguments(self) -> tuple[list[str], list[str]]:
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
            for k, d in enumerate(n.shape):
                if isinstance(d, str) and d not in self.dim_ident:
                    di = self.dim_ident[d] = self.names.new("d_" + ident_base(d))
                    lines.append(f"    {di} = {x}.shape[{k}]  # dim {comment_text(d)}")
        return params[:len(p.inputs)], params[len(p.inputs):], lines

    def leaves(self) -> list[str]:
        p, body = self.p, []
        for v in sorted(p.live.values(), key=lambda v: v.order):
            if v.role == "param":
                node = v.nodes[0]
                self._name(v, ident_base(node.name))
                body.append(f"    {v.ident} = params[{len(self.param_nodes)}]  # {node.kind} {comment_text(node.name)}")
                self.param_nodes.append(node)
            elif v.role == "state":
                node = v.nodes[0]
                self._name(v, ident_base(node.name))
                body.append(f"    {v.ident} = state[{v.index}]  # state {comment_text(node.name)}")
            elif v.role == "random":
                body += self._random(v)
        return body

    def _random(self, v) -> list[str]:
        from ..random import describe_distribution
        node = v.nodes[0]
        missing_dims = [d for d in node.shape if isinstance(d, str) and d not in self.dim_ident]
        if missing_dims:
            raise GraphError(f"compile: random node {node.name!r} of shape {format_shape(node.shape)} needs dim "
                             f"{missing_dims[0]!r}, which no input fixes (add an input with that dim, or use like=)")
        self.randoms.append(node)
        parts = [self._dim(d) for d in node.shape]
        shape = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        x = self._name(v, ident_base(node.name))
        k = self.names.new(f"key_{x}")
        note = f"  # {comment_text(describe_distribution(node))}"
        lines = [f"    key, {k} = jax.random.split(key)"]
        dist = node.attr("dist")
        if dist == "bernoulli":
            return lines + [f"    {x} = jax.random.bernoulli({k}, {float_literal(node.attr('p'))}, {shape})"
                            f".astype(_DT){note}"]
        if dist == "normal":
            src = f"jax.random.normal({k}, {shape}, _DT)"
            scale, shift = node.attr("std"), node.attr("mean")
        else:
            src = f"jax.random.uniform({k}, {shape}, _DT)"
            scale, shift = node.attr("high") - node.attr("low"), node.attr("low")
        if scale != 1.0:
            src = f"{src} * {float_literal(scale)}"
        if shift != 0.0:
            src = f"{src} + {float_literal(shift)}"
        return lines + [f"    {x} = {src}{note}"]

    def ops(self) -> list[str]:
        p, body = self.p, []
        owner = p.update_of() if self.step else {}
        announced: set = set()
        consumers: dict[int, list] = {}
        for v in p.schedule:
            for a in v.args:
                consumers.setdefault(id(a), []).append(v)
        for v in p.schedule:
            if self.step and id(v) not in p.phase0 and not announced and p.rule_comment:
                body += [f"    # {comment_text(line, 110)}" for line in p.rule_comment]
                announced.add(None)
            param = owner.get(id(v))
            if param is not None and param not in announced:
                announced.add(param)
                body.append(f"    # update of {comment_text(param.name)}")
            if v.op is SCAN:
                body += self._scan(v)
            elif v.args and v.args[0].role == "op" and v.args[0].op is SCAN:
                continue  # named by the loop
            elif v.op is _UNFOLD and all(u.op in _UNFOLDED for u in consumers.get(id(v), [])):
                continue  # read as the conv's own input
            else:
                body.append("    " + self.statement(v))
        return body

    # ------------------------------------------------------------ loops
    def _scan(self, v) -> list[str]:
        """``jax.lax.scan`` over a body function written inline (its closed values are closures)."""
        p, names = self.p, self.names
        body: Body = v.attr("body")
        K, J = len(body.carry_in), len(body.xs_in)
        args = [self.ref(a) for a in v.args]
        init, xs, closed = args[:K], args[K:K + J], args[K + J:]
        picks = [u for u in p.live.values() if u.role == "op" and u.args and u.args[0] is v and u.op is not SCAN]
        need = sorted({u.attr("index") - K for u in picks if u.attr("index") >= K})
        outputs = list(body.carry_out) + [body.ys[m] for m in need]
        inner = plan(Program("body", p.dtype, list(body.placeholders), [], outputs, [], [], params_writable=False))
        if any(u.role in ("random", "param", "state") for u in inner.live.values()):
            raise GraphError("compile (backend 'jax'): a loop body reads a random node or a param directly; "
                             "pass it in as a closed-over value")
        w = JaxWriter(inner, parent=self)
        fname = names.new("loop_body")
        carry_ids = [names.new(ident_base(ph.name)) for ph in body.carry_in]
        for ph, ident in zip(body.carry_in, carry_ids):
            if inner.val.get(ph) is not None:
                inner.val[ph].ident = ident
        x_ids = []
        for ph in body.xs_in:
            ident = names.new(ident_base(ph.name))
            x_ids.append(ident)
            if inner.val.get(ph) is not None:
                inner.val[ph].ident = ident
        for ph, outer in zip(body.closed_in, closed):
            if inner.val.get(ph) is not None:
                inner.val[ph].ident = outer
        label = ", ".join(c.name for c in body.carry_in) or "no carry"
        rev = bool(v.attr("reverse"))
        lines = [f"# loop ({body.role}): carries {comment_text(label)}; {'last step first' if rev else 'first step first'}",
                 f"def {fname}(carry, xs):"]
        tup = lambda items: "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"  # noqa: E731
        if K:
            lines.append(f"    {tup(carry_ids)} = carry")
        if J:
            lines.append(f"    {tup(x_ids)} = xs")
        lines += ["    " + ln[4:] for ln in w.ops()]
        new_carry = [w.ref(inner.val[o]) for o in body.carry_out]
        ys = [w.ref(inner.val[body.ys[m]]) for m in need]
        lines.append(f"    return {tup(new_carry)}, {tup(ys)}")
        final = [names.new(ident_base(ph.name) + "_last") for ph in body.carry_in]
        stacked = {m: names.new(ident_base(_stem(body, body.ys[m], m)) + "_all") for m in need}
        length = "" if J else f", length={int(v.attr('length'))}"
        lines.append(f"{tup(final)}, {tup([stacked[m] for m in need])} = jax.lax.scan({fname}, {tup(init)}, "
                     f"{tup(xs) if J else 'None'}{length}{', reverse=True' if rev else ''})")
        for u in picks:
            k = u.attr("index")
            u.ident = final[k] if k < K else stacked[k - K]
        return ["    " + ln for ln in lines]

    # ------------------------------------------------------------ the whole
    def source(self) -> str:
        p = self.p
        inputs, scalars, checks = self.arguments()
        body = self.leaves() + self.ops()
        outs = [self.ref(v) for v in p.out_vals]
        for k, v in enumerate(p.out_vals):
            if (v.role == "const" and v.ndim == 0) or v.pyscalar:
                outs[k] = f"_sc({outs[k]})"
        tup = lambda items: "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"  # noqa: E731
        if self.step:
            new_params, new_state = self._stores()
            ret = f"{tup(outs)}, {tup(new_params)}, {tup(new_state)}, key"
            args = ["params", "state", "key"] + inputs + scalars
        else:
            ret = f"{outs[0] if p.single else tup(outs)}, key"
            args = ["params", "key"] + inputs
        head = [
            "# Generated by symgrad.compile, backend 'jax': jax.numpy, one line per op, traced once by jax.jit.",
            f"# dtype {p.dtype}; jnp is jax.numpy; params{', state' if self.step else ''} and the random key "
            f"come in as arguments and",
            "# leave as results (no array is written in place); names starting with '_' are bound when loaded.",
            "",
            f"def {p.fname}({', '.join(args)}):",
        ]
        return "\n".join(head + checks + body + [f"    return {ret}", ""])

    def _stores(self) -> tuple[list[str], list[str]]:
        p = self.p
        new_of = {}
        for leaf, v in p.plan_stores:
            src = self.ref(v)
            if v.role == "const" or v.pyscalar or v.shape != leaf.shape:
                src = f"_full({src}, {tuple(int(d) for d in leaf.shape)})"
            new_of[id(leaf)] = src
        leaf_of = {id(v.nodes[0]) if v.nodes else None: v for v in p.live.values() if v.role == "param"}
        new_params = []
        for node in self.param_nodes:
            v = leaf_of[id(node)]
            new_params.append(new_of.get(id(v), v.ident))
        state = sorted((v for v in p.live.values() if v.role == "state"), key=lambda v: v.index)
        assert [v.index for v in state] == list(range(len(state))), "optimizer state not all live"
        return new_params, [new_of[id(v)] for v in state]

    def stored_params(self) -> list[bool]:
        """Per entry of the params tuple: whether the step writes a new value for it."""
        stored = {id(leaf.nodes[0]) for leaf, _ in self.p.plan_stores if leaf.role == "param"}
        return [id(n) in stored for n in self.param_nodes]


def _stem(body: Body, y: Node, m: int) -> str:
    if y.name:
        return y.name.split(".")[-1]
    named = next((f.name for f in y.grad_of if f.name), None)
    if named:
        return "dL_d" + named.split(".")[-1]
    if y in body.labels:
        name, shift = body.labels[y]
        return name.split(".")[-1] + ("_prev" if shift < 0 else "")
    return f"y{m + 1}"


def runtime_globals(np_dtype) -> dict[str, Any]:
    """What every generated JAX module reads besides its own bindings."""
    import jax
    import jax.numpy as jnp
    dt = np.dtype(np_dtype)
    return {"jax": jax, "jnp": jnp, "lax": jax.lax, "np": np, "_DT": dt, "_f64": float,
            "_cast": lambda x: jnp.asarray(x, dt), "_sc": lambda x: jnp.asarray(x, dt),
            "_full": lambda x, shape: jnp.broadcast_to(jnp.asarray(x, dt), shape)}
