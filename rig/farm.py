"""A labgrid board farm on loopback, for CI and for trying the remote path without
hardware: labgrid's real `labgrid-coordinator` and two `labgrid-exporter`s on 127.0.0.1,
each exporting QEMU-emulated boards as places.

Each emulated board is `qemu-system-arm` with its UART on a pseudo-terminal (`-serial pty`)
and its gdbstub on a loopback port (`-gdb`), started *blank*: no image, the core halted
(`-S`), like a board fresh from the factory — or, for the places named in `stale_places`,
running a stale build of the board's image (the prebuilt one with another build id,
loaded through the gdbstub), like a board left with yesterday's firmware. The exporters
run as `python -m rig.labgrid_exporter` (labgrid's exporter with tinyrig's export
classes): each exports the pty as a `RawSerialPort`, which labgrid turns into a
`NetworkSerialPort` (while a place is acquired the exporter runs `ser2net` on the pty and
serves it as RFC 2217 — exactly how a real board's USB serial port is exported), and the
gdbstub as a `RigGdbStub`, which clients see as a `RigNetworkGdbServer`. A client that
acquires a place flashes the training firmware through that GDB server (rig.labgrid_flash),
as it would a real board through `pyocd gdbserver` on the exporter. The farm then creates
one place per board (matching that exporter's resource group) with the tags
`board=<board>` and `emulated=qemu`, and writes a lab config whose `labgrid` targets reach
every place (and one target by tags).

    python -m rig.farm [--dir DIR] [--layout exp-a=mps2-an386,netduinoplus2 ...]

runs it until Ctrl-C (`rig farm` is the same entry point). Tests use `LoopbackFarm` as a
context manager (tests/test_labgrid_farm.py). Every process the farm starts runs in its
own process group and is terminated, then killed, with it (ser2net included); if the farm
itself is killed, its children get SIGTERM from the kernel (parent-death signal).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from rig.config import PACKAGE_CONFIG, load_config
from rig.errors import RigError, TargetUnavailable, ToolMissing
from rig.firmware import FirmwareImage, image_for
from rig.gdb_remote import flash_commands, run_gdb
from rig.labgrid_client import LabgridClient
from rig.targets.base import ChildProcess, _parent_death_signal
from rig.targets.labgrid import GDB_SERVER_CLASS, TAG_BOARD, TAG_EMULATED
from rig.targets.qemu import find_qemu, free_port

#: exporter name -> boards it exports (two exporters, four places, two of them mps2-an386
#: so selecting by tags has a choice)
DEFAULT_LAYOUT: dict[str, list[str]] = {
    "exp-a": ["mps2-an386", "netduinoplus2"],
    "exp-b": ["microbit", "mps2-an386"],
}
HOST = "127.0.0.1"
FARM_IDENTITY = ("farm", "admin")  # who creates the places


@dataclass
class FarmPlace:
    name: str
    exporter: str
    group: str
    board: str
    pty: str = ""
    gdb_port: int = 0
    qemu: ChildProcess | None = None


@dataclass
class _Service:
    """A labgrid daemon in its own process group (so ser2net children go with it)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes] = field(repr=False)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, grace_s: float = 3.0) -> None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # stragglers of the group (ser2net) after the leader is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def stale_image(image: FirmwareImage, workdir: Path) -> Path:
    """A copy of `image` whose build id (the source hash HELLO reports) is another one:
    the same firmware, but not the manifest's build."""
    data = image.path.read_bytes()
    old = image.source_hash.encode()
    if len(old) < 8 or data.count(old) != 1:
        raise RigError(f"farm: {image.path} does not hold its build id once")
    new = bytes(b"0123456789abcdef"[(b"0123456789abcdef".index(c) + 1) % 16] for c in old)
    path = workdir / f"stale-{image.path.name}"
    path.write_bytes(data.replace(old, new))
    return path


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found on PATH; install labgrid (`python3 -m pip install "
                          "labgrid`) into the environment the rig runs in")
    return path


class LoopbackFarm:
    """Coordinator + exporters + QEMU boards on 127.0.0.1 (see the module doc)."""

    def __init__(self, workdir: Path, layout: Mapping[str, Sequence[str]] | None = None,
                 lab_config: Path | None = None, probe_places: Sequence[str] = (),
                 stale_places: Sequence[str] = ()) -> None:
        """`probe_places`: places that announce a `NetworkUSBDebugger` instead of their
        gdbstub — a resource description with no probe behind it, for tests of labgrid's
        own flashing path. `stale_places`: places that start running `stale_image()`
        instead of blank."""
        self.workdir = Path(workdir)
        self.probe_places = set(probe_places)
        self.stale_places = set(stale_places)
        self.layout = {k: list(v) for k, v in (layout or DEFAULT_LAYOUT).items()}
        self.base_config = lab_config or PACKAGE_CONFIG
        self.lab = load_config(self.base_config)
        self.port = 0
        self.places: list[FarmPlace] = []
        self.services: list[_Service] = []
        self.lab_config_path = self.workdir / "lab_config.yaml"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> LoopbackFarm:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_boards()
            self._start_coordinator(timeout_s)
            for exporter in self.layout:
                self._start_exporter(exporter)
            self._create_places(timeout_s)
            self._write_lab_config()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for svc in reversed(self.services):  # exporters (and their ser2net) first
            svc.stop()
        self.services.clear()
        for place in self.places:
            if place.qemu is not None:
                place.qemu.stop()
                place.qemu = None

    def __enter__(self) -> LoopbackFarm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def diagnostics(self) -> str:
        out = []
        for svc in self.services:
            tail = "\n".join(svc.log_text().splitlines()[-15:])
            out.append(f"--- {svc.name} (pid {svc.proc.pid}, {svc.log_path}):\n{tail}")
        for p in self.places:
            if p.qemu is not None:
                out.append(f"--- qemu {p.name}: {p.qemu.describe_exit()}")
        return "\n".join(out)

    # -- parts ----------------------------------------------------------------------------

    def _start_boards(self) -> None:
        qemu = find_qemu()
        for exporter, boards in self.layout.items():
            for i, board_name in enumerate(boards):
                board = self.lab.board(board_name)
                if not board.qemu_machine:
                    raise RigError(f"farm: board {board_name} has no QEMU machine")
                image_for(board.firmware)  # the image a client flashes exists and is intact
                group = f"{board_name}-{i}"
                place = FarmPlace(f"{exporter}-{board_name}", exporter, group, board_name)
                if any(p.name == place.name for p in self.places):
                    place.name = f"{exporter}-{group}"
                place.gdb_port = free_port()
                # blank and halted; no -kernel (a system reset would reload it over what
                # a client flashes) and no -no-reboot (the flash ends in a system reset)
                cmd = [qemu, "-M", board.qemu_machine, "-nographic", "-monitor", "none",
                       "-serial", "pty", "-semihosting-config", "enable=on,target=native",
                       "-S", "-gdb", f"tcp:{HOST}:{place.gdb_port}"]
                place.qemu = ChildProcess(cmd, self.workdir / f"qemu-{place.name}.log")
                self.places.append(place)
        deadline = time.monotonic() + 10.0
        for place in self.places:
            assert place.qemu is not None
            while True:
                m = re.search(r"char device redirected to (/dev/pts/\d+)",
                              place.qemu.log_text())
                if m:
                    place.pty = m.group(1)
                    break
                if place.qemu.poll() is not None or time.monotonic() > deadline:
                    raise TargetUnavailable(f"farm: QEMU for {place.name} gave no pty: "
                                            f"{place.qemu.describe_exit()}\n"
                                            f"{place.qemu.log_tail()}")
                time.sleep(0.02)
            if place.name in self.stale_places:
                stale = stale_image(image_for(self.lab.board(place.board).firmware),
                                    self.workdir)
                run_gdb(f"{HOST}:{place.gdb_port}", stale, flash_commands("qemu"),
                        where=f"farm place {place.name}", connect_timeout_s=5)

    def _spawn(self, name: str, cmd: list[str], cwd: Path) -> _Service:
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed by _Service.stop
        pdeath = _parent_death_signal()
        # The exporters run `python -m rig.labgrid_exporter` from their own work folder:
        # put this rig package first on their path (the same code as the client, also when
        # it runs from a checkout that was not installed).
        here = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=pdeath, env=env, close_fds=True)
        svc = _Service(name, proc, log_path, log)
        self.services.append(svc)
        return svc

    def _start_coordinator(self, timeout_s: float) -> None:
        tool = _tool("labgrid-coordinator")
        cwd = self.workdir / "coordinator"  # it keeps places.yaml/resources.yaml here
        shutil.rmtree(cwd, ignore_errors=True)  # a fresh farm: no places of an earlier run
        cwd.mkdir()
        self.port = free_port()
        svc = self._spawn("coordinator", [tool, "--listen", self.address], cwd)
        deadline = time.monotonic() + timeout_s
        while "listening on" not in svc.log_text():
            if svc.proc.poll() is not None or time.monotonic() > deadline:
                raise TargetUnavailable(f"farm: labgrid-coordinator did not start: "
                                        f"{svc.log_text()[-2000:]}")
            time.sleep(0.05)

    def _start_exporter(self, exporter: str) -> None:
        _tool("labgrid-exporter")  # labgrid installed where the rig runs
        config: dict[str, dict[str, Any]] = {}
        for p in self.places:
            if p.exporter != exporter:
                continue
            config[p.group] = {"RawSerialPort": {"port": p.pty, "speed": 115200}}
            if p.name not in self.probe_places:
                config[p.group]["RigGdbStub"] = {
                    "port": p.gdb_port, "flavor": "qemu",
                    "device": f"QEMU {self.lab.board(p.board).qemu_machine}"}
            else:
                # labgrid exports a class it has no exporter code for as a plain description
                config[p.group]["NetworkUSBDebugger"] = {
                    "host": HOST, "busnum": 1, "devnum": 99, "path": "1-9",
                    "vendor_id": 0x0483, "model_id": 0x374B}
        cfg = self.workdir / f"{exporter}.yaml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=True))
        self._spawn(exporter, [sys.executable, "-m", "rig.labgrid_exporter", "--coordinator",
                               self.address, "--name", exporter, "--hostname", HOST,
                               str(cfg)], self.workdir)

    def _create_places(self, timeout_s: float) -> None:
        want = {f"{p.exporter}/{p.group}/NetworkSerialPort/RawSerialPort"
                for p in self.places} | {
                f"{p.exporter}/{p.group}/{GDB_SERVER_CLASS}/RigGdbStub"
                for p in self.places if p.name not in self.probe_places}
        deadline = time.monotonic() + timeout_s
        with LabgridClient(self.address, identity=FARM_IDENTITY) as lg:
            while not want <= set(lg.resource_paths()):
                dead = [s.name for s in self.services if s.proc.poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise TargetUnavailable(
                        f"farm: exporters did not announce {sorted(want)} (have "
                        f"{lg.resource_paths()}; exited: {dead or 'none'})\n"
                        + self.diagnostics())
                time.sleep(0.1)
            for p in self.places:
                lg.add_place(p.name, [f"{p.exporter}/{p.group}/*"],
                             {TAG_BOARD: p.board, TAG_EMULATED: "qemu"})

    def _write_lab_config(self) -> None:
        """The repository's lab config with the farm's places as `labgrid` targets (one
        per place by name, plus `farm-<board>` by tags for boards exported twice). They
        flash on every acquisition (`flash: always`), as a CI job flashes its build: the
        boards start blank, and asking a blank board for HELLO first (`auto`) costs a
        timeout (~2 s) to learn what flashing (~1 s) does anyway."""
        data: dict[str, Any] = yaml.safe_load(self.base_config.read_text(encoding="utf-8"))
        targets: dict[str, Any] = {}
        for p in self.places:
            targets[p.name] = {"kind": "labgrid", "board": p.board, "flash": "always",
                               "coordinator": self.address, "place": p.name}
        for board in sorted({p.board for p in self.places}):
            targets[f"farm-{board}"] = {"kind": "labgrid", "board": board, "flash": "always",
                                        "coordinator": self.address,
                                        "tags": {TAG_BOARD: board}}
        data["targets"] = targets
        data.setdefault("defaults", {})["target"] = self.places[0].name
        self.lab_config_path.write_text(yaml.safe_dump(data, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rig farm", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=None,
                    help="working directory for logs, exporter configs and the generated "
                         "lab config (default: a new temporary directory)")
    ap.add_argument("--layout", action="append", metavar="EXPORTER=BOARD,BOARD",
                    help="an exporter and the QEMU boards it exports (repeatable; default: "
                         + "; ".join(f"{k}={','.join(v)}" for k, v in DEFAULT_LAYOUT.items())
                         + ")")
    a = ap.parse_args(argv)
    layout = None
    if a.layout:
        layout = {}
        for item in a.layout:
            name, sep, boards = item.partition("=")
            if not sep or not boards:
                print(f"rig farm: --layout {item!r}: expected EXPORTER=BOARD[,BOARD...]",
                      file=sys.stderr)
                return 2
            layout[name] = boards.split(",")
    import tempfile

    workdir = a.dir or Path(tempfile.mkdtemp(prefix="tinyrig-farm-"))
    try:
        farm = LoopbackFarm(workdir, layout)
        farm.start()
    except RigError as exc:
        print(f"rig farm: {exc}", file=sys.stderr)
        return 2
    print(f"labgrid coordinator: {farm.address}   (export LG_COORDINATOR={farm.address})")
    for p in farm.places:
        print(f"  place {p.name:24s} board={p.board} via {p.exporter} ({p.pty}, gdbstub "
              f"{HOST}:{p.gdb_port})")
    print("The boards start blank: a client flashes the place it acquires (flash: always).")
    print(f"lab config: {farm.lab_config_path}  (rig --config ... / pytest --rig-config ...)")
    print("Ctrl-C stops the farm.", flush=True)
    try:
        while all(s.proc.poll() is None for s in farm.services):
            time.sleep(0.5)
        print("rig farm: a labgrid process exited:\n" + farm.diagnostics(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        farm.stop()


if __name__ == "__main__":
    sys.exit(main())
