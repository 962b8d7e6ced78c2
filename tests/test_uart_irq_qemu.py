"""Link RX by interrupt on the emulated boards (firmware/README.md, "Link RX by
interrupt"): requests sent back to back, without waiting for answers, all arrive intact
— on the 16 KB microbit through its 32-slot ring, which fills, pauses reception (the RX
interrupt masks itself; QEMU holds the bytes) and resumes — and the device reports no
lost byte in STATS."""

from __future__ import annotations

import time

import pytest

from rig.config import load_config
from rig.connection import connect
from rig.link.frame import FrameDecoder, Packet, encode_frame
from rig.protocol import MsgType
from rig.targets import build_target

pytestmark = pytest.mark.hil


def _payload(i: int, size: int) -> bytes:
    return bytes((i * 7 + j * 13) & 0xFF for j in range(size))


@pytest.mark.parametrize("name", ["qemu", "qemu-netduino", "qemu-microbit"])
def test_pipelined_requests_survive_the_rx_ring(name: str) -> None:
    conn = connect(build_target(load_config(), name))
    try:
        transport = conn.device.link.transport
        n, size = 6, min(conn.hello.max_payload, 1000)
        transport.write(b"".join(encode_frame(Packet(MsgType.ECHO, 0x7000 + i,
                                                     _payload(i, size)))
                                 for i in range(n)))
        decoder, got = FrameDecoder(), []
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            got += decoder.feed(transport.read(4096, 0.5))
        assert len(got) == n, f"{len(got)} of {n} responses: {got}"
        for i, p in enumerate(got):
            assert isinstance(p, Packet) and p.type == MsgType.ECHO | 0x80, p
            assert p.seq == 0x7000 + i and p.payload == _payload(i, size)
        stats = conn.device.stats()
        assert stats.rx_overruns == 0
        if name == "qemu-microbit":  # 2 KB of requests into a 32-slot ring: it must fill
            assert stats.rx_ring_full > 0
    finally:
        conn.close()
