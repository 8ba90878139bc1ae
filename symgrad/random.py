"""Random nodes: leaves drawn afresh at every evaluation (dropout masks, a VAE's ε).

``sg.random.normal``, ``uniform`` and ``bernoulli`` make a leaf of kind ``"random"`` that
carries its distribution.  It is not fed: :func:`symgrad.evaluate` draws it from a
``numpy.random.Generator`` (``seed=`` makes the draw reproducible), and a compiled function
or training step draws it at every call from a Generator it owns (``seed=`` on
:func:`symgrad.compile` and :func:`symgrad.compile_step`, ``step.seed(s)`` later).  Nothing
flows back into a random node (it has no inputs), but gradients flow *through* the values it
takes: with ``z = μ + σ·ε`` (the reparameterisation trick) ∂z/∂μ = 1 and ∂z/∂σ = ε.

A random node prints as its name (``ε``), and :func:`describe_distribution` gives
``ε ~ 𝒩(0, 1)`` for drawings and equation lists.  Shapes may use symbolic dims
(``("batch", 8)``, bound by the inputs at run time) or copy another node's (``like=x``).

Examples
--------
>>> import numpy as np, symgrad as sg
>>> mu, s = sg.var("mu", shape=("batch", 2)), sg.var("s", shape=("batch", 2))
>>> eps = sg.random.normal(like=mu)
>>> z = mu + s * eps
>>> sg.random.describe_distribution(eps)
'ε ~ 𝒩(0, 1)'
>>> a = sg.evaluate(z, {"mu": np.zeros((3, 2)), "s": np.ones((3, 2))}, seed=0)
>>> b = sg.evaluate(z, {"mu": np.zeros((3, 2)), "s": np.ones((3, 2))}, seed=0)
>>> a.shape, bool((a == b).all())
((3, 2), True)
>>> print(sg.pretty(sg.grad(sg.sum(z), [s])[0]))
ε
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .errors import GraphError, ShapeError
from .graph import Node, check_name, format_shape, normalize_shape

__all__ = ["normal", "uniform", "bernoulli", "dropout", "describe_distribution", "draw", "make_rng", "DISTRIBUTIONS"]

#: the distributions a random node may have, with their default names
DISTRIBUTIONS = {"normal": "ε", "uniform": "u", "bernoulli": "m"}


def _number(value: Any, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise GraphError(f"{what} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise GraphError(f"{what} must be finite, got {value!r}")
    return v


def _shape(shape: Any, like: Any, what: str) -> tuple:
    if like is not None:
        if shape is not None:
            raise GraphError(f"{what}: give a shape or like=, not both")
        if not isinstance(like, Node):
            raise GraphError(f"{what}: like= must be a node, got {type(like).__name__}")
        return like.shape
    if shape is None:
        raise GraphError(f"{what}: give a shape (ints or dim names such as ('batch', 8)) or like=node")
    return normalize_shape(shape, what)


def _leaf(dist: str, shape: tuple, attrs: dict, name: str | None) -> Node:
    name = DISTRIBUTIONS[dist] if name is None else check_name(name)
    return Node(None, (), tuple(sorted({"dist": dist, **attrs}.items())), shape, "float", name=name, kind="random")


def normal(shape: Any = None, mean: float = 0.0, std: float = 1.0, *, like: Node | None = None,
           name: str | None = None) -> Node:
    """A random node with independent 𝒩(mean, std²) entries (default name ``ε``).

    Examples
    --------
    >>> import symgrad as sg
    >>> eps = sg.random.normal(("batch", 4))
    >>> eps.kind, eps.shape, eps.name
    ('random', ('batch', 4), 'ε')
    >>> float(sg.evaluate(sg.random.normal((), mean=3.0, std=0.0), seed=1))
    3.0
    """
    what = f"random.normal{'' if name is None else ' ' + repr(name)}"
    mean = _number(mean, f"{what}: mean")
    std = _number(std, f"{what}: std")
    if std < 0:
        raise GraphError(f"{what}: std must be >= 0, got {std}")
    return _leaf("normal", _shape(shape, like, what), {"mean": mean, "std": std}, name)


def uniform(shape: Any = None, low: float = 0.0, high: float = 1.0, *, like: Node | None = None,
            name: str | None = None) -> Node:
    """A random node with independent entries uniform on [low, high) (default name ``u``).

    Examples
    --------
    >>> import symgrad as sg
    >>> u = sg.random.uniform((1000,), low=-1.0, high=1.0)
    >>> v = sg.evaluate(u, seed=0)
    >>> bool(v.min() >= -1.0 and v.max() < 1.0), round(float(v.mean()), 1)
    (True, 0.0)
    """
    what = f"random.uniform{'' if name is None else ' ' + repr(name)}"
    low = _number(low, f"{what}: low")
    high = _number(high, f"{what}: high")
    if not low <= high:
        raise GraphError(f"{what}: low must be <= high, got low={low}, high={high}")
    return _leaf("uniform", _shape(shape, like, what), {"low": low, "high": high}, name)


def bernoulli(p: float, shape: Any = None, *, like: Node | None = None, name: str | None = None) -> Node:
    """A random node whose entries are 1.0 with probability ``p`` and 0.0 otherwise (default name ``m``).

    Examples
    --------
    >>> import symgrad as sg
    >>> m = sg.random.bernoulli(0.25, (10000,))
    >>> round(float(sg.evaluate(m, seed=0).mean()), 2)
    0.25
    """
    what = f"random.bernoulli{'' if name is None else ' ' + repr(name)}"
    p = _number(p, f"{what}: p")
    if not 0.0 <= p <= 1.0:
        raise GraphError(f"{what}: p must lie in [0, 1], got {p}")
    return _leaf("bernoulli", _shape(shape, like, what), {"p": p}, name)


def _num(v: float) -> str:
    return f"{v:g}"


def describe_distribution(node: Node) -> str:
    """``ε ~ 𝒩(0, 1)``: the node's name and distribution, as drawings and equation lists show it."""
    if not isinstance(node, Node) or node.kind != "random":
        raise GraphError(f"describe_distribution: expected a random node, got {node!r}")
    dist = node.attr("dist")
    if dist == "normal":
        law = f"𝒩({_num(node.attr('mean'))}, {_num(node.attr('std') ** 2)})"
    elif dist == "uniform":
        law = f"𝒰({_num(node.attr('low'))}, {_num(node.attr('high'))})"
    else:
        law = f"Bernoulli({_num(node.attr('p'))})"
    return f"{node.name} ~ {law}"


def distribution_latex(node: Node) -> str:
    """The distribution in LaTeX: ``\\mathcal{N}(0, 1)``."""
    dist = node.attr("dist")
    if dist == "normal":
        return rf"\mathcal{{N}}({_num(node.attr('mean'))}, {_num(node.attr('std') ** 2)})"
    if dist == "uniform":
        return rf"\mathcal{{U}}({_num(node.attr('low'))}, {_num(node.attr('high'))})"
    return rf"\operatorname{{Bernoulli}}({_num(node.attr('p'))})"


def make_rng(seed: Any, what: str) -> np.random.Generator:
    """A Generator from ``seed``: None (fresh entropy), an int >= 0, or a Generator (used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GraphError(f"{what}: seed must be None, an int >= 0 or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def draw(node: Node, shape: tuple, rng: np.random.Generator, dtype: Any = np.float64) -> np.ndarray:
    """Draw the values of random ``node`` with concrete ``shape`` (the calls compiled code makes too)."""
    dist = node.attr("dist")
    if dist == "normal":
        a = rng.standard_normal(shape, dtype=dtype)
        std, mean = node.attr("std"), node.attr("mean")
        if std != 1.0:
            a *= std
        if mean != 0.0:
            a += mean
        return a
    if dist == "uniform":
        a = rng.random(shape, dtype=dtype)
        low, high = node.attr("low"), node.attr("high")
        if (low, high) != (0.0, 1.0):
            a *= high - low
            a += low
        return a
    return (rng.random(shape) < node.attr("p")).astype(dtype)


def concrete_shape(node: Node, dims: dict, what: str) -> tuple:
    """``node.shape`` with its symbolic dims replaced by the sizes ``dims`` gives them."""
    out = []
    for d in node.shape:
        if isinstance(d, str):
            if d not in dims:
                raise ShapeError(f"{what}: random node {node.name!r} of shape {format_shape(node.shape)} needs "
                                 f"dim {d!r}, which no input fixes (feed a var with that dim, or use like=)")
            out.append(int(dims[d]))
        else:
            out.append(d)
    return tuple(out)


def dropout(x: Node, p: float, training: bool = True, *, name: str | None = None,
            mask_name: str | None = None) -> Node:
    """Inverted dropout: each entry of ``x`` is zeroed with probability ``p`` and the kept ones are
    scaled by 1/(1 − p), so the expected value is ``x``; the identity when ``training`` is false.

    The mask is a Bernoulli(1 − p) random node (named ``mask_name``, by default ``m``), drawn
    afresh at every evaluation and every call of a compiled function or step; where it is 0 the
    gradient is 0.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x = sg.var("x", shape=("batch", 1000))
    >>> y = sg.dropout(x, 0.25)
    >>> v = sg.evaluate(y, {"x": np.ones((4, 1000))}, seed=0)
    >>> np.unique(v.round(4)).tolist()
    [0.0, 1.3333]
    >>> round(float((v == 0).mean()), 2)
    0.25
    >>> sg.dropout(x, 0.25, training=False) is x
    True
    """
    from .ops.base import as_node
    x = as_node(x, "dropout")
    p = _number(p, "dropout: p")
    if not 0.0 <= p <= 1.0:
        raise GraphError(f"dropout: p must lie in [0, 1], got {p} (for {x.describe()})")
    if not isinstance(training, (bool, np.bool_)):
        raise GraphError(f"dropout: training must be True or False, got {training!r}")
    if not training or p == 0.0:
        return x
    if p == 1.0:  # everything dropped (as PyTorch): zeros, and zero gradient
        return (x * 0.0) if name is None else (x * 0.0).named(name)
    mask = bernoulli(1.0 - p, like=x, name=mask_name)
    y = x * mask / (1.0 - p)
    return y if name is None else y.named(name)
