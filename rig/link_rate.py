"""Link-rate negotiation after HELLO (docs/protocol.md §9).

The device lists the rates its UART makes exactly enough (HELLO `link_rates`); the host
takes the fastest one that is also within its own limit, sends BAUD_SET (answered at the
old rate), switches its own port and proves the new rate with an ECHO. The device keeps the
new rate only if a valid frame arrives at it within `revert_ms`; otherwise it goes back by
itself. So on any failure the host goes back too, waits out that window and proves the old
rate with an ECHO: the link never ends up split between two rates.

QEMU's UARTs ignore the rate and the host's socket has none, so there the exchange runs
in full but changes no speed; over a real or RFC 2217 port the host's rate changes with
pyserial's `baudrate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rig.device import Device
from rig.errors import DeviceNak, LinkError, RigError
from rig.link.transport import Transport
from rig.protocol import BaudSet, MsgType

#: how long the device waits at a new rate for a valid frame before it goes back
DEFAULT_REVERT_MS = 1000
#: every bit pattern a wrong rate garbles: alternating bits, runs of 0s and 1s, all bytes
ECHO_PATTERN = bytes([0x55, 0xAA, 0x00, 0xFF, 0x0F, 0xF0, 0x33, 0xCC]) + bytes(range(1, 33))
#: pause after a switch before the first byte at the new rate (the device waits two
#: character times at the old rate before reprogramming its UART)
SETTLE_S = 0.005


@dataclass(frozen=True)
class RateResult:
    """What a negotiation did. `baud` is the rate both ends use now (0: the link has no
    rate); `fell_back`: a switch was tried and undone; `reason`: why the rate is what it is."""

    baud: int
    previous: int
    offered: tuple[int, ...]
    fell_back: bool
    seconds: float
    reason: str

    @property
    def switched(self) -> bool:
        return self.baud != self.previous and not self.fell_back

    def to_json(self) -> dict[str, object]:
        return {"baud": self.baud, "previous": self.previous, "offered": list(self.offered),
                "fell_back": self.fell_back, "seconds": self.seconds, "reason": self.reason}


def rate_setter(transport: Transport) -> Callable[[int], None] | None:
    return getattr(transport, "set_baudrate", None)


def negotiate(device: Device, max_baud: int, *, revert_ms: int = DEFAULT_REVERT_MS,
              echo_timeout: float | None = None) -> RateResult:
    """Switch the link to the fastest rate <= `max_baud` both ends support, verified by an
    ECHO; on failure both ends are back at the old rate (verified) and `fell_back` is set.
    Raises LinkError only when the link works at neither rate."""
    t0 = time.monotonic()
    hello = device.info
    current = hello.link_baud
    setter = rate_setter(device.link.transport)
    better = [r for r in hello.link_rates if current < r <= max_baud]

    def result(baud: int, fell_back: bool, reason: str) -> RateResult:
        return RateResult(baud, current, hello.link_rates, fell_back, time.monotonic() - t0,
                          reason)

    if not current or not hello.link_rates:
        return result(current, False, "the device offers no link rates")
    if setter is None:
        return result(current, False, "the host's wire has no baud rate")
    if not better:
        return result(current, False, f"no offered rate above {current} within {max_baud}")
    return switch(device, max(better), revert_ms=revert_ms, echo_timeout=echo_timeout,
                  t0=t0, offered=hello.link_rates)


def switch(device: Device, baud: int, *, revert_ms: int = DEFAULT_REVERT_MS,
           echo_timeout: float | None = None, t0: float | None = None,
           offered: tuple[int, ...] = ()) -> RateResult:
    """BAUD_SET `baud`, switch the host, prove it with an ECHO; fall back on failure."""
    t0 = time.monotonic() if t0 is None else t0
    setter = rate_setter(device.link.transport)
    if setter is None:
        raise LinkError(f"{device.link.transport.name}: the host's wire has no baud rate")
    # Each ECHO attempt gets a third of the device's window, so two of them fit in it.
    wait = echo_timeout if echo_timeout is not None else revert_ms / 3000
    previous = device.info.link_baud
    sent = time.monotonic()
    try:
        try:
            reply = device.link.request(MsgType.BAUD_SET, BaudSet(baud, revert_ms).pack())
        except DeviceNak as exc:  # refused: the device did not switch
            return RateResult(previous, previous, offered, True, time.monotonic() - t0,
                              f"{baud} baud refused: {exc}")
        assert reply is not None
        previous = int.from_bytes(reply.payload[:4], "little")
        setter(baud)
        time.sleep(SETTLE_S)
        _echo(device, wait, retries=1)
    except RigError as exc:
        # The device may or may not have switched: be at the old rate once its window has
        # surely closed, then prove the link there.
        setter(previous)
        time.sleep(max(0.0, sent + 1.5 * revert_ms / 1000 + 0.05 - time.monotonic()))
        try:
            _echo(device, None, retries=None)
        except RigError as lost:
            raise LinkError(f"link lost after a failed switch to {baud} baud ({exc}); at "
                            f"{previous} baud: {lost}") from lost
        return RateResult(previous, previous, offered, True, time.monotonic() - t0,
                          f"{baud} baud failed ({exc}); back at {previous}")
    return RateResult(baud, previous, offered, False, time.monotonic() - t0,
                      "the fastest rate both ends support within the limit")


def _echo(device: Device, timeout: float | None, retries: int | None) -> None:
    reply = device.link.request(MsgType.ECHO, ECHO_PATTERN, timeout=timeout, retries=retries)
    assert reply is not None
    if reply.payload != ECHO_PATTERN:
        raise LinkError(f"ECHO at the new rate came back different ({reply.payload[:8].hex()}…)")
