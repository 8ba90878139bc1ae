"""Parameter initializers, by name in ``sg.param(..., init=...)`` and layers.

Weights are used as ``X @ W`` with ``W`` of shape ``(fan_in, fan_out)``.
Every initializer takes a ``seed`` and is reproducible.

An ``init`` is given in one of three ways, everywhere one is accepted
(``sg.param``, ``Linear``, ``MLP``, ``Conv2d``, ``Embedding``...):

* a name, ``"he"``;
* a name with options, ``("normal", {"std": 0.1})``, or the same built by
  :func:`spec`, ``sg.init.spec("normal", std=0.1)``;
* a callable ``f(shape, rng, **options)`` (alone or in place of the name).

Examples
--------
>>> import symgrad as sg
>>> sg.init.initialize("constant", (2,), value=0.5)
array([0.5, 0.5])
>>> sg.init.initialize(("constant", {"value": 0.3}), (2,))
array([0.3, 0.3])
>>> sg.init.initialize(sg.init.spec("identity"), (2, 3))
array([[1., 0., 0.],
       [0., 1., 0.]])
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from .errors import GraphError, ShapeError, SymgradError
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


def random(shape, rng, std: float = 0.01):
    """Small random numbers, N(0, std²) with std = 0.01 by default (the course's "small random weights")."""
    return rng.normal(0.0, std, size=shape)


def truncated_normal(shape, rng, mean: float = 0.0, std: float = 0.01):
    """N(mean, std²) cut at two standard deviations: entries outside [mean − 2·std, mean + 2·std] are
    drawn again until none is (TensorFlow's ``truncated_normal``).  ``std`` is that of the normal
    before the cut; the result's standard deviation is about 0.88·std."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    out = rng.normal(mean, std, size=shape)
    outside = np.abs(out - mean) > 2 * std
    while outside.any():
        out[outside] = rng.normal(mean, std, size=int(outside.sum()))
        outside = np.abs(out - mean) > 2 * std
    return out


def lecun_normal(shape, rng, gain: float = 1.0):
    """N(0, σ²) with σ = gain / √fan_in (LeCun 1998: variance 1/fan_in, the "1/n" rule)."""
    fan_in, _ = fans(shape)
    return rng.normal(0.0, gain / np.sqrt(fan_in), size=shape)


def identity(shape, rng, gain: float = 1.0):
    """``gain`` times the identity matrix (ones on the diagonal of a rectangular one, as ``torch.nn.init.eye_``);
    only for 2-D shapes."""
    if len(shape) != 2:
        raise ShapeError(f"init 'identity' needs a 2-D shape, got {format_shape(shape)}")
    return gain * np.eye(shape[0], shape[1])


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
    "random": random, "truncated_normal": truncated_normal, "lecun": lecun_normal, "lecun_normal": lecun_normal,
    "identity": identity, "eye": identity,
}


class InitSpec(NamedTuple):
    """An initializer with its options: ``InitSpec("normal", {"std": 0.1})``, made by :func:`spec`.

    It is a pair, so ``("normal", {"std": 0.1})`` means the same wherever an init is accepted.
    """
    name: str | Callable
    options: dict


def spec(init: str | Callable, **options: Any) -> InitSpec:
    """An initializer with options, checked now: ``spec("constant", value=0.3)``.

    Raises
    ------
    GraphError : unknown name, or an option the initializer does not take,
        or an option value that is not a finite number.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.init.spec("normal", std=0.1)
    InitSpec(name='normal', options={'std': 0.1})
    >>> fc = sg.nn.Linear(2, 2, init=sg.init.spec("constant", value=0.3))
    >>> fc.W.value
    array([[0.3, 0.3],
           [0.3, 0.3]])
    """
    return resolve(InitSpec(init, dict(options)))


def _options_of(fn: Callable) -> list[str]:
    """The option names a built-in initializer takes (its parameters after ``shape, rng``)."""
    return list(inspect.signature(fn).parameters)[2:]


def resolve(init: Any, what: str | None = None) -> InitSpec:
    """``init`` (a name, a callable, a ``(name, options)`` pair or an :class:`InitSpec`) as an
    :class:`InitSpec` whose name is known and whose options the initializer takes.

    Raises
    ------
    GraphError : naming ``what`` (when given) and what is wrong: an unknown name, a pair that is not
        ``(name, {option: value})``, an option the initializer does not take, or (for a
        built-in initializer) an option value that is not a finite number.

    Examples
    --------
    >>> from symgrad.init import resolve
    >>> resolve(("normal", {"std": 0.5}))
    InitSpec(name='normal', options={'std': 0.5})
    >>> resolve("he")
    InitSpec(name='he', options={})
    """
    pre = f"{what}: " if what else ""
    if isinstance(init, (tuple, list)):
        if len(init) != 2 or not isinstance(init[1], Mapping):
            raise GraphError(f"{pre}an init with options is a pair (name, {{option: value}}), "
                             f"e.g. ('normal', {{'std': 0.1}}); got {init!r}")
        name, options = init[0], dict(init[1])
    else:
        name, options = init, {}
    try:
        known = callable(name) or name in INITIALIZERS
    except TypeError:  # an unhashable name
        known = False
    if not known:
        raise GraphError(f"{pre}unknown init {name!r}; choose from {sorted(INITIALIZERS)}")
    for key, value in options.items():
        if not isinstance(key, str):
            raise GraphError(f"{pre}init {name!r}: option names are strings, got {key!r}")
        if not callable(name) and finite_number(value) is None:  # the built-in options are numbers
            raise GraphError(f"{pre}init {name!r}: option {key}={value!r} must be a finite number")
    if not callable(name):
        allowed = _options_of(INITIALIZERS[name])
        unknown = [k for k in options if k not in allowed]
        if unknown:
            takes = f"its options are {', '.join(allowed)}" if allowed else "it takes no options"
            raise GraphError(f"{pre}init {name!r} has no option {', '.join(map(repr, unknown))}; {takes}")
    return InitSpec(name, options)


def to_config(init: Any) -> str | list | None:
    """``init`` as JSON-able data for a saved model's config: a name, ``[name, {options}]``, or None for
    a callable (which cannot be saved; the loaded model then gets its parameters from the file).

    Examples
    --------
    >>> from symgrad.init import to_config
    >>> to_config("he"), to_config(("normal", {"std": 0.1})), to_config(lambda shape, rng: 0)
    ('he', ['normal', {'std': 0.1}], None)
    """
    if isinstance(init, str):
        return init
    if isinstance(init, (tuple, list)) and len(init) == 2 and isinstance(init[0], str):
        options = {k: float(v) for k, v in dict(init[1]).items()}
        return [init[0], options] if options else init[0]
    return None


def initialize(init, shape: tuple, seed: int | None = None, **kwargs) -> np.ndarray:
    """An array of ``shape`` from the initializer ``init``.

    Parameters
    ----------
    init : a name from :data:`INITIALIZERS` (``"zeros"``, ``"ones"``, ``"constant"``,
        ``"uniform"``, ``"normal"``, ``"random"`` (N(0, 0.01²)), ``"truncated_normal"``,
        ``"xavier"``/``"glorot"`` (uniform) and ``"xavier_normal"``, ``"he"``/``"kaiming"``
        (normal) and ``"he_uniform"``, ``"lecun"`` (normal, variance 1/fan_in),
        ``"orthogonal"``, ``"identity"``...), a callable ``f(shape, rng, **kwargs)``, or
        either of these with options as a pair ``(init, {option: value})`` (see :func:`spec`).
    shape : the array shape; weights are ``(fan_in, fan_out)``.
    seed : seed of ``np.random.default_rng``; the same seed gives the same array.
    kwargs : the initializer's options (``value``, ``low``/``high``,
        ``mean``/``std``, ``gain``), added to those of a pair.

    Raises
    ------
    GraphError : unknown name, bad seed or options, or a result of the wrong shape.
    ShapeError : a shape the initializer cannot fill (``"identity"`` needs 2-D).

    Examples
    --------
    >>> import numpy as np
    >>> from symgrad.init import initialize
    >>> W = initialize("xavier", (300, 200), seed=0)
    >>> bool(np.abs(W).max() <= np.sqrt(6 / (300 + 200)))
    True
    >>> bool((initialize("he", (4, 3), seed=1) == initialize("kaiming", (4, 3), seed=1)).all())
    True
    >>> initialize(("constant", {"value": 0.3}), (2,))
    array([0.3, 0.3])
    """
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise GraphError(f"init {init!r}: seed must be a non-negative int or None, got {seed!r}")
    rng = np.random.default_rng(seed)
    given = resolve(init)
    both = sorted(set(given.options) & set(kwargs))
    if both:
        raise GraphError(f"init {given.name!r}: option {', '.join(both)} given twice (in the pair and as a keyword)")
    init, kwargs = resolve((given.name, {**given.options, **kwargs}))
    fn = init if callable(init) else INITIALIZERS[init]
    shape = normalize_shape(shape, f"init {init!r}: shape")
    if not all(isinstance(d, int) for d in shape):
        raise ShapeError(f"init {init!r}: needs a fixed shape, got {format_shape(shape)}")
    try:
        out = np.asarray(fn(shape, rng, **kwargs), dtype=np.float64)
    except MemoryError:
        raise GraphError(f"init {init!r}: cannot allocate an array of shape {format_shape(shape)}") from None
    except SymgradError:
        raise
    except (TypeError, ValueError, OverflowError) as e:
        options = f" with {kwargs}" if kwargs else ""
        raise GraphError(f"init {init!r}{options}: {e}") from None
    if out.shape != shape:
        raise GraphError(f"init {init!r} returned shape {out.shape}, expected {shape}")
    return out
