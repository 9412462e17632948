"""Dropout layers: Dropout and Dropout2D."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional.dropout import check_dropout_p
from ._init import as_generator
from .base import InputSpec, Layer, Unsupported
from .registry import register_layer

__all__ = ["Dropout", "Dropout2D"]


class _SameDraws:
    """Stands in for a layer's Generator in :meth:`Dropout.examples`: ``random`` returns the same
    draws at every call, so the gradient checker's forward passes all see one mask (the forward
    and backward checked are Dropout's own)."""

    def __init__(self, seed):
        self.seed = seed

    def random(self, shape, dtype=np.float64):
        return np.random.default_rng(self.seed).random(shape, dtype=dtype)


@register_layer
class Dropout(Layer):
    r"""Inverted dropout, as :class:`torch.nn.Dropout`: zero each value with probability ``p``.

    Parameters
    ----------
    p : float in [0, 1], default 0.5
        The drop probability; kept values are scaled by ``1 / (1 - p)``.
        ``p = 1`` zeroes everything (as torch), ``p = 0`` is the identity.
    rng : int seed, numpy.random.Generator or None
        Draws the masks (one per training-mode forward). The same seed gives
        the same masks; None draws from fresh OS entropy.

    Shape
    -----
    Any input shape; the output has the input's shape and dtype.

    Notes
    -----
    Training mode: ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)``
    drawn from the layer's generator and passed to
    :func:`minidl.functional.dropout`; the mask (1 byte per value) is kept for
    backward, which applies the same mask and scale:
    ``dx = dy * m / (1 - p)``. Eval mode: the identity (the input itself is
    returned, as torch), nothing drawn, nothing kept.

    ``get_config()`` holds ``p`` only: a layer saved with :func:`minidl.save`
    and loaded does not carry its generator's state (it draws from fresh
    entropy; set ``layer.rng`` to seed it). Trainer checkpoints do carry it,
    so a resumed run draws the masks of an uninterrupted one.

    Examples
    --------
    >>> d = Dropout(0.5, rng=0)
    >>> y = d(np.ones((2, 4)))
    >>> sorted(set(y.ravel().tolist()))
    [0.0, 2.0]
    >>> d.eval()(np.ones(3))
    array([1., 1., 1.])
    """

    onnx_op, torch_modules, torch_args = "Identity", ("Dropout",), {"p": "p"}  # eval form: the identity
    onnx_imports = ("Dropout",)
    input_spec = InputSpec()

    @classmethod
    def from_onnx_node(cls, node):
        """The Dropout of an ONNX ``Dropout`` node in inference mode (the identity until trained).

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode
            Its ``ratio`` input (default 0.5) becomes ``p``.

        Returns
        -------
        Dropout

        Raises
        ------
        Unsupported
            A ratio or training_mode computed at run time, ``training_mode`` true (it drops at
            inference), the mask output declared.
        """
        ratio, training = (tuple(node.consts) + (None, None))[1:3]
        if node.tensors != 1 or node.outputs > 1:
            raise Unsupported("with its ratio or training_mode computed at run time, or its mask as an output")
        if training is not None and bool(np.all(training)):
            raise Unsupported("with training_mode=True (it drops at inference). Export the model in eval mode")
        return cls(0.5 if ratio is None else float(ratio))

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        where = type(self).__name__
        self.p = check_dropout_p(p, where)
        self.rng = as_generator(rng, where)


    def mask_shape(self, shape) -> tuple:
        """The shape of the mask drawn for an input of ``shape`` (the whole shape here).

        Parameters
        ----------
        shape : tuple of int
            The input's shape.

        Returns
        -------
        tuple of int
            The mask's shape (it broadcasts against the input).

        Examples
        --------
        >>> Dropout(0.5).mask_shape((2, 3, 4, 4))
        (2, 3, 4, 4)
        """
        return tuple(shape)

    def draw_mask(self, shape) -> np.ndarray:
        """A keep-mask for an input of ``shape``: True with probability ``1 - p``.

        Uniform float32 draws compared with ``p`` (a transient 4 bytes per mask
        value); the bool mask takes 1.

        Parameters
        ----------
        shape : tuple of int
            The input's shape.

        Returns
        -------
        ndarray of bool, shape ``mask_shape(shape)``

        Examples
        --------
        >>> Dropout(0.5, rng=0).draw_mask((2, 3)).dtype
        dtype('bool')
        """
        return self.rng.random(self.mask_shape(shape), dtype=np.float32) >= np.float32(self.p)

    def forward(self, x):
        self.check_input(x)
        if not self.training:  # the identity (kept for backward only inside minidl.enable_grad)
            self.save_for_backward(mask=None, shape=x.shape, dtype=x.dtype)
            return x
        mask = self.draw_mask(x.shape)
        self.save_for_backward(mask=mask, shape=x.shape, dtype=x.dtype)
        return F.dropout(x, mask, self.p, where=self)

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        mask, grad_output = s.mask, self.check_grad_output(grad_output, s.shape, s.dtype)
        if mask is None:  # an eval-mode forward: the identity
            return grad_output
        return F.dropout_backward(grad_output, mask, self.p, where=self)

    @classmethod
    def examples(cls, rng):
        layer = cls(0.3)
        layer.rng = _SameDraws(int(rng.integers(2**31)))  # one mask for gradcheck's many forward passes
        yield layer, (rng.standard_normal((4, 6)),)


@register_layer
class Dropout2D(Dropout):
    r"""Channel dropout, as :class:`torch.nn.Dropout2d`: zero whole channels of (N, C, H, W).

    Parameters
    ----------
    p : float in [0, 1], default 0.5
        The probability that a channel of a sample is zeroed; kept channels
        are scaled by ``1 / (1 - p)``.
    rng : int seed, numpy.random.Generator or None

    Shape
    -----
    Input (N, C, H, W); output of the same shape.

    Notes
    -----
    As :class:`Dropout` with a mask of shape (N, C, 1, 1), one draw per
    channel of each sample, broadcast over H and W (for the backward too).

    Examples
    --------
    >>> y = Dropout2D(0.5, rng=0)(np.ones((2, 3, 4, 4)))
    >>> bool(np.all((y == 0).all(axis=(2, 3)) | (y == 2).all(axis=(2, 3))))
    True
    """

    onnx_op, torch_modules = "Identity", ("Dropout2d",)  # eval form: the identity
    input_spec = InputSpec(ndim=4, layout="(N, C, H, W)")


    def mask_shape(self, shape) -> tuple:
        """(N, C, 1, 1): one draw per channel of each sample.

        Parameters
        ----------
        shape : tuple of int
            The input's shape, (N, C, H, W).

        Returns
        -------
        tuple of int

        Examples
        --------
        >>> Dropout2D(0.5).mask_shape((2, 3, 4, 4))
        (2, 3, 1, 1)
        """
        return tuple(shape[:2]) + (1, 1)

    @classmethod
    def examples(cls, rng):
        layer = cls(0.5)
        layer.rng = _SameDraws(int(rng.integers(2**31)))
        yield layer, (rng.standard_normal((3, 4, 2, 3)),)
