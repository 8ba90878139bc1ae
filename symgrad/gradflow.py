"""Gradient-flow monitoring for :func:`~symgrad.train.fit`: the L2 norm of every parameter's gradient,
per update, from the same compiled step that trains.

``fit(..., track="grad_norms")`` (or ``max_grad_norm=``) trains with a
variant of the step that also returns ``‖∂L/∂p‖₂`` for every trained
param ``p`` as extra outputs: ``sg.norm(g)`` of the gradient nodes,
which the compiler shares with the update (it makes one value per
structure), so the gradients are computed once.  The variant is compiled
once per step (and kept while the step lives); it has its own optimizer
state arrays and random generator, so the step's state, update count and
generator state are copied into it before training and back after,
whatever happens; the params and buffers (batch norm's running statistics)
are the same nodes and are updated in place by either.  Without tracking, fit uses the
step as it is: nothing is added to a step that nobody monitors.
"""
from __future__ import annotations

import math
import weakref
from typing import Any, Mapping

import numpy as np

from .errors import TrainingError
from .graph import Node

#: History key prefix of the gradient norms: ``history["grad_norm/mlp.0.W"]``
PREFIX = "grad_norm/"
_VARIANTS: "weakref.WeakKeyDictionary[Any, tuple]" = weakref.WeakKeyDictionary()


def layer_of(name: str) -> str:
    """The layer part of a param name (``mlp.0`` of ``mlp.0.W``; the name itself when it has no dot)."""
    return name.rsplit(".", 1)[0] if "." in name else name


def check_track(track: Any) -> bool:
    if track is None:
        return False
    if isinstance(track, str) and track == "grad_norms":
        return True
    raise TrainingError(f"fit: track must be None or 'grad_norms', got {track!r}")


def check_limit(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (bool, np.bool_, str, bytes)):
        try:
            x = float(value)
        except (TypeError, ValueError, OverflowError):
            x = math.nan
        if math.isfinite(x) and x > 0:
            return x
    raise TrainingError(f"fit: max_grad_norm must be a positive finite number or None, got {value!r}")


def tracking_step(step: Any, params: list[Node]) -> Any:
    """The variant of ``step`` that also returns the gradient norms of ``params`` (compiled once per step)."""
    missing = [a for a in ("loss", "optimizer", "outputs", "dtype") if not hasattr(step, a)]
    if missing:
        raise TrainingError(f"fit: tracking gradient norms needs a step from sg.compile_step (this "
                            f"{type(step).__name__} has no {', '.join(missing)})")
    key = tuple(p.id for p in params)
    try:
        cached = _VARIANTS.get(step)
    except TypeError:  # not weak-referenceable: compiled for this fit only
        cached = None
    if cached is not None and cached[0] == key:
        return cached[1]
    from .autodiff import grad
    from .codegen import compile_step
    from .ops import norm
    grads = grad(step.loss, params) if params else []
    norms = [norm(g) for g in grads]  # √Σg², finite whenever the norm is (no overflow of g² near 1e154)
    variant = compile_step(step.loss, step.optimizer, inputs=list(step.inputs),
                           outputs=list(step.outputs) + norms, params=params, dtype=step.dtype,
                           reuse_buffers=getattr(step, "_reuse", True))
    try:
        _VARIANTS[step] = (key, variant)
    except TypeError:
        pass
    return variant


def copy_state(src: Any, dst: Any) -> None:
    """Copy the optimizer state arrays, the update count and the random generator's state (dropout
    masks, random nodes) of step ``src`` into step ``dst``."""
    mine, theirs = getattr(src, "state", None), getattr(dst, "state", None)
    if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
        for pname, group in mine.items():
            other = theirs.get(pname)
            if not isinstance(group, Mapping) or not isinstance(other, Mapping):
                continue
            for k, arr in group.items():
                if isinstance(arr, np.ndarray) and isinstance(other.get(k), np.ndarray):
                    np.copyto(other[k], arr, casting="unsafe")
    rng, other_rng = getattr(src, "rng", None), getattr(dst, "rng", None)
    if isinstance(rng, np.random.Generator) and isinstance(other_rng, np.random.Generator) \
            and type(rng.bit_generator) is type(other_rng.bit_generator):
        other_rng.bit_generator.state = rng.bit_generator.state  # the object bound in dst's code stays
    t = getattr(src, "t", None)
    if isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_)):
        try:
            dst.t = int(t)
        except AttributeError:
            pass


class GradNorms:
    """Per-epoch gradient norms: the batch-size-weighted mean over the epoch's updates of each
    param's ‖∂L/∂p‖₂ (the same weighting as the epoch's loss), and the per-update check against
    ``limit`` (max_grad_norm) and for non-finite norms."""

    def __init__(self, params: list[Node], n_outputs: int, limit: float | None, record: bool):
        self.names = [p.name for p in params]
        self.n_outputs, self.limit, self.record = n_outputs, limit, record
        self.reset()

    def reset(self) -> None:
        self.mean = np.zeros(len(self.names))
        self.n = 0

    def split(self, extras: tuple) -> tuple[tuple, np.ndarray]:
        """The step's extra outputs as (the user's outputs, the norms)."""
        return extras[:self.n_outputs], np.array([float(v) for v in extras[self.n_outputs:]])

    def problem(self, norms: np.ndarray) -> str | None:
        """What is wrong with one update's norms (non-finite, or above the limit), naming the params
        and layers, else None."""
        bad = [k for k, v in enumerate(norms) if not math.isfinite(v)]
        if bad:
            return "the gradient of " + _list([self.names[k] for k in bad]) + " is not finite " \
                   f"({', '.join(str(norms[k]) for k in bad[:3])})"
        if self.limit is not None:
            over = sorted((k for k, v in enumerate(norms) if v > self.limit), key=lambda k: -norms[k])
            if over:
                shown = ", ".join(f"{self.names[k]} (layer {layer_of(self.names[k])}) {norms[k]:.4g}"
                                  for k in over[:3])
                more = f" and {len(over) - 3} more" if len(over) > 3 else ""
                return f"exploding gradients: gradient norm above max_grad_norm={self.limit:g} for {shown}{more}"
        return None

    def add(self, norms: np.ndarray, size: int) -> None:
        self.n += size
        self.mean += (norms - self.mean) * (size / self.n)

    def values(self) -> dict[str, float]:
        return {PREFIX + name: float(v) for name, v in zip(self.names, self.mean)} if self.record else {}

    def describe(self, norms: np.ndarray) -> str:
        """The largest norms of an update, for a message about a non-finite loss."""
        order = sorted(range(len(norms)), key=lambda k: -(norms[k] if math.isfinite(norms[k]) else math.inf))
        return "gradient norms: " + ", ".join(f"{self.names[k]}={norms[k]:.4g}" for k in order[:3])


def _list(names: list[str]) -> str:
    shown = ", ".join(f"{n} (layer {layer_of(n)})" for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def step_seed(seed: Any) -> int | None:
    """An int for ``step.seed`` derived from fit's ``seed`` (an int or a Generator), from a child of its
    SeedSequence: a stream distinct from the one that shuffles the data, which it leaves untouched."""
    if seed is None:
        return None
    if isinstance(seed, np.random.Generator):
        seq = getattr(seed.bit_generator, "seed_seq", None) or getattr(seed.bit_generator, "_seed_seq", None)
        if not isinstance(seq, np.random.SeedSequence):
            return None
    else:
        try:
            seq = np.random.SeedSequence(seed)
        except (TypeError, ValueError):
            return None
    child = np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + (0x5eed,))
    return int(child.generate_state(1, dtype=np.uint32)[0])
