"""`rig profile`: the command-line face of `rig.profiling`.

    rig profile                          full + tinyprop on the lab default target (QEMU with
                                         the instruction-count plugin), lab training settings
    rig profile --strategy static        ... plus static
    rig profile --only --strategy neq    only neq
    rig profile --steps 20 --epochs 1    a quick look
    rig profile --monitor ppk2 --monitor-opt port=/dev/ttyACM1   + energy (measured)

Writes `<out>/profile.json` (summary and every step), `<out>/report.html` and PNG charts,
and prints the per-phase table. Exit status: 0, 1 if the device disagreed with the golden
model during the run (the figures are still written), 2 rig error.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from rig.cli.checks import add_strategy, check_strategy
from rig.cli.console import console
from rig.cli.progress import step_progress

DEFAULT_OUT = "out/profile"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("profile", help="cost per training phase and strategy: MACs, "
                                       "instructions (QEMU), cycles and energy (model)")
    p.add_argument("--target", help="auto | qemu | board | a target name (default: the lab's)")
    add_strategy(p, "profile this strategy too (repeatable; default set: full, tinyprop)",
                 repeat=True)
    p.add_argument("--only", action="store_true",
                   help="only the --strategy ones, not the default set")
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps", type=int, help="at most this many TRAIN_STEPs per strategy")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--train-samples", type=int)
    p.add_argument("--test-samples", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output directory ({DEFAULT_OUT})")
    p.add_argument("--no-icount", action="store_true",
                   help="do not load the QEMU instruction-count plugin (device counters only)")
    p.add_argument("--threshold", type=float, default=None,
                   help="instr/MAC deviation from full that flags a phase (default 0.10)")
    p.add_argument("--monitor", help="power monitor kind (ppk2, joulescope, lpm01a, ...)")
    p.add_argument("--monitor-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="option for the monitor (repeatable), e.g. port=/dev/ttyACM1")
    p.add_argument("--monitor-rate", type=float, default=100_000.0, help="samples per second")
    p.add_argument("--monitor-voltage", type=float, default=None, metavar="V",
                   help="supply voltage: sourced by a supplying monitor; for an ammeter (PPK2"
                        " ampere mode) the voltage assumed for energy (default: power model)")
    p.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    p.set_defaults(func=cmd_profile, check=check_profile)


def check_profile(args: argparse.Namespace) -> None:
    for name in args.strategy:
        check_strategy(name)


def _monitor(args: argparse.Namespace) -> Any:
    if not args.monitor:
        return None
    from rig.profile.monitors import monitor_from_options

    return monitor_from_options(args.monitor, args.monitor_opt)


#: the terminal tables' columns, by TABLE_HEAD name: (short header, table); 1 = cost per
#: phase, 2 = against full. The cycles band stays in the HTML report.
_TERMINAL_COLUMNS = {
    "strategy": ("strategy", 0), "phase": ("phase", 0), "MACs (golden)": ("MACs (golden)", 1),
    "instr (QEMU)": ("instr (QEMU)", 1), "instr/MAC": ("instr/ MAC", 1),
    "cycles (model)": ("cycles (model)", 1), "latency ms": ("ms (model)", 1),
    "energy µJ (model)": ("µJ (model)", 1), "device counter": ("device counter", 1),
    "/full: MACs / instr / cycles": ("/full: MACs / instr / cycles", 2),
    "instr/MAC vs full": ("instr/MAC vs full", 2),
}


def phase_tables(summary: dict[str, Any]) -> list[Any]:
    """The per-phase figures as two rich tables that fit 100 columns without cutting a
    value: the cost of each phase, then each sparse strategy against full."""
    from rich import box
    from rich.table import Table

    from rig.profile.render import TABLE_HEAD, phase_rows

    rows = phase_rows(summary, ratio_digits=2)
    title = (f"{summary['board']} ({summary['cpu']}, {summary['clock_hz'] / 1e6:g} MHz) — "
             "per TRAIN_STEP, mean over the run")
    tables = [Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False),
              Table(title="against full (MACs / instructions / cycles per step)",
                    box=box.SIMPLE_HEAD, pad_edge=False)]
    picked: list[list[int]] = [[], []]
    for i, head in enumerate(TABLE_HEAD):
        if head not in _TERMINAL_COLUMNS:
            continue
        short, which = _TERMINAL_COLUMNS[head]
        # every value keeps its full width; only the headers wrap
        widest = max((len(r[i]) for r in rows), default=1)
        for n in ((0, 1) if which == 0 else (which - 1,)):
            tables[n].add_column(short, justify="left" if which == 0 else "right",
                                 min_width=widest, overflow="fold")
            picked[n].append(i)
    last = ""
    for row in rows:
        flagged = row[TABLE_HEAD.index("instr/MAC vs full")].endswith("FLAG")
        shown = row[:1] if row[0] != last else [""]
        last = row[0]
        tables[0].add_row(*shown, *(row[i] for i in picked[0][1:]))
        ratio = [row[i] for i in picked[1][2:]]
        if row[0] != "full" and any(v not in ("", "–/–/–") for v in ratio):
            tables[1].add_row(row[0], row[1], *ratio, style="red" if flagged else None)
    return tables if tables[1].row_count else tables[:1]


def cmd_profile(args: argparse.Namespace) -> int:
    from rig.config import load_config
    from rig.profile.render import write_report
    from rig.profile.report import SCALING_THRESHOLD, summarize
    from rig.profiling import DEFAULT_STRATEGIES, profile_target
    from rig.session import RunSpec
    from rig.targets import resolve_target

    lab = load_config(args.config)
    target = resolve_target(lab, args.target)
    strategies = list(dict.fromkeys(([] if args.only else list(DEFAULT_STRATEGIES))
                                    + list(args.strategy)))
    if not strategies:
        console.print("[red]--only needs at least one --strategy[/]")
        return 2
    spec = RunSpec.from_training(lab.training)
    overrides = {"epochs": args.epochs, "batch": args.batch, "lr": args.lr,
                 "train_samples": args.train_samples, "test_samples": args.test_samples,
                 "seed": args.seed}
    out = Path(args.out)
    command = "rig " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else \
        "rig profile"
    console.print(f"[bold]rig profile[/]: {', '.join(strategies)} on {target.describe()}"
                  + (f", ≤{args.steps} steps per strategy" if args.steps else ""))
    current: list[str] = []

    def on_step(strategy: str, step: Any) -> None:
        if not current or current[-1] != strategy:
            if current:
                progress.finish(current[-1])
            current.append(strategy)
            progress.add(strategy, args.steps)
        ic = f"{step.icount.total.insns:,} instructions" if step.icount else ""
        progress.advance(strategy, ic)

    monitor = _monitor(args)
    try:
        if monitor is not None:
            monitor.open()
        with step_progress(console) as progress:
            run = profile_target(target, lab, strategies, spec, out, overrides=overrides,
                                 icount=not args.no_icount,
                                 max_steps=args.steps, monitor=monitor,
                                 monitor_voltage_v=args.monitor_voltage,
                                 monitor_rate_hz=args.monitor_rate, on_step=on_step)
            if current:
                progress.finish(current[-1])
    finally:
        if monitor is not None:
            monitor.close()
    threshold = SCALING_THRESHOLD if args.threshold is None else args.threshold
    summary = summarize(run, threshold=threshold, command=command)
    sp = summary["spec"]
    console.print(f"run: dims {'-'.join(map(str, sp.get('dims', [])))}, batch {sp.get('batch')}, "
                  f"{sp.get('epochs')} epoch(s), lr {sp.get('lr')}"
                  + "".join(f"; {n}" for n in run.notes))
    paths = write_report(run, summary, out, charts=not args.no_charts)

    for table in phase_tables(summary):
        console.print(table)
    lab_ = summary["labels"]
    console.print(f"labels: {lab_['insns']}; {lab_['cycles']}; {lab_['latency']}; "
                  f"{lab_['energy']} ({summary['power_model']['basis']}); device counters: "
                  f"{lab_['counters']}")
    for name, st in summary["strategies"].items():
        r = st.get("step_ratio_vs_full")
        if r:
            console.print(f"{name} / full per step: MACs ×{r['macs']:.3f}, instructions "
                          f"×{r['insns']:.3f}, cycles ×{r['cycles']:.3f}")
        sel = st.get("select")
        if sel and sel.get("insns") is not None:
            console.print(f"{name}: SELECT ×{sel['count']}: {sel['macs']:,.0f} MACs, "
                          f"{sel['insns']:,.0f} instructions each")
        em = st.get("energy_measured")
        if em:
            console.print(f"{name}: {em['label']} {em['per_step_j'] * 1e6:.2f} µJ/step "
                          f"({em['windows']} windows, {em['detail']})")
            cal = em.get("calibrated_model")
            if cal:
                console.print(f"{name}: measured/model ×{em['measured_over_model']:.3f}; "
                              f"model calibrated on it: {cal['current_ma_per_mhz']:.4g} "
                              f"mA/MHz + {cal['static_current_ma']:g} mA static")
    for f in summary["flags"]:
        console.print(f"[yellow]flag[/] {f['strategy']}/{f['phase']} [{f['kind']}]: "
                      f"{f['message']}")
    console.print(f"report: {paths['html']}  data: {paths['json']}")
    from rich.markup import escape

    for err in run.measurement_errors:
        console.print(f"[red bold]error:[/] {escape(err)}", markup=True)
    if run.measurement_errors:
        return 2
    bad = [n for n, st in summary["strategies"].items() if not st["ok"]]
    if bad:
        console.print(f"[red bold]device and golden model disagreed for {', '.join(bad)}[/]")
        return 1
    return 0
