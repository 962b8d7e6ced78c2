#!/usr/bin/env python3
"""Board-twin speed: one lockstep training run (full, 64-32-10, batch 16, 96 samples,
every parameter read back each step) on each twin, with the C block counter and with the
Python fallback, in one process. Prints instructions executed (the twin's own count, without the
time it skipped waiting for bytes on the wire),
wall time, emulated instructions per second, the C/Python ratio, and how the wall time
splits between the twin and the host (golden model, link).

    python benchmarks/twin_speed.py [--target nucleo-f429zi-twin] [--target ...]

Ratios within one run, on one machine: the absolute figures move with the host's load.
"""

from __future__ import annotations

import argparse
import time

from rig.config import load_config
from rig.connection import connect
from rig.session import Inspect, RunSpec, TrainingSession
from rig.targets import resolve_target
from rig.twin import accel
from rig.twin.transport import TwinTransport


def run_once(lab_target: str, compiled: bool) -> tuple[int, float, float]:
    """(instructions, wall s, s inside the twin) of one lockstep run."""
    accel._tried, accel._lib = (False, None) if compiled else (True, None)
    lab = load_config(None)
    target = resolve_target(lab, lab_target)
    inside = 0.0
    read = TwinTransport.read

    def timed_read(self: TwinTransport, n: int, timeout: float) -> bytes:
        nonlocal inside
        t = time.perf_counter()
        try:
            return read(self, n, timeout)
        finally:
            inside += time.perf_counter() - t

    TwinTransport.read = timed_read  # type: ignore[method-assign]
    try:
        with connect(target) as conn:
            m = target.machine  # type: ignore[attr-defined]
            assert m.accelerated is compiled
            spec = RunSpec(dims=(64, 32, 10), strategy="full", train_samples=96,
                           test_samples=64, epochs=1, batch=16)
            session = TrainingSession(conn.device, spec,
                                      inspect=Inspect(updates=True, params_every=1,
                                                      resync=True))
            session.prepare()
            before, inside = m.insns - m.waited, 0.0
            t0 = time.perf_counter()
            report = session.run()
            wall = time.perf_counter() - t0
            assert report.ok, report.failures
            return m.insns - m.waited - before, wall, inside
    finally:
        TwinTransport.read = read  # type: ignore[method-assign]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="append",
                    help="twin target(s) (default: nucleo-f429zi-twin, nrf52840dk-twin)")
    args = ap.parse_args()
    targets = args.target or ["nucleo-f429zi-twin", "nrf52840dk-twin"]
    print(f"{'target':22} {'hook':7} {'instructions':>13} {'wall s':>7} {'twin s':>7} "
          f"{'M insn/s (twin)':>16}")
    for name in targets:
        rates = {}
        for compiled in (True, False):
            insns, wall, inside = run_once(name, compiled)
            rates[compiled] = insns / inside
            print(f"{name:22} {'C' if compiled else 'Python':7} {insns:13,} {wall:7.2f} "
                  f"{inside:7.2f} {insns / inside / 1e6:16.2f}")
        print(f"{name:22} C hook / Python hook: {rates[True] / rates[False]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
