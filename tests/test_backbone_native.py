"""The backbone messages (BACKBONE_INIT / _WRITE / FEATURES / BACKBONE_INFO) against the
firmware compiled for the host: validation and NAK reasons (a NAKed request changes
nothing), blob verification, features bit-exact with the golden int8 model, and TRAIN_STEP
through backbone + head. Codecs round-trip."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from rig.device import Device
from rig.errors import DeviceNak
from rig.golden.data import digits_split
from rig.golden.int8 import Op, QBackbone, QLayer, samples_to_int8
from rig.golden.quant import default_backbone
from rig.protocol import (
    BackboneInfo,
    BackboneInit,
    BackboneInitResult,
    BackboneLayerRecord,
    BackboneWrite,
    FeaturesResult,
    MsgType,
    NakReason,
)
from rig.session import Inspect, RunSpec, TrainingSession

R = NakReason


@pytest.fixture
def dev(dev: Device) -> Device:
    """The conftest's native firmware process, after HELLO."""
    dev.hello()
    return dev


def nak(fn, *args, **kw) -> DeviceNak:  # type: ignore[no-untyped-def]
    with pytest.raises(DeviceNak) as exc:
        fn(*args, **kw)
    return exc.value


def small_backbone() -> QBackbone:
    """conv 3x3 (4x4x2 -> 4x4x3) + maxpool 2 -> 12 features."""
    rng = np.random.default_rng(3)
    conv = QLayer(Op.CONV, (4, 4, 2), (4, 4, 3), kernel=(3, 3), padding=(1, 1),
                  input_offset=5, output_offset=-7,
                  weights=rng.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8),
                  bias=rng.integers(-500, 500, 3).astype(np.int32),
                  multiplier=np.full(3, 1 << 30, np.int32), shift=np.array([-6, -5, -7]))
    pool = QLayer(Op.MAXPOOL, (4, 4, 3), (2, 2, 3), kernel=(2, 2), stride=(2, 2))
    return QBackbone((4, 4, 2), (conv, pool), out_scale=0.25, out_zero_point=-7)


def init_req(bb: QBackbone, **override: object) -> BackboneInit:
    blob = bb.blob()
    recs = tuple(BackboneLayerRecord(int(la.op), la.kernel, la.stride, la.padding, la.dilation,
                                     la.out_shape, la.input_offset, la.output_offset,
                                     la.act_min, la.act_max) for la in bb.layers)
    req = BackboneInit(bb.input_shape, bb.out_scale, bb.out_zero_point, len(blob),
                       zlib.crc32(blob), recs)
    return dataclasses.replace(req, **override)


# ---- codecs -------------------------------------------------------------------------------

def test_codecs_round_trip() -> None:
    req = init_req(small_backbone())
    assert BackboneInit.unpack(req.pack()) == req
    assert len(req.pack()) == 28 + 28 * 2
    res = BackboneInitResult(100, 12, 96, 44, 1000)
    assert BackboneInitResult.unpack(res.pack()) == res
    info = BackboneInfo(1, 2, 3, 8, 1, 2, 5, 128, 1568, 2032)
    assert BackboneInfo.unpack(info.pack()) == info
    w = BackboneWrite(7, b"abc")
    assert BackboneWrite.unpack(w.pack()) == w
    f = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    assert np.array_equal(FeaturesResult.unpack(FeaturesResult(f).pack()).features, f)


def test_blob_layout() -> None:
    bb = small_backbone()
    blob = bb.blob()
    # conv: 3*3*3*2 = 54 weight bytes padded to 56, then 3 x (bias, multiplier, shift)
    assert len(blob) == 56 + 3 * 12
    conv = bb.layers[0]
    assert blob[:54] == conv.weights.tobytes() and blob[54:56] == b"\0\0"
    assert np.array_equal(np.frombuffer(blob, "<i4", 3, 56), conv.bias)
    assert np.array_equal(np.frombuffer(blob, "<i4", 3, 80), conv.shift)


# ---- device behaviour ---------------------------------------------------------------------

def test_info_and_features_bit_exact(dev: Device) -> None:
    info = dev.backbone_info()
    assert info.state == 0 and info.param_capacity > 0 and info.kernels in (0, 1)
    bb = small_backbone()
    res = dev.load_backbone(bb)
    assert (res.n_features, res.blob_size, res.macs) == (12, len(bb.blob()), bb.macs)
    assert dev.backbone_info().state == 1  # loaded, blob not verified yet
    x = np.random.default_rng(0).integers(-128, 128, (20, 32)).astype(np.int8)
    dev.data_config(32, "s8", 1.0, 0.0, 20)
    dev.write_samples(0, np.zeros(20, np.uint8), x)
    assert np.array_equal(dev.features(0, 20), bb.forward(x))
    assert dev.backbone_info().state == 2  # verified at first use


def test_init_validation_naks_change_nothing(dev: Device) -> None:
    bb = small_backbone()
    dev.load_backbone(bb)
    good = init_req(bb)
    conv, pool = good.layers
    bad = {
        "op": (dataclasses.replace(good, layers=(dataclasses.replace(conv, op=9), pool)),
               R.BAD_ARG, 28),
        "blob size": (dataclasses.replace(good, blob_size=good.blob_size + 4), R.BAD_ARG, 16),
        "pad >= kernel": (dataclasses.replace(good, layers=(
            dataclasses.replace(conv, padding=(3, 1)), pool)), R.BAD_ARG, 38),
        "output too big": (dataclasses.replace(good, layers=(
            dataclasses.replace(conv, out_shape=(9, 4, 3)), pool)), R.BAD_ARG, 38),
        "pool changes channels": (dataclasses.replace(good, layers=(
            conv, dataclasses.replace(pool, out_shape=(2, 2, 4)))), R.BAD_ARG, 70),
        "input offset": (dataclasses.replace(good, layers=(
            dataclasses.replace(conv, input_offset=129), pool)), R.BAD_ARG, 44),
        "zero point": (dataclasses.replace(good, out_zero_point=128), R.BAD_ARG, 12),
        "too many layers": (dataclasses.replace(good, layers=(pool,) * 9), R.NO_SPACE, 0),
        "activations": (dataclasses.replace(good, in_shape=(100, 100, 2), layers=(
            dataclasses.replace(conv, out_shape=(100, 100, 3)),
            dataclasses.replace(pool, out_shape=(50, 50, 3)))), R.NO_SPACE, None),
    }
    for name, (req, reason, detail) in bad.items():
        e = nak(dev._call, MsgType.BACKBONE_INIT, req.pack(), None)
        assert e.reason == reason, name
        if detail is not None:
            assert e.detail == detail, name
    truncated = nak(dev._call, MsgType.BACKBONE_INIT, good.pack()[:-1], None)
    assert truncated.reason == R.BAD_LENGTH
    # nothing changed: the loaded backbone still computes the same features
    info = dev.backbone_info()
    assert (info.n_layers, info.n_features, info.blob_size) == (2, 12, len(bb.blob()))
    x = np.zeros((1, 32), np.int8)
    dev.data_config(32, "s8", 1.0, 0.0, 1)
    dev.write_samples(0, [0], x)
    assert np.array_equal(dev.features(0, 1), bb.forward(x))


def test_write_and_features_errors(dev: Device) -> None:
    assert nak(dev.backbone_write, 0, b"\1\2").reason == R.BAD_STATE  # no BACKBONE_INIT
    assert nak(dev.features, 0, 1).reason == R.BAD_STATE
    bb = small_backbone()
    dev.load_backbone(bb)
    assert nak(dev.backbone_write, len(bb.blob()) - 1, b"\1\2").reason == R.BAD_ARG
    assert nak(dev.features, 0, 1).reason == R.BAD_STATE  # no DATA_CONFIG
    dev.data_config(32, "f32", 1.0, 0.0, 2)
    dev.write_samples(0, [0, 1], np.zeros((2, 32), np.float32))
    assert "u8/s8" in nak(dev.features, 0, 2).text
    dev.data_config(31, "s8", 1.0, 0.0, 2)
    dev.write_samples(0, [0, 1], np.zeros((2, 31), np.int8))
    assert nak(dev.features, 0, 2).reason == R.BAD_STATE  # 31 != 4*4*2
    dev.data_config(32, "s8", 1.0, 0.0, 2)
    dev.write_samples(0, [0], np.zeros((1, 32), np.int8))
    assert nak(dev.features, 0, 2).text == "sample not written"
    assert nak(dev.features, 1, 5).reason == R.BAD_ARG


def test_incomplete_blob_is_detected(dev: Device) -> None:
    bb = small_backbone()
    blob = bb.blob()
    dev.backbone_init(init_req(bb))
    dev.backbone_write(0, blob[:40])  # the rest never arrives
    dev.data_config(32, "s8", 1.0, 0.0, 1)
    dev.write_samples(0, [0], np.zeros((1, 32), np.int8))
    assert "CRC" in nak(dev.features, 0, 1).text
    dev.backbone_write(40, blob[40:])
    assert dev.features(0, 1).shape == (1, 12)


def test_bad_shift_is_reported_at_first_use(dev: Device) -> None:
    bb = small_backbone()
    conv = dataclasses.replace(bb.layers[0], shift=np.array([-6, 31, -7]))
    bb = dataclasses.replace(bb, layers=(conv, bb.layers[1]))
    dev.load_backbone(bb)
    dev.data_config(32, "s8", 1.0, 0.0, 1)
    dev.write_samples(0, [0], np.zeros((1, 32), np.int8))
    e = nak(dev.features, 0, 1)
    assert e.reason == R.BAD_STATE and "shift" in e.text


def test_remove_and_reset_forget_the_backbone(dev: Device) -> None:
    dev.load_backbone(small_backbone())
    dev.remove_backbone()
    assert dev.backbone_info().n_layers == 0
    dev.load_backbone(small_backbone())
    dev.reset()
    assert dev.backbone_info().state == 0


def test_head_input_width_follows_the_backbone(dev: Device) -> None:
    bb = small_backbone()
    dev.load_backbone(bb)
    dev.data_config(32, "s8", 1.0, 0.0, 4)
    dev.write_samples(0, [0, 1, 2, 1], np.zeros((4, 32), np.int8))
    dev.model_init([32, 3])  # the raw sample width: wrong with a backbone
    dev.train_config(0.1)
    e = nak(dev.train_step, [0, 1])
    assert e.reason == R.BAD_STATE and "dims[0]" in e.text
    dev.model_init([12, 3])
    dev.train_config(0.1)
    assert dev.train_step([0, 1, 2, 3]).loss > 0


def test_session_backbone_head_lockstep(dev: Device) -> None:
    spec = RunSpec(dims=(64, 32, 10), backbone="digits-cnn", epochs=1, batch=16,
                   train_samples=128, test_samples=64, strategy="full", lr=0.1)
    session = TrainingSession(dev, spec, inspect=Inspect(params_every=1, resync=True,
                                                         features=64))
    assert session.spec.dims == (128, 32, 10)
    report = session.run()
    assert report.ok, report.failures
    assert report.setup[0].ok and "0 of 8192 differ" in str(report.setup[0])


def test_default_backbone_shape_and_memory() -> None:
    bb = default_backbone()
    assert bb.n_features == 128 and len(bb.layers) == 5
    assert len(bb.blob()) == 1568  # parameters streamed into RAM
    assert bb.macs == 16 * 64 * 9 + 16 * 16 * 9 + 32 * 16 * 16
    split = digits_split(0)
    f = bb.forward(samples_to_int8(split.test.q, 1))
    assert f.shape == (len(split.test), 128) and f.dtype == np.int8
