"""What the element-wise loss kernels share: the check of an (outputs, targets) pair, the
reduction of element losses, and the upstream gradient's scale for the backward pass.

Internal (no public names): :mod:`minidl.functional.regression_loss`,
:mod:`minidl.functional.bce` and :mod:`minidl.functional.kl_div` call it.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_array, check_float_dtype
from .loss_args import REDUCTIONS
from .mse import targets_like


def check_pair(outputs, targets, reduction, where, reductions=REDUCTIONS):
    """Validate; return ``targets`` as an array of ``outputs``' dtype and shape."""
    check_array(outputs, "outputs", where)
    check_float_dtype(outputs, "outputs", where)
    if not isinstance(reduction, str) or reduction not in reductions:
        names = ", ".join(repr(r) for r in reductions)
        raise ValueError(f"{where}: reduction must be one of {names}, as in PyTorch. "
                         f"Received: reduction={reduction!r}")
    return targets_like(outputs, targets, where)


def reduce_loss(elements, reduction):
    """The element losses reduced: their mean over every element, their sum, the sum over the
    first axis's length ('batchmean'), or themselves ('none')."""
    if reduction == "none":
        return elements
    with np.errstate(invalid="ignore", divide="ignore"):
        total = elements.sum()
        if reduction == "mean":
            total = total / elements.size if elements.size else np.nan
        elif reduction == "batchmean":
            total = total / elements.shape[0] if elements.ndim else total
        return float(total) + 0.0


def upstream_scale(grad_output, reduction, outputs, where):
    """What the element gradients are multiplied by: ``grad_output`` (a scalar, default 1) divided
    as the reduction divides, or for 'none' the element-wise upstream gradient (checked)."""
    if reduction == "none":
        if not (isinstance(grad_output, np.ndarray) and grad_output.shape == outputs.shape
                and grad_output.dtype == outputs.dtype):
            raise ValueError(f"{where}: reduction='none' needs grad_output as an ndarray of shape "
                             f"{outputs.shape} and dtype {outputs.dtype}. Received: {type(grad_output).__name__} "
                             f"{getattr(grad_output, 'shape', '')} {getattr(grad_output, 'dtype', '')}.")
        return grad_output
    if np.ndim(grad_output):
        raise ValueError(f"{where}: grad_output must be a scalar for reduction={reduction!r}. "
                         f"Received: an array of shape {np.shape(grad_output)}.")
    scale = 1.0 if grad_output is None else float(grad_output)
    if reduction == "mean":
        scale = scale / outputs.size if outputs.size else float("nan")
    elif reduction == "batchmean" and outputs.ndim:
        scale = scale / outputs.shape[0] if outputs.shape[0] else float("nan")
    return outputs.dtype.type(scale)
