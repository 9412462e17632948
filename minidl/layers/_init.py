"""PyTorch's default initialisation, drawn from an explicit generator."""

from __future__ import annotations

import math

import numpy as np

from ..parameter import deferring, placeholder

_GLOBAL: list = [None]  # the generator of mdl.manual_seed, shared by every layer built with rng=None


def manual_seed(seed) -> None:
    """Seed the generator every layer built with ``rng=None`` draws from, as :func:`torch.manual_seed`.

    Without it, such layers draw from fresh unseeded generators (different each run); after it, the
    layers built in the same order get the same weights and Dropout masks in every run. A layer's own
    ``rng=`` (a Generator or an int seed) still wins.

    Parameters
    ----------
    seed : int
        At least 0.

    Raises
    ------
    TypeError, ValueError
        Not an int, or negative.

    Examples
    --------
    >>> import minidl as mdl
    >>> mdl.manual_seed(0); a = mdl.layers.Dense(3, 3)
    >>> mdl.manual_seed(0); b = mdl.layers.Dense(3, 3)
    >>> bool((a.weight.data == b.weight.data).all())
    True
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"minidl.manual_seed: seed must be an int. Received: {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"minidl.manual_seed: seed must be >= 0. Received: seed={seed!r}")
    _GLOBAL[0] = np.random.default_rng(int(seed))


def as_generator(rng, where: str) -> np.random.Generator:
    """``rng`` itself, the manual_seed generator (else a fresh default one) for None, or one seeded from an int."""
    if rng is None:
        return _GLOBAL[0] if _GLOBAL[0] is not None else np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{where}: an int rng seed must be >= 0. Received: rng={rng!r}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{where}: rng must be a numpy.random.Generator, an int seed or None. "
        f"Received: {type(rng).__name__}. Use rng=np.random.default_rng(seed)."
    )


def float_dtype(dtype, where: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError) as exc:  # numpy raises either for nonsense specs
        raise TypeError(f"{where}: dtype must be a numpy floating dtype. Received: dtype={dtype!r}") from exc
    if not np.issubdtype(dt, np.floating):
        raise TypeError(
            f"{where}: dtype must be a floating-point dtype such as np.float32 or np.float64. "
            f"Received: dtype={dt}."
        )
    return dt


def kaiming_uniform(rng: np.random.Generator, shape, fan_in: int, dtype) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's ``kaiming_uniform_(a=sqrt(5))``.

    The same bound is PyTorch's default for the bias. Under
    :func:`minidl.parameter.deferred_init` nothing is drawn or allocated:
    a zero-strided placeholder of ``shape`` is returned.
    """
    if deferring():
        return placeholder(shape, dtype)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
