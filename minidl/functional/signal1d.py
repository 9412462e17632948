"""1-D convolution and pooling over (N, C, L) signals: the 2-D kernels on (N, C, 1, L).

A 1-D op is its 2-D op on a height of one: the signal becomes ``x[:, :, None, :]``, the
kernel ``(1, k)``, the stride ``(1, s)``, the padding ``((0, 0), (left, right))``, and the
answer loses its height axis again. No second engine: every kernel here checks the 1-D
shapes (so its messages speak of ``(N, C, L)``), reshapes, and calls
:mod:`~minidl.functional.conv`, :mod:`~minidl.functional.pool` or
:mod:`~minidl.functional.avgpool`; the math and its derivation are theirs, with ``H = 1``
(``docs/conv_backprop.md``, ``docs/derivations/pooling.md``).
"""

from __future__ import annotations

from ..validation import check_array, check_ndim, is_int
from . import avgpool, conv, pool
from .geometry import check_groups

__all__ = ["conv1d", "conv1d_backward", "conv1d_input", "conv1d_weight", "max_pool1d", "max_pool1d_backward",
           "avg_pool1d", "avg_pool1d_backward", "single", "padding_1d"]


def single(value, name, where, minimum=1):
    """``value`` as one int: an int, or a sequence of one int (torch's ``(k,)``).

    Parameters
    ----------
    value : int or 1-sequence of int
    name : str
        The argument's name, for the message.
    where : str or object
        The caller, named in error messages.
    minimum : int, default 1

    Returns
    -------
    int

    Raises
    ------
    TypeError
        Not an int or a 1-sequence of one (a pair included: 1-D takes one number).
    ValueError
        Below ``minimum``.

    Examples
    --------
    >>> single((3,), "kernel_size", "Conv1D"), single(2, "stride", "Conv1D")
    (3, 2)
    """
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an int or a tuple of one int (1-D), as in torch. "
                        f"Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}. Received: {name}={value!r}")
    return int(value)


def padding_1d(padding, where, strings=True):
    """A 1-D ``padding`` checked: ``'same'``/``'valid'`` (lower case) when ``strings``, else an int >= 0.

    Parameters
    ----------
    padding : int, (p,), 'same' or 'valid'
    where : str or object
        The caller, named in error messages.
    strings : bool, default True
        Accept ``'same'`` and ``'valid'`` (Conv1D does; the pools, as torch's, do not).

    Returns
    -------
    int or str

    Raises
    ------
    TypeError, ValueError
        Another string, a pair, a float, a negative value.

    Examples
    --------
    >>> padding_1d("SAME", "Conv1D"), padding_1d((2,), "Conv1D")
    ('same', 2)
    """
    if isinstance(padding, str):
        if strings and padding.lower() in ("same", "valid"):
            return padding.lower()
        allowed = "an int, 'valid' or 'same'" if strings else "an int (as in torch)"
        raise ValueError(f"{where}: padding must be {allowed}. Received: padding={padding!r}")
    return single(padding, "padding", where, minimum=0)


def _pad2d(padding):
    """The 2-D padding of a 1-D one: none along the height of one."""
    return padding if isinstance(padding, str) else ((0, 0), (padding, padding))


def _args2d(stride, padding, dilation, where, strings=True):
    return ((1, single(stride, "stride", where)), _pad2d(padding_1d(padding, where, strings)),
            (1, single(dilation, "dilation", where)))


def _signal(x, name, where, layout="(N, C, L)"):
    check_array(x, name, where)
    check_ndim(x, 3, name, where, layout)
    return x[:, :, None, :]


def _check_fit(x, weight, k, padding, dilation, groups, where):
    """The 1-D messages for what the 2-D kernels would report with 4-D shapes: channels, kernel span."""
    if weight is not None and x.shape[1] != weight.shape[1] * check_groups(groups, where):
        raise ValueError(f"{where}: expected input with {weight.shape[1] * groups} channels (weight {weight.shape}, "
                         f"groups={groups}), got {x.shape[1]} channels in input of shape {x.shape} (N, C, L).")
    span = single(dilation, "dilation", where) * (single(k, "kernel_size", where) - 1) + 1
    padding = padding_1d(padding, where)
    pad = 0 if isinstance(padding, str) else 2 * padding
    if span > x.shape[2] + pad and padding != "same":
        raise ValueError(f"{where}: the kernel spans {span} (kernel_size {k}, dilation {dilation}), more than the "
                         f"padded length {x.shape[2] + pad} (input {x.shape}, padding {padding}). Use a smaller "
                         f"kernel or more padding.")


def _size(input_size, where):
    if len(input_size) != 3:
        raise ValueError(f"{where}: input_size must be (N, C, L). Received: {tuple(input_size)!r}")
    n, c, length = (int(v) for v in input_size)
    return n, c, 1, length


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, return_columns=False, *,
           padding_mode="zeros", where="conv1d"):
    r"""1-D cross-correlation, as :func:`torch.nn.functional.conv1d`: :func:`conv2d` with ``H = 1``.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, L)
    weight : ndarray, shape (C_out, C_in / groups, k), ``x``'s dtype
    bias : ndarray, shape (C_out,), optional
    stride, dilation : int, each >= 1
    padding : int, 'valid' or 'same'
        Both ends; ``'same'`` as :func:`conv2d`'s (Keras rule for every stride).
    groups : int
    return_columns : bool
        Also return :func:`conv2d`'s columns, for :func:`conv1d_backward`.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape (N, C_out, L_out), dtype of ``x`` (and the columns, with ``return_columns``)

    Shape
    -----
    ``L_out = floor((L + 2 p - dilation (k - 1) - 1) / stride) + 1``.

    Notes
    -----
    :math:`Y[n, o, i] = b[o] + \sum_{c, q} W[o, c, q]\, X_{pad}[n, g(o) \tfrac{C_{in}}{G} + c, s i + d q]`.

    Examples
    --------
    >>> import numpy as np
    >>> conv1d(np.ones((1, 1, 5)), np.ones((2, 1, 3)), padding=1)[0]
    array([[2., 3., 3., 3., 2.],
           [2., 3., 3., 3., 2.]])
    """
    x4 = _signal(x, "x", where)
    w4 = _signal(weight, "weight", where, "(C_out, C_in / groups, k)")
    _check_fit(x, weight, weight.shape[2], padding, dilation, groups, where)
    stride, padding, dilation = _args2d(stride, padding, dilation, where)
    got = conv.conv2d(x4, w4, bias, stride, padding, dilation, groups, return_columns,
                      padding_mode=padding_mode, where=where)
    return (got[0][:, :, 0], got[1]) if return_columns else got[:, :, 0]


def conv1d_backward(x, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, bias=True,
                    input_grad=True, columns=None, *, padding_mode="zeros", where="conv1d_backward"):
    """All gradients of :func:`conv1d`, ``(dx, dweight, dbias)``: :func:`conv2d_backward` with ``H = 1``.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, L)
    weight : ndarray, shape (C_out, C_in / groups, k)
    grad_output : ndarray, shape (N, C_out, L_out)
    stride, padding, dilation, groups, padding_mode : as in :func:`conv1d`
    bias, input_grad : bool, default True
        Compute ``dbias``, ``dx``.
    columns : ndarray, optional
        ``conv1d(..., return_columns=True)``'s second result for this ``x``.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    dx : ndarray, shape (N, C_in, L), or None
    dweight : ndarray, shape (C_out, C_in / groups, k)
    dbias : ndarray, shape (C_out,), or None

    Shape
    -----
    ``grad_output`` (N, C_out, L_out) -> ``dx`` (N, C_in, L), ``dweight`` like ``weight``.

    Examples
    --------
    >>> import numpy as np
    >>> dx, dw, db = conv1d_backward(np.ones((2, 1, 4)), np.ones((1, 1, 3)), np.ones((2, 1, 2)))
    >>> dx[0, 0], dw[0, 0], db
    (array([1., 2., 2., 1.]), array([4., 4., 4.]), array([4.]))
    """
    x4 = _signal(x, "x", where)
    w4 = _signal(weight, "weight", where, "(C_out, C_in / groups, k)")
    g4 = _signal(grad_output, "grad_output", where, "(N, C_out, L_out)")
    _check_fit(x, weight, weight.shape[2], padding, dilation, groups, where)
    stride, padding, dilation = _args2d(stride, padding, dilation, where)
    dx, dw, db = conv.conv2d_backward(x4, w4, g4, stride, padding, dilation, groups, bias, input_grad, columns,
                                      padding_mode=padding_mode, where=where)
    return (None if dx is None else dx[:, :, 0]), dw[:, :, 0], db


def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                 padding_mode="zeros"):
    """Gradient of :func:`conv1d` with respect to its input (:func:`conv2d_input` with ``H = 1``).

    Parameters
    ----------
    input_size : tuple (N, C_in, L)
    weight : ndarray, shape (C_out, C_in / groups, k)
    grad_output : ndarray, shape (N, C_out, L_out)
    stride, padding, dilation, groups, padding_mode : as in :func:`conv1d`

    Returns
    -------
    ndarray, shape ``input_size``

    Shape
    -----
    (N, C_out, L_out) -> (N, C_in, L).

    Examples
    --------
    >>> import numpy as np
    >>> conv1d_input((1, 1, 4), np.ones((1, 1, 3)), np.ones((1, 1, 2)))[0, 0]
    array([1., 2., 2., 1.])
    """
    where = "conv1d_input"
    size = _size(input_size, where)
    w4 = _signal(weight, "weight", where, "(C_out, C_in / groups, k)")
    g4 = _signal(grad_output, "grad_output", where, "(N, C_out, L_out)")
    stride, padding, dilation = _args2d(stride, padding, dilation, where)
    return conv.conv2d_input(size, w4, g4, stride, padding, dilation, groups, padding_mode=padding_mode)[:, :, 0]


def conv1d_weight(x, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                  padding_mode="zeros"):
    """Gradient of :func:`conv1d` with respect to its weight (:func:`conv2d_weight` with ``H = 1``).

    Parameters
    ----------
    x : ndarray, shape (N, C_in, L)
    weight_size : tuple (C_out, C_in / groups, k)
    grad_output : ndarray, shape (N, C_out, L_out)
    stride, padding, dilation, groups, padding_mode : as in :func:`conv1d`

    Returns
    -------
    ndarray, shape ``weight_size``, summed over the batch

    Shape
    -----
    ``x`` (N, C_in, L), ``grad_output`` (N, C_out, L_out) -> (C_out, C_in / groups, k).

    Examples
    --------
    >>> import numpy as np
    >>> conv1d_weight(np.ones((2, 1, 4)), (1, 1, 3), np.ones((2, 1, 2)))[0, 0]
    array([4., 4., 4.])
    """
    where = "conv1d_weight"
    x4 = _signal(x, "x", where)
    g4 = _signal(grad_output, "grad_output", where, "(N, C_out, L_out)")
    if len(weight_size) != 3:
        raise ValueError(f"{where}: weight_size must be (C_out, C_in / groups, k). Received: {weight_size!r}")
    o, c, k = (int(v) for v in weight_size)
    stride, padding, dilation = _args2d(stride, padding, dilation, where)
    return conv.conv2d_weight(x4, (o, c, 1, k), g4, stride, padding, dilation, groups,
                              padding_mode=padding_mode)[:, :, 0]


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               where="max_pool1d"):
    r"""Max pooling over windows of ``k``, as :func:`torch.nn.functional.max_pool1d`: :func:`max_pool2d`, ``H = 1``.

    Parameters
    ----------
    x : ndarray, shape (N, C, L), floating point
    kernel_size : int
    stride : int, optional
        Defaults to ``kernel_size``.
    padding : int
        ``-inf`` at both ends (never wins a window), at most half the kernel.
    dilation : int
    ceil_mode : bool
        Round the output size up, PyTorch's rule.
    return_indices : bool
        Also return each window's winner as its offset ``q`` in the window (``0 .. k - 1``),
        as :func:`max_pool2d` does (not torch's index into L); :func:`max_pool1d_backward` takes it.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    out : ndarray, shape (N, C, L_out)
    indices : ndarray, same shape (only with ``return_indices``)

    Shape
    -----
    ``L_out = floor((L + 2 p - d (k - 1) - 1) / s) + 1`` (ceil with ``ceil_mode``).

    Notes
    -----
    :math:`Y[n, c, i] = \max_q X_{pad}[n, c, s i + d q]`; ties go to the first maximum.

    Examples
    --------
    >>> import numpy as np
    >>> max_pool1d(np.array([[[1., 3., 2., 0., 5.]]]), 2)
    array([[[3., 2.]]])
    """
    x4 = _signal(x, "x", where)
    k = (1, single(kernel_size, "kernel_size", where))
    s = None if stride is None else (1, single(stride, "stride", where))
    _, p, d = _args2d(1, padding, dilation, where, strings=False)
    _check_fit(x, None, k[1], p[1][0], d[1], 1, where)
    got = pool.max_pool2d(x4, k, s, p, d, ceil_mode, return_indices, where=where)
    return (got[0][:, :, 0], got[1][:, :, 0]) if return_indices else got[:, :, 0]


def max_pool1d_backward(input_size, grad_output, indices, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, *, where="max_pool1d_backward"):
    """Gradient of :func:`max_pool1d`: each window's gradient goes to its winner (:func:`max_pool2d_backward`).

    Parameters
    ----------
    input_size : tuple (N, C, L)
    grad_output : ndarray, shape (N, C, L_out)
    indices : ndarray of integers, from ``max_pool1d(..., return_indices=True)``
    kernel_size, stride, padding, dilation, ceil_mode : as in the forward call
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape ``input_size``

    Shape
    -----
    (N, C, L_out) -> (N, C, L).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1., 3., 2., 0.]]])
    >>> y, idx = max_pool1d(x, 2, return_indices=True)
    >>> max_pool1d_backward(x.shape, np.ones_like(y), idx, 2)
    array([[[0., 1., 1., 0.]]])
    """
    size = _size(input_size, where)
    g4 = _signal(grad_output, "grad_output", where, "(N, C, L_out)")
    i4 = _signal(indices, "indices", where, "(N, C, L_out)")
    k = (1, single(kernel_size, "kernel_size", where))
    s = None if stride is None else (1, single(stride, "stride", where))
    _, p, d = _args2d(1, padding, dilation, where, strings=False)
    return pool.max_pool2d_backward(size, g4, i4, k, s, p, d, ceil_mode, where=where)[:, :, 0]


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
               where="avg_pool1d"):
    r"""Average pooling over windows of ``k``, as :func:`torch.nn.functional.avg_pool1d`: :func:`avg_pool2d`, ``H = 1``.

    Parameters
    ----------
    x : ndarray, shape (N, C, L), floating point
    kernel_size : int
    stride : int, optional
        Defaults to ``kernel_size``.
    padding : int
        Zeros at both ends, at most half the kernel.
    ceil_mode : bool
    count_include_pad : bool
        Whether the zero padding counts in the divisor.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape (N, C, L_out)

    Shape
    -----
    ``L_out = floor((L + 2 p - k) / s) + 1`` (ceil with ``ceil_mode``).

    Notes
    -----
    :math:`Y[n, c, i] = \frac{1}{D_i} \sum_q X_{pad}[n, c, s i + q]`, :func:`avg_pool2d`'s divisor.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool1d(np.array([[[1., 3., 2., 0.]]]), 2)
    array([[[2., 1.]]])
    """
    x4 = _signal(x, "x", where)
    k = (1, single(kernel_size, "kernel_size", where))
    s = None if stride is None else (1, single(stride, "stride", where))
    p = (0, padding_1d(padding, where, strings=False))
    _check_fit(x, None, k[1], p[1], 1, 1, where)
    return avgpool.avg_pool2d(x4, k, s, p, ceil_mode, count_include_pad, where=where)[:, :, 0]


def avg_pool1d_backward(input_size, grad_output, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, *, where="avg_pool1d_backward"):
    """Gradient of :func:`avg_pool1d`: :func:`avg_pool2d_backward` with ``H = 1``.

    Parameters
    ----------
    input_size : tuple (N, C, L)
    grad_output : ndarray, shape (N, C, L_out)
    kernel_size, stride, padding, ceil_mode, count_include_pad : as in the forward call
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape ``input_size``

    Shape
    -----
    (N, C, L_out) -> (N, C, L).

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool1d_backward((1, 1, 4), np.ones((1, 1, 2)), 2)
    array([[[0.5, 0.5, 0.5, 0.5]]])
    """
    size = _size(input_size, where)
    g4 = _signal(grad_output, "grad_output", where, "(N, C, L_out)")
    k = (1, single(kernel_size, "kernel_size", where))
    s = None if stride is None else (1, single(stride, "stride", where))
    p = (0, padding_1d(padding, where, strings=False))
    return avgpool.avg_pool2d_backward(size, g4, k, s, p, ceil_mode, count_include_pad, where=where)[:, :, 0]
