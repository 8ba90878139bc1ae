"""Numba forms of the ops that are not elementwise and not matrix products, for the Numba backend's
whole-step functions (:mod:`.numba_whole`).

Each form is a ``numba.njit`` function with the op's NumPy implementation's arguments and result
(``log_softmax(x, axis=1)``), computed as :mod:`symgrad.runtime` computes it (the max subtracted
first).  :func:`form_for` says which form computes a value, or None when the op has none for that
value's shapes: the step is then compiled as a driver calling fused kernels instead.

>>> import numpy as np
>>> x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, -np.inf]])
>>> np.round(log_softmax(x, axis=1), 4)
array([[-2.4076, -1.4076, -0.4076],
       [-0.6931, -0.6931,    -inf]])
>>> pick(x, np.array([2, 0]))
array([3., 0.])
"""
from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_OPTS = {"cache": True, "error_model": "numpy", "nogil": True}


# ------------------------------------------------------------------ matrix products
@intrinsic
def matmul_into(typingctx, a, b, out):
    """``out ← a @ b``, returning ``out`` (whose shape the compiler has checked): one BLAS ``gemm`` call
    when ``a`` and ``b`` are each C- or F-ordered (a ``.T`` of a C-ordered array is F-ordered) and ``out``
    C-ordered, all of one float dtype; a strided operand is copied first, and a result that is not
    C-ordered is computed apart and copied in.

    BLAS is column-major: the C-ordered ``out`` is ``outᵀ = bᵀ aᵀ`` there, so ``b`` comes first,
    untransposed when it is C-ordered (its memory is ``bᵀ`` column-major) and transposed when
    F-ordered.  It calls the ``gemm`` that Numba's own ``np.dot`` calls (Numba's C helper over SciPy's
    BLAS), written inline: ``np.dot`` compiles a function of checks and copies for every pair of
    layouts, a fifth of a whole step's compile time."""
    if not all(isinstance(t, types.Array) and t.ndim == 2 and t.dtype in (types.float32, types.float64)
               for t in (a, b, out)) or not a.dtype == b.dtype == out.dtype:
        return None
    from numba.core.imputils import impl_ret_borrowed
    from numba.np.linalg import ensure_blas
    ensure_blas()
    sig = out(a, b, out)
    dtype = out.dtype
    if not (a.layout in "CF" and b.layout in "CF" and out.layout == "C"):
        if out.layout == "C":  # a strided operand (a slice of a weight): copied, then one gemm
            def impl(x, y, o):
                return matmul_into(np.ascontiguousarray(x), np.ascontiguousarray(y), o)
        else:  # a result that is not C-ordered: computed apart, then copied in
            def impl(x, y, o):
                res = new_array((x.shape[0], y.shape[1]), o.dtype)
                o[...] = matmul_into(np.ascontiguousarray(x), np.ascontiguousarray(y), res)
                return o

        def fallback(context, builder, signature, args):
            res = context.compile_internal(builder, impl, signature, args)
            return impl_ret_borrowed(context, builder, signature.return_type, res)
        return sig, fallback

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        char, void_p = ir.IntType(8), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, void_p, void_p, intp,
                                                void_p, intp, void_p, void_p, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        arrs = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args, args)]
        m, k = cgutils.unpack_tuple(builder, arrs[0].shape, 2)
        n = cgutils.unpack_tuple(builder, arrs[1].shape, 2)[1]
        one, zero = ir.Constant(intp, 1), ir.Constant(intp, 0)

        def at_least_1(v):  # BLAS wants leading dimensions >= 1, also of empty matrices
            return builder.select(builder.icmp_signed(">", v, one), v, one)

        def operand(t, arr):  # (transpose flag, leading dimension, data) of an input, in BLAS's terms
            rows, cols = cgutils.unpack_tuple(builder, arr.shape, 2)
            return (ir.Constant(char, ord("n" if t.layout == "C" else "t")),
                    at_least_1(cols if t.layout == "C" else rows), builder.bitcast(arr.data, void_p))

        ta, lda, pa = operand(signature.args[1], arrs[1])
        tb, ldb, pb = operand(signature.args[0], arrs[0])
        alpha = cgutils.alloca_once_value(builder, context.get_constant(dtype, 1.0))
        beta = cgutils.alloca_once_value(builder, context.get_constant(dtype, 0.0))  # k = 0: out ← 0
        kind = ir.Constant(char, ord("s" if dtype == types.float32 else "d"))
        empty = builder.or_(builder.icmp_signed("==", m, zero), builder.icmp_signed("==", n, zero))
        with builder.if_then(builder.not_(empty)):
            builder.call(fn, (kind, ta, tb, n, m, k, builder.bitcast(alpha, void_p), pa, lda, pb, ldb,
                              builder.bitcast(beta, void_p), builder.bitcast(arrs[2].data, void_p), at_least_1(n)))
        return impl_ret_borrowed(context, builder, signature.return_type, args[2])

    return sig, codegen


@intrinsic
def new_array(typingctx, shape, dtype):
    """``np.empty(shape, dtype)`` for a tuple of ints and a NumPy dtype, C-ordered, written inline: a
    core's ``np.empty`` compiles Numba's implementation of it (its argument parsing) once per rank,
    a tenth of a second each; this allocates as that implementation ends up doing.

    >>> a = numba.njit(lambda n: new_array((n, 3), np.dtype(np.float32)))(2)
    >>> a.shape, a.dtype, a.flags.c_contiguous
    ((2, 3), dtype('float32'), True)
    """
    if not (isinstance(shape, types.BaseTuple) and len(shape) > 0
            and all(isinstance(t, types.Integer) for t in shape) and isinstance(dtype, types.DType)):
        return None
    from numba.core.imputils import impl_ret_new_ref
    from numba.np.arrayobj import _empty_nd_impl
    arrty = types.Array(dtype.dtype, len(shape), "C")

    def codegen(context, builder, signature, args):
        dims = [context.cast(builder, d, t, types.intp)
                for d, t in zip(cgutils.unpack_tuple(builder, args[0], len(shape)), shape)]
        ary = _empty_nd_impl(context, builder, arrty, dims)
        return impl_ret_new_ref(context, builder, arrty, ary._getvalue())

    return arrty(shape, dtype), codegen


@numba.njit(**_OPTS)
def matmul_rows(a, b, out):
    """``out ← a @ b`` for a stack ``a`` (…, k) of rows and a matrix ``b`` (k, n): one gemm over all
    rows (``a`` copied first when it is not C-ordered, as NumPy's ``matmul`` does for a strided view)."""
    k, n = b.shape
    matmul_into(np.ascontiguousarray(a).reshape((-1, k)), b, out.reshape((-1, n)))
    return out


@numba.njit(**_OPTS)
def copy_into(dst, src):
    """``dst[...] = src`` for arrays of one shape, ``dst`` C-ordered (a row of a loop's array): a loop."""
    d = dst.reshape(-1)
    s = np.ascontiguousarray(src).reshape(-1)
    for i in range(d.size):
        d[i] = s[i]


@numba.njit(**_OPTS)
def contract_lead(a, b):
    """``Σ_s a[s, i] b[s, j]`` over every leading axis s the two share (an einsum ``"tbi,tbh->ih"``: a
    recurrent weight's gradient summed over steps and batch): one gemm of the flattened operands."""
    p, q = a.shape[-1], b.shape[-1]
    a2 = np.ascontiguousarray(a).reshape((-1, p))
    b2 = np.ascontiguousarray(b).reshape((-1, q))
    return matmul_into(a2.T, b2, new_array((p, q), a.dtype))


@numba.njit(**_OPTS)
def sumsq(x):
    """``Σ x²`` over all entries (a dot product of the flattened array with itself)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    return np.dot(flat, flat)


@numba.njit(inline="always", error_model="numpy")
def _row_max(x, i):
    """The largest entry of row ``i``; NaN when the row has one (as ``np.max``)."""
    m = x[i, 0]
    for j in range(x.shape[1]):
        if x[i, j] > m or x[i, j] != x[i, j]:
            m = x[i, j]
            if m != m:
                break
    return m


@numba.njit(**_OPTS)
def log_softmax(x, axis=1):
    """x − max − log Σ exp(x − max) along the rows of a matrix (``axis`` is 1 or −1)."""
    n, k = x.shape
    out = new_array(x.shape, x.dtype)
    for i in range(n):
        m = _row_max(x, i)
        s = 0.0
        for j in range(k):
            s += math.exp(x[i, j] - m)
        ls = math.log(s)
        for j in range(k):
            out[i, j] = (x[i, j] - m) - ls
    return out


@numba.njit(**_OPTS)
def softmax(x, axis=1):
    """exp(x − max) / Σ exp(x − max) along the rows of a matrix (``axis`` is 1 or −1)."""
    n, k = x.shape
    out = new_array(x.shape, x.dtype)
    for i in range(n):
        m = _row_max(x, i)
        s = 0.0
        for j in range(k):
            e = math.exp(x[i, j] - m)
            out[i, j] = e
            s += e
        for j in range(k):
            out[i, j] /= s
    return out


@numba.njit(**_OPTS)
def pick(x, y):
    """``x[i, y[i]]`` for each row i."""
    n = x.shape[0]
    out = new_array((n,), x.dtype)
    for i in range(n):
        out[i] = x[i, y[i]]
    return out


@numba.njit(**_OPTS)
def xent_grad(log_probs, y, scale):
    """``scale · (one_hot(y) − exp(log_probs))`` for a matrix of log-probabilities."""
    n, k = log_probs.shape
    out = new_array(log_probs.shape, log_probs.dtype)
    for i in range(n):
        for j in range(k):
            p = math.exp(log_probs[i, j])
            if j == y[i]:
                p -= 1.0
            out[i, j] = p * -scale
    return out


def _rows(v) -> bool:
    """A matrix reduced along its rows (softmax and log-softmax of logits)."""
    axis = dict(v.attrs).get("axis")
    return v.args[0].ndim == 2 and axis in (1, -1)


def _matrix_and_labels(v) -> bool:
    return v.args[0].ndim == 2 and v.args[1].ndim == 1


def _lead_contraction(v) -> bool:
    """An einsum ``S p, S q -> p q``: every axis but each operand's last summed, the same in both."""
    spec = dict(v.attrs).get("spec")
    if not isinstance(spec, str) or "->" not in spec or spec.count(",") != 1:
        return False
    ins, out = spec.replace(" ", "").split("->")
    x, y = ins.split(",")
    return (len(x) == len(y) >= 2 and x[:-1] == y[:-1] and out == x[-1] + y[-1] and x[-1] != y[-1]
            and not set(out) & set(x[:-1]))


def _any(v) -> bool:
    return True


_FORMS: list = []


def _table() -> list:
    if not _FORMS:
        from ..ops.base import get_op
        from ..ops.kernels import PICK, SUMSQ, XENT_GRAD
        _FORMS.extend([(get_op("log_softmax"), log_softmax, _rows), (get_op("softmax"), softmax, _rows),
                       (PICK, pick, _matrix_and_labels), (XENT_GRAD, xent_grad, _matrix_and_labels),
                       (SUMSQ, sumsq, _any), (get_op("einsum"), contract_lead, _lead_contraction)])
    return _FORMS


def form_for(v):
    """The Numba form computing value ``v`` (an op applied to values), or None."""
    for op, fn, applies in _table():
        if v.op is op and applies(v):
            return fn
    return None


__all__ = ["form_for", "log_softmax", "softmax", "pick", "xent_grad", "matmul_into", "matmul_rows",
           "contract_lead", "sumsq", "copy_into", "new_array"]
