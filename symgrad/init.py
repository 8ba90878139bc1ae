"""Parameter initializers, by name in ``sg.param(..., init=...)`` and layers.

Weights are used as ``X @ W`` with ``W`` of shape ``(fan_in, fan_out)``.
Every initializer takes a ``seed`` and is reproducible.

Examples
--------
>>> import symgrad as sg
>>> sg.init.initialize("constant", (2,), value=0.5)
array([0.5, 0.5])
"""
from __future__ import annotations

import numpy as np

from .errors import GraphError, ShapeError
from .graph import finite_number, format_shape, normalize_shape


def fans(shape: tuple) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight used as ``X @ W``.

    For ``W`` of shape ``(in, out)`` this is ``(in, out)``; leading axes
    (e.g. a convolution's receptive field) multiply both; a vector counts
    its length as both fans.

    Examples
    --------
    >>> from symgrad.init import fans
    >>> fans((64, 32)), fans((3, 3, 16, 8))
    ((64, 32), (144, 72))
    """
    shape = normalize_shape(shape, "fans: shape")
    if not all(isinstance(d, int) for d in shape):
        raise ShapeError(f"fans: needs a fixed shape, got {format_shape(shape)}")
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(shape, rng):
    """All zeros (the default for biases)."""
    return np.zeros(shape)


def ones(shape, rng):
    """All ones."""
    return np.ones(shape)


def constant(shape, rng, value: float = 0.0):
    """Every entry equal to ``value``."""
    return np.full(shape, float(value))


def uniform(shape, rng, low: float = -0.05, high: float = 0.05):
    """U(low, high)."""
    return rng.uniform(low, high, size=shape)


def normal(shape, rng, mean: float = 0.0, std: float = 0.01):
    """N(mean, std²)."""
    return rng.normal(mean, std, size=shape)


def xavier_uniform(shape, rng, gain: float = 1.0):
    """U(−a, a) with a = gain·√(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(shape)
    a = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape)


def xavier_normal(shape, rng, gain: float = 1.0):
    """N(0, σ²) with σ = gain·√(2 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(shape)
    return rng.normal(0.0, gain * np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def he_uniform(shape, rng, gain: float = np.sqrt(2.0)):
    """U(−a, a) with a = gain·√(3 / fan_in) (He et al. 2015, gain √2 for ReLU)."""
    fan_in, _ = fans(shape)
    a = gain * np.sqrt(3.0 / fan_in)
    return rng.uniform(-a, a, size=shape)


def he_normal(shape, rng, gain: float = np.sqrt(2.0)):
    """N(0, σ²) with σ = gain / √fan_in (He et al. 2015; σ = √(2 / fan_in) for ReLU)."""
    fan_in, _ = fans(shape)
    return rng.normal(0.0, gain / np.sqrt(fan_in), size=shape)


def orthogonal(shape, rng, gain: float = 1.0):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one."""
    if len(shape) < 2:
        raise GraphError(f"orthogonal init needs at least 2 dims, got shape {shape}")
    rows, cols = int(np.prod(shape[:-1], dtype=np.int64)), shape[-1]
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q[:rows, :cols].reshape(shape)


INITIALIZERS = {
    "zeros": zeros, "ones": ones, "constant": constant, "uniform": uniform, "normal": normal,
    "xavier": xavier_uniform, "glorot": xavier_uniform, "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform, "xavier_normal": xavier_normal, "glorot_normal": xavier_normal,
    "he": he_normal, "kaiming": he_normal, "he_normal": he_normal, "kaiming_normal": he_normal,
    "he_uniform": he_uniform, "kaiming_uniform": he_uniform, "orthogonal": orthogonal,
}


def initialize(init, shape: tuple, seed: int | None = None, **kwargs) -> np.ndarray:
    """An array of ``shape`` from the initializer ``init``.

    Parameters
    ----------
    init : a name from :data:`INITIALIZERS` (``"zeros"``, ``"constant"``,
        ``"uniform"``, ``"normal"``, ``"xavier"``/``"glorot"`` (uniform) and
        ``"xavier_normal"``, ``"he"``/``"kaiming"`` (normal) and
        ``"he_uniform"``, ``"orthogonal"``...) or a callable ``f(shape, rng, **kwargs)``.
    shape : the array shape; weights are ``(fan_in, fan_out)``.
    seed : seed of ``np.random.default_rng``; the same seed gives the same array.
    kwargs : the initializer's options (``value``, ``low``/``high``,
        ``mean``/``std``, ``gain``).

    Raises
    ------
    GraphError : unknown name, bad seed or options, or a result of the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> from symgrad.init import initialize
    >>> W = initialize("xavier", (300, 200), seed=0)
    >>> bool(np.abs(W).max() <= np.sqrt(6 / (300 + 200)))
    True
    >>> bool((initialize("he", (4, 3), seed=1) == initialize("kaiming", (4, 3), seed=1)).all())
    True
    """
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise GraphError(f"init {init!r}: seed must be a non-negative int or None, got {seed!r}")
    rng = np.random.default_rng(seed)
    if callable(init):
        fn = init
    else:
        try:
            fn = INITIALIZERS[init]
        except (KeyError, TypeError):
            raise GraphError(f"unknown init {init!r}; choose from {sorted(INITIALIZERS)}") from None
    shape = normalize_shape(shape, f"init {init!r}: shape")
    if not all(isinstance(d, int) for d in shape):
        raise ShapeError(f"init {init!r}: needs a fixed shape, got {format_shape(shape)}")
    for key, value in kwargs.items() if not callable(init) else ():  # the built-in options are numbers
        if finite_number(value) is None:
            raise GraphError(f"init {init!r}: option {key}={value!r} must be a finite number")
    try:
        out = np.asarray(fn(shape, rng, **kwargs), dtype=np.float64)
    except MemoryError:
        raise GraphError(f"init {init!r}: cannot allocate an array of shape {format_shape(shape)}") from None
    except (TypeError, ValueError, OverflowError) as e:
        options = f" with {kwargs}" if kwargs else ""
        raise GraphError(f"init {init!r}{options}: {e}") from None
    if out.shape != shape:
        raise GraphError(f"init {init!r} returned shape {out.shape}, expected {shape}")
    return out
