#!/usr/bin/env python3
"""Streamed batches with and without sending the next batch while the device trains.

    python benchmarks/stream_overlap.py [--targets qemu-netduino,qemu-microbit] [--reps 2]

Boards whose RAM cannot hold the data set (netduinoplus2, microbit) get each batch written
into a sample window just before its TRAIN_STEP. With `overlap_upload` the session sends
batch i+1 into the window's other half right after TRAIN_STEP i went out (`Link.preload`:
all but the frame's last bytes, completed after the step's response). Per target, in one
process and on one QEMU: one epoch of the lab's job with overlap off and on, interleaved
`--reps` times; prints the training-loop time per step of each and the ratio on/off (< 1:
overlap helps), and the device's own training time per step from its counters (the most
overlap could hide). Both runs must match the golden model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(target: str, reps: int) -> dict[str, float]:
    from rig.config import load_config
    from rig.connection import connect
    from rig.fit import fit_spec
    from rig.session import RunSpec, TrainingSession
    from rig.targets import resolve_target

    lab = load_config(None)
    tgt = resolve_target(lab, target)
    per: dict[bool, list[float]] = {False: [], True: []}
    device_ms: list[float] = []
    with connect(tgt, timeout=lab.defaults.timeout_s) as conn:
        board = lab.board(tgt.board.name) if tgt.board else None
        spec, _ = fit_spec(RunSpec.from_training(lab.training), conn.hello,
                           board.training if board else {}, {})
        spec = spec.__class__(**{**spec.__dict__, "epochs": 1})
        clock = conn.hello.clock_hz
        for _ in range(reps):
            for overlap in (False, True):
                conn.device.reset()
                s = TrainingSession(conn.device, spec)
                s.overlap_upload = overlap
                s.prepare()
                assert s.window is not None, f"{target}: the data set fits, nothing streams"
                t0 = time.perf_counter()
                rep = s.run()
                steps = len(rep.steps)
                per[overlap].append((time.perf_counter() - t0) / steps)
                if not rep.ok:
                    raise SystemExit(f"{target}: overlap={overlap}: device and golden disagree")
                device_ms.append(1000 * statistics.mean(
                    sum(r.device.counters) / clock for r in rep.steps))
    off, on = statistics.median(per[False]), statistics.median(per[True])
    return {"off_ms": 1000 * off, "on_ms": 1000 * on, "ratio": on / off,
            "device_train_ms": statistics.mean(device_ms)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="qemu-netduino,qemu-microbit")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    for target in args.targets.split(","):
        f = run(target, args.reps)
        print(f"{target} (QEMU, emulated): per step {f['off_ms']:.2f} ms without overlap, "
              f"{f['on_ms']:.2f} ms with (ratio {f['ratio']:.3f}); the device trains "
              f"{f['device_train_ms']:.2f} ms of each step (counters / clock_hz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
