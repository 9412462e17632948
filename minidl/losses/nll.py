"""NLLLoss: the negative log-likelihood of class labels, after a LogSoftmax."""

from __future__ import annotations

import numpy as np

from ..functional.loss_args import check_class_weight, check_reduction
from ..functional.nll import check_nll_args, nll_loss, nll_loss_backward
from ..layers.registry import register_layer
from ..validation import check_int
from .base import Loss

__all__ = ["NLLLoss"]


@register_layer
class NLLLoss(Loss):
    r"""Negative log-likelihood of class labels, as :class:`torch.nn.NLLLoss`.

    ``LogSoftmax`` then ``NLLLoss`` is :class:`SoftmaxCrossEntropy` in two steps (which fuses
    them, and is the one to train with); NLLLoss is for models that end in a LogSoftmax.

    Parameters
    ----------
    weight : array-like (C,), optional
        Per-class weights (stored as float64, used in the outputs' dtype).
    ignore_index : int, default -100
        Rows whose label equals it contribute nothing and do not count in the mean.
    reduction : {'mean', 'sum', 'none'}
        'mean' divides by the summed weight of the kept rows' classes (their number without
        weights), as PyTorch.

    Shape
    -----
    - ``forward(outputs, targets)``: log-probabilities (N, C) and integer labels (N,) in
      ``[0, C)`` (or ``ignore_index``); or (N, C, d1, ...) and (N, d1, ...), as torch
    - Output: a float; the targets' shape for ``reduction='none'``
    - ``backward()``: the outputs' shape and dtype

    Notes
    -----
    :math:`\ell_n = -w_{y_n} x_{n, y_n}`; the gradient is :math:`-w_{y_n} r_n` at :math:`(n, y_n)`
    and 0 elsewhere (:func:`minidl.functional.nll_loss`). The arguments after ``weight`` are
    keyword-only (torch's positional order differs), as in :class:`SoftmaxCrossEntropy`.

    Examples
    --------
    >>> loss = NLLLoss()
    >>> round(loss(np.log(np.array([[0.5, 0.5], [0.25, 0.75]])), np.array([0, 1])), 6)
    0.490415
    >>> loss.backward()
    array([[-0.5,  0. ],
           [ 0. , -0.5]])
    """

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__()
        self.weight = check_class_weight(weight, "NLLLoss")
        self.ignore_index = check_int(ignore_index, "ignore_index", "NLLLoss")
        self.reduction = check_reduction(reduction, "NLLLoss")

    def _kwargs(self, outputs):
        """The kernels' keyword arguments, the weight in the outputs' dtype (if they have a float one)."""
        dtype = outputs.dtype if isinstance(outputs, np.ndarray) and outputs.dtype.kind == "f" else np.float64
        w = None if self.weight is None else self.weight.astype(dtype)
        return dict(weight=w, ignore_index=self.ignore_index, reduction=self.reduction)

    def forward(self, outputs, targets):
        kw = self._kwargs(outputs)
        targets = check_nll_args(outputs, targets, where=repr(self), **kw)
        self.save_for_backward(outputs=outputs, targets=targets, kw=kw)
        return nll_loss(outputs, targets, check_args=False, **kw)

    def backward(self, grad_output=1.0):
        """dL/doutputs of the last :meth:`forward`, scaled by ``grad_output``.

        Parameters
        ----------
        grad_output : real scalar, default 1.0; an ndarray of the targets' shape for ``reduction='none'``
            The upstream gradient of the loss (finite).

        Returns
        -------
        ndarray, the outputs' shape ((N, C) or (N, C, d1, ...)) and dtype

        Shape
        -----
        ``grad_output``: a scalar, or the targets' shape for 'none'; the result: the outputs'.

        Examples
        --------
        >>> loss = NLLLoss(reduction="sum")
        >>> _ = loss(np.zeros((2, 2)), np.array([1, 0]))
        >>> loss.backward(2.0)
        array([[ 0., -2.],
               [-2.,  0.]])
        """
        s = self.saved_values
        g = self._upstream(grad_output, s.outputs.shape[:1] + s.outputs.shape[2:], s.outputs.dtype)
        return nll_loss_backward(s.outputs, s.targets, grad_output=g, check_args=False, **s.kw)

    def get_config(self):
        config = dict(ignore_index=self.ignore_index, reduction=self.reduction)
        if self.weight is not None:
            config["weight"] = self.weight.tolist()
        return config

    def extra_repr(self):
        parts = []
        if self.weight is not None:
            parts.append(f"weight={np.array2string(self.weight, separator=', ', threshold=8)}")
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.reduction != "mean":
            parts.append(f"reduction={self.reduction!r}")
        return ", ".join(parts)

    @classmethod
    def examples(cls, rng):
        def log_probs(n, k):
            p = rng.dirichlet(np.ones(k), size=n)
            return np.log(p)
        yield cls(), (log_probs(4, 5), rng.integers(0, 5, 4))
        labels = rng.integers(0, 5, 6)
        labels[[1, 4]] = -100
        yield cls(weight=[0.5, 2.0, 1.0, 3.0, 1.5]), (log_probs(6, 5), labels)
        yield cls(ignore_index=0, reduction="sum"), (log_probs(6, 3), rng.integers(0, 3, 6))
        pixels = np.moveaxis(log_probs(2 * 3 * 2, 4).reshape(2, 3, 2, 4), -1, 1).copy()  # (N, C, H, W)
        yield cls(weight=[0.5, 2.0, 1.0, 3.0]), (pixels, rng.integers(0, 4, (2, 3, 2)))
