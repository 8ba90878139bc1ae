"""Array-shaping and linear-algebra ops: matmul, transpose, reshape,
expand_dims, and the two shape-following helpers autodiff uses
(``broadcast_like``, ``reshape_like``)."""
from __future__ import annotations

import math

import numpy as np

from .. import runtime
from ..errors import ShapeError
from .. import oneline as text
from ..graph import Node, broadcast_shapes, check_axes, format_shape, normalize_shape, size_of
from .base import OpDef, apply, as_node, objarray, register
from .kernels import BCAST, RESHAPE_TO


# ----------------------------------------------------------------- matmul
def _matmul_shape(nodes):
    a, b = nodes
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: scalar operand not allowed, use * (shapes {format_shape(a.shape)} and "
                         f"{format_shape(b.shape)}; {a.describe()}, {b.describe()})")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ShapeError(f"matmul: shapes {format_shape(a.shape)} and {format_shape(b.shape)} do not align "
                         f"({k_a} != {k_b}; {a.describe()} @ {b.describe()})")
    batch_a = a.shape[:-2]
    batch_b = b.shape[:-2]
    try:
        batch = broadcast_shapes("matmul", [_Shaped(batch_a), _Shaped(batch_b)])
    except ShapeError:
        raise ShapeError(f"matmul: batch dims of {format_shape(a.shape)} and {format_shape(b.shape)} "
                         f"cannot be broadcast ({a.describe()} @ {b.describe()})") from None
    rows = (a.shape[-2],) if a.ndim >= 2 else ()
    cols = (b.shape[-1],) if b.ndim >= 2 else ()
    return batch + rows + cols


class _Shaped:
    """Stand-in with just a shape, for reusing broadcast_shapes."""

    def __init__(self, shape):
        self.shape = shape

    def describe(self):
        return format_shape(self.shape)


def _mT(x: Node) -> Node:
    """Swap the last two axes."""
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, axes)


def _matmul_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    a, b = n.inputs
    a2 = a if a.ndim > 1 else expand_dims(a, 0)
    b2 = b if b.ndim > 1 else expand_dims(b, 1)
    g2 = g
    if a.ndim == 1:
        g2 = expand_dims(g2, g2.ndim - (0 if b.ndim == 1 else 1))
    if b.ndim == 1:
        g2 = expand_dims(g2, g2.ndim)
    da = db = None
    if needs[0]:
        da = g2 @ _mT(b2)
        if a.ndim == 1:
            da = apply("sum", da, axis=(da.ndim - 2,), keepdims=False)
    if needs[1]:
        db = _mT(a2) @ g2
        if b.ndim == 1:
            db = apply("sum", db, axis=(db.ndim - 1,), keepdims=False)
    return da, db


def _batch_index(dims: tuple, out: tuple, idx: tuple) -> tuple:
    """Indices into broadcast batch ``dims`` for output batch indices ``idx`` (of dims ``out``)."""
    lead = len(out) - len(dims)
    return tuple(0 if d == 1 and out[lead + k] != 1 else idx[lead + k] for k, d in enumerate(dims))


def _matmul_index(n: Node, idx: tuple, ix):
    """(A B)[…, i, j] = Σ_k A[…, i, k]·B[…, k, j] (vectors without their missing axis)."""
    a, b = n.inputs
    k = ix.dummy(a.shape[-1])
    rows, cols = a.ndim >= 2, b.ndim >= 2
    nb = n.ndim - rows - cols
    batch, out_batch = idx[:nb], n.shape[:nb]
    a_idx = _batch_index(a.shape[:-2], out_batch, batch) + ((idx[nb],) if rows else ()) + (k,)
    b_idx = _batch_index(b.shape[:-2], out_batch, batch) + (k,) + ((idx[-1],) if cols else ())
    return ix.sum(ix.entry(a, a_idx) * ix.entry(b, b_idx), k)


register(OpDef("matmul", 2, _matmul_shape, np.matmul, lambda a, b: objarray(np.matmul(a, b)),
               vjp=_matmul_vjp, matrix=lambda n, a, mx: mx.matmul(n, a), label="@",
               notation=text.Notation("product", "@", text.MUL), ufunc="matmul", infix="@", index=_matmul_index))


def matmul(a, b, name=None) -> Node:
    """Matrix product with NumPy semantics (1-D operands, batch broadcasting)."""
    return apply("matmul", a, b, name=name)


# -------------------------------------------------------------- transpose
def _transpose_shape(nodes, axes):
    (x,) = nodes
    return tuple(x.shape[a] for a in axes)


def _transpose_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    inv = tuple(int(i) for i in np.argsort(n.attr("axes")))
    return (transpose(g, inv),)


def _emit_transpose(args, target, axes):
    if axes == tuple(reversed(range(len(axes)))):
        return f"{args[0]}.T"
    return f"np.transpose({args[0]}, {axes})"


register(OpDef("transpose", 1, _transpose_shape, lambda x, axes: np.transpose(x, axes),
               lambda x, axes: objarray(np.transpose(x, axes)), vjp=_transpose_vjp, label="ᵀ",
               matrix=lambda n, a, mx: mx.transpose(n, a), notation=text.Notation("postfix", "ᵀ", text.POSTFIX),
               emit=_emit_transpose, attr_names=("axes",), view=True, layout="transpose"))


def transpose(x, axes=None, name=None) -> Node:
    """Permute axes (reverse them when ``axes`` is None), as ``np.transpose``."""
    x = as_node(x, "transpose")
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    given = check_axes("transpose", axes, "axes")
    if any(not -x.ndim <= a < x.ndim for a in given):
        raise ShapeError(f"transpose: axes {given} out of range for the {x.ndim} axes of {x.describe()}")
    axes = tuple(a % x.ndim for a in given)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"transpose: axes {given} are not a permutation of the {x.ndim} axes of {x.describe()}")
    return apply("transpose", x, axes=axes, name=name)


# ---------------------------------------------------------------- reshape
def _reshape_shape(nodes, shape, dims_from=None):
    (x,) = nodes
    named = [d for d in shape if isinstance(d, str)]
    if len(named) > 1 or (named and -1 in shape):
        return _reshape_named(x, shape)
    free = [i for i, d in enumerate(shape) if not isinstance(d, int) or d == -1]
    if len(free) > 1:
        raise ShapeError(f"reshape: at most one -1 in {shape} ({x.describe()})")
    n_in = size_of(x.shape)
    known = math.prod(d for d in shape if isinstance(d, int) and d != -1)  # exact, no int64 wrap-around
    if free:
        i = free[0]
        if shape[i] == -1:
            if n_in is None:
                sym = [d for d in x.shape if isinstance(d, str)]
                rest = size_of(tuple(d for d in x.shape if isinstance(d, int)))
                if len(sym) == 1 and rest == known:
                    return tuple(sym[0] if j == i else d for j, d in enumerate(shape))
                raise ShapeError(f"reshape: cannot infer -1 in {shape} from symbolic shape "
                                 f"{format_shape(x.shape)} ({x.describe()})")
            if known == 0 or n_in % known:
                raise ShapeError(f"reshape: cannot reshape {format_shape(x.shape)} into {shape} ({x.describe()})")
            return tuple(n_in // known if j == i else d for j, d in enumerate(shape))
        # a named dim: the input must carry it and the rest must match
        if shape[i] not in x.shape or size_of(tuple(d for d in x.shape if d != shape[i])) != known:
            raise ShapeError(f"reshape: cannot reshape {format_shape(x.shape)} into {format_shape(shape)} "
                             f"({x.describe()})")
        return tuple(shape)
    if n_in != known:
        raise ShapeError(f"reshape: cannot reshape {format_shape(x.shape)} ({n_in} entries) into "
                         f"{format_shape(shape)} ({x.describe()})")
    return tuple(shape)


def _reshape_named(x: Node, shape: tuple) -> tuple:
    """Several named dims (``("batch", "seq", 2, 3)`` from ``("batch", "seq", 6)``): each named dim
    of the target is one of the input's; the fixed dims must hold the rest, and a -1 may stand for
    the one named dim of the input the target does not name."""
    left = list(x.shape)
    for d in shape:
        if isinstance(d, str):
            if d not in left:
                raise ShapeError(f"reshape: dim {d!r} of {format_shape(shape)} is not a dim of "
                                 f"{format_shape(x.shape)} ({x.describe()})")
            left.remove(d)
    leftover = [d for d in left if isinstance(d, str)]
    in_fixed = math.prod(d for d in left if isinstance(d, int))
    known = math.prod(d for d in shape if isinstance(d, int) and d != -1)
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: at most one -1 in {shape} ({x.describe()})")
    if -1 in shape:
        if len(leftover) == 1 and in_fixed == known:
            return tuple(leftover[0] if d == -1 else d for d in shape)
        if not leftover and known and in_fixed % known == 0:
            return tuple(in_fixed // known if d == -1 else d for d in shape)
    elif not leftover and in_fixed == known:
        return tuple(shape)
    raise ShapeError(f"reshape: cannot reshape {format_shape(x.shape)} into {format_shape(shape)} "
                     f"({x.describe()})")


def _numpy_shape(shape):
    return tuple(d if isinstance(d, int) else -1 for d in shape)


def _sizes(x: np.ndarray, shape: tuple, dims_from) -> tuple:
    """The target shape in numbers: named dims take their size from the input axis they come from."""
    if dims_from is None:
        return _numpy_shape(shape)
    return tuple(x.shape[k] if k is not None else d for d, k in zip(shape, dims_from))


def _emit_reshape(args, target, shape, dims_from=None):
    if dims_from is None:
        return f"np.reshape({args[0]}, {_numpy_shape(shape)})"
    return f"np.reshape({args[0]}, {target.dims(shape)})"


register(OpDef("reshape", 1, _reshape_shape,
               lambda x, shape, dims_from=None: np.reshape(x, _sizes(np.asarray(x), shape, dims_from)),
               lambda x, shape, dims_from=None: objarray(np.reshape(x, _sizes(x, shape, dims_from))),
               vjp=lambda n, g, needs: (reshape_like(g, n.inputs[0]),), label="reshape",
               matrix=lambda n, a, mx: mx.reshape(n, a), emit=_emit_reshape,
               attr_names=("shape", "dims_from"), view=True, layout="reshape"))


def reshape(x, shape, name=None) -> Node:
    """Reshape, as ``np.reshape``; entries may be named dims of the input (several when each is
    one of the input's, ``("batch", "seq", 2, 3)`` from ``("batch", "seq", 6)``) and one may be -1.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.reshape(sg.var("X", shape=("batch", "seq", 6)), ("batch", "seq", 2, 3)).shape
    ('batch', 'seq', 2, 3)
    """
    x = as_node(x, "reshape")
    if isinstance(shape, (int, np.integer, str)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if isinstance(shape, np.ndarray) and shape.ndim == 1:
        shape = tuple(shape.tolist())
    if not isinstance(shape, (tuple, list)):
        raise ShapeError(f"reshape: shape must be a tuple of ints or dim names, got {shape!r} ({x.describe()})")
    shape = tuple(-1 if isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d == -1
                  else normalize_shape((d,), "reshape: shape")[0] for d in shape)
    if sum(isinstance(d, str) for d in shape) + (-1 in shape) > 1:
        # several dims known only at run time: each named one takes its size from the input axis it is
        resolved = _reshape_named(x, shape)
        free = [k for k, d in enumerate(x.shape) if isinstance(d, str)]
        dims_from = []
        for d in resolved:
            k = next((k for k in free if x.shape[k] == d), None) if isinstance(d, str) else None
            if k is not None:
                free.remove(k)
            dims_from.append(k)
        return apply("reshape", x, shape=resolved, dims_from=tuple(dims_from), name=name)
    return apply("reshape", x, shape=shape, name=name)


def _like_shape(nodes):
    return nodes[1].shape


register(OpDef("reshape_like", 2, _like_shape, runtime.reshape_like,
               lambda g, ref: objarray(np.reshape(g, ref.shape)),
               vjp=lambda n, g, needs: (reshape_like(g, n.inputs[0]), None), label="reshape",
               matrix=lambda n, a, mx: mx.reshape(n, a),
               emit=lambda args, target: f"np.reshape({args[0]}, {args[1]}.shape)", view=True, layout="reshape",
               rewrite=lambda v, args, shape, ir: args[0] if args[0].shape == v.shape else
               ir.make(RESHAPE_TO, [args[0]], (("shape", v.shape),), v.shape)))


def reshape_like(g, ref) -> Node:
    return apply("reshape_like", g, ref)


def _to_bcast(v, args, shape, ir):
    """Broadcasts compile to one internal op, which later rewrites sink below elementwise ops."""
    return ir.bcast(args[0], v.shape)


def _broadcast_like_shape(nodes):
    g, ref = nodes
    out = broadcast_shapes("broadcast_like", [g, ref])
    if out != ref.shape:
        raise ShapeError(f"broadcast_like: {format_shape(g.shape)} does not broadcast to {format_shape(ref.shape)}")
    return out


register(OpDef("broadcast_like", 2, _broadcast_like_shape, runtime.broadcast_like,
               lambda g, ref: objarray(np.broadcast_to(g, ref.shape)),
               vjp=lambda n, g, needs: (g, None), label="broadcast",
               matrix=lambda n, a, mx: mx.broadcast_like(n, a),
               emit=lambda args, target: f"np.broadcast_to({args[0]}, {args[1]}.shape)", view=True,
               layout="broadcast", rewrite=_to_bcast))


def broadcast_like(g, ref) -> Node:
    """``g`` broadcast to the (run-time) shape of ``ref``."""
    return apply("broadcast_like", g, ref)


def _broadcast_to_shape(nodes, shape):
    (g,) = nodes
    out = broadcast_shapes("broadcast_to", [g, _Shaped(shape)])
    if out != tuple(shape):
        raise ShapeError(f"broadcast_to: {format_shape(g.shape)} does not broadcast to {format_shape(shape)} "
                         f"({g.describe()})")
    return out


register(OpDef("broadcast_to", 1, _broadcast_to_shape, lambda g, shape: np.broadcast_to(g, shape),
               lambda g, shape: objarray(np.broadcast_to(g, shape)),
               vjp=lambda n, g, needs: (g,), label="broadcast", attr_names=("shape",),
               matrix=lambda n, a, mx: mx.broadcast_like(n, a),
               emit=lambda args, target, shape: f"np.broadcast_to({args[0]}, {shape})", view=True,
               layout="broadcast", rewrite=_to_bcast))


def broadcast_to(g, shape) -> Node:
    """``g`` broadcast to the fixed ``shape``."""
    return apply("broadcast_to", g, shape=normalize_shape(shape, "broadcast_to"))


# ------------------------------------------------------------ expand_dims
def _expand_shape(nodes, axis):
    (x,) = nodes
    out = list(x.shape)
    for a in axis:
        out.insert(a, 1)
    return tuple(out)


def _emit_expand(args, target, axis):
    x = args[0]
    if x.ndim == 0 or x.scalar:
        return f"np.expand_dims({x}, {axis})"
    axes = set(axis)
    return f"{x}[{', '.join('None' if k in axes else ':' for k in range(target.ndim))}]"


def _rewrite_expand(v, args, shape, ir):
    """A broadcast scalar with more axes is a broadcast scalar."""
    x = args[0]
    return ir.bcast(x.args[0], v.shape) if x.op is BCAST and x.args[0].ndim == 0 else None


register(OpDef("expand_dims", 1, _expand_shape, lambda x, axis: np.expand_dims(x, axis),
               lambda x, axis: objarray(np.expand_dims(x, axis)),
               vjp=lambda n, g, needs: (apply("sum", g, axis=n.attr("axis"), keepdims=False),),
               matrix=lambda n, a, mx: mx.expand_dims(n, a), label="expand", emit=_emit_expand,
               attr_names=("axis",), view=True, layout="expand", rewrite=_rewrite_expand))


def expand_dims(x, axis, name=None) -> Node:
    """Insert size-1 axes at positions ``axis`` of the result."""
    x = as_node(x, "expand_dims")
    axes = check_axes("expand_dims", axis)
    nd = x.ndim + len(axes)
    if any(not -nd <= a < nd for a in axes):
        raise ShapeError(f"expand_dims: axis {axis!r} out of range for a result of {nd} axes ({x.describe()})")
    norm = sorted(a % nd for a in axes)
    if len(set(norm)) != len(norm):
        raise ShapeError(f"expand_dims: repeated axis in {axis!r}")
    return apply("expand_dims", x, axis=tuple(norm), name=name)
