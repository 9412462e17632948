"""The 2-D convolution as plain loops: forward, dX, dW and db straight from their sums.

This is the convolution lesson in its plainest form, and the *independent* oracle the tests
compare the engine (:mod:`minidl.functional.conv`) with. It imports nothing from minidl: the
padding rules ('same', 'valid', ints, pairs, explicit ``((top, bottom), (left, right))``), the
output size, the forward pass and the three gradients are re-derived here from the definition,
in the symbols of ``docs/conv_backprop.md`` (section numbers in the comments refer to it):

    Y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] * Xpad[n, c, sh*i + dh*p, sw*j + dw*q]

with one explicit Python loop per index. The backward pass loops over the very same sum and
applies the chain rule term by term: the term ``W[o,c,p,q] * Xpad[n,c,u,v]`` of ``Y[n,o,i,j]``
sends ``G[n,o,i,j] * Xpad[n,c,u,v]`` to ``dW[o,c,p,q]``, ``G[n,o,i,j] * W[o,c,p,q]`` to
``dXpad[n,c,u,v]``, and the bias term sends ``G[n,o,i,j]`` to ``db[o]``. ``dX`` is ``dXpad``
with the zero padding cropped away (padding is a constant, it has no gradient).

Everything is computed in float64 whatever the input dtype (an oracle, not a kernel), and
slowly: about a microsecond per multiply-add, so keep the inputs small.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "as_pair",
    "same_padding",
    "explicit_padding",
    "output_size",
    "pad_input",
    "conv2d_forward",
    "conv2d_backward",
]


def as_pair(value):
    """An int or a pair of ints as a pair: ``3 -> (3, 3)``, ``(2, 3) -> (2, 3)``.

    Parameters
    ----------
    value : int or (int, int)

    Returns
    -------
    (int, int)

    Raises
    ------
    ValueError
        If ``value`` is a sequence of other than two elements.

    Examples
    --------
    >>> as_pair(3), as_pair((2, 3))
    ((3, 3), (2, 3))
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"conv_reference.as_pair: expected an int or a pair (h, w), got {value!r}. "
                             "Pass one int for both axes or two.")
        a, b = value
        return int(a), int(b)
    return int(value), int(value)


def same_padding(size, kernel, stride, dilation):
    r"""Keras/TensorFlow 'same' padding along one axis, for any stride: ``(before, after)``.

    Parameters
    ----------
    size, kernel, stride, dilation : int
        The input's length along the axis, and the convolution's parameters along it.

    Returns
    -------
    (int, int)
        The zeros to add before (top / left) and after (bottom / right).

    Notes
    -----
    The output must have ``H_o = ceil(H / s)`` elements (section 3). The last window starts at
    ``(H_o - 1) s`` and spans ``d (k - 1) + 1`` elements, so

    .. math:: P = \max\big((H_o - 1) s + d (k - 1) + 1 - H,\ 0\big), \qquad
              p_t = \lfloor P / 2 \rfloor, \quad p_b = P - p_t ,

    the odd element going to the end (bottom / right).

    Examples
    --------
    >>> same_padding(8, 4, 1, 1), same_padding(8, 3, 2, 1)
    ((1, 2), (0, 1))
    """
    out = math.ceil(size / stride)  # H_o = ceil(H / s)
    needed = (out - 1) * stride + (kernel - 1) * dilation + 1  # (H_o - 1) s + d (k - 1) + 1
    total = max(needed - size, 0)  # P
    before = total // 2  # p_t = floor(P / 2)
    after = total - before  # p_b = P - p_t
    return before, after


def explicit_padding(padding, input_hw, kernel, stride, dilation):
    """Any padding spec as ``(top, bottom, left, right)``.

    Parameters
    ----------
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
    input_hw : (int, int)
        The input's height and width (needed by 'same').
    kernel, stride, dilation : int or (h, w)

    Returns
    -------
    (int, int, int, int)
        ``(p_t, p_b, p_l, p_r)``.

    Raises
    ------
    ValueError
        For a string other than 'same' or 'valid', or a negative padding.

    Examples
    --------
    >>> explicit_padding("same", (8, 8), 3, 2, 1)
    (0, 1, 0, 1)
    >>> explicit_padding(((0, 2), (1, 0)), (8, 8), 3, 1, 1)
    (0, 2, 1, 0)
    """
    h, w = input_hw
    kh, kw = as_pair(kernel)
    sh, sw = as_pair(stride)
    dh, dw = as_pair(dilation)
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            top, bottom = same_padding(h, kh, sh, dh)
            left, right = same_padding(w, kw, sw, dw)
            return top, bottom, left, right
        raise ValueError(f"conv_reference.explicit_padding: padding must be 'same', 'valid', an int or pairs, "
                         f"got {padding!r}. Pass one of those.")
    if isinstance(padding, (tuple, list)) and isinstance(padding[0], (tuple, list)):
        (top, bottom), (left, right) = padding
        pads = int(top), int(bottom), int(left), int(right)
    else:
        ph, pw = as_pair(padding)
        pads = ph, ph, pw, pw
    if min(pads) < 0:
        raise ValueError(f"conv_reference.explicit_padding: padding must be >= 0, got {padding!r}. "
                         "Pass non-negative amounts.")
    return pads


def _count_windows(padded_size, kernel, stride, dilation):
    """How many window positions ``i`` satisfy ``stride*i + dilation*(kernel-1) <= padded_size - 1``.

    Counted one by one (no floor formula): the last element a window reads is
    ``stride*i + dilation*(kernel-1)``, and it has to lie inside the padded input (section 2).
    """
    count = 0
    while stride * count + dilation * (kernel - 1) <= padded_size - 1:
        count += 1
    return count


def output_size(input_hw, kernel, stride=1, padding=0, dilation=1):
    r"""``(H_o, W_o)``, by counting the windows that fit in the padded input.

    Parameters
    ----------
    input_hw : (int, int)
    kernel : int or (kh, kw)
    stride, dilation : int or (h, w), each >= 1
    padding : as in :func:`explicit_padding`

    Returns
    -------
    (int, int)
        0 along an axis where even one window does not fit.

    Raises
    ------
    ValueError
        If a stride or dilation is below 1, or for a padding :func:`explicit_padding` refuses.

    Notes
    -----
    The windows are counted one by one; the engine's floor formula (section 2)

    .. math:: H_o = \left\lfloor \frac{H + p_t + p_b - d_h (k_h - 1) - 1}{s_h} \right\rfloor + 1

    must agree with the count.

    Examples
    --------
    >>> output_size((8, 8), 3, stride=2)  # the floor drops row and column 7
    (3, 3)
    """
    h, w = input_hw
    kh, kw = as_pair(kernel)
    sh, sw = as_pair(stride)
    dh, dw = as_pair(dilation)
    if min(sh, sw, dh, dw) < 1:
        raise ValueError(f"conv_reference.output_size: stride and dilation must be >= 1, got stride={stride!r}, "
                         f"dilation={dilation!r}. Pass positive ints.")
    top, bottom, left, right = explicit_padding(padding, input_hw, kernel, stride, dilation)
    return (_count_windows(h + top + bottom, kh, sh, dh),
            _count_windows(w + left + right, kw, sw, dw))


def pad_input(x, top, bottom, left, right):
    r"""The zero-padded input ``X_pad``, written element by element, in float64.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    top, bottom, left, right : int
        The zeros added on each side.

    Returns
    -------
    ndarray, shape (N, C, H + top + bottom, W + left + right), float64

    Shape
    -----
    (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).

    Notes
    -----
    .. math:: X_{pad}[n, c, u, v] = X[n, c, u - p_t, v - p_l]
              \text{ inside, } 0 \text{ elsewhere (section 1)}.

    Examples
    --------
    >>> pad_input(np.ones((1, 1, 1, 2)), 1, 0, 0, 1)[0, 0]
    array([[0., 0., 0.],
           [1., 1., 0.]])
    """
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + top + bottom, w + left + right), dtype=np.float64)
    for a in range(n):
        for b in range(c):
            for u in range(h):
                for v in range(w):
                    xp[a, b, u + top, v + left] = x[a, b, u, v]  # Xpad[n, c, u + p_t, v + p_l] = X[n, c, u, v]
    return xp


def _geometry(where, x_shape, w_shape, stride, padding, dilation, groups):
    """Check the shapes; the stride, dilation, pads ``(p_t, p_b, p_l, p_r)`` and output size."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"{where}: x must be (N, C, H, W) and weight (O, C / groups, kh, kw), got shapes "
                         f"{x_shape} and {w_shape}. Pass 4-d arrays.")
    if not isinstance(groups, int) or groups < 1 or w_shape[0] % groups:
        raise ValueError(f"{where}: groups must be an int >= 1 that divides the {w_shape[0]} output channels, "
                         f"got {groups!r}. Pass a divisor of weight.shape[0].")
    if x_shape[1] != w_shape[1] * groups:
        raise ValueError(f"{where}: weight has {w_shape[1]} input channels per group, times groups={groups} is "
                         f"not x's {x_shape[1]}. Pass a weight of shape (O, C / groups, kh, kw).")
    h, w = x_shape[2:]
    kernel = w_shape[2:]
    ho, wo = output_size((h, w), kernel, stride, padding, dilation)
    if ho < 1 or wo < 1:
        raise ValueError(f"{where}: the kernel {kernel} (dilation {dilation!r}) is larger than the padded "
                         f"input ({h}, {w}) with padding {padding!r}. Pass a larger input or more padding.")
    pads = explicit_padding(padding, (h, w), kernel, stride, dilation)
    return as_pair(stride), as_pair(dilation), pads, (ho, wo)


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    r"""The forward pass of a 2-D convolution (cross-correlation), by loops over every index.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    weight : ndarray, shape (O, C / groups, kh, kw)
    bias : ndarray, shape (O,), optional
    stride, dilation : int or (h, w), each >= 1
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
    groups : int, default 1
        The channels split into ``groups`` blocks convolved independently: output channel ``o``
        reads only the ``C / groups`` input channels of its block (``groups = C``: depthwise).

    Returns
    -------
    ndarray, shape (N, O, H_o, W_o), float64

    Raises
    ------
    ValueError
        For shapes that do not fit together (``bias`` included), a kernel larger than the padded
        input, a ``groups`` that does not divide the channels, or a stride, dilation or padding
        :func:`output_size` refuses.

    Shape
    -----
    (N, C, H, W) and (O, C / groups, kh, kw) -> (N, O, H_o, W_o), ``H_o`` as in :func:`output_size`.

    Notes
    -----
    Section 4 of ``docs/conv_backprop.md``:

    .. math:: Y[n, o, i, j] = b[o] + \sum_{c, p, q} W[o, c, p, q]\,
              X_{pad}[n, c, s_h i + d_h p, s_w j + d_w q]

    and with groups (section 6b) ``c`` runs over one block, read at input channel
    ``g(o) C / groups + c``, where ``g(o) = floor(o / (O / groups))`` is the block of ``o``.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> conv2d_forward(x, np.ones((1, 1, 2, 2)), stride=2)[0, 0]  # sums of 2x2 blocks
    array([[10., 18.],
           [42., 50.]])
    >>> conv2d_forward(x.repeat(2, axis=1), np.ones((2, 1, 1, 1)), groups=2).shape  # depthwise
    (1, 2, 4, 4)
    """
    where = "conv_reference.conv2d_forward"
    x, weight = np.asarray(x), np.asarray(weight)
    (sh, sw), (dh, dw), (top, bottom, left, right), (ho, wo) = _geometry(
        where, x.shape, weight.shape, stride, padding, dilation, groups)
    n_batch = x.shape[0]
    n_out, c_group, kh, kw = weight.shape  # c_group = C / groups input channels per block
    if bias is not None and np.shape(bias) != (n_out,):
        raise ValueError(f"{where}: bias must have shape ({n_out},), one value per output channel, got "
                         f"{np.shape(bias)}. Pass bias=None or an array of {n_out} values.")
    xp = pad_input(x, top, bottom, left, right)
    y = np.zeros((n_batch, n_out, ho, wo), dtype=np.float64)
    for n in range(n_batch):
        for o in range(n_out):
            first = o // (n_out // groups) * c_group  # g(o) * C / groups: the first input channel o reads
            for i in range(ho):
                for j in range(wo):
                    total = 0.0 if bias is None else float(bias[o])  # b[o]
                    for c in range(c_group):
                        for p in range(kh):
                            for q in range(kw):
                                # + W[o, c, p, q] * Xpad[n, g(o) C/groups + c, sh*i + dh*p, sw*j + dw*q]
                                total += (float(weight[o, c, p, q])
                                          * xp[n, first + c, sh * i + dh * p, sw * j + dw * q])
                    y[n, o, i, j] = total
    return y


def conv2d_backward(x, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    r"""``(dX, dW, db)``, the gradients of ``L = sum(Y * G)``, by the chain rule term by term.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        The forward input.
    weight : ndarray, shape (O, C / groups, kh, kw)
    grad_output : ndarray, shape (N, O, H_o, W_o)
        ``G``, the upstream gradient.
    stride, padding, dilation, groups : as in :func:`conv2d_forward`

    Returns
    -------
    dx : ndarray, shape (N, C, H, W), float64
    dw : ndarray, shape (O, C / groups, kh, kw), float64
        Summed over the batch, never averaged (section 7).
    db : ndarray, shape (O,), float64
        Summed over the batch and the pixels.

    Raises
    ------
    ValueError
        As :func:`conv2d_forward`, and when ``grad_output`` does not have the output's shape.

    Shape
    -----
    (N, C, H, W), (O, C / groups, kh, kw) and (N, O, H_o, W_o) -> (N, C, H, W), (O, C / groups, kh, kw),
    (O,).

    Notes
    -----
    Sections 5.1 to 5.3 of ``docs/conv_backprop.md``:

    .. math:: \frac{\partial L}{\partial b}[o] = \sum_{n, i, j} G[n, o, i, j], \qquad
              \frac{\partial L}{\partial W}[o, c, p, q] = \sum_{n, i, j} G[n, o, i, j]\,
              X_{pad}[n, c, s_h i + d_h p, s_w j + d_w q],

    .. math:: \frac{\partial L}{\partial X_{pad}}[n, c, u, v] = \sum_{o, i, j, p, q}
              G[n, o, i, j]\, W[o, c, p, q]\, [u = s_h i + d_h p]\, [v = s_w j + d_w q],

    and ``dX`` is ``dXpad`` cropped to the input. Rows no window reads get zero gradient. With
    groups, as in :func:`conv2d_forward`, ``X_pad``'s and ``dX_pad``'s channel is ``g(o) C / groups + c``.

    Examples
    --------
    >>> x = np.ones((2, 1, 4, 4)); w = np.ones((1, 1, 3, 3)); g = np.ones((2, 1, 2, 2))
    >>> dx, dw, db = conv2d_backward(x, w, g)
    >>> dx[0, 0, 0], dw[0, 0, 0], db
    (array([1., 2., 2., 1.]), array([8., 8., 8.]), array([8.]))
    """
    where = "conv_reference.conv2d_backward"
    x, weight, grad_output = np.asarray(x), np.asarray(weight), np.asarray(grad_output)
    (sh, sw), (dh, dw), (top, bottom, left, right), (ho, wo) = _geometry(
        where, x.shape, weight.shape, stride, padding, dilation, groups)
    n_batch, _, h, w = x.shape
    n_out, c_group, kh, kw = weight.shape  # c_group = C / groups input channels per block
    if grad_output.shape != (n_batch, n_out, ho, wo):
        raise ValueError(f"{where}: grad_output must have the output's shape {(n_batch, n_out, ho, wo)}, got "
                         f"{grad_output.shape}. Pass dL/dY of conv2d_forward(x, weight, ...).")
    xp = pad_input(x, top, bottom, left, right)
    dxp = np.zeros_like(xp)
    dw_ = np.zeros(weight.shape, dtype=np.float64)
    db = np.zeros(n_out, dtype=np.float64)
    for n in range(n_batch):
        for o in range(n_out):
            first = o // (n_out // groups) * c_group  # g(o) * C / groups, as in the forward pass
            for i in range(ho):
                for j in range(wo):
                    g = float(grad_output[n, o, i, j])  # G[n, o, i, j]
                    db[o] += g  # dL/db[o] = sum_{n,i,j} G[n, o, i, j]  (5.1)
                    for c in range(c_group):
                        for p in range(kh):
                            for q in range(kw):
                                u = sh * i + dh * p  # the padded row and column this tap reads
                                v = sw * j + dw * q
                                # (input channel first + c: just c without groups)
                                # dL/dW[o, c, p, q] = sum_{n,i,j} G[n, o, i, j] * Xpad[n, c, u, v]  (5.2)
                                dw_[o, c, p, q] += g * xp[n, first + c, u, v]
                                # dL/dXpad[n, c, u, v] = sum_{o,i,j,p,q} G[n, o, i, j] * W[o, c, p, q]
                                #     * [u = sh*i + dh*p] * [v = sw*j + dw*q]  (5.3): this term's share
                                dxp[n, first + c, u, v] += g * float(weight[o, c, p, q])
    dx = dxp[:, :, top : top + h, left : left + w].copy()  # dX = dXpad cropped: the padding has no gradient
    return dx, dw_, db
