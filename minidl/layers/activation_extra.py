"""More activation layers, as torch.nn's: ELU, Softplus, PReLU (learnable), Hardswish, Mish.

The kernels, forward next to backward, are :mod:`minidl.functional.activation_extra`; the
derivations docs/derivations/activations.md.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional.activation_extra import check_real
from ..parameter import Parameter
from ..testing import away_from_zero
from ..validation import check_same_dtype, positive_int
from ._init import float_dtype
from .activation import _Elementwise
from .base import InputSpec, Layer, Unsupported
from .registry import register_layer

__all__ = ["ELU", "Softplus", "PReLU", "Hardswish", "Mish"]


def _away_from(x, points, margin=0.1):
    """``x`` with every value closer than ``margin`` to one of ``points`` moved ``2 * margin`` past it."""
    for p in points:
        near = np.abs(x - p) < margin
        x = np.where(near, x + np.where(x >= p, 2, -2) * margin, x)
    return x


@register_layer
class ELU(_Elementwise):
    r"""``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``, as :class:`torch.nn.ELU`.

    Parameters
    ----------
    alpha : float, default 1.0
        The value the output tends to for very negative ``x`` is ``-alpha``.

    Shape
    -----
    Any shape; output the same shape and dtype.

    Notes
    -----
    Backward from the input ``x``: ``dL/dx = g`` where ``x > 0``, else ``g * alpha * exp(x)``
    (slope ``alpha`` at ``x == 0``, as torch); see :func:`minidl.functional.elu_backward`.

    Examples
    --------
    >>> ELU()(np.array([-1.0, 0.0, 2.0])).round(4)
    array([-0.6321,  0.    ,  2.    ])
    """

    onnx_op, onnx_attrs = "Elu", {"alpha": "alpha"}
    torch_modules, torch_args = ("ELU",), {"alpha": "alpha"}
    _kernel, _kernel_backward = staticmethod(F.elu), staticmethod(F.elu_backward)

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = check_real(alpha, "alpha", "ELU")

    @classmethod
    def examples(cls, rng):
        for alpha in (1.0, 0.5):  # away from the kink at 0 (slopes 1 and alpha)
            yield cls(alpha), (away_from_zero((2, 3, 4, 4), rng),)


@register_layer
class Softplus(_Elementwise):
    r"""``log(1 + exp(beta * x)) / beta``, linear (``x``) where ``beta * x > threshold``, as :class:`torch.nn.Softplus`.

    Parameters
    ----------
    beta : float, default 1.0
        Not 0.
    threshold : float, default 20.0
        Where ``beta * x`` passes it the output is ``x`` (the two differ by less than ``exp(-threshold)``).

    Shape
    -----
    Any shape; output the same shape and dtype.

    Notes
    -----
    Backward from the input ``x``: ``dL/dx = g * sigmoid(beta * x)``, and ``g`` above the threshold;
    see :func:`minidl.functional.softplus_backward`.

    Examples
    --------
    >>> Softplus()(np.array([-1.0, 0.0, 30.0])).round(4)
    array([ 0.3133,  0.6931, 30.    ])
    """

    torch_modules, torch_args = ("Softplus",), {"beta": "beta", "threshold": "threshold"}
    onnx_imports = ("Softplus",)  # ONNX's: beta 1; the threshold changes nothing in float32 (x > 20)
    _kernel, _kernel_backward = staticmethod(F.softplus), staticmethod(F.softplus_backward)

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = check_real(beta, "beta", "Softplus", nonzero=True)
        self.threshold = check_real(threshold, "threshold", "Softplus", finite=False)

    def to_onnx(self, g, inputs, input_shape):  # ONNX's Softplus has no beta/threshold: build them around it
        (x,) = inputs
        xb = g.node("Mul", [x, g.const("beta", self.beta)])
        soft = g.node("Div", [g.node("Softplus", [xb]), g.const("beta_div", self.beta)])
        return g.node("Where", [g.node("Greater", [xb, g.const("threshold", self.threshold)]), x, soft])

    @classmethod
    def examples(cls, rng):
        yield cls(), (3 * rng.standard_normal((2, 3, 4, 4)),)
        # across the threshold x = 5 / 2, kept 0.1 away from it (the output jumps there by ~3e-3)
        yield cls(beta=2.0, threshold=5.0), (_away_from(3 * rng.standard_normal((2, 3, 4, 4)), [2.5]),)


@register_layer
class Hardswish(_Elementwise):
    r"""``x * min(max(x + 3, 0), 6) / 6``, as :class:`torch.nn.Hardswish`.

    Shape
    -----
    Any shape; output the same shape and dtype.

    Notes
    -----
    Backward from the input ``x``: 0 for ``x <= -3``, ``g * (x / 3 + 1/2)`` for ``-3 < x < 3``,
    ``g`` from 3 on (torch's slopes at the kinks); see :func:`minidl.functional.hardswish_backward`.

    Examples
    --------
    >>> Hardswish()(np.array([-4.0, 0.0, 1.5, 4.0]))
    array([-0.   ,  0.   ,  1.125,  4.   ])
    """

    onnx_op, torch_modules = "HardSwish", ("Hardswish",)
    onnx_patterns = (({}, (("HardSigmoid", "x", {"alpha": 1 / 6, "beta": 0.5}), ("Mul", "x", 0))),)  # torch, opset 13
    _kernel, _kernel_backward = staticmethod(F.hardswish), staticmethod(F.hardswish_backward)

    @classmethod
    def examples(cls, rng):  # all three pieces, 0.1 away from the kinks at -3 and 3
        yield cls(), (_away_from(2.5 * rng.standard_normal((2, 3, 4, 4)), [-3.0, 3.0]),)


@register_layer
class Mish(_Elementwise):
    r"""``x * tanh(softplus(x))``, as :class:`torch.nn.Mish`.

    Shape
    -----
    Any shape; output the same shape and dtype.

    Notes
    -----
    Backward from the input ``x``: ``dL/dx = g * (t + x * sigmoid(x) * (1 - t**2))`` with
    ``t = tanh(softplus(x))``; see :func:`minidl.functional.mish_backward`.

    Examples
    --------
    >>> Mish()(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.3034,  0.    ,  0.8651])
    """

    torch_modules, onnx_imports = ("Mish",), ("Mish",)  # ONNX's Mish (opset 18) is read back
    onnx_patterns = (({}, (("Softplus", "x"), ("Tanh", 0), ("Mul", "x", 1))),)  # torch's before opset 18
    _kernel, _kernel_backward = staticmethod(F.mish), staticmethod(F.mish_backward)

    def to_onnx(self, g, inputs, input_shape):  # Mish is opset 18: x * Tanh(Softplus(x))
        return g.node("Mul", [inputs[0], g.node("Tanh", [g.node("Softplus", inputs)])])

    @classmethod
    def examples(cls, rng):
        yield cls(), (3 * rng.standard_normal((2, 3, 4, 4)),)


@register_layer
class PReLU(Layer):
    r"""``x`` where ``x > 0``, else ``weight * x`` with a learned ``weight``, as :class:`torch.nn.PReLU`.

    Parameters
    ----------
    num_parameters : int, default 1
        1: one slope for every element; C: one slope per channel, axis 1 of the input.
    init : float, default 0.25
        The initial value of every slope.
    dtype : floating dtype, default float32
        The dtype of ``weight`` (and so of the input it accepts).

    Attributes
    ----------
    weight : Parameter, shape (num_parameters,)
        The slopes (torch's name, so state dicts match).

    Shape
    -----
    Any shape (``(N, C, *)`` when ``num_parameters`` is C > 1); output the same shape and dtype.

    Notes
    -----
    ``dL/dx = g`` where ``x > 0``, else ``weight * g``; ``dL/dweight`` sums ``x * g`` where
    ``x <= 0`` over every axis but the channel axis; see :func:`minidl.functional.prelu_backward`.

    Examples
    --------
    >>> PReLU()(np.array([-2.0, 3.0], np.float32))
    array([-0.5,  3. ], dtype=float32)
    """

    torch_modules, onnx_imports = ("PReLU",), ("PRelu",)
    input_spec = InputSpec(floating=False)  # dtype: the weight's, in forward

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        # num_parameters is kept as the size of weight, not as an attribute: that would hide the
        # method Layer.num_parameters(), which here returns the same number
        n = positive_int(num_parameters, "num_parameters", "PReLU")
        self.init = check_real(init, "init", "PReLU")
        self.weight = Parameter(np.full(n, self.init, float_dtype(dtype, "PReLU")))

    def get_config(self):
        """The constructor's arguments: ``num_parameters`` (the size of ``weight``), ``init``, ``dtype``.

        Returns
        -------
        dict

        Examples
        --------
        >>> PReLU(3).get_config()
        {'num_parameters': 3, 'init': 0.25, 'dtype': 'float32'}
        """
        return {"num_parameters": self.weight.size, "init": self.init, "dtype": self.weight.data.dtype.name}

    def extra_repr(self):
        dtype = "" if self.weight.data.dtype == np.float32 else f", dtype={self.weight.data.dtype}"
        return f"num_parameters={self.weight.size}, init={self.init!r}{dtype}"

    def forward(self, x):
        self.check_input(x)
        n = self.weight.size
        if n > 1 and (x.ndim < 2 or x.shape[1] != n):
            raise ValueError(
                f"{self!r}: expected input of shape (N, {n}, *) (one slope per channel, "
                f"axis 1), got shape {x.shape}. Set num_parameters to the number of channels, or to 1."
            )
        check_same_dtype(x, self.weight.data, "input", "weight", self)
        self.save_for_backward(x=x)
        return F.prelu(x, self.weight.data, where=self)

    def backward(self, grad_output, *, input_grad=True):
        x = self.saved_values.x
        grad_output = self.check_grad_output(grad_output, x.shape, x.dtype)
        grad_input, grad_weight = F.prelu_backward(grad_output, x, self.weight.data, where=self)
        self.weight.grad += grad_weight
        return grad_input if input_grad else None

    def to_onnx(self, g, inputs, input_shape):  # the slope broadcast from the right: (C, 1, ...)
        shape = (-1,) + (1,) * (len(input_shape) - 2) if self.weight.size > 1 else (1,)
        return g.node("PRelu", [inputs[0], g.const("weight", self.weight.data.reshape(shape))])

    def to_torch(self, t):
        return t.nn.PReLU(self.weight.size, self.init, dtype=t.dtype(self))

    @classmethod
    def from_onnx_node(cls, node):
        """The PReLU of an ONNX ``PRelu`` node with a constant slope: one, or one per channel (axis 1).

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        PReLU

        Raises
        ------
        Unsupported
            A slope computed at run time, or shaped otherwise than one per channel.
        """
        slope = node.consts[1] if len(node.consts) > 1 else None
        if node.tensors != 1 or slope is None:
            raise Unsupported("with its slope computed at run time (only a constant becomes a Parameter)")
        per_channel = (slope.shape[0],) + (1,) * (len(node.input_shape) - 2)
        if slope.size > 1 and (len(node.input_shape) < 2 or slope.shape != per_channel
                               or slope.shape[0] != node.input_shape[1]):
            raise Unsupported(f"with a slope of shape {slope.shape} on an input of shape {node.input_shape} "
                              "(one slope, or one per channel shaped (C, 1, ...))")
        layer = cls(slope.size, init=float(slope.reshape(-1)[0]), dtype=slope.dtype)  # init: for the repr
        layer.weight.data[...] = slope.reshape(-1)
        return layer

    @classmethod
    def from_torch(cls, module, t):
        return cls(module.num_parameters, module.init, dtype=t.np_dtype(module))

    @classmethod
    def examples(cls, rng):  # inputs away from the kink at 0; per-channel slopes all different
        yield cls(dtype=np.float64), (away_from_zero((2, 3, 4, 4), rng),)
        layer = cls(3, init=0.1, dtype=np.float64)
        layer.weight.data[:] = rng.uniform(-0.5, 0.5, 3)
        yield layer, (away_from_zero((2, 3, 4, 4), rng),)
        yield cls(4, dtype=np.float64), (away_from_zero((5, 4), rng),)
