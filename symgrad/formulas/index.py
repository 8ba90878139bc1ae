"""Index notation: the entries of a tensor of any rank as SymPy ``Indexed`` and ``Sum`` expressions.

Matrix notation stops at rank 2; index notation does not.  The entry of a
node at output indices ``(n, o, i, j)`` is written in the entries of its
inputs, as a textbook writes a convolution::

    Z[n,o,i,j] = b[o] + Σ_{c,p,q} W[o,c,p,q]·X[n,c,2i+p,2j+q]

An op says how, in its declaration (``OpDef.index``:
``index(node, idx, ix) -> expr``, written with the vocabulary of
:class:`IndexBuilder`: ``ix.entry(input, indices)``, ``ix.dummy(extent)``,
``ix.sum(expr, *indices)``, ``ix.dim(d)``).  Elementwise ops, reductions,
transposes, expands, broadcasts and reshapes need no rule of their own:
their index form follows from what the op already declares.  An op with no
index form prints as the op applied to its whole inputs, indexed
(``softmax(Z)[n,i]``).

:func:`numeric` computes such an expression for every value of its free
indices at once (each index an axis, each ``Σ`` a NumPy sum over one
more), so a printed equation can be checked against :func:`symgrad.evaluate`.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import numpy as np
import sympy
from sympy import Indexed, IndexedBase

from ..errors import FeedError, GraphError, ShapeError
from ..graph import Node
from .notation import const_number, dim
from .printing import Printable

#: the letters index symbols are drawn from, in order (output indices first, then summation indices)
LETTERS = "ijklmnpqrstuvwxyzabcdefgh"


class Iverson(sympy.Function):
    """``[a = b]``: 1 where the two indices are equal, else 0 (an Iverson bracket; unlike a
    Piecewise, SymPy never moves it out of the Σ it stands in)."""

    nargs = 2
    is_real = True

    @classmethod
    def eval(cls, a, b):
        if a == b:
            return sympy.Integer(1)
        if (a - b).is_nonzero:
            return sympy.Integer(0)
        return None

    def _latex(self, printer):
        return r"\left[%s = %s\right]" % (printer._print(self.args[0]), printer._print(self.args[1]))

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm
        inner = prettyForm(*printer._print(self.args[0]).right(" = ", printer._print(self.args[1])))
        return prettyForm(*inner.parens("[", "]"))

    def _sympystr(self, printer):
        return "[%s = %s]" % (printer._print(self.args[0]), printer._print(self.args[1]))


@functools.lru_cache(maxsize=None)
def index_symbol(name: str) -> sympy.Symbol:
    """An index: a non-negative integer symbol."""
    return sympy.Symbol(name, integer=True, nonnegative=True)


class IndexBuilder:
    """Entries of nodes at symbolic indices.

    ``symbols`` maps nodes that stand for themselves (leaves, kept named
    intermediates, δs) to the name their entries are written with;
    ``taken`` are names index letters must not collide with.
    """

    def __init__(self, symbols: Mapping[Node, str] | None = None, taken: set[str] = frozenset()):
        self.symbols = dict(symbols or {})
        self.taken = set(taken) | {str(v) for v in self.symbols.values()}
        self.extent: dict[sympy.Symbol, Any] = {}  # index -> its range (a dim)
        self.constants: dict[str, np.ndarray] = {}  # name of a constant array -> its value
        self.opaque: dict[str, Node] = {}  # name of an op printed whole (no index form) -> its node
        self._const_names: dict[int, str] = {}
        self._next = 0

    # ------------------------------------------------------------ vocabulary
    def dim(self, d: Any) -> sympy.Expr:
        return dim(d)

    def dummy(self, extent: Any, hint: str | None = None) -> sympy.Symbol:
        """A new index ranging over ``extent`` (an int or a named dim)."""
        if hint and hint not in self.taken and index_symbol(hint) not in self.extent:
            name = hint
        else:
            name = None
            while name is None:
                k, r = divmod(self._next, len(LETTERS))
                cand = LETTERS[r] + (str(k) if k else "")
                self._next += 1
                if cand not in self.taken and index_symbol(cand) not in self.extent:
                    name = cand
        s = index_symbol(name)
        self.extent[s] = extent
        return s

    def indices(self, shape: tuple) -> tuple:
        """Fresh output indices for a node of ``shape``."""
        return tuple(self.dummy(d) for d in shape)

    def sum(self, expr: sympy.Expr, *indices: sympy.Symbol) -> sympy.Expr:
        """Σ over ``indices`` (each over its extent; an index over one entry is that entry, 0)."""
        single = [k for k in indices if self.extent[k] == 1]
        if single:
            expr = sympy.sympify(expr).xreplace({k: sympy.Integer(0) for k in single})
            indices = tuple(k for k in indices if k not in single)
        if not indices:
            return expr
        return sympy.Sum(expr, *[(k, 0, dim(self.extent[k]) - 1) for k in indices])

    # ------------------------------------------------------------ entries
    def entry(self, node: Node, idx: tuple) -> sympy.Expr:
        """The entry of ``node`` at indices ``idx`` (index expressions)."""
        idx = tuple(idx)
        if len(idx) != node.ndim:
            raise ShapeError(f"index notation: {node.describe()} has {node.ndim} axes, indexed with {len(idx)}")
        if node in self.symbols:
            return _at(self.symbols[node], idx)
        if node.kind == "const":
            return self._const(node, idx)
        if node.is_leaf:
            return _at(node.name, idx)
        return self.define(node, idx)

    def define(self, node: Node, idx: tuple) -> sympy.Expr:
        """The entry of op node ``node`` at ``idx`` in its inputs' entries (never its own symbol)."""
        op = node.op
        rule = getattr(op, "index", None)
        if rule is not None:
            return sympy.sympify(rule(node, tuple(idx), self))
        if op.elementwise:
            return self._elementwise(node, idx)
        if op.reduction in ("sum", "mean"):
            return self._reduce(node, idx)
        if op.layout is not None:
            return self._layout(node, idx)
        return self._opaque(node, idx)

    def broadcast_index(self, src: Node, out_shape: tuple, idx: tuple) -> tuple:
        """Indices into ``src`` for output indices ``idx`` of a broadcast to ``out_shape``."""
        lead = len(out_shape) - src.ndim
        return tuple(sympy.Integer(0) if d == 1 and out_shape[lead + k] != 1 else idx[lead + k]
                     for k, d in enumerate(src.shape))

    def _elementwise(self, node: Node, idx: tuple) -> sympy.Expr:
        args = [self.entry(i, self.broadcast_index(i, node.shape, idx)) for i in node.inputs]
        op, attrs = node.op, dict(node.attrs)
        if op.derivative_of is not None and op.label.endswith("′"):  # σ′(z) stays σ′
            from .opclasses import op_function
            return op_function(op, node.attrs)(*args)
        return sympy.sympify(op.scalar(*args, **attrs))

    def reduced(self, node: Node, idx: tuple) -> tuple:
        """For a reduction ``node`` (attrs ``axis``, ``keepdims``) at output indices ``idx``: its
        input's indices, with a new summation index on each reduced axis, and those indices."""
        x = node.inputs[0]
        axes = tuple(range(x.ndim)) if node.attr("axis") is None else node.attr("axis")
        out = iter(idx)
        inner, summed = [], []
        for a in range(x.ndim):
            if a in axes:
                k = self.dummy(x.shape[a])
                summed.append(k)
                inner.append(k)
                if node.attr("keepdims"):
                    next(out)
            else:
                inner.append(next(out))
        return tuple(inner), tuple(summed)

    def _reduce(self, node: Node, idx: tuple) -> sympy.Expr:
        x = node.inputs[0]
        inner, summed = self.reduced(node, idx)
        total = self.sum(self.entry(x, inner), *summed)
        if node.op.reduction == "mean":
            axes = tuple(range(x.ndim)) if node.attr("axis") is None else node.attr("axis")
            total = total / sympy.Mul(*[dim(x.shape[a]) for a in axes])
        return total

    def _layout(self, node: Node, idx: tuple) -> sympy.Expr:
        x, layout = node.inputs[0], node.op.layout
        if layout == "transpose":
            inner = [None] * x.ndim
            for k, a in enumerate(node.attr("axes")):
                inner[a] = idx[k]
            return self.entry(x, tuple(inner))
        if layout == "expand":
            axes = set(node.attr("axis"))
            return self.entry(x, tuple(i for k, i in enumerate(idx) if k not in axes))
        if layout == "broadcast":
            return self.entry(x, self.broadcast_index(x, node.shape, idx))
        return self.entry(x, reshape_index(x.shape, node.shape, idx))

    def _const(self, node: Node, idx: tuple) -> sympy.Expr:
        value = np.asarray(node.value, dtype=np.float64)
        flat = value.reshape(-1)
        if node.name:  # a named constant (ε) prints by its name; numeric() knows its value
            self.constants[node.name] = value
            return _at(node.name, idx)
        if value.ndim == 0 or (flat.size and np.all(flat == flat[0])):
            return const_number(flat[0] if flat.size else 0.0)
        name = self._const_names.get(id(node))
        if name is None:
            name = node.name or f"C{len(self.constants) + 1}"
            self._const_names[id(node)] = name
            self.constants[name] = value
        return _at(name, idx)

    def _opaque(self, node: Node, idx: tuple) -> sympy.Expr:
        """An op with no index form: the op applied to its whole inputs, then indexed."""
        from ..oneline import formula_text
        text = formula_text(node, depth=1, name=lambda n: self.symbols.get(n) or n.name)
        self.opaque[text] = node
        return _at(text, idx)


def _at(name: str, idx: tuple) -> sympy.Expr:
    if not idx:
        return sympy.Symbol(str(name), real=True)
    return IndexedBase(str(name), real=True)[idx]


def reshape_index(src: tuple, dst: tuple, idx: tuple) -> tuple:
    """Indices into an array of shape ``src`` for indices ``idx`` of its reshape to ``dst`` (row-major).

    Dims are matched in groups of equal size (a named dim matches itself), so
    splitting an axis gives ``X[3i + j]`` and merging one gives
    ``X[⌊k/4⌋, k mod 4]``.
    """
    out: list = []
    s = d = 0
    while s < len(src) or d < len(dst):
        gs, gd = [], []
        size_s = size_d = sympy.Integer(1)
        # grow the smaller side until both groups have the same number of entries
        while True:
            if s < len(src) and (not gs or sympy.simplify(size_s - size_d) != 0 and _smaller(size_s, size_d)):
                gs.append(s)
                size_s = size_s * dim(src[s])
                s += 1
            elif d < len(dst) and (not gd or sympy.simplify(size_s - size_d) != 0):
                gd.append(d)
                size_d = size_d * dim(dst[d])
                d += 1
            else:
                break
            if gs and gd and sympy.simplify(size_s - size_d) == 0:
                # absorb trailing size-1 dims into this group
                while s < len(src) and src[s] == 1:
                    gs.append(s)
                    s += 1
                while d < len(dst) and dst[d] == 1 and (s >= len(src) or src[s] != 1):
                    gd.append(d)
                    d += 1
                break
        flat = sympy.Integer(0)
        for k in gd:
            flat = flat * dim(dst[k]) + idx[k]
        stride = sympy.Integer(1)
        strides = []
        for k in reversed(gs):
            strides.append(stride)
            stride = stride * dim(src[k])
        strides.reverse()
        for n, k in enumerate(gs):
            q = flat if strides[n] == 1 else sympy.floor(flat / strides[n])
            out.append(q if n == 0 else sympy.Mod(q, dim(src[k])))
    return tuple(out)


def _smaller(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Whether group size ``a`` is to grow before ``b`` (numerically, or by symbols when symbolic)."""
    try:
        return bool(a < b) if a.is_number and b.is_number else len(a.free_symbols) <= len(b.free_symbols)
    except TypeError:
        return True


# ---------------------------------------------------------------- numbers
def numeric(expr: Any, indices: tuple, shape: tuple, values: Mapping[str, Any]) -> np.ndarray:
    """The value of an index expression at every point of its free ``indices`` (of ``shape``).

    ``values`` maps the names of indexed tensors and symbols (and named
    dims) to numbers or arrays.  An entry read outside its tensor is 0
    (the zero padding of a convolution).

    Examples
    --------
    >>> import numpy as np, sympy
    >>> from symgrad.formulas.index import index_symbol, numeric
    >>> i, j, k = (index_symbol(c) for c in "ijk")
    >>> A, B = sympy.IndexedBase("A"), sympy.IndexedBase("B")
    >>> e = sympy.Sum(A[i, k] * B[k, j], (k, 0, 2))
    >>> a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 2))
    >>> numeric(e, (i, j), (2, 2), {"A": a, "B": b}).tolist()
    [[3.0, 3.0], [12.0, 12.0]]
    """
    env = {str(k): v for k, v in values.items()}
    ev = _Eval(env)
    shape = tuple(int(n) for n in shape)
    for k, n in zip(indices, shape):
        ev.bind(k, n)
    out = np.asarray(ev.run(sympy.sympify(expr)), dtype=np.float64)
    full = shape + (1,) * (_AXES - len(shape))
    return np.broadcast_to(out, full).reshape(shape).copy() if out.ndim else np.full(shape, float(out))


_AXES = 24  # every index has an axis of its own: output indices first, then those of nested sums


class _Eval:
    """Vectorized evaluation: each index is an ``arange`` along its own axis; a Σ binds one more
    axis and sums it away; entries are read by NumPy fancy indexing."""

    def __init__(self, env: dict):
        self.env = env
        self.axes: dict[sympy.Symbol, np.ndarray] = {}
        self.used = 0

    def bind(self, k: sympy.Symbol, n: int, lo: int = 0) -> int:
        if self.used >= _AXES:
            raise GraphError(f"numeric: more than {_AXES} nested indices")
        a = self.used
        self.used += 1
        shape = [1] * _AXES
        shape[a] = n
        self.axes[k] = np.arange(lo, lo + n).reshape(shape)
        return a

    def run(self, e: Any) -> Any:
        return self._eval(e)

    def _eval(self, e: Any) -> Any:
        if isinstance(e, (int, float)):
            return float(e)
        if e in self.axes:
            return self.axes[e]
        if e.is_number and not e.free_symbols and not isinstance(e, sympy.Function):
            return float(e)
        if isinstance(e, sympy.Symbol):
            if e.name not in self.env:
                raise FeedError(f"numeric: no value for {e.name!r}; known: {sorted(self.env)}")
            return np.asarray(self.env[e.name], dtype=np.float64)[()]
        if isinstance(e, Indexed):
            return self._entry(e)
        if isinstance(e, sympy.Sum):
            return self._sum(e)
        if isinstance(e, sympy.Add):
            return functools.reduce(np.add, [self._eval(a) for a in e.args])
        if isinstance(e, sympy.Mul):
            return functools.reduce(np.multiply, [self._eval(a) for a in e.args])
        if isinstance(e, sympy.Pow):
            return np.power(np.asarray(self._eval(e.base), dtype=np.float64), self._eval(e.exp))
        if isinstance(e, sympy.floor):
            return np.floor(self._eval(e.args[0]))
        if isinstance(e, sympy.Mod):
            return np.mod(self._eval(e.args[0]), self._eval(e.args[1]))
        if isinstance(e, (sympy.Max, sympy.Min)):
            return functools.reduce(np.maximum if isinstance(e, sympy.Max) else np.minimum,
                                    [self._eval(a) for a in e.args])
        if isinstance(e, sympy.Piecewise):
            out = None
            for val, cond in reversed(e.args):
                v = self._eval(val)
                out = v if out is None else np.where(self._cond(cond), v, out)
            return out
        if isinstance(e, Iverson):
            return np.equal(self._eval(e.args[0]), self._eval(e.args[1])).astype(np.float64)
        from .opclasses import OpFunction
        if isinstance(e, OpFunction):
            return self._eval(e.meaning())
        if isinstance(e, sympy.Function):
            args = [self._eval(a) for a in e.args]
            return _lambdified(type(e), len(args))(*args)
        raise GraphError(f"numeric: cannot compute {type(e).__name__} ({e})")

    def _entry(self, e: Indexed) -> Any:
        name = str(e.base.label)
        if name not in self.env:
            raise FeedError(f"numeric: no value for {name!r}; known: {sorted(self.env)}")
        arr = np.asarray(self.env[name], dtype=np.float64)
        if arr.ndim != len(e.indices):
            raise ShapeError(f"numeric: {name} has {arr.ndim} axes, indexed with {len(e.indices)}")
        pos = [np.rint(np.asarray(self._eval(i), dtype=np.float64)).astype(np.int64) for i in e.indices]
        valid = np.ones((), dtype=bool)
        for p, n in zip(pos, arr.shape):
            valid = valid & (p >= 0) & (p < n)
        clipped = tuple(np.clip(p, 0, max(n - 1, 0)) for p, n in zip(pos, arr.shape))
        return np.where(valid, arr[clipped], 0.0)

    def _sum(self, e: sympy.Sum) -> Any:
        bound = []
        for k, lo, hi in e.limits:
            lo_, hi_ = int(self._eval(lo)), int(self._eval(hi))
            bound.append((k, self.bind(k, max(hi_ - lo_ + 1, 0), lo_)))
        body = np.asarray(self._eval(e.function), dtype=np.float64)
        body = body.reshape((1,) * _AXES) if body.ndim == 0 else body
        shape = list(body.shape)
        for k, a in bound:
            shape[a] = self.axes[k].shape[a]
        out = np.broadcast_to(body, shape).sum(axis=tuple(a for _, a in bound), keepdims=True)
        for k, _ in bound:
            del self.axes[k]
        self.used -= len(bound)
        return out

    def _cond(self, c: Any) -> Any:
        if c is sympy.true or c is True:
            return True
        if c is sympy.false or c is False:
            return False
        if isinstance(c, sympy.And):
            return functools.reduce(np.logical_and, [self._cond(a) for a in c.args])
        if isinstance(c, sympy.Or):
            return functools.reduce(np.logical_or, [self._cond(a) for a in c.args])
        if isinstance(c, sympy.Not):
            return np.logical_not(self._cond(c.args[0]))
        ops = {sympy.StrictGreaterThan: np.greater, sympy.GreaterThan: np.greater_equal,
               sympy.StrictLessThan: np.less, sympy.LessThan: np.less_equal,
               sympy.Equality: np.equal, sympy.Unequality: np.not_equal}
        return ops[type(c)](self._eval(c.lhs), self._eval(c.rhs))


@functools.lru_cache(maxsize=None)
def _lambdified(func: Any, nargs: int) -> Callable:
    from ..ops.declare import NUMPY_FUNCS
    ts = sympy.symbols(f"t0:{nargs}")
    return sympy.lambdify(ts, func(*ts), modules=[NUMPY_FUNCS, "numpy"])


__all__ = ["IndexBuilder", "Iverson", "index_symbol", "numeric", "reshape_index", "LETTERS"]


# ---------------------------------------------------------------- printing
def _printers():
    """LaTeX and unicode printers with Σ written as in a textbook: the summation indices under the
    sign, no bounds (each index runs over its axis)."""
    from sympy.printing.pretty.stringpict import prettyForm, stringPict

    from .printing import _Latex, _Pretty

    class IndexLatex(_Latex):
        def _print_Sum(self, expr):
            body = self._print(expr.function)
            if isinstance(expr.function, sympy.Add):
                body = r"\left(%s\right)" % body
            return r"\sum_{%s} %s" % (",".join(self._print(k) for k, _, _ in expr.limits), body)

        def _print_Indexed(self, expr):
            label = str(expr.base.label)
            if label.startswith("∂") and "/∂" in label:  # ∂L/∂W: a gradient's entries
                num, den = label[1:].split("/∂", 1)
                head = r"\frac{\partial %s}{\partial %s}" % (self._print(sympy.Symbol(num)), self._print(sympy.Symbol(den)))
            else:
                head = self._print(expr.base.label)
                if "_" in head or "^" in head:  # h_{T}: braced, so its index reads {h_{T}}_{j,k}
                    head = "{%s}" % head
            return "%s_{%s}" % (head, ",".join(self._print(i) for i in expr.indices))

    class IndexPretty(_Pretty):
        def _print_Sum(self, expr):
            body = self._print(expr.function)
            if isinstance(expr.function, sympy.Add):
                body = prettyForm(*body.parens())
            under = ",".join(str(k) for k, _, _ in expr.limits)
            width = max(len(under), 1)
            sign = stringPict("Σ".center(width))
            sign = prettyForm(*sign.below(under.center(width)))
            sign.baseline = 0
            out = prettyForm(*sign.right(" ", body))
            out.baseline = body.baseline
            out.binding = prettyForm.MUL
            return out

        def _print_Indexed(self, expr):
            label = self._print(expr.base.label)
            inner = ",".join(sympy.sstr(i).replace("*", "") for i in expr.indices)
            return prettyForm(*label.right(f"[{inner}]"))

    return IndexLatex, IndexPretty


class IndexFormula(Printable):
    """``lhs[indices] = rhs``: a node's entries in index notation (a :class:`~.printing.Printable`).

    ``indices`` are the free indices (one per axis of the node, with
    ``extents`` their dims); :meth:`numeric` computes every entry.
    """

    def __init__(self, lhs: Any, rhs: Any, indices: tuple, extents: tuple, constants: dict, opaque: dict,
                 symbols: Mapping[Node, str] | None = None):
        self.lhs, self.rhs, self.indices, self.extents = lhs, rhs, tuple(indices), tuple(extents)
        self.constants, self.opaque = dict(constants), dict(opaque)
        self.symbols = dict(symbols or {})  # the nodes written by name (for ops printed whole)

    def renamed(self, name: str) -> "IndexFormula":
        """The same formula with ``name`` on the left: ``name[i,j] = …``."""
        return IndexFormula(_at(name, self.indices), self.rhs, self.indices, self.extents, self.constants,
                            self.opaque, self.symbols)

    def latex(self) -> str:
        printer = _printers()[0]()
        return f"{printer.doprint(self.lhs)} = {printer.doprint(self.rhs)}"

    def mathml(self) -> str:
        from .mathml import mo, row, to_mathml
        return row(to_mathml(self.lhs), mo("="), to_mathml(self.rhs))

    def pretty(self) -> str:
        from sympy.printing.pretty.pretty_symbology import pretty_use_unicode
        from sympy.printing.pretty.stringpict import prettyForm
        flag = pretty_use_unicode(True)
        try:
            printer = _printers()[1]({"use_unicode": True, "wrap_line": False})
            out = prettyForm(*printer._print(self.lhs).right(" = ", printer._print(self.rhs)))
            return "\n".join(line.rstrip() for line in out.render(wrap_line=False).splitlines())
        finally:
            pretty_use_unicode(flag)

    def numeric(self, values: Mapping[str, Any]) -> np.ndarray:
        """Every entry of the formula, from values of its tensors and named dims (by name)."""
        env = dict(self.constants)
        env.update({str(k): v for k, v in values.items()})
        shape = []
        for d in self.extents:
            if isinstance(d, str):
                if d not in env:
                    raise FeedError(f"numeric: no size for dim {d!r}")
                shape.append(int(env[d]))
            else:
                shape.append(int(d))
        for text, node in self.opaque.items():
            if text not in env:  # an op printed whole, max pool(X): the op applied to its operands' values
                env[text] = self._whole(node, env, text)
        return numeric(self.rhs, self.indices, tuple(shape), env)

    def _whole(self, node: Node, env: dict, text: str) -> np.ndarray:
        """The value of an op with no index form, from the values of the operands it is printed with."""
        args = []
        for i in node.inputs:
            name = self.symbols.get(i) or i.name
            if name is not None and name in env:
                args.append(np.asarray(env[name]))
            elif i.kind == "const":
                args.append(i.value)
            elif i.is_leaf:
                raise FeedError(f"numeric: {text} needs the value of {name!r}")
            else:  # an unnamed operand: its own index formula, in the same names
                args.append(index_formula(i, self.symbols).numeric(env))
        return np.asarray(node.op.impl(*args, **dict(node.attrs)))


def index_formula(node: Node, symbols: Mapping[Node, str] | None = None, name: str | None = None) -> IndexFormula:
    """The entries of ``node`` in index notation, in the entries of its leaves and of the nodes in
    ``symbols`` (node -> the name it is written with).

    Examples
    --------
    >>> import symgrad as sg
    >>> from symgrad.formulas.index import index_formula
    >>> X = sg.var("X", shape=("batch", 3, 4)); w = sg.param("w", [1.0, 2.0, 3.0, 4.0])
    >>> print(index_formula(sg.sum(X * w, axis=2), name="Z"))
    Z[i,j] = Σ X[i,j,k]⋅w[k]
             k
    """
    if not isinstance(node, Node):
        raise GraphError(f"index_formula: expected a Node, got {type(node).__name__}")
    from .build import reachable
    taken = {n.name for n in reachable(node) if n.name} | {str(d) for n in reachable(node) for d in n.shape
                                                           if isinstance(d, str)}
    ib = IndexBuilder(symbols, taken)
    idx = ib.indices(node.shape)
    rhs = ib.define(node, idx) if not node.is_leaf else ib.entry(node, idx)
    label = name or node.name or "y"
    return IndexFormula(_at(label, idx), rhs, idx, tuple(node.shape), ib.constants,
                        {k: v for k, v in ib.opaque.items()}, ib.symbols)
