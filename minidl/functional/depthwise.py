"""Depthwise convolutions -- one input channel per group -- by direct per-offset
multiply-adds (internal).

With ``C`` input channels and ``m`` outputs per channel (``O = C m``, output
channel ``c m + k`` of input channel ``c``), every output is ``kh * kw``
multiply-adds: far too little work per channel for a GEMM (``C`` products of
``kh * kw`` columns). The kernels here work on whole channels-last rows instead:

* the input band a piece of the output reads is copied once, zero-padded,
  repeated ``m`` times along the channels (``O`` channels, in the output's order),
  so that output and input have the same channel axis;
* with a horizontal stride of 1, a row of ``W_out`` pixels by ``O`` channels is then
  one contiguous run of ``W_out * O`` values in both, and kernel offset ``(p, q)``
  shifts it by ``q * d_w * O`` values: the forward pass is one ``einsum`` over the
  ``kh * kw`` offsets of such runs, against the weights tiled along the row
  (long, contiguous inner loops: no length-``m`` or length-``C`` axis inside);
* dL/dW is, per offset, a dot product of those runs with ``G``'s, per channel;
* dL/dX is the full correlation of ``G`` with the rotated kernel at stride 1 (the
  ``m`` outputs of a channel summed: ``G`` copied with its ``m`` axis first), and
  otherwise a scatter-add of each offset's ``G * w`` onto the input positions it
  touched, restricted to the unpadded input (no padded gradient, no crop).

Everything is done piece by piece over the output pixels
(:func:`minidl.functional.im2col.tiles`), each piece's band and temporaries
under the column budget ``cap``; the kernels keep no state between calls (they run
on several threads at once under :func:`minidl.functional.blas.map_batch`).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import im2col
from .geometry import Geometry

__all__: list[str] = []


def _band(src, pads, n0, n1, rows, cols, r_in, r_out):
    """Zero-padded copy of samples ``n0:n1`` of the NHWC ``src`` (any strides) at
    padded rows ``rows = (r0, r1)`` and columns ``cols = (c0, c1)``, channels
    rearranged: ``(r_in, n, r1 - r0, c1 - c0, S / r_in * r_out)`` with ``S`` the
    channels of ``src``. ``r_out > 1`` repeats each channel ``r_out`` times
    (``[..., c r_out + k] = src[..., c]``); ``r_in > 1`` moves the channel's
    position within its run of ``r_in`` first (``[k, ..., c] = src[..., c r_in + k]``).

    A piece that reads no padding and needs no rearranging is ``src`` itself (a view)
    when its rows are channels-last runs.
    """
    (pt, _), (pl, _) = pads
    _, h, w, s = src.shape
    (r0, r1), (c0, c1) = rows, cols
    a, b = max(r0, pt), min(r1, pt + h)  # the padded rows and columns holding data
    ca, cb = max(c0, pl), min(c1, pl + w)
    if (r_in == r_out == 1 and (a, b, ca, cb) == (r0, r1, c0, c1)
            and src.strides[3] == src.itemsize and src.strides[2] == s * src.itemsize):
        return src[None, n0:n1, a - pt : b - pt, ca - pl : cb - pl]
    c = s // r_in
    out = np.empty((r_in, n1 - n0, r1 - r0, c1 - c0, c * r_out), dtype=src.dtype)
    if a >= b or ca >= cb:
        out[...] = 0
        return out
    out[:, :, : a - r0] = 0
    out[:, :, b - r0 :] = 0
    out[:, :, a - r0 : b - r0, : ca - c0] = 0
    out[:, :, a - r0 : b - r0, cb - c0 :] = 0
    part = src[n0:n1, a - pt : b - pt, ca - pl : cb - pl]
    inner = out[:, :, a - r0 : b - r0, ca - c0 : cb - c0]
    # one plain 4-D copy per position k (numpy is several times slower with a length-m
    # innermost axis, as in a single broadcasting or transposing copy)
    if r_out > 1:
        spread = inner.reshape(inner.shape[:4] + (c, r_out), copy=False)[0]
        for k in range(r_out):
            spread[..., k] = part
    else:
        gather = part.reshape(part.shape[:3] + (c, r_in))
        for k in range(r_in):
            inner[k] = gather[..., k]
    return out


def _windows(band, geo, ni, nj, flat):
    """Read-only view of the ``kh * kw`` shifted inputs of an ``(ni, nj)``-pixel piece
    of the ``(r_in, n, R, Cw, Ch)`` band: ``(r_in, n, ni, kh, kw, nj * Ch)`` when
    ``flat`` (runs of a row contiguous), else ``(r_in, n, ni, nj, kh, kw, Ch)``."""
    r_in, n, _, _, ch = band.shape
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    s_k, s_n, s_r, s_c, s_e = band.strides
    if flat:
        shape = (r_in, n, ni, kh, kw, nj * ch)
        strides = (s_k, s_n, s_r * sh, s_r * dh, s_c * dw, s_e)
    else:
        shape = (r_in, n, ni, nj, kh, kw, ch)
        strides = (s_k, s_n, s_r * sh, s_c * sw, s_r * dh, s_c * dw, s_e)
    # an axis of length 1 never steps (its stride, possibly huge, is irrelevant)
    strides = tuple(st if size > 1 else 0 for st, size in zip(strides, shape))
    return as_strided(band, shape=shape, strides=strides, writeable=False)


def _span(i0, i1, s, d, k):
    """Padded rows ``[i0 s, (i1 - 1) s + d (k - 1) + 1)`` that output rows ``i0:i1`` read."""
    return i0 * s, (i1 - 1) * s + d * (k - 1) + 1


def _is_flat_band(band, nj):
    """Whether a row's ``nj``-pixel runs are contiguous in ``band`` (then in every offset's view)."""
    return nj == 1 or band.strides[3] == band.shape[4] * band.strides[4]


def _correlate(src, pads, geo, w, out, cap, r_in, r_out):
    """``out[n, i, j, e] = sum_{k, p, q} band_k[n, s_h i + d_h p, s_w j + d_w q, e] w[k, p, q, e]``
    piece by piece, with the bands of :func:`_band` (``e`` over ``Ch`` channels)."""
    n = src.shape[0]
    ch = out.shape[3]
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = geo.kernel, geo.stride, geo.dilation, geo.out
    flat_w = sw == 1 or wo == 1
    # the weights tiled along a row, for runs of W_out * Ch values
    wt = np.tile(w[:, :, :, None, :], (1, 1, 1, wo, 1)).reshape(r_in, kh, kw, -1) if flat_w else w
    pixel_bytes = out.itemsize * ch * (r_in * sh * sw + 2)  # the band, the einsum's result
    for n0, n1, i0, i1, j0, j1 in im2col.tiles(n, geo.out, pixel_bytes, cap):
        ni, nj = i1 - i0, j1 - j0
        band = _band(src, pads, n0, n1, _span(i0, i1, sh, dh, kh), _span(j0, j1, sw, dw, kw),
                     r_in, r_out)
        flat = flat_w and _is_flat_band(band, nj)
        view = _windows(band, geo, ni, nj, flat)
        dst = out[n0:n1, i0:i1, j0:j1]
        if flat:
            wk = wt[..., : nj * ch]
            rows = dst.reshape(dst.shape[:2] + (-1,), copy=False)
            if r_in == 1:
                np.einsum("nipqb,pqb->nib", view[0], wk[0], out=rows)
            else:
                np.einsum("knipqb,kpqb->nib", view, wk, out=rows)
        elif r_in == 1:
            dst[...] = np.einsum("nijpqc,pqc->nijc", view[0], w[0])
        else:
            dst[...] = np.einsum("knijpqc,kpqc->nijc", view, w)
        del band, view


def forward(src, pads, geo, wmat_t, out, cap):
    """The depthwise forward pass: ``out`` (C-contiguous NHWC ``(N, Ho, Wo, C m)``)
    of the NHWC ``src`` (``C`` channels) zero-padded by ``pads``, for ``wmat_t``
    ``(C, kh * kw, m)`` (:func:`minidl.functional.im2col.correlate`'s weights with one
    input channel per group)."""
    groups, _, m = wmat_t.shape
    kh, kw = geo.kernel
    # (1, kh, kw, O): output channel c m + k last, as in the output
    w = np.ascontiguousarray(wmat_t.reshape(groups, kh, kw, m).transpose(1, 2, 0, 3)).reshape(1, kh, kw, -1)
    _correlate(src, pads, geo, w, out, cap, 1, m)


def input_grad(rows, weight, input_size, geo, cap):
    """dL/dX, NHWC ``(N, H, W, C)`` (the padding already cropped), of a depthwise
    convolution: ``weight`` ``(C m, 1, kh, kw)``, ``rows`` the upstream gradient
    ``(N * Ho * Wo, C m)``.

    Stride 1 with padding within the dilated kernel's reach: the full correlation
    of ``G`` (zero-padded by ``d (k - 1) - pad``) with the rotated kernel, the ``m``
    outputs of each channel summed in the same einsum. Otherwise, for every kernel
    offset, ``G * w`` scattered (added) onto the input pixels it came from.
    """
    n, c, h, w = input_size
    o, _, kh, kw = weight.shape
    m = o // c
    (pt, pb), (pl, pr) = geo.pads
    (sh, sw), (dh, dw), (ho, wo) = geo.stride, geo.dilation, geo.out
    g = rows.reshape(n, ho, wo, o)
    # (m, kh, kw, C): w[k, p, q, c] = weight[c m + k, 0, p, q]
    wk = np.ascontiguousarray(weight.reshape(c, m, kh, kw).transpose(1, 2, 3, 0))
    dx = np.empty((n, h, w, c), dtype=weight.dtype)
    if (sh, sw) == (1, 1) and max(pt, pb) <= dh * (kh - 1) and max(pl, pr) <= dw * (kw - 1):
        top, left = dh * (kh - 1) - pt, dw * (kw - 1) - pl
        gpads = ((top, h + dh * (kh - 1) - top - ho), (left, w + dw * (kw - 1) - left - wo))
        full = Geometry((kh, kw), (1, 1), (dh, dw), gpads, (h, w))
        _correlate(g, gpads, full, np.ascontiguousarray(wk[:, ::-1, ::-1]), dx, cap, m, 1)
        return dx
    dx[...] = 0
    _scatter(g, wk, dx, geo, cap)
    return dx


def _scatter(g, wk, dx, geo, cap):
    """``dx[n, s_h i + d_h p - pt, s_w j + d_w q - pl, c] += sum_k g[n, i, j, c m + k] wk[k, p, q, c]``
    for the targets inside ``dx``, piece by piece over ``g``'s pixels."""
    n, h, w, c = dx.shape
    m = wk.shape[0]
    (kh, kw), (sh, sw), (dh, dw), ((pt, _), (pl, _)) = geo.kernel, geo.stride, geo.dilation, geo.pads
    ho, wo = geo.out
    no_pads = ((0, 0), (0, 0))
    pixel_bytes = dx.itemsize * c * (m + 2)  # G's piece with m first, a product
    for n0, n1, i0, i1, j0, j1 in im2col.tiles(n, geo.out, pixel_bytes, cap):
        gk = _band(g, no_pads, n0, n1, (i0, i1), (j0, j1), m, 1)  # (m, n, ni, nj, C)
        for p in range(kh):
            ia, ib = _inside(i0, i1, sh, p * dh - pt, h)
            if ia >= ib:
                continue
            for q in range(kw):
                ja, jb = _inside(j0, j1, sw, q * dw - pl, w)
                if ja >= jb:
                    continue
                u, v = ia * sh + p * dh - pt, ja * sw + q * dw - pl
                target = dx[n0:n1, u : u + sh * (ib - ia - 1) + 1 : sh, v : v + sw * (jb - ja - 1) + 1 : sw]
                part = gk[:, :, ia - i0 : ib - i0, ja - j0 : jb - j0]
                if m == 1:
                    target += part[0] * wk[0, p, q]
                else:
                    target += np.einsum("knijc,kc->nijc", part, wk[:, p, q])
        del gk


def _inside(i0, i1, s, shift, size):
    """The output rows ``[ia, ib)`` within ``[i0, i1)`` whose ``s i + shift`` lies in ``[0, size)``."""
    ia = max(i0, -(shift // s) if shift < 0 else 0)  # ceil(-shift / s)
    ib = min(i1, (size - 1 - shift) // s + 1) if size - 1 - shift >= 0 else i0
    return ia, max(ia, ib)


def weight_grad(rows, x_nhwc, weight_size, geo, cap):
    """dL/dW ``(C m, 1, kh, kw)`` of a depthwise convolution, summed over the batch:
    per kernel offset, the dot product of the shifted (zero-padded) input, repeated
    ``m`` times along the channels, with ``G``, channel by channel."""
    n = x_nhwc.shape[0]
    o, _, kh, kw = weight_size
    m = o // x_nhwc.shape[3]
    (sh, sw), (dh, dw), (ho, wo) = geo.stride, geo.dilation, geo.out
    g = rows.reshape(n, ho, wo, o)
    acc = np.zeros((kh, kw, o), dtype=x_nhwc.dtype)
    pixel_bytes = x_nhwc.itemsize * o * (sh * sw + 2)
    for n0, n1, i0, i1, j0, j1 in im2col.tiles(n, geo.out, pixel_bytes, cap):
        ni, nj = i1 - i0, j1 - j0
        band = _band(x_nhwc, geo.pads, n0, n1, _span(i0, i1, sh, dh, kh), _span(j0, j1, sw, dw, kw),
                     1, m)
        gp = g[n0:n1, i0:i1, j0:j1]
        flat = (sw == 1 or wo == 1) and _is_flat_band(band, nj)
        view = _windows(band, geo, ni, nj, flat)[0]
        if flat:  # (n, ni, kh, kw, nj * O) against (n, ni, nj * O)
            acc += np.einsum("nipqb,nib->pqb", view, gp.reshape(n1 - n0, ni, -1, copy=False)).reshape(kh, kw, nj, o).sum(2)
        else:
            acc += np.einsum("nijpqc,nijc->pqc", view, gp)
        del band, view
    return np.ascontiguousarray(acc.transpose(2, 0, 1)).reshape(o, 1, kh, kw)
