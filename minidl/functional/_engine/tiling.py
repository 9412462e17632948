"""What every engine kernel takes and how it cuts its work (internal): the :class:`Geometry`
record of a convolution or pooling (validated and built by
:func:`minidl.functional.geometry.geometry`; defined here so that the engine imports no math
module), and :func:`tiles`, the cut of an output into pieces whose temporaries fit a byte budget
(:data:`minidl.functional.conv.MAX_COLUMN_BYTES`, passed in), shared by the im2col kernels
(:mod:`.im2col`) and the direct depthwise kernels (:mod:`.depthwise`).
"""

from __future__ import annotations

from typing import NamedTuple

__all__: list[str] = []

Padding = tuple[tuple[int, int], tuple[int, int]]


class Geometry(NamedTuple):
    """A validated convolution/pooling geometry: what :func:`minidl.functional.geometry.geometry` returns.

    ``pads`` is explicit ``((top, bottom), (left, right))``; ``out`` is
    ``(H_out, W_out)``. A stride with a single output position and a dilation
    of a one-tap kernel are normalised to 1.

    Attributes
    ----------
    kernel, stride, dilation : (int, int)
    pads : ((int, int), (int, int))
    out : (int, int)

    Examples
    --------
    >>> from minidl.functional.geometry import geometry
    >>> geometry((8, 8), 3, 2, "same", 1, "example")
    Geometry(kernel=(3, 3), stride=(2, 2), dilation=(1, 1), pads=((0, 1), (0, 1)), out=(4, 4))
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: Padding
    out: tuple[int, int]


def tiles(n: int, out_hw, pixel_bytes: int, cap: int):
    """Split ``n`` samples x ``out_hw`` output pixels into pieces whose columns
    (``pixel_bytes`` per output pixel) fit in ``cap`` bytes.

    Yields ``(n0, n1, i0, i1, j0, j1)``: samples ``n0:n1``, output rows
    ``i0:i1``, output columns ``j0:j1``. Whole samples when one sample fits
    (the usual case: a typical batch is one piece); otherwise one sample at a
    time over bands of output rows; when a single row does not fit, over runs
    of one row's columns. Every piece is a C-contiguous block of an NHWC output.
    """
    ho, wo = out_hw
    row = wo * pixel_bytes
    if ho * row <= cap:
        step = max(1, min(n, cap // max(ho * row, 1)))
        for n0 in range(0, n, step):
            yield n0, min(n0 + step, n), 0, ho, 0, wo
    elif row <= cap:
        step = cap // row
        for n0 in range(n):
            for i0 in range(0, ho, step):
                yield n0, n0 + 1, i0, min(i0 + step, ho), 0, wo
    else:
        step = max(1, cap // pixel_bytes)
        for n0 in range(n):
            for i0 in range(ho):
                for j0 in range(0, wo, step):
                    yield n0, n0 + 1, i0, i0 + 1, j0, min(j0 + step, wo)
