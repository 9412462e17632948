"""Layers that merge several inputs: Add and Concat."""

from __future__ import annotations

import numpy as np

from ..validation import check_array, check_int
from .base import Layer
from .registry import register_layer

__all__ = ["Add", "Concat"]


def _checked(inputs, name, where):
    """``(i, x)`` for each input, after checking that it is an array of input 0's dtype."""
    for i, x in enumerate(inputs):
        check_array(x, f"input {i}", name)
        if x.dtype != inputs[0].dtype:
            raise TypeError(
                f"{where}: every input must have the dtype of input 0 ({inputs[0].dtype}); "
                f"input {i} has {x.dtype}. Cast it with .astype(np.{inputs[0].dtype})."
            )
        yield i, x


@register_layer
class Add(Layer):
    r"""Element-wise sum of two or more inputs of the same shape and dtype.

    Notes
    -----
    Each input receives the upstream gradient unchanged (cast to the inputs'
    dtype; a gradient of another shape than the output is refused).

    Shape
    -----
    - Inputs: two or more arrays of one shape and dtype
    - Output: that shape and dtype; backward returns a tuple of that many gradients

    Examples
    --------
    >>> Add()(np.ones(3), np.ones(3))
    array([2., 2., 2.])
    """

    onnx_op, torch_modules = "Sum", ("Add",)

    def forward(self, *inputs):
        if len(inputs) < 2:
            raise ValueError(f"Add: expected at least 2 inputs, got {len(inputs)}.")
        for i, x in _checked(inputs, "Add", "Add"):
            if x.shape != inputs[0].shape:
                raise ValueError(
                    f"Add: every input must have the shape of input 0 {inputs[0].shape}; "
                    f"input {i} has shape {x.shape}."
                )
        self.save_for_backward(n=len(inputs), shape=inputs[0].shape, dtype=inputs[0].dtype)
        out = inputs[0].copy()
        for x in inputs[1:]:
            out += x
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.shape, s.dtype)
        return tuple(grad_output for _ in range(s.n))

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))
        yield cls(), tuple(rng.standard_normal((2, 2, 3, 3)) for _ in range(3))


@register_layer
class Concat(Layer):
    r"""Concatenate inputs along ``axis`` (default 1: channels in NCHW).

    Parameters
    ----------
    axis : int, default 1
        May be negative; a numpy integer is accepted, a float or a bool is not.

    Notes
    -----
    The upstream gradient (of the output's shape, cast to the inputs' dtype) is
    split back into the inputs' slices.

    Shape
    -----
    - Inputs: one or more arrays of one dtype, equal on every axis but ``axis``
      (e.g. (N, C_i, H, W))
    - Output: the sum of their sizes along ``axis`` (e.g. (N, sum C_i, H, W))

    Examples
    --------
    >>> Concat()(np.ones((2, 1, 4, 4)), np.ones((2, 3, 4, 4))).shape
    (2, 4, 4, 4)
    """

    onnx_op, onnx_attrs = "Concat", {"axis": "axis"}
    torch_modules, torch_args = ("Concat",), {"axis": "axis"}

    def __init__(self, axis=1):
        super().__init__()
        self.axis = check_int(axis, "axis", "Concat")

    def forward(self, *inputs):
        if len(inputs) < 1:
            raise ValueError("Concat: expected at least 1 input, got 0.")
        for i, x in _checked(inputs, "Concat", self):
            if not -x.ndim <= self.axis < x.ndim:
                raise ValueError(
                    f"{self!r}: axis {self.axis} is out of range for input {i} with "
                    f"{x.ndim} dimensions (shape {x.shape})."
                )
        try:
            out = np.concatenate(inputs, axis=self.axis)
        except ValueError as exc:
            shapes = [x.shape for x in inputs]
            raise ValueError(
                f"{self!r}: inputs must match on every axis except {self.axis}; "
                f"got shapes {shapes}."
            ) from exc
        self.save_for_backward(sizes=[x.shape[self.axis] for x in inputs], shape=out.shape, dtype=out.dtype)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.shape, s.dtype)
        return tuple(np.split(grad_output, np.cumsum(s.sizes)[:-1], axis=self.axis))

    @classmethod
    def examples(cls, rng):
        yield cls(axis=1), (rng.standard_normal((2, 1, 3)), rng.standard_normal((2, 2, 3)))
        yield cls(axis=-1), (rng.standard_normal((2, 3, 1)), rng.standard_normal((2, 3, 4)),
                             rng.standard_normal((2, 3, 2)))
