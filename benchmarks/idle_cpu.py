#!/usr/bin/env python3
"""Host CPU an idle QEMU target burns: each QEMU target of the lab is started through the
rig, answers HELLO (so its firmware is booted and waiting for the next request), and
then the emulator's CPU time (utime + stime of /proc/<pid>/stat) is sampled over a
window while nothing is sent. The figure is % of one host core (100 % = one core busy).

    python benchmarks/idle_cpu.py [--seconds 5] [--target qemu --target qemu-microbit]
                                  [--elf-dir DIR] [--json out.json]

`--elf-dir DIR` boots DIR/<board>.elf instead of the prebuilt image (e.g. the images of
another commit, `git show main:firmware/prebuilt/mps2-an386.elf > DIR/mps2-an386.elf`), to
measure before/after a firmware change. The firmware's idle loop decides the figure: a
busy-polled UART keeps QEMU's vCPU thread running flat out; RX by interrupt + WFI lets
QEMU sleep until a byte (or SysTick) arrives.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rig.config import load_config  # noqa: E402
from rig.connection import connect  # noqa: E402
from rig.targets import build_target  # noqa: E402
from rig.targets.qemu import QemuTarget  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14, 15 of proc(5)


def idle_percent(target: QemuTarget, seconds: float) -> float:
    conn = connect(target, check_firmware=target.options.elf is None)
    try:
        pid = target.pid
        assert pid is not None
        time.sleep(0.5)  # let boot and the HELLO exchange settle
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu_seconds(pid), time.monotonic()
        return 100.0 * (c1 - c0) / (t1 - t0)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--target", action="append", help="QEMU target name (default: all)")
    ap.add_argument("--elf-dir", type=Path, help="boot DIR/<board>.elf instead of prebuilt")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    lab = load_config()
    names = a.target or [t.name for t in lab.enabled_targets("qemu")
                         if t.options.flash == "kernel"]
    results = {}
    for name in names:
        tc = lab.target(name)
        target = build_target(lab, tc)
        assert isinstance(target, QemuTarget)
        if a.elf_dir is not None:
            target.options = {**target.options,
                              "elf": str(a.elf_dir / f"{lab.board(tc.board).firmware}.elf")}
        pct = idle_percent(target, a.seconds)
        results[name] = round(pct, 2)
        print(f"{name:16s} {target.machine:14s} idle host CPU {pct:6.2f} % of one core "
              f"({a.seconds:g} s, /proc/<pid>/stat utime+stime)")
    if a.json:
        a.json.write_text(json.dumps({"seconds": a.seconds, "idle_cpu_percent": results},
                                     indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
