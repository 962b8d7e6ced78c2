"""A device that is already running the firmware, reached at a pyserial URL: a local UART
(`/dev/ttyACM0`), a remote one (`rfc2217://host:port`, e.g. ser2net) or an emulator
someone else started (`socket://host:port`). The rig does not flash it.

`reset()` only reopens the port: the protocol's RESET message (the device client's job)
resets the firmware's state. Reopening also recovers a USB CDC port that re-enumerated.
From start to close the port is locked against other processes (rig.locks).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rig.config import Board
from rig.errors import FirmwareMismatch, LinkError, RigError, TargetUnavailable
from rig.firmware import FirmwareImage, FirmwareNotFound, image_for
from rig.link.transport import SerialTransport, Transport
from rig.locks import TargetLocks, port_resource
from rig.protocol import HelloInfo
from rig.target_options import SerialOptions
from rig.targets.base import Target, register_target


@register_target
class SerialTarget(Target):
    """Options: `port` (pyserial URL, required), `baudrate` (default 115200), `board` (a
    `Board`: names the expected firmware), `open_timeout_s`, `reset` (none)."""

    kind = "serial"
    hardware = True

    options_type = SerialOptions
    options: SerialOptions

    def __init__(self, name: str, options: SerialOptions | Mapping[str, Any] | None = None,
                 board: Board | None = None) -> None:
        super().__init__(name, options, board)
        self.port = self.options.port
        self.baudrate = self.options.baudrate
        self.open_timeout_s = self.options.open_timeout_s
        if self.board is not None:
            self.counter_label = self.board.counter_label
        self._transport: Transport | None = None
        self._last_error = ""
        self.locks = TargetLocks.for_target(self.describe(), self.options)

    def observe_hello(self, hello: HelloInfo) -> None:
        # The board says what its silicon counts; the device on this port (maybe QEMU
        # serving a socket) says what it actually counts, and that labels the figures.
        self.counter_label = hello.counter_label

    def start(self) -> Transport:
        if self._transport is not None:
            raise RigError(f"{self.describe()}: already started; close() it first")
        self.locks.take(port_resource(self.port))
        try:
            self._transport = SerialTransport(self.port, baudrate=self.baudrate,
                                              open_timeout=self.open_timeout_s)
        except LinkError as exc:
            self._last_error = str(exc)
            self.locks.release_all()
            raise TargetUnavailable(f"{self.describe()}: {exc}") from exc
        return self._transport

    def reset(self) -> Transport:
        if self._transport is not None:  # keep the lock: reopen only
            self._transport.close()
            self._transport = None
        return self.start()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.locks.release_all()

    def unavailable_reason(self) -> str | None:
        # Network URLs cannot be probed without taking the (often single-client) port.
        if "://" not in self.port and not Path(self.port).exists():
            return f"{self.port} does not exist (board unplugged?)"
        return None

    def expected_firmware(self) -> FirmwareImage | None:
        if self.board is None:
            return None
        try:  # the file need not be here: only its identity (board, build hash) matters
            return image_for(self.board.firmware, verify=False)
        except (FirmwareNotFound, FirmwareMismatch):
            return None

    def describe(self) -> str:
        return f"serial:{self.name} ({self.port} @ {self.baudrate})"

    def diagnostics(self) -> str:
        state = "open" if self._transport is not None else "closed"
        extra = f"; last error: {self._last_error}" if self._last_error else ""
        return f"{self.describe()}: port {state}{extra}"
