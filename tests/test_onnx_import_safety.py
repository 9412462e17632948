"""``export.from_onnx`` treats a file as untrusted, as ``mdl.load`` does: every malformed or hostile
file gives a ValueError naming it, within a time and memory ceiling measured here (issue 17, item 2).
Also: ``to_onnx`` writes like ``model.save`` (umask's mode, no temporary left by SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX import needs onnx (pip install -e '.[onnx]')")
from onnx import TensorProto  # noqa: E402

import minidl as mdl  # noqa: E402
from minidl import layers as L  # noqa: E402

SECONDS, PEAK_BYTES = 1.0, 4 * 2**20  # generous: a refusal takes a few ms and well under 1 MiB


def small_export(tmp_path, model=None, name="m.onnx"):
    """A genuine minidl export (BatchNorm1D then Dense) and its parsed proto."""
    model = model or mdl.Sequential(L.BatchNorm1D(3), L.Dense(3, 2, rng=0))
    path = tmp_path / name
    mdl.export.to_onnx(model, path, (3,))
    return path, onnx.load(str(path))


def save_proto(proto, path):
    path.write_bytes(proto.SerializeToString())
    return path


def set_prop(proto, key, value):
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = value
            return proto
    raise KeyError(key)


def initializer(proto, name):
    return next(t for t in proto.graph.initializer if t.name == name)


def refused(ceiling, path, match=None, **kwargs):
    """from_onnx(path) raises a ValueError naming ``path``, within conftest's time and memory ceiling."""
    with ceiling(SECONDS, PEAK_BYTES), pytest.raises(ValueError, match=match) as info:
        mdl.export.from_onnx(path, **kwargs)
    assert repr(str(path)) in str(info.value)
    return info.value


@pytest.fixture(autouse=True)
def _warm():
    """Import onnx's helpers once, outside the measured region."""
    import onnx.numpy_helper  # noqa: F401


# ------------------------------------------------------------------ architectures too big to allocate
@pytest.mark.parametrize("layer_spec", [
    {"class": "BatchNorm1D", "config": {"num_features": 200_000_000}},        # 382-byte file, 7.6 GB before
    {"class": "Dense", "config": {"in_features": 20000, "out_features": 20000}},  # 480 bytes, 4.5 GB before
    {"class": "Dense", "config": {"in_features": 2000, "out_features": 2000}},    # 16 MB: still refused
])
def test_declared_architecture_is_not_allocated(layer_spec, tmp_path, ceiling):
    path, proto = small_export(tmp_path)
    set_prop(proto, "minidl.architecture", json.dumps({"class": "Sequential", "layers": [layer_spec]}))
    refused(ceiling, save_proto(proto, tmp_path / "big.onnx"), "initializer|max_bytes")


def test_consistent_model_over_max_bytes_is_refused_before_reading(tmp_path, ceiling):
    path, _ = small_export(tmp_path)
    error = refused(ceiling, path, "max_bytes", max_bytes=100)
    assert "more than max_bytes=100" in str(error)
    assert mdl.export.from_onnx(path, max_bytes=None) is not None  # the limit was the only problem


def test_architecture_over_max_bytes_is_refused_before_building_weights(tmp_path, ceiling):
    _, proto = small_export(tmp_path)
    spec = {"class": "Sequential", "layers": [{"class": "Dense", "config": {"in_features": 30, "out_features": 20}}]}
    set_prop(proto, "minidl.architecture", json.dumps(spec))
    refused(ceiling, save_proto(proto, tmp_path / "m2.onnx"), "architecture's arrays take 2,480 bytes", max_bytes=2000)


# ------------------------------------------------------------------ metadata
@pytest.mark.parametrize("entry", [
    {"dtype": "<U100000000", "value": 0},       # allocated 763 MB before
    {"dtype": "<f8", "value": 0},               # the wrong dtype
    {"dtype": "<i8", "value": [1, 2]},          # the wrong shape
    {"dtype": "<i8"},                           # no value (KeyError before)
    [1, 2],                                     # not an object (TypeError before)
    {"dtype": "object", "value": 0},
])
def test_bad_state_metadata(entry, tmp_path, ceiling):
    _, proto = small_export(tmp_path)
    set_prop(proto, "minidl.state", json.dumps({"0.num_batches_tracked": entry}))
    refused(ceiling, save_proto(proto, tmp_path / "bad.onnx"), "num_batches_tracked")


@pytest.mark.parametrize("key, value", [
    ("minidl.architecture", "{not json"),
    ("minidl.architecture", "[1, 2]"),
    ("minidl.architecture", json.dumps({"class": "Sequential", "layers": "x"})),
    ("minidl.architecture", json.dumps({"class": "NoSuchLayer", "config": {}})),
    ("minidl.architecture", "[" * 100_000 + "]" * 100_000),   # deeper than json's recursion
    ("minidl.state", "[]"),
    ("minidl.state", "{bad"),
])
def test_bad_metadata(key, value, tmp_path, ceiling):
    _, proto = small_export(tmp_path)
    set_prop(proto, key, value)
    refused(ceiling, save_proto(proto, tmp_path / "bad.onnx"))


def test_foreign_model_is_refused_with_the_reason(tmp_path, ceiling):
    """Models minidl did not write are read node by node (tests/test_onnx_import.py); an op minidl does not
    read is refused with the node, op and opset (before issue 19: every foreign model, 'not written by minidl')."""
    from onnx import helper
    graph = helper.make_graph([helper.make_node("Einsum", ["x"], ["y"], name="e", equation="i->i")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    refused(ceiling, save_proto(helper.make_model(graph), tmp_path / "foreign.onnx"),
            r"node 'e' \(op Einsum, opset \d+\) in .*Einsum is not supported")


# ------------------------------------------------------------------ initializers
def _mutate(name, change):
    def apply(proto):
        change(initializer(proto, name))
        return proto
    return apply


def _duplicate(proto):
    proto.graph.initializer.append(initializer(proto, "1.bias"))
    return proto


def _remove(proto):
    proto.graph.initializer.remove(initializer(proto, "1.weight"))
    return proto


def _float_data(tensor):
    tensor.ClearField("raw_data")
    tensor.float_data.extend([1.0] * 5)  # 5 values for a (2, 3) weight


@pytest.mark.parametrize("corrupt, match", [
    (_mutate("1.weight", lambda t: t.ClearField("dims") or t.dims.extend([3, 2])), r"shape \(3, 2\)"),
    (_mutate("1.weight", lambda t: setattr(t, "raw_data", t.raw_data[:-4])), "holds 20 bytes"),
    (_mutate("1.weight", lambda t: setattr(t, "raw_data", t.raw_data * 1000)), "holds 24,000 bytes"),
    (_mutate("1.weight", lambda t: setattr(t, "data_type", 999)), "data type 999"),          # KeyError before
    (_mutate("1.weight", lambda t: setattr(t, "data_type", TensorProto.DOUBLE)), "data type 11"),
    (_mutate("1.weight", lambda t: t.ClearField("dims") or t.dims.extend([2**40, 2**40])), "shape"),
    (_mutate("1.weight", _float_data), "holds 20 bytes"),
    (_duplicate, "two initializers are named '1.bias'"),
    (_remove, "no initializer '1.weight'"),
])
def test_bad_initializers(corrupt, match, tmp_path, ceiling):
    _, proto = small_export(tmp_path)
    refused(ceiling, save_proto(corrupt(proto), tmp_path / "bad.onnx"), match)


# ------------------------------------------------------------------ external data is never followed
def _external(proto, location, length=24):
    tensor = initializer(proto, "1.weight")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": str(length)}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return proto


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "huge_length", "missing"])
def test_external_data_is_refused_and_never_opened(kind, tmp_path, ceiling):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.bin"
    secret.write_bytes(np.arange(6, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    target = folder / "weights.bin"
    if kind == "symlink":
        target.symlink_to(secret)
    elif kind == "hardlink":
        os.link(secret, target)
    elif kind == "fifo":
        os.mkfifo(target)  # opening it for reading would hang forever
    _, proto = small_export(tmp_path)
    length = 2**62 if kind == "huge_length" else 24
    path = save_proto(_external(proto, "weights.bin", length), folder / "m.onnx")
    refused(ceiling, path, "external data")


def test_the_file_itself_must_be_regular(tmp_path, ceiling):
    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)  # open() for reading would wait for a writer forever
    refused(ceiling, fifo, "not a regular file")
    refused(ceiling, tmp_path, r"not a regular file \(a directory\)")


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                                                           dtype=np.uint8)),
                                     b"PK\x03\x04 a zip, not onnx"])
def test_random_bytes(content, tmp_path, ceiling):
    refused(ceiling, save_bytes(tmp_path / "junk.onnx", content))


def save_bytes(path, content):
    path.write_bytes(content)
    return path


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        mdl.export.from_onnx(tmp_path / "nope.onnx")


@pytest.mark.parametrize("max_bytes", [-1, 1.5, "10", True])
def test_bad_max_bytes(max_bytes, tmp_path):
    path, _ = small_export(tmp_path)
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        mdl.export.from_onnx(path, max_bytes=max_bytes)


def test_genuine_export_still_reads_back_exactly(tmp_path):
    model = mdl.Sequential(L.BatchNorm1D(3), L.Dense(3, 2, rng=0))
    model[0].running_mean[...] = [1, 2, 3]
    model[0].num_batches_tracked[...] = 5
    path, _ = small_export(tmp_path, model)
    back = mdl.export.from_onnx(path)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value)
        assert back.state_dict()[key].dtype == value.dtype
    assert all(p.grad.shape == p.data.shape for p in back.parameters())


# ------------------------------------------------------------------ writing, as model.save writes
def test_export_gets_the_umask_mode_like_model_files(tmp_path):
    old = os.umask(0o022)
    try:
        mdl.export.to_onnx(L.Dense(3, 2), tmp_path / "m.onnx", (3,))
        L.Dense(3, 2).save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "m.onnx").stat().st_mode & 0o777 == 0o644  # -rw------- before
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


def test_sigterm_during_export_leaves_no_temporary(tmp_path):
    path = tmp_path / "m.onnx"
    mdl.export.to_onnx(L.Dense(3, 2), path, (3,))
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import os, signal
        import minidl as mdl
        from minidl.io import archive
        real = archive.write_atomic
        def write_then_term(path, write, where):
            def slow(f):
                write(f)
                os.kill(os.getpid(), signal.SIGTERM)  # as `kill` (or a scheduler) mid-export
                write(f)
            real(path, slow, where)
        archive.write_atomic = write_then_term
        mdl.export.to_onnx(mdl.layers.Dense(30, 20), {str(path)!r}, (30,))
        print("survived")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "survived" not in proc.stdout
    assert os.listdir(tmp_path) == ["m.onnx"]
    assert path.read_bytes() == before


def test_a_killed_exports_temporary_is_removed_by_the_next(tmp_path):
    from minidl.io import archive
    path = tmp_path / "m.onnx"
    dead = 2**22 + 12345  # beyond pid_max's default: no such process
    stale = tmp_path / f"{archive._temp_tag(str(path))}{dead}.abc.tmp"
    stale.write_bytes(b"x" * 1000)
    mdl.export.to_onnx(L.Dense(3, 2), path, (3,))
    assert os.listdir(tmp_path) == ["m.onnx"]
