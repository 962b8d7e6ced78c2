"""`rig list`, `rig hello`, `rig flash`, `rig sizes`: what the lab has and what runs on it."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.cli.console import console
from rig.config import LabConfig, load_config
from rig.errors import RigError

if TYPE_CHECKING:
    from rig.protocol import HelloInfo


def add_parsers(sub: Any) -> None:
    lst = sub.add_parser("list", help="configured targets, availability, prebuilt images")
    lst.add_argument("--target", help="selector to resolve (default: the lab default)")
    lst.set_defaults(func=cmd_list)

    hello = sub.add_parser("hello", help="print the firmware's HELLO")
    hello.add_argument("--target")
    hello.set_defaults(func=cmd_hello)

    fl = sub.add_parser("flash", help="flash a target's prebuilt image (pyocd, QEMU gdbstub, "
                                      "or a labgrid place's GDB server)")
    fl.add_argument("--target", help="target name (default: the lab default)")
    fl.add_argument("--if-needed", action="store_true",
                    help="pyocd, labgrid: skip programming when HELLO already reports the "
                         "build")
    fl.add_argument("--log", metavar="PATH",
                    help="write the flasher's output here (default: out/flash/<target>.log)")
    fl.set_defaults(func=cmd_flash)

    sz = sub.add_parser("sizes", help="flash / RAM / stack of every prebuilt image")
    sz.add_argument("--measure", action="store_true",
                    help="also train every strategy on the reference head (the lab's "
                         "training: dims), the whole default job, on one QEMU target per "
                         "board, and read the arena high-water mark and peak stack (STATS)")
    sz.set_defaults(func=cmd_sizes)


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from rig.firmware import load_manifest
    from rig.targets import build_target, resolve_target

    lab = load_config(args.config)
    console.print(f"lab config: {lab.path}", markup=False, soft_wrap=True)
    t = Table(title="targets")
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
    from rig.labgrid_client import places_report
    from rig.locks import held_resources

    report = places_report(lab)  # labgrid places, when the lab uses a coordinator
    if report:
        console.print(report, markup=False, highlight=False)
    for resource, holder in held_resources():  # boards other processes hold (rig.locks)
        console.print(f"locked: {resource} by {holder.describe() if holder else '?'}",
                      markup=False, highlight=False)
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
    from rich.table import Table
    from serial.tools import list_ports

    from rig.targets import build_target
    from rig.targets import pyocd as pyocd_target

    pyocd_targets = [t for t in (build_target(lab, tc) for tc in lab.enabled_targets("pyocd"))
                     if isinstance(t, pyocd_target.PyocdTarget)]
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
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from rig.connection import connect
    from rig.targets import Flashable, resolve_target

    lab = load_config(args.config)
    target = resolve_target(lab, args.target)
    if not isinstance(target, Flashable):
        raise RigError(f"{target.describe()}: a {target.kind} target is not flashed by the rig"
                       " (serial: flash the board with its own tools; native: built on demand)")
    console.print(f"[bold]rig flash[/]: {target.describe()}")
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("flashing", total=1.0)
        report = target.flash(None, lambda f: progress.update(task, completed=f),
                              if_needed=args.if_needed)
        conn = connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries,
                       started=report.transport)
    with conn:
        h = conn.hello
        # The flasher's own output (gdb's "src/cobs.c: No such file…" and the like) goes to
        # a log; a failure raises with it quoted, so the console shows it only then.
        if report.log:
            log = Path(args.log or f"out/flash/{target.name}.log")
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("\n".join(report.log) + "\n", encoding="utf-8")
            console.print(f"flash log: {log} ({len(report.log)} lines)", markup=False)
        if not report.flashed:
            console.print("already running the manifest's build: not flashed")
        console.print(f"[green]ok[/]: {h.board} runs build {h.build_hash[:12]} "
                      f"(protocol v{h.proto_version}, fw {h.fw_version})")
    return 0


def cmd_sizes(args: argparse.Namespace) -> int:
    """Flash, static RAM and stack of every prebuilt image (from the manifest); with
    --measure, the peak stack each QEMU machine or twin reached training every strategy (STATS)."""
    from rich.table import Table

    from rig.firmware import load_manifest

    manifest = load_manifest()
    measured: dict[str, int] = {}
    if args.measure:
        measured = _measure_strategies(load_config(args.config))
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
    from rig.firmware import load_manifest

    data = json.loads(load_manifest().path.read_text(encoding="utf-8"))
    for entry in data.get("images", []):
        if entry.get("board") == img.board and entry.get("memory"):
            return dict(entry["memory"])
    size = img.size or {}
    return {"flash": size.get("text", 0) + size.get("data", 0),
            "static_ram": size.get("data", 0) + size.get("bss", 0)}


def _measure_strategies(lab: LabConfig) -> dict[str, int]:
    """Per QEMU board (one target each): every strategy the firmware has trains the
    reference head (the lab's `training: dims`) on the whole default job with the board's
    other `training:` overrides (rig.training_memory); prints arena high-water and peak stack
    per strategy, or the memory plan's bytes where it does not fit. Returns the peak stack
    per board (the largest over its strategies)."""
    from rich.table import Table

    from rig import strategies
    from rig.connection import connect
    from rig.session import RunSpec
    from rig.targets import build_target
    from rig.training_memory import measure

    out: dict[str, int] = {}
    t = Table(title=f"training memory per strategy, reference head "
                    f"{'-'.join(map(str, lab.training.dims))}, whole default job "
                    "(STATS, emulated boards)")
    for col in ("board", "strategy", "fits", "steps", "arena high-water B", "of arena B",
                "peak stack B", "training B (no weights)"):
        t.add_column(col, justify="left" if col in ("board", "strategy", "fits") else "right")
    seen: set[str] = set()
    for tc in lab.enabled_targets("qemu"):
        target = build_target(lab, tc)
        board = target.board.name if target.board is not None else tc.name
        if board in seen:
            continue
        seen.add(board)
        board_training = target.board.training if target.board is not None else None
        with connect(target, timeout=lab.defaults.timeout_s,
                     retries=lab.defaults.retries) as conn:
            console.print(f"{tc.name}: training every strategy of {conn.hello.board} ...")
            rows = measure(conn, RunSpec.from_training(lab.training), board_training,
                           overrides={"dims": tuple(lab.training.dims)})
        for r in rows:
            if r.fits:
                out[r.board] = max(out.get(r.board, 0), r.stack_used)
                t.add_row(r.board, r.strategy, "yes (measured)", str(r.steps),
                          f"{r.arena_used:,}", f"{r.arena_size:,}", f"{r.stack_used:,}",
                          f"{r.training_bytes:,}")
            else:
                need = r.reason.split("arena: ", 1)[-1].split(" (memory plan")[0]
                t.add_row(r.board, r.strategy, "no (plan)", "-", need, "", "", "")
        missing = [s for s in strategies.NAMES if s not in {r.strategy for r in rows}]
        for name in missing:
            t.add_row(board, name, "not in firmware", "-", "", "", "", "")
    console.print(t)
    return out


def cmd_hello(args: argparse.Namespace) -> int:
    from rig.connection import connect
    from rig.targets import resolve_target

    lab = load_config(args.config)
    target = resolve_target(lab, args.target)
    with connect(target, timeout=lab.defaults.timeout_s, retries=lab.defaults.retries) as conn:
        for key, value in hello_lines(conn.hello):
            console.print(f"{key:15} {value}", markup=False)
        if conn.device.counter_label:  # an emulated board's counters are the target's model
            console.print(f"{'counters':15} {conn.device.counter_label}", markup=False)
    return 0


def hello_lines(hello: HelloInfo) -> list[tuple[str, str]]:
    """HELLO's fields as `rig hello` prints them: names, not codes, for the counter kind
    and the strategy bitmask (the raw value follows in parentheses)."""
    names = {"counter_kind": f"{hello.counter_label} ({hello.counter_kind})",
             "strategies": f"{', '.join(hello.strategy_names) or 'none'} "
                           f"(bitmask 0x{hello.strategies:x})",
             "clock_hz": f"{hello.clock_hz:,} Hz",
             "max_payload": f"{hello.max_payload} B",
             "param_capacity": f"{hello.param_capacity:,} parameters",
             "data_capacity": f"{hello.data_capacity:,} B"}
    return [(key, names.get(key, str(value))) for key, value in asdict(hello).items()]


