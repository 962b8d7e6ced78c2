"""The firmware's portable C core compiled for the host, run as a child process that
speaks the protocol on stdin/stdout. Same protocol code, same training code as on the
MCU, at host speed: the fast way to test everything above the wire."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rig.config import Board
from rig.errors import LinkError, RigError, TargetUnavailable
from rig.firmware import FirmwareImage, native_binary, source_hash
from rig.link.transport import PipeTransport, Transport
from rig.target_options import NativeOptions
from rig.targets.base import ChildProcess, Target, default_log_dir, register_target

NATIVE_BOARD = "native"  # what the host firmware reports in HELLO


@register_target
class NativeTarget(Target):
    """Options: `binary` (default: build firmware/build/native/tinyrig_fw on demand),
    `args`, `log_dir`, `board` (a `Board`)."""

    kind = "native"
    counter_label = "none (host)"

    options_type = NativeOptions
    options: NativeOptions

    def __init__(self, name: str, options: NativeOptions | Mapping[str, Any] | None = None,
                 board: Board | None = None) -> None:
        super().__init__(name, options, board)
        self.binary = Path(self.options.binary) if self.options.binary else None
        self._child: ChildProcess | None = None
        self._last_child: ChildProcess | None = None
        self._transport: PipeTransport | None = None

    def start(self) -> Transport:
        if self._child is not None:
            raise RigError(f"{self.describe()}: already started; close() it first")
        if self.binary is None:
            self.binary = native_binary()
        if not self.binary.is_file():
            raise TargetUnavailable(f"{self.describe()}: {self.binary} does not exist")
        cmd = [str(self.binary), *self.options.args]
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)
        log_dir = Path(self.options.log_dir) if self.options.log_dir else default_log_dir()
        try:
            self._child = ChildProcess(cmd, log_dir / f"native-{safe}-{id(self):x}.log",
                                       pipes=True)
        except OSError as exc:
            raise TargetUnavailable(f"{self.describe()}: cannot run {self.binary}: {exc}"
                                    ) from exc
        self._last_child = self._child
        try:
            self._transport = PipeTransport(self._child.proc, f"native:{self.name}")
        except LinkError:
            self.close()
            raise
        return self._transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()  # EOF on stdin: the firmware's "power off"
            self._transport = None
        if self._child is not None:
            self._child.stop()
            self._child = None

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    def expected_firmware(self) -> FirmwareImage | None:
        """Built from the sources in this checkout, so those define the expected hash."""
        digest = source_hash()
        if digest is None or self.binary is None:
            return None
        return FirmwareImage(board=NATIVE_BOARD, file=self.binary.name, path=self.binary,
                             sha256="", source_hash=digest)

    def describe(self) -> str:
        return f"native:{self.name} ({self.binary or 'firmware/build/native/tinyrig_fw'})"

    def exit_status(self) -> str | None:
        child = self._child
        if child is None or child.poll() is None:
            return None
        return f"exit status {child.poll()}: {child.describe_exit()}"

    def diagnostics(self) -> str:
        child = self._child or self._last_child
        if child is None:
            return f"{self.describe()}: not started"
        tail = child.log_tail()
        return (f"{self.describe()}: pid {child.pid}, {child.describe_exit()}"
                + (f"\nstderr tail:\n{tail}" if tail else ""))
