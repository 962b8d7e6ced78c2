#!/usr/bin/env python3
"""Where `rig run`'s wall time goes, on QEMU, for the default job and for `--lockstep`.

    python benchmarks/run_breakdown.py [--target qemu] [--epochs N] [--reps 2] [--json out.json]

Runs `rig run --json` as a subprocess for both modes (so interpreter start, imports, target
start and close are real), `--reps` times each, alternating, and reports per mode the run
least disturbed by other load on the machine (the least host-side fixed cost). It prints
each time split (rig.wallclock) and checks, in this run:

- lockstep per-step time <= 2x free-running per-step time (mean step wall time);
- host-side fixed cost (everything except the uploads and device training, i.e. start-up,
  target start, golden model, read-back, compare, close, other) <= 1.5 s, default job;
- a second session on the same running target uploads 0 data bytes (in-process: two
  TrainingSessions on one connection; DATA_WRITE payload bytes from the link's counters).

It also turns the bytes each run moved (link counters, both directions, COBS framing
included) into wire time on a real UART (8N1: 10 bits a byte) at the boot rate, 115200 baud,
and at the rate the run negotiated with the device after HELLO (rig.link_rate; QEMU's UART
ignores it, so on QEMU this is the time the same bytes would take on a board at that rate),
with and without the data upload (a target that already holds the data set).
Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BOOT_RATE = 115_200
LOCKSTEP_RATIO_MAX = 2.0
FIXED_COST_MAX_S = 1.5
DEVICE_PHASES = ("upload", "training")


def rig_run(target: str, extra: list[str], epochs: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "rig.cli", "run", "--target", target, "--json", str(out),
               *extra]
        if epochs is not None:
            cmd += ["--epochs", str(epochs)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if not out.exists():
            sys.exit(f"{' '.join(cmd)} wrote no report (exit {proc.returncode}):\n"
                     f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        report = json.loads(out.read_text())
        report["exit"] = proc.returncode
        return report


def per_step_s(report: dict) -> float:
    steps = report["steps"]
    return sum(s["wall_s"] for s in steps) / max(len(steps), 1)


def wire_s(n_bytes: int, baud: int) -> float:
    return n_bytes * 10 / baud


def second_session_upload(target: str) -> tuple[int, int]:
    """DATA_WRITE payload bytes of a first and a second default session on one target."""
    from rig.config import load_config
    from rig.connection import connect
    from rig.session import RunSpec, TrainingSession
    from rig.targets import resolve_target

    lab = load_config(None)
    spec = RunSpec.from_training(lab.training)
    with connect(resolve_target(lab, target)) as conn:
        counts = conn.device.link.stats.payload_tx_by_type
        TrainingSession(conn.device, spec).prepare()
        first = counts["DATA_WRITE"]
        TrainingSession(conn.device, spec).prepare()
        return first, counts["DATA_WRITE"] - first


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="qemu")
    ap.add_argument("--epochs", type=int, help="default: the lab's training: epochs")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--reps", type=int, default=2,
                    help="runs of each mode, alternating; the one with the least host-side "
                         "fixed cost is reported (the least disturbed by other load)")
    args = ap.parse_args()

    tries: dict[str, list[dict]] = {"default": [], "lockstep": []}
    for _ in range(max(1, args.reps)):
        tries["default"].append(rig_run(args.target, [], args.epochs))
        tries["lockstep"].append(rig_run(args.target, ["--lockstep"], args.epochs))
    runs = {name: min(reps, key=lambda r: r["time_split_s"]["total"] - sum(
        r["time_split_s"][p] for p in DEVICE_PHASES)) for name, reps in tries.items()}
    figures: dict = {"target": args.target, "runs": {}}
    ok = True
    for name, rep in runs.items():
        split = rep["time_split_s"]
        link = rep["link"]
        data_bytes = link["payload_tx_by_type"].get("DATA_WRITE", 0)
        moved = link["bytes_tx"] + link["bytes_rx"]
        fixed = split["total"] - sum(split[p] for p in DEVICE_PHASES)
        link_rate = rep.get("link_rate") or {}
        negotiated = int(link_rate.get("baud") or BOOT_RATE)
        rates = (BOOT_RATE, negotiated)
        fig = {"exit": rep["exit"], "ok": rep["ok"], "board": rep["board"],
               "steps": len(rep["steps"]), "per_step_ms": 1000 * per_step_s(rep),
               "time_split_s": split, "host_fixed_s": fixed, "bytes_moved": moved,
               "data_write_payload": data_bytes,
               "link_rate": link_rate, "negotiated_baud": negotiated,
               "wire_s": {str(b): wire_s(moved, b) for b in rates},
               "wire_s_data_kept": {str(b): wire_s(moved - data_bytes, b) for b in rates}}
        figures["runs"][name] = fig
        print(f"== rig run{' --lockstep' if name == 'lockstep' else ''} on {rep['board']} "
              f"(QEMU, emulated): exit {rep['exit']}, {fig['steps']} steps")
        for phase, s in split.items():
            print(f"   {phase:<13} {s:7.3f} s")
        print(f"   per step {fig['per_step_ms']:.2f} ms; host-side fixed cost {fixed:.2f} s")
        print(f"   link rate: {negotiated} baud negotiated after HELLO "
              f"({link_rate.get('reason', 'no negotiation')}; "
              f"{1000 * float(link_rate.get('seconds', 0.0)):.0f} ms)")
        print(f"   moved {moved} B (DATA_WRITE payload {data_bytes} B); wire time on a "
              "board: " + ", ".join(
                  f"{wire_s(moved, b):.1f} s at {b} baud "
                  f"({wire_s(moved - data_bytes, b):.1f} s with the data set kept)"
                  for b in rates))
        ok &= rep["exit"] == 0

    ratio = figures["runs"]["lockstep"]["per_step_ms"] / figures["runs"]["default"]["per_step_ms"]
    fixed = figures["runs"]["default"]["host_fixed_s"]
    first, second = second_session_upload(args.target)
    rates_ok = all(r["link_rate"] and not r["link_rate"]["fell_back"]
                   and r["negotiated_baud"] > BOOT_RATE for r in figures["runs"].values())
    checks = {
        "link rate negotiated above the boot rate and verified by ECHO in both runs "
        f"({figures['runs']['default']['negotiated_baud']} baud)": rates_ok,
        f"lockstep per step <= {LOCKSTEP_RATIO_MAX}x free-running ({ratio:.2f}x)":
            ratio <= LOCKSTEP_RATIO_MAX,
        f"host-side fixed cost <= {FIXED_COST_MAX_S} s ({fixed:.2f} s)": fixed <= FIXED_COST_MAX_S,
        f"second session uploads 0 data bytes (first {first} B, second {second} B)":
            first > 0 and second == 0,
    }
    figures.update(lockstep_ratio=ratio, second_session_data_bytes=second,
                   first_session_data_bytes=first, checks=checks)
    for text, good in checks.items():
        print(f"{'PASS' if good else 'FAIL'}  {text}")
        ok &= good
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
