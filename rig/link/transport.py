"""Byte transports: the lowest layer. A transport moves bytes and knows nothing of frames.

`SerialTransport(url)` accepts every pyserial URL (`/dev/ttyACM0`, `socket://host:port`,
`rfc2217://host:port`, `loop://`). Targets that own a process (the native firmware) make a
`PipeTransport` themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from typing import Protocol

import serial

from rig.errors import LinkError


class Transport(Protocol):
    """What the link layer needs from a wire."""

    name: str

    def write(self, data: bytes) -> None: ...

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Return 1..max_bytes bytes, or b"" when nothing arrived within `timeout` s.
        Raises LinkError when the other end is gone."""
        ...

    def close(self) -> None: ...


#: the firmware's UART speed on every board (firmware/boards/*); the lab file's
#: `defaults.baudrate` starts from it
DEFAULT_BAUDRATE = 115200
#: after HELLO the link switches to the fastest rate both ends support, up to this
#: (rig.link_rate; the lab's `defaults.link_rate: fixed` keeps DEFAULT_BAUDRATE)
DEFAULT_BAUD_POLICY = "negotiate"
DEFAULT_MAX_BAUD = 2_000_000


class SerialTransport:
    """A pyserial port (real UART, QEMU socket, RFC 2217)."""

    def __init__(self, url: str, baudrate: int = DEFAULT_BAUDRATE,
                 open_timeout: float = 5.0) -> None:
        self.name = url
        deadline = time.monotonic() + open_timeout
        last: Exception | None = None
        # pyserial's RFC 2217 client raises NotImplementedError for a write timeout
        self._rfc2217 = url.lower().startswith("rfc2217://")
        wt = {} if self._rfc2217 else {"write_timeout": 10}
        while True:
            try:
                self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0,
                                                   exclusive=True, **wt)
                break
            except TypeError:  # URL handlers that do not take `exclusive`
                self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0, **wt)
                break
            except (serial.SerialException, OSError) as exc:
                last = exc
                if time.monotonic() >= deadline:
                    raise LinkError(f"cannot open serial port {url}: {exc}") from exc
                time.sleep(0.05)
        del last

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"write to {self.name} failed: {exc}") from exc

    def set_baudrate(self, baud: int) -> None:
        """The host side of a link-rate switch (rig.link_rate). A real or RFC 2217 port
        changes its rate; pyserial's socket:// port (QEMU) has none and ignores it."""
        try:
            self._port.baudrate = baud
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"{self.name}: cannot set {baud} baud: {exc}") from exc

    def read(self, max_bytes: int, timeout: float) -> bytes:
        self._set_timeout(timeout)
        try:
            first = self._port.read(1)
            if not first:
                return b""
            # Only what is already there: pyserial's socket:// read raises "socket
            # disconnected" at EOF and drops the bytes it had read in that call, so asking
            # for more than is buffered loses the last frame a dying peer sent (a FAULT
            # frame before QEMU exits). The EOF then surfaces on the next read.
            more = min(max_bytes - 1, self._buffered())
            rest = self._port.read(more) if more > 0 else b""
            return first + rest
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"read from {self.name} failed: {exc}") from exc

    def _set_timeout(self, timeout: float) -> None:
        if self._rfc2217:
            # pyserial's `timeout` setter reconfigures the port, which over RFC 2217 is a
            # negotiation round trip with the server (baud, size, parity, stop bits) on
            # every read; its read() only consults `_timeout`.
            self._port._timeout = timeout
        else:
            self._port.timeout = timeout

    def _buffered(self) -> int:
        """Bytes readable now without blocking (FIONREAD; in_waiting where no fd)."""
        try:
            fd = self._port.fileno()
            raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
            return int(struct.unpack("i", raw)[0])
        except (AttributeError, OSError, ValueError, serial.SerialException):
            return int(self._port.in_waiting)

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()


class PipeTransport:
    """stdin/stdout of a child process (the natively compiled firmware)."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str) -> None:
        if proc.stdin is None or proc.stdout is None:
            raise LinkError(f"{name}: process has no pipes")
        self.name = name
        self._proc = proc
        self._out = proc.stdout.fileno()
        os.set_blocking(self._out, False)

    def write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise LinkError(f"{self.name}: process gone (exit {self._proc.poll()})") from exc

    def read(self, max_bytes: int, timeout: float) -> bytes:
        ready, _, _ = select.select([self._out], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self._out, max_bytes)
        except BlockingIOError:
            return b""
        if not data:
            raise LinkError(f"{self.name}: process closed its output (exit {self._proc.poll()})")
        return data

    def close(self) -> None:
        for f in (self._proc.stdin, self._proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass

