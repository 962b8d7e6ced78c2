"""Stop-and-wait request/response over a `Transport` (docs/protocol.md §2).

One request is outstanding at a time. The link numbers requests, retransmits on timeout
or on a NAK that says the bytes got damaged, ignores stale responses, turns semantic NAKs
into `DeviceNak` and FAULT frames into `DeviceFault`, and counts what it did.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from rig.errors import DeviceFault, DeviceNak, LinkError, LinkTimeout
from rig.link.frame import FrameDecoder, FrameError, Packet, encode_frame
from rig.link.transport import Transport
from rig.protocol import (
    MAX_LEN_FIELD,
    FaultInfo,
    HelloInfo,
    MsgType,
    Nak,
    NakReason,
    PayloadError,
    reason_name,
    response_type,
    type_name,
)

_LAST_BYTES = 256
_READ_CHUNK = 4096


@dataclass(frozen=True)
class TrafficEvent:
    """One line of the traffic log. `direction`: tx, rx, noise, error, info."""

    time: float
    direction: str
    data: bytes = b""
    packet: Packet | None = None
    note: str = ""

    def format(self) -> str:
        ms = int(self.time % 1 * 1000)
        stamp = time.strftime("%H:%M:%S", time.localtime(self.time)) + f".{ms:03d}"
        what = self.packet.describe() if self.packet is not None else ""
        if self.direction == "noise":
            what = repr(self.data.decode("ascii", errors="replace"))
        head = f"{stamp} {self.direction:<5} {what}".rstrip()
        extra = f" [{len(self.data)} B]" if self.data and self.direction != "noise" else ""
        note = f" ({self.note})" if self.note else ""
        return head + extra + note


def stream_logger(stream: IO[str]) -> Callable[[TrafficEvent], None]:
    """A `log=` callback that writes one line per event (e.g. to a per-DUT log file)."""

    def log(event: TrafficEvent) -> None:
        stream.write(event.format() + "\n")
        stream.flush()

    return log


@dataclass
class LinkStats:
    requests: int = 0
    frames_tx: int = 0
    frames_rx: int = 0
    bytes_tx: int = 0
    bytes_rx: int = 0
    payload_tx: int = 0  # payload bytes of requests, retransmissions included
    payload_rx: int = 0  # payload bytes of accepted responses
    retransmits: int = 0
    timeouts: int = 0
    stale: int = 0
    dups: int = 0
    seq_collisions: int = 0
    decode_errors: int = 0
    noise_bytes: int = 0
    naks: Counter[str] = field(default_factory=Counter)
    #: request payload bytes by message type name (retransmissions included), e.g. how
    #: much DATA_WRITE a session sent
    payload_tx_by_type: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int | dict[str, int]]:
        d: dict[str, int | dict[str, int]] = {
            k: v for k, v in vars(self).items() if not isinstance(v, Counter)}
        d["naks"] = dict(self.naks)
        d["payload_tx_by_type"] = dict(self.payload_tx_by_type)
        return d

    def summary(self) -> str:
        naks = ", ".join(f"{k}={v}" for k, v in sorted(self.naks.items())) or "none"
        return (f"{self.requests} requests, frames tx/rx {self.frames_tx}/{self.frames_rx},"
                f" bytes tx/rx {self.bytes_tx}/{self.bytes_rx}, {self.retransmits}"
                f" retransmits, {self.timeouts} timeouts, {self.stale} stale,"
                f" {self.decode_errors} decode errors, NAKs: {naks}")


class _Retry(Exception):
    """Internal: the current attempt failed in a way that calls for a retransmission."""


class Link:
    """Request/response client of one device.

    `timeout` is the default per-attempt wait for a response in seconds; `retries` the
    number of retransmissions after the first attempt. `log` receives a `TrafficEvent`
    for every frame, error and noise chunk.
    """

    def __init__(self, transport: Transport, timeout: float = 1.0, retries: int = 3,
                 log: Callable[[TrafficEvent], None] | None = None,
                 first_seq: int | None = None) -> None:
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.log = log
        self.stats = LinkStats()
        self.hello: HelloInfo | None = None
        self.decoder = FrameDecoder()
        # A random start makes a collision with a previous session's cached seq unlikely;
        # `request` also detects one (a DUP answer to a first attempt).
        self._seq = random.randrange(0x10000) if first_seq is None else first_seq & 0xFFFF
        self._last = bytearray()

    # -- public ---------------------------------------------------------------------------

    @property
    def max_payload(self) -> int:
        """What the device accepts per packet; unknown (u16 max) until a HELLO."""
        return self.hello.max_payload if self.hello else MAX_LEN_FIELD

    @property
    def last_bytes(self) -> bytes:
        return bytes(self._last)

    def request(self, type: int, payload: bytes = b"", timeout: float | None = None,
                expect_response: bool = True, retries: int | None = None) -> Packet | None:
        """Send one request and return its response packet (None if `expect_response` is
        False). Raises DeviceNak, DeviceFault, LinkTimeout or LinkError."""
        payload = bytes(payload)
        if len(payload) > self.max_payload:
            raise LinkError(f"{type_name(type)}: payload of {len(payload)} bytes exceeds the"
                            f" device's max_payload {self.max_payload}")
        wait = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        self.stats.requests += 1
        seq = self._next_seq()
        frame = encode_frame(Packet(type=type, seq=seq, payload=payload))
        attempts = 0
        last_problem = "no response"
        while True:
            attempts += 1
            self._send(frame, type, seq, payload)
            if not expect_response:
                return None
            try:
                response = self._await(type, seq, time.monotonic() + wait)
            except _Retry as why:
                last_problem = str(why)
                if attempts > retries:
                    raise LinkTimeout(
                        f"{self.transport.name}: no valid response to {type_name(type)}"
                        f" seq={seq} after {attempts} attempts of {wait:.3g} s ({last_problem})"
                        + self._noise_hint(), self.last_bytes) from None
                self.stats.retransmits += 1
                self._event("info", note=f"retransmit {type_name(type)} seq={seq}:"
                            f" {last_problem}")
                continue
            if response.dup and attempts == 1:
                # The device answered from its cache although this seq went out only once:
                # its cached seq is from an earlier session. Run the request under a new seq.
                self.stats.seq_collisions += 1
                self._event("info", packet=response, note="DUP on first attempt: seq"
                            " collision with an earlier session, resending with a new seq")
                seq = self._next_seq()
                frame = encode_frame(Packet(type=type, seq=seq, payload=payload))
                attempts = 0
                continue
            return response

    def poll(self, timeout: float = 0.0) -> None:
        """Read whatever arrives within `timeout` s outside a request. Raises DeviceFault
        when the device reported a fault; logs and drops everything else."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            chunk = self._read(max(remaining, 0.0))
            if chunk:
                for item in self._ingest(chunk):
                    if isinstance(item, Packet):
                        self._check_fault(item)
                        self.stats.stale += 1
            if remaining <= 0 and not chunk:
                return

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _send(self, frame: bytes, type: int, seq: int, payload: bytes) -> None:
        # A leading 0x00 ends whatever partial frame the device may hold (line noise, a
        # truncated earlier frame), so a good frame is never glued to garbage. The device
        # ignores the empty frame this makes; it costs one byte per request.
        data = b"\x00" + frame
        self.transport.write(data)
        self.stats.frames_tx += 1
        self.stats.bytes_tx += len(data)
        self.stats.payload_tx += len(payload)
        self.stats.payload_tx_by_type[type_name(type)] += len(payload)
        self._event("tx", data=data, packet=Packet(type=type, seq=seq, payload=payload))

    def _read(self, timeout: float) -> bytes:
        try:
            return self.transport.read(_READ_CHUNK, timeout)
        except LinkError as exc:
            raise LinkError(f"{exc}{self._noise_hint()}; last bytes:"
                            f" {self.last_bytes[-64:].hex(' ') or 'none'}") from exc

    def _ingest(self, chunk: bytes) -> list[Packet | FrameError]:
        self.stats.bytes_rx += len(chunk)
        self._last += chunk
        del self._last[:-_LAST_BYTES]
        entries_before = self.decoder.noise_entries
        items = self.decoder.feed(chunk)
        new = min(self.decoder.noise_entries - entries_before, len(self.decoder.noise))
        for entry in list(self.decoder.noise)[len(self.decoder.noise) - new:]:
            self.stats.noise_bytes += len(entry.data)
            self._event("noise", data=entry.data)
        for item in items:
            if isinstance(item, FrameError):
                if not item.looks_like_text:  # text is logged as noise above
                    self.stats.decode_errors += 1
                    self._event("error", data=item.raw, note=item.describe())
            else:
                self.stats.frames_rx += 1
                self._event("rx", packet=item)
        return items

    def _await(self, type: int, seq: int, deadline: float) -> Packet:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stats.timeouts += 1
                raise _Retry("timeout")
            chunk = self._read(remaining)
            if not chunk:
                continue
            for item in self._ingest(chunk):
                if isinstance(item, FrameError):
                    if item.reason == NakReason.BAD_HEADER and "version" in item.detail:
                        raise LinkError(f"{self.transport.name}: device speaks another"
                                        f" protocol: {item.detail}")
                    continue  # damaged frame: the timeout (or the device) will recover
                result = self._classify(item, type, seq)
                if result is not None:
                    return result

    def _classify(self, packet: Packet, type: int, seq: int) -> Packet | None:
        self._check_fault(packet)
        if packet.type == MsgType.NAK:
            nak = self._unpack_nak(packet)
            self.stats.naks[nak.reason_name] += 1
            # The device addresses a NAK with the type and seq it could read (0 if none).
            # One that does not match is about other bytes (line noise ended by our leading
            # 0x00, an old request): ignore it, our timeout still covers a damaged request.
            if packet.seq != seq or nak.request_type != type:
                self.stats.stale += 1
                self._event("info", packet=packet, note=f"NAK {nak.reason_name} not for"
                            f" seq={seq}: ignored")
                return None
            if nak.is_transport:
                raise _Retry(f"NAK {nak.reason_name}: {nak.text}")
            raise DeviceNak(nak.reason, nak.reason_name, nak.request_type, nak.detail,
                            nak.text)
        if packet.seq != seq:
            self.stats.stale += 1
            self._event("info", packet=packet, note=f"stale (waiting for seq={seq})")
            return None
        if packet.type != response_type(type):
            raise LinkError(f"{self.transport.name}: {type_name(type)} seq={seq} answered"
                            f" with {type_name(packet.type)}")
        if packet.dup:
            self.stats.dups += 1
        self.stats.payload_rx += len(packet.payload)
        if type == MsgType.HELLO:
            self.hello = HelloInfo.unpack(packet.payload)
        return packet

    def _unpack_nak(self, packet: Packet) -> Nak:
        try:
            return Nak.unpack(packet.payload)
        except PayloadError:
            return Nak(0, 0, 0, f"malformed NAK payload {packet.payload.hex()}")

    def _check_fault(self, packet: Packet) -> None:
        if packet.type != MsgType.FAULT:
            return
        try:
            info = FaultInfo.unpack(packet.payload)
        except PayloadError as exc:
            raise DeviceFault(f"{self.transport.name}: device fault with a malformed FAULT"
                              f" frame ({exc}){self._noise_hint()}") from None
        err = DeviceFault(f"{self.transport.name}: device fault: {info.summary()}"
                          f"{self._noise_hint()}", info.registers())
        err.info = info  # type: ignore[attr-defined]
        raise err

    def _noise_hint(self) -> str:
        text = self.decoder.noise_text(200).strip(". \n")
        return f"; device said: {text!r}" if text else ""

    def _event(self, direction: str, data: bytes = b"", packet: Packet | None = None,
               note: str = "") -> None:
        if self.log is not None:
            self.log(TrafficEvent(time.time(), direction, data, packet, note))


__all__ = ["Link", "LinkStats", "TrafficEvent", "stream_logger", "reason_name"]
