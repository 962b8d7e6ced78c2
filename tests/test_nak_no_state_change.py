"""A refused request changes no device state (the protocol's NAK rule), for every message
type the firmware can refuse, on the firmware compiled for the host.

Each case starts a fresh firmware process, brings it into a trained state (model, data,
optimiser with momentum, a strategy with running state, one SELECT for the mask strategies,
two steps; in one scenario behind a loaded int8 backbone), reads back everything the
protocol can read (parameters, last update, masks, BACKBONE_INFO, FEATURES, an EVAL), sends
one request that must be NAKed, and reads everything again: the two read-backs must be
identical. State the protocol cannot read directly (lr, momentum, momentum buffers,
strategy state, the data set) shows in what the device does next: a probe (TRAIN_STEP,
read-back, SELECT, TRAIN_STEP, read-back) must give bit-identical results to a reference
process that never saw the refused request.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rig import protocol as P
from rig import strategies
from rig.device import Device, Timing
from rig.errors import DeviceNak
from rig.golden.int8 import Op, QBackbone, QLayer
from rig.link.link import Link
from rig.link.transport import PipeTransport

M = P.MsgType
DIMS = (8, 7, 6, 4)
N_SAMPLES = 27  # 0..23 good, 24 has a label >= n_classes, 25 is good, 26 is never written
GOOD = 24
BAD_LABEL = 24
UNWRITTEN = 26
STATE_STRATEGIES = ("tinypropv2", "neq")  # running state (Ymax / velocities + SELECT)
BACKBONE = "backbone"  # tinypropv2 behind a loaded int8 backbone


@pytest.fixture(scope="module")
def native_fw(native_build: Callable[[str], Path]) -> Path:
    return native_build("native") / "tinyrig_fw"


@dataclass
class Fw:
    proc: subprocess.Popen[bytes]
    dev: Device

    def close(self) -> None:
        self.dev.link.transport.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


def start(exe: Path) -> Fw:
    proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    dev = Device(Link(PipeTransport(proc, "native:tinyrig_fw"), timeout=5.0, retries=1),
                 Timing(base=5.0))
    dev.hello()
    return Fw(proc, dev)


def small_backbone() -> QBackbone:
    """conv 3x3 (4x4x2 -> 4x4x2) + maxpool 2 -> 8 features (= DIMS[0])."""
    rng = np.random.default_rng(7)
    conv = QLayer(Op.CONV, (4, 4, 2), (4, 4, 2), kernel=(3, 3), padding=(1, 1),
                  input_offset=3, output_offset=-5,
                  weights=rng.integers(-127, 128, (2, 3, 3, 2)).astype(np.int8),
                  bias=rng.integers(-500, 500, 2).astype(np.int32),
                  multiplier=np.full(2, 1 << 30, np.int32), shift=np.array([-6, -5]))
    pool = QLayer(Op.MAXPOOL, (4, 4, 2), (2, 2, 2), kernel=(2, 2), stride=(2, 2))
    return QBackbone((4, 4, 2), (conv, pool), out_scale=0.25, out_zero_point=-5)


def strategy_of(scenario: str) -> str:
    return "tinypropv2" if scenario == BACKBONE else scenario


def trained_state(dev: Device, scenario: str) -> None:
    """Model, data, optimiser with momentum, strategy state; with BACKBONE an int8
    backbone in front of the head and s8 image samples (records of the same size)."""
    strategy = strategy_of(scenario)
    rng = np.random.default_rng(20)
    weights = [(rng.standard_normal((DIMS[i + 1], DIMS[i])).astype(np.float32) * 0.5,
                rng.standard_normal(DIMS[i + 1]).astype(np.float32) * 0.1)
               for i in range(len(DIMS) - 1)]
    dev.load_model(weights)
    y = rng.integers(0, DIMS[-1], N_SAMPLES - 1).astype(np.uint8)
    y[BAD_LABEL] = DIMS[-1]  # a label the model has no class for
    if scenario == BACKBONE:
        dev.load_backbone(small_backbone())
        xi = rng.integers(-128, 128, (N_SAMPLES - 1, 32)).astype(np.int8)
        dev.data_config(32, "s8", n_samples=N_SAMPLES)
        dev.write_samples(0, y, xi)
    else:
        x = rng.standard_normal((N_SAMPLES - 1, DIMS[0])).astype(np.float32)
        dev.data_config(DIMS[0], "f32", n_samples=N_SAMPLES)
        dev.write_samples(0, y, x)
    dev.train_config(0.1, 0.9, strategy)
    if strategies.get(strategy).uses_select:
        dev.select(16, 8)
    dev.train_step(np.arange(8))
    dev.train_step(np.arange(8, 16))


def read_back(dev: Device) -> dict[str, Any]:
    """Everything readable without changing state, as bytes / plain values."""
    state: dict[str, Any] = {}
    for layer in range(len(DIMS) - 1):
        for which in ("w", "b"):
            state[f"param {layer}{which}"] = dev.read_params(layer, which).tobytes()
            state[f"update {layer}{which}"] = dev.read_update(layer, which).tobytes()
        mask = dev.read_mask(layer)
        state[f"mask {layer}"] = (mask.row_mask.tobytes(), mask.bias_mask.tobytes())
    state["backbone"] = info = dev.backbone_info()
    if info.n_layers:
        state["features"] = dev.features(0, GOOD).tobytes()
    ev = dev.evaluate(0, GOOD)
    state["eval"] = (struct.pack("<f", ev.loss_sum), ev.correct, ev.pred.tobytes())
    return state


def probe(dev: Device, scenario: str) -> list[Any]:
    """What the device does next: shows lr, momentum buffers, strategy state, data."""
    strategy = strategy_of(scenario)
    out: list[Any] = []
    res = dev.train_step(np.arange(16, 24))
    out += [struct.pack("<f", res.loss), res.correct, res.skipped, res.k, read_back(dev)]
    if strategies.get(strategy).uses_select:
        sel = dev.select(16, 8)
        out += [sel.k, sel.trainable_params]
    res = dev.train_step(np.arange(0, 24, 3))
    out += [struct.pack("<f", res.loss), res.correct, res.skipped, res.k, read_back(dev)]
    return out


def _f32(*v: float) -> bytes:
    return struct.pack(f"<{len(v)}f", *v)


def _dw(start: int, count: int, label: int = 1) -> bytes:
    """A DATA_WRITE of `count` valid f32 records (features 7.0) at `start`."""
    rec = bytes([label]) + _f32(*[7.0] * DIMS[0])
    return P.DataWrite(start, count, rec * count).pack()


def _steps(*idx: int) -> bytes:
    return P.TrainStep(np.asarray(idx)).pack()


TC = P.TrainConfig


def _sid(name: str) -> int:
    return int(strategies.get(name).id)


# (name, message type, payload): every one must be NAKed in the trained state.
# TRAIN_CONFIG cases carry lr 0.5 / momentum 0.2 / another strategy, so a firmware that
# applies any part of the request before validating it changes the probe.
REFUSED: list[tuple[str, int, bytes]] = [
    ("TRAIN_CONFIG unknown strategy", M.TRAIN_CONFIG, TC(0.5, 0.2, 0x7F).pack()),
    ("TRAIN_CONFIG negative lr", M.TRAIN_CONFIG, TC(-0.5, 0.2, _sid("full")).pack()),
    ("TRAIN_CONFIG nan momentum", M.TRAIN_CONFIG,
     TC(0.5, float("nan"), _sid("full")).pack()),
    ("TRAIN_CONFIG too many sparams", M.TRAIN_CONFIG,
     TC(0.5, 0.2, _sid("full"), (0.5,)).pack()),
    ("TRAIN_CONFIG sparam out of range", M.TRAIN_CONFIG,
     TC(0.5, 0.2, _sid("tinyprop"), (0.1, 0.9, 1.5)).pack()),
    ("TRAIN_CONFIG sparam not finite", M.TRAIN_CONFIG,
     TC(0.5, 0.2, _sid("static"), (float("inf"),)).pack()),
    ("TRAIN_CONFIG short", M.TRAIN_CONFIG, TC(0.5, 0.2, _sid("full")).pack()[:11]),
    ("TRAIN_CONFIG batch > max_batch", M.TRAIN_CONFIG,
     TC(0.5, 0.2, _sid("full"), (), 0xFFFF).pack()),
    ("TRAIN_CONFIG sparams cut", M.TRAIN_CONFIG,
     TC(0.5, 0.2, _sid("tinyprop"), (0.1, 0.9)).pack()[:-2]),
    ("MODEL_INIT too wide", M.MODEL_INIT, P.ModelInit((8, 10_000, 4)).pack()),
    ("MODEL_INIT zero width", M.MODEL_INIT, P.ModelInit((8, 0, 4)).pack()),
    ("MODEL_INIT no layers", M.MODEL_INIT, b"\x00\x00"),
    ("MODEL_INIT no space", M.MODEL_INIT, b""),  # filled in from HELLO (see _payload)
    ("MODEL_INIT cut", M.MODEL_INIT, P.ModelInit((8, 5, 4)).pack()[:-1]),
    ("PARAM_WRITE past the end", M.PARAM_WRITE,
     P.ParamWrite(0, 0, DIMS[0] * DIMS[1] - 2, np.ones(4, np.float32)).pack()),
    ("PARAM_WRITE bad layer", M.PARAM_WRITE,
     P.ParamWrite(len(DIMS) - 1, 0, 0, np.ones(1, np.float32)).pack()),
    ("PARAM_WRITE bad which", M.PARAM_WRITE,
     P.ParamWrite(0, 2, 0, np.ones(1, np.float32)).pack()),
    ("PARAM_WRITE ragged", M.PARAM_WRITE,
     P.ParamWrite(0, 0, 0, np.ones(2, np.float32)).pack()[:-1]),
    ("PARAM_READ bad layer", M.PARAM_READ, P.TensorRead(9, 0, 1, 0).pack()),
    ("UPDATE_READ past the end", M.UPDATE_READ, P.TensorRead(0, 1, 4, DIMS[1] - 2).pack()),
    ("MASK_READ bad layer", M.MASK_READ, P.MaskRead(len(DIMS) - 1).pack()),
    ("DATA_CONFIG zero features", M.DATA_CONFIG, P.DataConfig(0, 0, 1.0, 0.0, 4).pack()),
    ("DATA_CONFIG bad dtype", M.DATA_CONFIG, P.DataConfig(8, 3, 1.0, 0.0, 4).pack()),
    ("DATA_CONFIG nan scale", M.DATA_CONFIG,
     P.DataConfig(8, 1, float("nan"), 0.0, 4).pack()),
    ("DATA_CONFIG inf zero point", M.DATA_CONFIG,
     P.DataConfig(8, 1, 1.0, float("inf"), 4).pack()),
    ("DATA_CONFIG no space", M.DATA_CONFIG, P.DataConfig(8, 0, 1.0, 0.0, 1 << 30).pack()),
    ("DATA_CONFIG short", M.DATA_CONFIG, P.DataConfig(8, 0, 1.0, 0.0, 4).pack()[:15]),
    ("DATA_WRITE past n_samples", M.DATA_WRITE, _dw(N_SAMPLES - 2, 3)),
    ("DATA_WRITE ragged", M.DATA_WRITE, _dw(0, 2)[:-1]),
    ("DATA_WRITE short", M.DATA_WRITE, _dw(0, 1)[:7]),
    ("TRAIN_STEP empty batch", M.TRAIN_STEP, _steps()),
    ("TRAIN_STEP index out of range last", M.TRAIN_STEP, _steps(0, 1, 2, N_SAMPLES)),
    ("TRAIN_STEP unwritten sample last", M.TRAIN_STEP, _steps(3, 4, 5, UNWRITTEN)),
    ("TRAIN_STEP bad label last", M.TRAIN_STEP, _steps(6, 7, 8, BAD_LABEL)),
    ("TRAIN_STEP cut", M.TRAIN_STEP, _steps(0, 1, 2)[:-1]),
    ("EVAL unwritten sample", M.EVAL, P.RangeRequest(20, 7).pack()),
    ("EVAL bad label", M.EVAL, P.RangeRequest(20, 5).pack()),
    ("EVAL past n_samples", M.EVAL, P.RangeRequest(N_SAMPLES - 1, 2).pack()),
    ("EVAL short", M.EVAL, P.RangeRequest(0, 4).pack()[:7]),
    ("SELECT no validation samples", M.SELECT, P.RangeRequest(0, 0).pack()),
    ("SELECT unwritten sample", M.SELECT, P.RangeRequest(20, 7).pack()),
    ("SELECT bad label", M.SELECT, P.RangeRequest(20, 5).pack()),
    ("SELECT short", M.SELECT, P.RangeRequest(0, 8).pack()[:5]),
    ("BACKBONE_INIT short", M.BACKBONE_INIT, bytes(27)),
    ("BACKBONE_INIT bad scale", M.BACKBONE_INIT, b""),  # see _payload
    ("BACKBONE_INIT bad blob size", M.BACKBONE_INIT, b""),  # see _payload
    ("BACKBONE_WRITE without init", M.BACKBONE_WRITE, P.BackboneWrite(0, b"\x01\x02").pack()),
    ("BACKBONE_WRITE short", M.BACKBONE_WRITE, b"\x00\x00"),
    ("FEATURES without backbone", M.FEATURES, P.RangeRequest(0, 1).pack()),
    ("BACKBONE_INFO with payload", M.BACKBONE_INFO, b"\x00"),
    ("STATS with payload", M.STATS, b"\x00"),
    ("DEBUG short", M.DEBUG, b""),
    ("unknown type", 0x5A, b"\x00" * 8),
]


def _backbone_init(**change: Any) -> bytes:
    """A valid one-layer (2x2 FC -> 3) BACKBONE_INIT, with `change` applied."""
    layer = P.BackboneLayerRecord(op=P.BackboneOp.FC, out_shape=(1, 1, 3))
    fields: dict[str, Any] = dict(in_shape=(2, 2, 1), out_scale=0.5, out_zero_point=0,
                                  blob_size=15, blob_crc32=0, layers=(layer,))
    fields.update(change)
    return P.BackboneInit(**fields).pack()


def _payload(name: str, payload: bytes, info: P.HelloInfo) -> bytes:
    if name == "MODEL_INIT no space":
        w = info.max_width
        layers = min(info.max_layers, info.param_capacity // (w * w + w) + 1)
        if layers * (w * w + w) <= info.param_capacity:
            pytest.fail(f"{info.board}: max_layers x max_width fits param_capacity; no "
                        "MODEL_INIT can be NO_SPACE")
        return P.ModelInit((w,) * (layers + 1)).pack()
    if name == "BACKBONE_INIT bad scale":
        return _backbone_init(out_scale=0.0)
    if name == "BACKBONE_INIT bad blob size":
        return _backbone_init(blob_size=1)  # the layer's parameters need more than 1 B
    return payload


def _nak(dev: Device, mtype: int, payload: bytes) -> DeviceNak:
    with pytest.raises(DeviceNak) as exc:
        dev.link.request(mtype, payload)
    assert exc.value.request_type == mtype
    return exc.value


@pytest.fixture(scope="module")
def reference(native_fw: Path) -> Callable[[str], list[Any]]:
    """The probe of a process that never saw a refused request, once per scenario."""
    cache: dict[str, list[Any]] = {}

    def get(strategy: str) -> list[Any]:
        if strategy not in cache:
            fw = start(native_fw)
            try:
                trained_state(fw.dev, strategy)
                cache[strategy] = probe(fw.dev, strategy)
            finally:
                fw.close()
        return cache[strategy]

    return get


@pytest.fixture
def fw(native_fw: Path) -> Iterator[Fw]:
    inst = start(native_fw)
    yield inst
    inst.close()


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a for d in _diff(a[k], b.get(k), f"{where}{k}; ")]
    if isinstance(a, list) and isinstance(b, list):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _diff(x, y, f"{where}probe[{i}] ")]
    return [] if a == b else [where.strip("; ")]


def _bb_init(**change: Any) -> bytes:
    """BACKBONE_INIT of small_backbone() with `change` applied."""
    bb = small_backbone()
    blob = bb.blob()
    recs = tuple(P.BackboneLayerRecord(int(la.op), la.kernel, la.stride, la.padding,
                                       la.dilation, la.out_shape, la.input_offset,
                                       la.output_offset, la.act_min, la.act_max)
                 for la in bb.layers)
    fields: dict[str, Any] = dict(in_shape=bb.input_shape, out_scale=bb.out_scale,
                                  out_zero_point=bb.out_zero_point, blob_size=len(blob),
                                  blob_crc32=zlib.crc32(blob), layers=recs)
    fields.update(change)
    return P.BackboneInit(**fields).pack()


_BLOB = len(small_backbone().blob())
# With a backbone loaded: a refused request must keep it (layers, blob, features).
REFUSED_WITH_BACKBONE: list[tuple[str, int, bytes]] = [
    ("BACKBONE_INIT blob size (loaded)", M.BACKBONE_INIT, _bb_init(blob_size=_BLOB + 4)),
    ("BACKBONE_INIT zero point (loaded)", M.BACKBONE_INIT, _bb_init(out_zero_point=128)),
    ("BACKBONE_INIT cut (loaded)", M.BACKBONE_INIT, _bb_init()[:-1]),
    ("BACKBONE_WRITE past the blob", M.BACKBONE_WRITE,
     P.BackboneWrite(_BLOB - 2, b"\x7f" * 4).pack()),
    ("FEATURES past n_samples", M.FEATURES, P.RangeRequest(N_SAMPLES - 1, 2).pack()),
    ("FEATURES unwritten sample", M.FEATURES, P.RangeRequest(20, 7).pack()),
    ("FEATURES too many", M.FEATURES, P.RangeRequest(0, 0xFFFF).pack()),
]
_NEED_NO_BACKBONE = {"BACKBONE_WRITE without init", "FEATURES without backbone"}

# SELECT validates its range only for the mask strategies (elsewhere it is a no-op).
CASES = [(strategy, *case) for strategy in STATE_STRATEGIES for case in REFUSED
         if case[1] != M.SELECT or strategies.get(strategy).uses_select]
CASES += [(BACKBONE, *case) for case in REFUSED + REFUSED_WITH_BACKBONE
          if case[1] != M.SELECT and case[0] not in _NEED_NO_BACKBONE]


@pytest.mark.parametrize("strategy,name,mtype,payload", CASES,
                         ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_refused_request_changes_nothing(fw: Fw, reference: Callable[[str], list[Any]],
                                         strategy: str, name: str, mtype: int,
                                         payload: bytes) -> None:
    """`strategy`: the scenario (a strategy's name, or BACKBONE)."""
    dev = fw.dev
    trained_state(dev, strategy)
    payload = _payload(name, payload, dev.info)
    before = read_back(dev)
    _nak(dev, mtype, payload)
    changed = _diff(before, read_back(dev))
    assert not changed, f"{name} was NAKed but changed: {changed}"
    changed = _diff(reference(strategy), probe(dev, strategy))
    assert not changed, f"{name} was NAKed but the device then behaves differently: {changed}"


def test_probe_sees_a_configuration_change(native_fw: Path,
                                           reference: Callable[[str], list[Any]]) -> None:
    """The probe is sensitive to what TRAIN_CONFIG sets: an accepted request with the
    refused cases' lr / momentum changes it (so those cases can fail)."""
    for cfg in ((0.5, 0.9), (0.1, 0.2)):
        fw = start(native_fw)
        try:
            trained_state(fw.dev, "tinypropv2")
            fw.dev.train_config(*cfg, "tinypropv2")
            assert _diff(reference("tinypropv2"), probe(fw.dev, "tinypropv2")), cfg
        finally:
            fw.close()
