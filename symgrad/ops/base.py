"""The op declaration (:class:`OpDef`), its registry and node construction.

Everything about an op lives in one ``OpDef``: its name, shape rule,
NumPy implementation, SymPy meaning, vector-Jacobian product (written as
new graph nodes), NumPy emission for the compiler and its drawing label.
``register`` refuses incomplete or duplicate declarations.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import sympy

from .. import runtime
from ..errors import GraphError, OpDefinitionError, ShapeError
from ..graph import Node, broadcast_shapes, check_name, format_shape, normalize_shape
from . import sympy_funcs

# vjp(node, g, needs) -> one entry per input: a Node (the cotangent, any
# shape that broadcasts to the input; autodiff sums it back), or None for
# "no gradient flows here".
VJP = Callable[[Node, Node, tuple], tuple]


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
    label : short label for drawings and matrix formulas (``"σ"``, ``"@"``).
    emit : ``emit(args, **attrs) -> str`` NumPy source for the compiler, or
        None to call ``impl`` under the op's name.
    scalar : for elementwise ops, the SymPy function of scalar symbols.
    elementwise : whether the op maps entries independently (broadcasting).
    domain : per input, the (low, high) range gradient tests sample from.
    differentiable_inputs : which inputs carry gradients (int inputs do not).
    matrix : ``matrix(node, args, mx) -> expr``: the op in matrix notation,
        written with the vocabulary ``mx`` (:mod:`symgrad.formulas.notation`);
        None prints the op as its label applied to its arguments (``σ(Z)``).
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
    derivative_of: tuple | None = None  # (op name, input index) for derived ops
    matrix: Callable[..., Any] | None = None  # matrix(node, args, notation) -> SymPy matrix notation

    def __repr__(self) -> str:
        return f"OpDef({self.name!r})"


REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add ``op`` to the registry; refuse duplicates and incomplete ops."""
    if not isinstance(op, OpDef):
        raise OpDefinitionError(f"register: expected an OpDef, got {type(op).__name__}")
    if not op.name.isidentifier():
        raise OpDefinitionError(f"register: op name {op.name!r} is not an identifier")
    if op.name in REGISTRY:
        raise OpDefinitionError(f"register: an op named {op.name!r} is already registered")
    for field in ("shape", "impl", "sym"):
        if not callable(getattr(op, field)):
            raise OpDefinitionError(f"register: op {op.name!r} has no {field} rule")
    if not op.label:
        raise OpDefinitionError(f"register: op {op.name!r} has no label")
    if op.vjp is not None and not callable(op.vjp):
        raise OpDefinitionError(f"register: op {op.name!r}: vjp must be callable or None")
    REGISTRY[op.name] = op
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
    if name is not None:
        check_name(name)
    return Node(op, nodes, tuple(sorted(attrs.items())), shape, op.dtype, name=name)


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
    if dtype not in ("float", "int"):
        raise GraphError(f"var {name!r}: dtype must be 'float' or 'int', got {dtype!r}")
    return Node(REGISTRY["var"], (), (), normalize_shape(shape, f"var {name!r}"), dtype, name=name)


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
        # a float32 array stays float32 (as the .value setter keeps it); anything else becomes float64
        arr = np.array(value, dtype=np.float32 if getattr(value, "dtype", None) == np.float32 else np.float64)
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
    return Node(REGISTRY["param"], (), (), arr.shape, "float", name=name, value=arr)


def const(value: Any, name: str | None = None) -> Node:
    """A constant node holding a NumPy array."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise GraphError(f"const: cannot make a number array from {value!r}") from None
    arr.setflags(write=False)
    if name is not None:
        check_name(name)
    return Node(REGISTRY["const"], (), (), arr.shape, "float", name=name, value=arr)


def _no_inputs(nodes, **attrs):
    raise GraphError("leaves are made with sg.var, sg.param and sg.const")


def _leaf_impl(*args, **kw):
    raise GraphError("leaves have no implementation; they are fed or hold values")


for _leaf, _label in (("var", "var"), ("param", "param"), ("const", "const")):
    register(OpDef(_leaf, 0, _no_inputs, _leaf_impl, _leaf_impl, vjp=None, label=_label))


# --------------------------------------------------- elementwise ops
def objarray(x: Any) -> np.ndarray:
    """Wrap a SymPy result (scalar or array) as a NumPy object array."""
    if isinstance(x, np.ndarray) and x.dtype == object:
        return x
    arr = np.empty((), dtype=object) if not isinstance(x, np.ndarray) else None
    if arr is not None:
        arr[()] = x
        return arr
    return x.astype(object)


def _elementwise_sym(scalar: Callable, nin: int) -> Callable:
    def sym(*arrays, **attrs):
        f = np.frompyfunc(lambda *a: scalar(*a, **attrs), nin, 1)
        return objarray(f(*arrays))
    return sym


def _elementwise_shape(name: str):
    def shape(nodes, **attrs):
        return broadcast_shapes(name, nodes)
    return shape


def elementwise_op(name: str, scalar: Callable[..., sympy.Expr], impl: Callable | None = None, *,
                   nin: int = 1, label: str | None = None, vjp: VJP | None | str = "derive",
                   emit: Callable | None = None, domain: tuple | None = None,
                   attr_names: tuple = (), derivative_of: tuple | None = None, matrix: Callable | None = None,
                   differentiable: bool = True) -> OpDef:
    """Declare and register an elementwise op from its SymPy meaning.

    ``scalar(*symbols, **attrs)`` is the SymPy function.  ``impl`` is the
    NumPy implementation (by default SymPy's ``lambdify`` of ``scalar``).
    With ``vjp="derive"`` each input's derivative is taken by SymPy and
    becomes a new elementwise op (registered on first use), so the
    gradient is ``g * f_i'(inputs)``.
    """
    if impl is None:
        impl = _lambdify(scalar, nin, attr_names)
    if vjp == "derive":
        vjp = _derived_vjp(name, nin) if differentiable else None
    op = OpDef(name=name, nin=nin, shape=_elementwise_shape(name), impl=impl,
               sym=_elementwise_sym(scalar, nin), vjp=vjp, label=label or name, emit=emit,
               scalar=scalar, elementwise=True, domain=domain or ((-2.0, 2.0),) * nin,
               attr_names=attr_names, derivative_of=derivative_of, matrix=matrix)
    return register(op)


def _symbols(nin: int) -> tuple:
    return sympy.symbols(f"t0:{nin}", real=True) if nin > 1 else (sympy.Symbol("t", real=True),)


_NUMPY_FUNCS = {k: getattr(runtime, v) for k, v in sympy_funcs.RUNTIME_NAMES.items()}


def _lambdify(scalar: Callable, nin: int, attr_names: tuple) -> Callable:
    """NumPy implementation of a SymPy scalar function (via sympy.lambdify)."""
    ts = _symbols(nin)
    cache: dict = {}

    def impl(*arrays, **attrs):
        key = tuple(sorted(attrs.items()))
        f = cache.get(key)
        if f is None:
            expr = sympy.sympify(scalar(*ts, **attrs))
            f = cache[key] = sympy.lambdify(ts, expr, modules=[_NUMPY_FUNCS, "numpy"])
        out = f(*arrays)
        shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
        return np.broadcast_to(np.asarray(out, dtype=np.float64), shape).copy() if np.shape(out) != shape \
            else np.asarray(out, dtype=np.float64)

    return impl


def derivative_op(op: OpDef, index: int) -> OpDef:
    """The elementwise op ``∂op/∂input[index]``, derived by SymPy once."""
    name = f"{op.name}_prime" if op.nin == 1 else f"{op.name}_d{index}"
    if name in REGISTRY:
        return REGISTRY[name]
    ts = _symbols(op.nin)

    def dscalar(*args, **attrs):
        expr = sympy.diff(op.scalar(*ts, **attrs), ts[index])
        return expr.subs(dict(zip(ts, args)), simultaneous=True)

    label = f"{op.label}′" if op.nin == 1 else f"∂{op.label}/∂{index}"
    lo_hi = op.domain if op.domain else ((-2.0, 2.0),) * op.nin
    return elementwise_op(name, dscalar, nin=op.nin, label=label, domain=lo_hi,
                          attr_names=op.attr_names, derivative_of=(op.name, index))


def _derived_vjp(name: str, nin: int) -> VJP:
    def vjp(node: Node, g: Node, needs: tuple) -> tuple:
        attrs = dict(node.attrs)
        out = []
        for i in range(nin):
            if not needs[i]:
                out.append(None)
                continue
            d = derivative_op(node.op, i)
            out.append(g * apply(d, *node.inputs, **attrs))
        return tuple(out)
    return vjp


def make_elementwise(fn: Any, name: str, *, label: str | None = None,
                     domain: tuple[float, float] = (-2.0, 2.0)) -> Callable[[Any], Node]:
    """Make a new elementwise op from a SymPy function of one symbol.

    ``fn`` is a callable taking a SymPy symbol (``lambda t: t*sigmoid(t)``),
    a ``sympy.Lambda``, or an expression in exactly one free symbol.  The
    derivative is taken by SymPy; the op prints, evaluates and
    differentiates like a built-in one.  Returns the function that applies
    the op to a node.

    Examples
    --------
    >>> import symgrad as sg
    >>> swish = sg.elementwise(lambda t: t * sg.sympy_sigmoid(t), "swish")
    >>> float(sg.evaluate(swish(sg.const(0.0)), {}))
    0.0
    """
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise OpDefinitionError(f"elementwise: name must be an identifier not starting with '_', got {name!r}")
    t = sympy.Symbol("t", real=True)
    if isinstance(fn, sympy.Lambda):
        if len(fn.variables) != 1:
            raise OpDefinitionError(f"elementwise {name!r}: the Lambda must take exactly one variable")
        expr = fn(t)
    elif isinstance(fn, sympy.Basic):
        free = sorted(fn.free_symbols, key=str)
        if len(free) != 1:
            raise OpDefinitionError(f"elementwise {name!r}: the expression must have exactly one "
                                    f"free symbol, found {[str(s) for s in free]}")
        expr = fn.subs(free[0], t)
    elif callable(fn):
        expr = sympy.sympify(fn(t))
    else:
        raise OpDefinitionError(f"elementwise {name!r}: expected a SymPy expression, Lambda or callable")
    extra = expr.free_symbols - {t}
    if extra:
        raise OpDefinitionError(f"elementwise {name!r}: the function uses symbols other than its "
                                f"argument: {sorted(str(s) for s in extra)}")
    if name in REGISTRY:
        existing = REGISTRY[name]
        if existing.scalar is not None and sympy.simplify(existing.scalar(t) - expr) == 0:
            op = existing
        else:
            raise OpDefinitionError(f"elementwise: an op named {name!r} is already registered")
    else:
        op = elementwise_op(name, sympy.Lambda(t, expr), label=label or name, domain=(domain,))

    def apply_op(x: Any, name: str | None = None) -> Node:
        return apply(op, x, name=name)

    apply_op.__name__ = name
    apply_op.op = op  # type: ignore[attr-defined]
    return apply_op


