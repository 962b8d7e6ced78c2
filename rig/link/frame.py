"""Packets and frames (docs/protocol.md §1).

`encode_frame` turns a `Packet` into COBS bytes + 0x00. `FrameDecoder` is fed arbitrary
chunks of received bytes and returns, per completed frame, a `Packet` or a `FrameError`.
Bytes that are not part of a valid frame (boot banners, fault text, line noise) go to a
bounded, timestamped noise log so errors can quote them.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from rig.link import cobs
from rig.protocol import (
    CRC_SIZE,
    FLAG_DUP,
    HEADER_SIZE,
    MAX_LEN_FIELD,
    PACKET_OVERHEAD,
    PROTO_VERSION,
    NakReason,
    type_name,
)

_HEADER = struct.Struct("<BBHHBB")


@dataclass(frozen=True)
class Packet:
    type: int
    seq: int
    payload: bytes = b""
    flags: int = 0
    version: int = PROTO_VERSION

    @property
    def dup(self) -> bool:
        return bool(self.flags & FLAG_DUP)

    def describe(self) -> str:
        dup = " DUP" if self.dup else ""
        return f"{type_name(self.type)} seq={self.seq} len={len(self.payload)}{dup}"


def encode_packet(packet: Packet) -> bytes:
    """header + payload + crc32, before COBS."""
    if len(packet.payload) > MAX_LEN_FIELD:
        raise ValueError(f"payload of {len(packet.payload)} bytes exceeds the u16 length field")
    body = _HEADER.pack(packet.version, packet.type, packet.seq & 0xFFFF, len(packet.payload),
                        packet.flags, 0) + bytes(packet.payload)
    return body + struct.pack("<I", zlib.crc32(body))


def encode_frame(packet: Packet) -> bytes:
    return cobs.encode(encode_packet(packet)) + b"\x00"


@dataclass(frozen=True)
class FrameError:
    """A delimited chunk of bytes that is not a valid packet."""

    reason: NakReason  # BAD_COBS, BAD_CRC, BAD_HEADER or TOO_LONG
    detail: str
    raw: bytes = field(repr=False)  # the encoded bytes (truncated if TOO_LONG)
    time: float = 0.0

    def describe(self) -> str:
        return f"{self.reason.name}: {self.detail}"

    @property
    def looks_like_text(self) -> bool:
        """Printable ASCII only: a log line between frames rather than a damaged frame."""
        return bool(self.raw) and all(32 <= b < 127 or b in (9, 10, 13) for b in self.raw)


class _Bad(Exception):
    def __init__(self, reason: NakReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode_packet(raw: bytes, max_payload: int = MAX_LEN_FIELD) -> Packet:
    """Check and split an un-COBSed packet; raises `_Bad`."""
    if len(raw) < PACKET_OVERHEAD:
        raise _Bad(NakReason.BAD_HEADER, f"packet of {len(raw)} bytes is shorter than"
                   f" header+crc ({PACKET_OVERHEAD})")
    body, (crc,) = raw[:-CRC_SIZE], struct.unpack("<I", raw[-CRC_SIZE:])
    if zlib.crc32(body) != crc:
        raise _Bad(NakReason.BAD_CRC, f"crc32 0x{zlib.crc32(body):08x} != 0x{crc:08x}")
    version, ptype, seq, length, flags, _ = _HEADER.unpack_from(body)
    if version != PROTO_VERSION:
        raise _Bad(NakReason.BAD_HEADER, f"protocol version {version}, host speaks"
                   f" {PROTO_VERSION}")
    if length != len(body) - HEADER_SIZE:
        raise _Bad(NakReason.BAD_HEADER, f"length field {length} but {len(body) - HEADER_SIZE}"
                   " payload bytes")
    if length > max_payload:
        raise _Bad(NakReason.TOO_LONG, f"payload {length} > {max_payload}")
    return Packet(type=ptype, seq=seq, payload=bytes(body[HEADER_SIZE:]), flags=flags,
                  version=version)


def _header_fits(seg: bytes, cut: int, size: int) -> bool:
    """Cheap test of the candidate frame at `seg[cut:]` (decoded size `size`): version
    byte and length field, read by decoding only the first header bytes."""
    head = cobs.decode_prefix(seg, cut, HEADER_SIZE)
    if len(head) < HEADER_SIZE or head[0] != PROTO_VERSION:
        return False
    return head[4] | head[5] << 8 == size - PACKET_OVERHEAD


@dataclass(frozen=True)
class NoiseEntry:
    time: float
    data: bytes

    def text(self) -> str:
        return "".join(chr(b) if 32 <= b < 127 or b in (9, 10) else "." for b in self.data)


class FrameDecoder:
    """Incremental frame splitter/decoder with resynchronisation, linear in its input.

    A segment between two 0x00 that fails to decode is searched for a valid frame at one
    of its suffixes, because a sender that prints text and then a frame without a
    separating 0x00 glues them together; the part in front becomes noise.

    Bounds: no frame is longer than `max_encoded` (from `max_payload`, which the link sets
    from HELLO), so only the last `max_encoded` bytes of a segment are kept and searched;
    a longer segment is noise (TOO_LONG) unless a valid frame ends it. The suffix search
    is one O(n) pass over the COBS code chain that checks each candidate's length and
    header without decoding it; at most `MAX_CANDIDATES` candidates are decoded in full.
    """

    MAX_CANDIDATES = 8

    def __init__(self, max_payload: int = MAX_LEN_FIELD, noise_bytes: int = 4096,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_payload = max_payload
        self.noise: deque[NoiseEntry] = deque()
        self._noise_limit = noise_bytes
        self._noise_size = 0
        self.noise_entries = 0  # ever added, so a caller can tell which entries are new
        self._clock = clock
        self._buf = bytearray()
        self._dropped = 0  # bytes of the current segment no longer kept (over max_encoded)

    @property
    def max_encoded(self) -> int:
        return cobs.max_encoded_len(self.max_payload + PACKET_OVERHEAD)

    @property
    def pending(self) -> bytes:
        """Bytes received since the last 0x00 (a frame in progress, or unterminated text)."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[Packet | FrameError]:
        out: list[Packet | FrameError] = []
        start = 0
        limit = self.max_encoded
        while True:
            end = data.find(b"\x00", start)
            stop = len(data) if end < 0 else end
            # Only the newest `limit` bytes of a segment can belong to a frame.
            if stop - start > limit:
                self._dropped += len(self._buf) + (stop - start - limit)
                self._buf.clear()
                start = stop - limit
            self._buf += data[start:stop]
            if len(self._buf) > limit:
                cut = len(self._buf) - limit
                self._dropped += cut
                del self._buf[:cut]
            if end < 0:
                return out
            self._finish(out)
            start = end + 1

    def flush(self) -> list[Packet | FrameError]:
        """End the pending segment as if a 0x00 had arrived (the delimiter got lost)."""
        out: list[Packet | FrameError] = []
        self._finish(out)
        return out

    def _finish(self, out: list[Packet | FrameError]) -> None:
        seg, dropped = bytes(self._buf), self._dropped
        self._buf.clear()
        self._dropped = 0
        if not seg:
            return  # empty frame (0x00 0x00): a resync marker, not an error
        now = self._clock()
        bad: _Bad | None = None
        if not dropped:
            try:
                out.append(self._decode(seg))
                return
            except _Bad as first:
                bad = first
        recovered = self._recover(seg)
        if recovered is not None:
            cut, packet = recovered
            self._add_noise(now, seg[:cut])
            out.append(packet)
            return
        self._add_noise(now, seg)
        if bad is None:
            bad = _Bad(NakReason.TOO_LONG, f"frame longer than {self.max_encoded} encoded"
                       f" bytes ({dropped + len(seg)} B)")
        out.append(FrameError(bad.reason, bad.detail, seg, now))

    def _decode(self, seg: bytes) -> Packet:
        try:
            raw = cobs.decode(seg)
        except cobs.DecodeError as exc:
            raise _Bad(NakReason.BAD_COBS, str(exc)) from None
        return decode_packet(raw, self.max_payload)

    def _recover(self, seg: bytes) -> tuple[int, Packet] | None:
        """The longest suffix of `seg` (cut >= 1) that is a valid frame, if any."""
        tries = 0
        for cut, size in cobs.suffix_candidates(seg, PACKET_OVERHEAD, self.max_payload
                                                + PACKET_OVERHEAD):
            if cut == 0 or not _header_fits(seg, cut, size):
                continue
            tries += 1
            try:
                return cut, self._decode(seg[cut:])
            except _Bad:
                if tries >= self.MAX_CANDIDATES:
                    return None
        return None

    def _add_noise(self, now: float, data: bytes) -> None:
        if not data:
            return
        data = data[-self._noise_limit:]
        self.noise.append(NoiseEntry(now, data))
        self.noise_entries += 1
        self._noise_size += len(data)
        while self._noise_size > self._noise_limit:
            self._noise_size -= len(self.noise.popleft().data)

    def noise_text(self, max_chars: int = 512, since: int = 0) -> str:
        """The most recent noise as printable text (tail), with pending bytes. `since`:
        only entries added after `noise_entries` had that value."""
        entries = list(self.noise)
        newer = self.noise_entries - since
        entries = entries[max(len(entries) - newer, 0):] if newer >= 0 else entries
        text = "".join(e.text() for e in entries) + NoiseEntry(0, self.pending).text()
        return text[-max_chars:]
