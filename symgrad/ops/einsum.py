"""Einstein summation, ``sg.einsum(spec, *xs)`` with NumPy's spec in explicit mode (``"ij,jk->ik"``).

One op, ``einsum``, contracts two operands; ``sg.einsum`` of more operands is a chain of them (left to
right, each keeping the indices still needed), and of one operand a sum and a transpose.  The op is
computed as a batched matrix product — indices of both operands and the output are the batch, indices
of both operands only are contracted, the rest are rows or columns, and an index of one operand only
is summed first — so it runs at BLAS speed (``np.einsum`` runs a C loop for batched contractions).

Its VJP in either operand is another ``einsum`` of the cotangent and the other operand
(``ij,jk->ik``: ``dA = einsum("ik,jk->ij", g, B)``); an index summed in one operand alone comes back
as a size-1 axis that broadcasts.  Its index notation is the spec itself:
``Z[i,k] = Σ_j A[i,j]·B[j,k]``.

Ellipses (``"...ij,...jk->...ik"``) and size-1 broadcasting are handled as in NumPy, by naming the
ellipsis dims and summing size-1 axes away before the contraction.  A repeated index within one operand
(a diagonal, ``"ii->i"``) and the implicit mode (no ``->``) are refused with a GraphError.
"""
from __future__ import annotations

import functools
import math
import string

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from .base import OpDef, apply, as_node, objarray, register
from .linalg import expand_dims, transpose
from .reduce import sum as _sum

LETTERS = string.ascii_letters


# ----------------------------------------------------------------- the binary op
@functools.lru_cache(maxsize=512)
def _plan(spec: str) -> tuple:
    """The roles of the indices of a two-operand spec ``"A,B->Z"`` (each index once per operand)."""
    ins, out = spec.split("->")
    a, b = ins.split(",")
    batch = [c for c in out if c in a and c in b]
    rows = [c for c in a if c in out and c not in b]
    cols = [c for c in b if c in out and c not in a]
    contract = [c for c in a if c in b and c not in out]
    return a, b, out, batch, rows, cols, contract


def einsum_pair(x, y, spec: str):
    """``np.einsum(spec, x, y)`` for two operands, as one batched matrix product (any dtype, object too)."""
    only_a, only_b, (x_t, x_perm, x_shape), (y_t, y_perm, y_shape), batched, z_shape, perm = \
        _recipe(spec, x.shape, y.shape)
    if only_a:
        x = x.sum(axis=only_a)
    if only_b:
        y = y.sum(axis=only_b)
    xa = np.transpose(x, x_perm).reshape(x_shape) if x_t else x.reshape(x_shape).swapaxes(-1, -2)
    yb = (np.transpose(y, y_perm).reshape(y_shape) if y_t else y.reshape(y_shape).swapaxes(-1, -2)).swapaxes(-1, -2)
    z = np.matmul(xa, yb) if batched else np.matmul(xa[0], yb[0])  # 2-D: BLAS at once, no batch loop
    z = z.reshape(z_shape)
    return z if perm is None else np.transpose(z, perm)


@functools.lru_cache(maxsize=1024)
def _recipe(spec: str, x_shape: tuple, y_shape: tuple) -> tuple:
    """What :func:`einsum_pair` does for operands of these shapes, worked out once: the axes summed
    out of one operand alone, each operand's layout as (batch, kept, contracted), the product's shape
    and the final permutation (None when the product is already in the output's order)."""
    a, b, out, batch, rows, cols, contract = _plan(spec)
    only_a = tuple(k for k, c in enumerate(a) if c not in b and c not in out)
    only_b = tuple(k for k, c in enumerate(b) if c not in a and c not in out)
    if only_a:
        x_shape = tuple(d for k, d in enumerate(x_shape) if k not in only_a)
        a = "".join(c for c in a if c in b or c in out)
    if only_b:
        y_shape = tuple(d for k, d in enumerate(y_shape) if k not in only_b)
        b = "".join(c for c in b if c in a or c in out)
    size = {c: n for c, n in zip(a, x_shape)}
    size.update(zip(b, y_shape))
    n = lambda group: math.prod(size[c] for c in group)  # noqa: E731
    order = batch + rows + cols
    perm = [order.index(c) for c in out]
    return (only_a, only_b, _operand(a, batch, rows, contract, n), _operand(b, batch, cols, contract, n),
            bool(batch), tuple(size[c] for c in order), None if perm == sorted(perm) else tuple(perm))


def _operand(letters: str, batch: list, keep: list, contract: list, n) -> tuple:
    """How an operand becomes (batch, keep, contract): ``(False, None, shape)`` when the contracted axes
    come before the kept ones (``tbi`` in ``tbi,tbk->ik``): it is reshaped in its own order (no copy
    when contiguous) to (batch, contract, keep) and read through a transposed view, which BLAS takes as
    it is; else ``(True, perm, shape)``: transposed by ``perm``, then reshaped."""
    perm = [letters.index(c) for c in batch + contract + keep]
    if perm == sorted(perm):
        return False, None, (n(batch), n(contract), n(keep))
    return True, tuple(letters.index(c) for c in batch + keep + contract), (n(batch), n(keep), n(contract))


def _einsum_shape(nodes, spec):
    x, y = nodes
    a, b, out, *_ = _plan(spec)
    size: dict = {}
    for letters, node in ((a, x), (b, y)):
        if len(letters) != node.ndim:
            raise ShapeError(f"einsum: subscripts {letters!r} for an operand of {node.ndim} axes "
                             f"{format_shape(node.shape)} in {spec!r} ({node.describe()})")
        for c, d in zip(letters, node.shape):
            if size.setdefault(c, d) != d:
                raise ShapeError(f"einsum: index {c!r} is {size[c]} in one operand and {d} in another "
                                 f"({spec!r}: {format_shape(x.shape)}, {format_shape(y.shape)}; "
                                 f"{x.describe()}, {y.describe()})")
    return tuple(size[c] for c in out)


def _einsum_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    x, y = n.inputs
    a, b, out, *_ = _plan(n.attr("spec"))

    def back(letters, other, other_letters):
        kept = "".join(c for c in letters if c in out or c in other_letters)
        d = apply("einsum", g, other, spec=f"{out},{other_letters}->{kept}")
        missing = tuple(k for k, c in enumerate(letters) if c not in kept)
        return expand_dims(d, missing) if missing else d  # an index summed in this operand alone broadcasts

    return (back(a, y, b) if needs[0] else None), (back(b, x, a) if needs[1] else None)


def _einsum_index(node, idx, ix):
    x, y = node.inputs
    a, b, out, *_ = _plan(node.attr("spec"))
    at = dict(zip(out, idx))
    sizes = dict(zip(a, x.shape))
    sizes.update(zip(b, y.shape))
    summed = [c for c in a + b if c not in out]
    summed = list(dict.fromkeys(summed))
    for c in summed:
        at[c] = ix.dummy(sizes[c], c)
    term = ix.entry(x, tuple(at[c] for c in a)) * ix.entry(y, tuple(at[c] for c in b))
    return ix.sum(term, *(at[c] for c in summed))


register(OpDef("einsum", 2, _einsum_shape, einsum_pair, lambda x, y, spec: objarray(einsum_pair(x, y, spec)),
               vjp=_einsum_vjp, label="einsum", attr_names=("spec",), index=_einsum_index, fresh=True,
               preserves_dtype=True))


# ----------------------------------------------------------------- the public function
def _parse(spec, nodes) -> tuple[list[str], str]:
    """Subscripts per operand and of the output, ellipses replaced by letters the spec does not use."""
    if not isinstance(spec, str):
        raise GraphError(f"einsum: spec must be a string such as 'ij,jk->ik', got {type(spec).__name__}")
    text = spec.replace(" ", "")
    if "->" not in text:
        raise GraphError(f"einsum: implicit mode is not supported; write the output subscripts after '->', "
                         f"e.g. 'ij,jk->ik' (got {spec!r})")
    ins, _, out = text.partition("->")
    if "->" in out:
        raise GraphError(f"einsum: spec {spec!r} has more than one '->'")
    parts = ins.split(",")
    if len(parts) != len(nodes):
        raise ShapeError(f"einsum: spec {spec!r} names {len(parts)} operands, got {len(nodes)}")
    for part in parts + [out]:
        bad = set(part.replace("...", "")) - set(LETTERS)
        if bad or part.count("...") > 1:
            what = f"character {sorted(bad)[0]!r}" if bad else "more than one '...'"
            raise GraphError(f"einsum: spec {spec!r} has {what} in {part!r}; subscripts are letters and one '...'")
    free = [c for c in reversed(LETTERS) if c not in text]
    width = 0
    for part, node in zip(parts, nodes):
        named = len(part.replace("...", ""))
        if node.ndim < named or ("..." not in part and node.ndim != named):
            raise ShapeError(f"einsum: subscripts {part!r} do not fit an operand of {node.ndim} axes "
                             f"{format_shape(node.shape)} in {spec!r} ({node.describe()})")
        if "..." in part:
            width = max(width, node.ndim - named)
    ell = "".join(free[:width])[::-1]  # right-aligned, as NumPy broadcasts them
    subs = []
    for part, node in zip(parts, nodes):
        k = node.ndim - len(part.replace("...", ""))
        subs.append(part.replace("...", ell[width - k:]) if "..." in part else part)
    if "..." in out:
        out = out.replace("...", ell)
    elif width and any("..." in p and n.ndim > len(p) - 3 for p, n in zip(parts, nodes)):
        raise GraphError(f"einsum: the operands of {spec!r} have dims under '...' but the output has no '...'")
    for k, s in enumerate(subs):
        for c in s:
            if s.count(c) > 1:
                raise GraphError(f"einsum: index {c!r} repeats in operand {k} ({parts[k]!r} of {spec!r}); "
                                 f"diagonals are not supported")
    for c in out:
        if out.count(c) > 1:
            raise GraphError(f"einsum: index {c!r} repeats in the output of {spec!r}")
        if not any(c in s for s in subs):
            raise GraphError(f"einsum: output index {c!r} of {spec!r} is in no operand")
    return subs, out


def _squeeze_broadcast(nodes, subs, spec) -> tuple[list[Node], list[str]]:
    """Size-1 axes whose index is bigger elsewhere (NumPy broadcasts them) are summed away (a squeeze)."""
    sizes: dict = {}
    for s, node in zip(subs, nodes):
        for c, d in zip(s, node.shape):
            if d != 1:
                if sizes.setdefault(c, d) != d:
                    raise ShapeError(f"einsum: index {c!r} is {sizes[c]} in one operand and {d} in another "
                                     f"({spec!r}: {', '.join(format_shape(n.shape) for n in nodes)})")
    out_nodes, out_subs = [], []
    for s, node in zip(subs, nodes):
        drop = tuple(k for k, (c, d) in enumerate(zip(s, node.shape)) if d == 1 and sizes.get(c, 1) != 1)
        if drop:
            node, s = _sum(node, axis=drop), "".join(c for k, c in enumerate(s) if k not in drop)
        out_nodes.append(node)
        out_subs.append(s)
    return out_nodes, out_subs


def _unary(x: Node, s: str, out: str, name) -> Node:
    drop = tuple(k for k, c in enumerate(s) if c not in out)
    if drop:
        x, s = _sum(x, axis=drop), "".join(c for c in s if c in out)
    missing = [c for c in out if c not in s]
    if missing:  # only after a size-1 broadcast: a letter of the output that the operand no longer has
        raise ShapeError(f"einsum: output index {missing[0]!r} has no operand axis")
    perm = tuple(s.index(c) for c in out)
    if perm != tuple(range(len(perm))):
        x = transpose(x, perm)
    return x.named(name) if name is not None and not x.is_leaf else x


def einsum(spec: str, *xs, name: str | None = None) -> Node:
    """Einstein summation with NumPy's spec, explicit mode: ``einsum("ij,jk->ik", A, B)`` is ``A @ B``.

    Every index in an operand but not in the output is summed; indices may be letters, and ``...``
    stands for leading dims that broadcast (as in NumPy).  Differentiable in every operand.

    Parameters
    ----------
    spec : ``"<operand subscripts>,...-><output subscripts>"``; the ``->`` part is required.
    xs : the operands (nodes or arrays).
    name : the result's name.

    Returns
    -------
    Node whose axes follow the output subscripts.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> Q = sg.var("Q", shape=("batch", 2, 3))
    >>> K = sg.var("K", shape=("batch", 4, 3))
    >>> S = sg.einsum("bqd,bkd->bqk", Q, K)
    >>> S.shape
    ('batch', 2, 4)
    >>> sg.evaluate(sg.einsum("i,i->", np.arange(3.0), np.arange(3.0)))
    array(5.)
    """
    if not xs:
        raise ShapeError(f"einsum: no operands for {spec!r}")
    nodes = [as_node(x, "einsum") for x in xs]
    subs, out = _parse(spec, nodes)
    nodes, subs = _squeeze_broadcast(nodes, subs, spec)
    acc, acc_s = nodes[0], subs[0]
    if len(nodes) == 1:
        return _unary(acc, acc_s, out, name)
    for k in range(1, len(nodes)):
        last = k == len(nodes) - 1
        later = "".join(subs[k + 1:]) + out
        keep = out if last else "".join(dict.fromkeys(c for c in acc_s + subs[k] if c in later))
        acc = apply("einsum", acc, nodes[k], spec=f"{acc_s},{subs[k]}->{keep}", name=name if last else None)
        acc_s = keep
    return acc


__all__ = ["einsum"]
