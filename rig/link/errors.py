"""Link-level errors that carry what the link saw (rig.errors holds the general ones)."""

from __future__ import annotations

from rig.errors import LinkError


class DeviceRebooted(LinkError):
    """The device printed its boot banner after HELLO: it reset (watchdog, power, a reset
    line, a restarted emulator) and lost every state the host had set up. `banner` is the
    boot line, `last_bytes` the tail of what arrived. A caller that keeps the host's copy
    of the state can restore it and continue (issue 17, item 3)."""

    def __init__(self, message: str, banner: str = "", last_bytes: bytes = b"") -> None:
        super().__init__(message)
        self.banner = banner
        self.last_bytes = last_bytes


class FrameTooBig(LinkError):
    """A piece of a bulk transfer failed while the link's payload budget fell below its
    size: the caller should split it into smaller requests (`budget` bytes of payload
    each) and send those instead. Only raised for requests sent with `bulk=`, which must
    be idempotent (writes of the same bytes, reads)."""

    def __init__(self, message: str, budget: int) -> None:
        super().__init__(message)
        self.budget = budget


__all__ = ["DeviceRebooted", "FrameTooBig"]
