"""Every error the rig raises on purpose. One hierarchy so faces (CLI, fixtures) can
catch `RigError` and print a precise message instead of a traceback."""

from __future__ import annotations


class RigError(Exception):
    """Base of all tinyrig errors."""


class ConfigError(RigError):
    """`lab_config.yaml` is malformed; the message names file, line and key."""


class ToolMissing(RigError):
    """A host tool (QEMU, arm-none-eabi-gcc, gdb-multiarch) is not installed."""


class LinkError(RigError):
    """Bytes on the wire went wrong (port busy, closed, undecodable)."""


class LinkTimeout(LinkError):
    """The device stopped answering. `last_bytes` holds what was seen last."""

    def __init__(self, message: str, last_bytes: bytes = b"") -> None:
        tail = last_bytes[-64:]
        super().__init__(f"{message}; last bytes seen ({len(last_bytes)} total): {tail.hex(' ')}"
                         f" {_printable(tail)!r}" if last_bytes else f"{message}; nothing received")
        self.last_bytes = last_bytes


class DeviceNak(RigError):
    """The device refused a request; it changed no state."""

    def __init__(self, reason: int, reason_name: str, request_type: int, detail: int,
                 text: str) -> None:
        super().__init__(f"device NAK {reason_name} for request 0x{request_type:02x}"
                         f" (detail {detail}): {text}")
        self.reason = reason
        self.reason_name = reason_name
        self.request_type = request_type
        self.detail = detail
        self.text = text


class DeviceFault(RigError):
    """The firmware took a fault; `registers` holds the fault frame it reported."""

    def __init__(self, message: str, registers: dict[str, int] | None = None) -> None:
        regs = registers or {}
        shown = " ".join(f"{k}=0x{v:08x}" for k, v in regs.items())
        super().__init__(f"{message} {shown}".strip())
        self.registers = regs


class FirmwareMismatch(RigError):
    """The running firmware is not the one the manifest describes."""


class TargetUnavailable(RigError):
    """The requested target cannot be reached (no board, no probe, no emulator)."""


class ProbeNotFound(TargetUnavailable):
    """No debug probe attached, or not the one the lab config names."""


class WrongTarget(TargetUnavailable):
    """The probe (or the chip behind it) is not the board type the target expects."""


class PortBusy(TargetUnavailable):
    """The board's serial port is open in another process (a terminal, another rig)."""


class BoardBusy(TargetUnavailable):
    """Another process holds the board (its probe or port lock, rig.locks, or its labgrid
    place); the message names the holder."""


class FlashVerifyError(FirmwareMismatch):
    """Reading the flash back after programming gave other bytes than the image."""


class ComparisonFailed(RigError):
    """Device and golden model disagree beyond the stated tolerance."""


class InstrumentError(RigError):
    """A measuring instrument (power monitor) misbehaved: refused a command, sent output we
    cannot parse, or is not the instrument we expected. The message names the instrument,
    the port and what was seen."""


class InstrumentTimeout(InstrumentError):
    """A measuring instrument stopped answering within the stated time."""


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)
