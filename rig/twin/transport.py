"""The twin as a rig `Transport`: the link writes bytes into the twin's UART receiver and
reads what the firmware sent, exactly as it does over QEMU's socket or a board's VCP.

In-process and synchronous: the firmware runs only inside `read`, until it has sent
something, waits for the host, halts, or has used up the read's `timeout` in *device*
time (timeout x the board's clock, one instruction per cycle). A firmware that waits for
the host (WFI, or polling an empty receiver) or halts makes `read` block for the rest of
the timeout, as a silent wire does, instead of spinning. `wall_factor` caps the wall-clock
time of one read at that many times its timeout (the twin is slower than silicon).
"""

from __future__ import annotations

import time

from rig.errors import LinkError
from rig.twin.machine import TwinMachine


class TwinTransport:
    def __init__(self, machine: TwinMachine, name: str, clock_hz: int,
                 wall_factor: float = 10.0) -> None:
        self.machine = machine
        self.name = name
        self.clock_hz = clock_hz
        self.wall_factor = wall_factor
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._closed:
            raise LinkError(f"{self.name}: closed")
        self.machine.feed(bytes(data))

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self._closed:
            raise LinkError(f"{self.name}: closed")
        m = self.machine
        start = time.monotonic()
        if not m.tx:
            budget = m.insns + int(timeout * self.clock_hz)
            reason = m.run(start + max(timeout, 0.001) * self.wall_factor, until_tx=True,
                           until_insns=budget)
            if not m.tx and reason in ("idle", "halted"):
                time.sleep(max(0.0, start + timeout - time.monotonic()))
        out = bytes(m.tx[:max_bytes])
        del m.tx[:max_bytes]
        return out

    def close(self) -> None:
        self._closed = True
