"""A peer that sends its last frame and then closes the socket (QEMU exiting after a
fault): the frame's bytes reach the link before the disconnect does."""

from __future__ import annotations

import socket
import threading

import pytest

from rig import protocol as P
from rig.errors import DeviceFault, LinkError
from rig.link.frame import Packet, encode_frame
from rig.link.link import Link
from rig.link.transport import SerialTransport

FAULT = P.FaultInfo(5, 1, 2, 3, 4, 5, 0x101, 0x200, 0x01000000, 1 << 9, 0, 0, 0x70000000)


def _serve_once(payload: bytes) -> tuple[str, threading.Thread]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        conn.recv(1024)  # the request
        conn.sendall(payload)
        conn.close()
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return f"socket://127.0.0.1:{srv.getsockname()[1]}", t


def test_bytes_before_eof_are_delivered_then_the_disconnect() -> None:
    data = b"*** BusFault ***\r\n\x00" + encode_frame(Packet(P.MsgType.FAULT, 0, FAULT.pack()))
    url, t = _serve_once(data)
    tr = SerialTransport(url)
    tr.write(b"\x00hi\x00")
    t.join(5)
    got = b""
    with pytest.raises(LinkError, match="disconnected|failed"):
        for _ in range(100):
            got += tr.read(4096, 1.0)
    assert got == data
    tr.close()


def test_fault_frame_sent_just_before_exit_is_a_device_fault() -> None:
    frame = encode_frame(Packet(P.MsgType.FAULT, 0, FAULT.pack()))
    url, t = _serve_once(frame)
    link = Link(SerialTransport(url), timeout=2.0, first_seq=1)
    t.join(5)
    with pytest.raises(DeviceFault, match="BusFault"):
        link.request(P.MsgType.ECHO, b"x")
    link.close()


class WriteFailsAfterFault:
    """The device sent a FAULT frame and died: reads still return its last bytes, writes
    fail (what a closed socket or pipe does to the next request)."""

    name = "dying"

    def __init__(self) -> None:
        self.out = b"\x00" + encode_frame(Packet(P.MsgType.FAULT, 0, FAULT.pack()))
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.writes > 1:
            raise LinkError("write to dying failed: [Errno 104] Connection reset by peer")

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self.writes < 2:
            return b""
        out, self.out = self.out[:max_bytes], self.out[max_bytes:]
        if not out:
            raise LinkError("read from dying failed: socket disconnected")
        return out

    def close(self) -> None:
        pass


def test_a_failed_write_reports_the_fault_frame_that_arrived_before_it() -> None:
    link = Link(WriteFailsAfterFault(), timeout=0.05, retries=0, first_seq=1)
    with pytest.raises(LinkError):  # the first request: no answer (the device is dying)
        link.request(P.MsgType.ECHO, b"a")
    with pytest.raises(DeviceFault, match="BusFault"):
        link.request(P.MsgType.ECHO, b"b")
