"""Loss functions built from ops.  Each reduces by the mean over all
elements (over the batch for ``cross_entropy``), as PyTorch does by default.

Examples
--------
>>> import symgrad as sg
>>> float(sg.evaluate(sg.losses.mse(sg.const([1.0, 2.0]), sg.const([0.0, 0.0])), {}))
2.5
"""
from __future__ import annotations

from .errors import GraphError, ShapeError
from .graph import Node, format_shape
from .ops import apply, as_node, log_softmax, mean, one_hot
from .ops import abs as _abs
from .ops import sum as _sum


def _pair(name: str, pred, target) -> tuple[Node, Node]:
    pred, target = as_node(pred, name), as_node(target, name)
    if pred.shape != target.shape:
        raise ShapeError(f"{name}: prediction {format_shape(pred.shape)} and target {format_shape(target.shape)} "
                         f"must have the same shape ({pred.describe()}, {target.describe()})")
    return pred, target


def _mean(x: Node, name) -> Node:
    """The mean of the per-entry losses; a scalar loss is its own mean (no ``mean`` node to draw)."""
    if x.shape == ():
        return x.named(name) if name is not None else x
    return mean(x, name=name)


def mse(pred, target, name=None) -> Node:
    """Mean squared error: mean((pred − target)²)."""
    pred, target = _pair("mse", pred, target)
    return _mean((pred - target) ** 2, name=name)


def mae(pred, target, name=None) -> Node:
    """Mean absolute error: mean(|pred − target|)."""
    pred, target = _pair("mae", pred, target)
    return _mean(_abs(pred - target), name=name)


def bce(prob, target, name=None) -> Node:
    """Binary cross-entropy of probabilities: −mean(y log p + (1 − y) log(1 − p)).

    The logs are clamped at −100 as in PyTorch, so p = 0 or 1 gives a
    finite loss; prefer :func:`bce_with_logits` for logits.
    """
    prob, target = _pair("bce", prob, target)
    return _mean(apply("bce", prob, target), name=name)


def bce_with_logits(logits, target, name=None) -> Node:
    """Binary cross-entropy of σ(logits), computed stably for any logit."""
    logits, target = _pair("bce_with_logits", logits, target)
    return _mean(apply("bce_logits", logits, target), name=name)


def cross_entropy(logits, target, name=None) -> Node:
    """Softmax cross-entropy along the last axis, averaged over the batch.

    ``target`` is either an int var of class indices with shape
    ``logits.shape[:-1]``, or one-hot / probability rows of ``logits``'
    shape.  Exact for any finite logits and for −∞ logits of classes whose
    target weight is 0 (their term is 0, not 0·(−∞)).
    """
    logits, target = as_node(logits, "cross_entropy"), as_node(target, "cross_entropy")
    if logits.ndim == 0:
        raise ShapeError(f"cross_entropy: logits must have a class axis, got a scalar ({logits.describe()})")
    if target.dtype == "int":
        classes = logits.shape[-1]
        if not isinstance(classes, int):
            raise ShapeError(f"cross_entropy: the class axis of {logits.describe()} must have a fixed size")
        if target.shape != logits.shape[:-1]:
            raise ShapeError(f"cross_entropy: index targets {target.describe()} must have shape "
                             f"{format_shape(logits.shape[:-1])} for logits {logits.describe()}")
        target = one_hot(target, classes)
    elif target.shape != logits.shape:
        raise ShapeError(f"cross_entropy: targets {target.describe()} must be class indices of shape "
                         f"{format_shape(logits.shape[:-1])} or rows of shape {format_shape(logits.shape)}")
    if target.dtype not in ("float", "int"):
        raise GraphError(f"cross_entropy: unsupported target dtype {target.dtype}")
    # a zero target weight wins over a −∞ log-probability (0·log 0 = 0), as PyTorch's nll_loss picks
    per_sample = -_sum(apply("weighted", target, log_softmax(logits, axis=-1)), axis=-1)
    return _mean(per_sample, name=name)


__all__ = ["mse", "mae", "bce", "bce_with_logits", "cross_entropy"]
