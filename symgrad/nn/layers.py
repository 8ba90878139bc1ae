"""Layers: :class:`Linear` (``X @ W + b``) and :class:`MLP` (a stack of them).

Weights have shape ``(in, out)`` and act on row vectors, so a batch ``X``
of shape ``(batch, in)`` maps to ``X @ W + b`` of shape ``(batch, out)``.
Layer outputs are named nodes (``mlp.0.z`` for the affine part,
``mlp.0.a`` for the activation) so formulas and drawings show them.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from ..init import resolve, to_config
from ..ops import as_node, leaky_relu, log_softmax, relu, sigmoid, softmax, softplus, tanh
from .module import Module

#: Activations by name; ``None`` means the identity (no node is added).
ACTIVATIONS: dict[str, Callable[..., Node] | None] = {
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "leaky_relu": leaky_relu,
    "softplus": softplus,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "identity": None,
    "linear": None,
}

# the init an MLP uses when none is given: He for rectifiers, Glorot otherwise
_DEFAULT_INIT = {"relu": "he", "leaky_relu": "he"}


def _activation(spec: Any, what: str) -> tuple[Callable[..., Node] | None, str | None]:
    """(function or None for identity, its name or None for a user callable)."""
    if spec is None:
        return None, None
    if isinstance(spec, str):
        if spec not in ACTIVATIONS:
            raise GraphError(f"{what}: unknown activation {spec!r}; choose from {sorted(ACTIVATIONS)} "
                             f"or pass a function of a node")
        return ACTIVATIONS[spec], spec
    if callable(spec):
        return spec, None
    raise GraphError(f"{what}: activation must be a name or a function of a node, got {spec!r}")


def _apply_activation(fn: Callable[..., Node] | None, z: Node, name: str) -> Node:
    if fn is None:
        return z
    if fn in (relu, sigmoid, tanh, leaky_relu, softplus, softmax, log_softmax):
        return fn(z, name=name)
    a = fn(z)
    if not isinstance(a, Node):
        raise GraphError(f"activation for {name!r} returned {type(a).__name__}, expected a Node")
    if a is z or a.is_leaf:
        return a
    return a.named(name)


def _check_size(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ShapeError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _check_flag(value: Any, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise GraphError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def init_param(module: Module, local: str, shape: tuple, init: Any, seed: int | None) -> Node:
    """``module.param(local, shape=shape, init=init, seed=seed)``, an initializer's error naming the
    layer and the parameter."""
    try:
        return module.param(local, shape=shape, init=init, seed=seed)
    except (GraphError, ShapeError) as e:
        raise type(e)(f"{type(module).__name__} {module.name!r}: {local}: {e}") from None


def derive_seeds(seed: int | None, n: int) -> list[int | None]:
    """``n`` distinct seeds derived from ``seed`` (all None when ``seed`` is None).

    Examples
    --------
    >>> from symgrad.nn.layers import derive_seeds
    >>> derive_seeds(0, 2) == derive_seeds(0, 2), derive_seeds(None, 2)
    (True, [None, None])
    """
    if seed is None:
        return [None] * n
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GraphError(f"seed must be a non-negative int or None, got {seed!r}")
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(n, dtype=np.uint64)]


class Linear(Module):
    """An affine layer ``X @ W + b`` with ``W`` of shape ``(in_features, out_features)``.

    Parameters
    ----------
    in_features, out_features : sizes of the input and output feature axes.
    init : initializer of ``W``: a name (see :mod:`symgrad.init`), a name with
        options (``("normal", {"std": 0.1})`` or ``sg.init.spec("normal", std=0.1)``)
        or a callable ``f(shape, rng)``; default ``"xavier"`` (Glorot uniform).
    bias : whether to add the bias ``b`` of shape ``(out_features,)``.
    bias_init : initializer of ``b``, given the same ways; default ``"zeros"``.
    name : the layer name; parameters are ``<name>.W`` and ``<name>.b``,
        the output node is ``<name>.z``.
    seed : seeds ``W``'s initializer (``b`` gets a seed derived from it).

    Examples
    --------
    >>> import symgrad as sg
    >>> fc = sg.nn.Linear(3, 2, init="ones", name="fc")
    >>> z = fc(sg.var("X", shape=("batch", 3)))
    >>> z.name, z.shape
    ('fc.z', ('batch', 2))
    >>> sg.evaluate(z, {"X": [[1.0, 2.0, 3.0]]})
    array([[6., 6.]])
    >>> sg.nn.Linear(2, 1, init=("constant", {"value": 0.3}), bias_init="ones").state_dict()
    {'linear.W': array([[0.3],
           [0.3]]), 'linear.b': array([1.])}
    """

    def __init__(self, in_features: int, out_features: int, *, init: Any = None,
                 bias: bool = True, bias_init: Any = None, name: str = "linear",
                 seed: int | None = None):
        super().__init__(name)
        self.in_features = _check_size(in_features, f"Linear {name!r}: in_features")
        self.out_features = _check_size(out_features, f"Linear {name!r}: out_features")
        bias = _check_flag(bias, f"Linear {name!r}: bias")
        self.init = "xavier" if init is None else init
        self.bias_init = "zeros" if bias_init is None else bias_init
        resolve(self.init, f"Linear {name!r}")
        resolve(self.bias_init, f"Linear {name!r}: bias_init")
        w_seed = seed
        b_seed = None if seed is None else derive_seeds(seed, 1)[0]
        self.W = init_param(self, "W", (self.in_features, self.out_features), self.init, w_seed)
        self.b = init_param(self, "b", (self.out_features,), self.bias_init, b_seed) if bias else None
        self.seed = seed

    def forward(self, x: Any) -> Node:
        """``x @ W + b``, named ``<name>.z``."""
        x = as_node(x, f"Linear {self.name!r}")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(f"Linear {self.name!r}: input {x.describe()} of shape {format_shape(x.shape)} "
                             f"must have {self.in_features} features on its last axis")
        z = x @ self.W
        if self.b is not None:
            z = z + self.b
        return z.named(f"{self.name}.z")

    def config(self) -> dict | None:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.b is not None, "name": self.name, "seed": self.seed,
                "init": to_config(self.init), "bias_init": to_config(self.bias_init)}

    def __repr__(self) -> str:
        return (f"Linear({self.in_features}, {self.out_features}, bias={self.b is not None}, "
                f"name={self.name!r})")


class MLP(Module):
    """A multi-layer perceptron: Linear layers with an activation between them.

    Layer ``i`` is a :class:`Linear` named ``<name>.<i>`` whose output is
    ``<name>.<i>.z``; the hidden activations are ``<name>.<i>.a``.  The last
    layer's ``z`` is the output unless ``output_activation`` is given.

    Parameters
    ----------
    sizes : feature sizes ``[in, hidden..., out]`` (at least two).
    activation : hidden activation by name (``"relu"``, ``"sigmoid"``,
        ``"tanh"``, ``"leaky_relu"``, ``"softplus"``, ``"identity"``...) or a
        function of a node.
    init : weight initializer for every layer (a name, a ``(name, options)``
        pair, or a callable; see :class:`Linear`); default ``"he"`` for relu and
        leaky_relu, ``"xavier"`` otherwise.
    seed : model seed; layer ``i`` gets its own seed derived from it, so
        layers of equal shape start different.
    name : model name, the prefix of every parameter (``mlp.0.W``).
    output_activation : activation applied to the last layer (e.g.
        ``"sigmoid"``); None (default) leaves logits.
    bias : whether the layers have biases.

    Examples
    --------
    >>> import symgrad as sg
    >>> model = sg.nn.MLP([4, 3, 2], activation="tanh", seed=0)
    >>> [(n, p.shape) for n, p in model.named_parameters()]
    [('mlp.0.W', (4, 3)), ('mlp.0.b', (3,)), ('mlp.1.W', (3, 2)), ('mlp.1.b', (2,))]
    >>> out = model(sg.var("X", shape=("batch", 4)))
    >>> out.name, out.inputs[0].inputs[0].name
    ('mlp.1.z', 'mlp.0.a')
    """

    def __init__(self, sizes: Sequence[int], activation: str | Callable | None = "relu", *,
                 init: Any = None, seed: int | None = None, name: str = "mlp",
                 output_activation: str | Callable | None = None, bias: bool = True):
        super().__init__(name)
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
            raise ShapeError(f"MLP {name!r}: sizes must list at least an input and an output size, got {sizes!r}")
        self.sizes = [_check_size(s, f"MLP {name!r}: sizes[{i}]") for i, s in enumerate(sizes)]
        bias = _check_flag(bias, f"MLP {name!r}: bias")
        self._act, self.activation = _activation(activation, f"MLP {name!r}")
        self._out_act, self.output_activation = _activation(output_activation, f"MLP {name!r} output")
        self._act_callable = self._act is not None and self.activation is None
        self._out_act_callable = self._out_act is not None and self.output_activation is None
        if init is None:
            init = _DEFAULT_INIT.get(self.activation or "", "xavier")
        resolve(init, f"MLP {name!r}")
        self.init = init
        self.seed = seed
        seeds = derive_seeds(seed, len(self.sizes) - 1)
        self.layers: list[Linear] = []
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            layer = Linear(n_in, n_out, init=init, bias=bias, name=f"{name}.{i}", seed=seeds[i])
            self.layers.append(self.add_module(layer))

    def forward(self, x: Any) -> Node:
        """The output node; every layer's ``z`` and hidden ``a`` are named nodes."""
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            z = layer(h)
            fn = self._out_act if i == last else self._act
            h = _apply_activation(fn, z, f"{layer.name}.a")
        return h

    def config(self) -> dict | None:
        if self._act_callable or self._out_act_callable:
            return None
        return {"sizes": list(self.sizes), "activation": self.activation, "init": to_config(self.init),
                "seed": self.seed, "name": self.name,
                "output_activation": self.output_activation, "bias": self.layers[0].b is not None}

    def __repr__(self) -> str:
        act = self.activation if self._act is None or self.activation else getattr(self._act, "__name__", "?")
        out = f", output_activation={self.output_activation!r}" if self._out_act is not None else ""
        return f"MLP({self.sizes}, activation={act!r}{out}, name={self.name!r})"
