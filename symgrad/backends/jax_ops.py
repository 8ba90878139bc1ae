"""The JAX forms of symgrad's ops: what the JAX backend writes for each op of a compiled program.

An op declares its NumPy emission in its :class:`~symgrad.ops.base.OpDef`; the JAX backend reads
the same declaration and needs a form of its own only where that one cannot be traced by
``jax.jit``.  In order:

1. a ufunc op is written as its Python operator or ``jnp.<ufunc>(...)`` (``jnp.tanh(z)``);
2. an op in :data:`JAX_OPS` (this module's table: op name -> a function written with ``jax.numpy``
   and ``jax.lax``) is called under its op name, as the NumPy backend calls an op's implementation
   (``softmax(z, axis=1)``, ``conv(x, W, stride=(1, 1), ...)``);
3. an op with an ``emit`` rule that writes a pure expression (views, reductions, indexing,
   ``np.where`` ...) is written from that rule with ``np.`` read as ``jnp.`` (never with ``out=``);
4. an elementwise op made from a SymPy meaning alone (``sg.elementwise``) is lambdified into
   ``jax.numpy``.

Anything else raises :class:`~symgrad.errors.OpDefinitionError` naming the op and the backend, so the
compiled-vs-evaluated op tests catch an op without a JAX form.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import sympy
from jax import lax

from ..errors import OpDefinitionError
from ..ops.index import _numpy_key as _key  # NumPy's key form is JAX's too

__all__ = ["JAX_OPS", "EMIT_OK", "jax_form", "numpy_emit_as_jax", "NO_FORM"]


# ------------------------------------------------------------ elementwise
def _f(x):
    return jnp.asarray(x)


def sigmoid(x):
    return jax.nn.sigmoid(x)


def sigmoid_prime(x):
    s = jax.nn.sigmoid(x)
    return s * (1.0 - s)


def tanh_prime(x):
    t = jnp.tanh(x)
    return 1.0 - t * t


def step(x):
    x = _f(x)
    return (x > 0).astype(x.dtype)


def softplus(x):
    return jax.nn.softplus(x)


def leaky_relu(x, alpha):
    return jnp.where(x > 0, x, alpha * x)


def leaky_relu_prime(x, alpha):
    x = _f(x)
    return jnp.where(x > 0, 1.0, alpha).astype(x.dtype)


def weighted(w, x):
    """w · x, and 0 wherever w is 0 (also where x is ±∞)."""
    return jnp.where(w == 0, 0.0, w * x)


def _safe_log(x):
    return jnp.maximum(jnp.log(jnp.maximum(x, 0.0)), -100.0)


def bce(p, y):
    return -(y * _safe_log(p)) - (1.0 - y) * _safe_log(1.0 - p)


def bce_dp(p, y):
    return (p - y) / jnp.maximum(p * (1.0 - p), 1e-12)


def bce_logits(z, y):
    return jax.nn.softplus(z) - y * z


def _as_float(cond, like):
    return cond.astype(jnp.result_type(like, jnp.float32))


def equal(a, b):
    return _as_float(_f(a) == b, a)


def equal_nan(a, b):
    a, b = _f(a), _f(b)
    return _as_float((a == b) | (jnp.isnan(a) & jnp.isnan(b)), a)


def greater(a, b):
    return _as_float(_f(a) > b, a)


def greater_equal(a, b):
    return _as_float(_f(a) >= b, a)


def where(c, a, b):
    return jnp.where(_f(c) != 0, a, b)


def div_or_zero(a, b):
    """a / b, and 0 wherever b is 0 (the division never sees a zero, so its gradient stays finite)."""
    zero = b == 0
    return jnp.where(zero, 0.0, a / jnp.where(zero, 1.0, b))


def _normal_cdf(x):
    return 0.5 * (1.0 + jax.scipy.special.erf(x * math.sqrt(0.5)))


def _normal_pdf(x):
    xc = jnp.clip(x, -40.0, 40.0)
    return jnp.exp(-0.5 * xc * xc) / math.sqrt(2.0 * math.pi)


def gelu(x):
    return x * _normal_cdf(x)


def gelu_prime(x):
    return _normal_cdf(x) + x * _normal_pdf(x)


def elu(x, alpha=1.0):
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0.0)))


def elu_prime(x, alpha=1.0):
    x = _f(x)
    return jnp.where(x > 0, 1.0, alpha * jnp.exp(jnp.minimum(x, 0.0))).astype(x.dtype)


def silu(x):
    return x * jax.nn.sigmoid(x)


def silu_prime(x):
    s = jax.nn.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


def clip(x, low=None, high=None):
    if low is None and high is None:
        return _f(x)
    return jnp.clip(x, low, high)


def clip_prime(x, low=None, high=None):
    x = _f(x)
    inside = jnp.ones(x.shape, dtype=bool)
    if low is not None:
        inside &= x >= low
    if high is not None:
        inside &= x <= high
    return _as_float(inside, x)


# ------------------------------------------------------------ rows, reductions, statistics
def sumsq(x):
    """Σ x² over every entry."""
    return jnp.sum(x * x)


def softmax(x, axis):
    return jax.nn.softmax(x, axis=axis)


def log_softmax(x, axis):
    return jax.nn.log_softmax(x, axis=axis)


def one_hot(y, num_classes):
    return jax.nn.one_hot(y, num_classes)


def logsumexp(x, axis=None, keepdims=False):
    return jax.scipy.special.logsumexp(x, axis=axis, keepdims=keepdims)


def variance(x, axis=None, keepdims=False, ddof=None):
    return jnp.var(x, axis=axis, keepdims=keepdims, ddof=ddof or 0)


def std(x, axis=None, keepdims=False, ddof=None):
    return jnp.std(x, axis=axis, keepdims=keepdims, ddof=ddof or 0)


def norm(x, axis=None, keepdims=False):
    return jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=keepdims))


def count(ref, axis):
    shape = jnp.shape(ref)
    return float(math.prod(shape[a] for a in (range(len(shape)) if axis is None else axis)))


def einsum(x, y, spec):
    return jnp.einsum(spec, x, y)


def pad(x, widths, value):
    return jnp.pad(x, widths, constant_values=value)


# ------------------------------------------------------------ indexing
def _positions(index):
    index = _f(index)
    return index.astype(jnp.int32) if jnp.issubdtype(index.dtype, jnp.floating) else index


def scatter(g, ref, key):
    g = _f(g)
    return jnp.zeros(jnp.shape(ref), g.dtype).at[_key(key)].set(g)


def gather(x, index, key):
    return _f(x)[_key(key, _positions(index))]


def scatter_add(g, ref, index, key):
    g = _f(g)
    return jnp.zeros(jnp.shape(ref), g.dtype).at[_key(key, _positions(index))].add(g)


def pick(x, y):
    """``x[..., y]`` along the last axis (Σ one_hot(y)·x without the one-hot rows)."""
    return jnp.take_along_axis(x, _f(y)[..., None], axis=-1)[..., 0]


def xent_grad(log_probs, y, scale):
    """``scale · (one_hot(y) − exp(log_probs))``."""
    return -scale * (jnp.exp(log_probs) - jax.nn.one_hot(y, log_probs.shape[-1], dtype=log_probs.dtype))


# ------------------------------------------------------------ convolution and pooling
def _dims(d: int) -> tuple:
    sp = "DHW"[-d:] if d <= 3 else "".join(chr(ord("a") + k) for k in range(d))
    return ("NC" + sp, "OI" + sp, "NC" + sp)


def conv(x, w, stride, padding, dilation, groups):
    """Cross-correlation of ``x`` (N, C, *S) with ``w`` (O, C/groups, *K) by ``lax.conv_general_dilated``."""
    return lax.conv_general_dilated(x, w, window_strides=tuple(stride), padding=[(p, p) for p in padding],
                                    rhs_dilation=tuple(dilation), dimension_numbers=_dims(len(stride)),
                                    feature_group_count=groups)


def conv_grad_input(g, w, size, stride, padding, dilation, groups):
    """∂L/∂x of a conv: the transpose of the conv as a linear map of x (JAX's own transposed conv)."""
    x_shape = (g.shape[0], w.shape[1] * groups) + tuple(size)
    fn = lambda x: conv(x, w, stride, padding, dilation, groups)  # noqa: E731
    (dx,) = jax.linear_transpose(fn, jax.ShapeDtypeStruct(x_shape, g.dtype))(g)
    return dx


def conv_grad_weight(g, x, kernel, stride, padding, dilation, groups):
    """∂L/∂W of a conv: the transpose of the conv as a linear map of W."""
    w_shape = (g.shape[1], x.shape[1] // groups) + tuple(kernel)
    fn = lambda w: conv(x, w, stride, padding, dilation, groups)  # noqa: E731
    (dw,) = jax.linear_transpose(fn, jax.ShapeDtypeStruct(w_shape, g.dtype))(g)
    return dw


def _window(kernel, stride, padding):
    return ((1, 1) + tuple(kernel), (1, 1) + tuple(stride), ((0, 0), (0, 0)) + tuple((p, p) for p in padding))


def max_pool(x, kernel, stride, padding):
    dims, strides, pads = _window(kernel, stride, padding)
    return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, pads)


def max_pool_grad(g, x, kernel, stride, padding):
    """Each window's cotangent to its arg max (the VJP of ``max_pool``)."""
    _, back = jax.vjp(lambda a: max_pool(a, kernel, stride, padding), x)
    return back(g)[0]


def max_pool_select(h, x, kernel, stride, padding):
    """The entries of ``h`` at the arg max of each window of ``x`` (the JVP of ``max_pool``)."""
    return jax.jvp(lambda a: max_pool(a, kernel, stride, padding), (x,), (h,))[1]


def avg_pool(x, kernel, stride, padding):
    """Mean over each window, padding counted as zeros (PyTorch's ``count_include_pad=True``)."""
    dims, strides, pads = _window(kernel, stride, padding)
    return lax.reduce_window(x, 0.0, lax.add, dims, strides, pads) / math.prod(kernel)


def avg_pool_grad(g, size, kernel, stride, padding):
    x_shape = tuple(g.shape[:2]) + tuple(size)
    fn = lambda x: avg_pool(x, kernel, stride, padding)  # noqa: E731
    (dx,) = jax.linear_transpose(fn, jax.ShapeDtypeStruct(x_shape, g.dtype))(g)
    return dx


#: op name -> its JAX form, called under the op's name in generated source
JAX_OPS: dict[str, Callable] = {f.__name__: f for f in (
    sigmoid, sigmoid_prime, tanh_prime, step, softplus, leaky_relu, leaky_relu_prime, weighted, bce, bce_dp,
    bce_logits, equal, equal_nan, greater, greater_equal, where, div_or_zero, gelu, gelu_prime, elu, elu_prime,
    silu, silu_prime, clip, clip_prime, softmax, log_softmax, one_hot, logsumexp, variance, std, norm, count,
    einsum, pad, sumsq, scatter, gather, scatter_add, pick, xent_grad, conv, conv_grad_input, conv_grad_weight,
    max_pool, max_pool_grad, max_pool_select, avg_pool, avg_pool_grad)}

#: ops whose NumPy ``emit`` rule writes a pure expression that JAX traces once ``np.`` reads ``jnp.``
EMIT_OK = ("transpose", "reshape", "reshape_like", "broadcast_like", "broadcast_to", "expand_dims", "getitem", "concat",
           "sum", "mean", "max", "tril", "triu", "masked_fill", "bcast", "reshape_to", "count_dims", "mask_mul", "cast")


def _internal_ops() -> dict:
    from ..ops import kernels
    return {v.name: v for v in vars(kernels).values() if type(v).__name__ == "OpDef"}


_RESOLVED: dict = {}


def _resolved() -> tuple[dict, frozenset]:
    """The tables with their names resolved to the op declarations (registered ops, then the compiler's
    internal ones): JAX form by op, and the ops whose emit rule JAX reads."""
    if not _RESOLVED:
        from ..ops.base import REGISTRY
        ops = {**_internal_ops(), **REGISTRY}
        _RESOLVED["forms"] = {ops[k]: fn for k, fn in JAX_OPS.items() if k in ops}
        _RESOLVED["emit"] = frozenset(ops[k] for k in EMIT_OK if k in ops)
    return _RESOLVED["forms"], _RESOLVED["emit"]


_NP = re.compile(r"\bnp\.")


def numpy_emit_as_jax(src: str) -> str:
    """NumPy source of a pure expression, read with ``jax.numpy``."""
    return _NP.sub("jnp.", src)


NO_FORM = "no JAX form"


def _no_numpy_imps(expr):
    """Φ and φ written out (lambdify would call their NumPy ``_imp_``, which JAX cannot trace)."""
    from ..ops.activations import Phi, phi
    return expr.replace(Phi, lambda t: (1 + sympy.erf(t / sympy.sqrt(2))) / 2).replace(
        phi, lambda t: sympy.exp(-t * t / 2) / sympy.sqrt(2 * sympy.pi))


def _lambdified(op) -> Callable:
    """A ``jax.numpy`` function of an elementwise op's SymPy meaning (for ops made by ``sg.elementwise``)."""
    from sympy.printing.numpy import NumPyPrinter
    from ..ops.declare import _symbols
    ts = _symbols(op.nin)
    cache: dict = {}
    names = {"numpy": jnp, "sigmoid": sigmoid, "softplus": softplus, "step": step, "relu": lambda x: jnp.maximum(x, 0.0),
             "leaky_step": leaky_relu_prime, "leaky_relu": leaky_relu, "erf": jax.scipy.special.erf,
             "Phi": _normal_cdf, "phi": _normal_pdf}

    def fn(*arrays, **attrs):
        key = tuple(sorted(attrs.items()))
        if key not in cache:
            expr = _no_numpy_imps(sympy.sympify(op.scalar(*ts, **attrs)))
            cache[key] = sympy.lambdify(ts, expr, modules=[names], printer=NumPyPrinter(
                {"allow_unknown_functions": True, "strict": False}))
        out = cache[key](*arrays)
        shape = jnp.broadcast_shapes(*(jnp.shape(a) for a in arrays))
        dtype = jnp.result_type(*arrays, jnp.float32)
        return jnp.broadcast_to(jnp.asarray(out, dtype), shape)

    fn.__name__ = op.name
    return fn


_LAMBDIFIED: dict[int, tuple[Any, Callable]] = {}


def jax_form(op) -> Callable | str | None:
    """How the JAX backend writes ``op``: a function to call (its JAX form), ``"emit"`` (its NumPy
    ``emit`` rule read with ``jnp``), ``"ufunc"``, or None when it has none."""
    if op.ufunc is not None:
        return "ufunc"
    forms, emit_ok = _resolved()
    if op in forms:
        return forms[op]
    if op.emit is not None and op in emit_ok:
        return "emit"
    if op.elementwise and op.scalar is not None:
        got = _LAMBDIFIED.get(id(op))
        if got is None or got[0] is not op:
            got = _LAMBDIFIED[id(op)] = (op, _lambdified(op))
        return got[1]
    return None


def missing(op) -> OpDefinitionError:
    return OpDefinitionError(f"backend 'jax': op {op.name!r} has no JAX form (add it to JAX_OPS in "
                             f"symgrad/backends/jax_ops.py, or give the op a pure-expression emit rule)")
