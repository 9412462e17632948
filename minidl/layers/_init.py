"""PyTorch's default initialisation, drawn from an explicit generator."""

from __future__ import annotations

import math

import numpy as np

from ..parameter import deferring, placeholder


def as_generator(rng, where: str) -> np.random.Generator:
    """``rng`` itself, a fresh default generator for None, or one seeded from an int."""
    if rng is None:
        return np.random.default_rng()
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
