"""Input checks shared by kernels and layers -- public: write your own layers with them.

Every check raises ``ValueError`` or ``TypeError`` with a message that says
where the problem is (``where``: a function name, or the layer itself, whose
``repr`` is formatted only when an error is raised), what was expected, what
was received and, when there is an obvious fix, how to fix it. Nothing here
uses ``assert``. Integers follow one rule: Python and numpy integers are
accepted, bools and floats (``1.0`` too) refused.

Examples
--------
>>> positive_int(np.int64(3), "channels", "MyLayer")
3
>>> check_array([1.0], "x", "MyLayer")
Traceback (most recent call last):
...
TypeError: MyLayer: x must be a numpy.ndarray. Received: list. Convert it with np.asarray(x, dtype=np.float32).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "is_int",
    "pair",
    "positive_pair",
    "check_int",
    "nonnegative_int",
    "positive_int",
    "positive_real",
    "check_array",
    "check_ndim",
    "check_float_dtype",
    "check_same_dtype",
]


def is_int(value) -> bool:
    """True for a Python or numpy integer; False for bools and floats (even ``1.0``).

    Parameters
    ----------
    value : object

    Returns
    -------
    bool

    Examples
    --------
    >>> is_int(3), is_int(np.int8(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    if type(value) is int:  # fast path: this runs on every forward/backward call
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def pair(value, name: str, where: str) -> tuple[int, int]:
    """Return ``value`` as an ``(int, int)`` pair; accepts an int or a 2-sequence of ints.

    Parameters
    ----------
    value : int or 2-sequence of ints
    name : str
        The argument's name, for the message.
    where : str or object
        The caller (a function name, or a layer: its ``repr`` is formatted only on error).

    Returns
    -------
    (int, int)

    Raises
    ------
    TypeError
        Anything else (floats and bools included).

    Examples
    --------
    >>> pair(3, "kernel_size", "MyLayer"), pair([1, 2], "stride", "MyLayer")
    ((3, 3), (1, 2))
    """
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        return value
    if is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(
        f"{where}: {name} must be an int or a pair of ints (h, w). Received: {name}={value!r}"
    )


def positive_pair(value, name: str, where: str) -> tuple[int, int]:
    """Like :func:`pair` but every entry must be >= 1.

    Parameters
    ----------
    value : int or 2-sequence of ints
    name : str
        The argument's name, for the message.
    where : str or object
        The caller (a function name, or a layer: its ``repr`` is formatted only on error).

    Returns
    -------
    (int, int)

    Examples
    --------
    >>> positive_pair((2, 1), "stride", "MyLayer")
    (2, 1)
    """
    result = pair(value, name, where)
    if min(result) < 1:
        raise ValueError(
            f"{where}: {name} must be >= 1 in every dimension. Received: {name}={value!r}"
        )
    return result


def check_int(value, name: str, where: str, minimum: int | None = None, hint: str = "") -> int:
    """Return ``value`` as a Python int: the one integer check of minidl.

    Python and numpy integers are accepted; bools and floats (even ``1.0``)
    raise TypeError, a value below ``minimum`` raises ValueError. ``hint`` (what
    else the argument may be) ends the message.

    Parameters
    ----------
    value : int
    name : str
        The argument's name, for the message.
    where : str or object
        The caller (a function name, or a layer: its ``repr`` is formatted only on error).
    minimum : int, optional
    hint : str, default ''
        Appended after "must be an int" / "must be >= minimum", e.g. " (or 'auto')".

    Returns
    -------
    int

    Raises
    ------
    TypeError
        Not an integer (bools and floats included).
    ValueError
        Below ``minimum``.

    Examples
    --------
    >>> check_int(np.int64(4), "batch_size", "fit", 1)
    4
    >>> check_int(0, "batch_size", "fit", 1)
    Traceback (most recent call last):
    ...
    ValueError: fit: batch_size must be >= 1. Received: batch_size=0
    """
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an int{hint}. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}{hint}. Received: {name}={value!r}")
    return int(value)


def nonnegative_int(value, name: str, where: str) -> int:
    """Return ``value`` as an int >= 0.

    Parameters
    ----------
    value : int
    name : str
        The argument's name, for the message.
    where : str or object
        The caller (a function name, or a layer: its ``repr`` is formatted only on error).

    Returns
    -------
    int

    Examples
    --------
    >>> nonnegative_int(0, "patience", "EarlyStopping")
    0
    """
    return check_int(value, name, where, 0)


def positive_int(value, name: str, where: str) -> int:
    """Return ``value`` as an int >= 1.

    Parameters
    ----------
    value : int
    name : str
        The argument's name, for the message.
    where : str or object
        The caller (a function name, or a layer: its ``repr`` is formatted only on error).

    Returns
    -------
    int

    Examples
    --------
    >>> positive_int(np.int32(8), "channels", "MyLayer")
    8
    """
    return check_int(value, name, where, 1)


def positive_real(value, name: str, where: str) -> float:
    """Return ``value`` as a finite float > 0 (bools refused).

    Parameters
    ----------
    value : real number
    name : str
        The argument's name, for the message.
    where : str or object
        The caller (a function name, or a layer: its ``repr`` is formatted only on error).

    Returns
    -------
    float

    Examples
    --------
    >>> positive_real(np.float32(0.5), "degrees", "RandomRotation")
    0.5
    """
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be a real number. Received: {name}={value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: {name} must be a finite number > 0. Received: {name}={value!r}")
    return float(value)


def check_bool(value, name: str, where: str) -> bool:
    """``value`` as a bool: ``True``/``False`` or a numpy bool (not 0 or 1), else TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False. Received: {name}={value!r}")
    return bool(value)


def check_array(x, name: str, where: str) -> np.ndarray:
    """Require a numpy array (no silent conversion of lists or tensors).

    Parameters
    ----------
    x : object
    name : str
        The argument's name, for the message.
    where : str or object
        The caller (a function name, or a layer: its ``repr`` is formatted only on error).

    Returns
    -------
    ndarray
        ``x`` itself.

    Raises
    ------
    TypeError
        Not an ndarray (the message shows the ``np.asarray`` fix).

    Shape
    -----
    Any.

    Examples
    --------
    >>> x = np.zeros(3)
    >>> check_array(x, "x", "MyLayer") is x
    True
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{where}: {name} must be a numpy.ndarray. Received: {type(x).__name__}. "
            f"Convert it with np.asarray({name}, dtype=np.float32)."
        )
    return x


def check_ndim(x: np.ndarray, ndim: int, name: str, where: str, layout: str) -> None:
    """Require ``x.ndim == ndim``; ``layout`` names the axes, e.g. ``'(N, C, H, W)'``.

    Parameters
    ----------
    x : ndarray
    ndim : int
    name : str
        The argument's name, for the message.
    where : str or object
        The caller (a function name, or a layer: its ``repr`` is formatted only on error).
    layout : str
        The expected axes, e.g. ``'(N, C, H, W)'``, for the message.

    Raises
    ------
    ValueError
        Another number of dimensions (with a hint for 3-D and 2-D images).

    Shape
    -----
    ``x``: ``ndim`` dimensions.

    Examples
    --------
    >>> check_ndim(np.zeros((1, 8, 8)), 4, "x", "Conv2D", "(N, C, H, W)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Conv2D: expected x with 4 dimensions (N, C, H, W), ... For a single image add a batch axis: x[None].
    """
    if x.ndim != ndim:
        hint = ""
        if ndim == 4 and x.ndim == 3:
            hint = " For a single image add a batch axis: x[None]."
        elif ndim == 4 and x.ndim == 2:
            hint = " For 8x8 digits use x.reshape(-1, 1, 8, 8)."
        raise ValueError(
            f"{where}: expected {name} with {ndim} dimensions {layout}, "
            f"got {x.ndim} dimensions with shape {x.shape}.{hint}"
        )


def check_float_dtype(x: np.ndarray, name: str, where: str) -> None:
    """Require a floating-point dtype.

    Parameters
    ----------
    x : ndarray
    name : str
        The argument's name, for the message.
    where : str or object
        The caller (a function name, or a layer: its ``repr`` is formatted only on error).

    Raises
    ------
    TypeError
        Not a floating dtype.

    Shape
    -----
    Any.

    Examples
    --------
    >>> check_float_dtype(np.zeros(2, np.float16), "x", "MyLayer")
    >>> check_float_dtype(np.zeros(2, np.int64), "x", "MyLayer")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: MyLayer: x must have a floating-point dtype. Received: dtype=int64. Cast it first, ...
    """
    if x.dtype.kind != "f":  # np.issubdtype(dtype, np.floating), without its overhead
        raise TypeError(
            f"{where}: {name} must have a floating-point dtype. Received: dtype={x.dtype}. "
            f"Cast it first, e.g. {name}.astype(np.float32)."
        )


def check_same_dtype(x: np.ndarray, ref: np.ndarray, name: str, ref_name: str, where: str) -> None:
    """Require ``x.dtype == ref.dtype`` (no silent up- or down-casting).

    Parameters
    ----------
    x, ref : ndarray
    name, ref_name : str
        Their names, for the message.
    where : str or object
        The caller.

    Raises
    ------
    TypeError
        ``x`` is not floating, or its dtype differs from ``ref``'s.

    Shape
    -----
    Any (only dtypes are compared).

    Examples
    --------
    >>> check_same_dtype(np.zeros(2, np.float32), np.zeros(3, np.float32), "x", "weight", "MyLayer")
    """
    check_float_dtype(x, name, where)
    if x.dtype != ref.dtype:
        raise TypeError(
            f"{where}: {name} dtype {x.dtype} does not match {ref_name} dtype {ref.dtype}. "
            f"Cast the input with {name}.astype(np.{ref.dtype}) or build the layer "
            f"with dtype=np.{x.dtype}."
        )
