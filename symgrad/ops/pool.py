"""Pooling: ``max_pool2d`` and ``avg_pool2d`` and their gradient ops (``max_pool_grad``,
``max_pool_select``, ``avg_pool_grad``), on the window helpers of :mod:`symgrad.ops.conv_kernels`.

Each window is read as a strided view per kernel offset, never a Python loop over pixels.
"""
from __future__ import annotations

import math

import numpy as np
import sympy

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from ..runtime import Workspace, workspace_kernel
from .base import OpDef, apply, as_node, objarray, register
from .conv import _KERNEL_HINTS, _describe, _ints, _letters, _out_size, _spatial, _transposed
from .conv_kernels import _layout, _like, _offsets, _pad, _scatter, _windows

_POOL_ATTRS = ("kernel", "stride", "padding")


# ================================================================= NumPy kernels (any dtype, object too)
# As in conv.py, ``work`` is a Workspace a training step keeps between calls, or None (all arrays new).
def _batch_last_view(a: np.ndarray) -> np.ndarray:
    """``(N, C, *S)`` → ``(C, *S, N)``, a view."""
    return a.transpose(tuple(range(1, a.ndim)) + (0,))


def _shifted(xp, offset, stride, out_sp):
    """The entries of (padded) ``xp`` that kernel offset ``offset`` reads, one per output position: a strided view."""
    at = tuple(slice(q, q + s * (o - 1) + 1, s) for q, s, o in zip(offset, stride, out_sp))
    return xp[(slice(None), slice(None)) + at]


def _pool_out(size, kernel, stride, padding) -> tuple:
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))


@workspace_kernel
def max_pool_forward(x, kernel, stride, padding, work: Workspace | None = None):
    """The max over each window (a running maximum over the kernel's offsets); padding reads as −∞ and never
    wins, since every window holds an input entry.  A NaN in a window gives NaN.  The result keeps ``x``'s
    memory layout."""
    xp = _pad(x, padding, -np.inf, work)
    out_sp = _pool_out(x.shape[2:], kernel, stride, padding)
    offsets = _offsets(kernel)
    first = _shifted(xp, offsets[0], stride, out_sp)
    out = _like(work, "out", x, first.shape, x.dtype)
    np.copyto(out, first)
    for offset in offsets[1:]:
        np.maximum(out, _shifted(xp, offset, stride, out_sp), out=out)
    return out


def _argmax(x, kernel, stride, padding, work: Workspace | None = None):
    """Per window, the number (row-major) of the offset of its first maximal entry; a NaN replaces the maximum
    found so far (as PyTorch's CPU kernel: ``val > max || isnan(val)``).  Laid out in memory as ``x``."""
    xp = _pad(x, padding, -np.inf, work)
    out_sp = _pool_out(x.shape[2:], kernel, stride, padding)
    views = [_shifted(xp, offset, stride, out_sp) for offset in _offsets(kernel)]
    shape, layout = views[0].shape, _layout(x)
    best = _like(work, "best", layout, shape, x.dtype)
    np.copyto(best, views[0])
    arg = _like(work, "arg", layout, shape, np.uint8 if len(views) <= 255 else np.int32)
    arg.fill(0)
    wins = _like(work, "wins", layout, shape, bool)
    if arg.dtype == np.uint8:  # a new maximum at offset k: arg = max(arg, k·wins), in bytes (a masked copy is slow)
        step = _like(work, "step", layout, shape, np.uint8)
    for k, v in enumerate(views[1:], start=1):  # a window without NaN never needs more than these passes
        np.greater(v, best, out=wins)
        np.maximum(best, v, out=best)
        if arg.dtype == np.uint8:
            np.multiply(wins.view(np.uint8), k, out=step)
            np.maximum(arg, step, out=arg)
        else:
            np.copyto(arg, k, where=wins)
    if not best.size or not np.isnan(best.max()):  # the max of an array holding a NaN is NaN
        return arg
    np.copyto(best, views[0])
    arg[...] = 0
    for k, v in enumerate(views[1:], start=1):
        wins = (v > best) | np.isnan(v)
        np.copyto(best, v, where=wins)
        np.copyto(arg, k, where=wins)
    return arg


def _disjoint(kernel, stride) -> bool:
    """Whether windows never overlap (each input entry lies in at most one window)."""
    return all(s >= k for k, s in zip(kernel, stride))


def _tiles(size, kernel, stride, padding) -> bool:
    """Whether the windows cover every input entry exactly once (no padding; stride = kernel, dividing the size)."""
    return not any(padding) and all(s == k and n % k == 0 for n, k, s in zip(size, kernel, stride))


def _place(parts, lead, layout, size, kernel, stride, padding, out_sp, dtype,
           work: Workspace | None = None) -> np.ndarray:
    """col2im for windows that never overlap: ``parts(k, out)`` writes offset ``k``'s entries ``(N, C, *out)``
    straight into the strided view ``out`` of an ``(N, C, *size)`` result (zeros where no window reads), laid out
    in memory in the order ``layout``."""
    out = _like(work, "out", layout, tuple(lead) + tuple(n + 2 * p for n, p in zip(size, padding)), dtype)
    if not _tiles(size, kernel, stride, padding):
        out.fill(0)
    for k, offset in enumerate(_offsets(kernel)):
        parts(k, _shifted(out, offset, stride, out_sp))
    if any(padding):
        out = out[(slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(padding, size))]
    return out


def _as_laid_out(a: np.ndarray, layout: tuple, work: Workspace | None, tag: str) -> np.ndarray:
    """``a`` with its axes in memory in the order ``layout`` (see :func:`_layout`): ``a`` itself or a copy."""
    if _layout(a) == layout:
        return a
    out = _like(work, tag, layout, a.shape, a.dtype)
    np.copyto(out, a)
    return out


@workspace_kernel
def max_pool_grad(g, x, kernel, stride, padding, work: Workspace | None = None):
    """∂L/∂X: each window's cotangent ``g`` goes to its arg max (accumulated where windows overlap)."""
    arg = _argmax(x, kernel, stride, padding, work)
    dtype = np.result_type(g, x)
    if _disjoint(kernel, stride):
        layout = _layout(x)
        g = _as_laid_out(g, layout, work, "g")
        hit = _like(work, "hit", layout, arg.shape, bool)

        def part(k, out):
            np.equal(arg, k, out=hit)
            np.multiply(g, hit, out=out)
        return _place(part, x.shape[:2], layout, x.shape[2:], kernel, stride, padding, g.shape[2:], dtype, work)
    g_last, arg_last = _batch_last_view(g), _batch_last_view(arg)
    return _scatter(lambda k: g_last * (arg_last == k), g.shape[1], g.shape[0], x.shape[2:], kernel, stride,
                    padding, (1,) * len(kernel), g.shape[2:], dtype, work)


@workspace_kernel
def max_pool_select(h, x, kernel, stride, padding, work: Workspace | None = None):
    """The entries of ``h`` at the arg max of each window of ``x`` (max-pool's gradient, transposed)."""
    arg = _argmax(x, kernel, stride, padding, work)
    hp = _pad(h, padding, 0)
    out_sp = arg.shape[2:]
    out = _like(work, "out", x, arg.shape, np.result_type(h, x))
    out.fill(0)
    for k, offset in enumerate(_offsets(kernel)):
        np.copyto(out, _shifted(hp, offset, stride, out_sp), where=arg == k)
    return out


@workspace_kernel
def avg_pool_forward(x, kernel, stride, padding, work: Workspace | None = None):
    """The mean over each window, padding counted as zeros (PyTorch's ``count_include_pad=True``); each entry
    is scaled before the sum, so a window of huge finite entries does not overflow."""
    xp = _pad(x, padding, 0, work)
    out_sp = _pool_out(x.shape[2:], kernel, stride, padding)
    offsets = _offsets(kernel)
    if x.dtype == object:
        return sum(_shifted(xp, o, stride, out_sp) for o in offsets) / math.prod(kernel)
    share = 1.0 / math.prod(kernel)
    first = _shifted(xp, offsets[0], stride, out_sp)
    total = _like(work, "out", x, first.shape, x.dtype)
    np.multiply(first, share, out=total)
    part = _like(work, "part", x, first.shape, x.dtype)
    for offset in offsets[1:]:
        total += np.multiply(_shifted(xp, offset, stride, out_sp), share, out=part)
    return total


@workspace_kernel
def avg_pool_grad(g, size, kernel, stride, padding, work: Workspace | None = None):
    """∂L/∂X of average pooling: each window's cotangent spread evenly over it."""
    if g.dtype == object:
        share = g / math.prod(kernel)
    else:
        share = _like(work, "share", g, g.shape, g.dtype)
        np.multiply(g, 1.0 / math.prod(kernel), out=share)
    if _disjoint(kernel, stride) and share.dtype != object:
        return _place(lambda k, out: np.copyto(out, share), g.shape[:2], _layout(g), size, kernel, stride, padding,
                      g.shape[2:], share.dtype, work)
    share = _batch_last_view(share)
    return _scatter(lambda k: share, g.shape[1], g.shape[0], size, kernel, stride, padding, (1,) * len(kernel),
                    g.shape[2:], share.dtype, work)


def _sym_max_pool(x, kernel, stride, padding):
    win = _windows(x, kernel, stride, padding, (1,) * len(kernel), fill=-sympy.oo)
    flat = win.reshape(win.shape[:2 + len(kernel)] + (-1,))
    return objarray(np.frompyfunc(lambda a, b: sympy.Max(a, b), 2, 1).reduce(flat, axis=-1))


def _no_expand(opname: str):
    def sym(*args, **attrs):
        raise GraphError(f"{opname}: the arg max of a window has no closed SymPy form; expand=True is not "
                         f"supported for it (use sg.evaluate for its values)")
    return sym


# ================================================================= shape rules
def _pool_shape_of(opname):
    def shape(nodes, kernel, stride, padding):
        x = nodes[0]
        if x.ndim != len(kernel) + 2:
            raise ShapeError(f"{opname}: input (N, C, *spatial) with {len(kernel)} spatial axes expected, got "
                             f"{format_shape(x.shape)} ({_describe(nodes)})")
        size = _spatial(opname, x, "input", nodes)
        for k, p in zip(kernel, padding):
            if p > k // 2:
                raise ShapeError(f"{opname}: padding {padding} must be at most half the kernel {kernel} "
                                 f"(as in PyTorch) ({_describe(nodes)})")
        out = _out_size(opname, size, kernel, stride, padding, (1,) * len(kernel), nodes, format_shape(x.shape))
        return x.shape[:2] + out
    return shape


def _same_as_input(nodes, kernel, stride, padding):
    g, x = nodes
    pooled = _pool_shape_of("max_pool_grad")((x,), kernel, stride, padding)
    if g.shape != pooled:
        raise ShapeError(f"max_pool_grad: cotangent {format_shape(g.shape)} does not fit the pooled shape "
                         f"{format_shape(pooled)} of input {format_shape(x.shape)} ({_describe(nodes)})")
    return x.shape


def _pool_of(nodes, kernel, stride, padding):
    h, x = nodes
    if h.shape != x.shape:
        raise ShapeError(f"max_pool_select: {format_shape(h.shape)} and {format_shape(x.shape)} differ "
                         f"({_describe(nodes)})")
    return _pool_shape_of("max_pool_select")((x,), kernel, stride, padding)


def _avg_pool_grad_shape(nodes, size, kernel, stride, padding):
    return nodes[0].shape[:2] + tuple(size)


# ================================================================= index notation
def _avg_pool_index(node, idx, ix):
    (x,) = node.inputs
    kernel, st, pd = (node.attr(a) for a in _POOL_ATTRS)
    n, c, *sp = idx
    ks = _letters(ix, kernel, _KERNEL_HINTS)
    pos = tuple(s * i + k - p for i, k, s, p in zip(sp, ks, st, pd))
    return ix.sum(ix.entry(x, (n, c) + pos), *ks) / math.prod(kernel)


def _avg_pool_grad_index(node, idx, ix):
    (g,) = node.inputs
    kernel, st, pd = (node.attr(a) for a in _POOL_ATTRS)
    n, c, *sp = idx
    ks = _letters(ix, kernel, _KERNEL_HINTS)
    body = _transposed(ix, lambda pos: ix.entry(g, (n, c) + pos), sp, ks, st, pd, (1,) * len(kernel))
    return ix.sum(body, *ks) / math.prod(kernel)


# ================================================================= VJPs and registration
def _pool_attrs(node) -> dict:
    return {a: node.attr(a) for a in _POOL_ATTRS}


_POOL = dict(fresh=True, preserves_dtype=True, attr_names=_POOL_ATTRS)
register(OpDef("max_pool", 1, _pool_shape_of("max_pool"), max_pool_forward, _sym_max_pool,
               vjp=lambda n, g, needs: (apply("max_pool_grad", g, n.inputs[0], **_pool_attrs(n)),),
               label="max pool", **_POOL))
register(OpDef("max_pool_grad", 2, _same_as_input, max_pool_grad, _no_expand("max_pool_grad"),
               vjp=lambda n, h, needs: (apply("max_pool_select", h, n.inputs[1], **_pool_attrs(n)), None),
               label="max pool∂X", **_POOL))
register(OpDef("max_pool_select", 2, _pool_of, max_pool_select, _no_expand("max_pool_select"),
               vjp=lambda n, g, needs: (apply("max_pool_grad", g, n.inputs[1], **_pool_attrs(n)), None),
               label="max pool select", **_POOL))
register(OpDef("avg_pool", 1, _pool_shape_of("avg_pool"), avg_pool_forward,
               lambda x, **a: objarray(avg_pool_forward(x, **a)),
               vjp=lambda n, g, needs: (apply("avg_pool_grad", g, size=n.inputs[0].shape[2:], **_pool_attrs(n)),),
               label="avg pool", index=_avg_pool_index, **_POOL))
register(OpDef("avg_pool_grad", 1, _avg_pool_grad_shape, avg_pool_grad,
               lambda g, **a: objarray(avg_pool_grad(g, **a)),
               vjp=lambda n, h, needs: (apply("avg_pool", h, **_pool_attrs(n)),),
               label="avg pool∂X", index=_avg_pool_grad_index,
               **{**_POOL, "attr_names": ("size",) + _POOL_ATTRS}))


# ================================================================= public functions
def _pool(op: str, opname: str, x, kernel_size, stride, padding, name) -> Node:
    x = as_node(x, op)
    if x.ndim != 4:
        raise ShapeError(f"{op}: input (N, C, H, W) expected, got {format_shape(x.shape)} ({x.describe()})")
    kernel = _ints(op, "kernel_size", kernel_size, 2, 1)
    attrs = dict(kernel=kernel, stride=kernel if stride is None else _ints(op, "stride", stride, 2, 1),
                 padding=_ints(op, "padding", padding, 2, 0))
    try:
        return apply(opname, x, name=name, **attrs)
    except ShapeError as e:
        raise ShapeError(f"{op}: {str(e).removeprefix(opname + ': ')}") from None


def max_pool2d(x, kernel_size, stride=None, padding=0, name: str | None = None) -> Node:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Padding reads as −∞ and may be at most half the kernel.  The gradient of each window goes to its
    first maximal entry in row-major order (PyTorch's choice on CPU): of tied entries, only the first
    gets it.  Overlapping windows add up.  A window holding a NaN pools to NaN and sends its gradient
    to the NaN, as in PyTorch.

    Parameters
    ----------
    x : input of shape ``(N, C, H, W)``.
    kernel_size : an int or a pair of ints.
    stride : an int or a pair; default ``kernel_size``.
    padding : an int or a pair.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x = sg.var("X", shape=("batch", 1, 4, 4))
    >>> sg.evaluate(sg.max_pool2d(x, 2), {"X": np.arange(16.0).reshape(1, 1, 4, 4)})
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    return _pool("max_pool2d", "max_pool", x, kernel_size, stride, padding, name)


def avg_pool2d(x, kernel_size, stride=None, padding=0, name: str | None = None) -> Node:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d`` (``count_include_pad=True``: padded
    zeros count in the mean).

    Parameters
    ----------
    x : input of shape ``(N, C, H, W)``.
    kernel_size : an int or a pair of ints.
    stride : an int or a pair; default ``kernel_size``.
    padding : an int or a pair (zeros, at most half the kernel).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x = sg.var("X", shape=("batch", 1, 4, 4))
    >>> sg.evaluate(sg.avg_pool2d(x, 2), {"X": np.arange(16.0).reshape(1, 1, 4, 4)})
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """
    return _pool("avg_pool2d", "avg_pool", x, kernel_size, stride, padding, name)


__all__ = ["max_pool2d", "avg_pool2d"]
