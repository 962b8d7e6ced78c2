"""tinyrig's labgrid classes without a farm: the exporter's `RigPyOCDGdbServer` export
(no probe exists here: pyocd's probe enumeration is faked at its API boundary,
`ConnectHelper`; the `pyocd gdbserver` it starts is the real one, which then waits for
its probe), the registrations, and the GDB client's error without a server
(tests/test_labgrid_farm.py flashes through the whole path; tests/test_boards_qemu.py
checks the client's verify against QEMU's gdbstub)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("labgrid")

from labgrid.factory import target_factory  # noqa: E402
from labgrid.remote import exporter as lg_exporter  # noqa: E402

import rig.targets.pyocd as pyocd_target  # noqa: E402
from rig.config import load_config  # noqa: E402
from rig.errors import TargetUnavailable  # noqa: E402
from rig.firmware import image_for  # noqa: E402
from rig.labgrid_exporter import EXPORTS, PyOCDGdbServerExport, register  # noqa: E402
from rig.labgrid_flash import GDB_SERVER_CLASS, RigGdbFlashDriver  # noqa: E402
from rig.targets.qemu import free_port  # noqa: E402

UID = "0669FF555052836687031231"


class _Probe:
    def __init__(self, unique_id: str) -> None:
        self.unique_id = unique_id


class FakeConnectHelper:
    """pyocd's ConnectHelper, as far as the export uses it: which probes are attached."""

    attached: list[str] = []

    @classmethod
    def get_all_connected_probes(cls, blocking: bool = True, unique_id: str | None = None,
                                 print_wait_message: bool = True) -> list[_Probe]:
        assert blocking is False  # the exporter's poll must never wait for USB
        return [_Probe(u) for u in cls.attached]


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeConnectHelper]]:
    FakeConnectHelper.attached = []
    monkeypatch.setattr(pyocd_target, "ConnectHelper", FakeConnectHelper)
    pyocd_target.forget_probes()
    yield FakeConnectHelper
    pyocd_target.forget_probes()


def _export(**params: Any) -> PyOCDGdbServerExport:
    """The export as labgrid's exporter builds it from an exporter-file entry."""
    config = {"cls": "RigPyOCDGdbServer", "params": {"probe": UID,
                                                     "pyocd_target": "stm32f429xi", **params}}
    return PyOCDGdbServerExport(config, host="lab-host-1", proxy="lab-host-1",
                                proxy_required=False)


def _cmdline(pid: int) -> list[str]:
    return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]


def test_classes_are_registered_with_labgrid() -> None:
    assert target_factory.resources[GDB_SERVER_CLASS].__module__ == "rig.labgrid_flash"
    assert target_factory.drivers["RigGdbFlashDriver"] is RigGdbFlashDriver
    register()
    for name, cls in EXPORTS.items():
        assert lg_exporter.exports[name] is cls
    # the entry point is labgrid's own exporter, with its options
    out = subprocess.run([sys.executable, "-m", "rig.labgrid_exporter", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--coordinator" in out.stdout


def test_gdbserver_command_line() -> None:
    export = _export(frequency=4000000, args=["-O", "connect_mode=under-reset"])
    assert export.command(40001) == [
        sys.executable, "-m", "pyocd", "gdbserver", "--uid", UID, "--target", "stm32f429xi",
        "--port", "40001", "--allow-remote", "--persist", "--frequency", "4000000",
        "-O", "connect_mode=under-reset"]
    assert export.data["cls"] == GDB_SERVER_CLASS


def test_gdbserver_runs_only_while_acquired_and_the_probe_is_there(
        probes: type[FakeConnectHelper]) -> None:
    export = _export()
    export.poll()
    assert not export.avail  # no probe attached: nothing to serve
    probes.attached = [UID]
    export.local._checked = float("-inf")  # the next poll enumerates again
    export.poll()
    assert export.avail and export.child is None and export.params["port"] is None
    export.acquire("nucleo-1")
    try:
        child = export.child
        assert child is not None and child.poll() is None
        port = export.params["port"]
        assert isinstance(port, int) and export.params["host"] == "lab-host-1"
        assert export.params["flavor"] == "pyocd" and UID in export.params["device"]
        # the real pyocd accepted this command line: it waits for its probe, not exited
        assert _cmdline(child.pid)[1:] == export.command(port)[1:]
        time.sleep(1.0)
        assert child.poll() is None
        # while it holds the probe the exporter does not enumerate USB
        probes.attached = []
        export.local._checked = float("-inf")
        export.poll()
        assert export.avail and export.child is child
    finally:
        export.release()
    assert export.child is None and export.params["port"] is None
    assert child.wait(1) is not None


def test_a_dead_gdbserver_is_no_port(probes: type[FakeConnectHelper]) -> None:
    """pyocd gdbserver gone (crash, probe unplugged): the place shows no port, and the
    client's driver says so instead of waiting for a server that is not there."""
    probes.attached = [UID]
    export = _export()
    export.acquire("nucleo-1")
    try:
        assert export.child is not None
        os.kill(export.child.pid, signal.SIGKILL)
        export.child.wait(5)
        export.poll()
        assert export.params["port"] is None
    finally:
        export.release()


@pytest.mark.parametrize("port", [None, "refused"])
def test_driver_without_a_server_says_so(port: str | None) -> None:
    """RigGdbFlashDriver on a labgrid target built locally (labgrid's own Target API):
    no port published, or nothing listening there, is a clear error before any flashing."""
    from labgrid.target import Target as LgTarget

    from rig.labgrid_flash import RigNetworkGdbServer

    target = LgTarget("bench-1")
    RigNetworkGdbServer(target, name=None, host="127.0.0.1",  # type: ignore[call-arg]
                        port=free_port() if port else None, flavor="qemu", device="QEMU x")
    driver = RigGdbFlashDriver(target, name=None)  # type: ignore[call-arg]
    target.activate(driver)
    elf = image_for(load_config().board("mps2-an386").firmware).path
    want = "no GDB server answers" if port else "has not started the GDB server"
    with pytest.raises(TargetUnavailable, match=want):
        driver.load(elf)
