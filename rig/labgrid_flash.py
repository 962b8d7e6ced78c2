"""Flashing a labgrid place over the GDB remote protocol — the client half of what tinyrig
registers with labgrid (the exporter half is rig.labgrid_exporter).

The exporter host runs a GDB server for the board — `pyocd gdbserver` on the board's
debug probe (started while the place is acquired, as labgrid starts ser2net for a serial
port), or an emulator's own gdbstub — and exports it as a `RigNetworkGdbServer` resource
(host, port, flavor). `RigGdbFlashDriver`, a labgrid driver (BootstrapProtocol) bound to
that resource, loads an ELF through it with the rig's GDB client (rig.gdb_remote): load,
verify (compare-sections), reset, run. The client host needs gdb-multiarch and TCP access
to the exporter's port; no SSH and no pyocd on the client.

Importing this module registers both classes with labgrid's `target_factory`, so a labgrid
environment (or `labgrid-client` with `-c`/`--lg-env`) can use them too:

    targets:
      main:
        resources:
          RemotePlace: {name: nucleo-1}
        drivers:
          RigGdbFlashDriver: {}
    imports: [rig.labgrid_flash]

Why not labgrid's own flashing drivers: labgrid 26.0.1 ships no PyOCDDriver, and its
OpenOCDDriver runs the tool on the exporter through SSH; the GDB remote protocol needs
only a port (like ser2net's) and the same client reaches QEMU's gdbstub, so the loopback
farm exercises the very path a real board takes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import BootstrapProtocol
from labgrid.resource.common import NetworkResource
from labgrid.util.proxy import proxymanager

from rig.errors import TargetUnavailable
from rig.gdb_remote import FLAVORS, flash_commands, flavor, run_gdb

#: the resource class a place's GDB server is exported as (client side)
GDB_SERVER_CLASS = "RigNetworkGdbServer"


@target_factory.reg_resource
@attr.s(eq=False)
class RigNetworkGdbServer(NetworkResource):
    """A GDB remote server on an exporter host. `port` is None while the exporter has
    not started it (the place is not acquired, or its probe is missing); `flavor` says how
    to halt and reset through it (rig.gdb_remote.FLAVORS); `device` names what it serves
    (a probe's unique id, an emulator), for messages."""

    port = attr.ib(default=None, validator=attr.validators.optional(
        attr.validators.instance_of(int)))
    flavor = attr.ib(default="qemu", validator=attr.validators.in_(sorted(FLAVORS)))
    device = attr.ib(default="", validator=attr.validators.instance_of(str))


@target_factory.reg_driver
@attr.s(eq=False)
class RigGdbFlashDriver(Driver, BootstrapProtocol):
    """Load an ELF through the place's RigNetworkGdbServer: load, compare-sections, reset.
    `load()` returns gdb's output (the sections written and their verdicts)."""

    bindings = {"server": GDB_SERVER_CLASS}
    timeout_s = attr.ib(default=120.0, validator=attr.validators.instance_of(float))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.server: RigNetworkGdbServer  # bound by labgrid

    def _where(self) -> str:
        s = self.server
        return (f"labgrid place {self.target.name} ({s.flavor} GDB server"
                + (f" for {s.device}" if s.device else "") + f" on {s.host})")

    @Driver.check_active
    def load(self, filename: str | Path) -> str:
        s = self.server
        if s.port is None:
            raise TargetUnavailable(f"{self._where()}: the exporter has not started the GDB "
                                    "server (is the place acquired, the probe connected?)")
        # labgrid's way to a resource's port: direct, or an SSH forward when the exporter
        # is isolated (`labgrid-exporter --isolated`) or a proxy is configured
        host, port = proxymanager.get_host_and_port(s)
        return run_gdb(f"{host}:{port}", filename, flash_commands(s.flavor),
                       where=self._where(),
                       timeout_s=self.timeout_s,
                       connect_timeout_s=flavor(s.flavor).connect_timeout_s)


@contextlib.contextmanager
def place_target(session: Any, loop: Any, place: str) -> Iterator[Any]:
    """A labgrid Target for an acquired `place`, its resources expanded by labgrid's
    RemotePlace through `session` (a ClientSession whose identity holds the place, as
    labgrid-client does for its own commands). Its resources are dropped afterwards, so a
    long test session does not accumulate them in labgrid's process-wide manager."""
    from labgrid.resource.remote import RemotePlace, RemotePlaceManager
    from labgrid.target import Target as LgTarget

    manager = RemotePlaceManager.get()
    manager.session, manager.loop = session, loop
    target = LgTarget(place)
    try:
        RemotePlace(target, name=place)
        yield target
    finally:
        with contextlib.suppress(Exception):
            target.deactivate_all_drivers()
        mine = set(target.resources)
        manager.resources = [r for r in manager.resources if r not in mine]
        manager.unmanaged_resources = [r for r in manager.unmanaged_resources
                                       if r.target is not target]


def flash_place(session: Any, loop: Any, place: str, elf: Path, timeout_s: float = 30.0
                ) -> str:
    """Flash `elf` onto the acquired `place` with RigGdbFlashDriver; gdb's output."""
    from labgrid.exceptions import NoResourceFoundError

    with place_target(session, loop, place) as target:
        driver = RigGdbFlashDriver(target, name=None)  # type: ignore[call-arg]  # labgrid's base
        try:
            target.await_resources([driver.server], timeout=timeout_s)
        except NoResourceFoundError as exc:
            raise TargetUnavailable(
                f"labgrid place {place}: its {GDB_SERVER_CLASS} did not become available "
                f"within {timeout_s:g} s ({exc}); on the exporter, is the probe "
                f"{driver.server.device or ''} connected?") from exc
        target.activate(driver)
        return driver.load(elf)
