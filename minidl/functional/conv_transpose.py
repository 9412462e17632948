"""2-D transposed convolution, as :func:`torch.nn.functional.conv_transpose2d`.

The forward of one is the backward of the other: a transposed convolution with
``weight`` *is* the gradient of :func:`~minidl.functional.conv2d` (with the same
``weight``, read as ``(C_out_conv, C_in_conv / groups, kh, kw) = (C_in, C_out / groups, kh, kw)``)
with respect to its input, with ``x`` in the place of the upstream gradient. So

* :func:`conv_transpose2d` is :func:`~minidl.functional.conv2d_input`;
* its input gradient, :func:`conv_transpose2d_input`, is :func:`~minidl.functional.conv2d`;
* its weight gradient, :func:`conv_transpose2d_weight`, is
  :func:`~minidl.functional.conv2d_weight` with the roles of ``x`` and ``grad_output`` swapped;
* its bias gradient is :func:`~minidl.functional.conv2d_bias`.

No new engine: every product below is one of :mod:`minidl.functional.conv`'s kernels.
``output_padding`` is the answer to the ambiguity a strided convolution creates: inputs of
``s`` consecutive sizes give one output size, so ``conv2d_input`` needs ``input_size``, and a
transposed convolution needs ``output_padding`` to say which of them it produces. Torch allows
``output_padding < max(stride, dilation)``; with ``output_padding >= stride`` (possible only
when the dilation is larger) the convolution of the larger output would have
``floor(output_padding / stride)`` more rows than ``x``: ``x`` is extended by zero rows (at the
bottom/right) first, and the input gradient cropped back. The derivation:
``docs/derivations/conv_transpose.md``.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_array, check_float_dtype, check_ndim, check_same_dtype, pair, positive_pair
from . import conv
from .geometry import check_groups

__all__ = ["conv_transpose2d", "conv_transpose2d_input", "conv_transpose2d_weight", "conv_transpose2d_backward",
           "conv_transpose2d_args"]


def conv_transpose2d_args(in_channels, kernel_size, stride, padding, output_padding, groups, dilation, where):
    """Validate a transposed convolution's hyper-parameters, as torch does.

    Parameters
    ----------
    in_channels : int
        ``weight.shape[0]``; must be divisible by ``groups``.
    kernel_size : int or (kh, kw)
    stride, dilation : int or (h, w), each >= 1
    padding, output_padding : int or (h, w), each >= 0
        ``output_padding`` smaller than ``max(stride, dilation)`` along each axis (torch's rule).
    groups : int, >= 1
    where : str
        The caller, named in error messages.

    Returns
    -------
    tuple
        ``(stride, padding, output_padding, groups, dilation)``, pairs and an int.

    Raises
    ------
    TypeError, ValueError
        An argument of the wrong type or out of range (the message names it and the fix).

    Examples
    --------
    >>> conv_transpose2d_args(4, 3, 2, 1, 1, 2, 1, "ConvTranspose2D")
    ((2, 2), (1, 1), (1, 1), 2, (1, 1))
    """
    stride, dilation = positive_pair(stride, "stride", where), positive_pair(dilation, "dilation", where)
    padding, output_padding = pair(padding, "padding", where), pair(output_padding, "output_padding", where)
    for name, value in (("padding", padding), ("output_padding", output_padding)):
        if min(value) < 0:
            raise ValueError(f"{where}: {name} must be >= 0. Received: {name}={value}")
    for axis, op, s, d in zip(("height", "width"), output_padding, stride, dilation):
        if op >= max(s, d):
            raise ValueError(
                f"{where}: output_padding must be smaller than either stride or dilation (as in "
                f"torch.nn.ConvTranspose2d); got output_padding {op} along the {axis} with stride {s} and "
                f"dilation {d}. Use output_padding < {max(s, d)}.")
    groups = check_groups(groups, where)
    if in_channels % groups:
        raise ValueError(f"{where}: in_channels ({in_channels}) must be divisible by groups={groups}, as in "
                         "torch.nn.ConvTranspose2d.")
    positive_pair(kernel_size, "kernel_size", where)
    return stride, padding, output_padding, groups, dilation


def _geometry(x_shape, w_shape, stride, padding, output_padding, groups, dilation, where):
    """The checked arguments, the output size ``(N, C_out, H_out, W_out)`` and the zero rows/columns
    ``x`` needs at the bottom/right (``output_padding // stride``)."""
    if len(w_shape) != 4:
        raise ValueError(f"{where}: expected weight with 4 dimensions (in_channels, out_channels / groups, kh, kw), "
                         f"got shape {tuple(w_shape)}.")
    args = conv_transpose2d_args(w_shape[0], w_shape[2:], stride, padding, output_padding, groups, dilation, where)
    stride, padding, output_padding, groups, dilation = args
    if x_shape[1] != w_shape[0]:
        raise ValueError(f"{where}: expected input with {w_shape[0]} channels (weight.shape[0]: weight is "
                         f"(in_channels, out_channels / groups, kh, kw) = {tuple(w_shape)}), got {x_shape[1]} "
                         f"channels in input of shape {tuple(x_shape)} (layout is NCHW).")
    out = []
    for size, k, s, p, op, d in zip(x_shape[2:], w_shape[2:], stride, padding, output_padding, dilation):
        out.append((size - 1) * s - 2 * p + d * (k - 1) + op + 1)  # torch's output size
    if min(out) < 1 or min(w_shape) < 1:
        raise ValueError(f"{where}: the output would be empty: (H - 1) * stride - 2 * padding + dilation * "
                         f"(kernel_size - 1) + output_padding + 1 = {tuple(out)} for input {tuple(x_shape)}, "
                         f"weight {tuple(w_shape)}, stride {stride}, padding {padding}, dilation {dilation}. "
                         "Use less padding or a larger input.")
    extra = tuple(op // s for op, s in zip(output_padding, stride))
    size = (x_shape[0], w_shape[1] * groups, *out)
    return (stride, padding, output_padding, groups, dilation), size, extra


def _extend(x, extra):
    """``x`` with ``extra`` zero rows and columns at the bottom/right (itself when none)."""
    if not any(extra):
        return x
    return np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))


def _check_pair(x, weight, where):
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C_in, H, W)")
    check_array(weight, "weight", where)
    check_float_dtype(weight, "weight", where)
    check_same_dtype(x, weight, "x", "weight", where)


def _check_grad_output(grad_output, size, like, where):
    check_array(grad_output, "grad_output", where)
    if grad_output.shape != tuple(size):
        raise ValueError(f"{where}: expected grad_output of shape {tuple(size)} (the output's), "
                         f"got {grad_output.shape}.")
    check_same_dtype(grad_output, like, "grad_output", "weight", where)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     where="conv_transpose2d"):
    r"""2-D transposed convolution, as :func:`torch.nn.functional.conv_transpose2d`.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight : ndarray, shape (C_in, C_out / groups, kh, kw), ``x``'s dtype
    bias : ndarray, shape (C_out,), optional
    stride, dilation : int or (h, w), each >= 1
    padding : int or (h, w), >= 0
        Rows/columns cropped from each side of the full result (``dilation * (k - 1) - padding``
        of zero padding in the equivalent direct convolution).
    output_padding : int or (h, w), >= 0 and < max(stride, dilation)
        Extra rows/columns at the bottom/right: which of the input sizes a strided
        convolution maps to one size is produced.
    groups : int
        Channels split into ``groups`` blocks, as torch's.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out), ``x``'s dtype

    Raises
    ------
    TypeError, ValueError
        Not arrays, mismatched channels or dtypes, arguments out of range, an empty output.

    Shape
    -----
    ``H_out = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1``,
    likewise ``W_out``.

    Notes
    -----
    :func:`~minidl.functional.conv2d_input` for an input of size ``(N, C_out, H_out, W_out)``,
    with ``x`` as the upstream gradient:

    .. math:: Y[n, c, u, v] = b[c] + \sum_{o, i, j, p, q} X[n, o, i, j]\, W[o, c, p, q]\,
              [u + \text{pad}_h = s_h i + d_h p]\,[v + \text{pad}_w = s_w j + d_w q]

    (``o`` over the input channels of ``c``'s group).

    Examples
    --------
    >>> x = np.ones((1, 1, 3, 3)); w = np.ones((1, 2, 3, 3))
    >>> conv_transpose2d(x, w, stride=2, padding=1, output_padding=1).shape
    (1, 2, 6, 6)
    >>> conv_transpose2d(np.ones((1, 1, 1, 1)), np.arange(4.0).reshape(1, 1, 2, 2))[0, 0]
    array([[0., 1.],
           [2., 3.]])
    """
    _check_pair(x, weight, where)
    args, size, extra = _geometry(x.shape, weight.shape, stride, padding, output_padding, groups, dilation, where)
    stride, padding, _, groups, dilation = args
    if bias is not None:
        check_array(bias, "bias", where)
        check_same_dtype(bias, x, "bias", "x", where)
        if bias.shape != (size[1],):
            raise ValueError(f"{where}: expected bias of shape ({size[1]},), got {bias.shape}.")
    # the gradient of a convolution of a (N, C_out, H_out, W_out) input, with x as its upstream gradient
    out = conv.conv2d_input(size, weight, _extend(x, extra), stride, padding, dilation, groups)
    if bias is not None:
        out += bias[:, None, None]  # + b[c]
    return out


def conv_transpose2d_input(input_size, weight, grad_output, stride=1, padding=0, output_padding=0, groups=1,
                           dilation=1):
    r"""Gradient of :func:`conv_transpose2d` with respect to its input: a convolution.

    Parameters
    ----------
    input_size : tuple (N, C_in, H, W)
        The forward input's shape (the result's).
    weight : ndarray, shape (C_in, C_out / groups, kh, kw)
    grad_output : ndarray, shape (N, C_out, H_out, W_out), ``weight``'s dtype
    stride, padding, output_padding, groups, dilation : as in :func:`conv_transpose2d`

    Returns
    -------
    ndarray, shape ``input_size``

    Raises
    ------
    TypeError, ValueError
        As :func:`conv_transpose2d`; ``grad_output`` not of the output's shape.

    Shape
    -----
    (N, C_out, H_out, W_out) -> ``input_size`` (N, C_in, H, W).

    Notes
    -----
    :func:`~minidl.functional.conv2d` of ``grad_output`` with ``weight`` (rows beyond ``H``, present
    only when ``output_padding >= stride``, are cropped):

    .. math:: \frac{\partial L}{\partial X}[n, o, i, j] = \sum_{c, p, q} G_{pad}[n, c, s_h i + d_h p,
              s_w j + d_w q]\, W[o, c, p, q]

    Examples
    --------
    >>> w = np.ones((1, 2, 3, 3)); g = np.ones((1, 2, 6, 6))
    >>> conv_transpose2d_input((1, 1, 3, 3), w, g, stride=2, padding=1, output_padding=1).shape
    (1, 1, 3, 3)
    """
    where = "conv_transpose2d_input"
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) != 4:
        raise ValueError(f"{where}: input_size must be (N, C_in, H, W). Received: {input_size!r}")
    check_array(weight, "weight", where)
    check_float_dtype(weight, "weight", where)
    args, size, _ = _geometry(input_size, weight.shape, stride, padding, output_padding, groups, dilation, where)
    _check_grad_output(grad_output, size, weight, where)
    stride, padding, _, groups, dilation = args
    h, w = input_size[2:]
    return conv.conv2d(grad_output, weight, None, stride, padding, dilation, groups, where=where)[:, :, :h, :w]


def conv_transpose2d_weight(x, weight_size, grad_output, stride=1, padding=0, output_padding=0, groups=1,
                            dilation=1):
    r"""Gradient of :func:`conv_transpose2d` with respect to its weight.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
        The forward input.
    weight_size : tuple (C_in, C_out / groups, kh, kw)
    grad_output : ndarray, shape (N, C_out, H_out, W_out), ``x``'s dtype
    stride, padding, output_padding, groups, dilation : as in :func:`conv_transpose2d`

    Returns
    -------
    ndarray, shape ``weight_size``; summed (not averaged) over the batch.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv_transpose2d`; ``grad_output`` not of the output's shape.

    Shape
    -----
    ``x`` (N, C_in, H, W) and ``grad_output`` (N, C_out, H_out, W_out) -> ``weight_size``.

    Notes
    -----
    :func:`~minidl.functional.conv2d_weight` with the roles swapped: ``grad_output`` is the
    convolution's input, ``x`` its upstream gradient:

    .. math:: \frac{\partial L}{\partial W}[o, c, p, q] = \sum_{n, i, j} X[n, o, i, j]\,
              G_{pad}[n, c, s_h i + d_h p, s_w j + d_w q]

    Examples
    --------
    >>> x = np.ones((2, 1, 1, 1)); g = np.ones((2, 1, 2, 2))
    >>> conv_transpose2d_weight(x, (1, 1, 2, 2), g)[0, 0]
    array([[2., 2.],
           [2., 2.]])
    """
    where = "conv_transpose2d_weight"
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C_in, H, W)")
    weight_size = tuple(int(s) for s in weight_size)
    args, size, extra = _geometry(x.shape, weight_size, stride, padding, output_padding, groups, dilation, where)
    _check_grad_output(grad_output, size, x, where)
    stride, padding, _, groups, dilation = args
    return conv.conv2d_weight(grad_output, weight_size, _extend(x, extra), stride, padding, dilation, groups)


def conv_transpose2d_backward(x, weight, grad_output, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                              bias=True, input_grad=True, *, where="conv_transpose2d_backward"):
    r"""All gradients of :func:`conv_transpose2d` at once: ``(dx, dweight, dbias)``.

    :func:`conv_transpose2d_input`, :func:`conv_transpose2d_weight` and
    :func:`~minidl.functional.conv2d_bias`, with one unfolding of ``grad_output`` shared
    between the first two (the columns ``conv2d`` builds for dx serve ``conv2d_weight``).
    :class:`minidl.layers.ConvTranspose2D` calls it.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
        The forward input.
    weight : ndarray, shape (C_in, C_out / groups, kh, kw), ``x``'s dtype
    grad_output : ndarray, shape (N, C_out, H_out, W_out), ``x``'s dtype
    stride, padding, output_padding, groups, dilation : as in :func:`conv_transpose2d`
    bias : bool, default True
        Compute ``dbias``.
    input_grad : bool, default True
        Compute ``dx``.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    dx : ndarray, shape (N, C_in, H, W), or None
    dweight : ndarray, shape (C_in, C_out / groups, kh, kw)
    dbias : ndarray, shape (C_out,), or None

    Raises
    ------
    TypeError, ValueError
        As :func:`conv_transpose2d`; ``grad_output`` not of the output's shape.

    Shape
    -----
    As :func:`conv_transpose2d_input` and :func:`conv_transpose2d_weight`.

    Examples
    --------
    >>> dx, dw, db = conv_transpose2d_backward(np.ones((2, 1, 1, 1)), np.ones((1, 1, 2, 2)), np.ones((2, 1, 2, 2)))
    >>> dx.ravel(), dw.shape, db
    (array([4., 4.]), (1, 1, 2, 2), array([8.]))
    """
    _check_pair(x, weight, where)
    args, size, extra = _geometry(x.shape, weight.shape, stride, padding, output_padding, groups, dilation, where)
    _check_grad_output(grad_output, size, weight, where)
    stride, padding, _, groups, dilation = args
    dx, columns = None, None
    if input_grad:  # dL/dX = conv2d(G, W), and the columns of G it unfolds serve dL/dW too
        dx, columns = conv.conv2d(grad_output, weight, None, stride, padding, dilation, groups, return_columns=True,
                                  where=where)
        dx = dx[:, :, :x.shape[2], :x.shape[3]]
    _, dw, _ = conv.conv2d_backward(grad_output, weight, _extend(x, extra), stride, padding, dilation, groups,
                                    bias=False, input_grad=False, columns=columns, where=where)
    return dx, dw, (conv.conv2d_bias(grad_output) if bias else None)
