"""The lab-file options of each built-in target kind, typed: one frozen dataclass per kind.

Each field is declared once with its check and its default (`rig.schema.option`). The config
loader validates a target's entry against its kind's class (errors name file:line:key) and
hands the target a finished instance: every default filled in, `baudrate` from the lab's
`defaults:` when the entry leaves it out. Targets read these typed values and re-check
nothing. A plug-in kind registers its own class with `register_target_options` before the
lab file is loaded.

The classes live here, below both `rig.config` and `rig.targets`, because the config must be
able to validate every kind without importing target code (the dependency direction is
targets -> config).
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.link.transport import DEFAULT_BAUD_POLICY, DEFAULT_BAUDRATE, DEFAULT_MAX_BAUD
from rig.locks import DEFAULT_BUSY_TIMEOUT_S, DEFAULT_ON_BUSY, OnBusy
from rig.schema import (
    boolean,
    choice,
    integer,
    list_of,
    number,
    option,
    optional,
    serial_url,
    string_map,
    text,
)

#: what a target does when another process holds its board (rig.locks): wait | error
_ON_BUSY = choice(*(p.value for p in OnBusy))
#: negotiate: after HELLO, switch the link to the fastest rate both ends support, up to
#: link_max_baud (docs/protocol.md §9); fixed: stay at the rate the link started at
_LINK_RATE = choice("negotiate", "fixed")
_MAX_BAUD = integer(300)


@dataclass(frozen=True)
class TargetOptions:
    """Base of every kind's options (a kind without options uses it as is)."""


@dataclass(frozen=True)
class QemuOptions(TargetOptions):
    machine: str | None = option(optional(text), None)  # None: the board's qemu_machine
    elf: str | None = option(optional(text), None)  # None: the board's prebuilt image
    extra_args: tuple[str, ...] = option(list_of(text), ())
    #: kernel: -kernel image.elf; gdb: empty halted machine, loaded through the gdbstub
    flash: str = option(choice("kernel", "gdb"), "kernel")
    icount: int | None = option(optional(integer(0, 10)), None)  # -icount shift=N
    plugin: str | None = option(optional(text), None)  # TCG plugin .so: -plugin <so>,<args>
    plugin_args: tuple[str, ...] = option(list_of(text), ())  # "key=value" strings
    start_timeout_s: float = option(number(positive=True), 10.0)
    log_dir: str | None = option(optional(text), None)  # None: a temporary directory
    link_rate: str = option(_LINK_RATE, DEFAULT_BAUD_POLICY, lab_default="link_rate")
    link_max_baud: int = option(_MAX_BAUD, DEFAULT_MAX_BAUD, lab_default="link_max_baud")


@dataclass(frozen=True)
class SerialOptions(TargetOptions):
    port: str = option(serial_url)  # a device path or a pyserial URL (socket://, rfc2217://)
    baudrate: int = option(integer(300), DEFAULT_BAUDRATE, lab_default="baudrate")
    reset: str = option(choice("none"), "none")
    link_rate: str = option(_LINK_RATE, DEFAULT_BAUD_POLICY, lab_default="link_rate")
    link_max_baud: int = option(_MAX_BAUD, DEFAULT_MAX_BAUD, lab_default="link_max_baud")
    open_timeout_s: float = option(number(positive=True), 5.0)
    #: a board another process holds (rig.locks): wait up to busy_timeout_s, or error
    on_busy: str = option(_ON_BUSY, DEFAULT_ON_BUSY.value, lab_default="on_busy")
    busy_timeout_s: float = option(number(positive=True), DEFAULT_BUSY_TIMEOUT_S,
                                   lab_default="busy_timeout_s")


@dataclass(frozen=True)
class NativeOptions(TargetOptions):
    binary: str | None = option(optional(text), None)  # None: firmware/build/native/tinyrig_fw
    args: tuple[str, ...] = option(list_of(text), ())
    log_dir: str | None = option(optional(text), None)


@dataclass(frozen=True)
class PyocdOptions(TargetOptions):
    probe: str = option(text, "auto")  # probe unique id, or auto
    frequency_hz: int | None = option(optional(integer(1000)), None)  # SWD clock
    port: str | None = option(optional(serial_url), None)  # the board's UART; None: by USB serial
    baudrate: int = option(integer(300), DEFAULT_BAUDRATE, lab_default="baudrate")
    #: auto: skip flashing when HELLO already reports the manifest's build; always; never
    flash: str = option(choice("auto", "always", "never"), "auto")
    open_timeout_s: float = option(number(positive=True), 5.0)  # USB re-enumeration
    hello_timeout_s: float = option(number(positive=True), 1.0)  # "is it already flashed?"
    link_rate: str = option(_LINK_RATE, DEFAULT_BAUD_POLICY, lab_default="link_rate")
    link_max_baud: int = option(_MAX_BAUD, DEFAULT_MAX_BAUD, lab_default="link_max_baud")
    #: a board another process holds (rig.locks): wait up to busy_timeout_s, or error
    on_busy: str = option(_ON_BUSY, DEFAULT_ON_BUSY.value, lab_default="on_busy")
    busy_timeout_s: float = option(number(positive=True), DEFAULT_BUSY_TIMEOUT_S,
                                   lab_default="busy_timeout_s")


@dataclass(frozen=True)
class LabgridOptions(TargetOptions):
    """A place of a labgrid farm (rig/targets/labgrid.py)."""

    coordinator: str | None = option(optional(text), None)  # HOST:PORT; None: $LG_COORDINATOR
    place: str | None = option(optional(text), None)  # a place name ...
    tags: dict[str, str] | None = option(optional(string_map), None)  # ... and/or tags
    flash: str = option(choice("auto", "always", "never"), "auto")  # places with a GDB server
    baudrate: int = option(integer(300), DEFAULT_BAUDRATE, lab_default="baudrate")
    link_rate: str = option(_LINK_RATE, DEFAULT_BAUD_POLICY, lab_default="link_rate")
    link_max_baud: int = option(_MAX_BAUD, DEFAULT_MAX_BAUD, lab_default="link_max_baud")
    open_timeout_s: float = option(number(positive=True), 10.0)
    #: a board another process holds (rig.locks): wait up to busy_timeout_s, or error
    on_busy: str = option(_ON_BUSY, DEFAULT_ON_BUSY.value, lab_default="on_busy")
    busy_timeout_s: float = option(number(positive=True), DEFAULT_BUSY_TIMEOUT_S,
                                   lab_default="busy_timeout_s")


@dataclass(frozen=True)
class TwinOptions(TargetOptions):
    """A board twin in unicorn (rig.twin); the board must have a twin model."""

    elf: str | None = option(optional(text), None)  # None: the board's prebuilt image
    strict: bool = option(boolean, True)  # unknown register access / model finding = error
    wall_factor: float = option(number(positive=True), 10.0)  # wall-clock cap per read


#: kind -> its options class. Plug-in kinds add theirs with `register_target_options`.
TARGET_OPTIONS: dict[str, type[TargetOptions]] = {
    "qemu": QemuOptions,
    "serial": SerialOptions,
    "native": NativeOptions,
    "pyocd": PyocdOptions,
    "labgrid": LabgridOptions,
    "twin": TwinOptions,
}


def register_target_options(kind: str, options: type[TargetOptions]) -> None:
    """Declare the lab-file options of a plug-in target kind (a TargetOptions dataclass
    whose fields are made with `rig.schema.option`)."""
    TARGET_OPTIONS[kind] = options
