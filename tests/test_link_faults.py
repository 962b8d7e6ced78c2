"""The fault-injecting transport (rig.link.faults): spec parsing, seeded faults, counts,
the silent-fault audit, and the link recovering from each kind of fault through it."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rig import protocol as P
from rig.device import Device
from rig.errors import ConfigError, DeviceNak, LinkError
from rig.link.errors import DeviceRebooted
from rig.link.faults import FaultSpec, FaultyTransport
from rig.link.frame import Packet, encode_frame
from rig.link.link import Link
from rig.link.policy import FrameSizer, LinkPolicy
from tests.test_link_link import FakeDevice, FakeTransport

M = P.MsgType


class Pipe:
    """A transport whose reads return what was written (loopback), in 5-byte pieces."""

    name = "pipe"

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data

    def read(self, max_bytes: int, timeout: float) -> bytes:
        n = min(max_bytes, 5, len(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def close(self) -> None:
        pass


# ---- spec --------------------------------------------------------------------------------

def test_spec_parses_every_key() -> None:
    s = FaultSpec.parse("flip=1e-4, drop=2e-4,dup=1e-5,delay=0.001,stall=0.05,seed=0x10,dir=rx")
    assert (s.flip, s.drop, s.dup, s.delay, s.stall, s.seed, s.dir) == (
        1e-4, 2e-4, 1e-5, 0.001, 0.05, 16, "rx")
    assert s.rate == pytest.approx(1e-4 + 2e-4 + 1e-5 + 0.001)
    assert FaultSpec.parse(s.describe()) == s
    assert FaultSpec.parse("") == FaultSpec()


@pytest.mark.parametrize("text, named", [
    ("flp=1e-4", "unknown key 'flp'"),
    ("flip=abc", "flip='abc': expected a number"),
    ("flip=2", "flip='2': a probability per byte is at most 1"),
    ("drop=-1e-3", "drop='-1e-3': must be a finite number >= 0"),
    ("dup=nan", "dup='nan'"),
    ("seed=1.5", "seed='1.5': expected an integer"),
    ("dir=up", "dir='up': expected both, tx or rx"),
    ("flip", "flip: expected flip=VALUE"),
    ("flip=1e-4,flip=1e-3", "flip: given twice"),
    ("flip=0.3,drop=0.3", "at most 0.5 per byte"),
    ("stall=60", "stall='60': at most 10 s"),
])
def test_bad_spec_is_a_config_error_naming_the_key(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        FaultSpec.parse(text)
    assert str(info.value).startswith("--inject-faults: ") and named in str(info.value)


# ---- injection ---------------------------------------------------------------------------

def _through(spec: FaultSpec, data: bytes, chunk: int = 997) -> tuple[bytes, FaultyTransport]:
    pipe = Pipe()
    t = FaultyTransport(pipe, spec)
    for i in range(0, len(data), chunk):
        t.write(data[i:i + chunk])
    return bytes(pipe.buf), t


def test_no_faults_is_transparent_both_ways() -> None:
    data = bytes(range(256)) * 40
    out, t = _through(FaultSpec(seed=3), data)
    assert out == data and t.counts.total == 0
    pipe = Pipe()
    pipe.buf += data
    rx = FaultyTransport(pipe, FaultSpec())
    got = b"".join(iter(lambda: rx.read(64, 0.0), b""))
    assert got == data and rx.counts.bytes["rx"] == len(data)


def test_seeded_faults_are_reproducible_and_counted() -> None:
    data = bytes(range(1, 256)) * 400  # 102,000 bytes
    spec = FaultSpec(flip=1e-3, drop=1e-3, dup=1e-3, seed=42, dir="tx")
    a, ta = _through(spec, data)
    b, tb = _through(spec, data, chunk=123)  # chunking does not change where faults land
    assert a == b and ta.counts.injected == tb.counts.injected
    c = ta.counts
    n_flip, n_drop, n_dup = (c.injected[f"tx.{k}"] for k in ("flip", "drop", "dup"))
    # ~102 of each expected; binomial, 5 sigma
    for n in (n_flip, n_drop, n_dup):
        assert 50 < n < 160
    assert len(a) == len(data) - n_drop + n_dup
    assert c.total == n_flip + n_drop + n_dup and c.injected["rx.flip"] == 0
    assert _through(FaultSpec(flip=1e-3, seed=43, dir="tx"), data)[0] != a


def test_flip_changes_exactly_one_bit() -> None:
    data = bytes(50_000)
    out, t = _through(FaultSpec(flip=1e-3, seed=1), data)
    assert len(out) == len(data)
    changed = [b for b in out if b]
    assert len(changed) == t.counts.injected["tx.flip"]
    assert all(bin(b).count("1") == 1 for b in changed)


def test_delay_holds_rx_bytes_back() -> None:
    pipe = Pipe()
    pipe.buf += bytes(range(200))
    t = FaultyTransport(pipe, FaultSpec(delay=0.05, stall=0.2, seed=5))
    t0 = time.monotonic()
    got = b""
    while len(got) < 200 and time.monotonic() - t0 < 5:
        got += t.read(256, 0.05)
    assert got == bytes(range(200))
    assert t.counts.injected["rx.delay"] >= 1 and time.monotonic() - t0 >= 0.2


def test_audit_counts_a_forged_valid_frame_as_silent() -> None:
    pipe = Pipe()
    t = FaultyTransport(pipe, FaultSpec(), audit=True)
    t.write(encode_frame(Packet(M.ECHO, 1, b"a")))
    assert t.counts.silent == 0 and t.counts.frames_sent["tx"] == 1
    # What a CRC collision would look like: a valid frame that was never sent arrives.
    t._audit["tx"].delivered(encode_frame(Packet(M.ECHO, 1, b"b")))  # type: ignore[index]
    assert t.counts.silent == 1


# ---- the link recovers through it -------------------------------------------------------

def _device(spec: FaultSpec, **policy: object) -> tuple[Device, FakeDevice, FaultyTransport]:
    fake = FakeDevice(max_payload=512)
    t = FaultyTransport(FakeTransport(fake), spec, audit=True)
    link = Link(t, timeout=2.0, first_seq=1, policy=LinkPolicy(**policy))  # type: ignore[arg-type]
    return Device(link), fake, t


@pytest.mark.parametrize("spec", ["flip=2e-3", "drop=2e-3", "dup=2e-3", "delay=2e-3,stall=0.01",
                                  "flip=1e-3,drop=1e-3,dup=1e-3"])
def test_link_recovers_from_each_fault_kind_without_timeouts(spec: str) -> None:
    dev, fake, t = _device(FaultSpec.parse(spec + ",seed=9"))
    rng = np.random.default_rng(0)
    dev.model_init([64, 32, 10])
    w = rng.standard_normal((32, 64)).astype(np.float32)
    t0 = time.monotonic()
    for _ in range(6):
        dev.write_params(0, "w", w)
        back = dev.read_params(0, "w")
        assert back.tobytes() == w.tobytes()
        assert dev.echo(b"\x00\x01ping\x00") == b"\x00\x01ping\x00"
    s, c = dev.link.stats, t.counts
    assert c.total > 0 and c.silent == 0
    # damage was seen and repaired from the bytes: the 2 s timeout never ran out; a short
    # stall damages nothing and costs no resend
    assert s.timeouts == 0
    assert s.retransmits > 0 if not spec.startswith("delay") else s.retransmits == 0
    assert time.monotonic() - t0 < 10


def test_lost_request_delimiter_is_recovered_by_a_probe() -> None:
    fake = FakeDevice()
    link = Link(FakeTransport(fake), timeout=5.0, first_seq=1,
                policy=LinkPolicy(probe_after=0.05))

    class DropLast(FakeTransport):
        def write(self, data: bytes) -> None:
            # the request's closing 0x00 is lost once; the probe's 0x00 completes it
            if data.endswith(b"\x00") and len(data) > 1 and not getattr(self, "done", False):
                self.done = True
                data = data[:-1]
            super().write(data)

    link.transport = DropLast(fake)
    t0 = time.monotonic()
    assert link.request(M.ECHO, b"abc") is not None
    assert time.monotonic() - t0 < 1.0
    assert link.stats.probes >= 1 and link.stats.timeouts == 0


def test_lost_response_delimiter_is_decoded_after_an_idle_gap() -> None:
    fake = FakeDevice()

    class CutDelimiter(FakeTransport):
        def read(self, max_bytes: int, timeout: float) -> bytes:
            if fake.out.endswith(b"\x00") and not getattr(self, "done", False):
                self.done = True
                del fake.out[-1:]
            return super().read(max_bytes, timeout)

    link = Link(CutDelimiter(fake), timeout=5.0, first_seq=1)
    t0 = time.monotonic()
    r = link.request(M.ECHO, b"xyz")
    assert r is not None and r.payload == b"xyz" and not r.dup
    assert time.monotonic() - t0 < 1.0 and link.stats.flushes == 1
    assert link.stats.retransmits == 0


def test_damaged_response_is_resent_at_once_and_answered_from_the_cache() -> None:
    fake = FakeDevice()

    class FlipResponse(FakeTransport):
        def read(self, max_bytes: int, timeout: float) -> bytes:
            if len(fake.out) > 8 and not getattr(self, "done", False):
                self.done = True
                fake.out[6] ^= 0x04
            return super().read(max_bytes, timeout)

    link = Link(FlipResponse(fake), timeout=5.0, first_seq=1)
    t0 = time.monotonic()
    r = link.request(M.TRAIN_STEP, P.TrainStep(np.arange(3)).pack())
    assert r is not None and r.dup  # the repeat was not executed again
    assert fake.executed[M.TRAIN_STEP] == 1
    assert time.monotonic() - t0 < 1.0
    assert link.stats.fast_retransmits == 1 and link.stats.timeouts == 0


def test_nak_for_an_unreadable_header_triggers_a_resend() -> None:
    fake = FakeDevice()
    fake.damage_requests, fake.damage_at = 1, 2  # the header: NAK addressed to nothing
    link = Link(FakeTransport(fake), timeout=5.0, first_seq=1)
    t0 = time.monotonic()
    assert link.request(M.ECHO, b"abcdefgh") is not None
    assert time.monotonic() - t0 < 1.0 and link.stats.retransmits == 1
    assert link.stats.timeouts == 0


def test_retry_budget_per_request_and_per_run() -> None:
    fake = FakeDevice()
    link = Link(FakeTransport(fake), timeout=0.02, first_seq=1,
                policy=LinkPolicy(retries=2, run_retries=5))
    fake.drop_responses = 3
    with pytest.raises(LinkError, match="after 3 attempts"):
        link.request(M.ECHO, b"a")
    assert link.stats.retransmits == 2
    fake.drop_responses = 2
    assert link.request(M.ECHO, b"b") is not None  # 4 retransmissions so far
    fake.drop_responses = 2
    with pytest.raises(LinkError, match="retry budget of the run spent"):
        link.request(M.ECHO, b"c")
    with pytest.raises(ConfigError, match="retries"):
        LinkPolicy(retries=-1)


def test_a_silent_device_is_given_up_on_after_timeout_retries() -> None:
    fake = FakeDevice()
    fake.silent = True
    link = Link(FakeTransport(fake), timeout=0.05, first_seq=1,
                policy=LinkPolicy(retries=10, timeout_retries=2, probe_after=0.01))
    with pytest.raises(LinkError, match="after 3 attempts"):
        link.request(M.ECHO, b"a")
    assert link.stats.timeouts == 3 and link.stats.probes >= 3


def test_frame_sizer_shrinks_under_errors_and_grows_back() -> None:
    s = FrameSizer(2048, min_frame=64)
    assert s.current == 2048
    for _ in range(20):
        s.observe(600, True)
        s.observe(600, False)
    small = s.current
    assert 64 <= small <= 512 and s.shrinks >= 1
    for _ in range(200):
        s.observe(2000, False)
    assert s.current == 2048 and s.grows >= 1
    assert FrameSizer(2048, enabled=False).current == 2048


def test_bulk_transfer_is_resplit_when_its_frames_keep_failing() -> None:
    dev, fake, t = _device(FaultSpec(flip=4e-3, seed=2, dir="tx"))
    dev.model_init([256, 64])
    w = np.arange(256 * 64, dtype=np.float32).reshape(64, 256)
    dev.write_params(0, "w", w)
    assert fake.params[(0, 0)].tobytes() == w.tobytes()
    assert dev.link.payload_budget < 512 and dev.link.sizer.shrinks >= 1
    assert dev.link.stats.timeouts == 0 and t.counts.silent == 0


def test_boot_banner_after_hello_is_a_device_reboot() -> None:
    fake = FakeDevice()
    link = Link(FakeTransport(fake), timeout=0.3, first_seq=1)
    link.request(M.HELLO)
    fake.noise = b"tinyrig 0.1.0 mps2-an386 proto 1\r\n\x00"
    with pytest.raises(DeviceRebooted) as info:
        link.request(M.ECHO, b"x")
    assert info.value.banner == "tinyrig 0.1.0 mps2-an386 proto 1"
    assert "rebooted" in str(info.value) and b"proto 1" in info.value.last_bytes


def test_boot_banner_with_a_nak_in_the_same_bytes_is_a_reboot_not_the_nak() -> None:
    """A device reset between requests boots, prints its banner and NAKs the next request
    (its model is gone: BAD_STATE on the firmware, BAD_ARG on this fake); when banner and
    NAK arrive in one read, the request raises DeviceRebooted, once: the next request gets
    its own NAK, not the same reboot again."""
    fake = FakeDevice()
    link = Link(FakeTransport(fake, chunk=4096), timeout=0.3, first_seq=1)  # one read
    link.request(M.HELLO)
    fake.noise = b"tinyrig 0.1.0 mps2-an386 proto 1\r\n\x00"
    with pytest.raises(DeviceRebooted):
        link.request(M.PARAM_READ, P.TensorRead(0, 0, 4, 0).pack())  # no model: a NAK
    with pytest.raises(DeviceNak):
        link.request(M.PARAM_READ, P.TensorRead(0, 0, 4, 0).pack())
    assert link.request(M.ECHO, b"x") is not None


def test_error_quotes_only_text_since_the_last_good_response() -> None:
    fake = FakeDevice()
    fake.noise = b"old boot chatter\r\n\x00"
    link = Link(FakeTransport(fake), timeout=0.05, retries=0, first_seq=1)
    link.request(M.ECHO, b"a")
    fake.silent = True
    with pytest.raises(LinkError) as info:
        link.request(M.ECHO, b"b")
    # `device said:` quotes text that arrived during this request only (the raw tail of
    # the last bytes is quoted separately, as bytes)
    assert "device said" not in str(info.value)
    fake.noise, fake.silent = b"", False
    link.request(M.ECHO, b"c")
    fake.out += b"new complaint\r\n\x00"
    fake.silent = True
    with pytest.raises(LinkError, match="device said: 'new complaint'"):
        link.request(M.ECHO, b"d")


def test_a_single_record_over_the_budget_is_resent_not_split() -> None:
    # 100-byte records: at the smallest budget (64 B) one record is still one request
    dev, fake, t = _device(FaultSpec(flip=8e-3, seed=4, dir="tx"), retries=40)
    dev.data_config(99, "u8", 1.0, 0.0, 40)
    feats = np.arange(40 * 99).reshape(40, 99) % 251
    dev.write_samples(0, np.arange(40) % 10, feats.astype(np.uint8))
    assert len(fake.records) == 40 * 100 and t.counts.silent == 0
    assert dev.link.payload_budget < 200
