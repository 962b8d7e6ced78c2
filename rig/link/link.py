"""Stop-and-wait request/response over a `Transport` (docs/protocol.md §2).

One request is outstanding at a time. The link numbers requests, retransmits on timeout
or on a NAK that says the bytes got damaged, ignores stale responses, turns semantic NAKs
into `DeviceNak` and FAULT frames into `DeviceFault`, and counts what it did.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from rig.errors import DeviceFault, DeviceNak, LinkError, LinkTimeout
from rig.link.errors import DeviceRebooted, FrameTooBig
from rig.link.frame import FrameDecoder, FrameError, Packet, encode_frame
from rig.link.policy import FrameSizer, LinkPolicy
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
    fast_retransmits: int = 0  # resent because the bytes showed damage, not after a timeout
    flushes: int = 0  # half-received frames decoded after an idle gap (lost 0x00)
    probes: int = 0  # lone 0x00 sent after silence (the request's 0x00 may be lost)
    resplits: int = 0  # bulk requests handed back to be split smaller (FrameTooBig)
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
                f" retransmits ({self.fast_retransmits} fast), {self.timeouts} timeouts,"
                f" {self.stale} stale,"
                f" {self.decode_errors} decode errors, NAKs: {naks}")


class _Retry(Exception):
    """Internal: the current attempt failed in a way that calls for a retransmission.
    `fast`: the bytes showed the damage (no timeout was waited out)."""

    def __init__(self, why: str, fast: bool) -> None:
        super().__init__(why)
        self.fast = fast


#: bytes of a preloaded frame held back until `request(preloaded=...)`: more than the
#: CRC, so a 0x00 that ends the partial frame early (a retransmission's leading 0x00, a
#: probe) leaves a packet shorter than its len field, which the device NAKs, never runs
_PRELOAD_HOLD = 8


@dataclass
class Preload:
    """A request sent ahead but for its last `_PRELOAD_HOLD` frame bytes (`Link.preload`).
    `intact`: nothing else went out since, so the device still holds the partial frame."""

    type: int
    seq: int
    payload: bytes
    frame: bytes
    intact: bool = True


#: the firmware's boot line (firmware/src/app.c app_boot_banner): "tinyrig VER BOARD proto N"
_BANNER = re.compile(rb"tinyrig \S+ \S+ proto \d+")


class Link:
    """Request/response client of one device.

    `timeout` is the default per-attempt wait for a response in seconds; `retries` the
    number of retransmissions after the first attempt (default: `policy.retries`).
    `policy` holds the rest of the recovery settings (`rig.link.policy.LinkPolicy`). `log`
    receives a `TrafficEvent` for every frame, error and noise chunk.

    Recovery does not wait for the timeout when the bytes tell what happened: a damaged
    frame or a transport NAK makes the link resend at once (the device's duplicate cache
    answers a request it already executed without running it again); a half-received
    frame that stops is decoded as it is (its 0x00 may be lost); a request that gets no
    byte back is followed by a lone 0x00 (its own 0x00 may be lost). Bulk transfers ask
    `payload_budget` for their chunk size, which `FrameSizer` adapts to the error rate.
    """

    def __init__(self, transport: Transport, timeout: float = 1.0, retries: int | None = None,
                 log: Callable[[TrafficEvent], None] | None = None,
                 first_seq: int | None = None, policy: LinkPolicy | None = None) -> None:
        self.transport = transport
        self.timeout = timeout
        self.policy = policy or LinkPolicy()
        self.retries = self.policy.retries if retries is None else retries
        self.log = log
        self.stats = LinkStats()
        self.hello: HelloInfo | None = None
        self.decoder = FrameDecoder()
        self.sizer = FrameSizer(MAX_LEN_FIELD, self.policy.min_frame,
                                self.policy.adaptive_frames)
        # A random start makes a collision with a previous session's cached seq unlikely;
        # `request` also detects one (a DUP answer to a first attempt).
        self._seq = random.randrange(0x10000) if first_seq is None else first_seq & 0xFFFF
        self._last = bytearray()
        self._noise_mark = 0  # decoder.noise_entries at the last good response
        self._latency: dict[int, float] = {}  # recent response time per request type
        self._reboot: str | None = None  # boot banner seen after HELLO
        self._preload: Preload | None = None  # sent ahead, not yet completed

    def preload(self, type: int, payload: bytes = b"") -> Preload:
        """Send all of a request's frame except its last bytes, while the device is busy
        with an earlier request: the device buffers them (its RX interrupt keeps
        receiving) but cannot run a frame whose end has not arrived. `request(...,
        preloaded=)` later sends the rest (or, if anything else was written meanwhile and
        ended the partial frame, the whole frame again) and awaits the response as usual.
        Only for targets whose link back-pressures (QEMU), where held bytes cannot overrun
        the device's RX buffer."""
        payload = bytes(payload)
        if len(payload) > self.max_payload:
            raise LinkError(f"{type_name(type)}: payload of {len(payload)} bytes exceeds the"
                            f" device's max_payload {self.max_payload}")
        seq = self._next_seq()
        frame = encode_frame(Packet(type=type, seq=seq, payload=payload))
        head = b"\x00" + frame[:-_PRELOAD_HOLD]
        self._write(head)
        self.stats.bytes_tx += len(head)
        self._preload = Preload(type, seq, payload, frame)
        self._event("info", note=f"preloaded {type_name(type)} seq={seq}: {len(head)} B ahead")
        return self._preload

    # -- public ---------------------------------------------------------------------------

    @property
    def max_payload(self) -> int:
        """What the device accepts per packet; unknown (u16 max) until a HELLO."""
        return self.hello.max_payload if self.hello else MAX_LEN_FIELD

    @property
    def payload_budget(self) -> int:
        """Payload bytes a bulk transfer should put in its next packet (request or
        response): `max_payload` on a clean link, less while errors are frequent."""
        return min(self.max_payload, self.sizer.current)

    @property
    def last_bytes(self) -> bytes:
        return bytes(self._last)

    def request(self, type: int, payload: bytes = b"", timeout: float | None = None,
                expect_response: bool = True, retries: int | None = None,
                bulk: int = 0, preloaded: Preload | None = None,
                after_send: Callable[[], object] | None = None) -> Packet | None:
        """Send one request and return its response packet (None if `expect_response` is
        False). Raises DeviceNak, DeviceFault, DeviceRebooted, LinkTimeout or LinkError.

        `bulk`: this request is a piece of an idempotent bulk transfer, sized from
        `payload_budget`, that moves `bulk` payload bytes (in the request or the response).
        When an attempt fails and the budget has dropped below that, FrameTooBig tells
        the caller to split it smaller instead of resending it (budgets are powers of two,
        so each split at least halves the piece).

        `preloaded`: this request was sent ahead with `preload` (same type and payload);
        its first attempt only completes it. `after_send`: called once, right after the
        first attempt went out and before its response is awaited (to `preload` the next
        request while the device works on this one)."""
        payload = bytes(payload)
        if len(payload) > self.max_payload:
            raise LinkError(f"{type_name(type)}: payload of {len(payload)} bytes exceeds the"
                            f" device's max_payload {self.max_payload}")
        wait = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        self.stats.requests += 1
        if preloaded is not None:
            if (preloaded.type, preloaded.payload) != (type, payload):
                raise ValueError("preloaded request differs from the one requested")
            seq, frame = preloaded.seq, preloaded.frame
        else:
            seq = self._next_seq()
            frame = encode_frame(Packet(type=type, seq=seq, payload=payload))
        attempts = timeouts = 0
        problems: list[str] = []
        while True:
            attempts += 1
            rx_before = self.stats.bytes_rx
            if attempts == 1 and preloaded is not None and preloaded is self._preload \
                    and preloaded.intact:
                self._send(frame, type, seq, payload, skip=len(frame) - _PRELOAD_HOLD)
            else:
                self._send(frame, type, seq, payload)
            if preloaded is not None and preloaded is self._preload:
                self._preload = None
            if attempts == 1 and after_send is not None:
                after_send()
            if not expect_response:
                return None
            sent = time.monotonic()
            try:
                response = self._await(type, seq, sent + wait, sent)
            except _Retry as why:
                self.sizer.observe(len(frame) + self.stats.bytes_rx - rx_before, True)
                problems.append(str(why))
                if bulk and self.payload_budget < bulk:
                    self.stats.resplits += 1
                    raise FrameTooBig(f"{type_name(type)} seq={seq}: {bulk} B of payload"
                                      f" over the budget {self.payload_budget} B"
                                      f" ({why})", self.payload_budget) from None
                timeouts += 0 if why.fast else 1
                if attempts > retries or timeouts > self.policy.timeout_retries:
                    raise LinkTimeout(
                        f"{self.transport.name}: no valid response to {type_name(type)}"
                        f" seq={seq} after {attempts} attempts of up to {wait:.3g} s"
                        f" ({_tally(problems)})" + self._noise_hint(), self.last_bytes
                    ) from None
                self._spend_run_budget(type, seq, str(why))
                self.stats.retransmits += 1
                if why.fast:
                    self.stats.fast_retransmits += 1
                self._event("info", note=f"retransmit {type_name(type)} seq={seq}: {why}")
                continue
            self.sizer.observe(len(frame) + self.stats.bytes_rx - rx_before, False)
            if response.dup and attempts == 1:
                # The device answered from its cache although this seq went out only once:
                # its cached seq is from an earlier session. Run the request under a new seq.
                self.stats.seq_collisions += 1
                self._event("info", packet=response, note="DUP on first attempt: seq"
                            " collision with an earlier session, resending with a new seq")
                seq = self._next_seq()
                frame = encode_frame(Packet(type=type, seq=seq, payload=payload))
                attempts = timeouts = 0
                continue
            took = time.monotonic() - sent
            old = self._latency.get(type)
            self._latency[type] = took if old is None else 0.8 * old + 0.2 * took
            self._noise_mark = self.decoder.noise_entries
            return response

    def poll(self, timeout: float = 0.0) -> None:
        """Read whatever arrives within `timeout` s outside a request. Raises DeviceFault
        when the device reported a fault, DeviceRebooted when it printed its boot banner
        again; logs and drops everything else."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            chunk = self._read(max(remaining, 0.0))
            if chunk:
                for item in self._ingest(chunk):
                    if isinstance(item, Packet):
                        self._check_fault(item)
                        self.stats.stale += 1
                self._check_reboot("between requests")
            if remaining <= 0 and not chunk:
                return

    def reattach(self, transport: Transport) -> None:
        """Talk over `transport` from now on (a restarted target, rig.resume): decoding and
        the bytes seen start afresh, HELLO must be said again; counters and seq go on."""
        self.transport = transport
        self.hello = None
        self.decoder = FrameDecoder()
        self._preload = None
        self._last.clear()
        self._noise_mark = 0
        self._reboot = None

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

    def _spend_run_budget(self, type: int, seq: int, why: str) -> None:
        budget = self.policy.run_retries
        if budget is not None and self.stats.retransmits >= budget:
            raise LinkError(
                f"{self.transport.name}: retry budget of the run spent ({budget}"
                f" retransmissions over {self.stats.requests} requests; observed error rate"
                f" {self.sizer.error_rate:.2g} per byte); last: {type_name(type)} seq={seq}:"
                f" {why}" + self._noise_hint())

    def _send(self, frame: bytes, type: int, seq: int, payload: bytes, skip: int = 0) -> None:
        # A leading 0x00 ends whatever partial frame the device may hold (line noise, a
        # truncated earlier frame), so a good frame is never glued to garbage. The device
        # ignores the empty frame this makes; it costs one byte per request. `skip`: the
        # device already holds that much of the frame (a preload): send only the rest.
        data = frame[skip:] if skip else b"\x00" + frame
        self._write(data, completes_preload=bool(skip))
        self.stats.frames_tx += 1
        self.stats.bytes_tx += len(data)
        self.stats.payload_tx += len(payload)
        self.stats.payload_tx_by_type[type_name(type)] += len(payload)
        self._event("tx", data=data, packet=Packet(type=type, seq=seq, payload=payload))

    def _write(self, data: bytes, completes_preload: bool = False) -> None:
        """Write; when the wire is gone, first read what the device sent before it went
        (a FAULT frame, a boot banner): that, not the broken pipe, is the news."""
        if self._preload is not None and not completes_preload:
            self._preload.intact = False  # these bytes end (spoil) the partial frame
        try:
            self.transport.write(data)
        except LinkError as exc:
            deadline = time.monotonic() + 0.5
            try:
                while time.monotonic() < deadline:
                    chunk = self.transport.read(_READ_CHUNK, 0.05)
                    if not chunk:
                        break
                    for item in self._ingest(chunk):
                        if isinstance(item, Packet):
                            self._check_fault(item)
            except LinkError:
                pass  # the read side is gone too: nothing more to learn
            self._check_reboot("before the link broke")
            raise LinkError(f"{exc}{self._noise_hint()}; last bytes:"
                            f" {self.last_bytes[-64:].hex(' ') or 'none'}") from exc

    def _read(self, timeout: float) -> bytes:
        try:
            return self.transport.read(_READ_CHUNK, timeout)
        except LinkError as exc:
            raise LinkError(f"{exc}{self._noise_hint()}; last bytes:"
                            f" {self.last_bytes[-64:].hex(' ') or 'none'}") from exc

    def _ingest(self, chunk: bytes, flush: bool = False) -> list[Packet | FrameError]:
        if chunk:
            self.stats.bytes_rx += len(chunk)
            self._last += chunk
            del self._last[:-_LAST_BYTES]
        entries_before = self.decoder.noise_entries
        items = self.decoder.flush() if flush else self.decoder.feed(chunk)
        new = min(self.decoder.noise_entries - entries_before, len(self.decoder.noise))
        for entry in list(self.decoder.noise)[len(self.decoder.noise) - new:]:
            self.stats.noise_bytes += len(entry.data)
            self._event("noise", data=entry.data)
            banner = _BANNER.search(entry.data)
            if banner and self.hello is not None and self._reboot is None:
                self._reboot = banner.group().decode("ascii", errors="replace")
        for item in items:
            if isinstance(item, FrameError):
                if not item.looks_like_text:  # text is logged as noise above
                    self.stats.decode_errors += 1
                    self._event("error", data=item.raw, note=item.describe())
            else:
                self.stats.frames_rx += 1
                self._event("rx", packet=item)
        return items

    def _check_reboot(self, during: str) -> None:
        if self._reboot is None:
            return
        banner, self._reboot = self._reboot, None
        raise DeviceRebooted(
            f"{self.transport.name}: the device rebooted (boot banner {banner!r} arrived"
            f" {during}, after {self.stats.requests} requests): its model, data and"
            f" optimiser state are gone", banner=banner, last_bytes=self.last_bytes)

    def _probe_delay(self, type: int) -> float:
        return max(self.policy.probe_after, 4 * self._latency.get(type, 0.0))

    def _await(self, type: int, seq: int, deadline: float, sent: float) -> Packet:
        """Wait for the response to (type, seq). Raises _Retry(fast=True) as soon as the
        bytes show damage, _Retry(fast=False) at the deadline."""
        gap, settle = self.policy.idle_gap, self.policy.settle
        probe_at: float | None = sent + self._probe_delay(type)
        last_rx = sent
        damage = ""  # seen, but our response may still be on its way behind it
        during = f"while waiting for {type_name(type)} seq={seq}"
        while True:
            now = time.monotonic()
            if now >= deadline:
                self.stats.timeouts += 1
                raise _Retry("timeout", fast=False)
            wake = deadline
            if damage:
                wake = min(wake, last_rx + settle)
            if self.decoder.pending:
                wake = min(wake, last_rx + gap)
            elif probe_at is not None:
                wake = min(wake, probe_at)
            chunk = self._read(max(wake - now, 0.0))
            now = time.monotonic()
            if chunk:
                last_rx = now
                probe_at = None  # the device is talking: its frames will tell
                result, seen = self._scan_checked(chunk, type, seq, during)
                if result is not None:
                    return result
                damage = damage or seen
                continue
            if self.decoder.pending and now - last_rx >= gap:
                # A frame stopped half-way: its 0x00 was lost (or it is cut short). Decode
                # what is there; a damaged remainder means a resend.
                self.stats.flushes += 1
                result, seen = self._scan_checked(b"", type, seq, during, flush=True)
                if result is not None:
                    return result
                damage = damage or seen
            if damage and not self.decoder.pending and now - last_rx >= settle:
                raise _Retry(damage, fast=True)
            if probe_at is not None and now >= probe_at and not self.decoder.pending:
                # Silence: the request's own 0x00 may be lost. A lone 0x00 completes it;
                # the device ignores it otherwise (an empty frame).
                self._write(b"\x00")
                self.stats.probes += 1
                self.stats.bytes_tx += 1
                probe_at = now + 2 * (now - sent)

    def _scan_checked(self, chunk: bytes, type: int, seq: int, during: str,
                      flush: bool = False) -> tuple[Packet | None, str]:
        """`_scan` of what `chunk` (or a flush) decodes, then DeviceRebooted if those bytes
        held a boot banner — also ahead of a DeviceNak among them: a rebooted device NAKs
        the request BAD_STATE, and the reboot, not the NAK, is the news."""
        try:
            found = self._scan(self._ingest(chunk, flush=flush), type, seq)
        except DeviceNak:
            self._check_reboot(during)
            raise
        self._check_reboot(during)
        return found

    def _scan(self, items: list[Packet | FrameError], type: int, seq: int
              ) -> tuple[Packet | None, str]:
        """Our response among `items` (or None), and what damage they showed ("" if none).
        Raises _Retry(fast) for a transport NAK addressed to our request."""
        damage = ""
        for item in items:
            if isinstance(item, FrameError):
                if item.reason == NakReason.BAD_HEADER and "version" in item.detail:
                    raise LinkError(f"{self.transport.name}: device speaks another"
                                    f" protocol: {item.detail}")
                if not item.looks_like_text:
                    damage = damage or f"damaged frame ({item.describe()})"
                continue
            result = self._classify(item, type, seq)
            if isinstance(result, str):
                damage = damage or result
            elif result is not None:
                return result, ""
        return None, damage

    def _classify(self, packet: Packet, type: int, seq: int) -> Packet | str | None:
        """Our response, a description of damage it shows (str), or None (not ours)."""
        self._check_fault(packet)
        if packet.type == MsgType.NAK:
            nak = self._unpack_nak(packet)
            self.stats.naks[nak.reason_name] += 1
            addressed = packet.seq == seq and nak.request_type == type
            if addressed and not nak.is_transport:
                raise DeviceNak(nak.reason, nak.reason_name, nak.request_type, nak.detail,
                                nak.text)
            if addressed:
                raise _Retry(f"NAK {nak.reason_name}: {nak.text}", fast=True)
            # A transport NAK with another address is most likely our request with its
            # header damaged (or a late one for an earlier attempt): either way a resend
            # costs little (the duplicate cache makes it safe), a wrong guess a timeout.
            if nak.is_transport:
                return (f"NAK {nak.reason_name} for a damaged header"
                        f" (seq={packet.seq}, type=0x{nak.request_type:02x})")
            self.stats.stale += 1
            self._event("info", packet=packet, note=f"NAK {nak.reason_name} not for"
                        f" seq={seq}: ignored")
            return None
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
            # Bounds from here on: no frame longer than the device's limit is searched.
            self.decoder.max_payload = self.hello.max_payload
            self.sizer.set_max(self.hello.max_payload)
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
        """What the device printed since the last good response (older text, such as the
        boot banner of the start of the run, would mislead)."""
        text = self.decoder.noise_text(200, since=self._noise_mark).strip(". \n")
        return f"; device said: {text!r}" if text else ""

    def _event(self, direction: str, data: bytes = b"", packet: Packet | None = None,
               note: str = "") -> None:
        if self.log is not None:
            self.log(TrafficEvent(time.time(), direction, data, packet, note))


def _tally(problems: list[str]) -> str:
    counts = Counter(p.split(":")[0] for p in problems)
    return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in counts.items()) + \
        f"; last: {problems[-1]}"


__all__ = ["DeviceRebooted", "Link", "LinkStats", "TrafficEvent", "stream_logger",
           "reason_name"]
