"""Nodes, shapes and the graph view.

A :class:`Node` is an op applied to input nodes.  Nodes are immutable and
hashed by identity; the DAG reachable from a set of outputs is a
:class:`Graph`, held as a ``networkx.DiGraph`` so that topological order,
ancestors and subgraphs come from networkx.

Shapes are tuples whose entries are ints or named symbolic dims (strings
such as ``"batch"``), with NumPy broadcasting and matmul semantics.
"""
from __future__ import annotations

import itertools
import keyword
import math
import re
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import networkx as nx
import numpy as np

from .errors import GraphError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from .ops.base import OpDef

Dim = int | str
Shape = tuple  # tuple[Dim, ...]

_ids = itertools.count()
LEAF_KINDS = ("var", "param", "const", "random", "buffer")
_NAME_RE = re.compile(r"^[^\W\d]\w*(\.\w+)*$", re.UNICODE)
#: the largest dim NumPy can allocate along one axis
MAX_DIM = int(np.iinfo(np.intp).max)


# ----------------------------------------------------------------- shapes
def format_shape(shape: Shape) -> str:
    """``(3, 'batch')`` -> ``"(3, batch)"``; scalars -> ``"()"``."""
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def normalize_shape(shape: Any, what: str = "shape") -> Shape:
    """Accept an int, a str dim, or a sequence of them; return a tuple."""
    if shape is None:
        return ()
    if isinstance(shape, (int, np.integer, str)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"{what}: expected a tuple of ints or dim names, got {shape!r}") from None
    out = []
    for d in dims:
        if isinstance(d, (bool, np.bool_)):
            raise ShapeError(f"{what}: dims must be ints or names, got {d!r} in {shape!r}")
        if isinstance(d, (int, np.integer)):
            if d < 0:
                raise ShapeError(f"{what}: negative dim {d} in {shape!r}")
            if d > MAX_DIM:
                raise ShapeError(f"{what}: dim {d} is larger than NumPy allows ({MAX_DIM})")
            out.append(int(d))
        elif isinstance(d, str):
            if not d.isidentifier() or keyword.iskeyword(d):
                raise ShapeError(f"{what}: symbolic dim {d!r} must be an identifier")
            out.append(d)
        else:
            raise ShapeError(f"{what}: dims must be ints or names, got {d!r} in {shape!r}")
    return tuple(out)


def is_static(shape: Shape) -> bool:
    return all(isinstance(d, int) for d in shape)


def size_of(shape: Shape) -> int | None:
    """Number of elements, or None when a dim is symbolic."""
    if not is_static(shape):
        return None
    return math.prod(shape)  # exact: NumPy's int64 product would wrap around for huge shapes


def broadcast_shapes(op: str, nodes: Sequence["Node"]) -> Shape:
    """NumPy broadcasting of the input shapes; a named dim matches itself or 1."""
    shapes = [n.shape for n in nodes]
    ndim = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(-ndim, 0):
        dim: Dim = 1
        for s in shapes:
            if -i > len(s):
                continue
            d = s[i]
            if d == 1:
                continue
            if dim == 1 or dim == d:
                dim = d
            else:
                raise ShapeError(
                    f"{op}: shapes {', '.join(format_shape(s) for s in shapes)} cannot be broadcast "
                    f"(inputs {', '.join(n.describe() for n in nodes)})"
                )
        out.append(dim)
    return tuple(out)


class _Shaped:
    """Stand-in with just a shape, for broadcasting bare shapes."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def describe(self):
        return format_shape(self.shape)


def broadcast_of(*shapes: Shape) -> Shape | None:
    """The broadcast of bare shapes, or None when they do not broadcast."""
    try:
        return broadcast_shapes("broadcast", [_Shaped(s) for s in shapes])
    except ShapeError:
        return None


def normalize_axes(op: str, node: "Node", axis: Any) -> tuple[int, ...] | None:
    """Axis argument -> sorted tuple of non-negative ints (None = all axes)."""
    if axis is None:
        return None
    axes = check_axes(op, axis)
    nd = len(node.shape)
    out = []
    for a in axes:
        if not -nd <= a < nd:
            raise ShapeError(f"{op}: axis {a} out of range for shape {format_shape(node.shape)} ({node.describe()})")
        out.append(int(a) % nd)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def check_axes(op: str, axis: Any, what: str = "axis") -> tuple[int, ...]:
    """An int or a sequence of ints as a tuple of Python ints; anything else is a ShapeError
    naming ``op`` and the argument ``what`` (bools, floats and strings are not axes)."""
    if _is_int(axis):
        return (int(axis),)
    if not isinstance(axis, (tuple, list, range, np.ndarray)) or isinstance(axis, np.ndarray) and axis.ndim != 1:
        raise ShapeError(f"{op}: {what} must be an int or a tuple of ints, got {_short(axis)}")
    axes = tuple(axis)
    for a in axes:
        if not _is_int(a):
            raise ShapeError(f"{op}: {what} must be an int or a tuple of ints, got {_short(a)} in {_short(axis)}")
    return tuple(int(a) for a in axes)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _short(x: Any) -> str:
    """``x`` for an error message: its repr, cut short, and its type when the repr does not show it."""
    try:
        text = repr(x)
    except Exception:  # noqa: BLE001  a repr that fails still gets a message
        text = "?"
    if not isinstance(x, (int, float, str, bytes, tuple, list, type(None))):
        text = f"{type(x).__name__} {text}"
    return text if len(text) <= 60 else text[:57] + "..."


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (int or float, not a bool), else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        out = float(value)
    except OverflowError:  # an int beyond the float range
        return None
    return out if math.isfinite(out) else None


def real_array(value: Any, what: str) -> np.ndarray:
    """``value`` as an array of real numbers: float32 stays float32, anything else becomes float64
    (no copy when it already is).  Strings, complex numbers, objects that are not numbers and ragged
    lists raise a GraphError whose message starts with ``what`` (``"param 'w': value"``)."""
    if value is None:
        raise GraphError(f"{what} must be real numbers, got None")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise GraphError(f"{what} must be real numbers, got {_short(value)} ({e})") from None
    if arr.dtype.kind == "O":  # Python ints beyond int64, SymPy numbers, or things that are not numbers
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError, OverflowError, AttributeError):
            raise GraphError(f"{what} must be real numbers, got {_short(value)}") from None
    elif arr.dtype.kind not in "fiub":
        raise GraphError(f"{what} must be real numbers, got {_short(value)} (dtype {arr.dtype})")
    if arr.dtype != np.float32:  # native float32 only: '>f4' compares unequal here
        arr = np.asarray(arr, dtype=np.float64)
    return arr


# ------------------------------------------------------------------ nodes
class ShapedAttrs:
    """``ndim`` and ``attr()`` for anything with ``shape`` and sorted ``attrs`` pairs
    (graph nodes, and the compiler's values)."""

    __slots__ = ()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default


class Node(ShapedAttrs):
    """An op applied to input nodes, or a leaf: immutable, hashed by identity.

    Build nodes with :func:`var`, :func:`param`, :func:`const` and the ops
    (``+ - * / ** @``, :func:`symgrad.sigmoid`, ...); do not call the
    constructor directly.  ``kind`` is ``"var"``, ``"param"``, ``"const"``,
    ``"random"`` (drawn afresh at each evaluation, :mod:`symgrad.random`) or
    ``"buffer"`` (state a training step updates besides the params, such as
    batch norm's running statistics) for leaves (whose ``op`` is None), and
    ``"op"`` otherwise.
    ``grad_of`` lists the forward nodes whose cotangent this node is, when
    :func:`symgrad.adjoints` made it (the compiler's ``# grad of:`` comments
    and ``dL_d…`` names read it).
    """

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "name", "id", "kind", "grad_of", "_value",
                 "__weakref__")
    __array_priority__ = 1000  # make ndarray + node defer to Node.__radd__

    def __init__(self, op: "OpDef | None", inputs: tuple, attrs: tuple, shape: Shape, dtype: str,
                 name: str | None = None, value: np.ndarray | None = None, kind: str = "op"):
        s = object.__setattr__
        if (kind == "op") != (op is not None) or kind not in LEAF_KINDS + ("op",):
            raise GraphError(f"Node: an op node needs an op and a leaf ({', '.join(LEAF_KINDS)}) none; "
                             f"got kind {kind!r} with op {op!r}")
        s(self, "op", op)
        s(self, "kind", kind)
        s(self, "grad_of", ())
        s(self, "inputs", tuple(inputs))
        s(self, "attrs", tuple(attrs))
        s(self, "shape", tuple(shape))
        s(self, "dtype", dtype)
        s(self, "name", name)
        s(self, "id", next(_ids))
        s(self, "_value", value)

    def __setattr__(self, key, value):
        if key == "value":
            return type(self).value.__set__(self, value)
        raise AttributeError(f"Node is immutable (tried to set {key!r})")

    # --------------------------------------------------------------- info
    @property
    def is_leaf(self) -> bool:
        return self.kind != "op"

    @property
    def value(self) -> np.ndarray:
        """The NumPy value of a param, buffer or const (None for other nodes)."""
        return self._value

    @value.setter
    def value(self, new) -> None:
        """Set a param's array: a float32 array is kept as it is (float32 training without a
        float64 master copy); anything else becomes float64 (no copy when it already is a
        writeable float64 array: compiled steps then update the caller's array in place).
        A read-only array is copied; non-numbers, a wrong shape and non-finite entries are
        refused, as by :func:`symgrad.param`."""
        if self.kind not in ("param", "buffer"):
            raise GraphError(f"only params and buffers have a settable value, not {self.describe()}")
        arr = real_array(new, f"{self.kind} {self.name!r}: value")
        if arr.shape != self.shape:
            raise ShapeError(f"{self.kind} {self.name}: value of shape {format_shape(arr.shape)} does not match "
                             f"{format_shape(self.shape)}")
        if not np.all(np.isfinite(arr)):
            raise GraphError(f"{self.kind} {self.name!r}: value has non-finite entries")
        if not arr.flags.writeable:  # a compiled step updates the value in place
            arr = arr.copy()
        object.__setattr__(self, "_value", arr)

    def describe(self) -> str:
        """Short text naming the node, for error messages."""
        from .oneline import describe
        return describe(self)

    def __repr__(self) -> str:
        if self.kind == "const":
            v = self._value
            return f"const({v.item() if v.ndim == 0 else format_shape(v.shape)})"
        if self.is_leaf:
            return f"{self.kind}({self.name!r}, shape={format_shape(self.shape)})"
        args = ", ".join(n.name or f"<{n.kind if n.is_leaf else n.op.name}>" for n in self.inputs)
        nm = f" name={self.name!r}" if self.name else ""
        return f"<{self.op.name}({args}) shape={format_shape(self.shape)}{nm}>"

    def named(self, name: str) -> "Node":
        """A copy of this op node carrying ``name`` (for formulas and drawings)."""
        check_name(name)
        if self.is_leaf:
            raise GraphError(f"{self.describe()}: leaves are named when created")
        return Node(self.op, self.inputs, self.attrs, self.shape, self.dtype, name=name)

    def _repr_latex_(self) -> str:
        from .formulas import latex
        return "$" + latex(self) + "$"

    # --------------------------------------------------------- operators
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    def __rmul__(self, other):
        return _ops().mul(other, self)

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __pow__(self, other):
        return _ops().pow(self, other)

    def __rpow__(self, other):
        return _ops().pow(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().neg(self)

    def __pos__(self):
        return self

    @property
    def T(self) -> "Node":
        return _ops().transpose(self)

    def __abs__(self) -> "Node":
        return _ops().abs(self)

    def __getitem__(self, key) -> "Node":
        """NumPy indexing: ints, slices, ``None``, ``...`` and one integer array (:func:`symgrad.getitem`)."""
        return _ops().getitem(self, key)

    # the methods a NumPy user reaches for; each is the function of the same name
    def sum(self, axis=None, keepdims: bool = False) -> "Node":
        return _ops().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> "Node":
        return _ops().mean(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False) -> "Node":
        return _ops().max(self, axis, keepdims)

    def reshape(self, *shape) -> "Node":
        """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``, as NumPy."""
        return _ops().reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], (int, str)) else shape)

    def transpose(self, *axes) -> "Node":
        return _ops().transpose(self, (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes) or None)

    def exp(self) -> "Node":
        return _ops().exp(self)

    def log(self) -> "Node":
        return _ops().log(self)

    def __bool__(self):
        raise TypeError("a symgrad Node has no truth value; use sg.where / sg.maximum for comparisons")

    def __iter__(self):
        raise TypeError("a symgrad Node is not iterable")

    __hash__ = object.__hash__


def mark_grad_of(g: Node, node: Node) -> None:
    """Record on ``g`` that it is the cotangent of ``node`` (called by autodiff as it makes ``g``)."""
    if node not in g.grad_of:
        object.__setattr__(g, "grad_of", g.grad_of + (node,))


def _ops():
    from . import ops
    return ops


def check_name(name: Any) -> str:
    """Names are identifiers, optionally dotted (``mlp.0.W`` is allowed)."""
    if not isinstance(name, str) or not name:
        raise GraphError(f"a name must be a non-empty string, got {name!r}")
    if not re.fullmatch(r"[^\W\d]\w*(\.\w+)*", name):
        raise GraphError(f"invalid name {name!r}: use letters, digits, '_' and '.' (not first)")
    return name


# ------------------------------------------------------------------ graph
class Graph:
    """The DAG reachable from ``outputs``.

    ``.nx`` is a ``networkx.DiGraph`` with an edge ``input -> node`` whose
    ``args`` attribute lists the argument positions (``x * x`` has one edge
    with ``args=(0, 1)``).  ``.order`` is a deterministic topological order.

    Examples
    --------
    >>> import symgrad as sg
    >>> x = sg.var("x"); y = sg.sin(x) * x
    >>> [n.op.name if n.op else n.kind for n in sg.Graph(y).order]
    ['var', 'sin', 'mul']
    """

    def __init__(self, outputs: Node | Iterable[Node]):
        outs = as_node_list(outputs, "Graph")
        self.outputs: tuple[Node, ...] = tuple(outs)
        g = nx.DiGraph()
        stack = list(outs)
        seen: set[Node] = set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            g.add_node(n)
            for pos, i in enumerate(n.inputs):
                if g.has_edge(i, n):
                    g.edges[i, n]["args"] = g.edges[i, n]["args"] + (pos,)
                else:
                    g.add_edge(i, n, args=(pos,))
                stack.append(i)
        self.nx = g
        self.order: list[Node] = list(nx.lexicographical_topological_sort(g, key=lambda n: n.id))
        self._check_names()

    def _check_names(self) -> None:
        by_name: dict[str, Node] = {}
        for n in self.order:
            if n.kind in ("var", "param", "random", "buffer"):
                other = by_name.setdefault(n.name, n)
                if other is not n:
                    raise GraphError(f"two different leaves are both named {n.name!r} "
                                     f"({other.describe()} and {n.describe()})")

    def __contains__(self, node: Node) -> bool:
        return node in self.nx

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __iter__(self):
        return iter(self.order)

    @property
    def leaves(self) -> list[Node]:
        return [n for n in self.order if n.is_leaf]

    @property
    def vars(self) -> list[Node]:
        return [n for n in self.order if n.kind == "var"]

    @property
    def params(self) -> list[Node]:
        return [n for n in self.order if n.kind == "param"]

    @property
    def randoms(self) -> list[Node]:
        """The random leaves (:mod:`symgrad.random`), drawn afresh at each evaluation."""
        return [n for n in self.order if n.kind == "random"]

    @property
    def buffers(self) -> list[Node]:
        """The buffers (state such as running statistics, read like params, never trained)."""
        return [n for n in self.order if n.kind == "buffer"]

    def find(self, name: str) -> Node:
        """The var or param called ``name``."""
        for n in self.order:
            if n.is_leaf and n.name == name:
                return n
        raise GraphError(f"no var or param named {name!r} in the graph")

    def ancestors(self, node: Node) -> set[Node]:
        return nx.ancestors(self.nx, node)

    def __repr__(self) -> str:
        return f"Graph({len(self)} nodes, outputs={[o.describe() for o in self.outputs]})"


def as_node_list(nodes: Any, what: str) -> list[Node]:
    if isinstance(nodes, Node):
        return [nodes]
    try:
        out = list(nodes)
    except TypeError:
        raise GraphError(f"{what}: expected a Node or a list of Nodes, got {type(nodes).__name__}") from None
    for n in out:
        if not isinstance(n, Node):
            raise GraphError(f"{what}: expected Nodes, got {type(n).__name__} ({n!r})")
    return out
