"""The op declaration (:class:`OpDef`), its registry and node construction.

Everything about an op lives in one ``OpDef``: its name, shape rule,
NumPy implementation, SymPy meaning, vector-Jacobian product (written as
new graph nodes), how the compiler emits it (a NumPy ufunc, a source
template, a view, in place or not, rewrites), and how it prints (a label,
an infix symbol and its precedence, matrix notation).  The evaluator, the
formula builder, the compiler and the drawing ask the op; none of them
keeps a table of op names.  ``register`` refuses incomplete or duplicate
declarations.

Leaves (inputs, parameters, constants) are node kinds, not ops: they are
made by :func:`var`, :func:`param` and :func:`const` and have ``op=None``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import sympy

from ..errors import GraphError, OpDefinitionError, ShapeError
from ..graph import Node, check_name, format_shape, normalize_shape, real_array

# vjp(node, g, needs) -> one entry per input: a Node (the cotangent, any
# shape that broadcasts to the input; autodiff sums it back), or None for
# "no gradient flows here".
VJP = Callable[[Node, Node, tuple], tuple]
LAYOUTS = ("broadcast", "reshape", "expand", "transpose")
REDUCTIONS = ("sum", "mean", "max")


class Code(str):
    """Source text of one argument of an emitted op, with what an ``emit`` rule may need to know:
    its ``shape`` (named dims as names), ``ndim``, and ``scalar`` (a Python float, not an array)."""

    shape: tuple = ()
    scalar: bool = False

    def __new__(cls, text: str, shape: tuple = (), scalar: bool = False):
        self = super().__new__(cls, text)
        self.shape, self.scalar = tuple(shape), scalar
        return self

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclasses.dataclass(frozen=True)
class Target:
    """What an ``emit`` rule knows of the value it computes.

    ``buffer``: the name of an array to write the result into (only for
    ops declared ``inplace``), else None; ``augment``: whether the source may
    be an augmented assignment to it (``g *= m``) rather than an expression.  ``dim(d)``: source text of one
    dim (a named dim is bound at run time: ``d_batch_1``); ``dims(shape)``:
    of a shape (``(d_batch_1, 3)``).
    """

    ndim: int
    buffer: str | None
    dim: Callable[[Any], str]
    augment: bool = False

    def dims(self, shape: tuple) -> str:
        parts = [self.dim(d) for d in shape]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


@dataclasses.dataclass(frozen=True, eq=False)
class OpDef:
    """Everything about one op.

    Attributes
    ----------
    name : NumPy-style name (``"matmul"``, ``"sum"``).
    nin : number of inputs.
    shape : ``shape(inputs, **attrs) -> shape``; raises ShapeError.
    impl : NumPy implementation ``impl(*arrays, **attrs)``.
    sym : SymPy meaning on NumPy object arrays of expressions
        ``sym(*arrays, **attrs)`` (for elementwise ops made from ``scalar``).
    vjp : ``vjp(node, g, needs) -> tuple`` of cotangent nodes, or None when
        the op is not differentiable at all.
    label : short label for drawings and formulas (``"σ"``, ``"@"``).
    scalar : for elementwise ops, the SymPy function of scalar symbols.
    elementwise : whether the op maps entries independently (broadcasting).
    domain : per input, the (low, high) range gradient tests sample from.
    derivative_of : ``(op name, input index)`` for an op that is another op's derivative.
    matrix : ``matrix(node, args, mx) -> expr``: the op in matrix notation,
        written with the vocabulary ``mx`` (:mod:`symgrad.formulas.notation`);
        None prints the op as its label applied to its arguments (``σ(Z)``).
    index : ``index(node, idx, ix) -> expr``: the entry of the result at index
        expressions ``idx`` in index notation, written with the vocabulary ``ix``
        (:class:`symgrad.formulas.index.IndexBuilder`: ``ix.entry(input, indices)``,
        ``ix.dummy(extent)``, ``ix.sum(expr, *indices)``); None derives it for
        elementwise ops, sums and means, and layout ops, and otherwise prints
        the op applied to its whole inputs, indexed (``softmax(Z)[n, i]``).

    Printing
    --------
    notation : a :class:`symgrad.oneline.Notation` (infix symbol, precedence,
        style); None writes the op as a call, ``label(args)``.
    activation : whether backprop equations treat the op as a layer's
        activation (its input is ``z``, its output ``a``); None decides from
        the op (a unary elementwise op that is not arithmetic).
    output_range : ``(low, high)`` of the op's values, when bounded (σ: (0, 1)).

    Compiling
    ---------
    ufunc : the NumPy ufunc that computes the op (``"add"``), called with
        ``out=`` when a buffer can be reused; ``ufunc_args`` are extra
        source arguments after the inputs (ReLU is ``maximum(x, 0.0)``).
    infix : the Python operator for the ufunc (``"+"``; a prefix for one input).
    pyfloat_infix : whether the infix operator is right on two Python floats
        (not for ``**``: a negative float to a fractional power is complex).
    emit : ``emit(args, target, **attrs) -> str``: NumPy source from argument
        texts (:class:`Code`) and the :class:`Target`; None (and no ufunc)
        calls ``impl`` under the op's name.
    view : the result may share memory with an input (transpose, reshape).
    fresh : the result is always a new array, which later ops may overwrite
        (buffer reuse); None: true for ufuncs and ops made by
        :func:`~symgrad.ops.declare.elementwise_op`, false otherwise (an op that returns an input
        unchanged must not be marked fresh).
    inplace : ``emit`` can write into ``target.buffer`` (an input-sized buffer).
    commutative : inputs may be swapped (shared subexpressions of ``a + b`` and ``b + a``).
    foldable : may be computed at compile time when every input is a constant.
    preserves_dtype : the result has the inputs' float dtype (no cast in float32
        code); None: true for ufuncs, emitted source and views.
    int_inputs : the op takes integer inputs as they are (class indices).
    index_bound : name of the attr that bounds the values of an integer input 0
        (``one_hot``'s ``num_classes``); the compiled function checks it at entry.
    input_range : per input, None or the closed range ``(low, high)`` its values
        must lie in (bce's targets: ``(None, (0.0, 1.0))``): checked when the
        graph is built for a const input, by ``sg.evaluate`` for every input,
        and by compiled functions at entry for an input var (NaN passes).
    python_scalar : the result is a Python float (a count of entries).
    layout : the op only moves or copies entries of input 0: ``"broadcast"``,
        ``"reshape"``, ``"expand"`` or ``"transpose"``.
    reduction : ``"sum"``, ``"mean"`` or ``"max"`` for reductions over axes.
    rewrite : ``rewrite(value, args, shape, ir) -> value | None``: a
        compile-time rewrite (:mod:`symgrad.codegen.rewrite`), e.g. σ′(z)
        from σ(z) when that is computed anyway; None keeps the op.
    internal : a compiler-internal op (fused kernels), not in the registry.
    outputs : for an op with several outputs (:func:`symgrad.scan`):
        ``outputs(node) -> ((shape, dtype), ...)``.  The node's own shape is
        ``()``, its value a tuple; ``scan_out`` nodes pick the outputs, and
        autodiff hands ``vjp`` a tuple of cotangents, None where none flows.

    Derived
    -------
    arith : ``"mul"``, ``"add"``, ``"sub"``, ``"div"`` or ``"neg"`` when the SymPy
        meaning is that arithmetic (formulas collect such products and sums flat).
    sympy_function : the SymPy function class whose application is the op's
        meaning (``exp``, ``sigmoid``), for unary ops.
    """

    name: str
    nin: int
    shape: Callable[..., tuple]
    impl: Callable[..., Any]
    sym: Callable[..., Any]
    vjp: VJP | None
    label: str
    emit: Callable[..., str] | None = None
    scalar: Callable[..., sympy.Expr] | None = None
    elementwise: bool = False
    domain: tuple = ()
    dtype: str = "float"
    attr_names: tuple = ()
    derivative_of: tuple | None = None
    matrix: Callable[..., Any] | None = None
    index: Callable[..., Any] | None = None
    notation: Any = None
    activation: bool | None = None
    output_range: tuple | None = None
    ufunc: str | None = None
    ufunc_args: tuple = ()
    infix: str | None = None
    pyfloat_infix: bool = True
    view: bool = False
    fresh: bool | None = None
    inplace: bool = False
    commutative: bool = False
    foldable: bool = True
    preserves_dtype: bool | None = None
    int_inputs: bool = False
    index_bound: str | None = None
    input_range: tuple = ()
    python_scalar: bool = False
    layout: str | None = None
    reduction: str | None = None
    rewrite: Callable[..., Any] | None = None
    internal: bool = False
    outputs: Callable[..., tuple] | None = None
    arith: str | None = dataclasses.field(default=None, init=False)
    sympy_function: Any = dataclasses.field(default=None, init=False)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  derived once, here
        set_("arith", _arith_kind(self))
        set_("sympy_function", _sympy_function(self))
        if self.fresh is None:
            set_("fresh", bool(self.ufunc) and not self.view)
        if self.preserves_dtype is None:
            set_("preserves_dtype", bool(self.ufunc or self.emit or self.view))
        if self.activation is None:
            set_("activation", bool(self.elementwise and self.nin == 1 and self.arith is None
                                    and self.derivative_of is None))

    @property
    def shape_only(self) -> bool:
        """Whether the op only expands, reshapes or broadcasts (a transpose is more than that)."""
        return self.layout in ("broadcast", "reshape", "expand")

    def __repr__(self) -> str:
        return f"OpDef({self.name!r})"


def _arith_kind(op: OpDef) -> str | None:
    """'mul', 'add', 'sub', 'div' or 'neg' when the op's SymPy meaning is that; else None."""
    if not (op.elementwise and op.scalar is not None and not op.attr_names and op.nin in (1, 2)):
        return None
    ts = sympy.symbols("t0:2")
    try:
        e = sympy.sympify(op.scalar(*ts[:op.nin]))
    except Exception:  # noqa: BLE001  a meaning that needs more than symbols is not arithmetic
        return None
    a, b = ts
    table = {2: (("mul", a * b), ("add", a + b), ("sub", a - b), ("div", a / b)), 1: (("neg", -a),)}
    for name, ref in table[op.nin]:
        if e == ref:
            return name
    return None


def _sympy_function(op: OpDef) -> Any:
    """The SymPy function class f when the op's meaning is f(t), for unary elementwise ops."""
    if not (op.elementwise and op.nin == 1 and not op.attr_names and op.scalar is not None):
        return None
    t = sympy.Symbol("t", real=True)
    try:
        e = sympy.sympify(op.scalar(t))
    except Exception:  # noqa: BLE001  a meaning that is not a function of a symbol
        return None
    return type(e) if isinstance(e, sympy.Function) and e.args == (t,) else None


REGISTRY: dict[str, OpDef] = {}
#: SymPy function class -> the registered unary op whose meaning it is (σ -> sigmoid, log -> log)
FUNCTION_OPS: dict[type, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add ``op`` to the registry; refuse duplicates and incomplete ops."""
    if not isinstance(op, OpDef):
        raise OpDefinitionError(f"register: expected an OpDef, got {type(op).__name__}")
    if not op.name.isidentifier():
        raise OpDefinitionError(f"register: op name {op.name!r} is not an identifier")
    if op.name in REGISTRY:
        raise OpDefinitionError(f"register: an op named {op.name!r} is already registered")
    if op.internal:
        raise OpDefinitionError(f"register: op {op.name!r} is compiler-internal and stays out of the registry")
    for field in ("shape", "impl", "sym"):
        if not callable(getattr(op, field)):
            raise OpDefinitionError(f"register: op {op.name!r} has no {field} rule")
    if not op.label:
        raise OpDefinitionError(f"register: op {op.name!r} has no label")
    if op.vjp is not None and not callable(op.vjp):
        raise OpDefinitionError(f"register: op {op.name!r}: vjp must be callable or None")
    if op.layout is not None and op.layout not in LAYOUTS:
        raise OpDefinitionError(f"register: op {op.name!r}: layout must be one of {LAYOUTS}, got {op.layout!r}")
    if op.reduction is not None and op.reduction not in REDUCTIONS:
        raise OpDefinitionError(f"register: op {op.name!r}: reduction must be one of {REDUCTIONS}")
    if op.inplace and op.emit is None:
        raise OpDefinitionError(f"register: op {op.name!r}: an inplace op needs an emit rule that writes its buffer")
    REGISTRY[op.name] = op
    if op.sympy_function is not None:
        FUNCTION_OPS.setdefault(op.sympy_function, op)
    return op


def get_op(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise OpDefinitionError(f"no op named {name!r} is registered") from None


# ------------------------------------------------------------- nodes
def as_node(x: Any, op: str = "op") -> Node:
    """Wrap Python numbers and arrays as const nodes; pass nodes through."""
    if isinstance(x, Node):
        return x
    if isinstance(x, (sympy.Basic, str)) or x is None:
        raise GraphError(f"{op}: cannot use {x!r} ({type(x).__name__}) as an input; expected a Node or a number")
    return const(x)


def apply(op: OpDef | str, *inputs: Any, name: str | None = None, **attrs: Any) -> Node:
    """Build the node ``op(*inputs, **attrs)``, checking shapes now."""
    op = get_op(op) if isinstance(op, str) else op
    if len(inputs) != op.nin:
        raise GraphError(f"{op.name}: expected {op.nin} inputs, got {len(inputs)}")
    nodes = tuple(as_node(x, op.name) for x in inputs)
    shape = normalize_shape(op.shape(nodes, **attrs), op.name)
    for i, bounds in enumerate(op.input_range):
        if bounds is not None and nodes[i].kind == "const":
            message = range_error(op, i, nodes[i].value, bounds)
            if message:
                raise GraphError(f"{message} ({nodes[i].describe()})")
    if name is not None:
        check_name(name)
    return Node(op, nodes, tuple(sorted(attrs.items())), shape, op.dtype, name=name)


def range_error(op: OpDef, i: int, values: Any, bounds: tuple) -> str | None:
    """The message when ``values`` of input ``i`` of ``op`` leave ``bounds`` (its ``input_range``), else None."""
    arr = np.asarray(values)
    lo, hi = bounds
    if arr.size == 0 or not (arr.min() < lo or arr.max() > hi):
        return None
    return f"{op.name}: input {i} must lie in [{lo:g}, {hi:g}], got values {arr.min():g}..{arr.max():g}"


def var(name: str, shape: Any = (), dtype: str = "float") -> Node:
    """An input fed at evaluation time.

    Parameters
    ----------
    name : identifier used for feeds, formulas and drawings.
    shape : tuple of ints or named symbolic dims, e.g. ``("batch", 3)``.
    dtype : ``"float"``, or ``"int"`` for class indices.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.var("X", shape=("batch", 3)).shape
    ('batch', 3)
    """
    check_name(name)
    if not isinstance(dtype, str) or dtype not in ("float", "int"):
        raise GraphError(f"var {name!r}: dtype must be 'float' or 'int', got {dtype!r}")
    return Node(None, (), (), normalize_shape(shape, f"var {name!r}"), dtype, name=name, kind="var")


def param(name: str, value: Any = None, *, shape: Any = None, init: str | Callable | None = None,
          seed: int | None = None, **init_kwargs: Any) -> Node:
    """A trainable parameter whose NumPy array is ``.value``.

    Give a ``value``, or a ``shape`` with an ``init`` (a name from
    :mod:`symgrad.init` such as ``"xavier"``, ``"he"``, ``"normal"``; the
    default is ``"zeros"``) and a ``seed`` for reproducibility.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.param("w", 0.5).value
    array(0.5)
    >>> sg.param("W", shape=(3, 2), init="xavier", seed=0).value.shape
    (3, 2)
    """
    check_name(name)
    if value is not None:
        if init is not None:
            raise GraphError(f"param {name!r}: give a value or an init, not both")
        if seed is not None or init_kwargs:
            given = (["seed"] if seed is not None else []) + sorted(init_kwargs)
            raise GraphError(f"param {name!r}: {', '.join(given)} only apply to an init, not to a given value")
        # a float32 array stays float32 (as the .value setter keeps it); anything else becomes float64
        arr = real_array(value, f"param {name!r}: value").copy()
        if shape is not None and arr.shape != normalize_shape(shape):
            raise ShapeError(f"param {name!r}: value of shape {format_shape(arr.shape)} "
                             f"does not match shape {format_shape(normalize_shape(shape))}")
    else:
        shp = normalize_shape(shape, f"param {name!r}")
        if not all(isinstance(d, int) for d in shp):
            raise ShapeError(f"param {name!r}: a parameter needs a fixed shape, got {format_shape(shp)}")
        from ..init import initialize
        arr = initialize(init if init is not None else "zeros", shp, seed=seed, **init_kwargs)
    if not np.all(np.isfinite(arr)):
        raise GraphError(f"param {name!r}: value has non-finite entries")
    return Node(None, (), (), arr.shape, "float", name=name, value=arr, kind="param")


def const(value: Any, name: str | None = None) -> Node:
    """A constant node holding a NumPy array."""
    arr = np.array(real_array(value, "const: value"), dtype=np.float64)
    arr.setflags(write=False)
    if name is not None:
        check_name(name)
    return Node(None, (), (), arr.shape, "float", name=name, value=arr, kind="const")


# ------------------------------------------------------ object arrays
def objarray(x: Any) -> np.ndarray:
    """Wrap a SymPy result (scalar or array) as a NumPy object array."""
    if isinstance(x, np.ndarray) and x.dtype == object:
        return x
    arr = np.empty((), dtype=object) if not isinstance(x, np.ndarray) else None
    if arr is not None:
        arr[()] = x
        return arr
    return x.astype(object)
