"""labgrid's exporter with tinyrig's export classes: a board's GDB server as a place
resource (the client half, flashing through it, is rig.labgrid_flash).

    python -m rig.labgrid_exporter [labgrid-exporter options] exporter.yaml

registers the classes below in labgrid's exporter and then runs labgrid's own exporter
(same options, same coordinator protocol). Resource entries it adds to an exporter file:

    nucleo-1:
      USBSerialPort: {match: {ID_SERIAL_SHORT: "0669FF..."}}
      RigPyOCDGdbServer: {probe: "0669FF...", pyocd_target: stm32f429xi}
    qemu-1:
      RawSerialPort: {port: /dev/pts/5}
      RigGdbStub: {port: 40123, flavor: qemu}

- `RigPyOCDGdbServer` (a real board): available while pyocd sees the probe; while the
  place is acquired the exporter runs `pyocd gdbserver` on it, on a free port open to the
  network (`--allow-remote`), and stops it on release — as labgrid runs ser2net for a
  serial port. Options: `probe` (unique id), `pyocd_target`, `frequency` (Hz), `args`.
- `RigGdbStub`: a GDB server that already runs on this host (an emulator's gdbstub, such
  as QEMU's `-gdb tcp::PORT`); `flavor` says how to reset through it.
Both are exported as `RigNetworkGdbServer` (host, port, flavor, device).
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import attr
from labgrid.remote import exporter as lg_exporter
from labgrid.remote.exporter import ExporterError, ResourceExport
from labgrid.resource.common import Resource
from labgrid.util.helper import get_free_port

from rig.gdb_remote import FLAVORS
from rig.labgrid_flash import GDB_SERVER_CLASS

#: how often the exporter asks pyocd whether a probe is attached (USB enumeration)
PROBE_POLL_S = 2.0
#: a pyocd gdbserver that exits within this time did not start (bad target type, ...)
START_CHECK_S = 0.5


@attr.s(eq=False)
class RigGdbStub(Resource):
    """A GDB server already listening on this host (an emulator's gdbstub)."""

    port = attr.ib(validator=attr.validators.instance_of(int))
    flavor = attr.ib(default="qemu", validator=attr.validators.in_(sorted(FLAVORS)))
    device = attr.ib(default="", validator=attr.validators.instance_of(str))


@attr.s(eq=False)
class RigPyOCDProbe(Resource):
    """A debug probe on this host, by pyocd unique id; available while pyocd lists it."""

    probe = attr.ib(validator=attr.validators.instance_of(str))
    pyocd_target = attr.ib(validator=attr.validators.instance_of(str))
    frequency = attr.ib(default=None, validator=attr.validators.optional(
        attr.validators.instance_of(int)))
    args: list[str] = attr.ib(default=attr.Factory(list),
                              validator=attr.validators.instance_of(list))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.avail = False
        self.in_use = False  # our gdbserver holds the probe: do not enumerate it
        self._checked = float("-inf")

    def poll(self) -> None:
        now = time.monotonic()
        if self.in_use or now - self._checked < PROBE_POLL_S:
            return
        self._checked = now
        from rig.targets.pyocd import connected_probes

        try:
            probes = connected_probes(max_age_s=0.0)
        except Exception:  # noqa: BLE001 - no pyocd/USB here: the probe is not available
            probes = []
        self.avail = any(getattr(p, "unique_id", None) == self.probe for p in probes)


@attr.s(eq=False)
class GdbStubExport(ResourceExport):
    """Exports a RigGdbStub as RigNetworkGdbServer at this exporter's host name."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.local = RigGdbStub(target=None, name=None,  # type: ignore[call-arg]
                                **self.local_params)
        self.data["cls"] = GDB_SERVER_CLASS

    def _get_params(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.local.port, "flavor": self.local.flavor,
                "device": self.local.device}


@attr.s(eq=False)
class PyOCDGdbServerExport(ResourceExport):
    """Runs `pyocd gdbserver` on the probe while the place is acquired."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.local = RigPyOCDProbe(target=None, name=None,  # type: ignore[call-arg]
                                   **self.local_params)
        self.data["cls"] = GDB_SERVER_CLASS
        self.child: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    def __del__(self) -> None:
        if getattr(self, "child", None) is not None:
            self.stop()

    def command(self, port: int) -> list[str]:
        """The gdbserver's command line: this probe and target, `port` on every interface
        (clients are on other hosts), kept running across gdb sessions."""
        p = self.local
        cmd = [sys.executable, "-m", "pyocd", "gdbserver", "--uid", p.probe,
               "--target", p.pyocd_target, "--port", str(port), "--allow-remote",
               "--persist"]
        if p.frequency is not None:
            cmd += ["--frequency", str(p.frequency)]
        return cmd + [str(a) for a in p.args]

    def _get_start_params(self) -> dict[str, Any]:
        return {"probe": self.local.probe}

    def _get_params(self) -> dict[str, Any]:
        """`port` only while the gdbserver runs: a dead one (crash, probe unplugged) is
        no port, which the client's driver reports instead of waiting for it."""
        running = self.child is not None and self.child.poll() is None
        return {"host": self.host, "port": self.port if running else None, "flavor": "pyocd",
                "device": f"probe {self.local.probe} ({self.local.pyocd_target})"}

    def _start(self, start_params: dict[str, Any]) -> None:
        assert self.child is None
        self.port = get_free_port()
        cmd = self.command(self.port)
        self.logger.info("starting pyocd gdbserver: %s", " ".join(cmd))
        self.local.in_use = True
        self.child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        try:
            code = self.child.wait(timeout=START_CHECK_S)
        except subprocess.TimeoutExpired:
            return  # running: pyocd opens the port once it has the probe
        self.child, self.port, self.local.in_use = None, None, False
        raise ExporterError(f"pyocd gdbserver for probe {start_params['probe']} exited at "
                            f"once (exit {code}); see the exporter's log")

    def _stop(self, start_params: dict[str, Any]) -> None:
        child, self.child, self.port = self.child, None, None
        self.local.in_use = False
        if child is None:
            return
        child.terminate()
        try:
            child.wait(5.0)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(2.0)
        self.logger.info("stopped pyocd gdbserver for probe %s", start_params["probe"])


#: exporter-file class name -> export class
EXPORTS: dict[str, type[ResourceExport]] = {
    "RigGdbStub": GdbStubExport,
    "RigPyOCDGdbServer": PyOCDGdbServerExport,
}


def register() -> None:
    """Add tinyrig's export classes to labgrid's exporter (idempotent)."""
    lg_exporter.exports.update(EXPORTS)


def main() -> None:
    register()
    sys.argv[0] = "rig.labgrid_exporter"
    lg_exporter.main()


if __name__ == "__main__":
    main()
