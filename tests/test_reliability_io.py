"""Issue 6: nothing saved is lost or poisoned; untrusted files cannot exhaust the machine."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl as mdl
from minidl import layers, models
from minidl.graph import Graph, Sequential
from minidl.io import archive
from minidl.layers.base import Layer

RNG = np.random.default_rng
ARCH = "__minidl_architecture__"


def x_digits(n=4, seed=0):
    return RNG(seed).random((n, 1, 8, 8), dtype=np.float32)


def tied_model():
    d1 = layers.Dense(6, 6, rng=RNG(0))
    d2 = layers.Dense(6, 6, rng=RNG(1))
    d2.weight = d1.weight  # tied weights, as torch users write them
    return Sequential(d1, layers.ReLU(), d2)


# ------------------------------------------------------------- 1. tied weights
def test_tied_parameter_is_listed_under_every_name_but_trained_once():
    model = tied_model()
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.bias"]
    assert len(model.parameters()) == 3
    np.testing.assert_array_equal(model.state_dict()["2.weight"], model.state_dict()["0.weight"])


def test_tied_weights_round_trip_and_stay_tied(tmp_path):
    model = tied_model()
    path = tmp_path / "tied.npz"
    model.save(path)
    loaded = mdl.load(path)
    assert loaded[2].weight is loaded[0].weight
    assert list(loaded.state_dict()) == list(model.state_dict())
    x = RNG(2).random((3, 6), dtype=np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))
    # still tied when trained: one SGD step moves both uses together
    opt = mdl.optim.SGD(loaded.parameters(), lr=0.1)
    loaded.train()  # mdl.load gives eval mode (for predicting); training by hand starts with train()
    loaded(x)
    loaded.backward(np.ones((3, 6), np.float32))
    opt.step()
    np.testing.assert_array_equal(loaded[2].weight.data, loaded[0].weight.data)


def test_tied_state_dict_loads_into_a_tied_model():
    a, b = tied_model(), tied_model()
    for p in a.parameters():
        p.data += 1
    b.load_state_dict(a.state_dict())
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)


# -------------------------------------------------------------- 2. subclasses
@mdl.register_layer
class TwiceSequential(Sequential):
    """A Sequential subclass with its own forward (and backward)."""

    def forward(self, x):
        return 2 * super().forward(x)

    def backward(self, grad_output):
        return super().backward(2 * grad_output)


@mdl.register_layer
class BuiltTinyNet(Sequential):
    """A subclass that builds its own layers from constructor arguments."""

    def __init__(self, hidden=5, seed=0):
        super().__init__(layers.Flatten(), layers.Dense(64, hidden, rng=RNG(seed)), layers.ReLU(),
                         layers.Dense(hidden, 10, rng=RNG(seed + 1)))
        self.hidden, self.seed = hidden, seed

    def get_config(self):
        return {"hidden": self.hidden, "seed": self.seed}


@mdl.register_layer
class ShiftGraph(Graph):
    def forward(self, x):
        return super().forward(x) + 1.0


class UnregisteredSequential(Sequential):
    def forward(self, x):
        return -super().forward(x)


def test_registered_sequential_subclass_round_trips(tmp_path):
    model = TwiceSequential(layers.Flatten(), layers.Dense(64, 3, rng=RNG(0)))
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = mdl.load(path)
    assert type(loaded) is TwiceSequential
    np.testing.assert_array_equal(loaded(x_digits()), model(x_digits()))


def test_registered_subclass_that_builds_its_layers_round_trips(tmp_path):
    model = BuiltTinyNet(hidden=7, seed=3)
    for p in model.parameters():
        p.data *= 1.5  # trained weights, not the constructor's
    model.save(tmp_path / "m.npz")
    loaded = mdl.load(tmp_path / "m.npz")
    assert type(loaded) is BuiltTinyNet and loaded.hidden == 7
    np.testing.assert_array_equal(loaded(x_digits()), model(x_digits()))


def test_registered_graph_subclass_round_trips_nested(tmp_path):
    inner = ShiftGraph()
    inner.add("conv", layers.Conv2D(1, 2, 3, padding=1, rng=RNG(0)))
    model = Sequential(inner, layers.Flatten(), layers.Dense(128, 3, rng=RNG(1)))
    model.save(tmp_path / "m.npz")
    loaded = mdl.load(tmp_path / "m.npz")
    assert type(loaded[0]) is ShiftGraph
    np.testing.assert_array_equal(loaded(x_digits()), model(x_digits()))


def test_unregistered_subclass_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "m.npz"
    model = UnregisteredSequential(layers.Flatten(), layers.Dense(64, 3, rng=RNG(0)))
    with pytest.raises(ValueError, match="UnregisteredSequential.*register_layer"):
        model.save(path)
    assert os.listdir(tmp_path) == []
    nested = Sequential(layers.ReLU(), UnregisteredSequential(layers.ReLU()))
    with pytest.raises(ValueError, match="UnregisteredSequential"):
        nested.save(path)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------ 5. temporary files and names
def test_250_character_target_name_works(tmp_path):
    path = tmp_path / ("m" * 246 + ".npz")
    models.reference_cnn(rng=RNG(0)).save(path)
    assert os.listdir(tmp_path) == [path.name]
    mdl.load(path)


def test_stale_temporary_of_a_killed_save_is_cleaned_by_the_next_save(tmp_path):
    path = tmp_path / "model.npz"
    script = textwrap.dedent(f"""
        import os, signal, numpy as np, minidl as mdl
        model = mdl.Sequential(mdl.layers.Dense(2000, 2000, rng=np.random.default_rng(0)))
        real = np.savez
        def savez_then_die(f, *a, **k):
            real(f, *a, **k)
            os.kill(os.getpid(), signal.SIGKILL)  # as `kill -9` in the middle of a save
        np.savez = savez_then_die
        model.save({str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith(".") and left[0].endswith(".tmp"), left
    assert len(left[0]) < 60  # short, whatever the target's name
    models.reference_cnn(rng=RNG(0)).save(path)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_temporaries_of_other_targets_and_live_writers_are_kept(tmp_path):
    models.reference_cnn(rng=RNG(0)).save(tmp_path / "a.npz")
    mine = [n for n in os.listdir(tmp_path)]
    other = tmp_path / ".unrelated.tmp"
    other.write_bytes(b"x")
    live = tmp_path / (mdl.io.archive._temp_tag(str(tmp_path / "a.npz")) + f"{os.getppid()}.abc.tmp")
    live.write_bytes(b"x")
    models.reference_cnn(rng=RNG(0)).save(tmp_path / "a.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(mine + [other.name, live.name])


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_during_save_leaves_the_target_intact_and_no_temporary(tmp_path):
    path = tmp_path / "model.npz"
    models.reference_cnn(rng=RNG(0)).save(path)
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import os, signal, numpy as np, minidl as mdl
        model = mdl.Sequential(mdl.layers.Dense(500, 500, rng=np.random.default_rng(1)))
        real = np.savez
        def savez_then_term(f, *a, **k):
            real(f, *a, **k)
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` (or a scheduler) mid-save
            real(f, *a, **k)
        np.savez = savez_then_term
        model.save({str(path)!r})
        print("survived")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "survived" not in proc.stdout
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == before


def test_permission_error_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    import tempfile

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(dir, ".mdl-xyz.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    target = tmp_path / "model.npz"
    with pytest.raises(PermissionError) as info:
        models.reference_cnn(rng=RNG(0)).save(target)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)
    assert info.value.filename == str(target)


@pytest.mark.parametrize("name", ["a\x00b", "a/b", "a\\b", "tab\there", "\udc80", "x" * 201])
def test_node_names_that_would_clash_in_files_are_refused(name):
    g = Graph()
    with pytest.raises(ValueError, match="printable"):
        g.add(name, layers.ReLU(), "input")
    assert len(g) == 0


# ------------------------------------------------------ untrusted files
def _write_file(path, arch, members=None, compression=zipfile.ZIP_STORED):
    """A hand-crafted .npz: the architecture JSON and raw .npy members."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        with zf.open(ARCH + ".npy", "w") as f:
            np.lib.format.write_array(f, np.array(json.dumps(arch)))
        for name, writer in (members or {}).items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                writer(f)


def _arch(model_spec, version=2, **extra):
    return {"format": "minidl", "format_version": version, "model": model_spec, **extra}


def _dense(n, m):
    return {"class": "Sequential", "layers": [{"class": "Dense", "config": {"in_features": n, "out_features": m}}]}


def _bounded(fn, limit_mb=50):
    """Run ``fn``; return (exception, tracemalloc peak in MB)."""
    tracemalloc.start()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the caller checks the type
        error = exc
    else:
        error = None
    finally:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    assert peak < limit_mb, f"peak {peak:.1f} MB"
    return error


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("size", [40_000, 10**6, 10**12])
def test_huge_declared_layer_without_weights_fails_fast_and_small(tmp_path, size, version):
    path = tmp_path / "evil.npz"
    _write_file(path, _arch(_dense(size, size), version=version, arrays={}))
    assert path.stat().st_size < 2048
    error = _bounded(lambda: mdl.load(path))
    assert isinstance(error, ValueError) and str(path) in str(error), error


def test_header_lying_about_the_member_size_is_refused_before_reading(tmp_path):
    path = tmp_path / "liar.npz"

    def big_zeros(f):  # header says (2, 2) float32, the member holds 64 MiB
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2, 2)})
        f.write(bytes(64 * 2**20))

    _write_file(path, _arch(_dense(2, 2), version=1), {"param:0.weight": big_zeros,
                                                         "param:0.bias": lambda f: np.save(f, np.zeros(2, np.float32))},
                compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    error = _bounded(lambda: mdl.load(path), limit_mb=20)
    assert isinstance(error, ValueError) and "declares" in str(error), error


def test_zip_bomb_beyond_max_bytes_is_refused_before_decompressing(tmp_path):
    path = tmp_path / "bomb.npz"
    n = 4096  # a consistent file: Dense(4096, 4096) of zeros, 64 MiB that compress to ~64 KiB
    members = {"param:0.weight": lambda f: np.lib.format.write_array(f, np.zeros((n, n), np.float32)),
               "param:0.bias": lambda f: np.lib.format.write_array(f, np.zeros(n, np.float32))}
    manifest = {"param:0.weight": {"shape": [n, n], "dtype": "<f4"}, "param:0.bias": {"shape": [n], "dtype": "<f4"}}
    _write_file(path, _arch(_dense(n, n), arrays=manifest), members, compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    error = _bounded(lambda: mdl.load(path, max_bytes=16 * 2**20), limit_mb=10)
    assert isinstance(error, ValueError) and "max_bytes" in str(error), error
    model = mdl.load(path)  # under the default limit it is a valid file
    assert model[0].weight.shape == (n, n)


def test_extra_member_not_in_the_manifest_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    models.reference_cnn(rng=RNG(0)).save(path)
    with zipfile.ZipFile(path, "a") as zf:
        with zf.open("param:smuggled.npy", "w") as f:
            np.lib.format.write_array(f, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="manifest"):
        mdl.load(path)


class CountingReLU(layers.ReLU):
    """A ReLU that counts how often a graph looks inside it."""

    visits = 0

    def named_children(self):
        CountingReLU.visits += 1
        return iter(())


def test_building_a_many_layer_file_is_linear(tmp_path):
    n = 2000
    spec = {"class": "Graph", "output": None, "nodes": [
        {"name": f"r{i}", "inputs": ["input" if i == 0 else f"r{i - 1}"], "layer": {"class": "CountingReLU"}}
        for i in range(n)]}
    path = tmp_path / "long.npz"
    _write_file(path, _arch(spec, arrays={}))
    CountingReLU.visits = 0
    model = mdl.load(path, custom_layers={"CountingReLU": CountingReLU})
    assert len(model) == n
    assert CountingReLU.visits < 10 * n  # build, checks and load's eval(): quadratic would be ~n**2 / 2 = 2,000,000


def test_too_many_layers_or_too_deep_is_refused(tmp_path):
    spec = {"class": "Sequential", "layers": []}
    node = spec
    for _ in range(100):
        child = {"class": "Sequential", "layers": []}
        node["layers"].append(child)
        node = child
    path = tmp_path / "deep.npz"
    _write_file(path, _arch(spec, arrays={}))
    with pytest.raises(ValueError, match="nests deeper"):
        mdl.load(path)


@pytest.mark.parametrize("version", [True, 1.0, 2.0, "2", [2], None])
def test_format_version_must_be_the_exact_integer(tmp_path, version):
    path = tmp_path / "v.npz"
    _write_file(path, {"format": "minidl", "format_version": version,
                       "model": {"class": "Sequential", "layers": []}, "arrays": {}})
    with pytest.raises(ValueError, match="format version"):
        mdl.load(path)


@pytest.mark.parametrize("custom", [{"Dense": 3}, {"X": np.ndarray}, {1: layers.Dense}, [layers.Dense]])
def test_custom_layers_must_map_names_to_layer_classes(tmp_path, custom):
    path = tmp_path / "m.npz"
    models.reference_cnn(rng=RNG(0)).save(path)
    with pytest.raises(TypeError, match="custom_layers"):
        mdl.load(path, custom_layers=custom)


@mdl.register_layer
class NumpyConfigScale(Layer):
    def __init__(self, factor=2):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def backward(self, g):
        return g * self.factor

    def get_config(self):
        return {"factor": self.factor}


def test_numpy_integers_in_layer_configs_save_as_json(tmp_path):
    model = Sequential(NumpyConfigScale(np.int64(3)), layers.Concat(axis=np.int64(1)))
    model.save(tmp_path / "m.npz")
    loaded = mdl.load(tmp_path / "m.npz")
    assert loaded[0].factor == 3 and type(loaded[0].factor) is int


def test_loading_draws_and_allocates_no_initial_weights(tmp_path):
    """Layers are built without random init when the file's weights replace it: the peak
    is the loaded weights plus their gradient buffers, nothing drawn and thrown away."""
    path = tmp_path / "m.npz"
    Sequential(layers.Dense(2048, 2048, rng=RNG(0))).save(path)
    weight_bytes = 2048 * 2048 * 4
    tracemalloc.start()
    try:
        model = mdl.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model[0].weight.grad.shape == (2048, 2048)
    assert peak < 2.3 * weight_bytes, f"peak {peak / weight_bytes:.2f}x the weights"


# --------------------------------------------------------------- fuzzing
def _small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "ok.npz"
    g = Graph()
    g.add("c", layers.Conv2D(1, 2, 3, padding=1, rng=RNG(0)), "input")
    g.add("r", layers.ReLU(), "c")
    g.add("s", layers.Add(), ["c", "r"])
    g.add("f", layers.Flatten(), "s")
    g.add("d", layers.Dense(128, 3, rng=RNG(1)), "f")
    g.save(path)
    deflated = path.with_name("deflated.npz")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return path.read_bytes(), deflated.read_bytes()


def _load_and_run_or_value_error(path):
    """The documented outcomes for an untrusted file: a model (whose forward on digits-shaped
    input works or raises ValueError/TypeError), or a ValueError naming the file."""
    try:
        model = mdl.load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(model, Layer)
    try:
        model(x_digits(2))
    except (ValueError, TypeError):
        pass


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    return _small_file(tmp_path_factory)


@pytest.fixture(scope="module")
def good_bytes(good_files):
    return good_files[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_checkpoint_bytes_load_or_raise_value_error(tmp_path, good_files, data):
    raw = bytearray(good_files[data.draw(st.integers(0, 1))])  # stored or deflated members
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        pos = data.draw(st.integers(0, len(raw) - 1))
        if kind == "flip":
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "truncate":
            del raw[pos:]
        elif kind == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            raw[pos:pos + 8] = bytes(len(raw[pos:pos + 8]))
        if not raw:
            raw = bytearray(b"P")
    path = tmp_path / "fuzz.npz"
    path.write_bytes(bytes(raw))
    _load_and_run_or_value_error(path)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                     lambda inner: (st.lists(inner, max_size=4)
                                    | st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_architecture_json_loads_or_raises_value_error(tmp_path, good_bytes, data):
    src = tmp_path / "src.npz"
    src.write_bytes(good_bytes)
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arch = json.loads(str(arrays[ARCH]))
    # replace one value somewhere in the architecture with arbitrary JSON
    parent, key = None, None
    node = arch
    for _ in range(data.draw(st.integers(1, 6))):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        parent, key = node, data.draw(st.sampled_from(keys))
        node = parent[key]
        if not isinstance(node, (dict, list)) or data.draw(st.booleans()):
            break
    if parent is not None:
        parent[key] = data.draw(_JSON)
    arrays[ARCH] = np.array(json.dumps(arch))
    path = tmp_path / "fuzz.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    _load_and_run_or_value_error(path)


def test_every_single_byte_flip_of_a_deflated_file_is_a_value_error(tmp_path, good_files):
    """zlib.error, tokenize.TokenError and friends: every failure of an untrusted file is a
    ValueError naming it (a fixed, seeded set of flips; the fuzz above draws more)."""
    raw = good_files[1]
    rng = RNG(0)
    path = tmp_path / "flipped.npz"
    causes = set()
    for pos in rng.choice(len(raw), size=200, replace=False):
        flipped = bytearray(raw)
        flipped[pos] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(flipped))
        try:
            mdl.load(path)
        except ValueError as exc:
            assert str(path) in str(exc)
            causes.add(type(exc.__cause__).__name__)
    assert "error" in causes  # zlib.error: a corrupt deflate stream was among them


# ------------------------------------------------------ zip bombs: only what numpy writes, at deflate's ratios
def _npy(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a)
    return buf.getvalue()


def _bomb(path, method, n=4096):
    """An .npz whose X member holds n zero (8, 8) float32 images compressed with ``method`` (np.savez and
    savez_compressed write only stored or deflated members), and stored labels."""
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("X.npy")
        info.compress_type = method
        zf.writestr(info, _npy(np.zeros((n, 8, 8), np.float32)))
        zf.writestr(zipfile.ZipInfo("y.npy"), _npy(np.zeros(n, np.int64)))
    return path


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_members_compressed_beyond_deflate_are_refused_before_decompressing(method, tmp_path, ceiling):
    """bzip2/lzma pack any size into a few hundred bytes (a 190 KB file declared 1.5 GB and took 9 s);
    numpy never writes them, so load_npz and mdl.load's reader refuse them before decompressing."""
    path = _bomb(tmp_path / "bomb.npz", method)
    with zipfile.ZipFile(path) as zf:  # 1 MiB of images in about a hundred bytes
        assert zf.getinfo("X.npy").compress_size * 1100 < zf.getinfo("X.npy").file_size
    with ceiling(peak_bytes=2**20), pytest.raises(ValueError, match="compression method") as info:
        mdl.data.load_npz(path)
    assert str(path) in str(info.value)
    with archive.open_npz(path) as zf, pytest.raises(ValueError, match="compression method"):
        archive.member_header(zf, "X")


def _uncompressed_size_fields(data: bytes, name: str):
    """Offsets of member ``name``'s uncompressed-size fields in its local header and central directory entry."""
    offsets = []
    # (signature, offset of the uncompressed size, of the name's length, of the name)
    for signature, size_at, length_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        at = data.find(signature)
        while at >= 0:
            length = int.from_bytes(data[at + length_at:at + length_at + 2], "little")
            if data[at + name_at:at + name_at + length] == name.encode():
                offsets.append(at + size_at)
            at = data.find(signature, at + 4)
    return offsets


def test_a_deflated_member_declaring_more_than_deflate_can_expand_is_refused(tmp_path, ceiling):
    """A consistent .npy header for 1 GiB of float32, a deflate stream holding only that header, and a zip
    directory declaring header + 1 GiB: every size agrees, so the reader allocated 1 GiB before finding
    the stream short. Deflate cannot expand that far, so the directory is refused first."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**28,)})
    header = header.getvalue()
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("X.npy", header)
        zf.writestr("y.npy", _npy(np.zeros(2**28, np.int8)))
    data = bytearray(path.read_bytes())
    offsets = _uncompressed_size_fields(bytes(data), "X.npy")
    assert len(offsets) == 2
    for offset in offsets:
        data[offset:offset + 4] = (len(header) + 2**30).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with ceiling(peak_bytes=2**20), pytest.raises(ValueError, match="more than deflate can expand"):
        mdl.data.load_npz(path)
