"""What a layer's forward accepts, declared once per class (Keras's ``InputSpec`` idea)."""

from __future__ import annotations

from typing import NamedTuple

from ..validation import check_array, check_float_dtype

__all__ = ["InputSpec"]


class InputSpec(NamedTuple):
    """The rule a layer's input follows; :meth:`Layer.check_input <minidl.layers.Layer.check_input>`
    applies it, with messages that name the layer, what it expected and what it received.

    Parameters
    ----------
    ndim : int, tuple of int or None, default None
        The rank accepted (the message names it), or the ranks (the message shows
        ``layout``); None: any.
    layout : str, default ''
        How the message names the axes, e.g. ``'(N, C, H, W)'``.
    floating : bool, default True
        Require a floating-point dtype (a layer that checks its input's dtype
        against its weights' says False and does that itself).

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import InputSpec
    >>> InputSpec(ndim=4, layout="(N, C, H, W)").check(np.zeros((2, 8, 8)), "MyLayer()")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: MyLayer(): expected input with 4 dimensions (N, C, H, W), got 3 dimensions with shape (2, 8, 8). For ...
    """

    ndim: int | tuple | None = None
    layout: str = ""
    floating: bool = True

    def check(self, x, where, name="input"):
        """Raise the TypeError/ValueError that says what ``x`` should be, or return it.

        Parameters
        ----------
        x : ndarray
        where : str or Layer
            Who checks, named in the message (a layer: its ``repr``, formatted only on error).
        name : str, default 'input'

        Returns
        -------
        ndarray
            ``x`` itself.

        Shape
        -----
        ``x``: ``ndim`` dimensions, when given.
        """
        check_array(x, name, where)
        ranks = (self.ndim,) if isinstance(self.ndim, int) else self.ndim
        if ranks is not None and x.ndim not in ranks:
            one = isinstance(self.ndim, int)  # one rank: the message names it, with a hint for images
            wanted = f"with {self.ndim} dimensions {self.layout}" if one else f"of shape {self.layout}"
            raise ValueError(f"{where}: expected {name} {wanted}, got {x.ndim} dimensions with shape {x.shape}."
                             f"{_hint(self.ndim, x.ndim) if one else ''}")
        if self.floating:
            check_float_dtype(x, name, where)
        return x


def _hint(ndim, got):
    if ndim == 4 and got == 3:
        return " For a single image add a batch axis: x[None]."
    if ndim == 4 and got == 2:
        return " For 8x8 digits use x.reshape(-1, 1, 8, 8)."
    return ""
