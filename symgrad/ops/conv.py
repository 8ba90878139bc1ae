"""Convolution and pooling over the spatial axes of ``(N, C, *spatial)`` tensors, with PyTorch's layout
and meaning: ``conv1d``/``conv2d`` (cross-correlation, weight ``(out, in/groups, *kernel)``, stride,
zero padding, dilation, groups), ``max_pool2d`` (padding reads as −∞) and ``avg_pool2d`` (padding
counts, as PyTorch's ``count_include_pad=True``).

The ops work for any number of spatial axes; the public functions fix it to one or two.  Each is
computed as strided windows of the (padded) input, ``sliding_window_view``, and one matrix product
(im2col) or one reduction over the window axes, never a Python loop over pixels; the backward ops
scatter back with one strided add per kernel offset (col2im).

Gradients are graph ops too, so they print, compile and differentiate again:

* ``conv`` → ``conv_grad_input`` (∂/∂X, a transposed convolution) and ``conv_grad_weight``
  (∂/∂W, Σ over batch and positions); the three are each other's VJPs (all are bilinear), so
  grad of grad works to any order.  The bias is added by broadcasting; its gradient is a sum.
* ``avg_pool`` ↔ ``avg_pool_grad`` (linear, each the other's VJP).
* ``max_pool`` → ``max_pool_grad`` (the cotangent sent to the first maximal entry of each window in
  row-major order, PyTorch's choice on CPU; a NaN wins, as there), whose VJP in the cotangent is
  ``max_pool_select`` (the entries at those same positions) and vice versa; in the pooled input
  both are piecewise constant, so no gradient flows there.

Index notation: conv, its two gradients and both average-pooling ops declare their entries
(``Z[n,o,i,j] = Σ_{c,p,q} W[o,c,p,q]·X[n,c,s·i+p,s·j+q]``, entries outside the input read as 0);
the max-pooling ops have no good SymPy form for "max over a window with −∞ padding" or "its arg max",
and print opaque (``max_pool(X)[n,c,i,j]``).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import sympy
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from .base import OpDef, apply, as_node, objarray, register
from .linalg import expand_dims

_CONV_ATTRS = ("stride", "padding", "dilation", "groups")
_POOL_ATTRS = ("kernel", "stride", "padding")


# ================================================================= NumPy kernels (any dtype, object too)
def _pad(x: np.ndarray, padding: tuple, fill) -> np.ndarray:
    """``x`` with ``padding[k]`` entries of ``fill`` on both sides of spatial axis ``k``."""
    if not any(padding):
        return x
    shape = x.shape[:2] + tuple(n + 2 * p for n, p in zip(x.shape[2:], padding))
    out = np.full(shape, fill, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(padding, x.shape[2:]))] = x
    return out


def _windows(x, kernel, stride, padding, dilation, fill=0) -> np.ndarray:
    """The view ``(N, C, *out, *kernel)`` of the windows the kernel visits (no copy besides the padding)."""
    xp = _pad(x, padding, fill)
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    view = sliding_window_view(xp, span, axis=tuple(range(2, xp.ndim)))
    every = (slice(None),) * 2
    return view[every + tuple(slice(None, None, s) for s in stride) + tuple(slice(None, None, d) for d in dilation)]


def _scatter(parts, lead, size, kernel, stride, padding, dilation, out_sp, dtype) -> np.ndarray:
    """col2im: Σ over kernel offsets of ``parts(k)`` (offset number ``k`` in row-major order), each of shape
    ``(*out, *lead)`` with lead = (N, C) last, added at the input positions that offset reads; the padding is
    cut off and the result returned as ``(N, C, *size)`` (a view of a spatial-first array: each add then
    runs over whole rows of N·C entries)."""
    d = len(size)
    out = np.zeros(tuple(n + 2 * p for n, p in zip(size, padding)) + tuple(lead), dtype=dtype)
    for k, offset in enumerate(_offsets(kernel)):
        out[tuple(slice(r * q, r * q + s * (o - 1) + 1, s)
                  for q, r, s, o in zip(offset, dilation, stride, out_sp))] += parts(k)
    if any(padding):
        out = out[tuple(slice(p, p + n) for p, n in zip(padding, size))]
    return out.transpose((d, d + 1) + tuple(range(d)))


def _channels_last(a: np.ndarray) -> np.ndarray:
    """``(N, C, *S)`` → ``(*S, N, C)``, a view."""
    d = a.ndim - 2
    return a.transpose(tuple(range(2, 2 + d)) + (0, 1))


def _cols(x, kernel, stride, padding, dilation, groups):
    """im2col: ``(N, groups, C/groups · Πkernel, Πout)`` (one copy of the windows) and the output's spatial shape."""
    d = len(kernel)
    win = _windows(x, kernel, stride, padding, dilation)
    out_sp = win.shape[2:2 + d]
    order = (0, 1) + tuple(range(2 + d, 2 + 2 * d)) + tuple(range(2, 2 + d))  # (N, C, *kernel, *out)
    n, c = x.shape[:2]
    cols = win.transpose(order).reshape(n, groups, c // groups * math.prod(kernel), math.prod(out_sp))
    return cols, out_sp


def conv_forward(x, w, stride, padding, dilation, groups):
    """Cross-correlation of ``x`` (N, C, *S) with ``w`` (O, C/groups, *K): one im2col and one matrix product."""
    kernel, o = w.shape[2:], w.shape[0]
    cols, out_sp = _cols(x, kernel, stride, padding, dilation, groups)
    out = np.matmul(w.reshape(groups, o // groups, -1), cols)  # (N, groups, O/groups, Πout)
    return out.reshape((x.shape[0], o) + out_sp)


def conv_grad_input(g, w, size, stride, padding, dilation, groups):
    """∂L/∂X from ∂L/∂Z = ``g`` (N, O, *out): per kernel offset one product g·W (all offsets in one batched
    matmul), then col2im onto an input of spatial ``size``."""
    kernel, (o, cg) = w.shape[2:], w.shape[:2]
    n, out_sp = g.shape[0], g.shape[2:]
    og, positions = o // groups, math.prod(out_sp)
    rows = g.reshape(n, groups, og, positions).transpose(1, 3, 0, 2).reshape(groups, positions * n, og)
    # (ΠK, groups, O/groups, C/groups), contiguous: matmul runs BLAS only on contiguous matrices
    per_offset = np.ascontiguousarray(w.reshape(groups, og, cg, -1).transpose(3, 0, 1, 2))
    parts = np.matmul(rows, per_offset)                                 # (ΠK, groups, Πout·N, C/groups)
    parts = parts.transpose(0, 2, 1, 3).reshape((-1,) + tuple(out_sp) + (n, cg * groups))
    return _scatter(lambda k: parts[k], (n, cg * groups), size, kernel, stride, padding, dilation, out_sp,
                    parts.dtype)


def conv_grad_weight(g, x, kernel, stride, padding, dilation, groups):
    """∂L/∂W from ∂L/∂Z = ``g``: Σ over the batch and the output positions of g times the windows of ``x``."""
    cols, out_sp = _cols(x, kernel, stride, padding, dilation, groups)
    n, o = g.shape[:2]
    gg = g.reshape(n, groups, o // groups, -1)
    out = np.matmul(gg, np.swapaxes(cols, -1, -2)).sum(axis=0)  # per sample a product, then Σ over samples
    return out.reshape((o, x.shape[1] // groups) + tuple(kernel))


def _sym_conv(x, w, **attrs):
    return objarray(conv_forward(x, w, **attrs))


def _sym_conv_grad_input(g, w, size, **attrs):
    return objarray(conv_grad_input(g, w, size, **attrs))


def _sym_conv_grad_weight(g, x, kernel, **attrs):
    return objarray(conv_grad_weight(g, x, kernel, **attrs))


# ---------------------------------------------------------------- pooling kernels
def _offsets(kernel) -> list:
    """The kernel's offsets in row-major order."""
    return list(itertools.product(*(range(k) for k in kernel)))


def _shifted(xp, offset, stride, out_sp):
    """The entries of (padded) ``xp`` that kernel offset ``offset`` reads, one per output position: a strided view."""
    at = tuple(slice(q, q + s * (o - 1) + 1, s) for q, s, o in zip(offset, stride, out_sp))
    return xp[(slice(None), slice(None)) + at]


def _pool_out(size, kernel, stride, padding) -> tuple:
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))


def max_pool_forward(x, kernel, stride, padding):
    """The max over each window (a running maximum over the kernel's offsets); padding reads as −∞ and never
    wins, since every window holds an input entry.  A NaN in a window gives NaN."""
    xp = _pad(x, padding, -np.inf)
    out_sp = _pool_out(x.shape[2:], kernel, stride, padding)
    offsets = _offsets(kernel)
    out = _shifted(xp, offsets[0], stride, out_sp).copy()
    for offset in offsets[1:]:
        np.maximum(out, _shifted(xp, offset, stride, out_sp), out=out)
    return out


def _argmax(x, kernel, stride, padding):
    """Per window, the number (row-major) of the offset of its first maximal entry; a NaN replaces the maximum
    found so far (as PyTorch's CPU kernel: ``val > max || isnan(val)``)."""
    xp = _pad(x, padding, -np.inf)
    out_sp = _pool_out(x.shape[2:], kernel, stride, padding)
    views = [_shifted(xp, offset, stride, out_sp) for offset in _offsets(kernel)]
    best = views[0].copy()
    arg = np.zeros(best.shape, dtype=np.int8 if len(views) <= 127 else np.int32)
    wins = np.empty(best.shape, dtype=bool)
    for k, v in enumerate(views[1:], start=1):  # three passes an offset: a window without NaN never needs more
        np.greater(v, best, out=wins)
        np.maximum(best, v, out=best)
        np.copyto(arg, k, where=wins)
    if not np.isnan(best).any():
        return arg
    best = views[0].copy()
    arg[...] = 0
    for k, v in enumerate(views[1:], start=1):
        wins = (v > best) | np.isnan(v)
        np.copyto(best, v, where=wins)
        np.copyto(arg, k, where=wins)
    return arg


def _disjoint(kernel, stride) -> bool:
    """Whether windows never overlap (each input entry lies in at most one window)."""
    return all(s >= k for k, s in zip(kernel, stride))


def _place(parts, lead, size, kernel, stride, padding, out_sp, dtype) -> np.ndarray:
    """col2im for windows that never overlap: ``parts(k, out)`` writes offset ``k``'s entries ``(N, C, *out)``
    straight into the strided view ``out`` of an ``(N, C, *size)`` result (zeros where no window reads)."""
    out = np.zeros(tuple(lead) + tuple(n + 2 * p for n, p in zip(size, padding)), dtype=dtype)
    for k, offset in enumerate(_offsets(kernel)):
        parts(k, _shifted(out, offset, stride, out_sp))
    if any(padding):
        out = out[(slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(padding, size))]
    return out


def max_pool_grad(g, x, kernel, stride, padding):
    """∂L/∂X: each window's cotangent ``g`` goes to its arg max (accumulated where windows overlap)."""
    arg = _argmax(x, kernel, stride, padding)
    dtype = np.result_type(g, x)
    if _disjoint(kernel, stride):
        return _place(lambda k, out: np.multiply(g, arg == k, out=out), g.shape[:2], x.shape[2:], kernel, stride,
                      padding, g.shape[2:], dtype)
    g_last, arg_last = _channels_last(g), _channels_last(arg)
    return _scatter(lambda k: g_last * (arg_last == k), g.shape[:2], x.shape[2:], kernel, stride, padding,
                    (1,) * len(kernel), g.shape[2:], dtype)


def max_pool_select(h, x, kernel, stride, padding):
    """The entries of ``h`` at the arg max of each window of ``x`` (max-pool's gradient, transposed)."""
    arg = _argmax(x, kernel, stride, padding)
    hp = _pad(h, padding, 0)
    out_sp = arg.shape[2:]
    out = np.zeros(arg.shape, dtype=np.result_type(h, x))
    for k, offset in enumerate(_offsets(kernel)):
        np.copyto(out, _shifted(hp, offset, stride, out_sp), where=arg == k)
    return out


def avg_pool_forward(x, kernel, stride, padding):
    """The mean over each window, padding counted as zeros (PyTorch's ``count_include_pad=True``); each entry
    is scaled before the sum, so a window of huge finite entries does not overflow."""
    xp = _pad(x, padding, 0)
    out_sp = _pool_out(x.shape[2:], kernel, stride, padding)
    offsets = _offsets(kernel)
    if x.dtype == object:
        return sum(_shifted(xp, o, stride, out_sp) for o in offsets) / math.prod(kernel)
    share = 1.0 / math.prod(kernel)
    total = _shifted(xp, offsets[0], stride, out_sp) * share
    part = np.empty_like(total)
    for offset in offsets[1:]:
        total += np.multiply(_shifted(xp, offset, stride, out_sp), share, out=part)
    return total


def avg_pool_grad(g, size, kernel, stride, padding):
    """∂L/∂X of average pooling: each window's cotangent spread evenly over it."""
    share = g * (1.0 / math.prod(kernel)) if g.dtype != object else g / math.prod(kernel)
    if _disjoint(kernel, stride) and share.dtype != object:
        return _place(lambda k, out: np.copyto(out, share), g.shape[:2], size, kernel, stride, padding, g.shape[2:],
                      share.dtype)
    share = _channels_last(share)
    return _scatter(lambda k: share, g.shape[:2], size, kernel, stride, padding, (1,) * len(kernel), g.shape[2:],
                    share.dtype)


def _sym_max_pool(x, kernel, stride, padding):
    win = _windows(x, kernel, stride, padding, (1,) * len(kernel), fill=-sympy.oo)
    flat = win.reshape(win.shape[:2 + len(kernel)] + (-1,))
    return objarray(np.frompyfunc(lambda a, b: sympy.Max(a, b), 2, 1).reduce(flat, axis=-1))


def _no_expand(opname: str):
    def sym(*args, **attrs):
        raise GraphError(f"{opname}: the arg max of a window has no closed SymPy form; expand=True is not "
                         f"supported for it (use sg.evaluate for its values)")
    return sym


# ================================================================= shape rules and arguments
def _describe(nodes) -> str:
    return ", ".join(n.describe() for n in nodes)


def _spatial(op: str, x: Node, what: str, nodes) -> tuple:
    sp = x.shape[2:]
    if not all(isinstance(s, int) for s in sp):
        raise ShapeError(f"{op}: the spatial dims of the {what} must be fixed ints, got {format_shape(x.shape)} "
                         f"({_describe(nodes)})")
    return sp


def _out_size(op, size, kernel, stride, padding, dilation, nodes, shapes) -> tuple:
    out = []
    for n, k, s, p, d in zip(size, kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        if n + 2 * p < span:
            raise ShapeError(f"{op}: kernel of extent {span} (size {k}, dilation {d}) is larger than the padded "
                             f"input ({n} + 2·{p}) for shapes {shapes} ({_describe(nodes)})")
        out.append((n + 2 * p - span) // s + 1)
    return tuple(out)


def _conv_shape(nodes, stride, padding, dilation, groups):
    x, w = nodes
    shapes = f"{format_shape(x.shape)} and {format_shape(w.shape)}"
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ShapeError(f"conv: input (N, C, *spatial) and weight (out, in/groups, *kernel) need the same rank "
                         f"≥ 3, got {shapes} ({_describe(nodes)})")
    d = x.ndim - 2
    if not all(isinstance(s, int) for s in w.shape):
        raise ShapeError(f"conv: the weight needs a fixed shape, got {format_shape(w.shape)} ({_describe(nodes)})")
    if not isinstance(x.shape[1], int):
        raise ShapeError(f"conv: the channel dim of the input must be a fixed int, got {format_shape(x.shape)} "
                         f"({_describe(nodes)})")
    size = _spatial("conv", x, "input", nodes)
    o, cg = w.shape[:2]
    if o % groups:
        raise ShapeError(f"conv: {o} output channels are not divisible by groups={groups} ({shapes}; "
                         f"{_describe(nodes)})")
    if x.shape[1] != cg * groups:
        raise ShapeError(f"conv: input has {x.shape[1]} channels but the weight expects {cg}·groups = "
                         f"{cg * groups} (shapes {shapes}, groups={groups}; {_describe(nodes)})")
    for name, v in zip(("stride", "padding", "dilation"), (stride, padding, dilation)):
        if len(v) != d:
            raise ShapeError(f"conv: {name} {v} has {len(v)} entries for {d} spatial axes ({_describe(nodes)})")
    out = _out_size("conv", size, w.shape[2:], stride, padding, dilation, nodes, shapes)
    return (x.shape[0], o) + out


def _check_cotangent(op, g, want, nodes):
    if g.shape[1:] != tuple(want[1:]) or g.ndim != len(want):
        raise ShapeError(f"{op}: cotangent of shape {format_shape(g.shape)} does not fit the convolution's output "
                         f"{format_shape(want)} ({_describe(nodes)})")


def _conv_grad_input_shape(nodes, size, stride, padding, dilation, groups):
    g, w = nodes
    x_shape = (g.shape[0], w.shape[1] * groups) + tuple(size)
    _check_cotangent("conv_grad_input", g, _conv_shape((_Shaped(x_shape), w), stride, padding, dilation, groups),
                     nodes)
    return x_shape


def _conv_grad_weight_shape(nodes, kernel, stride, padding, dilation, groups):
    g, x = nodes
    if g.ndim != x.ndim or not isinstance(g.shape[1], int) or not isinstance(x.shape[1], int) \
            or x.shape[1] % groups or g.shape[1] % groups:
        raise ShapeError(f"conv_grad_weight: cotangent {format_shape(g.shape)} and input {format_shape(x.shape)} "
                         f"do not fit groups={groups} ({_describe(nodes)})")
    w_shape = (g.shape[1], x.shape[1] // groups) + tuple(kernel)
    _check_cotangent("conv_grad_weight", g, _conv_shape((x, _Shaped(w_shape)), stride, padding, dilation, groups),
                     nodes)
    return w_shape


class _Shaped:
    """A stand-in with a shape, for checking a gradient op's shapes with the forward rule."""

    def __init__(self, shape):
        self.shape, self.ndim = tuple(shape), len(shape)

    def describe(self) -> str:
        return format_shape(self.shape)


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


def _ints(op: str, what: str, value, d: int, low: int) -> tuple:
    """An int or a sequence of ``d`` ints, each ≥ ``low``, as a tuple of ``d`` Python ints."""
    one = (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)))
    items = (value,) * d if one else value
    kind = "an int" if d == 1 else f"an int or a tuple of {d} ints"
    if not isinstance(items, (tuple, list)) or len(items) != d or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items):
        raise ShapeError(f"{op}: {what} must be {kind}, got {value!r}")
    if any(v < low for v in items):
        raise ShapeError(f"{op}: {what} must be ≥ {low}, got {value!r}")
    return tuple(int(v) for v in items)


# ================================================================= index notation
def _letters(ix, extents, hints):
    return tuple(ix.dummy(e, h) for e, h in zip(extents, hints))


_KERNEL_HINTS = ("p", "q", "r")


def _input_group(o, per_group_out, per_group_in):
    """The first input channel of output channel ``o``'s group."""
    return sympy.floor(o / per_group_out) * per_group_in


def _conv_index(node, idx, ix):
    x, w = node.inputs
    st, pd, dl, groups = (node.attr(a) for a in _CONV_ATTRS)
    o_total, cg = w.shape[:2]
    n, o, *sp = idx
    ks = _letters(ix, w.shape[2:], _KERNEL_HINTS)
    pos = tuple(s * i + d * k - p for i, k, s, p, d in zip(sp, ks, st, pd, dl))
    summed = list(ks)
    if cg == 1:
        c_w, c_x = sympy.Integer(0), (_input_group(o, o_total // groups, 1) if groups > 1 else sympy.Integer(0))
    else:
        c = ix.dummy(cg, "c")
        summed.insert(0, c)
        c_w, c_x = c, (c if groups == 1 else _input_group(o, o_total // groups, cg) + c)
    return ix.sum(ix.entry(w, (o, c_w) + ks) * ix.entry(x, (n, c_x) + pos), *summed)


def _conv_grad_weight_index(node, idx, ix):
    g, x = node.inputs
    st, pd, dl, groups = (node.attr(a) for a in _CONV_ATTRS)
    o, c, *ks = idx
    n = ix.dummy(g.shape[0], "n")
    sp = _letters(ix, g.shape[2:], ("i", "j", "k"))
    pos = tuple(s * i + d * k - p for i, k, s, p, d in zip(sp, ks, st, pd, dl))
    cg = x.shape[1] // groups
    c_x = c if groups == 1 else _input_group(o, g.shape[1] // groups, cg) + c
    return ix.sum(ix.entry(g, (n, o) + sp) * ix.entry(x, (n, c_x) + pos), n, *sp)


def _transposed(ix, term_at, sp, ks, stride, padding, dilation):
    """Σ over kernel offsets ``ks`` of ``term_at(positions)`` where output position = (h + pad − d·k)/s; with a
    stride, offsets that land between output positions contribute 0 (a Piecewise)."""
    pos = tuple((h + p - d * k) / s if s != 1 else h + p - d * k
                for h, k, s, p, d in zip(sp, ks, stride, padding, dilation))
    term = term_at(pos)
    exact = [sympy.Eq(sympy.Mod(h + p - d * k, s), 0) for h, k, s, p, d in zip(sp, ks, stride, padding, dilation)
             if s != 1]
    if exact:
        term = sympy.Piecewise((term, sympy.And(*exact)), (0, True))
    return term


def _conv_grad_input_index(node, idx, ix):
    g, w = node.inputs
    st, pd, dl, groups = (node.attr(a) for a in _CONV_ATTRS)
    n, c, *sp = idx
    o_total, cg = w.shape[:2]
    og = o_total // groups
    ks = _letters(ix, w.shape[2:], _KERNEL_HINTS)
    summed = list(ks)
    c_w = c if groups == 1 else sympy.Mod(c, cg)
    if og == 1 and groups > 1:
        o = sympy.floor(c / cg)
    else:
        o = ix.dummy(og, "o")
        summed.insert(0, o)
        if groups > 1:
            o = sympy.floor(c / cg) * og + o
    body = _transposed(ix, lambda pos: ix.entry(g, (n, o) + pos) * ix.entry(w, (o, c_w) + ks), sp, ks, st, pd, dl)
    return ix.sum(body, *summed)


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


# ================================================================= VJPs
def _conv_attrs(node) -> dict:
    return {a: node.attr(a) for a in _CONV_ATTRS}


def _conv_vjp(n, g, needs):
    x, w = n.inputs
    a = _conv_attrs(n)
    dx = apply("conv_grad_input", g, w, size=x.shape[2:], **a) if needs[0] else None
    dw = apply("conv_grad_weight", g, x, kernel=w.shape[2:], **a) if needs[1] else None
    return dx, dw


def _conv_grad_input_vjp(n, h, needs):
    g, w = n.inputs
    a = _conv_attrs(n)
    dg = apply("conv", h, w, **a) if needs[0] else None
    dw = apply("conv_grad_weight", g, h, kernel=w.shape[2:], **a) if needs[1] else None
    return dg, dw


def _conv_grad_weight_vjp(n, h, needs):
    g, x = n.inputs
    a = _conv_attrs(n)
    dg = apply("conv", x, h, **a) if needs[0] else None
    dx = apply("conv_grad_input", g, h, size=x.shape[2:], **a) if needs[1] else None
    return dg, dx


def _pool_attrs(node) -> dict:
    return {a: node.attr(a) for a in _POOL_ATTRS}


_CONV = dict(fresh=True, preserves_dtype=True, attr_names=_CONV_ATTRS)
register(OpDef("conv", 2, _conv_shape, conv_forward, _sym_conv, vjp=_conv_vjp, label="conv",
               index=_conv_index, **_CONV))
register(OpDef("conv_grad_input", 2, _conv_grad_input_shape, conv_grad_input, _sym_conv_grad_input,
               vjp=_conv_grad_input_vjp, label="conv∂X", index=_conv_grad_input_index,
               **{**_CONV, "attr_names": ("size",) + _CONV_ATTRS}))
register(OpDef("conv_grad_weight", 2, _conv_grad_weight_shape, conv_grad_weight, _sym_conv_grad_weight,
               vjp=_conv_grad_weight_vjp, label="conv∂W", index=_conv_grad_weight_index,
               **{**_CONV, "attr_names": ("kernel",) + _CONV_ATTRS}))

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
def _conv(op: str, d: int, x, w, b, stride, padding, dilation, groups, name) -> Node:
    x, w = as_node(x, op), as_node(w, op)
    if x.ndim != d + 2 or w.ndim != d + 2:
        layout = "(N, C, L)" if d == 1 else "(N, C, H, W)"
        kernel = "(out, in/groups, k)" if d == 1 else "(out, in/groups, kh, kw)"
        raise ShapeError(f"{op}: input {layout} and weight {kernel} expected, got {format_shape(x.shape)} and "
                         f"{format_shape(w.shape)} ({x.describe()}, {w.describe()})")
    attrs = dict(stride=_ints(op, "stride", stride, d, 1), padding=_ints(op, "padding", padding, d, 0),
                 dilation=_ints(op, "dilation", dilation, d, 1), groups=_ints(op, "groups", groups, 1, 1)[0])
    try:
        z = apply("conv", x, w, name=None if b is not None else name, **attrs)
    except ShapeError as e:
        raise ShapeError(f"{op}: {str(e).removeprefix('conv: ')}") from None
    if b is None:
        return z
    b = as_node(b, op)
    if b.shape != (w.shape[0],):
        raise ShapeError(f"{op}: bias of shape {format_shape(b.shape)} does not match the {w.shape[0]} output "
                         f"channels of weight {format_shape(w.shape)} ({b.describe()}, {w.describe()})")
    return apply("add", z, expand_dims(b, tuple(range(1, d + 1))), name=name)


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1, name: str | None = None) -> Node:
    """1-D cross-correlation, as ``torch.nn.functional.conv1d``.

    Parameters
    ----------
    x : input of shape ``(N, C, L)`` (``N`` may be a named dim such as ``"batch"``).
    w : weight of shape ``(out, C/groups, k)``.
    b : optional bias of shape ``(out,)``.
    stride, padding, dilation : ints (padding adds zeros on both ends).
    groups : channels are split into this many groups, each convolved with its own filters.

    Returns
    -------
    Node of shape ``(N, out, L_out)``, ``L_out = ⌊(L + 2·padding − dilation·(k − 1) − 1) / stride⌋ + 1``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x = sg.var("x", shape=("batch", 1, 5))
    >>> w = sg.param("w", np.array([[[1.0, 0.0, -1.0]]]))
    >>> sg.evaluate(sg.conv1d(x, w), {"x": np.arange(5.0).reshape(1, 1, 5)})
    array([[[-2., -2., -2.]]])
    """
    return _conv("conv1d", 1, x, w, b, stride, padding, dilation, groups, name)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1, name: str | None = None) -> Node:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    ``Z[n,o,i,j] = b[o] + Σ_{c,p,q} W[o,c,p,q]·X[n, c, s·i + d·p − pad, s·j + d·q − pad]``, entries outside
    the input read as 0 (with groups, ``c`` runs over the channels of output channel ``o``'s group).

    Parameters
    ----------
    x : input of shape ``(N, C, H, W)`` (``N`` may be a named dim such as ``"batch"``).
    w : weight of shape ``(out, C/groups, kh, kw)``.
    b : optional bias of shape ``(out,)``.
    stride, padding, dilation : an int or a pair of ints (rows, columns).
    groups : channels are split into this many groups, each convolved with its own filters.

    Returns
    -------
    Node of shape ``(N, out, H_out, W_out)``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x = sg.var("X", shape=("batch", 1, 3, 3))
    >>> w = sg.param("W", np.ones((2, 1, 2, 2)))
    >>> z = sg.conv2d(x, w, b=np.array([0.0, 10.0]), name="Z")
    >>> z.shape
    ('batch', 2, 2, 2)
    >>> sg.evaluate(z, {"X": np.arange(9.0).reshape(1, 1, 3, 3)})[0, 1]
    array([[18., 22.],
           [30., 34.]])
    """
    return _conv("conv2d", 2, x, w, b, stride, padding, dilation, groups, name)


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


__all__ = ["conv1d", "conv2d", "max_pool2d", "avg_pool2d"]
