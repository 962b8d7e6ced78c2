"""Bring-up: start a target, say HELLO, check the firmware; a `Connection` holds the result.

The faces (CLI, pytest plugin, profiler) connect through here; `rig.session` only needs the
connected `Device`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from rig.device import Device, Timing
from rig.errors import RigError
from rig.firmware import check_hello
from rig.link.faults import FaultSpec, FaultyTransport
from rig.link.link import Link, TrafficEvent
from rig.link.policy import LinkPolicy
from rig.link.transport import Transport
from rig.link_rate import RateResult, negotiate, switch
from rig.protocol import HelloInfo
from rig.targets.base import Target


@dataclass
class Connection:
    """A started target, its link and the device client after a checked HELLO."""

    target: Target
    device: Device
    hello: HelloInfo
    #: the link-rate negotiation after HELLO (None: the target keeps its rate)
    rate: RateResult | None = None

    def close(self) -> None:
        # A board that keeps running expects the next session at its boot rate.
        if self.rate is not None and self.rate.switched and self.target.hardware:
            with contextlib.suppress(RigError):
                switch(self.device, self.rate.previous)
        # The target first: it closes the transport it started its own way (QEMU: stop the
        # emulator, then drop the socket without pyserial's 0.3 s close sleep); closing
        # an already closed transport afterwards is a no-op.
        try:
            self.target.close()
        finally:
            self.device.link.transport.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(target: Target, *, timeout: float = 2.0, retries: int | None = None,
            log: Callable[[TrafficEvent], None] | None = None,
            check_firmware: bool = True, started: Transport | None = None,
            policy: LinkPolicy | None = None, faults: FaultSpec | None = None,
            negotiate_rate: bool = True) -> Connection:
    """Start `target` (or use `started`, the transport of a target already started, e.g.
    by `Flashable.flash`), say HELLO and check that it runs the firmware the manifest names.

    `retries`/`policy`: the link's recovery settings (default `LinkPolicy()`). `faults`:
    put a fault-injecting transport (`rig.link.faults`) between the link and the target.
    `negotiate_rate`: after HELLO, switch the link to the fastest rate both ends support up
    to the target's `link_max_baud` (`link_rate: negotiate`, the default; rig.link_rate).

    On any failure the target is closed again and the error carries the target's
    diagnostics (emulator exit status, stderr tail)."""
    try:
        transport = started if started is not None else target.start()
        if faults is not None:
            transport = FaultyTransport(transport, faults)
        # `timeout` (lab_config defaults.timeout_s) is the fixed part of every request's
        # response timeout; the device client adds time for the bytes and arithmetic.
        device = Device(Link(transport, timeout=timeout, retries=retries, log=log,
                             policy=policy), Timing(base=timeout))
        device.counter_label = target.device_counter_label
        hello = device.hello()
        target.observe_hello(hello)
        image = target.expected_firmware()
        if check_firmware and image is not None:
            check_hello(hello, image, where=target.describe())
        max_baud = target.max_link_baud() if negotiate_rate else 0
        rate = negotiate(device, max_baud) if max_baud else None
    except BaseException as exc:
        diag = target.diagnostics()
        target.close()
        if diag and isinstance(exc, RigError):
            exc.add_note(_diagnostics_note(target, str(exc), diag))
        raise
    return Connection(target, device, hello, rate)


def _diagnostics_note(target: Target, message: str, diag: str) -> str:
    """The target's diagnostics as a note, naming the target only if the message does not
    (targets' diagnostics begin with `describe()`, and so do most of their errors)."""
    name = target.describe()
    rest = diag[len(name):].lstrip(": ") if diag.startswith(name) else diag
    return f"diagnostics: {rest}" if name in message else f"{name}: {rest}"
