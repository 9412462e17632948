"""The Loss base class and the first two losses, SoftmaxCrossEntropy and MSE (moved from ``minidl/losses.py``)."""

from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from ..functional.loss_args import check_class_weight, check_cross_entropy_args, check_label_smoothing, check_reduction
from ..functional.mse import check_mse_args, mse_loss, mse_loss_backward
from ..layers.base import Layer
from ..layers.registry import register_layer
from ..validation import check_int

__all__ = ["Loss", "SoftmaxCrossEntropy", "MSE"]


class Loss(Layer):
    """Base class of losses: ``forward(outputs, targets) -> float``, ``backward() -> dL/doutputs``.

    The Trainer accepts any subclass; write your own loss by subclassing it.
    A loss with a ``reduction`` attribute is trained by the Trainer only with
    ``'mean'`` or ``'sum'`` (a scalar loss); ``'none'`` gives one loss per
    sample, for your own training loop.

    Shape
    -----
    - ``forward(outputs, targets)``: the model's output, e.g. (N, K) logits, and
      targets of the subclass's shape (labels (N,), or the outputs' shape)
    - Returns a float (an (N,) array, or the outputs' shape, for ``reduction='none'``)
    - ``backward()``: dL/doutputs, the outputs' shape and dtype

    Examples
    --------
    >>> class L1(Loss):
    ...     def forward(self, outputs, targets):
    ...         self.save_for_backward(outputs - targets)
    ...         return float(np.abs(outputs - targets).mean())
    ...     def backward(self, grad_output=1.0):
    ...         (diff,) = self.saved_values
    ...         return grad_output * np.sign(diff) / diff.size
    >>> loss = L1()
    >>> loss(np.array([1.0, -1.0]), np.zeros(2))
    1.0
    >>> loss.backward()
    array([ 0.5, -0.5])
    """

    reduction = "mean"

    def forward(self, outputs, targets):  # pragma: no cover - abstract
        """The loss of ``outputs`` against ``targets``; keeps what :meth:`backward` needs.

        Parameters
        ----------
        outputs : ndarray
            The model's output (logits for :class:`SoftmaxCrossEntropy`).
        targets : ndarray
            Labels or target values, as the subclass documents.

        Returns
        -------
        float
            The reduced loss (an ndarray for ``reduction='none'``).

        Shape
        -----
        As the subclass documents (:class:`SoftmaxCrossEntropy`: (N, K) and (N,)).

        Examples
        --------
        >>> MSE().forward(np.array([3.0]), np.array([1.0]))
        4.0
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward(outputs, targets)")

    def _upstream(self, grad_output, shape, dtype):
        """The checked upstream gradient: a finite float (scalar reductions) or, for
        ``reduction='none'``, an ndarray of the per-sample loss's ``shape`` and ``dtype``."""
        if self.reduction == "none":
            if not isinstance(grad_output, np.ndarray):
                raise TypeError(
                    f"{self!r}: reduction='none' returns one loss per sample, so backward needs their "
                    f"upstream gradient: backward(g) with g an ndarray of shape {tuple(shape)} "
                    f"(e.g. np.ones({tuple(shape)}, dtype=np.{np.dtype(dtype)}) for the gradient of their sum). "
                    f"Received: grad_output={grad_output!r}."
                )
            return self.check_grad_output(grad_output, shape, dtype)
        return self._check_scale(grad_output, dtype)

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


@register_layer
class SoftmaxCrossEntropy(Loss):
    r"""Softmax cross-entropy from logits, as :class:`torch.nn.CrossEntropyLoss`.

    Parameters
    ----------
    weight : array-like (K,), optional
        Per-class weights (stored as float64, used in the logits' dtype).
    ignore_index : int, default -100
        Rows whose label equals it contribute nothing and do not count in the mean
        (class-index targets only).
    label_smoothing : float in [0, 1]
        Targets become ``(1 - eps) * T + eps / K``, PyTorch's rule.
    reduction : {'mean', 'sum', 'none'}
        'mean' divides by the summed weight of the kept rows' classes (their number
        without weights) for labels, by ``N`` for probability targets, as PyTorch.

    Notes
    -----
    ``forward(logits, targets)`` takes integer labels (N,) or class probabilities (N, K)
    and returns the loss (a float; an (N,) array for 'none'), computed with log-sum-exp
    so that logits of any magnitude stay finite; see
    :func:`minidl.functional.cross_entropy` for the formulas. ``backward()`` returns
    ``dL/dz``, ``(softmax(z) - T) / N`` in the plain case: the loss's mean is the only
    ``1/N`` in minidl. With 'none', ``backward(g)`` takes the (N,) upstream gradient.
    The arguments after ``weight`` are keyword-only (torch's positional order differs).
    Logits (N, K, d1, ...) with labels (N, d1, ...) (per-pixel classes) are taken as torch takes
    them: each position is a row, and 'mean' divides by the positions' count (or summed weights).

    Shape
    -----
    - ``logits``: (N, K) or (N, K, d1, ...), floating
    - ``targets``: (N,) or (N, d1, ...) integer labels in ``[0, K)`` (or ``ignore_index``), or
      class probabilities of the logits' shape
    - Output: a float; (N,) or (N, d1, ...) for ``reduction='none'``
    - ``backward()``: the logits' shape and dtype

    Examples
    --------
    >>> loss = SoftmaxCrossEntropy()
    >>> round(loss(np.array([[-1000.0, 1.0]]), np.array([1])), 6)
    0.0
    >>> loss.backward().round(3)
    array([[0., 0.]])
    >>> round(SoftmaxCrossEntropy(weight=[1.0, 3.0])(np.zeros((2, 2)), np.array([0, 1])), 6)  # (1 + 3) log 2 / 4
    0.693147
    """

    def __init__(self, weight=None, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        super().__init__()
        where = "SoftmaxCrossEntropy"
        self.weight = check_class_weight(weight, where)
        self.ignore_index = check_int(ignore_index, "ignore_index", where)
        self.label_smoothing = check_label_smoothing(label_smoothing, where)
        self.reduction = check_reduction(reduction, where)

    def _kwargs(self, logits):
        """The kernels' keyword arguments, the weight in the logits' dtype (if they have a float one)."""
        dtype = logits.dtype if isinstance(logits, np.ndarray) and logits.dtype.kind == "f" else np.float64
        w = None if self.weight is None else self.weight.astype(dtype)
        return dict(weight=w, ignore_index=self.ignore_index, reduction=self.reduction)

    def forward(self, logits, targets):
        kw = self._kwargs(logits)
        targets = check_cross_entropy_args(logits, targets, self.label_smoothing, "SoftmaxCrossEntropy", **kw)
        loss = F.cross_entropy(logits, targets, self.label_smoothing, check_args=False, **kw)
        self.save_for_backward(logits=logits, targets=targets, kw=kw)  # checked: backward does not check them again
        return loss

    def backward(self, grad_output=1.0):
        """dL/dlogits of the last :meth:`forward`, scaled by ``grad_output``.

        Parameters
        ----------
        grad_output : real scalar, default 1.0; an ndarray (N,) or (N, d1, ...) for ``reduction='none'``
            The upstream gradient of the loss (finite). Not the logits:
            ``backward`` uses what ``forward`` kept.

        Returns
        -------
        ndarray, the logits' shape ((N, K) or (N, K, d1, ...)) and dtype

        Shape
        -----
        ``grad_output``: a scalar, or the 'none' loss's shape; the result: the logits'.

        Examples
        --------
        >>> loss = SoftmaxCrossEntropy()
        >>> _ = loss(np.zeros((2, 2)), np.array([0, 1]))
        >>> loss.backward()
        array([[-0.25,  0.25],
               [ 0.25, -0.25]])
        """
        s = self.saved_values
        g = self._upstream(grad_output, s.logits.shape[:1] + s.logits.shape[2:], s.logits.dtype)
        return F.cross_entropy_backward(s.logits, s.targets, self.label_smoothing, grad_output=g,
                                        check_args=False, **s.kw)

    def get_config(self):
        config = dict(label_smoothing=self.label_smoothing)
        if self.weight is not None:
            config["weight"] = self.weight.tolist()
        if self.ignore_index != -100:
            config["ignore_index"] = self.ignore_index
        if self.reduction != "mean":
            config["reduction"] = self.reduction
        return config

    def extra_repr(self):
        parts = []
        if self.weight is not None:
            parts.append(f"weight={np.array2string(self.weight, separator=', ', threshold=8)}")
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        if self.reduction != "mean":
            parts.append(f"reduction={self.reduction!r}")
        return ", ".join(parts)

    @classmethod
    def examples(cls, rng):
        for smoothing in (0.0, 0.1):
            yield cls(label_smoothing=smoothing), (rng.standard_normal((4, 5)), rng.integers(0, 5, 4))
        yield cls(), (rng.standard_normal((4, 5)), rng.dirichlet(np.ones(5), size=4))
        labels = rng.integers(0, 5, 6)
        labels[[1, 4]] = -100
        yield cls(weight=[0.5, 2.0, 1.0, 3.0, 1.5], label_smoothing=0.1), (rng.standard_normal((6, 5)), labels)
        yield cls(ignore_index=0, reduction="sum"), (rng.standard_normal((6, 3)), rng.integers(0, 3, 6))
        labels = rng.integers(0, 4, (2, 3, 2))  # per-pixel labels of (N, K, H, W) logits
        labels[0, 1] = -100
        yield cls(weight=[0.5, 2.0, 1.0, 3.0], label_smoothing=0.1), (rng.standard_normal((2, 4, 3, 2)), labels)


@register_layer
class MSE(Loss):
    r"""Mean squared error, as :class:`torch.nn.MSELoss`.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element (``N * D``), not over the batch only, as PyTorch.

    Shape
    -----
    ``forward(outputs, targets)``: any shape, the same for both (targets are cast to
    the outputs' dtype); returns a float (an array of that shape for 'none').

    Notes
    -----
    :math:`L = \frac{1}{M}\sum_i (x_i - y_i)^2` over the ``M`` elements, so
    :math:`\partial L/\partial x_i = 2 (x_i - y_i) / M` ('sum': without the ``1/M``;
    'none': times the element-wise upstream gradient).

    Examples
    --------
    >>> loss = MSE()
    >>> loss(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
    2.5
    >>> loss.backward()
    array([[1., 2.]])
    """

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = check_reduction(reduction, "MSE")

    def forward(self, outputs, targets):
        targets = check_mse_args(outputs, targets, self.reduction, repr(self))
        self.save_for_backward(outputs=outputs, targets=targets)
        return mse_loss(outputs, targets, self.reduction, check_args=False)

    def backward(self, grad_output=1.0):
        """dL/doutputs of the last :meth:`forward`, scaled by ``grad_output``.

        Parameters
        ----------
        grad_output : real scalar, default 1.0; an ndarray for ``reduction='none'``
            The upstream gradient of the loss, as in :meth:`SoftmaxCrossEntropy.backward`
            (for 'none', of the outputs' shape).

        Returns
        -------
        ndarray
            dL/doutputs, the outputs' shape and dtype.

        Shape
        -----
        The outputs' shape (``grad_output`` too, with 'none').

        Examples
        --------
        >>> loss = MSE()
        >>> _ = loss(np.array([1.0, 3.0]), np.zeros(2))
        >>> loss.backward(2.0)
        array([2., 6.])
        """
        s = self.saved_values
        g = self._upstream(grad_output, s.outputs.shape, s.outputs.dtype)
        return mse_loss_backward(s.outputs, s.targets, self.reduction, grad_output=g, check_args=False)

    def get_config(self):
        return dict(reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))
        yield cls(reduction="sum"), (rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 3, 2, 2)))
