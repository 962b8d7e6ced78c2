"""A pseudo-terminal whose far end is a simulated instrument running on a thread.

The adapter opens `server.port` (the pty's slave path) with pyserial exactly as it would
open /dev/ttyACM0, so every byte goes through a real tty. The master side is non-blocking:
if the adapter stops reading, the simulator drops output after a bounded wait instead of
blocking its thread forever (a stuck simulator would hang the test that owns it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import threading
import time
import tty


class PtyServer:
    name = "sim"

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: bytes are bytes
        fl = fcntl.fcntl(self._master, fcntl.F_GETFL)
        fcntl.fcntl(self._master, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.name}", daemon=True)
        self.rx_log = bytearray()  # everything the adapter sent, for assertions
        self.dropped_bytes = 0

    def __enter__(self) -> PtyServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- for subclasses ------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> None:
        """Bytes from the adapter."""

    def tick(self, now: float) -> None:
        """Called every loop (~1 ms): emit whatever is due."""

    def send(self, data: bytes, max_wait_s: float = 0.5) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + max_wait_s
        while view:
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline or self._stop.is_set():
                    self.dropped_bytes += len(view)
                    return
                select.select([], [self._master], [], 0.005)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return
                raise

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._master], [], [], 0.001)
            except (OSError, ValueError):
                return
            if r:
                try:
                    data = os.read(self._master, 4096)
                except BlockingIOError:
                    data = b""
                except OSError:
                    return
                if data:
                    self.rx_log += data
                    self.on_bytes(data)
            self.tick(time.monotonic())
