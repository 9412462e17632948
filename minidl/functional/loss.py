"""Numerically stable softmax cross-entropy from logits, as :func:`torch.nn.functional.cross_entropy`.

At the edges the results are PyTorch's: a ``-inf`` logit (a masked class)
gives probability 0 and a finite loss unless the target puts weight on it
(then the loss is ``inf``); logits near the dtype's maximum never overflow in
the shift; a ``+inf`` logit or a row of ``-inf`` gives ``nan``. Non-finite
results come without numpy warnings: the caller (the Trainer) decides what a
non-finite loss means.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_array
from .activation import check_grad_pair, float_input
from .loss_args import (  # REDUCTIONS and check_* in __all__ too: their import path before the split
    REDUCTIONS,
    at_labels,
    check_class_weight,
    check_cross_entropy_args,
    check_label_smoothing,
    check_reduction,
    per_class,
)

__all__ = ["log_softmax", "log_softmax_backward", "softmax", "cross_entropy", "cross_entropy_backward",
           "check_label_smoothing", "check_cross_entropy_args", "check_reduction", "check_class_weight", "REDUCTIONS"]

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

    Shape
    -----
    Any; the result has ``x``'s shape.

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


def log_softmax_backward(grad_output, output, axis=-1, *, where="log_softmax_backward"):
    r"""Gradient of :func:`log_softmax` from its output ``o``: ``g - exp(o) * sum(g, axis)``.

    Parameters
    ----------
    grad_output : ndarray
        dL/d(output), of the output's shape and dtype.
    output : ndarray, floating point
        What :func:`log_softmax` returned.
    axis : int
        The class axis it was taken along.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        dL/dx, the output's shape and dtype.

    Shape
    -----
    ``grad_output``, ``output`` and the result: one shape, any.

    Notes
    -----
    :math:`o_i = x_i - \log\sum_j e^{x_j}`, so :math:`\partial o_i/\partial x_j = \delta_{ij} - s_j` with
    :math:`s = e^{o}` the softmax, and :math:`dx_j = \sum_i g_i(\delta_{ij} - s_j) = g_j - s_j \sum_i g_i`.

    Examples
    --------
    >>> log_softmax_backward(np.array([[1.0, 0.0]]), np.log(np.array([[0.5, 0.5]])))
    array([[ 0.5, -0.5]])
    """
    float_input(output, "output", where)
    check_grad_pair(grad_output, output, "output", where)
    grad = np.exp(output)
    grad *= -grad_output.sum(axis=axis, keepdims=True)
    grad += grad_output
    return grad


def softmax(x, axis=-1):
    """``exp(log_softmax(x))``; rows sum to 1, a ``-inf`` entry gives exactly 0.

    Parameters
    ----------
    x : ndarray
        Float (dtype kept) or integer (computed in float64).
    axis : int, default -1

    Returns
    -------
    ndarray, same shape as ``x``

    Shape
    -----
    Any; the result has ``x``'s shape.

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


def _smoothed(targets, logits, label_smoothing):
    """The target distribution ``T = (1 - eps) P + eps / K`` of probability targets: a new array, the logits' dtype."""
    dist = targets.astype(logits.dtype, copy=True)
    if label_smoothing:
        dist *= 1.0 - label_smoothing
        dist += label_smoothing / logits.shape[1]
    return dist


def _hard_terms(logits, labels, weight, ignore_index):
    """``(kept, safe, w_y)``: the positions not ignored, labels with ignored ones set to 0, and
    each position's target weight (0 where ignored), in the logits' dtype."""
    kept = labels != ignore_index
    safe = np.where(kept, labels, 0)
    w_y = kept.astype(logits.dtype) if weight is None else np.where(kept, weight[safe], 0).astype(logits.dtype)
    return kept, safe, w_y


def _reduce(per_row, denominator, reduction):
    if reduction == "none":
        return per_row
    total = per_row.sum()
    return total / denominator if reduction == "mean" else total


def cross_entropy(logits, targets, label_smoothing=0.0, *, weight=None, ignore_index=-100, reduction="mean",
                  check_args=True):
    r"""Softmax cross-entropy from logits, as :func:`torch.nn.functional.cross_entropy`.

    Parameters
    ----------
    logits : ndarray, shape (N, K) or (N, K, d1, ...)
        The class axis is axis 1, as in PyTorch; each position (a row, or a pixel) is one sample.
    targets : ndarray
        Integer labels in [0, K) (or ``ignore_index``), one per position: (N,) or (N, d1, ...);
        or float probabilities of the logits' shape.
    label_smoothing : float in [0, 1]
    weight : ndarray (K,), optional
        Per-class weights (cast to the logits' dtype).
    ignore_index : int, default -100
        Positions labelled with it contribute nothing, and do not count in the mean.
    reduction : {'mean', 'sum', 'none'}
    check_args : bool, default True
        False skips :func:`check_cross_entropy_args` (its result must be ``targets``).

    Returns
    -------
    float ('mean', 'sum') or ndarray (N,) or (N, d1, ...) in the logits' dtype ('none')

    Shape
    -----
    ``logits`` (N, K) or (N, K, d1, ...); ``targets`` (N,) or (N, d1, ...) labels, or probabilities of
    the logits' shape; the result a float, or (N,) / (N, d1, ...) for 'none'.

    Notes
    -----
    Per row, with :math:`\ell = \mathrm{log\_softmax}(z)`, ``w`` the weights (1 without)
    and ``eps`` the smoothing, class labels give
    :math:`L_n = -(1-\epsilon) w_{y_n} \ell_{n y_n} - \tfrac{\epsilon}{K}\sum_k w_k \ell_{nk}`
    (0 for an ignored row), and 'mean' divides the sum by
    :math:`W = \sum_{n \text{ kept}} w_{y_n}` (the number of kept rows without weights;
    ``nan`` when every row is ignored). Probability targets give
    :math:`L_n = -\sum_k w_k T_{nk} \ell_{nk}` with :math:`T = (1-\epsilon) P + \epsilon/K`,
    and 'mean' divides by ``N``, whatever the weights. All as PyTorch, including the
    order of the computation, so the edges agree: a ``-inf`` logit (a masked class)
    costs nothing unless the target puts weight on it (loss ``inf``); a zero
    probability on a ``-inf`` logit gives ``0 * -inf = nan``. Over (N, K, d1, ...) every
    position is a row: ``N`` above is the number of positions, ``N * d1 * ...``.

    Examples
    --------
    >>> round(cross_entropy(np.array([[1e4, 0.0]]), np.array([1])), 1)
    10000.0
    >>> round(cross_entropy(np.array([[0.0, -np.inf, 0.0]]), np.array([0])), 4)  # masked class
    0.6931
    >>> cross_entropy(np.zeros((2, 2)), np.array([0, -100]), reduction='none').round(4)
    array([0.6931, 0.    ])
    >>> cross_entropy(np.zeros((1, 2, 3)), np.array([[0, 1, -100]]), reduction='none').round(4)  # per pixel
    array([[0.6931, 0.6931, 0.    ]])
    """
    if check_args:
        targets = check_cross_entropy_args(logits, targets, label_smoothing, "cross_entropy", weight=weight,
                                           ignore_index=ignore_index, reduction=reduction)
    k, positions = logits.shape[1], logits.size // max(logits.shape[1], 1)
    w = None if weight is None else per_class(weight.astype(logits.dtype, copy=False), logits.ndim)
    lsm = log_softmax(logits, axis=1)
    with np.errstate(**_QUIET):
        if targets.dtype.kind == "f":
            prod = lsm * _smoothed(targets, logits, label_smoothing)
            if w is not None:
                prod *= w
            loss = _reduce(-prod.sum(axis=1), positions, reduction)
        else:
            kept, safe, w_y = _hard_terms(logits, targets, weight, ignore_index)
            picked = lsm[at_labels(safe)]
            nll = np.where(kept, -(picked if w is None else w_y * picked), 0).astype(logits.dtype)
            denominator = w_y.sum()
            loss = _reduce(nll, denominator, reduction)
            if label_smoothing:
                smooth = -(lsm if w is None else lsm * w).sum(axis=1)
                smooth = np.where(kept, smooth, 0).astype(logits.dtype)
                loss = (1.0 - label_smoothing) * loss + _reduce(smooth, denominator, reduction) * (label_smoothing / k)
    if reduction == "none":
        return np.asarray(loss, dtype=logits.dtype)
    return float(loss) + 0.0  # + 0.0: no -0.0 (torch gives 0.0)


def cross_entropy_backward(logits, targets, label_smoothing=0.0, *, weight=None, ignore_index=-100,
                           reduction="mean", grad_output=None, check_args=True):
    r"""dL/dlogits of :func:`cross_entropy`, times ``grad_output``.

    Parameters
    ----------
    logits, targets, label_smoothing, weight, ignore_index, reduction, check_args
        As in :func:`cross_entropy`.
    grad_output : float, or ndarray (N,) or (N, d1, ...) for ``reduction='none'``
        The upstream gradient of the loss: a scalar (default 1), or one per position for
        'none' (required there), in the logits' dtype.

    Returns
    -------
    ndarray of the logits' shape and dtype

    Shape
    -----
    ``logits`` (N, K) or (N, K, d1, ...); ``targets`` as in :func:`cross_entropy`; ``grad_output``
    a scalar, or the 'none' loss's (N,) or (N, d1, ...); the result the logits' shape.

    Notes
    -----
    Every case is :math:`L = \sum_n r_n L_n` with :math:`L_n = -\sum_k C_{nk}\ell_{nk}`
    (``C = w * T`` for probabilities; for labels
    :math:`C_{nk} = (1-\epsilon) w_{y_n}[k = y_n] + \tfrac{\epsilon}{K} w_k`, 0 on
    ignored rows) and :math:`r_n` = ``1 / W`` or ``1 / N`` ('mean'), 1 ('sum') or the
    upstream :math:`g_n` ('none'). Since :math:`\partial \ell_{nk}/\partial z_{nj} = [k = j] - s_{nj}`,

    .. math:: \partial L / \partial z_{nj} = r_n (s_{nj} \textstyle\sum_k C_{nk} - C_{nj}),

    the familiar ``(softmax(z) - T) / N`` for unweighted targets summing to 1. Ignored
    rows get exactly 0; a ``-inf`` logit gets ``-r_n C_{nj}`` (0 for a masked class
    without smoothing), as in PyTorch. Over (N, K, d1, ...) each position is a row ``n``.

    Examples
    --------
    >>> cross_entropy_backward(np.array([[0.0, -np.inf, 0.0]]), np.array([0]))
    array([[-0.5,  0. ,  0.5]])
    """
    if check_args:
        targets = check_cross_entropy_args(logits, targets, label_smoothing, "cross_entropy_backward",
                                           weight=weight, ignore_index=ignore_index, reduction=reduction)
    k, positions = logits.shape[1], logits.size // max(logits.shape[1], 1)
    scale = _row_scale(grad_output, reduction, logits.shape[:1] + logits.shape[2:], logits.dtype)
    w = None if weight is None else per_class(weight.astype(logits.dtype, copy=False), logits.ndim)
    grad = softmax(logits, axis=1)
    with np.errstate(**_QUIET):
        if targets.dtype.kind == "f":
            coef = _smoothed(targets, logits, label_smoothing)
            if w is not None:
                coef *= w
            grad *= coef.sum(axis=1, keepdims=True)
            grad -= coef
            rows = scale / positions if reduction == "mean" else scale
        elif w is None and not np.any(targets == ignore_index):  # every C row sums to 1: no (N,) temporaries
            if label_smoothing:
                grad -= label_smoothing / k
            grad[at_labels(targets)] -= 1.0 - label_smoothing
            rows = scale / max(positions, 1) if reduction == "mean" else scale
        else:
            kept, safe, w_y = _hard_terms(logits, targets, weight, ignore_index)
            eps_k = label_smoothing / k
            total = (1.0 - label_smoothing) * w_y
            if label_smoothing:
                total += kept * (eps_k * (k if w is None else w.sum()))
            grad *= np.expand_dims(total, 1)
            if label_smoothing:
                grad -= eps_k if w is None else eps_k * w
            grad[at_labels(safe)] -= (1.0 - label_smoothing) * w_y
            if reduction == "mean":
                scale = scale / w_y.sum()
            rows = np.where(kept, scale, 0)
        grad *= np.expand_dims(np.asarray(rows, logits.dtype), 1) if np.ndim(rows) else logits.dtype.type(rows)
    return grad


def _row_scale(grad_output, reduction, shape, dtype):
    """The upstream gradient as a scalar (default 1) or, for 'none', an array of the per-position loss's ``shape``."""
    if reduction != "none":
        if grad_output is None:
            return 1.0
        if np.ndim(grad_output):
            raise ValueError(f"cross_entropy_backward: grad_output must be a scalar for reduction={reduction!r}. "
                             f"Received: an array of shape {np.shape(grad_output)}.")
        return float(grad_output)
    if not isinstance(grad_output, np.ndarray) or grad_output.shape != shape or grad_output.dtype != dtype:
        raise ValueError(
            "cross_entropy_backward: reduction='none' gives one loss per row (per position), so grad_output must "
            f"be an ndarray of shape {shape} and dtype {dtype}. Received: {type(grad_output).__name__} "
            f"{getattr(grad_output, 'shape', '')} {getattr(grad_output, 'dtype', '')}."
        )
    return grad_output
