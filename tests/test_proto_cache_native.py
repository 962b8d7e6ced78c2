"""The duplicate cache's two exceptions (docs/protocol.md, "Duplicates"), on the firmware
compiled for the host: a NAKed request is not cached and drops the cache (a retransmission
of the request before it is executed again), and RESET is never answered from the cache.
Both were surviving mutants of benchmarks/mutation.py."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig import protocol as P
from rig.link.frame import FrameDecoder, Packet, encode_frame
from rig.link.transport import PipeTransport

M = P.MsgType


@pytest.fixture(scope="module")
def native_fw(native_build: Callable[[str], Path]) -> Path:
    return native_build("native") / "tinyrig_fw"


class Raw:
    """Frames written by hand (fixed seq numbers), the first packet read back."""

    def __init__(self, exe: Path) -> None:
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.transport = PipeTransport(self.proc, "native:tinyrig_fw")

    def send(self, ptype: int, seq: int, payload: bytes = b"") -> Packet:
        self.transport.write(b"\x00" + encode_frame(Packet(ptype, seq, payload)))
        dec = FrameDecoder()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            for item in dec.feed(self.transport.read(4096, deadline - time.monotonic())):
                if isinstance(item, Packet):
                    return item
        raise AssertionError(f"no answer to {P.type_name(ptype)} seq {seq}")

    def close(self) -> None:
        self.transport.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


@pytest.fixture
def raw(native_fw: Path) -> Iterator[Raw]:
    r = Raw(native_fw)
    yield r
    r.close()


def test_a_nak_drops_the_cache(raw: Raw) -> None:
    first = raw.send(M.ECHO, 500, b"once")
    again = raw.send(M.ECHO, 500, b"once")
    assert not first.dup and again.dup  # the cache works
    assert raw.send(M.PARAM_READ, 501, b"\x00" * 3).type == M.NAK
    after_nak = raw.send(M.ECHO, 500, b"once")
    assert after_nak.type == M.ECHO | 0x80 and not after_nak.dup, after_nak.describe()


def test_reset_is_never_answered_from_the_cache(raw: Raw) -> None:
    assert raw.send(M.MODEL_INIT, 600, P.ModelInit((4, 3)).pack()).type == M.MODEL_INIT | 0x80
    first = raw.send(M.RESET, 601)
    again = raw.send(M.RESET, 601)
    assert first.type == again.type == M.RESET | 0x80
    assert not again.dup, "RESET answered from the duplicate cache"
    # RESET forgot the model: reading it is BAD_STATE
    nak = raw.send(M.PARAM_READ, 602, P.TensorRead(0, 0, 1, 0).pack())
    assert nak.type == M.NAK and P.Nak.unpack(nak.payload).reason == P.NakReason.BAD_STATE
