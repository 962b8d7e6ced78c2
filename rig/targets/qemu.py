"""QEMU as a target: the rig starts `qemu-system-arm`, owns it, and talks to the guest's
UART through a loopback TCP socket (`socket://` in pyserial).

Two ways to get the image in (option `flash`):
- `kernel` (default): `-kernel image.elf`; `reset()` restarts the emulator (~50 ms), a
  real reset of all QEMU state.
- `gdb`: the machine starts empty and halted (`-S -gdb`), `gdb-multiarch` loads the ELF,
  verifies it (compare-sections) and resets the core: a real "flash over the debug
  link". No `-kernel`, because on mps2-an386 a reset would reload it; no `-no-reboot`,
  because the reset is a system reset. `reset()` then resets through the gdbstub and keeps
  the flashed image, as a board does.

The serial socket uses `wait=on`: the guest does not run until the host is connected, so
no boot byte is lost.
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import serial

from rig.config import Board
from rig.errors import (
    ConfigError,
    FirmwareMismatch,
    LinkError,
    RigError,
    TargetUnavailable,
    ToolMissing,
)
from rig.firmware import FirmwareImage, FirmwareNotFound, image_for
from rig.gdb_remote import find_gdb, run_gdb
from rig.link.transport import SerialTransport, Transport
from rig.target_options import QemuOptions
from rig.targets.base import (
    ChildProcess,
    FlashReport,
    Target,
    default_log_dir,
    register_target,
)

QEMU = "qemu-system-arm"
APT_QEMU = "apt-get install -y qemu-system-arm"
_PORT_ATTEMPTS = 4  # a free port can be taken between our probe and QEMU's bind


def find_qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise ToolMissing(f"{QEMU} not found on PATH; install it with `{APT_QEMU}`")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _close_fast(transport: Transport) -> None:
    """Close a socket:// transport without pyserial's unconditional 0.3 s sleep (it waits
    for "quick reconnects"; our emulator is already gone, and reset() must stay cheap)."""
    port = getattr(transport, "_port", None)
    sock = getattr(port, "_socket", None)
    if port is not None and isinstance(sock, socket.socket):
        try:
            sock.close()
        finally:
            port._socket = None
            port.is_open = False
    transport.close()


class _PortTaken(Exception):
    pass


@register_target
class QemuTarget(Target):
    """Options (lab_config.yaml `targets.<name>`, or a dict): `board` (a `Board`),
    `machine`, `elf` (overrides the board's prebuilt image), `extra_args`, `flash`
    (kernel|gdb), `icount` (-icount shift), `start_timeout_s`, `log_dir`, `plugin` (a TCG
    plugin .so) with `plugin_args` ("key=value" strings): `-plugin <so>,<args>`. The
    profiler sets the plugin with `set_plugin` (rig.profile.icount)."""

    kind = "qemu"
    options_type = QemuOptions
    options: QemuOptions

    def __init__(self, name: str, options: QemuOptions | Mapping[str, Any] | None = None,
                 board: Board | None = None) -> None:
        super().__init__(name, options, board)
        opts = self.options
        machine = opts.machine or (self.board.qemu_machine if self.board else None)
        if not machine:
            raise ConfigError(f"target {name!r}: no QEMU machine (set machine:, or a board "
                              "with qemu_machine:)")
        self.machine: str = machine
        self.flash_mode = opts.flash  # flash() switches it to gdb
        self.icount = opts.icount
        self.start_timeout_s = opts.start_timeout_s
        self.counter_label = (
            f"SysTick ticks (QEMU -icount shift={self.icount}: instruction-based, not cycles)"
            if self.icount is not None else "SysTick ticks (QEMU: wall-clock time, not cycles)")
        self.plugin = opts.plugin  # set_plugin() changes these for the next start
        self.plugin_args = opts.plugin_args
        self.elf: Path | None = None
        self.image: FirmwareImage | None = None
        self.port: int | None = None
        self.gdb_port: int | None = None
        self.flash_log = ""
        self._image_override: FirmwareImage | None = None
        self._child: ChildProcess | None = None
        self._last_child: ChildProcess | None = None  # kept for diagnostics() after close()
        self._last_log: Path | None = None
        self._transport: Transport | None = None

    # -- Target API -----------------------------------------------------------------------

    def start(self) -> Transport:
        if self._child is not None:
            raise RigError(f"{self.describe()}: already started; close() it first")
        qemu = find_qemu()
        gdb = find_gdb() if self.flash_mode == "gdb" else None
        self._resolve_image()
        try:
            for _ in range(_PORT_ATTEMPTS):
                try:
                    transport = self._launch(qemu)
                    self._transport = transport
                    break
                except _PortTaken:
                    self._stop_child()
            else:
                raise TargetUnavailable(f"{self.describe()}: no free loopback port after "
                                        f"{_PORT_ATTEMPTS} attempts")
            if gdb is not None:
                self._gdb(gdb, ["load", "compare-sections", "monitor system_reset"])
            self._await_boot(transport)
        except BaseException:
            self.close()
            raise
        return transport

    def reset(self) -> Transport:
        if self.flash_mode == "gdb" and self._alive() and self._transport is not None:
            self._gdb(find_gdb(), ["monitor system_reset"])
            self._await_boot(self._transport)
            return self._transport
        self.close()
        return self.start()

    def close(self) -> None:
        # Stop QEMU first: a guest writer blocked on a closed socket would otherwise hang.
        self._stop_child()
        if self._transport is not None:
            _close_fast(self._transport)
            self._transport = None

    def expected_firmware(self) -> FirmwareImage | None:
        return self.image

    def flash(self, image: FirmwareImage | None = None,
              progress: Callable[[float], None] | None = None, *,
              if_needed: bool = False) -> FlashReport:
        """`Flashable`: start an empty, halted machine, load `image` (None: the board's
        prebuilt one) through the gdbstub, compare-sections, reset. From now on this target
        uses the gdb path (`reset()` keeps the flashed image). QEMU has no persistent flash,
        so `if_needed` changes nothing; `progress` only hears 1.0 at the end."""
        self.close()
        self.flash_mode = "gdb"
        if image is not None:
            self._image_override = image
        transport = self.start()
        if progress is not None:
            progress(1.0)
        return FlashReport(True, tuple(self.flash_log.splitlines()), transport)

    def firmware_path(self) -> Path:
        """The ELF this target boots (resolved now if it has not started yet)."""
        if self.elf is None:
            self._resolve_image()
        assert self.elf is not None
        return self.elf

    def set_plugin(self, path: str | Path | None, args: tuple[str, ...] = ()) -> None:
        """Load a TCG plugin (`-plugin path,arg,...`) from the next start on; None: none."""
        if any("," in a for a in args):
            raise ConfigError(f"target {self.name!r}: plugin arguments may not contain ','")
        self.plugin = None if path is None else str(path)
        self.plugin_args = tuple(args)

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    @property
    def log_path(self) -> Path | None:
        return self._child.log_path if self._child else self._last_log

    def describe(self) -> str:
        return f"qemu:{self.name} ({self.machine}, {self.elf or 'prebuilt image'})"

    def exit_status(self) -> str | None:
        child = self._child
        if child is None or child.poll() is None:
            return None
        return f"exit status {child.poll()}: {child.describe_exit()}"

    def diagnostics(self) -> str:
        child = self._child or self._last_child
        if child is None:
            return f"{self.describe()}: not started"
        lines = [f"{self.describe()}: pid {child.pid}, {child.describe_exit()}",
                 f"command: {' '.join(child.cmd)}", f"log: {child.log_path}"]
        fatal = [ln for ln in child.log_text().splitlines() if "fatal" in ln or "rror" in ln]
        if fatal:  # QEMU's own verdict, which a long register dump would push out of the tail
            lines.append("QEMU said: " + " | ".join(fatal[:5]))
        tail = child.log_tail()
        if tail:
            lines.append("log tail:\n" + tail)
        if self.flash_log:
            lines.append("gdb flash:\n" + self.flash_log)
        return "\n".join(lines)

    # -- internals ------------------------------------------------------------------------

    def _resolve_image(self) -> None:
        if self._image_override is not None:
            self.image, self.elf = self._image_override, self._image_override.path
            return
        explicit = self.options.elf
        if explicit:
            self.elf = Path(explicit)
            if not self.elf.is_file():
                raise FirmwareNotFound(f"{self.describe()}: firmware image {self.elf} not found")
            return
        if self.board is None:
            raise ConfigError(f"target {self.name!r}: give an elf: or a board: to take the "
                              "prebuilt image from")
        self.image = image_for(self.board.firmware)
        if self.image.qemu_machine and self.image.qemu_machine != self.machine:
            raise FirmwareMismatch(
                f"{self.describe()}: the prebuilt image {self.image.path} is for QEMU machine "
                f"{self.image.qemu_machine!r}, but the target runs {self.machine!r}; fix the "
                "target's machine: or the board's firmware: in lab_config.yaml")
        self.elf = self.image.path

    def _command(self, qemu: str) -> list[str]:
        assert self.elf is not None and self.port is not None
        cmd = [qemu, "-M", self.machine, "-nographic", "-monitor", "none",
               "-serial", f"tcp:127.0.0.1:{self.port},server=on,wait=on,nodelay=on",
               "-semihosting-config", "enable=on,target=native"]
        if self.flash_mode == "gdb":
            cmd += ["-S", "-gdb", f"tcp:127.0.0.1:{self.gdb_port}"]
        else:
            cmd += ["-kernel", str(self.elf), "-no-reboot"]
        if self.icount is not None:
            cmd += ["-icount", f"shift={self.icount},align=off"]
        if self.plugin:
            cmd += ["-plugin", ",".join((self.plugin, *self.plugin_args))]
        return cmd + list(self.options.extra_args)

    def _log_file(self) -> Path:
        base = Path(self.options.log_dir) if self.options.log_dir else default_log_dir()
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)
        return base / f"qemu-{safe}-{id(self):x}.log"

    def _launch(self, qemu: str) -> Transport:
        self.port = free_port()
        self.gdb_port = free_port() if self.flash_mode == "gdb" else None
        cmd = self._command(qemu)
        self._child = ChildProcess(cmd, self._log_file())
        self._last_child, self._last_log = self._child, self._child.log_path
        url = f"socket://127.0.0.1:{self.port}"
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self._child.poll() is not None:
                if "Address already in use" in self._child.log_text():
                    raise _PortTaken
                raise TargetUnavailable(f"QEMU exited before the guest ran: "
                                        f"{self.diagnostics()}")
            try:
                return SerialTransport(url, open_timeout=0)
            except LinkError as exc:
                if time.monotonic() >= deadline:
                    raise TargetUnavailable(
                        f"QEMU did not listen on {url} within {self.start_timeout_s:g} s "
                        f"({exc}): {self.diagnostics()}") from exc
            time.sleep(0.005)

    def _await_boot(self, transport: Transport, limit_s: float = 1.0) -> None:
        """Wait, without reading, until the guest sends its first byte (the firmware's boot
        line, sent once its UART is on). QEMU's STM32 USART (netduinoplus2) drops input
        while CR1.UE/RE are still clear, so a request sent the moment the socket connects
        is lost and costs a retransmission timeout; the CMSDK and nRF51 UARTs hold it.
        An image that prints nothing at boot only costs `limit_s`."""
        port = getattr(transport, "_port", None)
        deadline = time.monotonic() + limit_s
        while port is not None and time.monotonic() < deadline:
            try:
                if port.in_waiting:
                    return
            except (OSError, ValueError, serial.SerialException):
                return
            if self._child is None or self._child.poll() is not None:
                return
            time.sleep(0.002)

    def _alive(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def _gdb(self, gdb: str, commands: list[str]) -> None:
        try:
            self.flash_log = run_gdb(f"127.0.0.1:{self.gdb_port}", str(self.elf), commands,
                                     where=self.describe(), gdb=gdb)
        except TargetUnavailable as exc:
            raise TargetUnavailable(f"{exc}\n{self.diagnostics()}") from exc

    def _stop_child(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._child = None
