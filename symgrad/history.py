"""The per-epoch record of a training run: :class:`History`, returned by
:func:`~symgrad.train.fit`, and its loss/accuracy plot."""
from __future__ import annotations

import math
import os
from typing import Mapping

import numpy as np

from .errors import DependencyError, RenderError, TrainingError
from .files import atomic_open

#: History key prefix of gradient norms (``fit(..., track="grad_norms")``)
GRAD_NORM = "grad_norm/"

# -------------------------------------------------------------- history
class History:
    """Per-epoch numbers recorded by :func:`fit`.

    Attributes
    ----------
    history : dict of lists, one entry per epoch: ``"loss"`` (mean training
        loss over the epoch's batches, weighted by batch size), and when
        available ``"accuracy"``, ``"val_loss"``, ``"val_accuracy"``; with
        ``fit(..., track="grad_norms")`` ``"grad_norm/<param name>"`` (the
        mean L2 norm of that param's gradient over the epoch's updates).
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

    @property
    def grad_norms(self) -> dict[str, list[float]]:
        """``{param name: [norm per epoch]}`` of the recorded gradient norms (empty without
        ``fit(..., track="grad_norms")``)."""
        return {k[len(GRAD_NORM):]: v for k, v in self.history.items() if k.startswith(GRAD_NORM)}

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items()
                         if not k.startswith(GRAD_NORM)) if self.epochs else "empty"
        norms = f", grad norms of {len(self.grad_norms)} params" if self.grad_norms else ""
        return f"History({len(self.epochs)} epochs, best_epoch={self.best_epoch}, last: {last}{norms})"

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


    def plot_grad_norms(self, path: str | os.PathLike | None = None, *, title: str | None = None):
        """The recorded gradient norms as a matplotlib Figure, per layer.

        Left: each param's ‖∂L/∂p‖₂ over the epochs, one colour per layer (the
        name before the last dot: ``mlp.0`` of ``mlp.0.W``), one line style per
        kind of param (``W`` solid, ``b`` dashed, …).  Right: the norm of each
        layer's gradient (all its params together, √Σ‖∂L/∂p‖²) against its
        depth, at the first and the last epoch: vanishing gradients slope
        down towards the input, exploding ones up.  Both axes of norms are
        logarithmic.  ``path`` and ``title`` as for :meth:`plot`.

        Raises
        ------
        TrainingError : no gradient norms recorded (fit without ``track="grad_norms"``).

        Examples
        --------
        >>> from symgrad.train import History
        >>> h = History(monitor="loss")
        >>> h.record(1, {"loss": 1.0, "grad_norm/l1.W": 0.01, "grad_norm/l2.W": 0.5})
        >>> h.record(2, {"loss": 0.5, "grad_norm/l1.W": 0.02, "grad_norm/l2.W": 0.3})
        >>> len(h.plot_grad_norms().axes)
        2
        """
        Figure, FigureCanvasAgg = _matplotlib("History.plot_grad_norms")
        from matplotlib.ticker import MaxNLocator
        _check_plot_args("History.plot_grad_norms", path, title, FigureCanvasAgg)
        norms = self.grad_norms
        if not norms or not self.epochs:
            raise TrainingError("History.plot_grad_norms: no gradient norms recorded; "
                                "train with sg.fit(..., track=\"grad_norms\")")
        layers: dict[str, list[str]] = {}
        for name in norms:
            layers.setdefault(name.rsplit(".", 1)[0] if "." in name else name, []).append(name)
        fig = Figure(figsize=(11.0, 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        over_time, by_depth = fig.subplots(1, 2)
        styles = ("-", "--", ":", "-.")
        colors = [f"C{k % 10}" for k in range(len(layers))]
        kinds: dict[str, str] = {}
        for color, (layer, names) in zip(colors, layers.items()):
            for name in names:
                kind = name.rsplit(".", 1)[-1]
                style = kinds.setdefault(kind, styles[len(kinds) % len(styles)])
                over_time.plot(self.epochs, _positive(norms[name]), style, color=color, marker="o", markersize=3,
                               label=name)
        over_time.set_xlabel("epoch")
        over_time.xaxis.set_major_locator(MaxNLocator(integer=True))
        over_time.set_ylabel("‖∂L/∂p‖₂ (log scale)")
        over_time.set_yscale("log")
        over_time.grid(True, alpha=0.3)
        over_time.legend(fontsize=8, ncol=2 if len(norms) > 8 else 1)
        depth = np.arange(1, len(layers) + 1)
        for at, label, style in ((0, f"epoch {self.epochs[0]}", "o--"), (-1, f"epoch {self.epochs[-1]}", "o-")):
            per_layer = [math.sqrt(sum(norms[n][at] ** 2 for n in names)) for names in layers.values()]
            by_depth.plot(depth, _positive(per_layer), style, label=label)
        by_depth.set_xticks(depth, list(layers), rotation=45 if len(layers) > 6 else 0, fontsize=8)
        by_depth.set_xlabel("layer (input → output)")
        by_depth.set_ylabel("layer gradient norm (log scale)")
        by_depth.set_yscale("log")
        by_depth.grid(True, alpha=0.3)
        by_depth.legend()
        if title:
            fig.suptitle(title)
        if path is not None:
            _save_figure(fig, os.fspath(path))
        return fig


def _positive(values) -> np.ndarray:
    """Values for a log axis: zeros and non-finite entries become gaps (NaN)."""
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def _matplotlib(what: str):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator  # noqa: F401  (checked here, imported where used)
    except ImportError:
        raise DependencyError(f"{what} needs matplotlib: pip install 'symgrad[gallery]' "
                              f"or pip install matplotlib") from None
    return Figure, FigureCanvasAgg


def _check_plot_args(what: str, path, title, canvas) -> None:
    if title is not None and not isinstance(title, str):
        raise TrainingError(f"{what}: title must be a string or None, got {title!r}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TrainingError(f"{what}: path must be a file path (str or os.PathLike) or None, "
                            f"got {type(path).__name__}")
    if path is not None:
        _image_format(os.fspath(path), canvas.get_supported_filetypes())


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

