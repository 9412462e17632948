"""Batch normalisation layers: BatchNorm1D and BatchNorm2D."""

from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from ..parameter import Parameter, deferring, placeholder
from ..validation import check_bool, check_same_dtype, positive_int, positive_real
from ._init import float_dtype
from .base import InputSpec, Layer, Unsupported, set_arrays
from .registry import register_layer

__all__ = ["BatchNorm1D", "BatchNorm2D"]


def _filled(shape, value, dtype):
    """``np.full``, or a placeholder under :func:`minidl.parameter.deferred_init`."""
    return placeholder(shape, dtype) if deferring() else np.full(shape, value, dtype=dtype)


def check_momentum(momentum, where):
    """``momentum`` as a float in [0, 1], or None; else the TypeError/ValueError naming ``where``."""
    if momentum is not None:
        if not isinstance(momentum, numbers.Real) or isinstance(momentum, (bool, np.bool_)):
            raise TypeError(f"{where}: momentum must be a real number or None. Received: momentum={momentum!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{where}: momentum must be in [0, 1] or None (cumulative average). "
                             f"Received: momentum={momentum!r}")
        momentum = float(momentum)
    return momentum


class _BatchNorm(Layer):
    """Shared by BatchNorm1D and BatchNorm2D (they differ in the input ranks they accept)."""

    _ranks: tuple = ()
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32):
        super().__init__()
        where = type(self).__name__
        self.num_features = positive_int(num_features, "num_features", where)
        self.eps = positive_real(eps, "eps", where)
        self.momentum = check_momentum(momentum, where)
        self.affine = check_bool(affine, "affine", where)
        self.track_running_stats = check_bool(track_running_stats, "track_running_stats", where)
        self.dtype = float_dtype(dtype, where)
        c = (self.num_features,)
        self.weight = Parameter(_filled(c, 1, self.dtype)) if self.affine else None
        self.bias = Parameter(_filled(c, 0, self.dtype)) if self.affine else None
        track = self.track_running_stats
        self.register_buffer("running_mean", _filled(c, 0, self.dtype) if track else None)
        self.register_buffer("running_var", _filled(c, 1, self.dtype) if track else None)
        self.register_buffer("num_batches_tracked", _filled((), 0, np.int64) if track else None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batch tracked (as torch)."""
        if self.track_running_stats:
            self.running_mean = np.zeros(self.num_features, self.running_mean.dtype)
            self.running_var = np.ones(self.num_features, self.running_var.dtype)
            self.num_batches_tracked = np.zeros((), np.int64)

    def _check_input(self, x):
        self.check_input(x)  # the class's input_spec; the dtype is the weight's, below
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{self!r}: expected input with {self.num_features} channels on axis 1, got shape "
                f"{x.shape}. Set num_features to the channels of the layer before (its out_channels)."
            )
        ref = self.weight.data if self.affine else self.running_mean
        if ref is not None:
            check_same_dtype(x, ref, "input", "weight" if self.affine else "running_mean", self)

    def forward(self, x):
        self._check_input(x)
        use_batch = self.training or self.running_mean is None
        update = self.training and self.track_running_stats
        factor = 0.0
        if update:
            count = int(self.num_batches_tracked) + 1
            factor = 1.0 / count if self.momentum is None else self.momentum
        out, mean, inv_std = F.batch_norm(
            x, self.running_mean if not use_batch or update else None,
            self.running_var if not use_batch or update else None,
            None if self.weight is None else self.weight.data, None if self.bias is None else self.bias.data,
            training=use_batch, momentum=factor, eps=self.eps, return_stats=True, where=self)
        if update:
            self.num_batches_tracked += 1
        self.save_for_backward(x=x, mean=mean, inv_std=inv_std, use_batch=use_batch)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.x.shape, s.x.dtype)
        grad_x, grad_w, grad_b = F.batch_norm_backward(
            grad_output, s.x, s.mean, s.inv_std, None if self.weight is None else self.weight.data,
            training=s.use_batch, input_grad=input_grad, where=self)
        if self.affine:
            self.weight.grad += grad_w
            self.bias.grad += grad_b
        return grad_x

    # ------------------------------------------------------------ interop recipes
    def to_onnx(self, g, inputs, input_shape):
        if self.running_mean is None:
            raise Unsupported("has track_running_stats=False: its eval form uses the batch's statistics, which "
                              "ONNX's BatchNormalization cannot. Train it with track_running_stats=True")
        c = self.num_features  # ONNX needs a scale and a bias: ones and zeros without affine
        scale = self.weight.data if self.affine else np.ones(c, self.dtype)
        bias = self.bias.data if self.affine else np.zeros(c, self.dtype)
        args = [inputs[0], g.const("weight", scale), g.const("bias", bias),
                g.const("running_mean", self.running_mean), g.const("running_var", self.running_var)]
        return g.node("BatchNormalization", args, epsilon=float(self.eps))

    def to_torch(self, t):
        return t.module(self.torch_modules[0])(self.num_features, self.eps, self.momentum, self.affine,
                                               self.track_running_stats, dtype=t.dtype(self))

    @classmethod
    def from_torch(cls, m, t):
        return cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, dtype=t.np_dtype(m))

    @classmethod
    def from_onnx_node(cls, node):
        """The BatchNorm (1D for (N, C) and (N, C, L) inputs, 2D for (N, C, H, W)) computing an ONNX
        ``BatchNormalization`` node in inference mode; ONNX's ``momentum`` m is torch's 1 - m.

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        BatchNorm1D or BatchNorm2D
            Scale and bias as trainable weight and bias, the mean and variance as running statistics.

        Raises
        ------
        Unsupported
            Statistics or affine parameters computed at run time, training mode (``training_mode=1``,
            or the running-statistics outputs declared), other ranks.
        """
        consts = (tuple(node.consts) + (None,) * 5)[1:5]
        if node.tensors != 1 or any(c is None for c in consts):
            raise Unsupported("with its scale, bias, mean or variance computed at run time (only constants)")
        if node.attrs.get("training_mode", 0) or node.outputs > 1:
            raise Unsupported("in training mode (training_mode=1, or the running statistics as outputs): it "
                              "normalises with the batch's statistics. Export the model in eval mode")
        rank = len(node.input_shape)
        kind = BatchNorm2D if rank == 4 else BatchNorm1D if rank in (2, 3) else None
        if kind is None:
            raise Unsupported(f"on an input of shape {node.input_shape} (only (N, C), (N, C, L), (N, C, H, W))")
        eps, momentum = (float(f"{v:.6g}") for v in (node.attrs["epsilon"], 1 - node.attrs["momentum"]))
        scale, bias, mean, var = consts
        layer = kind(scale.shape[0], eps=eps, momentum=momentum, dtype=scale.dtype)
        return set_arrays(layer, weight=scale, bias=bias, running_mean=mean, running_var=var)

    def extra_repr(self):
        s = (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
             f"track_running_stats={self.track_running_stats}")
        return s if self.dtype == np.float32 else s + f", dtype={self.dtype}"


_DOC = r"""Batch normalisation over {what}, as :class:`torch.nn.{torch}`.

    Parameters
    ----------
    num_features : int
        C, the channels (axis 1 of the input).
    eps : float > 0, default 1e-5
        Added to the variance.
    momentum : float in [0, 1] or None, default 0.1
        ``running = (1 - momentum) * running + momentum * batch``; None for a
        cumulative moving average (``momentum = 1 / num_batches_tracked``), as torch.
    affine : bool, default True
        Learn ``weight`` (gamma, init 1) and ``bias`` (beta, init 0).
    track_running_stats : bool, default True
        Keep running statistics (buffers) and use them in eval mode. Without,
        the batch's statistics are used in both modes and there are no buffers.
    dtype : floating dtype, default float32

    Attributes
    ----------
    weight, bias : Parameter (C,) or None
    running_mean, running_var : ndarray (C,) buffers (init 0 and 1), or None
    num_batches_tracked : 0-d int64 ndarray buffer, or None

    The buffers are in ``state_dict()`` under torch's names, saved and loaded,
    but are not parameters (see :meth:`Layer.register_buffer`).

    Shape
    -----
    {shape}

    Notes
    -----
    Training mode: per channel, over its M = {m} values, the batch mean ``mu``
    and biased variance ``var`` normalise ``x_hat = (x - mu) / sqrt(var + eps)``,
    ``y = gamma * x_hat + beta``; the running statistics take ``mu`` and the
    *unbiased* variance ``var * M / (M - 1)``, and ``num_batches_tracked``
    counts the batches. Eval mode: the running statistics normalise, and
    nothing is updated.

    Backward, hand-derived (see :func:`minidl.functional.batch_norm_backward`),
    in training: ``dx = (gamma * inv_std / M) * (M * dy - sum(dy) - x_hat * sum(dy * x_hat))``,
    ``dgamma = sum(dy * x_hat)``, ``dbeta = sum(dy)``. The statistics used in
    eval mode are constants, so there ``dx = gamma * inv_std * dy``; but an
    eval-mode forward keeps no cache (as every layer), so backward needs a
    training-mode forward; :func:`minidl.functional.batch_norm_backward` with
    ``training=False`` gives the eval-mode gradient.

    Examples
    --------
    >>> bn = {name}(3)
    >>> y = bn(np.random.default_rng(0).standard_normal({example}).astype(np.float32))
    >>> y.shape, [n for n, _ in bn.named_parameters()], list(bn.state_dict())[2:]
    ({example}, ['weight', 'bias'], ['running_mean', 'running_var', 'num_batches_tracked'])
    """


@register_layer
class BatchNorm1D(_BatchNorm):
    __doc__ = _DOC.format(what="features or sequences", torch="BatchNorm1d", name="BatchNorm1D",
                          shape="Input (N, C) or (N, C, L); output of the same shape.", m="N (or N * L)",
                          example="(4, 3)")
    input_spec = InputSpec(ndim=(2, 3), layout="(N, C) or (N, C, L)", floating=False)
    torch_modules = ("BatchNorm1d",)

    @classmethod
    def examples(cls, rng):
        yield cls(4, dtype=np.float64), (rng.standard_normal((6, 4)),)
        yield cls(3, eps=1e-3, momentum=0.3, dtype=np.float64), (rng.standard_normal((2, 3, 5)),)


@register_layer
class BatchNorm2D(_BatchNorm):
    __doc__ = _DOC.format(what="the channels of images", torch="BatchNorm2d", name="BatchNorm2D",
                          shape="Input (N, C, H, W); output of the same shape (and memory layout).",
                          m="N * H * W", example="(2, 3, 4, 4)")
    input_spec = InputSpec(ndim=(4,), layout="(N, C, H, W)", floating=False)
    torch_modules, onnx_imports = ("BatchNorm2d",), ("BatchNormalization",)

    @classmethod
    def examples(cls, rng):
        yield cls(3, dtype=np.float64), (rng.standard_normal((2, 3, 4, 5)),)
        yield cls(2, affine=False, momentum=None, dtype=np.float64), (rng.standard_normal((3, 2, 3, 3)),)
        yield cls(2, track_running_stats=False, dtype=np.float64), (rng.standard_normal((2, 2, 3, 4)),)
