"""Convolution geometry: padding modes, output sizes, and a small cache.

Shared by :mod:`minidl.functional.conv` and :mod:`minidl.functional.pool`.
"""

from __future__ import annotations

from ..validation import pair, positive_int, positive_pair
from ._engine.tiling import Geometry, Padding  # the record the engine's kernels take

__all__ = [
    "Geometry",
    "Padding",
    "check_conv_args",
    "check_groups",
    "check_padding_arg",
    "conv2d_output_size",
    "geometry",
    "resolve_padding",
]


def resolve_padding(padding, input_hw, kernel_size, stride=1, dilation=1, where="conv2d") -> Padding:
    """Turn any accepted ``padding`` into explicit ``((top, bottom), (left, right))``.

    Parameters
    ----------
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
        ``'same'`` follows Keras/TensorFlow for every stride: the output size is
        ``ceil(in / stride)``, the total padding is
        ``max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0)`` and the odd
        extra row/column goes to the bottom/right. For stride 1 this is
        PyTorch's ``padding='same'``.
    input_hw, kernel_size, stride, dilation : int or pair of ints
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ((int, int), (int, int))
        ``((top, bottom), (left, right))``.

    Shape
    -----
    With the result, the output is (H_out, W_out) of :func:`conv2d_output_size`;
    ``'same'`` gives ``ceil(H / stride)``.

    Examples
    --------
    >>> resolve_padding('same', (8, 8), 4)
    ((1, 2), (1, 2))
    >>> resolve_padding('same', (8, 8), 3, stride=2)
    ((0, 1), (0, 1))
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            ks = positive_pair(kernel_size, "kernel_size", where)
            st = positive_pair(stride, "stride", where)
            dl = positive_pair(dilation, "dilation", where)
            result = []
            for size, k, s, d in zip(input_hw, ks, st, dl):
                out = -(-size // s)
                total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
                result.append((total // 2, total - total // 2))
            return tuple(result)  # type: ignore[return-value]
        raise ValueError(
            f"{where}: padding must be an int, a pair of ints, 'valid' or 'same'. "
            f"Received: padding={padding!r}"
        )
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        explicit = tuple(pair(p, "padding", where) for p in padding)
    else:
        ph, pw = pair(padding, "padding", where)
        explicit = ((ph, ph), (pw, pw))
    if min(min(p) for p in explicit) < 0:
        raise ValueError(f"{where}: padding must be >= 0. Received: padding={padding!r}")
    return explicit  # type: ignore[return-value]


def conv2d_output_size(input_hw, kernel_size, stride=1, padding=0, dilation=1, where="conv2d"):
    """Output ``(H_out, W_out)``: ``floor((H + pt + pb - d*(k-1) - 1) / s) + 1``.

    Raises ``ValueError`` when the dilated kernel is larger than the padded input.

    Parameters
    ----------
    input_hw : (int, int)
        (H, W).
    kernel_size, stride, dilation : int or pair of ints
    padding : as in :func:`resolve_padding`
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    (int, int)
        (H_out, W_out).

    Shape
    -----
    ``H_out = floor((H + pt + pb - dilation * (kh - 1) - 1) / stride) + 1``, likewise ``W_out``.

    Examples
    --------
    >>> conv2d_output_size((8, 8), 3, stride=2)
    (3, 3)
    """
    return geometry(tuple(input_hw), kernel_size, stride, padding, dilation, where).out


def geometry(input_hw, kernel_size, stride, padding, dilation, where) -> Geometry:
    """Validated geometry; cached for arguments made only of plain ints and strings.

    Only exact ``int``/``str`` (and tuples of them) are cached: ``1 == 1.0 == True``
    hash alike, and a cached ``1`` must not let ``1.0`` or ``True`` through.

    Parameters
    ----------
    input_hw : (int, int)
    kernel_size, stride, dilation : int or pair of ints
    padding : as in :func:`resolve_padding`
    where : str
        The caller, named in error messages.

    Returns
    -------
    Geometry

    Examples
    --------
    >>> geometry((28, 28), 5, 1, "same", 1, "Conv2D").out
    (28, 28)
    """
    args = (kernel_size, stride, padding, dilation)
    cacheable = plain_ints(kernel_size) and plain_ints(stride) and plain_ints(padding) and plain_ints(dilation)
    if cacheable:
        key = (tuple(input_hw), args)
        hit = _GEOMETRY_CACHE.get(key)
        if hit is not None:
            return hit
    geo = _compute_geometry(input_hw, kernel_size, stride, padding, dilation, where)
    if cacheable and len(_GEOMETRY_CACHE) < 4096:
        _GEOMETRY_CACHE[key] = geo
    return geo


_GEOMETRY_CACHE: dict = {}


def plain_ints(v) -> bool:
    t = type(v)
    if t is int or t is str:
        return True
    if t is not tuple:
        return False
    for e in v:  # a plain loop: this runs on every forward and backward call
        te = type(e)
        if te is int:
            continue
        if te is not tuple:
            return False
        for f in e:
            if type(f) is not int:
                return False
    return True


def _compute_geometry(input_hw, kernel_size, stride, padding, dilation, where) -> Geometry:
    ks = positive_pair(kernel_size, "kernel_size", where)
    st = positive_pair(stride, "stride", where)
    dl = positive_pair(dilation, "dilation", where)
    pads = resolve_padding(padding, input_hw, ks, st, dl, where)
    out = []
    for axis, (size, k, s, d, (pa, pb)) in enumerate(zip(input_hw, ks, st, dl, pads)):
        span = (k - 1) * d + 1
        padded = size + pa + pb
        if span > padded:
            name = "height" if axis == 0 else "width"
            raise ValueError(
                f"{where}: the kernel is larger than the padded input along the {name}: "
                f"kernel {ks} with dilation {dl} spans {span}, padded input {name} is {padded} "
                f"(input {tuple(input_hw)}, padding {pads}). Use a smaller kernel or more padding."
            )
        out.append((padded - span) // s + 1)
    # A stride with one output position, or a dilation with a one-tap kernel, never steps:
    # use 1, so that no offset arithmetic overflows for huge values (stride=2**63 is legal)
    st = tuple(s if o > 1 else 1 for s, o in zip(st, out))
    dl = tuple(d if k > 1 else 1 for d, k in zip(dl, ks))
    return Geometry(ks, st, dl, pads, tuple(out))  # type: ignore[arg-type]


def check_padding_arg(padding, where):
    """Validate a layer's ``padding`` argument at construction and return it
    normalised (a lower-case string, an int, or a tuple); ``'same'`` is
    resolved per input size in forward by :func:`resolve_padding`.

    Parameters
    ----------
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
    where : str
        The caller, named in error messages.

    Returns
    -------
    str, int or tuple

    Examples
    --------
    >>> check_padding_arg("SAME", "Conv2D"), check_padding_arg([1, 2], "Conv2D")
    ('same', (1, 2))
    """
    if isinstance(padding, str):
        if padding.lower() not in ("same", "valid"):
            raise ValueError(
                f"{where}: padding must be an int, a pair of ints, 'valid' or 'same'. "
                f"Received: padding={padding!r}"
            )
        return padding.lower()
    resolve_padding(padding, (1, 1), 1, where=where)  # type/sign checks
    if isinstance(padding, (tuple, list)):
        return tuple(tuple(p) if isinstance(p, (tuple, list)) else int(p) for p in padding)
    return int(padding)


def check_groups(groups, where) -> int:
    """``groups`` as an int >= 1 (bools and floats refused).

    Parameters
    ----------
    groups : int
    where : str
        The caller, named in error messages.

    Returns
    -------
    int

    Examples
    --------
    >>> check_groups(2, "Conv2D")
    2
    """
    if type(groups) is int and groups >= 1:  # the usual case, on every call
        return groups
    return positive_int(groups, "groups", where)


def check_conv_args(x_shape, w_shape, where, groups=1):
    """Raise ValueError unless ``w_shape`` is (out, in / groups, kh, kw) for the
    channels ``in`` of ``x_shape``, ``out`` divisible by ``groups``, and no
    channel count is zero.

    Parameters
    ----------
    x_shape : tuple (N, C_in, H, W)
    w_shape : tuple (C_out, C_in / groups, kh, kw)
    where : str
        The caller, named in error messages.
    groups : int, default 1

    Raises
    ------
    ValueError
        A mismatch; the message gives both shapes.

    Examples
    --------
    >>> check_conv_args((2, 4, 8, 8), (6, 2, 3, 3), "Conv2D", groups=2)
    >>> check_conv_args((2, 4, 8, 8), (6, 3, 3, 3), "Conv2D")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Conv2D: expected input with 3 channels, got 4 channels in input of shape (2, 4, 8, 8) ...
    """
    if len(w_shape) != 4:
        raise ValueError(
            f"{where}: expected weight with 4 dimensions (out_channels, in_channels / groups, kh, "
            f"kw), got shape {tuple(w_shape)}."
        )
    if w_shape[0] == 0 or w_shape[1] == 0 or x_shape[1] == 0:
        raise ValueError(
            f"{where}: a convolution needs at least one input and one output channel "
            f"(a batch of N = 0 samples is fine). Received: input of shape {tuple(x_shape)}, "
            f"weight of shape {tuple(w_shape)} (out_channels, in_channels, kh, kw)."
        )
    if x_shape[1] != w_shape[1] * groups:
        per_group = f" ({w_shape[1]} per group x groups={groups})" if groups != 1 else ""
        raise ValueError(
            f"{where}: expected input with {w_shape[1] * groups} channels{per_group}, got "
            f"{x_shape[1]} channels in input of shape {tuple(x_shape)} (layout is NCHW; weight "
            f"shape {tuple(w_shape)})."
        )
    if w_shape[0] % groups:
        raise ValueError(
            f"{where}: out_channels ({w_shape[0]}, weight shape {tuple(w_shape)}) must be "
            f"divisible by groups={groups}, as in torch.nn.Conv2d."
        )
