"""The training loop: :func:`fit` runs a compiled step over shuffled
mini-batches for some epochs and returns a :class:`History`.

``fit`` relies only on the step object's interface: ``step(*batch)``
updates the parameters and returns the loss (or ``(loss, *outputs)``),
``step.evaluate(*batch)`` returns the same without updating, ``step.inputs``
lists the input var nodes in call order and ``step.params`` the trained
parameter nodes, whose ``.value`` arrays are updated in place.  When the
step also has ``state`` (``{param: {name: array}}``, the optimizer state)
and an int ``t`` (the update count), as :class:`~symgrad.codegen.StepFunction`
does, a failed update is undone in those too.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Mapping

import numpy as np

from .errors import FeedError, TrainingError
from .graph import Node
from .gradflow import GradNorms, check_limit, check_track, copy_state, step_seed, tracking_step
from .history import History
from .rollback import _Checkpoints, _Copy, _NonFinite, _nonfinite


# ------------------------------------------------------------------ data
def _check_step(step: Any) -> None:
    for attr in ("inputs", "params", "evaluate"):
        if not hasattr(step, attr):
            raise TrainingError(f"fit: the step object has no {attr!r}; build it with sg.compile_step(loss, opt, "
                                f"inputs=[...]) (got {type(step).__name__})")
    if not callable(step):
        raise TrainingError(f"fit: the step object is not callable (got {type(step).__name__})")
    if not list(step.inputs):
        raise TrainingError("fit: the step has no inputs to feed mini-batches into")


def _input_names(step: Any) -> list[str]:
    return [node.name for node in step.inputs]


def _arrays(step: Any, data: Any, what: str) -> tuple[list[np.ndarray], int]:
    """The arrays of ``data`` in the step's input order, and their common length."""
    if not isinstance(data, Mapping):
        raise FeedError(f"fit: {what} must be a dict from input names to arrays, got {type(data).__name__}")
    names = _input_names(step)
    by_name: dict[str, Any] = {}
    for key, value in data.items():
        name = key.name if isinstance(key, Node) else key
        if not isinstance(name, str):
            raise FeedError(f"fit: {what} keys must be input names or var nodes, got {key!r}")
        if name not in names:
            raise FeedError(f"fit: {what} has an entry {name!r} that is not an input of the step; "
                            f"the step's inputs are {names}")
        if name in by_name:
            raise FeedError(f"fit: {what} gives input {name!r} twice")
        by_name[name] = value
    missing = [n for n in names if n not in by_name]
    if missing:
        raise FeedError(f"fit: {what} is missing input(s) {missing}; the step's inputs are {names}")
    arrays = []
    for name in names:
        try:
            arr = np.asarray(by_name[name])
        except Exception as e:  # noqa: BLE001  whatever np.asarray rejects
            raise FeedError(f"fit: {what}[{name!r}] cannot be made an array ({e})") from None
        if arr.ndim == 0:
            raise FeedError(f"fit: {what}[{name!r}] is a scalar; fit needs arrays with one row per sample")
        arrays.append(arr)
    lengths = {name: len(a) for name, a in zip(names, arrays)}
    if len(set(lengths.values())) != 1:
        raise FeedError(f"fit: the arrays of {what} have different lengths {lengths}; "
                        f"every input needs one row per sample")
    n = arrays[0].shape[0]
    if n == 0:
        raise FeedError(f"fit: {what} has no samples")
    return arrays, n


def _positive_int(value: Any, what: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TrainingError(f"fit: {what} must be a positive int{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def _real(value: Any, what: str, allow_none: bool = False) -> float | None:
    """A finite real number (not a bool, not a string), or None when allowed."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_, str, bytes)):
        try:
            x = float(value)
        except (TypeError, ValueError, OverflowError):
            x = None
        if x is not None and math.isfinite(x):
            return x
    raise TrainingError(f"{what} must be a finite number{' or None' if allow_none else ''}, got {value!r}")


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TrainingError(f"fit: {what} must be True or False, got {value!r}")
    return bool(value)


def _rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, (bool, np.bool_, float, str, bytes)):
        raise TrainingError(f"fit: seed must be None, an int >= 0 or a np.random.Generator, got {seed!r}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise TrainingError(f"fit: seed must be None, an int >= 0 or a np.random.Generator, got {seed!r} "
                            f"({e})") from None


# -------------------------------------------------------------- metrics
def _split(result: Any) -> tuple[float, tuple]:
    """The step's return value as (loss, extra outputs)."""
    if isinstance(result, tuple):
        if not result:
            raise TrainingError("fit: the step returned an empty tuple; expected the loss first")
        loss, extras = result[0], result[1:]
    else:
        loss, extras = result, ()
    try:
        return float(loss), extras
    except (TypeError, ValueError):
        raise TrainingError(f"fit: the step returned {type(loss).__name__} as its loss; expected a number") from None


def _output_threshold(step: Any) -> float | None:
    """The middle of the range of the step's first extra output when its op declares one (0.5 for a
    probability from σ), 0 for other known nodes."""
    outputs = getattr(step, "outputs", None)
    if not outputs:
        return None
    node = list(outputs)[0]
    if not isinstance(node, Node):
        return None
    bounds = node.op.output_range if node.op is not None else None
    return 0.5 * (bounds[0] + bounds[1]) if bounds else 0.0


def accuracy_counts(output: Any, target: Any, threshold: float | None = None) -> tuple[int, int] | None:
    """``(correct, total)`` of predictions ``output`` against ``target``, or
    None when accuracy does not apply.

    * class indices: ``output`` of shape ``(n, C)``, C ≥ 2, and integer
      ``target`` of shape ``(n,)`` -> argmax of the rows;
    * one-hot or probability rows: both of shape ``(n, C)`` -> argmax of both;
    * binary: one output column (``(n,)`` or ``(n, 1)``) and 0/1 targets ->
      ``output > threshold``; ``threshold=None`` takes 0.5 when every output
      lies in [0, 1] (probabilities) and 0 otherwise (logits).

    Examples
    --------
    >>> from symgrad.train import accuracy_counts
    >>> accuracy_counts([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]], [0, 1, 1])
    (2, 3)
    >>> accuracy_counts([0.9, 0.2, 0.7], [1, 0, 0])
    (2, 3)
    """
    threshold = _real(threshold, "accuracy_counts: threshold", allow_none=True)
    out, tgt = np.asarray(output), np.asarray(target)
    if out.ndim == 0 or tgt.ndim == 0 or out.shape[0] != tgt.shape[0] or out.dtype.kind not in "fiu":
        return None
    if tgt.dtype.kind not in "fiub":
        return None
    integral = bool(np.all(np.isfinite(tgt)) and np.all(tgt == np.round(tgt)))
    if out.shape[-1] >= 2 and out.shape[:-1] == tgt.shape and integral:
        correct = np.argmax(out, axis=-1) == tgt
        return int(correct.sum()), int(correct.size)
    if out.ndim >= 2 and out.shape[-1] >= 2 and out.shape == tgt.shape:
        correct = np.argmax(out, axis=-1) == np.argmax(tgt, axis=-1)
        return int(correct.sum()), int(correct.size)
    o = out[..., 0] if out.ndim >= 2 and out.shape[-1] == 1 else out
    t = tgt[..., 0] if tgt.ndim >= 2 and tgt.shape[-1] == 1 else tgt
    if o.shape == t.shape and integral and np.all((t == 0) | (t == 1)):
        if threshold is None:
            threshold = 0.5 if (np.all(o >= 0) and np.all(o <= 1)) else 0.0
        correct = (o > threshold) == (t == 1)
        return int(correct.sum()), int(correct.size)
    return None


class _Meter:
    """Sample-weighted means of the batch losses, and accuracy counts."""

    def __init__(self):
        self.loss, self.n, self.correct, self.total, self.has_acc = 0.0, 0, 0, 0, True

    def add(self, loss: float, size: int, counts: tuple[int, int] | None) -> None:
        self.n += size
        self.loss += (loss - self.loss) * (size / self.n)  # a running mean: no sum to overflow near 1e308
        if counts is None:
            self.has_acc = False
        else:
            self.correct += counts[0]
            self.total += counts[1]

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.has_acc and self.total else None


# ------------------------------------------------------------------ fit
def _target_index(step: Any, target: str | None) -> int | None:
    names = _input_names(step)
    if target is not None:
        key = target.name if isinstance(target, Node) else target
        if key not in names:
            raise FeedError(f"fit: target {key!r} is not an input of the step; the inputs are {names}")
        return names.index(key)
    ints = [i for i, node in enumerate(step.inputs) if getattr(node, "dtype", "float") == "int"]
    if len(ints) == 1:
        return ints[0]
    return len(names) - 1 if len(names) >= 2 else None


def _train_epoch(step: Any, checkpoints: _Checkpoints, arrays: list[np.ndarray], names: list[str],
                 order: np.ndarray, batch_size: int, target: int | None, threshold: float | None,
                 epoch: int, norms: GradNorms | None = None) -> _Meter:
    meter = _Meter()
    for number, start in enumerate(range(0, len(order), batch_size), 1):
        idx = order[start:start + batch_size]
        batch = [a[idx] for a in arrays]
        checkpoints.before_update()
        loss, extras = _split(step(*batch))
        if norms is not None:
            extras, batch_norms = norms.split(extras)
        if not math.isfinite(loss):  # the update is undone by fit's handler (checkpoints.running is set)
            error = _nonfinite("training", loss, epoch, number, batch, idx, names)
            raise error if norms is None else _NonFinite(f"{error}; {norms.describe(batch_norms)}")
        if norms is not None:
            problem = norms.problem(batch_norms)
            if problem is not None:  # undone by fit's handler, like a non-finite loss
                raise _NonFinite(f"{problem} at epoch {epoch}, batch {number}")
            norms.add(batch_norms, len(idx))
        checkpoints.after_update()
        counts = None
        if extras and target is not None:
            counts = accuracy_counts(extras[0], batch[target], threshold)
        meter.add(loss, len(idx), counts)
    return meter


def _evaluate(step: Any, arrays: list[np.ndarray], names: list[str], n: int, batch_size: int,
              target: int | None, threshold: float | None, epoch: int) -> _Meter:
    meter = _Meter()
    order = np.arange(n)
    for number, start in enumerate(range(0, n, batch_size), 1):
        idx = order[start:start + batch_size]
        batch = [a[idx] for a in arrays]
        loss, extras = _split(step.evaluate(*batch))
        if not math.isfinite(loss):
            raise _nonfinite("validation", loss, epoch, number, batch, idx, names)
        counts = None
        if extras and target is not None:
            counts = accuracy_counts(extras[0], batch[target], threshold)
        meter.add(loss, len(idx), counts)
    return meter


def _recover(checkpoints: _Checkpoints, best: _Copy | None, history: History) -> str:
    """Put the model back after fit failed or was interrupted; returns what was done."""
    note = checkpoints.undo()
    if best is not None and best.valid and best.finite():
        checkpoints.restore(best)
        history.restored_best = True
        value = history.best(history.monitor)
        return (f"the params, optimizer state and update count of epoch {history.best_epoch} (the best, "
                f"{history.monitor}={value:.4g}) were put back")
    return note


def fit(step: Any, data: Mapping[str | Node, Any], *, epochs: int = 1, batch_size: int = 32,
        validation: Mapping[str | Node, Any] | None = None, early_stopping: int | None = None,
        min_delta: float = 0.0, restore_best: bool = True, seed: int | None = None, shuffle: bool = True,
        target: str | Node | None = None, threshold: float | None = None, eval_batch_size: int | None = None,
        verbose: int = 1, track: str | None = None, max_grad_norm: float | None = None) -> History:
    """Train ``step`` on ``data`` with shuffled mini-batches.

    Parameters
    ----------
    step : a compiled training step (``sg.compile_step``).
    data : dict from input names (or var nodes) to arrays with one row per
        sample, one entry per input of the step.
    epochs : number of passes over ``data``.
    batch_size : samples per update; the last batch of an epoch may be smaller.
    validation : data of the same form, evaluated (no update) after every epoch.
    early_stopping : patience: stop when the monitored value (``val_loss``,
        or ``loss`` without validation) has not improved by more than
        ``min_delta`` for this many epochs.  None (default) never stops early.
    min_delta : a finite number >= 0.
    restore_best : with early stopping, put back the parameter values of the
        best epoch at the end when a later epoch was worse (the optimizer
        state and ``step.t`` are left as they are); when fit fails (see
        below), put back the params, optimizer state and ``step.t`` of the
        best epoch.
    seed : seeds ``np.random.default_rng`` that draws each epoch's
        permutation (None, an int >= 0 or a Generator).  It also makes the
        step's own random draws reproducible (dropout masks, random nodes):
        when the step has a ``seed`` method, fit calls it once at the start
        with an int derived from ``seed`` on a stream of its own (the
        shuffling is the same with or without it).
    shuffle : set False to visit samples in order.
    target : the input holding the targets for accuracy; default: the only
        int input, else the last input.
    threshold : for binary targets, the output value above which the class
        is 1 (default: 0.5 for a sigmoid output node or outputs in [0, 1],
        else 0).
    eval_batch_size : batch size for validation (default ``batch_size``).
    verbose : 0 silent; 1 a tqdm progress bar over epochs when stderr is a
        terminal; 2 one printed line per epoch.
    track : ``"grad_norms"`` records, per epoch, the L2 norm ‖∂L/∂p‖₂ of
        every trained param's gradient: the mean over the epoch's updates,
        weighted by batch size like the loss, as ``history["grad_norm/<param
        name>"]`` (``history.grad_norms`` gathers them; ``history.plot_grad_norms()``
        draws them per layer).  The norms come out of the training step itself
        (a variant compiled once per step, see :mod:`symgrad.gradflow`); with
        ``track=None`` (default) the step runs as it is.
    max_grad_norm : stop training when a gradient norm of one update is above
        this (exploding gradients) or not finite, with a TrainingError naming
        the params and layers; the update is undone and the best epoch's
        weights put back, as for a non-finite loss.  Needs no ``track``.

    Returns
    -------
    History
        Per-epoch ``loss`` and, when the step returns outputs (e.g.
        ``outputs=[logits]``) and the targets are class indices, one-hot rows
        or binary, ``accuracy``; with validation ``val_loss`` and
        ``val_accuracy``.

    Raises
    ------
    FeedError : missing or unknown input names, arrays of different lengths.
    TrainingError : bad settings, or a non-finite loss (training diverged,
        or NaN or ±inf in a batch, whose inputs and rows the message names).
        Its ``history`` attribute holds the :class:`History` of the epochs
        completed.

    Notes
    -----
    The loss of every update is checked before the next one.  An update is
    cheap to undo: the params, the optimizer state and ``step.t`` are copied
    into a preallocated buffer before each update (about 3 % of a step of a
    64-32-10 MLP with Adam).  When the loss comes back NaN or infinite, or
    anything interrupts fit (``KeyboardInterrupt``, an error from the step),
    fit puts back the values of the best epoch when ``restore_best`` (the
    default) and one has been completed, otherwise the values before the
    failed update (or before the update that made the weights non-finite);
    the weights after the last complete update are kept on an interrupt
    between updates.  The exception then carries the History so far as
    ``e.history``: a non-finite loss raises :class:`TrainingError`, a
    ``KeyboardInterrupt`` is re-raised as it came.  Inside fit NumPy's
    overflow, invalid and divide warnings are off: a non-finite loss is
    reported by that error instead.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x, y = sg.var("x", shape=("batch",)), sg.var("y", shape=("batch",))
    >>> w = sg.param("w", 0.0)
    >>> step = sg.compile_step(sg.losses.mse(w * x, y), sg.optim.SGD(lr=0.1), inputs=[x, y])
    >>> xs = np.linspace(-1, 1, 20)
    >>> h = sg.fit(step, {"x": xs, "y": 3 * xs}, epochs=30, batch_size=5, seed=0, verbose=0)
    >>> round(float(w.value), 3), h.epochs[-1]
    (3.0, 30)

    A NaN in the data stops fit before the update it would poison; the
    error names the row, and carries the History so far:

    >>> xs_bad = xs.copy(); xs_bad[7] = np.nan
    >>> try:
    ...     sg.fit(step, {"x": xs_bad, "y": 3 * xs}, batch_size=5, shuffle=False, verbose=0)
    ... except sg.TrainingError as e:
    ...     print(e); print(len(e.history))  # doctest: +ELLIPSIS
    fit: the training loss is nan at epoch 1, batch 2: ... (input 'x' at row(s) 7 of the data); the params ...
    0
    >>> round(float(w.value), 3)
    3.0
    """
    _check_step(step)
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    eval_batch_size = _positive_int(eval_batch_size, "eval_batch_size", allow_none=True) or batch_size
    patience = _positive_int(early_stopping, "early_stopping", allow_none=True)
    if not isinstance(verbose, (int, np.integer, np.bool_)) or verbose not in (0, 1, 2):  # False, True: 0, 1
        raise TrainingError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
    verbose = int(verbose)
    min_delta = _real(min_delta, "fit: min_delta")
    if min_delta < 0:
        raise TrainingError(f"fit: min_delta must be >= 0 (the least decrease that counts as an improvement), "
                            f"got {min_delta!r}")
    restore_best = _flag(restore_best, "restore_best")
    shuffle = _flag(shuffle, "shuffle")
    threshold = _real(threshold, "fit: threshold", allow_none=True)
    rng = _rng(seed)
    arrays, n = _arrays(step, data, "data")
    val = _arrays(step, validation, "validation") if validation is not None else None
    tgt = _target_index(step, target)
    if threshold is None:
        threshold = _output_threshold(step)
    names = _input_names(step)
    params = list(step.params)
    record, limit = check_track(track), check_limit(max_grad_norm)
    runner, norms = step, None  # runner: the step that trains (a variant that also returns gradient norms)
    if record or limit is not None:
        runner = tracking_step(step, params)
        norms = GradNorms(params, len(list(step.outputs)), limit, record)
        copy_state(step, runner)
    derived = step_seed(seed)
    if derived is not None:
        for each in dict.fromkeys([step, runner]):
            reseed = getattr(each, "seed", None)
            if callable(reseed):
                reseed(derived)
    checkpoints = _Checkpoints(runner, params)
    best = checkpoints.new() if restore_best else None

    history = History(monitor="val_loss" if val is not None else "loss")
    best_value, waited = math.inf, 0
    bar = None
    if verbose == 1:
        from tqdm import tqdm
        bar = tqdm(total=epochs, unit="epoch", desc="fit", disable=not sys.stderr.isatty(), leave=True)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for epoch in range(1, epochs + 1):
                order = rng.permutation(n) if shuffle else np.arange(n)
                if norms is not None:
                    norms.reset()
                train = _train_epoch(runner, checkpoints, arrays, names, order, batch_size, tgt, threshold, epoch,
                                     norms)
                if not checkpoints.live_finite():
                    raise _NonFinite(f"the params or optimizer state are not finite after epoch {epoch} although "
                                     f"every loss was (an infinite gradient?)")
                values = {"loss": train.loss}
                if train.accuracy is not None:
                    values["accuracy"] = train.accuracy
                if val is not None:
                    v_arrays, v_n = val
                    vm = _evaluate(step, v_arrays, names, v_n, eval_batch_size, tgt, threshold, epoch)
                    values["val_loss"] = vm.loss
                    if vm.accuracy is not None:
                        values["val_accuracy"] = vm.accuracy
                shown = dict(values)  # the gradient norms go to the History, not the progress line
                if norms is not None:
                    values.update(norms.values())
                history.record(epoch, values)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
                    bar.update(1)
                elif verbose == 2:
                    print(f"epoch {epoch}/{epochs}: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))
                current = values[history.monitor]
                if current < best_value - min_delta:
                    best_value, waited = current, 0
                    history.best_epoch = epoch
                    if best is not None:
                        checkpoints.save(best)
                else:
                    waited += 1
                    if patience is not None and waited >= patience:
                        history.stopped_early = True
                        break
    except _NonFinite as e:
        note = _recover(checkpoints, best, history)
        error = TrainingError(f"fit: {e}" + (f"; {note}" if note else ""))
        error.history = history
        raise error from None
    except BaseException as e:  # KeyboardInterrupt, an error from the step: put the model back, keep the History
        _recover(checkpoints, best, history)
        try:
            e.history = history
        except AttributeError:  # pragma: no cover  (an exception type with __slots__)
            pass
        raise
    finally:
        if bar is not None:
            bar.close()
        if runner is not step:  # the variant's optimizer state and update count go back to the step
            copy_state(runner, step)
    if patience is not None and best is not None and best.valid and history.best_epoch != history.epochs[-1]:
        checkpoints.restore(best, params_only=True)
        history.restored_best = True
    return history


__all__ = ["fit", "History", "accuracy_counts"]
