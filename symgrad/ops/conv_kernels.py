"""The NumPy kernels of convolution (and the window helpers pooling shares): im2col, one matrix product
per group, col2im, on the batch-last layout ``(C, *spatial, N)``; see :mod:`symgrad.ops.conv`, where the
ops are declared.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ..runtime import Workspace, empty, workspace_kernel, zeros


# ================================================================= NumPy kernels (any dtype, object too)
# The kernels compute on the batch-last layout (C, *S, N): im2col then copies runs of whole rows of N
# entries (Wo·N when the stride is 1), one matrix product per group covers the batch, col2im adds whole
# slabs, and the results, returned as (N, C, *S) views of (C, *S, N) arrays, are read by the next kernel
# without a copy.  Each kernel takes ``work``, a Workspace (symgrad.runtime) that a training step keeps
# between calls, or None (evaluation, plain compiled functions): then every array is new.
def _pad(x: np.ndarray, padding: tuple, fill, work: Workspace | None = None, axis: int = 2) -> np.ndarray:
    """``x`` with ``padding[k]`` entries of ``fill`` on both sides of axis ``axis + k``."""
    if not any(padding):
        return x
    d = len(padding)
    spatial = slice(axis, axis + d)
    shape = list(x.shape)
    shape[spatial] = [n + 2 * p for n, p in zip(x.shape[spatial], padding)]
    out = empty(work, "pad", tuple(shape), x.dtype)
    out.fill(fill)
    inner = [slice(None)] * x.ndim
    inner[spatial] = [slice(p, p + n) for p, n in zip(padding, x.shape[spatial])]
    out[tuple(inner)] = x
    return out


def _layout(ref: np.ndarray) -> tuple:
    """The axes of ``ref`` from outermost to innermost in memory (size-1 axes where they stand)."""
    strides, shape = ref.strides, ref.shape
    return tuple(sorted(range(ref.ndim), key=lambda a: -abs(strides[a]) if shape[a] > 1 else 0))


def _like(work: Workspace | None, tag: str, ref, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` whose axes lie in memory in the order of ``ref``'s (an array of the
    same rank, or its :func:`_layout`): results of a pooling kernel keep its input's layout, so that the ops
    between them run over memory in order."""
    order = ref if isinstance(ref, tuple) else _layout(ref)
    mem = empty(work, tag, tuple(shape[a] for a in order), dtype)
    if order == tuple(range(len(order))):
        return mem
    inverse = [0] * len(order)
    for i, a in enumerate(order):
        inverse[a] = i
    return mem.transpose(inverse)


def _batch_last(a: np.ndarray, work: Workspace | None = None, tag: str = "batch_last") -> np.ndarray:
    """``a`` (N, C, *S) as a C-contiguous ``(C, *S, N)`` array: a view when ``a`` is laid out so (as the
    conv kernels' results are), else a copy."""
    view = a.transpose(tuple(range(1, a.ndim)) + (0,))
    if view.flags.c_contiguous:
        return view
    out = empty(work, tag, view.shape, a.dtype)
    np.copyto(out, view)
    return out


def _batch_first(m: np.ndarray) -> np.ndarray:
    """``(C, *S, N)`` → ``(N, C, *S)``, a view."""
    return m.transpose((m.ndim - 1,) + tuple(range(m.ndim - 1)))


def _windows(x, kernel, stride, padding, dilation, fill=0, work: Workspace | None = None) -> np.ndarray:
    """The view ``(N, C, *out, *kernel)`` of the windows the kernel visits (no copy besides the padding)."""
    xp = _pad(x, padding, fill, work)
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    view = sliding_window_view(xp, span, axis=tuple(range(2, xp.ndim)))
    every = (slice(None),) * 2
    return view[every + tuple(slice(None, None, s) for s in stride) + tuple(slice(None, None, d) for d in dilation)]


def _reach(offset, stride, dilation, out_sp) -> tuple:
    """The slices of the (padded) spatial axes that kernel offset ``offset`` reads, one entry per output position."""
    return tuple(slice(r * q, r * q + s * (o - 1) + 1, s) for q, r, s, o in zip(offset, dilation, stride, out_sp))


def _scatter(parts, channels: int, n: int, size, kernel, stride, padding, dilation, out_sp, dtype,
             work: Workspace | None = None) -> np.ndarray:
    """col2im: Σ over kernel offsets of ``parts(k)`` (offset number ``k`` in row-major order), each of shape
    ``(C, *out, N)``, added at the input positions that offset reads; the padding is cut off and the result
    returned as ``(N, C, *size)`` (a view of a batch-last array: each add runs over rows of whole N entries)."""
    acc = zeros(work, "acc", (channels,) + tuple(s + 2 * p for s, p in zip(size, padding)) + (n,), dtype)
    every = (slice(None),)
    for k, offset in enumerate(_offsets(kernel)):
        acc[every + _reach(offset, stride, dilation, out_sp)] += parts(k)
    if any(padding):
        acc = acc[every + tuple(slice(p, p + s) for p, s in zip(padding, size))]
    return _batch_first(acc)


def _cols(x, kernel, stride, padding, dilation, groups, work: Workspace | None = None):
    """im2col: ``(groups, C/groups · Πkernel, Πout · N)``, rows ``(c, *kernel)`` and columns ``(*out, n)``
    (one copy of the windows of the batch-last input), and the output's spatial shape."""
    xp = _pad(_batch_last(x, work), padding, 0, work, axis=1)    # (C, *S, N)
    st, span = xp.strides, [r * (k - 1) + 1 for k, r in zip(kernel, dilation)]
    out_sp = tuple((n - e) // s + 1 for n, e, s in zip(xp.shape[1:-1], span, stride))
    src = _strided(xp, (xp.shape[0],) + tuple(kernel) + out_sp + (xp.shape[-1],),   # (C, *K, *out, N)
                   (st[0],) + tuple(r * t for r, t in zip(dilation, st[1:-1]))
                   + tuple(s * t for s, t in zip(stride, st[1:-1])) + (st[-1],))
    cols = empty(work, "cols", src.shape, x.dtype)
    np.copyto(cols, src)
    c, n = x.shape[1], x.shape[0]
    return cols.reshape(groups, c // groups * math.prod(kernel), math.prod(out_sp) * n), out_sp


def _strided(a: np.ndarray, shape: tuple, strides: tuple) -> np.ndarray:
    """The view of ``a`` (C-contiguous) with ``shape`` and ``strides``, to be read only (``as_strided`` without
    its cost per call, where the buffer protocol allows)."""
    if a.dtype != object and a.flags.c_contiguous:
        return np.ndarray(shape, a.dtype, a, 0, strides)
    return as_strided(a, shape, strides, writeable=False)


def _by_group(a: np.ndarray, groups: int, work: Workspace | None = None, tag: str = "batch_last") -> np.ndarray:
    """``a`` (N, C, *S) as the matrices ``(groups, C/groups, ΠS · N)`` of its batch-last layout."""
    return _batch_last(a, work, tag).reshape(groups, a.shape[1] // groups, -1)


@workspace_kernel
def conv_forward(x, w, stride, padding, dilation, groups, work: Workspace | None = None):
    """Cross-correlation of ``x`` (N, C, *S) with ``w`` (O, C/groups, *K): one im2col and one matrix product
    per group; the result ``(N, O, *out)`` is a view of a batch-last ``(O, *out, N)`` array."""
    cols, out_sp = _cols(x, w.shape[2:], stride, padding, dilation, groups, work)
    return _conv_product(w, cols, x.shape[0], out_sp, work)


def _conv_product(w, cols, n: int, out_sp: tuple, work: Workspace | None = None) -> np.ndarray:
    """``w`` times the im2col matrices ``cols``, as ``(N, O, *out)``."""
    groups, o = cols.shape[0], w.shape[0]
    out = empty(work, "out", (groups, o // groups, cols.shape[-1]), np.result_type(w, cols))
    np.matmul(w.reshape(groups, o // groups, -1), cols, out=out)
    return _batch_first(out.reshape((o,) + tuple(out_sp) + (n,)))


@workspace_kernel
def conv_grad_input(g, w, size, stride, padding, dilation, groups, work: Workspace | None = None):
    """∂L/∂X from ∂L/∂Z = ``g`` (N, O, *out): the columns Wᵀg (one matrix product per group), then col2im onto
    an input of spatial ``size``."""
    kernel, (o, cg) = w.shape[2:], w.shape[:2]
    n, out_sp = g.shape[0], g.shape[2:]
    rows = _by_group(g, groups, work)                                             # (groups, O/groups, Πout·N)
    wt = np.swapaxes(w.reshape(groups, o // groups, -1), -1, -2)                  # (groups, C/groups·ΠK, O/groups)
    cols = empty(work, "cols", (groups, wt.shape[1], rows.shape[-1]), np.result_type(g, w))
    np.matmul(wt, rows, out=cols)
    cols = cols.reshape((cg * groups, math.prod(kernel)) + tuple(out_sp) + (n,))  # (C, ΠK, *out, N)
    return _scatter(lambda k: cols[:, k], cg * groups, n, size, kernel, stride, padding, dilation, out_sp,
                    cols.dtype, work)


@workspace_kernel
def conv_grad_weight(g, x, kernel, stride, padding, dilation, groups, work: Workspace | None = None):
    """∂L/∂W from ∂L/∂Z = ``g``: Σ over the batch and the output positions of g times the windows of ``x``,
    one matrix product per group."""
    cols, _ = _cols(x, kernel, stride, padding, dilation, groups, work)
    return _weight_product(g, cols, x.shape[1] // groups, kernel, work)


def _weight_product(g, cols, cg: int, kernel: tuple, work: Workspace | None = None) -> np.ndarray:
    """``g`` (N, O, *out) times the transposed im2col matrices ``cols``: ``(O, C/groups, *kernel)``."""
    rows = _by_group(g, cols.shape[0], work, "rows")
    return np.matmul(rows, np.swapaxes(cols, -1, -2)).reshape((g.shape[1], cg) + tuple(kernel))


def _offsets(kernel) -> list:
    """The kernel's offsets in row-major order."""
    return list(itertools.product(*(range(k) for k in kernel)))


# ================================================================= compiled code: one im2col for conv and ∂/∂W
@workspace_kernel
def unfold(x, kernel, stride, padding, dilation, groups, work: Workspace | None = None):
    """im2col of ``x`` as a value of compiled code: ``(groups, C/groups · Πkernel, Πout, N)``."""
    cols, out_sp = _cols(x, kernel, stride, padding, dilation, groups, work)
    return cols.reshape(cols.shape[:2] + (math.prod(out_sp), x.shape[0]))


@workspace_kernel
def conv_unfolded(w, cols, out, work: Workspace | None = None):
    """The convolution from the :func:`unfold` of its input, of spatial output shape ``out``."""
    groups, ck, positions, n = cols.shape
    return _conv_product(w, cols.reshape(groups, ck, positions * n), n, out, work)


@workspace_kernel
def conv_grad_weight_unfolded(g, cols, kernel, work: Workspace | None = None):
    """∂L/∂W from ∂L/∂Z = ``g`` and the :func:`unfold` of the input."""
    groups, ck, positions, n = cols.shape
    return _weight_product(g, cols.reshape(groups, ck, positions * n), ck // math.prod(kernel), kernel, work)
