"""Convolution and pooling over the spatial axes of ``(N, C, *spatial)`` tensors, with PyTorch's layout
and meaning: ``conv1d``/``conv2d`` (cross-correlation, weight ``(out, in/groups, *kernel)``, stride,
zero padding, dilation, groups), ``max_pool2d`` (padding reads as −∞) and ``avg_pool2d`` (padding
counts, as PyTorch's ``count_include_pad=True``).

The ops work for any number of spatial axes; the public functions fix it to one or two.  Each is
computed as strided windows of the (padded) input, ``sliding_window_view``, and one matrix product per
group (im2col) or one reduction over the window axes, never a Python loop over pixels; the backward ops
scatter back with one strided add per kernel offset (col2im).  The conv kernels work on the batch-last
layout ``(C, *spatial, N)`` and return ``(N, C, *spatial)`` views of it, which the next kernel reads
without a copy (pooling keeps its input's layout).

In compiled code a conv and its ∂/∂W share one im2col (the internal ops ``unfold``, ``conv_unfolded``,
``conv_grad_weight_unfolded``, by compile-time rewrites), and in a training step every kernel keeps its
result and temporaries in a :class:`~symgrad.runtime.Workspace` between calls (``work=``), so a step
allocates no large arrays.

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

The pooling ops and ``max_pool2d``/``avg_pool2d`` are declared in :mod:`symgrad.ops.pool` (re-exported here).
"""
from __future__ import annotations

import math

import numpy as np
import sympy

from ..errors import ShapeError
from ..graph import Node, format_shape
from .base import OpDef, apply, as_node, objarray, register
from .conv_kernels import (conv_forward, conv_grad_input, conv_grad_weight, conv_grad_weight_unfolded, conv_unfolded,
                           unfold)
from .kernels import _internal
from .linalg import expand_dims

_CONV_ATTRS = ("stride", "padding", "dilation", "groups")


def _sym_conv(x, w, **attrs):
    return objarray(conv_forward(x, w, **attrs))


def _sym_conv_grad_input(g, w, size, **attrs):
    return objarray(conv_grad_input(g, w, size, **attrs))


def _sym_conv_grad_weight(g, x, kernel, **attrs):
    return objarray(conv_grad_weight(g, x, kernel, **attrs))


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


# ================================================================= compiled code: one im2col for conv and ∂/∂W
_UNFOLD = _internal("unfold", 1, unfold, "unfold", preserves_dtype=True)
_CONV_UNFOLDED = _internal("conv_unfolded", 2, conv_unfolded, "conv", preserves_dtype=True)
_GRAD_WEIGHT_UNFOLDED = _internal("conv_grad_weight_unfolded", 2, conv_grad_weight_unfolded, "conv∂W",
                                  preserves_dtype=True)


def _unfolded(x, kernel: tuple, attrs: dict, out_sp: tuple, ir):
    """The value ``unfold(x)``, made once for a conv and the ∂/∂W that read the same input the same way."""
    a = dict(kernel=tuple(kernel), **{k: attrs[k] for k in _CONV_ATTRS})
    groups = a["groups"]
    shape = (groups, x.shape[1] // groups * math.prod(kernel), math.prod(out_sp), x.shape[0])
    return ir.make(_UNFOLD, [x], tuple(sorted(a.items())), shape)


def _rewrite_conv(v, args, shape, ir):
    """conv(x, w) → conv_unfolded(w, unfold(x)): the im2col is shared with the ∂/∂W of the backward pass."""
    x, w = args
    cols = _unfolded(x, w.shape[2:], dict(v.attrs), tuple(shape[2:]), ir)
    return ir.make(_CONV_UNFOLDED, [w, cols], (("out", tuple(shape[2:])),), shape)


def _rewrite_conv_grad_weight(v, args, shape, ir):
    """conv_grad_weight(g, x) → conv_grad_weight_unfolded(g, unfold(x)), the unfold(x) of the forward conv."""
    g, x = args
    attrs = dict(v.attrs)
    cols = _unfolded(x, attrs["kernel"], attrs, tuple(g.shape[2:]), ir)
    return ir.make(_GRAD_WEIGHT_UNFOLDED, [g, cols], (("kernel", attrs["kernel"]),), shape)


_CONV = dict(fresh=True, preserves_dtype=True, attr_names=_CONV_ATTRS)
register(OpDef("conv", 2, _conv_shape, conv_forward, _sym_conv, vjp=_conv_vjp, label="conv",
               index=_conv_index, rewrite=_rewrite_conv, **_CONV))
register(OpDef("conv_grad_input", 2, _conv_grad_input_shape, conv_grad_input, _sym_conv_grad_input,
               vjp=_conv_grad_input_vjp, label="conv∂X", index=_conv_grad_input_index,
               **{**_CONV, "attr_names": ("size",) + _CONV_ATTRS}))
register(OpDef("conv_grad_weight", 2, _conv_grad_weight_shape, conv_grad_weight, _sym_conv_grad_weight,
               vjp=_conv_grad_weight_vjp, label="conv∂W", index=_conv_grad_weight_index,
               rewrite=_rewrite_conv_grad_weight, **{**_CONV, "attr_names": ("kernel",) + _CONV_ATTRS}))


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


# the pooling ops live in pool.py; imported here so that importing conv registers them as before
from .pool import avg_pool2d, max_pool2d  # noqa: E402

__all__ = ["conv1d", "conv2d", "max_pool2d", "avg_pool2d"]
