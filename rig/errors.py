"""Every error the rig raises on purpose: the whole `RigError` tree lives here, so faces
(CLI, pytest plugin) can catch `RigError` and print a precise message instead of a
traceback. Modules that raise one re-import it (`rig.protocol.PayloadError` is this
module's `PayloadError`). A device and golden model that disagree is not an error: it is a
failed `rig.compare.Verdict`, which the faces turn into exit status 1 or a failed test."""

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


class DoesNotFit(RigError):
    """The run needs more than the device stated in HELLO (layers, width, parameters,
    batch)."""


class FirmwareMismatch(RigError):
    """The running firmware is not the one the manifest describes."""


class TargetUnavailable(RigError):
    """The requested target cannot be reached (no board, no probe, no emulator)."""


class TargetStartFailed(RigError):
    """A target failed to start earlier in this test session; the pytest plugin does not
    try it again (the message names the first failure and the test that saw it)."""


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


class ElfError(RigError):
    """Not a little-endian ELF32 ARM image, or a damaged one (`rig.elf`)."""


class InstrumentError(RigError):
    """A measuring instrument (power monitor) misbehaved: refused a command, sent output we
    cannot parse, or is not the instrument we expected. The message names the instrument,
    the port and what was seen."""


class InstrumentTimeout(InstrumentError):
    """A measuring instrument stopped answering within the stated time."""


class PayloadError(LinkError):
    """A payload does not have the layout its type prescribes (`rig.protocol`)."""


class DecodeError(LinkError):
    """The bytes are not a valid COBS encoding (`rig.link.cobs`)."""


class FirmwareNotFound(RigError):
    """No manifest, no entry for the board, or the image file is missing."""


class BuildFailed(RigError):
    """`make` in firmware/ failed; the message quotes the end of its output."""


class PluginError(RigError):
    """The QEMU instruction-count plugin could not be built or loaded, or its output is
    inconsistent (`rig.profile.icount`)."""


class UnicornError(RigError):
    """The firmware did something the unicorn model does not cover, or faulted."""


class UsageError(ConfigError):
    """A command-line value is wrong; the message names the option."""


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)
