"""Host-side quantization: a float PyTorch CNN backbone -> the int8 `QBackbone` the device
runs (rig/golden/int8.py is its bit-exact twin; the firmware kernels follow the same
TFLite int8 contract).

- weights: symmetric per output channel, int8 in [-127, 127], scale = max|w| / 127;
- biases: int32, scale = input scale · weight scale of the channel;
- requantization: per channel, effective scale = s_in · s_w / s_out decomposed as TFLite's
  QuantizeMultiplier does (`quantize_multiplier`: multiplier in [2^30, 2^31), shift);
- activations: asymmetric int8 from calibration min/max (range widened to include 0);
  ReLU / ReLU6 are folded into each layer's act_min/act_max; pooling keeps its input's
  quantization (TFLite requires it).

`pretrain_digits_cnn()` trains the default backbone (`DigitsCNN`: 1x8x8 -> conv3x3 16ch +
ReLU -> maxpool 2 -> depthwise 3x3 + ReLU -> conv1x1 32ch + ReLU -> avgpool 2 -> 128 int8
features) on scikit-learn's digits for a few seconds on the CPU, deterministically, and
`default_backbone()` quantizes it (cached per process).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from rig.backbones import DEFAULT_BACKBONE
from rig.golden.data import DIGITS_SCALE, EncodedSet, Split, digits_split
from rig.golden.int8 import Op, QBackbone, QLayer

# ------------------------------------------------------------------------- the arithmetic


def round_half_away(x: np.ndarray | float) -> np.ndarray:
    """std::round (TFLite's TfLiteRound): halves away from zero (numpy rounds to even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real ≈ multiplier · 2^(shift − 31), multiplier in
    [2^30, 2^31) (0 for real == 0); shift > 0 is a left shift."""
    if real == 0.0:
        return 0, 0
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"multiplier {real} must be finite and >= 0")
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * (1 << 31)))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:  # too small to represent: the layer outputs its zero point
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q_fixed, shift


@dataclass(frozen=True)
class QParams:
    """Asymmetric int8 quantization of an activation: real = (q − zero_point) · scale."""

    scale: float
    zero_point: int

    @classmethod
    def from_range(cls, lo: float, hi: float) -> QParams:
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if hi - lo < 1e-12:
            return cls(1.0, 0)
        scale = float(np.float32((hi - lo) / 255.0))
        zp = int(np.clip(round_half_away(-128.0 - lo / scale), -128, 127))
        return cls(scale, zp)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return np.clip(round_half_away(np.asarray(x) / self.scale) + self.zero_point, -128,
                       127).astype(np.int8)

    def activation_range(self, relu: bool, relu6: bool = False) -> tuple[int, int]:
        """act_min/act_max with the activation folded in (TFLite CalculateActivationRange)."""
        lo, hi = -128, 127
        if relu or relu6:
            lo = max(lo, self.zero_point)
        if relu6:
            hi = min(hi, self.zero_point + int(round_half_away(6.0 / self.scale)))
        return lo, hi


def quantize_weights_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per channel along `axis`: (q [-127, 127], scale per channel)."""
    w = np.asarray(w, dtype=np.float64)
    red = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=red)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(round_half_away(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def _requant_params(s_in: float, s_w: np.ndarray, s_out: float) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(s_in) * float(sw) / float(s_out)) for sw in s_w]
    return (np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32))


def _quant_bias(b: np.ndarray | None, s_in: float, s_w: np.ndarray) -> np.ndarray:
    if b is None:
        return np.zeros(len(s_w), np.int32)
    q = round_half_away(np.asarray(b, np.float64) / (float(s_in) * s_w))
    return np.clip(q, -(2**31), 2**31 - 1).astype(np.int32)


# ------------------------------------------------------------------------- the float model


class DigitsCNN(nn.Module):
    """Float twin of the default backbone plus a float head for pre-training.

    Input [N, 1, 8, 8] in [0, 1] (= q/16 of the stored u8 digits). `features()` returns the
    backbone output flattened in NHWC order — the order of the device's int8 features."""

    def __init__(self, c1: int = 16, c2: int = 32, hidden: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.dw = nn.Conv2d(c1, c1, 3, padding=1, groups=c1)
        self.pw = nn.Conv2d(c1, c2, 1)
        self.pool2 = nn.AvgPool2d(2)
        self.head = nn.Sequential(nn.Linear(4 * c2, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def backbone_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs after each quantized layer (what calibration observes)."""
        a1 = torch.relu(self.conv1(x))
        a2 = self.pool1(a1)
        a3 = torch.relu(self.dw(a2))
        a4 = torch.relu(self.pw(a3))
        a5 = self.pool2(a4)
        return [a1, a2, a3, a4, a5]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone_stages(x)[-1].permute(0, 2, 3, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _images(data: EncodedSet) -> torch.Tensor:
    return torch.from_numpy(data.decode().reshape(-1, 1, 8, 8).copy())


@dataclass
class PretrainResult:
    model: DigitsCNN
    float_test_accuracy: float
    seconds: float
    epochs: int
    split: Split


def pretrain_digits_cnn(seed: int = 0, epochs: int = 40, batch: int = 64, lr: float = 0.01,
                        split: Split | None = None) -> PretrainResult:
    """Train `DigitsCNN` (backbone + head) on the split's training samples with Adam.
    Deterministic for a given seed (CPU, fixed generator, one intra-op thread)."""
    split = split or digits_split(seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = DigitsCNN()
        x, y = _images(split.train), torch.from_numpy(split.train.labels.astype(np.int64))
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch):
                idx = order[i:i + batch]
                opt.zero_grad()
                loss_fn(model(x[idx]), y[idx]).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(_images(split.test)).argmax(1).numpy()
        acc = float((pred == split.test.labels).mean())
        return PretrainResult(model, acc, time.perf_counter() - t0, epochs, split)
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------- quantization


@dataclass
class Calibration:
    """Quantization of every stage's output, from the float model on calibration images."""

    stages: list[QParams] = field(default_factory=list)


def calibrate(model: DigitsCNN, images: torch.Tensor) -> Calibration:
    with torch.no_grad():
        outs = model.backbone_stages(images)
    cal = Calibration()
    for i, o in enumerate(outs):
        if i in (1, 4):  # pooling: same quantization as its input (TFLite)
            cal.stages.append(cal.stages[-1])
        else:
            cal.stages.append(QParams.from_range(float(o.min()), float(o.max())))
    return cal


def quantize_digits_cnn(model: DigitsCNN, calibration_images: torch.Tensor,
                        input_qparams: QParams | None = None,
                        name: str = DEFAULT_BACKBONE) -> QBackbone:
    """The int8 backbone of a `DigitsCNN` (its head stays on the host; the device trains
    its own). Input: stored u8 digits q in 0..16 -> int8 q − 128, i.e. scale 1/16 and
    zero point −128 (real 0 ↔ −128), exactly the stored values."""
    inq = input_qparams or QParams(DIGITS_SCALE, -128)
    cal = calibrate(model, calibration_images)
    q1, _, q3, q4, _ = cal.stages
    c1 = model.conv1.out_channels
    c2 = model.pw.out_channels

    def t(p: torch.Tensor | None) -> np.ndarray:
        if p is None:
            raise ValueError("the backbone model has a layer without bias")
        return p.detach().numpy().astype(np.float64)

    # conv1: OIHW -> [OC, KH, KW, C]
    w1, s1 = quantize_weights_per_channel(t(model.conv1.weight).transpose(0, 2, 3, 1), axis=0)
    m1, sh1 = _requant_params(inq.scale, s1, q1.scale)
    # depthwise: [C, 1, KH, KW] -> [1, KH, KW, C]
    w3, s3 = quantize_weights_per_channel(t(model.dw.weight).transpose(1, 2, 3, 0), axis=3)
    m3, sh3 = _requant_params(q1.scale, s3, q3.scale)
    # pointwise: [OC, C, 1, 1] -> [OC, 1, 1, C]
    w4, s4 = quantize_weights_per_channel(t(model.pw.weight).transpose(0, 2, 3, 1), axis=0)
    m4, sh4 = _requant_params(q3.scale, s4, q4.scale)

    layers = (
        QLayer(Op.CONV, (8, 8, 1), (8, 8, c1), kernel=(3, 3), padding=(1, 1),
               input_offset=-inq.zero_point, output_offset=q1.zero_point,
               act_min=q1.activation_range(relu=True)[0], act_max=127, weights=w1,
               bias=_quant_bias(t(model.conv1.bias), inq.scale, s1), multiplier=m1, shift=sh1,
               name="conv1"),
        QLayer(Op.MAXPOOL, (8, 8, c1), (4, 4, c1), kernel=(2, 2), stride=(2, 2),
               act_min=q1.activation_range(relu=True)[0], name="pool1"),
        QLayer(Op.DWCONV, (4, 4, c1), (4, 4, c1), kernel=(3, 3), padding=(1, 1),
               input_offset=-q1.zero_point, output_offset=q3.zero_point,
               act_min=q3.activation_range(relu=True)[0], weights=w3,
               bias=_quant_bias(t(model.dw.bias), q1.scale, s3), multiplier=m3, shift=sh3,
               name="dw"),
        QLayer(Op.CONV, (4, 4, c1), (4, 4, c2), kernel=(1, 1),
               input_offset=-q3.zero_point, output_offset=q4.zero_point,
               act_min=q4.activation_range(relu=True)[0], weights=w4,
               bias=_quant_bias(t(model.pw.bias), q3.scale, s4), multiplier=m4, shift=sh4,
               name="pw"),
        QLayer(Op.AVGPOOL, (4, 4, c2), (2, 2, c2), kernel=(2, 2), stride=(2, 2),
               act_min=q4.activation_range(relu=True)[0], name="pool2"),
    )
    return QBackbone((8, 8, 1), layers, out_scale=float(np.float32(q4.scale)),
                     out_zero_point=q4.zero_point, input_scale=inq.scale, name=name)


# ------------------------------------------------------------------------- evaluation


def head_accuracy(head: nn.Module, features: np.ndarray, labels: np.ndarray) -> float:
    with torch.no_grad():
        pred = head(torch.from_numpy(np.asarray(features, np.float32))).argmax(1).numpy()
    return float((pred == labels).mean())


@lru_cache(maxsize=4)
def _pretrained(seed: int) -> PretrainResult:
    return pretrain_digits_cnn(seed=seed)


@lru_cache(maxsize=4)
def default_backbone(seed: int = 0) -> QBackbone:
    """The default digits backbone: pre-trained (seed-0 split's training samples), then
    quantized with the training samples as calibration data. Cached per process."""
    pre = _pretrained(seed)
    images = _images(pre.split.train)
    bb = quantize_digits_cnn(pre.model, images)
    bb.meta.update(float_test_accuracy=pre.float_test_accuracy,
                   pretrain_seconds=pre.seconds)
    return bb


def backbone_by_name(name: str, seed: int = 0) -> QBackbone:
    if name == DEFAULT_BACKBONE:
        return default_backbone(seed)
    raise ValueError(f"unknown backbone {name!r} (known: {DEFAULT_BACKBONE})")
