"""Dense (fully connected) and Flatten layers."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..parameter import Parameter
from ..validation import check_same_dtype, positive_int
from ._init import as_generator, float_dtype, kaiming_uniform
from .base import InputSpec, Layer, Unsupported, set_arrays
from .registry import register_layer

__all__ = ["Dense", "Flatten"]


@register_layer
class Dense(Layer):
    r"""Affine layer ``y = x @ W.T + b``, as :class:`torch.nn.Linear`.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    dtype : floating dtype, float32 by default
    rng : numpy.random.Generator, optional; Kaiming-uniform init as PyTorch

    Attributes
    ----------
    weight : Parameter, shape (out_features, in_features)
    bias : Parameter, shape (out_features,), or None

    Shape
    -----
    Input (N, in_features) -> output (N, out_features).

    Notes
    -----
    dL/dx = G W, dL/dW = G^T x, dL/db = sum_n G[n] (summed, never averaged).

    Examples
    --------
    >>> Dense(3, 2, rng=np.random.default_rng(0))(np.ones((4, 3), np.float32)).shape
    (4, 2)
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        super().__init__()
        where = "Dense"
        self.in_features = positive_int(in_features, "in_features", where)
        self.out_features = positive_int(out_features, "out_features", where)
        dtype = float_dtype(dtype, where)
        rng = as_generator(rng, where)
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(kaiming_uniform(rng, shape, self.in_features, dtype))
        self.bias = (Parameter(kaiming_uniform(rng, (self.out_features,), self.in_features, dtype))
                     if bias else None)

    input_spec = InputSpec(ndim=2, layout="(N, in_features)", floating=False)  # dtype: the weight's, below

    def forward(self, x):
        where = self  # formatted (repr) only in an error message
        self.check_input(x)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"{where}: expected input with {self.in_features} features, got shape {x.shape}. "
                "Put a Flatten() before Dense, or set in_features to match."
            )
        check_same_dtype(x, self.weight.data, "input", "weight", where)
        self.save_for_backward(x=x)
        return F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, grad_output, *, input_grad=True):
        x = self.saved_values.x
        grad_output = self.check_grad_output(grad_output, (x.shape[0], self.out_features), x.dtype)
        self.weight.grad += F.linear_weight(x, grad_output)
        if self.bias is not None:
            self.bias.grad += F.linear_bias(grad_output)
        return F.linear_input(grad_output, self.weight.data) if input_grad else None

    torch_modules, onnx_imports = ("Linear",), ("Gemm",)

    def to_onnx(self, g, inputs, input_shape):  # y = x W^T + b: Gemm with transB
        args = [inputs[0], g.const("weight", self.weight.data)]
        if self.bias is not None:
            args.append(g.const("bias", self.bias.data))
        return g.node("Gemm", args, transB=1)

    def to_torch(self, t):
        return t.nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, dtype=t.dtype(self))

    @classmethod
    def from_torch(cls, m, t):
        return cls(m.in_features, m.out_features, bias=m.bias is not None, dtype=t.np_dtype(m))

    @classmethod
    def from_onnx_node(cls, node):
        """The Dense computing an ONNX ``Gemm`` node ``alpha * A @ B' + beta * C`` on a run-time ``A``.

        ``alpha`` and ``beta`` are folded into the weight and bias (the importer also reads a
        ``MatMul`` followed by an ``Add`` as a Gemm).

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        Dense

        Raises
        ------
        Unsupported
            ``B`` or ``C`` computed at run time, ``transA=1``, or a ``C`` that depends on the row.
        """
        _, b, c = (tuple(node.consts) + (None, None))[:3]
        a = node.attrs
        if node.tensors != 1 or b is None or b.ndim != 2:
            raise Unsupported("with B (the weight) computed at run time or not 2-D (only constants become Parameters)")
        if a.get("transA", 0):
            raise Unsupported("with transA=1 (the batch must be the rows of A)")
        weight = (b if a.get("transB", 0) else b.T) * np.asarray(a.get("alpha", 1.0), b.dtype)
        layer = cls(weight.shape[1], weight.shape[0], bias=c is not None, dtype=b.dtype)
        if c is None:
            return set_arrays(layer, weight=weight)
        if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or c.size not in (1, weight.shape[0]):
            raise Unsupported(f"with C of shape {c.shape} (a bias of shape ({weight.shape[0]},) or (1, "
                              f"{weight.shape[0]}) or a scalar)")
        bias = np.broadcast_to(c.reshape(-1) * np.asarray(a.get("beta", 1.0), c.dtype), (weight.shape[0],))
        return set_arrays(layer, weight=weight, bias=bias)

    def extra_repr(self):
        s = f"in_features={self.in_features}, out_features={self.out_features}"
        if self.bias is None:
            s += ", bias=False"
        if self.weight.data.dtype != np.float32:
            s += f", dtype={self.weight.data.dtype}"
        return s

    @classmethod
    def examples(cls, rng):
        yield cls(5, 4, rng=rng, dtype=np.float64), (rng.standard_normal((3, 5)),)
        yield cls(5, 4, bias=False, rng=rng, dtype=np.float64), (rng.standard_normal((3, 5)),)


@register_layer
class Flatten(Layer):
    r"""Flatten every axis from ``start_dim`` (default 1) on, as :class:`torch.nn.Flatten`.

    Parameters
    ----------
    start_dim : int, default 1
        The first axis flattened (>= 1: the batch axis stays).

    Shape
    -----
    (N, C, H, W) -> (N, C * H * W), C-order, so weights match PyTorch's.

    Examples
    --------
    >>> Flatten()(np.zeros((2, 3, 4, 4))).shape
    (2, 48)
    """

    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = positive_int(start_dim, "start_dim", "Flatten")

    def forward(self, x):
        self.check_input(x)
        if x.ndim <= self.start_dim:
            raise ValueError(
                f"{self!r}: expected input with more than {self.start_dim} dimensions, "
                f"got shape {x.shape}."
            )
        self.save_for_backward(shape=x.shape, dtype=x.dtype)
        return F.flatten(x, self.start_dim)

    def backward(self, grad_output, *, input_grad=True):
        shape, dtype = self.saved_values.shape, self.saved_values.dtype
        flat = shape[: self.start_dim] + (int(np.prod(shape[self.start_dim:])),)
        return self.check_grad_output(grad_output, flat, dtype).reshape(shape)

    torch_modules, torch_args = ("Flatten",), {"start_dim": "start_dim"}
    input_spec = InputSpec(floating=False)

    def to_onnx(self, g, inputs, input_shape):
        if self.start_dim == 1:
            return g.node("Flatten", inputs, axis=1)
        return g.node("Reshape", [inputs[0], g.const("shape", [0] * self.start_dim + [-1], np.int64)])

    @classmethod
    def from_torch(cls, m, t):
        if m.end_dim != -1 or m.start_dim < 1:
            raise Unsupported(f"with start_dim={m.start_dim}, end_dim={m.end_dim} (only start_dim >= 1, end_dim=-1)")
        return cls(m.start_dim)

    def extra_repr(self):
        return "" if self.start_dim == 1 else f"start_dim={self.start_dim}"

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.standard_normal((2, 3, 4, 4)),)
        yield cls(start_dim=2), (rng.standard_normal((2, 3, 4, 5)),)
