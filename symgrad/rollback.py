"""Undoing updates for :func:`~symgrad.train.fit`: preallocated copies of the
params, the optimizer state and ``step.t``, put back when a loss or the
weights stop being finite."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .graph import Node

# ----------------------------------------------------------- undoing updates
class _Copy:
    """One preallocated copy of the params and the optimizer state (one flat array) and ``step.t``."""

    def __init__(self, arrays: list[np.ndarray]):
        size = sum(a.size for a in arrays)
        self.flat = np.empty(size, dtype=np.result_type(*arrays) if arrays else np.float64)
        self.parts, offset = [], 0
        for a in arrays:
            self.parts.append(self.flat[offset:offset + a.size].reshape(a.shape))
            offset += a.size
        self.t: int | None = None
        self.valid = False

    def finite(self) -> bool:
        return bool(np.isfinite(self.flat).all())


class _Checkpoints:
    """Copies that let ``fit`` undo updates.

    Before each update the params, the optimizer state and ``step.t`` are
    copied into a preallocated buffer (one ``np.concatenate`` into a flat
    array: a pass over the params and state, far cheaper than the forward
    pass that checking the loss first would cost).  Two buffers are used in
    turn: ``current`` holds the values before the running update, ``good``
    those before the previous one, the last values at which the loss was
    seen finite (needed when the previous update is the one that broke the
    weights: a finite loss with an infinite gradient).
    """

    def __init__(self, step: Any, params: list[Node]):
        self.step = step
        state = getattr(step, "state", None)
        state_arrays = [a for group in state.values() if isinstance(group, Mapping) for a in group.values()
                        if isinstance(a, np.ndarray)] if isinstance(state, Mapping) else []
        self.arrays = [p.value for p in params if isinstance(p.value, np.ndarray)] + state_arrays
        self.n_params = len(self.arrays) - len(state_arrays)
        # flat views of the live arrays, for one C call per copy (a non-contiguous array has none)
        views = [a.reshape(-1) for a in self.arrays]
        self.views = views if all(np.shares_memory(v, a) for v, a in zip(views, self.arrays)) else None
        t = getattr(step, "t", None)
        self.has_t = isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_))
        self.current, self.good = self.new(), self.new()
        self.running = False

    def new(self) -> _Copy:
        return _Copy(self.arrays)

    def save(self, copy: _Copy) -> None:
        if self.views is not None and self.views:
            np.concatenate(self.views, out=copy.flat)
        else:
            for part, a in zip(copy.parts, self.arrays):
                np.copyto(part, a)
        copy.t = int(self.step.t) if self.has_t else None
        copy.valid = True

    def restore(self, copy: _Copy, params_only: bool = False) -> None:
        arrays = self.arrays[:self.n_params] if params_only else self.arrays
        for a, part in zip(arrays, copy.parts):
            np.copyto(a, part, casting="unsafe")  # float32 params come back exactly from the float64 copy
        if not params_only and copy.t is not None:
            try:
                self.step.t = copy.t
            except AttributeError:  # a wrapper whose t is read-only: its params and state are back all the same
                pass

    def live_finite(self) -> bool:
        return all(bool(np.isfinite(a).all()) for a in self.arrays)

    # ------------------------------------------------------------ per update
    def before_update(self) -> None:
        self.save(self.current)
        self.running = True

    def after_update(self) -> None:
        """The update's loss was finite: the values before it are the last good ones."""
        self.current, self.good = self.good, self.current
        self.running = False

    def undo(self) -> str:
        """Undo what the failed (or interrupted) update did, and the update before it too when the
        values it left are not finite.  Returns what was put back, for the error message."""
        if self.running:
            self.running = False
            candidates = [(self.current, "from before the failed update"),
                          (self.good, "from before the update preceding the failed one (the last values "
                                      "whose loss was finite)")]
        elif self.live_finite():
            return ""
        else:
            candidates = [(self.good, "from before the last update (the last values whose loss was finite)")]
        for copy, when in candidates:
            if copy.valid and copy.finite():
                self.restore(copy)
                return f"the params and optimizer state {when} were put back"
        if candidates[0][0].valid and candidates[0][0] is self.current:
            self.restore(self.current)
            return "the params and optimizer state from before the failed update were put back (not finite either)"
        return ""


class _NonFinite(Exception):
    """Internal: a loss (or the weights) stopped being finite; fit turns it into a TrainingError."""


def _bad_rows(batch: list[np.ndarray], idx: np.ndarray, names: list[str], what: str) -> str:
    """Which inputs of the batch hold NaN or ±inf, and at which rows of the data."""
    found = []
    for name, arr in zip(names, batch):
        if arr.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
        if bad.any():
            rows = idx[bad]
            more = f" and {rows.size - 5} more" if rows.size > 5 else ""
            found.append(f"{name!r} at row(s) {', '.join(map(str, rows[:5].tolist()))}{more} of the {what}")
    return "; ".join(found)


def _nonfinite(kind: str, loss: float, epoch: int, number: int, batch: list[np.ndarray], idx: np.ndarray,
               names: list[str]) -> _NonFinite:
    what = "data" if kind == "training" else "validation data"
    rows = _bad_rows(batch, idx, names, what)
    where = f"the {kind} loss is {loss} at epoch {epoch}, batch {number}"
    if rows:
        return _NonFinite(f"{where}: the batch holds NaN or infinite values (input {rows})")
    if kind == "training":
        return _NonFinite(f"{where}; training diverged (try a smaller learning rate)")
    return _NonFinite(f"{where}; the weights give a non-finite loss on the validation data")

