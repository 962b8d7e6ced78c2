"""Link and Device against an in-process fake device that follows docs/protocol.md and can
lose, damage, delay and pad its traffic on demand."""

from __future__ import annotations

import io
import struct
import time
from collections import Counter

import numpy as np
import pytest

from rig import protocol as P
from rig.device import Device, Timing
from rig.errors import DeviceFault, DeviceNak, LinkError, LinkTimeout
from rig.link import cobs
from rig.link.frame import FrameDecoder, FrameError, Packet, encode_frame
from rig.link.link import Link, TrafficEvent, stream_logger

M = P.MsgType


class FakeDevice:
    """Enough of the firmware to exercise the host: dup cache, NAKs, chunked tensors."""

    def __init__(self, max_payload: int = 256) -> None:
        self.max_payload = max_payload
        self.decoder = FrameDecoder(max_payload=max_payload)
        self.out = bytearray()
        self.executed: Counter[int] = Counter()
        self.last_seq: int | None = None
        self.last_response = b""
        self.drop_responses = 0      # execute, but lose the next n responses
        self.damage_requests = 0     # flip a bit in the next n request frames
        self.damage_at = 5           # ... at this offset of the written bytes
        self.silent = False
        self.noise = b""             # sent (once) before the next response
        self.stale_seq: int | None = None  # send a response with this seq first
        self.reset_state()

    def reset_state(self) -> None:
        self.dims: tuple[int, ...] = ()
        self.params: dict[tuple[int, int], np.ndarray] = {}
        self.records = b""
        self.data: P.DataConfig | None = None

    # wire side
    def receive(self, data: bytes) -> None:
        if self.damage_requests and len(data) > 6:
            self.damage_requests -= 1
            i = self.damage_at % len(data)
            data = data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:]
        for item in self.decoder.feed(data):
            if isinstance(item, FrameError):
                t, seq = _best_effort_address(item.raw)
                self._send(Packet(M.NAK, seq, P.Nak(item.reason, t, 0, item.detail).pack()))
            else:
                self._handle(item)

    def _send(self, packet: Packet, frame: bytes | None = None) -> None:
        frame = frame or encode_frame(packet)
        if self.silent:
            return
        if self.drop_responses:
            self.drop_responses -= 1
            return
        if self.stale_seq is not None:
            self.out += encode_frame(Packet(packet.type, self.stale_seq, b"old"))
            self.stale_seq = None
        self.out += self.noise + frame
        self.noise = b""

    def _handle(self, req: Packet) -> None:
        if req.seq == self.last_seq:
            p = Packet(req.type | 0x80, req.seq, self.last_response, flags=P.FLAG_DUP)
            self._send(p)
            return
        try:
            payload = self._execute(req)
        except _Nak as nak:
            self._send(Packet(M.NAK, req.seq, P.Nak(nak.reason, req.type, nak.detail,
                                                    nak.text).pack()))
            return
        if payload is None:
            return
        self.executed[req.type] += 1
        self.last_seq, self.last_response = req.seq, payload
        if req.type == M.RESET:
            self.last_seq = None
        self._send(Packet(req.type | 0x80, req.seq, payload))

    def _execute(self, req: Packet) -> bytes | None:
        t, p = req.type, req.payload
        if t == M.HELLO:
            return P.HelloInfo(1, 0, self.max_payload, 1000, 4096, 8192, 4, 64, 16, 0x7F,
                               "fake", "00" * 32, "test").pack()
        if t == M.ECHO:
            return p
        if t == M.RESET:
            self.reset_state()
            return b""
        if t == M.MODEL_INIT:
            dims = P.ModelInit.unpack(p).dims
            self.dims = dims
            self.params = {}
            for i in range(len(dims) - 1):
                self.params[(i, 0)] = np.zeros(dims[i] * dims[i + 1], np.float32)
                self.params[(i, 1)] = np.zeros(dims[i + 1], np.float32)
            return struct.pack("<I", sum(v.size for v in self.params.values()))
        if t == M.PARAM_WRITE:
            w = P.ParamWrite.unpack(p)
            tensor = self._tensor(w.layer, w.which)
            if w.offset + w.values.size > tensor.size:
                raise _Nak(P.NakReason.BAD_ARG, 4, "offset+count beyond tensor")
            tensor[w.offset:w.offset + w.values.size] = w.values
            return b""
        if t in (M.PARAM_READ, M.UPDATE_READ):
            r = P.TensorRead.unpack(p)
            tensor = self._tensor(r.layer, r.which)
            if r.offset + r.count > tensor.size or 4 * r.count > self.max_payload:
                raise _Nak(P.NakReason.BAD_ARG, 2, "count")
            vals = tensor[r.offset:r.offset + r.count]
            return (vals if t == M.PARAM_READ else vals * 0 + 0.5).astype("<f4").tobytes()
        if t == M.DATA_CONFIG:
            self.data = P.DataConfig.unpack(p)
            return b""
        if t == M.DATA_WRITE:
            assert self.data is not None
            w = P.DataWrite.unpack(p)
            size = self.data.record_size
            if len(w.records) != w.count * size or len(self.records) != w.start * size:
                raise _Nak(P.NakReason.BAD_LENGTH, 0, "records")
            self.records += w.records
            return b""
        if t == M.EVAL:
            r = P.RangeRequest.unpack(p)
            pred = np.arange(r.start, r.start + r.count, dtype=np.int64) % 7
            return P.EvalResult(float(r.count), r.count // 2, r.count,
                                pred.astype(np.uint8)).pack()
        if t == M.TRAIN_STEP:
            idx = P.TrainStep.unpack(p).indices
            return P.StepResult(2.3, len(idx) // 3, False, (4, 3), (10, 20, 0, 5)).pack()
        if t == M.TRAIN_CONFIG:
            cfg = P.TrainConfig.unpack(p)
            if cfg.strategy > 6:
                raise _Nak(P.NakReason.BAD_ARG, 8, "strategy")
            return b""
        if t == M.SELECT:
            return P.SelectResult((4, 3), 31).pack()
        if t == M.MASK_READ:
            return P.Mask(np.array([1, 0, 1], bool), np.ones(3, bool)).pack()
        if t == M.DEBUG:
            action = P.Debug.unpack(p).action
            if action == P.DebugAction.FAULT:
                info = P.FaultInfo(6, 0, 0, 0, 0, 0, 0x101, 0x200, 0x01000000, 1 << 19, 0, 0, 0)
                self.out += b"*** UsageFault ***\r\n" + encode_frame(
                    Packet(M.FAULT, 0, info.pack()))
                return None
            if action == P.DebugAction.HANG:
                self.silent = True
                return None
        raise _Nak(P.NakReason.UNKNOWN_TYPE, 0, "unknown type")

    def _tensor(self, layer: int, which: int) -> np.ndarray:
        if (layer, which) not in self.params:
            raise _Nak(P.NakReason.BAD_ARG, 0, "layer")
        return self.params[(layer, which)]


def _best_effort_address(raw: bytes) -> tuple[int, int]:
    """Like the firmware: type and seq from a damaged frame's header if readable."""
    try:
        body = cobs.decode(raw)
    except cobs.DecodeError:
        return 0, 0
    return (body[1], struct.unpack_from("<H", body, 2)[0]) if len(body) >= 4 else (0, 0)


class _Nak(Exception):
    def __init__(self, reason: int, detail: int, text: str) -> None:
        super().__init__(text)
        self.reason, self.detail, self.text = reason, detail, text


class FakeTransport:
    name = "fake"

    def __init__(self, dev: FakeDevice, chunk: int = 7) -> None:
        self.dev = dev
        self.chunk = chunk  # deliver in small pieces to exercise reassembly
        self.closed = False

    def write(self, data: bytes) -> None:
        self.dev.receive(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if not self.dev.out:
            time.sleep(min(timeout, 0.002))
            return b""
        n = min(max_bytes, self.chunk)
        data = bytes(self.dev.out[:n])
        del self.dev.out[:n]
        return data

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def dev() -> FakeDevice:
    return FakeDevice()


@pytest.fixture
def link(dev: FakeDevice) -> Link:
    return Link(FakeTransport(dev), timeout=0.05, retries=3, first_seq=100)


def test_echo_and_stats(link: Link, dev: FakeDevice) -> None:
    r = link.request(M.ECHO, b"abc\x00def")
    assert r is not None and r.payload == b"abc\x00def" and r.seq == 101
    s = link.stats
    assert (s.requests, s.frames_tx, s.frames_rx, s.retransmits) == (1, 1, 1, 0)
    assert s.bytes_tx > 7 and s.bytes_rx > 7 and s.payload_tx == 7 == s.payload_rx
    assert "1 requests" in s.summary() and s.as_dict()["naks"] == {}


def test_seq_wraps(dev: FakeDevice) -> None:
    link = Link(FakeTransport(dev), timeout=0.05, first_seq=0xFFFE)
    assert [link.request(M.ECHO, b"x").seq for _ in range(3)] == [0xFFFF, 0, 1]  # type: ignore


def test_lost_response_is_retransmitted_and_not_reexecuted(link: Link, dev: FakeDevice) -> None:
    dev.drop_responses = 1
    r = link.request(M.TRAIN_STEP, P.TrainStep(np.arange(3)).pack())
    assert r is not None and r.dup
    assert dev.executed[M.TRAIN_STEP] == 1
    assert link.stats.retransmits == 1 and link.stats.timeouts == 1 and link.stats.dups == 1


def test_damaged_request_is_naked_and_retransmitted(link: Link, dev: FakeDevice) -> None:
    dev.damage_requests = 2
    r = link.request(M.ECHO, b"payload")
    assert r is not None and r.payload == b"payload" and not r.dup
    assert link.stats.retransmits == 2
    assert link.stats.naks["BAD_CRC"] + link.stats.naks["BAD_COBS"] == 2


def test_damaged_payload_is_retransmitted_without_waiting(dev: FakeDevice) -> None:
    link = Link(FakeTransport(dev), timeout=5.0, first_seq=1)
    dev.damage_requests, dev.damage_at = 1, -4  # a CRC byte: the header stays readable
    t0 = time.monotonic()
    assert link.request(M.ECHO, b"abcdefgh") is not None
    assert time.monotonic() - t0 < 1.0 and link.stats.naks["BAD_CRC"] == 1
    assert link.stats.timeouts == 0 and link.stats.retransmits == 1


def test_stale_response_is_ignored(link: Link, dev: FakeDevice) -> None:
    dev.stale_seq = 7
    r = link.request(M.ECHO, b"new")
    assert r is not None and r.payload == b"new" and link.stats.stale == 1


def test_semantic_nak_raises(link: Link, dev: FakeDevice) -> None:
    with pytest.raises(DeviceNak) as exc:
        link.request(0x55, b"")
    assert exc.value.reason_name == "UNKNOWN_TYPE" and exc.value.request_type == 0x55
    assert link.stats.retransmits == 0


def test_timeout_quotes_last_bytes(link: Link, dev: FakeDevice) -> None:
    dev.noise = b"assert failed: mlp.c:42\r\n\x00"
    link.request(M.ECHO, b"1")
    dev.silent = True
    dev.out += b"watchdog?"
    with pytest.raises(LinkTimeout) as exc:
        link.request(M.ECHO, b"2")
    assert exc.value.last_bytes.endswith(b"watchdog?")
    assert "4 attempts" in str(exc.value) and "mlp.c:42" in str(exc.value)
    assert link.stats.retransmits == 3 and link.stats.timeouts == 4


def test_fault_frame_raises_device_fault(dev: FakeDevice) -> None:
    d = Device(Link(FakeTransport(dev), timeout=0.05), Timing(base=0.05))
    with pytest.raises(DeviceFault) as exc:
        d.debug_fault()
    assert exc.value.registers["exception"] == 6 and exc.value.registers["cfsr"] == 1 << 19
    assert "UsageFault" in str(exc.value) and "NOCP" in str(exc.value)
    assert "*** UsageFault ***" in str(exc.value)  # the text in front of the frame


def test_fault_between_requests_is_seen_by_poll(link: Link, dev: FakeDevice) -> None:
    dev.out += encode_frame(Packet(M.FAULT, 0, bytes(52)))
    with pytest.raises(DeviceFault):
        link.poll(0.05)


def test_seq_collision_with_earlier_session(dev: FakeDevice) -> None:
    dev.last_seq, dev.last_response = 101, b"stale answer"
    link = Link(FakeTransport(dev), timeout=0.05, first_seq=100)
    r = link.request(M.ECHO, b"fresh")
    assert r is not None and r.payload == b"fresh" and r.seq == 102
    assert link.stats.seq_collisions == 1


def test_max_payload_learned_from_hello(link: Link) -> None:
    assert link.max_payload == 0xFFFF
    link.request(M.HELLO)
    assert link.max_payload == 256 and link.hello is not None and link.hello.board == "fake"
    with pytest.raises(LinkError, match="max_payload"):
        link.request(M.ECHO, bytes(257))


def test_traffic_log(dev: FakeDevice) -> None:
    events: list[TrafficEvent] = []
    dev.noise = b"boot v1\r\n"
    link = Link(FakeTransport(dev), timeout=0.05, log=events.append, first_seq=1)
    link.request(M.ECHO, b"hi")
    kinds = [e.direction for e in events]
    assert kinds[0] == "tx" and "rx" in kinds and "noise" in kinds
    assert all(e.time > 1e9 for e in events)
    buf = io.StringIO()
    for e in events:
        stream_logger(buf)(e)
    text = buf.getvalue()
    assert "tx    ECHO seq=2 len=2" in text and "ECHO+resp seq=2" in text and "boot v1" in text


def test_frames_are_preceded_by_a_delimiter(dev: FakeDevice) -> None:
    events: list[TrafficEvent] = []
    link = Link(FakeTransport(dev), timeout=0.05, log=events.append)
    dev.receive(b"line noise without end")
    link.request(M.ECHO, b"a")
    link.request(M.ECHO, b"b")
    tx = [e.data for e in events if e.direction == "tx"]
    assert tx[0][0] == 0 and tx[1][0] == 0 and link.stats.retransmits == 0


# -- Device over the fake ---------------------------------------------------------------------

@pytest.fixture
def device(dev: FakeDevice) -> Device:
    dev.max_payload = 64  # force chunking
    return Device(Link(FakeTransport(dev, chunk=64), timeout=0.05), Timing(base=0.2))


def test_model_round_trip_chunked(device: Device, dev: FakeDevice) -> None:
    rng = np.random.default_rng(0)
    weights = [(rng.standard_normal((7, 5)).astype(np.float32),
                rng.standard_normal(7).astype(np.float32)),
               (rng.standard_normal((3, 7)).astype(np.float32),
                rng.standard_normal(3).astype(np.float32))]
    assert device.load_model(weights) == 7 * 5 + 7 + 3 * 7 + 3
    assert dev.executed[M.PARAM_WRITE] >= 3  # 35 floats do not fit one 64-byte payload
    back = device.read_model()
    for (w, b), (w2, b2) in zip(weights, back, strict=True):
        assert w2.shape == w.shape and np.array_equal(w, w2) and np.array_equal(b, b2)
    assert np.all(device.read_update(0, "bias") == 0.5)


def test_param_write_out_of_range_is_refused_host_side(device: Device) -> None:
    device.model_init([4, 2])
    with pytest.raises(ValueError):
        device.write_params(0, "w", np.zeros(9))
    with pytest.raises(DeviceNak):
        device.link.request(M.PARAM_WRITE, P.ParamWrite(0, 0, 7, np.zeros(2)).pack())


def test_samples_chunked(device: Device, dev: FakeDevice) -> None:
    device.data_config(5, "u8", 0.5, 3.0, 20)
    feats = np.arange(100).reshape(20, 5).astype(np.uint8)
    device.write_samples(0, np.arange(20) % 3, feats)
    assert dev.executed[M.DATA_WRITE] == 3  # 6-byte records, 9 per 64-byte payload
    lab, back = P.decode_records(dev.records, 5, "u8")
    assert np.array_equal(back, feats) and np.array_equal(lab, np.arange(20) % 3)


def test_evaluate_chunked(device: Device) -> None:
    res = device.evaluate(10, 150)
    assert res.count == 150 and res.pred.size == 150
    assert res.pred.tolist() == [(10 + i) % 7 for i in range(150)]
    assert res.loss_sum == 150.0 and res.correct == 28 + 28 + 19  # 56-sample chunks


def test_train_and_select(device: Device) -> None:
    device.model_init([4, 4, 3])
    device.train_config(0.1, 0.9, "tinyprop", (0.1, 0.9, 0.5))
    step = device.train_step([0, 1, 2])
    assert step.k == (4, 3) and step.correct == 1 and step.phase_counters["backward"] == 20
    assert device.select(0, 8).trainable_params == 31
    assert device.read_mask(0).k == 2
    with pytest.raises(DeviceNak):
        device.train_config(0.1, strategy=9)


def test_echo_and_reset(device: Device) -> None:
    assert device.echo(b"\x00\x01") == b"\x00\x01"
    with pytest.raises(ValueError):
        device.echo(bytes(65))
    device.model_init([2, 2])
    device.reset()
    assert device.dims is None


def test_hang_then_timeout(device: Device) -> None:
    device.hello()
    device.debug_hang()
    with pytest.raises(LinkTimeout):
        device.echo(b"x", timeout=0.02)


def test_timing_scales_with_work() -> None:
    t = Timing()
    assert t.budget() == t.base
    assert t.budget(tx_bytes=int(t.byte_rate)) == pytest.approx(t.base + 1.0)
    assert t.budget(macs=1_000_000) > t.budget(macs=1000)
