"""PNG images for ``minidl predict``: a small numpy-only PNG reader and the digit preparation.

The reader takes the PNGs people draw digits in: 8- or 16-bit grey, grey+alpha, RGB,
RGBA or palette, not interlaced; anything else is refused with a message. Sizes and the
decompressed length are capped before anything is inflated (a hostile file cannot
allocate more than :data:`MAX_PIXELS` pixels).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The largest image read, in pixels (4096 x 4096).
MAX_PIXELS = 4096 * 4096
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def _chunks(data: bytes, path):
    """``(type, body)`` of every chunk, CRCs checked."""
    pos = len(_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4 or zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ValueError(f"{path}: a damaged PNG (chunk {kind!r} is cut or its CRC is wrong)")
        yield kind, body
        pos += 12 + length
        if kind == b"IEND":
            return
    raise ValueError(f"{path}: a damaged PNG (no IEND chunk: the file is cut)")


def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int, path) -> np.ndarray:
    """Undo the PNG row filters (None, Sub, Up, Average, Paeth): bytes (height, stride)."""
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int64)
    prev = np.zeros(stride, np.int64)
    for r in range(height):
        kind, line = rows[r, 0], rows[r, 1:].astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = (line + prev) % 256
        elif kind == 1:  # Sub: a running sum along each of the bpp byte lanes
            padded = np.concatenate([line, np.zeros(-stride % bpp, np.int64)]).reshape(-1, bpp)
            cur = (np.cumsum(padded, axis=0) % 256).ravel()[:stride]
        elif kind in (3, 4):  # Average, Paeth: each byte needs the one decoded before it
            cur = line.copy()
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                if kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) % 256
        else:
            raise ValueError(f"{path}: a damaged PNG (row {r} has filter type {kind}, expected 0 to 4)")
        out[r] = prev = cur
    return out


def read_png(path) -> np.ndarray:
    """The image at ``path`` as grey levels in [0, 1], shape (H, W) (alpha composited on white)."""
    with open(path, "rb") as f:
        data = f.read(64 * 2**20 + 1)
    if not data.startswith(_SIGNATURE) or len(data) > 64 * 2**20:
        raise ValueError(f"{path}: not a PNG file (or larger than 64 MiB)")
    chunks = list(_chunks(data, path))
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise ValueError(f"{path}: a damaged PNG (no IHDR chunk first)")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if colour not in _CHANNELS or depth not in (8, 16) or interlace or (colour == 3 and depth != 8):
        raise ValueError(f"{path}: PNG of colour type {colour}, bit depth {depth}, interlace {interlace} is not "
                         "supported: save it as an 8-bit grey, RGB or RGBA PNG without interlacing")
    if not 0 < width * height <= MAX_PIXELS:
        raise ValueError(f"{path}: {width}x{height} pixels; at most {MAX_PIXELS} are read: scale the image down")
    channels, nbytes = _CHANNELS[colour], depth // 8
    stride = width * channels * nbytes
    expected = height * (stride + 1)
    raw = zlib.decompressobj().decompress(b"".join(b for k, b in chunks if k == b"IDAT"), expected + 1)
    if len(raw) != expected:
        raise ValueError(f"{path}: a damaged PNG (image data of {len(raw)} bytes, expected {expected})")
    pixels = _unfilter(np.frombuffer(raw, np.uint8), height, stride, channels * nbytes, path)
    if nbytes == 2:
        pixels = pixels[:, 0::2] * 256 + pixels[:, 1::2]
    img = pixels.reshape(height, width, channels) / (2 ** depth - 1)
    if colour == 3:
        palette = next((b for k, b in chunks if k == b"PLTE"), b"")
        table = np.frombuffer(palette, np.uint8).reshape(-1, 3) / 255.0
        index = pixels.reshape(height, width)
        if index.max() >= len(table):
            raise ValueError(f"{path}: a damaged PNG (palette index {index.max()} of {len(table)} colours)")
        img = table[index]
    alpha = img[..., -1:] if channels in (2, 4) else 1.0
    colours = img[..., :3] if channels >= 3 else img[..., :1]
    grey = (colours.mean(axis=-1, keepdims=True) * alpha + (1 - alpha)).squeeze(-1)  # over white
    return grey


def _area_resize(img: np.ndarray, shape) -> np.ndarray:
    """``img`` (H, W) resampled to ``shape`` by averaging the source area under each target pixel."""
    out = img
    for axis, n in enumerate(shape):
        size = out.shape[axis]
        edges = np.linspace(0, size, n + 1)
        weights = np.clip(np.minimum(edges[1:, None], np.arange(1, size + 1)) -
                          np.maximum(edges[:-1, None], np.arange(size)), 0, None)
        weights /= weights.sum(axis=1, keepdims=True)
        out = np.moveaxis(np.tensordot(weights, np.moveaxis(out, axis, 0), axes=1), 0, axis)
    return out


def as_digit(grey: np.ndarray, shape) -> np.ndarray:
    """A drawn digit as the datasets have it: ink high on a 0 background, its bounding box centred in a
    square, area-resampled to ``shape`` (H, W), scaled to [0, 1]. The box fills the square for the 8 x 8
    digits (as scikit-learn's do) and 20 of 28 pixels for 28 x 28 (as MNIST's do)."""
    ink = 1 - grey if np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])) > 0.5 else grey
    ink = ink - ink.min()
    if ink.max() > 0:
        ink = ink / ink.max()
        rows, cols = np.nonzero(ink > 0.1)
        ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    fill = 20 / 28 if tuple(shape) == (28, 28) else 1.0
    side = int(round(max(ink.shape) / fill))
    top, left = (side - ink.shape[0]) // 2, (side - ink.shape[1]) // 2
    square = np.zeros((side, side))
    square[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    out = _area_resize(square, shape)
    return out / out.max() if out.max() > 0 else out
