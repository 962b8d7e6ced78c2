"""The host client against the firmware compiled for the host (`make -C firmware native`).

The firmware speaks the protocol on stdin/stdout; PipeTransport wraps the process. These
tests pin the wire contract from the firmware side: HELLO, ECHO, exact parameter round
trips, NAK reasons for malformed frames (and that a NAK changes nothing), duplicate
suppression, a sane training step, timeouts and faults.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import subprocess
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rig import protocol as P
from rig.device import Device, Timing
from rig.errors import DeviceFault, DeviceNak, LinkError, LinkTimeout
from rig.link import cobs
from rig.link.frame import FrameDecoder, Packet, encode_frame, encode_packet
from rig.link.link import Link, TrafficEvent
from rig.link.transport import PipeTransport

M = P.MsgType
R = P.NakReason
FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"


@pytest.fixture(scope="session")
def native_fw(native_build: Callable[[str], Path]) -> Path:
    return native_build("native") / "tinyrig_fw"


class NativeFw:
    """One firmware process with its Link and Device; stderr (boot/log text) in a file."""

    def __init__(self, exe: Path, tmp: Path) -> None:
        self.stderr_path = tmp / "fw-stderr.txt"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr)
        self.transport = PipeTransport(self.proc, f"native:{exe.name}")
        self.events: list[TrafficEvent] = []
        self.link = Link(self.transport, timeout=2.0, retries=2, log=self.events.append)
        self.dev = Device(self.link, Timing(base=2.0))

    def exchange_raw(self, data: bytes, timeout: float = 2.0) -> Packet:
        """Write raw bytes (bypassing the link) and return the first packet that comes back."""
        self.transport.write(data)
        dec = FrameDecoder()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self.transport.read(4096, deadline - time.monotonic())
            for item in dec.feed(chunk):
                if isinstance(item, Packet):
                    return item
        raise AssertionError(f"no packet within {timeout} s after raw write of {data.hex()}")

    def close(self) -> str:
        self.transport.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self._stderr.close()
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def fw(native_fw: Path, tmp_path: Path) -> Iterator[NativeFw]:
    inst = NativeFw(native_fw, tmp_path)
    yield inst
    inst.close()


def nak_of(packet: Packet) -> P.Nak:
    assert packet.type == M.NAK, f"expected a NAK, got {packet.describe()}"
    return P.Nak.unpack(packet.payload)


def raw_frame(version: int, ptype: int, seq: int, payload: bytes, length: int | None = None
              ) -> bytes:
    body = struct.pack("<BBHHBB", version, ptype, seq, len(payload) if length is None
                       else length, 0, 0) + payload
    return b"\x00" + cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


def small_model(rng: np.random.Generator, dims: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(rng.standard_normal((dims[i + 1], dims[i])).astype(np.float32),
             rng.standard_normal(dims[i + 1]).astype(np.float32)) for i in range(len(dims) - 1)]


# --- identity and echo ------------------------------------------------------------------

def test_hello(fw: NativeFw) -> None:
    info = fw.dev.hello()
    assert info.proto_version == P.PROTO_VERSION
    assert info.max_payload >= 64
    assert info.counter_kind in (0, 1, 2)
    assert info.board and info.fw_version
    assert len(info.build_hash) in (0, 64) and all(c in "0123456789abcdef"
                                                   for c in info.build_hash)
    assert info.supports("full")
    assert info.max_layers >= 1 and info.max_width >= 1 and info.max_batch >= 1
    assert fw.link.max_payload == info.max_payload


def test_echo_random_payloads(fw: NativeFw) -> None:
    mp = fw.dev.max_payload
    rng = np.random.default_rng(7)
    sizes = sorted({0, 1, 2, 253, 254, 255, 256, mp - 1, mp} & set(range(mp + 1)))
    for n in sizes + list(rng.integers(0, mp + 1, 20)):
        data = rng.integers(0, 256, int(n), dtype=np.uint8)
        data[rng.random(int(n)) < 0.2] = 0  # plenty of zeros for COBS
        assert fw.dev.echo(data.tobytes()) == data.tobytes()
    assert fw.link.stats.retransmits == 0 and fw.link.stats.decode_errors == 0


def test_echo_too_big_is_refused_before_sending(fw: NativeFw) -> None:
    with pytest.raises(ValueError):
        fw.dev.echo(bytes(fw.dev.max_payload + 1))


# --- model -----------------------------------------------------------------------------

def test_model_round_trip_exact(fw: NativeFw) -> None:
    info = fw.dev.hello()
    width = min(info.max_width, 40)
    dims = [width, width, 10] if info.max_layers >= 2 else [width, 10]
    weights = small_model(np.random.default_rng(3), dims)
    weights[0][0][0, :3] = [-0.0, 1e-38, -3.4e38]  # signed zero, subnormal-ish, extreme
    n = fw.dev.load_model(weights)
    assert n == sum(w.size + b.size for w, b in weights)
    for (w, b), (w2, b2) in zip(weights, fw.dev.read_model(), strict=True):
        assert w2.tobytes() == w.tobytes() and b2.tobytes() == b.tobytes()


def test_model_init_zeroes(fw: NativeFw) -> None:
    fw.dev.load_model(small_model(np.random.default_rng(1), [4, 3]))
    fw.dev.model_init([4, 3])
    w, b = fw.dev.read_model()[0]
    assert not w.any() and not b.any()


# --- malformed frames ------------------------------------------------------------------

@pytest.fixture
def loaded(fw: NativeFw) -> list[tuple[np.ndarray, np.ndarray]]:
    weights = small_model(np.random.default_rng(5), [6, 5, 3])
    fw.dev.load_model(weights)
    return weights


def assert_params(fw: NativeFw, weights: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for (w, b), (w2, b2) in zip(weights, fw.dev.read_model(), strict=True):
        assert w2.tobytes() == w.tobytes() and b2.tobytes() == b.tobytes()


def test_transport_errors_are_naked(fw: NativeFw, loaded: list) -> None:
    write = P.ParamWrite(0, 0, 0, np.full(4, 9.0, np.float32)).pack()
    good = encode_packet(Packet(M.PARAM_WRITE, 4000, write))

    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF
    nak = nak_of(fw.exchange_raw(b"\x00" + cobs.encode(bytes(bad_crc)) + b"\x00"))
    assert nak.reason == R.BAD_CRC

    enc = bytearray(cobs.encode(good))
    enc[0] = min(enc[0] + 40, 0xFF)  # first block claims more bytes than it has
    while 0 in enc:
        enc.remove(0)
    nak = nak_of(fw.exchange_raw(b"\x00" + bytes(enc[:20]) + b"\x00"))
    assert nak.reason in (R.BAD_COBS, R.BAD_CRC, R.BAD_HEADER)
    assert nak_of(fw.exchange_raw(b"\x00\x09\x01\x02\x00")).reason == R.BAD_COBS

    mp = fw.dev.max_payload
    nak = nak_of(fw.exchange_raw(b"\x00" + encode_frame(Packet(M.ECHO, 4001, bytes(mp + 1)))))
    assert nak.reason == R.TOO_LONG

    nak = nak_of(fw.exchange_raw(raw_frame(2, M.PARAM_WRITE, 4002, write)))
    assert nak.reason == R.BAD_HEADER
    nak = nak_of(fw.exchange_raw(raw_frame(1, M.PARAM_WRITE, 4003, write, len(write) + 2)))
    assert nak.reason == R.BAD_HEADER
    body = b"\x01\x11\x00"
    nak = nak_of(fw.exchange_raw(b"\x00" + cobs.encode(body) + b"\x00"))
    assert nak.reason == R.BAD_HEADER
    assert_params(fw, loaded)


def test_semantic_naks_change_nothing(fw: NativeFw, loaded: list) -> None:
    link = fw.link

    def nak(type: int, payload: bytes) -> DeviceNak:
        with pytest.raises(DeviceNak) as exc:
            link.request(type, payload)
        assert exc.value.request_type == type
        return exc.value

    assert nak(0x5A, b"").reason == R.UNKNOWN_TYPE
    assert nak(M.PARAM_READ, b"\x00" * 7).reason == R.BAD_LENGTH
    # 5x6 = 30 weights: writing 4 values at offset 28 runs past the end
    err = nak(M.PARAM_WRITE, P.ParamWrite(0, 0, 28, np.ones(4, np.float32)).pack())
    assert err.reason == R.BAD_ARG and err.text
    assert nak(M.PARAM_WRITE, P.ParamWrite(2, 0, 0, np.ones(1)).pack()).reason == R.BAD_ARG
    assert nak(M.PARAM_WRITE, P.ParamWrite(0, 2, 0, np.ones(1)).pack()).reason == R.BAD_ARG
    assert nak(M.PARAM_READ, P.TensorRead(1, 1, 4, 0).pack()).reason == R.BAD_ARG
    assert nak(M.TRAIN_CONFIG, P.TrainConfig(0.1, 0.0, 0x7F).pack()).reason == R.BAD_ARG
    assert_params(fw, loaded)

    info = fw.dev.info
    too_wide = [info.max_width + 1, 2]
    assert nak(M.MODEL_INIT, P.ModelInit(tuple(too_wide)).pack()).reason in (R.BAD_ARG,
                                                                            R.NO_SPACE)
    assert_params(fw, loaded)
    w = info.max_width
    layers = info.param_capacity // (w * w + w) + 1
    if layers <= info.max_layers:
        assert nak(M.MODEL_INIT, P.ModelInit((w,) * (layers + 1)).pack()).reason == R.NO_SPACE
        assert_params(fw, loaded)


def test_train_before_model_is_bad_state(fw: NativeFw) -> None:
    fw.dev.reset()
    with pytest.raises(DeviceNak) as exc:
        fw.dev.train_step([0])
    assert exc.value.reason == R.BAD_STATE


# --- duplicates ------------------------------------------------------------------------

def setup_training(fw: NativeFw, dims: list[int], n: int, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    fw.dev.load_model(small_model(rng, dims))
    x = rng.standard_normal((n, dims[0])).astype(np.float32)
    y = rng.integers(0, dims[-1], n).astype(np.uint8)
    fw.dev.data_config(dims[0], "f32", n_samples=n)
    fw.dev.write_samples(0, y, x)
    fw.dev.train_config(0.05, 0.0, "full")
    return x, y


def test_duplicate_seq_is_not_reexecuted(fw: NativeFw) -> None:
    setup_training(fw, [6, 5, 3], 16)
    before = fw.dev.read_model()
    frame = b"\x00" + encode_frame(Packet(M.TRAIN_STEP, 777, P.TrainStep(np.arange(8)).pack()))
    first = fw.exchange_raw(frame)
    again = fw.exchange_raw(frame)
    assert first.type == M.TRAIN_STEP | 0x80 and not first.dup
    assert again.dup and again.seq == 777 and again.payload == first.payload
    update = [fw.dev.read_update(i, "w") for i in range(2)]
    after = fw.dev.read_model()
    for (w0, _), (w1, _), u in zip(before, after, update, strict=True):
        assert np.array_equal(w1, w0 - u) and np.any(u != 0)


def test_reused_seq_with_other_content_is_executed(fw: NativeFw) -> None:
    a = fw.exchange_raw(b"\x00" + encode_frame(Packet(M.ECHO, 9, b"first")))
    b = fw.exchange_raw(b"\x00" + encode_frame(Packet(M.ECHO, 9, b"second")))
    assert a.payload == b"first" and b.payload == b"second" and not b.dup


def test_link_recovers_from_garbage(fw: NativeFw) -> None:
    fw.dev.hello()
    fw.transport.write(b"\x13\x37garbage" * 5)
    assert fw.dev.echo(b"still here") == b"still here"


# --- training -----------------------------------------------------------------------------

def reference_step(weights: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, y: np.ndarray,
                   lr: float) -> tuple[float, int, list[tuple[np.ndarray, np.ndarray]]]:
    """One full-batch SGD step in float32 (docs/training.md), loosely: for sanity only."""
    acts = [x]
    for i, (w, b) in enumerate(weights):
        z = acts[-1] @ w.T + b
        acts.append(np.maximum(z, 0) if i < len(weights) - 1 else z)
    z = acts[-1].astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    p = np.exp(z - m) / np.exp(z - m).sum(axis=1, keepdims=True)
    loss = float(np.mean(-np.log(p[np.arange(len(y)), y])))
    correct = int(np.sum(np.argmax(z, axis=1) == y))
    delta = (p - np.eye(z.shape[1])[y]) / len(y)
    new = []
    for i in range(len(weights) - 1, -1, -1):
        w, b = weights[i]
        gw, gb = delta.T @ acts[i], delta.sum(axis=0)
        if i:
            delta = (delta @ w) * (acts[i] > 0)
        new.insert(0, ((w - lr * gw).astype(np.float32), (b - lr * gb).astype(np.float32)))
    return loss, correct, new


def test_train_step_sane(fw: NativeFw) -> None:
    dims = [6, 8, 3]
    x, y = setup_training(fw, dims, 32, seed=11)
    weights = fw.dev.read_model()
    idx = np.arange(0, 32, 2)
    loss_ref, correct_ref, new_ref = reference_step(weights, x[idx], y[idx], 0.05)
    res = fw.dev.train_step(idx)
    assert math.isfinite(res.loss) and res.loss == pytest.approx(loss_ref, rel=1e-4)
    assert res.correct == correct_ref and not res.skipped
    assert res.k == tuple(dims[1:])
    assert len(res.counters) == 4
    for (w, b), (wr, br) in zip(fw.dev.read_model(), new_ref, strict=True):
        np.testing.assert_allclose(w, wr, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b, br, rtol=1e-4, atol=1e-6)

    losses = [fw.dev.train_step(idx).loss for _ in range(30)]
    assert losses[-1] < losses[0]  # it learns the batch
    ev = fw.dev.evaluate(0, 32)
    assert ev.count == 32 and ev.pred.size == 32 and ev.pred.max() < dims[-1]
    assert 0 <= ev.correct <= 32 and math.isfinite(ev.loss_sum)
    mask = fw.dev.read_mask(1)
    assert mask.row_mask.size == dims[2] and mask.row_mask.all()


def test_zero_model_loss_is_log_classes(fw: NativeFw) -> None:
    _, y = setup_training(fw, [4, 5], 10)
    fw.dev.model_init([4, 5])
    res = fw.dev.train_step(np.arange(10))
    assert res.loss == pytest.approx(math.log(5), rel=1e-6)
    assert res.correct == int(np.sum(y == 0))  # all logits equal: first maximum is class 0


def test_evaluate_in_chunks_matches_one_request(fw: NativeFw) -> None:
    n = 40
    setup_training(fw, [3, 4], n)
    whole = fw.dev.evaluate(0, n)
    assert fw.link.hello is not None
    fw.link.hello = dataclasses.replace(fw.link.hello, max_payload=8 + 7)  # 7 per request
    parts = fw.dev.evaluate(0, n)
    assert np.array_equal(parts.pred, whole.pred) and parts.correct == whole.correct
    assert parts.loss_sum == pytest.approx(whole.loss_sum, rel=1e-5)


# --- timeouts and faults -------------------------------------------------------------------

def test_hang_gives_link_timeout_with_last_bytes(fw: NativeFw) -> None:
    fw.dev.hello()
    fw.dev.debug_hang()
    t0 = time.monotonic()
    with pytest.raises(LinkTimeout) as exc:
        fw.link.request(M.ECHO, b"anyone?", timeout=0.3, retries=1)
    assert 0.5 <= time.monotonic() - t0 < 3
    assert exc.value.last_bytes  # the HELLO response was the last thing seen
    assert "2 attempts" in str(exc.value)


def test_debug_fault_raises_device_fault(fw: NativeFw) -> None:
    fw.dev.hello()
    with pytest.raises((DeviceFault, LinkError)) as exc:
        fw.dev.debug_fault(timeout=3.0)
    assert isinstance(exc.value, DeviceFault), f"no FAULT frame: {exc.value}"
    regs = exc.value.registers
    assert set(regs) >= {"exception", "pc", "lr", "cfsr", "hfsr", "mmfar", "bfar", "xpsr"}
    assert regs["exception"] in (3, 4, 5, 6)
