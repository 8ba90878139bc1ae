"""Attention: :func:`attention` (scaled dot-product), :class:`MultiheadAttention`, and position
information for a sequence: :func:`sinusoidal_positions` and a learned :class:`PositionalEmbedding`.

Everything is built from public ops (``@``, ``softmax``, ``masked_fill``, ``reshape``,
``transpose``), so attention prints, draws, differentiates and compiles like any other graph; the
intermediate nodes are named (``<name>.scores``, ``<name>.weights``) so the formulas read as the
textbook's: ``scores = Q·Kᵀ/√d``, ``weights = softmax(scores)``, ``out = weights·V``.

Masks follow :func:`torch.nn.functional.scaled_dot_product_attention`:

* a **float** mask (a node, or a float array) is **added** to the scores; ``-inf`` entries keep a
  query from a key;
* a **boolean** mask (a bool array, or an int node or array) says which query–key pairs **take part**:
  True (non-zero) attends, False (zero) is filled with ``-inf`` by ``masked_fill`` (never a product
  with the mask, so no ``0·∞`` NaN).  This is the opposite of ``torch.nn.MultiheadAttention``'s
  ``attn_mask``, where True means "may not attend"; symgrad uses the one convention everywhere.

A row whose every key is masked has no softmax: its weights are NaN, as in PyTorch.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from ..init import resolve, to_config
from ..ops import as_node, const, equal, getitem, masked_fill, softmax, transpose, triu
from ..ops.linalg import broadcast_like
from .batchnorm import Dropout, _probability
from .layers import _check_flag, _check_size, derive_seeds, init_param
from .module import Module

__all__ = ["attention", "attention_weights", "MultiheadAttention", "sinusoidal_positions", "PositionalEmbedding"]


# ------------------------------------------------------------------ the function
def _swap_last(x: Node) -> Node:
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, axes)


def _future(scores: Node, name: str) -> Node:
    """1 where key j comes after query i (j > i, top-left aligned as PyTorch's ``is_causal``), else 0."""
    lq, lk = scores.shape[-2:]
    if isinstance(lq, int) and isinstance(lk, int):
        return const(np.triu(np.ones((lq, lk)), k=1), name=f"{name}.future")
    # a length known only at run time: the strict upper triangle of ones shaped like the scores
    return triu(broadcast_like(const(1.0), scores), k=1, name=f"{name}.future")


def _apply_mask(scores: Node, mask: Any, name: str) -> Node:
    """The scores with ``mask`` applied: a float mask added, a boolean one's False entries filled with −∞."""
    if isinstance(mask, Node):
        if mask.dtype == "int":  # boolean: non-zero attends
            blocked = equal(mask, 0.0)
            return _broadcast_check(scores, mask, name, lambda: masked_fill(scores, blocked, -np.inf))
        return _broadcast_check(scores, mask, name, lambda: scores + mask)
    try:
        arr = np.asarray(mask)
    except (TypeError, ValueError) as e:
        raise GraphError(f"attention {name!r}: mask must be a node or an array, got {type(mask).__name__} "
                         f"({e})") from None
    if arr.dtype.kind not in "biuf":
        raise GraphError(f"attention {name!r}: mask must be boolean (True = attend) or float (added), "
                         f"got an array of dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        added = const(arr, name=f"{name}.mask")
        return _broadcast_check(scores, added, name, lambda: scores + added)
    # the pairs that may not attend, as 1.0: a const, so the graph holds no comparison
    blocked = const((arr == 0).astype(np.float64), name=f"{name}.blocked")
    return _broadcast_check(scores, blocked, name, lambda: masked_fill(scores, blocked, -np.inf))


def _broadcast_check(scores: Node, mask: Node, name: str, build) -> Node:
    try:
        out = build()
    except ShapeError:
        raise ShapeError(f"attention {name!r}: mask of shape {format_shape(mask.shape)} does not broadcast against "
                         f"the scores of shape {format_shape(scores.shape)} (…, queries, keys)") from None
    if out.shape != scores.shape:
        raise ShapeError(f"attention {name!r}: mask of shape {format_shape(mask.shape)} would enlarge the scores of "
                         f"shape {format_shape(scores.shape)}")
    return out


def attention_weights(q: Any, k: Any, mask: Any = None, causal: bool = False, *, scale: float | None = None,
                      name: str = "attn") -> Node:
    """``softmax(q·kᵀ·scale + mask)`` over the keys: the attention weights, named ``<name>.weights``
    (the scores before the softmax are ``<name>.scores``).  Arguments as :func:`attention`.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> q = sg.const(np.zeros((3, 2)))
    >>> sg.evaluate(sg.nn.attention_weights(q, q, causal=True)).round(3)
    array([[1.   , 0.   , 0.   ],
           [0.5  , 0.5  , 0.   ],
           [0.333, 0.333, 0.333]])
    """
    q, k = as_node(q, "attention"), as_node(k, "attention")
    causal = _check_flag(causal, f"attention {name!r}: causal")
    for role, x in (("q", q), ("k", k)):
        if x.ndim < 2:
            raise ShapeError(f"attention {name!r}: {role} must have at least 2 axes (…, length, features), got "
                             f"{x.describe()} of shape {format_shape(x.shape)}")
    d = q.shape[-1]
    if k.shape[-1] != d:
        raise ShapeError(f"attention {name!r}: q and k must have the same feature size on their last axis, got "
                         f"{format_shape(q.shape)} ({q.describe()}) and {format_shape(k.shape)} ({k.describe()})")
    if scale is None:
        if not isinstance(d, int):
            raise ShapeError(f"attention {name!r}: the feature axis of q is the named dim {d!r}; give scale=")
        scores = (q @ _swap_last(k)) / np.sqrt(d)  # prints as Q·Kᵀ/√d
    else:
        if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer, np.floating)) \
                or not np.isfinite(scale):
            raise GraphError(f"attention {name!r}: scale must be a finite number, got {scale!r}")
        scores = (q @ _swap_last(k)) * float(scale)
    if mask is not None:
        scores = _apply_mask(scores, mask, name)
    if causal:
        scores = masked_fill(scores, _future(scores, name), -np.inf)
    scores = scores.named(f"{name}.scores")
    return softmax(scores, axis=-1, name=f"{name}.weights")


def attention(q: Any, k: Any, v: Any, mask: Any = None, causal: bool = False, *, scale: float | None = None,
              name: str = "attn") -> Node:
    """Scaled dot-product attention, ``softmax(q·kᵀ/√d + mask)·v`` over the last two axes.

    Parameters
    ----------
    q : queries, shape ``(…, L, d)``; any leading (batch, head) axes, broadcast as ``@`` does.
    k : keys, ``(…, S, d)``.
    v : values, ``(…, S, d_v)``.
    mask : None, a float mask added to the scores (``-inf`` blocks), or a boolean mask (a bool
        array, an int node or array) where True / non-zero marks the pairs that **attend**, as
        PyTorch's ``scaled_dot_product_attention``; it broadcasts against the scores ``(…, L, S)``.
    causal : query ``i`` attends only to keys ``j ≤ i`` (the future is filled with ``-inf``).
    scale : the factor on ``q·kᵀ``; default ``1/√d``.
    name : prefix of the named nodes ``<name>.scores``, ``<name>.weights`` and ``<name>.out``.

    Returns
    -------
    Node
        ``(…, L, d_v)``, named ``<name>.out``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> Q, K, V = (sg.var(n, shape=("seq", 2)) for n in "QKV")
    >>> out = sg.attention(Q, K, V)
    >>> print(sg.latex(out))
    \\operatorname{softmax}\\left(\\frac{Q K^{T}}{\\sqrt{2}}\\right) V
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> sg.evaluate(sg.attention(Q, K, V, causal=True), {"Q": x, "K": x, "V": [[1.0, 2.0], [3.0, 4.0]]}).round(4)
    array([[1.    , 2.    ],
           [2.3395, 3.3395]])
    """
    q, k, v = (as_node(x, "attention") for x in (q, k, v))
    weights = attention_weights(q, k, mask, causal, scale=scale, name=name)
    if v.ndim < 2 or v.shape[-2] != k.shape[-2]:
        raise ShapeError(f"attention {name!r}: v must have as many rows (axis -2) as k, got v of shape "
                         f"{format_shape(v.shape)} ({v.describe()}) and k of shape {format_shape(k.shape)}")
    return (weights @ v).named(f"{name}.out")


# ------------------------------------------------------------------ multi-head attention
#: PyTorch's initial distributions: xavier_uniform of the stacked (3E, E) in_proj_weight is
#: U(±√(3/(2E))) for each of W_q, W_k, W_v, that is Glorot's on (E, E) with gain 1/√2; the output
#: projection's kaiming_uniform(a=√5) is U(±1/√E), He's uniform with gain 1/√3; biases zeros.
_IN_INIT = ("xavier", {"gain": float(1 / np.sqrt(2.0))})
_OUT_INIT = ("he_uniform", {"gain": float(1 / np.sqrt(3.0))})


class MultiheadAttention(Module):
    """Multi-head attention, as ``torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)``.

    ``Q = query·W_q + b_q``, ``K = key·W_k + b_k``, ``V = value·W_v + b_v``, each split into
    ``num_heads`` heads of ``embed_dim / num_heads`` features; every head attends
    (:func:`attention`), the heads are concatenated and projected: ``out = concat·W_o + b_o``.

    Parameters
    ----------
    embed_dim : the feature size E of query, key, value and output.
    num_heads : H, which must divide E.
    bias : whether to learn the biases ``b_q, b_k, b_v, b_o``.
    dropout : probability of dropping attention weights in training mode (a :class:`Dropout`
        sub-module ``<name>.dropout``).
    seed : seeds the initializers (PyTorch's distributions, see ``_IN_INIT``).
    name : parameters ``<name>.W_q`` … ``<name>.b_o``; nodes ``<name>.Q``, ``<name>.K``,
        ``<name>.V`` (heads first: ``(batch, H, seq, E/H)``), ``<name>.scores``,
        ``<name>.weights``, ``<name>.heads``, ``<name>.concat`` and the output ``<name>.out``.

    The weights are in symgrad's ``x @ W`` layout: PyTorch's ``in_proj_weight`` is
    ``[W_qᵀ; W_kᵀ; W_vᵀ]`` (3E, E), ``in_proj_bias`` is ``[b_q; b_k; b_v]``,
    ``out_proj.weight`` is ``W_oᵀ`` and ``out_proj.bias`` is ``b_o``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> mha = sg.nn.MultiheadAttention(8, 2, seed=0, name="mha")
    >>> [(n, p.shape) for n, p in mha.named_parameters()][:2]
    [('mha.W_q', (8, 8)), ('mha.b_q', (8,))]
    >>> x = sg.var("x", shape=("batch", "seq", 8))
    >>> y = mha(x, x, x, causal=True)
    >>> y.name, y.shape
    ('mha.out', ('batch', 'seq', 8))
    >>> sg.evaluate(y, {"x": np.ones((2, 5, 8))}).shape
    (2, 5, 8)
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, dropout: float = 0.0, *,
                 seed: int | None = None, name: str = "mha"):
        super().__init__(name)
        what = f"MultiheadAttention {name!r}"
        self.embed_dim = _check_size(embed_dim, f"{what}: embed_dim")
        self.num_heads = _check_size(num_heads, f"{what}: num_heads")
        if self.embed_dim % self.num_heads:
            raise ShapeError(f"{what}: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.head_dim = self.embed_dim // self.num_heads
        bias = _check_flag(bias, f"{what}: bias")
        self.p = _probability(dropout, what)
        self.seed = seed
        E = self.embed_dim
        seeds = derive_seeds(seed, 4)
        for i, role in enumerate("qkvo"):
            init = _OUT_INIT if role == "o" else _IN_INIT
            resolve(init, what)
            setattr(self, f"W_{role}", init_param(self, f"W_{role}", (E, E), init, seeds[i]))
            setattr(self, f"b_{role}", self.param(f"b_{role}", np.zeros(E)) if bias else None)
        self.dropout = self.add_module(Dropout(self.p, name=f"{name}.dropout"))

    def __call__(self, *inputs: Any, **options: Any) -> Node:  # Module.__call__ passes no keywords
        return self.forward(*inputs, **options)

    def _project(self, x: Node, role: str) -> Node:
        W, b = getattr(self, f"W_{role}"), getattr(self, f"b_{role}")
        y = x @ W
        return y + b if b is not None else y

    def _split(self, y: Node, role: str) -> Node:
        """(batch, seq, E) -> (batch, H, seq, E/H), named ``<name>.<ROLE>``."""
        batch, seq = y.shape[0], y.shape[1]
        heads = y.reshape((batch, seq, self.num_heads, self.head_dim))
        return heads.transpose(0, 2, 1, 3).named(f"{self.name}.{role.upper()}")

    def _check(self, x: Any, role: str) -> Node:
        x = as_node(x, f"MultiheadAttention {self.name!r}")
        if x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ShapeError(f"MultiheadAttention {self.name!r}: {role} must be (batch, seq, {self.embed_dim}), got "
                             f"{x.describe()} of shape {format_shape(x.shape)}")
        return x

    def forward(self, query: Any, key: Any = None, value: Any = None, mask: Any = None,
                causal: bool = False) -> Node:
        """Attend from ``query`` (batch, L, E) to ``key`` and ``value`` (batch, S, E); ``key`` and
        ``value`` default to ``query`` (self-attention).  ``mask`` (as :func:`attention`: boolean True =
        attend, or float added) broadcasts against the scores (batch, H, L, S); ``causal`` masks
        the future.  Returns (batch, L, E), named ``<name>.out``."""
        query = self._check(query, "query")
        key = query if key is None else self._check(key, "key")
        value = key if value is None else self._check(value, "value")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ShapeError(f"MultiheadAttention {self.name!r}: query {format_shape(query.shape)}, key "
                             f"{format_shape(key.shape)} and value {format_shape(value.shape)} must share the batch "
                             f"axis, and key and value the sequence axis")
        Q = self._split(self._project(query, "q"), "q")
        K = self._split(self._project(key, "k"), "k")
        V = self._split(self._project(value, "v"), "v")
        weights = attention_weights(Q, K, mask, causal, name=self.name)
        weights = self.dropout(weights)
        heads = (weights @ V).named(f"{self.name}.heads")
        batch, seq = query.shape[0], query.shape[1]
        concat = heads.transpose(0, 2, 1, 3).reshape((batch, seq, self.embed_dim)).named(f"{self.name}.concat")
        return self._project(concat, "o").named(f"{self.name}.out")

    def config(self) -> dict | None:
        return {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "bias": self.b_q is not None,
                "dropout": self.p, "seed": self.seed, "name": self.name}

    def __repr__(self) -> str:
        return (f"MultiheadAttention({self.embed_dim}, {self.num_heads}, bias={self.b_q is not None}, "
                f"dropout={self.p}, name={self.name!r})")


# ------------------------------------------------------------------ positions
def sinusoidal_positions(seq_len: int, d_model: int) -> np.ndarray:
    """The sinusoidal position table of "Attention is all you need", shape ``(seq_len, d_model)``:
    ``P[pos, 2i] = sin(pos / 10000^(2i/d))`` and ``P[pos, 2i+1] = cos(pos / 10000^(2i/d))``.

    A NumPy array: add it as a constant, ``x + sg.const(P, name="P")`` (its sequence axis is fixed,
    so ``x``'s must be too).

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.nn.sinusoidal_positions(3, 4).round(4)
    array([[ 0.    ,  1.    ,  0.    ,  1.    ],
           [ 0.8415,  0.5403,  0.01  ,  1.    ],
           [ 0.9093, -0.4161,  0.02  ,  0.9998]])
    """
    seq_len = _check_size(seq_len, "sinusoidal_positions: seq_len")
    d_model = _check_size(d_model, "sinusoidal_positions: d_model")
    pos = np.arange(seq_len, dtype=np.float64)[:, None]
    even = np.arange(0, d_model, 2, dtype=np.float64)  # 2i
    angle = pos / np.power(10000.0, even / d_model)
    table = np.zeros((seq_len, d_model))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return table


class PositionalEmbedding(Module):
    """A learned position table added to a sequence: ``out[b, t] = x[b, t] + P[t]`` with ``P`` a
    parameter of shape ``(max_len, d_model)`` (an ``nn.Embedding`` of positions 0, 1, …).

    The input's sequence axis must be a fixed size ≤ ``max_len``: the rows used are the slice
    ``P[:seq]``, and a slice of a named dim has no shape symgrad could name (see
    :func:`symgrad.getitem`).  Build the graph with ``shape=("batch", 8, d_model)`` (the batch may
    stay named); a named sequence axis raises a ShapeError.

    Parameters
    ----------
    max_len : the most positions.
    d_model : the feature size.
    init : initializer of ``P`` (default N(0, 1), as ``nn.Embedding``).
    seed : seeds it.
    name : the table is ``<name>.P``, the output ``<name>.out``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> pe = sg.nn.PositionalEmbedding(10, 2, init="ones", name="pos")
    >>> x = sg.var("x", shape=("batch", 3, 2))
    >>> sg.evaluate(pe(x), {"x": np.zeros((1, 3, 2))})
    array([[[1., 1.],
            [1., 1.],
            [1., 1.]]])
    """

    def __init__(self, max_len: int, d_model: int, *, init: Any = None, seed: int | None = None,
                 name: str = "pos_embedding"):
        super().__init__(name)
        what = f"PositionalEmbedding {name!r}"
        self.max_len = _check_size(max_len, f"{what}: max_len")
        self.d_model = _check_size(d_model, f"{what}: d_model")
        self.init = ("normal", {"std": 1.0}) if init is None else init
        resolve(self.init, what)
        self.seed = seed
        self.P = init_param(self, "P", (self.max_len, self.d_model), self.init, seed)

    def forward(self, x: Any) -> Node:
        """``x + P[:seq]`` for ``x`` of shape (…, seq, d_model), named ``<name>.out``."""
        x = as_node(x, f"PositionalEmbedding {self.name!r}")
        if x.ndim < 2 or x.shape[-1] != self.d_model:
            raise ShapeError(f"PositionalEmbedding {self.name!r}: input must be (…, seq, {self.d_model}), got "
                             f"{x.describe()} of shape {format_shape(x.shape)}")
        seq = x.shape[-2]
        if not isinstance(seq, int):
            raise ShapeError(f"PositionalEmbedding {self.name!r}: the sequence axis of {x.describe()} is the named dim "
                             f"{seq!r}; a learned table needs a fixed length (slicing P[:{seq}] by a length known "
                             f"only at run time has no shape): build the graph with the length as a number, "
                             f"shape {format_shape(x.shape[:-2] + (self.max_len, self.d_model))} or shorter")
        if seq > self.max_len:
            raise ShapeError(f"PositionalEmbedding {self.name!r}: sequence length {seq} exceeds max_len "
                             f"{self.max_len} ({x.describe()})")
        rows = self.P if seq == self.max_len else getitem(self.P, slice(0, seq))
        return (x + rows).named(f"{self.name}.out")

    def config(self) -> dict | None:
        return {"max_len": self.max_len, "d_model": self.d_model, "init": to_config(self.init),
                "seed": self.seed, "name": self.name}

    def __repr__(self) -> str:
        return f"PositionalEmbedding({self.max_len}, {self.d_model}, name={self.name!r})"
