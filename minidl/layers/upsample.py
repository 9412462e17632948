"""Upsample layer: resize NCHW images (nearest or bilinear), as torch.nn.Upsample."""

from __future__ import annotations

import numpy as np

from ..functional import upsample as U
from .base import InputSpec, Layer, Unsupported
from .registry import register_layer

__all__ = ["Upsample"]

MODES = ("nearest", "bilinear")


@register_layer
class Upsample(Layer):
    r"""Resize images by a factor or to a size, as :class:`torch.nn.Upsample` (4-D NCHW input).

    Parameters
    ----------
    size : int or (H_out, W_out), optional
        The output's height and width.
    scale_factor : float or (float, float), optional
        ``H_out = floor(H * scale_factor)``. Give exactly one of ``size`` and ``scale_factor``.
    mode : {'nearest', 'bilinear'}, default 'nearest'
        'nearest' is torch's (legacy) 'nearest': output row ``u`` copies input row
        ``floor(u * H / H_out)`` (``floor(u / scale_factor)`` when a factor is given).
    align_corners : bool, optional
        For 'bilinear' only (None means False, torch's default): align the corner pixels
        rather than the pixel centres.

    Raises
    ------
    ValueError
        Both or neither of size and scale_factor, an unknown mode, ``align_corners`` with
        'nearest', a size or factor that is not positive.
    TypeError
        ``align_corners`` not a bool or None.

    Shape
    -----
    - Input: (N, C, H, W), floating
    - Output: (N, C, H_out, W_out), the input's dtype

    Notes
    -----
    No parameters. Forward and backward: :func:`minidl.functional.upsample_nearest2d` /
    :func:`~minidl.functional.upsample_bilinear2d` and their ``_backward`` (the transpose of the
    interpolation: each output pixel's gradient is added onto the input pixels it was read from).
    Derivation: ``docs/derivations/upsample.md``.

    Examples
    --------
    >>> Upsample(scale_factor=2)(np.ones((1, 3, 4, 4), np.float32)).shape
    (1, 3, 8, 8)
    >>> Upsample(size=(5, 6), mode="bilinear", align_corners=True)
    Upsample(size=(5, 6), mode='bilinear', align_corners=True)
    """

    input_spec = InputSpec(ndim=4, layout="(N, C, H, W)")
    torch_modules = ("Upsample",)
    torch_args = {"size": "size", "scale_factor": "scale_factor", "mode": "mode", "align_corners": "align_corners"}

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__()
        where = "Upsample"
        if mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {MODES} (torch's 'nearest' and 'bilinear'). "
                             f"Received: mode={mode!r}")
        if align_corners is not None and not isinstance(align_corners, bool):
            raise TypeError(f"{where}: align_corners must be True, False or None. Received: {align_corners!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError(f"{where}: align_corners option can only be set with the interpolating mode "
                             "'bilinear' (as torch); leave it None for mode='nearest'.")
        U.check_resize_args(size, scale_factor, where)
        self.size = _as_given(size, int)
        self.scale_factor = _as_given(scale_factor, float)
        self.mode, self.align_corners = mode, align_corners

    def _resize(self, x):
        out = U.upsample_output_size(x.shape[2:], self.size, self.scale_factor, self)
        if self.mode == "nearest":
            return U.upsample_nearest2d(x, out, self.scale_factor, where=self)
        return U.upsample_bilinear2d(x, out, bool(self.align_corners), self.scale_factor, where=self)

    def forward(self, x):
        self.check_input(x)
        out = self._resize(x)
        self.save_for_backward(in_shape=x.shape, out_shape=out.shape, dtype=x.dtype)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.out_shape, s.dtype)
        if self.mode == "nearest":
            return U.upsample_nearest2d_backward(grad_output, s.in_shape, self.scale_factor, where=self)
        return U.upsample_bilinear2d_backward(grad_output, s.in_shape, bool(self.align_corners), self.scale_factor,
                                              where=self)

    # ------------------------------------------------------------ interop recipes
    def to_onnx(self, g, inputs, input_shape):
        if self.mode == "nearest":
            attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            attrs = dict(mode="linear", coordinate_transformation_mode="align_corners" if self.align_corners
                         else "half_pixel")
        if self.scale_factor is not None:  # ONNX's output size is floor(H * scale), its source u / scale: torch's
            factors = self.scale_factor if isinstance(self.scale_factor, tuple) else (self.scale_factor,) * 2
            scales = g.const("scales", [1.0, 1.0, *factors], np.float32)
            return g.node("Resize", [inputs[0], "", scales], **attrs)
        # the batch and channels from the input's shape, H_out and W_out from size
        size = self.size if isinstance(self.size, tuple) else (self.size,) * 2
        batch_channels = g.node("Slice", [g.node("Shape", inputs), *(g.const(k, [v], np.int64)
                                                                       for k, v in (("start", 0), ("end", 2)))])
        sizes = g.node("Concat", [batch_channels, g.const("size", list(size), np.int64)], axis=0)
        return g.node("Resize", [inputs[0], "", "", sizes], **attrs)

    @classmethod
    def from_torch(cls, m, t):
        """The Upsample equivalent to an ``nn.Upsample``.

        Parameters
        ----------
        m : torch.nn.Upsample
        t : module
            :mod:`minidl.interop._torch` (see :meth:`Layer.to_torch <minidl.layers.Layer.to_torch>`).

        Returns
        -------
        Upsample

        Raises
        ------
        Unsupported
            A mode other than 'nearest' and 'bilinear', or ``recompute_scale_factor=True``.
        """
        if m.mode not in MODES or m.recompute_scale_factor:
            raise Unsupported(f"with mode={m.mode!r}, recompute_scale_factor={m.recompute_scale_factor!r}: minidl's "
                              "Upsample has the modes 'nearest' and 'bilinear' and torch's default scale rule")
        return cls(m.size, m.scale_factor, m.mode, m.align_corners)

    onnx_imports = ("Resize",)

    @classmethod
    def from_onnx_node(cls, node):
        """The Upsample computing an ONNX ``Resize`` node as torch writes ``nn.Upsample``.

        Read: mode 'nearest' with coordinate_transformation_mode 'asymmetric' and nearest_mode
        'floor' (torch's 'nearest'); mode 'linear' with 'half_pixel' or 'align_corners' (torch's
        'bilinear'); constant scales (1 on N and C) or sizes (the input's N and C) of (N, C, H, W) data.

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        Upsample

        Raises
        ------
        Unsupported
            Another mode or coordinate rule, antialias, scales or sizes computed at run time or
            resizing N or C.

        Examples
        --------
        >>> from minidl.layers.base import OnnxNode
        >>> attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
        >>> scales = np.array([1, 1, 2, 2], np.float32)
        >>> Upsample.from_onnx_node(OnnxNode("Resize", attrs, (None, None, scales), 1, (1, 3, 4, 4), 1, 17))
        Upsample(scale_factor=2.0, mode='nearest')
        """
        a = node.attrs
        mode, rule = a.get("mode", "nearest"), a.get("coordinate_transformation_mode", "half_pixel")
        if mode == "nearest" and rule == "asymmetric" and a.get("nearest_mode") == "floor":
            kind, corners = "nearest", None
        elif mode == "linear" and rule in ("half_pixel", "align_corners"):
            kind, corners = "bilinear", rule == "align_corners"
        else:
            raise Unsupported(f"with mode={mode!r}, coordinate_transformation_mode={rule!r}, nearest_mode="
                              f"{a.get('nearest_mode')!r}: minidl's Upsample reads torch's 'nearest' (asymmetric, "
                              "floor) and 'bilinear' (linear, half_pixel or align_corners)")
        if a.get("antialias", 0) or a.get("exclude_outside", 0) or len(node.input_shape) != 4:
            raise Unsupported(f"with antialias or exclude_outside, or on an input of shape {node.input_shape} "
                              "(only (N, C, H, W))")
        scales, sizes = _onnx_resize_targets(node)
        if sizes is not None:
            return cls(size=tuple(int(v) for v in sizes[2:]), mode=kind, align_corners=corners)
        factors = tuple(float(v) for v in scales[2:])
        if corners and any((n * f) % 1 for n, f in zip(node.input_shape[2:], factors)):  # ONNX: (n - 1) / (n f - 1)
            raise Unsupported(f"with align_corners and scales {list(factors)} on H, W = {node.input_shape[2:]}: "
                              "ONNX aligns to the unrounded size H * scale, torch to the output's")
        return cls(scale_factor=factors[0] if factors[0] == factors[1] else factors, mode=kind, align_corners=corners)

    def extra_repr(self):
        s = f"size={self.size!r}" if self.size is not None else f"scale_factor={self.scale_factor!r}"
        s += f", mode={self.mode!r}"
        return s + (f", align_corners={self.align_corners}" if self.align_corners is not None else "")

    @classmethod
    def examples(cls, rng):
        grid = [dict(scale_factor=2), dict(scale_factor=(1.5, 0.6)), dict(size=(7, 9)),
                dict(scale_factor=2, mode="bilinear"), dict(scale_factor=(1.7, 2.5), mode="bilinear"),
                dict(size=(3, 10), mode="bilinear", align_corners=True), dict(size=8, mode="bilinear")]
        for cfg in grid:
            yield cls(**cfg), (rng.standard_normal((2, 3, 4, 5)),)


def _as_given(value, kind):
    """torch's storage of size/scale_factor: None, one number, or a tuple of two."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return tuple(kind(v) for v in value)
    return kind(value)


def _onnx_resize_targets(node):
    """``(scales, sizes)`` of a Resize node over all four axes, exactly one of them given (as constants)."""
    if node.tensors != 1:
        raise Unsupported("with its roi, scales or sizes computed at run time (only constants are read)")
    scales, sizes = (tuple(node.consts) + (None,) * 4)[2:4]
    scales = None if scales is None or scales.size == 0 else scales.reshape(-1)
    sizes = None if sizes is None or sizes.size == 0 else sizes.reshape(-1)
    axes = [int(v) % 4 for v in node.attrs.get("axes") or (0, 1, 2, 3)]
    if (scales is None) == (sizes is None) or sorted(axes) != axes or axes[-2:] != [2, 3]:
        raise Unsupported("without exactly one of scales and sizes, or with axes other than (N, C, H, W) or (H, W)")
    given = scales if sizes is None else sizes
    if len(given) != len(axes):
        raise Unsupported(f"with {len(given)} scales or sizes for {len(axes)} axes")
    keep = (1, 1) if scales is not None else tuple(node.input_shape[:2])
    full = [*keep, 0, 0]
    for axis, value in zip(axes, given):
        full[axis] = value
    if sizes is not None and node.attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise Unsupported(f"with keep_aspect_ratio_policy={node.attrs['keep_aspect_ratio_policy']!r}")
    if tuple(full[:2]) != keep or min(full[2:]) <= 0:
        raise Unsupported(f"resizing to {[v.item() if hasattr(v, 'item') else v for v in full]} "
                          f"({'scales' if sizes is None else 'sizes'}); minidl's Upsample resizes H and W only "
                          "(N and C kept)")
    values = np.array(full)
    return (values, None) if sizes is None else (None, values)
