"""Gradients of a model in eval mode: :func:`enable_grad`.

minidl's layers keep what ``backward`` needs only in training mode: in eval mode
(``model.eval()``, ``Trainer.predict``/``evaluate``) a forward pass holds no memory
after it returns. PyTorch keeps those caches in eval mode too (its ``no_grad`` is
a separate switch), so that gradients of an eval-mode model can be taken: input
gradients for saliency maps or adversarial examples (FGSM), or fine-tuning with
frozen BatchNorm statistics. Inside :func:`enable_grad` minidl does the same.
"""

from __future__ import annotations

import contextlib
import contextvars

__all__ = ["enable_grad", "eval_caches_enabled"]

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("minidl_eval_caches", default=False)


@contextlib.contextmanager
def enable_grad():
    """Within the block, layers in eval mode keep what ``backward`` needs, as in training.

    Eval mode still decides how the layers compute (BatchNorm normalises with its
    running statistics and updates nothing, Dropout passes its input through); the
    block only decides whether a forward pass keeps its backward caches, so that
    ``backward`` gives the gradients of that eval-mode computation, as PyTorch's
    ``model.eval()`` followed by ``loss.backward()`` does. It applies to the code in
    the block (this thread or task), not to other threads.

    Yields
    ------
    None
        Only a context.

    Examples
    --------
    >>> import numpy as np
    >>> import minidl as mdl
    >>> model = mdl.Sequential(mdl.layers.Dense(3, 2, rng=0), mdl.layers.Dropout(0.5, rng=0)).eval()
    >>> x = np.ones((1, 3), np.float32)
    >>> with mdl.enable_grad():
    ...     y = model(x)
    ...     dx = model.backward(np.ones_like(y))  # the gradient of the eval-mode model
    >>> np.allclose(dx, model[0].weight.data.sum(axis=0))  # Dropout is the identity in eval mode
    True
    """
    token = _ENABLED.set(True)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def eval_caches_enabled() -> bool:
    """True inside :func:`enable_grad` (in this context).

    Returns
    -------
    bool

    Examples
    --------
    >>> eval_caches_enabled()
    False
    """
    return _ENABLED.get()
