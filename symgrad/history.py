"""The per-epoch record of a training run: :class:`History`, returned by
:func:`~symgrad.train.fit`, and its loss/accuracy plot."""
from __future__ import annotations

import math
import os
from typing import Mapping

import numpy as np

from .errors import DependencyError, RenderError, TrainingError
from .files import atomic_open

# -------------------------------------------------------------- history
class History:
    """Per-epoch numbers recorded by :func:`fit`.

    Attributes
    ----------
    history : dict of lists, one entry per epoch: ``"loss"`` (mean training
        loss over the epoch's batches, weighted by batch size), and when
        available ``"accuracy"``, ``"val_loss"``, ``"val_accuracy"``.
    epochs : the epoch numbers run, ``[1, 2, ...]``.
    best_epoch : the epoch with the lowest monitored value (1-based; an
        improvement must exceed ``fit``'s ``min_delta``).
    monitor : ``"val_loss"`` when validation data was given, else ``"loss"``.
    stopped_early : whether early stopping ended training.
    restored_best : whether the weights of ``best_epoch`` were restored.

    Examples
    --------
    >>> from symgrad.train import History
    >>> h = History(monitor="loss")
    >>> h.record(1, {"loss": 0.9}); h.record(2, {"loss": 0.5})
    >>> h["loss"], h.epochs
    ([0.9, 0.5], [1, 2])
    """

    def __init__(self, monitor: str = "val_loss"):
        if not isinstance(monitor, str) or not monitor:
            raise TrainingError(f"History: monitor must be the name of a recorded value (e.g. 'val_loss'), "
                                f"got {monitor!r}")
        self.history: dict[str, list[float]] = {}
        self.epochs: list[int] = []
        self.monitor = monitor
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.restored_best = False

    def record(self, epoch: int, values: Mapping[str, float]) -> None:
        """Append one epoch's numbers (keys absent in earlier epochs are padded with NaN)."""
        if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, (int, np.integer)) or epoch < 1:
            raise TrainingError(f"History.record: epoch must be a positive int, got {epoch!r}")
        if self.epochs and epoch <= self.epochs[-1]:
            raise TrainingError(f"History.record: epoch {epoch} does not follow the last recorded epoch "
                                f"{self.epochs[-1]}")
        if not isinstance(values, Mapping):
            raise TrainingError(f"History.record: values must be a dict from names to numbers, "
                                f"got {type(values).__name__}")
        for key, value in values.items():
            if not isinstance(key, str):
                raise TrainingError(f"History.record: value names must be strings, got {key!r}")
            if isinstance(value, (bool, np.bool_, str, bytes)):
                raise TrainingError(f"History.record: {key!r} must be a number, got {value!r}")
            try:
                float(value)
            except (TypeError, ValueError, OverflowError):
                raise TrainingError(f"History.record: {key!r} must be a number, got {value!r}") from None
        for key in values:
            if key not in self.history:
                self.history[key] = [math.nan] * len(self.epochs)
        for key, column in self.history.items():
            column.append(float(values.get(key, math.nan)))
        self.epochs.append(int(epoch))

    def __getitem__(self, key: str) -> list[float]:
        try:
            return self.history[key]
        except KeyError:
            raise KeyError(f"History has no {key!r}; it has {sorted(self.history)}") from None

    def __len__(self) -> int:
        return len(self.epochs)

    def best(self, key: str) -> float:
        """The value of ``key`` at :attr:`best_epoch`."""
        if self.best_epoch is None:
            raise TrainingError("History: no epoch has a finite monitored value")
        return self[key][self.epochs.index(self.best_epoch)]

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items()) if self.epochs else "empty"
        return f"History({len(self.epochs)} epochs, best_epoch={self.best_epoch}, last: {last})"

    def plot(self, path: str | os.PathLike | None = None, *, title: str | None = None):
        """Loss curves (and accuracy curves when recorded) as a matplotlib Figure.

        The loss axis is logarithmic when the losses span more than a
        factor 10; the best epoch is marked.

        Parameters
        ----------
        path : when given, the figure is saved there (format from the
            suffix: ``.png``, ``.svg``, ``.pdf``), written atomically with
            the Agg canvas; pyplot's global state is never touched.
        title : figure title.

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        DependencyError : matplotlib is not installed.
        RenderError : the suffix of ``path`` is not an image format matplotlib writes.
        TrainingError : nothing recorded yet; a ``path`` or ``title`` of the wrong type.

        Examples
        --------
        >>> from symgrad.train import History
        >>> h = History(monitor="loss")
        >>> for e, l in enumerate([1.0, 0.6, 0.4], 1): h.record(e, {"loss": l})
        >>> len(h.plot().axes)
        1
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
            from matplotlib.ticker import MaxNLocator
        except ImportError:
            raise DependencyError("History.plot needs matplotlib: pip install 'symgrad[gallery]' "
                                  "or pip install matplotlib") from None
        if title is not None and not isinstance(title, str):
            raise TrainingError(f"History.plot: title must be a string or None, got {title!r}")
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TrainingError(f"History.plot: path must be a file path (str or os.PathLike) or None, "
                                f"got {type(path).__name__}")
        if path is not None:
            _image_format(os.fspath(path), FigureCanvasAgg.get_supported_filetypes())
        if not self.epochs:
            raise TrainingError("History.plot: nothing recorded yet")
        has_acc = any(k in self.history for k in ("accuracy", "val_accuracy"))
        fig = Figure(figsize=(10.0 if has_acc else 5.5, 4.0), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
        panels = [("loss", "loss", 1.0)]
        if has_acc:
            panels.append(("accuracy", "accuracy (%)", 100.0))
        for ax, (key, label, scale) in zip(axes, panels):
            for k, style, lab in ((key, "-", "train"), (f"val_{key}", "--", "validation")):
                if k in self.history:
                    ax.plot(self.epochs, np.asarray(self.history[k]) * scale, style, marker="o",
                            markersize=3, label=lab)
            if self.best_epoch is not None:
                note = "best epoch" + (" (restored)" if self.restored_best else "")
                ax.axvline(self.best_epoch, color="grey", linestyle=":", label=f"{note}: {self.best_epoch}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            if key == "loss" and _spans_decades(self.history.get("loss", []) + self.history.get("val_loss", [])):
                ax.set_yscale("log")
                ax.set_ylabel("loss (log scale)")
            ax.grid(True, alpha=0.3)
            ax.legend()
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if title:
            fig.suptitle(title)
        if path is not None:
            _save_figure(fig, os.fspath(path))
        return fig


def _spans_decades(values: list[float]) -> bool:
    """Whether positive losses vary by more than 10×, where a log axis shows the tail better."""
    v = np.asarray([x for x in values if np.isfinite(x)])
    return bool(v.size and np.all(v > 0) and v.max() > 10 * v.min())


def _image_format(path: str, formats) -> str:
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    if fmt not in formats:
        raise RenderError(f"History.plot: cannot write {path!r}: unknown image format {fmt!r}; "
                          f"the suffix must be one of {', '.join('.' + f for f in sorted(formats))}")
    return fmt


def _save_figure(fig, path: str) -> None:
    fmt = _image_format(path, fig.canvas.get_supported_filetypes())
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=120)

