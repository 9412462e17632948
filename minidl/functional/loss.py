"""Numerically stable softmax cross-entropy from logits."""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_array, check_float_dtype, check_ndim

__all__ = ["log_softmax", "softmax", "cross_entropy", "cross_entropy_backward", "smoothed_targets"]


def log_softmax(x, axis=-1):
    r"""``x - logsumexp(x)`` computed as ``(x - max) - log(sum(exp(x - max)))``: never overflows.

    Examples
    --------
    >>> np.exp(log_softmax(np.array([[-1000.0, 1.0]]))).round(3)
    array([[0., 1.]])
    """
    x = np.asarray(x)
    with np.errstate(under="ignore", over="ignore", invalid="ignore"):
        # x - max may overflow to -inf (float32 logits of +-3e38) and exp underflow to 0:
        # both are the right limits; +inf logits give nan, as in torch
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x, axis=-1):
    """``exp(log_softmax(x))``; rows sum to 1."""
    x = np.asarray(x)
    with np.errstate(under="ignore", over="ignore", invalid="ignore"):
        shifted = x - x.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=axis, keepdims=True)


def smoothed_targets(logits, targets, label_smoothing=0.0, where="cross_entropy"):
    r"""Validate ``targets`` and return the target distribution ``T`` of shape (N, K).

    Integer labels ``y`` (shape (N,)) give ``T = (1 - eps) * onehot(y) + eps / K``;
    probability targets (float, shape (N, K)) give ``T = (1 - eps) * P + eps / K``,
    PyTorch's ``label_smoothing`` rule in both cases.
    """
    check_array(logits, "logits", where)
    check_ndim(logits, 2, "logits", where, "(N, num_classes)")
    check_float_dtype(logits, "logits", where)
    if (not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, bool)
            or not 0.0 <= label_smoothing <= 1.0):
        raise ValueError(
            f"{where}: label_smoothing must be a float in [0, 1]. "
            f"Received: label_smoothing={label_smoothing!r}"
        )
    n, k = logits.shape
    targets = np.asarray(targets)
    if np.issubdtype(targets.dtype, np.integer):
        if targets.shape != (n,):
            raise ValueError(
                f"{where}: expected integer labels of shape ({n},) (one per row of logits "
                f"{logits.shape}), got shape {targets.shape}."
            )
        if n and (targets.min() < 0 or targets.max() >= k):
            bad = targets[(targets < 0) | (targets >= k)]
            raise ValueError(
                f"{where}: labels must be in [0, {k - 1}] for {k} classes; "
                f"got {bad.size} out of range, e.g. {int(bad[0])}."
            )
        dist = np.zeros((n, k), dtype=logits.dtype)
        dist[np.arange(n), targets] = 1.0
    elif np.issubdtype(targets.dtype, np.floating):
        if targets.shape != (n, k):
            raise ValueError(
                f"{where}: expected probability targets of shape {(n, k)} (same as logits), "
                f"got {targets.shape}. For class indices pass an integer array of shape ({n},)."
            )
        dist = targets.astype(logits.dtype, copy=True)
    else:
        raise TypeError(
            f"{where}: targets must be integer class labels or float class probabilities. "
            f"Received: dtype={targets.dtype}."
        )
    if label_smoothing:
        dist *= 1.0 - label_smoothing
        dist += label_smoothing / k
    return dist


def cross_entropy(logits, targets, label_smoothing=0.0):
    r"""Mean over the batch of ``-sum_k T[n, k] * log_softmax(logits)[n, k]``.

    Parameters
    ----------
    logits : ndarray, shape (N, K)
    targets : int ndarray (N,) of labels in [0, K), or float ndarray (N, K) of probabilities
    label_smoothing : float in [0, 1]

    Returns
    -------
    float

    Notes
    -----
    .. math:: L = -\frac{1}{N}\sum_n \sum_k T_{nk}\,(z_{nk} - \max_j z_{nj}
              - \log\sum_j e^{z_{nj} - \max_j z_{nj}})

    Examples
    --------
    >>> round(cross_entropy(np.array([[1e4, 0.0]]), np.array([1])), 1)
    10000.0
    """
    dist = smoothed_targets(logits, targets, label_smoothing)
    n, k = logits.shape
    ls = log_softmax(logits)
    targets = np.asarray(targets)
    with np.errstate(invalid="ignore", over="ignore"):
        if np.issubdtype(targets.dtype, np.integer):
            # torch's formula: pick the target's log-probability (a masked -inf logit elsewhere
            # does not turn the loss into 0 * -inf = nan), plus the smoothing term over all classes
            total = -(1.0 - label_smoothing) * ls[np.arange(n), targets].sum()
            if label_smoothing:
                total -= label_smoothing / k * ls.sum()
        else:  # probabilities: -sum T log p, as torch (0 * -inf is nan there too)
            total = -(dist * ls).sum()
    return float(total / n) + 0.0  # + 0.0: no -0.0 (torch gives 0.0)


def cross_entropy_backward(logits, targets, label_smoothing=0.0):
    r"""dL/dlogits of :func:`cross_entropy`: ``(softmax(z) * sum_k T[n, k] - T) / N``.

    For targets that sum to 1 per row this is the familiar ``(softmax(z) - T) / N``.
    The ``1 / N`` of the mean lives here and nowhere else.
    """
    dist = smoothed_targets(logits, targets, label_smoothing)
    n = logits.shape[0]
    mass = dist.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):  # a row of +inf or all -inf logits: nan, as torch
        return ((softmax(logits) * mass - dist) / n).astype(logits.dtype, copy=False)
