"""Losses: layers whose forward returns a Python float."""

from __future__ import annotations

import numbers

import numpy as np

from . import functional as F
from .functional.loss import check_cross_entropy_args, check_label_smoothing
from .layers.base import Layer

__all__ = ["Loss", "SoftmaxCrossEntropy"]


class Loss(Layer):
    """Base class of losses: ``forward(outputs, targets) -> float``, ``backward() -> dL/doutputs``.

    The Trainer accepts any subclass; write your own loss by subclassing it.
    """

    def forward(self, outputs, targets):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(outputs, targets)")


class SoftmaxCrossEntropy(Loss):
    r"""Softmax cross-entropy from logits, as :func:`torch.nn.functional.cross_entropy`.

    Parameters
    ----------
    label_smoothing : float in [0, 1]
        Targets become ``(1 - eps) * T + eps / K``, PyTorch's rule.

    Notes
    -----
    ``forward(logits, targets)`` returns the mean over the batch of
    ``-sum_k T[n, k] log_softmax(z)[n, k]``, computed with log-sum-exp so that
    logits of any magnitude stay finite. ``targets`` are integer labels (N,) or
    class probabilities (N, K). ``backward()`` returns
    ``dL/dz = (softmax(z) - T) / N``: the only ``1/N`` in minidl.

    Examples
    --------
    >>> loss = SoftmaxCrossEntropy()
    >>> round(loss(np.array([[-1000.0, 1.0]]), np.array([1])), 6)
    0.0
    >>> loss.backward().round(3)
    array([[0., 0.]])
    """

    def __init__(self, label_smoothing=0.0):
        super().__init__()
        self.label_smoothing = check_label_smoothing(label_smoothing, "SoftmaxCrossEntropy")

    def forward(self, logits, targets):
        targets = check_cross_entropy_args(logits, targets, self.label_smoothing, "SoftmaxCrossEntropy")
        loss = F.cross_entropy(logits, targets, self.label_smoothing, check_args=False)
        self.save_for_backward(logits, targets)  # checked: backward does not check them again
        return loss

    def backward(self, grad_output=1.0):
        """dL/dlogits of the last :meth:`forward`, scaled by ``grad_output``.

        Parameters
        ----------
        grad_output : real scalar, default 1.0
            The upstream gradient of the scalar loss (finite). Not the logits:
            ``backward`` takes no array, it uses what ``forward`` kept.

        Returns
        -------
        ndarray, shape (N, K), the logits' dtype
        """
        logits, targets = self.saved_values
        scale = self._check_scale(grad_output, logits.dtype)
        grad = F.cross_entropy_backward(logits, targets, self.label_smoothing, check_args=False)
        if scale != 1.0:
            grad *= np.asarray(scale, dtype=grad.dtype)
        return grad

    def _check_scale(self, grad_output, dtype):
        """``grad_output`` as a finite Python float, or a clear error."""
        usage = ("Call loss.backward() after loss(logits, targets) to get dL/dlogits "
                 "(optionally loss.backward(s) with a scalar s to scale it).")
        if isinstance(grad_output, (np.ndarray, list, tuple)):
            arr = np.asarray(grad_output, dtype=None if isinstance(grad_output, np.ndarray) else object)
            if arr.ndim:
                raise ValueError(
                    f"{self!r}: backward takes no array: the loss is a scalar, so its upstream "
                    f"gradient is a scalar. Received: an array of shape {arr.shape}. {usage}"
                )
            grad_output = arr[()]  # 0-d array -> its scalar
        if not isinstance(grad_output, numbers.Real) or isinstance(grad_output, (bool, np.bool_)):
            raise TypeError(
                f"{self!r}: backward's grad_output must be a real number (the upstream gradient "
                f"of the scalar loss). Received: grad_output={grad_output!r}. {usage}"
            )
        try:
            scale = float(grad_output)
        except OverflowError:  # an int beyond float64
            scale = float("inf")
        if not abs(scale) <= float(np.finfo(dtype).max):
            raise ValueError(
                f"{self!r}: backward's grad_output must be finite in the logits' dtype ({dtype}). "
                f"Received: grad_output={grad_output!r}. {usage}"
            )
        return scale

    def get_config(self):
        return dict(label_smoothing=self.label_smoothing)

    def extra_repr(self):
        return f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
