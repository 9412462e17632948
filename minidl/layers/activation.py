"""Activation layers."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional.activation import check_negative_slope
from ..functional.gelu import check_approximate
from ..testing import away_from_zero
from ..validation import check_int
from .base import InputSpec, Layer, Unsupported, constructor_args
from .registry import register_layer

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Identity", "Softmax"]


@register_layer
class ReLU(Layer):
    r"""``max(x, 0)`` element-wise, any shape, dtype kept.

    Notes
    -----
    dL/dx is ``grad_output`` where ``x > 0`` (or ``x`` is nan) and 0 where ``x <= 0``, even
    for a nan/inf ``grad_output`` there; at exactly 0 it is 0 (PyTorch's rules).

    Shape
    -----
    - Input: any shape, floating dtype
    - Output: the input's shape and dtype

    Examples
    --------
    >>> ReLU()(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    onnx_op, torch_modules = "Relu", ("ReLU",)
    input_spec = InputSpec()

    def forward(self, x):
        self.check_input(x)
        self.save_for_backward(x=x)
        return F.relu(x)

    def backward(self, grad_output, *, input_grad=True):
        x = self.saved_values.x
        return F.relu_backward(self.check_grad_output(grad_output, x.shape, x.dtype), x)

    def kinks(self, x, tol=1e-4):
        return (np.abs(x) <= tol,)

    @classmethod
    def examples(cls, rng):
        yield cls(), (away_from_zero((2, 3, 4, 4), rng),)


class _Elementwise(Layer):
    """An element-wise activation: checks the input, calls a kernel that names the layer.

    A subclass sets ``_kernel(x, *hyper, where=)`` and ``_kernel_backward(grad_output, saved,
    *hyper, where=)`` (:mod:`minidl.functional`'s; ``hyper`` are its constructor's arguments, in
    order) and ``_saves_output`` (backward from the output, else the input).
    """

    _saves_output = False
    input_spec = InputSpec()

    def forward(self, x):
        self.check_input(x)
        out = self._kernel(x, *self._kernel_args(), where=self)
        self.save_for_backward(kernel_arg=out if self._saves_output else x)
        return out

    def _kernel_args(self):  # the constructor's arguments, in order, as they are now
        return [getattr(self, name) for name, _ in constructor_args(type(self).__init__)]

    def backward(self, grad_output, *, input_grad=True):
        arg = self.saved_values.kernel_arg  # the output or the input, what _kernel_backward takes
        grad_output = self.check_grad_output(grad_output, arg.shape, arg.dtype)
        return self._kernel_backward(grad_output, arg, *self._kernel_args(),
                                     where=self)


@register_layer
class LeakyReLU(_Elementwise):
    r"""``x`` where ``x > 0``, else ``negative_slope * x``, as :class:`torch.nn.LeakyReLU`.

    Parameters
    ----------
    negative_slope : float, default 0.01

    Shape
    -----
    Any shape; output the same shape and dtype.

    Notes
    -----
    dL/dx is ``grad_output`` where ``x > 0`` and ``negative_slope * grad_output``
    elsewhere (at ``x == 0`` too, as in PyTorch).

    Examples
    --------
    >>> LeakyReLU(0.1)(np.array([-1.0, 2.0]))
    array([-0.1,  2. ])
    """

    onnx_op, onnx_attrs = "LeakyRelu", {"alpha": "negative_slope"}
    torch_modules, torch_args = ("LeakyReLU",), {"negative_slope": "negative_slope"}
    _kernel, _kernel_backward = staticmethod(F.leaky_relu), staticmethod(F.leaky_relu_backward)

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = check_negative_slope(negative_slope, "LeakyReLU")

    def kinks(self, x, tol=1e-4):
        return (np.abs(x) <= tol,)

    @classmethod
    def examples(cls, rng):
        for slope in (0.01, 0.2):
            yield cls(slope), (away_from_zero((2, 3, 4, 4), rng),)


@register_layer
class Sigmoid(_Elementwise):
    r"""``1 / (1 + exp(-x))`` element-wise, as :class:`torch.nn.Sigmoid`; never overflows.

    Shape
    -----
    Any shape; output the same shape and dtype.

    Notes
    -----
    Backward from the output ``s`` (the only thing kept): ``dL/dx = g * s * (1 - s)``.

    Examples
    --------
    >>> Sigmoid()(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """

    _saves_output = True
    _kernel, _kernel_backward = staticmethod(F.sigmoid), staticmethod(F.sigmoid_backward)
    onnx_op, torch_modules = "Sigmoid", ("Sigmoid",)

    @classmethod
    def examples(cls, rng):
        yield cls(), (2 * rng.standard_normal((2, 3, 4)),)


@register_layer
class Tanh(_Elementwise):
    r"""``tanh(x)`` element-wise, as :class:`torch.nn.Tanh`.

    Shape
    -----
    Any shape; output the same shape and dtype.

    Notes
    -----
    Backward from the output ``t`` (the only thing kept): ``dL/dx = g * (1 - t**2)``.

    Examples
    --------
    >>> Tanh()(np.array([0.0]))
    array([0.])
    """

    _saves_output = True
    _kernel, _kernel_backward = staticmethod(F.tanh), staticmethod(F.tanh_backward)
    onnx_op, torch_modules = "Tanh", ("Tanh",)

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.standard_normal((4, 6)),)


@register_layer
class GELU(_Elementwise):
    r"""Gaussian error linear unit ``x * Phi(x)``, as :class:`torch.nn.GELU`.

    Parameters
    ----------
    approximate : {'none', 'tanh'}, default 'none'
        'none' is the exact erf form; 'tanh' PyTorch's tanh approximation.

    Shape
    -----
    Any shape; output the same shape and dtype.

    Notes
    -----
    Forward and the hand-derived backward are in :func:`minidl.functional.gelu`
    and :func:`minidl.functional.gelu_backward` (``Phi(x) + x * phi(x)`` for 'none').

    Examples
    --------
    >>> GELU()(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.1587,  0.    ,  0.8413])
    """

    _kernel, _kernel_backward = staticmethod(F.gelu), staticmethod(F.gelu_backward)
    torch_modules, torch_args = ("GELU",), {"approximate": "approximate"}
    onnx_imports, onnx_attrs = ("Gelu",), {"approximate": "approximate"}  # ONNX's Gelu (opset 20) is read back
    # torch's exports before opset 20: 0.5 * (x * (1 + Erf(x / sqrt(2)))), and the tanh form
    onnx_patterns = (
        ({}, (("Div", "x", float(np.sqrt(2.0))), ("Erf", 0), ("Add", 1, 1.0), ("Mul", "x", 2), ("Mul", 3, 0.5))),
        ({"approximate": "tanh"}, (("Mul", "x", "x"), ("Mul", "x", 0), ("Mul", 1, 0.044715), ("Add", "x", 2),
                                   ("Mul", 3, float(np.sqrt(2 / np.pi))), ("Tanh", 4), ("Add", 5, 1.0),
                                   ("Mul", "x", 6), ("Mul", 7, 0.5))),
    )

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = check_approximate(approximate, "GELU")

    def to_onnx(self, g, inputs, input_shape):
        (x,) = inputs  # opset 17 has no Gelu: build it from Erf (or Tanh), Mul and Add
        if self.approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            cube = g.node("Mul", [g.node("Mul", [x, x]), x])
            inner = g.node("Add", [x, g.node("Mul", [cube, g.const("c", 0.044715)])])
            t = g.node("Tanh", [g.node("Mul", [inner, g.const("k", np.sqrt(2 / np.pi))])])
        else:  # 0.5 x (1 + erf(x / sqrt(2)))
            t = g.node("Erf", [g.node("Div", [x, g.const("sqrt2", np.sqrt(2.0))])])
        one = g.node("Add", [t, g.const("one", 1.0)])
        return g.node("Mul", [g.node("Mul", [x, g.const("half", 0.5)]), one])

    @classmethod
    def examples(cls, rng):
        for approximate in ("none", "tanh"):
            yield cls(approximate=approximate), (2 * rng.standard_normal((2, 3, 4, 4)),)


@register_layer
class SiLU(_Elementwise):
    r"""Sigmoid linear unit (swish) ``x * sigmoid(x)``, as :class:`torch.nn.SiLU`.

    Shape
    -----
    Any shape; output the same shape and dtype.

    Notes
    -----
    Backward from the input ``x`` (the only thing kept), by the product rule:
    ``dL/dx = g * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)``; see
    :func:`minidl.functional.silu_backward` and docs/derivations/silu.md.

    Examples
    --------
    >>> SiLU()(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.2689,  0.    ,  0.7311])
    """

    _kernel, _kernel_backward = staticmethod(F.silu), staticmethod(F.silu_backward)
    torch_modules = ("SiLU",)
    onnx_patterns = (({}, (("Sigmoid", "x"), ("Mul", "x", 0))),)  # torch's export: x * Sigmoid(x)

    def to_onnx(self, g, inputs, input_shape):  # opset 17 has no SiLU: x * Sigmoid(x)
        return g.node("Mul", [inputs[0], g.node("Sigmoid", inputs)])

    @classmethod
    def examples(cls, rng):
        yield cls(), (3 * rng.standard_normal((2, 3, 4, 4)),)


@register_layer
class Identity(Layer):
    r"""Returns its input unchanged (the same array), as :class:`torch.nn.Identity`.

    Shape
    -----
    Any shape.

    Notes
    -----
    Backward returns the (checked) upstream gradient itself.

    Examples
    --------
    >>> x = np.ones(3)
    >>> Identity()(x) is x
    True
    """

    onnx_op, torch_modules = "Identity", ("Identity",)
    input_spec = InputSpec(floating=False)

    def forward(self, x):
        self.check_input(x)
        self.save_for_backward(shape=x.shape, dtype=x.dtype)
        return x

    def backward(self, grad_output, *, input_grad=True):
        saved = self.saved_values
        return self.check_grad_output(grad_output, saved.shape, saved.dtype)

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.standard_normal((2, 3, 4)),)


class AlongAxis(Layer):
    """What Softmax and LogSoftmax share: an ``axis``, and a kernel pair whose backward needs only the output."""

    kernel = kernel_backward = None  # set by each subclass: (x, axis) -> out; (grad, out, axis, where=) -> dx
    input_spec = InputSpec()

    def __init__(self, axis=1):
        super().__init__()
        self.axis = check_int(axis, "axis", type(self).__name__)

    @classmethod
    def from_torch(cls, module, t):
        if module.dim is None:
            raise Unsupported("with dim=None (set dim)")
        return cls(module.dim)

    def forward(self, x):
        self.check_input(x)
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"{self}: axis {self.axis} is out of range for an input of shape {x.shape} "
                             f"({x.ndim} dimensions); use an axis in [{-x.ndim}, {x.ndim - 1}].")
        out = self.kernel(x, axis=self.axis)
        self.save_for_backward(out=out)
        return out

    def backward(self, grad_output, *, input_grad=True):
        out = self.saved_values.out
        grad_output = self.check_grad_output(grad_output, out.shape, out.dtype)
        return self.kernel_backward(grad_output, out, self.axis, where=self)

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.standard_normal((4, 6)),)
        yield cls(axis=-1), (rng.standard_normal((2, 3, 4, 5)),)


@register_layer
class Softmax(AlongAxis):
    r"""Softmax along ``axis``, as :class:`torch.nn.Softmax` (``dim`` there), for inference.

    Train with logits and :class:`~minidl.losses.SoftmaxCrossEntropy` (more stable);
    this layer turns logits into probabilities, e.g. at the end of a model for prediction.
    Its backward is exact all the same.

    Parameters
    ----------
    axis : int, default 1
        The class axis (1 for (N, C) or NCHW inputs); may be negative.

    Shape
    -----
    Any shape with ``axis``; output the same shape and dtype.

    Notes
    -----
    Forward: ``s = exp(x - max) / sum(exp(x - max))`` along ``axis``.
    Backward from the output ``s`` (the only thing kept): ``dL/dx = s * (g - sum(g * s, axis))``.

    Examples
    --------
    >>> Softmax(axis=1)(np.array([[0.0, 0.0]]))
    array([[0.5, 0.5]])
    """

    onnx_op, onnx_attrs = "Softmax", {"axis": "axis"}
    torch_modules, torch_args = ("Softmax",), {"dim": "axis"}

    kernel, kernel_backward = staticmethod(F.softmax), staticmethod(F.softmax_backward)
