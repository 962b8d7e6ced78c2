"""`rig run`: train on a target and compare every step with the golden model."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rig.cli.checks import UsageError, add_strategy, check_sparams, check_strategy
from rig.cli.console import console
from rig.config import LabConfig, load_config

if TYPE_CHECKING:  # the session pulls in the golden model (torch): imported when training
    from rig.session import RunReport


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="train on a target and compare with the golden model")
    run.add_argument("--target", help="auto | qemu | board | native | a target name")
    add_strategy(run, "sparse-update strategy (default: the lab's training: strategy)")
    run.add_argument("--sparams", type=float, nargs="*",
                     help="strategy parameters, in order; missing ones take the defaults")
    run.add_argument("--epochs", type=int)
    run.add_argument("--batch", type=int)
    run.add_argument("--lr", type=float)
    run.add_argument("--momentum", type=float)
    run.add_argument("--train-samples", type=int)
    run.add_argument("--test-samples", type=int)
    run.add_argument("--seed", type=int)
    run.add_argument("--backbone", help="frozen int8 backbone in front of the head: "
                                        "digits-cnn (pre-trained on the host, streamed)")
    run.add_argument("--params-every", type=int, default=0,
                     help="read and compare all parameters every N steps (default: per epoch)")
    run.add_argument("--resync", action="store_true",
                     help="copy device parameters into the golden model when read")
    run.add_argument("--lockstep", action="store_true",
                     help="read parameters after every step and re-sync the golden model "
                          "(= --params-every 1 --resync): per-step tolerance 1e-5")
    run.add_argument("--full-every", type=int, default=0, metavar="N",
                     help="with --lockstep: a full PARAM_READ every N steps instead of the "
                          "PARAM_DIGEST read-back (default 0: at each epoch end only)")
    run.add_argument("--inspect", action="store_true",
                     help="read and compare masks and applied updates every step")
    run.add_argument("--json", help="write the full report as JSON here")
    run.set_defaults(func=cmd_run, check=check_run)


def check_run(args: argparse.Namespace) -> None:
    """Strategy and sparams against the catalogue, before the lab file or a target."""
    if args.strategy is not None:
        check_strategy(args.strategy)
    if args.full_every < 0:
        raise UsageError("--full-every must be >= 0")


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The RunSpec fields the command line sets."""
    overrides: dict[str, Any] = {}
    for name in ("strategy", "epochs", "batch", "lr", "momentum", "train_samples",
                 "test_samples", "seed", "backbone"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "sparams", None) is not None:
        overrides["sparams"] = tuple(args.sparams)
    return overrides


def check_job(lab: LabConfig, overrides: dict[str, Any]) -> None:
    """The strategy and sparams the run will send, checked before any target starts."""
    strategy = overrides.get("strategy", lab.training.strategy)
    sparams = overrides.get("sparams", lab.training.sparams)
    given = "sparams" in overrides
    check_sparams(strategy, sparams, given=given,
                  where="" if given else f" ({lab.path} training: sparams)")


def cmd_run(args: argparse.Namespace) -> int:
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from rig.connection import connect
    from rig.fit import fit_spec
    from rig.session import EpochRecord, Inspect, RunSpec, StepRecord, TrainingSession
    from rig.targets import resolve_target
    from rig.wallclock import TimeSplit, since_process_start

    times = TimeSplit()
    t_start = time.perf_counter()
    before = since_process_start() or 0.0  # interpreter + imports until here

    lab = load_config(args.config)
    overrides = cli_overrides(args)
    check_job(lab, overrides)
    target = resolve_target(lab, args.target)
    times.add("startup", before + time.perf_counter() - t_start)
    t_target = time.perf_counter()
    strategy = overrides.get("strategy", lab.training.strategy)
    epochs = overrides.get("epochs", lab.training.epochs)
    inspect = Inspect(masks=args.inspect, updates=args.inspect,
                      params_every=1 if args.lockstep else args.params_every,
                      resync=args.resync or args.lockstep, full_every=args.full_every)
    console.print(f"[bold]rig run[/]: {strategy}, {epochs} epoch(s), "
                  f"target {target.describe()}")
    conn = connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries)
    times.add("target_start", time.perf_counter() - t_target)
    with conn:
        h = conn.hello
        console.print(f"firmware: board {h.board}, build {h.build_hash[:12]}, protocol "
                      f"v{h.proto_version}, counters: {h.counter_label}")
        # A small board runs its own version of the job (lab_config boards.<b>.training)
        board_training = target.board.training if target.board is not None else None
        spec, notes = fit_spec(RunSpec.from_training(lab.training), h, board_training,
                               overrides)
        for note in notes:
            console.print(f"[yellow]{note}[/]")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("preparing (model + data over UART)", total=None,
                                     info="")

            def on_step(rec: StepRecord) -> None:
                progress.update(task, advance=1, info=(
                    f"loss dev {rec.device.loss:.5f} gold {rec.golden.loss:.5f}"))

            def on_epoch(rec: EpochRecord) -> None:
                progress.console.print(
                    f"epoch {rec.epoch}: device loss {rec.device_loss:.6f}, golden "
                    f"{rec.golden_loss:.6f}, test acc {rec.device_acc:.4f} / "
                    f"{rec.golden_acc:.4f}, {rec.wall_s:.2f} s")

            session = TrainingSession(conn.device, spec, inspect=inspect, on_step=on_step,
                                      on_epoch=on_epoch)
            session.prepare()
            n_steps = spec.epochs * -(-len(session.train) // spec.batch)
            progress.update(task, description="training", total=n_steps, completed=0)
            report = session.run()
        t_close = time.perf_counter()
    times.add("close", time.perf_counter() - t_close)
    times.merge(session.times)
    total = before + time.perf_counter() - t_start
    report.time_split = times.as_dict(total)
    console.print(_epoch_table(report))
    mode = "lockstep" if session.lockstep else "free-running"
    console.print(f"per-step loss: max relative error device vs golden "
                  f"{report.max_loss_rel:.2e} ({mode} tolerance {session.step_tol.loss_rel:g}); "
                  f"training loop {report.wall_s:.2f} s")
    console.print(times.summary(total)
                  + f"; data set {'uploaded' if session.uploaded else 'already on the device'}")
    stats = conn.device.link.stats
    console.print(f"link: {stats.summary()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report_json(report), f, indent=1)
        console.print(f"report written to {args.json}")
    if not report.ok:
        console.print("[red bold]device and golden model disagree beyond tolerance:[/]")
        console.print(report.failures)
        return 1
    console.print("[green bold]device matches the golden model[/]")
    return 0


def _epoch_table(report: RunReport) -> Any:
    from rich.table import Table

    t = Table(title=f"{report.spec.strategy} on {report.hello.board} "
                    f"(dims {'-'.join(map(str, report.spec.dims))}, batch {report.spec.batch})")
    for col in ("epoch", "steps", "device loss", "golden loss", "max |Δparam|", "max ulp",
                "test acc device", "test acc golden", "wall s", "verdict"):
        t.add_column(col, justify="right")
    for e in report.epochs:
        t.add_row(str(e.epoch), str(e.steps), f"{e.device_loss:.6f}", f"{e.golden_loss:.6f}",
                  f"{e.max_param_abs:.2e}", str(e.max_param_ulp), f"{e.device_acc:.4f}",
                  f"{e.golden_acc:.4f}", f"{e.wall_s:.2f}",
                  "[green]ok[/]" if e.ok else "[red]FAIL[/]")
    return t


def report_json(report: RunReport) -> dict[str, Any]:
    return {
        "spec": asdict(report.spec),
        "board": report.hello.board,
        "build_hash": report.hello.build_hash,
        "counter_label": report.counter_label,
        "wall_s": report.wall_s,
        "time_split_s": report.time_split,
        "max_step_loss_rel": report.max_loss_rel,
        "ok": report.ok,
        "epochs": [{k: v for k, v in asdict(e).items() if k != "verdicts"}
                   | {"ok": e.ok} for e in report.epochs],
        "steps": [{"epoch": s.epoch, "step": s.index, "device_loss": s.device.loss,
                   "golden_loss": s.golden.loss, "k": list(s.device.k),
                   "skipped": s.device.skipped, "counters": list(s.device.counters),
                   "wall_s": round(s.wall_s, 6), "ok": s.verdict.ok} for s in report.steps],
        "link": report.link_stats,
    }
