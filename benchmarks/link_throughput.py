#!/usr/bin/env python3
"""Link throughput on QEMU mps2-an386: raw ECHO round trips vs protocol goodput.

Starts QEMU with the training firmware, its UART on a TCP socket (free port), connects
through pyserial's `socket://`, and measures on the same link:

- ECHO: payload bytes per second for several payload sizes (each byte goes out and comes
  back), requests per second, and the raw wire rate in both directions;
- goodput of the bulk messages: PARAM_WRITE / PARAM_READ (f32 values) and DATA_WRITE
  (sample records), in payload bytes per second.

    python benchmarks/link_throughput.py [--elf PATH] [--seconds 2] [--url socket://...]

`--url` measures an already running target instead (a board's serial port, say).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rig.device import Device
from rig.errors import RigError
from rig.link.link import Link
from rig.link.transport import SerialTransport

ROOT = Path(__file__).resolve().parents[1]
ELF_CANDIDATES = [
    ROOT / "firmware/build/mps2-an386/tinyrig.elf",
    ROOT / "firmware/prebuilt/mps2-an386/tinyrig.elf",
    ROOT / "firmware/prebuilt/tinyrig-mps2-an386.elf",
]


def find_elf(explicit: str | None, build: bool) -> Path:
    if explicit:
        return Path(explicit)
    for cand in ELF_CANDIDATES:
        if cand.is_file():
            return cand
    if build:
        subprocess.run(["make", "-C", str(ROOT / "firmware"), "mps2-an386"], check=True)
        if ELF_CANDIDATES[0].is_file():
            return ELF_CANDIDATES[0]
    sys.exit("no mps2-an386 firmware ELF found (looked in "
             + ", ".join(str(c.relative_to(ROOT)) for c in ELF_CANDIDATES)
             + "); pass --elf or --build")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_qemu(elf: Path, port: int, log: Path, nodelay: bool = True
               ) -> subprocess.Popen[bytes]:
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        sys.exit("qemu-system-arm is not installed (apt-get install qemu-system-arm)")
    cmd = [qemu, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-kernel", str(elf),
           # nodelay: QEMU writes the UART byte by byte; with Nagle on its socket every
           # response waits for the host's delayed ACK (~40 ms per request).
           "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on{',nodelay=on' if nodelay else ''}",
           "-semihosting-config", "enable=on,target=native", "-no-reboot"]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)


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
    ap.add_argument("--elf", help="firmware ELF for mps2-an386 (default: build/prebuilt)")
    ap.add_argument("--build", action="store_true", help="run make if no ELF is found")
    ap.add_argument("--url", help="measure an already running target at this pyserial URL")
    ap.add_argument("--nagle", action="store_true",
                    help="leave Nagle on for QEMU's serial socket (no nodelay=on)")
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--sizes", default="16,64,256,1024,2048",
                    help="ECHO payload sizes (capped at max_payload)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    qemu = None
    tmp = Path(tempfile.mkdtemp(prefix="tinyrig-bench-"))
    try:
        if args.url:
            url = args.url
        else:
            elf = find_elf(args.elf, args.build)
            port = free_port()
            qemu = start_qemu(elf, port, tmp / "qemu.log", nodelay=not args.nagle)
            url = f"socket://127.0.0.1:{port}"
            print(f"qemu mps2-an386 with {elf} on {url}")
        link = Link(SerialTransport(url, open_timeout=10.0), timeout=2.0, retries=2)
        try:
            measure(Device(link), args.seconds, sizes)
        finally:
            link.close()
    except RigError as exc:
        log = (tmp / "qemu.log").read_text(errors="replace") if qemu else ""
        print(f"error: {exc}\n{log[-2000:]}", file=sys.stderr)
        return 1
    finally:
        if qemu is not None:
            qemu.terminate()
            try:
                qemu.wait(timeout=5)
            except subprocess.TimeoutExpired:
                qemu.kill()
                qemu.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
