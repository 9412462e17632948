"""One contract that every built-in layer (and the loss) must satisfy.

Each case is ``(id, layer factory, input factory, expected output shape,
expected parameters)``. Every contract check is a plain function that raises
``AssertionError`` when a layer breaks the contract; the ``test_*`` functions
run each check over every case, and the tests at the bottom feed deliberately
broken layers to the same checks to show that the suite would catch them.

Inputs for the gradient checks avoid kinks: :func:`tie_free` gives values that
are all distinct (no ties in a max-pool window) and at least ``1/size`` away
from 0 (no ReLU input near its kink).
"""

from __future__ import annotations

import copy
import inspect
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses
from minidl.testing import assert_gradients, tie_free

DTYPES = [np.float32, np.float64]


# --------------------------------------------------------------------- helpers
def test_tie_free_helper():
    rng = np.random.default_rng(0)
    for shape in [(2, 3, 4, 4), (1, 1, 5, 7), (7,)]:
        x = tie_free(shape, rng)
        assert x.shape == shape and x.dtype == np.float64
        v = np.sort(x.ravel())
        assert np.all(np.diff(v) > 0.5 / x.size)
        assert np.abs(x).min() > 1.0 / x.size
        assert np.abs(x).max() < 2.5
        assert (x > 0).any() and (x < 0).any()


def floats(*shapes):
    """Input factory: one tie-free array per shape, in the requested dtype."""
    return lambda dtype, rng: tuple(tie_free(s, rng).astype(dtype) for s in shapes)


def logits_and_labels(n, k, ignored=()):
    def make(dtype, rng):
        labels = rng.integers(0, k, n)
        labels[list(ignored)] = -100
        return tie_free((n, k), rng).astype(dtype) * 2, labels
    return make


def probs_and_targets(shape):
    """Probabilities in (0.05, 0.95) and soft targets in [0, 1], for the binary cross-entropy."""
    return lambda dtype, rng: (rng.uniform(0.05, 0.95, shape).astype(dtype), rng.uniform(0, 1, shape).astype(dtype))


def log_probs_and_labels(n, k, ignored=()):
    """Log-probabilities and integer labels (some ignored), for NLLLoss."""
    def make(dtype, rng):
        labels = rng.integers(0, k, n)
        labels[list(ignored)] = -100
        return np.log(rng.dirichlet(np.ones(k), size=n)).astype(dtype), labels
    return make


def log_probs_and_probs(n, k, log_target=False):
    """Log-probabilities and a target distribution (its logs with ``log_target``), for KLDivLoss."""
    def make(dtype, rng):
        p, q = rng.dirichlet(np.ones(k), size=n), rng.dirichlet(np.ones(k), size=n)
        return np.log(p).astype(dtype), (np.log(q) if log_target else q).astype(dtype)
    return make


def logits_and_probs(n, k):
    def make(dtype, rng):
        p = rng.uniform(0.1, 1.0, (n, k))
        return tie_free((n, k), rng).astype(dtype) * 2, (p / p.sum(1, keepdims=True)).astype(dtype)
    return make


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable  # (dtype, rng) -> layer
    inputs: Callable  # (dtype, rng) -> tuple of inputs
    out_shape: tuple | None  # None: a loss, forward returns a Python float
    params: dict = field(default_factory=dict)  # name -> shape, in named_parameters order
    repr_has: tuple = ()  # substrings the repr must contain besides the class name
    buffers: dict = field(default_factory=dict)  # name -> shape of the persistent buffers, in order
    mode_dependent: bool = False  # True: eval mode computes something else (BatchNorm, Dropout)

    @property
    def is_loss(self) -> bool:
        return self.out_shape is None

    def n_float_inputs(self, xs) -> int:
        return 1 if self.is_loss else len(xs)


def conv(*args, **kw):
    return lambda dtype, rng: layers.Conv2D(*args, dtype=dtype, rng=rng, **kw)


def conv1d(*args, **kw):
    return lambda dtype, rng: layers.Conv1D(*args, dtype=dtype, rng=rng, **kw)


def convt(*args, **kw):
    return lambda dtype, rng: layers.ConvTranspose2D(*args, dtype=dtype, rng=rng, **kw)


def dense(*args, **kw):
    return lambda dtype, rng: layers.Dense(*args, dtype=dtype, rng=rng, **kw)


def plain(cls, *args, **kw):
    return lambda dtype, rng: cls(*args, **kw)


def batchnorm(cls, *args, **kw):
    return lambda dtype, rng: cls(*args, dtype=dtype, **kw)


@mdl.register_layer
class FrozenMaskDropout(layers.Dropout):
    """Dropout that draws its mask once (per input shape) and reuses it, so that gradcheck's
    repeated forward passes see one function; forward and backward are Dropout's own."""

    def draw_mask(self, shape):
        if getattr(self, "_mask", None) is None or self._mask.shape != self.mask_shape(shape):
            self._mask = super().draw_mask(shape)
        return self._mask


@mdl.register_layer
class FrozenMaskDropout2D(FrozenMaskDropout, layers.Dropout2D):
    pass


def dropout(cls, p):
    return lambda dtype, rng: cls(p, rng=rng)


BN_BUFFERS = lambda c: {"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()}  # noqa: E731


# Expected output shapes are worked out by hand (see each comment), not with minidl's formulas.
CASES = [
    # H_out = floor((H + 2p - d(k-1) - 1)/s) + 1
    Case("conv3x3", conv(2, 3, 3), floats((2, 2, 6, 5)), (2, 3, 4, 3),
         {"weight": (3, 2, 3, 3), "bias": (3,)}, ("2, 3", "kernel_size=(3, 3)")),
    # 'same' with stride 2 (Keras rule): H_out = ceil(7/2) = 4, W_out = ceil(6/2) = 3
    Case("conv_same_stride2", conv(2, 4, 3, stride=2, padding="same"), floats((2, 2, 7, 6)),
         (2, 4, 4, 3), {"weight": (4, 2, 3, 3), "bias": (4,)}, ("stride=(2, 2)", "same")),
    # no bias, rectangular kernel (2, 3), padding 1: H 5+2-2+1 = 6, W 5+2-3+1 = 5
    Case("conv_nobias_rect_pad1", conv(3, 2, (2, 3), padding=1, bias=False), floats((1, 3, 5, 5)),
         (1, 2, 6, 5), {"weight": (2, 3, 2, 3)}, ("bias=False", "padding=1")),
    # dilation 2, padding 2: 6 + 4 - 2*2 - 1 + 1 = 6
    Case("conv_dilated", conv(1, 2, 3, dilation=2, padding=2), floats((2, 1, 6, 6)),
         (2, 2, 6, 6), {"weight": (2, 1, 3, 3), "bias": (2,)}, ("dilation=(2, 2)",)),
    # even kernel 'same', stride 1: output size = input size
    Case("conv_same_even_kernel", conv(1, 2, 4, padding="same"), floats((1, 1, 5, 5)),
         (1, 2, 5, 5), {"weight": (2, 1, 4, 4), "bias": (2,)}, ("kernel_size=(4, 4)",)),
    # stride 2 that drops the last row/column: floor((7 - 3)/2) + 1 = 3
    Case("conv_stride2_valid", conv(1, 1, 3, stride=2), floats((2, 1, 7, 8)),
         (2, 1, 3, 3), {"weight": (1, 1, 3, 3), "bias": (1,)}, ("stride=(2, 2)",)),
    # groups 2: weight (out, in / groups, kh, kw); padding 1 reflect keeps 5 x 6
    Case("conv_groups2_reflect", conv(4, 6, 3, padding=1, groups=2, padding_mode="reflect"),
         floats((2, 4, 5, 6)), (2, 6, 5, 6), {"weight": (6, 2, 3, 3), "bias": (6,)},
         ("groups=2", "padding_mode='reflect'")),
    # depthwise (groups = in_channels), circular 'same', stride 2: ceil(7/2) = 4, ceil(5/2) = 3
    Case("conv_depthwise_circular_s2", conv(3, 3, 3, stride=2, padding="same", groups=3,
                                           padding_mode="circular"),
         floats((2, 3, 7, 5)), (2, 3, 4, 3), {"weight": (3, 1, 3, 3), "bias": (3,)}, ("groups=3",)),
    # replicate padding 2 around a 1x1 kernel: H 4 + 4 = 8, W 3 + 4 = 7
    Case("conv_replicate_k1", conv(2, 2, 1, padding=2, padding_mode="replicate", bias=False),
         floats((1, 2, 4, 3)), (1, 2, 8, 7), {"weight": (2, 2, 1, 1)}, ("replicate",)),
    # transposed: H_out = (H - 1)s - 2p + d(k - 1) + output_padding + 1; H (4 - 1)*2 - 2 + 2 + 1 + 1 = 8,
    # W (3 - 1)*2 - 2 + 2 + 1 + 1 = 6; weight (in, out / groups, kh, kw)
    Case("conv_transpose_s2_op1", convt(2, 3, 3, stride=2, padding=1, output_padding=1), floats((2, 2, 4, 3)),
         (2, 3, 8, 6), {"weight": (2, 3, 3, 3), "bias": (3,)}, ("2, 3", "output_padding=(1, 1)")),
    # groups 2, dilation 2, output_padding 1 >= stride 1: H (3 - 1) + 2*1 + 1 + 1 = 6, W (4 - 1) + 2*2 + 1 + 1 = 9
    Case("conv_transpose_groups_dilated", convt(4, 2, (2, 3), groups=2, dilation=2, output_padding=1, bias=False),
         floats((1, 4, 3, 4)), (1, 2, 6, 9), {"weight": (4, 1, 2, 3)}, ("groups=2", "dilation=(2, 2)", "bias=False")),
    # Upsample: H_out = floor(H * scale_factor) (4 * 2 = 8, 5 * 1.5 = 7.5 -> 7), or size
    Case("upsample_nearest_x2", plain(layers.Upsample, scale_factor=2), floats((2, 3, 4, 5)), (2, 3, 8, 10), {},
         ("scale_factor=2.0", "mode='nearest'")),
    Case("upsample_bilinear_factors", plain(layers.Upsample, scale_factor=(2, 1.5), mode="bilinear"),
         floats((2, 2, 4, 5)), (2, 2, 8, 7), {}, ("(2.0, 1.5)", "'bilinear'")),
    Case("upsample_bilinear_align_size", plain(layers.Upsample, size=(3, 9), mode="bilinear", align_corners=True),
         floats((1, 2, 4, 5)), (1, 2, 3, 9), {}, ("size=(3, 9)", "align_corners=True")),
    Case("relu_4d", plain(layers.ReLU), floats((2, 3, 4, 4)), (2, 3, 4, 4)),
    Case("relu_2d", plain(layers.ReLU), floats((5, 7)), (5, 7)),
    Case("leaky_relu", plain(layers.LeakyReLU), floats((2, 3, 4, 4)), (2, 3, 4, 4), {},
         ("negative_slope=0.01",)),
    Case("leaky_relu_slope", plain(layers.LeakyReLU, 0.2), floats((5, 7)), (5, 7), {}, ("0.2",)),
    Case("sigmoid", plain(layers.Sigmoid), floats((2, 3, 4)), (2, 3, 4)),
    Case("tanh", plain(layers.Tanh), floats((4, 6)), (4, 6)),
    Case("gelu", plain(layers.GELU), floats((2, 3, 4, 4)), (2, 3, 4, 4), {}, ("approximate='none'",)),
    Case("gelu_tanh", plain(layers.GELU, approximate="tanh"), floats((5, 7)), (5, 7), {}, ("'tanh'",)),
    Case("silu", plain(layers.SiLU), floats((2, 3, 4, 4)), (2, 3, 4, 4)),
    Case("elu", plain(layers.ELU), floats((2, 3, 4, 4)), (2, 3, 4, 4), {}, ("alpha=1.0",)),
    Case("elu_alpha", plain(layers.ELU, 0.5), floats((5, 7)), (5, 7), {}, ("alpha=0.5",)),
    Case("softplus", plain(layers.Softplus), floats((2, 3, 4, 4)), (2, 3, 4, 4), {}, ("beta=1.0", "threshold=20.0")),
    # threshold 1 at beta 2: x > 0.5 is linear; tie_free values lie within (-2.5, 2.5), 0.5 never hit exactly
    Case("softplus_beta_threshold", plain(layers.Softplus, beta=2.0, threshold=1.0), floats((5, 7)), (5, 7), {},
         ("beta=2.0", "threshold=1.0")),
    Case("hardswish", plain(layers.Hardswish), floats((2, 3, 4, 4)), (2, 3, 4, 4)),
    Case("mish", plain(layers.Mish), floats((2, 3, 4, 4)), (2, 3, 4, 4)),
    # one slope for all, or one per channel (axis 1): weight (num_parameters,)
    Case("prelu", batchnorm(layers.PReLU), floats((2, 3, 4, 4)), (2, 3, 4, 4), {"weight": (1,)},
         ("num_parameters=1", "init=0.25")),
    Case("prelu_channels", batchnorm(layers.PReLU, 3, init=0.1), floats((2, 3, 4, 4)), (2, 3, 4, 4),
         {"weight": (3,)}, ("num_parameters=3", "init=0.1")),
    Case("prelu_2d", batchnorm(layers.PReLU, 7), floats((5, 7)), (5, 7), {"weight": (7,)}),
    Case("identity", plain(layers.Identity), floats((2, 3, 4)), (2, 3, 4)),
    Case("softmax", plain(layers.Softmax), floats((4, 6)), (4, 6), {}, ("axis=1",)),
    Case("log_softmax", plain(layers.LogSoftmax), floats((4, 6)), (4, 6), {}, ("axis=1",)),
    Case("log_softmax_axis0_3d", plain(layers.LogSoftmax, axis=0), floats((3, 2, 5)), (3, 2, 5), {}, ("axis=0",)),
    Case("softmax_last_axis_4d", plain(layers.Softmax, axis=-1), floats((2, 3, 4, 5)), (2, 3, 4, 5), {},
         ("axis=-1",)),
    # floor((H - k)/s) + 1
    Case("maxpool2", plain(layers.MaxPool2D, 2), floats((2, 3, 6, 6)), (2, 3, 3, 3), {},
         ("kernel_size=(2, 2)",)),
    Case("maxpool2_odd_input", plain(layers.MaxPool2D, 2), floats((1, 2, 7, 5)), (1, 2, 3, 2)),
    Case("maxpool3_stride1_overlap", plain(layers.MaxPool2D, 3, stride=1), floats((1, 2, 5, 6)),
         (1, 2, 3, 4), {}, ("stride=(1, 1)",)),
    # floor((7 + 2 - 3)/2) + 1 = 4
    Case("maxpool3_stride2_pad1", plain(layers.MaxPool2D, 3, stride=2, padding=1),
         floats((2, 1, 7, 7)), (2, 1, 4, 4), {}, ("padding=1",)),
    # H floor((5 - 2)/1) + 1 = 4, W floor((7 - 3)/2) + 1 = 3
    Case("maxpool_rect", plain(layers.MaxPool2D, (2, 3), stride=(1, 2)), floats((1, 1, 5, 7)),
         (1, 1, 4, 3)),
    # dilation 2: span 3, floor((7 - 3)/1) + 1 = 5; W floor((6 - 3)/2) + 1 = 2
    Case("maxpool2_dilated", plain(layers.MaxPool2D, 2, stride=(1, 2), dilation=2), floats((1, 2, 7, 6)),
         (1, 2, 5, 2), {}, ("dilation=(2, 2)",)),
    # ceil_mode: ceil((7 + 2 - 3)/2) + 1 = 4 (unchanged), W: ceil((6 + 2 - 3)/2) + 1 = 4 (floor gives 3)
    Case("maxpool3_ceil_pad1", plain(layers.MaxPool2D, 3, stride=2, padding=1, ceil_mode=True),
         floats((2, 1, 7, 6)), (2, 1, 4, 4), {}, ("ceil_mode=True",)),
    Case("avgpool2", plain(layers.AvgPool2D, 2), floats((2, 3, 6, 6)), (2, 3, 3, 3), {}, ("kernel_size=(2, 2)",)),
    # floor((7 + 2 - 3)/2) + 1 = 4; W ceil((6 + 2 - 3)/2) + 1 = 4
    Case("avgpool3_pad1_ceil_exclude_pad",
         plain(layers.AvgPool2D, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
         floats((2, 2, 7, 6)), (2, 2, 4, 4), {}, ("count_include_pad=False", "ceil_mode=True")),
    Case("avgpool_rect_overlap", plain(layers.AvgPool2D, (2, 3), stride=1, padding=(1, 1)),
         floats((1, 2, 4, 5)), (1, 2, 5, 5), {}, ("padding=(1, 1)",)),
    Case("global_avgpool", plain(layers.GlobalAvgPool2D), floats((2, 3, 5, 4)), (2, 3, 1, 1)),
    # adaptive: the output is output_size, whatever the input; None keeps the input's size (W = 6)
    Case("adaptive_avgpool_overlapping", plain(layers.AdaptiveAvgPool2D, (3, 2)), floats((2, 3, 7, 5)), (2, 3, 3, 2),
         {}, ("output_size=(3, 2)",)),
    Case("adaptive_avgpool_none", plain(layers.AdaptiveAvgPool2D, (2, None)), floats((1, 2, 4, 6)), (1, 2, 2, 6),
         {}, ("output_size=(2, None)",)),
    Case("adaptive_maxpool_larger_than_input", plain(layers.AdaptiveMaxPool2D, 5), floats((2, 2, 3, 4)),
         (2, 2, 5, 5), {}, ("output_size=(5, 5)",)),
    Case("global_maxpool", plain(layers.GlobalMaxPool2D), floats((2, 3, 5, 4)), (2, 3, 1, 1)),
    # 1-D, (N, C, L): L_out = floor((L + 2p - d(k - 1) - 1)/s) + 1; 9 + 2 - 2 - 1 = 8, /2 -> 4 + 1 = 5
    Case("conv1d_k3_s2_p1", conv1d(2, 4, 3, stride=2, padding=1), floats((2, 2, 9)), (2, 4, 5),
         {"weight": (4, 2, 3), "bias": (4,)}, ("2, 4", "kernel_size=3", "stride=2")),
    # 'same', stride 1: L kept; groups 2: weight (out, in / groups, k) = (6, 2, 4)
    Case("conv1d_same_groups2", conv1d(4, 6, 4, padding="same", groups=2, bias=False), floats((1, 4, 7)),
         (1, 6, 7), {"weight": (6, 2, 4)}, ("padding='same'", "groups=2", "bias=False")),
    # circular padding 2, dilation 2: 6 + 4 - 2*2 - 1 + 1 = 6
    Case("conv1d_circular_dilated", conv1d(1, 2, 3, padding=2, dilation=2, padding_mode="circular"),
         floats((2, 1, 6)), (2, 2, 6), {"weight": (2, 1, 3), "bias": (2,)}, ("circular", "dilation=2")),
    # floor((9 - 2)/2) + 1 = 4
    Case("maxpool1d_2", plain(layers.MaxPool1D, 2), floats((2, 3, 9)), (2, 3, 4), {}, ("kernel_size=2",)),
    # ceil((8 + 2 - 3)/2) + 1 = 5 (floor gives 4)
    Case("maxpool1d_ceil_pad1", plain(layers.MaxPool1D, 3, stride=2, padding=1, ceil_mode=True),
         floats((1, 2, 8)), (1, 2, 5), {}, ("ceil_mode=True", "padding=1")),
    # dilation 2, span 3: floor((7 - 3)/1) + 1 = 5
    Case("maxpool1d_dilated", plain(layers.MaxPool1D, 2, stride=1, dilation=2), floats((1, 2, 7)), (1, 2, 5),
         {}, ("dilation=2",)),
    Case("avgpool1d_2", plain(layers.AvgPool1D, 2), floats((2, 3, 8)), (2, 3, 4), {}, ("kernel_size=2",)),
    # floor((7 + 2 - 3)/2) + 1 = 4 (ceil gives 4 as well)
    Case("avgpool1d_pad1_exclude_pad", plain(layers.AvgPool1D, 3, stride=2, padding=1, count_include_pad=False),
         floats((2, 2, 7)), (2, 2, 4), {}, ("count_include_pad=False",)),
    Case("flatten", plain(layers.Flatten), floats((2, 3, 4, 5)), (2, 60)),
    Case("flatten_start2", plain(layers.Flatten, start_dim=2), floats((2, 3, 4, 5)), (2, 3, 20), {},
         ("start_dim=2",)),
    Case("dense", dense(5, 3), floats((4, 5)), (4, 3), {"weight": (3, 5), "bias": (3,)},
         ("in_features=5", "out_features=3")),
    Case("dense_nobias", dense(6, 2, bias=False), floats((3, 6)), (3, 2), {"weight": (2, 6)},
         ("bias=False",)),
    Case("add2", plain(layers.Add), floats((2, 3, 4), (2, 3, 4)), (2, 3, 4)),
    Case("add3", plain(layers.Add), floats((2, 2, 3, 3), (2, 2, 3, 3), (2, 2, 3, 3)), (2, 2, 3, 3)),
    Case("concat_channels", plain(layers.Concat), floats((2, 1, 3, 3), (2, 2, 3, 3)), (2, 3, 3, 3),
         {}, ("axis=1",)),
    Case("concat_last_axis3", plain(layers.Concat, axis=-1), floats((2, 3, 1), (2, 3, 4), (2, 3, 2)),
         (2, 3, 7), {}, ("axis=-1",)),
    # batch statistics over N * H * W = 40 values per channel (the 2-D kernel's C-contiguous path)
    Case("batchnorm2d", batchnorm(layers.BatchNorm2D, 3), floats((2, 3, 4, 5)), (2, 3, 4, 5),
         {"weight": (3,), "bias": (3,)}, ("3, eps=1e-05, momentum=0.1",), BN_BUFFERS(3), True),
    Case("batchnorm2d_noaffine_cma", batchnorm(layers.BatchNorm2D, 2, affine=False, momentum=None),
         floats((3, 2, 3, 3)), (3, 2, 3, 3), {}, ("affine=False", "momentum=None"), BN_BUFFERS(2), True),
    Case("batchnorm2d_no_running_stats", batchnorm(layers.BatchNorm2D, 2, track_running_stats=False),
         floats((2, 2, 3, 4)), (2, 2, 3, 4), {"weight": (2,), "bias": (2,)},
         ("track_running_stats=False",), {}, False),  # batch statistics in both modes
    # LayerNorm, GroupNorm, InstanceNorm2D keep the input's shape; weights have normalized_shape / (C,)
    Case("layernorm", batchnorm(layers.LayerNorm, 5), floats((3, 5)), (3, 5), {"weight": (5,), "bias": (5,)},
         ("normalized_shape=(5,)", "elementwise_affine=True")),
    Case("layernorm_2d_nobias", batchnorm(layers.LayerNorm, (3, 4), bias=False), floats((2, 2, 3, 4)),
         (2, 2, 3, 4), {"weight": (3, 4)}, ("(3, 4)", "bias=False")),
    Case("layernorm_noaffine", batchnorm(layers.LayerNorm, 4, elementwise_affine=False), floats((2, 3, 4)),
         (2, 3, 4), {}, ("elementwise_affine=False",)),
    Case("groupnorm", batchnorm(layers.GroupNorm, 2, 6), floats((2, 6, 3, 4)), (2, 6, 3, 4),
         {"weight": (6,), "bias": (6,)}, ("num_groups=2", "num_channels=6")),
    Case("groupnorm_1d_noaffine", batchnorm(layers.GroupNorm, 1, 4, affine=False), floats((3, 4, 5)), (3, 4, 5),
         {}, ("affine=False",)),
    Case("instancenorm2d", batchnorm(layers.InstanceNorm2D, 3), floats((2, 3, 4, 5)), (2, 3, 4, 5), {},
         ("num_features=3", "track_running_stats=False")),
    Case("instancenorm2d_affine_tracked", batchnorm(layers.InstanceNorm2D, 2, affine=True,
                                                    track_running_stats=True),
         floats((3, 2, 3, 3)), (3, 2, 3, 3), {"weight": (2,), "bias": (2,)}, ("affine=True",), BN_BUFFERS(2), True),
    Case("batchnorm1d_features", batchnorm(layers.BatchNorm1D, 4), floats((6, 4)), (6, 4),
         {"weight": (4,), "bias": (4,)}, ("4, eps",), BN_BUFFERS(4), True),
    Case("batchnorm1d_sequence", batchnorm(layers.BatchNorm1D, 3, eps=1e-3, momentum=0.3),
         floats((2, 3, 5)), (2, 3, 5), {"weight": (3,), "bias": (3,)}, ("eps=0.001", "momentum=0.3"),
         BN_BUFFERS(3), True),
    # a frozen mask (FrozenMaskDropout): gradcheck's forward passes must see one function
    Case("dropout", dropout(FrozenMaskDropout, 0.3), floats((4, 6)), (4, 6), {}, ("p=0.3",), {}, True),
    Case("dropout2d", dropout(FrozenMaskDropout2D, 0.5), floats((3, 4, 2, 3)), (3, 4, 2, 3), {},
         ("p=0.5",), {}, True),
    Case("xent_labels", plain(losses.SoftmaxCrossEntropy), logits_and_labels(4, 5), None),
    Case("xent_labels_smoothing", plain(losses.SoftmaxCrossEntropy, label_smoothing=0.1),
         logits_and_labels(4, 5), None, {}, ("label_smoothing=0.1",)),
    Case("xent_probs", plain(losses.SoftmaxCrossEntropy), logits_and_probs(3, 4), None),
    Case("xent_weighted_ignore_smoothing",
         plain(losses.SoftmaxCrossEntropy, weight=[0.5, 2.0, 1.0, 3.0, 1.5], label_smoothing=0.1),
         logits_and_labels(6, 5, ignored=(1, 4)), None, {}, ("weight=", "label_smoothing=0.1")),
    Case("xent_ignore_class_sum", plain(losses.SoftmaxCrossEntropy, ignore_index=0, reduction="sum"),
         logits_and_labels(6, 3), None, {}, ("ignore_index=0", "reduction='sum'")),
    Case("xent_probs_weighted_smoothing",
         plain(losses.SoftmaxCrossEntropy, weight=[1.0, 2.0, 0.5, 1.0], label_smoothing=0.2),
         logits_and_probs(3, 4), None, {}, ("weight=",)),
    Case("mse", plain(losses.MSE), floats((4, 3), (4, 3)), None),
    Case("mse_sum_4d", plain(losses.MSE, reduction="sum"), floats((2, 3, 2, 2), (2, 3, 2, 2)), None, {},
         ("reduction='sum'",)),
    Case("l1", plain(losses.L1Loss), floats((4, 3), (4, 3)), None),
    Case("smooth_l1_sum_beta", plain(losses.SmoothL1Loss, reduction="sum", beta=0.5), floats((2, 3, 2), (2, 3, 2)),
         None, {}, ("reduction='sum'", "beta=0.5")),
    Case("bce", plain(losses.BCELoss), probs_and_targets((4, 3)), None),
    Case("bce_weight_sum", plain(losses.BCELoss, weight=[0.5, 2.0, 1.0], reduction="sum"), probs_and_targets((2, 3)),
         None, {}, ("weight=[0.5, 2.0, 1.0]", "reduction='sum'")),
    Case("bce_logits_pos_weight", plain(losses.BCEWithLogitsLoss, weight=[[2.0], [0.5]], pos_weight=[3.0, 1.0, 0.5]),
         floats((2, 3), (2, 3)), None, {}, ("pos_weight=[3.0, 1.0, 0.5]",)),
    Case("nll", plain(losses.NLLLoss), log_probs_and_labels(4, 5), None),
    Case("nll_weighted_ignore_sum", plain(losses.NLLLoss, weight=[0.5, 2.0, 1.0], reduction="sum"),
         log_probs_and_labels(6, 3, ignored=(2,)), None, {}, ("weight=", "reduction='sum'")),
    Case("kl_div_batchmean", plain(losses.KLDivLoss, reduction="batchmean"), log_probs_and_probs(3, 4), None, {},
         ("reduction='batchmean'",)),
    Case("kl_div_log_target_sum", plain(losses.KLDivLoss, reduction="sum", log_target=True),
         log_probs_and_probs(2, 5, log_target=True), None, {}, ("log_target=True",)),
    Case("huber_delta", plain(losses.HuberLoss, delta=0.7), floats((3, 4), (3, 4)), None, {}, ("delta=0.7",)),
]
PARAM_CASES = [c for c in CASES if c.params]
LAYER_CASES = [c for c in CASES if not c.is_loss]
ids = [c.id for c in CASES]


def build(case, dtype=np.float64, seed=0):
    """A fresh layer and fresh inputs, both from ``seed``."""
    layer = case.make(dtype, np.random.default_rng(seed))
    xs = case.inputs(dtype, np.random.default_rng(seed + 1000))
    return layer, xs


def forward_backward(layer, case, xs, seed=0, grad=None):
    """Run forward then backward with a random upstream gradient; return (out, G, input grads)."""
    out = layer(*xs)
    if case.is_loss:
        g = None
        grads = layer.backward()
    else:
        g = grad if grad is not None else \
            np.random.default_rng(seed).standard_normal(np.shape(out)).astype(out.dtype)
        grads = layer.backward(g)
    grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
    return out, g, grads


# ------------------------------------------------------------ contract checks
def check_output_shape(case):
    layer, xs = build(case)
    out = layer(*xs)
    if case.is_loss:
        assert isinstance(out, float), f"a loss must return a Python float, got {type(out)}"
        assert np.isfinite(out)
    else:
        assert isinstance(out, np.ndarray), type(out)
        assert out.shape == case.out_shape, f"{case.id}: got {out.shape}, expected {case.out_shape}"


def check_input_gradient_shapes(case):
    layer, xs = build(case)
    _, _, grads = forward_backward(layer, case, xs)
    n = case.n_float_inputs(xs)
    assert len(grads) == n, f"backward returned {len(grads)} gradients for {n} inputs"
    for x, gx in zip(xs, grads):
        assert isinstance(gx, np.ndarray) and gx.shape == x.shape, (np.shape(gx), x.shape)


def check_dtype_kept(case, dtype):
    layer, xs = build(case, dtype)
    for p in layer.parameters():
        assert p.data.dtype == dtype and p.grad.dtype == dtype
    out = layer(*xs)  # the output dtype first: backward refuses a gradient of another dtype
    if not case.is_loss:
        assert out.dtype == dtype, f"output dtype {out.dtype}, input dtype {dtype}"
    out, g, grads = forward_backward(layer, case, xs)
    for gx in grads:
        assert gx.dtype == dtype, f"input gradient dtype {gx.dtype}, input dtype {dtype}"
    for name, p in layer.named_parameters():
        assert p.data.dtype == dtype, f"{name}.data became {p.data.dtype}"
        assert p.grad.dtype == dtype, f"{name}.grad is {p.grad.dtype}, expected {dtype}"


def check_backward_before_forward(case):
    layer, xs = build(case)
    with pytest.raises(RuntimeError, match=r"backward\(\).*before forward\(\)"):
        layer.backward() if case.is_loss else layer.backward(np.ones(case.out_shape))


def check_upstream_gradient_refused(case, dtype):
    """A grad_output of another dtype, another shape or not an ndarray is refused, as forward
    refuses such an input, before any parameter gradient is touched."""
    layer, xs = build(case, dtype)
    out = layer(*xs)
    if case.is_loss:  # a loss's upstream gradient is a scalar
        with pytest.raises(ValueError, match="backward takes no array"):
            layer.backward(np.ones(2, dtype))
        with pytest.raises(TypeError, match="must be a real number"):
            layer.backward("1")
        return
    other = np.float64 if dtype == np.float32 else np.float32
    good = np.ones(out.shape, dtype)
    name = re.escape(type(layer).__name__)
    bad = [
        (TypeError, np.ones(out.shape, other),
         rf"{name}\(.*\): backward expected grad_output of dtype {np.dtype(dtype)} .*got "
         rf"{np.dtype(other)}\. Cast it with grad_output\.astype\(np\.{np.dtype(dtype)}\)"),
        (TypeError, good.tolist(), rf"{name}\(.*\): backward expected grad_output as a numpy\.ndarray"),
        (ValueError, np.ones(out.shape + (1,), dtype),
         rf"{name}\(.*\): backward expected grad_output of shape {re.escape(str(out.shape))}"),
        (ValueError, np.ones(out.shape[:-1] + (out.shape[-1] + 1,), dtype), "of shape"),
    ]
    for error, grad_output, message in bad:
        with pytest.raises(error, match=message):
            layer.backward(grad_output)
        with pytest.raises(error, match=message):
            layer.backward_params(grad_output)
        for pname, p in layer.named_parameters():
            assert not np.any(p.grad), f"{pname}.grad changed by a refused backward"
    grads = layer.backward(good)  # the layer still works after the refusals
    grads = tuple(grads) if isinstance(grads, tuple) else (grads,)
    assert [(g.shape, g.dtype) for g in grads] == [(x.shape, x.dtype) for x in xs]


def check_gradcheck(case):
    layer, xs = build(case, np.float64)
    report = mdl.gradcheck(layer, *xs)
    assert report.passed, "\n" + str(report)
    names = [t.name for t in report.tensors]
    n = case.n_float_inputs(xs)
    expected_inputs = ["input"] if len(xs) == 1 else [f"input[{i}]" for i in range(n)]
    assert names == expected_inputs + list(case.params), names  # every input and every parameter
    assert_gradients(layer, *xs)  # the testing helper agrees


def check_grads_accumulate(case):
    layer, xs = build(case)
    _, g, grads1 = forward_backward(layer, case, xs)
    once = {name: p.grad.copy() for name, p in layer.named_parameters()}
    grads2 = layer.backward() if case.is_loss else layer.backward(g)
    grads2 = tuple(grads2) if isinstance(grads2, (tuple, list)) else (grads2,)
    for a, b in zip(grads1, grads2):  # backward is repeatable: same input gradient
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    for name, p in layer.named_parameters():
        assert np.any(once[name] != 0), f"{name}.grad stayed zero"
        np.testing.assert_allclose(p.grad, 2 * once[name], rtol=1e-12, atol=1e-15,
                                   err_msg=f"{name}.grad after two backward calls is not 2x")
    grad_arrays = {name: p.grad for name, p in layer.named_parameters()}
    layer.zero_grad()
    for name, p in layer.named_parameters():
        assert p.grad.shape == p.data.shape and p.grad.dtype == p.data.dtype
        assert not np.any(p.grad), f"{name}.grad not reset by zero_grad"
        assert p.grad is grad_arrays[name], "zero_grad should reset in place"
    # and accumulation starts again from zero
    forward_backward(layer, case, xs)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, once[name], rtol=1e-12, atol=1e-15)


def check_named_parameters(case):
    layer, _ = build(case)
    named = list(layer.named_parameters())
    assert [n for n, _ in named] == list(case.params)
    assert [p.shape for _, p in named] == list(case.params.values())
    assert [id(p) for p in layer.parameters()] == [id(p) for _, p in named]
    assert list(layer.state_dict()) == list(case.params) + list(case.buffers)
    assert [(n, b.shape) for n, b in layer.named_buffers()] == list(case.buffers.items())
    assert not {id(b) for b in layer.buffers()} & {id(p.data) for p in layer.parameters()}
    assert layer.num_parameters() == sum(int(np.prod(s)) for s in case.params.values())
    for name, p in named:
        assert getattr(layer, name) is p


def check_state_dict_roundtrip(case):
    src, xs = build(case, seed=1)
    dst, _ = build(case, seed=2)
    sd = src.state_dict()
    for name, p in src.named_parameters():
        assert sd[name] is not p.data and np.array_equal(sd[name], p.data)  # copies
    src(*xs)  # running statistics move away from their initial values
    dst.load_state_dict(src.state_dict())
    for (name, a), (_, b) in zip(src.named_parameters(), dst.named_parameters()):
        assert np.array_equal(a.data, b.data) and a.data is not b.data
    for (name, a), (_, b) in zip(src.named_buffers(), dst.named_buffers()):
        assert a.dtype == b.dtype and np.array_equal(a, b) and a is not b, name
    for mode in (False, True):  # eval mode reads the buffers
        out_src, out_dst = src.train(mode)(*xs), dst.train(mode)(*xs)
        np.testing.assert_array_equal(out_src, out_dst)


def check_repr(case):
    layer, _ = build(case)
    r = repr(layer)
    assert type(layer).__name__ in r and "object at 0x" not in r, r
    for s in case.repr_has:
        assert s in r, f"{r!r} should mention {s!r}"


def check_inputs_not_modified(case):
    layer, xs = build(case)
    before = [x.copy() for x in xs]
    out, g, _ = forward_backward(layer, case, xs)
    g_before = None if g is None else g.copy()
    for x, b in zip(xs, before):
        np.testing.assert_array_equal(x, b, err_msg="forward/backward modified an input in place")
    if g is not None:
        # run backward again and check the upstream gradient too
        layer.backward(g)
        np.testing.assert_array_equal(g, g_before, err_msg="backward modified grad_output in place")


def check_deterministic(case):
    a, xs = build(case, np.float32, seed=7)
    b, _ = build(case, np.float32, seed=7)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(pa.data, pb.data), f"{na}: init differs with the same seed"
    out_a, _, ga = forward_backward(a, case, xs, seed=3)
    out_b, _, gb = forward_backward(b, case, xs, seed=3)
    np.testing.assert_array_equal(out_a, out_b)
    for x, y in zip(ga, gb):
        np.testing.assert_array_equal(x, y)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.grad, pb.grad)
    if case.params and "rng" in inspect.signature(type(a)).parameters:  # and the seed is actually used
        c, _ = build(case, np.float32, seed=8)
        assert not np.array_equal(a.parameters()[0].data, c.parameters()[0].data)


def check_backward_params(case):
    """backward_params fills exactly the .grad that backward fills (and returns None)."""
    a, xs = build(case, seed=4)
    b, _ = build(case, seed=4)
    _, g, _ = forward_backward(a, case, xs, seed=5)
    if g is None:
        return
    b(*xs)
    assert b.backward_params(g) is None
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pb.grad, pa.grad, err_msg=name)


def check_train_eval(case):
    layer, xs = build(case)
    assert layer.training is True
    assert layer.eval() is layer and layer.training is False
    out_eval = layer(*xs)
    with pytest.raises(RuntimeError, match="eval mode"):  # an eval-mode forward keeps nothing
        layer.backward() if case.is_loss else layer.backward(np.ones_like(out_eval))
    np.testing.assert_array_equal(layer(*xs), out_eval)  # eval mode is deterministic
    assert layer.train() is layer and layer.training is True
    if case.mode_dependent:
        assert not np.array_equal(layer(*xs), out_eval), "training mode should differ from eval mode"
    else:
        np.testing.assert_array_equal(layer(*xs), out_eval)  # the layer does not depend on the mode


def check_eval_gradients(case):
    """Inside mdl.enable_grad an eval-mode forward keeps its caches: backward gives the gradients
    of the eval-mode computation (gradchecked; for layers that do not depend on the mode, the
    training-mode gradients exactly), and outside the block eval mode keeps nothing again."""
    layer, xs = build(case, np.float64, seed=5)
    if case.mode_dependent:
        layer(*xs)  # move BatchNorm's running statistics away from (0, 1)
    layer.eval()
    with mdl.enable_grad():
        assert layer.keeps_caches
        report = mdl.gradcheck(layer, *xs)
        assert report.passed, "\n" + str(report)
        _, g, eval_grads = forward_backward(layer, case, xs)
        eval_params = {name: p.grad.copy() for name, p in layer.named_parameters()}
    if not case.mode_dependent:
        layer.train()
        layer.zero_grad()
        _, _, train_grads = forward_backward(layer, case, xs, grad=g)
        for a, b in zip(eval_grads, train_grads):
            np.testing.assert_array_equal(a, b)
        for name, p in layer.named_parameters():
            np.testing.assert_array_equal(p.grad, eval_params[name], err_msg=name)
        layer.eval()
    out = layer(*xs)  # outside the block: nothing kept
    with pytest.raises(RuntimeError, match="enable_grad"):
        layer.backward() if case.is_loss else layer.backward(np.ones_like(out))


def check_save_load(case, tmp_path):
    """In a Sequential, saved and loaded: the same config, parameters and buffers, bit for bit."""
    layer, xs = build(case, np.float32, seed=3)
    layer(*xs)  # move the running statistics
    path = tmp_path / "model.npz"
    mdl.save(mdl.Sequential(layer), path)
    loaded = mdl.load(path)[0]
    assert type(loaded) is type(layer) and loaded.get_config() == layer.get_config()
    assert repr(loaded) == repr(layer)
    a, b = layer.state_dict(), loaded.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k
    np.testing.assert_array_equal(layer.eval()(*xs), loaded.eval()(*xs))


# --------------------------------------------------------------------- tests
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_output_shape(case):
    check_output_shape(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_input_gradient_shapes(case):
    check_input_gradient_shapes(case)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_dtype_kept(case, dtype):
    check_dtype_kept(case, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_upstream_gradient_of_wrong_dtype_or_shape_refused(case, dtype):
    check_upstream_gradient_refused(case, dtype)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_backward_before_forward_raises(case):
    check_backward_before_forward(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_gradcheck(case):
    check_gradcheck(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_grads_accumulate_and_zero_grad(case):
    check_grads_accumulate(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_named_parameters(case):
    check_named_parameters(case)


@pytest.mark.parametrize("case", PARAM_CASES, ids=[c.id for c in PARAM_CASES])
def test_state_dict_roundtrip(case):
    check_state_dict_roundtrip(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_repr_informative(case):
    check_repr(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_inputs_not_modified(case):
    check_inputs_not_modified(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_deterministic_with_seed(case):
    check_deterministic(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_backward_params_matches_backward(case):
    check_backward_params(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_train_eval(case):
    check_train_eval(case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_eval_mode_gradients_inside_enable_grad(case):
    check_eval_gradients(case)


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c.id for c in LAYER_CASES])
def test_save_load(case, tmp_path):
    check_save_load(case, tmp_path)


def _builtin_class(layer):
    """The built-in class a case's layer is (FrozenMaskDropout counts as the Dropout it subclasses)."""
    return next(k for k in type(layer).__mro__ if k.__module__.startswith("minidl."))


def test_cases_cover_every_registered_builtin_class():
    """A new built-in layer registers itself; this fails until the contract suite has a case for it."""
    from minidl.layers.registry import REGISTRY

    builtins = {cls for cls in REGISTRY.values() if cls.__module__.startswith("minidl.")}
    covered = {_builtin_class(build(case)[0]) for case in CASES}
    missing = sorted(cls.__name__ for cls in builtins - covered)
    assert not missing, f"no contract case for the registered built-in classes {missing}"
    assert len(builtins) >= 21


def test_gradcheck_leaves_layer_untouched():
    case = CASES[0]
    layer, xs = build(case, np.float32)
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    mdl.gradcheck(layer, *xs)
    for name, p in layer.named_parameters():
        assert p.data.dtype == np.float32 and np.array_equal(p.data, before[name])
        assert not np.any(p.grad)


# ------------------------------------------------ the contract catches broken layers
class WeightGradOffByOnePercent(layers.Dense):
    """Correct except that the weight gradient is 1% too large."""

    def backward(self, grad_output):
        before = self.weight.grad.copy()
        dx = super().backward(grad_output)
        self.weight.grad += 0.01 * (self.weight.grad - before)
        return dx


class OverwritingDense(layers.Dense):
    """Assigns ``.grad`` instead of adding into it."""

    def backward(self, grad_output):
        self.zero_grad()
        return super().backward(grad_output)


class InPlaceReLU(layers.ReLU):
    """Right values, but clobbers its input."""

    def forward(self, x):
        out = super().forward(x)
        self.save_for_backward(x=x.copy())
        np.maximum(x, 0, out=x)
        return out


class LeakyBackwardReLU(layers.ReLU):
    """Forward is ReLU, backward is 'leaky' (slope 0.01 below 0): wrong input gradient."""

    def backward(self, grad_output):
        (x,) = self.saved_values
        return np.where(x > 0, grad_output, 0.01 * grad_output)


class Float64Dense(layers.Dense):
    """Silently upcasts everything to float64."""

    def forward(self, x):
        return super().forward(x).astype(np.float64)


def _broken(cls, base_case):
    if issubclass(cls, layers.Dense):
        make = lambda dtype, rng: cls(5, 3, dtype=dtype, rng=rng)  # noqa: E731
    else:
        make = lambda dtype, rng: cls()  # noqa: E731
    return Case("broken-" + cls.__name__, make, base_case.inputs, base_case.out_shape,
                base_case.params, ())


DENSE = next(c for c in CASES if c.id == "dense")
RELU = next(c for c in CASES if c.id == "relu_2d")


def test_contract_catches_weight_grad_off_by_one_percent():
    layer, xs = build(_broken(WeightGradOffByOnePercent, DENSE))
    report = mdl.gradcheck(layer, *xs)
    assert not report.passed and not bool(report)
    rows = {t.name: t for t in report.tensors}
    assert list(rows) == ["input", "weight", "bias"]
    assert not rows["weight"].passed
    assert rows["input"].passed and rows["bias"].passed
    assert 0.005 < rows["weight"].max_rel_err < 0.02, rows["weight"].max_rel_err
    text = str(report)
    assert "FAIL" in text and "FAILED" in text
    weight_line = next(line for line in text.splitlines() if line.startswith("weight"))
    assert "FAIL" in weight_line
    for name in ("input", "bias"):
        line = next(line for line in text.splitlines() if line.startswith(name))
        assert line.rstrip().endswith("ok") and "FAIL" not in line
    with pytest.raises(AssertionError) as info:
        assert_gradients(layer, *xs)
    msg = str(info.value)
    assert "weight" in msg and "FAIL" in msg and "max_rel_err" in msg
    assert str(report) in msg  # the full table
    with pytest.raises(AssertionError, match="FAIL"):
        check_gradcheck(_broken(WeightGradOffByOnePercent, DENSE))


class BiasForgottenInBackwardParams(layers.Dense):
    """backward is right; backward_params forgets the bias gradient."""

    def backward_params(self, grad_output):
        (x,) = self.saved_values
        self.weight.grad += grad_output.T @ x


def test_contract_catches_backward_params_that_differs_from_backward():
    with pytest.raises(AssertionError, match="bias"):
        check_backward_params(_broken(BiasForgottenInBackwardParams, DENSE))


def test_subclass_overriding_backward_is_honoured_by_backward_params():
    """A Dense subclass that only overrides backward must not be bypassed by the Trainer."""
    case = _broken(WeightGradOffByOnePercent, DENSE)
    check_backward_params(case)  # backward_params falls back to the overridden backward


def test_contract_catches_wrong_input_gradient():
    layer, xs = build(_broken(LeakyBackwardReLU, RELU))
    report = mdl.gradcheck(layer, *xs)
    assert not report.passed and not report.tensors[0].passed
    with pytest.raises(AssertionError):
        check_gradcheck(_broken(LeakyBackwardReLU, RELU))


def test_contract_catches_overwritten_grads():
    broken = _broken(OverwritingDense, DENSE)
    check_gradcheck(broken)  # a single backward is right...
    with pytest.raises(AssertionError, match="2x"):
        check_grads_accumulate(broken)  # ...but gradients don't accumulate


def test_contract_catches_input_modified_in_place():
    with pytest.raises(AssertionError, match="in place"):
        check_inputs_not_modified(_broken(InPlaceReLU, RELU))


def test_contract_catches_dtype_upcast():
    broken = _broken(Float64Dense, DENSE)
    check_dtype_kept(broken, np.float64)
    with pytest.raises(AssertionError, match="dtype"):
        check_dtype_kept(broken, np.float32)


class CastingReLU(layers.ReLU):
    """Accepts any upstream gradient and casts it (the rule before issue 11)."""

    def backward(self, grad_output):
        return super().backward(np.asarray(grad_output, dtype=self.saved_values[0].dtype))


def test_contract_catches_a_layer_that_casts_the_upstream_gradient():
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        check_upstream_gradient_refused(_broken(CastingReLU, RELU), np.float32)


def test_contract_catches_wrong_output_shape():
    wrong = Case("wrong-shape", DENSE.make, DENSE.inputs, (4, 5), DENSE.params)
    with pytest.raises(AssertionError):
        check_output_shape(wrong)


def test_contract_catches_missing_parameter_name():
    wrong = Case("wrong-params", DENSE.make, DENSE.inputs, DENSE.out_shape, {"weight": (3, 5)})
    with pytest.raises(AssertionError):
        check_named_parameters(wrong)


def test_broken_layer_deepcopy_ok():
    # gradcheck deep-copies; subclasses defined in tests must survive that
    layer, _ = build(_broken(WeightGradOffByOnePercent, DENSE))
    assert type(copy.deepcopy(layer)) is WeightGradOffByOnePercent


def test_one_backward_entry_input_grad_keyword_and_plain_user_backwards():
    """backward(grad, *, input_grad=True) is the one entry point: backward_params and a Graph's
    first node pass input_grad=False to a layer that takes it, and a user layer written as
    backward(self, grad_output) still works (called without the keyword)."""
    import minidl as mdl
    from minidl.layers import Layer

    calls = []

    class Takes(Layer):
        def forward(self, x):
            return x

        def backward(self, grad_output, *, input_grad=True):
            calls.append(("takes", input_grad))
            return grad_output if input_grad else None

    class Plain(Layer):
        def forward(self, x):
            return x

        def backward(self, grad_output):
            calls.append(("plain", None))
            return grad_output

    g = np.ones((2, 3))
    for first in (Takes(), Plain()):
        model = mdl.Sequential(first, Takes())
        model(g)
        model.backward_params(g)
        model(g)
        assert model.backward(g) is g
    assert calls == [("takes", True), ("takes", False), ("takes", True), ("takes", True),
                     ("takes", True), ("plain", None), ("takes", True), ("plain", None)]


def test_input_rule_declared_once_on_the_class():
    """A layer declares what its forward accepts once (input_spec) and check_input applies it:
    built-in layers and a user layer get the same messages (names the layer, expected, received)."""
    from minidl.layers import InputSpec, Layer

    class Pixelwise(Layer):
        input_spec = InputSpec(ndim=4, layout="(N, C, H, W)")

        def forward(self, x):
            self.check_input(x)
            return x

    with pytest.raises(ValueError, match=r"Pixelwise\(\): expected input with 4 dimensions \(N, C, H, W\), got 3 "
                                         r".*x\[None\]"):
        Pixelwise()(np.zeros((1, 8, 8)))
    with pytest.raises(TypeError, match=r"Pixelwise\(\): input must have a floating-point dtype"):
        Pixelwise()(np.zeros((1, 1, 8, 8), np.int64))
    with pytest.raises(TypeError, match=r"ReLU\(\): input must be a numpy.ndarray"):
        layers.ReLU()([1.0, 2.0])
    with pytest.raises(ValueError, match=r"Dropout2D\(p=0.5\): expected input with 4 dimensions"):
        layers.Dropout2D()(np.zeros((2, 3)))
    assert layers.Conv2D.input_spec is None  # its kernel checks the input (and the weight) itself
