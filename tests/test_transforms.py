"""Data augmentation: the vectorised transforms against per-image loops, and
``fit(transform=...)``: reproducible, training batches only, resumable."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl.data import Compose, RandomRotation, RandomShift, rotate_images, shift_images


def _shift_loop(img, dy, dx):
    out = np.zeros_like(img)
    h, w = img.shape[-2:]
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[:, i, j] = img[:, i - dy, j - dx]
    return out


def _rotate_loop(img, degrees):
    """Bilinear rotation of one (C, H, W) image, written per output pixel."""
    c, h, w = img.shape
    t = np.deg2rad(degrees)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            si = np.cos(t) * (i - cy) + np.sin(t) * (j - cx) + cy
            sj = -np.sin(t) * (i - cy) + np.cos(t) * (j - cx) + cx
            i0, j0 = int(np.floor(si)), int(np.floor(sj))
            for a, wa in ((i0, 1 - (si - i0)), (i0 + 1, si - i0)):
                for b, wb in ((j0, 1 - (sj - j0)), (j0 + 1, sj - j0)):
                    if 0 <= a < h and 0 <= b < w:
                        out[:, i, j] += wa * wb * img[:, a, b]
    return out


def test_shift_matches_a_loop_per_image():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 5, 7))
    dy, dx = np.array([0, 1, -2, 3, -5, 6]), np.array([0, -1, 2, 0, 4, -7])
    got = shift_images(x, dy, dx)
    for n in range(6):
        np.testing.assert_array_equal(got[n], _shift_loop(x[n], dy[n], dx[n]))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_by_right_angles_is_exact_on_square_images(k):
    x = np.random.default_rng(1).standard_normal((3, 2, 5, 5))
    got = rotate_images(x, np.full(3, 90.0 * k))
    np.testing.assert_allclose(got, np.rot90(x, k, axes=(2, 3)), atol=1e-12)


def test_rotation_matches_a_loop_per_image_at_any_angle():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2, 6, 7))
    angles = np.array([0.0, 13.0, -37.5, 171.0])
    got = rotate_images(x, angles)
    for n in range(4):
        np.testing.assert_allclose(got[n], _rotate_loop(x[n], angles[n]), atol=1e-12)
    np.testing.assert_allclose(got[0], x[0], atol=1e-12)  # 0 degrees: identity


def test_random_transforms_keep_dtype_are_seeded_and_differ_per_image():
    x = np.random.default_rng(3).random((8, 1, 8, 8)).astype(np.float32)
    t = Compose([RandomShift(2), RandomRotation(15)])
    a, b = t(x, np.random.default_rng(7)), t(x, np.random.default_rng(7))
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, t(x, np.random.default_rng(8)))
    same = np.repeat(x[:1], 8, axis=0)  # one image 8 times: different shifts per copy
    assert len({RandomShift(2)(same, np.random.default_rng(0))[i].tobytes() for i in range(8)}) > 1
    np.testing.assert_array_equal(RandomShift(0)(x, np.random.default_rng(0)), x)


@pytest.mark.parametrize("make, error, match", [
    (lambda: RandomShift(-1), ValueError, "max_shift must be >= 0"),
    (lambda: RandomShift(1.5), TypeError, "max_shift"),
    (lambda: RandomRotation(-5), ValueError, "degrees"),
    # accepted, then "OverflowError: high - low range exceeds valid bounds" at the first batch
    (lambda: RandomRotation(1e308), ValueError, r"RandomRotation: degrees must be in \[0, 360\].*degrees=1e\+308"),
    (lambda: RandomRotation(361), ValueError, r"degrees must be in \[0, 360\]"),
    (lambda: RandomRotation(float("inf")), ValueError, "degrees"),
    (lambda: Compose([RandomShift(1), "flip"]), TypeError, "must be callable"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_rotation_up_to_360_degrees_is_accepted():
    x = np.ones((3, 1, 8, 8), np.float32)
    assert RandomRotation(360)(x, np.random.default_rng(0)).shape == x.shape


# ---------------------------------------------------------------- through fit
def _trainer(seed=0):
    rng = np.random.default_rng(seed)
    model = mdl.Sequential(mdl.layers.Conv2D(1, 4, 3, padding=1, rng=rng), mdl.layers.ReLU(),
                           mdl.layers.Flatten(), mdl.layers.Dense(4 * 8 * 8, 10, rng=rng))
    return mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                       mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))


def _data():
    rng = np.random.default_rng(5)
    return rng.random((40, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 40)


def test_fit_with_transform_is_reproducible_and_changes_training():
    X, y = _data()
    aug = Compose([RandomShift(1), RandomRotation(10)])
    h1 = _trainer().fit(X, y, epochs=3, batch_size=16, seed=3, transform=aug, progress=False)
    h2 = _trainer().fit(X, y, epochs=3, batch_size=16, seed=3, transform=aug, progress=False)
    plain = _trainer().fit(X, y, epochs=3, batch_size=16, seed=3, progress=False)
    assert h1.history == h2.history
    assert h1.history["loss"] != plain.history["loss"]


def test_transform_sees_training_batches_only():
    X, y = _data()
    seen = []

    def record(xb, rng):
        seen.append(len(xb))
        return xb.copy()

    _trainer().fit(X, y, epochs=2, batch_size=16, seed=0, transform=record, progress=False,
                   validation_data=(X[:10], y[:10]))
    assert seen == [16, 16, 8] * 2


def test_resumed_run_with_transform_equals_an_uninterrupted_one(tmp_path):
    X, y = _data()
    aug = RandomShift(2)
    full = _trainer()
    full.fit(X, y, epochs=4, batch_size=16, seed=9, transform=aug, progress=False)
    first = _trainer()
    first.fit(X, y, epochs=2, batch_size=16, seed=9, transform=aug, progress=False)
    first.save_checkpoint(tmp_path / "ckpt.npz")
    resumed = _trainer(seed=1)  # other initial weights: the checkpoint replaces them
    resumed.load_checkpoint(tmp_path / "ckpt.npz")
    resumed.fit(X, y, epochs=4, batch_size=16, transform=aug, progress=False)
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("transform, match", [
    (lambda xb, rng: xb[:, :, :4], r"shape \(16, 1, 8, 8\).*Received: ndarray \(16, 1, 4, 8\)"),
    (lambda xb, rng: xb.astype(np.float64), r"dtype float32.*float64"),
    (lambda xb, rng: xb.tolist(), r"Received: list"),
])
def test_transform_returning_the_wrong_thing_is_refused(transform, match):
    X, y = _data()
    with pytest.raises(TypeError, match=match):
        _trainer().fit(X, y, epochs=1, batch_size=16, transform=transform, progress=False)


def test_transform_must_be_callable():
    X, y = _data()
    with pytest.raises(TypeError, match="transform must be callable"):
        _trainer().fit(X, y, epochs=1, transform="shift", progress=False)
