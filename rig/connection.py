"""Bring-up: start a target, say HELLO, check the firmware; a `Connection` holds the result.

The faces (CLI, pytest plugin, profiler) connect through here; `rig.session` only needs the
connected `Device`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rig.device import Device
from rig.errors import RigError
from rig.firmware import check_hello
from rig.link.link import Link, TrafficEvent
from rig.link.transport import Transport
from rig.protocol import HelloInfo
from rig.targets.base import Target


@dataclass
class Connection:
    """A started target, its link and the device client after a checked HELLO."""

    target: Target
    device: Device
    hello: HelloInfo

    def close(self) -> None:
        try:
            self.device.link.transport.close()
        finally:
            self.target.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(target: Target, *, timeout: float = 2.0, retries: int = 3,
            log: Callable[[TrafficEvent], None] | None = None,
            check_firmware: bool = True, started: Transport | None = None) -> Connection:
    """Start `target` (or use `started`, the transport of a target already started, e.g.
    by `Flashable.flash`), say HELLO and check that it runs the firmware the manifest names.

    On any failure the target is closed again and the error carries the target's
    diagnostics (emulator exit status, stderr tail)."""
    try:
        transport = started if started is not None else target.start()
        device = Device(Link(transport, timeout=timeout, retries=retries, log=log))
        hello = device.hello()
        target.observe_hello(hello)
        image = target.expected_firmware()
        if check_firmware and image is not None:
            check_hello(hello, image, where=target.describe())
    except BaseException as exc:
        diag = target.diagnostics()
        target.close()
        if diag and isinstance(exc, RigError):
            exc.add_note(_diagnostics_note(target, str(exc), diag))
        raise
    return Connection(target, device, hello)


def _diagnostics_note(target: Target, message: str, diag: str) -> str:
    """The target's diagnostics as a note, naming the target only if the message does not
    (targets' diagnostics begin with `describe()`, and so do most of their errors)."""
    name = target.describe()
    rest = diag[len(name):].lstrip(": ") if diag.startswith(name) else diag
    return f"diagnostics: {rest}" if name in message else f"{name}: {rest}"
