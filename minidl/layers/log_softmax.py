"""LogSoftmax: the layer before NLLLoss (a module of its own next to ``activation.py``'s Softmax)."""

from __future__ import annotations

from .. import functional as F
from ..validation import check_int
from .base import InputSpec, Layer, Unsupported
from .registry import register_layer

__all__ = ["LogSoftmax"]


@register_layer
class LogSoftmax(Layer):
    r"""Log of the softmax along ``axis``, as :class:`torch.nn.LogSoftmax` (``dim`` there).

    Followed by :class:`~minidl.losses.NLLLoss` it is :class:`~minidl.losses.SoftmaxCrossEntropy`
    (which fuses the two); its output is also what :class:`~minidl.losses.KLDivLoss` takes.

    Parameters
    ----------
    axis : int, default 1
        The class axis (1 for (N, C) or NCHW inputs, as :class:`Softmax`); may be negative.

    Shape
    -----
    Any shape with ``axis``; output the same shape and dtype.

    Notes
    -----
    Forward: ``o = (x - max) - log(sum(exp(x - max)))`` along ``axis``, finite for any finite input.
    Backward from the output (the only thing kept): ``dL/dx = g - exp(o) * sum(g, axis)``
    (:func:`minidl.functional.log_softmax_backward`).

    Examples
    --------
    >>> LogSoftmax(axis=1)(np.array([[0.0, 0.0]])).round(4)
    array([[-0.6931, -0.6931]])
    """

    onnx_op, onnx_attrs = "LogSoftmax", {"axis": "axis"}
    torch_modules, torch_args = ("LogSoftmax",), {"dim": "axis"}

    def __init__(self, axis=1):
        super().__init__()
        self.axis = check_int(axis, "axis", "LogSoftmax")

    @classmethod
    def from_torch(cls, module, t):
        if module.dim is None:
            raise Unsupported("with dim=None (set dim)")
        return cls(module.dim)

    input_spec = InputSpec()

    def forward(self, x):
        self.check_input(x)
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"{self}: axis {self.axis} is out of range for an input of shape {x.shape} "
                             f"({x.ndim} dimensions); use an axis in [{-x.ndim}, {x.ndim - 1}].")
        out = F.log_softmax(x, axis=self.axis)
        self.save_for_backward(out=out)
        return out

    def backward(self, grad_output, *, input_grad=True):
        out = self.saved_values.out
        grad_output = self.check_grad_output(grad_output, out.shape, out.dtype)
        return F.log_softmax_backward(grad_output, out, self.axis, where=self)

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.standard_normal((4, 6)),)
        yield cls(axis=-1), (rng.standard_normal((2, 3, 4, 5)),)
