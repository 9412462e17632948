"""im2col machinery shared by the convolution kernels (internal).

The input (or, for dL/dX by full correlation, the upstream gradient) is
zero-padded channels-last, unfolded into columns (a strided view of every
receptive field, copied) and multiplied by a kernel matrix. The columns are
built piece by piece under a byte budget: whole samples at a time, or, for a
sample whose columns alone exceed the budget, bands of output rows, or runs
of one row's output columns (:func:`.tiling.tiles`) -- only the padded rows a piece reads are copied.
The budget is :data:`minidl.functional.conv.MAX_COLUMN_BYTES` (4 MiB: pieces that stay
in the CPU cache), passed in.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import blas, depthwise
from .tiling import Geometry, Padding, tiles

__all__: list[str] = []


def band(src: np.ndarray, pads: Padding, n0: int, n1: int, r0: int, r1: int, groups: int = 1) -> np.ndarray:
    """Zero-padded, C-contiguous copy of samples ``n0:n1`` of the NHWC-shaped ``src``
    (any strides), restricted to rows ``r0:r1`` of the padded image: NHWC for one
    group, group-major ``(groups, n, rows, W, C / groups)`` for several.
    Channels-last makes every receptive field a run of ``kw * C`` contiguous
    values (for dilation 1), so the im2col copy in :func:`unfold` is fast; with
    groups, the group-major copy keeps those runs (``kw * C / groups`` values)
    within each group. With nothing to pad and every row read, no copy: an unpadded
    channels-last ``src`` as it is for one group, a group-major view of ``src`` for
    several (:func:`unfold` copies the columns from it; a group-major copy first would
    add a copy of the whole input to the peak).
    """
    (pt, pb), (pl, pr) = pads
    _, h, w, c = src.shape
    part = src[n0:n1]
    if groups > 1:  # (n, h, w, groups, C / groups) -> group-major, in the one copy
        part = part.reshape(part.shape[:3] + (groups, c // groups)).transpose(3, 0, 1, 2, 4)
    if not (pt or pb or pl or pr) and r0 == 0 and r1 == h:
        return part if groups > 1 else np.ascontiguousarray(part)
    lead = part.shape[:-3]  # (n,) or (groups, n)
    out = np.zeros(lead + (r1 - r0, w + pl + pr, part.shape[-1]), dtype=src.dtype)
    a, b = max(r0, pt), min(r1, pt + h)  # the padded rows that hold data
    if a < b:
        out[..., a - r0 : b - r0, pl : pl + w, :] = part[..., a - pt : b - pt, :, :]
    return out


def windows(xp: np.ndarray, geo: Geometry) -> np.ndarray:
    """Read-only view ``(N, H_out, W_out, kh, kw, C)`` of every receptive field of NHWC ``xp``."""
    n, _, _, c = xp.shape
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = geo.kernel, geo.stride, geo.dilation, geo.out
    s_n, s_h, s_w, s_c = xp.strides
    shape = (n, ho, wo, kh, kw, c)
    strides = (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c)
    # an axis of length 1 never steps: its stride is irrelevant (and stride * step
    # could exceed the address space for huge strides or dilations, e.g. stride 2**63)
    strides = tuple(st if size > 1 else 0 for st, size in zip(strides, shape))
    if xp.flags.c_contiguous:  # a band (not: a group of an unpadded src); cheaper than as_strided
        view = np.ndarray(shape, xp.dtype, buffer=xp, strides=strides)
        view.flags.writeable = False
        return view
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def unfold(rows: np.ndarray, geo: Geometry, groups: int = 1, cols=None) -> np.ndarray:
    """The columns of each group, ``(groups, n * ho * wo, kh * kw * C / groups)``, of a
    :func:`band` ``rows`` (NHWC for one group, group-major for several): a copy of its
    :func:`windows` view (output columns ``cols``, a slice, when given).

    Each group's columns are one C-contiguous matrix (one GEMM per group).
    """
    views = [windows(r, geo) for r in (rows[None] if groups == 1 else rows)]  # one per group
    if cols is not None:
        views = [v[:, :, cols] for v in views]
    k = int(np.prod(views[0].shape[3:]))
    if groups == 1:
        return views[0].reshape(1, -1, k)  # the copy (windows overlap)
    out = np.empty((groups,) + views[0].shape, dtype=rows.dtype)
    for g, view in enumerate(views):  # the copy, each group's columns contiguous
        out[g] = view
    return out.reshape(groups, -1, k)


def pieces(src: np.ndarray, pads: Padding, geo: Geometry, k: int, cap: int, groups: int = 1):
    """Yield ``(n0, n1, i0, i1, j0, j1, columns)``: for each piece of :func:`tiles`, the
    im2col matrices ``(groups, pixels, kh * kw * C / groups)`` (see :func:`unfold`) of
    the NHWC-shaped ``src`` zero-padded by ``pads``; ``k`` is ``kh * kw * C``.

    Only the padded rows a piece reads are copied (its input band), and each piece
    is dropped before the next is built, so at most one piece's columns (and its
    input band) exist at a time.
    """
    (kh, _), (sh, _), (dh, _), (ho, wo) = geo.kernel, geo.stride, geo.dilation, geo.out
    for n0, n1, i0, i1, j0, j1 in tiles(src.shape[0], geo.out, k * src.itemsize, cap):
        rows = band(src, pads, n0, n1, i0 * sh, (i1 - 1) * sh + dh * (kh - 1) + 1, groups)
        columns = unfold(rows, geo if i1 - i0 == ho else geo._replace(out=(i1 - i0, wo)), groups,
                         None if j1 - j0 == wo else slice(j0, j1))
        del rows
        yield n0, n1, i0, i1, j0, j1, columns
        del columns  # free this piece before the next is built


def one_piece(src, pads, geo, k, cap, groups=1):
    """All the columns of ``src`` at once (as :func:`pieces` yields them) when they fit
    in ``cap`` bytes -- the usual case, without the generator's overhead -- else None."""
    if src.shape[0] * geo.out[0] * geo.out[1] * k * src.itemsize > cap:
        return None
    return unfold(band(src, pads, 0, src.shape[0], 0, src.shape[1] + pads[0][0] + pads[0][1], groups), geo, groups)


def group_rows(rows: np.ndarray, groups: int) -> np.ndarray:
    """``(pixels, groups * m) -> (groups, pixels, m)`` (a view): a gradient's rows per group."""
    return rows.reshape(rows.shape[0], groups, rows.shape[1] // groups).transpose(1, 0, 2)


def correlate(src, pads, geo, wmat_t, out, cap):
    """``out[n, i, j, g, :] = window_g(n, i, j) @ wmat_t[g]`` piece by piece, for the
    NHWC ``src`` zero-padded by ``pads``; ``wmat_t`` is ``(groups, kh * kw * C / groups,
    O / groups)``, ``out`` a C-contiguous ``(N, Ho, Wo, O)``.

    Returns the columns when they were built in one piece, else None.
    """
    groups, k_group, o_group = wmat_t.shape
    k, o = k_group * groups, o_group * groups
    if groups > 1 and k_group == geo.kernel[0] * geo.kernel[1]:  # one input channel per group
        if depthwise.direct(o_group, geo.stride):
            depthwise.forward(src, pads, geo, wmat_t, out, cap)
            return None
    cols = one_piece(src, pads, geo, k, cap, groups)
    if cols is not None:
        _product(cols, wmat_t, out.reshape(-1, o))
        return cols
    for n0, n1, i0, i1, j0, j1, cols in pieces(src, pads, geo, k, cap, groups):
        # each piece is a C-contiguous block of out: the reshape is a view
        _product(cols, wmat_t, out[n0:n1, i0:i1, j0:j1].reshape(-1, o))
        del cols
    return None


def _product(cols, wmat_t, out2d):
    """``out2d[:, g-th block] = cols[g] @ wmat_t[g]`` for every group."""
    if cols.shape[0] == 1:
        blas.matmul(cols[0], wmat_t[0], out=out2d)
        return
    o_group = wmat_t.shape[2]
    for g in range(cols.shape[0]):  # straight into the group's block of columns (BLAS's leading dimension)
        blas.matmul(cols[g], wmat_t[g], out=out2d[:, g * o_group:(g + 1) * o_group])


def weight_matrix(weight: np.ndarray, groups: int = 1) -> np.ndarray:
    """``(O, C / groups, kh, kw) -> (groups, O / groups, kh * kw * C / groups)``: each
    group's kernel in the column order of :func:`windows`."""
    o = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(groups, o // groups, -1)
