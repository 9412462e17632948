r"""Batch normalisation and its backward, as :func:`torch.nn.functional.batch_norm`.

The channel axis is axis 1 of any input of 2 or more dimensions: (N, C),
(N, C, L) or (N, C, H, W). Statistics are per channel, over every other axis
(``M = x.size / C`` values each). Reductions run on a view of the input in its
own memory order, without copies: an (N, C, H, W) array with channels-last
strides (what :func:`minidl.functional.conv2d` returns) is reduced as an
(N*H*W, C) matrix, a C-contiguous one as (N, C, H*W); per-channel sums of
products use :func:`numpy.einsum`, so no product array is allocated.
Element-wise results keep the input's memory layout.
"""

from __future__ import annotations

import numbers
import string

import numpy as np

from ..validation import check_array, check_float_dtype

__all__ = ["batch_norm", "batch_norm_backward"]


# ----------------------------------------------------------------- layout helpers
def _view(x: np.ndarray) -> tuple[np.ndarray, str]:
    """A no-copy view of ``x`` and its einsum subscripts, with the channel axis ``c``."""
    c = x.shape[1]
    if x.ndim == 2:
        return x, "mc"
    last = np.moveaxis(x, 1, -1)
    if last.flags.c_contiguous:  # channels-last memory: one (M, C) matrix
        return last.reshape(-1, c), "mc"
    if x.flags.c_contiguous:
        return x.reshape(x.shape[0], c, -1), "ncs"
    return x, "nc" + string.ascii_lowercase[3:3 + x.ndim - 2]  # any other strides, as they are


def _channel_sum(a: np.ndarray) -> np.ndarray:
    v, sub = _view(a)
    return v.sum(axis=tuple(i for i, s in enumerate(sub) if s != "c"))


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum(a * b)`` per channel, without the product array."""
    (va, sa), (vb, sb) = _view(a), _view(b)
    if sa != sb or va.shape != vb.shape:  # two layouts: einsum on the arrays as they are
        sub = "nc" + string.ascii_lowercase[3:3 + a.ndim - 2]
        return np.einsum(f"{sub},{sub}->c", a, b)
    return np.einsum(f"{sa},{sa}->c", va, vb)


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """``v`` of shape (C,) as (1, C, 1, ...) for broadcasting against an ndim-dimensional input."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


# ----------------------------------------------------------------- validation
def _check_vector(v, name, x, where, required=False):
    if v is None:
        if required:
            raise ValueError(f"{where}: {name} is needed to normalise with running statistics "
                             "(training=False). Pass it, or use training=True for batch statistics.")
        return
    check_array(v, name, where)
    if v.shape != (x.shape[1],) or v.dtype != x.dtype:
        raise ValueError(
            f"{where}: {name} must have shape ({x.shape[1]},) (one value per channel of the input, "
            f"axis 1) and the input's dtype {x.dtype}. Received: shape {v.shape}, dtype {v.dtype}."
        )


def _check_input(x, where):
    check_array(x, "input", where)
    check_float_dtype(x, "input", where)
    if x.ndim < 2 or x.shape[1] == 0:
        raise ValueError(f"{where}: expected input of shape (N, C, ...) with C >= 1 channels on axis 1. "
                         f"Received: shape {x.shape}.")


def _check_real(value, name, where, low, high=None):
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)) or not np.isfinite(value) \
            or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{where}: {name} must be a finite real number {bound}. Received: {name}={value!r}")
    return float(value)


# ----------------------------------------------------------------- forward
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5, *, return_stats=False, where="batch_norm"):
    r"""Normalise each channel, as :func:`torch.nn.functional.batch_norm`.

    Parameters
    ----------
    input : ndarray (N, C, ...)
        Floating point; the channel axis is axis 1.
    running_mean, running_var : ndarray (C,) or None
        The running statistics: read when ``training`` is False; updated in
        place when ``training`` is True (as torch does), unless None.
    weight, bias : ndarray (C,) or None
        The affine transform (gamma, beta); None for 1 and 0.
    training : bool
        True: normalise with the batch's statistics; False: with the running ones.
    momentum : float in [0, 1]
        Update rule ``running = (1 - momentum) * running + momentum * batch``
        (the layer passes ``1 / num_batches_tracked`` for a cumulative average).
    eps : float > 0
        Added to the variance.
    return_stats : bool
        Also return ``(mean, inv_std)``, the statistics used (what the backward needs).
    where : str
        Names the caller in error messages.

    Returns
    -------
    out : ndarray, the input's shape, dtype and memory layout
    (out, mean, inv_std) with ``return_stats``; ``mean`` and ``inv_std`` of shape (C,).

    Shape
    -----
    (N, C), (N, C, L), (N, C, H, W), ...: the output has the input's shape.

    Notes
    -----
    With ``mu``, ``var`` the statistics of a channel over its ``M`` values
    (training: the batch's mean and biased variance ``sum((x - mu)^2) / M``)::

        x_hat = (x - mu) / sqrt(var + eps),   y = gamma * x_hat + beta

    In training the running variance is updated with the unbiased variance
    ``sum((x - mu)^2) / (M - 1)``, as torch; M = 1 is refused (ValueError). An
    empty batch (M = 0) gives an empty output and leaves the running statistics
    as they are, as torch (the statistics returned are then 0 and ``1 / sqrt(eps)``).
    The variance is computed in two passes (``x - mu`` first), so a large mean
    costs no accuracy.

    Examples
    --------
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> rm, rv = np.zeros(2), np.ones(2)
    >>> batch_norm(x, rm, rv, training=True, eps=0.0)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> rm, rv
    (array([0.2, 2. ]), array([ 1.1, 20.9]))
    """
    _check_input(input, where)
    for v, name in ((running_mean, "running_mean"), (running_var, "running_var"),
                    (weight, "weight"), (bias, "bias")):
        _check_vector(v, name, input, where, required=not training and name.startswith("running"))
    momentum = _check_real(momentum, "momentum", where, 0.0, 1.0)
    eps = _check_real(eps, "eps", where, 0.0)
    m = input.size // input.shape[1]
    if training and m == 1:
        raise ValueError(f"{where}: expected more than 1 value per channel when training (the batch "
                         f"variance of one value is undefined; torch refuses it too). Received: input of "
                         f"shape {input.shape}. Use a batch of 2 or more"
                         + (", or eval mode (with running statistics)." if running_mean is not None else "."))
    if training and m == 0:  # an empty batch, as torch: an empty output, the running statistics untouched
        mean, inv_std = np.zeros(input.shape[1], input.dtype), np.full(input.shape[1], 1 / np.sqrt(eps), input.dtype)
        out = np.empty_like(input)
        return (out, mean, inv_std) if return_stats else out
    nd = input.ndim
    if not training:
        mean = running_mean
        inv_std = 1.0 / np.sqrt(running_var + eps)
        scale = inv_std if weight is None else inv_std * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        out = input * _per_channel(scale, nd)
        out += _per_channel(shift, nd)
    else:
        mean = _channel_sum(input) / m
        out = input - _per_channel(mean, nd)  # the centred input, then the output in place
        sq = _channel_dot(out, out)
        inv_std = 1.0 / np.sqrt(sq / m + eps)
        if running_mean is not None:
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1.0 - momentum
            running_var += momentum * (sq / (m - 1))
        out *= _per_channel(inv_std if weight is None else inv_std * weight, nd)
        if bias is not None:
            out += _per_channel(bias, nd)
    return (out, mean, inv_std) if return_stats else out


# ----------------------------------------------------------------- backward
def batch_norm_backward(grad_output, input, mean, inv_std, weight=None, training=True, *,
                        input_grad=True, where="batch_norm_backward"):
    r"""Gradients of :func:`batch_norm`: ``(grad_input, grad_weight, grad_bias)``.

    Parameters
    ----------
    grad_output : ndarray, the shape and dtype of ``input``
    input : ndarray (N, C, ...), the forward input
    mean, inv_std : ndarray (C,)
        The statistics the forward used (``return_stats=True``): the batch's in
        training, the running ones (``1 / sqrt(running_var + eps)``) in eval.
    weight : ndarray (C,) or None
    training : bool
        As in the forward: True when the statistics were the batch's (they then
        depend on the input, which adds two terms to the input gradient).
    input_grad : bool
        False skips ``grad_input`` (returned as None).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    grad_input : ndarray of the input's shape and dtype, or None
    grad_weight, grad_bias : ndarray (C,)
        ``sum(dy * x_hat)`` and ``sum(dy)`` per channel (whether or not there is
        a weight: the layer adds them only when it is affine).

    Shape
    -----
    - ``grad_output``, ``input`` and ``grad_input``: (N, C, ...) ((N, C) for BatchNorm1D,
      (N, C, H, W) for BatchNorm2D)
    - ``mean``, ``inv_std``, ``weight``, ``grad_weight``, ``grad_bias``: (C,)

    Notes
    -----
    With ``g = gamma * inv_std`` (``inv_std`` alone without weight), per
    channel over its ``M`` values, ``dy`` the upstream gradient::

        grad_bias   = sum(dy)
        grad_weight = sum(dy * x_hat) = inv_std * sum(dy * (x - mu))

    Eval mode (fixed statistics, ``y`` affine in ``x``): ``grad_input = g * dy``.
    Training (``mu`` and ``var`` depend on every ``x`` of the channel: ``d mu / dx
    = 1 / M``, ``d var / dx = 2 (x - mu) / M``), the compact form::

        grad_input = (g / M) * (M * dy - sum(dy) - x_hat * sum(dy * x_hat))

    computed as ``g * (dy - sum(dy) / M - (x - mu) * k)`` with
    ``k = inv_std^2 * sum(dy * (x - mu)) / M``, in one temporary of the
    input's size (``x - mu``, which becomes the result).

    Examples
    --------
    >>> x, dy = np.array([[1.0], [3.0]]), np.array([[1.0], [0.0]])
    >>> out, mu, inv_std = batch_norm(x, None, None, training=True, eps=0.0, return_stats=True)
    >>> batch_norm_backward(dy, x, mu, inv_std)
    (array([[0.],
           [0.]]), array([-1.]), array([1.]))
    """
    _check_input(input, where)
    check_array(grad_output, "grad_output", where)
    if grad_output.shape != input.shape or grad_output.dtype != input.dtype:
        raise ValueError(f"{where}: grad_output must have the input's shape {input.shape} and dtype "
                         f"{input.dtype}. Received: shape {grad_output.shape}, dtype {grad_output.dtype}.")
    for v, name in ((mean, "mean"), (inv_std, "inv_std"), (weight, "weight")):
        _check_vector(v, name, input, where, required=name != "weight")
    nd, m = input.ndim, input.size // input.shape[1]
    centred = input - _per_channel(mean, nd)
    sum_dy = _channel_sum(grad_output)
    dot = _channel_dot(grad_output, centred)
    grad_weight, grad_bias = dot * inv_std, sum_dy
    if not input_grad:
        return None, grad_weight, grad_bias
    g = inv_std if weight is None else inv_std * weight
    if not training or m == 0:  # fixed statistics, or an empty batch (an empty gradient)
        return grad_output * _per_channel(g, nd), grad_weight, grad_bias
    centred *= _per_channel(-(inv_std * inv_std) * dot / m, nd)
    centred += grad_output
    centred -= _per_channel(sum_dy / m, nd)
    centred *= _per_channel(g, nd)
    return centred, grad_weight, grad_bias
