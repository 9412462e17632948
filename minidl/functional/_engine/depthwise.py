"""Depthwise convolutions -- one input channel per group -- by direct per-offset
multiply-adds (internal).

With ``C`` input channels and ``m`` outputs per channel (``O = C m``, output
channel ``c m + k`` of input channel ``c``), every output is ``kh * kw``
multiply-adds: far too little work per channel for a GEMM (``C`` products of
``kh * kw`` columns). The kernels here work on whole channels-last rows instead:

* the input band a piece of the output reads is copied once, zero-padded,
  repeated ``m`` times along the channels (``O`` channels, in the output's order),
  so that output and input have the same channel axis, and with its columns split
  by phase modulo the horizontal stride;
* a row of ``W_out`` output pixels by ``O`` channels is then one contiguous run of
  ``W_out * O`` values, and so are the input values that kernel offset ``(p, q)``
  multiplies with it (shifted by whole pixels within one phase): the forward pass
  is one ``einsum`` over the kernel offsets (one per phase group of kernel columns)
  of such runs, against the weights tiled along the row -- long, contiguous inner
  loops, no length-``m`` or length-``C`` axis inside;
* dL/dW is, per offset, a dot product of those runs with ``G``'s, per channel (one
  einsum per piece and phase group);
* dL/dX is the full correlation of ``G`` with the rotated kernel at stride 1 (the
  ``m`` outputs of a channel summed in the same einsum: ``G`` copied with its ``m``
  axis first), otherwise a scatter-add of each offset's ``G * w`` onto the input
  pixels it touched, in runs (into input rows split by column phase, folded back
  once per piece), restricted to the unpadded input: no padded gradient, no crop.

Everything is done piece by piece over the output pixels
(:func:`minidl.functional._engine.tiling.tiles`), each piece's band and temporaries
under the column budget ``cap``; the kernels keep no state between calls (they run
on several threads at once under :func:`minidl.functional._engine.blas.map_batch`).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .tiling import Geometry, tiles

__all__: list[str] = []

#: The most outputs per channel for which the direct kernels are used, at stride 1 and
#: otherwise. Their work grows with the output (``m`` times the input), the GEMM paths'
#: (unfold the input once, a GEMM per channel) mostly with the input: measured on one
#: thread, x (64, 32, 16, 16) 3x3, forward / dW / dX in ms, direct against GEMM paths:
#: stride 1, m = 8: 6.9 / 6.7 / 7.1 against 8.9 / 9.1 / 6.4; m = 16: 14.5 / 15.2 / 16.3
#: against 11.6 / 12.2 / 9.1. Stride 2, m = 4: 1.5 / 1.8 / 1.4 against 2.2 / 1.9 / 1.4;
#: m = 8: 3.3 / 3.8 / 2.3 against 2.4 / 2.3 / 1.8.
MAX_MULTIPLIER = {"stride 1": 8, "strided": 4}


def direct(m, stride):
    """Whether a depthwise convolution with ``m`` outputs per channel and ``stride``
    (a pair) runs on these kernels (:data:`MAX_MULTIPLIER`)."""
    return m <= MAX_MULTIPLIER["stride 1" if tuple(stride) == (1, 1) else "strided"]


def _band(src, pads, n0, n1, rows, cols, r_in, r_out, phases):
    """Zero-padded copy of samples ``n0:n1`` of the NHWC ``src`` (any strides) at
    padded rows ``rows = (r0, r1)`` and columns ``cols = (c0, c1)``, channels and
    columns rearranged: ``(r_in, n, r1 - r0, phases, ceil((c1 - c0) / phases), Ch)``.

    Column ``c0 + u`` is stored at ``[..., u % phases, u // phases, :]``: with
    ``phases`` = the horizontal stride, every kernel offset reads runs of
    consecutive entries. ``r_out > 1`` repeats each channel ``r_out`` times
    (``[..., c r_out + k] = src[..., c]``); ``r_in > 1`` moves the channel's position
    within its run of ``r_in`` first (``[k, ..., c] = src[..., c r_in + k]``);
    ``Ch = S r_out / r_in`` for ``S`` channels in ``src``. A piece that reads no
    padding and needs no rearranging is ``src`` itself (a view) when its rows are
    channels-last runs.
    """
    (pt, _), (pl, _) = pads
    _, h, w, s = src.shape
    (r0, r1), (c0, c1) = rows, cols
    a, b = max(r0, pt), min(r1, pt + h)  # the padded rows and columns holding data
    ca, cb = max(c0, pl), min(c1, pl + w)
    if (r_in == r_out == phases == 1 and (a, b, ca, cb) == (r0, r1, c0, c1)
            and src.strides[3] == src.itemsize and src.strides[2] == s * src.itemsize):
        return src[None, n0:n1, a - pt : b - pt, None, ca - pl : cb - pl]
    c = s // r_in
    out = np.empty((r_in, n1 - n0, r1 - r0, phases, -(-(c1 - c0) // phases), c * r_out), dtype=src.dtype)
    if a >= b or ca >= cb:
        out[...] = 0
        return out
    out[:, :, : a - r0] = 0
    out[:, :, b - r0 :] = 0
    part = src[n0:n1, a - pt : b - pt, ca - pl : cb - pl]
    for ph in range(phases):
        first = ca - c0 + (ph - (ca - c0)) % phases  # the first data column of this phase
        lo, count = first // phases, max(0, -(-(cb - c0 - first) // phases))
        row = out[:, :, a - r0 : b - r0, ph]
        row[:, :, :, :lo] = 0
        row[:, :, :, lo + count :] = 0
        if count:
            _rearrange(part[:, :, first - (ca - c0) :: phases], row[:, :, :, lo : lo + count], r_in, r_out)
    return out


def _rearrange(part, inner, r_in, r_out):
    """``inner[k, ..., c r_out + l] = part[..., c r_in + k]``: one plain 4-D copy per ``k``
    or ``l`` (numpy is several times slower with a length-``m`` innermost axis, as in a
    single broadcasting or transposing copy)."""
    c = part.shape[3] // r_in
    if r_out > 1:
        spread = inner.reshape(inner.shape[:4] + (c, r_out), copy=False)[0]
        for k in range(r_out):
            spread[..., k] = part
    else:
        gather = part.reshape(part.shape[:3] + (c, r_in))
        for k in range(r_in):
            inner[k] = gather[..., k]


def _span(i0, i1, s, d, k):
    """Padded rows ``[i0 s, (i1 - 1) s + d (k - 1) + 1)`` that output rows ``i0:i1`` read."""
    return i0 * s, (i1 - 1) * s + d * (k - 1) + 1


def _column_groups(kw, sw, dw):
    """The kernel columns by the phase they read (:func:`_band`): ``(phase, qs, start, step)``,
    ``qs`` a slice of ``range(kw)``, read from entry ``start + step * t + j`` of the phase."""
    groups = []
    for ph in range(sw):
        qs = [q for q in range(kw) if q * dw % sw == ph]
        if qs:
            every = qs[1] - qs[0] if len(qs) > 1 else 1  # the qs are every sw / gcd(sw, dw)-th column
            groups.append((ph, slice(qs[0], qs[-1] + 1, every), qs[0] * dw // sw, every * dw // sw))
    return groups


def _windows(band, geo, ni, nj, group):
    """Read-only view ``(r_in, n, ni, kh, len(qs), nj * Ch)`` of the shifted rows of an
    ``(ni, nj)``-pixel piece in the band of :func:`_band`, for the kernel columns ``qs``
    of one ``group`` of :func:`_column_groups`: every row of ``nj`` pixels, one run."""
    r_in, n, _, _, _, ch = band.shape
    (kh, kw), sh, dh = geo.kernel, geo.stride[0], geo.dilation[0]
    ph, qs, start, step = group
    base = band[:, :, :, ph, start:]
    s_k, s_n, s_r, s_c, s_e = base.strides
    shape = (r_in, n, ni, kh, len(range(kw)[qs]), nj * ch)
    strides = (s_k, s_n, s_r * sh, s_r * dh, s_c * step, s_e)
    # an axis of length 1 never steps (its stride, possibly huge, is irrelevant)
    strides = tuple(st if size > 1 else 0 for st, size in zip(strides, shape))
    return as_strided(base, shape=shape, strides=strides, writeable=False)


def _correlate(src, pads, geo, w, out, cap, r_in, r_out):
    """``out[n, i, j, e] = sum_{k, p, q} band_k[n, s_h i + d_h p, s_w j + d_w q, e] w[k, p, q, e]``
    piece by piece, with the bands of :func:`_band` (``e`` over ``Ch`` channels): one
    einsum per phase of the columns (one for a horizontal stride of 1)."""
    n = src.shape[0]
    ch = out.shape[3]
    (kh, kw), (sh, sw), (dh, dw), (_, wo) = geo.kernel, geo.stride, geo.dilation, geo.out
    # the weights tiled along a row, for runs of W_out * Ch values, by column group
    wt = np.tile(w[:, :, :, None, :], (1, 1, 1, wo, 1)).reshape(r_in, kh, kw, -1)
    groups = [(group, np.ascontiguousarray(wt[:, :, group[1]])) for group in _column_groups(kw, sw, dw)]
    pixel_bytes = out.itemsize * ch * (r_in * sh * sw + 2)  # the band, the einsum's result
    for n0, n1, i0, i1, j0, j1 in tiles(n, geo.out, pixel_bytes, cap):
        ni, nj = i1 - i0, j1 - j0
        band = _band(src, pads, n0, n1, _span(i0, i1, sh, dh, kh), _span(j0, j1, sw, dw, kw),
                     r_in, r_out, sw)
        dst = out[n0:n1, i0:i1, j0:j1]
        rows = dst.reshape(dst.shape[:2] + (-1,), copy=False)  # (n, ni, nj * Ch)
        for t, (group, wg) in enumerate(groups):
            view = _windows(band, geo, ni, nj, group)
            wk = wg[..., : nj * ch]
            if r_in == 1:  # (einsum is much slower with a length-1 axis)
                res = np.einsum("nipqb,pqb->nib", view[0], wk[0], out=rows if t == 0 else None)
            else:
                res = np.einsum("knipqb,kpqb->nib", view, wk, out=rows if t == 0 else None)
            if t:
                rows += res
            del view, res
        del band


def forward(src, pads, geo, wmat_t, out, cap):
    """The depthwise forward pass: ``out`` (C-contiguous NHWC ``(N, Ho, Wo, C m)``)
    of the NHWC ``src`` (``C`` channels) zero-padded by ``pads``, for ``wmat_t``
    ``(C, kh * kw, m)`` (:func:`minidl.functional._engine.im2col.correlate`'s weights with one
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
    else:
        _scatter(g, wk, dx, geo, cap)  # (zeroes what it does not write)
    return dx


def _scatter(g, wk, dx, geo, cap):
    """``dx[n, s_h i + d_h p - pt, s_w j + d_w q - pl, c] += sum_k g[n, i, j, c m + k] wk[k, p, q, c]``
    for the targets inside ``dx`` (allocated, not zeroed), piece by piece over ``g``'s pixels.

    Every offset adds runs of a row's pixels: into ``dx`` itself for a horizontal
    stride of 1; otherwise into the piece's input rows with their columns split by
    phase (as :func:`_band`), added to ``dx`` once per piece and phase.
    """
    n, h, w, c = dx.shape
    m = wk.shape[0]
    (kh, kw), (sh, sw), (dh, dw), ((pt, _), (pl, _)) = geo.kernel, geo.stride, geo.dilation, geo.pads
    ho, wo = geo.out
    # (m, kh, kw, W_out * C)
    wt = np.tile(wk[..., None, :], (1, 1, 1, wo, 1)).reshape(m, kh, kw, -1)  # tiled along a row
    zeroed = False
    pixel_bytes = dx.itemsize * c * (m + 2 + sh * sw)  # G's piece with m first, a product, the target rows
    for n0, n1, i0, i1, j0, j1 in tiles(n, geo.out, pixel_bytes, cap):
        # whole samples at stride > 1 are assigned (and the rest of them zeroed) as
        # they are folded; otherwise the pieces add onto a zeroed dx
        if (sw == 1 or (i0, i1, j0, j1) != (0, ho, 0, wo)) and not zeroed:
            dx[...] = 0
            zeroed = True
        # the input rows and columns the piece reaches
        u0, u1 = max(0, i0 * sh - pt), min(h, (i1 - 1) * sh + (kh - 1) * dh - pt + 1)
        v0, v1 = max(0, j0 * sw - pl), min(w, (j1 - 1) * sw + (kw - 1) * dw - pl + 1)
        if u0 >= u1 or v0 >= v1:  # none (the padding exceeds the input)
            if not zeroed:
                dx[n0:n1] = 0
            continue
        _scatter_piece(g, wt, dx, geo, (n0, n1, i0, i1, j0, j1), (u0, v0, u1, v1), not zeroed)


def _scatter_piece(g, wt, dx, geo, piece, reach, assign):
    """One piece of :func:`_scatter` (its temporaries die with the call): output pixels
    ``piece = (n0, n1, i0, i1, j0, j1)`` onto input rows ``u0:u1`` and columns ``v0:v1``
    (``reach``), assigned when ``assign`` (whole samples, stride > 1), else added."""
    n0, n1, i0, i1, j0, j1 = piece
    u0, v0, u1, v1 = reach
    h, w, c = dx.shape[1:]
    m = wt.shape[0]
    (kh, kw), (sh, sw), (dh, dw), ((pt, _), (pl, _)) = geo.kernel, geo.stride, geo.dilation, geo.pads
    gk = _band(g, ((0, 0), (0, 0)), n0, n1, (i0, i1), (j0, j1), m, 1, 1)[:, :, :, 0]  # (m, n, ni, nj, C)
    if sw == 1:
        acc = dx[n0:n1, u0:u1, None, v0:v1]
    else:
        acc = np.zeros((n1 - n0, u1 - u0, sw, -(-(v1 - v0) // sw), c), dtype=dx.dtype)
    for p in range(kh):
        ia, ib = _inside(i0, i1, sh, p * dh - pt, h)
        for q in range(kw):
            ja, jb = _inside(j0, j1, sw, q * dw - pl, w)
            if ia >= ib or ja >= jb:
                continue
            u, v = ia * sh + p * dh - pt - u0, ja * sw + q * dw - pl - v0
            target = acc[:, u : u + sh * (ib - ia - 1) + 1 : sh, v % sw, v // sw : v // sw + jb - ja]
            runs = target.reshape(target.shape[:2] + (-1,), copy=False)
            part = gk[:, :, ia - i0 : ib - i0, ja - j0 : jb - j0]
            part = part.reshape(part.shape[:3] + (-1,), copy=False)
            wq = wt[:, p, q, : (jb - ja) * c]
            if m == 1:
                runs += part[0] * wq[0]
            else:
                runs += np.einsum("knab,kb->nab", part, wq)
    if sw > 1:  # fold the phases back
        for ph in range(sw):
            dst = dx[n0:n1, u0:u1, v0 + ph : v1 : sw]
            if assign:
                dst[...] = acc[:, :, ph, : dst.shape[2]]
            else:
                dst += acc[:, :, ph, : dst.shape[2]]
        if assign:  # the input rows and columns no output reached
            for block in (dx[n0:n1, :u0], dx[n0:n1, u1:], dx[n0:n1, u0:u1, :v0], dx[n0:n1, u0:u1, v1:]):
                block[...] = 0


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
    groups = _column_groups(kw, sw, dw)
    pixel_bytes = x_nhwc.itemsize * o * (sh * sw + 2)
    for n0, n1, i0, i1, j0, j1 in tiles(n, geo.out, pixel_bytes, cap):
        ni, nj = i1 - i0, j1 - j0
        band = _band(x_nhwc, geo.pads, n0, n1, _span(i0, i1, sh, dh, kh), _span(j0, j1, sw, dw, kw),
                     1, m, sw)
        gp = g[n0:n1, i0:i1, j0:j1].reshape(n1 - n0, ni, -1, copy=False)  # (n, ni, nj * O)
        for group in groups:  # (n, ni, kh, len(qs), nj * O) against (n, ni, nj * O)
            view = _windows(band, geo, ni, nj, group)[0]
            part = np.einsum("nipqb,nib->pqb", view, gp)
            acc[:, group[1]] += part.reshape(kh, -1, nj, o).sum(2)
            del view
        del band
    return np.ascontiguousarray(acc.transpose(2, 0, 1)).reshape(o, 1, kh, kw)

