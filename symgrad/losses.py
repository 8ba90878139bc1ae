"""Loss functions built from ops.  Each reduces by the mean over all
elements (over the batch for ``cross_entropy``, ``nll``, ``hinge`` and ``kl_normal``), as PyTorch
does by default.  Being made of public ops, every loss has gradients, formulas, drawings and
compiled code like any graph.

Examples
--------
>>> import symgrad as sg
>>> float(sg.evaluate(sg.losses.mse(sg.const([1.0, 2.0]), sg.const([0.0, 0.0])), {}))
2.5
"""
from __future__ import annotations

from .errors import GraphError, ShapeError
from .graph import Node, finite_number, format_shape
from .ops import apply, as_node, const, exp, greater, log_softmax, mean, mul, one_hot, relu, where
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


def _class_weights(op: str, scores: Node, target, what: str = "scores") -> Node:
    """``target`` as weights over the class axis (the last) of ``scores``: an int var of class
    indices of shape ``scores.shape[:-1]`` becomes its one-hot rows; float rows of ``scores``' shape
    are used as given."""
    target = as_node(target, op)
    if scores.ndim == 0:
        raise ShapeError(f"{op}: {what} must have a class axis (the last), got a scalar ({scores.describe()})")
    if target.dtype == "int":
        classes = scores.shape[-1]
        if not isinstance(classes, int):
            raise ShapeError(f"{op}: the class axis of {scores.describe()} must have a fixed size")
        if target.shape != scores.shape[:-1]:
            raise ShapeError(f"{op}: index targets {target.describe()} must have shape "
                             f"{format_shape(scores.shape[:-1])} for {scores.describe()}")
        return one_hot(target, classes)
    if target.shape != scores.shape:
        raise ShapeError(f"{op}: targets {target.describe()} must be class indices of shape "
                         f"{format_shape(scores.shape[:-1])} or rows of shape {format_shape(scores.shape)}")
    if target.dtype != "float":
        raise GraphError(f"{op}: unsupported target dtype {target.dtype}")
    return target


def cross_entropy(logits, target, name=None) -> Node:
    """Softmax cross-entropy along the last axis, averaged over the batch.

    ``target`` is either an int var of class indices with shape
    ``logits.shape[:-1]``, or one-hot / probability rows of ``logits``'
    shape.  Exact for any finite logits and for −∞ logits of classes whose
    target weight is 0 (their term is 0, not 0·(−∞)).
    """
    logits = as_node(logits, "cross_entropy")
    target = _class_weights("cross_entropy", logits, target, "logits")
    # a zero target weight wins over a −∞ log-probability (0·log 0 = 0), as PyTorch's nll_loss picks
    per_sample = -_sum(apply("weighted", target, log_softmax(logits, axis=-1)), axis=-1)
    return _mean(per_sample, name=name)


def nll(log_probs, target, name=None) -> Node:
    """Negative log-likelihood of log-probabilities along the last axis, averaged over the batch
    (PyTorch's ``NLLLoss``): −mean over samples of ``log_probs[…, y]``.

    ``target`` is an int var of class indices of shape ``log_probs.shape[:-1]``, or one-hot (or
    probability) rows of ``log_probs``' shape, as in :func:`cross_entropy`; a row then gives
    −Σ_c t_c·log p_c, and a class with weight 0 adds 0 even where its log-probability is −∞.
    ``nll(sg.log_softmax(z), y)`` is ``cross_entropy(z, y)``.

    Examples
    --------
    >>> import numpy as np
    >>> import symgrad as sg
    >>> logp = sg.const(np.log([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    >>> y = sg.var("y", shape=(2,), dtype="int")
    >>> round(float(sg.evaluate(sg.losses.nll(logp, y), {y: [0, 2]})), 6)  # −(log 0.5 + log 0.8)/2
    0.458145
    """
    log_probs = as_node(log_probs, "nll")
    target = _class_weights("nll", log_probs, target, "log_probs")
    per_sample = -_sum(apply("weighted", target, log_probs), axis=-1)
    return _mean(per_sample, name=name)


def kl_normal(mu, logvar, name=None) -> Node:
    """KL(𝒩(μ, σ²) ‖ 𝒩(0, I)) of a diagonal Gaussian given its mean and log-variance log σ²,
    summed over the latent dims (the last axis) and averaged over the batch (any leading axes):
    −½ Σ_j (1 + log σ²_j − μ_j² − σ²_j), the VAE's regulariser.

    Scalars are one latent dim.  The loss is +∞ where exp(log σ²) overflows (log σ² > 709), as in
    PyTorch; a very negative log σ² gives σ² = 0 and a finite loss.

    Examples
    --------
    >>> import symgrad as sg
    >>> mu, logvar = sg.const([[0.0, 1.0], [0.0, 0.0]]), sg.const([[0.0, 0.0], [0.0, 0.0]])
    >>> float(sg.evaluate(sg.losses.kl_normal(mu, logvar)))  # (½·1² + 0)/2
    0.25
    >>> m, s = sg.var("mu"), sg.var("s")
    >>> print(sg.latex(sg.losses.kl_normal(m, s)))
    \\frac{\\mu^{2} - s + e^{s} - 1}{2}
    """
    mu, logvar = as_node(mu, "kl_normal"), as_node(logvar, "kl_normal")
    if mu.shape != logvar.shape:
        raise ShapeError(f"kl_normal: mu {format_shape(mu.shape)} and logvar {format_shape(logvar.shape)} "
                         f"must have the same shape ({mu.describe()}, {logvar.describe()})")
    per_dim = 1.0 + logvar - mu ** 2 - exp(logvar)
    per_sample = -0.5 * (_sum(per_dim, axis=-1) if per_dim.ndim else per_dim)
    return _mean(per_sample, name=name)


def huber(pred, target, delta: float = 1.0, name=None) -> Node:
    """Huber loss (PyTorch's ``HuberLoss``), the mean over all entries of

        ½ d²           where |d| < δ,
        δ (|d| − ½ δ)  elsewhere,        d = pred − target:

    quadratic near 0, linear in the tails (gradient d clipped to [−δ, δ]).  Built with
    :func:`symgrad.where`, so it prints as a piecewise formula.  The square of the unused branch
    overflows (a warning, the loss still right) only where |d| > 1e154.

    Examples
    --------
    >>> import symgrad as sg
    >>> float(sg.evaluate(sg.losses.huber(sg.const([0.5, 3.0]), sg.const([0.0, 0.0]))))  # (0.125 + 2.5)/2
    1.3125
    >>> p, t = sg.var("p"), sg.var("t")
    >>> print(sg.formula(sg.losses.huber(p, t, delta=2.0)))
    Piecewise(((p - t)**2/2, Abs(p - t) < 2), (2*Abs(p - t) - 2, True))
    """
    pred, target = _pair("huber", pred, target)
    width = finite_number(delta)
    if width is None or width <= 0:
        raise GraphError(f"huber: delta must be a positive finite number, got {delta!r}")
    d = pred - target
    size = _abs(d)
    quadratic = 0.5 * d ** 2
    linear = mul(const(width), size - 0.5 * width)
    return _mean(where(greater(const(width), size), quadratic, linear), name=name)


def hinge(scores, target, margin: float = 1.0, name=None) -> Node:
    """Multi-class hinge loss (PyTorch's ``MultiMarginLoss`` with p = 1): for scores s of C classes
    along the last axis and true class y, Σ_{j ≠ y} max(0, margin − s_y + s_j) / C, averaged over
    the batch.

    ``target`` is an int var of class indices of shape ``scores.shape[:-1]``, or one-hot rows of
    ``scores``' shape (the class whose entry is 1; the rows are not checked).  For a binary
    problem with ±1 labels give two scores per sample and class indices 0/1, or write
    ``sg.mean(sg.relu(1 - y * s))``.

    Examples
    --------
    >>> import symgrad as sg
    >>> s = sg.const([[0.1, 0.2, 0.4, 0.8]])
    >>> y = sg.var("y", shape=(1,), dtype="int")
    >>> round(float(sg.evaluate(sg.losses.hinge(s, y), {y: [3]})), 6)  # (0.3 + 0.4 + 0.6)/4
    0.325
    """
    scores = as_node(scores, "hinge")
    value = finite_number(margin)
    if value is None:
        raise GraphError(f"hinge: margin must be a finite number, got {margin!r}")
    target = _class_weights("hinge", scores, target)
    true_score = _sum(apply("weighted", target, scores), axis=-1, keepdims=True)
    violations = relu(value - true_score + scores)
    per_sample = mean(apply("weighted", 1.0 - target, violations), axis=-1)
    return _mean(per_sample, name=name)


__all__ = ["mse", "mae", "bce", "bce_with_logits", "cross_entropy", "nll", "kl_normal", "huber", "hinge"]
