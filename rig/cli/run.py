"""`rig run`: train on a target and compare every step with the golden model."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from rig.cli.checks import (
    F32_MAX,
    UsageError,
    add_strategy,
    check_backbone,
    check_float,
    check_int,
    check_output_file,
    check_sparams,
    check_strategy,
)
from rig.cli.console import console
from rig.config import LabConfig, load_config
from rig.errors import ConfigError
from rig.link.faults import FaultSpec, FaultyTransport

if TYPE_CHECKING:  # the session pulls in the golden model (torch): imported when training
    from rig.session import RunReport, TrainingSession


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="train on a target and compare with the golden model")
    run.add_argument("--target", help="auto | qemu | board | native | a target name")
    add_strategy(run, "sparse-update strategy (default: the lab's training: strategy)")
    run.add_argument("--sparams", type=float, nargs="*",
                     help="strategy parameters, in order; missing ones take the defaults")
    run.add_argument("--dims", type=int, nargs="+", metavar="D",
                     help="layer widths of the head, input first (default: the lab's or the "
                          "board's training: dims), e.g. 64 32 10")
    run.add_argument("--epochs", type=int, help=">= 1")
    run.add_argument("--batch", type=int, help="1 .. 65535 (clamped to the device's max_batch)")
    run.add_argument("--lr", type=float, help="> 0")
    run.add_argument("--momentum", type=float, help=">= 0")
    run.add_argument("--train-samples", type=int,
                     help="the first N of the training split (0: all of it)")
    run.add_argument("--test-samples", type=int,
                     help="the first N of the test split (0: all of it)")
    run.add_argument("--seed", type=int, help=f"0 .. {SEED_MAX}")
    run.add_argument("--backbone", help="frozen int8 backbone in front of the head: "
                                        "digits-cnn (pre-trained on the host, streamed)")
    run.add_argument("--params-every", type=int, default=0,
                     help="read and compare all parameters every N steps (0, the default: "
                          "at epoch ends only)")
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
    run.add_argument("--json", help="write the full report as JSON here (a failed run writes "
                                    "what it measured, marked complete: false)")
    run.add_argument("--max-resumes", type=int, default=None, metavar="N",
                     help="resume after at most N device resets / target deaths per run "
                          "(default 3; 0: fail at the first)")
    run.add_argument("--inject-faults", metavar="SPEC",
                     help="corrupt the link on purpose: flip=P,drop=P,dup=P,delay=P per byte"
                          " (+ stall=S, seed=N, dir=both|tx|rx), e.g. flip=1e-4,drop=1e-4")
    run.set_defaults(func=cmd_run, check=check_run)


SEED_MAX = 2**32 - 1


def check_run(args: argparse.Namespace) -> None:
    """Every option value that needs neither the lab file nor a target (UsageError, one
    line naming the option, exit 2)."""
    if args.strategy is not None:
        check_strategy(args.strategy)
    if args.target is not None and not args.target.strip():
        raise UsageError("--target: expected auto, board, a target kind or a target name, "
                         "got ''")
    if args.dims is not None:
        if len(args.dims) < 2:
            raise UsageError(f"--dims: expected at least 2 widths (input ... classes), got "
                             f"{len(args.dims)}")
        for d in args.dims:
            check_int("--dims", d, 1, 65535)
    check_int("--epochs", args.epochs, 1)
    check_int("--batch", args.batch, 1, 65535)
    check_float("--lr", args.lr, 0.0, positive=True)
    check_float("--momentum", args.momentum, 0.0)
    for value in args.sparams or ():
        check_float("--sparams", value, -F32_MAX)
    check_int("--train-samples", args.train_samples, 0, meaning=" (0: the whole split)")
    check_int("--test-samples", args.test_samples, 0, meaning=" (0: the whole split)")
    check_int("--seed", args.seed, 0, SEED_MAX)
    check_backbone(args.backbone)
    check_int("--params-every", args.params_every, 0, meaning=" (0: at epoch ends only)")
    if args.lockstep and args.params_every not in (0, 1):
        raise UsageError(f"--params-every {args.params_every}: --lockstep reads the "
                         "parameters after every step; give one of the two")
    check_output_file("--json", args.json)
    check_int("--max-resumes", args.max_resumes, 0)
    if args.inject_faults:
        try:
            FaultSpec.parse(args.inject_faults)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
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
    if getattr(args, "dims", None) is not None:
        overrides["dims"] = tuple(args.dims)
    return overrides


def check_job(lab: LabConfig, overrides: dict[str, Any]) -> None:
    """The strategy and sparams the run will send, checked before any target starts."""
    strategy = overrides.get("strategy", lab.training.strategy)
    sparams = overrides.get("sparams", lab.training.sparams)
    given = "sparams" in overrides
    check_sparams(strategy, sparams, given=given,
                  where="" if given else f" ({lab.path} training: sparams)")


def check_sizes(lab: LabConfig, board_training: Any, overrides: dict[str, Any]) -> None:
    """`train_samples` / `test_samples` within the digits split the run will use (a larger
    value would silently mean the whole split), before any target starts."""
    from rig.golden.data import digits_split

    values = {**dataclasses.asdict(lab.training), **dict(board_training or {}), **overrides}
    try:
        split = digits_split(seed=values["seed"], n_val=values["val_samples"])
    except ValueError as exc:
        raise UsageError(f"{lab.path} training: val_samples: {exc}") from None
    dims = tuple(values["dims"])
    if "dims" in overrides and not values.get("backbone") and dims[0] != split.train.n_features:
        raise UsageError(f"--dims: the first width is the input: {split.train.n_features} "
                         f"features per digits sample, got {dims[0]}")
    for key, part in (("train_samples", split.train), ("test_samples", split.test)):
        n = values[key]
        if n > len(part):
            where = ("--" + key.replace("_", "-") if key in overrides
                     else f"{lab.path} training: {key}")
            raise UsageError(f"{where}: expected at most {len(part)} (the {part.name} split; "
                             f"0: all of it), got {n}")


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
    from rig.resume import DEFAULT_MAX_RESUMES, ResumeEvent, Resumer
    from rig.session import EpochRecord, Inspect, RunSpec, StepRecord, TrainingSession
    from rig.targets import resolve_target
    from rig.wallclock import TimeSplit, since_process_start

    times = TimeSplit()
    t_start = time.perf_counter()
    before = since_process_start() or 0.0  # interpreter + imports until here

    faults = FaultSpec.parse(args.inject_faults) if args.inject_faults else None
    lab = load_config(args.config)
    overrides = cli_overrides(args)
    check_job(lab, overrides)
    try:
        target = resolve_target(lab, args.target)
    except ConfigError as exc:
        if args.target is None:
            raise
        raise UsageError(f"--target: {exc}") from None
    board_training = target.board.training if target.board is not None else None
    check_sizes(lab, board_training, overrides)
    times.add("startup", before + time.perf_counter() - t_start)
    t_target = time.perf_counter()
    strategy = overrides.get("strategy", lab.training.strategy)
    epochs = overrides.get("epochs", lab.training.epochs)
    inspect = Inspect(masks=args.inspect, updates=args.inspect,
                      params_every=1 if args.lockstep else args.params_every,
                      resync=args.resync or args.lockstep, full_every=args.full_every)
    console.print(f"[bold]rig run[/]: {strategy}, {epochs} epoch(s), "
                  f"target {escape(target.describe())}")
    started: list[TrainingSession] = []  # the session, once made (for a partial report)
    try:
        conn = connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries,
                       faults=faults)
        times.add("target_start", time.perf_counter() - t_target)
        with conn:
            h = conn.hello
            if faults is not None:
                console.print(f"[yellow]injecting link faults: {faults.describe()}[/]")
            counters = conn.device.counter_label or h.counter_label
            console.print(f"firmware: board {h.board}, build {h.build_hash[:12]}, protocol "
                          f"v{h.proto_version}, counters: {counters}")
            if conn.rate is not None:
                emulated = "" if target.hardware else "; emulated UART: no speed changes"
                console.print(f"link rate: {conn.rate.baud} baud ({conn.rate.reason}{emulated})")
            # A small board runs its own version of the job (lab_config boards.<b>.training)
            spec, notes = fit_spec(RunSpec.from_training(lab.training), h, board_training,
                                   overrides)
            for note in notes:
                console.print(f"[yellow]{escape(note)}[/]")
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
                        f"{escape(ev.cause)}{escape(exit_)} in epoch {ev.epoch} after step "
                        f"{ev.step}: {escape(ev.detail)}[/]")

                resumer = Resumer(target, DEFAULT_MAX_RESUMES if args.max_resumes is None
                                  else args.max_resumes, on_resume)
                session = TrainingSession(conn.device, spec, inspect=inspect, on_step=on_step,
                                          on_epoch=on_epoch, resumer=resumer)
                started.append(session)
                session.prepare()
                n_steps = spec.epochs * -(-len(session.train) // spec.batch)
                progress.update(task, description="training", total=n_steps, completed=0)
                report = session.run()
            t_close = time.perf_counter()
    except BaseException as exc:  # a failed run still writes what it measured
        if args.json:
            _write_json(args.json, partial_json(started[0] if started else None, exc))
            console.print("partial report (complete: false) written")
        raise
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
    console.print(f"compared: {report.compared_steps} step(s); near-ties: {report.near_ties} "
                  "(differences rounding can explain, reported as `tie`, not as agreement)")
    if session.lockstep:
        console.print("lockstep re-syncs parameters only: momentum, Y_max and velocities are "
                      "the golden model's own, checked through u (--inspect), k and masks")
        if session.digest_reader.stats.reads:
            console.print(f"lockstep read-back: {session.digest_reader.stats.summary()}")
    stats = conn.device.link.stats
    console.print(f"link: {stats.summary()}")
    if isinstance(conn.device.link.transport, FaultyTransport):
        console.print(f"injected: {conn.device.link.transport.counts.summary()}")
    if report.resumes:
        console.print(f"[yellow]resumed {len(report.resumes)} time(s) after a device reset:[/]")
        for ev in report.resumes:
            console.print(f"  {ev.summary()}", markup=False)
    status = 0 if report.ok else 1
    if args.json:
        rate = conn.rate.to_json() if conn.rate is not None else None
        status = max(status, _write_json(args.json, report_json(report) | {"link_rate": rate}))
    if report.compared_steps == 0:
        console.print("[red bold]nothing was compared[/]: the run trained no step, so it "
                      "cannot say the device matches")
        return max(status, 1)
    if not report.ok:
        console.print("[red bold]device and golden model disagree beyond tolerance:[/]")
        console.print(report.failures, markup=False)
        return max(status, 1)
    if status:
        return status
    console.print("[green bold]device matches the golden model[/]")
    return 0


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
    if not report.link_stats and session is not None:
        report.link_stats = session.device.link.stats.as_dict()
    return report_json(report) | {"ok": False}


def _write_json(path: str, data: dict[str, Any]) -> int:
    """Write the report; if that fails now (it was writable at start), write it to a
    temporary file instead and say where (exit 2: a rig error, the run is not lost)."""
    text = json.dumps(data, indent=1)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="rig-run-",
                                         delete=False, encoding="utf-8") as tmp:
            tmp.write(text)
        console.print(f"[red bold]error:[/] --json {escape(path)}: {escape(str(exc))}; "
                      f"report written to {escape(tmp.name)} instead", soft_wrap=True)
        return 2
    console.print(f"report written to {escape(path)}")
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
        "compared_steps": report.compared_steps,
        "near_ties": report.near_ties,
        "ok": report.ok,
        "epochs": [_plain({k: v for k, v in asdict(e).items() if k != "verdicts"})
                   | {"ok": e.ok} for e in report.epochs],
        "steps": [{"epoch": s.epoch, "step": s.index, "device_loss": s.device.loss,
                   "golden_loss": s.golden.loss, "k": list(s.device.k),
                   "skipped": s.device.skipped, "counters": list(s.device.counters),
                   "wall_s": round(s.wall_s, 6), "ok": s.verdict.ok} for s in report.steps],
        "link": report.link_stats,
        "complete": report.complete,
        "cause": report.cause,
        "resumes": [e.as_dict() for e in report.resumes],
        "readback": report.readback,
    }


def _plain(value: Any) -> Any:
    """numpy arrays and scalars (e.g. an epoch's selected row masks) as JSON values."""
    import numpy as np

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
