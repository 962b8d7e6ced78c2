"""The `rig` command line: a thin face over `rig.session` (the fixtures are the other face).

    rig run            train the default model on the default target, compare with the golden model
    rig list           configured targets, whether each is available, prebuilt images
    rig hello          connect to a target and print what the firmware says about itself
    rig flash          flash a target's prebuilt image (pyocd probe, or QEMU's gdbstub), verify
    rig sizes          flash / static RAM / stack of every prebuilt image (--measure: peak stack)
    rig profile        cost per phase and strategy: MACs, instructions (QEMU), cycles and energy
    rig experiment     every strategy on a transfer task, ≥5 seeds: table + plot in docs/results

Exit status: 0 ok, 1 device and golden model disagree beyond tolerance, 2 rig error
(config, link, target, firmware).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rig.config import LabConfig, load_config
from rig.errors import RigError
from rig.firmware import load_manifest
from rig.link.faults import FaultSpec, FaultyTransport
from rig.session import (
    EpochRecord,
    Inspect,
    RunReport,
    RunSpec,
    StepRecord,
    TrainingSession,
    connect,
    fit_spec,
)
from rig.targets import build_target, resolve_target

# Wide enough for the epoch table when the output is a file or a CI log.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


def _spec_from(lab: LabConfig, args: argparse.Namespace) -> RunSpec:
    return replace(_lab_spec(lab), **_cli_overrides(args))


def _lab_spec(lab: LabConfig) -> RunSpec:
    names = {f.name for f in fields(RunSpec)}
    return RunSpec(**{f.name: getattr(lab.training, f.name) for f in fields(lab.training)
                      if f.name in names})


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name in ("strategy", "epochs", "batch", "lr", "momentum", "train_samples",
                 "test_samples", "seed", "backbone"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "sparams", None) is not None:
        overrides["sparams"] = tuple(args.sparams)
    return overrides


def _epoch_table(report: RunReport) -> Table:
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


def cmd_run(args: argparse.Namespace) -> int:
    faults = FaultSpec.parse(args.inject_faults) if args.inject_faults else None
    lab = load_config(args.config)
    spec = _spec_from(lab, args)
    target = resolve_target(lab, args.target)
    inspect = Inspect(masks=args.inspect, updates=args.inspect,
                      params_every=1 if args.lockstep else args.params_every,
                      resync=args.resync or args.lockstep)
    console.print(f"[bold]rig run[/]: {spec.strategy}, {spec.epochs} epoch(s), "
                  f"target {target.describe()}")
    with connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries,
                 faults=faults) as conn:
        h = conn.hello
        if faults is not None:
            console.print(f"[yellow]injecting link faults: {faults.describe()}[/]")
        console.print(f"firmware: board {h.board}, build {h.build_hash[:12]}, protocol "
                      f"v{h.proto_version}, counters: {h.counter_label}")
        # A small board runs its own version of the job (lab_config boards.<b>.training)
        board = getattr(target, "board", None)
        spec, notes = fit_spec(_lab_spec(lab), h, getattr(board, "training", None),
                               _cli_overrides(args))
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
    console.print(_epoch_table(report))
    mode = "lockstep" if session.lockstep else "free-running"
    console.print(f"per-step loss: max relative error device vs golden "
                  f"{report.max_loss_rel:.2e} ({mode} tolerance {session.step_tol.loss_rel:g}); "
                  f"wall time {report.wall_s:.2f} s")
    stats = conn.device.link.stats
    console.print(f"link: {stats.summary()}")
    if isinstance(conn.device.link.transport, FaultyTransport):
        console.print(f"injected: {conn.device.link.transport.counts.summary()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(_report_json(report), f, indent=1)
        console.print(f"report written to {args.json}")
    if not report.ok:
        console.print("[red bold]device and golden model disagree beyond tolerance:[/]")
        console.print(report.failures)
        return 1
    console.print("[green bold]device matches the golden model[/]")
    return 0


def _report_json(report: RunReport) -> dict[str, Any]:
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
    }


def cmd_list(args: argparse.Namespace) -> int:
    lab = load_config(args.config)
    t = Table(title=f"targets in {lab.path}")
    for col in ("name", "kind", "board", "enabled", "status"):
        t.add_column(col)
    chosen = None
    try:
        chosen = resolve_target(lab, args.target).name
    except RigError as exc:
        chosen_err = str(exc)
    else:
        chosen_err = ""
    for tc in lab.targets.values():
        if tc.enabled:
            try:
                why = build_target(lab, tc).unavailable_reason()
            except RigError as exc:
                why = str(exc)
            status = "available" if why is None else f"unavailable: {why}"
        else:
            status = "disabled"
        if tc.name == chosen:
            status += "  [bold]<- would be used[/]"
        t.add_row(tc.name, tc.kind, tc.board, "yes" if tc.enabled else "no", status)
    console.print(t)
    if chosen_err:
        console.print(f"[yellow]no target would be used: {chosen_err}[/]")
    _print_probes_and_ports(lab)
    try:
        manifest = load_manifest()
    except RigError as exc:
        console.print(f"[yellow]prebuilt firmware: {exc}[/]")
        return 0
    m = Table(title="prebuilt firmware")
    for col in ("board", "file", "sha256", "source hash", "toolchain"):
        m.add_column(col)
    for img in manifest.images.values():
        m.add_row(img.board, str(img.path.name), img.sha256[:12], img.source_hash[:12],
                  img.toolchain)
    console.print(m)
    return 0


def _print_probes_and_ports(lab: LabConfig) -> None:
    """Attached debug probes (pyocd, non-blocking) and serial ports, and which configured
    target each would serve."""
    from serial.tools import list_ports

    from rig.targets import pyocd as pyocd_target

    pyocd_targets = [build_target(lab, tc) for tc in lab.enabled_targets("pyocd")]
    try:
        probes = pyocd_target.list_targets_probes()
        probe_err = ""
    except Exception as exc:  # a USB backend problem must not hide the rest of the listing
        probes, probe_err = [], str(exc)
    p = Table(title="debug probes (pyocd)")
    for col in ("unique id", "board", "pyocd target", "serial port", "used by"):
        p.add_column(col)
    for probe, ports in probes:
        users = []
        for tgt in pyocd_targets:
            try:
                if tgt.choose_probe([probe]) is probe:  # the selection start() makes
                    users.append(tgt.name)
            except RigError:
                pass
        p.add_row(probe.unique_id, pyocd_target.probe_board_name(probe),
                  pyocd_target.probe_target_type(probe) or "unknown (name its id)",
                  ", ".join(pt.device for pt in ports) or "-", ", ".join(users) or "-")
    if probes:
        console.print(p)
    else:
        why = f" ({probe_err})" if probe_err else ""
        console.print(f"debug probes (pyocd): none attached{why}")
    ports = sorted(list_ports.comports(), key=lambda pt: pt.device)
    if ports:
        s = Table(title="serial ports")
        for col in ("device", "USB serial number", "description"):
            s.add_column(col)
        for pt in ports:
            s.add_row(pt.device, pt.serial_number or "-", pt.description or "-")
        console.print(s)
    else:
        console.print("serial ports: none")


def cmd_flash(args: argparse.Namespace) -> int:
    """Flash the target's prebuilt image and check HELLO. pyocd: program + read-back
    verify + reset (even when the build already runs, unless --if-needed). QEMU: the
    gdbstub path (empty halted machine, gdb load, compare-sections, reset)."""
    from rich.progress import DownloadColumn

    lab = load_config(args.config)
    target = resolve_target(lab, args.target)
    if target.kind == "qemu":
        target.flash = "gdb"  # type: ignore[attr-defined]
    elif target.kind == "pyocd":
        target.flash_mode = "auto" if args.if_needed else "always"  # type: ignore[attr-defined]
    else:
        raise RigError(f"{target.describe()}: a {target.kind} target is not flashed by the rig"
                       " (serial: flash the board with its own tools; native: built on demand)")
    console.print(f"[bold]rig flash[/]: {target.describe()}")
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        image = target.expected_firmware()
        total = image.path.stat().st_size if image is not None else 1
        task = progress.add_task("flashing", total=total)
        if target.kind == "pyocd":
            target.progress = (  # type: ignore[attr-defined]
                lambda f: progress.update(task, completed=int(f * total)))
        conn = connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries)
    with conn:
        h = conn.hello
        if target.kind == "qemu":
            console.print(getattr(target, "flash_log", ""), markup=False)
        else:
            flashed = getattr(target, "flashed", False)
            for event in getattr(target, "events", []):
                console.print(f"  {event}", markup=False)
            if not flashed:
                console.print("already running the manifest's build: not flashed")
        console.print(f"[green]ok[/]: {h.board} runs build {h.build_hash[:12]} "
                      f"(protocol v{h.proto_version}, fw {h.fw_version})")
    return 0


def cmd_sizes(args: argparse.Namespace) -> int:
    """Flash, static RAM and stack of every prebuilt image (from the manifest); with
    --measure, the peak stack each QEMU machine reached training every strategy (STATS)."""
    manifest = load_manifest()
    measured: dict[str, int] = {}
    if args.measure:
        measured = _measure_stacks(load_config(args.config))
    t = Table(title=f"prebuilt images ({manifest.path})")
    for col in ("board", "flash B", "static RAM B", "stack B", "main RAM", "peak stack B"):
        t.add_column(col, justify="right" if col != "board" else "left")
    for img in sorted(manifest.images.values(), key=lambda i: i.board):
        mem = _memory_of(img)
        ram = (f"{mem['ram_used']} of {mem['ram'] // 1024} K "
               f"({100 * mem['ram_used'] / mem['ram']:.0f} %)" if mem.get("ram") else "?")
        peak = measured.get(img.board)
        t.add_row(img.board, str(mem.get("flash", "?")), str(mem.get("static_ram", "?")),
                  str(mem.get("stack", "?")), ram, "-" if peak is None else str(peak))
    console.print(t)
    return 0


def _memory_of(img: Any) -> dict[str, Any]:
    """The manifest's `memory` record of an image (older manifests: from text/data/bss)."""
    import json as _json

    data = _json.loads(load_manifest().path.read_text(encoding="utf-8"))
    for entry in data.get("images", []):
        if entry.get("board") == img.board and entry.get("memory"):
            return dict(entry["memory"])
    size = img.size or {}
    return {"flash": size.get("text", 0) + size.get("data", 0),
            "static_ram": size.get("data", 0) + size.get("bss", 0)}


def _measure_stacks(lab: LabConfig) -> dict[str, int]:
    """Peak stack (STATS high-water mark) per board after training every strategy the
    firmware has for 2 short epochs on each enabled QEMU target."""
    from rig.session import Inspect as _Inspect

    out: dict[str, int] = {}
    for tc in lab.enabled_targets("qemu"):
        target = build_target(lab, tc)
        board = getattr(target, "board", None)
        with connect(target, timeout=lab.defaults.timeout_s,
                     retries=lab.defaults.retries) as conn:
            for strategy in conn.hello.strategy_names:
                spec, _ = fit_spec(_lab_spec(lab), conn.hello, getattr(board, "training", None),
                                   {"strategy": strategy, "epochs": 2, "train_samples": 64,
                                    "test_samples": 32})
                TrainingSession(conn.device, spec,
                                inspect=_Inspect(masks=True, updates=True)).run()
            used = conn.device.stats().stack_used
        out[conn.hello.board] = max(out.get(conn.hello.board, 0), used)
        console.print(f"{tc.name}: peak stack {used} B after every strategy")
    return out


def cmd_hello(args: argparse.Namespace) -> int:
    lab = load_config(args.config)
    target = resolve_target(lab, args.target)
    with connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries) as conn:
        for key, value in asdict(conn.hello).items():
            console.print(f"{key:15} {value}")
        console.print(f"{'strategy names':15} {', '.join(conn.hello.strategy_names)}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rig import experiment as exp

    seeds = list(range(args.seeds))
    device_seeds = [] if args.no_device else seeds[:args.device_seeds]
    strategies = args.strategy or list(exp.STRATEGIES)
    command = "rig experiment" + (f" --seeds {args.seeds}" if args.seeds != 5 else "") + (
        " --no-device" if args.no_device else "")
    conn = None
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

    try:
        result = exp.run_experiment(seeds, strategies, device_seeds, factory, target_name,
                                    log=console.print)
    finally:
        if conn is not None:
            conn.close()
    paths = exp.write(result, Path(args.out), command)
    console.print(exp.markdown(result, command), markup=False)
    console.print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0 if all(d.ok for d in result.device) else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rig", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="lab_config.yaml to use")
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="train on a target and compare with the golden model")
    run.add_argument("--target", help="auto | qemu | board | native | a target name")
    run.add_argument("--strategy", help="full, tinyprop, tinypropv2, neq, velocity-budget, "
                                        "random-budget, static")
    run.add_argument("--sparams", type=float, nargs="*", help="strategy parameters")
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
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="configured targets, availability, prebuilt images")
    lst.add_argument("--target", help="selector to resolve (default: the lab default)")
    lst.set_defaults(func=cmd_list)

    ex = sub.add_parser("experiment", help="transfer-learning experiment over all strategies "
                                           "(table + plot)")
    ex.add_argument("--seeds", type=int, default=5, help="seeds in the golden model (≥ 5)")
    ex.add_argument("--device-seeds", type=int, default=1,
                    help="how many of those seeds also run every strategy on the target")
    ex.add_argument("--no-device", action="store_true", help="golden model only")
    ex.add_argument("--strategy", action="append", help="only these strategies (repeatable)")
    ex.add_argument("--target", help="target for the device runs (default: the lab default)")
    ex.add_argument("--out", default="docs/results", help="output directory")
    ex.set_defaults(func=cmd_experiment)

    hello = sub.add_parser("hello", help="print the firmware's HELLO")
    hello.add_argument("--target")
    hello.set_defaults(func=cmd_hello)

    fl = sub.add_parser("flash", help="flash a target's prebuilt image (pyocd or QEMU gdbstub)")
    fl.add_argument("--target", help="target name (default: the lab default)")
    fl.add_argument("--if-needed", action="store_true",
                    help="pyocd: skip programming when HELLO already reports the build")
    fl.set_defaults(func=cmd_flash)

    sz = sub.add_parser("sizes", help="flash / RAM / stack of every prebuilt image")
    sz.add_argument("--measure", action="store_true",
                    help="also train every strategy on each QEMU target and read the peak "
                         "stack (STATS)")
    sz.set_defaults(func=cmd_sizes)

    from rig import cli_profile  # `rig profile` lives in its own module
    cli_profile.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv or sys.argv[1:]), "run"])
    try:
        return int(args.func(args))
    except RigError as exc:
        console.print(f"[red bold]error:[/] {exc}", markup=True)
        for note in getattr(exc, "__notes__", []):
            console.print(note, markup=False)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
