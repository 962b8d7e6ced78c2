"""Flashing over the GDB remote protocol: `gdb-multiarch` (batch mode) connects to a GDB
server — QEMU's gdbstub, or `pyocd gdbserver` on a debug probe — loads the ELF, verifies
it (`compare-sections`: a CRC per section, or a read-back where the server has no qCRC)
and resets the core, which then runs the new image once gdb detaches.

One client for every place that needs it: `rig.targets.qemu` (flash: gdb) and the labgrid
flash driver (rig.labgrid_flash), whose server runs on an exporter host.

A server *flavor* says how to halt and reset through it (its `monitor` commands): QEMU
halts the guest when gdb attaches and resets with `monitor system_reset`; pyocd halts with
`monitor reset halt` and resets with `monitor reset`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rig.errors import FirmwareMismatch, TargetUnavailable, ToolMissing

GDB_CANDIDATES = ("gdb-multiarch", "arm-none-eabi-gdb")
APT_GDB = "apt-get install -y gdb-multiarch"


@dataclass(frozen=True)
class Flavor:
    """How a kind of GDB server halts and resets the core (its monitor commands)."""

    halt: tuple[str, ...]  # before `load` (empty: attaching halts)
    reset: tuple[str, ...]  # after verifying: reset, run after detach
    #: how long gdb retries a refused connection (pyocd opens its port only once it has
    #: connected to the probe, a second or two after it starts; QEMU listens at once)
    connect_timeout_s: int = 2


FLAVORS: dict[str, Flavor] = {
    "qemu": Flavor(halt=(), reset=("monitor system_reset",)),
    "pyocd": Flavor(halt=("monitor reset halt",), reset=("monitor reset",),
                    connect_timeout_s=20),
}


def find_gdb() -> str:
    for name in GDB_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise ToolMissing(f"none of {', '.join(GDB_CANDIDATES)} found on PATH (needed to flash "
                      f"through a GDB server); install it with `{APT_GDB}`")


def flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise TargetUnavailable(f"unknown GDB server flavor {name!r}; known: "
                                f"{', '.join(FLAVORS)}") from None


def flash_commands(name: str) -> list[str]:
    """halt, load, verify, reset — for a server of flavor `name`."""
    f = flavor(name)
    return [*f.halt, "load", "compare-sections", *f.reset]


def run_gdb(address: str, elf: Path | str, commands: Sequence[str], *, where: str,
            timeout_s: float = 60.0, gdb: str | None = None,
            connect_timeout_s: int | None = None) -> str:
    """Run `commands` against the GDB server at `address` (HOST:PORT) with `elf` as the
    program, detach, and return gdb's output. A failed `compare-sections` raises
    FirmwareMismatch; no server, a refused command or no detach raises TargetUnavailable
    (`where` names the device in both)."""
    args = [gdb or find_gdb(), "-nx", "-batch", "-ex", "set confirm off",
            "-ex", "set pagination off"]
    if connect_timeout_s is not None:
        args += ["-ex", f"set tcp connect-timeout {connect_timeout_s}"]
    args += ["-ex", f"target remote {address}"]
    for c in commands:
        args += ["-ex", c]
    args += ["-ex", "detach", str(elf)]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise TargetUnavailable(f"{where}: gdb did not finish in {timeout_s:g} s "
                                f"(server {address})") from exc
    log = (proc.stdout + proc.stderr).strip()
    # gdb says "HOST:PORT: <reason>." when it cannot connect, and then runs the remaining
    # commands against the ELF file itself ("...when your target is `exec'")
    if f"{address}: " in log or "target is `exec'" in log:
        raise TargetUnavailable(f"{where}: no GDB server answers at {address}:\n{log}")
    if "MIS-MATCHED" in log:
        raise FirmwareMismatch(f"{where}: verify after flashing failed:\n{log}")
    if proc.returncode != 0 or "detached" not in log:
        raise TargetUnavailable(f"{where}: flashing through the GDB server at {address} "
                                f"failed (gdb exit {proc.returncode}):\n{log}")
    if "compare-sections" in commands and "matched" not in log:
        raise FirmwareMismatch(f"{where}: verify after flashing gave no verdict:\n{log}")
    return log
