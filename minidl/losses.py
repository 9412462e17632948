"""Losses: layers whose forward returns a Python float."""

from __future__ import annotations

import numbers

import numpy as np

from . import functional as F
from .layers.base import Layer

__all__ = ["Loss", "SoftmaxCrossEntropy"]


class Loss(Layer):
    """Base class of losses: ``forward(outputs, targets) -> float``, ``backward() -> dL/doutputs``.

    The Trainer accepts any subclass; write your own loss by subclassing it.
    """

    def forward(self, outputs, targets):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(outputs, targets)")

    def _upstream(self, grad_output) -> float:
        """Check the upstream gradient of the scalar loss: a finite real number (1.0 by default)."""
        where = f"{type(self).__name__}.backward"
        if isinstance(grad_output, np.ndarray) and grad_output.ndim == 0:
            grad_output = grad_output.item()
        if isinstance(grad_output, (np.ndarray, list, tuple)):
            raise TypeError(
                f"{where}: takes no array argument: the loss is a scalar, so backward() needs only "
                "its upstream gradient, a number (default 1.0). It returns dL/doutputs for the "
                "outputs and targets of the last forward() call. Received: an array of shape "
                f"{np.shape(grad_output)}. Call loss.backward() without the logits."
            )
        if not isinstance(grad_output, numbers.Real) or isinstance(grad_output, bool) \
                or not np.isfinite(grad_output):
            raise ValueError(
                f"{where}: grad_output must be a finite real number (the upstream gradient of the "
                f"scalar loss). Received: grad_output={grad_output!r}"
            )
        return float(grad_output)



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
        if (not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, bool)
                or not 0.0 <= label_smoothing <= 1.0):
            raise ValueError(
                "SoftmaxCrossEntropy: label_smoothing must be a float in [0, 1]. "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)
        self._cache = None

    def forward(self, logits, targets):
        loss = F.cross_entropy(logits, targets, self.label_smoothing)
        self._cache = (logits, targets)
        return loss

    def backward(self, grad_output=1.0):
        """dL/dlogits, scaled by ``grad_output`` (the upstream gradient of the scalar loss)."""
        grad_output = self._upstream(grad_output)
        logits, targets = self._require_cache(self._cache)
        grad = F.cross_entropy_backward(logits, targets, self.label_smoothing)
        if grad_output != 1.0:
            grad = grad * np.asarray(grad_output, dtype=grad.dtype)
        return grad

    def get_config(self):
        return dict(label_smoothing=self.label_smoothing)

    def extra_repr(self):
        return f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
