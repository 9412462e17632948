"""Normalisation layers that need no batch: LayerNorm, GroupNorm and InstanceNorm2D.

Their statistics are per sample (over the trailing axes, a group of channels, or one
channel), so they behave the same for a batch of one and in both modes (InstanceNorm2D
aside, with ``track_running_stats``). The kernels are :mod:`minidl.functional.layernorm`
and :mod:`minidl.functional.groupnorm`; the backward is derived in docs/derivations/normalization.md.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..parameter import Parameter
from ..validation import check_bool, check_float_dtype, check_same_dtype, is_int, positive_int, positive_real
from ._init import float_dtype
from .base import InputSpec, Layer
from .batchnorm import _filled, check_momentum
from .registry import register_layer

__all__ = ["LayerNorm", "GroupNorm", "InstanceNorm2D"]


class _Norm(Layer):
    """Shared: the dtype read off the arrays, the input's dtype and channels checked against them."""

    @property
    def dtype(self):
        """The dtype of the layer's arrays (its first parameter, else its first float buffer), else float32."""
        arrays = [p.data for p in self.parameters()] or [b for b in self.buffers() if b.dtype.kind == "f"]
        return arrays[0].dtype if arrays else np.dtype(np.float32)

    def _hyper_parameters(self):  # the dtype by its name, as the layers without a dtype attribute show it
        return {**super()._hyper_parameters(), "dtype": self.dtype.name}

    def _arrays(self, dtype, affine, bias, shape):
        self.weight = Parameter(_filled(shape, 1, dtype)) if affine else None
        self.bias = Parameter(_filled(shape, 0, dtype)) if affine and bias else None

    def _check(self, x, channels=None):
        self.check_input(x)
        arrays = [p.data for p in self.parameters()] or [b for b in self.buffers() if b.dtype.kind == "f"]
        if arrays:
            check_same_dtype(x, arrays[0], "input", "weight" if self.parameters() else "running_mean", self)
        else:
            check_float_dtype(x, "input", self)
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"{self!r}: expected input with {channels} channels on axis 1, got shape {x.shape}. "
                             "Set the layer's channels to those of the layer before (its out_channels).")

    def _add_grads(self, grad_weight, grad_bias):
        if self.weight is not None:
            self.weight.grad += grad_weight
        if self.bias is not None:
            self.bias.grad += grad_bias

    def _weight(self):
        return None if self.weight is None else self.weight.data

    def _onnx_affine(self, g, shape):
        """Scale and bias initializers (ones and zeros where the layer has none), as ONNX needs both."""
        scale = self.weight.data if self.weight is not None else np.ones(shape, g.dtype)
        bias = self.bias.data if self.bias is not None else np.zeros(shape, g.dtype)
        return g.const("weight", scale), g.const("bias", bias)

    def _torch_bias(self):
        """torch's keyword-only ``bias``, passed only when False (older torch has no such argument)."""
        return {} if self.bias is not None or self.weight is None else {"bias": False}


@register_layer
class LayerNorm(_Norm):
    r"""Layer normalisation over the trailing ``normalized_shape`` axes, as :class:`torch.nn.LayerNorm`.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing dimensions of the input normalised over (e.g. the features, ``x.shape[-1]``).
    eps : float > 0, default 1e-5
        Added to the variance.
    elementwise_affine : bool, default True
        Learn ``weight`` (init 1) and ``bias`` (init 0), of shape ``normalized_shape``.
    bias : bool, default True
        With ``elementwise_affine``, learn the bias too (torch's ``bias``).
    dtype : floating dtype, default float32
        Of the weights.

    Attributes
    ----------
    weight, bias : Parameter of shape ``normalized_shape``, or None

    Shape
    -----
    Input ``(*, *normalized_shape)``; output of the same shape.

    Notes
    -----
    Per sample, over its ``M = prod(normalized_shape)`` values: ``x_hat = (x - mu) / sqrt(var + eps)``
    (biased variance), ``y = weight * x_hat + bias``; the same in training and eval mode. Backward:
    :func:`minidl.functional.layer_norm_backward`, derived in docs/derivations/normalization.md.

    Examples
    --------
    >>> ln = LayerNorm(4)
    >>> ln(np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)).round(3)
    array([[-1.342, -0.447,  0.447,  1.342]], dtype=float32)
    """

    torch_modules = ("LayerNorm",)
    input_spec = InputSpec(floating=False)  # the dtype is checked against the weight's

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__()
        where = "LayerNorm"
        shape = (normalized_shape,) if is_int(normalized_shape) else normalized_shape
        if not isinstance(shape, (tuple, list)) or not shape or not all(is_int(s) and s > 0 for s in shape):
            raise TypeError(f"{where}: normalized_shape must be a positive int or a non-empty tuple of positive "
                            f"ints (the input's trailing dimensions). Received: normalized_shape={normalized_shape!r}")
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = positive_real(eps, "eps", where)
        self.elementwise_affine = check_bool(elementwise_affine, "elementwise_affine", where)
        self._arrays(float_dtype(dtype, where), self.elementwise_affine, check_bool(bias, "bias", where),
                     self.normalized_shape)

    def forward(self, x):
        self._check(x)
        out, mean, inv_std = F.layer_norm(x, self.normalized_shape, self._weight(),
                                          None if self.bias is None else self.bias.data, self.eps,
                                          return_stats=True, where=self)
        self.save_for_backward(x=x, mean=mean, inv_std=inv_std)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.x.shape, s.x.dtype)
        grad_x, grad_w, grad_b = F.layer_norm_backward(grad_output, s.x, self.normalized_shape, s.mean, s.inv_std,
                                                       self._weight(), input_grad=input_grad, where=self)
        self._add_grads(grad_w, grad_b)
        return grad_x

    def to_onnx(self, g, inputs, input_shape):
        scale, bias = self._onnx_affine(g, self.normalized_shape)
        return g.node("LayerNormalization", [inputs[0], scale, bias], axis=-len(self.normalized_shape),
                      epsilon=float(self.eps))

    def to_torch(self, t):
        return t.nn.LayerNorm(self.normalized_shape, self.eps, self.elementwise_affine, dtype=t.dtype(self),
                              **self._torch_bias())

    @classmethod
    def from_torch(cls, m, t):
        return cls(tuple(m.normalized_shape), m.eps, m.elementwise_affine, m.bias is not None, dtype=t.np_dtype(m))

    @classmethod
    def examples(cls, rng):
        layer = cls(5, dtype=np.float64)
        layer.weight.data[...] = rng.standard_normal(5)
        layer.bias.data[...] = rng.standard_normal(5)
        yield layer, (3 * rng.standard_normal((3, 5)) + 1,)
        layer = cls((3, 4), eps=1e-3, bias=False, dtype=np.float64)
        layer.weight.data[...] = rng.standard_normal((3, 4))
        yield layer, (rng.standard_normal((2, 2, 3, 4)),)
        yield cls([4], elementwise_affine=False, dtype=np.float64), (rng.standard_normal((2, 3, 4)),)


@register_layer
class GroupNorm(_Norm):
    r"""Group normalisation, as :class:`torch.nn.GroupNorm`: each sample's channels in groups.

    Parameters
    ----------
    num_groups : int
        G, dividing ``num_channels``; each group holds ``C / G`` consecutive channels.
    num_channels : int
        C, the channels (axis 1 of the input).
    eps : float > 0, default 1e-5
        Added to the variance.
    affine : bool, default True
        Learn a per-channel ``weight`` (init 1) and ``bias`` (init 0).
    dtype : floating dtype, default float32
        Of the weights.
    bias : bool, default True
        With ``affine``, learn the bias too (torch's keyword-only ``bias``).

    Attributes
    ----------
    weight, bias : Parameter (C,) or None

    Shape
    -----
    Input ``(N, C, *)``; output of the same shape.

    Notes
    -----
    Per sample and group, over its ``M = (C / G) * prod(*)`` values: ``x_hat = (x - mu) / sqrt(var + eps)``,
    ``y = weight[c] * x_hat + bias[c]``; the same in training and eval mode. ``GroupNorm(1, C)`` is a
    LayerNorm over ``(C, *)`` with per-channel weights; ``GroupNorm(C, C)`` an instance norm. Backward:
    :func:`minidl.functional.group_norm_backward`.

    Examples
    --------
    >>> gn = GroupNorm(2, 4)
    >>> gn(np.arange(8, dtype=np.float32).reshape(1, 4, 2)).round(3)
    array([[[-1.342, -0.447],
            [ 0.447,  1.342],
            [-1.342, -0.447],
            [ 0.447,  1.342]]], dtype=float32)
    """

    torch_modules = ("GroupNorm",)
    input_spec = InputSpec(ndim=(2, 3, 4, 5), layout="(N, C, *) with 0 to 3 spatial axes", floating=False)

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32, *, bias=True):
        super().__init__()
        where = "GroupNorm"
        self.num_groups = positive_int(num_groups, "num_groups", where)
        self.num_channels = positive_int(num_channels, "num_channels", where)
        if self.num_channels % self.num_groups:
            raise ValueError(f"{where}: num_channels must be divisible by num_groups. Received: num_groups="
                             f"{num_groups}, num_channels={num_channels}. Pick a divisor of {num_channels}.")
        self.eps = positive_real(eps, "eps", where)
        self.affine = check_bool(affine, "affine", where)
        self._arrays(float_dtype(dtype, where), self.affine, check_bool(bias, "bias", where), (self.num_channels,))

    def forward(self, x):
        self._check(x, self.num_channels)
        out, mean, inv_std = F.group_norm(x, self.num_groups, self._weight(),
                                          None if self.bias is None else self.bias.data, self.eps,
                                          return_stats=True, where=self)
        self.save_for_backward(x=x, mean=mean, inv_std=inv_std)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.x.shape, s.x.dtype)
        grad_x, grad_w, grad_b = F.group_norm_backward(grad_output, s.x, s.mean, s.inv_std, self._weight(),
                                                       input_grad=input_grad, where=self)
        self._add_grads(grad_w, grad_b)
        return grad_x

    def to_onnx(self, g, inputs, input_shape):
        # opset 17 has no GroupNormalization: (N, G, M) rows, their mean and variance, then back
        x = inputs[0]
        rows = g.node("Reshape", [x, g.const("rows", [0, self.num_groups, -1], np.int64)])
        centred = g.node("Sub", [rows, g.node("ReduceMean", [rows], axes=[2], keepdims=1)])
        var = g.node("ReduceMean", [g.node("Mul", [centred, centred])], axes=[2], keepdims=1)
        std = g.node("Sqrt", [g.node("Add", [var, g.const("eps", self.eps)])])
        x_hat = g.node("Reshape", [g.node("Div", [centred, std]), g.node("Shape", [x])])
        per_channel = (self.num_channels,) + (1,) * (len(input_shape) - 2)
        scale, bias = (g.const(n, np.reshape(v, per_channel)) for n, v in
                       zip(("weight", "bias"), (self.weight.data if self.affine else np.ones(self.num_channels),
                                                self.bias.data if self.bias is not None else
                                                np.zeros(self.num_channels))))
        return g.node("Add", [g.node("Mul", [x_hat, scale]), bias])

    def to_torch(self, t):
        return t.nn.GroupNorm(self.num_groups, self.num_channels, self.eps, self.affine, dtype=t.dtype(self),
                              **self._torch_bias())

    @classmethod
    def from_torch(cls, m, t):
        return cls(m.num_groups, m.num_channels, m.eps, m.affine, dtype=t.np_dtype(m), bias=m.bias is not None)

    @classmethod
    def examples(cls, rng):
        layer = cls(2, 6, dtype=np.float64)
        layer.weight.data[...] = rng.standard_normal(6)
        layer.bias.data[...] = rng.standard_normal(6)
        yield layer, (2 * rng.standard_normal((2, 6, 3, 4)) - 1,)
        yield cls(1, 4, eps=1e-3, affine=False, dtype=np.float64), (rng.standard_normal((3, 4, 5)),)
        layer = cls(4, 4, bias=False, dtype=np.float64)
        layer.weight.data[...] = rng.standard_normal(4)
        yield layer, (rng.standard_normal((2, 4, 3, 3)),)


@register_layer
class InstanceNorm2D(_Norm):
    r"""Instance normalisation of images, as :class:`torch.nn.InstanceNorm2d`: each channel of each sample.

    Parameters
    ----------
    num_features : int
        C, the channels (axis 1 of the input).
    eps : float > 0, default 1e-5
        Added to the variance.
    momentum : float in [0, 1] or None, default 0.1
        The running statistics' update, ``running = (1 - momentum) * running + momentum * batch``
        (the batch's per-sample statistics averaged); None leaves them as they are, as torch.
    affine : bool, default False
        Learn a per-channel ``weight`` (init 1) and ``bias`` (init 0).
    track_running_stats : bool, default False
        Keep running statistics (buffers) and normalise with them in eval mode, as torch.
    dtype : floating dtype, default float32
    bias : bool, default True
        With ``affine``, learn the bias too (torch's keyword-only ``bias``).

    Attributes
    ----------
    weight, bias : Parameter (C,) or None
    running_mean, running_var : ndarray (C,) buffers (init 0 and 1), or None
    num_batches_tracked : 0-d int64 ndarray buffer, or None
        Kept for torch's state dict; torch's InstanceNorm2d never counts with it.

    Shape
    -----
    Input (N, C, H, W); output of the same shape.

    Notes
    -----
    Training mode, or without running statistics: per sample and channel, over its ``M = H * W``
    values, ``x_hat = (x - mu) / sqrt(var + eps)``, ``y = weight[c] * x_hat + bias[c]``, and the running
    statistics (if kept) take the batch's average of ``mu`` and of the unbiased variance. Eval mode
    with running statistics: they normalise (as BatchNorm2D's eval mode). Backward:
    :func:`minidl.functional.instance_norm_backward`.

    Examples
    --------
    >>> norm = InstanceNorm2D(3)
    >>> y = norm(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32))
    >>> y.shape, bool(abs(y.mean(axis=(2, 3))).max() < 1e-6), list(norm.state_dict())
    ((2, 3, 4, 4), True, [])
    """

    torch_modules = ("InstanceNorm2d",)
    input_spec = InputSpec(ndim=4, layout="(N, C, H, W)", floating=False)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 dtype=np.float32, *, bias=True):
        super().__init__()
        where = "InstanceNorm2D"
        self.num_features = positive_int(num_features, "num_features", where)
        self.eps = positive_real(eps, "eps", where)
        self.momentum = check_momentum(momentum, where)
        self.affine = check_bool(affine, "affine", where)
        self.track_running_stats = check_bool(track_running_stats, "track_running_stats", where)
        dtype, c, track = float_dtype(dtype, where), (self.num_features,), self.track_running_stats
        self._arrays(dtype, self.affine, check_bool(bias, "bias", where), c)
        self.register_buffer("running_mean", _filled(c, 0, dtype) if track else None)
        self.register_buffer("running_var", _filled(c, 1, dtype) if track else None)
        self.register_buffer("num_batches_tracked", _filled((), 0, np.int64) if track else None)

    def forward(self, x):
        self._check(x, self.num_features)
        use_input_stats = self.training or not self.track_running_stats
        out, mean, inv_std = F.instance_norm(
            x, self.running_mean, self.running_var, self._weight(), None if self.bias is None else self.bias.data,
            use_input_stats, self.momentum or 0.0, self.eps, return_stats=True, where=self)
        self.save_for_backward(x=x, mean=mean, inv_std=inv_std, use_input_stats=use_input_stats)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.x.shape, s.x.dtype)
        grad_x, grad_w, grad_b = F.instance_norm_backward(grad_output, s.x, s.mean, s.inv_std, self._weight(),
                                                          s.use_input_stats, input_grad=input_grad, where=self)
        self._add_grads(grad_w, grad_b)
        return grad_x

    def to_onnx(self, g, inputs, input_shape):
        scale, bias = self._onnx_affine(g, (self.num_features,))
        if not self.track_running_stats:
            return g.node("InstanceNormalization", [inputs[0], scale, bias], epsilon=float(self.eps))
        # eval mode normalises with the running statistics: BatchNormalization's eval form
        stats = [g.const("running_mean", self.running_mean), g.const("running_var", self.running_var)]
        return g.node("BatchNormalization", [inputs[0], scale, bias, *stats], epsilon=float(self.eps))

    def to_torch(self, t):
        return t.nn.InstanceNorm2d(self.num_features, self.eps, self.momentum, self.affine, self.track_running_stats,
                                   dtype=t.dtype(self), **self._torch_bias())

    @classmethod
    def from_torch(cls, m, t):
        return cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, dtype=t.np_dtype(m),
                   bias=m.bias is not None)

    @classmethod
    def examples(cls, rng):
        yield cls(3, dtype=np.float64), (2 * rng.standard_normal((2, 3, 4, 5)) + 1,)
        layer = cls(2, affine=True, dtype=np.float64)
        layer.weight.data[...] = rng.standard_normal(2)
        layer.bias.data[...] = rng.standard_normal(2)
        yield layer, (rng.standard_normal((3, 2, 3, 3)),)
        layer = cls(2, momentum=0.3, affine=True, track_running_stats=True, dtype=np.float64)
        layer.weight.data[...] = rng.standard_normal(2)
        layer.running_mean[...] = rng.standard_normal(2)
        layer.running_var[...] = rng.random(2) + 0.5
        yield layer, (rng.standard_normal((2, 2, 4, 3)),)
