"""Image datasets from files: IDX (the MNIST family), ``.npz`` archives and the user's own arrays.

Everything returns the layout of :func:`minidl.data.load_digits`: ``X`` float32
of shape (N, 1, H, W) scaled to [0, 1] and ``y`` int64 labels. Re-exported by
:mod:`minidl.data`.
"""

from __future__ import annotations

import gzip
import math
import os
import zipfile
import zlib

import numpy as np

from ..io import MAX_LOAD_BYTES, archive
from ..validation import check_array

__all__ = ["load_idx", "load_mnist", "load_npz", "from_arrays", "MNIST_FILES"]

# IDX type codes -> numpy dtypes (the data are big-endian)
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_MAX_RATIO = 1032  # deflate cannot expand one compressed byte into more than ~1032 bytes
_CHUNK = 1 << 22

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MNIST_URLS = {
    "mnist": "http://yann.lecun.com/exdb/mnist/ (mirror: https://storage.googleapis.com/cvdf-datasets/mnist/)",
    "fashion": "https://github.com/zalandoresearch/fashion-mnist "
               "(files: http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/)",
    "kmnist": "https://github.com/rois-codh/kmnist (files: http://codh.rois.ac.jp/kmnist/dataset/kmnist/)",
}


def _read_exact(f, n, where, what):
    """Read exactly ``n`` bytes of a header (small), or raise ValueError naming ``what``."""
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"{where}: the file is truncated: its {what} needs {n} bytes, only {len(data)} are "
                         "left. Download the file again.")
    return data


def _fill(f, out, where, declared):
    """Read into the bytes of ``out`` in bounded chunks; then check that nothing follows."""
    view = memoryview(out).cast("B")
    got = 0
    while got < len(view):
        n = f.readinto(view[got:got + _CHUNK])
        if not n:
            raise ValueError(f"{where}: the file is truncated: the header declares {declared} and {len(view)} "
                             f"data bytes, the file holds only {got}. Download the file again.")
        got += n
    if f.read(1):
        raise ValueError(f"{where}: the file has bytes after the {len(view)} data bytes its header declares "
                         f"({declared}): it is not a valid IDX file (or not the one intended).")


def load_idx(file):
    """Read an IDX file (the format of MNIST), gzipped or not, into a numpy array.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions,
    then each dimension as a big-endian uint32; the big-endian data follow.

    Parameters
    ----------
    file : str or os.PathLike
        The file; gzip compression is detected from its first bytes (the name
        does not matter).

    Returns
    -------
    numpy.ndarray
        Of the declared shape and type, in native byte order.

    Raises
    ------
    ValueError
        For a wrong magic number, an unknown type code, a truncated file or
        one with bytes after its declared data. Reads are bounded: nothing is
        read past the declared size (plus one byte, to detect trailing data),
        and an uncompressed file's declared size is checked against its length
        before anything is allocated.

    Examples
    --------
    >>> X = load_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> X.shape, X.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    if not isinstance(file, (str, os.PathLike)):
        raise TypeError(f"load_idx: file must be a path (str or os.PathLike). Received: {type(file).__name__}.")
    where = f"load_idx({os.fspath(file)!r})"
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{where}: no such file. Check the path (absolute: {os.path.abspath(file)}).")
    size = os.path.getsize(file)
    with open(file, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            return _read_idx(f, where, size, compressed)
        except (OSError, EOFError, zlib.error) as exc:  # a damaged gzip stream
            raise ValueError(f"{where}: the gzip data are damaged ({exc}). Download the file again.") from exc


def _read_idx(f, where, size, compressed):
    magic = _read_exact(f, 4, where, "magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        codes = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{where}: not an IDX file: the magic number must be 00 00 <type> <ndim> with type one "
                         f"of {codes}. Received: {magic.hex(' ')}.")
    dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
    if ndim == 0:
        raise ValueError(f"{where}: the header declares 0 dimensions; an IDX file has at least 1.")
    shape = tuple(int(d) for d in np.frombuffer(_read_exact(f, 4 * ndim, where, "dimensions"), ">u4"))
    nbytes = math.prod(shape) * dtype.itemsize
    declared = f"shape {shape} of {dtype.name}"
    if compressed:
        limit = _GZIP_MAX_RATIO * size + 1024
        if nbytes > limit:
            raise ValueError(f"{where}: the header declares {declared} ({nbytes} bytes), more than a {size}-byte "
                             "gzip file can hold: the file is truncated or damaged. Download it again.")
    else:
        left = size - 4 - 4 * ndim
        if nbytes > left:
            raise ValueError(f"{where}: the file is truncated: the header declares {declared} ({nbytes} data "
                             f"bytes), the file holds only {left}. Download the file again.")
        if nbytes < left:
            raise ValueError(f"{where}: the file has {left - nbytes} bytes after the {nbytes} data bytes its header "
                             f"declares ({declared}): it is not a valid IDX file (or not the one intended).")
    try:
        out = np.empty(shape, dtype)
    except ValueError as exc:  # more dimensions than numpy allows (64; 32 before numpy 2): name the file
        raise ValueError(f"{where}: the header declares {ndim} dimensions, more than numpy arrays can have ({exc}). "
                         "The file is damaged or not an IDX file.") from exc
    _fill(f, out, where, declared)
    if not dtype.isnative:
        out = out.byteswap(inplace=True).view(dtype.newbyteorder())
    return out


def _check_kind(kind):
    if kind not in _MNIST_URLS:
        raise ValueError(f"load_mnist: kind must be one of {sorted(_MNIST_URLS)}. Received: kind={kind!r}")


def _find(folder, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def load_mnist(path, kind="mnist"):
    """MNIST, Fashion-MNIST or KMNIST from the four standard IDX files in a folder.

    Parameters
    ----------
    path : str or os.PathLike
        The folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each gzipped
        (``.gz``) or not. The three datasets use the same file names.
    kind : {"mnist", "fashion", "kmnist"}
        Which dataset the folder holds (names the download page in errors).

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        ``X`` float32 of shape (N, 1, 28, 28) scaled to [0, 1] (pixel / 255);
        ``y`` int64 labels 0-9: the layout of :func:`minidl.data.load_digits`.

    Notes
    -----
    Download the files from http://yann.lecun.com/exdb/mnist/ (MNIST),
    https://github.com/zalandoresearch/fashion-mnist (Fashion-MNIST) or
    https://github.com/rois-codh/kmnist (KMNIST). The 60,000 training images
    take 188 MB as float32.

    Examples
    --------
    >>> (X, y), (Xt, yt) = load_mnist("~/data/mnist")  # doctest: +SKIP
    >>> X.shape, Xt.shape  # doctest: +SKIP
    ((60000, 1, 28, 28), (10000, 1, 28, 28))
    """
    _check_kind(kind)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_mnist: path must be a folder (str or os.PathLike). Received: {type(path).__name__}.")
    folder = os.path.expanduser(os.fspath(path))
    found = {key: _find(folder, name) for key, name in MNIST_FILES.items()}
    missing = [name for key, name in MNIST_FILES.items() if found[key] is None]
    if missing:
        looked = ", ".join(f"{n} (or {n}.gz)" for n in missing)
        state = "" if os.path.isdir(folder) else " (the folder does not exist)"
        raise FileNotFoundError(
            f"load_mnist(kind={kind!r}): missing {looked} in {os.path.abspath(folder)}{state}. Download the four "
            f"files from {_MNIST_URLS[kind]} into that folder (gzipped or not).")
    out = []
    for part in ("train", "test"):
        images = load_idx(found[f"{part}_images"])
        labels = load_idx(found[f"{part}_labels"])
        where = f"load_mnist({part})"
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(f"{where}: expected images of shape (N, H, W) and labels of shape (N,). Received: "
                             f"{images.shape} in {found[f'{part}_images']} and {labels.shape} in "
                             f"{found[f'{part}_labels']}. Check that the files are not swapped.")
        if len(images) != len(labels):
            raise ValueError(f"{where}: {found[f'{part}_images']} holds {len(images)} images but "
                             f"{found[f'{part}_labels']} holds {len(labels)} labels; the files do not belong "
                             "together. Download them again.")
        out.append((_images(images, where), _labels(labels, where)))
    return tuple(out)


def _images(X, where):
    """(N, H, W) or (N, C, H, W) -> float32 (N, C, H, W); uint8 scaled to [0, 1]."""
    check_array(X, "X", where)
    if X.ndim not in (3, 4):
        raise ValueError(f"{where}: X must have shape (N, H, W) or (N, C, H, W). Received: shape {X.shape}.")
    if X.ndim == 3:
        X = X[:, None]
    if X.dtype == np.uint8:
        out = X.astype(np.float32)
        return np.divide(out, np.float32(255.0), out=out)
    if X.dtype.kind != "f":
        raise TypeError(f"{where}: X must be uint8 (scaled to [0, 1] here) or floating point. Received: "
                        f"dtype={X.dtype}. Scale it yourself, e.g. (X / X.max()).astype(np.float32).")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError(f"{where}: X contains nan or inf. Clean or drop those images first.")
    return X


def _labels(y, where):
    check_array(y, "y", where)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{where}: y must be a 1-D array of integer class labels. Received: shape {y.shape}, "
                         f"dtype={y.dtype}. Convert one-hot targets with y.argmax(axis=1).")
    if len(y) and y.min() < 0:
        raise ValueError(f"{where}: class labels must be >= 0. Received: min(y)={int(y.min())}.")
    return y.astype(np.int64)


def from_arrays(X, y, test_size=0.2, seed=0):
    """The user's own images, split and shaped like :func:`minidl.data.load_digits`.

    Parameters
    ----------
    X : numpy.ndarray of shape (N, H, W) or (N, C, H, W)
        uint8 pixels (divided by 255) or floats (kept as they are, cast to float32).
    y : numpy.ndarray of shape (N,)
        Integer class labels >= 0.
    test_size : float in (0, 1)
        Fraction held out, stratified by class (every class needs >= 2 images).
    seed : int
        Seeds the split.

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        ``X`` float32 (N, C, H, W), ``y`` int64.

    Shape
    -----
    (N, H, W) or (N, C, H, W) -> (N_train, C, H, W) and (N_test, C, H, W), ``C = 1``
    for (N, H, W); ``N_test = ceil(test_size * N)`` as scikit-learn's split.

    Examples
    --------
    >>> X = np.random.default_rng(0).integers(0, 256, (20, 5, 5), dtype=np.uint8)
    >>> (Xa, ya), (Xb, yb) = from_arrays(X, np.arange(20) % 2, test_size=0.25)
    >>> Xa.shape, Xa.dtype, Xb.shape, yb.dtype
    ((15, 1, 5, 5), dtype('float32'), (5, 1, 5, 5), dtype('int64'))
    """
    where = "from_arrays"
    if not isinstance(test_size, float) or not 0.0 < test_size < 1.0:
        raise ValueError(f"{where}: test_size must be a float in (0, 1). Received: test_size={test_size!r}")
    X, y = _images(X, where), _labels(y, where)
    if len(X) != len(y):
        raise ValueError(f"{where}: X and y must have the same number of samples; got {len(X)} and {len(y)}.")
    counts = np.bincount(y) if len(y) else np.zeros(0, int)
    if len(y) < 2 or counts[counts > 0].min() < 2:
        raise ValueError(f"{where}: a stratified split needs at least 2 images of every class. Received: class "
                         f"counts {dict(enumerate(counts.tolist()))}. Drop the rare classes or add images.")
    from sklearn.model_selection import train_test_split

    try:
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=seed,
                                                            stratify=y)
    except ValueError as exc:  # e.g. fewer test samples than classes
        raise ValueError(f"{where}: cannot split {len(y)} images of {int((counts > 0).sum())} classes with "
                         f"test_size={test_size}: {exc} Use a larger test_size or more images.") from exc
    return (np.ascontiguousarray(X_train), y_train), (np.ascontiguousarray(X_test), y_test)


def load_npz(path, test_size=0.2, seed=0, *, max_bytes=MAX_LOAD_BYTES):
    """The user's own images from a ``.npz`` archive (``np.savez``).

    Parameters
    ----------
    path : str or os.PathLike
        An archive with the keys ``X_train``, ``y_train``, ``X_test``, ``y_test``
        (used as they are), or ``X`` and ``y`` (split by :func:`from_arrays`).
        Images are (N, H, W) or (N, C, H, W), uint8 or float; labels integers.
        The archive is read without pickle.
    test_size, seed
        For the ``X``/``y`` form, as in :func:`from_arrays`.
    max_bytes : int or None, default ``minidl.io.MAX_LOAD_BYTES`` (2 GiB)
        The most bytes the arrays read may take, as :func:`minidl.load`'s: every
        member's ``.npy`` header and size are checked against it before anything is
        decompressed. None: no limit (for files you trust).

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        ``X`` float32 (N, C, H, W) (uint8 divided by 255), ``y`` int64.

    Raises
    ------
    FileNotFoundError
        No such file.
    TypeError
        ``path`` or ``max_bytes`` of the wrong type.
    ValueError
        Not a ``.npz`` archive (a ``.npy`` file included), damaged, missing keys,
        members larger than ``max_bytes`` or whose header does not match their
        size, arrays of the wrong shape or dtype; the message names the file.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     np.savez(os.path.join(tmp, "mine.npz"), X=np.zeros((10, 8, 8), np.uint8), y=np.arange(10) % 2)
    ...     (X, y), (Xt, yt) = load_npz(os.path.join(tmp, "mine.npz"))
    >>> X.shape, X.dtype, len(Xt)
    ((8, 1, 8, 8), dtype('float32'), 2)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_npz: path must be a file path (str or os.PathLike). Received: {type(path).__name__}.")
    where = f"load_npz({os.fspath(path)!r})"
    if max_bytes is not None and (type(max_bytes) is not int or max_bytes < 0):
        raise TypeError(f"{where}: max_bytes must be an int >= 0 or None. Received: {max_bytes!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: no such file. Check the path (absolute: {os.path.abspath(path)}).")
    arrays = _read_npz(path, where, max_bytes)
    if "X" not in arrays:
        parts = []
        for part in ("train", "test"):
            X, y = _images(arrays[f"X_{part}"], where), _labels(arrays[f"y_{part}"], where)
            if len(X) != len(y):
                raise ValueError(f"{where}: X_{part} and y_{part} must have the same number of samples; "
                                 f"got {len(X)} and {len(y)}.")
            parts.append((X, y))
        return tuple(parts)
    return from_arrays(arrays["X"], arrays["y"], test_size=test_size, seed=seed)


_NPZ_FORMS = (("X_train", "y_train", "X_test", "y_test"), ("X", "y"))


def _read_npz(path, where, max_bytes) -> dict:
    """The members of one of load_npz's two forms, read with :mod:`minidl.io.archive`'s bounded reads:
    every header, and their total size against ``max_bytes``, checked before anything is decompressed."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise ValueError(f"{where}: this is a .npy file (one array, written by np.save); load_npz reads a .npz "
                         "archive of images and labels: np.savez(path, X=images, y=labels).")
    if magic[:4] != b"PK\x03\x04":
        raise ValueError(f"{where}: not a .npz (zip) archive. Write one with np.savez(path, X=images, y=labels).")
    try:
        with archive.open_npz(path) as zf:
            keys = sorted(n[:-4] for n in zf.namelist() if n.endswith(".npy"))
            form = next((form for form in _NPZ_FORMS if set(form) <= set(keys)), ())
            headers = {key: archive.member_header(zf, key) for key in form}
            total = sum(info.file_size for _, _, info in headers.values())
            if max_bytes is not None and total > max_bytes:
                raise ValueError(f"the arrays take {total:,} bytes, more than max_bytes={max_bytes:,}; pass a "
                                 "larger max_bytes to load_npz if you trust this file")
            arrays = {key: archive.read_member(zf, info) for key, (_, _, info) in headers.items()}
    except (ValueError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{where}: {exc}") from exc
    if not arrays:
        raise ValueError(f"{where}: the archive must hold X_train, y_train, X_test, y_test (or X and y). "
                         f"Received keys: {keys}. Save it with np.savez(path, X=images, y=labels).")
    return arrays
