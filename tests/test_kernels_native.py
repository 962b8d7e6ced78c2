"""The int8 kernels (firmware/kernels/) compiled for the host and called through ctypes,
against the golden int8 model (rig/golden/int8.py): bit-identical outputs over thousands
of random layer shapes and quantization parameters.

Two builds of the same sources (`make -C firmware kernels-native`): the plain-C path (what
a Cortex-M0 runs) and the DSP path with C models of SMLAD/SXTB16/SXTAB16/SMLABB/SMLATT
(what a Cortex-M4 runs; the real instructions are checked in QEMU by
tests/test_hil_backbone.py). 3,800 random layers per build (x2 builds) plus 2,000
requantization triples by default; TINYRIG_KERNEL_EXAMPLES scales the counts.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rig.golden import int8 as G

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
SUCCESS, ARG_ERROR = 0, -1
I32 = ctypes.c_int32
P_I8 = ctypes.POINTER(ctypes.c_int8)
P_I32 = ctypes.POINTER(ctypes.c_int32)


# ---- ctypes mirror of tr_nn.h -----------------------------------------------------------
class Dims(ctypes.Structure):
    _fields_ = [("n", I32), ("h", I32), ("w", I32), ("c", I32)]


class Tile(ctypes.Structure):
    _fields_ = [("w", I32), ("h", I32)]


class Ctx(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("size", I32)]


class Act(ctypes.Structure):
    _fields_ = [("min", I32), ("max", I32)]


class PerChannel(ctypes.Structure):
    _fields_ = [("multiplier", P_I32), ("shift", P_I32)]


class PerTensor(ctypes.Structure):
    _fields_ = [("multiplier", I32), ("shift", I32)]


class ConvParams(ctypes.Structure):
    _fields_ = [("input_offset", I32), ("output_offset", I32), ("stride", Tile),
                ("padding", Tile), ("dilation", Tile), ("activation", Act)]


class DwParams(ctypes.Structure):
    _fields_ = [("input_offset", I32), ("output_offset", I32), ("ch_mult", I32),
                ("stride", Tile), ("padding", Tile), ("dilation", Tile), ("activation", Act)]


class PoolParams(ctypes.Structure):
    _fields_ = [("stride", Tile), ("padding", Tile), ("activation", Act)]


class FcParams(ctypes.Structure):
    _fields_ = [("input_offset", I32), ("filter_offset", I32), ("output_offset", I32),
                ("activation", Act)]


def _i8(a: np.ndarray) -> ctypes._Pointer:  # type: ignore[type-arg]
    return a.ctypes.data_as(P_I8)


def _i32(a: np.ndarray) -> ctypes._Pointer:  # type: ignore[type-arg]
    return a.ctypes.data_as(P_I32)


class Kernels:
    """One build of the kernel library."""

    def __init__(self, path: Path) -> None:
        self.lib = ctypes.CDLL(str(path))
        self.name = path.stem
        ptr = ctypes.POINTER
        conv_args = [ptr(Ctx), ptr(ConvParams), ptr(PerChannel), ptr(Dims), P_I8, ptr(Dims),
                     P_I8, ptr(Dims), P_I32, ptr(Dims), P_I8]
        self.lib.tr_convolve_s8.argtypes = conv_args
        self.lib.tr_depthwise_conv_s8.argtypes = [ptr(Ctx), ptr(DwParams)] + conv_args[2:]
        self.lib.tr_fully_connected_s8.argtypes = [ptr(Ctx), ptr(FcParams), ptr(PerTensor)] + \
            conv_args[3:]
        self.lib.tr_fully_connected_per_channel_s8.argtypes = [ptr(Ctx), ptr(FcParams)] + \
            conv_args[2:]
        for pool in ("tr_avgpool_s8", "tr_maxpool_s8"):
            getattr(self.lib, pool).argtypes = [ptr(Ctx), ptr(PoolParams), ptr(Dims), P_I8,
                                                ptr(Dims), ptr(Dims), P_I8]
        self.lib.tr_convolve_s8_get_buffer_size.argtypes = [ptr(Dims), ptr(Dims)]
        self.lib.tr_fully_connected_s8_get_buffer_size.argtypes = [ptr(Dims)]
        self.lib.tr_nn_doubling_high_mult.argtypes = [I32, I32]
        self.lib.tr_nn_divide_by_power_of_two.argtypes = [I32, I32]
        self.lib.tr_nn_requantize.argtypes = [I32, I32, I32]
        self.lib.tr_requantize_s32_s8.argtypes = [P_I32, P_I8, I32, I32, ptr(PerChannel), I32,
                                                  ptr(Act)]
        self.lib.tr_dequantize_s8_f32.argtypes = [P_I8, ctypes.POINTER(ctypes.c_float), I32,
                                                  I32, ctypes.c_float]
        self.lib.tr_nn_implementation.restype = ctypes.c_uint8

    def scratch(self, size: int) -> tuple[Ctx, np.ndarray]:
        buf = np.zeros(max(size, 4) // 4 + 1, dtype=np.uint32)
        return Ctx(buf.ctypes.data_as(ctypes.c_void_p), int(size)), buf


@pytest.fixture(scope="session")
def libs(native_build: Callable[[str], Path]) -> list[Kernels]:
    out = native_build("kernels-native")
    return [Kernels(out / "libtr_nn.so"), Kernels(out / "libtr_nn_dspemu.so")]


#: TINYRIG_KERNEL_EXAMPLES=10 runs ten times as many random cases (a deeper, slower check).
SCALE = float(os.environ.get("TINYRIG_KERNEL_EXAMPLES", "1"))


def examples(n: int) -> settings:
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---- strategies ------------------------------------------------------------------------------
int32s = st.integers(-(2**31), 2**31 - 1)
realistic_mult = st.integers(1 << 30, (1 << 31) - 1)
multipliers = st.one_of(realistic_mult, realistic_mult, int32s,
                        st.sampled_from([0, 1, -1, -(2**31), 2**31 - 1, 1 << 30]))
shifts = st.one_of(st.integers(-12, 1), st.integers(-31, 30))
in_offsets = st.integers(-127, 128)
out_offsets = st.integers(-128, 127)


@st.composite
def activations(draw: st.DrawFn) -> tuple[int, int]:
    lo = draw(st.one_of(st.just(-128), st.integers(-128, 127)))
    hi = draw(st.one_of(st.just(127), st.integers(lo, 127)))
    return lo, hi


def _arr(draw: st.DrawFn, shape: tuple[int, ...], lo: int, hi: int, dtype: type) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(dtype)


@dataclass
class Quant:
    bias: np.ndarray | None
    mult: np.ndarray
    shift: np.ndarray
    in_off: int
    out_off: int
    act: tuple[int, int]


_SPECIAL_MULT = np.array([0, 1, -1, -(2**31), 2**31 - 1, 1 << 30], np.int64)


@st.composite
def quants(draw: st.DrawFn, channels: int) -> Quant:
    """Per-channel parameters from a few draws (mode flags + one seed): cheap to generate,
    still covering realistic multipliers in [2^30, 2^31), arbitrary int32 ones (negative,
    INT32_MIN), shifts over the whole [-31, 30] and full-range biases."""
    bias_mode, mult_mode, shift_mode = draw(st.tuples(st.integers(0, 2), st.integers(0, 3),
                                                      st.integers(0, 2)))
    same = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = 1 if same else channels
    bias = None if bias_mode == 0 else rng.integers(
        *((-5000, 5001) if bias_mode == 1 else (-(2**31), 2**31)), size=channels)
    mult = {0: lambda: rng.integers(1 << 30, 1 << 31, size=n),
            1: lambda: rng.integers(1 << 30, 1 << 31, size=n),
            2: lambda: rng.integers(-(2**31), 2**31, size=n),
            3: lambda: rng.choice(_SPECIAL_MULT, size=n)}[mult_mode]()
    shift = rng.integers(-12, 2, size=n) if shift_mode < 2 else rng.integers(-31, 31, size=n)
    return Quant(None if bias is None else bias.astype(np.int32),
                 np.broadcast_to(mult, channels).astype(np.int32),
                 np.broadcast_to(shift, channels).astype(np.int32),
                 draw(in_offsets), draw(out_offsets), draw(activations()))


@st.composite
def window_geometry(draw: st.DrawFn, max_in: int = 9, max_k: int = 4, dilate: bool = True
                    ) -> tuple[int, int, int, int, int, int]:
    """(in, k, stride, pad, dilation, out) along one axis, every window touching the input."""
    n_in = draw(st.integers(1, max_in))
    k = draw(st.integers(1, max_k))
    stride = draw(st.integers(1, 3))
    dil = draw(st.integers(1, 2)) if dilate else 1
    eff = dil * (k - 1) + 1
    pad = draw(st.integers(0, eff - 1))
    base = (n_in + 2 * pad - eff) // stride + 1
    assume(base >= 1)
    # extra output rows: TFLite SAME padding puts the remainder at the bottom/right
    out = base + draw(st.integers(0, 1))
    assume((out - 1) * stride - pad <= n_in - 1)
    return n_in, k, stride, pad, dil, out


def _bias_ptr(q: Quant) -> ctypes._Pointer | None:  # type: ignore[type-arg]
    return None if q.bias is None else _i32(q.bias)


# ---- requantization ------------------------------------------------------------------------
@examples(2000)
@given(x=int32s, m=multipliers, s=st.integers(-31, 30))
def test_requantize_scalar(libs: list[Kernels], x: int, m: int, s: int) -> None:
    want = int(G.requantize(x, m, s))
    for k in libs:
        assert k.lib.tr_nn_requantize(x, m, s) == want, k.name
        assert k.lib.tr_nn_doubling_high_mult(x, m) == int(G.doubling_high_mult(x, m))
        e = abs(s) % 32
        assert k.lib.tr_nn_divide_by_power_of_two(x, e) == int(G.rounding_divide_by_pot(x, e))


def test_requantize_edges(libs: list[Kernels]) -> None:
    mn, mx = -(2**31), 2**31 - 1
    for k in libs:
        assert k.lib.tr_nn_doubling_high_mult(mn, mn) == mx  # the one saturating case
        assert k.lib.tr_nn_doubling_high_mult(mn, mx) == int(G.doubling_high_mult(mn, mx))
        assert k.lib.tr_nn_divide_by_power_of_two(-5, 1) == -3  # half away from zero
        assert k.lib.tr_nn_divide_by_power_of_two(5, 1) == 3
        assert k.lib.tr_nn_divide_by_power_of_two(mn, 31) == -1
        for x in (mn, mx, 0, -1, 1):
            for s in (-31, -1, 0, 1, 30):
                for m in (mn, mx, 0, 1 << 30):
                    assert k.lib.tr_nn_requantize(x, m, s) == int(G.requantize(x, m, s))


@examples(300)
@given(data=st.data())
def test_requantize_vector(libs: list[Kernels], data: st.DataObject) -> None:
    ch = data.draw(st.integers(1, 9))
    n = ch * data.draw(st.integers(0, 6))
    q = data.draw(quants(ch))
    acc = _arr(data.draw, (n,), -(2**31), 2**31 - 1, np.int32)
    want = np.clip(G.wrap32(G.requantize(acc.reshape(-1, ch), q.mult, q.shift) + q.out_off),
                   *q.act).astype(np.int8).reshape(-1)
    for k in libs:
        out = np.zeros(n, np.int8)
        st_ = k.lib.tr_requantize_s32_s8(_i32(acc), _i8(out), n, ch,
                                         PerChannel(_i32(q.mult), _i32(q.shift)), q.out_off,
                                         Act(*q.act))
        assert st_ == SUCCESS
        np.testing.assert_array_equal(out, want, err_msg=k.name)


@examples(200)
@given(data=st.data())
def test_dequantize(libs: list[Kernels], data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 40))
    x = _arr(data.draw, (n,), -128, 127, np.int8)
    zp = data.draw(st.integers(-128, 127))
    scale = data.draw(st.floats(float(np.float32(1e-6)), 10.0, width=32))
    want = G.dequantize_s8_f32(x, zp, scale)
    for k in libs:
        out = np.zeros(n, np.float32)
        assert k.lib.tr_dequantize_s8_f32(_i8(x), out.ctypes.data_as(
            ctypes.POINTER(ctypes.c_float)), n, zp, scale) == SUCCESS
        np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))


# ---- fully connected ---------------------------------------------------------------------
@examples(1000)
@given(data=st.data())
def test_fully_connected(libs: list[Kernels], data: st.DataObject) -> None:
    cols = data.draw(st.one_of(st.integers(1, 40), st.integers(1, 300)))
    # more than 32 rows: the DSP core requantizes in blocks of 32 accumulators
    rows = data.draw(st.one_of(st.integers(1, 13), st.integers(14, 80)))
    batch = data.draw(st.integers(1, 3))
    per_channel = data.draw(st.booleans())
    q = data.draw(quants(rows))
    if not per_channel:
        q.mult = np.full(rows, q.mult[0], np.int32)
        q.shift = np.full(rows, q.shift[0], np.int32)
    x = _arr(data.draw, (batch, cols), -128, 127, np.int8)
    w = _arr(data.draw, (rows, cols), -128, 127, np.int8)
    want = G.fully_connected_s8(x, w, q.bias, q.mult, q.shift, input_offset=q.in_off,
                                output_offset=q.out_off, act_min=q.act[0], act_max=q.act[1])
    params = FcParams(q.in_off, 0, q.out_off, Act(*q.act))
    fdims, odims = Dims(cols, 1, 1, rows), Dims(batch, 1, 1, rows)
    for k in libs:
        ctx, _keep = k.scratch(k.lib.tr_fully_connected_s8_get_buffer_size(ctypes.byref(fdims)))
        out = np.zeros((batch, rows), np.int8)
        if per_channel:
            st_ = k.lib.tr_fully_connected_per_channel_s8(
                ctx, params, PerChannel(_i32(q.mult), _i32(q.shift)), Dims(batch, 1, 1, cols),
                _i8(x), fdims, _i8(w), Dims(1, 1, 1, rows), _bias_ptr(q), odims, _i8(out))
        else:
            st_ = k.lib.tr_fully_connected_s8(
                ctx, params, PerTensor(int(q.mult[0]), int(q.shift[0])),
                Dims(batch, 1, 1, cols), _i8(x), fdims, _i8(w), Dims(1, 1, 1, rows),
                _bias_ptr(q), odims, _i8(out))
        assert st_ == SUCCESS
        np.testing.assert_array_equal(out, want, err_msg=k.name)


def test_fully_connected_rejects_bad_args(libs: list[Kernels]) -> None:
    x = np.zeros((1, 8), np.int8)
    w = np.zeros((4, 8), np.int8)
    out = np.zeros(4, np.int8)
    for k in libs:
        ctx, _keep = k.scratch(64)
        for params, quant in ((FcParams(0, 1, 0, Act(-128, 127)), PerTensor(1 << 30, 0)),
                              (FcParams(129, 0, 0, Act(-128, 127)), PerTensor(1 << 30, 0)),
                              (FcParams(0, 0, 0, Act(5, 4)), PerTensor(1 << 30, 0)),
                              (FcParams(0, 0, 0, Act(-128, 127)), PerTensor(1 << 30, 31))):
            st_ = k.lib.tr_fully_connected_s8(ctx, params, quant, Dims(1, 1, 1, 8), _i8(x),
                                              Dims(8, 1, 1, 4), _i8(w), Dims(1, 1, 1, 4), None,
                                              Dims(1, 1, 1, 4), _i8(out))
            assert st_ == ARG_ERROR


# ---- convolution -------------------------------------------------------------------------
@examples(1000)
@given(data=st.data())
def test_convolve(libs: list[Kernels], data: st.DataObject) -> None:
    h, kh, sh, ph, dh, oh = data.draw(window_geometry())
    w_, kw, sw, pw, dw, ow = data.draw(window_geometry())
    c = data.draw(st.integers(1, 10))
    oc = data.draw(st.integers(1, 11))
    n = data.draw(st.integers(1, 2))
    q = data.draw(quants(oc))
    x = _arr(data.draw, (n, h, w_, c), -128, 127, np.int8)
    f = _arr(data.draw, (oc, kh, kw, c), -128, 127, np.int8)
    want = G.convolve_s8(x, f, q.bias, q.mult, q.shift, input_offset=q.in_off,
                         output_offset=q.out_off, act_min=q.act[0], act_max=q.act[1],
                         stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), out_hw=(oh, ow))
    params = ConvParams(q.in_off, q.out_off, Tile(sw, sh), Tile(pw, ph), Tile(dw, dh),
                        Act(*q.act))
    idims, fdims = Dims(n, h, w_, c), Dims(oc, kh, kw, c)
    for k in libs:
        need = k.lib.tr_convolve_s8_get_buffer_size(ctypes.byref(idims), ctypes.byref(fdims))
        assert need >= kh * kw * c
        ctx, _keep = k.scratch(need)
        out = np.zeros((n, oh, ow, oc), np.int8)
        st_ = k.lib.tr_convolve_s8(ctx, params, PerChannel(_i32(q.mult), _i32(q.shift)), idims,
                                   _i8(x), fdims, _i8(f), Dims(1, 1, 1, oc), _bias_ptr(q),
                                   Dims(n, oh, ow, oc), _i8(out))
        assert st_ == SUCCESS
        np.testing.assert_array_equal(out, want, err_msg=k.name)


@examples(400)
@given(data=st.data())
def test_convolve_pointwise(libs: list[Kernels], data: st.DataObject) -> None:
    """1x1 without padding: the DSP build's two-pixels-per-pass path (C_IN a multiple of
    4), odd pixel counts (the last pixel alone), more than 32 output channels (several
    requantization blocks) and strides that skip pixels."""
    h, w_ = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))
    sh, sw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    oh, ow = (h - 1) // sh + 1, (w_ - 1) // sw + 1
    c = data.draw(st.one_of(st.sampled_from([4, 8, 12, 16, 20, 32]), st.integers(1, 9)))
    oc = data.draw(st.one_of(st.integers(1, 9), st.integers(30, 70)))
    n = data.draw(st.integers(1, 2))
    q = data.draw(quants(oc))
    x = _arr(data.draw, (n, h, w_, c), -128, 127, np.int8)
    f = _arr(data.draw, (oc, 1, 1, c), -128, 127, np.int8)
    want = G.convolve_s8(x, f, q.bias, q.mult, q.shift, input_offset=q.in_off,
                         output_offset=q.out_off, act_min=q.act[0], act_max=q.act[1],
                         stride=(sh, sw), padding=(0, 0), dilation=(1, 1), out_hw=(oh, ow))
    params = ConvParams(q.in_off, q.out_off, Tile(sw, sh), Tile(0, 0), Tile(1, 1),
                        Act(*q.act))
    idims, fdims = Dims(n, h, w_, c), Dims(oc, 1, 1, c)
    for k in libs:
        ctx, _keep = k.scratch(k.lib.tr_convolve_s8_get_buffer_size(ctypes.byref(idims),
                                                                    ctypes.byref(fdims)))
        out = np.zeros((n, oh, ow, oc), np.int8)
        st_ = k.lib.tr_convolve_s8(ctx, params, PerChannel(_i32(q.mult), _i32(q.shift)), idims,
                                   _i8(x), fdims, _i8(f), Dims(1, 1, 1, oc), _bias_ptr(q),
                                   Dims(n, oh, ow, oc), _i8(out))
        assert st_ == SUCCESS
        np.testing.assert_array_equal(out, want, err_msg=k.name)


def test_convolve_needs_scratch(libs: list[Kernels]) -> None:
    x = np.zeros((1, 3, 3, 2), np.int8)
    f = np.zeros((2, 3, 3, 2), np.int8)
    mult = np.full(2, 1 << 30, np.int32)
    shift = np.zeros(2, np.int32)
    out = np.zeros(2, np.int8)
    for k in libs:
        st_ = k.lib.tr_convolve_s8(Ctx(None, 0), ConvParams(0, 0, Tile(1, 1), Tile(0, 0),
                                                            Tile(1, 1), Act(-128, 127)),
                                   PerChannel(_i32(mult), _i32(shift)), Dims(1, 3, 3, 2),
                                   _i8(x), Dims(2, 3, 3, 2), _i8(f), Dims(1, 1, 1, 2), None,
                                   Dims(1, 1, 1, 2), _i8(out))
        assert st_ == ARG_ERROR


# ---- depthwise convolution -----------------------------------------------------------
@examples(800)
@given(data=st.data())
def test_depthwise_conv(libs: list[Kernels], data: st.DataObject) -> None:
    h, kh, sh, ph, dh, oh = data.draw(window_geometry())
    w_, kw, sw, pw, dw, ow = data.draw(window_geometry())
    c = data.draw(st.one_of(st.integers(1, 12), st.sampled_from([4, 8, 16])))
    cm = data.draw(st.one_of(st.just(1), st.integers(1, 3)))
    n = data.draw(st.integers(1, 2))
    oc = c * cm
    q = data.draw(quants(oc))
    x = _arr(data.draw, (n, h, w_, c), -128, 127, np.int8)
    f = _arr(data.draw, (1, kh, kw, oc), -128, 127, np.int8)
    want = G.depthwise_conv_s8(x, f, q.bias, q.mult, q.shift, input_offset=q.in_off,
                               output_offset=q.out_off, ch_mult=cm, act_min=q.act[0],
                               act_max=q.act[1], stride=(sh, sw), padding=(ph, pw),
                               dilation=(dh, dw), out_hw=(oh, ow))
    params = DwParams(q.in_off, q.out_off, cm, Tile(sw, sh), Tile(pw, ph), Tile(dw, dh),
                      Act(*q.act))
    for k in libs:
        out = np.zeros((n, oh, ow, oc), np.int8)
        st_ = k.lib.tr_depthwise_conv_s8(Ctx(None, 0), params,
                                         PerChannel(_i32(q.mult), _i32(q.shift)),
                                         Dims(n, h, w_, c), _i8(x), Dims(1, kh, kw, oc), _i8(f),
                                         Dims(1, 1, 1, oc), _bias_ptr(q), Dims(n, oh, ow, oc),
                                         _i8(out))
        assert st_ == SUCCESS
        np.testing.assert_array_equal(out, want, err_msg=k.name)


# ---- pooling ------------------------------------------------------------------------------
@examples(600)
@given(data=st.data(), avg=st.booleans())
def test_pooling(libs: list[Kernels], data: st.DataObject, avg: bool) -> None:
    h, kh, sh, ph, _, oh = data.draw(window_geometry(dilate=False))
    w_, kw, sw, pw, _, ow = data.draw(window_geometry(dilate=False))
    c = data.draw(st.integers(1, 9))
    n = data.draw(st.integers(1, 2))
    act = data.draw(activations())
    x = _arr(data.draw, (n, h, w_, c), -128, 127, np.int8)
    pool = G.avgpool_s8 if avg else G.maxpool_s8
    want = pool(x, (kh, kw), stride=(sh, sw), padding=(ph, pw), out_hw=(oh, ow),
                act_min=act[0], act_max=act[1])
    params = PoolParams(Tile(sw, sh), Tile(pw, ph), Act(*act))
    for k in libs:
        fn = k.lib.tr_avgpool_s8 if avg else k.lib.tr_maxpool_s8
        out = np.zeros((n, oh, ow, c), np.int8)
        st_ = fn(Ctx(None, 0), params, Dims(n, h, w_, c), _i8(x), Dims(1, kh, kw, 1),
                 Dims(n, oh, ow, c), _i8(out))
        assert st_ == SUCCESS
        np.testing.assert_array_equal(out, want, err_msg=k.name)


def test_pooling_rejects_empty_window(libs: list[Kernels]) -> None:
    x = np.zeros((1, 2, 2, 1), np.int8)
    out = np.zeros(9, np.int8)
    for k in libs:
        # padding 2 with a 2-wide window: the first window lies entirely in the padding
        st_ = k.lib.tr_avgpool_s8(Ctx(None, 0), PoolParams(Tile(1, 1), Tile(2, 2),
                                                           Act(-128, 127)),
                                  Dims(1, 2, 2, 1), _i8(x), Dims(1, 2, 2, 1), Dims(1, 3, 3, 1),
                                  _i8(out))
        assert st_ == ARG_ERROR


def test_implementation_ids(libs: list[Kernels]) -> None:
    # both host builds are "ours"; the DSP one runs C models of the instructions
    assert [k.lib.tr_nn_implementation() for k in libs] == [0, 0]


def test_int32_min_corner_saturates(libs: list[Kernels]) -> None:
    """The one place the arithmetic differs from CMSIS-NN: accumulator and multiplier both
    INT32_MIN. TFLite's reference (and the golden model) saturates the doubling high
    multiply to INT32_MAX, so the output is 127; CMSIS-NN's non-saturating multiply gives
    -128 there. Only a negative multiplier gets here, which TFLite never emits."""
    mn = -(2**31)
    x = np.zeros((1, 4), np.int8)  # (x + offset) * w == 0: the accumulator is the bias
    w = np.ones((1, 4), np.int8)
    bias = np.array([mn], np.int32)
    for shift in (0, -1, -5):
        want = G.fully_connected_s8(x, w, bias, np.array([mn], np.int32),
                                    np.array([shift], np.int32), input_offset=0,
                                    output_offset=0, act_min=-128, act_max=127)
        assert want[0, 0] == 127
        for k in libs:
            ctx, _keep = k.scratch(64)
            out = np.zeros((1, 1), np.int8)
            assert k.lib.tr_fully_connected_s8(
                ctx, FcParams(0, 0, 0, Act(-128, 127)), PerTensor(mn, shift), Dims(1, 1, 1, 4),
                _i8(x), Dims(4, 1, 1, 1), _i8(w), Dims(1, 1, 1, 1), _i32(bias),
                Dims(1, 1, 1, 1), _i8(out)) == SUCCESS
            assert out[0, 0] == 127, (k.name, shift)
