"""LogSoftmax: the layer before NLLLoss (a module of its own next to ``activation.py``'s Softmax)."""

from __future__ import annotations

from .. import functional as F
from .activation import AlongAxis
from .registry import register_layer

__all__ = ["LogSoftmax"]


@register_layer
class LogSoftmax(AlongAxis):
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

    kernel, kernel_backward = staticmethod(F.log_softmax), staticmethod(F.log_softmax_backward)
