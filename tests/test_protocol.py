"""Payload layouts of rig.protocol: round trips, exact sizes, decoding of fault frames."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig import protocol as P
from rig.device import chunks
from rig.errors import ConfigError

f32s = st.floats(width=32, allow_nan=False)
u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
short_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40)


@given(st.builds(P.HelloInfo, u8, u8, u16, u32, u32, u32, u16, u16, u16, u16,
                 short_text, short_text, short_text, link_baud=u32,
                 link_rates=st.lists(u32, max_size=6).map(tuple)))
def test_hello_round_trip(info: P.HelloInfo) -> None:
    assert P.HelloInfo.unpack(info.pack()) == info


def test_hello_layout_and_helpers() -> None:
    info = P.HelloInfo(1, 2, 1024, 25_000_000, 4096, 65536, 4, 128, 32, 0b1000011,
                       "mps2-an386", "ab" * 32, "0.1.0")
    raw = info.pack()
    # fixed part, three strings, then u32 link_baud + u8 rate count (no rates here)
    assert raw[:4] == b"\x01\x02\x00\x04" and len(raw) == 24 + 3 + 10 + 64 + 5 + 5
    fast = P.HelloInfo(**{**info.__dict__, "link_baud": 115200,
                          "link_rates": (115200, 921600, 1_000_000)})
    raw_fast = fast.pack()
    assert raw_fast[len(raw) - 5:] == struct.pack("<IB3I", 115200, 3, 115200, 921600, 1_000_000)
    assert P.HelloInfo.unpack(raw_fast) == fast
    with pytest.raises(P.PayloadError, match="3 link rates need 12 bytes"):
        P.HelloInfo.unpack(raw_fast[:-2])
    with pytest.raises(P.PayloadError, match="before the link rates"):
        P.HelloInfo.unpack(raw[:-5])
    assert info.strategy_names == ["full", "tinyprop", "static"]
    assert info.supports("tinyprop") and not info.supports("neq")
    assert info.counter_label == "SysTick ticks"
    with pytest.raises(P.PayloadError):
        P.HelloInfo.unpack(raw[:-1])
    with pytest.raises(P.PayloadError):
        P.HelloInfo.unpack(raw + b"x")


@given(st.lists(st.integers(1, 0xFFFF), min_size=2, max_size=8))
def test_model_init(dims: list[int]) -> None:
    raw = P.ModelInit(tuple(dims)).pack()
    assert len(raw) == 2 + 2 * len(dims) and raw[0] == len(dims) - 1
    assert P.ModelInit.unpack(raw).dims == tuple(dims)


@given(u8, u8, u32, st.lists(f32s, max_size=50))
def test_param_write(layer: int, which: int, offset: int, values: list[float]) -> None:
    raw = P.ParamWrite(layer, which, offset, np.array(values, np.float32)).pack()
    assert len(raw) == 8 + 4 * len(values)
    back = P.ParamWrite.unpack(raw)
    assert (back.layer, back.which, back.offset) == (layer, which, offset)
    assert back.values.tobytes() == np.array(values, np.float32).tobytes()


@given(u8, u8, u16, u32)
def test_tensor_read(layer: int, which: int, count: int, offset: int) -> None:
    req = P.TensorRead(layer, which, count, offset)
    assert len(req.pack()) == 8 and P.TensorRead.unpack(req.pack()) == req


@given(f32s, f32s, u8, st.lists(f32s, max_size=8), u16)
def test_train_config(lr: float, mom: float, strategy: int, sparams: list[float],
                      batch: int) -> None:
    req = P.TrainConfig(lr, mom, strategy, tuple(sparams), batch)
    assert len(req.pack()) == 12 + 4 * len(sparams)
    assert req.pack()[10:12] == batch.to_bytes(2, "little")
    assert P.TrainConfig.unpack(req.pack()) == req


@given(u16, st.integers(0, 2), f32s, f32s, u32)
def test_data_config(n: int, dtype: int, scale: float, zp: float, ns: int) -> None:
    cfg = P.DataConfig(n, dtype, scale, zp, ns)
    assert len(cfg.pack()) == 16 and P.DataConfig.unpack(cfg.pack()) == cfg


@pytest.mark.parametrize("dtype", ["f32", "u8", "s8"])
def test_records_round_trip(dtype: str) -> None:
    rng = np.random.default_rng(1)
    dt = P.DType.coerce(dtype)
    if dt == P.DType.F32:
        feats = rng.standard_normal((5, 3)).astype(np.float32)
    else:
        info = np.iinfo(dt.numpy)
        feats = rng.integers(info.min, info.max + 1, (5, 3)).astype(dt.numpy)
    labels = np.arange(5, dtype=np.uint8)
    raw = P.encode_records(labels, feats, dt)
    assert len(raw) == 5 * (1 + 3 * dt.itemsize)
    assert raw[0] == 0 and raw[1 + 3 * dt.itemsize] == 1
    lab, back = P.decode_records(raw, 3, dt)
    assert np.array_equal(lab, labels) and np.array_equal(back, feats)
    req = P.DataWrite(10, 5, raw)
    assert P.DataWrite.unpack(req.pack()) == req


def test_records_refuse_lossy_features() -> None:
    with pytest.raises(ValueError):
        P.encode_records([1], np.array([[300]]), "u8")
    with pytest.raises(ValueError):
        P.encode_records([1], np.array([[0.5]]), "s8")


@given(st.lists(u16, max_size=64))
def test_train_step(idx: list[int]) -> None:
    raw = P.TrainStep(np.array(idx, dtype=np.int64)).pack()
    assert len(raw) == 4 + 2 * len(idx)
    assert P.TrainStep.unpack(raw).indices.tolist() == idx


@given(f32s, u16, st.booleans(), st.lists(u16, max_size=8), st.tuples(u32, u32, u32, u32))
def test_step_result(loss: float, correct: int, skipped: bool, k: list[int],
                     counters: tuple[int, int, int, int]) -> None:
    res = P.StepResult(loss, correct, skipped, tuple(k), counters)
    assert len(res.pack()) == 8 + 2 * len(k) + 16
    assert P.StepResult.unpack(res.pack()) == res
    assert res.phase_counters["selection"] == counters[2]


@given(f32s, u16, st.binary(max_size=100))
def test_eval(loss: float, correct: int, pred: bytes) -> None:
    res = P.EvalResult(loss, correct, len(pred), np.frombuffer(pred, np.uint8))
    back = P.EvalResult.unpack(res.pack())
    assert (back.loss_sum, back.correct, back.count) == (loss, correct, len(pred))
    assert back.pred.tobytes() == pred
    rr = P.RangeRequest(123456, 77)
    assert len(rr.pack()) == 8 and P.RangeRequest.unpack(rr.pack()) == rr


@given(st.lists(u16, max_size=8), u32)
def test_select_result(k: list[int], n: int) -> None:
    res = P.SelectResult(tuple(k), n)
    assert len(res.pack()) == 2 + 2 * len(k) + 4 and P.SelectResult.unpack(res.pack()) == res


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=64))
def test_mask(bits: list[tuple[bool, bool]]) -> None:
    rows = np.array([b[0] for b in bits], bool)
    bias = np.array([b[1] for b in bits], bool)
    back = P.Mask.unpack(P.Mask(rows, bias).pack())
    assert np.array_equal(back.row_mask, rows) and np.array_equal(back.bias_mask, bias)
    assert back.k == int(rows.sum())
    assert P.MaskRead.unpack(P.MaskRead(3).pack()) == P.MaskRead(3)


def test_nak() -> None:
    nak = P.Nak(7, 0x11, 8, "offset out of range")
    back = P.Nak.unpack(nak.pack())
    assert back == nak and back.reason_name == "BAD_ARG" and not back.is_transport
    assert P.Nak(1, 2, 0, "").is_transport
    assert P.Nak.unpack(b"\x07\x11\x00\x00" + b"x" * 100).text == "x" * 100  # host tolerant


def test_fault_summary() -> None:
    info = P.FaultInfo(3, 0, 1, 2, 3, 12, 0x0800_1235, 0x0800_0100, 0x6100_0000,
                       cfsr=(1 << 9) | (1 << 15) | (1 << 19), hfsr=1 << 30, mmfar=0,
                       bfar=0xDEAD_BEEF)
    raw = info.pack()
    assert len(raw) == P.FaultInfo.SIZE == 52
    back = P.FaultInfo.unpack(raw)
    assert back == info
    text = back.summary()
    for word in ("HardFault", "FORCED", "PRECISERR", "NOCP", "BFAR=0xdeadbeef",
                 "pc=0x08000100"):
        assert word in text
    assert back.cfsr_flags == ["PRECISERR", "BFARVALID", "NOCP"]
    assert list(back.registers())[:2] == ["exception", "r0"]


def test_names_and_ids() -> None:
    assert P.strategy_id("velocity-budget") == 4 and P.strategy_id(6) == 6
    assert P.strategy_name(2) == "tinypropv2"
    with pytest.raises(ConfigError, match="unknown strategy"):
        P.strategy_id("dense")
    assert P.type_name(0x82) == "ECHO+resp" and P.type_name(0x45) == "0x45"
    assert P.CounterKind(1).label == "cycles (DWT)" and P.counter_label(0) == "none"
    assert P.DType.coerce("s8") == P.DType.S8 and P.DType.coerce(np.uint8) == P.DType.U8
    assert P.DType.coerce(np.float32) == P.DType.F32
    assert list(chunks(10, 4)) == [(0, 4), (4, 4), (8, 2)]
    assert math.isnan(P.EvalResult(0.0, 0, 0, np.zeros(0, np.uint8)).accuracy)


@pytest.mark.parametrize("bits", [0, 4, 8, 16])
@pytest.mark.parametrize("max_payload", [64, 256, 2048, 4096])
def test_param_digest_max_count_fits_the_response_and_the_u16_count(bits: int,
                                                                     max_payload: int) -> None:
    n = P.ParamDigest.max_count(max_payload, bits)
    assert 0 < n <= 0xFFFF
    assert P.ParamDigest.response_size(n, bits) <= max_payload
    assert n == 0xFFFF or P.ParamDigest.response_size(n + 1, bits) > max_payload
    assert P.ParamDigest.unpack(P.ParamDigest(0, n, bits).pack()).count == n
