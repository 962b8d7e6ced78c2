#!/usr/bin/env python3
"""Training memory per strategy, as a ratio to `full`, measured on one target in one run.

One target, one boot: for every strategy the firmware has, the lab's default job (whole
training split, its epochs, the board's `training:` overrides) at the strategy's defaults,
then STATS. RESET starts every run and resets the arena high-water mark and repaints the
stack, so each strategy's figures are its own. Training memory = arena high-water mark
minus the parameters (weights excluded: every strategy needs them) plus the peak stack.
The figures are the device's own (STATS), in bytes; QEMU targets are emulated boards.
Next to each measurement: the host's memory plan (rig.memplan) for the same run, an
independent computation of the arena bytes.

    python benchmarks/training_memory.py [--target qemu] [--epochs N] [--train-samples N]
                                         [--momentum M]

Issue target: `static` and `velocity-budget` at their defaults <= 0.35x of `full`.
`velocity-budget` misses it by construction (its velocity state alone outweighs the gradients
its budget saves): docs/training.md "Why `velocity-budget` cannot reach a small fraction of
`full`".
Exit status: 0 measured (whether or not the target is met; the table says), 2 rig error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rig.config import load_config
from rig.connection import connect
from rig.errors import RigError
from rig.session import RunSpec
from rig.targets import resolve_target
from rig.training_memory import StrategyMemory, measure

TARGET_RATIO = 0.35
TARGET_STRATEGIES = ("static", "velocity-budget")


def run(args: argparse.Namespace) -> tuple[list[StrategyMemory], int]:
    lab = load_config(args.config)
    target = resolve_target(lab, args.target)
    board_training = target.board.training if target.board is not None else None
    overrides: dict[str, Any] = {}
    for key in ("epochs", "train_samples", "momentum"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    with connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries) as conn:
        print(f"target: {conn.hello.board} (build {conn.hello.build_hash[:12]}), emulated; "
              f"strategies: {', '.join(conn.hello.strategy_names)}")
        rows = measure(conn, RunSpec.from_training(lab.training), board_training,
                       overrides=overrides)
        return rows, conn.hello.max_batch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--target", default="qemu")
    ap.add_argument("--epochs", type=int, default=None, help="default: the lab's")
    ap.add_argument("--train-samples", type=int, default=None,
                    help="default: the lab's (0: the whole training split)")
    ap.add_argument("--momentum", type=float, default=None, help="default: the lab's")
    args = ap.parse_args()
    try:
        rows, max_batch = run(args)
    except RigError as exc:
        print(f"training_memory: {exc}", file=sys.stderr)
        return 2
    full = next((r.training_bytes for r in rows if r.strategy == "full" and r.fits), None)
    dims = "-".join(map(str, rows[0].dims)) if rows else "?"
    print(f"\njob: dims {dims}, max_batch {max_batch}; bytes from STATS (emulated target); "
          f"plan = rig.memplan for the same run")
    print(f"{'strategy':>16} {'steps':>6} {'arena-weights':>14} {'plan':>8} "
          f"{'peak stack':>11} {'total':>8} {'/ full':>7}")
    for r in rows:
        if not r.fits:
            print(f"{r.strategy:>16}  does not fit: {r.reason}")
            continue
        ratio = f"{r.training_bytes / full:.3f}" if full else "-"
        print(f"{r.strategy:>16} {r.steps:>6} {r.arena_used - r.weights:>14,} "
              f"{r.plan - r.weights:>8,} {r.stack_used:>11,} {r.training_bytes:>8,} {ratio:>7}")
    print("\nwhere the arena goes (plan):")
    for r in rows:
        if r.fits:
            print(f"{r.strategy:>16}  {r.plan_regions}")
    if full:
        for name in TARGET_STRATEGIES:
            got = next((r.training_bytes / full for r in rows if r.strategy == name and r.fits),
                       None)
            verdict = ("not measured on this firmware" if got is None else
                       f"{got:.3f}x: {'met' if got <= TARGET_RATIO else 'NOT met'}")
            print(f"target {name} <= {TARGET_RATIO}x of full: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
