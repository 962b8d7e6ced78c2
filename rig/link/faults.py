"""A fault-injecting transport: wrap any `Transport` so bytes get corrupted, dropped,
duplicated and delayed, in either direction, from a seeded RNG, and count every fault.

    spec = FaultSpec.parse("flip=1e-4,drop=1e-4,dup=1e-5,delay=1e-3,seed=7")
    link = Link(FaultyTransport(target.start(), spec))

Rates are probabilities per byte. `delay` holds the stream for `stall` seconds before the
chosen byte (device to host: the byte and those behind it arrive late; host to device:
the write pauses there). Fault positions are drawn as geometric gaps, so a clean stretch
costs nothing per byte.

With `audit=True` the transport also decodes both directions as sent and as delivered, and
counts `silent` faults: frames that arrive valid (CRC correct) although no such frame was
sent. The link's CRC-32 should keep that at zero; an end-to-end test checks it.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, fields

from rig.errors import ConfigError
from rig.link.frame import FrameDecoder, Packet, encode_packet
from rig.link.transport import Transport

KINDS = ("flip", "drop", "dup", "delay")
DIRECTIONS = ("tx", "rx")  # tx: host -> device, rx: device -> host


@dataclass(frozen=True)
class FaultSpec:
    """What to inject. Probabilities are per byte, in each enabled direction."""

    flip: float = 0.0   # XOR one random bit of the byte
    drop: float = 0.0   # the byte never arrives
    dup: float = 0.0    # the byte arrives twice
    delay: float = 0.0  # the stream stalls for `stall` seconds before the byte
    stall: float = 0.02  # seconds per delay fault
    seed: int = 0
    dir: str = "both"   # both, tx (host -> device only) or rx (device -> host only)

    @property
    def rate(self) -> float:
        """Probability that a byte gets any fault."""
        return self.flip + self.drop + self.dup + self.delay

    @property
    def directions(self) -> tuple[str, ...]:
        return DIRECTIONS if self.dir == "both" else (self.dir,)

    def describe(self) -> str:
        keys = [f"{k}={getattr(self, k):g}" for k in KINDS if getattr(self, k)]
        if self.delay:
            keys.append(f"stall={self.stall:g}")
        return ",".join(keys + [f"seed={self.seed}", f"dir={self.dir}"])

    @classmethod
    def parse(cls, text: str, where: str = "--inject-faults") -> FaultSpec:
        """`key=value,...` with keys flip, drop, dup, delay (probabilities per byte),
        stall (seconds), seed (int), dir (both/tx/rx). Raises ConfigError naming the key."""
        known = {f.name for f in fields(cls)}
        values: dict[str, float | int | str] = {}
        for item in (p.strip() for p in text.split(",")):
            if not item:
                continue
            key, sep, raw = (s.strip() for s in item.partition("="))
            if key not in known:
                raise ConfigError(f"{where}: unknown key {key!r}"
                                  f" (keys: {', '.join(sorted(known))})")
            if not sep or not raw:
                raise ConfigError(f"{where}: {key}: expected {key}=VALUE")
            if key in values:
                raise ConfigError(f"{where}: {key}: given twice")
            values[key] = _value(key, raw, where)
        spec = cls(**values)  # type: ignore[arg-type]
        if spec.rate > 0.5:
            raise ConfigError(f"{where}: flip+drop+dup+delay = {spec.rate:g}: at most 0.5 per byte")
        return spec


def _value(key: str, raw: str, where: str) -> float | int | str:
    if key == "dir":
        if raw not in ("both", *DIRECTIONS):
            raise ConfigError(f"{where}: dir={raw!r}: expected both, tx or rx")
        return raw
    if key == "seed":
        try:
            return int(raw, 0)
        except ValueError:
            raise ConfigError(f"{where}: seed={raw!r}: expected an integer") from None
    try:
        v = float(raw)
    except ValueError:
        raise ConfigError(f"{where}: {key}={raw!r}: expected a number") from None
    if not math.isfinite(v) or v < 0:
        raise ConfigError(f"{where}: {key}={raw!r}: must be a finite number >= 0")
    if key in KINDS and v > 1:
        raise ConfigError(f"{where}: {key}={raw!r}: a probability per byte is at most 1")
    if key == "stall" and v > 10:
        raise ConfigError(f"{where}: stall={raw!r}: at most 10 s")
    return v


@dataclass
class FaultCounts:
    """Faults injected, per direction and kind; `silent` from the audit (see module doc)."""

    injected: Counter[str]
    bytes: Counter[str]
    frames_sent: Counter[str]
    frames_damaged: Counter[str]
    silent: int = 0

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    def summary(self) -> str:
        parts = []
        for d in DIRECTIONS:
            kinds = ", ".join(f"{k} {self.injected[f'{d}.{k}']}" for k in KINDS
                              if self.injected[f"{d}.{k}"])
            parts.append(f"{d}: {kinds or 'none'} in {self.bytes[d]} B")
        return f"{self.total} faults injected ({'; '.join(parts)}); silent {self.silent}"


class _Audit:
    """Frames of one direction as sent and as delivered: a delivered frame that decodes
    (CRC correct) must be one that was sent, else a fault went through unnoticed."""

    def __init__(self) -> None:
        self.sent_dec = FrameDecoder()
        self.got_dec = FrameDecoder()
        self.sent: set[bytes] = set()
        self.frames_sent = 0
        self.damaged = 0
        self.silent = 0

    @staticmethod
    def _key(p: Packet) -> bytes:
        return hashlib.blake2b(encode_packet(p), digest_size=12).digest()

    def clean(self, data: bytes) -> None:
        for item in self.sent_dec.feed(data):
            if isinstance(item, Packet):
                self.frames_sent += 1
                self.sent.add(self._key(item))

    def delivered(self, data: bytes) -> None:
        for item in self.got_dec.feed(data):
            if not isinstance(item, Packet):
                self.damaged += 0 if item.looks_like_text else 1
            elif self._key(item) not in self.sent:
                self.silent += 1


class FaultyTransport:
    """`Transport` wrapper that injects `spec`'s faults into the bytes passing through."""

    def __init__(self, inner: Transport, spec: FaultSpec, audit: bool = False) -> None:
        self.inner = inner
        self.spec = spec
        self.name = f"{inner.name} (faults {spec.describe()})"
        self._rng = random.Random(spec.seed)
        self._gap = {d: self._draw_gap() if d in spec.directions else math.inf
                     for d in DIRECTIONS}
        self._injected: Counter[str] = Counter()
        self._bytes: Counter[str] = Counter()
        self._held = b""           # rx bytes behind a delay fault ...
        self._held_until = 0.0     # ... released at this monotonic time
        self._audit = {d: _Audit() for d in DIRECTIONS} if audit else None

    @property
    def counts(self) -> FaultCounts:
        a = self._audit
        return FaultCounts(
            injected=Counter(self._injected), bytes=Counter(self._bytes),
            frames_sent=Counter({d: a[d].frames_sent for d in DIRECTIONS}) if a else Counter(),
            frames_damaged=Counter({d: a[d].damaged for d in DIRECTIONS}) if a else Counter(),
            silent=sum(x.silent for x in a.values()) if a else 0)

    # -- Transport ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        pieces = self._mangle(bytes(data), "tx")
        for i, (piece, stall) in enumerate(pieces):
            if i and stall:
                time.sleep(stall)
            if piece:
                self.inner.write(piece)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if self._held:
                if now >= self._held_until:
                    return self._release(max_bytes)
                time.sleep(max(0.0, min(deadline, self._held_until) - now))
                if time.monotonic() >= deadline and time.monotonic() < self._held_until:
                    return b""
                continue
            data = self.inner.read(max_bytes, max(0.0, deadline - now))
            if not data:
                return b""
            pieces = self._mangle(data, "rx")
            first = pieces[0][0]
            rest = pieces[1:]
            if rest:
                # Everything behind the first delay fault arrives after the stall(s).
                self._held = b"".join(p for p, _ in rest)
                self._held_until = time.monotonic() + sum(s for _, s in rest)
            if first:
                return first
            if time.monotonic() >= deadline:
                return b""

    def close(self) -> None:
        self.inner.close()

    def set_baudrate(self, baud: int) -> None:
        """Passed through (rig.link_rate); a wire without a rate (a pipe) has nothing to set."""
        setter = getattr(self.inner, "set_baudrate", None)
        if setter is not None:
            setter(baud)

    # -- internals ----------------------------------------------------------------------------

    def _release(self, max_bytes: int) -> bytes:
        out, self._held = self._held[:max_bytes], self._held[max_bytes:]
        return out

    def _draw_gap(self) -> float:
        """Bytes until the next fault (geometric), inf when no fault is configured."""
        p = self.spec.rate
        if p <= 0:
            return math.inf
        u = self._rng.random()
        return math.floor(math.log1p(-u) / math.log1p(-p)) if p < 1 else 0

    def _kind(self) -> str:
        x = self._rng.random() * self.spec.rate
        for kind in KINDS:
            x -= getattr(self.spec, kind)
            if x < 0:
                return kind
        return "flip"

    def _mangle(self, data: bytes, d: str) -> list[tuple[bytes, float]]:
        """`data` with faults applied, split at delay faults: [(bytes, stall before)]."""
        self._bytes[d] += len(data)
        if self._audit is not None:
            self._audit[d].clean(data)
        out = bytearray()
        pieces: list[tuple[bytes, float]] = []
        stall = 0.0
        pos = 0
        while True:
            gap = self._gap[d]
            if pos + gap >= len(data):
                out += data[pos:]
                self._gap[d] = gap - (len(data) - pos)
                break
            i = pos + int(gap)
            out += data[pos:i]
            kind = self._kind()
            self._injected[f"{d}.{kind}"] += 1
            b = data[i]
            if kind == "flip":
                out.append(b ^ (1 << self._rng.randrange(8)))
            elif kind == "dup":
                out += bytes((b, b))
            elif kind == "delay":
                pieces.append((bytes(out), stall))
                out = bytearray((b,))
                stall = self.spec.stall
            # drop: nothing
            pos = i + 1
            self._gap[d] = self._draw_gap()
        pieces.append((bytes(out), stall))
        if self._audit is not None:
            self._audit[d].delivered(b"".join(p for p, _ in pieces))
        return pieces


__all__ = ["DIRECTIONS", "KINDS", "FaultCounts", "FaultSpec", "FaultyTransport"]
