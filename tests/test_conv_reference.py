"""minidl.functional.conv_reference: the loop form of the convolution, and the engine checked against it.

The reference is the lesson (``docs/conv_backprop.md``) in code, and an independent oracle: it
imports nothing from minidl. These tests check that it stays independent, that it refuses bad
input with a clear error, and that the engine equals it.
"""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from minidl.functional import conv_reference as ref


def test_reference_imports_only_numpy_and_math():
    """An oracle that imported the engine would check the engine against itself."""
    tree = ast.parse(inspect.getsource(ref))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import: the reference must not import minidl"
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "math", "numpy"}, imported


@pytest.mark.parametrize("call, message", [
    (lambda: ref.conv2d_forward(np.ones((1, 2, 5, 5)), np.ones((1, 3, 3, 3))), "input channels"),
    (lambda: ref.conv2d_forward(np.ones((2, 5, 5)), np.ones((1, 2, 3, 3))), "(N, C, H, W)"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))), "larger than the padded input"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=0), "stride"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), dilation=(1, 0)), "dilation"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding=-1), ">= 0"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding="full"), "'same', 'valid'"),
    (lambda: ref.conv2d_backward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))),
     "output's shape"),
    (lambda: ref.as_pair((1, 2, 3)), "pair"),
], ids=["channels", "ndim", "kernel_too_large", "stride_0", "dilation_0", "negative_padding", "padding_string",
        "grad_output_shape", "triple"])
def test_bad_input_raises_value_error_naming_the_function(call, message):
    """Before the module was public these were asserts (or, for stride 0, an endless loop)."""
    with pytest.raises(ValueError, match="conv_reference") as info:
        call()
    assert message in str(info.value)
