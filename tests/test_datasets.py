"""minidl.data.load_idx / load_mnist / load_npz / from_arrays on small IDX files written here (no network)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import minidl as mdl
from minidl.data import from_arrays, load_idx, load_mnist, load_npz
from minidl.datasets import MNIST_FILES

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(a, code=None, dims=None):
    a = np.asarray(a)
    code = CODES[a.dtype.type] if code is None else code
    dims = a.shape if dims is None else dims
    header = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write(path, data, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", list(CODES))
def test_round_trip_every_dtype(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    out = load_idx(write(tmp_path / "a.idx", idx_bytes(a), gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, a)


def test_gzip_detected_by_magic_bytes_not_name(tmp_path):
    a = np.arange(6, dtype=np.uint8)
    np.testing.assert_array_equal(load_idx(write(tmp_path / "plain-name", idx_bytes(a), gz=True)), a)
    np.testing.assert_array_equal(load_idx(write(tmp_path / "x.gz", idx_bytes(a), gz=False)), a)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data(tmp_path, gz):
    data = idx_bytes(np.arange(100, dtype=np.uint8).reshape(10, 10))
    with pytest.raises(ValueError, match="truncated"):
        load_idx(write(tmp_path / "t", data[:-7], gz))


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_header(tmp_path, gz):
    data = idx_bytes(np.arange(100, dtype=np.uint8).reshape(10, 10))
    with pytest.raises(ValueError, match="truncated.*dimensions"):
        load_idx(write(tmp_path / "t", data[:9], gz))
    with pytest.raises(ValueError, match="truncated.*magic"):
        load_idx(write(tmp_path / "t", data[:2], gz))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04"])
def test_wrong_magic(tmp_path, gz, magic):
    data = magic + struct.pack(">I", 4) + bytes(4)
    with pytest.raises(ValueError, match="not an IDX file.*Received"):
        load_idx(write(tmp_path / "m", data, gz))


@pytest.mark.parametrize("gz", [False, True])
def test_absurd_declared_size_refused_before_allocation(tmp_path, gz):
    # 2**32-1 cubed float64: ~6e29 bytes; must be refused from the file size, not by trying to allocate
    data = bytes([0, 0, 0x0E, 3]) + struct.pack(">3I", *[2**32 - 1] * 3) + bytes(64)
    with pytest.raises(ValueError, match="truncated|more than"):
        load_idx(write(tmp_path / "big", data, gz))


@pytest.mark.parametrize("gz", [False, True])
def test_declared_size_larger_than_file(tmp_path, gz):
    data = idx_bytes(np.zeros(10, np.int32), dims=(11,))
    with pytest.raises(ValueError, match="truncated"):
        load_idx(write(tmp_path / "s", data, gz))


@pytest.mark.parametrize("gz", [False, True])
def test_trailing_bytes(tmp_path, gz):
    data = idx_bytes(np.zeros((2, 3), np.float32)) + b"\x00"
    with pytest.raises(ValueError, match="after the 24 data bytes"):
        load_idx(write(tmp_path / "x", data, gz))


def test_damaged_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int16)))
    (tmp_path / "d.gz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="gzip|truncated"):
        load_idx(tmp_path / "d.gz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_idx(tmp_path / "nope")
    with pytest.raises(TypeError, match="path"):
        load_idx(b"\x00\x00")


def write_mnist(folder, n_train=30, n_test=20, gz=False, labels_train=None):
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        if part == "train" and labels_train is not None:
            labels = labels_train
        suffix = ".gz" if gz else ""
        write(folder / f"{part}-images-idx3-ubyte{suffix}", idx_bytes(images), gz)
        write(folder / f"{part}-labels-idx1-ubyte{suffix}", idx_bytes(labels), gz)
        arrays[part] = images, labels
    return arrays


@pytest.mark.parametrize("kind", ["mnist", "fashion", "kmnist"])
@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_layout(tmp_path, kind, gz):
    arrays = write_mnist(tmp_path / "d", gz=gz)
    (X, y), (Xt, yt) = mdl.data.load_mnist(tmp_path / "d", kind=kind)
    assert X.shape == (30, 1, 28, 28) and Xt.shape == (20, 1, 28, 28)
    assert X.dtype == np.float32 and y.dtype == np.int64 and yt.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    np.testing.assert_array_equal(X[:, 0], arrays["train"][0].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(yt, arrays["t10k"][1])


def test_load_mnist_missing_files_message(tmp_path):
    write_mnist(tmp_path / "d")
    (tmp_path / "d" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path / "d", kind="fashion")
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz)" in msg and "train-images" not in msg
    assert str(tmp_path / "d") in msg and "zalandoresearch/fashion-mnist" in msg
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path / "empty", kind="kmnist")
    msg = str(info.value)
    assert "does not exist" in msg and "rois-codh/kmnist" in msg
    assert all(f"{n} (or {n}.gz)" in msg for n in MNIST_FILES.values())
    with pytest.raises(FileNotFoundError, match="yann.lecun.com"):
        load_mnist(tmp_path / "empty")
    with pytest.raises(ValueError, match="kind must be one of"):
        load_mnist(tmp_path / "d", kind="emnist")


def test_load_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path / "d", labels_train=np.zeros(29, np.uint8))
    with pytest.raises(ValueError, match="30 images but .*29 labels"):
        load_mnist(tmp_path / "d")


def test_load_mnist_swapped_files(tmp_path):
    write_mnist(tmp_path / "d")
    d = tmp_path / "d"
    a, b = d / "train-images-idx3-ubyte", d / "train-labels-idx1-ubyte"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    with pytest.raises(ValueError, match="swapped"):
        load_mnist(d)


def test_from_arrays_reshapes_scales_and_stratifies():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (100, 6, 7), dtype=np.uint8)
    y = np.repeat(np.arange(4), 25)
    (Xa, ya), (Xb, yb) = from_arrays(X, y, test_size=0.2, seed=1)
    assert Xa.shape == (80, 1, 6, 7) and Xb.shape == (20, 1, 6, 7) and Xa.dtype == np.float32
    assert ya.dtype == np.int64 and np.bincount(yb).tolist() == [5, 5, 5, 5]
    both = np.concatenate([Xa, Xb]).reshape(100, -1)
    np.testing.assert_array_equal(np.sort(both, axis=0), np.sort(X.reshape(100, -1) / np.float32(255), axis=0))
    (Xc, _), _ = from_arrays(X, y, test_size=0.2, seed=1)
    np.testing.assert_array_equal(Xa, Xc)


def test_from_arrays_bad_inputs():
    X = np.zeros((10, 4, 4), np.uint8)
    y = np.arange(10) % 2
    with pytest.raises(TypeError, match="numpy.ndarray"):
        from_arrays(X.tolist(), y)
    with pytest.raises(ValueError, match="same number"):
        from_arrays(X, y[:9])
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        from_arrays(np.zeros((10, 16), np.uint8), y)
    with pytest.raises(TypeError, match="uint8.*floating"):
        from_arrays(X.astype(np.int32), y)
    with pytest.raises(ValueError, match="integer class labels"):
        from_arrays(X, y.astype(np.float32))
    with pytest.raises(ValueError, match=">= 0"):
        from_arrays(X, y - 1)
    with pytest.raises(ValueError, match="at least 2 images of every class"):
        from_arrays(X, np.r_[np.zeros(9, int), 1])
    with pytest.raises(ValueError, match="test_size"):
        from_arrays(X, y, test_size=2)
    with pytest.raises(ValueError, match="nan"):
        from_arrays(np.full((10, 1, 2, 2), np.nan, np.float32), y)


def test_load_npz_both_forms(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((40, 3, 5, 5)).astype(np.float64)
    y = np.arange(40) % 4
    np.savez(tmp_path / "xy.npz", X=X, y=y)
    (Xa, ya), (Xb, yb) = load_npz(tmp_path / "xy.npz", test_size=0.25)
    assert Xa.shape == (30, 3, 5, 5) and Xb.shape == (10, 3, 5, 5) and Xa.dtype == np.float32
    np.savez(tmp_path / "split.npz", X_train=X[:30], y_train=y[:30], X_test=X[30:], y_test=y[30:])
    (Xa, ya), (Xb, yb) = load_npz(tmp_path / "split.npz")
    np.testing.assert_array_equal(Xa, X[:30].astype(np.float32))
    np.testing.assert_array_equal(yb, y[30:])
    np.savez(tmp_path / "bad.npz", images=X)
    with pytest.raises(ValueError, match=r"X_train.*Received keys: \['images'\]"):
        load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "mis.npz", X_train=X[:30], y_train=y[:29], X_test=X[30:], y_test=y[30:])
    with pytest.raises(ValueError, match="X_train and y_train"):
        load_npz(tmp_path / "mis.npz")



def _npy(shape, dtype="|u1", payload=b""):
    """A .npy member: a header declaring ``shape`` and ``dtype``, then ``payload`` (not necessarily that long)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def test_load_npz_refuses_a_npy_file_naming_it(tmp_path, ceiling):
    """np.load returns an array for a .npy, and load_npz failed with "TypeError: 'numpy.ndarray' object
    does not support the context manager protocol"."""
    np.save(tmp_path / "images.npy", np.zeros((4, 5, 5), np.uint8))
    with ceiling(), pytest.raises(ValueError, match=r"load_npz\('.*images\.npy'\): this is a \.npy file.*np\.savez"):
        load_npz(tmp_path / "images.npy")
    (tmp_path / "text.npz").write_text("hello")
    with ceiling(), pytest.raises(ValueError, match=r"load_npz\('.*text\.npz'\): not a \.npz"):
        load_npz(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError, match="load_npz.*no such file"):
        load_npz(tmp_path / "missing.npz")


def test_load_npz_refuses_a_huge_declared_shape_before_allocating(tmp_path, ceiling):
    """A member whose header declares shape (10**12,) gave a bare MemoryError (931 GiB asked for)."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        zf.writestr("X.npy", _npy((10**12,)))
        zf.writestr("y.npy", _npy((10,), "<i8", np.zeros(10, np.int64).tobytes()))
    with ceiling(), pytest.raises(ValueError, match=r"load_npz\('.*huge\.npz'\): member 'X' declares .* bytes"):
        load_npz(tmp_path / "huge.npz")


def test_load_npz_has_mdl_loads_size_limit(tmp_path):
    """A 150 KB deflated file that decompresses to 152 MB (uint8 zeros) took 40 s and 1.3 GB with no way
    to bound it: max_bytes (mdl.load's, same default) refuses it before anything is decompressed."""
    import tracemalloc
    import zipfile

    n = 2_000_000
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("X.npy", _npy((n // 64, 8, 8), payload=bytes(n)))
        zf.writestr("y.npy", _npy((n // 64,), payload=bytes(n // 64)))
    assert (tmp_path / "bomb.npz").stat().st_size < 20_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"load_npz\('.*bomb\.npz'\): the arrays take 2,031,\d+ bytes, more "
                                             r"than max_bytes=1,000,000"):
            load_npz(tmp_path / "bomb.npz", max_bytes=1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 500_000  # nothing decompressed
    (X, y), _ = load_npz(tmp_path / "bomb.npz", max_bytes=None, test_size=0.5)
    assert X.shape == (n // 128, 1, 8, 8)
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        load_npz(tmp_path / "bomb.npz", max_bytes=1.5)


def test_load_npz_damaged_archive_names_the_file(tmp_path, ceiling):
    import zipfile

    X, y = np.zeros((10, 4, 4), np.uint8), np.arange(10) % 2
    np.savez_compressed(tmp_path / "ok.npz", X=X, y=y)
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "ok.npz") as zf:
        info = zf.getinfo("X.npy")
    start = info.header_offset + 30 + len(info.filename) + 20  # inside X's deflated data
    data[start:start + 30] = bytes(30)
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    with ceiling(), pytest.raises(ValueError, match=r"load_npz\('.*bad\.npz'\)"):
        load_npz(tmp_path / "bad.npz")


def test_load_idx_over_numpys_dimensions_names_the_file(tmp_path, ceiling):
    """65 dimensions of size 1: numpy's own "maximum supported dimension" error, without the file name."""
    path = write(tmp_path / "deep", bytes([0, 0, 0x08, 65]) + struct.pack(">65I", *[1] * 65) + b"x")
    with ceiling(), pytest.raises(ValueError, match=r"load_idx\('.*deep'\): the header declares 65 dimensions"):
        load_idx(path)


# ------------------------------------------------------------- minidl train --dataset mnist
@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_cli_trains_the_mnist_cnn_on_idx_files(tmp_path, dataset):
    """The smoke test of ``minidl train --dataset mnist --data-dir DIR`` on synthetic IDX files
    (real MNIST is not downloaded here)."""
    import json

    import minidl as mdl
    from minidl import cli

    write_mnist(tmp_path / "data", n_train=40, n_test=20, gz=True)
    out = tmp_path / "run"
    code = cli.main(["train", "--dataset", dataset, "--data-dir", str(tmp_path / "data"), "--epochs", "1",
                     "--batch-size", "16", "--quiet", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "history.json").read_text())
    assert record["config"]["dataset"] == dataset and record["config"]["epochs"] == 1
    model = mdl.load(out / "model.npz")
    assert model(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert model.num_parameters() == mdl.models.mnist_cnn(0).num_parameters()


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "mnist"], "needs --data-dir DIR"),
    (["--dataset", "mnist", "--data-dir", "{tmp}/nowhere"], "train-images-idx3-ubyte"),
    (["--dataset", "kmnist", "--data-dir", "{tmp}", "--model", "best"], "--model best is for the digits"),
])
def test_cli_mnist_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    from minidl import cli

    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(["train", *argv, "--quiet", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "model.npz").exists()
