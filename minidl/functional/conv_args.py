"""The argument checks shared by the convolution kernels of
:mod:`minidl.functional.conv`: each check lives here once, and every kernel
names its caller (``where``) in the errors it raises.
"""

from __future__ import annotations

from ..validation import check_array, check_float_dtype, check_ndim, check_same_dtype
from .geometry import Geometry, check_conv_args, check_groups, geometry, plain_ints

__all__ = ["check_x", "check_input_and_weight", "conv_geometry", "check_grad_output", "PADDING_MODES",
           "check_padding_mode"]

#: ``padding_mode`` values, as :class:`torch.nn.Conv2d`'s.
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def check_padding_mode(padding_mode, where) -> str:
    """Return ``padding_mode`` if it is one of :data:`PADDING_MODES`, else raise ValueError.

    Parameters
    ----------
    padding_mode : str
    where : str
        The caller, named in error messages.

    Returns
    -------
    str

    Examples
    --------
    >>> check_padding_mode("circular", "Conv2D")
    'circular'
    """
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(
            f"{where}: padding_mode must be one of {', '.join(map(repr, PADDING_MODES))} "
            f"(as torch.nn.Conv2d). Received: padding_mode={padding_mode!r}"
        )
    return padding_mode


def check_pads_fit(pads, input_hw, padding_mode, where) -> None:
    """torch's limits: reflect pads < the input size, circular pads <= it."""
    for (a, b), n, axis in zip(pads, input_hw, ("height", "width")):
        too_big = (padding_mode == "reflect" and max(a, b) >= n) or \
                  (padding_mode == "circular" and max(a, b) > n)
        if too_big:
            limit = "smaller than" if padding_mode == "reflect" else "at most"
            raise ValueError(
                f"{where}: padding_mode={padding_mode!r} needs padding {limit} the input {axis} "
                f"({n}); got padding {(a, b)} along the {axis}. Use a smaller padding or "
                f"padding_mode='zeros' or 'replicate'."
            )


def check_x(x, where) -> None:
    """``x``: an ndarray of rank 4, ``(N, C, H, W)``, or the TypeError/ValueError naming ``where``.

    Parameters
    ----------
    x : ndarray
    where : str
        The caller, named in error messages.

    Shape
    -----
    ``x``: (N, C, H, W).

    Examples
    --------
    >>> import numpy as np
    >>> check_x(np.ones((1, 1, 2, 2)), "conv2d")
    """
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")


def check_input_and_weight(x, weight, stride, padding, dilation, groups, padding_mode, where):
    """The checks of ``conv2d`` and ``conv2d_backward`` on ``x`` and ``weight``.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight : ndarray, shape (C_out, C_in / groups, kh, kw), floating, ``x``'s dtype
    stride, padding, dilation, groups, padding_mode : as in ``conv2d``
    where : str
        The caller, named in error messages.

    Returns
    -------
    geo : Geometry
    groups : int
    padding_mode : str
        Validated.

    Shape
    -----
    ``x`` (N, C_in, H, W), ``weight`` (C_out, C_in / groups, kh, kw).

    Examples
    --------
    >>> import numpy as np
    >>> geo, groups, mode = check_input_and_weight(np.ones((1, 2, 5, 5)), np.ones((4, 2, 3, 3)), 1, "same",
    ...                                            1, 1, "zeros", "conv2d")
    >>> geo.out, groups, mode
    ((5, 5), 1, 'zeros')
    """
    check_x(x, where)
    check_array(weight, "weight", where)
    check_float_dtype(weight, "weight", where)
    check_same_dtype(x, weight, "x", "weight", where)
    return conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, padding_mode, where)


def conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, padding_mode, where):
    """The validated geometry of a convolution of an ``x_shape`` input with a ``w_shape`` kernel.

    Parameters
    ----------
    x_shape : tuple (N, C_in, H, W)
    w_shape : tuple (C_out, C_in / groups, kh, kw)
    stride, padding, dilation, groups, padding_mode : as in ``conv2d``
    where : str
        The caller, named in error messages.

    Returns
    -------
    geo : Geometry
    groups : int
    padding_mode : str

    Shape
    -----
    ``x_shape`` (N, C_in, H, W), ``w_shape`` (C_out, C_in / groups, kh, kw).

    Examples
    --------
    >>> conv_geometry((1, 4, 8, 8), (4, 1, 3, 3), 2, 1, 1, 4, "reflect", "conv2d")[0].out
    (4, 4)
    """
    # checked once per shape and arguments (a layer's are fixed): only plain ints and strings are
    # cached, as geometry() does (a cached 1 must not let 1.0 or True through)
    key = (tuple(x_shape), tuple(w_shape), stride, padding, dilation, groups, padding_mode)
    cacheable = (type(groups) is int and type(padding_mode) is str and plain_ints(key[0]) and plain_ints(key[1])
                 and plain_ints(stride) and plain_ints(padding) and plain_ints(dilation))
    if cacheable and key in _CHECKED:
        return _CHECKED[key]
    groups = check_groups(groups, where)
    padding_mode = check_padding_mode(padding_mode, where)
    check_conv_args(x_shape, w_shape, where, groups)
    geo = geometry(tuple(x_shape[2:]), tuple(w_shape[2:]), stride, padding, dilation, where)
    if padding_mode != "zeros":
        check_pads_fit(geo.pads, x_shape[2:], padding_mode, where)
    if cacheable and len(_CHECKED) < 4096:
        _CHECKED[key] = geo, groups, padding_mode
    return geo, groups, padding_mode


_CHECKED: dict = {}


def check_grad_output(grad_output, like, like_name, x_shape, w_shape, geo: Geometry, where) -> None:
    """``grad_output``: an array of the forward output's shape and ``like``'s dtype.

    Parameters
    ----------
    grad_output : ndarray
    like : ndarray
        The array whose dtype ``grad_output`` must have (``x`` or ``weight``).
    like_name : str
        Its name in the error message.
    x_shape, w_shape : tuple
        The forward input's and the kernel's shapes.
    geo : Geometry
    where : str
        The caller, named in error messages.

    Shape
    -----
    ``grad_output``: (N, C_out, H_out, W_out), with ``geo.out = (H_out, W_out)``.

    Examples
    --------
    >>> import numpy as np
    >>> geo = conv_geometry((2, 1, 4, 4), (3, 1, 3, 3), 1, 0, 1, 1, "zeros", "conv2d_input")[0]
    >>> check_grad_output(np.ones((2, 3, 2, 2)), np.ones(1), "x", (2, 1, 4, 4), (3, 1, 3, 3), geo, "conv2d_input")
    """
    check_array(grad_output, "grad_output", where)
    expected = (x_shape[0], w_shape[0]) + tuple(geo.out)
    if grad_output.shape != expected:
        raise ValueError(
            f"{where}: expected grad_output of shape {expected}, got {grad_output.shape}."
        )
    check_same_dtype(grad_output, like, "grad_output", like_name, where)
