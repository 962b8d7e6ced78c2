#!/usr/bin/env python3
"""Link throughput on QEMU mps2-an386: raw ECHO round trips vs protocol goodput, and the
wall time of the default `rig run`.

Starts the lab's QEMU target (rig.targets.qemu: UART on a loopback TCP socket, pyserial
`socket://`), and measures on the same link:

- ECHO: payload bytes per second for several payload sizes (each byte goes out and comes
  back), requests per second, and the raw wire rate in both directions;
- goodput of the bulk messages: PARAM_WRITE / PARAM_READ (f32 values) and DATA_WRITE
  (sample records), in payload bytes per second;
- the wall time of `rig run` with no arguments (a subprocess, as a user runs it).

    python benchmarks/link_throughput.py [--target qemu] [--seconds 2] [--no-rig-run]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from rig.config import load_config
from rig.connection import connect
from rig.device import Device
from rig.errors import RigError
from rig.targets import resolve_target


def timed(seconds: float, fn: Callable[[], int], min_reps: int = 3) -> tuple[int, float, int]:
    """Run fn (returns payload bytes) until `seconds` passed: (bytes, elapsed, reps)."""
    total = reps = 0
    t0 = time.perf_counter()
    while reps < min_reps or time.perf_counter() - t0 < seconds:
        total += fn()
        reps += 1
    return total, time.perf_counter() - t0, reps


def measure(dev: Device, seconds: float, sizes: list[int]) -> None:
    link = dev.link
    info = dev.hello()
    print(f"target: {info.board} fw {info.fw_version} build {info.build_hash[:12]}"
          f" max_payload {info.max_payload} B via {link.transport.name}")
    print(f"\n{'ECHO payload':>14} {'req/s':>8} {'ms/req':>8} {'payload B/s':>12}"
          f" {'(each way)':>10} {'wire B/s':>10}")
    rng = np.random.default_rng(0)
    for size in [s for s in sizes if s <= info.max_payload]:
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        b0 = link.stats.bytes_tx + link.stats.bytes_rx
        total, dt, reps = timed(seconds, lambda d=data: len(dev.echo(d)) * 2)
        wire = link.stats.bytes_tx + link.stats.bytes_rx - b0
        print(f"{size:>14} {reps / dt:>8.1f} {1000 * dt / reps:>8.2f} {total / dt:>12,.0f}"
              f" {total / 2 / dt:>10,.0f} {wire / dt:>10,.0f}")

    print(f"\n{'goodput':>14} {'payload B':>10} {'s':>7} {'payload B/s':>12} {'wire B/s':>10}")

    def row(name: str, fn: Callable[[], int]) -> None:
        b0 = link.stats.bytes_tx + link.stats.bytes_rx
        total, dt, _ = timed(seconds, fn, min_reps=1)
        wire = link.stats.bytes_tx + link.stats.bytes_rx - b0
        print(f"{name:>14} {total:>10,} {dt:>7.2f} {total / dt:>12,.0f} {wire / dt:>10,.0f}")

    width = min(info.max_width, 256)
    rows = max(1, min(width, info.param_capacity // 2 // (width + 1)))
    dev.model_init([width, rows])
    w = rng.standard_normal((rows, width)).astype(np.float32)

    def param_write() -> int:
        dev.write_params(0, "w", w)
        return w.nbytes

    def param_read() -> int:
        back = dev.read_params(0, "w")
        assert back.tobytes() == w.tobytes()
        return back.nbytes

    row("PARAM_WRITE", param_write)
    row("PARAM_READ", param_read)

    n_feat = min(64, width)
    record = 1 + n_feat
    n = max(1, min(2000, info.data_capacity // record))
    dev.data_config(n_feat, "u8", 1 / 255, 0.0, n)
    feats = rng.integers(0, 256, (n, n_feat), dtype=np.uint8)
    labels = rng.integers(0, 10, n)

    def data_write() -> int:
        dev.write_samples(0, labels, feats)
        return n * record

    row("DATA_WRITE", data_write)
    print(f"\nlink: {link.stats.summary()}")
    print("reference: a 115200 baud 8N1 UART carries 11,520 B/s each way")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="lab_config.yaml (default: the usual search)")
    ap.add_argument("--target", default="qemu", help="target to measure (default: qemu)")
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--sizes", default="16,64,256,1024,2048",
                    help="ECHO payload sizes (capped at max_payload)")
    ap.add_argument("--no-rig-run", action="store_true", help="skip timing `rig run`")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    lab = load_config(args.config)
    try:
        target = resolve_target(lab, args.target)
        with connect(target, timeout=2.0, retries=2) as conn:
            print(f"target {target.describe()}: {conn.hello.board} build "
                  f"{conn.hello.build_hash[:12]}, max_payload {conn.hello.max_payload} B")
            measure(conn.device, args.seconds, sizes)
    except RigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(note, file=sys.stderr)
        return 1
    if not args.no_rig_run:
        cmd = [sys.executable, "-m", "rig.cli", *(["--config", args.config] if args.config
                                                   else []), "run"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        tail = [line for line in done.stdout.splitlines() if "wall time" in line]
        print(f"\n`rig run` (defaults, {lab.defaults.target} target): exit {done.returncode}, "
              f"wall time {wall:.1f} s end to end (Python start, QEMU boot, upload, training,"
              f" comparison){'; ' + tail[0].strip() if tail else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
