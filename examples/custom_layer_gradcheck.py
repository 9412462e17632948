"""Write your own layer and check its gradients
=============================================

Write your own layer by subclassing ``minidl.layers.Layer``, and verify it with ``mdl.gradcheck``.

The layer is a Swish activation with one learnable slope per channel (NCHW):

    y = x * sigmoid(beta_c * x)

What a subclass must do (see minidl/layers/base.py):

* call ``super().__init__()`` and assign every trainable array as a ``mdl.Parameter``
  attribute (parameters are found automatically, in assignment order);
* declare what ``forward`` accepts once, as ``input_spec`` (an ``mdl.layers.InputSpec``:
  the checks and messages of the built-in layers), applied by ``self.check_input(x)``;
* ``forward(x)`` keeps what backward needs by name (here ``x`` and the sigmoid ``s``) with
  ``self.save_for_backward(x=x, s=s)``;
* ``backward(grad_output, *, input_grad=True)`` reads them back as ``self.saved_values.x``,
  returns dL/dx and ADDS dL/dbeta into ``self.beta.grad`` (summed over the batch, never
  averaged); backward before forward raises the standard RuntimeError;
* keep each constructor argument under an attribute of the same name (``self.channels``):
  ``get_config()`` and ``repr`` read them from there, and ``@mdl.register_layer`` makes
  ``mdl.save`` / ``mdl.load`` rebuild the layer from them;
* optionally an ``examples(rng)`` classmethod yielding ``(layer, inputs)`` pairs: the gradient
  grid (``minidl.gradcheck_grid.run_grid``, what ``minidl gradcheck`` runs) checks every
  registered layer on them.

``mdl.gradcheck`` compares backward with central differences in float64. The script
prints the report of the correct layer (PASSED) and of a copy whose backward forgets
a chain-rule term (FAILED). Exit code 0 exactly when the good layer passes and the
broken one fails. In a test suite, ``minidl.testing.assert_gradients(layer, x)`` raises
an AssertionError carrying the same table when the check fails.

Run from any folder:  python examples/custom_layer_gradcheck.py
"""
import sys

import numpy as np

import minidl as mdl


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic function


@mdl.register_layer  # makes models containing Swish loadable with mdl.load
class Swish(mdl.layers.Layer):
    """``x * sigmoid(beta * x)`` with a learnable ``beta`` per channel; input (N, C, H, W)."""

    input_spec = mdl.layers.InputSpec(ndim=4, layout="(N, C, H, W)", floating=False)  # dtype: beta's, below

    def __init__(self, channels, init=1.0, dtype=np.float32):
        super().__init__()
        self.channels = int(channels)
        self.beta = mdl.Parameter(np.full(self.channels, init, dtype=dtype))

    def forward(self, x):
        self.check_input(x)  # input_spec's checks and messages (where, expected, received, fix)
        mdl.validation.check_same_dtype(x, self.beta.data, "x", "beta", self)
        if x.shape[1] != self.channels:
            raise ValueError(f"{self!r}: expected input (N, {self.channels}, H, W), got {x.shape}.")
        beta = self.beta.data.reshape(1, -1, 1, 1)  # broadcast over N, H, W
        s = _sigmoid(beta * x)
        self.save_for_backward(x=x, s=s)
        return x * s

    def backward(self, grad_output, *, input_grad=True):
        x, s = self.saved_values.x, self.saved_values.s
        grad_output = self.check_grad_output(grad_output, x.shape, x.dtype)  # refused, never cast
        beta = self.beta.data.reshape(1, -1, 1, 1)
        ds = s * (1.0 - s)  # sigmoid'(z) at z = beta * x
        # d/dbeta [x * s(beta x)] = x * x * ds, summed over batch and space
        self.beta.grad += (grad_output * x * x * ds).sum(axis=(0, 2, 3)).astype(self.beta.grad.dtype)
        # d/dx [x * s(beta x)] = s + x * beta * ds
        return grad_output * (s + x * beta * ds)

    @classmethod
    def examples(cls, rng):
        # what the gradient grid (minidl.gradcheck_grid.run_grid) checks: float64 (Swish is smooth)
        yield cls(3, init=0.5, dtype=np.float64), (rng.standard_normal((2, 3, 4, 4)),)


class BrokenSwish(Swish):
    """The same layer with a classic bug: d/dx treats s = sigmoid(beta x) as a constant."""

    def backward(self, grad_output, *, input_grad=True):
        x, s = self.saved_values.x, self.saved_values.s
        ds = s * (1.0 - s)
        self.beta.grad += (grad_output * x * x * ds).sum(axis=(0, 2, 3)).astype(self.beta.grad.dtype)
        return grad_output * s  # BUG: the term x * beta * ds is missing


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 4))  # away from kinks: Swish is smooth everywhere

    good = Swish(3)
    good.beta.data[:] = [0.5, 1.0, 2.0]  # distinct values, so a mix-up of channels shows
    try:
        good.backward(np.ones_like(x))
    except RuntimeError as exc:
        print(f"backward before forward -> RuntimeError: {exc}\n")

    good_report = mdl.gradcheck(good, x)
    print(good_report, end="\n\n")

    broken = BrokenSwish(3)
    broken.beta.data[:] = [0.5, 1.0, 2.0]
    broken_report = mdl.gradcheck(broken, x)
    print(broken_report, end="\n\n")

    ok = good_report.passed and not broken_report.passed
    print(f"Swish gradcheck passed: {good_report.passed}; BrokenSwish gradcheck passed: "
          f"{broken_report.passed} -> {'as expected' if ok else 'UNEXPECTED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    status = main()
    if status:  # a SystemExit, even SystemExit(0), would also stop the docs build that runs this file
        sys.exit(status)
