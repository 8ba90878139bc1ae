"""The transformer encoder: :class:`TransformerEncoderLayer` and a stack of them,
:class:`TransformerEncoder`, with PyTorch's names and meaning (``batch_first=True``).

A layer is self-attention and a two-layer feed-forward block, each with a residual connection,
dropout and layer normalization; after the sum (post-norm, PyTorch's default)::

    x = norm1(x + dropout1(self_attn(x, x, x)))
    x = norm2(x + dropout2(linear2(dropout(activation(linear1(x))))))

or before the block (pre-norm, ``norm_first=True``)::

    x = x + dropout1(self_attn(norm1(x)))
    x = x + dropout2(linear2(dropout(activation(linear1(norm2(x))))))

Weights are symgrad's ``x @ W`` layout: PyTorch's ``linear1.weight`` is ``linear1.W.T`` and the
attention's weights map as in :class:`~symgrad.nn.MultiheadAttention`.  Masks use symgrad's one
convention (:func:`~symgrad.attention`): a boolean mask marks the pairs that attend, a float mask is
added; PyTorch's ``src_mask`` with True for "blocked" is its negation.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from ..ops import as_node, gelu, relu
from .attention import MultiheadAttention
from .batchnorm import Dropout, _probability
from .containers import ModuleList, rename
from .layers import Linear, _check_flag, _check_size, derive_seeds
from .module import Module
from .norm import LayerNorm

__all__ = ["TransformerEncoderLayer", "TransformerEncoder"]

_ACTIVATIONS = {"relu": relu, "gelu": gelu}


def _torch_linear(n_in: int, n_out: int, bias: bool, name: str, seed: int | None) -> Linear:
    """A Linear drawn as PyTorch's nn.Linear is: W and b uniform in ±1/√fan_in (kaiming_uniform with
    a = √5 is He's uniform with gain 1/√3)."""
    bound = float(1 / np.sqrt(n_in))
    return Linear(n_in, n_out, init=("he_uniform", {"gain": float(1 / np.sqrt(3.0))}),
                  bias=bias, bias_init=("uniform", {"low": -bound, "high": bound}), name=name, seed=seed)


class TransformerEncoderLayer(Module):
    """One encoder layer, as ``torch.nn.TransformerEncoderLayer(..., batch_first=True)``.

    Parameters
    ----------
    d_model : the feature size of the input and output (batch, seq, d_model).
    nhead : attention heads (must divide ``d_model``).
    dim_feedforward : the hidden size of the feed-forward block.
    dropout : dropout probability, on the attention weights and in the three places above, in
        training mode (the modules ``dropout``, ``dropout1``, ``dropout2`` and ``self_attn.dropout``).
    activation : ``"relu"``, ``"gelu"`` (the exact, erf form) or a function of a node.
    layer_norm_eps : ε of both layer norms.
    norm_first : pre-norm (True) or post-norm (False, PyTorch's default).
    bias : biases in the linear layers, the attention and the layer norms.
    seed : seeds every initializer (PyTorch's distributions).
    name : sub-modules ``<name>.self_attn``, ``<name>.linear1``, ``<name>.linear2``,
        ``<name>.norm1``, ``<name>.norm2``, ``<name>.dropout``, ``<name>.dropout1``,
        ``<name>.dropout2``; the output node is ``<name>.out``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> layer = sg.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, seed=0, name="enc")
    >>> sorted({n.split(".")[1] for n, _ in layer.named_parameters()})
    ['linear1', 'linear2', 'norm1', 'norm2', 'self_attn']
    >>> x = sg.var("x", shape=("batch", "seq", 8))
    >>> y = layer(x, causal=True)
    >>> y.name, y.shape
    ('enc.out', ('batch', 'seq', 8))
    >>> out = sg.evaluate(y, {"x": np.random.default_rng(0).normal(size=(2, 5, 8))})
    >>> bool(np.allclose(out.mean(axis=-1), 0))  # post-norm: the output is layer-normalized
    True
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable = "relu", layer_norm_eps: float = 1e-5, norm_first: bool = False,
                 bias: bool = True, *, seed: int | None = None, name: str = "encoder_layer"):
        super().__init__(name)
        what = f"TransformerEncoderLayer {name!r}"
        self.d_model = _check_size(d_model, f"{what}: d_model")
        self.nhead = _check_size(nhead, f"{what}: nhead")
        self.dim_feedforward = _check_size(dim_feedforward, f"{what}: dim_feedforward")
        self.p = _probability(dropout, what)
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise GraphError(f"{what}: activation must be 'relu', 'gelu' or a function of a node, "
                                 f"got {activation!r}")
        elif not callable(activation):
            raise GraphError(f"{what}: activation must be 'relu', 'gelu' or a function of a node, got {activation!r}")
        self.activation = activation
        self.layer_norm_eps = layer_norm_eps
        self.norm_first = _check_flag(norm_first, f"{what}: norm_first")
        self.bias = _check_flag(bias, f"{what}: bias")
        self.seed = seed
        seeds = derive_seeds(seed, 3)
        self.self_attn = self.add_module(MultiheadAttention(self.d_model, self.nhead, bias=self.bias,
                                                            dropout=self.p, seed=seeds[0], name=f"{name}.self_attn"))
        self.linear1 = self.add_module(_torch_linear(self.d_model, self.dim_feedforward, self.bias, f"{name}.linear1",
                                                     seeds[1]))
        self.linear2 = self.add_module(_torch_linear(self.dim_feedforward, self.d_model, self.bias, f"{name}.linear2",
                                                     seeds[2]))
        self.norm1 = self.add_module(LayerNorm(self.d_model, eps=layer_norm_eps, bias=self.bias,
                                               name=f"{name}.norm1"))
        self.norm2 = self.add_module(LayerNorm(self.d_model, eps=layer_norm_eps, bias=self.bias,
                                               name=f"{name}.norm2"))
        self.dropout = self.add_module(Dropout(self.p, name=f"{name}.dropout"))
        self.dropout1 = self.add_module(Dropout(self.p, name=f"{name}.dropout1"))
        self.dropout2 = self.add_module(Dropout(self.p, name=f"{name}.dropout2"))

    def __call__(self, *inputs: Any, **options: Any) -> Node:  # Module.__call__ passes no keywords
        return self.forward(*inputs, **options)

    def _sa_block(self, x: Node, mask: Any, causal: bool) -> Node:
        return self.dropout1(self.self_attn(x, x, x, mask=mask, causal=causal))

    def _ff_block(self, x: Node) -> Node:
        z = self.linear1(x)
        fn = self.activation if callable(self.activation) else _ACTIVATIONS[self.activation]
        a = fn(z)
        if not isinstance(a, Node):
            raise GraphError(f"TransformerEncoderLayer {self.name!r}: activation returned {type(a).__name__}, "
                             f"expected a Node")
        if a is not z and not a.is_leaf:
            a = a.named(f"{self.linear1.name}.a")
        return self.dropout2(self.linear2(self.dropout(a)))

    def forward(self, src: Any, mask: Any = None, causal: bool = False) -> Node:
        """The layer applied to ``src`` (batch, seq, d_model); ``mask`` and ``causal`` as in
        :func:`symgrad.attention`.  Returns (batch, seq, d_model), named ``<name>.out``."""
        x = as_node(src, f"TransformerEncoderLayer {self.name!r}")
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ShapeError(f"TransformerEncoderLayer {self.name!r}: input must be (batch, seq, {self.d_model}), "
                             f"got {x.describe()} of shape {format_shape(x.shape)}")
        n = self.name
        if self.norm_first:
            x = (x + self._sa_block(self.norm1(x), mask, causal)).named(f"{n}.h")
            out = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1((x + self._sa_block(x, mask, causal)).named(f"{n}.sum1"))
            out = self.norm2((x + self._ff_block(x)).named(f"{n}.sum2"))
        return out.named(f"{n}.out")

    def config(self) -> dict | None:
        if not isinstance(self.activation, str):
            return None
        return {"d_model": self.d_model, "nhead": self.nhead, "dim_feedforward": self.dim_feedforward,
                "dropout": self.p, "activation": self.activation, "layer_norm_eps": self.layer_norm_eps,
                "norm_first": self.norm_first, "bias": self.bias, "seed": self.seed, "name": self.name}

    def __repr__(self) -> str:
        act = self.activation if isinstance(self.activation, str) else getattr(self.activation, "__name__", "?")
        return (f"TransformerEncoderLayer({self.d_model}, {self.nhead}, dim_feedforward={self.dim_feedforward}, "
                f"dropout={self.p}, activation={act!r}, norm_first={self.norm_first}, name={self.name!r})")


class TransformerEncoder(Module):
    """A stack of encoder layers, as ``torch.nn.TransformerEncoder``: ``x ← layer_i(x)`` for each,
    then the optional ``norm``.

    Parameters
    ----------
    encoder_layer : one of
        * a function ``factory(i)`` returning layer ``i`` (``lambda i: TransformerEncoderLayer(32, 4, seed=i)``);
        * a list of layers, used as given;
        * a layer, which is copied ``num_layers`` times with its current weights (PyTorch's
          ``TransformerEncoder(layer, num_layers)`` clones it: every copy starts equal); the layer
          itself is not part of the stack.
    num_layers : how many layers (required for a factory or a layer; for a list, None or its length).
    norm : an optional final module (a LayerNorm), renamed ``<name>.norm``.
    name : the layers are renamed ``<name>.layers.<i>`` (PyTorch's parameter names).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> enc = sg.nn.TransformerEncoder(
    ...     lambda i: sg.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, seed=i), num_layers=2, name="enc")
    >>> [n for n, _ in enc.named_parameters()][:3]
    ['enc.layers.0.self_attn.W_q', 'enc.layers.0.self_attn.b_q', 'enc.layers.0.self_attn.W_k']
    >>> y = enc(sg.var("x", shape=("batch", "seq", 8)))
    >>> y.name, y.shape
    ('enc.layers.1.out', ('batch', 'seq', 8))
    """

    def __init__(self, encoder_layer: Any, num_layers: int | None = None, norm: Module | None = None, *,
                 name: str = "encoder"):
        super().__init__(name)
        what = f"TransformerEncoder {name!r}"
        if num_layers is not None:
            num_layers = _check_size(num_layers, f"{what}: num_layers")
        if isinstance(encoder_layer, Module):
            layers = self._clones(encoder_layer, num_layers, what)
        elif isinstance(encoder_layer, (list, tuple)):
            layers = list(encoder_layer)
            if not layers or (num_layers is not None and num_layers != len(layers)):
                raise GraphError(f"{what}: got {len(layers)} layers and num_layers={num_layers}")
        elif callable(encoder_layer):
            if num_layers is None:
                raise GraphError(f"{what}: a layer factory needs num_layers")
            layers = [encoder_layer(i) for i in range(num_layers)]
        else:
            raise GraphError(f"{what}: encoder_layer must be a layer, a list of layers or a function of the "
                             f"layer index, got {type(encoder_layer).__name__}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise GraphError(f"{what}: layer {i} is {type(layer).__name__}, not a Module")
        self.num_layers = len(layers)
        self.layers = self.add_module(ModuleList(layers, name=f"{name}.layers"))
        self.norm = None
        if norm is not None:
            if not isinstance(norm, Module):
                raise GraphError(f"{what}: norm must be a Module (a LayerNorm), got {type(norm).__name__}")
            self.norm = self.add_module(rename(norm, f"{name}.norm"))

    @staticmethod
    def _clones(layer: Module, num_layers: int | None, what: str) -> list[Module]:
        if num_layers is None:
            raise GraphError(f"{what}: give num_layers with a layer to copy")
        config = layer.config()
        if config is None:
            raise GraphError(f"{what}: {layer!r} has no config to copy it from; pass a factory function or "
                             f"a list of layers")
        state = layer.state_dict()
        copies = []
        for _ in range(num_layers):
            copy = type(layer)(**config)
            copy.load_state_dict(state)
            copy.train(layer.training)
            copies.append(copy)
        return copies

    def __call__(self, *inputs: Any, **options: Any) -> Node:  # Module.__call__ passes no keywords
        return self.forward(*inputs, **options)

    def __len__(self) -> int:
        return self.num_layers

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def forward(self, src: Any, mask: Any = None, causal: bool = False) -> Node:
        """Every layer in turn on ``src`` (batch, seq, d_model), then ``norm``; ``mask`` and
        ``causal`` go to every layer."""
        x = src
        for layer in self.layers:
            x = layer(x, mask=mask, causal=causal)
        return self.norm(x) if self.norm is not None else x

    def __repr__(self) -> str:
        return f"TransformerEncoder(num_layers={self.num_layers}, name={self.name!r})"
