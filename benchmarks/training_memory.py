#!/usr/bin/env python3
"""Training memory per strategy, as a ratio to `full`, measured on one target.

For every strategy the firmware has: a fresh target (so the stack high-water mark is this
strategy's alone), the lab's reference job fitted to the board (a short run: `--epochs`,
`--train-samples`), then STATS. Training memory = arena high-water mark minus the
parameters (weights excluded: every strategy needs them) plus the peak stack. The figures
are the device's own (STATS), in bytes; QEMU targets are emulated boards.

    python benchmarks/training_memory.py [--target qemu] [--epochs 1] [--train-samples 64]

Issue target: `static` and `velocity-budget` at their defaults <= 0.35x of `full`.
Exit status: 0 measured (whether or not the target is met; the table says), 2 rig error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from rig.config import load_config
from rig.connection import connect
from rig.errors import RigError
from rig.fit import fit_spec
from rig.session import Inspect, RunSpec, TrainingSession
from rig.targets import resolve_target

TARGET_RATIO = 0.35
TARGET_STRATEGIES = ("static", "velocity-budget")


def n_params(dims: tuple[int, ...]) -> int:
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=False))


def measure(args: argparse.Namespace) -> list[tuple[str, int, int, int]]:
    """(strategy, arena bytes without weights, peak stack, total) per strategy."""
    lab = load_config(args.config)
    names = {f.name for f in dataclasses.fields(RunSpec)}
    base = RunSpec(**{f.name: getattr(lab.training, f.name)
                      for f in dataclasses.fields(lab.training) if f.name in names})
    rows: list[tuple[str, int, int, int]] = []
    strategies: list[str] | None = None
    i = 0
    while strategies is None or i < len(strategies):
        target = resolve_target(lab, args.target)
        with connect(target, timeout=lab.defaults.timeout_s,
                     retries=lab.defaults.retries) as conn:
            if strategies is None:
                strategies = list(conn.hello.strategy_names)
                print(f"target: {conn.hello.board} (build {conn.hello.build_hash[:12]}), "
                      f"strategies: {', '.join(strategies)}")
            board = getattr(target, "board", None)
            spec, _ = fit_spec(base, conn.hello, getattr(board, "training", None),
                               {"strategy": strategies[i], "epochs": args.epochs,
                                "train_samples": args.train_samples, "test_samples": 32})
            TrainingSession(conn.device, spec, inspect=Inspect()).run()
            stats = conn.device.stats()
        weights = 4 * n_params(tuple(spec.dims))
        arena = stats.arena_used - weights
        rows.append((strategies[i], arena, stats.stack_used, arena + stats.stack_used))
        i += 1
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--target", default="qemu")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-samples", type=int, default=64)
    args = ap.parse_args()
    try:
        rows = measure(args)
    except RigError as exc:
        print(f"training_memory: {exc}", file=sys.stderr)
        return 2
    full = next((r[3] for r in rows if r[0] == "full"), None)
    print(f"\n{'strategy':>16} {'arena-weights B':>16} {'peak stack B':>13} {'total B':>9}"
          f" {'/ full':>7}   (bytes: STATS, emulated target)")
    for name, arena, stack, total in rows:
        ratio = f"{total / full:.3f}" if full else "-"
        print(f"{name:>16} {arena:>16,} {stack:>13,} {total:>9,} {ratio:>7}")
    if full:
        for name in TARGET_STRATEGIES:
            got = next((r[3] / full for r in rows if r[0] == name), None)
            verdict = ("not on this firmware" if got is None else
                       f"{got:.3f}x: {'met' if got <= TARGET_RATIO else 'NOT met'}")
            print(f"target {name} <= {TARGET_RATIO}x of full: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
