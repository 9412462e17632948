"""Data augmentation for :meth:`minidl.Trainer.fit` (``transform=``), vectorised over the batch.

A transform is any callable ``transform(x, rng) -> x'`` taking a batch of
images ``(N, C, H, W)`` and a :class:`numpy.random.Generator`, and returning
a new array of the same shape and dtype (it must not modify ``x``, which may
be a view of the training set). ``fit`` calls it on every training batch with
a generator derived from its seed and the epoch, so a run -- and a resumed run
-- is reproducible. Exposed as ``minidl.data.RandomShift`` etc.

Examples
--------
>>> import numpy as np
>>> t = Compose([RandomShift(1), RandomRotation(10)])
>>> t(np.ones((4, 1, 8, 8), np.float32), np.random.default_rng(0)).shape
(4, 1, 8, 8)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..validation import check_array, check_ndim, nonnegative_int, positive_real

__all__ = ["Compose", "RandomShift", "RandomRotation", "shift_images", "rotate_images", "apply", "STREAM"]

#: Third word of the seed of fit's augmentation generator, ``[seed, epoch, STREAM]``
#: ("aug"): its own stream, apart from the shuffling's ``[seed, epoch]``.
STREAM = 0x617567


def apply(transform, x, rng):
    """``transform(x, rng)``, checked: an array of ``x``'s shape and dtype, or TypeError.

    What :meth:`minidl.Trainer.fit` calls on every training batch.

    Parameters
    ----------
    transform : callable(x, rng) -> ndarray
    x : ndarray
        A batch.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray
        ``transform``'s result.

    Raises
    ------
    TypeError
        The result is not an ndarray of ``x``'s shape and dtype.

    Shape
    -----
    ``x`` (N, ...) -> the same shape.

    Examples
    --------
    >>> apply(RandomShift(1), np.ones((2, 1, 4, 4)), np.random.default_rng(0)).shape
    (2, 1, 4, 4)
    """
    out = transform(x, rng)
    if not isinstance(out, np.ndarray) or out.shape != x.shape or out.dtype != x.dtype:
        got = f"{type(out).__name__} {getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}".strip()
        raise TypeError(
            f"Trainer.fit: transform must return an array of the batch's shape {x.shape} and dtype "
            f"{x.dtype}. Received: {got} from {transform!r}."
        )
    return out


def _check_images(x, where):
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")


def shift_images(x, dy, dx):
    """Shift image ``n`` by ``dy[n]`` rows down and ``dx[n]`` columns right, filling with zeros.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    dy, dx : int arrays of shape (N,)

    Returns
    -------
    ndarray of ``x``'s shape and dtype: ``out[n, :, i, j] = x[n, :, i - dy[n], j - dx[n]]``
    where that is inside the image, else 0.

    Shape
    -----
    (N, C, H, W) -> (N, C, H, W); ``dy`` and ``dx``: (N,).

    Examples
    --------
    >>> shift_images(np.arange(4.).reshape(1, 1, 2, 2), np.array([1]), np.array([0]))[0, 0]
    array([[0., 0.],
           [0., 1.]])
    """
    _check_images(x, "shift_images")
    n, _, h, w = x.shape
    dy, dx = np.asarray(dy, dtype=np.int64), np.asarray(dx, dtype=np.int64)
    m = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    if m == 0:
        return x.copy()
    padded = np.zeros(x.shape[:2] + (h + 2 * m, w + 2 * m), dtype=x.dtype)
    padded[:, :, m:m + h, m:m + w] = x
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, 2m+1, 2m+1, H, W), no copy
    return windows[np.arange(n), :, m - dy, m - dx]  # one gather: (N, C, H, W)


def rotate_images(x, degrees):
    """Rotate image ``n`` by ``degrees[n]`` (counter-clockwise) about its centre,
    bilinear interpolation, zeros outside.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    degrees : float array of shape (N,)

    Returns
    -------
    ndarray of ``x``'s shape and dtype

    Shape
    -----
    (N, C, H, W) -> (N, C, H, W); ``degrees``: (N,).

    Notes
    -----
    Output pixel ``(i, j)`` samples the input at the inverse rotation of its
    offset from the centre ``((H - 1) / 2, (W - 1) / 2)``; the four nearest
    input pixels are weighted bilinearly (a multiple of 90 degrees on a
    square image moves pixels exactly, as ``np.rot90``).

    Examples
    --------
    >>> x = np.arange(9.).reshape(1, 1, 3, 3)
    >>> np.allclose(rotate_images(x, np.array([90.]))[0, 0], np.rot90(x[0, 0]))
    True
    """
    _check_images(x, "rotate_images")
    n, c, h, w = x.shape
    theta = np.deg2rad(np.asarray(degrees, dtype=np.float64)).reshape(n, 1, 1)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    i, j = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
    cos, sin = np.cos(theta), np.sin(theta)
    # inverse rotation of the output offsets (rows grow downwards: a counter-clockwise
    # rotation on screen), in float64; at 90 degrees cos is 6e-17, not 0, which moves
    # weight 1e-16 onto a neighbour (within bounds: the border is zero-padded)
    src_i = cos * i + sin * j + cy
    src_j = -sin * i + cos * j + cx
    i0, j0 = np.floor(src_i).astype(np.int64), np.floor(src_j).astype(np.int64)
    fi, fj = (src_i - i0).astype(x.dtype), (src_j - j0).astype(x.dtype)
    padded = np.zeros((n, c, h + 2, w + 2), dtype=x.dtype)  # a zero border for the corners
    padded[:, :, 1:-1, 1:-1] = x
    rows, cols = np.clip(i0 + 1, 0, h), np.clip(j0 + 1, 0, w)  # top-left corner, in padded coords
    inside = ((i0 >= -1) & (i0 <= h - 1) & (j0 >= -1) & (j0 <= w - 1)).astype(x.dtype)
    batch = np.arange(n).reshape(n, 1, 1)
    out = np.zeros_like(x)
    for di, wi in ((0, 1 - fi), (1, fi)):
        for dj, wj in ((0, 1 - fj), (1, fj)):
            corner = padded[batch, :, rows + di, cols + dj]  # (N, H, W, C)
            out += ((wi * wj * inside)[..., None] * corner).transpose(0, 3, 1, 2)
    return out


class RandomShift:
    """Shift each image by a random whole number of pixels in ``[-max_shift, max_shift]``
    along each axis (independently per image), filling with zeros.

    Parameters
    ----------
    max_shift : int >= 0
        The largest shift, in pixels (0: the identity).

    Shape
    -----
    Called as ``t(x, rng)``: (N, C, H, W) -> (N, C, H, W), dtype kept.

    Examples
    --------
    >>> RandomShift(2)(np.ones((3, 1, 8, 8)), np.random.default_rng(0)).shape
    (3, 1, 8, 8)
    """

    def __init__(self, max_shift):
        self.max_shift = nonnegative_int(max_shift, "max_shift", "RandomShift")

    def __call__(self, x, rng):
        m, n = self.max_shift, len(x)
        return shift_images(x, rng.integers(-m, m + 1, n), rng.integers(-m, m + 1, n))

    def __repr__(self):
        return f"RandomShift({self.max_shift})"


class RandomRotation:
    """Rotate each image by a random angle, uniform in ``[-degrees, degrees]``
    (see :func:`rotate_images`).

    Parameters
    ----------
    degrees : float in [0, 360]
        The largest angle (0: the identity; 180 already reaches every angle).

    Raises
    ------
    ValueError
        ``degrees`` negative, not finite or above 360 (``1e308`` used to overflow at the first batch).

    Shape
    -----
    Called as ``t(x, rng)``: (N, C, H, W) -> (N, C, H, W), dtype kept.

    Examples
    --------
    >>> RandomRotation(15)(np.ones((3, 1, 8, 8)), np.random.default_rng(0)).shape
    (3, 1, 8, 8)
    """

    def __init__(self, degrees):
        if isinstance(degrees, (int, float, np.integer, np.floating)) and degrees == 0:
            self.degrees = 0.0
        else:
            self.degrees = positive_real(degrees, "degrees", "RandomRotation")
        if self.degrees > 360:
            raise ValueError(f"RandomRotation: degrees must be in [0, 360]: angles are drawn in [-degrees, degrees], "
                             f"and 180 already reaches every angle. Received: degrees={degrees!r}")

    def __call__(self, x, rng):
        return rotate_images(x, rng.uniform(-self.degrees, self.degrees, len(x)))

    def __repr__(self):
        return f"RandomRotation({self.degrees:g})"


class Compose:
    """Apply transforms one after the other, each with the same generator.

    Parameters
    ----------
    transforms : iterable of callable(x, rng) -> ndarray

    Examples
    --------
    >>> Compose([RandomShift(1), RandomRotation(5)])
    Compose([RandomShift(1), RandomRotation(5)])
    """

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable(x, rng). Received: {t!r}")

    def __call__(self, x, rng):
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return f"Compose([{', '.join(map(repr, self.transforms))}])"
