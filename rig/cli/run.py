"""`rig run`: train on a target and compare every step with the golden model."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rig.cli.checks import UsageError, add_strategy, check_sparams, check_strategy
from rig.cli.console import console
from rig.config import LabConfig, load_config
from rig.errors import ConfigError
from rig.link.faults import FaultSpec, FaultyTransport
from rig.resume import DEFAULT_MAX_RESUMES

if TYPE_CHECKING:  # the session pulls in the golden model (torch): imported when training
    from rig.session import RunReport, TrainingSession


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
    run.add_argument("--inspect", action="store_true",
                     help="read and compare masks and applied updates every step")
    run.add_argument("--json", help="write the full report as JSON here")
    run.add_argument("--inject-faults", metavar="SPEC",
                     help="corrupt the link on purpose: flip=P,drop=P,dup=P,delay=P per byte"
                          " (+ stall=S, seed=N, dir=both|tx|rx), e.g. flip=1e-4,drop=1e-4")
    run.add_argument("--max-resumes", type=int, default=DEFAULT_MAX_RESUMES, metavar="N",
                     help="resume after a device reset or a dead target at most N times "
                          f"per run (restore by replay; 0: fail at once; default "
                          f"{DEFAULT_MAX_RESUMES})")
    run.set_defaults(func=cmd_run, check=check_run)


def check_run(args: argparse.Namespace) -> None:
    """Strategy and sparams against the catalogue, before the lab file or a target."""
    if args.strategy is not None:
        check_strategy(args.strategy)
    if args.max_resumes < 0:
        raise UsageError(f"--max-resumes: must be >= 0, got {args.max_resumes}")
    if args.inject_faults:
        try:
            FaultSpec.parse(args.inject_faults)
        except ConfigError as exc:
            raise UsageError(f"--inject-faults: {exc}") from None


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
    from rig.session import Inspect
    from rig.targets import resolve_target

    faults = FaultSpec.parse(args.inject_faults) if args.inject_faults else None
    lab = load_config(args.config)
    overrides = cli_overrides(args)
    check_job(lab, overrides)
    target = resolve_target(lab, args.target)
    strategy = overrides.get("strategy", lab.training.strategy)
    epochs = overrides.get("epochs", lab.training.epochs)
    inspect = Inspect(masks=args.inspect, updates=args.inspect,
                      params_every=1 if args.lockstep else args.params_every,
                      resync=args.resync or args.lockstep)
    console.print(f"[bold]rig run[/]: {strategy}, {epochs} epoch(s), "
                  f"target {target.describe()}")
    started: list[TrainingSession] = []  # the session, once made (for a partial report)
    try:
        session, conn, report = _train(args, lab, target, faults, inspect, overrides,
                                       started)
    except BaseException as exc:  # a failed run still writes what it measured
        if args.json:
            _write_json(args.json, partial_json(started[0] if started else None, exc))
            console.print(f"partial report (complete: false) written to {args.json}")
        raise
    return _summarise(args, session, conn, report)


def _train(args: argparse.Namespace, lab: LabConfig, target: Any, faults: FaultSpec | None,
           inspect: Any, overrides: dict[str, Any], started: list[TrainingSession]
           ) -> tuple[TrainingSession, Any, RunReport]:
    """Connect, prepare and run with a progress bar; `started` gets the session."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from rig.connection import connect
    from rig.fit import fit_spec
    from rig.resume import ResumeEvent, Resumer
    from rig.session import EpochRecord, RunSpec, StepRecord, TrainingSession

    with connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries,
                 faults=faults) as conn:
        h = conn.hello
        if faults is not None:
            console.print(f"[yellow]injecting link faults: {faults.describe()}[/]")
        counters = conn.device.counter_label or h.counter_label
        console.print(f"firmware: board {h.board}, build {h.build_hash[:12]}, protocol "
                      f"v{h.proto_version}, counters: {counters}")
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

            def on_resume(ev: ResumeEvent) -> None:
                exit_ = f" ({ev.target_exit})" if ev.target_exit else ""
                progress.console.print(
                    f"[yellow]resuming ({len(resumer.events)}/{resumer.max_resumes}): "
                    f"{ev.cause}{exit_} in epoch {ev.epoch} after step {ev.step}: "
                    f"{ev.detail}[/]")

            resumer = Resumer(target, args.max_resumes, on_resume)
            session = TrainingSession(conn.device, spec, inspect=inspect, on_step=on_step,
                                      on_epoch=on_epoch, resumer=resumer)
            started.append(session)
            session.prepare()
            n_steps = spec.epochs * -(-len(session.train) // spec.batch)
            progress.update(task, description="training", total=n_steps, completed=0)
            report = session.run()
    return session, conn, report


def _summarise(args: argparse.Namespace, session: TrainingSession, conn: Any,
               report: RunReport) -> int:
    console.print(_epoch_table(report))
    mode = "lockstep" if session.lockstep else "free-running"
    console.print(f"per-step loss: max relative error device vs golden "
                  f"{report.max_loss_rel:.2e} ({mode} tolerance {session.step_tol.loss_rel:g}); "
                  f"wall time {report.wall_s:.2f} s")
    stats = conn.device.link.stats
    console.print(f"link: {stats.summary()}")
    if isinstance(conn.device.link.transport, FaultyTransport):
        console.print(f"injected: {conn.device.link.transport.counts.summary()}")
    if report.resumes:
        console.print(f"[yellow]resumed {len(report.resumes)} time(s) after a device reset:[/]")
        for ev in report.resumes:
            console.print(f"  {ev.summary()}")
    if args.json:
        _write_json(args.json, report_json(report))
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
        "max_step_loss_rel": report.max_loss_rel,
        "ok": report.ok,
        "epochs": [{k: v for k, v in asdict(e).items() if k != "verdicts"}
                   | {"ok": e.ok} for e in report.epochs],
        "steps": [{"epoch": s.epoch, "step": s.index, "device_loss": s.device.loss,
                   "golden_loss": s.golden.loss, "k": list(s.device.k),
                   "skipped": s.device.skipped, "counters": list(s.device.counters),
                   "ok": s.verdict.ok} for s in report.steps],
        "link": report.link_stats,
        "complete": report.complete,
        "cause": report.cause,
        "resumes": [e.as_dict() for e in report.resumes],
    }


def partial_json(session: TrainingSession | None, exc: BaseException) -> dict[str, Any]:
    """What a failed run measured, marked incomplete with the cause."""
    from rig.session import failure_cause

    cause = failure_cause(exc)
    report = session.report if session is not None else None
    if report is None:  # failed before the device was set up: nothing measured
        return {"complete": False, "cause": cause, "ok": False, "epochs": [], "steps": [],
                "resumes": []}
    report.complete = False
    report.cause = report.cause or cause
    if not report.link_stats:
        report.link_stats = session.device.link.stats.as_dict() if session else {}
    return report_json(report) | {"ok": False}


def _write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
