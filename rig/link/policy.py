"""How hard the link tries: retry budgets, fast-recovery timing and adaptive frame size.

`LinkPolicy` is the one home of these defaults (the lab config's `defaults.retries`
overrides `retries`). `FrameSizer` picks the payload size of bulk transfers from the
error rate the link observes: full size on a clean link, smaller frames when damage is
frequent (a damaged frame costs a resend of all its bytes), and back up as the observed
error rate decays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rig.errors import ConfigError


@dataclass(frozen=True)
class LinkPolicy:
    #: retransmissions of one request after its first attempt
    retries: int = 10
    #: ... of which at most this many after a timeout: a silent device is given up on
    #: sooner than a noisy one, whose damage shows in the bytes and is resent at once
    timeout_retries: int = 3
    #: retransmissions over the whole life of the link (one run); None = no limit
    run_retries: int | None = 2000
    #: no byte for this long while a frame is half received: its 0x00 got lost, so the
    #: pending bytes are decoded as they are (a damaged frame -> immediate resend)
    idle_gap: float = 0.05
    #: after a damaged frame or a NAK for an unreadable header, wait this long for more
    #: bytes (our response may follow) before resending
    settle: float = 0.005
    #: silence after a request before the link sends a lone 0x00, in case the request's
    #: own delimiter got lost (harmless otherwise: the device ignores empty frames);
    #: the actual wait is at least 4x the recent response time of that message type
    probe_after: float = 0.1
    #: smallest payload the frame sizer goes down to (bytes)
    min_frame: int = 64
    #: adapt the payload size of bulk transfers to the observed error rate
    adaptive_frames: bool = True

    def __post_init__(self) -> None:
        for name, ok in (("retries", 0 <= self.retries <= 1000),
                         ("timeout_retries", 0 <= self.timeout_retries <= 1000),
                         ("run_retries", self.run_retries is None or self.run_retries >= 0),
                         ("idle_gap", 0 < self.idle_gap <= 10),
                         ("settle", 0 <= self.settle <= 10),
                         ("probe_after", 0 < self.probe_after <= 60),
                         ("min_frame", 16 <= self.min_frame <= 0xFFFF)):
            if not ok:
                raise ConfigError(f"link policy: {name}={getattr(self, name)!r} out of range")


class FrameSizer:
    """Payload size for bulk transfers from the observed byte error rate.

    Every attempt reports the bytes it moved and whether it was damaged; both tallies decay
    with a half-life of `half_life` bytes, so old errors are forgotten as clean traffic
    flows. The size maximises the expected payload per byte-time of a stop-and-wait
    exchange, `n (1-e)^(n+o) / (n+o+c)` (o: frame overhead both ways, c: turnaround cost
    in byte-times), over powers of two between `min_frame` and `max_payload`.
    """

    OVERHEAD = 40      # header, CRC, COBS, delimiters and the response frame, bytes
    TURNAROUND = 64    # per-exchange latency in byte-times
    HALF_LIFE = 32768  # bytes of traffic after which an observation counts half

    def __init__(self, max_payload: int, min_frame: int = 64, enabled: bool = True) -> None:
        self.max_payload = max_payload
        self.min_frame = min(min_frame, max_payload)
        self.enabled = enabled
        self._bytes = 0.0
        self._damage = 0.0
        self.current = max_payload
        self.shrinks = 0  # times the size went down
        self.grows = 0    # times it went back up

    @property
    def error_rate(self) -> float:
        """Damaged attempts per byte moved (decayed)."""
        return self._damage / self._bytes if self._bytes > 0 else 0.0

    def observe(self, nbytes: int, damaged: bool) -> None:
        decay = 0.5 ** (nbytes / self.HALF_LIFE)
        self._bytes = self._bytes * decay + nbytes
        self._damage = self._damage * decay + (1.0 if damaged else 0.0)
        if self.enabled:
            self._resize()

    def set_max(self, max_payload: int) -> None:
        """The device's limit (from HELLO): a new ceiling, not an adaptation."""
        self.max_payload = max_payload
        self.min_frame = min(self.min_frame, max_payload)
        self.current = self._best() if self.enabled else max_payload

    def _resize(self) -> None:
        new = self._best() if self.enabled else self.max_payload
        if new < self.current:
            self.shrinks += 1
        elif new > self.current:
            self.grows += 1
        self.current = new

    def _best(self) -> int:
        e = self.error_rate
        if e <= 0:
            return self.max_payload
        log_keep = math.log1p(-min(e, 0.5))
        best, best_score = self.min_frame, -1.0
        n = self.min_frame
        while True:
            size = min(n, self.max_payload)
            score = size * math.exp(log_keep * (size + self.OVERHEAD)) / (
                size + self.OVERHEAD + self.TURNAROUND)
            if score > best_score:
                best, best_score = size, score
            if size >= self.max_payload:
                return best
            n *= 2


__all__ = ["FrameSizer", "LinkPolicy"]
