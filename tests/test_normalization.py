"""LayerNorm, GroupNorm and InstanceNorm2D against torch.nn (the oracle), beyond the registry's examples:
inputs with a large mean, every gradient in float64, running statistics step by step, float32/float16,
a batch of one, the errors, and the memory a forward and backward allocate."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import functional as F
from minidl import layers as L

torch = pytest.importorskip("torch")

TOL = 1e-10

# (id, our layer in float64, torch's, input shape)
PAIRS = [
    ("layernorm_last", lambda: L.LayerNorm(6, dtype=np.float64), lambda: torch.nn.LayerNorm(6), (3, 4, 5, 6)),
    ("layernorm_last2_nobias", lambda: L.LayerNorm((5, 6), bias=False, dtype=np.float64),
     lambda: torch.nn.LayerNorm((5, 6), bias=False), (3, 4, 5, 6)),
    ("layernorm_noaffine", lambda: L.LayerNorm(6, elementwise_affine=False, eps=1e-3, dtype=np.float64),
     lambda: torch.nn.LayerNorm(6, elementwise_affine=False, eps=1e-3), (4, 6)),
    ("groupnorm_2", lambda: L.GroupNorm(2, 4, dtype=np.float64), lambda: torch.nn.GroupNorm(2, 4), (3, 4, 5, 6)),
    ("groupnorm_1_3d", lambda: L.GroupNorm(1, 4, dtype=np.float64), lambda: torch.nn.GroupNorm(1, 4), (3, 4, 7)),
    ("groupnorm_per_channel_nobias", lambda: L.GroupNorm(4, 4, bias=False, dtype=np.float64),
     lambda: torch.nn.GroupNorm(4, 4, bias=False), (2, 4, 3, 3)),
    ("groupnorm_2d_input", lambda: L.GroupNorm(3, 6, dtype=np.float64), lambda: torch.nn.GroupNorm(3, 6), (5, 6)),
    ("instancenorm", lambda: L.InstanceNorm2D(4, dtype=np.float64), lambda: torch.nn.InstanceNorm2d(4),
     (3, 4, 5, 6)),
    ("instancenorm_affine_tracked", lambda: L.InstanceNorm2D(4, affine=True, track_running_stats=True,
                                                             dtype=np.float64),
     lambda: torch.nn.InstanceNorm2d(4, affine=True, track_running_stats=True), (3, 4, 5, 6)),
]
IDS = [p[0] for p in PAIRS]


def _twins(ours, theirs, seed=0):
    """Our layer and torch's in float64 with the same random weights."""
    rng = np.random.default_rng(seed)
    layer, module = ours(), theirs().double()
    for name, p in layer.named_parameters():
        p.data[...] = rng.standard_normal(p.data.shape)
        getattr(module, name).data = torch.from_numpy(p.data.copy())
    return layer, module


def _input(shape, seed=1, dtype=np.float64):
    """Values around a large mean (1000), where a one-pass variance would lose digits."""
    rng = np.random.default_rng(seed)
    return (1000 + 3 * rng.standard_normal(shape)).astype(dtype), rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("name, ours, theirs, shape", PAIRS, ids=IDS)
def test_matches_torch_float64_values_and_every_gradient(name, ours, theirs, shape):
    layer, module = _twins(ours, theirs)
    x, g = _input(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    yt.backward(torch.from_numpy(g))
    y, dx = layer(x), layer.backward(g)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-8)  # dx scales with 1/std = 1/3
    grads = dict(module.named_parameters())
    assert [n for n, _ in layer.named_parameters()] == list(grads)
    for pname, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, grads[pname].grad.numpy(), rtol=0, atol=TOL, err_msg=pname)


@pytest.mark.parametrize("name, ours, theirs, shape", PAIRS, ids=IDS)
def test_float32_close_to_torch_and_dtype_kept(name, ours, theirs, shape):
    rng = np.random.default_rng(3)
    layer, module = ours(), theirs()
    layer = type(layer)(**{**layer.get_config(), "dtype": "float32"})
    x, g = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    y, dx = layer(x), layer.backward(g)
    assert y.dtype == dx.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())
    xt = torch.tensor(x, requires_grad=True)
    module(xt).backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, module(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel, args", [
    (F.layer_norm, (8,)), (F.group_norm, (2,)), (F.instance_norm, ()),
], ids=["layer_norm", "group_norm", "instance_norm"])
def test_float16_computed_in_float32_and_rounded_back(kernel, args):
    x = np.random.default_rng(4).standard_normal((2, 4, 8)).astype(np.float16)
    got = kernel(x, *args)
    assert got.dtype == np.float16
    expected = kernel(x.astype(np.float32), *args).astype(np.float16)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("momentum", [0.3, None])
def test_instance_norm_running_statistics_follow_torch_over_steps(momentum):
    """Training updates the running mean and the *unbiased* variance averaged over the batch (momentum None:
    no update, as torch); eval mode normalises with them, and num_batches_tracked stays 0 as torch's."""
    layer = L.InstanceNorm2D(3, momentum=momentum, track_running_stats=True, dtype=np.float64)
    module = torch.nn.InstanceNorm2d(3, momentum=momentum, track_running_stats=True).double()
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = 5 + 2 * rng.standard_normal((4, 3, 3, 5))
        np.testing.assert_allclose(layer(x), module(torch.from_numpy(x)).detach().numpy(), rtol=0, atol=TOL)
    for key, value in module.state_dict().items():
        np.testing.assert_allclose(getattr(layer, key), value.numpy(), rtol=0, atol=TOL, err_msg=key)
    x = rng.standard_normal((2, 3, 4, 4))
    layer.eval(), module.eval()
    np.testing.assert_allclose(layer(x), module(torch.from_numpy(x)).numpy(), rtol=0, atol=TOL)


def test_eval_mode_gradient_with_running_statistics_matches_torch():
    """With track_running_stats, eval mode's statistics are constants: dx = weight * inv_std * dy."""
    import minidl

    layer, module = _twins(PAIRS[-1][1], PAIRS[-1][2])
    layer.running_mean[...] = [0.5, -1.0, 2.0, 0.0]
    layer.running_var[...] = [0.25, 2.0, 1.0, 4.0]
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
    layer.eval(), module.eval()
    x, g = _input((2, 4, 3, 3))
    xt = torch.tensor(x, requires_grad=True)
    module(xt).backward(torch.from_numpy(g))
    with minidl.enable_grad():
        layer(x)
        dx = layer.backward(g)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(layer.weight.grad, module.weight.grad.numpy(), rtol=0, atol=1e-8)


@pytest.mark.parametrize("layer, shape", [
    (L.LayerNorm(5), (1, 5)), (L.GroupNorm(2, 4), (1, 4, 3, 3)), (L.InstanceNorm2D(2, affine=True), (1, 2, 3, 3)),
], ids=["layernorm", "groupnorm", "instancenorm"])
def test_a_batch_of_one_trains_and_gives_the_same_in_both_modes(layer, shape):
    """Per-sample statistics: no batch needed (BatchNorm refuses one value per channel)."""
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    y = layer(x)
    assert layer.backward(np.ones_like(y)).shape == shape
    np.testing.assert_array_equal(layer.eval()(x), y)


@pytest.mark.parametrize("make, x, error, match", [
    (lambda: L.LayerNorm(5), np.zeros((2, 4), np.float32), ValueError, r"LayerNorm.*normalized_shape \(5,\).*\(2, 4\)"),
    (lambda: L.LayerNorm(5), np.zeros((2, 5), np.float64), TypeError, r"LayerNorm.*float32"),
    (lambda: L.GroupNorm(2, 4), np.zeros((2, 6, 3), np.float32), ValueError, r"GroupNorm.*4 channels.*\(2, 6, 3\)"),
    (lambda: L.GroupNorm(2, 4), np.zeros((2,), np.float32), ValueError, r"GroupNorm.*\(N, C, \*\)"),
    (lambda: L.InstanceNorm2D(3), np.zeros((3, 4, 4), np.float32), ValueError, r"InstanceNorm2D.*4 dimensions"),
    (lambda: L.InstanceNorm2D(3), np.zeros((2, 3, 1, 1), np.float32), ValueError,
     r"InstanceNorm2D.*more than 1 spatial value"),
    (lambda: L.InstanceNorm2D(3), [[1.0]], TypeError, r"InstanceNorm2D.*ndarray"),
], ids=["ln_trailing", "ln_dtype", "gn_channels", "gn_rank", "in_unbatched", "in_1x1", "in_list"])
def test_bad_input_names_the_layer_and_the_fix(make, x, error, match):
    with pytest.raises(error, match=match):
        make()(x)


@pytest.mark.parametrize("make, error, match", [
    (lambda: L.GroupNorm(4, 6), ValueError, r"GroupNorm: num_channels must be divisible by num_groups"),
    (lambda: L.GroupNorm(0, 6), ValueError, r"GroupNorm: num_groups"),
    (lambda: L.LayerNorm((3, 0)), TypeError, r"LayerNorm: normalized_shape"),
    (lambda: L.LayerNorm(2.5), TypeError, r"LayerNorm: normalized_shape"),
    (lambda: L.InstanceNorm2D(3, momentum=2), ValueError, r"InstanceNorm2D: momentum must be in \[0, 1\]"),
    (lambda: L.LayerNorm(3, eps=0), ValueError, r"LayerNorm: eps"),
], ids=["gn_divisible", "gn_zero", "ln_zero", "ln_float", "in_momentum", "ln_eps"])
def test_bad_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("layer", [L.LayerNorm(4, bias=False), L.GroupNorm(2, 4, affine=False),
                                   L.InstanceNorm2D(4, affine=True, track_running_stats=True, momentum=None)],
                         ids=["layernorm", "groupnorm", "instancenorm"])
def test_config_rebuilds_the_layer(layer):
    again = type(layer)(**layer.get_config())
    assert repr(again) == repr(layer) and again.get_config() == layer.get_config()
    assert list(again.state_dict()) == list(layer.state_dict())


def test_a_float64_layer_shows_and_stores_its_dtype_by_name():
    """As every layer: ``dtype='float64'`` in the repr (not ``dtype('float64')``), 'float64' in the config."""
    for layer in (L.LayerNorm(3, dtype=np.float64), L.GroupNorm(1, 2, dtype=np.float64),
                  L.InstanceNorm2D(2, track_running_stats=True, dtype=np.float64)):
        assert "dtype='float64'" in repr(layer) and layer.get_config()["dtype"] == "float64"
        assert type(layer)(**layer.get_config()).state_dict()["running_mean" if "running_mean" in
                                                             layer.state_dict() else "weight"].dtype == np.float64
