"""`rig experiment`: every strategy on a transfer task, several seeds: table + plot."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rig.cli.checks import add_strategy, check_strategy
from rig.cli.console import console
from rig.cli.progress import step_progress
from rig.config import load_config


def add_parser(sub: Any) -> None:
    ex = sub.add_parser("experiment", help="transfer-learning experiment over all strategies "
                                           "(table + plot)")
    ex.add_argument("--seeds", type=int, default=5, help="seeds in the golden model (≥ 5)")
    ex.add_argument("--device-seeds", type=int, default=1,
                    help="how many of those seeds also run every strategy on the target")
    ex.add_argument("--no-device", action="store_true", help="golden model only")
    add_strategy(ex, "only these strategies (repeatable)", repeat=True)
    ex.add_argument("--target", help="target for the device runs (default: the lab default)")
    ex.add_argument("--out", default="docs/results", help="output directory")
    ex.set_defaults(func=cmd_experiment, check=check_experiment)


def check_experiment(args: argparse.Namespace) -> None:
    for name in args.strategy:
        check_strategy(name)


def cmd_experiment(args: argparse.Namespace) -> int:
    from rig import experiment as exp
    from rig.connection import Connection, connect
    from rig.session import Inspect, RunSpec, TrainingSession
    from rig.targets import resolve_target

    seeds = list(range(args.seeds))
    device_seeds = [] if args.no_device else seeds[:args.device_seeds]
    strategies = args.strategy or list(exp.STRATEGIES)
    command = "rig experiment" + (f" --seeds {args.seeds}" if args.seeds != 5 else "") + (
        " --no-device" if args.no_device else "")
    conn: Connection | None = None
    factory = None
    target_name = ""
    if device_seeds:
        lab = load_config(args.config)
        target = resolve_target(lab, args.target)
        conn = connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries)
        target_name = f"{target.name} ({conn.hello.board})"

        def factory(spec: RunSpec, split: Any, params: Any, inspect: Inspect) -> TrainingSession:
            assert conn is not None
            return TrainingSession(conn.device, spec, split=split, initial_params=params,
                                   inspect=inspect)

    runs = len(strategies) * (len(seeds) + len(device_seeds))

    def log(line: str) -> None:
        """run_experiment's lines: each golden/device run advances the bar (its line shown
        above the bar on a terminal); the seed lines are always printed."""
        words = line.split()
        if words and words[0] in ("golden", "device"):
            progress.advance("experiment", f"seed {seed_now[-1]} {words[0]} {words[1]}")
            if progress.live:
                console.print(line, markup=False)
        else:
            if words[:1] == ["seed"]:
                seed_now.append(words[1].rstrip(":"))
            console.print(line, markup=False)

    seed_now = ["?"]
    try:
        with step_progress(console) as progress:
            progress.add("experiment", runs)
            result = exp.run_experiment(seeds, strategies, device_seeds, factory, target_name,
                                        log=log)
            progress.finish("experiment", f"{runs} fine-tuning runs")
    finally:
        if conn is not None:
            conn.close()
    paths = exp.write(result, Path(args.out), command)
    console.print(exp.markdown(result, command), markup=False)
    console.print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0 if all(d.ok for d in result.device) else 1


