"""Host quantization (rig/golden/quant.py) and the golden int8 arithmetic on known values:
TFLite's QuantizeMultiplier decomposition, requantization against float, activation
parameters, and the pre-trained default backbone (useful features, deterministic)."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rig.golden import int8 as G
from rig.golden.int8 import samples_to_int8
from rig.golden.quant import (
    QParams,
    _images,
    _pretrained,
    default_backbone,
    head_accuracy,
    quantize_multiplier,
    quantize_weights_per_channel,
    round_half_away,
)


@settings(max_examples=500, deadline=None)
@given(real=st.floats(1e-9, 1e4, allow_nan=False))
def test_quantize_multiplier_decomposition(real: float) -> None:
    m, s = quantize_multiplier(real)
    if m == 0:
        assert real < 2.0 ** -32
        return
    assert 1 << 30 <= m < 1 << 31 and -31 <= s <= 30
    assert math.isclose(m * 2.0 ** (s - 31), real, rel_tol=2.0 ** -30)


@settings(max_examples=500, deadline=None)
@given(real=st.floats(1e-6, 0.999), x=st.integers(-(2**20), 2**20))
def test_requantize_is_rounded_scaling(real: float, x: int) -> None:
    m, s = quantize_multiplier(real)
    y = int(G.requantize(x, m, s))
    assert abs(y - x * m * 2.0 ** (s - 31)) <= 1.0  # two roundings, each ≤ ½


def test_known_values() -> None:
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.25) == (1 << 30, -1)
    # TFLite rounds halves away from zero, numpy to even
    assert list(round_half_away([0.5, 1.5, -0.5, -2.5])) == [1, 2, -1, -3]
    assert int(G.rounding_divide_by_pot(-6, 2)) == -2  # -1.5 -> -2
    assert int(G.rounding_divide_by_pot(6, 2)) == 2
    assert int(G.doubling_high_mult(-(2**31), -(2**31))) == 2**31 - 1


def test_activation_qparams() -> None:
    relu = QParams.from_range(0.0, 2.55)
    assert relu.zero_point == -128 and math.isclose(relu.scale, 0.01, rel_tol=1e-6)
    assert relu.activation_range(relu=True) == (-128, 127)
    q = QParams.from_range(-1.0, 1.0)
    assert q.zero_point in (-1, 0)
    lo, hi = q.activation_range(relu=False, relu6=True)
    assert lo == q.zero_point and hi == 127  # 6 is outside the range
    wide = QParams.from_range(0.0, 25.5)
    assert wide.activation_range(relu=False, relu6=True) == (-128, -128 + 60)
    assert QParams.from_range(3.0, 5.0).zero_point == -128  # the range always holds 0


def test_per_channel_weights_are_symmetric() -> None:
    w = np.array([[1.0, -2.0], [0.0, 0.0], [0.5, 0.25]])
    q, scale = quantize_weights_per_channel(w, axis=0)
    assert q.dtype == np.int8 and q.min() >= -127
    assert list(q[0]) == [64, -127] and list(q[1]) == [0, 0] and list(q[2]) == [127, 64]
    assert np.allclose(q * scale[:, None], w, atol=scale.max() / 2 + 1e-12)


def test_default_backbone_gives_useful_features() -> None:
    pre = _pretrained(0)
    bb = default_backbone()
    assert bb is default_backbone()  # cached per process
    split = pre.split
    test_feats = bb.features_f32(samples_to_int8(split.test.q, 1))
    acc_int8 = head_accuracy(pre.model.head, test_feats, split.test.labels)
    assert pre.float_test_accuracy >= 0.95
    assert acc_int8 >= pre.float_test_accuracy - 0.01, (acc_int8, pre.float_test_accuracy)
    with torch.no_grad():
        flt = pre.model.features(_images(split.test)).numpy()
    # int8 features track the float ones within a couple of quantization steps
    assert np.percentile(np.abs(test_feats - flt), 99) <= 3 * bb.out_scale


def test_pretraining_is_deterministic() -> None:
    a, b = _pretrained(0).model, _pretrained.__wrapped__(0).model
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
