"""Graph -> plain Python + NumPy source: the compiler.

:func:`compile` turns output nodes into one Python function written as
source text, one line per op.  The pipeline:

1. **lower** the graph to a small IR with structural common-subexpression
   elimination (same op, same attrs, same inputs, equal constants) over
   forward and backward nodes alike, folding constant subexpressions;
2. **rewrite** it with peepholes and fusions (σ′(z) from σ(z) when that is
   computed, ReLU′ as a mask, one-hot·log-softmax cross-entropy as a gather
   and its gradient as ``softmax - onehot``, broadcasts pushed past
   elementwise ops so that NumPy broadcasting does the work);
3. drop dead values, **schedule** (forward, backward, then parameter
   updates), compute liveness, and **reuse buffers**: an elementwise op
   writes into a temporary whose last use is now (``np.add(a, b, out=a)``)
   and optimizer updates land directly in the parameter and state arrays;
4. **emit** the source, write it to a real file (so tracebacks and
   ``inspect`` show it) and load it with its globals bound.

User-chosen names never reach the code: identifiers are generated, and
names appear only in ``#`` comments after removing anything that could end
the comment.  :func:`compile_step` builds forward, backward and optimizer
update (:mod:`symgrad.optim`) into one function.
"""
from __future__ import annotations

import builtins
import hashlib
import heapq
import keyword
import linecache
import os
import re
import tempfile
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import runtime
from .autodiff import GRAD_OF, grad
from .errors import FeedError, GraphError, ShapeError, StateError
from .evaluate import feed_array
from .graph import Graph, Node, ShapedAttrs, as_node_list, broadcast_shapes, format_shape
from .ops.base import REGISTRY, var

__all__ = ["compile", "compile_step", "CompiledFunction", "StepFunction"]

DTYPES = {"float64": np.float64, "float32": np.float32}
_INF = 1 << 60
PERSIST = True
#: ops whose result is always a new array (never a view of an input); others are treated as aliases
_FRESH = {"add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "abs", "sign", "sin", "cos", "tanh",
          "maximum", "relu", "matmul", "sum", "mean", "max", "sigmoid", "sigmoid_prime", "tanh_prime", "step",
          "leaky_relu", "leaky_relu_prime", "softplus", "softmax", "log_softmax", "one_hot", "equal", "greater",
          "greater_equal", "where", "bce", "bce_dp", "bce_logits",
          "mask_mul", "pick", "xent_grad", "cast"}
#: registered elementwise ops emitted as NumPy ufuncs (which take ``out=``), with the impl they must have
_UFUNCS = {"add": ("add", np.add, "+"), "sub": ("subtract", np.subtract, "-"), "mul": ("multiply", np.multiply, "*"),
           "div": ("divide", np.divide, "/"), "pow": ("power", np.power, "**"), "neg": ("negative", np.negative, None),
           "exp": ("exp", np.exp, None), "log": ("log", np.log, None), "sqrt": ("sqrt", np.sqrt, None),
           "abs": ("absolute", np.abs, None), "sign": ("sign", np.sign, None), "sin": ("sin", np.sin, None),
           "cos": ("cos", np.cos, None), "tanh": ("tanh", np.tanh, None),
           "maximum": ("maximum", np.maximum, None), "relu": ("maximum", runtime.relu, None)}
_COMMUTATIVE = {"add", "mul", "maximum", "equal"}
_AUGMENTED = {"add": "+=", "sub": "-=", "mul": "*=", "div": "/="}
_NO_FOLD = {"one_hot", "count"}
#: registered ops whose emission is a view of the input with its dtype
_VIEWS = {"transpose", "reshape", "expand_dims", "broadcast_to", "broadcast_like", "reshape_like"}


# ====================================================================== IR
class _Val(ShapedAttrs):
    """One value of the program: a leaf (input, param, state, const) or an op applied to values."""

    __slots__ = ("op", "opdef", "args", "attrs", "shape", "dtype", "role", "value", "nodes", "order", "index",
                 "ident", "pyscalar")

    def __init__(self, op: str, opdef, args: tuple, attrs: tuple, shape: tuple, dtype: str, role: str = "op",
                 value: Any = None, order: int = 0, index: int = -1):
        self.op, self.opdef, self.args, self.attrs = op, opdef, tuple(args), tuple(attrs)
        self.shape, self.dtype, self.role, self.value = tuple(shape), dtype, role, value
        self.nodes: list[Node] = []
        self.order, self.index = order, index
        self.ident: str | None = None
        self.pyscalar = False

    def is_const(self, value: float | None = None) -> bool:
        if self.role != "const":
            return False
        return value is None or bool(np.all(self.value == value))

    def __repr__(self) -> str:  # debugging aid
        return f"<{self.op} {format_shape(self.shape)} #{id(self) % 10000}>"


class _Shaped:
    def __init__(self, shape):
        self.shape = shape

    def describe(self):
        return format_shape(self.shape)


def _bshape(*shapes) -> tuple | None:
    """Broadcast shape of symbolic shapes, or None when they do not broadcast."""
    try:
        return broadcast_shapes("codegen", [_Shaped(s) for s in shapes])
    except ShapeError:
        return None


class _Table:
    """Hash-consing of values: one value per (op, attrs, inputs) and per constant."""

    def __init__(self, dtype: str):
        self.dtype = dtype
        self.keys: dict = {}
        self.vals: list[_Val] = []

    def _add(self, key, make: Callable[[], _Val], order: int, nodes=()) -> _Val:
        v = self.keys.get(key) if key is not None else None
        if v is None:
            v = make()
            if key is not None:
                self.keys[key] = v
            self.vals.append(v)
        v.order = min(v.order, order)
        for n in nodes:
            if n not in v.nodes:
                v.nodes.append(n)
        return v

    def leaf(self, node: Node, role: str, index: int = -1) -> _Val:
        def make():
            return _Val(role, None, (), (), node.shape, node.dtype, role=role, order=node.id, index=index,
                        value=node.value if role in ("param", "const") else None)
        if role == "const":
            return self.const(node.value, node.id, (node,))
        return self._add(("leaf", id(node)), make, node.id, (node,))

    def const(self, value: Any, order: int, nodes=()) -> _Val:
        arr = np.array(value, dtype=np.float64)
        arr.setflags(write=False)
        key = ("const", arr.shape, arr.tobytes())
        return self._add(key, lambda: _Val("const", None, (), (), arr.shape, "float", role="const", value=arr,
                                           order=order), order, nodes)

    def op(self, op: str, opdef, args: Sequence[_Val], attrs: tuple, shape: tuple, dtype: str = "float",
           order: int = 0, nodes=()) -> _Val:
        args = tuple(args)
        if opdef is not None and op not in _NO_FOLD and args and all(a.role == "const" for a in args):
            folded = _fold(opdef, args, attrs)
            if folded is not None and folded.shape == tuple(shape):
                return self.const(folded, order, nodes)
        ids = tuple(id(a) for a in args)
        if op in _COMMUTATIVE:
            ids = tuple(sorted(ids))
        try:
            key = (op, id(opdef), ids, attrs)
            hash(key)
        except TypeError:  # an unhashable attr: no sharing for this value
            key = None
        return self._add(key, lambda: _Val(op, opdef, args, attrs, shape, dtype, order=order), order, nodes)

    def find(self, op: str, args: Sequence[_Val], attrs: tuple = ()) -> _Val | None:
        opdef = REGISTRY.get(op)
        ids = tuple(id(a) for a in args)
        if op in _COMMUTATIVE:
            ids = tuple(sorted(ids))
        return self.keys.get((op, id(opdef), ids, tuple(attrs)))


def _fold(opdef, args, attrs) -> np.ndarray | None:
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(opdef.impl(*[a.value for a in args], **dict(attrs)), dtype=np.float64)
    except Exception:  # noqa: BLE001  not foldable: computed at run time instead
        return None
    return out


# ================================================================ lowering
def _lower(roots: list[Node], roles: Mapping[Node, tuple[str, int]], dtype: str) -> tuple[_Table, dict]:
    """Nodes -> IR with structural sharing; returns the table and node -> value."""
    graph = Graph(roots)
    table = _Table(dtype)
    vals: dict[Node, _Val] = {}
    for node in graph.order:
        if node.is_leaf:
            if node.kind == "var":
                if node not in roles:
                    raise GraphError(f"compile: the graph uses var {node.name!r} ({node.describe()}), "
                                     f"which is not listed in inputs")
                role, index = roles[node]
            elif node.kind == "param":
                role, index = roles.get(node, ("param", -1))
            else:
                role, index = "const", -1
            vals[node] = table.leaf(node, role, index)
            continue
        args = [vals[i] for i in node.inputs]
        vals[node] = table.op(node.op.name, node.op, args, node.attrs, node.shape, node.dtype, node.id, (node,))
    return table, vals


# ================================================================ rewriting
class _Rewriter:
    """Peephole rewrites and fusions, applied while copying the IR into a fresh table."""

    def __init__(self, old: _Table, float32: bool):
        self.old = old
        self.new = _Table(old.dtype)
        self.float32 = float32
        self.map: dict[int, _Val] = {}

    def run(self) -> dict[int, _Val]:
        for v in self.old.vals:
            if v.role != "op":
                nv = self.new.const(v.value, v.order, v.nodes) if v.role == "const" else self._copy_leaf(v)
            else:
                nv = self.rewrite(v, [self.map[id(a)] for a in v.args])
                for n in v.nodes:
                    if n not in nv.nodes:
                        nv.nodes.append(n)
                nv.order = min(nv.order, v.order)
            self.map[id(v)] = nv
        return self.map

    def _copy_leaf(self, v: _Val) -> _Val:
        def make():
            c = _Val(v.op, None, (), (), v.shape, v.dtype, role=v.role, value=v.value, order=v.order, index=v.index)
            return c
        return self.new._add(("leaf", id(v)), make, v.order, v.nodes)

    # ---------------------------------------------------------- helpers
    def mk(self, op: str, args, attrs=(), shape=None, order=0) -> _Val:
        opdef = REGISTRY.get(op) if op not in _INTERNAL else None
        return self.new.op(op, opdef, args, tuple(attrs), shape, "float", order)

    def const(self, x: float, order: int) -> _Val:
        return self.new.const(x, order)

    def bcast(self, x: _Val, shape: tuple, order: int) -> _Val:
        if x.shape == tuple(shape):
            return x
        if x.op == "bcast":
            x = x.args[0]
        return self.mk("bcast", [x], (("shape", tuple(shape)),), shape, order)

    def old_has(self, op: str, old_args, attrs=()) -> bool:
        return self.old.find(op, old_args, attrs) is not None

    # ---------------------------------------------------------- the rules
    def rewrite(self, v: _Val, args: list[_Val]) -> _Val:
        op, order = v.op, v.order
        # float32: int inputs (class indices) meet float ops as float32
        if self.float32 and op not in ("one_hot",):
            args = [self.mk("cast", [a], (), a.shape, order) if a.dtype == "int" else a for a in args]
        if op in ("broadcast_to", "broadcast_like"):
            return self.bcast(args[0], v.shape, order)
        if op == "reshape_like":
            if args[0].shape == v.shape:
                return args[0]
            return self.mk("reshape_to", [args[0]], (("shape", v.shape),), v.shape, order)
        if op == "expand_dims" and args[0].op == "bcast" and args[0].args[0].ndim == 0:
            return self.bcast(args[0].args[0], v.shape, order)
        if op == "count":
            return self._count(v, args)
        if v.opdef is not None and v.opdef.elementwise:
            return self._elementwise(v, args)
        if op == "sum":
            fused = self._xent_forward(v, args)
            if fused is not None:
                return fused
        return self.mk(op, args, v.attrs, v.shape, order) if op in _INTERNAL else \
            self.new.op(op, v.opdef, args, v.attrs, v.shape, v.dtype, order)

    def _count(self, v: _Val, args) -> _Val:
        ref, axis = args[0], v.attr("axis")
        axes = range(ref.ndim) if axis is None else axis
        dims = [ref.shape[a] for a in axes]
        if all(isinstance(d, int) for d in dims):
            return self.const(float(np.prod(dims, dtype=np.int64)) if dims else 1.0, v.order)
        return self.mk("count", [], (("dims", tuple(dims)),), (), v.order)

    def _elementwise(self, v: _Val, args: list[_Val]) -> _Val:
        order = v.order
        # broadcasts sink below elementwise ops: f(bcast(x), y) = bcast(f(x, y))
        if any(a.op == "bcast" for a in args):
            inner = [a.args[0] if a.op == "bcast" else a for a in args]
            shape = _bshape(*(a.shape for a in inner))
            if shape is not None:
                res = self._elementwise_core(v, inner, shape)
                return self.bcast(res, v.shape, order)
        return self._elementwise_core(v, args, v.shape)

    def _elementwise_core(self, v: _Val, args: list[_Val], shape: tuple) -> _Val:
        op, order, old_args = v.op, v.order, v.args
        if op == "neg" and args[0].op == "neg":
            return args[0].args[0]
        if op == "add":
            for i in (0, 1):
                other = args[1 - i]
                if args[i].is_const(0.0) and _bshape(other.shape, args[i].shape) == other.shape:
                    return other
        if op == "mul":
            for i in (0, 1):
                other = args[1 - i]
                if args[i].is_const(1.0) and _bshape(other.shape, args[i].shape) == other.shape:
                    return other
            for i in (0, 1):  # g * relu'(z) -> g * (relu(z) > 0)
                if args[i].op == "step" and args[i].shape == shape:
                    return self.mk("mask_mul", [args[1 - i], args[i].args[0]], (), shape, order)
        if op == "sub":
            fused = self._xent_backward(v, args, shape)
            if fused is not None:
                return fused
        if op == "step" and self.old_has("relu", old_args):
            # relu'(z) read off relu(z) > 0: z itself may then be overwritten by relu in place
            return self.mk("step", [self.mk("relu", args, (), shape, order)], (), shape, order)
        if op == "sigmoid_prime" and self.old_has("sigmoid", old_args):
            s = self.mk("sigmoid", args, (), shape, order)
            return self.mk("mul", [s, self.mk("sub", [self.const(1.0, order), s], (), shape, order)], (), shape, order)
        if op == "tanh_prime" and self.old_has("tanh", old_args):
            t = self.mk("tanh", args, (), shape, order)
            return self.mk("sub", [self.const(1.0, order), self.mk("mul", [t, t], (), shape, order)], (), shape, order)
        return self.new.op(op, v.opdef, args, v.attrs, shape, v.dtype, order)

    def _xent_forward(self, v: _Val, args) -> _Val | None:
        """Σ_last one_hot(y) * x  ->  x[..., y] (a gather; the one-hot rows are never built)."""
        x = args[0]
        if v.attr("keepdims") or v.attr("axis") != (x.ndim - 1,) or x.op != "mul" or x.ndim < 1:
            return None
        a, b = x.args
        if b.op == "one_hot":
            a, b = b, a
        if a.op != "one_hot" or b.shape != x.shape or a.shape != x.shape:
            return None
        return self.mk("pick", [b, a.args[0]], (), v.shape, v.order)

    def _xent_backward(self, v: _Val, args, shape) -> _Val | None:
        """g − exp(ls)·Σ g  with g = c·one_hot(y), ls = log_softmax(z)  ->  c·(one_hot(y) − softmax(z))."""
        gv, prod = args
        if prod.op != "mul" or gv.op != "mul" or shape != gv.shape:
            return None
        e, s = prod.args
        if s.op == "exp":
            e, s = s, e
        if e.op != "exp" or s.op != "sum" or s.args[0] is not gv or not s.attr("keepdims"):
            return None
        ls = e.args[0]
        last = ls.ndim - 1
        if ls.op != "log_softmax" or ls.attr("axis") != last or s.attr("axis") != (last,) or ls.shape != shape:
            return None
        c, oh = gv.args
        if c.op == "one_hot":
            c, oh = oh, c
        if oh.op != "one_hot" or c.ndim != 0 or oh.shape != shape:
            return None
        return self.mk("xent_grad", [ls, oh.args[0], c], (), shape, v.order)


# ============================================================ internal ops
def _k_pick(x, y):
    """``x[..., y]`` along the last axis: Σ one_hot(y)·x without building the one-hot rows."""
    if x.ndim == 2:
        return x[np.arange(x.shape[0]), y]
    return np.take_along_axis(x, np.asarray(y)[..., None], axis=-1)[..., 0]


def _k_xent_grad(log_probs, y, scale):
    """``scale · (one_hot(y) − exp(log_probs))``: the softmax cross-entropy gradient wrt the logits."""
    p = np.exp(log_probs)
    if p.ndim == 2:
        p[np.arange(p.shape[0]), y] -= 1.0
    else:
        idx = np.asarray(y)[..., None]
        np.put_along_axis(p, idx, np.take_along_axis(p, idx, axis=-1) - 1.0, axis=-1)
    p *= -scale
    return p


_INTERNAL = {"bcast", "reshape_to", "count", "mask_mul", "pick", "xent_grad", "cast"}
_KERNELS = {"pick": ("_pick", _k_pick), "xent_grad": ("_xent_grad", _k_xent_grad)}


# ============================================================ names, comments
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9_]+")


def _ident_base(name: str | None) -> str:
    """An ASCII identifier stem from a user name (or 't'): letters, digits, '_' only, starting with a letter."""
    if not name:
        return "t"
    base = _SAFE_CHARS.sub("_", name).strip("_")[:24]
    if not base or not base[0].isalpha():
        base = "v" + ("_" + base if base else "")
    return base


def comment_text(text: str, limit: int = 80) -> str:
    """Text made safe for a ``#`` comment: no line breaks or other non-printable characters."""
    out = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return out if len(out) <= limit else out[:limit - 1] + "…"


def _short(node: Node, depth: int = 2) -> str:
    if node.name:
        return node.name
    if node.kind == "const":
        v = node.value
        return f"{v.item():g}" if v.ndim == 0 else f"const{format_shape(v.shape)}"
    if depth <= 0:
        return "…"
    return f"{node.op.name}({', '.join(_short(i, depth - 1) for i in node.inputs)})"


def _comment_for(v: _Val) -> str:
    fwd: list[Node] = []
    for n in v.nodes:
        for f in GRAD_OF.get(n, ()):
            if f not in fwd:
                fwd.append(f)
    if fwd:
        fwd.sort(key=lambda f: (f.name is None, f.id))  # named nodes (params, z1...) first
        return "grad of: " + ", ".join(_short(f) for f in fwd)
    names = [n.name for n in v.nodes if n.name]
    return ", ".join(dict.fromkeys(names)) if names else ""


def _literal_attr(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return bool(np.isfinite(value))
    if isinstance(value, tuple):
        return all(_literal_attr(x) for x in value)
    return False


def _float_literal(x: float) -> str:
    x = float(x)
    if np.isnan(x):
        return "np.nan"
    if np.isinf(x):
        return "np.inf" if x > 0 else "(-np.inf)"
    s = repr(x)
    return f"({s})" if s.startswith("-") else s


# ================================================================ the program
class _Program:
    """Scheduling, liveness, buffer assignment and source emission for one function."""

    def __init__(self, fname: str, dtype: str, inputs: list[Node], scalars: list[Node],
                 outputs: list[Node], stores: list[tuple[Node, Node]], bound: list[Node],
                 params_writable: bool, barrier: Sequence[Node] = (), reuse: bool = True,
                 return_float_first: bool = False, single: bool = False):
        self.fname, self.dtype = fname, dtype
        self.float32 = dtype == "float32"
        self.np_dtype = DTYPES[dtype]
        self.inputs, self.scalars, self.outputs = inputs, scalars, outputs
        self.stores, self.bound = stores, bound
        self.params_writable = params_writable
        self.reuse = reuse
        self.return_float_first = return_float_first
        self.single = single
        self.globals: dict[str, Any] = {}
        self._global_ids: dict[int, str] = {}
        self._names: set[str] = set()
        self._counter = 0

        roles: dict[Node, tuple[str, int]] = {}
        for i, n in enumerate(inputs):
            roles[n] = ("input", i)
        for i, n in enumerate(scalars):
            roles[n] = ("scalar", i)
        for i, n in enumerate(bound):
            roles[n] = ("state", i)
        roots = list(outputs) + [v for _, v in stores] + list(barrier)
        for leaf, _ in stores:
            if leaf not in roots:
                roots.append(leaf)
        table, node_vals = _lower(roots, roles, dtype)
        remap = _Rewriter(table, self.float32).run()
        self.val = {n: remap[id(v)] for n, v in node_vals.items()}
        self.out_vals = [self.val[n] for n in outputs]
        self.store_vals = [(self.val[leaf], self.val[v]) for leaf, v in stores]
        self.barrier_vals = [self.val[n] for n in barrier]
        self.input_vals = [self.val.get(n) for n in inputs]
        self.one_hot_checks = self._class_checks(node_vals)

    # ------------------------------------------------------ analysis
    def _class_checks(self, node_vals) -> dict[int, int]:
        """input index -> smallest num_classes of a one_hot it feeds (checked once at entry)."""
        checks: dict[int, int] = {}
        for n, v in node_vals.items():
            if n.kind == "op" and n.op.name == "one_hot" and n.inputs[0].kind == "var":
                src = node_vals[n.inputs[0]]
                if src.role == "input":
                    k = n.attr("num_classes")
                    checks[src.index] = min(k, checks.get(src.index, k))
        return checks

    def _direct(self, v: _Val) -> bool:
        """Whether param ``v`` is computed on in its own array (its value has the compute dtype)."""
        return self.param_dtypes[id(v)] == self.np_dtype

    def _plan(self) -> None:
        # the dtype each param's value has now; the generated code checks it at every call
        self.param_dtypes: dict[int, np.dtype] = {}
        for v in self.val.values():
            if v.role == "param":
                node = v.nodes[0]
                held = np.asarray(node.value).dtype
                for dt in (np.dtype(np.float64), np.dtype(np.float32)):
                    if held == dt:
                        held = dt
                        break
                else:
                    if self.params_writable:
                        raise StateError(f"{self.fname}: param {node.name!r} holds a value of dtype {held}; "
                                         f"a trained param must be float64 or float32")
                self.param_dtypes[id(v)] = held
        # a param stored in another dtype than the compute dtype (float64 master of a float32 step) is
        # loaded into a working array; θ' = θ − u lands in it as np.subtract(master, u, out=master)
        self.master_updates: dict[int, tuple[_Val, _Val]] = {}
        stores = []
        for leaf, v in self.store_vals:
            if leaf.role == "param" and not self._direct(leaf) and v.op == "sub" and v.args[0] is leaf \
                    and v not in self.out_vals and v.args[1].shape == leaf.shape:
                self.master_updates[id(leaf)] = (leaf, v.args[1])
                stores.append((leaf, None))
            else:
                stores.append((leaf, v))
        self.plan_stores = stores
        roots = list(self.out_vals) + [v for _, v in stores if v is not None] + \
            [u for _, u in self.master_updates.values()]
        # reachable values (dead ones are dropped)
        live: dict[int, _Val] = {}
        stack = list(roots)
        while stack:
            v = stack.pop()
            if id(v) in live:
                continue
            live[id(v)] = v
            stack.extend(v.args)
        # phase 0: what outputs and gradients need; phase 1: the updates
        phase0: set[int] = set()
        stack = list(self.out_vals) + list(self.barrier_vals)
        while stack:
            v = stack.pop()
            if id(v) in phase0:
                continue
            phase0.add(id(v))
            stack.extend(v.args)
        ops = [v for v in live.values() if v.role == "op"]
        users: dict[int, list[_Val]] = {id(v): [] for v in live.values()}
        indeg: dict[int, int] = {}
        for v in ops:
            deps = {id(a) for a in v.args if a.role == "op"}
            indeg[id(v)] = len(deps)
            for d in deps:
                users[d].append(v)
        heap = [((0 if id(v) in phase0 else 1), v.order, i, v) for i, v in enumerate(ops) if indeg[id(v)] == 0]
        heapq.heapify(heap)
        seq = len(ops)
        schedule: list[_Val] = []
        while heap:
            *_, v = heapq.heappop(heap)
            schedule.append(v)
            for u in users[id(v)]:
                indeg[id(u)] -= 1
                if indeg[id(u)] == 0:
                    seq += 1
                    heapq.heappush(heap, ((0 if id(u) in phase0 else 1), u.order, seq, u))
        assert len(schedule) == len(ops), "cycle in the IR"
        self.schedule = schedule
        self.live = live
        # python scalars: () values computed from scalars/consts only (learning rate, step count, counts)
        for v in live.values():
            if v.role == "scalar":
                v.pyscalar = True
        for v in schedule:
            v.pyscalar = v.ndim == 0 and (v.op == "count" or (
                v.opdef is not None and v.opdef.elementwise and
                all(a.pyscalar or (a.role == "const" and a.ndim == 0) for a in v.args) and
                any(a.pyscalar for a in v.args)))

    def _liveness(self) -> None:
        n = len(self.schedule)
        self.pos = {id(v): i for i, v in enumerate(self.schedule)}
        last: dict[int, int] = {}
        consumers: dict[int, set] = {}
        for i, v in enumerate(self.schedule):
            for a in v.args:
                last[id(a)] = max(last.get(id(a), -1), i)
                consumers.setdefault(id(a), set()).add(id(v))
        for leaf, v in self.plan_stores:
            if v is not None:
                last[id(v)] = max(last.get(id(v), -1), n)
        for _, u in self.master_updates.values():
            last[id(u)] = max(last.get(id(u), -1), n)
        for v in self.out_vals:
            last[id(v)] = _INF
        # a view keeps its base alive
        for v in reversed(self.schedule):
            if not self._fresh(v):
                for a in v.args:
                    last[id(a)] = max(last.get(id(a), -1), last.get(id(v), -1))
        self.last = last
        self.consumers = consumers

    def _fresh(self, v: _Val) -> bool:
        if v.op not in _FRESH:
            return False
        if v.op in _UFUNCS:
            return v.opdef is not None and v.opdef.impl is _UFUNCS[v.op][1]
        return True

    def _ownable(self, v: _Val) -> bool:
        return v.ndim > 0 and v.dtype == "float" and self._fresh(v) and not v.pyscalar

    def _inplace_capable(self, v: _Val) -> bool:
        return (v.op in _UFUNCS and self._fresh(v)) or v.op == "mask_mul"

    # ------------------------------------------------------ buffers
    def _buffers(self) -> None:
        """Assign every ownable value a buffer: its own, a dead temporary's, or a param/state array."""
        self.buf: dict[int, list] = {}   # value id -> buffer [name, shape, busy_until, kind]
        self.inplace: dict[int, tuple] = {}  # value id -> ("out", buffer)
        writable: dict[int, list] = {}
        for leaf, v in self.plan_stores:
            if v is None or leaf.ndim == 0:
                continue
            if leaf.role == "state" or (leaf.role == "param" and self.params_writable and self._direct(leaf)):
                b = [None, leaf.shape, self.last.get(id(leaf), -1), "leaf"]
                writable[id(leaf)] = b
                self.buf[id(leaf)] = b
        hint: dict[int, list] = {}
        if self.reuse:
            for leaf, v in self.plan_stores:
                if v is not None and id(leaf) in writable and self.last.get(id(v)) != _INF and v.role == "op" \
                        and v.shape == leaf.shape:
                    hint[id(v)] = writable[id(leaf)]
            for v in reversed(self.schedule):
                b = hint.get(id(v))
                if b is None or not self._inplace_capable(v):
                    continue
                for a in v.args:
                    if a.role == "op" and id(a) not in hint and self._ownable(a) and a.shape == v.shape \
                            and self.consumers.get(id(a)) == {id(v)} and self.last.get(id(a)) != _INF:
                        hint[id(a)] = b
        temps: list[list] = []
        self.persistent: dict[int, str] = {}
        if self.params_writable:
            # params held in another dtype are loaded into persistent working arrays, ours to reuse
            for v in self.live.values():
                if v.role == "param" and v.ndim > 0 and not self._direct(v):
                    b = [None, v.shape, self.last.get(id(v), -1), "temp"]
                    self.buf[id(v)] = b
                    temps.append(b)
        for i, v in enumerate(self.schedule):
            if not self._ownable(v):
                continue
            chosen = None
            if self.reuse:
                b = hint.get(id(v))
                elementwise = self._inplace_capable(v)
                if b is not None and (b[2] < i or (elementwise and b[2] <= i)):
                    chosen = b
                elif elementwise:
                    for a in v.args:
                        ab = self.buf.get(id(a))
                        if ab is not None and ab[3] == "temp" and ab[2] <= i and ab[1] == v.shape \
                                and self.last.get(id(a), -1) <= i:
                            chosen = ab
                            break
                if chosen is None and (elementwise or v.op == "matmul"):
                    for tb in temps:
                        if tb[2] < i and tb[1] == v.shape:
                            chosen = tb
                            break
            if chosen is not None:
                chosen[2] = self.last.get(id(v), i)
                self.buf[id(v)] = chosen
                self.inplace[id(v)] = chosen
            elif PERSIST and self.params_writable and self.reuse and all(isinstance(d, int) for d in v.shape) \
                    and self.last.get(id(v)) != _INF and (self._inplace_capable(v) or v.op == "matmul"):
                # a training step keeps its fixed-shape temporaries between calls (never returned)
                b = [None, v.shape, self.last.get(id(v), i), "temp"]
                self.buf[id(v)] = b
                temps.append(b)
                self.persistent[id(v)] = self.bind(np.empty(v.shape, dtype=self.np_dtype), "ws")
            else:
                b = [None, v.shape, self.last.get(id(v), i), "temp"]
                self.buf[id(v)] = b
                temps.append(b)

    # ------------------------------------------------------ naming
    def new_ident(self, base: str) -> str:
        self._counter += 1
        name = f"{base}_{self._counter}" if base != "t" else f"t{self._counter}"
        assert name.isidentifier() and not keyword.iskeyword(name) and name not in self._names
        self._names.add(name)
        return name

    def bind(self, obj: Any, stem: str) -> str:
        """Bind ``obj`` as a global of the generated module under a generated name."""
        key = id(obj)
        if key in self._global_ids:
            return self._global_ids[key]
        name = f"_{stem}{len(self.globals)}"
        self.globals[name] = obj
        self._global_ids[key] = name
        return name

    def op_global(self, opdef) -> str:
        """The name the op's NumPy implementation is called by: its own name when that is safe."""
        name = opdef.name
        safe = re.fullmatch(r"[a-z][a-z_]*[a-z]", name) and not keyword.iskeyword(name) \
            and not hasattr(builtins, name) and name not in ("np",)
        if safe and self.globals.get(name, opdef.impl) is opdef.impl:
            self.globals[name] = opdef.impl
            return name
        return self.bind(opdef.impl, "op_")

    # ------------------------------------------------------ emission
    def ref(self, v: _Val) -> str:
        if v.role == "const":
            if v.ndim == 0:
                return _float_literal(v.value)
            arr = np.asarray(v.value, dtype=self.np_dtype)
            arr.setflags(write=False)
            name = self.bind(arr, "c")
            return name
        assert v.ident is not None, f"value used before definition: {v}"
        return v.ident

    def dims_src(self, shape) -> str:
        parts = [str(d) if isinstance(d, int) else self.dim_ident[d] for d in shape]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    def expr(self, v: _Val, out: str | None = None) -> str:
        """Source for value ``v`` (``out``: a buffer to write into, only for in-place capable ops)."""
        a = [self.ref(x) for x in v.args]
        op = v.op
        if self.float32:  # python scalars (computed in float64) meet float32 arrays as float32 scalars
            ufunc = op in _UFUNCS  # (python floats are weak there; `0.5 * (x > 0)` would be float64)
            for k, x in enumerate(v.args):
                if (x.pyscalar and not v.pyscalar) or (x.role == "const" and x.ndim == 0 and not ufunc):
                    a[k] = f"_sc({a[k]})"
        if op in _UFUNCS and self._fresh(v):
            fn, _, infix = _UFUNCS[op]
            if op == "relu":
                a = [a[0], "0.0"]
            if out is not None:
                if op in _AUGMENTED and a[0] == out:
                    return f"{out} {_AUGMENTED[op]} {a[1]}"
                if op in ("add", "mul") and a[1] == out:
                    return f"{out} {_AUGMENTED[op]} {a[0]}"
                return f"np.{fn}({', '.join(a)}, out={out})"
            if infix:
                if op == "pow" and v.args[0].pyscalar and not (v.args[0].role == "const"):
                    return f"np.power({a[0]}, {a[1]})"
                return f"{a[0]} {infix} {a[1]}"
            if op == "neg":
                return f"-{a[0]}"
            return f"np.{fn}({', '.join(a)})"
        if op == "mask_mul":
            if out is not None:
                if a[0] == out:
                    return f"{out} *= {a[1]} > 0"
                return f"np.multiply({a[0]}, {a[1]} > 0, out={out})"
            return f"{a[0]} * ({a[1]} > 0)"
        if op == "matmul" and out is not None:
            return f"np.matmul({a[0]}, {a[1]}, out={out})"
        if op == "bcast":
            return f"np.broadcast_to({a[0]}, {self.dims_src(v.attr('shape'))})"
        if op == "reshape_to":
            return f"np.reshape({a[0]}, {self.dims_src(v.attr('shape'))})"
        if op == "count":
            dims = v.attr("dims")
            return f"_f64({' * '.join(str(d) if isinstance(d, int) else self.dim_ident[d] for d in dims)})"
        if op == "cast":
            return f"{a[0]}.astype(_DT)"
        if op in _KERNELS:
            name, fn = _KERNELS[op]
            self.globals[name] = fn
            return f"{name}({', '.join(a)})"
        if op in ("sum", "mean", "max") and v.opdef is not None and v.opdef.attr_names == ("axis", "keepdims"):
            return self._reduce(v, a[0])
        if op == "expand_dims" and v.args[0].ndim > 0 and not v.args[0].pyscalar:
            axes = set(v.attr("axis"))
            idx = ", ".join("None" if k in axes else ":" for k in range(v.ndim))
            return f"{a[0]}[{idx}]"
        if op == "matmul" and v.opdef is not None and v.opdef.impl is np.matmul:
            return f"{a[0]} @ {a[1]}"
        opdef = v.opdef
        if opdef is not None and opdef.emit is not None:
            try:
                src = opdef.emit(a, **dict(v.attrs))
            except TypeError:
                src = None
            if isinstance(src, str):
                return f"_cast({src})" if self.float32 and opdef.name not in _FRESH | _VIEWS else src
        return self._call_impl(v, a)

    def _reduce(self, v: _Val, x: str) -> str:
        arg = v.args[0]
        axis, keepdims = v.attr("axis"), v.attr("keepdims")
        kw = []
        if axis is not None:
            kw.append(f"axis={axis[0] if len(axis) == 1 else axis}")
        if keepdims:
            kw.append("keepdims=True")
        method = "sum" if v.op in ("sum", "mean") else "max"
        call = f"{x}.{method}({', '.join(kw)})" if arg.ndim > 0 and not arg.pyscalar \
            else f"np.{method}({', '.join([x] + kw)})"
        if v.op != "mean":
            return call
        axes = range(arg.ndim) if axis is None else axis
        dims = [arg.shape[k] for k in axes]
        static = [d for d in dims if isinstance(d, int)]
        count = int(np.prod(static, dtype=np.int64)) if static else 1
        parts = ([str(count)] if count != 1 or len(static) == len(dims) else []) + \
            [self.dim_ident[d] for d in dims if not isinstance(d, int)]
        return f"{call} / {' * '.join(parts) if len(parts) == 1 else '(' + ' * '.join(parts) + ')'}"

    def _call_impl(self, v: _Val, a: list[str]) -> str:
        opdef = v.opdef
        if opdef is None:
            raise GraphError(f"compile: no emission for internal op {v.op!r}")
        kw = []
        for k, val in v.attrs:
            lit = repr(val) if _literal_attr(val) else self.bind(val, "attr")
            kw.append(f"{k}={lit}")
        call = f"{self.op_global(opdef)}({', '.join(a + kw)})"
        return f"_cast({call})" if self.float32 else call

    # ------------------------------------------------------ the source
    def build(self) -> str:
        self._plan()
        self._liveness()
        self._buffers()
        g = self.globals
        g["np"] = np
        g["_ndarray"] = np.ndarray
        g["_DT"] = np.dtype(self.np_dtype)
        g["_f64"] = np.float64
        g["_errstate"] = np.errstate
        g["_cast"] = lambda x, _dt=self.np_dtype: np.asarray(x, dtype=_dt)
        g["_sc"] = self.np_dtype
        g["_load"] = _load_into
        self.master_ident: dict[int, str] = {}
        lines: list[str] = []
        body: list[str] = []

        # arguments
        params = []
        for i, n in enumerate(self.inputs):
            v = self.input_vals[i]
            ident = self.new_ident(_ident_base(n.name))
            params.append(ident)
            if v is not None:
                v.ident = ident
        for n in self.scalars:
            v = self.val.get(n)
            ident = self.new_ident(_ident_base(n.name))
            params.append(ident)
            if v is not None:
                v.ident = ident

        # input conversion and checks
        self.dim_ident: dict[str, str] = {}
        for i, n in enumerate(self.inputs):
            x = params[i]
            lines.append(f"    # {comment_text(n.name)}: input {comment_text(format_shape(n.shape))}"
                         f"{', int' if n.dtype == 'int' else ''}")
            if n.dtype == "int":
                lines.append(f"    if {x}.__class__ is not _ndarray or {x}.dtype.kind not in 'iu': "
                             f"{x} = _feed({i}, {x})")
            else:
                lines.append(f"    if {x}.__class__ is not _ndarray or {x}.dtype is not _DT: {x} = _feed({i}, {x})")
            conds = [f"{x}.ndim != {len(n.shape)}"]
            binds = []
            first: dict[str, int] = {}
            known = ", ".join(self.dim_ident[d] for d in self._dim_order(i))
            for k, d in enumerate(n.shape):
                if isinstance(d, int):
                    conds.append(f"{x}.shape[{k}] != {d}")
                elif d in self.dim_ident:
                    conds.append(f"{x}.shape[{k}] != {self.dim_ident[d]}")
                elif d in first:
                    conds.append(f"{x}.shape[{k}] != {x}.shape[{first[d]}]")
                else:
                    first[d] = k
                    binds.append((d, f"{x}.shape[{k}]"))
            lines.append(f"    if {' or '.join(conds)}: _bad_shape({i}, {x}, ({known}{',' if known else ''}))")
            for d, src in binds:
                di = self.dim_ident[d] = self.new_ident("d_" + _ident_base(d))
                lines.append(f"    {di} = {src}  # dim {comment_text(d)}")
            if i in self.one_hot_checks:
                k = self.one_hot_checks[i]
                lines.append(f"    if {x}.size and ({x}.min() < 0 or {x}.max() >= {k}): _bad_class({i}, {x}, {k})")

        # params and optimizer state
        for v in sorted(self.live.values(), key=lambda v: v.order):
            if v.role == "param":
                node = v.nodes[0]
                holder = self.bind(node, "param")
                base = _ident_base(node.name)
                v.ident = self.new_ident(base)
                name = comment_text(node.name)
                if not self.params_writable:  # read only: a value of another dtype is cast
                    body.append(f"    {v.ident} = {holder}.value  # param {name}")
                    body.append(f"    if {v.ident}.dtype is not _DT: {v.ident} = {v.ident}.astype(_DT)")
                elif self._direct(v):  # computed on and updated in place
                    body.append(f"    {v.ident} = {holder}.value  # param {name}")
                    body.append(f"    if {v.ident}.dtype is not _DT: _stale({v.ident}, _DT)")
                else:  # held in another dtype: loaded into a working array, updated at the end
                    stored = self.master_ident[id(v)] = self.new_ident(base + "_value")
                    sdt = self.bind(self.param_dtypes[id(v)], "dt")
                    body.append(f"    {stored} = {holder}.value  # param {name}, "
                                f"held as {self.param_dtypes[id(v)].name}")
                    body.append(f"    if {stored}.dtype is not {sdt}: _stale({stored}, {sdt})")
                    if v.ndim > 0:
                        work = self.bind(np.empty(v.shape, dtype=self.np_dtype), "work")
                        body.append(f"    {v.ident} = _load({work}, {stored})")
                    else:
                        body.append(f"    {v.ident} = {stored}.astype(_DT)")
                b = self.buf.get(id(v))
                if b is not None:
                    b[0] = v.ident
            elif v.role == "state":
                node = v.nodes[0]
                v.ident = self.new_ident(_ident_base(node.name))
                body.append(f"    {v.ident} = {self.bind(self.state_arrays[v.index], 'state')}"
                            f"  # state {comment_text(node.name)}")
                b = self.buf.get(id(v))
                if b is not None:
                    b[0] = v.ident

        # the ops
        for v in self.schedule:
            b = self.inplace.get(id(v))
            comment = _comment_for(v)
            if id(v) in self.persistent:
                src = self.expr(v, out=self.persistent[id(v)])
                v.ident = self.new_ident(_ident_base(next((n.name for n in v.nodes if n.name), None)))
                stmt = f"{v.ident} = {src}"
                self.buf[id(v)][0] = v.ident
            elif b is not None:
                src = self.expr(v, out=b[0])
                v.ident = b[0]
                stmt = src if (" += " in src or " -= " in src or " *= " in src or " /= " in src) \
                    else f"{v.ident} = {src}"
            else:
                base = _ident_base(next((n.name for n in v.nodes if n.name), None))
                src = self.expr(v)
                v.ident = self.new_ident(base)
                stmt = f"{v.ident} = {src}"
                bb = self.buf.get(id(v))
                if bb is not None:
                    bb[0] = v.ident
            body.append(f"    {stmt}" + (f"  # {comment_text(comment)}" if comment else ""))

        # stores into params and state, then the outputs
        outs = [self.ref(v) for v in self.out_vals]
        for k, v in enumerate(self.out_vals):  # scalar constants and python scalars leave as NumPy scalars
            if (v.role == "const" and v.ndim == 0) or (v.pyscalar and self.float32):
                outs[k] = f"_sc({outs[k]})"
        tail: list[str] = []
        aliased = set()
        for leaf, v in self.plan_stores:
            if v is not None and self.buf.get(id(v)) is not None and self.buf.get(id(v)) is self.buf.get(id(leaf)):
                aliased.add(id(v))
        for k, v in enumerate(self.out_vals):
            if v.role in ("param", "state") and any(leaf is v for leaf, _ in self.plan_stores):
                outs[k] = f"{outs[k]}.copy()"
        for k, src in enumerate(outs):
            if src.endswith(".copy()"):  # a param or state that is about to be overwritten
                ident = self.new_ident("out")
                body.append(f"    {ident} = {src}")
                outs[k] = ident
        for leaf, v in self.plan_stores:
            node = leaf.nodes[0]
            if v is None:
                _, u = self.master_updates[id(leaf)]
                master = self.master_ident[id(leaf)]
                tail.append(f"    np.subtract({master}, {self.ref(u)}, out={master})  # new {comment_text(node.name)}")
                continue
            if id(v) in aliased:
                continue
            if leaf.role == "param" and id(leaf) in self.master_ident:
                dest = self.master_ident[id(leaf)]
            elif leaf.role == "param" and leaf.ident is None:
                dest = f"{self.bind(node, 'param')}.value"
            elif leaf.ident is None:
                dest = self.bind(self.state_arrays[leaf.index], "state")
            else:
                dest = leaf.ident
            tail.append(f"    np.copyto({dest}, {self.ref(v)})  # new {comment_text(node.name)}")
        body.extend(tail)
        if self.return_float_first and outs:
            outs[0] = f"float({outs[0]})"
        if self.single:
            ret = outs[0]
        elif not outs:
            ret = "None"
        else:
            ret = "(" + ", ".join(outs) + ("," if len(outs) == 1 else "") + ")"

        head = [
            "# Generated by symgrad.compile: plain Python + NumPy, one line per op.",
            f"# dtype {self.dtype}; np is NumPy; names starting with '_' are bound when the module is loaded",
            "# (kernels from symgrad.runtime, params, constants).  Underflow to 0 is expected inside;",
            "# overflow, invalid and divide-by-zero follow the caller's np.errstate.",
            "",
            f"def {self.fname}({', '.join(params)}):",
        ]
        with_block = ["    with _errstate(under='ignore'):"] + ["    " + ln for ln in body]
        src = "\n".join(head + lines + with_block + [f"    return {ret}", ""])
        return src

    def _dim_order(self, upto: int) -> list[str]:
        """Dims bound by the inputs before input ``upto`` (in binding order)."""
        seen: list[str] = []
        for n in self.inputs[:upto]:
            for d in n.shape:
                if isinstance(d, str) and d not in seen:
                    seen.append(d)
        return seen


def _load_into(work: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Copy (and cast) a param's value into its persistent working array."""
    np.copyto(work, value, casting="same_kind")
    return work


# ================================================================ loading
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


def _feed_helpers(fname: str, inputs: list[Node], np_dtype, dims_of) -> dict:
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

    return {"_feed": feed, "_bad_shape": bad_shape, "_bad_class": bad_class, "_stale": _stale}


class _ParamDtypeChanged(Exception):
    """Raised by a compiled step, before it changes anything, when a param's value no longer has the
    dtype the step was compiled for (``p.value = ...`` of the other float type); the step recompiles."""


def _stale(value: np.ndarray, want: np.dtype) -> None:
    if value.dtype != want:  # (an equal dtype that is another object is fine)
        raise _ParamDtypeChanged


def _build(fname: str, program: _Program, state_arrays: Sequence[np.ndarray] = ()) -> tuple[Callable, str, str]:
    program.state_arrays = list(state_arrays)
    source = program.build()
    ns = dict(program.globals)
    ns.update(_feed_helpers(fname, program.inputs, program.np_dtype, program._dim_order))
    ns["__name__"] = f"symgrad_generated_{fname}"
    fn, filename = _load(source, fname, ns)
    return fn, source, filename


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise GraphError(f"compile: dtype must be 'float64' or 'float32', got {dtype!r}")
    return dtype


def _check_inputs(inputs: Any, what: str) -> list[Node]:
    nodes = as_node_list(inputs if inputs is not None else [], what)
    seen: set[Node] = set()
    for n in nodes:
        if n.kind != "var":
            raise GraphError(f"{what}: inputs must be vars (sg.var), got {n.describe()} of kind {n.kind}")
        if n in seen:
            raise GraphError(f"{what}: input {n.name!r} is listed twice")
        seen.add(n)
    return nodes


# ================================================================ public API
class CompiledFunction:
    """A graph compiled to one Python + NumPy function.

    Call it with the inputs in the order given to :func:`compile` (or by
    name as keywords).  ``.source`` is the generated code and ``.path`` the
    file it was loaded from, so tracebacks and ``inspect`` show it.
    Params are read from their ``.value`` at every call.
    """

    def __init__(self, fn: Callable, source: str, path: str, inputs: list[Node], outputs: list[Node],
                 dtype: str):
        self.fn, self.source, self.path = fn, source, path
        self.inputs, self.outputs, self.dtype = inputs, outputs, dtype
        self._n = len(inputs)

    def __call__(self, *args: Any, **kwargs: Any):
        if kwargs or len(args) != self._n:
            args = _bind_args("compiled function", self.inputs, args, kwargs)
        return self.fn(*args)

    def __repr__(self) -> str:
        return (f"CompiledFunction(inputs={[n.name for n in self.inputs]}, "
                f"outputs={[o.describe() for o in self.outputs]}, dtype={self.dtype!r})")


def _bind_args(what: str, inputs: list[Node], args: tuple, kwargs: dict) -> tuple:
    names = [n.name for n in inputs]
    if len(args) > len(inputs):
        raise FeedError(f"{what}: takes {len(inputs)} input(s) {names}, got {len(args)}")
    values: dict[str, Any] = dict(zip(names, args))
    for k, val in kwargs.items():
        if k not in names:
            raise FeedError(f"{what}: unknown input {k!r}; the inputs are {names}")
        if k in values:
            raise FeedError(f"{what}: input {k!r} given twice")
        values[k] = val
    missing = [n for n in names if n not in values]
    if missing:
        raise FeedError(f"{what}: missing input(s) {missing}; the inputs are {names}")
    return tuple(values[n] for n in names)


def compile(outputs: Node | Sequence[Node], inputs: Sequence[Node] | None = None, dtype: str = "float64", *,
            reuse_buffers: bool = True) -> CompiledFunction:  # noqa: A001  the natural name, as in jax/theano
    """Compile output nodes to one Python + NumPy function.

    Parameters
    ----------
    outputs : a node or a list of nodes (forward values, gradients, ...).
    inputs : the vars, in the order the function takes them; default: the
        graph's vars in creation order.
    dtype : ``"float64"`` or ``"float32"``: the float type of every array
        inside (inputs are converted; params whose value has the other
        dtype are cast at each call).
    reuse_buffers : let elementwise ops write into temporaries whose last
        use has passed (``np.add(a, b, out=a)``).

    Returns
    -------
    CompiledFunction
        Callable returning an array (a tuple of them for a list of outputs);
        ``.source`` holds the generated code.

    Raises
    ------
    GraphError : a var of the graph is not among ``inputs``; bad dtype.
    FeedError : (when called) wrong number of inputs, or an input of the
        wrong shape or dtype.

    Examples
    --------
    >>> import symgrad as sg
    >>> x, y = sg.var("x"), sg.var("y")
    >>> w, b = sg.param("w", 0.5), sg.param("b", 0.1)
    >>> L = (sg.sigmoid(w * x + b) - y) ** 2
    >>> dw, db = sg.grad(L, [w, b])
    >>> f = sg.compile([L, dw, db], inputs=[x, y])
    >>> loss, gw, gb = f(1.5, 1.0)
    >>> round(float(loss), 6), round(float(gw), 6)
    (0.116081, -0.194437)
    >>> "# grad of:" in f.source
    True
    """
    dtype = _check_dtype(dtype)
    single = isinstance(outputs, Node)
    outs = as_node_list(outputs, "compile")
    if not outs:
        raise GraphError("compile: no outputs given")
    if inputs is None:
        ins = Graph(outs).vars
    else:
        ins = _check_inputs(inputs, "compile")
    program = _Program("fn", dtype, ins, [], outs, [], [], params_writable=False, reuse=reuse_buffers,
                       single=single)
    fn, source, path = _build("fn", program)
    return CompiledFunction(fn, source, path, ins, outs, dtype)


class StepFunction:
    """One training step, compiled: forward, backward and the optimizer update.

    ``step(*batch)`` updates every param's ``.value`` array in place (the
    same array objects, so ``p.value[...] = x`` done elsewhere is seen) and
    the optimizer state, and returns the loss as a float, or
    ``(loss, *outputs)`` when ``outputs`` were asked for.
    ``step.evaluate(*batch)`` returns the same without updating.

    Attributes
    ----------
    inputs : the input vars, in call order.
    params : the trained params.
    optimizer : the optimizer (:mod:`symgrad.optim`).
    t : number of updates done so far (Adam's bias correction and
        learning-rate schedules read it); settable.
    state : ``{param name: {state name: array}}``, the optimizer state
        (updated in place).
    source : the generated source of the step.

    With ``dtype="float32"`` the forward and backward passes, gradients and
    optimizer state are float32.  A param whose ``.value`` is float32
    (``p.value = p.value.astype(np.float32)``) is computed on and updated
    in place like a float64 param in a float64 step; a float64 ``.value``
    stays a float64 master copy: each step casts it into a float32 working
    array on entry and applies the update to it at the end (two more
    passes over it per step).  The same holds the other way round for a
    float32 param in a float64 step.  The step is compiled for the dtypes
    the params' values have; if one is given a value of the other dtype
    later, the next call compiles (once) a step for the new combination,
    before anything is updated.
    """

    def __init__(self, loss: Node, optimizer, inputs: list[Node], outputs: list[Node], params: list[Node],
                 dtype: str, reuse_buffers: bool = True):
        from .optim import Optimizer
        if not isinstance(optimizer, Optimizer):
            raise GraphError(f"compile_step: optimizer must be an sg.optim optimizer, got {type(optimizer).__name__}")
        self.loss, self.optimizer, self.inputs, self.outputs = loss, optimizer, inputs, outputs
        self.params, self.dtype = params, dtype
        self.t = 0
        self._reuse = reuse_buffers
        self._evaluate: CompiledFunction | None = None
        leaves = {n.name for n in Graph([loss] + outputs).leaves if n.name}
        lr = var(_fresh_name("lr", leaves))
        t = var(_fresh_name("t", leaves))
        grads = grad(loss, params) if params else []
        plan = optimizer.plan(params, grads, lr, t, names=leaves)
        np_dtype = DTYPES[dtype]
        self.state: dict[str, dict[str, np.ndarray]] = {}
        state_nodes, state_arrays, stores = [], [], []
        for p, new_p in zip(params, plan.new_params):
            stores.append((p, new_p))
        for p, name, leaf, new in plan.states:
            arr = np.zeros(p.shape, dtype=np_dtype)
            self.state.setdefault(p.name, {})[name] = arr
            state_nodes.append(leaf)
            state_arrays.append(arr)
            stores.append((leaf, new))
        self._state_list = state_arrays
        self._make = lambda: _Program("step", dtype, inputs, [lr, t], [loss] + outputs, stores, state_nodes,
                                      params_writable=True, barrier=grads, reuse=reuse_buffers,
                                      return_float_first=True, single=not outputs)
        self._graph_params = Graph([loss] + outputs + [v for _, v in stores]).params
        self._variants: dict[tuple, tuple[Callable, str, str]] = {}
        self._fn, self.source, self.path = self._compile()
        self._n = len(inputs)

    def _compile(self) -> tuple[Callable, str, str]:
        """The step for the dtypes the params' values have now (compiled once per combination)."""
        key = tuple(np.asarray(p.value).dtype.str for p in self._graph_params)
        if key not in self._variants:
            self._variants[key] = _build("step", self._make(), self._state_list)
        return self._variants[key]

    def __call__(self, *args: Any, **kwargs: Any):
        if kwargs or len(args) != self._n:
            args = _bind_args("step", self.inputs, args, kwargs)
        t = self.t + 1
        lr = self.optimizer.lr
        lr = float(lr(t - 1)) if callable(lr) else lr
        try:
            out = self._fn(*args, lr, float(t))
        except _ParamDtypeChanged:  # a param was given a value of the other float type: recompile
            self._fn, self.source, self.path = self._compile()
            out = self._fn(*args, lr, float(t))
        self.t = t
        return out

    def evaluate(self, *args: Any, **kwargs: Any):
        """The loss (and outputs) on a batch, without updating anything."""
        if self._evaluate is None:
            fn = compile([self.loss] + self.outputs, inputs=self.inputs, dtype=self.dtype,
                         reuse_buffers=self._reuse)
            self._evaluate = fn
        res = self._evaluate(*args, **kwargs)
        if not self.outputs:
            return float(res[0])
        return (float(res[0]),) + tuple(res[1:])

    def reset(self) -> None:
        """Zero the optimizer state and the update count (params are left as they are)."""
        for arr in self._state_list:
            arr[...] = 0.0
        self.t = 0

    def __repr__(self) -> str:
        return (f"StepFunction({type(self.optimizer).__name__}, inputs={[n.name for n in self.inputs]}, "
                f"params={[p.name for p in self.params]}, dtype={self.dtype!r}, t={self.t})")


def _fresh_name(stem: str, taken: set[str]) -> str:
    name = f"symgrad_{stem}"
    k = 0
    while name in taken:
        k += 1
        name = f"symgrad_{stem}{k}"
    taken.add(name)
    return name


def compile_step(loss: Node, optimizer, inputs: Sequence[Node] = (), outputs: Sequence[Node] = (), *,
                 params: Sequence[Node] | None = None, dtype: str = "float64",
                 reuse_buffers: bool = True) -> StepFunction:
    """Compile forward, backward and optimizer update into one function.

    Parameters
    ----------
    loss : scalar loss node.
    optimizer : an optimizer from :mod:`symgrad.optim` (its update rule is
        built as graph nodes and compiled together with the gradients).
    inputs : the vars fed at each step, in call order.
    outputs : extra nodes to return with the loss (e.g. the logits).
    params : the params to train; default: every param of the loss graph.
    dtype : ``"float64"`` or ``"float32"`` (see :class:`StepFunction`).

    Returns
    -------
    StepFunction

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x, y = sg.var("x", shape=("batch",)), sg.var("y", shape=("batch",))
    >>> w = sg.param("w", 0.0)
    >>> step = sg.compile_step(sg.losses.mse(w * x, y), sg.optim.SGD(lr=0.5), inputs=[x, y])
    >>> xs = np.array([1.0, 2.0])
    >>> for _ in range(50):
    ...     loss = step(xs, 3 * xs)
    >>> round(float(w.value), 6), step.t
    (3.0, 50)
    """
    dtype = _check_dtype(dtype)
    if not isinstance(loss, Node):
        raise GraphError(f"compile_step: loss must be a Node, got {type(loss).__name__}")
    if loss.shape != ():
        raise GraphError(f"compile_step: the loss must be a scalar, got {loss.describe()} of shape "
                         f"{format_shape(loss.shape)}")
    ins = _check_inputs(inputs, "compile_step")
    outs = as_node_list(list(outputs) if outputs is not None else [], "compile_step")
    graph = Graph([loss] + outs)
    if params is None:
        ps = Graph(loss).params
    else:
        ps = as_node_list(params, "compile_step")
        for p in ps:
            if p.kind != "param":
                raise GraphError(f"compile_step: params must be sg.param nodes, got {p.describe()}")
            if p not in graph:
                raise GraphError(f"compile_step: param {p.name!r} is not in the graph of the loss")
        if len(set(ps)) != len(ps):
            raise GraphError("compile_step: a param is listed twice")
    return StepFunction(loss, optimizer, ins, outs, list(ps), dtype, reuse_buffers)
