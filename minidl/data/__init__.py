"""Datasets and batching."""

from __future__ import annotations

import numpy as np

from ..validation import positive_int
from .datasets import from_arrays, load_idx, load_mnist, load_npz
from .transforms import Compose, RandomRotation, RandomShift, rotate_images, shift_images

__all__ = ["load_digits", "load_mnist", "load_idx", "load_npz", "from_arrays", "iterate_batches", "num_batches",
           "Compose", "RandomRotation", "RandomShift", "rotate_images", "shift_images"]


def load_digits(test_size=0.2, seed=0):
    """scikit-learn's bundled 8x8 digits, split and shaped for a CNN.

    Parameters
    ----------
    test_size : float in (0, 1)
        Fraction of the 1,797 images held out, stratified by class.
    seed : int
        Seeds the split.

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        ``X`` float32 of shape (N, 1, 8, 8) scaled to [0, 1] (pixel / 16);
        ``y`` int64 labels 0-9.

    Examples
    --------
    >>> (X, y), (Xt, yt) = load_digits()
    >>> X.shape, X.dtype, y.dtype, len(Xt)
    ((1437, 1, 8, 8), dtype('float32'), dtype('int64'), 360)
    """
    if not isinstance(test_size, float) or not 0.0 < test_size < 1.0:
        raise ValueError(f"load_digits: test_size must be a float in (0, 1). Received: test_size={test_size!r}")
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    X = (bunch.images.astype(np.float32) / np.float32(16.0))[:, None, :, :]
    y = bunch.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y)
    return (np.ascontiguousarray(X_train), y_train), (np.ascontiguousarray(X_test), y_test)


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches for ``n`` samples, the last partial one included unless ``drop_last``.

    Parameters
    ----------
    n : int
        Samples.
    batch_size : int >= 1
    drop_last : bool, default False
        Leave out the last partial batch (as :func:`iterate_batches` does with it).

    Returns
    -------
    int

    Examples
    --------
    >>> num_batches(10, 4), num_batches(10, 4, drop_last=True)
    (3, 2)
    """
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(X, y=None, batch_size=32, shuffle=True, seed=None, rng=None, drop_last=False):
    """Yield ``(X_batch, y_batch)`` (or ``X_batch`` when ``y`` is None).

    Every sample appears exactly once per pass (shuffling is without
    replacement) and the last partial batch is kept, unless ``drop_last``.

    Parameters
    ----------
    X, y : arrays with the same first dimension
        numpy arrays, ``np.memmap`` s or any array-like with ``__len__`` and
        indexing by a sorted integer array (an h5py dataset, a zarr array):
        only one batch at a time is read, as a plain in-memory numpy array.
    batch_size : int >= 1
    shuffle : bool
    seed : int, optional
        Seeds the permutation; ignored when ``rng`` is given.
    rng : numpy.random.Generator, optional
        Draws the permutation (the Trainer passes one, so epochs differ).
    drop_last : bool, default False
        Leave out the last batch when it is smaller than ``batch_size`` (torch's
        ``DataLoader(drop_last=True)``): after shuffling, so the samples left out
        differ from pass to pass.

    Yields
    ------
    (ndarray, ndarray) or ndarray
        A batch of ``X`` and the matching batch of ``y``; ``X``'s batch alone when
        ``y`` is None.

    Shape
    -----
    ``X`` (N, ...) and ``y`` (N, ...) -> batches (B, ...) with ``B = batch_size``
    (the last one ``N - (num_batches - 1) * batch_size``).

    Examples
    --------
    >>> [len(b) for b, _ in iterate_batches(np.zeros((10, 2)), np.zeros(10), batch_size=4, seed=0)]
    [4, 4, 2]
    >>> [len(b) for b in iterate_batches(np.zeros((10, 2)), batch_size=4, drop_last=True)]
    [4, 4]
    """
    batch_size = positive_int(batch_size, "batch_size", "iterate_batches")
    n = len(X)
    if y is not None and len(y) != n:
        raise ValueError(
            f"iterate_batches: X and y must have the same number of samples; got {n} and {len(y)}."
        )
    if shuffle:
        order = (rng if rng is not None else np.random.default_rng(seed)).permutation(n)
    else:
        order = None
    for start in range(0, n - n % batch_size if drop_last else n, batch_size):
        if order is None:
            idx = slice(start, start + batch_size)
        else:
            idx = order[start : start + batch_size]
        yield (_take(X, idx), _take(y, idx)) if y is not None else _take(X, idx)


def _take(A, idx):
    """``A[idx]`` as a plain ndarray; an out-of-memory array (np.memmap, h5py, ...) is read in increasing
    index order (sequential reads; h5py requires it), then put in ``idx``'s order."""
    if type(A) is np.ndarray or isinstance(idx, slice):
        return np.asarray(A[idx])
    order = np.argsort(idx, kind="stable")
    return np.asarray(A[idx[order]])[np.argsort(order, kind="stable")]
