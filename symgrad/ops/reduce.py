"""Reductions: sum, mean, max over axes (NumPy ``axis``/``keepdims``)."""
from __future__ import annotations

import numpy as np
import sympy

from .. import runtime
from ..errors import ShapeError
from ..graph import Node, normalize_axes, size_of
from .base import OpDef, apply, const, get_op, objarray, register
from .kernels import COUNT_DIMS, PICK, SUMSQ


def reduced_shape(nodes, axis=None, keepdims=False, **_):
    """The shape a reduction over ``axis`` leaves (other attrs of the op are ignored)."""
    (x,) = nodes
    axes = range(x.ndim) if axis is None else axis
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


def _keepdims_cotangent(node: Node, g: Node) -> Node:
    """g with the reduced axes put back as size-1 dims (broadcasts to x)."""
    axis, keepdims = node.attr("axis"), node.attr("keepdims")
    if keepdims or axis is None or not axis:
        return g
    return expand_dims(g, axis)


def _count(node: Node) -> Node:
    """Number of reduced entries: a const when static, else a runtime count."""
    x, axis = node.inputs[0], node.attr("axis")
    axes = range(x.ndim) if axis is None else axis
    n = size_of(tuple(x.shape[a] for a in axes))
    return const(float(n)) if n is not None else apply("count", x, axis=axis)


def _mean_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    count = _count(n)
    g = _keepdims_cotangent(n, g)
    if count.kind == "const" and count.value == 1.0:  # mean over a single entry
        return (g,)
    return (g / count,)


def _obj(fn):
    return lambda x, axis=None, keepdims=False: objarray(fn(x, axis, keepdims))


def _sym_sum(x, axis, keepdims):
    return np.sum(x, axis=axis, keepdims=keepdims)


def _sym_mean(x, axis, keepdims):
    axes = range(x.ndim) if axis is None else axis
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    return objarray(np.sum(x, axis=axis, keepdims=keepdims)) * sympy.Rational(1, n)


_sym_max2 = np.frompyfunc(lambda p, q: sympy.Max(p, q), 2, 1)


def _sym_max(x, axis, keepdims):
    out = x
    for a in sorted(range(x.ndim) if axis is None else axis, reverse=True):
        out = _sym_max2.reduce(out, axis=a, keepdims=keepdims)
    return out


def _emit_reduce(method: str, mean: bool = False):
    """``x.sum(axis=1)`` (``np.sum`` of a Python float); a mean divides by the count, named dims included."""
    def emit(args, target, axis=None, keepdims=False):
        x = args[0]
        kw = ([f"axis={axis[0] if len(axis) == 1 else axis}"] if axis is not None else []) + \
            (["keepdims=True"] if keepdims else [])
        call = f"{x}.{method}({', '.join(kw)})" if x.ndim > 0 and not x.scalar else f"np.{method}({', '.join([x] + kw)})"
        if not mean:
            return call
        dims = [x.shape[k] for k in (range(x.ndim) if axis is None else axis)]
        static = [d for d in dims if isinstance(d, int)]
        count = int(np.prod(static, dtype=np.int64)) if static else 1
        parts = ([str(count)] if count != 1 or len(static) == len(dims) else []) + \
            [target.dim(d) for d in dims if not isinstance(d, int)]
        return f"{call} / {parts[0] if len(parts) == 1 else '(' + ' * '.join(parts) + ')'}"
    return emit


def _sum_of_one_hot(v, args, shape, ir):
    """Σ_last one_hot(y) * x  ->  x[..., y] (a gather; the one-hot rows are never built), for any product
    (``mul``, or ``weighted``, whose zero weights drop the −∞ entries as the gather does)."""
    x = args[0]
    if v.attr("keepdims") or x.ndim < 1 or v.attr("axis") != (x.ndim - 1,) or x.op is None \
            or x.op.arith != "mul":
        return None
    a, b = x.args
    if b.op is get_op("one_hot"):
        a, b = b, a
    if a.op is not get_op("one_hot") or b.shape != x.shape or a.shape != x.shape:
        return None
    return ir.make(PICK, [b, a.args[0]], (), v.shape)


def _rewrite_sum(v, args, shape, ir):
    """Σ one_hot(y)·x as a gather (:func:`_sum_of_one_hot`); a sum of every entry of a transpose as the sum
    of its input; in float64, a sum of every entry of x² (or x·x) as one dot product (``sumsq``)."""
    picked = _sum_of_one_hot(v, args, shape, ir)
    if picked is not None:
        return picked
    x = args[0]
    axis = v.attr("axis")
    if v.attr("keepdims") or not (axis is None or set(axis) == set(range(x.ndim))) or x.ndim == 0:
        return None
    whole = x.args[0] if x.op is get_op("transpose") else x
    a, b = (tuple(whole.args) + (None, None))[:2]
    if not ir.float32 and (whole.op is get_op("mul") and a is b or
                           whole.op is get_op("pow") and b.is_const(2.0) and b.shape == ()):
        return ir.make(SUMSQ, [a], (), shape)
    return ir.make(v.op, [whole], v.attrs, shape) if whole is not x else None


register(OpDef("sum", 1, reduced_shape, lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
               _obj(_sym_sum), label="Σ", emit=_emit_reduce("sum"), attr_names=("axis", "keepdims"),
               vjp=lambda n, g, needs: (_keepdims_cotangent(n, g),), matrix=lambda n, a, mx: mx.reduce_sum(n, a),
               reduction="sum", rewrite=_rewrite_sum, fresh=True))
register(OpDef("mean", 1, reduced_shape,
               lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
               _obj(_sym_mean), label="mean", emit=_emit_reduce("sum", mean=True), attr_names=("axis", "keepdims"),
               vjp=_mean_vjp, matrix=lambda n, a, mx: mx.reduce_mean(n, a), reduction="mean", fresh=True))


def _max_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    """The gradient is shared among the entries equal to the max; where the max is NaN (NumPy and
    PyTorch propagate it) it goes to the NaN entries, as torch.max()'s does, instead of 0/0 everywhere
    (``equal_nan``: NaN matches NaN)."""
    x, axis = n.inputs[0], n.attr("axis")
    mask = apply("equal_nan", x, _keepdims_cotangent(n, n))
    ties = apply("sum", mask, axis=axis, keepdims=True)
    return (_keepdims_cotangent(n, g) * (mask / ties),)


register(OpDef("max", 1, reduced_shape, lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
               _obj(_sym_max), label="max", emit=_emit_reduce("max"), attr_names=("axis", "keepdims"),
               vjp=_max_vjp, reduction="max", fresh=True))


def _rewrite_count(v, args, shape, ir):
    """A count over fixed dims is a constant; over named dims, their product at run time."""
    ref, axis = args[0], v.attr("axis")
    dims = [ref.shape[a] for a in (range(ref.ndim) if axis is None else axis)]
    if all(isinstance(d, int) for d in dims):
        return ir.const(float(np.prod(dims, dtype=np.int64)) if dims else 1.0)
    return ir.make(COUNT_DIMS, [], (("dims", tuple(dims)),), ())


def _count_shape(nodes, axis=None):
    return ()


register(OpDef("count", 1, _count_shape, runtime.count,
               lambda x, axis=None: objarray(sympy.Integer(int(np.prod(
                   [x.shape[a] for a in (range(x.ndim) if axis is None else axis)], dtype=np.int64)))),
               vjp=lambda n, g, needs: (None,), label="N", attr_names=("axis",),
               matrix=lambda n, a, mx: mx.count(n, a), foldable=False, rewrite=_rewrite_count,
               index=lambda n, idx, ix: sympy.Mul(*[ix.dim(n.inputs[0].shape[a]) for a in
                                                   (range(n.inputs[0].ndim) if n.attr("axis") is None
                                                    else n.attr("axis"))])))


def _reduction(opname: str, x, axis, keepdims: bool, name) -> Node:
    from .base import as_node
    x = as_node(x, opname)
    if not isinstance(keepdims, (bool, np.bool_)):
        raise ShapeError(f"{opname}: keepdims must be True or False, got {keepdims!r}")
    return apply(opname, x, axis=normalize_axes(opname, x, axis), keepdims=bool(keepdims), name=name)


def sum(x, axis=None, keepdims: bool = False, name=None) -> Node:  # noqa: A001  NumPy's name
    """Sum over ``axis`` (int, tuple or None for all), as ``np.sum``."""
    return _reduction("sum", x, axis, keepdims, name)


def mean(x, axis=None, keepdims: bool = False, name=None) -> Node:
    """Mean over ``axis``; works with symbolic dims (the count is taken at run time)."""
    return _reduction("mean", x, axis, keepdims, name)


def max(x, axis=None, keepdims: bool = False, name=None) -> Node:  # noqa: A001  NumPy's name
    """Maximum over ``axis``; the gradient is shared among ties."""
    return _reduction("max", x, axis, keepdims, name)


def expand_dims(x, axis) -> Node:
    from .linalg import expand_dims as _ed
    return _ed(x, axis)
