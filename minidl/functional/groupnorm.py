r"""Group and instance normalisation and their backward, as :func:`torch.nn.functional.group_norm`
and :func:`torch.nn.functional.instance_norm`.

The input is (N, C, ...) with the channels on axis 1. Group normalisation splits the C
channels into G groups and normalises each sample's group over its ``M = (C / G) * H * W``
values: the input seen as (N * G, M) rows, the row helpers of :mod:`minidl.functional.layernorm`.
Instance normalisation is the case G = C (each channel of each sample on its own), with
torch's optional running statistics. The affine transform is per channel.
"""

from __future__ import annotations

import numpy as np

from .batchnorm import batch_norm
from .layernorm import check_eps, check_float, check_param, compute_dtype, normalize_rows, rows_backward

__all__ = ["group_norm", "group_norm_backward", "instance_norm", "instance_norm_backward"]


def _per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _check_input(x, where):
    check_float(x, "input", where)
    if x.ndim < 2 or x.shape[1] == 0:
        raise ValueError(f"{where}: expected input of shape (N, C, ...) with C >= 1 channels on axis 1. "
                         f"Received: shape {x.shape}.")


def _check_groups(num_groups, x, where):
    c = x.shape[1]
    if isinstance(num_groups, (bool, np.bool_)) or not isinstance(num_groups, (int, np.integer)) \
            or num_groups < 1 or c % num_groups:
        raise ValueError(f"{where}: num_groups must be a positive int that divides the {c} channels of the "
                         f"input (axis 1). Received: num_groups={num_groups!r}, input shape {x.shape}.")
    return int(num_groups)


def _rows(x, groups):
    """``x`` as (N * G, M) rows (M explicit: an empty batch reshapes too)."""
    n, c = x.shape[:2]
    return x.reshape(n * groups, c // groups * int(np.prod(x.shape[2:])))


def _normalize(x, groups, weight, bias, eps):
    """``(out, mean, inv_std, var)`` with per-(sample, group) statistics of shape (N, G)."""
    n = x.shape[0]
    x_hat, mean, inv_std, var = normalize_rows(_rows(compute_dtype(x), groups), eps)
    out = x_hat.reshape(x.shape)
    if weight is not None:
        out *= _per_channel(weight, x.ndim)
    if bias is not None:
        out += _per_channel(bias, x.ndim)
    stats = (v.reshape(n, groups) for v in (mean, inv_std, var))
    return (out.astype(x.dtype, copy=False), *stats)


def _backward(grad_output, x, mean, inv_std, weight, input_stats, input_grad, where):
    """``(grad_input, grad_weight, grad_bias)`` for statistics (N, G) of ``x`` (input_stats) or fixed."""
    check_float(grad_output, "grad_output", where)
    if grad_output.shape != x.shape or grad_output.dtype != x.dtype:
        raise ValueError(f"{where}: grad_output must have the input's shape {x.shape} and dtype {x.dtype}. "
                         f"Received: shape {grad_output.shape}, dtype {grad_output.dtype}.")
    n, c = x.shape[:2]
    for v, name in ((mean, "mean"), (inv_std, "inv_std")):
        check_float(v, name, where)
        if v.ndim != 2 or v.shape[0] != n or v.shape[1] < 1 or c % v.shape[1] or v.shape != mean.shape:
            raise ValueError(f"{where}: {name} must have shape (N, G), G dividing the {c} channels (what the "
                             f"forward returned with return_stats=True). Received: shape {v.shape}.")
    weight = check_param(weight, "weight", (c,), x, where)
    groups = mean.shape[1]
    rows = _rows(compute_dtype(x), groups) - mean.reshape(-1, 1)  # x_hat, in one array of the input's size
    rows *= inv_std.reshape(-1, 1)
    dy = compute_dtype(grad_output)
    ncs = (n, c, int(np.prod(x.shape[2:])))
    grad_weight = np.einsum("ncs,ncs->c", dy.reshape(ncs), rows.reshape(ncs)).astype(x.dtype, copy=False)
    grad_bias = dy.reshape(ncs).sum(axis=(0, 2)).astype(x.dtype, copy=False)
    if not input_grad:
        return None, grad_weight, grad_bias
    grad_x_hat = dy * _per_channel(weight, x.ndim) if weight is not None else dy.copy()
    grad_x_hat = _rows(grad_x_hat, groups)
    if input_stats:
        grad_input = rows_backward(grad_x_hat, rows, inv_std.reshape(-1, 1))
    else:  # fixed statistics: x_hat is affine in x
        grad_input = grad_x_hat * inv_std.reshape(-1, 1)
    return grad_input.reshape(x.shape).astype(x.dtype, copy=False), grad_weight, grad_bias


def _check_momentum(momentum, where):
    if isinstance(momentum, (bool, np.bool_)) or not isinstance(momentum, (int, float, np.integer, np.floating)) \
            or not 0 <= momentum <= 1:
        raise ValueError(f"{where}: momentum must be a real number in [0, 1]. Received: momentum={momentum!r}")
    return float(momentum)


# ----------------------------------------------------------------- group norm
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5, *, return_stats=False, where="group_norm"):
    r"""Normalise each sample's channel groups, as :func:`torch.nn.functional.group_norm`.

    Parameters
    ----------
    input : ndarray (N, C, ...), floating point
    num_groups : int
        G, dividing C; each group holds ``C / G`` consecutive channels.
    weight, bias : ndarray (C,) or None
        The per-channel affine transform (gamma, beta); None for 1 and 0.
    eps : float >= 0, default 1e-5
        Added to the variance.
    return_stats : bool, default False
        Also return ``(mean, inv_std)``, each (N, G) (float32 for a float16 input).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    out : ndarray, the input's shape and dtype
    (out, mean, inv_std) with ``return_stats``.

    Raises
    ------
    TypeError
        ``input`` not a floating ndarray.
    ValueError
        ``num_groups`` not dividing C; weight/bias not (C,) of the input's dtype.

    Shape
    -----
    (N, C, ...): the output has the input's shape.

    Notes
    -----
    Per sample and group, over its ``M = (C / G) * prod(spatial)`` values, with the mean
    ``mu`` and biased variance ``var``: ``x_hat = (x - mu) / sqrt(var + eps)``,
    ``y = gamma[c] * x_hat + beta[c]``.

    Examples
    --------
    >>> group_norm(np.array([[1.0, 3.0, 0.0, 10.0]]), 2, eps=0.0)
    array([[-1.,  1., -1.,  1.]])
    """
    _check_input(input, where)
    groups = _check_groups(num_groups, input, where)
    weight, bias = (check_param(v, n, (input.shape[1],), input, where) for v, n in ((weight, "weight"), (bias, "bias")))
    out, mean, inv_std, _ = _normalize(input, groups, weight, bias, check_eps(eps, where))
    return (out, mean, inv_std) if return_stats else out


def group_norm_backward(grad_output, input, mean, inv_std, weight=None, *, input_grad=True,
                        where="group_norm_backward"):
    r"""Gradients of :func:`group_norm`: ``(grad_input, grad_weight, grad_bias)``.

    Parameters
    ----------
    grad_output : ndarray, the shape and dtype of ``input``
    input : ndarray (N, C, ...), the forward input
    mean, inv_std : ndarray (N, G)
        The statistics :func:`group_norm` returned (``return_stats=True``); G is read off them.
    weight : ndarray (C,) or None
    input_grad : bool, default True
        False skips ``grad_input`` (returned as None).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    grad_input : ndarray of the input's shape and dtype, or None
    grad_weight, grad_bias : ndarray (C,)
        ``sum(dy * x_hat)`` and ``sum(dy)`` per channel, over the samples and spatial axes.

    Raises
    ------
    TypeError, ValueError
        Arrays of other shapes or dtypes than the forward's.

    Shape
    -----
    - ``grad_output``, ``input``, ``grad_input``: (N, C, ...)
    - ``mean``, ``inv_std``: (N, G); ``weight``, ``grad_weight``, ``grad_bias``: (C,)

    Notes
    -----
    Per sample and group, with ``dx_hat = gamma[c] * dy`` and means over the group's ``M`` values,
    the same compact form as layer normalisation::

        grad_input = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))

    Examples
    --------
    >>> x = np.array([[1.0, 3.0]])
    >>> out, mu, inv_std = group_norm(x, 1, eps=0.0, return_stats=True)
    >>> group_norm_backward(np.array([[1.0, 0.0]]), x, mu, inv_std)
    (array([[0., 0.]]), array([-1.,  0.]), array([1., 0.]))
    """
    _check_input(input, where)
    return _backward(grad_output, input, mean, inv_std, weight, True, input_grad, where)


# ----------------------------------------------------------------- instance norm
def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5, *, return_stats=False, where="instance_norm"):
    r"""Normalise each channel of each sample, as :func:`torch.nn.functional.instance_norm`.

    Parameters
    ----------
    input : ndarray (N, C, ...), floating point
    running_mean, running_var : ndarray (C,) or None
        Read when ``use_input_stats`` is False; else updated in place (unless None) with the
        statistics averaged over the batch, as torch.
    weight, bias : ndarray (C,) or None
        The per-channel affine transform; None for 1 and 0.
    use_input_stats : bool, default True
        True: each sample's own statistics; False: the running ones.
    momentum : float in [0, 1], default 0.1
        ``running = (1 - momentum) * running + momentum * mean over the batch of the samples' statistics``.
    eps : float >= 0, default 1e-5
    return_stats : bool, default False
        Also return ``(mean, inv_std)``, each (N, C) (the running ones broadcast over N without input stats).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    out : ndarray, the input's shape and dtype
    (out, mean, inv_std) with ``return_stats``.

    Raises
    ------
    TypeError
        ``input`` not a floating ndarray.
    ValueError
        A single spatial value with input statistics (its variance is undefined, as torch refuses),
        or missing running statistics with ``use_input_stats=False``.

    Shape
    -----
    (N, C, ...): the output has the input's shape.

    Notes
    -----
    :func:`group_norm` with G = C; the running variance takes the *unbiased* per-sample variance
    (``var * M / (M - 1)``), averaged over the batch, as torch.

    Examples
    --------
    >>> instance_norm(np.array([[[1.0, 3.0], [0.0, 10.0]]]), eps=0.0)
    array([[[-1.,  1.],
            [-1.,  1.]]])
    """
    _check_input(input, where)
    n, c = input.shape[:2]
    weight, bias = (check_param(v, k, (c,), input, where) for v, k in ((weight, "weight"), (bias, "bias")))
    if not use_input_stats:  # the running statistics: batch normalisation's eval form
        out = batch_norm(input, running_mean, running_var, weight, bias, training=False, eps=eps, where=where)
        inv_std = 1.0 / np.sqrt(compute_dtype(running_var) + eps)
        stats = (np.broadcast_to(running_mean, (n, c)), np.broadcast_to(inv_std, (n, c)))
        return (out, *stats) if return_stats else out
    m = input.size // max(n * c, 1)
    if m == 1:
        raise ValueError(f"{where}: expected more than 1 spatial value per channel when using the input's "
                         f"statistics (the variance of one value is undefined; torch refuses it too). "
                         f"Received: input of shape {input.shape}.")
    for v, k in ((running_mean, "running_mean"), (running_var, "running_var")):
        check_param(v, k, (c,), input, where)
    momentum = _check_momentum(momentum, where)
    out, mean, inv_std, var = _normalize(input, c, weight, bias, check_eps(eps, where))
    if running_mean is not None and n:
        running_mean *= 1.0 - momentum
        running_mean += (momentum * mean.mean(axis=0)).astype(running_mean.dtype)
    if running_var is not None and n:
        running_var *= 1.0 - momentum
        running_var += (momentum * (var * m / (m - 1)).mean(axis=0)).astype(running_var.dtype)
    return (out, mean, inv_std) if return_stats else out


def instance_norm_backward(grad_output, input, mean, inv_std, weight=None, use_input_stats=True, *,
                           input_grad=True, where="instance_norm_backward"):
    r"""Gradients of :func:`instance_norm`: ``(grad_input, grad_weight, grad_bias)``.

    Parameters
    ----------
    grad_output : ndarray, the shape and dtype of ``input``
    input : ndarray (N, C, ...), the forward input
    mean, inv_std : ndarray (N, C)
        The statistics :func:`instance_norm` returned (``return_stats=True``).
    weight : ndarray (C,) or None
    use_input_stats : bool, default True
        As in the forward: True adds the terms of the statistics' dependence on the input.
    input_grad : bool, default True
        False skips ``grad_input`` (returned as None).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    grad_input : ndarray of the input's shape and dtype, or None
    grad_weight, grad_bias : ndarray (C,)

    Raises
    ------
    TypeError, ValueError
        Arrays of other shapes or dtypes than the forward's.

    Shape
    -----
    - ``grad_output``, ``input``, ``grad_input``: (N, C, ...)
    - ``mean``, ``inv_std``: (N, C); ``weight``, ``grad_weight``, ``grad_bias``: (C,)

    Notes
    -----
    With input statistics: :func:`group_norm_backward` with G = C. With the running ones
    (constants): ``grad_input = gamma[c] * inv_std[c] * dy``.

    Examples
    --------
    >>> x = np.array([[[1.0, 3.0]]])
    >>> out, mu, inv_std = instance_norm(x, eps=0.0, return_stats=True)
    >>> instance_norm_backward(np.array([[[1.0, 0.0]]]), x, mu, inv_std)[0]
    array([[[0., 0.]]])
    """
    _check_input(input, where)
    if np.shape(mean)[1:] != input.shape[1:2]:
        raise ValueError(f"{where}: mean must have shape (N, C) = {input.shape[:2]} (what instance_norm "
                         f"returned with return_stats=True). Received: shape {np.shape(mean)}.")
    return _backward(grad_output, input, mean, inv_std, weight, bool(use_input_stats), input_grad, where)
