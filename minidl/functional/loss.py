"""Numerically stable softmax cross-entropy from logits, as :func:`torch.nn.functional.cross_entropy`.

At the edges the results are PyTorch's: a ``-inf`` logit (a masked class)
gives probability 0 and a finite loss unless the target puts weight on it
(then the loss is ``inf``); logits near the dtype's maximum never overflow in
the shift; a ``+inf`` logit or a row of ``-inf`` gives ``nan``. Non-finite
results come without numpy warnings: the caller (the Trainer) decides what a
non-finite loss means.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_array, check_float_dtype, check_ndim

__all__ = ["log_softmax", "softmax", "cross_entropy", "cross_entropy_backward", "smoothed_targets",
           "check_label_smoothing", "check_cross_entropy_args"]

# inf - inf, 0 * inf, x - max overflowing to -inf: each gives PyTorch's value here.
_QUIET = dict(over="ignore", under="ignore", invalid="ignore", divide="ignore")


def _real_array(x, where):
    """``x`` as a float array: TypeError for non-arrays, integers and bools promoted to float64."""
    check_array(x, "x", where)
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    if x.dtype.kind != "f":
        raise TypeError(f"{where}: x must be a real (float or integer) array. Received: dtype={x.dtype}.")
    return x


def log_softmax(x, axis=-1):
    r"""``x - logsumexp(x)`` computed as ``(x - max) - log(sum(exp(x - max)))``: never overflows.

    Parameters
    ----------
    x : ndarray
        Float (dtype kept) or integer (computed in float64) array.
    axis : int
        The class axis.

    Returns
    -------
    ndarray, same shape as ``x``

    Notes
    -----
    A ``-inf`` entry gives ``-inf`` (probability 0) and leaves the others exact;
    as in PyTorch, ``x - max`` may round to ``-inf`` when it exceeds the dtype's range
    (``-3e38 - 3e38`` in float32), which is the correctly rounded answer.

    Examples
    --------
    >>> np.exp(log_softmax(np.array([[-1000.0, 1.0]]))).round(3)
    array([[0., 1.]])
    >>> log_softmax(np.array([[0.0, -np.inf, 0.0]])).round(4)
    array([[-0.6931,    -inf, -0.6931]])
    """
    x = _real_array(x, "log_softmax")
    with np.errstate(**_QUIET):
        shifted = x - x.max(axis=axis, keepdims=True)
        shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


def softmax(x, axis=-1):
    """``exp(log_softmax(x))``; rows sum to 1, a ``-inf`` entry gives exactly 0.

    Examples
    --------
    >>> softmax(np.array([[0.0, -np.inf, 0.0]]))
    array([[0.5, 0. , 0.5]])
    """
    x = _real_array(x, "softmax")
    with np.errstate(**_QUIET):
        e = x - x.max(axis=axis, keepdims=True)
        np.exp(e, out=e)
        e /= e.sum(axis=axis, keepdims=True)
    return e


def check_label_smoothing(label_smoothing, where: str) -> float:
    """Return ``label_smoothing`` as a float in [0, 1], or raise ValueError (bools refused)."""
    if (not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, bool)
            or not 0.0 <= label_smoothing <= 1.0):
        raise ValueError(
            f"{where}: label_smoothing must be a float in [0, 1]. "
            f"Received: label_smoothing={label_smoothing!r}"
        )
    return float(label_smoothing)


def check_cross_entropy_args(logits, targets, label_smoothing, where="cross_entropy"):
    """Validate; return ``targets`` as an integer (N,) or float (N, K) array (not smoothed).

    :func:`cross_entropy` and :func:`cross_entropy_backward` run it unless told
    ``check_args=False`` by a caller that ran it on the same arguments
    (:class:`~minidl.losses.SoftmaxCrossEntropy` checks in forward only).
    """
    check_array(logits, "logits", where)
    check_ndim(logits, 2, "logits", where, "(N, num_classes)")
    check_float_dtype(logits, "logits", where)
    check_label_smoothing(label_smoothing, where)
    n, k = logits.shape
    if k == 0:
        raise ValueError(f"{where}: logits must have at least one class. Received: shape {logits.shape}.")
    targets = np.asarray(targets)
    if targets.dtype.kind in "iu":
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
    elif targets.dtype.kind == "f":
        if targets.shape != (n, k):
            raise ValueError(
                f"{where}: expected probability targets of shape {(n, k)} (same as logits), "
                f"got {targets.shape}. For class indices pass an integer array of shape ({n},)."
            )
    else:
        raise TypeError(
            f"{where}: targets must be integer class labels or float class probabilities. "
            f"Received: dtype={targets.dtype}."
        )
    return targets


def _smoothed(targets, logits, label_smoothing):
    """The target distribution ``T`` (N, K) in the logits' dtype, a new array."""
    n, k = logits.shape
    if targets.dtype.kind == "f":
        dist = targets.astype(logits.dtype, copy=True)
    else:
        dist = np.zeros((n, k), dtype=logits.dtype)
        dist[np.arange(n), targets] = 1.0
    if label_smoothing:
        dist *= 1.0 - label_smoothing
        dist += label_smoothing / k
    return dist


def smoothed_targets(logits, targets, label_smoothing=0.0, where="cross_entropy"):
    r"""Validate ``targets`` and return the target distribution ``T`` of shape (N, K).

    Integer labels ``y`` (shape (N,)) give ``T = (1 - eps) * onehot(y) + eps / K``;
    probability targets (float, shape (N, K)) give ``T = (1 - eps) * P + eps / K``,
    PyTorch's ``label_smoothing`` rule in both cases.
    """
    targets = check_cross_entropy_args(logits, targets, label_smoothing, where)
    return _smoothed(targets, logits, label_smoothing)


def cross_entropy(logits, targets, label_smoothing=0.0, *, check_args=True):
    r"""Mean over the batch of ``-sum_k T[n, k] * log_softmax(logits)[n, k]``.

    Parameters
    ----------
    logits : ndarray, shape (N, K)
    targets : int ndarray (N,) of labels in [0, K), or float ndarray (N, K) of probabilities
    label_smoothing : float in [0, 1]
    check_args : bool, default True
        False skips :func:`check_cross_entropy_args` (its result must be ``targets``).

    Returns
    -------
    float

    Notes
    -----
    .. math:: L = -\frac{1}{N}\sum_n \sum_k T_{nk}\,(z_{nk} - \max_j z_{nj}
              - \log\sum_j e^{z_{nj} - \max_j z_{nj}})

    Computed as PyTorch computes it, so that the edges agree too. Integer
    labels: ``(1 - eps) * mean(-log_softmax[n, y_n]) + eps / K * mean(-sum_k log_softmax)``,
    so a ``-inf`` logit (a masked class) costs nothing unless it is the target
    (loss ``inf``) or ``eps > 0`` (loss ``inf``). Probability targets:
    ``-sum(T * log_softmax) / N``, so a zero target on a ``-inf`` logit gives
    ``0 * -inf = nan``, as in PyTorch. The gradient
    (:func:`cross_entropy_backward`) stays finite in all these cases.

    Examples
    --------
    >>> round(cross_entropy(np.array([[1e4, 0.0]]), np.array([1])), 1)
    10000.0
    >>> round(cross_entropy(np.array([[0.0, -np.inf, 0.0]]), np.array([0])), 4)  # masked class
    0.6931
    """
    if check_args:
        targets = check_cross_entropy_args(logits, targets, label_smoothing, "cross_entropy")
    n, k = logits.shape
    lsm = log_softmax(logits)
    with np.errstate(**_QUIET):
        if targets.dtype.kind == "f":
            loss = -(lsm * _smoothed(targets, logits, label_smoothing)).sum() / n
        else:
            loss = -lsm[np.arange(n), targets].sum() / n
            if label_smoothing:
                smooth = -lsm.sum(axis=1).sum() / n
                loss = (1.0 - label_smoothing) * loss + smooth * (label_smoothing / k)
    return float(loss) + 0.0  # + 0.0: no -0.0 (torch gives 0.0)


def cross_entropy_backward(logits, targets, label_smoothing=0.0, *, check_args=True):
    r"""dL/dlogits of :func:`cross_entropy`: ``(softmax(z) * sum_k T[n, k] - T) / N``.

    For targets that sum to 1 per row this is the familiar ``(softmax(z) - T) / N``.
    The ``1 / N`` of the mean lives here and nowhere else. A ``-inf`` logit gets
    ``-T[n, k] / N`` (0 for a masked class without smoothing), as in PyTorch.
    Arguments as in :func:`cross_entropy`.

    Examples
    --------
    >>> cross_entropy_backward(np.array([[0.0, -np.inf, 0.0]]), np.array([0]))
    array([[-0.5,  0. ,  0.5]])
    """
    if check_args:
        targets = check_cross_entropy_args(logits, targets, label_smoothing, "cross_entropy_backward")
    n, k = logits.shape
    grad = softmax(logits)
    with np.errstate(**_QUIET):
        if targets.dtype.kind == "f":
            dist = _smoothed(targets, logits, label_smoothing)
            grad *= dist.sum(axis=1, keepdims=True)
            grad -= dist
        else:
            if label_smoothing:
                grad -= label_smoothing / k
            grad[np.arange(n), targets] -= 1.0 - label_smoothing
        grad /= max(n, 1)
    return grad
