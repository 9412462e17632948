"""Dropout / Dropout2D: the kernel with a given mask, mask statistics, seeding, modes, files."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers, losses
from minidl.testing import tie_free

RNG = np.random.default_rng


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.75, 1.0])
def test_kernel_scales_kept_values_exactly_and_zeroes_the_rest(p, dtype):
    rng = RNG(0)
    x = rng.standard_normal((50, 40)).astype(dtype)
    mask = rng.random(x.shape) >= p
    y = F.dropout(x, mask, p)
    scale = dtype(0.0 if p == 1 else 1 / (1 - p))
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_array_equal(y[mask], x[mask] * scale)  # bit for bit
    assert np.all(y[~mask] == 0) and not np.isnan(y).any()
    g = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(F.dropout_backward(g, mask, p), np.where(mask, g * scale, 0))


def test_kernel_with_a_channel_mask_and_its_gradcheck():
    rng = RNG(1)
    x = tie_free((3, 4, 2, 5), rng)
    mask = rng.random((3, 4, 1, 1)) >= 0.5

    class Fixed(mdl.layers.Layer):  # the kernel with one given mask, as a layer for gradcheck
        def forward(self, x):
            self.save_for_backward(x.shape)
            return F.dropout(x, mask, 0.4)

        def backward(self, g):
            return F.dropout_backward(g, mask, 0.4)

    y = Fixed()(x)
    assert np.all((y == 0) == np.broadcast_to(~mask, x.shape))
    assert mdl.gradcheck(Fixed(), x).passed


def test_kernel_refuses_bad_masks_and_probabilities():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"mask must be a bool array of the input's shape \(2, 3\)"):
        F.dropout(x, np.ones((2, 3)), 0.5)
    with pytest.raises(ValueError, match="broadcastable"):
        F.dropout(x, np.ones((3,), bool), 0.5)
    with pytest.raises(ValueError, match="has to be between 0 and 1"):
        F.dropout(x, np.ones((2, 3), bool), 1.5)


@pytest.mark.parametrize("p", [-0.1, 1.01, float("nan"), float("inf")])
def test_p_out_of_range_is_a_value_error(p):
    for cls in (layers.Dropout, layers.Dropout2D):
        with pytest.raises(ValueError, match=rf"{cls.__name__}: dropout probability p has to be between 0 and 1"):
            cls(p)


@pytest.mark.parametrize("p", ["0.5", True, None, [0.5]])
def test_p_not_a_number_is_a_type_error(p):
    with pytest.raises(TypeError, match="p must be a real number in"):
        layers.Dropout(p)


def test_rng_argument_checked():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator, an int seed or None"):
        layers.Dropout(0.5, rng=0.5)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        layers.Dropout(0.5, rng=-1)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_kept_fraction_and_scaling_for_a_large_input(p):
    x = np.ones((1000, 1000), np.float32)
    y = layers.Dropout(p, rng=2)(x)
    kept = y != 0
    sigma = np.sqrt(p * (1 - p) / x.size)  # binomial standard deviation of the kept fraction
    assert abs(kept.mean() - (1 - p)) < 5 * sigma, (kept.mean(), 1 - p, sigma)
    assert np.all(y[kept] == np.float32(1 / (1 - p)))  # exactly the scale
    assert abs(y.mean() - 1) < 5 * sigma / (1 - p)  # the expectation is the input


def test_dropout2d_drops_whole_channels_with_the_right_frequency():
    x = np.ones((400, 250, 2, 3), np.float32)
    y = layers.Dropout2D(0.3, rng=3)(x)
    per_channel = y.reshape(400, 250, -1)
    assert np.all(per_channel == per_channel[:, :, :1])  # all or nothing per (sample, channel)
    kept = per_channel[:, :, 0] != 0
    sigma = np.sqrt(0.3 * 0.7 / kept.size)
    assert abs(kept.mean() - 0.7) < 5 * sigma
    assert np.all(per_channel[kept] == np.float32(1 / 0.7))
    with pytest.raises(ValueError, match=r"Dropout2D\(p=0.5\): expected input with 4 dimensions \(N, C, H, W\)"):
        layers.Dropout2D()(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("cls,shape", [(layers.Dropout, (6, 7)), (layers.Dropout2D, (4, 5, 3, 3))])
def test_same_seed_same_masks_and_backward_applies_the_forward_mask(cls, shape):
    x = RNG(4).standard_normal(shape).astype(np.float32)
    a, b, c = cls(0.5, rng=11), cls(0.5, rng=np.random.default_rng(11)), cls(0.5, rng=12)
    ya1, ya2 = a(x), a(x)
    assert not np.array_equal(ya1, ya2)  # a new mask per call
    np.testing.assert_array_equal(b(x), ya1)
    np.testing.assert_array_equal(b(x), ya2)
    assert not np.array_equal(c(x), ya1)
    g = RNG(5).standard_normal(shape).astype(np.float32)
    dx = b.backward(g)  # b's last forward drew ya2's mask
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx == 0, ya2 == 0)
    np.testing.assert_array_equal(dx[ya2 != 0], g[ya2 != 0] * np.float32(2.0))
    mask, _, _ = b.saved_values
    assert mask.dtype == np.bool_ and mask.shape == b.mask_shape(shape)  # 1 byte per mask value


def test_eval_mode_is_the_identity_and_draws_nothing():
    d = layers.Dropout(0.5, rng=0)
    state = d.rng.bit_generator.state
    x = np.ones((3, 4), np.float32)
    d.eval()
    assert d(x) is x  # the input itself, as torch
    assert d.rng.bit_generator.state == state
    with pytest.raises(RuntimeError, match="eval mode"):
        d.backward(x)


def test_p_one_zeroes_everything_and_p_zero_is_the_identity():
    x = RNG(6).standard_normal((5, 5))
    d = layers.Dropout(1, rng=0)
    np.testing.assert_array_equal(d(x), np.zeros_like(x))
    np.testing.assert_array_equal(d.backward(np.ones_like(x)), np.zeros_like(x))
    np.testing.assert_array_equal(layers.Dropout(0.0, rng=0)(x), x)


def test_gradcheck_needs_a_fixed_mask():
    """Why the contract suite checks a frozen-mask Dropout: gradcheck runs forward many times, and
    each draws a new mask, so the numeric gradient of plain Dropout is meaningless."""
    x = tie_free((4, 5), RNG(7))
    assert not mdl.gradcheck(layers.Dropout(0.5, rng=0), x).passed


class ForgetsTheScale(layers.Dropout):
    """A wrong backward: the mask without the 1 / (1 - p) scale; the mask is frozen for gradcheck."""

    def draw_mask(self, shape):
        self._mask = getattr(self, "_mask", None)
        if self._mask is None:
            self._mask = super().draw_mask(shape)
        return self._mask

    def backward(self, grad_output):
        mask, shape, dtype = self.saved_values
        return grad_output * mask


def test_gradcheck_with_a_frozen_mask_catches_a_wrong_backward():
    x = tie_free((4, 5), RNG(8))
    report = mdl.gradcheck(ForgetsTheScale(0.5, rng=0), x)
    assert not report.passed and 0.4 < report.tensors[0].max_rel_err <= 0.5 + 1e-6


def test_parity_with_torch_for_torchs_own_masks():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = RNG(9).standard_normal((4, 6, 3, 3))
    for tmod, shape in ((torch.nn.Dropout(0.3), x.shape), (torch.nn.Dropout2d(0.3), (4, 6, 1, 1))):
        xt = torch.tensor(x, requires_grad=True)
        yt = tmod(xt)
        g = RNG(10).standard_normal(x.shape)
        yt.backward(torch.from_numpy(g))
        mask = (yt.detach().numpy() != 0).reshape(4, 6, -1)[:, :, :1].reshape(shape) if len(shape) == 4 \
            and shape[2] == 1 else yt.detach().numpy() != 0
        np.testing.assert_array_equal(F.dropout(x, mask, 0.3), yt.detach().numpy())
        np.testing.assert_array_equal(F.dropout_backward(g, mask, 0.3), xt.grad.numpy())


def test_save_and_load_keep_the_config_not_the_generator_state(tmp_path):
    model = mdl.Sequential(layers.Dense(4, 4, rng=0), layers.Dropout(0.25, rng=1), layers.ReLU(),
                           layers.Dropout2D(0.6, rng=2))
    mdl.save(model, tmp_path / "m.npz")
    loaded = mdl.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model) and loaded[1].get_config() == {"p": 0.25}
    assert loaded[3].get_config() == {"p": 0.6} and type(loaded[3]) is layers.Dropout2D
    x = RNG(11).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded[:3].eval()(x), model[:3].eval()(x))


def test_seeded_training_with_dropout_is_reproducible():
    rng = RNG(12)
    X, y = rng.standard_normal((40, 5)).astype(np.float32), rng.integers(0, 3, 40)

    def run():
        model = mdl.Sequential(layers.Dense(5, 16, rng=0), layers.ReLU(), layers.Dropout(0.5, rng=1),
                               layers.Dense(16, 3, rng=2))
        trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
        trainer.fit(X, y, epochs=2, batch_size=8, seed=0, progress=False)
        return model.state_dict(), trainer.history.history

    (a, ha), (b, hb) = run(), run()
    assert ha == hb
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_a_resumed_run_draws_the_masks_of_the_uninterrupted_run(tmp_path):
    """Trainer checkpoints carry the state of every layer's generator (layer_rngs)."""
    rng = RNG(13)
    X, y = rng.standard_normal((40, 5)).astype(np.float32), rng.integers(0, 3, 40)

    def trainer():
        gen = np.random.default_rng(3)  # one generator shared by two layers stays shared
        model = mdl.Sequential(layers.Dense(5, 16, rng=0), layers.Dropout(0.5, rng=gen), layers.ReLU(),
                               layers.Dense(16, 16, rng=1), layers.Dropout(0.2, rng=gen), layers.Dense(16, 3, rng=2))
        return mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))

    straight = trainer()
    straight.fit(X, y, epochs=3, batch_size=8, seed=0, progress=False)
    first = trainer()
    first.fit(X, y, epochs=1, batch_size=8, seed=0, progress=False)
    first.save_checkpoint(tmp_path / "c.npz")
    resumed = trainer()
    resumed.load_checkpoint(tmp_path / "c.npz")
    assert resumed.model[1].rng is resumed.model[4].rng
    resumed.fit(X, y, epochs=3, batch_size=8, seed=0, progress=False)
    assert resumed.history.history == straight.history.history
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("bad", [{"9": None}, {"1": {"bit_generator": "PCG64", "state": "x"}}, []])
def test_a_checkpoint_with_bad_generator_states_is_refused_and_changes_nothing(tmp_path, bad):
    def trainer():
        model = mdl.Sequential(layers.Dense(3, 3, rng=0), layers.Dropout(0.5, rng=1))
        return mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))

    t = trainer()
    t.fit(np.ones((4, 3), np.float32), np.array([0, 1, 2, 0]), epochs=1, batch_size=2, seed=0, progress=False)
    t.save_checkpoint(tmp_path / "c.npz")
    file = mdl.io.read(tmp_path / "c.npz")
    file.extra_meta["trainer"]["layer_rngs"] = bad
    mdl.io.write(file.model, tmp_path / "bad.npz", file.extra_meta, file.extra_arrays)
    fresh = trainer()
    state, weights = fresh.model[1].rng.bit_generator.state, fresh.model.state_dict()
    with pytest.raises(ValueError, match="generator"):
        fresh.load_checkpoint(tmp_path / "bad.npz")
    assert fresh.model[1].rng.bit_generator.state == state
    for k, v in fresh.model.state_dict().items():
        np.testing.assert_array_equal(v, weights[k])
