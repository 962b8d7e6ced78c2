"""`rig experiment`: accuracy-vs-compute frontiers of every strategy on a transfer task, many
seeds, paired statistics, the papers' claims; optionally a device-fidelity subset."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from rig.cli.checks import UsageError, add_strategy, check_int, check_strategy
from rig.cli.console import console

TASK_NAMES = ("digits", "mnist5k")
DEFAULT_SEEDS = 30
QUICK_SEEDS = 3


def add_parser(sub: Any) -> None:
    ex = sub.add_parser("experiment", help="accuracy-vs-compute frontiers of every strategy "
                                           "on a transfer task (table, plot, claims)")
    ex.add_argument("--task", default="digits",
                    help=f"{' | '.join(TASK_NAMES)} (default digits)")
    ex.add_argument("--quick", action="store_true",
                    help=f"a few points, {QUICK_SEEDS} seeds (CI smoke run); writes "
                         "<task>-quick.*")
    ex.add_argument("--seeds", type=int, default=None,
                    help=f"seeds 0..N-1 in the golden model (default {DEFAULT_SEEDS})")
    ex.add_argument("--jobs", type=int, default=None,
                    help="worker processes for the seeds (default: min(2, CPUs))")
    add_strategy(ex, "only these strategies' points (repeatable; full is always run, the "
                     "reference)", repeat=True)
    ex.add_argument("--device", action="store_true",
                    help="also run the device subset (every strategy's default, seed 0) on "
                         "--target, instruction-counted (QEMU TCG plugin)")
    ex.add_argument("--target", help="target for --device (default: the lab's qemu)")
    ex.add_argument("--replot", action="store_true",
                    help="no golden training: rewrite the table and plot from the existing "
                         "JSON (with --device: run only the device subset)")
    ex.add_argument("--out", default="docs/results", help="output directory")
    ex.set_defaults(func=cmd_experiment, check=check_experiment)


def check_experiment(args: argparse.Namespace) -> None:
    for name in args.strategy:
        check_strategy(name)
    if args.task not in TASK_NAMES:
        raise UsageError(f"--task: expected one of {', '.join(TASK_NAMES)}, got {args.task!r}")
    check_int("--seeds", args.seeds, 2, 1000, " (paired statistics need two)")
    check_int("--jobs", args.jobs, 1, 64)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: not a directory")
    if args.replot and not (out / f"{_stem(args)}.json").is_file():
        raise UsageError(f"--replot: {out / (_stem(args) + '.json')} does not exist")
    if args.device and args.quick:
        raise UsageError("--device: the device subset belongs to the full run, not --quick")
    if args.target is not None and not args.device:
        raise UsageError("--target: only used with --device")


def _stem(args: argparse.Namespace) -> str:
    return args.task + ("-quick" if args.quick else "")


def _command(args: argparse.Namespace) -> str:
    parts = ["rig experiment", f"--task {args.task}"]
    if args.quick:
        parts.append("--quick")
    if args.seeds is not None:
        parts.append(f"--seeds {args.seeds}")
    parts += [f"--strategy {s}" for s in args.strategy]
    return " ".join(parts)


def cmd_experiment(args: argparse.Namespace) -> int:
    from rig import experiment as exp

    out = Path(args.out)
    command = _command(args)
    stem = _stem(args)
    device_md = ""
    device_path = out / f"{args.task}-device.json"
    if args.replot:  # no golden training (with --device: the device subset only)
        result = exp.ExperimentResult.from_json((out / f"{stem}.json").read_text())
        ok = True
        if args.device:
            ok = _device(args, device_path)
        if device_path.is_file() and not args.quick:
            from rig import experiment_device as dev

            device_md = dev.markdown(dev.DeviceResult.from_json(device_path.read_text()), result)
        paths = exp.write(result, out, command, None, device_md)
        console.print(f"written: {', '.join(str(p) for p in paths.values())}")
        return 0 if ok else 1
    n_seeds = args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    jobs = args.jobs or max(1, min(2, os.cpu_count() or 1))
    points = [p for p in exp.sweep(args.quick)
              if not args.strategy or p.strategy in args.strategy or p.strategy == "full"]
    t0 = time.perf_counter()
    console.print(f"{command}: {n_seeds} seeds × {len(points)} points on {jobs} "
                  "process(es)", markup=False)
    result = exp.run_experiment(args.task, list(range(n_seeds)), quick=args.quick,
                                points=points, jobs=jobs,
                                log=lambda s: console.print(s, markup=False))
    wall = time.perf_counter() - t0
    ok = _device(args, device_path) if args.device else True
    if device_path.is_file() and not args.quick:
        from rig import experiment_device as dev

        device_md = dev.markdown(dev.DeviceResult.from_json(device_path.read_text()), result)
    paths = exp.write(result, out, command, wall, device_md)
    for c in exp.claims(result):
        console.print(f"- {c.title}: {c.verdict}", markup=False)
    console.print(f"written: {', '.join(str(p) for p in paths.values())}")
    console.print(f"golden runs: {len(result.runs)} in {wall:.1f} s wall on {jobs} "
                  f"process(es)", markup=False)
    return 0 if ok else 1


def _device(args: argparse.Namespace, path: Path) -> bool:
    """Run the device subset, write <task>-device.json; True if every run agreed."""
    from rig import experiment_device as dev

    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)

    def save(d: dev.DeviceResult) -> None:
        path.write_text(d.to_json() + "\n", encoding="utf-8")

    d = dev.run_device_subset(args.task, args.config, args.target,
                              tuple(args.strategy) or None,
                              log=lambda s: console.print(s, markup=False), on_run=save)
    save(d)
    console.print(f"device subset: {len(d.runs)} runs in {time.perf_counter() - t0:.1f} s "
                  f"wall, written {path}", markup=False)
    return all(r.ok for r in d.runs)
