"""The int8 feature extractor, bit-exact: the firmware's kernels (firmware/kernels/, the
TFLite int8 contract; CMSIS-NN's but for the INT32_MIN·INT32_MIN corner) written out in
numpy int64.

Everything is integer arithmetic on int64 arrays, so results are exact and independent of
BLAS or summation order; the only float step is the final dequantization, one float32
multiply per feature, exactly as `tr_dequantize_s8_f32`. The contract is `tr_nn.h` and
docs/training.md ("int8 backbone"):

    acc = wrap32(bias + Σ (x + input_offset)·w)        int32 accumulator (wraps like SMLAD)
    y   = requantize(acc, multiplier[oc], shift[oc])   TFLite MultiplyByQuantizedMultiplier
    out = clip(wrap32(y + output_offset), act_min, act_max)

Tensors are NHWC; conv filters [OC][KH][KW][C]; depthwise filters [1][KH][KW][C·mult];
FC filters [OC][IN].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rig.protocol import BackboneOp as Op  # the layer op codes of BACKBONE_INIT

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
I64 = np.int64


# ---------------------------------------------------------------------------- arithmetic


def wrap32(x: np.ndarray | int) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 range (kept as int64)."""
    x = np.asarray(x, dtype=I64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _trunc_div(num: np.ndarray, den: np.ndarray | int) -> np.ndarray:
    """C integer division (truncates toward zero)."""
    num = np.asarray(num, dtype=I64)
    den = np.asarray(den, dtype=I64)
    q = np.abs(num) // np.abs(den)
    return np.where((num < 0) != (den < 0), -q, q)


def doubling_high_mult(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """TFLite SaturatingRoundingDoublingHighMul, written as TFLite writes it."""
    a = np.asarray(a, dtype=I64)
    b = np.asarray(b, dtype=I64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = _trunc_div(ab + nudge, 1 << 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q).astype(I64)


def rounding_divide_by_pot(x: np.ndarray | int, exponent: np.ndarray | int) -> np.ndarray:
    """TFLite RoundingDivideByPOT: round half away from zero; exponent 0..31."""
    x = np.asarray(x, dtype=I64)
    e = np.asarray(exponent, dtype=I64)
    mask = (np.left_shift(np.ones_like(e), e)) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def requantize(acc: np.ndarray | int, multiplier: np.ndarray | int,
               shift: np.ndarray | int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(acc, multiplier, shift); shift in [-31, 30]."""
    acc = np.asarray(acc, dtype=I64)
    shift = np.asarray(shift, dtype=I64)
    if np.any(shift < -31) or np.any(shift > 30):
        raise ValueError("shift must be in [-31, 30]")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = wrap32(np.left_shift(acc, left))
    return rounding_divide_by_pot(doubling_high_mult(x, multiplier), right)


def _finish(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, output_offset: int,
            act_min: int, act_max: int) -> np.ndarray:
    y = wrap32(requantize(acc, multiplier, shift) + output_offset)
    return np.clip(y, act_min, act_max).astype(np.int8)


def _check_common(input_offset: int, output_offset: int, act_min: int, act_max: int) -> None:
    if not -127 <= input_offset <= 128:
        raise ValueError(f"input_offset {input_offset} not in [-127, 128]")
    if not -128 <= output_offset <= 127:
        raise ValueError(f"output_offset {output_offset} not in [-128, 127]")
    if not -128 <= act_min <= act_max <= 127:
        raise ValueError(f"activation range [{act_min}, {act_max}] invalid")


def _window_index(n_out: int, n_in: int, k: int, stride: int, pad: int, dil: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Input index [n_out, k] of every tap and whether it lies inside the input."""
    idx = (np.arange(n_out)[:, None] * stride - pad) + np.arange(k)[None, :] * dil
    return np.clip(idx, 0, n_in - 1), (idx >= 0) & (idx < n_in)


def _patches(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int],
             dilation: tuple[int, int], out_hw: tuple[int, int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Windows [N, OH, OW, KH, KW, C] of x (int64) and their validity [OH, OW, KH, KW]."""
    oh, ow = out_hw
    iy, vy = _window_index(oh, x.shape[1], kh, stride[0], padding[0], dilation[0])
    ix, vx = _window_index(ow, x.shape[2], kw, stride[1], padding[1], dilation[1])
    p = x[:, iy[:, None, :, None], ix[None, :, None, :], :]  # [N, OH, OW, KH, KW, C]
    valid = vy[:, None, :, None] & vx[None, :, None, :]
    return p, valid


# ---------------------------------------------------------------------------- kernels


def convolve_s8(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, multiplier: np.ndarray,
                shift: np.ndarray, *, input_offset: int, output_offset: int,
                act_min: int = -128, act_max: int = 127, stride: tuple[int, int] = (1, 1),
                padding: tuple[int, int] = (0, 0), dilation: tuple[int, int] = (1, 1),
                out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """tr_convolve_s8: x [N,H,W,C] int8, w [OC,KH,KW,C] int8 -> [N,OH,OW,OC] int8."""
    _check_common(input_offset, output_offset, act_min, act_max)
    oc, kh, kw, c = w.shape
    if x.shape[3] != c:
        raise ValueError(f"input channels {x.shape[3]} != filter channels {c}")
    if out_hw is None:
        out_hw = conv_out_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    p, valid = _patches(x.astype(I64) + input_offset, kh, kw, stride, padding, dilation, out_hw)
    p = p * valid[None, :, :, :, :, None]
    acc = np.tensordot(p, w.astype(I64), axes=([3, 4, 5], [1, 2, 3]))
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=I64)
    return _finish(wrap32(acc), np.asarray(multiplier, I64), np.asarray(shift, I64),
                   output_offset, act_min, act_max)


def depthwise_conv_s8(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                      multiplier: np.ndarray, shift: np.ndarray, *, input_offset: int,
                      output_offset: int, ch_mult: int = 1, act_min: int = -128,
                      act_max: int = 127, stride: tuple[int, int] = (1, 1),
                      padding: tuple[int, int] = (0, 0), dilation: tuple[int, int] = (1, 1),
                      out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """tr_depthwise_conv_s8: w [1,KH,KW,C·ch_mult]; output channel ic·ch_mult + m."""
    _check_common(input_offset, output_offset, act_min, act_max)
    _, kh, kw, oc = w.shape
    c = x.shape[3]
    if oc != c * ch_mult:
        raise ValueError(f"filter has {oc} channels, want {c}·{ch_mult}")
    if out_hw is None:
        out_hw = conv_out_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    p, valid = _patches(x.astype(I64) + input_offset, kh, kw, stride, padding, dilation, out_hw)
    p = p * valid[None, :, :, :, :, None]
    wk = w.astype(I64).reshape(kh, kw, c, ch_mult)
    acc = np.einsum("nyxhwc,hwcm->nyxcm", p, wk).reshape(*p.shape[:3], oc)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=I64)
    return _finish(wrap32(acc), np.asarray(multiplier, I64), np.asarray(shift, I64),
                   output_offset, act_min, act_max)


def fully_connected_s8(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                       multiplier: np.ndarray | int, shift: np.ndarray | int, *,
                       input_offset: int, output_offset: int, act_min: int = -128,
                       act_max: int = 127) -> np.ndarray:
    """tr_fully_connected_s8 / _per_channel_s8: x [N, IN], w [OC, IN] -> [N, OC]."""
    _check_common(input_offset, output_offset, act_min, act_max)
    x = x.reshape(x.shape[0], -1).astype(I64) + input_offset
    acc = x @ w.astype(I64).T  # integer matmul: exact, no BLAS
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=I64)
    return _finish(wrap32(acc), np.asarray(multiplier, I64), np.asarray(shift, I64),
                   output_offset, act_min, act_max)


def _pool_check(in_hw: Sequence[int], kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], out_hw: tuple[int, int]) -> None:
    for n_in, n_out, k, s, p in zip(in_hw, out_hw, kernel, stride, padding, strict=True):
        if p >= k or (n_out - 1) * s - p > n_in - 1:
            raise ValueError("a pooling window lies entirely in the padding")


def _pool_patches(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                  padding: tuple[int, int],
                  out_hw: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """The checked pooling windows of x (int64) and their validity mask, as _patches."""
    if out_hw is None:
        out_hw = conv_out_hw(x.shape[1:3], kernel, stride, padding, (1, 1))
    _pool_check(x.shape[1:3], kernel, stride, padding, out_hw)
    return _patches(x.astype(I64), kernel[0], kernel[1], stride, padding, (1, 1), out_hw)


def avgpool_s8(x: np.ndarray, kernel: tuple[int, int], *, stride: tuple[int, int],
               padding: tuple[int, int] = (0, 0), out_hw: tuple[int, int] | None = None,
               act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """tr_avgpool_s8: mean of the valid elements, rounded half away from zero (C division)."""
    p, valid = _pool_patches(x, kernel, stride, padding, out_hw)
    v = valid[None, :, :, :, :, None]
    total = (p * v).sum(axis=(3, 4))
    count = np.broadcast_to(v.sum(axis=(3, 4)), total.shape).astype(I64)
    half = count // 2
    avg = np.where(total > 0, _trunc_div(total + half, count), _trunc_div(total - half, count))
    return np.clip(avg, act_min, act_max).astype(np.int8)


def maxpool_s8(x: np.ndarray, kernel: tuple[int, int], *, stride: tuple[int, int],
               padding: tuple[int, int] = (0, 0), out_hw: tuple[int, int] | None = None,
               act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """tr_maxpool_s8: maximum of the valid elements."""
    p, valid = _pool_patches(x, kernel, stride, padding, out_hw)
    p = np.where(valid[None, :, :, :, :, None], p, -1000)
    return np.clip(p.max(axis=(3, 4)), act_min, act_max).astype(np.int8)


def dequantize_s8_f32(q: np.ndarray, zero_point: int, scale: float) -> np.ndarray:
    """tr_dequantize_s8_f32: float32((q - zp)) * float32(scale), one rounding."""
    return (q.astype(np.int32) - int(zero_point)).astype(np.float32) * np.float32(scale)


def conv_out_hw(in_hw: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                padding: Sequence[int], dilation: Sequence[int]) -> tuple[int, int]:
    """Output size with symmetric explicit padding (TFLite VALID, or SAME at stride 1)."""
    out = []
    for n, k, s, p, d in zip(in_hw, kernel, stride, padding, dilation, strict=True):
        eff = d * (k - 1) + 1
        out.append((n + 2 * p - eff) // s + 1)
    return out[0], out[1]


# ---------------------------------------------------------------------------- backbone


@dataclass(frozen=True, eq=False)
class QLayer:
    """One layer of a quantized backbone, exactly what BACKBONE_INIT/_WRITE carry.

    `in_shape`/`out_shape` are (H, W, C). Offsets are negated zero points. For pooling
    layers offsets are 0 and there are no tensors. `weights`: conv [OC,KH,KW,C],
    depthwise [1,KH,KW,OC], fc [OC, IN]."""

    op: Op
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    input_offset: int = 0
    output_offset: int = 0
    act_min: int = -128
    act_max: int = 127
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None
    name: str = ""

    @property
    def out_features(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def macs(self) -> int:
        """Nominal multiply-accumulates per sample (padding taps included)."""
        oh, ow, oc = self.out_shape
        c = self.in_shape[2]
        kh, kw = self.kernel
        if self.op == Op.CONV:
            return oh * ow * oc * kh * kw * c
        if self.op == Op.DWCONV:
            return oh * ow * oc * kh * kw
        if self.op == Op.FC:
            return oc * int(np.prod(self.in_shape))
        return 0

    @property
    def ch_mult(self) -> int:
        return self.out_shape[2] // self.in_shape[2]

    def _tensors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """weights, multiplier, shift of a CONV/DWCONV/FC layer (which must have them)."""
        if self.weights is None or self.multiplier is None or self.shift is None:
            raise ValueError(f"layer {self.name or self.op.name}: a {self.op.name} layer needs "
                             "weights, multiplier and shift")
        return self.weights, self.multiplier, self.shift

    def forward(self, x: np.ndarray) -> np.ndarray:
        """[N, H, W, C] int8 -> [N, OH, OW, OC] int8."""
        kw = dict(act_min=self.act_min, act_max=self.act_max)
        out_hw = self.out_shape[:2]
        if self.op == Op.CONV:
            w, m, s = self._tensors()
            return convolve_s8(x, w, self.bias, m, s,
                               input_offset=self.input_offset, output_offset=self.output_offset,
                               stride=self.stride, padding=self.padding,
                               dilation=self.dilation, out_hw=out_hw, **kw)
        if self.op == Op.DWCONV:
            w, m, s = self._tensors()
            return depthwise_conv_s8(x, w, self.bias, m, s,
                                     input_offset=self.input_offset,
                                     output_offset=self.output_offset, ch_mult=self.ch_mult,
                                     stride=self.stride, padding=self.padding,
                                     dilation=self.dilation, out_hw=out_hw, **kw)
        if self.op == Op.FC:
            w, m, s = self._tensors()
            y = fully_connected_s8(x.reshape(len(x), -1), w, self.bias, m, s,
                                   input_offset=self.input_offset,
                                   output_offset=self.output_offset, **kw)
            return y.reshape(len(x), 1, 1, -1)
        pool = avgpool_s8 if self.op == Op.AVGPOOL else maxpool_s8
        return pool(x, self.kernel, stride=self.stride, padding=self.padding, out_hw=out_hw,
                    **kw)


@dataclass(frozen=True, eq=False)
class QBackbone:
    """A frozen int8 feature extractor: layers, and how its output is dequantized."""

    input_shape: tuple[int, int, int]  # (H, W, C) of a stored sample
    layers: tuple[QLayer, ...]
    out_scale: float
    out_zero_point: int
    input_scale: float = 1.0  # real value of an int8 input step (documentation, calibration)
    name: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.layers[-1].out_features if self.layers else int(np.prod(self.input_shape))

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def blob(self) -> bytes:
        """The parameter blob BACKBONE_WRITE fills (docs/protocol.md): per layer with
        parameters, int8 weights (zero-padded to 4 bytes), then int32 bias, multiplier,
        shift per output channel, little-endian."""
        parts: list[bytes] = []
        for layer in self.layers:
            if not layer.op.has_params:
                continue
            oc = layer.out_shape[2]
            w = np.ascontiguousarray(layer.weights, dtype=np.int8).tobytes()
            parts.append(w + bytes(-len(w) % 4))
            bias = np.zeros(oc, np.int64) if layer.bias is None else layer.bias
            for arr in (bias, layer.multiplier, layer.shift):
                a = np.asarray(arr, dtype=np.int64).reshape(-1)
                if a.shape != (oc,):
                    raise ValueError(f"layer {layer.name or layer.op.name}: {a.shape} values "
                                     f"for {oc} output channels")
                parts.append(a.astype("<i4").tobytes())
        return b"".join(parts)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """int8 inputs [N, H·W·C] (or [N, H, W, C]) -> int8 features [N, n_features]."""
        x = np.asarray(x, dtype=np.int8).reshape(-1, *self.input_shape)
        for layer in self.layers:
            x = layer.forward(x)
        return x.reshape(len(x), -1)

    def features_f32(self, x: np.ndarray) -> np.ndarray:
        """What the head sees: dequantized features, float32 [N, n_features]."""
        return dequantize_s8_f32(self.forward(x), self.out_zero_point, self.out_scale)


def samples_to_int8(q: np.ndarray, dtype: int) -> np.ndarray:
    """Stored sample bytes -> backbone input: s8 as stored, u8 shifted by -128 (q ^ 0x80)."""
    q = np.asarray(q)
    if dtype == 2:  # DType.S8
        return q.astype(np.int8)
    if dtype == 1:  # DType.U8
        return (q.astype(np.int16) - 128).astype(np.int8)
    raise ValueError("a backbone needs u8 or s8 samples")
